/*
 * The relay control plane and several signaling clients wired together in
 * memory on a virtual clock: registration, reflexive addresses, every way a
 * call starts and ends, replacement of a registration, third parties, abuse.
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

#include "call/signal_client.h"
#include "relay/alias_store.h"
#include "relay/control.h"
#include "wire/park_frame.h"
#include "wire/signal.h"

#define MAX_CLIENTS 8
#define MAX_EVENTS  48
#define RAW_MAX     (64 * 1024)
#define QUEUE_MAX   4096

typedef struct rec_event {
    wzp_sigc_event_type type;
    uint32_t call;
    bool has_id;
    uint8_t call_id[WZP_SIG_CALL_ID_LEN];
    int err;
    wzp_sig_end_reason reason;
    bool has_msg;
    wzp_sig_msg msg;
} rec_event;

typedef struct tclient {
    bool used;
    uint64_t conn;
    uint8_t fp[WZP_SIG_FP_LEN];
    wzp_addr addr;
    wzp_sigc *sc;
    rec_event ev[MAX_EVENTS];
    size_t n_ev;
    uint8_t raw[RAW_MAX]; /* everything the relay sent this client, concatenated */
    size_t raw_len;
    bool closed;
    wzp_relay_close_code close_code;
    size_t n_park; /* Park offers received; the last one: */
    uint8_t park_id[WZP_PARK_ID_LEN], park_key[WZP_PARK_KEY_LEN];
    uint32_t keepalive_ms;
} tclient;

/* A park frame the relay sent (PARK_PONG, WAKE). */
typedef struct park_out {
    wzp_addr to;
    wzp_park_frame f;
} park_out;

typedef struct pending {
    bool to_relay;
    size_t client;
    uint64_t conn;
    uint8_t *data;
    size_t len;
} pending;

static struct world {
    wzp_relay_control *rc;
    wzp_relay_control_config cfg;
    wzp_ts now;
    tclient c[MAX_CLIENTS];
    pending q[QUEUE_MAX];
    size_t qh, qt;
    uint64_t next_conn;
    bool drop_to_relay;
    int open_fail;
    size_t n_open, n_close;
    uint64_t open_conn_a, open_conn_b;
    uint32_t chan_a, chan_b, closed_a, closed_b, next_chan;
    wzp_addr open_addr_a, open_addr_b;
    size_t n_moved;
    uint32_t moved_chan;
    wzp_addr moved_addr;
    park_out frames[64];
    size_t n_frames;
} * W;

enum { A = 0, B = 1, C = 2, D = 3 };

/* ---- plumbing -------------------------------------------------------------- */

/* A snapshot of the control plane's counters. */
static wzp_relay_control_stats rc_stats(const wzp_relay_control *rc)
{
    wzp_relay_control_stats st;
    wzp_relay_control_get_stats(rc, &st);
    return st;
}

static void enqueue(bool to_relay, size_t client, uint64_t conn, const uint8_t *data, size_t len)
{
    assert_true(W->qt - W->qh < QUEUE_MAX);
    pending *p = &W->q[W->qt++ % QUEUE_MAX];
    p->to_relay = to_relay;
    p->client = client;
    p->conn = conn;
    p->data = malloc(len ? len : 1);
    assert_non_null(p->data);
    memcpy(p->data, data, len);
    p->len = len;
}

static tclient *by_conn(uint64_t conn, size_t *idx)
{
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        if (W->c[i].used && W->c[i].conn == conn) {
            *idx = i;
            return &W->c[i];
        }
    }
    return NULL;
}

static void relay_send(void *user, uint64_t conn, const uint8_t *msg, size_t len)
{
    (void)user;
    size_t i;
    tclient *t = by_conn(conn, &i);
    wzp_sig_msg m;
    if (t && wzp_sig_decode(msg, len, &m) == 0 && m.type == WZP_SIG_PARK) {
        t->n_park++;
        memcpy(t->park_id, m.u.park.park_id, WZP_PARK_ID_LEN);
        memcpy(t->park_key, m.u.park.key, WZP_PARK_KEY_LEN);
        t->keepalive_ms = m.u.park.keepalive_ms;
    }
    if (t)
        enqueue(false, i, conn, msg, len);
}

static void park_frame_out(void *user, const wzp_addr *to, const uint8_t *frame, size_t len)
{
    (void)user;
    assert_int_equal(len, WZP_PARK_FRAME_LEN);
    assert_true(W->n_frames < 64);
    park_out *o = &W->frames[W->n_frames++];
    o->to = *to;
    assert_int_equal(wzp_park_frame_peek(&o->f, frame, len), 0);
}

static void relay_close(void *user, uint64_t conn, wzp_relay_close_code code, const char *reason)
{
    (void)user;
    (void)reason;
    size_t i;
    tclient *t = by_conn(conn, &i);
    if (t) {
        t->closed = true;
        t->close_code = code;
    }
}

static int channels_open(void *user, uint64_t call, uint64_t a, const wzp_addr *addr_a, uint64_t b,
                         const wzp_addr *addr_b, wzp_ts now, uint32_t *ca, uint32_t *cb)
{
    (void)user;
    (void)call;
    W->open_addr_a = *addr_a;
    W->open_addr_b = *addr_b;
    if (W->open_fail)
        return WZP_ERR_LIMIT;
    W->n_open++;
    W->open_conn_a = a;
    W->open_conn_b = b;
    *ca = W->chan_a = ++W->next_chan;
    *cb = W->chan_b = ++W->next_chan;
    return 0;
}

static void channels_close(void *user, uint32_t a, uint32_t b)
{
    (void)user;
    W->n_close++;
    W->closed_a = a;
    W->closed_b = b;
}

static void channel_moved(void *user, uint32_t chan, const wzp_addr *a)
{
    (void)user;
    W->n_moved++;
    W->moved_chan = chan;
    W->moved_addr = *a;
}

static void client_send(void *user, const uint8_t *msg, size_t len)
{
    tclient *t = user;
    if (!W->drop_to_relay)
        enqueue(true, (size_t)(t - W->c), t->conn, msg, len);
}

static void client_event(void *user, const wzp_sigc_event *ev)
{
    tclient *t = user;
    assert_true(t->n_ev < MAX_EVENTS);
    rec_event *r = &t->ev[t->n_ev++];
    memset(r, 0, sizeof(*r));
    r->type = ev->type;
    r->call = ev->call;
    if (ev->call_id) {
        r->has_id = true;
        memcpy(r->call_id, ev->call_id, WZP_SIG_CALL_ID_LEN);
    }
    r->err = ev->err;
    r->reason = ev->reason;
    if (ev->msg) {
        r->has_msg = true;
        r->msg = *ev->msg;
    }
}

static void pump(void)
{
    while (W->qh != W->qt) {
        pending p = W->q[W->qh++ % QUEUE_MAX];
        if (p.to_relay) {
            wzp_relay_control_on_message(W->rc, p.conn, p.data, p.len, W->now);
        } else {
            tclient *t = &W->c[p.client];
            assert_true(t->raw_len + p.len <= RAW_MAX);
            memcpy(t->raw + t->raw_len, p.data, p.len);
            t->raw_len += p.len;
            wzp_sigc_on_message(t->sc, p.data, p.len, W->now);
        }
        free(p.data);
    }
}

static void advance_to(wzp_ts t)
{
    W->now = t;
    if (wzp_relay_control_next_deadline(W->rc) <= t)
        wzp_relay_control_handle_timer(W->rc, t);
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        if (W->c[i].used && wzp_sigc_next_deadline(W->c[i].sc) <= t)
            wzp_sigc_handle_timer(W->c[i].sc, t);
    pump();
}

static wzp_addr addr(const char *text)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, text, false), 0);
    return a;
}

/* Client i with identity `idbyte` connects from `from`. */
static void connect_as(size_t i, uint8_t idbyte, const char *from)
{
    tclient *t = &W->c[i];
    if (t->sc)
        wzp_sigc_free(t->sc);
    memset(t, 0, sizeof(*t));
    t->used = true;
    t->conn = ++W->next_conn;
    memset(t->fp, idbyte, sizeof(t->fp));
    t->addr = addr(from);
    wzp_sigc_config scfg;
    wzp_sigc_config_default(&scfg);
    scfg.cb = (wzp_sigc_callbacks){client_send, client_event};
    scfg.user = t;
    assert_int_equal(wzp_sigc_new(&t->sc, &scfg), 0);
    assert_int_equal(wzp_relay_control_on_connect(W->rc, t->conn, t->fp, &t->addr, W->now), 0);
}

static rec_event *last_event(size_t i, wzp_sigc_event_type type)
{
    tclient *t = &W->c[i];
    for (size_t k = t->n_ev; k-- > 0;)
        if (t->ev[k].type == type)
            return &t->ev[k];
    return NULL;
}

static size_t count_events(size_t i, wzp_sigc_event_type type)
{
    size_t n = 0;
    for (size_t k = 0; k < W->c[i].n_ev; k++)
        n += W->c[i].ev[k].type == type;
    return n;
}

static void register_as(size_t i, const char *alias)
{
    size_t before = count_events(i, WZP_SIGC_EV_REGISTERED);
    assert_int_equal(wzp_sigc_register(W->c[i].sc, alias, W->now), 0);
    pump();
    assert_int_equal(count_events(i, WZP_SIGC_EV_REGISTERED), before + 1);
    assert_int_equal(wzp_sigc_reg_state_get(W->c[i].sc), WZP_SIGC_REGISTERED);
}

static void join(size_t i, uint8_t idbyte, const char *from, const char *alias)
{
    connect_as(i, idbyte, from);
    register_as(i, alias);
}

/* Sends a message to the relay as if client i's signaling sent it. */
/* Clients A.. (up to D) connect and register as alice, bob, carol and dave. */
static void join_cast(size_t n)
{
    static const char *const alias[] = {"alice", "bob", "carol", "dave"};
    char from[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(from, sizeof(from), "198.51.100.%zu:40000", i + 1);
        join(A + i, (uint8_t)(0xa1 + 0x11 * i), from, alias[i]);
    }
}

static void send_raw(size_t i, const wzp_sig_msg *m)
{
    uint8_t buf[WZP_SIG_MAX_SIZE];
    int n = wzp_sig_encode(m, buf, sizeof(buf));
    assert_true(n > 0);
    enqueue(true, i, W->c[i].conn, buf, (size_t)n);
    pump();
}

static void send_bytes(size_t i, const uint8_t *p, size_t len)
{
    enqueue(true, i, W->c[i].conn, p, len);
    pump();
}

static bool raw_contains(size_t i, const uint8_t *needle, size_t n)
{
    const tclient *t = &W->c[i];
    for (size_t k = 0; k + n <= t->raw_len; k++)
        if (memcmp(t->raw + k, needle, n) == 0)
            return true;
    return false;
}

/* The caller's candidates in every test: a LAN address and a public one. */
static const uint8_t CALLER_LAN_IP[4] = {10, 99, 0, 5};
static const uint8_t CALLER_PUBLIC_IP[4] = {203, 0, 113, 77};

