/* One QUIC connection: ngtcp2 glue, the message channel, datagrams, closing. */
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rand.h"
#include "quic/quic_int.h"

/* Stream and connection flow-control windows: a few maximum-size messages. */
#define FLOW_WINDOW                       (256 * 1024)
#define TLS_ALERT_BAD_CERTIFICATE         42
#define TLS_ALERT_NO_APPLICATION_PROTOCOL 120

void wzp_quic_conn_config_default(wzp_quic_conn_config *o)
{
    memset(o, 0, sizeof(*o));
    o->pin_mode = WZP_QUIC_PIN_EXACT;
    o->initial_rtt = WZP_MS(100);
    o->idle_timeout = WZP_SEC(30);
    o->handshake_timeout = WZP_SEC(10);
    o->max_message = 64 * 1024;
    o->datagram_queue = 64;
}

static void fill_defaults(wzp_quic_conn_config *o)
{
    wzp_quic_conn_config d;
    wzp_quic_conn_config_default(&d);
    if (!o->initial_rtt)
        o->initial_rtt = d.initial_rtt;
    if (!o->idle_timeout)
        o->idle_timeout = d.idle_timeout;
    if (!o->handshake_timeout)
        o->handshake_timeout = d.handshake_timeout;
    if (!o->max_message)
        o->max_message = d.max_message;
    if (!o->datagram_queue)
        o->datagram_queue = d.datagram_queue;
}

/* --- qlog (debugging, endpoint qlog_dir) ------------------------------------------ */

static void close_qlog(wzp_quic_conn *c)
{
    if (c->qlog)
        fclose(c->qlog);
    c->qlog = NULL;
}

static void qlog_write(void *user, uint32_t flags, const void *data, size_t len)
{
    wzp_quic_conn *c = user;
    /* Records are single lines starting with RS (JSON-SEQ). ngtcp2 0.12 now and then appends
     * the tail of an interrupted packet record, without its start, to another record (seen
     * with stream retransmissions): such lines are left out so the file stays valid. */
    const uint8_t *p = data, *end = p + len;
    while (c->qlog && p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (*p != 0x1e)
            WZP_DEBUG("quic: qlog: left out %zu bytes without a record start", n);
        else if (fwrite(p, 1, n, c->qlog) != n)
            close_qlog(c); /* a full disk ends this connection's trace, nothing else */
        p += n;
    }
    if (flags & NGTCP2_QLOG_WRITE_FLAG_FIN && c->qlog)
        fflush(c->qlog);
}

/* Opens DIR/<role>-<scid>.sqlog for ngtcp2's qlog (JSON-SEQ). A debugging aid: blocking
 * file I/O on the connection's thread, only when asked for. */
static bool open_qlog(wzp_quic_conn *c, const char *dir, const ngtcp2_cid *scid)
{
    char name[4200];
    int n = snprintf(name, sizeof(name), "%s/%s-", dir, c->server ? "server" : "client");
    for (size_t i = 0; i < scid->datalen && n > 0 && (size_t)n + 3 < sizeof(name); i++)
        n += snprintf(name + n, sizeof(name) - (size_t)n, "%02x", scid->data[i]);
    if (n < 0 || (size_t)n + 7 > sizeof(name))
        return false;
    snprintf(name + n, sizeof(name) - (size_t)n, ".sqlog");
    c->qlog = fopen(name, "we");
    if (!c->qlog)
        WZP_WARN("quic: cannot write qlog %s", name);
    else /* whole records reach the file even if the process ends without closing it */
        setvbuf(c->qlog, NULL, _IOLBF, 0);
    return c->qlog != NULL;
}

static ngtcp2_path make_path(const wzp_addr *local, const wzp_addr *remote)
{
    ngtcp2_path p;
    p.local.addr = (ngtcp2_sockaddr *)&local->u.sa;
    p.local.addrlen = local->len;
    p.remote.addr = (ngtcp2_sockaddr *)&remote->u.sa;
    p.remote.addrlen = remote->len;
    p.user_data = NULL;
    return p;
}

/* ---- closing ---------------------------------------------------------------------------- */

static void copy_printable(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++)
        dst[n++] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[n] = '\0';
}

static void set_detail(wzp_quic_conn *c, const char *fmt, const char *arg)
{
    if (c->detail[0] == '\0')
        snprintf(c->detail, sizeof(c->detail), fmt, arg);
}

static void report_closed(wzp_quic_conn *c)
{
    if (c->closed_reported)
        return;
    c->closed_reported = true;
    wzp_quic_ep_release_handshake(c->ep, c);
    if (c->detail[0] == '\0') {
        if (c->err == 0)
            snprintf(c->detail, sizeof(c->detail), "%s closed with application code %llu",
                     c->by_peer ? "peer" : "we", (unsigned long long)c->app_code);
        else
            snprintf(c->detail, sizeof(c->detail), "%s", wzp_strerror(c->err));
    }
    WZP_DEBUG("quic: connection closed: %s", c->detail);
    if (c->opts.cb.closed) {
        wzp_quic_close_info info = {.error = c->err,
                                    .by_peer = c->by_peer,
                                    .app_code = c->app_code,
                                    .reason = c->reason,
                                    .detail = c->detail,
                                    .by_reset = c->got_reset,
                                    .tls_alert = c->peer_alert};
        c->opts.cb.closed(c->opts.user, c, &info, c->now);
    }
}

