#include "relay/park.h"

#include <stdlib.h>
#include <string.h>

#include "common/rand.h"
#include "wire/park_frame.h"

static wzp_ts miss_after(const wzp_park_table *t)
{
    return WZP_PARK_MISSED_PINGS * t->cfg.keepalive;
}

void wzp_park_table_init(wzp_park_table *t, const wzp_park_config *cfg)
{
    memset(t, 0, sizeof(*t));
    t->cfg = *cfg;
    wzp_hmap_init(&t->by_id);
}

void wzp_park_table_free(wzp_park_table *t)
{
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&t->by_id, &i, &slot);)
        free(slot->value);
    wzp_hmap_free(&t->by_id);
    t->idle_head = t->idle_tail = NULL;
    t->offers.head = t->offers.tail = t->parked.head = t->parked.tail = NULL;
    t->wake_head = t->wake_tail = NULL;
}

/* ---- the three deadline-ordered lists ---------------------------------------------------- */

void wzp_park_idle_remove(wzp_park_table *t, wzp_park_idle *n)
{
    if (!n->linked)
        return;
    if (n->prev)
        n->prev->next = n->next;
    else
        t->idle_head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        t->idle_tail = n->prev;
    n->prev = n->next = NULL;
    n->linked = false;
}

void wzp_park_idle_touch(wzp_park_table *t, wzp_park_idle *n, wzp_ts now)
{
    if (!t->cfg.park_after)
        return;
    wzp_park_idle_remove(t, n);
    n->since = now;
    n->prev = t->idle_tail;
    if (t->idle_tail)
        t->idle_tail->next = n;
    else
        t->idle_head = n;
    t->idle_tail = n;
    n->linked = true;
}

/* The offers, and the parked records: each in deadline order (one fixed interval each). */
static wzp_park_list *list_of(wzp_park_table *t, const wzp_park *p)
{
    return p->parked ? &t->parked : &t->offers;
}

static void exp_remove(wzp_park_table *t, wzp_park *p)
{
    wzp_park_list *l = list_of(t, p);
    if (p->eprev)
        p->eprev->enext = p->enext;
    else if (l->head == p)
        l->head = p->enext;
    else
        return; /* not linked */
    if (p->enext)
        p->enext->eprev = p->eprev;
    else
        l->tail = p->eprev;
    p->eprev = p->enext = NULL;
}

static void exp_append(wzp_park_table *t, wzp_park *p, wzp_ts expires)
{
    wzp_park_list *l = list_of(t, p);
    exp_remove(t, p);
    p->expires = expires;
    p->eprev = l->tail;
    if (l->tail)
        l->tail->enext = p;
    else
        l->head = p;
    l->tail = p;
}

static void wake_remove(wzp_park_table *t, wzp_park *p)
{
    if (!p->waking)
        return;
    if (p->wprev)
        p->wprev->wnext = p->wnext;
    else
        t->wake_head = p->wnext;
    if (p->wnext)
        p->wnext->wprev = p->wprev;
    else
        t->wake_tail = p->wprev;
    p->wprev = p->wnext = NULL;
    p->waking = false;
}

static void wake_append(wzp_park_table *t, wzp_park *p, wzp_ts at)
{
    p->wake_next = at;
    p->wprev = t->wake_tail;
    p->wnext = NULL;
    if (t->wake_tail)
        t->wake_tail->wnext = p;
    else
        t->wake_head = p;
    t->wake_tail = p;
    p->waking = true;
}

/* ---- records --------------------------------------------------------------------------- */

wzp_park *wzp_park_offer(wzp_park_table *t, void *owner, wzp_addr *addr, wzp_ts now)
{
    wzp_park *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    do
        wzp_random(p->id, sizeof(p->id));
    while (wzp_hmap_get(&t->by_id, p->id, sizeof(p->id)));
    wzp_random(p->key, sizeof(p->key));
    p->addr = addr;
    p->owner = owner;
    if (wzp_hmap_put(&t->by_id, p->id, sizeof(p->id), p) < 0) {
        free(p);
        return NULL;
    }
    exp_append(t, p, now + WZP_PARK_OFFER_FOR);
    return p;
}

void wzp_park_enter(wzp_park_table *t, wzp_park *p, wzp_ts now)
{
    if (p->parked)
        return;
    exp_remove(t, p);
    p->parked = true;
    t->n_parked++;
    exp_append(t, p, now + miss_after(t));
}

void wzp_park_drop(wzp_park_table *t, wzp_park *p)
{
    exp_remove(t, p);
    wake_remove(t, p);
    if (p->parked)
        t->n_parked--;
    wzp_hmap_del(&t->by_id, p->id, sizeof(p->id));
    free(p);
}

