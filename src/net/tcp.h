/* Non-blocking TCP sockets: a listener and an outgoing connection. */
#ifndef WZP_NET_TCP_H
#define WZP_NET_TCP_H

#include "common/addr.h"

/* A non-blocking listening socket on addr (port 0 picks one; *bound gets the
 * actual address if non-NULL). The fd, or a negative wzp_error. */
int wzp_tcp_listen(const wzp_addr *addr, wzp_addr *bound);
/* Starts a non-blocking connect to addr; the fd (writable once connected), or a
 * negative wzp_error. */
int wzp_tcp_connect(const wzp_addr *addr);

#endif
