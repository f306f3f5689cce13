/*
 * wzp-wavcmp REF REC: how well a recording matches what was sent, for audio
 * checks by hand and in tests: the normalised cross-correlation at the best
 * delay (src/media/compare.h) and that delay. Both files are read as 48 kHz
 * mono (any format libsndfile reads). Exit 0, 2 for usage, 8 for a file that
 * cannot be read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "media/audio_file.h"
#include "media/compare.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: wzp-wavcmp REF REC [MAX_LAG_SECONDS]\n"
                 "Prints 'ncc=N lag_ms=L': how well REC matches REF, and how late it is.\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
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
    free(ref);
    free(rec);
    if (rc < 0) {
        fprintf(stderr, "wzp-wavcmp: the files do not overlap enough to compare (%s)\n",
                wzp_strerror(rc));
        return 1;
    }
    printf("ncc=%.4f lag_ms=%.2f\n", r.ncc, (double)r.lag / 48.0);
    return 0;
}
