/*
 * The relay's call state machine. A call is RINGING from the Offer until the
 * callee accepts (-> ACTIVE) or anything ends it; ACTIVE until a party hangs
 * up or goes away. The caller's candidates and parameters wait here while
 * ringing and reach the callee only in its CallSetup.
 *
 * Forwarding channels open when the callee is alerted, not when it answers:
 * the parties' end-to-end handshake runs through them while the phone rings
 * (no address is revealed: the relay is in between), so the answer starts
 * audio at once. They close whenever the call ends, answered or not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "common/rand.h"
#include "relay/control_internal.h"

/* ---- bookkeeping ----------------------------------------------------------- */

void wzp_rc_link_side(rc_call *k, int s, rc_conn *c)
{
    k->side[s].conn = c;
    k->side[s].prev = NULL;
    k->side[s].next = c->calls;
    if (c->calls) {
        rc_call *h = c->calls;
        h->side[h->side[CALLER].conn == c ? CALLER : CALLEE].prev = k;
    }
    c->calls = k;
    c->n_calls++;
}

static int side_of(const rc_call *k, const rc_conn *c)
{
    if (k->side[CALLER].conn == c)
        return CALLER;
    if (k->side[CALLEE].conn == c)
        return CALLEE;
    return -1;
}

void wzp_rc_unlink_side(rc_call *k, int s)
{
    rc_conn *c = k->side[s].conn;
    rc_call *p = k->side[s].prev, *n = k->side[s].next;
    if (p)
        p->side[side_of(p, c)].next = n;
    else
        c->calls = n;
    if (n)
        n->side[side_of(n, c)].prev = p;
    c->n_calls--;
}

/* Ringing calls are kept sorted by expiry; with a steady clock that is append. */
static void ring_insert(wzp_relay_control *rc, rc_call *k)
{
    rc_call *after = rc->ring_tail;
    while (after && after->expires > k->expires)
        after = after->tprev;
    k->tprev = after;
    k->tnext = after ? after->tnext : rc->ring_head;
    if (k->tnext)
        k->tnext->tprev = k;
    else
        rc->ring_tail = k;
    if (after)
        after->tnext = k;
    else
        rc->ring_head = k;
    rc->n_ringing++;
}

static void ring_remove(wzp_relay_control *rc, rc_call *k)
{
    if (k->tprev)
        k->tprev->tnext = k->tnext;
    else
        rc->ring_head = k->tnext;
    if (k->tnext)
        k->tnext->tprev = k->tprev;
    else
        rc->ring_tail = k->tprev;
    k->tprev = k->tnext = NULL;
    rc->n_ringing--;
}

/* holder: with OFFLINE, the key that holds the caller's alias hint now (or NULL). */
static void send_ended_holder(wzp_relay_control *rc, rc_conn *c, const uint8_t *id,
                              wzp_sig_end_reason reason, uint64_t request_id, const uint8_t *holder)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_CALL_ENDED, request_id);
    memcpy(m.u.end.call_id, id, WZP_SIG_CALL_ID_LEN);
    m.u.end.reason = reason;
    if (holder) {
        m.u.end.have_holder = true;
        memcpy(m.u.end.holder_fp, holder, WZP_SIG_FP_LEN);
    }
    wzp_rc_send(rc, c, &m);
}

static void send_ended(wzp_relay_control *rc, rc_conn *c, const uint8_t *id,
                       wzp_sig_end_reason reason, uint64_t request_id)
{
    send_ended_holder(rc, c, id, reason, request_id, NULL);
}

/* A call and its remote party (if it has one: that conn is the call's own). */
static void free_call(rc_call *k)
{
    for (int s = CALLER; s <= CALLEE; s++)
        if (k->side[s].conn && k->side[s].conn->remote)
            free(k->side[s].conn);
    free(k->offer);
    free(k);
}

