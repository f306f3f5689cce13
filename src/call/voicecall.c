/* One voice call: see voicecall.h. */
#include "call/voicecall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rand.h"
#include "ice/candidate.h"
#include "media/adapt.h"
#include "media/media_session.h"
#include "wire/call_msg.h"
#include "wire/relay_frame.h"

#define RELAY_KEEPALIVE WZP_SEC(15) /* keeps the channel and the NAT mapping to the relay */
#define STATS_INTERVAL  WZP_SEC(2)
#define REPORT_INTERVAL WZP_MS(250) /* receiver reports: what the peer's adaptation hears */
/* Media flows 50 times a second, so 5 s without one authenticated packet from
 * the peer (a PING goes out after 1 s of our own silence, e.g. muted) means the
 * peer is gone; well above any path switch or relay failover gap. */
#define E2E_KEEP_ALIVE   WZP_SEC(1)
#define E2E_IDLE_TIMEOUT WZP_SEC(5)
#define E2E_MAX_MESSAGE  4096
#define FRAME_TIME       WZP_MS(20)
#define MEDIA_CODEC_OPUS 1

struct wzp_voicecall {
    wzp_voicecall_env env;
    wzp_voicecall_status st; /* role, phase and sub-states, answer/active/audio times */
    uint32_t id;
    void *user;
    uint32_t sig; /* signal client handle; 0 once signaling is over */
    int end_err;
    char detail[384];

    char code[8]; /* verification code, "" until the link is up */
    uint8_t peer_fp[WZP_FINGERPRINT_LEN];
    char peer_fp_text[WZP_FINGERPRINT_STRLEN];
    char peer_alias[WZP_SIG_ALIAS_MAX + 1];
    char alias_hint[WZP_SIG_ALIAS_MAX + 1]; /* caller by key: the alias it is known by */

    uint32_t chan;    /* our relay channel, 0 before one is known */
    wzp_addr relay;   /* where relay frames go */
    uint16_t vport;   /* virtual remote port */
    wzp_addr vremote; /* [100::2]:vport */
    wzp_quic_conn *conn;

    wzp_ice_agent *ice;
    wzp_sig_nat peer_nat; /* the peer's NAT as signalled (all zero: unknown) */
    wzp_sig_nat nat_sent; /* ours as we last signalled it */
    uint8_t tag[WZP_PROBE_TAG_LEN];
    wzp_sig_candidate local[WZP_SIG_MAX_CANDIDATES];
    size_t n_local;
    bool cands_stale;  /* addresses changed after our Offer/Accept went out, before setup */
    uint32_t cand_gen; /* generation of the last complete candidate set sent to the peer */

    wzp_media_tx *tx;
    wzp_media_rx *rx;
    bool mute, peer_mute;
    wzp_ts tx_next, rx_next;
    uint64_t dg_dropped,
        dg_dropped_bytes; /* the connection's dropped datagrams, counted as refused */
    wzp_ts direct_at;
    uint32_t path_changes;
    wzp_ts last_rx_at, max_gap; /* media datagrams: latest, longest interval */
    uint64_t tail_lost;         /* frames never heard after the peer fell silent for good */
    /* Callee: the caller's latest frame while ringing (not played), so the answer can
     * start playout from live audio instead of waiting for the next frame. */
    uint8_t ring_dg[WZP_QUIC_MAX_DATAGRAM];
    size_t ring_dg_len;
    wzp_ts ring_dg_at;
    wzp_ts next_keepalive, next_stats, next_report;
    wzp_ts report_at;             /* when the previous receiver report covered up to */
    wzp_media_rx_stats report_rs; /* rx counters at the previous report */
    wzp_adapt adapt;
    uint64_t peer_frames_received, peer_frames_lost;
    /* The time of the input being handled, for the ICE agent's callbacks (they carry none). */
    wzp_ts agent_now;
    /* Log tag from the relay's call id ("" before it is known): the relay logs the same. */
    char log_tag[WZP_LOG_TAG_MAX];
    uint8_t call_id[WZP_SIG_CALL_ID_LEN]; /* the relay's, once known (have_call_id) */
    bool have_call_id;
    bool reattaching; /* a Reattach is out on a new relay (its signaling handle is sig) */
};

#define VC_LOG(level, vc, ...) WZP_LOGX(level, (vc)->log_tag[0] ? (vc)->log_tag : NULL, __VA_ARGS__)

static const char *fp_text(const uint8_t fp[WZP_FINGERPRINT_LEN], char *buf)
{
    return wzp_fingerprint_format(fp, buf, WZP_FINGERPRINT_STRLEN);
}

static bool answered(const wzp_voicecall *vc)
{
    return vc->st.phase == WZP_VOICECALL_CONNECTING || vc->st.phase == WZP_VOICECALL_ACTIVE;
}

static wzp_call_state public_state(wzp_voicecall_phase p)
{
    switch (p) {
    case WZP_VOICECALL_OFFERING:
        return WZP_CALL_DIALING;
    case WZP_VOICECALL_RINGING:
        return WZP_CALL_RINGING;
    case WZP_VOICECALL_CONNECTING:
        return WZP_CALL_CONNECTING;
    case WZP_VOICECALL_ACTIVE:
        return WZP_CALL_ACTIVE;
    case WZP_VOICECALL_ENDED:
        break;
    }
    return WZP_CALL_ENDED;
}

static void emit(wzp_voicecall *vc, const wzp_voicecall_event *ev)
{
    if (vc->env.event)
        vc->env.event(vc->env.owner, vc, ev);
}

static void emit_state(wzp_voicecall *vc)
{
    wzp_voicecall_event e = {.type = WZP_VOICECALL_EV_STATE,
                             .state = public_state(vc->st.phase),
                             .err = vc->st.phase == WZP_VOICECALL_ENDED ? vc->end_err : 0,
                             .text = vc->detail,
                             .peer_fp = vc->peer_fp_text,
                             .peer_alias = vc->peer_alias,
                             .code = vc->code};
    emit(vc, &e);
}

