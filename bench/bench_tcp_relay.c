/*
 * scripts/bench tcp-relay: relayed voice calls whose both peers reach the
 * relay over its TLS-over-TCP service, beside the same calls over UDP,
 * same run, same generator.
 *
 * The relay is the real forwarding code in this process: the channel table,
 * the UDP forwarder (one worker, "wzp-fwd-0") and, on a thread of its own
 * ("wzp-fwd-tcp"), the TCP listener with src/relay/tcp_forward.c, exactly as
 * wzp-relay's control thread runs them. Only the control plane is left out:
 * a TCP peer's first record names its call and side, and the bench opens the
 * channel pair itself once both sides are known (wzp-relay does it when a
 * call is accepted).
 *
 * Generator: one thread, every peer a TLS link (pinned to the relay's key)
 * or a UDP socket; each peer sends a 200-byte DATA frame every 20 ms
 * (calls spread evenly over the period) carrying call, seq and a send
 * timestamp, so the receiving peer (same thread, same clock) measures
 * one-way delay and loss exactly. N rises until more than 0.1 % is lost,
 * the generator cannot keep its schedule (on 2 shared cores its own TLS is
 * the limit first), or the list ends; calls= is the last N held.
 *
 * Relay CPU is read from /proc/self/task/TID/schedstat of the threads named
 * "wzp-fwd*" over the measured window only (the generator's TLS and sockets
 * are not charged, nor are connections and TLS handshakes before it),
 * divided by the packets delivered in it. Delay is one way, peer to peer
 * through the relay, generator queueing included (the UDP row is the
 * reference measured the same way).
 *
 * Usage: bench_tcp_relay [--calls 25,50,100,200] [--seconds 4]
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/identity.h>
#include <wzp/wzp.h>

#include "common/addr.h"
#include "net/clock.h"
#include "net/loop.h"
#include "net/tcp.h"
#include "net/tcp_link.h"
#include "net/udp.h"
#include "relay/chan_table.h"
#include "relay/forwarder.h"
#include "relay/tcp_forward.h"
#include "relay/tcp_listener.h"
#include "support/proc_cpu.h"
#include "wire/demux.h"
#include "wire/relay_frame.h"

#define PKT       200
#define PERIOD    WZP_MS(20)
#define MAX_CALLS 2000
#define HIST_US   100000 /* delay histogram: 1 us buckets up to 100 ms, then one overflow bucket */

/* ---- the relay --------------------------------------------------------------------------- */

typedef struct relay {
    wzp_identity *id;
    uint8_t fp[WZP_FINGERPRINT_LEN];
    wzp_chan_table *chans;
    wzp_forwarder *fwd;
    wzp_loop *loop;
    wzp_tcp_listener *tcp;
    wzp_tcp_forward tf;
    wzp_io ctl_io;
    pthread_t thread;
    /* TCP peers seen, by call and side, until their pair is open. */
    wzp_addr seen[MAX_CALLS][2];
    bool known[MAX_CALLS][2];
} relay;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench tcp-relay: %s: %s\n", what, wzp_strerror(rc));
    exit(1);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A TCP peer's hello ('H', call, side) opens its call's pair once both are known; each side
 * is told its channel ('C', channel). Anything else is a relay frame. */
static void r_deliver(void *user, const wzp_addr *from, const uint8_t *d, size_t len, wzp_ts now)
{
    relay *r = user;
    if (len == 6 && d[0] == 'H') {
        uint32_t call = get32(d + 1);
        int side = d[5] & 1;
        if (call >= MAX_CALLS)
            return;
        r->seen[call][side] = *from;
        r->known[call][side] = true;
        if (!r->known[call][0] || !r->known[call][1])
            return;
        uint32_t ch[2];
        if (wzp_chan_table_open_pair(r->chans, &r->seen[call][0], &r->seen[call][1], now, &ch[0],
                                     &ch[1]) < 0)
            return;
        for (int s = 0; s < 2; s++) {
            uint8_t m[5] = {'C'};
            put32(m + 1, ch[s]);
            wzp_tcp_listener_send(r->tcp, &r->seen[call][s], m, sizeof(m));
        }
        return;
    }
    wzp_tcp_forward_frame(&r->tf, from, d, len, now);
}

/* Frames a UDP worker forwarded to a TCP peer, through its control queue. */
static void r_ctl(wzp_loop *loop, wzp_io *io, unsigned events)
{
    relay *r = io->arg;
    static uint8_t bufs[64][WZP_FWD_MAX_DGRAM];
    wzp_udp_msg msgs[64];
    for (int i = 0; i < 64; i++)
        msgs[i] = (wzp_udp_msg){.data = bufs[i], .cap = sizeof(bufs[i])};
    int n;
    while ((n = wzp_forwarder_ctl_recv(r->fwd, 0, msgs, 64)) > 0) {
        for (int i = 0; i < n; i++)
            if (wzp_pkt_classify(msgs[i].data, msgs[i].len) == WZP_PKT_RELAY)
                wzp_tcp_forward_send(&r->tf, &msgs[i].peer, msgs[i].data, msgs[i].len);
        if (n < 64)
            break;
    }
    wzp_tcp_listener_flush(r->tcp);
}