/* A cluster message about k for the relay of its remote side s. */
void wzp_rc_cluster_msg_init(const rc_call *k, int s, wzp_cluster_kind kind, wzp_cluster_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    memcpy(m->to, k->side[s].conn->relay, WZP_CLUSTER_ID_LEN);
    memcpy(m->call_id, k->id, WZP_SIG_CALL_ID_LEN);
}

static void cluster_end(wzp_relay_control *rc, const rc_call *k, int s, wzp_sig_end_reason reason)
{
    wzp_cluster_msg m;
    wzp_rc_cluster_msg_init(k, s, WZP_CLUSTER_END, &m);
    wzp_sig_init(&m.sig, WZP_SIG_CALL_ENDED, 0);
    memcpy(m.sig.u.end.call_id, k->id, WZP_SIG_CALL_ID_LEN);
    m.sig.u.end.reason = reason;
    rc->cfg.cb.cluster_send(rc->cfg.user, &m);
}

/* Ends k: tells the sides flagged in tell[], closes its channels, frees it. */
static void end_call(wzp_relay_control *rc, rc_call *k, wzp_sig_end_reason reason, bool tell_caller,
                     bool tell_callee)
{
    CALL_LOG(WZP_LOG_INFO, k, "relay: call ended (%s)", wzp_sig_end_reason_name(reason));
    for (int s = CALLER; s <= CALLEE; s++)
        if (k->side[s].conn->remote && k->located && !k->remote_ended)
            cluster_end(rc, k, s, reason);
    if (tell_caller)
        send_ended(rc, k->side[CALLER].conn, k->id, reason, 0);
    if (tell_callee)
        send_ended(rc, k->side[CALLEE].conn, k->id, reason, 0);
    if (k->channels_open && rc->cfg.cb.channels_close)
        rc->cfg.cb.channels_close(rc->cfg.user, k->side[CALLER].chan, k->side[CALLEE].chan);
    if (k->state == RC_ACTIVE)
        wzp_rc_call_record(rc, k, false);
    if (k->state == RC_RINGING)
        ring_remove(rc, k);
    wzp_rc_unlink_side(k, CALLER);
    wzp_rc_unlink_side(k, CALLEE);
    wzp_hmap_del(&rc->calls, k->id, WZP_SIG_CALL_ID_LEN);
    rc->stats.calls_ended[reason]++;
    free_call(k);
}

void wzp_rc_forget_call(wzp_relay_control *rc, rc_call *k)
{
    if (k->channels_open && rc->cfg.cb.channels_close)
        rc->cfg.cb.channels_close(rc->cfg.user, k->side[CALLER].chan, k->side[CALLEE].chan);
    if (k->state == RC_RINGING)
        ring_remove(rc, k);
    wzp_rc_unlink_side(k, CALLER);
    wzp_rc_unlink_side(k, CALLEE);
    wzp_hmap_del(&rc->calls, k->id, WZP_SIG_CALL_ID_LEN);
    free_call(k);
}

void wzp_rc_end_calls_of(wzp_relay_control *rc, rc_conn *c, wzp_sig_end_reason reason)
{
    while (c->calls) {
        rc_call *k = c->calls;
        int s = side_of(k, c);
        end_call(rc, k, reason, s == CALLEE, s == CALLER);
    }
}

void wzp_rc_conn_moved(wzp_relay_control *rc, rc_conn *c)
{
    if (!rc->cfg.cb.channel_moved)
        return;
    for (rc_call *k = c->calls; k;) {
        int s = side_of(k, c);
        if (k->channels_open)
            rc->cfg.cb.channel_moved(rc->cfg.user, k->side[s].chan, &c->addr);
        k = k->side[s].next;
    }
}

void wzp_rc_expire_calls(wzp_relay_control *rc, wzp_ts now)
{
    while (rc->ring_head && rc->ring_head->expires <= now)
        end_call(rc, rc->ring_head, WZP_SIG_END_EXPIRED, true, true);
}

void wzp_rc_free_calls(wzp_relay_control *rc)
{
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&rc->calls, &i, &slot);)
        free_call(slot->value);
}

