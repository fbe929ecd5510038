/*  =========================================================================
    case_training - psworker through a broker and alone (see
    case_training.h)

    Each run is a psworker process whose last JSON record says its
    examples/s over the whole run; the broker, when there is one, is
    started for that run alone.
    ========================================================================= */

#include "case_training.h"
#include "bench_broker.h"
#include "bench_figure.h"
#include "ps_process.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRAINING_ROUNDS 3
//  A psworker run, at most
#define TRAINING_TIMEOUT_MS 300000

//  psworker beside the psbroker of options, into path
static void
s_psworker_path (const bench_options_t *options, char *path, size_t size)
{
    snprintf (path, size, "%s", options->broker_bin);
    char *slash = strrchr (path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0;
    snprintf (path + dir, size - dir, "psworker");
}

//  One psworker run, through the broker at endpoint or alone (NULL):
//  its examples/s, or -1 (said why)
static double
s_run (const bench_options_t *options, const char *endpoint)
{
    char path[PATH_MAX];
    s_psworker_path (options, path, sizeof path);
    char *argv[24] = {
        path,    "--data", "synthetic", "--model", "mlp", "--epochs", options->quick ? "1" : "3",
        "--json"};
    size_t argc = 8;
    if (endpoint) {
        char *more[] = {"--broker", (char *)endpoint, "--rank", "0", "--workers", "1"};
        for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
            argv[argc++] = more[i];
        if (options->curve_secret) {
            argv[argc++] = "--curve-secret";
            argv[argc++] = (char *)options->curve_secret;
            argv[argc++] = "--broker-key";
            argv[argc++] = (char *)options->broker_key;
        }
    }
    else
        argv[argc++] = "--no-broker";
    argv[argc] = NULL;
    char *output = NULL;
    int status = 0;
    ps_problem_t problem;
    double rate = -1;
    if (ps_process_capture (argv, true, TRAINING_TIMEOUT_MS, &output, &status, &problem))
        fprintf (stderr, "psbench: training: %s: %s\n", path, problem.message);
    else if (ps_process_exit_code (status) != 0)
        fprintf (stderr, "psbench: training: %s exited %d\n", path, ps_process_exit_code (status));
    else {
        const char *final = output ? strstr (output, "\"final\":true") : NULL;
        const char *at = final ? strstr (final, "\"examples_per_second\":") : NULL;
        if (at)
            rate = strtod (at + strlen ("\"examples_per_second\":"), NULL);
        else
            fprintf (stderr, "psbench: training: no final record from %s\n", path);
    }
    free (output);
    return rate;
}

//  A run through a broker of its own
static double
s_through_broker (const bench_options_t *options)
{
    bench_broker_t broker;
    if (bench_broker_start (&broker, options, 1, 0, 0, 1))
        return -1;
    double rate = s_run (options, broker.endpoint);
    bench_broker_stop (&broker);
    return rate;
}

int
case_training (const bench_options_t *options, const bench_plan_t *plan,
               const bench_yardstick_t *yard)
{
    (void)plan;
    (void)yard;
    int rounds = options->quick ? 1 : TRAINING_ROUNDS;
    double through[TRAINING_ROUNDS], alone[TRAINING_ROUNDS];
    for (int round = 0; round < rounds; round++) {
        through[round] = s_through_broker (options);
        alone[round] = s_run (options, NULL);
        if (through[round] <= 0 || alone[round] <= 0) {
            fprintf (stderr, "psbench: training failed\n");
            return 1;
        }
    }
    double through_median = bench_quantile (through, (size_t)rounds, 0.5);
    double alone_median = bench_quantile (alone, (size_t)rounds, 0.5);
    bench_figure ("training_broker", through_median, "examples/s");
    bench_figure ("training_alone", alone_median, "examples/s");
    bench_figure ("training_broker.vs_alone", through_median / alone_median, "x");
    fflush (stdout);
    return 0;
}
