/*
 * UPnP IGD through libminiupnpc: find the gateway's IGD (SSDP), map a UDP
 * port of this host, delete it. Blocking, bounded by the discovery timeout
 * and miniupnpc's own HTTP timeouts; for worker threads. One object holds
 * the IGD found, so renewals and the deletion need no new discovery.
 */
#ifndef WZP_PORTMAP_UPNP_H
#define WZP_PORTMAP_UPNP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"

typedef struct wzp_upnp wzp_upnp;

/* Discovers an IGD (at most timeout_ms for SSDP). 0, WZP_ERR_NOT_FOUND (none answered or no
 * connected IGD), WZP_ERR_NOMEM. */
int wzp_upnp_discover(wzp_upnp **out, int timeout_ms);
void wzp_upnp_free(wzp_upnp *u);
/* The IGD's control URL and our LAN address as it sees it (for wzp doctor). */
const char *wzp_upnp_control_url(const wzp_upnp *u);
/* The IGD's external IPv4 address (port 0): 0 or WZP_ERR_PROTOCOL. */
int wzp_upnp_external(wzp_upnp *u, wzp_addr *out);
/*
 * Maps external UDP port `port` (or, if taken, one the IGD picks) to our
 * `port` for lease_s seconds; an IGD that only grants permanent leases gets
 * one (*granted_s = 0: delete it yourself). 0 or WZP_ERR_PROTOCOL.
 */
int wzp_upnp_map(wzp_upnp *u, uint16_t port, uint32_t lease_s, wzp_addr *external,
                 uint32_t *granted_s);
/* Deletes the mapping of external port `ext_port`. 0 or WZP_ERR_PROTOCOL. */
int wzp_upnp_unmap(wzp_upnp *u, uint16_t ext_port);

#endif
