/*
 * The sans-I/O client core on a simulated network (tests/support/netsim.h),
 * virtual clock, deterministic: two clients behind NATs and a relay built
 * from the relay's own sans-I/O pieces (QUIC endpoint + control plane) with a
 * minimal channel forwarder. Covers what real loopback sockets cannot:
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
#include "wire/demux.h"
#include "wire/relay_frame.h"

/* --- a relay: QUIC endpoint + control plane + a tiny channel forwarder ----------------------- */

#define MAX_CONNS 8
#define MAX_CHANS 32

typedef struct simrelay {
    wzp_sim *sim;
    wzp_sim_sock *sock;
    wzp_identity *id;
    wzp_quic_endpoint *ep;
    wzp_relay_control *ctl;
    struct {
        wzp_quic_conn *conn;
        uint64_t handle;
        wzp_addr addr; /* where the control plane believes it is */
    } conns[MAX_CONNS];
    uint64_t next_handle;
    struct simchan {
        bool open;
        uint32_t partner;
        wzp_addr addr;
    } chans[MAX_CHANS];
    uint32_t next_chan;
    uint64_t timer;
    uint64_t forwarded, keepalives;
} simrelay;

static wzp_quic_conn *relay_conn(simrelay *r, uint64_t handle)
{
    for (int i = 0; i < MAX_CONNS; i++)
        if (r->conns[i].conn && r->conns[i].handle == handle)
            return r->conns[i].conn;
    return NULL;
}

static void relay_ctl_send(void *user, uint64_t h, const uint8_t *msg, size_t len)
{
    wzp_quic_conn *c = relay_conn(user, h);
    if (c)
        wzp_quic_conn_send_message(c, msg, len);
}

static void relay_ctl_close(void *user, uint64_t h, wzp_relay_close_code code, const char *why)
{
    wzp_quic_conn *c = relay_conn(user, h);
    if (c)
        wzp_quic_conn_close(c, 0x100 + code, why);
}

static int relay_open(void *user, uint64_t call, uint64_t ca, const wzp_addr *aa, uint64_t cb,
                      const wzp_addr *ab, uint32_t *chan_a, uint32_t *chan_b)
{
    simrelay *r = user;
    if (r->next_chan + 2 >= MAX_CHANS)
        return WZP_ERR_LIMIT;
    uint32_t a = ++r->next_chan, b = ++r->next_chan;
    r->chans[a] = (struct simchan){true, b, *aa};
    r->chans[b] = (struct simchan){true, a, *ab};
    *chan_a = a;
    *chan_b = b;
    return 0;
}

static void relay_close_chans(void *user, uint32_t a, uint32_t b)
{
    simrelay *r = user;
    if (a < MAX_CHANS)
        r->chans[a].open = false;
    if (b < MAX_CHANS)
        r->chans[b].open = false;
}

static void relay_chan_moved(void *user, uint32_t chan, const wzp_addr *addr)
{
    simrelay *r = user;
    if (chan < MAX_CHANS)
        r->chans[chan].addr = *addr;
}

/* NAT rebinding, as the real relay does it: the control plane (and with it the
 * client's channels) follows QUIC to the client's new address. */
static void relay_scan_addrs(simrelay *r)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        if (!r->conns[i].conn)
            continue;
        wzp_addr cur;
        wzp_quic_conn_remote_addr(r->conns[i].conn, &cur);
        if (cur.len == 0 || wzp_addr_equal(&cur, &r->conns[i].addr))
            continue;
        r->conns[i].addr = cur;
        wzp_relay_control_on_addr_change(r->ctl, r->conns[i].handle, &cur, wzp_sim_now(r->sim));
    }
}

static int q_accept(void *user, const wzp_addr *local, const wzp_addr *remote,
                    wzp_quic_conn_opts *o)
{
    simrelay *r = user;
    o->pin_mode = WZP_QUIC_PIN_ANY;
    o->max_message = 8192;
    o->user = (void *)(uintptr_t)++r->next_handle;
    return 0;
}

static void q_established(void *user, wzp_quic_conn *c, const uint8_t *fp)
{
    simrelay *r = user;
    uint64_t h = (uintptr_t)wzp_quic_conn_user(c);
    for (int i = 0; i < MAX_CONNS; i++)
        if (!r->conns[i].conn) {
            r->conns[i].conn = c;
            r->conns[i].handle = h;
            break;
        }
    wzp_addr remote;
    wzp_quic_conn_remote_addr(c, &remote);
    for (int i = 0; i < MAX_CONNS; i++)
        if (r->conns[i].conn == c)
            r->conns[i].addr = remote;
    wzp_relay_control_on_connect(r->ctl, h, fp, &remote, wzp_sim_now(r->sim));
}

