/*
 * Live sound devices for one call: a microphone and a speaker, each driven by
 * its own thread, met by the call's (event-loop) thread through lock-free
 * rings. Runtime layer: this is where threads, the monotonic clock and the
 * backends of src/audio/backend.h live; everything it decides with is
 * sans-I/O (src/audio/pcm_ring.h, src/audio/drift.h).
 *
 *   capture:  device thread: read 10 ms periods -> ring
 *             call thread:   ring -> drift (device clock -> call clock) -> 20 ms frame
 *   playback: call thread:   20 ms frame -> ring
 *             device thread: ring -> drift (call clock -> device clock) -> write periods
 *
 * Each drift compensator lives on the thread that pulls from it, so neither
 * is shared. The call thread never blocks: a missing device or an empty ring
 * gives silence, a full ring drops (and counts) frames.
 *
 * Devices are opened by their threads, so wzp_audio_io_new returns at once and
 * a slow sound server never stalls networking. A device that cannot be opened
 * or vanishes mid-call (USB headset unplugged, its sink unloaded) is replaced
 * by the backend's default device; while there is none the thread retries with
 * backoff and the call goes on in silence. A device that never blocks (ALSA's
 * file/null plugins) is paced to real time from the monotonic clock.
 *
 * The device threads do not allocate, lock or log while streaming; they do on
 * the exceptional open/lost path only.
 */
#ifndef WZP_AUDIO_AUDIO_IO_H
#define WZP_AUDIO_AUDIO_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "audio/backend.h"
#include "common/time.h"
#include "media/audio_format.h"

typedef struct wzp_audio_io_config {
    const char *backend; /* NULL / "auto", "pulse", "alsa" */
    const char *input;   /* device names; NULL or "" = the default device */
    const char *output;
    bool capture, playback; /* which directions run */
    unsigned period_ms;     /* device read/write size; 0 = 10 */
    unsigned latency_ms;    /* device buffer asked for; 0 = 20 */
    wzp_ts capture_target;  /* drift FIFO levels; 0 = 10 ms capture, 30 ms playback */
    wzp_ts playback_target;
} wzp_audio_io_config;

typedef struct wzp_audio_io_stats {
    const char *backend;            /* "pulse", "alsa", or "" if none */
    char input[WZP_AUDIO_NAME_MAX]; /* device streaming now ("" while opening or lost) */
    char output[WZP_AUDIO_NAME_MAX];
    uint64_t captured, played;   /* periods captured, 20 ms frames played, through the rings */
    uint64_t capture_overruns;   /* mic frames dropped: the call thread lagged */
    uint64_t capture_underruns;  /* call ticks short of mic audio (silence sent) */
    uint64_t playback_overruns;  /* frames dropped: the speaker thread lagged */
    uint64_t playback_underruns; /* speaker periods short of audio (silence) */
    uint64_t device_losses;      /* device errors mid-stream (then reopened) */
    uint64_t open_failures;      /* opens that failed (then default / retry) */
    uint64_t stalls;             /* device I/O that timed out (then retried) */
    double capture_drift_ppm, playback_drift_ppm; /* device clock vs call clock estimates */
    double capture_level_ms, playback_level_ms;   /* drift FIFO levels now */
    double playback_device_ms;                    /* the backend's own queued playback */
} wzp_audio_io_stats;

typedef struct wzp_audio_io wzp_audio_io;

/* Both directions, default devices and backend, 10 ms periods, 20 ms device buffers. */
void wzp_audio_io_config_default(wzp_audio_io_config *cfg);
/* cfg NULL: defaults. Starts the device threads. WZP_ERR_DEVICE when no backend is usable
 * (none named and none available, or an unknown name); WZP_ERR_NOMEM; *out set only on
 * success. */
int wzp_audio_io_new(wzp_audio_io **out, const wzp_audio_io_config *cfg);
/* Stops and joins the device threads, closes the devices. */
void wzp_audio_io_free(wzp_audio_io *io);

/* Call thread: the next 20 ms of microphone (silence while there is none). */
void wzp_audio_io_capture(wzp_audio_io *io, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], wzp_ts now);
/* Call thread: 20 ms for the speaker. */
void wzp_audio_io_play(wzp_audio_io *io, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES]);
/* Call thread. */
void wzp_audio_io_get_stats(wzp_audio_io *io, wzp_audio_io_stats *out);

#endif
