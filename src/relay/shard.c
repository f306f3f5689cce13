#include "relay/shard.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/deadline_list.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/tunnel_addr.h"
#include "net/clock.h"
#include "wire/demux.h"
#include "wire/signal.h"

#define RX_BATCH 64
_Static_assert(WZP_SIG_AUTH_KEY_MAX == WZP_QUIC_AUTH_KEY_MAX &&
                   WZP_SIG_AUTH_SIG_MAX == WZP_QUIC_AUTH_SIG_MAX,
               "Auth carries what the proof holds");
/* Application close code of a relay shutting down (server.c's CLOSE_SHUTDOWN). */
#define CLOSE_SHUTDOWN 0

typedef enum cmd_kind { CMD_SEND, CMD_CLOSE, CMD_CLOSE_ALL, CMD_PACKET, CMD_STOP } cmd_kind;

typedef struct shard_cmd {
    wzp_mq_node node;
    cmd_kind kind;
    uint64_t handle;
    uint64_t code; /* CMD_CLOSE */
    wzp_addr from; /* CMD_PACKET */
    size_t len;
    uint8_t data[]; /* message, packet, or the close reason with its NUL */
} shard_cmd;

/* One connection as the shard knows it (the connection's user data). Until
 * its handshake completes a connection points at the shard's `handshaking`
 * record (handle 0): nothing to leak if the endpoint drops it before then. */
typedef struct shard_conn {
    struct wzp_relay_shard *sh;
    uint64_t handle;
    wzp_quic_conn *conn;
    wzp_addr addr;  /* last remote address the control thread was told */
    bool auth_wait; /* an auth_wait: established without a certificate, Auth not yet in */
} shard_conn;

/* A client that presented no certificate, until its Auth (its first message) proves its
 * key on this session: the control thread hears of it only then. Oldest first. */
typedef struct auth_wait {
    shard_conn sc;                          /* first: the connection's user data; handle 0 */
    wzp_dl_node node;                       /* in the shard's waits; at = the Auth deadline */
    uint8_t binding[WZP_QUIC_AUTH_BINDING]; /* read before the TLS session is released */
} auth_wait;

struct wzp_relay_shard {
    wzp_relay_shard_config cfg;
    wzp_quic_endpoint *ep;
    wzp_loop *loop; /* cfg.loop, or our own */
    bool own_loop, started, joined;
    bool stop_sent; /* the owner's (control thread's): stop was asked */
    /* The owner's commands since its last wzp_relay_shard_flush (its thread's). */
    wzp_mq_node *cmd_first, *cmd_last;
    pthread_t thread;
    wzp_io pkt_io, cmd_io;
    wzp_timer timer;
    wzp_mq cmds;
    /* Events of the work under way, passed on as one batch when it is done. */
    wzp_mq_node *ev_first, *ev_last;
    shard_conn handshaking;
    wzp_hmap conns;    /* handle -> shard_conn */
    wzp_dl_list waits; /* auth_wait.node, oldest first */
    wzp_ts auth_timeout;
    uint64_t next_seq;
    bool stopping;
    long published_conns; /* our share of *cfg.total_conns */
    uint64_t handshakes_completed, rx_dropped, auth_refused;
    pthread_mutex_t st_mu;
    wzp_relay_shard_stats st; /* published copy, under st_mu */
    uint8_t rxbuf[RX_BATCH][WZP_FWD_MAX_DGRAM];
    wzp_udp_msg msgs[RX_BATCH];
};

/* --- events to the control thread --------------------------------------------------------- */

static void emit(wzp_relay_shard *sh, wzp_relay_shard_ev_kind kind, uint64_t handle,
                 const wzp_addr *addr, const uint8_t *fp, const uint8_t *data, size_t len)
{
    wzp_relay_shard_event *ev = malloc(sizeof(*ev) + len);
    if (!ev) {
        /* The control thread misses this one (a connection it never hears of idles out). */
        WZP_ERROR("relay shard %u: out of memory for an event", sh->cfg.index);
        return;
    }
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->handle = handle;
    if (addr)
        ev->addr = *addr;
    if (fp)
        memcpy(ev->fp, fp, WZP_FINGERPRINT_LEN);
    ev->len = len;
    if (len)
        memcpy(ev->data, data, len);
    ev->node.next = NULL;
    if (sh->ev_last)
        sh->ev_last->next = &ev->node;
    else
        sh->ev_first = &ev->node;
    sh->ev_last = &ev->node;
}

