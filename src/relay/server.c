#include "relay/server.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/rand.h"
#include "common/log.h"
#include "net/clock.h"
#include "net/loop.h"
#include "quic/identity_tls.h"
#include "quic/quic.h"
#include "relay/alias_store.h"
#include "relay/chan_table.h"
#include "relay/forwarder.h"
#include "relay/metrics.h"
#include "relay/shard.h"
#include "relay/stun_alt.h"
#include "relay/fwd_batch.h"
#include "relay/tcp_forward.h"
#include "relay/tcp_listener.h"
#include "common/tunnel_addr.h"
#include "wire/demux.h"
#include "wire/park_frame.h"
#include "wire/signal.h"

/* How often the control thread looks for idle channels. */
#define CHAN_EXPIRE_INTERVAL WZP_SEC(1)
#define RX_BATCH             64
/* Control packets (QUIC, probes) each worker may hold for this thread and the
 * shards together. The forwarder's default (256) overflows when thousands of
 * clients (re)connect or signal at once, and every drop costs a QUIC
 * retransmission timeout: bench register ran 1.4x (registrations) and 3x
 * (pings) faster with this. */
#define CTL_QUEUE 4096
/* The lanes of a worker (this thread's, one per shard) share CTL_QUEUE out,
 * so a worker's queues take no more memory than one did before shards (a
 * slot is ~2 KiB and every slot of a ring is touched as it cycles): the
 * largest power of two that fits, at least this. A shard's room is this
 * times the workers. */
#define CTL_QUEUE_MIN 64
/* Alias bindings are saved at most this often while they change, and at
 * least this often anyway (a live key's saved expiry is "now + reclaim" as
 * of the save, so a crash loses at most this much of it). */
#define ALIAS_SAVE_MIN_INTERVAL WZP_SEC(1)
#define ALIAS_SAVE_MAX_INTERVAL WZP_SEC(3600)
#define ALIASES_FILE            "aliases"
/* The control thread's counters reach a scrape at most this late, and are
 * copied for it at most this often. */
#define METRICS_PUBLISH_INTERVAL WZP_MS(100)
/* Application close codes on control connections: 0 = shutdown, 0x100 + wzp_relay_close_code. */
#define CLOSE_SHUTDOWN     0
#define CLOSE_CONTROL_BASE WZP_SIG_CLOSE_BASE
/* Once this many clients parked since, malloc's free pages go back to the kernel (glibc
 * keeps them otherwise: a relay that parked its clients would still look as big), at most
 * once per CHAN_EXPIRE_INTERVAL (a trim walks the heaps). */
#define TRIM_AFTER_PARKS 256

struct wzp_relay_server {
    wzp_relay_server_config cfg;
    wzp_identity *id;
    wzp_chan_table *chans;
    wzp_forwarder *fwd;
    wzp_stun_alt *alt[2]; /* IPv4, IPv6 (NULL: none) */
    wzp_loop *loop;
    wzp_io ctl_io;
    wzp_timer timer;
    /* QUIC shards (src/relay/shard.h): the control connections, on forwarder lanes
     * 1..n (lane 0 is ours). A single one runs on this thread's loop; more run a
     * thread each. */
    wzp_relay_shard *shards[WZP_RELAY_MAX_SHARDS];
    unsigned nshards;
    uint64_t route_key;
    _Atomic long total_conns;
    wzp_mq events; /* shards -> this thread */
    wzp_io events_io;
    bool shards_started;
    wzp_tcp_listener *tcp;   /* NULL without a TCP service */
    wzp_tcp_forward tcp_fwd; /* relay frames of TCP clients; sends to any client */
    wzp_relay_control *ctl;
    wzp_cluster *cluster; /* NULL: a relay on its own */
    wzp_ts next_expire;
    uint64_t parks_at_trim;  /* parks_taken at the last malloc_trim */
    char aliases_path[4200]; /* HOME/aliases */
    wzp_ts aliases_saved;    /* when they were last saved (or loaded) */
    bool aliases_save_failed;
    bool stopping;
    /* SIGTERM in a cluster: clients move first (drain_tick), then the relay stops. */
    wzp_timer drain;
    wzp_ts drain_started;
    _Atomic bool draining; /* read by the shards: they take no new connections */
    bool drain_closed;
    uint64_t rx_dropped;
    /* Metrics: the control thread copies its counters into `published` (under
     * pub_mu, taken with trylock so it never waits) for the thread serving them. */
    pthread_mutex_t pub_mu;
    bool pub_mu_init;
    wzp_relay_metrics_ctl published;
    wzp_ts published_at;
    uint8_t rxbuf[RX_BATCH][WZP_FWD_MAX_DGRAM];
    wzp_udp_msg msgs[RX_BATCH];
};

void wzp_relay_server_config_default(wzp_relay_server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    wzp_addr_parse(&cfg->listen, "0.0.0.0:4433", false);
    cfg->max_conns = 200000;
    cfg->conn_idle_timeout = WZP_SEC(60);
    cfg->chan_idle_timeout = WZP_SEC(90);
    cfg->retry_threshold = 1000;
    cfg->max_handshakes_per_addr = 16;
    wzp_relay_control_config_default(&cfg->control);
    cfg->control.park_keepalive = 0; /* 4 s alone, 2 s in a cluster */
}

static wzp_relay_shard *shard_of(wzp_relay_server *s, uint64_t handle)
{
    return s->shards[wzp_relay_shard_of_handle(handle, s->nshards)];
}

/* --- control plane callbacks ------------------------------------------------------- */

