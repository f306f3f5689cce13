/*
 * scripts/bench paths [SEEDS]: the NAT matrix of the path manager on the
 * simulated network (tests/support/natmatrix.h has the model: relay
 * registration, candidates and probe key at t0, a 2-relay-RTT handshake,
 * 50 media packets/s each way, a direct-path cut and a NAT state loss).
 *
 * One row per NAT pair: the final path (and whether it is the expected one
 * in every seed), time to first audio, time to direct (both sides), the
 * failover gap when the direct path is cut, and the time back to direct
 * after it returns; medians over the seeds (loss-free runs), worst gap.
 * Birthday cells (symmetric NATs by port allocation, natmatrix.h) add the
 * share of seeds direct within the cell's target time, against its target,
 * and the probes spent per success.
 *
 * Benches do not link the test-support library, so the simulator is
 * compiled in here from its sources.
 */
#include "support/natmatrix.c"
#include "support/netsim.c"

#include <stdlib.h>

#define MAX_CELLS 160
#define MAX_SEEDS 1000

static int cmp_ts(const void *a, const void *b)
{
    wzp_ts x = *(const wzp_ts *)a, y = *(const wzp_ts *)b;
    return x < y ? -1 : x > y;
}

/* Median of the finite values (NEVER excluded); NEVER if none. */
static wzp_ts median(wzp_ts *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] != WZP_TS_NEVER)
            v[k++] = v[i];
    if (!k)
        return WZP_TS_NEVER;
    qsort(v, k, sizeof(*v), cmp_ts);
    return v[k / 2];
}

static void fmt_ms(char *buf, size_t len, wzp_ts t)
{
    if (t == WZP_TS_NEVER)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.1f", (double)t / 1e6);
}

