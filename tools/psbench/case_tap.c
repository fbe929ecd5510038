/*  =========================================================================
    case_tap - what the broker's tap costs (see case_tap.h)

    Each run starts its own broker, and brokers differ from run to run by
    more than the tap costs, so the modes take turns for several rounds
    and each figure is the median of its rounds; the spread of the off
    rounds is the noise the differences stand against.
    ========================================================================= */

#include "case_tap.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_cli.h"

#include <stdio.h>

//  One run of the tap case in one mode: messages/s of 1-float push+pull
//  and ms per push+pull of big bytes
static int
s_run (const bench_options_t *options, const bench_plan_t *plan, int mode, size_t big,
       double *small_rate, double *big_ms)
{
    bench_options_t copy = *options;
    copy.tap_mode = mode;
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {.threads = 1, .bytes = sizeof (float)};
    if (bench_run (&copy, plan, &spec, &result))
        return -1;
    double values[BENCH_MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++)
        values[rep] = 2 * result.steps[rep] / result.wall[rep];
    *small_rate = bench_quantile (values, (size_t)result.reps, 0.5);
    spec.bytes = big;
    if (bench_run (&copy, plan, &spec, &result))
        return -1;
    for (int rep = 0; rep < result.reps; rep++)
        values[rep] = result.wall[rep] * 1000 / (result.steps[rep] > 0 ? result.steps[rep] : 1);
    *big_ms = bench_quantile (values, (size_t)result.reps, 0.5);
    return 0;
}

int
case_tap (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard)
{
    static const char *modes[] = {"off", "idle", "watched"};
    static const int settings[] = {BENCH_TAP_OFF, BENCH_TAP_IDLE, BENCH_TAP_WATCHED};
    enum { ROUNDS_MAX = 5 };
    int rounds = options->quick ? 1 : ROUNDS_MAX;
    size_t big = options->quick ? (1u << 20) : (16u << 20);
    char big_name[32];
    ps_cli_size_name (big, big_name, sizeof big_name);
    double small[3][ROUNDS_MAX], large[3][ROUNDS_MAX];
    for (int round = 0; round < rounds; round++)
        for (int m = 0; m < 3; m++)
            if (s_run (options, plan, settings[m], big, &small[m][round], &large[m][round])) {
                fprintf (stderr, "psbench: tap_%s failed\n", modes[m]);
                return 1;
            }
    double small_median[3], large_median[3];
    for (int m = 0; m < 3; m++) {
        small_median[m] = bench_quantile (small[m], (size_t)rounds, 0.5);
        large_median[m] = bench_quantile (large[m], (size_t)rounds, 0.5);
    }
    for (int m = 0; m < 3; m++) {
        char name[64];
        snprintf (name, sizeof name, "tap_%s_small", modes[m]);
        bench_figure (name, small_median[m], "msgs/s");
        if (m)
            bench_ratio (name, "vs_off", small_median[m], "tap_off_small", small_median[0],
                         "msgs/s");
        snprintf (name, sizeof name, "tap_%s_%s", modes[m], big_name);
        bench_figure (name, large_median[m], "ms");
        if (m)
            bench_ratio (name, "vs_off", large_median[m], "tap_off", large_median[0], "ms");
    }
    //  The spread of the off rounds is the noise the differences stand against
    double low = small[0][0], high = small[0][0];
    for (int round = 1; round < rounds; round++) {
        low = small[0][round] < low ? small[0][round] : low;
        high = small[0][round] > high ? small[0][round] : high;
    }
    bench_figure ("tap_off_small.spread", small_median[0] > 0 ? (high - low) / small_median[0] : 0,
                  "of median");
    fflush (stdout);
    return 0;
}
