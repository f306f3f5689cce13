/*
 * The runtime's clock: CLOCK_MONOTONIC in nanoseconds, the wzp_ts the
 * sans-I/O core is fed. Only the runtime layer reads it; the core takes `now`
 * as an argument so tests can drive it with a virtual clock.
 */
#ifndef WZP_NET_CLOCK_H
#define WZP_NET_CLOCK_H

#include "common/time.h"

/* Nanoseconds since an arbitrary fixed point (boot); never goes backwards. */
wzp_ts wzp_now(void);

#endif
