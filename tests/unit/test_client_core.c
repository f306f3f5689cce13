/*
 * The sans-I/O client core on a simulated network (tests/support/simworld.h),
 * virtual clock, deterministic: two clients behind NATs and a relay built
 * from the relay's own sans-I/O pieces. Covers what real loopback sockets cannot:
 * hole punching through NATs, falling back to the relay when the direct path
 * dies and recovering it, staying on the relay behind symmetric NATs, relay
 * channel keep-alives while direct, and every datagram counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/identity.h>

#include "client/core.h"
#include "client/core_int.h"
#include "quic/quic.h"
#include "relay/control.h"
#include "support/netsim.h"
#include "support/simworld.h"
#include "wire/demux.h"
#include "wire/relay_frame.h"

/* A snapshot of a core's counters. */
static wzp_core_stats core_stats(const wzp_core *core)
{
    wzp_core_stats st;
    wzp_core_get_stats(core, &st);
    return st;
}

static void check_counters(simclient *c)
{
    wzp_core_stats n;
    wzp_core_get_stats(c->core, &n);
    assert_true(n.rx_ctrl > 0);
    assert_int_equal(n.rx_malformed, 0);
}

/* --- tests
 * ------------------------------------------------------------------------------------------ */

/* Behind endpoint-independent NATs the call punches through, and the relay
 * channel is kept alive the whole time. */
static void test_nat_direct_and_keepalive(void **state)
{
    world w;
    world_call(&w, 1, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    wzp_call_stats sa = sim_stats(&w.a);
    printf("direct after %lld ms, first audio after %lld ms (virtual)\n",
           (long long)sa.time_to_direct_ms, (long long)sa.time_to_first_audio_ms);
    assert_true(sa.time_to_direct_ms >= 0);
    assert_int_equal(w.a.path_events, (int)sa.path_changes);
    uint64_t fwd_before = w.r.forwarded;
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(40));
    /* Still direct; media no longer through the relay, but keep-alives are. */
    assert_true(both_direct(&w.a, &w.b));
    assert_true(w.r.keepalives >= 4); /* 2 per client over 40 s */
    assert_true(w.r.forwarded - fwd_before < 50);
    assert_true(core_stats(w.a.core).rx_keepalive_ack >= 2);
    assert_true(core_stats(w.a.core).rx_direct > 1000);
    sa = sim_stats(&w.a);
    assert_true(sa.frames_received > 1500);
    assert_true(sa.loss_pct < 1.0);
    /* b's Stats messages tell a what b hears. */
    assert_true(sa.peer_frames_received > 1500);
    assert_true(sim_stats(&w.b).peer_frames_received > 1500);
    /* Mute travels to the peer. */
    assert_int_equal(wzp_core_set_mute(w.a.core, w.a.call, true), 0);
    sim_client_kick(&w.a);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_true(sim_stats(&w.b).peer_muted);
    check_counters(&w.a);
    check_counters(&w.b);
    /* b hangs up: a sees HANGUP. */
    assert_int_equal(wzp_core_hangup(w.b.core, w.b.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.b);
    assert_true(sim_run(w.sim, both_ended, &w.a, &w.b, WZP_SEC(5)));
    assert_int_equal(w.a.reason, WZP_ERR_HANGUP);
    assert_int_equal(w.b.reason, 0);
    world_free(&w);
}

/* The direct path dies: back to the relay without losing the call; then back to direct. */
static void test_fallback_and_recovery(void **state)
{
    world w;
    world_call(&w, 2, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    wzp_sim_host *ha = wzp_sim_sock_host(w.a.sock);
    wzp_sim_host_set_drop_direct(ha, true);
    assert_true(sim_run(w.sim, both_relay, &w.a, &w.b, WZP_SEC(5)));
    uint64_t got = sim_stats(&w.b).frames_received;
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(3));
    assert_true(sim_stats(&w.b).frames_received >= got + 140); /* ~150 in 3 s: media flows */
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE);
    wzp_sim_host_set_drop_direct(ha, false);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(20)));
    wzp_call_stats sa = sim_stats(&w.a);
    wzp_call_stats sb = sim_stats(&w.b);
    printf("path changes %u, a: lost %llu received %llu sent %llu; b: lost %llu received %llu sent "
           "%llu\n",
           sa.path_changes, (unsigned long long)sa.frames_lost,
           (unsigned long long)sa.frames_received, (unsigned long long)sa.frames_sent,
           (unsigned long long)sb.frames_lost, (unsigned long long)sb.frames_received,
           (unsigned long long)sb.frames_sent);
    assert_true(sa.path_changes >= 3);
    /* Only what was in flight while the dead path was detected (dead_after 150 ms). */
    assert_true(sa.frames_lost <= 15);
    assert_true(sb.frames_lost <= 15);
    world_free(&w);
}

