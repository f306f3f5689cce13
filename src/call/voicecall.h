/*
 * One voice call, sans-I/O: its signaling (through the shared signal client),
 * its end-to-end QUIC connection on a virtual path, the ICE agent that routes
 * that connection (relay channel or a proven direct pair), its media (Opus in
 * DATAGRAM frames) and peer-to-peer call control (wire/call_msg.h).
 *
 * Inputs, each at time `now`: a signaling event for the call, a packet for
 * it (relay frame payload, direct QUIC packet, connectivity probe), an event
 * of its QUIC connection (the call registers its own connection callbacks),
 * a timer, a user command. Outputs: packets handed
 * to the owner's send function with the socket and address to use
 * (wzp_voicecall_flush, wzp_voicecall_route), the next deadline, and events.
 *
 * One phase (wzp_voicecall_phase) and explicit sub-states: whose key the call
 * is locked to, where its end-to-end connection is, what its paths and media
 * do. The owner (the client core) keeps the registry and the sockets and
 * routes each packet to its call by one key (relay channel, QUIC connection,
 * probe tag); a call never reaches into its owner.
 *
 * Pre-connected ringing: with a relay channel known at ringing time, the
 * caller starts the end-to-end handshake at once, so it is done while the
 * phone rings; the caller's audio flows from then on and the callee plays
 * none of it until its user answers. The answer (an Answer message, proven by
 * the callee's key) makes both sides active at once. Addresses (candidates)
 * are shared only after the answer, through the relay's CallSetup.
 */
#ifndef WZP_CALL_VOICECALL_H
#define WZP_CALL_VOICECALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/client.h>
#include <wzp/identity.h>

#include "call/signal_client.h"
#include "common/addr.h"
#include "common/time.h"
#include "ice/agent.h"
#include "media/audio_format.h"
#include "quic/quic.h"
#include "wire/probe.h"

#define WZP_VOICECALL_SOCKS 2 /* as src/ice/candidate.h: 0 = IPv4, 1 = IPv6 */

/* Application close codes of the end-to-end connection. The connection
 * exists before the answer, so declining and withdrawing have their own
 * codes: whichever of them or the relay's CallEnded arrives first, the call
 * ends for the same reason. */
#define WZP_VOICECALL_CLOSE_HANGUP   0x100
#define WZP_VOICECALL_CLOSE_ERROR    0x101
#define WZP_VOICECALL_CLOSE_DECLINE  0x102 /* the callee did not take the call */
#define WZP_VOICECALL_CLOSE_WITHDRAW 0x103 /* the caller gave up before the answer */

typedef struct wzp_voicecall wzp_voicecall;

typedef enum wzp_voicecall_role {
    WZP_VOICECALL_CALLER = 1,
    WZP_VOICECALL_CALLEE,
} wzp_voicecall_role;

typedef enum wzp_voicecall_phase {
    WZP_VOICECALL_OFFERING = 1, /* caller: the relay has not answered the offer */
    WZP_VOICECALL_RINGING,      /* the callee is alerted (either side) */
    WZP_VOICECALL_CONNECTING,   /* answered; the end-to-end handshake is not done */
    WZP_VOICECALL_ACTIVE,       /* audio both ways */
    WZP_VOICECALL_ENDED,
} wzp_voicecall_phase;

/* Whose key the end-to-end connection must prove. */
typedef enum wzp_voicecall_key {
    WZP_VOICECALL_KEY_UNKNOWN = 1, /* a call to an alias, before the relay named the callee */
    WZP_VOICECALL_KEY_PINNED,      /* dialled, shown on the incoming call, or named once */
} wzp_voicecall_key;

/* The end-to-end connection. */
typedef enum wzp_voicecall_link {
    WZP_VOICECALL_LINK_NONE = 1,  /* no channel to run it on yet */
    WZP_VOICECALL_LINK_DIAL,      /* caller: start the handshake at the next timer */
    WZP_VOICECALL_LINK_HANDSHAKE, /* under way through the relay channel */
    WZP_VOICECALL_LINK_UP,        /* both keys checked */
    WZP_VOICECALL_LINK_CLOSED,
} wzp_voicecall_link;