static void flush_events(wzp_relay_shard *sh)
{
    if (!sh->ev_first)
        return;
    wzp_mq_push_chain(sh->cfg.events, sh->ev_first, sh->ev_last);
    sh->ev_first = sh->ev_last = NULL;
}

/* --- QUIC callbacks ----------------------------------------------------------------------- */

/* The connection is c's proven key fp: the control thread hears of it now. */
static void conn_ready(wzp_relay_shard *sh, wzp_quic_conn *c, const uint8_t *fp)
{
    shard_conn *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        wzp_quic_conn_close(c, CLOSE_SHUTDOWN, "out of memory");
        return;
    }
    rc->sh = sh;
    rc->handle = ++sh->next_seq * sh->cfg.count + sh->cfg.index;
    rc->conn = c;
    wzp_quic_conn_remote_addr(c, &rc->addr);
    if (wzp_hmap_put(&sh->conns, &rc->handle, sizeof(rc->handle), rc) < 0) {
        free(rc);
        wzp_quic_conn_close(c, CLOSE_SHUTDOWN, "out of memory");
        return;
    }
    wzp_quic_conn_set_user(c, rc);
    emit(sh, WZP_SHARD_EV_ESTABLISHED, rc->handle, &rc->addr, fp, NULL, 0);
}

static auth_wait *wait_of(wzp_dl_node *n)
{
    return WZP_DL_OWNER(n, auth_wait, node);
}

static void wait_unlink(wzp_relay_shard *sh, auth_wait *w)
{
    wzp_dl_remove(&sh->waits, &w->node);
}

/* Refuses a client that did not prove its key: it is closed, and freed by q_closed. */
static void auth_refuse(auth_wait *w, const char *why)
{
    wzp_relay_shard *sh = w->sc.sh;
    char reason[160];
    snprintf(reason, sizeof(reason), "authentication failed: %s", why);
    sh->auth_refused++;
    wait_unlink(sh, w);
    wzp_quic_conn_close(w->sc.conn, WZP_SIG_CLOSE_AUTH, reason);
}

static void q_established(void *user, wzp_quic_conn *c, const uint8_t fp[WZP_FINGERPRINT_LEN],
                          wzp_ts now)
{
    wzp_relay_shard *sh = ((shard_conn *)user)->sh;
    sh->handshakes_completed++;
    if (fp) {
        conn_ready(sh, c, fp); /* a certificate proved the key (older clients) */
        return;
    }
    auth_wait *w = calloc(1, sizeof(*w));
    if (!w || wzp_quic_conn_auth_binding(c, w->binding) < 0) {
        free(w);
        wzp_quic_conn_close(c, CLOSE_SHUTDOWN, "out of memory");
        return;
    }
    w->sc = (shard_conn){.sh = sh, .conn = c, .auth_wait = true};
    wzp_dl_append(&sh->waits, &w->node, now + sh->auth_timeout);
    wzp_quic_conn_set_user(c, &w->sc);
}

/* The first message of a client without a certificate: its Auth, or it goes. */
static void on_auth(auth_wait *w, const uint8_t *data, size_t len)
{
    wzp_relay_shard *sh = w->sc.sh;
    if (!w->node.linked)
        return; /* refused already, closing */
    wzp_sig_msg m;
    if (wzp_sig_decode(data, len, &m) != 0 || m.type != WZP_SIG_AUTH) {
        auth_refuse(w, "the first message must be Auth");
        return;
    }
    uint8_t fp[WZP_FINGERPRINT_LEN];
    const char *why = "?";
    if (wzp_quic_auth_verify(w->binding, m.u.auth.key, m.u.auth.key_len, m.u.auth.sig,
                             m.u.auth.sig_len, fp, &why) != 0) {
        auth_refuse(w, why);
        return;
    }
    wzp_quic_conn *c = w->sc.conn;
    wait_unlink(sh, w);
    free(w);
    conn_ready(sh, c, fp);
}

/* Clients that sent no Auth in time. */
static void expire_waits(wzp_relay_shard *sh, wzp_ts now)
{
    while (sh->waits.head && sh->waits.head->at <= now)
        auth_refuse(wait_of(sh->waits.head), "no Auth in time");
}

static void q_message(void *user, wzp_quic_conn *c, const uint8_t *data, size_t len, wzp_ts now)
{
    shard_conn *rc = user;
    (void)c;
    (void)now;
    if (len == 0)
        return; /* an empty message only opens the stream */
    if (rc->auth_wait)
        on_auth((auth_wait *)rc, data, len);
    else if (rc->handle)
        emit(rc->sh, WZP_SHARD_EV_MESSAGE, rc->handle, NULL, NULL, data, len);
}

