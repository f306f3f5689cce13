/*
 * Unit tests for STUN: the codec (round trips, RFC 5769 sample messages,
 * malformed input), the Binding responder, and the sans-I/O client on a
 * virtual clock (retransmission schedule, response matching, NAT mapping).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <string.h>

#include <wzp/wzp.h>

#include "common/addr.h"
#include "ice/stun_client.h"
#include "wire/stun.h"
#include "wire/stun_server.h"

/* RFC 5769 section 2.1: sample request (USERNAME, PRIORITY, ICE-CONTROLLED, MI, FINGERPRINT). */
static const uint8_t rfc5769_request[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* RFC 5769 section 2.2: sample IPv4 response, mapped address 192.0.2.1:32853. */
static const uint8_t rfc5769_response_v4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* RFC 5769 section 2.3: sample IPv6 response, [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
static const uint8_t rfc5769_response_v6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

static const uint8_t rfc5769_tid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                        0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

static wzp_addr addr(const char *text)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, text, false), 0);
    return a;
}

static void assert_addr(const wzp_addr *a, const char *want)
{
    char buf[WZP_ADDR_STRLEN];
    assert_string_equal(wzp_addr_format(a, buf, sizeof(buf)), want);
}

/* --- codec --------------------------------------------------------------------------- */

