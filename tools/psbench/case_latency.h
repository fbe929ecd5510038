/*  =========================================================================
    case_latency - the round trip of the smallest push and pull

    latency_push_pull: the median us of a 1-float push then pull, each
    waited, of one worker on its own broker; .p99 its 99th percentile.
    Held against two raw round trips of the yardstick (tcp_lat).
    ========================================================================= */

#ifndef CASE_LATENCY_H_INCLUDED
#define CASE_LATENCY_H_INCLUDED

#include "bench_case.h"

//  latency_push_pull and its p99; 0, or 1 when it failed
bench_case_fn case_latency;

#endif
