/*
 * Clock drift compensation between decoded 20 ms frames and an audio device.
 * Sans-I/O: no threads, clocks or devices; every call takes `now` (the
 * caller's monotonic clock, the same one for push and pull).
 *
 * The network side pushes decoded PCM (48 kHz mono, normally one 960-sample
 * frame per push) at the sender's clock; the device side pulls exactly n
 * samples at each tick of its own clock. Between them sits a FIFO and a
 * speexdsp resampler whose ratio (input consumed per output sample, within a
 * few hundred ppm of 1) holds the FIFO's level at a target. (It is two
 * speexdsp resamplers in cascade, a fixed one and a steered one, so that no
 * ratio ever crosses 1:1, where speexdsp switches filters with a click; see
 * drift.c.)
 *
 * - The level is a time-weighted moving average (about 1 s) of the FIFO
 *   fill, updated at every push and pull, so the push/pull sawtooth does not
 *   bias it whatever the phase between the two clocks.
 * - After each start the ratio holds for 1 s while the mean level is
 *   measured; the loop then holds that level (0.5..1.5 x target), so the
 *   push/pull phase at the start is not mistaken for drift.
 * - A PI controller (time constant 20 s) steers the ratio from the level
 *   error, bounded by max_ppm: in normal operation the pitch moves by less
 *   than 0.1 % (inaudible) and the signal stays phase-continuous: no clicks.
 * - The ratio applied to the resampler is quantized (24.4 ppm) and only
 *   changed when the wanted one moves by hysteresis_ppm or more, so it does
 *   not jitter.
 * - The drift estimate (sender vs device, ppm) is the applied ratio plus the
 *   level's trend, averaged over about 60 s while the loop is in normal
 *   mode and settled.
 * - A level far from the target (|error| > 40 ms, e.g. after a stall and a
 *   burst) switches to catch-up mode: a faster ratio bounded by fast_ppm
 *   (2 %), back to normal below 10 ms; the drift estimate is frozen meanwhile.
 * - Only an extreme excess (level > target + max_excess) drops whole oldest
 *   frames (counted), down to that bound.
 * - An empty FIFO fills the rest of the pull with silence (an underrun,
 *   counted) and rebuffers: silence until the level is back at the target.
 *   The same holds at start.
 *
 * Memory is fixed at creation.
 */
#ifndef WZP_AUDIO_DRIFT_H
#define WZP_AUDIO_DRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/time.h"

#define WZP_DRIFT_DEFAULT_TARGET     WZP_MS(40)
#define WZP_DRIFT_DEFAULT_MAX_EXCESS WZP_MS(200)
#define WZP_DRIFT_DEFAULT_MAX_PPM    1000
#define WZP_DRIFT_DEFAULT_FAST_PPM   20000
#define WZP_DRIFT_DEFAULT_HYST_PPM   40
#define WZP_DRIFT_DEFAULT_QUALITY    4
#define WZP_DRIFT_MAX_PUSH           4800 /* samples per push: 100 ms */

typedef struct wzp_drift_config {
    wzp_ts target;           /* FIFO level to hold; 0 = 40 ms */
    wzp_ts max_excess;       /* frames are dropped above target + this; 0 = 200 ms */
    unsigned max_ppm;        /* normal-mode bound of the ratio's offset from 1; 0 = 1000 */
    unsigned fast_ppm;       /* catch-up bound; 0 = 20000 (2 %) */
    unsigned hysteresis_ppm; /* minimum change of the applied ratio; 0 = 40 */
    int quality;             /* speexdsp resampler quality 1..10; 0 = 4 */
    /* On (re)starting, drop whole oldest frames beyond the target: what piled up while the
       device did not pull is stale (a device that took long to open or stalled), and dropping
       it while still silent is inaudible. Off: it is played, caught up at up to fast_ppm. */
    bool trim_on_start;
} wzp_drift_config;

/* All zero: the defaults above. */
void wzp_drift_config_default(wzp_drift_config *cfg);

typedef struct wzp_drift_stats {
    double ratio_ppm;        /* applied ratio - 1 in ppm (+ = consuming input faster) */
    double drift_ppm;        /* estimate: sender clock vs device clock (+ = sender fast) */
    wzp_ts level;            /* smoothed FIFO level */
    wzp_ts setpoint;         /* the level the loop holds: near the target, see drift.c */
    unsigned fifo;           /* samples in the FIFO now */
    bool buffering;          /* pulls return silence until the level reaches the target */
    bool fast;               /* catch-up mode */
    uint64_t pushed;         /* samples pushed */
    uint64_t pulled;         /* samples pulled (including silence) */
    uint64_t dropped_frames; /* 960-sample frames dropped by the extreme-excess rule */
    uint64_t underruns;      /* pulls that ran out of samples while playing */
    uint64_t ratio_changes;  /* times the resampler's ratio was changed */
} wzp_drift_stats;

typedef struct wzp_drift wzp_drift;

/* NULL cfg = defaults. 0, or WZP_ERR_INVALID / WZP_ERR_NOMEM / WZP_ERR_AUDIO
 * (*out untouched). */
int wzp_drift_new(wzp_drift **out, const wzp_drift_config *cfg);
void wzp_drift_free(wzp_drift *d);

/* Appends n decoded samples (n <= WZP_DRIFT_MAX_PUSH). 0 or WZP_ERR_INVALID. */
int wzp_drift_push(wzp_drift *d, const int16_t *pcm, size_t n, wzp_ts now);

/* Writes exactly n samples to out (silence while buffering or on underrun).
 * Returns the number of those taken from pushed audio. */
size_t wzp_drift_pull(wzp_drift *d, int16_t *out, size_t n, wzp_ts now);

/* Drops everything held and buffers again (the audio queued is stale: the device stalled or
 * was replaced). The drift estimate and the loop's integral stay: the clocks did not change. */
void wzp_drift_flush(wzp_drift *d);
void wzp_drift_get_stats(const wzp_drift *d, wzp_drift_stats *out);

#endif