static void set_phase(wzp_voicecall *vc, wzp_voicecall_phase p)
{
    if (vc->st.phase == p || vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    vc->st.phase = p;
    emit_state(vc);
}

/* --- call control messages ------------------------------------------------------------- */

static void send_ctl(wzp_voicecall *vc, const wzp_call_msg *m)
{
    if (vc->st.link != WZP_VOICECALL_LINK_UP)
        return;
    uint8_t buf[WZP_CALL_MSG_MAX_SIZE];
    int n = wzp_call_msg_encode(m, buf, sizeof(buf));
    if (n > 0)
        wzp_quic_conn_send_message(vc->conn, buf, (size_t)n);
}

static void send_hangup(wzp_voicecall *vc, bool error)
{
    wzp_call_msg m = {.type = WZP_CALL_MSG_HANGUP, .u.hangup.error = error};
    send_ctl(vc, &m);
}

static void send_mute(wzp_voicecall *vc)
{
    wzp_call_msg m = {.type = WZP_CALL_MSG_MUTE, .u.mute.muted = vc->mute};
    send_ctl(vc, &m);
}

static void send_stats(wzp_voicecall *vc)
{
    if (!vc->rx)
        return;
    wzp_media_rx_stats rs;
    wzp_media_rx_get_stats(vc->rx, &rs);
    wzp_quic_conn_stats qs;
    wzp_quic_conn_get_stats(vc->conn, &qs);
    wzp_call_msg m = {.type = WZP_CALL_MSG_STATS};
    m.u.stats.frames_received = rs.playout.received;
    m.u.stats.frames_lost = rs.playout.lost;
    m.u.stats.rtt_us = (uint32_t)(qs.smoothed_rtt / 1000);
    send_ctl(vc, &m);
}

static void send_report(wzp_voicecall *vc, wzp_ts now)
{
    if (!vc->rx)
        return;
    wzp_media_rx_stats rs;
    wzp_media_rx_get_stats(vc->rx, &rs);
    const wzp_media_rx_stats *p = &vc->report_rs;
    wzp_call_msg m = {.type = WZP_CALL_MSG_REPORT};
    wzp_call_report *r = &m.u.report;
    r->interval_ms = (uint32_t)((now - vc->report_at) / WZP_MS(1));
    r->slots = (uint32_t)(rs.slots - p->slots);
    r->missing = (uint32_t)(rs.missing - p->missing);
    r->runs = (uint32_t)(rs.runs - p->runs);
    r->max_run = wzp_media_rx_take_max_run(vc->rx);
    if (r->max_run > r->missing)
        r->max_run = r->missing; /* a run that began before this interval */
    r->unrepaired = (uint32_t)(rs.plc - p->plc);
    if (r->unrepaired > r->missing)
        r->unrepaired = r->missing; /* concealed corrupt packets are not missing slots */
    r->jitter_us = (uint32_t)(rs.playout.jitter / 1000);
    r->delay_us = (uint32_t)(rs.delay / 1000);
    r->redundancy = wzp_media_rx_redundancy(vc->rx);
    vc->report_rs = rs;
    vc->report_at = now;
    send_ctl(vc, &m);
}

static void on_report(wzp_voicecall *vc, const wzp_call_report *r, wzp_ts now)
{
    if (!vc->tx || !wzp_adapt_on_report(&vc->adapt, r, now))
        return;
    wzp_adapt_settings s = wzp_adapt_get(&vc->adapt);
    wzp_media_tx_set_bitrate(vc->tx, s.bitrate);
    wzp_media_tx_set_expected_loss(vc->tx, s.expected_loss);
    wzp_media_tx_set_redundancy(vc->tx, s.redundancy, s.spacing);
    wzp_media_tx_set_parity(vc->tx, s.parity);
    VC_LOG(WZP_LOG_DEBUG, vc,
           "client: call %u adapts: loss %.1f%% (mean burst %.1f) -> %d bit/s, fec %d%%, "
           "redundancy %u (every %u), parity over %u",
           vc->id, vc->adapt.loss * 100, vc->adapt.burst, s.bitrate, s.expected_loss, s.redundancy,
           s.spacing, s.parity);
}

/* --- ending ----------------------------------------------------------------------------- */

static void log_end(const wzp_voicecall *vc)
{
    if (vc->conn) {
        wzp_quic_conn_stats qs;
        wzp_quic_conn_get_stats(vc->conn, &qs);
        VC_LOG(WZP_LOG_INFO, vc,
               "client: call %u quic: srtt %.2f ms, pto %llu, cwnd %llu, in flight %llu, "
               "dgrams sent %llu recv %llu lost %llu dropped %llu",
               vc->id, (double)qs.smoothed_rtt / 1e6, (unsigned long long)qs.pto_count,
               (unsigned long long)qs.cwnd, (unsigned long long)qs.bytes_in_flight,
               (unsigned long long)qs.dgrams_sent, (unsigned long long)qs.dgrams_recv,
               (unsigned long long)qs.dgrams_lost, (unsigned long long)qs.dgrams_dropped);
    }
    if (vc->rx) {
        wzp_media_rx_stats rs;
        wzp_media_rx_get_stats(vc->rx, &rs);
        VC_LOG(WZP_LOG_INFO, vc,
               "client: call %u media: %llu decoded, %llu fec, %llu plc, %llu late, %llu lost, "
               "%llu held, %llu trimmed, %llu resyncs",
               vc->id, (unsigned long long)rs.decoded, (unsigned long long)rs.fec_recovered,
               (unsigned long long)rs.plc, (unsigned long long)rs.playout.late,
               (unsigned long long)rs.playout.lost, (unsigned long long)rs.playout.held,
               (unsigned long long)rs.playout.trimmed, (unsigned long long)rs.playout.resyncs);
    }
    VC_LOG(WZP_LOG_INFO, vc, "client: call %u ended: %s%s%s", vc->id,
           vc->end_err ? wzp_strerror(vc->end_err) : "hung up", vc->detail[0] ? ": " : "",
           vc->detail);
}

void wzp_voicecall_end(wzp_voicecall *vc, int err, const char *detail, wzp_ts now)
{
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    bool failure = err != 0 && err != WZP_ERR_HANGUP;
    if (vc->sig) {
        uint32_t sig = vc->sig;
        vc->sig = 0;
        /* Tell the relay whether the call went direct (its metrics); before any media
         * there is nothing to report. */
        wzp_sig_call_path path = vc->direct_at != WZP_TS_NEVER      ? WZP_SIG_PATH_DIRECT
                                 : vc->st.active_at != WZP_TS_NEVER ? WZP_SIG_PATH_RELAYED
                                                                    : WZP_SIG_PATH_UNSPECIFIED;
        wzp_sigc_hangup(vc->env.sc, sig, failure, path, now);
    }
    if (vc->conn && vc->st.link != WZP_VOICECALL_LINK_CLOSED) {
        if (!answered(vc)) {
            bool caller = vc->st.role == WZP_VOICECALL_CALLER;
            wzp_quic_conn_close(vc->conn,
                                caller ? WZP_VOICECALL_CLOSE_WITHDRAW : WZP_VOICECALL_CLOSE_DECLINE,
                                caller ? "withdrawn" : "declined");
        } else {
            if (err != WZP_ERR_HANGUP)
                send_hangup(vc, failure);
            wzp_quic_conn_close(vc->conn,
                                failure ? WZP_VOICECALL_CLOSE_ERROR : WZP_VOICECALL_CLOSE_HANGUP,
                                failure ? "error" : "hangup");
        }
    }
    if ((err == WZP_ERR_PEER_UNREACHABLE || err == WZP_ERR_UNREACHABLE) &&
        vc->st.active_at != WZP_TS_NEVER) {
        /* The silence before we gave up is part of the call: count it as lost and as a gap. */
        wzp_ts since = vc->last_rx_at != WZP_TS_NEVER ? vc->last_rx_at : vc->st.active_at;
        if (now > since) {
            wzp_ts tail = now - since;
            vc->tail_lost = tail / FRAME_TIME;
            if (tail > vc->max_gap)
                vc->max_gap = tail;
        }
    }
    vc->end_err = err;
    snprintf(vc->detail, sizeof(vc->detail), "%s", detail ? detail : "");
    vc->st.phase = WZP_VOICECALL_ENDED;
    vc->st.media = WZP_VOICECALL_MEDIA_OFF;
    log_end(vc);
    emit_state(vc);
}

static void q_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info, wzp_ts now)
{
    wzp_voicecall *vc = user;
    vc->conn = NULL;
    vc->st.link = WZP_VOICECALL_LINK_CLOSED;
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    bool caller = vc->st.role == WZP_VOICECALL_CALLER;
    char detail[sizeof(vc->detail)];
    int err;
    if (info->error == WZP_ERR_PIN_MISMATCH && !info->by_peer) {
        err = WZP_ERR_PIN_MISMATCH;
        snprintf(detail, sizeof(detail), "possible man-in-the-middle: %s", info->detail);
    } else if (info->error == WZP_ERR_TIMEOUT && vc->st.active_at != WZP_TS_NEVER) {
        /* Silence from the peer on every path. If the relay went quiet too and the
         * call had no direct path, the relay is what we lost. */
        bool direct = vc->st.paths == WZP_VOICECALL_PATHS_CHECKING &&
                      wzp_ice_route_get(vc->ice).kind == WZP_ROUTE_DIRECT;
        bool relay_quiet = now - vc->env.relay_heard_at(vc->env.owner) >= E2E_IDLE_TIMEOUT;
        err = !direct && relay_quiet ? WZP_ERR_UNREACHABLE : WZP_ERR_PEER_UNREACHABLE;
        snprintf(detail, sizeof(detail), "%s: nothing heard from %s for %lld s",
                 err == WZP_ERR_UNREACHABLE ? "lost the relay" : "peer unreachable",
                 err == WZP_ERR_UNREACHABLE ? "the relay or the peer" : "the peer",
                 (long long)(E2E_IDLE_TIMEOUT / WZP_SEC(1)));
    } else if (info->error) {
        err = info->error;
        snprintf(detail, sizeof(detail), "end-to-end connection failed: %s", info->detail);
    } else if (info->app_code == WZP_VOICECALL_CLOSE_DECLINE && caller) {
        err = WZP_ERR_REJECTED;
        snprintf(detail, sizeof(detail), "the peer rejected the call");
    } else if (info->app_code == WZP_VOICECALL_CLOSE_WITHDRAW && !caller) {
        err = WZP_ERR_CANCELLED;
        snprintf(detail, sizeof(detail), "the caller hung up before the answer");
    } else if (info->app_code == WZP_VOICECALL_CLOSE_HANGUP) {
        err = WZP_ERR_HANGUP;
        snprintf(detail, sizeof(detail), "the peer hung up");
    } else {
        err = WZP_ERR_CLOSED;
        snprintf(detail, sizeof(detail), "the peer closed the call: %s", info->detail);
    }
    wzp_voicecall_end(vc, err, detail, now);
}

/* --- candidates and the ICE agent ------------------------------------------------------- */

static wzp_sig_cand_type to_sig_type(wzp_cand_type t)
{
    return t == WZP_CAND_HOST     ? WZP_SIG_CAND_HOST
           : t == WZP_CAND_SRFLX  ? WZP_SIG_CAND_SRFLX
           : t == WZP_CAND_MAPPED ? WZP_SIG_CAND_MAPPED
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
    case WZP_SIG_CAND_MAPPED:
        *out = WZP_CAND_MAPPED;
        return true;
    default:
        return false; /* relay candidates: the relay path is implicit */
    }
}

static void add_local(wzp_voicecall *vc, wzp_cand_type type, const wzp_addr *a)
{
    if (vc->n_local >= WZP_SIG_MAX_CANDIDATES || !wzp_cand_addr_usable(a))
        return;
    for (size_t i = 0; i < vc->n_local; i++)
        if (wzp_addr_equal(&vc->local[i].addr, a))
            return;
    wzp_sig_candidate *c = &vc->local[vc->n_local++];
    c->type = to_sig_type(type);
    c->priority = wzp_cand_priority(type, a);
    c->addr = *a;
}

/* Our candidates for the offer/accept: host addresses, the gateway's port mapping (if one was
 * granted) and the reflexive one. */
static void gather(wzp_voicecall *vc, const wzp_addr *hosts, size_t n_hosts,
                   const wzp_addr *reflexive)
{
    vc->n_local = 0;
    if (vc->env.direct_disabled)
        return;
    for (size_t i = 0; i < n_hosts; i++)
        add_local(vc, WZP_CAND_HOST, &hosts[i]);
    if (vc->env.mapped && vc->env.mapped->len)
        add_local(vc, WZP_CAND_MAPPED, vc->env.mapped);
    if (reflexive && reflexive->len)
        add_local(vc, WZP_CAND_SRFLX, reflexive);
}

