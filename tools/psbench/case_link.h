/*  =========================================================================
    case_link - push+pull over a network link of a given rate

    link_<rate>_<size>: one worker (a thread of psbench) on one host and
    psbroker on another, two network namespaces joined by a veth pair
    (ps_netns) with a tc token bucket (tbf) on both of its ends, so that
    each direction is limited to the rate, as a full-duplex Ethernet link
    is. A step is a push of <size> bytes then a pull of them, each waited
    for (ASP). The figure is the tensor bytes moved both ways (2 x size a
    step) divided by the wall time and by the link rate: 1 would be a
    link never idle and carrying nothing but tensor bytes, so envelopes,
    ZMTP frames, TCP/IP and Ethernet headers (some 4% at a 1500-byte MTU),
    the turn-around between push and pull and the broker's SGD step all
    count against it. .step is ms per push+pull. Rates 1 and 10 Gbit/s;
    sizes 64M (--quick 1M; --sizes chooses). Median of the plan's
    repetitions. Needs root; only run when named (--only link).
    ========================================================================= */

#ifndef CASE_LINK_H_INCLUDED
#define CASE_LINK_H_INCLUDED

#include "bench_case.h"

//  The link figures; 0, or the number of runs that failed (1 when the
//  network could not be made)
bench_case_fn case_link;

#endif
