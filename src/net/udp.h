/*
 * UDP sockets for the runtime layer: non-blocking, one per address family
 * (the IPv6 one is IPv6-only so the two never overlap), batched receive and
 * send with recvmmsg/sendmmsg. Everything above this layer sees wzp_addr and
 * byte buffers only.
 */
#ifndef WZP_NET_UDP_H
#define WZP_NET_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

typedef struct wzp_udp_config {
    bool reuseport; /* SO_REUSEPORT, for several worker sockets on one port */
    int rcvbuf;     /* SO_RCVBUF bytes, 0 = system default */
    int sndbuf;     /* SO_SNDBUF bytes, 0 = system default */
} wzp_udp_config;

/* No SO_REUSEPORT, system default buffers (what a NULL config gets too). */
void wzp_udp_config_default(wzp_udp_config *cfg);

/*
 * Opens a non-blocking UDP socket bound to `bind_addr` (port 0 = any port);
 * an IPv6 socket is made IPv6-only. Returns the fd or a negative wzp_error.
 * On success *bound receives the actual local address when not NULL.
 */
int wzp_udp_open(const wzp_addr *bind_addr, const wzp_udp_config *opts, wzp_addr *bound);

/* One datagram of a batch. `data` points at caller-owned storage of `cap` bytes. */
typedef struct wzp_udp_msg {
    uint8_t *data;
    size_t cap;
    size_t len;    /* bytes received, or bytes to send */
    wzp_addr peer; /* source on receive, destination on send */
} wzp_udp_msg;

#define WZP_UDP_BATCH 64

/*
 * Receives up to n (at most WZP_UDP_BATCH) datagrams without blocking.
 * Returns how many were received (0 when none is waiting) or WZP_ERR_IO.
 * A datagram longer than its buffer is truncated and marked with len = 0.
 */
int wzp_udp_recv_batch(int fd, wzp_udp_msg *msgs, size_t n);

/*
 * Sends up to n datagrams. Returns how many the kernel took (possibly fewer
 * than n when its buffer is full), or WZP_ERR_IO. Datagrams to unreachable
 * destinations are skipped and counted as sent: UDP gives no delivery promise.
 */
int wzp_udp_send_batch(int fd, const wzp_udp_msg *msgs, size_t n);

/*
 * True for a send errno that dooms that one datagram, not the socket
 * (unreachable, refused, too big, wrong family...): skip it, as UDP may.
 */
bool wzp_udp_send_skippable(int err);

/* Sends one datagram; 0, WZP_ERR_AGAIN when the socket buffer is full, or WZP_ERR_IO. */
int wzp_udp_send(int fd, const wzp_addr *to, const uint8_t *data, size_t len);

#endif
