/*
 * The relay's channel table: which peer address owns a channel id, and which
 * channel it is paired with. Read by every forwarding worker on every packet,
 * written by the control plane when calls start, move (NAT rebinding) and end.
 *
 * Channel ids: slot index in the low bits, a per-slot generation in the high
 * bits (never 0). Lookup is one array index; an id whose slot was reused
 * carries an old generation and never matches. Ids are not secret: the
 * forwarder authorises a packet by its source address, which must equal the
 * channel's registered peer address.
 *
 * Concurrency: any number of readers (wzp_chan_table_route/touch, lock-free,
 * no allocation) run alongside writers (open/set_addr/close/expire, serialised
 * by an internal mutex). Each slot is a seqlock over atomic fields, so a
 * reader sees either the old or the new address/partner/id, never a mix.
 * Slots live in one array for the table's lifetime, so there is nothing to
 * free while a reader may still look at it.
 *
 * Time is CLOCK_MONOTONIC nanoseconds (wzp_ts); the forwarder stamps activity
 * with that clock, so the control plane must pass the same clock to expire().
 */
#ifndef WZP_RELAY_CHAN_TABLE_H
#define WZP_RELAY_CHAN_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"

typedef struct wzp_chan_table wzp_chan_table;

/*
 * A table for up to `cfg->max_channels` channels (two per call), rounded up to a
 * power of two, at most 2^24. Memory is allocated once here: about 136 B per
 * channel (routing state, a cache line of counters, free-list bookkeeping).
 */
#define WZP_CHAN_TABLE_DEFAULT_CHANNELS 1024

typedef struct wzp_chan_table_config {
    uint32_t max_channels; /* see above; default WZP_CHAN_TABLE_DEFAULT_CHANNELS */
} wzp_chan_table_config;

void wzp_chan_table_config_default(wzp_chan_table_config *cfg);
/* cfg NULL: defaults. 0, WZP_ERR_INVALID (over 2^24) or WZP_ERR_NOMEM (*out untouched). */
int wzp_chan_table_new(wzp_chan_table **out, const wzp_chan_table_config *cfg);
/* Frees the table. No reader may use it any more (stop the forwarder first). */
void wzp_chan_table_free(wzp_chan_table *t);

/* --- Control plane (any thread; writers are serialised internally) --------- */

/*
 * Opens a pair of channels for a call between the peer at addr_a and the peer
 * at addr_b (each the source address of that peer's control connection).
 * *chan_a is the id peer A puts in its frames (and receives B's packets
 * with); *chan_b likewise for B. WZP_ERR_LIMIT when the table is full,
 * WZP_ERR_INVALID for an address that is not IPv4/IPv6.
 */
int wzp_chan_table_open_pair(wzp_chan_table *t, const wzp_addr *addr_a, const wzp_addr *addr_b,
                             wzp_ts now, uint32_t *chan_a, uint32_t *chan_b);

/* New peer address for a channel (the peer's NAT rebound). WZP_ERR_NOT_FOUND if closed. */
int wzp_chan_table_set_addr(wzp_chan_table *t, uint32_t chan, const wzp_addr *addr);

/*
 * Frames delivered to chan's peer carry peer_id instead of chan (0: chan
 * again). For a cross-relay call's link channel, whose peer is the other
 * relay: it knows the call by its own channel id. WZP_ERR_NOT_FOUND if closed.
 */
int wzp_chan_table_set_peer_id(wzp_chan_table *t, uint32_t chan, uint32_t peer_id);

/* Closes the pair `chan` belongs to (either channel id of it). WZP_ERR_NOT_FOUND if closed. */
int wzp_chan_table_close_pair(wzp_chan_table *t, uint32_t chan);

/* Called for each pair closed by expiry, without the table lock held. */
typedef void (*wzp_chan_expired_cb)(uint32_t chan_a, uint32_t chan_b, void *user);

/*
 * Closes every pair on which neither peer sent anything (data or keep-alive)
 * for `idle` ns before `now`. Scans the whole table: call it about once a
 * second. Returns how many pairs were closed; cb may be NULL.
 */
size_t wzp_chan_table_expire(wzp_chan_table *t, wzp_ts now, wzp_ts idle, wzp_chan_expired_cb cb,
                             void *user);

typedef struct wzp_chan_info {
    uint32_t partner;   /* the paired channel id */
    wzp_addr addr;      /* this channel's peer address */
    wzp_ts last_active; /* last packet from this peer (or open time) */
    uint64_t packets;   /* packets from this peer forwarded to the partner */
    uint64_t bytes;     /* their bytes, headers included */
} wzp_chan_info;

/* Snapshot of one channel. WZP_ERR_NOT_FOUND if closed. */
int wzp_chan_table_info(wzp_chan_table *t, uint32_t chan, wzp_chan_info *out);
/* Open pairs right now. */
size_t wzp_chan_table_pairs(wzp_chan_table *t);

/* --- Hot path (forwarding workers; lock-free) ----------------------------- */

/*
 * A packet of `bytes` from `from` on channel `chan`: checks the channel is open
 * and owned by `from`, stamps activity and counters, and returns the partner's
 * channel id and current address. 0, WZP_ERR_NOT_FOUND (unknown, stale or
 * closed channel, or a partner closing concurrently) or WZP_ERR_REJECTED
 * (source address is not the channel's peer). `partner` is the id to write
 * in the frame (the partner's peer id when it has one, see set_peer_id). `to` is filled with the
 * family, address and port only (enough for sendmsg).
 */
int wzp_chan_table_route(wzp_chan_table *t, uint32_t chan, const wzp_addr *from, wzp_ts now,
                         size_t bytes, uint32_t *partner, wzp_addr *to);

/* A keep-alive on `chan` from `from`: same checks as route, stamps activity only. */
int wzp_chan_table_touch(wzp_chan_table *t, uint32_t chan, const wzp_addr *from, wzp_ts now);

#endif
