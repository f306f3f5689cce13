/*
 * ice/birthday on a virtual clock: which role each NAT pair gets, the rate
 * and time bounds, spraying without repeats over the whole range, OPEN over
 * every extra socket, and PREDICT meeting a sequential peer that predicts
 * back (a model of two sequential allocators, offsets included).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "ice/birthday.h"

static wzp_addr addr(const char *text)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, text, false), 0);
    return a;
}

/* Values as signalled: mapping 1 EIM / 3 APDM, filtering 3 APDF, ports 2 seq / 3 range / 4 random.
 */
static const wzp_sig_nat PRC = {.mapping = 1, .filtering = 3, .ports = 1};
static const wzp_sig_nat FULL_CONE = {.mapping = 1, .filtering = 1, .ports = 1};
static const wzp_sig_nat SYM_RANDOM = {
    .mapping = 3, .filtering = 3, .ports = 4, .port_lo = 1024, .port_hi = 65535};
static const wzp_sig_nat SYM_RANGE = {
    .mapping = 3, .filtering = 3, .ports = 3, .port_lo = 20000, .port_hi = 20999};
static const wzp_sig_nat SYM_SEQ = {
    .mapping = 3, .filtering = 3, .ports = 2, .port_delta = 1, .last_port = 30000};
static const wzp_sig_nat UNKNOWN;

static void test_roles(void **state)
{
    (void)state;
    /* The two sides' roles always complement each other. */
    assert_int_equal(wzp_bday_role_for(&PRC, &SYM_RANDOM, 0), WZP_BDAY_SPRAY);
    assert_int_equal(wzp_bday_role_for(&SYM_RANDOM, &PRC, 128), WZP_BDAY_OPEN);
    assert_int_equal(wzp_bday_role_for(&SYM_RANDOM, &PRC, 0), WZP_BDAY_NONE);
    assert_int_equal(wzp_bday_role_for(&PRC, &SYM_RANGE, 0), WZP_BDAY_SPRAY);
    assert_int_equal(wzp_bday_role_for(&PRC, &SYM_SEQ, 0), WZP_BDAY_PREDICT);
    assert_int_equal(wzp_bday_role_for(&SYM_SEQ, &PRC, 128), WZP_BDAY_NONE);
    assert_int_equal(wzp_bday_role_for(&SYM_SEQ, &SYM_SEQ, 128), WZP_BDAY_PREDICT);
    /* Where ordinary checks work, or nothing would: no extra probes. */
    assert_int_equal(wzp_bday_role_for(&PRC, &PRC, 128), WZP_BDAY_NONE);
    assert_int_equal(wzp_bday_role_for(&FULL_CONE, &SYM_RANDOM, 128), WZP_BDAY_NONE);
    assert_int_equal(wzp_bday_role_for(&SYM_RANDOM, &FULL_CONE, 128), WZP_BDAY_NONE);
    assert_int_equal(wzp_bday_role_for(&SYM_RANDOM, &SYM_RANDOM, 128), WZP_BDAY_NONE);
    assert_int_equal(wzp_bday_role_for(&SYM_SEQ, &SYM_RANDOM, 128), WZP_BDAY_NONE);
    assert_int_equal(wzp_bday_role_for(&UNKNOWN, &SYM_RANDOM, 128), WZP_BDAY_NONE);
    assert_int_equal(wzp_bday_role_for(&PRC, &UNKNOWN, 128), WZP_BDAY_NONE);
    assert_string_equal(wzp_bday_role_name(WZP_BDAY_PREDICT), "predict");
}

static void test_bad_start(void **state)
{
    (void)state;
    wzp_bday b;
    wzp_addr v4 = addr("198.51.100.7:4000"), v6 = addr("[2001:db8::1]:4000");
    assert_int_equal(wzp_bday_start(&b, NULL, WZP_BDAY_NONE, &v4, &SYM_RANDOM, 1, 1),
                     WZP_ERR_INVALID);
    assert_int_equal(wzp_bday_start(&b, NULL, WZP_BDAY_SPRAY, &v6, &SYM_RANDOM, 1, 1),
                     WZP_ERR_INVALID);
    assert_int_equal(wzp_bday_start(&b, NULL, WZP_BDAY_OPEN, &v4, &PRC, 1, 1),
                     WZP_ERR_INVALID); /* no extra sockets */
    assert_int_equal(wzp_bday_start(&b, NULL, WZP_BDAY_PREDICT, &v4, &SYM_RANDOM, 1, 1),
                     WZP_ERR_INVALID);
    assert_int_equal(wzp_bday_deadline(&b), WZP_TS_NEVER);
    int aux;
    wzp_addr d;
    assert_false(wzp_bday_poll(&b, 5, &aux, &d));
}

