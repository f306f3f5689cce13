/*
 * The endpoint's scheduling (timer heap + due list, quic_int.h) with many
 * connections on a virtual clock: thousands of client connections whose
 * Initials go nowhere (each with its own retransmission timers and
 * handshake timeout) beside a few real connections to a server endpoint.
 * After every step the endpoint's expiry must equal the minimum computed
 * by walking every connection, the heap must be consistent and hold only
 * live connections (ASan catches a freed one), and the timers must fire at
 * their virtual times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/test_main.h"
#include <stdlib.h>
#include <string.h>

#include <wzp/identity.h>

#include "support/id_pair.h"
#include "quic/quic_int.h"
#include "support/qnet.h"

#define N_IDLE   2000
#define N_ACTIVE 4

/* What the test knows about one connection (its user pointer). */
typedef struct tconn {
    struct world *w;
    wzp_quic_conn *c; /* NULL once closed */
    wzp_ts created;
    wzp_ts hs_timeout;
    bool established, closed;
    int err;
    wzp_ts closed_at;
} tconn;

/* Two endpoints on qnet (tests/support/qnet.h), 10 ms one way; packets to
 * any other address vanish. */
typedef struct world {
    qnet q;
    wzp_quic_endpoint *sv, *cl;
    wzp_addr sv_addr, cl_addr;
    /* A NAT in front of the client: once rebound (qnet_rebind), the server
     * sees the client's packets come from cl_nat and answers there. */
    wzp_addr cl_nat;
    /* An attacker rewrites the source of the client's next packet to this
     * (unroutable) address, once. */
    int spoof_next;
    wzp_addr spoof;
    int path_events;
    wzp_quic_conn *path_conn;
    wzp_addr path_addr;
    tconn idle[N_IDLE];
    tconn active[N_ACTIVE];
    tconn sv_conns[N_ACTIVE];
    int n_sv;
    uint64_t tx_to_server;
    bool report_paths;
} world;

static const wzp_quic_conn_callbacks conn_cbs;

static int on_accept(void *user, const wzp_addr *l, const wzp_addr *r, wzp_quic_conn_config *o,
                     wzp_ts now)
{
    world *w = user;
    (void)l;
    (void)r;
    if (w->n_sv >= N_ACTIVE)
        return -1;
    o->pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(o->pin, test_ids.fp_c, sizeof(test_ids.fp_c));
    o->initial_rtt = WZP_MS(10);
    o->idle_timeout = WZP_SEC(3);
    tconn *t = &w->sv_conns[w->n_sv++];
    t->w = w;
    t->created = now;
    o->cb = conn_cbs;
    o->user = t;
    return 0;
}

static void on_est(void *user, wzp_quic_conn *c, const uint8_t *fp, wzp_ts now)
{
    tconn *t = user;
    assert_ptr_equal(t, wzp_quic_conn_user(c));
    t->c = c;
    t->established = true;
}

static void on_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *i, wzp_ts now)
{
    tconn *t = user;
    assert_false(t->closed);                /* exactly once */
    assert_true(now == qnet_now(&t->w->q)); /* the callback reports the input's time */
    t->closed = true;
    t->err = i->error;
    t->closed_at = now;
    t->c = NULL;
}

static void on_path(void *user, wzp_quic_conn *c, const wzp_addr *remote, wzp_ts now)
{
    world *w = ((tconn *)user)->w;
    if (!w->report_paths)
        return;
    w->path_events++;
    w->path_conn = c;
    w->path_addr = *remote;
}

static const wzp_quic_callbacks cbs = {.accept = on_accept};
static const wzp_quic_conn_callbacks conn_cbs = {
    .established = on_est, .closed = on_closed, .path_changed = on_path};

static bool tap(qnet *q, qnet_pkt *p, void *arg)
{
    (void)q;
    world *w = arg;
    bool to_sv = p->to && p->to->idx == 0;
    if (to_sv && w->spoof_next > 0 && w->spoof_next-- == 1)
        p->src = w->spoof;
    if (to_sv)
        w->tx_to_server++;
    return true;
}

