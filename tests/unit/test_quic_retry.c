/*
 * Server address validation (wzp_quic_endpoint_config): stateless Retry
 * under handshake pressure, Retry tokens (forged, expired, presented from
 * another address), and the cap on handshakes per source IP. Endpoints
 * wired through an in-memory network on a virtual clock; a filter lets a
 * test hold back the client's token-carrying Initial and replay it at will.
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

#include <wzp/identity.h>

#include "support/id_pair.h"
#include "quic/quic.h"
#include "support/qnet.h"

/* ---- the network (tests/support/qnet.h, 1 ms one way) and its filter ---- */

typedef qnet_node node;

/* A snapshot of an endpoint's counters. */
static wzp_quic_endpoint_stats ep_stats(const wzp_quic_endpoint *ep)
{
    wzp_quic_endpoint_stats st;
    wzp_quic_endpoint_get_stats(ep, &st);
    return st;
}

/* What the filter does with packets. */
static struct filter {
    /* Hold: packets to node hold_to that carry a token are kept here (the
     * first one) instead of delivered. */
    int hold_to;
    uint8_t held[1500];
    size_t held_len;
    size_t held_count;
    /* Drop everything sent to this node (-1: none). */
    int drop_to;
    /* Drop what node 0 (the server) sends, except Retries. */
    bool server_only_retries;
} F;

/* ---- a QUIC v1 Initial's token, parsed by hand (the layer under test must
 * not be what decides where the token is) ---- */

static bool initial_token(const uint8_t *p, size_t len, size_t *off, size_t *tlen)
{
    /* long header, fixed bit, type Initial; version; DCID; SCID; token length varint */
    if (len < 7 || (p[0] & 0xf0) != 0xc0)
        return false;
    size_t i = 5;
    for (int k = 0; k < 2; k++) {
        if (i >= len || i + 1 + p[i] > len)
            return false;
        i += 1 + (size_t)p[i];
    }
    if (i >= len)
        return false;
    size_t vlen = (size_t)1 << (p[i] >> 6);
    if (i + vlen > len)
        return false;
    uint64_t v = p[i] & 0x3f;
    for (size_t k = 1; k < vlen; k++)
        v = (v << 8) | p[i + k];
    i += vlen;
    if (v > len - i)
        return false;
    *off = i;
    *tlen = (size_t)v;
    return true;
}

static bool filter(qnet *nt, qnet_pkt *p, void *arg)
{
    (void)nt;
    (void)arg;
    int to = p->to ? p->to->idx : -1;
    if (to == F.drop_to)
        return false;
    if (F.server_only_retries && p->from->idx == 0 && (p->data[0] & 0xf0) != 0xf0)
        return false;
    size_t off = 0, tlen = 0;
    if (to == F.hold_to && initial_token(p->data, p->len, &off, &tlen) && tlen > 0) {
        if (F.held_count++ == 0) {
            memcpy(F.held, p->data, p->len);
            F.held_len = p->len;
        }
        return false;
    }
    return true;
}

static void net_init(qnet *nt)
{
    qnet_init(nt, WZP_SEC(1000), WZP_MS(1));
    memset(&F, 0, sizeof(F));
    F.hold_to = -1;
    F.drop_to = -1;
    nt->hook = filter;
}

static node *net_add(qnet *nt, const wzp_identity *id, bool server, const char *addr)
{
    node *nd = qnet_add(nt, addr, id, server);
    if (server)
        qnet_pin(nd, test_ids.fp_c);
    return nd;
}

static wzp_quic_conn *dial(qnet *nt, node *cl, node *sv)
{
    return qnet_dial(nt, cl, sv, test_ids.fp_s);
}

/* Runs until the clients established `want` connections (at most 5 s). */
static void run_established(qnet *nt, int want)
{
    qnet_run(nt, WZP_SEC(5), qnet_clients_established, &want);
}

static void run_for(qnet *nt, wzp_ts dur)
{
    qnet_run(nt, dur, NULL, NULL);
}

/* A fresh network with the server at node 0 (10.0.0.1:4433) and a client at
 * node 1 (10.0.0.2:5000). */
