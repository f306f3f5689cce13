/*
 * The microphone path's voice processing, sans-I/O: acoustic echo
 * cancellation (speexdsp MDF), then noise suppression + automatic gain +
 * residual echo suppression and voice activity detection (speexdsp
 * preprocessor), on 20 ms frames at 48 kHz.
 *
 * Why here and sans-I/O: the canceller only needs the two signals in step,
 * not a device, so the device backends (and tests, on a virtual clock) feed
 * it the same way. Each tick the caller hands over what the speaker plays
 * (wzp_voice_proc_far) and then the microphone frame captured in that tick
 * (wzp_voice_proc_near). The echo reaches the microphone later than the far
 * frame was handed over; the adaptive filter covers that delay plus the
 * room's tail up to filter_ms, so the caller must not feed far frames late
 * (a far frame after its echo is uncancellable) and should keep the
 * device-side delay well under filter_ms.
 *
 * Far frames are queued (a few frames deep) so a far-side burst or a missed
 * near tick does not lose alignment; each near frame consumes one far frame,
 * or silence when none is queued (counted: the backend is out of step).
 *
 * Latency: the canceller adds none; denoise/AGC delay the output by one
 * 10 ms block (overlap-add). VAD alone runs on a copy and leaves the signal
 * untouched.
 *
 * Not thread-safe: one thread (the call's audio thread, or the tick that
 * drains the capture ring) owns it. near() never allocates.
 */
#ifndef WZP_AUDIO_VOICE_PROC_H
#define WZP_AUDIO_VOICE_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include "media/audio_format.h"

typedef struct wzp_voice_proc_config {
    bool aec;      /* echo cancellation (needs far frames) */
    bool denoise;  /* noise suppression; with aec also residual echo suppression */
    bool agc;      /* automatic gain control */
    bool vad;      /* voice activity reported per frame */
    int filter_ms; /* echo tail the canceller models; 0 = 200 */
    int agc_level; /* AGC target, int16 RMS-ish level; 0 = 8000 */
    int far_queue; /* far frames queued at most; 0 = 4 */
} wzp_voice_proc_config;

typedef struct wzp_voice_proc_stats {
    uint64_t frames;       /* near frames processed */
    uint64_t voice_frames; /* of which VAD said voice */
    uint64_t far_frames;   /* far frames handed in */
    uint64_t far_missing;  /* near frames processed against silence (no far queued) */
    uint64_t far_dropped;  /* far frames dropped, queue full (oldest dropped) */
} wzp_voice_proc_stats;

typedef struct wzp_voice_proc wzp_voice_proc;

/* Every stage on, 200 ms tail. */
void wzp_voice_proc_config_default(wzp_voice_proc_config *cfg);
/* cfg NULL: defaults. WZP_ERR_INVALID, WZP_ERR_NOMEM, WZP_ERR_AUDIO (speexdsp
 * refused). *out set only on success. */
int wzp_voice_proc_new(wzp_voice_proc **out, const wzp_voice_proc_config *cfg);
void wzp_voice_proc_free(wzp_voice_proc *vp);

/* What the speaker plays now, one frame. Ignored (not counted) with aec off. */
void wzp_voice_proc_far(wzp_voice_proc *vp, const int16_t far[WZP_AUDIO_FRAME_SAMPLES]);

/* One microphone frame in, the processed frame out (out may equal mic).
 * *voice (may be NULL) is the VAD decision, true when vad is off: speexdsp's
 * speech probability, and the frame (after echo cancellation) at least 6 dB
 * over a tracked noise floor. It drives the sender's DTX
 * (wzp_media_tx_frame_vad). With every
 * stage off out is mic, bit for bit. Returns 0. */
int wzp_voice_proc_near(wzp_voice_proc *vp, const int16_t mic[WZP_AUDIO_FRAME_SAMPLES],
                        int16_t out[WZP_AUDIO_FRAME_SAMPLES], bool *voice);

/* Forget the echo path and noise estimate (e.g. the output device changed). */
void wzp_voice_proc_reset(wzp_voice_proc *vp);

void wzp_voice_proc_get_stats(const wzp_voice_proc *vp, wzp_voice_proc_stats *out);

#endif
