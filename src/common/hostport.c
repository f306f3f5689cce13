/* Host[:port] text and happy-eyeballs address order: see hostport.h. */
#include "common/hostport.h"

#include <arpa/inet.h>
#include <string.h>

#include <wzp/wzp.h>

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_';
}

static bool valid_name(const char *s, size_t n)
{
    if (n && s[n - 1] == '.')
        n--; /* the root's dot, "relay.example.org." */
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (!name_char(s[i]) || ++label > 63) {
            return false;
        }
    }
    return label > 0;
}

/* Decimal 1..65535, nothing else (no sign, blanks or leading '+'). */
static bool parse_port(const char *s, uint16_t *out)
{
    if (!*s || strlen(s) > 5)
        return false;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

int wzp_hostport_parse(wzp_hostport *out, const char *text, uint16_t default_port)
{
    if (!out || !text)
        return WZP_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    out->port = default_port;
    size_t len = strlen(text);
    const char *host = text, *port = NULL;
    size_t host_len = len;
    bool bracketed = false;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return WZP_ERR_INVALID;
        host = text + 1;
        host_len = (size_t)(close - host);
        bracketed = true;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            return WZP_ERR_INVALID;
    } else {
        const char *colon = strchr(text, ':');
        /* Two colons or more without brackets: a bare IPv6 address, no port. */
        if (colon && !strchr(colon + 1, ':')) {
            host_len = (size_t)(colon - text);
            port = colon + 1;
        }
    }
    if (host_len == 0 || host_len >= sizeof(out->host))
        return WZP_ERR_INVALID;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    if (port) {
        if (!parse_port(port, &out->port))
            return WZP_ERR_INVALID;
        out->has_port = true;
    }
    uint8_t ip[16];
    if (inet_pton(AF_INET6, out->host, ip) == 1) {
        wzp_addr_from_ip(&out->addr, AF_INET6, ip, out->port);
        out->numeric = true;
    } else if (bracketed) {
        return WZP_ERR_INVALID; /* brackets hold IPv6 literals only */
    } else if (inet_pton(AF_INET, out->host, ip) == 1) {
        wzp_addr_from_ip(&out->addr, AF_INET, ip, out->port);
        out->numeric = true;
    } else if (strchr(out->host, ':') || !valid_name(out->host, host_len)) {
        return WZP_ERR_INVALID;
    }
    return 0;
}

size_t wzp_addr_order_eyeballs(wzp_addr *addrs, size_t n, bool have_v4, bool have_v6)
{
    enum { MAX = 64 };
    wzp_addr v6[MAX], v4[MAX];
    size_t n6 = 0, n4 = 0;
    for (size_t i = 0; i < n; i++) {
        wzp_addr a = addrs[i];
        wzp_addr_unmap_v4(&a);
        int fam = wzp_addr_family(&a);
        wzp_addr *list = fam == AF_INET6 ? v6 : v4;
        size_t *cnt = fam == AF_INET6 ? &n6 : &n4;
        if ((fam == AF_INET6 && !have_v6) || (fam == AF_INET && !have_v4) ||
            (fam != AF_INET && fam != AF_INET6) || *cnt >= MAX)
            continue;
        bool dup = false;
        for (size_t k = 0; k < *cnt && !dup; k++)
            dup = wzp_addr_equal(&list[k], &a);
        if (!dup)
            list[(*cnt)++] = a;
    }
    size_t k = 0, i6 = 0, i4 = 0;
    while ((i6 < n6 || i4 < n4) && k < n) {
        if (i6 < n6)
            addrs[k++] = v6[i6++];
        if (i4 < n4 && k < n)
            addrs[k++] = v4[i4++];
    }
    return k;
}
