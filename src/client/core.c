/*
 * Client core: the QUIC endpoint, the relay (control) connection with its
 * reconnect backoff, the registry of calls (src/call/voicecall.h) and one
 * routing table from every key a packet or event names (relay channel,
 * virtual port, probe tag, signaling handle) to its call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/core_int.h"
#include "common/tunnel_addr.h"
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
/* With other relays of a cluster to go to, a dead home costs the client its reachability
 * until noticed: keep-alives twice as often and half the idle timeout (6 s) there. */
#define CTRL_CLUSTER_KEEP_ALIVE   WZP_SEC(2)
#define CTRL_CLUSTER_IDLE_TIMEOUT WZP_SEC(6)
#define CTRL_HANDSHAKE            WZP_SEC(5)
/* RFC 8305's connection attempt delay is 250 ms; a QUIC handshake to a far relay over a
 * lossy link can take longer, and an abandoned attempt costs a retry: 1 s. */
#define WZP_CORE_RELAY_ATTEMPT_DELAY WZP_SEC(1)

static void emit(wzp_core *core, const wzp_core_event *ev)
{
    if (core->cfg.event)
        core->cfg.event(core->cfg.user, ev);
}

/* --- the routing table ------------------------------------------------------------------ */

enum { ROUTE_SIG = 1, ROUTE_CHAN, ROUTE_VPORT, ROUTE_TAG };

typedef struct route_key {
    uint8_t kind;
    uint8_t k[WZP_PROBE_TAG_LEN];
} route_key;

static size_t route_key_make(route_key *rk, int kind, const void *k, size_t len)
{
    memset(rk, 0, sizeof(*rk));
    rk->kind = (uint8_t)kind;
    memcpy(rk->k, k, len);
    return 1 + len;
}

static core_slot *route(const wzp_core *core, int kind, const void *k, size_t len)
{
    route_key rk;
    size_t n = route_key_make(&rk, kind, k, len);
    return wzp_hmap_get(&core->routes, &rk, n);
}

static void route_set(wzp_core *core, int kind, const void *k, size_t len, core_slot *slot)
{
    route_key rk;
    size_t n = route_key_make(&rk, kind, k, len);
    if (slot)
        (void)wzp_hmap_put(&core->routes, &rk, n, slot); /* NOMEM: the key routes nowhere */
    else
        wzp_hmap_del(&core->routes, &rk, n);
}

/* Brings the table in line with the call's current keys (after any input to it). */
static void routes_sync(wzp_core *core, core_slot *slot)
{
    core_route_keys now = {0};
    if (slot->vc) {
        now.sig = wzp_voicecall_sig(slot->vc);
        now.chan = wzp_voicecall_channel(slot->vc);
        now.vport = wzp_voicecall_vport(slot->vc);
        const uint8_t *tag = wzp_voicecall_probe_tag(slot->vc);
        now.tagged = tag != NULL;
        if (tag)
            memcpy(now.tag, tag, sizeof(now.tag));
    }
    core_route_keys *was = &slot->keys;
    if (was->sig != now.sig) {
        if (was->sig)
            route_set(core, ROUTE_SIG, &was->sig, sizeof(was->sig), NULL);
        if (now.sig)
            route_set(core, ROUTE_SIG, &now.sig, sizeof(now.sig), slot);
    }
    if (was->chan != now.chan) {
        if (was->chan)
            route_set(core, ROUTE_CHAN, &was->chan, sizeof(was->chan), NULL);
        if (now.chan)
            route_set(core, ROUTE_CHAN, &now.chan, sizeof(now.chan), slot);
    }
    if (was->vport != now.vport) {
        if (was->vport)
            route_set(core, ROUTE_VPORT, &was->vport, sizeof(was->vport), NULL);
        if (now.vport)
            route_set(core, ROUTE_VPORT, &now.vport, sizeof(now.vport), slot);
    }
    if (was->tagged != now.tagged || memcmp(was->tag, now.tag, sizeof(now.tag)) != 0) {
        if (was->tagged)
            route_set(core, ROUTE_TAG, was->tag, sizeof(was->tag), NULL);
        if (now.tagged)
            route_set(core, ROUTE_TAG, now.tag, sizeof(now.tag), slot);
    }
    *was = now;
}

static void routes_sync_all(wzp_core *core)
{
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc)
            routes_sync(core, &core->calls[i]);
}

static core_slot *slot_of_id(const wzp_core *core, uint32_t id)
{
    for (size_t i = 0; id && i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc && core->calls[i].id == id)
            return (core_slot *)&core->calls[i];
    return NULL;
}

static core_slot *slot_of(const wzp_core *core, const wzp_voicecall *vc)
{
    for (size_t i = 0; vc && i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc == vc)
            return (core_slot *)&core->calls[i];
    return NULL;
}

wzp_voicecall *wzp_core__voicecall(const wzp_core *core, uint32_t id)
{
    core_slot *slot = slot_of_id(core, id);
    return slot ? slot->vc : NULL;
}

/* 100::/64, the discard-only prefix (RFC 6666): our virtual paths. */
static bool is_virtual(const wzp_addr *a)
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

static const wzp_quic_conn_callbacks ctrl_callbacks;

/* The address of attempt relay_idx becomes the relay: the control connection, the check of
 * where packets come from, and the relay of calls placed from now on. */
static void use_relay(wzp_core *core, size_t idx)
{
    core->relays_new = false;
    core->relay_idx = idx < core->n_relays ? idx : 0;
    const wzp_core_relay *r = &core->relays[core->order[core->relay_idx]];
    core->cfg.relay = r->addr;
    memcpy(core->cfg.relay_pin, r->pin, sizeof(r->pin));
    core->relay_sock = wzp_cand_sock_for(&core->cfg.relay);
    core->env.relay = core->cfg.relay;
}

/* A new round over the relays, best first by the latest measurement. */
static void rank_relays(wzp_core *core, wzp_ts now)
{
    wzp_relay_select_rank(&core->sel, now, core->order);
    use_relay(core, 0);
}

/* The current relay is one from before Auth: it wants our certificate in the handshake. */
static bool relay_wants_cert(const wzp_core *core)
{
    for (size_t i = 0; i < core->n_cert_relays; i++)
        if (wzp_addr_equal(&core->cert_relays[i], &core->cfg.relay))
            return true;
    return false;
}

