/*
 * Registration load on loopback: the wzp-relay binary as a child process,
 * then CLIENTS idle clients, each with its own identity, UDP socket and QUIC
 * control connection, register with it; all stay connected for HOLD seconds
 * and are then checked (every client pings, a sample of them call each other).
 * The relay's memory is its VmRSS from /proc, before and after.
 *
 * Clients park as the client does (docs/signaling.md, "Parked registrations"): offered
 * Park, they close their connection with WZP_SIG_CLOSE_PARKED, then send PARK_PING every
 * keepalive; a WAKE has them connect and register again (so does a call they place).
 * The memory per client is measured once every client is parked: what an idle
 * registration costs.
 *
 * usage: bench_register [CLIENTS] [HOLD_SECONDS] [IN_FLIGHT] [SHARDS...]
 *        (10000, 10, 64, "1 N" with N the number of cores)
 * $WZP_BENCH_RELAY_ARGS: more options for the relay, split at spaces (e.g. a
 * cluster's --redis ... for bench/cluster.sh). $WZP_BENCH_CLIENT_IP: the first
 * loopback address clients bind (127.0.0.1); every 16,384 clients take the next.
 *
 * The whole run is repeated for each SHARDS value (the relay's
 * --control-shards; 0 = its default), with fresh sockets and relay, same
 * identities: by default one shard (the control thread alone, the reference)
 * then one per core. Besides the relay's CPU per registration it reports its
 * busiest thread's: what bounds registrations per second once there are
 * cores enough for every thread (the clients here share the same cores).
 * The last line is the last run's, with the first run's figures as ref_*.
 *
 * Handshakes are paced by IN_FLIGHT: at most that many clients are between
 * "connect" and "Registered" at any time, so the relay is loaded steadily
 * instead of flooded. Client and relay share the machine's cores, so the
 * rates include the clients' own TLS work.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wzp/identity.h>
#include <wzp/wzp.h>

#include "common/addr.h"
#include "net/clock.h"
#include "net/udp.h"
#include "quic/quic.h"
#include "wire/park_frame.h"
#include "wire/signal.h"

enum { ST_IDLE, ST_CONNECTING, ST_REGISTERING, ST_REGISTERED, ST_PARKED, ST_CLOSED };

typedef struct bclient {
    wzp_identity *id;
    wzp_quic_endpoint *ep;
    wzp_quic_conn *conn;
    int fd;
    wzp_addr local;
    int state;
    wzp_ts due; /* the earliest of the QUIC expiry and next_ping, last pushed on the heap */
    uint32_t pongs, incoming, ringing;
    bool was_parked; /* connecting again from parked (woken, or placing a call) */
    bool offer_pending;
    bool ping_pending;                     /* the check's ping, once registered again */
    uint8_t offer_to[WZP_FINGERPRINT_LEN]; /* a call to place once registered */
    uint8_t park_id[WZP_PARK_ID_LEN], park_key[WZP_PARK_KEY_LEN];
    wzp_ts keepalive, next_ping;
    uint64_t ping_seq, wake_seq;
} bclient;

static bclient *clients;
static size_t nclients;
static wzp_addr relay_addr;
static uint8_t relay_fp[WZP_FINGERPRINT_LEN];
static size_t n_registered, n_closed, n_inflight, n_parked, n_wakes;
static bool checking; /* the final check runs: a client connecting again pings once back */
static int epfd;

/* ---- a min-heap of (due, client), stale entries skipped on pop ---- */

typedef struct hent {
    wzp_ts due;
    uint32_t idx;
} hent;
static hent *heap;
static size_t hlen, hcap;

static void heap_push(wzp_ts due, uint32_t idx)
{
    if (hlen == hcap) {
        hcap = hcap ? hcap * 2 : 1024;
        heap = realloc(heap, hcap * sizeof(*heap));
        if (!heap)
            abort();
    }
    size_t i = hlen++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (heap[p].due <= due)
            break;
        heap[i] = heap[p];
        i = p;
    }
    heap[i] = (hent){due, idx};
}

