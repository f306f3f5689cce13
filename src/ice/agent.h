/*
 * The path manager of one call (sans-I/O): connectivity checks over every
 * candidate pair, and the choice, packet by packet, between the relay and the
 * best proven direct pair, for the whole call.
 *
 * There is one end-to-end QUIC connection per call; this agent never sees it.
 * It only answers "where do the call's packets go now?" (wzp_ice_route_get) and
 * sends/receives its own probes (src/wire/probe.h) on the same two sockets.
 *
 * Model
 * -----
 * - Both peers run the same agent with the same key; there are no roles. Each
 *   side probes every pair at once, so both NAT filters open, and each side
 *   picks the route for its own sends. Both sides accept the call's packets on
 *   every path (relay and all direct pairs), so if they disagree for a while
 *   nothing is lost (no split brain). Because both sides apply the same
 *   deterministic preference to the same measured pairs, they normally agree.
 * - A pair is (local socket, remote address); see src/ice/candidate.h. It is
 *   VALID once one of our requests on it was answered (request and reply both
 *   crossed it). Each answer is an RTT sample.
 * - A request from an address we have no candidate for (the peer behind an
 *   endpoint-dependent NAT) is authenticated, answered from the socket it came
 *   in on, and its source becomes a peer-reflexive remote candidate that we
 *   check straight away (a triggered check) -- which is what opens our NAT
 *   towards the peer's new mapping.
 *
 * Driving it (single-threaded; the caller owns clock and sockets)
 * ---------------------------------------------------------------
 *   wzp_ice_new(&a, &cfg);
 *   wzp_ice_add_local(a, WZP_CAND_HOST, &addr) ...   (our candidates, for signaling)
 *   wzp_ice_add_remote(a, type, &addr, now) ...      (the peer's, any time, trickled too)
 *   wzp_ice_set_key(a, key32, now);                  (from the QUIC TLS exporter; starts checks)
 *   loop:
 *     on a datagram whose first byte is a probe (wzp_pkt_classify == WZP_PKT_PROBE)
 *         and whose tag (wzp_probe_peek_tag) matches wzp_ice_tag(a):
 *         wzp_ice_recv(a, sock, &from, buf, len, now);
 *     on an authenticated QUIC packet of this call that came in directly:
 *         wzp_ice_note_rx(a, sock, &from, now);
 *     wzp_ice_handle_timer(a, now) when now >= wzp_ice_next_deadline(a);
 *     while ((n = wzp_ice_poll_transmit(a, now, buf, sizeof buf, &sock, &dest)) > 0)
 *         send buf[0..n) from socket `sock` to `dest`;
 *     sleep until wzp_ice_next_deadline(a) (or the next datagram);
 *     send the call's QUIC packets as wzp_ice_route_get(a) says (relay or direct);
 *     accept the call's QUIC packets from every path whatever the route.
 *
 * Under QUIC: the connection must not see addresses change when the route
 * does (ngtcp2 would start path validation / migration). Give it one fixed
 * path, map it to the route at send time, and feed it every packet of the
 * call whatever path it came by. stats.first_rtt (or the pair_valid
 * callback) is a good initial_rtt for a connection set up after the checks.
 *
 * Any call may move the deadline or queue a packet (a recv queues the answer;
 * add_remote schedules a check): after each, poll_transmit until it returns 0
 * and re-read wzp_ice_next_deadline.
 *
 * All calls take the caller's `now` (wzp_ts, ns, monotonic, > 0). Callbacks fire
 * synchronously from inside recv/handle_timer/poll_transmit/add_*; they must
 * not call back into the agent except for the read-only accessors.
 */
#ifndef WZP_ICE_AGENT_H
#define WZP_ICE_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "ice/birthday.h"
#include "ice/candidate.h"
#include "wire/probe.h"

typedef struct wzp_ice_agent wzp_ice_agent;

/*
 * Extra IPv4 sockets for birthday probing (ice/birthday.h, role OPEN): the
 * runtime may give up to this many more, numbered WZP_ICE_SOCK_COUNT + k,
 * bound to the IPv4 wildcard address on ports of their own. A pair proven
 * through one of them carries the call like any other (route.sock says which).
 */
#define WZP_ICE_AUX_MAX 256

typedef enum wzp_route_kind {
    WZP_ROUTE_RELAY = 0, /* through the relay channel (the default until a pair is proven) */
    WZP_ROUTE_DIRECT = 1,
} wzp_route_kind;

