/*
 * Birthday probing and port prediction (sans-I/O): the extra probes that open
 * a direct path when one or both sides sit behind an endpoint-dependent
 * ("symmetric") NAT, where ordinary checks cannot, because the peer cannot
 * know which port that NAT gives the mapping towards it.
 *
 * Both sides signal what natcheck measured (wire/signal.h wzp_sig_nat) and
 * each picks its own role from the two (wzp_bday_role_for; the two roles
 * always complement each other):
 *
 *   OPEN     we are the symmetric side, the peer has an endpoint-independent
 *            mapping but filters by port: every one of our `aux_socks` extra
 *            sockets sends to the peer's known address, so our NAT holds that
 *            many mappings towards it, each on a random port;
 *   SPRAY    the mirror image: probe random ports of the peer's allocation
 *            range at the peer's public IP, never the same port twice. With
 *            K mappings open out of a range of N ports, each probe hits with
 *            probability K/N (the birthday paradox: 256 of 64512 ports open
 *            give 90 % after ~580 probes, 2.9 s at 200/s);
 *   PREDICT  the peer's NAT allocates sequentially: probe the ports its next
 *            mappings take, last_port + delta * m for m = window .. 1, in that
 *            order, over and over. When both sides are symmetric and
 *            sequential both do this: our j-th new mapping (towards the
 *            peer's port for m = window - j) and the peer's k-th meet exactly
 *            where j + k = window - 1 - d, if each side made the same number
 *            d of other new mappings since its last_port was measured (the
 *            same candidate checks run on both sides, so it usually did);
 *   NONE     ordinary checks suffice (or nothing here would help: symmetric
 *            random against symmetric needs port mapping).
 *
 * Bounded: at most `rate` packets per second, and nothing after `duration`
 * or once stopped (the caller stops it when a pair is proven). The probes
 * themselves are the agent's authenticated requests; this only says where
 * they go and when.
 */
#ifndef WZP_ICE_BIRTHDAY_H
#define WZP_ICE_BIRTHDAY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "wire/signal.h"

typedef enum wzp_bday_role {
    WZP_BDAY_NONE = 0,
    WZP_BDAY_OPEN,
    WZP_BDAY_SPRAY,
    WZP_BDAY_PREDICT,
} wzp_bday_role;

/* "none", "open", "spray", "predict". */
const char *wzp_bday_role_name(wzp_bday_role r);

/* Zero fields take the defaults (wzp_bday_config_default); why these values: birthday.c. */
typedef struct wzp_bday_config {
    unsigned rate;      /* packets per second (200) */
    wzp_ts duration;    /* give up this long after the start (15 s) */
    unsigned aux_socks; /* OPEN: extra sockets the runtime gives (0: no OPEN role) */
    wzp_ts reopen;      /* OPEN: each extra socket sends again this often (5 s) */
    unsigned open_rate; /* OPEN: packets per second of a round over the sockets (1000) */
    unsigned window;    /* PREDICT: ports per sweep (32) */
    uint64_t seed;      /* the spray order (the agent draws one when 0; tests fix it) */
} wzp_bday_config;

void wzp_bday_config_default(wzp_bday_config *cfg);

/* Our role from our NAT's behaviour and the peer's (all-zero = unknown: NONE). */
wzp_bday_role wzp_bday_role_for(const wzp_sig_nat *local, const wzp_sig_nat *peer,
                                unsigned aux_socks);

typedef struct wzp_bday {
    wzp_bday_config cfg;
    wzp_bday_role role;
    wzp_addr target;    /* OPEN: the peer's mapping; else its public IP (port per probe) */
    uint32_t span;      /* SPRAY: ports in the peer's range, from lo */
    uint16_t lo;        /* SPRAY: first port of the range; PREDICT: the peer's last port */
    int delta;          /* PREDICT: the peer's step */
    uint32_t step, off; /* SPRAY: the permutation i -> (off + i * step) mod span */
    uint32_t i;         /* probes made in the current sweep / permutation */
    wzp_ts start, end;  /* end: WZP_TS_NEVER before start */
    wzp_ts next;        /* the next probe is due */
    bool running;
    uint64_t sent;
} wzp_bday;

/*
 * Starts the role against the peer's mapping `peer_addr` (its srflx IPv4
 * address) and its signalled NAT behaviour. `seed` picks the spray order.
 * The first probe is due at now. WZP_ERR_INVALID for NONE or an address
 * that is not IPv4 or a peer NAT the role cannot use (no range, no port).
 */
int wzp_bday_start(wzp_bday *b, const wzp_bday_config *cfg, wzp_bday_role role,
                   const wzp_addr *peer_addr, const wzp_sig_nat *peer, uint64_t seed, wzp_ts now);

/*
 * The next probe if one is due at now: returns true with *aux (OPEN: the
 * extra socket 0..aux_socks-1; else -1, the main IPv4 socket) and *dest.
 * One probe per call.
 */
bool wzp_bday_poll(wzp_bday *b, wzp_ts now, int *aux, wzp_addr *dest);

/* When the next probe is due; WZP_TS_NEVER when stopped or over. */
wzp_ts wzp_bday_deadline(const wzp_bday *b);

/* A pair proved itself (or the call ended): no more probes. */
void wzp_bday_stop(wzp_bday *b);

#endif
