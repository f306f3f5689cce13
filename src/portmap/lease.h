/*
 * When to ask the gateway for our port mapping again (sans-I/O): the lease
 * of one UDP mapping, renewed at half its lifetime, retried with backoff
 * while no gateway answers, and checked again after a network change (where
 * an unanswered check means the gateway that granted it is gone). The
 * runtime (portmap/mapper.c) does the asking; this only decides when, on the
 * caller's clock.
 */
#ifndef WZP_PORTMAP_LEASE_H
#define WZP_PORTMAP_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"

#define WZP_PM_RETRY_MIN WZP_SEC(5)   /* first retry after a failed request */
#define WZP_PM_RETRY_MAX WZP_SEC(600) /* backoff cap; also the re-check of a permanent lease */

typedef struct wzp_pm_lease {
    bool held;         /* the gateway granted a mapping that has not expired */
    bool verify;       /* the network changed since it was granted: a failure drops it */
    wzp_addr external; /* the public address:port (valid when held) */
    wzp_ts expires;    /* WZP_TS_NEVER for a permanent lease */
    wzp_ts next;       /* when to send the next request */
    wzp_ts backoff;    /* the wait after the next failure */
} wzp_pm_lease;

/* Nothing held; the first request is due at now. */
void wzp_pm_lease_init(wzp_pm_lease *l, wzp_ts now);
/* When something is due: the next request, or the expiry of the held mapping. */
wzp_ts wzp_pm_lease_deadline(const wzp_pm_lease *l);
/* Whether a request is due at now. */
bool wzp_pm_lease_due(const wzp_pm_lease *l, wzp_ts now);
/* The gateway granted `external` for lifetime_s seconds (0: permanent). Renewal at half of it. */
void wzp_pm_lease_granted(wzp_pm_lease *l, const wzp_addr *external, uint32_t lifetime_s,
                          wzp_ts now);
/* A request got no grant. A held mapping is kept until it expires, unless a network change
 * came since it was granted. */
void wzp_pm_lease_failed(wzp_pm_lease *l, wzp_ts now);
/* The network changed: ask again now (fresh backoff). */
void wzp_pm_lease_network_changed(wzp_pm_lease *l, wzp_ts now);
/* Drops a held mapping whose lifetime ran out. Returns true if one was dropped. */
bool wzp_pm_lease_expire(wzp_pm_lease *l, wzp_ts now);

#endif
