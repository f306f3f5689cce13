/*
 * Connection-ID routing (wzp_quic_route): one server spread over several
 * endpoints behind one port, the relay's QUIC shards. A client talks to a
 * set of server endpoints through an in-memory router that hands every
 * packet to the endpoint wzp_quic_route names; on a virtual clock. Every
 * packet of a connection must reach the endpoint that accepted it, with
 * and without Retry, and every connection ID a shard issues routes to it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <wzp/identity.h>

#include "common/rand.h"
#include "quic/quic.h"
#include "quic/quic_int.h"
#include "support/id_pair.h"
#include "support/test_main.h"

#define SHARDS   3
#define MAX_PKTS 64

typedef struct pkt {
    bool to_server;
    size_t len;
    uint8_t data[WZP_QUIC_MAX_PACKET];
} pkt;

typedef struct world {
    uint64_t key;
    wzp_quic_endpoint *srv[SHARDS];
    wzp_quic_endpoint *cli;
    wzp_quic_conn *conn;
    wzp_addr caddr, saddr;
    pkt q[MAX_PKTS];
    size_t nq;
    unsigned fed[SHARDS]; /* packets the router handed to each shard */
    int established;      /* client side */
    int srv_established[SHARDS];
} world;

static world W;

static void queue(bool to_server, const uint8_t *p, size_t len)
{
    if (W.nq < MAX_PKTS && len <= WZP_QUIC_MAX_PACKET) {
        W.q[W.nq].to_server = to_server;
        W.q[W.nq].len = len;
        memcpy(W.q[W.nq].data, p, len);
        W.nq++;
    }
}

static void from_client(void *u, const wzp_addr *l, const wzp_addr *r, const uint8_t *p, size_t n)
{
    (void)u;
    (void)l;
    (void)r;
    queue(true, p, n);
}

static void from_server(void *u, const wzp_addr *l, const wzp_addr *r, const uint8_t *p, size_t n)
{
    (void)u;
    (void)l;
    (void)r;
    queue(false, p, n);
}

static void c_established(void *u, wzp_quic_conn *c, const uint8_t *fp, wzp_ts now)
{
    (void)u;
    (void)c;
    (void)fp;
    (void)now;
    W.established++;
}

static void s_established(void *u, wzp_quic_conn *c, const uint8_t *fp, wzp_ts now)
{
    (void)c;
    (void)fp;
    (void)now;
    W.srv_established[(uintptr_t)u]++;
}

static int s_accept(void *user, const wzp_addr *l, const wzp_addr *r, wzp_quic_conn_config *o,
                    wzp_ts now)
{
    (void)l;
    (void)r;
    (void)now;
    o->pin_mode = WZP_QUIC_PIN_ANY;
    o->cb.established = s_established;
    o->user = user;
    return 0;
}

static void setup_world(size_t retry_threshold)
{
    memset(&W, 0, sizeof(W));
    W.key = wzp_random_u64();
    wzp_addr_parse(&W.caddr, "10.0.0.1:5000", false);
    wzp_addr_parse(&W.saddr, "10.0.0.2:4433", false);
    for (unsigned i = 0; i < SHARDS; i++) {
        wzp_quic_endpoint_config cfg;
        wzp_quic_endpoint_config_default(&cfg);
        cfg.id = test_ids.s;
        cfg.server = true;
        cfg.cb.accept = s_accept;
        cfg.user = (void *)(uintptr_t)i;
        cfg.retry_threshold = retry_threshold;
        cfg.route_index = i;
        cfg.route_count = SHARDS;
        cfg.route_key = W.key;
        assert_int_equal(wzp_quic_endpoint_new(&W.srv[i], &cfg), 0);
    }
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    cfg.id = test_ids.c;
    assert_int_equal(wzp_quic_endpoint_new(&W.cli, &cfg), 0);
}

static void teardown_world(void)
{
    for (unsigned i = 0; i < SHARDS; i++)
        wzp_quic_endpoint_free(W.srv[i]);
    wzp_quic_endpoint_free(W.cli);
}

/* Delivers everything queued (routing server-bound packets) until quiet. */
static void run(wzp_ts *now, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        wzp_quic_endpoint_flush(W.cli, *now, from_client, NULL);
        for (unsigned i = 0; i < SHARDS; i++)
            wzp_quic_endpoint_flush(W.srv[i], *now, from_server, NULL);
        if (!W.nq) {
            *now += WZP_MS(5);
            wzp_quic_endpoint_handle_expiry(W.cli, *now);
            for (unsigned i = 0; i < SHARDS; i++)
                wzp_quic_endpoint_handle_expiry(W.srv[i], *now);
            continue;
        }
        pkt *batch = malloc(W.nq * sizeof(*batch));
        assert_non_null(batch);
        size_t n = W.nq;
        memcpy(batch, W.q, n * sizeof(*batch));
        W.nq = 0;
        *now += WZP_MS(1);
        for (size_t k = 0; k < n; k++) {
            if (batch[k].to_server) {
                unsigned s = wzp_quic_route(W.key, SHARDS, batch[k].data, batch[k].len);
                assert_true(s < SHARDS);
                W.fed[s]++;
                wzp_quic_endpoint_feed(W.srv[s], &W.saddr, &W.caddr, batch[k].data, batch[k].len,
                                       *now, NULL);
            } else {
                wzp_quic_endpoint_feed(W.cli, &W.caddr, &W.saddr, batch[k].data, batch[k].len, *now,
                                       NULL);
            }
        }
        free(batch);
    }
}