/* A host candidate (priority p + 100) and a server-reflexive one (priority p). */
static size_t two_cands(wzp_sig_candidate *c, uint32_t p, const char *host, const char *srflx)
{
    memset(c, 0, 2 * sizeof(*c));
    c[0] = (wzp_sig_candidate){.type = WZP_SIG_CAND_HOST, .priority = p + 100, .addr = addr(host)};
    c[1] = (wzp_sig_candidate){.type = WZP_SIG_CAND_SRFLX, .priority = p, .addr = addr(srflx)};
    return 2;
}

static size_t caller_cands(wzp_sig_candidate *c)
{
    return two_cands(c, 100, "10.99.0.5:5000", "203.0.113.77:6000");
}

static size_t callee_cands(wzp_sig_candidate *c)
{
    return two_cands(c, 110, "[fd00::9]:7000", "192.0.2.200:7001");
}

static void params(wzp_sig_params *p, uint32_t version)
{
    memset(p, 0, sizeof(*p));
    p->media_version = version;
    p->codecs[0] = 1;
    p->n_codecs = 1;
    memset(p->probe_key, (int)version, 16);
    p->probe_key_len = 16;
}

/* Asserts that client i never received the caller's candidate or control addresses. */
static void assert_no_caller_addresses(size_t i, size_t caller)
{
    size_t n;
    const uint8_t *ctl = wzp_addr_ip(&W->c[caller].addr, &n);
    assert_false(raw_contains(i, CALLER_LAN_IP, 4));
    assert_false(raw_contains(i, CALLER_PUBLIC_IP, 4));
    assert_false(raw_contains(i, ctl, n));
}

static uint32_t place_call(size_t from, size_t to)
{
    wzp_sig_candidate cands[2];
    wzp_sig_params p;
    uint32_t call = 0;
    params(&p, 1);
    size_t n = caller_cands(cands);
    assert_int_equal(
        wzp_sigc_call_fp(W->c[from].sc, W->c[to].fp, NULL, &p, cands, n, &call, W->now), 0);
    pump();
    return call;
}

static void accept_call(size_t callee, uint32_t call)
{
    wzp_sig_candidate cands[2];
    wzp_sig_params p;
    params(&p, 2);
    size_t n = callee_cands(cands);
    assert_int_equal(wzp_sigc_accept(W->c[callee].sc, call, &p, cands, n, W->now), 0);
    pump();
}

/* A call from `from` to `to`, accepted; returns the caller's and callee's handles. */
static void establish(size_t from, size_t to, uint32_t *caller_call, uint32_t *callee_call)
{
    *caller_call = place_call(from, to);
    rec_event *in = last_event(to, WZP_SIGC_EV_INCOMING);
    assert_non_null(in);
    *callee_call = in->call;
    accept_call(to, *callee_call);
    assert_int_equal(wzp_sigc_call_state_get(W->c[from].sc, *caller_call), WZP_SIGC_CALL_SETUP);
    assert_int_equal(wzp_sigc_call_state_get(W->c[to].sc, *callee_call), WZP_SIGC_CALL_SETUP);
}

static int setup_with(const wzp_relay_control_config *cfg)
{
    W = calloc(1, sizeof(*W));
    if (!W)
        return -1;
    W->now = WZP_SEC(1000);
    if (cfg)
        W->cfg = *cfg;
    else
        wzp_relay_control_config_default(&W->cfg);
    W->cfg.relay_addr = addr("198.51.100.250:3478");
    W->cfg.cb = (wzp_relay_control_callbacks){.send = relay_send,
                                              .close = relay_close,
                                              .channels_open = channels_open,
                                              .channels_close = channels_close,
                                              .channel_moved = channel_moved,
                                              .park_send =
                                                  cfg && cfg->cb.park_send ? park_frame_out : NULL};
    W->cfg.user = NULL;
    return wzp_relay_control_new(&W->rc, &W->cfg) == 0 ? 0 : -1;
}

static wzp_relay_control_config default_config(void)
{
    wzp_relay_control_config cfg;
    wzp_relay_control_config_default(&cfg);
    return cfg;
}

static int teardown(void **state);

/* The world again from scratch with this control-plane configuration. */
static void restart_with(const wzp_relay_control_config *cfg)
{
    teardown(NULL);
    assert_int_equal(setup_with(cfg), 0);
}

#define ANY_ERR 1 /* assert_ended: the error is not checked */

/* Client i's last ENDED event is for `call`, with this reason and error. */
static rec_event *assert_ended(size_t i, uint32_t call, wzp_sig_end_reason reason, int err)
{
    rec_event *end = last_event(i, WZP_SIGC_EV_ENDED);
    assert_non_null(end);
    assert_int_equal(end->call, call);
    assert_int_equal(end->reason, reason);
    if (err != ANY_ERR)
        assert_int_equal(end->err, err);
    return end;
}

/* alice calls bob (ringing) beside mallory (C); id: the call's ID. Returns alice's call. */
static uint32_t ringing_with_mallory(uint8_t id[WZP_SIG_CALL_ID_LEN])
{
    join_cast(2);
    join(C, 0xc3, "198.51.100.3:40000", "mallory");
    uint32_t ac = place_call(A, B);
    memcpy(id, last_event(A, WZP_SIGC_EV_RINGING)->call_id, WZP_SIG_CALL_ID_LEN);
    return ac;
}

static int setup(void **state)
{
    (void)state;
    return setup_with(NULL);
}

static int teardown(void **state)
{
    (void)state;
    while (W->qh != W->qt)
        free(W->q[W->qh++ % QUEUE_MAX].data);
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        wzp_sigc_free(W->c[i].sc);
    wzp_relay_control_free(W->rc);
    free(W);
    W = NULL;
    return 0;
}

/* ---- registration and reflexive addresses ----------------------------------- */

static void test_register_and_reflexive(void **state)
{
    (void)state;
    join(A, 0xa1, "198.51.100.1:40000", "alice");
    rec_event *r = last_event(A, WZP_SIGC_EV_REGISTERED);
    assert_memory_equal(r->msg.u.registered.fingerprint, W->c[A].fp, WZP_SIG_FP_LEN);
    assert_true(wzp_addr_equal(&r->msg.u.registered.reflexive, &W->c[A].addr));
    assert_string_equal(r->msg.u.registered.alias, "alice");
    assert_true(wzp_addr_equal(wzp_sigc_reflexive(W->c[A].sc), &W->c[A].addr));
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 1);
    assert_true(wzp_relay_control_lookup(W->rc, W->c[A].fp) == W->c[A].conn);

    /* NAT rebinding: told once per change. */
    wzp_addr moved = addr("198.51.100.1:40001");
    wzp_relay_control_on_addr_change(W->rc, W->c[A].conn, &moved, W->now);
    pump();
    r = last_event(A, WZP_SIGC_EV_REFLEXIVE);
    assert_non_null(r);
    assert_true(wzp_addr_equal(&r->msg.u.reflexive.reflexive, &moved));
    assert_true(wzp_addr_equal(wzp_sigc_reflexive(W->c[A].sc), &moved));
    wzp_relay_control_on_addr_change(W->rc, W->c[A].conn, &moved, W->now);
    pump();
    assert_int_equal(count_events(A, WZP_SIGC_EV_REFLEXIVE), 1);
    wzp_addr v6 = addr("[2001:db8::44]:50000");
    wzp_relay_control_on_addr_change(W->rc, W->c[A].conn, &v6, W->now);
    pump();
    assert_int_equal(count_events(A, WZP_SIGC_EV_REFLEXIVE), 2);

    /* A later Registered carries the current address; the alias can change. */
    register_as(A, "alice2");
    r = last_event(A, WZP_SIGC_EV_REGISTERED);
    assert_true(wzp_addr_equal(&r->msg.u.registered.reflexive, &v6));
    assert_string_equal(r->msg.u.registered.alias, "alice2");
    join(B, 0xb2, "198.51.100.2:40000", "alice"); /* released by A */
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 2);
}

static void test_alias_taken(void **state)
{
    (void)state;
    join(A, 0xa1, "198.51.100.1:40000", "alice");
    connect_as(B, 0xb2, "198.51.100.2:40000");
    assert_int_equal(wzp_sigc_register(W->c[B].sc, "alice", W->now), 0);
    pump();
    rec_event *r = last_event(B, WZP_SIGC_EV_REGISTER_FAILED);
    assert_non_null(r);
    assert_int_equal(r->err, WZP_ERR_ALIAS_TAKEN);
    assert_int_equal(wzp_sigc_reg_state_get(W->c[B].sc), WZP_SIGC_UNREGISTERED);
    assert_true(wzp_relay_control_lookup(W->rc, W->c[B].fp) == 0);
    assert_int_equal(rc_stats(W->rc).reg_alias_taken, 1);
}

/* ---- calls ----------------------------------------------------------------- */

static void test_offer_ring_accept_hangup(void **state)
{
    (void)state;
    join_cast(2);

    uint32_t ac = place_call(A, B);
    rec_event *in = last_event(B, WZP_SIGC_EV_INCOMING);
    rec_event *ring = last_event(A, WZP_SIGC_EV_RINGING);
    assert_non_null(in);
    assert_non_null(ring);
    assert_int_equal(ring->call, ac);
    assert_memory_equal(in->call_id, ring->call_id, WZP_SIG_CALL_ID_LEN);
    /* The caller's identity as proven by its certificate, and its alias. */
    assert_memory_equal(in->msg.u.incoming.caller_fp, W->c[A].fp, WZP_SIG_FP_LEN);
    assert_string_equal(in->msg.u.incoming.caller_alias, "alice");
    assert_int_equal(wzp_sigc_call_state_get(W->c[A].sc, ac), WZP_SIGC_CALL_RINGING);
    assert_int_equal(wzp_sigc_call_state_get(W->c[B].sc, in->call), WZP_SIGC_CALL_INCOMING);
    /* Nothing about where the caller is reaches the callee before it answers. */
    assert_no_caller_addresses(B, A);
    /* The channels open with the alert, so the end-to-end handshake runs while it rings;
     * the caller also learns the key it rings. */
    assert_int_equal(W->n_open, 1);
    assert_int_equal(in->msg.u.incoming.relay_channel, W->chan_b);
    assert_true(wzp_addr_equal(&in->msg.u.incoming.relay_addr, &W->cfg.relay_addr));
    assert_int_equal(ring->msg.u.ringing.relay_channel, W->chan_a);
    assert_true(ring->msg.u.ringing.have_callee_fp);
    assert_memory_equal(ring->msg.u.ringing.callee_fp, W->c[B].fp, WZP_SIG_FP_LEN);

    uint32_t bc = in->call;
    accept_call(B, bc);
    assert_int_equal(W->n_open, 1); /* the same channels carry the answered call */
    assert_true(W->open_conn_a == W->c[A].conn);
    assert_true(W->open_conn_b == W->c[B].conn);
    assert_true(wzp_addr_equal(&W->open_addr_a, &W->c[A].addr));
    assert_true(wzp_addr_equal(&W->open_addr_b, &W->c[B].addr));

    wzp_sig_candidate cc[2], ce[2];
    caller_cands(cc);
    callee_cands(ce);
    rec_event *sa = last_event(A, WZP_SIGC_EV_SETUP);
    rec_event *sb = last_event(B, WZP_SIGC_EV_SETUP);
    assert_non_null(sa);
    assert_non_null(sb);
    assert_int_equal(sa->call, ac);
    assert_int_equal(sb->call, bc);
    /* Each side gets the other's identity, candidates and parameters, and its own channel. */
    assert_int_equal(sa->msg.u.setup.role, WZP_SIG_ROLE_CALLER);
    assert_memory_equal(sa->msg.u.setup.peer_fp, W->c[B].fp, WZP_SIG_FP_LEN);
    assert_string_equal(sa->msg.u.setup.peer_alias, "bob");
    assert_int_equal(sa->msg.u.setup.peer_params.media_version, 2);
    assert_int_equal(sa->msg.u.setup.peer_cands.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_true(wzp_addr_equal(&sa->msg.u.setup.peer_cands.c[i].addr, &ce[i].addr));
        assert_int_equal(sa->msg.u.setup.peer_cands.c[i].type, ce[i].type);
        assert_int_equal(sa->msg.u.setup.peer_cands.c[i].priority, ce[i].priority);
        assert_true(wzp_addr_equal(&sb->msg.u.setup.peer_cands.c[i].addr, &cc[i].addr));
    }
    assert_int_equal(sa->msg.u.setup.relay_channel, W->chan_a);
    assert_int_equal(sb->msg.u.setup.role, WZP_SIG_ROLE_CALLEE);
    assert_memory_equal(sb->msg.u.setup.peer_fp, W->c[A].fp, WZP_SIG_FP_LEN);
    assert_int_equal(sb->msg.u.setup.peer_params.media_version, 1);
    assert_int_equal(sb->msg.u.setup.relay_channel, W->chan_b);
    assert_true(wzp_addr_equal(&sb->msg.u.setup.relay_addr, &W->cfg.relay_addr));
    assert_memory_equal(sa->call_id, sb->call_id, WZP_SIG_CALL_ID_LEN);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 1);
    assert_true(wzp_relay_control_next_deadline(W->rc) == WZP_TS_NEVER); /* no expiry once up */

    /* The callee hangs up: the caller is told, channels close, nothing is left. */
    assert_int_equal(wzp_sigc_hangup(W->c[B].sc, bc, false, WZP_SIG_PATH_UNSPECIFIED, W->now), 0);
    pump();
    assert_ended(A, ac, WZP_SIG_END_HANGUP, WZP_ERR_HANGUP);
    assert_int_equal(count_events(B, WZP_SIGC_EV_ENDED), 0); /* local hang-up: no event */
    assert_int_equal(W->n_close, 1);
    assert_int_equal(W->closed_a, W->chan_a);
    assert_int_equal(W->closed_b, W->chan_b);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);
    assert_int_equal(wzp_sigc_call_state_get(W->c[A].sc, ac), WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_sigc_call_state_get(W->c[B].sc, bc), WZP_ERR_NOT_FOUND);
    assert_int_equal(rc_stats(W->rc).calls_ended[WZP_SIG_END_HANGUP], 1);
}