/* Opens k's forwarding channels (ids 0 without a forwarding plane); false on failure. */
bool wzp_rc_open_channels(wzp_relay_control *rc, rc_call *k, wzp_ts now)
{
    if (!rc->cfg.cb.channels_open)
        return true;
    const rc_conn *a = k->side[CALLER].conn, *b = k->side[CALLEE].conn;
    int err = rc->cfg.cb.channels_open(rc->cfg.user, k->handle, a->id, &a->addr, b->id, &b->addr,
                                       now, &k->side[CALLER].chan, &k->side[CALLEE].chan);
    if (err < 0) {
        CALL_LOG(WZP_LOG_WARN, k, "relay: no forwarding channels for the call: %s",
                 wzp_strerror(err));
        rc->stats.channel_open_failures++;
        return false;
    }
    k->channels_open = true;
    return true;
}

static bool over_call_limit(const wzp_relay_control *rc, const rc_conn *c)
{
    return rc->cfg.max_calls_per_identity && c->n_calls >= rc->cfg.max_calls_per_identity;
}

/* ---- offer ----------------------------------------------------------------- */

/* A new ringing call between a and b (one of them may be remote), with the caller's offer. */
static rc_call *new_call(wzp_relay_control *rc, const uint8_t *id, rc_conn *a, rc_conn *b,
                         const wzp_sig_msg *offer, wzp_ts now)
{
    rc_call *k = calloc(1, sizeof(*k));
    if (k)
        k->offer = malloc(sizeof(*k->offer));
    if (!k || !k->offer || wzp_hmap_put(&rc->calls, id, WZP_SIG_CALL_ID_LEN, k) < 0) {
        if (k)
            free(k->offer);
        free(k);
        return NULL;
    }
    k->handle = rc->next_call_handle++;
    memcpy(k->id, id, WZP_SIG_CALL_ID_LEN);
    k->state = RC_RINGING;
    k->expires = now + rc->cfg.ring_timeout;
    k->offer->params = offer->u.offer.params;
    k->offer->cands = offer->u.offer.cands;
    k->offer_req = offer->request_id;
    wzp_rc_link_side(k, CALLER, a);
    wzp_rc_link_side(k, CALLEE, b);
    ring_insert(rc, k);
    return k;
}

static void send_incoming(wzp_relay_control *rc, const rc_call *k)
{
    const rc_conn *c = k->side[CALLER].conn;
    wzp_sig_msg in;
    wzp_sig_init(&in, WZP_SIG_INCOMING_CALL, 0);
    memcpy(in.u.incoming.call_id, k->id, WZP_SIG_CALL_ID_LEN);
    memcpy(in.u.incoming.caller_fp, c->fp, WZP_SIG_FP_LEN);
    memcpy(in.u.incoming.caller_alias, c->alias, sizeof(c->alias));
    in.u.incoming.relay_channel = k->side[CALLEE].chan;
    in.u.incoming.relay_addr = rc->cfg.relay_addr;
    wzp_rc_send(rc, k->side[CALLEE].conn, &in);
}

static void send_ringing(wzp_relay_control *rc, const rc_call *k)
{
    wzp_sig_msg r;
    wzp_sig_init(&r, WZP_SIG_RINGING, k->offer_req);
    memcpy(r.u.ringing.call_id, k->id, WZP_SIG_CALL_ID_LEN);
    r.u.ringing.relay_channel = k->side[CALLER].chan;
    r.u.ringing.relay_addr = rc->cfg.relay_addr;
    r.u.ringing.have_callee_fp = true;
    memcpy(r.u.ringing.callee_fp, k->side[CALLEE].conn->fp, WZP_SIG_FP_LEN);
    wzp_rc_send(rc, k->side[CALLER].conn, &r);
}

/* A party on another relay, owned by the call it is linked into. */
rc_conn *wzp_rc_new_remote(const uint8_t *fp, const char *alias)
{
    rc_conn *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->remote = true;
    r->registered = true;
    if (fp)
        memcpy(r->fp, fp, WZP_SIG_FP_LEN);
    snprintf(r->alias, sizeof(r->alias), "%s", alias);
    return r;
}

