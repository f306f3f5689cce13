/*
 * One QUIC shard of the relay's control plane. The expensive part of a
 * control connection (handshake, TLS, loss recovery, timers) runs on a
 * shard: a thread of its own owning a QUIC endpoint with its share of the
 * connections, or, for a relay with a single shard, the control thread
 * itself. What the connections mean (registrations, calls, aliases,
 * cluster: wzp_relay_control) stays on the one control thread. They talk
 * through two queues (net/mq.h), each kept in order:
 *
 *   shard -> control (cfg.events): a connection established (handle, the
 *     key it proved, its address: by its TLS certificate, or for a client
 *     without one by its Auth message, which the shard checks first), a message on it, a new
 * address (NAT rebinding, validated by QUIC), closed; and datagrams for clients on the TCP service,
 * which is the control thread's. control -> shard (wzp_relay_shard_send/close/packet/stop): send a
 *     message, close a connection, a QUIC datagram from a TCP client, shut
 *     down.
 *
 * A connection is named by a handle the shard issues: shard i of n issues
 * handles equal to i modulo n (wzp_relay_shard_of_handle), so the control
 * thread addresses a command without a table. Commands for a handle that has
 * closed meanwhile are dropped. UDP packets reach a shard from the forwarder
 * workers on its control lane, routed by connection ID (wzp_quic_route); the
 * shard sends straight from the relay port (wzp_forwarder_send, any thread).
 */
#ifndef WZP_RELAY_SHARD_H
#define WZP_RELAY_SHARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "net/loop.h"
#include "net/mq.h"
#include "quic/quic.h"
#include "relay/forwarder.h"

/* Most shards a relay runs (each a thread). */
#define WZP_RELAY_MAX_SHARDS 64

typedef enum wzp_relay_shard_ev_kind {
    WZP_SHARD_EV_ESTABLISHED, /* handle, fp, addr */
    WZP_SHARD_EV_MESSAGE,     /* handle, data */
    WZP_SHARD_EV_MOVED,       /* handle, addr: the client's new address */
    WZP_SHARD_EV_MOVING,      /* handle: the client is closing with WZP_SIG_CLOSE_MOVING (it
                                 re-homes); CLOSED follows */
    WZP_SHARD_EV_PARKED,      /* handle: the client is closing with WZP_SIG_CLOSE_PARKED (it
                                 takes the relay's Park offer); CLOSED follows */
    WZP_SHARD_EV_CLOSED,      /* handle: gone; later commands for it are dropped */
    WZP_SHARD_EV_TCP_OUT,     /* a datagram (data) for the TCP client at addr */
} wzp_relay_shard_ev_kind;

/* One event; the consumer frees it (free()) when done. */
typedef struct wzp_relay_shard_event {
    wzp_mq_node node;
    wzp_relay_shard_ev_kind kind;
    uint64_t handle;
    wzp_addr addr;
    uint8_t fp[WZP_FINGERPRINT_LEN];
    size_t len;
    uint8_t data[];
} wzp_relay_shard_event;

typedef struct wzp_relay_shard_config {
    unsigned index, count; /* this shard is index of count */
    /* The endpoint's settings (identity, accept limits, reset secret, qlog);
     * the shard sets server, accept and the route fields itself. */
    wzp_quic_endpoint_config quic;
    uint64_t route_key; /* wzp_quic_route's key, the same for every shard */
    wzp_forwarder *fwd; /* borrowed: packets in on lane `lane`, UDP out */
    unsigned lane;
    wzp_mq *events;            /* borrowed: where events go */
    size_t max_conns;          /* connections of all shards together, handshaking included */
    _Atomic long *total_conns; /* borrowed, shared by the shards: their sum as published */
    wzp_ts conn_idle_timeout;
    /* A client without a certificate must prove its key (Auth, its first message) within
     * this long of its handshake, or it is closed; 0 = 10 s. */
    wzp_ts auth_timeout;
    const _Atomic bool *draining; /* borrowed: set, the shard takes no new connections */
    /* NULL: the shard runs a thread and loop of its own (wzp_relay_shard_start);
     * else it runs on this loop, on its thread, and commands act at once. */
    wzp_loop *loop;
} wzp_relay_shard_config;

typedef struct wzp_relay_shard wzp_relay_shard;

/* Counters, published after every batch of work; any thread may read them. */
typedef struct wzp_relay_shard_stats {
    wzp_quic_endpoint_stats quic;
    uint64_t handshakes_completed;
    uint64_t rx_dropped;   /* datagrams on control connections, stray packets */
    uint64_t auth_refused; /* clients without a certificate closed: no valid Auth first */
} wzp_relay_shard_stats;

int wzp_relay_shard_new(wzp_relay_shard **out, const wzp_relay_shard_config *cfg);
/* Starts serving: its thread, or its watchers on cfg.loop. 0 or a wzp_error. */
int wzp_relay_shard_start(wzp_relay_shard *sh);
/* Control thread: shut down (close every connection politely, flush). A
 * threaded shard does it on its thread and then ends it; join with
 * wzp_relay_shard_join. */
void wzp_relay_shard_stop(wzp_relay_shard *sh);
/* Waits for a threaded shard's thread to end (after stop); no-op otherwise. */
void wzp_relay_shard_join(wzp_relay_shard *sh);
/* Stops (if started), joins and frees everything, queued commands included. */
void wzp_relay_shard_free(wzp_relay_shard *sh);

/* Control thread: commands (copied), passed on together by wzp_relay_shard_flush
 * (call it when the work at hand is done: one lock and at most one wake-up). */
void wzp_relay_shard_flush(wzp_relay_shard *sh);
void wzp_relay_shard_send(wzp_relay_shard *sh, uint64_t handle, const uint8_t *msg, size_t len);
void wzp_relay_shard_close(wzp_relay_shard *sh, uint64_t handle, uint64_t app_code,
                           const char *reason);
/* Closes every connection the shard holds (a draining relay); the shard goes on. */
void wzp_relay_shard_close_all(wzp_relay_shard *sh, uint64_t app_code, const char *reason);
/* A QUIC datagram from the TCP client at tunnel address `from`. */
void wzp_relay_shard_packet(wzp_relay_shard *sh, const wzp_addr *from, const uint8_t *data,
                            size_t len);

void wzp_relay_shard_get_stats(wzp_relay_shard *sh, wzp_relay_shard_stats *out);

/* The shard (0 .. count-1) that issued a handle. */
static inline unsigned wzp_relay_shard_of_handle(uint64_t handle, unsigned count)
{
    return (unsigned)(handle % count);
}

#endif