static void test_caller_hangs_up_with_error(void **state)
{
    (void)state;
    join(A, 0xa1, "198.51.100.1:40000", "");
    join(B, 0xb2, "198.51.100.2:40000", "");
    uint32_t ac, bc;
    establish(A, B, &ac, &bc);
    assert_int_equal(wzp_sigc_hangup(W->c[A].sc, ac, true, WZP_SIG_PATH_UNSPECIFIED, W->now), 0);
    pump();
    assert_ended(B, bc, WZP_SIG_END_ERROR, ANY_ERR);
    assert_int_equal(W->n_close, 1);
}

static void test_reject_and_busy_reply(void **state)
{
    (void)state;
    join_cast(2);

    uint32_t ac = place_call(A, B);
    assert_int_equal(wzp_sigc_reject(W->c[B].sc, last_event(B, WZP_SIGC_EV_INCOMING)->call, W->now),
                     0);
    pump();
    rec_event *end = assert_ended(A, ac, WZP_SIG_END_REJECTED, WZP_ERR_REJECTED);

    ac = place_call(A, B);
    assert_int_equal(wzp_sigc_busy(W->c[B].sc, last_event(B, WZP_SIGC_EV_INCOMING)->call, W->now),
                     0);
    pump();
    end = last_event(A, WZP_SIGC_EV_ENDED);
    assert_int_equal(end->call, ac);
    assert_int_equal(end->reason, WZP_SIG_END_BUSY);
    assert_int_equal(end->err, WZP_ERR_BUSY);

    /* A callee who never answered never learned where the caller is; each call's
     * channels (open while it rang) closed with it. */
    assert_no_caller_addresses(B, A);
    assert_int_equal(W->n_open, 2);
    assert_int_equal(W->n_close, 2);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);
}

static void test_busy_when_in_a_call(void **state)
{
    (void)state;
    join_cast(3);
    uint32_t ac, bc;
    establish(A, B, &ac, &bc);
    size_t b_events = W->c[B].n_ev;

    uint32_t cc = place_call(C, B);
    rec_event *end = assert_ended(C, cc, WZP_SIG_END_BUSY, ANY_ERR);
    assert_true(end->has_id);
    assert_int_equal(W->c[B].n_ev, b_events); /* B was not disturbed */

    /* A caller already in a call may not place another (one call per identity). */
    cc = place_call(A, C);
    end = last_event(A, WZP_SIGC_EV_ENDED);
    assert_non_null(end);
    assert_int_equal(end->call, cc);
    assert_int_equal(end->err, WZP_ERR_LIMIT);
    assert_int_equal(count_events(C, WZP_SIGC_EV_INCOMING), 0);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 1);
}

static void test_cancel(void **state)
{
    (void)state;
    join_cast(2);

    uint32_t ac = place_call(A, B);
    assert_int_equal(wzp_sigc_cancel(W->c[A].sc, ac, W->now), 0);
    pump();
    rec_event *end = last_event(B, WZP_SIGC_EV_ENDED);
    assert_non_null(end);
    assert_int_equal(end->reason, WZP_SIG_END_CANCELLED);
    assert_int_equal(end->err, WZP_ERR_CANCELLED);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);
    assert_int_equal(W->n_close, W->n_open); /* the rung call's channels went with it */

    /* Hanging up before the relay even answered the offer still withdraws the call. */
    wzp_sig_candidate cands[2];
    size_t n = caller_cands(cands);
    uint32_t call;
    assert_int_equal(wzp_sigc_call_fp(W->c[A].sc, W->c[B].fp, NULL, NULL, cands, n, &call, W->now),
                     0);
    assert_int_equal(wzp_sigc_hangup(W->c[A].sc, call, false, WZP_SIG_PATH_UNSPECIFIED, W->now), 0);
    assert_int_equal(wzp_sigc_call_state_get(W->c[A].sc, call), WZP_ERR_NOT_FOUND);
    size_t a_events = W->c[A].n_ev;
    pump();
    assert_int_equal(W->c[A].n_ev, a_events); /* no RINGING for a call we dropped */
    assert_int_equal(count_events(B, WZP_SIGC_EV_ENDED), 2);
    assert_int_equal(last_event(B, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_CANCELLED);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);
    assert_no_caller_addresses(B, A);
}

static void test_unanswered_call_expires(void **state)
{
    (void)state;
    join_cast(2);
    wzp_ts t0 = W->now;
    uint32_t ac = place_call(A, B);
    assert_true(wzp_relay_control_next_deadline(W->rc) == t0 + WZP_SEC(60));

    advance_to(t0 + WZP_SEC(59));
    assert_int_equal(count_events(A, WZP_SIGC_EV_ENDED), 0);
    assert_int_equal(count_events(B, WZP_SIGC_EV_ENDED), 0);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 1);

    advance_to(t0 + WZP_SEC(60));
    rec_event *ea = last_event(A, WZP_SIGC_EV_ENDED);
    rec_event *eb = last_event(B, WZP_SIGC_EV_ENDED);
    assert_non_null(ea);
    assert_non_null(eb);
    assert_int_equal(ea->call, ac);
    assert_int_equal(ea->reason, WZP_SIG_END_EXPIRED);
    assert_int_equal(eb->reason, WZP_SIG_END_EXPIRED);
    assert_int_equal(ea->err, WZP_ERR_EXPIRED);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);
    assert_int_equal(W->n_open, 1);
    assert_int_equal(W->n_close, 1);
    assert_true(wzp_relay_control_next_deadline(W->rc) == WZP_TS_NEVER);
    assert_no_caller_addresses(B, A);
    /* Accepting afterwards is too late. */
    assert_int_equal(wzp_sigc_accept(W->c[B].sc, eb->call, NULL, NULL, 0, W->now),
                     WZP_ERR_NOT_FOUND);
}

static void test_ring_timeout_configurable(void **state)
{
    (void)state;
    wzp_relay_control_config cfg = default_config();
    cfg.ring_timeout = WZP_SEC(5);
    restart_with(&cfg);
    join(A, 0xa1, "198.51.100.1:40000", "");
    join(B, 0xb2, "198.51.100.2:40000", "");
    join(C, 0xc3, "198.51.100.3:40000", "");
    join(D, 0xd4, "198.51.100.4:40000", "");
    wzp_ts t0 = W->now;
    place_call(A, B);
    advance_to(t0 + WZP_SEC(2));
    place_call(C, D);
    advance_to(t0 + WZP_SEC(5));
    assert_int_equal(count_events(A, WZP_SIGC_EV_ENDED), 1);
    assert_int_equal(count_events(C, WZP_SIGC_EV_ENDED), 0);
    assert_true(wzp_relay_control_next_deadline(W->rc) == t0 + WZP_SEC(7));
    advance_to(t0 + WZP_SEC(7));
    assert_int_equal(count_events(C, WZP_SIGC_EV_ENDED), 1);
    assert_int_equal(count_events(D, WZP_SIGC_EV_ENDED), 1);
}

static void test_dropped_connection_ends_calls(void **state)
{
    (void)state;
    join_cast(4);
    uint32_t ac, bc;
    establish(A, B, &ac, &bc);
    place_call(C, D); /* ringing */

    /* B's control connection drops mid-call. */
    wzp_relay_control_on_disconnect(W->rc, W->c[B].conn, W->now);
    wzp_sigc_on_disconnect(W->c[B].sc, W->now);
    pump();
    rec_event *end = assert_ended(A, ac, WZP_SIG_END_PEER_GONE, WZP_ERR_CLOSED);
    assert_int_equal(W->n_close, 1);
    assert_true(wzp_relay_control_lookup(W->rc, W->c[B].fp) == 0);
    assert_int_equal(last_event(B, WZP_SIGC_EV_ENDED)->err, WZP_ERR_UNREACHABLE);
    assert_int_equal(wzp_sigc_reg_state_get(W->c[B].sc), WZP_SIGC_UNREGISTERED);

    /* The caller of a ringing call drops: the callee stops ringing. */
    wzp_relay_control_on_disconnect(W->rc, W->c[C].conn, W->now);
    pump();
    end = last_event(D, WZP_SIGC_EV_ENDED);
    assert_non_null(end);
    assert_int_equal(end->reason, WZP_SIG_END_PEER_GONE);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 2);
    assert_int_equal(wzp_relay_control_num_conns(W->rc), 2);
    assert_true(wzp_relay_control_next_deadline(W->rc) == WZP_TS_NEVER);
}