/*
 * The callee is not registered here: the call rings nobody until the cluster
 * has located the callee's relay (wzp_rc_call_located) and that relay has
 * alerted it (RINGING). Only then does the caller hear Ringing.
 */
static void start_cross_offer(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m,
                              const uint8_t *id, wzp_ts now)
{
    const bool by_alias = m->u.offer.by_alias;
    rc_conn *r = wzp_rc_new_remote(by_alias ? NULL : m->u.offer.callee_fp,
                                   by_alias ? m->u.offer.callee_alias : "");
    rc_call *k = r ? new_call(rc, id, c, r, m, now) : NULL;
    if (!k) {
        free(r);
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_INTERNAL, "out of memory");
        return;
    }
    rc->stats.cross_offered++;
    CALL_LOG(WZP_LOG_INFO, k, "relay: callee not here, asking the cluster");
    rc->cfg.cb.locate(rc->cfg.user, id, by_alias, m->u.offer.callee_fp, m->u.offer.callee_alias);
}

/* Ends a cross-relay call before any Ringing: the caller hears it on its Offer. */
static void end_unrung(wzp_relay_control *rc, rc_call *k, wzp_sig_end_reason why)
{
    send_ended(rc, k->side[CALLER].conn, k->id, why, k->offer_req);
    end_call(rc, k, why, false, false);
}

void wzp_rc_call_located(wzp_relay_control *rc, const uint8_t *call_id,
                         wzp_relay_cluster_result res, const uint8_t *fp, const uint8_t *relay,
                         const wzp_addr *fwd, wzp_ts now)
{
    rc_call *k = wzp_hmap_get(&rc->calls, call_id, WZP_SIG_CALL_ID_LEN);
    if (!k || k->located || !k->side[CALLEE].conn->remote)
        return; /* ended meanwhile */
    rc_conn *r = k->side[CALLEE].conn, *c = k->side[CALLER].conn;
    if (res != WZP_RELAY_CLUSTER_OK) {
        if (res == WZP_RELAY_CLUSTER_NOT_FOUND) {
            rc->stats.cross_not_found++;
            end_unrung(rc, k, r->alias[0] ? WZP_SIG_END_UNKNOWN_PEER : WZP_SIG_END_OFFLINE);
        } else {
            rc->stats.cross_unavailable++;
            CALL_LOG(WZP_LOG_WARN, k, "relay: cluster store unreachable, call fails");
            wzp_rc_send_error(rc, c, k->offer_req, WZP_SIG_ERR_INTERNAL,
                              "cluster store unreachable: callees on other relays cannot be "
                              "reached now");
            end_unrung(rc, k, WZP_SIG_END_ERROR);
        }
        return;
    }
    memcpy(r->fp, fp, WZP_SIG_FP_LEN);
    memcpy(r->relay, relay, WZP_CLUSTER_ID_LEN);
    r->addr = *fwd;
    if (memcmp(r->fp, c->fp, WZP_SIG_FP_LEN) == 0) {
        wzp_rc_send_error(rc, c, k->offer_req, WZP_SIG_ERR_INVALID, "cannot call yourself");
        end_call(rc, k, WZP_SIG_END_ERROR, false, false);
        return;
    }
    if (!wzp_rc_open_channels(rc, k, now)) {
        end_unrung(rc, k, WZP_SIG_END_ERROR);
        return;
    }
    k->located = true;
    wzp_cluster_msg m;
    wzp_rc_cluster_msg_init(k, CALLEE, WZP_CLUSTER_OFFER, &m);
    memcpy(m.fp, c->fp, WZP_SIG_FP_LEN);
    memcpy(m.alias, c->alias, sizeof(m.alias));
    m.link_chan = k->side[CALLEE].chan;
    m.fwd_addr = rc->cfg.cluster_addr;
    wzp_sig_init(&m.sig, WZP_SIG_OFFER, 0);
    memcpy(m.sig.u.offer.callee_fp, r->fp, WZP_SIG_FP_LEN);
    m.sig.u.offer.params = k->offer->params;
    m.sig.u.offer.cands = k->offer->cands;
    rc->cfg.cb.cluster_send(rc->cfg.user, &m);
}

