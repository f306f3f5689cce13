/*
 * The sans-I/O QUIC layer: endpoint pairs wired through an in-memory network
 * on a virtual clock, and the same over real loopback UDP sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"
#include "net/udp.h"
#include "quic/quic.h"

/* ---- identities shared by all tests (key generation is the slow part) ---- */

static wzp_identity *id_server, *id_client[5];
static uint8_t fp_server[32], fp_client[5][32];

static int group_setup(void **state)
{
    (void)state;
    if (wzp_identity_generate(&id_server))
        return -1;
    wzp_identity_fingerprint(id_server, fp_server);
    for (int i = 0; i < 5; i++) {
        if (wzp_identity_generate(&id_client[i]))
            return -1;
        wzp_identity_fingerprint(id_client[i], fp_client[i]);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    wzp_identity_free(id_server);
    for (int i = 0; i < 5; i++)
        wzp_identity_free(id_client[i]);
    return 0;
}

/* ---- per-endpoint event recorder ---- */

#define MAXNODES 8

typedef struct rec {
    int established, closed;
    uint64_t dgrams, dgram_bytes, msgs;
    size_t last_msg_len;
    uint8_t last_msg[256];
    int close_err;
    bool close_by_peer;
    uint64_t close_app;
    char close_reason[256], close_detail[256];
    uint8_t peer_fp[32];
    wzp_quic_conn *conn; /* last established (or connected) connection */
    int nconns;
    wzp_quic_conn *conns[MAXNODES];
    /* server policy */
    wzp_quic_pin_mode pin_mode;
    uint8_t pin[32];
    size_t max_message;
    wzp_ts idle, keep_alive;
    bool refuse;
    bool echo;  /* echo datagrams back */
    bool greet; /* send a datagram as soon as established */
} rec;

static int on_accept(void *user, const wzp_addr *l, const wzp_addr *r, wzp_quic_conn_opts *o)
{
    rec *e = user;
    if (e->refuse)
        return -1;
    o->pin_mode = e->pin_mode;
    memcpy(o->pin, e->pin, 32);
    if (e->max_message)
        o->max_message = e->max_message;
    if (e->idle)
        o->idle_timeout = e->idle;
    o->keep_alive = e->keep_alive;
    o->initial_rtt = WZP_MS(10);
    return 0;
}

static void on_established(void *user, wzp_quic_conn *c, const uint8_t fp[32])
{
    rec *e = user;
    e->established++;
    memcpy(e->peer_fp, fp, 32);
    e->conn = c;
    if (e->nconns < MAXNODES)
        e->conns[e->nconns++] = c;
    if (e->greet)
        assert_int_equal(wzp_quic_conn_send_datagram(c, (const uint8_t *)"welcome", 7), 0);
}

static void on_datagram(void *user, wzp_quic_conn *c, const uint8_t *d, size_t n)
{
    rec *e = user;
    e->dgrams++;
    e->dgram_bytes += n;
    if (e->echo)
        wzp_quic_conn_send_datagram(c, d, n);
}

static void on_message(void *user, wzp_quic_conn *c, const uint8_t *d, size_t n)
{
    rec *e = user;
    e->msgs++;
    e->last_msg_len = n;
    memcpy(e->last_msg, d, n < sizeof(e->last_msg) ? n : sizeof(e->last_msg));
}

static void on_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *i)
{
    rec *e = user;
    e->closed++;
    if (getenv("QDEBUG"))
        fprintf(stderr, "closed: err=%d peer=%d detail=%s\n", i->error, i->by_peer, i->detail);
    e->close_err = i->error;
    e->close_by_peer = i->by_peer;
    e->close_app = i->app_code;
    snprintf(e->close_reason, sizeof(e->close_reason), "%s", i->reason);
    snprintf(e->close_detail, sizeof(e->close_detail), "%s", i->detail);
    assert_string_equal(i->detail, wzp_quic_conn_error_detail(c));
    if (e->conn == c)
        e->conn = NULL;
    for (int k = 0; k < e->nconns; k++)
        if (e->conns[k] == c)
            e->conns[k] = NULL;
}

static const wzp_quic_callbacks callbacks = {
    .accept = on_accept,
    .established = on_established,
    .datagram = on_datagram,
    .message = on_message,
    .closed = on_closed,
};

/* ---- in-memory network on a virtual clock ---- */

typedef struct pkt {
    struct pkt *next;
    wzp_ts at;
    int to;
    wzp_addr from;
    size_t len;
    uint8_t data[];
} pkt;

typedef struct node {
    struct net *net;
    int idx;
    wzp_quic_endpoint *ep;
    wzp_addr addr;   /* what the node passes as its local address */
    wzp_addr public; /* what others see as its source (a NAT may rewrite it) */
    rec ev;
} node;

