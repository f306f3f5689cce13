/*
 * Client core: the QUIC endpoint, the relay (control) connection with its
 * reconnect backoff, signaling glue, receive demultiplexing and the send
 * side of flush. Per-call logic is in core_call.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/core_int.h"
#include "common/log.h"
#include "ice/candidate.h"
#include "wire/demux.h"
#include "wire/relay_frame.h"

/* A lost or restarted relay must be noticed within seconds: a keep-alive every
 * 4 s draws a stateless reset from a restarted relay at once, and three
 * missed ones end the connection. The relay sees the same idle timeout
 * (QUIC takes the smaller one), so it notices a vanished client as fast. */
#define CTRL_KEEP_ALIVE   WZP_SEC(4)
#define CTRL_IDLE_TIMEOUT WZP_SEC(12)
#define CTRL_HANDSHAKE    WZP_SEC(5)

void wzp_core__emit(wzp_core *core, const wzp_core_event *ev)
{
    if (core->cfg.event)
        core->cfg.event(core->cfg.user, ev);
}

core_call *wzp_core__find(const wzp_core *core, uint32_t id)
{
    for (size_t i = 0; id && i < CORE_MAX_CALLS; i++)
        if (core->calls[i] && core->calls[i]->id == id)
            return core->calls[i];
    return NULL;
}

core_call *wzp_core__find_sig(const wzp_core *core, uint32_t sig)
{
    for (size_t i = 0; sig && i < CORE_MAX_CALLS; i++)
        if (core->calls[i] && core->calls[i]->sig == sig)
            return core->calls[i];
    return NULL;
}

core_call *wzp_core__find_chan(const wzp_core *core, uint32_t chan)
{
    for (size_t i = 0; chan && i < CORE_MAX_CALLS; i++)
        if (core->calls[i] && core->calls[i]->chan == chan)
            return core->calls[i];
    return NULL;
}

core_call *wzp_core__find_vport(const wzp_core *core, uint16_t vport)
{
    for (size_t i = 0; vport && i < CORE_MAX_CALLS; i++)
        if (core->calls[i] && core->calls[i]->vport == vport)
            return core->calls[i];
    return NULL;
}

/* 100::/64, the discard-only prefix (RFC 6666): our virtual paths. */
bool wzp_core__is_virtual(const wzp_addr *a)
{
    if (wzp_addr_family(a) != AF_INET6)
        return false;
    const uint8_t *ip = a->u.v6.sin6_addr.s6_addr;
    static const uint8_t prefix[8] = {0x01, 0x00, 0, 0, 0, 0, 0, 0};
    return memcmp(ip, prefix, 8) == 0;
}

/* --- the relay connection -------------------------------------------------------------- */

static void schedule_reconnect(wzp_core *core, wzp_ts now)
{
    if (core->stopping || core->fatal)
        return;
    core->reconnect_at = now + core->backoff;
    core->backoff *= 2;
    if (core->backoff > core->cfg.reconnect_max)
        core->backoff = core->cfg.reconnect_max;
}

static void connect_relay(wzp_core *core, wzp_ts now)
{
    core->reconnect_at = WZP_TS_NEVER;
    wzp_quic_conn_opts o;
    wzp_quic_conn_opts_default(&o);
    o.pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(o.pin, core->cfg.relay_pin, sizeof(o.pin));
    o.keep_alive = CTRL_KEEP_ALIVE;
    o.idle_timeout = CTRL_IDLE_TIMEOUT;
    o.handshake_timeout = CTRL_HANDSHAKE;
    o.max_message = WZP_SIG_MAX_SIZE;
    o.user = NULL; /* NULL user: the control connection */
    int rc = wzp_quic_connect(core->ep, &core->cfg.local[core->relay_sock], &core->cfg.relay, &o,
                              now, &core->ctrl);
    if (rc < 0) {
        WZP_WARN("client: cannot start the relay connection: %s", wzp_strerror(rc));
        core->ctrl = NULL;
        schedule_reconnect(core, now);
    }
}

