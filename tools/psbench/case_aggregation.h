/*  =========================================================================
    case_aggregation - the aggregation thread's arithmetic, in-process

    aggregation: GB/s of gradients that ps_store sums in BSP, 8 of them
    accumulated into one key and then the flush that applies their mean
    (SGD); .time, ms for the 8. aggregation_apply: the same 8 applied one
    at a time, as SSP does. No broker and no network: ps_store is driven
    in this process, so the figures are the arithmetic alone, held
    against memband's add and agg8 rates.
    ========================================================================= */

#ifndef CASE_AGGREGATION_H_INCLUDED
#define CASE_AGGREGATION_H_INCLUDED

#include "bench_case.h"

//  aggregation and aggregation_apply; 0, or 1 when it failed
bench_case_fn case_aggregation;

#endif
