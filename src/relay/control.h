/*
 * The relay's control plane, sans-I/O: registrations, reflexive addresses and
 * call setup between clients connected over their control QUIC connections.
 *
 * The transport owns the connections. It tells this object about each one
 * (an opaque 64-bit handle, the client's fingerprint proven by its TLS
 * certificate, its address), hands it every complete signaling message read
 * from the connection's stream, and carries out what the callbacks ask
 * (send, close, open/close forwarding channels). Time is `now` on every call;
 * nothing here reads a clock, touches a socket or starts a thread.
 *
 * Rules it enforces:
 *  - Identity is the proven fingerprint. One connection per fingerprint: a
 *    new connection registering it replaces the old one atomically (the old
 *    one is closed and forgotten; its late on_disconnect changes nothing).
 *  - An alias is bound first come to one fingerprint, and stays bound to it
 *    for `alias_reclaim` after that fingerprint disconnects, so nobody else
 *    can take it over while its owner is briefly away (or the relay
 *    restarts: the transport saves and reloads the bindings through
 *    wzp_relay_control_aliases_export / _load_alias). Registering another
 *    alias, or none, releases the old one.
 *  - Per source address (IPv4, or IPv6 /64) at most max_conns_per_addr
 *    connections; a connection that does not register within
 *    register_timeout is closed, so idle floods give their memory back.
 *  - A callee learns the caller's addresses only when it accepts (CallSetup);
 *    IncomingCall carries only the caller's proven identity.
 *  - Only the two parties may act on a call; others get ERR_NO_SUCH_CALL,
 *    exactly as for an id that does not exist.
 *  - Unanswered calls expire; a party's connection ending ends its calls;
 *    forwarding channels are closed whenever an accepted call ends.
 *  - Abuse (message rate, bad or oversized messages, registration cap) is
 *    answered with an Error, counted, and on repetition with close().
 *
 * Callbacks run synchronously inside the on_* / handle_timer calls and must
 * not call back into this object. Connection handles must not be reused
 * during the object's lifetime (a counter is fine).
 */
#ifndef WZP_RELAY_CONTROL_H
#define WZP_RELAY_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "relay/cluster_msg.h"
#include "relay/park.h"
#include "wire/signal.h"

/* Why the control plane asked the transport to close a connection. */
typedef enum wzp_relay_close_code {
    WZP_RELAY_CLOSE_REPLACED = 1,     /* the same fingerprint registered elsewhere */
    WZP_RELAY_CLOSE_TOO_BIG = 2,      /* a message over WZP_SIG_MAX_SIZE */
    WZP_RELAY_CLOSE_RATE_LIMIT = 3,   /* kept sending while rate limited */
    WZP_RELAY_CLOSE_BAD_MESSAGES = 4, /* too many malformed messages */
    WZP_RELAY_CLOSE_REG_LIMIT = 5,    /* registration cap reached */
    WZP_RELAY_CLOSE_ADDR_LIMIT = 6,   /* too many connections from this address */
    WZP_RELAY_CLOSE_REG_TIMEOUT = 7,  /* did not register within register_timeout */
    /* Client -> relay (the code itself, WZP_SIG_CLOSE_PARKED on the wire): it takes the
     * relay's Park offer; relay -> client: the relay saw it take the offer (a ping came). */
    WZP_RELAY_CLOSE_PARKED = 8,
    WZP_RELAY_CLOSE_AUTH = 9, /* no certificate and no valid Auth first (shard.c) */
} wzp_relay_close_code;

