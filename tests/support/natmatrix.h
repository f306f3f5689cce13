/*
 * natmatrix: two path managers (src/ice/agent.h) on the simulated network
 * (netsim.h), behind every pair of NAT behaviours, with a relay on the
 * internet. Used by tests/unit/test_nat_matrix.c (assertions) and
 * bench/bench_paths.c (the table).
 *
 * The model of one call (virtual time, all of it):
 *   - t = 0: each client registers with the relay from its IPv4 socket; the
 *     relay answers with the address it saw (the srflx candidate) and latches
 *     that address as where to forward the peer's relay frames. Clients
 *     re-register every 10 s (relay keepalive).
 *   - t0 = 1 s: candidates are exchanged (host + srflx, plus a global IPv6
 *     host address where the side has one) and the probe key is set on both
 *     agents: checks start on both sides at t0.
 *   - The end-to-end handshake is modelled as two round trips through the
 *     relay starting at t0 (retransmitted every 300 ms when lost). Each side
 *     starts sending media when its half completes: the callee after 1.5
 *     relay RTTs, the caller after 2. "Time to first audio" is when both have
 *     received a media packet.
 *   - Media: 50 packets/s each way, sent where wzp_ice_route_get says: framed
 *     through the relay (2 hops), or direct. Received on any path.
 *   - Optional phases: cut every direct packet of A (failover), restore it
 *     (recovery), and drop all of A's NAT state at once (mapping expiry).
 *   - Birthday cells (cell.bday): each side signals its NAT's behaviour as
 *     natcheck measures it (mapping, filtering, port allocation; its srflx
 *     port as the last one) and has WZP_NM_AUX extra sockets; the agents
 *     probe (ice/birthday.h). Their NATs keep the cell's port allocation (not
 *     randomized per seed), the first phase lasts 20 s, and success is a
 *     rate over seeds, not a per-seed verdict.
 */
#ifndef WZP_TESTS_NATMATRIX_H
#define WZP_TESTS_NATMATRIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support/netsim.h"

typedef enum wzp_nm_topo {
    WZP_NM_SEPARATE = 0, /* each side behind its own NAT chain */
    WZP_NM_SAME_LAN,     /* both behind one router (side a's NAT) */
    WZP_NM_SAME_CGN,     /* own home NATs behind one shared carrier NAT (side a's cgn) */
} wzp_nm_topo;

typedef struct wzp_nm_side {
    bool nat;            /* false: a public IPv4 address, no NAT */
    wzp_sim_nat_cfg cfg; /* the home NAT */
    bool cgn;            /* behind a carrier-grade NAT too */
    wzp_sim_nat_cfg cgn_cfg;
    bool v6; /* also a global IPv6 address, no NAT on it */
} wzp_nm_side;

#define WZP_NM_AUX 256 /* extra sockets per client in birthday cells */

typedef struct wzp_nm_cell {
    char name[64];
    wzp_nm_topo topo;
    wzp_nm_side a, b;
    bool expect_direct;
    bool bday;          /* birthday probing: NAT behaviour signalled (see above) */
    unsigned bday_pct;  /* where the rule says RELAY: at least this share of seeds direct ... */
    wzp_ts bday_within; /* ... within this long of t0 (both sides) */
} wzp_nm_cell;

/* Fills up to max cells of the standard matrix; returns how many there are. */
size_t wzp_nm_cells(wzp_nm_cell *out, size_t max);
/* The rule: direct exactly when the pair allows it without port prediction. */
bool wzp_nm_expect_direct(const wzp_nm_cell *cell);

typedef struct wzp_nm_opts {
    uint64_t seed;
    bool lossy;             /* random loss on the WAN links (else none) */
    bool failover;          /* cut A's direct packets at t0 + 4 s for 3 s, then restore */
    bool expiry;            /* forget all of A's NAT state (after failover, if any) */
    wzp_sim_trace_fn trace; /* optional: every hop of the run */
    void *trace_ctx;
} wzp_nm_opts;

typedef struct wzp_nm_result {
    bool direct_a, direct_b; /* final routes */
    bool media_ok;           /* both sides received media in the final second, no long gap */
    wzp_ts first_audio;      /* from t0 until both sides received media; NEVER if not */
    wzp_ts direct_first;     /* from t0 until the first side went direct; NEVER if not */
    wzp_ts direct_both;      /* from t0 until both sides were direct; NEVER if not */
    wzp_ts direct_bound;     /* the bound for direct_both on a loss-free run */
    wzp_ts failover_gap;     /* longest media gap either side around the cut; 0 if not run */
    bool failover_relay;     /* both on RELAY before the path was restored */
    wzp_ts recover_direct;   /* from restore until both direct again; NEVER if not */
    wzp_ts expiry_gap;       /* longest media gap after the NAT state was dropped */
    wzp_ts expiry_direct;    /* from the drop until both direct again; NEVER if not */
    wzp_ts steady_gap;       /* longest media gap in steady state (before any cut) */
    uint64_t bday_sent;      /* birthday / prediction probes, both sides */
    uint64_t trace_hash;
    wzp_sim_stats stats;
} wzp_nm_result;

/* Runs one call. Returns 0, or a negative error if the setup failed. */
int wzp_nm_run(const wzp_nm_cell *cell, const wzp_nm_opts *o, wzp_nm_result *r);

/*
 * Checks a result against the cell's expectations; on failure writes why.
 * Timing bounds (direct_bound, 300 ms failover gap) are checked only when
 * check_timing (loss-free runs).
 */
bool wzp_nm_judge(const wzp_nm_cell *cell, const wzp_nm_opts *o, const wzp_nm_result *r, char *why,
                  size_t whylen);

#define WZP_NM_MAX_GAP WZP_MS(300)

#endif
