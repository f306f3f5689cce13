/* The client core's state (core.c); exposed to white-box tests only. */
#ifndef WZP_CLIENT_CORE_INT_H
#define WZP_CLIENT_CORE_INT_H

#include "client/nat_watch.h"
#include "client/park.h"
#include "call/signal_client.h"
#include "call/voicecall.h"
#include "client/core.h"
#include "client/relay_select.h"
#include "client/relay_watch.h"
#include "common/hmap.h"
#include "quic/quic.h"
#include "wire/signal.h"

#define CORE_MAX_CALLS 16
#define CORE_MAX_HOSTS 12

/* The keys a packet or event is routed to a call by (the value is the slot's index). */
typedef struct core_route_keys {
    uint32_t sig;  /* signal client handle */
    uint32_t chan; /* relay channel */
    uint16_t vport;
    bool tagged;
    uint8_t tag[WZP_PROBE_TAG_LEN]; /* connectivity probes */
} core_route_keys;

typedef struct core_slot {
    wzp_voicecall *vc;    /* NULL: free */
    uint32_t id;          /* never reused */
    bool released;        /* the owner dropped its handle: freed once ended and closed */
    core_route_keys keys; /* as entered in the routing table */
} core_slot;

struct wzp_core {
    wzp_core_config cfg;
    char alias[WZP_SIG_ALIAS_MAX + 1];
    wzp_quic_endpoint *ep;
    wzp_sigc *sc;
    wzp_quic_conn *ctrl;
    bool ctrl_up;
    int relay_sock;
    /* The relays' addresses with their pins; tried in the order the selection ranks them
     * (order[], relay_idx the attempt's place in it); cfg.relay is the current one. */
    wzp_core_relay relays[WZP_CORE_MAX_RELAYS];
    /* Addresses of relays from before Auth (they asked for our certificate): we present it
     * there, in the handshake, and send no Auth. The oldest is forgotten when full. */
    wzp_addr cert_relays[WZP_CORE_MAX_RELAYS];
    size_t n_cert_relays, next_cert_relay;
    size_t order[WZP_CORE_MAX_RELAYS];
    size_t n_relays, relay_idx;
    wzp_relay_select sel; /* RTT per address, rest after failures (relay_select.h) */
    bool relays_new;      /* a new list came during an attempt on the old one */
    wzp_ts next_relay_at; /* give up on the current address then, if it has not answered */
    wzp_ts reconnect_at, backoff;
    bool started, stopping, fatal;
    bool fatal_reported;            /* the UNREGISTERED event for the fatal error went out */
    wzp_ts last_relay_rx;           /* the latest packet from the relay (control or frames) */
    wzp_relay_watch watch;          /* a relay silent during a relayed call: probe, then leave it */
    wzp_parking park;               /* parked: no control connection, pings instead (park.h) */
    bool park_pass;                 /* sig_send: a wake-up's own Register goes out, not held */
    bool reg_tunnel;                /* registered through the relay's TCP service: never parks */
    char reg_text[WZP_ADDR_STRLEN]; /* the reflexive address the REGISTERED event last showed */
    wzp_addr hosts[CORE_MAX_HOSTS];
    size_t n_hosts;
    wzp_addr mapped; /* the gateway's port mapping (len 0: none); env.mapped points here */
    core_slot calls[CORE_MAX_CALLS];
    wzp_hmap routes; /* core_route key -> core_slot */
    uint32_t next_id;
    uint16_t next_vport;
    wzp_voicecall_env env; /* what every call borrows */
    wzp_nat_watch np;      /* our NAT's behaviour, for the calls' CallParams */
    bool np_due;           /* registered over UDP: measure it at the next flush */
    unsigned np_told;      /* measurements the calls were told about */
    wzp_ts np_at;          /* the time of the latest input that ran the measurement */
    wzp_core_stats counters;
};

/* White-box access for tests: the call behind an id, or NULL. */
wzp_voicecall *wzp_core__voicecall(const wzp_core *core, uint32_t id);
/* White-box, for the fuzzer: parks at once on the current relay, busy or not (any control
 * connection closes with the PARKED code). 0 or a negative wzp_error (wzp_parking_start). */
int wzp_core__park(wzp_core *core, const uint8_t id[WZP_PARK_ID_LEN],
                   const uint8_t key[WZP_PARK_KEY_LEN], uint32_t keepalive_ms, wzp_ts now);

#endif
