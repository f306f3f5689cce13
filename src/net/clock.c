#include "net/clock.h"

#include <stdlib.h>
#include <time.h>

wzp_ts wzp_now(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer; abort rather than return garbage. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        abort();
    return (wzp_ts)ts.tv_sec * 1000000000ULL + (wzp_ts)ts.tv_nsec;
}
