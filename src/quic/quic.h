/*
 * Sans-I/O QUIC (ngtcp2 0.12 + GnuTLS): endpoints, connections, pinning.
 *
 * An endpoint is everything behind one UDP socket: a table from connection
 * ID to connection, the TLS credentials of one identity, counters. It never
 * touches sockets or clocks; the owner drives it:
 *
 *   wzp_quic_endpoint_feed(ep, local, remote, bytes, len, now)  per packet in
 *   wzp_quic_endpoint_flush(ep, now, send, user)                 packets out
 *   wzp_quic_endpoint_expiry(ep)  /  wzp_quic_endpoint_handle_expiry(ep, now)
 *
 * Call flush after every feed, handle_expiry, send or close (it writes what
 * they made due). Their cost follows the connections with work (fed, given
 * data, or whose timer came), O(log n) each, not the connections held: idle
 * ones wait in a timer heap, so expiry is O(1) after a flush. Connections are created by
 * wzp_quic_connect (client) or by the `accept` callback on an Initial packet (server).
 *
 * Authentication: every connection uses TLS 1.3 with ALPN "wzp/1"
 * (mandatory), both sides present their identity certificate, and each side
 * checks the SHA-256 of the peer's SubjectPublicKeyInfo against a pinned
 * fingerprint (WZP_QUIC_PIN_EXACT) or accepts any key and reports its
 * fingerprint (WZP_QUIC_PIN_ANY: the relay identifies clients by the key
 * they prove to hold). A mismatch fails the handshake (TLS alert 42) and the
 * connection closes with WZP_ERR_PIN_MISMATCH and a detail string naming the
 * expected and the presented fingerprints. The one exception: a client's
 * control connection to a relay presents no certificate (`anonymous`) and
 * proves its key right after the handshake with a signature over the
 * session's exporter (wzp_quic_conn_auth_proof), which the relay checks
 * (wzp_quic_auth_verify) on a connection that accepted it (`cert_optional`).
 *
 * Paths. The addresses given to feed() are the connection's path as ngtcp2
 * sees it, byte for byte. Two ways to use that:
 *  (a) real addresses: pass the socket's local address and the packet's
 *      source, and send each packet of flush() to the `remote` it names.
 *      A server connection follows NAT rebinding: packets from a new source
 *      address trigger ngtcp2's path validation, after which the connection
 *      (and wzp_quic_conn_remote_addr) uses the new address.
 *  (b) virtual addresses: a path manager above routes packets itself (relay
 *      or direct). It passes one fixed local/remote pair on every feed for
 *      that connection (the pair it gave wzp_quic_connect, or the first one
 *      the server saw) and ignores the addresses flush() reports. Because
 *      the path never changes, QUIC never starts a path validation.
 *
 * Events of a connection arrive through the callbacks in its options
 * (wzp_quic_conn_config.cb), with its user data (wzp_quic_conn_user) and the
 * time of the input that caused them, during feed, handle_expiry or flush.
 * The endpoint itself has one callback: accept, for a new peer's Initial. A
 * callback may only queue work (send_datagram, send_message, close,
 * set_user, read accessors); it must never call feed, flush, handle_expiry
 * or free the endpoint.
 *
 * Connection lifetime: the endpoint owns every connection. Each connection
 * gets exactly one `closed` callback (server connections that failed their
 * handshake too, so the owner can log the pin mismatch); the handle is
 * invalid once that callback returns (the endpoint keeps the closing or
 * draining state internally for 3 PTO and then frees it).
 *
 * Queues: messages queued with send_message are not bounded here (the
 * owner decides how much to queue); datagrams are (opts.datagram_queue).
 *
 * Not thread-safe: one thread drives an endpoint and its connections.
 *
 * Message channel: one bidirectional stream (client-opened, id 0) carries
 * messages framed as a 4-byte big-endian length and the payload. An empty
 * message is a no-op: the client sends one to open the stream so the server
 * may speak first. A message longer than max_message closes the connection
 * with PROTOCOL_VIOLATION (WZP_ERR_PROTOCOL on both sides).
 */