static void ctl_send(void *user, uint64_t handle, const uint8_t *msg, size_t len)
{
    wzp_relay_server *s = user;
    uint8_t rewritten[WZP_SIG_MAX_SIZE];
    if (s->cfg.test_rewrite && len <= sizeof(rewritten)) {
        memcpy(rewritten, msg, len);
        s->cfg.test_rewrite(s->cfg.test_user, rewritten, &len, sizeof(rewritten));
        msg = rewritten;
    }
    wzp_relay_shard_send(shard_of(s, handle), handle, msg, len);
}

static void ctl_close(void *user, uint64_t handle, wzp_relay_close_code code, const char *reason)
{
    wzp_relay_shard_close(shard_of(user, handle), handle, CLOSE_CONTROL_BASE + (uint64_t)code,
                          reason);
}

static void ctl_channels_close(void *user, uint32_t chan_a, uint32_t chan_b)
{
    wzp_relay_server *s = user;
    (void)chan_b;
    /* The pair may already be gone (idle expiry); that is fine. */
    wzp_chan_table_close_pair(s->chans, chan_a);
}

static int ctl_channels_open(void *user, uint64_t call, uint64_t conn_a, const wzp_addr *addr_a,
                             uint64_t conn_b, const wzp_addr *addr_b, wzp_ts now, uint32_t *chan_a,
                             uint32_t *chan_b)
{
    wzp_relay_server *s = user;
    return wzp_chan_table_open_pair(s->chans, addr_a, addr_b, now, chan_a, chan_b);
}

static void ctl_channel_moved(void *user, uint32_t chan, const wzp_addr *addr)
{
    wzp_relay_server *s = user;
    wzp_chan_table_set_addr(s->chans, chan, addr);
}

static void ctl_channel_peer(void *user, uint32_t chan, uint32_t peer_id)
{
    wzp_relay_server *s = user;
    wzp_chan_table_set_peer_id(s->chans, chan, peer_id);
}

static void ctl_claim_alias(void *user, uint64_t conn, const uint8_t fp[WZP_SIG_FP_LEN],
                            const char *alias)
{
    wzp_cluster_claim_alias(((wzp_relay_server *)user)->cluster, conn, fp, alias);
}

static void ctl_presence(void *user, const uint8_t fp[WZP_SIG_FP_LEN], const char *alias, bool up)
{
    wzp_cluster_presence(((wzp_relay_server *)user)->cluster, fp, alias, up);
}

static void ctl_locate(void *user, const uint8_t call_id[WZP_SIG_CALL_ID_LEN], bool by_alias,
                       const uint8_t fp[WZP_SIG_FP_LEN], const char *alias)
{
    wzp_cluster_locate(((wzp_relay_server *)user)->cluster, call_id, by_alias, fp, alias);
}

static void ctl_cluster_send(void *user, wzp_cluster_msg *m)
{
    wzp_cluster_send(((wzp_relay_server *)user)->cluster, m);
}

static void ctl_call_record(void *user, const uint8_t *call_id, const uint8_t *fp_a,
                            const uint8_t *relay_a, const uint8_t *fp_b, const uint8_t *relay_b,
                            bool live)
{
    wzp_cluster_call_record(((wzp_relay_server *)user)->cluster, call_id, fp_a, relay_a, fp_b,
                            relay_b, live);
}

/* PARK_PONG and WAKE: straight out of the relay port, like the shards' QUIC. */
static void ctl_park_send(void *user, const wzp_addr *to, const uint8_t *frame, size_t len)
{
    wzp_forwarder_send(((wzp_relay_server *)user)->fwd, to, frame, len);
}

static void ctl_reattach_lookup(void *user, uint64_t conn, uint64_t request_id,
                                const uint8_t *call_id, int end, const uint8_t *fp)
{
    wzp_cluster_reattach(((wzp_relay_server *)user)->cluster, conn, request_id, call_id, end, fp);
}

/* --- events from the QUIC shards ----------------------------------------------------- */

static void on_event(wzp_relay_server *s, const wzp_relay_shard_event *ev, wzp_ts now)
{
    switch (ev->kind) {
    case WZP_SHARD_EV_ESTABLISHED:
        if (wzp_relay_control_on_connect(s->ctl, ev->handle, ev->fp, &ev->addr, now) < 0)
            wzp_relay_shard_close(shard_of(s, ev->handle), ev->handle, CLOSE_SHUTDOWN, "refused");
        break;
    case WZP_SHARD_EV_MESSAGE:
        wzp_relay_control_on_message(s->ctl, ev->handle, ev->data, ev->len, now);
        break;
    case WZP_SHARD_EV_MOVED:
        wzp_relay_control_on_addr_change(s->ctl, ev->handle, &ev->addr, now);
        break;
    case WZP_SHARD_EV_MOVING:
        wzp_relay_control_on_moving(s->ctl, ev->handle);
        break;
    case WZP_SHARD_EV_PARKED:
        wzp_relay_control_on_parked(s->ctl, ev->handle);
        break;
    case WZP_SHARD_EV_CLOSED:
        /* Ends its calls, which closes their channels through ctl_channels_close. */
        wzp_relay_control_on_disconnect(s->ctl, ev->handle, now);
        break;
    case WZP_SHARD_EV_TCP_OUT:
        wzp_tcp_forward_send(&s->tcp_fwd, &ev->addr, ev->data, ev->len);
        break;
    }
}

/* Runs every queued event; once stopping, only the datagrams for TCP clients
 * (the shards' last closes): the control plane takes no new work. */
