/*
 * Two relay control planes of one cluster wired together in memory on a
 * virtual clock: the test plays Redis (presence, alias claims, locating) and
 * carries relay-to-relay messages through the real codec under the cluster
 * key. A call between keys registered on different relays: offer, ringing,
 * answer, candidate updates, every way it ends, channels on both relays;
 * what the cluster refuses (another relay's messages, forged ones); alias
 * claims; a key registering elsewhere. A call's end moving to another relay (Reattach):
 * checked against the call's record, paired through a re-pointed link or locally, refused
 * for any other key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "relay/cluster_msg.h"
#include "relay/control.h"
#include "wire/park_frame.h"
#include "wire/signal.h"

#define RELAYS   3 /* the third only forges messages */
#define CONNS    4 /* per relay, handles 1..CONNS */
#define MSGS     32
#define INFLIGHT 16

typedef struct conn_rec {
    wzp_sig_msg msgs[MSGS];
    size_t n;
    bool closed;
} conn_rec;

typedef struct relay {
    int idx;
    wzp_relay_control *rc;
    uint8_t id[WZP_CLUSTER_ID_LEN];
    wzp_addr fwd;
    conn_rec conns[CONNS + 1];
    /* channels: the last pair opened, peer ids set, pairs still open */
    uint32_t next_chan;
    uint32_t peer_of[64];
    int open_pairs;
    /* requests to the "store", answered by pump() */
    uint32_t moved_to[64]; /* channel -> last octet of the address it was moved to */
    struct {
        bool locate, reattach;
        int end;
        uint64_t request_id;
        uint8_t call_id[WZP_SIG_CALL_ID_LEN];
        bool by_alias;
        uint8_t fp[WZP_SIG_FP_LEN];
        wzp_sig_alias alias;
        uint64_t conn;
    } req[INFLIGHT];
    size_t n_req;
} relay;

static relay R[RELAYS];
static wzp_ts now;
static const wzp_cluster_key KEY = {.k = "unit-test-cluster-key-0123456789", .len = 32};
static bool store_down;
/* "Redis": presence and aliases */
static struct {
    uint8_t fp[WZP_SIG_FP_LEN];
    int relay; /* -1: none */
    wzp_sig_alias alias;
} store[8];
/* relay-to-relay messages in flight (encoded) */
static struct {
    uint8_t buf[WZP_CLUSTER_MAX_SIZE];
    size_t len;
    int to;
} wire[64];
static size_t n_wire;
/* "Redis": call records */
static struct {
    bool live;
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    uint8_t fp[2][WZP_SIG_FP_LEN];
    int relay[2];
} calls[4];

static int relay_by_id(const uint8_t *id)
{
    for (int i = 0; i < RELAYS; i++)
        if (!memcmp(R[i].id, id, WZP_CLUSTER_ID_LEN))
            return i;
    return -1;
}

static int store_slot(const uint8_t *fp, bool add)
{
    for (int i = 0; i < 8; i++)
        if (!memcmp(store[i].fp, fp, WZP_SIG_FP_LEN))
            return i;
    for (int i = 0; add && i < 8; i++)
        if (store[i].relay < 0 && !store[i].alias[0]) {
            memcpy(store[i].fp, fp, WZP_SIG_FP_LEN);
            return i;
        }
    return -1;
}

/* ---- control plane callbacks ---- */

static void cb_send(void *user, uint64_t conn, const uint8_t *msg, size_t len)
{
    relay *r = user;
    assert_true(conn >= 1 && conn <= CONNS);
    conn_rec *c = &r->conns[conn];
    assert_true(c->n < MSGS);
    assert_int_equal(wzp_sig_decode(msg, len, &c->msgs[c->n]), 0);
    c->n++;
}

static void cb_close(void *user, uint64_t conn, wzp_relay_close_code code, const char *why)
{
    relay *r = user;
    r->conns[conn].closed = true;
}

static int cb_open(void *user, uint64_t call, uint64_t a, const wzp_addr *aa, uint64_t b,
                   const wzp_addr *ab, wzp_ts t, uint32_t *ca, uint32_t *cb)
{
    relay *r = user;
    *ca = ++r->next_chan;
    *cb = ++r->next_chan;
    r->open_pairs++;
    return 0;
}

static void cb_chan_close(void *user, uint32_t a, uint32_t b)
{
    ((relay *)user)->open_pairs--;
}

static void cb_peer(void *user, uint32_t chan, uint32_t peer)
{
    relay *r = user;
    assert_true(chan < 64);
    r->peer_of[chan] = peer;
}

static void cb_claim(void *user, uint64_t conn, const uint8_t *fp, const char *alias)
{
    relay *r = user;
    assert_true(r->n_req < INFLIGHT);
    r->req[r->n_req].locate = false;
    r->req[r->n_req].reattach = false;
    r->req[r->n_req].conn = conn;
    memcpy(r->req[r->n_req].fp, fp, WZP_SIG_FP_LEN);
    snprintf(r->req[r->n_req].alias, sizeof(r->req[0].alias), "%s", alias);
    r->n_req++;
}

