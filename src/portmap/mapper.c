#include "portmap/mapper.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "net/clock.h"
#include "portmap/lease.h"
#include "portmap/natpmp.h"
#include "portmap/upnp.h"

typedef enum { PM_NONE, PM_NATPMP, PM_UPNP } pm_proto;

struct wzp_portmapper {
    wzp_portmapper_config cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC, like wzp_now() */
    bool stop, kick;   /* under mu */
    wzp_addr current;  /* under mu: what wzp_portmapper_get says (len 0: none) */
    /* The worker's own. */
    wzp_pm_lease lease;
    pm_proto proto;   /* what granted the held mapping */
    uint32_t gateway; /* NAT-PMP: the gateway that granted it */
    wzp_upnp *igd;    /* UPnP: the IGD that granted it */
};

static bool stopping(wzp_portmapper *pm)
{
    pthread_mutex_lock(&pm->mu);
    bool stop = pm->stop;
    pthread_mutex_unlock(&pm->mu);
    return stop;
}

/* One request (a renewal is one too): NAT-PMP first, else UPnP IGD. */
static int request(wzp_portmapper *pm, wzp_addr *ext, uint32_t *granted, pm_proto *proto,
                   uint32_t *gw)
{
    int to = pm->cfg.timeout_ms;
    *gw = wzp_natpmp_gateway();
    if (*gw && wzp_natpmp_map(*gw, pm->cfg.port, pm->cfg.lifetime_s, to, ext, granted) == 0) {
        *proto = PM_NATPMP;
        return 0;
    }
    /* Stopping: no UPnP discovery (a second bounded wait) for a mapping about to go. */
    if (stopping(pm))
        return WZP_ERR_CLOSED;
    /* The IGD found before first; if it fails (another network now?), a fresh discovery. */
    for (int tries = pm->igd ? 2 : 1; tries > 0; tries--) {
        if (!pm->igd && wzp_upnp_discover(&pm->igd, to) < 0)
            return WZP_ERR_NOT_FOUND;
        if (wzp_upnp_map(pm->igd, pm->cfg.port, pm->cfg.lifetime_s, ext, granted) == 0) {
            *proto = PM_UPNP;
            return 0;
        }
        wzp_upnp_free(pm->igd);
        pm->igd = NULL;
    }
    return WZP_ERR_NOT_FOUND;
}

static bool usable_external(const wzp_addr *ext)
{
    return !wzp_addr_is_private(ext) && !wzp_addr_is_loopback(ext) && !wzp_addr_is_any(ext) &&
           wzp_addr_port(ext) != 0;
}

/* Deletes one mapping where it lives. */
static void unmap(wzp_portmapper *pm, pm_proto proto, uint32_t gw, uint16_t ext_port)
{
    if (proto == PM_NATPMP)
        wzp_natpmp_unmap(gw, pm->cfg.port, pm->cfg.timeout_ms);
    else if (proto == PM_UPNP && pm->igd)
        wzp_upnp_unmap(pm->igd, ext_port);
}

/* Deletes the held mapping. */
static void release(wzp_portmapper *pm)
{
    unmap(pm, pm->proto, pm->gateway, wzp_addr_port(&pm->lease.external));
    pm->proto = PM_NONE;
}

static void wait_until(wzp_portmapper *pm, wzp_ts deadline)
{
    if (deadline == WZP_TS_NEVER) {
        pthread_cond_wait(&pm->cv, &pm->mu);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(deadline / WZP_SEC(1)),
                          .tv_nsec = (long)(deadline % WZP_SEC(1))};
    pthread_cond_timedwait(&pm->cv, &pm->mu, &ts);
}

/* Publishes the lease's address; tells the owner if it changed. Called without mu. */
static void publish(wzp_portmapper *pm)
{
    wzp_addr a;
    wzp_addr_clear(&a);
    if (pm->lease.held)
        a = pm->lease.external;
    pthread_mutex_lock(&pm->mu);
    bool same = a.len == pm->current.len && (a.len == 0 || wzp_addr_equal(&a, &pm->current));
    pm->current = a;
    pthread_mutex_unlock(&pm->mu);
    if (same)
        return;
    char buf[WZP_ADDR_STRLEN];
    WZP_INFO("portmap: %s", a.len ? wzp_addr_format(&a, buf, sizeof(buf)) : "no mapping");
    if (pm->cfg.changed)
        pm->cfg.changed(pm->cfg.user, &a);
}