static node *server_and_client(qnet *nt, node **cl)
{
    net_init(nt);
    node *sv = net_add(nt, test_ids.s, true, "10.0.0.1:4433");
    *cl = net_add(nt, test_ids.c, false, "10.0.0.2:5000");
    return sv;
}

/* Asserts the server's accepted connections and Retries sent so far. */
static void assert_accepted_retries(const node *sv, uint64_t accepted, uint64_t retries)
{
    assert_int_equal(ep_stats(sv->ep).conns_accepted, accepted);
    assert_int_equal(ep_stats(sv->ep).retries_sent, retries);
}

static void configure(node *sv, size_t retry_threshold, size_t per_addr)
{
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    assert_true(cfg.retry_threshold == WZP_QUIC_RETRY_NEVER);
    assert_int_equal(cfg.max_handshakes_per_addr, 0);
    cfg.retry_threshold = retry_threshold;
    cfg.max_handshakes_per_addr = per_addr;
    assert_int_equal(wzp_quic_endpoint_configure(sv->ep, &cfg), 0);
}

/* ---- tests ---- */

/* Threshold 0: every new client goes through a Retry and then works. */
static void test_retry_always(void **state)
{
    (void)state;
    qnet nt;
    node *cl, *sv = server_and_client(&nt, &cl);
    configure(sv, 0, 16);
    wzp_quic_conn *c = dial(&nt, cl, sv);
    run_established(&nt, 1);
    run_for(&nt, WZP_MS(100));
    assert_int_equal(cl->ev.established, 1);
    assert_int_equal(sv->ev.established, 1);
    assert_accepted_retries(sv, 1, 1);
    assert_int_equal(ep_stats(sv->ep).rx_bad_token, 0);
    assert_int_equal(ep_stats(sv->ep).rx_addr_capped, 0);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 1);

    /* Messages and datagrams flow both ways. */
    wzp_quic_conn *s = sv->ev.conns[0];
    assert_non_null(s);
    assert_int_equal(wzp_quic_conn_send_message(s, (const uint8_t *)"hi", 2), 0);
    assert_int_equal(wzp_quic_conn_send_message(c, (const uint8_t *)"yo", 2), 0);
    assert_int_equal(wzp_quic_conn_send_datagram(s, (const uint8_t *)"d1", 2), 0);
    assert_int_equal(wzp_quic_conn_send_datagram(c, (const uint8_t *)"d2", 2), 0);
    run_for(&nt, WZP_MS(200));
    assert_int_equal(cl->ev.msgs, 1);
    assert_int_equal(sv->ev.msgs, 1);
    assert_int_equal(cl->ev.dgrams, 1);
    assert_int_equal(sv->ev.dgrams, 1);
    assert_int_equal(ep_stats(sv->ep).retries_sent, 1);
    qnet_free(&nt);
}

/* Threshold 1: the first client is let in directly; a second one arriving
 * while the first still handshakes gets a Retry, and both connect. */
static void test_retry_above_threshold(void **state)
{
    (void)state;
    qnet nt;
    node *c1, *sv = server_and_client(&nt, &c1);
    node *c2 = net_add(&nt, test_ids.c, false, "10.0.0.3:5000");
    configure(sv, 1, 0);
    dial(&nt, c1, sv);
    dial(&nt, c2, sv);
    run_established(&nt, 2);
    assert_int_equal(c1->ev.established + c2->ev.established, 2);
    assert_accepted_retries(sv, 2, 1);

    /* With nothing handshaking, the next client is let in without one. */
    run_for(&nt, WZP_MS(100));
    dial(&nt, c1, sv);
    run_established(&nt, 3);
    assert_accepted_retries(sv, 3, 1);
    qnet_free(&nt);
}

/* The default configuration never sends a Retry. */
static void test_default_no_retry(void **state)
{
    (void)state;
    qnet nt;
    node *cl, *sv = server_and_client(&nt, &cl);
    for (int i = 0; i < 3; i++)
        dial(&nt, cl, sv);
    run_established(&nt, 3);
    assert_int_equal(cl->ev.established, 3);
    assert_accepted_retries(sv, 3, 0);
    assert_int_equal(ep_stats(sv->ep).rx_addr_capped, 0);
    qnet_free(&nt);
}

