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
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "common/rand.h"
#include "relay/control_internal.h"

/* ---- bookkeeping ----------------------------------------------------------- */

/* Log lines about a call carry its tag, the same one the clients use for it. */
#define CALL_LOG(level, k, ...)                                                                    \
    do {                                                                                           \
        if (WZP_LOG_ON(level)) {                                                                   \
            char tag_[WZP_LOG_TAG_MAX];                                                            \
            WZP_LOGX(level, wzp_log_tag_id(tag_, "call", (k)->id, WZP_SIG_CALL_ID_LEN),            \
                     __VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

static void link_side(rc_call *k, int s, rc_conn *c)
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

static void unlink_side(rc_call *k, int s)
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

/* Ends k: tells the sides flagged in tell[], closes its channels, frees it. */
static void end_call(wzp_relay_control *rc, rc_call *k, wzp_sig_end_reason reason, bool tell_caller,
                     bool tell_callee)
{
    CALL_LOG(WZP_LOG_INFO, k, "relay: call ended (%s)", wzp_sig_end_reason_name(reason));
    if (tell_caller)
        send_ended(rc, k->side[CALLER].conn, k->id, reason, 0);
    if (tell_callee)
        send_ended(rc, k->side[CALLEE].conn, k->id, reason, 0);
    if (k->channels_open && rc->cfg.cb.channels_close)
        rc->cfg.cb.channels_close(rc->cfg.user, k->side[CALLER].chan, k->side[CALLEE].chan);
    if (k->state == RC_RINGING)
        ring_remove(rc, k);
    unlink_side(k, CALLER);
    unlink_side(k, CALLEE);
    wzp_hmap_del(&rc->calls, k->id, WZP_SIG_CALL_ID_LEN);
    rc->stats.calls_ended[reason]++;
    free(k->offer);
    free(k);
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
    for (size_t i = 0; wzp_hmap_next(&rc->calls, &i, &slot);) {
        rc_call *k = slot->value;
        free(k->offer);
        free(k);
    }
}

/* Opens k's forwarding channels (ids 0 without a forwarding plane); false on failure. */
static bool open_channels(wzp_relay_control *rc, rc_call *k, wzp_ts now)
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

    rc_call *k = calloc(1, sizeof(*k));
    if (k)
        k->offer = malloc(sizeof(*k->offer));
    if (!k || !k->offer || wzp_hmap_put(&rc->calls, id, sizeof(id), k) < 0) {
        if (k)
            free(k->offer);
        free(k);
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_INTERNAL, "out of memory");
        return;
    }
    k->handle = rc->next_call_handle++;
    memcpy(k->id, id, sizeof(id));
    k->state = RC_RINGING;
    k->expires = now + rc->cfg.ring_timeout;
    k->offer->params = m->u.offer.params;
    k->offer->cands = m->u.offer.cands;
    link_side(k, CALLER, c);
    link_side(k, CALLEE, callee);
    ring_insert(rc, k);
    if (!open_channels(rc, k, now)) {
        end_call(rc, k, WZP_SIG_END_ERROR, false, false);
        send_ended(rc, c, id, WZP_SIG_END_ERROR, m->request_id);
        return;
    }

    CALL_LOG(WZP_LOG_INFO, k, "relay: ringing, connection %llu -> %llu, channels %u/%u",
             (unsigned long long)c->id, (unsigned long long)callee->id, k->side[CALLER].chan,
             k->side[CALLEE].chan);

    /* The callee hears who calls (proven identity), nothing about where from. */
    wzp_sig_msg in;
    wzp_sig_init(&in, WZP_SIG_INCOMING_CALL, 0);
    memcpy(in.u.incoming.call_id, id, sizeof(id));
    memcpy(in.u.incoming.caller_fp, c->fp, WZP_SIG_FP_LEN);
    memcpy(in.u.incoming.caller_alias, c->alias, sizeof(c->alias));
    in.u.incoming.relay_channel = k->side[CALLEE].chan;
    in.u.incoming.relay_addr = rc->cfg.relay_addr;
    wzp_rc_send(rc, callee, &in);

    /* The caller learns whom it rings (the key it will pin for a call to an alias). */
    wzp_sig_msg r;
    wzp_sig_init(&r, WZP_SIG_RINGING, m->request_id);
    memcpy(r.u.ringing.call_id, id, sizeof(id));
    r.u.ringing.relay_channel = k->side[CALLER].chan;
    r.u.ringing.relay_addr = rc->cfg.relay_addr;
    r.u.ringing.have_callee_fp = true;
    memcpy(r.u.ringing.callee_fp, callee->fp, WZP_SIG_FP_LEN);
    wzp_rc_send(rc, c, &r);
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
    free(k->offer);
    k->offer = NULL;
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
            wzp_sig_msg fwd = *m;
            fwd.request_id = 0;
            wzp_rc_send(rc, k->side[!s].conn, &fwd);
            return;
        }
        break;
    default:
        break;
    }
    rc->stats.drop_bad_state++;
    wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_STATE, "not valid in this call state");
}