static wzp_ts closing_period(const wzp_quic_conn *c)
{
    return 3 * ngtcp2_conn_get_pto(c->qc);
}

/* The peer closed: read its CONNECTION_CLOSE and go quiet for 3 PTO. */
static void enter_draining(wzp_quic_conn *c, wzp_ts now)
{
    ngtcp2_connection_close_error ce;
    ngtcp2_conn_get_connection_close_error(c->qc, &ce);
    c->by_peer = true;
    copy_printable(c->reason, sizeof(c->reason), ce.reason, ce.reasonlen);
    switch (ce.type) {
    case NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION:
        c->err = 0;
        c->app_code = ce.error_code;
        break;
    case NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT:
        if (ce.error_code == NGTCP2_NO_ERROR) {
            c->err = WZP_ERR_CLOSED;
        } else if ((ce.error_code & ~0xffULL) == NGTCP2_CRYPTO_ERROR) {
            c->err = WZP_ERR_TLS;
            c->peer_alert = (uint8_t)(ce.error_code & 0xff);
            snprintf(c->detail, sizeof(c->detail), "peer failed the TLS handshake (alert %u%s)",
                     (unsigned)(ce.error_code & 0xff),
                     (ce.error_code & 0xff) == TLS_ALERT_BAD_CERTIFICATE
                         ? ": it rejected our certificate"
                         : "");
        } else if (ce.error_code == NGTCP2_PROTOCOL_VIOLATION) {
            c->err = WZP_ERR_PROTOCOL;
        } else {
            c->err = WZP_ERR_PROTOCOL;
            snprintf(c->detail, sizeof(c->detail), "peer closed with transport error 0x%llx",
                     (unsigned long long)ce.error_code);
        }
        break;
    default:
        c->err = WZP_ERR_CLOSED;
        break;
    }
    c->state = CONN_DRAINING;
    c->close_deadline = now + closing_period(c);
    report_closed(c);
}

/* The peer sent a Stateless Reset that ngtcp2 verified: it has no state for
 * the connection any more. Nothing may be sent (RFC 9000 10.3.1); drain. */
static void enter_reset(wzp_quic_conn *c, wzp_ts now)
{
    c->by_peer = true;
    c->err = WZP_ERR_CLOSED;
    snprintf(c->detail, sizeof(c->detail), "%s", "stateless reset from peer");
    c->state = CONN_DRAINING;
    c->close_deadline = now + closing_period(c);
    report_closed(c);
}

/* We close: build the CONNECTION_CLOSE packet once; flush sends it. */
static void enter_closing(wzp_quic_conn *c, const ngtcp2_connection_close_error *ce, wzp_ts now)
{
    if (c->state >= CONN_CLOSING)
        return;
    c->close_pkt = malloc(WZP_QUIC_MAX_PACKET);
    if (c->close_pkt) {
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, NULL, c->close_pkt,
                                                            WZP_QUIC_MAX_PACKET, ce, now);
        c->close_pkt_len = n > 0 ? (size_t)n : 0;
    }
    c->resend_close = c->close_pkt_len > 0;
    c->state = CONN_CLOSING;
    c->close_deadline = now + closing_period(c);
    report_closed(c);
}

void wzp_quic_conn_fail_later(wzp_quic_conn *c, int err, uint64_t code, const char *detail)
{
    c->fail_pending = true;
    c->fail_err = err;
    c->fail_transport_code = code;
    snprintf(c->detail, sizeof(c->detail), "%s", detail);
}

/* An error from ngtcp2 (or one of our callbacks) on this connection. */
static void conn_fail(wzp_quic_conn *c, int lib_err, wzp_ts now)
{
    ngtcp2_connection_close_error ce;
    ngtcp2_connection_close_error_default(&ce);
    if (lib_err == NGTCP2_ERR_DRAINING) {
        if (c->got_reset)
            enter_reset(c, now);
        else
            enter_draining(c, now);
        return;
    }
    if (lib_err == NGTCP2_ERR_CLOSING)
        return;
    if (lib_err == NGTCP2_ERR_DROP_CONN || lib_err == NGTCP2_ERR_RETRY ||
        lib_err == NGTCP2_ERR_IDLE_CLOSE || lib_err == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
        /* Silently gone: no CONNECTION_CLOSE may be sent. */
        c->err = (lib_err == NGTCP2_ERR_IDLE_CLOSE || lib_err == NGTCP2_ERR_HANDSHAKE_TIMEOUT)
                     ? WZP_ERR_TIMEOUT
                     : WZP_ERR_PROTOCOL;
        set_detail(c, "%s",
                   lib_err == NGTCP2_ERR_IDLE_CLOSE          ? "idle timeout"
                   : lib_err == NGTCP2_ERR_HANDSHAKE_TIMEOUT ? "handshake timeout"
                                                             : "connection dropped");
        c->state = CONN_DEAD;
        report_closed(c);
        return;
    }
    if (c->fail_pending) {
        c->err = c->fail_err;
        ngtcp2_connection_close_error_set_transport_error(
            &ce, c->fail_transport_code, (const uint8_t *)c->detail, strlen(c->detail));
    } else if (lib_err == NGTCP2_ERR_CRYPTO) {
        uint8_t alert = ngtcp2_conn_get_tls_alert(c->qc);
        if (c->pin_failed) {
            c->err = WZP_ERR_PIN_MISMATCH;
        } else {
            c->err = WZP_ERR_TLS;
            char buf[64];
            snprintf(buf, sizeof(buf), "TLS handshake failed (alert %u)", alert);
            set_detail(c, "%s", buf);
        }
        if (!alert)
            alert = 80; /* internal_error */
        ngtcp2_connection_close_error_set_transport_error_tls_alert(&ce, alert, NULL, 0);
    } else if (lib_err == NGTCP2_ERR_CALLBACK_FAILURE || lib_err == NGTCP2_ERR_NOMEM) {
        c->err = lib_err == NGTCP2_ERR_NOMEM ? WZP_ERR_NOMEM : WZP_ERR_INTERNAL;
        set_detail(c, "local failure: %s", ngtcp2_strerror(lib_err));
        ngtcp2_connection_close_error_set_transport_error(&ce, NGTCP2_INTERNAL_ERROR, NULL, 0);
    } else {
        c->err = WZP_ERR_PROTOCOL;
        set_detail(c, "QUIC error: %s", ngtcp2_strerror(lib_err));
        ngtcp2_connection_close_error_set_transport_error_liberr(&ce, lib_err, NULL, 0);
    }
    enter_closing(c, &ce, now);
}