static void q_message(void *user, wzp_quic_conn *c, const uint8_t *d, size_t len)
{
    simrelay *r = user;
    if (len)
        wzp_relay_control_on_message(r->ctl, (uintptr_t)wzp_quic_conn_user(c), d, len,
                                     wzp_sim_now(r->sim));
}

static void q_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info)
{
    simrelay *r = user;
    uint64_t h = (uintptr_t)wzp_quic_conn_user(c);
    for (int i = 0; i < MAX_CONNS; i++)
        if (r->conns[i].conn == c)
            r->conns[i].conn = NULL;
    wzp_relay_control_on_disconnect(r->ctl, h, wzp_sim_now(r->sim));
}

static void relay_send(void *user, const wzp_addr *local, const wzp_addr *remote,
                       const uint8_t *pkt, size_t len)
{
    simrelay *r = user;
    if (r->sock) /* NULL once the test killed the relay */
        wzp_sim_send(r->sock, remote, pkt, len);
}

static void relay_timer(void *ctx);

static void relay_kick(simrelay *r)
{
    wzp_ts now = wzp_sim_now(r->sim);
    relay_scan_addrs(r);
    wzp_quic_endpoint_flush(r->ep, now, relay_send, r);
    wzp_ts d = wzp_ts_min(wzp_quic_endpoint_expiry(r->ep), wzp_relay_control_next_deadline(r->ctl));
    wzp_sim_cancel(r->sim, r->timer);
    r->timer = d == WZP_TS_NEVER ? 0 : wzp_sim_at(r->sim, d, relay_timer, r);
}

static void relay_timer(void *ctx)
{
    simrelay *r = ctx;
    wzp_ts now = wzp_sim_now(r->sim);
    r->timer = 0;
    wzp_quic_endpoint_handle_expiry(r->ep, now);
    wzp_relay_control_handle_timer(r->ctl, now);
    relay_kick(r);
}

static void relay_recv(void *ctx, wzp_sim_sock *s, const wzp_addr *from, const uint8_t *d,
                       size_t len)
{
    simrelay *r = ctx;
    wzp_ts now = wzp_sim_now(r->sim);
    if (wzp_pkt_classify(d, len) == WZP_PKT_QUIC) {
        wzp_quic_endpoint_feed(r->ep, wzp_sim_sock_addr(s), from, d, len, now);
    } else if (wzp_pkt_classify(d, len) == WZP_PKT_RELAY) {
        wzp_relay_frame f;
        if (wzp_relay_frame_decode(&f, d, len) == 0 && f.channel < MAX_CHANS &&
            r->chans[f.channel].open && wzp_addr_equal(&r->chans[f.channel].addr, from)) {
            uint8_t buf[2048];
            memcpy(buf, d, len);
            if (f.type == WZP_RELAY_FRAME_DATA) {
                uint32_t p = r->chans[f.channel].partner;
                wzp_relay_frame_rewrite(buf, WZP_RELAY_FRAME_DATA, p);
                wzp_sim_send(r->sock, &r->chans[p].addr, buf, len);
                r->forwarded++;
            } else if (f.type == WZP_RELAY_FRAME_KEEPALIVE) {
                wzp_relay_frame_rewrite(buf, WZP_RELAY_FRAME_KEEPALIVE_ACK, f.channel);
                wzp_sim_send(r->sock, from, buf, len);
                r->keepalives++;
            }
        }
    }
    relay_kick(r);
}

static void relay_start(simrelay *r, wzp_sim *sim)
{
    memset(r, 0, sizeof(*r));
    r->sim = sim;
    wzp_sim_host *h = wzp_sim_host_new(sim, "relay");
    wzp_sim_link link = {.latency = WZP_MS(5)};
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_internet(sim), "203.0.113.1", link), 0);
    wzp_sim_host_set_infra(h, true);
    r->sock = wzp_sim_sock_bind(h, "203.0.113.1:4433", relay_recv, r);
    assert_int_equal(wzp_identity_generate(&r->id), 0);
    wzp_quic_callbacks qcb = {q_accept, q_established, NULL, q_message, q_closed};
    assert_int_equal(wzp_quic_endpoint_new(r->id, true, &qcb, r, &r->ep), 0);
    wzp_relay_control_callbacks ccb = {.user = r,
                                       .send = relay_ctl_send,
                                       .close = relay_ctl_close,
                                       .channels_open = relay_open,
                                       .channels_close = relay_close_chans,
                                       .channel_moved = relay_chan_moved};
    r->ctl = wzp_relay_control_new(NULL, &ccb);
    assert_non_null(r->ctl);
}

