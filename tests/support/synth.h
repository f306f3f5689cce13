/*
 * Deterministic synthetic audio for tests and benches (48 kHz): a xorshift
 * noise source, speech-like syllables, white noise, and a loudspeaker ->
 * microphone room path. Same seed, same samples, on every machine.
 */
#ifndef WZP_TESTS_SYNTH_H
#define WZP_TESTS_SYNTH_H

#include <stddef.h>
#include <stdint.h>

uint32_t wzp_synth_rng(uint32_t *s);
/* Uniform in -1..1. */
double wzp_synth_uni(uint32_t *s);

/* Syllables: 120-300 ms bursts with a sine envelope, 30-90 ms gaps; inside,
 * 100 Hz..3 kHz noise plus the first harmonics of a gliding 100-220 Hz
 * pitch. Adds nothing in the gaps (writes 0). */
void wzp_synth_syllables(float *x, size_t n, uint32_t seed, double peak);
/* Uniform white noise of amplitude amp (RMS amp / sqrt 3). */
void wzp_synth_white(float *x, size_t n, uint32_t seed, double amp);
/* Steady background noise at `dbfs` RMS (re int16 full scale), low-passed
 * (~3 kHz two-pole, like room / fan noise) so a wideband codec keeps it. */
void wzp_synth_noise_floor(float *x, size_t n, uint32_t seed, double dbfs);

/* Rounds and saturates to int16. */
int16_t wzp_synth_s16(double v);
/* out = a + b + c (b, c may be NULL), saturated. */
void wzp_synth_mix_s16(const float *a, const float *b, const float *c, int16_t *out, size_t n);

/* A loudspeaker -> microphone path: `delay_ms` of pure delay, a direct path
 * of amplitude `gain`, then a reverberant tail of sparse reflections with
 * random signs whose envelope falls 60 dB over `rt60_ms`, starting at
 * `gain` / 3. */
typedef struct wzp_synth_room {
    int delay_ms;
    double gain;
    int rt60_ms;
    uint32_t seed;
} wzp_synth_room;

/* y = x through the room (y must not alias x). 0, or WZP_ERR_INVALID /
 * WZP_ERR_NOMEM. */
int wzp_synth_room_echo(const wzp_synth_room *room, const float *x, float *y, size_t n);

/* Mean power of x[a..b) (float) or y[a..b) (int16, when x is NULL). */
double wzp_synth_power(const float *x, const int16_t *y, size_t a, size_t b);
/* A mean power as dB re int16 full scale (-200 for silence). */
double wzp_synth_dbfs(double power);

#endif
