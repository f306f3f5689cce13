#include "media/compare.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include <wzp/wzp.h>

#define COARSE_BUDGET 20000000.0 /* multiply-adds for the decimated pass */
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

/* Eight independent float lanes let the compiler vectorise the hot loop;
 * partial sums stay short enough (n / 8 terms) for float precision. */
static double dot(const float *x, const float *y, size_t n)
{
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += x[i + j] * y[i + j];
    double t = 0;
    for (int j = 0; j < 8; j++)
        t += s[j];
    for (; i < n; i++)
        t += (double)x[i] * y[i];
    return t;
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
    double xy = dot(a + lo, b + (size_t)((long)lo + lag), hi - lo);
    double xx = pa[hi] - pa[lo];
    double yy = pb[(size_t)((long)hi + lag)] - pb[(size_t)((long)lo + lag)];
    if (xx <= 0 || yy <= 0)
        return 0;
    return xy / sqrt(xx * yy);
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

/* One level of the pyramid: both signals averaged over blocks of f samples. */
typedef struct level {
    unsigned f;
    const float *a, *b;
    double *pa, *pb;
    size_t na, nb;
} level;

static void level_free(level *l)
{
    if (l->f != 1) { /* level 1 borrows the caller's signals */
        free((void *)l->a);
        free((void *)l->b);
    }
    free(l->pa);
    free(l->pb);
}

/* Halves a signal by averaging pairs: the mean of means over aligned
 * power-of-two blocks, so level k is the signal decimated by 2^k. */
static float *halve(const float *x, size_t n, size_t *nout)
{
    size_t m = n / 2;
    float *y = malloc((m ? m : 1) * sizeof(*y));
    if (!y)
        return NULL;
    for (size_t k = 0; k < m; k++)
        y[k] = 0.5f * (x[2 * k] + x[2 * k + 1]);
    *nout = m;
    return y;
}

static long floor_div(long a, long b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Best lag in [lo, hi] at one level; -INFINITY if none has enough overlap. */
static double best_in(const level *l, long lo, long hi, size_t min_ov, long *lag)
{
    double best = -INFINITY;
    for (long k = lo; k <= hi; k++) {
        int ok = 0;
        double v = ncc_prefix(l->a, l->na, l->pa, l->b, l->nb, l->pb, k, min_ov, &ok);
        if (ok && v > best) {
            best = v;
            *lag = k;
        }
    }
    return best;
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
    int top = 0;
    while ((1u << top) < MAX_DECIM && (len / (1u << top)) * (span / (1u << top)) > COARSE_BUDGET &&
           len / (2u << top) >= 64)
        top++;

    level lv[8] = {{0}};
    int rc = 0;
    lv[0] = (level){1, ref, rec, NULL, NULL, nref, nrec};
    for (int k = 0; k <= top && !rc; k++) {
        if (k > 0) {
            lv[k].f = lv[k - 1].f * 2;
            lv[k].a = halve(lv[k - 1].a, lv[k - 1].na, &lv[k].na);
            lv[k].b = halve(lv[k - 1].b, lv[k - 1].nb, &lv[k].nb);
        }
        if (lv[k].a && lv[k].b) {
            lv[k].pa = prefix_sq(lv[k].a, lv[k].na);
            lv[k].pb = prefix_sq(lv[k].b, lv[k].nb);
        }
        if (!lv[k].a || !lv[k].b || !lv[k].pa || !lv[k].pb)
            rc = WZP_ERR_NOMEM;
    }

    /* Coarse pass at the top level: keep the best few local peaks. */
    long cand[CANDIDATES] = {0};
    double cval[CANDIDATES];
    for (int c = 0; c < CANDIDATES; c++)
        cval[c] = -INFINITY;
    if (!rc) {
        const level *l = &lv[top];
        long f = (long)l->f;
        size_t cov = min_overlap / l->f ? min_overlap / l->f : 1;
        long clo = floor_div(min_lag, f), chi = -floor_div(-max_lag, f);
        double prev2 = -INFINITY, prev1 = -INFINITY;
        for (long k = clo; k <= chi + 1; k++) {
            int ok = 0;
            double v = k <= chi ? ncc_prefix(l->a, l->na, l->pa, l->b, l->nb, l->pb, k, cov, &ok)
                                : -INFINITY;
            if (!ok)
                v = -INFINITY;
            /* prev1 (at k-1) is a peak if >= both neighbours. */
            if (prev1 > -INFINITY && prev1 >= prev2 && prev1 >= v) {
                int worst = 0;
                for (int c = 1; c < CANDIDATES; c++)
                    if (cval[c] < cval[worst])
                        worst = c;
                if (prev1 > cval[worst]) {
                    cval[worst] = prev1;
                    cand[worst] = k - 1;
                }
            }
            prev2 = prev1;
            prev1 = v;
        }
    }

    /* Each candidate descends the pyramid, re-searching a few lags around
     * twice its position at every finer level (block averaging can shift
     * the coarse peak by about one coarse sample). */
    int found = 0;
    for (int c = 0; !rc && c < CANDIDATES; c++) {
        if (cval[c] == -INFINITY)
            continue;
        long lag = cand[c];
        double v = cval[c];
        for (int k = top - 1; k >= 0 && v > -INFINITY; k--) {
            long f = (long)lv[k].f;
            long lo = 2 * lag - 3, hi = 2 * lag + 3;
            long llo = -floor_div(-min_lag, f), lhi = floor_div(max_lag, f);
            if (lo < llo)
                lo = llo;
            if (hi > lhi)
                hi = lhi;
            size_t cov = min_overlap / lv[k].f ? min_overlap / lv[k].f : 1;
            v = best_in(&lv[k], lo, hi, cov, &lag);
        }
        if (v > -INFINITY && (!found || v > out->ncc)) {
            out->lag = lag;
            out->ncc = v;
            found = 1;
        }
    }
    for (int k = 0; k <= top; k++)
        level_free(&lv[k]);
    if (rc)
        return rc;
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

int wzp_ncc_piecewise(const float *ref, size_t nref, const float *rec, size_t nrec, long lag,
                      size_t piece, long step, double *ncc, long *end_lag)
{
    if (!ref || !rec || !ncc || !piece || step < 0 || nrec == 0)
        return WZP_ERR_INVALID;
    double *prec = prefix_sq(rec, nrec);
    if (!prec)
        return WZP_ERR_NOMEM;
    double sxy = 0, sxx = 0, syy = 0;
    unsigned matched = 0;
    for (size_t at = 0; at + piece <= nref; at += piece) {
        double xx = dot(ref + at, ref + at, piece), best = -2, bxy = 0, byy = 0;
        long bl = lag;
        for (long l = lag - step; l <= lag + step; l++) {
            long s0 = (long)at + l;
            if (s0 < 0 || s0 + (long)piece > (long)nrec)
                continue;
            double yy = prec[s0 + (long)piece] - prec[s0];
            double xy = dot(ref + at, rec + s0, piece);
            double v = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 0;
            if (v > best) {
                best = v;
                bl = l;
                bxy = xy;
                byy = yy;
            }
        }
        if (best < -1)
            continue; /* no full overlap anywhere in the range */
        sxy += bxy;
        sxx += xx;
        syy += byy;
        lag = bl;
        matched++;
    }
    free(prec);
    if (!matched)
        return WZP_ERR_INVALID;
    *ncc = sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
    if (end_lag)
        *end_lag = lag;
    return 0;
}