static void drain_events(wzp_relay_server *s)
{
    wzp_mq_node *n = wzp_mq_take(&s->events);
    wzp_ts now = wzp_now();
    while (n) {
        wzp_mq_node *next = n->next;
        const wzp_relay_shard_event *ev = (const wzp_relay_shard_event *)n;
        if (!s->stopping || ev->kind == WZP_SHARD_EV_TCP_OUT)
            on_event(s, ev, now);
        free(n);
        n = next;
    }
}

int wzp_relay_endpoint_config(wzp_quic_endpoint_config *cfg, const wzp_identity *id,
                              int (*accept)(void *user, const wzp_addr *local,
                                            const wzp_addr *remote, wzp_quic_conn_config *opts,
                                            wzp_ts now),
                              void *user)
{
    wzp_quic_endpoint_config_default(cfg);
    cfg->id = id;
    cfg->server = true;
    cfg->cb.accept = accept;
    cfg->user = user;
    cfg->lean_conns = true; /* thousands of idle control connections */
    /* Reset tokens from the identity key: after a restart (same home) the relay resets its
     * former clients' connections and they reconnect at once. */
    cfg->have_static_secret =
        wzp_identity_derive_secret(id, WZP_RESET_SECRET_LABEL, cfg->static_secret) == 0;
    return cfg->have_static_secret ? 0 : WZP_ERR_INTERNAL;
}

/* --- alias bindings file ------------------------------------------------------------ */

/* The file stores wall-clock expiry (a restart keeps the remaining time); the
 * control plane counts on the monotonic clock. */
static uint64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec;
}

typedef struct alias_io {
    wzp_relay_server *s;
    FILE *f;
    wzp_ts mono;
    uint64_t wall;
    size_t skipped;
    bool failed;
} alias_io;

static int load_alias(void *user, const wzp_alias_entry *e)
{
    alias_io *io = user;
    if (e->expires <= io->wall)
        return 0;
    wzp_relay_alias_binding b;
    memcpy(b.alias, e->alias, sizeof(b.alias));
    memcpy(b.fp, e->fp, WZP_SIG_FP_LEN);
    uint64_t left = e->expires - io->wall;
    b.expires = left > UINT64_MAX / WZP_SEC(1) - io->mono / WZP_SEC(1) ? WZP_TS_NEVER
                                                                       : io->mono + WZP_SEC(left);
    int rv = wzp_relay_control_load_alias(io->s->ctl, &b, io->mono);
    if (rv == WZP_ERR_LIMIT) {
        io->skipped++; /* the cap was lowered: keep what fits */
        return 0;
    }
    return rv;
}

/*
 * Loads HOME/aliases if it exists. A file we cannot read or parse stops the
 * relay (WZP_ERR_MALFORMED) instead of starting without the bindings it
 * protects: the operator fixes or removes it.
 */
static int load_aliases(wzp_relay_server *s)
{
    s->aliases_saved = wzp_now();
    FILE *f = fopen(s->aliases_path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        WZP_ERROR("relay: cannot open %s: %s", s->aliases_path, strerror(errno));
        return WZP_ERR_MALFORMED;
    }
    /* Bounded by the cap, with room for comments; more is not ours. */
    size_t max =
        (size_t)s->cfg.control.max_registrations * 2 * WZP_ALIAS_STORE_LINE_MAX + (1u << 20);
    size_t len = 0, cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    int rv = 0;
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap || cap >= max)
            break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (!buf) {
        rv = WZP_ERR_NOMEM;
    } else if (ferror(f)) {
        WZP_ERROR("relay: cannot read %s: %s", s->aliases_path, strerror(errno));
        rv = WZP_ERR_MALFORMED;
    } else if (len == cap) {
        WZP_ERROR("relay: %s is larger than %zu bytes; not an alias file of this relay",
                  s->aliases_path, cap);
        rv = WZP_ERR_MALFORMED;
    } else {
        alias_io io = {.s = s, .mono = wzp_now(), .wall = wall_now()};
        size_t line = 0;
        rv = wzp_alias_store_parse(buf, len, load_alias, &io, &line);
        if (rv < 0) {
            WZP_ERROR("relay: %s line %zu: %s; fix or remove the file", s->aliases_path, line,
                      rv == WZP_ERR_INVALID ? "invalid or duplicate binding"
                                            : "malformed (expected 'ALIAS FINGERPRINT EXPIRES')");
            rv = rv == WZP_ERR_NOMEM ? rv : WZP_ERR_MALFORMED;
        } else {
            if (io.skipped)
                WZP_WARN("relay: %s: %zu bindings over the cap were dropped", s->aliases_path,
                         io.skipped);
            WZP_INFO("relay: %zu alias bindings loaded from %s",
                     wzp_relay_control_num_aliases(s->ctl), s->aliases_path);
        }
    }
    free(buf);
    fclose(f);
    return rv;
}

static void save_one(void *user, const wzp_relay_alias_binding *b)
{
    alias_io *io = user;
    wzp_alias_entry e;
    char line[WZP_ALIAS_STORE_LINE_MAX];
    memcpy(e.alias, b->alias, sizeof(e.alias));
    memcpy(e.fp, b->fp, WZP_SIG_FP_LEN);
    /* Round up: a binding never ends earlier for having been saved. */
    wzp_ts left = b->expires > io->mono ? b->expires - io->mono : 0;
    e.expires = io->wall + (left + WZP_SEC(1) - 1) / WZP_SEC(1);
    int n = wzp_alias_store_format(&e, line, sizeof(line));
    if (n < 0 || fwrite(line, 1, (size_t)n, io->f) != (size_t)n)
        io->failed = true;
}

/* Writes every binding to a temporary file, then renames it over the old
 * one: a crash leaves the old file or the new one, never half of one. */