static void connect_relay(wzp_core *core, wzp_ts now)
{
    core->reconnect_at = WZP_TS_NEVER;
    /* A wake-up goes back to the relay that parked us: it holds our registration. */
    bool waking = core->park.state == WZP_PARKING_WAKING;
    if (!waking && !wzp_relay_select_settled(&core->sel, now)) {
        core->reconnect_at = wzp_relay_select_deadline(&core->sel); /* measuring RTTs */
        return;
    }
    if (!waking && core->relay_idx == 0 && !core->relays_new)
        rank_relays(core, now);
    core->next_relay_at =
        core->relay_idx + 1 < core->n_relays ? now + WZP_CORE_RELAY_ATTEMPT_DELAY : WZP_TS_NEVER;
    wzp_quic_conn_config o;
    wzp_quic_conn_config_default(&o);
    o.pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(o.pin, core->cfg.relay_pin, sizeof(o.pin));
    bool cluster = core->sel.n > 1;
    o.keep_alive = cluster ? CTRL_CLUSTER_KEEP_ALIVE : CTRL_KEEP_ALIVE;
    o.idle_timeout = cluster ? CTRL_CLUSTER_IDLE_TIMEOUT : CTRL_IDLE_TIMEOUT;
    o.handshake_timeout = CTRL_HANDSHAKE;
    o.max_message = WZP_SIG_MAX_SIZE;
    /* Our key is proven by Auth, cheaper for the relay (send_auth); a relay from before Auth
     * gets our certificate instead. */
    o.anonymous = !relay_wants_cert(core);
    o.cb = ctrl_callbacks;
    o.user = core;
    int rc = wzp_quic_connect(core->ep, &core->cfg.local[core->relay_sock], &core->cfg.relay, &o,
                              now, &core->ctrl);
    if (rc < 0) {
        WZP_WARN("client: cannot start the relay connection: %s", wzp_strerror(rc));
        core->ctrl = NULL;
        schedule_reconnect(core, now);
    }
}

static void ctrl_send(void *user, const uint8_t *msg, size_t len)
{
    wzp_core *core = user;
    if (core->ctrl && core->ctrl_up)
        wzp_quic_conn_send_message(core->ctrl, msg, len);
}

static void sig_send(void *user, const uint8_t *msg, size_t len)
{
    wzp_core *core = user;
    if (wzp_parking_holding(&core->park) && !core->park_pass) {
        /* Parked: this waits for the registration on a new connection, which it starts
         * (at once: a deadline in the past, as sigc gives us no clock here). */
        if (wzp_parking_hold(&core->park, msg, len) < 0)
            WZP_WARN("client: a message for the relay dropped while parked (too many held)");
        if (core->park.state == WZP_PARKING_PARKED) {
            WZP_INFO("client: parked: connecting to the relay again for a request");
            wzp_parking_wake(&core->park);
            core->reconnect_at = 0;
        }
        return;
    }
    ctrl_send(core, msg, len);
}

/* --- calls --------------------------------------------------------------------------------- */

static void vc_event(void *owner, wzp_voicecall *vc, const wzp_voicecall_event *ev)
{
    wzp_core *core = owner;
    core_slot *slot = slot_of(core, vc);
    if (!slot)
        return;
    wzp_core_event e = {.call = slot->id, .call_user = wzp_voicecall_user(vc)};
    switch (ev->type) {
    case WZP_VOICECALL_EV_STATE:
        e.type = WZP_CORE_EV_CALL_STATE;
        e.state = ev->state;
        e.err = ev->err;
        e.text = ev->text;
        e.peer_fp = ev->peer_fp;
        e.peer_alias = ev->peer_alias;
        e.code = ev->code;
        break;
    case WZP_VOICECALL_EV_PATH:
        e.type = WZP_CORE_EV_PATH;
        break;
    case WZP_VOICECALL_EV_PCM:
        e.type = WZP_CORE_EV_PCM;
        e.pcm = ev->pcm;
        e.concealed = ev->concealed;
        break;
    }
    emit(core, &e);
}

static wzp_pcm_kind vc_pcm_source(void *owner, wzp_voicecall *vc, int16_t pcm[WZP_FRAME_SAMPLES])
{
    wzp_core *core = owner;
    core_slot *slot = slot_of(core, vc);
    if (!slot || !core->cfg.pcm_source)
        return WZP_PCM_SILENCE;
    return core->cfg.pcm_source(core->cfg.user, slot->id, wzp_voicecall_user(vc), pcm);
}

static wzp_ts vc_relay_rtt(void *owner)
{
    return wzp_core_relay_rtt(owner);
}

static wzp_ts vc_relay_heard_at(void *owner)
{
    return ((wzp_core *)owner)->last_relay_rx;
}

/* A free slot and a virtual port no live call uses (wraps after 65535 calls). */
static core_slot *slot_reserve(wzp_core *core, uint16_t *vport)
{
    core_slot *slot = NULL;
    *vport = 0;
    for (size_t i = 0; i < CORE_MAX_CALLS && !slot; i++)
        if (!core->calls[i].vc)
            slot = &core->calls[i];
    if (!slot)
        return NULL;
    do {
        *vport = core->next_vport++;
        if (!core->next_vport)
            core->next_vport = 1;
    } while (!*vport || route(core, ROUTE_VPORT, vport, sizeof(*vport)));
    return slot;
}

static void slot_fill(wzp_core *core, core_slot *slot, wzp_voicecall *vc)
{
    memset(slot, 0, sizeof(*slot));
    slot->vc = vc;
    slot->id = core->next_id++;
    routes_sync(core, slot);
}

static void slot_free(wzp_core *core, core_slot *slot)
{
    wzp_voicecall *vc = slot->vc;
    slot->vc = NULL;
    routes_sync(core, slot); /* all keys out of the table */
    wzp_voicecall_free(vc);
}

static void relay_lost(wzp_core *core, const char *why, wzp_ts now);
static void park_offered(wzp_core *core, const wzp_sig_msg *offer, wzp_ts now);

/* --- signaling ------------------------------------------------------------------------------- */

