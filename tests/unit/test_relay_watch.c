/*
 * Unit tests for dead-relay detection during a call (src/client/relay_watch.c) on a virtual
 * clock: a silent relay is probed, then declared lost within 1 s; a relay that answers a
 * probe is kept; nothing happens while no call needs the relay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include "client/relay_watch.h"

/* Runs the watch on its own deadlines until `until`; counts probes; returns when it was lost
 * (WZP_TS_NEVER: not lost). answer: the relay answers each probe after this long (0: never). */
static wzp_ts run(wzp_relay_watch *w, wzp_ts until, wzp_ts answer, int *probes)
{
    wzp_ts reply_at = WZP_TS_NEVER;
    *probes = 0;
    for (;;) {
        wzp_ts t = wzp_ts_min(wzp_relay_watch_deadline(w), reply_at);
        if (t > until)
            return WZP_TS_NEVER;
        if (t == reply_at) {
            reply_at = WZP_TS_NEVER;
            wzp_relay_watch_heard(w, t);
            continue;
        }
        wzp_relay_watch_action a = wzp_relay_watch_poll(w, t);
        if (a == WZP_RELAY_WATCH_LOST_NOW)
            return t;
        if (a == WZP_RELAY_WATCH_PROBE_NOW) {
            (*probes)++;
            if (answer && reply_at == WZP_TS_NEVER)
                reply_at = t + answer;
        }
    }
}

static void test_silent_relay_lost_fast(void **state)
{
    (void)state;
    wzp_relay_watch w;
    wzp_relay_watch_init(&w);
    wzp_relay_watch_arm(&w, true, WZP_SEC(10));
    /* Media every 20 ms keeps it quiet: no probe, no verdict. */
    for (wzp_ts t = WZP_SEC(10); t < WZP_SEC(12); t += WZP_MS(20)) {
        wzp_relay_watch_heard(&w, t);
        assert_true(wzp_relay_watch_deadline(&w) > t);
    }
    wzp_ts last = WZP_SEC(12) - WZP_MS(20);
    int probes;
    wzp_ts lost = run(&w, WZP_SEC(30), 0, &probes);
    assert_true(lost != WZP_TS_NEVER);
    /* Probed before giving up, and lost within 1 s of the silence (not the 6 s timeout). */
    assert_true(probes >= 2);
    assert_true(lost - last >= WZP_MS(500));
    assert_true(lost - last <= WZP_SEC(1));
    /* Disarmed once lost: nothing more until armed again. */
    assert_int_equal(wzp_relay_watch_deadline(&w), WZP_TS_NEVER);
    assert_int_equal(wzp_relay_watch_poll(&w, WZP_SEC(40)), WZP_RELAY_WATCH_NONE);
}

static void test_answering_relay_kept(void **state)
{
    (void)state;
    wzp_relay_watch w;
    wzp_relay_watch_init(&w);
    wzp_relay_watch_arm(&w, true, 0);
    /* The media stopped (the peer is gone, not the relay): the relay answers each probe
     * within 50 ms, so it is never declared lost. */
    int probes;
    assert_int_equal(run(&w, WZP_SEC(20), WZP_MS(50), &probes), WZP_TS_NEVER);
    assert_true(probes > 10);
}

static void test_disarmed_does_nothing(void **state)
{
    (void)state;
    wzp_relay_watch w;
    wzp_relay_watch_init(&w);
    assert_int_equal(wzp_relay_watch_deadline(&w), WZP_TS_NEVER);
    assert_int_equal(wzp_relay_watch_poll(&w, WZP_SEC(100)), WZP_RELAY_WATCH_NONE);
    /* Armed long after the relay was last heard: the silence counts from the arming. */
    wzp_relay_watch_heard(&w, WZP_SEC(1));
    wzp_relay_watch_arm(&w, true, WZP_SEC(50));
    assert_int_equal(wzp_relay_watch_poll(&w, WZP_SEC(50)), WZP_RELAY_WATCH_NONE);
    wzp_relay_watch_arm(&w, false, WZP_SEC(51));
    assert_int_equal(wzp_relay_watch_poll(&w, WZP_SEC(60)), WZP_RELAY_WATCH_NONE);
}

WZP_TEST_MAIN(NULL, NULL, test_silent_relay_lost_fast, test_answering_relay_kept,
              test_disarmed_does_nothing)