static void cb_presence(void *user, const uint8_t *fp, const char *alias, bool up)
{
    relay *r = user;
    if (store_down)
        return;
    int i = store_slot(fp, up);
    if (i < 0)
        return;
    if (up) {
        int prev = store[i].relay;
        store[i].relay = r->idx;
        if (prev >= 0 && prev != r->idx) { /* the cluster layer's KICK */
            wzp_cluster_msg k = {.kind = WZP_CLUSTER_KICK, .ts_ms = 1000};
            memcpy(k.from, r->id, WZP_CLUSTER_ID_LEN);
            memcpy(k.to, R[prev].id, WZP_CLUSTER_ID_LEN);
            memcpy(k.fp, fp, WZP_SIG_FP_LEN);
            wire[n_wire].to = prev;
            int n = wzp_cluster_msg_encode(&k, &KEY, wire[n_wire].buf, sizeof(wire[0].buf));
            assert_true(n > 0);
            wire[n_wire++].len = (size_t)n;
        }
    } else if (store[i].relay == r->idx) {
        store[i].relay = -1;
    }
}

static void cb_locate(void *user, const uint8_t *call_id, bool by_alias, const uint8_t *fp,
                      const char *alias)
{
    relay *r = user;
    assert_true(r->n_req < INFLIGHT);
    r->req[r->n_req].locate = true;
    r->req[r->n_req].reattach = false;
    memcpy(r->req[r->n_req].call_id, call_id, WZP_SIG_CALL_ID_LEN);
    r->req[r->n_req].by_alias = by_alias;
    memcpy(r->req[r->n_req].fp, fp, WZP_SIG_FP_LEN);
    snprintf(r->req[r->n_req].alias, sizeof(r->req[0].alias), "%s", alias);
    r->n_req++;
}

static void cb_moved(void *user, uint32_t chan, const wzp_addr *a)
{
    relay *r = user;
    size_t n;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    assert_true(chan < 64 && ip && n == 4);
    r->moved_to[chan] = ip[3];
}

static int call_slot(const uint8_t *id, bool add)
{
    for (int i = 0; i < 4; i++)
        if (calls[i].live && !memcmp(calls[i].id, id, WZP_SIG_CALL_ID_LEN))
            return i;
    for (int i = 0; add && i < 4; i++)
        if (!calls[i].live)
            return i;
    return -1;
}

static void cb_call_record(void *user, const uint8_t *id, const uint8_t *fa, const uint8_t *ra,
                           const uint8_t *fb, const uint8_t *rb, bool live)
{
    relay *r = user;
    int i = call_slot(id, live);
    if (i < 0)
        return;
    calls[i].live = live;
    memcpy(calls[i].id, id, WZP_SIG_CALL_ID_LEN);
    memcpy(calls[i].fp[0], fa, WZP_SIG_FP_LEN);
    memcpy(calls[i].fp[1], fb, WZP_SIG_FP_LEN);
    calls[i].relay[0] = ra ? relay_by_id(ra) : r->idx;
    calls[i].relay[1] = rb ? relay_by_id(rb) : r->idx;
}

static void cb_reattach(void *user, uint64_t conn, uint64_t req, const uint8_t *id, int end,
                        const uint8_t *fp)
{
    relay *r = user;
    assert_true(r->n_req < INFLIGHT);
    memset(&r->req[r->n_req], 0, sizeof(r->req[0]));
    r->req[r->n_req].reattach = true;
    r->req[r->n_req].end = end;
    r->req[r->n_req].conn = conn;
    r->req[r->n_req].request_id = req;
    memcpy(r->req[r->n_req].call_id, id, WZP_SIG_CALL_ID_LEN);
    memcpy(r->req[r->n_req].fp, fp, WZP_SIG_FP_LEN);
    r->n_req++;
}

static void cb_cluster_send(void *user, wzp_cluster_msg *m)
{
    relay *r = user;
    memcpy(m->from, r->id, WZP_CLUSTER_ID_LEN);
    m->ts_ms = 1000;
    int to = relay_by_id(m->to);
    assert_true(to >= 0 && to != r->idx);
    int n = wzp_cluster_msg_encode(m, &KEY, wire[n_wire].buf, sizeof(wire[0].buf));
    assert_true(n > 0);
    wire[n_wire].len = (size_t)n;
    wire[n_wire++].to = to;
}

