/*
 * netsim: a deterministic discrete-event network simulator for tests.
 *
 * A virtual clock (wzp_ts), an event queue and a seeded PRNG drive packets
 * between "sockets" bound on simulated hosts. Hosts attach to networks (the
 * internet, or LANs) through links with latency, jitter and loss. A LAN
 * reaches its parent network through a router that does NAT with a
 * configurable RFC 4787 behaviour: mapping and filtering each
 * endpoint-independent, address-dependent or address-and-port-dependent,
 * port preservation, hairpinning, a mapping timeout, and optionally the
 * Linux "unsolicited inbound creates conntrack state" trap. Routers nest
 * (carrier-grade NAT is a router whose LAN holds other routers' WANs).
 * Links can be changed or cut mid-run, a filter can drop one kind of packet
 * anywhere, and a minimal relay forwards between two clients (the relay
 * path of a call) and reports the address it saw each at.
 *
 * Packets move hop by hop: each hop is an event, and NAT state is consulted
 * and changed when the packet reaches the router, so punch races come out
 * as they would on a wire. Everything is a function of the seed: the same
 * seed and the same calls give the same trace hash.
 *
 * Not thread-safe; callbacks run inside wzp_sim_step() and may send, bind,
 * schedule and cancel freely.
 */
#ifndef WZP_TESTS_NETSIM_H
#define WZP_TESTS_NETSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"

typedef struct wzp_sim wzp_sim;
typedef struct wzp_sim_net wzp_sim_net;
typedef struct wzp_sim_host wzp_sim_host;
typedef struct wzp_sim_router wzp_sim_router;
typedef struct wzp_sim_sock wzp_sim_sock;
typedef struct wzp_sim_relay wzp_sim_relay;

/*
 * One attachment of a host or router side to a network. A packet crossing a
 * network pays the sender's link and the receiver's link (each direction of
 * an attachment has the same parameters).
 */
typedef struct wzp_sim_link {
    wzp_ts latency;    /* one-way share of this attachment */
    wzp_ts jitter;     /* extra delay drawn uniformly from [0, jitter] */
    uint32_t loss_ppm; /* probability of loss on this attachment, per million */
    bool reorder;      /* let jitter reorder packets (default: FIFO per hop) */
    bool down;         /* cut: every packet crossing this attachment is dropped */
} wzp_sim_link;

/* RFC 4787 dependency of a mapping or filter on the remote endpoint. */
typedef enum wzp_sim_dep {
    WZP_SIM_EI = 0, /* endpoint-independent */
    WZP_SIM_AD,     /* address-dependent */
    WZP_SIM_APD,    /* address-and-port-dependent */
} wzp_sim_dep;

typedef struct wzp_sim_nat_cfg {
    wzp_sim_dep mapping;
    wzp_sim_dep filtering;
    bool hairpin;              /* LAN → own WAN address is looped back in */
    bool port_preservation;    /* keep the internal port when it is free */
    bool sequential_ports;     /* otherwise: random ports from the range */
    uint16_t port_lo, port_hi; /* allocation range; 0,0 means 20000-29999 */
    wzp_ts timeout;            /* idle mapping lifetime; 0 means 30 s */
    bool inbound_refresh;      /* accepted inbound packets refresh the mapping */
    /*
     * No "drop unsolicited WAN input" firewall: an unsolicited or filtered
     * inbound packet leaves unreplied conntrack state for (port, remote), and
     * a later outbound flow to that remote is remapped to another port (the
     * trap measured on Linux; see natlab-notes).
     */
    bool wan_input_open;
} wzp_sim_nat_cfg;

typedef struct wzp_sim_stats {
    uint64_t sent;      /* packets handed to wzp_sim_send */
    uint64_t delivered; /* packets handed to a socket's callback */
    uint64_t dropped_loss;
    uint64_t dropped_filter;     /* NAT filtering refused an inbound packet */
    uint64_t dropped_no_mapping; /* inbound to a WAN port with no mapping */
    uint64_t dropped_hairpin;    /* hairpin attempted on a router without it */
    uint64_t dropped_blocked;    /* the "drop everything direct" switch */
    uint64_t dropped_no_route;
    uint64_t dropped_no_socket;
    uint64_t dropped_overflow; /* too many bytes in flight */
    uint64_t dropped_ports;    /* NAT ran out of ports */
    uint64_t dropped_down;     /* crossed an attachment that is down */
    uint64_t dropped_relay;    /* relay: the other side has not registered yet */
    uint64_t mappings_created;
    uint64_t mappings_expired;
    uint64_t trap_remaps; /* outbound flows remapped by the conntrack trap */
} wzp_sim_stats;

