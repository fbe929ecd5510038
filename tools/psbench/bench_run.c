/*  =========================================================================
    bench_run - worker threads timed against brokers (see bench_run.h)

    Every wait is bounded: worker calls by their timeouts, brokers by
    bench_broker's deadlines. A worker whose call fails closes its
    connection at once (BYE), so that BSP peers do not wait for it, and
    the others skip their work through the abort flag: the barrier still
    counts on every thread, so none may leave the loop early.

    Buffers are allocated and touched before any timing, and the library
    is measured as our programs run it (main calls ps_malloc_keep_mapped).
    ========================================================================= */

#include "bench_run.h"
#include "bench_broker.h"
#include "bench_figure.h"
#include "ps_worker.h"

#include <assert.h>
#include <czmq.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  What one worker thread does, and what it found
typedef struct bench_s bench_t;

typedef struct {
    bench_t *bench;                 //  the shared setup
    uint32_t rank;                  //  its first rank (of bench->local)
    char key[32];                   //  its tensor (pushpull)
    bool failed;                    //  a call failed: it does no more work
    uint64_t steps[BENCH_MAX_REPS]; //  steps done in each repetition
    double summing;                 //  seconds in s_local_sum, this repetition
    double sums[BENCH_MAX_REPS];    //  those seconds, each repetition
} bench_worker_t;

struct bench_s {
    const char *endpoint;                      //  the broker, or the group's list
    const char *curve_secret;                  //  the workers' CURVE keys, or NULL
    const char *broker_key;                    //  the brokers' public key, or NULL
    uint32_t threads;                          //  worker threads
    uint32_t local;                            //  workers per thread's connection
    bool bsp;                                  //  the bsp loop, else pushpull
    bool pipelined;                            //  the bsp loop's requests at once
    bool shared;                               //  pushpull on one key
    bool view;                                 //  pushpull's pulls read in place
    size_t count;                              //  floats per tensor; bsp: 0 softmax
    size_t ballast;                            //  floats of rank 0's ballast key
    ps_wire_dtype_t wire;                      //  the tensors' wire dtype
    int reps;                                  //  timed repetitions
    int warmup;                                //  untimed steps before them
    pthread_barrier_t barrier;                 //  workers and main, in lock step
    atomic_bool stop;                          //  pushpull: end of a repetition
    atomic_bool abort;                         //  some worker failed: skip the work
    atomic_long clocks;                        //  bsp: clocks to run in the repetition
    bench_worker_t workers[BENCH_MAX_WORKERS]; //  one per thread
};

//  A thread's tensors: what it pushes, what it pulls into and, with local
//  aggregation, the gradients of the workers it stands for
#define BENCH_TENSORS 2

typedef struct {
    ps_tensor_t grads[BENCH_TENSORS];  //  pushed
    ps_tensor_t params[BENCH_TENSORS]; //  pulled into
    float *local[BENCH_TENSORS];       //  local > 1: local gradients, back to back
    size_t ntensors;                   //  tensors used
    ps_view_t *view;                   //  pulled into instead, when the run says
} bench_buffers_t;

static bool
s_ok (ps_worker_t *worker, bench_worker_t *self, int status, const char *what)
{
    if (status == PS_OK)
        return true;
    fprintf (stderr, "psbench: worker %u: %s failed: %s (%s)\n", self->rank, what,
             ps_strerror (status), worker ? ps_worker_error (worker) : "");
    self->failed = true;
    return false;
}

//  A pushpull step: push the gradient, pull the parameters (into the
//  buffers, or read in place into the view), both waited
static bool
s_pushpull_step (ps_worker_t *worker, bench_worker_t *self, bench_buffers_t *buffers)
{
    if (!s_ok (worker, self, ps_worker_push (worker, buffers->grads, 1, 1), "push"))
        return false;
    if (buffers->view)
        return s_ok (worker, self, ps_worker_pull_view (worker, buffers->params, 1, buffers->view),
                     "pull into a view");
    return s_ok (worker, self, ps_worker_pull (worker, buffers->params, 1), "pull");
}