#ifndef WZP_QUIC_QUIC_H
#define WZP_QUIC_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>
#include <wzp/wzp.h>

#include "common/addr.h"
#include "common/time.h"

#define WZP_QUIC_ALPN   "wzp/1"
#define WZP_QUIC_CIDLEN 16 /* every connection ID we issue has this length */
/* Largest datagram payload accepted by wzp_quic_conn_send_datagram: fits a
 * 1200-byte QUIC packet with a short header and a DATAGRAM frame header. */
#define WZP_QUIC_MAX_DATAGRAM 1150
#define WZP_QUIC_MAX_PACKET   1500 /* buffer size that holds any packet we write */

typedef struct wzp_quic_endpoint wzp_quic_endpoint;
typedef struct wzp_quic_conn wzp_quic_conn;

typedef enum wzp_quic_pin_mode {
    WZP_QUIC_PIN_EXACT = 0, /* the peer's fingerprint must equal `pin` */
    WZP_QUIC_PIN_ANY = 1,   /* any key; its fingerprint is reported */
} wzp_quic_pin_mode;

typedef struct wzp_quic_close_info wzp_quic_close_info;

/*
 * A connection's events, each with the connection's user data and `now`,
 * the time of the feed, timer run or flush that caused it.
 */
typedef struct wzp_quic_conn_callbacks {
    /* Handshake confirmed: the peer's key checked, and the peer accepted
     * ours (on a client this waits for HANDSHAKE_DONE, one RTT after TLS
     * completes, because a TLS 1.3 server checks the client's certificate
     * last; an `anonymous` client has nothing for the server to check, so its
     * handshake's end is enough and its first messages leave with its
     * Finished). Datagrams can be sent from here on. peer_fp is NULL for a
     * client that presented no certificate (only with cert_optional). */
    void (*established)(void *user, wzp_quic_conn *c, const uint8_t peer_fp[WZP_FINGERPRINT_LEN],
                        wzp_ts now);
    void (*datagram)(void *user, wzp_quic_conn *c, const uint8_t *data, size_t len, wzp_ts now);
    void (*message)(void *user, wzp_quic_conn *c, const uint8_t *data, size_t len, wzp_ts now);
    /* Exactly once per connection; c is invalid after it returns. */
    void (*closed)(void *user, wzp_quic_conn *c, const wzp_quic_close_info *info, wzp_ts now);
    /*
     * The remote address ngtcp2 uses (wzp_quic_conn_remote_addr) changed to
     * one the peer has proved it receives at (path validation succeeded, or
     * the fallback to the path the handshake validated): a server followed
     * NAT rebinding. An unvalidated move (a spoofed source, say) is never
     * reported; nor the path a connection starts on, nor a move once it is
     * closing. Lets the owner follow clients without scanning them all.
     */
    void (*path_changed)(void *user, wzp_quic_conn *c, const wzp_addr *remote, wzp_ts now);
} wzp_quic_conn_callbacks;

