/*
 * Unit tests for the choice of home relay (src/client/relay_select.c) on a virtual
 * clock: the lowest measured RTT wins, silent relays come last in the order given, a
 * lost relay rests (backoff doubling, capped) and comes back, a round settles early once
 * every relay answered, and a late or foreign answer changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <string.h>

#include <wzp/wzp.h>

#include "client/relay_select.h"
#include "common/addr.h"
#include "wire/stun_server.h"

static wzp_addr addr(const char *text)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, text, false), 0);
    return a;
}

#define N 3
static wzp_addr relays[N];

static int setup(void **state)
{
    (void)state;
    relays[0] = addr("192.0.2.1:4433");
    relays[1] = addr("192.0.2.2:4433");
    relays[2] = addr("[2001:db8::3]:4433");
    return 0;
}

/* One round: every probe goes out at t0; relay i answers after rtt_ms[i] (< 0: never). */
static void round_trip(wzp_relay_select *s, wzp_ts t0, const int *rtt_ms)
{
    uint8_t req[WZP_STUN_REQ_MAX], resp[256];
    wzp_addr to;
    int len;
    struct {
        wzp_addr from;
        uint8_t pkt[256];
        int len;
        wzp_ts at;
    } ans[N];
    int na = 0;
    wzp_relay_select_measure(s, t0);
    assert_false(wzp_relay_select_settled(s, t0));
    while ((len = wzp_relay_select_poll(s, t0, req, sizeof(req), &to)) > 0) {
        int i = 0;
        while (i < N && !wzp_addr_equal(&to, &relays[i]))
            i++;
        assert_true(i < N);
        if (rtt_ms[i] < 0)
            continue;
        wzp_addr me = addr("198.51.100.7:5000");
        int rl = wzp_stun_respond(req, (size_t)len, &me, resp, sizeof(resp));
        assert_true(rl > 0);
        ans[na].from = to;
        memcpy(ans[na].pkt, resp, (size_t)rl);
        ans[na].len = rl;
        ans[na].at = t0 + WZP_MS(rtt_ms[i]);
        na++;
    }
    /* Deliver in time order, running the clock like the core does. */
    for (int k = 0; k < na; k++)
        for (int j = k + 1; j < na; j++)
            if (ans[j].at < ans[k].at) {
                __typeof__(ans[0]) t = ans[k];
                ans[k] = ans[j];
                ans[j] = t;
            }
    for (int k = 0; k < na; k++) {
        wzp_ts dl = wzp_relay_select_deadline(s);
        if (dl <= ans[k].at) {
            wzp_relay_select_handle_timer(s, dl);
            if (wzp_relay_select_settled(s, dl))
                return; /* the rest came too late */
        }
        wzp_relay_select_recv(s, &ans[k].from, ans[k].pkt, (size_t)ans[k].len, ans[k].at);
    }
}

static void settle(wzp_relay_select *s)
{
    for (int guard = 0; guard < 100 && wzp_relay_select_deadline(s) != WZP_TS_NEVER; guard++) {
        wzp_ts t = wzp_relay_select_deadline(s);
        uint8_t req[WZP_STUN_REQ_MAX];
        wzp_addr to;
        while (wzp_relay_select_poll(s, t, req, sizeof(req), &to) > 0) {
        }
        wzp_relay_select_handle_timer(s, t);
    }
    assert_int_equal(wzp_relay_select_deadline(s), WZP_TS_NEVER);
}

static void expect_order(const wzp_relay_select *s, wzp_ts now, size_t a, size_t b, size_t c)
{
    size_t order[N];
    assert_int_equal(wzp_relay_select_rank(s, now, order), N);
    assert_int_equal(order[0], a);
    assert_int_equal(order[1], b);
    assert_int_equal(order[2], c);
}

static void test_lowest_rtt_first(void **state)
{
    (void)state;
    wzp_relay_select s;
    memset(&s, 0, sizeof(s));
    wzp_relay_select_set(&s, relays, N);
    expect_order(&s, 0, 0, 1, 2); /* nothing measured: the order given */
    int rtt[N] = {80, 20, 50};
    round_trip(&s, WZP_SEC(1), rtt);
    assert_true(wzp_relay_select_settled(&s, WZP_SEC(1) + WZP_MS(80)));
    settle(&s);
    expect_order(&s, WZP_SEC(2), 1, 2, 0);
    assert_int_equal(s.e[1].rtt, WZP_MS(20));
}

static void test_silent_last_and_grace(void **state)
{
    (void)state;
    wzp_relay_select s;
    memset(&s, 0, sizeof(s));
    wzp_relay_select_set(&s, relays, N);
    /* Relay 0 never answers; relay 2 answers later than the grace after relay 1's answer. */
    int rtt[N] = {-1, 30, 30 + 150};
    round_trip(&s, 0, rtt);
    settle(&s);
    expect_order(&s, WZP_SEC(1), 1, 0, 2);
    assert_int_equal(s.e[2].rtt, WZP_TS_NEVER); /* its answer came too late to count */
    /* No answer at all: the round ends after the window, order as given. */
    int none[N] = {-1, -1, -1};
    round_trip(&s, WZP_SEC(5), none);
    assert_false(wzp_relay_select_settled(&s, WZP_SEC(5) + WZP_RELAY_SELECT_WINDOW - 1));
    assert_true(wzp_relay_select_settled(&s, WZP_SEC(5) + WZP_RELAY_SELECT_WINDOW));
    settle(&s);
    expect_order(&s, WZP_SEC(6), 0, 1, 2);
}