static void relay_free(simrelay *r)
{
    wzp_sim_cancel(r->sim, r->timer);
    wzp_relay_control_free(r->ctl);
    wzp_quic_endpoint_free(r->ep);
    wzp_identity_free(r->id);
}

/* --- a client: the core on one simulated IPv4 socket ---------------------------------------------
 */

typedef struct simclient {
    wzp_sim *sim;
    wzp_sim_sock *sock;
    wzp_sim_router *rt; /* the client's NAT */
    wzp_identity *id;
    wzp_core *core;
    uint64_t timer;
    bool auto_answer;
    int registrations;
    uint32_t call;
    wzp_call_state state;
    int reason;
    int path_events;
    wzp_ts relay_at; /* virtual time of the latest route change to the relay */
    uint64_t frames_played;
} simclient;

static void client_kick(simclient *c);

static void core_event(void *user, const wzp_core_event *ev)
{
    simclient *c = user;
    wzp_ts now = wzp_sim_now(c->sim);
    switch (ev->type) {
    case WZP_CORE_EV_REGISTERED:
        c->registrations++;
        break;
    case WZP_CORE_EV_INCOMING:
        c->call = ev->call;
        c->state = ev->state;
        if (c->auto_answer)
            assert_int_equal(wzp_core_answer(c->core, ev->call, now), 0);
        break;
    case WZP_CORE_EV_CALL_STATE:
        if (ev->call == c->call) {
            c->state = ev->state;
            c->reason = ev->err;
        }
        break;
    case WZP_CORE_EV_PATH: {
        c->path_events++;
        core_call *call = wzp_core__find(c->core, ev->call); /* white-box: the new route */
        if (call && call->ice && wzp_ice_route_get(call->ice).kind == WZP_ROUTE_RELAY)
            c->relay_at = now;
        break;
    }
    case WZP_CORE_EV_PCM:
        c->frames_played++;
        break;
    default:
        break;
    }
}

static bool tone_source(void *user, uint32_t call, void *call_user, int16_t *pcm)
{
    for (int i = 0; i < WZP_FRAME_SAMPLES; i++)
        pcm[i] = (int16_t)((i % 48) * 400 - 9600);
    return true;
}

static void client_send(void *user, int sock, const wzp_addr *to, const uint8_t *pkt, size_t len)
{
    simclient *c = user;
    assert_int_equal(sock, 0); /* IPv4 only here */
    wzp_sim_send(c->sock, to, pkt, len);
}

static void client_timer(void *ctx)
{
    simclient *c = ctx;
    c->timer = 0;
    wzp_core_handle_timer(c->core, wzp_sim_now(c->sim));
    client_kick(c);
}

static void client_kick(simclient *c)
{
    wzp_ts now = wzp_sim_now(c->sim);
    wzp_core_flush(c->core, now, client_send, c);
    wzp_ts d = wzp_core_next_deadline(c->core);
    wzp_sim_cancel(c->sim, c->timer);
    c->timer = d == WZP_TS_NEVER ? 0 : wzp_sim_at(c->sim, d, client_timer, c);
}

static void client_recv(void *ctx, wzp_sim_sock *s, const wzp_addr *from, const uint8_t *d,
                        size_t len)
{
    simclient *c = ctx;
    wzp_core_feed(c->core, 0, from, d, len, wzp_sim_now(c->sim));
    client_kick(c);
}

