/*
 * The sans-I/O heart of a forwarding worker: what to do with one received
 * buffer (a datagram, or a UDP GRO train of same-size datagrams from one
 * sender). Each datagram is judged on its own: a DATA frame from its
 * channel's peer is rewritten in place for the partner, a KEEPALIVE is
 * answered, a STUN Binding request is answered (rate-limited per source),
 * QUIC/probes go to the control plane, the rest is counted.
 * What must be sent is appended to an outgoing list, consecutive datagrams to
 * one peer joined into trains (one GSO send each). The worker (forwarder.c)
 * owns sockets, threads and queues; this file only bytes, the table and time,
 * so it can be fuzzed.
 */
#ifndef WZP_RELAY_FWD_BATCH_H
#define WZP_RELAY_FWD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "relay/chan_table.h"
#include "wire/stun_server.h"

/* The kernel's limit on segments per GSO send (UDP_MAX_SEGMENTS). */
#define WZP_FWD_GSO_MAX_SEGS 64
/* Largest train the forwarder builds (a GSO send stays under 64 KiB). */
#define WZP_FWD_TRAIN_MAX 65000

/* Per-worker counters, by index. */
enum wzp_fwd_stat {
    WZP_FWD_S_RX,
    WZP_FWD_S_FWD,
    WZP_FWD_S_FWD_BYTES,
    WZP_FWD_S_KEEPALIVE,
    WZP_FWD_S_UNKNOWN_CHAN,
    WZP_FWD_S_WRONG_SRC,
    WZP_FWD_S_MALFORMED,
    WZP_FWD_S_CTL_QUEUED,
    WZP_FWD_S_CTL_FULL,
    WZP_FWD_S_SEND_FAILED,
    WZP_FWD_S_RX_TRAINS,
    WZP_FWD_S_TX_TRAINS,
    WZP_FWD_S_WAITS,
    WZP_FWD_S_STUN_ANSWERED,
    WZP_FWD_S_STUN_LIMITED,
    WZP_FWD_S_COUNT
};

/*
 * One datagram to send, or (nseg > 1) a train of nseg datagrams of `seg`
 * bytes each (the last may be shorter), contiguous at data, to one peer.
 */
typedef struct wzp_fwd_out {
    uint8_t *data;
    size_t len;
    wzp_addr peer;
    uint16_t seg;
    uint16_t nseg;
    bool is_data; /* DATA frames (counted as forwarded), else KEEPALIVE_ACKs and STUN answers */
} wzp_fwd_out;

#define WZP_FWD_STUN_BUCKETS 4096

/*
 * Per-worker limiter: a fixed table of GCRA buckets (a token bucket kept as
 * one timestamp, refilled lazily from `now`), indexed by a keyed hash of the
 * source's IPv4 address or IPv6 /64 (one host usually owns a /64). The key is
 * random per worker so nobody can aim collisions at a victim's bucket; an
 * accidental collision only makes two sources share a limit. 32 KiB, no
 * allocation, no locks.
 */
typedef struct wzp_fwd_stun_limit {
    uint64_t key;
    wzp_ts interval;                  /* between answers at the sustained rate; 0 = no limit */
    wzp_ts tolerance;                 /* (burst - 1) intervals: how far ahead a bucket may run */
    wzp_ts tat[WZP_FWD_STUN_BUCKETS]; /* per bucket: theoretical arrival time */
} wzp_fwd_stun_limit;

/* rate 0 = no limit; burst 0 = 2 x rate. */
void wzp_fwd_stun_limit_init(wzp_fwd_stun_limit *l, unsigned rate, unsigned burst, uint64_t key);
/* Takes one answer from `from`'s bucket at `now`; false when it is empty. */
bool wzp_fwd_stun_allow(wzp_fwd_stun_limit *l, const wzp_addr *from, wzp_ts now);

/* Hands a control packet (copied) to the control plane; false when full. */
typedef bool (*wzp_fwd_ctl_fn)(void *user, const wzp_addr *from, const uint8_t *p, size_t len);

typedef struct wzp_fwd_batch {
    wzp_chan_table *table;
    wzp_fwd_ctl_fn ctl;
    void *ctl_user;
    wzp_fwd_stun_limit *stun_limit; /* NULL = answer every valid request */
    const wzp_addr *stun_other;     /* OTHER-ADDRESS for STUN answers (RFC 5780), or NULL */
    /* Where STUN answers are written (they may be longer than the request,
     * so not in place); out entries point into it until sent. The caller
     * resets stun_used with its out list. Without room for
     * WZP_STUN_RESPONSE_MAX more bytes a request is not answered (counted as
     * rate-limited): size it for every datagram of a batch to never see that. */
    uint8_t *stun_buf;
    size_t stun_cap, stun_used;
    uint64_t stats[WZP_FWD_S_COUNT]; /* counts since the caller last cleared them */
} wzp_fwd_batch;

/*
 * Handles one received buffer of `len` bytes (0 = truncated or empty) holding
 * datagrams of `seg` bytes (0 = one datagram). Rewrites DATA headers in
 * place; appends to out[*nout], which must have room for one entry per
 * datagram. Returns how many datagrams the buffer held.
 */
size_t wzp_fwd_handle(wzp_fwd_batch *b, uint8_t *buf, size_t len, size_t seg, const wzp_addr *from,
                      wzp_ts now, wzp_fwd_out *out, size_t *nout);

#endif
