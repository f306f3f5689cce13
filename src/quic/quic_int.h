/* Internals shared by the QUIC endpoint, connection and TLS files. */
#ifndef WZP_QUIC_QUIC_INT_H
#define WZP_QUIC_QUIC_INT_H

#include <stdio.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "common/hmap.h"
#include "quic/identity_tls.h"
#include "quic/quic.h"

#define WZP_QUIC_MAX_CIDS 16 /* CIDs one connection may have registered at once */
/* Peer reset tokens one connection watches for: those of the peer's
 * connection IDs bound to a path (current, and during a migration). */
#define WZP_QUIC_MAX_PEER_TOKENS 4

typedef enum conn_state {
    CONN_HANDSHAKE,
    CONN_ESTABLISHED,
    CONN_CLOSING,  /* we sent CONNECTION_CLOSE; answer with it for 3 PTO */
    CONN_DRAINING, /* the peer closed; stay silent for 3 PTO */
    CONN_DEAD,     /* nothing more to do; freed at the next timer run */
} conn_state;

/* One queued outgoing message: length prefix + payload, kept until acked
 * because ngtcp2 does not copy stream data. */
typedef struct wzp_quic_msg {
    struct wzp_quic_msg *next;
    uint64_t offset; /* stream offset of data[0] */
    size_t len, sent;
    uint8_t data[];
} wzp_quic_msg;

typedef struct wzp_quic_dgram {
    struct wzp_quic_dgram *next;
    size_t len;
    uint8_t data[];
} wzp_quic_dgram;

struct wzp_quic_conn {
    wzp_quic_endpoint *ep;
    wzp_quic_conn *prev, *next;
    ngtcp2_conn *qc;
    gnutls_session_t tls;
    ngtcp2_crypto_conn_ref ref;
    bool server;
    bool creating; /* inside ngtcp2_conn_*_new (see cb_rand) */
    wzp_quic_conn_config opts;
    FILE *qlog; /* debugging: this connection's qlog (endpoint qlog_dir), or NULL */
    char alpn[32];
    wzp_addr local, remote;    /* the path of the last packet fed / given to connect */
    wzp_addr reported_remote;  /* ngtcp2's remote as path_changed last saw it */
    wzp_addr validated_remote; /* last remote the peer proved to receive at */
    conn_state state;
    /* Set (wzp_quic_ep_mark_due) by whatever can make packets due or move
     * the timer (a packet fed, a timer run, data queued, close); cleared by
     * flush, which then caches the expiry. A connection is either due (on
     * the endpoint's due list, its expiry read live) or idle (in the timer
     * heap keyed by expiry_cache, nothing to send before it), so flush,
     * expiry and handle_expiry never look at idle connections whose timer
     * is not due. */
    bool tx_due;
    wzp_quic_conn *due_prev, *due_next;
    wzp_ts expiry_cache;
    size_t heap_slot; /* 1 + index in ep->heap; 0 = not in the heap */
    bool confirmed;   /* ngtcp2 reported the handshake confirmed */
    wzp_ts close_deadline;
    bool closed_reported;
    bool close_requested;
    bool resend_close;
    uint32_t closing_rx; /* packets received while closing */
    bool fail_pending;   /* a callback failed; fail_* say how to close */
    int fail_err;
    uint64_t fail_transport_code;
    uint64_t close_app_code;
    uint8_t *close_pkt;
    size_t close_pkt_len;
    /* close report */
    int err;
    bool by_peer;
    uint64_t app_code;
    char reason[208];
    char detail[256];
    /* pinning */
    bool pin_failed;
    bool have_peer_fp;
    uint8_t peer_fp[WZP_FINGERPRINT_LEN];
    /* connection IDs registered in the endpoint table */
    ngtcp2_cid cids[WZP_QUIC_MAX_CIDS];
    size_t ncids;
    /* message channel */
    int64_t stream_id; /* -1 until open */
    bool stream_blocked;
    wzp_quic_msg *tx_head, *tx_cur, *tx_tail;
    uint64_t tx_offset; /* bytes queued on the stream so far */
    uint8_t rx_hdr[4];
    size_t rx_hdr_have;
    uint8_t *rx_body;
    size_t rx_body_len, rx_body_have;
    bool rx_in_body;
    /* datagrams */
    wzp_quic_dgram *dg_head, *dg_tail;
    size_t dg_count;
    wzp_quic_conn_stats st;
    /* A server connection holds a handshake slot (the endpoint's count and
     * its IP's) from creation until established or closed. */
    bool hs_slot;
    bool hs_validated; /* the slot counts in hsv_by_ip (Retry token), not hs_by_ip */
    uint8_t hs_iplen;
    uint8_t hs_ip[16];
    /* Stateless reset: the peer's tokens registered in ep->reset_tokens,
     * and whether ngtcp2 accepted a Stateless Reset for us. */
    uint8_t peer_tokens[WZP_QUIC_MAX_PEER_TOKENS][NGTCP2_STATELESS_RESET_TOKENLEN];
    size_t npeer_tokens;
    bool got_reset;
    uint8_t peer_alert; /* the TLS alert in the peer's CONNECTION_CLOSE, 0: none */
    /* The time of the input being handled (callbacks report it: ngtcp2's carry none). */
    wzp_ts now;
    bool rx_auth; /* a packet of the datagram being read decrypted */
};