/* Answers the store requests and delivers relay-to-relay messages until all is quiet. */
static void pump(void)
{
    for (bool busy = true; busy;) {
        busy = false;
        for (int i = 0; i < RELAYS; i++) {
            relay *r = &R[i];
            while (r->n_req) {
                busy = true;
                __typeof__(r->req[0]) q = r->req[0];
                memmove(r->req, r->req + 1, --r->n_req * sizeof(r->req[0]));
                if (q.reattach) { /* as LUA_REATTACH in src/relay/cluster.c */
                    int k = call_slot(q.call_id, false);
                    if (k < 0 || memcmp(calls[k].fp[q.end], q.fp, WZP_SIG_FP_LEN)) {
                        wzp_relay_control_reattach_found(r->rc, q.conn, q.request_id, q.call_id,
                                                         q.end, WZP_RELAY_CLUSTER_NOT_FOUND, q.fp,
                                                         r->id, &r->fwd, now);
                        continue;
                    }
                    calls[k].relay[q.end] = i;
                    int o = calls[k].relay[!q.end];
                    wzp_relay_control_reattach_found(r->rc, q.conn, q.request_id, q.call_id, q.end,
                                                     WZP_RELAY_CLUSTER_OK, calls[k].fp[!q.end],
                                                     R[o].id, &R[o].fwd, now);
                    continue;
                }
                if (!q.locate) {
                    int s = -1;
                    for (int k = 0; k < 8; k++)
                        if (!strcmp(store[k].alias, q.alias))
                            s = k;
                    wzp_relay_cluster_result res =
                        store_down ? WZP_RELAY_CLUSTER_UNAVAILABLE
                        : s >= 0 && memcmp(store[s].fp, q.fp, WZP_SIG_FP_LEN)
                            ? WZP_RELAY_CLUSTER_TAKEN
                            : WZP_RELAY_CLUSTER_OK;
                    if (res == WZP_RELAY_CLUSTER_OK) {
                        int k = store_slot(q.fp, true);
                        snprintf(store[k].alias, sizeof(store[k].alias), "%s", q.alias);
                    }
                    wzp_relay_control_claim_done(r->rc, q.conn, q.alias, res, now);
                    continue;
                }
                int s = -1;
                for (int k = 0; k < 8; k++)
                    if (q.by_alias ? !strcmp(store[k].alias, q.alias)
                                   : !memcmp(store[k].fp, q.fp, WZP_SIG_FP_LEN))
                        s = k;
                if (store_down)
                    wzp_relay_control_located(r->rc, q.call_id, WZP_RELAY_CLUSTER_UNAVAILABLE, q.fp,
                                              r->id, &r->fwd, now);
                else if (s < 0 || store[s].relay < 0 || store[s].relay == i)
                    wzp_relay_control_located(r->rc, q.call_id, WZP_RELAY_CLUSTER_NOT_FOUND, q.fp,
                                              r->id, &r->fwd, now);
                else
                    wzp_relay_control_located(r->rc, q.call_id, WZP_RELAY_CLUSTER_OK, store[s].fp,
                                              R[store[s].relay].id, &R[store[s].relay].fwd, now);
            }
        }
        if (n_wire) {
            busy = true;
            int to = wire[0].to;
            uint8_t buf[WZP_CLUSTER_MAX_SIZE];
            size_t len = wire[0].len;
            memcpy(buf, wire[0].buf, len);
            memmove(wire, wire + 1, --n_wire * sizeof(wire[0]));
            wzp_cluster_msg m;
            assert_int_equal(wzp_cluster_msg_decode(buf, len, &KEY, R[to].id, 1000, &m), 0);
            wzp_relay_control_on_cluster(R[to].rc, &m, now);
        }
    }
}

/* ---- clients ---- */

static uint8_t FP[RELAYS][CONNS + 1][WZP_SIG_FP_LEN];

/* A client's message; with answer, the store and the other relays act on it at once. */
static void client_send_ex(int ri, uint64_t conn, const wzp_sig_msg *m, bool answer)
{
    uint8_t buf[WZP_SIG_MAX_SIZE];
    int n = wzp_sig_encode(m, buf, sizeof(buf));
    assert_true(n > 0);
    wzp_relay_control_on_message(R[ri].rc, conn, buf, (size_t)n, now);
    if (answer)
        pump();
}

static void client_send(int ri, uint64_t conn, const wzp_sig_msg *m)
{
    client_send_ex(ri, conn, m, true);
}

static const wzp_sig_msg *last(int ri, uint64_t conn)
{
    conn_rec *c = &R[ri].conns[conn];
    return c->n ? &c->msgs[c->n - 1] : NULL;
}

static const wzp_sig_msg *find(int ri, uint64_t conn, wzp_sig_type t)
{
    conn_rec *c = &R[ri].conns[conn];
    for (size_t i = c->n; i-- > 0;)
        if (c->msgs[i].type == t)
            return &c->msgs[i];
    return NULL;
}

/* Connection `conn` on relay ri, with key fp, registers alias. */
static void reg_as(int ri, uint64_t conn, const uint8_t *fp, const char *alias, bool answer)
{
    wzp_addr a;
    char text[32];
    snprintf(text, sizeof(text), "10.0.%d.%d:5000", ri, (int)conn);
    wzp_addr_parse(&a, text, false);
    memcpy(FP[ri][conn], fp, WZP_SIG_FP_LEN);
    assert_int_equal(wzp_relay_control_on_connect(R[ri].rc, conn, fp, &a, now), 0);
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_REGISTER, 1);
    snprintf(m.u.reg.alias, sizeof(m.u.reg.alias), "%s", alias);
    client_send_ex(ri, conn, &m, answer);
}

/* ... with a key of its own. */
static void reg(int ri, uint64_t conn, const char *alias)
{
    uint8_t fp[WZP_SIG_FP_LEN];
    memset(fp, 0x10 * (ri + 1) + (int)conn, WZP_SIG_FP_LEN);
    reg_as(ri, conn, fp, alias, true);
}

