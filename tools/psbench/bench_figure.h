/*  =========================================================================
    bench_figure - how psbench takes and prints its figures

    A figure is timed with bench_now, reduced to the median of its
    repetitions with bench_quantile, printed as one `name: value unit`
    line with bench_figure and held against the yardstick (or another
    figure) with bench_ratio, as `name.suffix: R (vs what value unit)`.
    That output is psbench's interface: tests/test_psbench.c and
    docs/performance.md read it. Stateless; the printing functions write
    to stdout, so from one thread at a time.
    ========================================================================= */

#ifndef BENCH_FIGURE_H_INCLUDED
#define BENCH_FIGURE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Seconds on the monotonic clock, to the nanosecond
double bench_now (void);

//  The q-quantile (nearest rank) of n values, which it sorts in place;
//  0 for none
double bench_quantile (double *values, size_t n, double q);

//  Median of each of rows rows of values (of columns doubles each) over
//  its first n values, into medians[row]
void bench_medians (double *values, size_t rows, size_t columns, size_t n, double *medians);

//  Print `name: value unit`, value with as many decimals as it deserves
void bench_figure (const char *name, double value, const char *unit);

//  Print `name.suffix: ours / theirs (vs what theirs unit)`; nothing when
//  theirs is not positive
void bench_ratio (const char *name, const char *suffix, double ours, const char *what,
                  double theirs, const char *unit);

//  Turns of a figure and its yardstick, at most (bench_ratio_turns)
#define BENCH_MAX_TURNS 32

//  Print `name.suffix: R (median of n turns, each vs what run just before
//  it; T unit in the middle; each: r1 r2 ...)`, R the median of the turns'
//  own ratios ours[i] / theirs[i] and T the median of theirs: for a case
//  that runs the yardstick before each of its own repetitions, so that
//  each ratio holds two figures of the same minute on a machine whose
//  speed drifts between minutes. Prints nothing and returns false unless
//  0 < n <= BENCH_MAX_TURNS and every theirs[i] is positive. Reads the
//  arrays only.
bool bench_ratio_turns (const char *name, const char *suffix, const double *ours,
                        const double *theirs, size_t n, const char *what, const char *unit);

#endif
