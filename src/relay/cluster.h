/*
 * A relay's membership of a relay cluster, on Redis (docs/cluster.md):
 * presence (which relay each registered key is on, with a TTL refreshed
 * while it stays), cluster-wide alias ownership (one alias, one key: an
 * atomic Lua claim), locating a callee, and relay-to-relay messages over
 * pub/sub (one channel per relay, authenticated with the cluster key,
 * src/relay/cluster_msg.h).
 *
 * Runtime layer: owns two hiredis async connections (commands, and the
 * subscription) driven by the relay's event loop, and reconnects with
 * backoff when Redis goes away, publishing its registrations again when it
 * is back. While Redis is away the relay goes on serving its own clients;
 * what needs the cluster (a callee elsewhere, a new alias) fails at once
 * with a clear error. Results reach the control plane through its
 * wzp_relay_control_claim_done / _located / _on_cluster entry points, never
 * from inside one of its callbacks.
 */
#ifndef WZP_RELAY_CLUSTER_H
#define WZP_RELAY_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "net/loop.h"
#include "relay/cluster_msg.h"
#include "relay/control.h"

typedef struct wzp_cluster_config {
    /* "redis://[[USER]:PASSWORD@]HOST[:PORT]", "HOST:PORT", "unix:PATH", "/PATH", or
     * "sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER": ask the Sentinels
     * where the master is before each (re)connect (credentials are the master's). */
    const char *redis;
    const char *redis_user, *redis_password; /* override the URL's; NULL: the URL's (none) */
    wzp_cluster_key key;                     /* shared by the cluster's relays */
    uint8_t self[WZP_CLUSTER_ID_LEN];
    wzp_addr fwd_addr;      /* where other relays send this relay's link frames */
    wzp_ts presence_ttl;    /* key -> relay entries expire after this; default 30 s */
    wzp_ts alias_ttl;       /* alias bindings (the relays' alias_reclaim); default 30 days */
    wzp_relay_control *ctl; /* results go here */
    /* After results went into ctl (the transport flushes what it sent). */
    void (*notify)(void *user);
    void *user;
} wzp_cluster_config;

typedef struct wzp_cluster_stats {
    uint64_t connects, disconnects; /* of the command connection */
    uint64_t msgs_sent, msgs_received, msgs_refused, msgs_unsent;
    uint64_t kicks_sent;
} wzp_cluster_stats;

typedef struct wzp_cluster wzp_cluster;

/* Parses cfg->redis and starts connecting (failures only delay: it retries).
 * WZP_ERR_INVALID for a bad address or key, WZP_ERR_NOMEM. */
int wzp_cluster_new(wzp_cluster **out, const wzp_cluster_config *cfg, wzp_loop *loop);
void wzp_cluster_free(wzp_cluster *cl);
/* Redis answers (the command connection is up and authenticated). */
bool wzp_cluster_up(const wzp_cluster *cl);
/* Every command sent has its answer (or Redis is away): e.g. presence deletions are done. */
bool wzp_cluster_settled(const wzp_cluster *cl);
void wzp_cluster_get_stats(const wzp_cluster *cl, wzp_cluster_stats *out);

/* The control plane's cluster callbacks (wzp_relay_control_callbacks). */
void wzp_cluster_claim_alias(wzp_cluster *cl, uint64_t conn, const uint8_t *fp, const char *alias);
void wzp_cluster_presence(wzp_cluster *cl, const uint8_t *fp, const char *alias, bool up);
void wzp_cluster_locate(wzp_cluster *cl, const uint8_t *call_id, bool by_alias, const uint8_t *fp,
                        const char *alias);
void wzp_cluster_send(wzp_cluster *cl, wzp_cluster_msg *m);
void wzp_cluster_call_record(wzp_cluster *cl, const uint8_t *call_id, const uint8_t *fp_a,
                             const uint8_t *relay_a, const uint8_t *fp_b, const uint8_t *relay_b,
                             bool live);
void wzp_cluster_reattach(wzp_cluster *cl, uint64_t conn, uint64_t request_id,
                          const uint8_t *call_id, int end, const uint8_t *fp);

/* Parses a cluster key file's text: 32 to 128 hex digits (whitespace around ignored). */
int wzp_cluster_key_parse(wzp_cluster_key *key, const char *text);

#endif