static void sig_event(void *user, const wzp_sigc_event *ev)
{
    wzp_core *core = user;
    char buf[WZP_ADDR_STRLEN];
    switch (ev->type) {
    case WZP_SIGC_EV_REGISTERED: {
        core->backoff = core->cfg.reconnect_min;
        wzp_relay_select_ok(&core->sel, core->order[core->relay_idx]);
        core->reg_tunnel = wzp_addr_is_tunnel(&ev->msg->u.registered.reflexive);
        if (core->reg_tunnel)
            snprintf(buf, sizeof(buf), "tcp"); /* the relay sees us on its TCP service */
        else
            wzp_addr_format(&ev->msg->u.registered.reflexive, buf, sizeof(buf));
        char ra[WZP_ADDR_STRLEN];
        WZP_INFO("client: registered at relay %s, reflexive address %s",
                 wzp_addr_format(&core->cfg.relay, ra, sizeof(ra)), buf);
        /* Back from parking at the same address: nothing changed for the application (it was
         * registered all along) nor for our NAT's measurement. */
        bool same = wzp_parking_holding(&core->park) && strcmp(buf, core->reg_text) == 0;
        if (wzp_parking_holding(&core->park))
            wzp_parking_release(&core->park, ctrl_send, core); /* what waited for this */
        if (!same) {
            snprintf(core->reg_text, sizeof(core->reg_text), "%s", buf);
            core->np_due = !core->cfg.direct_disabled && !core->reg_tunnel;
            wzp_core_event e = {.type = WZP_CORE_EV_REGISTERED, .text = buf};
            emit(core, &e);
        }
        /* Calls whose relay went away continue through this one. */
        for (size_t i = 0; i < CORE_MAX_CALLS; i++)
            if (core->calls[i].vc &&
                wzp_voicecall_reattach(core->calls[i].vc, &core->cfg.relay, ev->now) > 0)
                routes_sync(core, &core->calls[i]);
        return;
    }
    case WZP_SIGC_EV_REHOME:
        relay_lost(core, "the relay is stopping", ev->now);
        return;
    case WZP_SIGC_EV_PARK:
        park_offered(core, ev->msg, ev->now);
        return;
    case WZP_SIGC_EV_REGISTER_FAILED: {
        if (!core->ctrl)
            return; /* cut short by the connection's end: ctrl_closed says why (with Auth the
                     * relay may close it while we register) */
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
        emit(core, &e);
        if (core->ctrl)
            wzp_quic_conn_close(core->ctrl, 0, "registration failed");
        return;
    }
    case WZP_SIGC_EV_REFLEXIVE: /* never a tunnel address (signal_client.c) */
        for (size_t i = 0; i < CORE_MAX_CALLS; i++)
            if (core->calls[i].vc)
                wzp_voicecall_on_reflexive(core->calls[i].vc, &ev->msg->u.reflexive.reflexive,
                                           ev->now);
        return;
    case WZP_SIGC_EV_ERROR:
    case WZP_SIGC_EV_PONG:
        return;
    case WZP_SIGC_EV_INCOMING: {
        uint16_t vport;
        core_slot *slot = slot_reserve(core, &vport);
        wzp_voicecall_config vcfg = {.role = WZP_VOICECALL_CALLEE,
                                     .id = core->next_id,
                                     .vport = vport,
                                     .sig = ev->call,
                                     .env = &core->env,
                                     .now = ev->now};
        wzp_voicecall *vc = NULL;
        if (!slot || wzp_voicecall_new(&vc, &vcfg) < 0) {
            wzp_sigc_busy(core->sc, ev->call, ev->now);
            return;
        }
        slot_fill(core, slot, vc);
        wzp_voicecall_on_signal(vc, ev, ev->now);
        routes_sync(core, slot);
        wzp_core_event e = {.type = WZP_CORE_EV_INCOMING,
                            .call = slot->id,
                            .state = wzp_voicecall_state(vc),
                            .peer_fp = wzp_voicecall_peer_fp(vc),
                            .peer_alias = wzp_voicecall_peer_alias(vc)};
        emit(core, &e);
        return;
    }
    default:
        break;
    }
    core_slot *slot = route(core, ROUTE_SIG, &ev->call, sizeof(ev->call));
    if (!slot)
        return;
    wzp_voicecall_on_signal(slot->vc, ev, ev->now);
    routes_sync(core, slot);
}

/* --- the endpoint's accept and the control connection's events ------------------------- */

static int q_accept(void *user, const wzp_addr *local, const wzp_addr *remote,
                    wzp_quic_conn_config *opts, wzp_ts now)
{
    wzp_core *core = user;
    /* Only an Initial that came through one of our calls' relay channels. */
    if (!is_virtual(remote))
        return WZP_ERR_INVALID;
    uint16_t vport = wzp_addr_port(remote);
    core_slot *slot = route(core, ROUTE_VPORT, &vport, sizeof(vport));
    return slot ? wzp_voicecall_accept_conn(slot->vc, opts) : WZP_ERR_INVALID;
}

/* Our first message to the relay: our key, signed over this connection's TLS exporter. */
static void send_auth(wzp_quic_conn *c)
{
    wzp_sig_msg m;
    uint8_t buf[WZP_SIG_MAX_SIZE];
    wzp_sig_init(&m, WZP_SIG_AUTH, 0);
    int n = wzp_quic_conn_auth_proof(c, m.u.auth.key, &m.u.auth.key_len, m.u.auth.sig,
                                     &m.u.auth.sig_len);
    if (n == 0 && (n = wzp_sig_encode(&m, buf, sizeof(buf))) > 0)
        n = wzp_quic_conn_send_message(c, buf, (size_t)n);
    if (n < 0)
        wzp_quic_conn_close(c, 0, "cannot prove our identity"); /* ctrl_closed reports it */
}

static void ctrl_established(void *user, wzp_quic_conn *c, const uint8_t *peer_fp, wzp_ts now)
{
    wzp_core *core = user;
    if (c != core->ctrl)
        return; /* an attempt given up for the next address */
    core->ctrl_up = true;
    core->next_relay_at = WZP_TS_NEVER;
    if (!relay_wants_cert(core))
        send_auth(c);
    core->park_pass = true; /* a wake-up's Register goes out; what waits for it stays held */
    wzp_sigc_register(core->sc, core->alias, now);
    core->park_pass = false;
}

static void ctrl_message(void *user, wzp_quic_conn *c, const uint8_t *data, size_t len, wzp_ts now)
{
    wzp_core *core = user;
    if (len && c == core->ctrl)
        wzp_sigc_on_message(core->sc, data, len, now);
}

static void registration_lost(wzp_core *core, int err, const char *detail, wzp_ts now);