/* The agent's local candidates: ours (vc->local) plus the peer-reflexive ones it learned. */
static void ice_set_locals(wzp_voicecall *vc, wzp_ts now)
{
    wzp_candidate prev[WZP_SIG_MAX_CANDIDATES];
    size_t n_prev = wzp_ice_local_candidates(vc->ice, prev, WZP_SIG_MAX_CANDIDATES);
    if (n_prev > WZP_SIG_MAX_CANDIDATES)
        n_prev = WZP_SIG_MAX_CANDIDATES;
    wzp_ice_clear_local(vc->ice, now);
    for (size_t i = 0; i < vc->n_local; i++) {
        wzp_cand_type t;
        if (from_sig_type(vc->local[i].type, &t))
            wzp_ice_add_local(vc->ice, t, &vc->local[i].addr);
    }
    /* Learned by the agent itself from probe answers, not gathered: keep them. */
    for (size_t i = 0; i < n_prev; i++)
        if (prev[i].type == WZP_CAND_PRFLX)
            wzp_ice_add_local(vc->ice, WZP_CAND_PRFLX, &prev[i].addr);
}

/*
 * Sends the peer our complete current set (gathered ones plus the
 * peer-reflexive ones the agent learned, which the peer was trickled and
 * must keep), so it drops the addresses we no longer have. Returns false if
 * the set does not fit one message: then the caller sends only the additions
 * (withdrawing a candidate we merely could not list would be worse).
 */
static bool send_candidate_set(wzp_voicecall *vc, wzp_ts now)
{
    wzp_sig_candidate set[WZP_SIG_MAX_CANDIDATES];
    size_t n = vc->n_local;
    memcpy(set, vc->local, n * sizeof(set[0]));
    wzp_candidate ice[WZP_SIG_MAX_CANDIDATES + 1];
    size_t n_ice = wzp_ice_local_candidates(vc->ice, ice, WZP_SIG_MAX_CANDIDATES + 1);
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
    if (wzp_sigc_send_candidate_set(vc->env.sc, vc->sig, vc->cand_gen + 1, set, n, vc->env.nat,
                                    now) < 0)
        return false;
    if (vc->env.nat)
        vc->nat_sent = *vc->env.nat;
    vc->cand_gen++;
    return true;
}

/* Re-gathers (hosts changed, or the port mapping came, moved or went) and tells the peer;
 * after a network change every pair is re-checked too. */
static void regather(wzp_voicecall *vc, const wzp_addr *hosts, size_t n, bool net_changed,
                     wzp_ts now)
{
    if (vc->env.direct_disabled || vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    wzp_sig_candidate old[WZP_SIG_MAX_CANDIDATES];
    size_t n_old = vc->n_local;
    memcpy(old, vc->local, n_old * sizeof(old[0]));
    vc->agent_now = now;
    /* Before signaling is done this only changes what the Offer/Accept or ICE start will use. */
    gather(vc, hosts, n, wzp_sigc_reflexive(vc->env.sc));
    if (vc->st.paths == WZP_VOICECALL_PATHS_RELAY) {
        /* The peer may have our old set already: update it once the call is set up. */
        vc->cands_stale = vc->sig != 0;
        return;
    }
    ice_set_locals(vc, now);
    if (net_changed)
        wzp_ice_network_changed(vc->ice, now);
    if (!vc->sig || !answered(vc))
        return;
    if (send_candidate_set(vc, now))
        return;
    /* Too many to list: send what the peer has not been told yet (add-only). */
    wzp_sig_candidate fresh[WZP_SIG_MAX_CANDIDATES];
    size_t n_fresh = 0;
    for (size_t i = 0; i < vc->n_local; i++) {
        bool known = false;
        for (size_t j = 0; j < n_old && !known; j++)
            known = wzp_addr_equal(&old[j].addr, &vc->local[i].addr);
        if (!known)
            fresh[n_fresh++] = vc->local[i];
    }
    if (n_fresh)
        wzp_sigc_update_candidates(vc->env.sc, vc->sig, fresh, n_fresh, now);
}

void wzp_voicecall_on_hosts(wzp_voicecall *vc, const wzp_addr *hosts, size_t n, wzp_ts now)
{
    regather(vc, hosts, n, true, now);
}

void wzp_voicecall_on_mapped(wzp_voicecall *vc, const wzp_addr *hosts, size_t n, wzp_ts now)
{
    regather(vc, hosts, n, false, now);
}

void wzp_voicecall_on_reflexive(wzp_voicecall *vc, const wzp_addr *refl, wzp_ts now)
{
    vc->agent_now = now;
    /* The relay sees us at a new address (NAT rebinding): tell the peer, check it. */
    if (vc->env.direct_disabled || !vc->sig || vc->st.paths == WZP_VOICECALL_PATHS_RELAY ||
        !answered(vc))
        return;
    for (size_t i = 0; i < vc->n_local; i++)
        if (vc->local[i].type == WZP_SIG_CAND_SRFLX && wzp_addr_equal(&vc->local[i].addr, refl))
            return;
    /* The old mapping is gone with the rebinding: replace it, so the peer withdraws it. */
    size_t k = 0;
    for (size_t i = 0; i < vc->n_local; i++)
        if (vc->local[i].type != WZP_SIG_CAND_SRFLX)
            vc->local[k++] = vc->local[i];
    bool removed = k != vc->n_local;
    vc->n_local = k;
    add_local(vc, WZP_CAND_SRFLX, refl);
    if (vc->n_local == k && !removed)
        return; /* already known as a host address */
    ice_set_locals(vc, now);
    if (!send_candidate_set(vc, now) && vc->n_local > k)
        wzp_sigc_update_candidates(vc->env.sc, vc->sig, &vc->local[k], 1, now);
}

static void ice_route_changed(void *user, const wzp_ice_route *route, wzp_route_reason reason)
{
    wzp_voicecall *vc = user;
    vc->path_changes++;
    if (route->kind == WZP_ROUTE_DIRECT && vc->direct_at == WZP_TS_NEVER)
        vc->direct_at = vc->agent_now;
    char buf[WZP_ADDR_STRLEN];
    VC_LOG(WZP_LOG_INFO, vc, "client: call %u route -> %s %s (%s)", vc->id,
           route->kind == WZP_ROUTE_DIRECT ? "direct" : "relay",
           route->kind == WZP_ROUTE_DIRECT ? wzp_addr_format(&route->remote, buf, sizeof(buf)) : "",
           wzp_route_reason_name(reason));
    wzp_voicecall_event e = {.type = WZP_VOICECALL_EV_PATH};
    emit(vc, &e);
}

static void ice_local_candidate(void *user, const wzp_candidate *cand)
{
    wzp_voicecall *vc = user;
    if (!vc->sig)
        return;
    wzp_sig_candidate c = {
        .type = to_sig_type(cand->type), .priority = cand->priority, .addr = cand->addr};
    wzp_sigc_update_candidates(vc->env.sc, vc->sig, &c, 1, vc->agent_now);
}

/* The agent's probes are keyed from the end-to-end TLS session: needs both. */
static void key_ice(wzp_voicecall *vc, wzp_ts now)
{
    if (vc->st.paths != WZP_VOICECALL_PATHS_UNKEYED || vc->st.link != WZP_VOICECALL_LINK_UP)
        return;
    uint8_t key[WZP_PROBE_KEY_LEN];
    if (wzp_quic_conn_export(vc->conn, "EXPORTER-wzp-probe-key", NULL, 0, key, sizeof(key)) == 0 &&
        wzp_ice_set_key(vc->ice, key, now) == 0) {
        vc->st.paths = WZP_VOICECALL_PATHS_CHECKING;
        memcpy(vc->tag, wzp_ice_tag(vc->ice), sizeof(vc->tag));
    }
}

/* A main socket that exists, or one of the birthday sockets. */
static bool have_sock(const wzp_voicecall *vc, int sock)
{
    if (sock >= 0 && sock < WZP_VOICECALL_SOCKS)
        return vc->env.local[sock].len != 0;
    return sock >= WZP_VOICECALL_SOCKS && sock < WZP_VOICECALL_SOCKS + (int)vc->env.aux_socks;
}

/* Both NATs, as far as known, to the agent: it picks birthday probing if they call for it. */
static void ice_set_nat(wzp_voicecall *vc, wzp_ts now)
{
    if (!vc->ice || !vc->env.nat)
        return;
    wzp_ice_stats st;
    wzp_ice_get_stats(vc->ice, &st);
    wzp_bday_role role = wzp_ice_set_nat(vc->ice, vc->env.nat, &vc->peer_nat, now);
    if (role != WZP_BDAY_NONE && role != st.bday_role)
        VC_LOG(WZP_LOG_INFO, vc, "call: birthday probing role %s", wzp_bday_role_name(role));
}

void wzp_voicecall_on_nat(wzp_voicecall *vc, wzp_ts now)
{
    if (!vc->ice || vc->st.phase == WZP_VOICECALL_ENDED || !vc->env.nat)
        return;
    ice_set_nat(vc, now);
    /* Measured after our Offer/Accept: a complete candidate set carries it to the peer. */
    if (memcmp(&vc->nat_sent, vc->env.nat, sizeof(vc->nat_sent)) != 0)
        (void)send_candidate_set(vc, now);
}

static int start_ice(wzp_voicecall *vc, const wzp_sig_candidates *peer, const wzp_sig_nat *peer_nat,
                     wzp_ts now)
{
    if (vc->env.direct_disabled || vc->st.paths != WZP_VOICECALL_PATHS_RELAY)
        return 0;
    wzp_ice_config ic;
    wzp_ice_config_default(&ic);
    uint8_t fp[WZP_FINGERPRINT_LEN];
    wzp_identity_fingerprint(vc->env.id, fp);
    memcpy(ic.agent_id, fp, sizeof(ic.agent_id));
    ic.cb.route_changed = ice_route_changed;
    ic.cb.local_candidate = ice_local_candidate;
    ic.user = vc;
    ic.aux_socks = vc->env.aux_socks;
    int rv = wzp_ice_new(&vc->ice, &ic);
    if (rv < 0)
        return rv;
    vc->st.paths = WZP_VOICECALL_PATHS_UNKEYED;
    for (size_t i = 0; i < vc->n_local; i++) {
        wzp_cand_type t;
        if (from_sig_type(vc->local[i].type, &t))
            wzp_ice_add_local(vc->ice, t, &vc->local[i].addr);
    }
    for (size_t i = 0; i < peer->n; i++) {
        wzp_cand_type t;
        if (from_sig_type(peer->c[i].type, &t))
            wzp_ice_add_remote(vc->ice, t, &peer->c[i].addr, now);
    }
    vc->peer_nat = *peer_nat;
    key_ice(vc, now);
    wzp_voicecall_on_nat(vc, now);
    return 0;
}

/* A CandidatesUpdate from the peer: a complete set replaces (agent.h), an old-style one adds. */
static void on_candidates(wzp_voicecall *vc, const wzp_sig_msg *m, wzp_ts now)
{
    const wzp_sig_candidates *cands = &m->u.update.cands;
    bool complete = m->u.update.complete;
    wzp_candidate set[WZP_SIG_MAX_CANDIDATES];
    size_t n = 0;
    for (size_t i = 0; i < cands->n && i < WZP_SIG_MAX_CANDIDATES; i++) {
        wzp_cand_type t;
        if (!from_sig_type(cands->c[i].type, &t))
            continue;
        if (!complete) {
            wzp_ice_add_remote(vc->ice, t, &cands->c[i].addr, now);
            continue;
        }
        set[n++] = (wzp_candidate){.type = t, .addr = cands->c[i].addr};
    }
    if (complete) /* a stale generation is counted by the agent and ignored */
        (void)wzp_ice_set_remote_candidates(vc->ice, m->u.update.generation, set, n, now);
    static const wzp_sig_nat unknown;
    if (memcmp(&m->u.update.nat, &unknown, sizeof(unknown)) != 0) {
        /* The peer learned its NAT after its Offer/Accept went out. */
        vc->peer_nat = m->u.update.nat;
        ice_set_nat(vc, now);
    }
}

/* --- the end-to-end connection and media ------------------------------------------------ */

static wzp_ts e2e_initial_rtt(const wzp_voicecall *vc)
{
    /* Peer to peer through the relay is two legs of the relay round trip. */
    wzp_ts rtt = 2 * vc->env.relay_rtt(vc->env.owner);
    if (rtt == 0)
        return WZP_MS(100);
    if (rtt < WZP_MS(2))
        rtt = WZP_MS(2);
    if (rtt > WZP_SEC(1))
        rtt = WZP_SEC(1);
    return rtt;
}

static void q_datagram(void *user, wzp_quic_conn *c, const uint8_t *d, size_t len, wzp_ts now);
static void q_established(void *user, wzp_quic_conn *c, const uint8_t *peer_fp, wzp_ts now);
static void q_message(void *user, wzp_quic_conn *c, const uint8_t *d, size_t len, wzp_ts now);
static void q_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info, wzp_ts now);

