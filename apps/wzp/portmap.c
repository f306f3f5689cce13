#include "portmap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <natpmp.h>

#define PCP_PORT 5351

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* NAT-PMP public address request; libnatpmp retransmits, we bound the wait. */
static void probe_natpmp(portmap_result *out, natpmp_t *p, int timeout_ms)
{
    if (sendpublicaddressrequest(p) < 0)
        return;
    long long end = now_ms() + timeout_ms;
    for (;;) {
        natpmpresp_t r;
        int rv = readnatpmpresponseorretry(p, &r);
        if (rv == 0 && r.type == NATPMP_RESPTYPE_PUBLICADDRESS) {
            out->natpmp = true;
            inet_ntop(AF_INET, &r.pnu.publicaddress.addr, out->natpmp_public,
                      sizeof(out->natpmp_public));
            return;
        }
        if (rv != NATPMP_TRYAGAIN)
            return; /* an error answer (no support) or a socket error: not answering */
        long long left = end - now_ms();
        if (left <= 0)
            return;
        struct pollfd pfd = {.fd = p->s, .events = POLLIN};
        struct timeval tv;
        int wait = (int)left;
        if (getnatpmprequesttimeout(p, &tv) == 0) {
            long long t = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
            if (t < wait)
                wait = t < 0 ? 0 : (int)t;
        }
        poll(&pfd, 1, wait);
    }
}

/*
 * PCP ANNOUNCE (RFC 6887 14.1): a 24-byte header, opcode 0. Written by hand:
 * Debian has no PCP client library. Any PCP (version 2) answer counts; a
 * NAT-PMP-only gateway answers version 0 "unsupported version".
 */
static void probe_pcp(portmap_result *out, in_addr_t gateway, int timeout_ms)
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
        long long end = now_ms() + timeout_ms;
        /* Two sends a third of the timeout apart: one lost datagram is no verdict. */
        for (int tries = 0; tries < 2 && !out->pcp; tries++) {
            if (send(fd, req, sizeof(req), 0) < 0)
                break;
            long long until = tries == 0 ? end - timeout_ms * 2 / 3 : end;
            for (long long left; !out->pcp && (left = until - now_ms()) > 0;) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                if (poll(&pfd, 1, (int)left) <= 0)
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

static void probe_upnp(portmap_result *out, int timeout_ms)
{
    int err = 0;
    struct UPNPDev *devs = upnpDiscover(timeout_ms, NULL, NULL, UPNP_LOCAL_PORT_ANY, 0, 2, &err);
    if (!devs)
        return;
    struct UPNPUrls urls;
    struct IGDdatas data;
    char lan[64];
    int rv = UPNP_GetValidIGD(devs, &urls, &data, lan, sizeof(lan));
    if (rv == 1 || rv == 2) {
        out->upnp = true;
        snprintf(out->upnp_url, sizeof(out->upnp_url), "%s",
                 urls.controlURL ? urls.controlURL : "");
        char ext[40] = "";
        if (UPNP_GetExternalIPAddress(urls.controlURL, data.first.servicetype, ext) == 0)
            snprintf(out->upnp_public, sizeof(out->upnp_public), "%s", ext);
    }
    if (rv)
        FreeUPNPUrls(&urls);
    freeUPNPDevlist(devs);
}

void portmap_probe(portmap_result *out, int timeout_ms)
{
    memset(out, 0, sizeof(*out));
    natpmp_t p;
    if (initnatpmp(&p, 0, 0) == 0) {
        struct in_addr gw = {.s_addr = p.gateway};
        inet_ntop(AF_INET, &gw, out->gateway, sizeof(out->gateway));
        probe_pcp(out, p.gateway, timeout_ms);
        probe_natpmp(out, &p, timeout_ms);
        closenatpmp(&p);
    }
    probe_upnp(out, timeout_ms);
}
