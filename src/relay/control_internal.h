/*
 * Shared state of the relay control plane: control.c owns connections,
 * registrations and message dispatch; calls.c owns the call state machine.
 */
#ifndef WZP_RELAY_CONTROL_INTERNAL_H
#define WZP_RELAY_CONTROL_INTERNAL_H

#include <stdbool.h>

#include "common/hmap.h"
#include "common/log.h"
#include "relay/control.h"

enum { CALLER = 0, CALLEE = 1 };

/* Log lines about a call carry its tag, the same one the clients use for it. */
#define CALL_LOG(level, k, ...)                                                                    \
    do {                                                                                           \
        if (WZP_LOG_ON(level)) {                                                                   \
            char tag_[WZP_LOG_TAG_MAX];                                                            \
            WZP_LOGX(level, wzp_log_tag_id(tag_, "call", (k)->id, WZP_SIG_CALL_ID_LEN),            \
                     __VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

typedef struct rc_call rc_call;

typedef struct rc_conn {
    uint64_t id;
    uint8_t fp[WZP_SIG_FP_LEN];
    wzp_addr addr;
    bool registered;     /* the registry maps fp to this connection */
    wzp_sig_alias alias; /* alias it holds live (its binding's holder), "" for none */
    uint8_t addr_key[8]; /* per-address cap key taken at connect (IPv4, IPv6 /64) */
    uint8_t addr_keylen; /* 0: not counted */
    wzp_ts reg_deadline; /* while unregistered: closed at this time */
    bool in_unreg;       /* linked in the unregistered list */
    struct rc_conn *uprev, *unext;
    uint64_t millitokens;
    wzp_ts refilled;
    uint32_t strikes; /* consecutive rate-limited messages */
    uint32_t bad;     /* malformed messages so far */
    rc_call *calls;   /* calls this connection is a party to */
    size_t n_calls;
    /* A party on another relay (owned by its one call, not in `conns`): messages
     * to it are dropped; the call's changes travel as cluster messages. */
    bool remote;
    uint8_t relay[WZP_CLUSTER_ID_LEN]; /* remote: its relay (zero until located) */
    wzp_sig_alias pending_alias;       /* a Register waiting for the cluster's claim */
    uint64_t pending_req;
    bool moving; /* left for another relay: its answered calls follow it there */
} rc_conn;

/*
 * An alias bound to a key. holder is the key's live registered connection
 * using it, or NULL while the key is away; then the binding ends at expires.
 */
typedef struct rc_binding {
    wzp_sig_alias alias;
    uint8_t fp[WZP_SIG_FP_LEN];
    rc_conn *holder;
    wzp_ts expires; /* while holder is NULL */
} rc_binding;

typedef enum rc_call_state { RC_RINGING, RC_ACTIVE } rc_call_state;

struct rc_call {
    uint64_t handle;
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    rc_call_state state;
    bool channels_open; /* from the alert on (see calls.c) */
    bool located;       /* cross-relay: the other relay is known (and told of the call) */
    bool remote_rang;   /* cross-relay, caller's side: the callee's relay rings it */
    bool remote_ended;  /* the end came from the other relay: nothing to tell it */
    uint64_t offer_req; /* the Offer's request id (Ringing echoes it) */
    struct {
        rc_conn *conn;
        rc_call *prev, *next; /* in conn->calls */
        uint32_t chan;
    } side[2];
    wzp_ts expires;         /* while ringing */
    rc_call *tprev, *tnext; /* ringing calls, in expiry order */
    /*
     * The caller's params and candidates, held only while ringing (they are
     * most of a call's size; an accepted call keeps just its bookkeeping).
     */
    struct rc_offer {
        wzp_sig_params params;
        wzp_sig_candidates cands;
    } * offer;
};

struct wzp_relay_control {
    wzp_relay_control_config cfg;
    wzp_relay_control_stats stats;
    wzp_hmap conns;       /* handle (8 bytes) -> rc_conn */
    wzp_hmap regs;        /* fingerprint -> rc_conn */
    wzp_hmap aliases;     /* alias -> rc_binding */
    wzp_hmap alias_of_fp; /* fingerprint -> rc_binding (one alias per key) */
    bool aliases_dirty;
    wzp_hmap per_addr;                /* addr key -> connection count (in the pointer) */
    rc_conn *unreg_head, *unreg_tail; /* unregistered connections, by deadline */
    wzp_hmap calls;                   /* call id -> rc_call */
    rc_call *ring_head, *ring_tail;
    size_t n_ringing;
    uint64_t next_call_handle;
    bool draining; /* stopping: no new registrations, calls or re-attachments */
};

/* control.c */
void wzp_rc_send(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m);
void wzp_rc_send_error(wzp_relay_control *rc, rc_conn *c, uint64_t request_id, wzp_sig_err code,
                       const char *text);

/* The live registered connection holding alias, or NULL. */
rc_conn *wzp_rc_conn_by_alias(const wzp_relay_control *rc, const char *alias);

/* calls.c */
void wzp_rc_handle_offer(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m, wzp_ts now);
/* ACCEPT, REJECT, BUSY, CANCEL, HANGUP, CANDIDATES_UPDATE */
void wzp_rc_handle_call_msg(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m);
/* Ends every call of c, telling the other parties `reason`. */
void wzp_rc_end_calls_of(wzp_relay_control *rc, rc_conn *c, wzp_sig_end_reason reason);
/* c's address changed: the channels of its accepted calls follow it. */
void wzp_rc_conn_moved(wzp_relay_control *rc, rc_conn *c);
void wzp_rc_expire_calls(wzp_relay_control *rc, wzp_ts now);
/* The cluster side of calls (calls.c). */
void wzp_rc_call_located(wzp_relay_control *rc, const uint8_t *call_id,
                         wzp_relay_cluster_result res, const uint8_t *fp, const uint8_t *relay,
                         const wzp_addr *fwd, wzp_ts now);
void wzp_rc_call_cluster_msg(wzp_relay_control *rc, const wzp_cluster_msg *m, wzp_ts now);
void wzp_rc_call_offer_unheard(wzp_relay_control *rc, const uint8_t *call_id);
/* Finishes a Register (control.c); claimed: the cluster has granted its alias. */
void wzp_rc_register(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m, bool claimed,
                     wzp_ts now);
/* Parts of calls.c that re-attaching (reattach.c) shares. */
void wzp_rc_link_side(rc_call *k, int s, rc_conn *c);
void wzp_rc_unlink_side(rc_call *k, int s);
rc_conn *wzp_rc_new_remote(const uint8_t *fp, const char *alias);
bool wzp_rc_open_channels(wzp_relay_control *rc, rc_call *k, wzp_ts now);
void wzp_rc_cluster_msg_init(const rc_call *k, int s, wzp_cluster_kind kind, wzp_cluster_msg *m);
/* reattach.c: the call's record for the cluster store (live false: delete it). */
void wzp_rc_call_record(wzp_relay_control *rc, const rc_call *k, bool live);
void wzp_rc_handle_reattach(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m, wzp_ts now);
void wzp_rc_reattach_found(wzp_relay_control *rc, rc_conn *c, uint64_t req, const uint8_t *call_id,
                           int s, wzp_relay_cluster_result res, const uint8_t *other_fp,
                           const uint8_t *other_relay, const wzp_addr *other_fwd, wzp_ts now);
/* REATTACH and REATTACH_ACK from another relay. */
void wzp_rc_reattach_cluster_msg(wzp_relay_control *rc, const wzp_cluster_msg *m);
/* c leaves for another relay: its answered calls wait for its Reattach (there or here)
 * instead of ending; ringing ones end as for a lost connection. */
void wzp_rc_detach_calls_of(wzp_relay_control *rc, rc_conn *c);
/* The call and its remote parties, freed without telling anyone (calls.c). */
void wzp_rc_forget_call(wzp_relay_control *rc, rc_call *k);
/* Frees every call without callbacks (teardown). */
void wzp_rc_free_calls(wzp_relay_control *rc);

#endif
