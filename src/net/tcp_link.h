/*
 * One TLS 1.3 connection over TCP carrying datagrams as records
 * (src/wire/tcp_frame.h): the relay's TCP listener holds one per client, a
 * client that cannot use UDP holds one to its relay. The relay's certificate
 * is its identity; the client pins it exactly as over QUIC (SPKI
 * fingerprint). The QUIC inside is authenticated end to end anyway: TLS here
 * hides the traffic from the network and makes it look like HTTPS.
 *
 * Voice must not queue behind a slow reader: the socket keeps little unsent
 * data (TCP_NOTSENT_LOWAT, small SO_SNDBUF), and the link's own send queue
 * is bounded; when it is full the oldest records are dropped (counted), so
 * the reader gets the newest.
 *
 * Owns its socket. No clock, no loop: the owner watches wzp_tcp_link_fd()
 * for wzp_tcp_link_events() and calls wzp_tcp_link_io() when it is ready,
 * and after queueing with wzp_tcp_link_send().
 */
#ifndef WZP_NET_TCP_LINK_H
#define WZP_NET_TCP_LINK_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "common/addr.h"

/* ALPN of the relay's TCP service. */
#define WZP_TCP_ALPN "wzp-relay/1"
/* Default send queue (bytes of records, headers included): about 0.3 s of
 * one relayed call plus its control traffic. */
#define WZP_TCP_LINK_QUEUE 8192

typedef struct wzp_tcp_link wzp_tcp_link;

typedef struct wzp_tcp_link_config {
    int fd;      /* connected or connecting (non-blocking) TCP socket; the link owns it */
    bool server; /* relay side */
    /* Server: the relay's identity credentials. Client: any (no client certificate is sent).
     * Borrowed; outlives the link. */
    gnutls_certificate_credentials_t cred;
    uint8_t pin[WZP_FINGERPRINT_LEN]; /* client: the relay's fingerprint */
    size_t queue;                     /* send queue bytes; 0 = WZP_TCP_LINK_QUEUE */
} wzp_tcp_link_config;

typedef struct wzp_tcp_link_stats {
    uint64_t rx_records, tx_records;
    uint64_t tx_dropped; /* oldest records dropped: the queue was full */
} wzp_tcp_link_stats;

/* Receives one record (a datagram). */
typedef void (*wzp_tcp_link_deliver_fn)(void *user, const uint8_t *rec, size_t len);

/* 0 or a negative wzp_error; on error the fd is closed anyway. */
int wzp_tcp_link_new(wzp_tcp_link **out, const wzp_tcp_link_config *cfg);
/* Closes the socket (no TLS goodbye: nothing waits for it). NULL is fine. */
void wzp_tcp_link_free(wzp_tcp_link *l);
int wzp_tcp_link_fd(const wzp_tcp_link *l);
/* The handshake is done (pin checked): records flow. */
bool wzp_tcp_link_up(const wzp_tcp_link *l);
/* What to wait for: WZP_IO_READ, plus WZP_IO_WRITE while output waits. */
unsigned wzp_tcp_link_events(const wzp_tcp_link *l);
/*
 * Makes progress: connects, handshakes, reads every complete record (each to
 * deliver), writes what is queued. 0, or a negative wzp_error when the link
 * is dead (peer closed, TLS or pin failure, malformed stream): free it.
 */
int wzp_tcp_link_io(wzp_tcp_link *l, wzp_tcp_link_deliver_fn deliver, void *user);
/*
 * Queues one datagram (1..WZP_TCP_FRAME_MAX bytes) as a record, dropping the
 * oldest queued ones if there is no room; call wzp_tcp_link_io to send.
 * 0, or WZP_ERR_INVALID (length).
 */
int wzp_tcp_link_send(wzp_tcp_link *l, const uint8_t *data, size_t len);
/* Why the link died (for logs), "" while alive. */
const char *wzp_tcp_link_error(const wzp_tcp_link *l);
void wzp_tcp_link_get_stats(const wzp_tcp_link *l, wzp_tcp_link_stats *out);

/* Socket options both sides use on a link's socket (no Nagle, little unsent data). */
void wzp_tcp_link_tune(int fd);

#endif