/* Retry packets are built when the Initial arrives and sent by the next
 * flush. A relay feeds a batch of packets per flush; more Retries than this
 * between two flushes are not sent (the client retransmits its Initial). */
#define WZP_QUIC_STATELESS_QUEUE 64
#define WZP_QUIC_RETRY_PKT_MAX   256 /* long header + two CIDs + token + tag */

typedef struct wzp_quic_stateless_pkt {
    wzp_addr local, remote;
    size_t len;
    uint8_t data[WZP_QUIC_RETRY_PKT_MAX];
} wzp_quic_stateless_pkt;

struct wzp_quic_endpoint {
    const wzp_identity *id;
    bool server;
    unsigned route_index, route_count; /* connection-ID routing (count <= 1: none) */
    uint64_t route_key;
    char *qlog_dir; /* owned copy, NULL = no qlog */
    wzp_quic_callbacks cb;
    void *user;
    gnutls_certificate_credentials_t cred; /* hands out `keys` (tls.c) */
    wzp_identity_keys keys;
    const ngtcp2_mem *mem;  /* ngtcp2's allocator for the connections; NULL = its default */
    bool x509_only;         /* tests: certificates only, no raw public keys (builds before them) */
    gnutls_priority_t prio; /* parsed once, shared by the sessions (GnuTLS counts references) */
    wzp_hmap cids;          /* CID bytes -> wzp_quic_conn */
    wzp_quic_conn *conns;
    /* Connections with tx_due set, in the order they became due. */
    wzp_quic_conn *due_head, *due_tail;
    /* Binary min-heap of the idle connections by expiry_cache. Its capacity
     * is reserved when a connection is created, so inserting never fails. */
    wzp_quic_conn **heap;
    size_t heap_len, heap_cap;
    wzp_quic_endpoint_stats stats;
    /* address validation (server) */
    wzp_quic_endpoint_config cfg;
    uint8_t retry_secret[32]; /* keys the Retry tokens; random per endpoint */
    size_t handshaking;       /* connections holding a handshake slot */
    wzp_hmap hs_by_ip;        /* IP bytes -> unvalidated handshaking count, as a pointer */
    wzp_hmap hsv_by_ip;       /* IP bytes -> validated (Retry token) handshaking count */
    /* stateless reset */
    uint8_t reset_secret[32]; /* keys our reset tokens; static_secret or random */
    wzp_hmap reset_tokens;    /* a peer's reset token -> the wzp_quic_conn it ends */
    wzp_ts reset_tat;         /* rate limit (GCRA): when the bucket is full again */
    size_t n_stateless;
    wzp_quic_stateless_pkt stateless[WZP_QUIC_STATELESS_QUEUE];
};

/* conn.c */
int wzp_quic_conn_new(wzp_quic_endpoint *ep, bool server, const wzp_addr *local,
                      const wzp_addr *remote, const wzp_quic_conn_config *opts,
                      const ngtcp2_pkt_hd *initial, const ngtcp2_cid *retry_odcid, wzp_ts now,
                      wzp_quic_conn **out);
