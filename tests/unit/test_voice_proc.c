/* Voice processing chain on a virtual clock: echo cancellation (ERLE with the
 * canceller on vs off), double-talk keeps the near-end talker, VAD on silence
 * vs syllables, and bit-exact pass-through with every stage off. The signals
 * are synthetic and deterministic: band-limited noise plus a few harmonics,
 * gated and shaped like syllables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/aec_sim.h"
#include "support/synth.h"
#include "support/test_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "audio/voice_proc.h"
#include "media/audio_format.h"
#include "media/compare.h"

#define RATE  WZP_AUDIO_RATE
#define FRAME WZP_AUDIO_FRAME_SAMPLES
#define SECS  10
#define N     (RATE * SECS)

/* Loudspeaker -> microphone: 40 ms delay, -6 dB direct path, 5 ms of
 * decaying reflections. */
#define ECHO_DELAY (RATE * 40 / 1000)
#define ECHO_TAPS  240
static void echo_path(const float *far, float *echo, size_t n)
{
    static double h[ECHO_TAPS];
    uint32_t s = 99;
    h[0] = 0.5;
    for (int k = 1; k < ECHO_TAPS; k++)
        h[k] = 0.12 * exp(-(double)k / 60.0) * wzp_synth_uni(&s);
    for (size_t i = 0; i < n; i++) {
        double acc = 0;
        for (int k = 0; k < ECHO_TAPS; k++) {
            long j = (long)i - ECHO_DELAY - k;
            if (j >= 0)
                acc += h[k] * far[j];
        }
        echo[i] = (float)acc;
    }
}

/* Runs the chain frame by frame: far first, then the mic frame of the same
 * tick. Returns the number of voice frames in [from, to) seconds. */
static int run(const wzp_voice_proc_config *cfg, const int16_t *far, const int16_t *mic,
               int16_t *out, size_t n, double from, double to, wzp_voice_proc_stats *st)
{
    wzp_voice_proc *vp = NULL;
    assert_int_equal(wzp_voice_proc_new(&vp, cfg), 0);
    int voiced = 0;
    for (size_t f = 0; f + FRAME <= n; f += FRAME) {
        if (far)
            wzp_voice_proc_far(vp, far + f);
        bool v = false;
        assert_int_equal(wzp_voice_proc_near(vp, mic + f, out + f, &v), 0);
        double t = (double)f / RATE;
        if (v && t >= from && t < to)
            voiced++;
    }
    if (st)
        wzp_voice_proc_get_stats(vp, st);
    wzp_voice_proc_free(vp);
    return voiced;
}

static double erle_db(const float *echo, const int16_t *out, size_t a, size_t b)
{
    return 10 *
           log10(wzp_synth_power(echo, NULL, a, b) / (wzp_synth_power(NULL, out, a, b) + 1e-9));
}

static wzp_voice_proc_config only(bool aec, bool denoise, bool agc, bool vad)
{
    wzp_voice_proc_config c;
    wzp_voice_proc_config_default(&c);
    c.aec = aec;
    c.denoise = denoise;
    c.agc = agc;
    c.vad = vad;
    return c;
}

typedef struct {
    float *farf, *echo, *noise, *near;
    int16_t *far, *mic, *out;
} bufs;

static int setup(void **state)
{
    bufs *b = calloc(1, sizeof(*b));
    b->farf = calloc(N, sizeof(float));
    b->echo = calloc(N, sizeof(float));
    b->noise = calloc(N, sizeof(float));
    b->near = calloc(N, sizeof(float));
    b->far = calloc(N, sizeof(int16_t));
    b->mic = calloc(N, sizeof(int16_t));
    b->out = calloc(N, sizeof(int16_t));
    wzp_synth_syllables(b->farf, N, 1, 9000);
    echo_path(b->farf, b->echo, N);
    wzp_synth_white(b->noise, N, 3, 20); /* ~-67 dBFS near-end noise floor */
    wzp_synth_syllables(b->near, N, 2, 5000);
    wzp_synth_mix_s16(b->farf, NULL, NULL, b->far, N);
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    bufs *b = *state;
    free(b->farf);
    free(b->echo);
    free(b->noise);
    free(b->near);
    free(b->far);
    free(b->mic);
    free(b->out);
    free(b);
    return 0;
}