typedef void (*wzp_sim_recv_fn)(void *ctx, wzp_sim_sock *sock, const wzp_addr *from,
                                const uint8_t *data, size_t len);
typedef void (*wzp_sim_timer_fn)(void *ctx);
typedef void (*wzp_sim_trace_fn)(void *ctx, const char *line);

/* Bytes in flight above which new packets are dropped (and counted). */
#define WZP_SIM_MAX_INFLIGHT (64u * 1024 * 1024)
/* Attachments (host addresses and router sides) per simulation. */
#define WZP_SIM_MAX_NODES  64
#define WZP_SIM_MAX_PACKET 65535

wzp_sim *wzp_sim_new(uint64_t seed);
void wzp_sim_free(wzp_sim *sim);

wzp_ts wzp_sim_now(const wzp_sim *sim);
/* The simulation's deterministic PRNG (pcg32), for tests that want seeded choices. */
uint32_t wzp_sim_rand32(wzp_sim *sim);
/* Uniform in [0, n); 0 when n is 0. */
uint64_t wzp_sim_rand_below(wzp_sim *sim, uint64_t n);

/* The root network. Every other network hangs below it through routers. */
wzp_sim_net *wzp_sim_internet(wzp_sim *sim);

/*
 * A NAT router between `outside` and a new LAN it returns via
 * wzp_sim_router_lan(). wan_ip is its address on `outside`, lan_ip its
 * address on the LAN (IPv4 text, no port). NULL on bad arguments.
 */
wzp_sim_router *wzp_sim_router_new(wzp_sim *sim, const char *name, wzp_sim_net *outside,
                                   const char *wan_ip, wzp_sim_link wan_link, const char *lan_ip,
                                   wzp_sim_link lan_link, const wzp_sim_nat_cfg *cfg);
wzp_sim_net *wzp_sim_router_lan(wzp_sim_router *r);
const wzp_addr *wzp_sim_router_wan(const wzp_sim_router *r); /* port 0 */
const wzp_sim_stats *wzp_sim_router_stats(const wzp_sim_router *r);
/* Live (unexpired) mappings right now. */
size_t wzp_sim_router_mappings(wzp_sim_router *r);
/* Drops every packet crossing this router whose ends are both non-infra hosts. */
void wzp_sim_router_set_drop_direct(wzp_sim_router *r, bool on);
/* Forgets all NAT state (a router reboot, or every mapping expiring at once). */
void wzp_sim_router_flush(wzp_sim_router *r);
/*
 * The router's live mapping for packets from `internal` (a LAN address with
 * port) to `remote`, as the remote would see their source (WAN ip:port), into
 * *ext; false if there is none right now. Read-only: creates nothing.
 */
bool wzp_sim_router_mapped(wzp_sim_router *r, const wzp_addr *internal, const wzp_addr *remote,
                           wzp_addr *ext);

wzp_sim_host *wzp_sim_host_new(wzp_sim *sim, const char *name);
/* Attaches the host to `net` with address ip (IPv4 or IPv6 text, no port). */
int wzp_sim_host_add_addr(wzp_sim_host *h, wzp_sim_net *net, const char *ip, wzp_sim_link link);
/* Infra hosts (relays, STUN servers) are exempt from the drop-direct switches. */
void wzp_sim_host_set_infra(wzp_sim_host *h, bool on);
/* Drops every packet this host sends or receives unless the other end is infra. */
void wzp_sim_host_set_drop_direct(wzp_sim_host *h, bool on);
const char *wzp_sim_host_name(const wzp_sim_host *h);

/*
 * The link of the attachment with address ip (no port) on `net`: a host's
 * address or a router's side. Setting it changes latency, jitter, loss or
 * up/down from now on (packets already in flight keep their arrival time).
 * WZP_ERR_NOT_FOUND if nothing on `net` has that address.
 */