void wzp_quic_conn_close(wzp_quic_conn *c, uint64_t app_code, const char *reason)
{
    if (!c || c->close_requested || c->state >= CONN_CLOSING)
        return;
    c->close_requested = true;
    wzp_quic_ep_mark_due(c);
    c->close_app_code = app_code;
    size_t n = reason ? strlen(reason) : 0;
    if (n > 200)
        n = 200;
    copy_printable(c->reason, sizeof(c->reason), (const uint8_t *)(reason ? reason : ""), n);
}

static void after_progress(wzp_quic_conn *c);

/* Reports a move of ngtcp2's current path (see path_changed): a compare
 * after each packet, timer run and write instead of the owner polling
 * every connection. */
static void check_path(wzp_quic_conn *c)
{
    if (!c->opts.cb.path_changed || c->state >= CONN_CLOSING || c->close_requested)
        return;
    wzp_addr cur;
    wzp_quic_conn_remote_addr(c, &cur);
    if (wzp_addr_equal(&cur, &c->reported_remote))
        return;
    /* Only a path the peer has proved (PATH_RESPONSE from there, or the one
     * the handshake ran on): one packet with a spoofed or rewritten source
     * makes ngtcp2 move at once, and the owner (the relay, which steers
     * media by it) must not follow that before it is validated. */
    if (!wzp_addr_equal(&cur, &c->validated_remote))
        return;
    c->reported_remote = cur;
    c->opts.cb.path_changed(c->opts.user, c, &cur, c->now);
}

/* ---- ngtcp2 callbacks ------------------------------------------------------------------- */

/* A packet that decrypts was sent by the holder of the connection's keys: the
 * owner learns it from the feed (a path proven by an authentic packet), which
 * ngtcp2's return value cannot tell (it drops undecryptable packets silently).
 * The callback gets no connection: the flag lives for one ngtcp2_conn_read_pkt
 * on this thread (an endpoint is driven by one thread). */
static _Thread_local bool decrypt_ok;

static int cb_decrypt(uint8_t *dest, const ngtcp2_crypto_aead *aead,
                      const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
                      size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
                      const uint8_t *aad, size_t aadlen)
{
    int rv = ngtcp2_crypto_decrypt_cb(dest, aead, aead_ctx, ciphertext, ciphertextlen, nonce,
                                      noncelen, aad, aadlen);
    if (rv == 0)
        decrypt_ok = true;
    return rv;
}

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    wzp_random_nonce(dest, len);
    /* ngtcp2 0.12 advertises grease_quic_bit whatever the transport
     * parameters say, and decides with one random byte drawn while the
     * connection is created whether to clear the fixed bit (RFC 9287) on its
     * packets. The first-byte demultiplexer (wire/demux.h) needs 0x40 set on
     * every QUIC packet (0x80-0xbf are relay frames and probes), so that draw
     * is forced even: the bit is never cleared. */
    const wzp_quic_conn *c = ctx ? ctx->native_handle : NULL;
    if (c && c->creating && len == 1)
        dest[0] &= 0xfe;
}

static int cb_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
    wzp_quic_conn *c = ud;
    uint8_t buf[NGTCP2_MAX_CIDLEN];
    wzp_quic_ep_new_cid(c->ep, buf, cidlen);
    ngtcp2_cid_init(cid, buf, cidlen);
    if (wzp_quic_ep_reset_token(c->ep, cid, token) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return wzp_quic_ep_add_cid(c->ep, c, cid) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

/* The peer's connection IDs we send to (and their reset tokens) come and go
 * with the paths ngtcp2 uses: the endpoint routes a Stateless Reset carrying
 * one of those tokens to us (its DCID is random, so the CID table cannot). */
static int cb_dcid_status(ngtcp2_conn *qc, int type, uint64_t seq, const ngtcp2_cid *cid,
                          const uint8_t *token, void *ud)
{
    (void)qc;
    (void)seq;
    (void)cid;
    wzp_quic_conn *c = ud;
    if (!token)
        return 0;
    if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_ACTIVATE)
        wzp_quic_ep_add_peer_token(c->ep, c, token);
    else if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_DEACTIVATE)
        wzp_quic_ep_del_peer_token(c->ep, c, token);
    return 0;
}

