/*
 * Signaling messages between a client and the relay (proto/wzp_signal.proto),
 * as plain C structs with fixed-size fields. The protobuf-c representation
 * stays inside signal.c: decoding validates every field, copies it into a
 * wzp_sig_msg and frees the protobuf-c allocation before returning, so callers
 * never own anything.
 */
#ifndef WZP_WIRE_SIGNAL_H
#define WZP_WIRE_SIGNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "wire/park_frame.h"

#define WZP_SIG_VERSION        1
#define WZP_SIG_MAX_SIZE       8192 /* whole encoded message, bytes */
#define WZP_SIG_FP_LEN         32   /* SHA-256 of the certificate's SPKI */
#define WZP_SIG_CALL_ID_LEN    16   /* 128 random bits */
#define WZP_SIG_ALIAS_MAX      32   /* bytes, [a-z0-9._-], first [a-z0-9] */
#define WZP_SIG_MAX_CANDIDATES 16
#define WZP_SIG_MAX_CODECS     8
#define WZP_SIG_PROBE_KEY_MIN  16
#define WZP_SIG_PROBE_KEY_MAX  32
#define WZP_SIG_TEXT_MAX       128 /* error text, bytes */
#define WZP_SIG_AUTH_KEY_MAX   128 /* Auth's public key (DER SPKI), bytes */
#define WZP_SIG_AUTH_SIG_MAX   128 /* Auth's signature, bytes */

typedef enum wzp_sig_type {
    WZP_SIG_NONE = 0,
    WZP_SIG_REGISTER,          /* client -> relay */
    WZP_SIG_REGISTERED,        /* relay -> client */
    WZP_SIG_REFLEXIVE_ADDRESS, /* relay -> client */
    WZP_SIG_OFFER,             /* caller -> relay */
    WZP_SIG_INCOMING_CALL,     /* relay -> callee */
    WZP_SIG_RINGING,           /* relay -> caller */
    WZP_SIG_ACCEPT,            /* callee -> relay */
    WZP_SIG_REJECT,            /* callee -> relay */
    WZP_SIG_BUSY,              /* callee -> relay */
    WZP_SIG_CANCEL,            /* caller -> relay */
    WZP_SIG_HANGUP,            /* party -> relay */
    WZP_SIG_CALL_SETUP,        /* relay -> both parties */
    WZP_SIG_CALL_ENDED,        /* relay -> party */
    WZP_SIG_ERROR,             /* relay -> client */
    WZP_SIG_PING,              /* client -> relay */
    WZP_SIG_PONG,              /* relay -> client */
    WZP_SIG_CANDIDATES_UPDATE, /* party -> relay -> other party, after setup */
    WZP_SIG_REATTACH,          /* party -> its new relay: its end of a call moves here */
    WZP_SIG_REATTACHED,        /* relay -> party: the end's channel here */
    WZP_SIG_REHOME,            /* relay -> client: stopping, register elsewhere now */
    WZP_SIG_PARK,              /* relay -> client: idle; park (close, keep pinging) */
    WZP_SIG_AUTH,              /* client -> relay, first: its key, proven for this session */
} wzp_sig_type;

/* Values match the .proto enums. */
typedef enum wzp_sig_cand_type {
    WZP_SIG_CAND_HOST = 1,
    WZP_SIG_CAND_SRFLX = 2,
    WZP_SIG_CAND_PRFLX = 3,
    WZP_SIG_CAND_RELAY = 4,
    WZP_SIG_CAND_MAPPED = 5, /* a gateway port mapping (NAT-PMP, UPnP-IGD) */
} wzp_sig_cand_type;

typedef enum wzp_sig_role {
    WZP_SIG_ROLE_CALLER = 1,
    WZP_SIG_ROLE_CALLEE = 2,
} wzp_sig_role;

typedef enum wzp_sig_end_reason {
    WZP_SIG_END_HANGUP = 1,
    WZP_SIG_END_REJECTED = 2,
    WZP_SIG_END_BUSY = 3,
    WZP_SIG_END_CANCELLED = 4,
    WZP_SIG_END_EXPIRED = 5,
    WZP_SIG_END_PEER_GONE = 6,
    WZP_SIG_END_OFFLINE = 7,
    WZP_SIG_END_UNKNOWN_PEER = 8,
    WZP_SIG_END_ERROR = 9,
} wzp_sig_end_reason;

/* Values match the .proto enum CallPath. */
typedef enum wzp_sig_call_path {
    WZP_SIG_PATH_UNSPECIFIED = 0,
    WZP_SIG_PATH_RELAYED = 1,
    WZP_SIG_PATH_DIRECT = 2,
} wzp_sig_call_path;

