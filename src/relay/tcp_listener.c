#include "relay/tcp_listener.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/hmap.h"
#include "common/log.h"
#include "common/tunnel_addr.h"
#include "net/clock.h"
#include "net/tcp.h"
#include "net/tcp_link.h"
#include "quic/identity_tls.h"

/* How often deadlines are checked: timeouts are seconds, a scan per second is plenty. */
#define SCAN_INTERVAL WZP_SEC(1)
/* Accepts per readiness callback, so a connection flood cannot starve the loop. */
#define ACCEPT_BURST 64
/* A client's receive buffer: bounds the work one readiness callback does. */
#define RCVBUF (64 * 1024)

typedef struct tconn {
    struct wzp_tcp_listener *t;
    uint64_t id;
    wzp_addr tunnel;
    uint8_t key[8];
    size_t keylen;
    wzp_tcp_link *link;
    wzp_io io;
    unsigned events;
    wzp_ts accepted, last_rx;
    struct tconn *next_dirty;
    bool dirty;
    uint64_t counted_rx, counted_tx, counted_drop; /* link stats already added to the totals */
} tconn;

struct wzp_tcp_listener {
    wzp_tcp_listener_config cfg;
    wzp_loop *loop;
    int fd;
    wzp_addr local;
    wzp_io io;
    wzp_timer timer;
    gnutls_certificate_credentials_t cred;
    wzp_hmap conns;  /* id -> tconn */
    wzp_hmap per_ip; /* limit key -> count (in the pointer) */
    uint64_t next_id;
    tconn *dirty;
    wzp_tcp_listener_stats stats;
};

