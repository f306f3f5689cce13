/*
 * Playout (jitter) buffer for 20 ms media frames. Sans-I/O: the caller
 * inserts each received frame with its arrival time and pulls exactly one
 * frame per 20 ms tick of its audio clock.
 *
 * Frames are placed by media timestamp (one slot per 960 samples since the
 * first frame), so reordering and duplicates fall out of the slot layout and
 * timestamp gaps the sender left on purpose (DTX) are not mistaken for loss;
 * sequence numbers only feed the loss statistics. Both are extended from
 * their 16/32-bit wire forms, so wrap-around is invisible.
 *
 * Playout starts target_delay after the first frame arrives. After that a
 * frame whose slot already played is late: dropped and counted. A frame too
 * far ahead for the buffer (a sender jump or a receiver stall), or a run of
 * late frames with nothing buffered (a sender restart), re-anchors playout
 * on it.
 *
 * With `adaptive`, the delay follows the network (NetEQ-style): each
 * frame's arrival offset (arrival time minus its media time) is measured
 * against the smallest offset of the last few seconds (the floor: the
 * fastest a frame got here), and a forgetting histogram of the excess gives
 * the jitter (97th percentile). The target delay above the floor is that
 * jitter plus, with `fec_wait`, one frame, so the packet after a lost one is
 * already buffered when the lost slot plays and its in-band FEC can rebuild
 * it; never below target_delay, never above max_delay. Each pull compares
 * the slot's delay with the target: too much, and playout drops sender-DTX
 * slots outright and asks the caller to play speech faster (tempo +1,
 * time-compression); too little, and it repeats DTX slots and asks for
 * slower speech (tempo -1). Hysteresis keeps it from flapping. For the first
 * 100 arrivals or 2 s (the estimate is young) only an excess over 60 ms is
 * shed and nothing is grown but by holds, unless the wait for repair data
 * (wzp_playout_set_wait) rose. A late frame
 * (a slower path) still holds playout back one tick at once (one concealed
 * frame) when the delay is under the new target. Without `adaptive` the
 * delay stays where the first frame put it. Memory is capacity slots, fixed
 * at creation.
 */
#ifndef WZP_MEDIA_PLAYOUT_H
#define WZP_MEDIA_PLAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/time.h"

#define WZP_PLAYOUT_DEFAULT_DELAY    WZP_MS(60)
#define WZP_PLAYOUT_DEFAULT_CAPACITY 50 /* frames = 1 s */
#define WZP_PLAYOUT_MAX_CAPACITY     1000
#define WZP_PLAYOUT_DEFAULT_MAX      WZP_MS(200)

typedef struct wzp_playout_config {
    wzp_ts target_delay; /* from first arrival to first playout, adaptive minimum; 0 = default
                          * (adaptive with fec_wait: at least one frame + 9 ms) */
    unsigned capacity;   /* slots (20 ms each), > target delay; 0 = default */
    bool adaptive;       /* follow the network's delay (see above) */
    wzp_ts max_delay;    /* adaptive ceiling; 0 = 200 ms (clamped to capacity) */
    bool fec_wait;       /* adaptive: keep one frame more, for the next frame's FEC */
} wzp_playout_config;

/* All zero: the default delay and capacity, not adaptive. */
void wzp_playout_config_default(wzp_playout_config *cfg);

typedef struct wzp_playout_stats {
    uint64_t inserted;  /* insert calls */
    uint64_t received;  /* unique frames accepted in time */
    uint64_t duplicate; /* same slot already buffered or played */
    uint64_t late;      /* arrived after their slot played: dropped */
    uint64_t invalid;   /* timestamp not on a frame boundary, or payload too big */
    uint64_t lost;      /* sequence numbers never seen (RTP-style cumulative loss) */
    uint64_t played;    /* slots pulled with a frame */
    uint64_t concealed; /* slots pulled without one, outside sender DTX */
    uint64_t dtx;       /* slots pulled without one while the sender announced DTX */
    uint64_t dropped;   /* buffered frames discarded by re-anchoring */
    uint64_t resyncs;   /* re-anchors */
    uint64_t trimmed;   /* adaptive: sender-DTX slots skipped to shed delay */
    uint64_t held;      /* adaptive one-frame delay increases (pulled as MISSING) */
    uint64_t redundant; /* buffered copies from later packets (their own never came) */
    uint64_t faster;    /* adaptive: frames pulled with tempo +1 */
    uint64_t slower;    /* adaptive: frames pulled with tempo -1 */
    wzp_ts delay;       /* playout delay of the last pulled slot above the floor (with backlog) */
    wzp_ts target;      /* adaptive target for that delay */
    wzp_ts jitter;      /* 97th percentile of arrival offsets above the floor */
} wzp_playout_stats;