void wzp_rc_call_offer_unheard(wzp_relay_control *rc, const uint8_t *call_id)
{
    rc_call *k = wzp_hmap_get(&rc->calls, call_id, WZP_SIG_CALL_ID_LEN);
    if (!k || !k->located || k->remote_rang || !k->side[CALLEE].conn->remote)
        return;
    rc->stats.cross_not_found++;
    k->remote_ended = true; /* nobody there to tell */
    CALL_LOG(WZP_LOG_INFO, k, "relay: the callee's relay is gone");
    end_unrung(rc, k, WZP_SIG_END_OFFLINE);
}

/* Tells the caller's relay that the callee here is alerted. */
static void cluster_ringing(wzp_relay_control *rc, const rc_call *k)
{
    const rc_conn *callee = k->side[CALLEE].conn;
    wzp_cluster_msg g;
    wzp_rc_cluster_msg_init(k, CALLER, WZP_CLUSTER_RINGING, &g);
    memcpy(g.alias, callee->alias, sizeof(g.alias));
    wzp_sig_init(&g.sig, WZP_SIG_RINGING, 0);
    memcpy(g.sig.u.ringing.call_id, k->id, WZP_SIG_CALL_ID_LEN);
    g.sig.u.ringing.relay_channel = k->side[CALLER].chan;
    g.sig.u.ringing.have_callee_fp = true;
    memcpy(g.sig.u.ringing.callee_fp, callee->fp, WZP_SIG_FP_LEN);
    rc->cfg.cb.cluster_send(rc->cfg.user, &g);
}

void wzp_rc_calls_released(wzp_relay_control *rc, rc_conn *c)
{
    for (rc_call *k = c->calls; k; k = k->side[side_of(k, c)].next) {
        if (k->side[CALLEE].conn != c || !k->ring_held)
            continue;
        k->ring_held = false;
        if (k->side[CALLER].conn->remote)
            cluster_ringing(rc, k);
        else
            send_ringing(rc, k);
    }
}

void wzp_rc_calls_unwoken(wzp_relay_control *rc, rc_conn *c)
{
    for (rc_call *k = c->calls, *next; k; k = next) {
        next = k->side[side_of(k, c)].next;
        if (k->side[CALLEE].conn != c || !k->ring_held)
            continue;
        CALL_LOG(WZP_LOG_INFO, k, "relay: the parked callee did not wake");
        if (k->side[CALLER].conn->remote)
            end_call(rc, k, WZP_SIG_END_OFFLINE, false, false); /* its relay tells the caller */
        else
            end_unrung(rc, k, WZP_SIG_END_OFFLINE);
    }
}

