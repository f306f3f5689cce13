/*
 * The relay's alternate STUN address, for NAT behaviour discovery (RFC 5780,
 * as `wzp doctor` runs it). With a second IP address A2 on the relay host
 * (A1:P1 being the relay port), two sockets answer Binding requests:
 * A2:P1 and A2:P2 (P2 any free port). The relay port names A2:P2 as
 * OTHER-ADDRESS in its answers (when the request leaves room for it), so a
 * client can derive all three addresses. These sockets honour CHANGE-REQUEST:
 * "change port" is answered from the other alternate socket, "change IP"
 * (with or without the port) from the relay port A1:P1. A client that only
 * ever sent to A2:P2 learns from which answers get through whether its NAT
 * filters by address, by address and port, or not at all.
 *
 * Answers are as small as the relay port's (never more than
 * WZP_STUN_RESPONSE_GROWTH over the request) and rate-limited per source the
 * same way: this is no better a reflector than the relay port. Runs on the
 * relay's control thread (its event loop).
 */
#ifndef WZP_RELAY_STUN_ALT_H
#define WZP_RELAY_STUN_ALT_H

#include <stdint.h>

#include "common/addr.h"
#include "net/loop.h"
#include "relay/forwarder.h"

typedef struct wzp_stun_alt wzp_stun_alt;

/* Binds A2:P2 (ip's port is ignored). 0 or a negative wzp_error (*out untouched). */
int wzp_stun_alt_open(wzp_stun_alt **out, const wzp_addr *ip, unsigned stun_rate);
/* A2:P2, the OTHER-ADDRESS the relay port names (give it to the forwarder's config). */
const wzp_addr *wzp_stun_alt_other(const wzp_stun_alt *a);
/* Binds A2:P1 (P1 = the forwarder's port) and starts answering on loop. */
int wzp_stun_alt_start(wzp_stun_alt *a, wzp_loop *loop, wzp_forwarder *fwd);
/* Requests answered, and valid ones not answered (source over its rate). */
void wzp_stun_alt_counts(const wzp_stun_alt *a, uint64_t *answered, uint64_t *limited);
/* Stops (on the loop's thread) and closes. NULL is fine. */
void wzp_stun_alt_free(wzp_stun_alt *a);

#endif
