/*
 * Parked registrations in the control plane (docs/signaling.md, "Parked registrations";
 * the park table and its timers are park.c).
 *
 * A registered client idle for park_after is offered Park. From then until it answers,
 * messages for it are held: it either closes its connection with WZP_SIG_CLOSE_PARKED (or
 * its first valid PARK_PING arrives first) and its registration is parked, the same
 * record without a connection; or it sends anything, declining, and what was held goes
 * out. Whatever is for a parked client is held and wakes it; when it registers again its
 * record takes the new connection (calls pointing at it stay valid), Registered goes out,
 * then what was held.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/tunnel_addr.h"
#include "relay/control_internal.h"

/* Messages held for one client at most: a woken client gets a handful (an IncomingCall,
 * its CallEnded, a Rehome). More means it is not coming back soon; the rest is dropped. */
#define MAX_HELD 32

static rc_conn *conn_of_idle(wzp_park_idle *n)
{
    return (rc_conn *)((char *)n - offsetof(rc_conn, idle));
}

static void free_held(rc_conn *c)
{
    for (rc_held *h = c->held, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    c->held = c->held_tail = NULL;
    c->n_held = 0;
}

void wzp_rc_free_conn(rc_conn *c)
{
    free_held(c);
    free(c);
}

void wzp_rc_park_forget(wzp_relay_control *rc, rc_conn *c)
{
    wzp_park_idle_remove(&rc->park, &c->idle);
    if (c->park)
        wzp_park_drop(&rc->park, c->park);
    c->park = NULL;
    c->holding = false;
    free_held(c);
}

void wzp_rc_hold(wzp_relay_control *rc, rc_conn *c, const uint8_t *msg, size_t len)
{
    rc_held *h = c->n_held < MAX_HELD ? malloc(sizeof(*h) + len) : NULL;
    if (h) {
        h->next = NULL;
        h->len = len;
        memcpy(h->msg, msg, len);
        if (c->held_tail)
            c->held_tail->next = h;
        else
            c->held = h;
        c->held_tail = h;
        c->n_held++;
    }
    if (wzp_rc_parked(c))
        wzp_park_wake(&rc->park, c->park, rc->draining, rc->now);
}

void wzp_rc_flush_held(wzp_relay_control *rc, rc_conn *c)
{
    c->holding = false;
    for (rc_held *h = c->held; h; h = h->next)
        rc->cfg.cb.send(rc->cfg.user, c->id, h->msg, h->len);
    free_held(c);
    wzp_rc_calls_released(rc, c);
}

/* An offer not taken: what was held goes out (the record stays until it lapses, in case
 * the client took it after all: its close or ping then still parks it). */
static void withdraw(wzp_relay_control *rc, rc_conn *c)
{
    if (c->holding && !wzp_rc_parked(c))
        wzp_rc_flush_held(rc, c);
}

/* Registered here over a UDP connection: TCP clients never park (they keep their link). */
static bool may_park(const rc_conn *c)
{
    return c->registered && !c->remote && !c->park_ignored && !wzp_addr_is_tunnel(&c->addr);
}

void wzp_rc_park_idle_start(wzp_relay_control *rc, rc_conn *c, wzp_ts now)
{
    if (may_park(c) && !rc->draining)
        wzp_park_idle_touch(&rc->park, &c->idle, now);
}

void wzp_rc_park_activity(wzp_relay_control *rc, rc_conn *c, wzp_ts now)
{
    if (c->holding && !wzp_rc_parked(c)) {
        rc->stats.parks_declined++;
        withdraw(rc, c);
    }
    wzp_rc_park_idle_start(rc, c, now);
}

/* ---- the park table's callbacks ------------------------------------------------------- */

static void on_idle(void *user, wzp_park_idle *n, wzp_ts now)
{
    wzp_relay_control *rc = user;
    rc_conn *c = conn_of_idle(n);
    if (rc->draining)
        return; /* nobody parks any more */
    if (c->n_calls || c->pending_alias[0] || c->holding) {
        wzp_park_idle_touch(&rc->park, n, now); /* busy: again after another idle period */
        return;
    }
    if (c->park) /* an earlier offer it declined */
        wzp_park_drop(&rc->park, c->park);
    c->park = wzp_park_offer(&rc->park, c, &c->addr, now);
    if (!c->park) {
        wzp_park_idle_touch(&rc->park, n, now);
        return;
    }
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_PARK, 0);
    memcpy(m.u.park.park_id, c->park->id, WZP_PARK_ID_LEN);
    memcpy(m.u.park.key, c->park->key, WZP_PARK_KEY_LEN);
    m.u.park.keepalive_ms = (uint32_t)(rc->cfg.park_keepalive / WZP_MS(1));
    wzp_rc_send(rc, c, &m);
    c->holding = true;
    rc->stats.parks_offered++;
}

void wzp_rc_park_conn(wzp_relay_control *rc, rc_conn *c, wzp_ts now)
{
    wzp_hmap_del(&rc->conns, &c->id, sizeof(c->id));
    wzp_rc_uncount_addr(rc, c);
    wzp_park_idle_remove(&rc->park, &c->idle);
    c->id = 0;
    c->took_park = false;
    c->holding = true;
    c->strikes = c->bad = 0;
    wzp_park_enter(&rc->park, c->park, now);
    rc->stats.parks_taken++;
    if (c->held || rc->draining) /* something came meanwhile; or go elsewhere at once */
        wzp_park_wake(&rc->park, c->park, rc->draining, now);
}