static void sig_send(void *user, const uint8_t *msg, size_t len)
{
    wzp_core *core = user;
    if (core->ctrl && core->ctrl_up)
        wzp_quic_conn_send_message(core->ctrl, msg, len);
}

static void sig_event(void *user, const wzp_sigc_event *ev)
{
    wzp_core *core = user;
    char buf[WZP_ADDR_STRLEN];
    switch (ev->type) {
    case WZP_SIGC_EV_REGISTERED: {
        core->backoff = core->cfg.reconnect_min;
        core->ever_registered = true;
        wzp_addr_format(&ev->msg->u.registered.reflexive, buf, sizeof(buf));
        WZP_INFO("client: registered, reflexive address %s", buf);
        wzp_core_event e = {.type = WZP_CORE_EV_REGISTERED, .text = buf};
        wzp_core__emit(core, &e);
        return;
    }
    case WZP_SIGC_EV_REGISTER_FAILED: {
        /* A taken alias will not free itself by retrying; anything else might. */
        bool fatal = ev->err == WZP_ERR_ALIAS_TAKEN || ev->err == WZP_ERR_RELAY_FULL ||
                     ev->err == WZP_ERR_IDENTITY;
        if (fatal) {
            core->fatal = true;
            core->fatal_reported = true; /* the close that follows adds nothing */
        }
        wzp_core_event e = {
            .type = WZP_CORE_EV_UNREGISTERED,
            .err = ev->err,
            .fatal = fatal,
            .text = ev->msg && ev->msg->type == WZP_SIG_ERROR ? ev->msg->u.error.text : ""};
        wzp_core__emit(core, &e);
        if (core->ctrl)
            wzp_quic_conn_close(core->ctrl, 0, "registration failed");
        return;
    }
    case WZP_SIGC_EV_REFLEXIVE:
        for (size_t i = 0; i < CORE_MAX_CALLS; i++)
            if (core->calls[i])
                wzp_core__call_reflexive(core, core->calls[i], &ev->msg->u.reflexive.reflexive);
        return;
    case WZP_SIGC_EV_ERROR:
    case WZP_SIGC_EV_PONG:
        return;
    case WZP_SIGC_EV_INCOMING: {
        core_call *call = wzp_core__call_new(core, false, NULL);
        if (!call) {
            wzp_sigc_busy(core->sc, ev->call, core->now);
            return;
        }
        call->sig = ev->call;
        wzp_core__call_sig_event(core, call, ev);
        return;
    }
    default:
        break;
    }
    core_call *call = wzp_core__find_sig(core, ev->call);
    if (call)
        wzp_core__call_sig_event(core, call, ev);
}

/* --- QUIC callbacks ------------------------------------------------------------------------ */

static int q_accept(void *user, const wzp_addr *local, const wzp_addr *remote,
                    wzp_quic_conn_opts *opts)
{
    return wzp_core__accept(user, remote, opts);
}

static void q_established(void *user, wzp_quic_conn *c, const uint8_t *peer_fp)
{
    wzp_core *core = user;
    core_call *call = wzp_quic_conn_user(c);
    if (c == core->ctrl) {
        core->ctrl_up = true;
        wzp_sigc_register(core->sc, core->alias, core->now);
        return;
    }
    if (call)
        wzp_core__call_established(core, call, c, peer_fp);
}

static void q_datagram(void *user, wzp_quic_conn *c, const uint8_t *data, size_t len)
{
    core_call *call = wzp_quic_conn_user(c);
    if (call)
        wzp_core__call_datagram(user, call, data, len);
}

static void q_message(void *user, wzp_quic_conn *c, const uint8_t *data, size_t len)
{
    wzp_core *core = user;
    if (c == core->ctrl) {
        if (len)
            wzp_sigc_on_message(core->sc, data, len, core->now);
        return;
    }
    core_call *call = wzp_quic_conn_user(c);
    if (call)
        wzp_core__call_message(core, call, data, len);
}