static void test_reregistration_replaces_old_connection(void **state)
{
    (void)state;
    join_cast(3);
    uint32_t ac, bc;
    establish(A, B, &ac, &bc);
    uint64_t old_conn = W->c[A].conn;

    /* The same identity comes back on a new connection (say, after a network change). */
    join(D, 0xa1, "198.51.100.9:41000", "alice");
    assert_true(W->c[A].closed);
    assert_int_equal(W->c[A].close_code, WZP_RELAY_CLOSE_REPLACED);
    assert_true(wzp_relay_control_lookup(W->rc, W->c[D].fp) == W->c[D].conn);
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 3);
    assert_int_equal(rc_stats(W->rc).reg_replaced, 1);
    /* The old connection's call is over, for the peer too, with its channels. */
    rec_event *end = last_event(B, WZP_SIGC_EV_ENDED);
    assert_non_null(end);
    assert_int_equal(end->reason, WZP_SIG_END_PEER_GONE);
    assert_int_equal(W->n_close, 1);

    /* The old connection's late disconnect must not undo the new registration. */
    wzp_relay_control_on_disconnect(W->rc, old_conn, W->now);
    pump();
    assert_true(wzp_relay_control_lookup(W->rc, W->c[D].fp) == W->c[D].conn);
    assert_int_equal(rc_stats(W->rc).late_disconnects, 1);
    /* ... and what it still sends is ignored. */
    assert_int_equal(wzp_sigc_ping(W->c[A].sc, W->now), 0);
    pump();
    assert_int_equal(count_events(A, WZP_SIGC_EV_PONG), 0);

    /* The alias follows the identity to the new connection. */
    wzp_sig_candidate cands[2];
    size_t n = caller_cands(cands);
    uint32_t call;
    assert_int_equal(wzp_sigc_call_alias(W->c[C].sc, "alice", NULL, cands, n, &call, W->now), 0);
    pump();
    rec_event *in = last_event(D, WZP_SIGC_EV_INCOMING);
    assert_non_null(in);
    assert_memory_equal(in->msg.u.incoming.caller_fp, W->c[C].fp, WZP_SIG_FP_LEN);
    assert_int_equal(count_events(A, WZP_SIGC_EV_INCOMING), 0); /* not the replaced one */
}

static void test_third_party_cannot_touch_a_call(void **state)
{
    (void)state;
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    uint32_t ac = ringing_with_mallory(id);

    /* Mallory somehow learned the call id: hang-up, accept and cancel are refused. */
    wzp_sig_type attempts[] = {WZP_SIG_HANGUP, WZP_SIG_ACCEPT, WZP_SIG_CANCEL, WZP_SIG_REJECT};
    for (size_t i = 0; i < 4; i++) {
        wzp_sig_msg m;
        wzp_sig_init(&m, attempts[i], 500 + i);
        if (attempts[i] == WZP_SIG_HANGUP) {
            memcpy(m.u.end.call_id, id, sizeof(id));
            m.u.end.reason = WZP_SIG_END_HANGUP;
        } else if (attempts[i] == WZP_SIG_ACCEPT) {
            memcpy(m.u.accept.call_id, id, sizeof(id));
        } else {
            memcpy(m.u.call.call_id, id, sizeof(id));
        }
        send_raw(C, &m);
        rec_event *e = last_event(C, WZP_SIGC_EV_ERROR);
        assert_non_null(e);
        assert_int_equal(e->msg.u.error.code, WZP_SIG_ERR_NO_SUCH_CALL);
        assert_true(e->msg.request_id == 500 + i);
        assert_int_equal(wzp_relay_control_num_calls(W->rc), 1);
    }
    assert_int_equal(count_events(A, WZP_SIGC_EV_ENDED), 0);
    assert_int_equal(count_events(B, WZP_SIGC_EV_ENDED), 0);
    assert_no_caller_addresses(C, A);

    /* The caller cannot accept its own call either (wrong role). */
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_ACCEPT, 600);
    memcpy(m.u.accept.call_id, id, sizeof(id));
    send_raw(A, &m);
    rec_event *e = last_event(A, WZP_SIGC_EV_ERROR);
    assert_non_null(e);
    assert_int_equal(e->msg.u.error.code, WZP_SIG_ERR_STATE);

    /* The real callee still can; afterwards a third party still cannot hang up. */
    accept_call(B, last_event(B, WZP_SIGC_EV_INCOMING)->call);
    assert_non_null(last_event(A, WZP_SIGC_EV_SETUP));
    wzp_sig_init(&m, WZP_SIG_HANGUP, 700);
    memcpy(m.u.end.call_id, id, sizeof(id));
    m.u.end.reason = WZP_SIG_END_HANGUP;
    send_raw(C, &m);
    assert_true(last_event(C, WZP_SIGC_EV_ERROR)->msg.request_id == 700);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 1);
    assert_int_equal(wzp_sigc_call_state_get(W->c[A].sc, ac), WZP_SIGC_CALL_SETUP);
    assert_int_equal(W->n_close, 0);
    assert_true(rc_stats(W->rc).drop_no_such_call >= 5);
}

static void test_unknown_and_offline_callees(void **state)
{
    (void)state;
    join(A, 0xa1, "198.51.100.1:40000", "alice");
    wzp_sig_candidate cands[2];
    size_t n = caller_cands(cands);
    uint32_t call;

    assert_int_equal(wzp_sigc_call_alias(W->c[A].sc, "nobody", NULL, cands, n, &call, W->now), 0);
    pump();
    rec_event *end = assert_ended(A, call, WZP_SIG_END_UNKNOWN_PEER, WZP_ERR_NOT_FOUND);

    uint8_t stranger[WZP_SIG_FP_LEN];
    memset(stranger, 0x5e, sizeof(stranger));
    assert_int_equal(wzp_sigc_call_fp(W->c[A].sc, stranger, NULL, NULL, cands, n, &call, W->now),
                     0);
    pump();
    end = last_event(A, WZP_SIGC_EV_ENDED);
    assert_int_equal(end->call, call);
    assert_int_equal(end->reason, WZP_SIG_END_OFFLINE);
    assert_int_equal(end->err, WZP_ERR_OFFLINE);
    assert_true(end->has_msg && !end->msg.u.end.have_holder);

    /* The same key offline, known to the caller as "alice": that alias is A's own key, and the
     * relay says so (a contact's key changed, or someone uses its name); with a hint nobody
     * holds, no holder. Nobody is rung either way. */
    assert_int_equal(wzp_sigc_call_fp(W->c[A].sc, stranger, "alice", NULL, cands, n, &call, W->now),
                     0);
    pump();
    end = last_event(A, WZP_SIGC_EV_ENDED);
    assert_int_equal(end->reason, WZP_SIG_END_OFFLINE);
    assert_true(end->has_msg && end->msg.u.end.have_holder);
    assert_memory_equal(end->msg.u.end.holder_fp, W->c[A].fp, WZP_SIG_FP_LEN);
    assert_int_equal(
        wzp_sigc_call_fp(W->c[A].sc, stranger, "nobody", NULL, cands, n, &call, W->now), 0);
    pump();
    end = last_event(A, WZP_SIGC_EV_ENDED);
    assert_int_equal(end->reason, WZP_SIG_END_OFFLINE);
    assert_false(end->msg.u.end.have_holder);
    assert_int_equal(
        wzp_sigc_call_fp(W->c[A].sc, stranger, "Not valid!", NULL, cands, n, &call, W->now),
        WZP_ERR_INVALID);

    /* Calling yourself is refused with an Error, which ends the call. */
    assert_int_equal(wzp_sigc_call_fp(W->c[A].sc, W->c[A].fp, NULL, NULL, cands, n, &call, W->now),
                     0);
    pump();
    end = last_event(A, WZP_SIGC_EV_ENDED);
    assert_int_equal(end->call, call);
    assert_int_equal(end->err, WZP_ERR_INVALID);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);

    /* A registered peer that goes offline is OFFLINE again. */
    join(B, 0xb2, "198.51.100.2:40000", "bob");
    wzp_relay_control_on_disconnect(W->rc, W->c[B].conn, W->now);
    assert_int_equal(wzp_sigc_call_alias(W->c[A].sc, "bob", NULL, cands, n, &call, W->now), 0);
    pump();
    assert_int_equal(last_event(A, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_UNKNOWN_PEER);
}

static void test_channel_open_failure_ends_call(void **state)
{
    (void)state;
    join_cast(2);
    W->open_fail = 1;
    place_call(A, B);
    /* The channels open with the alert: the callee is never rung, the caller hears why. */
    assert_int_equal(last_event(A, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_ERROR);
    assert_int_equal(count_events(A, WZP_SIGC_EV_RINGING), 0);
    assert_int_equal(count_events(B, WZP_SIGC_EV_INCOMING), 0);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);
    assert_int_equal(W->n_close, 0);
    assert_int_equal(rc_stats(W->rc).channel_open_failures, 1);
}

/* ---- abuse ----------------------------------------------------------------- */

static void test_rate_limit(void **state)
{
    (void)state;
    wzp_relay_control_config cfg = default_config();
    cfg.rate_per_sec = 5;
    cfg.rate_burst = 5;
    cfg.abuse_close_after = 10;
    restart_with(&cfg);

    /* A polite client: a burst, then the same again a second later. */
    connect_as(B, 0xb2, "198.51.100.2:40000");
    for (int i = 0; i < 5; i++)
        wzp_sigc_ping(W->c[B].sc, W->now);
    pump();
    advance_to(W->now + WZP_SEC(1));
    for (int i = 0; i < 5; i++)
        wzp_sigc_ping(W->c[B].sc, W->now);
    pump();
    assert_int_equal(count_events(B, WZP_SIGC_EV_PONG), 10);
    assert_int_equal(count_events(B, WZP_SIGC_EV_ERROR), 0);

    /* A flood: five answered, then one Error, then silence, then the connection is closed. */
    connect_as(A, 0xa1, "198.51.100.1:40000");
    for (int i = 0; i < 14; i++) {
        wzp_sigc_ping(W->c[A].sc, W->now);
        pump();
        assert_false(W->c[A].closed);
    }
    assert_int_equal(count_events(A, WZP_SIGC_EV_PONG), 5);
    assert_int_equal(count_events(A, WZP_SIGC_EV_ERROR), 1);
    assert_int_equal(last_event(A, WZP_SIGC_EV_ERROR)->err, WZP_ERR_RATE_LIMITED);
    wzp_sigc_ping(W->c[A].sc, W->now);
    pump();
    assert_true(W->c[A].closed);
    assert_int_equal(W->c[A].close_code, WZP_RELAY_CLOSE_RATE_LIMIT);
    assert_int_equal(rc_stats(W->rc).drop_rate_limited, 10);
    assert_int_equal(wzp_relay_control_num_conns(W->rc), 1);
}

static void test_registration_cap(void **state)
{
    (void)state;
    wzp_relay_control_config cfg = default_config();
    cfg.max_registrations = 2;
    restart_with(&cfg);

    join_cast(2);
    connect_as(C, 0xc3, "198.51.100.3:40000");
    assert_int_equal(wzp_sigc_register(W->c[C].sc, "carol", W->now), 0);
    pump();
    rec_event *f = last_event(C, WZP_SIGC_EV_REGISTER_FAILED);
    assert_non_null(f);
    assert_int_equal(f->err, WZP_ERR_RELAY_FULL);
    assert_true(W->c[C].closed);
    assert_int_equal(W->c[C].close_code, WZP_RELAY_CLOSE_REG_LIMIT);
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 2);
    assert_int_equal(rc_stats(W->rc).reg_over_cap, 1);

    /* At the cap, an identity already registered may still move to a new connection. */
    join(D, 0xa1, "198.51.100.7:40000", "alice");
    assert_true(wzp_relay_control_lookup(W->rc, W->c[D].fp) == W->c[D].conn);
}

