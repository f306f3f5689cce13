/*
 * The relay's TCP service, for clients whose networks drop UDP: TLS 1.3 on
 * the relay's own identity (clients pin it as over QUIC), carrying the
 * datagrams such a client would have sent to the relay's UDP port as records
 * (src/net/tcp_link.h, src/wire/tcp_frame.h). Each connection is named by a
 * tunnel address (src/common/tunnel_addr.h) wherever the relay expects a UDP
 * source: its datagrams are delivered with that address as their source, and
 * anything sent to that address goes down the connection. Control QUIC,
 * relay frames and the calls' end-to-end QUIC are then unchanged.
 *
 * Runs on the caller's loop (the relay's control thread). Limits: at most
 * max_conns connections, max_per_ip per client IPv4 address or IPv6 /64; the
 * TLS handshake must be done within handshake_timeout of the accept (however
 * slowly bytes trickle in), and a connection that completes no record for
 * idle_timeout is closed (a client's control connection sends every few
 * seconds). Each connection's send queue is bounded, oldest records dropped.
 */
#ifndef WZP_RELAY_TCP_LISTENER_H
#define WZP_RELAY_TCP_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "common/addr.h"
#include "common/time.h"
#include "net/loop.h"

typedef struct wzp_tcp_listener wzp_tcp_listener;

/* One datagram from a connection; `from` is its tunnel address. */
typedef void (*wzp_tcp_listener_deliver_fn)(void *user, const wzp_addr *from, const uint8_t *data,
                                            size_t len, wzp_ts now);

typedef struct wzp_tcp_listener_config {
    wzp_addr bind;            /* port 0 picks one */
    const wzp_identity *id;   /* the relay's; borrowed */
    size_t max_conns;         /* 0 = 10000 */
    size_t max_per_ip;        /* 0 = 16 */
    wzp_ts handshake_timeout; /* 0 = 5 s */
    wzp_ts idle_timeout;      /* 0 = 30 s */
    size_t queue;             /* per-connection send queue bytes; 0 = the link's default */
    wzp_tcp_listener_deliver_fn deliver;
    void *user;
} wzp_tcp_listener_config;

typedef struct wzp_tcp_listener_stats {
    uint64_t accepted;
    uint64_t refused_full;   /* over max_conns */
    uint64_t refused_ip_cap; /* over max_per_ip */
    uint64_t handshake_timeouts;
    uint64_t idle_timeouts;
    uint64_t closed; /* ended for any reason */
    uint64_t rx_records, tx_records;
    uint64_t tx_dropped; /* oldest records dropped from full send queues */
    uint64_t tx_no_conn; /* sent to a tunnel address with no connection */
    size_t conns;        /* open now */
} wzp_tcp_listener_stats;

void wzp_tcp_listener_config_default(wzp_tcp_listener_config *cfg);
/* Listens and starts watching on loop. 0 or a negative wzp_error (WZP_ERR_IO: cannot listen). */
int wzp_tcp_listener_new(wzp_tcp_listener **out, const wzp_tcp_listener_config *cfg,
                         wzp_loop *loop);
/* Closes every connection and the listening socket. NULL is fine. */
void wzp_tcp_listener_free(wzp_tcp_listener *t);
const wzp_addr *wzp_tcp_listener_addr(const wzp_tcp_listener *t);
/* Queues a datagram for the connection named by the tunnel address `to`;
 * sent at the next wzp_tcp_listener_flush (which the listener also runs after
 * every delivery of its own). 0, or WZP_ERR_NOT_FOUND. */
int wzp_tcp_listener_send(wzp_tcp_listener *t, const wzp_addr *to, const uint8_t *data, size_t len);
/* Writes what was queued since the last flush. */
void wzp_tcp_listener_flush(wzp_tcp_listener *t);
void wzp_tcp_listener_get_stats(const wzp_tcp_listener *t, wzp_tcp_listener_stats *out);

#endif
