/*  =========================================================================
    case_latency - the round trip of the smallest push and pull

    latency_push_pull: the median us of a 1-float push then pull, each
    waited, of one worker on its own broker; .p99 its 99th percentile.
    Held against two raw round trips of the yardstick (tcp_lat) in turns:
    each round runs zmq_limits' latency mode, then times its pairs, and
    the ratio is the median of the rounds' own ratios. A single raw run
    before the case put ratios of 1.15 to 2.0 on one build in one day,
    as the VM's round trip drifted between the two; turns hold each round's two
    figures to the same minute. Each round is echoed as a comment.
    ========================================================================= */

#ifndef CASE_LATENCY_H_INCLUDED
#define CASE_LATENCY_H_INCLUDED

#include "bench_case.h"

//  latency_push_pull and its p99; 0, or 1 when it failed
bench_case_fn case_latency;

#endif
