/*
 * Relay forwarding plane on loopback: frame codec, channel table, and the
 * forwarder with fake peers (plain UDP sockets).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <string.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/addr.h"
#include "net/udp.h"
#include "relay/chan_table.h"
#include "relay/forwarder.h"
#include "relay/fwd_batch.h"
#include "wire/relay_frame.h"
#include "wire/stun.h"
#include "wire/stun_server.h"

/* ---- frame codec ---------------------------------------------------------- */

static void test_frame_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[64], payload[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int n = wzp_relay_frame_encode(buf, sizeof(buf), WZP_RELAY_FRAME_DATA, 0xdeadbeef, payload,
                                   sizeof(payload));
    assert_int_equal(n, WZP_RELAY_FRAME_HDR + 10);
    assert_int_equal(buf[0], 0x80);
    wzp_relay_frame f;
    assert_int_equal(wzp_relay_frame_decode(&f, buf, (size_t)n), 0);
    assert_int_equal(f.type, WZP_RELAY_FRAME_DATA);
    assert_int_equal(f.channel, 0xdeadbeef);
    assert_int_equal(f.payload_len, 10);
    assert_memory_equal(f.payload, payload, 10);

    wzp_relay_frame_rewrite(buf, WZP_RELAY_FRAME_DATA, 0x01020304);
    assert_int_equal(wzp_relay_frame_decode(&f, buf, (size_t)n), 0);
    assert_int_equal(f.channel, 0x01020304);
    assert_memory_equal(f.payload, payload, 10);

    /* Header only is a valid (empty) frame. */
    assert_int_equal(wzp_relay_frame_decode(&f, buf, WZP_RELAY_FRAME_HDR), 0);
    assert_int_equal(f.payload_len, 0);
    /* Short, unknown type, channel 0. */
    for (size_t len = 0; len < WZP_RELAY_FRAME_HDR; len++)
        assert_int_equal(wzp_relay_frame_decode(&f, buf, len), WZP_ERR_MALFORMED);
    buf[0] = 0x8f;
    assert_int_equal(wzp_relay_frame_decode(&f, buf, (size_t)n), WZP_ERR_MALFORMED);
    uint8_t zero[] = {0x80, 0, 0, 0, 0, 1};
    assert_int_equal(wzp_relay_frame_decode(&f, zero, sizeof(zero)), WZP_ERR_MALFORMED);
    /* Encoder limits. */
    assert_int_equal(wzp_relay_frame_encode(buf, 14, WZP_RELAY_FRAME_DATA, 1, payload, 10),
                     WZP_ERR_TOO_BIG);
    assert_int_equal(wzp_relay_frame_encode(buf, 64, WZP_RELAY_FRAME_DATA, 0, payload, 10),
                     WZP_ERR_INVALID);
    assert_int_equal(wzp_relay_frame_encode(buf, 64, 0x8e, 1, payload, 10), WZP_ERR_INVALID);
}

/* ---- channel table ------------------------------------------------------- */

static wzp_addr addr(const char *s)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, s, false), 0);
    return a;
}

/* A channel table for n channels. */
static wzp_chan_table *table_new(uint32_t n)
{
    wzp_chan_table_config cfg = {.max_channels = n};
    wzp_chan_table *t = NULL;
    assert_int_equal(wzp_chan_table_new(&t, &cfg), 0);
    return t;
}

static void test_table_basic(void **state)
{
    (void)state;
    wzp_chan_table *t = table_new(8);
    assert_non_null(t);
    wzp_addr a = addr("192.0.2.1:1000"), b = addr("[2001:db8::2]:2000"), c = addr("192.0.2.1:1001");
    uint32_t ca, cb, partner;
    wzp_addr to;
    assert_int_equal(wzp_chan_table_open_pair(t, &a, &b, 100, &ca, &cb), 0);
    assert_int_not_equal(ca, 0);
    assert_int_not_equal(cb, 0);
    assert_int_not_equal(ca, cb);
    assert_int_equal(wzp_chan_table_pairs(t), 1);

    assert_int_equal(wzp_chan_table_route(t, ca, &a, 200, 50, &partner, &to), 0);
    assert_int_equal(partner, cb);
    assert_true(wzp_addr_equal(&to, &b));
    assert_int_equal(wzp_chan_table_route(t, cb, &b, 300, 60, &partner, &to), 0);
    assert_int_equal(partner, ca);
    assert_true(wzp_addr_equal(&to, &a));
    /* Wrong source (same IP, other port), unknown ids. */
    assert_int_equal(wzp_chan_table_route(t, ca, &c, 300, 1, &partner, &to), WZP_ERR_REJECTED);
    assert_int_equal(wzp_chan_table_route(t, 0, &a, 300, 1, &partner, &to), WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_chan_table_route(t, ca ^ 0x80000000u, &a, 300, 1, &partner, &to),
                     WZP_ERR_NOT_FOUND);

    wzp_chan_info info;
    assert_int_equal(wzp_chan_table_info(t, ca, &info), 0);
    assert_int_equal(info.partner, cb);
    assert_int_equal(info.packets, 1);
    assert_int_equal(info.bytes, 50);
    assert_true(wzp_addr_equal(&info.addr, &a));

    /* Rebinding. */
    assert_int_equal(wzp_chan_table_set_addr(t, ca, &c), 0);
    assert_int_equal(wzp_chan_table_route(t, ca, &a, 400, 1, &partner, &to), WZP_ERR_REJECTED);
    assert_int_equal(wzp_chan_table_route(t, ca, &c, 400, 1, &partner, &to), 0);
    assert_int_equal(wzp_chan_table_route(t, cb, &b, 400, 1, &partner, &to), 0);
    assert_true(wzp_addr_equal(&to, &c));

    /* Close by either id; stale ids never hit the reused slots. */
    assert_int_equal(wzp_chan_table_close_pair(t, cb), 0);
    assert_int_equal(wzp_chan_table_close_pair(t, ca), WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_chan_table_pairs(t), 0);
    assert_int_equal(wzp_chan_table_route(t, ca, &c, 500, 1, &partner, &to), WZP_ERR_NOT_FOUND);
    uint32_t ca2, cb2;
    assert_int_equal(wzp_chan_table_open_pair(t, &a, &b, 600, &ca2, &cb2), 0);
    assert_true(ca2 != ca && ca2 != cb && cb2 != ca && cb2 != cb);
    assert_int_equal(wzp_chan_table_route(t, ca, &a, 700, 1, &partner, &to), WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_chan_table_route(t, cb, &b, 700, 1, &partner, &to), WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_chan_table_info(t, ca2, &info), 0);
    assert_int_equal(info.packets, 0);

    /* Capacity: 8 channels = 4 pairs. */
    uint32_t x, y;
    for (int i = 0; i < 3; i++)
        assert_int_equal(wzp_chan_table_open_pair(t, &a, &b, 700, &x, &y), 0);
    assert_int_equal(wzp_chan_table_open_pair(t, &a, &b, 700, &x, &y), WZP_ERR_LIMIT);
    wzp_addr none;
    wzp_addr_clear(&none);
    assert_int_equal(wzp_chan_table_open_pair(t, &none, &b, 700, &x, &y), WZP_ERR_INVALID);
    wzp_chan_table_free(t);
}

