/*
 * Normalised cross-correlation (NCC) between a sent and a recorded signal:
 * finds the delay at which the recording best matches what was sent, and
 * how well (1 = identical up to gain, ~0 = unrelated).
 *
 * Convention: at lag L, rec[i + L] is compared with ref[i], over the samples
 * both signals have at that lag (the overlap), and
 *   ncc(L) = sum ref[i] rec[i+L] / sqrt(sum ref[i]^2 * sum rec[i+L]^2).
 * A positive lag means the recording is late.
 *
 * Cost: an exhaustive search is O(n * lags), ~10^10 multiply-adds for 10 s
 * of audio and a 1 s lag range. Instead the search runs on a pyramid: both
 * signals are repeatedly halved (mean of sample pairs, a crude low-pass
 * that is enough because both sides are filtered alike) up to a factor D,
 * every lag in the range is scored at the coarsest level, and the three
 * best coarse peaks each descend the pyramid, re-scoring only +-3 lags
 * around twice their position per level, to an exact full-rate lag. D is
 * the smallest power of two <= 32 keeping the coarse pass under ~2*10^7
 * multiply-adds (or D = 32); the descent costs ~40 n. 10 s with a 2 s
 * range is ~5*10^7 multiply-adds, a few hundred ms (scripts/bench media)
 * instead of minutes. A signal whose energy lies mostly above the coarse
 * Nyquist rate (24 kHz / D) may be mislocated; voice and the probe signal
 * are not.
 */
#ifndef WZP_MEDIA_COMPARE_H
#define WZP_MEDIA_COMPARE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wzp_ncc_result {
    long lag;   /* samples; rec[i + lag] ~ ref[i] */
    double ncc; /* -1..1 at that lag */
} wzp_ncc_result;

/* NCC at one lag over the overlap; 0 if the overlap is empty or silent. */
double wzp_ncc_at(const float *ref, size_t nref, const float *rec, size_t nrec, long lag);

/* Best (highest NCC) lag in [min_lag, max_lag] whose overlap is at least
 * min_overlap samples (0 = half the shorter signal). WZP_ERR_INVALID for bad
 * arguments or no lag with enough overlap; WZP_ERR_NOMEM. */
int wzp_ncc_search(const float *ref, size_t nref, const float *rec, size_t nrec, long min_lag,
                   long max_lag, size_t min_overlap, wzp_ncc_result *out);

/* Same on int16 PCM (converted internally). */
int wzp_ncc_search_s16(const int16_t *ref, size_t nref, const int16_t *rec, size_t nrec,
                       long min_lag, long max_lag, size_t min_overlap, wzp_ncc_result *out);

/* How well rec matches ref when the recording may be time-scaled (played
 * faster or slower, pitch kept: the playout buffer shedding or adding delay):
 * ref is cut into pieces of `piece` samples, each matched at its own lag,
 * the first within +-step of `lag`, each next within +-step of the one
 * before (a time-scaler moves the lag by at most a pitch period at a time).
 * *ncc is sum ref.rec / sqrt(sum ref^2 * sum rec^2) over the matched pieces
 * (unrelated signals stay low: each piece is long against the step);
 * *end_lag the last piece's lag. Pieces without a full overlap are left
 * out. WZP_ERR_INVALID for bad arguments or no piece to match;
 * WZP_ERR_NOMEM. */
int wzp_ncc_piecewise(const float *ref, size_t nref, const float *rec, size_t nrec, long lag,
                      size_t piece, long step, double *ncc, long *end_lag);

#endif