/* A relay from before Auth asks every client for its certificate: a client without one is
 * refused (TLS alert certificate_required), presents it from the next attempt on, at once,
 * registers and calls through it. */
static void test_relay_before_auth(void **state)
{
    (void)state;
    world w;
    world_open(&w, 3, NULL);
    w.r.pre_auth = true;
    sim_client_start(&w.a, w.sim, &w.r, 0, WZP_SIM_EI, false);
    sim_client_start(&w.b, w.sim, &w.r, 1, WZP_SIM_EI, false);
    world_connect(&w);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    /* Each was refused once, then registered with its certificate: no backoff, no error. */
    assert_int_equal(w.a.registrations, 1);
    assert_int_equal(w.b.registrations, 1);
    assert_int_equal(w.a.unregistrations + w.b.unregistrations, 0);
    assert_int_equal(w.a.core->n_cert_relays, 1);
    assert_true(wzp_addr_equal(&w.a.core->cert_relays[0], &w.a.core->cfg.relay));
    world_free(&w);
}

/* The relay dies during a direct call: registration is lost (and retried),
 * the call carries on over its own connection. */
static int unregistered_events;
static void count_unreg(void *user, const wzp_core_event *ev)
{
    if (ev->type == WZP_CORE_EV_UNREGISTERED)
        unregistered_events++;
    sim_client_event(user, ev);
}

static void test_relay_dies_direct_call_survives(void **state)
{
    world w;
    world_call(&w, 6, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    w.a.core->cfg.event = count_unreg; /* white-box: count a's registration losses */
    unregistered_events = 0;
    wzp_sim_sock_close(w.r.sock);
    w.r.sock = NULL;
    uint64_t got = sim_stats(&w.b).frames_received;
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(45));
    assert_true(unregistered_events >= 1);
    assert_false(wzp_core_registered(w.a.core));
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE);
    assert_int_equal(w.b.state, WZP_CALL_ACTIVE);
    assert_true(both_direct(&w.a, &w.b));
    assert_true(sim_stats(&w.b).frames_received > got + 2000); /* 45 s of media kept flowing */
    world_free(&w);
}

/* Symmetric NATs on both sides: no direct path; the call works on the relay. */
static void test_symmetric_stays_relay(void **state)
{
    world w;
    world_call(&w, 3, WZP_SIM_APD, WZP_SIM_APD, false);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(5));
    assert_true(both_relay(&w.a, &w.b));
    assert_int_equal(sim_stats(&w.a).time_to_direct_ms, -1);
    assert_true(sim_stats(&w.a).frames_received > 200);
    assert_true(sim_stats(&w.b).frames_received > 200);
    /* a hangs up this time. */
    assert_int_equal(wzp_core_hangup(w.a.core, w.a.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, both_ended, &w.a, &w.b, WZP_SEC(5)));
    assert_int_equal(w.b.reason, WZP_ERR_HANGUP);
    world_free(&w);
}