/* Runs the planner on a virtual clock, jumping from deadline to deadline. */
static uint64_t run_for(wzp_bday *b, wzp_ts from, wzp_ts until, uint8_t *seen, unsigned *max_per_s)
{
    wzp_ts now = from, window_start = from;
    unsigned in_window = 0;
    uint64_t n = 0;
    *max_per_s = 0;
    while (now < until) {
        int aux;
        wzp_addr d;
        while (wzp_bday_poll(b, now, &aux, &d)) {
            n++;
            if (now >= window_start + WZP_SEC(1)) {
                window_start = now;
                in_window = 0;
            }
            if (++in_window > *max_per_s)
                *max_per_s = in_window;
            if (seen)
                seen[wzp_addr_port(&d)]++;
            assert_int_equal(aux, -1);
        }
        wzp_ts next = wzp_bday_deadline(b);
        if (next == WZP_TS_NEVER)
            break;
        assert_true(next > now); /* nothing due is left behind */
        now = next;
    }
    return n;
}

static void test_spray_bounds_and_coverage(void **state)
{
    (void)state;
    wzp_bday b;
    wzp_addr peer = addr("198.51.100.7:20500");
    wzp_bday_config cfg = {.rate = 200, .duration = WZP_SEC(10)};
    assert_int_equal(wzp_bday_start(&b, &cfg, WZP_BDAY_SPRAY, &peer, &SYM_RANGE, 42, WZP_SEC(1)),
                     0);
    uint8_t *seen = calloc(65536, 1);
    assert_non_null(seen);
    unsigned max_per_s;
    uint64_t n = run_for(&b, WZP_SEC(1), WZP_SEC(60), seen, &max_per_s);
    /* 10 s at 200/s, never more in any second; over after the duration. */
    assert_true(n >= 1990 && n <= 2001);
    assert_true(max_per_s <= 201);
    assert_int_equal(b.sent, n);
    assert_int_equal(wzp_bday_deadline(&b), WZP_TS_NEVER);
    /* 2000 probes over a 1000-port range: every port exactly twice, nothing outside. */
    for (unsigned p = 0; p < 65536; p++)
        assert_int_equal(seen[p], p >= 20000 && p <= 20999 ? 2 : 0);
    free(seen);
}

static void test_spray_random_no_repeat(void **state)
{
    (void)state;
    wzp_bday b;
    wzp_addr peer = addr("198.51.100.7:40000");
    assert_int_equal(wzp_bday_start(&b, NULL, WZP_BDAY_SPRAY, &peer, &SYM_RANDOM, 7, 1), 0);
    uint8_t *seen = calloc(65536, 1);
    assert_non_null(seen);
    unsigned max_per_s;
    uint64_t n = run_for(&b, 1, WZP_SEC(100), seen, &max_per_s);
    assert_true(n >= 2990 && n <= 3001); /* defaults: 15 s at 200/s */
    for (unsigned p = 0; p < 65536; p++)
        assert_true(seen[p] <= 1 && (p >= 1024 || !seen[p]));
    /* Stopping ends it at once. */
    assert_int_equal(wzp_bday_start(&b, NULL, WZP_BDAY_SPRAY, &peer, &SYM_RANDOM, 7, 1), 0);
    wzp_bday_stop(&b);
    assert_int_equal(wzp_bday_deadline(&b), WZP_TS_NEVER);
    free(seen);
}

