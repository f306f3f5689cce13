/*
 * NAT behaviour discovery against a wzp relay (RFC 5780 terms), sans-I/O:
 * what `wzp doctor` reports about UDP, the relay's round trip, the NAT's
 * mapping and filtering and its port allocation.
 *
 * Two local sockets of the caller's (0: "main", 1: "filter", both bound to
 * the same local address). The relay answers STUN on its port A1:P1 and,
 * when it has an alternate address (relay/stun_alt.h), names A2:P2 as
 * OTHER-ADDRESS; A2:P1 is derived from the two. The tests:
 *
 *   M1  main -> A1:P1   mapped address, UDP reachability, RTT, OTHER-ADDRESS
 *   R2, R3 main -> A1:P1, one after the other: more RTT samples
 *   M2  main -> A2:P1   same mapping as M1 (and M3): endpoint-independent (EIM)
 *   M3  main -> A2:P2   same as M2: address-dependent (ADM), else APDM
 *   F0  filter -> A2:P2 opens a mapping that has only ever sent to A2:P2
 *   FI  filter -> A2:P2, "answer from another IP" (A1:P1): got it = EIF
 *   FP  filter -> A2:P2, "answer from another port" (A2:P1): got it = ADF
 *       (neither: APDF)
 *   M4  filter -> A2:P1, once FI and FP are over, only when M2 and M3 agree
 *       but M1 differs: the same as F0 confirms ADM, else APDM
 *
 * Why M4, and why EIM wants M3 too: a NAT that picks random ports from a
 * range (Linux "snat to ...-... random") may give two mappings of one socket
 * the same port by chance, 1 in the range's size, and one coincidence would
 * read a symmetric NAT as ADM or even EIM. Two independent ones are needed now.
 *
 * Drive it like a STUN transaction: poll when the deadline passes (it hands
 * out the next datagram and which socket sends it), feed every datagram
 * received on either socket to recv, until done.
 */
#ifndef WZP_ICE_NATCHECK_H
#define WZP_ICE_NATCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "ice/stun_client.h"
#include "wire/signal.h"

typedef enum wzp_nc_mapping {
    WZP_NC_MAPPING_UNKNOWN = 0,
    WZP_NC_MAPPING_EIM,  /* endpoint-independent (or no NAT) */
    WZP_NC_MAPPING_ADM,  /* address-dependent */
    WZP_NC_MAPPING_APDM, /* address and port-dependent ("symmetric") */
} wzp_nc_mapping;

typedef enum wzp_nc_filtering {
    WZP_NC_FILTERING_UNKNOWN = 0,
    WZP_NC_FILTERING_EIF,  /* anyone may answer a mapping ("full cone", or no NAT nor firewall) */
    WZP_NC_FILTERING_ADF,  /* only addresses it sent to */
    WZP_NC_FILTERING_APDF, /* only address and port pairs it sent to */
} wzp_nc_filtering;

typedef enum wzp_nc_ports {
    WZP_NC_PORTS_UNKNOWN = 0,
    WZP_NC_PORTS_PRESERVED,  /* the NAT kept our local ports (or there is no NAT) */
    WZP_NC_PORTS_SEQUENTIAL, /* new mappings take nearby ports: predictable */
    WZP_NC_PORTS_RANGE,      /* random within a range much narrower than the port space */
    WZP_NC_PORTS_RANDOM,
} wzp_nc_ports; /* values as in the signalled NatBehaviour (wire/signal.h) */

/* "EIM", "ADM", "APDM", "EIF", ..., as RFC 4787 and the NAT lab write them; "unknown". */
const char *wzp_nc_mapping_name(wzp_nc_mapping m);
const char *wzp_nc_filtering_name(wzp_nc_filtering f);
const char *wzp_nc_ports_name(wzp_nc_ports p);

enum {
    WZP_NC_M1,
    WZP_NC_R2,
    WZP_NC_R3,
    WZP_NC_M2,
    WZP_NC_M3,
    WZP_NC_F0,
    WZP_NC_FI,
    WZP_NC_FP,
    WZP_NC_M4,
    WZP_NC_TESTS
};

typedef struct wzp_natcheck {
    wzp_addr relay;    /* A1:P1 */
    wzp_addr local[2]; /* the caller's two sockets */
    wzp_addr alt_p1, alt_p2;
    struct {
        wzp_stun_txn txn;
        bool started;
        wzp_ts first_sent;
        wzp_ts rtt; /* answered after one transmission: its round trip; else 0 */
    } t[WZP_NC_TESTS];
} wzp_natcheck;

typedef struct wzp_natcheck_result {
    bool udp;                /* the relay answered STUN at all */
    bool alt;                /* it has an alternate address: mapping and filtering are known */
    bool nat;                /* our address is translated (mapped != local) */
    wzp_addr mapped;         /* M1's answer (len 0 if none) */
    wzp_addr alt_addr;       /* A2:P2 (len 0 if none) */
    wzp_ts rtt_min, rtt_max; /* over answers to a first transmission; 0 if none */
    unsigned rtt_samples;
    wzp_nc_mapping mapping;
    wzp_nc_filtering filtering;
    wzp_nc_ports ports;
    int port_delta;            /* SEQUENTIAL: step between consecutive new mappings */
    uint16_t port_lo, port_hi; /* RANGE/RANDOM: the estimated allocation range */
    uint16_t last_port;        /* the latest new mapping's external port (0: none) */
} wzp_natcheck_result;

/*
 * Starts against the relay's STUN address from the two sockets' local
 * addresses (same family as relay; port 0 is fine but then "ports" stays
 * unknown). The first request is due at now. WZP_ERR_INVALID on a family mismatch.
 */
int wzp_natcheck_start(wzp_natcheck *nc, const wzp_addr *relay, const wzp_addr *local_main,
                       const wzp_addr *local_filter, wzp_ts now);
/* The next datagram due: its length (0: none now), *sock (0 or 1) and *to. */
int wzp_natcheck_poll(wzp_natcheck *nc, wzp_ts now, uint8_t *out, size_t cap, int *sock,
                      wzp_addr *to);
wzp_ts wzp_natcheck_deadline(const wzp_natcheck *nc);
/* A datagram received on socket `sock`; ignored unless it answers one of the tests. */
void wzp_natcheck_recv(wzp_natcheck *nc, int sock, const wzp_addr *from, const uint8_t *data,
                       size_t len, wzp_ts now);
bool wzp_natcheck_done(const wzp_natcheck *nc);
/*
 * Mapping and port allocation are settled (M1-M3 and F0 over, an alternate
 * address known), about one round trip in, while the filtering tests still
 * wait out their timeouts; false without an alternate address. An ADM read
 * then may still turn APDM once M4 is in (after the filtering tests): both
 * are "dependent" to the traversal strategies.
 */
bool wzp_natcheck_mapping_done(const wzp_natcheck *nc);
/* What is known so far (everything once done). */
void wzp_natcheck_get_result(const wzp_natcheck *nc, wzp_natcheck_result *out);
/* The result as a call's CallParams carry it (all unknown if the relay has no alternate). */
void wzp_natcheck_to_sig(const wzp_natcheck_result *r, wzp_sig_nat *out);

#endif