static void q_datagram(void *user, wzp_quic_conn *c, const uint8_t *data, size_t len, wzp_ts now)
{
    (void)c;
    (void)data;
    (void)len;
    (void)now;
    ((shard_conn *)user)->sh->rx_dropped++; /* control connections carry no datagrams */
}

/* NAT rebinding: QUIC follows the client to its new address (path
 * validation) and says so; the control plane and the client's channels
 * follow QUIC. An event, not a periodic scan of every connection. */
static void q_path_changed(void *user, wzp_quic_conn *c, const wzp_addr *remote, wzp_ts now)
{
    shard_conn *rc = user;
    (void)c;
    (void)now;
    /* Before `established` there is nothing to move: q_established reads
     * the address current then. */
    if (!rc->handle || wzp_addr_family(remote) == AF_UNSPEC || wzp_addr_equal(remote, &rc->addr))
        return;
    rc->addr = *remote;
    emit(rc->sh, WZP_SHARD_EV_MOVED, rc->handle, remote, NULL, NULL, 0);
}

static void q_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info, wzp_ts now)
{
    shard_conn *rc = user;
    (void)c;
    (void)now;
    if (rc->auth_wait) {
        wait_unlink(rc->sh, (auth_wait *)rc);
        free(rc);
        return;
    }
    if (!rc->handle)
        return; /* never finished its handshake */
    wzp_relay_shard *sh = rc->sh;
    if (info->by_peer && !info->error && info->app_code == WZP_SIG_CLOSE_MOVING)
        emit(sh, WZP_SHARD_EV_MOVING, rc->handle, NULL, NULL, NULL, 0);
    if (info->by_peer && !info->error && info->app_code == WZP_SIG_CLOSE_PARKED)
        emit(sh, WZP_SHARD_EV_PARKED, rc->handle, NULL, NULL, NULL, 0);
    emit(sh, WZP_SHARD_EV_CLOSED, rc->handle, NULL, NULL, NULL, 0);
    wzp_hmap_del(&sh->conns, &rc->handle, sizeof(rc->handle));
    free(rc);
}

static const wzp_quic_conn_callbacks control_conn_callbacks = {
    .established = q_established,
    .datagram = q_datagram,
    .message = q_message,
    .closed = q_closed,
    .path_changed = q_path_changed,
};

static int q_accept(void *user, const wzp_addr *local, const wzp_addr *remote,
                    wzp_quic_conn_config *opts, wzp_ts now)
{
    wzp_relay_shard *sh = user;
    (void)local;
    (void)remote;
    (void)now;
    /* All shards' connections as last published, with ours as they are now. */
    long total = atomic_load_explicit(sh->cfg.total_conns, memory_order_relaxed) -
                 sh->published_conns + (long)wzp_quic_endpoint_conn_count(sh->ep);
    if (sh->stopping || (sh->cfg.draining && atomic_load(sh->cfg.draining)) ||
        total >= (long)sh->cfg.max_conns)
        return WZP_ERR_LIMIT;
    opts->pin_mode = WZP_QUIC_PIN_ANY; /* a client is whoever proves its key */
    opts->idle_timeout = sh->cfg.conn_idle_timeout;
    opts->max_message = WZP_SIG_MAX_SIZE;
    opts->initial_rtt = WZP_MS(50);
    opts->release_tls = true;   /* the Auth binding is read before, in q_established */
    opts->cert_optional = true; /* clients prove their key with Auth instead (on_auth) */
    opts->cb = control_conn_callbacks;
    opts->user = &sh->handshaking;
    return 0;
}

/* --- the shard's loop --------------------------------------------------------------------- */

/* Sends one packet: over UDP, or (a TCP client) through the control thread. */
static void q_send(void *user, const wzp_addr *local, const wzp_addr *remote, const uint8_t *pkt,
                   size_t len)
{
    wzp_relay_shard *sh = user;
    (void)local;
    if (wzp_addr_is_tunnel(remote))
        emit(sh, WZP_SHARD_EV_TCP_OUT, 0, remote, NULL, pkt, len);
    else
        wzp_forwarder_send(sh->cfg.fwd, remote, pkt, len);
}

