/* Choosing the relay to home on: see relay_select.h. */
#include "client/relay_select.h"

#include <string.h>

void wzp_relay_select_set(wzp_relay_select *s, const wzp_addr *addrs, size_t n)
{
    wzp_relay_select old = *s;
    memset(s, 0, sizeof(*s));
    s->settle_at = WZP_TS_NEVER;
    if (n > WZP_RELAY_SELECT_MAX)
        n = WZP_RELAY_SELECT_MAX;
    for (size_t i = 0; i < n; i++) {
        wzp_relay_select_entry *e = &s->e[i];
        e->addr = addrs[i];
        e->rtt = WZP_TS_NEVER;
        e->backoff = WZP_RELAY_SELECT_BACKOFF_MIN;
        for (size_t j = 0; j < old.n; j++)
            if (wzp_addr_equal(&old.e[j].addr, &addrs[i]))
                *e = old.e[j]; /* its probe too: a round under way goes on */
    }
    s->n = n;
    /* A new lookup usually lands during the round it triggered: the round goes on. */
    s->settle_at = n > 1 ? old.settle_at : WZP_TS_NEVER;
}

void wzp_relay_select_measure(wzp_relay_select *s, wzp_ts now)
{
    s->settle_at = s->n > 1 ? now + WZP_RELAY_SELECT_WINDOW : WZP_TS_NEVER;
    for (size_t i = 0; i < s->n && s->n > 1; i++) {
        wzp_relay_select_entry *e = &s->e[i];
        e->rtt = WZP_TS_NEVER;
        e->sent_at = WZP_TS_NEVER;
        wzp_stun_config sc;
        wzp_stun_config_default(&sc);
        sc.rto = WZP_RELAY_SELECT_WINDOW;
        sc.max_tx = 1;
        sc.final_wait = 1;
        if (wzp_stun_txn_start(&e->probe, &sc, &e->addr, now) < 0)
            e->probe.state = WZP_STUN_TXN_FAILED;
    }
}

int wzp_relay_select_poll(wzp_relay_select *s, wzp_ts now, uint8_t *out, size_t cap, wzp_addr *to)
{
    for (size_t i = 0; i < s->n && s->settle_at != WZP_TS_NEVER; i++) {
        wzp_relay_select_entry *e = &s->e[i];
        if (e->probe.state != WZP_STUN_TXN_PENDING || wzp_stun_txn_deadline(&e->probe) > now)
            continue;
        int len = wzp_stun_txn_poll(&e->probe, now, out, cap, to);
        if (len > 0) {
            e->sent_at = now;
            return len;
        }
    }
    return 0;
}

bool wzp_relay_select_recv(wzp_relay_select *s, const wzp_addr *from, const uint8_t *pkt,
                           size_t len, wzp_ts now)
{
    for (size_t i = 0; i < s->n && s->settle_at != WZP_TS_NEVER; i++) {
        wzp_relay_select_entry *e = &s->e[i];
        if (e->probe.state != WZP_STUN_TXN_PENDING || e->sent_at == WZP_TS_NEVER ||
            wzp_stun_txn_recv(&e->probe, from, pkt, len, now) != 0)
            continue;
        if (e->probe.state == WZP_STUN_TXN_DONE) {
            e->rtt = now - e->sent_at;
            /* A slower relay gets a short grace to answer; past it, the round is over. */
            if (s->settle_at > now + WZP_RELAY_SELECT_GRACE)
                s->settle_at = now + WZP_RELAY_SELECT_GRACE;
        }
        return true;
    }
    return false;
}

bool wzp_relay_select_settled(const wzp_relay_select *s, wzp_ts now)
{
    if (s->settle_at == WZP_TS_NEVER || now >= s->settle_at)
        return true;
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].probe.state == WZP_STUN_TXN_PENDING)
            return false;
    return true;
}

wzp_ts wzp_relay_select_deadline(const wzp_relay_select *s)
{
    wzp_ts t = s->settle_at;
    for (size_t i = 0; i < s->n && s->settle_at != WZP_TS_NEVER; i++)
        if (s->e[i].probe.state == WZP_STUN_TXN_PENDING)
            t = wzp_ts_min(t, wzp_stun_txn_deadline(&s->e[i].probe));
    return t;
}

void wzp_relay_select_handle_timer(wzp_relay_select *s, wzp_ts now)
{
    if (s->settle_at != WZP_TS_NEVER && wzp_relay_select_settled(s, now))
        s->settle_at = WZP_TS_NEVER;
}

/* Resting addresses last (soonest back first), then answered by RTT, then the rest in order. */
static bool better(const wzp_relay_select *s, size_t a, size_t b, wzp_ts now)
{
    const wzp_relay_select_entry *x = &s->e[a], *y = &s->e[b];
    bool xd = x->down_until > now, yd = y->down_until > now;
    if (xd != yd)
        return !xd;
    if (xd && x->down_until != y->down_until)
        return x->down_until < y->down_until;
    if (x->rtt != y->rtt)
        return x->rtt < y->rtt; /* WZP_TS_NEVER (no answer) is the largest */
    return a < b;
}

size_t wzp_relay_select_rank(const wzp_relay_select *s, wzp_ts now, size_t *order)
{
    for (size_t i = 0; i < s->n; i++) {
        size_t j = i;
        for (; j > 0 && better(s, i, order[j - 1], now); j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    return s->n;
}

void wzp_relay_select_failed(wzp_relay_select *s, size_t idx, wzp_ts now)
{
    if (idx >= s->n)
        return;
    wzp_relay_select_entry *e = &s->e[idx];
    e->down_until = now + e->backoff;
    e->backoff *= 2;
    if (e->backoff > WZP_RELAY_SELECT_BACKOFF_MAX)
        e->backoff = WZP_RELAY_SELECT_BACKOFF_MAX;
}

void wzp_relay_select_ok(wzp_relay_select *s, size_t idx)
{
    if (idx >= s->n)
        return;
    s->e[idx].down_until = 0;
    s->e[idx].backoff = WZP_RELAY_SELECT_BACKOFF_MIN;
}
