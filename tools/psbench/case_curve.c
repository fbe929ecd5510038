/*  =========================================================================
    case_curve - what CURVE costs (see case_curve.h)

    As the tap case: each run starts its own broker, and brokers differ
    from run to run by more than small costs, so the two modes take turns
    for several rounds and each figure is the median of its rounds. The
    keys are made with zcert, as pskeys makes them, into a mkdtemp folder
    that is removed at the end.
    ========================================================================= */

#include "case_curve.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_cli.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
bench_curve_keys_remove (bench_curve_keys_t *keys)
{
    const char *files[] = {keys->broker_secret, keys->broker_public, keys->worker_secret,
                           keys->worker_public};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i][0])
            unlink (files[i]);
    if (keys->allow[0])
        rmdir (keys->allow);
    if (keys->dir[0])
        rmdir (keys->dir);
}

int
bench_curve_keys_make (bench_curve_keys_t *keys)
{
    memset (keys, 0, sizeof *keys);
    const char *tmp = getenv ("TMPDIR");
    snprintf (keys->dir, sizeof keys->dir, "%s/psbench-curve-XXXXXX",
              tmp && *tmp && strlen (tmp) < 30 ? tmp : "/tmp");
    if (!mkdtemp (keys->dir)) {
        fprintf (stderr, "psbench: curve: cannot make a key folder in %s\n", keys->dir);
        keys->dir[0] = 0;
        return -1;
    }
    snprintf (keys->allow, sizeof keys->allow, "%s/allow", keys->dir);
    snprintf (keys->broker_secret, sizeof keys->broker_secret, "%s/broker.key_secret", keys->dir);
    snprintf (keys->broker_public, sizeof keys->broker_public, "%s/broker.key", keys->dir);
    snprintf (keys->worker_secret, sizeof keys->worker_secret, "%s/worker.key_secret", keys->allow);
    snprintf (keys->worker_public, sizeof keys->worker_public, "%s/worker.key", keys->allow);
    zcert_t *broker = zcert_new (), *worker = zcert_new ();
    int rc = broker && worker && mkdir (keys->allow, 0700) == 0 ? 0 : -1;
    if (rc == 0)
        rc = zcert_save_secret (broker, keys->broker_secret) ||
             zcert_save_public (broker, keys->broker_public) ||
             zcert_save_secret (worker, keys->worker_secret) ||
             zcert_save_public (worker, keys->worker_public);
    zcert_destroy (&broker);
    zcert_destroy (&worker);
    if (rc) {
        fprintf (stderr, "psbench: curve: cannot write the keys in %s\n", keys->dir);
        bench_curve_keys_remove (keys);
    }
    return rc ? -1 : 0;
}

void
bench_curve_keys_use (bench_options_t *options, const bench_curve_keys_t *keys)
{
    options->broker_secret = keys ? keys->broker_secret : NULL;
    options->allow_keys = keys ? keys->allow : NULL;
    options->curve_secret = keys ? keys->worker_secret : NULL;
    options->broker_key = keys ? keys->broker_public : NULL;
}

//  One run in one mode: messages/s of 1-float push+pull and ms per
//  push+pull of big bytes
static int
s_run (const bench_options_t *options, const bench_plan_t *plan, const bench_curve_keys_t *keys,
       size_t big, double *small_rate, double *big_ms)
{
    bench_options_t copy = *options;
    bench_curve_keys_use (&copy, keys);
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
case_curve (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard)
{
    static const char *modes[] = {"off", "on"};
    enum { ROUNDS_MAX = 5 };
    int rounds = options->quick ? 1 : ROUNDS_MAX;
    size_t big = options->quick ? (1u << 20) : (16u << 20);
    char big_name[32];
    ps_cli_size_name (big, big_name, sizeof big_name);
    bench_curve_keys_t keys;
    if (bench_curve_keys_make (&keys))
        return 1;
    double small[2][ROUNDS_MAX], large[2][ROUNDS_MAX];
    for (int round = 0; round < rounds; round++)
        for (int m = 0; m < 2; m++)
            if (s_run (options, plan, m ? &keys : NULL, big, &small[m][round], &large[m][round])) {
                fprintf (stderr, "psbench: curve_%s failed\n", modes[m]);
                bench_curve_keys_remove (&keys);
                return 1;
            }
    bench_curve_keys_remove (&keys);
    double small_median[2], large_median[2];
    for (int m = 0; m < 2; m++) {
        small_median[m] = bench_quantile (small[m], (size_t)rounds, 0.5);
        large_median[m] = bench_quantile (large[m], (size_t)rounds, 0.5);
    }
    for (int m = 0; m < 2; m++) {
        char name[64];
        snprintf (name, sizeof name, "curve_%s_small", modes[m]);
        bench_figure (name, small_median[m], "msgs/s");
        if (m)
            bench_ratio (name, "vs_off", small_median[m], "curve_off_small", small_median[0],
                         "msgs/s");
        snprintf (name, sizeof name, "curve_%s_%s", modes[m], big_name);
        bench_figure (name, large_median[m], "ms");
        if (m)
            bench_ratio (name, "vs_off", large_median[m], "curve_off", large_median[0], "ms");
    }
    double low = small[0][0], high = small[0][0];
    for (int round = 1; round < rounds; round++) {
        low = small[0][round] < low ? small[0][round] : low;
        high = small[0][round] > high ? small[0][round] : high;
    }
    bench_figure ("curve_off_small.spread",
                  small_median[0] > 0 ? (high - low) / small_median[0] : 0, "of median");
    fflush (stdout);
    return 0;
}