/* direct_disabled: no candidates, no probes, relay only. */
static void test_direct_disabled(void **state)
{
    world w;
    world_call(&w, 4, WZP_SIM_EI, WZP_SIM_EI, true);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(3));
    assert_true(both_relay(&w.a, &w.b));
    assert_int_equal(core_stats(w.a.core).rx_probe, 0);
    assert_int_equal(core_stats(w.b.core).rx_direct, 0);
    assert_int_equal(sim_stats(&w.a).path_changes, 0);
    world_free(&w);
}

static size_t sent_count;
static void count_send(void *user, int sock, const wzp_addr *to, const uint8_t *pkt, size_t len)
{
    sent_count++;
    sim_client_send(user, sock, to, pkt, len);
}

/* Datagrams a's core sends when flushed right now (after a flush at the same instant). */
static size_t flush_count(simclient *c)
{
    sent_count = 0;
    wzp_core_flush(c->core, wzp_sim_now(c->sim), count_send, c);
    sim_client_kick(c);
    return sent_count;
}

static bool peer_has_remote(wzp_core *core, uint32_t id, const wzp_addr *addr)
{
    wzp_voicecall *vc = wzp_core__voicecall(core, id); /* white-box: the peer's ICE pairs */
    assert_non_null(vc);
    wzp_ice_agent *ice = wzp_voicecall_ice(vc);
    assert_non_null(ice);
    wzp_ice_pair_info pairs[32];
    size_t n = wzp_ice_pairs(ice, pairs, 32);
    for (size_t i = 0; i < n && i < 32; i++)
        if (wzp_addr_equal(&pairs[i].remote, addr))
            return true;
    return false;
}

/* Re-reading the same addresses (any order, duplicates, ports, a family
 * without a socket) changes nothing and sends nothing. */
