/*
 * The STUN Binding responder, sans-I/O: one request datagram in, at most one
 * response datagram out. The relay runs it on its public port so clients
 * learn their server-reflexive address.
 *
 * Amplification: a STUN server answers spoofable UDP, so the answer must not
 * be much bigger than the question. Responses carry no SOFTWARE and a
 * minimal reason phrase; every response is at most
 * WZP_STUN_RESPONSE_GROWTH bytes longer than its request (the worst case is
 * a 20-byte header-only request from an IPv6 client: 20 + 24 + 8 = 52).
 */
#ifndef WZP_WIRE_STUN_SERVER_H
#define WZP_WIRE_STUN_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

#define WZP_STUN_RESPONSE_GROWTH 32
/* A response buffer of this size is always big enough. */
#define WZP_STUN_RESPONSE_MAX 96

/*
 * Answers a Binding request from `from`: a success response with
 * XOR-MAPPED-ADDRESS and FINGERPRINT, or a 420 error listing the unknown
 * comprehension-required attributes. Returns the response length, or
 * negative when nothing must be sent: WZP_ERR_MALFORMED (not STUN, bad
 * framing or attributes), WZP_ERR_INVALID (not a Binding request:
 * indications, responses, other methods), WZP_ERR_TOO_BIG (cap too small).
 */
int wzp_stun_respond(const uint8_t *req, size_t len, const wzp_addr *from, uint8_t *out,
                     size_t cap);

/*
 * As wzp_stun_respond, for a server with an alternate address (RFC 5780
 * behaviour discovery). `other` (NULL: none) is put in OTHER-ADDRESS when the
 * answer still stays within WZP_STUN_RESPONSE_GROWTH of the request (a client
 * that wants it pads its request, e.g. with SOFTWARE). A CHANGE-REQUEST with
 * flags is answered with 420 unless `change` is given: then its flags land in
 * *change (0 if none) and the caller sends the answer from the address and
 * port they ask for.
 */
int wzp_stun_respond_alt(const uint8_t *req, size_t len, const wzp_addr *from,
                         const wzp_addr *other, uint32_t *change, uint8_t *out, size_t cap);

#endif
