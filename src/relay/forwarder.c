#include "relay/forwarder.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "wire/demux.h"
#include "wire/relay_frame.h"

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
    _Atomic uint64_t v[10];
} wstats;

enum {
    S_RX,
    S_FWD,
    S_FWD_BYTES,
    S_KEEPALIVE,
    S_UNKNOWN_CHAN,
    S_WRONG_SRC,
    S_MALFORMED,
    S_CTL_QUEUED,
    S_CTL_FULL,
    S_SEND_FAILED,
};

typedef struct worker {
    struct wzp_forwarder *fwd;
    unsigned index;
    int fd;
    int family; /* AF_INET or AF_INET6 */
    pthread_t thread;
    bool started;
    /* Control queue: SPSC ring, producer = this worker, consumer = control thread. */
    ctl_pkt *ring;
    size_t ring_mask;
    _Alignas(64) _Atomic size_t head; /* consumer position */
    _Alignas(64) _Atomic size_t tail; /* producer position */
    _Alignas(64) wstats stats;
    /* Receive buffers and the outgoing batch (worker-private). */
    uint8_t (*bufs)[WZP_FWD_MAX_DGRAM];
} worker;

struct wzp_forwarder {
    wzp_chan_table *table;
    unsigned nworkers;
    worker *workers;
    wzp_addr local;   /* cfg->bind with the actual port */
    wzp_addr local6;  /* cfg->bind6 with the actual port, len 0 if none */
    int family_fd[2]; /* one socket per family (worker-owned) for cross-family sends */
    int ctl_efd;      /* workers -> control thread: "packets queued" */
    _Atomic bool stopping;
    unsigned slice_us;
    size_t ctl_next; /* round-robin start for ctl_recv (consumer-only) */
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

/* Producer side of the ring. False when full. */
static bool ctl_push(worker *w, const wzp_udp_msg *m)
{
    size_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&w->head, memory_order_acquire);
    if (t - h > w->ring_mask)
        return false;
    ctl_pkt *p = &w->ring[t & w->ring_mask];
    p->from = m->peer;
    p->len = m->len;
    memcpy(p->data, m->data, m->len);
    atomic_store_explicit(&w->tail, t + 1, memory_order_release);
    return true;
}

/* Handles one received datagram; appends to out when something must be sent. */
static void handle(worker *w, wzp_udp_msg *m, wzp_ts now, wzp_udp_msg *out, size_t *nout,
                   unsigned *queued)
{
    wzp_chan_table *t = w->fwd->table;
    if (m->len == 0) { /* truncated (over WZP_FWD_MAX_DGRAM) or empty */
        add(w, S_MALFORMED, 1);
        return;
    }
    switch (wzp_pkt_classify(m->data, m->len)) {
    case WZP_PKT_RELAY:
        break;
    case WZP_PKT_STUN:
    case WZP_PKT_QUIC:
    case WZP_PKT_PROBE:
        if (ctl_push(w, m)) {
            (*queued)++; /* counted once the eventfd is written */
        } else {
            add(w, S_CTL_FULL, 1);
        }
        return;
    default:
        add(w, S_MALFORMED, 1);
        return;
    }
    wzp_relay_frame f;
    if (wzp_relay_frame_decode(&f, m->data, m->len) < 0 ||
        f.type == WZP_RELAY_FRAME_KEEPALIVE_ACK) {
        add(w, S_MALFORMED, 1);
        return;
    }
    wzp_udp_msg *o = &out[*nout];
    int rv;
    if (f.type == WZP_RELAY_FRAME_DATA) {
        uint32_t partner;
        rv = wzp_chan_table_route(t, f.channel, &m->peer, now, m->len, &partner, &o->peer);
        if (rv == 0) {
            /* Same header size in and out: the packet cannot grow. */
            wzp_relay_frame_rewrite(m->data, WZP_RELAY_FRAME_DATA, partner);
            o->data = m->data;
            o->len = m->len;
            (*nout)++;
            return;
        }
    } else {
        rv = wzp_chan_table_touch(t, f.channel, &m->peer, now);
        if (rv == 0) {
            add(w, S_KEEPALIVE, 1);
            m->data[0] = WZP_RELAY_FRAME_KEEPALIVE_ACK;
            o->data = m->data;
            o->len = m->len;
            o->peer = m->peer;
            (*nout)++;
            return;
        }
    }
    add(w, rv == WZP_ERR_REJECTED ? S_WRONG_SRC : S_UNKNOWN_CHAN, 1);
}