int wzp_sim_link_get(wzp_sim *sim, wzp_sim_net *net, const char *ip, wzp_sim_link *out);
int wzp_sim_link_set(wzp_sim *sim, wzp_sim_net *net, const char *ip, wzp_sim_link link);

/* Binds addr ("ip:port", the ip one of the host's) with a receive callback. */
wzp_sim_sock *wzp_sim_sock_bind(wzp_sim_host *h, const char *addr, wzp_sim_recv_fn fn, void *ctx);
wzp_sim_sock *wzp_sim_sock_bind_addr(wzp_sim_host *h, const wzp_addr *addr, wzp_sim_recv_fn fn,
                                     void *ctx);
/* Unbinds; packets already in flight to it are dropped on arrival. */
void wzp_sim_sock_close(wzp_sim_sock *s);
const wzp_addr *wzp_sim_sock_addr(const wzp_sim_sock *s);
wzp_sim_host *wzp_sim_sock_host(const wzp_sim_sock *s);

/*
 * Sends len bytes (copied) from s to `to`. Returns 0 (the packet may still be
 * lost on the way), or WZP_ERR_INVALID / WZP_ERR_TOO_BIG.
 */
int wzp_sim_send(wzp_sim_sock *s, const wzp_addr *to, const void *data, size_t len);

/*
 * A middlebox on every path: each packet handed to wzp_sim_send is shown to
 * fn first, and dropped (counted in dropped_blocked) when fn returns true.
 * For tests that lose one kind of packet only (probes, say). NULL to remove.
 */
typedef bool (*wzp_sim_filter_fn)(void *ctx, const wzp_addr *src, const wzp_addr *dst,
                                  const uint8_t *data, size_t len);
void wzp_sim_set_filter(wzp_sim *sim, wzp_sim_filter_fn fn, void *ctx);

/*
 * A relay for tests: an infra host on the internet with one socket (addr,
 * "ip:port") that forwards between two clients, sides 0 and 1, as a call
 * relay does, without the project's framing. wzp_sim_relay_send() sends a
 * payload from a client's socket to the relay; the relay latches the
 * address it came from as that side's (its server-reflexive address, see
 * wzp_sim_relay_seen) and forwards the payload to the other side's latched
 * address, where the callback sees it coming from wzp_sim_relay_addr(). Until
 * the other side has sent something the payload is dropped (dropped_relay).
 * A zero-length send only registers. Freed with the simulation.
 */
wzp_sim_relay *wzp_sim_relay_new(wzp_sim *sim, const char *addr, wzp_sim_link link);
int wzp_sim_relay_send(wzp_sim_relay *r, wzp_sim_sock *from, int side, const void *data,
                       size_t len);
const wzp_addr *wzp_sim_relay_addr(const wzp_sim_relay *r);
/* Where the relay last saw `side` (0 or 1) send from; NULL before it did. */
const wzp_addr *wzp_sim_relay_seen(const wzp_sim_relay *r, int side);

/* Calls fn(ctx) at virtual time t (now if t is in the past). Returns an id for cancel. */
uint64_t wzp_sim_at(wzp_sim *sim, wzp_ts t, wzp_sim_timer_fn fn, void *ctx);
void wzp_sim_cancel(wzp_sim *sim, uint64_t id);

/* Runs the next event, advancing the clock to it; false when the queue is empty. */
bool wzp_sim_step(wzp_sim *sim);
/* Runs every event due at or before t, then sets the clock to t. */
void wzp_sim_run_until(wzp_sim *sim, wzp_ts t);
/* Time of the next event, or WZP_TS_NEVER. */
wzp_ts wzp_sim_next_event(const wzp_sim *sim);

const wzp_sim_stats *wzp_sim_stats_get(const wzp_sim *sim);
/* A hash over every hop, delivery and drop so far: equal runs give equal hashes. */
uint64_t wzp_sim_trace_hash(const wzp_sim *sim);
/* Human-readable trace of every hop and drop (NULL fn to stop). */
void wzp_sim_set_trace(wzp_sim *sim, wzp_sim_trace_fn fn, void *ctx);

/* Parses "ip:port" or "ip" (port 0); aborts on bad text (tests pass literals). */
wzp_addr wzp_sim_addr(const char *text);
/* Short names for the dependency kinds: "EI", "AD", "APD". */
const char *wzp_sim_dep_name(wzp_sim_dep d);

#endif
