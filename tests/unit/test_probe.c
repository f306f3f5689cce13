/* Unit tests for src/wire/probe: round trips, authentication, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <string.h>

#include <wzp/wzp.h>

#include "common/addr.h"
#include "wire/demux.h"
#include "wire/probe.h"

static uint8_t key[WZP_PROBE_KEY_LEN];

static void make_probe(wzp_probe *p, uint8_t type, const char *observed)
{
    memset(p, 0, sizeof(*p));
    p->type = type;
    p->flags = WZP_PROBE_F_VALID;
    wzp_probe_derive_tag(key, p->tag);
    for (int i = 0; i < WZP_PROBE_TXID_LEN; i++)
        p->txid[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < WZP_PROBE_SENDER_LEN; i++)
        p->sender[i] = (uint8_t)(i + 1);
    if (observed)
        assert_int_equal(wzp_addr_parse(&p->observed, observed, false), 0);
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < WZP_PROBE_KEY_LEN; i++)
        key[i] = (uint8_t)(i * 7 + 3);
    return 0;
}

static void test_request_round_trip(void **state)
{
    (void)state;
    wzp_probe p, d;
    uint8_t buf[WZP_PROBE_MAX_LEN];
    make_probe(&p, WZP_PROBE_REQUEST, NULL);
    int n = wzp_probe_encode(&p, key, buf, sizeof(buf));
    assert_int_equal(n, WZP_PROBE_REQUEST_LEN);
    assert_int_equal(buf[0], 0x90);
    assert_int_equal(wzp_pkt_classify(buf, (size_t)n), WZP_PKT_PROBE);
    assert_int_equal(wzp_probe_decode(&d, key, p.tag, buf, (size_t)n), 0);
    assert_int_equal(d.type, WZP_PROBE_REQUEST);
    assert_int_equal(d.flags, WZP_PROBE_F_VALID);
    assert_memory_equal(d.txid, p.txid, sizeof(p.txid));
    assert_memory_equal(d.sender, p.sender, sizeof(p.sender));
    assert_memory_equal(d.tag, p.tag, sizeof(p.tag));

    uint8_t tag[WZP_PROBE_TAG_LEN];
    assert_int_equal(wzp_probe_peek_tag(buf, (size_t)n, tag), 0);
    assert_memory_equal(tag, p.tag, sizeof(tag));
}

static void test_response_round_trip(void **state)
{
    (void)state;
    const char *addrs[] = {"203.0.113.7:40000", "[2001:db8::42]:1"};
    const int lens[] = {53, 65};
    for (int i = 0; i < 2; i++) {
        wzp_probe p, d;
        uint8_t buf[WZP_PROBE_MAX_LEN];
        make_probe(&p, WZP_PROBE_RESPONSE, addrs[i]);
        int n = wzp_probe_encode(&p, key, buf, sizeof(buf));
        assert_int_equal(n, lens[i]);
        assert_int_equal(buf[0], 0x91);
        assert_int_equal(wzp_pkt_classify(buf, (size_t)n), WZP_PKT_PROBE);
        assert_int_equal(wzp_probe_decode(&d, key, NULL, buf, (size_t)n), 0);
        assert_int_equal(d.type, WZP_PROBE_RESPONSE);
        assert_true(wzp_addr_equal(&d.observed, &p.observed));
        /* The address is masked on the wire: its raw bytes do not appear. */
        size_t iplen;
        const uint8_t *ip = wzp_addr_ip(&p.observed, &iplen);
        assert_null(memmem(buf, (size_t)n, ip, iplen));
    }
}