/* A client at ip:5000 on the LAN of router rt. */
static void client_join(simclient *c, wzp_sim *sim, simrelay *r, wzp_sim_router *rt, const char *ip,
                        bool direct_disabled)
{
    memset(c, 0, sizeof(*c));
    c->sim = sim;
    c->rt = rt;
    char bind[40];
    snprintf(bind, sizeof(bind), "%s:5000", ip);
    wzp_sim_link ll = {.latency = WZP_MS(1)};
    wzp_sim_host *h = wzp_sim_host_new(sim, ip);
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_router_lan(rt), ip, ll), 0);
    c->sock = wzp_sim_sock_bind(h, bind, client_recv, c);
    assert_non_null(c->sock);
    assert_int_equal(wzp_identity_generate(&c->id), 0);
    wzp_core_config cfg = {.id = c->id,
                           .relay = *wzp_sim_sock_addr(r->sock),
                           .direct_disabled = direct_disabled,
                           .event = core_event,
                           .pcm_source = tone_source,
                           .user = c};
    wzp_identity_fingerprint(r->id, cfg.relay_pin);
    cfg.local[0] = *wzp_sim_sock_addr(c->sock);
    assert_int_equal(wzp_core_new(&cfg, &c->core), 0);
    wzp_addr host = wzp_sim_addr(ip);
    assert_int_equal(wzp_core_add_host_addr(c->core, &host), 0);
    assert_int_equal(wzp_core_start(c->core, wzp_sim_now(sim)), 0);
    client_kick(c);
}

static wzp_sim_router *router_new(wzp_sim *sim, int idx, wzp_sim_dep mapping)
{
    char name[16], wan[32], gw[32];
    snprintf(name, sizeof(name), "nat%d", idx);
    snprintf(wan, sizeof(wan), "198.51.100.%d", idx + 1);
    snprintf(gw, sizeof(gw), "10.0.%d.1", idx + 1);
    wzp_sim_nat_cfg nat = {.mapping = mapping, .filtering = mapping, .port_preservation = true};
    wzp_sim_link wl = {.latency = WZP_MS(10)}, ll = {.latency = WZP_MS(1)};
    wzp_sim_router *rt =
        wzp_sim_router_new(sim, name, wzp_sim_internet(sim), wan, wl, gw, ll, &nat);
    assert_non_null(rt);
    return rt;
}

/* A client on its own LAN (10.0.idx+1.2) behind a NAT of the given kind. */
static void client_start(simclient *c, wzp_sim *sim, simrelay *r, int idx, wzp_sim_dep mapping,
                         bool direct_disabled)
{
    char ip[32];
    snprintf(ip, sizeof(ip), "10.0.%d.2", idx + 1);
    client_join(c, sim, r, router_new(sim, idx, mapping), ip, direct_disabled);
}

static void client_free(simclient *c)
{
    wzp_sim_cancel(c->sim, c->timer);
    wzp_core_free(c->core);
    wzp_identity_free(c->id);
}

static wzp_call_stats stats_of(simclient *c)
{
    wzp_call_stats st;
    assert_int_equal(wzp_core_get_stats(c->core, c->call, &st, wzp_sim_now(c->sim)), 0);
    return st;
}

/* Runs the simulation in 10 ms steps until cond or the virtual deadline. */
static bool run_until(wzp_sim *sim, bool (*cond)(simclient *, simclient *), simclient *a,
                      simclient *b, wzp_ts max)
{
    wzp_ts end = wzp_sim_now(sim) + max;
    while (wzp_sim_now(sim) < end) {
        if (cond && cond(a, b))
            return true;
        wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_MS(10));
    }
    return cond ? cond(a, b) : true;
}

static bool both_registered(simclient *a, simclient *b)
{
    return a->registrations && b->registrations;
}
static bool both_active(simclient *a, simclient *b)
{
    return a->state == WZP_CALL_ACTIVE && b->state == WZP_CALL_ACTIVE;
}
static bool both_direct(simclient *a, simclient *b)
{
    return stats_of(a).path == WZP_PATH_DIRECT && stats_of(b).path == WZP_PATH_DIRECT;
}
static bool both_relay(simclient *a, simclient *b)
{
    return stats_of(a).path == WZP_PATH_RELAY && stats_of(b).path == WZP_PATH_RELAY;
}
static bool both_ended(simclient *a, simclient *b)
{
    return a->state == WZP_CALL_ENDED && b->state == WZP_CALL_ENDED;
}

typedef struct world {
    wzp_sim *sim;
    simrelay r;
    simclient a, b;
} world;

static void world_connect(world *w);