static void q_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info)
{
    wzp_core *core = user;
    if (c != core->ctrl) {
        core_call *call = wzp_quic_conn_user(c);
        if (call)
            wzp_core__call_closed(core, call, info);
        return;
    }
    bool was_up = core->ctrl_up;
    core->ctrl = NULL;
    core->ctrl_up = false;
    wzp_sigc_on_disconnect(core->sc, core->now);
    if (core->stopping || core->fatal_reported)
        return;
    int err = WZP_ERR_UNREACHABLE;
    if (info->error == WZP_ERR_PIN_MISMATCH) {
        err = WZP_ERR_PIN_MISMATCH;
        core->fatal = true; /* retrying cannot make the relay present another key */
    } else if (info->by_peer && !info->error && info->app_code == WZP_SIG_CLOSE_REPLACED) {
        /* Another client registered our key. Reconnecting would knock it off in
         * turn, forever: this one stops and says why. */
        err = WZP_ERR_REPLACED;
        core->fatal = true;
    } else if (info->by_peer && !info->error &&
               (info->app_code == WZP_SIG_CLOSE_REG_LIMIT ||
                info->app_code == WZP_SIG_CLOSE_ADDR_LIMIT)) {
        /* The relay's Error{FULL} may not arrive before its close: the close says it too. */
        err = WZP_ERR_RELAY_FULL;
        core->fatal = true;
    }
    WZP_INFO("client: relay connection %s: %s", was_up ? "lost" : "failed", info->detail);
    core->fatal_reported = core->fatal;
    wzp_core_event e = {
        .type = WZP_CORE_EV_UNREGISTERED, .err = err, .fatal = core->fatal, .text = info->detail};
    wzp_core__emit(core, &e);
    schedule_reconnect(core, core->now); /* 250 ms after a registration that held */
}

/* --- lifetime --------------------------------------------------------------------------------- */

int wzp_core_new(const wzp_core_config *cfg, wzp_core **out)
{
    if (!cfg || !cfg->id || !out || cfg->relay.len == 0)
        return WZP_ERR_INVALID;
    int rsock = wzp_cand_sock_for(&cfg->relay);
    if (rsock < 0 || cfg->local[rsock].len == 0)
        return WZP_ERR_INVALID; /* no socket of the relay's family */
    if (cfg->alias && cfg->alias[0] && !wzp_sig_alias_valid(cfg->alias))
        return WZP_ERR_INVALID;
    wzp_core *core = calloc(1, sizeof(*core));
    if (!core)
        return WZP_ERR_NOMEM;
    core->cfg = *cfg;
    core->cfg.alias = NULL;
    if (cfg->alias)
        snprintf(core->alias, sizeof(core->alias), "%s", cfg->alias);
    if (!core->cfg.reconnect_min)
        core->cfg.reconnect_min = WZP_MS(250);
    if (!core->cfg.reconnect_max)
        core->cfg.reconnect_max = WZP_SEC(8);
    core->backoff = core->cfg.reconnect_min;
    core->reconnect_at = WZP_TS_NEVER;
    core->relay_sock = rsock;
    core->next_id = 1;
    core->next_vport = 1;
    static const uint8_t vlocal_ip[16] = {0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    wzp_addr_from_ip(&core->vlocal, AF_INET6, vlocal_ip, 1);

    wzp_quic_callbacks qcb = {
        .accept = q_accept,
        .established = q_established,
        .datagram = q_datagram,
        .message = q_message,
        .closed = q_closed,
    };
    int rc = wzp_quic_endpoint_new(cfg->id, true, &qcb, core, &core->ep);
    if (rc < 0) {
        free(core);
        return rc;
    }
    wzp_sigc_callbacks scb = {.user = core, .send = sig_send, .event = sig_event};
    wzp_sigc_config scfg;
    wzp_sigc_config_default(&scfg);
    scfg.max_calls = CORE_MAX_CALLS / 2;
    core->sc = wzp_sigc_new(&scfg, &scb);
    if (!core->sc) {
        wzp_quic_endpoint_free(core->ep);
        free(core);
        return WZP_ERR_NOMEM;
    }
    *out = core;
    return 0;
}

void wzp_core_free(wzp_core *core)
{
    if (!core)
        return;
    /* The endpoint goes first, without callbacks, so no call is touched after its free. */
    wzp_quic_endpoint_free(core->ep);
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i]) {
            core->calls[i]->conn = NULL;
            wzp_core__call_free(core, core->calls[i]);
        }
    wzp_sigc_free(core->sc);
    free(core);
}