typedef struct wzp_quic_conn_config {
    wzp_quic_pin_mode pin_mode;
    uint8_t pin[WZP_FINGERPRINT_LEN];
    wzp_ts initial_rtt;       /* RTT assumed before the first sample; 0 = 100 ms */
    wzp_ts idle_timeout;      /* 0 = 30 s */
    wzp_ts keep_alive;        /* send a PING after this much silence; 0 = off */
    wzp_ts handshake_timeout; /* 0 = 10 s */
    size_t max_message;       /* largest message accepted from the peer; 0 = 64 KiB */
    size_t datagram_queue;    /* datagrams queued before send gives AGAIN; 0 = 64 */
    const char *alpn;         /* NULL = WZP_QUIC_ALPN; other values only for tests */
    /*
     * Client only (ignored on servers): datagrams may be queued and sent as
     * soon as the client's TLS handshake completes (the server's key checked
     * against the pin), one round trip before `established`, which waits for
     * the server to accept our key. Saves that round trip for the first media
     * of a call; the server drops datagrams that arrive before its own
     * handshake completes. See wzp_quic_conn_can_send_datagram.
     */
    bool early_datagrams;
    /* The owner routes this connection's packets itself on a virtual path: a
     * feed with no path (wzp_quic_endpoint_feed) may deliver to it. */
    bool path_managed;
    /* Free the TLS session once established (a relay's control connections hold
     * thousands): the keys live on in the QUIC layer, but wzp_quic_conn_export
     * then fails with WZP_ERR_STATE and TLS data from the peer closes the
     * connection (QUIC peers send none after the handshake). */
    bool release_tls;
    /* Client: present no certificate (the relay's control connection: the client proves
     * its key with Auth instead, see wzp_quic_conn_auth_proof). `established` then
     * fires as its own handshake ends, one round trip earlier. */
    bool anonymous;
    /* Server: ask for the client's certificate but accept a client without one;
     * `established` then reports no fingerprint and the owner authenticates it. */
    bool cert_optional;
    wzp_quic_conn_callbacks cb; /* the connection's events (any may be NULL) */
    void *user;                 /* their user data: the initial wzp_quic_conn_user() value */
} wzp_quic_conn_config;

void wzp_quic_conn_config_default(wzp_quic_conn_config *o);

struct wzp_quic_close_info {
    int error;          /* 0: closed by an application (app_code, reason); else a wzp_error */
    bool by_peer;       /* the peer closed (or failed) the connection, not us */
    uint64_t app_code;  /* application close code, when error == 0 */
    const char *reason; /* peer's or our reason phrase, printable, maybe "" */
    const char *detail; /* diagnostic, same as wzp_quic_conn_error_detail() */
    /* The peer answered with a Stateless Reset (RFC 9000 10.3): it has lost
     * the connection's state (a restarted relay, say) and will never answer
     * again. Then error is WZP_ERR_CLOSED, by_peer is set and detail is
     * "stateless reset from peer". Reconnect at once rather than wait. */
    bool by_reset;
    /* error WZP_ERR_TLS by the peer: the TLS alert it failed the handshake with (0: none). */
    uint8_t tls_alert;
};

/* TLS 1.3's alert for a client that sent no certificate to a server requiring one. */
#define WZP_QUIC_TLS_ALERT_CERTIFICATE_REQUIRED 116

/* The endpoint's own callback. */
typedef struct wzp_quic_callbacks {
    /* Server: an Initial from a new peer. Fill *opts (pre-set to defaults;
     * its callbacks and user data become the new connection's) and return 0
     * to accept, or a negative value to drop it. NULL: refuse. Not called
     * for Initials answered with a Retry or dropped by the address
     * validation rules (see wzp_quic_endpoint_config). */
    int (*accept)(void *user, const wzp_addr *local, const wzp_addr *remote,
                  wzp_quic_conn_config *opts, wzp_ts now);
} wzp_quic_callbacks;

/*
 * Address validation for servers (RFC 9000 8.1), against Initial floods
 * from spoofed sources. A handshaking server connection costs about 90 KB
 * (ngtcp2 and GnuTLS state) and its first flight is larger than the Initial that made
 * it, so while many connections are handshaking the endpoint answers an
 * Initial without a token with a stateless Retry instead: only a client that
 * receives packets at its source address comes back with the token, which is
 * bound to that address (IP and port) and expires. Clients follow Retry
 * transparently (one extra round trip). Independently, one IP address may
 * hold only so many unvalidated handshaking connections at once; an Initial
 * beyond that gets a Retry, not silence, so spoofed Initials that never
 * complete cannot lock the real clients behind that address out. Initials
 * whose Retry token proved the address count against a separate, larger
 * bound (WZP_QUIC_VALIDATED_CAP_FACTOR times the cap): an attacker really
 * at that address still cannot open handshakes without limit.
 *
 * Stateless reset (RFC 9000 10.3). Every connection ID an endpoint issues
 * carries a reset token derived from the endpoint's reset secret and the ID.
 * A short-header packet for a connection the endpoint does not know is
 * answered with a Stateless Reset carrying the token of its destination ID
 * (shorter than that packet, at most WZP_QUIC_RESET_RATE per second), so a
 * peer of a process that restarted with the same secret (static_secret)
 * learns at once that its connection is gone: its `closed` fires with
 * by_reset. Without a static secret the secret is random per endpoint (a
 * restart is then not recognised; the peer waits for its idle timeout).
 */