typedef struct wzp_ice_route {
    wzp_route_kind kind;
    int sock;        /* DIRECT: WZP_ICE_SOCK_V4 or WZP_ICE_SOCK_V6 */
    wzp_addr remote; /* DIRECT: where to send */
    wzp_ts rtt;      /* DIRECT: smoothed RTT of the pair (ns); 0 for RELAY */
} wzp_ice_route;

typedef enum wzp_route_reason {
    WZP_ROUTE_FIRST_DIRECT = 0, /* relay -> direct: the first pair was proven */
    WZP_ROUTE_BETTER_PAIR,      /* direct -> direct: another pair was better for a while */
    /*
     * direct -> relay: the active pair stopped answering. If another pair
     * answered after it fell silent, a RECOVERED change to that pair follows
     * in the same call.
     */
    WZP_ROUTE_PATH_DEAD,
    WZP_ROUTE_RECOVERED,    /* relay -> direct after a fallback or a removal */
    WZP_ROUTE_PAIR_REMOVED, /* direct -> relay: the active pair's remote candidate was removed */
} wzp_route_reason;

const char *wzp_route_reason_name(wzp_route_reason r);

typedef struct wzp_ice_callbacks {
    /* The route for the call's packets changed. `route` is the new one. */
    void (*route_changed)(void *user, const wzp_ice_route *route, wzp_route_reason reason);
    /* Optional: a pair was proven for the first time (or again); rtt is its first sample. */
    void (*pair_valid)(void *user, int sock, const wzp_addr *remote, wzp_ts rtt);
    /*
     * Optional: a new local candidate was learned (our address as the peer saw
     * it, from a probe response). Worth trickling to the peer over the call.
     */
    void (*local_candidate)(void *user, const wzp_candidate *cand);
} wzp_ice_callbacks;

/*
 * Tuning. Zero fields take the defaults below (wzp_ice_config_default fills
 * them in explicitly). Why these values: see agent.c, "Tuning".
 */
typedef struct wzp_ice_config {
    wzp_ts pace;              /* min spacing between requests, all pairs together (5 ms) */
    wzp_ts rto_initial;       /* first retransmit of a check on an unproven pair (100 ms) */
    wzp_ts rto_max;           /* backoff cap for unproven / failed pairs (5 s) */
    wzp_ts startup_window;    /* for this long after a pair appears (10 s) ... */
    wzp_ts rto_startup_max;   /* ... its backoff is capped lower (500 ms) */
    wzp_ts keepalive_active;  /* probe interval on the active direct pair (50 ms) */
    wzp_ts dead_after;        /* nothing received on the active pair for this long: dead (120 ms) */
    wzp_ts dead_after_noresp; /* no answer to our own probes for this long: dead (1 s) */
    wzp_ts reprobe_initial;   /* first re-probe of a pair that died (250 ms), doubling to rto_max */
    wzp_ts
        keepalive_backup;   /* probe interval on valid but inactive pairs (5 s; NAT timeout 30 s) */
    wzp_ts backup_retry;    /* retransmit of an unanswered backup probe (500 ms) */
    unsigned backup_misses; /* unanswered backup probes in a row before invalidating (3) */
    wzp_ts switch_hold;     /* a better pair must stay better this long before we switch (1 s) */
    unsigned switch_pct;    /* ... by more than this percentage of the current RTT (20) */
    wzp_ts switch_abs;      /* ... and by more than this (5 ms) */
    unsigned max_pairs;     /* pair cap (64) */
    unsigned max_local;     /* local candidate cap (16) */
    /*
     * 8 bytes identifying this agent in its probes; all zero = random (the
     * default is fine). Must differ from the peer's: it detects our own
     * probes reflected back, and breaks ties (when the two sides chose
     * different, equally good pairs, the larger id moves to the peer's).
     * Deriving it from the local certificate fingerprint makes runs
     * reproducible.
     */
    uint8_t agent_id[WZP_PROBE_SENDER_LEN];
    /* Extra IPv4 sockets the runtime provides (0..WZP_ICE_AUX_MAX; default 0: none). */
    unsigned aux_socks;
    /* Birthday probing and port prediction (zero fields: ice/birthday.h defaults). */
    wzp_bday_config bday;
    wzp_ice_callbacks cb;
    void *user; /* the callbacks' user data */
} wzp_ice_config;

void wzp_ice_config_default(wzp_ice_config *cfg);

/* cfg may be NULL (defaults). 0 or WZP_ERR_NOMEM (*out untouched). */
int wzp_ice_new(wzp_ice_agent **out, const wzp_ice_config *cfg);
void wzp_ice_free(wzp_ice_agent *a);

/*
 * Our candidates, for signaling. The address's family says which socket it
 * belongs to; a family with no local candidate gets no pairs (no socket, or no
 * address). Duplicates are ignored (0). WZP_ERR_INVALID for an unusable
 * address, WZP_ERR_LIMIT over max_local.
 */