/* Runs a client into the server's Retry and keeps its answer (the Initial
 * with the token) in F.held instead of delivering it. */
static void hold_token_initial(qnet *nt, node *cl, node *sv)
{
    F.hold_to = 0;
    dial(nt, cl, sv);
    run_for(nt, WZP_MS(20));
    assert_int_equal(ep_stats(sv->ep).retries_sent, 1);
    assert_true(F.held_count >= 1);
    size_t off = 0, tlen = 0;
    assert_true(initial_token(F.held, F.held_len, &off, &tlen));
    assert_true(tlen > 16);
}

static void feed_held(qnet *nt, node *sv, const uint8_t *p, size_t len, const wzp_addr *from)
{
    assert_int_equal(wzp_quic_endpoint_feed(sv->ep, &sv->addr, from, p, len, qnet_now(nt), NULL),
                     0);
}

/* Forged, garbage, foreign and expired tokens are dropped and counted. */
static void test_bad_tokens(void **state)
{
    (void)state;
    qnet nt;
    node *cl, *sv = server_and_client(&nt, &cl);
    node *other = net_add(&nt, test_ids.s, true, "10.0.0.9:4433"); /* a second server, own secret */
    configure(sv, 0, 16);
    hold_token_initial(&nt, cl, sv);
    size_t off = 0, tlen = 0;
    assert_true(initial_token(F.held, F.held_len, &off, &tlen));
    uint8_t p[1500];

    /* One bit flipped in the token. */
    memcpy(p, F.held, F.held_len);
    p[off + tlen / 2] ^= 0x01;
    feed_held(&nt, sv, p, F.held_len, &cl->addr);
    assert_int_equal(ep_stats(sv->ep).rx_bad_token, 1);

    /* A token of random bytes, with and without our token's magic byte. */
    memcpy(p, F.held, F.held_len);
    for (size_t i = 0; i < tlen; i++)
        p[off + i] = (uint8_t)(i * 37 + 11);
    feed_held(&nt, sv, p, F.held_len, &cl->addr);
    p[off] = F.held[off];
    feed_held(&nt, sv, p, F.held_len, &cl->addr);
    assert_int_equal(ep_stats(sv->ep).rx_bad_token, 3);

    /* A valid token of another server (different secret), at default config. */
    feed_held(&nt, other, F.held, F.held_len, &cl->addr);
    assert_int_equal(ep_stats(other->ep).rx_bad_token, 1);
    assert_int_equal(ep_stats(other->ep).conns_accepted, 0);

    /* The genuine token, after its lifetime (5 s by default). */
    qnet_skip(&nt, WZP_SEC(6));
    feed_held(&nt, sv, F.held, F.held_len, &cl->addr);
    assert_int_equal(ep_stats(sv->ep).rx_bad_token, 4);

    assert_int_equal(ep_stats(sv->ep).conns_accepted, 0);
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 0);
    assert_int_equal(ep_stats(sv->ep).retries_sent, 1);
    qnet_free(&nt);
}

/* A Retry-always server and a client whose token Initial is held back. */
static node *retry_pair(qnet *nt, node **cl)
{
    node *sv = server_and_client(nt, cl);
    configure(sv, 0, 16);
    hold_token_initial(nt, *cl, sv);
    return sv;
}

/* An expired token is answered with a stateless CONNECTION_CLOSE: the client
 * learns at once instead of waiting out its handshake timeout. */
static void test_expired_token_closes_client(void **state)
{
    (void)state;
    qnet nt;
    node *cl, *sv = retry_pair(&nt, &cl);
    qnet_skip(&nt, WZP_SEC(6)); /* past the token's 5 s, within the client's 10 s handshake */
    F.hold_to = -1;
    feed_held(&nt, sv, F.held, F.held_len, &cl->addr);
    assert_int_equal(ep_stats(sv->ep).rx_bad_token, 1);
    assert_int_equal(ep_stats(sv->ep).tx_invalid_token_closes, 1);
    run_for(&nt, WZP_MS(50));
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.closed_by_peer, 1);
    assert_int_equal(cl->ev.established, 0);
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 0);
    qnet_free(&nt);
}