static void test_host_addrs_unchanged(void **state)
{
    world w;
    world_call(&w, 8, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    wzp_voicecall *vc = wzp_core__voicecall(w.a.core, w.a.call);
    size_t n_local = wzp_voicecall_local_candidates(vc, NULL, 0);
    wzp_addr same[3] = {wzp_sim_addr("10.0.1.2:7"), wzp_sim_addr("[2001:db8::1]"),
                        wzp_sim_addr("10.0.1.2")};
    sim_client_kick(&w.a);
    assert_int_equal(wzp_core_set_host_addrs(w.a.core, same, 3, wzp_sim_now(w.sim)), 0);
    assert_int_equal(flush_count(&w.a), 0);
    assert_int_equal(wzp_voicecall_local_candidates(vc, NULL, 0), n_local);
    assert_int_equal(wzp_core_set_host_addrs(w.a.core, NULL, 1, wzp_sim_now(w.sim)),
                     WZP_ERR_INVALID);
    /* A real change at the same instant does send (the update and fresh checks). */
    wzp_addr other = wzp_sim_addr("10.0.1.9");
    assert_int_equal(wzp_core_set_host_addrs(w.a.core, &other, 1, wzp_sim_now(w.sim)), 1);
    assert_true(flush_count(&w.a) > 0);
    world_free(&w);
}

/* a's LAN address changes mid-call (10.0.1.2 -> 10.0.1.3, a new NAT mapping):
 * the core is told, b learns a's new candidates, media carries on over the
 * relay meanwhile, and the call goes direct again on the new address. */
static void test_host_address_change(void **state)
{
    world w;
    world_call(&w, 7, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    wzp_ice_agent *bice = wzp_voicecall_ice(wzp_core__voicecall(w.b.core, w.b.call));
    wzp_addr old_route = wzp_ice_route_get(bice).remote;
    uint32_t changes = sim_stats(&w.b).path_changes;

    wzp_sim_host *ha = wzp_sim_sock_host(w.a.sock);
    wzp_sim_link ll = {.latency = WZP_MS(1)};
    assert_int_equal(wzp_sim_host_add_addr(ha, wzp_sim_router_lan(w.a.rt), "10.0.1.3", ll), 0);
    wzp_sim_sock_close(w.a.sock); /* the old address is gone */
    w.a.sock = wzp_sim_sock_bind(ha, "10.0.1.3:5000", sim_client_recv, &w.a);
    assert_non_null(w.a.sock);
    wzp_addr nh = wzp_sim_addr("10.0.1.3");
    assert_int_equal(wzp_core_set_host_addrs(w.a.core, &nh, 1, wzp_sim_now(w.sim)), 1);
    sim_client_kick(&w.a);
    wzp_sig_candidate local[WZP_SIG_MAX_CANDIDATES];
    size_t n_local = wzp_voicecall_local_candidates(wzp_core__voicecall(w.a.core, w.a.call), local,
                                                    WZP_SIG_MAX_CANDIDATES);
    wzp_addr host = wzp_sim_addr("10.0.1.3:5000"), gone = wzp_sim_addr("10.0.1.2:5000");
    bool has_new = false, has_old = false;
    for (size_t i = 0; i < n_local; i++) {
        has_new |= wzp_addr_equal(&local[i].addr, &host);
        has_old |= wzp_addr_equal(&local[i].addr, &gone);
    }
    assert_true(has_new);
    assert_false(has_old);

    uint64_t got = sim_stats(&w.b).frames_received;
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_true(peer_has_remote(w.b.core, w.b.call, &host)); /* the CandidatesUpdate arrived */
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(20)));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_true(both_direct(&w.a, &w.b));
    wzp_addr new_route = wzp_ice_route_get(bice).remote;
    assert_false(wzp_addr_equal(&new_route, &old_route)); /* a's new NAT mapping */
    assert_true(sim_stats(&w.b).path_changes > changes);  /* b saw a's old address die */
    wzp_call_stats sb = sim_stats(&w.b);
    printf("after the move: b received %llu frames, lost %llu, b path changes %u\n",
           (unsigned long long)(sb.frames_received - got), (unsigned long long)sb.frames_lost,
           sb.path_changes - changes);
    assert_true(sb.frames_received - got >= 90); /* >= 2 s of 50 frames/s: media kept flowing */
    assert_true(sb.frames_lost <= 15);
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE);
    assert_int_equal(w.b.state, WZP_CALL_ACTIVE);
    world_free(&w);
}

/* a's address set changes while its Offer is ringing at b: once the call is
 * set up, b is sent the new candidates (the Offer carried the old ones). */
static void test_host_change_before_setup(void **state)
{
    world w;
    w.sim = wzp_sim_new(9);
    sim_relay_start(&w.r, w.sim);
    sim_client_start(&w.a, w.sim, &w.r, 0, WZP_SIM_EI, false);
    sim_client_start(&w.b, w.sim, &w.r, 1, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_registered, &w.a, &w.b, WZP_SEC(5)));
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char text[WZP_FINGERPRINT_STRLEN];
    wzp_identity_fingerprint(w.b.id, fp);
    wzp_fingerprint_format(fp, text, sizeof(text));
    assert_int_equal(wzp_core_call(w.a.core, text, NULL, NULL, &w.a.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.a);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(300));
    assert_int_equal(w.b.state, WZP_CALL_RINGING);
    wzp_addr hosts[2] = {wzp_sim_addr("10.0.1.2"), wzp_sim_addr("10.0.1.77")};
    assert_int_equal(wzp_core_set_host_addrs(w.a.core, hosts, 2, wzp_sim_now(w.sim)), 1);
    sim_client_kick(&w.a);
    assert_int_equal(wzp_core_answer(w.b.core, w.b.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.b);
    assert_true(sim_run(w.sim, both_active, &w.a, &w.b, WZP_SEC(5)));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    wzp_addr added = wzp_sim_addr("10.0.1.77:5000");
    assert_true(peer_has_remote(w.b.core, w.b.call, &added));
    world_free(&w);
}