static int cb_recv_stateless_reset(ngtcp2_conn *qc, const ngtcp2_pkt_stateless_reset *sr, void *ud)
{
    (void)qc;
    (void)sr;
    /* ngtcp2 returns NGTCP2_ERR_DRAINING next; this tells it from a CONNECTION_CLOSE. */
    ((wzp_quic_conn *)ud)->got_reset = true;
    return 0;
}

/* A released session (release_tls) takes no more TLS messages: a QUIC peer sends
 * none after the handshake (no tickets from our servers, no KeyUpdate in QUIC). */
static int cb_recv_crypto_data(ngtcp2_conn *qc, ngtcp2_crypto_level level, uint64_t offset,
                               const uint8_t *data, size_t len, void *ud)
{
    wzp_quic_conn *c = ud;
    if (!c->tls) {
        wzp_quic_conn_fail_later(c, WZP_ERR_PROTOCOL, NGTCP2_PROTOCOL_VIOLATION,
                                 "TLS data after the handshake");
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return ngtcp2_crypto_recv_crypto_data_cb(qc, level, offset, data, len, ud);
}

static int cb_remove_cid(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *ud)
{
    wzp_quic_conn *c = ud;
    wzp_quic_ep_del_cid(c->ep, c, cid);
    return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t offset,
                               const uint8_t *data, size_t len, void *ud, void *sud)
{
    wzp_quic_conn *c = ud;
    int rc = 0;
    /* An anonymous client's first messages may come with its Finished: the handshake just
     * completed in this very read, report it first (as for datagrams). */
    if (c->server && c->state == CONN_HANDSHAKE && ngtcp2_conn_get_handshake_completed(qc))
        after_progress(c);
    if (c->stream_id < 0 && c->server && sid == 0)
        c->stream_id = 0;
    if (sid == c->stream_id)
        rc = wzp_quic_msg_rx(c, data, len);
    if (rc)
        return rc;
    /* Everything is consumed at once (copied into a bounded message buffer),
     * so the windows reopen immediately. */
    ngtcp2_conn_extend_max_stream_offset(qc, sid, len);
    ngtcp2_conn_extend_max_offset(qc, len);
    return 0;
}

static int cb_acked_stream_data(ngtcp2_conn *qc, int64_t sid, uint64_t offset, uint64_t len,
                                void *ud, void *sud)
{
    wzp_quic_msg_acked(ud, offset + len);
    return 0;
}

static int cb_stream_open(ngtcp2_conn *qc, int64_t sid, void *ud)
{
    wzp_quic_conn *c = ud;
    if (c->server && c->stream_id < 0 && sid == 0)
        c->stream_id = 0;
    return 0;
}

static int cb_recv_datagram(ngtcp2_conn *qc, uint32_t flags, const uint8_t *data, size_t len,
                            void *ud)
{
    wzp_quic_conn *c = ud;
    c->st.dgrams_recv++;
    /* The server sends datagrams only once it has checked our certificate,
     * so one may arrive beside (or before) HANDSHAKE_DONE: it confirms too. */
    if (!c->server && c->state == CONN_HANDSHAKE && ngtcp2_conn_get_handshake_completed(qc)) {
        c->confirmed = true;
        after_progress(c);
    }
    /* A client with early_datagrams sends its first ones beside its Finished:
     * the handshake just completed in this very read, report it first. */
    if (c->server && c->state == CONN_HANDSHAKE && ngtcp2_conn_get_handshake_completed(qc))
        after_progress(c);
    if (c->opts.cb.datagram && !c->close_requested && c->state == CONN_ESTABLISHED)
        c->opts.cb.datagram(c->opts.user, c, data, len, c->now);
    return 0;
}

static int cb_lost_datagram(ngtcp2_conn *qc, uint64_t id, void *ud)
{
    wzp_quic_conn *c = ud;
    c->st.dgrams_lost++;
    return 0;
}

static int cb_handshake_confirmed(ngtcp2_conn *qc, void *ud)
{
    wzp_quic_conn *c = ud;
    c->confirmed = true;
    return 0;
}

static int cb_extend_streams(ngtcp2_conn *qc, uint64_t max, void *ud)
{
    return 0;
}

static int cb_path_validation(ngtcp2_conn *qc, uint32_t flags, const ngtcp2_path *path,
                              ngtcp2_path_validation_result res, void *ud)
{
    (void)qc;
    (void)flags;
    wzp_quic_conn *c = ud;
    wzp_addr a;
    if (res == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS && path && path->remote.addrlen &&
        wzp_addr_from_sockaddr(&a, (const struct sockaddr *)path->remote.addr,
                               path->remote.addrlen) == 0)
        c->validated_remote = a;
    return 0;
}

static const ngtcp2_callbacks conn_callbacks = {
    .client_initial = ngtcp2_crypto_client_initial_cb,
    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
    .recv_crypto_data = cb_recv_crypto_data,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = cb_decrypt,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .recv_retry = ngtcp2_crypto_recv_retry_cb,
    .update_key = ngtcp2_crypto_update_key_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
    .rand = cb_rand,
    .get_new_connection_id = cb_new_cid,
    .remove_connection_id = cb_remove_cid,
    .recv_stream_data = cb_recv_stream_data,
    .acked_stream_data_offset = cb_acked_stream_data,
    .stream_open = cb_stream_open,
    .recv_datagram = cb_recv_datagram,
    .lost_datagram = cb_lost_datagram,
    .extend_max_local_streams_bidi = cb_extend_streams,
    .handshake_confirmed = cb_handshake_confirmed,
    .path_validation = cb_path_validation,
    .dcid_status = cb_dcid_status,
    .recv_stateless_reset = cb_recv_stateless_reset,
};

/* ---- lifecycle -------------------------------------------------------------------------- */

int wzp_quic_conn_new(wzp_quic_endpoint *ep, bool server, const wzp_addr *local,
                      const wzp_addr *remote, const wzp_quic_conn_config *opts,
                      const ngtcp2_pkt_hd *initial, const ngtcp2_cid *retry_odcid, wzp_ts now,
                      wzp_quic_conn **out)
{
    *out = NULL;
    /* Heap room first, so that linking the connection below cannot fail. */
    if (wzp_quic_ep_reserve(ep) != 0)
        return WZP_ERR_NOMEM;
    wzp_quic_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return WZP_ERR_NOMEM;
    c->ep = ep;
    c->server = server;
    c->opts = *opts;
    fill_defaults(&c->opts);
    snprintf(c->alpn, sizeof(c->alpn), "%s", opts->alpn ? opts->alpn : WZP_QUIC_ALPN);
    c->opts.alpn = NULL;
    c->local = *local;
    c->remote = *remote;
    c->stream_id = -1;

    ngtcp2_settings s;
    ngtcp2_settings_default(&s);
    c->now = now;
    s.initial_ts = now;
    s.initial_rtt = c->opts.initial_rtt;
    s.handshake_timeout = c->opts.handshake_timeout;
    s.rand_ctx.native_handle = c;

    ngtcp2_transport_params p;
    ngtcp2_transport_params_default(&p);
    p.initial_max_stream_data_bidi_local = FLOW_WINDOW;
    p.initial_max_stream_data_bidi_remote = FLOW_WINDOW;
    p.initial_max_data = FLOW_WINDOW;
    /* Only the client opens a stream: the message channel. */
    p.initial_max_streams_bidi = server ? 1 : 0;
    p.initial_max_streams_uni = 0;
    p.max_idle_timeout = c->opts.idle_timeout;
    p.max_datagram_frame_size = 65535;
    p.active_connection_id_limit = 4;
    p.grease_quic_bit = 0; /* see cb_rand */

    uint8_t buf[WZP_QUIC_CIDLEN];
    ngtcp2_cid scid, dcid;
    wzp_quic_ep_new_cid(ep, buf, sizeof(buf));
    ngtcp2_cid_init(&scid, buf, sizeof(buf));
    if (ep->qlog_dir && open_qlog(c, ep->qlog_dir, &scid)) {
        s.qlog.write = qlog_write;
        if (server)
            s.qlog.odcid = retry_odcid ? *retry_odcid : initial->dcid;
    }
    ngtcp2_path path = make_path(&c->local, &c->remote);
    int rc;
    c->creating = true;
    if (server) {
        if (retry_odcid) {
            /* The client came back with our Retry token: the transport
             * parameters prove to it that we sent that Retry (RFC 9000 7.3),
             * and the token marks its address validated (no 3x limit). */
            p.original_dcid = *retry_odcid;
            p.retry_scid = initial->dcid;
            p.retry_scid_present = 1;
            s.token = initial->token;
        } else {
            p.original_dcid = initial->dcid;
        }
        p.stateless_reset_token_present = 1;
        if (wzp_quic_ep_reset_token(ep, &scid, p.stateless_reset_token) != 0) {
            close_qlog(c);
            free(c);
            return WZP_ERR_INTERNAL;
        }
        rc = ngtcp2_conn_server_new(&c->qc, &initial->scid, &scid, &path, initial->version,
                                    &conn_callbacks, &s, &p, ep->mem, c);
    } else {
        wzp_random_nonce(buf, sizeof(buf));
        ngtcp2_cid_init(&dcid, buf, sizeof(buf));
        rc = ngtcp2_conn_client_new(&c->qc, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                                    &conn_callbacks, &s, &p, ep->mem, c);
    }
    c->creating = false;
    if (rc != 0) {
        WZP_ERROR("quic: cannot create connection: %s", ngtcp2_strerror(rc));
        close_qlog(c);
        free(c);
        return rc == NGTCP2_ERR_NOMEM ? WZP_ERR_NOMEM : WZP_ERR_INTERNAL;
    }
    if ((rc = wzp_quic_tls_new(c)) != 0) {
        ngtcp2_conn_del(c->qc);
        close_qlog(c);
        free(c);
        return rc;
    }
    ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
    if (c->opts.keep_alive)
        ngtcp2_conn_set_keep_alive_timeout(c->qc, c->opts.keep_alive);
    wzp_quic_conn_remote_addr(c, &c->reported_remote);
    c->validated_remote = c->reported_remote; /* the handshake validates it */

    /* Register our initial SCID (no callback reports it) and, on a server,
     * the client's chosen DCID so retransmitted Initials find us. */
    if (wzp_quic_ep_add_cid(ep, c, &scid) != 0 ||
        (server && wzp_quic_ep_add_cid(ep, c, &initial->dcid) != 0)) {
        wzp_quic_conn_free(c);
        return WZP_ERR_NOMEM;
    }
    if (!server) {
        /* Opens the stream once possible so the server can send first. */
        wzp_quic_conn_send_message(c, NULL, 0);
    }
    c->next = ep->conns;
    if (ep->conns)
        ep->conns->prev = c;
    ep->conns = c;
    ep->stats.conns_active++;
    wzp_quic_ep_mark_due(c); /* its first flight */
    *out = c;
    return 0;
}

void wzp_quic_conn_free(wzp_quic_conn *c)
{
    if (!c)
        return;
    wzp_quic_endpoint *ep = c->ep;
    wzp_quic_ep_unschedule(c); /* no heap or due list entry may outlive it */
    wzp_quic_ep_release_handshake(ep, c);
    while (c->ncids)
        wzp_quic_ep_del_cid(ep, c, &c->cids[c->ncids - 1]);
    while (c->npeer_tokens)
        wzp_quic_ep_del_peer_token(ep, c, c->peer_tokens[c->npeer_tokens - 1]);
    if (c->prev || ep->conns == c) {
        if (c->prev)
            c->prev->next = c->next;
        else
            ep->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        ep->stats.conns_active--;
    }
    if (c->qc)
        ngtcp2_conn_del(c->qc);
    close_qlog(c);
    wzp_quic_tls_free(c);
    wzp_quic_msg_free_all(c);
    while (c->dg_head) {
        wzp_quic_dgram *d = c->dg_head;
        c->dg_head = d->next;
        free(d);
    }
    free(c->close_pkt);
    free(c);
}

/* After ngtcp2 processed input: report the handshake, open the stream. */
static void after_progress(wzp_quic_conn *c)
{
    /* A TLS 1.3 client finishes its handshake before the server has checked
     * the client's certificate; only confirmation (HANDSHAKE_DONE) says the
     * server accepted it. So "established" means: both sides authenticated.
     * (A server's handshake is confirmed when it completes, RFC 9001 4.1.2.) */
    /* An anonymous client has nothing left for the server to check: its established is its
     * own handshake's end, so its first messages leave with its Finished. */
    if (c->state != CONN_HANDSHAKE || !ngtcp2_conn_get_handshake_completed(c->qc) ||
        (!c->server && !c->confirmed && !c->opts.anonymous))
        return;
    /* A client without a certificate (cert_optional): the verify hook may not have run, so
     * ALPN is checked here. */
    bool anonymous = !c->have_peer_fp && c->server && c->opts.cert_optional;
    if (anonymous && wzp_quic_tls_check_alpn(c) != 0) {
        c->fail_pending = true;
        c->fail_err = WZP_ERR_TLS;
        c->fail_transport_code = NGTCP2_CRYPTO_ERROR | TLS_ALERT_NO_APPLICATION_PROTOCOL;
        return;
    }
    if (!c->have_peer_fp && !anonymous) {
        /* Cannot happen with GNUTLS_CERT_REQUIRE and the verify hook; refuse anyway. */
        c->fail_pending = true;
        c->fail_err = WZP_ERR_TLS;
        c->fail_transport_code = NGTCP2_CRYPTO_ERROR | TLS_ALERT_BAD_CERTIFICATE;
        set_detail(c, "%s", "handshake completed without a checked peer certificate");
        return;
    }
    c->state = CONN_ESTABLISHED;
    wzp_quic_ep_release_handshake(c->ep, c);
    if (c->opts.cb.established)
        c->opts.cb.established(c->opts.user, c, anonymous ? NULL : c->peer_fp, c->now);
}

static void open_stream(wzp_quic_conn *c)
{
    if (c->server || c->stream_id >= 0 || c->state != CONN_ESTABLISHED)
        return;
    int64_t sid;
    if (ngtcp2_conn_open_bidi_stream(c->qc, &sid, NULL) == 0)
        c->stream_id = sid;
}

void wzp_quic_conn_read(wzp_quic_conn *c, const wzp_addr *local, const wzp_addr *remote,
                        const uint8_t *pkt, size_t len, wzp_ts now)
{
    c->now = now;
    c->rx_auth = false;
    wzp_quic_ep_mark_due(c);
    if (c->state == CONN_CLOSING) {
        /* Answer with our CONNECTION_CLOSE, exponentially less often, so a
         * flood of packets cannot make us send as much back. */
        c->closing_rx++;
        if ((c->closing_rx & (c->closing_rx - 1)) == 0)
            c->resend_close = c->close_pkt_len > 0;
        return;
    }
    if (c->state >= CONN_DRAINING)
        return;
    /* Keep the path storage stable for ngtcp2: it compares addresses by value. */
    c->local = *local;
    c->remote = *remote;
    ngtcp2_path path = make_path(&c->local, &c->remote);
    decrypt_ok = false;
    int rc = ngtcp2_conn_read_pkt(c->qc, &path, NULL, pkt, len, now);
    c->rx_auth = decrypt_ok;
    if (rc != 0) {
        conn_fail(c, rc, now);
        return;
    }
    c->st.pkts_recv++;
    after_progress(c);
    if (c->fail_pending) {
        conn_fail(c, NGTCP2_ERR_CALLBACK_FAILURE, now);
        return;
    }
    if (c->opts.release_tls && c->tls && c->state == CONN_ESTABLISHED) {
        /* Outside ngtcp2's callbacks: nothing of the session is in use. */
        ngtcp2_conn_set_tls_native_handle(c->qc, NULL);
        wzp_quic_tls_free(c);
    }
    check_path(c);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void emit(wzp_quic_conn *c, const ngtcp2_path *path, const uint8_t *pkt, size_t len,
                 wzp_quic_send_fn send, void *su)
{
    wzp_addr l = c->local, r = c->remote;
    if (path && path->remote.addrlen) {
        wzp_addr_from_sockaddr(&l, (const struct sockaddr *)path->local.addr, path->local.addrlen);
        wzp_addr_from_sockaddr(&r, (const struct sockaddr *)path->remote.addr,
                               path->remote.addrlen);
    }
    c->ep->stats.tx_packets++;
    c->ep->stats.tx_bytes += len;
    c->st.pkts_sent++;
    send(su, &l, &r, pkt, len);
}

static void dgram_pop(wzp_quic_conn *c)
{
    wzp_quic_dgram *d = c->dg_head;
    c->dg_head = d->next;
    if (!c->dg_head)
        c->dg_tail = NULL;
    c->dg_count--;
    free(d);
}

int wzp_quic_conn_write(wzp_quic_conn *c, wzp_ts now, wzp_quic_send_fn send, void *su)
{
    c->now = now;
    if (c->state == CONN_CLOSING) {
        if (c->resend_close) {
            c->resend_close = false;
            emit(c, NULL, c->close_pkt, c->close_pkt_len, send, su);
            return 1;
        }
        return 0;
    }
    if (c->state >= CONN_DRAINING)
        return 0;
    if (c->close_requested) {
        ngtcp2_connection_close_error ce;
        ngtcp2_connection_close_error_set_application_error(
            &ce, c->close_app_code, (const uint8_t *)c->reason, strlen(c->reason));
        c->err = 0;
        c->app_code = c->close_app_code;
        enter_closing(c, &ce, now);
        return wzp_quic_conn_write(c, now, send, su);
    }
    open_stream(c);

    uint8_t buf[WZP_QUIC_MAX_PACKET];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    size_t cap = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->qc);
    if (cap > sizeof(buf))
        cap = sizeof(buf);
    int count = 0;
    bool stream_blocked = false;
    int dg_refused = 0;
    for (;;) {
        ngtcp2_ssize n;
        bool have_stream = c->stream_id >= 0 && c->tx_cur && !stream_blocked;
        if (c->dg_head && wzp_quic_conn_can_send_datagram(c)) {
            int accepted = 0;
            ngtcp2_vec v = {c->dg_head->data, c->dg_head->len};
            n = ngtcp2_conn_writev_datagram(c->qc, &ps.path, NULL, buf, cap, &accepted,
                                            NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &v, 1, now);
            if (accepted) {
                c->st.dgrams_sent++;
                dgram_pop(c);
                dg_refused = 0;
            } else if (n > 0 && ++dg_refused >= 2) {
                /* Two packets went out without it: it does not fit beside
                 * what ngtcp2 must send. Drop it rather than stall the queue. */
                c->st.dgrams_dropped++;
                c->st.dgrams_dropped_bytes += c->dg_head->len;
                dgram_pop(c);
                dg_refused = 0;
            }
            if (n == NGTCP2_ERR_WRITE_MORE)
                continue;
            if (n == NGTCP2_ERR_INVALID_STATE || n == NGTCP2_ERR_INVALID_ARGUMENT) {
                /* The peer cannot take it (no DATAGRAM support, over its limit). */
                c->st.dgrams_dropped++;
                c->st.dgrams_dropped_bytes += c->dg_head->len;
                dgram_pop(c);
                continue;
            }
        } else if (have_stream) {
            ngtcp2_ssize taken = -1;
            wzp_quic_msg *m = c->tx_cur;
            ngtcp2_vec v = {m->data + m->sent, m->len - m->sent};
            n = ngtcp2_conn_writev_stream(c->qc, &ps.path, NULL, buf, cap, &taken,
                                          NGTCP2_WRITE_STREAM_FLAG_MORE, c->stream_id, &v, 1, now);
            if (taken > 0) {
                m->sent += (size_t)taken;
                if (m->sent == m->len)
                    c->tx_cur = m->next;
            }
            if (n == NGTCP2_ERR_WRITE_MORE)
                continue;
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
                n == NGTCP2_ERR_STREAM_NOT_FOUND) {
                stream_blocked = true;
                continue;
            }
        } else {
            n = ngtcp2_conn_write_pkt(c->qc, &ps.path, NULL, buf, cap, now);
        }
        if (n < 0) {
            conn_fail(c, (int)n, now);
            return count + wzp_quic_conn_write(c, now, send, su);
        }
        if (n == 0)
            break;
        emit(c, &ps.path, buf, (size_t)n, send, su);
        count++;
    }
    ngtcp2_conn_update_pkt_tx_time(c->qc, now);
    check_path(c);
    return count;
}

