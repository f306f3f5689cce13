/*
 * Test signals at 48 kHz, generated frame by frame and phase-continuous
 * across calls, so any frame size (normally WZP_AUDIO_FRAME_SAMPLES) gives
 * the same stream.
 *
 * A pure sine is the simplest check of a codec path, but it correlates with
 * itself at every period, so it cannot measure delay. The "probe" signal
 * can: a phase-continuous tone whose frequency hops every 40 ms to a
 * pseudo-random value in 250-1250 Hz, with a slow amplitude modulation. It
 * is tonal (Opus codes it faithfully, unlike white noise, whose waveform a
 * perceptual codec does not preserve) yet never repeats, so its
 * autocorrelation has one clear peak.
 */
#ifndef WZP_MEDIA_TONE_H
#define WZP_MEDIA_TONE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wzp_tone {
    double phase; /* radians, kept in [0, 2pi) */
    double step;  /* radians per sample */
    float amp;    /* peak, 0..1 of full scale */
} wzp_tone;

/* hz in (0, 24000), amp in [0, 1]. */
void wzp_tone_init(wzp_tone *t, double hz, float amp);
void wzp_tone_fill(wzp_tone *t, float *out, size_t n);
void wzp_tone_fill_s16(wzp_tone *t, int16_t *out, size_t n);

typedef struct wzp_probe_signal {
    uint64_t rng;
    double phase, step;
    uint64_t pos;      /* samples produced */
    unsigned seg_left; /* samples until the next frequency hop */
    float amp;
} wzp_probe_signal;

/* Same seed, same signal. amp is the peak. */
void wzp_probe_signal_init(wzp_probe_signal *s, uint64_t seed, float amp);
void wzp_probe_signal_fill(wzp_probe_signal *s, float *out, size_t n);
void wzp_probe_signal_fill_s16(wzp_probe_signal *s, int16_t *out, size_t n);

#endif
