/*
 * The client's datagrams to and from its relay, over UDP or the relay's
 * TLS-over-TCP service (runtime; the choice is the sans-I/O
 * src/client/relay_transport.h). The core never knows: what it sends to the
 * relay's address leaves over the chosen transport, and what arrives over
 * TCP is fed to it as if it came from the relay's UDP address.
 * Loop thread only.
 */
#ifndef WZP_CLIENT_RELAY_PATH_H
#define WZP_CLIENT_RELAY_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/client.h>
#include <wzp/identity.h>

#include "client/relay_transport.h"
#include "common/addr.h"
#include "common/time.h"
#include "net/loop.h"

typedef struct wzp_relay_path wzp_relay_path;

typedef struct wzp_relay_path_config {
    wzp_loop *loop;
    wzp_relay_transport mode;
    uint16_t tcp_port; /* 0 = WZP_DEFAULT_RELAY_TCP_PORT */
    /* A datagram that came over TCP, from the relay address the link serves. */
    void (*deliver)(void *user, const wzp_addr *from, const uint8_t *data, size_t len, wzp_ts now);
    /* TCP only: the relay's TCP service presented another key (detail says which). */
    void (*pin_failed)(void *user, const char *detail, wzp_ts now);
    /* The link's socket is ready: the owner calls wzp_relay_path_service (flush, re-arm). */
    void (*wake)(void *user);
    void *user;
} wzp_relay_path_config;

int wzp_relay_path_new(wzp_relay_path **out, const wzp_relay_path_config *cfg);
void wzp_relay_path_free(wzp_relay_path *p);

/* Sends a datagram for the relay at `relay` (the core's current relay address) from UDP
 * socket fd, or down the TCP link. */
void wzp_relay_path_send(wzp_relay_path *p, int fd, const wzp_addr *relay, const uint8_t *pkt,
                         size_t len, wzp_ts now);
/* A datagram arrived over UDP from the relay. True when it was ours (a STUN check's answer):
 * do not feed it to the core. */
bool wzp_relay_path_on_udp_rx(wzp_relay_path *p, const uint8_t *pkt, size_t len, wzp_ts now);
/* Runs the TCP link (writes what was queued, delivers what arrived), opens or closes it, and
 * sends due UDP checks (from fd to relay). A link opens to `relay` pinned to `pin` (the key of
 * that relay: in a cluster each relay has its own); it closes when the relay changes. Call
 * after every input and flush, and at wzp_relay_path_deadline. True when datagrams were
 * delivered: the owner flushes again. */
bool wzp_relay_path_service(wzp_relay_path *p, int fd, const wzp_addr *relay,
                            const uint8_t pin[WZP_FINGERPRINT_LEN], wzp_ts now);
wzp_ts wzp_relay_path_deadline(const wzp_relay_path *p);
/* Moves between UDP and TCP so far (a change: tell the core, wzp_core_relay_moved). */
unsigned wzp_relay_path_switches(const wzp_relay_path *p);
/* Whether datagrams to the relay go over TCP now. */
bool wzp_relay_path_via_tcp(const wzp_relay_path *p);

#endif