/* ---- alias bindings ----------------------------------------------------------- */

/* Client i (identity idbyte) connects and asks for alias; returns the error or 0. */
static int try_register(size_t i, uint8_t idbyte, const char *from, const char *alias)
{
    connect_as(i, idbyte, from);
    size_t ok0 = count_events(i, WZP_SIGC_EV_REGISTERED);
    assert_int_equal(wzp_sigc_register(W->c[i].sc, alias, W->now), 0);
    pump();
    if (count_events(i, WZP_SIGC_EV_REGISTERED) > ok0)
        return 0;
    rec_event *f = last_event(i, WZP_SIGC_EV_REGISTER_FAILED);
    assert_non_null(f);
    return f->err;
}

static void disconnect(size_t i)
{
    wzp_relay_control_on_disconnect(W->rc, W->c[i].conn, W->now);
    pump();
}

static void test_alias_held_after_disconnect(void **state)
{
    (void)state;
    join(A, 0xa1, "198.51.100.1:40000", "alice");
    disconnect(A);
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 0);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 1);

    /* Mallory, retrying while alice is away, gets nothing. */
    for (int k = 0; k < 3; k++) {
        assert_int_equal(try_register(B, 0xb2, "203.0.113.9:40000", "alice"), WZP_ERR_ALIAS_TAKEN);
        disconnect(B);
    }
    assert_int_equal(rc_stats(W->rc).reg_alias_taken, 3);
    /* Nobody answers to the alias meanwhile: a call to it reaches no one. */
    join(C, 0xc3, "198.51.100.3:40000", "carol");
    wzp_sig_params p;
    params(&p, 1);
    uint32_t call;
    assert_int_equal(wzp_sigc_call_alias(W->c[C].sc, "alice", &p, NULL, 0, &call, W->now), 0);
    pump();
    assert_non_null(last_event(C, WZP_SIGC_EV_ENDED));

    /* Alice's key gets it back at once. */
    assert_int_equal(try_register(A, 0xa1, "198.51.100.1:40001", "alice"), 0);
    assert_string_equal(last_event(A, WZP_SIGC_EV_REGISTERED)->msg.u.registered.alias, "alice");

    /* The reclaim period counts from the last disconnect. */
    disconnect(A);
    wzp_ts gone = W->now;
    advance_to(gone + WZP_SEC(30ull * 86400) - 1);
    assert_int_equal(try_register(B, 0xb2, "203.0.113.9:40000", "alice"), WZP_ERR_ALIAS_TAKEN);
    disconnect(B);
    advance_to(gone + WZP_SEC(30ull * 86400));
    assert_int_equal(try_register(B, 0xb2, "203.0.113.9:40000", "alice"), 0);
    assert_int_equal(try_register(A, 0xa1, "198.51.100.1:40001", "alice"), WZP_ERR_ALIAS_TAKEN);
}

static void test_alias_reclaim_zero_releases_at_disconnect(void **state)
{
    (void)state;
    wzp_relay_control_config cfg = default_config();
    cfg.alias_reclaim = 0;
    restart_with(&cfg);
    join(A, 0xa1, "198.51.100.1:40000", "alice");
    disconnect(A);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 0);
    assert_int_equal(try_register(B, 0xb2, "203.0.113.9:40000", "alice"), 0);
    /* Replacement by the same key keeps it (the old connection's end frees nothing). */
    assert_int_equal(try_register(C, 0xb2, "203.0.113.9:40001", "alice"), 0);
    assert_true(W->c[B].closed);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 1);
}

static void test_alias_rename_frees_old(void **state)
{
    (void)state;
    join(A, 0xa1, "198.51.100.1:40000", "alice");
    register_as(A, "alicia"); /* live rename */
    assert_int_equal(try_register(B, 0xb2, "203.0.113.9:40000", "alice"), 0);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 2);

    /* Away, then back without an alias: the key gave "alicia" up. */
    disconnect(A);
    assert_int_equal(try_register(C, 0xc3, "198.51.100.3:40000", "alicia"), WZP_ERR_ALIAS_TAKEN);
    assert_int_equal(try_register(A, 0xa1, "198.51.100.1:40001", ""), 0);
    assert_int_equal(try_register(C, 0xc3, "198.51.100.3:40000", "alicia"), 0);
    /* Same key, new connection, new alias: the replaced connection's alias goes too. */
    assert_int_equal(try_register(D, 0xc3, "198.51.100.3:40001", "carol"), 0);
    assert_true(W->c[C].closed);
    assert_int_equal(try_register(A, 0xa1, "198.51.100.1:40001", "alicia"), 0);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 3); /* alice, carol, alicia */
}

static void test_alias_table_cap(void **state)
{
    (void)state;
    wzp_relay_control_config cfg = default_config();
    cfg.max_alias_bindings = 2;
    cfg.alias_reclaim = WZP_SEC(100);
    restart_with(&cfg);
    join(A, 0xa1, "198.51.100.1:40000", "a1");
    join(B, 0xb2, "198.51.100.2:40000", "b2");
    disconnect(B);
    assert_int_equal(try_register(C, 0xc3, "198.51.100.3:40000", "c3"), WZP_ERR_RELAY_FULL);
    assert_int_equal(rc_stats(W->rc).alias_table_full, 1);
    assert_false(W->c[C].closed);
    /* Without an alias there is room; a holder may still rename within the cap. */
    assert_int_equal(try_register(C, 0xc3, "198.51.100.3:40000", ""), 0);
    register_as(A, "a1-new");
    /* Expired bindings make room. */
    advance_to(W->now + WZP_SEC(100));
    assert_int_equal(try_register(D, 0xd4, "198.51.100.4:40000", "d4"), 0);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 2);
}

/* ---- saving and loading bindings (control <-> alias_store) ------------------------ */

#define WALL0 1700000000ull /* Unix seconds matching W->now at the export */

typedef struct saved {
    char text[8192];
    size_t len;
    wzp_ts mono_now;
} saved;

static void save_one(void *user, const wzp_relay_alias_binding *b)
{
    saved *sv = user;
    wzp_alias_entry e;
    memcpy(e.alias, b->alias, sizeof(e.alias));
    memcpy(e.fp, b->fp, WZP_SIG_FP_LEN);
    e.expires = WALL0 + (b->expires - sv->mono_now) / WZP_SEC(1);
    int n = wzp_alias_store_format(&e, sv->text + sv->len, sizeof(sv->text) - sv->len);
    assert_true(n > 0);
    sv->len += (size_t)n;
}

static int load_one(void *user, const wzp_alias_entry *e)
{
    const saved *sv = user;
    wzp_relay_alias_binding b;
    memcpy(b.alias, e->alias, sizeof(b.alias));
    memcpy(b.fp, e->fp, WZP_SIG_FP_LEN);
    b.expires = e->expires > WALL0 ? sv->mono_now + WZP_SEC(e->expires - WALL0) : 0;
    return wzp_relay_control_load_alias(W->rc, &b, sv->mono_now);
}

static void test_alias_save_load_round_trip(void **state)
{
    (void)state;
    join_cast(2);
    disconnect(B);
    advance_to(W->now + WZP_SEC(86400)); /* bob has 29 days left, alice (live) 30 */
    assert_true(wzp_relay_control_aliases_dirty(W->rc));
    saved sv = {.len = 0, .mono_now = W->now};
    strcpy(sv.text, WZP_ALIAS_STORE_HEADER);
    sv.len = strlen(sv.text);
    wzp_relay_control_aliases_export(W->rc, W->now, save_one, &sv);
    assert_false(wzp_relay_control_aliases_dirty(W->rc));

    /* A new relay (another monotonic clock) loads the file. */
    teardown(NULL);
    assert_int_equal(setup_with(NULL), 0);
    W->now = WZP_SEC(5);
    sv.mono_now = W->now;
    size_t line = 0;
    assert_int_equal(wzp_alias_store_parse((const uint8_t *)sv.text, sv.len, load_one, &sv, &line),
                     0);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 2);
    assert_false(wzp_relay_control_aliases_dirty(W->rc)); /* nothing new to save */
    /* Loading the same file twice is refused: duplicates. */
    assert_int_equal(wzp_alias_store_parse((const uint8_t *)sv.text, sv.len, load_one, &sv, &line),
                     WZP_ERR_INVALID);
    assert_int_equal(line, 2);

    assert_int_equal(try_register(C, 0xc3, "203.0.113.9:40000", "alice"), WZP_ERR_ALIAS_TAKEN);
    assert_int_equal(try_register(C, 0xc3, "203.0.113.9:40000", "bob"), WZP_ERR_ALIAS_TAKEN);
    assert_int_equal(try_register(A, 0xa1, "198.51.100.1:40000", "alice"), 0);
    /* bob's remaining time survived the restart: 29 days, not 30. */
    advance_to(W->now + WZP_SEC(29ull * 86400));
    assert_int_equal(try_register(C, 0xc3, "203.0.113.9:40000", "bob"), 0);
    assert_int_equal(try_register(D, 0xd4, "203.0.113.10:40000", "alice"), WZP_ERR_ALIAS_TAKEN);
}

static int count_entry(void *user, const wzp_alias_entry *e)
{
    (void)e;
    (*(size_t *)user)++;
    return 0;
}

static void expect_parse(const char *text, int rv, size_t line, size_t entries)
{
    size_t n = 0, at = 0;
    assert_int_equal(
        wzp_alias_store_parse((const uint8_t *)text, strlen(text), count_entry, &n, &at), rv);
    if (rv)
        assert_int_equal(at, line);
    assert_int_equal(n, entries);
}

