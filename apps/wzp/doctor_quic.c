#include "doctor_quic.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "net/clock.h"
#include "net/udp.h"
#include "quic/quic.h"

typedef struct run {
    doctor_quic *out;
    int fd;
    wzp_ts start;
    bool done;
} run;

static void on_established(void *user, wzp_quic_conn *c, const uint8_t fp[WZP_FINGERPRINT_LEN],
                           wzp_ts now)
{
    run *r = user;
    r->out->ok = true;
    r->out->handshake = now - r->start;
    wzp_fingerprint_format(fp, r->out->fp, sizeof(r->out->fp));
    r->done = true;
    wzp_quic_conn_close(c, 0, "wzp doctor");
}

static void on_closed(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info, wzp_ts now)
{
    run *r = user;
    if (!r->out->ok) {
        r->out->pin_mismatch = info->error == WZP_ERR_PIN_MISMATCH;
        snprintf(r->out->detail, sizeof(r->out->detail), "%s%s%s",
                 info->error ? wzp_strerror(info->error) : "closed by the relay",
                 info->detail && info->detail[0] ? ": " : "", info->detail ? info->detail : "");
    }
    r->done = true;
}

static void send_pkt(void *user, const wzp_addr *local, const wzp_addr *remote, const uint8_t *pkt,
                     size_t len)
{
    run *r = user;
    wzp_udp_send(r->fd, remote, pkt, len); /* a lost packet is QUIC's to retransmit */
}

void doctor_quic_check(doctor_quic *out, const wzp_addr *relay, const uint8_t *pin, wzp_ts timeout)
{
    memset(out, 0, sizeof(*out));
    out->tried = true;
    wzp_identity *id = NULL;
    wzp_quic_endpoint *ep = NULL;
    run r = {.out = out, .fd = -1};
    wzp_addr any, local;
    wzp_addr_parse(&any, wzp_addr_family(relay) == AF_INET6 ? "[::]:0" : "0.0.0.0:0", false);
    wzp_quic_endpoint_config ecfg;
    wzp_quic_endpoint_config_default(&ecfg);
    int rv = wzp_identity_generate(&id);
    if (rv == 0) {
        ecfg.id = id;
        rv = wzp_quic_endpoint_new(&ep, &ecfg);
    }
    if (rv == 0 && (r.fd = wzp_udp_open(&any, NULL, &local)) < 0)
        rv = r.fd;
    wzp_quic_conn_config opts;
    wzp_quic_conn_config_default(&opts);
    opts.pin_mode = pin ? WZP_QUIC_PIN_EXACT : WZP_QUIC_PIN_ANY;
    if (pin)
        memcpy(opts.pin, pin, WZP_FINGERPRINT_LEN);
    opts.handshake_timeout = timeout;
    opts.cb.established = on_established;
    opts.cb.closed = on_closed;
    opts.user = &r;
    r.start = wzp_now();
    wzp_quic_conn *c;
    if (rv == 0)
        rv = wzp_quic_connect(ep, &local, relay, &opts, r.start, &c);
    if (rv < 0) {
        snprintf(out->detail, sizeof(out->detail), "cannot start: %s", wzp_strerror(rv));
        r.done = true;
    }
    wzp_ts end = r.start + timeout;
    uint8_t buf[2048];
    /* Until the handshake ends, then until our CONNECTION_CLOSE is out. */
    while (ep && wzp_now() < end && (!r.done || wzp_quic_endpoint_conn_count(ep))) {
        wzp_ts now = wzp_now();
        if (wzp_quic_endpoint_expiry(ep) <= now)
            wzp_quic_endpoint_handle_expiry(ep, now);
        wzp_quic_endpoint_flush(ep, now, send_pkt, &r);
        if (r.done)
            break; /* the close went out with this flush */
        wzp_ts next = wzp_ts_min(wzp_quic_endpoint_expiry(ep), end);
        int wait = next > now ? (int)((next - now + WZP_MS(1) - 1) / WZP_MS(1)) : 0;
        struct pollfd pfd = {.fd = r.fd, .events = POLLIN};
        if (poll(&pfd, 1, wait) <= 0)
            continue;
        wzp_udp_msg m = {.data = buf, .cap = sizeof(buf)};
        while (wzp_udp_recv_batch(r.fd, &m, 1) == 1)
            if (m.len)
                wzp_quic_endpoint_feed(ep, &local, &m.peer, m.data, m.len, wzp_now(), NULL);
    }
    if (!r.done)
        snprintf(out->detail, sizeof(out->detail), "no QUIC handshake within %.0f s",
                 (double)timeout / 1e9);
    wzp_quic_endpoint_free(ep);
    if (r.fd >= 0)
        close(r.fd);
    wzp_identity_free(id);
}