/* A token is bound to the address it was issued to. */
static void test_token_bound_to_address(void **state)
{
    (void)state;
    qnet nt;
    node *cl, *sv = retry_pair(&nt, &cl);

    wzp_addr b;
    wzp_addr_parse(&b, "10.0.0.3:5000", false); /* another IP */
    feed_held(&nt, sv, F.held, F.held_len, &b);
    wzp_addr_parse(&b, "10.0.0.2:5001", false); /* same IP, another port */
    feed_held(&nt, sv, F.held, F.held_len, &b);
    assert_int_equal(ep_stats(sv->ep).rx_bad_token, 2);
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 0);

    /* From the right address it is accepted, and the handshake completes. */
    feed_held(&nt, sv, F.held, F.held_len, &cl->addr);
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 1);
    assert_int_equal(ep_stats(sv->ep).rx_bad_token, 2);
    F.hold_to = -1;
    run_established(&nt, 1);
    assert_int_equal(cl->ev.established, 1);
    run_for(&nt, WZP_MS(50));
    assert_int_equal(sv->ev.established, 1);
    assert_int_equal(ep_stats(sv->ep).retries_sent, 1);
    qnet_free(&nt);
}

/* At most N unvalidated handshakes per source IP; an Initial beyond that
 * gets a Retry (not silence, which used to hold it back until a slot freed)
 * and comes in through it at once; other IPs are not affected. */
static void test_per_source_cap(void **state)
{
    (void)state;
    qnet nt;
    node *a, *sv = server_and_client(&nt, &a);
    node *a2 = net_add(&nt, test_ids.c, false, "10.0.0.2:5001"); /* same IP, another port */
    node *b = net_add(&nt, test_ids.c, false, "10.0.0.3:5000");
    configure(sv, WZP_QUIC_RETRY_NEVER, 2);
    dial(&nt, a, sv);
    dial(&nt, a, sv);
    dial(&nt, a2, sv);
    dial(&nt, b, sv);
    /* Just long enough for the server to see the four Initials, not for a
     * handshake (or the Retry's round trip) to complete. */
    run_for(&nt, WZP_US(1500));
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 3);
    assert_int_equal(ep_stats(sv->ep).retries_addr_cap, 1);
    assert_int_equal(ep_stats(sv->ep).retries_sent, 1);
    assert_int_equal(ep_stats(sv->ep).rx_addr_capped, 0);
    assert_int_equal(sv->ev.established, 0);

    /* A2 comes back with its token one round trip later: the cap does not
     * make it wait for A's handshakes. */
    run_for(&nt, WZP_MS(2));
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 4);
    run_established(&nt, 4);
    assert_int_equal(a->ev.established + a2->ev.established + b->ev.established, 4);
    assert_int_equal(ep_stats(sv->ep).retries_sent, 1);

    /* Nothing handshaking: A gets in at once, without a Retry. */
    run_for(&nt, WZP_MS(100));
    dial(&nt, a2, sv);
    run_established(&nt, 5);
    assert_accepted_retries(sv, 5, 1);
    assert_int_equal(ep_stats(sv->ep).rx_addr_capped, 0);
    qnet_free(&nt);
}

/* IPv6 sources count per /64: one host usually owns a whole /64. */
static void test_per_source_cap_v6_prefix(void **state)
{
    (void)state;
    qnet nt;
    net_init(&nt);
    node *sv = net_add(&nt, test_ids.s, true, "[2001:db8::1]:4433");
    node *a = net_add(&nt, test_ids.c, false, "[2001:db8::a]:5000");
    node *a2 = net_add(&nt, test_ids.c, false, "[2001:db8::ffff:b]:5000"); /* same /64 */
    node *b = net_add(&nt, test_ids.c, false, "[2001:db8:0:1::a]:5000");   /* another /64 */
    configure(sv, WZP_QUIC_RETRY_NEVER, 1);
    dial(&nt, a, sv);
    dial(&nt, a2, sv);
    dial(&nt, b, sv);
    run_for(&nt, WZP_US(1500));
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 2);
    assert_int_equal(ep_stats(sv->ep).retries_addr_cap, 1);
    /* The capped one gets in through its Retry. */
    run_established(&nt, 3);
    assert_int_equal(a->ev.established + a2->ev.established + b->ev.established, 3);
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 3);
    qnet_free(&nt);
}

