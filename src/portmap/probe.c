#include "portmap/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/clock.h"
#include "portmap/natpmp.h"
#include "portmap/upnp.h"

#define PCP_PORT 5351

/*
 * PCP ANNOUNCE (RFC 6887 14.1): a 24-byte header, opcode 0. Written by hand:
 * Debian has no PCP client library. Any PCP (version 2) answer counts; a
 * NAT-PMP-only gateway answers version 0 "unsupported version".
 */
static void probe_pcp(wzp_portmap_report *out, uint32_t gateway, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_in gw = {.sin_family = AF_INET, .sin_port = htons(PCP_PORT)};
    gw.sin_addr.s_addr = gateway;
    if (connect(fd, (struct sockaddr *)&gw, sizeof(gw)) == 0) {
        struct sockaddr_in me;
        socklen_t len = sizeof(me);
        uint8_t req[24] = {2, 0}, ans[1100];
        if (getsockname(fd, (struct sockaddr *)&me, &len) == 0) {
            req[18] = req[19] = 0xff; /* client address as IPv4-mapped IPv6 */
            memcpy(req + 20, &me.sin_addr, 4);
        }
        wzp_ts end = wzp_now() + WZP_MS(timeout_ms);
        /* Two sends a third of the timeout apart: one lost datagram is no verdict. */
        for (int tries = 0; tries < 2 && !out->pcp; tries++) {
            if (send(fd, req, sizeof(req), 0) < 0)
                break;
            wzp_ts until = tries == 0 ? end - WZP_MS(timeout_ms) * 2 / 3 : end;
            for (wzp_ts now; !out->pcp && (now = wzp_now()) < until;) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                if (poll(&pfd, 1, (int)((until - now) / WZP_MS(1)) + 1) <= 0)
                    break;
                ssize_t n = recv(fd, ans, sizeof(ans), 0);
                if (n >= 4 && ans[0] == 2 && (ans[1] & 0x80))
                    out->pcp = true;
                else if (n < 0 && errno == ECONNREFUSED)
                    break; /* ICMP port unreachable: nothing listens */
            }
        }
    }
    close(fd);
}

static void probe_upnp(wzp_portmap_report *out, int timeout_ms)
{
    wzp_upnp *u;
    if (wzp_upnp_discover(&u, timeout_ms) < 0)
        return;
    out->upnp = true;
    snprintf(out->upnp_url, sizeof(out->upnp_url), "%s", wzp_upnp_control_url(u));
    wzp_addr ext;
    if (wzp_upnp_external(u, &ext) == 0)
        inet_ntop(AF_INET, wzp_addr_ip(&ext, &(size_t){0}), out->upnp_public,
                  sizeof(out->upnp_public));
    wzp_upnp_free(u);
}

void wzp_portmap_probe(wzp_portmap_report *out, int timeout_ms)
{
    memset(out, 0, sizeof(*out));
    uint32_t gw = wzp_natpmp_gateway();
    if (gw) {
        inet_ntop(AF_INET, &gw, out->gateway, sizeof(out->gateway));
        probe_pcp(out, gw, timeout_ms);
        wzp_addr pub;
        if (wzp_natpmp_public(gw, timeout_ms, &pub) == 0) {
            out->natpmp = true;
            inet_ntop(AF_INET, wzp_addr_ip(&pub, &(size_t){0}), out->natpmp_public,
                      sizeof(out->natpmp_public));
        }
    }
    probe_upnp(out, timeout_ms);
}