static const wzp_addr *local_for(const wzp_relay_shard *sh, const wzp_addr *peer)
{
    /* a dual-stack relay's QUIC paths keep the local address of the peer's family */
    const wzp_addr *local6 = wzp_forwarder_local_addr6(sh->cfg.fwd);
    return local6 && wzp_addr_family(peer) == AF_INET6 ? local6
                                                       : wzp_forwarder_local_addr(sh->cfg.fwd);
}

static void publish(wzp_relay_shard *sh)
{
    long n = (long)wzp_quic_endpoint_conn_count(sh->ep);
    if (n != sh->published_conns) {
        atomic_fetch_add_explicit(sh->cfg.total_conns, n - sh->published_conns,
                                  memory_order_relaxed);
        sh->published_conns = n;
    }
    pthread_mutex_lock(&sh->st_mu);
    wzp_quic_endpoint_get_stats(sh->ep, &sh->st.quic);
    sh->st.handshakes_completed = sh->handshakes_completed;
    sh->st.rx_dropped = sh->rx_dropped;
    sh->st.auth_refused = sh->auth_refused;
    pthread_mutex_unlock(&sh->st_mu);
}

static void service(wzp_relay_shard *sh)
{
    wzp_quic_endpoint_flush(sh->ep, wzp_now(), q_send, sh);
    flush_events(sh);
    publish(sh);
    wzp_ts next = wzp_quic_endpoint_expiry(sh->ep);
    if (sh->waits.head)
        next = wzp_ts_min(next, sh->waits.head->at);
    wzp_timer_start(sh->loop, &sh->timer, next);
}

static void on_timer(wzp_loop *loop, wzp_timer *t)
{
    wzp_relay_shard *sh = t->arg;
    (void)loop;
    wzp_ts now = wzp_now();
    if (wzp_quic_endpoint_expiry(sh->ep) <= now)
        wzp_quic_endpoint_handle_expiry(sh->ep, now);
    expire_waits(sh, now);
    service(sh);
}

static void feed(wzp_relay_shard *sh, const wzp_addr *from, const uint8_t *data, size_t len,
                 wzp_ts now)
{
    if (wzp_pkt_classify(data, len) == WZP_PKT_QUIC)
        wzp_quic_endpoint_feed(sh->ep, local_for(sh, from), from, data, len, now, NULL);
    else
        sh->rx_dropped++;
}

static void on_packets(wzp_loop *loop, wzp_io *io, unsigned events)
{
    wzp_relay_shard *sh = io->arg;
    (void)loop;
    (void)events;
    int n;
    while ((n = wzp_forwarder_ctl_recv(sh->cfg.fwd, sh->cfg.lane, sh->msgs, RX_BATCH)) > 0) {
        wzp_ts now = wzp_now();
        for (int i = 0; i < n; i++)
            feed(sh, &sh->msgs[i].peer, sh->msgs[i].data, sh->msgs[i].len, now);
        if (n < RX_BATCH)
            break;
    }
    service(sh);
}

static shard_conn *conn_by_handle(wzp_relay_shard *sh, uint64_t handle)
{
    return wzp_hmap_get(&sh->conns, &handle, sizeof(handle));
}

static void close_all(wzp_relay_shard *sh, uint64_t app_code, const char *reason)
{
    const wzp_hmap_slot *slot;
    for (size_t it = 0; wzp_hmap_next(&sh->conns, &it, &slot);)
        wzp_quic_conn_close(((shard_conn *)slot->value)->conn, app_code, reason);
    for (wzp_dl_node *n = sh->waits.head; n; n = n->next)
        wzp_quic_conn_close(wait_of(n)->sc.conn, app_code, reason);
}

/* Closes every connection politely and writes the closes out. */
static void shut_down(wzp_relay_shard *sh)
{
    sh->stopping = true;
    close_all(sh, CLOSE_SHUTDOWN, "relay shutting down");
    wzp_quic_endpoint_flush(sh->ep, wzp_now(), q_send, sh);
    flush_events(sh);
    publish(sh);
}

static void run_cmd(wzp_relay_shard *sh, shard_cmd *c, wzp_ts now)
{
    shard_conn *rc;
    switch (c->kind) {
    case CMD_SEND:
        rc = conn_by_handle(sh, c->handle);
        if (rc && wzp_quic_conn_send_message(rc->conn, c->data, c->len) < 0)
            WZP_DEBUG("relay: message to connection %llu not queued",
                      (unsigned long long)c->handle);
        break;
    case CMD_CLOSE:
        rc = conn_by_handle(sh, c->handle);
        if (rc)
            wzp_quic_conn_close(rc->conn, c->code, (const char *)c->data);
        break;
    case CMD_CLOSE_ALL:
        close_all(sh, c->code, (const char *)c->data);
        break;
    case CMD_PACKET:
        feed(sh, &c->from, c->data, c->len, now);
        break;
    case CMD_STOP:
        shut_down(sh);
        if (sh->own_loop)
            wzp_loop_stop(sh->loop);
        break;
    }
}

