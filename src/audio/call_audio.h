/*
 * The sound of one call on live devices: microphone -> voice processing ->
 * the call's encoder, and decoded audio -> the echo canceller's reference and
 * the speaker. The glue between src/audio/audio_io.h (devices, threads) and
 * src/audio/voice_proc.h (sans-I/O DSP).
 *
 * Echo alignment: each played frame is handed to the canceller when it is
 * queued for the speaker, and each microphone frame is processed when the call
 * takes it, both on the call's thread; the echo of a played frame reaches the
 * canceller later by the playback queue, the device buffers, the room and the
 * capture queue (together well under the canceller's 200 ms tail).
 *
 * Call thread only; created when a call first needs its devices.
 */
#ifndef WZP_AUDIO_CALL_AUDIO_H
#define WZP_AUDIO_CALL_AUDIO_H

#include <stdbool.h>
#include <stdint.h>

#include <wzp/audio.h>

#include "common/time.h"
#include "media/audio_format.h"

typedef struct wzp_call_audio wzp_call_audio;

/* Opens what the call needs: capture and/or playback. WZP_ERR_DEVICE when no backend is usable,
 * WZP_ERR_NOMEM, WZP_ERR_AUDIO (voice processing refused); *out set only on success. */
int wzp_call_audio_new(wzp_call_audio **out, const wzp_audio_config *cfg, bool capture,
                       bool playback);
void wzp_call_audio_free(wzp_call_audio *ca);
/* The next 20 ms from the microphone, processed. Returns the voice detector's decision (true
 * when detection is off). */
bool wzp_call_audio_capture(wzp_call_audio *ca, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], wzp_ts now);
/* 20 ms for the speaker (and the echo canceller's reference). */
void wzp_call_audio_play(wzp_call_audio *ca, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES]);
/* The speaker's volume, percent (clamped to WZP_VOLUME_MAX). */
void wzp_call_audio_set_volume(wzp_call_audio *ca, unsigned pct);
void wzp_call_audio_get_stats(wzp_call_audio *ca, wzp_audio_stats *out);

#endif