static hent heap_pop(void)
{
    hent top = heap[0], last = heap[--hlen];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l >= hlen)
            break;
        m = l;
        if (l + 1 < hlen && heap[l + 1].due < heap[l].due)
            m = l + 1;
        if (heap[m].due >= last.due)
            break;
        heap[i] = heap[m];
        i = m;
    }
    if (hlen)
        heap[i] = last;
    return top;
}

/* ---- the relay child ---- */

static pid_t relay_pid;
static FILE *relay_out;

static long relay_rss_kib(void)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)relay_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* The relay's CPU time (user + system), seconds. */
static double relay_cpu_s(void)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)relay_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void start_relay(const char *bin, const char *home, size_t max_regs, unsigned shards)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        perror("pipe");
        exit(1);
    }
    char regs[32], nshards[16];
    snprintf(regs, sizeof(regs), "%zu", max_regs);
    snprintf(nshards, sizeof(nshards), "%u", shards);
    relay_pid = fork();
    if (relay_pid < 0) {
        perror("fork");
        exit(1);
    }
    if (relay_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the bench */
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        /* Every simulated client shares 127.0.0.1: no per-IP handshake or connection cap. */
        char *args[64] = {(char *)bin,   "--listen",
                          "127.0.0.1:0", "--home",
                          (char *)home,  "--max-registrations",
                          regs,          "--max-handshakes-per-ip",
                          "0",           "--max-conns-per-ip",
                          "0",           "--control-shards",
                          nshards,       NULL};
        size_t n = 13;
        char *extra = getenv("WZP_BENCH_RELAY_ARGS");
        for (char *tok = extra ? strtok(extra, " ") : NULL; tok && n < 63; tok = strtok(NULL, " "))
            args[n++] = tok;
        args[n] = NULL;
        execv(bin, args);
        perror("exec wzp-relay");
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    bool have_addr = false, have_fp = false;
    while ((!have_addr || !have_fp) && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        static const char addr_tag[] = "wzp-relay: listening on ",
                          fp_tag[] = "wzp-relay: fingerprint ";
        if (!strncmp(line, addr_tag, sizeof(addr_tag) - 1))
            have_addr = wzp_addr_parse(&relay_addr, line + sizeof(addr_tag) - 1, false) == 0;
        else if (!strncmp(line, fp_tag, sizeof(fp_tag) - 1))
            have_fp = wzp_fingerprint_parse(line + sizeof(fp_tag) - 1, relay_fp) == 0;
    }
    relay_out = f; /* kept open: the relay's last line must not meet a closed pipe (SIGPIPE) */
    if (!have_addr || !have_fp) {
        fprintf(stderr, "bench_register: wzp-relay did not start (%s)\n", bin);
        exit(1);
    }
}

/* CPU seconds of every relay thread, by thread id (a thread's stat names it). */
#define MAX_THREADS 512
typedef struct thread_cpu {
    int n;
    int tid[MAX_THREADS];
    double s[MAX_THREADS];
} thread_cpu;

static void relay_threads(thread_cpu *t)
{
    char path[96], buf[1024];
    t->n = 0;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)relay_pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && t->n < MAX_THREADS) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)relay_pid, atoi(e->d_name));
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (!p ||
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
            continue;
        t->tid[t->n] = atoi(e->d_name);
        t->s[t->n++] = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
    if (d)
        closedir(d);
}

/* The most CPU any one relay thread used between two snapshots. */
static double busiest_thread_s(const thread_cpu *a, const thread_cpu *b)
{
    double max = 0;
    for (int i = 0; i < b->n; i++) {
        double before = 0;
        for (int k = 0; k < a->n; k++)
            if (a->tid[k] == b->tid[i])
                before = a->s[k];
        if (b->s[i] - before > max)
            max = b->s[i] - before;
    }
    return max;
}

