/*  =========================================================================
    case_pushpull - push+pull steps of ASP workers (see case_pushpull.h)

    One worker's figure is the step time, the yardstick's round trip being
    a time too; four workers' is the aggregate bandwidth, as the
    yardstick's is for many messages in flight. One worker's step is timed
    twice: pulling into its buffer (pushpull_<size>), and reading the pull
    in place (pushpull_view_<size>, ps_worker_pull_view), as the
    yardstick's zero-copy variant reads its messages.
    ========================================================================= */

#include "case_pushpull.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_cli.h"

#include <stdio.h>

//  pushpull_<size> or, view, pushpull_view_<size> (1 worker), or
//  pushpull4_<size> (4 workers); 0 or -1
static int
s_pushpull (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard,
            uint32_t nworkers, size_t bytes, bool view)
{
    char size_name[32], name[64], sub[80], what[80];
    snprintf (name, sizeof name, "pushpull%s%s_%s", nworkers > 1 ? "4" : "", view ? "_view" : "",
              ps_cli_size_name (bytes, size_name, sizeof size_name));
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {.threads = nworkers, .bytes = bytes, .view = view};
    if (bench_run (options, plan, &spec, &result)) {
        fprintf (stderr, "psbench: %s failed\n", name);
        return -1;
    }
    double ms[BENCH_MAX_REPS], gbps[BENCH_MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++) {
        double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
        ms[rep] = result.wall[rep] * 1000 / (steps / nworkers);
        gbps[rep] = steps * 2.0 * (double)bytes / result.wall[rep] / 1e9;
    }
    double ms_median = bench_quantile (ms, (size_t)result.reps, 0.5);
    double gbps_median = bench_quantile (gbps, (size_t)result.reps, 0.5);
    const bench_yard_row_t *row = bench_yardstick_pushpull (yard, bytes, what, sizeof what);
    if (nworkers == 1) {
        bench_figure (name, ms_median, "ms");
        if (row)
            bench_ratio (name, "ratio", ms_median, what, row->b, "ms");
        snprintf (sub, sizeof sub, "%s.bandwidth", name);
        bench_figure (sub, gbps_median, "GB/s");
    }
    else {
        //  Aggregate GB/s is the figure; a step's time is per worker
        bench_figure (name, gbps_median, "GB/s");
        if (row)
            bench_ratio (name, "ratio", gbps_median, what, row->a, "GB/s");
        snprintf (sub, sizeof sub, "%s.step", name);
        bench_figure (sub, ms_median, "ms");
    }
    fflush (stdout);
    return 0;
}

//  Every size of the plan with nworkers workers; the number that failed
static int
s_sizes (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard,
         uint32_t nworkers)
{
    int failures = 0;
    for (size_t i = 0; i < plan->nsizes; i++) {
        failures += s_pushpull (options, plan, yard, nworkers, plan->sizes[i], false) != 0;
        if (nworkers == 1)
            failures += s_pushpull (options, plan, yard, nworkers, plan->sizes[i], true) != 0;
    }
    return failures;
}

int
case_pushpull (const bench_options_t *options, const bench_plan_t *plan,
               const bench_yardstick_t *yard)
{
    return s_sizes (options, plan, yard, 1);
}

int
case_pushpull4 (const bench_options_t *options, const bench_plan_t *plan,
                const bench_yardstick_t *yard)
{
    return s_sizes (options, plan, yard, 4);
}