/* The expiry by brute force over every connection, and the structure. */
static void check_sched(const wzp_quic_endpoint *ep)
{
    assert_true(wzp_quic_ep_heap_check(ep));
    size_t n = 0, due = 0;
    wzp_ts brute = ep->n_stateless ? 0 : WZP_TS_NEVER;
    for (const wzp_quic_conn *c = ep->conns; c; c = c->next) {
        n++;
        assert_ptr_equal(c->ep, ep);
        if (c->tx_due) {
            due++;
            assert_int_equal(c->heap_slot, 0);
            brute = wzp_ts_min(brute, wzp_quic_conn_expiry(c));
        } else {
            /* Every idle connection is in the heap, at the slot it names. */
            assert_true(c->heap_slot >= 1 && c->heap_slot <= ep->heap_len);
            assert_ptr_equal(ep->heap[c->heap_slot - 1], c);
            brute = wzp_ts_min(brute, c->expiry_cache);
        }
    }
    assert_int_equal(n, wzp_quic_endpoint_conn_count(ep));
    /* heap_len + due == n with the slots above: the heap holds live ones only. */
    assert_int_equal(ep->heap_len + due, n);
    size_t listed = 0;
    for (const wzp_quic_conn *c = ep->due_head; c; c = c->due_next) {
        assert_true(c->tx_due);
        listed++;
    }
    assert_int_equal(listed, due);
    assert_int_equal(wzp_quic_endpoint_expiry(ep), brute);
    const wzp_quic_conn *top = wzp_quic_ep_heap_top(ep);
    if (top && !due && !ep->n_stateless)
        assert_int_equal(top->expiry_cache, brute); /* O(1): the top is the answer */
}

/* After a flush nothing is due and every cached expiry is the live one. */
static void check_flushed(const wzp_quic_endpoint *ep)
{
    assert_null(ep->due_head);
    for (const wzp_quic_conn *c = ep->conns; c; c = c->next)
        assert_int_equal(c->expiry_cache, wzp_quic_conn_expiry(c));
    check_sched(ep);
}

/* After every flush, delivery and timer round of the loop a relay runs. */
static void check_both(qnet *q, bool flushed, void *arg)
{
    world *w = arg;
    (void)q;
    if (flushed) {
        check_flushed(w->sv);
        check_flushed(w->cl);
    } else {
        check_sched(w->sv);
        check_sched(w->cl);
    }
}

/* Runs the loop a relay runs, jumping the clock to each next event. */
static void run_until(world *w, wzp_ts end)
{
    qnet_run(&w->q, end - qnet_now(&w->q), NULL, NULL);
}

/* Server at 127.0.0.1:4000 (node 0), client at 127.0.0.1:5000 (node 1), clock at start. */
static world *world_new(wzp_ts start)
{
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    qnet_init(&w->q, start, WZP_MS(10));
    w->q.hook = tap;
    w->q.hook_arg = w;
    w->q.check = check_both;
    w->q.check_arg = w;
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    cfg.cb = cbs;
    cfg.user = w;
    cfg.id = test_ids.s;
    cfg.server = true;
    assert_int_equal(wzp_quic_endpoint_new(&w->sv, &cfg), 0);
    cfg.id = test_ids.c;
    cfg.server = false;
    assert_int_equal(wzp_quic_endpoint_new(&w->cl, &cfg), 0);
    w->sv_addr = qnet_add_ep(&w->q, "127.0.0.1:4000", w->sv)->addr;
    w->cl_addr = qnet_add_ep(&w->q, "127.0.0.1:5000", w->cl)->addr;
    return w;
}

static void world_free(world *w)
{
    qnet_free(&w->q);
    free(w);
}

static wzp_quic_conn *dial(world *w, const wzp_addr *to, tconn *t, wzp_ts hs_timeout,
                           wzp_ts keep_alive, wzp_ts idle_timeout)
{
    wzp_quic_conn_config o;
    qnet_opts(&o, test_ids.fp_s);
    o.handshake_timeout = hs_timeout;
    o.keep_alive = keep_alive;
    o.idle_timeout = idle_timeout;
    o.cb = conn_cbs;
    o.user = t;
    t->w = w;
    t->created = qnet_now(&w->q);
    t->hs_timeout = hs_timeout;
    return t->c = qnet_connect(&w->q, &w->q.nodes[1], to, &o);
}