static void test_alias_store_parse(void **state)
{
    (void)state;
    const char *fp = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
    char buf[512];
    expect_parse("wzp-aliases 1\n", 0, 0, 0);
    snprintf(buf, sizeof(buf), "wzp-aliases 1\n# comment\n\nalice %s 1700000000\n", fp);
    expect_parse(buf, 0, 0, 1);
    expect_parse("", WZP_ERR_MALFORMED, 1, 0);
    expect_parse("wzp-aliases 2\n", WZP_ERR_MALFORMED, 1, 0);
    /* Cut short (no final LF), bad alias, short or upper-case hex, bad or huge expiry. */
    snprintf(buf, sizeof(buf), "wzp-aliases 1\nalice %s 1700000000\nbob %s 17", fp, fp);
    expect_parse(buf, WZP_ERR_MALFORMED, 3, 1);
    snprintf(buf, sizeof(buf), "wzp-aliases 1\nAlice %s 1\n", fp);
    expect_parse(buf, WZP_ERR_MALFORMED, 2, 0);
    expect_parse("wzp-aliases 1\nalice a1a1 1\n", WZP_ERR_MALFORMED, 2, 0);
    snprintf(buf, sizeof(buf), "wzp-aliases 1\nalice A%s 1\n", fp + 1);
    expect_parse(buf, WZP_ERR_MALFORMED, 2, 0);
    snprintf(buf, sizeof(buf), "wzp-aliases 1\nalice %s -1\n", fp);
    expect_parse(buf, WZP_ERR_MALFORMED, 2, 0);
    snprintf(buf, sizeof(buf), "wzp-aliases 1\nalice %s 18446744073709551616\n", fp);
    expect_parse(buf, WZP_ERR_MALFORMED, 2, 0);
    snprintf(buf, sizeof(buf), "wzp-aliases 1\nalice %s 18446744073709551615\n", fp);
    expect_parse(buf, 0, 0, 1);
    snprintf(buf, sizeof(buf), "wzp-aliases 1\nalice %s 1 x\n", fp);
    expect_parse(buf, WZP_ERR_MALFORMED, 2, 0);
    snprintf(buf, sizeof(buf), "wzp-aliases 1\nalice  %s 1\n", fp);
    expect_parse(buf, WZP_ERR_MALFORMED, 2, 0);

    /* format -> parse round trip; format refuses what parse would. */
    wzp_alias_entry e = {.alias = "x.y-z_0", .expires = 42};
    memset(e.fp, 0x5c, sizeof(e.fp));
    char line[WZP_ALIAS_STORE_LINE_MAX];
    assert_true(wzp_alias_store_format(&e, line, sizeof(line)) > 0);
    assert_int_equal(wzp_alias_store_format(&e, line, 10), WZP_ERR_TOO_BIG);
    wzp_alias_entry bad = {.alias = "-x"};
    assert_int_equal(wzp_alias_store_format(&bad, line, sizeof(line)), WZP_ERR_INVALID);
}

/* ---- per-address caps and idle connections ----------------------------------------- */

static void assert_refused_full(size_t i)
{
    pump();
    assert_true(W->c[i].closed);
    assert_int_equal(W->c[i].close_code, WZP_RELAY_CLOSE_ADDR_LIMIT);
    rec_event *e = last_event(i, WZP_SIGC_EV_ERROR);
    assert_non_null(e);
    assert_int_equal(e->err, WZP_ERR_RELAY_FULL);
}

static void test_per_addr_cap(void **state)
{
    (void)state;
    wzp_relay_control_config cfg = default_config();
    cfg.max_conns_per_addr = 2;
    restart_with(&cfg);

    /* IPv4: registered or not, two connections from one address, any port. */
    join(A, 0xa1, "198.51.100.1:40000", "alice");
    connect_as(B, 0xb2, "198.51.100.1:40001");
    connect_as(C, 0xc3, "198.51.100.1:40002");
    assert_refused_full(C);
    assert_false(W->c[A].closed || W->c[B].closed);
    assert_int_equal(wzp_relay_control_num_conns(W->rc), 2);
    wzp_addr v4 = addr("198.51.100.1:1");
    assert_int_equal(wzp_relay_control_conns_from(W->rc, &v4), 2);
    /* IPv4-mapped IPv6 is the same address. */
    connect_as(C, 0xc3, "[::ffff:198.51.100.1]:40003");
    assert_refused_full(C);
    /* Another address is not affected. */
    join(D, 0xd4, "198.51.100.2:40000", "dave");

    /* IPv6: one /64 shares a cap; the next /64 does not. */
    connect_as(4, 0x44, "[2001:db8:1:2::1]:5000");
    connect_as(5, 0x55, "[2001:db8:1:2:ffff:ffff:ffff:ffff]:5000");
    connect_as(6, 0x66, "[2001:db8:1:2:abcd::1]:5000");
    assert_refused_full(6);
    join(7, 0x77, "[2001:db8:1:3::1]:5000", "");
    assert_int_equal(rc_stats(W->rc).conn_over_addr_cap, 3);

    /* The flood ends: counts go back to zero and the address is usable again. */
    size_t live[] = {A, B, D, 4, 5, 7};
    for (size_t k = 0; k < sizeof(live) / sizeof(live[0]); k++)
        disconnect(live[k]);
    assert_int_equal(wzp_relay_control_num_conns(W->rc), 0);
    assert_int_equal(wzp_relay_control_conns_from(W->rc, &v4), 0);
    wzp_addr v6 = addr("[2001:db8:1:2::9]:1");
    assert_int_equal(wzp_relay_control_conns_from(W->rc, &v6), 0);
    assert_int_equal(try_register(B, 0xb2, "198.51.100.1:40005", "bob"), 0);
    assert_int_equal(try_register(C, 0xc3, "198.51.100.1:40006", "carol"), 0);
    assert_int_equal(try_register(6, 0x66, "[2001:db8:1:2::2]:1", ""), 0);
}

static void test_per_addr_cap_default_and_off(void **state)
{
    (void)state;
    wzp_relay_control_config cfg;
    wzp_relay_control_config_default(&cfg);
    assert_int_equal(cfg.max_conns_per_addr, 64);
    assert_true(cfg.register_timeout == WZP_SEC(10));
    assert_true(cfg.alias_reclaim == WZP_SEC(30ull * 86400));
    teardown(NULL);
    cfg.max_conns_per_addr = 0;
    assert_int_equal(setup_with(&cfg), 0);
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        connect_as(i, (uint8_t)(0x10 + i), "198.51.100.1:40000");
    pump();
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        assert_false(W->c[i].closed);
}

static void test_unregistered_connections_time_out(void **state)
{
    (void)state;
    wzp_ts t0 = W->now;
    connect_as(A, 0xa1, "198.51.100.1:40000"); /* never registers */
    join(B, 0xb2, "198.51.100.1:40001", "bob");
    advance_to(t0 + WZP_SEC(5));
    connect_as(C, 0xc3, "198.51.100.1:40002");
    assert_true(wzp_relay_control_next_deadline(W->rc) == t0 + WZP_SEC(10));
    advance_to(t0 + WZP_SEC(10) - 1);
    assert_false(W->c[A].closed);
    advance_to(t0 + WZP_SEC(10));
    assert_true(W->c[A].closed);
    assert_int_equal(W->c[A].close_code, WZP_RELAY_CLOSE_REG_TIMEOUT);
    assert_false(W->c[B].closed || W->c[C].closed);
    /* C registers in time and stays; then nothing is pending. */
    register_as(C, "carol");
    advance_to(t0 + WZP_SEC(100));
    assert_false(W->c[C].closed);
    assert_true(wzp_relay_control_next_deadline(W->rc) == WZP_TS_NEVER);
    assert_int_equal(wzp_relay_control_num_conns(W->rc), 2);
    assert_int_equal(rc_stats(W->rc).reg_timeouts, 1);
    wzp_addr a = addr("198.51.100.1:1");
    assert_int_equal(wzp_relay_control_conns_from(W->rc, &a), 2);
}

static void test_garbage_is_answered_with_errors(void **state)
{
    (void)state;
    connect_as(A, 0xa1, "198.51.100.1:40000");

    uint8_t junk[32];
    memset(junk, 0xff, sizeof(junk));
    send_bytes(A, junk, sizeof(junk));
    rec_event *e = last_event(A, WZP_SIGC_EV_ERROR);
    assert_non_null(e);
    assert_int_equal(e->msg.u.error.code, WZP_SIG_ERR_MALFORMED);
    assert_int_equal(rc_stats(W->rc).drop_malformed, 1);
    send_bytes(A, junk, 0); /* empty: no body */
    assert_int_equal(rc_stats(W->rc).drop_malformed, 2);

    /* A future protocol version. */
    uint8_t v2[] = {0x08, 0x02, 0x10, 0x2a, 0xc2, 0x01, 0x00}; /* version 2, rid 42, ping */
    send_bytes(A, v2, sizeof(v2));
    e = last_event(A, WZP_SIGC_EV_ERROR);
    assert_int_equal(e->msg.u.error.code, WZP_SIG_ERR_VERSION);
    assert_true(e->msg.request_id == 42);
    assert_int_equal(rc_stats(W->rc).drop_version, 1);

    /* Call messages before Register. */
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_OFFER, 77);
    memset(m.u.offer.callee_fp, 1, WZP_SIG_FP_LEN);
    send_raw(A, &m);
    e = last_event(A, WZP_SIGC_EV_ERROR);
    assert_int_equal(e->msg.u.error.code, WZP_SIG_ERR_NOT_REGISTERED);
    assert_true(e->msg.request_id == 77);

    /* Relay-to-client messages from a client. */
    wzp_sig_init(&m, WZP_SIG_INCOMING_CALL, 78);
    send_raw(A, &m);
    e = last_event(A, WZP_SIGC_EV_ERROR);
    assert_int_equal(e->msg.u.error.code, WZP_SIG_ERR_UNEXPECTED);
    assert_int_equal(rc_stats(W->rc).drop_unexpected, 1);

    /* Still a working connection after all that. */
    register_as(A, "alice");
    assert_false(W->c[A].closed);

    /* Oversized: Error, then closed. */
    uint8_t *big = calloc(1, WZP_SIG_MAX_SIZE + 1);
    assert_non_null(big);
    send_bytes(A, big, WZP_SIG_MAX_SIZE + 1);
    free(big);
    e = last_event(A, WZP_SIGC_EV_ERROR);
    assert_int_equal(e->msg.u.error.code, WZP_SIG_ERR_TOO_BIG);
    assert_true(W->c[A].closed);
    assert_int_equal(W->c[A].close_code, WZP_RELAY_CLOSE_TOO_BIG);
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 0);
    assert_int_equal(rc_stats(W->rc).drop_too_big, 1);

    /* Persistent garbage gets the connection closed. */
    connect_as(B, 0xb2, "198.51.100.2:40000");
    for (uint32_t i = 0; i < W->cfg.max_bad_messages; i++) {
        assert_false(W->c[B].closed);
        send_bytes(B, junk, 8);
    }
    assert_true(W->c[B].closed);
    assert_int_equal(W->c[B].close_code, WZP_RELAY_CLOSE_BAD_MESSAGES);
    assert_int_equal(count_events(B, WZP_SIGC_EV_ERROR), W->cfg.max_bad_messages);

    /* Messages for connections the relay never heard of are counted and dropped. */
    wzp_relay_control_on_message(W->rc, 999999, junk, 8, W->now);
    assert_int_equal(rc_stats(W->rc).drop_unknown_conn, 1);
}

/* ---- client-side timeouts ---------------------------------------------------- */

static void test_client_request_timeouts(void **state)
{
    (void)state;
    join_cast(2);
    connect_as(C, 0xc3, "198.51.100.3:40000");
    W->drop_to_relay = true; /* the relay hears nothing from now on */
    wzp_ts t0 = W->now;

    assert_int_equal(wzp_sigc_register(W->c[C].sc, "carol", W->now), 0);
    assert_true(wzp_sigc_next_deadline(W->c[C].sc) == t0 + WZP_SEC(10));
    assert_int_equal(wzp_sigc_reg_state_get(W->c[C].sc), WZP_SIGC_REGISTERING);
    uint32_t call = place_call(A, B);
    assert_int_equal(wzp_sigc_call_state_get(W->c[A].sc, call), WZP_SIGC_CALL_OFFERING);

    advance_to(t0 + WZP_SEC(9));
    assert_int_equal(count_events(C, WZP_SIGC_EV_REGISTER_FAILED), 0);
    advance_to(t0 + WZP_SEC(10));
    rec_event *f = last_event(C, WZP_SIGC_EV_REGISTER_FAILED);
    assert_non_null(f);
    assert_int_equal(f->err, WZP_ERR_TIMEOUT);
    assert_int_equal(wzp_sigc_reg_state_get(W->c[C].sc), WZP_SIGC_UNREGISTERED);
    rec_event *end = last_event(A, WZP_SIGC_EV_ENDED);
    assert_non_null(end);
    assert_int_equal(end->call, call);
    assert_int_equal(end->err, WZP_ERR_TIMEOUT);
    assert_true(wzp_sigc_next_deadline(W->c[A].sc) == WZP_TS_NEVER);
}

