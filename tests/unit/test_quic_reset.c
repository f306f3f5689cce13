/*
 * Stateless reset (RFC 9000 10.3): a server restarted with the same static
 * secret ends its former clients' connections at once; with another secret
 * its resets are ignored; resets are shorter than what triggered them and
 * rate-limited. Endpoints wired through an in-memory network on a virtual
 * clock; a server "restart" frees its endpoint and makes a new one on the
 * same address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/test_main.h"
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/identity.h>

#include "support/id_pair.h"
#include "quic/identity_tls.h"
#include "quic/quic.h"
#include "support/qnet.h"

typedef qnet_node node;

/* A snapshot of an endpoint's counters. */
static wzp_quic_endpoint_stats ep_stats(const wzp_quic_endpoint *ep)
{
    wzp_quic_endpoint_stats st;
    wzp_quic_endpoint_get_stats(ep, &st);
    return st;
}

/* Keep the next packet to the client (node 1) here instead of delivering it. */
static struct {
    bool hold_to_client;
    uint8_t held[1500];
    size_t held_len;
} H;

static bool hold(qnet *nt, qnet_pkt *p, void *arg)
{
    (void)nt;
    (void)arg;
    if (!p->to || p->to->idx != 1 || !H.hold_to_client)
        return true;
    H.hold_to_client = false;
    memcpy(H.held, p->data, p->len);
    H.held_len = p->len;
    return false;
}

/* A server endpoint with the recorder's callbacks (user: sv, may be NULL) and, if given, a
 * static reset secret. */
static wzp_quic_endpoint *server_ep(node *sv, const uint8_t *secret)
{
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    assert_false(cfg.have_static_secret);
    cfg.id = test_ids.s;
    cfg.server = true;
    cfg.cb = qnet_callbacks;
    cfg.user = sv;
    if (secret) {
        cfg.have_static_secret = true;
        memcpy(cfg.static_secret, secret, sizeof(cfg.static_secret));
    }
    wzp_quic_endpoint *ep;
    assert_int_equal(wzp_quic_endpoint_new(&ep, &cfg), 0);
    return ep;
}

static void server_up(qnet *nt, const uint8_t *secret)
{
    node *sv = &nt->nodes[0];
    sv->ep = server_ep(sv, secret);
    qnet_pin(sv, test_ids.fp_c);
}

/* The server process dies (its state with it) and another starts on the
 * same address; packets in flight reach the new one. */
static void server_restart(qnet *nt, const uint8_t *secret)
{
    wzp_quic_endpoint_free(nt->nodes[0].ep);
    nt->nodes[0].ep = NULL;
    server_up(nt, secret);
}

/* Node 0 the server (10.0.0.1:4433), node 1 the client (10.0.0.2:5000); 1 ms one way. */
static void net_init(qnet *nt, const uint8_t *secret)
{
    qnet_init(nt, WZP_SEC(1000), WZP_MS(1));
    memset(&H, 0, sizeof(H));
    nt->hook = hold;
    qnet_add_ep(nt, "10.0.0.1:4433", NULL);
    server_up(nt, secret);
    qnet_add(nt, "10.0.0.2:5000", test_ids.c, false);
}

static void run_for(qnet *nt, wzp_ts dur)
{
    qnet_run(nt, dur, NULL, NULL);
}

static bool both_established(qnet *nt, void *arg)
{
    (void)arg;
    return nt->nodes[0].ev.established && nt->nodes[1].ev.established;
}

