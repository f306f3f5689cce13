/*
 * Call history (src/phone/history.c): the strict line format and its one
 * spelling, errors with line numbers, reason tokens, and the file layer:
 * appends keep the last WZP_HISTORY_KEEP records, a missing file is empty,
 * and a damaged file is reported and never written over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "phone/history.h"

#define FP1 "ibaf-txuc-gkxv-em75-sybz-oasc-esuo-u6f3-bf7g-vy7i-b76y-74b6-inkq"
#define FP2 "ou46-l3i5-bcm3-icmg-kroz-2r5s-tr2q-kb7f-hxpt-37kx-c335-jhk6-zd5a"

static int parse(const char *text, wzp_history *h, size_t *line, const char **why)
{
    return wzp_history_parse((const uint8_t *)text, strlen(text), h, line, why);
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *text = WZP_HISTORY_HEADER
        "2026-12-06T03:12:42Z in answered hung-up " FP1 " bob 12.345 direct 0.5 23\n"
        "2026-12-06T04:00:00Z out busy busy - - 0.000 - 0.0 0\n"
        "2028-02-29T23:59:59Z out failed peer-is-offline " FP2 " - 0.000 - 100.0 600000\n";
    wzp_history h;
    size_t line;
    const char *why;
    assert_int_equal(parse(text, &h, &line, &why), 0);
    assert_int_equal(h.n, 3);
    assert_true(h.v[0].incoming);
    assert_int_equal(h.v[0].outcome, WZP_HIST_ANSWERED);
    assert_string_equal(h.v[0].reason, "hung-up");
    assert_true(h.v[0].have_peer);
    assert_string_equal(h.v[0].name, "bob");
    assert_int_equal(h.v[0].duration_ms, 12345);
    assert_int_equal(h.v[0].path, WZP_HIST_PATH_DIRECT);
    assert_int_equal(h.v[0].loss_tenths, 5);
    assert_int_equal(h.v[0].rtt_ms, 23);
    assert_int_equal(h.v[0].start, 1796526762);
    assert_false(h.v[1].incoming);
    assert_false(h.v[1].have_peer);
    assert_int_equal(h.v[1].outcome, WZP_HIST_BUSY);
    assert_int_equal(h.v[2].loss_tenths, 1000);
    char *out;
    size_t len;
    assert_int_equal(wzp_history_format(&h, 0, &out, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(out, text, len);
    free(out);
    /* keep: only the newest records are written */
    assert_int_equal(wzp_history_format(&h, 1, &out, &len), 0);
    assert_string_equal(out,
                        WZP_HISTORY_HEADER "2028-02-29T23:59:59Z out failed peer-is-offline " FP2
                                           " - 0.000 - 100.0 600000\n");
    free(out);
    wzp_history_free(&h);

    /* comments and empty lines are read, not kept */
    assert_int_equal(parse(WZP_HISTORY_HEADER "# x\n\n", &h, &line, &why), 0);
    assert_int_equal(h.n, 0);
    wzp_history_free(&h);
}

static void test_damage(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *why;
    } bad[] = {
        {"2026-02-30T03:12:42Z in answered - - - 1.000 relay 0.5 2", "bad start time"},
        {"2026-12-06 03:12:42 in answered - - - 1.000 relay 0.5 2", "bad start time"},
        {"2026-12-06T03:12:42Z up answered - - - 1.000 relay 0.5 2", "bad direction"},
        {"2026-12-06T03:12:42Z in won - - - 1.000 relay 0.5 2", "bad outcome"},
        {"2026-12-06T03:12:42Z in answered Hung - - 1.000 relay 0.5 2", "bad reason"},
        {"2026-12-06T03:12:42Z in answered - xyz - 1.000 relay 0.5 2", "bad peer"},
        {"2026-12-06T03:12:42Z in answered - " FP1 "x - 1.000 relay 0.5 2", "bad peer"},
        {"2026-12-06T03:12:42Z in answered - - -bob 1.000 relay 0.5 2", "bad contact"},
        {"2026-12-06T03:12:42Z in answered - - - 01.000 relay 0.5 2", "bad duration"},
        {"2026-12-06T03:12:42Z in answered - - - 1.00 relay 0.5 2", "bad duration"},
        {"2026-12-06T03:12:42Z in answered - - - 99999999999999999999.000 relay 0.5 2",
         "bad duration"},
        {"2026-12-06T03:12:42Z in answered - - - 1.000 sideways 0.5 2", "bad path"},
        {"2026-12-06T03:12:42Z in answered - - - 1.000 relay 100.1 2", "bad loss"},
        {"2026-12-06T03:12:42Z in answered - - - 1.000 relay 0.5 600001", "bad rtt"},
        {"2026-12-06T03:12:42Z in answered - - - 1.000 relay 0.5 2 more", "unexpected"},
        {"2026-12-06T03:12:42Z in answered - - - 1.000 relay 0.5 2 ", "unexpected"},
        {"2026-12-06T03:12:42Z in  answered - - - 1.000 relay 0.5 2", "bad outcome"},
        {"2026-12-06T03:12:42Z in answered - - - 1.000 relay 0.5", "bad rtt"},
    };
    wzp_history h;
    size_t line;
    const char *why;
    char text[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 WZP_HISTORY_HEADER
                 "2026-12-06T03:12:42Z in answered - - - 1.000 relay 0.5 2\n%s\n",
                 bad[i].line);
        assert_int_equal(parse(text, &h, &line, &why), WZP_ERR_MALFORMED);
        assert_int_equal(line, 3);
        if (strncmp(why, bad[i].why, strlen(bad[i].why)))
            fail_msg("%s: '%s', want '%s'", bad[i].line, why, bad[i].why);
        wzp_history_free(&h);
    }
    assert_int_equal(parse("wzp-history 2\n", &h, &line, &why), WZP_ERR_MALFORMED);
    assert_int_equal(line, 1);
    wzp_history_free(&h);
    assert_int_equal(parse(WZP_HISTORY_HEADER "2026-12-06T03:12:42Z in", &h, &line, &why),
                     WZP_ERR_MALFORMED);
    assert_int_equal(line, 2);
    assert_string_equal(why, "cut short (no end of line)");
    wzp_history_free(&h);
}