#define WZP_QUIC_VALIDATED_CAP_FACTOR 4
#define WZP_QUIC_RESET_RATE           100 /* Stateless Resets per second, bursts of as many */
#define WZP_QUIC_RETRY_NEVER          SIZE_MAX

typedef struct wzp_quic_endpoint_config {
    /* Fixed at creation (wzp_quic_endpoint_configure ignores them): */
    const wzp_identity *id; /* required: presented to peers; borrowed, outlives the endpoint */
    bool server;            /* accept new connections via cb.accept */
    wzp_quic_callbacks cb;  /* copied */
    void *user;             /* the callbacks' user data */
    /* Address validation and stateless reset (see above): */
    /* Retry a token-less Initial while at least this many connections are
     * handshaking: 0 = always, WZP_QUIC_RETRY_NEVER (default) = never. */
    size_t retry_threshold;
    wzp_ts retry_token_lifetime; /* 0 = 5 s: a round trip plus a few Initial retransmissions */
    /* Unvalidated handshaking connections one IPv4 address (any port) or IPv6 /64 may
     * hold; token-less Initials beyond it get a Retry. Validated ones (valid Retry token)
     * count separately, up to WZP_QUIC_VALIDATED_CAP_FACTOR times this; Initials beyond
     * that are dropped. 0 (default) = no cap. */
    size_t max_handshakes_per_addr;
    /* Keys the stateless reset tokens of the connection IDs issued from now on
     * (configure before connecting or accepting). A server that restarts with
     * the same secret resets its former clients' connections. false (default):
     * keep the endpoint's secret (random unless configured before). */
    bool have_static_secret;
    uint8_t static_secret[32];
    /* Debugging: a directory to write every connection's qlog into (JSON-SEQ, one file
     * per connection, DIR/<role>-<first source CID>.sqlog); NULL = none. Borrowed. */
    const char *qlog_dir;
    /* Connection-ID routing (fixed at creation; see wzp_quic_route): this endpoint is
     * route_index of route_count behind one port; count 0 or 1 = alone. */
    unsigned route_index, route_count;
    uint64_t route_key;
    /* Fixed at creation: for an endpoint holding thousands of mostly idle connections (a
     * relay), ngtcp2's large blocks come from memory placed page by page, so an idle
     * connection keeps resident only the pages it touched (src/quic/lean_mem.c). */
    bool lean_conns;
} wzp_quic_endpoint_config;

/* No identity (set id), client, no callbacks, no Retry, no per-address cap,
 * a random reset secret. */
void wzp_quic_endpoint_config_default(wzp_quic_endpoint_config *cfg);

/* Endpoint counters. Every packet fed lands in exactly one rx_* bucket, or
 * in retries_sent. */