/* Another relay's caller calls a key registered here. */
static void cross_offer_in(wzp_relay_control *rc, const wzp_cluster_msg *m, wzp_ts now)
{
    const wzp_sig_msg *o = &m->sig;
    rc_conn *callee = o->u.offer.by_alias
                          ? wzp_rc_conn_by_alias(rc, o->u.offer.callee_alias)
                          : wzp_hmap_get(&rc->regs, o->u.offer.callee_fp, WZP_SIG_FP_LEN);
    wzp_sig_end_reason why = WZP_SIG_END_ERROR;
    rc_call *k = NULL;
    rc_conn *r = NULL;
    if (wzp_hmap_get(&rc->calls, m->call_id, WZP_SIG_CALL_ID_LEN) || !m->fwd_addr.len ||
        !m->link_chan) {
        rc->stats.cross_refused++;
        return;
    }
    if (!callee) {
        why = WZP_SIG_END_OFFLINE; /* its presence was stale */
    } else if (over_call_limit(rc, callee)) {
        why = WZP_SIG_END_BUSY;
    } else if (rc->calls.count < rc->cfg.max_calls && (r = wzp_rc_new_remote(m->fp, m->alias))) {
        memcpy(r->relay, m->from, WZP_CLUSTER_ID_LEN);
        r->addr = m->fwd_addr;
        k = new_call(rc, m->call_id, r, callee, o, now);
    }
    if (!k) {
        free(r);
        wzp_cluster_msg e = {.kind = WZP_CLUSTER_END};
        memcpy(e.to, m->from, WZP_CLUSTER_ID_LEN);
        memcpy(e.call_id, m->call_id, WZP_SIG_CALL_ID_LEN);
        wzp_sig_init(&e.sig, WZP_SIG_CALL_ENDED, 0);
        memcpy(e.sig.u.end.call_id, m->call_id, WZP_SIG_CALL_ID_LEN);
        e.sig.u.end.reason = why;
        rc->stats.calls_ended[why]++;
        rc->cfg.cb.cluster_send(rc->cfg.user, &e);
        return;
    }
    k->located = true;
    rc->stats.cross_received++;
    rc->stats.calls_offered++;
    if (!wzp_rc_open_channels(rc, k, now)) {
        end_call(rc, k, WZP_SIG_END_ERROR, false, false);
        return;
    }
    if (rc->cfg.cb.channel_peer && k->channels_open)
        rc->cfg.cb.channel_peer(rc->cfg.user, k->side[CALLER].chan, m->link_chan);
    CALL_LOG(WZP_LOG_INFO, k, "relay: ringing, from another relay -> connection %llu",
             (unsigned long long)callee->id);
    send_incoming(rc, k);
    if (callee->holding)
        k->ring_held = true; /* RINGING once the parked callee is back */
    else
        cluster_ringing(rc, k);
}

void wzp_rc_handle_offer(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m, wzp_ts now)
{
    const bool by_alias = m->u.offer.by_alias;
    rc_conn *callee = by_alias ? wzp_rc_conn_by_alias(rc, m->u.offer.callee_alias)
                               : wzp_hmap_get(&rc->regs, m->u.offer.callee_fp, WZP_SIG_FP_LEN);
    uint8_t id[WZP_SIG_CALL_ID_LEN];

    if (callee == c) {
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_INVALID, "cannot call yourself");
        return;
    }
    if (over_call_limit(rc, c) || rc->calls.count >= rc->cfg.max_calls) {
        rc->stats.offers_over_limit++;
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_LIMIT, "too many calls");
        return;
    }
    do
        wzp_random(id, sizeof(id));
    while (wzp_hmap_get(&rc->calls, id, sizeof(id)));
    rc->stats.calls_offered++;

    if (!callee && rc->cfg.cb.locate) {
        start_cross_offer(rc, c, m, id, now);
        return;
    }
    if (!callee || over_call_limit(rc, callee)) {
        wzp_sig_end_reason why = callee     ? WZP_SIG_END_BUSY
                                 : by_alias ? WZP_SIG_END_UNKNOWN_PEER
                                            : WZP_SIG_END_OFFLINE;
        /* The key is offline: does someone else use the name the caller knows it by? */
        const rc_conn *holder = !callee && !by_alias && m->u.offer.alias_hint[0]
                                    ? wzp_rc_conn_by_alias(rc, m->u.offer.alias_hint)
                                    : NULL;
        rc->stats.calls_ended[why]++;
        send_ended_holder(rc, c, id, why, m->request_id, holder ? holder->fp : NULL);
        return;
    }

    rc_call *k = new_call(rc, id, c, callee, m, now);
    if (!k) {
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_INTERNAL, "out of memory");
        return;
    }
    if (!wzp_rc_open_channels(rc, k, now)) {
        end_call(rc, k, WZP_SIG_END_ERROR, false, false);
        send_ended(rc, c, id, WZP_SIG_END_ERROR, m->request_id);
        return;
    }

    CALL_LOG(WZP_LOG_INFO, k, "relay: ringing, connection %llu -> %llu, channels %u/%u",
             (unsigned long long)c->id, (unsigned long long)callee->id, k->side[CALLER].chan,
             k->side[CALLEE].chan);

    /* The callee hears who calls (proven identity), nothing about where from. */
    send_incoming(rc, k);
    /* The caller learns whom it rings (the key it will pin for a call to an alias): once
     * the IncomingCall is out, so after waking a parked callee. */
    if (callee->holding)
        k->ring_held = true;
    else
        send_ringing(rc, k);
}