typedef struct net {
    node nodes[MAXNODES];
    int n;
    pkt *head, *tail;
    wzp_ts now, latency;
    /* capture: keep a copy of every packet, for replay tests */
    bool capture;
    pkt *cap_head, *cap_tail;
    size_t captured;
    int drop_to; /* -1 none: drop everything sent to this node */
    size_t unroutable;
} net;

static void net_send(void *user, const wzp_addr *l, const wzp_addr *r, const uint8_t *d, size_t n)
{
    node *src = user;
    net *nt = src->net;
    int to = -1;
    for (int i = 0; i < nt->n; i++)
        if (wzp_addr_equal(&nt->nodes[i].public, r))
            to = i;
    if (to < 0) {
        nt->unroutable++; /* e.g. to a NAT mapping that no longer exists */
        return;
    }
    if (getenv("QDEBUG")) {
        char x[64], y[64];
        fprintf(stderr, "t=%llu send %d->%d len %zu first %02x l=%s r=%s\n",
                (unsigned long long)(nt->now / 1000000), src->idx, to, n, d[0],
                wzp_addr_format(l, x, 64), wzp_addr_format(r, y, 64));
    }
    assert_true(n <= WZP_QUIC_MAX_PACKET);
    if (to == nt->drop_to)
        return;
    pkt *p = malloc(sizeof(*p) + n);
    p->next = NULL;
    p->at = nt->now + nt->latency;
    p->to = to;
    p->from = src->public;
    p->len = n;
    memcpy(p->data, d, n);
    if (nt->tail)
        nt->tail->next = p;
    else
        nt->head = p;
    nt->tail = p;
    if (nt->capture) {
        pkt *q = malloc(sizeof(*q) + n);
        memcpy(q, p, sizeof(*q) + n);
        q->next = NULL;
        if (nt->cap_tail)
            nt->cap_tail->next = q;
        else
            nt->cap_head = q;
        nt->cap_tail = q;
        nt->captured++;
    }
}

static void net_init(net *nt)
{
    memset(nt, 0, sizeof(*nt));
    nt->now = WZP_SEC(1000);
    nt->latency = WZP_MS(1);
    nt->drop_to = -1;
}

static node *net_add(net *nt, const wzp_identity *id, bool server)
{
    node *nd = &nt->nodes[nt->n];
    nd->net = nt;
    nd->idx = nt->n;
    char a[32];
    snprintf(a, sizeof(a), "10.0.0.%d:4433", nt->n + 1);
    wzp_addr_parse(&nd->addr, a, false);
    nd->public = nd->addr;
    assert_int_equal(wzp_quic_endpoint_new(id, server, &callbacks, &nd->ev, &nd->ep), 0);
    nt->n++;
    return nd;
}

static void free_list(pkt *p)
{
    while (p) {
        pkt *n = p->next;
        free(p);
        p = n;
    }
}

static void net_free(net *nt)
{
    for (int i = 0; i < nt->n; i++)
        wzp_quic_endpoint_free(nt->nodes[i].ep);
    free_list(nt->head);
    free_list(nt->cap_head);
}

static void net_flush(net *nt)
{
    for (int i = 0; i < nt->n; i++)
        wzp_quic_endpoint_flush(nt->nodes[i].ep, nt->now, net_send, &nt->nodes[i]);
}

/* Runs the network until `until` (virtual time) or until done() holds. */
static void net_run(net *nt, wzp_ts dur, bool (*done)(net *))
{
    wzp_ts end = nt->now + dur;
    for (;;) {
        net_flush(nt);
        if (done && done(nt))
            return;
        wzp_ts next = end;
        if (nt->head && nt->head->at < next)
            next = nt->head->at;
        for (int i = 0; i < nt->n; i++) {
            wzp_ts t = wzp_quic_endpoint_expiry(nt->nodes[i].ep);
            if (t < next)
                next = t;
        }
        if (next < nt->now)
            next = nt->now;
        if (next >= end && (!nt->head || nt->head->at >= end)) {
            nt->now = end;
            for (int i = 0; i < nt->n; i++)
                wzp_quic_endpoint_handle_expiry(nt->nodes[i].ep, nt->now);
            net_flush(nt);
            return;
        }
        nt->now = next;
        while (nt->head && nt->head->at <= nt->now) {
            pkt *p = nt->head;
            nt->head = p->next;
            if (!nt->head)
                nt->tail = NULL;
            node *d = &nt->nodes[p->to];
            wzp_quic_endpoint_feed(d->ep, &d->addr, &p->from, p->data, p->len, nt->now);
            free(p);
        }
        for (int i = 0; i < nt->n; i++)
            wzp_quic_endpoint_handle_expiry(nt->nodes[i].ep, nt->now);
    }
}

static wzp_quic_conn *dial(net *nt, node *cl, node *sv, const uint8_t *pin)
{
    wzp_quic_conn_opts o;
    wzp_quic_conn_opts_default(&o);
    memcpy(o.pin, pin, 32);
    o.initial_rtt = WZP_MS(10);
    wzp_quic_conn *c;
    assert_int_equal(wzp_quic_connect(cl->ep, &cl->addr, &sv->public, &o, nt->now, &c), 0);
    return c;
}