typedef enum wzp_sig_err {
    WZP_SIG_ERR_UNSPECIFIED = 0,
    WZP_SIG_ERR_MALFORMED = 1,
    WZP_SIG_ERR_TOO_BIG = 2,
    WZP_SIG_ERR_VERSION = 3,
    WZP_SIG_ERR_RATE_LIMITED = 4,
    WZP_SIG_ERR_NOT_REGISTERED = 5,
    WZP_SIG_ERR_ALIAS_TAKEN = 6,
    WZP_SIG_ERR_NO_SUCH_CALL = 7,
    WZP_SIG_ERR_STATE = 8,
    WZP_SIG_ERR_LIMIT = 9,
    WZP_SIG_ERR_UNEXPECTED = 10,
    WZP_SIG_ERR_INVALID = 11,
    WZP_SIG_ERR_INTERNAL = 12,
    WZP_SIG_ERR_FULL = 13, /* no more registrations here (global or per-address cap) */
} wzp_sig_err;

/*
 * Application close codes on the control connection (relay -> client):
 * WZP_SIG_CLOSE_BASE + the relay's wzp_relay_close_code (src/relay/control.h).
 */
#define WZP_SIG_CLOSE_BASE      0x100
#define WZP_SIG_CLOSE_REPLACED  (WZP_SIG_CLOSE_BASE + 1) /* the same key registered elsewhere */
#define WZP_SIG_CLOSE_REG_LIMIT (WZP_SIG_CLOSE_BASE + 5) /* the relay's registration cap */
#define WZP_SIG_CLOSE_ADDR_LIMIT                                                                   \
    (WZP_SIG_CLOSE_BASE + 6)                        /* too many connections from our address */
#define WZP_SIG_CLOSE_AUTH (WZP_SIG_CLOSE_BASE + 9) /* no certificate, and no valid Auth first */
/* Client -> relay: leaving for another relay of the cluster, its answered calls move along
 * (Reattach there): the relay lets go of them without ending them. */
#define WZP_SIG_CLOSE_MOVING 0x200
/* Client -> relay: it takes the relay's Park offer (WZP_SIG_PARK); its registration stays,
 * parked. The relay's WZP_RELAY_CLOSE_PARKED. */
#define WZP_SIG_CLOSE_PARKED 8

typedef struct wzp_sig_candidate {
    wzp_sig_cand_type type;
    uint32_t priority;
    wzp_addr addr;
} wzp_sig_candidate;

/* Values match the .proto enums NatMapping, NatFiltering and PortAllocation. */
enum { WZP_SIG_NAT_MAPPING_MAX = 3, WZP_SIG_NAT_FILTERING_MAX = 3, WZP_SIG_NAT_PORTS_MAX = 4 };
#define WZP_SIG_NAT_DELTA_MAX 64

/* The sender's NAT behaviour (proto NatBehaviour); all zero = unknown. */
typedef struct wzp_sig_nat {
    uint8_t mapping;   /* 0 unknown, 1 EIM, 2 ADM, 3 APDM */
    uint8_t filtering; /* 0 unknown, 1 EIF, 2 ADF, 3 APDF */
    uint8_t ports;     /* 0 unknown, 1 preserved, 2 sequential, 3 range, 4 random */
    int8_t port_delta; /* sequential: step between consecutive mappings */
    uint16_t port_lo, port_hi;
    uint16_t last_port;
} wzp_sig_nat;

typedef struct wzp_sig_params {
    uint32_t media_version;
    uint32_t codecs[WZP_SIG_MAX_CODECS];
    size_t n_codecs;
    uint32_t max_bitrate;
    uint8_t probe_key[WZP_SIG_PROBE_KEY_MAX];
    size_t probe_key_len; /* 0 or WZP_SIG_PROBE_KEY_MIN..MAX */
    wzp_sig_nat nat;
} wzp_sig_params;

typedef struct wzp_sig_candidates {
    wzp_sig_candidate c[WZP_SIG_MAX_CANDIDATES];
    size_t n;
} wzp_sig_candidates;

/* Aliases are NUL-terminated; "" means none. */
typedef char wzp_sig_alias[WZP_SIG_ALIAS_MAX + 1];