static void test_reason(void **state)
{
    (void)state;
    char r[WZP_HISTORY_REASON_MAX + 1];
    wzp_history_reason("Peer is offline!", r);
    assert_string_equal(r, "peer-is-offline");
    wzp_history_reason("  busy  ", r);
    assert_string_equal(r, "busy");
    wzp_history_reason("", r);
    assert_string_equal(r, "");
    wzp_history_reason("a very long reason text that goes on and on and on beyond forty", r);
    assert_true(strlen(r) <= WZP_HISTORY_REASON_MAX);
    assert_true(r[strlen(r) - 1] != '-');
    /* out of range records are refused, not written */
    wzp_history h = {0};
    wzp_history_rec rec = {.start = 1, .loss_tenths = 1001};
    assert_int_equal(wzp_history_add(&h, &rec), WZP_ERR_INVALID);
    rec.loss_tenths = 0;
    snprintf(rec.reason, sizeof(rec.reason), "-");
    assert_int_equal(wzp_history_add(&h, &rec), WZP_ERR_INVALID);
    wzp_history_free(&h);
}

static void test_file(void **state)
{
    (void)state;
    char base[64] = "/tmp/wzp-history-XXXXXX", sub[80];
    assert_non_null(mkdtemp(base));
    snprintf(sub, sizeof(sub), "%s/home", base);
    wzp_history h;
    size_t line;
    const char *why;
    assert_int_equal(wzp_history_load(sub, &h, &line, &why), 0); /* missing: empty */
    assert_int_equal(h.n, 0);
    wzp_history_rec r = {.start = 1796526762, .incoming = true, .path = WZP_HIST_PATH_RELAY};
    for (int i = 0; i < WZP_HISTORY_KEEP + 5; i++) {
        r.rtt_ms = (uint32_t)i;
        assert_int_equal(wzp_history_append(sub, &r, &line, &why), 0);
    }
    assert_int_equal(wzp_history_load(sub, &h, &line, &why), 0);
    assert_int_equal(h.n, WZP_HISTORY_KEEP); /* the oldest five went */
    assert_int_equal(h.v[0].rtt_ms, 5);
    assert_int_equal(h.v[h.n - 1].rtt_ms, WZP_HISTORY_KEEP + 4);
    wzp_history_free(&h);

    /* damaged: reported with its line, and an append leaves it as it was */
    const char *damaged = WZP_HISTORY_HEADER "garbage\n";
    assert_int_equal(wzp_write_atomic(sub, WZP_HISTORY_FILE, damaged, strlen(damaged), 0600), 0);
    assert_int_equal(wzp_history_append(sub, &r, &line, &why), WZP_ERR_MALFORMED);
    assert_int_equal(line, 2);
    uint8_t *data;
    size_t len;
    assert_int_equal(wzp_read_small_file(sub, WZP_HISTORY_FILE, 1 << 20, &data, &len), 0);
    assert_int_equal(len, strlen(damaged));
    assert_memory_equal(data, damaged, len);
    free(data);
    assert_int_equal(wzp_history_load(sub, &h, &line, &why), WZP_ERR_MALFORMED);
    assert_int_equal(line, 2);

    char path[128];
    snprintf(path, sizeof(path), "%s/%s", sub, WZP_HISTORY_FILE);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s.lock", sub, WZP_HISTORY_FILE);
    unlink(path);
    rmdir(sub);
    rmdir(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damage),
        cmocka_unit_test(test_reason),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