static void test_client_api_misuse(void **state)
{
    (void)state;
    connect_as(A, 0xa1, "198.51.100.1:40000");
    uint32_t call;
    uint8_t fp[WZP_SIG_FP_LEN] = {0};
    /* Not registered yet. */
    assert_int_equal(wzp_sigc_call_fp(W->c[A].sc, fp, NULL, NULL, NULL, 0, &call, W->now),
                     WZP_ERR_STATE);
    assert_int_equal(wzp_sigc_register(W->c[A].sc, "Bad Alias", W->now), WZP_ERR_INVALID);
    register_as(A, NULL);
    assert_int_equal(wzp_sigc_call_alias(W->c[A].sc, "UPPER", NULL, NULL, 0, &call, W->now),
                     WZP_ERR_INVALID);
    assert_int_equal(wzp_sigc_call_fp(W->c[A].sc, fp, NULL, NULL, NULL, WZP_SIG_MAX_CANDIDATES + 1,
                                      &call, W->now),
                     WZP_ERR_INVALID);
    assert_int_equal(wzp_sigc_accept(W->c[A].sc, 12345, NULL, NULL, 0, W->now), WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_sigc_hangup(W->c[A].sc, 12345, false, WZP_SIG_PATH_UNSPECIFIED, W->now),
                     WZP_ERR_NOT_FOUND);

    /* Stale or unsolicited relay messages are dropped, not acted on. */
    wzp_sig_msg m;
    uint8_t buf[WZP_SIG_MAX_SIZE];
    wzp_sig_init(&m, WZP_SIG_CALL_SETUP, 0);
    m.u.setup.role = WZP_SIG_ROLE_CALLER;
    int n = wzp_sig_encode(&m, buf, sizeof(buf));
    assert_true(n > 0);
    uint64_t dropped = wzp_sigc_dropped(W->c[A].sc);
    assert_int_equal(wzp_sigc_on_message(W->c[A].sc, buf, (size_t)n, W->now), WZP_ERR_STATE);
    assert_int_equal(wzp_sigc_on_message(W->c[A].sc, buf, 3, W->now), WZP_ERR_MALFORMED);
    assert_true(wzp_sigc_dropped(W->c[A].sc) == dropped + 2);
    assert_int_equal(count_events(A, WZP_SIGC_EV_SETUP), 0);
}

static void test_calls_per_identity_configurable(void **state)
{
    (void)state;
    wzp_relay_control_config cfg = default_config();
    cfg.max_calls_per_identity = 2;
    restart_with(&cfg);
    join_cast(4);
    uint32_t ac, bc;
    establish(A, B, &ac, &bc);
    /* B may take a second call now; a third is busy. */
    place_call(C, B);
    assert_int_equal(count_events(B, WZP_SIGC_EV_INCOMING), 2);
    assert_int_equal(count_events(C, WZP_SIGC_EV_RINGING), 1);
    place_call(D, B);
    assert_int_equal(last_event(D, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_BUSY);
    assert_int_equal(count_events(B, WZP_SIGC_EV_INCOMING), 2);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 2);
}

static void test_connection_edge_cases(void **state)
{
    (void)state;
    connect_as(A, 0xa1, "198.51.100.1:40000");
    /* The same handle twice, or an address without a port, is refused. */
    assert_int_equal(
        wzp_relay_control_on_connect(W->rc, W->c[A].conn, W->c[A].fp, &W->c[A].addr, W->now),
        WZP_ERR_INVALID);
    wzp_addr noport = addr("198.51.100.5:1");
    wzp_addr_set_port(&noport, 0);
    assert_int_equal(wzp_relay_control_on_connect(W->rc, 4242, W->c[A].fp, &noport, W->now),
                     WZP_ERR_INVALID);
    /* No ReflexiveAddress before registering: the Registered reply carries it. */
    wzp_addr moved = addr("198.51.100.1:40009");
    wzp_relay_control_on_addr_change(W->rc, W->c[A].conn, &moved, W->now);
    pump();
    assert_int_equal(W->c[A].raw_len, 0);
    register_as(A, "");
    assert_true(
        wzp_addr_equal(&last_event(A, WZP_SIGC_EV_REGISTERED)->msg.u.registered.reflexive, &moved));
    /* Unregistered connections do not count against registrations. */
    connect_as(B, 0xb2, "198.51.100.2:40000");
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 1);
    assert_int_equal(wzp_relay_control_num_conns(W->rc), 2);
    /* A bad config is refused. */
    wzp_relay_control_config cfg;
    wzp_relay_control_config_default(&cfg);
    cfg.rate_per_sec = 0;
    cfg.cb = (wzp_relay_control_callbacks){.send = relay_send, .close = relay_close};
    wzp_relay_control *bad = NULL;
    assert_int_equal(wzp_relay_control_new(&bad, &cfg), WZP_ERR_INVALID);
    assert_null(bad);
    /* The callbacks are required: no NULL config. */
    assert_int_equal(wzp_relay_control_new(&bad, NULL), WZP_ERR_INVALID);
}

static void test_client_full_answers_busy(void **state)
{
    (void)state;
    teardown(NULL);
    wzp_relay_control_config cfg;
    wzp_relay_control_config_default(&cfg);
    cfg.max_calls_per_identity = 0; /* unlimited at the relay */
    assert_int_equal(setup_with(&cfg), 0);
    join_cast(3);
    /* B's signaling holds at most 4 calls (default); the fifth is refused as busy at once. */
    for (int i = 0; i < 3; i++)
        place_call(A, B);
    place_call(C, B);
    assert_int_equal(count_events(C, WZP_SIGC_EV_ENDED), 0);
    place_call(C, B);
    assert_int_equal(count_events(B, WZP_SIGC_EV_INCOMING), 4);
    assert_int_equal(count_events(A, WZP_SIGC_EV_ENDED), 0);
    assert_int_equal(count_events(C, WZP_SIGC_EV_ENDED), 1);
    assert_int_equal(last_event(C, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_BUSY);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 4);
}

static void send_update(size_t i, const uint8_t *id, uint64_t rid)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_CANDIDATES_UPDATE, rid);
    memcpy(m.u.update.call_id, id, WZP_SIG_CALL_ID_LEN);
    m.u.update.cands.n = caller_cands(m.u.update.cands.c);
    send_raw(i, &m);
}

static void test_candidates_update_only_after_setup(void **state)
{
    (void)state;
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    uint32_t ac = ringing_with_mallory(id);

    /* While ringing, the caller cannot slip its addresses to the callee this way. */
    wzp_sig_candidate cands[2];
    size_t n = caller_cands(cands);
    assert_int_equal(wzp_sigc_update_candidates(W->c[A].sc, ac, cands, n, W->now), WZP_ERR_STATE);
    send_update(A, id, 800);
    assert_int_equal(last_event(A, WZP_SIGC_EV_ERROR)->msg.u.error.code, WZP_SIG_ERR_STATE);
    assert_no_caller_addresses(B, A);
    assert_int_equal(count_events(B, WZP_SIGC_EV_CANDIDATES), 0);

    accept_call(B, last_event(B, WZP_SIGC_EV_INCOMING)->call);
    uint32_t bc = last_event(B, WZP_SIGC_EV_SETUP)->call;

    /* After setup the callee learns a new candidate of the caller's, and vice versa. */
    wzp_sig_candidate fresh = {WZP_SIG_CAND_SRFLX, 99, addr("203.0.113.78:6001")};
    assert_int_equal(wzp_sigc_update_candidates(W->c[A].sc, ac, &fresh, 1, W->now), 0);
    pump();
    rec_event *u = last_event(B, WZP_SIGC_EV_CANDIDATES);
    assert_non_null(u);
    assert_int_equal(u->call, bc);
    assert_int_equal(u->msg.u.update.cands.n, 1);
    assert_true(wzp_addr_equal(&u->msg.u.update.cands.c[0].addr, &fresh.addr));
    assert_int_equal(wzp_sigc_update_candidates(W->c[B].sc, bc, &fresh, 1, W->now), 0);
    pump();
    assert_int_equal(last_event(A, WZP_SIGC_EV_CANDIDATES)->call, ac);

    /* Not for third parties. */
    send_update(C, id, 801);
    assert_int_equal(last_event(C, WZP_SIGC_EV_ERROR)->msg.u.error.code, WZP_SIG_ERR_NO_SUCH_CALL);
    assert_int_equal(count_events(A, WZP_SIGC_EV_CANDIDATES), 1);
    assert_int_equal(count_events(B, WZP_SIGC_EV_CANDIDATES), 1);
}

static void test_channels_follow_rebinding(void **state)
{
    (void)state;
    join_cast(4);
    uint32_t ac, bc;
    establish(A, B, &ac, &bc);
    uint32_t chan_a = W->chan_a, chan_b = W->chan_b;
    place_call(C, D); /* ringing: its channels are open already */

    wzp_addr moved = addr("198.51.100.1:40123");
    wzp_relay_control_on_addr_change(W->rc, W->c[A].conn, &moved, W->now);
    assert_int_equal(W->n_moved, 1);
    assert_int_equal(W->moved_chan, chan_a);
    assert_true(wzp_addr_equal(&W->moved_addr, &moved));
    moved = addr("198.51.100.2:40777");
    wzp_relay_control_on_addr_change(W->rc, W->c[B].conn, &moved, W->now);
    assert_int_equal(W->n_moved, 2);
    assert_int_equal(W->moved_chan, chan_b);
    moved = addr("198.51.100.3:40777");
    wzp_relay_control_on_addr_change(W->rc, W->c[C].conn, &moved, W->now);
    assert_int_equal(W->n_moved, 3); /* a ringing call's channel follows too */
    pump();
    assert_int_equal(count_events(A, WZP_SIGC_EV_REFLEXIVE), 1);
    assert_int_equal(count_events(C, WZP_SIGC_EV_REFLEXIVE), 1);
}

/* ---- parked registrations ------------------------------------------------------ */

/* A relay that offers Park after 2 s idle, pings every 4 s; n clients join (join_cast) and
 * stay idle until all are offered Park. */
static void restart_parking(size_t n)
{
    wzp_relay_control_config cfg = default_config();
    cfg.park_after = WZP_SEC(2);
    cfg.park_keepalive = WZP_SEC(4);
    cfg.cb.park_send = park_frame_out; /* a marker: setup_with wires its own */
    restart_with(&cfg);
    join_cast(n);
    advance_to(W->now + WZP_SEC(2));
}

/* Client i takes its last Park offer: closes its connection with the parked code. */
static void park(size_t i)
{
    tclient *t = &W->c[i];
    assert_true(t->n_park > 0);
    wzp_relay_control_on_parked(W->rc, t->conn);
    wzp_relay_control_on_disconnect(W->rc, t->conn, W->now);
    t->conn = 0; /* nothing reaches the old connection */
}

