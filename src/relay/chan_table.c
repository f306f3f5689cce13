#include "relay/chan_table.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/rand.h"

#define MAX_BITS 24

/*
 * A peer address packed into atomics: `hdr` = family tag << 16 | port, and the
 * IP in ip[0..1] (IPv4 in the low 32 bits of ip[0]). Packing lets a reader copy
 * it with plain atomic loads inside the seqlock, and compare it in 3 words.
 */
#define FAM_V4 4u
#define FAM_V6 6u

typedef struct packed_addr {
    uint32_t hdr;
    uint64_t ip[2];
} packed_addr;

/*
 * One channel's routing state: written only by the control plane, read by
 * every worker, so two share a cache line (a pair's slots are usually
 * adjacent). Everything a reader touches is atomic.
 */
typedef struct slot {
    _Atomic uint32_t seq;     /* odd while the writer changes id/partner/addr */
    _Atomic uint32_t id;      /* channel id living here, 0 = free */
    _Atomic uint32_t partner; /* paired channel id */
    _Atomic uint32_t addr_hdr;
    _Atomic uint64_t addr_ip[2];
    /* The id frames for this peer carry when it is not `id`: a relay-to-relay
     * link channel, whose peer relay knows the call by its own channel id. */
    _Atomic uint32_t out_id;
} __attribute__((aligned(32))) slot;

/*
 * What workers write per packet, on its own cache line: kept apart from the
 * routing state so the worker forwarding B->A (which reads A's slot) does not
 * lose that line each time the worker forwarding A->B counts a packet.
 */
typedef struct slot_stats {
    _Atomic uint64_t last_active;
    _Atomic uint64_t packets;
    _Atomic uint64_t bytes;
} __attribute__((aligned(64))) slot_stats;

struct wzp_chan_table {
    slot *slots;
    slot_stats *stats;
    uint32_t mask;     /* capacity - 1 */
    uint32_t bits;     /* log2(capacity) */
    uint32_t gen_mask; /* generation field width, shifted down */
    pthread_mutex_t lock;
    /* Writer-only state (under lock). */
    uint32_t *free_idx; /* stack of free slot indexes */
    uint32_t nfree;
    uint32_t *gen; /* next generation per slot */
    size_t pairs;
};

static bool pack_addr(const wzp_addr *a, packed_addr *p)
{
    switch (wzp_addr_family(a)) {
    case AF_INET: {
        uint32_t ip;
        memcpy(&ip, &a->u.v4.sin_addr, 4);
        p->hdr = FAM_V4 << 16 | ntohs(a->u.v4.sin_port);
        p->ip[0] = ip;
        p->ip[1] = 0;
        return true;
    }
    case AF_INET6:
        p->hdr = FAM_V6 << 16 | ntohs(a->u.v6.sin6_port);
        memcpy(p->ip, &a->u.v6.sin6_addr, 16);
        return true;
    default:
        return false;
    }
}

/* Fills only what sendmsg reads; skips clearing the whole sockaddr_storage. */
static void unpack_addr(const packed_addr *p, wzp_addr *a)
{
    if ((p->hdr >> 16) == FAM_V4) {
        uint32_t ip = (uint32_t)p->ip[0];
        memset(&a->u.v4, 0, sizeof(a->u.v4));
        a->u.v4.sin_family = AF_INET;
        a->u.v4.sin_port = htons((uint16_t)p->hdr);
        memcpy(&a->u.v4.sin_addr, &ip, 4);
        a->len = sizeof(struct sockaddr_in);
    } else {
        memset(&a->u.v6, 0, sizeof(a->u.v6));
        a->u.v6.sin6_family = AF_INET6;
        a->u.v6.sin6_port = htons((uint16_t)p->hdr);
        memcpy(&a->u.v6.sin6_addr, p->ip, 16);
        a->len = sizeof(struct sockaddr_in6);
    }
}

static bool packed_equal(const packed_addr *x, const packed_addr *y)
{
    return x->hdr == y->hdr && x->ip[0] == y->ip[0] && x->ip[1] == y->ip[1];
}

/* Consistent snapshot of a slot's seqlocked fields. */
typedef struct snap {
    uint32_t id, partner, out_id;
    packed_addr addr;
} snap;

