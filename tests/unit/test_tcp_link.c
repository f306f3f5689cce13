/* Unit tests for src/net/tcp_link.c over a socket pair: TLS with the relay's
 * identity and the client's pin, records both ways, a wrong pin, and the
 * bounded send queue keeping the newest records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/id_pair.h"
#include "support/test_main.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "net/tcp_link.h"
#include "quic/identity_tls.h"

typedef struct got {
    int n;
    uint32_t first, last; /* the numbers records carry */
} got;

static void on_rec(void *user, const uint8_t *rec, size_t len)
{
    got *g = user;
    uint32_t v = 0;
    if (len >= 4)
        memcpy(&v, rec, 4);
    if (!g->n++)
        g->first = v;
    g->last = v;
}

static gnutls_certificate_credentials_t scred, ccred;

static int setup(void **state)
{
    if (id_pair_group_setup(state) != 0 || gnutls_certificate_allocate_credentials(&scred) != 0 ||
        gnutls_certificate_allocate_credentials(&ccred) != 0)
        return -1;
    return wzp_identity_set_credentials(test_ids.s, scred) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    gnutls_certificate_free_credentials(scred);
    gnutls_certificate_free_credentials(ccred);
    return id_pair_group_teardown(state);
}

/* A server link and a client link pinned to `pin`, on a non-blocking socket pair. */
static void pair(wzp_tcp_link **s, wzp_tcp_link **c, const uint8_t *pin, size_t queue)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    wzp_tcp_link_config sc = {.fd = sv[0], .server = true, .cred = scred};
    wzp_tcp_link_config cc = {.fd = sv[1], .cred = ccred, .queue = queue};
    memcpy(cc.pin, pin, WZP_FINGERPRINT_LEN);
    assert_int_equal(wzp_tcp_link_new(s, &sc), 0);
    assert_int_equal(wzp_tcp_link_new(c, &cc), 0);
}

/* Runs both until neither makes progress (bounded); the client's result. */
static int run(wzp_tcp_link *s, wzp_tcp_link *c, got *gs, got *gc, int *srv_rc)
{
    int rc = 0;
    *srv_rc = 0;
    for (int i = 0; i < 50; i++) {
        if (*srv_rc == 0)
            *srv_rc = wzp_tcp_link_io(s, on_rec, gs);
        if (rc == 0)
            rc = wzp_tcp_link_io(c, on_rec, gc);
    }
    return rc;
}

static void test_records_both_ways(void **state)
{
    (void)state;
    wzp_tcp_link *s, *c;
    got gs = {0}, gc = {0};
    int src;
    pair(&s, &c, test_ids.fp_s, 0);
    assert_int_equal(run(s, c, &gs, &gc, &src), 0);
    assert_int_equal(src, 0);
    assert_true(wzp_tcp_link_up(s) && wzp_tcp_link_up(c));
    uint8_t rec[200] = {0};
    for (uint32_t k = 1; k <= 5; k++) {
        memcpy(rec, &k, 4);
        assert_int_equal(wzp_tcp_link_send(c, rec, sizeof(rec)), 0);
        assert_int_equal(wzp_tcp_link_send(s, rec, 100), 0);
    }
    assert_int_equal(wzp_tcp_link_send(c, rec, 0), WZP_ERR_INVALID);
    assert_int_equal(run(s, c, &gs, &gc, &src), 0);
    assert_int_equal(gs.n, 5);
    assert_int_equal(gc.n, 5);
    assert_int_equal(gs.first, 1);
    assert_int_equal(gs.last, 5);
    wzp_tcp_link_free(c);
    /* The server notices the peer went away. */
    assert_true(wzp_tcp_link_io(s, on_rec, &gs) < 0);
    wzp_tcp_link_free(s);
}

static void test_wrong_pin(void **state)
{
    (void)state;
    wzp_tcp_link *s, *c;
    got gs = {0}, gc = {0};
    int src;
    pair(&s, &c, test_ids.fp_c, 0); /* the client expects another key */
    assert_int_equal(run(s, c, &gs, &gc, &src), WZP_ERR_PIN_MISMATCH);
    assert_non_null(strstr(wzp_tcp_link_error(c), "pin mismatch"));
    assert_false(wzp_tcp_link_up(c));
    wzp_tcp_link_free(c);
    wzp_tcp_link_free(s);
}

static void test_full_queue_keeps_newest(void **state)
{
    (void)state;
    wzp_tcp_link *s, *c;
    got gs = {0}, gc = {0};
    int src;
    pair(&s, &c, test_ids.fp_s, 4096);
    assert_int_equal(run(s, c, &gs, &gc, &src), 0);
    /* 100 records of ~1 KB queued before the link may write: only the newest fit. */
    uint8_t rec[1000] = {0};
    for (uint32_t k = 1; k <= 100; k++) {
        memcpy(rec, &k, 4);
        assert_int_equal(wzp_tcp_link_send(c, rec, sizeof(rec)), 0);
    }
    wzp_tcp_link_stats st;
    wzp_tcp_link_get_stats(c, &st);
    assert_true(st.tx_dropped >= 96);
    assert_int_equal(run(s, c, &gs, &gc, &src), 0);
    assert_int_equal(gs.n, 100 - (int)st.tx_dropped);
    assert_int_equal(gs.last, 100);
    assert_int_equal(gs.first, 100 - gs.n + 1);
    wzp_tcp_link_free(c);
    wzp_tcp_link_free(s);
}

WZP_TEST_MAIN(setup, teardown, test_records_both_ways, test_wrong_pin, test_full_queue_keeps_newest)