static void *r_main(void *arg)
{
    relay *r = arg;
    pthread_setname_np(pthread_self(), "wzp-fwd-tcp");
    wzp_loop_run(r->loop);
    return NULL;
}

static void relay_start(relay *r)
{
    int rc;
    memset(r, 0, sizeof(*r));
    if ((rc = wzp_identity_generate(&r->id)) < 0)
        die("identity", rc);
    wzp_identity_fingerprint(r->id, r->fp);
    wzp_chan_table_config tc = {.max_channels = 2 * MAX_CALLS};
    if ((rc = wzp_chan_table_new(&r->chans, &tc)) < 0)
        die("channel table", rc);
    wzp_forwarder_config fc;
    wzp_forwarder_config_default(&fc);
    wzp_addr_parse(&fc.bind, "127.0.0.1:0", false);
    fc.workers = 1;
    fc.table = r->chans;
    fc.ctl_queue = 4096;
    if ((rc = wzp_forwarder_new(&r->fwd, &fc)) < 0)
        die("forwarder", rc);
    if ((rc = wzp_loop_new(&r->loop)) < 0)
        die("loop", rc);
    wzp_tcp_listener_config lc;
    wzp_tcp_listener_config_default(&lc);
    wzp_addr_parse(&lc.bind, "127.0.0.1:0", false);
    lc.id = r->id;
    lc.max_per_ip = 4 * MAX_CALLS; /* every generated peer comes from 127.0.0.1 */
    lc.max_conns = 4 * MAX_CALLS;
    lc.deliver = r_deliver;
    lc.user = r;
    if ((rc = wzp_tcp_listener_new(&r->tcp, &lc, r->loop)) < 0)
        die("tcp listener", rc);
    wzp_tcp_forward_init(&r->tf, r->chans, r->fwd, r->tcp);
    wzp_io_init(&r->ctl_io, r_ctl, r);
    if ((rc = wzp_io_start(r->loop, &r->ctl_io, wzp_forwarder_ctl_fd(r->fwd, 0), WZP_IO_READ)) < 0)
        die("ctl watch", rc);
    pthread_create(&r->thread, NULL, r_main, r);
}

static void relay_stop(relay *r)
{
    wzp_loop_stop(r->loop);
    pthread_join(r->thread, NULL);
    wzp_io_stop(r->loop, &r->ctl_io);
    wzp_tcp_listener_free(r->tcp);
    wzp_loop_free(r->loop);
    wzp_forwarder_free(r->fwd);
    wzp_chan_table_free(r->chans);
    wzp_identity_free(r->id);
}

/* ---- the generator ------------------------------------------------------------------------ */

typedef struct peer {
    struct gen *g;
    uint32_t call;
    int side;
    wzp_tcp_link *link; /* TCP mode */
    int fd;             /* UDP mode */
    wzp_io io;
    unsigned events;
    uint32_t chan; /* ours, 0 until known */
    uint32_t seq;
    wzp_ts next;
    bool dirty;
} peer;

typedef struct gen {
    relay *r;
    bool tcp;
    size_t n; /* calls */
    peer *p;  /* 2n */
    wzp_loop *loop;
    wzp_timer tick;
    wzp_ts t0, t1, stop; /* measured window; stop sending at stop */
    uint64_t sent, received, skipped;
    uint64_t c0, c1; /* relay CPU ns at t0 and t1 */
    bool c0_taken, c1_taken;
    uint32_t *hist; /* HIST_US + 1 buckets */
    size_t chans_known;
    gnutls_certificate_credentials_t cred;
} gen;

static void on_packet(peer *p, const uint8_t *d, size_t len)
{
    gen *g = p->g;
    if (len == 5 && d[0] == 'C') {
        p->chan = get32(d + 1);
        g->chans_known++;
        return;
    }
    if (len != PKT || d[0] != WZP_RELAY_FRAME_DATA)
        return;
    wzp_ts ts;
    memcpy(&ts, d + 13, sizeof(ts));
    if (ts < g->t0 || ts >= g->t1)
        return;
    wzp_ts now = wzp_now();
    uint64_t us = (now - ts) / 1000;
    g->hist[us < HIST_US ? us : HIST_US]++;
    g->received++;
}

static void link_deliver(void *user, const uint8_t *rec, size_t len)
{
    on_packet(user, rec, len);
}

