/*
 * Which transport carries the client's datagrams to and from its relay: UDP
 * (the relay port) or the relay's TLS-over-TCP service (src/net/tcp_link.h),
 * for networks that drop UDP. Sans-I/O: the runtime (client.c) reports what
 * it sent and received and when a TCP link came up or went down; this says
 * where relay-bound datagrams go, whether a TCP link is wanted, and when to
 * check UDP with a STUN request to the relay.
 *
 * Auto mode (happy eyeballs, UDP preferred): UDP from the start, a TCP link
 * opened in parallel once an answer over UDP is WZP_RTX_DOUBT late. UDP
 * counts as working once anything arrives from the relay over it; it is dead
 * when an answerable datagram (QUIC, a channel keep-alive, a STUN check)
 * went unanswered for WZP_RTX_UDP_DEAD. Relay media that stops arriving for
 * WZP_RTX_SILENCE, or media sent to a relay that has been silent that long
 * (a call falling back to it), triggers a STUN check at once, so a call
 * loses about a second when UDP goes away mid-call.
 * With UDP dead and the TCP link up, datagrams move to TCP (the relay sees
 * the client's QUIC connection migrate, and its channels follow); the TCP
 * link is dropped once UDP has worked again for WZP_RTX_TCP_LINGER.
 * While on TCP, UDP is checked every WZP_RTX_CHECK_INTERVAL: an answer moves
 * the datagrams back to UDP.
 */
#ifndef WZP_CLIENT_RELAY_TRANSPORT_H
#define WZP_CLIENT_RELAY_TRANSPORT_H

#include <stdbool.h>

#include <wzp/client.h>

#include "common/time.h"

#define WZP_RTX_UDP_DEAD       WZP_MS(700)
#define WZP_RTX_DOUBT          WZP_MS(200) /* unanswered this long: open a TCP link already */
#define WZP_RTX_SILENCE        WZP_MS(200)
#define WZP_RTX_CHECK_INTERVAL WZP_SEC(3)
#define WZP_RTX_TCP_LINGER     WZP_SEC(10)
#define WZP_RTX_TCP_RETRY_MIN  WZP_MS(500)
#define WZP_RTX_TCP_RETRY_MAX  WZP_SEC(8)

typedef struct wzp_rtx {
    wzp_relay_transport mode;
    bool via_tcp;         /* where relay-bound datagrams go now */
    bool udp_ok;          /* something arrived over UDP since it was last declared dead */
    bool tcp_up;          /* the runtime's TCP link is up */
    bool tcp_connecting;  /* the runtime has a TCP link that is not up yet */
    wzp_ts udp_last_rx;   /* last datagram from the relay over UDP */
    wzp_ts udp_ok_since;  /* when UDP last started working */
    wzp_ts unanswered;    /* first answerable UDP send after udp_last_rx, or NEVER */
    wzp_ts media_last_rx; /* last relay media frame over UDP, or 0 */
    wzp_ts next_check;    /* next STUN check of UDP, or NEVER */
    wzp_ts tcp_retry_at;  /* when a new TCP link may be opened */
    wzp_ts tcp_backoff;
    unsigned switches; /* moves between UDP and TCP */
} wzp_rtx;

void wzp_rtx_init(wzp_rtx *r, wzp_relay_transport mode, wzp_ts now);
/* A datagram to the relay left over UDP; answerable: the relay answers it (QUIC, keep-alive,
 * STUN). */
void wzp_rtx_on_udp_sent(wzp_rtx *r, bool answerable, wzp_ts now);
/* A datagram from the relay arrived over UDP; media: a relay DATA frame. */
void wzp_rtx_on_udp_rx(wzp_rtx *r, bool media, wzp_ts now);
/* The runtime's TCP link: opened (connecting), up, or gone. */
void wzp_rtx_on_tcp_connecting(wzp_rtx *r, wzp_ts now);
void wzp_rtx_on_tcp_up(wzp_rtx *r, wzp_ts now);
void wzp_rtx_on_tcp_down(wzp_rtx *r, wzp_ts now);
/* Re-evaluates at now (after any input or at the deadline). */
void wzp_rtx_update(wzp_rtx *r, wzp_ts now);
/* Should a TCP link be opened now (none open)? */
bool wzp_rtx_tcp_open_due(const wzp_rtx *r, wzp_ts now);
/* Should the open TCP link be closed (no longer needed)? */
bool wzp_rtx_tcp_close_due(const wzp_rtx *r, wzp_ts now);
/* Is a STUN check of UDP due? The runtime sends it and reports it as an answerable send. */
bool wzp_rtx_check_due(const wzp_rtx *r, wzp_ts now);
void wzp_rtx_check_sent(wzp_rtx *r, wzp_ts now);
wzp_ts wzp_rtx_deadline(const wzp_rtx *r);

#endif