static bool all_settled(net *nt)
{
    for (int i = 0; i < nt->n; i++) {
        rec *e = &nt->nodes[i].ev;
        if (e->established + e->closed == 0)
            return false;
    }
    return !nt->head;
}

static void server_pins(node *sv, int client)
{
    sv->ev.pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(sv->ev.pin, fp_client[client], 32);
}

/* ---- tests ---- */

static void test_handshake_datagrams_messages_close(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    wzp_quic_conn *c = dial(&nt, cl, sv, fp_server);
    assert_false(wzp_quic_conn_is_established(c));
    assert_int_equal(wzp_quic_conn_send_datagram(c, (const uint8_t *)"x", 1), WZP_ERR_AGAIN);
    uint8_t early[16];
    assert_int_equal(wzp_quic_conn_export(c, "EXPORTER-wzp-probe", NULL, 0, early, 16),
                     WZP_ERR_STATE);
    net_run(&nt, WZP_SEC(5), all_settled);
    if (getenv("QDEBUG")) {
        const wzp_quic_stats *a = wzp_quic_endpoint_stats(sv->ep),
                             *b = wzp_quic_endpoint_stats(cl->ep);
        fprintf(stderr,
                "sv rx %lu tx %lu unk %lu mal %lu ref %lu; cl rx %lu tx %lu unk %lu mal %lu nq %lu "
                "ver %lu cc %lu\n",
                a->rx_packets, a->tx_packets, a->rx_unknown_cid, a->rx_malformed, a->rx_refused,
                b->rx_packets, b->tx_packets, b->rx_unknown_cid, b->rx_malformed, b->rx_not_quic,
                b->rx_bad_version, b->rx_closed_conn);
    }
    assert_int_equal(cl->ev.established, 1);
    assert_int_equal(sv->ev.established, 1);
    assert_memory_equal(cl->ev.peer_fp, fp_server, 32);
    assert_memory_equal(sv->ev.peer_fp, fp_client[0], 32);
    wzp_quic_conn *s = sv->ev.conn;
    assert_non_null(s);
    assert_true(wzp_quic_conn_is_server(s));
    uint8_t fp[32];
    assert_int_equal(wzp_quic_conn_peer_fingerprint(c, fp), 0);
    assert_memory_equal(fp, fp_server, 32);

    /* Keying material agrees on both sides and depends on the label. */
    uint8_t k1[32], k2[32], k3[32];
    assert_int_equal(wzp_quic_conn_export(c, "EXPORTER-wzp-probe", NULL, 0, k1, 32), 0);
    assert_int_equal(wzp_quic_conn_export(s, "EXPORTER-wzp-probe", NULL, 0, k2, 32), 0);
    assert_int_equal(wzp_quic_conn_export(s, "EXPORTER-wzp-other", NULL, 0, k3, 32), 0);
    assert_memory_equal(k1, k2, 32);
    assert_memory_not_equal(k1, k3, 32);

    /* The server speaks first on the message channel. */
    assert_int_equal(wzp_quic_conn_send_message(s, (const uint8_t *)"hello client", 12), 0);
    assert_int_equal(wzp_quic_conn_send_message(c, (const uint8_t *)"hello server", 12), 0);
    net_run(&nt, WZP_MS(200), NULL);
    assert_int_equal(cl->ev.msgs, 1);
    assert_int_equal(sv->ev.msgs, 1);
    assert_memory_equal(cl->ev.last_msg, "hello client", 12);
    assert_memory_equal(sv->ev.last_msg, "hello server", 12);

    /* 10,000 datagrams each way, in bursts the queue takes. */
    uint8_t payload[160];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    int sent_c = 0, sent_s = 0;
    for (int round = 0; round < 10000 && (sent_c < 10000 || sent_s < 10000); round++) {
        while (sent_c < 10000 && wzp_quic_conn_send_datagram(c, payload, sizeof(payload)) == 0)
            sent_c++;
        while (sent_s < 10000 && wzp_quic_conn_send_datagram(s, payload, 100) == 0)
            sent_s++;
        net_run(&nt, WZP_MS(2), NULL);
    }
    net_run(&nt, WZP_MS(200), NULL);
    assert_int_equal(sent_c, 10000);
    assert_int_equal(sent_s, 10000);
    assert_int_equal(sv->ev.dgrams, 10000);
    assert_int_equal(cl->ev.dgrams, 10000);
    assert_int_equal(sv->ev.dgram_bytes, 10000 * sizeof(payload));
    assert_int_equal(wzp_quic_conn_send_datagram(c, payload, WZP_QUIC_MAX_DATAGRAM + 1),
                     WZP_ERR_TOO_BIG);

    wzp_quic_conn_stats st;
    wzp_quic_conn_get_stats(c, &st);
    assert_true(st.smoothed_rtt > 0);
    assert_true(st.min_rtt > 0);
    assert_int_equal(st.dgrams_sent, 10000);
    assert_true(st.pkts_sent > 0 && st.pkts_recv > 0);

    /* Clean close with an application code and reason. */
    wzp_quic_conn_close(c, 42, "bye now");
    assert_int_equal(wzp_quic_conn_send_datagram(c, payload, 10), WZP_ERR_CLOSED);
    net_run(&nt, WZP_MS(100), NULL);
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, 0);
    assert_false(cl->ev.close_by_peer);
    assert_int_equal(sv->ev.closed, 1);
    assert_int_equal(sv->ev.close_err, 0);
    assert_true(sv->ev.close_by_peer);
    assert_int_equal(sv->ev.close_app, 42);
    assert_string_equal(sv->ev.close_reason, "bye now");
    /* Closing and draining periods end; the endpoints forget the connection. */
    net_run(&nt, WZP_SEC(5), NULL);
    assert_int_equal(wzp_quic_endpoint_conn_count(cl->ep), 0);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 0);
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(sv->ev.closed, 1);
    net_free(&nt);
}

