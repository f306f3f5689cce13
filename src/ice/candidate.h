/*
 * Candidates and candidate pairs: what addresses a peer may be reached at,
 * how much we prefer each, and which local socket talks to which remote
 * address.
 *
 * wzp uses exactly two UDP sockets per client (one IPv4, one IPv6-only), both
 * bound to the wildcard address and shared by QUIC, STUN, relay frames and
 * probes. So a local candidate is something we *tell the peer*; the thing a
 * pair actually uses is the local socket of the remote address's family. A
 * pair is therefore (socket, remote address), and pairs are deduplicated on
 * that.
 */
#ifndef WZP_ICE_CANDIDATE_H
#define WZP_ICE_CANDIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"

typedef enum wzp_cand_type {
    WZP_CAND_HOST = 0,   /* an interface address */
    WZP_CAND_SRFLX = 1,  /* our public mapping as the relay or a STUN server saw it */
    WZP_CAND_PRFLX = 2,  /* learned from a probe (its source, or a response's observed address) */
    WZP_CAND_MAPPED = 3, /* a port mapping our gateway granted (NAT-PMP / UPnP-IGD): open inbound */
} wzp_cand_type;

/* The two sockets a client owns. A pair uses the socket of its remote address's family. */
enum { WZP_ICE_SOCK_V4 = 0, WZP_ICE_SOCK_V6 = 1, WZP_ICE_SOCK_COUNT = 2 };

typedef struct wzp_candidate {
    wzp_cand_type type;
    wzp_addr addr;
    uint32_t priority; /* wzp_cand_priority(type, &addr); both peers compute the same */
} wzp_candidate;

/*
 * Priority, higher is better: type first (host, mapped, srflx, prflx), then
 * within a type a private/LAN host address over a public one, IPv6 a little
 * over IPv4, link-local and loopback last. Deterministic, so both sides order
 * the same candidates the same way without exchanging priorities.
 */
uint32_t wzp_cand_priority(wzp_cand_type type, const wzp_addr *addr);

/* WZP_ICE_SOCK_V4 / _V6 for the address's family, or -1. */
int wzp_cand_sock_for(const wzp_addr *addr);

/*
 * Whether a remote address is worth a pair at all: IPv4 or IPv6, non-zero
 * port, not the unspecified address, not multicast, not IPv6 link-local (its
 * scope is meaningless across hosts), not IPv4-mapped IPv6. (Loopback is
 * allowed: tests and same-host calls use it.)
 */
bool wzp_cand_addr_usable(const wzp_addr *addr);

/* Whether two candidates denote the same transport address (dedup key). */
bool wzp_cand_same(const wzp_candidate *a, const wzp_candidate *b);

/* "host", "srflx", "prflx", "mapped". */
const char *wzp_cand_type_name(wzp_cand_type type);

#endif