void wzp_tcp_listener_config_default(wzp_tcp_listener_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

static size_t ip_count(const wzp_tcp_listener *t, const uint8_t *key, size_t keylen)
{
    return keylen ? (size_t)(uintptr_t)wzp_hmap_get(&t->per_ip, key, keylen) : 0;
}

static void ip_add(wzp_tcp_listener *t, const uint8_t *key, size_t keylen, int d)
{
    if (!keylen)
        return;
    size_t n = ip_count(t, key, keylen) + (size_t)d;
    if (n)
        wzp_hmap_put(&t->per_ip, key, keylen, (void *)(uintptr_t)n);
    else
        wzp_hmap_del(&t->per_ip, key, keylen);
}

static void account(wzp_tcp_listener *t, tconn *c)
{
    wzp_tcp_link_stats ls;
    wzp_tcp_link_get_stats(c->link, &ls);
    t->stats.rx_records += ls.rx_records - c->counted_rx;
    t->stats.tx_records += ls.tx_records - c->counted_tx;
    t->stats.tx_dropped += ls.tx_dropped - c->counted_drop;
    c->counted_rx = ls.rx_records;
    c->counted_tx = ls.tx_records;
    c->counted_drop = ls.tx_dropped;
}

static void conn_close(wzp_tcp_listener *t, tconn *c, const char *why)
{
    char buf[WZP_ADDR_STRLEN];
    WZP_DEBUG("relay: tcp %s closed: %s", wzp_addr_format(&c->tunnel, buf, sizeof(buf)), why);
    account(t, c);
    wzp_io_stop(t->loop, &c->io);
    wzp_hmap_del(&t->conns, &c->id, sizeof(c->id));
    ip_add(t, c->key, c->keylen, -1);
    /* Unlink from the dirty list. */
    for (tconn **p = &t->dirty; *p; p = &(*p)->next_dirty)
        if (*p == c) {
            *p = c->next_dirty;
            break;
        }
    wzp_tcp_link_free(c->link);
    free(c);
    t->stats.closed++;
}

static void deliver(void *user, const uint8_t *rec, size_t len)
{
    tconn *c = user;
    wzp_ts now = wzp_now();
    c->last_rx = now;
    c->t->cfg.deliver(c->t->cfg.user, &c->tunnel, rec, len, now);
}

/* Runs the link and re-arms the watcher; false when the connection was closed. */
static bool conn_run(wzp_tcp_listener *t, tconn *c)
{
    int rc = wzp_tcp_link_io(c->link, deliver, c);
    if (rc < 0) {
        conn_close(t, c, wzp_tcp_link_error(c->link));
        return false;
    }
    unsigned ev = wzp_tcp_link_events(c->link);
    if (ev != c->events && wzp_io_modify(t->loop, &c->io, ev) == 0)
        c->events = ev;
    return true;
}

static void on_conn(wzp_loop *loop, wzp_io *io, unsigned events)
{
    tconn *c = io->arg;
    wzp_tcp_listener *t = c->t;
    (void)loop;
    (void)events;
    conn_run(t, c);
    /* What its records made the owner send (frames for other TCP clients) leaves now. */
    wzp_tcp_listener_flush(t);
}

static void on_accept(wzp_loop *loop, wzp_io *io, unsigned events)
{
    wzp_tcp_listener *t = io->arg;
    (void)loop;
    (void)events;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(t->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error (EMFILE...): level-triggered, we come back */
        wzp_addr real;
        if (wzp_addr_from_sockaddr(&real, (struct sockaddr *)&ss, sl) < 0) {
            close(fd);
            continue;
        }
        uint8_t key[8];
        size_t keylen = wzp_addr_limit_key(&real, key);
        if (t->conns.count >= t->cfg.max_conns) {
            t->stats.refused_full++;
            close(fd);
            continue;
        }
        if (ip_count(t, key, keylen) >= t->cfg.max_per_ip) {
            t->stats.refused_ip_cap++;
            close(fd);
            continue;
        }
        int rcvbuf = RCVBUF;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        wzp_tcp_link_tune(fd);
        tconn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        wzp_tcp_link_config lc = {.fd = fd, .server = true, .cred = t->cred, .queue = t->cfg.queue};
        if (wzp_tcp_link_new(&c->link, &lc) < 0) { /* closed the fd */
            free(c);
            continue;
        }
        c->t = t;
        do
            c->id = ++t->next_id & WZP_TUNNEL_ID_MAX;
        while (!c->id || wzp_hmap_get(&t->conns, &c->id, sizeof(c->id)));
        wzp_tunnel_addr_make(&c->tunnel, &real, c->id);
        memcpy(c->key, key, sizeof(key));
        c->keylen = keylen;
        c->accepted = c->last_rx = wzp_now();
        wzp_io_init(&c->io, on_conn, c);
        c->events = wzp_tcp_link_events(c->link);
        if (wzp_hmap_put(&t->conns, &c->id, sizeof(c->id), c) < 0 ||
            wzp_io_start(t->loop, &c->io, fd, c->events) < 0) {
            wzp_hmap_del(&t->conns, &c->id, sizeof(c->id));
            wzp_tcp_link_free(c->link);
            free(c);
            continue;
        }
        ip_add(t, key, keylen, 1);
        t->stats.accepted++;
    }
}

static void on_scan(wzp_loop *loop, wzp_timer *tm)
{
    wzp_tcp_listener *t = tm->arg;
    wzp_ts now = wzp_now();
    const wzp_hmap_slot *slot;
    /* Collect first: closing deletes from the map being iterated. */
    for (;;) {
        tconn *victim = NULL;
        const char *why = NULL;
        for (size_t it = 0; !victim && wzp_hmap_next(&t->conns, &it, &slot);) {
            tconn *c = slot->value;
            if (!wzp_tcp_link_up(c->link) && now - c->accepted >= t->cfg.handshake_timeout) {
                victim = c;
                why = "handshake timeout";
                t->stats.handshake_timeouts++;
            } else if (wzp_tcp_link_up(c->link) && now - c->last_rx >= t->cfg.idle_timeout) {
                victim = c;
                why = "idle";
                t->stats.idle_timeouts++;
            } else {
                account(t, c);
            }
        }
        if (!victim)
            break;
        conn_close(t, victim, why);
    }
    wzp_timer_start(loop, tm, now + SCAN_INTERVAL);
}

int wzp_tcp_listener_new(wzp_tcp_listener **out, const wzp_tcp_listener_config *cfg, wzp_loop *loop)
{
    if (!out || !cfg || !cfg->id || !cfg->deliver || !loop)
        return WZP_ERR_INVALID;
    wzp_tcp_listener *t = calloc(1, sizeof(*t));
    if (!t)
        return WZP_ERR_NOMEM;
    t->cfg = *cfg;
    if (!t->cfg.max_conns)
        t->cfg.max_conns = 10000;
    if (!t->cfg.max_per_ip)
        t->cfg.max_per_ip = 16;
    if (!t->cfg.handshake_timeout)
        t->cfg.handshake_timeout = WZP_SEC(5);
    if (!t->cfg.idle_timeout)
        t->cfg.idle_timeout = WZP_SEC(30);
    t->loop = loop;
    t->fd = -1;
    wzp_hmap_init(&t->conns);
    wzp_hmap_init(&t->per_ip);
    wzp_io_init(&t->io, on_accept, t);
    wzp_timer_init(&t->timer, on_scan, t);
    int rv;
    if (gnutls_certificate_allocate_credentials(&t->cred) != 0) {
        t->cred = NULL;
        rv = WZP_ERR_NOMEM;
        goto fail;
    }
    if ((rv = wzp_identity_set_credentials(cfg->id, t->cred)) < 0)
        goto fail;
    if ((t->fd = wzp_tcp_listen(&cfg->bind, &t->local)) < 0) {
        rv = t->fd;
        goto fail;
    }
    if ((rv = wzp_io_start(loop, &t->io, t->fd, WZP_IO_READ)) < 0 ||
        (rv = wzp_timer_start(loop, &t->timer, wzp_now() + SCAN_INTERVAL)) < 0)
        goto fail;
    *out = t;
    return 0;
fail:
    wzp_tcp_listener_free(t);
    return rv;
}

void wzp_tcp_listener_free(wzp_tcp_listener *t)
{
    if (!t)
        return;
    const wzp_hmap_slot *slot;
    for (size_t it = 0; wzp_hmap_next(&t->conns, &it, &slot);) {
        tconn *c = slot->value;
        wzp_io_stop(t->loop, &c->io);
        wzp_tcp_link_free(c->link);
        free(c);
    }
    wzp_hmap_free(&t->conns);
    wzp_hmap_free(&t->per_ip);
    wzp_timer_stop(t->loop, &t->timer);
    if (t->fd >= 0) {
        wzp_io_stop(t->loop, &t->io);
        close(t->fd);
    }
    if (t->cred)
        gnutls_certificate_free_credentials(t->cred);
    free(t);
}

const wzp_addr *wzp_tcp_listener_addr(const wzp_tcp_listener *t)
{
    return &t->local;
}

int wzp_tcp_listener_send(wzp_tcp_listener *t, const wzp_addr *to, const uint8_t *data, size_t len)
{
    uint64_t id = wzp_tunnel_addr_id(to);
    tconn *c = id ? wzp_hmap_get(&t->conns, &id, sizeof(id)) : NULL;
    /* The address must match whole (the real address part too), not just the number. */
    if (!c || !wzp_addr_equal(&c->tunnel, to) || !wzp_tcp_link_up(c->link)) {
        t->stats.tx_no_conn++;
        return WZP_ERR_NOT_FOUND;
    }
    if (wzp_tcp_link_send(c->link, data, len) < 0)
        return WZP_ERR_INVALID;
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = t->dirty;
        t->dirty = c;
    }
    return 0;
}

void wzp_tcp_listener_flush(wzp_tcp_listener *t)
{
    while (t->dirty) {
        tconn *c = t->dirty;
        t->dirty = c->next_dirty;
        c->dirty = false;
        c->next_dirty = NULL;
        conn_run(t, c);
    }
}

void wzp_tcp_listener_get_stats(const wzp_tcp_listener *t, wzp_tcp_listener_stats *out)
{
    *out = t->stats;
    out->conns = t->conns.count;
}
