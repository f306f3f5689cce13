/*
 * Echo cancellation figures: far-end syllables through a simulated room
 * (delay, -6 dB direct path, 150 ms RT60 reverberant tail) into a
 * microphone with -50 dBFS of near-end noise, through wzp_voice_proc on a
 * virtual clock (tests/support/aec_sim). Prints ERLE per 1 s window for a
 * few delays and stage sets beside the canceller-off references, the
 * convergence time, and the CPU cost of one 20 ms frame with every stage on.
 * Asserts nothing.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "media/audio_format.h"
#include "support/aec_sim.h"

#define CONV_WIN_MS 200
#define CONV_DB     20.0

typedef struct row {
    const char *name;
    int delay_ms;
    bool aec, denoise; /* agc and vad follow denoise (the default chain) */
} row;

static const row rows[] = {
    {"default: 30 ms, aec+ns+agc+vad", 30, true, true},
    {"10 ms, aec+ns+agc+vad", 10, true, true},
    {"80 ms, aec+ns+agc+vad", 80, true, true},
    {"30 ms, aec only", 30, true, false},
    {"10 ms, aec only", 10, true, false},
    {"80 ms, aec only", 80, true, false},
    {"ref 30 ms, canceller off", 30, false, false},
    {"ref 30 ms, ns+agc+vad only", 30, false, true},
};
#define NROWS  (sizeof(rows) / sizeof(rows[0]))
#define REF_NS 7 /* rows[] index of the denoise-only reference */
#define MS     (WZP_AUDIO_RATE / 1000)

static int run_row(const row *r, wzp_aec_run *out)
{
    wzp_aec_scenario sc;
    wzp_aec_scenario_default(&sc);
    sc.room.delay_ms = r->delay_ms;
    sc.vp.aec = r->aec;
    sc.vp.denoise = sc.vp.agc = sc.vp.vad = r->denoise;
    int rc = wzp_aec_run_scenario(&sc, out);
    if (rc < 0)
        fprintf(stderr, "bench_aec: %s: error %d\n", r->name, rc);
    return rc;
}

int main(void)
{
    wzp_aec_run runs[NROWS];
    for (size_t i = 0; i < NROWS; i++)
        if (run_row(&rows[i], &runs[i]) < 0)
            return 1;
    int secs = (int)(runs[0].n / WZP_AUDIO_RATE);

    printf("room: delay as listed, direct path -6 dB, RT60 150 ms; near-end noise -50 dBFS "
           "(echo/noise %.1f dB caps ERLE without denoise); speex filter 200 ms\n",
           runs[0].echo_to_noise_db);
    printf("ERLE = 10 log10(echo power at the mic / output power)\n\n");
    printf("default scenario, per 1 s window:\n");
    printf("%4s %12s %12s %9s %12s %12s\n", "t s", "echo in dBFS", "out dBFS", "ERLE dB",
           "off ERLE dB", "ns-only dB");
    for (int s = 0; s < secs; s++) {
        int a = s * 1000, b = a + 1000;
        size_t sa = (size_t)a * MS, sb = (size_t)b * MS;
        double in = wzp_synth_dbfs(wzp_synth_power(runs[0].echo, NULL, sa, sb));
        double out = wzp_synth_dbfs(wzp_synth_power(NULL, runs[0].out, sa, sb));
        printf("%4d %12.1f %12.1f %9.1f %12.1f %12.1f\n", s, in, out,
               wzp_aec_erle_db(&runs[0], a, b), wzp_aec_erle_db(&runs[NROWS - 2], a, b),
               wzp_aec_erle_db(&runs[REF_NS], a, b));
    }

    printf("\nconverge = start of the trailing run of %d ms windows all with ERLE >= %.0f dB "
           "(-1: never)\n",
           CONV_WIN_MS, CONV_DB);
    printf("%-32s", "scenario: ERLE dB per 1 s");
    for (int s = 0; s < secs; s++)
        printf(" %5d", s);
    printf(" %8s %9s\n", "last 3 s", "converge");
    for (size_t i = 0; i < NROWS; i++) {
        printf("%-32s", rows[i].name);
        for (int s = 0; s < secs; s++)
            printf(" %5.1f", wzp_aec_erle_db(&runs[i], s * 1000, s * 1000 + 1000));
        printf(" %8.1f %7d ms\n", wzp_aec_erle_db(&runs[i], (secs - 3) * 1000, secs * 1000),
               wzp_aec_converge_ms(&runs[i], CONV_WIN_MS, CONV_DB));
    }

    double erle = wzp_aec_erle_db(&runs[0], (secs - 3) * 1000, secs * 1000);
    int conv = wzp_aec_converge_ms(&runs[0], CONV_WIN_MS, CONV_DB);
    double ns = (double)runs[0].frame_ns;
    printf("\ncpu: %.1f us per 20 ms frame (far + near, every stage on)\n", ns / 1e3);
    printf("aec: erle_db=%.1f converge_ms=%d cpu_pct=%.2f\n", erle, conv, ns / 20e6 * 100);
    for (size_t i = 0; i < NROWS; i++)
        wzp_aec_run_free(&runs[i]);
    return 0;
}
