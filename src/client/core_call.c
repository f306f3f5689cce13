/*
 * Client core, one call: signaling state, the end-to-end QUIC connection on
 * its virtual path, the ICE agent that routes it (relay or direct), media
 * (Opus in DATAGRAM frames) and peer-to-peer call control on the message
 * stream (proto/wzp_call.proto).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/core_int.h"
#include "common/log.h"
#include "common/rand.h"
#include "ice/candidate.h"
#include "wire/call_msg.h"
#include "wire/relay_frame.h"

#define RELAY_KEEPALIVE WZP_SEC(15) /* keeps the channel and the NAT mapping to the relay */
#define STATS_INTERVAL  WZP_SEC(2)
/* Media flows 50 times a second, so 5 s without one authenticated packet from
 * the peer (a PING goes out after 1 s of our own silence, e.g. muted) means the
 * peer is gone; well above any path switch or relay failover gap. */
#define E2E_KEEP_ALIVE   WZP_SEC(1)
#define E2E_IDLE_TIMEOUT WZP_SEC(5)
#define FRAME_TIME       WZP_MS(20)
#define E2E_MAX_MESSAGE  4096
#define MEDIA_CODEC_OPUS 1

static const char *fp_text(const uint8_t fp[WZP_FINGERPRINT_LEN], char *buf)
{
    return wzp_fingerprint_format(fp, buf, WZP_FINGERPRINT_STRLEN);
}

static void emit_state(wzp_core *core, core_call *call)
{
    wzp_core_event e = {.type = WZP_CORE_EV_CALL_STATE,
                        .call = call->id,
                        .call_user = call->user,
                        .state = call->state,
                        .err = call->state == WZP_CALL_ENDED ? call->end_err : 0,
                        .text = call->detail,
                        .peer_fp = call->peer_fp_text,
                        .peer_alias = call->peer_alias};
    wzp_core__emit(core, &e);
}

static void set_state(wzp_core *core, core_call *call, wzp_call_state st)
{
    if (call->state == st || call->state == WZP_CALL_ENDED)
        return;
    call->state = st;
    emit_state(core, call);
}

static void on_answered(wzp_core *core, core_call *call, wzp_ts now);

