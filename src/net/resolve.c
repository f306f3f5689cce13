/* Host name lookups: see resolve.h. */
#include "net/resolve.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include <wzp/wzp.h>

int wzp_resolve(const wzp_hostport *hp, bool have_v4, bool have_v6, wzp_addr *out, size_t cap,
                char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!hp || !out || cap == 0)
        return WZP_ERR_INVALID;
    if (hp->numeric) {
        out[0] = hp->addr;
        if (wzp_addr_order_eyeballs(out, 1, have_v4, have_v6) == 1)
            return 1;
        snprintf(why, whylen, "no socket of that address family");
        return WZP_ERR_RESOLVE;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_protocol = IPPROTO_UDP;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)hp->port);
    int rc = getaddrinfo(hp->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "%s", gai_strerror(rc));
        return WZP_ERR_RESOLVE;
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; ai && n < cap; ai = ai->ai_next)
        if (wzp_addr_from_sockaddr(&out[n], ai->ai_addr, ai->ai_addrlen) == 0)
            n++;
    freeaddrinfo(res);
    n = wzp_addr_order_eyeballs(out, n, have_v4, have_v6);
    if (n == 0) {
        snprintf(why, whylen, "no address of a family this host can reach");
        return WZP_ERR_RESOLVE;
    }
    return (int)n;
}