static void test_large_messages_flow_control(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    wzp_quic_conn *c = dial(&nt, cl, sv, fp_server);
    net_run(&nt, WZP_SEC(5), all_settled);
    wzp_quic_conn *s = sv->ev.conn;
    assert_non_null(s);
    /* Twenty maximum-size messages each way: more than the flow-control
     * windows, so sending depends on the receiver reopening them. */
    uint8_t *big = malloc(64 * 1024 + 1);
    for (size_t i = 0; i <= 64 * 1024; i++)
        big[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 20; i++) {
        big[0] = (uint8_t)i;
        assert_int_equal(wzp_quic_conn_send_message(c, big, 64 * 1024), 0);
        assert_int_equal(wzp_quic_conn_send_message(s, big, 64 * 1024), 0);
    }
    net_run(&nt, WZP_SEC(10), NULL);
    assert_int_equal(sv->ev.msgs, 20);
    assert_int_equal(cl->ev.msgs, 20);
    assert_int_equal(sv->ev.last_msg_len, 64 * 1024);
    assert_int_equal(sv->ev.last_msg[0], 19);
    assert_memory_equal(sv->ev.last_msg + 1, big + 1, 200);
    assert_int_equal(sv->ev.closed + cl->ev.closed, 0);

    /* One byte over the limit: protocol error on both sides. */
    assert_int_equal(wzp_quic_conn_send_message(c, big, 64 * 1024 + 1), 0);
    net_run(&nt, WZP_SEC(1), NULL);
    assert_int_equal(sv->ev.closed, 1);
    assert_int_equal(sv->ev.close_err, WZP_ERR_PROTOCOL);
    assert_non_null(strstr(sv->ev.close_detail, "65537"));
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, WZP_ERR_PROTOCOL);
    assert_true(cl->ev.close_by_peer);
    free(big);
    net_free(&nt);
}

static void check_names_both(const char *detail, const uint8_t *a, const uint8_t *b)
{
    char fa[WZP_FINGERPRINT_STRLEN], fb[WZP_FINGERPRINT_STRLEN];
    wzp_fingerprint_format(a, fa, sizeof(fa));
    wzp_fingerprint_format(b, fb, sizeof(fb));
    assert_non_null(strstr(detail, fa));
    assert_non_null(strstr(detail, fb));
}

static void test_pin_mismatch_client_side(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    dial(&nt, cl, sv, fp_client[1]); /* expects someone else */
    net_run(&nt, WZP_SEC(5), all_settled);
    assert_int_equal(cl->ev.established, 0);
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, WZP_ERR_PIN_MISMATCH);
    check_names_both(cl->ev.close_detail, fp_client[1], fp_server);
    assert_int_equal(sv->ev.established, 0);
    assert_int_equal(sv->ev.closed, 1);
    assert_int_equal(sv->ev.close_err, WZP_ERR_TLS);
    net_run(&nt, WZP_SEC(5), NULL);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 0);
    assert_int_equal(wzp_quic_endpoint_conn_count(cl->ep), 0);
    net_free(&nt);
}

static void test_pin_mismatch_server_side(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 2); /* expects another client */
    dial(&nt, cl, sv, fp_server);
    net_run(&nt, WZP_SEC(5), all_settled);
    assert_int_equal(sv->ev.established, 0);
    assert_int_equal(sv->ev.closed, 1);
    assert_int_equal(sv->ev.close_err, WZP_ERR_PIN_MISMATCH);
    check_names_both(sv->ev.close_detail, fp_client[2], fp_client[0]);
    /* The client never reports success: it waits for confirmation. */
    assert_int_equal(cl->ev.established, 0);
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, WZP_ERR_TLS);
    assert_true(cl->ev.close_by_peer);
    assert_non_null(strstr(cl->ev.close_detail, "rejected our certificate"));
    net_run(&nt, WZP_SEC(5), NULL);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 0);
    assert_int_equal(wzp_quic_endpoint_conn_count(cl->ep), 0);
    net_free(&nt);
}