/* A handshake that never completes holds its unvalidated slot until it
 * times out; meanwhile the IP's new Initials get Retries. */
static void test_per_source_slot_freed_on_close(void **state)
{
    (void)state;
    qnet nt;
    node *a, *sv = server_and_client(&nt, &a);
    configure(sv, WZP_QUIC_RETRY_NEVER, 1);
    F.drop_to = 1; /* A never hears back */
    dial(&nt, a, sv);
    run_for(&nt, WZP_SEC(2));
    assert_accepted_retries(sv, 1, 0);
    /* A's client gives up and tries again: the server still handshakes, and
     * answers with a Retry (which A does not hear either). */
    dial(&nt, a, sv);
    run_for(&nt, WZP_MS(5));
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 1);
    assert_true(ep_stats(sv->ep).retries_addr_cap >= 1);
    assert_int_equal(ep_stats(sv->ep).rx_addr_capped, 0);
    /* The server's handshake timeout (10 s) ends the first one. */
    run_for(&nt, WZP_SEC(9));
    assert_int_equal(sv->ev.closed, 1);
    F.drop_to = -1;
    uint64_t retries = ep_stats(sv->ep).retries_sent;
    dial(&nt, a, sv);
    run_established(&nt, 1);
    assert_int_equal(a->ev.established, 1);
    assert_true(ep_stats(sv->ep).conns_accepted >= 2);
    assert_int_equal(ep_stats(sv->ep).retries_sent, retries); /* the slot is free again: no Retry */
    qnet_free(&nt);
}

/* ---- spoofed Initials ---- */

typedef struct capture {
    uint8_t data[64][1500];
    size_t len[64];
    size_t n;
} capture;

static void capture_send(void *user, const wzp_addr *l, const wzp_addr *r, const uint8_t *d,
                         size_t n)
{
    (void)l;
    (void)r;
    capture *cp = user;
    if (cp->n < 64 && n <= sizeof(cp->data[0])) {
        memcpy(cp->data[cp->n], d, n);
        cp->len[cp->n++] = n;
    }
}

/* n genuine client Initials (from a client endpoint outside the network),
 * for an attacker to send with a spoofed source. */
static void make_initials(qnet *nt, node *sv, capture *cp, size_t n)
{
    wzp_quic_endpoint *ep;
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    cfg.id = test_ids.c;
    cfg.cb = qnet_callbacks;
    assert_int_equal(wzp_quic_endpoint_new(&ep, &cfg), 0);
    wzp_addr self;
    wzp_addr_parse(&self, "192.0.2.66:1", false);
    memset(cp, 0, sizeof(*cp));
    for (size_t i = 0; i < n; i++) {
        wzp_quic_conn_config o;
        wzp_quic_conn_config_default(&o);
        memcpy(o.pin, test_ids.fp_s, sizeof(test_ids.fp_s));
        wzp_quic_conn *c;
        assert_int_equal(wzp_quic_connect(ep, &self, &sv->addr, &o, qnet_now(nt), &c), 0);
        size_t before = cp->n;
        wzp_quic_endpoint_flush(ep, qnet_now(nt), capture_send, cp);
        assert_true(cp->n == before + 1); /* one padded Initial each */
    }
    wzp_quic_endpoint_free(ep);
}

/* Feeds Initial i with the source ip:port; nobody there answers. */
static void spoof(qnet *nt, node *sv, const capture *cp, size_t i, const char *from)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, from, false), 0);
    assert_int_equal(
        wzp_quic_endpoint_feed(sv->ep, &sv->addr, &a, cp->data[i], cp->len[i], qnet_now(nt), NULL),
        0);
}

