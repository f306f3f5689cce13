#include "media/compare.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include <wzp/wzp.h>

#define COARSE_BUDGET 50000000.0 /* multiply-adds for the decimated pass */
#define MAX_DECIM     32
#define CANDIDATES    3

/* Overlap of ref[0..nref) with rec shifted by lag: ref indices [*lo, *hi). */
static void overlap(size_t nref, size_t nrec, long lag, size_t *lo, size_t *hi)
{
    long a = lag < 0 ? -lag : 0;
    long b = (long)nrec - lag;
    if (b > (long)nref)
        b = (long)nref;
    if (b < a)
        b = a;
    *lo = (size_t)a;
    *hi = (size_t)b;
}

double wzp_ncc_at(const float *ref, size_t nref, const float *rec, size_t nrec, long lag)
{
    size_t lo, hi;
    if (!ref || !rec)
        return 0;
    overlap(nref, nrec, lag, &lo, &hi);
    double xy = 0, xx = 0, yy = 0;
    for (size_t i = lo; i < hi; i++) {
        double x = ref[i], y = rec[(size_t)((long)i + lag)];
        xy += x * y;
        xx += x * x;
        yy += y * y;
    }
    if (xx <= 0 || yy <= 0)
        return 0;
    return xy / sqrt(xx * yy);
}

/* NCC from a dot product and prefix sums of squares over the overlap. */
static double ncc_prefix(const float *a, size_t na, const double *pa, const float *b, size_t nb,
                         const double *pb, long lag, size_t min_ov, int *ok)
{
    size_t lo, hi;
    overlap(na, nb, lag, &lo, &hi);
    *ok = hi - lo >= min_ov && hi > lo;
    if (!*ok)
        return 0;
    double xy = 0;
    for (size_t i = lo; i < hi; i++)
        xy += (double)a[i] * b[(size_t)((long)i + lag)];
    double xx = pa[hi] - pa[lo];
    double yy = pb[(size_t)((long)hi + lag)] - pb[(size_t)((long)lo + lag)];
    if (xx <= 0 || yy <= 0)
        return 0;
    return xy / sqrt(xx * yy);
}

static float *decimate(const float *x, size_t n, unsigned d, size_t *nout)
{
    size_t m = n / d;
    float *y = malloc((m ? m : 1) * sizeof(*y));
    if (!y)
        return NULL;
    for (size_t k = 0; k < m; k++) {
        float s = 0;
        for (unsigned j = 0; j < d; j++)
            s += x[k * d + j];
        y[k] = s / (float)d;
    }
    *nout = m;
    return y;
}

static double *prefix_sq(const float *x, size_t n)
{
    double *p = malloc((n + 1) * sizeof(*p));
    if (!p)
        return NULL;
    p[0] = 0;
    for (size_t i = 0; i < n; i++)
        p[i + 1] = p[i] + (double)x[i] * x[i];
    return p;
}

int wzp_ncc_search(const float *ref, size_t nref, const float *rec, size_t nrec, long min_lag,
                   long max_lag, size_t min_overlap, wzp_ncc_result *out)
{
    if (!ref || !rec || !out || !nref || !nrec || min_lag > max_lag ||
        nref > (size_t)LONG_MAX / 4 || nrec > (size_t)LONG_MAX / 4)
        return WZP_ERR_INVALID;
    if (!min_overlap)
        min_overlap = (nref < nrec ? nref : nrec) / 2;
    if (!min_overlap)
        min_overlap = 1;
    /* Lags with no chance of overlap only cost time. */
    if (min_lag < -(long)nref)
        min_lag = -(long)nref;
    if (max_lag > (long)nrec)
        max_lag = (long)nrec;
    if (min_lag > max_lag)
        return WZP_ERR_INVALID;

    double span = (double)(max_lag - min_lag + 1);
    double len = (double)(nref < nrec ? nref : nrec);
    unsigned d = 1;
    while (d < MAX_DECIM && (len / d) * (span / d) > COARSE_BUDGET)
        d *= 2;

    size_t na, nb;
    float *a = decimate(ref, nref, d, &na);
    float *b = decimate(rec, nrec, d, &nb);
    double *pa = a ? prefix_sq(a, na) : NULL;
    double *pb = b ? prefix_sq(b, nb) : NULL;
    if (!a || !b || !pa || !pb) {
        free(a);
        free(b);
        free(pa);
        free(pb);
        return WZP_ERR_NOMEM;
    }

    /* Coarse pass: keep the best few local peaks (by coarse lag). */
    long cand[CANDIDATES];
    double cval[CANDIDATES];
    for (int c = 0; c < CANDIDATES; c++) {
        cand[c] = 0;
        cval[c] = -INFINITY;
    }
    size_t cov = min_overlap / d ? min_overlap / d : 1;
    long clo = min_lag >= 0 ? min_lag / (long)d : -((-min_lag + (long)d - 1) / (long)d);
    long chi = max_lag >= 0 ? (max_lag + (long)d - 1) / (long)d : -(-max_lag / (long)d);
    double prev2 = -INFINITY, prev1 = -INFINITY;
    for (long l = clo; l <= chi + 1; l++) {
        int ok = 0;
        double v = l <= chi ? ncc_prefix(a, na, pa, b, nb, pb, l, cov, &ok) : -INFINITY;
        if (!ok)
            v = -INFINITY;
        /* prev1 (at l-1) is a peak if >= both neighbours. */
        if (prev1 > -INFINITY && prev1 >= prev2 && prev1 >= v) {
            int worst = 0;
            for (int c = 1; c < CANDIDATES; c++)
                if (cval[c] < cval[worst])
                    worst = c;
            if (prev1 > cval[worst]) {
                cval[worst] = prev1;
                cand[worst] = l - 1;
            }
        }
        prev2 = prev1;
        prev1 = v;
    }
    free(a);
    free(b);
    free(pa);
    free(pb);

    /* Fine pass at full rate around each candidate. */
    int found = 0;
    out->lag = 0;
    out->ncc = -INFINITY;
    for (int c = 0; c < CANDIDATES; c++) {
        if (cval[c] == -INFINITY)
            continue;
        long lo = cand[c] * (long)d - (long)d, hi = cand[c] * (long)d + (long)d;
        if (lo < min_lag)
            lo = min_lag;
        if (hi > max_lag)
            hi = max_lag;
        for (long l = lo; l <= hi; l++) {
            size_t olo, ohi;
            overlap(nref, nrec, l, &olo, &ohi);
            if (ohi - olo < min_overlap)
                continue;
            double v = wzp_ncc_at(ref, nref, rec, nrec, l);
            if (!found || v > out->ncc) {
                out->ncc = v;
                out->lag = l;
                found = 1;
            }
        }
    }
    return found ? 0 : WZP_ERR_INVALID;
}

int wzp_ncc_search_s16(const int16_t *ref, size_t nref, const int16_t *rec, size_t nrec,
                       long min_lag, long max_lag, size_t min_overlap, wzp_ncc_result *out)
{
    if (!ref || !rec || !nref || !nrec)
        return WZP_ERR_INVALID;
    float *a = malloc(nref * sizeof(*a));
    float *b = malloc(nrec * sizeof(*b));
    int rc = WZP_ERR_NOMEM;
    if (a && b) {
        for (size_t i = 0; i < nref; i++)
            a[i] = ref[i] / 32768.0f;
        for (size_t i = 0; i < nrec; i++)
            b[i] = rec[i] / 32768.0f;
        rc = wzp_ncc_search(a, nref, b, nrec, min_lag, max_lag, min_overlap, out);
    }
    free(a);
    free(b);
    return rc;
}
