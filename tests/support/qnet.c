#include "qnet.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the recorder ---- */

static const wzp_quic_conn_callbacks rec_conn_callbacks;

static int rec_accept(void *user, const wzp_addr *l, const wzp_addr *r, wzp_quic_conn_config *o,
                      wzp_ts now)
{
    (void)l;
    (void)r;
    qnet_rec *e = &((qnet_node *)user)->ev;
    if (e->refuse)
        return -1;
    o->pin_mode = e->pin_mode;
    memcpy(o->pin, e->pin, sizeof(o->pin));
    if (e->max_message)
        o->max_message = e->max_message;
    if (e->idle)
        o->idle_timeout = e->idle;
    o->keep_alive = e->keep_alive;
    o->release_tls = e->release_tls;
    o->cert_optional = e->cert_optional;
    o->initial_rtt = WZP_MS(10);
    o->cb = rec_conn_callbacks;
    o->user = user;
    return 0;
}

static void rec_established(void *user, wzp_quic_conn *c, const uint8_t fp[WZP_FINGERPRINT_LEN],
                            wzp_ts now)
{
    qnet_rec *e = &((qnet_node *)user)->ev;
    e->established++;
    e->anonymous += !fp;
    if (fp)
        memcpy(e->peer_fp, fp, sizeof(e->peer_fp));
    else /* what the client's Auth must be signed over: read before release_tls */
        assert_int_equal(wzp_quic_conn_auth_binding(c, e->binding), 0);
    e->conn = c;
    if (e->nconns < QNET_MAX_CONNS)
        e->conns[e->nconns++] = c;
    if (e->greet)
        assert_int_equal(wzp_quic_conn_send_datagram(c, (const uint8_t *)"welcome", 7), 0);
}

static void rec_datagram(void *user, wzp_quic_conn *c, const uint8_t *d, size_t n, wzp_ts now)
{
    qnet_rec *e = &((qnet_node *)user)->ev;
    e->dgrams++;
    e->dgram_bytes += n;
    if (e->echo)
        wzp_quic_conn_send_datagram(c, d, n);
}

static void rec_message(void *user, wzp_quic_conn *c, const uint8_t *d, size_t n, wzp_ts now)
{
    (void)c;
    qnet_rec *e = &((qnet_node *)user)->ev;
    e->msgs++;
    e->last_msg_len = n;
    memcpy(e->last_msg, d, n < sizeof(e->last_msg) ? n : sizeof(e->last_msg));
}

static void rec_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *i, wzp_ts now)
{
    qnet_rec *e = &((qnet_node *)user)->ev;
    e->closed++;
    e->closed_by_peer += i->by_peer;
    e->close_err = i->error;
    e->close_by_peer = i->by_peer;
    e->close_by_reset = i->by_reset;
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

static const wzp_quic_conn_callbacks rec_conn_callbacks = {
    .established = rec_established,
    .datagram = rec_datagram,
    .message = rec_message,
    .closed = rec_closed,
};

const wzp_quic_callbacks qnet_callbacks = {.accept = rec_accept};
const wzp_quic_conn_callbacks *const qnet_conn_callbacks = &rec_conn_callbacks;

/* ---- the network ---- */

static void trace_line(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "qnet %s\n", line);
}

void qnet_init(qnet *q, wzp_ts start, wzp_ts delay)
{
    memset(q, 0, sizeof(*q));
    q->sim = wzp_sim_new(1);
    assert_non_null(q->sim);
    q->delay = delay;
    wzp_sim_run_until(q->sim, start);
    if (getenv("QNET_TRACE"))
        wzp_sim_set_trace(q->sim, trace_line, NULL);
}

void qnet_free(qnet *q)
{
    for (int i = 0; i < q->n; i++)
        wzp_quic_endpoint_free(q->nodes[i].ep);
    wzp_sim_free(q->sim);
    q->sim = NULL;
}

wzp_ts qnet_now(const qnet *q)
{
    return wzp_sim_now(q->sim);
}