static void ctrl_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info, wzp_ts now)
{
    wzp_core *core = user;
    if (c != core->ctrl)
        return; /* an attempt given up for the next address */
    bool was_up = core->ctrl_up;
    bool waking = wzp_parking_holding(&core->park); /* the application was told: registered */
    core->ctrl = NULL;
    core->ctrl_up = false;
    core->next_relay_at = WZP_TS_NEVER;
    wzp_parking_end(&core->park); /* a wake-up that failed: what it held ends with the calls */
    wzp_sigc_on_disconnect(core->sc, now);
    if (core->stopping || core->fatal_reported)
        return;
    /* A relay from before Auth refuses a client without a certificate: from now on it gets
     * ours in the handshake, starting with another attempt at once. */
    if (info->by_peer && info->error == WZP_ERR_TLS &&
        info->tls_alert == WZP_QUIC_TLS_ALERT_CERTIFICATE_REQUIRED && !relay_wants_cert(core)) {
        char a[WZP_ADDR_STRLEN];
        WZP_INFO("client: relay %s asks for our certificate (a relay from before Auth): "
                 "presenting it",
                 wzp_addr_format(&core->cfg.relay, a, sizeof(a)));
        core->cert_relays[core->next_cert_relay] = core->cfg.relay;
        core->next_cert_relay = (core->next_cert_relay + 1) % WZP_CORE_MAX_RELAYS;
        if (core->n_cert_relays < WZP_CORE_MAX_RELAYS)
            core->n_cert_relays++;
        connect_relay(core, now);
        return;
    }
    /* Lost, or never answered: this relay rests while the others are tried first. */
    wzp_relay_select_failed(&core->sel, core->order[core->relay_idx], now);
    /* This address failed before the delay ran out (an ICMP error): the next one now. */
    if (!was_up && !waking && !core->relays_new && info->error != WZP_ERR_PIN_MISMATCH &&
        core->relay_idx + 1 < core->n_relays) {
        use_relay(core, core->relay_idx + 1);
        connect_relay(core, now);
        return;
    }
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
    if (info->by_peer && !info->error && info->app_code == WZP_SIG_CLOSE_AUTH)
        WZP_ERROR("client: the relay refused our identity: %s", info->reason);
    WZP_INFO("client: relay connection %s: %s", was_up ? "lost" : "failed", info->detail);
    registration_lost(core, err, info->detail, now);
}

/* The registration is gone (err why): the application is told, and a new round over the
 * relays starts after the backoff. */
static void registration_lost(wzp_core *core, int err, const char *detail, wzp_ts now)
{
    core->fatal_reported = core->fatal;
    wzp_core_event e = {
        .type = WZP_CORE_EV_UNREGISTERED, .err = err, .fatal = core->fatal, .text = detail};
    emit(core, &e);
    use_relay(core, 0);            /* the next round starts over from the preferred address */
    schedule_reconnect(core, now); /* 250 ms after a registration that held */
    if (core->n_relays > 1 && !core->fatal)
        wzp_relay_select_measure(&core->sel, now); /* RTTs again, ready by the reconnect */
}

/* We left the relay (its connection, if any, closed): it rests, the application is told, and
 * the next round starts from the best address (the caller says when). */
static void relay_left(wzp_core *core, const char *why, wzp_ts now)
{
    wzp_parking_end(&core->park);
    wzp_sigc_on_disconnect(core->sc, now); /* answered calls go on (their own connection) */
    wzp_relay_select_failed(&core->sel, core->order[core->relay_idx], now);
    wzp_core_event e = {.type = WZP_CORE_EV_UNREGISTERED, .err = WZP_ERR_UNREACHABLE, .text = why};
    emit(core, &e);
    use_relay(core, 0);
    core->backoff = core->cfg.reconnect_min;
}

/* We give up on the relay before its connection times out (silent during a call, or it said
 * it is stopping): as for a lost connection, but the next round starts at once. */
static void relay_lost(wzp_core *core, const char *why, wzp_ts now)
{
    wzp_quic_conn *old = core->ctrl;
    if (!old || !core->ctrl_up || core->stopping)
        return;
    char a[WZP_ADDR_STRLEN];
    WZP_INFO("client: leaving the relay at %s: %s", wzp_addr_format(&core->cfg.relay, a, sizeof(a)),
             why);
    core->ctrl = NULL; /* its events are ignored from now on */
    core->ctrl_up = false;
    core->next_relay_at = WZP_TS_NEVER;
    wzp_relay_watch_arm(&core->watch, false, now);
    wzp_quic_conn_close(old, WZP_SIG_CLOSE_MOVING, why); /* a live relay lets go of our calls */
    relay_left(core, why, now);
    /* At once, ranked by the RTTs measured before (this relay resting): a call waits for it. */
    core->reconnect_at = now;
}

/* --- parking (src/client/park.h) ------------------------------------------------------------ */

/* Idle: registered on a live control connection over UDP, no call in any state (ended ones
 * closing are fine), no request in flight. Only then is there nothing to lose by letting the
 * connection go. */
static bool park_possible(const wzp_core *core)
{
    if (core->cfg.no_park || core->reg_tunnel || core->stopping || core->fatal || !core->ctrl ||
        !core->ctrl_up || !wzp_sigc_idle(core->sc) || core->park.state != WZP_PARKING_OFF)
        return false;
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc && wzp_voicecall_state(core->calls[i].vc) != WZP_CALL_ENDED)
            return false;
    return true;
}

/* Parks (park.h): the control connection closes with the PARKED code, the relay keeps the
 * registration. WZP_ERR_INVALID for an unusable keep-alive. */
static int park_take(wzp_core *core, const uint8_t *id, const uint8_t *key, uint32_t keepalive_ms,
                     wzp_ts now)
{
    int rc = wzp_parking_start(&core->park, id, key, keepalive_ms, &core->cfg.relay,
                               core->relay_sock, wzp_core_relay_rtt(core), now);
    if (rc < 0)
        return rc;
    wzp_quic_conn *old = core->ctrl;
    core->ctrl = NULL; /* its events are ignored from now on */
    core->ctrl_up = false;
    core->next_relay_at = WZP_TS_NEVER;
    if (old)
        wzp_quic_conn_close(old, WZP_SIG_CLOSE_PARKED, "parked");
    char a[WZP_ADDR_STRLEN];
    WZP_INFO("client: parked at relay %s (no connection, a ping every %u ms)",
             wzp_addr_format(&core->cfg.relay, a, sizeof(a)), (unsigned)keepalive_ms);
    return 0;
}

/* The relay offers to park us: taken when idle, else declined. The relay holds what it has
 * for us until we take or decline (or 2 s pass): a Ping declines at once. */
static void park_offered(wzp_core *core, const wzp_sig_msg *m, wzp_ts now)
{
    const char *why = NULL;
    if (!park_possible(core))
        why = "busy";
    else if (park_take(core, m->u.park.park_id, m->u.park.key, m->u.park.keepalive_ms, now) < 0)
        why = "keep-alive out of range";
    if (!why)
        return;
    WZP_DEBUG("client: the relay's offer to park declined: %s", why);
    if (core->ctrl_up)
        wzp_sigc_ping(core->sc, now);
}

int wzp_core__park(wzp_core *core, const uint8_t id[WZP_PARK_ID_LEN],
                   const uint8_t key[WZP_PARK_KEY_LEN], uint32_t keepalive_ms, wzp_ts now)
{
    return park_take(core, id, key, keepalive_ms, now);
}

/* Back to the relay that parked us; the application's held messages follow the Register. */
static void unpark(wzp_core *core, const char *why, wzp_ts now)
{
    char a[WZP_ADDR_STRLEN];
    WZP_INFO("client: parked: %s, connecting to the relay at %s again", why,
             wzp_addr_format(&core->cfg.relay, a, sizeof(a)));
    wzp_parking_wake(&core->park);
    core->reconnect_at = now;
}