/* The call's own connection callbacks (user: the call). */
static const wzp_quic_conn_callbacks e2e_callbacks = {
    .established = q_established,
    .datagram = q_datagram,
    .message = q_message,
    .closed = q_closed,
};

static void e2e_opts(wzp_voicecall *vc, wzp_quic_conn_config *o)
{
    o->cb = e2e_callbacks;
    o->path_managed = true;
    o->pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(o->pin, vc->peer_fp, sizeof(o->pin));
    o->initial_rtt = e2e_initial_rtt(vc);
    o->keep_alive = E2E_KEEP_ALIVE;
    o->idle_timeout = E2E_IDLE_TIMEOUT;
    o->max_message = E2E_MAX_MESSAGE;
    /* The caller's first media leaves with its Finished instead of one round trip later. */
    o->early_datagrams = true;
    o->user = vc;
}

/* Codec state for the call; sending starts now (once per call). */
static int start_media(wzp_voicecall *vc, wzp_ts now)
{
    if (vc->tx)
        return 0;
    wzp_media_tx_config tc;
    wzp_media_tx_config_default(&tc);
    tc.opus.dtx = vc->env.dtx;
    int err = wzp_media_tx_new(&vc->tx, &tc);
    wzp_media_rx_config rc;
    wzp_media_rx_config_default(&rc);
    /* Start playout one frame after the first arrival (plus a few ms of slack, see
     * media/playout.h: the next frame's FEC is then in time) and let the adaptive buffer follow
     * the jitter it measures: a fixed 60 ms start made the first audio wait for jitter that
     * loopback, LANs and most direct paths never show. */
    rc.playout.target_delay = WZP_MS(20);
    if (err == 0)
        err = wzp_media_rx_new(&vc->rx, &rc);
    if (err < 0) {
        wzp_voicecall_end(vc, WZP_ERR_AUDIO, "cannot start the Opus codec", now);
        return WZP_ERR_AUDIO;
    }
    wzp_media_tx_set_mute(vc->tx, vc->mute);
    wzp_adapt_init(&vc->adapt, !vc->env.no_adapt, now); /* starts at the codec's defaults */
    wzp_adapt_set_parity(&vc->adapt, vc->env.parity);
    vc->tx_next = now;
    return 0;
}

static void on_datagram(wzp_voicecall *vc, const uint8_t *d, size_t len, wzp_ts now)
{
    if (vc->st.role == WZP_VOICECALL_CALLEE && vc->st.phase == WZP_VOICECALL_RINGING &&
        len <= sizeof(vc->ring_dg)) {
        memcpy(vc->ring_dg, d, len); /* kept, never played before the answer */
        vc->ring_dg_len = len;
        vc->ring_dg_at = now;
        return;
    }
    if (vc->st.media != WZP_VOICECALL_MEDIA_BOTH)
        return;
    wzp_media_rx_datagram(vc->rx, d, len, now);
    if (vc->last_rx_at != WZP_TS_NEVER && now - vc->last_rx_at > vc->max_gap)
        vc->max_gap = now - vc->last_rx_at;
    vc->last_rx_at = now;
}

static void q_datagram(void *user, wzp_quic_conn *c, const uint8_t *d, size_t len, wzp_ts now)
{
    on_datagram(user, d, len, now);
}

/* Both sides agreed (the answer) and the connection is up: audio both ways from now. */
static void go_active(wzp_voicecall *vc, wzp_ts now)
{
    if (vc->st.phase == WZP_VOICECALL_ENDED || vc->st.phase == WZP_VOICECALL_ACTIVE)
        return;
    if (vc->st.link != WZP_VOICECALL_LINK_UP) {
        set_phase(vc, WZP_VOICECALL_CONNECTING); /* active once the handshake is done */
        return;
    }
    if (start_media(vc, now) < 0)
        return;
    vc->st.media = WZP_VOICECALL_MEDIA_BOTH;
    vc->st.active_at = now;
    vc->next_stats = now + STATS_INTERVAL;
    vc->next_report = now + REPORT_INTERVAL;
    vc->report_at = now;
    if (vc->st.role == WZP_VOICECALL_CALLEE) {
        /* Proven by our key and faster than the relay's CallSetup. */
        wzp_call_msg m = {.type = WZP_CALL_MSG_ANSWER};
        send_ctl(vc, &m);
    }
    set_phase(vc, WZP_VOICECALL_ACTIVE);
    /* The caller's latest frame, if live (at most one frame old): playout starts from it. */
    if (vc->ring_dg_len && now - vc->ring_dg_at <= FRAME_TIME)
        on_datagram(vc, vc->ring_dg, vc->ring_dg_len, now);
    vc->ring_dg_len = 0;
}