//  Local aggregation's own work, timed with the rest: the local workers'
//  gradients summed into the one that is pushed, in local - 1 passes over
//  memory, as psworker --threads does (its first thread adds the others'
//  gradients to its own in turn)
static void
s_local_sum (uint32_t local, bench_buffers_t *buffers)
{
    for (size_t i = 0; i < buffers->ntensors; i++) {
        size_t count = buffers->grads[i].count;
        float *sum = buffers->grads[i].data;
        const float *first = buffers->local[i], *second = first + count;
        for (size_t j = 0; j < count; j++)
            sum[j] = first[j] + second[j];
        for (uint32_t t = 2; t < local; t++) {
            const float *grad = first + t * count;
            for (size_t j = 0; j < count; j++)
                sum[j] += grad[j];
        }
    }
}

//  The bsp loop's push that finishes the clock and pull sent back to
//  back, then waited for: PROTOCOL.md's pipelining (the pull is answered
//  with the clock's step), what a training loop does when it has nothing
//  to compute between them
static bool
s_bsp_pipelined (ps_worker_t *worker, bench_worker_t *self, bench_buffers_t *buffers,
                 uint32_t local)
{
    ps_ticket_t clock, pull;
    return s_ok (worker, self,
                 ps_worker_push_clock_async (worker, buffers->grads, buffers->ntensors, local,
                                             &clock),
                 "push and clock") &&
           s_ok (worker, self,
                 ps_worker_pull_async (worker, buffers->params, buffers->ntensors, &pull),
                 "pull") &&
           s_ok (worker, self, ps_worker_wait (worker, clock, -1), "push and clock") &&
           s_ok (worker, self, ps_worker_wait (worker, pull, -1), "pull");
}

//  The bsp loop's clock: (with local aggregation, sum the local
//  gradients,) push every key and finish the clock (one round trip),
//  pull every key
static bool
s_bsp_clock (ps_worker_t *worker, bench_worker_t *self, bench_buffers_t *buffers)
{
    uint32_t local = self->bench->local;
    if (local > 1) {
        double start = bench_now ();
        s_local_sum (local, buffers);
        self->summing += bench_now () - start;
    }
    if (self->bench->pipelined)
        return s_bsp_pipelined (worker, self, buffers, local);
    return s_ok (worker, self,
                 ps_worker_push_clock (worker, buffers->grads, buffers->ntensors, local),
                 "push and clock") &&
           s_ok (worker, self, ps_worker_pull (worker, buffers->params, buffers->ntensors), "pull");
}

static bool
s_bench_step (ps_worker_t *worker, bench_worker_t *self, bench_buffers_t *buffers)
{
    return self->bench->bsp ? s_bsp_clock (worker, self, buffers)
                            : s_pushpull_step (worker, self, buffers);
}

//  Softmax regression on 784 pixels and 10 classes: weights and biases
#define BSP_WEIGHTS 7850
#define BSP_BIASES 10

//  Allocate and touch a thread's buffers, before any timing; false when
//  out of memory (what was allocated is left for s_buffers_free)
static bool
s_buffers_new (const bench_t *bench, const bench_worker_t *self, bench_buffers_t *buffers)
{
    memset (buffers, 0, sizeof *buffers);
    size_t sizes[BENCH_TENSORS] = {bench->count, 0};
    const char *keys[BENCH_TENSORS] = {self->key, NULL};
    buffers->ntensors = 1;
    if (bench->bsp && bench->count == 0) {
        sizes[0] = BSP_WEIGHTS;
        sizes[1] = BSP_BIASES;
        keys[0] = "softmax.w";
        keys[1] = "softmax.b";
        buffers->ntensors = 2;
    }
    else if (bench->bsp || bench->shared)
        keys[0] = "bench.model"; //  one key that every worker pushes to
    for (size_t i = 0; i < buffers->ntensors; i++) {
        size_t count = sizes[i];
        float *grad = malloc (count * sizeof (float));
        float *param = calloc (count, sizeof (float));
        float *local = bench->local > 1 ? malloc (bench->local * count * sizeof (float)) : NULL;
        buffers->grads[i] = (ps_tensor_t){keys[i], grad, grad ? count : 0};
        buffers->params[i] = (ps_tensor_t){keys[i], param, param ? count : 0};
        buffers->local[i] = local;
        if (!grad || !param || (bench->local > 1 && !local))
            return false;
        for (size_t j = 0; j < count; j++)
            grad[j] = 1e-6f * (float)(j % 1000);
        for (size_t j = 0; local && j < bench->local * count; j++)
            local[j] = 1e-6f * (float)(j % 1000);
    }
    if (bench->view)
        buffers->view = ps_view_new ();
    return !bench->view || buffers->view;
}

