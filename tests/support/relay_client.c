#include "support/relay_client.h"

#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "net/clock.h"
#include "net/udp.h"
#include "wire/demux.h"
#include "wire/relay_frame.h"

/* ---- the relay in a thread ---------------------------------------------------- */

static void *relay_main(void *arg)
{
    relay_thread *rt = arg;
    rt->run_rv = wzp_relay_server_run(rt->srv, false);
    return NULL;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int launch(relay_thread *rt)
{
    int rv = wzp_relay_server_new(&rt->srv, &rt->cfg);
    if (rv < 0)
        return rv;
    rt->addr = *wzp_relay_server_addr(rt->srv);
    wzp_relay_server_fingerprint(rt->srv, rt->fp);
    if (pthread_create(&rt->thread, NULL, relay_main, rt) != 0) {
        wzp_relay_server_free(rt->srv);
        rt->srv = NULL;
        return WZP_ERR_NOMEM;
    }
    rt->running = true;
    return 0;
}

int relay_thread_start(relay_thread *rt, const wzp_relay_server_config *cfg)
{
    memset(rt, 0, sizeof(*rt));
    wzp_relay_server_config c;
    if (cfg) {
        c = *cfg;
    } else {
        wzp_relay_server_config_default(&c);
        c.workers = 2;
    }
    snprintf(rt->home, sizeof(rt->home), "/tmp/wzp-relaytest-XXXXXX");
    if (!mkdtemp(rt->home))
        return WZP_ERR_IO;
    c.home = rt->home;
    wzp_addr_parse(&c.listen, "127.0.0.1:0", false);
    /* ctest runs relay suites both ways: the control thread alone, and sharded. */
    const char *shards = getenv("WZP_TEST_RELAY_SHARDS");
    if (shards)
        c.control_shards = (unsigned)atoi(shards);
    rt->cfg = c;
    int rv = launch(rt);
    if (rv < 0)
        remove_dir(rt->home);
    return rv;
}

void relay_thread_halt(relay_thread *rt)
{
    if (rt->running) {
        wzp_relay_server_stop(rt->srv);
        pthread_join(rt->thread, NULL);
        rt->running = false;
    }
    wzp_relay_server_free(rt->srv);
    rt->srv = NULL;
}

int relay_thread_restart(relay_thread *rt)
{
    relay_thread_halt(rt);
    rt->cfg.home = rt->home;
    rt->cfg.listen = rt->addr; /* same port: clients come back to where they were */
    return launch(rt);
}

void relay_thread_stop(relay_thread *rt)
{
    relay_thread_halt(rt);
    remove_dir(rt->home);
}

/* ---- the test client ------------------------------------------------------------- */

static void c_send(void *user, const wzp_addr *local, const wzp_addr *remote, const uint8_t *pkt,
                   size_t len)
{
    relay_client *c = user;
    (void)local;
    /* Whatever address QUIC believes it uses, packets leave from the current socket. */
    wzp_udp_send(c->fd, remote, pkt, len);
}

static void q_established(void *user, wzp_quic_conn *conn, const uint8_t fp[WZP_FINGERPRINT_LEN],
                          wzp_ts now)
{
    relay_client *c = user;
    c->established++;
    memcpy(c->relay_fp_seen, fp, WZP_FINGERPRINT_LEN);
    if (c->opts.anonymous) {
        wzp_sig_init(&c->auth, WZP_SIG_AUTH, 0);
        if (wzp_quic_conn_auth_proof(conn, c->auth.u.auth.key, &c->auth.u.auth.key_len,
                                     c->auth.u.auth.sig, &c->auth.u.auth.sig_len) < 0)
            c->auth.type = WZP_SIG_NONE;
        const wzp_sig_msg *first = c->opts.first_msg ? c->opts.first_msg : &c->auth;
        if (first->type != WZP_SIG_NONE)
            relay_client_send_sig(c, first);
    }
    if (c->opts.auto_register)
        wzp_sigc_register(c->sigc, c->opts.alias, now);
}

static void q_message(void *user, wzp_quic_conn *conn, const uint8_t *data, size_t len, wzp_ts now)
{
    relay_client *c = user;
    (void)conn;
    if (c->nrx_msgs < sizeof(c->rx_msgs) / sizeof(c->rx_msgs[0])) {
        wzp_sig_msg m;
        c->rx_msgs[c->nrx_msgs++] = wzp_sig_decode(data, len, &m) == 0 ? m.type : WZP_SIG_NONE;
    }
    wzp_sigc_on_message(c->sigc, data, len, now);
}

static void q_datagram(void *user, wzp_quic_conn *conn, const uint8_t *data, size_t len, wzp_ts now)
{
    (void)user;
    (void)conn;
    (void)data;
    (void)len;
}

static void q_closed(void *user, wzp_quic_conn *conn, const wzp_quic_close_info *info, wzp_ts now)
{
    relay_client *c = user;
    (void)conn;
    c->closed++;
    c->close_err = info->error;
    c->close_by_peer = info->by_peer;
    c->close_app = info->app_code;
    snprintf(c->close_detail, sizeof(c->close_detail), "%s", info->detail ? info->detail : "");
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", info->reason ? info->reason : "");
    if (getenv("WZP_TEST_DEBUG"))
        fprintf(stderr, "relay_client %p: closed error=%d by_peer=%d app=%llu detail=%s\n",
                (void *)c, info->error, info->by_peer, (unsigned long long)info->app_code,
                c->close_detail);
    c->conn = NULL;
    wzp_sigc_on_disconnect(c->sigc, now);
}

static const wzp_quic_conn_callbacks client_cb = {
    .established = q_established,
    .datagram = q_datagram,
    .message = q_message,
    .closed = q_closed,
};

static void sig_send(void *user, const uint8_t *msg, size_t len)
{
    relay_client *c = user;
    if (c->conn)
        wzp_quic_conn_send_message(c->conn, msg, len);
}

static void sig_event(void *user, const wzp_sigc_event *ev)
{
    relay_client *c = user;
    if (c->nev >= RC_MAX_EVENTS)
        return;
    rc_event *e = &c->ev[c->nev++];
    memset(e, 0, sizeof(*e));
    e->type = ev->type;
    e->call = ev->call;
    if (ev->call_id) {
        e->has_call_id = true;
        memcpy(e->call_id, ev->call_id, WZP_SIG_CALL_ID_LEN);
    }
    e->err = ev->err;
    e->reason = ev->reason;
    if (ev->msg) {
        e->has_msg = true;
        e->msg = *ev->msg;
    }
}

int relay_client_start(relay_client *c, const wzp_identity *id, const wzp_addr *relay,
                       const uint8_t relay_fp[WZP_FINGERPRINT_LEN], const relay_client_opts *opts)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->id = id;
    wzp_identity_fingerprint(id, c->fp);
    if (opts)
        c->opts = *opts;
    c->relay = *relay;
    wzp_addr bind;
    wzp_addr_parse(&bind, "127.0.0.1:0", false);
    c->fd = wzp_udp_open(&bind, NULL, &c->sock_addr);
    if (c->fd < 0)
        return c->fd;
    c->quic_local = c->sock_addr;
    wzp_quic_endpoint_config qcfg;
    wzp_quic_endpoint_config_default(&qcfg); /* a client endpoint: no accept */
    qcfg.id = id;
    qcfg.user = c;
    int rv = wzp_quic_endpoint_new(&c->ep, &qcfg);
    if (rv < 0)
        goto fail;
    wzp_sigc_config scfg;
    wzp_sigc_config_default(&scfg);
    scfg.cb = (wzp_sigc_callbacks){.send = sig_send, .event = sig_event};
    scfg.user = c;
    if ((rv = wzp_sigc_new(&c->sigc, &scfg)) < 0)
        goto fail;
    if (c->opts.before_connect)
        c->opts.before_connect(c->ep, c->opts.before_connect_arg);
    wzp_quic_conn_config o;
    wzp_quic_conn_config_default(&o);
    o.pin_mode = c->opts.pin_mode;
    memcpy(o.pin, relay_fp, WZP_FINGERPRINT_LEN);
    o.initial_rtt = WZP_MS(10);
    o.keep_alive = c->opts.keep_alive;
    o.idle_timeout = c->opts.idle_timeout;
    o.max_message = WZP_SIG_MAX_SIZE;
    o.anonymous = c->opts.anonymous;
    o.cb = client_cb;
    o.user = c;
    if ((rv = wzp_quic_connect(c->ep, &c->quic_local, relay, &o, wzp_now(), &c->conn)) < 0)
        goto fail;
    return 0;
fail:
    relay_client_free(c);
    return rv;
}