/* A park frame from anywhere: counted as taken only when it is for our park. */
static void park_input(wzp_core *core, int sock, const wzp_addr *from, const uint8_t *pkt,
                       size_t len, wzp_ts now)
{
    wzp_parking_rx rx = wzp_parking_recv(&core->park, sock, from, pkt, len, now);
    if (rx == WZP_PARKING_RX_DROP) {
        core->counters.rx_no_call++;
        return;
    }
    core->counters.rx_park++;
    core->last_relay_rx = now;
    switch (rx) {
    case WZP_PARKING_RX_WAKE:
        unpark(core, "woken by the relay", now);
        break;
    case WZP_PARKING_RX_GONE:
        /* Restarted (or it let our registration go): the same relay, at once. */
        unpark(core, "the relay no longer holds our registration", now);
        break;
    case WZP_PARKING_RX_REHOME:
        WZP_INFO("client: parked: the relay is stopping, registering elsewhere");
        relay_left(core, "the relay is stopping", now);
        /* Another relay at once; alone, the same one after the backoff (it may come back). */
        if (core->n_relays > 1)
            core->reconnect_at = now;
        else
            schedule_reconnect(core, now);
        break;
    default:
        break;
    }
}

/* No answer to our pings: the relay (or the way to it) is gone, as a lost connection. */
static void park_check(wzp_core *core, wzp_ts now)
{
    if (!wzp_parking_lost(&core->park, now))
        return;
    char a[WZP_ADDR_STRLEN];
    WZP_INFO("client: relay at %s lost while parked: no answer to %d pings",
             wzp_addr_format(&core->cfg.relay, a, sizeof(a)), WZP_PARKING_RETRIES + 1);
    wzp_parking_end(&core->park);
    wzp_sigc_on_disconnect(core->sc, now);
    wzp_relay_select_failed(&core->sel, core->order[core->relay_idx], now);
    registration_lost(core, WZP_ERR_UNREACHABLE, "no answer from the relay while parked", now);
}

bool wzp_core_parked(const wzp_core *core)
{
    return core->park.state == WZP_PARKING_PARKED;
}

void wzp_core_network_changed(wzp_core *core, wzp_ts now)
{
    if (core->stopping)
        return;
    wzp_core_relay_moved(core, now); /* the relay tells us if it sees us elsewhere now */
    for (int i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc)
            wzp_voicecall_on_hosts(core->calls[i].vc, core->hosts, core->n_hosts, now);
    routes_sync_all(core);
}

void wzp_core_relay_moved(wzp_core *core, wzp_ts now)
{
    /* Any ack-eliciting packet from the new address moves the relay's view of us (QUIC
     * migration) and our channels with it: a ping, rather than the next keep-alive. Parked,
     * a park ping does it (the relay takes the address of valid pings). */
    wzp_parking_ping_now(&core->park, now);
    if (core->ctrl_up && wzp_core_registered(core))
        wzp_sigc_ping(core->sc, now);
}

void wzp_core_relay_pin_failed(wzp_core *core, const char *detail, wzp_ts now)
{
    if (core->stopping || core->fatal_reported)
        return;
    WZP_INFO("client: relay connection failed: %s", detail);
    core->fatal = true; /* retrying cannot make the relay present another key */
    core->fatal_reported = true;
    if (core->ctrl)
        wzp_quic_conn_close(core->ctrl, 0, "relay pin mismatch");
    wzp_core_event e = {.type = WZP_CORE_EV_UNREGISTERED,
                        .err = WZP_ERR_PIN_MISMATCH,
                        .fatal = true,
                        .text = detail};
    emit(core, &e);
}

/* The current attempt got no handshake in time: leave it and try the next address. */
static void next_relay(wzp_core *core, wzp_ts now)
{
    core->next_relay_at = WZP_TS_NEVER;
    if (!core->ctrl || core->ctrl_up || core->relays_new || core->relay_idx + 1 >= core->n_relays)
        return;
    char a[WZP_ADDR_STRLEN], b[WZP_ADDR_STRLEN];
    WZP_INFO("client: no answer from the relay at %s yet, trying %s",
             wzp_addr_format(&core->relays[core->order[core->relay_idx]].addr, a, sizeof(a)),
             wzp_addr_format(&core->relays[core->order[core->relay_idx + 1]].addr, b, sizeof(b)));
    wzp_relay_select_failed(&core->sel, core->order[core->relay_idx], now);
    wzp_quic_conn *old = core->ctrl;
    core->ctrl = NULL; /* its events are ignored from now on */
    wzp_quic_conn_close(old, 0, "trying another address");
    use_relay(core, core->relay_idx + 1);
    connect_relay(core, now);
}

int wzp_core_set_relays(wzp_core *core, const wzp_core_relay *relays, size_t n)
{
    if (!core || (!relays && n))
        return WZP_ERR_INVALID;
    wzp_core_relay keep[WZP_CORE_MAX_RELAYS];
    wzp_addr addrs[WZP_CORE_MAX_RELAYS];
    size_t k = 0;
    for (size_t i = 0; i < n && k < WZP_CORE_MAX_RELAYS; i++) {
        int s = wzp_cand_sock_for(&relays[i].addr);
        if (s >= 0 && core->cfg.local[s].len) {
            addrs[k] = relays[i].addr;
            keep[k++] = relays[i];
        }
    }
    if (k == 0)
        return WZP_ERR_INVALID;
    memcpy(core->relays, keep, k * sizeof(keep[0]));
    core->n_relays = k;
    for (size_t i = 0; i < k; i++)
        core->order[i] = i; /* until ranked */
    wzp_relay_select_set(&core->sel, addrs, k);
    /* An attempt under way (or a park) finishes on its address; anything later starts from
     * the first. */
    if (!core->ctrl && !wzp_parking_holding(&core->park)) {
        use_relay(core, 0);
    } else {
        /* The attempt under way runs to its end; the next one starts the new list. */
        core->relays_new = true;
        core->next_relay_at = WZP_TS_NEVER;
    }
    return 0;
}

void wzp_core_relay_addr(const wzp_core *core, wzp_addr *out)
{
    *out = core->cfg.relay;
}

void wzp_core_relay_pin(const wzp_core *core, uint8_t pin[WZP_FINGERPRINT_LEN])
{
    memcpy(pin, core->cfg.relay_pin, sizeof(core->cfg.relay_pin));
}

static const wzp_quic_conn_callbacks ctrl_callbacks = {
    .established = ctrl_established,
    .message = ctrl_message,
    .closed = ctrl_closed,
};

/* --- lifetime --------------------------------------------------------------------------------- */