static void
s_buffers_free (bench_buffers_t *buffers)
{
    for (size_t i = 0; i < BENCH_TENSORS; i++) {
        free (buffers->grads[i].data);
        free (buffers->params[i].data);
        free (buffers->local[i]);
    }
    ps_view_destroy (&buffers->view);
    memset (buffers, 0, sizeof *buffers);
}

void
bench_run_log (void *arg, int level, const char *message)
{
    fprintf (stderr, "psbench: %s\n", message);
}

ps_worker_t *
bench_run_connect (const bench_options_t *options, const char *endpoint, int *status)
{
    ps_worker_options_t worker_options;
    ps_worker_options_init (&worker_options);
    worker_options.broker = endpoint;
    worker_options.timeout_ms = BENCH_WORKER_TIMEOUT_MS;
    worker_options.log = bench_run_log;
    worker_options.curve_secret = options->curve_secret;
    worker_options.broker_key = options->broker_key;
    return ps_worker_connect (&worker_options, status);
}

static void *
s_worker_main (void *arg)
{
    bench_worker_t *self = arg;
    bench_t *bench = self->bench;
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = bench->endpoint;
    options.rank = self->rank;
    options.world_size = bench->threads * bench->local;
    options.local_workers = bench->local;
    options.timeout_ms = BENCH_WORKER_TIMEOUT_MS;
    options.clock_timeout_ms = BENCH_WORKER_TIMEOUT_MS;
    options.curve_secret = bench->curve_secret;
    options.broker_key = bench->broker_key;
    options.log = bench_run_log;
    int status;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    if (!worker)
        s_ok (NULL, self, status, "connect");

    bench_buffers_t buffers;
    if (!s_buffers_new (bench, self, &buffers)) {
        fprintf (stderr, "psbench: worker %u: out of memory\n", self->rank);
        self->failed = true;
    }
    for (size_t i = 0; i < buffers.ntensors && !self->failed; i++)
        s_ok (worker, self,
              ps_worker_init_wire (worker, buffers.grads[i].key, buffers.grads[i].count, NULL, NULL,
                                   bench->wire),
              "init");
    if (self->rank == 0 && bench->ballast && !self->failed)
        s_ok (worker, self, ps_worker_init (worker, "bench.ballast", bench->ballast, NULL, NULL),
              "init");
    if (self->failed && worker)
        ps_worker_close (&worker); //  BYE: BSP peers do not wait for us

    //  Warm-up (for bsp, main times it to choose the clock count)
    pthread_barrier_wait (&bench->barrier);
    for (int i = 0; i < bench->warmup && !self->failed && !atomic_load (&bench->abort); i++)
        s_bench_step (worker, self, &buffers);
    if (self->failed && worker)
        ps_worker_close (&worker);
    pthread_barrier_wait (&bench->barrier);

    for (int rep = 0; rep < bench->reps; rep++) {
        pthread_barrier_wait (&bench->barrier);
        uint64_t steps = 0;
        self->summing = 0;
        if (bench->bsp) {
            long clocks = atomic_load (&bench->clocks);
            for (long i = 0; i < clocks && !self->failed && !atomic_load (&bench->abort); i++)
                if (s_bench_step (worker, self, &buffers))
                    steps++;
        }
        else
            while (!self->failed && !atomic_load (&bench->abort) && !atomic_load (&bench->stop))
                if (s_bench_step (worker, self, &buffers))
                    steps++;
        self->steps[rep] = steps;
        self->sums[rep] = self->summing;
        if (self->failed && worker)
            ps_worker_close (&worker);
        pthread_barrier_wait (&bench->barrier);
    }
    if (worker)
        ps_worker_close (&worker);
    s_buffers_free (&buffers);
    return NULL;
}