typedef struct wzp_relay_control_callbacks {
    /* Queue one message on the connection's control stream. */
    void (*send)(void *user, uint64_t conn, const uint8_t *msg, size_t len);
    /* Close the connection (after flushing what was sent). Its state here is already gone. */
    void (*close)(void *user, uint64_t conn, wzp_relay_close_code code, const char *reason);
    /*
     * Allocate a forwarding channel for each side of an accepted call: chan_a
     * for conn_a (the caller, now at addr_a), chan_b for conn_b (the callee, at
     * addr_b); the addresses are those of the control connections, which the
     * clients' relay frames share. Returns 0 or a negative wzp_error (the call
     * then ends with END_ERROR). Optional: NULL gives channel ids 0 (no relay
     * path).
     */
    int (*channels_open)(void *user, uint64_t call, uint64_t conn_a, const wzp_addr *addr_a,
                         uint64_t conn_b, const wzp_addr *addr_b, wzp_ts now, uint32_t *chan_a,
                         uint32_t *chan_b);
    /* The call ended: release both channels. Optional. */
    void (*channels_close)(void *user, uint32_t chan_a, uint32_t chan_b);
    /*
     * A party of an accepted call moved (on_addr_change): its channel must
     * now accept frames from, and deliver to, addr. Optional.
     */
    void (*channel_moved)(void *user, uint32_t chan, const wzp_addr *addr);
    /* A cross-relay call's link channel (its peer is the other relay): frames
     * to it carry peer_id, the other relay's channel id. Optional. */
    void (*channel_peer)(void *user, uint32_t chan, uint32_t peer_id);

    /*
     * Cluster (src/relay/cluster.h); all NULL for a relay on its own.
     * claim_alias: a registration asks for an alias no local binding gives
     * its key; answer (any time later) with wzp_relay_control_claim_done.
     * presence: fp is registered here now (up, with its alias or "") or no
     * longer. locate: the callee of call_id is not registered here; answer
     * with wzp_relay_control_located. cluster_send: a message for another
     * relay (m->to is set; the transport sets from and ts_ms).
     */
    void (*claim_alias)(void *user, uint64_t conn, const uint8_t fp[WZP_SIG_FP_LEN],
                        const char *alias);
    void (*presence)(void *user, const uint8_t fp[WZP_SIG_FP_LEN], const char *alias, bool up);
    void (*locate)(void *user, const uint8_t call_id[WZP_SIG_CALL_ID_LEN], bool by_alias,
                   const uint8_t fp[WZP_SIG_FP_LEN], const char *alias);
    void (*cluster_send)(void *user, wzp_cluster_msg *m);
    /*
     * call_record: an answered call's record in the cluster store: both ends' keys and
     * relays (NULL: this relay), written when it is answered or an end moves, deleted (live
     * false) when it ends; refreshed through wzp_relay_control_foreach_call. reattach_lookup:
     * a Reattach for a call not here; check key fp against end `end` (0 caller, 1 callee) of
     * the record, make this relay that end's, and answer with wzp_relay_control_reattach_found.
     */
    void (*call_record)(void *user, const uint8_t call_id[WZP_SIG_CALL_ID_LEN],
                        const uint8_t fp_a[WZP_SIG_FP_LEN], const uint8_t *relay_a,
                        const uint8_t fp_b[WZP_SIG_FP_LEN], const uint8_t *relay_b, bool live);
    void (*reattach_lookup)(void *user, uint64_t conn, uint64_t request_id,
                            const uint8_t call_id[WZP_SIG_CALL_ID_LEN], int end,
                            const uint8_t fp[WZP_SIG_FP_LEN]);
    /* A park frame (src/wire/park_frame.h: PARK_PONG, WAKE) for the UDP address `to`, from
     * the relay port. Optional: NULL, and nobody is offered Park. */
    void (*park_send)(void *user, const wzp_addr *to, const uint8_t *frame, size_t len);
} wzp_relay_control_callbacks;

