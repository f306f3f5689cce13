/* rtnetlink address-change notifications; see netmon.h. */
#include "net/netmon.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <wzp/wzp.h>

int wzp_netmon_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return WZP_ERR_IO;
    struct sockaddr_nl sa;
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    /* Routes too: a new default route (another uplink) changes our public address while
     * every interface address stays. */
    sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return WZP_ERR_IO;
    }
    return fd;
}

bool wzp_netmon_drain(int fd)
{
    bool changed = false;
    char buf[8192];
    /* Bounded: a storm of events must not starve the loop; level-triggered
     * polling brings us back for the rest. */
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            changed |= wzp_netmon_relevant((const uint8_t *)buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ENOBUFS) /* events were lost: assume a change */
            changed = true;
        break;
    }
    return changed;
}

bool wzp_netmon_relevant(const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (len - off >= sizeof(struct nlmsghdr)) {
        struct nlmsghdr h;
        memcpy(&h, buf + off, sizeof(h)); /* buf may be unaligned (fuzzers) */
        if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len - off)
            return true; /* truncated or garbled: re-scan rather than miss a change */
        switch (h.nlmsg_type) {
        case RTM_NEWADDR:
        case RTM_DELADDR:
            return true;
        case RTM_NEWROUTE:
        case RTM_DELROUTE: {
            struct rtmsg r;
            if (h.nlmsg_len < NLMSG_LENGTH(sizeof(r)))
                return true;
            memcpy(&r, buf + off + NLMSG_HDRLEN, sizeof(r));
            if (r.rtm_dst_len == 0 && r.rtm_table == RT_TABLE_MAIN)
                return true; /* a default route: maybe another uplink */
            break;
        }
        case NLMSG_OVERRUN:
            return true;
        default:
            break;
        }
        size_t step = NLMSG_ALIGN(h.nlmsg_len);
        if (step > len - off)
            break;
        off += step;
    }
    return false;
}

void wzp_netmon_close(int fd)
{
    if (fd >= 0)
        close(fd);
}