static void on_cmds(wzp_loop *loop, wzp_io *io, unsigned events)
{
    wzp_relay_shard *sh = io->arg;
    (void)loop;
    (void)events;
    wzp_mq_node *n = wzp_mq_take(&sh->cmds);
    wzp_ts now = wzp_now();
    while (n) {
        wzp_mq_node *next = n->next;
        run_cmd(sh, (shard_cmd *)n, now);
        free(n);
        n = next;
    }
    if (!sh->stopping)
        service(sh);
}

static void push_cmd(wzp_relay_shard *sh, cmd_kind kind, uint64_t handle, uint64_t code,
                     const wzp_addr *from, const void *data, size_t len)
{
    shard_cmd *c = malloc(sizeof(*c) + len);
    if (!c) {
        WZP_ERROR("relay shard %u: out of memory for a command", sh->cfg.index);
        return;
    }
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->handle = handle;
    c->code = code;
    if (from)
        c->from = *from;
    c->len = len;
    if (len)
        memcpy(c->data, data, len);
    c->node.next = NULL;
    if (sh->cmd_last)
        sh->cmd_last->next = &c->node;
    else
        sh->cmd_first = &c->node;
    sh->cmd_last = &c->node;
}

void wzp_relay_shard_flush(wzp_relay_shard *sh)
{
    if (!sh->cmd_first)
        return;
    wzp_mq_push_chain(&sh->cmds, sh->cmd_first, sh->cmd_last);
    sh->cmd_first = sh->cmd_last = NULL;
}

void wzp_relay_shard_send(wzp_relay_shard *sh, uint64_t handle, const uint8_t *msg, size_t len)
{
    push_cmd(sh, CMD_SEND, handle, 0, NULL, msg, len);
}

void wzp_relay_shard_close(wzp_relay_shard *sh, uint64_t handle, uint64_t app_code,
                           const char *reason)
{
    reason = reason ? reason : "";
    push_cmd(sh, CMD_CLOSE, handle, app_code, NULL, reason, strlen(reason) + 1);
}

void wzp_relay_shard_close_all(wzp_relay_shard *sh, uint64_t app_code, const char *reason)
{
    reason = reason ? reason : "";
    push_cmd(sh, CMD_CLOSE_ALL, 0, app_code, NULL, reason, strlen(reason) + 1);
}

void wzp_relay_shard_packet(wzp_relay_shard *sh, const wzp_addr *from, const uint8_t *data,
                            size_t len)
{
    push_cmd(sh, CMD_PACKET, 0, 0, from, data, len);
}

/* --- lifetime ----------------------------------------------------------------------------- */

int wzp_relay_shard_new(wzp_relay_shard **out, const wzp_relay_shard_config *cfg)
{
    if (!out || !cfg || !cfg->fwd || !cfg->events || !cfg->total_conns || !cfg->count ||
        cfg->index >= cfg->count)
        return WZP_ERR_INVALID;
    wzp_relay_shard *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return WZP_ERR_NOMEM;
    sh->cfg = *cfg;
    sh->auth_timeout = cfg->auth_timeout ? cfg->auth_timeout : WZP_SEC(10);
    sh->handshaking.sh = sh;
    wzp_hmap_init(&sh->conns);
    sh->cmds.efd = -1;
    wzp_io_init(&sh->pkt_io, on_packets, sh);
    wzp_io_init(&sh->cmd_io, on_cmds, sh);
    wzp_timer_init(&sh->timer, on_timer, sh);
    for (size_t i = 0; i < RX_BATCH; i++)
        sh->msgs[i] = (wzp_udp_msg){.data = sh->rxbuf[i], .cap = sizeof(sh->rxbuf[i])};
    int rv = pthread_mutex_init(&sh->st_mu, NULL) == 0 ? 0 : WZP_ERR_NOMEM;
    if (rv < 0) {
        wzp_hmap_free(&sh->conns);
        free(sh);
        return rv;
    }
    wzp_quic_endpoint_config q = cfg->quic;
    q.server = true;
    q.cb.accept = q_accept;
    q.user = sh;
    q.route_index = cfg->index;
    q.route_count = cfg->count;
    q.route_key = cfg->route_key;
    if ((rv = wzp_mq_init(&sh->cmds)) < 0 || (rv = wzp_quic_endpoint_new(&sh->ep, &q)) < 0)
        goto fail;
    if (cfg->loop) {
        sh->loop = cfg->loop;
    } else {
        if ((rv = wzp_loop_new(&sh->loop)) < 0)
            goto fail;
        sh->own_loop = true;
    }
    if ((rv = wzp_io_start(sh->loop, &sh->pkt_io, wzp_forwarder_ctl_fd(cfg->fwd, cfg->lane),
                           WZP_IO_READ)) < 0 ||
        (rv = wzp_io_start(sh->loop, &sh->cmd_io, wzp_mq_fd(&sh->cmds), WZP_IO_READ)) < 0)
        goto fail;
    wzp_mq_attach(&sh->cmds, sh->loop, &sh->cmd_io);
    *out = sh;
    return 0;
fail:
    wzp_relay_shard_free(sh);
    return rv;
}

