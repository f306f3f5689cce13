/* SPSC PCM ring: ordering, wrap-around, full/empty counters, discard, and a
 * two-thread stress where every frame arrives intact and in order or is
 * counted as dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <wzp/wzp.h>

#include "audio/pcm_ring.h"
#include "media/audio_format.h"

/* A frame stamped with a 32-bit sequence number in its first two samples and
 * a pattern derived from it in the rest, so torn frames are detected. */
static void stamp(int16_t *f, size_t n, uint32_t seq)
{
    f[0] = (int16_t)(seq & 0xffff);
    f[1] = (int16_t)(seq >> 16);
    for (size_t i = 2; i < n; i++)
        f[i] = (int16_t)((seq * 2654435761u + (uint32_t)i * 40503u) >> 16);
}

static bool check(const int16_t *f, size_t n, uint32_t *seq)
{
    uint32_t s = (uint32_t)(uint16_t)f[0] | ((uint32_t)(uint16_t)f[1] << 16);
    for (size_t i = 2; i < n; i++)
        if (f[i] != (int16_t)((s * 2654435761u + (uint32_t)i * 40503u) >> 16))
            return false;
    *seq = s;
    return true;
}

static void test_config(void **state)
{
    (void)state;
    wzp_pcm_ring *r = NULL;
    wzp_pcm_ring_config c;
    wzp_pcm_ring_config_default(&c);
    c.capacity = 6;
    assert_int_equal(wzp_pcm_ring_new(&r, &c), WZP_ERR_INVALID);
    assert_null(r);
    assert_int_equal(wzp_pcm_ring_new(&r, NULL), 0);
    assert_int_equal(wzp_pcm_ring_frame_samples(r), WZP_AUDIO_FRAME_SAMPLES);
    assert_int_equal(wzp_pcm_ring_capacity(r), 8);
    wzp_pcm_ring_free(r);
    wzp_pcm_ring_free(NULL);
    c.capacity = 1;
    c.frame_samples = 4;
    assert_int_equal(wzp_pcm_ring_new(&r, &c), 0);
    int16_t f[4] = {1, 2, 3, 4}, g[4];
    assert_true(wzp_pcm_ring_push(r, f));
    assert_false(wzp_pcm_ring_push(r, f));
    assert_true(wzp_pcm_ring_pop(r, g));
    assert_memory_equal(f, g, sizeof(f));
    wzp_pcm_ring_free(r);
}

static void test_order_wrap_counters(void **state)
{
    (void)state;
    enum { N = 16 };
    wzp_pcm_ring_config c = {.frame_samples = N, .capacity = 4};
    wzp_pcm_ring *r;
    assert_int_equal(wzp_pcm_ring_new(&r, &c), 0);
    int16_t f[N];
    uint32_t seq, next_in = 0, next_out = 0;

    /* Empty: underruns counted, frame buffer untouched. */
    memset(f, 0x55, sizeof(f));
    assert_false(wzp_pcm_ring_pop(r, f));
    assert_false(wzp_pcm_ring_pop(r, f));
    assert_int_equal(f[0], 0x5555);

    /* Many laps of 3 in / 3 out: indices wrap the 4-slot ring often. */
    for (int lap = 0; lap < 100; lap++) {
        for (int k = 0; k < 3; k++) {
            stamp(f, N, next_in++);
            assert_true(wzp_pcm_ring_push(r, f));
        }
        assert_int_equal(wzp_pcm_ring_count(r), 3);
        for (int k = 0; k < 3; k++) {
            assert_true(wzp_pcm_ring_pop(r, f));
            assert_true(check(f, N, &seq));
            assert_int_equal(seq, next_out++);
        }
    }

    /* Full: the newest frames are dropped, the queued ones kept. */
    for (int k = 0; k < 6; k++) {
        stamp(f, N, next_in + (uint32_t)k);
        assert_int_equal(wzp_pcm_ring_push(r, f), k < 4);
    }
    assert_int_equal(wzp_pcm_ring_count(r), 4);
    for (int k = 0; k < 4; k++) {
        assert_true(wzp_pcm_ring_pop(r, f));
        assert_true(check(f, N, &seq));
        assert_int_equal(seq, next_in + (uint32_t)k);
    }
    assert_false(wzp_pcm_ring_pop(r, f));

    /* Consumer-side freshness: keep only the newest frame. */
    for (uint32_t k = 0; k < 4; k++) {
        stamp(f, N, 1000 + k);
        assert_true(wzp_pcm_ring_push(r, f));
    }
    assert_int_equal(wzp_pcm_ring_discard(r, 1), 3);
    assert_int_equal(wzp_pcm_ring_discard(r, 1), 0);
    assert_true(wzp_pcm_ring_pop(r, f));
    assert_true(check(f, N, &seq));
    assert_int_equal(seq, 1003);

    wzp_pcm_ring_stats st;
    wzp_pcm_ring_get_stats(r, &st);
    assert_int_equal(st.pushed, 300 + 4 + 4);
    assert_int_equal(st.popped, 300 + 4 + 1);
    assert_int_equal(st.overruns, 2);
    assert_int_equal(st.underruns, 3);
    assert_int_equal(st.discarded, 3);
    wzp_pcm_ring_free(r);
}

