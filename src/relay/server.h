/*
 * The relay daemon: one UDP port serving QUIC control connections, STUN and
 * relayed frames. Forwarding runs on the forwarder's worker threads; the
 * control connections' QUIC (server side, clients identified by the key they
 * prove) on its QUIC shards (relay/shard.h); this object is the control
 * thread: it owns the event loop, the sans-I/O control plane, the channel
 * table it fills, the cluster link and the TCP service.
 */
#ifndef WZP_RELAY_SERVER_H
#define WZP_RELAY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "common/addr.h"
#include "common/time.h"
#include "quic/quic.h"
#include "relay/cluster.h"
#include "relay/control.h"
#include "relay/tcp_listener.h"

typedef struct wzp_relay_server_config {
    wzp_addr listen;  /* the relay port (port 0: pick one) */
    wzp_addr listen6; /* optional (len 0 = none): also serve this IPv6 address, with
                         `listen` IPv4 (a dual-stack relay joins v4 and v6 peers) */
    /* The TCP service for clients whose networks drop UDP (TLS on the relay's identity,
     * src/relay/tcp_listener.h); len 0 = none. */
    wzp_addr listen_tcp;
    uint32_t tcp_max_per_addr;    /* TCP connections per IPv4 address or IPv6 /64; 0 = 16 */
    wzp_ts tcp_handshake_timeout; /* TLS handshake done within this of the accept; 0 = 5 s */
    wzp_ts tcp_idle_timeout;      /* no complete record for this long: closed; 0 = 30 s */
    const char *home;             /* identity directory; NULL = default */
    unsigned workers;             /* forwarding threads; 0 = number of cores */
    /* QUIC shards of the control plane (src/relay/shard.h): threads that each own a
     * share of the control connections (handshakes, TLS); registrations and calls
     * stay on the control thread. 0 = number of cores, 1 = all on the control
     * thread (no extra thread); at most WZP_RELAY_MAX_SHARDS. */
    unsigned control_shards;
    int coalesce_us;          /* forwarder receive coalescing cap; 0 = default, < 0 = off */
    int stun_rate;            /* STUN answers per second per source (burst 2x); 0 = default
                                 (WZP_FWD_STUN_RATE, 10), < 0 = no limit */
    uint32_t max_conns;       /* control connections, handshaking included; default 200000 */
    wzp_ts conn_idle_timeout; /* control connection idle timeout; default 60 s */
    wzp_ts chan_idle_timeout; /* a call's channels close after this much silence; default 90 s */
    /*
     * Handshake-flood hardening (wzp_quic_endpoint_config). While this many
     * control connections are handshaking, a new client first gets a
     * stateless Retry (one more round trip, proves its address): default
     * 1000, so normal load pays nothing; 0 = always (tests), SIZE_MAX
     * (WZP_QUIC_RETRY_NEVER) = never. Each shard applies its share.
     */
    size_t retry_threshold;
    /* Handshaking connections one IP address may hold, per shard; default 16,
     * 0 = no cap (load generators running many clients on one host). */
    uint32_t max_handshakes_per_addr;
    wzp_relay_control_config control;
    /* Optional (len 0 = none): a second IP address of this host, per family, for the
     * alternate STUN sockets of NAT behaviour discovery (stun_alt.h). */
    wzp_addr stun_alt, stun_alt6;
    /*
     * Relay cluster (src/relay/cluster.h; redis NULL = a relay on its own):
     * the Redis server, credentials overriding the URL's (NULL: none), the
     * key the cluster's relays share, and the address other relays send
     * link frames to (len 0: the relay port's, which must then be a
     * concrete address).
     */
    const char *redis;
    const char *redis_user, *redis_password;
    wzp_cluster_key cluster_key;
    wzp_addr cluster_addr;
    const char *qlog_dir; /* debugging: every control connection's qlog here; NULL = none */
    /* Publish the control thread's counters for wzp_relay_server_metrics_text (a copy at
     * most every 100 ms, only while things change). */
    bool metrics;
    /*
     * Test hook, NULL in production: sees every signaling message the relay
     * is about to send (on the control thread) and may rewrite it in place
     * (*len <= cap). Tests use it to play a lying relay, e.g. one that
     * vouches for the wrong fingerprint in CallSetup.
     */
    void (*test_rewrite)(void *user, uint8_t *msg, size_t *len, size_t cap);
    void *test_user;
} wzp_relay_server_config;

typedef struct wzp_relay_server wzp_relay_server;

/*
 * The relay's QUIC endpoint settings (defaults otherwise): a server presenting
 * id, with accept(user), and stateless reset tokens keyed from the identity so
 * that a restarted relay (same home) resets its former clients' connections.
 * WZP_ERR_INTERNAL if the secret cannot be derived.
 */
int wzp_relay_endpoint_config(wzp_quic_endpoint_config *cfg, const wzp_identity *id,
                              int (*accept)(void *user, const wzp_addr *local,
                                            const wzp_addr *remote, wzp_quic_conn_config *opts,
                                            wzp_ts now),
                              void *user);

void wzp_relay_server_config_default(wzp_relay_server_config *cfg);
/* Loads (or creates) the identity, binds the port and starts the workers.
 * cfg NULL: defaults. 0 or a negative wzp_error (*out untouched). */
int wzp_relay_server_new(wzp_relay_server **out, const wzp_relay_server_config *cfg);
/* Runs until wzp_relay_server_stop() or SIGINT/SIGTERM (with handle_signals). */
int wzp_relay_server_run(wzp_relay_server *s, bool handle_signals);
/* Any thread: closes every connection politely and makes run() return. */
void wzp_relay_server_stop(wzp_relay_server *s);
void wzp_relay_server_free(wzp_relay_server *s);

const wzp_addr *wzp_relay_server_addr(const wzp_relay_server *s);
/* The IPv6 address of a dual-stack relay (listen6), or NULL. */
const wzp_addr *wzp_relay_server_addr6(const wzp_relay_server *s);
/*
 * The relay's metrics as Prometheus text (relay/metrics.h), malloc'ed, its
 * length in *len; NULL when out of memory or without cfg.metrics. Any thread,
 * while the server lives: it reads the forwarder's atomics and the control
 * thread's last published copy, so it never holds up either.
 */
char *wzp_relay_server_metrics_text(wzp_relay_server *s, size_t *len);
void wzp_relay_server_fingerprint(const wzp_relay_server *s, uint8_t fp[WZP_FINGERPRINT_LEN]);
/* The TCP service's address (listen_tcp with the actual port), or NULL. */
const wzp_addr *wzp_relay_server_tcp_addr(const wzp_relay_server *s);
typedef struct wzp_relay_server_stats {
    wzp_quic_endpoint_stats quic; /* the QUIC shards' together (Retries sent, bad tokens, ...) */
    wzp_tcp_listener_stats tcp;   /* the TCP service's (all zero without one) */
} wzp_relay_server_stats;

/* A snapshot of the counters. quic: any thread (each shard's copy, published
 * after every batch of its work); tcp: on the control thread or once run()
 * has returned (not atomic). */
void wzp_relay_server_get_stats(const wzp_relay_server *s, wzp_relay_server_stats *out);

#endif
