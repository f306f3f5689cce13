/* Media datagram header: round trips, limits, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <string.h>

#include <wzp/wzp.h>

#include "wire/media_frame.h"

static void test_roundtrip(void **state)
{
    (void)state;
    uint8_t payload[100], buf[WZP_MEDIA_MAX_FRAME];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    wzp_media_frame f = {.version = WZP_MEDIA_VERSION,
                         .payload_type = WZP_MEDIA_PT_OPUS,
                         .flags = WZP_MEDIA_F_MARKER | WZP_MEDIA_F_FEC,
                         .seq = 0xfffe,
                         .timestamp = 0xfffffc40u,
                         .payload = payload,
                         .payload_len = sizeof(payload)};
    int n = wzp_media_frame_encode(&f, buf, sizeof(buf));
    assert_int_equal(n, WZP_MEDIA_HEADER_LEN + 100);
    /* Exact layout: v|pt, flags, seq, ts, big-endian. */
    const uint8_t hdr[8] = {0x11, 0x09, 0xff, 0xfe, 0xff, 0xff, 0xfc, 0x40};
    assert_memory_equal(buf, hdr, 8);

    wzp_media_frame g;
    assert_int_equal(wzp_media_frame_decode(&g, buf, (size_t)n), 0);
    assert_int_equal(g.version, 1);
    assert_int_equal(g.payload_type, WZP_MEDIA_PT_OPUS);
    assert_int_equal(g.flags, f.flags);
    assert_int_equal(g.seq, 0xfffe);
    assert_int_equal(g.timestamp, 0xfffffc40u);
    assert_int_equal(g.payload_len, 100);
    assert_ptr_equal(g.payload, buf + 8);
    assert_memory_equal(g.payload, payload, 100);
}

static void test_empty_payload(void **state)
{
    (void)state;
    uint8_t buf[16];
    wzp_media_frame f = {.version = 1, .payload_type = 1, .flags = WZP_MEDIA_F_DTX, .seq = 1};
    assert_int_equal(wzp_media_frame_encode(&f, buf, sizeof(buf)), 8);
    wzp_media_frame g;
    assert_int_equal(wzp_media_frame_decode(&g, buf, 8), 0);
    assert_int_equal(g.payload_len, 0);
    assert_null(g.payload);
    assert_int_equal(g.flags, WZP_MEDIA_F_DTX);
}

static void test_limits(void **state)
{
    (void)state;
    static uint8_t payload[WZP_MEDIA_MAX_PAYLOAD + 1];
    static uint8_t buf[WZP_MEDIA_MAX_FRAME + 8];
    wzp_media_frame f = {.version = 1, .payload_type = 1, .payload = payload};

    f.payload_len = WZP_MEDIA_MAX_PAYLOAD;
    assert_int_equal(wzp_media_frame_encode(&f, buf, sizeof(buf)), WZP_MEDIA_MAX_FRAME);
    f.payload_len = WZP_MEDIA_MAX_PAYLOAD + 1;
    assert_int_equal(wzp_media_frame_encode(&f, buf, sizeof(buf)), WZP_ERR_TOO_BIG);
    /* Output buffer one byte short. */
    f.payload_len = 10;
    assert_int_equal(wzp_media_frame_encode(&f, buf, 17), WZP_ERR_TOO_BIG);
    assert_int_equal(wzp_media_frame_encode(&f, buf, 18), 18);
    /* Fields that do not fit their nibble. */
    f.version = 16;
    assert_int_equal(wzp_media_frame_encode(&f, buf, sizeof(buf)), WZP_ERR_INVALID);
    f.version = 1;
    f.payload = NULL;
    assert_int_equal(wzp_media_frame_encode(&f, buf, sizeof(buf)), WZP_ERR_INVALID);

    /* A datagram over the limit does not parse. */
    buf[0] = 0x11;
    wzp_media_frame g;
    assert_int_equal(wzp_media_frame_decode(&g, buf, WZP_MEDIA_MAX_FRAME), 0);
    assert_int_equal(wzp_media_frame_decode(&g, buf, WZP_MEDIA_MAX_FRAME + 1), WZP_ERR_TOO_BIG);
}

static void test_malformed(void **state)
{
    (void)state;
    uint8_t buf[8] = {0x11, 0, 0, 1, 0, 0, 0, 0};
    wzp_media_frame g;
    for (size_t n = 0; n < 8; n++)
        assert_int_equal(wzp_media_frame_decode(&g, buf, n), WZP_ERR_MALFORMED);
    assert_int_equal(wzp_media_frame_decode(&g, buf, 8), 0);
    buf[0] = 0x21; /* version 2 */
    assert_int_equal(wzp_media_frame_decode(&g, buf, 8), WZP_ERR_MALFORMED);
    buf[0] = 0x1f; /* unknown payload type still parses */
    assert_int_equal(wzp_media_frame_decode(&g, buf, 8), 0);
    assert_int_equal(g.payload_type, 15);
    assert_int_equal(wzp_media_frame_decode(&g, NULL, 0), WZP_ERR_MALFORMED);
}

WZP_TEST_MAIN(NULL, NULL, test_roundtrip, test_empty_payload, test_limits, test_malformed)
