/*  =========================================================================
    case_pushpull - the push+pull step of ASP workers, one and four

    pushpull_<size>: ms per push+pull step of one worker (ASP), each
    waited, for each size of the plan; .bandwidth counts both directions.
    pushpull4_<size>: the aggregate GB/s of four such workers, each with
    its own tensor; .step is a step's ms per worker. Held against the
    yardstick's raw DEALER/ROUTER round trip of the same size (64 MB:
    its model of 1 MB chunks) in turns: one repetition of the yardstick
    runs just before each of psmq's, and the ratio is the median of the
    repetitions' own ratios (bench_ratio_turns), as case_latency does.
    ========================================================================= */

#ifndef CASE_PUSHPULL_H_INCLUDED
#define CASE_PUSHPULL_H_INCLUDED

#include "bench_case.h"

//  pushpull_<size> for each size of the plan; the number of sizes that
//  failed
bench_case_fn case_pushpull;

//  pushpull4_<size> for each size of the plan; the number that failed
bench_case_fn case_pushpull4;

#endif