static void read_slot(slot *s, snap *out)
{
    for (unsigned spins = 0;; spins++) {
        uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (s1 & 1u) {
            /* A writer is mid-update (a few stores); if it was preempted there, let it run. */
            if (spins > 64)
                sched_yield();
            continue;
        }
        out->id = atomic_load_explicit(&s->id, memory_order_relaxed);
        out->partner = atomic_load_explicit(&s->partner, memory_order_relaxed);
        out->out_id = atomic_load_explicit(&s->out_id, memory_order_relaxed);
        out->addr.hdr = atomic_load_explicit(&s->addr_hdr, memory_order_relaxed);
        out->addr.ip[0] = atomic_load_explicit(&s->addr_ip[0], memory_order_relaxed);
        out->addr.ip[1] = atomic_load_explicit(&s->addr_ip[1], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) == s1)
            return;
    }
}

/* Writer side (lock held): bracket relaxed stores with an odd/even sequence. */
static void write_begin(slot *s)
{
    uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(slot *s)
{
    uint32_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, q + 1, memory_order_release);
}

static void store_addr(slot *s, const packed_addr *p)
{
    atomic_store_explicit(&s->addr_hdr, p->hdr, memory_order_relaxed);
    atomic_store_explicit(&s->addr_ip[0], p->ip[0], memory_order_relaxed);
    atomic_store_explicit(&s->addr_ip[1], p->ip[1], memory_order_relaxed);
}

void wzp_chan_table_config_default(wzp_chan_table_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_channels = WZP_CHAN_TABLE_DEFAULT_CHANNELS;
}

int wzp_chan_table_new(wzp_chan_table **out, const wzp_chan_table_config *cfg)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_chan_table_config def;
    if (!cfg) {
        wzp_chan_table_config_default(&def);
        cfg = &def;
    }
    uint32_t max_channels = cfg->max_channels;
    uint32_t bits = 1;
    while ((1u << bits) < max_channels && bits < MAX_BITS)
        bits++;
    if (max_channels > (1u << MAX_BITS))
        return WZP_ERR_INVALID;
    uint32_t cap = 1u << bits;
    wzp_chan_table *t = calloc(1, sizeof(*t));
    if (!t)
        return WZP_ERR_NOMEM;
    void *mem = NULL;
    if (posix_memalign(&mem, 64, (size_t)cap * sizeof(slot)) != 0)
        mem = NULL;
    t->slots = mem;
    mem = NULL;
    if (posix_memalign(&mem, 64, (size_t)cap * sizeof(slot_stats)) != 0)
        mem = NULL;
    t->stats = mem;
    t->free_idx = malloc((size_t)cap * sizeof(uint32_t));
    t->gen = malloc((size_t)cap * sizeof(uint32_t));
    if (!t->slots || !t->stats || !t->free_idx || !t->gen ||
        pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->slots);
        free(t->stats);
        free(t->free_idx);
        free(t->gen);
        free(t);
        return WZP_ERR_NOMEM;
    }
    memset(t->slots, 0, (size_t)cap * sizeof(slot));
    memset(t->stats, 0, (size_t)cap * sizeof(slot_stats));
    t->bits = bits;
    t->mask = cap - 1;
    t->gen_mask = (uint32_t)((1ull << (32 - bits)) - 1);
    /* Random starting generations make ids look unrelated across slots and runs. */
    uint64_t seed = wzp_random_u64();
    for (uint32_t i = 0; i < cap; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t g = (uint32_t)(seed >> 33) & t->gen_mask;
        t->gen[i] = g ? g : 1;
        /* Popped from the end: hand out low indexes first, keeping the hot set compact. */
        t->free_idx[i] = cap - 1 - i;
    }
    t->nfree = cap;
    *out = t;
    return 0;
}

void wzp_chan_table_free(wzp_chan_table *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t->stats);
    free(t->free_idx);
    free(t->gen);
    free(t);
}

static inline slot *slot_of(wzp_chan_table *t, uint32_t chan)
{
    return &t->slots[chan & t->mask];
}

static inline slot_stats *stats_of(wzp_chan_table *t, uint32_t chan)
{
    return &t->stats[chan & t->mask];
}