static void save_aliases(wzp_relay_server *s, wzp_ts now)
{
    char tmp[sizeof(s->aliases_path) + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->aliases_path);
    s->aliases_saved = now;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        WZP_WARN("relay: cannot write %s: %s", tmp, strerror(errno));
        s->aliases_save_failed = true;
        return;
    }
    alias_io io = {.s = s, .f = f, .mono = now, .wall = wall_now()};
    if (fputs(WZP_ALIAS_STORE_HEADER, f) == EOF)
        io.failed = true;
    wzp_relay_control_aliases_export(s->ctl, now, save_one, &io);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        io.failed = true;
    if (fclose(f) != 0)
        io.failed = true;
    if (io.failed || rename(tmp, s->aliases_path) != 0) {
        WZP_WARN("relay: cannot save alias bindings to %s: %s", s->aliases_path, strerror(errno));
        unlink(tmp);
        s->aliases_save_failed = true; /* the export cleared the dirty flag: retry anyway */
        return;
    }
    s->aliases_save_failed = false;
    /* Make the rename itself durable. */
    char dir[sizeof(s->aliases_path)];
    snprintf(dir, sizeof(dir), "%s", s->aliases_path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
}

static wzp_ts next_alias_save(const wzp_relay_server *s)
{
    if (wzp_relay_control_aliases_dirty(s->ctl) || s->aliases_save_failed)
        return s->aliases_saved + ALIAS_SAVE_MIN_INTERVAL;
    return s->aliases_saved + ALIAS_SAVE_MAX_INTERVAL;
}

/* --- the control thread's loop ------------------------------------------------------ */

static unsigned lane_queue(unsigned lanes)
{
    unsigned q = CTL_QUEUE_MIN;
    while (2 * q * lanes <= CTL_QUEUE)
        q *= 2;
    return q;
}

/* The forwarder's lane for a control packet: QUIC to its shard (by connection ID),
 * the rest to this thread. Worker threads call it: reads only what never changes. */
static unsigned route_packet(void *user, const wzp_addr *from, const uint8_t *p, size_t len)
{
    const wzp_relay_server *s = user;
    (void)from;
    if (wzp_pkt_classify(p, len) != WZP_PKT_QUIC)
        return 0;
    return 1 + wzp_quic_route(s->route_key, s->nshards, p, len);
}

static wzp_relay_shard *shard_for_packet(wzp_relay_server *s, const uint8_t *p, size_t len)
{
    return s->shards[wzp_quic_route(s->route_key, s->nshards, p, len)];
}

static void service(wzp_relay_server *s);

/* A datagram from a TCP client: what the relay port would do with it, on this thread. */
static void tcp_deliver(void *user, const wzp_addr *from, const uint8_t *data, size_t len,
                        wzp_ts now)
{
    wzp_relay_server *s = user;
    switch (wzp_pkt_classify(data, len)) {
    case WZP_PKT_QUIC:
        wzp_relay_shard_packet(shard_for_packet(s, data, len), from, data, len);
        service(s);
        break;
    case WZP_PKT_RELAY:
        wzp_tcp_forward_frame(&s->tcp_fwd, from, data, len, now);
        break;
    default: /* STUN would only tell it a tunnel address; probes never go to the relay */
        s->rx_dropped++;
        break;
    }
}

/* Copies the control thread's counters for the HTTP thread, at most every
 * METRICS_PUBLISH_INTERVAL; returns when to try again (WZP_TS_NEVER: done). */
static wzp_ts publish_metrics(wzp_relay_server *s, wzp_ts now)
{
    if (!s->pub_mu_init)
        return WZP_TS_NEVER;
    if (now < s->published_at + METRICS_PUBLISH_INTERVAL)
        return s->published_at + METRICS_PUBLISH_INTERVAL;
    wzp_relay_metrics_ctl m;
    wzp_relay_control_get_stats(s->ctl, &m.ctl);
    memset(&m.quic, 0, sizeof(m.quic)); /* the shards' own: read at the scrape */
    m.conns = wzp_relay_control_num_conns(s->ctl);
    m.registrations = wzp_relay_control_num_registrations(s->ctl);
    m.parked = wzp_relay_control_num_parked(s->ctl);
    m.calls_ringing = wzp_relay_control_num_ringing(s->ctl);
    m.calls_active = wzp_relay_control_num_calls(s->ctl) - m.calls_ringing;
    m.aliases = wzp_relay_control_num_aliases(s->ctl);
    m.handshakes_completed = 0;
    m.ctl_dropped = s->rx_dropped;
    m.alt_answered = m.alt_limited = 0;
    m.cluster = s->cluster != NULL;
    m.cluster_up = s->cluster && wzp_cluster_up(s->cluster);
    memset(&m.cluster_stats, 0, sizeof(m.cluster_stats));
    if (s->cluster)
        wzp_cluster_get_stats(s->cluster, &m.cluster_stats);
    for (int k = 0; k < 2; k++) {
        uint64_t a = 0, l = 0;
        if (s->alt[k])
            wzp_stun_alt_counts(s->alt[k], &a, &l);
        m.alt_answered += a;
        m.alt_limited += l;
    }
    if (pthread_mutex_trylock(&s->pub_mu) != 0)
        return now + WZP_MS(1); /* a scrape is copying: soon again */
    s->published = m;
    pthread_mutex_unlock(&s->pub_mu);
    s->published_at = now;
    return WZP_TS_NEVER;
}