static void test_echo_cancelled(void **state)
{
    bufs *b = *state;
    wzp_synth_mix_s16(b->echo, b->noise, NULL, b->mic, N);
    size_t a = (size_t)RATE * (SECS - 3), e = N; /* the last 3 s, after convergence */

    wzp_voice_proc_config c = only(true, false, false, false);
    wzp_voice_proc_stats st;
    run(&c, b->far, b->mic, b->out, N, 0, 0, &st);
    assert_int_equal(st.frames, N / FRAME);
    assert_int_equal(st.far_missing, 0);
    assert_int_equal(st.far_dropped, 0);
    printf("  AEC only: ERLE per second:");
    double first15 = -1;
    for (int sec = 0; sec < SECS; sec++) {
        double v = erle_db(b->echo, b->out, (size_t)sec * RATE, (size_t)(sec + 1) * RATE);
        printf(" %.1f", v);
        if (first15 < 0 && v >= 15)
            first15 = sec + 1;
    }
    double aec = erle_db(b->echo, b->out, a, e);
    printf("\n  AEC only: ERLE %.1f dB over the last 3 s (target 25 dB); >= 15 dB after %.0f s\n",
           aec, first15);
    assert_true(aec >= 15.0);

    c = only(false, false, false, false);
    run(&c, b->far, b->mic, b->out, N, 0, 0, NULL);
    double off = erle_db(b->echo, b->out, a, e);
    printf("  AEC off:  ERLE %.1f dB\n", off);
    assert_true(fabs(off) < 1.0);

    c = only(true, true, false, false);
    run(&c, b->far, b->mic, b->out, N, 0, 0, NULL);
    double res = erle_db(b->echo, b->out, a, e);
    printf("  AEC + denoise/residual echo suppression: ERLE %.1f dB\n", res);
    assert_true(res >= aec - 1.0);

    wzp_voice_proc_config_default(&c);
    run(&c, b->far, b->mic, b->out, N, 0, 0, NULL);
    printf("  full chain (AEC+NS+AGC+VAD): ERLE %.1f dB\n", erle_db(b->echo, b->out, a, e));
}

/* A real room: 30 ms to the microphone, a 150 ms reverberant tail and
 * -50 dBFS of near-end noise; once converged the echo must be 25 dB down. */
static void test_echo_room(void **state)
{
    (void)state;
    wzp_aec_scenario sc;
    wzp_aec_scenario_default(&sc);
    wzp_aec_run r;
    for (int full = 0; full < 2; full++) {
        if (!full)
            sc.vp = only(true, false, false, false);
        else
            wzp_voice_proc_config_default(&sc.vp);
        assert_int_equal(wzp_aec_run_scenario(&sc, &r), 0);
        double erle = wzp_aec_erle_db(&r, (sc.secs - 3) * 1000, sc.secs * 1000);
        printf("  room (30 ms, RT60 150 ms, noise -50 dBFS, echo/noise %.1f dB), %s: ERLE %.1f dB "
               "over the last 3 s, >= 20 dB from %d ms\n",
               r.echo_to_noise_db, full ? "full chain" : "AEC only", erle,
               wzp_aec_converge_ms(&r, 200, 20));
        assert_true(erle >= 25.0);
        wzp_aec_run_free(&r);
    }
}