/* A valid ping before its connection's close reached us: it has taken the offer. */
static void on_accepted(void *user, wzp_park *p, wzp_ts now)
{
    wzp_relay_control *rc = user;
    rc_conn *c = p->owner;
    uint64_t id = c->id;
    wzp_rc_park_conn(rc, c, now);
    rc->stats.closes++;
    rc->cfg.cb.close(rc->cfg.user, id, WZP_RELAY_CLOSE_PARKED, "parked");
}

static void on_expired(void *user, wzp_park *p, wzp_ts now)
{
    wzp_relay_control *rc = user;
    rc_conn *c = p->owner;
    if (p->parked) {
        /* No ping for 3 keep-alives: gone, as a connection that ends. */
        rc->stats.parks_expired++;
        wzp_rc_drop_conn(rc, c, WZP_SIG_END_PEER_GONE, now);
        return;
    }
    if (c->holding) { /* neither took nor declined it: a client that does not know Park */
        rc->stats.parks_lapsed++;
        c->park_ignored = true;
    }
    withdraw(rc, c);
    wzp_park_drop(&rc->park, p);
    c->park = NULL;
    wzp_rc_park_idle_start(rc, c, now);
}

/* The client said BYE: gone now rather than three keep-alives later. */
static void on_left(void *user, wzp_park *p, wzp_ts now)
{
    wzp_relay_control *rc = user;
    rc->stats.parks_left++;
    wzp_rc_drop_conn(rc, p->owner, WZP_SIG_END_PEER_GONE, now);
}

static void on_wake_failed(void *user, wzp_park *p, wzp_ts now)
{
    wzp_relay_control *rc = user;
    rc_conn *c = p->owner;
    if (rc->draining) {
        wzp_rc_drop_conn(rc, c, WZP_SIG_END_PEER_GONE, now); /* told to go: gone */
        return;
    }
    /* Callers hear what they hear of an offline callee; it stays parked (it may only have
     * missed the WAKEs). */
    wzp_rc_calls_unwoken(rc, c);
    free_held(c);
}

static void park_send(void *user, const wzp_addr *to, const uint8_t *frame, size_t len)
{
    wzp_relay_control *rc = user;
    rc->cfg.cb.park_send(rc->cfg.user, to, frame, len);
}

void wzp_rc_park_init(wzp_relay_control *rc)
{
    wzp_park_config pc = {.park_after = rc->cfg.cb.park_send ? rc->cfg.park_after : 0,
                          .keepalive = rc->cfg.park_keepalive,
                          .secret = rc->cfg.have_park_secret ? rc->cfg.park_secret : NULL,
                          .send = park_send,
                          .idle = on_idle,
                          .accepted = on_accepted,
                          .expired = on_expired,
                          .wake_failed = on_wake_failed,
                          .left = on_left,
                          .user = rc};
    wzp_park_table_init(&rc->park, &pc);
}

rc_conn *wzp_rc_adopt(wzp_relay_control *rc, rc_conn *p, rc_conn *c)
{
    wzp_rc_unlink_unreg(rc, c);
    p->id = c->id;
    memcpy(p->addr_key, c->addr_key, sizeof(p->addr_key));
    p->addr_keylen = c->addr_keylen;
    c->addr_keylen = 0;
    p->millitokens = c->millitokens;
    p->refilled = c->refilled;
    p->strikes = c->strikes;
    p->bad = c->bad;
    p->moving = false;
    /* Replaces c under its handle: no allocation, cannot fail. */
    wzp_hmap_put(&rc->conns, &p->id, sizeof(p->id), p);
    bool moved = !wzp_addr_equal(&p->addr, &c->addr);
    p->addr = c->addr;
    wzp_park_drop(&rc->park, p->park);
    p->park = NULL;
    p->holding = false; /* the answer to its Register goes first, then what was held */
    wzp_rc_free_conn(c);
    if (moved)
        wzp_rc_conn_moved(rc, p);
    rc->stats.unparked++;
    return p;
}

bool wzp_rc_park_drain(wzp_relay_control *rc, rc_conn *c)
{
    wzp_park_idle_remove(&rc->park, &c->idle);
    if (wzp_rc_parked(c)) {
        wzp_park_wake(&rc->park, c->park, true, rc->now);
        return true;
    }
    withdraw(rc, c);
    return false;
}

/* ---- the public side ------------------------------------------------------------------- */

void wzp_relay_control_on_parked(wzp_relay_control *rc, uint64_t conn)
{
    rc_conn *c = wzp_hmap_get(&rc->conns, &conn, sizeof(conn));
    if (c && c->park)
        c->took_park = true;
}

void wzp_relay_control_on_park_frame(wzp_relay_control *rc, const wzp_addr *from,
                                     const uint8_t *frame, size_t len, wzp_ts now)
{
    rc->now = now;
    if (!wzp_addr_is_tunnel(from))
        wzp_park_on_ping(&rc->park, from, frame, len, now);
}

void wzp_relay_control_park_farewell(wzp_relay_control *rc)
{
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&rc->regs, &i, &slot);)
        if (wzp_rc_parked(slot->value))
            wzp_park_wake(&rc->park, ((rc_conn *)slot->value)->park, true, rc->now);
}
