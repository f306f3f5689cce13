#include "client/relay_path.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/hostport.h"
#include "common/log.h"
#include "common/rand.h"
#include "net/clock.h"
#include "net/tcp.h"
#include "net/tcp_link.h"
#include "net/udp.h"
#include "wire/demux.h"
#include "wire/park_frame.h"
#include "wire/relay_frame.h"
#include "wire/stun.h"

struct wzp_relay_path {
    wzp_relay_path_config cfg;
    wzp_rtx rtx;
    gnutls_certificate_credentials_t cred;
    wzp_tcp_link *link;
    wzp_addr target; /* the relay (UDP) address the link serves */
    wzp_io io;
    unsigned events;
    bool was_up;
    bool delivered;                      /* the link delivered datagrams since the last service */
    uint8_t check_tid[WZP_STUN_TID_LEN]; /* the latest UDP check's transaction id */
};

static void link_close(wzp_relay_path *p, const char *why, wzp_ts now)
{
    if (!p->link)
        return;
    WZP_INFO("client: relay TCP link closed: %s", why);
    wzp_io_stop(p->cfg.loop, &p->io);
    wzp_tcp_link_free(p->link);
    p->link = NULL;
    p->was_up = false;
    wzp_rtx_on_tcp_down(&p->rtx, now);
}

static void link_deliver(void *user, const uint8_t *rec, size_t len)
{
    wzp_relay_path *p = user;
    p->delivered = true;
    /* The clock now, not the loop iteration's: QUIC must never see time go backwards. */
    p->cfg.deliver(p->cfg.user, &p->target, rec, len, wzp_now());
}

/* Runs the link; re-arms its watcher. */
static void link_run(wzp_relay_path *p, wzp_ts now)
{
    if (!p->link)
        return;
    int rc = wzp_tcp_link_io(p->link, link_deliver, p);
    if (rc < 0) {
        if (rc == WZP_ERR_PIN_MISMATCH && p->cfg.mode == WZP_RELAY_TRANSPORT_TCP &&
            p->cfg.pin_failed)
            p->cfg.pin_failed(p->cfg.user, wzp_tcp_link_error(p->link), now);
        else if (rc == WZP_ERR_PIN_MISMATCH) /* maybe another service on that port: UDP may work */
            WZP_INFO("client: relay TCP service: %s", wzp_tcp_link_error(p->link));
        link_close(p, wzp_tcp_link_error(p->link), now);
        return;
    }
    if (!p->was_up && wzp_tcp_link_up(p->link)) {
        p->was_up = true;
        WZP_INFO("client: relay TCP link up (port %u)",
                 p->cfg.tcp_port ? p->cfg.tcp_port : WZP_DEFAULT_RELAY_TCP_PORT);
        wzp_rtx_on_tcp_up(&p->rtx, now);
    }
    unsigned ev = wzp_tcp_link_events(p->link);
    if (ev != p->events && wzp_io_modify(p->cfg.loop, &p->io, ev) == 0)
        p->events = ev;
}

static void on_link(wzp_loop *loop, wzp_io *io, unsigned events)
{
    wzp_relay_path *p = io->arg;
    (void)loop;
    (void)events;
    p->cfg.wake(p->cfg.user); /* the owner's service runs the link */
}

static void link_open(wzp_relay_path *p, const wzp_addr *relay,
                      const uint8_t pin[WZP_FINGERPRINT_LEN], wzp_ts now)
{
    wzp_addr to = *relay;
    wzp_addr_set_port(&to, p->cfg.tcp_port ? p->cfg.tcp_port : WZP_DEFAULT_RELAY_TCP_PORT);
    wzp_rtx_on_tcp_connecting(&p->rtx, now);
    int fd = wzp_tcp_connect(&to);
    if (fd < 0) {
        wzp_rtx_on_tcp_down(&p->rtx, now);
        return;
    }
    wzp_tcp_link_tune(fd);
    wzp_tcp_link_config lc = {.fd = fd, .server = false, .cred = p->cred};
    memcpy(lc.pin, pin, sizeof(lc.pin));
    if (wzp_tcp_link_new(&p->link, &lc) < 0) {
        p->link = NULL;
        wzp_rtx_on_tcp_down(&p->rtx, now);
        return;
    }
    p->target = *relay;
    p->events = wzp_tcp_link_events(p->link);
    wzp_io_init(&p->io, on_link, p);
    if (wzp_io_start(p->cfg.loop, &p->io, fd, p->events) < 0) {
        wzp_tcp_link_free(p->link);
        p->link = NULL;
        wzp_rtx_on_tcp_down(&p->rtx, now);
    }
}

