/*  =========================================================================
    case_bsp - BSP clocks per second (see case_bsp.h)

    The clock count of each repetition is calibrated by bench_run from a
    warm-up, so that a repetition takes about plan->bsp_seconds whatever
    the machine's speed.
    ========================================================================= */

#include "case_bsp.h"
#include "bench_figure.h"
#include "bench_run.h"

#include <stdio.h>

//  bsp_clocks_<n>w: BSP clocks per second, softmax-sized model, each
//  clock a push that finishes it (ps_worker_push_clock) then a pull
//  bsp_pipelined_clocks_<n>w: the same with the two sent back to back
//  (the library's async calls), then waited for. Its ratio is held
//  against the same three raw round trips, .vs_raw_clients (8 workers)
//  against 8 raw clients' round trips at once, and .vs_sequential
//  against bsp_clocks_<n>w. Sets *rate to the median
static int
s_bsp (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard,
       uint32_t nworkers, bool pipelined, double *rate_out)
{
    char name[64];
    snprintf (name, sizeof name, "bsp_%sclocks_%uw", pipelined ? "pipelined_" : "", nworkers);
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {.bsp = true, .threads = nworkers, .pipelined = pipelined};
    if (bench_run (options, plan, &spec, &result)) {
        fprintf (stderr, "psbench: %s failed\n", name);
        return -1;
    }
    double rate[BENCH_MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++)
        rate[rep] = result.steps[rep] / nworkers / result.wall[rep];
    double median = bench_quantile (rate, (size_t)result.reps, 0.5);
    bench_figure (name, median, "clocks/s");
    //  A clock's work is a push, a clock and a pull: the rate three raw
    //  DEALER/ROUTER round trips would allow (the loop sends two messages,
    //  a push that finishes the clock and a pull)
    const bench_yard_row_t *row = bench_yardstick_find (yard, "tcp_lat", 0);
    if (row && row->a > 0)
        bench_ratio (name, "ratio", median, "1/(3x tcp_lat)", 1e6 / (3 * row->a), "clocks/s");
    //  What this machine's raw libzmq carries for as many clients at
    //  once: the same two round trips per worker and clock at best. With
    //  many workers on few cores, messages cost CPU that three round
    //  trips of one client do not show
    char raw[64];
    snprintf (raw, sizeof raw, "tcp_lat_%dpairs", BENCH_RAW_PAIRS);
    row = nworkers == BENCH_RAW_PAIRS ? bench_yardstick_find (yard, raw, 0) : NULL;
    if (row && row->a > 0) {
        char what[96];
        snprintf (what, sizeof what, "%s / %u round trips", raw, 2 * nworkers);
        bench_ratio (name, "vs_raw_clients", median, what, row->a / (2.0 * nworkers), "clocks/s");
    }
    if (pipelined && *rate_out > 0) {
        char sequential[64];
        snprintf (sequential, sizeof sequential, "bsp_clocks_%uw", nworkers);
        bench_ratio (name, "vs_sequential", median, sequential, *rate_out, "clocks/s");
    }
    *rate_out = median;
    fflush (stdout);
    return 0;
}

int
case_bsp (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard)
{
    static const uint32_t counts[] = {1, 2, 4, 8};
    int failures = 0;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        double rate = 0;
        failures += s_bsp (options, plan, yard, counts[i], false, &rate) != 0;
        failures += s_bsp (options, plan, yard, counts[i], true, &rate) != 0;
    }
    return failures;
}
