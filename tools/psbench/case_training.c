/*  =========================================================================
    case_training - psworker through a broker and alone (see
    case_training.h)

    Each run is a psworker process whose last JSON record says its
    examples/s over the whole run; the broker, when there is one, is
    started for that run alone. Four runs a round, in turns (each round
    starting with the next): through the
    broker under BSP with psworker's overlap (layer by layer) and with
    --no-overlap (the step before issue 15's overlap), under SSP 1 (the
    overlap pulls ahead), and alone.
    ========================================================================= */

#include "case_training.h"
#include "bench_broker.h"
#include "bench_figure.h"
#include "ps_process.h"

#include <stdbool.h>
#include <stdint.h>
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

//  The runs of a round
typedef enum { RUN_BSP, RUN_BSP_NO_OVERLAP, RUN_SSP, RUN_ALONE, RUNS } run_t;

//  Each run's figure name and staleness
static const struct {
    const char *name;
    int32_t staleness;
} s_runs[RUNS] = {{"training_broker", 0},
                  {"training_broker_no_overlap", 0},
                  {"training_ssp1", 1},
                  {"training_alone", 0}};

//  One psworker run, through the broker at endpoint or alone (NULL),
//  with --no-overlap or not: its examples/s, or -1 (said why)
static double
s_run (const bench_options_t *options, const char *endpoint, bool no_overlap)
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
    if (no_overlap)
        argv[argc++] = "--no-overlap";
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

//  One run of a round, through a broker of its own but alone
static double
s_round_run (const bench_options_t *options, run_t run)
{
    if (run == RUN_ALONE)
        return s_run (options, NULL, false);
    bench_broker_t broker;
    if (bench_broker_start (&broker, options, 1, s_runs[run].staleness, 0, 1))
        return -1;
    double rate = s_run (options, broker.endpoint, run == RUN_BSP_NO_OVERLAP);
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
    double rates[RUNS][TRAINING_ROUNDS];
    //  Each round starts with another run: the first after a pause, or
    //  after another case, runs on a machine that is not yet as busy
    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < RUNS; k++) {
            run_t run = (run_t)((k + round) % RUNS);
            if ((rates[run][round] = s_round_run (options, run)) <= 0) {
                fprintf (stderr, "psbench: training failed\n");
                return 1;
            }
        }
    double medians[RUNS];
    for (run_t run = 0; run < RUNS; run++) {
        medians[run] = bench_quantile (rates[run], (size_t)rounds, 0.5);
        bench_figure (s_runs[run].name, medians[run], "examples/s");
    }
    //  Each through the broker against alone, the overlap's beside the
    //  step without it
    for (run_t run = 0; run < RUN_ALONE; run++) {
        char name[64];
        snprintf (name, sizeof name, "%s.vs_alone", s_runs[run].name);
        bench_figure (name, medians[run] / medians[RUN_ALONE], "x");
    }
    fflush (stdout);
    return 0;
}
