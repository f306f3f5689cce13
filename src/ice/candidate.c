#include "ice/candidate.h"

#include <string.h>
#include <sys/socket.h>

/* Type preference (top byte). Host > mapped > srflx > prflx. */
static uint32_t type_pref(wzp_cand_type t)
{
    switch (t) {
    case WZP_CAND_HOST:
        return 126;
    case WZP_CAND_MAPPED:
        return 110; /* unlike srflx it takes unsolicited packets: worth trying first */
    case WZP_CAND_SRFLX:
        return 100;
    case WZP_CAND_PRFLX:
        return 90;
    }
    return 0;
}

/*
 * Local preference within a type (middle 16 bits). LAN (private) host
 * addresses first because a LAN path is short and free; IPv6 gets a small
 * bonus (no NAT in the way more often); link-local and loopback last (link
 * local needs a scope the peer cannot know; loopback only helps same-host).
 */
static uint32_t local_pref(wzp_cand_type t, const wzp_addr *a)
{
    uint32_t pref = 32768;
    if (wzp_addr_is_loopback(a) || wzp_addr_is_link_local(a))
        return 1024;
    if (t == WZP_CAND_HOST && wzp_addr_is_private(a))
        pref += 16384;
    if (wzp_addr_family(a) == AF_INET6)
        pref += 4096;
    return pref;
}

uint32_t wzp_cand_priority(wzp_cand_type type, const wzp_addr *addr)
{
    return (type_pref(type) << 24) | (local_pref(type, addr) << 8) | 255;
}

int wzp_cand_sock_for(const wzp_addr *addr)
{
    switch (wzp_addr_family(addr)) {
    case AF_INET:
        return WZP_ICE_SOCK_V4;
    case AF_INET6:
        return WZP_ICE_SOCK_V6;
    default:
        return -1;
    }
}

bool wzp_cand_addr_usable(const wzp_addr *addr)
{
    int f = wzp_addr_family(addr);
    if (f != AF_INET && f != AF_INET6)
        return false;
    if (wzp_addr_port(addr) == 0 || wzp_addr_is_any(addr))
        return false;
    size_t len;
    const uint8_t *ip = wzp_addr_ip(addr, &len);
    if (f == AF_INET && (ip[0] >= 224 || ip[0] == 0)) /* multicast, reserved, broadcast */
        return false;
    if (f == AF_INET6 && ip[0] == 0xff) /* multicast */
        return false;
    if (f == AF_INET6 && ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80)
        return false; /* link-local: needs an interface scope the peer cannot give us */
    if (f == AF_INET6) {
        /* IPv4-mapped addresses belong on the IPv4 socket: refuse them on the IPv6-only one. */
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(ip, mapped, 12) == 0)
            return false;
    }
    return true;
}

bool wzp_cand_same(const wzp_candidate *a, const wzp_candidate *b)
{
    return wzp_addr_equal(&a->addr, &b->addr);
}

const char *wzp_cand_type_name(wzp_cand_type type)
{
    switch (type) {
    case WZP_CAND_HOST:
        return "host";
    case WZP_CAND_SRFLX:
        return "srflx";
    case WZP_CAND_PRFLX:
        return "prflx";
    case WZP_CAND_MAPPED:
        return "mapped";
    }
    return "?";
}
