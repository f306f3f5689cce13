/* The simulated world of simworld.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/core_int.h"
#include "quic/identity_tls.h"
#include "relay/server.h"
#include "support/simworld.h"
#include "wire/demux.h"
#include "wire/park_frame.h"
#include "wire/relay_frame.h"

/* --- a relay: QUIC endpoint + control plane + a tiny channel forwarder ----------------------- */

#define MAX_CONNS 8
#define MAX_CHANS 32

static wzp_quic_conn *relay_conn(simrelay *r, uint64_t handle)
{
    for (int i = 0; i < MAX_CONNS; i++)
        if (r->conns[i].conn && r->conns[i].handle == handle)
            return r->conns[i].conn;
    return NULL;
}

/* Runs a rewrite hook on one encoded message; *len is updated in place. */
static void rewrite(simrelay *r, void (*hook)(simrelay *, uint64_t, wzp_sig_msg *), uint64_t h,
                    uint8_t *buf, size_t *len, size_t cap)
{
    wzp_sig_msg m;
    if (!hook || wzp_sig_decode(buf, *len, &m) != 0)
        return;
    hook(r, h, &m);
    int n = wzp_sig_encode(&m, buf, cap);
    assert_true(n > 0);
    *len = (size_t)n;
}

static void relay_ctl_send(void *user, uint64_t h, const uint8_t *msg, size_t len)
{
    simrelay *r = user;
    wzp_quic_conn *c = relay_conn(r, h);
    uint8_t buf[WZP_SIG_MAX_SIZE];
    if (!c || len > sizeof(buf))
        return;
    memcpy(buf, msg, len);
    rewrite(r, r->rewrite_out, h, buf, &len, sizeof(buf));
    wzp_quic_conn_send_message(c, buf, len);
}

static void relay_ctl_close(void *user, uint64_t h, wzp_relay_close_code code, const char *why)
{
    wzp_quic_conn *c = relay_conn(user, h);
    if (c)
        wzp_quic_conn_close(c, 0x100 + code, why);
}

static int relay_open(void *user, uint64_t call, uint64_t ca, const wzp_addr *aa, uint64_t cb,
                      const wzp_addr *ab, wzp_ts now, uint32_t *chan_a, uint32_t *chan_b)
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

typedef struct simrelay_conn simrelay_conn;

/* NAT rebinding, as the real relay does it: the control plane (and with it the
 * client's channels) follows QUIC to the client's new address once proved. */
static void q_path_changed(void *user, wzp_quic_conn *c, const wzp_addr *remote, wzp_ts now)
{
    simrelay_conn *sc = user;
    if (!sc->handle || wzp_addr_equal(remote, &sc->addr))
        return;
    sc->addr = *remote;
    wzp_relay_control_on_addr_change(sc->r->ctl, sc->handle, remote, now);
}

static void q_established(void *user, wzp_quic_conn *c, const uint8_t *fp, wzp_ts now)
{
    simrelay_conn *sc = user;
    sc->conn = c;
    if (!fp) { /* as the relay's shards: the key is proven by Auth, the first message */
        sc->auth_wait = true;
        assert_int_equal(wzp_quic_conn_auth_binding(c, sc->binding), 0);
        return;
    }
    sc->handle = ++sc->r->next_handle;
    memcpy(sc->fp, fp, sizeof(sc->fp));
    wzp_quic_conn_remote_addr(c, &sc->addr);
    wzp_relay_control_on_connect(sc->r->ctl, sc->handle, fp, &sc->addr, now);
}

static void q_message(void *user, wzp_quic_conn *c, const uint8_t *d, size_t len, wzp_ts now)
{
    simrelay_conn *sc = user;
    uint8_t buf[WZP_SIG_MAX_SIZE];
    if (sc->auth_wait && len) {
        wzp_sig_msg m;
        uint8_t fp[WZP_FINGERPRINT_LEN];
        sc->auth_wait = false;
        if (wzp_sig_decode(d, len, &m) != 0 || m.type != WZP_SIG_AUTH ||
            wzp_quic_auth_verify(sc->binding, m.u.auth.key, m.u.auth.key_len, m.u.auth.sig,
                                 m.u.auth.sig_len, fp, NULL) != 0) {
            wzp_quic_conn_close(c, WZP_SIG_CLOSE_AUTH, "authentication failed");
            return;
        }
        q_established(sc, c, fp, now);
        return;
    }
    if (!sc->handle || !len || len > sizeof(buf))
        return;
    memcpy(buf, d, len);
    rewrite(sc->r, sc->r->rewrite_in, sc->handle, buf, &len, sizeof(buf));
    wzp_relay_control_on_message(sc->r->ctl, sc->handle, buf, len, now);
}