static void offer(int ri, uint64_t conn, const char *alias, const uint8_t *fp)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_OFFER, 77);
    m.u.offer.by_alias = alias != NULL;
    if (alias)
        snprintf(m.u.offer.callee_alias, sizeof(m.u.offer.callee_alias), "%s", alias);
    else
        memcpy(m.u.offer.callee_fp, fp, WZP_SIG_FP_LEN);
    m.u.offer.params.max_bitrate = 11111;
    client_send(ri, conn, &m);
}

static void call_msg(int ri, uint64_t conn, wzp_sig_type t, const uint8_t *id)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, t, 9);
    if (t == WZP_SIG_ACCEPT) {
        memcpy(m.u.accept.call_id, id, WZP_SIG_CALL_ID_LEN);
        m.u.accept.params.max_bitrate = 22222;
    } else if (t == WZP_SIG_HANGUP) {
        memcpy(m.u.end.call_id, id, WZP_SIG_CALL_ID_LEN);
        m.u.end.reason = WZP_SIG_END_HANGUP;
    } else if (t == WZP_SIG_CANDIDATES_UPDATE) {
        memcpy(m.u.update.call_id, id, WZP_SIG_CALL_ID_LEN);
        m.u.update.cands.n = 1;
        m.u.update.cands.c[0].type = WZP_SIG_CAND_HOST;
        m.u.update.cands.c[0].priority = 5;
        wzp_addr_parse(&m.u.update.cands.c[0].addr, "192.0.2.7:7000", false);
    } else {
        memcpy(m.u.call.call_id, id, WZP_SIG_CALL_ID_LEN);
    }
    client_send(ri, conn, &m);
}

static size_t n_wakes; /* WAKE frames any relay sent */

static void cb_park_send(void *user, const wzp_addr *to, const uint8_t *frame, size_t len)
{
    (void)user;
    (void)to;
    n_wakes += len == WZP_PARK_FRAME_LEN && frame[0] == WZP_PARK_FRAME_WAKE;
}

/* Relay i's control plane; parking: it offers Park after 2 s idle. */
static int relay_new(int i, bool parking)
{
    relay *r = &R[i];
    wzp_relay_control_config cfg;
    wzp_relay_control_config_default(&cfg);
    cfg.cluster_addr = r->fwd;
    cfg.cb = (wzp_relay_control_callbacks){.send = cb_send,
                                           .close = cb_close,
                                           .channels_open = cb_open,
                                           .channels_close = cb_chan_close,
                                           .channel_peer = cb_peer,
                                           .channel_moved = cb_moved,
                                           .call_record = cb_call_record,
                                           .reattach_lookup = cb_reattach,
                                           .claim_alias = cb_claim,
                                           .presence = cb_presence,
                                           .locate = cb_locate,
                                           .cluster_send = cb_cluster_send,
                                           .park_send = parking ? cb_park_send : NULL};
    cfg.user = r;
    return wzp_relay_control_new(&r->rc, &cfg) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    memset(R, 0, sizeof(R));
    n_wakes = 0;
    memset(store, 0, sizeof(store));
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < 8; i++)
        store[i].relay = -1;
    n_wire = 0;
    now = WZP_SEC(100);
    store_down = false;
    for (int i = 0; i < RELAYS; i++) {
        relay *r = &R[i];
        r->idx = i;
        memset(r->id, 0xa0 + i, WZP_CLUSTER_ID_LEN);
        char text[32];
        snprintf(text, sizeof(text), "192.0.2.%d:4433", i + 1);
        wzp_addr_parse(&r->fwd, text, false);
        if (relay_new(i, false) != 0)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < RELAYS; i++)
        wzp_relay_control_free(R[i].rc);
    return 0;
}

/* alice (relay 0, conn 1) rings bob (relay 1, conn 1) by alias; returns the call id. */
static void ring_bob(uint8_t id[WZP_SIG_CALL_ID_LEN])
{
    reg(0, 1, "alice");
    reg(1, 1, "bob");
    assert_int_equal(last(0, 1)->type, WZP_SIG_REGISTERED);
    assert_int_equal(last(1, 1)->type, WZP_SIG_REGISTERED);
    offer(0, 1, "bob", NULL);
    const wzp_sig_msg *in = last(1, 1);
    assert_non_null(in);
    assert_int_equal(in->type, WZP_SIG_INCOMING_CALL);
    assert_memory_equal(in->u.incoming.caller_fp, FP[0][1], WZP_SIG_FP_LEN);
    assert_string_equal(in->u.incoming.caller_alias, "alice");
    const wzp_sig_msg *rg = last(0, 1);
    assert_int_equal(rg->type, WZP_SIG_RINGING);
    assert_int_equal(rg->request_id, 77);
    assert_memory_equal(rg->u.ringing.callee_fp, FP[1][1], WZP_SIG_FP_LEN);
    assert_memory_equal(rg->u.ringing.call_id, in->u.incoming.call_id, WZP_SIG_CALL_ID_LEN);
    /* each relay's link channel carries the other relay's id for the call */
    assert_int_equal(R[0].open_pairs, 1);
    assert_int_equal(R[1].open_pairs, 1);
    uint32_t link0 = 2, link1 = 1; /* caller relay: (alice, link); callee relay: (link, bob) */
    assert_int_equal(R[0].peer_of[link0], link1);
    assert_int_equal(R[1].peer_of[link1], link0);
    memcpy(id, in->u.incoming.call_id, WZP_SIG_CALL_ID_LEN);
}

