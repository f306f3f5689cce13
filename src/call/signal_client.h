/*
 * The client side of signaling with the relay, sans-I/O: registration, the
 * reflexive address, and the signaling half of each call (offer, ring,
 * answer, setup, end). Bytes in through wzp_sigc_on_message, bytes out
 * through the send callback, what happened through the event callback;
 * `now` on every call and wzp_sigc_next_deadline for request timeouts.
 *
 * Calls are named by a local handle from the moment they exist (an outgoing
 * call has no relay call id until the relay answers the offer); events also
 * carry the relay's call id once known.
 *
 * The event callback may call back into this object (e.g. accept from an
 * INCOMING event, or place a new call from ENDED), but must not free it.
 */
#ifndef WZP_CALL_SIGNAL_CLIENT_H
#define WZP_CALL_SIGNAL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "wire/signal.h"

typedef enum wzp_sigc_reg_state {
    WZP_SIGC_UNREGISTERED = 0,
    WZP_SIGC_REGISTERING, /* Register sent, no answer yet */
    WZP_SIGC_REGISTERED,
} wzp_sigc_reg_state;

typedef enum wzp_sigc_call_state {
    WZP_SIGC_CALL_OFFERING = 1, /* outgoing: offer sent, relay has not answered */
    WZP_SIGC_CALL_RINGING,      /* outgoing: the callee is being alerted */
    WZP_SIGC_CALL_INCOMING,     /* incoming: waiting for the local user to answer */
    WZP_SIGC_CALL_ACCEPTING,    /* incoming: accepted, waiting for CallSetup */
    WZP_SIGC_CALL_SETUP,        /* both sides have each other's candidates and params */
} wzp_sigc_call_state;

typedef enum wzp_sigc_event_type {
    WZP_SIGC_EV_REGISTERED = 1,  /* msg: REGISTERED (fingerprint, reflexive, alias) */
    WZP_SIGC_EV_REGISTER_FAILED, /* err: TIMEOUT, IDENTITY (alias taken), LIMIT, ...; msg may be
                                    ERROR */
    WZP_SIGC_EV_REFLEXIVE,       /* msg: REFLEXIVE_ADDRESS; the relay sees us elsewhere now */
    WZP_SIGC_EV_INCOMING,        /* call, call_id; msg: INCOMING_CALL (caller's proven identity) */
    WZP_SIGC_EV_RINGING,         /* call, call_id: our callee is being alerted */
    WZP_SIGC_EV_SETUP, /* call, call_id; msg: CALL_SETUP (peer identity, candidates, channel) */
    WZP_SIGC_EV_ENDED, /* call, call_id if known; err, reason; the handle is now free */
    WZP_SIGC_EV_ERROR, /* a relay Error not tied to a pending request; msg: ERROR */
    WZP_SIGC_EV_PONG,  /* msg: PONG */
    WZP_SIGC_EV_CANDIDATES, /* call, call_id; msg: CANDIDATES_UPDATE from the peer */
    WZP_SIGC_EV_REATTACHED, /* call, call_id; msg: REATTACHED (the call's channel here) */
    WZP_SIGC_EV_REHOME,     /* the relay is stopping: register with another one now */
    WZP_SIGC_EV_PARK,       /* msg: PARK, the relay offers to park us (src/client/park.h) */
} wzp_sigc_event_type;

typedef struct wzp_sigc_event {
    wzp_sigc_event_type type;
    uint32_t call;          /* local call handle, 0 for events about no call */
    const uint8_t *call_id; /* WZP_SIG_CALL_ID_LEN bytes, or NULL if not known yet */
    /*
     * ENDED: 0 if we ended it ourselves, else why: the relay's reason mapped
     * by wzp_sig_end_reason_error (HANGUP, REJECTED, BUSY, CANCELLED, EXPIRED,
     * CLOSED for peer gone, OFFLINE, NOT_FOUND for an unknown alias,
     * PROTOCOL), TIMEOUT (no answer to our request), UNREACHABLE (control
     * connection lost) or the mapping of a relay Error.
     * REGISTER_FAILED and ERROR: the error.
     */
    int err;
    wzp_sig_end_reason reason; /* ENDED by the relay: its reason; 0 otherwise */
    const wzp_sig_msg *msg;    /* the relay message behind the event, or NULL */
    wzp_ts now;                /* the time of the input that caused it */
} wzp_sigc_event;

typedef struct wzp_sigc_callbacks {
    void (*send)(void *user, const uint8_t *msg, size_t len);
    void (*event)(void *user, const wzp_sigc_event *ev);
} wzp_sigc_callbacks;

typedef struct wzp_sigc_config {
    wzp_ts request_timeout; /* Register, Offer and Accept answers; default 10 s */
    uint32_t max_calls;     /* concurrent calls; more incoming get Busy; default 4, max 64 */
    wzp_sigc_callbacks cb;  /* required: send and event */
    void *user;             /* the callbacks' user data */
} wzp_sigc_config;

typedef struct wzp_sigc wzp_sigc;

void wzp_sigc_config_default(wzp_sigc_config *cfg);
/* 0, WZP_ERR_INVALID (NULL cfg: the callbacks are required; a callback
 * missing, bad limits) or WZP_ERR_NOMEM (*out untouched). */
