/* Unit tests for the relay TCP service's sans-I/O parts: record framing
 * (src/wire/tcp_frame.h) and tunnel addresses (src/common/tunnel_addr.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <string.h>

#include <wzp/wzp.h>

#include "common/tunnel_addr.h"
#include "wire/tcp_frame.h"

static wzp_tcp_deframer d;

/* Feeds in one byte at a time; returns how many records came out, copying the last. */
static int feed_bytewise(const uint8_t *in, size_t len, uint8_t *last, size_t *last_len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        size_t used;
        const uint8_t *rec;
        size_t rl;
        int r = wzp_tcp_deframe(&d, in + i, 1, &used, &rec, &rl);
        if (r < 0)
            return r;
        assert_int_equal(used, 1);
        if (r == 1) {
            memcpy(last, rec, rl);
            *last_len = rl;
            n++;
        }
    }
    return n;
}

static void test_records_in_any_cut(void **state)
{
    (void)state;
    uint8_t stream[] = {0, 3, 'a', 'b', 'c', 0, 0, 0, 1, 'z'};
    uint8_t last[WZP_TCP_FRAME_MAX];
    size_t last_len = 0;
    /* Whole: two records (the empty one is skipped). */
    wzp_tcp_deframer_init(&d);
    size_t used;
    const uint8_t *rec;
    size_t rl;
    assert_int_equal(wzp_tcp_deframe(&d, stream, sizeof(stream), &used, &rec, &rl), 1);
    assert_int_equal(used, 5);
    assert_int_equal(rl, 3);
    assert_memory_equal(rec, "abc", 3);
    assert_int_equal(wzp_tcp_deframe(&d, stream + 5, sizeof(stream) - 5, &used, &rec, &rl), 1);
    assert_int_equal(used, 5);
    assert_int_equal(rl, 1);
    assert_int_equal(rec[0], 'z');
    /* Byte by byte: the same. */
    wzp_tcp_deframer_init(&d);
    assert_int_equal(feed_bytewise(stream, sizeof(stream), last, &last_len), 2);
    assert_int_equal(last_len, 1);
    /* A header cut in half waits for the rest. */
    wzp_tcp_deframer_init(&d);
    assert_int_equal(wzp_tcp_deframe(&d, stream, 1, &used, &rec, &rl), 0);
    assert_int_equal(used, 1);
}

static void test_longest_and_too_long(void **state)
{
    (void)state;
    static uint8_t stream[WZP_TCP_FRAME_HDR + WZP_TCP_FRAME_MAX];
    assert_int_equal(wzp_tcp_frame_header(stream, WZP_TCP_FRAME_MAX), 0);
    memset(stream + WZP_TCP_FRAME_HDR, 0x42, WZP_TCP_FRAME_MAX);
    wzp_tcp_deframer_init(&d);
    size_t used, rl;
    const uint8_t *rec;
    assert_int_equal(wzp_tcp_deframe(&d, stream, sizeof(stream), &used, &rec, &rl), 1);
    assert_int_equal(rl, WZP_TCP_FRAME_MAX);
    uint8_t hdr[2];
    assert_int_equal(wzp_tcp_frame_header(hdr, WZP_TCP_FRAME_MAX + 1), WZP_ERR_INVALID);
    uint8_t bad[] = {(WZP_TCP_FRAME_MAX + 1) >> 8, (WZP_TCP_FRAME_MAX + 1) & 0xff, 1, 2};
    wzp_tcp_deframer_init(&d);
    assert_int_equal(wzp_tcp_deframe(&d, bad, sizeof(bad), &used, &rec, &rl), WZP_ERR_MALFORMED);
}

static void test_tunnel_addresses(void **state)
{
    (void)state;
    wzp_addr v4, v4b, v6, t1, t2, t3, mapped;
    assert_int_equal(wzp_addr_parse(&v4, "192.0.2.7:5000", false), 0);
    assert_int_equal(wzp_addr_parse(&v4b, "192.0.2.8:5000", false), 0);
    assert_int_equal(wzp_addr_parse(&v6, "[2001:db8:1:2:3:4:5:6]:9", false), 0);
    assert_int_equal(wzp_addr_parse(&mapped, "[::ffff:192.0.2.7]:1", false), 0);
    wzp_tunnel_addr_make(&t1, &v4, 1);
    wzp_tunnel_addr_make(&t2, &v4, 0x123456789aull);
    wzp_tunnel_addr_make(&t3, &v6, WZP_TUNNEL_ID_MAX);
    assert_true(wzp_addr_is_tunnel(&t1) && wzp_addr_is_tunnel(&t2) && wzp_addr_is_tunnel(&t3));
    assert_false(wzp_addr_is_tunnel(&v4) || wzp_addr_is_tunnel(&v6));
    assert_int_equal(wzp_tunnel_addr_id(&t1), 1);
    assert_int_equal(wzp_tunnel_addr_id(&t2), 0x123456789aull);
    assert_int_equal(wzp_tunnel_addr_id(&t3), WZP_TUNNEL_ID_MAX);
    assert_int_equal(wzp_tunnel_addr_id(&v4), 0);
    assert_false(wzp_addr_equal(&t1, &t2));
    /* Limits count a tunnelled client under its real address. */
    uint8_t k1[8], k2[8], k3[8];
    assert_int_equal(wzp_addr_limit_key(&v4, k1), 4);
    assert_int_equal(wzp_addr_limit_key(&t2, k2), 4);
    assert_memory_equal(k1, k2, 4);
    assert_int_equal(wzp_addr_limit_key(&mapped, k3), 4);
    assert_memory_equal(k1, k3, 4);
    assert_int_equal(wzp_addr_limit_key(&v4b, k3), 4);
    assert_memory_not_equal(k1, k3, 4);
    assert_int_equal(wzp_addr_limit_key(&v6, k1), 8);
    assert_int_equal(wzp_addr_limit_key(&t3, k2), 8);
    assert_memory_equal(k1, k2, 8);
}

WZP_TEST_MAIN(NULL, NULL, test_records_in_any_cut, test_longest_and_too_long, test_tunnel_addresses)
