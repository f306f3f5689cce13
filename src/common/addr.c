#include "common/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/hash.h"

void wzp_addr_clear(wzp_addr *a)
{
    memset(a, 0, sizeof(*a));
}

int wzp_addr_from_sockaddr(wzp_addr *a, const struct sockaddr *sa, socklen_t len)
{
    wzp_addr_clear(a);
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(&a->u.v4, sa, sizeof(struct sockaddr_in));
        a->len = sizeof(struct sockaddr_in);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        memcpy(&a->u.v6, sa, sizeof(struct sockaddr_in6));
        a->len = sizeof(struct sockaddr_in6);
        return 0;
    }
    return WZP_ERR_INVALID;
}

int wzp_addr_from_ip(wzp_addr *a, int family, const uint8_t *ip, uint16_t port)
{
    wzp_addr_clear(a);
    if (family == AF_INET) {
        a->u.v4.sin_family = AF_INET;
        memcpy(&a->u.v4.sin_addr, ip, 4);
        a->u.v4.sin_port = htons(port);
        a->len = sizeof(struct sockaddr_in);
        return 0;
    }
    if (family == AF_INET6) {
        a->u.v6.sin6_family = AF_INET6;
        memcpy(&a->u.v6.sin6_addr, ip, 16);
        a->u.v6.sin6_port = htons(port);
        a->len = sizeof(struct sockaddr_in6);
        return 0;
    }
    return WZP_ERR_INVALID;
}

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    if (*s < '0' || *s > '9')
        return WZP_ERR_INVALID;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v > 65535)
        return WZP_ERR_INVALID;
    *port = (uint16_t)v;
    return 0;
}

int wzp_addr_parse(wzp_addr *a, const char *text, bool allow_no_port)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_text = NULL;
    uint16_t port = 0;
    size_t hlen;
    uint8_t ip[16];

    wzp_addr_clear(a);
    if (!text)
        return WZP_ERR_INVALID;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return WZP_ERR_INVALID;
        hlen = (size_t)(close - text - 1);
        if (close[1] == ':')
            port_text = close + 2;
        else if (close[1] != '\0')
            return WZP_ERR_INVALID;
        text++;
    } else {
        const char *colon = strchr(text, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL; /* bare IPv6 without brackets: no port */
        hlen = colon ? (size_t)(colon - text) : strlen(text);
        if (colon)
            port_text = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return WZP_ERR_INVALID;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (port_text) {
        if (parse_port(port_text, &port) < 0)
            return WZP_ERR_INVALID;
    } else if (!allow_no_port) {
        return WZP_ERR_INVALID;
    }
    if (inet_pton(AF_INET, host, ip) == 1)
        return wzp_addr_from_ip(a, AF_INET, ip, port);
    if (inet_pton(AF_INET6, host, ip) == 1)
        return wzp_addr_from_ip(a, AF_INET6, ip, port);
    return WZP_ERR_INVALID;
}

const char *wzp_addr_format(const wzp_addr *a, char *buf, size_t buflen)
{
    char host[INET6_ADDRSTRLEN];
    if (!buflen)
        return buf;
    switch (wzp_addr_family(a)) {
    case AF_INET:
        inet_ntop(AF_INET, &a->u.v4.sin_addr, host, sizeof(host));
        snprintf(buf, buflen, "%s:%u", host, wzp_addr_port(a));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &a->u.v6.sin6_addr, host, sizeof(host));
        snprintf(buf, buflen, "[%s]:%u", host, wzp_addr_port(a));
        break;
    default:
        snprintf(buf, buflen, "(none)");
    }
    return buf;
}

int wzp_addr_family(const wzp_addr *a)
{
    if (a->len == sizeof(struct sockaddr_in) && a->u.sa.sa_family == AF_INET)
        return AF_INET;
    if (a->len == sizeof(struct sockaddr_in6) && a->u.sa.sa_family == AF_INET6)
        return AF_INET6;
    return AF_UNSPEC;
}

uint16_t wzp_addr_port(const wzp_addr *a)
{
    switch (wzp_addr_family(a)) {
    case AF_INET:
        return ntohs(a->u.v4.sin_port);
    case AF_INET6:
        return ntohs(a->u.v6.sin6_port);
    default:
        return 0;
    }
}

void wzp_addr_set_port(wzp_addr *a, uint16_t port)
{
    switch (wzp_addr_family(a)) {
    case AF_INET:
        a->u.v4.sin_port = htons(port);
        break;
    case AF_INET6:
        a->u.v6.sin6_port = htons(port);
        break;
    default:
        break;
    }
}

const uint8_t *wzp_addr_ip(const wzp_addr *a, size_t *len)
{
    switch (wzp_addr_family(a)) {
    case AF_INET:
        *len = 4;
        return (const uint8_t *)&a->u.v4.sin_addr;
    case AF_INET6:
        *len = 16;
        return (const uint8_t *)&a->u.v6.sin6_addr;
    default:
        *len = 0;
        return NULL;
    }
}

bool wzp_addr_ip_equal(const wzp_addr *a, const wzp_addr *b)
{
    size_t la, lb;
    const uint8_t *ia = wzp_addr_ip(a, &la), *ib = wzp_addr_ip(b, &lb);
    return la == lb && la && memcmp(ia, ib, la) == 0;
}

bool wzp_addr_equal(const wzp_addr *a, const wzp_addr *b)
{
    return wzp_addr_ip_equal(a, b) && wzp_addr_port(a) == wzp_addr_port(b);
}

bool wzp_addr_is_loopback(const wzp_addr *a)
{
    size_t n;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    if (n == 4)
        return ip[0] == 127;
    if (n == 16)
        return IN6_IS_ADDR_LOOPBACK(&a->u.v6.sin6_addr);
    return false;
}

bool wzp_addr_is_link_local(const wzp_addr *a)
{
    size_t n;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    if (n == 4)
        return ip[0] == 169 && ip[1] == 254;
    if (n == 16)
        return IN6_IS_ADDR_LINKLOCAL(&a->u.v6.sin6_addr);
    return false;
}

bool wzp_addr_is_private(const wzp_addr *a)
{
    size_t n;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    if (n == 4)
        return ip[0] == 10 || (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
               (ip[0] == 192 && ip[1] == 168) || (ip[0] == 100 && (ip[1] & 0xc0) == 64);
    if (n == 16)
        return (ip[0] & 0xfe) == 0xfc;
    return false;
}

bool wzp_addr_is_any(const wzp_addr *a)
{
    size_t n;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    for (size_t i = 0; i < n; i++)
        if (ip[i])
            return false;
    return n != 0;
}

void wzp_addr_unmap_v4(wzp_addr *a)
{
    if (wzp_addr_family(a) == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a->u.v6.sin6_addr)) {
        uint8_t ip[4];
        uint16_t port = wzp_addr_port(a);
        memcpy(ip, (const uint8_t *)&a->u.v6.sin6_addr + 12, 4);
        wzp_addr_from_ip(a, AF_INET, ip, port);
    }
}

uint64_t wzp_addr_hash(const wzp_addr *a, uint64_t seed)
{
    size_t n;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    uint8_t key[18];
    uint16_t port = wzp_addr_port(a);
    if (n)
        memcpy(key, ip, n);
    key[n] = (uint8_t)(port >> 8);
    key[n + 1] = (uint8_t)port;
    return wzp_hash_bytes(key, n + 2, seed);
}