static void q_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info, wzp_ts now)
{
    simrelay_conn *sc = user;
    uint64_t h = sc->handle;
    simrelay *r = sc->r;
    if (info->by_peer && !info->error) {
        r->peer_close_code = info->app_code;
        r->peer_closes++;
        if (h && r->parking && info->app_code == WZP_SIG_CLOSE_PARKED)
            wzp_relay_control_on_parked(r->ctl, h); /* as the relay's shard event */
    }
    *sc = (simrelay_conn){0};
    if (h)
        wzp_relay_control_on_disconnect(r->ctl, h, now);
}

static int q_accept(void *user, const wzp_addr *local, const wzp_addr *remote,
                    wzp_quic_conn_config *o, wzp_ts now)
{
    static const wzp_quic_conn_callbacks cb = {.established = q_established,
                                               .message = q_message,
                                               .closed = q_closed,
                                               .path_changed = q_path_changed};
    simrelay *r = user;
    for (int i = 0; i < MAX_CONNS; i++)
        if (!r->conns[i].used) {
            r->conns[i] = (simrelay_conn){.r = r, .used = true};
            o->pin_mode = WZP_QUIC_PIN_ANY;
            o->cert_optional = !r->pre_auth;
            o->max_message = 8192;
            o->cb = cb;
            o->user = &r->conns[i];
            return 0;
        }
    return WZP_ERR_LIMIT;
}

static void relay_send(void *user, const wzp_addr *local, const wzp_addr *remote,
                       const uint8_t *pkt, size_t len)
{
    simrelay *r = user;
    if (r->sock) /* NULL once the test killed the relay */
        wzp_sim_send(r->sock, remote, pkt, len);
}

static void relay_timer(void *ctx);

void sim_relay_kick(simrelay *r)
{
    wzp_ts now = wzp_sim_now(r->sim);
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
    sim_relay_kick(r);
}

static void relay_recv(void *ctx, wzp_sim_sock *s, const wzp_addr *from, const uint8_t *d,
                       size_t len)
{
    simrelay *r = ctx;
    wzp_ts now = wzp_sim_now(r->sim);
    if (wzp_pkt_classify(d, len) == WZP_PKT_QUIC) {
        wzp_quic_endpoint_feed(r->ep, wzp_sim_sock_addr(s), from, d, len, now, NULL);
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
    if (wzp_park_frame_is(d, len) && r->parking)
        wzp_relay_control_on_park_frame(r->ctl, from, d, len, now);
    else if (wzp_park_frame_is(d, len) && r->park_rx)
        r->park_rx(r, from, d, len);
    sim_relay_kick(r);
}

void sim_relay_start(simrelay *r, wzp_sim *sim)
{
    sim_relay_start_cfg(r, sim, NULL);
}

static void relay_boot(simrelay *r);

void sim_relay_start_cfg(simrelay *r, wzp_sim *sim, const wzp_relay_control_config *cfg)
{
    sim_relay_start_at(r, sim, "203.0.113.1:4433", cfg);
}

static void relay_park_send(void *user, const wzp_addr *to, const uint8_t *frame, size_t len)
{
    simrelay *r = user;
    if (r->sock)
        wzp_sim_send(r->sock, to, frame, len);
}

static void relay_start(simrelay *r, wzp_sim *sim, const char *addr,
                        const wzp_relay_control_config *cfg, bool parking)
{
    memset(r, 0, sizeof(*r));
    r->sim = sim;
    r->parking = parking;
    char ip[64];
    snprintf(ip, sizeof(ip), "%s", addr);
    char *colon = strrchr(ip, ':');
    assert_non_null(colon);
    *colon = 0;
    wzp_sim_host *h = wzp_sim_host_new(sim, strcmp(ip, "203.0.113.1") == 0 ? "relay" : ip);
    wzp_sim_link link = {.latency = WZP_MS(5)};
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_internet(sim), ip, link), 0);
    wzp_sim_host_set_infra(h, true);
    r->sock = wzp_sim_sock_bind(h, addr, relay_recv, r);
    assert_int_equal(wzp_identity_generate(&r->id), 0);
    if (cfg)
        r->cfg = *cfg;
    else
        wzp_relay_control_config_default(&r->cfg);
    relay_boot(r);
}