typedef struct wzp_relay_control_config {
    wzp_ts ring_timeout;             /* unanswered calls end after this; default 60 s */
    uint32_t max_registrations;      /* registered fingerprints; default 100000 */
    uint32_t max_calls;              /* calls ringing or active; default 100000 */
    uint32_t max_calls_per_identity; /* ringing or active per fingerprint; default 1, 0 = any */
    uint32_t rate_per_sec;           /* message tokens per second per connection; default 20 */
    uint32_t rate_burst;             /* bucket size; default 40 */
    uint32_t abuse_close_after;      /* consecutive rate-limited messages before close; 50 */
    uint32_t max_bad_messages;       /* malformed messages per connection before close; 10 */
    wzp_addr relay_addr;             /* forwarding plane address put in CallSetup; len 0: none */
    wzp_addr cluster_addr; /* the forwarding address other relays of the cluster send to */
    /* An alias stays bound to its key this long after the key disconnects;
     * default 30 days, 0 = bindings end at disconnect. */
    wzp_ts alias_reclaim;
    uint32_t max_alias_bindings; /* bindings kept, live or not; 0 = 2 * max_registrations */
    /* Control connections (registered or not) per IPv4 address or IPv6 /64;
     * default 64 (many users may share one CGNAT address), 0 = no cap. */
    uint32_t max_conns_per_addr;
    wzp_ts register_timeout; /* unregistered connections close after this; 10 s, 0 = never */
    /* A registered client that sent nothing this long and has no call in any state and no
     * alias claim under way is offered Park (docs/signaling.md); default 2 s, 0 = never.
     * Never a client on the TCP service. */
    wzp_ts park_after;
    wzp_ts park_keepalive; /* the PARK_PING interval it is told; default 4 s */
    /* Park keys derived from this (park.h, secret): a relay restarted with the same one tells
     * its former parked clients to register again at their next ping. */
    uint8_t park_secret[32];
    bool have_park_secret;
    wzp_relay_control_callbacks cb; /* send and close required, the rest optional */
    void *user;                     /* the callbacks' user data */
} wzp_relay_control_config;

/* Counters; "drop_*" count messages not acted on, by cause. */
typedef struct wzp_relay_control_stats {
    uint64_t msgs_in, msgs_out;
    uint64_t drop_unknown_conn; /* message for a connection not (or no longer) known */
    uint64_t drop_too_big;
    uint64_t drop_malformed;
    uint64_t drop_version;
    uint64_t drop_rate_limited;
    uint64_t drop_not_registered;
    uint64_t drop_unexpected;   /* relay->client message types sent by a client */
    uint64_t drop_no_such_call; /* unknown call id or not a party */
    uint64_t drop_bad_state;    /* wrong role or call state */
    uint64_t reg_ok, reg_replaced, reg_alias_taken, reg_over_cap;
    uint64_t conn_over_addr_cap; /* connections refused by max_conns_per_addr */
    uint64_t reg_timeouts;       /* closed for not registering in time */
    uint64_t alias_table_full;   /* new aliases refused: max_alias_bindings */
    uint64_t offers_over_limit;  /* caller over its per-identity or the global call cap */
    uint64_t closes;             /* close() requests we made */
    uint64_t late_disconnects;   /* on_disconnect for a handle we had already dropped */
    uint64_t calls_offered, calls_setup;
    uint64_t channel_open_failures;
    uint64_t calls_ended[WZP_SIG_END_ERROR + 1]; /* by wzp_sig_end_reason */
    /* How answered calls went, as the party hanging up reported it (by
     * wzp_sig_call_path; UNSPECIFIED: an older client, or no media yet). */
    uint64_t path_reports[WZP_SIG_PATH_DIRECT + 1];
    /* Cluster: calls whose other party is on another relay, offered from
     * here or to here; cluster messages refused (unknown call, wrong relay,
     * wrong state); callees not found anywhere; lookups that failed (store down). */
    uint64_t cross_offered, cross_received, cross_refused, cross_not_found, cross_unavailable;
    uint64_t claims_refused;               /* aliases another relay's key holds */
    uint64_t reattached, reattach_refused; /* call ends moved here, and refused */
    /* Parking: offers made, taken (connection closed), declined (the client kept talking),
     * lapsed (neither); parked registrations that ended for want of pings; parked clients
     * back on a connection (adopted); parked registrations their client ended (BYE). */
    uint64_t parks_offered, parks_taken, parks_declined, parks_lapsed, parks_expired, unparked,
        parks_left;
    wzp_park_stats park; /* pings by result, WAKEs sent, wakes that got no answer */
} wzp_relay_control_stats;

typedef struct wzp_relay_control wzp_relay_control;

void wzp_relay_control_config_default(wzp_relay_control_config *cfg);

/*
 * 0, WZP_ERR_INVALID for a bad config (NULL: the callbacks are required; send
 * or close missing, zero rate, burst or ring timeout, a relay_addr without a
 * port) or WZP_ERR_NOMEM (*out untouched).
 */
