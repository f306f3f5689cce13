#include "phone/invite.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/base32.h"
#include "common/bytes.h"

#define PREFIX    "wzp"
#define CK_LEN    5
#define F_ALIAS   0x01
#define F_RELAY   0x02
#define F_MORE    0x04 /* a count, then more relays with their pins (a cluster) */
#define RELAY_BIN (1 + WZP_RELAY_TEXT_MAX + WZP_FINGERPRINT_LEN)
/* flags + fp + alias + relay + pin + more relays + checksum */
#define BIN_MAX                                                                                    \
    (1 + WZP_FINGERPRINT_LEN + 1 + WZP_SIG_ALIAS_MAX + RELAY_BIN + 1 +                             \
     WZP_INVITE_MORE_RELAYS * RELAY_BIN + CK_LEN)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool wzp_relay_text_valid(const char *text)
{
    size_t n = strnlen(text, WZP_RELAY_TEXT_MAX + 1);
    if (n == 0 || n > WZP_RELAY_TEXT_MAX)
        return false;
    const char *colon = strrchr(text, ':');
    if (!colon)
        return false;
    size_t hl = (size_t)(colon - text);
    if (text[0] == '[') {
        if (hl < 3 || text[hl - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < hl; i++)
            if (!strchr("0123456789abcdefABCDEF:.", text[i]))
                return false;
    } else {
        if (hl == 0 || hl > 253 || text[0] == '-' || text[0] == '.')
            return false;
        for (size_t i = 0; i < hl; i++) {
            char c = text[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
                  c == '-'))
                return false;
        }
    }
    const char *port = colon + 1;
    size_t pl = strlen(port);
    if (pl == 0 || pl > 5 || port[0] == '0')
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < pl; i++) {
        if (!is_digit(port[i]))
            return false;
        v = v * 10 + (unsigned)(port[i] - '0');
    }
    return v <= 65535;
}

static int checksum(const uint8_t *bin, size_t n, uint8_t out[CK_LEN])
{
    static const char label[] = "wzp-invite\x01";
    uint8_t buf[sizeof(label) - 1 + BIN_MAX], h[32];
    if (n > BIN_MAX)
        return WZP_ERR_TOO_BIG;
    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, bin, n);
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, sizeof(label) - 1 + n, h) != 0)
        return WZP_ERR_TLS;
    memcpy(out, h, CK_LEN);
    return 0;
}

/* A text field's length travels in one byte: a 253-byte name with its port does not fit. */
static bool fits_u8(const char *text)
{
    return strlen(text) <= UINT8_MAX;
}

