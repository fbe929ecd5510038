/*  =========================================================================
    case_group - one tensor sliced over a group of brokers

    group_<n>b_<size>: ms per push+pull step of one worker whose one
    tensor (64 MB; --quick 1M) is sliced over a group of n = 1, 2 and 4
    psbrokers (ASP); .bandwidth counts both directions, .speedup is the
    bandwidth against one broker, .ratio holds the step against the
    yardstick as pushpull does.
    ========================================================================= */

#ifndef CASE_GROUP_H_INCLUDED
#define CASE_GROUP_H_INCLUDED

#include "bench_case.h"

//  The group figures; 0, or 1 when a run failed
bench_case_fn case_group;

#endif
