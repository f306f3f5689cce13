/*
 * Test helpers for the relay over real loopback QUIC: a relay server running
 * in its own thread, and a small "test client" built from the real pieces
 * (a UDP socket, a client QUIC endpoint pinned to the relay, a signal
 * client), driven by a poll loop in the test's thread.
 *
 * The client records what happened (signal client events with a copy of the
 * relay message, relay frames that arrived, how the connection closed) so
 * tests assert on behaviour seen from the outside.
 */
#ifndef WZP_TESTS_RELAY_CLIENT_H
#define WZP_TESTS_RELAY_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "call/signal_client.h"
#include "common/addr.h"
#include "common/time.h"
#include "quic/quic.h"
#include "relay/server.h"
#include "wire/signal.h"

/* ---- the relay in a thread ---------------------------------------------------- */

typedef struct relay_thread {
    wzp_relay_server *srv;
    pthread_t thread;
    bool running;
    int run_rv;
    wzp_addr addr; /* where clients reach it (127.0.0.1:PORT) */
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char home[256];              /* temporary identity directory, removed on stop */
    wzp_relay_server_config cfg; /* as started (for a restart) */
} relay_thread;

/*
 * Starts a relay on 127.0.0.1:0 with a fresh identity in a temporary home.
 * cfg NULL: defaults (2 workers); listen and home are always overridden.
 * 0 or a wzp_error.
 */
int relay_thread_start(relay_thread *rt, const wzp_relay_server_config *cfg);
/* Stops the relay (closing its connections), joins the thread, frees everything. */
void relay_thread_stop(relay_thread *rt);
/* Stops the relay and starts a new one with the same home (identity, saved
 * state) on the same port, as a relay restart would. */
int relay_thread_restart(relay_thread *rt);
/* Stops the relay but keeps its home (restart it later, or stop to clean up). */
void relay_thread_halt(relay_thread *rt);

/* ---- the test client ------------------------------------------------------------- */

#define RC_MAX_EVENTS 64
#define RC_MAX_FRAMES 128
#define RC_FRAME_MAX  512

typedef struct rc_event {
    wzp_sigc_event_type type;
    uint32_t call;
    bool has_call_id;
    uint8_t call_id[WZP_SIG_CALL_ID_LEN];
    int err;
    wzp_sig_end_reason reason;
    bool has_msg;
    wzp_sig_msg msg; /* copy of the relay message behind the event */
} rc_event;

/* A relay frame (or any non-QUIC datagram) that arrived on the client's socket. */
typedef struct rc_frame {
    wzp_addr from;
    size_t len;
    uint8_t data[RC_FRAME_MAX]; /* first RC_FRAME_MAX bytes */
} rc_frame;

typedef struct relay_client_opts {
    wzp_quic_pin_mode pin_mode; /* default EXACT on the relay's fingerprint */
    wzp_ts keep_alive;          /* default 0: off */
    wzp_ts idle_timeout;        /* default 0: the QUIC layer's 30 s */
    bool auto_register;         /* send Register as soon as the connection is established */
    const char *alias;          /* for auto_register */
    /* Present no certificate and prove the key with Auth first, as clients do now; false:
     * an older client presenting its certificate. */
    bool anonymous;
    /* anonymous: send this first instead of our Auth (NULL: our Auth; a message of type
     * WZP_SIG_NONE: nothing). */
    const wzp_sig_msg *first_msg;
    /* Called on the new endpoint before connecting (tests that tamper with TLS credentials). */
    void (*before_connect)(wzp_quic_endpoint *ep, void *arg);
    void *before_connect_arg;
} relay_client_opts;

typedef struct relay_client {
    const wzp_identity *id; /* borrowed */
    uint8_t fp[WZP_FINGERPRINT_LEN];
    relay_client_opts opts;
    int fd;
    wzp_addr sock_addr;  /* the socket's bound address (changes on rebind) */
    wzp_addr quic_local; /* the local address the QUIC connection was opened with */
    wzp_addr relay;
    wzp_quic_endpoint *ep;
    wzp_quic_conn *conn; /* NULL once closed */
    wzp_sigc *sigc;

    int established, closed;
    int close_err;
    bool close_by_peer;
    uint64_t close_app;
    char close_detail[256];
    uint8_t relay_fp_seen[WZP_FINGERPRINT_LEN];
    wzp_sig_msg auth; /* anonymous: our own Auth for this connection (sent or not) */
    char close_reason[256];

    rc_event ev[RC_MAX_EVENTS];
    size_t nev;
    /* Type of every message the relay sent, in order (WZP_SIG_NONE: did not decode). */
    wzp_sig_type rx_msgs[RC_MAX_EVENTS * 2];
    size_t nrx_msgs;
    rc_frame frames[RC_MAX_FRAMES];
    size_t nframes;                /* frames kept (at most RC_MAX_FRAMES) */
    uint64_t rx_other;             /* non-QUIC datagrams received, all of them */
    uint64_t rx_other_bytes;       /* their bytes */
    uint64_t tx_raw, tx_raw_bytes; /* datagrams sent with relay_client_send_raw */
} relay_client;

/*
 * Opens a socket on 127.0.0.1:0 and connects to the relay at `relay`, pinning
 * relay_fp (opts NULL: defaults). The handshake runs in relay_client_pump.
 */
int relay_client_start(relay_client *c, const wzp_identity *id, const wzp_addr *relay,
                       const uint8_t relay_fp[WZP_FINGERPRINT_LEN], const relay_client_opts *opts);
/* Frees everything without sending anything: to the relay the client just vanishes. */
void relay_client_free(relay_client *c);
/* Closes the connection politely (CONNECTION_CLOSE is sent now). */
void relay_client_close(relay_client *c, uint64_t app_code);

/*
 * Drives the clients (sockets, QUIC timers, signal client timers) until
 * done(arg) returns true or `budget` passes. done may be NULL (run for the
 * whole budget). Returns true if done() became true.
 */
bool relay_client_pump(relay_client **cs, size_t n, wzp_ts budget, bool (*done)(void *), void *arg);

/*
 * Replaces the socket with a new one on another port. tell_quic false: as a
 * NAT rebinding does, QUIC keeps using its original local address (it cannot
 * tell); true: packets are fed to QUIC with the new local address, as after
 * a client-side port change the client knows about.
 */
int relay_client_rebind(relay_client *c, bool tell_quic);

/* Sends bytes from the client's socket to the relay port. 0 or a wzp_error. */
int relay_client_send_raw(relay_client *c, const uint8_t *data, size_t len);
/* Sends a relay frame (header + payload) on channel `chan`. */
int relay_client_send_frame(relay_client *c, uint8_t type, uint32_t chan, const uint8_t *payload,
                            size_t len);
/* Queues a signaling message on the control stream, bypassing the signal client. */
int relay_client_send_sig(relay_client *c, const wzp_sig_msg *m);

/* Events of a type seen so far; the last one, or NULL. */
size_t relay_client_count(const relay_client *c, wzp_sigc_event_type type);
const rc_event *relay_client_last(const relay_client *c, wzp_sigc_event_type type);
/* The relay Error messages (EV_ERROR events) carrying `code`. */
size_t relay_client_errors(const relay_client *c, wzp_sig_err code);

#endif