typedef struct expired_log {
    uint32_t a[8], b[8];
    size_t n;
} expired_log;

static void on_expired(uint32_t a, uint32_t b, void *user)
{
    expired_log *l = user;
    l->a[l->n] = a;
    l->b[l->n] = b;
    l->n++;
}

static void test_table_expire(void **state)
{
    (void)state;
    wzp_chan_table *t = table_new(16);
    wzp_addr a = addr("127.0.0.1:1"), b = addr("127.0.0.1:2");
    uint32_t a1, b1, a2, b2, partner;
    wzp_addr to;
    wzp_ts t0 = WZP_SEC(10);
    assert_int_equal(wzp_chan_table_open_pair(t, &a, &b, t0, &a1, &b1), 0);
    assert_int_equal(wzp_chan_table_open_pair(t, &a, &b, t0, &a2, &b2), 0);
    /* Only B of pair 2 keeps talking (a keep-alive); that keeps the pair alive. */
    assert_int_equal(wzp_chan_table_touch(t, b2, &b, t0 + WZP_SEC(20)), 0);
    assert_int_equal(wzp_chan_table_touch(t, b2, &a, t0 + WZP_SEC(20)), WZP_ERR_REJECTED);
    expired_log log = {0};
    assert_int_equal(wzp_chan_table_expire(t, t0 + WZP_SEC(29), WZP_SEC(30), on_expired, &log), 0);
    assert_int_equal(wzp_chan_table_expire(t, t0 + WZP_SEC(30), WZP_SEC(30), on_expired, &log), 1);
    assert_int_equal(log.n, 1);
    assert_true((log.a[0] == a1 && log.b[0] == b1) || (log.a[0] == b1 && log.b[0] == a1));
    assert_int_equal(wzp_chan_table_route(t, a1, &a, t0 + WZP_SEC(31), 1, &partner, &to),
                     WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_chan_table_route(t, a2, &a, t0 + WZP_SEC(31), 1, &partner, &to), 0);
    assert_int_equal(wzp_chan_table_expire(t, t0 + WZP_SEC(100), WZP_SEC(30), NULL, NULL), 1);
    assert_int_equal(wzp_chan_table_pairs(t), 0);
    wzp_chan_table_free(t);
}

/* Readers route while a writer keeps rebinding, closing and reopening: under
 * TSan/ASan this exercises the seqlock; here it checks no torn address is seen. */
typedef struct race_ctx {
    wzp_chan_table *t;
    uint32_t chan;
    wzp_addr from;
    _Atomic int stop;
    long bad;
} race_ctx;

static void *race_reader(void *arg)
{
    race_ctx *c = arg;
    wzp_addr to;
    uint32_t partner;
    while (!atomic_load(&c->stop)) {
        if (wzp_chan_table_route(c->t, c->chan, &c->from, 1, 1, &partner, &to) == 0) {
            /* The partner is always one of two complete addresses. */
            uint16_t port = wzp_addr_port(&to);
            if (port != 2000 && port != 3000)
                c->bad++;
            if (port == 2000 && to.u.v4.sin_addr.s_addr != htonl(0x7f000002))
                c->bad++;
            if (port == 3000 && to.u.v4.sin_addr.s_addr != htonl(0x7f000003))
                c->bad++;
        }
    }
    return NULL;
}

static void test_table_concurrent(void **state)
{
    (void)state;
    wzp_chan_table *t = table_new(64);
    wzp_addr a = addr("127.0.0.1:1000"), b1 = addr("127.0.0.2:2000"), b2 = addr("127.0.0.3:3000");
    uint32_t ca, cb;
    assert_int_equal(wzp_chan_table_open_pair(t, &a, &b1, 1, &ca, &cb), 0);
    race_ctx c = {.t = t, .chan = ca, .from = a};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_reader, &c), 0);
    for (int i = 0; i < 20000; i++) {
        assert_int_equal(wzp_chan_table_set_addr(t, cb, (i & 1) ? &b1 : &b2), 0);
        if (i % 1000 == 999) {
            uint32_t x, y;
            assert_int_equal(wzp_chan_table_open_pair(t, &a, &b1, 1, &x, &y), 0);
            assert_int_equal(wzp_chan_table_close_pair(t, x), 0);
        }
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(c.bad, 0);
    wzp_chan_table_free(t);
}

/* ---- forwarder on loopback ---------------------------------------------- */

static int peer_open(wzp_addr *bound)
{
    wzp_addr lo = addr("127.0.0.1:0");
    int fd = wzp_udp_open(&lo, NULL, bound);
    assert_true(fd >= 0);
    return fd;
}

/* Waits (bounded) for one datagram; returns its length or -1. */
static int peer_recv(int fd, uint8_t *buf, size_t cap, wzp_addr *from, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    wzp_udp_msg m = {.data = buf, .cap = cap};
    if (wzp_udp_recv_batch(fd, &m, 1) != 1)
        return -1;
    if (from)
        *from = m.peer;
    return (int)m.len;
}