static void test_double_talk(void **state)
{
    bufs *b = *state;
    /* The near-end talker starts at 5 s, once the canceller has converged. */
    float *near = calloc(N, sizeof(float));
    memcpy(near + RATE * 5, b->near, (N - RATE * 5) * sizeof(float));
    wzp_synth_mix_s16(b->echo, b->noise, near, b->mic, N);
    size_t a = (size_t)RATE * 6, e = N;

    float *of = calloc(N, sizeof(float));
    float *mf = calloc(N, sizeof(float));
    for (size_t i = 0; i < N; i++)
        mf[i] = b->mic[i];
    double ncc_mic = wzp_ncc_at(near + a, e - a, mf + a, e - a, 0);

    wzp_voice_proc_config c = only(true, false, false, false);
    run(&c, b->far, b->mic, b->out, N, 0, 0, NULL);
    for (size_t i = 0; i < N; i++)
        of[i] = b->out[i];
    double ncc_aec = wzp_ncc_at(near + a, e - a, of + a, e - a, 0);
    /* What is left of the echo during double-talk: output minus the talker. */
    printf("  double-talk, AEC only: echo reduced per second from 5 s:");
    for (int sec = 5; sec < SECS; sec++) {
        double r2 = 0, e2 = 0;
        for (size_t i = (size_t)sec * RATE; i < (size_t)(sec + 1) * RATE; i++) {
            double r = of[i] - near[i] - b->noise[i];
            r2 += r * r;
            e2 += (double)b->echo[i] * b->echo[i];
        }
        printf(" %.1f", 10 * log10(e2 / (r2 + 1e-9)));
    }
    printf("\n");
    double resid = 0, echo_p = 0;
    for (size_t i = a; i < e; i++) {
        double r = of[i] - near[i] - b->noise[i];
        resid += r * r;
        echo_p += (double)b->echo[i] * b->echo[i];
    }
    printf("  double-talk, AEC only: NCC(out, near) %.3f (mic %.3f), echo reduced %.1f dB\n",
           ncc_aec, ncc_mic, 10 * log10(echo_p / (resid + 1e-9)));
    assert_true(ncc_aec >= 0.85);
    assert_true(ncc_aec > ncc_mic + 0.1);

    /* Recovery: the talker stops at 7 s; the echo must be cancelled again. */
    memset(near + RATE * 7, 0, (N - RATE * 7) * sizeof(float));
    wzp_synth_mix_s16(b->echo, b->noise, near, b->mic, N);
    run(&c, b->far, b->mic, b->out, N, 0, 0, NULL);
    double rec = erle_db(b->echo, b->out, (size_t)RATE * 8, N);
    printf("  double-talk 5-7 s, then ERLE over 8-10 s: %.1f dB\n", rec);
    assert_true(rec >= 15.0);
    memcpy(near + RATE * 7, b->near + RATE * 2, (N - RATE * 7) * sizeof(float));
    wzp_synth_mix_s16(b->echo, b->noise, near, b->mic, N);

    wzp_voice_proc_config_default(&c);
    run(&c, b->far, b->mic, b->out, N, 0, 0, NULL);
    for (size_t i = 0; i < N; i++)
        of[i] = b->out[i];
    wzp_ncc_result best;
    assert_int_equal(wzp_ncc_search(near + a, e - a, of + a, e - a, -960, 960, 0, &best), 0);
    printf("  double-talk, full chain: NCC(out, near) %.3f at lag %ld\n", best.ncc, best.lag);
    assert_true(best.ncc >= 0.7);
    free(near);
    free(of);
    free(mf);
}

