/*  =========================================================================
    psbench - how close psmq comes to this machine's limits

    A benchmark in the style of libzmq's perf/ programs: a fixed usage
    line and one `name: value unit` line per figure on stdout, so that
    scripts can parse it. Each figure is followed, when the yardstick was
    measured, by `name.ratio: R (vs case value unit)`, R being psmq's
    figure divided by the yardstick's in the figure's own unit (ms and us:
    lower is better; GB/s and clocks/s: higher is better).

    This file is main alone: the command line (bench_options), the
    yardstick run first, in this run (bench_yardstick), then each case
    chosen, in a fixed order (case_*.c). The cases start psbroker
    processes (bench_broker) and time worker threads of this process
    against them (bench_run); the aggregation case drives ps_store
    in-process instead. Timed cases run repetitions and report the
    median; every wait is bounded, and a signal kills every child we
    started (ps_process) before we exit.
    ========================================================================= */

#include "bench_options.h"
#include "bench_yardstick.h"
#include "case_aggregation.h"
#include "case_bsp.h"
#include "case_checkpoint.h"
#include "case_curve.h"
#include "case_group.h"
#include "case_latency.h"
#include "case_link.h"
#include "case_localagg.h"
#include "case_many.h"
#include "case_memory.h"
#include "case_pushpull.h"
#include "case_tap.h"
#include "case_training.h"
#include "ps_malloc.h"
#include "ps_process.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

//  The cases in the order they run: each prints its figures and returns
//  how many of them failed
static const struct {
    unsigned bit;
    bench_case_fn *run;
} s_cases[] = {{BENCH_CASE_PUSHPULL, case_pushpull},
               {BENCH_CASE_PUSHPULL4, case_pushpull4},
               {BENCH_CASE_LATENCY, case_latency},
               {BENCH_CASE_AGGREGATION, case_aggregation},
               {BENCH_CASE_BSP, case_bsp},
               {BENCH_CASE_TAP, case_tap},
               {BENCH_CASE_GROUP, case_group},
               {BENCH_CASE_LOCALAGG, case_localagg},
               {BENCH_CASE_CHECKPOINT, case_checkpoint},
               {BENCH_CASE_CURVE, case_curve},
               {BENCH_CASE_MEMORY, case_memory},
               {BENCH_CASE_MANY, case_many},
               {BENCH_CASE_TRAINING, case_training},
               {BENCH_CASE_LINK, case_link}};

//  Interrupted: no broker or yardstick server may outlive us
static void
s_on_signal (int signal_number)
{
    ps_process_kill_all ();
    _exit (128 + signal_number);
}

int
main (int argc, char *argv[])
{
    //  As psworker does: the library is measured as our programs run it
    ps_malloc_keep_mapped ();
    bench_options_t options;
    int exit_code;
    if (!bench_options_parse (&options, argc, argv, &exit_code))
        return exit_code;

    setvbuf (stdout, NULL, _IOLBF, 0);
    signal (SIGPIPE, SIG_IGN);
    struct sigaction action = {.sa_handler = s_on_signal};
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);

    bench_plan_t plan;
    bench_plan_init (&plan, &options);
    double load[3] = {0};
    getloadavg (load, 3);
    const char *where = options.cases == BENCH_CASE_LINK  ? "network namespaces"
                        : options.cases & BENCH_CASE_LINK ? "loopback and network namespaces"
                                                          : "loopback";
    printf ("# psbench psmq %s; %s; broker %s\n", options.quick ? "quick" : "full", where,
            options.broker_bin);
    printf ("# load average %.2f %.2f %.2f; %ld cpus\n", load[0], load[1], load[2],
            sysconf (_SC_NPROCESSORS_ONLN));
    printf ("# ratio = psmq / yardstick in the figure's unit (ms, us: lower is better;"
            " GB/s, clocks/s: higher is better)\n");

    //  --curve: keys for every broker and worker of the run
    bench_curve_keys_t keys;
    if (options.curve) {
        if (bench_curve_keys_make (&keys))
            return 1;
        bench_curve_keys_use (&options, &keys);
        printf ("# every broker and worker uses CURVE keys (--curve)\n");
    }
    //  The yardstick first, in this run, for the cases that need it
    bench_yardstick_t *yard = bench_yardstick_new (&options, &plan);
    int failures = 0;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++)
        if (options.cases & s_cases[i].bit)
            failures += s_cases[i].run (&options, &plan, yard);
    bench_yardstick_destroy (&yard);
    if (options.curve)
        bench_curve_keys_remove (&keys);
    if (failures) {
        fprintf (stderr, "psbench: %d case%s failed\n", failures, failures > 1 ? "s" : "");
        return 1;
    }
    return 0;
}
