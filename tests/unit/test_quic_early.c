/*
 * wzp_quic_conn_config.early_datagrams (used by the client core for the
 * caller's first media): a client may send datagrams once its TLS handshake
 * completed (server key checked), before `established`; without the option
 * it may not; a server ignores the option. Two endpoints on qnet
 * (tests/support/qnet.h); the client reacts to each packet it receives.
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

#include "quic/quic.h"
#include "support/id_pair.h"
#include "support/qnet.h"

typedef struct side {
    wzp_quic_endpoint *ep;
    wzp_quic_conn *conn;
    bool established;
    int dgrams;
    int dgrams_before_peer_established;
    struct side *peer;
    bool early_opt; /* server: what on_accept puts in the options (ignored) */
} side;

static const wzp_quic_conn_callbacks side_callbacks;

static int on_accept(void *user, const wzp_addr *l, const wzp_addr *r, wzp_quic_conn_config *o,
                     wzp_ts now)
{
    side *s = user;
    o->cb = side_callbacks;
    o->user = s;
    o->pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(o->pin, test_ids.fp_c, sizeof(test_ids.fp_c));
    o->early_datagrams = s->early_opt; /* ignored on a server */
    o->initial_rtt = WZP_MS(10);
    return 0;
}

static void on_est(void *user, wzp_quic_conn *c, const uint8_t *fp, wzp_ts now)
{
    side *s = user;
    s->conn = c;
    s->established = true;
}

static void on_dgram(void *user, wzp_quic_conn *c, const uint8_t *d, size_t len, wzp_ts now)
{
    side *s = user;
    s->dgrams++;
    if (!s->peer->established)
        s->dgrams_before_peer_established++;
}

static void on_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info, wzp_ts now)
{
    side *s = user;
    if (s->conn == c)
        s->conn = NULL;
}

static const wzp_quic_conn_callbacks side_callbacks = {
    .established = on_est, .datagram = on_dgram, .closed = on_closed};

static side c, s;
static int client_queued_early;

/* While the client is not established it tries a datagram after every packet it receives. */
static void client_got_packet(qnet *q, qnet_node *to, void *arg)
{
    if (to->idx != 0 || c.established || !c.conn)
        return;
    bool can = wzp_quic_conn_can_send_datagram(c.conn);
    int rc = wzp_quic_conn_send_datagram(c.conn, (const uint8_t *)"early", 5);
    assert_int_equal(rc == 0, can);
    if (rc == 0)
        client_queued_early++;
}

static bool both_established(qnet *q, void *arg)
{
    return c.established && s.established;
}

/* Runs a handshake on qnet (1 ms one way) with the client trying datagrams
 * as above. Returns how many the server got before the client was established. */
static int run(bool early, int *queued)
{
    memset(&c, 0, sizeof(c));
    memset(&s, 0, sizeof(s));
    c.peer = &s;
    s.peer = &c;
    client_queued_early = 0;
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    cfg.cb.accept = on_accept;
    cfg.id = test_ids.c;
    cfg.user = &c;
    assert_int_equal(wzp_quic_endpoint_new(&c.ep, &cfg), 0);
    cfg.id = test_ids.s;
    cfg.server = true;
    cfg.user = &s;
    assert_int_equal(wzp_quic_endpoint_new(&s.ep, &cfg), 0);
    qnet q;
    qnet_init(&q, WZP_SEC(1), WZP_MS(1));
    qnet_node *cn = qnet_add_ep(&q, "192.0.2.1:1000", c.ep);
    qnet_node *sn = qnet_add_ep(&q, "192.0.2.2:2000", s.ep);
    q.delivered = client_got_packet;
    wzp_quic_conn_config o;
    qnet_opts(&o, test_ids.fp_s);
    o.early_datagrams = early;
    o.cb = side_callbacks;
    o.user = &c;
    c.conn = qnet_connect(&q, cn, &sn->addr, &o);
    assert_true(qnet_run(&q, WZP_MS(40), both_established, NULL));
    *queued = client_queued_early;
    /* The server, even with the option set, never sends before it is established. */
    int got = s.dgrams_before_peer_established;
    qnet_free(&q);
    return got;
}

static void test_early_datagrams(void **state)
{
    int queued;
    int got = run(true, &queued);
    assert_true(queued >= 1);
    assert_true(got >= 1); /* arrived one round trip before the client was established */
}

static void test_no_early_datagrams_by_default(void **state)
{
    int queued;
    int got = run(false, &queued);
    assert_int_equal(queued, 0);
    assert_int_equal(got, 0);
}

WZP_TEST_MAIN(id_pair_group_setup, id_pair_group_teardown, test_early_datagrams,
              test_no_early_datagrams_by_default)
