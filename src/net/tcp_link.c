#include "net/tcp_link.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "net/loop.h"
#include "quic/identity_tls.h"
#include "wire/tcp_frame.h"

/* Compatibility mode stays on: over TCP it helps middleboxes, as for HTTPS. */
#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3"
/* Largest TLS record's plaintext: queued records are sent in chunks of at most this. */
#define CHUNK    16384
#define RX_CHUNK 16384

typedef enum { L_CONNECTING, L_HANDSHAKE, L_UP, L_DEAD } link_state;

struct wzp_tcp_link {
    int fd;
    bool server;
    link_state state;
    gnutls_session_t tls;
    uint8_t pin[WZP_FINGERPRINT_LEN];
    bool tls_pending; /* GnuTLS holds an encrypted chunk the socket did not take yet */
    bool want_write;  /* the handshake waits for the socket to take data */
    /* Send queue: stream bytes (records with headers) at q[head..head+len). */
    uint8_t *q;
    size_t cap, head, len;
    wzp_tcp_deframer rx;
    wzp_tcp_link_stats stats;
    char error[256];
};

void wzp_tcp_link_tune(int fd)
{
    int one = 1, lowat = 4096, sndbuf = 64 * 1024;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef TCP_NOTSENT_LOWAT
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
#else
    (void)lowat;
#endif
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
}

static int fail(wzp_tcp_link *l, int err, const char *fmt, const char *arg)
{
    if (l->state != L_DEAD)
        snprintf(l->error, sizeof(l->error), fmt, arg);
    l->state = L_DEAD;
    return err;
}

static ssize_t push_nosignal(gnutls_transport_ptr_t fd, const void *data, size_t len)
{
    return send((int)(intptr_t)fd, data, len, MSG_NOSIGNAL);
}

/* The client's check of the relay's certificate: the pinned key, nothing else. */
static int verify_relay(gnutls_session_t s)
{
    wzp_tcp_link *l = gnutls_session_get_ptr(s);
    gnutls_datum_t proto;
    if (gnutls_alpn_get_selected_protocol(s, &proto) != 0 || proto.size != strlen(WZP_TCP_ALPN) ||
        memcmp(proto.data, WZP_TCP_ALPN, proto.size) != 0) {
        snprintf(l->error, sizeof(l->error), "ALPN %s not negotiated", WZP_TCP_ALPN);
        return -1;
    }
    if (l->server)
        return 0;
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    uint8_t fp[WZP_FINGERPRINT_LEN];
    if (!certs || n == 0 || wzp_fingerprint_of_cert_der(certs[0].data, certs[0].size, fp) != 0) {
        snprintf(l->error, sizeof(l->error), "relay presented no usable certificate");
        return -1;
    }
    if (memcmp(fp, l->pin, sizeof(fp)) != 0) {
        char want[WZP_FINGERPRINT_STRLEN], got[WZP_FINGERPRINT_STRLEN];
        wzp_fingerprint_format(l->pin, want, sizeof(want));
        wzp_fingerprint_format(fp, got, sizeof(got));
        snprintf(l->error, sizeof(l->error), "pin mismatch: expected %s, relay presented %s", want,
                 got);
        return -1;
    }
    return 0;
}

