/*  =========================================================================
    bench_run - worker threads timed against brokers started for them

    bench_run starts a group of psbrokers (bench_broker), then threads that
    are workers of this process, each with its own ps_worker_t as the
    library requires, and times repetitions of their loop: push+pull
    steps for a fixed duration (ASP, the pushpull family) or a count of
    BSP clocks calibrated from a warm-up (push, clock, pull; with local
    aggregation each connection first sums the gradients of the workers
    it stands for, as psworker --threads does). The threads and main go
    in lock step through a barrier; the result holds, per repetition, the
    wall time and the steps of all threads, for the cases to turn into
    figures.

    Call from the main thread, one run at a time; the brokers and threads
    are gone when it returns. A failing worker call is said on stderr and
    ends that worker's work; the run then returns -1.
    ========================================================================= */

#ifndef BENCH_RUN_H_INCLUDED
#define BENCH_RUN_H_INCLUDED

#include "bench_options.h"
#include "ps_worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Repetitions kept for a median, at most
#define BENCH_MAX_REPS 32
//  Worker threads of a run, at most
#define BENCH_MAX_WORKERS 16
//  Reply timeout of every worker call, CLOCK included
#define BENCH_WORKER_TIMEOUT_MS 20000

//  What bench_run runs
typedef struct {
    bool bsp;          //  the bsp loop (push, clock, pull), else pushpull (ASP)
    int32_t staleness; //  the bsp loop's: 0 BSP, N > 0 SSP
    bool pipelined;    //  the bsp loop's three requests sent at once
    bool shared;       //  pushpull: every thread on one key, "bench.model"
    bool view;         //  pushpull: pulls read in place (ps_worker_pull_view)
    uint32_t threads;  //  worker threads, each with its own connection
    uint32_t local;    //  workers each connection stands for (local
                       //  aggregation when > 1); 0 counts as 1
    uint32_t brokers;  //  brokers in the group; 0 counts as 1
    size_t bytes;      //  pushpull: each thread's tensor; bsp: the one
                       //  shared key, 0 for the softmax-sized model
    size_t ballast;    //  bytes of a key rank 0 creates and nobody pushes
                       //  or pulls (what a checkpoint writes besides), 0 none
    int wire;          //  their wire dtype, a ps_wire_dtype_t (0: f32)
    //  Called on the main thread before each timed repetition, while the
    //  workers wait at a barrier and the brokers idle: where a case runs
    //  the yardstick in turns with psmq. NULL: nothing.
    void (*before_rep) (void *arg, int rep);
    void *before_rep_arg;
} bench_spec_t;

//  Per repetition: wall seconds and steps of all worker threads
typedef struct {
    double wall[BENCH_MAX_REPS];  //  seconds
    double steps[BENCH_MAX_REPS]; //  summed over the threads
    double sums[BENCH_MAX_REPS];  //  seconds of local summation, summed too
    double cpu[BENCH_MAX_REPS];   //  CPU seconds of this process (its
                                  //  workers and their libzmq threads)
                                  //  and the brokers, 0 unknown
    int reps;                     //  filled
    double checkpoints;           //  written by the brokers meanwhile
    double broker_peak_rss;       //  bytes, the largest of the brokers'
                                  //  peak resident sets (VmHWM), 0 unknown
} bench_result_t;

//  The worker library's log callback for psbench's workers: on stderr,
//  so a worker that cannot join says why
void bench_run_log (void *arg, int level, const char *message);

//  One worker of this thread, alone in its job at endpoint, with options'
//  keys, psbench's timeouts and log: connected, or NULL with *status
ps_worker_t *bench_run_connect (const bench_options_t *options, const char *endpoint, int *status);

//  Run spec's threads against a broker or group started for them, as
//  options and plan say; 0, or -1 when the brokers or a worker failed
int bench_run (const bench_options_t *options, const bench_plan_t *plan, const bench_spec_t *spec,
               bench_result_t *result);

#endif