static void test_alpn_mismatch(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    wzp_quic_conn_opts o;
    wzp_quic_conn_opts_default(&o);
    memcpy(o.pin, fp_server, 32);
    o.alpn = "wzp/0";
    wzp_quic_conn *c;
    assert_int_equal(wzp_quic_connect(cl->ep, &cl->addr, &sv->public, &o, nt.now, &c), 0);
    net_run(&nt, WZP_SEC(5), all_settled);
    assert_int_equal(cl->ev.established, 0);
    assert_int_equal(sv->ev.established, 0);
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, WZP_ERR_TLS);
    net_free(&nt);
}

static void test_accept_any_reports_fingerprint_and_refuse(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl[4];
    sv->ev.pin_mode = WZP_QUIC_PIN_ANY;
    for (int i = 0; i < 4; i++) {
        cl[i] = net_add(&nt, id_client[i], false);
        dial(&nt, cl[i], sv, fp_server);
    }
    net_run(&nt, WZP_SEC(5), NULL);
    assert_int_equal(sv->ev.established, 4);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 4);
    /* Each server-side connection proves a different client key. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cl[i]->ev.established, 1);
        uint8_t fp[32];
        assert_int_equal(wzp_quic_conn_peer_fingerprint(sv->ev.conns[i], fp), 0);
        int found = 0;
        for (int k = 0; k < 4; k++)
            found += memcmp(fp, fp_client[k], 32) == 0;
        assert_int_equal(found, 1);
        /* Message on each connection, echoed by nobody: just arrives. */
        char m[16];
        snprintf(m, sizeof(m), "from %d", i);
        assert_int_equal(wzp_quic_conn_send_message(cl[i]->ev.conn, (uint8_t *)m, strlen(m)), 0);
    }
    net_run(&nt, WZP_MS(200), NULL);
    assert_int_equal(sv->ev.msgs, 4);

    /* A refusing server drops new Initials and counts them. */
    sv->ev.refuse = true;
    node *late = net_add(&nt, id_client[4], false);
    dial(&nt, late, sv, fp_server);
    net_run(&nt, WZP_MS(500), NULL);
    assert_int_equal(late->ev.established, 0);
    assert_true(wzp_quic_endpoint_stats(sv->ep)->rx_refused > 0);
    net_free(&nt);
}

static bool client_closed(net *nt)
{
    return nt->nodes[1].ev.closed > 0;
}

static void test_idle_timeout_and_keep_alive(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    sv->ev.idle = WZP_SEC(2);
    wzp_quic_conn_opts o;
    wzp_quic_conn_opts_default(&o);
    memcpy(o.pin, fp_server, 32);
    o.idle_timeout = WZP_SEC(2);
    wzp_quic_conn *c;
    assert_int_equal(wzp_quic_connect(cl->ep, &cl->addr, &sv->public, &o, nt.now, &c), 0);
    net_run(&nt, WZP_SEC(5), all_settled);
    assert_int_equal(cl->ev.established, 1);
    wzp_ts start = nt.now;
    net_run(&nt, WZP_SEC(60), client_closed);
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, WZP_ERR_TIMEOUT);
    assert_true(nt.now - start >= WZP_SEC(2));
    assert_true(nt.now - start < WZP_SEC(10));
    net_run(&nt, WZP_SEC(10), NULL);
    assert_int_equal(sv->ev.closed, 1);
    assert_int_equal(sv->ev.close_err, WZP_ERR_TIMEOUT);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 0);
    net_free(&nt);

    /* Same, with keep-alive on the client: stays up for a minute of silence. */
    net_init(&nt);
    sv = net_add(&nt, id_server, true);
    cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    sv->ev.idle = WZP_SEC(2);
    o.keep_alive = WZP_MS(500);
    assert_int_equal(wzp_quic_connect(cl->ep, &cl->addr, &sv->public, &o, nt.now, &c), 0);
    net_run(&nt, WZP_SEC(60), NULL);
    assert_int_equal(cl->ev.established, 1);
    assert_int_equal(cl->ev.closed, 0);
    assert_int_equal(sv->ev.closed, 0);
    assert_true(wzp_quic_conn_is_established(c));
    net_free(&nt);

    /* A server that never answers: the handshake times out. */
    net_init(&nt);
    sv = net_add(&nt, id_server, true);
    cl = net_add(&nt, id_client[0], false);
    nt.drop_to = 0;
    o.keep_alive = 0;
    o.handshake_timeout = WZP_SEC(3);
    assert_int_equal(wzp_quic_connect(cl->ep, &cl->addr, &sv->public, &o, nt.now, &c), 0);
    start = nt.now;
    net_run(&nt, WZP_SEC(60), client_closed);
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, WZP_ERR_TIMEOUT);
    assert_true(nt.now - start >= WZP_SEC(2));
    assert_true(nt.now - start <= WZP_SEC(4));
    net_run(&nt, WZP_SEC(1), NULL);
    assert_int_equal(wzp_quic_endpoint_conn_count(cl->ep), 0);
    net_free(&nt);
}