static const uint8_t secret_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t secret_b[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

/* A client connected with keep-alive (1 s) and idle timeout (30 s). */
static wzp_quic_conn *connect_client(qnet *nt)
{
    node *cl = &nt->nodes[1];
    wzp_quic_conn_config o;
    qnet_opts(&o, test_ids.fp_s);
    o.keep_alive = WZP_SEC(1);
    o.idle_timeout = WZP_SEC(30);
    wzp_quic_conn *c = qnet_connect(nt, cl, &nt->nodes[0].addr, &o);
    assert_true(qnet_run(nt, WZP_SEC(2), both_established, NULL));
    run_for(nt, WZP_MS(50)); /* NEW_CONNECTION_IDs and acks settle */
    return c;
}

/* ---- tests ---- */

/* Restart with the same secret: the client's next packet draws a reset
 * and its connection closes at once, flagged as reset. */
static void test_restart_same_secret_resets_client(void **state)
{
    (void)state;
    qnet nt;
    net_init(&nt, secret_a);
    node *sv = &nt.nodes[0], *cl = &nt.nodes[1];
    wzp_quic_conn *c = connect_client(&nt);
    server_restart(&nt, secret_a);

    /* The client's next packet (a datagram) reaches the new process. */
    H.hold_to_client = true;
    assert_int_equal(wzp_quic_conn_send_datagram(c, (const uint8_t *)"media", 5), 0);
    run_for(&nt, WZP_MS(5));
    assert_int_equal(ep_stats(sv->ep).stateless_resets_sent, 1);
    assert_int_equal(ep_stats(sv->ep).rx_unknown_cid, 1);
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 0);
    assert_false(H.hold_to_client); /* the reset, held */
    assert_true(H.held_len >= 21 && H.held_len < 60);
    assert_int_equal(H.held[0] & 0xc0, 0x40); /* looks like a short header */
    /* A path manager finds the connection a reset is for by its token. */
    assert_ptr_equal(wzp_quic_endpoint_lookup(cl->ep, H.held, H.held_len), c);
    assert_int_equal(cl->ev.closed, 0);

    wzp_ts t0 = qnet_now(&nt);
    wzp_quic_endpoint_feed(cl->ep, &cl->addr, &sv->addr, H.held, H.held_len, qnet_now(&nt), NULL);
    assert_int_equal(cl->ev.closed, 1); /* at once, from that very packet */
    assert_true(cl->ev.close_by_reset);
    assert_true(cl->ev.close_by_peer);
    assert_int_equal(cl->ev.close_err, WZP_ERR_CLOSED);
    assert_string_equal(cl->ev.close_detail, "stateless reset from peer");

    /* The client stays silent afterwards (draining), and its connection goes. */
    run_for(&nt, WZP_SEC(2));
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(ep_stats(sv->ep).stateless_resets_sent, 1);
    assert_int_equal(wzp_quic_endpoint_conn_count(cl->ep), 0);
    assert_true(qnet_now(&nt) - t0 < WZP_SEC(30));
    qnet_free(&nt);
}

/* A client connected to a server with secret `before`; the server restarted with `after`.
 * Returns when the restart happened. */
static wzp_ts connected_then_restarted(qnet *nt, const uint8_t *before, const uint8_t *after)
{
    net_init(nt, before);
    connect_client(nt);
    wzp_ts t0 = qnet_now(nt);
    server_restart(nt, after);
    return t0;
}

/* Same, driven only by the keep-alive and the network: closed within about
 * a keep-alive period, far before the idle timeout. */
static void test_restart_keepalive_draws_reset(void **state)
{
    (void)state;
    qnet nt;
    wzp_ts t0 = connected_then_restarted(&nt, secret_a, secret_a);
    node *cl = &nt.nodes[1];
    qnet_run(&nt, WZP_SEC(30), qnet_client_closed, NULL);
    assert_int_equal(cl->ev.closed, 1);
    assert_true(cl->ev.close_by_reset);
    assert_true(qnet_now(&nt) - t0 <= WZP_SEC(2));
    qnet_free(&nt);
}

/* A different secret makes tokens that match nothing: the client ignores
 * the resets and only its idle timeout ends the connection. */
static void test_restart_other_secret_ignored(void **state)
{
    (void)state;
    qnet nt;
    wzp_ts t0 = connected_then_restarted(&nt, secret_a, secret_b);
    node *sv = &nt.nodes[0], *cl = &nt.nodes[1];
    run_for(&nt, WZP_SEC(10));
    assert_true(ep_stats(sv->ep).stateless_resets_sent >= 1);
    assert_int_equal(cl->ev.closed, 0);
    qnet_run(&nt, WZP_SEC(30), qnet_client_closed, NULL);
    assert_int_equal(cl->ev.closed, 1);
    assert_false(cl->ev.close_by_reset);
    assert_int_equal(cl->ev.close_err, WZP_ERR_TIMEOUT);
    assert_true(qnet_now(&nt) - t0 >= WZP_SEC(29));
    qnet_free(&nt);
}