static int stop_relay(void)
{
    kill(relay_pid, SIGTERM);
    int st = 0, rc = -1;
    for (int i = 0; i < 100; i++) {
        if (waitpid(relay_pid, &st, WNOHANG) == relay_pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        usleep(100000);
    }
    if (rc < 0) {
        kill(relay_pid, SIGKILL);
        waitpid(relay_pid, &st, 0);
    }
    fclose(relay_out);
    return rc;
}

/* ---- clients ---- */

static void send_udp(void *u, const wzp_addr *l, const wzp_addr *r, const uint8_t *p, size_t n)
{
    bclient *c = u;
    (void)l;
    wzp_udp_send(c->fd, r, p, n);
}

static void send_sig(bclient *c, const wzp_sig_msg *m)
{
    uint8_t buf[WZP_SIG_MAX_SIZE];
    int n = wzp_sig_encode(m, buf, sizeof(buf));
    if (n > 0 && c->conn)
        wzp_quic_conn_send_message(c->conn, buf, (size_t)n);
}

static void send_offer(bclient *c)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_OFFER, 3);
    memcpy(m.u.offer.callee_fp, c->offer_to, WZP_FINGERPRINT_LEN);
    m.u.offer.params.media_version = 1;
    send_sig(c, &m);
    c->offer_pending = false;
}

static void send_park_ping(bclient *c, wzp_ts now)
{
    wzp_park_frame f = {.type = WZP_PARK_FRAME_PING, .seq = ++c->ping_seq};
    uint8_t out[WZP_PARK_FRAME_LEN];
    memcpy(f.park_id, c->park_id, WZP_PARK_ID_LEN);
    if (wzp_park_frame_encode(out, &f, c->park_key) == 0)
        wzp_udp_send(c->fd, &relay_addr, out, sizeof(out));
    c->next_ping = now + c->keepalive;
}

static void on_established(void *u, wzp_quic_conn *conn, const uint8_t *fp, wzp_ts now)
{
    bclient *c = u;
    (void)fp;
    c->state = ST_REGISTERING;
    wzp_sig_msg m;
    /* As the client does: no certificate, the key proven by Auth first. */
    wzp_sig_init(&m, WZP_SIG_AUTH, 0);
    if (wzp_quic_conn_auth_proof(conn, m.u.auth.key, &m.u.auth.key_len, m.u.auth.sig,
                                 &m.u.auth.sig_len) == 0)
        send_sig(c, &m);
    wzp_sig_init(&m, WZP_SIG_REGISTER, 1);
    send_sig(c, &m);
}

static void on_message(void *u, wzp_quic_conn *conn, const uint8_t *d, size_t n, wzp_ts now)
{
    bclient *c = u;
    (void)conn;
    wzp_sig_msg m;
    if (wzp_sig_decode(d, n, &m) != 0)
        return;
    switch (m.type) {
    case WZP_SIG_REGISTERED:
        if (c->state == ST_REGISTERING) {
            c->state = ST_REGISTERED;
            if (!c->was_parked)
                n_registered++;
            c->was_parked = false;
            n_inflight--;
            if (c->offer_pending)
                send_offer(c);
            if (c->ping_pending) {
                wzp_sig_msg p;
                wzp_sig_init(&p, WZP_SIG_PING, 2);
                send_sig(c, &p);
                c->ping_pending = false;
            }
        }
        break;
    case WZP_SIG_PARK:
        /* Idle: take it (a client with a call to place is not idle). */
        if (c->state != ST_REGISTERED || c->offer_pending)
            break;
        memcpy(c->park_id, m.u.park.park_id, WZP_PARK_ID_LEN);
        memcpy(c->park_key, m.u.park.key, WZP_PARK_KEY_LEN);
        c->keepalive = WZP_MS(m.u.park.keepalive_ms);
        c->state = ST_PARKED;
        n_parked++;
        c->conn = NULL; /* closing: its `closed` callback no longer concerns the client */
        wzp_quic_conn_set_user(conn, NULL);
        wzp_quic_conn_close(conn, WZP_SIG_CLOSE_PARKED, "parked");
        c->next_ping = now + c->keepalive;
        break;
    case WZP_SIG_PONG:
        c->pongs++;
        break;
    case WZP_SIG_INCOMING_CALL:
        c->incoming++;
        break;
    case WZP_SIG_RINGING: {
        c->ringing++;
        wzp_sig_msg x;
        wzp_sig_init(&x, WZP_SIG_CANCEL, 0);
        memcpy(x.u.call.call_id, m.u.call.call_id, WZP_SIG_CALL_ID_LEN);
        send_sig(c, &x);
        break;
    }
    default:
        break;
    }
}

