#include "media/tone.h"

#include <math.h>

#include "media/audio_format.h"

#define TWO_PI (2.0 * M_PI)

#define PROBE_SEG_SAMPLES (WZP_AUDIO_RATE / 25) /* 40 ms between frequency hops */
#define PROBE_MIN_HZ      250.0
#define PROBE_SPAN_HZ     1000.0
#define PROBE_AM_HZ       2.3 /* slow enough to stay tonal, breaks periodicity further */

static int16_t to_s16(float v)
{
    float x = v * 32767.0f;
    if (x > 32767.0f)
        x = 32767.0f;
    if (x < -32768.0f)
        x = -32768.0f;
    return (int16_t)lrintf(x);
}

void wzp_tone_init(wzp_tone *t, double hz, float amp)
{
    t->phase = 0;
    t->step = TWO_PI * hz / WZP_AUDIO_RATE;
    t->amp = amp;
}

static float tone_next(wzp_tone *t)
{
    float v = t->amp * (float)sin(t->phase);
    t->phase += t->step;
    if (t->phase >= TWO_PI)
        t->phase -= TWO_PI;
    return v;
}

void wzp_tone_fill(wzp_tone *t, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = tone_next(t);
}

void wzp_tone_fill_s16(wzp_tone *t, int16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = to_s16(tone_next(t));
}

/* splitmix64: tiny, seedable, good enough to pick frequencies. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void wzp_probe_signal_init(wzp_probe_signal *s, uint64_t seed, float amp)
{
    s->rng = seed;
    s->phase = 0;
    s->step = 0;
    s->pos = 0;
    s->seg_left = 0;
    s->amp = amp;
}

static float probe_next(wzp_probe_signal *s)
{
    if (s->seg_left == 0) {
        double u = (double)(splitmix(&s->rng) >> 11) / 9007199254740992.0; /* [0,1) */
        s->step = TWO_PI * (PROBE_MIN_HZ + u * PROBE_SPAN_HZ) / WZP_AUDIO_RATE;
        s->seg_left = PROBE_SEG_SAMPLES;
    }
    s->seg_left--;
    double env = 0.6 + 0.4 * sin(TWO_PI * PROBE_AM_HZ * (double)s->pos / WZP_AUDIO_RATE);
    float v = s->amp * (float)(env * sin(s->phase));
    s->phase += s->step;
    if (s->phase >= TWO_PI)
        s->phase -= TWO_PI;
    s->pos++;
    return v;
}

void wzp_probe_signal_fill(wzp_probe_signal *s, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = probe_next(s);
}

void wzp_probe_signal_fill_s16(wzp_probe_signal *s, int16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = to_s16(probe_next(s));
}