typedef struct wzp_quic_endpoint_stats {
    uint64_t rx_packets;     /* handed to a connection */
    uint64_t rx_not_quic;    /* first byte is not QUIC (see wire/demux.h) */
    uint64_t rx_malformed;   /* header does not parse (truncated, garbage) */
    uint64_t rx_bad_version; /* long header with a version we do not speak */
    uint64_t rx_unknown_cid; /* no such connection and not a valid new Initial (a short
                              * header one may be answered with a Stateless Reset) */
    uint64_t rx_refused;     /* Initial refused by accept, creation failed, or Retry queue full */
    uint64_t rx_closed_conn; /* for a connection already closing or draining */
    uint64_t rx_bad_token;   /* Initial with an invalid, expired or misbound token */
    uint64_t rx_addr_capped; /* validated Initial from an IP at its validated-handshake cap */
    uint64_t tx_invalid_token_closes;  /* stateless CONNECTION_CLOSE(INVALID_TOKEN) answers */
    uint64_t retries_sent;             /* Initials answered with a Retry */
    uint64_t retries_addr_cap;         /* of those: the IP was at max_handshakes_per_addr */
    uint64_t stateless_resets_sent;    /* answers to short-header packets for no connection */
    uint64_t stateless_resets_limited; /* not sent: over WZP_QUIC_RESET_RATE or queue full */
    uint64_t tx_packets;
    uint64_t tx_bytes;
    uint64_t conns_accepted; /* server connections created */
    uint64_t conns_active;   /* connections the endpoint holds now */
} wzp_quic_endpoint_stats;

typedef struct wzp_quic_conn_stats {
    wzp_ts smoothed_rtt, min_rtt, latest_rtt; /* 0 until the first sample */
    uint64_t pto_count;
    uint64_t cwnd, bytes_in_flight;
    uint64_t pkts_sent, pkts_recv;     /* packets written / accepted by ngtcp2 */
    uint64_t dgrams_sent, dgrams_recv; /* DATAGRAM frames */
    uint64_t dgrams_lost;              /* declared lost by ngtcp2 */
    uint64_t dgrams_dropped;           /* accepted, then not sendable (peer limit, closing) */
    uint64_t dgrams_dropped_bytes;     /* their payload bytes */
    uint64_t msgs_sent, msgs_recv;
} wzp_quic_conn_stats;

/*
 * Creates an endpoint presenting cfg->id (start from
 * wzp_quic_endpoint_config_default). 0, WZP_ERR_INVALID (NULL cfg or id),
 * WZP_ERR_NOMEM or an identity error (*out untouched).
 */
int wzp_quic_endpoint_new(wzp_quic_endpoint **out, const wzp_quic_endpoint_config *cfg);
/* Changes the server address validation and reset secret settings later (see
 * wzp_quic_endpoint_config; id, server, cb and user are ignored); applies to
 * Initials fed from now on. WZP_ERR_INVALID for a NULL argument. */
int wzp_quic_endpoint_configure(wzp_quic_endpoint *ep, const wzp_quic_endpoint_config *cfg);
/* Frees the endpoint and every connection, without callbacks and without
 * sending anything (close connections and flush first for a clean end). */
void wzp_quic_endpoint_free(wzp_quic_endpoint *ep);

/* What one fed packet did. */
typedef struct wzp_quic_rx {
    wzp_quic_conn *conn; /* the connection it was handed to (new ones included), or NULL */
    bool authenticated;  /* QUIC decrypted at least one packet in it: its sender holds the
                            connection's keys (garbage with a valid connection ID is not) */
} wzp_quic_rx;

/*
 * One received UDP payload. Bad or unknown packets are dropped and counted;
 * the return value is 0 or WZP_ERR_NOMEM. With local and remote NULL the
 * packet is fed to the connection its DCID names on that connection's own
 * path (a path manager's virtual path), decoding the connection ID once. rx
 * (may be NULL) says which connection took it and whether it authenticated.
 */
int wzp_quic_endpoint_feed(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                           const uint8_t *pkt, size_t len, wzp_ts now, wzp_quic_rx *rx);

/* Receives each packet to send, with the path it belongs to. The bytes are
 * valid during the call only. */
typedef void (*wzp_quic_send_fn)(void *user, const wzp_addr *local, const wzp_addr *remote,
                                 const uint8_t *pkt, size_t len);