static void on_closed(void *u, wzp_quic_conn *conn, const wzp_quic_close_info *info, wzp_ts now)
{
    bclient *c = u;
    (void)conn;
    if (!c)
        return; /* a connection closed for parking */
    static int logged;
    if (logged++ < 5)
        fprintf(stderr, "client %zu closed: error %d app %llu %s\n", (size_t)(c - clients),
                info->error, (unsigned long long)info->app_code, info->detail);
    if (c->state == ST_CONNECTING || c->state == ST_REGISTERING)
        n_inflight--;
    if (c->state == ST_REGISTERED)
        n_registered--;
    c->state = ST_CLOSED;
    c->conn = NULL;
    n_closed++;
}

static const wzp_quic_callbacks cbs = {0}; /* client endpoints accept nothing */
static const wzp_quic_conn_callbacks conn_cbs = {
    .established = on_established,
    .message = on_message,
    .closed = on_closed,
};

/* Flushes one client and re-arms its timer. */
static void settle(bclient *c, wzp_ts now)
{
    wzp_quic_endpoint_flush(c->ep, now, send_udp, c);
    wzp_ts due = wzp_quic_endpoint_expiry(c->ep);
    if (c->state == ST_PARKED)
        due = wzp_ts_min(due, c->next_ping);
    if (due != c->due && due != WZP_TS_NEVER) {
        c->due = due;
        heap_push(due, (uint32_t)(c - clients));
    } else if (due == WZP_TS_NEVER) {
        c->due = WZP_TS_NEVER;
    }
}

/* Loopback ports run out near 28,000 (ip_local_port_range): client i binds on the
 * base address ($WZP_BENCH_CLIENT_IP, default 127.0.0.1) plus i / 16384. */
#define CLIENTS_PER_IP 16384

static int client_setup(bclient *c)
{
    const char *base = getenv("WZP_BENCH_CLIENT_IP");
    unsigned a = 127, b = 0, d = 0, e = 1;
    if (base && sscanf(base, "%u.%u.%u.%u", &a, &b, &d, &e) != 4)
        return WZP_ERR_INVALID;
    e += (unsigned)((size_t)(c - clients) / CLIENTS_PER_IP);
    char ip[32];
    snprintf(ip, sizeof(ip), "%u.%u.%u.%u:0", a, b, d + e / 256, e % 256);
    wzp_addr any;
    if (wzp_addr_parse(&any, ip, false) != 0)
        return WZP_ERR_INVALID;
    c->fd = wzp_udp_open(&any, NULL, &c->local);
    if (c->fd < 0)
        return c->fd;
    wzp_quic_endpoint_config qcfg;
    wzp_quic_endpoint_config_default(&qcfg);
    qcfg.id = c->id;
    qcfg.cb = cbs;
    qcfg.user = c;
    int rv = wzp_quic_endpoint_new(&c->ep, &qcfg);
    if (rv < 0)
        return rv;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - clients)};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        return WZP_ERR_IO;
    c->due = WZP_TS_NEVER;
    return 0;
}

static void client_connect(bclient *c, wzp_ts now)
{
    wzp_quic_conn_config o;
    wzp_quic_conn_config_default(&o);
    memcpy(o.pin, relay_fp, sizeof(relay_fp));
    o.initial_rtt = WZP_MS(10);
    o.keep_alive = WZP_SEC(20); /* under the relay's 60 s idle timeout */
    o.idle_timeout = WZP_SEC(120);
    o.handshake_timeout = WZP_SEC(60);
    o.max_message = WZP_SIG_MAX_SIZE;
    o.anonymous = true;
    o.cb = conn_cbs;
    o.user = c;
    if (wzp_quic_connect(c->ep, &c->local, &relay_addr, &o, now, &c->conn) != 0) {
        c->state = ST_CLOSED;
        n_closed++;
        return;
    }
    c->state = ST_CONNECTING;
    n_inflight++;
    settle(c, now);
}