/* ---- timers ----------------------------------------------------------------------------- */

wzp_ts wzp_quic_conn_expiry(const wzp_quic_conn *c)
{
    switch (c->state) {
    case CONN_CLOSING:
    case CONN_DRAINING:
        return c->close_deadline;
    case CONN_DEAD:
        return 0;
    default:
        break;
    }
    if (c->close_requested || c->fail_pending)
        return 0;
    return ngtcp2_conn_get_expiry(c->qc);
}

void wzp_quic_conn_handle_expiry(wzp_quic_conn *c, wzp_ts now)
{
    c->now = now;
    if (c->state >= CONN_CLOSING)
        return;
    if (ngtcp2_conn_get_expiry(c->qc) > now)
        return;
    wzp_quic_ep_mark_due(c);
    int rc = ngtcp2_conn_handle_expiry(c->qc, now);
    if (rc != 0)
        conn_fail(c, rc, now);
    else
        check_path(c);
}

bool wzp_quic_conn_is_dead(const wzp_quic_conn *c, wzp_ts now)
{
    if (c->state == CONN_DEAD)
        return true;
    return (c->state == CONN_CLOSING || c->state == CONN_DRAINING) && now >= c->close_deadline;
}

/* ---- datagrams and accessors ------------------------------------------------------------ */