/* The host holding IP a; a new one attached to the internet if nobody does. */
static wzp_sim_host *host_for(qnet *q, const wzp_addr *a)
{
    for (int i = 0; i < q->nips; i++)
        if (wzp_addr_ip_equal(&q->ips[i].ip, a))
            return q->ips[i].host;
    assert_true(q->nips < (int)(sizeof(q->ips) / sizeof(q->ips[0])));
    char text[WZP_ADDR_STRLEN];
    wzp_addr ip = *a;
    wzp_addr_set_port(&ip, 0);
    size_t iplen;
    const uint8_t *raw = wzp_addr_ip(&ip, &iplen);
    assert_non_null(inet_ntop(iplen == 4 ? AF_INET : AF_INET6, raw, text, sizeof(text)));
    wzp_sim_host *h = wzp_sim_host_new(q->sim, text);
    wzp_sim_link link = {.latency = q->delay / 2};
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_internet(q->sim), text, link), 0);
    q->ips[q->nips].ip = ip;
    q->ips[q->nips++].host = h;
    return h;
}

static void node_recv(void *ctx, wzp_sim_sock *s, const wzp_addr *from, const uint8_t *d,
                      size_t len)
{
    (void)s;
    qnet_node *nd = ctx;
    if (!nd->ep)
        return;
    wzp_quic_endpoint_feed(nd->ep, &nd->addr, from, d, len, qnet_now(nd->net), NULL);
    if (nd->net->delivered)
        nd->net->delivered(nd->net, nd, nd->net->delivered_arg);
}

static void spoof_recv(void *ctx, wzp_sim_sock *s, const wzp_addr *from, const uint8_t *d,
                       size_t len)
{
    (void)s;
    (void)from;
    (void)d;
    (void)len;
    ((qnet *)ctx)->unroutable++; /* nobody lives at a spoofed source */
}

static wzp_sim_sock *bind_at(qnet *q, const wzp_addr *a, wzp_sim_recv_fn fn, void *ctx)
{
    wzp_sim_sock *s = wzp_sim_sock_bind_addr(host_for(q, a), a, fn, ctx);
    assert_non_null(s);
    return s;
}

qnet_node *qnet_add_ep(qnet *q, const char *addr, wzp_quic_endpoint *ep)
{
    assert_true(q->n < QNET_MAX_NODES);
    qnet_node *nd = &q->nodes[q->n];
    memset(nd, 0, sizeof(*nd));
    nd->net = q;
    nd->idx = q->n++;
    nd->ep = ep;
    assert_int_equal(wzp_addr_parse(&nd->addr, addr, false), 0);
    nd->public = nd->addr;
    nd->host = host_for(q, &nd->addr);
    nd->sock = bind_at(q, &nd->addr, node_recv, nd);
    return nd;
}

qnet_node *qnet_add(qnet *q, const char *addr, const wzp_identity *id, bool server)
{
    qnet_node *nd = qnet_add_ep(q, addr, NULL);
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    cfg.id = id;
    cfg.server = server;
    cfg.cb = qnet_callbacks;
    cfg.user = nd;
    assert_int_equal(wzp_quic_endpoint_new(&nd->ep, &cfg), 0);
    return nd;
}

qnet_node *qnet_node_at(qnet *q, const wzp_addr *a)
{
    for (int i = 0; i < q->n; i++)
        if (wzp_addr_equal(&q->nodes[i].public, a))
            return &q->nodes[i];
    return NULL;
}

void qnet_rebind(qnet_node *nd, const char *public)
{
    wzp_sim_sock_close(nd->sock);
    assert_int_equal(wzp_addr_parse(&nd->public, public, false), 0);
    nd->sock = bind_at(nd->net, &nd->public, node_recv, nd);
}

void qnet_pin(qnet_node *sv, const uint8_t fp[WZP_FINGERPRINT_LEN])
{
    sv->ev.pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(sv->ev.pin, fp, WZP_FINGERPRINT_LEN);
}

void qnet_opts(wzp_quic_conn_config *o, const uint8_t fp[WZP_FINGERPRINT_LEN])
{
    wzp_quic_conn_config_default(o);
    memcpy(o->pin, fp, WZP_FINGERPRINT_LEN);
    o->initial_rtt = WZP_MS(10);
}

wzp_quic_conn *qnet_connect(qnet *q, qnet_node *cl, const wzp_addr *to,
                            const wzp_quic_conn_config *o)
{
    wzp_quic_conn_config oo = *o;
    if (!oo.cb.established && !oo.cb.datagram && !oo.cb.message && !oo.cb.closed) {
        oo.cb = rec_conn_callbacks; /* no callbacks of the test's own: the node records */
        oo.user = cl;
    }
    wzp_quic_conn *c = NULL;
    assert_int_equal(wzp_quic_connect(cl->ep, &cl->addr, to, &oo, qnet_now(q), &c), 0);
    return c;
}