core_call *wzp_core__call_new(wzp_core *core, bool outgoing, void *user)
{
    size_t slot = CORE_MAX_CALLS;
    for (size_t i = 0; i < CORE_MAX_CALLS; i++)
        if (!core->calls[i]) {
            slot = i;
            break;
        }
    if (slot == CORE_MAX_CALLS)
        return NULL;
    core_call *call = calloc(1, sizeof(*call));
    if (!call)
        return NULL;
    call->core = core;
    call->id = core->next_id++;
    call->user = user;
    call->outgoing = outgoing;
    call->state = WZP_CALL_DIALING;
    /* A virtual port no live call uses (wraps after 65535 calls). */
    do {
        call->vport = core->next_vport++;
        if (!core->next_vport)
            core->next_vport = 1;
    } while (!call->vport || wzp_core__find_vport(core, call->vport));
    static const uint8_t vremote_ip[16] = {0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    wzp_addr_from_ip(&call->vremote, AF_INET6, vremote_ip, call->vport);
    call->answered_at = call->active_at = call->first_audio_at = call->direct_at = WZP_TS_NEVER;
    call->last_rx_at = WZP_TS_NEVER;
    call->tx_next = call->rx_next = call->next_keepalive = call->next_stats = WZP_TS_NEVER;
    core->calls[slot] = call;
    return call;
}

void wzp_core__call_free(wzp_core *core, core_call *call)
{
    (void)core;
    wzp_ice_free(call->ice);
    wzp_media_tx_free(call->tx);
    wzp_media_rx_free(call->rx);
    free(call);
}

/* --- call control messages ---------------------------------------------------------------- */

static void send_ctl(core_call *call, const wzp_call_msg *m)
{
    if (!call->conn || !wzp_quic_conn_is_established(call->conn))
        return;
    uint8_t buf[WZP_CALL_MSG_MAX_SIZE];
    int n = wzp_call_msg_encode(m, buf, sizeof(buf));
    if (n > 0)
        wzp_quic_conn_send_message(call->conn, buf, (size_t)n);
}

static void send_hangup(core_call *call, bool error)
{
    wzp_call_msg m = {.type = WZP_CALL_MSG_HANGUP, .u.hangup.error = error};
    send_ctl(call, &m);
}

static void send_mute(core_call *call)
{
    wzp_call_msg m = {.type = WZP_CALL_MSG_MUTE, .u.mute.muted = call->mute};
    send_ctl(call, &m);
}

static void send_stats(core_call *call)
{
    if (!call->rx)
        return;
    wzp_media_rx_stats rs;
    wzp_media_rx_get_stats(call->rx, &rs);
    wzp_quic_conn_stats qs;
    wzp_quic_conn_get_stats(call->conn, &qs);
    wzp_call_msg m = {.type = WZP_CALL_MSG_STATS};
    m.u.stats.frames_received = rs.playout.received;
    m.u.stats.frames_lost = rs.playout.lost;
    m.u.stats.rtt_us = (uint32_t)(qs.smoothed_rtt / 1000);
    send_ctl(call, &m);
}

void wzp_core__call_message(wzp_core *core, core_call *call, const uint8_t *d, size_t len)
{
    wzp_call_msg m;
    int rc = wzp_call_msg_decode(d, len, &m);
    if (rc < 0) {
        if (rc == WZP_ERR_MALFORMED)
            WZP_DEBUG("client: malformed call message dropped");
        return;
    }
    switch (m.type) {
    case WZP_CALL_MSG_HANGUP:
        wzp_core__call_end(core, call, WZP_ERR_HANGUP,
                           m.u.hangup.error ? "the peer ended the call after an error"
                                            : "the peer hung up");
        break;
    case WZP_CALL_MSG_MUTE:
        call->peer_mute = m.u.mute.muted;
        break;
    case WZP_CALL_MSG_STATS:
        call->peer_frames_received = m.u.stats.frames_received;
        call->peer_frames_lost = m.u.stats.frames_lost;
        break;
    case WZP_CALL_MSG_ANSWER:
        if (call->outgoing)
            on_answered(core, call, core->now);
        break;
    }
}

/* --- ending -------------------------------------------------------------------------------------
 */

void wzp_core__call_end(wzp_core *core, core_call *call, int err, const char *detail)
{
    if (call->state == WZP_CALL_ENDED)
        return;
    bool failure = err != 0 && err != WZP_ERR_HANGUP;
    if (call->sig) {
        uint32_t sig = call->sig;
        call->sig = 0;
        wzp_sigc_hangup(core->sc, sig, failure, core->now);
    }
    if (call->conn) {
        if (!call->answered) {
            wzp_quic_conn_close(call->conn,
                                call->outgoing ? CORE_CLOSE_WITHDRAW : CORE_CLOSE_DECLINE,
                                call->outgoing ? "withdrawn" : "declined");
        } else {
            if (err != WZP_ERR_HANGUP)
                send_hangup(call, failure);
            wzp_quic_conn_close(call->conn, failure ? CORE_CLOSE_ERROR : CORE_CLOSE_HANGUP,
                                failure ? "error" : "hangup");
        }
    }
    if ((err == WZP_ERR_PEER_UNREACHABLE || err == WZP_ERR_UNREACHABLE) &&
        call->active_at != WZP_TS_NEVER) {
        /* The silence before we gave up is part of the call: count it as lost and as a gap. */
        wzp_ts since = call->last_rx_at != WZP_TS_NEVER ? call->last_rx_at : call->active_at;
        if (core->now > since) {
            wzp_ts tail = core->now - since;
            call->tail_lost = tail / FRAME_TIME;
            if (tail > call->max_gap)
                call->max_gap = tail;
        }
    }
    call->end_err = err;
    snprintf(call->detail, sizeof(call->detail), "%s", detail ? detail : "");
    call->state = WZP_CALL_ENDED;
    if (call->conn) {
        wzp_quic_conn_stats qs;
        wzp_quic_conn_get_stats(call->conn, &qs);
        WZP_INFO("client: call %u quic: srtt %.2f ms, pto %llu, cwnd %llu, in flight %llu, "
                 "dgrams sent %llu recv %llu lost %llu dropped %llu",
                 call->id, (double)qs.smoothed_rtt / 1e6, (unsigned long long)qs.pto_count,
                 (unsigned long long)qs.cwnd, (unsigned long long)qs.bytes_in_flight,
                 (unsigned long long)qs.dgrams_sent, (unsigned long long)qs.dgrams_recv,
                 (unsigned long long)qs.dgrams_lost, (unsigned long long)qs.dgrams_dropped);
    }
    if (call->rx) {
        wzp_media_rx_stats rs;
        wzp_media_rx_get_stats(call->rx, &rs);
        WZP_INFO("client: call %u media: %llu decoded, %llu fec, %llu plc, %llu late, %llu lost, "
                 "%llu held, %llu trimmed, %llu resyncs",
                 call->id, (unsigned long long)rs.decoded, (unsigned long long)rs.fec_recovered,
                 (unsigned long long)rs.plc, (unsigned long long)rs.playout.late,
                 (unsigned long long)rs.playout.lost, (unsigned long long)rs.playout.held,
                 (unsigned long long)rs.playout.trimmed, (unsigned long long)rs.playout.resyncs);
    }
    WZP_INFO("client: call %u ended: %s%s%s", call->id, err ? wzp_strerror(err) : "hung up",
             call->detail[0] ? ": " : "", call->detail);
    emit_state(core, call);
}

void wzp_core__call_closed(wzp_core *core, core_call *call, const wzp_quic_close_info *info)
{
    call->conn = NULL;
    if (call->state == WZP_CALL_ENDED)
        return;
    char detail[sizeof(call->detail)];
    int err;
    if (info->error == WZP_ERR_PIN_MISMATCH && !info->by_peer) {
        err = WZP_ERR_PIN_MISMATCH;
        snprintf(detail, sizeof(detail), "possible man-in-the-middle: %s", info->detail);
    } else if (info->error == WZP_ERR_TIMEOUT && call->active_at != WZP_TS_NEVER) {
        /* Silence from the peer on every path. If the relay went quiet too and the
         * call had no direct path, the relay is what we lost. */
        bool direct = call->keyed && wzp_ice_route_get(call->ice).kind == WZP_ROUTE_DIRECT;
        bool relay_quiet = core->now - core->last_relay_rx >= E2E_IDLE_TIMEOUT;
        err = !direct && relay_quiet ? WZP_ERR_UNREACHABLE : WZP_ERR_PEER_UNREACHABLE;
        snprintf(detail, sizeof(detail), "%s: nothing heard from %s for %lld s",
                 err == WZP_ERR_UNREACHABLE ? "lost the relay" : "peer unreachable",
                 err == WZP_ERR_UNREACHABLE ? "the relay or the peer" : "the peer",
                 (long long)(E2E_IDLE_TIMEOUT / WZP_SEC(1)));
    } else if (info->error) {
        err = info->error;
        snprintf(detail, sizeof(detail), "end-to-end connection failed: %s", info->detail);
    } else if (info->app_code == CORE_CLOSE_DECLINE && call->outgoing) {
        err = WZP_ERR_REJECTED;
        snprintf(detail, sizeof(detail), "the peer rejected the call");
    } else if (info->app_code == CORE_CLOSE_WITHDRAW && !call->outgoing) {
        err = WZP_ERR_CANCELLED;
        snprintf(detail, sizeof(detail), "the caller hung up before the answer");
    } else if (info->app_code == CORE_CLOSE_HANGUP) {
        err = WZP_ERR_HANGUP;
        snprintf(detail, sizeof(detail), "the peer hung up");
    } else {
        err = WZP_ERR_CLOSED;
        snprintf(detail, sizeof(detail), "the peer closed the call: %s", info->detail);
    }
    wzp_core__call_end(core, call, err, detail);
}

/* --- candidates and the ICE agent ---------------------------------------------------------------
 */

static wzp_sig_cand_type to_sig_type(wzp_cand_type t)
{
    return t == WZP_CAND_HOST    ? WZP_SIG_CAND_HOST
           : t == WZP_CAND_SRFLX ? WZP_SIG_CAND_SRFLX
                                 : WZP_SIG_CAND_PRFLX;
}

static bool from_sig_type(wzp_sig_cand_type t, wzp_cand_type *out)
{
    switch (t) {
    case WZP_SIG_CAND_HOST:
        *out = WZP_CAND_HOST;
        return true;
    case WZP_SIG_CAND_SRFLX:
        *out = WZP_CAND_SRFLX;
        return true;
    case WZP_SIG_CAND_PRFLX:
        *out = WZP_CAND_PRFLX;
        return true;
    default:
        return false; /* relay candidates: the relay path is implicit */
    }
}

static void add_local(core_call *call, wzp_cand_type type, const wzp_addr *a)
{
    if (call->n_local >= WZP_SIG_MAX_CANDIDATES || !wzp_cand_addr_usable(a))
        return;
    for (size_t i = 0; i < call->n_local; i++)
        if (wzp_addr_equal(&call->local[i].addr, a))
            return;
    wzp_sig_candidate *c = &call->local[call->n_local++];
    c->type = to_sig_type(type);
    c->priority = wzp_cand_priority(type, a);
    c->addr = *a;
}

/* Our candidates for the offer/accept: host addresses and the reflexive one. */
static void gather(wzp_core *core, core_call *call)
{
    call->n_local = 0;
    if (core->cfg.direct_disabled)
        return;
    for (size_t i = 0; i < core->n_hosts; i++)
        add_local(call, WZP_CAND_HOST, &core->hosts[i]);
    const wzp_addr *refl = wzp_sigc_reflexive(core->sc);
    if (refl && refl->len)
        add_local(call, WZP_CAND_SRFLX, refl);
}

/* The agent's local candidates: ours (call->local) plus the peer-reflexive ones it learned. */
static void ice_set_locals(core_call *call, wzp_ts now)
{
    wzp_candidate prev[WZP_SIG_MAX_CANDIDATES];
    size_t n_prev = wzp_ice_local_candidates(call->ice, prev, WZP_SIG_MAX_CANDIDATES);
    if (n_prev > WZP_SIG_MAX_CANDIDATES)
        n_prev = WZP_SIG_MAX_CANDIDATES;
    wzp_ice_clear_local(call->ice, now);
    for (size_t i = 0; i < call->n_local; i++) {
        wzp_cand_type t;
        if (from_sig_type(call->local[i].type, &t))
            wzp_ice_add_local(call->ice, t, &call->local[i].addr);
    }
    /* Learned by the agent itself from probe answers, not gathered: keep them. */
    for (size_t i = 0; i < n_prev; i++)
        if (prev[i].type == WZP_CAND_PRFLX)
            wzp_ice_add_local(call->ice, WZP_CAND_PRFLX, &prev[i].addr);
}

/*
 * Sends the peer our complete current set (gathered ones plus the
 * peer-reflexive ones the agent learned, which the peer was trickled and
 * must keep), so it drops the addresses we no longer have. Returns false if
 * the set does not fit one message: then the caller sends only the additions
 * (withdrawing a candidate we merely could not list would be worse).
 */
static bool send_candidate_set(wzp_core *core, core_call *call, wzp_ts now)
{
    wzp_sig_candidate set[WZP_SIG_MAX_CANDIDATES];
    size_t n = call->n_local;
    memcpy(set, call->local, n * sizeof(set[0]));
    wzp_candidate ice[WZP_SIG_MAX_CANDIDATES + 1];
    size_t n_ice = wzp_ice_local_candidates(call->ice, ice, WZP_SIG_MAX_CANDIDATES + 1);
    if (n_ice > WZP_SIG_MAX_CANDIDATES + 1)
        return false;
    for (size_t i = 0; i < n_ice; i++) {
        if (ice[i].type != WZP_CAND_PRFLX)
            continue;
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = wzp_addr_equal(&set[j].addr, &ice[i].addr);
        if (dup)
            continue;
        if (n == WZP_SIG_MAX_CANDIDATES)
            return false;
        set[n++] = (wzp_sig_candidate){
            .type = WZP_SIG_CAND_PRFLX, .priority = ice[i].priority, .addr = ice[i].addr};
    }
    if (wzp_sigc_send_candidate_set(core->sc, call->sig, call->cand_gen + 1, set, n, now) < 0)
        return false;
    call->cand_gen++;
    return true;
}

void wzp_core__call_hosts_changed(wzp_core *core, core_call *call, wzp_ts now)
{
    if (core->cfg.direct_disabled || call->state == WZP_CALL_ENDED)
        return;
    wzp_sig_candidate old[WZP_SIG_MAX_CANDIDATES];
    size_t n_old = call->n_local;
    memcpy(old, call->local, n_old * sizeof(old[0]));
    /* Before signaling is done this only changes what the Offer/Accept or ICE start will use. */
    gather(core, call);
    if (!call->ice) {
        /* The peer may have our old set already: update it once the call is set up. */
        call->cands_stale = call->sig != 0;
        return;
    }
    ice_set_locals(call, now);
    wzp_ice_network_changed(call->ice, now);
    if (!call->sig || (call->state != WZP_CALL_CONNECTING && call->state != WZP_CALL_ACTIVE))
        return;
    if (send_candidate_set(core, call, now))
        return;
    /* Too many to list: send what the peer has not been told yet (add-only). */
    wzp_sig_candidate fresh[WZP_SIG_MAX_CANDIDATES];
    size_t n_fresh = 0;
    for (size_t i = 0; i < call->n_local; i++) {
        bool known = false;
        for (size_t j = 0; j < n_old && !known; j++)
            known = wzp_addr_equal(&old[j].addr, &call->local[i].addr);
        if (!known)
            fresh[n_fresh++] = call->local[i];
    }
    if (n_fresh)
        wzp_sigc_update_candidates(core->sc, call->sig, fresh, n_fresh, now);
}

void wzp_core__call_reflexive(wzp_core *core, core_call *call, const wzp_addr *refl)
{
    /* The relay sees us at a new address (NAT rebinding): tell the peer, check it. */
    if (core->cfg.direct_disabled || !call->sig || !call->ice ||
        (call->state != WZP_CALL_CONNECTING && call->state != WZP_CALL_ACTIVE))
        return;
    for (size_t i = 0; i < call->n_local; i++)
        if (call->local[i].type == WZP_SIG_CAND_SRFLX && wzp_addr_equal(&call->local[i].addr, refl))
            return;
    /* The old mapping is gone with the rebinding: replace it, so the peer withdraws it. */
    size_t k = 0;
    for (size_t i = 0; i < call->n_local; i++)
        if (call->local[i].type != WZP_SIG_CAND_SRFLX)
            call->local[k++] = call->local[i];
    bool removed = k != call->n_local;
    call->n_local = k;
    add_local(call, WZP_CAND_SRFLX, refl);
    if (call->n_local == k && !removed)
        return; /* already known as a host address */
    ice_set_locals(call, core->now);
    if (!send_candidate_set(core, call, core->now) && call->n_local > k)
        wzp_sigc_update_candidates(core->sc, call->sig, &call->local[k], 1, core->now);
}

static void ice_route_changed(void *user, const wzp_ice_route *route, wzp_route_reason reason)
{
    core_call *call = user;
    wzp_core *core = call->core;
    call->path_changes++;
    if (route->kind == WZP_ROUTE_DIRECT && call->direct_at == WZP_TS_NEVER)
        call->direct_at = core->now;
    char buf[WZP_ADDR_STRLEN];
    WZP_INFO("client: call %u route -> %s %s (%s)", call->id,
             route->kind == WZP_ROUTE_DIRECT ? "direct" : "relay",
             route->kind == WZP_ROUTE_DIRECT ? wzp_addr_format(&route->remote, buf, sizeof(buf))
                                             : "",
             wzp_route_reason_name(reason));
    wzp_core_event e = {.type = WZP_CORE_EV_PATH, .call = call->id, .call_user = call->user};
    wzp_core__emit(core, &e);
}

static void ice_local_candidate(void *user, const wzp_candidate *cand)
{
    core_call *call = user;
    if (!call->sig)
        return;
    wzp_sig_candidate c = {
        .type = to_sig_type(cand->type), .priority = cand->priority, .addr = cand->addr};
    wzp_sigc_update_candidates(call->core->sc, call->sig, &c, 1, call->core->now);
}

static int start_ice(wzp_core *core, core_call *call, const wzp_sig_candidates *peer, wzp_ts now)
{
    if (core->cfg.direct_disabled)
        return 0;
    wzp_ice_config ic;
    wzp_ice_config_default(&ic);
    uint8_t fp[WZP_FINGERPRINT_LEN];
    wzp_identity_fingerprint(core->cfg.id, fp);
    memcpy(ic.agent_id, fp, sizeof(ic.agent_id));
    ic.cb.route_changed = ice_route_changed;
    ic.cb.local_candidate = ice_local_candidate;
    ic.cb.user = call;
    call->ice = wzp_ice_new(&ic);
    if (!call->ice)
        return WZP_ERR_NOMEM;
    for (size_t i = 0; i < call->n_local; i++) {
        wzp_cand_type t;
        if (from_sig_type(call->local[i].type, &t))
            wzp_ice_add_local(call->ice, t, &call->local[i].addr);
    }
    for (size_t i = 0; i < peer->n; i++) {
        wzp_cand_type t;
        if (from_sig_type(peer->c[i].type, &t))
            wzp_ice_add_remote(call->ice, t, &peer->c[i].addr, now);
    }
    return 0;
}

/* --- signaling events ----------------------------------------------------------------------------
 */

/*
 * The relay names the peer's key in Ringing and CallSetup. A call placed to a
 * fingerprint, and an incoming call (whose caller the user was shown), are
 * already locked to a key: the relay's word must match it, or the relay is
 * routing the call to someone else. Only a call placed to an alias learns its
 * key here (and is locked to it from then on).
 */
static bool peer_key_matches(wzp_core *core, core_call *call, const uint8_t *fp, const char *alias)
{
    if (!call->have_peer_fp) {
        memcpy(call->peer_fp, fp, WZP_FINGERPRINT_LEN);
        call->have_peer_fp = true;
        fp_text(call->peer_fp, call->peer_fp_text);
        if (alias && alias[0])
            snprintf(call->peer_alias, sizeof(call->peer_alias), "%s", alias);
        return true;
    }
    if (memcmp(call->peer_fp, fp, WZP_FINGERPRINT_LEN) == 0)
        return true;
    char named[WZP_FINGERPRINT_STRLEN], detail[sizeof(call->detail)];
    fp_text(fp, named);
    snprintf(detail, sizeof(detail),
             call->outgoing ? "possible man-in-the-middle: you called %s, the relay connected the "
                              "call to another key (%s)"
                            : "possible man-in-the-middle: the relay announced the caller as %s, "
                              "then connected the call to another key (%s)",
             call->peer_fp_text, named);
    wzp_core__call_end(core, call, WZP_ERR_PIN_MISMATCH, detail);
    return false;
}

/* The call's relay channel (0: keep what we have) and where its frames go. */
static void use_channel(wzp_core *core, core_call *call, uint32_t chan, const wzp_addr *relay,
                        wzp_ts now)
{
    if (!chan)
        return;
    call->chan = chan;
    call->relay = relay->len ? *relay : core->cfg.relay;
    if (wzp_cand_sock_for(&call->relay) < 0 ||
        core->cfg.local[wzp_cand_sock_for(&call->relay)].len == 0)
        call->relay = core->cfg.relay; /* no socket of that family: the control address */
    if (call->next_keepalive == WZP_TS_NEVER)
        call->next_keepalive = now + RELAY_KEEPALIVE;
}

/* The agent's probes are keyed from the end-to-end TLS session: needs both. */
static void key_ice(core_call *call, wzp_ts now)
{
    if (!call->ice || call->keyed || !call->conn || !wzp_quic_conn_is_established(call->conn))
        return;
    uint8_t key[WZP_PROBE_KEY_LEN];
    if (wzp_quic_conn_export(call->conn, "EXPORTER-wzp-probe-key", NULL, 0, key, sizeof(key)) ==
            0 &&
        wzp_ice_set_key(call->ice, key, now) == 0) {
        call->keyed = true;
        memcpy(call->tag, wzp_ice_tag(call->ice), sizeof(call->tag));
    }
}

/* Caller: the relay rings the callee. With a channel, the end-to-end handshake starts now
 * and is done before the answer (pre-connected ringing). */
static void on_ringing(wzp_core *core, core_call *call, const wzp_sig_msg *m, wzp_ts now)
{
    if (m->u.ringing.have_callee_fp &&
        !peer_key_matches(core, call, m->u.ringing.callee_fp, call->peer_alias))
        return;
    if (m->u.ringing.relay_channel && call->have_peer_fp && !call->conn) {
        use_channel(core, call, m->u.ringing.relay_channel, &m->u.ringing.relay_addr, now);
        call->need_connect = true;
    }
    set_state(core, call, WZP_CALL_RINGING);
}

static void on_setup(wzp_core *core, core_call *call, const wzp_sig_msg *m, wzp_ts now)
{
    if (!peer_key_matches(core, call, m->u.setup.peer_fp, m->u.setup.peer_alias))
        return;
    use_channel(core, call, m->u.setup.relay_channel, &m->u.setup.relay_addr, now);
    if (start_ice(core, call, &m->u.setup.peer_cands, now) < 0) {
        wzp_core__call_end(core, call, WZP_ERR_NOMEM, "out of memory");
        return;
    }
    key_ice(call, now);
    if (call->outgoing && !call->conn)
        call->need_connect = true; /* a relay that does not pre-connect: handshake now */
    if (call->outgoing)
        on_answered(core, call, now);
    if (call->state == WZP_CALL_ENDED)
        return;
    if (call->cands_stale && call->ice && call->sig) {
        /* The Offer/Accept carried an older set: replace it (withdrawing what went). */
        call->cands_stale = false;
        if (!send_candidate_set(core, call, now) && call->n_local)
            wzp_sigc_update_candidates(core->sc, call->sig, call->local, call->n_local, now);
    }
}

/* A CandidatesUpdate from the peer: a complete set replaces (agent.h), an old-style one adds. */
static void on_candidates(core_call *call, const wzp_sig_candidates *cands, bool complete,
                          uint32_t generation, wzp_ts now)
{
    wzp_candidate set[WZP_SIG_MAX_CANDIDATES];
    size_t n = 0;
    for (size_t i = 0; i < cands->n && i < WZP_SIG_MAX_CANDIDATES; i++) {
        wzp_cand_type t;
        if (!from_sig_type(cands->c[i].type, &t))
            continue;
        if (!complete) {
            wzp_ice_add_remote(call->ice, t, &cands->c[i].addr, now);
            continue;
        }
        set[n++] = (wzp_candidate){.type = t, .addr = cands->c[i].addr};
    }
    if (complete)
        (void)wzp_ice_set_remote_candidates(call->ice, generation, set, n,
                                            now); /* stale: counted */
}

void wzp_core__call_sig_event(wzp_core *core, core_call *call, const wzp_sigc_event *ev)
{
    switch (ev->type) {
    case WZP_SIGC_EV_INCOMING: {
        const wzp_sig_msg *m = ev->msg;
        /* The key the user is shown is the key the call is locked to (on_setup, e2e pin). */
        memcpy(call->peer_fp, m->u.incoming.caller_fp, WZP_FINGERPRINT_LEN);
        call->have_peer_fp = true;
        fp_text(call->peer_fp, call->peer_fp_text);
        snprintf(call->peer_alias, sizeof(call->peer_alias), "%s", m->u.incoming.caller_alias);
        /* The caller's handshake comes through this channel while we ring. */
        use_channel(core, call, m->u.incoming.relay_channel, &m->u.incoming.relay_addr, core->now);
        call->state = WZP_CALL_RINGING;
        wzp_core_event e = {.type = WZP_CORE_EV_INCOMING,
                            .call = call->id,
                            .call_user = call->user,
                            .state = call->state,
                            .peer_fp = call->peer_fp_text,
                            .peer_alias = call->peer_alias};
        wzp_core__emit(core, &e);
        break;
    }
    case WZP_SIGC_EV_RINGING:
        on_ringing(core, call, ev->msg, core->now);
        break;
    case WZP_SIGC_EV_SETUP:
        on_setup(core, call, ev->msg, core->now);
        break;
    case WZP_SIGC_EV_CANDIDATES:
        if (call->ice)
            on_candidates(call, &ev->msg->u.update.cands, ev->msg->u.update.complete,
                          ev->msg->u.update.generation, core->now);
        break;
    case WZP_SIGC_EV_ENDED: {
        call->sig = 0;
        /* A call already set up outlives the relay connection: its own QUIC
         * connection decides (it may be direct, and the relay may come back). */
        if (ev->err == WZP_ERR_UNREACHABLE && call->conn &&
            (call->state == WZP_CALL_CONNECTING || call->state == WZP_CALL_ACTIVE))
            break;
        /* The relay lost the peer's control connection. The peer may still be on
         * a direct path (its relay link alone failed): only a peer also silent
         * here is gone; otherwise the call's own connection decides. */
        if (ev->reason == WZP_SIG_END_PEER_GONE && call->conn && call->state == WZP_CALL_ACTIVE) {
            if (call->last_rx_at != WZP_TS_NEVER && core->now - call->last_rx_at < WZP_SEC(1))
                break;
            wzp_core__call_end(core, call, WZP_ERR_PEER_UNREACHABLE,
                               "peer unreachable: the relay lost it and it is silent here too");
            break;
        }
        char detail[128];
        if (ev->reason)
            snprintf(detail, sizeof(detail), "relay: %s", wzp_sig_end_reason_name(ev->reason));
        else
            snprintf(detail, sizeof(detail), "%s", wzp_strerror(ev->err));
        if (ev->err == WZP_ERR_HANGUP)
            snprintf(detail, sizeof(detail), "the peer hung up");
        wzp_core__call_end(core, call, ev->err ? ev->err : WZP_ERR_CLOSED, detail);
        break;
    }
    default:
        break;
    }
}

/* --- the end-to-end connection
 * --------------------------------------------------------------------- */

static wzp_ts e2e_initial_rtt(const wzp_core *core)
{
    /* Peer to peer through the relay is two legs of the relay round trip. */
    wzp_ts rtt = 2 * wzp_core_relay_rtt(core);
    if (rtt == 0)
        return WZP_MS(100);
    if (rtt < WZP_MS(2))
        rtt = WZP_MS(2);
    if (rtt > WZP_SEC(1))
        rtt = WZP_SEC(1);
    return rtt;
}

static void e2e_opts(wzp_core *core, core_call *call, wzp_quic_conn_opts *o)
{
    o->pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(o->pin, call->peer_fp, sizeof(o->pin));
    o->initial_rtt = e2e_initial_rtt(core);
    o->keep_alive = E2E_KEEP_ALIVE;
    o->idle_timeout = E2E_IDLE_TIMEOUT;
    o->max_message = E2E_MAX_MESSAGE;
    /* The caller's first media leaves with its Finished instead of one round trip later. */
    o->early_datagrams = true;
    o->user = call;
}

/* Codec state for the call; sending starts now (once per call). */
static int start_media(wzp_core *core, core_call *call, wzp_ts now)
{
    if (call->tx)
        return 0;
    int err = 0;
    wzp_media_tx_config tc;
    wzp_media_tx_config_default(&tc);
    call->tx = wzp_media_tx_new(&tc, &err);
    wzp_media_rx_config rc;
    wzp_media_rx_config_default(&rc);
    /* Start playout one frame after the first arrival and let the adaptive buffer grow on
     * late frames: a fixed 60 ms start made the first audio wait for jitter that loopback,
     * LANs and most direct paths never show. */
    rc.playout.target_delay = WZP_MS(20);
    if (call->tx)
        call->rx = wzp_media_rx_new(&rc, &err);
    if (!call->tx || !call->rx) {
        wzp_core__call_end(core, call, WZP_ERR_AUDIO, "cannot start the Opus codec");
        return WZP_ERR_AUDIO;
    }
    wzp_media_tx_set_mute(call->tx, call->mute);
    call->tx_next = now;
    return 0;
}

/* Both sides agreed (the answer) and the connection is up: audio both ways from now. */
static void go_active(wzp_core *core, core_call *call, wzp_ts now)
{
    if (call->state == WZP_CALL_ENDED || call->state == WZP_CALL_ACTIVE)
        return;
    if (!call->conn || !wzp_quic_conn_is_established(call->conn)) {
        set_state(core, call, WZP_CALL_CONNECTING); /* active once the handshake is done */
        return;
    }
    if (start_media(core, call, now) < 0)
        return;
    call->active_at = now;
    call->next_stats = now + STATS_INTERVAL;
    if (!call->outgoing) {
        /* Proven by our key and faster than the relay's CallSetup. */
        wzp_call_msg m = {.type = WZP_CALL_MSG_ANSWER};
        send_ctl(call, &m);
    }
    set_state(core, call, WZP_CALL_ACTIVE);
    /* The caller's latest frame, if live (at most one frame old): playout starts from it. */
    if (call->ring_dg_len && now - call->ring_dg_at <= FRAME_TIME)
        wzp_core__call_datagram(core, call, call->ring_dg, call->ring_dg_len);
    call->ring_dg_len = 0;
}

/* Caller: the callee answered (its Answer on our connection, or the relay's CallSetup). */
static void on_answered(wzp_core *core, core_call *call, wzp_ts now)
{
    if (call->answered || call->state == WZP_CALL_ENDED)
        return;
    call->answered = true;
    call->answered_at = now;
    go_active(core, call, now);
}

int wzp_core__accept(wzp_core *core, const wzp_addr *remote, wzp_quic_conn_opts *opts)
{
    /* Only an Initial that came through one of our calls' relay channels. */
    if (!wzp_core__is_virtual(remote))
        return WZP_ERR_INVALID;
    core_call *call = wzp_core__find_vport(core, wzp_addr_port(remote));
    if (!call || call->outgoing || call->conn || !call->have_peer_fp ||
        (call->state != WZP_CALL_RINGING && call->state != WZP_CALL_CONNECTING))
        return WZP_ERR_INVALID;
    e2e_opts(core, call, opts);
    return 0;
}

void wzp_core__call_established(wzp_core *core, core_call *call, wzp_quic_conn *c,
                                const uint8_t *peer_fp)
{
    if (!call->conn)
        call->conn = c;
    if (call->state == WZP_CALL_ENDED)
        return;
    /* The pin already enforces this; checked again because it is the promise itself. */
    if (!peer_fp || memcmp(peer_fp, call->peer_fp, WZP_FINGERPRINT_LEN) != 0) {
        wzp_core__call_end(core, call, WZP_ERR_PIN_MISMATCH,
                           "possible man-in-the-middle: the peer proved another key");
        return;
    }
    wzp_ts now = core->now;
    key_ice(call, now);
    if (call->mute)
        send_mute(call);
    /* While the phone rings the connection waits, ready: the answer makes the call active. */
    if (call->answered)
        go_active(core, call, now);
}

void wzp_core__call_datagram(wzp_core *core, core_call *call, const uint8_t *d, size_t len)
{
    if (!call->outgoing && call->state == WZP_CALL_RINGING && len <= sizeof(call->ring_dg)) {
        memcpy(call->ring_dg, d, len); /* kept, never played before the answer */
        call->ring_dg_len = len;
        call->ring_dg_at = core->now;
        return;
    }
    if (call->rx && call->state == WZP_CALL_ACTIVE) {
        wzp_media_rx_datagram(call->rx, d, len, core->now);
        if (call->last_rx_at != WZP_TS_NEVER && core->now - call->last_rx_at > call->max_gap)
            call->max_gap = core->now - call->last_rx_at;
        call->last_rx_at = core->now;
    }
}

void wzp_core__call_after(wzp_core *core, core_call *call, wzp_ts now)
{
    /* Caller: the callee's key is checked, so our audio may go, also while it rings: the
     * callee plays nothing before its user answers, then hears us at once. */
    if (call->outgoing && (call->state == WZP_CALL_RINGING || call->state == WZP_CALL_CONNECTING) &&
        call->conn && !call->tx && wzp_quic_conn_can_send_datagram(call->conn))
        start_media(core, call, now);
    if (!call->need_connect)
        return;
    call->need_connect = false;
    if (call->state != WZP_CALL_RINGING && call->state != WZP_CALL_CONNECTING)
        return;
    wzp_quic_conn_opts o;
    wzp_quic_conn_opts_default(&o);
    e2e_opts(core, call, &o);
    int rc = wzp_quic_connect(core->ep, &core->vlocal, &call->vremote, &o, now, &call->conn);
    if (rc < 0) {
        call->conn = NULL;
        wzp_core__call_end(core, call, rc, "cannot start the end-to-end connection");
    }
}

/* --- timers and sending --------------------------------------------------------------------------
 */

/* The caller sends from its handshake on (also while ringing), the callee from its answer. */
static bool sending(const core_call *call)
{
    return call->tx && call->state != WZP_CALL_ENDED;
}

static void media_tick(wzp_core *core, core_call *call, wzp_ts now)
{
    /* Send: one frame per 20 ms of schedule; after a long stall, resynchronise. */
    if (call->tx_next + WZP_MS(200) < now)
        call->tx_next = now;
    while (sending(call) && call->tx_next <= now) {
        int16_t pcm[WZP_FRAME_SAMPLES];
        if (!core->cfg.pcm_source ||
            !core->cfg.pcm_source(core->cfg.user, call->id, call->user, pcm))
            memset(pcm, 0, sizeof(pcm));
        uint8_t dg[WZP_QUIC_MAX_DATAGRAM];
        int n = wzp_media_tx_frame(call->tx, pcm, dg, sizeof(dg));
        if (n > 0 && call->conn)
            wzp_quic_conn_send_datagram(call->conn, dg, (size_t)n);
        call->tx_next += WZP_MS(20);
    }
    /* Play out on our own 20 ms schedule from the playout start (the receive
     * clock must not drift with our wake-up latency). */
    if (call->state == WZP_CALL_ACTIVE && call->rx_next == WZP_TS_NEVER)
        call->rx_next = wzp_media_rx_next_deadline(call->rx);
    if (call->rx_next != WZP_TS_NEVER && call->rx_next + WZP_MS(200) < now)
        call->rx_next = now;
    while (call->state == WZP_CALL_ACTIVE && call->rx_next <= now) {
        int16_t pcm[WZP_FRAME_SAMPLES];
        int kind = wzp_media_rx_pull(call->rx, now, pcm);
        call->rx_next += WZP_MS(20);
        if ((kind == WZP_MEDIA_RX_DECODED || kind == WZP_MEDIA_RX_FEC) &&
            call->first_audio_at == WZP_TS_NEVER)
            call->first_audio_at = now;
        wzp_core_event e = {.type = WZP_CORE_EV_PCM,
                            .call = call->id,
                            .call_user = call->user,
                            .pcm = pcm,
                            .concealed = kind == WZP_MEDIA_RX_CONCEALED};
        wzp_core__emit(core, &e);
    }
}

void wzp_core__call_timer(wzp_core *core, core_call *call, wzp_ts now)
{
    if (call->state != WZP_CALL_ACTIVE && sending(call)) /* the caller before the answer */
        media_tick(core, call, now);
    if (call->state != WZP_CALL_ACTIVE)
        return;
    if (call->keyed && wzp_ice_next_deadline(call->ice) <= now)
        wzp_ice_handle_timer(call->ice, now);
    media_tick(core, call, now);
    if (call->state == WZP_CALL_ACTIVE && call->next_stats <= now) {
        send_stats(call);
        call->next_stats = now + STATS_INTERVAL;
    }
}

wzp_ts wzp_core__call_deadline(const core_call *call)
{
    wzp_ts t = WZP_TS_NEVER;
    if (call->need_connect)
        return 0;
    if (call->state == WZP_CALL_ENDED)
        return t;
    if (call->chan)
        t = call->next_keepalive;
    if (sending(call))
        t = wzp_ts_min(t, call->tx_next);
    if (call->state != WZP_CALL_ACTIVE)
        return t;
    if (call->keyed)
        t = wzp_ts_min(t, wzp_ice_next_deadline(call->ice));
    t = wzp_ts_min(t, call->tx_next);
    t = wzp_ts_min(t, call->rx_next != WZP_TS_NEVER ? call->rx_next
                                                    : wzp_media_rx_next_deadline(call->rx));
    return wzp_ts_min(t, call->next_stats);
}

void wzp_core__call_flush(wzp_core *core, core_call *call, wzp_ts now, wzp_core_send_fn send,
                          void *user)
{
    if (call->state == WZP_CALL_ACTIVE && call->keyed) {
        uint8_t buf[WZP_PROBE_MAX_LEN];
        int sock, n;
        wzp_addr dest;
        while ((n = wzp_ice_poll_transmit(call->ice, now, buf, sizeof(buf), &sock, &dest)) > 0)
            if (core->cfg.local[sock].len)
                send(user, sock, &dest, buf, (size_t)n);
    }
    if (call->state != WZP_CALL_ENDED && call->chan && call->next_keepalive <= now) {
        uint8_t frame[WZP_RELAY_FRAME_HDR + 4], nonce[4];
        wzp_random_nonce(nonce, sizeof(nonce));
        int n = wzp_relay_frame_encode(frame, sizeof(frame), WZP_RELAY_FRAME_KEEPALIVE, call->chan,
                                       nonce, sizeof(nonce));
        if (n > 0)
            send(user, wzp_cand_sock_for(&call->relay), &call->relay, frame, (size_t)n);
        call->next_keepalive = now + RELAY_KEEPALIVE;
    }
}

void wzp_core__call_route(wzp_core *core, core_call *call, const uint8_t *pkt, size_t len,
                          wzp_core_send_fn send, void *user)
{
    if (call->keyed) {
        wzp_ice_route r = wzp_ice_route_get(call->ice);
        if (r.kind == WZP_ROUTE_DIRECT && core->cfg.local[r.sock].len) {
            send(user, r.sock, &r.remote, pkt, len);
            return;
        }
    }
    if (!call->chan)
        return;
    uint8_t frame[WZP_RELAY_FRAME_HDR + WZP_QUIC_MAX_PACKET];
    int n =
        wzp_relay_frame_encode(frame, sizeof(frame), WZP_RELAY_FRAME_DATA, call->chan, pkt, len);
    if (n > 0)
        send(user, wzp_cand_sock_for(&call->relay), &call->relay, frame, (size_t)n);
}

/* --- stats
 * ------------------------------------------------------------------------------------------ */

static int64_t ms_since(wzp_ts from, wzp_ts to)
{
    if (from == WZP_TS_NEVER || to == WZP_TS_NEVER || to < from)
        return -1;
    return (int64_t)((to - from) / 1000000);
}

void wzp_core__call_stats(wzp_core *core, core_call *call, wzp_call_stats *out, wzp_ts now)
{
    memset(out, 0, sizeof(*out));
    char a[WZP_ADDR_STRLEN], b[WZP_ADDR_STRLEN];
    out->path = WZP_PATH_NONE;
    snprintf(out->path_desc, sizeof(out->path_desc), "none");
    if (call->chan) {
        out->path = WZP_PATH_RELAY;
        snprintf(out->path_desc, sizeof(out->path_desc), "relay %s channel %u",
                 wzp_addr_format(&call->relay, a, sizeof(a)), call->chan);
    }
    if (call->keyed) {
        wzp_ice_route r = wzp_ice_route_get(call->ice);
        if (r.kind == WZP_ROUTE_DIRECT) {
            out->path = WZP_PATH_DIRECT;
            snprintf(out->path_desc, sizeof(out->path_desc), "direct %s -> %s",
                     wzp_addr_format(&core->cfg.local[r.sock], a, sizeof(a)),
                     wzp_addr_format(&r.remote, b, sizeof(b)));
        }
    }
    if (call->conn) {
        wzp_quic_conn_stats qs;
        wzp_quic_conn_get_stats(call->conn, &qs);
        out->rtt_ms = (double)qs.smoothed_rtt / 1e6;
    }
    if (call->tx) {
        wzp_media_tx_stats ts;
        wzp_media_tx_get_stats(call->tx, &ts);
        out->frames_sent = ts.sent;
        if (call->active_at != WZP_TS_NEVER && now > call->active_at)
            out->bitrate_kbps =
                (double)ts.bytes * 8.0 / ((double)(now - call->active_at) / 1e9) / 1000.0;
    }
    if (call->rx) {
        wzp_media_rx_stats rs;
        wzp_media_rx_get_stats(call->rx, &rs);
        out->frames_received = rs.playout.received;
        out->frames_lost = rs.playout.lost + call->tail_lost;
        uint64_t expected = out->frames_received + out->frames_lost;
        out->loss_pct = expected ? 100.0 * (double)out->frames_lost / (double)expected : 0.0;
    }
    out->time_to_first_audio_ms = ms_since(call->answered_at, call->first_audio_at);
    out->time_to_direct_ms = ms_since(call->answered_at, call->direct_at);
    out->path_changes = call->path_changes;
    out->peer_frames_received = call->peer_frames_received;
    out->peer_frames_lost = call->peer_frames_lost;
    out->peer_muted = call->peer_mute;
    out->max_gap_ms = (int64_t)(call->max_gap / 1000000);
}

/* --- commands
 * ------------------------------------------------------------------------------------------ */

static void default_params(wzp_sig_params *p)
{
    memset(p, 0, sizeof(*p));
    p->media_version = 1;
    p->codecs[0] = MEDIA_CODEC_OPUS;
    p->n_codecs = 1;
    p->max_bitrate = 64000;
}

int wzp_core_call(wzp_core *core, const char *peer, void *call_user, uint32_t *out, wzp_ts now)
{
    if (!peer || !out)
        return WZP_ERR_INVALID;
    core->now = now;
    uint8_t fp[WZP_FINGERPRINT_LEN];
    bool by_fp = wzp_fingerprint_parse(peer, fp) == 0;
    if (!by_fp && !wzp_sig_alias_valid(peer))
        return WZP_ERR_INVALID;
    if (!wzp_core_registered(core))
        return WZP_ERR_STATE;
    core_call *call = wzp_core__call_new(core, true, call_user);
    if (!call)
        return WZP_ERR_LIMIT;
    gather(core, call);
    wzp_sig_params params;
    default_params(&params);
    int rc =
        by_fp ? wzp_sigc_call_fp(core->sc, fp, &params, call->local, call->n_local, &call->sig, now)
              : wzp_sigc_call_alias(core->sc, peer, &params, call->local, call->n_local, &call->sig,
                                    now);
    if (rc < 0) {
        for (size_t i = 0; i < CORE_MAX_CALLS; i++)
            if (core->calls[i] == call)
                core->calls[i] = NULL;
        wzp_core__call_free(core, call);
        return rc;
    }
    if (by_fp) {
        /* Pinned end to end: whatever the relay says, only this key may answer. */
        memcpy(call->peer_fp, fp, sizeof(fp));
        call->have_peer_fp = true;
        fp_text(fp, call->peer_fp_text);
    } else {
        snprintf(call->peer_alias, sizeof(call->peer_alias), "%s", peer);
    }
    *out = call->id;
    return 0;
}

int wzp_core_answer(wzp_core *core, uint32_t id, wzp_ts now)
{
    core_call *call = wzp_core__find(core, id);
    if (!call)
        return WZP_ERR_NOT_FOUND;
    if (call->outgoing || call->state != WZP_CALL_RINGING || !call->sig)
        return WZP_ERR_STATE;
    core->now = now;
    gather(core, call);
    wzp_sig_params params;
    default_params(&params);
    int rc = wzp_sigc_accept(core->sc, call->sig, &params, call->local, call->n_local, now);
    if (rc < 0)
        return rc;
    call->answered = true;
    call->answered_at = now;
    go_active(core, call, now); /* at once if the caller's handshake finished while we rang */
    return 0;
}

int wzp_core_reject(wzp_core *core, uint32_t id, wzp_ts now)
{
    core_call *call = wzp_core__find(core, id);
    if (!call)
        return WZP_ERR_NOT_FOUND;
    if (call->outgoing || call->state != WZP_CALL_RINGING)
        return WZP_ERR_STATE;
    core->now = now;
    if (call->sig) {
        wzp_sigc_reject(core->sc, call->sig, now);
        call->sig = 0;
    }
    wzp_core__call_end(core, call, 0, "rejected");
    return 0;
}

int wzp_core_hangup(wzp_core *core, uint32_t id, wzp_ts now)
{
    core_call *call = wzp_core__find(core, id);
    if (!call)
        return WZP_ERR_NOT_FOUND;
    if (call->state == WZP_CALL_ENDED)
        return WZP_ERR_CLOSED;
    core->now = now;
    wzp_core__call_end(core, call, 0, "");
    return 0;
}

int wzp_core_set_mute(wzp_core *core, uint32_t id, bool mute)
{
    core_call *call = wzp_core__find(core, id);
    if (!call)
        return WZP_ERR_NOT_FOUND;
    if (call->state == WZP_CALL_ENDED)
        return WZP_ERR_CLOSED;
    call->mute = mute;
    if (call->tx)
        wzp_media_tx_set_mute(call->tx, mute);
    send_mute(call);
    return 0;
}
