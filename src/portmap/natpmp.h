/*
 * NAT-PMP (RFC 6886) through libnatpmp: the default gateway's public
 * address, and UDP mappings of a local port. Blocking, each call bounded by
 * its timeout (libnatpmp would retransmit for minutes); for worker threads.
 */
#ifndef WZP_PORTMAP_NATPMP_H
#define WZP_PORTMAP_NATPMP_H

#include <stdint.h>

#include "common/addr.h"

/* The IPv4 default gateway (network order) libnatpmp finds, or 0 with none. */
uint32_t wzp_natpmp_gateway(void);
/* The gateway's public address (port 0). 0, WZP_ERR_UNREACHABLE (no gateway), WZP_ERR_TIMEOUT
 * (no answer) or WZP_ERR_PROTOCOL (an error answer: NAT-PMP not offered). */
int wzp_natpmp_public(uint32_t gateway, int timeout_ms, wzp_addr *out);
/*
 * Maps UDP `port` of this host at `gateway` for lifetime_s seconds (the
 * external port asked for is `port` too; the gateway may pick another).
 * Fills *external (public address and mapped port) and *granted_s. Errors as
 * above.
 */
int wzp_natpmp_map(uint32_t gateway, uint16_t port, uint32_t lifetime_s, int timeout_ms,
                   wzp_addr *external, uint32_t *granted_s);
/* Deletes that mapping (lifetime 0). 0 or an error as above. */
int wzp_natpmp_unmap(uint32_t gateway, uint16_t port, int timeout_ms);

#endif