/* The paths under the connection. */
typedef enum wzp_voicecall_paths {
    WZP_VOICECALL_PATHS_RELAY = 1, /* relay only (no candidates yet, or direct disabled) */
    WZP_VOICECALL_PATHS_UNKEYED,   /* candidates known, probes wait for the connection's key */
    WZP_VOICECALL_PATHS_CHECKING,  /* connectivity checks run; the agent routes */
} wzp_voicecall_paths;

typedef enum wzp_voicecall_media {
    WZP_VOICECALL_MEDIA_OFF = 1,
    WZP_VOICECALL_MEDIA_EARLY, /* caller: sending while it rings, nothing played */
    WZP_VOICECALL_MEDIA_BOTH,  /* sending and playing */
} wzp_voicecall_media;

typedef enum wzp_voicecall_ev_type {
    WZP_VOICECALL_EV_STATE = 1, /* the public state changed (ENDED: err, text) */
    WZP_VOICECALL_EV_PATH,      /* the route changed */
    WZP_VOICECALL_EV_PCM,       /* pcm: one played-out frame; concealed */
} wzp_voicecall_ev_type;

typedef struct wzp_voicecall_event {
    wzp_voicecall_ev_type type;
    wzp_call_state state;
    int err;
    const char *text;
    const char *peer_fp, *peer_alias;
    const char *code; /* the verification code ("" until the e2e handshake is done) */
    const int16_t *pcm;
    bool concealed;
} wzp_voicecall_event;

/* What the owner lends every call; it outlives them. */
typedef struct wzp_voicecall_env {
    const wzp_identity *id;
    wzp_quic_endpoint *ep; /* where the end-to-end connection lives (shared) */
    wzp_sigc *sc;          /* signaling with the relay (shared) */
    /* The bound address of each socket (len 0: no such socket). */
    wzp_addr local[WZP_VOICECALL_SOCKS];
    wzp_addr relay;  /* the relay's control address: frames go there unless told otherwise */
    wzp_addr vlocal; /* our end of every call's virtual path */
    bool direct_disabled;
    /* The gateway's port mapping of our IPv4 socket (NAT-PMP / UPnP-IGD; len 0: none), offered as
     * a MAPPED candidate. The owner's, read at every gather: after a change, on_mapped. */
    const wzp_addr *mapped;
    /* The caller's source is a recording: no audio before the answer (see
     * wzp_client_config.hold_audio_until_answer). */
    bool hold_audio_until_answer;
    /* pcm_source reports background frames: the codec leaves them out (DTX). */
    bool dtx;
    /* No sender adaptation and no redundancy: fixed codec settings (a reference to measure
     * adaptation against). Receiver reports still go out. */
    bool no_adapt;
    bool parity; /* adaptation sends XOR parity instead of copies (media/adapt.h) */
    void *owner;
    /* The control connection's smoothed RTT (0 before a sample). */
    wzp_ts (*relay_rtt)(void *owner);
    /* When a packet from the relay last arrived (to tell a dead relay from a dead peer). */
    wzp_ts (*relay_heard_at)(void *owner);
    void (*event)(void *owner, wzp_voicecall *vc, const wzp_voicecall_event *ev);
    /* The next frame to send, and what it holds. */
    wzp_pcm_kind (*pcm_source)(void *owner, wzp_voicecall *vc, int16_t pcm[WZP_FRAME_SAMPLES]);
    /* Our NAT's behaviour as measured so far (NULL or all zero: unknown), read when the
     * call's Offer/Accept goes out and at setup: birthday probing (ice/birthday.h). */
    const wzp_sig_nat *nat;
    /* Extra IPv4 sockets for birthday probing: indices WZP_VOICECALL_SOCKS + k (0: none). */
    unsigned aux_socks;
} wzp_voicecall_env;