static void test_many_connections(void **state)
{
    (void)state;
    world *w = world_new(WZP_SEC(1000));

    /* An empty endpoint has nothing to do. */
    assert_int_equal(wzp_quic_endpoint_expiry(w->cl), WZP_TS_NEVER);

    /* The idle crowd, dialled in waves so their deadlines interleave, each
     * with its own handshake timeout (2 s to 5 s) towards a black hole. */
    for (int i = 0; i < N_IDLE; i++) {
        if (i % 100 == 0)
            run_until(w, qnet_now(&w->q) + WZP_MS(37));
        uint8_t ip[4] = {10, 0, (uint8_t)(i >> 8), (uint8_t)i};
        wzp_addr to;
        wzp_addr_from_ip(&to, AF_INET, ip, 443);
        dial(w, &to, &w->idle[i], WZP_MS(2000 + (i * 7919) % 3000), 0, 0);
    }
    /* A few real ones: keep-alive every 500 ms, idle timeout 3 s. */
    for (int i = 0; i < N_ACTIVE; i++)
        dial(w, &w->sv_addr, &w->active[i], WZP_SEC(10), WZP_MS(500), WZP_SEC(3));
    check_sched(w->cl);
    assert_int_equal(wzp_quic_endpoint_conn_count(w->cl), N_IDLE + N_ACTIVE);

    /* Close a tenth of the crowd now: they leave through closing (3 PTO). */
    for (int i = 0; i < N_IDLE; i += 10)
        wzp_quic_conn_close(w->idle[i].c, 7, "bye");
    check_sched(w->cl);

    run_until(w, qnet_now(&w->q) + WZP_SEC(1));
    for (int i = 0; i < N_ACTIVE; i++) {
        assert_true(w->active[i].established);
        assert_true(w->sv_conns[i].established);
    }
    for (int i = 0; i < N_IDLE; i += 10) {
        assert_true(w->idle[i].closed);
        assert_int_equal(w->idle[i].err, 0);
    }

    /* Quiet: flushing before any timer is due writes nothing. */
    wzp_ts next = wzp_quic_endpoint_expiry(w->cl);
    assert_true(next > qnet_now(&w->q));
    assert_int_equal(qnet_flush_node(&w->q.nodes[1]), 0);

    /* Past every handshake timeout: each idle connection closed exactly at
     * its deadline (the loop jumps to expiry times, so a late timer shows). */
    uint64_t tx0 = w->tx_to_server;
    run_until(w, qnet_now(&w->q) + WZP_SEC(6));
    for (int i = 0; i < N_IDLE; i++) {
        tconn *t = &w->idle[i];
        assert_true(t->closed);
        assert_null(t->c);
        if (i % 10 == 0)
            continue;
        assert_int_equal(t->err, WZP_ERR_TIMEOUT);
        assert_true(t->closed_at >= t->created + t->hs_timeout);
        assert_true(t->closed_at <= t->created + t->hs_timeout + WZP_MS(1));
    }
    /* Every closed connection is gone from the endpoint (and its heap). */
    assert_int_equal(wzp_quic_endpoint_conn_count(w->cl), N_ACTIVE);
    check_sched(w->cl);
    /* The active ones lived on their keep-alives: 6 s at one PING per
     * 500 ms from each, well past the 3 s idle timeout. */
    for (int i = 0; i < N_ACTIVE; i++) {
        assert_false(w->active[i].closed);
        assert_false(w->sv_conns[i].closed);
    }
    assert_true(w->tx_to_server - tx0 >= (uint64_t)N_ACTIVE * 6 * 2 - N_ACTIVE);

    /* Cut the wire: both sides' idle timers fire, after the 3 s timeout. */
    wzp_ts cut_at = qnet_now(&w->q);
    w->q.cut = true;
    run_until(w, qnet_now(&w->q) + WZP_SEC(10));
    for (int i = 0; i < N_ACTIVE; i++) {
        tconn *ts[2] = {&w->active[i], &w->sv_conns[i]};
        for (int k = 0; k < 2; k++) {
            assert_true(ts[k]->closed);
            assert_int_equal(ts[k]->err, WZP_ERR_TIMEOUT);
            assert_true(ts[k]->closed_at >= cut_at + WZP_MS(2500));
            assert_true(ts[k]->closed_at <= cut_at + WZP_SEC(4));
        }
    }
    assert_int_equal(wzp_quic_endpoint_conn_count(w->cl), 0);
    assert_int_equal(wzp_quic_endpoint_conn_count(w->sv), 0);
    assert_int_equal(wzp_quic_endpoint_expiry(w->cl), WZP_TS_NEVER);
    assert_int_equal(wzp_quic_endpoint_expiry(w->sv), WZP_TS_NEVER);
    world_free(w);
}

