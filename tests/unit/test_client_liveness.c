/*
 * Losing the other end, on the simulated network (tests/support/simworld.h,
 * virtual clock): a peer that vanishes mid-call (kill -9) is reported as
 * "peer unreachable" within seconds, a relay that vanishes under a relayed
 * call as the relay (with a cluster, a silent relay is left within a second while the call
 * waits for its new one), and the silence before counts as lost frames and as the
 * longest gap. A second login of the same identity takes the registration
 * and the first one stops for good instead of fighting back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "support/simworld.h"

/* A snapshot of an endpoint's counters. */
static wzp_quic_endpoint_stats ep_stats(const wzp_quic_endpoint *ep)
{
    wzp_quic_endpoint_stats st;
    wzp_quic_endpoint_get_stats(ep, &st);
    return st;
}

static bool a_ended(simclient *a, simclient *b)
{
    (void)b;
    return a->state == WZP_CALL_ENDED;
}

/* b is killed mid-call; returns how long a took to end the call (virtual ns). */
static wzp_ts peer_dies(world *w)
{
    sim_run(w->sim, NULL, &w->a, &w->b, WZP_SEC(2));
    wzp_ts t0 = wzp_sim_now(w->sim);
    uint64_t sent_by_b = sim_stats(&w->b).frames_sent;
    sim_client_kill(&w->b);
    assert_true(sim_run(w->sim, a_ended, &w->a, &w->b, WZP_SEC(30)));
    wzp_ts took = w->a.ended_at - t0;
    wzp_call_stats st = sim_stats(&w->a);
    printf("peer gone: ended after %lld ms: %s; lost %llu, longest gap %lld ms\n",
           (long long)(took / 1000000), w->a.detail, (unsigned long long)st.frames_lost,
           (long long)st.max_gap_ms);
    assert_int_equal(w->a.reason, WZP_ERR_PEER_UNREACHABLE);
    /* Within a few seconds, and well before the old 15 s idle timeout. */
    assert_true(took <= WZP_SEC(6));
    /* The silent tail is counted: every 20 ms frame b no longer sent is lost. */
    uint64_t tail = (uint64_t)(took / WZP_MS(20));
    assert_true(st.frames_lost + 5 >= tail);
    assert_true(st.frames_received + st.frames_lost + 5 >= sent_by_b + tail);
    assert_true((wzp_ts)st.max_gap_ms * WZP_MS(1) + WZP_MS(100) >= took);
    return took;
}

static void test_peer_dies_on_relayed_call(void **state)
{
    world w;
    world_call(&w, 21, WZP_SIM_EI, WZP_SIM_EI, true);
    peer_dies(&w);
    world_free(&w);
}

static void test_peer_dies_on_direct_call(void **state)
{
    world w;
    world_call(&w, 22, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    peer_dies(&w);
    world_free(&w);
}

/* The relay of a relayed call dies: that is what a reports, not the peer. */
static void test_relay_dies_under_relayed_call(void **state)
{
    world w;
    world_call(&w, 23, WZP_SIM_EI, WZP_SIM_EI, true);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(2));
    wzp_ts t0 = wzp_sim_now(w.sim);
    wzp_sim_sock_close(w.r.sock);
    w.r.sock = NULL;
    assert_true(sim_run(w.sim, both_ended, &w.a, &w.b, WZP_SEC(30)));
    printf("relay gone: a ended after %lld ms: %s\n", (long long)((w.a.ended_at - t0) / 1000000),
           w.a.detail);
    assert_int_equal(w.a.reason, WZP_ERR_UNREACHABLE);
    assert_int_equal(w.b.reason, WZP_ERR_UNREACHABLE);
    assert_non_null(strstr(w.a.detail, "relay"));
    assert_true(w.a.ended_at - t0 <= WZP_SEC(6));
    world_free(&w);
}

/* The same with another relay of a cluster to go to: a notices the silent relay within a
 * second (it probes it first), long before its 6 s keep-alive timeout and the call's 5 s idle
 * timeout, and leaves for the other relay while its call goes on. */
static bool a_left(simclient *a, simclient *b)
{
    (void)b;
    return a->unregistrations > 0;
}

static void test_relay_silent_under_relayed_call_cluster(void **state)
{
    world w;
    world_call(&w, 25, WZP_SIM_EI, WZP_SIM_EI, true);
    wzp_core_relay two[2] = {{.addr = *wzp_sim_sock_addr(w.r.sock)},
                             {.addr = wzp_sim_addr("203.0.113.77:4433")}}; /* silent too */
    wzp_identity_fingerprint(w.r.id, two[0].pin);
    assert_int_equal(wzp_core_set_relays(w.a.core, two, 2), 0);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(2));
    /* The relay's media stay fresh while it lives: no verdict. */
    assert_int_equal(w.a.unregistrations, 0);
    wzp_ts t0 = wzp_sim_now(w.sim);
    wzp_sim_sock_close(w.r.sock);
    w.r.sock = NULL;
    assert_true(sim_run(w.sim, a_left, &w.a, &w.b, WZP_SEC(10)));
    wzp_ts took = wzp_sim_now(w.sim) - t0;
    printf("relay silent: a left it after %lld ms\n", (long long)(took / WZP_MS(1)));
    assert_true(took <= WZP_SEC(1));
    assert_int_equal(w.a.unreg_err, WZP_ERR_UNREACHABLE);
    assert_false(w.a.unreg_fatal);
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE); /* the call waits for its new relay */
    world_free(&w);
}

