/*
 * Sender adaptation: the peer's receiver reports (wire/call_msg.h Report, a
 * few a second) in, encoder settings out. Sans-I/O, no allocation: a value
 * the call layer owns and feeds with each report and its arrival time.
 *
 * Loss is what the listener met: speech slots without their own packet in
 * time, over the last 1.5 s of reports (fewer at the start, so the first
 * lossy report counts at once). Burstiness is the mean run of such slots. Levels:
 *
 *   level  loss >=  bitrate   FEC (expected loss)  redundancy
 *   0      -        32 kbit/s  10 %                0  (the codec's defaults)
 *   1      2 %      32         15                  0
 *   2      4 %      24 (x2)    20                  1
 *   3      10 %     24 (x2)    30                  1
 *   4      15 %     20 (x3)    40                  2
 *
 * From level 1 on, bursts (mean run >= 1.5 slots) add a copy and long ones
 * (>= 2.5) take all WZP_MEDIA_RED_MAX (16 kbit/s primary, x4) spaced 2, 4
 * and 6 frames back (with the next packet's FEC, bursts of up to 6 frames
 * come back, 60 ms more wait than copies 1-3 back); and level 1
 * becomes level 2 when more than 0.5 % of the slots stay unrepaired (Opus
 * puts no FEC into some frames, e.g. quiet ones).
 *
 * Opus's in-band FEC (LBRR) rebuilds a lost frame from the next packet,
 * so it covers single losses; redundancy copies the previous 1-2 packets into
 * each datagram (wire/media_red.h), which rebuilds bursts of up to 2-3
 * frames, at the price of the copies' bytes (the primary bitrate is lowered
 * so the total stays <= 64 kbit/s) and 20-40 ms more playout wait. Bursty
 * = mean run >= 1.5 slots.
 *
 * Up at once when the window's loss less half a standard error crosses a
 * level's threshold (small windows are noisy); down (to the level the loss
 * now calls for) only after the window stayed under 60 % of the current
 * level's threshold for 1 s, and 1 s after the last change (hysteresis: no
 * flapping). When the loss stops, the codec's defaults are back within ~3 s
 * (test_adapt). Disabled (the reference): level 0 forever.
 */
#ifndef WZP_MEDIA_ADAPT_H
#define WZP_MEDIA_ADAPT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/time.h"
#include "wire/call_msg.h"
#include "wire/media_parity.h"
#include "wire/media_red.h"

#define WZP_ADAPT_WINDOW 6 /* reports kept (1.5 s at 4 a second) */
#define WZP_ADAPT_LEVELS 5

typedef struct wzp_adapt_settings {
    int bitrate;         /* Opus bitrate of the primary frame, bit/s (6000..64000) */
    int expected_loss;   /* Opus in-band FEC strength, percent */
    unsigned redundancy; /* earlier frames copied into each datagram */
    unsigned spacing;    /* frames between the copies (1, or 2 against long bursts) */
    unsigned parity;     /* parity mode: frames each datagram's XOR parity covers (0, 2..4) */
} wzp_adapt_settings;

typedef struct wzp_adapt {
    bool enabled;
    bool parity_mode; /* parity over 1 + copies frames instead of copies */
    int level;
    int burst_class;   /* 0 random, 1 bursty (one copy more), 2 long bursts (all copies) */
    wzp_ts changed_at; /* last change of settings */
    wzp_ts calm_since; /* the window has been under the down threshold since; NEVER if not */
    struct {
        uint32_t slots, missing, runs, unrepaired;
    } win[WZP_ADAPT_WINDOW];
    unsigned head, n;
    double loss;  /* window loss fraction, after the last report */
    double burst; /* window mean run */
    wzp_adapt_settings cur;
} wzp_adapt;

/* enabled false: fixed level-0 settings (the reference to compare against). */
void wzp_adapt_init(wzp_adapt *a, bool enabled, wzp_ts now);
/* Takes one report; returns true when the settings changed (apply wzp_adapt_get). */
bool wzp_adapt_on_report(wzp_adapt *a, const wzp_call_report *r, wzp_ts now);
wzp_adapt_settings wzp_adapt_get(const wzp_adapt *a);
/* Parity mode: where the table asks for copies, the XOR parity of the
 * copies + 1 frames before each datagram goes instead (up to 4, primary at
 * the one-copy bitrate: the parity costs about one frame). */
void wzp_adapt_set_parity(wzp_adapt *a, bool on);

#endif
