/*
 * Invites (src/phone/invite.c): round trips with and without relay and alias,
 * any case and wrapped lines read back; every single-character change, every
 * truncation and a foreign prefix or version is refused with its one-line
 * reason; relay address syntax; the terminal QR code reads back to the same
 * modules libqrencode made (src/phone/qr.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base32.h"
#include "phone/invite.h"
#include "phone/qr.h"

static wzp_invite sample(bool alias, bool relay, const char *addr)
{
    wzp_invite inv;
    memset(&inv, 0, sizeof(inv));
    for (int i = 0; i < WZP_FINGERPRINT_LEN; i++) {
        inv.fp[i] = (uint8_t)(i * 7 + 1);
        if (relay)
            inv.relay_pin[i] = (uint8_t)(255 - i);
    }
    if (alias)
        snprintf(inv.alias, sizeof(inv.alias), "bob.smith");
    if (relay)
        snprintf(inv.relay, sizeof(inv.relay), "%s", addr);
    return inv;
}

static void test_round_trip(void **state)
{
    const char *addrs[] = {"192.0.2.7:4433", "relay.example.org:443", "[2001:db8::1]:65535"};
    for (int k = 0; k < 6; k++) {
        wzp_invite inv = sample(k & 1, k >= 2, addrs[k % 3]), back;
        char text[WZP_INVITE_TEXT_MAX];
        int n = wzp_invite_encode(&inv, text, sizeof(text));
        assert_true(n > 0 && (size_t)n == strlen(text));
        printf("%s\n", text);
        assert_true(wzp_invite_looks_like(text));
        const char *why;
        assert_int_equal(wzp_invite_decode(text, &back, &why), 0);
        assert_memory_equal(&inv, &back, sizeof(inv));
        /* Upper case (as a QR code carries it), surrounding and inner whitespace. */
        char up[WZP_INVITE_TEXT_MAX + 16];
        size_t o = 0;
        up[o++] = ' ';
        for (int i = 0; i < n; i++) {
            up[o++] = (char)toupper((unsigned char)text[i]);
            if (i > 5 && i % 40 == 0)
                up[o++] = '\n';
        }
        up[o++] = '\n';
        up[o] = '\0';
        assert_int_equal(wzp_invite_decode(up, &back, &why), 0);
        assert_memory_equal(&inv, &back, sizeof(inv));
        /* Too small a buffer. */
        assert_int_equal(wzp_invite_encode(&inv, text, (size_t)n), WZP_ERR_TOO_BIG);
    }
}

static void test_damage(void **state)
{
    wzp_invite inv = sample(true, true, "relay.example.org:4433"), back;
    char text[WZP_INVITE_TEXT_MAX], bad[WZP_INVITE_TEXT_MAX];
    int n = wzp_invite_encode(&inv, text, sizeof(text));
    const char *why;
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
    /* Every substitution of every body character by every other base32 character. */
    for (int i = 5; i < n; i++)
        for (int a = 0; a < 32; a++) {
            if (alpha[a] == text[i])
                continue;
            memcpy(bad, text, (size_t)n + 1);
            bad[i] = alpha[a];
            assert_int_equal(wzp_invite_decode(bad, &back, &why), WZP_ERR_MALFORMED);
            assert_string_equal(why, "invite damaged: checksum mismatch");
        }
    /* Swapped neighbours, every truncation, a character more. */
    for (int i = 5; i + 1 < n; i++) {
        if (text[i] == text[i + 1])
            continue;
        memcpy(bad, text, (size_t)n + 1);
        bad[i] = text[i + 1];
        bad[i + 1] = text[i];
        assert_int_equal(wzp_invite_decode(bad, &back, &why), WZP_ERR_MALFORMED);
    }
    for (int len = 0; len < n; len++) {
        memcpy(bad, text, (size_t)len);
        bad[len] = '\0';
        assert_int_equal(wzp_invite_decode(bad, &back, &why), WZP_ERR_MALFORMED);
    }
    memcpy(bad, text, (size_t)n);
    memcpy(bad + n, "a", 2);
    assert_int_equal(wzp_invite_decode(bad, &back, &why), WZP_ERR_MALFORMED);
    assert_string_equal(why, "invite damaged: checksum mismatch");
    /* A character base32 never uses. */
    memcpy(bad, text, (size_t)n + 1);
    bad[20] = '1';
    assert_int_equal(wzp_invite_decode(bad, &back, &why), WZP_ERR_MALFORMED);
    assert_non_null(strstr(why, "never contain"));
    /* Not an invite; another version. */
    const char *not_invite[] = {"bob", "", "wzp:abc", "wzpx:abc", "xwzp1:abc", "wzp1234567:a"};
    for (size_t i = 0; i < sizeof(not_invite) / sizeof(not_invite[0]); i++) {
        assert_false(wzp_invite_looks_like(not_invite[i]));
        assert_int_equal(wzp_invite_decode(not_invite[i], &back, &why), WZP_ERR_MALFORMED);
        assert_non_null(strstr(why, "not a wzp invite"));
    }
    memcpy(bad, text, (size_t)n + 1);
    bad[3] = '2';
    assert_true(wzp_invite_looks_like(bad));
    assert_int_equal(wzp_invite_decode(bad, &back, &why), WZP_ERR_MALFORMED);
    assert_non_null(strstr(why, "unsupported invite version"));
}