void sim_relay_start_at(simrelay *r, wzp_sim *sim, const char *addr,
                        const wzp_relay_control_config *cfg)
{
    relay_start(r, sim, addr, cfg, false);
}

void sim_relay_start_parking(simrelay *r, wzp_sim *sim, const wzp_relay_control_config *cfg)
{
    relay_start(r, sim, "203.0.113.1:4433", cfg, true);
}

/* The relay process: its endpoint (reset secret from its key, as the real relay) and control
 * plane (park keys from its key too). A restart is a new boot with the same identity and
 * configuration. */
static void relay_boot(simrelay *r)
{
    wzp_quic_endpoint_config qc;
    assert_int_equal(wzp_relay_endpoint_config(&qc, r->id, q_accept, r), 0);
    assert_int_equal(wzp_quic_endpoint_new(&r->ep, &qc), 0);
    wzp_relay_control_config ccfg = r->cfg;
    ccfg.have_park_secret =
        wzp_identity_derive_secret(r->id, WZP_PARK_SECRET_LABEL, ccfg.park_secret) == 0;
    ccfg.cb = (wzp_relay_control_callbacks){.send = relay_ctl_send,
                                            .close = relay_ctl_close,
                                            .channels_open = relay_open,
                                            .channels_close = relay_close_chans,
                                            .channel_moved = relay_chan_moved,
                                            .park_send = r->parking ? relay_park_send : NULL};
    ccfg.user = r;
    assert_int_equal(wzp_relay_control_new(&r->ctl, &ccfg), 0);
}

void sim_relay_restart(simrelay *r)
{
    wzp_sim_cancel(r->sim, r->timer);
    r->timer = 0;
    wzp_relay_control_free(r->ctl);
    wzp_quic_endpoint_free(r->ep);
    memset(r->conns, 0, sizeof(r->conns));
    memset(r->chans, 0, sizeof(r->chans));
    relay_boot(r);
}

void sim_relay_free(simrelay *r)
{
    wzp_sim_cancel(r->sim, r->timer);
    wzp_relay_control_free(r->ctl);
    wzp_quic_endpoint_free(r->ep);
    wzp_identity_free(r->id);
}

/* --- a client: the core on one simulated IPv4 socket ---------------------------------------------
 */