static void test_cross_call_answer_update_hangup(void **state)
{
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    ring_bob(id);
    call_msg(1, 1, WZP_SIG_ACCEPT, id);
    const wzp_sig_msg *sa = find(0, 1, WZP_SIG_CALL_SETUP), *sb = find(1, 1, WZP_SIG_CALL_SETUP);
    assert_non_null(sa);
    assert_non_null(sb);
    assert_int_equal(sa->u.setup.peer_params.max_bitrate, 22222); /* bob's answer */
    assert_int_equal(sb->u.setup.peer_params.max_bitrate, 11111); /* alice's offer */
    assert_memory_equal(sa->u.setup.peer_fp, FP[1][1], WZP_SIG_FP_LEN);
    assert_string_equal(sa->u.setup.peer_alias, "bob");
    assert_int_equal(sa->u.setup.relay_channel, 1);
    assert_int_equal(sb->u.setup.relay_channel, 2);
    call_msg(0, 1, WZP_SIG_CANDIDATES_UPDATE, id);
    assert_int_equal(last(1, 1)->type, WZP_SIG_CANDIDATES_UPDATE);
    assert_int_equal(last(1, 1)->u.update.cands.n, 1);
    call_msg(0, 1, WZP_SIG_HANGUP, id);
    assert_int_equal(last(1, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(last(1, 1)->u.end.reason, WZP_SIG_END_HANGUP);
    assert_int_equal(wzp_relay_control_num_calls(R[0].rc), 0);
    assert_int_equal(wzp_relay_control_num_calls(R[1].rc), 0);
    assert_int_equal(R[0].open_pairs, 0);
    assert_int_equal(R[1].open_pairs, 0);
}

static void test_cross_call_reject_and_peer_gone(void **state)
{
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    ring_bob(id);
    call_msg(1, 1, WZP_SIG_REJECT, id);
    assert_int_equal(last(0, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(last(0, 1)->u.end.reason, WZP_SIG_END_REJECTED);
    assert_int_equal(wzp_relay_control_num_calls(R[0].rc), 0);
    /* again, answered; then bob's connection drops */
    offer(0, 1, "bob", NULL);
    memcpy(id, last(1, 1)->u.incoming.call_id, WZP_SIG_CALL_ID_LEN);
    call_msg(1, 1, WZP_SIG_ACCEPT, id);
    wzp_relay_control_on_disconnect(R[1].rc, 1, now);
    pump();
    assert_int_equal(last(0, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(last(0, 1)->u.end.reason, WZP_SIG_END_PEER_GONE);
    assert_int_equal(R[0].open_pairs + R[1].open_pairs, 0);
    /* bob is gone from the store: calling him now finds nobody */
    offer(0, 1, "bob", NULL);
    assert_int_equal(last(0, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(last(0, 1)->u.end.reason, WZP_SIG_END_UNKNOWN_PEER);
    assert_int_equal(last(0, 1)->request_id, 77);
    assert_int_equal(wzp_relay_control_num_calls(R[0].rc), 0);
}

static void test_cross_call_expires_on_both(void **state)
{
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    ring_bob(id);
    now += WZP_SEC(61);
    wzp_relay_control_handle_timer(R[0].rc, now);
    pump();
    assert_int_equal(last(1, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(last(1, 1)->u.end.reason, WZP_SIG_END_EXPIRED);
    assert_int_equal(wzp_relay_control_num_calls(R[1].rc), 0);
    /* the other relay's own timer then finds nothing to do */
    wzp_relay_control_handle_timer(R[1].rc, now);
    pump();
    assert_int_equal(R[0].open_pairs + R[1].open_pairs, 0);
}

static void test_store_down(void **state)
{
    reg(0, 1, "alice");
    reg(1, 1, "bob");
    store_down = true;
    offer(0, 1, "bob", NULL);
    const wzp_sig_msg *e = find(0, 1, WZP_SIG_ERROR);
    assert_non_null(e);
    assert_non_null(strstr(e->u.error.text, "cluster store unreachable"));
    assert_int_equal(last(0, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(last(0, 1)->u.end.reason, WZP_SIG_END_ERROR);
    /* a call within one relay needs no store */
    reg(0, 2, "");
    offer(0, 2, "alice", NULL);
    assert_int_equal(last(0, 1)->type, WZP_SIG_INCOMING_CALL);
    /* a new alias cannot be bound; the one this relay holds for its key can */
    reg(0, 3, "dave");
    assert_int_equal(last(0, 3)->type, WZP_SIG_ERROR);
    wzp_relay_control_on_disconnect(R[1].rc, 1, now);
    reg(1, 1, "bob");
    assert_int_equal(last(1, 1)->type, WZP_SIG_REGISTERED);
}

static void test_alias_one_key_cluster_wide(void **state)
{
    reg(1, 1, "bob");
    /* another key asks for "bob" on relay 0: refused after the claim */
    reg(0, 2, "bob");
    assert_int_equal(last(0, 2)->type, WZP_SIG_ERROR);
    assert_int_equal(last(0, 2)->u.error.code, WZP_SIG_ERR_ALIAS_TAKEN);
    wzp_relay_control_stats st;
    wzp_relay_control_get_stats(R[0].rc, &st);
    assert_int_equal(st.claims_refused, 1);
    /* the connection that waited is gone before the answer: nothing happens */
    uint8_t fp[WZP_SIG_FP_LEN];
    memset(fp, 0x77, sizeof(fp));
    reg_as(0, 3, fp, "zed", false);
    wzp_relay_control_on_disconnect(R[0].rc, 3, now);
    pump();
    assert_int_equal(R[0].conns[3].n, 0);
}

static void test_key_moves_to_another_relay(void **state)
{
    reg(0, 1, "frank");
    reg_as(1, 4, FP[0][1], "frank", true);
    assert_int_equal(last(1, 4)->type, WZP_SIG_REGISTERED);
    assert_true(R[0].conns[1].closed);
    assert_int_equal(wzp_relay_control_num_registrations(R[0].rc), 0);
}

static void test_callee_relay_gone(void **state)
{
    reg(0, 1, "alice");
    reg(1, 1, "bob");
    /* relay 1 dies: its presence stays in the store, its OFFER reaches nobody */
    offer(0, 1, "bob", NULL);
    assert_int_equal(last(1, 1)->type, WZP_SIG_INCOMING_CALL);
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    memcpy(id, last(1, 1)->u.incoming.call_id, sizeof(id));
    /* (here it was heard; the transport reports an unheard one like this) */
    wzp_relay_control_offer_unheard(R[0].rc, id, now);
    assert_int_equal(wzp_relay_control_num_calls(R[0].rc), 1); /* rang already: not this */
    call_msg(1, 1, WZP_SIG_REJECT, id);
    n_wire = 0;
    R[1].n_req = 0;
    /* now an OFFER that nobody hears */
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_OFFER, 78);
    m.u.offer.by_alias = true;
    snprintf(m.u.offer.callee_alias, sizeof(m.u.offer.callee_alias), "bob");
    client_send_ex(0, 1, &m, false);
    const uint8_t *cid = R[0].req[0].call_id;
    uint8_t call_id[WZP_SIG_CALL_ID_LEN];
    memcpy(call_id, cid, sizeof(call_id));
    R[0].n_req = 0;
    wzp_relay_control_located(R[0].rc, call_id, WZP_RELAY_CLUSTER_OK, FP[1][1], R[1].id, &R[1].fwd,
                              now);
    n_wire = 0; /* lost: relay 1 is gone */
    wzp_relay_control_offer_unheard(R[0].rc, call_id, now);
    assert_int_equal(last(0, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(last(0, 1)->u.end.reason, WZP_SIG_END_OFFLINE);
    assert_int_equal(last(0, 1)->request_id, 78);
    assert_int_equal(wzp_relay_control_num_calls(R[0].rc), 0);
    assert_int_equal(R[0].open_pairs, 0);
    assert_int_equal(n_wire, 0); /* nothing more sent to the dead relay */
}

/* bob is parked on relay 1: alice's call wakes him; she hears Ringing once he has it. */
static void test_cross_call_to_parked_callee(void **state)
{
    (void)state;
    wzp_relay_control_free(R[1].rc);
    assert_int_equal(relay_new(1, true), 0);
    reg(0, 1, "alice");
    reg(1, 1, "bob");
    now += WZP_SEC(2);
    wzp_relay_control_handle_timer(R[1].rc, now);
    assert_int_equal(last(1, 1)->type, WZP_SIG_PARK);
    wzp_relay_control_on_parked(R[1].rc, 1);
    wzp_relay_control_on_disconnect(R[1].rc, 1, now);
    assert_int_equal(wzp_relay_control_num_parked(R[1].rc), 1);

    offer(0, 1, "bob", NULL); /* located by its presence, still there */
    assert_int_equal(n_wakes, 1);
    assert_null(find(0, 1, WZP_SIG_RINGING));
    assert_int_equal(wzp_relay_control_num_calls(R[1].rc), 1);

    reg_as(1, 2, FP[1][1], "bob", true); /* woken: a new connection, the same key */
    assert_int_equal(wzp_relay_control_num_parked(R[1].rc), 0);
    assert_int_equal(R[1].conns[2].msgs[0].type, WZP_SIG_REGISTERED);
    const wzp_sig_msg *in = last(1, 2);
    assert_int_equal(in->type, WZP_SIG_INCOMING_CALL);
    const wzp_sig_msg *rg = find(0, 1, WZP_SIG_RINGING);
    assert_non_null(rg);
    assert_memory_equal(rg->u.ringing.call_id, in->u.incoming.call_id, WZP_SIG_CALL_ID_LEN);
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    memcpy(id, in->u.incoming.call_id, WZP_SIG_CALL_ID_LEN);
    call_msg(1, 2, WZP_SIG_ACCEPT, id);
    assert_non_null(find(0, 1, WZP_SIG_CALL_SETUP));
    assert_non_null(find(1, 2, WZP_SIG_CALL_SETUP));

    /* Parked again and never back: the next caller hears "offline". */
    call_msg(0, 1, WZP_SIG_HANGUP, id);
    now += WZP_SEC(2);
    wzp_relay_control_handle_timer(R[1].rc, now);
    wzp_relay_control_on_parked(R[1].rc, 2);
    wzp_relay_control_on_disconnect(R[1].rc, 2, now);
    offer(0, 1, "bob", NULL);
    for (int k = 0; k < 13; k++) {
        now += WZP_MS(250);
        wzp_relay_control_handle_timer(R[1].rc, now);
        pump();
    }
    const wzp_sig_msg *end = last(0, 1);
    assert_int_equal(end->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(end->u.end.reason, WZP_SIG_END_OFFLINE);
    assert_int_equal(end->request_id, 77);
    assert_int_equal(wzp_relay_control_num_calls(R[0].rc), 0);
    assert_int_equal(wzp_relay_control_num_calls(R[1].rc), 0);
}

static void test_refused_messages(void **state)
{
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    ring_bob(id);
    /* relay 2 shares no call with relay 0: its END for alice's call changes nothing */
    wzp_cluster_msg m = {.kind = WZP_CLUSTER_END, .ts_ms = 1000};
    memcpy(m.from, R[2].id, WZP_CLUSTER_ID_LEN);
    memcpy(m.to, R[0].id, WZP_CLUSTER_ID_LEN);
    memcpy(m.call_id, id, WZP_SIG_CALL_ID_LEN);
    wzp_sig_init(&m.sig, WZP_SIG_CALL_ENDED, 0);
    memcpy(m.sig.u.end.call_id, id, WZP_SIG_CALL_ID_LEN);
    m.sig.u.end.reason = WZP_SIG_END_HANGUP;
    wzp_relay_control_on_cluster(R[0].rc, &m, now);
    assert_int_equal(wzp_relay_control_num_calls(R[0].rc), 1);
    wzp_relay_control_stats st;
    wzp_relay_control_get_stats(R[0].rc, &st);
    assert_int_equal(st.cross_refused, 1);
    /* nor may the callee's relay answer for the caller's side (ACCEPT goes one way) */
    memcpy(m.from, R[0].id, WZP_CLUSTER_ID_LEN);
    memcpy(m.to, R[1].id, WZP_CLUSTER_ID_LEN);
    m.kind = WZP_CLUSTER_ACCEPT;
    wzp_sig_init(&m.sig, WZP_SIG_ACCEPT, 0);
    memcpy(m.sig.u.accept.call_id, id, WZP_SIG_CALL_ID_LEN);
    wzp_relay_control_on_cluster(R[1].rc, &m, now);
    assert_null(find(1, 1, WZP_SIG_CALL_SETUP));
    /* forged or misdirected bytes never decode */
    uint8_t buf[WZP_CLUSTER_MAX_SIZE];
    int n = wzp_cluster_msg_encode(&m, &KEY, buf, sizeof(buf));
    assert_true(n > 0);
    wzp_cluster_msg out;
    wzp_cluster_key other = KEY;
    other.k[0] ^= 1;
    assert_int_equal(wzp_cluster_msg_decode(buf, (size_t)n, &other, R[1].id, 1000, &out),
                     WZP_ERR_PROTOCOL);
    assert_int_equal(wzp_cluster_msg_decode(buf, (size_t)n, &KEY, R[2].id, 1000, &out),
                     WZP_ERR_REJECTED);
    assert_int_equal(wzp_cluster_msg_decode(buf, (size_t)n, &KEY, R[1].id, 1000 + 31000, &out),
                     WZP_ERR_REJECTED);
    buf[10] ^= 1;
    assert_int_equal(wzp_cluster_msg_decode(buf, (size_t)n, &KEY, R[1].id, 1000, &out),
                     WZP_ERR_PROTOCOL);
}

static void reattach(int ri, uint64_t conn, const uint8_t *id, bool caller)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_REATTACH, 55);
    memcpy(m.u.reattach.call_id, id, WZP_SIG_CALL_ID_LEN);
    m.u.reattach.role = caller ? WZP_SIG_ROLE_CALLER : WZP_SIG_ROLE_CALLEE;
    client_send(ri, conn, &m);
}

/* alice (relay 0) and bob (relay 1) in an answered call; its record in the store. */
static void answered(uint8_t id[WZP_SIG_CALL_ID_LEN])
{
    ring_bob(id);
    call_msg(1, 1, WZP_SIG_ACCEPT, id);
    int k = call_slot(id, false);
    assert_true(k >= 0);
    assert_memory_equal(calls[k].fp[0], FP[0][1], WZP_SIG_FP_LEN);
    assert_memory_equal(calls[k].fp[1], FP[1][1], WZP_SIG_FP_LEN);
    assert_int_equal(calls[k].relay[0], 0);
    assert_int_equal(calls[k].relay[1], 1);
}

static void test_reattach_across_relays(void **state)
{
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    answered(id);
    /* Relay 0 goes silent; alice registers on relay 2 (relay 0, told by the KICK, lets go of
     * the call without ending it) and re-attaches her end there. */
    reg_as(2, 1, FP[0][1], "alice", true);
    assert_true(R[0].conns[1].closed);
    assert_int_equal(wzp_relay_control_num_calls(R[0].rc), 0);
    assert_null(find(1, 1, WZP_SIG_CALL_ENDED));
    reattach(2, 1, id, true);
    const wzp_sig_msg *ra = last(2, 1);
    assert_int_equal(ra->type, WZP_SIG_REATTACHED);
    assert_int_equal(ra->request_id, 55);
    assert_memory_equal(ra->u.reattach.call_id, id, WZP_SIG_CALL_ID_LEN);
    /* Relay 2: (alice, link to relay 1); relay 1's link for alice now goes to relay 2's. */
    uint32_t alice_chan = ra->u.reattach.relay_channel, link2 = alice_chan + 1, link1 = 1;
    assert_int_equal(alice_chan, 1);
    assert_int_equal(R[1].moved_to[link1], 3); /* 192.0.2.3: relay 2 */
    assert_int_equal(R[1].peer_of[link1], link2);
    assert_int_equal(R[2].peer_of[link2], link1);
    assert_int_equal(calls[call_slot(id, false)].relay[0], 2);
    /* bob saw nothing; the call goes on: his hang-up reaches alice on relay 2. */
    assert_int_equal(last(1, 1)->type, WZP_SIG_CALL_SETUP);
    call_msg(1, 1, WZP_SIG_HANGUP, id);
    assert_int_equal(last(2, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(last(2, 1)->u.end.reason, WZP_SIG_END_HANGUP);
    assert_int_equal(R[1].open_pairs + R[2].open_pairs, 0);
    assert_int_equal(call_slot(id, false), -1); /* the record is gone */
}

static void test_reattach_both_ends_on_one_relay(void **state)
{
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    answered(id);
    reg_as(2, 1, FP[0][1], "alice", true);
    reattach(2, 1, id, true);
    /* bob follows to relay 2: relay 1 lets go (nobody of the call left there), relay 2 pairs
     * bob with alice locally on the channel its link had. */
    reg_as(2, 2, FP[1][1], "bob", true);
    assert_int_equal(wzp_relay_control_num_calls(R[1].rc), 0);
    reattach(2, 2, id, false);
    const wzp_sig_msg *rb = last(2, 2);
    assert_int_equal(rb->type, WZP_SIG_REATTACHED);
    assert_int_equal(rb->u.reattach.relay_channel, 2);
    assert_int_equal(R[2].moved_to[2], 2); /* bob's address, 10.0.2.2 */
    assert_int_equal(R[2].peer_of[2], 0);  /* a client's channel again, not a link */
    assert_int_equal(R[2].open_pairs, 1);
    call_msg(2, 2, WZP_SIG_HANGUP, id);
    assert_int_equal(last(2, 1)->type, WZP_SIG_CALL_ENDED);
    assert_int_equal(wzp_relay_control_num_calls(R[2].rc), 0);
    assert_int_equal(R[2].open_pairs, 0);
}

static void test_reattach_only_the_ends_key(void **state)
{
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    answered(id);
    /* mallory on relay 2 names alice's call, either end; bob names alice's end on his relay */
    reg(2, 3, "mallory");
    reattach(2, 3, id, true);
    assert_int_equal(last(2, 3)->type, WZP_SIG_ERROR);
    assert_int_equal(last(2, 3)->u.error.code, WZP_SIG_ERR_NO_SUCH_CALL);
    reattach(2, 3, id, false);
    assert_int_equal(last(2, 3)->u.error.code, WZP_SIG_ERR_NO_SUCH_CALL);
    reattach(1, 1, id, true);
    assert_int_equal(last(1, 1)->type, WZP_SIG_ERROR);
    assert_int_equal(last(1, 1)->u.error.code, WZP_SIG_ERR_NO_SUCH_CALL);
    /* alice's key on the wrong end, and a call that does not exist */
    reg_as(2, 1, FP[0][1], "alice", true);
    reattach(2, 1, id, false);
    assert_int_equal(last(2, 1)->u.error.code, WZP_SIG_ERR_NO_SUCH_CALL);
    uint8_t other[WZP_SIG_CALL_ID_LEN] = {1};
    reattach(2, 1, other, true);
    assert_int_equal(last(2, 1)->u.error.code, WZP_SIG_ERR_NO_SUCH_CALL);
    assert_int_equal(wzp_relay_control_num_calls(R[2].rc), 0);
    /* a draining relay takes no re-attachment, and tells its clients to go */
    wzp_relay_control_drain(R[2].rc);
    assert_int_equal(last(2, 1)->type, WZP_SIG_REHOME);
    reattach(2, 1, id, true);
    assert_int_equal(last(2, 1)->type, WZP_SIG_ERROR);
}

WZP_TEST_MAIN_EACH(NULL, NULL, setup, teardown, test_cross_call_answer_update_hangup,
                   test_cross_call_reject_and_peer_gone, test_cross_call_expires_on_both,
                   test_store_down, test_alias_one_key_cluster_wide,
                   test_key_moves_to_another_relay, test_callee_relay_gone, test_refused_messages,
                   test_reattach_across_relays, test_reattach_both_ends_on_one_relay,
                   test_reattach_only_the_ends_key, test_cross_call_to_parked_callee)