int wzp_invite_encode(const wzp_invite *inv, char *buf, size_t cap)
{
    bool alias = inv->alias[0], relay = inv->relay[0], more = relay && inv->n_more;
    if ((alias && !wzp_sig_alias_valid(inv->alias)) ||
        (relay && !wzp_relay_text_valid(inv->relay)) || inv->n_more > WZP_INVITE_MORE_RELAYS)
        return WZP_ERR_INVALID;
    for (unsigned i = 0; more && i < inv->n_more; i++)
        if (!wzp_relay_text_valid(inv->more_relay[i]) || !fits_u8(inv->more_relay[i]))
            return WZP_ERR_INVALID;
    if (relay && !fits_u8(inv->relay))
        return WZP_ERR_INVALID;
    uint8_t bin[BIN_MAX];
    wzp_wr w = wzp_wr_init(bin, sizeof(bin));
    wzp_wr_u8(&w, (uint8_t)((alias ? F_ALIAS : 0) | (relay ? F_RELAY : 0) | (more ? F_MORE : 0)));
    wzp_wr_bytes(&w, inv->fp, WZP_FINGERPRINT_LEN);
    if (alias) {
        wzp_wr_u8(&w, (uint8_t)strlen(inv->alias));
        wzp_wr_bytes(&w, inv->alias, strlen(inv->alias));
    }
    if (relay) {
        wzp_wr_u8(&w, (uint8_t)strlen(inv->relay));
        wzp_wr_bytes(&w, inv->relay, strlen(inv->relay));
        wzp_wr_bytes(&w, inv->relay_pin, WZP_FINGERPRINT_LEN);
    }
    if (more) {
        wzp_wr_u8(&w, (uint8_t)inv->n_more);
        for (unsigned i = 0; i < inv->n_more; i++) {
            wzp_wr_u8(&w, (uint8_t)strlen(inv->more_relay[i]));
            wzp_wr_bytes(&w, inv->more_relay[i], strlen(inv->more_relay[i]));
            wzp_wr_bytes(&w, inv->more_pin[i], WZP_FINGERPRINT_LEN);
        }
    }
    uint8_t ck[CK_LEN];
    if (w.err || checksum(bin, w.off, ck) != 0)
        return WZP_ERR_INTERNAL;
    wzp_wr_bytes(&w, ck, CK_LEN);
    if (w.err)
        return WZP_ERR_INTERNAL;
    int pl = snprintf(buf, cap, "%s%d:", PREFIX, WZP_INVITE_VERSION);
    if (pl < 0 || (size_t)pl >= cap)
        return WZP_ERR_TOO_BIG;
    int n = wzp_base32_encode(bin, w.off, buf + pl, cap - (size_t)pl);
    return n < 0 ? n : pl + n;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The version number after "wzp", or -1 if text does not start like an invite; *body is what
 * follows the ':'. */
static long parse_prefix(const char *text, const char **body)
{
    while (is_space(*text))
        text++;
    if (strncasecmp(text, PREFIX, strlen(PREFIX)) != 0)
        return -1;
    const char *p = text + strlen(PREFIX);
    long v = 0;
    size_t nd = 0;
    for (; is_digit(*p); p++, nd++) {
        if (nd >= 6)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (nd == 0 || *p != ':')
        return -1;
    *body = p + 1;
    return v;
}

bool wzp_invite_looks_like(const char *text)
{
    const char *body;
    return parse_prefix(text, &body) >= 0;
}

/* A length-prefixed text field of 1..max bytes into out (max + 1 bytes). */
static bool read_text(wzp_rd *r, char *out, size_t max)
{
    uint8_t n = wzp_rd_u8(r);
    if (r->err || n == 0 || n > max)
        return false;
    wzp_rd_copy(r, out, n);
    out[n] = '\0';
    return !r->err && strlen(out) == n; /* no NUL inside */
}

int wzp_invite_decode(const char *text, wzp_invite *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    const char *body;
    long version = parse_prefix(text, &body);
    if (version < 0) {
        *why = "not a wzp invite (it should start with \"wzp1:\")";
        return WZP_ERR_MALFORMED;
    }
    if (version != WZP_INVITE_VERSION) {
        *why = "unsupported invite version (this wzp reads version 1 invites)";
        return WZP_ERR_MALFORMED;
    }
    size_t len = strlen(body);
    while (len && is_space(body[len - 1]))
        len--;
    uint8_t bin[BIN_MAX];
    int n = wzp_base32_decode(body, len, bin, sizeof(bin));
    if (n == WZP_ERR_TOO_BIG) {
        *why = "invite damaged: too long";
        return WZP_ERR_MALFORMED;
    }
    if (n < 0) {
        /* A foreign character is worth naming; a wrong length or padding is damage the
         * checksum would have caught, so it is reported as such. */
        for (size_t i = 0; i < len; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ234567- \t\r\n",
                        body[i]) ||
                !body[i]) {
                *why = "invite damaged: a character invites never contain (0, 1, 8, 9 or "
                       "punctuation)";
                return WZP_ERR_MALFORMED;
            }
        *why = "invite damaged: checksum mismatch";
        return WZP_ERR_MALFORMED;
    }
    uint8_t ck[CK_LEN];
    if (n < 1 + WZP_FINGERPRINT_LEN + CK_LEN) {
        *why = "invite damaged: cut short";
        return WZP_ERR_MALFORMED;
    }
    if (checksum(bin, (size_t)n - CK_LEN, ck) != 0 || memcmp(ck, bin + n - CK_LEN, CK_LEN) != 0) {
        *why = "invite damaged: checksum mismatch";
        return WZP_ERR_MALFORMED;
    }
    /* Past the checksum a field can only be wrong if the invite was made wrong on purpose or
     * by a buggy encoder: still checked like any untrusted input. */
    wzp_invite inv;
    memset(&inv, 0, sizeof(inv));
    wzp_rd r = wzp_rd_init(bin, (size_t)n - CK_LEN);
    uint8_t flags = wzp_rd_u8(&r);
    wzp_rd_copy(&r, inv.fp, WZP_FINGERPRINT_LEN);
    bool ok = !r.err && !(flags & ~(F_ALIAS | F_RELAY | F_MORE)) &&
              (!(flags & F_MORE) || (flags & F_RELAY));
    if (ok && (flags & F_ALIAS))
        ok = read_text(&r, inv.alias, WZP_SIG_ALIAS_MAX) && wzp_sig_alias_valid(inv.alias);
    if (ok && (flags & F_RELAY)) {
        ok = read_text(&r, inv.relay, WZP_RELAY_TEXT_MAX) && wzp_relay_text_valid(inv.relay);
        wzp_rd_copy(&r, inv.relay_pin, WZP_FINGERPRINT_LEN);
        ok = ok && !r.err;
    }
    if (ok && (flags & F_MORE)) {
        inv.n_more = wzp_rd_u8(&r);
        ok = !r.err && inv.n_more >= 1 && inv.n_more <= WZP_INVITE_MORE_RELAYS;
        for (unsigned i = 0; ok && i < inv.n_more; i++) {
            ok = read_text(&r, inv.more_relay[i], WZP_RELAY_TEXT_MAX) &&
                 wzp_relay_text_valid(inv.more_relay[i]);
            wzp_rd_copy(&r, inv.more_pin[i], WZP_FINGERPRINT_LEN);
            ok = ok && !r.err;
        }
    }
    if (!ok || wzp_rd_left(&r) != 0) {
        *why = "invite damaged: bad field";
        return WZP_ERR_MALFORMED;
    }
    *out = inv;
    *why = "";
    return 0;
}
