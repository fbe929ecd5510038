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

int
case_latency (const bench_options_t *options, const bench_plan_t *plan,
              const bench_yardstick_t *yard)
{
    bench_broker_t broker;
    if (bench_broker_start (&broker, options, 1, -1, 0, 1))
        return 1;
    int status;
    ps_worker_t *worker = bench_run_connect (options, broker.endpoint, &status);
    double *us = malloc ((size_t)plan->lat_pairs * sizeof *us);
    float grad = 0.001f, param = 0;
    ps_tensor_t grad_tensor = {"latency", &grad, 1};
    ps_tensor_t param_tensor = {"latency", &param, 1};
    const char *what = worker ? "init" : "connect";
    if (worker && !us)
        status = PS_ENOMEM;
    else if (worker)
        status = ps_worker_init (worker, "latency", 1, NULL, NULL);
    for (int i = 0; status == PS_OK && i < plan->lat_warmup + plan->lat_pairs; i++) {
        double start = bench_now ();
        status = ps_worker_push (worker, &grad_tensor, 1, 1);
        what = "push";
        if (status == PS_OK) {
            status = ps_worker_pull (worker, &param_tensor, 1);
            what = "pull";
        }
        if (i >= plan->lat_warmup)
            us[i - plan->lat_warmup] = (bench_now () - start) * 1e6;
    }
    if (status != PS_OK)
        fprintf (stderr, "psbench: latency_push_pull: %s failed: %s (%s)\n", what,
                 ps_strerror (status), worker ? ps_worker_error (worker) : "");
    if (worker)
        ps_worker_close (&worker);
    bench_broker_stop (&broker);
    if (status != PS_OK) {
        free (us);
        return 1;
    }
    double median = bench_quantile (us, (size_t)plan->lat_pairs, 0.5);
    double p99 = bench_quantile (us, (size_t)plan->lat_pairs, 0.99);
    free (us);
    bench_figure ("latency_push_pull", median, "us");
    const bench_yard_row_t *row = bench_yardstick_find (yard, "tcp_lat", 0);
    if (row)
        bench_ratio ("latency_push_pull", "ratio", median, "2x tcp_lat", 2 * row->a, "us");
    bench_figure ("latency_push_pull.p99", p99, "us");
    if (row)
        bench_ratio ("latency_push_pull.p99", "ratio", p99, "2x tcp_lat p99", 2 * row->b, "us");
    fflush (stdout);
    return 0;
}