/* ---- accept and the ways a call ends ---------------------------------------- */

static void send_setup(wzp_relay_control *rc, rc_call *k, int s, const wzp_sig_params *peer_params,
                       const wzp_sig_candidates *peer_cands, uint64_t request_id)
{
    const rc_conn *peer = k->side[!s].conn;
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_CALL_SETUP, request_id);
    memcpy(m.u.setup.call_id, k->id, WZP_SIG_CALL_ID_LEN);
    memcpy(m.u.setup.peer_fp, peer->fp, WZP_SIG_FP_LEN);
    memcpy(m.u.setup.peer_alias, peer->alias, sizeof(peer->alias));
    m.u.setup.peer_params = *peer_params;
    m.u.setup.peer_cands = *peer_cands;
    m.u.setup.role = s == CALLER ? WZP_SIG_ROLE_CALLER : WZP_SIG_ROLE_CALLEE;
    m.u.setup.relay_channel = k->side[s].chan;
    m.u.setup.relay_addr = rc->cfg.relay_addr;
    wzp_rc_send(rc, k->side[s].conn, &m);
}

static void accept_call(wzp_relay_control *rc, rc_call *k, const wzp_sig_msg *m)
{
    ring_remove(rc, k);
    k->state = RC_ACTIVE;
    rc->stats.calls_setup++;
    CALL_LOG(WZP_LOG_INFO, k, "relay: answered");
    send_setup(rc, k, CALLER, &m->u.accept.params, &m->u.accept.cands, 0);
    send_setup(rc, k, CALLEE, &k->offer->params, &k->offer->cands, m->request_id);
    if (k->side[CALLER].conn->remote) {
        wzp_cluster_msg c;
        wzp_rc_cluster_msg_init(k, CALLER, WZP_CLUSTER_ACCEPT, &c);
        c.sig = *m;
        c.sig.request_id = 0;
        rc->cfg.cb.cluster_send(rc->cfg.user, &c);
    }
    free(k->offer);
    k->offer = NULL;
    wzp_rc_call_record(rc, k, true);
}

static const uint8_t *msg_call_id(const wzp_sig_msg *m)
{
    switch (m->type) {
    case WZP_SIG_ACCEPT:
        return m->u.accept.call_id;
    case WZP_SIG_HANGUP:
        return m->u.end.call_id;
    case WZP_SIG_CANDIDATES_UPDATE:
        return m->u.update.call_id;
    default:
        return m->u.call.call_id;
    }
}

