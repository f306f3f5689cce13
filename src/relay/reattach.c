/*
 * Moving an answered call's end to this relay (docs/cluster.md, "A relay dies mid-call").
 *
 * A party whose relay went away registers with another relay of the cluster and sends
 * Reattach(call id, its end). Only the key that end had is accepted: the call's record (the
 * two ends' keys and relays, in the cluster store) says which it is. This relay then gives
 * the end a channel and pairs it with the other end:
 *  - the other end is a party here (the call was here, its moved end a remote party, or the
 *    other end re-attached here first): the remote party's channel is re-pointed at the
 *    moved end's address; the other party sees no change;
 *  - the other end is on another relay: a link channel to it, and a REATTACH message there;
 *    that relay re-points its own link channel at ours and answers REATTACH_ACK with its id.
 * Either end may come first; the later one always finds the earlier (the record's update and
 * read are one step in the store).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "relay/control_internal.h"

void wzp_rc_call_record(wzp_relay_control *rc, const rc_call *k, bool live)
{
    if (!rc->cfg.cb.call_record)
        return;
    const rc_conn *a = k->side[CALLER].conn, *b = k->side[CALLEE].conn;
    rc->cfg.cb.call_record(rc->cfg.user, k->id, a->fp, a->remote ? a->relay : NULL, b->fp,
                           b->remote ? b->relay : NULL, live);
}

static void refuse(wzp_relay_control *rc, rc_conn *c, uint64_t request_id)
{
    rc->stats.reattach_refused++;
    wzp_rc_send_error(rc, c, request_id, WZP_SIG_ERR_NO_SUCH_CALL, "no such call");
}

static void send_reattached(wzp_relay_control *rc, rc_conn *c, const rc_call *k, int s,
                            uint64_t request_id)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_REATTACHED, request_id);
    memcpy(m.u.reattach.call_id, k->id, WZP_SIG_CALL_ID_LEN);
    m.u.reattach.relay_channel = k->side[s].chan;
    m.u.reattach.relay_addr = rc->cfg.relay_addr;
    wzp_rc_send(rc, c, &m);
}

/* Side s of k was a remote party (its end on another relay); that end is c now. */
static void move_in(wzp_relay_control *rc, rc_call *k, int s, rc_conn *c, uint64_t request_id)
{
    rc_conn *was = k->side[s].conn;
    wzp_rc_unlink_side(k, s);
    free(was);
    wzp_rc_link_side(k, s, c);
    if (k->channels_open && rc->cfg.cb.channel_moved)
        rc->cfg.cb.channel_moved(rc->cfg.user, k->side[s].chan, &c->addr);
    if (k->channels_open && rc->cfg.cb.channel_peer)
        rc->cfg.cb.channel_peer(rc->cfg.user, k->side[s].chan, 0); /* a client's channel again */
    if (!k->side[!s].conn->remote)
        k->located = false; /* both ends here: nothing to tell another relay any more */
    rc->stats.reattached++;
    CALL_LOG(WZP_LOG_INFO, k, "relay: %s re-attached here (connection %llu), channel %u",
             s == CALLER ? "caller" : "callee", (unsigned long long)c->id, k->side[s].chan);
    send_reattached(rc, c, k, s, request_id);
    wzp_rc_call_record(rc, k, true);
}

void wzp_rc_handle_reattach(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m, wzp_ts now)
{
    int s = m->u.reattach.role == WZP_SIG_ROLE_CALLER ? CALLER : CALLEE;
    rc_call *k = wzp_hmap_get(&rc->calls, m->u.reattach.call_id, WZP_SIG_CALL_ID_LEN);
    if (k) {
        rc_conn *was = k->side[s].conn;
        if (k->state != RC_ACTIVE || memcmp(was->fp, c->fp, WZP_SIG_FP_LEN) != 0 ||
            (!was->remote && was != c))
            refuse(rc, c, m->request_id); /* not this key's end, or its end is here already */
        else if (was == c)
            send_reattached(rc, c, k, s, m->request_id); /* asked again */
        else
            move_in(rc, k, s, c, m->request_id);
        return;
    }
    if (!rc->cfg.cb.reattach_lookup) {
        refuse(rc, c, m->request_id);
        return;
    }
    rc->cfg.cb.reattach_lookup(rc->cfg.user, c->id, m->request_id, m->u.reattach.call_id, s, c->fp);
}

