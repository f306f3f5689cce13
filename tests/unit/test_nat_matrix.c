/*
 * The NAT matrix of the path manager: two agents (src/ice/agent.h) behind
 * every pair of NAT behaviours on the simulated network, with a relay.
 * Asserts, per cell and over many seeds: the final route is DIRECT exactly
 * when the pair allows it without port prediction (relay otherwise), both
 * sides agree and media flows both ways, the call goes direct within one
 * probe round trip (plus the peer's triggered check and pacing), a cut
 * direct path falls back to the relay with a media gap of at most 300 ms at
 * 50 packets/s and comes back, and the call recovers after A's NAT forgets
 * every mapping. All in virtual time (tests/support/natmatrix.h has the model).
 *
 * WZP_NM_SEEDS=N runs N seeds per cell (default: a few, so ctest stays fast).
 * On a failure the cell, seed and reason are printed, and the first failing
 * run is replayed with its packet trace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/natmatrix.h"

#define MAX_CELLS 160

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "    %s\n", line);
}

static unsigned env_seeds(unsigned dflt)
{
    const char *s = getenv("WZP_NM_SEEDS");
    return s && atoi(s) > 0 ? (unsigned)atoi(s) : dflt;
}

/* Runs every cell for `seeds` seeds with the given options; returns failures (printed). */
static unsigned run_matrix(unsigned seeds, bool lossy, bool failover, bool expiry)
{
    static wzp_nm_cell cells[MAX_CELLS];
    size_t n = wzp_nm_cells(cells, MAX_CELLS);
    assert_true(n <= MAX_CELLS);
    unsigned failures = 0;
    bool traced = false;
    for (size_t i = 0; i < n; i++)
        for (unsigned s = 0; s < seeds; s++) {
            wzp_nm_opts o = {0};
            o.seed = (uint64_t)i * 1000003u + s * 7919u + (lossy ? 17 : 0);
            o.lossy = lossy;
            o.failover = failover;
            o.expiry = expiry;
            wzp_nm_result r;
            assert_int_equal(wzp_nm_run(&cells[i], &o, &r), 0);
            char why[160];
            if (wzp_nm_judge(&cells[i], &o, &r, why, sizeof(why)))
                continue;
            failures++;
            if (failures <= 40)
                fprintf(stderr, "FAIL cell \"%s\" seed %llu%s: %s\n", cells[i].name,
                        (unsigned long long)o.seed, lossy ? " (lossy)" : "", why);
            if (!traced && getenv("WZP_NM_TRACE")) {
                traced = true;
                o.trace = print_line;
                wzp_nm_run(&cells[i], &o, &r);
            }
        }
    return failures;
}

/* One test per option set: every cell, `seeds` seeds each (WZP_NM_SEEDS overrides). */
#define MATRIX_TEST(name, seeds, lossy, failover_and_expiry)                                       \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        assert_int_equal(                                                                          \
            run_matrix(env_seeds(seeds), lossy, failover_and_expiry, failover_and_expiry), 0);     \
    }

MATRIX_TEST(test_matrix_establish, 2, false, false)
MATRIX_TEST(test_matrix_establish_lossy, 2, true, false)
MATRIX_TEST(test_matrix_failover_and_expiry, 1, false, true)
MATRIX_TEST(test_matrix_failover_and_expiry_lossy, 1, true, true)

/* The rule itself, on a few hand-checked cells. */
static void test_rule(void **state)
{
    (void)state;
    static wzp_nm_cell cells[MAX_CELLS];
    size_t n = wzp_nm_cells(cells, MAX_CELLS);
    unsigned direct = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = cells[i].name;
        bool d = cells[i].expect_direct;
        direct += d;
        if (!strcmp(name, "EIM/APDF <> EIM/APDF") || !strcmp(name, "APDM/EIF <> EIM/ADF") ||
            !strcmp(name, "public <> APDM/APDF") || !strcmp(name, "ADM/EIF <> APDM/ADF") ||
            !strncmp(name, "same LAN", 8) || !strcmp(name, "same CGN hairpin on") ||
            !strcmp(name, "IPv6 both (v4 APDM/APDF both)"))
            assert_true(d);
        if (!strcmp(name, "APDM/APDF <> EIM/APDF") || !strcmp(name, "APDM/EIF <> APDM/EIF") ||
            !strcmp(name, "same CGN hairpin off") ||
            !strcmp(name, "IPv6 A only (v4 APDM/APDF both)"))
            assert_false(d);
    }
    /*
     * Grid: 9 EIM/EIM pairs + 2 x (6 EDM kinds x 2 non-port filters) = 33, plus
     * pairs of endpoint-dependent mappings with at least one address-dependent
     * (ADM x ADM: 3, ADM x APDM both ways: 2 x 3) = 42 of 81.
     */
    unsigned grid_direct = 0;
    for (size_t i = 0; i < 81; i++)
        grid_direct += cells[i].expect_direct;
    assert_int_equal(grid_direct, 42);
    assert_true(direct > grid_direct);
}

/*
 * Birthday probing and port prediction (natmatrix.h, birthday cells): over
 * 10 seeds per cell, at least the cell's share goes direct on both sides
 * within its target time (virtual), and the controls send no probes where
 * none can help (random x random) or none are needed (cone x cone).
 */
static void test_birthday_rates(void **state)
{
    (void)state;
    static wzp_nm_cell cells[MAX_CELLS];
    size_t n = wzp_nm_cells(cells, MAX_CELLS);
    unsigned rated = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cells[i].bday)
            continue;
        unsigned seeds = env_seeds(10), within = 0;
        for (unsigned s = 0; s < seeds; s++) {
            wzp_nm_opts o = {0};
            o.seed = (uint64_t)i * 1000003u + s * 7919u + 99;
            wzp_nm_result r;
            assert_int_equal(wzp_nm_run(&cells[i], &o, &r), 0);
            char why[160];
            if (!wzp_nm_judge(&cells[i], &o, &r, why, sizeof(why)))
                fail_msg("cell \"%s\" seed %llu: %s", cells[i].name, (unsigned long long)o.seed,
                         why);
            within += r.direct_both != WZP_TS_NEVER && r.direct_both <= cells[i].bday_within;
            if (!cells[i].bday_pct)
                assert_int_equal(r.bday_sent, 0);
        }
        if (cells[i].bday_pct) {
            rated++;
            if (within * 100 < cells[i].bday_pct * seeds)
                fail_msg("cell \"%s\": %u of %u seeds direct in time, target %u %%", cells[i].name,
                         within, seeds, cells[i].bday_pct);
        }
    }
    assert_int_equal(rated, 5);
}

/* Same seed, same run. */
static void test_deterministic(void **state)
{
    (void)state;
    static wzp_nm_cell cells[MAX_CELLS];
    wzp_nm_cells(cells, MAX_CELLS);
    wzp_nm_opts o = {0};
    o.seed = 1234;
    o.lossy = true;
    o.failover = true;
    wzp_nm_result r1, r2;
    assert_int_equal(wzp_nm_run(&cells[4], &o, &r1), 0);
    assert_int_equal(wzp_nm_run(&cells[4], &o, &r2), 0);
    assert_int_equal(r1.direct_both, r2.direct_both);
    assert_int_equal(r1.failover_gap, r2.failover_gap);
    assert_int_equal(r1.stats.delivered, r2.stats.delivered);
}

WZP_TEST_MAIN(NULL, NULL, test_rule, test_deterministic, test_birthday_rates, test_matrix_establish,
              test_matrix_establish_lossy, test_matrix_failover_and_expiry,
              test_matrix_failover_and_expiry_lossy)
