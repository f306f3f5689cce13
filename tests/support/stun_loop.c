#include "support/stun_loop.h"

#include <string.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "net/clock.h"
#include "net/udp.h"
#include "wire/stun_server.h"

static void on_request(wzp_loop *loop, wzp_io *io, unsigned events)
{
    stun_responder *r = io->arg;
    uint8_t in[8][1500], out[8][WZP_STUN_RESPONSE_MAX];
    wzp_udp_msg msgs[8], replies[8];
    for (size_t i = 0; i < 8; i++)
        msgs[i] = (wzp_udp_msg){.data = in[i], .cap = sizeof(in[i])};
    int n = wzp_udp_recv_batch(io->fd, msgs, 8);
    size_t nr = 0;
    for (int i = 0; i < n; i++) {
        int len =
            wzp_stun_respond(msgs[i].data, msgs[i].len, &msgs[i].peer, out[nr], sizeof(out[nr]));
        if (len <= 0)
            continue;
        r->answered++;
        r->last_from = msgs[i].peer;
        replies[nr] = (wzp_udp_msg){.data = out[nr], .len = (size_t)len, .peer = msgs[i].peer};
        nr++;
    }
    if (nr)
        wzp_udp_send_batch(io->fd, replies, nr);
}

int stun_responder_open(wzp_loop *loop, stun_responder *r, const char *bind)
{
    memset(r, 0, sizeof(*r));
    wzp_addr a;
    if (wzp_addr_parse(&a, bind, false) < 0)
        return WZP_ERR_INVALID;
    r->fd = wzp_udp_open(&a, NULL, &r->addr);
    if (r->fd < 0)
        return r->fd;
    wzp_io_init(&r->io, on_request, r);
    return wzp_io_start(loop, &r->io, r->fd, WZP_IO_READ);
}

void stun_responder_close(wzp_loop *loop, stun_responder *r)
{
    wzp_io_stop(loop, &r->io);
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

typedef struct driver {
    int fd;
    wzp_stun_txn *txns;
    size_t n;
    wzp_io io;
    wzp_timer timer, limit;
    bool timed_out;
} driver;

/* Sends whatever is due, then sleeps until the next deadline or stops when all are done. */
static void service(wzp_loop *loop, driver *d)
{
    wzp_ts now = wzp_now(), next = WZP_TS_NEVER;
    for (size_t i = 0; i < d->n; i++) {
        uint8_t buf[WZP_STUN_REQ_MAX];
        wzp_addr to;
        int len;
        while ((len = wzp_stun_txn_poll(&d->txns[i], now, buf, sizeof(buf), &to)) > 0)
            wzp_udp_send(d->fd, &to, buf, (size_t)len);
        next = wzp_ts_min(next, wzp_stun_txn_deadline(&d->txns[i]));
    }
    if (next == WZP_TS_NEVER)
        wzp_loop_stop(loop);
    else
        wzp_timer_start(loop, &d->timer, next);
}

static void on_due(wzp_loop *loop, wzp_timer *t)
{
    service(loop, t->arg);
}

static void on_limit(wzp_loop *loop, wzp_timer *t)
{
    driver *d = t->arg;
    d->timed_out = true;
    wzp_loop_stop(loop);
}

static void on_response(wzp_loop *loop, wzp_io *io, unsigned events)
{
    driver *d = io->arg;
    uint8_t in[8][1500];
    wzp_udp_msg msgs[8];
    for (size_t i = 0; i < 8; i++)
        msgs[i] = (wzp_udp_msg){.data = in[i], .cap = sizeof(in[i])};
    int n = wzp_udp_recv_batch(io->fd, msgs, 8);
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < d->n; k++)
            if (wzp_stun_txn_recv(&d->txns[k], &msgs[i].peer, msgs[i].data, msgs[i].len,
                                  wzp_now()) != WZP_ERR_NOT_FOUND)
                break;
    service(loop, d);
}

int stun_loop_run_txns(wzp_loop *loop, int fd, wzp_stun_txn *txns, size_t n, wzp_ts limit)
{
    driver d = {.fd = fd, .txns = txns, .n = n};
    wzp_io_init(&d.io, on_response, &d);
    wzp_timer_init(&d.timer, on_due, &d);
    wzp_timer_init(&d.limit, on_limit, &d);
    int rv = wzp_io_start(loop, &d.io, fd, WZP_IO_READ);
    if (rv < 0)
        return rv;
    wzp_timer_start(loop, &d.limit, wzp_now() + limit);
    wzp_timer_start(loop, &d.timer, 0);
    rv = wzp_loop_run(loop);
    wzp_io_stop(loop, &d.io);
    wzp_timer_stop(loop, &d.timer);
    wzp_timer_stop(loop, &d.limit);
    if (rv < 0)
        return rv;
    return d.timed_out ? WZP_ERR_TIMEOUT : 0;
}

int stun_free_udp_port(const char *ip)
{
    wzp_addr a, bound;
    if (wzp_addr_parse(&a, ip, true) < 0)
        return WZP_ERR_INVALID;
    wzp_addr_set_port(&a, 0);
    int fd = wzp_udp_open(&a, NULL, &bound);
    if (fd < 0)
        return fd;
    close(fd);
    return wzp_addr_port(&bound);
}
