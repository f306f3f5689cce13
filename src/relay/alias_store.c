#include "relay/alias_store.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <wzp/wzp.h>

static const char HEX[] = "0123456789abcdef";

int wzp_alias_store_format(const wzp_alias_entry *e, char *buf, size_t cap)
{
    if (!wzp_sig_alias_valid(e->alias))
        return WZP_ERR_INVALID;
    char hex[2 * WZP_SIG_FP_LEN + 1];
    for (size_t i = 0; i < WZP_SIG_FP_LEN; i++) {
        hex[2 * i] = HEX[e->fp[i] >> 4];
        hex[2 * i + 1] = HEX[e->fp[i] & 15];
    }
    hex[sizeof(hex) - 1] = '\0';
    int n = snprintf(buf, cap, "%s %s %llu\n", e->alias, hex, (unsigned long long)e->expires);
    if (n < 0 || (size_t)n >= cap)
        return WZP_ERR_TOO_BIG;
    return n;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* One entry line, [p, p + n) without its LF. */
static bool parse_line(const uint8_t *p, size_t n, wzp_alias_entry *e)
{
    memset(e, 0, sizeof(*e));
    /* alias */
    size_t i = 0;
    while (i < n && p[i] != ' ')
        i++;
    if (i == 0 || i > WZP_SIG_ALIAS_MAX || i == n)
        return false;
    memcpy(e->alias, p, i);
    e->alias[i] = '\0';
    if (!wzp_sig_alias_valid(e->alias))
        return false;
    p += i + 1;
    n -= i + 1;
    /* fingerprint */
    if (n < 2 * WZP_SIG_FP_LEN + 1 || p[2 * WZP_SIG_FP_LEN] != ' ')
        return false;
    for (size_t k = 0; k < WZP_SIG_FP_LEN; k++) {
        int hi = hexval(p[2 * k]), lo = hexval(p[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return false;
        e->fp[k] = (uint8_t)(hi << 4 | lo);
    }
    p += 2 * WZP_SIG_FP_LEN + 1;
    n -= 2 * WZP_SIG_FP_LEN + 1;
    /* expiry: 1..20 digits, no overflow */
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (p[k] < '0' || p[k] > '9')
            return false;
        uint64_t d = (uint64_t)(p[k] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    e->expires = v;
    return true;
}

int wzp_alias_store_parse(const uint8_t *data, size_t len,
                          int (*entry)(void *user, const wzp_alias_entry *e), void *user,
                          size_t *line)
{
    size_t hl = strlen(WZP_ALIAS_STORE_HEADER), lineno = 1;
    if (line)
        *line = 1;
    if (len < hl || memcmp(data, WZP_ALIAS_STORE_HEADER, hl) != 0)
        return WZP_ERR_MALFORMED;
    size_t off = hl;
    while (off < len) {
        lineno++;
        if (line)
            *line = lineno;
        const uint8_t *p = data + off;
        const uint8_t *nl = memchr(p, '\n', len - off);
        if (!nl)
            return WZP_ERR_MALFORMED; /* cut short */
        size_t n = (size_t)(nl - p);
        off += n + 1;
        if (n == 0 || p[0] == '#')
            continue;
        wzp_alias_entry e;
        if (!parse_line(p, n, &e))
            return WZP_ERR_MALFORMED;
        int rv = entry(user, &e);
        if (rv < 0)
            return rv;
    }
    return 0;
}