static void peer_run(peer *p)
{
    if (p->link) {
        if (wzp_tcp_link_io(p->link, link_deliver, p) < 0) {
            fprintf(stderr, "bench tcp-relay: link of call %u: %s\n", p->call,
                    wzp_tcp_link_error(p->link));
            exit(1);
        }
        unsigned ev = wzp_tcp_link_events(p->link);
        if (ev != p->events && wzp_io_modify(p->g->loop, &p->io, ev) == 0)
            p->events = ev;
        return;
    }
    uint8_t buf[2048];
    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0)
            break;
        on_packet(p, buf, (size_t)n);
    }
}

static void on_io(wzp_loop *loop, wzp_io *io, unsigned events)
{
    peer_run(io->arg);
}

/* Every millisecond: the frames that are due (each peer every 20 ms, peers spread). */
static void on_tick(wzp_loop *loop, wzp_timer *t)
{
    gen *g = t->arg;
    wzp_ts now = wzp_now();
    if (!g->c0_taken && now >= g->t0) {
        g->c0 = wzp_proc_cpu_ns(getpid(), "wzp-fwd");
        g->c0_taken = true;
    }
    if (!g->c1_taken && now >= g->t1) {
        g->c1 = wzp_proc_cpu_ns(getpid(), "wzp-fwd");
        g->c1_taken = true;
    }
    if (now >= g->stop + WZP_MS(300)) {
        wzp_loop_stop(loop);
        return;
    }
    for (size_t i = 0; i < 2 * g->n; i++) {
        peer *p = &g->p[i];
        if (!p->chan || now < p->next || now >= g->stop)
            continue;
        p->next += PERIOD;
        while (p->next <= now) { /* the generator fell behind: this frame is never sent */
            p->next += PERIOD;
            if (now >= g->t0 && now < g->t1)
                g->skipped++;
        }
        uint8_t f[PKT] = {0};
        f[0] = WZP_RELAY_FRAME_DATA;
        put32(f + 1, p->chan);
        put32(f + 5, p->call);
        put32(f + 9, p->seq++);
        memcpy(f + 13, &now, sizeof(now));
        if (now >= g->t0 && now < g->t1)
            g->sent++;
        if (p->link) {
            wzp_tcp_link_send(p->link, f, sizeof(f));
            peer_run(p);
        } else {
            wzp_udp_send(p->fd, wzp_forwarder_local_addr(g->r->fwd), f, sizeof(f));
        }
    }
    wzp_timer_start(loop, t, now + WZP_MS(1));
}

typedef struct result {
    size_t calls;
    bool gen_limited; /* the generator could not keep the schedule: not the relay's figure */
    double loss_pct, cpu_us, p50_ms, p99_ms;
    uint64_t delivered;
} result;

static double pct(const gen *g, double q)
{
    uint64_t want = (uint64_t)(q * (double)g->received), acc = 0;
    for (size_t i = 0; i <= HIST_US; i++) {
        acc += g->hist[i];
        if (acc > want)
            return (double)i / 1000.0;
    }
    return (double)HIST_US / 1000.0;
}

