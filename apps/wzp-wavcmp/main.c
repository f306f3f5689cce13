/*
 * wzp-wavcmp REF REC: how well a recording matches what was sent, for audio
 * checks by hand and in tests: the normalised cross-correlation at the best
 * delay (src/media/compare.h) and that delay. Both files are read as 48 kHz
 * mono (any format libsndfile reads). Exit 0, 2 for usage, 8 for a file that
 * cannot be read.
 *
 * Live audio passes through clock-drift compensation, which may stretch time
 * by a few hundred ppm (inaudible) while it settles: over seconds that moves
 * the recording by milliseconds and lowers one whole-file NCC although every
 * word is intact. So the windowed figures follow the delay: 200 ms windows of
 * REF that carry sound, each matched within +-20 ms of its neighbour's delay
 * (over the whole range for the first, and after a poor match); their median
 * and 10th percentile NCC say how intact the audio is. Both signals are
 * high-passed at 200 Hz first: a phone's chain removes the lowest band on
 * purpose (the echo canceller's DC/hum notch, the codec), and a voice's
 * fundamental there would otherwise dominate the score.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "media/audio_file.h"
#include "media/compare.h"

#define WIN       9600 /* 200 ms */
#define WIN_SLACK 960  /* 20 ms */
#define MAX_WINS  4096
/* Pieces of a window matched each at its own lag: the playout buffer
 * time-scales speech by up to 25 %, so one lag cannot fit a whole window;
 * a piece's lag moves by at most about a pitch period from the last one's. */
#define PIECE      960 /* 20 ms */
#define PIECE_STEP 480 /* 10 ms */

static void usage(FILE *out)
{
    fprintf(out, "usage: wzp-wavcmp [-v] REF REC [MAX_LAG_SECONDS]\n"
                 "Prints 'ncc=N lag_ms=L win_median=M win_p10=P windows=W': how well REC\n"
                 "matches REF (whole file; and high-passed at 200 Hz, in 200 ms windows\n"
                 "following the delay, each matched whole or in 20 ms pieces that may\n"
                 "follow a time-scaled delay), and "
                 "how late it is.\n");
}

static double rms(const float *x, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e += (double)x[i] * x[i];
    return n ? sqrt(e / (double)n) : 0;
}

/* 2nd-order Butterworth high-pass (RBJ biquad), in place: the same filter on both signals. */
static void highpass(float *x, size_t n, double fc)
{
    double w = 2 * M_PI * fc / 48000, cw = cos(w), al = sin(w) / (2 * M_SQRT1_2), a0 = 1 + al;
    double b0 = (1 + cw) / 2 / a0, b1 = -(1 + cw) / a0, b2 = b0, a1 = -2 * cw / a0,
           a2 = (1 - al) / a0;
    double x1 = 0, x2 = 0, y1 = 0, y2 = 0;
    for (size_t i = 0; i < n; i++) {
        double y = b0 * x[i] + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
        x2 = x1;
        x1 = x[i];
        y2 = y1;
        y1 = y;
        x[i] = (float)y;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Windowed NCC following the delay from `lag` on; fills v (sorted), returns how many. */
static size_t windows(const float *ref, size_t nref, const float *rec, size_t nrec, long max_lag,
                      double *v, bool verbose)
{
    double loud = 0;
    for (size_t at = 0; at + WIN <= nref; at += WIN)
        loud = fmax(loud, rms(ref + at, WIN));
    size_t k = 0;
    bool lost = true; /* no delay to follow yet: search the whole range */
    long lag = 0;
    for (size_t at = 0; at + WIN <= nref && k < MAX_WINS; at += WIN) {
        if (rms(ref + at, WIN) < loud * 0.03) /* -30 dB: a pause, nothing to match */
            continue;
        long lo = lost ? -max_lag : lag - WIN_SLACK, hi = lost ? max_lag : lag + WIN_SLACK;
        wzp_ncc_result r;
        if (wzp_ncc_search(ref + at, WIN, rec, nrec, (long)at + lo, (long)at + hi, WIN, &r) < 0)
            continue;
        double pn = 0;
        if (wzp_ncc_piecewise(ref + at, WIN, rec, nrec, r.lag, PIECE, PIECE_STEP, &pn, NULL) == 0 &&
            pn > r.ncc)
            r.ncc = pn;
        v[k++] = r.ncc;
        lag = r.lag - (long)at;
        if (verbose)
            printf("window at %.2f s: lag %.2f ms ncc %.4f\n", (double)at / 48000,
                   (double)lag / 48.0, r.ncc);
        lost = r.ncc < 0.5;
    }
    qsort(v, k, sizeof(*v), cmp_double);
    return k;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    bool verbose = argc > 1 && !strcmp(argv[1], "-v");
    if (verbose) {
        argc--;
        argv++;
    }
    if (argc < 3 || argc > 4) {
        usage(stderr);
        return 2;
    }
    double max_lag_s = 2.0;
    if (argc == 4) {
        char *end;
        max_lag_s = strtod(argv[3], &end);
        if (*end || !(max_lag_s > 0 && max_lag_s <= 60)) {
            fprintf(stderr, "wzp-wavcmp: MAX_LAG_SECONDS wants 0..60, got '%s'\n", argv[3]);
            return 2;
        }
    }
    float *ref = NULL, *rec = NULL;
    size_t nref = 0, nrec = 0;
    int rc = wzp_audio_read(argv[1], &ref, &nref);
    if (rc == 0)
        rc = wzp_audio_read(argv[2], &rec, &nrec);
    if (rc < 0) {
        fprintf(stderr, "wzp-wavcmp: cannot read %s: %s\n", ref ? argv[2] : argv[1],
                wzp_strerror(rc));
        free(ref);
        return 8;
    }
    long max_lag = (long)(max_lag_s * 48000);
    size_t shorter = nref < nrec ? nref : nrec;
    wzp_ncc_result r;
    rc = wzp_ncc_search(ref, nref, rec, nrec, -max_lag, max_lag, shorter / 4, &r);
    double *v = rc == 0 ? calloc(MAX_WINS, sizeof(*v)) : NULL;
    highpass(ref, nref, 200);
    highpass(rec, nrec, 200);
    size_t nw = v ? windows(ref, nref, rec, nrec, max_lag, v, verbose) : 0;
    free(ref);
    free(rec);
    if (rc < 0 || !v) {
        fprintf(stderr, "wzp-wavcmp: the files do not overlap enough to compare (%s)\n",
                wzp_strerror(rc < 0 ? rc : WZP_ERR_NOMEM));
        free(v);
        return 1;
    }
    printf("ncc=%.4f lag_ms=%.2f win_median=%.4f win_p10=%.4f windows=%zu\n", r.ncc,
           (double)r.lag / 48.0, nw ? v[nw / 2] : 0.0, nw ? v[nw / 10] : 0.0, nw);
    free(v);
    return 0;
}