static void service(wzp_relay_server *s)
{
    wzp_ts now = wzp_now();
    for (unsigned i = 0; i < s->nshards; i++)
        wzp_relay_shard_flush(s->shards[i]);
    if (s->tcp)
        wzp_tcp_listener_flush(s->tcp);
    wzp_ts next = wzp_relay_control_next_deadline(s->ctl);
    next = wzp_ts_min(next, s->next_expire);
    next = wzp_ts_min(next, next_alias_save(s));
    next = wzp_ts_min(next, publish_metrics(s, now));
    wzp_timer_start(s->loop, &s->timer, next);
}

static void on_timer(wzp_loop *loop, wzp_timer *t)
{
    wzp_relay_server *s = t->arg;
    wzp_ts now = wzp_now();
    (void)loop;
    if (wzp_relay_control_next_deadline(s->ctl) <= now)
        wzp_relay_control_handle_timer(s->ctl, now);
    if (s->next_expire <= now) {
        wzp_chan_table_expire(s->chans, now, s->cfg.chan_idle_timeout, NULL, NULL);
        s->next_expire = now + CHAN_EXPIRE_INTERVAL;
        wzp_relay_control_stats st;
        wzp_relay_control_get_stats(s->ctl, &st);
        if (st.parks_taken >= s->parks_at_trim + TRIM_AFTER_PARKS) {
            s->parks_at_trim = st.parks_taken;
            malloc_trim(0);
        }
    }
    if (next_alias_save(s) <= now)
        save_aliases(s, now);
    service(s);
}

static void on_ctl_packets(wzp_loop *loop, wzp_io *io, unsigned events)
{
    wzp_relay_server *s = io->arg;
    (void)loop;
    (void)events;
    int n;
    while ((n = wzp_forwarder_ctl_recv(s->fwd, 0, s->msgs, RX_BATCH)) > 0) {
        wzp_ts now = wzp_now();
        for (int i = 0; i < n; i++) {
            wzp_udp_msg *m = &s->msgs[i];
            switch (wzp_pkt_classify(m->data, m->len)) {
            case WZP_PKT_RELAY:
                if (m->data[0] == WZP_PARK_FRAME_PING && !wzp_addr_is_tunnel(&m->peer)) {
                    wzp_relay_control_on_park_frame(s->ctl, &m->peer, m->data, m->len, now);
                    break;
                }
                /* A worker's frame for a TCP client (named by its destination). */
                if (s->tcp && wzp_addr_is_tunnel(&m->peer))
                    wzp_tcp_forward_send(&s->tcp_fwd, &m->peer, m->data, m->len);
                else
                    s->rx_dropped++;
                break;
            default:
                s->rx_dropped++;
                break;
            }
        }
        if (n < RX_BATCH)
            break;
    }
    service(s);
}

static void on_events(wzp_loop *loop, wzp_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    drain_events(io->arg);
    service(io->arg);
}

/* The cluster delivered results into the control plane: send what it queued. */
static void cluster_notify(void *user)
{
    service(user);
}

static void do_stop(wzp_loop *loop, void *arg)
{
    wzp_relay_server *s = arg;
    if (!s->stopping) {
        s->stopping = true;
        wzp_relay_control_park_farewell(s->ctl); /* parked clients: register elsewhere */
        wzp_forwarder_stats fs;
        wzp_forwarder_get_stats(s->fwd, &fs);
        WZP_INFO("relay: stopping; %llu STUN answered, %llu STUN rate-limited, %llu control "
                 "packets dropped, %llu frames forwarded (%llu bytes), %llu unknown channel, "
                 "%llu wrong source, %llu malformed",
                 (unsigned long long)fs.stun_answered, (unsigned long long)fs.stun_rate_limited,
                 (unsigned long long)s->rx_dropped, (unsigned long long)fs.forwarded,
                 (unsigned long long)fs.forwarded_bytes, (unsigned long long)fs.unknown_channel,
                 (unsigned long long)fs.wrong_source, (unsigned long long)fs.malformed);
        if (s->tcp) {
            wzp_tcp_listener_stats ts;
            wzp_tcp_listener_get_stats(s->tcp, &ts);
            WZP_INFO("relay: tcp: %llu accepted, %llu refused (address cap), %llu refused (full), "
                     "%llu handshake timeouts, %llu idle timeouts, %llu records in, %llu out, %llu "
                     "dropped from full queues",
                     (unsigned long long)ts.accepted, (unsigned long long)ts.refused_ip_cap,
                     (unsigned long long)ts.refused_full, (unsigned long long)ts.handshake_timeouts,
                     (unsigned long long)ts.idle_timeouts, (unsigned long long)ts.rx_records,
                     (unsigned long long)ts.tx_records, (unsigned long long)ts.tx_dropped);
        }
        /* Each shard closes its connections and sends the closes (run() then joins
         * the shard threads and passes the closes for TCP clients on). */
        for (unsigned i = 0; i < s->nshards; i++)
            wzp_relay_shard_stop(s->shards[i]);
        /* Connected keys are still holders here: saved with a full reclaim period. */
        save_aliases(s, wzp_now());
        if (s->tcp)
            wzp_tcp_listener_flush(s->tcp);
    }
    wzp_loop_stop(loop);
}

/* Clients have this long to move (they need well under a second), and the presence
 * deletions of those that did not this long in all. */
#define DRAIN_MOVES WZP_SEC(4)
#define DRAIN_MAX   WZP_SEC(5)

