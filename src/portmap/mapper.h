/*
 * The port mapper of a client (runtime): a worker thread that asks the
 * default gateway to map our IPv4 call socket's UDP port, NAT-PMP first
 * (portmap/natpmp.h), else UPnP IGD (portmap/upnp.h), keeps the mapping
 * renewed (portmap/lease.h) and deletes it when stopped. Gateways that do
 * not answer cost the worker its bounded timeouts and nobody else anything:
 * the owner hears of a mapping (or its loss) through `changed`, whenever it
 * comes. PCP is not spoken: no Debian library does it and every gateway
 * here that speaks PCP (miniupnpd) speaks NAT-PMP too.
 */
#ifndef WZP_PORTMAP_MAPPER_H
#define WZP_PORTMAP_MAPPER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"

typedef struct wzp_portmapper wzp_portmapper;

typedef struct wzp_portmapper_config {
    uint16_t port;       /* our IPv4 socket's UDP port (required) */
    uint32_t lifetime_s; /* asked for; 0 = 3600 (renewed at half) */
    int timeout_ms;      /* bound of each protocol's attempt; 0 = 1000 */
    /* From the worker thread: the mapped address changed (len 0: no mapping any more). Must
     * not block (copy it, post to your own thread). */
    void (*changed)(void *user, const wzp_addr *mapped);
    void *user;
} wzp_portmapper_config;

/* Starts the worker (its first request goes out at once). 0, WZP_ERR_INVALID, WZP_ERR_NOMEM. */
int wzp_portmapper_start(wzp_portmapper **out, const wzp_portmapper_config *cfg);
/* The network changed (any thread): ask again now; a mapping the gateway no longer confirms
 * is dropped. */
void wzp_portmapper_network_changed(wzp_portmapper *pm);
/* The current mapping (any thread): true and *out set, or false (none). */
bool wzp_portmapper_get(wzp_portmapper *pm, wzp_addr *out);
/* Deletes the mapping (bounded by the timeout), ends the worker, frees. NULL is fine. */
void wzp_portmapper_stop(wzp_portmapper *pm);

#endif