static wzp_addr want_route; /* for a_direct_to */
static bool a_direct_to(simclient *a, simclient *b)
{
    (void)b;
    wzp_ice_route r = wzp_ice_route_get(wzp_voicecall_ice(wzp_core__voicecall(a->core, a->call)));
    return r.kind == WZP_ROUTE_DIRECT && wzp_addr_equal(&r.remote, &want_route);
}

/*
 * a and b share a LAN and talk directly over it. b's address 10.0.1.3 goes
 * (a new one, 10.0.1.4, comes): b sends its complete candidate set, a drops
 * the pair to 10.0.1.3 and moves to the relay as soon as the update arrives
 * -- well before its dead-path timer would have noticed -- and goes direct
 * again to b's new address.
 */
static void test_peer_withdraws_active_address(void **state)
{
    world w;
    w.sim = wzp_sim_new(10);
    sim_relay_start(&w.r, w.sim);
    wzp_sim_router *rt = sim_router_new(w.sim, 0, WZP_SIM_EI);
    sim_client_join(&w.a, w.sim, &w.r, rt, "10.0.1.2", false);
    sim_client_join(&w.b, w.sim, &w.r, rt, "10.0.1.3", false);
    world_connect(&w);
    wzp_addr old_b = wzp_sim_addr("10.0.1.3:5000"), new_b = wzp_sim_addr("10.0.1.4:5000");
    want_route = old_b;
    assert_true(sim_run(w.sim, a_direct_to, &w.a, &w.b, WZP_SEC(10)));
    wzp_ice_agent *aice = wzp_voicecall_ice(wzp_core__voicecall(w.a.core, w.a.call));
    wzp_ice_stats st0, st;
    wzp_ice_get_stats(aice, &st0);
    wzp_call_stats sa0 = sim_stats(&w.a);

    wzp_sim_host *hb = wzp_sim_sock_host(w.b.sock);
    wzp_sim_link ll = {.latency = WZP_MS(1)};
    assert_int_equal(wzp_sim_host_add_addr(hb, wzp_sim_router_lan(rt), "10.0.1.4", ll), 0);
    wzp_sim_sock_close(w.b.sock); /* 10.0.1.3 is gone */
    w.b.sock = wzp_sim_sock_bind(hb, "10.0.1.4:5000", sim_client_recv, &w.b);
    assert_non_null(w.b.sock);
    wzp_ts t0 = wzp_sim_now(w.sim);
    w.a.relay_at = 0;
    wzp_addr nh = wzp_sim_addr("10.0.1.4");
    assert_int_equal(wzp_core_set_host_addrs(w.b.core, &nh, 1, t0), 1);
    sim_client_kick(&w.b);

    want_route = new_b;
    assert_true(sim_run(w.sim, a_direct_to, &w.a, &w.b, WZP_SEC(10)));
    wzp_ice_config def;
    wzp_ice_config_default(&def);
    printf("a to relay %lld ms after b's change (dead_after %lld ms)\n",
           (long long)((w.a.relay_at - t0) / WZP_MS(1)), (long long)(def.dead_after / WZP_MS(1)));
    assert_true(w.a.relay_at > t0);
    /*
     * Virtual time. The dead-path timer fires dead_after after the last packet
     * from b (media every 20 ms, so no earlier than t0 + 100 ms); the update
     * needs one trip through the relay (~32 ms here).
     */
    assert_true(w.a.relay_at < t0 + def.dead_after / 2);
    wzp_ice_get_stats(aice, &st);
    assert_true(st.remote_sets >= 1);
    assert_true(st.remote_withdrawn >= 1);
    assert_int_equal(st.fallbacks, st0.fallbacks); /* a never waited for the path to die */
    assert_false(peer_has_remote(w.a.core, w.a.call, &old_b));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_true(a_direct_to(&w.a, &w.b));
    wzp_call_stats sa = sim_stats(&w.a);
    printf("a: lost %llu, received %llu since the change\n",
           (unsigned long long)(sa.frames_lost - sa0.frames_lost),
           (unsigned long long)(sa.frames_received - sa0.frames_received));
    assert_true(sa.frames_lost <= 15); /* as the failover tests accept */
    assert_true(sa.frames_received - sa0.frames_received >= 50);
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE);
    assert_int_equal(w.b.state, WZP_CALL_ACTIVE);
    check_counters(&w.a);
    check_counters(&w.b);
    world_free(&w);
}

