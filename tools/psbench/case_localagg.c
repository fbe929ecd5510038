/*  =========================================================================
    case_localagg - one connection for several workers (see the .h)

    The summing is local aggregation's own cost, so it is timed with the
    rest of the clock (bench_run adds it up apart too, for .sum). The
    modes take turns for a few rounds, as in the group case.
    ========================================================================= */

#include "case_localagg.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_cli.h"

#include <stdio.h>

//  Workers of the case, and its smaller key (floats)
#define LOCALAGG_WORKERS 4
#define LOCALAGG_SMALL 1024

//  A localagg mode: worker threads, and workers each stands for
typedef struct {
    const char *name; //  in the figure's name
    uint32_t threads; //  connections
    uint32_t local;   //  local_workers of each
} localagg_mode_t;

//  One run of a localagg mode on a key of bytes: the median over the
//  repetitions of clocks per second and of the ms per clock each thread
//  spent summing its local gradients
static int
s_run (const bench_options_t *options, const bench_plan_t *plan, const localagg_mode_t *mode,
       size_t bytes, double *rate, double *sum_ms)
{
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {
        .bsp = true, .threads = mode->threads, .local = mode->local, .bytes = bytes};
    if (bench_run (options, plan, &spec, &result))
        return -1;
    double rates[BENCH_MAX_REPS], sums[BENCH_MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++) {
        double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
        rates[rep] = result.steps[rep] / mode->threads / result.wall[rep];
        sums[rep] = result.sums[rep] * 1000 / steps;
    }
    *rate = bench_quantile (rates, (size_t)result.reps, 0.5);
    *sum_ms = bench_quantile (sums, (size_t)result.reps, 0.5);
    return 0;
}

int
case_localagg (const bench_options_t *options, const bench_plan_t *plan,
               const bench_yardstick_t *yard)
{
    static const localagg_mode_t modes[] = {{"off", LOCALAGG_WORKERS, 1},
                                            {"on", 1, LOCALAGG_WORKERS},
                                            {"2x2", 2, LOCALAGG_WORKERS / 2}};
    enum { NMODES = sizeof modes / sizeof modes[0] };
    size_t counts[] = {LOCALAGG_SMALL, plan->localagg_large};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t bytes = counts[c] * sizeof (float);
        char size_name[32];
        ps_cli_size_name (bytes, size_name, sizeof size_name);
        double rate[NMODES][BENCH_MAX_ROUNDS], sum_ms[NMODES][BENCH_MAX_ROUNDS];
        for (int round = 0; round < plan->rounds; round++)
            for (size_t m = 0; m < NMODES; m++)
                if (s_run (options, plan, &modes[m], bytes, &rate[m][round], &sum_ms[m][round])) {
                    fprintf (stderr, "psbench: localagg_%s_%s failed\n", modes[m].name, size_name);
                    return 1;
                }
        double rate_median[NMODES], sum_median[NMODES];
        bench_medians (&rate[0][0], NMODES, BENCH_MAX_ROUNDS, (size_t)plan->rounds, rate_median);
        bench_medians (&sum_ms[0][0], NMODES, BENCH_MAX_ROUNDS, (size_t)plan->rounds, sum_median);
        char off[64];
        snprintf (off, sizeof off, "localagg_off_%s", size_name);
        for (size_t m = 0; m < NMODES; m++) {
            char name[64], sub[80];
            snprintf (name, sizeof name, "localagg_%s_%s", modes[m].name, size_name);
            bench_figure (name, rate_median[m], "clocks/s");
            if (!m)
                continue;
            bench_ratio (name, "vs_off", rate_median[m], off, rate_median[0], "clocks/s");
            snprintf (sub, sizeof sub, "%s.sum", name);
            bench_figure (sub, sum_median[m], "ms");
        }
        fflush (stdout);
    }
    return 0;
}