/* A checksum-correct invite whose fields are wrong (made on purpose): still refused. */
static void test_bad_fields(void **state)
{
    wzp_invite inv = sample(true, false, ""), back;
    snprintf(inv.alias, sizeof(inv.alias), "Bad Alias");
    char text[WZP_INVITE_TEXT_MAX];
    assert_int_equal(wzp_invite_encode(&inv, text, sizeof(text)), WZP_ERR_INVALID);
    inv = sample(false, true, "host");
    assert_int_equal(wzp_invite_encode(&inv, text, sizeof(text)), WZP_ERR_INVALID);
    /* Unknown flag bits, with a correct checksum computed here. */
    inv = sample(false, false, "");
    int n = wzp_invite_encode(&inv, text, sizeof(text));
    uint8_t bin[64];
    int bl = wzp_base32_decode(text + 5, (size_t)n - 5, bin, sizeof(bin));
    assert_int_equal(bl, 1 + WZP_FINGERPRINT_LEN + 5);
    bin[0] = 0x80;
    uint8_t buf[64], h[32];
    memcpy(buf, "wzp-invite\x01", 11);
    memcpy(buf + 11, bin, (size_t)bl - 5);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, 11 + (size_t)bl - 5, h), 0);
    memcpy(bin + bl - 5, h, 5);
    memcpy(text, "wzp1:", 5);
    assert_true(wzp_base32_encode(bin, (size_t)bl, text + 5, sizeof(text) - 5) > 0);
    const char *why;
    assert_int_equal(wzp_invite_decode(text, &back, &why), WZP_ERR_MALFORMED);
    assert_string_equal(why, "invite damaged: bad field");
}

/* Several relays of a cluster: round trip at the longest, F_MORE alone refused, and an
 * invite with one relay keeps the bytes it had before more relays existed. */
static void test_cluster_relays(void **state)
{
    (void)state;
    wzp_invite inv = sample(true, true, "192.0.2.7:4433"), back;
    char text[WZP_INVITE_TEXT_MAX];
    const char *why;
    int n = wzp_invite_encode(&inv, text, sizeof(text));
    assert_true(n > 0);
    /* The single-relay encoding, as version 1 invites have always been written. */
    assert_string_equal(text, "wzp1:amaqqdywduscwmrzibdu4vk4mnvhc6d7q2gzjg5cvgylppwfztj5uclcn5rc44"
                              "3nnf2gqdrrhezc4mbogixdoorugqzth7767x6px6xz7d37n5pu6pzpd4hp53w6z27"
                              "k5huopzxf4tr6fypa4dgqmwlh");
    inv.n_more = WZP_INVITE_MORE_RELAYS;
    memset(inv.relay, 'a', 249); /* 255 bytes with the port: a length byte's most */
    snprintf(inv.relay + 249, sizeof(inv.relay) - 249, ":65535");
    for (unsigned i = 0; i < inv.n_more; i++) {
        memset(inv.more_relay[i], (int)('b' + i), 250);
        snprintf(inv.more_relay[i] + 250, sizeof(inv.more_relay[i]) - 250, ":4433");
        memset(inv.more_pin[i], (int)(0x10 + i), WZP_FINGERPRINT_LEN);
    }
    n = wzp_invite_encode(&inv, text, sizeof(text));
    assert_true(n > 0 && n < WZP_INVITE_TEXT_MAX);
    assert_int_equal(wzp_invite_decode(text, &back, &why), 0);
    assert_memory_equal(&inv, &back, sizeof(inv));
    inv = sample(false, true, "[2001:db8::1]:4433");
    inv.n_more = 1;
    snprintf(inv.more_relay[0], sizeof(inv.more_relay[0]), "relay2.example.org:4433");
    assert_true(wzp_invite_encode(&inv, text, sizeof(text)) > 0);
    assert_int_equal(wzp_invite_decode(text, &back, &why), 0);
    assert_int_equal(back.n_more, 1);
    assert_string_equal(back.more_relay[0], "relay2.example.org:4433");
    /* Bad: a relay that is not HOST:PORT or too long for its length byte, too many, or more
     * relays without the first. */
    memset(inv.more_relay[0], 'c', 253);
    snprintf(inv.more_relay[0] + 253, sizeof(inv.more_relay[0]) - 253, ":4433");
    assert_int_equal(wzp_invite_encode(&inv, text, sizeof(text)), WZP_ERR_INVALID);
    snprintf(inv.more_relay[0], sizeof(inv.more_relay[0]), "relay2");
    assert_int_equal(wzp_invite_encode(&inv, text, sizeof(text)), WZP_ERR_INVALID);
    inv.n_more = WZP_INVITE_MORE_RELAYS + 1;
    assert_int_equal(wzp_invite_encode(&inv, text, sizeof(text)), WZP_ERR_INVALID);
    inv = sample(false, false, "");
    n = wzp_invite_encode(&inv, text, sizeof(text));
    uint8_t bin[64], buf[64], h[32];
    int bl = wzp_base32_decode(text + 5, (size_t)n - 5, bin, sizeof(bin));
    bin[0] = 0x04; /* F_MORE alone, with a correct checksum */
    memcpy(buf, "wzp-invite\x01", 11);
    memcpy(buf + 11, bin, (size_t)bl - 5);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, 11 + (size_t)bl - 5, h), 0);
    memcpy(bin + bl - 5, h, 5);
    assert_true(wzp_base32_encode(bin, (size_t)bl, text + 5, sizeof(text) - 5) > 0);
    assert_int_equal(wzp_invite_decode(text, &back, &why), WZP_ERR_MALFORMED);
}

