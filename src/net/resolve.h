/*
 * Host name lookups (getaddrinfo). Blocking: call from a thread that may
 * wait (before an event loop runs, or a worker), never from the loop.
 */
#ifndef WZP_NET_RESOLVE_H
#define WZP_NET_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/hostport.h"

/*
 * The addresses of hp (UDP), in happy-eyeballs order (wzp_addr_order_eyeballs)
 * and limited to the families we have sockets for: their count (> 0), or
 * WZP_ERR_RESOLVE with the resolver's reason in why. A numeric hp gives its
 * own address without a lookup.
 */
int wzp_resolve(const wzp_hostport *hp, bool have_v4, bool have_v6, wzp_addr *out, size_t cap,
                char *why, size_t whylen);

#endif
