/* Unit tests for src/net/udp: batched send/receive on loopback, truncation, IPv6-only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/addr.h"
#include "net/udp.h"

/* Waits (bounded) until fd is readable; the kernel delivers loopback datagrams promptly. */
static bool wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Receives until n datagrams arrived or nothing more comes within a second. */
static size_t recv_n(int fd, wzp_udp_msg *msgs, size_t n)
{
    size_t got = 0;
    while (got < n && wait_readable(fd, 1000)) {
        int rv = wzp_udp_recv_batch(fd, msgs + got, n - got);
        assert_true(rv >= 0);
        got += (size_t)rv;
    }
    return got;
}

static void open_pair(const char *bind, int *a, wzp_addr *aa, int *b, wzp_addr *ba)
{
    wzp_addr any;
    assert_int_equal(wzp_addr_parse(&any, bind, false), 0);
    *a = wzp_udp_open(&any, NULL, aa);
    *b = wzp_udp_open(&any, NULL, ba);
    assert_true(*a >= 0 && *b >= 0);
    assert_int_not_equal(wzp_addr_port(aa), 0);
    assert_int_not_equal(wzp_addr_port(ba), 0);
}

static void batch_roundtrip(const char *bind)
{
    int a, b;
    wzp_addr aa, ba;
    open_pair(bind, &a, &aa, &b, &ba);

    enum { N = 40 };
    static uint8_t sbuf[N][64], rbuf[N][128];
    wzp_udp_msg out[N], in[N];
    for (size_t i = 0; i < N; i++) {
        memset(sbuf[i], (int)i, sizeof(sbuf[i]));
        out[i] = (wzp_udp_msg){.data = sbuf[i], .cap = sizeof(sbuf[i]), .len = 10 + i, .peer = ba};
        in[i] = (wzp_udp_msg){.data = rbuf[i], .cap = sizeof(rbuf[i])};
    }
    assert_int_equal(wzp_udp_send_batch(a, out, N), N);
    assert_int_equal(recv_n(b, in, N), N);
    for (size_t i = 0; i < N; i++) {
        /* Loopback keeps order. */
        assert_int_equal(in[i].len, 10 + i);
        assert_int_equal(in[i].data[0], (uint8_t)i);
        assert_true(wzp_addr_equal(&in[i].peer, &aa));
    }
    /* Nothing more is waiting. */
    assert_int_equal(wzp_udp_recv_batch(b, in, N), 0);

    /* The single-datagram helper goes the other way. */
    assert_int_equal(wzp_udp_send(b, &aa, (const uint8_t *)"hello", 5), 0);
    assert_int_equal(recv_n(a, in, 1), 1);
    assert_int_equal(in[0].len, 5);
    assert_memory_equal(in[0].data, "hello", 5);
    assert_true(wzp_addr_equal(&in[0].peer, &ba));
    close(a);
    close(b);
}

static void test_batch_v4(void **state)
{
    (void)state;
    batch_roundtrip("127.0.0.1:0");
}

static int v6_available(void)
{
    wzp_addr a;
    wzp_addr_parse(&a, "[::1]:0", false);
    int fd = wzp_udp_open(&a, NULL, NULL);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static void test_batch_v6(void **state)
{
    (void)state;
    if (!v6_available())
        skip();
    batch_roundtrip("[::1]:0");
}

static void test_truncation_marked(void **state)
{
    (void)state;
    int a, b;
    wzp_addr aa, ba;
    open_pair("127.0.0.1:0", &a, &aa, &b, &ba);
    uint8_t big[300], small[100], ok[300];
    memset(big, 0xab, sizeof(big));
    wzp_udp_msg out[2] = {{.data = big, .cap = sizeof(big), .len = 200, .peer = ba},
                          {.data = big, .cap = sizeof(big), .len = 50, .peer = ba}};
    assert_int_equal(wzp_udp_send_batch(a, out, 2), 2);
    wzp_udp_msg in[2] = {{.data = small, .cap = sizeof(small)}, {.data = ok, .cap = sizeof(ok)}};
    assert_int_equal(recv_n(b, in, 2), 2);
    assert_int_equal(in[0].len, 0); /* 200 bytes into 100: truncated, marked empty */
    assert_int_equal(in[1].len, 50);
    close(a);
    close(b);
}

static void test_v6only_ignores_v4(void **state)
{
    (void)state;
    if (!v6_available())
        skip();
    /* A v6 wildcard socket would see v4 traffic as ::ffff:a.b.c.d unless it is v6-only. */
    wzp_addr any6, bound6, lo4, bound4;
    assert_int_equal(wzp_addr_parse(&any6, "[::]:0", false), 0);
    int s6 = wzp_udp_open(&any6, NULL, &bound6);
    assert_true(s6 >= 0);
    assert_int_equal(wzp_addr_parse(&lo4, "127.0.0.1:0", false), 0);
    int s4 = wzp_udp_open(&lo4, NULL, &bound4);
    assert_true(s4 >= 0);

    wzp_addr to4;
    assert_int_equal(wzp_addr_parse(&to4, "127.0.0.1:0", false), 0);
    wzp_addr_set_port(&to4, wzp_addr_port(&bound6));
    /* Sending succeeds (or is skipped as unreachable); either way it must not arrive. */
    assert_true(wzp_udp_send(s4, &to4, (const uint8_t *)"v4", 2) == 0);

    /* A v6 datagram to the same socket does arrive: the socket works. */
    wzp_addr lo6, to6;
    assert_int_equal(wzp_addr_parse(&lo6, "[::1]:0", false), 0);
    int c6 = wzp_udp_open(&lo6, NULL, NULL);
    assert_true(c6 >= 0);
    wzp_addr_parse(&to6, "[::1]:0", false);
    wzp_addr_set_port(&to6, wzp_addr_port(&bound6));
    assert_int_equal(wzp_udp_send(c6, &to6, (const uint8_t *)"v6", 2), 0);

    uint8_t buf[16];
    wzp_udp_msg in[4];
    for (size_t i = 0; i < 4; i++)
        in[i] = (wzp_udp_msg){.data = buf, .cap = sizeof(buf)};
    assert_int_equal(recv_n(s6, in, 1), 1);
    assert_int_equal(in[0].len, 2);
    assert_memory_equal(buf, "v6", 2);
    assert_int_equal(wzp_addr_family(&in[0].peer), AF_INET6);
    /* The v4 datagram, sent first, would have been delivered first or by now. */
    assert_false(wait_readable(s6, 100));
    close(s4);
    close(s6);
    close(c6);
}

static void test_bad_family(void **state)
{
    (void)state;
    wzp_addr none;
    wzp_addr_clear(&none);
    assert_int_equal(wzp_udp_open(&none, NULL, NULL), WZP_ERR_INVALID);
}

WZP_TEST_MAIN(NULL, NULL, test_batch_v4, test_batch_v6, test_truncation_marked,
              test_v6only_ignores_v4, test_bad_family)