static void test_open_every_socket(void **state)
{
    (void)state;
    wzp_bday b;
    wzp_addr peer = addr("203.0.113.5:5000");
    wzp_bday_config cfg = {.aux_socks = 64};
    assert_int_equal(wzp_bday_start(&b, &cfg, WZP_BDAY_OPEN, &peer, &PRC, 1, 1), 0);
    unsigned per_sock[64] = {0};
    wzp_ts now = 1;
    int aux;
    wzp_addr d;
    while (now < WZP_SEC(6)) {
        while (wzp_bday_poll(&b, now, &aux, &d)) {
            assert_true(aux >= 0 && aux < 64);
            assert_true(wzp_addr_equal(&d, &peer));
            per_sock[aux]++;
        }
        now = wzp_bday_deadline(&b);
    }
    /* A round at 200/s (320 ms), then one every 5 s: two rounds by 6 s. */
    for (int k = 0; k < 64; k++)
        assert_int_equal(per_sock[k], 2);
}

/*
 * Two symmetric NATs that allocate sequentially, each side having made d
 * other new mappings since its last port was measured: every sweep probe to
 * a new destination takes the NAT's next port. The pair meets when side A's
 * mapping (a_port -> B:b_dest) and B's (b_port -> A:a_dest) point at each
 * other.
 */
typedef struct seqnat {
    uint16_t next;
    unsigned n;
    uint16_t dest[64], port[64];
} seqnat;

static uint16_t seq_map(seqnat *s, uint16_t dest)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->dest[i] == dest)
            return s->port[i];
    s->dest[s->n] = dest;
    s->port[s->n] = s->next++;
    return s->port[s->n++];
}

static bool seq_meet(unsigned da, unsigned db)
{
    wzp_sig_nat na = SYM_SEQ, nb = SYM_SEQ;
    na.last_port = 30000;
    nb.last_port = 41000;
    seqnat a = {.next = (uint16_t)(30001 + da)}, b = {.next = (uint16_t)(41001 + db)};
    wzp_addr ipa = addr("198.51.100.1:30000"), ipb = addr("203.0.113.2:41000");
    wzp_bday ba, bb;
    wzp_bday_config cfg = {.window = 16};
    assert_int_equal(wzp_bday_start(&ba, &cfg, WZP_BDAY_PREDICT, &ipb, &nb, 1, 1), 0);
    assert_int_equal(wzp_bday_start(&bb, &cfg, WZP_BDAY_PREDICT, &ipa, &na, 2, 1), 0);
    for (int i = 0; i < 32; i++) {
        int aux;
        wzp_addr d;
        wzp_ts now = 1 + (wzp_ts)i * WZP_MS(5);
        assert_true(wzp_bday_poll(&ba, now, &aux, &d));
        uint16_t pa = seq_map(&a, wzp_addr_port(&d));
        assert_true(wzp_bday_poll(&bb, now, &aux, &d));
        (void)seq_map(&b, wzp_addr_port(&d));
        (void)pa;
    }
    for (unsigned i = 0; i < a.n; i++)
        for (unsigned k = 0; k < b.n; k++)
            if (a.port[i] == b.dest[k] && b.port[k] == a.dest[i])
                return true;
    return false;
}

static void test_predict_meets(void **state)
{
    (void)state;
    /* Equal offsets up to the window meet; unequal ones do not (why the window is generous). */
    for (unsigned d = 0; d < 12; d++)
        assert_true(seq_meet(d, d));
    assert_false(seq_meet(0, 1));
    /* A sequential peer against an easy side: the sweep covers its next ports. */
    wzp_bday b;
    wzp_addr peer = addr("203.0.113.2:41000");
    wzp_sig_nat n = SYM_SEQ;
    n.port_delta = -2;
    n.last_port = 1030; /* going down across the bottom of the port space wraps */
    assert_int_equal(wzp_bday_start(&b, NULL, WZP_BDAY_PREDICT, &peer, &n, 1, 1), 0);
    int aux;
    wzp_addr d;
    bool saw_1028 = false, saw_wrap = false;
    for (int i = 0; i < 32; i++) {
        assert_true(wzp_bday_poll(&b, 1 + (wzp_ts)i * WZP_MS(5), &aux, &d));
        saw_1028 |= wzp_addr_port(&d) == 1028;
        saw_wrap |= wzp_addr_port(&d) > 60000;
    }
    assert_true(saw_1028 && saw_wrap);
}

WZP_TEST_MAIN(NULL, NULL, test_roles, test_bad_start, test_spray_bounds_and_coverage,
              test_spray_random_no_repeat, test_open_every_socket, test_predict_meets)