/* Frames for a link whose relay is not known yet go to a documentation address (RFC 5737):
 * nothing answers from there, and the channel is re-pointed once the other end shows up. */
static void placeholder(wzp_addr *a)
{
    static const uint8_t ip[4] = {192, 0, 2, 1};
    wzp_addr_from_ip(a, AF_INET, ip, 9);
}

void wzp_rc_reattach_found(wzp_relay_control *rc, rc_conn *c, uint64_t req, const uint8_t *call_id,
                           int s, wzp_relay_cluster_result res, const uint8_t *other_fp,
                           const uint8_t *other_relay, const wzp_addr *other_fwd, wzp_ts now)
{
    rc_call *k = wzp_hmap_get(&rc->calls, call_id, WZP_SIG_CALL_ID_LEN);
    if (k) { /* the other end re-attached here meanwhile */
        wzp_sig_msg m;
        wzp_sig_init(&m, WZP_SIG_REATTACH, req);
        memcpy(m.u.reattach.call_id, call_id, WZP_SIG_CALL_ID_LEN);
        m.u.reattach.role = s == CALLER ? WZP_SIG_ROLE_CALLER : WZP_SIG_ROLE_CALLEE;
        wzp_rc_handle_reattach(rc, c, &m, now);
        return;
    }
    if (res != WZP_RELAY_CLUSTER_OK || rc->calls.count >= rc->cfg.max_calls) {
        refuse(rc, c, req);
        return;
    }
    static const uint8_t zero[WZP_CLUSTER_ID_LEN];
    bool known = other_fwd->len && memcmp(other_relay, zero, WZP_CLUSTER_ID_LEN) != 0;
    rc_conn *r = wzp_rc_new_remote(other_fp, "");
    k = r ? calloc(1, sizeof(*k)) : NULL;
    if (!k || wzp_hmap_put(&rc->calls, call_id, WZP_SIG_CALL_ID_LEN, k) < 0) {
        free(k);
        free(r);
        refuse(rc, c, req);
        return;
    }
    if (known) {
        memcpy(r->relay, other_relay, WZP_CLUSTER_ID_LEN);
        r->addr = *other_fwd;
    } else {
        placeholder(&r->addr);
    }
    k->handle = rc->next_call_handle++;
    memcpy(k->id, call_id, WZP_SIG_CALL_ID_LEN);
    k->state = RC_ACTIVE;
    k->located = known;
    wzp_rc_link_side(k, s, c);
    wzp_rc_link_side(k, !s, r);
    if (!wzp_rc_open_channels(rc, k, now)) {
        wzp_rc_unlink_side(k, CALLER);
        wzp_rc_unlink_side(k, CALLEE);
        wzp_hmap_del(&rc->calls, call_id, WZP_SIG_CALL_ID_LEN);
        free(k);
        free(r);
        refuse(rc, c, req);
        return;
    }
    rc->stats.reattached++;
    CALL_LOG(WZP_LOG_INFO, k, "relay: %s re-attached here (connection %llu), channel %u",
             s == CALLER ? "caller" : "callee", (unsigned long long)c->id, k->side[s].chan);
    send_reattached(rc, c, k, s, req);
    if (known) {
        wzp_cluster_msg m;
        wzp_rc_cluster_msg_init(k, !s, WZP_CLUSTER_REATTACH, &m);
        memcpy(m.fp, c->fp, WZP_SIG_FP_LEN);
        m.link_chan = k->side[!s].chan;
        m.fwd_addr = rc->cfg.cluster_addr;
        wzp_sig_init(&m.sig, WZP_SIG_REATTACH, 0);
        memcpy(m.sig.u.reattach.call_id, call_id, WZP_SIG_CALL_ID_LEN);
        m.sig.u.reattach.role = s == CALLER ? WZP_SIG_ROLE_CALLER : WZP_SIG_ROLE_CALLEE;
        rc->cfg.cb.cluster_send(rc->cfg.user, &m);
    }
}

/* Side s of k becomes a remote party with the same key, its relay not known yet: the end
 * left this relay and re-attaches elsewhere (or here again). False if out of memory. */