/* A parked client connects and registers again (woken, or to place a call). */
static void unpark(bclient *c, wzp_ts now)
{
    if (c->state != ST_PARKED)
        return;
    c->was_parked = true;
    c->ping_pending = checking && c->pongs == 0; /* its PARK_PONG may come too late now */
    n_parked--;
    client_connect(c, now);
}

static void on_park_frame(bclient *c, const uint8_t *p, size_t len, wzp_ts now)
{
    wzp_park_frame f;
    if (c->state != ST_PARKED || wzp_park_frame_peek(&f, p, len) != 0 ||
        memcmp(f.park_id, c->park_id, WZP_PARK_ID_LEN) != 0 ||
        !wzp_park_frame_verify(p, len, c->park_key))
        return;
    if (f.type == WZP_PARK_FRAME_PONG && f.seq == c->ping_seq) {
        c->pongs++;
    } else if (f.type == WZP_PARK_FRAME_WAKE && f.seq > c->wake_seq) {
        c->wake_seq = f.seq;
        n_wakes++;
        unpark(c, now);
    }
}

/* One round: packets and timers, waiting at most max_wait. */
static void pump(wzp_ts max_wait)
{
    static uint8_t bufs[16][1500];
    wzp_udp_msg msgs[16];
    struct epoll_event evs[256];
    wzp_ts now = wzp_now();
    /* Drop stale heap entries so the wait is right. */
    while (hlen && heap[0].due != clients[heap[0].idx].due)
        heap_pop();
    wzp_ts next = now + max_wait;
    if (hlen)
        next = wzp_ts_min(next, heap[0].due);
    int timeout = next <= now ? 0 : (int)((next - now + 999999) / 1000000);
    int n = epoll_wait(epfd, evs, 256, timeout);
    now = wzp_now();
    for (int i = 0; i < n; i++) {
        bclient *c = &clients[evs[i].data.u32];
        for (int round = 0; round < 4; round++) {
            for (int k = 0; k < 16; k++)
                msgs[k] = (wzp_udp_msg){.data = bufs[k], .cap = sizeof(bufs[k])};
            int got = wzp_udp_recv_batch(c->fd, msgs, 16);
            for (int k = 0; k < got; k++) {
                if (wzp_park_frame_is(msgs[k].data, msgs[k].len))
                    on_park_frame(c, msgs[k].data, msgs[k].len, now);
                else if (msgs[k].len)
                    wzp_quic_endpoint_feed(c->ep, &c->local, &msgs[k].peer, msgs[k].data,
                                           msgs[k].len, now, NULL);
            }
            if (got < 16)
                break;
        }
        settle(c, now);
    }
    while (hlen && heap[0].due <= now) {
        hent e = heap_pop();
        bclient *c = &clients[e.idx];
        if (e.due != c->due)
            continue; /* stale */
        c->due = 0;   /* force a fresh push */
        wzp_quic_endpoint_handle_expiry(c->ep, now);
        if (c->state == ST_PARKED && c->next_ping <= now)
            send_park_ping(c, now);
        settle(c, now);
    }
    /* Compact the heap when stale entries pile up. */
    if (hlen > 4 * nclients + 1024) {
        hlen = 0;
        for (size_t i = 0; i < nclients; i++)
            if (clients[i].due != WZP_TS_NEVER && clients[i].due != 0)
                heap_push(clients[i].due, (uint32_t)i);
    }
}

static double secs(wzp_ts a, wzp_ts b)
{
    return (double)(b - a) / 1e9;
}

static void row(const char *phase, size_t n, double s, double rate, long rss_kib)
{
    char r[32] = "-", m[32] = "-";
    if (rate >= 0)
        snprintf(r, sizeof(r), "%.0f", rate);
    if (rss_kib >= 0)
        snprintf(m, sizeof(m), "%.1f", (double)rss_kib / 1024.0);
    printf("%-26s %8zu %9.2f %10s %14s\n", phase, n, s, r, m);
    fflush(stdout);
}