void wzp_quic_conn_free(wzp_quic_conn *c);
/* Processes one packet for c; never fails (errors move c to a closing state). */
void wzp_quic_conn_read(wzp_quic_conn *c, const wzp_addr *local, const wzp_addr *remote,
                        const uint8_t *pkt, size_t len, wzp_ts now);
int wzp_quic_conn_write(wzp_quic_conn *c, wzp_ts now, wzp_quic_send_fn send, void *send_user);
wzp_ts wzp_quic_conn_expiry(const wzp_quic_conn *c);
void wzp_quic_conn_handle_expiry(wzp_quic_conn *c, wzp_ts now);
bool wzp_quic_conn_is_dead(const wzp_quic_conn *c, wzp_ts now);

/* Records why the connection must close; the error surfaces after ngtcp2
 * returns from the callback that found it (callbacks cannot close). */
void wzp_quic_conn_fail_later(wzp_quic_conn *c, int err, uint64_t transport_code,
                              const char *detail);

/* msgchan.c */
int wzp_quic_msg_rx(wzp_quic_conn *c, const uint8_t *data, size_t len); /* 0 or NGTCP2_ERR_* */
void wzp_quic_msg_acked(wzp_quic_conn *c, uint64_t acked_offset);
void wzp_quic_msg_free_all(wzp_quic_conn *c);

/* endpoint.c: connection ID table */
int wzp_quic_ep_add_cid(wzp_quic_endpoint *ep, wzp_quic_conn *c, const ngtcp2_cid *cid);
void wzp_quic_ep_del_cid(wzp_quic_endpoint *ep, wzp_quic_conn *c, const ngtcp2_cid *cid);
/* Gives back c's handshake slot, if it holds one (idempotent). */
void wzp_quic_ep_release_handshake(wzp_quic_endpoint *ep, wzp_quic_conn *c);
/* A fresh connection ID for this endpoint to issue: random, routed to it (wzp_quic_route). */
void wzp_quic_ep_new_cid(const wzp_quic_endpoint *ep, uint8_t *buf, size_t len);
/* Our stateless reset token for a connection ID we issue (0 or WZP_ERR_INTERNAL). */
int wzp_quic_ep_reset_token(const wzp_quic_endpoint *ep, const ngtcp2_cid *cid,
                            uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN]);
/* The peer's token for one of its connection IDs that c uses: a Stateless
 * Reset carrying it is handed to c. del: it is no longer in use. */
void wzp_quic_ep_add_peer_token(wzp_quic_endpoint *ep, wzp_quic_conn *c, const uint8_t *token);
void wzp_quic_ep_del_peer_token(wzp_quic_endpoint *ep, wzp_quic_conn *c, const uint8_t *token);

/* endpoint.c: scheduling. mark_due: c may have packets to send or a new
 * expiry (idempotent; moves c from the timer heap to the due list).
 * reserve: room in the heap for one more connection (call before linking a
 * new one). unschedule: takes c off the due list and out of the heap (free). */
void wzp_quic_ep_mark_due(wzp_quic_conn *c);
int wzp_quic_ep_reserve(wzp_quic_endpoint *ep);
void wzp_quic_ep_unschedule(wzp_quic_conn *c);
/* Tests: the connection at the top of the heap (NULL if empty) and whether
 * the heap property holds with every slot index consistent. */
wzp_quic_conn *wzp_quic_ep_heap_top(const wzp_quic_endpoint *ep);
bool wzp_quic_ep_heap_check(const wzp_quic_endpoint *ep);

/* tls.c */
int wzp_quic_tls_priority_new(gnutls_priority_t *out);
/* The endpoint's credentials: its identity's keys, by negotiated certificate type. */
int wzp_quic_tls_credentials(wzp_quic_endpoint *ep);
int wzp_quic_tls_new(wzp_quic_conn *c);
/* 0 if the session negotiated our ALPN, else -1 with c->detail set. */
int wzp_quic_tls_check_alpn(wzp_quic_conn *c);
void wzp_quic_tls_free(wzp_quic_conn *c);

#endif
