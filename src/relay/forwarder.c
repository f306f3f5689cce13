#include "relay/forwarder.h"
#include "relay/fwd_batch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "common/rand.h"
#include "common/tunnel_addr.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/*
 * A receive buffer holds one datagram or, with UDP_GRO, a train of same-size
 * datagrams from one sender (the kernel caps a train at 64 KiB).
 */
#define RX_BUF 65536
/* Datagrams a coalescing wait aims to gather per wake-up. */
#define COALESCE_PKTS 16
/* Room for a STUN answer to every datagram of a receive batch. */
#define STUN_BUF ((size_t)WZP_UDP_BATCH * WZP_FWD_GSO_MAX_SEGS * WZP_STUN_RESPONSE_MAX)

/* One control packet waiting for the control thread. */
typedef struct ctl_pkt {
    wzp_addr from;
    size_t len;
    uint8_t data[WZP_FWD_MAX_DGRAM];
} ctl_pkt;

/*
 * Counters written by one worker only (plain load+store, no RMW), read by
 * anyone: atomics so the cross-thread reads are well-defined.
 */
typedef struct wstats {
    _Atomic uint64_t v[WZP_FWD_S_COUNT];
} wstats;

/* One control queue: SPSC ring, producer = a worker, consumer = the lane's thread. */
typedef struct lane_ring {
    ctl_pkt *ring;
    size_t mask;
    _Alignas(64) _Atomic size_t head; /* consumer position */
    _Alignas(64) _Atomic size_t tail; /* producer position */
} lane_ring;

typedef struct worker {
    struct wzp_forwarder *fwd;
    unsigned index;
    int fd;
    int family; /* AF_INET or AF_INET6 */
    pthread_t thread;
    bool started;
    lane_ring *lanes; /* one control queue per lane */
    bool *pushed;     /* lanes this batch queued to (their consumers get woken) */
    _Alignas(64) wstats stats;
    /* Receive buffers (worker-private). */
    uint8_t (*bufs)[RX_BUF];
    /* STUN: answers of one receive batch (any datagram may be one), limiter. */
    uint8_t *stun_buf;
    wzp_fwd_stun_limit *stun_limit;
    bool gso_off; /* a GSO send failed: send trains one datagram at a time */
} worker;

struct wzp_forwarder {
    wzp_chan_table *table;
    unsigned nworkers;
    worker *workers;
    wzp_addr local;   /* cfg->bind with the actual port */
    wzp_addr local6;  /* cfg->bind6 with the actual port, len 0 if none */
    int family_fd[2]; /* one socket per family (worker-owned) for cross-family sends */
    unsigned nlanes;
    int *lane_efd;     /* workers -> a lane's consumer: "packets queued" */
    size_t *lane_next; /* per lane: round-robin start for ctl_recv (consumer-only) */
    wzp_fwd_route_fn route;
    void *route_user;
    _Atomic bool stopping;
    unsigned slice_us;
    wzp_ts coalesce;                /* ns; 0 = off */
    unsigned stun_rate, stun_burst; /* rate 0 = no limit */
    wzp_addr stun_other[2];         /* per family (fam_idx), len 0 = none */
};

static inline void add(worker *w, int which, uint64_t n)
{
    _Atomic uint64_t *c = &w->stats.v[which];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static wzp_ts now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (wzp_ts)ts.tv_sec * 1000000000ull + (wzp_ts)ts.tv_nsec;
}

/* Producer side: into lane `lane`'s ring. False when full. */
static bool lane_push(worker *w, unsigned lane, const wzp_addr *from, const uint8_t *data,
                      size_t len)
{
    lane_ring *r = &w->lanes[lane];
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    if (t - h > r->mask)
        return false;
    ctl_pkt *p = &r->ring[t & r->mask];
    p->from = *from;
    p->len = len;
    memcpy(p->data, data, len);
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    w->pushed[lane] = true;
    return true;
}

