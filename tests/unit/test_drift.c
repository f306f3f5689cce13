/*
 * Drift compensator on a simulated clock: a sender whose clock runs
 * +-300 ppm off the device's pushes 20 ms frames (with a little jitter), the
 * device pulls 10 ms at each tick of its own clock; nothing sleeps.
 */
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

#include "audio/drift.h"
#include "media/audio_format.h"

#define FRAME   WZP_AUDIO_FRAME_SAMPLES
#define PULL    480 /* device period: 10 ms */
#define TONE_HZ 440.0
#define TONE_A  10000.0
#define PI      3.14159265358979323846

/* Largest sample-to-sample step of the tone itself, and of its second
 * difference (a high-pass: a click shows up there at once). */
#define TONE_SLOPE (TONE_A * 2 * PI * TONE_HZ / WZP_AUDIO_RATE)
#define TONE_D2    (TONE_SLOPE * 2 * PI * TONE_HZ / WZP_AUDIO_RATE)

typedef struct sim_cfg {
    double ppm;       /* sender clock vs device clock */
    double jitter_ms; /* each push is late by [0, jitter_ms) */
    double seconds;
    double settle;             /* s: bounds are checked from here on */
    int quality;               /* 0 = default */
    double stall_at, stall_ms; /* no pushes in [stall_at, +stall_ms), then a burst */
    bool naive;                /* whole-frame drop/duplicate instead of the compensator */
} sim_cfg;

typedef struct sim_out {
    double lvl_min, lvl_max;   /* ms, smoothed level after settling */
    double fifo_min, fifo_max; /* ms, instantaneous FIFO after settling */
    uint64_t underruns_settled, underruns, drops, ratio_changes;
    double ppm_est, ratio_ppm;
    double est_err_max;      /* ppm, from 2 x settle on */
    double max_jump, max_d2; /* after 1 s */
    double recovered;        /* s after the burst until level within 10 ms for good */
    double settled;          /* s until the level stays within the held level +- 5 ms */
    double converged;        /* s until the estimate stays within 10 ppm */
} sim_out;

/* The naive reference: a FIFO that drops the oldest frame when 20 ms over
 * target and repeats the last frame when empty. */
typedef struct naive {
    int16_t buf[48000];
    size_t cnt;
    int16_t last[FRAME];
    bool playing;
    uint64_t drops, dups;
} naive;

static void naive_push(naive *nv, const int16_t *pcm)
{
    memcpy(nv->buf + nv->cnt, pcm, sizeof(int16_t) * FRAME);
    memcpy(nv->last, pcm, sizeof(nv->last));
    nv->cnt += FRAME;
    if (nv->cnt > (size_t)(FRAME * 3)) { /* target 40 ms + 20 ms */
        memmove(nv->buf, nv->buf + FRAME, (nv->cnt - FRAME) * sizeof(int16_t));
        nv->cnt -= FRAME;
        nv->drops++;
    }
}

static void naive_pull(naive *nv, int16_t *out, size_t n)
{
    if (!nv->playing && nv->cnt < 2 * FRAME) {
        memset(out, 0, n * sizeof(*out));
        return;
    }
    nv->playing = true;
    if (nv->cnt < n) {
        memcpy(nv->buf + nv->cnt, nv->last, sizeof(nv->last));
        nv->cnt += FRAME;
        nv->dups++;
    }
    memcpy(out, nv->buf, n * sizeof(*out));
    memmove(nv->buf, nv->buf + n, (nv->cnt - n) * sizeof(int16_t));
    nv->cnt -= n;
}

static uint32_t rng_state = 12345;
static double rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) / 16777216.0;
}