void sim_client_event(void *user, const wzp_core_event *ev)
{
    simclient *c = user;
    wzp_ts now = wzp_sim_now(c->sim);
    switch (ev->type) {
    case WZP_CORE_EV_REGISTERED:
        c->registrations++;
        break;
    case WZP_CORE_EV_UNREGISTERED:
        c->unregistrations++;
        c->unreg_err = ev->err;
        c->unreg_fatal = ev->fatal;
        break;
    case WZP_CORE_EV_INCOMING:
        c->call = ev->call;
        c->state = ev->state;
        snprintf(c->incoming_fp, sizeof(c->incoming_fp), "%s", ev->peer_fp ? ev->peer_fp : "");
        if (c->auto_answer)
            assert_int_equal(wzp_core_answer(c->core, ev->call, now), 0);
        break;
    case WZP_CORE_EV_CALL_STATE:
        if (ev->call == c->call) {
            c->state = ev->state;
            c->reason = ev->err;
            snprintf(c->peer_fp, sizeof(c->peer_fp), "%s", ev->peer_fp ? ev->peer_fp : "");
            if (ev->code && ev->code[0])
                snprintf(c->code, sizeof(c->code), "%s", ev->code);
            if (ev->state == WZP_CALL_ENDED) {
                snprintf(c->detail, sizeof(c->detail), "%s", ev->text ? ev->text : "");
                c->ended_at = now;
            }
        }
        break;
    case WZP_CORE_EV_PATH: {
        c->path_events++;
        wzp_voicecall *vc = wzp_core__voicecall(c->core, ev->call); /* white-box: the route */
        if (vc && wzp_voicecall_ice(vc) &&
            wzp_ice_route_get(wzp_voicecall_ice(vc)).kind == WZP_ROUTE_RELAY)
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

static wzp_pcm_kind tone_source(void *user, uint32_t call, void *call_user, int16_t *pcm)
{
    for (int i = 0; i < WZP_FRAME_SAMPLES; i++)
        pcm[i] = (int16_t)((i % 48) * 400 - 9600);
    return WZP_PCM_VOICE;
}

void sim_client_send(void *user, int sock, const wzp_addr *to, const uint8_t *pkt, size_t len)
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
    sim_client_kick(c);
}

void sim_client_kick(simclient *c)
{
    if (c->dead)
        return;
    wzp_ts now = wzp_sim_now(c->sim);
    wzp_core_flush(c->core, now, sim_client_send, c);
    wzp_ts d = wzp_core_next_deadline(c->core);
    wzp_sim_cancel(c->sim, c->timer);
    c->timer = d == WZP_TS_NEVER ? 0 : wzp_sim_at(c->sim, d, client_timer, c);
}

void sim_client_recv(void *ctx, wzp_sim_sock *s, const wzp_addr *from, const uint8_t *d, size_t len)
{
    simclient *c = ctx;
    wzp_core_feed(c->core, 0, from, d, len, wzp_sim_now(c->sim));
    sim_client_kick(c);
}

static void join_as(simclient *c, wzp_sim *sim, simrelay *r, wzp_sim_router *rt, const char *ip,
                    bool direct_disabled, const wzp_identity *id)
{
    memset(c, 0, sizeof(*c));
    c->sim = sim;
    c->rt = rt;
    char bind[40];
    snprintf(bind, sizeof(bind), "%s:5000", ip);
    wzp_sim_link ll = {.latency = WZP_MS(1)};
    wzp_sim_host *h = wzp_sim_host_new(sim, ip);
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_router_lan(rt), ip, ll), 0);
    c->sock = wzp_sim_sock_bind(h, bind, sim_client_recv, c);
    assert_non_null(c->sock);
    if (id) {
        c->id = (wzp_identity *)id;
        c->borrowed_id = true;
    } else {
        assert_int_equal(wzp_identity_generate(&c->id), 0);
    }
    wzp_core_config cfg = {.id = c->id,
                           .relay = *wzp_sim_sock_addr(r->sock),
                           .direct_disabled = direct_disabled,
                           .event = sim_client_event,
                           .pcm_source = tone_source,
                           .user = c};
    wzp_identity_fingerprint(r->id, cfg.relay_pin);
    cfg.local[0] = *wzp_sim_sock_addr(c->sock);
    assert_int_equal(wzp_core_new(&c->core, &cfg), 0);
    wzp_addr host = wzp_sim_addr(ip);
    assert_int_equal(wzp_core_add_host_addr(c->core, &host), 0);
    assert_int_equal(wzp_core_start(c->core, wzp_sim_now(sim)), 0);
    sim_client_kick(c);
}

void sim_client_join(simclient *c, wzp_sim *sim, simrelay *r, wzp_sim_router *rt, const char *ip,
                     bool direct_disabled)
{
    join_as(c, sim, r, rt, ip, direct_disabled, NULL);
}

wzp_sim_router *sim_router_new(wzp_sim *sim, int idx, wzp_sim_dep mapping)
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
void sim_client_start(simclient *c, wzp_sim *sim, simrelay *r, int idx, wzp_sim_dep mapping,
                      bool direct_disabled)
{
    char ip[32];
    snprintf(ip, sizeof(ip), "10.0.%d.2", idx + 1);
    sim_client_join(c, sim, r, sim_router_new(sim, idx, mapping), ip, direct_disabled);
}