/* Caller: the callee answered (its Answer on our connection, or the relay's CallSetup). */
static void on_answered(wzp_voicecall *vc, wzp_ts now)
{
    if (answered(vc) || vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    vc->st.answered_at = now;
    go_active(vc, now);
}

static void q_message(void *user, wzp_quic_conn *c, const uint8_t *d, size_t len, wzp_ts now)
{
    wzp_voicecall *vc = user;
    wzp_call_msg m;
    int rc = wzp_call_msg_decode(d, len, &m);
    if (rc < 0) {
        if (rc == WZP_ERR_MALFORMED)
            VC_LOG(WZP_LOG_DEBUG, vc, "client: call %u: malformed call message dropped", vc->id);
        return;
    }
    switch (m.type) {
    case WZP_CALL_MSG_HANGUP:
        wzp_voicecall_end(
            vc, WZP_ERR_HANGUP,
            m.u.hangup.error ? "the peer ended the call after an error" : "the peer hung up", now);
        break;
    case WZP_CALL_MSG_MUTE:
        vc->peer_mute = m.u.mute.muted;
        break;
    case WZP_CALL_MSG_STATS:
        vc->peer_frames_received = m.u.stats.frames_received;
        vc->peer_frames_lost = m.u.stats.frames_lost;
        break;
    case WZP_CALL_MSG_ANSWER:
        if (vc->st.role == WZP_VOICECALL_CALLER)
            on_answered(vc, now);
        break;
    case WZP_CALL_MSG_REPORT:
        on_report(vc, &m.u.report, now);
        break;
    }
}

int wzp_voicecall_accept_conn(wzp_voicecall *vc, wzp_quic_conn_config *opts)
{
    /* Only the caller's Initial on our own channel, to the key we were shown. */
    if (vc->st.role != WZP_VOICECALL_CALLEE || vc->st.link != WZP_VOICECALL_LINK_NONE ||
        !vc->chan || vc->st.key != WZP_VOICECALL_KEY_PINNED ||
        (vc->st.phase != WZP_VOICECALL_RINGING && vc->st.phase != WZP_VOICECALL_CONNECTING))
        return WZP_ERR_INVALID;
    e2e_opts(vc, opts);
    vc->st.link = WZP_VOICECALL_LINK_HANDSHAKE;
    return 0;
}

/* Both keys in a fixed order (the QUIC client's first) as the exporter's context: the code
 * names the pair of keys and this one connection. 10^6 values: a man-in-the-middle's two
 * connections show matching codes once in a million. */
static void make_code(wzp_voicecall *vc, wzp_quic_conn *c)
{
    uint8_t ctx[2 * WZP_FINGERPRINT_LEN], out[8];
    bool server = wzp_quic_conn_is_server(c);
    wzp_identity_fingerprint(vc->env.id, ctx + (server ? WZP_FINGERPRINT_LEN : 0));
    memcpy(ctx + (server ? 0 : WZP_FINGERPRINT_LEN), vc->peer_fp, WZP_FINGERPRINT_LEN);
    vc->code[0] = '\0';
    if (wzp_quic_conn_export(c, "EXPORTER-wzp-verification-code", ctx, sizeof(ctx), out,
                             sizeof(out)) != 0)
        return;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(out); i++)
        v = v << 8 | out[i];
    v %= 1000000; /* 2^64 is so much larger that the bias is below 10^-13 */
    snprintf(vc->code, sizeof(vc->code), "%03u %03u", (unsigned)(v / 1000), (unsigned)(v % 1000));
}

static void q_established(void *user, wzp_quic_conn *c, const uint8_t *peer_fp, wzp_ts now)
{
    wzp_voicecall *vc = user;
    vc->conn = c;
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    /* The pin already enforces this; checked again because it is the promise itself. */
    if (!peer_fp || memcmp(peer_fp, vc->peer_fp, WZP_FINGERPRINT_LEN) != 0) {
        wzp_voicecall_end(vc, WZP_ERR_PIN_MISMATCH,
                          "possible man-in-the-middle: the peer proved another key", now);
        return;
    }
    vc->st.link = WZP_VOICECALL_LINK_UP;
    make_code(vc, c);
    key_ice(vc, now);
    if (vc->mute)
        send_mute(vc);
    /* While the phone rings the connection waits, ready: the answer makes the call active. */
    if (answered(vc))
        go_active(vc, now);
}

void wzp_voicecall_on_relay_packet(wzp_voicecall *vc, const uint8_t *pkt, size_t len, wzp_ts now)
{
    vc->agent_now = now;
    wzp_quic_rx rx;
    wzp_quic_endpoint_feed(vc->env.ep, &vc->env.vlocal, &vc->vremote, pkt, len, now, &rx);
    if (!vc->conn && vc->st.link == WZP_VOICECALL_LINK_HANDSHAKE) {
        /* The caller's Initial made our server connection (or failed to: accept the next). */
        if (rx.conn && wzp_quic_conn_user(rx.conn) == vc)
            vc->conn = rx.conn;
        else
            vc->st.link = WZP_VOICECALL_LINK_NONE;
    }
}

void wzp_voicecall_on_direct_rx(wzp_voicecall *vc, int sock, const wzp_addr *from,
                                bool authenticated, wzp_ts now)
{
    /* Only a packet QUIC decrypted proves the peer is behind that address. */
    if (!authenticated || vc->st.paths != WZP_VOICECALL_PATHS_CHECKING)
        return;
    vc->agent_now = now;
    wzp_ice_note_rx(vc->ice, sock, from, now);
}

void wzp_voicecall_on_probe(wzp_voicecall *vc, int sock, const wzp_addr *from, const uint8_t *pkt,
                            size_t len, wzp_ts now)
{
    if (vc->st.paths != WZP_VOICECALL_PATHS_CHECKING || vc->st.phase != WZP_VOICECALL_ACTIVE)
        return;
    vc->agent_now = now;
    wzp_ice_recv(vc->ice, sock, from, pkt, len, now);
}

/* --- signaling ---------------------------------------------------------------------------- */

/*
 * The relay names the peer's key in Ringing and CallSetup. A call placed to a
 * fingerprint, and an incoming call (whose caller the user was shown), are
 * already locked to a key: the relay's word must match it, or the relay is
 * routing the call to someone else. Only a call placed to an alias learns its
 * key here (and is locked to it from then on).
 */
static bool peer_key_matches(wzp_voicecall *vc, const uint8_t *fp, const char *alias, wzp_ts now)
{
    if (vc->st.key == WZP_VOICECALL_KEY_UNKNOWN) {
        memcpy(vc->peer_fp, fp, WZP_FINGERPRINT_LEN);
        vc->st.key = WZP_VOICECALL_KEY_PINNED;
        fp_text(vc->peer_fp, vc->peer_fp_text);
        if (alias && alias[0] && alias != vc->peer_alias)
            snprintf(vc->peer_alias, sizeof(vc->peer_alias), "%s", alias);
        return true;
    }
    if (memcmp(vc->peer_fp, fp, WZP_FINGERPRINT_LEN) == 0)
        return true;
    char named[WZP_FINGERPRINT_STRLEN], detail[sizeof(vc->detail)];
    fp_text(fp, named);
    snprintf(detail, sizeof(detail),
             vc->st.role == WZP_VOICECALL_CALLER
                 ? "possible man-in-the-middle: you called %s, the relay connected the call to "
                   "another key (%s)"
                 : "possible man-in-the-middle: the relay announced the caller as %s, then "
                   "connected the call to another key (%s)",
             vc->peer_fp_text, named);
    wzp_voicecall_end(vc, WZP_ERR_PIN_MISMATCH, detail, now);
    return false;
}

/* The call's relay channel (0: keep what we have) and where its frames go. */
static void use_channel(wzp_voicecall *vc, uint32_t chan, const wzp_addr *relay, wzp_ts now)
{
    if (!chan)
        return;
    vc->chan = chan;
    vc->relay = relay->len ? *relay : vc->env.relay;
    int s = wzp_cand_sock_for(&vc->relay);
    if (s < 0 || vc->env.local[s].len == 0)
        vc->relay = vc->env.relay; /* no socket of that family: the control address */
    if (vc->next_keepalive == WZP_TS_NEVER)
        vc->next_keepalive = now + RELAY_KEEPALIVE;
}

static void on_incoming(wzp_voicecall *vc, const wzp_sig_msg *m, wzp_ts now)
{
    /* The key the user is shown is the key the call is locked to (setup, e2e pin). */
    memcpy(vc->peer_fp, m->u.incoming.caller_fp, WZP_FINGERPRINT_LEN);
    vc->st.key = WZP_VOICECALL_KEY_PINNED;
    fp_text(vc->peer_fp, vc->peer_fp_text);
    snprintf(vc->peer_alias, sizeof(vc->peer_alias), "%s", m->u.incoming.caller_alias);
    VC_LOG(WZP_LOG_INFO, vc, "client: call %u incoming from %s", vc->id, vc->peer_fp_text);
    /* The caller's handshake comes through this channel while we ring. */
    use_channel(vc, m->u.incoming.relay_channel, &m->u.incoming.relay_addr, now);
    vc->st.phase = WZP_VOICECALL_RINGING; /* the owner announces the incoming call itself */
}

/* Caller: the relay rings the callee. With a channel, the end-to-end handshake starts now
 * and is done before the answer (pre-connected ringing). */
static void on_ringing(wzp_voicecall *vc, const wzp_sig_msg *m, wzp_ts now)
{
    VC_LOG(WZP_LOG_INFO, vc, "client: call %u ringing%s", vc->id,
           m->u.ringing.relay_channel ? ", connecting through the relay meanwhile" : "");
    if (m->u.ringing.have_callee_fp &&
        !peer_key_matches(vc, m->u.ringing.callee_fp, vc->peer_alias, now))
        return;
    if (m->u.ringing.relay_channel && vc->st.key == WZP_VOICECALL_KEY_PINNED &&
        vc->st.link == WZP_VOICECALL_LINK_NONE) {
        use_channel(vc, m->u.ringing.relay_channel, &m->u.ringing.relay_addr, now);
        vc->st.link = WZP_VOICECALL_LINK_DIAL;
    }
    set_phase(vc, WZP_VOICECALL_RINGING);
}