static void test_garbage_truncated_replayed(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    nt.capture = true;
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    wzp_quic_conn *c = dial(&nt, cl, sv, fp_server);
    net_run(&nt, WZP_SEC(5), all_settled);
    assert_int_equal(sv->ev.established, 1);
    nt.capture = false;
    assert_true(nt.captured > 2);

    const wzp_quic_stats *ss = wzp_quic_endpoint_stats(sv->ep);
    wzp_quic_stats before = *ss;
    uint8_t buf[1500];
    wzp_addr stranger;
    wzp_addr_parse(&stranger, "192.0.2.9:999", false);
    /* Random bytes, every length. */
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(wzp_random_u64() % sizeof(buf));
        wzp_random_nonce(buf, n);
        wzp_quic_endpoint_feed(sv->ep, &sv->addr, &stranger, buf, n, nt.now);
        wzp_quic_endpoint_feed(cl->ep, &cl->addr, &stranger, buf, n, nt.now);
    }
    uint64_t dropped =
        (ss->rx_not_quic - before.rx_not_quic) + (ss->rx_malformed - before.rx_malformed) +
        (ss->rx_unknown_cid - before.rx_unknown_cid) + (ss->rx_bad_version - before.rx_bad_version);
    assert_true(dropped >= 1990); /* a random short header hitting a live CID is ~impossible */
    /* Truncations of every captured packet, and replays of them all. */
    for (pkt *p = nt.cap_head; p; p = p->next) {
        node *d = &nt.nodes[p->to];
        for (size_t n = 0; n < p->len; n += 1 + n / 4)
            wzp_quic_endpoint_feed(d->ep, &d->addr, &p->from, p->data, n, nt.now);
        wzp_quic_endpoint_feed(d->ep, &d->addr, &p->from, p->data, p->len, nt.now);
    }
    net_run(&nt, WZP_MS(100), NULL);
    assert_true(ss->rx_malformed > before.rx_malformed);
    /* The connection survived all of it. */
    assert_int_equal(cl->ev.closed + sv->ev.closed, 0);
    nt.capture = true; /* now with short-header packets */
    assert_int_equal(wzp_quic_conn_send_message(c, (const uint8_t *)"still here", 10), 0);
    net_run(&nt, WZP_MS(200), NULL);
    nt.capture = false;
    assert_int_equal(sv->ev.msgs, 1);
    assert_int_equal(sv->ev.established, 1);

    /* After the connection is gone, its packets are unknown and counted. */
    wzp_quic_conn_close(c, 0, "");
    net_run(&nt, WZP_SEC(5), NULL);
    uint64_t unknown = ss->rx_unknown_cid;
    for (pkt *p = nt.cap_head; p; p = p->next)
        if (p->to == 0 && !(p->data[0] & 0x80)) /* short headers */
            wzp_quic_endpoint_feed(sv->ep, &sv->addr, &p->from, p->data, p->len, nt.now);
    assert_true(ss->rx_unknown_cid > unknown);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 0);
    net_free(&nt);
}

static void test_nat_rebinding(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    dial(&nt, cl, sv, fp_server);
    net_run(&nt, WZP_SEC(5), all_settled);
    wzp_quic_conn *s = sv->ev.conn;
    wzp_addr ra;
    wzp_quic_conn_remote_addr(s, &ra);
    assert_true(wzp_addr_equal(&ra, &cl->public));

    /* The client's NAT picks a new external port; the client cannot tell. */
    wzp_addr_parse(&cl->public, "198.51.100.7:61000", false);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(wzp_quic_conn_send_datagram(cl->ev.conn, (const uint8_t *)"hi", 2), 0);
        assert_int_equal(wzp_quic_conn_send_message(s, (const uint8_t *)"yo", 2), 0);
        net_run(&nt, WZP_MS(50), NULL);
    }
    wzp_quic_conn_remote_addr(s, &ra);
    assert_true(wzp_addr_equal(&ra, &cl->public));
    assert_int_equal(sv->ev.dgrams, 20);
    assert_int_equal(cl->ev.msgs, 20);
    assert_int_equal(cl->ev.closed + sv->ev.closed, 0);
    net_free(&nt);
}

