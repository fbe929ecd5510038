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
#include <unistd.h>

//  The yardstick's run before each repetition, in turns with psmq's
typedef struct {
    const bench_options_t *options;
    const bench_yardstick_t *yard;
    size_t bytes;
    bench_yard_row_t rows[BENCH_MAX_REPS]; //  zeros: that turn failed
} turns_t;

//  A turn that fails ends the turns of this figure
static void
s_raw_turn (void *arg, int rep)
{
    turns_t *turns = arg;
    if (rep < BENCH_MAX_REPS && !bench_yardstick_pushpull_again (turns->yard, turns->options,
                                                                 turns->bytes, &turns->rows[rep]))
        turns->yard = NULL;
}

//  The median of n values, left in their order: they pair with the turns
static double
s_median (const double *values, size_t n)
{
    double sorted[BENCH_MAX_REPS];
    for (size_t i = 0; i < n && i < BENCH_MAX_REPS; i++)
        sorted[i] = values[i];
    return bench_quantile (sorted, n < BENCH_MAX_REPS ? n : BENCH_MAX_REPS, 0.5);
}

//  name.cpu: CPU per step, this process's and the broker's, and
//  name.cpus_busy: how many CPUs that kept busy on average, medians of
//  the repetitions. Nothing when the CPU time could not be read
static void
s_cpu_figures (const char *name, const bench_result_t *result)
{
    double cpu_ms[BENCH_MAX_REPS], busy[BENCH_MAX_REPS];
    for (int rep = 0; rep < result->reps; rep++) {
        if (result->cpu[rep] <= 0 || result->steps[rep] <= 0 || result->wall[rep] <= 0)
            return;
        cpu_ms[rep] = result->cpu[rep] * 1000 / result->steps[rep];
        busy[rep] = result->cpu[rep] / result->wall[rep];
    }
    size_t reps = (size_t)result->reps;
    char sub[96], unit[32];
    snprintf (sub, sizeof sub, "%s.cpu", name);
    bench_figure (sub, s_median (cpu_ms, reps), "ms");
    snprintf (sub, sizeof sub, "%s.cpus_busy", name);
    snprintf (unit, sizeof unit, "of %ld CPUs", sysconf (_SC_NPROCESSORS_ONLN));
    bench_figure (sub, s_median (busy, reps), unit);
}

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
    turns_t turns = {.options = options, .yard = yard, .bytes = bytes};
    bench_spec_t spec = {.threads = nworkers,
                         .bytes = bytes,
                         .view = view,
                         .before_rep = yard ? s_raw_turn : NULL,
                         .before_rep_arg = &turns};
    if (bench_run (options, plan, &spec, &result)) {
        fprintf (stderr, "psbench: %s failed\n", name);
        return -1;
    }
    double ms[BENCH_MAX_REPS], gbps[BENCH_MAX_REPS];
    double raw_ms[BENCH_MAX_REPS], raw_gbps[BENCH_MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++) {
        double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
        ms[rep] = result.wall[rep] * 1000 / (steps / nworkers);
        gbps[rep] = steps * 2.0 * (double)bytes / result.wall[rep] / 1e9;
        raw_ms[rep] = turns.rows[rep].b;
        raw_gbps[rep] = turns.rows[rep].a;
    }
    //  A turn that failed leaves the run before the cases as the reference
    const bench_yard_row_t *row = bench_yardstick_pushpull (yard, bytes, what, sizeof what);
    size_t reps = (size_t)result.reps;
    if (nworkers == 1) {
        bench_figure (name, s_median (ms, reps), "ms");
        if (row && !bench_ratio_turns (name, "ratio", ms, raw_ms, reps, what, "ms"))
            bench_ratio (name, "ratio", s_median (ms, reps), what, row->b, "ms");
        snprintf (sub, sizeof sub, "%s.bandwidth", name);
        bench_figure (sub, s_median (gbps, reps), "GB/s");
    }
    else {
        //  Aggregate GB/s is the figure; a step's time is per worker
        bench_figure (name, s_median (gbps, reps), "GB/s");
        if (row && !bench_ratio_turns (name, "ratio", gbps, raw_gbps, reps, what, "GB/s"))
            bench_ratio (name, "ratio", s_median (gbps, reps), what, row->a, "GB/s");
        snprintf (sub, sizeof sub, "%s.step", name);
        bench_figure (sub, s_median (ms, reps), "ms");
    }
    s_cpu_figures (name, &result);
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
