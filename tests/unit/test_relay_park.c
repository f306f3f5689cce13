/*
 * The park table (src/relay/park.c) on a virtual clock: idle order, offers taken by a
 * ping or lapsing, pings verified (MAC, replay, unknown id) and answered, parked records
 * expiring without pings or ended by a BYE, WAKEs repeated and given up; with a secret, keys
 * derived from it and pings for parks no longer held answered GONE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "relay/park.h"
#include "wire/park_frame.h"

#define MAX_FRAMES 64

typedef struct sent {
    wzp_addr to;
    wzp_park_frame f;
    bool mac_ok; /* verifies with the record's key */
} sent;

static struct world {
    wzp_park_table t;
    wzp_ts now;
    sent out[MAX_FRAMES];
    size_t n_out;
    const uint8_t *key; /* the key frames are checked against */
    wzp_park_idle *idled[8];
    size_t n_idled, n_accepted, n_expired, n_wake_failed, n_left;
    wzp_park *last;
    bool drop_in_cb; /* callbacks drop the record they are told about */
    bool enter_in_cb;
    int owner;
    wzp_addr addr; /* the owner's address */
} * W;

static void on_send(void *user, const wzp_addr *to, const uint8_t *frame, size_t len)
{
    (void)user;
    assert_int_equal(len, WZP_PARK_FRAME_LEN);
    assert_true(W->n_out < MAX_FRAMES);
    sent *s = &W->out[W->n_out++];
    s->to = *to;
    assert_int_equal(wzp_park_frame_peek(&s->f, frame, len), 0);
    s->mac_ok = W->key && wzp_park_frame_verify(frame, len, W->key);
}

static void on_idle(void *user, wzp_park_idle *n, wzp_ts now)
{
    (void)user;
    (void)now;
    assert_true(W->n_idled < 8);
    W->idled[W->n_idled++] = n;
}

static void on_accepted(void *user, wzp_park *p, wzp_ts now)
{
    (void)user;
    W->n_accepted++;
    W->last = p;
    if (W->enter_in_cb)
        wzp_park_enter(&W->t, p, now);
}

/* A record ended (expired or left): counted, and dropped as the owner would. */
static void ended(size_t *count, wzp_park *p)
{
    (*count)++;
    W->last = p;
    if (W->drop_in_cb)
        wzp_park_drop(&W->t, p);
}

static void on_expired(void *user, wzp_park *p, wzp_ts now)
{
    (void)user;
    (void)now;
    ended(&W->n_expired, p);
}

static void on_left(void *user, wzp_park *p, wzp_ts now)
{
    (void)user;
    (void)now;
    ended(&W->n_left, p);
}

static void on_wake_failed(void *user, wzp_park *p, wzp_ts now)
{
    (void)user;
    (void)now;
    W->n_wake_failed++;
    W->last = p;
}

static wzp_addr addr(const char *text)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, text, false), 0);
    return a;
}