static void test_close_before_handshake(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    wzp_quic_conn *c = dial(&nt, cl, sv, fp_server);
    net_flush(&nt); /* the Initial is on its way */
    wzp_quic_conn_close(c, 3, "changed my mind");
    wzp_quic_conn_close(c, 4, "twice"); /* idempotent */
    net_run(&nt, WZP_SEC(15), NULL);
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, 0);
    assert_int_equal(cl->ev.close_app, 3);
    assert_int_equal(cl->ev.established, 0);
    /* The server either saw the close or timed out the half-open attempt. */
    assert_int_equal(sv->ev.established, 0);
    assert_int_equal(wzp_quic_endpoint_conn_count(cl->ep), 0);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 0);
    net_free(&nt);
}

/* Virtual paths: the owner passes one fixed pair whatever the route. */
static void test_virtual_path(void **state)
{
    (void)state;
    net nt;
    net_init(&nt);
    node *sv = net_add(&nt, id_server, true);
    node *cl = net_add(&nt, id_client[0], false);
    server_pins(sv, 0);
    sv->ev.greet = true; /* may reach the client beside HANDSHAKE_DONE */
    dial(&nt, cl, sv, fp_server);
    net_run(&nt, WZP_SEC(5), all_settled);
    net_run(&nt, WZP_MS(50), NULL);
    assert_int_equal(cl->ev.dgrams, 1);
    /* The net keeps feeding the same addresses even though a path manager
     * would move packets between relay and direct routes: nothing changes. */
    for (int i = 0; i < 10; i++) {
        wzp_quic_conn_send_datagram(cl->ev.conn, (const uint8_t *)"v", 1);
        net_run(&nt, WZP_MS(20), NULL);
    }
    wzp_addr l, r;
    wzp_quic_conn_local_addr(cl->ev.conn, &l);
    wzp_quic_conn_remote_addr(cl->ev.conn, &r);
    assert_true(wzp_addr_equal(&l, &cl->addr));
    assert_true(wzp_addr_equal(&r, &sv->addr));
    assert_int_equal(sv->ev.dgrams, 10);
    net_free(&nt);
}

/* ---- real loopback UDP ---- */

typedef struct sock_node {
    int fd;
    wzp_addr addr;
} sock_node;

static void udp_send_cb(void *user, const wzp_addr *l, const wzp_addr *r, const uint8_t *d,
                        size_t n)
{
    sock_node *s = user;
    wzp_udp_send(s->fd, r, d, n);
}

static wzp_ts mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (wzp_ts)ts.tv_sec * 1000000000ULL + (wzp_ts)ts.tv_nsec;
}

/* Polls every socket, feeds, runs timers and flushes, for up to `ms`. */
static void udp_pump(wzp_quic_endpoint **eps, sock_node *socks, int n, int ms, bool (*done)(void *),
                     void *arg)
{
    wzp_ts end = mono_now() + WZP_MS(ms);
    uint8_t bufs[WZP_UDP_BATCH][1500];
    wzp_udp_msg msgs[WZP_UDP_BATCH];
    for (;;) {
        wzp_ts now = mono_now();
        for (int i = 0; i < n; i++) {
            wzp_quic_endpoint_handle_expiry(eps[i], now);
            wzp_quic_endpoint_flush(eps[i], now, udp_send_cb, &socks[i]);
        }
        if ((done && done(arg)) || now >= end)
            return;
        wzp_ts next = end;
        for (int i = 0; i < n; i++)
            next = wzp_ts_min(next, wzp_quic_endpoint_expiry(eps[i]));
        int timeout = next <= now ? 0 : (int)((next - now + 999999) / 1000000);
        struct pollfd pfd[MAXNODES];
        for (int i = 0; i < n; i++)
            pfd[i] = (struct pollfd){.fd = socks[i].fd, .events = POLLIN};
        poll(pfd, (nfds_t)n, timeout);
        now = mono_now();
        for (int i = 0; i < n; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            for (int k = 0; k < WZP_UDP_BATCH; k++)
                msgs[k] = (wzp_udp_msg){.data = bufs[k], .cap = sizeof(bufs[k])};
            int got = wzp_udp_recv_batch(socks[i].fd, msgs, WZP_UDP_BATCH);
            for (int k = 0; k < got; k++)
                if (msgs[k].len)
                    wzp_quic_endpoint_feed(eps[i], &socks[i].addr, &msgs[k].peer, msgs[k].data,
                                           msgs[k].len, now);
        }
    }
}

typedef struct udp_world {
    wzp_quic_endpoint *eps[MAXNODES];
    sock_node socks[MAXNODES];
    rec ev[MAXNODES];
    int n;
    uint64_t want_dgrams;
} udp_world;

static bool udp_all_established(void *arg)
{
    udp_world *w = arg;
    for (int i = 1; i < w->n; i++)
        if (w->ev[i].established + w->ev[i].closed == 0)
            return false;
    return w->ev[0].established + w->ev[0].closed >= w->n - 1;
}

static bool udp_dgrams_done(void *arg)
{
    udp_world *w = arg;
    return w->ev[0].dgrams >= w->want_dgrams && w->ev[1].dgrams >= w->want_dgrams;
}