void relay_client_free(relay_client *c)
{
    /* The endpoint frees its connections without callbacks. */
    wzp_quic_endpoint_free(c->ep);
    c->ep = NULL;
    c->conn = NULL;
    wzp_sigc_free(c->sigc);
    c->sigc = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void relay_client_close(relay_client *c, uint64_t app_code)
{
    if (c->conn)
        wzp_quic_conn_close(c->conn, app_code, "test client leaving");
    wzp_quic_endpoint_flush(c->ep, wzp_now(), c_send, c);
}

static void on_datagram(relay_client *c, const wzp_udp_msg *m, wzp_ts now)
{
    if (wzp_pkt_classify(m->data, m->len) == WZP_PKT_QUIC) {
        wzp_quic_endpoint_feed(c->ep, &c->quic_local, &m->peer, m->data, m->len, now, NULL);
        return;
    }
    c->rx_other++;
    c->rx_other_bytes += m->len;
    if (c->nframes < RC_MAX_FRAMES) {
        rc_frame *f = &c->frames[c->nframes++];
        f->from = m->peer;
        f->len = m->len;
        memcpy(f->data, m->data, m->len < RC_FRAME_MAX ? m->len : RC_FRAME_MAX);
    }
}

static void service(relay_client *c, wzp_ts now)
{
    if (!c->ep)
        return;
    if (wzp_quic_endpoint_expiry(c->ep) <= now)
        wzp_quic_endpoint_handle_expiry(c->ep, now);
    if (wzp_sigc_next_deadline(c->sigc) <= now)
        wzp_sigc_handle_timer(c->sigc, now);
    wzp_quic_endpoint_flush(c->ep, now, c_send, c);
}

bool relay_client_pump(relay_client **cs, size_t n, wzp_ts budget, bool (*done)(void *), void *arg)
{
    enum { MAXC = 16 };
    wzp_ts end = wzp_now() + budget;
    uint8_t bufs[16][2048];
    wzp_udp_msg msgs[16];
    if (n > MAXC)
        n = MAXC;
    for (;;) {
        wzp_ts now = wzp_now();
        for (size_t i = 0; i < n; i++)
            service(cs[i], now);
        if (done && done(arg))
            return true;
        if (now >= end)
            return false;
        wzp_ts next = end;
        for (size_t i = 0; i < n; i++) {
            if (!cs[i]->ep)
                continue;
            next = wzp_ts_min(next, wzp_quic_endpoint_expiry(cs[i]->ep));
            next = wzp_ts_min(next, wzp_sigc_next_deadline(cs[i]->sigc));
        }
        /* Wake at least every 50 ms so done() sees changes made elsewhere (the relay thread). */
        next = wzp_ts_min(next, now + WZP_MS(50));
        int timeout = next <= now ? 0 : (int)((next - now + 999999) / 1000000);
        struct pollfd pfd[MAXC];
        for (size_t i = 0; i < n; i++)
            pfd[i] = (struct pollfd){.fd = cs[i]->ep ? cs[i]->fd : -1, .events = POLLIN};
        poll(pfd, (nfds_t)n, timeout);
        now = wzp_now();
        for (size_t i = 0; i < n; i++) {
            if (!(pfd[i].revents & POLLIN) || !cs[i]->ep)
                continue;
            for (size_t k = 0; k < 16; k++)
                msgs[k] = (wzp_udp_msg){.data = bufs[k], .cap = sizeof(bufs[k])};
            int got = wzp_udp_recv_batch(cs[i]->fd, msgs, 16);
            for (int k = 0; k < got; k++)
                if (msgs[k].len)
                    on_datagram(cs[i], &msgs[k], now);
        }
    }
}

int relay_client_rebind(relay_client *c, bool tell_quic)
{
    wzp_addr bind, bound;
    wzp_addr_parse(&bind, "127.0.0.1:0", false);
    int fd = wzp_udp_open(&bind, NULL, &bound);
    if (fd < 0)
        return fd;
    close(c->fd);
    c->fd = fd;
    c->sock_addr = bound;
    if (tell_quic) {
        c->quic_local = bound;
        if (c->conn)
            return wzp_quic_conn_set_local_addr(c->conn, &bound);
    }
    return 0;
}

int relay_client_send_raw(relay_client *c, const uint8_t *data, size_t len)
{
    c->tx_raw++;
    c->tx_raw_bytes += len;
    return wzp_udp_send(c->fd, &c->relay, data, len);
}

int relay_client_send_frame(relay_client *c, uint8_t type, uint32_t chan, const uint8_t *payload,
                            size_t len)
{
    uint8_t buf[2048];
    int n = wzp_relay_frame_encode(buf, sizeof(buf), type, chan, payload, len);
    if (n < 0)
        return n;
    return relay_client_send_raw(c, buf, (size_t)n);
}

int relay_client_send_sig(relay_client *c, const wzp_sig_msg *m)
{
    uint8_t buf[WZP_SIG_MAX_SIZE];
    int n = wzp_sig_encode(m, buf, sizeof(buf));
    if (n < 0)
        return n;
    if (!c->conn)
        return WZP_ERR_CLOSED;
    return wzp_quic_conn_send_message(c->conn, buf, (size_t)n);
}

size_t relay_client_count(const relay_client *c, wzp_sigc_event_type type)
{
    size_t k = 0;
    for (size_t i = 0; i < c->nev; i++)
        k += c->ev[i].type == type;
    return k;
}

const rc_event *relay_client_last(const relay_client *c, wzp_sigc_event_type type)
{
    for (size_t i = c->nev; i-- > 0;)
        if (c->ev[i].type == type)
            return &c->ev[i];
    return NULL;
}

size_t relay_client_errors(const relay_client *c, wzp_sig_err code)
{
    size_t k = 0;
    for (size_t i = 0; i < c->nev; i++)
        k += c->ev[i].type == WZP_SIGC_EV_ERROR && c->ev[i].has_msg &&
             c->ev[i].msg.type == WZP_SIG_ERROR && c->ev[i].msg.u.error.code == code;
    return k;
}