static void test_crc32(void **state)
{
    (void)state;
    /* The standard CRC-32 check value. */
    assert_int_equal(wzp_stun_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(wzp_stun_crc32(NULL, 0), 0);
}

static void test_rfc5769_request(void **state)
{
    (void)state;
    wzp_stun_msg m;
    assert_true(wzp_stun_is_framed(rfc5769_request, sizeof(rfc5769_request)));
    assert_int_equal(wzp_stun_decode(&m, rfc5769_request, sizeof(rfc5769_request)), 0);
    assert_int_equal(m.type, WZP_STUN_BINDING_REQUEST);
    assert_true(WZP_STUN_IS_REQUEST(m.type));
    assert_memory_equal(m.tid, rfc5769_tid, 12);
    assert_true(m.has_fingerprint);
    assert_true(m.has_integrity);
    assert_int_equal(m.software_len, 16);
    assert_memory_equal(m.software, "STUN test client", 16);
    /* PRIORITY (0x0024) is comprehension-required and not ours; ICE-CONTROLLED is optional. */
    assert_int_equal(m.n_unknown, 1);
    assert_int_equal(m.unknown[0], 0x0024);
}

static void test_rfc5769_response_v4(void **state)
{
    (void)state;
    wzp_stun_msg m;
    assert_int_equal(wzp_stun_decode(&m, rfc5769_response_v4, sizeof(rfc5769_response_v4)), 0);
    assert_int_equal(m.type, WZP_STUN_BINDING_SUCCESS);
    assert_memory_equal(m.tid, rfc5769_tid, 12);
    assert_true(m.has_fingerprint);
    assert_true(m.has_integrity);
    assert_true(m.has_xor_mapped);
    assert_addr(&m.xor_mapped, "192.0.2.1:32853");
    assert_int_equal(m.software_len, 11);
    assert_memory_equal(m.software, "test vector", 11);
    assert_int_equal(m.n_unknown, 0);
}

static void test_rfc5769_response_v6(void **state)
{
    (void)state;
    wzp_stun_msg m;
    assert_int_equal(wzp_stun_decode(&m, rfc5769_response_v6, sizeof(rfc5769_response_v6)), 0);
    assert_int_equal(m.type, WZP_STUN_BINDING_SUCCESS);
    assert_true(m.has_fingerprint);
    assert_true(m.has_xor_mapped);
    assert_addr(&m.xor_mapped, "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

static void test_fingerprint_corruption_detected(void **state)
{
    (void)state;
    uint8_t buf[sizeof(rfc5769_response_v4)];
    wzp_stun_msg m;
    /*
     * Flip each byte the CRC covers (0..71), and the FINGERPRINT's length and value, in turn:
     * every change is caught by framing or the CRC. (Flipping its type turns it into an
     * unknown optional attribute, which is legitimately ignored.)
     */
    for (size_t i = 0; i < sizeof(buf); i++) {
        if (i == 72 || i == 73)
            continue;
        memcpy(buf, rfc5769_response_v4, sizeof(buf));
        buf[i] ^= 0x01;
        assert_int_equal(wzp_stun_decode(&m, buf, sizeof(buf)), WZP_ERR_MALFORMED);
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    const char *addrs[] = {"198.51.100.7:3478", "[2001:db8::42]:65535", "0.0.0.0:0"};
    uint8_t tid[12], buf[256];
    for (int i = 0; i < 12; i++)
        tid[i] = (uint8_t)(i * 17 + 3);
    for (size_t k = 0; k < 3; k++) {
        for (int fp = 0; fp < 2; fp++) {
            wzp_addr a = addr(addrs[k]), b = addr("203.0.113.9:1");
            wzp_stun_wr sw;
            wzp_stun_begin(&sw, buf, sizeof(buf), WZP_STUN_BINDING_SUCCESS, tid);
            wzp_stun_put_software(&sw, "wzp test"); /* 8 bytes: no padding */
            wzp_stun_put_addr(&sw, &a, true);
            wzp_stun_put_addr(&sw, &b, false);
            wzp_stun_put_attr(&sw, 0x8055, "abcde", 5); /* unknown optional, padded */
            int len = wzp_stun_finish(&sw, fp);
            assert_true(len > 0);
            assert_int_equal(len % 4, 0);
            wzp_stun_msg m;
            assert_int_equal(wzp_stun_decode(&m, buf, (size_t)len), 0);
            assert_int_equal(m.type, WZP_STUN_BINDING_SUCCESS);
            assert_memory_equal(m.tid, tid, 12);
            assert_true(m.has_xor_mapped && m.has_mapped);
            assert_true(wzp_addr_equal(&m.xor_mapped, &a));
            assert_true(wzp_addr_equal(&m.mapped, &b));
            assert_int_equal(m.has_fingerprint, fp);
            assert_int_equal(m.software_len, 8);
            assert_int_equal(m.n_unknown, 0);
        }
    }

    /* Error response with UNKNOWN-ATTRIBUTES. */
    uint16_t unk[3] = {0x0024, 0x0025, 0x7fff};
    wzp_stun_wr sw;
    wzp_stun_begin(&sw, buf, sizeof(buf), WZP_STUN_BINDING_ERROR, tid);
    wzp_stun_put_error(&sw, 420, "Unknown Attribute");
    wzp_stun_put_unknown_attrs(&sw, unk, 3);
    int len = wzp_stun_finish(&sw, true);
    assert_true(len > 0);
    wzp_stun_msg m;
    assert_int_equal(wzp_stun_decode(&m, buf, (size_t)len), 0);
    assert_int_equal(WZP_STUN_CLASS(m.type), WZP_STUN_CLASS_ERROR);
    assert_int_equal(WZP_STUN_METHOD(m.type), WZP_STUN_METHOD_BINDING);
    assert_true(m.has_error);
    assert_int_equal(m.error_code, 420);
    assert_int_equal(m.reason_len, 17);
    assert_memory_equal(m.reason, "Unknown Attribute", 17);
    assert_int_equal(m.n_listed_unknown, 3);
    assert_memory_equal(m.listed_unknown, unk, sizeof(unk));

    /* Bad arguments to the writer surface at finish. */
    wzp_stun_begin(&sw, buf, sizeof(buf), WZP_STUN_BINDING_ERROR, tid);
    wzp_stun_put_error(&sw, 200, "no");
    assert_int_equal(wzp_stun_finish(&sw, true), WZP_ERR_TOO_BIG);
    wzp_stun_begin(&sw, buf, 27, WZP_STUN_BINDING_REQUEST, tid);
    assert_int_equal(wzp_stun_finish(&sw, true), WZP_ERR_TOO_BIG);
    wzp_stun_begin(&sw, buf, 10, WZP_STUN_BINDING_REQUEST, tid);
    assert_int_equal(wzp_stun_finish(&sw, false), WZP_ERR_TOO_BIG);
    assert_int_equal(wzp_stun_binding_request(buf, 28, tid, NULL), 28);
}

/* Builds a header for `body` bytes of attributes that follow in buf. */
static size_t frame(uint8_t *buf, uint16_t type, const uint8_t *body, size_t body_len)
{
    buf[0] = (uint8_t)(type >> 8);
    buf[1] = (uint8_t)type;
    buf[2] = (uint8_t)(body_len >> 8);
    buf[3] = (uint8_t)body_len;
    buf[4] = 0x21;
    buf[5] = 0x12;
    buf[6] = 0xa4;
    buf[7] = 0x42;
    memcpy(buf + 8, rfc5769_tid, 12);
    if (body_len)
        memcpy(buf + 20, body, body_len);
    return 20 + body_len;
}

/* Frames `body` into buf (see frame) and decodes it: the decoder's verdict. */
static int decode_frame(wzp_stun_msg *m, uint8_t *buf, uint16_t type, const uint8_t *body,
                        size_t body_len)
{
    return wzp_stun_decode(m, buf, frame(buf, type, body, body_len));
}

static void test_malformed_rejected(void **state)
{
    (void)state;
    uint8_t buf[128];
    wzp_stun_msg m;
    size_t n;

    /* Header only: fine. */
    assert_int_equal(decode_frame(&m, buf, 0x0001, NULL, 0), 0);
    /* Too short, or the length field disagrees with the datagram either way. */
    assert_int_equal(wzp_stun_decode(&m, buf, 19), WZP_ERR_MALFORMED);
    uint8_t big[24] = {0};
    memcpy(big, buf, 20);
    assert_int_equal(wzp_stun_decode(&m, big, 24), WZP_ERR_MALFORMED);
    buf[3] = 4;
    assert_int_equal(wzp_stun_decode(&m, buf, 20), WZP_ERR_MALFORMED);
    /* Wrong cookie (RFC 3489), top bits set, length not a multiple of 4. */
    n = frame(buf, 0x0001, NULL, 0);
    buf[7] = 0x43;
    assert_int_equal(wzp_stun_decode(&m, buf, n), WZP_ERR_MALFORMED);
    assert_int_equal(decode_frame(&m, buf, 0xC001, NULL, 0), WZP_ERR_MALFORMED);
    static const uint8_t odd[] = {0x80, 0x22, 0x00, 0x01, 'x', 0, 0, 0};
    n = frame(buf, 0x0001, odd, 6); /* attribute padding missing at the end */
    assert_int_equal(wzp_stun_decode(&m, buf, n), WZP_ERR_MALFORMED);
    n = frame(buf, 0x0001, odd, 8); /* with it: fine */
    assert_int_equal(wzp_stun_decode(&m, buf, n), 0);

    /* Attribute longer than the message. */
    static const uint8_t overrun[] = {0x80, 0x22, 0x00, 0x20, 'a', 'b', 'c', 'd'};
    assert_int_equal(decode_frame(&m, buf, 0x0001, overrun, sizeof(overrun)), WZP_ERR_MALFORMED);
    /* Empty attributes are fine. */
    static const uint8_t half[] = {0x80, 0x22, 0x00, 0x00, 0x80, 0x22, 0, 0};
    assert_int_equal(decode_frame(&m, buf, 0x0001, half, 8), 0);

    /* Malformed attribute values, each in a message of its own. */
    static const struct {
        uint16_t type;
        uint8_t body[16];
        size_t len;
    } bad_attrs[] = {
        /* XOR-MAPPED-ADDRESS: bad family, length not matching the family. */
        {0x0101, {0x00, 0x20, 0x00, 0x08, 0x00, 0x03, 1, 2, 3, 4, 5, 6}, 12},
        {0x0101, {0x00, 0x20, 0x00, 0x08, 0x00, 0x02, 1, 2, 3, 4, 5, 6}, 12},
        {0x0101, {0x00, 0x01, 0x00, 0x0c, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 16},
        /* ERROR-CODE: class out of range, number over 99, too short. */
        {0x0111, {0x00, 0x09, 0x00, 0x04, 0, 0, 2, 0}, 8},
        {0x0111, {0x00, 0x09, 0x00, 0x04, 0, 0, 4, 100}, 8},
        {0x0111, {0x00, 0x09, 0x00, 0x02, 0, 0, 0, 0}, 8},
        /* UNKNOWN-ATTRIBUTES of odd length. */
        {0x0111, {0x00, 0x0a, 0x00, 0x03, 0, 1, 0, 0}, 8},
    };
    for (size_t i = 0; i < sizeof(bad_attrs) / sizeof(bad_attrs[0]); i++)
        assert_int_equal(
            decode_frame(&m, buf, bad_attrs[i].type, bad_attrs[i].body, bad_attrs[i].len),
            WZP_ERR_MALFORMED);

    /* FINGERPRINT not last, or of the wrong size. */
    uint8_t tid[12] = {0};
    wzp_stun_wr sw;
    wzp_stun_begin(&sw, buf, sizeof(buf), WZP_STUN_BINDING_REQUEST, tid);
    int len = wzp_stun_finish(&sw, true);
    assert_int_equal(len, 28);
    static const uint8_t trailer[] = {0x80, 0x22, 0x00, 0x00};
    memcpy(buf + 28, trailer, 4);
    buf[3] += 4;
    assert_int_equal(wzp_stun_decode(&m, buf, 32), WZP_ERR_MALFORMED);
    static const uint8_t fp8[] = {0x80, 0x28, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode_frame(&m, buf, 0x0001, fp8, sizeof(fp8)), WZP_ERR_MALFORMED);
}

static void test_unknown_and_duplicates(void **state)
{
    (void)state;
    uint8_t buf[128];
    wzp_stun_msg m;
    /* Unknown optional (0x8xxx) ignored, unknown required reported; first XOR-MAPPED wins. */
    static const uint8_t body[] = {
        0x80, 0x77, 0x00, 0x02, 1,    2,    0,    0,                /* optional: ignored */
        0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0x21, 0x13, 1, 2, 3, 4, /* port 1, first */
        0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0x21, 0x12, 9, 9, 9, 9, /* duplicate: ignored */
        0x00, 0x33, 0x00, 0x00,                                     /* required: reported */
    };
    assert_int_equal(decode_frame(&m, buf, 0x0101, body, sizeof(body)), 0);
    assert_true(m.has_xor_mapped);
    assert_int_equal(wzp_addr_port(&m.xor_mapped), 1);
    assert_int_equal(m.n_unknown, 1);
    assert_int_equal(m.unknown[0], 0x0033);
}

/* --- responder ---------------------------------------------------------------------- */

static void test_respond(void **state)
{
    (void)state;
    uint8_t req[64], out[WZP_STUN_RESPONSE_MAX];
    uint8_t tid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const char *froms[] = {"192.0.2.77:40000", "[2001:db8::9]:5"};
    for (int i = 0; i < 2; i++) {
        wzp_addr from = addr(froms[i]);
        /* Smallest possible request: header only, no FINGERPRINT. */
        wzp_stun_wr sw;
        wzp_stun_begin(&sw, req, sizeof(req), WZP_STUN_BINDING_REQUEST, tid);
        int rlen = wzp_stun_finish(&sw, false);
        int len = wzp_stun_respond(req, (size_t)rlen, &from, out, sizeof(out));
        assert_true(len > 0);
        assert_true(len <= rlen + WZP_STUN_RESPONSE_GROWTH);
        wzp_stun_msg m;
        assert_int_equal(wzp_stun_decode(&m, out, (size_t)len), 0);
        assert_int_equal(m.type, WZP_STUN_BINDING_SUCCESS);
        assert_memory_equal(m.tid, tid, 12);
        assert_true(m.has_fingerprint);
        assert_true(m.has_xor_mapped);
        assert_true(wzp_addr_equal(&m.xor_mapped, &from));
        /* Too small an output buffer: nothing. */
        assert_int_equal(wzp_stun_respond(req, (size_t)rlen, &from, out, 30), WZP_ERR_TOO_BIG);
    }

    /* The RFC 5769 request carries PRIORITY: 420 listing it. */
    wzp_addr from = addr("192.0.2.77:40000");
    int len = wzp_stun_respond(rfc5769_request, sizeof(rfc5769_request), &from, out, sizeof(out));
    assert_true(len > 0);
    assert_true((size_t)len <= sizeof(rfc5769_request) + WZP_STUN_RESPONSE_GROWTH);
    wzp_stun_msg m;
    assert_int_equal(wzp_stun_decode(&m, out, (size_t)len), 0);
    assert_int_equal(m.type, WZP_STUN_BINDING_ERROR);
    assert_int_equal(m.error_code, 420);
    assert_int_equal(m.n_listed_unknown, 1);
    assert_int_equal(m.listed_unknown[0], 0x0024);

    /* Many unknown required attributes: still no amplification. */
    uint8_t body[4 * 12];
    for (int i = 0; i < 12; i++) {
        body[4 * i] = 0x00;
        body[4 * i + 1] = (uint8_t)(0x40 + i);
        body[4 * i + 2] = 0;
        body[4 * i + 3] = 0;
    }
    size_t n = frame(req, 0x0001, body, 4); /* just one */
    len = wzp_stun_respond(req, n, &from, out, sizeof(out));
    assert_true(len > 0 && (size_t)len <= n + WZP_STUN_RESPONSE_GROWTH);
    uint8_t big[20 + sizeof(body)];
    n = frame(big, 0x0001, body, sizeof(body));
    len = wzp_stun_respond(big, n, &from, out, sizeof(out));
    assert_true(len > 0 && (size_t)len <= n + WZP_STUN_RESPONSE_GROWTH);

    /* No answer to responses, indications, other methods, garbage. */
    assert_int_equal(
        wzp_stun_respond(rfc5769_response_v4, sizeof(rfc5769_response_v4), &from, out, sizeof(out)),
        WZP_ERR_INVALID);
    n = frame(req, 0x0011, NULL, 0); /* Binding indication (keepalive) */
    assert_int_equal(wzp_stun_respond(req, n, &from, out, sizeof(out)), WZP_ERR_INVALID);
    n = frame(req, 0x0003, NULL, 0); /* Allocate request */
    assert_int_equal(wzp_stun_respond(req, n, &from, out, sizeof(out)), WZP_ERR_INVALID);
    assert_int_equal(
        wzp_stun_respond((const uint8_t *)"hello world, not stun", 21, &from, out, sizeof(out)),
        WZP_ERR_MALFORMED);
}

/* RFC 5780: OTHER-ADDRESS only within the growth bound; CHANGE-REQUEST honoured only by a
 * responder that can (the relay's alternate sockets), else 420 as an unknown attribute. */
static void test_respond_alt(void **state)
{
    (void)state;
    uint8_t tid[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
    uint8_t req[WZP_STUN_REQ_MAX], out[WZP_STUN_RESPONSE_MAX];
    const char *froms[] = {"192.0.2.77:40000", "[2001:db8::9]:5"};
    const char *others[] = {"198.51.100.11:40001", "[2001:db8::11]:40001"};
    for (int i = 0; i < 2; i++) {
        wzp_addr from = addr(froms[i]), other = addr(others[i]);
        wzp_stun_msg m;
        /* Unpadded (28 bytes): the plain answer. */
        int rlen = wzp_stun_binding_request(req, sizeof(req), tid, NULL);
        int len = wzp_stun_respond_alt(req, (size_t)rlen, &from, &other, NULL, out, sizeof(out));
        assert_true(len > 0 && len <= rlen + WZP_STUN_RESPONSE_GROWTH);
        assert_int_equal(wzp_stun_decode(&m, out, (size_t)len), 0);
        assert_int_equal(i == 0, m.has_other); /* IPv4 fits, IPv6 does not */
        /* Padded as doctor does: OTHER-ADDRESS, still within the bound. */
        rlen = wzp_stun_binding_request(req, sizeof(req), tid, "wzp doctor (RFC 5780)");
        len = wzp_stun_respond_alt(req, (size_t)rlen, &from, &other, NULL, out, sizeof(out));
        assert_true(len > 0 && len <= rlen + WZP_STUN_RESPONSE_GROWTH);
        assert_int_equal(wzp_stun_decode(&m, out, (size_t)len), 0);
        assert_true(m.has_other);
        assert_true(wzp_addr_equal(&m.other, &other));
        assert_true(wzp_addr_equal(&m.xor_mapped, &from));
    }
    wzp_addr from = addr(froms[0]);
    wzp_stun_msg m;
    int rlen = wzp_stun_binding_request_change(req, sizeof(req), tid, NULL,
                                               WZP_STUN_CHANGE_IP | WZP_STUN_CHANGE_PORT);
    assert_int_equal(wzp_stun_decode(&m, req, (size_t)rlen), 0);
    assert_true(m.has_change);
    assert_int_equal(m.change, WZP_STUN_CHANGE_IP | WZP_STUN_CHANGE_PORT);
    /* The relay port: 420 listing CHANGE-REQUEST. */
    int len = wzp_stun_respond(req, (size_t)rlen, &from, out, sizeof(out));
    assert_int_equal(wzp_stun_decode(&m, out, (size_t)len), 0);
    assert_int_equal(m.error_code, 420);
    assert_int_equal(m.listed_unknown[0], WZP_STUN_ATTR_CHANGE_REQUEST);
    /* An alternate socket: answers, and says what was asked. */
    uint32_t change = 0;
    len = wzp_stun_respond_alt(req, (size_t)rlen, &from, NULL, &change, out, sizeof(out));
    assert_int_equal(wzp_stun_decode(&m, out, (size_t)len), 0);
    assert_int_equal(m.type, WZP_STUN_BINDING_SUCCESS);
    assert_int_equal(change, WZP_STUN_CHANGE_IP | WZP_STUN_CHANGE_PORT);
    /* A CHANGE-REQUEST of the wrong length is malformed. */
    uint8_t body[8] = {0x00, 0x03, 0x00, 0x02, 0, 4, 0, 0};
    size_t n = frame(req, 0x0001, body, sizeof(body));
    assert_int_equal(wzp_stun_respond_alt(req, n, &from, NULL, &change, out, sizeof(out)),
                     WZP_ERR_MALFORMED);
}

/* --- client ------------------------------------------------------------------------- */

/* Plays the server: answers req (sent to `server`) as if the client were at `seen_as`. */
static int serve(const uint8_t *req, size_t len, const wzp_addr *seen_as, uint8_t *out)
{
    return wzp_stun_respond(req, len, seen_as, out, WZP_STUN_RESPONSE_MAX);
}

static void test_client_retransmit_schedule(void **state)
{
    (void)state;
    wzp_stun_txn t;
    wzp_addr server = addr("192.0.2.1:3478"), to;
    uint8_t out[WZP_STUN_REQ_MAX];
    wzp_ts t0 = WZP_SEC(1000);
    assert_int_equal(wzp_stun_txn_start(&t, NULL, &server, t0), 0);
    assert_int_equal(wzp_stun_txn_deadline(&t), t0);

    /* RFC 8489: sends at 0, 500, 1500, 3500, 7500, 15500, 31500 ms; failure at 39500 ms. */
    const wzp_ts sends[] = {0, 500, 1500, 3500, 7500, 15500, 31500};
    uint8_t first[WZP_STUN_REQ_MAX];
    int first_len = 0;
    for (size_t i = 0; i < 7; i++) {
        wzp_ts at = t0 + WZP_MS(sends[i]);
        assert_int_equal(wzp_stun_txn_deadline(&t), at);
        assert_int_equal(wzp_stun_txn_poll(&t, at - 1, out, sizeof(out), &to), 0);
        int len = wzp_stun_txn_poll(&t, at, out, sizeof(out), &to);
        assert_true(len > 0);
        assert_true(wzp_addr_equal(&to, &server));
        if (i == 0) {
            memcpy(first, out, (size_t)len);
            first_len = len;
        } else {
            /* A retransmission is the same request, same transaction id. */
            assert_int_equal(len, first_len);
            assert_memory_equal(out, first, (size_t)len);
        }
        assert_int_equal(wzp_stun_txn_poll(&t, at, out, sizeof(out), &to), 0);
    }
    assert_int_equal(wzp_stun_txn_deadline(&t), t0 + WZP_MS(39500));
    assert_int_equal(wzp_stun_txn_poll(&t, t0 + WZP_MS(39499), out, sizeof(out), &to), 0);
    assert_int_equal(t.state, WZP_STUN_TXN_PENDING);
    assert_int_equal(wzp_stun_txn_poll(&t, t0 + WZP_MS(39500), out, sizeof(out), &to), 0);
    assert_int_equal(t.state, WZP_STUN_TXN_FAILED);
    assert_int_equal(t.error, WZP_ERR_TIMEOUT);
    assert_int_equal(wzp_stun_txn_deadline(&t), WZP_TS_NEVER);

    /* Configurable: 3 sends, 100 ms doubling, final wait 2 x 100 ms. */
    wzp_stun_config cfg;
    wzp_stun_config_default(&cfg);
    cfg.rto = WZP_MS(100);
    cfg.max_tx = 3;
    cfg.final_wait = 2;
    cfg.software = "wzp";
    assert_int_equal(wzp_stun_txn_start(&t, &cfg, &server, 0), 0);
    int n = 0;
    for (wzp_ts now = 0; t.state == WZP_STUN_TXN_PENDING; now = wzp_stun_txn_deadline(&t)) {
        int len = wzp_stun_txn_poll(&t, now, out, sizeof(out), &to);
        if (len > 0) {
            n++;
            wzp_stun_msg m;
            assert_int_equal(wzp_stun_decode(&m, out, (size_t)len), 0);
            assert_int_equal(m.software_len, 3);
        }
        if (t.state == WZP_STUN_TXN_FAILED)
            assert_int_equal(now, WZP_MS(100 + 200 + 200));
    }
    assert_int_equal(n, 3);
    assert_int_equal(wzp_stun_txn_poll(&t, WZP_SEC(10), out, 10, &to), 0);
    assert_int_equal(wzp_stun_txn_start(&t, &cfg, &server, 0), 0);
    assert_int_equal(wzp_stun_txn_poll(&t, 0, out, 10, &to), WZP_ERR_TOO_BIG);
}

/* Starts a fresh transaction to server and begins, in resp, a response of type to it. */
static void start_and_respond(wzp_stun_txn *t, const wzp_addr *server, wzp_stun_wr *sw,
                              uint8_t *resp, size_t cap, uint16_t type)
{
    assert_int_equal(wzp_stun_txn_start(t, NULL, server, 0), 0);
    wzp_stun_begin(sw, resp, cap, type, t->tid);
}

/* Finishes the response begun in resp and hands it to t, which takes it. */
static void deliver(wzp_stun_txn *t, const wzp_addr *server, wzp_stun_wr *sw, const uint8_t *resp,
                    bool fingerprint)
{
    int rlen = wzp_stun_finish(sw, fingerprint);
    assert_int_equal(wzp_stun_txn_recv(t, server, resp, (size_t)rlen, 1), 0);
}

static void test_client_matching(void **state)
{
    (void)state;
    wzp_stun_txn t;
    wzp_addr server = addr("192.0.2.1:3478"), other = addr("192.0.2.1:3479"), to;
    wzp_addr me = addr("198.51.100.20:61000");
    uint8_t req[WZP_STUN_REQ_MAX], resp[WZP_STUN_RESPONSE_MAX];
    assert_int_equal(wzp_stun_txn_start(&t, NULL, &server, 0), 0);
    int len = wzp_stun_txn_poll(&t, 0, req, sizeof(req), &to);
    assert_true(len > 0);
    int rlen = serve(req, (size_t)len, &me, resp);
    assert_true(rlen > 0);

    /* Right id, wrong source: not ours. */
    assert_int_equal(wzp_stun_txn_recv(&t, &other, resp, (size_t)rlen, 1), WZP_ERR_NOT_FOUND);
    /* Right source, other transaction id. */
    uint8_t forged[WZP_STUN_RESPONSE_MAX];
    memcpy(forged, resp, (size_t)rlen);
    forged[19] ^= 1;
    assert_int_equal(wzp_stun_txn_recv(&t, &server, forged, (size_t)rlen, 1), WZP_ERR_MALFORMED);
    uint8_t tid[12];
    memcpy(tid, t.tid, 12);
    tid[0] ^= 0xff;
    wzp_stun_wr sw;
    wzp_stun_begin(&sw, forged, sizeof(forged), WZP_STUN_BINDING_SUCCESS, tid);
    wzp_stun_put_addr(&sw, &other, true);
    int flen = wzp_stun_finish(&sw, true);
    assert_int_equal(wzp_stun_txn_recv(&t, &server, forged, (size_t)flen, 1), WZP_ERR_NOT_FOUND);
    /* Our own request echoed back is not a response. */
    assert_int_equal(wzp_stun_txn_recv(&t, &server, req, (size_t)len, 1), WZP_ERR_NOT_FOUND);
    assert_int_equal(t.state, WZP_STUN_TXN_PENDING);

    assert_int_equal(wzp_stun_txn_recv(&t, &server, resp, (size_t)rlen, 1), 0);
    assert_int_equal(t.state, WZP_STUN_TXN_DONE);
    assert_true(wzp_addr_equal(&t.mapped, &me));
    assert_int_equal(wzp_stun_txn_deadline(&t), WZP_TS_NEVER);
    /* A duplicate (answer to a retransmission) after completion is not consumed again. */
    assert_int_equal(wzp_stun_txn_recv(&t, &server, resp, (size_t)rlen, 2), WZP_ERR_NOT_FOUND);

    /* Old server: MAPPED-ADDRESS only. */
    start_and_respond(&t, &server, &sw, resp, sizeof(resp), WZP_STUN_BINDING_SUCCESS);
    wzp_stun_put_addr(&sw, &me, false);
    deliver(&t, &server, &sw, resp, false);
    assert_int_equal(t.state, WZP_STUN_TXN_DONE);
    assert_true(wzp_addr_equal(&t.mapped, &me));

    /* Error response. */
    start_and_respond(&t, &server, &sw, resp, sizeof(resp), WZP_STUN_BINDING_ERROR);
    wzp_stun_put_error(&sw, 400, "Bad Request");
    deliver(&t, &server, &sw, resp, true);
    assert_int_equal(t.state, WZP_STUN_TXN_FAILED);
    assert_int_equal(t.error, WZP_ERR_REJECTED);
    assert_int_equal(t.error_code, 400);

    /* Success without any mapped address, or with an unknown required attribute: failed. */
    start_and_respond(&t, &server, &sw, resp, sizeof(resp), WZP_STUN_BINDING_SUCCESS);
    deliver(&t, &server, &sw, resp, true);
    assert_int_equal(t.error, WZP_ERR_PROTOCOL);
    start_and_respond(&t, &server, &sw, resp, sizeof(resp), WZP_STUN_BINDING_SUCCESS);
    wzp_stun_put_addr(&sw, &me, true);
    wzp_stun_put_attr(&sw, 0x0042, NULL, 0);
    deliver(&t, &server, &sw, resp, true);
    assert_int_equal(t.state, WZP_STUN_TXN_FAILED);
    assert_int_equal(t.error, WZP_ERR_PROTOCOL);

    /* Bad arguments. */
    wzp_addr none;
    wzp_addr_clear(&none);
    assert_int_equal(wzp_stun_txn_start(&t, NULL, &none, 0), WZP_ERR_INVALID);
}

static void test_transaction_ids_differ(void **state)
{
    (void)state;
    wzp_stun_txn a, b;
    wzp_addr server = addr("192.0.2.1:3478");
    wzp_stun_txn_start(&a, NULL, &server, 0);
    wzp_stun_txn_start(&b, NULL, &server, 0);
    assert_memory_not_equal(a.tid, b.tid, 12);
}

static void test_mapping_classify(void **state)
{
    (void)state;
    wzp_addr a = addr("203.0.113.5:40000"), b = addr("203.0.113.5:40001"),
             c = addr("203.0.113.6:40000"), v6 = addr("[2001:db8::1]:40000");
    assert_int_equal(wzp_nat_mapping_classify(&a, &a), WZP_NAT_MAPPING_INDEPENDENT);
    assert_int_equal(wzp_nat_mapping_classify(&a, &b), WZP_NAT_MAPPING_DEPENDENT);
    assert_int_equal(wzp_nat_mapping_classify(&a, &c), WZP_NAT_MAPPING_DEPENDENT);
    assert_int_equal(wzp_nat_mapping_classify(&a, NULL), WZP_NAT_MAPPING_UNKNOWN);
    assert_int_equal(wzp_nat_mapping_classify(NULL, &a), WZP_NAT_MAPPING_UNKNOWN);
    assert_int_equal(wzp_nat_mapping_classify(&a, &v6), WZP_NAT_MAPPING_UNKNOWN);
    assert_string_equal(wzp_nat_mapping_name(WZP_NAT_MAPPING_DEPENDENT), "endpoint-dependent");
    assert_string_equal(wzp_nat_mapping_name(WZP_NAT_MAPPING_INDEPENDENT), "endpoint-independent");
    assert_string_equal(wzp_nat_mapping_name(WZP_NAT_MAPPING_UNKNOWN), "unknown");
}

/*
 * A synthetic NAT in front of the probe: each destination gets the mapping
 * `mapped[i]`, as an endpoint-dependent ("symmetric") NAT would hand out.
 * Server b may be silent to test the "unknown" outcome.
 */
static wzp_nat_mapping run_probe(const char *map_a, const char *map_b, bool b_silent)
{
    wzp_nat_probe p;
    wzp_addr sa = addr("192.0.2.1:3478"), sb = addr("192.0.2.2:3478");
    wzp_addr ma = addr(map_a), mb = addr(map_b);
    wzp_stun_config cfg;
    wzp_stun_config_default(&cfg);
    cfg.max_tx = 3;
    assert_int_equal(wzp_nat_probe_start(&p, &cfg, &sa, &sb, 0), 0);
    wzp_ts now = 0;
    int rounds = 0;
    while (!wzp_nat_probe_done(&p)) {
        assert_true(++rounds < 100);
        assert_int_equal(wzp_nat_probe_result(&p), WZP_NAT_MAPPING_UNKNOWN);
        uint8_t req[WZP_STUN_REQ_MAX], resp[WZP_STUN_RESPONSE_MAX];
        wzp_addr to;
        int len;
        while ((len = wzp_nat_probe_poll(&p, now, req, sizeof(req), &to)) > 0) {
            bool to_a = wzp_addr_equal(&to, &sa);
            if (!to_a && b_silent)
                continue;
            int rlen = serve(req, (size_t)len, to_a ? &ma : &mb, resp);
            assert_true(rlen > 0);
            assert_int_equal(wzp_nat_probe_recv(&p, &to, resp, (size_t)rlen, now), 0);
        }
        assert_true(len == 0);
        if (!wzp_nat_probe_done(&p))
            now = wzp_nat_probe_deadline(&p);
    }
    return wzp_nat_probe_result(&p);
}

static void test_mapping_probe(void **state)
{
    (void)state;
    assert_int_equal(run_probe("203.0.113.5:40000", "203.0.113.5:40000", false),
                     WZP_NAT_MAPPING_INDEPENDENT);
    assert_int_equal(run_probe("203.0.113.5:40000", "203.0.113.5:40007", false),
                     WZP_NAT_MAPPING_DEPENDENT);
    assert_int_equal(run_probe("203.0.113.5:40000", "203.0.113.5:40000", true),
                     WZP_NAT_MAPPING_UNKNOWN);
    wzp_nat_probe p;
    wzp_addr sa = addr("192.0.2.1:3478");
    assert_int_equal(wzp_nat_probe_start(&p, NULL, &sa, &sa, 0), WZP_ERR_INVALID);
}

WZP_TEST_MAIN(NULL, NULL, test_crc32, test_rfc5769_request, test_rfc5769_response_v4,
              test_rfc5769_response_v6, test_fingerprint_corruption_detected, test_roundtrip,
              test_malformed_rejected, test_unknown_and_duplicates, test_respond, test_respond_alt,
              test_client_retransmit_schedule, test_client_matching, test_transaction_ids_differ,
              test_mapping_classify, test_mapping_probe)
