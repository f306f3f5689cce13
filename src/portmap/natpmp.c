#include "portmap/natpmp.h"

#include <poll.h>
#include <string.h>
#include <sys/time.h>

#include <natpmp.h>

#include <wzp/wzp.h>

#include "net/clock.h"

uint32_t wzp_natpmp_gateway(void)
{
    natpmp_t p;
    if (initnatpmp(&p, 0, 0) != 0)
        return 0;
    uint32_t gw = p.gateway;
    closenatpmp(&p);
    return gw;
}

/* Waits for the answer of `type` to the request just sent, at most timeout_ms. */
static int wait_answer(natpmp_t *p, int type, int timeout_ms, natpmpresp_t *r)
{
    wzp_ts end = wzp_now() + WZP_MS(timeout_ms);
    for (;;) {
        int rv = readnatpmpresponseorretry(p, r);
        if (rv == 0)
            return r->type == type ? 0 : WZP_ERR_PROTOCOL;
        if (rv != NATPMP_TRYAGAIN)
            return WZP_ERR_PROTOCOL; /* an error code from the gateway, or a socket error */
        wzp_ts now = wzp_now();
        if (now >= end)
            return WZP_ERR_TIMEOUT;
        int wait = (int)((end - now) / WZP_MS(1)) + 1;
        struct timeval tv;
        if (getnatpmprequesttimeout(p, &tv) == 0) {
            long long t = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
            if (t < wait)
                wait = t < 0 ? 0 : (int)t;
        }
        struct pollfd pfd = {.fd = p->s, .events = POLLIN};
        poll(&pfd, 1, wait);
    }
}

static int open_gw(natpmp_t *p, uint32_t gateway)
{
    if (gateway == 0)
        return WZP_ERR_UNREACHABLE;
    return initnatpmp(p, 1, gateway) == 0 ? 0 : WZP_ERR_IO;
}

int wzp_natpmp_public(uint32_t gateway, int timeout_ms, wzp_addr *out)
{
    natpmp_t p;
    int rc = open_gw(&p, gateway);
    if (rc < 0)
        return rc;
    natpmpresp_t r;
    rc = sendpublicaddressrequest(&p) < 0
             ? WZP_ERR_IO
             : wait_answer(&p, NATPMP_RESPTYPE_PUBLICADDRESS, timeout_ms, &r);
    if (rc == 0)
        wzp_addr_from_ip(out, AF_INET, (const uint8_t *)&r.pnu.publicaddress.addr, 0);
    closenatpmp(&p);
    return rc;
}

int wzp_natpmp_map(uint32_t gateway, uint16_t port, uint32_t lifetime_s, int timeout_ms,
                   wzp_addr *external, uint32_t *granted_s)
{
    wzp_addr pub;
    int rc = wzp_natpmp_public(gateway, timeout_ms, &pub);
    if (rc < 0)
        return rc;
    natpmp_t p;
    if ((rc = open_gw(&p, gateway)) < 0)
        return rc;
    natpmpresp_t r;
    rc = sendnewportmappingrequest(&p, NATPMP_PROTOCOL_UDP, port, port, lifetime_s) < 0
             ? WZP_ERR_IO
             : wait_answer(&p, NATPMP_RESPTYPE_UDPPORTMAPPING, timeout_ms, &r);
    closenatpmp(&p);
    if (rc < 0)
        return rc;
    if (r.pnu.newportmapping.privateport != port || r.pnu.newportmapping.mappedpublicport == 0)
        return WZP_ERR_PROTOCOL;
    *external = pub;
    wzp_addr_set_port(external, r.pnu.newportmapping.mappedpublicport);
    *granted_s = r.pnu.newportmapping.lifetime;
    return 0;
}

int wzp_natpmp_unmap(uint32_t gateway, uint16_t port, int timeout_ms)
{
    natpmp_t p;
    int rc = open_gw(&p, gateway);
    if (rc < 0)
        return rc;
    natpmpresp_t r;
    /* RFC 6886 3.4: lifetime 0 and suggested external port 0 delete the mapping. */
    rc = sendnewportmappingrequest(&p, NATPMP_PROTOCOL_UDP, port, 0, 0) < 0
             ? WZP_ERR_IO
             : wait_answer(&p, NATPMP_RESPTYPE_UDPPORTMAPPING, timeout_ms, &r);
    closenatpmp(&p);
    return rc;
}
