/*  =========================================================================
    case_bsp - BSP clocks per second

    bsp_clocks_<n>w: BSP clocks per second of n = 1, 2, 4, 8 workers on a
    softmax-sized model (784 x 10 weights and 10 biases), a clock being
    push, CLOCK and pull, each waited. Held against the rate three raw
    round trips of the yardstick (tcp_lat) would allow.
    ========================================================================= */

#ifndef CASE_BSP_H_INCLUDED
#define CASE_BSP_H_INCLUDED

#include "bench_case.h"

//  bsp_clocks_<n>w for each n; the number that failed
bench_case_fn case_bsp;

#endif