int
bench_run (const bench_options_t *options, const bench_plan_t *plan, const bench_spec_t *spec,
           bench_result_t *result)
{
    uint32_t local = spec->local > 1 ? spec->local : 1;
    uint32_t brokers = spec->brokers > 1 ? spec->brokers : 1;
    assert (spec->threads >= 1 && spec->threads <= BENCH_MAX_WORKERS);
    bench_group_t group;
    if (bench_group_start (&group, options, brokers, spec->threads * local,
                           spec->bsp ? spec->staleness : -1))
        return -1;
    bench_t *bench = calloc (1, sizeof *bench);
    if (!bench) {
        bench_group_stop (&group);
        return -1;
    }
    bool bsp = spec->bsp;
    bench->endpoint = group.endpoints;
    bench->curve_secret = options->curve_secret;
    bench->broker_key = options->broker_key;
    bench->threads = spec->threads;
    bench->local = local;
    bench->bsp = bsp;
    bench->pipelined = spec->pipelined;
    bench->shared = spec->shared;
    bench->view = spec->view;
    bench->count = spec->bytes / sizeof (float);
    bench->ballast = spec->ballast / sizeof (float);
    bench->wire = (ps_wire_dtype_t)spec->wire;
    bench->reps = plan->reps;
    bench->warmup = bsp                          ? plan->bsp_calibrate
                    : spec->bytes >= (16u << 20) ? 2
                    : options->quick             ? 5
                                                 : 20;
    atomic_init (&bench->stop, false);
    atomic_init (&bench->abort, false);
    atomic_init (&bench->clocks, 0);
    pthread_barrier_init (&bench->barrier, NULL, spec->threads + 1);
    pthread_t threads[BENCH_MAX_WORKERS];
    for (uint32_t i = 0; i < spec->threads; i++) {
        bench_worker_t *worker = &bench->workers[i];
        worker->bench = bench;
        worker->rank = i * local;
        snprintf (worker->key, sizeof worker->key, "bench.%u", i);
        if (pthread_create (&threads[i], NULL, s_worker_main, worker)) {
            //  The barrier counts on every thread: no way to go on
            fprintf (stderr, "psbench: cannot start a worker thread\n");
            bench_group_stop (&group);
            exit (1);
        }
    }
    //  Workers connected and initialised; then the warm-up
    pthread_barrier_wait (&bench->barrier);
    double start = bench_now ();
    pthread_barrier_wait (&bench->barrier);
    double warmup = bench_now () - start;
    bool failed = false;
    for (uint32_t i = 0; i < spec->threads; i++)
        failed |= bench->workers[i].failed;
    atomic_store (&bench->abort, failed);
    if (bsp) {
        double per_clock = warmup / (plan->bsp_calibrate > 0 ? plan->bsp_calibrate : 1);
        long clocks = per_clock > 0 ? (long)(plan->bsp_seconds / per_clock) : 100;
        atomic_store (&bench->clocks, clocks < 10 ? 10 : clocks > 1000000 ? 1000000 : clocks);
    }
    double rep_seconds = plan->rep_seconds * (spec->bytes >= (16u << 20) ? 3 : 1);
    for (int rep = 0; rep < plan->reps; rep++) {
        atomic_store (&bench->stop, false);
        if (spec->before_rep && !failed)
            spec->before_rep (spec->before_rep_arg, rep);
        //  Read while the workers wait at the barrier and the brokers
        //  idle, so that the reading takes nothing from the timed steps
        double cpu_start = bench_cpu_seconds (group.brokers, group.size);
        pthread_barrier_wait (&bench->barrier);
        start = bench_now ();
        if (!bsp && !failed)
            zclock_sleep ((int)lround (rep_seconds * 1000));
        atomic_store (&bench->stop, true);
        pthread_barrier_wait (&bench->barrier);
        result->wall[rep] = bench_now () - start;
        double cpu_end = bench_cpu_seconds (group.brokers, group.size);
        result->cpu[rep] = cpu_start > 0 && cpu_end > cpu_start ? cpu_end - cpu_start : 0;
        result->steps[rep] = 0;
        result->sums[rep] = 0;
        for (uint32_t i = 0; i < spec->threads; i++) {
            result->steps[rep] += (double)bench->workers[i].steps[rep];
            result->sums[rep] += bench->workers[i].sums[rep];
            failed |= bench->workers[i].failed;
        }
        atomic_store (&bench->abort, failed);
    }
    result->reps = plan->reps;
    for (uint32_t i = 0; i < spec->threads; i++)
        pthread_join (threads[i], NULL);
    result->checkpoints = 0;
    result->broker_peak_rss = 0;
    for (uint32_t i = 0; i < group.size; i++) {
        result->checkpoints += (double)bench_broker_checkpoints (&group.brokers[i]);
        double peak = (double)bench_broker_peak_rss (&group.brokers[i]);
        if (peak > result->broker_peak_rss)
            result->broker_peak_rss = peak;
    }
    pthread_barrier_destroy (&bench->barrier);
    free (bench);
    bench_group_stop (&group);
    return failed ? -1 : 0;
}