static void *worker(void *arg)
{
    wzp_portmapper *pm = arg;
    pthread_mutex_lock(&pm->mu);
    while (!pm->stop) {
        wzp_ts now = wzp_now();
        if (pm->kick) {
            pm->kick = false;
            wzp_pm_lease_network_changed(&pm->lease, now);
        }
        if (!wzp_pm_lease_due(&pm->lease, now)) {
            if (pm->lease.held && wzp_pm_lease_expire(&pm->lease, now)) {
                pm->proto = PM_NONE;
                pthread_mutex_unlock(&pm->mu);
                publish(pm);
                pthread_mutex_lock(&pm->mu);
                continue;
            }
            wait_until(pm, wzp_pm_lease_deadline(&pm->lease));
            continue;
        }
        pthread_mutex_unlock(&pm->mu);
        wzp_addr ext;
        uint32_t granted = 0, gw = 0;
        pm_proto proto = PM_NONE;
        int rc = request(pm, &ext, &granted, &proto, &gw);
        now = wzp_now();
        if (rc == 0 && !usable_external(&ext)) {
            /* A gateway behind another NAT (carrier-grade NAT) maps an address nobody
             * outside can reach: give it back, offer nothing. */
            unmap(pm, proto, gw, wzp_addr_port(&ext));
            rc = WZP_ERR_UNREACHABLE;
        }
        if (rc == 0) {
            /* A mapping granted elsewhere before (a new network, or the other protocol)
             * is no longer ours to keep: delete it where it lives. */
            if (pm->proto != PM_NONE &&
                (pm->proto != proto || (proto == PM_NATPMP && pm->gateway != gw)))
                release(pm);
            pm->proto = proto;
            pm->gateway = gw;
            wzp_pm_lease_granted(&pm->lease, &ext, granted, now);
        } else {
            wzp_pm_lease_failed(&pm->lease, now);
            if (!pm->lease.held)
                pm->proto = PM_NONE;
        }
        publish(pm);
        pthread_mutex_lock(&pm->mu);
    }
    pthread_mutex_unlock(&pm->mu);
    if (pm->lease.held)
        release(pm);
    return NULL;
}

int wzp_portmapper_start(wzp_portmapper **out, const wzp_portmapper_config *cfg)
{
    if (!out || !cfg || cfg->port == 0)
        return WZP_ERR_INVALID;
    wzp_portmapper *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return WZP_ERR_NOMEM;
    pm->cfg = *cfg;
    if (!pm->cfg.lifetime_s)
        pm->cfg.lifetime_s = 3600;
    if (pm->cfg.timeout_ms <= 0)
        pm->cfg.timeout_ms = 1000;
    wzp_pm_lease_init(&pm->lease, wzp_now());
    wzp_addr_clear(&pm->current);
    pthread_mutex_init(&pm->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pm->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&pm->thread, NULL, worker, pm) != 0) {
        pthread_cond_destroy(&pm->cv);
        pthread_mutex_destroy(&pm->mu);
        free(pm);
        return WZP_ERR_NOMEM;
    }
    *out = pm;
    return 0;
}

void wzp_portmapper_network_changed(wzp_portmapper *pm)
{
    if (!pm)
        return;
    pthread_mutex_lock(&pm->mu);
    pm->kick = true;
    pthread_cond_signal(&pm->cv);
    pthread_mutex_unlock(&pm->mu);
}

bool wzp_portmapper_get(wzp_portmapper *pm, wzp_addr *out)
{
    pthread_mutex_lock(&pm->mu);
    *out = pm->current;
    pthread_mutex_unlock(&pm->mu);
    return out->len != 0;
}

void wzp_portmapper_stop(wzp_portmapper *pm)
{
    if (!pm)
        return;
    pthread_mutex_lock(&pm->mu);
    pm->stop = true;
    pthread_cond_signal(&pm->cv);
    pthread_mutex_unlock(&pm->mu);
    pthread_join(pm->thread, NULL);
    wzp_upnp_free(pm->igd);
    pthread_cond_destroy(&pm->cv);
    pthread_mutex_destroy(&pm->mu);
    free(pm);
}
