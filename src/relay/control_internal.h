/*
 * Shared state of the relay control plane: control.c owns connections,
 * registrations and message dispatch; calls.c owns the call state machine.
 */
#ifndef WZP_RELAY_CONTROL_INTERNAL_H
#define WZP_RELAY_CONTROL_INTERNAL_H

#include <stdbool.h>

#include "common/deadline_list.h"
#include "common/hmap.h"
#include "common/log.h"
#include "relay/control.h"
#include "relay/park.h"

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
    wzp_dl_node unreg;   /* while unregistered: in rc->unreg, closed at unreg.at */
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
    /* Parking (park.c): its place in the idle order while registered and connected; its
     * park record once offered (park->parked: no connection any more, id 0, not in
     * `conns`); messages held between the offer and its outcome, or while parked. */
    wzp_park_idle idle;
    wzp_park *park;
    struct rc_held *held, *held_tail;
    uint32_t n_held;
    bool holding;      /* messages to it are held (offered and not answered yet, or parked) */
    bool took_park;    /* it closed its connection taking the offer: parked at disconnect */
    bool park_ignored; /* let an offer lapse without a word: not offered again (an old client) */
} rc_conn;

/* A message held for a client that was offered Park or is parked (sent in order later). */
typedef struct rc_held {
    struct rc_held *next;
    size_t len;
    uint8_t msg[];
} rc_held;

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
    bool ring_held;     /* the callee is parked: the caller hears Ringing once it is back */
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
    wzp_hmap per_addr; /* addr key -> connection count (in the pointer) */
    wzp_dl_list unreg; /* unregistered connections (rc_conn.unreg), by deadline */
    wzp_hmap calls;    /* call id -> rc_call */
    rc_call *ring_head, *ring_tail;
    size_t n_ringing;
    uint64_t next_call_handle;
    bool draining; /* stopping: no new registrations, calls or re-attachments */
    wzp_park_table park;
    wzp_ts now; /* the latest `now` given to any call (when a held message starts a wake) */
};

/* control.c */
/*
 * Forgets a connection: its calls end (the other parties hear `reason`), its
 * registration goes if it is still its own, and its alias starts its reclaim
 * period. Never removes a registration that a newer connection holds. A parked
 * registration ends the same way.
 */
void wzp_rc_drop_conn(wzp_relay_control *rc, rc_conn *c, wzp_sig_end_reason reason, wzp_ts now);
void wzp_rc_unlink_unreg(wzp_relay_control *rc, rc_conn *c);
/* c no longer counts against its address's cap. */
void wzp_rc_uncount_addr(wzp_relay_control *rc, rc_conn *c);
void wzp_rc_send(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m);
void wzp_rc_send_error(wzp_relay_control *rc, rc_conn *c, uint64_t request_id, wzp_sig_err code,
                       const char *text);

/* The live registered connection holding alias, or NULL. */
rc_conn *wzp_rc_conn_by_alias(const wzp_relay_control *rc, const char *alias);

/* control_park.c: parking's side of the control plane (the table itself is park.c). */
void wzp_rc_park_init(wzp_relay_control *rc);
/* Frees c and what is held for it (no callbacks; its park record is the table's). */
void wzp_rc_free_conn(rc_conn *c);
/* c goes: out of the idle order, its park record dropped, what was held for it freed. */
void wzp_rc_park_forget(wzp_relay_control *rc, rc_conn *c);
/* Keeps an encoded message for c (wzp_rc_send while c->holding); a parked c is woken. */
void wzp_rc_hold(wzp_relay_control *rc, rc_conn *c, const uint8_t *msg, size_t len);
/* Sends what was held for c, in order, then lets held rings through. */
void wzp_rc_flush_held(wzp_relay_control *rc, rc_conn *c);
/* c's idle time starts (again) now, if it may park at all. */
void wzp_rc_park_idle_start(wzp_relay_control *rc, rc_conn *c, wzp_ts now);
/* A message from c: an offer it has not taken is declined; its idle time starts again. */
void wzp_rc_park_activity(wzp_relay_control *rc, rc_conn *c, wzp_ts now);
/* c's connection ended after it took the offer: it stays registered, parked. */
void wzp_rc_park_conn(wzp_relay_control *rc, rc_conn *c, wzp_ts now);
/* Parked p registers again on the (unregistered) connection c: p takes c's connection
 * (c is freed) and stops being parked; what was held stays held. Returns p. */
rc_conn *wzp_rc_adopt(wzp_relay_control *rc, rc_conn *p, rc_conn *c);
/* The relay drains: a parked c is woken to go elsewhere (true); an offer under way is
 * withdrawn (what was held sent). */
bool wzp_rc_park_drain(wzp_relay_control *rc, rc_conn *c);

/* Parked: a registration without a connection (its id is 0, it is not in `conns`). */
static inline bool wzp_rc_parked(const rc_conn *c)
{
    return c->park && c->park->parked;
}
/* What was held for c has been sent (it declined Park, or is back from parking): the
 * callers of its held ringing calls hear Ringing now (calls.c). */
void wzp_rc_calls_released(wzp_relay_control *rc, rc_conn *c);
/* c was woken and did not come back: its held ringing calls end as for an offline callee. */
void wzp_rc_calls_unwoken(wzp_relay_control *rc, rc_conn *c);

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
