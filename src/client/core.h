/*
 * The client core, sans-I/O: everything a wzp client does, minus sockets,
 * clocks and threads (src/client/client.c is the runtime around it).
 *
 * It owns one QUIC endpoint (server-capable) carrying
 *  - the control connection to the relay (client role, relay pinned, real
 *    path: the socket's local address -> the relay), which carries signaling
 *    (src/call/signal_client.h), and
 *  - one end-to-end connection per call (the caller is the QUIC client),
 *    owned by the call (src/call/voicecall.h), pinned to the key the user
 *    dialled or was shown. It runs on a *virtual path* per call: local
 *    [100::1]:1, remote [100::2]:vport (100::/64 is the IPv6 discard prefix;
 *    never on the wire). Outgoing packets on a virtual path go where the
 *    call's ICE agent routes them: wrapped in a relay DATA frame to the
 *    relay, or straight to the peer. Incoming ones are accepted from any
 *    path and fed with the virtual one.
 *
 * Receive demultiplexing (first byte, wire/demux.h, then one table):
 *    QUIC from the relay      -> control connection
 *    QUIC from anywhere else  -> the call owning its DCID (the endpoint's table)
 *    relay DATA from the relay -> the call owning the channel id (routing table)
 *    probe                    -> the call owning the probe tag (routing table)
 *    park frame               -> the parking state (src/client/park.h), if we are parked
 *
 * Driving: feed() every datagram, handle_timer() at next_deadline(), and
 * flush() after each of those and after every command; flush hands out the
 * datagrams to send with the socket to send them from.
 */
#ifndef WZP_CLIENT_CORE_H
#define WZP_CLIENT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/client.h>
#include <wzp/identity.h>

#include "common/addr.h"
#include "media/audio_format.h"
#include "common/time.h"

typedef struct wzp_core wzp_core;

/* Sockets, as in src/ice/candidate.h: 0 = IPv4, 1 = IPv6. */
#define WZP_CORE_SOCKS 2

typedef enum wzp_core_ev_type {
    WZP_CORE_EV_REGISTERED = 1, /* text: our reflexive address */
    WZP_CORE_EV_UNREGISTERED,   /* err, fatal (no more retries) */
    WZP_CORE_EV_INCOMING,       /* call; peer_fp, peer_alias */
    WZP_CORE_EV_CALL_STATE,     /* call; state, err (ENDED: why; 0 = we hung up), text: detail */
    WZP_CORE_EV_PATH,           /* call: the route changed (get_call_stats for the new one) */
    WZP_CORE_EV_PCM,            /* call; pcm: one played-out frame, concealed */
} wzp_core_ev_type;

typedef struct wzp_core_event {
    wzp_core_ev_type type;
    uint32_t call;
    void *call_user;
    wzp_call_state state;
    int err;
    bool fatal;
    const char *text;
    const char *peer_fp, *peer_alias;
    const char *code; /* CALL_STATE: the verification code, "" until known */
    const int16_t *pcm;
    bool concealed;
} wzp_core_event;

typedef struct wzp_core_config {
    const wzp_identity *id; /* borrowed; outlives the core */
    wzp_addr relay;
    uint8_t relay_pin[WZP_FINGERPRINT_LEN];
    const char *alias; /* copied; NULL or "" for none */
    bool direct_disabled;
    const char *qlog_dir;         /* wzp_client_config.qlog_dir */
    bool hold_audio_until_answer; /* see wzp_client_config */
    bool dtx;      /* the source reports WZP_PCM_BACKGROUND: leave those frames out */
    bool no_adapt; /* fixed codec settings (wzp_client_config.adaptation_disabled) */
    bool parity;   /* parity instead of copies (wzp_client_config.parity_repair) */
    /* The bound address of each socket (len 0: no such socket). Host
     * candidates get the port of their family's socket. */
    wzp_addr local[WZP_CORE_SOCKS];
    /*
     * Extra IPv4 sockets for birthday probing (ice/agent.h WZP_ICE_AUX_MAX at
     * most; 0: none): socket indices WZP_CORE_SOCKS + k for feed and send.
     * aux_local: the first one's bound address (its port, for NAT tests).
     */
    unsigned aux_socks;
    wzp_addr aux_local;
    wzp_ts reconnect_min, reconnect_max; /* backoff; defaults 250 ms, 8 s */
    /* Never take the relay's offer to park (src/client/park.h): the relay is reached over its
     * TCP service only (wzp_client_config.relay_transport TCP). */
    bool no_park;
    void (*event)(void *user, const wzp_core_event *ev);
    /* The next frame to send for a call, and what it holds. */
    wzp_pcm_kind (*pcm_source)(void *user, uint32_t call, void *call_user,
                               int16_t pcm[WZP_FRAME_SAMPLES]);
    void *user;
} wzp_core_config;