void wzp_rc_handle_call_msg(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m)
{
    rc_call *k = wzp_hmap_get(&rc->calls, msg_call_id(m), WZP_SIG_CALL_ID_LEN);
    int s = k ? side_of(k, c) : -1;
    if (s < 0) {
        /* Same answer whether the call does not exist or is someone else's. */
        rc->stats.drop_no_such_call++;
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_NO_SUCH_CALL, "no such call");
        return;
    }
    const bool ringing = k->state == RC_RINGING;
    switch (m->type) {
    case WZP_SIG_ACCEPT:
        if (s == CALLEE && ringing) {
            accept_call(rc, k, m);
            return;
        }
        break;
    case WZP_SIG_REJECT:
    case WZP_SIG_BUSY:
        if (s == CALLEE && ringing) {
            end_call(rc, k, m->type == WZP_SIG_BUSY ? WZP_SIG_END_BUSY : WZP_SIG_END_REJECTED, true,
                     false);
            return;
        }
        break;
    case WZP_SIG_CANCEL:
        if (s == CALLER && ringing) {
            end_call(rc, k, WZP_SIG_END_CANCELLED, false, true);
            return;
        }
        break;
    case WZP_SIG_HANGUP: {
        /* Before the answer a hang-up is a cancel (caller) or a reject (callee). */
        wzp_sig_end_reason why = !ringing      ? m->u.end.reason
                                 : s == CALLER ? WZP_SIG_END_CANCELLED
                                               : WZP_SIG_END_REJECTED;
        if (!ringing)
            rc->stats.path_reports[m->u.end.path]++;
        end_call(rc, k, why, s == CALLEE, s == CALLER);
        return;
    }
    case WZP_SIG_CANDIDATES_UPDATE:
        /* Only once both sides have accepted each other's addresses. */
        if (!ringing) {
            wzp_cluster_msg fwd;
            wzp_rc_cluster_msg_init(k, !s, WZP_CLUSTER_UPDATE, &fwd);
            fwd.sig = *m;
            fwd.sig.request_id = 0;
            if (k->side[!s].conn->remote)
                rc->cfg.cb.cluster_send(rc->cfg.user, &fwd);
            else
                wzp_rc_send(rc, k->side[!s].conn, &fwd.sig);
            return;
        }
        break;
    default:
        break;
    }
    rc->stats.drop_bad_state++;
    wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_STATE, "not valid in this call state");
}

/* ---- messages from the other relay of a cross-relay call --------------------- */

void wzp_rc_call_cluster_msg(wzp_relay_control *rc, const wzp_cluster_msg *m, wzp_ts now)
{
    if (m->kind == WZP_CLUSTER_OFFER) {
        cross_offer_in(rc, m, now);
        return;
    }
    rc_call *k = wzp_hmap_get(&rc->calls, m->call_id, WZP_SIG_CALL_ID_LEN);
    int s = -1;
    for (int i = CALLER; k && i <= CALLEE; i++)
        if (k->side[i].conn->remote && k->located &&
            memcmp(k->side[i].conn->relay, m->from, WZP_CLUSTER_ID_LEN) == 0)
            s = i;
    if (s < 0) {
        /* Not a call this relay shares with the sender: the same as no call at all. */
        rc->stats.cross_refused++;
        return;
    }
    rc_conn *r = k->side[s].conn;
    switch (m->kind) {
    case WZP_CLUSTER_RINGING:
        if (s != CALLEE || k->state != RC_RINGING || k->remote_rang ||
            memcmp(m->sig.u.ringing.callee_fp, r->fp, WZP_SIG_FP_LEN) != 0)
            break;
        k->remote_rang = true;
        memcpy(r->alias, m->alias, sizeof(r->alias));
        if (rc->cfg.cb.channel_peer && k->channels_open)
            rc->cfg.cb.channel_peer(rc->cfg.user, k->side[CALLEE].chan,
                                    m->sig.u.ringing.relay_channel);
        CALL_LOG(WZP_LOG_INFO, k, "relay: ringing on another relay");
        send_ringing(rc, k);
        return;
    case WZP_CLUSTER_ACCEPT:
        if (s != CALLEE || !k->remote_rang)
            break;
        wzp_rc_handle_call_msg(rc, r, &m->sig);
        return;
    case WZP_CLUSTER_UPDATE:
        wzp_rc_handle_call_msg(rc, r, &m->sig);
        return;
    case WZP_CLUSTER_END:
        k->remote_ended = true;
        if (s == CALLEE && !k->remote_rang) {
            end_unrung(rc, k, m->sig.u.end.reason);
            return;
        }
        end_call(rc, k, m->sig.u.end.reason, s == CALLEE, s == CALLER);
        return;
    default:
        break;
    }
    rc->stats.cross_refused++;
}
