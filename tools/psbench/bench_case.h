/*  =========================================================================
    bench_case - what every case of psbench is

    A case measures one family of figures (its case_<family>.h says
    which) and prints each as one `name: value unit` line (bench_figure),
    followed by its ratio to the yardstick (bench_ratio) when yard is not
    NULL. It starts what it needs (brokers, worker threads, a store) and
    stops it before it returns; what fails is said on stderr and counted.
    Main thread, one case at a time, in the order of main's table.
    ========================================================================= */

#ifndef BENCH_CASE_H_INCLUDED
#define BENCH_CASE_H_INCLUDED

#include "bench_options.h"
#include "bench_yardstick.h"

//  Measure and print a family of figures as options and plan say, held
//  against yard (NULL: no ratios); how many of its runs failed
typedef int bench_case_fn (const bench_options_t *options, const bench_plan_t *plan,
                           const bench_yardstick_t *yard);

#endif