static void test_failed_relay_rests(void **state)
{
    (void)state;
    wzp_relay_select s;
    memset(&s, 0, sizeof(s));
    wzp_relay_select_set(&s, relays, N);
    int rtt[N] = {10, 20, 30};
    round_trip(&s, 0, rtt);
    settle(&s);
    /* The home (relay 0) is lost at t=10 s: it rests 1 s, then 2 s, 4 s, ... up to 30 s. */
    wzp_ts t = WZP_SEC(10);
    wzp_relay_select_failed(&s, 0, t);
    expect_order(&s, t, 1, 2, 0);
    expect_order(&s, t + WZP_SEC(1), 0, 1, 2); /* rested: its RTT counts again */
    wzp_ts expect = WZP_SEC(2);
    for (int k = 0; k < 8; k++) {
        t += WZP_SEC(60);
        wzp_relay_select_failed(&s, 0, t);
        expect_order(&s, t + expect - 1, 1, 2, 0);
        expect_order(&s, t + expect, 0, 1, 2);
        expect =
            expect * 2 > WZP_RELAY_SELECT_BACKOFF_MAX ? WZP_RELAY_SELECT_BACKOFF_MAX : expect * 2;
    }
    /* A registration that holds resets the backoff. */
    wzp_relay_select_ok(&s, 0);
    t += WZP_SEC(60);
    wzp_relay_select_failed(&s, 0, t);
    expect_order(&s, t + WZP_SEC(1), 0, 1, 2);
    /* Every relay resting: the one back soonest first. */
    t += WZP_SEC(60);
    wzp_relay_select_failed(&s, 2, t);
    wzp_relay_select_failed(&s, 1, t + 1);
    wzp_relay_select_failed(&s, 0, t + 2);
    expect_order(&s, t + 3, 2, 1, 0);
    /* A new list keeps what it knew of the addresses that stay. */
    wzp_addr two[2] = {relays[2], relays[0]};
    wzp_relay_select_set(&s, two, 2);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.e[0].rtt, WZP_MS(30));
    assert_true(s.e[1].down_until > t);
    /* A list set again during a round (the lookup it triggered): the round goes on. */
    wzp_relay_select_measure(&s, t + 10);
    uint8_t req[WZP_STUN_REQ_MAX];
    wzp_addr to;
    while (wzp_relay_select_poll(&s, t + 10, req, sizeof(req), &to) > 0) {
    }
    wzp_relay_select_set(&s, relays, N);
    assert_false(wzp_relay_select_settled(&s, t + 11));
    assert_int_equal(s.e[0].probe.state, WZP_STUN_TXN_PENDING);
    settle(&s);
}

static void test_foreign_answers_ignored(void **state)
{
    (void)state;
    wzp_relay_select s;
    memset(&s, 0, sizeof(s));
    wzp_relay_select_set(&s, relays, N);
    uint8_t junk[40] = {0x01, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
    assert_false(wzp_relay_select_recv(&s, &relays[0], junk, sizeof(junk), 0)); /* no round */
    wzp_relay_select_measure(&s, 0);
    uint8_t req[WZP_STUN_REQ_MAX], resp[256];
    wzp_addr to, me = addr("198.51.100.7:5000");
    int len = wzp_relay_select_poll(&s, 0, req, sizeof(req), &to);
    assert_true(len > 0);
    int rl = wzp_stun_respond(req, (size_t)len, &me, resp, sizeof(resp));
    /* The right answer from another address, or garbage, is not ours. */
    assert_false(wzp_relay_select_recv(&s, &relays[1], resp, (size_t)rl, WZP_MS(5)));
    assert_false(wzp_relay_select_recv(&s, &to, junk, sizeof(junk), WZP_MS(5)));
    assert_true(wzp_relay_select_recv(&s, &to, resp, (size_t)rl, WZP_MS(5)));
    /* The others still pending: settled a grace after this first answer, not after the
     * whole window. */
    assert_false(wzp_relay_select_settled(&s, WZP_MS(5) + WZP_RELAY_SELECT_GRACE - 1));
    assert_true(wzp_relay_select_settled(&s, WZP_MS(5) + WZP_RELAY_SELECT_GRACE));
    assert_false(wzp_relay_select_recv(&s, &to, resp, (size_t)rl, WZP_MS(6))); /* a copy */
    /* One address: nothing to measure, settled at once, no probe. */
    wzp_relay_select_set(&s, relays, 1);
    wzp_relay_select_measure(&s, WZP_SEC(1));
    assert_true(wzp_relay_select_settled(&s, WZP_SEC(1)));
    assert_int_equal(wzp_relay_select_poll(&s, WZP_SEC(1), req, sizeof(req), &to), 0);
    assert_int_equal(wzp_relay_select_deadline(&s), WZP_TS_NEVER);
}

WZP_TEST_MAIN(setup, NULL, test_lowest_rtt_first, test_silent_last_and_grace,
              test_failed_relay_rests, test_foreign_answers_ignored)
