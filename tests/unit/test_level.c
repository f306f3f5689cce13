/*
 * Signal level (src/audio/level.h) and the ring tones (src/audio/ring_tone.h),
 * sans-I/O: the meter's reading and release, the volume's gain, ramp and
 * saturation, the tones' cadences, frequencies and click-free edges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <math.h>
#include <stdlib.h>

#include "audio/level.h"
#include "audio/ring_tone.h"
#include "media/audio_format.h"

#define N WZP_AUDIO_FRAME_SAMPLES

static void sine(int16_t *x, size_t n, double hz, double peak)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (int16_t)lrint(peak * 32767 * sin(2 * M_PI * hz * (double)i / WZP_AUDIO_RATE));
}

static void test_meter_reads_rms_and_releases_slowly(void **state)
{
    (void)state;
    int16_t x[N], zero[N] = {0};
    wzp_level_meter m;
    wzp_level_meter_init(&m);
    assert_true(m.db <= WZP_LEVEL_FLOOR_DB);
    sine(x, N, 1000, 0.5); /* RMS 0.5/sqrt 2: -9.03 dBFS */
    wzp_level_meter_feed(&m, x, N, 20);
    assert_true(fabs(m.db - -9.03) < 0.1);
    /* Silence: 20 dB per second, not at once. */
    for (int i = 0; i < 25; i++) /* 0.5 s */
        wzp_level_meter_feed(&m, zero, N, 20);
    assert_true(fabs(m.db - -19.03) < 0.1);
    for (int i = 0; i < 500; i++)
        wzp_level_meter_feed(&m, zero, N, 20);
    assert_true(m.db == WZP_LEVEL_FLOOR_DB);
    /* A louder frame shows at once. */
    wzp_level_meter_feed(&m, x, N, 20);
    assert_true(fabs(m.db - -9.03) < 0.1);
}

static void test_volume_gain_ramp_and_saturation(void **state)
{
    (void)state;
    int16_t x[N], y[N];
    wzp_volume v;
    wzp_volume_init(&v);
    sine(x, N, 1000, 0.5);
    wzp_volume_apply(&v, x, y, N);
    assert_memory_equal(x, y, sizeof(x)); /* 100 %: untouched */

    wzp_volume_set(&v, 50);
    wzp_volume_apply(&v, x, y, N); /* the ramp: from 1 to 0.5 across the frame */
    assert_true(abs(y[N / 4] - x[N / 4]) < abs(x[N / 4]) / 4 + 2);
    assert_true(abs(y[N - 1] * 2 - x[N - 1]) <= 2);
    wzp_volume_apply(&v, x, y, N); /* then 0.5 flat */
    for (size_t i = 0; i < N; i++)
        assert_true(abs(y[i] * 2 - x[i]) <= 2);

    wzp_volume_set(&v, 1000); /* clamped */
    assert_int_equal(v.pct, WZP_VOLUME_MAX);
    /* Beyond full scale: saturated, never wrapped. */
    int16_t loud[4] = {30000, -30000, 20000, -20000}, out[4];
    wzp_volume v2;
    wzp_volume_init(&v2);
    wzp_volume_set(&v2, 200);
    wzp_volume_apply(&v2, loud, out, 4);
    wzp_volume_apply(&v2, loud, out, 4);
    assert_int_equal(out[0], 32767);
    assert_int_equal(out[1], -32768);
    assert_int_equal(out[2], 32767);
    assert_int_equal(out[3], -32768);
}

/* Power of frequency hz in x (Goertzel), as a share of x's power. */
static double share_at(const int16_t *x, size_t n, double hz)
{
    double k = 2 * cos(2 * M_PI * hz / WZP_AUDIO_RATE), s1 = 0, s2 = 0, p = 0;
    for (size_t i = 0; i < n; i++) {
        double s0 = x[i] + k * s1 - s2;
        s2 = s1;
        s1 = s0;
        p += (double)x[i] * x[i];
    }
    return p > 0 ? (s1 * s1 + s2 * s2 - k * s1 * s2) * 2 / ((double)n * p) : 0;
}

/* Fills seconds of the tone; returns the largest sample-to-sample step. */
static int ring_run(wzp_ring_kind kind, int16_t *x, size_t n)
{
    wzp_ring_tone t;
    wzp_ring_tone_init(&t, kind, 100);
    for (size_t i = 0; i < n; i += N)
        wzp_ring_tone_fill(&t, x + i, N);
    int step = 0;
    for (size_t i = 1; i < n; i++)
        if (abs(x[i] - x[i - 1]) > step)
            step = abs(x[i] - x[i - 1]);
    return step;
}

static void test_ring_cadences_and_tones(void **state)
{
    (void)state;
    const size_t n = 6 * WZP_AUDIO_RATE;
    int16_t *x = calloc(n, sizeof(*x));
    assert_non_null(x);

    /* Incoming: 0.4 on, 0.2 off, 0.4 on, 2 off; 400 + 450 Hz. */
    int step = ring_run(WZP_RING_INCOMING, x, n);
    const size_t ms = WZP_AUDIO_RATE / 1000;
    assert_true(wzp_ring_tone_on_at(WZP_RING_INCOMING, 100 * ms));
    assert_false(wzp_ring_tone_on_at(WZP_RING_INCOMING, 500 * ms));
    assert_true(wzp_ring_tone_on_at(WZP_RING_INCOMING, 700 * ms));
    assert_false(wzp_ring_tone_on_at(WZP_RING_INCOMING, 1500 * ms));
    assert_true(wzp_ring_tone_on_at(WZP_RING_INCOMING, 3100 * ms)); /* next period */
    for (size_t i = 1000 * ms + 1; i < 3000 * ms; i++)
        assert_int_equal(x[i], 0);
    double a = share_at(x, 400 * ms, 400), b = share_at(x, 400 * ms, 450);
    assert_true(a > 0.3 && b > 0.3 && a + b > 0.8);
    /* -12 dBFS peaks at 100 %, and no click: a 400+450 Hz pair at that level moves at most
     * ~2 * 2pi * 450 / 48000 * 8200 per sample, the fades less. */
    int peak = 0;
    for (size_t i = 0; i < n; i++)
        if (abs(x[i]) > peak)
            peak = abs(x[i]);
    assert_true(peak > 7000 && peak <= 8300);
    assert_true(step < 1000);

    /* Ringback: 425 Hz, 1 s on, 4 s off. */
    step = ring_run(WZP_RING_BACK, x, n);
    assert_true(wzp_ring_tone_on_at(WZP_RING_BACK, 900 * ms));
    assert_false(wzp_ring_tone_on_at(WZP_RING_BACK, 1100 * ms));
    assert_true(wzp_ring_tone_on_at(WZP_RING_BACK, 5100 * ms));
    assert_true(share_at(x + 100 * ms, 800 * ms, 425) > 0.9);
    for (size_t i = 1000 * ms + 1; i < 5000 * ms; i++)
        assert_int_equal(x[i], 0);
    assert_true(step < 600);
    free(x);
}

WZP_TEST_MAIN(NULL, NULL, test_meter_reads_rms_and_releases_slowly,
              test_volume_gain_ramp_and_saturation, test_ring_cadences_and_tones)