bool wzp_quic_conn_can_send_datagram(const wzp_quic_conn *c)
{
    if (!c || c->close_requested)
        return false;
    if (c->state == CONN_ESTABLISHED)
        return true;
    /* early_datagrams: the server's key is checked, 1-RTT keys exist. */
    return c->opts.early_datagrams && !c->server && c->state == CONN_HANDSHAKE && c->have_peer_fp &&
           ngtcp2_conn_get_handshake_completed(c->qc);
}

int wzp_quic_conn_send_datagram(wzp_quic_conn *c, const uint8_t *data, size_t len)
{
    if (!c || (!data && len))
        return WZP_ERR_INVALID;
    if (c->state >= CONN_CLOSING || c->close_requested)
        return WZP_ERR_CLOSED;
    if (!wzp_quic_conn_can_send_datagram(c))
        return WZP_ERR_AGAIN;
    const ngtcp2_transport_params *rp = ngtcp2_conn_get_remote_transport_params(c->qc);
    if (!rp || rp->max_datagram_frame_size == 0)
        return WZP_ERR_STATE;
    /* The frame adds a type byte and a length varint (at most 2 bytes here). */
    if (len > WZP_QUIC_MAX_DATAGRAM || len + 3 > rp->max_datagram_frame_size)
        return WZP_ERR_TOO_BIG;
    if (c->dg_count >= c->opts.datagram_queue)
        return WZP_ERR_AGAIN;
    wzp_quic_dgram *d = malloc(sizeof(*d) + len);
    if (!d)
        return WZP_ERR_NOMEM;
    d->next = NULL;
    d->len = len;
    if (len)
        memcpy(d->data, data, len);
    wzp_quic_ep_mark_due(c);
    if (c->dg_tail)
        c->dg_tail->next = d;
    else
        c->dg_head = d;
    c->dg_tail = d;
    c->dg_count++;
    return 0;
}

