#include "relay/park.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/rand.h"
#include "wire/mac.h"
#include "wire/park_frame.h"

static wzp_ts miss_after(const wzp_park_table *t)
{
    return WZP_PARK_MISSED_PINGS * t->cfg.keepalive;
}

void wzp_park_table_init(wzp_park_table *t, const wzp_park_config *cfg)
{
    memset(t, 0, sizeof(*t));
    t->cfg = *cfg;
    if (cfg->secret) {
        memcpy(t->secret, cfg->secret, sizeof(t->secret));
        t->have_secret = true;
    }
    t->cfg.secret = NULL; /* ours is the copy */
    wzp_hmap_init(&t->by_id);
}

void wzp_park_table_free(wzp_park_table *t)
{
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&t->by_id, &i, &slot);)
        free(slot->value);
    wzp_hmap_free(&t->by_id);
    t->idle = t->offers = t->parked = t->waking = (wzp_park_list){0};
    memset(t->secret, 0, sizeof(t->secret));
}

/* ---- the deadline-ordered lists: every interval is fixed, so appending keeps the order -- */

static wzp_park *of_exp(wzp_park_node *n)
{
    return WZP_DL_OWNER(n, wzp_park, exp);
}

static wzp_park *of_wake(wzp_park_node *n)
{
    return WZP_DL_OWNER(n, wzp_park, wake);
}

void wzp_park_idle_remove(wzp_park_table *t, wzp_park_idle *n)
{
    wzp_dl_remove(&t->idle, n);
}

void wzp_park_idle_touch(wzp_park_table *t, wzp_park_idle *n, wzp_ts now)
{
    if (t->cfg.park_after)
        wzp_dl_append(&t->idle, n, now);
}

/* The offers, and the parked records: each in deadline order (one fixed interval each). */
static wzp_park_list *list_of(wzp_park_table *t, const wzp_park *p)
{
    return p->parked ? &t->parked : &t->offers;
}

/* ---- records --------------------------------------------------------------------------- */

/* A park's key: from the secret and the id when there is one, else random. */
static int derive_key(const wzp_park_table *t, const uint8_t id[WZP_PARK_ID_LEN],
                      uint8_t key[WZP_PARK_KEY_LEN])
{
    static const char label[] = "wzp park key v1";
    if (!t->have_secret) {
        wzp_random(key, WZP_PARK_KEY_LEN);
        return 0;
    }
    uint8_t msg[sizeof(label) - 1 + WZP_PARK_ID_LEN];
    memcpy(msg, label, sizeof(label) - 1);
    memcpy(msg + sizeof(label) - 1, id, WZP_PARK_ID_LEN);
    return wzp_mac_trunc(t->secret, sizeof(t->secret), msg, sizeof(msg), key, WZP_PARK_KEY_LEN);
}

wzp_park *wzp_park_offer(wzp_park_table *t, void *owner, wzp_addr *addr, wzp_ts now)
{
    wzp_park *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    do
        wzp_random(p->id, sizeof(p->id));
    while (wzp_hmap_get(&t->by_id, p->id, sizeof(p->id)));
    if (derive_key(t, p->id, p->key) < 0) {
        free(p);
        return NULL;
    }
    p->addr = addr;
    p->owner = owner;
    if (wzp_hmap_put(&t->by_id, p->id, sizeof(p->id), p) < 0) {
        free(p);
        return NULL;
    }
    wzp_dl_append(&t->offers, &p->exp, now + WZP_PARK_OFFER_FOR);
    return p;
}

void wzp_park_enter(wzp_park_table *t, wzp_park *p, wzp_ts now)
{
    if (p->parked)
        return;
    wzp_dl_remove(&t->offers, &p->exp);
    p->parked = true;
    t->n_parked++;
    wzp_dl_append(&t->parked, &p->exp, now + miss_after(t));
}

void wzp_park_drop(wzp_park_table *t, wzp_park *p)
{
    wzp_dl_remove(list_of(t, p), &p->exp);
    wzp_dl_remove(&t->waking, &p->wake);
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
    if (p->wake.linked) {
        if (rehome && !p->rehome) {
            p->rehome = true;
            send_wake(t, p);
        }
        return;
    }
    p->rehome = rehome;
    p->wake_until = now + WZP_PARK_WAKE_FOR;
    send_wake(t, p);
    wzp_dl_append(&t->waking, &p->wake, now + WZP_PARK_WAKE_EVERY);
}

/* A ping for a park not held here: if its MAC is the key derived for its id, this relay
 * (or its run before a restart) issued that park, and the client had better register again
 * now. The answer is no larger than the ping; within WZP_PARK_GONE_RATE (a replayed ping
 * is answered too: at most that rate, to whatever source it claims). A BYE is not. */
