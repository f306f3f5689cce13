/*
 * The relay's forwarding plane: worker threads, each with its own
 * SO_REUSEPORT socket on the relay port, that carry relay frames between the
 * two peers of a channel pair without looking inside them.
 *
 * Per received batch (recvmmsg), each worker takes every datagram on its
 * own (a buffer may hold a UDP GRO train of same-size datagrams from one
 * sender; it is split into them):
 *   - relay DATA frame: looks the channel up (wzp_chan_table_route), checks
 *     the source address is the channel's peer, rewrites the channel id to the
 *     receiver's own, in place (same length: never more bytes out than in),
 *     and queues it for the partner's current address;
 *   - relay KEEPALIVE: same check, refreshes activity, echoes KEEPALIVE_ACK;
 *   - STUN Binding request: answered here, at most `stun_rate` answers per
 *     second per source address (IPv6: /64) and worker, so the relay is a
 *     poor reflector;
 *   - QUIC, probes: copied to this worker's control queue (bounded,
 *     lock-free, single producer / single consumer) for the control thread;
 *   - anything else: dropped and counted.
 * then sends everything with sendmmsg. Consecutive datagrams of a train that
 * all go to the same peer leave as one UDP GSO send: a bulk flow costs one
 * kernel pass per train, while lone voice packets are unaffected.
 *
 * The control plane owns the wzp_chan_table and runs its own event loop:
 * it polls wzp_forwarder_ctl_fd(), drains packets with
 * wzp_forwarder_ctl_recv(), answers with wzp_forwarder_send(), opens/moves/
 * closes channels in the table, and calls wzp_chan_table_expire() about once
 * a second.
 */
#ifndef WZP_RELAY_FORWARDER_H
#define WZP_RELAY_FORWARDER_H

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "net/udp.h"
#include "relay/chan_table.h"

/* Largest datagram the relay port accepts; longer ones are dropped as malformed. */
#define WZP_FWD_MAX_DGRAM 2048

/*
 * Receive coalescing, as a NIC moderates interrupts: a worker that keeps being
 * woken for a few datagrams at a time (wake-ups close together, fewer than
 * 16 datagrams each) waits before its next receive, long enough to gather
 * about 16 at the rate just seen, at most this long. One wake-up then carries
 * many voice packets instead of one or two: a wake-up costs several times a
 * packet's own kernel work. It adds at most this much latency per relay hop,
 * only under load; an idle relay answers the first packet at once.
 */
#define WZP_FWD_COALESCE_US 250

/*
 * Default STUN answers per second per source (burst: twice that), so the
 * relay cannot be aimed at a victim as a reflector: an answer is up to
 * WZP_STUN_RESPONSE_GROWTH bytes longer than its spoofable request. A client
 * needs a handful per call.
 */
#define WZP_FWD_STUN_RATE 10

typedef struct wzp_forwarder wzp_forwarder;

/* Which control lane a control packet goes to (< ctl_lanes; others mean 0).
 * Called on worker threads, concurrently: a pure function of its inputs. */
typedef unsigned (*wzp_fwd_route_fn)(void *user, const wzp_addr *from, const uint8_t *p,
                                     size_t len);

typedef struct wzp_forwarder_config {
    wzp_addr bind;      /* relay port; port 0 picks one (see wzp_forwarder_local_addr) */
    wzp_addr bind6;     /* optional (len 0 = none): also serve this IPv6 address, with
                           `bind` IPv4; pairs may then join an IPv4 and an IPv6 peer */
    unsigned workers;   /* per address family; 0 = number of online CPUs */
    unsigned ctl_queue; /* control-queue slots per worker and lane, rounded up to 2^k;
                           0 = 256 */
    /* Control lanes: consumers of control packets, each with its own queue per
     * worker and its own fd (the relay's control thread, and its QUIC shards).
     * 0 = 1. ctl_route picks a packet's lane (NULL: lane 0); datagrams for
     * TCP clients (tunnel addresses) always go to lane 0. */
    unsigned ctl_lanes;
    wzp_fwd_route_fn ctl_route;
    void *ctl_route_user;
    int rcvbuf, sndbuf;  /* socket buffers per worker; 0 = 4 MiB */
    unsigned slice_us;   /* 0 = kernel default; else the scheduler slice workers ask for
                            (Linux EEVDF custom slice): shorter = scheduled sooner after a
                            wake-up on busy cores. Not shown to help on the shared bench
                            machine, hence off by default. */
    int coalesce_us;     /* 0 = WZP_FWD_COALESCE_US, < 0 = off: see below */
    int stun_rate;       /* STUN answers per second per source and worker:
                            0 = WZP_FWD_STUN_RATE, < 0 = no limit */
    unsigned stun_burst; /* answers a source may get at once; 0 = 2 x stun_rate */
    /* Optional (len 0 = none): the relay's alternate STUN address per family (stun_alt.h),
     * named in answers as OTHER-ADDRESS. */
    wzp_addr stun_other, stun_other6;
    wzp_chan_table *table; /* borrowed; must outlive the forwarder */
} wzp_forwarder_config;