static void simulate(const sim_cfg *c, sim_out *o)
{
    wzp_drift_config dc;
    wzp_drift_config_default(&dc);
    dc.quality = c->quality;
    wzp_drift *d = NULL;
    naive *nv = NULL;
    if (c->naive) {
        nv = calloc(1, sizeof(*nv));
        assert_non_null(nv);
    } else {
        assert_int_equal(wzp_drift_new(&d, &dc), 0);
    }
    memset(o, 0, sizeof(*o));
    o->lvl_min = o->fifo_min = 1e9;
    o->recovered = -1;
    rng_state = 12345;

    const wzp_ts t0 = WZP_SEC(1);
    const double push_period = 20e6 / (1.0 + c->ppm * 1e-6); /* ns of device time */
    const wzp_ts end = t0 + (wzp_ts)(c->seconds * 1e9);
    const wzp_ts settle = t0 + (wzp_ts)(c->settle * 1e9);
    const wzp_ts stall0 = t0 + (wzp_ts)(c->stall_at * 1e9);
    const wzp_ts stall1 = stall0 + (wzp_ts)(c->stall_ms * 1e6);
    const wzp_ts jump_from = t0 + WZP_SEC(1);
    uint64_t k = 0, m = 0, src = 0;
    wzp_ts next_push = t0, next_pull = t0;
    int16_t frame[FRAME], out[PULL];
    int prev1 = 0, prev2 = 0, have_prev = 0;
    bool was_ok = false;
    wzp_ts ok_since = 0;
    uint64_t underruns_before = 0;
    bool settling = true;
    wzp_ts last_unsettled = t0, last_off = t0;

    while (next_pull < end) {
        if (next_push <= next_pull) {
            wzp_ts now = next_push;
            if (c->stall_ms > 0 && now >= stall0 && now < stall1) {
                next_push = stall1; /* held back, then sent as one burst */
                continue;
            }
            do { /* every frame due by now: one, or a burst after a stall */
                for (int i = 0; i < FRAME; i++, src++)
                    frame[i] = (int16_t)lrint(TONE_A *
                                              sin(2 * PI * TONE_HZ * (double)src / WZP_AUDIO_RATE));
                if (nv)
                    naive_push(nv, frame);
                else
                    assert_int_equal(wzp_drift_push(d, frame, FRAME, now), 0);
                k++;
            } while (t0 + (wzp_ts)((double)k * push_period) <= now);
            next_push =
                t0 + (wzp_ts)((double)k * push_period) + (wzp_ts)(rnd() * c->jitter_ms * 1e6);
        } else {
            wzp_ts now = next_pull;
            if (nv)
                naive_pull(nv, out, PULL);
            else
                wzp_drift_pull(d, out, PULL, now);
            m++;
            next_pull = t0 + m * WZP_MS(10);
            if (now >= jump_from) {
                for (int i = 0; i < PULL; i++) {
                    if (have_prev == 2) {
                        double d2 = fabs((double)out[i] - 2.0 * prev1 + prev2);
                        o->max_d2 = fmax(o->max_d2, d2);
                    }
                    if (have_prev) {
                        double j = fabs((double)out[i] - prev1);
                        o->max_jump = fmax(o->max_jump, j);
                    }
                    prev2 = prev1;
                    prev1 = out[i];
                    have_prev += have_prev < 2;
                }
            }
            if (!nv) {
                wzp_drift_stats st;
                wzp_drift_get_stats(d, &st);
                double lvl = st.level / 1e6, fifo = st.fifo / 48.0;
                double hold = st.setpoint / 1e6;
                if (fabs(lvl - hold) >= 5.0 || st.buffering)
                    last_unsettled = now;
                if (fabs(st.drift_ppm - c->ppm) >= 10.0)
                    last_off = now;
                if (now >= settle) {
                    if (settling)
                        underruns_before = st.underruns;
                    settling = false;
                    o->lvl_min = fmin(o->lvl_min, lvl);
                    o->lvl_max = fmax(o->lvl_max, lvl);
                    o->fifo_min = fmin(o->fifo_min, fifo);
                    o->fifo_max = fmax(o->fifo_max, fifo);
                    o->underruns_settled = st.underruns - underruns_before;
                    if (now >= settle + (settle - t0))
                        o->est_err_max = fmax(o->est_err_max, fabs(st.drift_ppm - c->ppm));
                }
                if (c->stall_ms > 0 && now >= stall1) {
                    bool ok = fabs(lvl - hold) < 10.0 && !st.fast && !st.buffering;
                    if (ok && !was_ok)
                        ok_since = now;
                    was_ok = ok;
                }
            }
        }
    }
    o->settled = (double)(last_unsettled - t0) / 1e9;
    o->converged = (double)(last_off - t0) / 1e9;
    if (nv) {
        o->drops = nv->drops + nv->dups;
        free(nv);
        return;
    }
    wzp_drift_stats st;
    wzp_drift_get_stats(d, &st);
    o->underruns = st.underruns;
    o->drops = st.dropped_frames;
    o->ratio_changes = st.ratio_changes;
    o->ppm_est = st.drift_ppm;
    o->ratio_ppm = st.ratio_ppm;
    if (c->stall_ms > 0 && was_ok)
        o->recovered = (double)(ok_since - stall1) / 1e9;
    wzp_drift_free(d);
}