/* Writes everything due at `now`. Returns the number of packets written. */
int wzp_quic_endpoint_flush(wzp_quic_endpoint *ep, wzp_ts now, wzp_quic_send_fn send,
                            void *send_user);

/* Next time handle_expiry must run; may be in the past; WZP_TS_NEVER if none. */
wzp_ts wzp_quic_endpoint_expiry(const wzp_quic_endpoint *ep);
/* Runs timers (loss recovery, idle, keep-alive, closing periods). Flush after. */
void wzp_quic_endpoint_handle_expiry(wzp_quic_endpoint *ep, wzp_ts now);

void wzp_quic_endpoint_get_stats(const wzp_quic_endpoint *ep, wzp_quic_endpoint_stats *out);
size_t wzp_quic_endpoint_conn_count(const wzp_quic_endpoint *ep);

/*
 * The connection a received packet belongs to, by its destination connection
 * ID (closing ones included) or, for a Stateless Reset, by the peer's reset
 * token it ends with, or NULL. Reads nothing else and changes nothing:
 * a path manager uses it to find the call of an end-to-end packet that
 * arrived on a direct path before feeding it with the call's virtual path.
 */
wzp_quic_conn *wzp_quic_endpoint_lookup(const wzp_quic_endpoint *ep, const uint8_t *pkt,
                                        size_t len);

/*
 * Connection-ID routing: one server spread over several endpoints (one per
 * thread) behind one UDP port. A packet belongs to endpoint
 * wzp_quic_route(key, count, pkt, len): a keyed hash (SipHash, key secret
 * to the server) of its destination connection ID, modulo count. Every ID
 * endpoint i of count issues (route_index/route_count/route_key in its
 * config: handshake, NEW_CONNECTION_ID, Retry) is drawn at random until it
 * hashes to i, so one rule routes everything: a new client's Initial (an
 * ID it chose) lands on whichever endpoint its hash names, and that
 * endpoint's own IDs, which the client uses from then on, hash there too.
 * The IDs stay random to an observer (no plaintext marker). Packets with no
 * readable destination ID go to 0, which drops them. Reads nothing but the
 * header; any thread.
 */
unsigned wzp_quic_route(uint64_t key, unsigned count, const uint8_t *pkt, size_t len);

/* Starts a client connection on `ep` over the path local -> remote. */
int wzp_quic_connect(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                     const wzp_quic_conn_config *opts, wzp_ts now, wzp_quic_conn **out);

/*
 * Queues one datagram (copied). WZP_ERR_AGAIN before the handshake completes
 * or when the queue is full (media should drop it then), WZP_ERR_TOO_BIG
 * over WZP_QUIC_MAX_DATAGRAM or the peer's limit, WZP_ERR_STATE if the peer
 * does not accept datagrams, WZP_ERR_CLOSED once closing. A queued datagram
 * held back by congestion control waits for the next flush.
 */
int wzp_quic_conn_send_datagram(wzp_quic_conn *c, const uint8_t *data, size_t len);

/* Queues one reliable message (copied; the peer enforces its max_message;
 * an empty message is delivered to nobody). Sent in order once the stream
 * is open; WZP_ERR_CLOSED once closing. */
int wzp_quic_conn_send_message(wzp_quic_conn *c, const uint8_t *data, size_t len);

/* Closes with an application code and reason (truncated to 200 bytes): the
 * next flush sends CONNECTION_CLOSE and `closed` fires. Idempotent. */
void wzp_quic_conn_close(wzp_quic_conn *c, uint64_t app_code, const char *reason);

/* RFC 5705/8446 exporter on the TLS session; WZP_ERR_STATE before the handshake. */
int wzp_quic_conn_export(wzp_quic_conn *c, const char *label, const uint8_t *context,
                         size_t context_len, uint8_t *out, size_t len);

