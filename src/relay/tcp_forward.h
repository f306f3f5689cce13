/*
 * Relay frames of clients on the relay's TCP service (src/relay/tcp_listener.h),
 * on the thread that owns the listener: judged by the workers' sans-I/O code
 * (wzp_fwd_handle: channel, source check, in-place rewrite), then sent to the
 * partner over UDP or down its own TCP connection.
 */
#ifndef WZP_RELAY_TCP_FORWARD_H
#define WZP_RELAY_TCP_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "relay/forwarder.h"
#include "relay/fwd_batch.h"
#include "relay/tcp_listener.h"

typedef struct wzp_tcp_forward {
    wzp_fwd_batch batch;
    wzp_forwarder *fwd;    /* borrowed */
    wzp_tcp_listener *tcp; /* borrowed */
} wzp_tcp_forward;

void wzp_tcp_forward_init(wzp_tcp_forward *tf, wzp_chan_table *table, wzp_forwarder *fwd,
                          wzp_tcp_listener *tcp);
/* A relay frame (or keep-alive) from the TCP client at tunnel address `from`. */
void wzp_tcp_forward_frame(wzp_tcp_forward *tf, const wzp_addr *from, const uint8_t *data,
                           size_t len, wzp_ts now);
/* Sends a datagram to a client: down its TCP connection for a tunnel address, else over UDP. */
void wzp_tcp_forward_send(wzp_tcp_forward *tf, const wzp_addr *to, const uint8_t *data, size_t len);

#endif