void wzp_core_config_default(wzp_core_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

int wzp_core_new(wzp_core **out, const wzp_core_config *cfg)
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
    core->next_relay_at = WZP_TS_NEVER;
    core->relays[0].addr = cfg->relay;
    memcpy(core->relays[0].pin, cfg->relay_pin, sizeof(cfg->relay_pin));
    core->n_relays = 1;
    wzp_relay_select_set(&core->sel, &cfg->relay, 1);
    core->relay_sock = rsock;
    core->next_id = 1;
    core->next_vport = 1;
    wzp_hmap_init(&core->routes);
    wzp_relay_watch_init(&core->watch);
    wzp_parking_init(&core->park);

    wzp_quic_endpoint_config qcfg;
    wzp_quic_endpoint_config_default(&qcfg);
    qcfg.id = cfg->id;
    qcfg.server = true;
    qcfg.qlog_dir = cfg->qlog_dir;
    qcfg.cb.accept = q_accept;
    qcfg.user = core;
    int rc = wzp_quic_endpoint_new(&core->ep, &qcfg);
    if (rc < 0) {
        free(core);
        return rc;
    }
    wzp_sigc_config scfg;
    wzp_sigc_config_default(&scfg);
    scfg.max_calls = CORE_MAX_CALLS / 2;
    scfg.cb = (wzp_sigc_callbacks){.send = sig_send, .event = sig_event};
    scfg.user = core;
    if (wzp_sigc_new(&core->sc, &scfg) < 0) {
        wzp_quic_endpoint_free(core->ep);
        free(core);
        return WZP_ERR_NOMEM;
    }
    static const uint8_t vlocal_ip[16] = {0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    core->env = (wzp_voicecall_env){.id = cfg->id,
                                    .ep = core->ep,
                                    .sc = core->sc,
                                    .relay = cfg->relay,
                                    .direct_disabled = cfg->direct_disabled,
                                    .hold_audio_until_answer = cfg->hold_audio_until_answer,
                                    .dtx = cfg->dtx,
                                    .no_adapt = cfg->no_adapt,
                                    .parity = cfg->parity,
                                    .owner = core,
                                    .relay_rtt = vc_relay_rtt,
                                    .relay_heard_at = vc_relay_heard_at,
                                    .event = vc_event,
                                    .pcm_source = vc_pcm_source,
                                    .nat = &core->np.nat,
                                    .aux_socks = cfg->aux_socks};
    memcpy(core->env.local, cfg->local, sizeof(core->env.local));
    core->env.mapped = &core->mapped;
    wzp_addr_from_ip(&core->env.vlocal, AF_INET6, vlocal_ip, 1);
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
        if (core->calls[i].vc)
            wzp_voicecall_free(core->calls[i].vc);
    wzp_hmap_free(&core->routes);
    wzp_parking_free(&core->park);
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
    char buf[WZP_ADDR_STRLEN];
    WZP_INFO("client: host addresses changed (%zu, first %s)", k,
             k ? wzp_addr_format(&set[0], buf, sizeof(buf)) : "none");
    for (int i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc)
            wzp_voicecall_on_hosts(core->calls[i].vc, core->hosts, core->n_hosts, now);
    routes_sync_all(core);
    return 1;
}

int wzp_core_set_mapped_addr(wzp_core *core, const wzp_addr *mapped, wzp_ts now)
{
    if (!core)
        return WZP_ERR_INVALID;
    wzp_addr a;
    wzp_addr_clear(&a);
    if (mapped && mapped->len) {
        if (!wzp_cand_addr_usable(mapped) || wzp_cand_sock_for(mapped) < 0 ||
            core->cfg.local[wzp_cand_sock_for(mapped)].len == 0)
            return WZP_ERR_INVALID;
        a = *mapped;
    }
    if (a.len == core->mapped.len && (a.len == 0 || wzp_addr_equal(&a, &core->mapped)))
        return 0;
    core->mapped = a;
    char buf[WZP_ADDR_STRLEN];
    WZP_INFO("client: port mapping %s", a.len ? wzp_addr_format(&a, buf, sizeof(buf)) : "gone");
    for (int i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc)
            wzp_voicecall_on_mapped(core->calls[i].vc, core->hosts, core->n_hosts, now);
    routes_sync_all(core);
    return 1;
}

int wzp_core_start(wzp_core *core, wzp_ts now)
{
    if (core->started)
        return WZP_ERR_STATE;
    core->started = true;
    if (core->n_relays > 1)
        wzp_relay_select_measure(&core->sel, now); /* connects once the RTTs are in */
    connect_relay(core, now);
    return 0;
}

void wzp_core_shutdown(wzp_core *core, wzp_ts now)
{
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc)
            wzp_voicecall_end(core->calls[i].vc, 0, "", now);
    routes_sync_all(core);
    core->stopping = true;
    core->reconnect_at = WZP_TS_NEVER;
    core->next_relay_at = WZP_TS_NEVER;
    /* Parked: the next flush says BYE, so the relay ends the registration now rather than
     * three keep-alives later; nothing to close. */
    wzp_parking_leave(&core->park);
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
    if (core->park.state == WZP_PARKING_PARKED)
        return core->park.rtt;
    if (!core->ctrl || !core->ctrl_up)
        return 0;
    wzp_quic_conn_stats st;
    wzp_quic_conn_get_stats(core->ctrl, &st);
    return st.smoothed_rtt;
}

/* Keys may have moved during an input; released calls that ended and closed go. A new
 * NAT measurement goes to every call (agents and peers). */
static void after(wzp_core *core, wzp_ts now)
{
    bool relayed = false;
    bool nat_news = core->np.measured != core->np_told;
    core->np_told = core->np.measured;
    for (size_t i = 0; i < CORE_MAX_CALLS; i++) {
        core_slot *slot = &core->calls[i];
        if (!slot->vc)
            continue;
        if (slot->released && wzp_voicecall_state(slot->vc) == WZP_CALL_ENDED &&
            !wzp_voicecall_conn(slot->vc))
            slot_free(core, slot);
        else
            routes_sync(core, slot);
        if (nat_news && slot->vc)
            wzp_voicecall_on_nat(slot->vc, core->np_at);
        relayed = relayed || (slot->vc && wzp_voicecall_relayed(slot->vc));
    }
    /* Only with other relays to go to is a faster verdict on this one worth its probes. */
    wzp_relay_watch_arm(&core->watch,
                        relayed && core->n_relays > 1 && core->ctrl_up && wzp_core_registered(core),
                        now);
}

/* --- receive: one routing step per datagram ----------------------------------------------- */

static bool from_relay(const wzp_core *core, const core_slot *slot, const wzp_addr *from)
{
    return wzp_addr_equal(from, &core->cfg.relay) ||
           (slot && wzp_addr_equal(from, wzp_voicecall_relay_addr(slot->vc)));
}