static void print_out(const char *what, const sim_cfg *c, const sim_out *o)
{
    if (c->naive) {
        printf("# %s ppm %+.0f: %llu frames dropped or repeated, max jump %.1f (tone %.1f), max "
               "d2 %.1f (tone %.1f)\n",
               what, c->ppm, (unsigned long long)o->drops, o->max_jump, TONE_SLOPE, o->max_d2,
               TONE_D2);
        return;
    }
    printf("# %s ppm %+.0f: settled (+-5 ms) after %.1f s, estimate within 10 ppm after %.1f s\n",
           what, c->ppm, o->settled, o->converged);
    printf("# %s ppm %+.0f: level %.2f..%.2f ms, fifo %.2f..%.2f ms, underruns %llu (after "
           "settling %llu), drops %llu, ratio changes %llu, estimate %+.2f ppm (max error %.2f, "
           "ratio %+.0f), "
           "max jump %.1f (tone %.1f), max d2 %.1f (tone %.1f), recovered %.2f s\n",
           what, c->ppm, o->lvl_min, o->lvl_max, o->fifo_min, o->fifo_max,
           (unsigned long long)o->underruns, (unsigned long long)o->underruns_settled,
           (unsigned long long)o->drops, (unsigned long long)o->ratio_changes, o->ppm_est,
           o->est_err_max, o->ratio_ppm, o->max_jump, TONE_SLOPE, o->max_d2, TONE_D2, o->recovered);
}

/* (a) + (d): 30 minutes each way. Stated bounds: after 60 s the smoothed
 * level (the added delay) stays within target (40 ms) +- 20 ms and the FIFO
 * never runs dry; from 120 s on the drift estimate is within 10 ppm.
 * Measured (gcc, this seed): level 39.5..41.7 ms, instantaneous FIFO
 * 22.4..46.7 ms, settled within +-5 ms after 4-10 s, estimate within 10 ppm
 * after 66-102 s and its error <= 8.7 ppm from 120 s on, ~270 ratio changes
 * in 30 min. */
static void test_long_call_level_and_estimate(void **state)
{
    (void)state;
    const double ppms[] = {+300, -300};
    for (size_t i = 0; i < 2; i++) {
        sim_cfg c = {.ppm = ppms[i], .jitter_ms = 3, .seconds = 1800, .settle = 60};
        sim_out o;
        simulate(&c, &o);
        print_out("30 min", &c, &o);
        assert_true(o.lvl_min >= 20.0 && o.lvl_max <= 60.0);
        assert_true(o.fifo_min > 0);
        assert_true(o.settled < 60.0);
        assert_int_equal(o.underruns_settled, 0);
        assert_int_equal(o.drops, 0);
        assert_true(o.est_err_max < 10.0);
        assert_true(o.converged < 120.0);
    }
}

/* (b): a phase-continuous 440 Hz tone (amplitude 10000) through the
 * compensator stays smooth: its largest sample-to-sample step stays within
 * 5 % of the tone's own (576), and its second difference (a high-pass, where
 * a click stands out) within 3x the tone's own (33). Measured: 578 and 36.
 * The naive compensator, which drops or repeats whole 20 ms frames, clicks
 * twice in these 3 minutes: measured steps of 8935 (+300 ppm) and 4109
 * (-300 ppm), second differences of 9508 and 4303. (A single speexdsp
 * resampler whose ratio crosses 1:1 also clicked: second difference 439, see
 * drift.c.) */
static void test_no_clicks(void **state)
{
    (void)state;
    /* 0 ppm too: there the wanted ratio hovers around 1:1. */
    const double ppms[] = {+300, -300, 0};
    for (size_t i = 0; i < 3; i++) {
        sim_cfg c = {.ppm = ppms[i], .jitter_ms = 3, .seconds = 180, .settle = 60};
        sim_out o, on;
        simulate(&c, &o);
        print_out("tone", &c, &o);
        c.naive = true;
        simulate(&c, &on);
        print_out("tone, naive frame drop/repeat", &c, &on);
        assert_int_equal(o.underruns, 0);
        assert_true(o.max_jump <= 1.05 * TONE_SLOPE);
        assert_true(o.max_d2 <= 3 * TONE_D2);
        if (c.ppm == 0)
            continue;
        /* The naive one clicks at each dropped or repeated frame. */
        assert_true(on.drops >= 1);
        assert_true(on.max_jump > 5 * TONE_SLOPE);
        assert_true(on.max_d2 > 50 * TONE_D2);
    }
}