typedef struct wzp_voicecall_config {
    wzp_voicecall_role role;
    uint32_t id;      /* the owner's name for the call (logs) */
    uint16_t vport;   /* the virtual path's remote port, unique among live calls */
    void *user;       /* wzp_voicecall_user() */
    const char *peer; /* caller: a fingerprint (text) or an alias */
    /* caller, with a fingerprint: the alias that key is known by (a contact's), or NULL. If the
     * key is offline and the relay says another key holds the alias, the call ends with
     * WZP_ERR_KEY_CHANGED. */
    const char *alias_hint;
    uint32_t sig; /* callee: the signal client's handle of the incoming call */
    /* Our addresses: host candidates (ports set) and the reflexive one (len 0: none). */
    const wzp_addr *hosts;
    size_t n_hosts;
    wzp_addr reflexive;
    const wzp_voicecall_env *env; /* required: what the owner lends the call (copied) */
    wzp_ts now;                   /* the time of creation (a caller's Offer goes out then) */
} wzp_voicecall_config;

/* All zero: set role, vport, env, now and the role's peer or sig. */
void wzp_voicecall_config_default(wzp_voicecall_config *cfg);

typedef void (*wzp_voicecall_send_fn)(void *user, int sock, const wzp_addr *to, const uint8_t *pkt,
                                      size_t len);

/*
 * A caller's call sends its Offer now; a callee's is created from the
 * INCOMING event (pass it to wzp_voicecall_on_signal next). WZP_ERR_INVALID
 * for a peer that is neither a fingerprint nor an alias, or the signal
 * client's error (not registered, too many calls).
 */
int wzp_voicecall_new(wzp_voicecall **out, const wzp_voicecall_config *cfg);
/* Frees the call's state; its connection must be closed already (or the endpoint freed). */
void wzp_voicecall_free(wzp_voicecall *vc);

/* --- inputs ------------------------------------------------------------------------------ */

/* A signaling event for this call (INCOMING, RINGING, SETUP, CANDIDATES, ENDED). */
void wzp_voicecall_on_signal(wzp_voicecall *vc, const wzp_sigc_event *ev, wzp_ts now);
/* The relay sees us at a new address: tell the peer, check it. */
void wzp_voicecall_on_reflexive(wzp_voicecall *vc, const wzp_addr *reflexive, wzp_ts now);
/* Our NAT's behaviour (env.nat) was measured or changed: the agent and the peer learn it. */
void wzp_voicecall_on_nat(wzp_voicecall *vc, wzp_ts now);
/* Our host addresses changed (ports set): re-gather, re-check, tell the peer. */
void wzp_voicecall_on_hosts(wzp_voicecall *vc, const wzp_addr *hosts, size_t n, wzp_ts now);
/* env.mapped changed (granted, moved or withdrawn): re-gather with these hosts, tell the peer. */
void wzp_voicecall_on_mapped(wzp_voicecall *vc, const wzp_addr *hosts, size_t n, wzp_ts now);
/*
 * We registered with a(nother) relay while this answered call had lost its signaling (its
 * relay went away): re-attach our end there (relay: its control address). 1 if a Reattach
 * went out, 0 if the call needs none, or the signal client's error. Its channel follows
 * (REATTACHED), the same end-to-end connection on it.
 */
int wzp_voicecall_reattach(wzp_voicecall *vc, const wzp_addr *relay, wzp_ts now);
/* The call is up and its media goes through the relay (no direct path): it needs the relay. */
bool wzp_voicecall_relayed(const wzp_voicecall *vc);
/* The payload of a relay DATA frame on our channel: an end-to-end QUIC packet. */
void wzp_voicecall_on_relay_packet(wzp_voicecall *vc, const uint8_t *pkt, size_t len, wzp_ts now);
/* The owner fed an end-to-end packet from a direct path (sock, from) to our connection;
 * authenticated: it decrypted (only that proves the peer is behind that address). */
void wzp_voicecall_on_direct_rx(wzp_voicecall *vc, int sock, const wzp_addr *from,
                                bool authenticated, wzp_ts now);
/* A connectivity probe whose tag is ours. */
void wzp_voicecall_on_probe(wzp_voicecall *vc, int sock, const wzp_addr *from, const uint8_t *pkt,
                            size_t len, wzp_ts now);
