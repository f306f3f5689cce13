/*
 * Signal level: a meter for the status line and a volume control for the
 * speaker. Sans-I/O, call thread only; 48 kHz mono 16-bit frames.
 *
 * The meter shows what a person would call "how loud": the RMS of each frame
 * in dBFS, rising at once and falling by at most 20 dB per second (like a VU
 * meter's release), so a word stays visible between two status updates.
 *
 * The volume is a gain in percent (0..WZP_VOLUME_MAX). A change is ramped
 * across one frame, so turning it up or down never clicks; samples saturate
 * instead of wrapping.
 */
#ifndef WZP_AUDIO_LEVEL_H
#define WZP_AUDIO_LEVEL_H

#include <stddef.h>
#include <stdint.h>

#include <wzp/audio.h>

#define WZP_LEVEL_FLOOR_DB (-90.0) /* what silence reads */

typedef struct wzp_level_meter {
    double db; /* shown level, dBFS, >= WZP_LEVEL_FLOOR_DB */
} wzp_level_meter;

void wzp_level_meter_init(wzp_level_meter *m);
/* One frame of n samples lasting frame_ms. */
void wzp_level_meter_feed(wzp_level_meter *m, const int16_t *pcm, size_t n, double frame_ms);

typedef struct wzp_volume {
    unsigned pct;     /* asked for */
    double gain_prev; /* where the last frame's ramp ended */
} wzp_volume;

void wzp_volume_init(wzp_volume *v); /* 100 % */
/* Clamped to 0..WZP_VOLUME_MAX. */
void wzp_volume_set(wzp_volume *v, unsigned pct);
/* out may be in. */
void wzp_volume_apply(wzp_volume *v, const int16_t *in, int16_t *out, size_t n);

#endif
