/*  =========================================================================
    case_memory - the broker's peak memory per model (see case_memory.h)

    The figure is not a time, so no yardstick: the model's size is the
    reference, and the run is long enough for every worker to have a push
    and a pull in flight many times over.
    ========================================================================= */

#include "case_memory.h"
#include "bench_figure.h"
#include "bench_run.h"

#include <stdio.h>

//  Bytes the broker may use besides the models: its code, libzmq's
//  buffers, the frames of requests in flight
#define MEMORY_SLACK (16.0 * 1024 * 1024)

//  One mode and worker count; 0, or -1 when the run failed
static int
s_memory (const bench_options_t *options, const bench_plan_t *plan, const char *mode,
          int32_t staleness, uint32_t workers)
{
    bench_plan_t timed = *plan;
    timed.reps = 1;
    timed.rep_seconds = plan->memory_seconds / 3; //  bench_run: x3 from 16 MB
    timed.bsp_seconds = plan->memory_seconds;
    timed.bsp_calibrate = 2;
    bool clocked = staleness >= 0;
    bench_spec_t spec = {.bsp = clocked,
                         .staleness = clocked ? staleness : 0,
                         .shared = !clocked,
                         .threads = workers,
                         .bytes = plan->memory_bytes};
    bench_result_t result = {.reps = 0};
    char name[64], sub[80];
    snprintf (name, sizeof name, "memory_%s_%uw", mode, workers);
    if (bench_run (options, &timed, &spec, &result) || result.broker_peak_rss <= 0) {
        fprintf (stderr, "psbench: %s failed\n", name);
        return -1;
    }
    double model = (double)plan->memory_bytes;
    double models = clocked && staleness == 0 ? 3 : 2;
    bench_figure (name, result.broker_peak_rss / model, "x");
    snprintf (sub, sizeof sub, "%s.peak", name);
    bench_figure (sub, result.broker_peak_rss / 1e6, "MB");
    snprintf (sub, sizeof sub, "%s.limit", name);
    bench_figure (sub, (models * model + MEMORY_SLACK) / model, "x");
    fflush (stdout);
    return 0;
}

int
case_memory (const bench_options_t *options, const bench_plan_t *plan,
             const bench_yardstick_t *yard)
{
    (void)yard;
    static const struct {
        const char *name;
        int32_t staleness; //  -1 asp
    } modes[] = {{"asp", -1}, {"ssp", 2}, {"bsp", 0}};
    static const uint32_t workers[] = {1, 4, 16};
    int failures = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++)
            failures +=
                s_memory (options, plan, modes[m].name, modes[m].staleness, workers[w]) != 0;
    return failures;
}
