#include "portmap/lease.h"

void wzp_pm_lease_init(wzp_pm_lease *l, wzp_ts now)
{
    *l = (wzp_pm_lease){.next = now, .backoff = WZP_PM_RETRY_MIN, .expires = WZP_TS_NEVER};
    wzp_addr_clear(&l->external);
}

wzp_ts wzp_pm_lease_deadline(const wzp_pm_lease *l)
{
    return l->held ? wzp_ts_min(l->next, l->expires) : l->next;
}

bool wzp_pm_lease_due(const wzp_pm_lease *l, wzp_ts now)
{
    return now >= l->next;
}

void wzp_pm_lease_granted(wzp_pm_lease *l, const wzp_addr *external, uint32_t lifetime_s,
                          wzp_ts now)
{
    l->held = true;
    l->verify = false;
    l->external = *external;
    l->backoff = WZP_PM_RETRY_MIN;
    if (lifetime_s == 0) {
        l->expires = WZP_TS_NEVER;
        l->next = now + WZP_PM_RETRY_MAX; /* still there? (a rebooted gateway forgets) */
        return;
    }
    l->expires = now + WZP_SEC(lifetime_s);
    /* Half the lifetime leaves room for retries (RFC 6886 3.3 suggests the same). */
    wzp_ts half = WZP_SEC(lifetime_s) / 2;
    l->next = now + (half < WZP_SEC(1) ? WZP_SEC(1) : half);
}

void wzp_pm_lease_failed(wzp_pm_lease *l, wzp_ts now)
{
    if (l->held && l->verify) {
        l->held = false; /* granted on a network we left */
        wzp_addr_clear(&l->external);
        l->expires = WZP_TS_NEVER;
    }
    wzp_ts wait = l->backoff;
    /* A held lease is retried often enough to be renewed before it runs out. */
    if (l->held && l->expires != WZP_TS_NEVER && l->expires > now) {
        wzp_ts left = (l->expires - now) / 2;
        if (left < wait)
            wait = left < WZP_SEC(1) ? WZP_SEC(1) : left;
    }
    l->next = now + wait;
    l->backoff = l->backoff * 2 > WZP_PM_RETRY_MAX ? WZP_PM_RETRY_MAX : l->backoff * 2;
}

void wzp_pm_lease_network_changed(wzp_pm_lease *l, wzp_ts now)
{
    l->verify = l->held;
    l->next = now;
    l->backoff = WZP_PM_RETRY_MIN;
}

bool wzp_pm_lease_expire(wzp_pm_lease *l, wzp_ts now)
{
    if (!l->held || l->expires == WZP_TS_NEVER || now < l->expires)
        return false;
    l->held = false;
    l->verify = false;
    wzp_addr_clear(&l->external);
    l->expires = WZP_TS_NEVER;
    return true;
}