static void on_setup(wzp_voicecall *vc, const wzp_sig_msg *m, wzp_ts now)
{
    if (!peer_key_matches(vc, m->u.setup.peer_fp, m->u.setup.peer_alias, now))
        return;
    use_channel(vc, m->u.setup.relay_channel, &m->u.setup.relay_addr, now);
    if (start_ice(vc, &m->u.setup.peer_cands, &m->u.setup.peer_params.nat, now) < 0) {
        wzp_voicecall_end(vc, WZP_ERR_NOMEM, "out of memory", now);
        return;
    }
    if (vc->st.role == WZP_VOICECALL_CALLER) {
        if (vc->st.link == WZP_VOICECALL_LINK_NONE)
            vc->st.link = WZP_VOICECALL_LINK_DIAL; /* a relay that does not pre-connect */
        on_answered(vc, now);
    }
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    if (vc->cands_stale && vc->st.paths != WZP_VOICECALL_PATHS_RELAY && vc->sig) {
        /* The Offer/Accept carried an older set: replace it (withdrawing what went). */
        vc->cands_stale = false;
        if (!send_candidate_set(vc, now) && vc->n_local)
            wzp_sigc_update_candidates(vc->env.sc, vc->sig, vc->local, vc->n_local, now);
    }
}

static void on_ended(wzp_voicecall *vc, const wzp_sigc_event *ev, wzp_ts now)
{
    vc->sig = 0;
    if (vc->reattaching && !ev->reason) {
        /* The new relay could not take the call (or lost its connection too): the call's
         * own connection decides, as after any loss of the relay. */
        vc->reattaching = false;
        VC_LOG(WZP_LOG_INFO, vc, "client: call %u not re-attached: %s", vc->id,
               wzp_strerror(ev->err));
        return;
    }
    bool up = vc->st.link == WZP_VOICECALL_LINK_UP || vc->st.link == WZP_VOICECALL_LINK_HANDSHAKE;
    /* A call already set up outlives the relay connection: its own QUIC
     * connection decides (it may be direct, and the relay may come back). */
    if (ev->err == WZP_ERR_UNREACHABLE && up && answered(vc))
        return;
    /* The relay lost the peer's control connection. The peer may still be on
     * a direct path (its relay link alone failed): only a peer also silent
     * here is gone; otherwise the call's own connection decides. */
    if (ev->reason == WZP_SIG_END_PEER_GONE && up && vc->st.phase == WZP_VOICECALL_ACTIVE) {
        if (vc->last_rx_at != WZP_TS_NEVER && now - vc->last_rx_at < WZP_SEC(1))
            return;
        wzp_voicecall_end(vc, WZP_ERR_PEER_UNREACHABLE,
                          "peer unreachable: the relay lost it and it is silent here too", now);
        return;
    }
    char detail[128];
    if (ev->reason)
        snprintf(detail, sizeof(detail), "relay: %s", wzp_sig_end_reason_name(ev->reason));
    else if (ev->msg && ev->msg->type == WZP_SIG_ERROR && ev->msg->u.error.text[0])
        snprintf(detail, sizeof(detail), "relay: %.120s", ev->msg->u.error.text); /* its reason */
    else
        snprintf(detail, sizeof(detail), "%s", wzp_strerror(ev->err));
    if (ev->err == WZP_ERR_HANGUP)
        snprintf(detail, sizeof(detail), "the peer hung up");
    if (ev->reason == WZP_SIG_END_OFFLINE && ev->msg && ev->msg->u.end.have_holder &&
        vc->alias_hint[0]) {
        /* Only the relay's word: a new key of the same person, or someone else using the
         * name. Either way nobody was rung, and the pinned key is not given up. */
        char holder[WZP_FINGERPRINT_STRLEN], text[200];
        fp_text(ev->msg->u.end.holder_fp, holder);
        snprintf(text, sizeof(text),
                 "the key you called is offline and the relay says alias '%s' now belongs to "
                 "another key, %s",
                 vc->alias_hint, holder);
        wzp_voicecall_end(vc, WZP_ERR_KEY_CHANGED, text, now);
        return;
    }
    wzp_voicecall_end(vc, ev->err ? ev->err : WZP_ERR_CLOSED, detail, now);
}

void wzp_voicecall_on_signal(wzp_voicecall *vc, const wzp_sigc_event *ev, wzp_ts now)
{
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    vc->agent_now = now;
    if (!vc->log_tag[0] && ev->call_id)
        wzp_log_tag_id(vc->log_tag, "call", ev->call_id, WZP_SIG_CALL_ID_LEN);
    if (ev->call_id && !vc->have_call_id) {
        memcpy(vc->call_id, ev->call_id, WZP_SIG_CALL_ID_LEN);
        vc->have_call_id = true;
    }
    switch (ev->type) {
    case WZP_SIGC_EV_INCOMING:
        if (vc->st.role == WZP_VOICECALL_CALLEE)
            on_incoming(vc, ev->msg, now);
        break;
    case WZP_SIGC_EV_RINGING:
        if (vc->st.role == WZP_VOICECALL_CALLER)
            on_ringing(vc, ev->msg, now);
        break;
    case WZP_SIGC_EV_SETUP:
        on_setup(vc, ev->msg, now);
        break;
    case WZP_SIGC_EV_CANDIDATES:
        if (vc->st.paths != WZP_VOICECALL_PATHS_RELAY)
            on_candidates(vc, ev->msg, now);
        break;
    case WZP_SIGC_EV_ENDED:
        on_ended(vc, ev, now);
        break;
    case WZP_SIGC_EV_REATTACHED:
        vc->reattaching = false;
        use_channel(vc, ev->msg->u.reattach.relay_channel, &ev->msg->u.reattach.relay_addr, now);
        vc->next_keepalive = now; /* a keep-alive at once opens our NAT toward the new relay */
        VC_LOG(WZP_LOG_INFO, vc, "client: call %u re-attached on the new relay, channel %u", vc->id,
               vc->chan);
        break;
    default:
        break;
    }
}

/* --- timers and sending ----------------------------------------------------------------- */

/* The caller sends from its handshake on (also while ringing), the callee from its answer. */
static bool sending(const wzp_voicecall *vc)
{
    return vc->st.media != WZP_VOICECALL_MEDIA_OFF;
}

/* Caller: the callee's key is checked, so our audio may go, also while it rings: the
 * callee plays nothing before its user answers, then hears us at once. */
static bool may_send_early(const wzp_voicecall *vc)
{
    return vc->st.role == WZP_VOICECALL_CALLER && !vc->env.hold_audio_until_answer &&
           vc->st.media == WZP_VOICECALL_MEDIA_OFF && vc->conn &&
           (vc->st.phase == WZP_VOICECALL_RINGING || vc->st.phase == WZP_VOICECALL_CONNECTING) &&
           wzp_quic_conn_can_send_datagram(vc->conn);
}

static void media_tick(wzp_voicecall *vc, wzp_ts now)
{
    /* Datagrams the connection took and dropped later (they never fit beside
     * what QUIC had to send) were not sent either. */
    if (vc->conn && vc->tx) {
        wzp_quic_conn_stats qs;
        wzp_quic_conn_get_stats(vc->conn, &qs);
        if (qs.dgrams_dropped > vc->dg_dropped) {
            wzp_media_tx_refused(vc->tx, qs.dgrams_dropped - vc->dg_dropped,
                                 qs.dgrams_dropped_bytes - vc->dg_dropped_bytes);
            vc->dg_dropped = qs.dgrams_dropped;
            vc->dg_dropped_bytes = qs.dgrams_dropped_bytes;
        }
    }
    /* Send: one frame per 20 ms of schedule; after a long stall, resynchronise. */
    if (vc->tx_next + WZP_MS(200) < now)
        vc->tx_next = now;
    while (sending(vc) && vc->tx_next <= now) {
        int16_t pcm[WZP_FRAME_SAMPLES];
        wzp_pcm_kind kind =
            vc->env.pcm_source ? vc->env.pcm_source(vc->env.owner, vc, pcm) : WZP_PCM_SILENCE;
        if (kind == WZP_PCM_SILENCE)
            memset(pcm, 0, sizeof(pcm));
        uint8_t dg[WZP_QUIC_MAX_DATAGRAM];
        int n = wzp_media_tx_frame_vad(vc->tx, pcm, kind != WZP_PCM_BACKGROUND, dg, sizeof(dg));
        if (n > 0 && (!vc->conn || wzp_quic_conn_send_datagram(vc->conn, dg, (size_t)n) < 0))
            wzp_media_tx_refused(vc->tx, 1, (uint64_t)n);
        vc->tx_next += FRAME_TIME;
    }
    /* Play out on our own 20 ms schedule from the playout start (the receive
     * clock must not drift with our wake-up latency). */
    if (vc->st.media != WZP_VOICECALL_MEDIA_BOTH)
        return;
    if (vc->rx_next == WZP_TS_NEVER)
        vc->rx_next = wzp_media_rx_next_deadline(vc->rx);
    if (vc->rx_next != WZP_TS_NEVER && vc->rx_next + WZP_MS(200) < now)
        vc->rx_next = now;
    while (vc->st.media == WZP_VOICECALL_MEDIA_BOTH && vc->rx_next <= now) {
        int16_t pcm[WZP_FRAME_SAMPLES];
        /* The pull is for its tick: after a stall of this loop the catch-up pulls must not
         * look like playout running late (the adaptive buffer would shed delay for it). */
        int kind = wzp_media_rx_pull(vc->rx, vc->rx_next, pcm);
        vc->rx_next += FRAME_TIME;
        if ((kind == WZP_MEDIA_RX_DECODED || kind == WZP_MEDIA_RX_FEC) &&
            vc->st.first_audio_at == WZP_TS_NEVER)
            vc->st.first_audio_at = now;
        wzp_voicecall_event e = {.type = WZP_VOICECALL_EV_PCM,
                                 .pcm = pcm,
                                 .concealed = kind == WZP_MEDIA_RX_CONCEALED ||
                                              kind == WZP_MEDIA_RX_COMFORT};
        emit(vc, &e);
    }
}