/* A control packet from a worker's batch: to the lane the route names. */
static bool ctl_push(void *user, const wzp_addr *from, const uint8_t *data, size_t len)
{
    worker *w = user;
    wzp_forwarder *f = w->fwd;
    unsigned lane = f->route ? f->route(f->route_user, from, data, len) : 0;
    return lane_push(w, lane < f->nlanes ? lane : 0, from, data, len);
}

/* Wakes the consumers of the lanes this worker queued to since the last call. */
static void wake_lanes(worker *w)
{
    for (unsigned k = 0; k < w->fwd->nlanes; k++) {
        if (!w->pushed[k])
            continue;
        w->pushed[k] = false;
        uint64_t one = 1;
        ssize_t wr = write(w->fwd->lane_efd[k], &one, sizeof(one));
        (void)wr; /* only fails when the counter is saturated: still readable */
    }
}

/* Per-message control buffer: UDP_GRO on receive, UDP_SEGMENT on send. */
typedef union cmsgbuf {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
} cmsgbuf;

typedef struct rx_batch {
    struct mmsghdr hdr[WZP_UDP_BATCH];
    struct iovec iov[WZP_UDP_BATCH];
    wzp_addr from[WZP_UDP_BATCH];
    cmsgbuf ctl[WZP_UDP_BATCH];
} rx_batch;

static void recv_init(worker *w, rx_batch *b)
{
    memset(b, 0, sizeof(*b));
    for (size_t i = 0; i < WZP_UDP_BATCH; i++) {
        b->iov[i].iov_base = w->bufs[i];
        b->iov[i].iov_len = RX_BUF;
        b->hdr[i].msg_hdr.msg_iov = &b->iov[i];
        b->hdr[i].msg_hdr.msg_iovlen = 1;
        b->hdr[i].msg_hdr.msg_name = &b->from[i].u.ss;
    }
}

/* The train's segment size from a UDP_GRO control message; 0 = a single datagram. */
static size_t gro_segment(struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int v;
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            return v > 0 ? (size_t)v : 0;
        }
    }
    return 0;
}

/*
 * Blocks until at least one datagram is waiting, then takes all that are
 * (up to a batch): one syscall per wake-up instead of poll + recvmmsg, which
 * matters at voice load where a wake-up often carries only a few packets.
 * Returns the count, 0 on timeout/shutdown, or -1 on error.
 */