/*
 * Client authentication bound to the session, for a client without a certificate
 * (docs/signaling.md, "Auth"). The proof is the client's identity key's signature over
 * WZP_QUIC_AUTH_CONTEXT || the session's binding (its TLS exporter with
 * WZP_QUIC_AUTH_LABEL, no context, 32 bytes): it names this session, so it cannot be
 * replayed on another one (nor to another relay: the session is bound to the relay's key).
 */
#define WZP_QUIC_AUTH_LABEL   "EXPORTER-wzp-relay-auth"
#define WZP_QUIC_AUTH_CONTEXT "wzp relay auth v1"
#define WZP_QUIC_AUTH_BINDING 32
#define WZP_QUIC_AUTH_KEY_MAX 128 /* DER SubjectPublicKeyInfo (P-256: 91 bytes) */
#define WZP_QUIC_AUTH_SIG_MAX 128 /* a signature (ECDSA P-256 in DER: at most 72 bytes) */
/* The session's binding; needs the TLS session (a server: read it in `established`,
 * before release_tls frees it). 0, WZP_ERR_STATE or WZP_ERR_TLS. */
int wzp_quic_conn_auth_binding(wzp_quic_conn *c, uint8_t out[WZP_QUIC_AUTH_BINDING]);
/* Client, once established: our key (DER SPKI) and its signature over this session's
 * binding. 0, WZP_ERR_STATE or WZP_ERR_TLS. */
int wzp_quic_conn_auth_proof(wzp_quic_conn *c, uint8_t key[WZP_QUIC_AUTH_KEY_MAX], size_t *key_len,
                             uint8_t sig[WZP_QUIC_AUTH_SIG_MAX], size_t *sig_len);
/* Relay: checks a proof against the binding of the session it came on. Ed25519 keys
 * (their one DER form) and ECDSA P-256 keys; fills fp with the key's fingerprint, the
 * one its certificate would give. 0, WZP_ERR_MALFORMED (a key that does not parse or of
 * another type) or WZP_ERR_IDENTITY (the signature does not verify); *why (may be NULL)
 * then says which in a few words. */
int wzp_quic_auth_verify(const uint8_t binding[WZP_QUIC_AUTH_BINDING], const uint8_t *key,
                         size_t key_len, const uint8_t *sig, size_t sig_len,
                         uint8_t fp[WZP_FINGERPRINT_LEN], const char **why);

bool wzp_quic_conn_is_established(const wzp_quic_conn *c);
/* Whether send_datagram would queue now: established, or (early_datagrams) a
 * client whose TLS handshake completed. */
bool wzp_quic_conn_can_send_datagram(const wzp_quic_conn *c);
bool wzp_quic_conn_is_server(const wzp_quic_conn *c);
/* The peer's fingerprint once the handshake checked it; WZP_ERR_STATE before. */
int wzp_quic_conn_peer_fingerprint(const wzp_quic_conn *c, uint8_t fp[WZP_FINGERPRINT_LEN]);
/* The path ngtcp2 currently uses (after a migration: the new one). */
void wzp_quic_conn_remote_addr(const wzp_quic_conn *c, wzp_addr *out);
void wzp_quic_conn_local_addr(const wzp_quic_conn *c, wzp_addr *out);
/*
 * Client: our own socket moved to `local` (a new port or interface we know
 * about; a NAT rebinding we cannot see needs nothing). Feed later packets
 * with `local`; the server validates the new path and follows. Without this
 * the client drops packets fed with an address it does not know.
 * WZP_ERR_STATE on a server connection, WZP_ERR_CLOSED once closing.
 */
int wzp_quic_conn_set_local_addr(wzp_quic_conn *c, const wzp_addr *local);
/* Why the connection failed or closed; "" while open. */
const char *wzp_quic_conn_error_detail(const wzp_quic_conn *c);
void wzp_quic_conn_get_stats(const wzp_quic_conn *c, wzp_quic_conn_stats *s);
void *wzp_quic_conn_user(const wzp_quic_conn *c);
void wzp_quic_conn_set_user(wzp_quic_conn *c, void *user);

#endif
