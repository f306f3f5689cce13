#include "portmap/upnp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include <wzp/wzp.h>

#define UPNP_DESC "wzp call"
/* UPnP error 725 OnlyPermanentLeasesSupported; 718 ConflictInMappingEntry. */
#define UPNP_ONLY_PERMANENT 725

struct wzp_upnp {
    struct UPNPUrls urls;
    struct IGDdatas data;
    char lan[64];
};

int wzp_upnp_discover(wzp_upnp **out, int timeout_ms)
{
    int err = 0;
    struct UPNPDev *devs = upnpDiscover(timeout_ms, NULL, NULL, UPNP_LOCAL_PORT_ANY, 0, 2, &err);
    if (!devs)
        return WZP_ERR_NOT_FOUND;
    wzp_upnp *u = calloc(1, sizeof(*u));
    if (!u) {
        freeUPNPDevlist(devs);
        return WZP_ERR_NOMEM;
    }
    int rv = UPNP_GetValidIGD(devs, &u->urls, &u->data, u->lan, sizeof(u->lan));
    freeUPNPDevlist(devs);
    /* 1: a connected IGD; 2: an IGD that says it is not connected (the lab's, behind a test
     * range, can say so and still map). 3: some other UPnP device: no use. */
    if ((rv != 1 && rv != 2) || !u->urls.controlURL) {
        if (rv)
            FreeUPNPUrls(&u->urls);
        free(u);
        return WZP_ERR_NOT_FOUND;
    }
    *out = u;
    return 0;
}

void wzp_upnp_free(wzp_upnp *u)
{
    if (!u)
        return;
    FreeUPNPUrls(&u->urls);
    free(u);
}

const char *wzp_upnp_control_url(const wzp_upnp *u)
{
    return u->urls.controlURL ? u->urls.controlURL : "";
}

int wzp_upnp_external(wzp_upnp *u, wzp_addr *out)
{
    char ext[40] = "";
    if (UPNP_GetExternalIPAddress(u->urls.controlURL, u->data.first.servicetype, ext) != 0)
        return WZP_ERR_PROTOCOL;
    if (wzp_addr_parse(out, ext, true) < 0 || wzp_addr_family(out) != AF_INET)
        return WZP_ERR_PROTOCOL;
    return 0;
}

int wzp_upnp_map(wzp_upnp *u, uint16_t port, uint32_t lease_s, wzp_addr *external,
                 uint32_t *granted_s)
{
    wzp_addr ext;
    if (wzp_upnp_external(u, &ext) < 0)
        return WZP_ERR_PROTOCOL;
    char in[8], want[8], lease[16], got[8] = "";
    snprintf(in, sizeof(in), "%u", port);
    snprintf(want, sizeof(want), "%u", port);
    snprintf(lease, sizeof(lease), "%u", lease_s);
    const char *ctl = u->urls.controlURL, *st = u->data.first.servicetype;
    int rv = UPNP_AddPortMapping(ctl, st, want, in, u->lan, UPNP_DESC, "UDP", NULL, lease);
    if (rv == UPNP_ONLY_PERMANENT) {
        lease_s = 0;
        rv = UPNP_AddPortMapping(ctl, st, want, in, u->lan, UPNP_DESC, "UDP", NULL, "0");
    }
    if (rv == UPNPCOMMAND_SUCCESS) {
        snprintf(got, sizeof(got), "%s", want);
    } else if (UPNP_AddAnyPortMapping(ctl, st, want, in, u->lan, UPNP_DESC, "UDP", NULL,
                                      lease_s ? lease : "0", got) != UPNPCOMMAND_SUCCESS) {
        return WZP_ERR_PROTOCOL; /* the port is taken and the IGD (v1) cannot pick another */
    }
    long p = strtol(got, NULL, 10);
    if (p <= 0 || p > 65535)
        return WZP_ERR_PROTOCOL;
    *external = ext;
    wzp_addr_set_port(external, (uint16_t)p);
    *granted_s = lease_s;
    return 0;
}

int wzp_upnp_unmap(wzp_upnp *u, uint16_t ext_port)
{
    char ext[8];
    snprintf(ext, sizeof(ext), "%u", ext_port);
    return UPNP_DeletePortMapping(u->urls.controlURL, u->data.first.servicetype, ext, "UDP",
                                  NULL) == UPNPCOMMAND_SUCCESS
               ? 0
               : WZP_ERR_PROTOCOL;
}
