/*
 * Which port-mapping protocols the default gateway answers (wzp doctor):
 * PCP (RFC 6887), NAT-PMP (RFC 6886, portmap/natpmp.h) and UPnP IGD
 * (portmap/upnp.h). Blocking, bounded: each probe gives up after its timeout.
 */
#ifndef WZP_PORTMAP_PROBE_H
#define WZP_PORTMAP_PROBE_H

#include <stdbool.h>

typedef struct wzp_portmap_report {
    char gateway[64]; /* the default gateway probed ("" if none was found) */
    bool pcp, natpmp, upnp;
    char natpmp_public[64]; /* the public address NAT-PMP reported */
    char upnp_public[64];   /* the external address the IGD reported */
    char upnp_url[128];     /* the IGD's control URL */
} wzp_portmap_report;

/* Runs the three probes, each bounded by timeout_ms. */
void wzp_portmap_probe(wzp_portmap_report *out, int timeout_ms);

#endif