static void test_loopback_udp(void **state)
{
    (void)state;
    udp_world w;
    memset(&w, 0, sizeof(w));
    w.n = 4; /* one server socket, three clients */
    wzp_addr any;
    wzp_addr_parse(&any, "127.0.0.1:0", false);
    for (int i = 0; i < w.n; i++) {
        w.socks[i].fd = wzp_udp_open(&any, NULL, &w.socks[i].addr);
        assert_true(w.socks[i].fd >= 0);
        assert_int_equal(wzp_quic_endpoint_new(i == 0 ? id_server : id_client[i - 1], i == 0,
                                               &callbacks, &w.ev[i], &w.eps[i]),
                         0);
    }
    w.ev[0].pin_mode = WZP_QUIC_PIN_ANY;
    wzp_quic_conn *cc[MAXNODES];
    for (int i = 1; i < w.n; i++) {
        wzp_quic_conn_opts o;
        wzp_quic_conn_opts_default(&o);
        memcpy(o.pin, fp_server, 32);
        o.initial_rtt = WZP_MS(10);
        assert_int_equal(
            wzp_quic_connect(w.eps[i], &w.socks[i].addr, &w.socks[0].addr, &o, mono_now(), &cc[i]),
            0);
    }
    udp_pump(w.eps, w.socks, w.n, 5000, udp_all_established, &w);
    assert_int_equal(w.ev[0].established, 3);
    for (int i = 1; i < w.n; i++) {
        assert_int_equal(w.ev[i].established, 1);
        assert_memory_equal(w.ev[i].peer_fp, fp_server, 32);
    }

    /* 10,000 datagrams each way between client 1 and the server. */
    wzp_quic_conn *s1 = NULL;
    for (int k = 0; k < w.ev[0].nconns; k++) {
        uint8_t fp[32];
        if (wzp_quic_conn_peer_fingerprint(w.ev[0].conns[k], fp) == 0 &&
            !memcmp(fp, fp_client[0], 32))
            s1 = w.ev[0].conns[k];
    }
    assert_non_null(s1);
    uint8_t payload[100] = {1, 2, 3};
    int sc = 0, ss = 0;
    wzp_ts deadline = mono_now() + WZP_SEC(20);
    while ((sc < 10000 || ss < 10000) && mono_now() < deadline) {
        while (sc < 10000 && wzp_quic_conn_send_datagram(cc[1], payload, sizeof(payload)) == 0)
            sc++;
        while (ss < 10000 && wzp_quic_conn_send_datagram(s1, payload, sizeof(payload)) == 0)
            ss++;
        udp_pump(w.eps, w.socks, w.n, 1, NULL, NULL);
    }
    w.want_dgrams = 10000;
    udp_pump(w.eps, w.socks, w.n, 3000, udp_dgrams_done, &w);
    /* Loopback UDP can still drop under a burst; DATAGRAMs are not resent. */
    printf("loopback datagrams: server got %llu, client got %llu of 10000\n",
           (unsigned long long)w.ev[0].dgrams, (unsigned long long)w.ev[1].dgrams);
    assert_true(w.ev[0].dgrams >= 9900);
    assert_true(w.ev[1].dgrams >= 9900);

    assert_int_equal(wzp_quic_conn_send_message(cc[2], (const uint8_t *)"ping", 4), 0);
    assert_int_equal(wzp_quic_conn_send_message(s1, (const uint8_t *)"pong", 4), 0);
    udp_pump(w.eps, w.socks, w.n, 300, NULL, NULL);
    assert_int_equal(w.ev[0].msgs, 1);
    assert_int_equal(w.ev[1].msgs, 1);

    for (int i = 1; i < w.n; i++)
        wzp_quic_conn_close(cc[i], 7, "done");
    udp_pump(w.eps, w.socks, w.n, 300, NULL, NULL);
    assert_int_equal(w.ev[0].closed, 3);
    assert_int_equal(w.ev[0].close_app, 7);
    for (int i = 0; i < w.n; i++) {
        wzp_quic_endpoint_free(w.eps[i]);
        close(w.socks[i].fd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_datagrams_messages_close),
        cmocka_unit_test(test_large_messages_flow_control),
        cmocka_unit_test(test_pin_mismatch_client_side),
        cmocka_unit_test(test_pin_mismatch_server_side),
        cmocka_unit_test(test_alpn_mismatch),
        cmocka_unit_test(test_accept_any_reports_fingerprint_and_refuse),
        cmocka_unit_test(test_idle_timeout_and_keep_alive),
        cmocka_unit_test(test_garbage_truncated_replayed),
        cmocka_unit_test(test_nat_rebinding),
        cmocka_unit_test(test_virtual_path),
        cmocka_unit_test(test_close_before_handshake),
        cmocka_unit_test(test_loopback_udp),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