static int setup(void **state)
{
    (void)state;
    W = calloc(1, sizeof(*W));
    if (!W)
        return -1;
    W->now = WZP_SEC(100);
    W->addr = addr("198.51.100.7:4000");
    W->drop_in_cb = W->enter_in_cb = true;
    wzp_park_config cfg = {.park_after = WZP_SEC(2),
                           .keepalive = WZP_SEC(4),
                           .send = on_send,
                           .idle = on_idle,
                           .accepted = on_accepted,
                           .expired = on_expired,
                           .wake_failed = on_wake_failed,
                           .left = on_left};
    wzp_park_table_init(&W->t, &cfg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wzp_park_table_free(&W->t);
    free(W);
    return 0;
}

static void advance(wzp_ts dt)
{
    wzp_ts end = W->now + dt;
    for (;;) {
        wzp_ts d = wzp_park_next_deadline(&W->t);
        if (d > end)
            break;
        W->now = d > W->now ? d : W->now;
        wzp_park_handle_timer(&W->t, W->now);
    }
    W->now = end;
}

/* A PARK_PING for p, with key (NULL: p's), seq and flags. */
static wzp_park_ping_result ping_flags(const wzp_park *p, const uint8_t *key, uint64_t seq,
                                       uint8_t flags, const char *from)
{
    wzp_park_frame f = {.type = WZP_PARK_FRAME_PING, .seq = seq, .flags = flags};
    memcpy(f.park_id, p->id, WZP_PARK_ID_LEN);
    uint8_t buf[WZP_PARK_FRAME_LEN];
    assert_int_equal(wzp_park_frame_encode(buf, &f, key ? key : p->key), 0);
    wzp_addr a = addr(from);
    return wzp_park_on_ping(&W->t, &a, buf, sizeof(buf), W->now);
}

static wzp_park_ping_result ping(const wzp_park *p, const uint8_t *key, uint64_t seq,
                                 const char *from)
{
    return ping_flags(p, key, seq, 0, from);
}

/* An offer, taken by its first ping: a parked record. */
static wzp_park *parked(void)
{
    wzp_park *p = wzp_park_offer(&W->t, &W->owner, &W->addr, W->now);
    assert_non_null(p);
    W->key = p->key;
    assert_int_equal(ping(p, NULL, 1, "198.51.100.7:4000"), WZP_PARK_PING_OK);
    assert_int_equal(W->n_accepted, 1);
    assert_true(p->parked);
    assert_int_equal(W->t.n_parked, 1);
    return p;
}

static void test_idle_order(void **state)
{
    (void)state;
    wzp_park_idle a = {0}, b = {0};
    wzp_park_idle_touch(&W->t, &a, W->now);
    advance(WZP_SEC(1));
    wzp_park_idle_touch(&W->t, &b, W->now);
    advance(WZP_MS(999));
    assert_int_equal(W->n_idled, 0);
    advance(WZP_MS(1));
    assert_int_equal(W->n_idled, 1);
    assert_ptr_equal(W->idled[0], &a);
    wzp_park_idle_touch(&W->t, &b, W->now); /* activity: its idle time starts again */
    advance(WZP_MS(1999));
    assert_int_equal(W->n_idled, 1);
    advance(WZP_MS(1));
    assert_int_equal(W->n_idled, 2);
    assert_ptr_equal(W->idled[1], &b);
    wzp_park_idle_touch(&W->t, &a, W->now);
    wzp_park_idle_remove(&W->t, &a);
    advance(WZP_SEC(10));
    assert_int_equal(W->n_idled, 2);
    assert_int_equal(wzp_park_next_deadline(&W->t), WZP_TS_NEVER);
}

static void test_ping_verified_and_answered(void **state)
{
    (void)state;
    wzp_park *p = parked();
    assert_int_equal(W->n_out, 1); /* the accepting ping's PONG */
    assert_int_equal(W->out[0].f.type, WZP_PARK_FRAME_PONG);
    assert_int_equal(W->out[0].f.seq, 1);
    assert_true(W->out[0].mac_ok);

    uint8_t wrong[WZP_PARK_KEY_LEN];
    memcpy(wrong, p->key, sizeof(wrong));
    wrong[5] ^= 1;
    assert_int_equal(ping(p, wrong, 2, "198.51.100.7:4000"), WZP_PARK_PING_BAD_MAC);
    assert_int_equal(ping(p, NULL, 1, "198.51.100.7:4000"), WZP_PARK_PING_REPLAY);
    assert_int_equal(W->n_out, 1); /* none of those answered */

    /* A later one, from a new address (NAT rebinding): answered there, the owner moves. */
    assert_int_equal(ping(p, NULL, 7, "203.0.113.9:5555"), WZP_PARK_PING_OK);
    assert_int_equal(W->n_out, 2);
    assert_int_equal(W->out[1].f.seq, 7);
    wzp_addr moved = addr("203.0.113.9:5555");
    assert_true(wzp_addr_equal(&W->out[1].to, &moved));
    assert_true(wzp_addr_equal(&W->addr, &moved));
    assert_int_equal(ping(p, NULL, 7, "203.0.113.9:5555"), WZP_PARK_PING_REPLAY);

    /* Unknown ids and junk: dropped without a word. */
    wzp_park other = *p;
    other.id[0] ^= 0xff;
    assert_int_equal(ping(&other, NULL, 9, "203.0.113.9:5555"), WZP_PARK_PING_UNKNOWN);
    uint8_t junk[WZP_PARK_FRAME_LEN] = {WZP_PARK_FRAME_PING};
    wzp_addr from = addr("203.0.113.9:5555");
    assert_int_equal(wzp_park_on_ping(&W->t, &from, junk, 10, W->now), WZP_PARK_PING_MALFORMED);
    junk[0] = WZP_PARK_FRAME_PONG;
    assert_int_equal(wzp_park_on_ping(&W->t, &from, junk, sizeof(junk), W->now),
                     WZP_PARK_PING_MALFORMED);
    assert_int_equal(W->n_out, 2);
    assert_int_equal(W->t.stats.pings[WZP_PARK_PING_OK], 2);
    assert_int_equal(W->t.stats.pings[WZP_PARK_PING_REPLAY], 2);
    assert_int_equal(W->t.stats.pings[WZP_PARK_PING_BAD_MAC], 1);
    assert_int_equal(W->t.stats.pings[WZP_PARK_PING_UNKNOWN], 1);
    assert_int_equal(W->t.stats.pings[WZP_PARK_PING_MALFORMED], 2);
}

static void test_expiry_without_pings(void **state)
{
    (void)state;
    wzp_park *p = parked();
    /* Pings every keepalive keep it. */
    for (uint64_t seq = 2; seq < 6; seq++) {
        advance(WZP_SEC(4));
        assert_int_equal(ping(p, NULL, seq, "198.51.100.7:4000"), WZP_PARK_PING_OK);
    }
    advance(WZP_MS(11999));
    assert_int_equal(W->n_expired, 0);
    advance(WZP_MS(1)); /* 3 keepalives without a valid ping */
    assert_int_equal(W->n_expired, 1);
    assert_int_equal(W->t.n_parked, 0);
    assert_int_equal(wzp_park_next_deadline(&W->t), WZP_TS_NEVER);
}

/* A BYE ends a parked record at once, unanswered; only a valid, fresh one does. */
static void test_bye_ends_the_record(void **state)
{
    (void)state;
    wzp_park *p = parked();
    uint8_t id[WZP_PARK_ID_LEN];
    memcpy(id, p->id, sizeof(id));
    uint8_t wrong[WZP_PARK_KEY_LEN];
    memcpy(wrong, p->key, sizeof(wrong));
    wrong[0] ^= 1;
    assert_int_equal(ping_flags(p, wrong, 2, WZP_PARK_BYE, "198.51.100.7:4000"),
                     WZP_PARK_PING_BAD_MAC);
    assert_int_equal(ping_flags(p, NULL, 1, WZP_PARK_BYE, "198.51.100.7:4000"),
                     WZP_PARK_PING_REPLAY);
    assert_int_equal(W->n_left, 0);
    assert_int_equal(W->t.n_parked, 1);
    wzp_park copy = *p;
    assert_int_equal(ping_flags(p, NULL, 2, WZP_PARK_BYE, "198.51.100.7:4000"), WZP_PARK_PING_OK);
    assert_int_equal(W->n_left, 1);
    assert_int_equal(W->n_expired, 0);
    assert_int_equal(W->t.n_parked, 0);
    assert_int_equal(W->t.stats.byes, 1);
    assert_int_equal(W->n_out, 1); /* only the first ping's PONG */
    assert_null(wzp_hmap_get(&W->t.by_id, id, sizeof(id)));
    assert_int_equal(wzp_park_next_deadline(&W->t), WZP_TS_NEVER);
    assert_int_equal(ping_flags(&copy, NULL, 3, WZP_PARK_BYE, "198.51.100.7:4000"),
                     WZP_PARK_PING_UNKNOWN);
}

/* A BYE that overtakes the offer's close: the offer counts as taken, then the record ends. */
static void test_bye_on_an_offer(void **state)
{
    (void)state;
    wzp_park *p = wzp_park_offer(&W->t, &W->owner, &W->addr, W->now);
    assert_non_null(p);
    W->key = p->key;
    assert_int_equal(ping_flags(p, NULL, 1, WZP_PARK_BYE, "198.51.100.7:4000"), WZP_PARK_PING_OK);
    assert_int_equal(W->n_accepted, 1);
    assert_int_equal(W->n_left, 1);
    assert_int_equal(W->t.n_parked, 0);
    assert_int_equal(W->n_out, 0);
    assert_int_equal(wzp_park_next_deadline(&W->t), WZP_TS_NEVER);
}

/* A PARK_PING for park `id` under `key` to table t. */
static wzp_park_ping_result raw_ping(wzp_park_table *t, const uint8_t *id, const uint8_t *key,
                                     uint64_t seq, uint8_t flags)
{
    wzp_park_frame f = {.type = WZP_PARK_FRAME_PING, .seq = seq, .flags = flags};
    memcpy(f.park_id, id, WZP_PARK_ID_LEN);
    uint8_t buf[WZP_PARK_FRAME_LEN];
    assert_int_equal(wzp_park_frame_encode(buf, &f, key), 0);
    wzp_addr a = addr("203.0.113.9:5555");
    return wzp_park_on_ping(t, &a, buf, sizeof(buf), W->now);
}

static size_t counted;
static void count_send(void *user, const wzp_addr *to, const uint8_t *frame, size_t len)
{
    (void)user;
    (void)to;
    (void)frame;
    (void)len;
    counted++;
}

/* With a secret, a park's key derives from it: the table of a restarted relay (same secret)
 * answers a ping for a park it never held PONG GONE, and only a ping whose MAC is right. */
static void test_gone_after_restart(void **state)
{
    (void)state;
    static const uint8_t secret[32] = {7, 1, 2};
    wzp_park_config cfg = W->t.cfg;
    cfg.secret = secret;
    wzp_park_table before, after;
    wzp_park_table_init(&before, &cfg);
    wzp_park *p = wzp_park_offer(&before, &W->owner, &W->addr, W->now);
    assert_non_null(p);
    uint8_t id[WZP_PARK_ID_LEN], key[WZP_PARK_KEY_LEN];
    memcpy(id, p->id, sizeof(id));
    memcpy(key, p->key, sizeof(key));
    wzp_park_table_free(&before); /* the relay restarts */
    wzp_park_table_init(&after, &cfg);
    W->key = key;
    assert_int_equal(raw_ping(&after, id, key, 5, 0), WZP_PARK_PING_UNKNOWN);
    assert_int_equal(W->n_out, 1);
    assert_int_equal(W->out[0].f.type, WZP_PARK_FRAME_PONG);
    assert_int_equal(W->out[0].f.flags, WZP_PARK_GONE);
    assert_true(W->out[0].f.seq == 5);
    assert_true(W->out[0].mac_ok);
    wzp_addr from = addr("203.0.113.9:5555");
    assert_true(wzp_addr_equal(&W->out[0].to, &from));
    /* Not for a BYE, a wrong key, or without a secret. */
    assert_int_equal(raw_ping(&after, id, key, 6, WZP_PARK_BYE), WZP_PARK_PING_UNKNOWN);
    uint8_t wrong[WZP_PARK_KEY_LEN];
    memcpy(wrong, key, sizeof(wrong));
    wrong[9] ^= 1;
    assert_int_equal(raw_ping(&after, id, wrong, 7, 0), WZP_PARK_PING_UNKNOWN);
    assert_int_equal(raw_ping(&W->t, id, key, 8, 0), WZP_PARK_PING_UNKNOWN);
    assert_int_equal(W->n_out, 1);
    assert_int_equal(after.stats.gone_sent, 1);
    /* At most WZP_PARK_GONE_RATE a second, a second's worth at once. */
    after.cfg.send = count_send;
    counted = 0;
    for (int i = 0; i < 2 * WZP_PARK_GONE_RATE; i++)
        raw_ping(&after, id, key, 100, 0);
    assert_true(counted >= WZP_PARK_GONE_RATE - 1 && counted <= WZP_PARK_GONE_RATE + 1);
    assert_true(after.stats.gone_limited >= WZP_PARK_GONE_RATE - 1);
    W->now += WZP_MS(100); /* a tenth of a second more */
    size_t before_count = counted;
    for (int i = 0; i < WZP_PARK_GONE_RATE; i++)
        raw_ping(&after, id, key, 100, 0);
    assert_true(counted - before_count >= WZP_PARK_GONE_RATE / 10 - 1 &&
                counted - before_count <= WZP_PARK_GONE_RATE / 10 + 1);
    wzp_park_table_free(&after);
}

static void test_offer_lapses(void **state)
{
    (void)state;
    W->drop_in_cb = false;
    wzp_park *p = wzp_park_offer(&W->t, &W->owner, &W->addr, W->now);
    assert_non_null(p);
    assert_false(p->parked);
    advance(WZP_PARK_OFFER_FOR - 1);
    assert_int_equal(W->n_expired, 0);
    advance(1);
    assert_int_equal(W->n_expired, 1);
    assert_ptr_equal(W->last, p);
    assert_false(p->parked);
    wzp_park_drop(&W->t, p);
    /* The owner may also take an offer by the connection's close. */
    p = wzp_park_offer(&W->t, &W->owner, &W->addr, W->now);
    wzp_park_enter(&W->t, p, W->now);
    assert_int_equal(W->t.n_parked, 1);
    advance(WZP_SEC(5));
    assert_int_equal(W->n_expired, 1); /* parked now: 3 keepalives, not the offer's 2 s */
    wzp_park_drop(&W->t, p);
    assert_int_equal(W->t.n_parked, 0);
}

static void test_wake_repeats_then_gives_up(void **state)
{
    (void)state;
    wzp_park *p = parked();
    W->n_out = 0;
    wzp_park_wake(&W->t, p, false, W->now);
    assert_int_equal(W->n_out, 1);
    assert_int_equal(W->out[0].f.type, WZP_PARK_FRAME_WAKE);
    assert_int_equal(W->out[0].f.flags, 0);
    assert_true(W->out[0].mac_ok);
    wzp_park_wake(&W->t, p, false, W->now); /* already waking: nothing more */
    assert_int_equal(W->n_out, 1);
    advance(WZP_MS(250));
    assert_int_equal(W->n_out, 2);
    assert_true(W->out[1].f.seq > W->out[0].f.seq);
    /* A ping meanwhile gets its PONG and another WAKE at the fresh address. */
    assert_int_equal(ping(p, NULL, 2, "198.51.100.7:4001"), WZP_PARK_PING_OK);
    assert_int_equal(W->n_out, 4);
    assert_int_equal(W->out[2].f.type, WZP_PARK_FRAME_PONG);
    assert_int_equal(W->out[3].f.type, WZP_PARK_FRAME_WAKE);
    advance(WZP_PARK_WAKE_FOR - WZP_MS(250) - 1);
    assert_int_equal(W->n_wake_failed, 0);
    size_t wakes = 0;
    for (size_t i = 0; i < W->n_out; i++)
        wakes += W->out[i].f.type == WZP_PARK_FRAME_WAKE;
    assert_int_equal(wakes, 13); /* every 250 ms for 3 s, and the one for the ping */
    advance(1);
    assert_int_equal(W->n_wake_failed, 1);
    assert_false(p->wake.linked);
    assert_true(p->parked); /* it stays parked */
    assert_int_equal(W->t.stats.wakes_failed, 1);
    /* Rehome: the flag on every WAKE, also one added to a wake under way. */
    W->n_out = 0;
    wzp_park_wake(&W->t, p, false, W->now);
    wzp_park_wake(&W->t, p, true, W->now);
    assert_int_equal(W->n_out, 2);
    assert_int_equal(W->out[1].f.flags, WZP_PARK_REHOME);
    advance(WZP_MS(250));
    assert_int_equal(W->out[2].f.flags, WZP_PARK_REHOME);
    /* Dropped while waking: no more WAKEs, no callbacks. */
    wzp_park_drop(&W->t, p);
    size_t n = W->n_out;
    advance(WZP_SEC(10));
    assert_int_equal(W->n_out, n);
    assert_int_equal(W->n_wake_failed, 1);
}

static void test_unparked_only_is_not_woken(void **state)
{
    (void)state;
    wzp_park *p = wzp_park_offer(&W->t, &W->owner, &W->addr, W->now);
    wzp_park_wake(&W->t, p, false, W->now); /* only offered: it still has its connection */
    assert_int_equal(W->n_out, 0);
    assert_false(p->wake.linked);
}

WZP_TEST_MAIN_EACH(NULL, NULL, setup, teardown, test_idle_order, test_ping_verified_and_answered,
                   test_expiry_without_pings, test_bye_ends_the_record, test_bye_on_an_offer,
                   test_gone_after_restart, test_offer_lapses, test_wake_repeats_then_gives_up,
                   test_unparked_only_is_not_woken)
