/*
 * Address-change notifications (Linux rtnetlink): a socket subscribed to
 * IPv4/IPv6 interface-address and route events. The owner watches its fd for reading
 * and, when readable, drains it with wzp_netmon_drain() and re-reads the
 * addresses it cares about (net/ifaddrs.h): the messages themselves are only
 * a "something changed" signal: only their kind is read (and, for routes,
 * whether it is a default route). Sends nothing.
 */
#ifndef WZP_NET_NETMON_H
#define WZP_NET_NETMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A non-blocking, close-on-exec rtnetlink socket bound to the address groups,
 * or a negative wzp_error (netlink unavailable: sandboxes, other OSes). */
int wzp_netmon_open(void);
/*
 * Reads every pending message. Returns true if any that matters arrived
 * (wzp_netmon_relevant), or if the kernel dropped some (ENOBUFS): either way
 * the caller should re-scan.
 */
bool wzp_netmon_drain(int fd);
/*
 * Whether a datagram of rtnetlink messages says something that matters: an
 * address added or removed, a default route (any family, main table) added
 * or removed, or a message it cannot read (safer to re-scan). Other routes
 * (IPv6 router advertisements refresh theirs often) do not count. Bounds
 * checked; sans-I/O.
 */
bool wzp_netmon_relevant(const uint8_t *buf, size_t len);
void wzp_netmon_close(int fd);

#endif