int wzp_core_add_host_addr(wzp_core *core, const wzp_addr *ip)
{
    int s = wzp_cand_sock_for(ip);
    if (s < 0 || core->cfg.local[s].len == 0)
        return WZP_ERR_INVALID;
    if (core->n_hosts >= CORE_MAX_HOSTS)
        return WZP_ERR_LIMIT;
    wzp_addr a = *ip;
    wzp_addr_set_port(&a, wzp_addr_port(&core->cfg.local[s]));
    for (size_t i = 0; i < core->n_hosts; i++)
        if (wzp_addr_equal(&core->hosts[i], &a))
            return 0;
    core->hosts[core->n_hosts++] = a;
    return 0;
}

static bool host_known(const wzp_addr *set, size_t n, const wzp_addr *a)
{
    for (size_t i = 0; i < n; i++)
        if (wzp_addr_equal(&set[i], a))
            return true;
    return false;
}

int wzp_core_set_host_addrs(wzp_core *core, const wzp_addr *ips, size_t n, wzp_ts now)
{
    if (!core || (n && !ips))
        return WZP_ERR_INVALID;
    wzp_addr set[CORE_MAX_HOSTS];
    size_t k = 0;
    for (size_t i = 0; i < n && k < CORE_MAX_HOSTS; i++) {
        int s = wzp_cand_sock_for(&ips[i]);
        if (s < 0 || core->cfg.local[s].len == 0)
            continue;
        wzp_addr a = ips[i];
        wzp_addr_set_port(&a, wzp_addr_port(&core->cfg.local[s]));
        if (!host_known(set, k, &a))
            set[k++] = a;
    }
    /* Order does not matter: the same addresses are the same set. */
    bool same = k == core->n_hosts;
    for (size_t i = 0; same && i < k; i++)
        same = host_known(core->hosts, core->n_hosts, &set[i]);
    if (same)
        return 0;
    memcpy(core->hosts, set, k * sizeof(set[0]));
    core->n_hosts = k;
    core->now = now;
    char buf[WZP_ADDR_STRLEN];
    WZP_INFO("client: host addresses changed (%zu, first %s)", k,
             k ? wzp_addr_format(&set[0], buf, sizeof(buf)) : "none");
    for (int i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i])
            wzp_core__call_hosts_changed(core, core->calls[i], now);
    return 1;
}

int wzp_core_start(wzp_core *core, wzp_ts now)
{
    if (core->started)
        return WZP_ERR_STATE;
    core->started = true;
    core->now = now;
    connect_relay(core, now);
    return 0;
}

void wzp_core_shutdown(wzp_core *core, wzp_ts now)
{
    core->now = now;
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i])
            wzp_core__call_end(core, core->calls[i], 0, "");
    core->stopping = true;
    core->reconnect_at = WZP_TS_NEVER;
    if (core->ctrl)
        wzp_quic_conn_close(core->ctrl, 0, "client stopping");
}

bool wzp_core_idle(const wzp_core *core)
{
    return wzp_quic_endpoint_conn_count(core->ep) == 0;
}

bool wzp_core_registered(const wzp_core *core)
{
    return wzp_sigc_reg_state_get(core->sc) == WZP_SIGC_REGISTERED;
}

wzp_ts wzp_core_relay_rtt(const wzp_core *core)
{
    if (!core->ctrl || !core->ctrl_up)
        return 0;
    wzp_quic_conn_stats st;
    wzp_quic_conn_get_stats(core->ctrl, &st);
    return st.smoothed_rtt;
}

