/*
 * Connectivity probes: the small authenticated UDP packets two peers send
 * each other over every candidate pair to prove a direct path works
 * (src/ice/agent.h drives them). First byte 0x90/0x91, inside the range
 * src/wire/demux.h reserves, so they share sockets with QUIC, STUN and relay
 * frames.
 *
 * Layout (all multi-byte integers big-endian):
 *
 *   off  len  request (0x90)            response (0x91)
 *   0    1    type                       type
 *   1    1    flags                      flags
 *   2    8    tag (identifies the call)  tag
 *   10   12   transaction id             transaction id (echoed from the request)
 *   22   8    sender id                  sender id (of the responder)
 *   30   -                               family (4 or 6)
 *   31   -                               observed port, XOR txid[0..1]
 *   33   -                               observed address (4 or 16 bytes), XOR txid||tag
 *   ..   16   HMAC-SHA-256(key, everything before it), first 16 bytes
 *
 * Requests are 46 bytes; responses 53 (IPv4) or 65 (IPv6). Any other length is
 * malformed. The observed address is where the responder saw the request come
 * from: the requester's server- or peer-reflexive address. It is XOR-masked
 * (as STUN does) so that NAT "helpers" rewriting embedded addresses leave it
 * alone; it is authenticated by the HMAC either way.
 *
 * The codec treats the transaction id as opaque. The agent fills a
 * request's with a 4-byte request counter and 8 random bytes (the counter
 * gives replay protection, the random part makes ids unguessable); a
 * response echoes the request's.
 *
 * The key is per call, 32 bytes, taken from the end-to-end QUIC connection's
 * TLS exporter, so the relay (which sees signaling) cannot forge probes. The
 * tag is derived from the key, so a client with several calls routes a probe
 * to its agent before spending an HMAC on it; it is not a secret.
 */
#ifndef WZP_WIRE_PROBE_H
#define WZP_WIRE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

#define WZP_PROBE_REQUEST  0x90
#define WZP_PROBE_RESPONSE 0x91

#define WZP_PROBE_KEY_LEN    32
#define WZP_PROBE_TAG_LEN    8
#define WZP_PROBE_TXID_LEN   12
#define WZP_PROBE_SENDER_LEN 8
#define WZP_PROBE_MAC_LEN    16

#define WZP_PROBE_REQUEST_LEN  46
#define WZP_PROBE_RESPONSE_MAX 65
#define WZP_PROBE_MAX_LEN      WZP_PROBE_RESPONSE_MAX

/* Flags: the sender's view of the pair the probe travels on. Unknown bits are ignored. */
#define WZP_PROBE_F_VALID  0x01 /* the sender has seen a probe and its reply cross this pair */
#define WZP_PROBE_F_ACTIVE 0x02 /* the sender currently sends the call's packets on this pair */

typedef struct wzp_probe {
    uint8_t type; /* WZP_PROBE_REQUEST or WZP_PROBE_RESPONSE */
    uint8_t flags;
    uint8_t tag[WZP_PROBE_TAG_LEN];
    uint8_t txid[WZP_PROBE_TXID_LEN];
    uint8_t sender[WZP_PROBE_SENDER_LEN];
    wzp_addr observed; /* responses only: the request's source address as the responder saw it */
} wzp_probe;

/* The call tag for a key: first 8 bytes of HMAC-SHA-256(key, "wzp probe tag"). */
void wzp_probe_derive_tag(const uint8_t key[WZP_PROBE_KEY_LEN], uint8_t tag[WZP_PROBE_TAG_LEN]);

/*
 * Reads the tag of something that looks like a probe, without authenticating
 * it (for routing to the right call). WZP_ERR_MALFORMED if it cannot be a probe.
 */
int wzp_probe_peek_tag(const uint8_t *buf, size_t len, uint8_t tag[WZP_PROBE_TAG_LEN]);

/*
 * Encodes p, MAC'd with key, into buf. Returns the length written,
 * WZP_ERR_TOO_BIG if cap is too small, WZP_ERR_INVALID for a bad type or (for a
 * response) an observed address that is not IPv4/IPv6.
 */
int wzp_probe_encode(const wzp_probe *p, const uint8_t key[WZP_PROBE_KEY_LEN], uint8_t *buf,
                     size_t cap);

/*
 * Decodes and authenticates. Returns 0 and fills p, or WZP_ERR_MALFORMED
 * (wrong type, length or family), WZP_ERR_NOT_FOUND (tag of another call; only
 * checked when expect_tag is non-NULL) or WZP_ERR_PROTOCOL (MAC does not
 * verify). The MAC is compared in constant time. p is untouched on failure.
 */
int wzp_probe_decode(wzp_probe *p, const uint8_t key[WZP_PROBE_KEY_LEN],
                     const uint8_t expect_tag[WZP_PROBE_TAG_LEN], const uint8_t *buf, size_t len);

#endif
