/*
 * Park frames (src/wire/park_frame.c): round trip, the MAC binds every header
 * byte to the key, and malformed frames are refused before any key is used.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <wzp/wzp.h>

#include "wire/demux.h"
#include "wire/park_frame.h"

static const uint8_t key[WZP_PARK_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static wzp_park_frame frame(uint8_t type, uint64_t seq, uint8_t flags)
{
    wzp_park_frame f = {.type = type, .seq = seq, .flags = flags};
    for (size_t i = 0; i < WZP_PARK_ID_LEN; i++)
        f.park_id[i] = (uint8_t)(0xa0 + i);
    return f;
}

static void test_round_trip(void **state)
{
    (void)state;
    const uint8_t types[] = {WZP_PARK_FRAME_WAKE, WZP_PARK_FRAME_PING, WZP_PARK_FRAME_PONG};
    for (size_t t = 0; t < sizeof(types); t++) {
        wzp_park_frame f = frame(types[t], 0x0102030405060708ull, 0), g;
        uint8_t buf[WZP_PARK_FRAME_LEN];
        assert_int_equal(wzp_park_frame_encode(buf, &f, key), 0);
        assert_int_equal(wzp_pkt_classify(buf, sizeof(buf)), WZP_PKT_RELAY);
        assert_true(wzp_park_frame_is(buf, sizeof(buf)));
        assert_int_equal(wzp_park_frame_peek(&g, buf, sizeof(buf)), 0);
        assert_int_equal(g.type, f.type);
        assert_memory_equal(g.park_id, f.park_id, WZP_PARK_ID_LEN);
        assert_true(g.seq == f.seq);
        assert_int_equal(g.flags, 0);
        assert_true(wzp_park_frame_verify(buf, sizeof(buf), key));
    }
    /* The flags each type may carry: REHOME on a WAKE, BYE on a PING, GONE on a PONG. */
    const wzp_park_frame flagged[] = {frame(WZP_PARK_FRAME_WAKE, 9, WZP_PARK_REHOME),
                                      frame(WZP_PARK_FRAME_PING, 10, WZP_PARK_BYE),
                                      frame(WZP_PARK_FRAME_PONG, 11, WZP_PARK_GONE)};
    for (size_t i = 0; i < 3; i++) {
        wzp_park_frame g;
        uint8_t buf[WZP_PARK_FRAME_LEN];
        assert_int_equal(wzp_park_frame_encode(buf, &flagged[i], key), 0);
        assert_int_equal(wzp_park_frame_peek(&g, buf, sizeof(buf)), 0);
        assert_int_equal(g.flags, flagged[i].flags);
        assert_true(wzp_park_frame_verify(buf, sizeof(buf), key));
    }
}

static void test_mac_covers_everything(void **state)
{
    (void)state;
    wzp_park_frame f = frame(WZP_PARK_FRAME_PING, 42, 0);
    uint8_t buf[WZP_PARK_FRAME_LEN];
    assert_int_equal(wzp_park_frame_encode(buf, &f, key), 0);
    uint8_t other[WZP_PARK_KEY_LEN];
    memcpy(other, key, sizeof(other));
    other[31] ^= 1;
    assert_false(wzp_park_frame_verify(buf, sizeof(buf), other));
    /* Any flipped bit (type excepted where it stays a valid type: still a MAC failure). */
    for (size_t i = 0; i < sizeof(buf); i++) {
        uint8_t b[WZP_PARK_FRAME_LEN];
        memcpy(b, buf, sizeof(b));
        b[i] ^= 0x01;
        assert_false(wzp_park_frame_verify(b, sizeof(b), key));
    }
    /* A PING turned into a PONG by an attacker: the type is signed too. */
    uint8_t b[WZP_PARK_FRAME_LEN];
    memcpy(b, buf, sizeof(b));
    b[0] = WZP_PARK_FRAME_PONG;
    assert_false(wzp_park_frame_verify(b, sizeof(b), key));
}

static void test_malformed(void **state)
{
    (void)state;
    wzp_park_frame f = frame(WZP_PARK_FRAME_PONG, 1, 0), g;
    uint8_t buf[WZP_PARK_FRAME_LEN + 1];
    assert_int_equal(wzp_park_frame_encode(buf, &f, key), 0);
    assert_int_equal(wzp_park_frame_peek(&g, buf, WZP_PARK_FRAME_LEN - 1), WZP_ERR_MALFORMED);
    assert_int_equal(wzp_park_frame_peek(&g, buf, WZP_PARK_FRAME_LEN + 1), WZP_ERR_MALFORMED);
    assert_false(wzp_park_frame_verify(buf, WZP_PARK_FRAME_LEN + 1, key));
    buf[17] = WZP_PARK_REHOME; /* only a WAKE may carry it */
    assert_int_equal(wzp_park_frame_peek(&g, buf, WZP_PARK_FRAME_LEN), WZP_ERR_MALFORMED);
    buf[17] = WZP_PARK_BYE; /* only a PING */
    assert_int_equal(wzp_park_frame_peek(&g, buf, WZP_PARK_FRAME_LEN), WZP_ERR_MALFORMED);
    buf[17] = WZP_PARK_GONE; /* a PONG's: fine here, but no other flag with it */
    assert_int_equal(wzp_park_frame_peek(&g, buf, WZP_PARK_FRAME_LEN), 0);
    buf[17] = WZP_PARK_GONE | WZP_PARK_REHOME;
    assert_int_equal(wzp_park_frame_peek(&g, buf, WZP_PARK_FRAME_LEN), WZP_ERR_MALFORMED);
    buf[17] = 0;
    buf[0] = WZP_PARK_FRAME_PONG + 1;
    assert_int_equal(wzp_park_frame_peek(&g, buf, WZP_PARK_FRAME_LEN), WZP_ERR_MALFORMED);
    assert_false(wzp_park_frame_is(buf, WZP_PARK_FRAME_LEN));
    f = frame(WZP_PARK_FRAME_WAKE, 1, WZP_PARK_BYE);
    assert_int_equal(wzp_park_frame_encode(buf, &f, key), WZP_ERR_INVALID);
    f = frame(WZP_PARK_FRAME_PING, 1, WZP_PARK_GONE);
    assert_int_equal(wzp_park_frame_encode(buf, &f, key), WZP_ERR_INVALID);
    f = frame(WZP_PARK_FRAME_PING, 1, WZP_PARK_REHOME);
    assert_int_equal(wzp_park_frame_encode(buf, &f, key), WZP_ERR_INVALID);
    f = frame(0x80, 1, 0);
    assert_int_equal(wzp_park_frame_encode(buf, &f, key), WZP_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_mac_covers_everything),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