/*
 * Finding 5 of issue #11: a spoofer holds all of an IP's handshake slots
 * with Initials that never complete (and keeps them full). A real client
 * behind that IP still connects on its first attempt, through one Retry.
 * Silence at the cap (the old behaviour) kept it out for the 10 s the
 * spoofed handshakes last.
 */
static void test_spoofed_initials_do_not_lock_out_ip(void **state)
{
    (void)state;
    qnet nt;
    node *cl, *sv = server_and_client(&nt, &cl);
    configure(sv, WZP_QUIC_RETRY_NEVER, 16);
    capture *cp = malloc(sizeof(*cp));
    assert_non_null(cp);
    make_initials(&nt, sv, cp, 20);
    char from[32];
    for (size_t i = 0; i < 16; i++) {
        snprintf(from, sizeof(from), "10.0.0.2:%zu", 7000 + i);
        spoof(&nt, sv, cp, i, from);
    }
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 16);
    run_for(&nt, WZP_MS(300));

    /* The real client, while the spoofer keeps sending fresh Initials. */
    dial(&nt, cl, sv);
    wzp_ts t0 = qnet_now(&nt);
    spoof(&nt, sv, cp, 16, "10.0.0.2:7016");
    int want = 1;
    qnet_run(&nt, WZP_SEC(2), qnet_clients_established, &want);
    assert_int_equal(cl->ev.established, 1);
    assert_int_equal(cl->ev.closed, 0);           /* on its first attempt */
    assert_true(qnet_now(&nt) - t0 < WZP_MS(50)); /* a few round trips of 2 ms */
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 17);
    assert_int_equal(ep_stats(sv->ep).retries_addr_cap, 2); /* the client's and one spoofed */
    assert_int_equal(ep_stats(sv->ep).rx_addr_capped, 0);
    for (size_t i = 17; i < 20; i++) {
        snprintf(from, sizeof(from), "10.0.0.2:%zu", 7000 + i);
        spoof(&nt, sv, cp, i, from);
        run_for(&nt, WZP_MS(300));
    }
    assert_int_equal(ep_stats(sv->ep).retries_addr_cap, 5);
    assert_int_equal(ep_stats(sv->ep).conns_accepted, 17);
    /* The spoofed handshakes are still there, holding their slots. */
    assert_int_equal(wzp_quic_endpoint_conn_count(sv->ep), 17);
    free(cp);
    qnet_free(&nt);
}

/* Someone really at an address (Retry tokens) may hold more handshakes than
 * the unvalidated cap, but not without bound: WZP_QUIC_VALIDATED_CAP_FACTOR
 * times the cap, then its Initials are dropped. */
static void test_validated_cap(void **state)
{
    (void)state;
    qnet nt;
    node *cl, *sv = server_and_client(&nt, &cl);
    configure(sv, 0, 1); /* every client through a Retry */
    const size_t vcap = 1 * WZP_QUIC_VALIDATED_CAP_FACTOR;
    for (size_t i = 0; i < vcap + 2; i++)
        dial(&nt, cl, sv);
    /* Clients come back with their tokens, but their handshakes never complete. */
    F.server_only_retries = true;
    run_for(&nt, WZP_MS(500));
    assert_int_equal(ep_stats(sv->ep).conns_accepted, vcap);
    assert_true(ep_stats(sv->ep).rx_addr_capped >= 2);
    assert_int_equal(ep_stats(sv->ep).retries_addr_cap,
                     0); /* threshold 0 retried them, not the cap */
    qnet_free(&nt);
}

WZP_TEST_MAIN(id_pair_group_setup, id_pair_group_teardown, test_retry_always,
              test_retry_above_threshold, test_default_no_retry, test_bad_tokens,
              test_token_bound_to_address, test_expired_token_closes_client, test_per_source_cap,
              test_per_source_cap_v6_prefix, test_per_source_slot_freed_on_close,
              test_spoofed_initials_do_not_lock_out_ip, test_validated_cap)