typedef void (*wzp_core_send_fn)(void *user, int sock, const wzp_addr *to, const uint8_t *pkt,
                                 size_t len);

/* All zero: default backoff, no alias, no sockets (set id, relay, relay_pin, local). */
void wzp_core_config_default(wzp_core_config *cfg);
/* 0, or a negative wzp_error (*out untouched); id, relay and a socket of the
 * relay's family are required, so there is no NULL config. */
int wzp_core_new(wzp_core **out, const wzp_core_config *cfg);
void wzp_core_free(wzp_core *core);

/* A host address to offer as a candidate (its port is replaced by the socket's). */
int wzp_core_add_host_addr(wzp_core *core, const wzp_addr *ip);
/*
 * Replaces the host addresses (after an interface or address change; ports
 * are replaced as above, addresses of a family without a socket skipped, at
 * most CORE_MAX_HOSTS kept). If the set differs, every call re-gathers: its
 * ICE agent gets the new host candidates plus the current reflexive one,
 * re-checks every pair now (wzp_ice_network_changed), and the peer is sent
 * the new candidates; later Offers/Accepts carry the new set. Returns 1 if
 * the set changed, 0 if not (nothing else happens), or a negative wzp_error.
 * Flush afterwards.
 */
int wzp_core_set_host_addrs(wzp_core *core, const wzp_addr *ips, size_t n, wzp_ts now);
/*
 * The routes changed while the host addresses did not (another uplink): our
 * public address may have moved. Pings the relay (which then reports a new
 * reflexive address) and has every call re-check its pairs now and send the
 * peer its candidate set again, as after a host change. Flush afterwards.
 */
void wzp_core_network_changed(wzp_core *core, wzp_ts now);

/*
 * The public address:port our gateway maps to our IPv4 socket (NAT-PMP or
 * UPnP-IGD, src/portmap), or NULL / len 0 when there is none (any more).
 * Offered as a MAPPED candidate by later Offers/Accepts; live calls re-gather
 * and send the peer their new set (no re-check of the other pairs). Returns 1
 * if it changed, 0 if not, WZP_ERR_INVALID for an unusable address or one of
 * a family without a socket. Flush afterwards.
 */
int wzp_core_set_mapped_addr(wzp_core *core, const wzp_addr *mapped, wzp_ts now);

/* At most this many relay addresses are kept (the cluster's relays, every address of each). */
#define WZP_CORE_MAX_RELAYS 8
/* One relay address and the key it must present. */
typedef struct wzp_core_relay {
    wzp_addr addr;
    uint8_t pin[WZP_FINGERPRINT_LEN];
} wzp_core_relay;
/*
 * The relays' addresses (a cluster's relays, each with every address of its name, see
 * wzp_addr_order_eyeballs) in preference order, replacing cfg.relay and any earlier
 * list; those of a family without a socket are skipped, at most WZP_CORE_MAX_RELAYS
 * kept. Used from the next connection attempt on: a connection that is up stays. With
 * several, every (re)connection first measures the RTT to each (one STUN round trip,
 * src/client/relay_select.h) and tries them lowest first; an address whose connection
 * was lost or never answered rests (1 s doubling to 30 s) and is tried last meanwhile.
 * Each attempt that gets no handshake within WZP_CORE_RELAY_ATTEMPT_DELAY is dropped for
 * the next address; after the last, the usual backoff starts over.
 * 0, or WZP_ERR_INVALID when no address is usable.
 */