/* Without a configured secret (random per endpoint), a restart is not
 * recognised: the behaviour before static secrets. */
static void test_no_static_secret(void **state)
{
    (void)state;
    qnet nt;
    connected_then_restarted(&nt, NULL, NULL);
    node *cl = &nt.nodes[1];
    run_for(&nt, WZP_SEC(5));
    assert_int_equal(cl->ev.closed, 0);
    qnet_free(&nt);
}

/* Capture of what one endpoint sends. */
typedef struct outbox {
    size_t n;
    size_t len[8];
    uint8_t data[8][1500];
    wzp_addr to[8];
} outbox;

static void outbox_send(void *user, const wzp_addr *l, const wzp_addr *r, const uint8_t *d,
                        size_t n)
{
    (void)l;
    outbox *o = user;
    if (o->n < 8) {
        memcpy(o->data[o->n], d, n);
        o->len[o->n] = n;
        o->to[o->n] = *r;
        o->n++;
    }
}

/* A short-header packet of len bytes for the connection ID dcid. */
static void short_pkt(uint8_t *p, size_t len, const uint8_t dcid[16])
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7 + 3);
    p[0] = 0x41;
    if (len >= 17)
        memcpy(p + 1, dcid, 16);
}

/* A reset is always shorter than its trigger (at least 21 bytes, so a
 * trigger of 21 or less gets none), carries the token derived from the
 * secret and the DCID, and only short headers get one. */
static void test_reset_sizes(void **state)
{
    (void)state;
    wzp_quic_endpoint *ep = server_ep(NULL, secret_a);
    wzp_addr self, peer;
    wzp_addr_parse(&self, "10.0.0.1:4433", false);
    wzp_addr_parse(&peer, "10.0.0.2:5000", false);
    const uint8_t dcid[16] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, dcid, sizeof(dcid));
    uint8_t token[16];
    assert_int_equal(ngtcp2_crypto_generate_stateless_reset_token(token, secret_a, 32, &cid), 0);

    const struct {
        size_t trigger, reset; /* 0: none */
    } cases[] = {{1, 0}, {17, 0}, {20, 0}, {21, 0}, {22, 21}, {30, 29}, {40, 39}, {1200, 39}};
    wzp_ts now = WZP_SEC(1000);
    uint8_t p[1500];
    outbox *ob = calloc(1, sizeof(*ob));
    assert_non_null(ob);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        short_pkt(p, cases[k].trigger, dcid);
        ob->n = 0;
        assert_int_equal(wzp_quic_endpoint_feed(ep, &self, &peer, p, cases[k].trigger, now, NULL),
                         0);
        wzp_quic_endpoint_flush(ep, now, outbox_send, ob);
        if (!cases[k].reset) {
            assert_int_equal(ob->n, 0);
            continue;
        }
        assert_int_equal(ob->n, 1);
        assert_int_equal(ob->len[0], cases[k].reset);
        assert_true(ob->len[0] < cases[k].trigger);
        assert_int_equal(ob->data[0][0] & 0xc0, 0x40);
        assert_memory_equal(ob->data[0] + ob->len[0] - 16, token, 16);
        assert_true(wzp_addr_equal(&ob->to[0], &peer));
    }
    assert_int_equal(ep_stats(ep).stateless_resets_sent, 4);
    assert_int_equal(ep_stats(ep).stateless_resets_limited, 0);

    /* Long headers (a Handshake packet for no connection) get none. */
    short_pkt(p, 100, dcid);
    p[0] = 0xe0;
    memcpy(p + 1, "\x00\x00\x00\x01\x10", 5);
    memcpy(p + 6, dcid, 16);
    p[22] = 0;
    ob->n = 0;
    wzp_quic_endpoint_feed(ep, &self, &peer, p, 100, now, NULL);
    wzp_quic_endpoint_flush(ep, now, outbox_send, ob);
    assert_int_equal(ob->n, 0);
    assert_int_equal(ep_stats(ep).stateless_resets_sent, 4);
    free(ob);
    wzp_quic_endpoint_free(ep);
}

/* At most WZP_QUIC_RESET_RATE per second (bursts of as many), whatever the
 * sources: a flood of unknown packets is no reflector. */