static int recv_wait(int fd, rx_batch *b, int used)
{
    /* Only the entries the previous call filled need their lengths reset. */
    for (int i = 0; i < used; i++) {
        b->hdr[i].msg_hdr.msg_namelen = sizeof(b->from[i].u.ss);
        b->hdr[i].msg_hdr.msg_control = b->ctl[i].buf;
        b->hdr[i].msg_hdr.msg_controllen = sizeof(b->ctl[i].buf);
    }
    int got = recvmmsg(fd, b->hdr, WZP_UDP_BATCH, MSG_WAITFORONE, NULL);
    if (got < 0) {
        /* Timeout, signal, or ICMP errors of earlier sends surfacing here: not fatal. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED ||
            errno == EHOSTUNREACH || errno == ENETUNREACH)
            return 0;
        return -1;
    }
    for (int i = 0; i < got; i++) {
        b->from[i].len = b->hdr[i].msg_hdr.msg_namelen;
        wzp_addr_unmap_v4(&b->from[i]);
    }
    return got;
}

static int fam_idx(int family)
{
    return family == AF_INET6;
}

/* Fills a sendmmsg header for one entry; ctl receives its UDP_SEGMENT when a train. */
static void tx_fill(const wzp_fwd_out *o, struct mmsghdr *h, struct iovec *iov, cmsgbuf *ctl,
                    bool gso)
{
    memset(h, 0, sizeof(*h));
    iov->iov_base = o->data;
    iov->iov_len = o->len;
    h->msg_hdr.msg_iov = iov;
    h->msg_hdr.msg_iovlen = 1;
    h->msg_hdr.msg_name = (void *)&o->peer.u.ss;
    h->msg_hdr.msg_namelen = o->peer.len;
    if (gso && o->nseg > 1) {
        memset(ctl, 0, sizeof(*ctl));
        h->msg_hdr.msg_control = ctl->buf;
        h->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        struct cmsghdr *c = CMSG_FIRSTHDR(&h->msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = o->seg;
        memcpy(CMSG_DATA(c), &seg, sizeof(seg));
    }
}

/* Splits a train into single datagrams, in place of one entry: at most WZP_FWD_GSO_MAX_SEGS. */
static size_t split_train(const wzp_fwd_out *t, wzp_fwd_out *one)
{
    size_t n = 0;
    for (size_t off = 0; off < t->len; off += t->seg, n++) {
        one[n] = *t;
        one[n].data = t->data + off;
        one[n].len = t->len - off < t->seg ? t->len - off : t->seg;
        one[n].nseg = 1;
    }
    return n;
}

/* Counts an entry the kernel took (or that was skipped): its datagrams, and forwarded DATA. */
static size_t count_sent(const wzp_fwd_out *o, uint64_t *fwd, uint64_t *bytes)
{
    if (o->is_data) {
        *fwd += o->nseg;
        *bytes += o->len;
    }
    return o->nseg;
}

/*
 * Sends n entries from fd with as few sendmmsg calls as the kernel allows.
 * Returns how many datagrams (segments) were handed over, forwarded DATA
 * counted into *fwd / *bytes.
 */
static size_t tx_batch(worker *w, int fd, const wzp_fwd_out *out, size_t n, uint64_t *fwd,
                       uint64_t *bytes)
{
    struct mmsghdr hdr[WZP_UDP_BATCH];
    struct iovec iov[WZP_UDP_BATCH];
    cmsgbuf ctl[WZP_UDP_BATCH];
    bool gso = !w->gso_off;
    for (size_t i = 0; i < n; i++)
        tx_fill(&out[i], &hdr[i], &iov[i], &ctl[i], gso);
    size_t done = 0, segs = 0;
    while (done < n) {
        int r = sendmmsg(fd, hdr + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (r > 0) {
            for (size_t i = done; i < done + (size_t)r; i++)
                segs += count_sent(&out[i], fwd, bytes);
            done += (size_t)r;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            break;
        const wzp_fwd_out *o = &out[done];
        if (gso && o->nseg > 1 && (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP)) {
            /* EIO / EOPNOTSUPP: no GSO on this path (a device or IPsec route
             * without it): single datagrams from here on. EINVAL: this train
             * alone (segments over the path MTU, say): single datagrams, which
             * meet the same fate one by one. */
            if (errno != EINVAL)
                w->gso_off = true;
            wzp_fwd_out one[WZP_FWD_GSO_MAX_SEGS];
            size_t k = split_train(o, one);
            segs += tx_batch(w, fd, one, k, fwd, bytes);
            done++;
            continue;
        }
        if (!wzp_udp_send_skippable(errno))
            break;
        /* Skipped: counted as sent, like any datagram lost on the way. */
        segs += count_sent(o, fwd, bytes);
        done++;
    }
    return segs;
}

/* Sends n entries from fd (-1: none of that family) and counts the outcome. */
static void send_part(worker *w, int fd, const wzp_fwd_out *out, size_t n)
{
    uint64_t fwd = 0, bytes = 0, want = 0, trains = 0;
    for (size_t i = 0; i < n; i++) {
        want += out[i].nseg;
        trains += out[i].nseg > 1;
    }
    size_t sent = fd >= 0 ? tx_batch(w, fd, out, n, &fwd, &bytes) : 0;
    add(w, WZP_FWD_S_FWD, fwd);
    add(w, WZP_FWD_S_FWD_BYTES, bytes);
    add(w, WZP_FWD_S_SEND_FAILED, want - sent);
    if (!w->gso_off)
        add(w, WZP_FWD_S_TX_TRAINS, trains);
}

/*
 * Sends a batch. A pair may join an IPv4 peer and an IPv6 peer: those packets
 * leave through the other family's relay socket (same port set, so the
 * receiver sees the relay address it talks to).
 */
static void send_out(worker *w, wzp_fwd_out *out, size_t n)
{
    /* Peers on the relay's TCP service (tunnel addresses) are the control
     * thread's: their datagrams go through the control queue, named by their
     * destination (no UDP source is ever a tunnel address, see worker_main). */
    size_t kept = 0, diverted = 0;
    for (size_t i = 0; i < n; i++) {
        if (!wzp_addr_is_tunnel(&out[i].peer)) {
            out[kept++] = out[i];
            continue;
        }
        size_t seg = out[i].nseg > 1 ? out[i].seg : out[i].len;
        for (size_t off = 0; off < out[i].len; off += seg) {
            size_t l = out[i].len - off < seg ? out[i].len - off : seg;
            bool ok = lane_push(w, 0, &out[i].peer, out[i].data + off, l);
            if (!ok) {
                add(w, WZP_FWD_S_CTL_FULL, 1);
            } else if (out[i].is_data) {
                add(w, WZP_FWD_S_FWD, 1);
                add(w, WZP_FWD_S_FWD_BYTES, l);
            }
            diverted += ok;
        }
    }
    if (diverted)
        wake_lanes(w);
    n = kept;
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i].peer.u.sa.sa_family == w->family) {
            if (i != same) {
                wzp_fwd_out tmp = out[i];
                out[i] = out[same];
                out[same] = tmp;
            }
            same++;
        }
    }
    send_part(w, w->fd, out, same);
    if (same < n) {
        int other = w->fwd->family_fd[!fam_idx(w->family)];
        send_part(w, other, out + same, n - same);
    }
}

/*
 * Asks the scheduler (EEVDF, Linux >= 6.6; custom slices since 6.12) for a
 * short time slice: a forwarding worker runs for microseconds per wake-up,
 * and a short slice gives it an early deadline, so it gets onto a busy CPU
 * sooner after a packet wakes it. Same priority and CPU share as before; on
 * older kernels this fails harmlessly.
 */
static void request_short_slice(unsigned us)
{
#ifdef SYS_sched_setattr
    /* The kernel's struct sched_attr (its uapi header clashes with <sched.h>). */
    struct {
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    } attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.sched_policy = 0; /* SCHED_OTHER */
    attr.sched_runtime = (uint64_t)us * 1000u;
    (void)syscall(SYS_sched_setattr, 0, &attr, 0);
#else
    (void)us;
#endif
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    wzp_forwarder *fwd = w->fwd;
    if (fwd->slice_us)
        request_short_slice(fwd->slice_us);
    /* A GRO train of up to 64 datagrams per buffer can become 64 entries. */
    enum { OUT_MAX = WZP_UDP_BATCH * WZP_FWD_GSO_MAX_SEGS };
    rx_batch *b = malloc(sizeof(*b));
    wzp_fwd_out *out = malloc(OUT_MAX * sizeof(*out));
    if (!b || !out) {
        WZP_ERROR("relay worker %u: out of memory", w->index);
        free(b);
        free(out);
        return NULL;
    }
    recv_init(w, b);
    wzp_fwd_batch bt = {.table = fwd->table,
                        .ctl = ctl_push,
                        .ctl_user = w,
                        .stun_limit = w->stun_limit,
                        .stun_other = fwd->stun_other[fam_idx(w->family)].len
                                          ? &fwd->stun_other[fam_idx(w->family)]
                                          : NULL,
                        .stun_buf = w->stun_buf,
                        .stun_cap = STUN_BUF};
    int used = WZP_UDP_BATCH;
    wzp_ts last_wake = 0;
    if (fwd->coalesce) /* a timer slack of its own: the default 50 us would dwarf the wait */
        (void)prctl(PR_SET_TIMERSLACK, 5000ul, 0, 0, 0);
    while (!atomic_load_explicit(&fwd->stopping, memory_order_acquire)) {
        int got = recv_wait(w->fd, b, used);
        used = got > 0 ? got : 0;
        if (atomic_load_explicit(&fwd->stopping, memory_order_acquire))
            break; /* shutdown() wakes us with an empty "datagram" */
        if (got < 0) {
            WZP_WARN("relay worker %u: receive failed: %s", w->index, strerror(errno));
            struct timespec ts = {0, 10000000}; /* do not spin on a persistent error */
            nanosleep(&ts, NULL);
            continue;
        }
        if (got == 0)
            continue;
        wzp_ts now = now_ns();
        size_t nout = 0, flushed = 0;
        bt.stun_used = 0; /* the previous batch's answers are sent */
        for (int i = 0; i < got; i++) {
            struct msghdr *mh = &b->hdr[i].msg_hdr;
            size_t len = (mh->msg_flags & MSG_TRUNC) ? 0 : b->hdr[i].msg_len;
            if (wzp_addr_is_tunnel(&b->from[i])) { /* a spoofed "TCP client": never real */
                bt.stats[WZP_FWD_S_RX]++;
                bt.stats[WZP_FWD_S_MALFORMED]++;
                continue;
            }
            wzp_fwd_handle(&bt, w->bufs[i], len, gro_segment(mh), &b->from[i], now, out, &nout);
            /* Keep the sendmmsg batch within its limit; trains count as one entry. */
            if (nout - flushed > WZP_UDP_BATCH) { /* the last entry may still grow */
                send_out(w, out + flushed, WZP_UDP_BATCH);
                flushed += WZP_UDP_BATCH;
            }
        }
        uint64_t rx = bt.stats[WZP_FWD_S_RX];
        if (bt.stats[WZP_FWD_S_CTL_QUEUED])
            wake_lanes(w);
        /* Publish the batch's counts (one store per counter, not per packet). */
        for (int k = 0; k < WZP_FWD_S_COUNT; k++) {
            if (bt.stats[k])
                add(w, k, bt.stats[k]);
            bt.stats[k] = 0;
        }
        while (flushed < nout) {
            size_t k = nout - flushed < WZP_UDP_BATCH ? nout - flushed : WZP_UDP_BATCH;
            send_out(w, out + flushed, k);
            flushed += k;
        }
        /* Woken often for less than a batch: let the next one gather first,
         * for about COALESCE_PKTS datagrams at the rate just seen, capped. */
        wzp_ts gap = now - last_wake;
        last_wake = now;
        if (fwd->coalesce && gap < 10 * fwd->coalesce && rx < COALESCE_PKTS) {
            wzp_ts wait = rx ? gap * COALESCE_PKTS / rx : fwd->coalesce;
            if (wait > fwd->coalesce)
                wait = fwd->coalesce;
            struct timespec ts = {0, (long)wait};
            nanosleep(&ts, NULL);
            add(w, WZP_FWD_S_WAITS, 1);
        }
    }
    free(b);
    free(out);
    return NULL;
}

static void destroy(wzp_forwarder *f)
{
    for (unsigned i = 0; i < f->nworkers; i++) {
        worker *w = &f->workers[i];
        if (w->fd >= 0)
            close(w->fd);
        for (unsigned k = 0; w->lanes && k < f->nlanes; k++)
            free(w->lanes[k].ring);
        free(w->lanes);
        free(w->pushed);
        free(w->bufs);
        free(w->stun_buf);
        free(w->stun_limit);
    }
    free(f->workers);
    for (unsigned k = 0; f->lane_efd && k < f->nlanes; k++)
        if (f->lane_efd[k] >= 0)
            close(f->lane_efd[k]);
    free(f->lane_efd);
    free(f->lane_next);
    free(f);
}

void wzp_forwarder_config_default(wzp_forwarder_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

int wzp_forwarder_new(wzp_forwarder **out, const wzp_forwarder_config *cfg)
{
    if (!cfg || !cfg->table || !out || wzp_addr_family(&cfg->bind) == AF_UNSPEC)
        return WZP_ERR_INVALID;
    bool dual = cfg->bind6.len != 0;
    if (dual &&
        (wzp_addr_family(&cfg->bind) != AF_INET || wzp_addr_family(&cfg->bind6) != AF_INET6))
        return WZP_ERR_INVALID;
    unsigned per = cfg->workers;
    if (per == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        per = c > 0 ? (unsigned)c : 1;
    }
    if (per > 256)
        return WZP_ERR_INVALID;
    unsigned n = dual ? 2 * per : per;
    size_t qcap = 1;
    while (qcap < (cfg->ctl_queue ? cfg->ctl_queue : 256))
        qcap <<= 1;
    wzp_forwarder *f = calloc(1, sizeof(*f));
    if (!f)
        return WZP_ERR_NOMEM;
    f->table = cfg->table;
    f->slice_us = cfg->slice_us;
    f->coalesce = cfg->coalesce_us < 0    ? 0
                  : cfg->coalesce_us == 0 ? WZP_US(WZP_FWD_COALESCE_US)
                                          : WZP_US((wzp_ts)cfg->coalesce_us);
    f->stun_rate = cfg->stun_rate < 0    ? 0
                   : cfg->stun_rate == 0 ? WZP_FWD_STUN_RATE
                                         : (unsigned)cfg->stun_rate;
    f->stun_burst = cfg->stun_burst;
    f->stun_other[fam_idx(AF_INET)] = cfg->stun_other;
    f->stun_other[fam_idx(AF_INET6)] = cfg->stun_other6;
    f->family_fd[0] = f->family_fd[1] = -1;
    f->nlanes = cfg->ctl_lanes ? cfg->ctl_lanes : 1;
    f->route = cfg->ctl_route;
    f->route_user = cfg->ctl_route_user;
    f->lane_efd = malloc(f->nlanes * sizeof(*f->lane_efd));
    f->lane_next = calloc(f->nlanes, sizeof(*f->lane_next));
    bool efds_ok = f->lane_efd && f->lane_next;
    for (unsigned k = 0; f->lane_efd && k < f->nlanes; k++)
        efds_ok &= (f->lane_efd[k] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0;
    f->workers = aligned_alloc(64, ((n * sizeof(worker) + 63) / 64) * 64);
    if (f->workers)
        memset(f->workers, 0, n * sizeof(worker));
    f->nworkers = f->workers ? n : 0;
    for (unsigned i = 0; i < f->nworkers; i++)
        f->workers[i].fd = -1;
    if (!efds_ok || !f->workers) {
        destroy(f);
        return WZP_ERR_NOMEM;
    }
    wzp_udp_config opts = {.reuseport = true,
                           .rcvbuf = cfg->rcvbuf ? cfg->rcvbuf : 4 << 20,
                           .sndbuf = cfg->sndbuf ? cfg->sndbuf : 4 << 20};
    int rv = 0;
    /* SO_REUSEPORT would let us silently share a port another process of the
     * same user (e.g. a second relay) already serves, and the kernel may even
     * pick such a port for port 0. A socket that does not share finds (or
     * checks) a free port first, for each family. */
    wzp_addr binds[2] = {cfg->bind, cfg->bind6};
    for (int fam = 0; fam < (dual ? 2 : 1) && rv == 0; fam++) {
        wzp_addr free_port;
        int probe = wzp_udp_open(&binds[fam], NULL, &free_port);
        if (probe < 0) {
            rv = probe;
        } else {
            close(probe);
            binds[fam] = free_port;
        }
    }
    for (unsigned i = 0; rv == 0 && i < n; i++) {
        worker *w = &f->workers[i];
        bool second = i >= per; /* the IPv6 set of a dual-stack forwarder */
        wzp_addr *local = second ? &f->local6 : &f->local;
        w->fwd = f;
        w->index = i;
        w->lanes = calloc(f->nlanes, sizeof(*w->lanes));
        w->pushed = calloc(f->nlanes, sizeof(*w->pushed));
        bool rings_ok = w->lanes && w->pushed;
        for (unsigned k = 0; w->lanes && k < f->nlanes; k++) {
            w->lanes[k].mask = qcap - 1;
            rings_ok &= (w->lanes[k].ring = malloc(qcap * sizeof(ctl_pkt))) != NULL;
        }
        w->bufs = malloc((size_t)WZP_UDP_BATCH * RX_BUF);
        w->stun_buf = malloc(STUN_BUF);
        w->stun_limit = malloc(sizeof(*w->stun_limit));
        if (!rings_ok || !w->bufs || !w->stun_buf || !w->stun_limit) {
            rv = WZP_ERR_NOMEM;
            break;
        }
        /* A secret key per worker, so collisions cannot be aimed at a victim's bucket. */
        wzp_fwd_stun_limit_init(w->stun_limit, f->stun_rate, f->stun_burst, wzp_random_u64());
        /* The first socket of a family fixes the port (when 0 was asked); the others join it. */
        bool first = i == 0 || i == per;
        w->fd = wzp_udp_open(first ? &binds[second ? 1 : 0] : local, &opts, first ? local : NULL);
        if (w->fd < 0) {
            rv = w->fd;
            break;
        }
        w->family = wzp_addr_family(local);
        if (first)
            f->family_fd[fam_idx(w->family)] = w->fd;
        /*
         * Workers block in recvmmsg (sends still pass MSG_DONTWAIT). Stop wakes
         * them with shutdown(SHUT_RD); the timeout is a backstop for that.
         */
        struct timeval tv = {0, 200000};
        /* Trains in (GRO) and out (GSO) where the kernel has them; without, one
         * datagram per buffer as before. DF on IPv4: forwarded QUIC must not be
         * fragmented, and the kernel then skips per-packet IP id hashing. */
        int on = 1, pmtu = IP_PMTUDISC_DO;
        (void)setsockopt(w->fd, SOL_UDP, UDP_GRO, &on, sizeof(on));
        if (w->family == AF_INET)
            (void)setsockopt(w->fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
        int fl = fcntl(w->fd, F_GETFL);
        if (fl < 0 || fcntl(w->fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
            setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
            rv = WZP_ERR_IO;
    }
    /* Workers take no signals: a process-directed SIGTERM must reach the thread
     * that watches for it (signalfd), not kill the process from a worker that
     * has the default disposition. They inherit this mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; rv == 0 && i < n; i++) {
        worker *w = &f->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            rv = WZP_ERR_NOMEM;
            break;
        }
        w->started = true;
        char name[16];
        snprintf(name, sizeof(name), "wzp-fwd-%u", i);
        pthread_setname_np(w->thread, name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv < 0) {
        wzp_forwarder_free(f);
        return rv;
    }
    *out = f;
    return 0;
}

void wzp_forwarder_free(wzp_forwarder *f)
{
    if (!f)
        return;
    atomic_store_explicit(&f->stopping, true, memory_order_release);
    for (unsigned i = 0; i < f->nworkers; i++)
        if (f->workers[i].fd >= 0)
            shutdown(f->workers[i].fd, SHUT_RD); /* wakes a blocked recvmmsg */
    for (unsigned i = 0; i < f->nworkers; i++)
        if (f->workers[i].started)
            pthread_join(f->workers[i].thread, NULL);
    destroy(f);
}

const wzp_addr *wzp_forwarder_local_addr(const wzp_forwarder *f)
{
    return &f->local;
}

const wzp_addr *wzp_forwarder_local_addr6(const wzp_forwarder *f)
{
    return f->local6.len ? &f->local6 : NULL;
}

unsigned wzp_forwarder_workers(const wzp_forwarder *f)
{
    return f->nworkers;
}

unsigned wzp_forwarder_ctl_lanes(const wzp_forwarder *f)
{
    return f->nlanes;
}

int wzp_forwarder_ctl_fd(const wzp_forwarder *f, unsigned lane)
{
    return lane < f->nlanes ? f->lane_efd[lane] : -1;
}

int wzp_forwarder_ctl_recv(wzp_forwarder *f, unsigned lane, wzp_udp_msg *msgs, size_t n)
{
    if (lane >= f->nlanes)
        return WZP_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (msgs[i].cap < WZP_FWD_MAX_DGRAM)
            return WZP_ERR_INVALID;
    /* Reset the eventfd before draining: a push after this re-arms it. */
    uint64_t v;
    ssize_t rd = read(f->lane_efd[lane], &v, sizeof(v));
    (void)rd;
    size_t got = 0;
    for (unsigned k = 0; k < f->nworkers && got < n; k++) {
        lane_ring *r = &f->workers[(f->lane_next[lane] + k) % f->nworkers].lanes[lane];
        size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
        while (h != t && got < n) {
            ctl_pkt *p = &r->ring[h & r->mask];
            msgs[got].peer = p->from;
            msgs[got].len = p->len;
            memcpy(msgs[got].data, p->data, p->len);
            got++;
            h++;
        }
        atomic_store_explicit(&r->head, h, memory_order_release);
    }
    f->lane_next[lane]++;
    /* Packets left behind (n too small): keep the fd readable so the caller comes back. */
    if (got == n) {
        uint64_t one = 1;
        ssize_t wr = write(f->lane_efd[lane], &one, sizeof(one));
        (void)wr;
    }
    return (int)got;
}

int wzp_forwarder_send(wzp_forwarder *f, const wzp_addr *to, const uint8_t *bytes, size_t len)
{
    int family = wzp_addr_family(to);
    if (family == AF_UNSPEC || f->family_fd[fam_idx(family)] < 0)
        return WZP_ERR_INVALID;
    return wzp_udp_send(f->family_fd[fam_idx(family)], to, bytes, len);
}

/* Sums workers [first, end). */
static void sum_stats(const wzp_forwarder *f, unsigned first, unsigned end,
                      wzp_forwarder_stats *out)
{
    uint64_t sum[WZP_FWD_S_COUNT] = {0};
    for (unsigned i = first; i < end; i++)
        for (int k = 0; k < WZP_FWD_S_COUNT; k++)
            sum[k] += atomic_load_explicit(&f->workers[i].stats.v[k], memory_order_relaxed);
    out->rx = sum[WZP_FWD_S_RX];
    out->forwarded = sum[WZP_FWD_S_FWD];
    out->forwarded_bytes = sum[WZP_FWD_S_FWD_BYTES];
    out->keepalives = sum[WZP_FWD_S_KEEPALIVE];
    out->unknown_channel = sum[WZP_FWD_S_UNKNOWN_CHAN];
    out->wrong_source = sum[WZP_FWD_S_WRONG_SRC];
    out->malformed = sum[WZP_FWD_S_MALFORMED];
    out->ctl_queued = sum[WZP_FWD_S_CTL_QUEUED];
    out->ctl_full = sum[WZP_FWD_S_CTL_FULL];
    out->send_failed = sum[WZP_FWD_S_SEND_FAILED];
    out->rx_trains = sum[WZP_FWD_S_RX_TRAINS];
    out->tx_trains = sum[WZP_FWD_S_TX_TRAINS];
    out->coalesce_waits = sum[WZP_FWD_S_WAITS];
    out->stun_answered = sum[WZP_FWD_S_STUN_ANSWERED];
    out->stun_rate_limited = sum[WZP_FWD_S_STUN_LIMITED];
}

void wzp_forwarder_get_stats(const wzp_forwarder *f, wzp_forwarder_stats *out)
{
    sum_stats(f, 0, f->nworkers, out);
}

int wzp_forwarder_get_worker_stats(const wzp_forwarder *f, unsigned i,
                                   wzp_forwarder_worker_stats *out)
{
    if (i >= f->nworkers)
        return WZP_ERR_INVALID;
    const worker *w = &f->workers[i];
    sum_stats(f, i, i + 1, &out->stats);
    out->family = w->family;
    out->cpu_ns = 0;
    clockid_t cid;
    struct timespec ts;
    if (w->started && pthread_getcpuclockid(w->thread, &cid) == 0 && clock_gettime(cid, &ts) == 0)
        out->cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return 0;
}