static void test_tampering_rejected(void **state)
{
    (void)state;
    wzp_probe p, d;
    uint8_t buf[WZP_PROBE_MAX_LEN];
    make_probe(&p, WZP_PROBE_RESPONSE, "198.51.100.1:9");
    int n = wzp_probe_encode(&p, key, buf, sizeof(buf));
    assert_true(n > 0);
    /* Every single bit flip after the type byte is caught (type flips make it malformed). */
    for (int i = 1; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1 << bit);
            int rc = wzp_probe_decode(&d, key, NULL, buf, (size_t)n);
            assert_true(rc == WZP_ERR_PROTOCOL || rc == WZP_ERR_MALFORMED);
            buf[i] ^= (uint8_t)(1 << bit);
        }
    }
    assert_int_equal(wzp_probe_decode(&d, key, NULL, buf, (size_t)n), 0);
}

static void test_wrong_key_and_tag(void **state)
{
    (void)state;
    wzp_probe p, d;
    uint8_t buf[WZP_PROBE_MAX_LEN], other[WZP_PROBE_KEY_LEN];
    make_probe(&p, WZP_PROBE_REQUEST, NULL);
    int n = wzp_probe_encode(&p, key, buf, sizeof(buf));
    memcpy(other, key, sizeof(other));
    other[31] ^= 1;
    assert_int_equal(wzp_probe_decode(&d, other, NULL, buf, (size_t)n), WZP_ERR_PROTOCOL);

    uint8_t tag2[WZP_PROBE_TAG_LEN];
    wzp_probe_derive_tag(other, tag2);
    assert_memory_not_equal(tag2, p.tag, sizeof(tag2));
    assert_int_equal(wzp_probe_decode(&d, key, tag2, buf, (size_t)n), WZP_ERR_NOT_FOUND);
}

static void test_truncation_and_garbage(void **state)
{
    (void)state;
    wzp_probe p, d;
    uint8_t buf[WZP_PROBE_MAX_LEN + 8];
    make_probe(&p, WZP_PROBE_RESPONSE, "[2001:db8::1]:443");
    int n = wzp_probe_encode(&p, key, buf, sizeof(buf));
    for (int len = 0; len < n; len++)
        assert_int_not_equal(wzp_probe_decode(&d, key, NULL, buf, (size_t)len), 0);
    /* Trailing bytes are not tolerated either. */
    buf[n] = 0;
    assert_int_equal(wzp_probe_decode(&d, key, NULL, buf, (size_t)n + 1), WZP_ERR_MALFORMED);
    /* Unknown type and unknown family. */
    uint8_t t = buf[0];
    buf[0] = 0x92;
    assert_int_equal(wzp_probe_decode(&d, key, NULL, buf, (size_t)n), WZP_ERR_MALFORMED);
    buf[0] = t;
    buf[30] = 5;
    assert_int_equal(wzp_probe_decode(&d, key, NULL, buf, (size_t)n), WZP_ERR_MALFORMED);
    /* A response claiming IPv4 but IPv6-sized is malformed. */
    buf[30] = 4;
    assert_int_equal(wzp_probe_decode(&d, key, NULL, buf, (size_t)n), WZP_ERR_MALFORMED);

    uint8_t tag[WZP_PROBE_TAG_LEN];
    assert_int_equal(wzp_probe_peek_tag(buf, 5, tag), WZP_ERR_MALFORMED);
}

static void test_encode_limits(void **state)
{
    (void)state;
    wzp_probe p;
    uint8_t buf[WZP_PROBE_MAX_LEN];
    make_probe(&p, WZP_PROBE_REQUEST, NULL);
    assert_int_equal(wzp_probe_encode(&p, key, buf, WZP_PROBE_REQUEST_LEN - 1), WZP_ERR_TOO_BIG);
    make_probe(&p, WZP_PROBE_RESPONSE, NULL); /* no observed address */
    assert_int_equal(wzp_probe_encode(&p, key, buf, sizeof(buf)), WZP_ERR_INVALID);
    p.type = 0x42;
    assert_int_equal(wzp_probe_encode(&p, key, buf, sizeof(buf)), WZP_ERR_INVALID);
}

WZP_TEST_MAIN(setup, NULL, test_request_round_trip, test_response_round_trip,
              test_tampering_rejected, test_wrong_key_and_tag, test_truncation_and_garbage,
              test_encode_limits)
