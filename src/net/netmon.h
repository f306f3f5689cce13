/*
 * Address-change notifications (Linux rtnetlink): a socket subscribed to
 * IPv4/IPv6 interface-address and route events. The owner watches its fd for reading
 * and, when readable, drains it with wzp_netmon_drain() and re-reads the
 * addresses it cares about (net/ifaddrs.h): the messages themselves are only
 * a "something changed" signal, so nothing here parses them. Sends nothing.
 */
#ifndef WZP_NET_NETMON_H
#define WZP_NET_NETMON_H

#include <stdbool.h>

/* A non-blocking, close-on-exec rtnetlink socket bound to the address groups,
 * or a negative wzp_error (netlink unavailable: sandboxes, other OSes). */
int wzp_netmon_open(void);
/*
 * Reads every pending message. Returns true if any arrived, or if the kernel
 * dropped some (ENOBUFS): either way the caller should re-scan.
 */
bool wzp_netmon_drain(int fd);
void wzp_netmon_close(int fd);

#endif