static bool detach_side(wzp_relay_control *rc, rc_call *k, int s)
{
    rc_conn *c = k->side[s].conn;
    rc_conn *r = wzp_rc_new_remote(c->fp, c->alias);
    if (!r)
        return false;
    placeholder(&r->addr);
    wzp_rc_unlink_side(k, s);
    wzp_rc_link_side(k, s, r);
    if (k->channels_open && rc->cfg.cb.channel_moved)
        rc->cfg.cb.channel_moved(rc->cfg.user, k->side[s].chan, &r->addr);
    return true;
}

void wzp_rc_detach_calls_of(wzp_relay_control *rc, rc_conn *c)
{
    for (rc_call *k = c->calls, *next; k; k = next) {
        int s = k->side[CALLER].conn == c ? CALLER : CALLEE;
        next = k->side[s].next;
        if (k->state != RC_ACTIVE)
            continue; /* ends with the connection */
        if (k->side[!s].conn->remote) {
            /* Nobody of this call is here any more: its ends meet elsewhere. */
            CALL_LOG(WZP_LOG_INFO, k, "relay: both ends gone elsewhere, call let go of");
            wzp_rc_forget_call(rc, k);
        } else if (detach_side(rc, k, s)) {
            CALL_LOG(WZP_LOG_INFO, k, "relay: the %s moves to another relay",
                     s == CALLER ? "caller" : "callee");
        }
    }
}

/* Side s of k is the remote party whose end is on relay `from` now: our channel for it
 * goes to that relay's link channel link_chan at fwd. */
static void repoint(wzp_relay_control *rc, rc_call *k, int s, const uint8_t *from,
                    uint32_t link_chan, const wzp_addr *fwd)
{
    rc_conn *r = k->side[s].conn;
    memcpy(r->relay, from, WZP_CLUSTER_ID_LEN);
    r->addr = *fwd;
    k->located = true;
    k->remote_ended = false;
    if (k->channels_open && rc->cfg.cb.channel_moved)
        rc->cfg.cb.channel_moved(rc->cfg.user, k->side[s].chan, fwd);
    if (k->channels_open && rc->cfg.cb.channel_peer)
        rc->cfg.cb.channel_peer(rc->cfg.user, k->side[s].chan, link_chan);
}

void wzp_rc_reattach_cluster_msg(wzp_relay_control *rc, const wzp_cluster_msg *m)
{
    rc_call *k = wzp_hmap_get(&rc->calls, m->call_id, WZP_SIG_CALL_ID_LEN);
    int s = -1;
    if (k && m->kind == WZP_CLUSTER_REATTACH)
        s = m->sig.u.reattach.role == WZP_SIG_ROLE_CALLER ? CALLER : CALLEE;
    for (int i = CALLER; k && m->kind == WZP_CLUSTER_REATTACH_ACK && i <= CALLEE; i++)
        if (k->side[i].conn->remote)
            s = i;
    /* The moved end's key must be the one this call has for it (the sender checked it in the
     * call's record; a relay holding the cluster key is trusted that far). */
    if (s < 0 || k->state != RC_ACTIVE || !m->fwd_addr.len || !m->link_chan ||
        memcmp(k->side[s].conn->fp, m->fp, WZP_SIG_FP_LEN) != 0 ||
        (!k->side[s].conn->remote && (m->kind != WZP_CLUSTER_REATTACH || !detach_side(rc, k, s)))) {
        /* (A party still here with that key left us without a word: it moved.) */
        rc->stats.cross_refused++;
        return;
    }
    repoint(rc, k, s, m->from, m->link_chan, &m->fwd_addr);
    if (m->kind == WZP_CLUSTER_REATTACH_ACK)
        return;
    CALL_LOG(WZP_LOG_INFO, k, "relay: the %s's end moved to another relay, link re-pointed",
             s == CALLER ? "caller" : "callee");
    wzp_cluster_msg a;
    wzp_rc_cluster_msg_init(k, s, WZP_CLUSTER_REATTACH_ACK, &a);
    memcpy(a.fp, k->side[!s].conn->fp, WZP_SIG_FP_LEN);
    a.link_chan = k->side[s].chan;
    a.fwd_addr = rc->cfg.cluster_addr;
    rc->cfg.cb.cluster_send(rc->cfg.user, &a);
    wzp_rc_call_record(rc, k, true);
}