static void test_relay_text(void **state)
{
    const char *good[] = {"1.2.3.4:1",  "relay.example.org:4433", "localhost:65535",
                          "[::1]:4433", "[2001:db8::1]:443",      "a:1"};
    const char *bad[] = {"",          "1.2.3.4",    "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536",
                         "host:0443", "host:44a",   ":4433",    "-host:1",   ".host:1",
                         "[::1:4433", "::1:4433",   "[]:1",     "ho st:1",   "host_x:1",
                         "[::g]:1",   "host:99999", "host:-1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(wzp_relay_text_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (wzp_relay_text_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
    }
}

/* Reads the half blocks back into modules. */
static int cell_at(const char **p, bool *top, bool *bottom)
{
    if (**p == ' ') {
        *top = *bottom = false;
        (*p)++;
        return 0;
    }
    if ((uint8_t)(*p)[0] != 0xe2 || (uint8_t)(*p)[1] != 0x96)
        return -1;
    uint8_t c = (uint8_t)(*p)[2];
    *top = c == 0x88 || c == 0x80;
    *bottom = c == 0x88 || c == 0x84;
    *p += 3;
    return c == 0x88 || c == 0x80 || c == 0x84 ? 0 : -1;
}

static void test_qr(void **state)
{
    wzp_invite inv = sample(true, true, "relay.example.org:4433");
    char text[WZP_INVITE_TEXT_MAX], up[WZP_INVITE_TEXT_MAX];
    int n = wzp_invite_encode(&inv, text, sizeof(text));
    char *out;
    int width;
    assert_int_equal(wzp_qr_render(text, &out, &width), 0);
    printf("%s(%d modules)\n", out, width);
    for (int i = 0; i <= n; i++)
        up[i] = (char)toupper((unsigned char)text[i]);
    QRcode *qr = QRcode_encodeString(up, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    assert_non_null(qr);
    assert_int_equal(qr->width, width);
    int full = width + 2 * WZP_QR_QUIET;
    const char *p = out;
    for (int r = 0; r < (full + 1) / 2; r++) {
        for (int x = 0; x < full; x++) {
            bool light[2];
            assert_int_equal(cell_at(&p, &light[0], &light[1]), 0);
            for (int k = 0; k < 2; k++) {
                int y = 2 * r + k - WZP_QR_QUIET, mx = x - WZP_QR_QUIET;
                bool quiet = y < 0 || mx < 0 || y >= width || mx >= width;
                if (2 * r + k >= full)
                    continue; /* below the symbol: left blank */
                bool want = quiet || !(qr->data[y * width + mx] & 1);
                assert_int_equal(light[k], want);
            }
        }
        assert_int_equal(*p++, '\n');
    }
    assert_int_equal(*p, '\0');
    QRcode_free(qr);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_damage),
        cmocka_unit_test(test_bad_fields), cmocka_unit_test(test_cluster_relays),
        cmocka_unit_test(test_relay_text), cmocka_unit_test(test_qr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