bool wzp_quic_conn_is_established(const wzp_quic_conn *c)
{
    return c->state == CONN_ESTABLISHED && !c->close_requested;
}

bool wzp_quic_conn_is_server(const wzp_quic_conn *c)
{
    return c->server;
}

int wzp_quic_conn_peer_fingerprint(const wzp_quic_conn *c, uint8_t fp[WZP_FINGERPRINT_LEN])
{
    if (!c->have_peer_fp)
        return WZP_ERR_STATE;
    memcpy(fp, c->peer_fp, WZP_FINGERPRINT_LEN);
    return 0;
}

void wzp_quic_conn_remote_addr(const wzp_quic_conn *c, wzp_addr *out)
{
    const ngtcp2_path *p = ngtcp2_conn_get_path(c->qc);
    if (p && p->remote.addrlen &&
        wzp_addr_from_sockaddr(out, (const struct sockaddr *)p->remote.addr, p->remote.addrlen) ==
            0)
        return;
    *out = c->remote;
}

int wzp_quic_conn_set_local_addr(wzp_quic_conn *c, const wzp_addr *local)
{
    if (!c || !local || !local->len)
        return WZP_ERR_INVALID;
    if (c->server)
        return WZP_ERR_STATE;
    if (c->state >= CONN_CLOSING)
        return WZP_ERR_CLOSED;
    c->local = *local;
    ngtcp2_addr a = {.addr = (ngtcp2_sockaddr *)&c->local.u.sa, .addrlen = c->local.len};
    ngtcp2_conn_set_local_addr(c->qc, &a); /* copied into the current path */
    wzp_quic_ep_mark_due(c);
    return 0;
}