/* Lock held. A channel is open if its slot currently holds exactly this id. */
static bool is_open(wzp_chan_table *t, uint32_t chan)
{
    return chan != 0 && atomic_load_explicit(&slot_of(t, chan)->id, memory_order_relaxed) == chan;
}

static uint32_t take_id(wzp_chan_table *t)
{
    uint32_t idx = t->free_idx[--t->nfree];
    uint32_t g = t->gen[idx];
    t->gen[idx] = (g + 1) & t->gen_mask ? (g + 1) & t->gen_mask : 1;
    return g << t->bits | idx;
}

static void open_slot(wzp_chan_table *t, uint32_t id, uint32_t partner, const packed_addr *p,
                      wzp_ts now)
{
    slot *s = slot_of(t, id);
    slot_stats *st = stats_of(t, id);
    atomic_store_explicit(&st->last_active, now, memory_order_relaxed);
    atomic_store_explicit(&st->packets, 0, memory_order_relaxed);
    atomic_store_explicit(&st->bytes, 0, memory_order_relaxed);
    write_begin(s);
    atomic_store_explicit(&s->id, id, memory_order_relaxed);
    atomic_store_explicit(&s->partner, partner, memory_order_relaxed);
    atomic_store_explicit(&s->out_id, 0, memory_order_relaxed);
    store_addr(s, p);
    write_end(s);
}

int wzp_chan_table_open_pair(wzp_chan_table *t, const wzp_addr *addr_a, const wzp_addr *addr_b,
                             wzp_ts now, uint32_t *chan_a, uint32_t *chan_b)
{
    packed_addr pa, pb;
    if (!pack_addr(addr_a, &pa) || !pack_addr(addr_b, &pb))
        return WZP_ERR_INVALID;
    pthread_mutex_lock(&t->lock);
    if (t->nfree < 2) {
        pthread_mutex_unlock(&t->lock);
        return WZP_ERR_LIMIT;
    }
    uint32_t a = take_id(t), b = take_id(t);
    open_slot(t, a, b, &pa, now);
    open_slot(t, b, a, &pb, now);
    t->pairs++;
    pthread_mutex_unlock(&t->lock);
    *chan_a = a;
    *chan_b = b;
    return 0;
}