/* Freeing the endpoint with connections in the heap and on the due list. */
static void test_free_with_scheduled_conns(void **state)
{
    (void)state;
    world *w = world_new(WZP_SEC(5));
    for (int i = 0; i < 200; i++) {
        uint8_t ip[4] = {10, 1, 0, (uint8_t)i};
        wzp_addr to;
        wzp_addr_from_ip(&to, AF_INET, ip, 443);
        dial(w, &to, &w->idle[i], WZP_SEC(3), 0, 0);
        if (i == 99)
            qnet_flush(&w->q); /* the first hundred go to the heap */
    }
    check_sched(w->cl);
    assert_int_equal(w->cl->heap_len, 100);
    world_free(w);
}

/* NAT rebinding: the server follows the client's new address and says so,
 * once; nothing fires without a change. */
/* A client connected to a server that reports path changes; *c = the client's connection. */
static world *path_world(wzp_quic_conn **c)
{
    world *w = world_new(WZP_SEC(5));
    wzp_addr_parse(&w->cl_nat, "127.0.0.1:5999", false);
    wzp_addr_parse(&w->spoof, "192.0.2.66:6666", false);
    w->report_paths = true; /* both ends' connections report path changes */
    *c = dial(w, &w->sv_addr, &w->active[0], WZP_SEC(10), WZP_MS(500), WZP_SEC(30));
    run_until(w, qnet_now(&w->q) + WZP_SEC(2));
    assert_true(w->sv_conns[0].established);
    assert_int_equal(w->path_events, 0);
    return w;
}

static void test_path_changed_event(void **state)
{
    (void)state;
    wzp_quic_conn *c;
    world *w = path_world(&c);

    qnet_rebind(&w->q.nodes[1], "127.0.0.1:5999");
    for (int i = 0; i < 10; i++) {
        assert_int_equal(wzp_quic_conn_send_message(c, (const uint8_t *)"hi", 2), 0);
        run_until(w, qnet_now(&w->q) + WZP_MS(100));
    }
    assert_int_equal(w->path_events, 1);
    assert_ptr_equal(w->path_conn, w->sv_conns[0].c);
    assert_true(wzp_addr_equal(&w->path_addr, &w->cl_nat));
    wzp_addr ra;
    wzp_quic_conn_remote_addr(w->sv_conns[0].c, &ra);
    assert_true(wzp_addr_equal(&ra, &w->cl_nat));
    run_until(w, qnet_now(&w->q) + WZP_SEC(3)); /* keep-alives on the new path */
    assert_int_equal(w->path_events, 1);
    assert_false(w->active[0].closed);
    assert_false(w->sv_conns[0].closed);
    world_free(w);
}

/* One packet with a rewritten source moves ngtcp2 to that address at once,
 * but the peer never proves it: the owner is never told, and the server ends
 * up back on the client's real address. */
static void test_path_unvalidated_not_reported(void **state)
{
    (void)state;
    wzp_quic_conn *c;
    world *w = path_world(&c);

    w->spoof_next = 2; /* the second packet from now */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(wzp_quic_conn_send_message(c, (const uint8_t *)"hi", 2), 0);
        run_until(w, qnet_now(&w->q) + WZP_MS(100));
    }
    assert_int_equal(w->spoof_next, 0);
    run_until(w, qnet_now(&w->q) + WZP_SEC(3));
    assert_int_equal(w->path_events, 0);
    wzp_addr ra;
    wzp_quic_conn_remote_addr(w->sv_conns[0].c, &ra);
    assert_true(wzp_addr_equal(&ra, &w->cl_addr));
    assert_false(w->active[0].closed);
    assert_false(w->sv_conns[0].closed);
    world_free(w);
}

WZP_TEST_MAIN(id_pair_group_setup, id_pair_group_teardown, test_many_connections,
              test_free_with_scheduled_conns, test_path_changed_event,
              test_path_unvalidated_not_reported)
