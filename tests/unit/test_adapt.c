/* Sender adaptation (src/media/adapt.h) on a virtual clock: reports in, settings out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/test_main.h"
#include <stdio.h>

#include "media/adapt.h"

#define REPORT WZP_MS(250)

/* A channel model for reports: each report covers 12 slots; loss_pct of
 * them missing, in runs of `run` (deterministic spread). */
typedef struct feed {
    wzp_adapt a;
    wzp_ts now;
    double acc;        /* missing slots owed */
    bool all_repaired; /* reports say FEC rebuilt every missing slot */
    unsigned changes;
} feed;

static void run(feed *f, double seconds, double loss_pct, unsigned run_len)
{
    for (wzp_ts end = f->now + (wzp_ts)(seconds * 1e9); f->now < end; f->now += REPORT) {
        wzp_call_report r = {.interval_ms = 250, .slots = 12};
        f->acc += 12 * loss_pct / 100.0;
        /* whole runs only */
        while (f->acc >= run_len && r.missing + run_len <= r.slots) {
            r.missing += run_len;
            r.runs++;
            f->acc -= run_len;
        }
        r.max_run = r.runs ? run_len : 0;
        r.unrepaired = f->all_repaired ? 0 : (r.missing + 1) / 2;
        f->changes += wzp_adapt_on_report(&f->a, &r, f->now);
    }
}

static void test_loss_up_then_gone(void **state)
{
    (void)state;
    feed f = {.now = WZP_SEC(1)};
    wzp_adapt_init(&f.a, true, f.now);
    wzp_adapt_settings s = wzp_adapt_get(&f.a);
    assert_int_equal(s.bitrate, 32000);
    assert_int_equal(s.expected_loss, 10);
    assert_int_equal(s.redundancy, 0);
    run(&f, 5, 0, 1);
    assert_int_equal(f.changes, 0);

    /* 20 % random loss: FEC and redundancy up within two seconds. */
    run(&f, 2, 20, 1);
    s = wzp_adapt_get(&f.a);
    printf("# 20 %% loss after 2 s: %d bit/s, fec %d %%, redundancy %u\n", s.bitrate,
           s.expected_loss, s.redundancy);
    assert_true(s.expected_loss >= 30);
    assert_true(s.redundancy >= 1);
    run(&f, 10, 20, 1);
    s = wzp_adapt_get(&f.a);
    assert_int_equal(s.redundancy, 2);
    assert_true(s.bitrate * (1 + (int)s.redundancy) <= 64000);

    /* Loss gone: the codec's defaults (full bitrate, no copies) within 3 s. */
    wzp_ts gone = f.now;
    wzp_ts full = WZP_TS_NEVER;
    for (int i = 0; i < 40; i++) {
        run(&f, 0.25, 0, 1);
        s = wzp_adapt_get(&f.a);
        if (full == WZP_TS_NEVER && s.bitrate == 32000 && s.redundancy == 0)
            full = f.now;
    }
    s = wzp_adapt_get(&f.a);
    printf("# loss gone: full bitrate after %.2f s; then %d bit/s, fec %d %%\n",
           (full - gone) / 1e9, s.bitrate, s.expected_loss);
    assert_true(full != WZP_TS_NEVER && full - gone <= WZP_SEC(3));
    assert_int_equal(s.expected_loss, 10);
    assert_int_equal(f.a.level, 0);
}

static void test_no_flapping(void **state)
{
    (void)state;
    /* Loss hovering around the 5 % threshold for a minute: a handful of
     * changes at most, not one every few reports. */
    feed f = {.now = 0};
    wzp_adapt_init(&f.a, true, f.now);
    for (int i = 0; i < 30; i++) {
        run(&f, 1, 6, 1);
        run(&f, 1, 4, 1);
    }
    printf("# loss 4-6 %% for 60 s: %u changes, level %d\n", f.changes, f.a.level);
    assert_true(f.changes >= 1);
    assert_true(f.changes <= 3);
}

static void test_bursts_get_redundancy(void **state)
{
    (void)state;
    /* 8 % loss in runs of 4 (80 ms bursts): one-frame FEC cannot rebuild
     * them, so every copy comes on, spaced to reach across the burst; the
     * same loss spread out gets one. */
    feed f = {.now = 0};
    wzp_adapt_init(&f.a, true, f.now);
    run(&f, 4, 8, 4);
    wzp_adapt_settings s = wzp_adapt_get(&f.a);
    printf("# 8 %% in bursts of 4: fec %d %%, redundancy %u, mean burst %.1f\n", s.expected_loss,
           s.redundancy, f.a.burst);
    assert_int_equal(s.redundancy, 3);
    assert_int_equal(s.spacing, 2); /* 2, 4, 6 back: reaches past a burst of 4 */
    assert_true(s.bitrate * 4 <= 64000);
    feed g = {.now = 0};
    wzp_adapt_init(&g.a, true, g.now);
    run(&g, 4, 8, 1);
    s = wzp_adapt_get(&g.a);
    assert_int_equal(s.redundancy, 1);
    assert_int_equal(s.spacing, 1);
    assert_true(s.expected_loss >= 20);
    /* Parity mode: the same bursts get parity over 4 frames instead of copies. */
    feed h = {.now = 0};
    wzp_adapt_init(&h.a, true, h.now);
    wzp_adapt_set_parity(&h.a, true);
    run(&h, 4, 8, 4);
    s = wzp_adapt_get(&h.a);
    assert_int_equal(s.redundancy, 0);
    assert_int_equal(s.parity, 4);
    assert_true(s.bitrate * 2 <= 64000);
}

static void test_residual_loss_gets_copies(void **state)
{
    (void)state;
    /* 3 % random loss: FEC strength up. Copies only when the reports say
     * too much stays unrepaired after FEC. */
    feed f = {.now = 0, .all_repaired = true};
    wzp_adapt_init(&f.a, true, f.now);
    run(&f, 6, 3, 1);
    wzp_adapt_settings s = wzp_adapt_get(&f.a);
    assert_int_equal(s.expected_loss, 15);
    assert_int_equal(s.redundancy, 0);
    f.all_repaired = false;
    run(&f, 3, 3, 1);
    s = wzp_adapt_get(&f.a);
    printf("# 3 %% loss, half of it unrepaired: fec %d %%, redundancy %u, %d bit/s\n",
           s.expected_loss, s.redundancy, s.bitrate);
    assert_int_equal(s.redundancy, 1);
    assert_true(s.bitrate <= 32000);
}

static void test_disabled_and_thin_reports(void **state)
{
    (void)state;
    feed f = {.now = 0};
    wzp_adapt_init(&f.a, false, f.now);
    run(&f, 5, 30, 2);
    assert_int_equal(f.changes, 0);
    assert_int_equal(wzp_adapt_get(&f.a).expected_loss, 10);
    /* Reports over a handful of slots (DTX, a muted peer) say nothing. */
    wzp_adapt_init(&f.a, true, 0);
    wzp_call_report r = {.interval_ms = 250, .slots = 2, .missing = 2, .runs = 1, .max_run = 2};
    for (int i = 0; i < 20; i++)
        assert_false(wzp_adapt_on_report(&f.a, &r, (wzp_ts)i * REPORT));
    assert_false(wzp_adapt_on_report(&f.a, NULL, 0));
}

WZP_TEST_MAIN(NULL, NULL, test_loss_up_then_gone, test_no_flapping, test_bursts_get_redundancy,
              test_residual_loss_gets_copies, test_disabled_and_thin_reports)