/* --- one identity, two logins -------------------------------------------------------------------
 */

static bool second_registered(simclient *a, simclient *a2)
{
    return a2->registrations > 0 && a->unregistrations > 0;
}

static void test_second_login_takes_over(void **state)
{
    world w;
    world_open(&w, 24, NULL);
    simclient *a = &w.a, *a2 = &w.b;
    sim_client_start(a, w.sim, &w.r, 0, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_registered, a, a, WZP_SEC(5)));
    sim_client_start_as(a2, w.sim, &w.r, 1, a->id);
    assert_true(sim_run(w.sim, second_registered, a, a2, WZP_SEC(5)));
    /* The first login is told why and gives up; the second keeps the registration. */
    assert_int_equal(a->unreg_err, WZP_ERR_REPLACED);
    assert_true(a->unreg_fatal);
    sim_run(w.sim, NULL, a, a2, WZP_SEC(30));
    assert_int_equal(a->registrations, 1);
    assert_int_equal(a->unregistrations, 1);
    assert_false(wzp_core_registered(a->core));
    assert_int_equal(a2->registrations, 1);
    assert_int_equal(a2->unregistrations, 0);
    assert_true(wzp_core_registered(a2->core));
    world_free(&w);
}

/* --- the relay restarts ------------------------------------------------------------------------
 */

static bool registered_again(simclient *a, simclient *b)
{
    return a->registrations >= 2 && b->registrations >= 2;
}

/* A listening client notices a restarted relay within one keep-alive (the new process answers
 * with a stateless reset keyed by the relay's identity) and registers again at once: it is
 * unreachable for seconds, not for the old ~40. */
static void test_relay_restart_noticed(void **state)
{
    world w;
    world_open(&w, 26, NULL);
    sim_client_start(&w.a, w.sim, &w.r, 0, WZP_SIM_EI, false);
    sim_client_start(&w.b, w.sim, &w.r, 1, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_registered, &w.a, &w.b, WZP_SEC(5)));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(3)); /* mid keep-alive interval */
    wzp_ts t0 = wzp_sim_now(w.sim);
    sim_relay_restart(&w.r);
    assert_true(sim_run(w.sim, registered_again, &w.a, &w.b, WZP_SEC(60)));
    wzp_ts took = wzp_sim_now(w.sim) - t0;
    wzp_quic_endpoint_stats qs = ep_stats(w.r.ep);
    printf("relay restart: both registered again after %lld ms; resets sent %llu\n",
           (long long)(took / 1000000), (unsigned long long)qs.stateless_resets_sent);
    assert_int_equal(w.a.unreg_err, WZP_ERR_UNREACHABLE);
    assert_true(qs.stateless_resets_sent >= 2);
    assert_true(took <= WZP_SEC(6)); /* one 4 s keep-alive, a reset, a 250 ms backoff */
    world_free(&w);
}

/* --- a full relay ---------------------------------------------------------------------------- */

static bool a2_refused(simclient *a, simclient *a2)
{
    return a->registrations && a2->unregistrations;
}

/* Two phones behind one NAT address, a relay that takes one connection per address: the
 * second is told the relay is full for it, and stops instead of hammering the relay. */
static void test_relay_full_for_address(void **state)
{
    wzp_relay_control_config cfg;
    wzp_relay_control_config_default(&cfg);
    cfg.max_conns_per_addr = 1;
    world w;
    world_open(&w, 25, &cfg);
    wzp_sim_router *rt = sim_router_new(w.sim, 0, WZP_SIM_EI);
    simclient *a = &w.a, *a2 = &w.b;
    sim_client_join(a, w.sim, &w.r, rt, "10.0.1.2", false);
    assert_true(sim_run(w.sim, both_registered, a, a, WZP_SEC(5)));
    sim_client_join(a2, w.sim, &w.r, rt, "10.0.1.3", false);
    assert_true(sim_run(w.sim, a2_refused, a, a2, WZP_SEC(5)));
    assert_int_equal(a2->unreg_err, WZP_ERR_RELAY_FULL);
    assert_true(a2->unreg_fatal);
    sim_run(w.sim, NULL, a, a2, WZP_SEC(20));
    assert_int_equal(a2->registrations, 0);
    assert_int_equal(a2->unregistrations, 1);
    assert_int_equal(a->unregistrations, 0);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_dies_on_relayed_call),
        cmocka_unit_test(test_peer_dies_on_direct_call),
        cmocka_unit_test(test_relay_dies_under_relayed_call),
        cmocka_unit_test(test_relay_silent_under_relayed_call_cluster),
        cmocka_unit_test(test_second_login_takes_over),
        cmocka_unit_test(test_relay_restart_noticed),
        cmocka_unit_test(test_relay_full_for_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