static void *shard_main(void *arg)
{
    wzp_relay_shard *sh = arg;
    service(sh);
    wzp_loop_run(sh->loop);
    return NULL;
}

int wzp_relay_shard_start(wzp_relay_shard *sh)
{
    if (sh->started)
        return WZP_ERR_STATE;
    if (!sh->own_loop) {
        sh->started = true;
        service(sh);
        return 0;
    }
    /* Signals are for the control thread (it watches them); the shard inherits this mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&sh->thread, NULL, shard_main, sh);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return WZP_ERR_NOMEM;
    sh->started = true;
    char name[16];
    snprintf(name, sizeof(name), "wzp-quic-%u", sh->cfg.index);
    pthread_setname_np(sh->thread, name);
    return 0;
}

void wzp_relay_shard_stop(wzp_relay_shard *sh)
{
    /* stop_sent, not `stopping`: that one is the shard thread's. */
    if (!sh->started || sh->stop_sent)
        return;
    sh->stop_sent = true;
    if (sh->own_loop) {
        push_cmd(sh, CMD_STOP, 0, 0, NULL, NULL, 0);
        wzp_relay_shard_flush(sh);
    } else {
        shut_down(sh); /* commands still pending are dropped: the loop is ending */
    }
}

void wzp_relay_shard_join(wzp_relay_shard *sh)
{
    if (sh->own_loop && sh->started && !sh->joined) {
        pthread_join(sh->thread, NULL);
        sh->joined = true;
    }
}

void wzp_relay_shard_get_stats(wzp_relay_shard *sh, wzp_relay_shard_stats *out)
{
    pthread_mutex_lock(&sh->st_mu);
    *out = sh->st;
    pthread_mutex_unlock(&sh->st_mu);
}

static void free_node(wzp_mq_node *n)
{
    free(n);
}

void wzp_relay_shard_free(wzp_relay_shard *sh)
{
    if (!sh)
        return;
    if (sh->own_loop && sh->started && !sh->joined) {
        wzp_relay_shard_stop(sh);
        wzp_relay_shard_join(sh);
    }
    if (sh->loop) {
        wzp_timer_stop(sh->loop, &sh->timer);
        if (sh->pkt_io.fd >= 0)
            wzp_io_stop(sh->loop, &sh->pkt_io);
        if (sh->cmd_io.fd >= 0)
            wzp_io_stop(sh->loop, &sh->cmd_io);
    }
    const wzp_hmap_slot *slot;
    for (size_t it = 0; wzp_hmap_next(&sh->conns, &it, &slot);)
        free(slot->value);
    wzp_hmap_free(&sh->conns);
    while (sh->waits.head) {
        auth_wait *w = wait_of(sh->waits.head);
        wait_unlink(sh, w);
        free(w);
    }
    /* Freed without callbacks: the records above are the connections' user data. */
    wzp_quic_endpoint_free(sh->ep);
    wzp_relay_shard_flush(sh);
    for (wzp_mq_node *n = sh->ev_first, *next; n; n = next) {
        next = n->next;
        free(n);
    }
    if (sh->published_conns)
        atomic_fetch_sub_explicit(sh->cfg.total_conns, sh->published_conns, memory_order_relaxed);
    wzp_mq_destroy(&sh->cmds, free_node);
    if (sh->own_loop)
        wzp_loop_free(sh->loop);
    pthread_mutex_destroy(&sh->st_mu);
    free(sh);
}