static void test_reset_rate_limit(void **state)
{
    (void)state;
    wzp_quic_endpoint *ep = server_ep(NULL, NULL);
    wzp_addr self, peer;
    wzp_addr_parse(&self, "10.0.0.1:4433", false);
    wzp_addr_parse(&peer, "10.0.0.2:5000", false);
    uint8_t p[100], dcid[16] = {0};
    outbox *ob = calloc(1, sizeof(*ob));
    assert_non_null(ob);
    wzp_ts now = WZP_SEC(1000);
    size_t sent = 0;
    for (int i = 0; i < 3 * WZP_QUIC_RESET_RATE / 2; i++) {
        char a[32];
        snprintf(a, sizeof(a), "192.0.2.%d:%d", 1 + i % 200, 1000 + i);
        wzp_addr from;
        wzp_addr_parse(&from, a, false);
        dcid[0] = (uint8_t)i;
        short_pkt(p, sizeof(p), dcid);
        wzp_quic_endpoint_feed(ep, &self, &from, p, sizeof(p), now, NULL);
        ob->n = 0;
        wzp_quic_endpoint_flush(ep, now, outbox_send, ob);
        sent += ob->n;
    }
    assert_int_equal(sent, WZP_QUIC_RESET_RATE);
    assert_int_equal(ep_stats(ep).stateless_resets_sent, WZP_QUIC_RESET_RATE);
    assert_int_equal(ep_stats(ep).stateless_resets_limited, WZP_QUIC_RESET_RATE / 2);
    assert_int_equal(ep_stats(ep).rx_unknown_cid, 3 * WZP_QUIC_RESET_RATE / 2);

    /* A tenth of a second later, a tenth of the rate is available again. */
    now += WZP_MS(100);
    for (int i = 0; i < WZP_QUIC_RESET_RATE; i++) {
        short_pkt(p, sizeof(p), dcid);
        wzp_quic_endpoint_feed(ep, &self, &peer, p, sizeof(p), now, NULL);
        wzp_quic_endpoint_flush(ep, now, outbox_send, ob);
        ob->n = 0;
    }
    assert_int_equal(ep_stats(ep).stateless_resets_sent,
                     WZP_QUIC_RESET_RATE + WZP_QUIC_RESET_RATE / 10);
    free(ob);
    wzp_quic_endpoint_free(ep);
}

/* Two endpoints that both forgot a connection answer each other's resets
 * with shorter ones: the exchange dies out by itself. */
static void test_reset_no_loop(void **state)
{
    (void)state;
    qnet nt;
    net_init(&nt, secret_a);
    node *sv = &nt.nodes[0], *cl = &nt.nodes[1];
    uint8_t p[200], dcid[16] = {7};
    short_pkt(p, sizeof(p), dcid);
    wzp_quic_endpoint_feed(sv->ep, &sv->addr, &cl->addr, p, sizeof(p), qnet_now(&nt), NULL);
    run_for(&nt, WZP_SEC(1));
    uint64_t a = ep_stats(sv->ep).stateless_resets_sent;
    uint64_t b = ep_stats(cl->ep).stateless_resets_sent;
    assert_true(a >= 1);
    assert_true(a + b <= 39 - 21 + 1);
    assert_true(qnet_idle(&nt));
    qnet_free(&nt);
}

/* The relay's secret: stable for one identity, distinct per identity and label. */
static void test_identity_secret(void **state)
{
    (void)state;
    uint8_t a[32], a2[32], b[32], c[32];
    assert_int_equal(wzp_identity_derive_secret(test_ids.s, "wzp/1 stateless reset", a), 0);
    assert_int_equal(wzp_identity_derive_secret(test_ids.s, "wzp/1 stateless reset", a2), 0);
    assert_int_equal(wzp_identity_derive_secret(test_ids.c, "wzp/1 stateless reset", b), 0);
    assert_int_equal(wzp_identity_derive_secret(test_ids.s, "another label", c), 0);
    assert_memory_equal(a, a2, 32);
    assert_memory_not_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
}

WZP_TEST_MAIN(id_pair_group_setup, id_pair_group_teardown, test_restart_same_secret_resets_client,
              test_restart_keepalive_draws_reset, test_restart_other_secret_ignored,
              test_no_static_secret, test_reset_sizes, test_reset_rate_limit, test_reset_no_loop,
              test_identity_secret)