/* All zero: every field's default; set bind and table. */
void wzp_forwarder_config_default(wzp_forwarder_config *cfg);

/* Why packets were dropped, forwarded or queued; sums over all workers. */
typedef struct wzp_forwarder_stats {
    uint64_t rx;                /* datagrams received */
    uint64_t forwarded;         /* data frames sent on to the partner */
    uint64_t forwarded_bytes;   /* their bytes */
    uint64_t keepalives;        /* keep-alives accepted (and answered) */
    uint64_t unknown_channel;   /* unknown, stale or closed channel */
    uint64_t wrong_source;      /* known channel, source is not its peer */
    uint64_t malformed;         /* short, truncated, unknown relay type or unknown protocol,
                                   STUN that is not a valid Binding request */
    uint64_t ctl_queued;        /* handed to the control plane */
    uint64_t ctl_full;          /* dropped: control queue full */
    uint64_t send_failed;       /* kernel refused (socket buffer full) */
    uint64_t rx_trains;         /* GRO buffers holding several datagrams of one sender */
    uint64_t tx_trains;         /* GSO sends carrying several datagrams to one peer */
    uint64_t coalesce_waits;    /* receive-coalescing waits taken */
    uint64_t stun_answered;     /* STUN Binding requests answered */
    uint64_t stun_rate_limited; /* valid STUN requests not answered: source over its rate */
} wzp_forwarder_stats;

/* Binds the sockets and starts the workers. 0 or a negative wzp_error
 * (WZP_ERR_INVALID for a NULL cfg: bind and table are required; *out untouched). */
int wzp_forwarder_new(wzp_forwarder **out, const wzp_forwarder_config *cfg);
/* Stops and joins the workers, closes the sockets, frees everything. NULL is fine. */
void wzp_forwarder_free(wzp_forwarder *f);

/* The bound relay address (with the actual port). */
const wzp_addr *wzp_forwarder_local_addr(const wzp_forwarder *f);
/* The bound IPv6 address of a dual-stack forwarder, or NULL. */
const wzp_addr *wzp_forwarder_local_addr6(const wzp_forwarder *f);
/* Worker threads in all (per family times families). */
unsigned wzp_forwarder_workers(const wzp_forwarder *f);

/* Control lanes (cfg.ctl_lanes, at least 1). */
unsigned wzp_forwarder_ctl_lanes(const wzp_forwarder *f);

/*
 * An eventfd that becomes readable when control packets are queued on
 * `lane`; level stays set until wzp_forwarder_ctl_recv() is called. Owned by
 * the forwarder. -1 for no such lane.
 */
int wzp_forwarder_ctl_fd(const wzp_forwarder *f, unsigned lane);

/*
 * Copies up to n control packets queued on `lane` (QUIC, probes; datagrams
 * for TCP clients on lane 0) into msgs, each msgs[i].data having cap >=
 * WZP_FWD_MAX_DGRAM (else WZP_ERR_INVALID, as for no such lane), and sets
 * len and peer (the sender). Returns the count (0 when none). One thread
 * per lane: the queues are single-consumer.
 */
int wzp_forwarder_ctl_recv(wzp_forwarder *f, unsigned lane, wzp_udp_msg *msgs, size_t n);

/*
 * Sends one datagram from the relay port (control replies: QUIC).
 * Any thread. 0, WZP_ERR_AGAIN (socket buffer full), WZP_ERR_INVALID (no
 * socket of that address family) or WZP_ERR_IO.
 */
int wzp_forwarder_send(wzp_forwarder *f, const wzp_addr *to, const uint8_t *bytes, size_t len);

void wzp_forwarder_get_stats(const wzp_forwarder *f, wzp_forwarder_stats *out);

/* One worker's share of the load (metrics). */
typedef struct wzp_forwarder_worker_stats {
    wzp_forwarder_stats stats; /* this worker's counters alone */
    int family;                /* AF_INET or AF_INET6: the socket it serves */
    uint64_t cpu_ns;           /* CPU time the worker thread has used (0 if unknown) */
} wzp_forwarder_worker_stats;

/* Worker i (0 .. wzp_forwarder_workers() - 1), from any thread while the forwarder
 * lives: its counters are atomics. 0 or WZP_ERR_INVALID (no such worker). */
int wzp_forwarder_get_worker_stats(const wzp_forwarder *f, unsigned i,
                                   wzp_forwarder_worker_stats *out);

#endif