/* a calls b (by fingerprint) and both reach ACTIVE. */
static void world_call(world *w, uint64_t seed, wzp_sim_dep nat_a, wzp_sim_dep nat_b,
                       bool direct_disabled)
{
    w->sim = wzp_sim_new(seed);
    relay_start(&w->r, w->sim);
    client_start(&w->a, w->sim, &w->r, 0, nat_a, direct_disabled);
    client_start(&w->b, w->sim, &w->r, 1, nat_b, direct_disabled);
    world_connect(w);
}

/* Registration, then a calls b (auto-answered) until both are ACTIVE. */
static void world_connect(world *w)
{
    w->b.auto_answer = true;
    assert_true(run_until(w->sim, both_registered, &w->a, &w->b, WZP_SEC(5)));
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char text[WZP_FINGERPRINT_STRLEN];
    wzp_identity_fingerprint(w->b.id, fp);
    wzp_fingerprint_format(fp, text, sizeof(text));
    assert_int_equal(wzp_core_call(w->a.core, text, NULL, &w->a.call, wzp_sim_now(w->sim)), 0);
    client_kick(&w->a);
    assert_true(run_until(w->sim, both_active, &w->a, &w->b, WZP_SEC(5)));
}

static void world_free(world *w)
{
    client_free(&w->a);
    client_free(&w->b);
    relay_free(&w->r);
    wzp_sim_free(w->sim);
}

static void check_counters(simclient *c)
{
    const wzp_core_counters *n = wzp_core_get_counters(c->core);
    assert_true(n->rx_ctrl > 0);
    assert_int_equal(n->rx_malformed, 0);
}

/* --- tests
 * ------------------------------------------------------------------------------------------ */

/* Behind endpoint-independent NATs the call punches through, and the relay
 * channel is kept alive the whole time. */
