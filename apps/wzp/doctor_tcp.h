/*
 * wzp doctor's check of the relay's TLS-over-TCP service (docs/relay.md, TCP):
 * a TCP connect and a TLS 1.3 handshake pinned to the relay's key, the same
 * link a client on a UDP-hostile network would use (src/net/tcp_link.h).
 * Nothing is registered: the link is closed as soon as it is up.
 */
#ifndef WZP_APP_DOCTOR_TCP_H
#define WZP_APP_DOCTOR_TCP_H

#include <stdbool.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "common/addr.h"
#include "common/time.h"

typedef struct doctor_tcp {
    bool tried;
    uint16_t port;
    bool connected;    /* the TCP connection was accepted */
    bool ok;           /* TLS up and the key matched the pin */
    bool pin_mismatch; /* the relay presented another key than the pin */
    wzp_ts connect;    /* from the SYN to the connection */
    wzp_ts handshake;  /* from the connection to TLS up */
    char detail[200];  /* why it failed */
} doctor_tcp;

/* Blocks until done or `timeout`. relay: its address (the port is replaced by port). */
void doctor_tcp_check(doctor_tcp *out, const wzp_addr *relay, uint16_t port,
                      const uint8_t pin[WZP_FINGERPRINT_LEN], wzp_ts timeout);

#endif