/* What one run measured. */
typedef struct result {
    unsigned shards;
    size_t regs;
    double reg_rate, rcpu_per_reg, busiest_per_reg;
    long rss_per_client;           /* once every client is parked */
    long rss_per_connected_client; /* right after registering (most still connected) */
    bool ok;
} result;

static const char *relay_bin;

/* Sockets, endpoints and a relay with SHARDS control shards; register, hold, check. */
static result run(unsigned shards, int hold, size_t window)
{
    result res = {.shards = shards};
    n_registered = n_closed = n_inflight = n_parked = n_wakes = 0;
    hlen = 0;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        exit(1);
    for (size_t i = 0; i < nclients; i++) {
        wzp_identity *id = clients[i].id;
        memset(&clients[i], 0, sizeof(clients[i]));
        clients[i].id = id;
    }
    printf("\n--control-shards %u%s\n", shards, shards ? "" : " (the relay's default)");
    printf("%-26s %8s %9s %10s %14s\n", "phase", "clients", "seconds", "per_s", "relay_rss_MiB");
    wzp_ts t1 = wzp_now();
    /* 2. Sockets and endpoints (client side only). */
    for (size_t i = 0; i < nclients; i++) {
        if (client_setup(&clients[i]) != 0) {
            fprintf(stderr, "client %zu setup failed\n", i);
            exit(1);
        }
    }
    wzp_ts t2 = wzp_now();
    row("client sockets+endpoints", nclients, secs(t1, t2), (double)nclients / secs(t1, t2), -1);

    /* 3. The relay. */
    char home[] = "/tmp/wzp-bench-register-XXXXXX";
    if (!mkdtemp(home)) {
        perror("mkdtemp");
        exit(1);
    }
    start_relay(relay_bin, home, nclients + 1000, shards);
    usleep(200000);
    long rss0 = relay_rss_kib();
    row("relay idle", 0, 0, -1, rss0);

    /* 4. Register everyone, IN_FLIGHT at a time. */
    static thread_cpu th0, th1;
    relay_threads(&th0);
    double rcpu0 = relay_cpu_s(), ccpu0 = self_cpu_s();
    wzp_ts t3 = wzp_now(), limit = t3 + WZP_SEC(90);
    size_t next = 0;
    size_t milestone = nclients / 4;
    while (n_registered + n_closed < nclients && wzp_now() < limit) {
        wzp_ts now = wzp_now();
        while (next < nclients && n_inflight < window)
            client_connect(&clients[next++], now);
        pump(WZP_MS(5));
        if (n_registered >= milestone && milestone < nclients) {
            char name[64];
            snprintf(name, sizeof(name), "  registered %zu", milestone);
            double s = secs(t3, wzp_now());
            row(name, n_registered, s, (double)n_registered / s, relay_rss_kib());
            milestone += nclients / 4;
        }
    }
    wzp_ts t4 = wzp_now();
    long rss1 = relay_rss_kib();
    size_t regs = n_registered;
    double reg_rate = (double)regs / secs(t3, t4);
    row("register", regs, secs(t3, t4), reg_rate, rss1);
    double rcpu = relay_cpu_s() - rcpu0, ccpu = self_cpu_s() - ccpu0;
    relay_threads(&th1);
    double busiest = busiest_thread_s(&th0, &th1);
    res.rcpu_per_reg = regs ? rcpu * 1e6 / (double)regs : 0.0;
    res.busiest_per_reg = regs ? busiest * 1e6 / (double)regs : 0.0;
    printf("  cpu during register: relay %.2f s (%.0f us per registration; busiest thread "
           "%.0f us), clients %.2f s\n",
           rcpu, res.rcpu_per_reg, res.busiest_per_reg, ccpu);
    if (regs < nclients)
        fprintf(stderr, "only %zu of %zu registered (%zu closed, %zu in flight)\n", regs, nclients,
                n_closed, n_inflight);

    /* 5. Every client parks once idle (bounded: a relay with --park-after 0 parks
     * nobody), then the closed connections drain; then the hold, idle. */
    wzp_ts park_limit = wzp_now() + WZP_SEC(30);
    while (n_parked < n_registered && wzp_now() < park_limit &&
           (n_parked || wzp_now() < t4 + WZP_SEC(10)))
        pump(WZP_MS(50));
    for (wzp_ts end = wzp_now() + WZP_SEC(1); wzp_now() < end;)
        pump(WZP_MS(50)); /* the closed connections' draining periods end */
    wzp_ts tp = wzp_now();
    long rss_parked = relay_rss_kib();
    row("all parked", n_parked, secs(t4, tp), -1, rss_parked);
    wzp_ts hold_end = wzp_now() + WZP_SEC(hold);
    while (wzp_now() < hold_end)
        pump(WZP_MS(50));
    wzp_ts t5 = wzp_now();
    long rss2 = relay_rss_kib();
    char name[64];
    snprintf(name, sizeof(name), "hold %d s (parked %zu)", hold, n_parked);
    row(name, n_registered, secs(tp, t5), -1, rss2);

    /* 6. Check: every client pings (a parked one with PARK_PING); 100 pairs call
     * each other (a parked caller connects first; a parked callee is woken by the
     * relay and must register again for IncomingCall to reach it), then the
     * callers cancel. */
    wzp_ts now = wzp_now();
    size_t wakes0 = n_wakes;
    checking = true;
    for (size_t i = 0; i < nclients; i++) {
        bclient *c = &clients[i];
        c->pongs = 0;
        if (c->state == ST_PARKED) {
            send_park_ping(c, now);
        } else if (c->state == ST_REGISTERED) {
            wzp_sig_msg m;
            wzp_sig_init(&m, WZP_SIG_PING, 2);
            send_sig(c, &m);
        } else if (c->state != ST_CLOSED) {
            c->ping_pending = true; /* connecting again */
        }
        settle(c, now);
    }
    size_t pairs = nclients / 2 < 100 ? nclients / 2 : 100, stride = nclients / 2 / pairs;
    for (size_t k = 0; k < pairs; k++) {
        bclient *a = &clients[2 * k * stride], *b = &clients[2 * k * stride + 1];
        wzp_identity_fingerprint(b->id, a->offer_to);
        a->offer_pending = true;
        if (a->state == ST_REGISTERED)
            send_offer(a);
        else
            unpark(a, now);
        settle(a, now);
    }
    wzp_ts check_end = wzp_now() + WZP_SEC(20);
    size_t pongs = 0, incoming = 0;
    while (wzp_now() < check_end) {
        pump(WZP_MS(20));
        pongs = incoming = 0;
        for (size_t i = 0; i < nclients; i++) {
            pongs += clients[i].pongs;
            incoming += clients[i].incoming;
        }
        if (pongs >= n_registered && incoming >= pairs)
            break;
    }
    wzp_ts t6 = wzp_now();
    checking = false;
    snprintf(name, sizeof(name), "ping all (pongs)");
    row(name, pongs, secs(t5, t6), (double)pongs / secs(t5, t6), relay_rss_kib());
    printf("%-26s %8zu (of %zu calls placed; %zu WAKEs answered)\n", "  sample calls ringing",
           incoming, pairs, n_wakes - wakes0);
    printf("%-26s %8zu\n", "  connections closed", n_closed);

    int rc = stop_relay();
    printf("relay exit status after SIGTERM: %d\n", rc);
    for (size_t i = 0; i < nclients; i++) {
        wzp_quic_endpoint_free(clients[i].ep);
        clients[i].ep = NULL;
        if (clients[i].fd >= 0)
            close(clients[i].fd);
    }
    close(epfd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", home);
    res.regs = regs;
    res.reg_rate = reg_rate;
    res.rss_per_client = regs ? (rss_parked - rss0) * 1024 / (long)regs : 0;
    res.rss_per_connected_client = regs ? (rss1 - rss0) * 1024 / (long)regs : 0;
    res.ok = regs == nclients && pongs >= regs && incoming >= pairs;
    return res;
}

int main(int argc, char **argv)
{
    nclients = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    int hold = argc > 2 ? atoi(argv[2]) : 10;
    size_t window = argc > 3 ? strtoul(argv[3], NULL, 10) : 64;
    if (nclients < 2 || window < 1) {
        fprintf(stderr, "usage: bench_register [CLIENTS] [HOLD_SECONDS] [IN_FLIGHT] [SHARDS...]\n");
        return 2;
    }
    enum { MAX_RUNS = 8 };
    unsigned shards[MAX_RUNS];
    size_t nruns = 0;
    for (int i = 4; i < argc && nruns < MAX_RUNS; i++)
        shards[nruns++] = (unsigned)strtoul(argv[i], NULL, 10);
    if (!nruns) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        shards[nruns++] = 1;
        shards[nruns++] = cores > 1 ? (unsigned)cores : 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nclients + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < nclients + 64) { /* root may raise the hard limit too */
            rl.rlim_cur = rl.rlim_max = nclients + 64;
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur < nclients + 64) {
            fprintf(stderr, "bench_register: need %zu file descriptors, limit is %llu\n",
                    nclients + 64, (unsigned long long)rl.rlim_cur);
            return 1;
        }
    }
    static char bin[4096];
    const char *bindir = getenv("WZP_BIN_DIR");
    if (bindir) {
        snprintf(bin, sizeof(bin), "%s/wzp-relay", bindir);
    } else {
        /* build/bench/bench_register -> build/bin/wzp-relay */
        snprintf(bin, sizeof(bin), "%s", argv[0]);
        char *slash = strrchr(bin, '/');
        if (slash)
            snprintf(slash, sizeof(bin) - (size_t)(slash - bin), "/../bin/wzp-relay");
        else
            snprintf(bin, sizeof(bin), "../bin/wzp-relay");
    }
    relay_bin = bin;
    clients = calloc(nclients, sizeof(*clients));
    if (!clients)
        return 1;

    /* 1. Identities: one key pair and certificate each, generated in memory. */
    wzp_ts t0 = wzp_now();
    for (size_t i = 0; i < nclients; i++) {
        if (wzp_identity_generate(&clients[i].id) != 0) {
            fprintf(stderr, "identity generation failed\n");
            return 1;
        }
    }
    wzp_ts t1 = wzp_now();
    printf("%-26s %8s %9s %10s %14s\n", "phase", "clients", "seconds", "per_s", "relay_rss_MiB");
    row("generate identities", nclients, secs(t0, t1), (double)nclients / secs(t0, t1), -1);

    result res[MAX_RUNS];
    bool ok = true;
    for (size_t r = 0; r < nruns; r++) {
        res[r] = run(shards[r], hold, window);
        ok &= res[r].ok;
    }
    for (size_t i = 0; i < nclients; i++)
        wzp_identity_free(clients[i].id);
    free(clients);
    free(heap);

    printf("\n%-16s %10s %22s %22s %22s %26s\n", "control shards", "regs_per_s",
           "rss_bytes_per_client", "(after registering)", "relay_cpu_us_per_reg",
           "busiest_thread_us_per_reg");
    for (size_t r = 0; r < nruns; r++)
        printf("%-16u %10.0f %22ld %22ld %22.0f %26.0f\n", res[r].shards, res[r].reg_rate,
               res[r].rss_per_client, res[r].rss_per_connected_client, res[r].rcpu_per_reg,
               res[r].busiest_per_reg);
    const result *last = &res[nruns - 1], *ref = &res[0];
    printf("register: clients=%zu shards=%u regs_per_s=%.0f rss_bytes_per_client=%ld "
           "relay_cpu_us_per_reg=%.0f busiest_thread_us_per_reg=%.0f",
           last->regs, last->shards, last->reg_rate, last->rss_per_client, last->rcpu_per_reg,
           last->busiest_per_reg);
    if (nruns > 1)
        printf(" ref_shards=%u ref_regs_per_s=%.0f ref_relay_cpu_us_per_reg=%.0f "
               "ref_busiest_thread_us_per_reg=%.0f",
               ref->shards, ref->reg_rate, ref->rcpu_per_reg, ref->busiest_per_reg);
    printf("\n");
    return ok ? 0 : 1;
}