static void answer_gone(wzp_park_table *t, const wzp_park_frame *f,
                        const uint8_t buf[WZP_PARK_FRAME_LEN], const wzp_addr *from, wzp_ts now)
{
    uint8_t key[WZP_PARK_KEY_LEN], out[WZP_PARK_FRAME_LEN];
    if (!t->have_secret || (f->flags & WZP_PARK_BYE) || derive_key(t, f->park_id, key) < 0 ||
        !wzp_park_frame_mac_ok(buf, key))
        return;
    /* GCRA: one answer per 1/rate, a second's worth in a burst. */
    wzp_ts step = WZP_SEC(1) / WZP_PARK_GONE_RATE;
    wzp_ts tat = t->gone_tat > now ? t->gone_tat : now;
    if (tat > now + WZP_SEC(1)) {
        t->stats.gone_limited++;
        return;
    }
    t->gone_tat = tat + step;
    wzp_park_frame g = {.type = WZP_PARK_FRAME_PONG, .seq = f->seq, .flags = WZP_PARK_GONE};
    memcpy(g.park_id, f->park_id, WZP_PARK_ID_LEN);
    if (wzp_park_frame_encode(out, &g, key) == 0) {
        t->stats.gone_sent++;
        t->cfg.send(t->cfg.user, from, out, sizeof(out));
    }
}

/* A valid BYE: the registration ends now, whether the client had still to take the offer
 * (its connection then goes as for a ping that took it) or was parked. */
static wzp_park_ping_result leave(wzp_park_table *t, wzp_park *p, wzp_ts now)
{
    t->stats.byes++;
    if (!p->parked) {
        uint8_t id[WZP_PARK_ID_LEN];
        memcpy(id, p->id, sizeof(id));
        t->cfg.accepted(t->cfg.user, p, now); /* may enter p, or drop it */
        p = wzp_hmap_get(&t->by_id, id, sizeof(id));
        if (!p || !p->parked)
            return WZP_PARK_PING_OK;
    }
    wzp_dl_remove(&t->parked, &p->exp);
    wzp_dl_remove(&t->waking, &p->wake);
    (t->cfg.left ? t->cfg.left : t->cfg.expired)(t->cfg.user, p, now);
    return WZP_PARK_PING_OK;
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
    else if (!wzp_park_frame_mac_ok(buf, p->key))
        r = WZP_PARK_PING_BAD_MAC;
    else if (f.seq <= p->ping_seq)
        r = WZP_PARK_PING_REPLAY;
    else
        r = WZP_PARK_PING_OK;
    t->stats.pings[r]++;
    if (r == WZP_PARK_PING_UNKNOWN)
        answer_gone(t, &f, buf, from, now);
    if (r != WZP_PARK_PING_OK)
        return r; /* unanswered (but for GONE above): no reflection, no oracle */
    p->ping_seq = f.seq;
    if (!wzp_addr_equal(p->addr, from))
        *p->addr = *from;
    if (f.flags & WZP_PARK_BYE)
        return leave(t, p, now);
    send_frame(t, p, WZP_PARK_FRAME_PONG, f.seq, 0);
    if (!p->parked) {
        t->cfg.accepted(t->cfg.user, p, now); /* may enter p, or drop it */
        return r;
    }
    wzp_dl_append(&t->parked, &p->exp, now + miss_after(t));
    if (p->wake.linked)
        send_wake(t, p); /* the address is fresh: the WAKE may have missed it before */
    return r;
}

void wzp_park_handle_timer(wzp_park_table *t, wzp_ts now)
{
    while (t->idle.head && t->idle.head->at + t->cfg.park_after <= now) {
        wzp_park_idle *n = t->idle.head;
        wzp_dl_remove(&t->idle, n);
        t->cfg.idle(t->cfg.user, n, now);
    }
    for (wzp_park_list *l = &t->offers; l; l = l == &t->offers ? &t->parked : NULL)
        while (l->head && l->head->at <= now) {
            wzp_park *p = of_exp(l->head);
            wzp_dl_remove(l, &p->exp);
            t->cfg.expired(t->cfg.user, p, now);
        }
    while (t->waking.head && t->waking.head->at <= now) {
        wzp_park *p = of_wake(t->waking.head);
        wzp_dl_remove(&t->waking, &p->wake);
        if (now >= p->wake_until) {
            t->stats.wakes_failed++;
            p->rehome = false;
            t->cfg.wake_failed(t->cfg.user, p, now);
            continue;
        }
        send_wake(t, p);
        wzp_dl_append(&t->waking, &p->wake, now + WZP_PARK_WAKE_EVERY);
    }
}

wzp_ts wzp_park_next_deadline(const wzp_park_table *t)
{
    wzp_ts d = WZP_TS_NEVER;
    if (t->idle.head)
        d = t->idle.head->at + t->cfg.park_after;
    if (t->offers.head)
        d = wzp_ts_min(d, t->offers.head->at);
    if (t->parked.head)
        d = wzp_ts_min(d, t->parked.head->at);
    if (t->waking.head)
        d = wzp_ts_min(d, t->waking.head->at);
    return d;
}
