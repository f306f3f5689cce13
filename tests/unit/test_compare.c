/* NCC search: known delays are found exactly, unrelated signals score low,
 * and the tone / probe generators behave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "media/audio_format.h"
#include "media/compare.h"
#include "media/tempo.h"
#include "media/tone.h"

static float *probe(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof(*x));
    assert_non_null(x);
    wzp_probe_signal s;
    wzp_probe_signal_init(&s, seed, 0.5f);
    wzp_probe_signal_fill(&s, x, n);
    return x;
}

/* rec = silence for `delay` samples, then gain * ref (+ optional noise). */
static float *delayed(const float *ref, size_t n, size_t delay, float gain, float noise,
                      size_t *nrec)
{
    *nrec = n + delay;
    float *y = calloc(*nrec, sizeof(*y));
    assert_non_null(y);
    uint32_t r = 12345;
    for (size_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        y[i + delay] = gain * ref[i] + noise * ((float)(r >> 8) / 8388608.0f - 1.0f);
    }
    return y;
}

static void test_known_delays(void **state)
{
    (void)state;
    const size_t n = 2 * WZP_AUDIO_RATE; /* 2 s */
    float *ref = probe(n, 7);
    const size_t delays[] = {0, 37, 2881, 24000 - 1};
    for (size_t d = 0; d < sizeof(delays) / sizeof(delays[0]); d++) {
        size_t nrec;
        float *rec = delayed(ref, n, delays[d], 0.3f, 0.01f, &nrec);
        wzp_ncc_result res;
        assert_int_equal(wzp_ncc_search(ref, n, rec, nrec, -4800, 26000, 0, &res), 0);
        assert_int_equal(res.lag, (long)delays[d]);
        assert_true(res.ncc > 0.95);
        free(rec);
    }
    /* Recording earlier than the reference: negative lag. */
    wzp_ncc_result res;
    assert_int_equal(wzp_ncc_search(ref + 500, n - 500, ref, n, -2000, 2000, 0, &res), 0);
    assert_int_equal(res.lag, 500);
    assert_int_equal(wzp_ncc_search(ref, n, ref + 500, n - 500, -2000, 2000, 0, &res), 0);
    assert_int_equal(res.lag, -500);
    assert_true(res.ncc > 0.999);
    free(ref);
}

static void test_unrelated_is_low(void **state)
{
    (void)state;
    const size_t n = 3 * WZP_AUDIO_RATE;
    float *a = probe(n, 1);
    float *b = probe(n, 2);
    float *noise = malloc(n * sizeof(*noise));
    uint32_t r = 99;
    for (size_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        noise[i] = (float)(r >> 8) / 8388608.0f - 1.0f;
    }
    wzp_ncc_result res;
    assert_int_equal(wzp_ncc_search(a, n, b, n, 0, 24000, 0, &res), 0);
    printf("# probe vs other probe: ncc %.3f\n", res.ncc);
    assert_true(res.ncc < 0.3);
    assert_int_equal(wzp_ncc_search(a, n, noise, n, 0, 24000, 0, &res), 0);
    printf("# probe vs noise: ncc %.3f\n", res.ncc);
    assert_true(res.ncc < 0.3);
    /* The probe has no repeat: away from lag 0 it hardly matches itself. */
    assert_true(wzp_ncc_at(a, n, a, n, 0) > 0.9999);
    assert_true(fabs(wzp_ncc_at(a, n, a, n, 960)) < 0.4);
    assert_true(fabs(wzp_ncc_at(a, n, a, n, 48000)) < 0.3);
    free(a);
    free(b);
    free(noise);
}

/* A recording time-scaled the way the playout buffer sheds delay (libsonic,
 * 10 and 25 % faster) matches in 20 ms pieces at their own lags, where one
 * lag for a 200 ms window does not fit; an unrelated signal still scores low
 * piecewise. */
