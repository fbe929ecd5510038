/*  =========================================================================
    case_group - one tensor sliced over a group (see case_group.h)

    Brokers differ from one start to the next, so the group sizes take
    turns for a few rounds and each figure is the median of its rounds,
    each round's value being the median of its repetitions.
    ========================================================================= */

#include "case_group.h"
#include "bench_broker.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_cli.h"

#include <stdio.h>

int
case_group (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard)
{
    static const uint32_t sizes[] = {1, 2, BENCH_MAX_BROKERS};
    enum { NSIZES = sizeof sizes / sizeof sizes[0] };
    size_t bytes = plan->group_bytes;
    char size_name[32];
    ps_cli_size_name (bytes, size_name, sizeof size_name);
    double ms[NSIZES][BENCH_MAX_ROUNDS], gbps[NSIZES][BENCH_MAX_ROUNDS];
    for (int round = 0; round < plan->rounds; round++)
        for (size_t g = 0; g < NSIZES; g++) {
            bench_result_t result = {.reps = 0};
            bench_spec_t spec = {.threads = 1, .brokers = sizes[g], .bytes = bytes};
            if (bench_run (options, plan, &spec, &result)) {
                fprintf (stderr, "psbench: group_%ub_%s failed\n", sizes[g], size_name);
                return 1;
            }
            double rep_ms[BENCH_MAX_REPS], rep_gbps[BENCH_MAX_REPS];
            for (int rep = 0; rep < result.reps; rep++) {
                double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
                rep_ms[rep] = result.wall[rep] * 1000 / steps;
                rep_gbps[rep] = steps * 2.0 * (double)bytes / result.wall[rep] / 1e9;
            }
            ms[g][round] = bench_quantile (rep_ms, (size_t)result.reps, 0.5);
            gbps[g][round] = bench_quantile (rep_gbps, (size_t)result.reps, 0.5);
        }
    double ms_median[NSIZES], gbps_median[NSIZES];
    bench_medians (&ms[0][0], NSIZES, BENCH_MAX_ROUNDS, (size_t)plan->rounds, ms_median);
    bench_medians (&gbps[0][0], NSIZES, BENCH_MAX_ROUNDS, (size_t)plan->rounds, gbps_median);
    char what[80], base[80];
    const bench_yard_row_t *row = bench_yardstick_pushpull (yard, bytes, what, sizeof what);
    snprintf (base, sizeof base, "group_1b_%s.bandwidth", size_name);
    for (size_t g = 0; g < NSIZES; g++) {
        char name[64], sub[80];
        snprintf (name, sizeof name, "group_%ub_%s", sizes[g], size_name);
        bench_figure (name, ms_median[g], "ms");
        if (row)
            bench_ratio (name, "ratio", ms_median[g], what, row->b, "ms");
        snprintf (sub, sizeof sub, "%s.bandwidth", name);
        bench_figure (sub, gbps_median[g], "GB/s");
        if (g)
            bench_ratio (name, "speedup", gbps_median[g], base, gbps_median[0], "GB/s");
    }
    fflush (stdout);
    return 0;
}