int wzp_chan_table_set_addr(wzp_chan_table *t, uint32_t chan, const wzp_addr *addr)
{
    packed_addr p;
    if (!pack_addr(addr, &p))
        return WZP_ERR_INVALID;
    pthread_mutex_lock(&t->lock);
    int rv = WZP_ERR_NOT_FOUND;
    if (is_open(t, chan)) {
        slot *s = slot_of(t, chan);
        write_begin(s);
        store_addr(s, &p);
        write_end(s);
        rv = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return rv;
}

int wzp_chan_table_set_peer_id(wzp_chan_table *t, uint32_t chan, uint32_t peer_id)
{
    pthread_mutex_lock(&t->lock);
    int rv = WZP_ERR_NOT_FOUND;
    if (is_open(t, chan)) {
        slot *s = slot_of(t, chan);
        write_begin(s);
        atomic_store_explicit(&s->out_id, peer_id, memory_order_relaxed);
        write_end(s);
        rv = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return rv;
}

static void close_slot(wzp_chan_table *t, uint32_t chan)
{
    slot *s = slot_of(t, chan);
    write_begin(s);
    atomic_store_explicit(&s->id, 0, memory_order_relaxed);
    atomic_store_explicit(&s->partner, 0, memory_order_relaxed);
    write_end(s);
    t->free_idx[t->nfree++] = chan & t->mask;
}

/* Lock held; chan is open. Returns the partner id. */
static uint32_t close_pair_locked(wzp_chan_table *t, uint32_t chan)
{
    uint32_t partner = atomic_load_explicit(&slot_of(t, chan)->partner, memory_order_relaxed);
    close_slot(t, chan);
    if (is_open(t, partner))
        close_slot(t, partner);
    t->pairs--;
    return partner;
}

int wzp_chan_table_close_pair(wzp_chan_table *t, uint32_t chan)
{
    pthread_mutex_lock(&t->lock);
    int rv = WZP_ERR_NOT_FOUND;
    if (is_open(t, chan)) {
        close_pair_locked(t, chan);
        rv = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return rv;
}

size_t wzp_chan_table_expire(wzp_chan_table *t, wzp_ts now, wzp_ts idle, wzp_chan_expired_cb cb,
                             void *user)
{
    enum { CHUNK = 64 };
    uint32_t done[CHUNK][2];
    size_t total = 0;
    uint32_t i = 0;
    uint32_t cap = t->mask + 1;
    while (i < cap) {
        size_t n = 0;
        pthread_mutex_lock(&t->lock);
        for (; i < cap && n < CHUNK; i++) {
            slot *s = &t->slots[i];
            uint32_t id = atomic_load_explicit(&s->id, memory_order_relaxed);
            if (!id)
                continue;
            uint32_t partner = atomic_load_explicit(&s->partner, memory_order_relaxed);
            /* Each pair once: from its lower slot index. */
            if ((partner & t->mask) < i)
                continue;
            wzp_ts last = atomic_load_explicit(&t->stats[i].last_active, memory_order_relaxed);
            wzp_ts lp =
                atomic_load_explicit(&stats_of(t, partner)->last_active, memory_order_relaxed);
            if (lp > last)
                last = lp;
            if (now > last && now - last >= idle) {
                close_pair_locked(t, id);
                done[n][0] = id;
                done[n][1] = partner;
                n++;
            }
        }
        pthread_mutex_unlock(&t->lock);
        for (size_t k = 0; cb && k < n; k++)
            cb(done[k][0], done[k][1], user);
        total += n;
    }
    return total;
}

int wzp_chan_table_info(wzp_chan_table *t, uint32_t chan, wzp_chan_info *out)
{
    snap sn;
    slot *s = slot_of(t, chan);
    read_slot(s, &sn);
    if (chan == 0 || sn.id != chan)
        return WZP_ERR_NOT_FOUND;
    memset(out, 0, sizeof(*out));
    out->partner = sn.partner;
    unpack_addr(&sn.addr, &out->addr);
    slot_stats *st = stats_of(t, chan);
    out->last_active = atomic_load_explicit(&st->last_active, memory_order_relaxed);
    out->packets = atomic_load_explicit(&st->packets, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&st->bytes, memory_order_relaxed);
    return 0;
}

size_t wzp_chan_table_pairs(wzp_chan_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->pairs;
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* Activity is stamped at most every ~1 ms per channel: expiry needs no finer
 * grain, and skipping the store keeps the line clean for the other workers. */
static inline void stamp(slot_stats *s, wzp_ts now)
{
    wzp_ts last = atomic_load_explicit(&s->last_active, memory_order_relaxed);
    if (now > last + WZP_MS(1))
        atomic_store_explicit(&s->last_active, now, memory_order_relaxed);
}

static int check_source(wzp_chan_table *t, uint32_t chan, const wzp_addr *from, snap *sn)
{
    packed_addr pf;
    if (chan == 0)
        return WZP_ERR_NOT_FOUND;
    read_slot(slot_of(t, chan), sn);
    if (sn->id != chan)
        return WZP_ERR_NOT_FOUND;
    if (!pack_addr(from, &pf) || !packed_equal(&pf, &sn->addr))
        return WZP_ERR_REJECTED;
    return 0;
}

int wzp_chan_table_route(wzp_chan_table *t, uint32_t chan, const wzp_addr *from, wzp_ts now,
                         size_t bytes, uint32_t *partner, wzp_addr *to)
{
    snap me, other;
    int rv = check_source(t, chan, from, &me);
    if (rv < 0)
        return rv;
    read_slot(slot_of(t, me.partner), &other);
    if (other.id != me.partner || other.partner != chan)
        return WZP_ERR_NOT_FOUND;
    slot_stats *st = stats_of(t, chan);
    stamp(st, now);
    atomic_fetch_add_explicit(&st->packets, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->bytes, bytes, memory_order_relaxed);
    *partner = other.out_id ? other.out_id : me.partner;
    unpack_addr(&other.addr, to);
    return 0;
}

int wzp_chan_table_touch(wzp_chan_table *t, uint32_t chan, const wzp_addr *from, wzp_ts now)
{
    snap me;
    int rv = check_source(t, chan, from, &me);
    if (rv == 0)
        stamp(stats_of(t, chan), now);
    return rv;
}