void sim_client_start_as(simclient *c, wzp_sim *sim, simrelay *r, int idx, const wzp_identity *id)
{
    char ip[32];
    snprintf(ip, sizeof(ip), "10.0.%d.2", idx + 1);
    join_as(c, sim, r, sim_router_new(sim, idx, WZP_SIM_EI), ip, false, id);
}

void sim_client_kill(simclient *c)
{
    wzp_sim_cancel(c->sim, c->timer);
    c->timer = 0;
    wzp_sim_sock_close(c->sock);
    c->sock = NULL;
    c->dead = true;
}

void sim_client_free(simclient *c)
{
    wzp_sim_cancel(c->sim, c->timer);
    wzp_core_free(c->core);
    if (!c->borrowed_id)
        wzp_identity_free(c->id);
}

void sim_client_fp(const simclient *c, char out[WZP_FINGERPRINT_STRLEN])
{
    uint8_t fp[WZP_FINGERPRINT_LEN];
    wzp_identity_fingerprint(c->id, fp);
    wzp_fingerprint_format(fp, out, WZP_FINGERPRINT_STRLEN);
}

wzp_call_stats sim_stats(simclient *c)
{
    wzp_call_stats st;
    assert_int_equal(wzp_core_get_call_stats(c->core, c->call, &st, wzp_sim_now(c->sim)), 0);
    return st;
}

/* Runs the simulation in 10 ms steps until cond or the virtual deadline. */
bool sim_run(wzp_sim *sim, bool (*cond)(simclient *, simclient *), simclient *a, simclient *b,
             wzp_ts max)
{
    wzp_ts end = wzp_sim_now(sim) + max;
    while (wzp_sim_now(sim) < end) {
        if (cond && cond(a, b))
            return true;
        wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_MS(10));
    }
    return cond ? cond(a, b) : true;
}

bool both_registered(simclient *a, simclient *b)
{
    return a->registrations && b->registrations;
}
bool both_active(simclient *a, simclient *b)
{
    return a->state == WZP_CALL_ACTIVE && b->state == WZP_CALL_ACTIVE;
}
bool both_direct(simclient *a, simclient *b)
{
    return sim_stats(a).path == WZP_PATH_DIRECT && sim_stats(b).path == WZP_PATH_DIRECT;
}
bool both_relay(simclient *a, simclient *b)
{
    return sim_stats(a).path == WZP_PATH_RELAY && sim_stats(b).path == WZP_PATH_RELAY;
}
bool both_ended(simclient *a, simclient *b)
{
    return a->state == WZP_CALL_ENDED && b->state == WZP_CALL_ENDED;
}

/* a calls b (by fingerprint) and both reach ACTIVE. */
void world_open(world *w, uint64_t seed, const wzp_relay_control_config *cfg)
{
    w->sim = wzp_sim_new(seed);
    assert_non_null(w->sim);
    sim_relay_start_cfg(&w->r, w->sim, cfg);
}

void world_call(world *w, uint64_t seed, wzp_sim_dep nat_a, wzp_sim_dep nat_b, bool direct_disabled)
{
    world_open(w, seed, NULL);
    sim_client_start(&w->a, w->sim, &w->r, 0, nat_a, direct_disabled);
    sim_client_start(&w->b, w->sim, &w->r, 1, nat_b, direct_disabled);
    world_connect(w);
}

/* Registration, then a calls b (auto-answered) until both are ACTIVE. */
void world_connect(world *w)
{
    w->b.auto_answer = true;
    assert_true(sim_run(w->sim, both_registered, &w->a, &w->b, WZP_SEC(5)));
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char text[WZP_FINGERPRINT_STRLEN];
    wzp_identity_fingerprint(w->b.id, fp);
    wzp_fingerprint_format(fp, text, sizeof(text));
    assert_int_equal(wzp_core_call(w->a.core, text, NULL, NULL, &w->a.call, wzp_sim_now(w->sim)),
                     0);
    sim_client_kick(&w->a);
    assert_true(sim_run(w->sim, both_active, &w->a, &w->b, WZP_SEC(5)));
}

void world_free(world *w)
{
    sim_client_free(&w->b); /* first: b may borrow a's identity (sim_client_start_as) */
    sim_client_free(&w->a);
    sim_relay_free(&w->r);
    wzp_sim_free(w->sim);
}