static void drain_tick(wzp_loop *loop, wzp_timer *t)
{
    wzp_relay_server *s = t->arg;
    wzp_ts now = wzp_now();
    if (!s->drain_closed &&
        (wzp_relay_control_num_conns(s->ctl) == 0 || now - s->drain_started >= DRAIN_MOVES)) {
        s->drain_closed = true;
        WZP_INFO("relay: draining: %zu connections left to close",
                 wzp_relay_control_num_conns(s->ctl));
        for (unsigned i = 0; i < s->nshards; i++)
            wzp_relay_shard_close_all(s->shards[i], CLOSE_SHUTDOWN, "relay shutting down");
        service(s); /* the shards close them; their `closed` events delete their presence */
    }
    /* Parked clients are woken to go elsewhere for up to 3 s, then forgotten. */
    if (s->drain_closed &&
        ((wzp_relay_control_num_conns(s->ctl) == 0 && wzp_relay_control_num_parked(s->ctl) == 0 &&
          wzp_cluster_settled(s->cluster)) ||
         now - s->drain_started >= DRAIN_MAX)) {
        WZP_INFO("relay: drained in %lld ms", (long long)((now - s->drain_started) / WZP_MS(1)));
        do_stop(loop, s);
        return;
    }
    wzp_timer_start(loop, t, now + WZP_MS(20));
}

static void on_signal(wzp_loop *loop, int signo, void *arg)
{
    wzp_relay_server *s = arg;
    if (signo == SIGTERM && s->cluster && !s->draining) {
        WZP_INFO("relay: signal %d, draining: clients move to other relays of the cluster", signo);
        s->draining = true;
        s->drain_started = wzp_now();
        wzp_relay_control_drain(s->ctl);
        service(s);
        wzp_timer_init(&s->drain, drain_tick, s);
        wzp_timer_start(loop, &s->drain, s->drain_started + WZP_MS(20));
        return;
    }
    WZP_INFO("relay: signal %d, shutting down", signo);
    do_stop(loop, arg);
}

/* Every shard's counters, added up (their published copies: any thread). */
static void shard_stats_sum(wzp_relay_server *s, wzp_relay_shard_stats *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (unsigned i = 0; i < s->nshards; i++) {
        wzp_relay_shard_stats st;
        wzp_relay_shard_get_stats(s->shards[i], &st);
        sum->handshakes_completed += st.handshakes_completed;
        sum->rx_dropped += st.rx_dropped;
        uint64_t *d = (uint64_t *)&sum->quic;
        const uint64_t *v = (const uint64_t *)&st.quic;
        /* wzp_quic_endpoint_stats is counters only, all uint64_t */
        for (size_t k = 0; k < sizeof(st.quic) / sizeof(uint64_t); k++)
            d[k] += v[k];
    }
}

char *wzp_relay_server_metrics_text(wzp_relay_server *s, size_t *len)
{
    if (!s->pub_mu_init)
        return NULL;
    unsigned n = wzp_forwarder_workers(s->fwd);
    wzp_forwarder_worker_stats *ws = calloc(n ? n : 1, sizeof(*ws));
    size_t cap = wzp_relay_metrics_max_size(n);
    char *buf = malloc(cap);
    wzp_relay_metrics m = {.workers = ws, .n_workers = n};
    int rv = WZP_ERR_NOMEM;
    if (ws && buf) {
        pthread_mutex_lock(&s->pub_mu);
        m.c = s->published;
        pthread_mutex_unlock(&s->pub_mu);
        wzp_relay_shard_stats sum;
        shard_stats_sum(s, &sum);
        m.c.quic = sum.quic;
        m.c.handshakes_completed = sum.handshakes_completed;
        m.c.ctl_dropped += sum.rx_dropped;
        wzp_forwarder_get_stats(s->fwd, &m.fwd);
        for (unsigned i = 0; i < n; i++)
            wzp_forwarder_get_worker_stats(s->fwd, i, &ws[i]);
        rv = wzp_relay_metrics_format(&m, buf, cap);
    }
    free(ws);
    if (rv < 0) {
        free(buf);
        return NULL;
    }
    *len = (size_t)rv;
    return buf;
}