static bool nothing_waiting(int fd)
{
    uint8_t buf[64];
    return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

static void send_frame(int fd, const wzp_addr *relay, uint8_t type, uint32_t chan,
                       const uint8_t *payload, size_t len)
{
    uint8_t buf[256];
    int n = wzp_relay_frame_encode(buf, sizeof(buf), type, chan, payload, len);
    assert_true(n > 0);
    assert_int_equal(wzp_udp_send(fd, relay, buf, (size_t)n), 0);
}

/* Waits until a counter reaches `want` (the worker runs asynchronously). */
static uint64_t stat_wait(wzp_forwarder *f, size_t off, uint64_t want)
{
    wzp_forwarder_stats s;
    for (int i = 0; i < 2000; i++) {
        wzp_forwarder_get_stats(f, &s);
        uint64_t v = *(uint64_t *)((char *)&s + off);
        if (v >= want)
            return v;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    wzp_forwarder_get_stats(f, &s);
    return *(uint64_t *)((char *)&s + off);
}
#define STAT_WAIT(f, field, want) stat_wait((f), offsetof(wzp_forwarder_stats, field), (want))

/* Sends a data frame from (fd, chan) and checks the partner receives it intact. */
static void expect_delivery(int from_fd, uint32_t chan, const wzp_addr *relay, int to_fd,
                            uint32_t to_chan, uint8_t tag)
{
    uint8_t payload[200], buf[512];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(tag + i * 7);
    send_frame(from_fd, relay, WZP_RELAY_FRAME_DATA, chan, payload, sizeof(payload));
    wzp_addr src;
    int n = peer_recv(to_fd, buf, sizeof(buf), &src, 2000);
    assert_int_equal(n, WZP_RELAY_FRAME_HDR + sizeof(payload));
    assert_true(wzp_addr_equal(&src, relay));
    wzp_relay_frame f;
    assert_int_equal(wzp_relay_frame_decode(&f, buf, (size_t)n), 0);
    assert_int_equal(f.type, WZP_RELAY_FRAME_DATA);
    assert_int_equal(f.channel, to_chan);
    assert_memory_equal(f.payload, payload, sizeof(payload));
}

typedef struct fixture {
    wzp_chan_table *t;
    wzp_forwarder *f;
    wzp_addr relay;
} fixture;

static void fixture_start_cfg(fixture *x, unsigned workers, int coalesce_us)
{
    x->t = table_new(1024);
    assert_non_null(x->t);
    wzp_forwarder_config cfg = {
        .workers = workers, .ctl_queue = 4, .coalesce_us = coalesce_us, .table = x->t};
    cfg.bind = addr("127.0.0.1:0");
    assert_int_equal(wzp_forwarder_new(&x->f, &cfg), 0);
    assert_int_equal(wzp_forwarder_workers(x->f), workers);
    x->relay = *wzp_forwarder_local_addr(x->f);
    assert_int_not_equal(wzp_addr_port(&x->relay), 0);
}

static void fixture_start(fixture *x, unsigned workers)
{
    fixture_start_cfg(x, workers, 0);
}

static void fixture_stop(fixture *x)
{
    wzp_forwarder_free(x->f);
    wzp_chan_table_free(x->t);
}

static wzp_ts mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (wzp_ts)ts.tv_sec * 1000000000ull + (wzp_ts)ts.tv_nsec;
}

static void test_forward_pair(void **state)
{
    (void)state;
    fixture x;
    fixture_start(&x, 2);
    wzp_addr aa, ba, ca, a2a;
    int a = peer_open(&aa), b = peer_open(&ba), c = peer_open(&ca), a2 = peer_open(&a2a);
    uint32_t cha, chb;
    assert_int_equal(wzp_chan_table_open_pair(x.t, &aa, &ba, mono_now(), &cha, &chb), 0);

    /* Both directions, payload untouched, receiver's own channel id. */
    expect_delivery(a, cha, &x.relay, b, chb, 1);
    expect_delivery(b, chb, &x.relay, a, cha, 2);
    assert_int_equal(STAT_WAIT(x.f, forwarded, 2), 2);

    /* Wrong source: C uses A's channel. Dropped, nothing reaches B. */
    uint8_t p[20] = {0};
    send_frame(c, &x.relay, WZP_RELAY_FRAME_DATA, cha, p, sizeof(p));
    assert_int_equal(STAT_WAIT(x.f, wrong_source, 1), 1);
    assert_true(nothing_waiting(b));

    /* Unknown channel. */
    send_frame(a, &x.relay, WZP_RELAY_FRAME_DATA, cha ^ 0x00f00000u, p, sizeof(p));
    assert_int_equal(STAT_WAIT(x.f, unknown_channel, 1), 1);

    /* Malformed: short frame, reserved type, unknown first byte. */
    uint8_t shortf[] = {0x80, 0, 0}, reserved[] = {0x8a, 0, 0, 0, 1, 9}, junk[] = {0x20, 1, 2};
    uint8_t ackf[] = {0x82, 0, 0, 0, 1};
    assert_int_equal(wzp_udp_send(a, &x.relay, shortf, sizeof(shortf)), 0);
    assert_int_equal(wzp_udp_send(a, &x.relay, reserved, sizeof(reserved)), 0);
    assert_int_equal(wzp_udp_send(a, &x.relay, junk, sizeof(junk)), 0);
    assert_int_equal(wzp_udp_send(a, &x.relay, ackf, sizeof(ackf)), 0);
    assert_int_equal(STAT_WAIT(x.f, malformed, 4), 4);
    assert_true(nothing_waiting(b));

    /* Keep-alive: answered to the sender, same size, not forwarded. */
    uint8_t ka[] = {1, 2, 3, 4, 5, 6, 7, 8};
    send_frame(a, &x.relay, WZP_RELAY_FRAME_KEEPALIVE, cha, ka, sizeof(ka));
    uint8_t buf[256];
    int n = peer_recv(a, buf, sizeof(buf), NULL, 2000);
    assert_int_equal(n, WZP_RELAY_FRAME_HDR + sizeof(ka));
    assert_int_equal(buf[0], WZP_RELAY_FRAME_KEEPALIVE_ACK);
    assert_memory_equal(buf + WZP_RELAY_FRAME_HDR, ka, sizeof(ka));
    assert_int_equal(STAT_WAIT(x.f, keepalives, 1), 1);
    assert_true(nothing_waiting(b));

    /* Rebinding: A moves to a2. */
    assert_int_equal(wzp_chan_table_set_addr(x.t, cha, &a2a), 0);
    expect_delivery(b, chb, &x.relay, a2, cha, 3);
    expect_delivery(a2, cha, &x.relay, b, chb, 4);
    send_frame(a, &x.relay, WZP_RELAY_FRAME_DATA, cha, p, sizeof(p));
    assert_int_equal(STAT_WAIT(x.f, wrong_source, 2), 2);
    assert_true(nothing_waiting(b));

    /* Idle expiry closes the pair; afterwards its channels are unknown. */
    assert_int_equal(wzp_chan_table_expire(x.t, mono_now(), WZP_SEC(60), NULL, NULL), 0);
    assert_int_equal(wzp_chan_table_expire(x.t, mono_now() + WZP_SEC(61), WZP_SEC(60), NULL, NULL),
                     1);
    send_frame(a2, &x.relay, WZP_RELAY_FRAME_DATA, cha, p, sizeof(p));
    assert_int_equal(STAT_WAIT(x.f, unknown_channel, 2), 2);

    /* Closed channel (explicit close) is dropped too. */
    uint32_t c1, c2;
    assert_int_equal(wzp_chan_table_open_pair(x.t, &aa, &ba, mono_now(), &c1, &c2), 0);
    expect_delivery(a, c1, &x.relay, b, c2, 5);
    assert_int_equal(wzp_chan_table_close_pair(x.t, c1), 0);
    send_frame(b, &x.relay, WZP_RELAY_FRAME_DATA, c2, p, sizeof(p));
    assert_int_equal(STAT_WAIT(x.f, unknown_channel, 3), 3);
    assert_true(nothing_waiting(a));

    /* A worker counts a forward after sendmmsg returns: the peer may be faster. */
    assert_int_equal(STAT_WAIT(x.f, forwarded, 5), 5);
    wzp_forwarder_stats s;
    wzp_forwarder_get_stats(x.f, &s);
    assert_int_equal(s.forwarded, 5);
    assert_int_equal(s.forwarded_bytes, 5 * (WZP_RELAY_FRAME_HDR + 200));
    assert_int_equal(s.wrong_source, 2);
    assert_int_equal(s.unknown_channel, 3);
    assert_int_equal(s.malformed, 4);
    assert_int_equal(s.keepalives, 1);
    assert_int_equal(s.ctl_queued, 0);
    assert_int_equal(s.rx, 5 + 2 + 3 + 4 + 1);
    close(a);
    close(b);
    close(c);
    close(a2);
    fixture_stop(&x);
}

/* ---- trains: UDP GSO in, GRO at the relay, GSO out ------------------------- */

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* Sends `n` frames of `seg` bytes each (the last may be shorter: `last`) as one GSO send. */
static void send_train(int fd, const wzp_addr *to, uint8_t *buf, size_t seg, size_t n, size_t last)
{
    struct iovec iov = {.iov_base = buf, .iov_len = seg * (n - 1) + last};
    union {
        char b[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr mh = {.msg_name = (void *)&to->u.ss,
                        .msg_namelen = to->len,
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.b,
                        .msg_controllen = sizeof(ctl.b)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t s16 = (uint16_t)seg;
    memcpy(CMSG_DATA(c), &s16, sizeof(s16));
    assert_int_equal(sendmsg(fd, &mh, 0), (ssize_t)iov.iov_len);
}

/* Frame i of a train: DATA on `chan`, payload bytes derived from i. */
static void train_frame(uint8_t *p, size_t len, uint32_t chan, size_t i)
{
    wzp_relay_frame_encode_hdr(p, len, WZP_RELAY_FRAME_DATA, chan);
    for (size_t k = WZP_RELAY_FRAME_HDR; k < len; k++)
        p[k] = (uint8_t)(i * 31 + k);
}

/* Receives one datagram at `fd` and checks it is frame i for `chan`, `len` bytes. */
static void expect_frame(int fd, uint32_t chan, size_t i, size_t len)
{
    uint8_t got[2048], want[2048];
    int n = peer_recv(fd, got, sizeof(got), NULL, 2000);
    assert_int_equal(n, (int)len);
    train_frame(want, len, chan, i);
    assert_memory_equal(got, want, len);
}

static void test_forward_trains(void **state)
{
    (void)state;
    fixture x;
    fixture_start(&x, 1);
    wzp_addr aa, ba, ca;
    int a = peer_open(&aa), b = peer_open(&ba), c = peer_open(&ca);
    uint32_t cha, chb;
    assert_int_equal(wzp_chan_table_open_pair(x.t, &aa, &ba, mono_now(), &cha, &chb), 0);
    enum { SEG = 120, N = 16 };
    uint8_t buf[SEG * N];

    /* A bulk train: every frame arrives at B on B's channel, in order, intact;
     * the relay saw one GRO buffer and sent one GSO train. */
    for (size_t i = 0; i < N; i++)
        train_frame(buf + i * SEG, SEG, cha, i);
    send_train(a, &x.relay, buf, SEG, N, SEG);
    for (size_t i = 0; i < N; i++)
        expect_frame(b, chb, i, SEG);
    assert_int_equal(STAT_WAIT(x.f, forwarded, N), N);
    wzp_forwarder_stats s;
    wzp_forwarder_get_stats(x.f, &s);
    assert_int_equal(s.rx, N);
    assert_int_equal(s.rx_trains, 1);
    assert_int_equal(s.tx_trains, 1);
    assert_int_equal(s.forwarded_bytes, N * SEG);

    /* A shorter last frame stays the train's last. */
    for (size_t i = 0; i < 4; i++)
        train_frame(buf + i * SEG, i == 3 ? 40 : SEG, chb, 100 + i);
    send_train(b, &x.relay, buf, SEG, 4, 40);
    for (size_t i = 0; i < 4; i++)
        expect_frame(a, cha, 100 + i, i == 3 ? 40 : SEG);
    assert_int_equal(STAT_WAIT(x.f, forwarded, N + 4), N + 4);

    /* A mixed train: each frame is judged alone. Frames 0-2 and 6-7 go through,
     * 3 names an unknown channel, 4 is junk, 5 is a keep-alive (answered to A). */
    for (size_t i = 0; i < 8; i++)
        train_frame(buf + i * SEG, SEG, cha, 200 + i);
    wzp_relay_frame_encode_hdr(buf + 3 * SEG, SEG, WZP_RELAY_FRAME_DATA, cha ^ 0x00f00000u);
    buf[4 * SEG] = 0x20;
    wzp_relay_frame_encode_hdr(buf + 5 * SEG, SEG, WZP_RELAY_FRAME_KEEPALIVE, cha);
    send_train(a, &x.relay, buf, SEG, 8, SEG);
    for (size_t i = 0; i < 8; i++)
        if (i < 3 || i > 5)
            expect_frame(b, chb, 200 + i, SEG);
    uint8_t ack[256];
    assert_int_equal(peer_recv(a, ack, sizeof(ack), NULL, 2000), SEG);
    assert_int_equal(ack[0], WZP_RELAY_FRAME_KEEPALIVE_ACK);
    assert_int_equal(STAT_WAIT(x.f, forwarded, N + 4 + 5), N + 4 + 5);
    assert_int_equal(STAT_WAIT(x.f, unknown_channel, 1), 1);
    assert_int_equal(STAT_WAIT(x.f, malformed, 1), 1);
    assert_int_equal(STAT_WAIT(x.f, keepalives, 1), 1);
    assert_true(nothing_waiting(b));
    assert_true(nothing_waiting(a));

    /* A train from the wrong source: every frame dropped and counted. */
    for (size_t i = 0; i < 8; i++)
        train_frame(buf + i * SEG, SEG, cha, 300 + i);
    send_train(c, &x.relay, buf, SEG, 8, SEG);
    assert_int_equal(STAT_WAIT(x.f, wrong_source, 8), 8);
    assert_true(nothing_waiting(b));

    /* A train of control packets (probes): each one queued on its own. */
    for (size_t i = 0; i < 3; i++) {
        memset(buf + i * 40, 0, 40);
        buf[i * 40] = 0x90;
        buf[i * 40 + 39] = (uint8_t)i;
    }
    send_train(c, &x.relay, buf, 40, 3, 40);
    assert_int_equal(STAT_WAIT(x.f, ctl_queued, 3), 3);
    uint8_t cbuf[3][WZP_FWD_MAX_DGRAM];
    wzp_udp_msg m[3];
    for (int i = 0; i < 3; i++)
        m[i] = (wzp_udp_msg){.data = cbuf[i], .cap = sizeof(cbuf[i])};
    assert_int_equal(wzp_forwarder_ctl_recv(x.f, 0, m, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(m[i].len, 40);
        assert_int_equal(m[i].data[39], i);
        assert_true(wzp_addr_equal(&m[i].peer, &ca));
    }

    /* A train of STUN Binding requests: each answered on its own (the answers,
     * all to one peer and of one size, may leave as a train themselves). */
    for (size_t i = 0; i < 3; i++) {
        uint8_t tid[WZP_STUN_TID_LEN] = {(uint8_t)i};
        assert_int_equal(wzp_stun_binding_request(buf + i * 28, 28, tid, NULL), 28);
    }
    send_train(c, &x.relay, buf, 28, 3, 28);
    for (int i = 0; i < 3; i++) {
        uint8_t ans[WZP_STUN_RESPONSE_MAX];
        int n = peer_recv(c, ans, sizeof(ans), NULL, 2000);
        assert_true(n > 0);
        wzp_stun_msg sm;
        assert_int_equal(wzp_stun_decode(&sm, ans, (size_t)n), 0);
        assert_int_equal(sm.type, WZP_STUN_BINDING_SUCCESS);
        assert_int_equal(sm.tid[0], i);
        assert_true(wzp_addr_equal(&sm.xor_mapped, &ca));
    }
    assert_int_equal(STAT_WAIT(x.f, stun_answered, 3), 3);
    close(a);
    close(b);
    close(c);
    fixture_stop(&x);
}

/* Sends `n` numbered data frames from (fd, chan), `gap_us` apart. */
static void send_numbered(int fd, const wzp_addr *relay, uint32_t chan, int first, int n,
                          long gap_us)
{
    for (int i = first; i < first + n; i++) {
        uint8_t p[4] = {(uint8_t)(i >> 8), (uint8_t)i, 0x5a, 0xa5};
        send_frame(fd, relay, WZP_RELAY_FRAME_DATA, chan, p, sizeof(p));
        struct timespec ts = {0, gap_us * 1000};
        nanosleep(&ts, NULL);
    }
}

/*
 * Receive coalescing: a worker woken again and again for a datagram or two
 * waits before its next receive. Whatever arrives meanwhile is delivered,
 * complete and in order; with coalescing off it never waits.
 */
static void test_forward_coalescing(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        fixture x;
        fixture_start_cfg(&x, 1, round == 0 ? 5000 : -1); /* 5 ms cap: surely engaged */
        wzp_addr aa, ba;
        int a = peer_open(&aa), b = peer_open(&ba);
        uint32_t cha, chb;
        assert_int_equal(wzp_chan_table_open_pair(x.t, &aa, &ba, mono_now(), &cha, &chb), 0);
        enum { N = 40 };
        send_numbered(a, &x.relay, cha, 0, N, 500);
        for (int i = 0; i < N; i++) {
            uint8_t buf[64];
            int n = peer_recv(b, buf, sizeof(buf), NULL, 2000);
            assert_int_equal(n, WZP_RELAY_FRAME_HDR + 4);
            assert_int_equal(buf[WZP_RELAY_FRAME_HDR] << 8 | buf[WZP_RELAY_FRAME_HDR + 1], i);
        }
        assert_int_equal(STAT_WAIT(x.f, forwarded, N), N);
        wzp_forwarder_stats s;
        wzp_forwarder_get_stats(x.f, &s);
        if (round == 0)
            assert_true(s.coalesce_waits >= 1);
        else
            assert_int_equal(s.coalesce_waits, 0);
        close(a);
        close(b);
        fixture_stop(&x);
    }
}

static void test_forward_control_queue(void **state)
{
    (void)state;
    fixture x;
    fixture_start(&x, 1); /* one worker, queue of 4: makes "full" deterministic */
    wzp_addr aa;
    int a = peer_open(&aa);
    uint8_t probe2[20] = {0x91, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
    uint8_t quic[30] = {0xc3, 0, 0, 0, 1};
    uint8_t probe[12] = {0x90, 7};
    assert_int_equal(wzp_udp_send(a, &x.relay, probe2, sizeof(probe2)), 0);
    assert_int_equal(wzp_udp_send(a, &x.relay, quic, sizeof(quic)), 0);
    assert_int_equal(wzp_udp_send(a, &x.relay, probe, sizeof(probe)), 0);
    assert_int_equal(STAT_WAIT(x.f, ctl_queued, 3), 3);

    struct pollfd p = {.fd = wzp_forwarder_ctl_fd(x.f, 0), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);
    static uint8_t bufs[4][WZP_FWD_MAX_DGRAM];
    wzp_udp_msg m[4];
    for (int i = 0; i < 4; i++)
        m[i] = (wzp_udp_msg){.data = bufs[i], .cap = WZP_FWD_MAX_DGRAM};
    assert_int_equal(wzp_forwarder_ctl_recv(x.f, 0, m, 4), 3);
    assert_int_equal(m[0].len, sizeof(probe2));
    assert_memory_equal(m[0].data, probe2, sizeof(probe2));
    assert_true(wzp_addr_equal(&m[0].peer, &aa));
    assert_int_equal(m[1].len, sizeof(quic));
    assert_memory_equal(m[1].data, quic, sizeof(quic));
    assert_int_equal(m[2].len, sizeof(probe));
    assert_int_equal(wzp_forwarder_ctl_recv(x.f, 0, m, 4), 0);
    assert_int_equal(poll(&p, 1, 0), 0); /* drained: no longer readable */
    wzp_udp_msg small = {.data = bufs[0], .cap = 100};
    assert_int_equal(wzp_forwarder_ctl_recv(x.f, 0, &small, 1), WZP_ERR_INVALID);

    /* A full queue drops and counts; the worker never blocks. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(wzp_udp_send(a, &x.relay, quic, sizeof(quic)), 0);
    assert_int_equal(STAT_WAIT(x.f, ctl_full, 2), 2);
    assert_int_equal(STAT_WAIT(x.f, ctl_queued, 7), 7);
    assert_int_equal(wzp_forwarder_ctl_recv(x.f, 0, m, 4), 4);

    /* Control replies leave from the relay port. */
    uint8_t reply[] = {0x01, 0x01, 0, 0};
    assert_int_equal(wzp_forwarder_send(x.f, &aa, reply, sizeof(reply)), 0);
    uint8_t buf[64];
    wzp_addr src;
    assert_int_equal(peer_recv(a, buf, sizeof(buf), &src, 2000), (int)sizeof(reply));
    assert_true(wzp_addr_equal(&src, &x.relay));
    close(a);
    fixture_stop(&x);
}

/* Several workers, several pairs (distinct source ports spread over workers). */
static void test_forward_multi_worker(void **state)
{
    (void)state;
    enum { PAIRS = 16, ROUNDS = 20 };
    fixture x;
    fixture_start(&x, 4);
    int fa[PAIRS], fb[PAIRS];
    uint32_t ca[PAIRS], cb[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        wzp_addr aa, ba;
        fa[i] = peer_open(&aa);
        fb[i] = peer_open(&ba);
        assert_int_equal(wzp_chan_table_open_pair(x.t, &aa, &ba, mono_now(), &ca[i], &cb[i]), 0);
    }
    assert_int_equal(wzp_chan_table_pairs(x.t), PAIRS);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PAIRS; i++) {
            expect_delivery(fa[i], ca[i], &x.relay, fb[i], cb[i], (uint8_t)(r + i));
            expect_delivery(fb[i], cb[i], &x.relay, fa[i], ca[i], (uint8_t)(r * i));
        }
    }
    /* A worker counts a batch after sendmmsg returns, which may be after the
     * receiver already read the last packet: wait for the counters. */
    assert_int_equal(STAT_WAIT(x.f, forwarded, 2 * PAIRS * ROUNDS), 2 * PAIRS * ROUNDS);
    assert_int_equal(STAT_WAIT(x.f, rx, 2 * PAIRS * ROUNDS), 2 * PAIRS * ROUNDS);
    wzp_chan_info info;
    assert_int_equal(wzp_chan_table_info(x.t, ca[3], &info), 0);
    assert_int_equal(info.packets, ROUNDS);
    for (int i = 0; i < PAIRS; i++) {
        close(fa[i]);
        close(fb[i]);
    }
    fixture_stop(&x);
}

/* Dual stack: one pair joining an IPv4 peer and an IPv6 peer. */
static void test_forward_dual_stack(void **state)
{
    (void)state;
    wzp_chan_table *t = table_new(16);
    wzp_forwarder_config cfg = {.workers = 1, .table = t, .slice_us = 500};
    cfg.bind = addr("127.0.0.1:0");
    cfg.bind6 = addr("[::1]:0");
    wzp_forwarder *f;
    int rv = wzp_forwarder_new(&f, &cfg);
    if (rv == WZP_ERR_IO) { /* no IPv6 loopback here */
        wzp_chan_table_free(t);
        skip();
    }
    assert_int_equal(rv, 0);
    assert_int_equal(wzp_forwarder_workers(f), 2);
    wzp_addr r4 = *wzp_forwarder_local_addr(f), r6 = *wzp_forwarder_local_addr6(f);
    assert_int_equal(wzp_addr_family(&r6), AF_INET6);

    wzp_addr aa, ba, lo6 = addr("[::1]:0");
    int a = peer_open(&aa);
    int b = wzp_udp_open(&lo6, NULL, &ba);
    assert_true(b >= 0);
    uint32_t ca, cb;
    assert_int_equal(wzp_chan_table_open_pair(t, &aa, &ba, mono_now(), &ca, &cb), 0);
    uint8_t p[40] = {1, 2, 3}, buf[128];
    wzp_addr src;
    send_frame(a, &r4, WZP_RELAY_FRAME_DATA, ca, p, sizeof(p));
    assert_int_equal(peer_recv(b, buf, sizeof(buf), &src, 2000), WZP_RELAY_FRAME_HDR + sizeof(p));
    assert_true(wzp_addr_equal(&src, &r6)); /* from the relay address B talks to */
    assert_memory_equal(buf + WZP_RELAY_FRAME_HDR, p, sizeof(p));
    send_frame(b, &r6, WZP_RELAY_FRAME_DATA, cb, p, sizeof(p));
    assert_int_equal(peer_recv(a, buf, sizeof(buf), &src, 2000), WZP_RELAY_FRAME_HDR + sizeof(p));
    assert_true(wzp_addr_equal(&src, &r4));

    /* Control replies go out of the socket of the right family. */
    uint8_t reply[] = {0x01, 0x01, 0, 0};
    assert_int_equal(wzp_forwarder_send(f, &ba, reply, sizeof(reply)), 0);
    assert_int_equal(peer_recv(b, buf, sizeof(buf), &src, 2000), (int)sizeof(reply));
    assert_true(wzp_addr_equal(&src, &r6));
    close(a);
    close(b);
    wzp_forwarder_free(f);

    /* bind6 needs an IPv4 bind beside it. */
    cfg.bind = addr("[::1]:0");
    assert_int_equal(wzp_forwarder_new(&f, &cfg), WZP_ERR_INVALID);
    wzp_chan_table_free(t);
}

/* ---- STUN on the workers: answered, rate-limited per source --------------------- */

static bool ctl_never(void *user, const wzp_addr *from, const uint8_t *p, size_t len)
{
    (void)user;
    (void)from;
    (void)p;
    (void)len;
    fail_msg("a STUN request went to the control plane");
    return false;
}

typedef struct stun_rig {
    wzp_fwd_stun_limit lim;
    uint8_t answers[64 * WZP_STUN_RESPONSE_MAX];
    wzp_fwd_batch b;
} stun_rig;

static void stun_rig_init(stun_rig *r, unsigned rate, unsigned burst)
{
    memset(r, 0, sizeof(*r));
    wzp_fwd_stun_limit_init(&r->lim, rate, burst, 0x0123456789abcdefull);
    r->b = (wzp_fwd_batch){.ctl = ctl_never,
                           .stun_limit = &r->lim,
                           .stun_buf = r->answers,
                           .stun_cap = sizeof(r->answers)};
}

/* Sends `n` Binding requests from `from` at `now`, one buffer each (as a
 * worker sees them); returns how many were answered, checking each answer. */
static unsigned stun_burst(stun_rig *r, const wzp_addr *from, wzp_ts now, unsigned n)
{
    unsigned answered = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t req[28], tid[WZP_STUN_TID_LEN] = {(uint8_t)i, 0x5a};
        assert_int_equal(wzp_stun_binding_request(req, sizeof(req), tid, NULL), 28);
        wzp_fwd_out out[1];
        size_t nout = 0;
        r->b.stun_used = 0;
        assert_int_equal(wzp_fwd_handle(&r->b, req, sizeof(req), 0, from, now, out, &nout), 1);
        if (!nout)
            continue;
        answered++;
        assert_int_equal(nout, 1);
        assert_false(out[0].is_data);
        assert_true(wzp_addr_equal(&out[0].peer, from));
        assert_true(out[0].len <= sizeof(req) + WZP_STUN_RESPONSE_GROWTH);
        wzp_stun_msg m;
        assert_int_equal(wzp_stun_decode(&m, out[0].data, out[0].len), 0);
        assert_int_equal(m.type, WZP_STUN_BINDING_SUCCESS);
        assert_memory_equal(m.tid, tid, sizeof(tid));
        assert_true(wzp_addr_equal(&m.xor_mapped, from));
    }
    return answered;
}

static void test_stun_rate_limit(void **state)
{
    (void)state;
    static stun_rig r;
    stun_rig_init(&r, WZP_FWD_STUN_RATE, 0); /* the defaults: 10/s, burst 20 */
    wzp_addr a = addr("198.51.100.1:5000"), a2 = addr("198.51.100.1:5001"),
             b = addr("198.51.100.2:5000"), v6 = addr("[2001:db8:1:2::1]:7000"),
             v6same = addr("[2001:db8:1:2:ffff::9]:7001"), v6other = addr("[2001:db8:1:3::1]:7000");
    wzp_ts t0 = WZP_SEC(1000);

    /* A burst of 100 from one source: the burst is answered, the rest counted. */
    assert_int_equal(stun_burst(&r, &a, t0, 100), 2 * WZP_FWD_STUN_RATE);
    assert_int_equal(r.b.stats[WZP_FWD_S_STUN_ANSWERED], 2 * WZP_FWD_STUN_RATE);
    assert_int_equal(r.b.stats[WZP_FWD_S_STUN_LIMITED], 100 - 2 * WZP_FWD_STUN_RATE);
    assert_int_equal(r.b.stats[WZP_FWD_S_RX], 100);
    /* The limit is per address, not per port; another address is still answered. */
    assert_int_equal(stun_burst(&r, &a2, t0, 5), 0);
    assert_int_equal(stun_burst(&r, &b, t0, 3), 3);
    /* IPv6: one limit per /64. */
    assert_int_equal(stun_burst(&r, &v6, t0, 30), 2 * WZP_FWD_STUN_RATE);
    assert_int_equal(stun_burst(&r, &v6same, t0, 5), 0);
    assert_int_equal(stun_burst(&r, &v6other, t0, 5), 5);
    /* Junk from a limited source is malformed, not rate-limited, and costs no answer. */
    uint8_t junk[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x43};
    wzp_fwd_out out[1];
    size_t nout = 0;
    uint64_t limited = r.b.stats[WZP_FWD_S_STUN_LIMITED];
    wzp_fwd_handle(&r.b, junk, sizeof(junk), 0, &a, t0, out, &nout);
    assert_int_equal(nout, 0);
    assert_int_equal(r.b.stats[WZP_FWD_S_MALFORMED], 1);
    assert_int_equal(r.b.stats[WZP_FWD_S_STUN_LIMITED], limited);

    /* Refilled from the batch time: 100 ms later one more answer, a second
     * later the sustained rate's worth. */
    assert_int_equal(stun_burst(&r, &a, t0 + WZP_MS(100), 5), 1);
    assert_int_equal(stun_burst(&r, &a, t0 + WZP_MS(1100), 100), WZP_FWD_STUN_RATE);
    /* Idle long enough, the whole burst again (never more). */
    assert_int_equal(stun_burst(&r, &a, t0 + WZP_SEC(60), 100), 2 * WZP_FWD_STUN_RATE);

    /* A GRO train of requests from one source is limited datagram by datagram. */
    uint8_t train[40 * 28];
    for (int i = 0; i < 40; i++) {
        uint8_t tid[WZP_STUN_TID_LEN] = {(uint8_t)i};
        assert_int_equal(wzp_stun_binding_request(train + i * 28, 28, tid, NULL), 28);
    }
    wzp_fwd_out tout[40];
    nout = 0;
    r.b.stun_used = 0;
    memset(r.b.stats, 0, sizeof(r.b.stats));
    assert_int_equal(
        wzp_fwd_handle(&r.b, train, sizeof(train), 28, &b, t0 + WZP_SEC(60), tout, &nout), 40);
    size_t answers = 0;
    for (size_t i = 0; i < nout; i++)
        answers += tout[i].nseg;
    assert_int_equal(answers, 2 * WZP_FWD_STUN_RATE);
    assert_int_equal(r.b.stats[WZP_FWD_S_STUN_ANSWERED], 2 * WZP_FWD_STUN_RATE);
    assert_int_equal(r.b.stats[WZP_FWD_S_STUN_LIMITED], 40 - 2 * WZP_FWD_STUN_RATE);

    /* No room left for answers: not answered, counted. */
    uint8_t req[28], tid[WZP_STUN_TID_LEN] = {0};
    assert_int_equal(wzp_stun_binding_request(req, sizeof(req), tid, NULL), 28);
    r.b.stun_used = r.b.stun_cap - WZP_STUN_RESPONSE_MAX + 1;
    nout = 0;
    wzp_fwd_handle(&r.b, req, sizeof(req), 0, &v6other, t0 + WZP_SEC(120), out, &nout);
    assert_int_equal(nout, 0);
    assert_int_equal(r.b.stats[WZP_FWD_S_STUN_LIMITED], 40 - 2 * WZP_FWD_STUN_RATE + 1);

    /* Rate 0 (or no limiter): every valid request is answered. */
    stun_rig_init(&r, 0, 0);
    assert_int_equal(stun_burst(&r, &a, t0, 100), 100);
    r.b.stun_limit = NULL;
    assert_int_equal(stun_burst(&r, &a, t0, 100), 100);
    /* An explicit burst. */
    stun_rig_init(&r, 1, 3);
    assert_int_equal(stun_burst(&r, &a, t0, 10), 3);
    assert_int_equal(stun_burst(&r, &a, t0 + WZP_MS(999), 10), 0);
    assert_int_equal(stun_burst(&r, &a, t0 + WZP_SEC(1), 10), 1);
}

/* The same through a running forwarder: real sockets, real clock. */
static void test_forward_stun_limit(void **state)
{
    (void)state;
    wzp_chan_table *t = table_new(16);
    wzp_forwarder_config cfg = {.workers = 1, .table = t, .stun_rate = 2, .stun_burst = 5};
    cfg.bind = addr("127.0.0.1:0");
    wzp_forwarder *f;
    assert_int_equal(wzp_forwarder_new(&f, &cfg), 0);
    wzp_addr relay = *wzp_forwarder_local_addr(f), aa, ba, lo2 = addr("127.0.0.2:0");
    int a = peer_open(&aa);
    int b = wzp_udp_open(&lo2, NULL, &ba); /* another source address */
    assert_true(b >= 0);
    uint8_t req[28], tid[WZP_STUN_TID_LEN] = {1};
    assert_int_equal(wzp_stun_binding_request(req, sizeof(req), tid, NULL), 28);
    for (int i = 0; i < 100; i++)
        assert_int_equal(wzp_udp_send(a, &relay, req, sizeof(req)), 0);
    assert_int_equal(STAT_WAIT(f, rx, 100), 100);
    int got = 0;
    uint8_t ans[WZP_STUN_RESPONSE_MAX];
    while (peer_recv(a, ans, sizeof(ans), NULL, 200) > 0)
        got++;
    /* The burst, plus at most what the rate refilled while the 100 went out. */
    assert_true(got >= 5 && got <= 6);
    wzp_forwarder_stats s;
    wzp_forwarder_get_stats(f, &s);
    assert_int_equal(s.stun_answered, (uint64_t)got);
    assert_int_equal(s.stun_rate_limited, 100 - (uint64_t)got);
    assert_int_equal(s.ctl_queued, 0);
    /* Another source is answered meanwhile. */
    assert_int_equal(wzp_udp_send(b, &relay, req, sizeof(req)), 0);
    wzp_addr src;
    int n = peer_recv(b, ans, sizeof(ans), &src, 2000);
    assert_true(n > 0);
    assert_true(wzp_addr_equal(&src, &relay));
    wzp_stun_msg m;
    assert_int_equal(wzp_stun_decode(&m, ans, (size_t)n), 0);
    assert_true(wzp_addr_equal(&m.xor_mapped, &ba));
    /* A refill (2/s) later, the first source is answered again. */
    struct timespec ts = {0, 600000000};
    nanosleep(&ts, NULL);
    assert_int_equal(wzp_udp_send(a, &relay, req, sizeof(req)), 0);
    assert_true(peer_recv(a, ans, sizeof(ans), NULL, 2000) > 0);
    close(a);
    close(b);
    wzp_forwarder_free(f);
    wzp_chan_table_free(t);
}

static void test_forward_start_errors(void **state)
{
    (void)state;
    wzp_forwarder *f = NULL;
    wzp_forwarder_config cfg = {0};
    assert_int_equal(wzp_forwarder_new(&f, &cfg), WZP_ERR_INVALID);
    cfg.bind = addr("127.0.0.1:0");
    assert_int_equal(wzp_forwarder_new(&f, &cfg), WZP_ERR_INVALID); /* no table */
    wzp_forwarder_free(NULL);
}

/* Steers by the payload's second byte (a test's route; a relay's reads the connection ID). */
static unsigned route_by_byte(void *user, const wzp_addr *from, const uint8_t *p, size_t len)
{
    (void)from;
    (*(int *)user)++;
    return len > 1 ? p[1] : 0;
}

/* Control lanes: each control packet goes to the lane the route names, on
 * that lane's own fd and queue; a lane out of range means lane 0. */
static void test_forward_control_lanes(void **state)
{
    (void)state;
    wzp_chan_table *t = table_new(16);
    int routed = 0;
    wzp_forwarder_config cfg = {.workers = 1,
                                .table = t,
                                .ctl_lanes = 3,
                                .ctl_route = route_by_byte,
                                .ctl_route_user = &routed};
    cfg.bind = addr("127.0.0.1:0");
    wzp_forwarder *f;
    assert_int_equal(wzp_forwarder_new(&f, &cfg), 0);
    assert_int_equal(wzp_forwarder_ctl_lanes(f), 3);
    assert_int_equal(wzp_forwarder_ctl_fd(f, 3), -1);
    wzp_addr relay = *wzp_forwarder_local_addr(f), aa;
    int a = peer_open(&aa);
    uint8_t to2[30] = {0xc3, 2}, to1[30] = {0xc3, 1}, to9[30] = {0xc3, 9};
    assert_int_equal(wzp_udp_send(a, &relay, to2, sizeof(to2)), 0);
    assert_int_equal(wzp_udp_send(a, &relay, to1, sizeof(to1)), 0);
    assert_int_equal(wzp_udp_send(a, &relay, to9, sizeof(to9)), 0);
    assert_int_equal(STAT_WAIT(f, ctl_queued, 3), 3);
    static uint8_t bufs[4][WZP_FWD_MAX_DGRAM];
    wzp_udp_msg m[4];
    for (int i = 0; i < 4; i++)
        m[i] = (wzp_udp_msg){.data = bufs[i], .cap = WZP_FWD_MAX_DGRAM};
    const uint8_t *want[3] = {to9, to1, to2}; /* lane 0 gets the out-of-range one */
    for (unsigned lane = 0; lane < 3; lane++) {
        struct pollfd p = {.fd = wzp_forwarder_ctl_fd(f, lane), .events = POLLIN};
        assert_int_equal(poll(&p, 1, 2000), 1);
        assert_int_equal(wzp_forwarder_ctl_recv(f, lane, m, 4), 1);
        assert_memory_equal(m[0].data, want[lane], sizeof(to1));
        assert_true(wzp_addr_equal(&m[0].peer, &aa));
        assert_int_equal(poll(&p, 1, 0), 0);
    }
    assert_int_equal(routed, 3);
    assert_int_equal(wzp_forwarder_ctl_recv(f, 3, m, 4), WZP_ERR_INVALID);
    close(a);
    wzp_forwarder_free(f);
    wzp_chan_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_roundtrip),      cmocka_unit_test(test_table_basic),
        cmocka_unit_test(test_table_expire),         cmocka_unit_test(test_table_concurrent),
        cmocka_unit_test(test_forward_pair),         cmocka_unit_test(test_forward_trains),
        cmocka_unit_test(test_forward_coalescing),   cmocka_unit_test(test_forward_control_queue),
        cmocka_unit_test(test_forward_multi_worker), cmocka_unit_test(test_forward_dual_stack),
        cmocka_unit_test(test_forward_start_errors), cmocka_unit_test(test_stun_rate_limit),
        cmocka_unit_test(test_forward_stun_limit),   cmocka_unit_test(test_forward_control_lanes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