/* A short-header packet addressed to cid (what the client would send on it). */
static unsigned route_of_cid(const ngtcp2_cid *cid)
{
    uint8_t p[64] = {0x40};
    memcpy(p + 1, cid->data, cid->datalen);
    return wzp_quic_route(W.key, SHARDS, p, sizeof(p));
}

static void connect_and_check(size_t retry_threshold)
{
    setup_world(retry_threshold);
    wzp_quic_conn_config o;
    wzp_quic_conn_config_default(&o);
    memcpy(o.pin, test_ids.fp_s, WZP_FINGERPRINT_LEN);
    o.cb.established = c_established;
    wzp_ts now = WZP_SEC(1);
    assert_int_equal(wzp_quic_connect(W.cli, &W.caddr, &W.saddr, &o, now, &W.conn), 0);
    run(&now, 200);
    assert_int_equal(W.established, 1);
    /* One shard took the connection and got every packet of it. */
    unsigned owner = SHARDS, total = 0;
    for (unsigned i = 0; i < SHARDS; i++) {
        total += W.fed[i];
        if (W.srv_established[i]) {
            assert_int_equal(owner, SHARDS);
            owner = i;
        }
    }
    assert_true(owner < SHARDS);
    assert_int_equal(W.fed[owner], total);
    for (unsigned i = 0; i < SHARDS; i++)
        assert_int_equal(wzp_quic_endpoint_conn_count(W.srv[i]), i == owner ? 1 : 0);
    wzp_quic_endpoint_stats st;
    wzp_quic_endpoint_get_stats(W.srv[owner], &st);
    assert_int_equal(st.retries_sent, retry_threshold == 0 ? 1 : 0);
    /* Every connection ID the owner issued (handshake and NEW_CONNECTION_ID)
     * routes back to it; the client's original DCID is the only other one. */
    const wzp_quic_conn *sc = W.srv[owner]->conns;
    assert_non_null(sc);
    assert_true(sc->ncids >= 2);
    for (size_t k = 0; k < sc->ncids; k++)
        assert_int_equal(route_of_cid(&sc->cids[k]), owner);
    /* Traffic after the handshake (a message each way) still reaches only the owner. */
    assert_int_equal(wzp_quic_conn_send_message(W.conn, (const uint8_t *)"hi", 2), 0);
    run(&now, 50);
    total = 0;
    for (unsigned i = 0; i < SHARDS; i++)
        total += W.fed[i];
    assert_int_equal(W.fed[owner], total);
    teardown_world();
}

static void test_connection_stays_on_its_shard(void **state)
{
    (void)state;
    /* Clients pick random DCIDs: several connections spread over the shards. */
    for (int i = 0; i < 6; i++)
        connect_and_check(WZP_QUIC_RETRY_NEVER);
}

static void test_retry_comes_back_to_the_same_shard(void **state)
{
    (void)state;
    /* The Retry's connection ID (the client's next DCID) routes to the shard
     * that made it: the one holding the secret its token needs. */
    for (int i = 0; i < 4; i++)
        connect_and_check(0);
}

static void test_route_bad_input(void **state)
{
    (void)state;
    uint8_t p[64];
    memset(p, 0, sizeof(p));
    assert_int_equal(wzp_quic_route(1, SHARDS, NULL, 0), 0);
    assert_int_equal(wzp_quic_route(1, SHARDS, p, 0), 0);
    /* Not QUIC (first byte 0x00: no fixed bit). */
    assert_int_equal(wzp_quic_route(1, SHARDS, p, sizeof(p)), 0);
    /* A long header cut short, and one with a 21-byte DCID (over RFC 9000's 20). */
    uint8_t lh[] = {0xc0, 0, 0, 0, 1, 21, 1, 2, 3};
    assert_int_equal(wzp_quic_route(1, SHARDS, lh, 5), 0);
    assert_int_equal(wzp_quic_route(1, SHARDS, lh, sizeof(lh)), 0);
    /* One shard, or none: always 0. */
    p[0] = 0x40;
    assert_int_equal(wzp_quic_route(1, 1, p, sizeof(p)), 0);
    assert_int_equal(wzp_quic_route(1, 0, p, sizeof(p)), 0);
    /* The same packet always routes the same way; a different key spreads differently. */
    unsigned hits[SHARDS] = {0};
    for (int i = 0; i < 300; i++) {
        wzp_random(p + 1, WZP_QUIC_CIDLEN);
        unsigned s = wzp_quic_route(7, SHARDS, p, sizeof(p));
        assert_int_equal(wzp_quic_route(7, SHARDS, p, sizeof(p)), s);
        hits[s]++;
    }
    for (unsigned i = 0; i < SHARDS; i++)
        assert_true(hits[i] > 0); /* 300 draws miss a shard with probability ~1e-52 */
}

static void test_route_index_checked(void **state)
{
    (void)state;
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    cfg.id = test_ids.s;
    cfg.route_count = 2;
    cfg.route_index = 2;
    wzp_quic_endpoint *ep = NULL;
    assert_int_equal(wzp_quic_endpoint_new(&ep, &cfg), WZP_ERR_INVALID);
    assert_null(ep);
}

WZP_TEST_MAIN(id_pair_group_setup, id_pair_group_teardown, test_connection_stays_on_its_shard,
              test_retry_comes_back_to_the_same_shard, test_route_bad_input,
              test_route_index_checked)