/* Client i's PARK_PING seq, signed with `key` (NULL: its own). */
static void park_ping(size_t i, uint64_t seq, const uint8_t *key)
{
    tclient *t = &W->c[i];
    wzp_park_frame f = {.type = WZP_PARK_FRAME_PING, .seq = seq};
    memcpy(f.park_id, t->park_id, WZP_PARK_ID_LEN);
    uint8_t buf[WZP_PARK_FRAME_LEN];
    assert_int_equal(wzp_park_frame_encode(buf, &f, key ? key : t->park_key), 0);
    wzp_relay_control_on_park_frame(W->rc, &t->addr, buf, sizeof(buf), W->now);
    pump();
}

static size_t frames_of(uint8_t type, uint8_t flags)
{
    size_t n = 0;
    for (size_t k = 0; k < W->n_frames; k++)
        n += W->frames[k].f.type == type && W->frames[k].f.flags == flags;
    return n;
}

static size_t index_of(size_t i, wzp_sigc_event_type type)
{
    for (size_t k = 0; k < W->c[i].n_ev; k++)
        if (W->c[i].ev[k].type == type)
            return k;
    return SIZE_MAX;
}

static void test_park_offered_when_idle(void **state)
{
    (void)state;
    restart_parking(0);
    join_cast(3);
    uint32_t ac = place_call(A, B); /* A and B are busy: ringing */
    advance_to(W->now + WZP_MS(1999));
    assert_int_equal(W->c[C].n_park, 0);
    advance_to(W->now + WZP_MS(1));
    assert_int_equal(W->c[C].n_park, 1);
    assert_int_equal(W->c[C].keepalive_ms, 4000);
    assert_int_equal(W->c[A].n_park + W->c[B].n_park, 0);
    advance_to(W->now + WZP_SEC(5));
    assert_int_equal(W->c[A].n_park + W->c[B].n_park, 0);
    /* The call ends: both are offered Park after another idle period. */
    assert_int_equal(wzp_sigc_hangup(W->c[A].sc, ac, false, WZP_SIG_PATH_UNSPECIFIED, W->now), 0);
    pump();
    advance_to(W->now + WZP_SEC(3));
    assert_int_equal(W->c[A].n_park, 1);
    assert_int_equal(W->c[B].n_park, 1);
    /* C ignored its offer (an old client): it lapsed, and C is not offered again. */
    assert_int_equal(W->c[C].n_park, 1);
    assert_int_equal(rc_stats(W->rc).parks_lapsed, 1);
    assert_int_equal(rc_stats(W->rc).parks_offered, 3);
}

static void test_park_pings_and_expiry(void **state)
{
    (void)state;
    restart_parking(2);
    park(A);
    assert_int_equal(wzp_relay_control_num_parked(W->rc), 1);
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 2);
    assert_int_equal(wzp_relay_control_num_conns(W->rc), 1);
    assert_int_equal(wzp_relay_control_lookup(W->rc, W->c[A].fp), 0);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 2);

    park_ping(A, 1, NULL);
    assert_int_equal(frames_of(WZP_PARK_FRAME_PONG, 0), 1);
    assert_int_equal(W->frames[0].f.seq, 1);
    assert_true(wzp_addr_equal(&W->frames[0].to, &W->c[A].addr));
    park_ping(A, 1, NULL); /* replayed */
    uint8_t wrong[WZP_PARK_KEY_LEN] = {0};
    park_ping(A, 2, wrong);
    assert_int_equal(frames_of(WZP_PARK_FRAME_PONG, 0), 1);
    wzp_relay_control_stats st = rc_stats(W->rc);
    assert_int_equal(st.park.pings[WZP_PARK_PING_REPLAY], 1);
    assert_int_equal(st.park.pings[WZP_PARK_PING_BAD_MAC], 1);

    for (uint64_t seq = 2; seq < 7; seq++) {
        advance_to(W->now + WZP_SEC(4));
        park_ping(A, seq, NULL);
    }
    assert_int_equal(wzp_relay_control_num_parked(W->rc), 1);
    /* Silent for 3 keep-alives: the registration ends as a disconnect does. */
    advance_to(W->now + WZP_SEC(12));
    assert_int_equal(wzp_relay_control_num_parked(W->rc), 0);
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 1);
    assert_int_equal(rc_stats(W->rc).parks_expired, 1);
    assert_int_equal(wzp_relay_control_num_aliases(W->rc), 2); /* held for alias_reclaim */
    /* Nobody is there now. */
    uint32_t bc = place_call(B, A);
    assert_ended(B, bc, WZP_SIG_END_OFFLINE, ANY_ERR);
}

static void test_park_call_wakes_callee(void **state)
{
    (void)state;
    restart_parking(2);
    park(B);
    wzp_relay_control_stats st0 = rc_stats(W->rc);
    assert_int_equal(st0.parks_taken, 1);
    uint32_t ac = place_call(A, B); /* A declines its own offer by calling */
    assert_int_equal(frames_of(WZP_PARK_FRAME_WAKE, 0), 1);
    assert_true(wzp_addr_equal(&W->frames[0].to, &W->c[B].addr));
    assert_int_equal(count_events(A, WZP_SIGC_EV_RINGING), 0); /* not before B hears of it */
    advance_to(W->now + WZP_MS(250));
    assert_int_equal(frames_of(WZP_PARK_FRAME_WAKE, 0), 2);

    /* Woken, B connects again (a new port) and registers: Registered, then the call. */
    size_t moved = W->n_moved;
    join(B, 0xb2, "198.51.100.2:40001", "bob");
    assert_int_equal(wzp_relay_control_num_parked(W->rc), 0);
    assert_int_equal(rc_stats(W->rc).unparked, 1);
    assert_true(index_of(B, WZP_SIGC_EV_REGISTERED) < index_of(B, WZP_SIGC_EV_INCOMING));
    assert_int_equal(count_events(A, WZP_SIGC_EV_RINGING), 1);
    assert_int_equal(W->n_moved, moved + 1); /* B's channel follows its new address */
    assert_int_equal(W->moved_chan, W->chan_b);
    advance_to(W->now + WZP_SEC(1));
    assert_int_equal(frames_of(WZP_PARK_FRAME_WAKE, 0), 2); /* no more WAKEs */
    rec_event *in = last_event(B, WZP_SIGC_EV_INCOMING);
    accept_call(B, in->call);
    assert_int_equal(wzp_sigc_call_state_get(W->c[A].sc, ac), WZP_SIGC_CALL_SETUP);
    assert_int_equal(wzp_relay_control_lookup(W->rc, W->c[B].fp), W->c[B].conn);
}

static void test_park_unwoken_callee_is_offline(void **state)
{
    (void)state;
    restart_parking(2);
    park(B);
    uint32_t ac = place_call(A, B);
    for (int k = 0; k < 6; k++) { /* B still pings, but does not come back */
        advance_to(W->now + WZP_MS(500));
        park_ping(B, (uint64_t)k + 1, NULL);
    }
    assert_ended(A, ac, WZP_SIG_END_OFFLINE, ANY_ERR);
    assert_int_equal(count_events(A, WZP_SIGC_EV_RINGING), 0);
    assert_int_equal(wzp_relay_control_num_calls(W->rc), 0);
    assert_int_equal(wzp_relay_control_num_parked(W->rc), 1);
    assert_int_equal(rc_stats(W->rc).park.wakes_failed, 1);
    size_t wakes = frames_of(WZP_PARK_FRAME_WAKE, 0);
    advance_to(W->now + WZP_SEC(3));
    assert_int_equal(frames_of(WZP_PARK_FRAME_WAKE, 0), wakes);
}

static void test_park_declined_or_taken_by_ping(void **state)
{
    (void)state;
    restart_parking(2);
    /* B calls A while A's offer is open: the IncomingCall waits for A's answer... */
    place_call(B, A);
    assert_int_equal(count_events(A, WZP_SIGC_EV_INCOMING), 0);
    assert_int_equal(count_events(B, WZP_SIGC_EV_RINGING), 0);
    /* ...which is a message: A was busy after all. */
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_PING, 77);
    send_raw(A, &m);
    assert_int_equal(count_events(A, WZP_SIGC_EV_INCOMING), 1);
    assert_int_equal(count_events(B, WZP_SIGC_EV_RINGING), 1);
    assert_int_equal(rc_stats(W->rc).parks_declined, 2); /* B's by its Offer, A's */

    /* A valid ping before the close arrives: parked, and the relay closes the connection. */
    restart_parking(1);
    park_ping(A, 1, NULL);
    assert_true(W->c[A].closed);
    assert_int_equal(W->c[A].close_code, WZP_RELAY_CLOSE_PARKED);
    assert_int_equal(wzp_relay_control_num_parked(W->rc), 1);
    assert_int_equal(wzp_relay_control_num_conns(W->rc), 0);
    wzp_relay_control_on_disconnect(W->rc, W->c[A].conn, W->now); /* the close, late */
    assert_int_equal(wzp_relay_control_num_parked(W->rc), 1);
}

static void test_park_drain_wakes_to_rehome(void **state)
{
    (void)state;
    restart_parking(2);
    park(A);
    wzp_relay_control_drain(W->rc);
    assert_int_equal(frames_of(WZP_PARK_FRAME_WAKE, WZP_PARK_REHOME), 1);
    advance_to(W->now + WZP_MS(250));
    assert_int_equal(frames_of(WZP_PARK_FRAME_WAKE, WZP_PARK_REHOME), 2);
    advance_to(W->now + WZP_SEC(3)); /* told to go: forgotten */
    assert_int_equal(wzp_relay_control_num_parked(W->rc), 0);
    assert_int_equal(wzp_relay_control_num_registrations(W->rc), 1);
}

WZP_TEST_MAIN_EACH(NULL, NULL, setup, teardown, test_register_and_reflexive, test_alias_taken,
                   test_offer_ring_accept_hangup, test_caller_hangs_up_with_error,
                   test_reject_and_busy_reply, test_busy_when_in_a_call, test_cancel,
                   test_unanswered_call_expires, test_ring_timeout_configurable,
                   test_dropped_connection_ends_calls, test_reregistration_replaces_old_connection,
                   test_third_party_cannot_touch_a_call, test_unknown_and_offline_callees,
                   test_channel_open_failure_ends_call, test_rate_limit, test_registration_cap,
                   test_alias_held_after_disconnect, test_alias_reclaim_zero_releases_at_disconnect,
                   test_alias_rename_frees_old, test_alias_table_cap,
                   test_alias_save_load_round_trip, test_alias_store_parse, test_per_addr_cap,
                   test_per_addr_cap_default_and_off, test_unregistered_connections_time_out,
                   test_garbage_is_answered_with_errors, test_client_request_timeouts,
                   test_client_api_misuse, test_calls_per_identity_configurable,
                   test_connection_edge_cases, test_client_full_answers_busy,
                   test_candidates_update_only_after_setup, test_channels_follow_rebinding,
                   test_park_offered_when_idle, test_park_pings_and_expiry,
                   test_park_call_wakes_callee, test_park_unwoken_callee_is_offline,
                   test_park_declined_or_taken_by_ping, test_park_drain_wakes_to_rehome)
