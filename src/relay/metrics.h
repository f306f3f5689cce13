/*
 * The relay's counters as Prometheus text (exposition format 0.0.4), sans-I/O:
 * a snapshot in, text out. The snapshot is put together by the relay server
 * (control-plane counters published by the control thread, forwarding
 * counters read from the workers' atomics); apps/wzp-relay/metrics_http.c serves the text.
 */
#ifndef WZP_RELAY_METRICS_H
#define WZP_RELAY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quic/quic.h"
#include "relay/cluster.h"
#include "relay/control.h"
#include "relay/forwarder.h"

/* What the control thread owns: copied out under the server's lock. */
typedef struct wzp_relay_metrics_ctl {
    wzp_relay_control_stats ctl;
    wzp_quic_endpoint_stats quic;
    uint64_t conns;         /* control connections known to the control plane */
    uint64_t registrations; /* registered identities */
    uint64_t parked;        /* of those, parked (no connection) */
    uint64_t calls_ringing, calls_active;
    uint64_t aliases;                   /* alias bindings held */
    uint64_t handshakes_completed;      /* control connections that finished their handshake */
    uint64_t ctl_dropped;               /* control-queue packets that were not QUIC, datagrams */
    uint64_t alt_answered, alt_limited; /* the alternate STUN address (stun_alt.h) */
    bool cluster;                       /* a member of a relay cluster (the rest is 0 if not) */
    bool cluster_up;                    /* its Redis answers */
    wzp_cluster_stats cluster_stats;
} wzp_relay_metrics_ctl;

typedef struct wzp_relay_metrics {
    wzp_relay_metrics_ctl c;
    wzp_forwarder_stats fwd;                   /* all workers */
    const wzp_forwarder_worker_stats *workers; /* n_workers of them */
    unsigned n_workers;
} wzp_relay_metrics;

/* An upper bound on the text's size for n_workers workers. */
size_t wzp_relay_metrics_max_size(unsigned n_workers);

/* Writes the text into buf; returns its length, or WZP_ERR_TOO_BIG if cap
 * (at least wzp_relay_metrics_max_size) is short. */
int wzp_relay_metrics_format(const wzp_relay_metrics *m, char *buf, size_t cap);

#endif