int wzp_ice_add_local(wzp_ice_agent *a, wzp_cand_type type, const wzp_addr *addr);
/* Forgets every local candidate (before re-gathering after an interface change). */
void wzp_ice_clear_local(wzp_ice_agent *a, wzp_ts now);
/* Copies up to max local candidates, best first; returns how many there are in all. */
size_t wzp_ice_local_candidates(const wzp_ice_agent *a, wzp_candidate *out, size_t max);

/*
 * A peer candidate the peer signaled, at any time (at accept, or trickled
 * later). Creates the pair on the socket of its family and schedules its
 * first check. Duplicates only upgrade the type (prflx learned first, then
 * signalled as srflx, say). Returns 0, WZP_ERR_INVALID (unusable address), or
 * WZP_ERR_LIMIT (pair cap reached and nothing worse to evict; counted in
 * stats.pairs_dropped).
 */
int wzp_ice_add_remote(wzp_ice_agent *a, wzp_cand_type type, const wzp_addr *addr, wzp_ts now);
/* The peer withdrew an address. If it was the active pair the route changes. */
int wzp_ice_remove_remote(wzp_ice_agent *a, const wzp_addr *addr, wzp_ts now);
/*
 * The peer's complete current candidate set, numbered `generation` (>= 1,
 * rising per call; sets arrive through signaling and may be reordered).
 * Every remote address the peer ever signaled (add_remote or an earlier set)
 * that is not in it is withdrawn: its pair goes. Peer-reflexive addresses
 * learned only from the peer's probes are kept: traffic proved them and the
 * peer may not know them; if their base went away they fail like any dead
 * pair. If the active pair goes, the route falls back to the relay at once
 * (WZP_ROUTE_PAIR_REMOVED) and, as after a path death, the remaining pairs
 * are re-checked now and must answer again before one is chosen. The
 * addresses in the set are then added as add_remote does (priorities in
 * `cands` are ignored). Returns the number of pairs withdrawn, or
 * WZP_ERR_STATE for a generation not newer than the last applied one
 * (ignored, counted in stats.remote_sets_stale), WZP_ERR_INVALID for
 * generation 0.
 */
int wzp_ice_set_remote_candidates(wzp_ice_agent *a, uint32_t generation, const wzp_candidate *cands,
                                  size_t n, wzp_ts now);

/*
 * Both sides' NAT behaviour as signalled (CallParams.nat; ours from natcheck),
 * at any time. When one side is symmetric and ordinary checks cannot cross
 * (ice/birthday.h has the rule), the agent adds birthday probes or port
 * prediction towards the peer's srflx address: they start shortly after the
 * checks (never before the key and the peer's srflx candidate are known) and
 * stop when a pair is proven, after the bounded duration, or never start if a
 * pair was proven first. Returns the role taken.
 */
wzp_bday_role wzp_ice_set_nat(wzp_ice_agent *a, const wzp_sig_nat *local, const wzp_sig_nat *peer,
                              wzp_ts now);

/*
 * The per-call probe key (32 bytes from the QUIC TLS exporter). Checks start
 * when it is set; until then nothing is sent and every probe is dropped. May
 * be set once.
 */
int wzp_ice_set_key(wzp_ice_agent *a, const uint8_t key[WZP_PROBE_KEY_LEN], wzp_ts now);
/* The tag this call's probes carry (valid after set_key), for routing among calls. */
const uint8_t *wzp_ice_tag(const wzp_ice_agent *a);

/*
 * A probe datagram received on socket `sock` from `from`. Returns 0 if it was
 * an authentic probe of this call (consumed), or a negative code if it was
 * dropped (and counted): WZP_ERR_MALFORMED, WZP_ERR_NOT_FOUND (another call's
 * tag), WZP_ERR_PROTOCOL (failed authentication, our own probe reflected
 * back, or a replayed request), WZP_ERR_STATE (no key yet), WZP_ERR_INVALID
 * (sock does not match from's family). Never fatal to the call. An authentic
 * request is answered even when the pair table is full (then its source is
 * not learned; stats.pairs_dropped).
 */
int wzp_ice_recv(wzp_ice_agent *a, int sock, const wzp_addr *from, const uint8_t *pkt, size_t len,
                 wzp_ts now);

/*
 * An authenticated packet of the call (QUIC) arrived directly on `sock` from
 * `from`: counts as liveness of that pair (never proves a pair by itself).
 */
void wzp_ice_note_rx(wzp_ice_agent *a, int sock, const wzp_addr *from, wzp_ts now);