static void test_vad(void **state)
{
    bufs *b = *state;
    /* 3 s of a quiet room, then 7 s of syllables. */
    float *x = calloc(N, sizeof(float));
    wzp_synth_white(x, N, 5, 3);
    for (size_t i = RATE * 3; i < N; i++)
        x[i] += b->near[i];
    wzp_synth_mix_s16(x, NULL, NULL, b->mic, N);
    int fps = RATE / FRAME;

    wzp_voice_proc_config c = only(false, true, false, true);
    int quiet = run(&c, NULL, b->mic, b->out, N, 0.5, 3.0, NULL);
    int talk = run(&c, NULL, b->mic, b->out, N, 3.5, SECS, NULL);
    printf("  VAD (with denoise): quiet %d/%d frames voice, syllables %d/%d\n", quiet,
           (int)(2.5 * fps), talk, (int)((SECS - 3.5) * fps));
    assert_true(quiet <= (int)(0.05 * 2.5 * fps));
    assert_true(talk >= (int)(0.6 * (SECS - 3.5) * fps));

    /* VAD alone reports without touching the signal. */
    c = only(false, false, false, true);
    wzp_voice_proc_stats st;
    quiet = run(&c, NULL, b->mic, b->out, N, 0.5, 3.0, NULL);
    talk = run(&c, NULL, b->mic, b->out, N, 3.5, SECS, &st);
    printf("  VAD alone: quiet %d, syllables %d, total voice %llu/%llu\n", quiet, talk,
           (unsigned long long)st.voice_frames, (unsigned long long)st.frames);
    assert_memory_equal(b->mic, b->out, N * sizeof(int16_t));
    assert_true(quiet <= (int)(0.05 * 2.5 * fps));
    assert_true(talk >= (int)(0.6 * (SECS - 3.5) * fps));
    free(x);
}

static void test_all_off_is_identity(void **state)
{
    bufs *b = *state;
    wzp_synth_mix_s16(b->echo, b->noise, b->near, b->mic, N);
    wzp_voice_proc_config c = only(false, false, false, false);
    memset(b->out, 0, N * sizeof(int16_t));
    wzp_voice_proc_stats st;
    run(&c, b->far, b->mic, b->out, N, 0, 0, &st);
    assert_memory_equal(b->mic, b->out, N * sizeof(int16_t));
    assert_int_equal(st.voice_frames, 0);
    assert_int_equal(st.far_frames, 0);

    /* In place too. */
    wzp_voice_proc *vp;
    assert_int_equal(wzp_voice_proc_new(&vp, &c), 0);
    int16_t f[FRAME];
    memcpy(f, b->mic, sizeof(f));
    bool v = false;
    assert_int_equal(wzp_voice_proc_near(vp, f, f, &v), 0);
    assert_true(v); /* no VAD: everything counts as voice */
    assert_memory_equal(f, b->mic, sizeof(f));
    wzp_voice_proc_free(vp);
}

static void test_far_queue_and_args(void **state)
{
    bufs *b = *state;
    wzp_voice_proc *vp = NULL;
    wzp_voice_proc_config c = only(true, false, false, false);
    c.filter_ms = 5;
    assert_int_equal(wzp_voice_proc_new(&vp, &c), WZP_ERR_INVALID);
    assert_null(vp);
    c.filter_ms = 0;
    c.far_queue = 2;
    assert_int_equal(wzp_voice_proc_new(&vp, &c), 0);
    int16_t out[FRAME];
    for (int k = 0; k < 3; k++)
        wzp_voice_proc_far(vp, b->far + k * FRAME);
    for (int k = 0; k < 3; k++)
        assert_int_equal(wzp_voice_proc_near(vp, b->mic + k * FRAME, out, NULL), 0);
    wzp_voice_proc_reset(vp);
    wzp_voice_proc_stats st;
    wzp_voice_proc_get_stats(vp, &st);
    assert_int_equal(st.far_frames, 3);
    assert_int_equal(st.far_dropped, 1);
    assert_int_equal(st.far_missing, 1);
    assert_int_equal(st.frames, 3);
    wzp_voice_proc_free(vp);
    wzp_voice_proc_free(NULL);

    assert_int_equal(wzp_voice_proc_new(&vp, NULL), 0);
    wzp_voice_proc_reset(vp);
    wzp_voice_proc_free(vp);
}

WZP_TEST_MAIN(setup, teardown, test_echo_cancelled, test_echo_room, test_double_talk, test_vad,
              test_all_off_is_identity, test_far_queue_and_args)