int main(int argc, char **argv)
{
    unsigned seeds = argc > 1 ? (unsigned)atoi(argv[1]) : 20;
    if (seeds < 1 || seeds > MAX_SEEDS)
        seeds = 20;
    static wzp_nm_cell cells[MAX_CELLS];
    size_t n = wzp_nm_cells(cells, MAX_CELLS);
    static wzp_ts audio[MAX_SEEDS], direct[MAX_SEEDS], gap[MAX_SEEDS], back[MAX_SEEDS];
    static wzp_ts all_direct[MAX_CELLS * MAX_SEEDS];
    size_t nall = 0, correct = 0;
    /* Birthday cells: hard = symmetric x cone (target 90 %), seq = symmetric x symmetric. */
    unsigned hard_runs = 0, hard_ok = 0, seq_runs = 0, seq_ok = 0, bday_success = 0;
    uint64_t bday_probes = 0;
    static wzp_ts bday_direct[MAX_CELLS * MAX_SEEDS];
    size_t nbday = 0;
    wzp_ts max_gap = 0;

    printf(
        "NAT matrix, %u seeds per cell (loss-free; jitter, latencies, port allocation and\n"
        "NAT timeouts random per seed). Times in ms from t0 (candidates exchanged), medians.\n\n",
        seeds);
    printf("%-34s %-6s %-7s %4s %10s %10s %10s %10s\n", "NAT pair (A <> B)", "expect", "final",
           "ok", "1st_audio", "to_direct", "fail_gap", "back_dir");
    for (size_t i = 0; i < n; i++) {
        unsigned ok = 0, finals_direct = 0, within = 0;
        uint64_t probes = 0;
        char first_fail[200] = "";
        for (unsigned s = 0; s < seeds; s++) {
            wzp_nm_opts o = {0};
            o.seed = (uint64_t)i * 1000003u + s * 7919u + 5;
            o.failover = true;
            o.expiry = true;
            wzp_nm_result r;
            char why[160];
            if (wzp_nm_run(&cells[i], &o, &r) != 0) {
                snprintf(why, sizeof(why), "run failed");
                audio[s] = direct[s] = gap[s] = back[s] = WZP_TS_NEVER;
            } else {
                audio[s] = r.first_audio;
                direct[s] = r.direct_both;
                gap[s] = r.failover_gap;
                back[s] = r.recover_direct;
                if (cells[i].bday && cells[i].bday_pct) {
                    bool in =
                        r.direct_both != WZP_TS_NEVER && r.direct_both <= cells[i].bday_within;
                    within += in;
                    probes += r.bday_sent;
                    if (in)
                        bday_direct[nbday++] = r.direct_both;
                }
                if (r.direct_both != WZP_TS_NEVER && cells[i].expect_direct)
                    all_direct[nall++] = r.direct_both;
                if (cells[i].expect_direct && r.failover_gap > max_gap)
                    max_gap = r.failover_gap;
                finals_direct += r.direct_a && r.direct_b;
                if (wzp_nm_judge(&cells[i], &o, &r, why, sizeof(why))) {
                    ok++;
                    continue;
                }
            }
            if (!first_fail[0])
                snprintf(first_fail, sizeof(first_fail), "seed %llu: %s",
                         (unsigned long long)o.seed, why);
        }
        bool rate_ok = true;
        if (cells[i].bday && cells[i].bday_pct) {
            rate_ok = within * 100 >= cells[i].bday_pct * seeds;
            bday_probes += probes;
            bday_success += within;
            if (cells[i].bday_pct >= 90) {
                hard_runs += seeds;
                hard_ok += within;
            } else {
                seq_runs += seeds;
                seq_ok += within;
            }
        }
        if (ok == seeds && rate_ok)
            correct++;
        char a[16], d[16], g[16], b[16], fin[8];
        fmt_ms(a, sizeof(a), median(audio, seeds));
        fmt_ms(d, sizeof(d),
               cells[i].expect_direct || (cells[i].bday && cells[i].bday_pct)
                   ? median(direct, seeds)
                   : WZP_TS_NEVER);
        fmt_ms(g, sizeof(g), cells[i].expect_direct ? median(gap, seeds) : WZP_TS_NEVER);
        fmt_ms(b, sizeof(b), cells[i].expect_direct ? median(back, seeds) : WZP_TS_NEVER);
        snprintf(fin, sizeof(fin), "%s",
                 finals_direct == seeds ? "DIRECT"
                 : finals_direct == 0   ? "RELAY"
                                        : "mixed");
        printf("%-34s %-6s %-7s %4s %10s %10s %10s %10s\n", cells[i].name,
               cells[i].expect_direct ? "DIRECT" : "RELAY", fin, ok == seeds ? "yes" : "NO", a, d,
               g, b);
        if (cells[i].bday && cells[i].bday_pct)
            printf("    direct within %.0f s: %u/%u seeds (target %u %%)%s, probes/success %.0f\n",
                   (double)cells[i].bday_within / 1e9, within, seeds, cells[i].bday_pct,
                   rate_ok ? "" : " BELOW TARGET", within ? (double)probes / within : -1.0);
        if (first_fail[0])
            printf("    first failure: %s\n", first_fail);
    }
    wzp_ts med = median(all_direct, nall);
    printf("\nfail_gap: longest media gap either side when A's direct packets are cut (50 pkt/s);\n"
           "back_dir: from the path's return until both sides are direct again.\n");
    wzp_ts bmed = median(bday_direct, nbday);
    printf("birthday: direct_pct over symmetric x cone cells (10 s) and symmetric x symmetric\n"
           "sequential (20 s); wzp_direct_ms: their median time to direct; probes_per_success:\n"
           "birthday/prediction probes of both sides per call that went direct.\n");
    printf("paths: cells=%zu correct=%zu median_time_to_direct_ms=%.1f max_failover_gap_ms=%.1f "
           "hard_nat_direct_pct=%.1f seq_nat_direct_pct=%.1f wzp_direct_ms=%.1f "
           "probes_per_success=%.0f\n",
           n, correct, med == WZP_TS_NEVER ? -1.0 : (double)med / 1e6, (double)max_gap / 1e6,
           hard_runs ? 100.0 * hard_ok / hard_runs : -1.0,
           seq_runs ? 100.0 * seq_ok / seq_runs : -1.0,
           bmed == WZP_TS_NEVER ? -1.0 : (double)bmed / 1e6,
           bday_success ? (double)bday_probes / bday_success : -1.0);
    return correct == n ? 0 : 1;
}
