#include "support/synth.h"

#include <math.h>
#include <stdlib.h>

#include <wzp/wzp.h>

#include "media/audio_format.h"

#define RATE WZP_AUDIO_RATE

uint32_t wzp_synth_rng(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

double wzp_synth_uni(uint32_t *s)
{
    return (double)wzp_synth_rng(s) / 2147483648.0 - 1.0;
}

void wzp_synth_syllables(float *x, size_t n, uint32_t seed, double peak)
{
    uint32_t s = seed * 2654435761u + 1;
    double lp1 = 0, lp2 = 0, hp_in = 0, hp = 0, phase = 0, f0 = 150;
    size_t i = 0;
    while (i < n) {
        size_t len = (size_t)(RATE * (0.12 + 0.18 * (wzp_synth_uni(&s) + 1) / 2));
        size_t gap = (size_t)(RATE * (0.03 + 0.06 * (wzp_synth_uni(&s) + 1) / 2));
        double amp = peak * (0.5 + 0.25 * (wzp_synth_uni(&s) + 1));
        double f_start = 100 + 60 * (wzp_synth_uni(&s) + 1);
        double f_end = 100 + 60 * (wzp_synth_uni(&s) + 1);
        for (size_t k = 0; k < len + gap && i < n; k++, i++) {
            double w = wzp_synth_uni(&s);
            lp1 += 0.33 * (w - lp1); /* ~3 kHz two-pole low-pass */
            lp2 += 0.33 * (lp1 - lp2);
            hp = 0.987 * (hp + lp2 - hp_in); /* ~100 Hz high-pass */
            hp_in = lp2;
            double v = 0;
            if (k < len) {
                f0 = f_start + (f_end - f_start) * (double)k / (double)len;
                phase += 2 * M_PI * f0 / RATE;
                double harm = 0;
                for (int h = 1; h <= 6; h++)
                    harm += sin(phase * h) / h;
                double env = sin(M_PI * (double)k / (double)len);
                v = amp * env * (2.0 * hp + 0.35 * harm);
            }
            x[i] = (float)v;
        }
    }
}

void wzp_synth_white(float *x, size_t n, uint32_t seed, double amp)
{
    uint32_t s = seed * 2246822519u + 7;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(amp * wzp_synth_uni(&s));
}

void wzp_synth_noise_floor(float *x, size_t n, uint32_t seed, double dbfs)
{
    uint32_t s = seed * 3266489917u + 11;
    double lp1 = 0, lp2 = 0, p = 0;
    for (size_t i = 0; i < n; i++) {
        lp1 += 0.33 * (wzp_synth_uni(&s) - lp1);
        lp2 += 0.33 * (lp1 - lp2);
        x[i] = (float)lp2;
        p += lp2 * lp2;
    }
    /* Scale to the exact level measured, rather than a filter gain formula. */
    double g = n ? 32768.0 * pow(10, dbfs / 20) / sqrt(p / (double)n + 1e-30) : 0;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(x[i] * g);
}

int16_t wzp_synth_s16(double v)
{
    v = lrint(v);
    return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
}

void wzp_synth_mix_s16(const float *a, const float *b, const float *c, int16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = wzp_synth_s16((double)a[i] + (b ? b[i] : 0) + (c ? c[i] : 0));
}

/* Reflections: one per 8-sample bin at a random place in it; sparse keeps a
 * 10 s convolution with a 150 ms tail well under a second. */
#define ROOM_BIN 8

int wzp_synth_room_echo(const wzp_synth_room *room, const float *x, float *y, size_t n)
{
    if (!room || !x || !y || x == y || room->delay_ms < 0 || room->rt60_ms <= 0)
        return WZP_ERR_INVALID;
    size_t delay = (size_t)room->delay_ms * RATE / 1000;
    size_t tail = (size_t)room->rt60_ms * RATE / 1000;
    size_t ntaps = 1 + tail / ROOM_BIN;
    size_t *pos = calloc(ntaps, sizeof(*pos));
    double *h = calloc(ntaps, sizeof(*h));
    if (!pos || !h) {
        free(pos);
        free(h);
        return WZP_ERR_NOMEM;
    }
    uint32_t s = room->seed * 2654435761u + 3;
    pos[0] = delay;
    h[0] = room->gain;
    for (size_t k = 1; k < ntaps; k++) {
        size_t off = k * ROOM_BIN + wzp_synth_rng(&s) % ROOM_BIN;
        double env = pow(10, -3.0 * (double)off / (double)tail); /* -60 dB at rt60 */
        pos[k] = delay + off;
        h[k] = room->gain / 3 * env * (wzp_synth_rng(&s) & 1 ? 1 : -1);
    }
    for (size_t i = 0; i < n; i++) {
        double acc = 0;
        for (size_t k = 0; k < ntaps && pos[k] <= i; k++)
            acc += h[k] * x[i - pos[k]];
        y[i] = (float)acc;
    }
    free(pos);
    free(h);
    return 0;
}

double wzp_synth_power(const float *x, const int16_t *y, size_t a, size_t b)
{
    if (b <= a)
        return 0;
    double p = 0;
    for (size_t i = a; i < b; i++) {
        double v = x ? x[i] : y[i];
        p += v * v;
    }
    return p / (double)(b - a);
}

double wzp_synth_dbfs(double power)
{
    return 10 * log10(power / (32768.0 * 32768.0) + 1e-20);
}