/*
 * Blocks until at least one datagram is waiting, then takes all that are
 * (up to a batch): one syscall per wake-up instead of poll + recvmmsg, which
 * matters at voice load where a wake-up often carries only a few packets.
 * Returns the count, 0 on timeout/shutdown, or -1 on error.
 */
static void recv_init(wzp_udp_msg *msgs, struct mmsghdr *hdr, struct iovec *iov)
{
    memset(hdr, 0, WZP_UDP_BATCH * sizeof(*hdr));
    for (size_t i = 0; i < WZP_UDP_BATCH; i++) {
        iov[i].iov_base = msgs[i].data;
        iov[i].iov_len = WZP_FWD_MAX_DGRAM;
        hdr[i].msg_hdr.msg_iov = &iov[i];
        hdr[i].msg_hdr.msg_iovlen = 1;
        hdr[i].msg_hdr.msg_name = &msgs[i].peer.u.ss;
        hdr[i].msg_hdr.msg_namelen = sizeof(msgs[i].peer.u.ss);
    }
}

/* `used`: entries the previous call filled; only their name lengths need resetting. */
static int recv_wait(int fd, wzp_udp_msg *msgs, struct mmsghdr *hdr, int used)
{
    for (int i = 0; i < used; i++)
        hdr[i].msg_hdr.msg_namelen = sizeof(msgs[i].peer.u.ss);
    int got = recvmmsg(fd, hdr, WZP_UDP_BATCH, MSG_WAITFORONE, NULL);
    if (got < 0) {
        /* Timeout, signal, or ICMP errors of earlier sends surfacing here: not fatal. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED ||
            errno == EHOSTUNREACH || errno == ENETUNREACH)
            return 0;
        return -1;
    }
    for (int i = 0; i < got; i++) {
        msgs[i].peer.len = hdr[i].msg_hdr.msg_namelen;
        wzp_addr_unmap_v4(&msgs[i].peer);
        msgs[i].len = (hdr[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : hdr[i].msg_len;
    }
    return got;
}

static int fam_idx(int family)
{
    return family == AF_INET6;
}

/* Sends n messages from fd (-1: none of that family) and counts the outcome. */
static void send_part(worker *w, int fd, wzp_udp_msg *out, size_t n)
{
    int sent = fd >= 0 ? wzp_udp_send_batch(fd, out, n) : 0;
    size_t ok = sent < 0 ? 0 : (size_t)sent;
    uint64_t bytes = 0, fwded = 0;
    for (size_t i = 0; i < ok; i++) {
        if (out[i].data[0] == WZP_RELAY_FRAME_DATA) {
            fwded++;
            bytes += out[i].len;
        }
    }
    add(w, S_FWD, fwded);
    add(w, S_FWD_BYTES, bytes);
    add(w, S_SEND_FAILED, n - ok);
}

/*
 * Sends a batch. A pair may join an IPv4 peer and an IPv6 peer: those packets
 * leave through the other family's relay socket (same port set, so the
 * receiver sees the relay address it talks to).
 */
static void send_out(worker *w, wzp_udp_msg *out, size_t n)
{
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i].peer.u.sa.sa_family == w->family) {
            if (i != same) {
                wzp_udp_msg tmp = out[i];
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
    wzp_udp_msg in[WZP_UDP_BATCH], out[WZP_UDP_BATCH];
    struct mmsghdr hdr[WZP_UDP_BATCH];
    struct iovec iov[WZP_UDP_BATCH];
    for (size_t i = 0; i < WZP_UDP_BATCH; i++) {
        in[i].data = w->bufs[i];
        in[i].cap = WZP_FWD_MAX_DGRAM;
        out[i].cap = WZP_FWD_MAX_DGRAM;
    }
    recv_init(in, hdr, iov);
    int used = 0;
    while (!atomic_load_explicit(&fwd->stopping, memory_order_acquire)) {
        int got = recv_wait(w->fd, in, hdr, used);
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
        size_t nout = 0;
        unsigned queued = 0;
        add(w, S_RX, (uint64_t)got);
        for (int i = 0; i < got; i++)
            handle(w, &in[i], now, out, &nout, &queued);
        if (queued) {
            uint64_t one = 1;
            ssize_t wr = write(fwd->ctl_efd, &one, sizeof(one));
            (void)wr; /* only fails when the counter is saturated: still readable */
            add(w, S_CTL_QUEUED, queued);
        }
        if (nout)
            send_out(w, out, nout);
    }
    return NULL;
}

static void destroy(wzp_forwarder *f)
{
    for (unsigned i = 0; i < f->nworkers; i++) {
        worker *w = &f->workers[i];
        if (w->fd >= 0)
            close(w->fd);
        free(w->ring);
        free(w->bufs);
    }
    free(f->workers);
    if (f->ctl_efd >= 0)
        close(f->ctl_efd);
    free(f);
}

int wzp_forwarder_start(const wzp_forwarder_cfg *cfg, wzp_forwarder **out)
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
    f->family_fd[0] = f->family_fd[1] = -1;
    f->ctl_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    f->workers = aligned_alloc(64, ((n * sizeof(worker) + 63) / 64) * 64);
    if (f->workers)
        memset(f->workers, 0, n * sizeof(worker));
    f->nworkers = f->workers ? n : 0;
    for (unsigned i = 0; i < f->nworkers; i++)
        f->workers[i].fd = -1;
    if (f->ctl_efd < 0 || !f->workers) {
        destroy(f);
        return WZP_ERR_NOMEM;
    }
    wzp_udp_opts opts = {.reuseport = true,
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
        w->ring_mask = qcap - 1;
        w->ring = malloc(qcap * sizeof(ctl_pkt));
        w->bufs = malloc((size_t)WZP_UDP_BATCH * WZP_FWD_MAX_DGRAM);
        if (!w->ring || !w->bufs) {
            rv = WZP_ERR_NOMEM;
            break;
        }
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
        wzp_forwarder_stop(f);
        return rv;
    }
    *out = f;
    return 0;
}

void wzp_forwarder_stop(wzp_forwarder *f)
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

int wzp_forwarder_ctl_fd(const wzp_forwarder *f)
{
    return f->ctl_efd;
}

int wzp_forwarder_ctl_recv(wzp_forwarder *f, wzp_udp_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (msgs[i].cap < WZP_FWD_MAX_DGRAM)
            return WZP_ERR_INVALID;
    /* Reset the eventfd before draining: a push after this re-arms it. */
    uint64_t v;
    ssize_t rd = read(f->ctl_efd, &v, sizeof(v));
    (void)rd;
    size_t got = 0;
    for (unsigned k = 0; k < f->nworkers && got < n; k++) {
        worker *w = &f->workers[(f->ctl_next + k) % f->nworkers];
        size_t h = atomic_load_explicit(&w->head, memory_order_relaxed);
        size_t t = atomic_load_explicit(&w->tail, memory_order_acquire);
        while (h != t && got < n) {
            ctl_pkt *p = &w->ring[h & w->ring_mask];
            msgs[got].peer = p->from;
            msgs[got].len = p->len;
            memcpy(msgs[got].data, p->data, p->len);
            got++;
            h++;
        }
        atomic_store_explicit(&w->head, h, memory_order_release);
    }
    f->ctl_next++;
    /* Packets left behind (n too small): keep the fd readable so the caller comes back. */
    if (got == n) {
        uint64_t one = 1;
        ssize_t wr = write(f->ctl_efd, &one, sizeof(one));
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

void wzp_forwarder_stats(const wzp_forwarder *f, wzp_fwd_stats *out)
{
    uint64_t sum[10] = {0};
    for (unsigned i = 0; i < f->nworkers; i++)
        for (int k = 0; k < 10; k++)
            sum[k] += atomic_load_explicit(&f->workers[i].stats.v[k], memory_order_relaxed);
    out->rx = sum[S_RX];
    out->forwarded = sum[S_FWD];
    out->forwarded_bytes = sum[S_FWD_BYTES];
    out->keepalives = sum[S_KEEPALIVE];
    out->unknown_channel = sum[S_UNKNOWN_CHAN];
    out->wrong_source = sum[S_WRONG_SRC];
    out->malformed = sum[S_MALFORMED];
    out->ctl_queued = sum[S_CTL_QUEUED];
    out->ctl_full = sum[S_CTL_FULL];
    out->send_failed = sum[S_SEND_FAILED];
}