/* Callee: the caller's Initial arrived on our channel: fill opts (its callbacks are the
 * call's own) and return 0, or refuse (< 0). */
int wzp_voicecall_accept_conn(wzp_voicecall *vc, wzp_quic_conn_config *opts);

void wzp_voicecall_handle_timer(wzp_voicecall *vc, wzp_ts now);
wzp_ts wzp_voicecall_next_deadline(const wzp_voicecall *vc);

/* --- outputs ----------------------------------------------------------------------------- */

/* Probes and relay keep-alives due at `now`. */
void wzp_voicecall_flush(wzp_voicecall *vc, wzp_ts now, wzp_voicecall_send_fn send, void *user);
/* One end-to-end QUIC packet the endpoint wrote for our virtual path: direct or via relay. */
void wzp_voicecall_route(wzp_voicecall *vc, const uint8_t *pkt, size_t len,
                         wzp_voicecall_send_fn send, void *user);

/* --- commands (WZP_ERR_STATE when the phase does not allow them) -------------------------- */

int wzp_voicecall_answer(wzp_voicecall *vc, const wzp_addr *hosts, size_t n_hosts,
                         const wzp_addr *reflexive, wzp_ts now);
int wzp_voicecall_reject(wzp_voicecall *vc, wzp_ts now);
/* Ends the call from any phase (err 0: by the user). */
void wzp_voicecall_end(wzp_voicecall *vc, int err, const char *detail, wzp_ts now);
int wzp_voicecall_set_mute(wzp_voicecall *vc, bool mute);

/* --- state ------------------------------------------------------------------------------- */

typedef struct wzp_voicecall_status {
    wzp_voicecall_role role;
    wzp_voicecall_phase phase;
    wzp_voicecall_key key;
    wzp_voicecall_link link;
    wzp_voicecall_paths paths;
    wzp_voicecall_media media;
    wzp_ts answered_at, active_at, first_audio_at; /* WZP_TS_NEVER until then */
} wzp_voicecall_status;

void wzp_voicecall_get_status(const wzp_voicecall *vc, wzp_voicecall_status *out);
wzp_call_state wzp_voicecall_state(const wzp_voicecall *vc);
void wzp_voicecall_get_stats(const wzp_voicecall *vc, wzp_call_stats *out, wzp_ts now);
void *wzp_voicecall_user(const wzp_voicecall *vc);
/* The peer's key (text; "" until known: a call to an alias before the relay names it) and
 * alias ("" if none; only ever the relay's word). */
const char *wzp_voicecall_peer_fp(const wzp_voicecall *vc);
const char *wzp_voicecall_peer_alias(const wzp_voicecall *vc);
/* A code both users can compare by voice ("123 456"), "" until the end-to-end handshake is
 * done: from the connection's TLS exporter and both fingerprints, so a man-in-the-middle,
 * who must run one handshake with each side, shows each a different code. */
const char *wzp_voicecall_verification_code(const wzp_voicecall *vc);
void wzp_voicecall_set_user(wzp_voicecall *vc, void *user);

/* Routing keys (the owner's table): each may change after any input. */
uint32_t wzp_voicecall_sig(const wzp_voicecall *vc);     /* 0 once signaling is over */
uint32_t wzp_voicecall_channel(const wzp_voicecall *vc); /* 0 before one is known */
const wzp_addr *wzp_voicecall_relay_addr(const wzp_voicecall *vc);
uint16_t wzp_voicecall_vport(const wzp_voicecall *vc);
const uint8_t *wzp_voicecall_probe_tag(const wzp_voicecall *vc); /* NULL before keying */
wzp_quic_conn *wzp_voicecall_conn(const wzp_voicecall *vc);      /* NULL when none */
/* Our current candidates (as last signaled or about to be): copies up to cap, returns
 * how many there are. */
size_t wzp_voicecall_local_candidates(const wzp_voicecall *vc, wzp_sig_candidate *out, size_t cap);
/* The ICE agent (tests, diagnostics); NULL before candidates. */
wzp_ice_agent *wzp_voicecall_ice(const wzp_voicecall *vc);

#endif