/*
 * Through the real signaling path (b's signal client -> relay -> a): an
 * old-style add-only update only adds; a complete set withdraws what it
 * omits; an older generation arriving after a newer one changes nothing
 * (here it would have withdrawn the active pair).
 */
static void test_candidate_set_generations(void **state)
{
    world w;
    world_call(&w, 11, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(sim_run(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    wzp_voicecall *bc = wzp_core__voicecall(w.b.core, w.b.call);
    wzp_ice_agent *aice = wzp_voicecall_ice(wzp_core__voicecall(w.a.core, w.a.call));
    wzp_ice_route r0 = wzp_ice_route_get(aice);
    wzp_sig_candidate b_local[WZP_SIG_MAX_CANDIDATES];
    size_t b_n = wzp_voicecall_local_candidates(bc, b_local, WZP_SIG_MAX_CANDIDATES);
    uint32_t changes = sim_stats(&w.a).path_changes;
    wzp_addr extra = wzp_sim_addr("10.0.2.77:5000");
    wzp_sig_candidate x = {.type = WZP_SIG_CAND_HOST, .priority = 1, .addr = extra};

    assert_int_equal(
        wzp_sigc_update_candidates(w.b.core->sc, wzp_voicecall_sig(bc), &x, 1, wzp_sim_now(w.sim)),
        0);
    sim_client_kick(&w.b);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_true(peer_has_remote(w.a.core, w.a.call, &extra));
    assert_true(peer_has_remote(w.a.core, w.a.call, &r0.remote));

    assert_int_equal(wzp_sigc_send_candidate_set(w.b.core->sc, wzp_voicecall_sig(bc), 5, b_local,
                                                 b_n, NULL, wzp_sim_now(w.sim)),
                     0);
    sim_client_kick(&w.b);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_false(peer_has_remote(w.a.core, w.a.call, &extra));

    assert_int_equal(wzp_sigc_send_candidate_set(w.b.core->sc, wzp_voicecall_sig(bc), 3, &x, 1,
                                                 NULL, wzp_sim_now(w.sim)),
                     0);
    sim_client_kick(&w.b);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_false(peer_has_remote(w.a.core, w.a.call, &extra));
    assert_true(peer_has_remote(w.a.core, w.a.call, &r0.remote));
    wzp_ice_stats st;
    wzp_ice_get_stats(aice, &st);
    assert_int_equal(st.remote_sets, 1);
    assert_int_equal(st.remote_sets_stale, 1);
    assert_int_equal(st.remote_withdrawn, 1);
    wzp_ice_route r = wzp_ice_route_get(aice);
    assert_int_equal(r.kind, WZP_ROUTE_DIRECT);
    assert_true(wzp_addr_equal(&r.remote, &r0.remote));
    assert_int_equal(sim_stats(&w.a).path_changes, changes);
    check_counters(&w.a);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nat_direct_and_keepalive),
        cmocka_unit_test(test_fallback_and_recovery),
        cmocka_unit_test(test_relay_before_auth),
        cmocka_unit_test(test_relay_dies_direct_call_survives),
        cmocka_unit_test(test_symmetric_stays_relay),
        cmocka_unit_test(test_direct_disabled),
        cmocka_unit_test(test_host_addrs_unchanged),
        cmocka_unit_test(test_host_address_change),
        cmocka_unit_test(test_host_change_before_setup),
        cmocka_unit_test(test_peer_withdraws_active_address),
        cmocka_unit_test(test_candidate_set_generations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