static result run(relay *r, bool tcp, size_t n, double seconds)
{
    gen g = {.r = r, .tcp = tcp, .n = n};
    g.p = calloc(2 * n, sizeof(peer));
    g.hist = calloc(HIST_US + 1, sizeof(uint32_t));
    if (!g.p || !g.hist || wzp_loop_new(&g.loop) < 0 ||
        gnutls_certificate_allocate_credentials(&g.cred) != 0)
        die("generator", WZP_ERR_NOMEM);
    wzp_ts now = wzp_now();
    for (size_t i = 0; i < 2 * n; i++) {
        peer *p = &g.p[i];
        p->g = &g;
        p->call = (uint32_t)(i / 2);
        p->side = (int)(i % 2);
        /* calls spread over the period; the two sides of a call half a period apart */
        p->next = now + WZP_SEC(1) + PERIOD * (i / 2) / n + (p->side ? PERIOD / 2 : 0);
        wzp_io_init(&p->io, on_io, p);
        int fd;
        if (tcp) {
            fd = wzp_tcp_connect(wzp_tcp_listener_addr(r->tcp));
            if (fd < 0)
                die("connect", fd);
            wzp_tcp_link_tune(fd);
            wzp_tcp_link_config lc = {.fd = fd, .cred = g.cred};
            memcpy(lc.pin, r->fp, sizeof(lc.pin));
            int rc = wzp_tcp_link_new(&p->link, &lc);
            if (rc < 0)
                die("link", rc);
            uint8_t h[6] = {'H'};
            put32(h + 1, p->call);
            h[5] = (uint8_t)p->side;
            wzp_tcp_link_send(p->link, h, sizeof(h));
            p->events = wzp_tcp_link_events(p->link);
        } else {
            wzp_addr any, bound;
            wzp_addr_parse(&any, "127.0.0.1:0", false);
            fd = wzp_udp_open(&any, NULL, &bound);
            if (fd < 0)
                die("udp socket", fd);
            p->fd = fd;
            p->events = WZP_IO_READ;
            /* the table is the relay thread's; in UDP mode that thread has nothing to do yet */
            if (p->side == 1) {
                peer *a = &g.p[i - 1];
                wzp_addr aa;
                struct sockaddr_storage ss;
                socklen_t sl = sizeof(ss);
                getsockname(a->fd, (struct sockaddr *)&ss, &sl);
                wzp_addr_from_sockaddr(&aa, (struct sockaddr *)&ss, sl);
                uint32_t ca, cb;
                if (wzp_chan_table_open_pair(r->chans, &aa, &bound, now, &ca, &cb) < 0)
                    die("open pair", WZP_ERR_LIMIT);
                a->chan = ca;
                p->chan = cb;
            }
        }
        if (wzp_io_start(g.loop, &p->io, fd, p->events) < 0)
            die("watch", WZP_ERR_IO);
    }
    wzp_timer_init(&g.tick, on_tick, &g);
    g.t0 = now + WZP_SEC(2); /* connected, warmed up */
    g.t1 = g.t0 + (wzp_ts)(seconds * 1e9);
    g.stop = g.t1 + WZP_MS(100);
    wzp_timer_start(g.loop, &g.tick, now);
    result res = {.calls = n};
    wzp_loop_run(g.loop);
    res.loss_pct = g.sent ? 100.0 * (double)(g.sent - (g.received < g.sent ? g.received : g.sent)) /
                                (double)g.sent
                          : 100.0;
    res.delivered = g.received;
    res.gen_limited = g.skipped * 1000 > g.sent;
    res.cpu_us = g.received ? (double)(g.c1 - g.c0) / 1000.0 / (double)g.received : 0;
    res.p50_ms = pct(&g, 0.50);
    res.p99_ms = pct(&g, 0.99);
    for (size_t i = 0; i < 2 * n; i++) {
        peer *p = &g.p[i];
        if (p->side == 0 && p->chan) /* the relay thread is idle now: no traffic */
            wzp_chan_table_close_pair(r->chans, p->chan);
        wzp_io_stop(g.loop, &p->io);
        if (p->link)
            wzp_tcp_link_free(p->link);
        else
            close(p->fd);
    }
    memset(r->known, 0, sizeof(r->known));
    gnutls_certificate_free_credentials(g.cred);
    wzp_loop_free(g.loop);
    free(g.p);
    free(g.hist);
    return res;
}

int main(int argc, char **argv)
{
    size_t list[16] = {25, 50, 100, 200};
    size_t nlist = 4;
    double seconds = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--calls") && i + 1 < argc) {
            nlist = 0;
            for (char *s = strtok(argv[++i], ","); s && nlist < 16; s = strtok(NULL, ","))
                list[nlist++] = strtoul(s, NULL, 10);
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_tcp_relay [--calls 25,50,100,200] [--seconds 4]\n");
            return 2;
        }
    }
    wzp_set_log_level(WZP_LOG_WARN);
    relay r;
    relay_start(&r);
    printf("tcp-relay: 200-byte frames, 50/s each way per call, both peers over TLS/TCP vs UDP;\n"
           "relay CPU = its threads (wzp-fwd*) over the window / packets delivered\n\n");
    printf("%6s %4s %9s %8s %11s %8s %8s\n", "calls", "via", "delivered", "loss%", "cpu/pkt us",
           "p50 ms", "p99 ms");
    result best = {0}, best_udp = {0};
    for (size_t k = 0; k < nlist && list[k] && list[k] <= MAX_CALLS; k++) {
        result res[2];
        for (int tcp = 0; tcp < 2; tcp++) {
            res[tcp] = run(&r, tcp, list[k], seconds);
            printf("%6zu %4s %9llu %8.3f %11.2f %8.2f %8.2f%s\n", list[k], tcp ? "tcp" : "udp",
                   (unsigned long long)res[tcp].delivered, res[tcp].loss_pct, res[tcp].cpu_us,
                   res[tcp].p50_ms, res[tcp].p99_ms,
                   res[tcp].gen_limited ? "  (generator saturated)" : "");
            fflush(stdout);
        }
        if (res[1].loss_pct > 0.1 || res[0].gen_limited || res[1].gen_limited)
            break;
        best = res[1];
        best_udp = res[0];
    }
    relay_stop(&r);
    printf("\ntcp-relay: calls=%zu cpu_per_pkt_us=%.2f udp_cpu_per_pkt_us=%.2f p99_delay_ms=%.2f "
           "udp_p99_delay_ms=%.2f\n",
           best.calls, best.cpu_us, best_udp.cpu_us, best.p99_ms, best_udp.p99_ms);
    return 0;
}
