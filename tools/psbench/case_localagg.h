/*  =========================================================================
    case_localagg - local aggregation: one connection for several workers

    localagg_<mode>_<size>: BSP clocks per second of 4 workers that all
    push to one key of 4K and 4M bytes (--quick 4K and 1M), in three
    modes: off, a thread and a connection per worker; on, one connection
    standing for all four (local_workers), whose thread sums their
    gradients and pushes once; 2x2, two such connections of two. .vs_off
    holds a mode against off; .sum is the ms of a clock spent summing.
    ========================================================================= */

#ifndef CASE_LOCALAGG_H_INCLUDED
#define CASE_LOCALAGG_H_INCLUDED

#include "bench_case.h"

//  The localagg figures; 0, or 1 when a run failed
bench_case_fn case_localagg;

#endif