int wzp_relay_server_new(wzp_relay_server **out, const wzp_relay_server_config *cfg)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_relay_server_config def;
    if (!cfg) {
        wzp_relay_server_config_default(&def);
        cfg = &def;
    }
    int rv;
    wzp_relay_server *s = calloc(1, sizeof(*s));
    if (!s)
        return WZP_ERR_NOMEM;
    s->cfg = *cfg;
    s->events.efd = -1;
    wzp_io_init(&s->ctl_io, on_ctl_packets, s);
    wzp_io_init(&s->events_io, on_events, s);
    wzp_timer_init(&s->timer, on_timer, s);
    for (size_t i = 0; i < RX_BATCH; i++)
        s->msgs[i] = (wzp_udp_msg){.data = s->rxbuf[i], .cap = sizeof(s->rxbuf[i])};

    char home[4096];
    if (!cfg->home && (rv = wzp_identity_default_dir(home, sizeof(home))) < 0)
        goto fail;
    if ((rv = wzp_identity_load_or_create(cfg->home ? cfg->home : home, &s->id, NULL)) < 0) {
        rv = WZP_ERR_IDENTITY;
        goto fail;
    }
    wzp_chan_table_config tcfg = {
        .max_channels = 2 * (cfg->control.max_calls ? cfg->control.max_calls : 100000)};
    if ((rv = wzp_chan_table_new(&s->chans, &tcfg)) < 0)
        goto fail;
    s->nshards = cfg->control_shards;
    if (!s->nshards) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        s->nshards = c > 0 ? (unsigned)c : 1;
    }
    if (s->nshards > WZP_RELAY_MAX_SHARDS)
        s->nshards = WZP_RELAY_MAX_SHARDS;
    s->route_key = wzp_random_u64();
    /* Lanes: 0 for this thread (datagrams for TCP clients), one per shard; the
     * queue room is shared out. */
    unsigned lanes = 1 + s->nshards;
    wzp_forwarder_config fcfg = {.bind = cfg->listen,
                                 .bind6 = cfg->listen6,
                                 .workers = cfg->workers,
                                 .coalesce_us = cfg->coalesce_us,
                                 .stun_rate = cfg->stun_rate,
                                 .table = s->chans,
                                 .ctl_queue = lane_queue(lanes),
                                 .ctl_lanes = lanes,
                                 .ctl_route = route_packet,
                                 .ctl_route_user = s};
    const wzp_addr *alt_ip[2] = {&cfg->stun_alt, &cfg->stun_alt6};
    wzp_addr *other[2] = {&fcfg.stun_other, &fcfg.stun_other6};
    unsigned stun_rate = cfg->stun_rate < 0    ? 0
                         : cfg->stun_rate == 0 ? WZP_FWD_STUN_RATE
                                               : (unsigned)cfg->stun_rate;
    for (int k = 0; k < 2; k++) {
        if (!alt_ip[k]->len)
            continue;
        if ((rv = wzp_stun_alt_open(&s->alt[k], alt_ip[k], stun_rate)) < 0)
            goto fail;
        *other[k] = *wzp_stun_alt_other(s->alt[k]);
    }
    if ((rv = wzp_forwarder_new(&s->fwd, &fcfg)) < 0)
        goto fail;
    if ((rv = wzp_loop_new(&s->loop)) < 0)
        goto fail;
    for (int k = 0; k < 2; k++)
        if (s->alt[k] && (rv = wzp_stun_alt_start(s->alt[k], s->loop, s->fwd)) < 0)
            goto fail;
    if ((rv = wzp_mq_init(&s->events)) < 0)
        goto fail;
    wzp_relay_shard_config shc = {.count = s->nshards,
                                  .route_key = s->route_key,
                                  .fwd = s->fwd,
                                  .events = &s->events,
                                  .max_conns = cfg->max_conns,
                                  .total_conns = &s->total_conns,
                                  .conn_idle_timeout = cfg->conn_idle_timeout,
                                  .auth_timeout = cfg->control.register_timeout,
                                  .draining = &s->draining,
                                  .loop = s->nshards > 1 ? NULL : s->loop};
    if ((rv = wzp_relay_endpoint_config(&shc.quic, s->id, NULL, NULL)) < 0)
        goto fail;
    /* The handshaking count that triggers Retry is the relay's: shared out. */
    shc.quic.retry_threshold =
        cfg->retry_threshold == WZP_QUIC_RETRY_NEVER || cfg->retry_threshold == 0
            ? cfg->retry_threshold
            : (cfg->retry_threshold + s->nshards - 1) / s->nshards;
    shc.quic.qlog_dir = cfg->qlog_dir;
    shc.quic.max_handshakes_per_addr = cfg->max_handshakes_per_addr;
    for (unsigned i = 0; i < s->nshards; i++) {
        shc.index = i;
        shc.lane = 1 + i;
        if ((rv = wzp_relay_shard_new(&s->shards[i], &shc)) < 0)
            goto fail;
    }
    wzp_relay_control_config ccfg = cfg->control;
    ccfg.cb = (wzp_relay_control_callbacks){.send = ctl_send,
                                            .close = ctl_close,
                                            .channels_open = ctl_channels_open,
                                            .channels_close = ctl_channels_close,
                                            .channel_moved = ctl_channel_moved,
                                            .channel_peer = ctl_channel_peer,
                                            .park_send = ctl_park_send};
    ccfg.user = s;
    /* Park keys from the identity too: after a restart (same home) parked clients hear at
     * their next ping that they must register again (docs/signaling.md). */
    ccfg.have_park_secret =
        wzp_identity_derive_secret(s->id, WZP_PARK_SECRET_LABEL, ccfg.park_secret) == 0;
    /* 0: as the clients' control keep-alives, 4 s, or 2 s in a cluster (where a dead relay
     * must be noticed sooner). */
    if (!ccfg.park_keepalive)
        ccfg.park_keepalive = cfg->redis ? WZP_SEC(2) : WZP_SEC(4);
    if (cfg->redis) {
        ccfg.cb.claim_alias = ctl_claim_alias;
        ccfg.cb.presence = ctl_presence;
        ccfg.cb.locate = ctl_locate;
        ccfg.cb.cluster_send = ctl_cluster_send;
        ccfg.cb.call_record = ctl_call_record;
        ccfg.cb.reattach_lookup = ctl_reattach_lookup;
        ccfg.cluster_addr =
            cfg->cluster_addr.len ? cfg->cluster_addr : *wzp_forwarder_local_addr(s->fwd);
    }
    if ((rv = wzp_relay_control_new(&s->ctl, &ccfg)) < 0)
        goto fail;
    if (cfg->redis) {
        wzp_cluster_config kc = {.redis = cfg->redis,
                                 .redis_user = cfg->redis_user,
                                 .redis_password = cfg->redis_password,
                                 .key = cfg->cluster_key,
                                 .fwd_addr = ccfg.cluster_addr,
                                 .alias_ttl = ccfg.alias_reclaim,
                                 .ctl = s->ctl,
                                 .notify = cluster_notify,
                                 .user = s};
        uint8_t fp[WZP_FINGERPRINT_LEN];
        wzp_identity_fingerprint(s->id, fp);
        memcpy(kc.self, fp, WZP_CLUSTER_ID_LEN);
        if ((rv = wzp_cluster_new(&s->cluster, &kc, s->loop)) < 0)
            goto fail;
    }
    snprintf(s->aliases_path, sizeof(s->aliases_path), "%s/" ALIASES_FILE,
             cfg->home ? cfg->home : home);
    if ((rv = load_aliases(s)) < 0)
        goto fail;
    if ((rv = wzp_io_start(s->loop, &s->ctl_io, wzp_forwarder_ctl_fd(s->fwd, 0), WZP_IO_READ)) <
            0 ||
        (rv = wzp_io_start(s->loop, &s->events_io, wzp_mq_fd(&s->events), WZP_IO_READ)) < 0)
        goto fail;
    wzp_mq_attach(&s->events, s->loop, &s->events_io);
    if (cfg->metrics) {
        if (pthread_mutex_init(&s->pub_mu, NULL) != 0) {
            rv = WZP_ERR_NOMEM;
            goto fail;
        }
        s->pub_mu_init = true;
    }
    if (cfg->listen_tcp.len) {
        wzp_tcp_listener_config tc;
        wzp_tcp_listener_config_default(&tc);
        tc.bind = cfg->listen_tcp;
        tc.id = s->id;
        tc.max_per_ip = cfg->tcp_max_per_addr;
        tc.handshake_timeout = cfg->tcp_handshake_timeout;
        tc.idle_timeout = cfg->tcp_idle_timeout;
        tc.deliver = tcp_deliver;
        tc.user = s;
        if ((rv = wzp_tcp_listener_new(&s->tcp, &tc, s->loop)) < 0)
            goto fail;
    }
    wzp_tcp_forward_init(&s->tcp_fwd, s->chans, s->fwd, s->tcp);
    *out = s;
    return 0;