/* Work that must not run inside endpoint callbacks, and freeing released calls. */
static void after(wzp_core *core, wzp_ts now)
{
    for (size_t i = 0; i < CORE_MAX_CALLS; i++) {
        core_call *call = core->calls[i];
        if (!call)
            continue;
        wzp_core__call_after(core, call, now);
        if (call->released && call->state == WZP_CALL_ENDED && !call->conn) {
            core->calls[i] = NULL;
            wzp_core__call_free(core, call);
        }
    }
}

/* --- receive ------------------------------------------------------------------------------------
 */

static bool from_relay(const wzp_core *core, const core_call *call, const wzp_addr *from)
{
    return wzp_addr_equal(from, &core->cfg.relay) || (call && wzp_addr_equal(from, &call->relay));
}

static void feed_call(wzp_core *core, core_call *call, const uint8_t *pkt, size_t len, wzp_ts now)
{
    wzp_quic_endpoint_feed(core->ep, &core->vlocal, &call->vremote, pkt, len, now);
    if (!call->conn && !call->outgoing) /* the Initial just created our server connection */
        call->conn = wzp_quic_endpoint_lookup(core->ep, pkt, len);
}

void wzp_core_feed(wzp_core *core, int sock, const wzp_addr *from, const uint8_t *pkt, size_t len,
                   wzp_ts now)
{
    core->now = now;
    wzp_core_counters *n = &core->counters;
    if (sock < 0 || sock >= WZP_CORE_SOCKS || !from || (!pkt && len)) {
        n->rx_unknown++;
        return;
    }
    switch (wzp_pkt_classify(pkt, len)) {
    case WZP_PKT_QUIC: {
        if (from_relay(core, NULL, from)) {
            n->rx_ctrl++;
            core->last_relay_rx = now;
            wzp_quic_endpoint_feed(core->ep, &core->cfg.local[sock], from, pkt, len, now);
            break;
        }
        /* An end-to-end packet on a direct path. */
        wzp_quic_conn *c = wzp_quic_endpoint_lookup(core->ep, pkt, len);
        core_call *call = c && c != core->ctrl ? wzp_quic_conn_user(c) : NULL;
        if (!call || call->conn != c) {
            n->rx_no_call++;
            break;
        }
        n->rx_direct++;
        wzp_quic_conn_stats before, after_st;
        wzp_quic_conn_get_stats(c, &before);
        wzp_quic_endpoint_feed(core->ep, &core->vlocal, &call->vremote, pkt, len, now);
        if (call->conn == c) {
            wzp_quic_conn_get_stats(c, &after_st);
            /* Only a packet QUIC decrypted proves the peer is behind that address. */
            if (after_st.pkts_recv > before.pkts_recv && call->ice && call->keyed)
                wzp_ice_note_rx(call->ice, sock, from, now);
        }
        break;
    }
    case WZP_PKT_RELAY: {
        wzp_relay_frame f;
        if (wzp_relay_frame_decode(&f, pkt, len) < 0) {
            n->rx_malformed++;
            break;
        }
        if (from_relay(core, wzp_core__find_chan(core, f.channel), from))
            core->last_relay_rx = now;
        if (f.type == WZP_RELAY_FRAME_KEEPALIVE_ACK) {
            n->rx_keepalive_ack++;
            break;
        }
        core_call *call =
            f.type == WZP_RELAY_FRAME_DATA ? wzp_core__find_chan(core, f.channel) : NULL;
        if (!call || !from_relay(core, call, from) ||
            (call->state == WZP_CALL_ENDED && !call->conn)) {
            n->rx_no_call++;
            break;
        }
        n->rx_relay++;
        feed_call(core, call, f.payload, f.payload_len, now);
        break;
    }
    case WZP_PKT_PROBE: {
        uint8_t tag[WZP_PROBE_TAG_LEN];
        if (wzp_probe_peek_tag(pkt, len, tag) < 0) {
            n->rx_malformed++;
            break;
        }
        core_call *match = NULL;
        for (size_t i = 0; i < CORE_MAX_CALLS && !match; i++) {
            core_call *call = core->calls[i];
            if (call && call->keyed && call->state == WZP_CALL_ACTIVE &&
                !memcmp(call->tag, tag, sizeof(tag)))
                match = call;
        }
        if (!match) {
            n->rx_no_call++;
            break;
        }
        n->rx_probe++;
        wzp_ice_recv(match->ice, sock, from, pkt, len, now);
        break;
    }
    default:
        /* STUN (we learn our reflexive address from signaling) and anything else. */
        n->rx_unknown++;
        break;
    }
    after(core, now);
}