int wzp_relay_path_new(wzp_relay_path **out, const wzp_relay_path_config *cfg)
{
    if (!out || !cfg || !cfg->loop || !cfg->deliver || !cfg->wake)
        return WZP_ERR_INVALID;
    wzp_relay_path *p = calloc(1, sizeof(*p));
    if (!p)
        return WZP_ERR_NOMEM;
    p->cfg = *cfg;
    if (gnutls_certificate_allocate_credentials(&p->cred) != 0) {
        free(p);
        return WZP_ERR_NOMEM;
    }
    wzp_rtx_init(&p->rtx, cfg->mode, wzp_now());
    *out = p;
    return 0;
}

void wzp_relay_path_free(wzp_relay_path *p)
{
    if (!p)
        return;
    if (p->link) {
        wzp_io_stop(p->cfg.loop, &p->io);
        wzp_tcp_link_free(p->link);
    }
    gnutls_certificate_free_credentials(p->cred);
    free(p);
}

/* Datagrams the relay answers: QUIC (ACKs), channel keep-alives and a parked client's pings
 * (PONG; else each ping, sent to a relay quiet for seconds, would draw a STUN check). */
static bool answerable(const uint8_t *pkt, size_t len)
{
    switch (wzp_pkt_classify(pkt, len)) {
    case WZP_PKT_QUIC:
        return true;
    case WZP_PKT_RELAY:
        return pkt[0] == WZP_RELAY_FRAME_KEEPALIVE || pkt[0] == WZP_PARK_FRAME_PING;
    default:
        return false;
    }
}

void wzp_relay_path_send(wzp_relay_path *p, int fd, const wzp_addr *relay, const uint8_t *pkt,
                         size_t len, wzp_ts now)
{
    if (p->rtx.via_tcp) {
        if (p->link && wzp_tcp_link_up(p->link) && wzp_addr_equal(&p->target, relay)) {
            wzp_tcp_link_send(p->link, pkt, len); /* written by the next service */
        }
        return; /* no link yet: QUIC retransmits */
    }
    if (fd >= 0 && wzp_udp_send(fd, relay, pkt, len) == 0)
        wzp_rtx_on_udp_sent(&p->rtx, answerable(pkt, len), now);
}

bool wzp_relay_path_on_udp_rx(wzp_relay_path *p, const uint8_t *pkt, size_t len, wzp_ts now)
{
    wzp_pkt_class kind = wzp_pkt_classify(pkt, len);
    wzp_rtx_on_udp_rx(&p->rtx, kind == WZP_PKT_RELAY && pkt[0] == WZP_RELAY_FRAME_DATA, now);
    /* Our checks' answers; the core learns its reflexive address from signaling. */
    return kind == WZP_PKT_STUN && len >= WZP_STUN_HEADER_LEN &&
           memcmp(pkt + 8, p->check_tid, WZP_STUN_TID_LEN) == 0;
}

bool wzp_relay_path_service(wzp_relay_path *p, int fd, const wzp_addr *relay,
                            const uint8_t pin[WZP_FINGERPRINT_LEN], wzp_ts now)
{
    p->delivered = false;
    link_run(p, now); /* writes what was queued (and reads) */
    wzp_rtx_update(&p->rtx, now);
    if (p->link && !wzp_addr_equal(&p->target, relay))
        link_close(p, "the relay address changed", now);
    if (p->link && wzp_rtx_tcp_close_due(&p->rtx, now))
        link_close(p, "UDP works", now);
    if (!p->link && wzp_rtx_tcp_open_due(&p->rtx, now))
        link_open(p, relay, pin, now);
    if (fd >= 0 && wzp_rtx_check_due(&p->rtx, now)) {
        uint8_t buf[64];
        wzp_stun_wr sw;
        wzp_random(p->check_tid, sizeof(p->check_tid));
        wzp_stun_begin(&sw, buf, sizeof(buf), WZP_STUN_BINDING_REQUEST, p->check_tid);
        int n = wzp_stun_finish(&sw, false);
        if (n > 0)
            wzp_udp_send(fd, relay, buf, (size_t)n);
        wzp_rtx_check_sent(&p->rtx, now);
    }
    return p->delivered;
}

wzp_ts wzp_relay_path_deadline(const wzp_relay_path *p)
{
    return wzp_rtx_deadline(&p->rtx);
}

bool wzp_relay_path_via_tcp(const wzp_relay_path *p)
{
    return p->rtx.via_tcp;
}

unsigned wzp_relay_path_switches(const wzp_relay_path *p)
{
    return p->rtx.switches;
}
