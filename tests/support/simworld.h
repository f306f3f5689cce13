/*
 * A simulated world for client-core tests (on tests/support/netsim.h, virtual
 * clock): a relay built from the relay's own sans-I/O pieces (QUIC endpoint +
 * control plane) with a minimal channel forwarder, and clients running the
 * sans-I/O core, each on its own LAN behind a NAT. The relay can be made
 * dishonest through its rewrite hooks.
 */
#ifndef WZP_TEST_SIMWORLD_H
#define WZP_TEST_SIMWORLD_H

#include <stdbool.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "client/core.h"
#include "quic/quic.h"
#include "relay/control.h"
#include "support/netsim.h"
#include "wire/signal.h"

#define MAX_CONNS 8
#define MAX_CHANS 32

typedef struct simrelay {
    wzp_sim *sim;
    wzp_sim_sock *sock;
    wzp_identity *id;
    wzp_quic_endpoint *ep;
    wzp_relay_control *ctl;
    /* Control connections (each one's QUIC user data): handle 0 while handshaking. */
    struct simrelay_conn {
        struct simrelay *r;
        bool used;
        wzp_quic_conn *conn; /* once established */
        uint64_t handle;
        wzp_addr addr;  /* where the control plane believes it is */
        bool auth_wait; /* no certificate: its Auth (first message) still to check */
        uint8_t fp[WZP_FINGERPRINT_LEN]; /* the key it proved, once it has a handle */
        uint8_t binding[WZP_QUIC_AUTH_BINDING];
    } conns[MAX_CONNS];
    uint64_t next_handle;
    struct simchan {
        bool open;
        uint32_t partner;
        wzp_addr addr;
    } chans[MAX_CHANS];
    uint32_t next_chan;
    uint64_t timer;
    uint64_t forwarded, keepalives;
    /* A dishonest relay: each hook may rewrite a decoded signaling message
     * the relay receives from (in) or sends to (out) the connection `conn`. */
    void (*rewrite_in)(struct simrelay *r, uint64_t conn, wzp_sig_msg *m);
    void (*rewrite_out)(struct simrelay *r, uint64_t conn, wzp_sig_msg *m);
    /* Park frames (src/wire/park_frame.h) that reach the relay; NULL: dropped. */
    void (*park_rx)(struct simrelay *r, const wzp_addr *from, const uint8_t *d, size_t len);
    void *hook_user;
    uint64_t peer_close_code; /* the application code of the latest close by a client */
    int peer_closes;
    bool parking;  /* the control plane parks idle clients (sim_relay_start_parking) */
    bool pre_auth; /* as relays before Auth: every client must present a certificate */
    wzp_relay_control_config cfg; /* what it boots (and restarts) with */
} simrelay;

void sim_relay_start(simrelay *r, wzp_sim *sim);
/* The same with a control-plane configuration (NULL: defaults). */
void sim_relay_start_cfg(simrelay *r, wzp_sim *sim, const wzp_relay_control_config *cfg);
/* The same with parking: the control plane offers Park (cfg->park_after), takes park
 * frames and sends WAKE and PONG from the relay's socket. */
void sim_relay_start_parking(simrelay *r, wzp_sim *sim, const wzp_relay_control_config *cfg);
/* The same at another address ("ip:port"; the default is 203.0.113.1:4433): a second relay. */
void sim_relay_start_at(simrelay *r, wzp_sim *sim, const char *addr,
                        const wzp_relay_control_config *cfg);
void sim_relay_free(simrelay *r);
/* kill -9 and start again with the same identity and address: every connection is forgotten. */
void sim_relay_restart(simrelay *r);
/* Flushes the relay and re-arms its timer (after poking it from a test). */
void sim_relay_kick(simrelay *r);

typedef struct simclient {
    wzp_sim *sim;
    wzp_sim_sock *sock;
    wzp_sim_router *rt; /* the client's NAT */
    wzp_identity *id;
    wzp_core *core;
    uint64_t timer;
    bool auto_answer;
    int registrations;
    uint32_t call;
    wzp_call_state state;
    int reason;
    int path_events;
    wzp_ts relay_at; /* virtual time of the latest route change to the relay */
    uint64_t frames_played;
    bool borrowed_id, dead;
    int unregistrations, unreg_err; /* UNREGISTERED events, the latest one's error */
    bool unreg_fatal;
    char incoming_fp[WZP_FINGERPRINT_STRLEN]; /* what INCOMING showed */
    char peer_fp[WZP_FINGERPRINT_STRLEN];     /* what the latest CALL_STATE showed */
    char detail[400];                         /* the end's detail text */
    wzp_ts ended_at;                          /* virtual time of ENDED */
    char code[8];                             /* the latest verification code shown */
} simclient;

/* The default event handler: records what happened in the simclient. */
void sim_client_event(void *user, const wzp_core_event *ev);
void sim_client_kick(simclient *c);
/* The core's send function and the socket's receive function (for tests that wrap them). */
void sim_client_send(void *user, int sock, const wzp_addr *to, const uint8_t *pkt, size_t len);
void sim_client_recv(void *ctx, wzp_sim_sock *s, const wzp_addr *from, const uint8_t *d,
                     size_t len);
/* A client at ip:5000 on the LAN of router rt. */
void sim_client_join(simclient *c, wzp_sim *sim, simrelay *r, wzp_sim_router *rt, const char *ip,
                     bool direct_disabled);
/* Router idx: WAN 198.51.100.(idx+1), LAN 10.0.(idx+1).0/24, NAT of the given kind. */
wzp_sim_router *sim_router_new(wzp_sim *sim, int idx, wzp_sim_dep mapping);
/* A client on its own LAN (10.0.idx+1.2) behind a NAT of the given kind. */
void sim_client_start(simclient *c, wzp_sim *sim, simrelay *r, int idx, wzp_sim_dep mapping,
                      bool direct_disabled);
/* Like sim_client_start behind an endpoint-independent NAT, with a borrowed identity. */
void sim_client_start_as(simclient *c, wzp_sim *sim, simrelay *r, int idx, const wzp_identity *id);
/* The client vanishes (kill -9): its socket closes, its timers stop; free it later. */
void sim_client_kill(simclient *c);
void sim_client_free(simclient *c);
/* The client's fingerprint, text form. */
void sim_client_fp(const simclient *c, char out[WZP_FINGERPRINT_STRLEN]);
wzp_call_stats sim_stats(simclient *c);

/* Runs the simulation in 10 ms steps until cond (NULL: for max) or the virtual deadline. */
bool sim_run(wzp_sim *sim, bool (*cond)(simclient *, simclient *), simclient *a, simclient *b,
             wzp_ts max);
bool both_registered(simclient *a, simclient *b);
bool both_active(simclient *a, simclient *b);
bool both_direct(simclient *a, simclient *b);
bool both_relay(simclient *a, simclient *b);
bool both_ended(simclient *a, simclient *b);

typedef struct world {
    wzp_sim *sim;
    simrelay r;
    simclient a, b;
} world;

/* A relay and clients a (behind nat_a) and b (nat_b); a calls b by fingerprint, both ACTIVE. */
void world_call(world *w, uint64_t seed, wzp_sim_dep nat_a, wzp_sim_dep nat_b,
                bool direct_disabled);
/* Registration, then a calls b (auto-answered) until both are ACTIVE. */
void world_connect(world *w);
/* The simulation and the relay only (control-plane config, NULL: defaults); the test adds a
 * and b itself (world_free frees both). */
void world_open(world *w, uint64_t seed, const wzp_relay_control_config *cfg);
void world_free(world *w);

#endif
