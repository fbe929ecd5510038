/*  =========================================================================
    case_latency - the smallest push and pull (see case_latency.h)

    Not bench_run: each pair is timed on its own, for its quantiles, by
    one worker on this thread against its own broker.
    ========================================================================= */

#include "case_latency.h"
#include "bench_broker.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_worker.h"

#include <stdio.h>
#include <stdlib.h>

//  One round's two figures beside the raw run just before them
typedef struct {
    double median, p99;         //  psmq's pairs, us
    double raw_median, raw_p99; //  two raw round trips, us; 0 without a yardstick
} round_t;

//  Time count push+pull pairs into us; PS_OK or the failing call's status,
//  named in *what
static int
s_pairs (ps_worker_t *worker, int count, double *us, const char **what)
{
    float grad = 0.001f, param = 0;
    ps_tensor_t grad_tensor = {"latency", &grad, 1};
    ps_tensor_t param_tensor = {"latency", &param, 1};
    for (int i = 0; i < count; i++) {
        double start = bench_now ();
        int status = ps_worker_push (worker, &grad_tensor, 1, 1);
        if (status != PS_OK) {
            *what = "push";
            return status;
        }
        status = ps_worker_pull (worker, &param_tensor, 1);
        if (status != PS_OK) {
            *what = "pull";
            return status;
        }
        if (us)
            us[i] = (bench_now () - start) * 1e6;
    }
    return PS_OK;
}

//  The rounds: a raw run of the yardstick, then the pairs, in turns.
//  rounds[r].raw_median stays 0 when the yardstick did not answer. The
//  CPU seconds of this process and the broker during the timed pairs
//  add up in *cpu (left 0 when they could not be read)
static int
s_rounds (ps_worker_t *worker, const bench_options_t *options, const bench_plan_t *plan,
          const bench_yardstick_t *yard, const bench_broker_t *broker, round_t *rounds, double *us,
          double *cpu, const char **what)
{
    int status = s_pairs (worker, plan->lat_warmup, NULL, what);
    bool cpu_known = true;
    for (int r = 0; status == PS_OK && r < plan->lat_rounds; r++) {
        bench_yard_row_t raw;
        if (bench_yardstick_latency (yard, options, plan->lat_raw_trips, &raw)) {
            rounds[r].raw_median = 2 * raw.a;
            rounds[r].raw_p99 = 2 * raw.b;
        }
        else
            yard = NULL; //  it failed once: the rest go without turns
        double *mine = us + (size_t)r * (size_t)plan->lat_pairs;
        double cpu_start = bench_cpu_seconds (broker, 1);
        status = s_pairs (worker, plan->lat_pairs, mine, what);
        double cpu_end = bench_cpu_seconds (broker, 1);
        if (status != PS_OK)
            break;
        cpu_known &= cpu_start > 0 && cpu_end > cpu_start;
        *cpu = cpu_known ? *cpu + cpu_end - cpu_start : 0;
        //  Quantiles of a copy, past every round's pairs: the pooled
        //  figure reads them all
        double *sorted = us + (size_t)plan->lat_rounds * (size_t)plan->lat_pairs;
        for (int i = 0; i < plan->lat_pairs; i++)
            sorted[i] = mine[i];
        rounds[r].median = bench_quantile (sorted, (size_t)plan->lat_pairs, 0.5);
        rounds[r].p99 = bench_quantile (sorted, (size_t)plan->lat_pairs, 0.99);
        printf ("# latency round %d: p50 %.1f us, p99 %.1f us; 2x tcp_lat %.1f us, p99 %.1f us\n",
                r + 1, rounds[r].median, rounds[r].p99, rounds[r].raw_median, rounds[r].raw_p99);
        fflush (stdout);
    }
    return status;
}

//  The median's (or p99's) ratio, each round against its own raw run;
//  when a round has none, against the run before the cases
static void
s_ratios (const bench_yardstick_t *yard, const round_t *rounds, int count, double pooled, bool p99)
{
    const char *name = p99 ? "latency_push_pull.p99" : "latency_push_pull";
    double ours[BENCH_MAX_TURNS], theirs[BENCH_MAX_TURNS];
    for (int r = 0; r < count; r++) {
        ours[r] = p99 ? rounds[r].p99 : rounds[r].median;
        theirs[r] = p99 ? rounds[r].raw_p99 : rounds[r].raw_median;
    }
    if (bench_ratio_turns (name, "ratio", ours, theirs, (size_t)count,
                           p99 ? "2x tcp_lat p99 of a" : "2x tcp_lat of a", "us"))
        return;
    const bench_yard_row_t *row = bench_yardstick_find (yard, "tcp_lat", 0);
    if (row)
        bench_ratio (name, "ratio", pooled, p99 ? "2x tcp_lat p99" : "2x tcp_lat",
                     2 * (p99 ? row->b : row->a), "us");
}

int
case_latency (const bench_options_t *options, const bench_plan_t *plan,
              const bench_yardstick_t *yard)
{
    bench_broker_t broker;
    if (bench_broker_start (&broker, options, 1, -1, 0, 1))
        return 1;
    int status;
    ps_worker_t *worker = bench_run_connect (options, broker.endpoint, &status);
    bench_plan_t turns = *plan;
    if (turns.lat_rounds > BENCH_MAX_TURNS)
        turns.lat_rounds = BENCH_MAX_TURNS;
    size_t timed = (size_t)turns.lat_rounds * (size_t)turns.lat_pairs;
    //  Every round's pairs, then room to sort one round's
    double *us = malloc ((timed + (size_t)turns.lat_pairs) * sizeof *us);
    round_t rounds[BENCH_MAX_TURNS] = {{0}};
    const char *what = worker ? "init" : "connect";
    if (worker && !us)
        status = PS_ENOMEM;
    else if (worker)
        status = ps_worker_init (worker, "latency", 1, NULL, NULL);
    double cpu = 0;
    if (status == PS_OK)
        status = s_rounds (worker, options, &turns, yard, &broker, rounds, us, &cpu, &what);
    if (status != PS_OK)
        fprintf (stderr, "psbench: latency_push_pull: %s failed: %s (%s)\n", what,
                 ps_strerror (status), worker ? ps_worker_error (worker) : "");
    if (worker)
        ps_worker_close (&worker);
    bench_broker_stop (&broker);
    if (status == PS_OK) {
        double median = bench_quantile (us, timed, 0.5);
        double p99 = bench_quantile (us, timed, 0.99);
        bench_figure ("latency_push_pull", median, "us");
        s_ratios (yard, rounds, turns.lat_rounds, median, false);
        bench_figure ("latency_push_pull.p99", p99, "us");
        s_ratios (yard, rounds, turns.lat_rounds, p99, true);
        //  This process's CPU (the worker's thread and its libzmq
        //  thread) and the broker's, per pair
        if (cpu > 0)
            bench_figure ("latency_push_pull.cpu", cpu * 1e6 / (double)timed, "us");
        fflush (stdout);
    }
    free (us);
    return status == PS_OK ? 0 : 1;
}