void wzp_core_feed(wzp_core *core, int sock, const wzp_addr *from, const uint8_t *pkt, size_t len,
                   wzp_ts now)
{
    wzp_core_stats *n = &core->counters;
    if (sock < 0 || sock >= WZP_CORE_SOCKS + (int)core->cfg.aux_socks || !from || (!pkt && len)) {
        n->rx_unknown++;
        return;
    }
    bool aux = sock >= WZP_CORE_SOCKS; /* birthday probing's extra sockets: probes and calls */
    switch (wzp_pkt_classify(pkt, len)) {
    case WZP_PKT_QUIC: {
        if (from_relay(core, NULL, from) && !aux) {
            n->rx_ctrl++;
            core->last_relay_rx = now;
            wzp_relay_watch_heard(&core->watch, now);
            wzp_quic_endpoint_feed(core->ep, &core->cfg.local[sock], from, pkt, len, now, NULL);
            break;
        }
        /* An end-to-end packet on a direct path: the endpoint's connection-ID table finds
         * the call's connection and feeds it on the call's virtual path, in one step. */
        wzp_quic_rx rx;
        wzp_quic_endpoint_feed(core->ep, NULL, NULL, pkt, len, now, &rx);
        wzp_voicecall *vc = rx.conn ? wzp_quic_conn_user(rx.conn) : NULL;
        if (!vc) {
            n->rx_no_call++;
            break;
        }
        n->rx_direct++;
        wzp_voicecall_on_direct_rx(vc, sock, from, rx.authenticated, now);
        break;
    }
    case WZP_PKT_RELAY: {
        if (wzp_park_frame_is(pkt, len)) { /* the relay and a parked client */
            park_input(core, sock, from, pkt, len, now);
            break;
        }
        wzp_relay_frame f;
        if (wzp_relay_frame_decode(&f, pkt, len) < 0) {
            n->rx_malformed++;
            break;
        }
        core_slot *slot = route(core, ROUTE_CHAN, &f.channel, sizeof(f.channel));
        if (from_relay(core, slot, from)) {
            core->last_relay_rx = now;
            wzp_relay_watch_heard(&core->watch, now);
        }
        if (f.type == WZP_RELAY_FRAME_KEEPALIVE_ACK) {
            n->rx_keepalive_ack++;
            break;
        }
        if (f.type != WZP_RELAY_FRAME_DATA || !slot || !from_relay(core, slot, from) ||
            (wzp_voicecall_state(slot->vc) == WZP_CALL_ENDED && !wzp_voicecall_conn(slot->vc))) {
            n->rx_no_call++;
            break;
        }
        n->rx_relay++;
        wzp_voicecall_on_relay_packet(slot->vc, f.payload, f.payload_len, now);
        break;
    }
    case WZP_PKT_PROBE: {
        uint8_t tag[WZP_PROBE_TAG_LEN];
        if (wzp_probe_peek_tag(pkt, len, tag) < 0) {
            n->rx_malformed++;
            break;
        }
        core_slot *slot = route(core, ROUTE_TAG, tag, sizeof(tag));
        if (!slot || wzp_voicecall_state(slot->vc) != WZP_CALL_ACTIVE) {
            n->rx_no_call++;
            break;
        }
        n->rx_probe++;
        wzp_voicecall_on_probe(slot->vc, sock, from, pkt, len, now);
        break;
    }
    case WZP_PKT_STUN:
        /* Answers to our relay RTT probes, then to our NAT tests (we learn our reflexive
         * address from signaling). */
        if (wzp_relay_select_recv(&core->sel, from, pkt, len, now)) {
            if (wzp_relay_select_settled(&core->sel, now))
                wzp_relay_select_handle_timer(&core->sel, now); /* all answered */
            if (wzp_relay_select_settled(&core->sel, now) && !core->ctrl && !core->stopping &&
                core->reconnect_at != WZP_TS_NEVER && core->reconnect_at > now &&
                core->backoff <= core->cfg.reconnect_min * 2)
                core->reconnect_at = now; /* a first (re)connection waits for nothing else */
            break;
        }
        core->np_at = now;
        if (!wzp_nat_watch_recv(&core->np, sock, from, pkt, len, now))
            n->rx_unknown++;
        break;
    default:
        n->rx_unknown++;
        break;
    }
    after(core, now);
}

void wzp_core_get_stats(const wzp_core *core, wzp_core_stats *out)
{
    *out = core->counters;
}

/* --- timers ----------------------------------------------------------------------------------- */

wzp_ts wzp_core_next_deadline(const wzp_core *core)
{
    wzp_ts t = wzp_quic_endpoint_expiry(core->ep);
    t = wzp_ts_min(t, wzp_sigc_next_deadline(core->sc));
    t = wzp_ts_min(t, core->reconnect_at);
    t = wzp_ts_min(t, core->next_relay_at);
    t = wzp_ts_min(t, wzp_nat_watch_deadline(&core->np));
    t = wzp_ts_min(t, wzp_relay_watch_deadline(&core->watch));
    t = wzp_ts_min(t, wzp_parking_deadline(&core->park));
    if (!core->stopping)
        t = wzp_ts_min(t, wzp_relay_select_deadline(&core->sel));
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc)
            t = wzp_ts_min(t, wzp_voicecall_next_deadline(core->calls[i].vc));
    return t;
}

void wzp_core_handle_timer(wzp_core *core, wzp_ts now)
{
    if (wzp_quic_endpoint_expiry(core->ep) <= now)
        wzp_quic_endpoint_handle_expiry(core->ep, now);
    if (wzp_sigc_next_deadline(core->sc) <= now)
        wzp_sigc_handle_timer(core->sc, now);
    if (wzp_relay_select_deadline(&core->sel) <= now) {
        wzp_relay_select_handle_timer(&core->sel, now);
        if (wzp_relay_select_settled(&core->sel, now) && core->reconnect_at > now &&
            core->reconnect_at != WZP_TS_NEVER && core->backoff <= core->cfg.reconnect_min * 2)
            core->reconnect_at = now; /* a first (re)connection waits for nothing else */
    }
    if (wzp_relay_watch_deadline(&core->watch) <= now) {
        wzp_relay_watch_action a = wzp_relay_watch_poll(&core->watch, now);
        if (a == WZP_RELAY_WATCH_PROBE_NOW)
            wzp_sigc_ping(core->sc, now); /* ack-eliciting: a live relay answers at once */
        else if (a == WZP_RELAY_WATCH_LOST_NOW)
            relay_lost(core, "the relay went silent during a call", now);
    }
    park_check(core, now);
    if (core->reconnect_at <= now && !core->ctrl && !core->stopping &&
        core->park.state != WZP_PARKING_PARKED)
        connect_relay(core, now);
    if (core->next_relay_at <= now && !core->stopping)
        next_relay(core, now);
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc && wzp_voicecall_next_deadline(core->calls[i].vc) <= now)
            wzp_voicecall_handle_timer(core->calls[i].vc, now);
    after(core, now);
}

