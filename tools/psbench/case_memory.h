/*  =========================================================================
    case_memory - how much memory the broker needs for a model

    memory_<mode>_<n>w: the broker's peak resident set (VmHWM) as a
    multiple of the model, one key of plan->memory_bytes (64 MB; --quick
    4 MB) that n = 1, 4 and 16 worker threads push and pull as fast as
    they can for plan->memory_seconds, in each mode: asp (pushpull), ssp
    (staleness 2: push, clock, pull) and bsp. A fresh broker each time, so
    the peak is that run's. .peak is the same in MB; .limit the multiple
    issue 15 holds the broker to: 2 models and 16 MB with asp and ssp
    (the values and one version being read), one model more with bsp (its
    accumulator).
    ========================================================================= */

#ifndef CASE_MEMORY_H_INCLUDED
#define CASE_MEMORY_H_INCLUDED

#include "bench_case.h"

//  The memory figures; how many runs failed
bench_case_fn case_memory;

#endif
