/*
 * scripts/bench relay-forward: the relay's forwarding plane against coturn,
 * same machine, same run, same load generator.
 *
 * Load generator: G threads, each owning a set of calls and both peers of
 * each; every packet carries (call, direction, tag, send timestamp,
 * sequence) so the receiving thread (the sending one: both ends of a call
 * live in one thread) measures one-way latency on one clock and counts loss
 * exactly, per measurement tag.
 *
 * Peers look like real peers to the relay, yet cost the generator little.
 * Peer k (k = 2 * call + side) has its own source address, 127.16.0.0/12
 * (127.16.x.y with y never 0 or 255), but each generator thread has just ONE
 * UDP socket, bound to the wildcard address: every send picks its peer's
 * source with an IP_PKTINFO control message, and replies to any
 * 127.16.x.y:port land on that one socket. So the relay sees two distinct
 * addresses per call (its channel table authorises every packet by source
 * address: a wrong source shows as wrong_source in the wzp counters, and
 * must stay 0), while the generator polls two sockets instead of thousands;
 * a socket per peer would cost a syscall per packet and starve the relay of
 * CPU on a 2-core machine.
 *
 *   voice:      N calls, 200-byte packets, 50/s each way per call, evenly
 *               spread, N rising until loss appears. One packet per message
 *               (many peers' messages per sendmmsg), never UDP GSO: a real
 *               voice peer sends one packet per 20 ms from its own address,
 *               so nothing a relay receives can be coalesced, and a relay
 *               with UDP GRO must not be shown bursts no caller would send.
 *   saturation: 64 calls, 64-byte packets, a closed loop (a fixed window of
 *               packets in flight per generator thread), so the relay runs
 *               flat out without the run turning into a measure of socket
 *               drops. Here each peer sends bursts of 16 packets as ONE UDP
 *               GSO message, as a bulk sender does, and both relays get the
 *               same traffic shape: coturn's kernel splits it before coturn
 *               reads it, a relay with UDP GRO may take it whole.
 *
 * The generator's sockets enable UDP GRO and cut what they receive at the
 * UDP_GRO cmsg's gso_size, one packet per segment (one per datagram without
 * the cmsg): a relay that sends with GSO is not charged for segmentation at
 * the receiver, as a NIC with segmentation offload would spare it.
 *
 * Binding the wildcard would expose the generator's ports on every
 * interface, so when run as root the bench first moves into a network
 * namespace of its own (unshare, then `lo` up) and all traffic, coturn's
 * included (it is a child and inherits the namespace), stays in it. Not
 * root: the host namespace is used, and the header says so.
 *
 * Added latency: for every N the same load is also sent peer to peer
 * directly (no relay, same socket, same per-peer addresses); added pX =
 * relayed pX - direct pX. That cancels the generator's own queueing, which
 * on 2 shared cores is most of the figure.
 *
 * Relay CPU: wzp runs in this process (its worker threads are named
 * "wzp-fwd-*"); coturn runs as a child. Both are read from
 * /proc/PID/task/TID/schedstat (ns of CPU per thread) over the measured window
 * only, so the generator's CPU is never charged to either relay.
 * pps_per_core = packets delivered / relay CPU seconds.
 *
 * Driving coturn: our own minimal TURN client (Allocate with long-term
 * credentials, ChannelBind, ChannelData) rather than turnutils_uclient:
 * uclient's connect phase is slow and collision-prone at hundreds of clients,
 * cannot pace voice-like load, and reports no latency distribution we could
 * line up with ours. Each call is one TURN allocation (side A: a socket of
 * its own on 127.0.0.1, as an allocation is keyed by its 5-tuple, sending
 * ChannelData to coturn) and one plain TURN peer (side B: a per-peer address
 * on the thread's wildcard socket, the ChannelBind's XOR-PEER-ADDRESS,
 * sending straight to A's relayed address). So each delivered packet is
 * exactly one relay forward in coturn, as in wzp: the same unit on both
 * sides. (Pairs of allocations, as turnutils_uclient -y does, cost coturn
 * two forwards per delivered packet and would halve its per-delivery
 * figure.) In saturation, A's bursts are GSO messages too, each segment one
 * complete ChannelData message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/udp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "support/proc_cpu.h"
#include "common/addr.h"
#include "common/bytes.h"
#include "common/rand.h"
#include "net/udp.h"
#include "relay/chan_table.h"
#include "relay/forwarder.h"
#include "wire/relay_frame.h"

#define GEN_THREADS 2
#define GEN_TICK_NS 100000ull   /* voice: send and receive every 100 us */
#define PERIOD_NS   20000000ull /* 50 packets/s */
#define VOICE_BYTES 200
#define SAT_BYTES   64
#define SAT_CALLS   64
#define SAT_BURST   16   /* packets per GSO message in saturation */
#define SAT_WINDOW  1024 /* packets in flight per generator thread */
#define WARM_NS     400000000ull
#define DRAIN_NS    200000000ull
#define LAT_CAP     (2u << 20)
#define OUT_MSGS    64                      /* messages per sendmmsg */
#define MSG_MAX     (SAT_BURST * SAT_BYTES) /* bytes of one message (a burst at most) */
#define RX_MSGS     64                      /* datagrams per recvmmsg */
#define RX_BUF      65536                   /* one receive buffer: a whole GRO batch fits */
#define BODY_LEN    20 /* call u32, dir u8, tag u8, magic u16, ts u64, seq u32 */
#define BODY_MAGIC0 0xc4
#define BODY_MAGIC1 0x3e
#define MAX_PEERS   24000
#define GEN_SOCKBUF (32 << 20) /* the thread's one socket stands for thousands of peers */

_Static_assert(VOICE_BYTES <= MSG_MAX, "a voice packet fits a message buffer");
_Static_assert(SAT_BYTES >= WZP_RELAY_FRAME_HDR + BODY_LEN, "saturation packets hold a body");
_Static_assert(SAT_WINDOW % (2 * SAT_BURST) == 0, "the window holds whole burst pairs");

/*
 * Knobs for exploring (the default run uses none):
 *   WZP_BENCH_QUICK=1     short points, first few loads only (a smoke run, not a figure);
 *   WZP_BENCH_SKIP=K      skip the first K wzp voice loads;
 *   WZP_BENCH_WORKERS=N   wzp forwarding workers (default: one per core);
 *   WZP_BENCH_COALESCE=US the relay's receive coalescing (default: the relay's; -1 = off).
 */
static wzp_ts MEASURE_NS = 2000000000ull;
static size_t max_points = 100;

static const unsigned wzp_points[] = {250, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 12000};
static const unsigned coturn_points[] = {250, 500, 1000, 2000, 3000};
#define NPOINTS(a) (sizeof(a) / sizeof((a)[0]))

enum mode { M_DIRECT, M_WZP, M_COTURN };
static const char *mode_name[] = {"direct", "wzp", "coturn"};

static wzp_ts now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (wzp_ts)ts.tv_sec * 1000000000ull + (wzp_ts)ts.tv_nsec;
}

