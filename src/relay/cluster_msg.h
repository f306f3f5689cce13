/*
 * Relay-to-relay messages of a relay cluster (src/relay/cluster.c), carried
 * over Redis pub/sub. Sans-I/O: encode to bytes, decode bytes that anyone
 * able to publish on the Redis server may have written (fuzzed by
 * fuzz/fuzz_cluster_msg.c).
 *
 * Every message is authenticated with HMAC-SHA256 under the cluster key that
 * all relays of the cluster share, names its sender and its one receiver, and
 * carries the sender's wall-clock time: a message for another relay, an old
 * one (replayed) or one without a valid tag is refused. The call-related
 * ones carry a client signaling message (wire/signal.h) decoded by the same
 * validating codec as a client's.
 */
#ifndef WZP_RELAY_CLUSTER_MSG_H
#define WZP_RELAY_CLUSTER_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "wire/signal.h"

#define WZP_CLUSTER_ID_LEN   16 /* a relay's id: the first bytes of its key's fingerprint */
#define WZP_CLUSTER_KEY_MIN  16
#define WZP_CLUSTER_KEY_MAX  64
#define WZP_CLUSTER_MAX_SIZE (WZP_SIG_MAX_SIZE + 256)
/* Messages older (or further in the future) than this are refused as replays. */
#define WZP_CLUSTER_MAX_AGE_MS 30000

typedef enum wzp_cluster_kind {
    WZP_CLUSTER_OFFER = 1,   /* caller's relay -> callee's: sig OFFER, caller fp/alias, link */
    WZP_CLUSTER_RINGING = 2, /* callee's relay -> caller's: sig RINGING (its link channel) */
    WZP_CLUSTER_ACCEPT = 3,  /* sig ACCEPT, as the callee sent it */
    WZP_CLUSTER_UPDATE = 4,  /* sig CANDIDATES_UPDATE, as a party sent it */
    WZP_CLUSTER_END = 5,     /* sig CALL_ENDED: the call ended on the sender's side */
    WZP_CLUSTER_KICK = 6,    /* fp registered on the sender now: drop your connection of it */
    /* An end of a call moved to the sender: sig REATTACH (call id, which end), fp its key,
     * link_chan and fwd_addr the sender's link channel for it. Answered with: */
    WZP_CLUSTER_REATTACH = 7,
    WZP_CLUSTER_REATTACH_ACK = 8, /* fp: the answering relay's end; link_chan, fwd_addr: its */
} wzp_cluster_kind;

typedef struct wzp_cluster_key {
    uint8_t k[WZP_CLUSTER_KEY_MAX];
    size_t len;
} wzp_cluster_key;

typedef struct wzp_cluster_msg {
    wzp_cluster_kind kind;
    uint8_t from[WZP_CLUSTER_ID_LEN], to[WZP_CLUSTER_ID_LEN];
    uint64_t ts_ms; /* sender's wall clock, ms since the epoch */
    uint8_t call_id[WZP_SIG_CALL_ID_LEN];
    uint8_t fp[WZP_SIG_FP_LEN]; /* OFFER: the caller; KICK: the key */
    wzp_sig_alias alias;        /* OFFER: the caller's alias */
    uint32_t link_chan;         /* OFFER: the sender's link channel id */
    wzp_addr fwd_addr;          /* OFFER: the sender's forwarding address (len 0: none) */
    wzp_sig_msg sig;            /* type NONE for KICK */
} wzp_cluster_msg;

/* Length of the encoding, or a negative wzp_error (WZP_ERR_INVALID for a
 * message the decoder would refuse, WZP_ERR_TOO_BIG for cap). */
int wzp_cluster_msg_encode(const wzp_cluster_msg *m, const wzp_cluster_key *key, uint8_t *out,
                           size_t cap);
/*
 * Decodes and verifies: 0, WZP_ERR_MALFORMED (bad layout or signal message),
 * WZP_ERR_PROTOCOL (tag: not from a relay holding the key), WZP_ERR_REJECTED (not for `self`, or
 * older/newer than WZP_CLUSTER_MAX_AGE_MS around now_ms).
 */
int wzp_cluster_msg_decode(const uint8_t *buf, size_t len, const wzp_cluster_key *key,
                           const uint8_t self[WZP_CLUSTER_ID_LEN], uint64_t now_ms,
                           wzp_cluster_msg *out);

#endif
