/*
 * "HOST[:PORT]" text, as users type a relay's address, and the order in which
 * a resolved name's addresses are tried. Plain data and string handling: no
 * DNS here (src/net/resolve.h does the lookups).
 */
#ifndef WZP_COMMON_HOSTPORT_H
#define WZP_COMMON_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/* The relay's port when none is given. */
#define WZP_DEFAULT_RELAY_PORT 4433
/* The relay's TLS-over-TCP service (for networks that drop UDP), as HTTPS. */
#define WZP_DEFAULT_RELAY_TCP_PORT 443
/* A DNS name is at most 253 characters (RFC 1035), plus the NUL. */
#define WZP_HOST_MAX 254

typedef struct wzp_hostport {
    char host[WZP_HOST_MAX]; /* name or address literal, without brackets */
    uint16_t port;           /* the default when has_port is false */
    bool has_port;
    bool numeric; /* an address literal: addr holds it (with port), no DNS needed */
    wzp_addr addr;
} wzp_hostport;

/*
 * Parses "name", "name:PORT", "1.2.3.4[:PORT]", "[v6][:PORT]" or a bare "v6"
 * (no port then). Names must be valid DNS host names (letters, digits, '-',
 * '_', dot-separated labels of 1..63, 253 at most, one trailing dot allowed);
 * ports 1..65535. 0 or WZP_ERR_INVALID (*out then unspecified).
 */
int wzp_hostport_parse(wzp_hostport *out, const char *text, uint16_t default_port);

/*
 * Orders resolved addresses for connection attempts (RFC 8305, section 4):
 * duplicates and families we have no socket for are dropped, then IPv6 and
 * IPv4 alternate starting with IPv6, each family keeping the resolver's
 * order. Works in place; returns the new count.
 */
size_t wzp_addr_order_eyeballs(wzp_addr *addrs, size_t n, bool have_v4, bool have_v6);

#endif