static void dial(wzp_voicecall *vc, wzp_ts now)
{
    vc->st.link = WZP_VOICECALL_LINK_HANDSHAKE;
    wzp_quic_conn_config o;
    wzp_quic_conn_config_default(&o);
    e2e_opts(vc, &o);
    int rc = wzp_quic_connect(vc->env.ep, &vc->env.vlocal, &vc->vremote, &o, now, &vc->conn);
    if (rc < 0) {
        vc->conn = NULL;
        vc->st.link = WZP_VOICECALL_LINK_CLOSED;
        wzp_voicecall_end(vc, rc, "cannot start the end-to-end connection", now);
    }
}

void wzp_voicecall_handle_timer(wzp_voicecall *vc, wzp_ts now)
{
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    vc->agent_now = now;
    /* Work that must not run inside endpoint callbacks waits for a timer at `now`. */
    if (vc->st.link == WZP_VOICECALL_LINK_DIAL)
        dial(vc, now);
    if (may_send_early(vc) && start_media(vc, now) == 0)
        vc->st.media = WZP_VOICECALL_MEDIA_EARLY;
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return;
    if (vc->st.paths == WZP_VOICECALL_PATHS_CHECKING && vc->st.phase == WZP_VOICECALL_ACTIVE &&
        wzp_ice_next_deadline(vc->ice) <= now)
        wzp_ice_handle_timer(vc->ice, now);
    media_tick(vc, now);
    if (vc->st.phase == WZP_VOICECALL_ACTIVE && vc->next_stats <= now) {
        send_stats(vc);
        vc->next_stats = now + STATS_INTERVAL;
    }
    if (vc->st.phase == WZP_VOICECALL_ACTIVE && vc->next_report <= now) {
        send_report(vc, now);
        vc->next_report = now + REPORT_INTERVAL;
    }
}

wzp_ts wzp_voicecall_next_deadline(const wzp_voicecall *vc)
{
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return WZP_TS_NEVER;
    if (vc->st.link == WZP_VOICECALL_LINK_DIAL || may_send_early(vc))
        return 0;
    wzp_ts t = vc->chan ? vc->next_keepalive : WZP_TS_NEVER;
    if (sending(vc))
        t = wzp_ts_min(t, vc->tx_next);
    if (vc->st.phase != WZP_VOICECALL_ACTIVE)
        return t;
    if (vc->st.paths == WZP_VOICECALL_PATHS_CHECKING)
        t = wzp_ts_min(t, wzp_ice_next_deadline(vc->ice));
    t = wzp_ts_min(t,
                   vc->rx_next != WZP_TS_NEVER ? vc->rx_next : wzp_media_rx_next_deadline(vc->rx));
    return wzp_ts_min(wzp_ts_min(t, vc->next_stats), vc->next_report);
}

void wzp_voicecall_flush(wzp_voicecall *vc, wzp_ts now, wzp_voicecall_send_fn send, void *user)
{
    if (vc->st.phase == WZP_VOICECALL_ACTIVE && vc->st.paths == WZP_VOICECALL_PATHS_CHECKING) {
        uint8_t buf[WZP_PROBE_MAX_LEN];
        int sock, n;
        wzp_addr dest;
        while ((n = wzp_ice_poll_transmit(vc->ice, now, buf, sizeof(buf), &sock, &dest)) > 0)
            if (have_sock(vc, sock))
                send(user, sock, &dest, buf, (size_t)n);
    }
    if (vc->st.phase != WZP_VOICECALL_ENDED && vc->chan && vc->next_keepalive <= now) {
        uint8_t frame[WZP_RELAY_FRAME_HDR + 4], nonce[4];
        wzp_random_nonce(nonce, sizeof(nonce));
        int n = wzp_relay_frame_encode(frame, sizeof(frame), WZP_RELAY_FRAME_KEEPALIVE, vc->chan,
                                       nonce, sizeof(nonce));
        if (n > 0)
            send(user, wzp_cand_sock_for(&vc->relay), &vc->relay, frame, (size_t)n);
        vc->next_keepalive = now + RELAY_KEEPALIVE;
    }
}

void wzp_voicecall_route(wzp_voicecall *vc, const uint8_t *pkt, size_t len,
                         wzp_voicecall_send_fn send, void *user)
{
    if (vc->st.paths == WZP_VOICECALL_PATHS_CHECKING) {
        wzp_ice_route r = wzp_ice_route_get(vc->ice);
        if (r.kind == WZP_ROUTE_DIRECT && have_sock(vc, r.sock)) {
            send(user, r.sock, &r.remote, pkt, len);
            return;
        }
    }
    if (!vc->chan)
        return;
    uint8_t frame[WZP_RELAY_FRAME_HDR + WZP_QUIC_MAX_PACKET];
    int n = wzp_relay_frame_encode(frame, sizeof(frame), WZP_RELAY_FRAME_DATA, vc->chan, pkt, len);
    if (n > 0)
        send(user, wzp_cand_sock_for(&vc->relay), &vc->relay, frame, (size_t)n);
}

/* --- stats and accessors ------------------------------------------------------------------ */

static int64_t ms_since(wzp_ts from, wzp_ts to)
{
    if (from == WZP_TS_NEVER || to == WZP_TS_NEVER || to < from)
        return -1;
    return (int64_t)((to - from) / 1000000);
}

void wzp_voicecall_get_stats(const wzp_voicecall *vc, wzp_call_stats *out, wzp_ts now)
{
    memset(out, 0, sizeof(*out));
    char a[WZP_ADDR_STRLEN], b[WZP_ADDR_STRLEN];
    out->path = WZP_PATH_NONE;
    snprintf(out->path_desc, sizeof(out->path_desc), "none");
    if (vc->chan) {
        out->path = WZP_PATH_RELAY;
        snprintf(out->path_desc, sizeof(out->path_desc), "relay %s channel %u",
                 wzp_addr_format(&vc->relay, a, sizeof(a)), vc->chan);
    }
    if (vc->st.paths == WZP_VOICECALL_PATHS_CHECKING) {
        wzp_ice_route r = wzp_ice_route_get(vc->ice);
        if (r.kind == WZP_ROUTE_DIRECT) {
            out->path = WZP_PATH_DIRECT;
            /* A birthday socket has no address of its own here: name it by number. */
            if (r.sock < WZP_VOICECALL_SOCKS)
                wzp_addr_format(&vc->env.local[r.sock], a, sizeof(a));
            else
                snprintf(a, sizeof(a), "birthday socket %d", r.sock - WZP_VOICECALL_SOCKS);
            snprintf(out->path_desc, sizeof(out->path_desc), "direct %s -> %s", a,
                     wzp_addr_format(&r.remote, b, sizeof(b)));
        }
    }
    if (vc->conn) {
        wzp_quic_conn_stats qs;
        wzp_quic_conn_get_stats(vc->conn, &qs);
        out->rtt_ms = (double)qs.smoothed_rtt / 1e6;
    }
    if (vc->tx) {
        wzp_media_tx_stats ts;
        wzp_media_tx_get_stats(vc->tx, &ts);
        out->frames_sent = ts.sent;
        out->frames_refused = ts.refused;
        out->encoder_bitrate_kbps = ts.bitrate / 1000.0;
        out->encoder_loss_pct = ts.expected_loss;
        if (vc->st.active_at != WZP_TS_NEVER && now > vc->st.active_at)
            out->bitrate_kbps =
                (double)ts.bytes * 8.0 / ((double)(now - vc->st.active_at) / 1e9) / 1000.0;
    }
    if (vc->rx) {
        wzp_media_rx_stats rs;
        wzp_media_rx_get_stats(vc->rx, &rs);
        out->frames_received = rs.playout.received;
        out->frames_lost = rs.playout.lost + vc->tail_lost;
        out->frames_late = rs.playout.late;
        out->frames_concealed = rs.plc;
        out->frames_fec = rs.fec_recovered;
        out->frames_redundancy = rs.redundancy_recovered;
        out->losses_single = rs.single;
        out->losses_single_rebuilt = rs.single_rebuilt;
        out->losses_single_fec = rs.single_fec;
        out->losses_single_fec_rebuilt = rs.single_fec_rebuilt;
        out->playout_delay_ms = (double)rs.delay / 1e6;
        out->playout_target_ms = (double)rs.playout.target / 1e6;
        uint64_t expected = out->frames_received + out->frames_lost;
        out->loss_pct = expected ? 100.0 * (double)out->frames_lost / (double)expected : 0.0;
    }
    out->time_to_first_audio_ms = ms_since(vc->st.answered_at, vc->st.first_audio_at);
    out->time_to_direct_ms = ms_since(vc->st.answered_at, vc->direct_at);
    out->path_changes = vc->path_changes;
    out->birthday_role = wzp_bday_role_name(WZP_BDAY_NONE);
    if (vc->ice) {
        wzp_ice_stats is;
        wzp_ice_get_stats(vc->ice, &is);
        out->birthday_role = wzp_bday_role_name(is.bday_role);
        out->birthday_probes = is.bday_sent;
    }
    out->peer_frames_received = vc->peer_frames_received;
    out->peer_frames_lost = vc->peer_frames_lost;
    out->peer_muted = vc->peer_mute;
    out->max_gap_ms = (int64_t)(vc->max_gap / 1000000);
}