int wzp_relay_control_new(wzp_relay_control **out, const wzp_relay_control_config *cfg);
/* Frees all state without invoking callbacks (the transport is going away too). */
void wzp_relay_control_free(wzp_relay_control *rc);

/*
 * A control connection finished its handshake. WZP_ERR_INVALID for a handle
 * already known or an address that is not IPv4/IPv6 with a port.
 */
int wzp_relay_control_on_connect(wzp_relay_control *rc, uint64_t conn,
                                 const uint8_t fp[WZP_SIG_FP_LEN], const wzp_addr *remote,
                                 wzp_ts now);
/* One complete message from the connection's control stream. */
void wzp_relay_control_on_message(wzp_relay_control *rc, uint64_t conn, const uint8_t *msg,
                                  size_t len, wzp_ts now);
/* The connection ended (any cause). Unknown or already dropped handles are ignored. */
void wzp_relay_control_on_disconnect(wzp_relay_control *rc, uint64_t conn, wzp_ts now);
/*
 * The relay is stopping gracefully: from now on registrations, offers and re-attachments are
 * refused ("relay stopping"), every registered client is told to go to another relay of the
 * cluster (Rehome), and clients leaving let go of their answered calls rather than end them,
 * so that the calls move with them.
 */
void wzp_relay_control_drain(wzp_relay_control *rc);
/* The client closed its connection saying it moves to another relay of the cluster: at its
 * disconnect its answered calls are let go of (for its Reattach elsewhere), not ended. */
void wzp_relay_control_on_moving(wzp_relay_control *rc, uint64_t conn);
/* The client closed its connection taking the Park offer (WZP_SIG_CLOSE_PARKED): at its
 * disconnect its registration stays, parked. */
void wzp_relay_control_on_parked(wzp_relay_control *rc, uint64_t conn);
/* A park frame (first byte WZP_PARK_PING) from UDP address `from`. */
void wzp_relay_control_on_park_frame(wzp_relay_control *rc, const wzp_addr *from,
                                     const uint8_t *frame, size_t len, wzp_ts now);
/* The relay stops now (no drain): one WAKE with WZP_PARK_REHOME to every parked client. */
void wzp_relay_control_park_farewell(wzp_relay_control *rc);
/* The transport saw the client's address change (NAT rebinding, migration). */
void wzp_relay_control_on_addr_change(wzp_relay_control *rc, uint64_t conn, const wzp_addr *remote,
                                      wzp_ts now);

void wzp_relay_control_handle_timer(wzp_relay_control *rc, wzp_ts now);
/* When handle_timer should next run; WZP_TS_NEVER if nothing is pending. */
wzp_ts wzp_relay_control_next_deadline(const wzp_relay_control *rc);

/* ---- alias bindings (persistence is the transport's job) ---- */

/* One binding, as exported and loaded. */
typedef struct wzp_relay_alias_binding {
    wzp_sig_alias alias;
    uint8_t fp[WZP_SIG_FP_LEN];
    /* When it ends unless its key registers again (monotonic, as `now`). For a
     * binding whose key is connected, exported as now + alias_reclaim. */
    wzp_ts expires;
} wzp_relay_alias_binding;

/*
 * Adds a saved binding, before any connection. Bindings with expires <= now
 * are skipped (0). WZP_ERR_INVALID for a bad alias or an alias or
 * fingerprint already bound, WZP_ERR_LIMIT when max_alias_bindings are
 * held, WZP_ERR_NOMEM.
 */
int wzp_relay_control_load_alias(wzp_relay_control *rc, const wzp_relay_alias_binding *b,
                                 wzp_ts now);
/* True when bindings were added or released since the last export. */
bool wzp_relay_control_aliases_dirty(const wzp_relay_control *rc);
/* Calls fn for every binding still in force (expired ones are pruned) and
 * clears the dirty flag. fn must not call back into rc. */
void wzp_relay_control_aliases_export(wzp_relay_control *rc, wzp_ts now,
                                      void (*fn)(void *user, const wzp_relay_alias_binding *b),
                                      void *user);
size_t wzp_relay_control_num_aliases(const wzp_relay_control *rc);

/* ---- cluster -------------------------------------------------------------- */