static void test_nat_direct_and_keepalive(void **state)
{
    world w;
    world_call(&w, 1, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(run_until(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    wzp_call_stats sa = stats_of(&w.a);
    printf("direct after %lld ms, first audio after %lld ms (virtual)\n",
           (long long)sa.time_to_direct_ms, (long long)sa.time_to_first_audio_ms);
    assert_true(sa.time_to_direct_ms >= 0);
    assert_int_equal(w.a.path_events, (int)sa.path_changes);
    uint64_t fwd_before = w.r.forwarded;
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(40));
    /* Still direct; media no longer through the relay, but keep-alives are. */
    assert_true(both_direct(&w.a, &w.b));
    assert_true(w.r.keepalives >= 4); /* 2 per client over 40 s */
    assert_true(w.r.forwarded - fwd_before < 50);
    assert_true(wzp_core_get_counters(w.a.core)->rx_keepalive_ack >= 2);
    assert_true(wzp_core_get_counters(w.a.core)->rx_direct > 1000);
    sa = stats_of(&w.a);
    assert_true(sa.frames_received > 1500);
    assert_true(sa.loss_pct < 1.0);
    /* b's Stats messages tell a what b hears. */
    assert_true(sa.peer_frames_received > 1500);
    assert_true(stats_of(&w.b).peer_frames_received > 1500);
    /* Mute travels to the peer. */
    assert_int_equal(wzp_core_set_mute(w.a.core, w.a.call, true), 0);
    client_kick(&w.a);
    run_until(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_true(stats_of(&w.b).peer_muted);
    check_counters(&w.a);
    check_counters(&w.b);
    /* b hangs up: a sees HANGUP. */
    assert_int_equal(wzp_core_hangup(w.b.core, w.b.call, wzp_sim_now(w.sim)), 0);
    client_kick(&w.b);
    assert_true(run_until(w.sim, both_ended, &w.a, &w.b, WZP_SEC(5)));
    assert_int_equal(w.a.reason, WZP_ERR_HANGUP);
    assert_int_equal(w.b.reason, 0);
    world_free(&w);
}

/* The direct path dies: back to the relay without losing the call; then back to direct. */
static void test_fallback_and_recovery(void **state)
{
    world w;
    world_call(&w, 2, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(run_until(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    wzp_sim_host *ha = wzp_sim_sock_host(w.a.sock);
    wzp_sim_host_set_drop_direct(ha, true);
    assert_true(run_until(w.sim, both_relay, &w.a, &w.b, WZP_SEC(5)));
    uint64_t got = stats_of(&w.b).frames_received;
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(3));
    assert_true(stats_of(&w.b).frames_received >= got + 140); /* ~150 in 3 s: media flows */
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE);
    wzp_sim_host_set_drop_direct(ha, false);
    assert_true(run_until(w.sim, both_direct, &w.a, &w.b, WZP_SEC(20)));
    wzp_call_stats sa = stats_of(&w.a);
    wzp_call_stats sb = stats_of(&w.b);
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

/* The relay dies during a direct call: registration is lost (and retried),
 * the call carries on over its own connection. */
static int unregistered_events;
static void count_unreg(void *user, const wzp_core_event *ev)
{
    if (ev->type == WZP_CORE_EV_UNREGISTERED)
        unregistered_events++;
    core_event(user, ev);
}

static void test_relay_dies_direct_call_survives(void **state)
{
    world w;
    world_call(&w, 6, WZP_SIM_EI, WZP_SIM_EI, false);
    assert_true(run_until(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    w.a.core->cfg.event = count_unreg; /* white-box: count a's registration losses */
    unregistered_events = 0;
    wzp_sim_sock_close(w.r.sock);
    w.r.sock = NULL;
    uint64_t got = stats_of(&w.b).frames_received;
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(45));
    assert_true(unregistered_events >= 1);
    assert_false(wzp_core_registered(w.a.core));
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE);
    assert_int_equal(w.b.state, WZP_CALL_ACTIVE);
    assert_true(both_direct(&w.a, &w.b));
    assert_true(stats_of(&w.b).frames_received > got + 2000); /* 45 s of media kept flowing */
    world_free(&w);
}

/* Symmetric NATs on both sides: no direct path; the call works on the relay. */
static void test_symmetric_stays_relay(void **state)
{
    world w;
    world_call(&w, 3, WZP_SIM_APD, WZP_SIM_APD, false);
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(5));
    assert_true(both_relay(&w.a, &w.b));
    assert_int_equal(stats_of(&w.a).time_to_direct_ms, -1);
    assert_true(stats_of(&w.a).frames_received > 200);
    assert_true(stats_of(&w.b).frames_received > 200);
    /* a hangs up this time. */
    assert_int_equal(wzp_core_hangup(w.a.core, w.a.call, wzp_sim_now(w.sim)), 0);
    client_kick(&w.a);
    assert_true(run_until(w.sim, both_ended, &w.a, &w.b, WZP_SEC(5)));
    assert_int_equal(w.b.reason, WZP_ERR_HANGUP);
    world_free(&w);
}

/* direct_disabled: no candidates, no probes, relay only. */
static void test_direct_disabled(void **state)
{
    world w;
    world_call(&w, 4, WZP_SIM_EI, WZP_SIM_EI, true);
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(3));
    assert_true(both_relay(&w.a, &w.b));
    assert_int_equal(wzp_core_get_counters(w.a.core)->rx_probe, 0);
    assert_int_equal(wzp_core_get_counters(w.b.core)->rx_direct, 0);
    assert_int_equal(stats_of(&w.a).path_changes, 0);
    world_free(&w);
}

static size_t sent_count;
static void count_send(void *user, int sock, const wzp_addr *to, const uint8_t *pkt, size_t len)
{
    sent_count++;
    client_send(user, sock, to, pkt, len);
}

/* Datagrams a's core sends when flushed right now (after a flush at the same instant). */
static size_t flush_count(simclient *c)
{
    sent_count = 0;
    wzp_core_flush(c->core, wzp_sim_now(c->sim), count_send, c);
    client_kick(c);
    return sent_count;
}

static bool peer_has_remote(wzp_core *core, uint32_t id, const wzp_addr *addr)
{
    core_call *call = wzp_core__find(core, id); /* white-box: the peer's ICE pairs */
    assert_non_null(call);
    assert_non_null(call->ice);
    wzp_ice_pair_info pairs[32];
    size_t n = wzp_ice_pairs(call->ice, pairs, 32);
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
    assert_true(run_until(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    core_call *call = wzp_core__find(w.a.core, w.a.call);
    size_t n_local = call->n_local;
    wzp_addr same[3] = {wzp_sim_addr("10.0.1.2:7"), wzp_sim_addr("[2001:db8::1]"),
                        wzp_sim_addr("10.0.1.2")};
    client_kick(&w.a);
    assert_int_equal(wzp_core_set_host_addrs(w.a.core, same, 3, wzp_sim_now(w.sim)), 0);
    assert_int_equal(flush_count(&w.a), 0);
    assert_int_equal(call->n_local, n_local);
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
    assert_true(run_until(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    core_call *bc = wzp_core__find(w.b.core, w.b.call);
    wzp_addr old_route = wzp_ice_route_get(bc->ice).remote;
    uint32_t changes = stats_of(&w.b).path_changes;

    wzp_sim_host *ha = wzp_sim_sock_host(w.a.sock);
    wzp_sim_link ll = {.latency = WZP_MS(1)};
    assert_int_equal(wzp_sim_host_add_addr(ha, wzp_sim_router_lan(w.a.rt), "10.0.1.3", ll), 0);
    wzp_sim_sock_close(w.a.sock); /* the old address is gone */
    w.a.sock = wzp_sim_sock_bind(ha, "10.0.1.3:5000", client_recv, &w.a);
    assert_non_null(w.a.sock);
    wzp_addr nh = wzp_sim_addr("10.0.1.3");
    assert_int_equal(wzp_core_set_host_addrs(w.a.core, &nh, 1, wzp_sim_now(w.sim)), 1);
    client_kick(&w.a);
    core_call *ac = wzp_core__find(w.a.core, w.a.call);
    wzp_addr host = wzp_sim_addr("10.0.1.3:5000"), gone = wzp_sim_addr("10.0.1.2:5000");
    bool has_new = false, has_old = false;
    for (size_t i = 0; i < ac->n_local; i++) {
        has_new |= wzp_addr_equal(&ac->local[i].addr, &host);
        has_old |= wzp_addr_equal(&ac->local[i].addr, &gone);
    }
    assert_true(has_new);
    assert_false(has_old);

    uint64_t got = stats_of(&w.b).frames_received;
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_true(peer_has_remote(w.b.core, w.b.call, &host)); /* the CandidatesUpdate arrived */
    assert_true(run_until(w.sim, both_direct, &w.a, &w.b, WZP_SEC(20)));
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_true(both_direct(&w.a, &w.b));
    wzp_addr new_route = wzp_ice_route_get(bc->ice).remote;
    assert_false(wzp_addr_equal(&new_route, &old_route)); /* a's new NAT mapping */
    assert_true(stats_of(&w.b).path_changes > changes);   /* b saw a's old address die */
    wzp_call_stats sb = stats_of(&w.b);
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
    relay_start(&w.r, w.sim);
    client_start(&w.a, w.sim, &w.r, 0, WZP_SIM_EI, false);
    client_start(&w.b, w.sim, &w.r, 1, WZP_SIM_EI, false);
    assert_true(run_until(w.sim, both_registered, &w.a, &w.b, WZP_SEC(5)));
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char text[WZP_FINGERPRINT_STRLEN];
    wzp_identity_fingerprint(w.b.id, fp);
    wzp_fingerprint_format(fp, text, sizeof(text));
    assert_int_equal(wzp_core_call(w.a.core, text, NULL, &w.a.call, wzp_sim_now(w.sim)), 0);
    client_kick(&w.a);
    run_until(w.sim, NULL, &w.a, &w.b, WZP_MS(300));
    assert_int_equal(w.b.state, WZP_CALL_RINGING);
    wzp_addr hosts[2] = {wzp_sim_addr("10.0.1.2"), wzp_sim_addr("10.0.1.77")};
    assert_int_equal(wzp_core_set_host_addrs(w.a.core, hosts, 2, wzp_sim_now(w.sim)), 1);
    client_kick(&w.a);
    assert_int_equal(wzp_core_answer(w.b.core, w.b.call, wzp_sim_now(w.sim)), 0);
    client_kick(&w.b);
    assert_true(run_until(w.sim, both_active, &w.a, &w.b, WZP_SEC(5)));
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    wzp_addr added = wzp_sim_addr("10.0.1.77:5000");
    assert_true(peer_has_remote(w.b.core, w.b.call, &added));
    world_free(&w);
}

static wzp_addr want_route; /* for a_direct_to */
static bool a_direct_to(simclient *a, simclient *b)
{
    (void)b;
    core_call *call = wzp_core__find(a->core, a->call);
    wzp_ice_route r = wzp_ice_route_get(call->ice);
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
    relay_start(&w.r, w.sim);
    wzp_sim_router *rt = router_new(w.sim, 0, WZP_SIM_EI);
    client_join(&w.a, w.sim, &w.r, rt, "10.0.1.2", false);
    client_join(&w.b, w.sim, &w.r, rt, "10.0.1.3", false);
    world_connect(&w);
    wzp_addr old_b = wzp_sim_addr("10.0.1.3:5000"), new_b = wzp_sim_addr("10.0.1.4:5000");
    want_route = old_b;
    assert_true(run_until(w.sim, a_direct_to, &w.a, &w.b, WZP_SEC(10)));
    core_call *ac = wzp_core__find(w.a.core, w.a.call);
    wzp_ice_stats st0, st;
    wzp_ice_get_stats(ac->ice, &st0);
    wzp_call_stats sa0 = stats_of(&w.a);

    wzp_sim_host *hb = wzp_sim_sock_host(w.b.sock);
    wzp_sim_link ll = {.latency = WZP_MS(1)};
    assert_int_equal(wzp_sim_host_add_addr(hb, wzp_sim_router_lan(rt), "10.0.1.4", ll), 0);
    wzp_sim_sock_close(w.b.sock); /* 10.0.1.3 is gone */
    w.b.sock = wzp_sim_sock_bind(hb, "10.0.1.4:5000", client_recv, &w.b);
    assert_non_null(w.b.sock);
    wzp_ts t0 = wzp_sim_now(w.sim);
    w.a.relay_at = 0;
    wzp_addr nh = wzp_sim_addr("10.0.1.4");
    assert_int_equal(wzp_core_set_host_addrs(w.b.core, &nh, 1, t0), 1);
    client_kick(&w.b);

    want_route = new_b;
    assert_true(run_until(w.sim, a_direct_to, &w.a, &w.b, WZP_SEC(10)));
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
    wzp_ice_get_stats(ac->ice, &st);
    assert_true(st.remote_sets >= 1);
    assert_true(st.remote_withdrawn >= 1);
    assert_int_equal(st.fallbacks, st0.fallbacks); /* a never waited for the path to die */
    assert_false(peer_has_remote(w.a.core, w.a.call, &old_b));
    run_until(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_true(a_direct_to(&w.a, &w.b));
    wzp_call_stats sa = stats_of(&w.a);
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
    assert_true(run_until(w.sim, both_direct, &w.a, &w.b, WZP_SEC(5)));
    core_call *ac = wzp_core__find(w.a.core, w.a.call), *bc = wzp_core__find(w.b.core, w.b.call);
    wzp_ice_route r0 = wzp_ice_route_get(ac->ice);
    uint32_t changes = stats_of(&w.a).path_changes;
    wzp_addr extra = wzp_sim_addr("10.0.2.77:5000");
    wzp_sig_candidate x = {.type = WZP_SIG_CAND_HOST, .priority = 1, .addr = extra};

    assert_int_equal(wzp_sigc_update_candidates(w.b.core->sc, bc->sig, &x, 1, wzp_sim_now(w.sim)),
                     0);
    client_kick(&w.b);
    run_until(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_true(peer_has_remote(w.a.core, w.a.call, &extra));
    assert_true(peer_has_remote(w.a.core, w.a.call, &r0.remote));

    assert_int_equal(wzp_sigc_send_candidate_set(w.b.core->sc, bc->sig, 5, bc->local, bc->n_local,
                                                 wzp_sim_now(w.sim)),
                     0);
    client_kick(&w.b);
    run_until(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_false(peer_has_remote(w.a.core, w.a.call, &extra));

    assert_int_equal(
        wzp_sigc_send_candidate_set(w.b.core->sc, bc->sig, 3, &x, 1, wzp_sim_now(w.sim)), 0);
    client_kick(&w.b);
    run_until(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_false(peer_has_remote(w.a.core, w.a.call, &extra));
    assert_true(peer_has_remote(w.a.core, w.a.call, &r0.remote));
    wzp_ice_stats st;
    wzp_ice_get_stats(ac->ice, &st);
    assert_int_equal(st.remote_sets, 1);
    assert_int_equal(st.remote_sets_stale, 1);
    assert_int_equal(st.remote_withdrawn, 1);
    wzp_ice_route r = wzp_ice_route_get(ac->ice);
    assert_int_equal(r.kind, WZP_ROUTE_DIRECT);
    assert_true(wzp_addr_equal(&r.remote, &r0.remote));
    assert_int_equal(stats_of(&w.a).path_changes, changes);
    check_counters(&w.a);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nat_direct_and_keepalive),
        cmocka_unit_test(test_fallback_and_recovery),
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