int wzp_tcp_link_new(wzp_tcp_link **out, const wzp_tcp_link_config *cfg)
{
    if (!out || !cfg || cfg->fd < 0 || !cfg->cred) {
        if (cfg && cfg->fd >= 0)
            close(cfg->fd);
        return WZP_ERR_INVALID;
    }
    wzp_tcp_link *l = calloc(1, sizeof(*l));
    size_t cap = cfg->queue ? cfg->queue : WZP_TCP_LINK_QUEUE;
    if (cap < WZP_TCP_FRAME_HDR + WZP_TCP_FRAME_MAX)
        cap = WZP_TCP_FRAME_HDR + WZP_TCP_FRAME_MAX;
    uint8_t *q = l ? malloc(cap) : NULL;
    if (!q) {
        free(l);
        close(cfg->fd);
        return WZP_ERR_NOMEM;
    }
    l->fd = cfg->fd;
    l->q = q;
    l->cap = cap;
    l->server = cfg->server;
    l->state = cfg->server ? L_HANDSHAKE : L_CONNECTING;
    memcpy(l->pin, cfg->pin, sizeof(l->pin));
    wzp_tcp_deframer_init(&l->rx);
    const char *errpos = NULL;
    gnutls_datum_t alpn = {(unsigned char *)WZP_TCP_ALPN, (unsigned)strlen(WZP_TCP_ALPN)};
    if (gnutls_init(&l->tls, (cfg->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK) !=
        0) {
        l->tls = NULL;
        wzp_tcp_link_free(l);
        return WZP_ERR_NOMEM;
    }
    if (gnutls_priority_set_direct(l->tls, TLS_PRIORITY, &errpos) != 0 ||
        gnutls_credentials_set(l->tls, GNUTLS_CRD_CERTIFICATE, cfg->cred) != 0 ||
        gnutls_alpn_set_protocols(l->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0) {
        wzp_tcp_link_free(l);
        return WZP_ERR_TLS;
    }
    gnutls_session_set_ptr(l->tls, l);
    gnutls_session_set_verify_function(l->tls, verify_relay);
    gnutls_transport_set_int(l->tls, l->fd);
    /* GnuTLS's own writes would raise SIGPIPE on a reset connection: a library must not. */
    gnutls_transport_set_push_function(l->tls, push_nosignal);
    *out = l;
    return 0;
}

void wzp_tcp_link_free(wzp_tcp_link *l)
{
    if (!l)
        return;
    if (l->tls)
        gnutls_deinit(l->tls);
    if (l->fd >= 0)
        close(l->fd);
    free(l->q);
    free(l);
}

int wzp_tcp_link_fd(const wzp_tcp_link *l)
{
    return l->fd;
}

bool wzp_tcp_link_up(const wzp_tcp_link *l)
{
    return l->state == L_UP;
}

unsigned wzp_tcp_link_events(const wzp_tcp_link *l)
{
    switch (l->state) {
    case L_CONNECTING:
        return WZP_IO_WRITE;
    case L_HANDSHAKE:
        return WZP_IO_READ | (l->want_write ? WZP_IO_WRITE : 0);
    case L_UP:
        return WZP_IO_READ | (l->tls_pending || l->len ? WZP_IO_WRITE : 0);
    default:
        return 0;
    }
}

const char *wzp_tcp_link_error(const wzp_tcp_link *l)
{
    return l->error;
}

void wzp_tcp_link_get_stats(const wzp_tcp_link *l, wzp_tcp_link_stats *out)
{
    *out = l->stats;
}

/* Drops the oldest queued record. */
static void drop_oldest(wzp_tcp_link *l)
{
    size_t rec = WZP_TCP_FRAME_HDR + ((size_t)l->q[l->head] << 8 | l->q[l->head + 1]);
    l->head += rec;
    l->len -= rec;
    l->stats.tx_dropped++;
    if (!l->len)
        l->head = 0;
}

int wzp_tcp_link_send(wzp_tcp_link *l, const uint8_t *data, size_t len)
{
    if (!len || len > WZP_TCP_FRAME_MAX)
        return WZP_ERR_INVALID;
    size_t need = WZP_TCP_FRAME_HDR + len;
    while (l->len + need > l->cap)
        drop_oldest(l);
    if (l->head + l->len + need > l->cap) {
        memmove(l->q, l->q + l->head, l->len);
        l->head = 0;
    }
    uint8_t *p = l->q + l->head + l->len;
    wzp_tcp_frame_header(p, len);
    memcpy(p + WZP_TCP_FRAME_HDR, data, len);
    l->len += need;
    return 0;
}

static int flush(wzp_tcp_link *l)
{
    for (;;) {
        ssize_t rc;
        if (l->tls_pending) {
            rc = gnutls_record_send(l->tls, NULL, 0);
        } else {
            if (!l->len)
                return 0;
            /* Whole records only, up to one TLS record's worth. */
            size_t n = 0;
            unsigned recs = 0;
            while (n < l->len) {
                const uint8_t *h = l->q + l->head + n;
                size_t rec = WZP_TCP_FRAME_HDR + ((size_t)h[0] << 8 | h[1]);
                if (n && n + rec > CHUNK)
                    break;
                n += rec;
                recs++;
            }
            rc = gnutls_record_send(l->tls, l->q + l->head, n);
            /* Less than asked: the peer announced a record size limit under one of our
             * records (RFC 8449). Splitting records is not worth it for such a peer. */
            if (rc >= 0 && (size_t)rc < n)
                return fail(l, WZP_ERR_PROTOCOL, "%s", "peer's TLS record limit is too small");
            if (rc >= 0 || rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
                /* GnuTLS encrypted the chunk (and keeps what the socket did not take). */
                l->head += n;
                l->len -= n;
                if (!l->len)
                    l->head = 0;
                l->stats.tx_records += recs;
            }
        }
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            l->tls_pending = true;
            return 0;
        }
        if (rc < 0)
            return fail(l, WZP_ERR_IO, "send: %s", gnutls_strerror((int)rc));
        l->tls_pending = false;
    }
}

static int receive(wzp_tcp_link *l, wzp_tcp_link_deliver_fn deliver, void *user)
{
    uint8_t buf[RX_CHUNK];
    for (;;) {
        ssize_t n = gnutls_record_recv(l->tls, buf, sizeof(buf));
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            return 0;
        if (n == 0)
            return fail(l, WZP_ERR_CLOSED, "%s closed the connection",
                        l->server ? "client" : "relay");
        if (n < 0)
            return fail(l, WZP_ERR_IO, "receive: %s", gnutls_strerror((int)n));
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used;
            const uint8_t *rec;
            size_t rec_len;
            int r = wzp_tcp_deframe(&l->rx, buf + off, (size_t)n - off, &used, &rec, &rec_len);
            off += used;
            if (r < 0)
                return fail(l, WZP_ERR_MALFORMED, "%s", "malformed record length");
            if (r == 1) {
                l->stats.rx_records++;
                if (deliver)
                    deliver(user, rec, rec_len);
                if (l->state == L_DEAD)
                    return WZP_ERR_CLOSED;
            }
        }
    }
}

int wzp_tcp_link_io(wzp_tcp_link *l, wzp_tcp_link_deliver_fn deliver, void *user)
{
    if (l->state == L_DEAD)
        return WZP_ERR_CLOSED;
    if (l->state == L_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = errno;
        if (err == EINPROGRESS || err == EALREADY)
            return 0;
        if (err)
            return fail(l, WZP_ERR_UNREACHABLE, "connect: %s", strerror(err));
        l->state = L_HANDSHAKE;
    }
    if (l->state == L_HANDSHAKE) {
        int rc = gnutls_handshake(l->tls);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            l->want_write = gnutls_record_get_direction(l->tls) == 1;
            return 0;
        }
        if (rc < 0) {
            if (!l->error[0])
                snprintf(l->error, sizeof(l->error), "TLS handshake: %s", gnutls_strerror(rc));
            l->state = L_DEAD;
            return rc == GNUTLS_E_CERTIFICATE_ERROR || rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
                       ? WZP_ERR_PIN_MISMATCH
                       : WZP_ERR_TLS;
        }
        l->want_write = false;
        l->state = L_UP;
    }
    int rc = receive(l, deliver, user);
    if (rc < 0)
        return rc;
    return flush(l);
}
