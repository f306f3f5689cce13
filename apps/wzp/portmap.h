/*
 * Which port-mapping protocols the default gateway answers (for wzp doctor):
 * PCP (RFC 6887), NAT-PMP (RFC 6886, libnatpmp) and UPnP IGD (libminiupnpc).
 * Blocking, bounded: each probe gives up after its timeout.
 */
#ifndef WZP_APP_PORTMAP_H
#define WZP_APP_PORTMAP_H

#include <stdbool.h>

typedef struct portmap_result {
    char gateway[64]; /* the default gateway probed ("" if none was found) */
    bool pcp, natpmp, upnp;
    char natpmp_public[64]; /* the public address NAT-PMP reported */
    char upnp_public[64];   /* the external address the IGD reported */
    char upnp_url[128];     /* the IGD's control URL */
} portmap_result;

/* Runs the three probes, each bounded by timeout_ms. */
void portmap_probe(portmap_result *out, int timeout_ms);

#endif
