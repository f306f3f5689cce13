/*
 * wzp_quic_conn_opts.early_datagrams (used by the client core for the
 * caller's first media): a client may send datagrams once its TLS handshake
 * completed (server key checked), before `established`; without the option
 * it may not; a server ignores the option. Two endpoints in memory, packets
 * delivered one flush at a time so the order is under the test's control.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/identity.h>

#include "quic/quic.h"

static wzp_identity *id_s, *id_c;
static uint8_t fp_s[WZP_FINGERPRINT_LEN], fp_c[WZP_FINGERPRINT_LEN];

typedef struct side {
    wzp_quic_endpoint *ep;
    wzp_quic_conn *conn;
    bool established;
    int dgrams;
    int dgrams_before_peer_established;
    struct side *peer;
    bool early_opt; /* server: what on_accept puts in the options (ignored) */
    uint8_t q[64][1500];
    size_t qlen[64];
    int n;
} side;

static wzp_addr a_c, a_s;

static int on_accept(void *user, const wzp_addr *l, const wzp_addr *r, wzp_quic_conn_opts *o)
{
    side *s = user;
    o->pin_mode = WZP_QUIC_PIN_EXACT;
    memcpy(o->pin, fp_c, sizeof(fp_c));
    o->early_datagrams = s->early_opt; /* ignored on a server */
    o->initial_rtt = WZP_MS(10);
    return 0;
}

static void on_est(void *user, wzp_quic_conn *c, const uint8_t *fp)
{
    side *s = user;
    s->conn = c;
    s->established = true;
}

static void on_dgram(void *user, wzp_quic_conn *c, const uint8_t *d, size_t len)
{
    side *s = user;
    s->dgrams++;
    if (!s->peer->established)
        s->dgrams_before_peer_established++;
}

static void on_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info)
{
    side *s = user;
    if (s->conn == c)
        s->conn = NULL;
}

static void capture(void *user, const wzp_addr *l, const wzp_addr *r, const uint8_t *p, size_t len)
{
    side *to = user; /* packets are queued on the receiving side */
    if (to->n < 64 && len <= sizeof(to->q[0])) {
        memcpy(to->q[to->n], p, len);
        to->qlen[to->n++] = len;
    }
}

static int setup(void **state)
{
    assert_int_equal(wzp_identity_generate(&id_s), 0);
    assert_int_equal(wzp_identity_generate(&id_c), 0);
    wzp_identity_fingerprint(id_s, fp_s);
    wzp_identity_fingerprint(id_c, fp_c);
    wzp_addr_parse(&a_c, "192.0.2.1:1000", false);
    wzp_addr_parse(&a_s, "192.0.2.2:2000", false);
    return 0;
}

static int teardown(void **state)
{
    wzp_identity_free(id_s);
    wzp_identity_free(id_c);
    return 0;
}

/* Runs a handshake; while the client is not established it tries a datagram after every
 * packet it receives. Returns how many the server got before the client was established. */
static int run(bool early, int *client_queued_early)
{
    static side c, s;
    memset(&c, 0, sizeof(c));
    memset(&s, 0, sizeof(s));
    c.peer = &s;
    s.peer = &c;
    wzp_quic_callbacks cb = {on_accept, on_est, on_dgram, NULL, on_closed};
    assert_int_equal(wzp_quic_endpoint_new(id_c, false, &cb, &c, &c.ep), 0);
    assert_int_equal(wzp_quic_endpoint_new(id_s, true, &cb, &s, &s.ep), 0);
    wzp_quic_conn_opts o;
    wzp_quic_conn_opts_default(&o);
    memcpy(o.pin, fp_s, sizeof(fp_s));
    o.early_datagrams = early;
    o.initial_rtt = WZP_MS(10);
    wzp_ts now = WZP_SEC(1);
    assert_int_equal(wzp_quic_connect(c.ep, &a_c, &a_s, &o, now, &c.conn), 0);
    *client_queued_early = 0;
    for (int step = 0; step < 20 && !(c.established && s.established); step++) {
        now += WZP_MS(1);
        /* client -> server */
        wzp_quic_endpoint_flush(c.ep, now, capture, &s);
        for (int i = 0; i < s.n; i++)
            wzp_quic_endpoint_feed(s.ep, &a_s, &a_c, s.q[i], s.qlen[i], now);
        s.n = 0;
        /* server -> client */
        wzp_quic_endpoint_flush(s.ep, now, capture, &c);
        for (int i = 0; i < c.n; i++) {
            wzp_quic_endpoint_feed(c.ep, &a_c, &a_s, c.q[i], c.qlen[i], now);
            if (!c.established && c.conn) {
                bool can = wzp_quic_conn_can_send_datagram(c.conn);
                int rc = wzp_quic_conn_send_datagram(c.conn, (const uint8_t *)"early", 5);
                assert_int_equal(rc == 0, can);
                if (rc == 0)
                    (*client_queued_early)++;
            }
        }
        c.n = 0;
    }
    assert_true(c.established && s.established);
    /* The server, even with the option set, never sends before it is established. */
    int got = s.dgrams_before_peer_established;
    wzp_quic_endpoint_free(c.ep);
    wzp_quic_endpoint_free(s.ep);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_early_datagrams),
        cmocka_unit_test(test_no_early_datagrams_by_default),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
