/*  =========================================================================
    ps_clock - the monotonic clock in seconds (see ps_clock.h)
    ========================================================================= */

#include "ps_clock.h"

#include <time.h>

double
ps_clock_seconds (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}