typedef enum wzp_playout_kind {
    WZP_PLAYOUT_WAIT = 0, /* nothing to play yet (no frame, or still buffering): silence */
    WZP_PLAYOUT_FRAME,    /* decode payload */
    WZP_PLAYOUT_MISSING,  /* conceal; next_payload, when set, holds FEC for this frame;
                           * also an adaptive hold, which does not advance playout */
} wzp_playout_kind;

typedef struct wzp_playout_frame {
    wzp_playout_kind kind;
    int64_t index;      /* slot number since the first frame (extended timestamp / 960) */
    uint32_t timestamp; /* wire timestamp of this slot */
    uint16_t seq;       /* FRAME only */
    uint8_t flags;      /* FRAME only: WZP_MEDIA_F_* */
    bool dtx;           /* MISSING only: the sender said it stopped sending */
    bool hold;          /* MISSING only: inserted delay, not a lost frame (no FEC) */
    bool redundant;     /* FRAME only: rebuilt from a later packet's redundant copy */
    /* Valid until the next call on this buffer. */
    const uint8_t *payload;
    size_t len;
    const uint8_t *next_payload; /* MISSING only: the following frame, if buffered */
    size_t next_len;
    /* Adaptive only: +1 play this frame faster (shed delay), -1 slower (add
     * delay), 0 as it is; excess = delay - target when it was pulled. */
    int tempo;
    int64_t excess; /* ns */
} wzp_playout_frame;

typedef struct wzp_playout wzp_playout;

/* NULL cfg = defaults. 0, or WZP_ERR_INVALID / WZP_ERR_NOMEM (*out untouched). */
int wzp_playout_new(wzp_playout **out, const wzp_playout_config *cfg);
void wzp_playout_free(wzp_playout *pb);

/* Offers one received frame. Returns 0 if buffered; 1 if dropped as
 * duplicate, late or invalid (counted); WZP_ERR_INVALID for bad arguments. */
int wzp_playout_insert(wzp_playout *pb, uint16_t seq, uint32_t timestamp, uint8_t flags,
                       const uint8_t *payload, size_t len, wzp_ts now);

/* Offers a redundant copy of an earlier frame (from a later packet, see
 * wire/media_red.h): buffered only into a slot still to play and empty, not
 * counted as received (its own packet was lost) nor as arrival timing.
 * Returns 0 if buffered, 1 if not needed, WZP_ERR_INVALID for bad arguments. */
int wzp_playout_insert_redundant(wzp_playout *pb, uint16_t seq, uint32_t timestamp, uint8_t flags,
                                 const uint8_t *payload, size_t len);
/* Adaptive: frames the target waits for repair data (1 = the next frame's
 * FEC, the default with fec_wait; 2-6 when copies or parity come that many
 * frames later). At most WZP_MEDIA_RED_REACH (6). */
void wzp_playout_set_wait(wzp_playout *pb, unsigned frames);

/* Audio from earlier pulls the caller has not played yet (a time-scaling
 * fifo): the slot pulled now plays that much later, so steering counts it. */
void wzp_playout_set_backlog(wzp_playout *pb, wzp_ts backlog);

/* Pulls the frame for the current tick and advances (except in WAIT). */
void wzp_playout_pull(wzp_playout *pb, wzp_ts now, wzp_playout_frame *out);

/* When playout starts (first arrival + target delay), WZP_TS_NEVER before
 * the first frame. A tick-driven caller starts its 20 ms clock there. */
wzp_ts wzp_playout_start_time(const wzp_playout *pb);
bool wzp_playout_playing(const wzp_playout *pb);
/* Frames buffered from the next slot to play through the newest one. */
unsigned wzp_playout_depth(const wzp_playout *pb);
void wzp_playout_get_stats(const wzp_playout *pb, wzp_playout_stats *out);

#endif