void wzp_quic_conn_local_addr(const wzp_quic_conn *c, wzp_addr *out)
{
    const ngtcp2_path *p = ngtcp2_conn_get_path(c->qc);
    if (p && p->local.addrlen &&
        wzp_addr_from_sockaddr(out, (const struct sockaddr *)p->local.addr, p->local.addrlen) == 0)
        return;
    *out = c->local;
}

const char *wzp_quic_conn_error_detail(const wzp_quic_conn *c)
{
    return c->detail;
}

void wzp_quic_conn_get_stats(const wzp_quic_conn *c, wzp_quic_conn_stats *s)
{
    *s = c->st;
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(c->qc, &cs);
    if (cs.first_rtt_sample_ts != UINT64_MAX) {
        s->smoothed_rtt = cs.smoothed_rtt;
        s->min_rtt = cs.min_rtt;
        s->latest_rtt = cs.latest_rtt;
    }
    s->pto_count = cs.pto_count;
    s->cwnd = cs.cwnd;
    s->bytes_in_flight = cs.bytes_in_flight;
}

void *wzp_quic_conn_user(const wzp_quic_conn *c)
{
    return c->opts.user;
}

void wzp_quic_conn_set_user(wzp_quic_conn *c, void *user)
{
    c->opts.user = user;
}