/* --- send ------------------------------------------------------------------------------------- */

struct flush_ctx {
    wzp_core *core;
    wzp_core_send_fn send;
    void *user;
};

static void q_send(void *user, const wzp_addr *local, const wzp_addr *remote, const uint8_t *pkt,
                   size_t len)
{
    struct flush_ctx *fc = user;
    if (!is_virtual(remote)) {
        int s = wzp_cand_sock_for(remote);
        if (s >= 0)
            fc->send(fc->user, s, remote, pkt, len);
        return;
    }
    uint16_t vport = wzp_addr_port(remote);
    core_slot *slot = route(fc->core, ROUTE_VPORT, &vport, sizeof(vport));
    if (slot)
        wzp_voicecall_route(slot->vc, pkt, len, fc->send, fc->user);
}

void wzp_core_flush(wzp_core *core, wzp_ts now, wzp_core_send_fn send, void *user)
{
    struct flush_ctx fc = {core, send, user};
    int len;
    if (core->np_due) {
        core->np_due = false;
        wzp_nat_watch_start(&core->np, &core->cfg.relay, WZP_ICE_SOCK_V4,
                            &core->cfg.local[WZP_ICE_SOCK_V4],
                            core->cfg.aux_socks ? WZP_CORE_SOCKS : -1, &core->cfg.aux_local, now);
    }
    core->np_at = now;
    uint8_t stun[WZP_STUN_REQ_MAX];
    int sn, ss;
    wzp_addr sto;
    while ((sn = wzp_nat_watch_poll(&core->np, now, stun, sizeof(stun), &ss, &sto)) > 0)
        send(user, ss, &sto, stun, (size_t)sn);
    wzp_quic_endpoint_flush(core->ep, now, q_send, &fc);
    uint8_t ping[WZP_PARK_FRAME_LEN];
    while ((len = wzp_parking_poll(&core->park, now, ping, sizeof(ping))) > 0)
        send(user, core->park.sock, &core->park.relay, ping, (size_t)len);
    uint8_t probe[WZP_STUN_REQ_MAX];
    wzp_addr to;
    while (!core->stopping &&
           (len = wzp_relay_select_poll(&core->sel, now, probe, sizeof(probe), &to)) > 0) {
        int s = wzp_cand_sock_for(&to);
        if (s >= 0)
            send(user, s, &to, probe, (size_t)len);
    }
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (core->calls[i].vc)
            wzp_voicecall_flush(core->calls[i].vc, now, send, user);
}

/* --- commands --------------------------------------------------------------------------------- */

int wzp_core_call(wzp_core *core, const char *peer, const char *alias_hint, void *call_user,
                  uint32_t *out, wzp_ts now)
{
    if (!peer || !out)
        return WZP_ERR_INVALID;
    uint8_t fp[WZP_FINGERPRINT_LEN];
    if (wzp_fingerprint_parse(peer, fp) != 0 && !wzp_sig_alias_valid(peer))
        return WZP_ERR_INVALID;
    if (!wzp_core_registered(core))
        return WZP_ERR_STATE;
    uint16_t vport;
    core_slot *slot = slot_reserve(core, &vport);
    if (!slot)
        return WZP_ERR_LIMIT;
    wzp_voicecall_config vcfg = {.role = WZP_VOICECALL_CALLER,
                                 .id = core->next_id,
                                 .vport = vport,
                                 .user = call_user,
                                 .peer = peer,
                                 .alias_hint = alias_hint,
                                 .hosts = core->hosts,
                                 .n_hosts = core->n_hosts,
                                 .env = &core->env,
                                 .now = now};
    const wzp_addr *refl = wzp_sigc_reflexive(core->sc);
    if (refl)
        vcfg.reflexive = *refl;
    wzp_voicecall *vc;
    int rc = wzp_voicecall_new(&vc, &vcfg);
    if (rc < 0)
        return rc;
    slot_fill(core, slot, vc);
    *out = slot->id;
    return 0;
}

int wzp_core_set_call_user(wzp_core *core, uint32_t id, void *call_user)
{
    core_slot *slot = slot_of_id(core, id);
    if (!slot)
        return WZP_ERR_NOT_FOUND;
    wzp_voicecall_set_user(slot->vc, call_user);
    return 0;
}

int wzp_core_answer(wzp_core *core, uint32_t id, wzp_ts now)
{
    core_slot *slot = slot_of_id(core, id);
    if (!slot)
        return WZP_ERR_NOT_FOUND;
    const wzp_addr *refl = wzp_sigc_reflexive(core->sc);
    int rc = wzp_voicecall_answer(slot->vc, core->hosts, core->n_hosts, refl, now);
    routes_sync(core, slot);
    return rc;
}

int wzp_core_reject(wzp_core *core, uint32_t id, wzp_ts now)
{
    core_slot *slot = slot_of_id(core, id);
    if (!slot)
        return WZP_ERR_NOT_FOUND;
    int rc = wzp_voicecall_reject(slot->vc, now);
    routes_sync(core, slot);
    return rc;
}

int wzp_core_hangup(wzp_core *core, uint32_t id, wzp_ts now)
{
    core_slot *slot = slot_of_id(core, id);
    if (!slot)
        return WZP_ERR_NOT_FOUND;
    if (wzp_voicecall_state(slot->vc) == WZP_CALL_ENDED)
        return WZP_ERR_CLOSED;
    wzp_voicecall_end(slot->vc, 0, "", now);
    routes_sync(core, slot);
    return 0;
}

int wzp_core_set_mute(wzp_core *core, uint32_t id, bool mute)
{
    core_slot *slot = slot_of_id(core, id);
    return slot ? wzp_voicecall_set_mute(slot->vc, mute) : WZP_ERR_NOT_FOUND;
}

int wzp_core_get_call_stats(wzp_core *core, uint32_t id, wzp_call_stats *out, wzp_ts now)
{
    core_slot *slot = slot_of_id(core, id);
    if (!slot)
        return WZP_ERR_NOT_FOUND;
    wzp_voicecall_get_stats(slot->vc, out, now);
    return 0;
}

void wzp_core_release(wzp_core *core, uint32_t id, wzp_ts now)
{
    core_slot *slot = slot_of_id(core, id);
    if (!slot)
        return;
    if (wzp_voicecall_state(slot->vc) != WZP_CALL_ENDED)
        wzp_voicecall_end(slot->vc, 0, "", now);
    slot->released = true;
    wzp_voicecall_set_user(slot->vc, NULL);
    after(core, now);
}