int wzp_sigc_new(wzp_sigc **out, const wzp_sigc_config *cfg);
void wzp_sigc_free(wzp_sigc *sc);

/* Sends Register (alias NULL or "" for none). WZP_ERR_INVALID for a bad alias. */
int wzp_sigc_register(wzp_sigc *sc, const char *alias, wzp_ts now);

/*
 * Places a call to a fingerprint or an alias with our parameters and
 * candidates (n_cands <= WZP_SIG_MAX_CANDIDATES). *call receives the local
 * handle. WZP_ERR_STATE if not registered, WZP_ERR_LIMIT if max_calls are in
 * progress, WZP_ERR_INVALID for bad arguments.
 */
/* alias_hint (NULL or ""): the alias the caller knows fp by; if fp is offline and another key
 * holds it, ENDED's msg says which (end.have_holder). */
int wzp_sigc_call_fp(wzp_sigc *sc, const uint8_t fp[WZP_SIG_FP_LEN], const char *alias_hint,
                     const wzp_sig_params *params, const wzp_sig_candidate *cands, size_t n_cands,
                     uint32_t *call, wzp_ts now);
int wzp_sigc_call_alias(wzp_sigc *sc, const char *alias, const wzp_sig_params *params,
                        const wzp_sig_candidate *cands, size_t n_cands, uint32_t *call, wzp_ts now);

/* Answers an INCOMING call; SETUP (or ENDED) follows. WZP_ERR_STATE otherwise. */
int wzp_sigc_accept(wzp_sigc *sc, uint32_t call, const wzp_sig_params *params,
                    const wzp_sig_candidate *cands, size_t n_cands, wzp_ts now);
/* Declines an INCOMING call (Reject / Busy). The call ends at once, no event. */
int wzp_sigc_reject(wzp_sigc *sc, uint32_t call, wzp_ts now);
int wzp_sigc_busy(wzp_sigc *sc, uint32_t call, wzp_ts now);
/* Withdraws an outgoing call before the answer. The call ends at once, no event. */
int wzp_sigc_cancel(wzp_sigc *sc, uint32_t call, wzp_ts now);
/*
 * Ends a call in any state, sending what that state needs (Cancel, Reject or
 * Hangup; error=true reports END_ERROR to the peer; a Hangup also carries
 * `path`, how the media went, for the relay's metrics). The call ends at
 * once, no event. WZP_ERR_NOT_FOUND for an unknown handle.
 */
int wzp_sigc_hangup(wzp_sigc *sc, uint32_t call, bool error, wzp_sig_call_path path, wzp_ts now);
/* Sends the peer more candidates through the relay; only in SETUP (WZP_ERR_STATE otherwise). */
int wzp_sigc_update_candidates(wzp_sigc *sc, uint32_t call, const wzp_sig_candidate *cands,
                               size_t n_cands, wzp_ts now);
/*
 * Sends the peer our whole current candidate set (it may be empty), numbered
 * `generation` (>= 1, rising per call): the peer forgets the candidates it was
 * told about that are not in it. Only in SETUP (WZP_ERR_STATE otherwise).
 * nat (NULL: none): our NAT's behaviour, when learned after the Offer/Accept.
 */
int wzp_sigc_send_candidate_set(wzp_sigc *sc, uint32_t call, uint32_t generation,
                                const wzp_sig_candidate *cands, size_t n_cands,
                                const wzp_sig_nat *nat, wzp_ts now);
int wzp_sigc_ping(wzp_sigc *sc, wzp_ts now);
/*
 * An answered call whose relay went away continues through this (new) relay: sends
 * Reattach for our end (caller or callee) and tracks the call as set up under *call.
 * REATTACHED follows, or ENDED (the relay refused: WZP_ERR_NOT_FOUND; or TIMEOUT).
 * WZP_ERR_STATE if not registered or the call is known here already, WZP_ERR_LIMIT.
 */
int wzp_sigc_reattach(wzp_sigc *sc, const uint8_t call_id[WZP_SIG_CALL_ID_LEN], bool caller,
                      uint32_t *call, wzp_ts now);

/* One complete message from the relay. WZP_ERR_MALFORMED etc. if dropped. */
int wzp_sigc_on_message(wzp_sigc *sc, const uint8_t *msg, size_t len, wzp_ts now);
/* The control connection is gone: every call ends (UNREACHABLE), registration is lost. */
void wzp_sigc_on_disconnect(wzp_sigc *sc, wzp_ts now);
void wzp_sigc_handle_timer(wzp_sigc *sc, wzp_ts now);
wzp_ts wzp_sigc_next_deadline(const wzp_sigc *sc);

wzp_sigc_reg_state wzp_sigc_reg_state_get(const wzp_sigc *sc);
/* As the relay last told us; len 0 before registration. */
const wzp_addr *wzp_sigc_reflexive(const wzp_sigc *sc);
/* The call's state, or WZP_ERR_NOT_FOUND. */
int wzp_sigc_call_state_get(const wzp_sigc *sc, uint32_t call);
/* Registered, no Register answer pending and no call in any state (a Park may be taken). */
bool wzp_sigc_idle(const wzp_sigc *sc);
/* Messages from the relay that were dropped (malformed, unexpected, stale). */
uint64_t wzp_sigc_dropped(const wzp_sigc *sc);

#endif