fail:
    wzp_relay_server_free(s);
    return rv;
}

/* Stops and joins the shards, then passes on what they left for this thread
 * (the closes for TCP clients), without answering anything new. */
static void stop_shards(wzp_relay_server *s)
{
    s->stopping = true;
    for (unsigned i = 0; i < s->nshards; i++)
        if (s->shards[i])
            wzp_relay_shard_stop(s->shards[i]);
    for (unsigned i = 0; i < s->nshards; i++)
        if (s->shards[i])
            wzp_relay_shard_join(s->shards[i]);
    drain_events(s);
    if (s->tcp)
        wzp_tcp_listener_flush(s->tcp);
}

int wzp_relay_server_run(wzp_relay_server *s, bool handle_signals)
{
    if (handle_signals) {
        int rv = wzp_loop_watch_signals(s->loop, on_signal, s);
        if (rv < 0)
            return rv;
    }
    wzp_ts now = wzp_now();
    s->next_expire = now + CHAN_EXPIRE_INTERVAL;
    for (unsigned i = 0; !s->shards_started && i < s->nshards; i++) {
        int rv = wzp_relay_shard_start(s->shards[i]);
        if (rv < 0) {
            stop_shards(s);
            return rv;
        }
    }
    s->shards_started = true;
    service(s);
    int rv = wzp_loop_run(s->loop);
    stop_shards(s);
    return rv;
}

void wzp_relay_server_stop(wzp_relay_server *s)
{
    wzp_loop_post(s->loop, do_stop, s);
}

static void free_event(wzp_mq_node *n)
{
    free(n);
}

void wzp_relay_server_free(wzp_relay_server *s)
{
    if (!s)
        return;
    if (s->pub_mu_init)
        pthread_mutex_destroy(&s->pub_mu);
    if (s->loop) {
        wzp_timer_stop(s->loop, &s->timer);
        if (s->draining)
            wzp_timer_stop(s->loop, &s->drain);
        if (s->ctl_io.fd >= 0)
            wzp_io_stop(s->loop, &s->ctl_io);
        if (s->events_io.fd >= 0)
            wzp_io_stop(s->loop, &s->events_io);
    }
    /* Threads first: nothing may feed or send while the rest goes. */
    for (unsigned i = 0; i < s->nshards; i++)
        wzp_relay_shard_free(s->shards[i]);
    wzp_mq_destroy(&s->events, free_event);
    wzp_cluster_free(s->cluster); /* before the control plane its answers would reach */
    wzp_tcp_listener_free(s->tcp);
    wzp_relay_control_free(s->ctl);
    wzp_stun_alt_free(s->alt[0]);
    wzp_stun_alt_free(s->alt[1]);
    wzp_forwarder_free(s->fwd);
    wzp_chan_table_free(s->chans);
    wzp_loop_free(s->loop);
    wzp_identity_free(s->id);
    free(s);
}

const wzp_addr *wzp_relay_server_addr(const wzp_relay_server *s)
{
    return wzp_forwarder_local_addr(s->fwd);
}

const wzp_addr *wzp_relay_server_addr6(const wzp_relay_server *s)
{
    return wzp_forwarder_local_addr6(s->fwd);
}

void wzp_relay_server_fingerprint(const wzp_relay_server *s, uint8_t fp[WZP_FINGERPRINT_LEN])
{
    wzp_identity_fingerprint(s->id, fp);
}

void wzp_relay_server_get_stats(const wzp_relay_server *s, wzp_relay_server_stats *out)
{
    memset(out, 0, sizeof(*out));
    wzp_relay_shard_stats sum;
    shard_stats_sum((wzp_relay_server *)s, &sum);
    out->quic = sum.quic;
    if (s->tcp)
        wzp_tcp_listener_get_stats(s->tcp, &out->tcp);
}

const wzp_addr *wzp_relay_server_tcp_addr(const wzp_relay_server *s)
{
    return s->tcp ? wzp_tcp_listener_addr(s->tcp) : NULL;
}