/* (c): 300 ms without frames, then all of them at once. */
static void test_stall_then_burst(void **state)
{
    (void)state;
    sim_cfg c = {
        .ppm = 300, .jitter_ms = 3, .seconds = 120, .settle = 30, .stall_at = 60, .stall_ms = 300};
    sim_out o;
    simulate(&c, &o);
    print_out("stall", &c, &o);
    /* The stall is one underrun. The burst (15-16 frames on a FIFO that ran
     * dry) exceeds target + 200 ms by 3-4 frames: those are dropped, no
     * more. The excess left (200 ms) goes at up to 2 %, in about 12 s. */
    assert_int_equal(o.underruns, 1);
    assert_true(o.drops >= 3 && o.drops <= 4);
    assert_true(o.recovered >= 0 && o.recovered < 15.0);
    assert_true(fabs(o.ppm_est - c.ppm) < 20.0);
}

static void test_api(void **state)
{
    (void)state;
    wzp_drift *d = NULL;
    wzp_drift_config c;
    wzp_drift_config_default(&c);
    c.quality = 11;
    assert_int_equal(wzp_drift_new(&d, &c), WZP_ERR_INVALID);
    wzp_drift_config_default(&c);
    c.max_excess = WZP_MS(10);
    assert_int_equal(wzp_drift_new(&d, &c), WZP_ERR_INVALID);
    assert_null(d);
    assert_int_equal(wzp_drift_new(NULL, NULL), WZP_ERR_INVALID);
    assert_int_equal(wzp_drift_new(&d, NULL), 0);

    int16_t pcm[FRAME], out[PULL];
    for (int i = 0; i < FRAME; i++)
        pcm[i] = 1000;
    memset(out, 0x55, sizeof(out));
    assert_int_equal(wzp_drift_pull(d, out, PULL, WZP_SEC(1)), 0); /* buffering: silence */
    for (int i = 0; i < PULL; i++)
        assert_int_equal(out[i], 0);
    assert_int_equal(wzp_drift_push(d, pcm, WZP_DRIFT_MAX_PUSH + 1, WZP_SEC(1)), WZP_ERR_INVALID);
    assert_int_equal(wzp_drift_push(d, NULL, FRAME, WZP_SEC(1)), WZP_ERR_INVALID);
    assert_int_equal(wzp_drift_push(d, pcm, FRAME, WZP_SEC(1)), 0);
    assert_int_equal(wzp_drift_pull(d, out, PULL, WZP_SEC(1)), 0); /* 20 ms < 40 ms target */
    assert_int_equal(wzp_drift_push(d, pcm, FRAME, WZP_SEC(1)), 0);
    /* 40 ms: the target, but it must remain after the pull */
    assert_int_equal(wzp_drift_pull(d, out, PULL, WZP_SEC(1)), 0);
    assert_int_equal(wzp_drift_push(d, pcm, FRAME, WZP_SEC(1)), 0);
    assert_int_equal(wzp_drift_pull(d, out, PULL, WZP_SEC(1)), PULL); /* playing */
    wzp_drift_stats st;
    wzp_drift_get_stats(d, &st);
    assert_false(st.buffering);
    assert_int_equal(st.pushed, 3 * FRAME);
    assert_int_equal(st.pulled, 4 * PULL);
    assert_int_equal(st.underruns, 0);
    /* Drain it: one underrun, then buffering again. */
    for (int i = 0; i < 6; i++)
        wzp_drift_pull(d, out, PULL, WZP_SEC(1) + WZP_MS(10) * (unsigned)i);
    wzp_drift_get_stats(d, &st);
    assert_int_equal(st.underruns, 1);
    assert_true(st.buffering);
    /* The extreme rule: 300 ms at once keeps target + 200 ms. */
    for (int i = 0; i < 15; i++)
        assert_int_equal(wzp_drift_push(d, pcm, FRAME, WZP_SEC(2)), 0);
    wzp_drift_get_stats(d, &st);
    assert_int_equal(st.dropped_frames, 3);
    assert_true(st.fifo <= 240 * 48);
    wzp_drift_free(d);
    wzp_drift_free(NULL);
}

WZP_TEST_MAIN(NULL, NULL, test_api, test_long_call_level_and_estimate, test_no_clicks,
              test_stall_then_burst)