/* ---- two-thread stress ---- */

enum { STRESS_FRAMES = 300000, STRESS_SAMPLES = 64 };

typedef struct {
    wzp_pcm_ring *r;
    atomic_bool done;
    uint64_t dropped; /* producer's own count of refused pushes */
} stress_ctx;

static void *producer(void *arg)
{
    stress_ctx *x = arg;
    int16_t f[STRESS_SAMPLES];
    for (uint32_t s = 0; s < STRESS_FRAMES; s++) {
        stamp(f, STRESS_SAMPLES, s);
        if (!wzp_pcm_ring_push(x->r, f)) {
            x->dropped++;
            if ((x->dropped & 7) == 0)
                sched_yield(); /* let the consumer in now and then: both paths run */
        }
    }
    atomic_store_explicit(&x->done, true, memory_order_release);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_two_thread_stress(void **state)
{
    (void)state;
    stress_ctx x = {.dropped = 0};
    atomic_init(&x.done, false);
    wzp_pcm_ring_config c = {.frame_samples = STRESS_SAMPLES, .capacity = 64};
    assert_int_equal(wzp_pcm_ring_new(&x.r, &c), 0);

    double t0 = now_s();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer, &x), 0);
    int16_t f[STRESS_SAMPLES];
    uint64_t received = 0, gaps = 0;
    int64_t last = -1;
    bool torn = false, disorder = false;
    for (;;) {
        bool fin = atomic_load_explicit(&x.done, memory_order_acquire);
        bool got = false;
        while (wzp_pcm_ring_pop(x.r, f)) {
            uint32_t seq;
            got = true;
            if (!check(f, STRESS_SAMPLES, &seq)) {
                torn = true;
                continue;
            }
            if ((int64_t)seq <= last)
                disorder = true;
            gaps += (uint64_t)((int64_t)seq - last - 1);
            last = seq;
            received++;
        }
        if (fin)
            break; /* everything pushed before done was drained above */
        if (!got)
            sched_yield();
        assert_true(now_s() - t0 < 60.0); /* bounded even on a loaded sanitizer box */
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    double dt = now_s() - t0;

    wzp_pcm_ring_stats st;
    wzp_pcm_ring_get_stats(x.r, &st);
    printf("  stress: %d frames in %.3f s: %llu received, %llu dropped (full), %llu underruns\n",
           STRESS_FRAMES, dt, (unsigned long long)received, (unsigned long long)x.dropped,
           (unsigned long long)st.underruns);
    assert_false(torn);
    assert_false(disorder);
    assert_true(received > 0);
    assert_int_equal(received + x.dropped, STRESS_FRAMES);
    assert_int_equal(st.overruns, x.dropped);
    assert_int_equal(st.pushed, received);
    assert_int_equal(st.popped, received);
    /* Gaps in the received sequence are exactly the dropped frames, except
     * those after the last one received. */
    assert_int_equal(gaps + (STRESS_FRAMES - 1 - (uint64_t)last), x.dropped);
    wzp_pcm_ring_free(x.r);
}

WZP_TEST_MAIN(NULL, NULL, test_config, test_order_wrap_counters, test_two_thread_stress)