/* Outcome of claim_alias and locate. */
typedef enum wzp_relay_cluster_result {
    WZP_RELAY_CLUSTER_OK = 0,
    WZP_RELAY_CLUSTER_TAKEN = 1,       /* claim: another key holds the alias */
    WZP_RELAY_CLUSTER_NOT_FOUND = 2,   /* locate: no such alias, or its key is offline */
    WZP_RELAY_CLUSTER_UNAVAILABLE = 3, /* the cluster store cannot be reached */
} wzp_relay_cluster_result;

/* The cluster answered conn's alias claim (ignored if conn is gone or asked again since). */
void wzp_relay_control_claim_done(wzp_relay_control *rc, uint64_t conn, const char *alias,
                                  wzp_relay_cluster_result res, wzp_ts now);
/* The callee of call_id is registered on relay `relay`, whose forwarding address is fwd
 * (both ignored unless res is OK); the call continues, or ends with a clear reason. */
void wzp_relay_control_located(wzp_relay_control *rc, const uint8_t call_id[WZP_SIG_CALL_ID_LEN],
                               wzp_relay_cluster_result res, const uint8_t fp[WZP_SIG_FP_LEN],
                               const uint8_t relay[WZP_CLUSTER_ID_LEN], const wzp_addr *fwd,
                               wzp_ts now);
/* Nobody received call_id's OFFER: the callee's relay is gone (its presence had not
 * expired yet). The call ends as for an offline callee. */
void wzp_relay_control_offer_unheard(wzp_relay_control *rc,
                                     const uint8_t call_id[WZP_SIG_CALL_ID_LEN], wzp_ts now);
/* A verified message from another relay (wzp_cluster_msg_decode). */
void wzp_relay_control_on_cluster(wzp_relay_control *rc, const wzp_cluster_msg *m, wzp_ts now);
/* The cluster store answered conn's Reattach (reattach_lookup, its request_id): res OK with the
 * other end's key and relay (its forwarding address fwd, len 0 if unknown), or the record was
 * missing or names another key for that end (NOT_FOUND), or the store is down. */
void wzp_relay_control_reattach_found(wzp_relay_control *rc, uint64_t conn, uint64_t request_id,
                                      const uint8_t call_id[WZP_SIG_CALL_ID_LEN], int end,
                                      wzp_relay_cluster_result res,
                                      const uint8_t other_fp[WZP_SIG_FP_LEN],
                                      const uint8_t other_relay[WZP_CLUSTER_ID_LEN],
                                      const wzp_addr *other_fwd, wzp_ts now);
/* Calls fn for every answered call (as call_record), e.g. to refresh the records. */
void wzp_relay_control_foreach_call(const wzp_relay_control *rc,
                                    void (*fn)(void *user, const uint8_t *call_id,
                                               const uint8_t *fp_a, const uint8_t *relay_a,
                                               const uint8_t *fp_b, const uint8_t *relay_b),
                                    void *user);
/* Calls fn for every registration (fingerprint, its alias or ""), e.g. to publish them again. */
void wzp_relay_control_foreach_registration(const wzp_relay_control *rc,
                                            void (*fn)(void *user, const uint8_t *fp,
                                                       const char *alias),
                                            void *user);

void wzp_relay_control_get_stats(const wzp_relay_control *rc, wzp_relay_control_stats *out);
size_t wzp_relay_control_num_conns(const wzp_relay_control *rc);
/* Registrations, parked ones included. */
size_t wzp_relay_control_num_registrations(const wzp_relay_control *rc);
/* Of those, the parked ones (no connection). */
size_t wzp_relay_control_num_parked(const wzp_relay_control *rc);
size_t wzp_relay_control_num_calls(const wzp_relay_control *rc);
/* Of those, the ones still ringing (the rest are answered). */
size_t wzp_relay_control_num_ringing(const wzp_relay_control *rc);
/* Control connections counted against addr's per-address cap (tests, admin). */
size_t wzp_relay_control_conns_from(const wzp_relay_control *rc, const wzp_addr *addr);
/* The connection currently registered for fp, or 0 (tests, admin). */
uint64_t wzp_relay_control_lookup(const wzp_relay_control *rc, const uint8_t fp[WZP_SIG_FP_LEN]);

#endif
