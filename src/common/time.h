/*
 * Time in the sans-I/O core: a plain count of nanoseconds on some monotonic
 * clock the caller owns (the runtime's CLOCK_MONOTONIC, or a test's virtual
 * clock). Same unit as ngtcp2_tstamp, so it passes through unconverted.
 */
#ifndef WZP_COMMON_TIME_H
#define WZP_COMMON_TIME_H

#include <stdint.h>

typedef uint64_t wzp_ts;

#define WZP_TS_NEVER UINT64_MAX
#define WZP_NS(x)    ((wzp_ts)(x))
#define WZP_US(x)    ((wzp_ts)(x)*1000ULL)
#define WZP_MS(x)    ((wzp_ts)(x)*1000000ULL)
#define WZP_SEC(x)   ((wzp_ts)(x)*1000000000ULL)

static inline wzp_ts wzp_ts_min(wzp_ts a, wzp_ts b)
{
    return a < b ? a : b;
}

#endif
