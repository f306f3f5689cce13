/*
 * Host addresses usable as connectivity candidates (ICE "host" candidates):
 * interfaces that are up, IPv4 and IPv6, minus the ones a peer could never
 * reach or that are about to go away.
 */
#ifndef WZP_NET_IFADDRS_H
#define WZP_NET_IFADDRS_H

#include <net/if.h>
#include <stddef.h>

#include "common/addr.h"

typedef struct wzp_ifaddr {
    wzp_addr addr; /* port 0 */
    unsigned ifindex;
    char ifname[IF_NAMESIZE];
} wzp_ifaddr;

/* Flags for wzp_ifaddrs_get(). */
#define WZP_IFADDR_LOOPBACK  0x1u /* include loopback interfaces and addresses */
#define WZP_IFADDR_TEMPORARY 0x2u /* include IPv6 temporary (privacy) addresses */

/*
 * Fills up to cap entries and returns how many, or a negative wzp_error.
 * Skipped always: interfaces that are down, unspecified addresses, IPv6
 * link-local (useless without a scope a peer cannot know) and, where Linux
 * reports them (/proc/net/if_inet6), IPv6 addresses that are deprecated,
 * tentative or failed duplicate detection. Loopback and temporary addresses
 * only with the flags above. Duplicates are reported once.
 */
int wzp_ifaddrs_get(wzp_ifaddr *out, size_t cap, unsigned flags);

/*
 * Parses one /proc/net/if_inet6 line into its 16 address bytes and flags
 * (IFA_F_*). Exposed for tests. 0 or WZP_ERR_MALFORMED.
 */
int wzp_ifaddrs_parse_inet6_line(const char *line, uint8_t ip[16], unsigned *flags);

#endif