static void test_piecewise_follows_time_scaling(void **state)
{
    (void)state;
    const size_t n = WZP_AUDIO_RATE, win = 9600, at = 19200;
    float *ref = probe(n, 7), *other = probe(n, 8);
    static const float speeds[] = {1.1f, 1.25f};
    for (size_t k = 0; k < 2; k++) {
        wzp_tempo *t = NULL;
        assert_int_equal(wzp_tempo_new(&t), 0);
        int16_t *pcm = calloc(2 * n, sizeof(*pcm));
        float *rec = calloc(2 * n, sizeof(*rec));
        assert_non_null(pcm);
        assert_non_null(rec);
        size_t nrec = 0;
        for (size_t f = 0; f + WZP_AUDIO_FRAME_SAMPLES <= n; f += WZP_AUDIO_FRAME_SAMPLES) {
            int16_t in[WZP_AUDIO_FRAME_SAMPLES];
            for (size_t i = 0; i < WZP_AUDIO_FRAME_SAMPLES; i++)
                in[i] = (int16_t)lrintf(ref[f + i] * 32767.0f);
            nrec +=
                wzp_tempo_feed(t, in, WZP_AUDIO_FRAME_SAMPLES, speeds[k], pcm + nrec, 2 * n - nrec);
        }
        for (size_t i = 0; i < nrec; i++)
            rec[i] = pcm[i] / 32768.0f;
        wzp_ncc_result whole;
        assert_int_equal(wzp_ncc_search(ref + at, win, rec, nrec, 0, (long)at, win, &whole), 0);
        double pn = 0, po = 0;
        long end = 0;
        assert_int_equal(
            wzp_ncc_piecewise(ref + at, win, rec, nrec, whole.lag, 960, 480, &pn, &end), 0);
        assert_int_equal(
            wzp_ncc_piecewise(other + at, win, rec, nrec, whole.lag, 960, 480, &po, NULL), 0);
        printf("# %.2fx: one lag %.1f ms ncc %.3f; piecewise ncc %.3f (lag %.1f .. %.1f ms); "
               "unrelated %.3f\n",
               speeds[k], whole.lag / 48.0, whole.ncc, pn, whole.lag / 48.0, end / 48.0, po);
        assert_true(pn > 0.9);
        assert_true(pn > whole.ncc);
        assert_true(end < whole.lag); /* played faster: the lag shrinks */
        assert_true(po < 0.35);
        free(pcm);
        free(rec);
        wzp_tempo_free(t);
    }
    double v;
    assert_int_equal(wzp_ncc_piecewise(ref, 100, ref, n, 0, 960, 10, &v, NULL), WZP_ERR_INVALID);
    assert_int_equal(wzp_ncc_piecewise(ref, n, ref, n, 0, 0, 10, &v, NULL), WZP_ERR_INVALID);
    free(ref);
    free(other);
}

static void test_args(void **state)
{
    (void)state;
    float x[100] = {0};
    wzp_ncc_result res;
    assert_int_equal(wzp_ncc_search(NULL, 10, x, 10, 0, 1, 0, &res), WZP_ERR_INVALID);
    assert_int_equal(wzp_ncc_search(x, 100, x, 100, 5, 1, 0, &res), WZP_ERR_INVALID);
    /* No lag leaves the required overlap. */
    assert_int_equal(wzp_ncc_search(x, 100, x, 100, 90, 99, 50, &res), WZP_ERR_INVALID);
    /* Silence correlates with nothing. */
    assert_int_equal(wzp_ncc_search(x, 100, x, 100, -10, 10, 0, &res), 0);
    assert_true(res.ncc == 0);
    assert_true(wzp_ncc_at(x, 100, x, 100, 1000) == 0);
}

static void test_tone_generator(void **state)
{
    (void)state;
    /* Frame-wise generation equals one long run (phase continuity), and a
     * 1 kHz tone has 2 zero crossings per ms. */
    wzp_tone a, b;
    wzp_tone_init(&a, 1000, 0.5f);
    wzp_tone_init(&b, 1000, 0.5f);
    float whole[4800], parts[4800];
    wzp_tone_fill(&a, whole, 4800);
    for (int k = 0; k < 5; k++)
        wzp_tone_fill(&b, parts + k * 960, 960);
    assert_memory_equal(whole, parts, sizeof(whole));
    int crossings = 0;
    float peak = 0;
    for (int i = 1; i < 4800; i++) {
        crossings += (whole[i - 1] < 0) != (whole[i] < 0);
        if (fabsf(whole[i]) > peak)
            peak = fabsf(whole[i]);
    }
    assert_true(crossings >= 199 && crossings <= 201);
    assert_true(peak > 0.49f && peak <= 0.5f);
    int16_t s[960];
    wzp_tone_init(&a, 440, 1.0f);
    wzp_tone_fill_s16(&a, s, 960);
    int16_t mx = 0;
    for (int i = 0; i < 960; i++)
        if (s[i] > mx)
            mx = s[i];
    assert_true(mx > 32000);

    /* Same seed, same probe signal, also frame-wise. */
    wzp_probe_signal p, q;
    wzp_probe_signal_init(&p, 5, 0.4f);
    wzp_probe_signal_init(&q, 5, 0.4f);
    wzp_probe_signal_fill(&p, whole, 4800);
    for (int k = 0; k < 5; k++)
        wzp_probe_signal_fill(&q, parts + k * 960, 960);
    assert_memory_equal(whole, parts, sizeof(whole));
}

WZP_TEST_MAIN(NULL, NULL, test_known_delays, test_unrelated_is_low,
              test_piecewise_follows_time_scaling, test_args, test_tone_generator)