int wzp_core_set_relays(wzp_core *core, const wzp_core_relay *relays, size_t n);
/* The relay address of the current (or latest) connection attempt. */
void wzp_core_relay_addr(const wzp_core *core, wzp_addr *out);
/* The key pinned for that relay (each relay of a cluster has its own). */
void wzp_core_relay_pin(const wzp_core *core, uint8_t pin[WZP_FINGERPRINT_LEN]);

/* Datagrams to the relay now take another transport (UDP <-> its TCP service): pings the
 * relay so it sees us at the new address at once. Flush afterwards. */
void wzp_core_relay_moved(wzp_core *core, wzp_ts now);
/* The relay's TCP service presented another key than the pinned one (the runtime's TLS
 * link, when the relay is reached over TCP only): fatal, as a pin mismatch over QUIC. */
void wzp_core_relay_pin_failed(wzp_core *core, const char *detail, wzp_ts now);
/* Connects to the relay (and keeps reconnecting after losses). */
int wzp_core_start(wzp_core *core, wzp_ts now);
/* Ends every call and closes the relay connection; flush until wzp_core_idle. */
void wzp_core_shutdown(wzp_core *core, wzp_ts now);
/* No connection left (closing periods over): safe to stop flushing. */
bool wzp_core_idle(const wzp_core *core);

void wzp_core_feed(wzp_core *core, int sock, const wzp_addr *from, const uint8_t *pkt, size_t len,
                   wzp_ts now);
void wzp_core_handle_timer(wzp_core *core, wzp_ts now);
wzp_ts wzp_core_next_deadline(const wzp_core *core);
void wzp_core_flush(wzp_core *core, wzp_ts now, wzp_core_send_fn send, void *user);

/* Calls are named by ids (never reused). */
int wzp_core_call(wzp_core *core, const char *peer, const char *alias_hint, void *call_user,
                  uint32_t *out, wzp_ts now);
int wzp_core_set_call_user(wzp_core *core, uint32_t call, void *call_user);
int wzp_core_answer(wzp_core *core, uint32_t call, wzp_ts now);
int wzp_core_reject(wzp_core *core, uint32_t call, wzp_ts now);
int wzp_core_hangup(wzp_core *core, uint32_t call, wzp_ts now);
int wzp_core_set_mute(wzp_core *core, uint32_t call, bool mute);
int wzp_core_get_call_stats(wzp_core *core, uint32_t call, wzp_call_stats *out, wzp_ts now);
/* The handle is no longer used by the owner; the call must have ended (else it is hung up). */
void wzp_core_release(wzp_core *core, uint32_t call, wzp_ts now);

/* Every datagram fed lands in exactly one rx_* bucket. */
typedef struct wzp_core_stats {
    uint64_t rx_ctrl;          /* QUIC from the relay: control connection */
    uint64_t rx_relay;         /* relay DATA frames for a call */
    uint64_t rx_direct;        /* e2e QUIC from a peer's address */
    uint64_t rx_probe;         /* connectivity probes handed to a call's agent */
    uint64_t rx_keepalive_ack; /* the relay echoing our channel keep-alives */
    uint64_t rx_no_call;       /* well-formed, but for no call of ours (or not from the relay) */
    uint64_t rx_malformed;     /* a relay frame or probe that does not parse */
    uint64_t rx_unknown;       /* STUN, unknown first byte, bad arguments */
    uint64_t rx_park;          /* park frames taken (a PONG or WAKE for our park) */
} wzp_core_stats;

void wzp_core_get_stats(const wzp_core *core, wzp_core_stats *out);

/* Registered, parked included: a parked client is registered without a connection. */
bool wzp_core_registered(const wzp_core *core);
/* Parked (src/client/park.h): registered with no control connection, pinging the relay. */
bool wzp_core_parked(const wzp_core *core);
/* Smoothed RTT of the control connection (parked: of the latest ping), 0 before a sample. */
wzp_ts wzp_core_relay_rtt(const wzp_core *core);

#endif