void wzp_voicecall_get_status(const wzp_voicecall *vc, wzp_voicecall_status *out)
{
    *out = vc->st;
}

wzp_call_state wzp_voicecall_state(const wzp_voicecall *vc)
{
    return public_state(vc->st.phase);
}

void *wzp_voicecall_user(const wzp_voicecall *vc)
{
    return vc->user;
}

void wzp_voicecall_set_user(wzp_voicecall *vc, void *user)
{
    vc->user = user;
}

uint32_t wzp_voicecall_sig(const wzp_voicecall *vc)
{
    return vc->sig;
}

uint32_t wzp_voicecall_channel(const wzp_voicecall *vc)
{
    return vc->chan;
}

bool wzp_voicecall_relayed(const wzp_voicecall *vc)
{
    return vc->st.phase == WZP_VOICECALL_ACTIVE && vc->st.link == WZP_VOICECALL_LINK_UP &&
           vc->chan &&
           !(vc->st.paths == WZP_VOICECALL_PATHS_CHECKING &&
             wzp_ice_route_get(vc->ice).kind == WZP_ROUTE_DIRECT);
}

int wzp_voicecall_reattach(wzp_voicecall *vc, const wzp_addr *relay, wzp_ts now)
{
    if (vc->sig || !vc->have_call_id || vc->st.phase != WZP_VOICECALL_ACTIVE ||
        vc->st.link != WZP_VOICECALL_LINK_UP)
        return 0;
    vc->env.relay = *relay; /* frames go here unless the relay names its forwarding address */
    int rc = wzp_sigc_reattach(vc->env.sc, vc->call_id, vc->st.role == WZP_VOICECALL_CALLER,
                               &vc->sig, now);
    if (rc < 0) {
        vc->sig = 0;
        return rc;
    }
    vc->reattaching = true;
    VC_LOG(WZP_LOG_INFO, vc, "client: call %u re-attaching on the new relay", vc->id);
    return 1;
}

const wzp_addr *wzp_voicecall_relay_addr(const wzp_voicecall *vc)
{
    return &vc->relay;
}

uint16_t wzp_voicecall_vport(const wzp_voicecall *vc)
{
    return vc->vport;
}

const uint8_t *wzp_voicecall_probe_tag(const wzp_voicecall *vc)
{
    return vc->st.paths == WZP_VOICECALL_PATHS_CHECKING ? vc->tag : NULL;
}

const char *wzp_voicecall_peer_fp(const wzp_voicecall *vc)
{
    return vc->peer_fp_text;
}

const char *wzp_voicecall_peer_alias(const wzp_voicecall *vc)
{
    return vc->peer_alias;
}

const char *wzp_voicecall_verification_code(const wzp_voicecall *vc)
{
    return vc->code;
}

wzp_quic_conn *wzp_voicecall_conn(const wzp_voicecall *vc)
{
    return vc->conn;
}

size_t wzp_voicecall_local_candidates(const wzp_voicecall *vc, wzp_sig_candidate *out, size_t cap)
{
    for (size_t i = 0; i < vc->n_local && i < cap; i++)
        out[i] = vc->local[i];
    return vc->n_local;
}

wzp_ice_agent *wzp_voicecall_ice(const wzp_voicecall *vc)
{
    return vc->ice;
}

/* --- lifetime and commands ---------------------------------------------------------------- */

static void default_params(wzp_voicecall *vc, wzp_sig_params *p)
{
    memset(p, 0, sizeof(*p));
    if (vc->env.nat)
        p->nat = *vc->env.nat;
    vc->nat_sent = p->nat;
    p->media_version = 1;
    p->codecs[0] = MEDIA_CODEC_OPUS;
    p->n_codecs = 1;
    p->max_bitrate = 64000;
}

void wzp_voicecall_config_default(wzp_voicecall_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

int wzp_voicecall_new(wzp_voicecall **out, const wzp_voicecall_config *cfg)
{
    if (!out || !cfg)
        return WZP_ERR_INVALID;
    const wzp_voicecall_env *env = cfg->env;
    wzp_ts now = cfg->now;
    if (!env || !env->ep || !env->sc || !env->relay_rtt || !env->relay_heard_at || !cfg->vport ||
        (cfg->role == WZP_VOICECALL_CALLER && !cfg->peer) ||
        (cfg->role == WZP_VOICECALL_CALLEE && !cfg->sig) ||
        (cfg->role != WZP_VOICECALL_CALLER && cfg->role != WZP_VOICECALL_CALLEE))
        return WZP_ERR_INVALID;
    uint8_t fp[WZP_FINGERPRINT_LEN];
    bool by_fp = false;
    if (cfg->role == WZP_VOICECALL_CALLER) {
        by_fp = wzp_fingerprint_parse(cfg->peer, fp) == 0;
        if (!by_fp && !wzp_sig_alias_valid(cfg->peer))
            return WZP_ERR_INVALID;
        if (cfg->alias_hint && cfg->alias_hint[0] &&
            (!by_fp || !wzp_sig_alias_valid(cfg->alias_hint)))
            return WZP_ERR_INVALID;
    }
    wzp_voicecall *vc = calloc(1, sizeof(*vc));
    if (!vc)
        return WZP_ERR_NOMEM;
    vc->env = *env;
    vc->st.role = cfg->role;
    vc->st.phase =
        cfg->role == WZP_VOICECALL_CALLER ? WZP_VOICECALL_OFFERING : WZP_VOICECALL_RINGING;
    vc->st.key = WZP_VOICECALL_KEY_UNKNOWN;
    vc->st.link = WZP_VOICECALL_LINK_NONE;
    vc->st.paths = WZP_VOICECALL_PATHS_RELAY;
    vc->st.media = WZP_VOICECALL_MEDIA_OFF;
    vc->id = cfg->id;
    vc->user = cfg->user;
    vc->vport = cfg->vport;
    static const uint8_t vremote_ip[16] = {0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    wzp_addr_from_ip(&vc->vremote, AF_INET6, vremote_ip, vc->vport);
    vc->st.answered_at = vc->st.active_at = vc->st.first_audio_at = vc->direct_at = WZP_TS_NEVER;
    vc->last_rx_at = WZP_TS_NEVER;
    vc->tx_next = vc->rx_next = vc->next_keepalive = vc->next_stats = vc->next_report =
        WZP_TS_NEVER;
    if (cfg->role == WZP_VOICECALL_CALLEE) {
        vc->sig = cfg->sig;
        *out = vc;
        return 0;
    }
    gather(vc, cfg->hosts, cfg->n_hosts, &cfg->reflexive);
    wzp_sig_params params;
    default_params(vc, &params);
    int rc = by_fp ? wzp_sigc_call_fp(env->sc, fp, cfg->alias_hint, &params, vc->local, vc->n_local,
                                      &vc->sig, now)
                   : wzp_sigc_call_alias(env->sc, cfg->peer, &params, vc->local, vc->n_local,
                                         &vc->sig, now);
    if (rc < 0) {
        free(vc);
        return rc;
    }
    if (by_fp && cfg->alias_hint)
        snprintf(vc->alias_hint, sizeof(vc->alias_hint), "%s", cfg->alias_hint);
    if (by_fp) {
        /* Pinned end to end: whatever the relay says, only this key may answer. */
        memcpy(vc->peer_fp, fp, sizeof(fp));
        vc->st.key = WZP_VOICECALL_KEY_PINNED;
        fp_text(fp, vc->peer_fp_text);
    } else {
        snprintf(vc->peer_alias, sizeof(vc->peer_alias), "%s", cfg->peer);
    }
    *out = vc;
    return 0;
}

void wzp_voicecall_free(wzp_voicecall *vc)
{
    if (!vc)
        return;
    wzp_ice_free(vc->ice);
    wzp_media_tx_free(vc->tx);
    wzp_media_rx_free(vc->rx);
    free(vc);
}

int wzp_voicecall_answer(wzp_voicecall *vc, const wzp_addr *hosts, size_t n_hosts,
                         const wzp_addr *reflexive, wzp_ts now)
{
    if (vc->st.role != WZP_VOICECALL_CALLEE || vc->st.phase != WZP_VOICECALL_RINGING || !vc->sig)
        return WZP_ERR_STATE;
    gather(vc, hosts, n_hosts, reflexive);
    wzp_sig_params params;
    default_params(vc, &params);
    int rc = wzp_sigc_accept(vc->env.sc, vc->sig, &params, vc->local, vc->n_local, now);
    if (rc < 0)
        return rc;
    vc->st.answered_at = now;
    set_phase(vc, WZP_VOICECALL_CONNECTING);
    go_active(vc, now); /* at once if the caller's handshake finished while we rang */
    return 0;
}

int wzp_voicecall_reject(wzp_voicecall *vc, wzp_ts now)
{
    if (vc->st.role != WZP_VOICECALL_CALLEE || vc->st.phase != WZP_VOICECALL_RINGING)
        return WZP_ERR_STATE;
    if (vc->sig) {
        wzp_sigc_reject(vc->env.sc, vc->sig, now);
        vc->sig = 0;
    }
    wzp_voicecall_end(vc, 0, "rejected", now);
    return 0;
}

int wzp_voicecall_set_mute(wzp_voicecall *vc, bool mute)
{
    if (vc->st.phase == WZP_VOICECALL_ENDED)
        return WZP_ERR_CLOSED;
    vc->mute = mute;
    if (vc->tx)
        wzp_media_tx_set_mute(vc->tx, mute);
    send_mute(vc);
    return 0;
}
