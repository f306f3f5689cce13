#include "net/ifaddrs.h"

#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/log.h"

/* IFA_F_* from <linux/if_addr.h>, restated to keep this file free of Linux headers. */
#define IFA_TEMPORARY  0x01u
#define IFA_DADFAILED  0x08u
#define IFA_DEPRECATED 0x20u
#define IFA_TENTATIVE  0x40u

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Line format: 32 hex digits of address, then ifindex, prefix length, scope, flags (hex), name. */
int wzp_ifaddrs_parse_inet6_line(const char *line, uint8_t ip[16], unsigned *flags)
{
    for (int i = 0; i < 16; i++) {
        int hi = hexval(line[2 * i]), lo = hi < 0 ? -1 : hexval(line[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return WZP_ERR_MALFORMED;
        ip[i] = (uint8_t)(hi << 4 | lo);
    }
    unsigned idx, plen, scope, fl;
    if (sscanf(line + 32, " %x %x %x %x", &idx, &plen, &scope, &fl) != 4)
        return WZP_ERR_MALFORMED;
    *flags = fl;
    return 0;
}

/* True if /proc says this IPv6 address should not be offered. Unknown addresses are kept. */
static bool v6_unusable(FILE *proc, const struct in6_addr *a, unsigned flags)
{
    char line[256];
    if (!proc)
        return false;
    rewind(proc);
    while (fgets(line, sizeof(line), proc)) {
        uint8_t ip[16];
        unsigned fl;
        if (wzp_ifaddrs_parse_inet6_line(line, ip, &fl) < 0 || memcmp(ip, a, 16) != 0)
            continue;
        if (fl & (IFA_DEPRECATED | IFA_TENTATIVE | IFA_DADFAILED))
            return true;
        return (fl & IFA_TEMPORARY) && !(flags & WZP_IFADDR_TEMPORARY);
    }
    return false;
}

int wzp_ifaddrs_get(wzp_ifaddr *out, size_t cap, unsigned flags)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0) {
        WZP_WARN("getifaddrs: %s", strerror(errno));
        return WZP_ERR_IO;
    }
    FILE *proc = fopen("/proc/net/if_inet6", "re");
    size_t n = 0;
    for (struct ifaddrs *ifa = list; ifa && n < cap; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || !(ifa->ifa_flags & IFF_UP))
            continue;
        int fam = ifa->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        if ((ifa->ifa_flags & IFF_LOOPBACK) && !(flags & WZP_IFADDR_LOOPBACK))
            continue;
        wzp_ifaddr cand;
        memset(&cand, 0, sizeof(cand));
        socklen_t len = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (wzp_addr_from_sockaddr(&cand.addr, ifa->ifa_addr, len) < 0)
            continue;
        wzp_addr_set_port(&cand.addr, 0);
        if (fam == AF_INET6)
            cand.addr.u.v6.sin6_scope_id = 0;
        if (wzp_addr_is_any(&cand.addr) || (fam == AF_INET6 && wzp_addr_is_link_local(&cand.addr)))
            continue;
        if (wzp_addr_is_loopback(&cand.addr) && !(flags & WZP_IFADDR_LOOPBACK))
            continue;
        if (fam == AF_INET6 && v6_unusable(proc, &cand.addr.u.v6.sin6_addr, flags))
            continue;
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = wzp_addr_equal(&out[i].addr, &cand.addr);
        if (dup)
            continue;
        snprintf(cand.ifname, sizeof(cand.ifname), "%s", ifa->ifa_name);
        /* An alias label ("eth0:1") names no device of its own: index its base device. */
        char base[IF_NAMESIZE];
        snprintf(base, sizeof(base), "%.*s", (int)strcspn(cand.ifname, ":"), cand.ifname);
        cand.ifindex = if_nametoindex(base);
        out[n++] = cand;
    }
    if (proc)
        fclose(proc);
    freeifaddrs(list);
    return (int)n;
}