/*
 * The next probe to send, if one is due at `now`: writes it to buf and
 * returns its length, with *sock and *dest set; 0 if nothing is due (then
 * wait for wzp_ice_next_deadline); WZP_ERR_TOO_BIG if cap < WZP_PROBE_MAX_LEN.
 * Responses go out as soon as polled; requests at most one per cfg.pace.
 * Call repeatedly until it returns 0.
 */
int wzp_ice_poll_transmit(wzp_ice_agent *a, wzp_ts now, uint8_t *buf, size_t cap, int *sock,
                          wzp_addr *dest);

/* Runs timeouts (path death, switching hold-downs). Cheap; safe to call at any time. */
void wzp_ice_handle_timer(wzp_ice_agent *a, wzp_ts now);
/* When handle_timer/poll_transmit next have something to do; WZP_TS_NEVER if idle. */
wzp_ts wzp_ice_next_deadline(const wzp_ice_agent *a);

/*
 * The network changed under us (interface up/down, address change, wake from
 * sleep): re-check every pair now, with fresh backoff. The active pair keeps
 * carrying packets until it actually stops answering.
 */
void wzp_ice_network_changed(wzp_ice_agent *a, wzp_ts now);

/* Where the call's packets go now. */
wzp_ice_route wzp_ice_route_get(const wzp_ice_agent *a);

typedef struct wzp_ice_stats {
    wzp_ts started_at;          /* when the key was set (checks began) */
    wzp_ts first_valid_at;      /* first pair proven; WZP_TS_NEVER if none yet */
    wzp_ts first_direct_at;     /* route first became DIRECT; WZP_TS_NEVER if never */
    wzp_ts rtt;                 /* smoothed RTT of the active pair, 0 when RELAY */
    wzp_ts first_rtt;           /* first RTT sample of any pair (for QUIC initial_rtt), 0 if none */
    uint32_t route_changes;     /* every change of route */
    uint32_t fallbacks;         /* direct -> relay because the path died */
    uint32_t pairs;             /* current pairs */
    uint32_t pairs_valid;       /* current valid pairs */
    uint32_t pairs_dropped;     /* pairs refused or evicted by the cap */
    uint32_t prflx_learned;     /* remote peer-reflexive candidates learned */
    uint32_t remote_sets;       /* complete remote sets applied */
    uint32_t remote_sets_stale; /* complete remote sets ignored: not newer than the applied one */
    uint32_t remote_withdrawn;  /* pairs dropped because the peer withdrew their address */
    uint64_t requests_sent, responses_sent, requests_rcvd, responses_rcvd;
    uint64_t rx_malformed;   /* not a parseable probe */
    uint64_t rx_wrong_tag;   /* a probe for another call */
    uint64_t rx_auth_failed; /* bad MAC: forged, corrupted or wrong key */
    uint64_t rx_reflected;   /* our own request came back to us */
    uint64_t rx_replayed;    /* a request with a txid seen before (replay or duplicate) */
    uint64_t rx_unmatched;  /* authentic response to no outstanding request (late, or asymmetric) */
    uint64_t rx_before_key; /* probes before set_key */
    uint64_t tx_queue_drops; /* responses dropped because the send queue was full */
    wzp_bday_role bday_role; /* birthday probing: our role (NONE: not needed or not known) */
    uint64_t bday_sent;      /* birthday / prediction probes sent */
    /* the first pair was proven while birthday probing ran; WZP_TS_NEVER if not */
    wzp_ts bday_success_at;
} wzp_ice_stats;

void wzp_ice_get_stats(const wzp_ice_agent *a, wzp_ice_stats *out);

/* Introspection for tests and logs. */
typedef enum wzp_pair_state {
    WZP_PAIR_WAITING = 0, /* not checked yet */
    WZP_PAIR_CHECKING,    /* checks sent, no answer yet (or answers stopped): backing off */
    WZP_PAIR_VALID,       /* a check and its answer crossed it; kept alive */
} wzp_pair_state;

typedef struct wzp_ice_pair_info {
    int sock;
    wzp_addr remote;
    wzp_cand_type remote_type;
    wzp_pair_state state;
    bool peer_valid;  /* the peer says this pair is valid for it too */
    bool peer_active; /* the peer says it sends on this pair */
    bool active;      /* our route */
    wzp_ts srtt;      /* 0 until the first sample */
    uint32_t priority;
} wzp_ice_pair_info;

/* Copies up to max pairs (in check order); returns how many there are. */
size_t wzp_ice_pairs(const wzp_ice_agent *a, wzp_ice_pair_info *out, size_t max);

#endif