static void sleep_ns(wzp_ts ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void die(const char *what)
{
    fprintf(stderr, "bench relay-forward: %s\n", what);
    exit(1);
}

/* ---- peers, calls, generator threads ------------------------------------- */

typedef struct peer {
    int fd;        /* socket it sends from */
    bool pktinfo;  /* fd is the thread's wildcard socket: source chosen per message */
    wzp_addr addr; /* its own address: source of its packets, destination of replies */
    wzp_addr dst;  /* where it sends */
    uint32_t chan; /* channel id in its frames (wzp), or its TURN channel (coturn side A) */
    uint32_t seq;
} peer;

typedef struct call {
    peer p[2]; /* side A, side B */
    uint32_t index;
} call;

/* Control data of one sent message: IP_PKTINFO (source) and UDP_SEGMENT (GSO). */
typedef union ctlbuf {
    char b[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
} ctlbuf;

/* Control data of one received datagram: room for UDP_GRO's gso_size and then some. */
typedef union rctlbuf {
    char b[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct cmsghdr align;
} rctlbuf;

/* Messages queued on the thread's wildcard socket, sent with one sendmmsg. */
typedef struct outb {
    struct mmsghdr h[OUT_MSGS];
    struct iovec iov[OUT_MSGS];
    ctlbuf ctl[OUT_MSGS];
    uint8_t buf[OUT_MSGS][MSG_MAX];
    uint8_t nseg[OUT_MSGS]; /* packets in the message */
    uint8_t hl[OUT_MSGS];   /* header bytes before each packet's body */
    unsigned n;
} outb;

/* Receive buffers of one generator thread. */
typedef struct inb {
    struct mmsghdr h[RX_MSGS];
    struct iovec iov[RX_MSGS];
    rctlbuf ctl[RX_MSGS];
    uint8_t buf[RX_MSGS][RX_BUF];
} inb;

/* One generator thread and what it owns. */
typedef struct gen {
    pthread_t th;
    int ep;
    int fd;        /* the wildcard socket all its pktinfo peers share; -1 = none */
    uint16_t port; /* its port (every peer address of this thread has it) */
    outb *out;
    inb *in;
    call **calls;
    size_t ncalls, active;
    /* Per-point results. */
    uint64_t sent, recvd, sent_all, recvd_all;
    uint32_t *lat;
    size_t nlat;
} gen;

/* Run parameters shared with the generator threads. */
static struct {
    enum mode mode;
    bool saturate;
    size_t bytes;
    size_t hdr_in[2]; /* header bytes before the body, on receipt, per receiving side */
    _Atomic int stop;
    _Atomic unsigned tag_now; /* tag put in packets; 0 = not measured */
    unsigned tag_count;       /* tag the receivers count */
    _Atomic int send_errno;   /* last unexpected send error (0 = none) */
} run;

/* What this kernel does with the generator's tricks; probed once before any load. */
static struct {
    bool pktinfo; /* IP_PKTINFO picks the source of a wildcard socket's send */
    _Atomic bool gso;
    bool gro; /* a GSO send reaches a UDP_GRO socket as one buffer */
} net;

/* Peer k's own address: 127.16.0.0/12, never a .0 or .255 last byte. */
static void peer_addr(wzp_addr *a, size_t k, uint16_t port)
{
    if (k >= MAX_PEERS)
        die("too many peers");
    uint8_t ip[4] = {127, 16, (uint8_t)(k / 254), (uint8_t)(k % 254 + 1)};
    wzp_addr_from_ip(a, AF_INET, ip, port);
}

/* A generator socket on `bind` (a literal address) with UDP GRO on; -1 on failure. */
static int gen_socket(const char *bind, bool big, wzp_addr *bound)
{
    wzp_addr b;
    wzp_addr_parse(&b, bind, false);
    wzp_udp_config o = {.rcvbuf = 4 << 20, .sndbuf = 4 << 20};
    int fd = wzp_udp_open(&b, &o, bound);
    if (fd < 0)
        return -1;
    int one = 1, sz = GEN_SOCKBUF;
    /* Without it, received GSO batches are split by the kernel: still counted right. */
    (void)setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
    if (big) { /* beyond rmem_max/wmem_max: root only, else the 4 MiB above stay */
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
    }
    return fd;
}

/*
 * Prepares *mh to send iov from peer pe to pe->dst: with its source address
 * (IP_PKTINFO) when it shares the wildcard socket, and as a GSO message of
 * `seg`-byte segments when nseg > 1.
 */
static void msg_setup(struct msghdr *mh, struct iovec *iov, ctlbuf *ctl, const peer *pe,
                      unsigned nseg, size_t seg)
{
    memset(mh, 0, sizeof(*mh));
    memset(ctl, 0, sizeof(*ctl));
    mh->msg_name = (void *)&pe->dst.u.sa;
    mh->msg_namelen = pe->dst.len;
    mh->msg_iov = iov;
    mh->msg_iovlen = 1;
    if (!pe->pktinfo && nseg <= 1)
        return;
    mh->msg_control = ctl->b;
    mh->msg_controllen = sizeof(ctl->b);
    size_t used = 0;
    struct cmsghdr *cm = CMSG_FIRSTHDR(mh);
    if (pe->pktinfo) {
        struct in_pktinfo pi;
        memset(&pi, 0, sizeof(pi));
        pi.ipi_spec_dst = pe->addr.u.v4.sin_addr; /* ifindex 0: routed as usual */
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        used += CMSG_SPACE(sizeof(pi));
        cm = CMSG_NXTHDR(mh, cm);
    }
    if (nseg > 1) {
        uint16_t s = (uint16_t)seg;
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(s));
        memcpy(CMSG_DATA(cm), &s, sizeof(s));
        used += CMSG_SPACE(sizeof(s));
    }
    mh->msg_controllen = used;
}

/* A send failed for another reason than a full buffer: remembered, and GSO dropped if it was that.
 */
static void send_failed(int err, unsigned nseg)
{
    atomic_store(&run.send_errno, err);
    if (nseg > 1 && (err == EINVAL || err == EIO || err == EOPNOTSUPP))
        atomic_store(&net.gso, false); /* single packets from now on */
}

/* Body of a packet, right after its header. */
static void put_body(uint8_t *p, const call *c, uint8_t dir, uint8_t tag, uint32_t seq)
{
    memcpy(p, &c->index, 4);
    p[4] = dir;
    p[5] = tag;
    p[6] = BODY_MAGIC0;
    p[7] = BODY_MAGIC1;
    memset(p + 8, 0, 8); /* timestamp: written at send time */
    memcpy(p + 16, &seq, 4);
}

/* Header of a packet from `side` of c into p (run.bytes long); returns its length. */
static size_t hdr_out(const call *c, int side, uint8_t *p)
{
    if (run.mode == M_COTURN) {
        if (side == 1)
            return 0; /* plain TURN peer */
        uint16_t ch = (uint16_t)c->p[0].chan, len = (uint16_t)(run.bytes - 4);
        p[0] = (uint8_t)(ch >> 8);
        p[1] = (uint8_t)ch;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
        return 4;
    }
    wzp_relay_frame_encode_hdr(p, run.bytes, WZP_RELAY_FRAME_DATA, c->p[side].chan);
    return WZP_RELAY_FRAME_HDR;
}

/* nseg packets from `side` of c, back to back in p (MSG_MAX bytes); returns the header length. */
static size_t build(call *c, int side, uint8_t tag, unsigned nseg, uint8_t *p)
{
    size_t hl = 0;
    for (unsigned s = 0; s < nseg && (s + 1) * run.bytes <= MSG_MAX; s++) {
        uint8_t *q = p + s * run.bytes;
        hl = hdr_out(c, side, q);
        memset(q + hl, 0xa5, run.bytes - hl);
        put_body(q + hl, c, (uint8_t)side, tag, c->p[side].seq++);
    }
    return hl;
}

static void stamp(uint8_t *p, unsigned nseg, size_t hl, wzp_ts t)
{
    for (unsigned s = 0; s < nseg; s++)
        memcpy(p + s * run.bytes + hl + 8, &t, 8);
}

/* A message the kernel took: each of its packets is one sent. */
static void count_sent(gen *g, const uint8_t *p, unsigned nseg, size_t hl)
{
    for (unsigned s = 0; s < nseg; s++) {
        const uint8_t *body = p + s * run.bytes + hl;
        g->sent_all++;
        if (body[5] && body[5] == run.tag_count)
            g->sent++;
    }
}

static void flush(gen *g)
{
    outb *o = g->out;
    if (!o || !o->n)
        return;
    wzp_ts t = now_ns();
    for (unsigned i = 0; i < o->n; i++)
        stamp(o->buf[i], o->nseg[i], o->hl[i], t);
    unsigned done = 0;
    while (done < o->n) {
        int r = sendmmsg(g->fd, o->h + done, o->n - done, MSG_DONTWAIT);
        if (r > 0) {
            for (unsigned i = done; i < done + (unsigned)r; i++)
                count_sent(g, o->buf[i], o->nseg[i], o->hl[i]);
            done += (unsigned)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 || errno == EAGAIN || errno == ENOBUFS)
            break; /* buffer full: the rest is lost, and counted as not sent */
        send_failed(errno, o->nseg[done]);
        done++; /* that message only: not sent, not counted */
    }
    o->n = 0;
}

/*
 * Peer `side` of c sends nseg packets: one GSO message when nseg > 1. Peers
 * on the wildcard socket are queued for the next sendmmsg; one with a socket
 * of its own (coturn's side A) sends now.
 */
static void send_msg(gen *g, call *c, int side, uint8_t tag, unsigned nseg)
{
    peer *pe = &c->p[side];
    if (!pe->pktinfo) {
        uint8_t p[MSG_MAX];
        size_t hl = build(c, side, tag, nseg, p);
        stamp(p, nseg, hl, now_ns());
        struct iovec iov = {.iov_base = p, .iov_len = nseg * run.bytes};
        struct msghdr mh;
        ctlbuf ctl;
        msg_setup(&mh, &iov, &ctl, pe, nseg, run.bytes);
        ssize_t r = sendmsg(pe->fd, &mh, MSG_DONTWAIT);
        if (r == (ssize_t)iov.iov_len)
            count_sent(g, p, nseg, hl);
        else if (r < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINTR)
            send_failed(errno, nseg);
        return;
    }
    outb *o = g->out;
    unsigned i = o->n;
    o->hl[i] = (uint8_t)build(c, side, tag, nseg, o->buf[i]);
    o->nseg[i] = (uint8_t)nseg;
    o->iov[i].iov_base = o->buf[i];
    o->iov[i].iov_len = nseg * run.bytes;
    msg_setup(&o->h[i].msg_hdr, &o->iov[i], &o->ctl[i], pe, nseg, run.bytes);
    o->h[i].msg_len = 0;
    if (++o->n == OUT_MSGS)
        flush(g);
}

/* A burst of n packets: one GSO message, or n single ones where GSO failed. */
static void send_burst(gen *g, call *c, int side, uint8_t tag, unsigned n)
{
    if (atomic_load_explicit(&net.gso, memory_order_relaxed)) {
        send_msg(g, c, side, tag, n);
        return;
    }
    for (unsigned k = 0; k < n; k++)
        send_msg(g, c, side, tag, 1);
}

/* One received packet (a datagram, or one segment of a GRO batch). */
static void account(gen *g, const uint8_t *p, size_t len, size_t hl, wzp_ts t)
{
    if (len < hl + BODY_LEN)
        return;
    const uint8_t *b = p + hl;
    /*
     * Not one of this mode's packets: e.g. a late one from coturn (a header
     * of another length) landing in the next direct baseline. Without the
     * magic, a timestamp byte would now and then pass for the tag.
     */
    if (b[6] != BODY_MAGIC0 || b[7] != BODY_MAGIC1 || b[4] > 1)
        return;
    g->recvd_all++;
    if (!b[5] || b[5] != run.tag_count)
        return;
    wzp_ts ts;
    memcpy(&ts, b + 8, 8);
    g->recvd++;
    if (g->nlat < LAT_CAP) {
        wzp_ts d = t > ts ? t - ts : 0;
        g->lat[g->nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
}

/* The UDP_GRO segment size of a received datagram, or 0 when it came whole. */
static size_t gro_size(struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_UDP || cm->cmsg_type != UDP_GRO)
            continue;
        if (cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int v;
            memcpy(&v, CMSG_DATA(cm), sizeof(v));
            return v > 0 ? (size_t)v : 0;
        }
        if (cm->cmsg_len >= CMSG_LEN(sizeof(uint16_t))) {
            uint16_t v;
            memcpy(&v, CMSG_DATA(cm), sizeof(v));
            return v;
        }
    }
    return 0;
}

/* Receives everything waiting on fd; its packets carry `side`'s receive header. */
static void drain(gen *g, int fd, int side)
{
    inb *in = g->in;
    size_t hl = run.hdr_in[side];
    for (;;) {
        memset(in->h, 0, sizeof(in->h));
        for (int i = 0; i < RX_MSGS; i++) {
            in->iov[i].iov_base = in->buf[i];
            in->iov[i].iov_len = RX_BUF;
            in->h[i].msg_hdr.msg_iov = &in->iov[i];
            in->h[i].msg_hdr.msg_iovlen = 1;
            in->h[i].msg_hdr.msg_control = in->ctl[i].b;
            in->h[i].msg_hdr.msg_controllen = sizeof(in->ctl[i].b);
        }
        int n = recvmmsg(fd, in->h, RX_MSGS, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        wzp_ts t = now_ns();
        for (int i = 0; i < n; i++) {
            struct msghdr *mh = &in->h[i].msg_hdr;
            size_t len = in->h[i].msg_len;
            if (mh->msg_flags & MSG_TRUNC || len > RX_BUF)
                continue;
            size_t seg = gro_size(mh);
            if (!seg || seg > len)
                seg = len;
            for (size_t off = 0; off < len; off += seg)
                account(g, in->buf[i] + off, len - off < seg ? len - off : seg, hl, t);
        }
        if (n < RX_MSGS)
            return;
    }
}

static void poll_recv(gen *g, int timeout_ms)
{
    struct epoll_event ev[256];
    int n = epoll_wait(g->ep, ev, 256, timeout_ms);
    for (int i = 0; i < n; i++)
        drain(g, (int)(ev[i].data.u64 & 0xffffffffu), (int)(ev[i].data.u64 >> 32));
}

static void *gen_main(void *arg)
{
    gen *g = arg;
    (void)prctl(PR_SET_TIMERSLACK, 5000ul, 0, 0, 0); /* ticks of 100 us, not 150 */
    wzp_ts t0 = now_ns(), last_rx = t0;
    uint64_t done = 0;
    size_t rr = 0;
    while (!atomic_load_explicit(&run.stop, memory_order_relaxed)) {
        uint8_t tag = (uint8_t)atomic_load_explicit(&run.tag_now, memory_order_relaxed);
        wzp_ts now = now_ns();
        if (!run.saturate) {
            /* Each call sends one packet each way every 20 ms, calls evenly spread. */
            uint64_t due = (now - t0) / 1000 * g->active / (PERIOD_NS / 1000);
            for (; done < due; done++) {
                call *c = g->calls[done % g->active];
                send_msg(g, c, 0, tag, 1);
                send_msg(g, c, 1, tag, 1);
            }
            flush(g);
            /* Take what has arrived, then sleep to the next tick: the generator
             * never waits on its sockets, so a sender (the relay, on loopback)
             * is not charged for waking it, as it would not be on a real NIC. */
            poll_recv(g, 0);
            sleep_ns(GEN_TICK_NS);
            continue;
        }
        uint64_t before = g->recvd_all;
        uint64_t inflight = g->sent_all > g->recvd_all ? g->sent_all - g->recvd_all : 0;
        for (; inflight + 2 * SAT_BURST <= SAT_WINDOW; inflight += 2 * SAT_BURST) {
            call *c = g->calls[rr++ % g->active];
            send_burst(g, c, 0, tag, SAT_BURST);
            send_burst(g, c, 1, tag, SAT_BURST);
        }
        flush(g);
        poll_recv(g, g->sent_all >= g->recvd_all + SAT_WINDOW ? 1 : 0);
        if (g->recvd_all != before) {
            last_rx = now;
        } else if (now - last_rx > 20000000ull) {
            /* Nothing back for 20 ms: what is in flight is lost; reopen the window. */
            g->sent_all = g->recvd_all;
            last_rx = now;
        }
    }
    return NULL;
}
/* ---- CPU and memory of a process (or some of its threads) ---------------- */

static uint64_t rss_bytes(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    uint64_t kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/*
 * Where loss happens: receive drops of every UDP socket in this network
 * namespace (/proc/net/udp "drops"), summed over the generator's sockets
 * (known by port) and over all others: the relay's, when the bench has its
 * own namespace; anyone's in the host namespace.
 */
static bool gen_port[65536];
static bool own_netns;

static void udp_drops(uint64_t *gen_drops, uint64_t *other)
{
    *gen_drops = *other = 0;
    FILE *f = fopen("/proc/net/udp", "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        unsigned port;
        unsigned long long drops;
        if (sscanf(line, " %*s %*[0-9A-Fa-f]:%x %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
                   &port, &drops) != 2 ||
            port > 65535)
            continue; /* the header line */
        if (gen_port[port])
            *gen_drops += drops;
        else
            *other += drops;
    }
    if (f)
        fclose(f);
}

/* ---- one measured point --------------------------------------------------- */

typedef struct result {
    enum mode mode;
    unsigned calls;
    bool saturate;
    double offered_pps, pps, loss_pct, cpu_frac, pps_per_core;
    double p50_us, p99_us;           /* one-way */
    double add50_us, add99_us;       /* minus direct, where known */
    int send_err;                    /* an unexpected send error seen (errno), 0 = none */
    uint64_t drops_gen, drops_other; /* socket receive drops over the point (see udp_drops) */
} result;

static gen gens[GEN_THREADS];
static unsigned tag_seq;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs the load on the first `ncalls` calls; CPU read from (cpu_pid, cpu_prefix). */
static result measure(enum mode mode, bool saturate, unsigned ncalls, pid_t cpu_pid,
                      const char *cpu_prefix)
{
    result r = {.mode = mode, .calls = ncalls, .saturate = saturate};
    run.mode = mode;
    run.saturate = saturate;
    run.bytes = saturate ? SAT_BYTES : VOICE_BYTES;
    run.hdr_in[0] = mode == M_COTURN ? 4 : WZP_RELAY_FRAME_HDR;
    run.hdr_in[1] = mode == M_COTURN ? 0 : WZP_RELAY_FRAME_HDR;
    tag_seq = tag_seq % 250 + 1;
    run.tag_count = tag_seq;
    atomic_store(&run.tag_now, 0);
    atomic_store(&run.stop, 0);
    uint64_t dg0, do0;
    udp_drops(&dg0, &do0);
    for (int t = 0; t < GEN_THREADS; t++) {
        gen *g = &gens[t];
        /* Calls were dealt round-robin: thread t owns calls t, t+G, ... */
        g->active = (ncalls + GEN_THREADS - 1 - (unsigned)t) / GEN_THREADS;
        if (g->active > g->ncalls)
            die("more calls than set up");
        g->sent = g->recvd = g->sent_all = g->recvd_all = 0;
        g->nlat = 0;
        for (size_t i = 0; i < g->active; i++)
            g->calls[i]->p[0].seq = g->calls[i]->p[1].seq = 0;
        if (g->active && pthread_create(&g->th, NULL, gen_main, g) != 0)
            die("pthread_create");
    }
    sleep_ns(WARM_NS);
    uint64_t c0 = cpu_pid ? wzp_proc_cpu_ns(cpu_pid, cpu_prefix) : 0;
    wzp_ts t0 = now_ns();
    atomic_store(&run.tag_now, run.tag_count);
    sleep_ns(MEASURE_NS);
    atomic_store(&run.tag_now, 0);
    wzp_ts t1 = now_ns();
    uint64_t c1 = cpu_pid ? wzp_proc_cpu_ns(cpu_pid, cpu_prefix) : 0;
    sleep_ns(DRAIN_NS);
    atomic_store(&run.stop, 1);
    uint64_t sent = 0, recvd = 0;
    size_t nlat = 0;
    for (int t = 0; t < GEN_THREADS; t++) {
        if (gens[t].active)
            pthread_join(gens[t].th, NULL);
        sent += gens[t].sent;
        recvd += gens[t].recvd;
        nlat += gens[t].nlat;
    }
    double secs = (double)(t1 - t0) / 1e9;
    r.offered_pps = (double)sent / secs;
    r.pps = (double)recvd / secs;
    r.loss_pct = sent ? 100.0 * (double)(sent > recvd ? sent - recvd : 0) / (double)sent : 0;
    if (cpu_pid) {
        r.cpu_frac = (double)(c1 - c0) / (double)(t1 - t0);
        r.pps_per_core = c1 > c0 ? (double)recvd / ((double)(c1 - c0) / 1e9) : 0;
    }
    uint32_t *all = malloc((nlat ? nlat : 1) * sizeof(uint32_t));
    if (!all)
        die("out of memory");
    size_t k = 0;
    for (int t = 0; t < GEN_THREADS; t++) {
        memcpy(all + k, gens[t].lat, gens[t].nlat * sizeof(uint32_t));
        k += gens[t].nlat;
    }
    qsort(all, nlat, sizeof(uint32_t), cmp_u32);
    if (nlat) {
        r.p50_us = all[nlat / 2] / 1e3;
        r.p99_us = all[nlat * 99 / 100] / 1e3;
    }
    free(all);
    r.send_err = atomic_exchange(&run.send_errno, 0);
    uint64_t dg1, do1;
    udp_drops(&dg1, &do1);
    r.drops_gen = dg1 > dg0 ? dg1 - dg0 : 0;
    r.drops_other = do1 > do0 ? do1 - do0 : 0;
    /* Anything still queued belongs to this point; do not let it leak into the next. */
    for (int t = 0; t < GEN_THREADS; t++)
        while (epoll_wait(gens[t].ep, (struct epoll_event[1]){0}, 1, 0) > 0)
            poll_recv(&gens[t], 0);
    return r;
}

/*
 * A voice point, measured again once when it lost packets: the cores are
 * shared with other tenants, and one unlucky 2 s window should not decide
 * the capacity. The better of the two (lower loss) is kept and marked.
 */
static result measure_voice(enum mode mode, unsigned n, pid_t pid, const char *prefix,
                            bool *retried)
{
    result r = measure(mode, false, n, pid, prefix);
    *retried = false;
    if (r.loss_pct >= 0.1) {
        result again = measure(mode, false, n, pid, prefix);
        *retried = true;
        if (again.loss_pct < r.loss_pct)
            r = again;
    }
    return r;
}

/* ---- setup of calls -------------------------------------------------------- */

static call *calls;   /* all calls, index = call number */
static size_t ncalls; /* how many exist */

static void gens_init(void)
{
    for (int t = 0; t < GEN_THREADS; t++) {
        gen *g = &gens[t];
        g->ep = epoll_create1(EPOLL_CLOEXEC);
        g->lat = malloc(LAT_CAP * sizeof(uint32_t));
        g->out = calloc(1, sizeof(outb));
        g->in = calloc(1, sizeof(inb));
        g->fd = -1;
        if (g->ep < 0 || !g->lat || !g->out || !g->in)
            die("epoll/malloc");
    }
}

/* Watches fd; what arrives on it carries the receive header of `side`. */
static void ep_add(gen *g, int fd, int side)
{
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = (uint64_t)(unsigned)side << 32 | (unsigned)fd;
    if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
}

/*
 * Each thread's one wildcard socket. It receives side B's packets in coturn
 * mode (and in wzp and direct modes both sides', whose headers are alike).
 */
static void open_gen_sockets(void)
{
    for (int t = 0; t < GEN_THREADS; t++) {
        gen *g = &gens[t];
        wzp_addr b;
        g->fd = gen_socket("0.0.0.0:0", true, &b);
        if (g->fd < 0)
            die("wildcard socket");
        g->port = wzp_addr_port(&b);
        gen_port[g->port] = true;
        ep_add(g, g->fd, 1);
    }
}

/* n calls, dealt round-robin: thread t owns calls t, t+G, ... */
static void calls_new(size_t n)
{
    if (2 * n > MAX_PEERS)
        die("too many calls");
    calls = calloc(n, sizeof(call));
    ncalls = n;
    if (!calls)
        die("out of memory");
    for (int t = 0; t < GEN_THREADS; t++) {
        gen *g = &gens[t];
        g->calls = calloc(n / GEN_THREADS + 1, sizeof(call *));
        g->ncalls = 0;
        if (!g->calls)
            die("out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        gen *g = &gens[i % GEN_THREADS];
        calls[i].index = (uint32_t)i;
        g->calls[g->ncalls++] = &calls[i];
    }
}

/* Peer number k (2 * call + side) on its thread's wildcard socket. */
static void peer_shared(peer *pe, const gen *g, size_t k)
{
    pe->fd = g->fd;
    pe->pktinfo = true;
    peer_addr(&pe->addr, k, g->port);
}

/* wzp and direct modes: every peer has its own address on its thread's wildcard socket. */
static void setup_shared(size_t n)
{
    open_gen_sockets();
    calls_new(n);
    for (size_t i = 0; i < n; i++)
        for (int side = 0; side < 2; side++)
            peer_shared(&calls[i].p[side], &gens[i % GEN_THREADS], 2 * i + (size_t)side);
}

static void teardown(void)
{
    for (int t = 0; t < GEN_THREADS; t++) {
        gen *g = &gens[t];
        /* Peers with a socket of their own (coturn's side A). */
        for (size_t i = 0; i < g->ncalls; i++) {
            peer *a = &g->calls[i]->p[0];
            if (!a->pktinfo && a->fd >= 0)
                close(a->fd);
            a->fd = -1;
        }
        if (g->fd >= 0)
            close(g->fd);
        g->fd = -1;
        free(g->calls);
        g->calls = NULL;
        g->ncalls = 0;
        close(g->ep);
        g->ep = epoll_create1(EPOLL_CLOEXEC);
        if (g->ep < 0)
            die("epoll");
    }
    free(calls);
    calls = NULL;
    ncalls = 0;
    memset(gen_port, 0, sizeof(gen_port));
}

/* ---- the machine: namespace, limits, what the kernel supports ------------- */

/*
 * As root: a network namespace of the bench's own with `lo` up, so the
 * generator's wildcard ports are seen by nothing else. Returns what is used.
 */
static const char *netns_enter(void)
{
    if (geteuid() != 0) {
        printf("relay-forward: not root: the generator binds the wildcard address (0.0.0.0) "
               "in the host network namespace\n");
        return "host namespace (not root)";
    }
    if (unshare(CLONE_NEWNET) < 0) {
        printf("relay-forward: unshare(CLONE_NEWNET): %s: the generator binds the wildcard "
               "address (0.0.0.0) in the host network namespace\n",
               strerror(errno));
        return "host namespace (unshare failed)";
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        die("SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        die("SIOCSIFFLAGS lo up");
    close(s);
    own_netns = true;
    return "own network namespace";
}

/* coturn mode holds a socket per allocation: ~3000. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fprintf(stderr, "bench relay-forward: setrlimit(NOFILE): %s\n", strerror(errno));
    }
}

/*
 * Before any load: does a wildcard socket's send leave from the source
 * IP_PKTINFO names (else every relayed packet would be refused as
 * wrong_source)? Do UDP GSO sends work, and does a GSO send reach a UDP_GRO
 * socket as one buffer?
 */
static void probe_net(void)
{
    wzp_addr b;
    int fd = gen_socket("0.0.0.0:0", false, &b);
    if (fd < 0)
        die("wildcard socket");
    peer pe = {.fd = fd, .pktinfo = true};
    peer_addr(&pe.addr, MAX_PEERS - 1, wzp_addr_port(&b));
    wzp_addr_parse(&pe.dst, "127.0.0.1:0", false);
    wzp_addr_set_port(&pe.dst, wzp_addr_port(&b));
    uint8_t p[2 * SAT_BYTES];
    memset(p, 0x5a, sizeof(p));
    struct iovec iov = {.iov_base = p, .iov_len = sizeof(p)};
    struct msghdr mh;
    ctlbuf ctl;
    msg_setup(&mh, &iov, &ctl, &pe, 2, SAT_BYTES);
    bool gso = sendmsg(fd, &mh, 0) == (ssize_t)sizeof(p);
    if (!gso) {
        fprintf(stderr, "bench relay-forward: UDP GSO send: %s\n", strerror(errno));
        iov.iov_len = SAT_BYTES;
        msg_setup(&mh, &iov, &ctl, &pe, 1, SAT_BYTES);
        if (sendmsg(fd, &mh, 0) != SAT_BYTES)
            die("send with an IP_PKTINFO source failed");
    }
    atomic_store(&net.gso, gso);
    size_t want = iov.iov_len, got = 0;
    bool src_ok = true;
    wzp_ts deadline = now_ns() + WZP_SEC(1);
    while (got < want && now_ns() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) != 1)
            continue;
        uint8_t rb[4 * SAT_BYTES];
        struct sockaddr_storage from;
        rctlbuf rc;
        struct iovec riov = {.iov_base = rb, .iov_len = sizeof(rb)};
        struct msghdr rm = {.msg_name = &from,
                            .msg_namelen = sizeof(from),
                            .msg_iov = &riov,
                            .msg_iovlen = 1,
                            .msg_control = rc.b,
                            .msg_controllen = sizeof(rc.b)};
        ssize_t r = recvmsg(fd, &rm, MSG_DONTWAIT);
        if (r <= 0)
            continue;
        wzp_addr src;
        if (wzp_addr_from_sockaddr(&src, (struct sockaddr *)&from, rm.msg_namelen) < 0 ||
            !wzp_addr_equal(&src, &pe.addr)) {
            char want_s[WZP_ADDR_STRLEN], got_s[WZP_ADDR_STRLEN];
            fprintf(stderr, "bench relay-forward: sent from %s (IP_PKTINFO), arrived from %s\n",
                    wzp_addr_format(&pe.addr, want_s, sizeof(want_s)),
                    wzp_addr_format(&src, got_s, sizeof(got_s)));
            src_ok = false;
        }
        if (gro_size(&rm) == SAT_BYTES && r == 2 * SAT_BYTES)
            net.gro = true;
        got += (size_t)r;
    }
    close(fd);
    net.pktinfo = src_ok && got == want;
    if (!net.pktinfo)
        die("the kernel did not send from the IP_PKTINFO source: per-peer addresses impossible");
}

/* ---- a minimal TURN client (RFC 8656 / 8489) ---------------------------- */

#define STUN_COOKIE 0x2112A442u
#define TURN_USER   "test"
#define TURN_PASS   "test"
#define TURN_REALM  "bench"

typedef struct turn_alloc {
    call *c;
    int state; /* 0 need 401, 1 allocate, 2 channel bind, 3 done, -1 failed */
    uint8_t tid[12];
    wzp_ts sent_at;
    int tries;
    char nonce[256];
    size_t nonce_len;
} turn_alloc;

static uint8_t turn_key[16];

static void attr(wzp_wr *w, uint16_t type, const void *v, size_t len)
{
    static const uint8_t pad[4];
    wzp_wr_u16(w, type);
    wzp_wr_u16(w, (uint16_t)len);
    wzp_wr_bytes(w, v, len);
    wzp_wr_bytes(w, pad, (4 - len % 4) % 4);
}

static void xor_addr(uint8_t out[8], const wzp_addr *a)
{
    uint32_t ip = ntohl(a->u.v4.sin_addr.s_addr) ^ STUN_COOKIE;
    uint16_t port = wzp_addr_port(a) ^ (uint16_t)(STUN_COOKIE >> 16);
    out[0] = 0;
    out[1] = 1;
    out[2] = (uint8_t)(port >> 8);
    out[3] = (uint8_t)port;
    out[4] = (uint8_t)(ip >> 24);
    out[5] = (uint8_t)(ip >> 16);
    out[6] = (uint8_t)(ip >> 8);
    out[7] = (uint8_t)ip;
}

/* Builds the request for the allocation's current state; returns its length. */
static size_t turn_request(turn_alloc *t, uint8_t *buf, size_t cap)
{
    wzp_wr w = wzp_wr_init(buf, cap);
    uint16_t type = t->state == 2 ? 0x0009 : 0x0003;
    /* A retransmission keeps its transaction id (a new one could look like a second Allocate). */
    if (t->tries <= 1)
        wzp_random_nonce(t->tid, sizeof(t->tid));
    wzp_wr_u16(&w, type);
    wzp_wr_u16(&w, 0); /* length, patched below */
    wzp_wr_u32(&w, STUN_COOKIE);
    wzp_wr_bytes(&w, t->tid, 12);
    if (t->state == 2) {
        uint8_t ch[4] = {(uint8_t)(t->c->p[0].chan >> 8), (uint8_t)t->c->p[0].chan, 0, 0};
        uint8_t pa[8];
        xor_addr(pa, &t->c->p[1].addr); /* B's own address: coturn relays to it */
        attr(&w, 0x000C, ch, 4);
        attr(&w, 0x0012, pa, 8);
    } else {
        uint8_t udp[4] = {17, 0, 0, 0};
        attr(&w, 0x0019, udp, 4);
    }
    if (t->state >= 1) {
        attr(&w, 0x0006, TURN_USER, strlen(TURN_USER));
        attr(&w, 0x0014, TURN_REALM, strlen(TURN_REALM));
        attr(&w, 0x0015, t->nonce, t->nonce_len);
        /* MESSAGE-INTEGRITY: HMAC-SHA1 over the message with the length covering it. */
        size_t len = w.off - 20 + 24;
        buf[2] = (uint8_t)(len >> 8);
        buf[3] = (uint8_t)len;
        uint8_t mac[20];
        gnutls_hmac_fast(GNUTLS_MAC_SHA1, turn_key, sizeof(turn_key), buf, w.off, mac);
        attr(&w, 0x0008, mac, 20);
    }
    size_t len = w.off - 20;
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    return w.err ? 0 : w.off;
}

/* Handles a response; advances the state. */
static void turn_response(turn_alloc *t, const uint8_t *p, size_t n)
{
    wzp_rd r = wzp_rd_init(p, n);
    uint16_t type = wzp_rd_u16(&r), len = wzp_rd_u16(&r);
    uint32_t cookie = wzp_rd_u32(&r);
    const uint8_t *tid = wzp_rd_take(&r, 12);
    if (r.err || cookie != STUN_COOKIE || memcmp(tid, t->tid, 12) != 0 || len > wzp_rd_left(&r))
        return;
    int code = 0;
    while (wzp_rd_left(&r) >= 4) {
        uint16_t at = wzp_rd_u16(&r), al = wzp_rd_u16(&r);
        const uint8_t *v = wzp_rd_take(&r, al);
        wzp_rd_take(&r, (4 - al % 4) % 4);
        if (!v)
            break;
        if (at == 0x0009 && al >= 4)
            code = (v[2] & 7) * 100 + v[3];
        if (at == 0x0015 && al < sizeof(t->nonce)) {
            memcpy(t->nonce, v, al);
            t->nonce_len = al;
        }
        if (at == 0x0016 && al == 8) {
            uint8_t ip[4];
            uint32_t x =
                ((uint32_t)v[4] << 24 | (uint32_t)v[5] << 16 | (uint32_t)v[6] << 8 | v[7]) ^
                STUN_COOKIE;
            uint16_t port = (uint16_t)(((v[2] << 8) | v[3]) ^ (STUN_COOKIE >> 16));
            x = htonl(x);
            memcpy(ip, &x, 4);
            wzp_addr_from_ip(&t->c->p[1].dst, AF_INET, ip, port);
        }
    }
    if ((type & 0x0110) == 0x0110) { /* error response */
        if (code == 401 && t->state == 0) {
            t->state = 1;
        } else if (code != 438) { /* 438 Stale Nonce: retry with the new one */
            t->state = -1;
        }
    } else if ((type & 0x0110) == 0x0100) { /* success */
        t->state = t->state == 1 ? 2 : t->state == 2 ? 3 : t->state;
    }
    t->sent_at = 0; /* send the next request now */
    t->tries = 0;
}

/* Allocates calls [from, to) on coturn at `server`. Returns how many succeeded. */
static size_t turn_allocate(size_t from, size_t to, const wzp_addr *server)
{
    size_t n = to - from, done = 0, failed = 0;
    turn_alloc *ta = calloc(n, sizeof(*ta));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < n; i++) {
        ta[i].c = &calls[from + i];
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, ta[i].c->p[0].fd, &ev);
    }
    size_t next = 0; /* allocations started so far (at most 256 in progress) */
    wzp_ts deadline = now_ns() + WZP_SEC(30);
    while (done + failed < n && now_ns() < deadline) {
        wzp_ts now = now_ns();
        while (next < n && next - done - failed < 256)
            next++;
        for (size_t i = 0; i < next; i++) {
            turn_alloc *t = &ta[i];
            if (t->state < 0 || t->state == 3)
                continue;
            if (t->sent_at && now - t->sent_at < WZP_MS(300))
                continue;
            if (t->tries++ >= 8) {
                t->state = -1;
                failed++;
                continue;
            }
            uint8_t buf[512];
            size_t len = turn_request(t, buf, sizeof(buf));
            sendto(t->c->p[0].fd, buf, len, 0, &server->u.sa, server->len);
            t->sent_at = now;
        }
        struct epoll_event ev[64];
        int k = epoll_wait(ep, ev, 64, 5);
        for (int j = 0; j < k; j++) {
            turn_alloc *t = &ta[ev[j].data.u64];
            uint8_t buf[1024];
            ssize_t got;
            while ((got = recv(t->c->p[0].fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
                int before = t->state;
                turn_response(t, buf, (size_t)got);
                if (t->state == 3 && before != 3)
                    done++;
                if (t->state == -1 && before != -1)
                    failed++;
            }
        }
    }
    close(ep);
    free(ta);
    return done;
}

/* ---- coturn process ------------------------------------------------------ */

static pid_t coturn_pid;
static char coturn_dir[64];

static void coturn_kill(void)
{
    if (coturn_pid > 0) {
        kill(coturn_pid, SIGTERM);
        for (int i = 0; i < 50; i++) {
            if (waitpid(coturn_pid, NULL, WNOHANG) == coturn_pid) {
                coturn_pid = 0;
                break;
            }
            sleep_ns(WZP_MS(20));
        }
        if (coturn_pid > 0) {
            kill(coturn_pid, SIGKILL);
            waitpid(coturn_pid, NULL, 0);
        }
        coturn_pid = 0;
    }
    if (coturn_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", coturn_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", coturn_dir);
        coturn_dir[0] = 0;
    }
}

static uint16_t free_udp_port(void)
{
    wzp_addr lo, b;
    wzp_addr_parse(&lo, "127.0.0.1:0", false);
    int fd = wzp_udp_open(&lo, NULL, &b);
    if (fd < 0)
        return 0;
    close(fd);
    return wzp_addr_port(&b);
}

/* Starts turnserver on 127.0.0.1; returns its address, or -1 when coturn is unavailable. */
static int coturn_start(wzp_addr *server)
{
    if (access("/usr/bin/turnserver", X_OK) != 0)
        return -1;
    snprintf(coturn_dir, sizeof(coturn_dir), "/tmp/wzp-bench-coturn-XXXXXX");
    if (!mkdtemp(coturn_dir))
        return -1;
    uint16_t port = free_udp_port();
    char a_port[32], a_log[128], a_pid[128];
    snprintf(a_port, sizeof(a_port), "--listening-port=%u", port);
    snprintf(a_log, sizeof(a_log), "--log-file=%s/turn.log", coturn_dir);
    snprintf(a_pid, sizeof(a_pid), "--pidfile=%s/turn.pid", coturn_dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        execl("/usr/bin/turnserver", "turnserver", "-n", "--listening-ip=127.0.0.1",
              "--relay-ip=127.0.0.1", a_port, "--lt-cred-mech", "--user=" TURN_USER ":" TURN_PASS,
              "--realm=" TURN_REALM, "--no-tls", "--no-dtls", "--no-tcp", "--no-tcp-relay",
              "--no-rfc5780", "--no-cli", "--allow-loopback-peers", "--simple-log",
              "--no-stdout-log", a_log, a_pid, (char *)NULL);
        _exit(127);
    }
    coturn_pid = pid;
    wzp_addr_parse(server, "127.0.0.1:0", false);
    wzp_addr_set_port(server, port);
    /* Ready when it answers a STUN Binding request. */
    int fd = gen_socket("127.0.0.1:0", false, NULL);
    if (fd < 0)
        return -1;
    uint8_t req[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int i = 0; i < 100; i++) {
        sendto(fd, req, sizeof(req), 0, &server->u.sa, server->len);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) == 1) {
            close(fd);
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            coturn_pid = 0;
            break;
        }
    }
    close(fd);
    return -1;
}

/*
 * coturn mode: side A has a socket per call on 127.0.0.1 (one allocation
 * each: TURN keys an allocation by its 5-tuple); side B is a plain peer with
 * its own address on its thread's wildcard socket.
 */
static void setup_coturn(size_t n)
{
    open_gen_sockets();
    calls_new(n);
    for (size_t i = 0; i < n; i++) {
        gen *g = &gens[i % GEN_THREADS];
        peer *a = &calls[i].p[0];
        a->fd = gen_socket("127.0.0.1:0", false, &a->addr);
        if (a->fd < 0)
            die("socket (raise ulimit -n?)");
        a->pktinfo = false;
        a->chan = 0x4000;
        gen_port[wzp_addr_port(&a->addr)] = true;
        ep_add(g, a->fd, 0);
        peer_shared(&calls[i].p[1], g, 2 * i + 1);
    }
}

/* ---- the run --------------------------------------------------------------- */

/*
 * Direct baselines: the same calls, the same generator, but A and B send to
 * each other instead of to the relay. Measured right before each relay point
 * (same moment, same neighbours on the shared cores), cached per layout.
 */
static result direct_base[32];
static size_t ndirect;
static unsigned direct_max_calls; /* most calls the generator alone held under 0.1 % loss */

static void print_row(const result *r);

static bool healthy(const result *d)
{
    return d->loss_pct < 0.1 && d->p50_us < 1000;
}

static void baseline(unsigned n, bool saturate)
{
    for (size_t i = 0; i < ndirect; i++)
        if (direct_base[i].calls == n && direct_base[i].saturate == saturate)
            return;
    if (ndirect == sizeof(direct_base) / sizeof(direct_base[0]))
        return;
    wzp_addr *save = malloc(2 * ncalls * sizeof(wzp_addr));
    if (!save)
        die("out of memory");
    for (size_t i = 0; i < ncalls; i++) {
        save[2 * i] = calls[i].p[0].dst;
        save[2 * i + 1] = calls[i].p[1].dst;
        calls[i].p[0].dst = calls[i].p[1].addr;
        calls[i].p[1].dst = calls[i].p[0].addr;
    }
    result r = measure(M_DIRECT, saturate, n, 0, NULL);
    for (size_t i = 0; i < ncalls; i++) {
        calls[i].p[0].dst = save[2 * i];
        calls[i].p[1].dst = save[2 * i + 1];
    }
    free(save);
    print_row(&r);
    if (!saturate && r.loss_pct < 0.1 && n > direct_max_calls)
        direct_max_calls = n;
    direct_base[ndirect++] = r;
}

/*
 * Added latency = relay pX - direct pX. When the direct run at this load was
 * itself overloaded (the generator, not a relay, falling behind: loss, or a
 * median over 1 ms), the largest healthy lower load stands in: that
 * overstates what the relay adds, never understates it.
 */
static void added(result *r)
{
    const result *d = NULL;
    for (size_t i = 0; i < ndirect; i++) {
        const result *x = &direct_base[i];
        if (x->saturate == r->saturate && x->calls <= r->calls && healthy(x) &&
            (!d || x->calls > d->calls))
            d = x;
    }
    if (!d) { /* nothing healthy: the smallest load measured */
        for (size_t i = 0; i < ndirect; i++)
            if (direct_base[i].saturate == r->saturate && (!d || direct_base[i].calls < d->calls))
                d = &direct_base[i];
    }
    if (d) {
        r->add50_us = r->p50_us - d->p50_us;
        r->add99_us = r->p99_us - d->p99_us;
    }
}

static void print_row(const result *r)
{
    char add50[16] = "-", add99[16] = "-", ppc[16] = "-", cpu[16] = "-";
    if (r->mode != M_DIRECT) {
        snprintf(add50, sizeof(add50), "%.0f", r->add50_us);
        snprintf(add99, sizeof(add99), "%.0f", r->add99_us);
        snprintf(ppc, sizeof(ppc), "%.0f", r->pps_per_core);
        snprintf(cpu, sizeof(cpu), "%.0f", r->cpu_frac * 100);
    }
    printf("%-7s %6u %10.0f %10.0f %7.3f %6s %12s %9.0f %9.0f %8s %8s\n", mode_name[r->mode],
           r->calls, r->offered_pps, r->pps, r->loss_pct, cpu, ppc, r->p50_us, r->p99_us, add50,
           add99);
    if (r->send_err)
        printf("        (a send failed: %s)\n", strerror(r->send_err));
    if (r->loss_pct > 0 && (r->drops_gen || r->drops_other))
        printf("        (socket receive drops over the point: %s %" PRIu64 ", generator %" PRIu64
               ")\n",
               own_netns ? "relay" : "others (host namespace)", r->drops_other, r->drops_gen);
    fflush(stdout);
}

static void print_head(const char *title)
{
    printf("\n%s\n", title);
    printf("%-7s %6s %10s %10s %7s %6s %12s %9s %9s %8s %8s\n", "relay", "calls", "offered/s",
           "deliv/s", "loss%", "cpu%", "pkt/core-s", "p50_us", "p99_us", "+p50_us", "+p99_us");
}

/* ---- the kernel's own floor ------------------------------------------------ */

/*
 * What any socket relay must spend on loopback, measured in this run: the CPU
 * of sending one 200-byte datagram from a per-peer address (sendmmsg with
 * IP_PKTINFO, 64 per call; on loopback the sender also pays the receive path
 * up to the socket queue) and of receiving it (recvmmsg, 64 per call). A
 * relayed voice packet takes two of each (peer -> relay -> peer), so with the
 * generator on the same 2 cores no relay can hold more than
 * cores * 1e6 / (100 packets/s per call * 2 * (send + recv) us) calls.
 */
static struct {
    int fd;
    _Atomic uint64_t got;
    _Atomic int stop;
    double cpu_s;
} floor_sink;

static double thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *floor_drain(void *arg)
{
    (void)arg;
    static uint8_t buf[OUT_MSGS][VOICE_BYTES + 64];
    struct mmsghdr h[OUT_MSGS];
    struct iovec iov[OUT_MSGS];
    double c0 = thread_cpu_s();
    while (!atomic_load(&floor_sink.stop)) {
        memset(h, 0, sizeof(h));
        for (int i = 0; i < OUT_MSGS; i++) {
            iov[i].iov_base = buf[i];
            iov[i].iov_len = sizeof(buf[i]);
            h[i].msg_hdr.msg_iov = &iov[i];
            h[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(floor_sink.fd, h, OUT_MSGS, MSG_DONTWAIT, NULL);
        if (n > 0)
            atomic_fetch_add(&floor_sink.got, (uint64_t)n);
        else
            sleep_ns(GEN_TICK_NS); /* polled, as the generator does: nobody is woken */
    }
    floor_sink.cpu_s = thread_cpu_s() - c0;
    return NULL;
}

/* Returns false when the measurement could not be made. */
static bool kernel_floor(double *send_us, double *recv_us)
{
    wzp_addr lo, any, dst;
    wzp_addr_parse(&lo, "127.0.0.1:0", false);
    wzp_addr_parse(&any, "0.0.0.0:0", false);
    wzp_udp_config o = {.rcvbuf = 4 << 20, .sndbuf = 4 << 20};
    floor_sink.fd = wzp_udp_open(&lo, &o, &dst);
    int fd = wzp_udp_open(&any, &o, NULL);
    if (floor_sink.fd < 0 || fd < 0)
        return false;
    atomic_store(&floor_sink.got, 0);
    atomic_store(&floor_sink.stop, 0);
    pthread_t th;
    if (pthread_create(&th, NULL, floor_drain, NULL) != 0)
        return false;
    static uint8_t pay[VOICE_BYTES];
    struct mmsghdr h[OUT_MSGS];
    struct iovec iov[OUT_MSGS];
    ctlbuf ctl[OUT_MSGS];
    peer pe = {.pktinfo = true, .dst = dst};
    const uint64_t total = 400000;
    uint64_t sent = 0;
    double c0 = thread_cpu_s();
    while (sent < total) {
        memset(h, 0, sizeof(h));
        for (int i = 0; i < OUT_MSGS; i++) {
            iov[i].iov_base = pay;
            iov[i].iov_len = sizeof(pay);
            peer_addr(&pe.addr, (size_t)((sent + (uint64_t)i) % 20000), 0);
            msg_setup(&h[i].msg_hdr, &iov[i], &ctl[i], &pe, 1, 0);
        }
        int r = sendmmsg(fd, h, OUT_MSGS, 0);
        if (r <= 0)
            break;
        sent += (uint64_t)r;
        while (sent - atomic_load(&floor_sink.got) > 20000) /* stay within the socket buffer */
            sleep_ns(GEN_TICK_NS);
    }
    double send_cpu = thread_cpu_s() - c0;
    for (int i = 0; i < 100 && atomic_load(&floor_sink.got) < sent; i++)
        sleep_ns(WZP_MS(2));
    atomic_store(&floor_sink.stop, 1);
    pthread_join(th, NULL);
    uint64_t got = atomic_load(&floor_sink.got);
    close(fd);
    close(floor_sink.fd);
    if (sent < total || got == 0)
        return false;
    *send_us = send_cpu / (double)sent * 1e6;
    *recv_us = floor_sink.cpu_s / (double)got * 1e6;
    return true;
}

int main(void)
{
    /* First, while single-threaded: unshare(CLONE_NEWNET) moves the calling thread only. */
    const char *netns = netns_enter();
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    atexit(coturn_kill);
    gnutls_global_init();
    gnutls_hash_fast(GNUTLS_DIG_MD5, TURN_USER ":" TURN_REALM ":" TURN_PASS,
                     strlen(TURN_USER ":" TURN_REALM ":" TURN_PASS), turn_key);
    gens_init();
    if (getenv("WZP_BENCH_QUICK")) {
        MEASURE_NS = 500000000ull;
        max_points = 2;
    }
    probe_net();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned max_wzp = wzp_points[NPOINTS(wzp_points) - 1];
    printf("relay-forward: %ld cores, %d generator threads, wzp workers = cores; %u-byte voice "
           "packets at 50/s each way per call, one per message; %u-byte saturation (closed loop, "
           "%u in flight per generator thread, %u-packet %s bursts); %.1f s measured per point; "
           "%s\n",
           cores, GEN_THREADS, VOICE_BYTES, SAT_BYTES, SAT_WINDOW, SAT_BURST,
           atomic_load(&net.gso) ? "GSO" : "unbatched (no GSO)", MEASURE_NS / 1e9, netns);
    printf("generator: one wildcard UDP socket per thread, every peer its own address in "
           "127.16.0.0/12 chosen by IP_PKTINFO (checked); receive with UDP GRO (%s)\n",
           net.gro ? "GSO sends arrive whole and are split at gso_size"
                   : "not coalescing here: one datagram per packet");

    double floor_send = 0, floor_recv = 0;
    unsigned floor_calls = 0;
    if (kernel_floor(&floor_send, &floor_recv)) {
        floor_calls = (unsigned)((double)cores * 1e6 / (100.0 * 2 * (floor_send + floor_recv)));
        printf("kernel floor: send %.2f us + receive %.2f us per 200-byte datagram; a relayed "
               "packet needs 2 of each, so %ld cores (generator and relay together) hold at most "
               "%u voice calls, whatever the relay does\n",
               floor_send, floor_recv, cores, floor_calls);
    }

    /* --- wzp (and the direct baseline on the same sockets) --- */
    setup_shared(max_wzp);
    uint64_t rss0 = rss_bytes(getpid());
    wzp_chan_table_config tcfg = {.max_channels = (uint32_t)(2 * max_wzp)};
    wzp_chan_table *table = NULL;
    if (wzp_chan_table_new(&table, &tcfg) < 0)
        die("chan table");
    wzp_ts tnow = now_ns();
    for (size_t i = 0; i < ncalls; i++)
        if (wzp_chan_table_open_pair(table, &calls[i].p[0].addr, &calls[i].p[1].addr, tnow,
                                     &calls[i].p[0].chan, &calls[i].p[1].chan) < 0)
            die("open pair");
    uint64_t rss1 = rss_bytes(getpid());
    double wzp_mem_per_call = (double)(rss1 > rss0 ? rss1 - rss0 : 0) / (double)max_wzp;

    wzp_forwarder_config cfg = {.table = table};
    if (getenv("WZP_BENCH_WORKERS"))
        cfg.workers = (unsigned)atoi(getenv("WZP_BENCH_WORKERS"));
    if (getenv("WZP_BENCH_COALESCE"))
        cfg.coalesce_us = atoi(getenv("WZP_BENCH_COALESCE"));
    size_t skip = getenv("WZP_BENCH_SKIP") ? (size_t)atoi(getenv("WZP_BENCH_SKIP")) : 0;
    wzp_addr_parse(&cfg.bind, "127.0.0.1:0", false);
    wzp_forwarder *fwd;
    if (wzp_forwarder_new(&fwd, &cfg) < 0)
        die("forwarder start");
    for (size_t i = 0; i < ncalls; i++)
        calls[i].p[0].dst = calls[i].p[1].dst = *wzp_forwarder_local_addr(fwd);

    result wzp_voice[NPOINTS(wzp_points)];
    size_t nwzp = 0;
    print_head("wzp relay, voice load (each preceded by its direct peer-to-peer baseline)");
    for (size_t i = skip; i < NPOINTS(wzp_points) && i < skip + max_points; i++) {
        bool again;
        baseline(wzp_points[i], false);
        result r = measure_voice(M_WZP, wzp_points[i], getpid(), "wzp-fwd", &again);
        added(&r);
        print_row(&r);
        if (again)
            printf("        (lost packets: measured twice, better kept)\n");
        wzp_voice[nwzp++] = r;
        if (r.loss_pct >= 1.0)
            break;
    }
    print_head("wzp relay, saturation (64 B, closed loop: as fast as the generator can go)");
    baseline(SAT_CALLS, true);
    result wzp_sat = measure(M_WZP, true, SAT_CALLS, getpid(), "wzp-fwd");
    added(&wzp_sat);
    print_row(&wzp_sat);
    wzp_forwarder_stats st;
    wzp_forwarder_get_stats(fwd, &st);
    printf("wzp counters: rx=%" PRIu64 " forwarded=%" PRIu64 " unknown_channel=%" PRIu64
           " wrong_source=%" PRIu64 " malformed=%" PRIu64 " send_failed=%" PRIu64 "\n",
           st.rx, st.forwarded, st.unknown_channel, st.wrong_source, st.malformed, st.send_failed);
    if (st.wrong_source || st.unknown_channel)
        printf("WARNING: the relay refused generator packets: per-peer sources or channels are "
               "wrong, the figures above are not valid\n");
    wzp_forwarder_free(fwd);
    wzp_chan_table_free(table);
    teardown();

    /* --- coturn --- */
    result cot_voice[NPOINTS(coturn_points)], cot_sat = {0};
    size_t ncot = 0;
    double cot_mem_per_call = 0, cot_idle_mib = 0;
    bool have_coturn = false;
    wzp_addr server;
    if (coturn_start(&server) == 0) {
        have_coturn = true;
        unsigned max_cot = coturn_points[NPOINTS(coturn_points) - 1];
        setup_coturn(max_cot);
        ndirect = 0; /* another socket layout: new baselines */
        for (size_t i = 0; i < ncalls; i++)
            calls[i].p[0].dst = server;
        uint64_t crss0 = rss_bytes(coturn_pid);
        cot_idle_mib = (double)crss0 / (1 << 20);
        size_t allocated = 0;
        print_head(
            "coturn, voice load (each preceded by its direct baseline on coturn's socket layout)");
        for (size_t i = 0; i < NPOINTS(coturn_points) && i < max_points; i++) {
            unsigned n = coturn_points[i];
            wzp_ts ta = now_ns();
            size_t ok = turn_allocate(allocated, n, &server);
            if (ok != n - allocated) {
                printf("coturn: only %zu of %zu allocations succeeded; stopping here\n", ok,
                       n - allocated);
                break;
            }
            allocated = n;
            cot_mem_per_call = (double)(rss_bytes(coturn_pid) - crss0) / (double)allocated;
            fprintf(stderr, "(coturn: %zu allocations in %.1f s)\n", ok,
                    (double)(now_ns() - ta) / 1e9);
            bool again;
            baseline(n, false);
            result r = measure_voice(M_COTURN, n, coturn_pid, NULL, &again);
            added(&r);
            print_row(&r);
            if (again)
                printf("        (lost packets: measured twice, better kept)\n");
            cot_voice[ncot++] = r;
            if (r.loss_pct >= 1.0)
                break;
        }
        if (allocated >= SAT_CALLS) {
            print_head("coturn, saturation (64 B, closed loop)");
            baseline(SAT_CALLS, true);
            cot_sat = measure(M_COTURN, true, SAT_CALLS, coturn_pid, NULL);
            added(&cot_sat);
            print_row(&cot_sat);
        }
        coturn_kill();
        teardown();
    } else {
        printf("\ncoturn (turnserver) not available: reference figures skipped\n");
        coturn_kill();
    }

    /* --- summary --- */
    printf("\nside by side (voice load, per point):\n");
    printf("%6s | %-29s | %-29s\n", "calls", "wzp loss% pkt/core-s +p99us",
           "coturn loss% pkt/core-s +p99us");
    static const unsigned table_ns[] = {250, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 12000};
    for (size_t i = 0; i < NPOINTS(table_ns); i++) {
        const result *w = NULL, *c = NULL;
        for (size_t k = 0; k < nwzp; k++)
            if (wzp_voice[k].calls == table_ns[i])
                w = &wzp_voice[k];
        for (size_t k = 0; k < ncot; k++)
            if (cot_voice[k].calls == table_ns[i])
                c = &cot_voice[k];
        if (!w && !c)
            continue;
        char ws[64] = "-", cs[64] = "-";
        if (w)
            snprintf(ws, sizeof(ws), "%7.3f %10.0f %8.0f", w->loss_pct, w->pps_per_core,
                     w->add99_us);
        if (c)
            snprintf(cs, sizeof(cs), "%7.3f %10.0f %8.0f", c->loss_pct, c->pps_per_core,
                     c->add99_us);
        printf("%6u | %-29s | %-29s\n", table_ns[i], ws, cs);
    }
    printf("saturation (64 B): wzp %.0f pkt/core-s at %.0f%% cpu, coturn %.0f pkt/core-s at %.0f%% "
           "cpu\n",
           wzp_sat.pps_per_core, wzp_sat.cpu_frac * 100, cot_sat.pps_per_core,
           cot_sat.cpu_frac * 100);
    printf("relay CPU per packet (saturation): wzp %.2f us, coturn %.2f us\n",
           wzp_sat.pps_per_core > 0 ? 1e6 / wzp_sat.pps_per_core : 0,
           cot_sat.pps_per_core > 0 ? 1e6 / cot_sat.pps_per_core : 0);
    printf("generator alone (direct, no relay) held %u calls under 0.1%% loss (of the loads "
           "tried): no relay can be shown holding more on these shared cores\n",
           direct_max_calls);
    printf("memory per call: wzp %.0f B (channel table sized for %u calls), coturn %.1f KiB "
           "(%.1f MiB idle)\n",
           wzp_mem_per_call, max_wzp, cot_mem_per_call / 1024, cot_idle_mib);

    /* Most calls held under 0.1 % loss, and loss / added p99 there. */
    const result *best = NULL;
    for (size_t k = 0; k < nwzp; k++)
        if (wzp_voice[k].loss_pct < 0.1)
            best = &wzp_voice[k];
    /* ... and the most calls also under 1 ms of added p99 (the latency target). */
    const result *fast = NULL;
    for (size_t k = 0; k < nwzp; k++)
        if (wzp_voice[k].loss_pct < 0.1 && wzp_voice[k].add99_us < 1000)
            fast = &wzp_voice[k];
    double ratio =
        have_coturn && cot_sat.pps_per_core > 0 ? wzp_sat.pps_per_core / cot_sat.pps_per_core : 0;
    /* Voice CPU cost, at the highest load both relays held under 0.1 % loss. */
    const result *vw = NULL, *vc = NULL;
    for (size_t k = 0; k < nwzp; k++) {
        for (size_t j = 0; j < ncot; j++) {
            if (wzp_voice[k].calls != cot_voice[j].calls || wzp_voice[k].loss_pct >= 0.1 ||
                cot_voice[j].loss_pct >= 0.1 || (vw && vw->calls >= wzp_voice[k].calls))
                continue;
            vw = &wzp_voice[k];
            vc = &cot_voice[j];
        }
    }
    double voice_ratio = vw && vc->pps_per_core > 0 ? vw->pps_per_core / vc->pps_per_core : 0;
    /* Each relay at the most voice calls it held under 0.1 % loss: cost per packet at capacity
     * (at a low load a relay's figure is mostly wake-ups, whoever it is). */
    const result *cbest = NULL;
    for (size_t k = 0; k < ncot; k++)
        if (cot_voice[k].loss_pct < 0.1)
            cbest = &cot_voice[k];
    double peak_ratio =
        best && cbest && cbest->pps_per_core > 0 ? best->pps_per_core / cbest->pps_per_core : 0;
    if (best && cbest)
        printf("voice at capacity: wzp %.0f pkt/core-s at %u calls, coturn %.0f pkt/core-s at %u "
               "calls, ratio %.2f\n",
               best->pps_per_core, best->calls, cbest->pps_per_core, cbest->calls, peak_ratio);
    if (vw)
        printf("voice at %u calls (highest load both held under 0.1%% loss): wzp %.0f "
               "pkt/core-s, coturn %.0f pkt/core-s, ratio %.2f\n",
               vw->calls, vw->pps_per_core, vc->pps_per_core, voice_ratio);
    else
        printf("voice: no load both relays held under 0.1%% loss: voice_ratio=0\n");
    printf("targets: wzp >= 5x coturn pkt/core-s; >= 5000 calls under 0.1%% loss; added p99 < "
           "1000 us\n");
    printf("relay-forward: wzp_pps_per_core=%.0f coturn_pps_per_core=%.0f ratio=%.2f max_calls=%u "
           "loss_pct=%.3f p99_added_us=%.0f voice_ratio=%.2f max_calls_p99_1ms=%u floor_calls=%u "
           "voice_peak_ratio=%.2f\n",
           wzp_sat.pps_per_core, cot_sat.pps_per_core, ratio, best ? best->calls : 0,
           best ? best->loss_pct : 0.0, best ? best->add99_us : 0.0, voice_ratio,
           fast ? fast->calls : 0, floor_calls, peak_ratio);
    return 0;
}
