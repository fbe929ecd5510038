/*  =========================================================================
    case_checkpoint - what checkpoints cost (see case_checkpoint.h)

    As in the tap case, each run starts its own broker and brokers differ
    from run to run, so off and on take turns for several rounds and each
    figure is the median of its rounds. The checkpoints go into
    --checkpoint-dir or a folder made in $TMPDIR (/tmp), each broker's in
    a folder of its own, all removed when done: a disk of its own would
    measure the writer, not the broker.
    ========================================================================= */

#include "case_checkpoint.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  The interval of the on rounds when the command line names none: back
//  to back, as the writer defers a trigger until the write under way ends
#define BACK_TO_BACK_SECONDS 0.01

//  One run in one mode: messages/s of 1-float push+pull, ms per push+pull
//  of big bytes, checkpoints written during the first
static int
s_run (const bench_options_t *options, const bench_plan_t *plan, size_t big, double *small_rate,
       double *big_ms, double *written)
{
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {
        .threads = 1, .bytes = sizeof (float), .ballast = plan->checkpoint_ballast};
    if (bench_run (options, plan, &spec, &result))
        return -1;
    double values[BENCH_MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++)
        values[rep] = 2 * result.steps[rep] / result.wall[rep];
    *small_rate = bench_quantile (values, (size_t)result.reps, 0.5);
    *written = result.checkpoints;
    spec.bytes = big;
    if (bench_run (options, plan, &spec, &result))
        return -1;
    for (int rep = 0; rep < result.reps; rep++)
        values[rep] = result.wall[rep] * 1000 / (result.steps[rep] > 0 ? result.steps[rep] : 1);
    *big_ms = bench_quantile (values, (size_t)result.reps, 0.5);
    return 0;
}

//  name.vs_off_paired: the median over the rounds of on / off within each
//  round, the writer's cost with the VM's drift from round to round taken
//  out (the off rounds alone ranged over 1.3x in a run, up to 3.6x on a
//  busy machine)
static void
s_paired (const char *name, double *ratios, int rounds)
{
    char figure[96];
    snprintf (figure, sizeof figure, "%s.vs_off_paired", name);
    bench_figure (figure, bench_quantile (ratios, (size_t)rounds, 0.5), "x");
}

int
case_checkpoint (const bench_options_t *options, const bench_plan_t *plan,
                 const bench_yardstick_t *yard)
{
    enum { ROUNDS_MAX = 7 };
    int rounds = options->quick ? 1 : ROUNDS_MAX;
    size_t big = options->quick ? (1u << 20) : (16u << 20);
    char big_name[32];
    ps_cli_size_name (big, big_name, sizeof big_name);
    //  Where the on rounds' brokers write
    char made[PATH_MAX] = "";
    bench_options_t off = *options, on = *options;
    off.checkpoint_dir = NULL;
    if (!on.checkpoint_dir) {
        const char *tmp = getenv ("TMPDIR");
        snprintf (made, sizeof made, "%s/psbench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp (made)) {
            fprintf (stderr, "psbench: cannot make a checkpoint folder: %s\n", strerror (errno));
            return 1;
        }
        on.checkpoint_dir = made;
    }
    if (!on.checkpoint_seconds_given)
        on.checkpoint_seconds = BACK_TO_BACK_SECONDS;
    double small[2][ROUNDS_MAX], large[2][ROUNDS_MAX], written[2][ROUNDS_MAX];
    int failed = 0;
    //  Off and on side by side in each round, in turns first (a slow
    //  minute of the VM falls on both, whichever comes first)
    for (int round = 0; round < rounds && !failed; round++)
        for (int turn = 0; turn < 2 && !failed; turn++) {
            int m = (turn + round) % 2;
            if (s_run (m ? &on : &off, plan, big, &small[m][round], &large[m][round],
                       &written[m][round])) {
                fprintf (stderr, "psbench: checkpoint_%s failed\n", m ? "on" : "off");
                failed = 1;
            }
        }
    if (made[0])
        rmdir (made);
    if (failed)
        return 1;
    static const char *modes[] = {"off", "on"};
    double small_median[2], large_median[2], small_paired[ROUNDS_MAX], large_paired[ROUNDS_MAX];
    for (int m = 0; m < 2; m++) {
        small_median[m] = bench_quantile (small[m], (size_t)rounds, 0.5);
        large_median[m] = bench_quantile (large[m], (size_t)rounds, 0.5);
    }
    for (int round = 0; round < rounds; round++) {
        small_paired[round] = small[0][round] > 0 ? small[1][round] / small[0][round] : 0;
        large_paired[round] = large[0][round] > 0 ? large[1][round] / large[0][round] : 0;
    }
    for (int m = 0; m < 2; m++) {
        char name[64];
        snprintf (name, sizeof name, "checkpoint_%s_small", modes[m]);
        bench_figure (name, small_median[m], "msgs/s");
        if (m) {
            bench_ratio (name, "vs_off", small_median[m], "checkpoint_off_small", small_median[0],
                         "msgs/s");
            s_paired (name, small_paired, rounds);
        }
        snprintf (name, sizeof name, "checkpoint_%s_%s", modes[m], big_name);
        bench_figure (name, large_median[m], "ms");
        if (m) {
            bench_ratio (name, "vs_off", large_median[m], "checkpoint_off", large_median[0], "ms");
            s_paired (name, large_paired, rounds);
        }
    }
    bench_figure ("checkpoint_on.written", bench_quantile (written[1], (size_t)rounds, 0.5),
                  "checkpoints");
    fflush (stdout);
    (void)yard;
    return 0;
}