typedef struct wzp_sig_msg {
    wzp_sig_type type;
    uint64_t request_id; /* see the .proto: client-chosen, echoed on replies */
    union {
        struct {
            wzp_sig_alias alias;
        } reg;
        struct {
            uint8_t fingerprint[WZP_SIG_FP_LEN];
            wzp_addr reflexive;
            wzp_sig_alias alias;
        } registered;
        struct {
            wzp_addr reflexive;
        } reflexive;
        struct {
            bool by_alias; /* callee_alias if set, else callee_fp */
            uint8_t callee_fp[WZP_SIG_FP_LEN];
            wzp_sig_alias callee_alias;
            wzp_sig_alias alias_hint; /* with callee_fp: the alias the caller knows it by */
            wzp_sig_params params;
            wzp_sig_candidates cands;
        } offer;
        struct {
            uint8_t call_id[WZP_SIG_CALL_ID_LEN];
            uint8_t caller_fp[WZP_SIG_FP_LEN];
            wzp_sig_alias caller_alias;
            uint32_t relay_channel; /* 0: none yet */
            wzp_addr relay_addr;    /* len 0: none */
        } incoming;
        /* REJECT, BUSY, CANCEL (and the call id of any call message) */
        struct {
            uint8_t call_id[WZP_SIG_CALL_ID_LEN];
        } call;
        struct {
            uint8_t call_id[WZP_SIG_CALL_ID_LEN];
            uint32_t relay_channel; /* 0: none yet */
            wzp_addr relay_addr;    /* len 0: none */
            bool have_callee_fp;
            uint8_t callee_fp[WZP_SIG_FP_LEN];
        } ringing;
        struct {
            uint8_t call_id[WZP_SIG_CALL_ID_LEN];
            wzp_sig_params params;
            wzp_sig_candidates cands;
        } accept;
        /* HANGUP (reason HANGUP or ERROR) and CALL_ENDED */
        struct {
            uint8_t call_id[WZP_SIG_CALL_ID_LEN];
            wzp_sig_end_reason reason;
            bool have_holder; /* CALL_ENDED, OFFLINE after an alias hint: who holds it */
            uint8_t holder_fp[WZP_SIG_FP_LEN];
            wzp_sig_call_path path; /* HANGUP only: the sender's report, maybe UNSPECIFIED */
        } end;
        struct {
            uint8_t call_id[WZP_SIG_CALL_ID_LEN];
            uint8_t peer_fp[WZP_SIG_FP_LEN];
            wzp_sig_alias peer_alias;
            wzp_sig_params peer_params;
            wzp_sig_candidates peer_cands;
            wzp_sig_role role;
            uint32_t relay_channel;
            wzp_addr relay_addr; /* len 0: none */
        } setup;
        struct {
            uint8_t call_id[WZP_SIG_CALL_ID_LEN];
            wzp_sig_candidates cands;
            /* complete: cands is the sender's whole set (generation >= 1, rising per call);
             * otherwise cands only add (generation 0). */
            bool complete;
            uint32_t generation;
            wzp_sig_nat nat; /* the sender's NAT as learned since (all zero: not sent) */
        } update;
        /* REATTACH (call_id, role) and REATTACHED (call_id, relay_channel, relay_addr) */
        struct {
            uint8_t call_id[WZP_SIG_CALL_ID_LEN];
            wzp_sig_role role;
            uint32_t relay_channel;
            wzp_addr relay_addr; /* len 0: none */
        } reattach;
        struct {
            wzp_sig_err code;
            char text[WZP_SIG_TEXT_MAX + 1];
        } error;
        struct {
            uint8_t park_id[WZP_PARK_ID_LEN];
            uint8_t key[WZP_PARK_KEY_LEN];
            uint32_t keepalive_ms; /* 1..WZP_PARK_KEEPALIVE_MAX_MS */
        } park;
        struct {
            uint8_t key[WZP_SIG_AUTH_KEY_MAX]; /* 1..WZP_SIG_AUTH_KEY_MAX bytes */
            size_t key_len;
            uint8_t sig[WZP_SIG_AUTH_SIG_MAX]; /* 1..WZP_SIG_AUTH_SIG_MAX bytes */
            size_t sig_len;
        } auth;
    } u;
} wzp_sig_msg;

/* Zeroes msg and sets its type and request id. */
void wzp_sig_init(wzp_sig_msg *msg, wzp_sig_type type, uint64_t request_id);

/*
 * Encodes msg into out (cap bytes). Returns the length, WZP_ERR_INVALID if a
 * field would not pass the decoder's validation (so we never send what a peer
 * must reject) or WZP_ERR_TOO_BIG if it does not fit cap or WZP_SIG_MAX_SIZE.
 */
int wzp_sig_encode(const wzp_sig_msg *msg, uint8_t *out, size_t cap);

/*
 * Decodes and validates one message. Returns 0, WZP_ERR_TOO_BIG (over
 * WZP_SIG_MAX_SIZE; nothing parsed), WZP_ERR_PROTOCOL (a non-zero version
 * other than ours) or WZP_ERR_MALFORMED. On MALFORMED and PROTOCOL, msg->request_id
 * holds the envelope's request id if the envelope itself parsed (0 if not),
 * so the error reply can still be correlated. Unknown fields are ignored;
 * candidates of unknown type are skipped; unknown end reasons read as ERROR
 * and unknown error codes as UNSPECIFIED (forward compatibility).
 */
int wzp_sig_decode(const uint8_t *buf, size_t len, wzp_sig_msg *msg);

/* Alias syntax: 1..WZP_SIG_ALIAS_MAX bytes of [a-z0-9._-], first one [a-z0-9]. */
bool wzp_sig_alias_valid(const char *alias);

const char *wzp_sig_type_name(wzp_sig_type type);
const char *wzp_sig_end_reason_name(wzp_sig_end_reason reason);
/* The wzp_error a caller would see for a call that ended this way. */
int wzp_sig_end_reason_error(wzp_sig_end_reason reason);

#endif