wzp_quic_conn *qnet_dial(qnet *q, qnet_node *cl, qnet_node *sv, const uint8_t *pin)
{
    wzp_quic_conn_config o;
    qnet_opts(&o, pin);
    return qnet_connect(q, cl, &sv->public, &o);
}

/* The socket a packet with source src leaves from: the node's own, or one at the spoofed source. */
static wzp_sim_sock *source_sock(qnet *q, qnet_node *from, const wzp_addr *src)
{
    if (wzp_addr_equal(src, &from->public))
        return from->sock;
    for (int i = 0; i < q->nspoofs; i++)
        if (wzp_addr_equal(&q->spoofs[i].addr, src))
            return q->spoofs[i].sock;
    assert_true(q->nspoofs < (int)(sizeof(q->spoofs) / sizeof(q->spoofs[0])));
    q->spoofs[q->nspoofs].addr = *src;
    return q->spoofs[q->nspoofs++].sock = bind_at(q, src, spoof_recv, q);
}

static void node_send(void *user, const wzp_addr *l, const wzp_addr *r, const uint8_t *d, size_t n)
{
    (void)l;
    qnet_node *from = user;
    qnet *q = from->net;
    assert_true(n <= WZP_QUIC_MAX_PACKET);
    q->sent++;
    qnet_pkt p = {.from = from,
                  .to = qnet_node_at(q, r),
                  .src = from->public,
                  .dst = *r,
                  .data = d,
                  .len = n};
    if (!p.to)
        q->unroutable++; /* e.g. to a NAT mapping that no longer exists */
    if (q->hook && !q->hook(q, &p, q->hook_arg))
        return;
    if (q->cut || !p.to)
        return;
    assert_int_equal(wzp_sim_send(source_sock(q, from, &p.src), &p.dst, p.data, p.len), 0);
}

int qnet_flush_node(qnet_node *nd)
{
    return nd->ep ? wzp_quic_endpoint_flush(nd->ep, qnet_now(nd->net), node_send, nd) : 0;
}

void qnet_flush(qnet *q)
{
    for (int i = 0; i < q->n; i++)
        qnet_flush_node(&q->nodes[i]);
    if (q->check)
        q->check(q, true, q->check_arg);
}

static void check(qnet *q)
{
    if (q->check)
        q->check(q, false, q->check_arg);
}

bool qnet_run(qnet *q, wzp_ts dur, qnet_done_fn done, void *arg)
{
    wzp_ts end = qnet_now(q) + dur;
    for (long guard = 0;; guard++) {
        assert_true(guard < 10000000);
        qnet_flush(q);
        if (done && done(q, arg))
            return true;
        wzp_ts now = qnet_now(q), next = wzp_ts_min(end, wzp_sim_next_event(q->sim));
        for (int i = 0; i < q->n; i++)
            if (q->nodes[i].ep)
                next = wzp_ts_min(next, wzp_quic_endpoint_expiry(q->nodes[i].ep));
        if (next < now)
            next = now;
        wzp_sim_run_until(q->sim, next); /* deliveries feed the endpoints */
        check(q);
        for (int i = 0; i < q->n; i++) {
            wzp_quic_endpoint *ep = q->nodes[i].ep;
            if (ep && wzp_quic_endpoint_expiry(ep) <= next)
                wzp_quic_endpoint_handle_expiry(ep, next);
        }
        check(q);
        if (next >= end) {
            qnet_flush(q);
            return done && done(q, arg);
        }
    }
}

void qnet_skip(qnet *q, wzp_ts dt)
{
    wzp_sim_run_until(q->sim, qnet_now(q) + dt);
}

bool qnet_idle(const qnet *q)
{
    return wzp_sim_next_event(q->sim) == WZP_TS_NEVER;
}

bool qnet_all_settled(qnet *q, void *arg)
{
    (void)arg;
    for (int i = 0; i < q->n; i++)
        if (q->nodes[i].ev.established + q->nodes[i].ev.closed == 0)
            return false;
    return qnet_idle(q);
}

bool qnet_client_closed(qnet *q, void *arg)
{
    (void)arg;
    return q->nodes[1].ev.closed > 0;
}

bool qnet_clients_established(qnet *q, void *arg)
{
    int n = 0;
    for (int i = 1; i < q->n; i++)
        n += q->nodes[i].ev.established;
    return n >= *(const int *)arg;
}