static void send_frame(wzp_park_table *t, const wzp_park *p, uint8_t type, uint64_t seq,
                       uint8_t flags)
{
    uint8_t out[WZP_PARK_FRAME_LEN];
    wzp_park_frame f = {.type = type, .seq = seq, .flags = flags};
    memcpy(f.park_id, p->id, WZP_PARK_ID_LEN);
    if (wzp_park_frame_encode(out, &f, p->key) == 0)
        t->cfg.send(t->cfg.user, p->addr, out, sizeof(out));
}

static void send_wake(wzp_park_table *t, wzp_park *p)
{
    t->stats.wakes_sent++;
    send_frame(t, p, WZP_PARK_FRAME_WAKE, ++p->wake_seq, p->rehome ? WZP_PARK_REHOME : 0);
}

void wzp_park_wake(wzp_park_table *t, wzp_park *p, bool rehome, wzp_ts now)
{
    if (!p->parked)
        return;
    if (p->waking) {
        if (rehome && !p->rehome) {
            p->rehome = true;
            send_wake(t, p);
        }
        return;
    }
    p->rehome = rehome;
    p->wake_until = now + WZP_PARK_WAKE_FOR;
    send_wake(t, p);
    wake_append(t, p, now + WZP_PARK_WAKE_EVERY);
}

wzp_park_ping_result wzp_park_on_ping(wzp_park_table *t, const wzp_addr *from, const uint8_t *buf,
                                      size_t len, wzp_ts now)
{
    wzp_park_ping_result r;
    wzp_park_frame f;
    wzp_park *p = NULL;
    if (wzp_park_frame_peek(&f, buf, len) < 0 || f.type != WZP_PARK_FRAME_PING)
        r = WZP_PARK_PING_MALFORMED;
    else if (!(p = wzp_hmap_get(&t->by_id, f.park_id, WZP_PARK_ID_LEN)))
        r = WZP_PARK_PING_UNKNOWN;
    else if (!wzp_park_frame_verify(buf, len, p->key))
        r = WZP_PARK_PING_BAD_MAC;
    else if (f.seq <= p->ping_seq)
        r = WZP_PARK_PING_REPLAY;
    else
        r = WZP_PARK_PING_OK;
    t->stats.pings[r]++;
    if (r != WZP_PARK_PING_OK)
        return r; /* never answered: no reflection, no oracle */
    p->ping_seq = f.seq;
    if (!wzp_addr_equal(p->addr, from))
        *p->addr = *from;
    send_frame(t, p, WZP_PARK_FRAME_PONG, f.seq, 0);
    if (!p->parked) {
        t->cfg.accepted(t->cfg.user, p, now); /* may enter p, or drop it */
        return r;
    }
    exp_append(t, p, now + miss_after(t));
    if (p->waking)
        send_wake(t, p); /* the address is fresh: the WAKE may have missed it before */
    return r;
}

void wzp_park_handle_timer(wzp_park_table *t, wzp_ts now)
{
    while (t->idle_head && t->idle_head->since + t->cfg.park_after <= now) {
        wzp_park_idle *n = t->idle_head;
        wzp_park_idle_remove(t, n);
        t->cfg.idle(t->cfg.user, n, now);
    }
    for (wzp_park_list *l = &t->offers; l; l = l == &t->offers ? &t->parked : NULL)
        while (l->head && l->head->expires <= now) {
            wzp_park *p = l->head;
            exp_remove(t, p);
            t->cfg.expired(t->cfg.user, p, now);
        }
    while (t->wake_head && t->wake_head->wake_next <= now) {
        wzp_park *p = t->wake_head;
        wake_remove(t, p);
        if (now >= p->wake_until) {
            t->stats.wakes_failed++;
            p->rehome = false;
            t->cfg.wake_failed(t->cfg.user, p, now);
            continue;
        }
        send_wake(t, p);
        wake_append(t, p, now + WZP_PARK_WAKE_EVERY);
    }
}

wzp_ts wzp_park_next_deadline(const wzp_park_table *t)
{
    wzp_ts d = WZP_TS_NEVER;
    if (t->idle_head)
        d = t->idle_head->since + t->cfg.park_after;
    if (t->offers.head)
        d = wzp_ts_min(d, t->offers.head->expires);
    if (t->parked.head)
        d = wzp_ts_min(d, t->parked.head->expires);
    if (t->wake_head)
        d = wzp_ts_min(d, t->wake_head->wake_next);
    return d;
}