const wzp_core_counters *wzp_core_get_counters(const wzp_core *core)
{
    return &core->counters;
}

/* --- timers -------------------------------------------------------------------------------------
 */

wzp_ts wzp_core_next_deadline(const wzp_core *core)
{
    wzp_ts t = wzp_quic_endpoint_expiry(core->ep);
    t = wzp_ts_min(t, wzp_sigc_next_deadline(core->sc));
    t = wzp_ts_min(t, core->reconnect_at);
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i])
            t = wzp_ts_min(t, wzp_core__call_deadline(core->calls[i]));
    return t;
}

void wzp_core_handle_timer(wzp_core *core, wzp_ts now)
{
    core->now = now;
    if (wzp_quic_endpoint_expiry(core->ep) <= now)
        wzp_quic_endpoint_handle_expiry(core->ep, now);
    if (wzp_sigc_next_deadline(core->sc) <= now)
        wzp_sigc_handle_timer(core->sc, now);
    if (core->reconnect_at <= now && !core->ctrl && !core->stopping)
        connect_relay(core, now);
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i])
            wzp_core__call_timer(core, core->calls[i], now);
    after(core, now);
}

/* --- send ---------------------------------------------------------------------------------------
 */

struct flush_ctx {
    wzp_core *core;
    wzp_core_send_fn send;
    void *user;
};

static void q_send(void *user, const wzp_addr *local, const wzp_addr *remote, const uint8_t *pkt,
                   size_t len)
{
    struct flush_ctx *fc = user;
    if (!wzp_core__is_virtual(remote)) {
        int s = wzp_cand_sock_for(remote);
        if (s >= 0)
            fc->send(fc->user, s, remote, pkt, len);
        return;
    }
    core_call *call = wzp_core__find_vport(fc->core, wzp_addr_port(remote));
    if (call)
        wzp_core__call_route(fc->core, call, pkt, len, fc->send, fc->user);
}

void wzp_core_flush(wzp_core *core, wzp_ts now, wzp_core_send_fn send, void *user)
{
    core->now = now;
    struct flush_ctx fc = {core, send, user};
    wzp_quic_endpoint_flush(core->ep, now, q_send, &fc);
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i])
            wzp_core__call_flush(core, core->calls[i], now, send, user);
}

/* --- commands ------------------------------------------------------------------------------------
 */

int wzp_core_set_call_user(wzp_core *core, uint32_t id, void *call_user)
{
    core_call *call = wzp_core__find(core, id);
    if (!call)
        return WZP_ERR_NOT_FOUND;
    call->user = call_user;
    return 0;
}

int wzp_core_get_stats(wzp_core *core, uint32_t id, wzp_call_stats *out, wzp_ts now)
{
    core_call *call = wzp_core__find(core, id);
    if (!call)
        return WZP_ERR_NOT_FOUND;
    wzp_core__call_stats(core, call, out, now);
    return 0;
}

void wzp_core_release(wzp_core *core, uint32_t id, wzp_ts now)
{
    core_call *call = wzp_core__find(core, id);
    if (!call)
        return;
    core->now = now;
    if (call->state != WZP_CALL_ENDED)
        wzp_core__call_end(core, call, 0, "");
    call->released = true;
    call->user = NULL;
    after(core, now);
}
