/* The call-control codec (src/wire/call_msg.h): round trips, malformed and unknown input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/test_main.h"
#include <string.h>

#include <wzp/wzp.h>

#include "wire/call_msg.h"

static void round_trip(const wzp_call_msg *m)
{
    uint8_t buf[WZP_CALL_MSG_MAX_SIZE];
    int n = wzp_call_msg_encode(m, buf, sizeof(buf));
    assert_true(n >= 0);
    wzp_call_msg back;
    assert_int_equal(wzp_call_msg_decode(buf, (size_t)n, &back), 0);
    assert_int_equal(back.type, m->type);
    assert_memory_equal(&back.u, &m->u, sizeof(m->u));
}

static void test_round_trips(void **state)
{
    wzp_call_msg m;
    memset(&m, 0, sizeof(m));
    m.type = WZP_CALL_MSG_HANGUP;
    round_trip(&m);
    m.u.hangup.error = true;
    round_trip(&m);
    memset(&m, 0, sizeof(m));
    m.type = WZP_CALL_MSG_MUTE;
    m.u.mute.muted = true;
    round_trip(&m);
    memset(&m, 0, sizeof(m));
    m.type = WZP_CALL_MSG_STATS;
    m.u.stats.frames_received = UINT64_MAX;
    m.u.stats.frames_lost = 12345;
    m.u.stats.rtt_us = 4000000000u;
    round_trip(&m);
    memset(&m, 0, sizeof(m));
    m.type = WZP_CALL_MSG_ANSWER;
    round_trip(&m);
    memset(&m, 0, sizeof(m));
    m.type = WZP_CALL_MSG_REPORT;
    round_trip(&m);
    m.u.report = (wzp_call_report){.interval_ms = 250,
                                   .slots = 12,
                                   .missing = 5,
                                   .runs = 2,
                                   .max_run = 4,
                                   .unrepaired = 1,
                                   .jitter_us = 12000,
                                   .delay_us = 4000000000u,
                                   .redundancy = 2};
    round_trip(&m);
}

static void test_inconsistent_report(void **state)
{
    /* More missing than played, more bursts than losses: a broken peer. Not
     * sent, and not taken in. */
    wzp_call_msg m = {.type = WZP_CALL_MSG_REPORT};
    m.u.report.slots = 3;
    m.u.report.missing = 4;
    uint8_t buf[WZP_CALL_MSG_MAX_SIZE];
    assert_int_equal(wzp_call_msg_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.report.missing = 2;
    m.u.report.runs = 3;
    assert_int_equal(wzp_call_msg_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    /* By hand: field 5 (report) { slots(2)=1, missing(3)=2 } */
    uint8_t bad[] = {0x2a, 0x04, 0x10, 0x01, 0x18, 0x02};
    assert_int_equal(wzp_call_msg_decode(bad, sizeof(bad), &m), WZP_ERR_MALFORMED);
    bad[3] = 0x02; /* slots 2: consistent */
    assert_int_equal(wzp_call_msg_decode(bad, sizeof(bad), &m), 0);
    assert_int_equal(m.type, WZP_CALL_MSG_REPORT);
    assert_int_equal(m.u.report.missing, 2);
}

static void test_bad_input(void **state)
{
    wzp_call_msg m;
    uint8_t junk[] = {0x0a, 0x7f, 0x08}; /* a length past the end */
    assert_int_equal(wzp_call_msg_decode(junk, sizeof(junk), &m), WZP_ERR_MALFORMED);
    uint8_t big[WZP_CALL_MSG_MAX_SIZE + 1] = {0};
    assert_int_equal(wzp_call_msg_decode(big, sizeof(big), &m), WZP_ERR_MALFORMED);
    assert_int_equal(wzp_call_msg_decode(NULL, 3, &m), WZP_ERR_MALFORMED);
    /* Empty, or a body this version does not know: ignored, not an error. */
    assert_int_equal(wzp_call_msg_decode(NULL, 0, &m), WZP_ERR_AGAIN);
    uint8_t newer[] = {0x3a, 0x02, 0x08, 0x01}; /* field 7 */
    assert_int_equal(wzp_call_msg_decode(newer, sizeof(newer), &m), WZP_ERR_AGAIN);
    uint8_t out[4];
    m.type = WZP_CALL_MSG_STATS;
    m.u.stats.frames_received = UINT64_MAX;
    assert_int_equal(wzp_call_msg_encode(&m, out, sizeof(out)), WZP_ERR_TOO_BIG);
    m.type = (wzp_call_msg_type)99;
    assert_int_equal(wzp_call_msg_encode(&m, out, sizeof(out)), WZP_ERR_INVALID);
}

WZP_TEST_MAIN(NULL, NULL, test_round_trips, test_inconsistent_report, test_bad_input)
