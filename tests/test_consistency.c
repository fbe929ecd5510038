/*  =========================================================================
    test_consistency - the consistency models end to end: BSP, SSP, ASP

    Several worker threads against an in-process broker, or a group of
    them, over loopback TCP. The first test shows the bound: under SSP with
    staleness 3 a worker runs three clocks ahead of an idle one, and its
    fourth clock waits.

    BSP must equal one process applying the mean gradient each step. The
    gradients are multiples of 1/64 of moderate size, so their sum is exact
    in float whatever order they arrive in, and the comparison tests the
    protocol, not rounding. SSP must never let a worker run more than S
    clocks ahead of the slowest, and must let it run exactly S ahead. ASP
    must never wait. A pull sent right behind a clock sees that clock's
    step.

    usage: build/test_consistency [--filter 'consistency/<test>'] [--verbose]
    ========================================================================= */

#include "ps_codec.h"
#include "ps_optim.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 8

// ---------------------------------------------------------------- usage

Test (consistency, ssp_with_idle_worker_blocks_at_the_bound, .timeout = 30)
{
    //  SSP with staleness 3: a broker for two workers, rank 0 that works
    //  and rank 1 that joins and never clocks
    ps_test_job_t job = ps_test_job (2, 3, 0);
    ps_worker_t *worker = job.worker;
    ps_worker_t *idle = ps_test_worker (job.endpoint, 1, 2, PS_TEST_WAIT_MS);
    cr_assert (idle);
    //  Clocks 1..3 are within the bound of an idle rank at 0: each returns
    //  at once. Clock 4 is not: it is still waiting after a second (the
    //  timeout of this one wait, not of the worker, so that a loaded
    //  machine cannot time the first three out)
    for (int c = 0; c < 3; c++)
        cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    ps_ticket_t clock;
    cr_assert_eq (ps_worker_clock_async (worker, &clock), PS_OK);
    cr_assert_eq (ps_worker_wait (worker, clock, 1000), PS_ETIMEOUT);
    ps_worker_close (&idle);
    ps_test_job_stop (&job);
}

// ------------------------------------------------------------------ BSP

#define BSP_WORKERS 4
#define BSP_STEPS 12
#define SMALL 37
#define LARGE 300000 //  more than one 1 MB slice on the wire

//  Worker r's gradient at parameters p and step: depends on both, exactly
//  representable, different per rank
static void
s_gradient (uint32_t rank, int step, const float *p, float *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float target = (float)((i * 7 + rank * 3 + step) % 11) - 5.0f;
        g[i] = roundf ((p[i] - target) * 64.0f) / 64.0f;
    }
}

typedef struct {
    const char *endpoint;
    uint32_t rank;   //  the process's first rank
    uint32_t weight; //  workers it stands for (local aggregation)
    bool push_clock; //  finish each clock with its push (one round trip)
    int status;
} bsp_args_t;

//  The summed gradient of ranks first .. first+weight-1 (exact in float)
static void
s_local_gradient (uint32_t first, uint32_t weight, int step, const float *p, float *g,
                  float *scratch, size_t n)
{
    s_gradient (first, step, p, g, n);
    for (uint32_t rank = first + 1; rank < first + weight; rank++) {
        s_gradient (rank, step, p, scratch, n);
        for (size_t i = 0; i < n; i++)
            g[i] += scratch[i];
    }
}

static void *
s_bsp_worker (void *arg)
{
    bsp_args_t *args = arg;
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = args->endpoint;
    options.rank = args->rank;
    options.world_size = BSP_WORKERS;
    options.local_workers = args->weight;
    options.timeout_ms = options.clock_timeout_ms = 10000;
    ps_worker_t *worker = ps_worker_connect (&options, NULL);
    if (!worker) {
        args->status = -1;
        return NULL;
    }
    float *small = calloc (SMALL, sizeof (float));
    float *large = calloc (LARGE, sizeof (float));
    float *small_grad = calloc (SMALL, sizeof (float));
    float *large_grad = calloc (LARGE, sizeof (float));
    float *scratch = calloc (LARGE, sizeof (float));
    ps_optim_settings_t adam = {.kind = PS_OPTIMIZER_ADAM, .lr = 0.05f};
    ps_optim_settings_t momentum = {.kind = PS_OPTIMIZER_MOMENTUM, .lr = 0.1f, .momentum = 0.5f};
    int status = ps_worker_init (worker, "small", SMALL, NULL, &adam);
    if (!status)
        status = ps_worker_init (worker, "large", LARGE, NULL, &momentum);
    ps_tensor_t params[2] = {{"small", small, SMALL}, {"large", large, LARGE}};
    ps_tensor_t grads[2] = {{"small", small_grad, SMALL}, {"large", large_grad, LARGE}};
    for (int step = 0; step < BSP_STEPS && !status; step++) {
        status = ps_worker_pull (worker, params, 2);
        if (status)
            break;
        s_local_gradient (args->rank, args->weight, step, small, small_grad, scratch, SMALL);
        s_local_gradient (args->rank, args->weight, step, large, large_grad, scratch, LARGE);
        if (args->push_clock)
            status = ps_worker_push_clock (worker, grads, 2, args->weight);
        else if (!(status = ps_worker_push (worker, grads, 2, args->weight)))
            status = ps_worker_clock (worker);
    }
    args->status = status;
    free (small);
    free (large);
    free (small_grad);
    free (large_grad);
    free (scratch);
    ps_worker_close (&worker);
    return NULL;
}

//  One process doing the same steps with the mean gradient
static void
s_reference (const ps_optim_config_t *config, size_t n, float *p)
{
    size_t slots = ps_optim_state_slots (config->kind);
    float *state0 = slots > 0 ? calloc (n, sizeof (float)) : NULL;
    float *state1 = slots > 1 ? calloc (n, sizeof (float)) : NULL;
    float *sum = calloc (n, sizeof (float));
    float *g = calloc (n, sizeof (float));
    for (int step = 0; step < BSP_STEPS; step++) {
        memset (sum, 0, n * sizeof (float));
        for (uint32_t rank = 0; rank < BSP_WORKERS; rank++) {
            s_gradient (rank, step, p, g, n);
            for (size_t i = 0; i < n; i++)
                sum[i] += g[i];
        }
        ps_optim_apply (config, p, p, sum, 1.0f / BSP_WORKERS, state0, state1, n, step + 1);
    }
    free (state0);
    free (state1);
    free (sum);
    free (g);
}

//  Run processes (first rank, weight) to the end of their BSP steps against
//  a group of shards brokers, then compare the group's parameters with the
//  single-process reference. push_clock: every other process finishes its
//  clocks with its push
static void
s_run_and_compare (const uint32_t (*processes)[2], size_t nprocesses, uint32_t shards,
                   bool push_clock)
{
    char endpoint[512];
    ps_broker_t *brokers[4];
    cr_assert_eq (ps_test_group (shards, BSP_WORKERS, 0, brokers, endpoint, sizeof endpoint), 0);
    pthread_t threads[BSP_WORKERS];
    bsp_args_t args[BSP_WORKERS];
    for (size_t i = 0; i < nprocesses; i++) {
        args[i] =
            (bsp_args_t){endpoint, processes[i][0], processes[i][1], push_clock && i % 2 == 0, -99};
        pthread_create (&threads[i], NULL, s_bsp_worker, &args[i]);
    }
    for (size_t i = 0; i < nprocesses; i++) {
        pthread_join (threads[i], NULL);
        cr_assert_eq (args[i].status, PS_OK, "process %zu: %s", i, ps_strerror (args[i].status));
    }

    //  Read the broker's result with a fresh worker (rank 0 rejoins)
    ps_worker_t *reader = ps_test_worker (endpoint, 0, BSP_WORKERS, 10000);
    cr_assert (reader);
    float *small = calloc (SMALL, sizeof (float));
    float *large = calloc (LARGE, sizeof (float));
    ps_tensor_t params[2] = {{"small", small, SMALL}, {"large", large, LARGE}};
    cr_assert_eq (ps_worker_pull (reader, params, 2), PS_OK);

    ps_optim_config_t adam, momentum;
    ps_optim_config_defaults (&adam);
    adam.kind = PS_OPTIM_ADAM;
    adam.lr = 0.05f;
    ps_optim_config_defaults (&momentum);
    momentum.kind = PS_OPTIM_MOMENTUM;
    momentum.lr = 0.1f;
    momentum.momentum = 0.5f;
    float *small_ref = calloc (SMALL, sizeof (float));
    float *large_ref = calloc (LARGE, sizeof (float));
    s_reference (&adam, SMALL, small_ref);
    s_reference (&momentum, LARGE, large_ref);

    double moved = 0;
    for (size_t i = 0; i < SMALL; i++) {
        cr_assert (fabsf (small[i] - small_ref[i]) <= 1e-6f, "small[%zu] %.9g, reference %.9g", i,
                   small[i], small_ref[i]);
        moved += fabsf (small_ref[i]);
    }
    for (size_t i = 0; i < LARGE; i++)
        if (fabsf (large[i] - large_ref[i]) > 1e-6f)
            cr_assert_fail ("large[%zu] %.9g, reference %.9g", i, large[i], large_ref[i]);
    cr_assert (moved > 1.0, "the parameters must have moved for the test to mean anything");
    free (small);
    free (large);
    free (small_ref);
    free (large_ref);
    cr_assert_eq (ps_worker_shards (reader), shards);
    //  Every broker of the group took part: each holds a slice of "large"
    for (uint32_t shard = 0; shard < shards; shard++) {
        char *info = NULL;
        cr_assert_eq (ps_worker_info_shard (reader, shard, &info), PS_OK);
        cr_assert_gt (ps_test_json_number (info, "optimizer_steps", false), 0, "shard %u: %s",
                      shard, info);
        free (info);
    }
    ps_worker_close (&reader);
    for (uint32_t shard = 0; shard < shards; shard++)
        ps_broker_destroy (&brokers[shard]);
}

Test (consistency, bsp_equals_single_process_reference, .timeout = 60)
{
    const uint32_t processes[][2] = {{0, 1}, {1, 1}, {2, 1}, {3, 1}};
    s_run_and_compare (processes, 4, 1, false);
}

Test (consistency, bsp_with_pushes_that_finish_clocks_equals_the_reference, .timeout = 60)
{
    //  "large" goes in parts, the last of which finishes the clock
    const uint32_t processes[][2] = {{0, 1}, {1, 1}, {2, 1}, {3, 1}};
    s_run_and_compare (processes, 4, 1, true);
}

Test (consistency, bsp_over_three_brokers_equals_single_process_reference, .timeout = 60)
{
    //  "large" is sliced over the three brokers, "small" lives whole on one
    const uint32_t processes[][2] = {{0, 1}, {1, 1}, {2, 1}, {3, 1}};
    s_run_and_compare (processes, 4, 3, false);
}

Test (consistency, bsp_with_pushes_that_finish_clocks_over_three_brokers, .timeout = 60)
{
    const uint32_t processes[][2] = {{0, 1}, {1, 1}, {2, 1}, {3, 1}};
    s_run_and_compare (processes, 4, 3, true);
}

Test (consistency, local_aggregation_counts_workers_not_processes, .timeout = 60)
{
    //  One process for ranks 0-1 pushing their summed gradient with a count
    //  of 2, beside two single workers: the same as four single workers
    const uint32_t processes[][2] = {{0, 2}, {2, 1}, {3, 1}};
    s_run_and_compare (processes, 3, 1, false);
}

Test (consistency, local_aggregation_over_two_brokers, .timeout = 60)
{
    const uint32_t processes[][2] = {{0, 3}, {3, 1}};
    s_run_and_compare (processes, 2, 2, true);
}

// ------------------------------------------------------------------ SSP

#define SSP_CLOCKS 12

typedef struct {
    const char *endpoint;
    uint32_t rank;
    uint32_t world;
    int sleep_ms;           //  per clock: the straggler sleeps
    int clocks;             //  how many clocks to run
    atomic_llong *finished; //  shared: clocks each rank has sent
    int staleness;          //  the bound to check
    int status;
    long long max_lead;      //  furthest ahead of the slowest seen
    int violations;          //  returns where the bound was broken
    long long worst_wait_ms; //  longest single clock call
} ssp_args_t;

static long long
s_min_finished (ssp_args_t *args)
{
    long long min = LLONG_MAX;
    for (uint32_t r = 0; r < args->world; r++) {
        long long value = atomic_load (&args->finished[r]);
        if (value < min)
            min = value;
    }
    return min;
}

static void *
s_ssp_worker (void *arg)
{
    ssp_args_t *args = arg;
    ps_worker_t *worker = ps_test_worker (args->endpoint, args->rank, args->world, 10000);
    if (!worker) {
        args->status = -1;
        return NULL;
    }
    int status = PS_OK;
    for (int c = 0; c < args->clocks && !status; c++) {
        if (args->sleep_ms)
            usleep (args->sleep_ms * 1000);
        //  Count the clock as finished before the broker hears of it, so
        //  the shared view is never behind the broker's
        atomic_store (&args->finished[args->rank], c + 1);
        int64_t before = zclock_mono ();
        status = ps_worker_clock (worker);
        int64_t waited = zclock_mono () - before;
        if (waited > args->worst_wait_ms)
            args->worst_wait_ms = waited;
        if (status)
            break;
        long long lead = (c + 1) - s_min_finished (args);
        if (lead > args->max_lead)
            args->max_lead = lead;
        if (args->staleness >= 0 && lead > args->staleness)
            args->violations++;
    }
    args->status = status;
    ps_worker_close (&worker);
    return NULL;
}

static void
s_run_clocks (const char *endpoint, uint32_t world, int staleness, int slow_ms, int clocks,
              ssp_args_t *args)
{
    atomic_llong *finished = calloc (world, sizeof *finished);
    pthread_t threads[MAX_THREADS];
    for (uint32_t rank = 0; rank < world; rank++) {
        args[rank] = (ssp_args_t){.endpoint = endpoint,
                                  .rank = rank,
                                  .world = world,
                                  .sleep_ms = rank == 0 ? slow_ms : 0,
                                  .clocks = clocks,
                                  .finished = finished,
                                  .staleness = staleness,
                                  .status = -99};
        pthread_create (&threads[rank], NULL, s_ssp_worker, &args[rank]);
    }
    for (uint32_t rank = 0; rank < world; rank++)
        pthread_join (threads[rank], NULL);
    free (finished);
}

Test (consistency, ssp_bounds_the_lead_and_allows_it, .timeout = 60)
{
    const int staleness = 2;
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (3, staleness, 0, endpoint, sizeof endpoint);
    ssp_args_t args[3];
    s_run_clocks (endpoint, 3, staleness, 40, SSP_CLOCKS, args);
    for (int rank = 0; rank < 3; rank++) {
        cr_assert_eq (args[rank].status, PS_OK, "rank %d: %s", rank,
                      ps_strerror (args[rank].status));
        cr_assert_eq (args[rank].violations, 0, "rank %d ran more than %d clocks ahead", rank,
                      staleness);
    }
    //  The fast workers must have been allowed the whole bound
    cr_assert_eq (args[1].max_lead, staleness, "rank 1's lead peaked at %lld", args[1].max_lead);
    cr_assert_eq (args[2].max_lead, staleness, "rank 2's lead peaked at %lld", args[2].max_lead);
    ps_broker_destroy (&broker);
}

Test (consistency, bsp_clock_waits_for_the_slowest, .timeout = 60)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (3, 0, 0, endpoint, sizeof endpoint);
    ssp_args_t args[3];
    s_run_clocks (endpoint, 3, 0, 20, 8, args);
    for (int rank = 0; rank < 3; rank++) {
        cr_assert_eq (args[rank].status, PS_OK);
        cr_assert_eq (args[rank].violations, 0, "rank %d passed a BSP barrier early", rank);
    }
    ps_broker_destroy (&broker);
}

Test (consistency, asp_never_waits, .timeout = 60)
{
    ps_test_job_t job = ps_test_job (2, -1, 0);
    //  Rank 1 joins and never clocks; rank 0 must run freely anyway
    ps_worker_t *idle = ps_test_worker (job.endpoint, 1, 2, 10000);
    cr_assert (idle);
    for (int c = 0; c < 200; c++)
        cr_assert_eq (ps_worker_clock (job.worker), PS_OK, "clock %d: %s", c,
                      ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_current_clock (job.worker), 200);
    cr_assert_eq (ps_worker_current_clock (idle), 0);
    ps_worker_close (&idle);
    ps_test_job_stop (&job);
}

// ------------------------------------------------------------ pipelined

#define PIPE_SIZE 70000 //  over 64K elements: sliced over every broker of a group

//  BSP, three workers push for clock 0; workers 0 and 1 send CLOCK and,
//  without waiting, PULL; once both pairs are parked, worker 2 clocks.
//  The pulls must hold clock 0's step: w = 0 - lr * mean (1, 2, 3) = -2.
static void
s_bsp_pipelined_pull (uint32_t shards)
{
    ps_broker_t *brokers[4];
    char endpoints[256];
    cr_assert_eq (ps_test_group (shards, 3, 0, brokers, endpoints, sizeof endpoints), 0);
    ps_worker_t *workers[3];
    static float gradient[3][PIPE_SIZE], value[2][PIPE_SIZE];
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    for (uint32_t rank = 0; rank < 3; rank++) {
        workers[rank] = ps_test_worker (endpoints, rank, 3, 10000);
        cr_assert (workers[rank]);
        cr_assert_eq (ps_worker_init (workers[rank], "w", PIPE_SIZE, NULL, &sgd), PS_OK);
        for (size_t i = 0; i < PIPE_SIZE; i++)
            gradient[rank][i] = (float)(rank + 1);
        ps_tensor_t push = {"w", gradient[rank], PIPE_SIZE};
        cr_assert_eq (ps_worker_push (workers[rank], &push, 1, 1), PS_OK);
    }
    ps_ticket_t clock[2], pull[2];
    for (uint32_t rank = 0; rank < 2; rank++) {
        ps_tensor_t tensor = {"w", value[rank], PIPE_SIZE};
        cr_assert_eq (ps_worker_clock_async (workers[rank], &clock[rank]), PS_OK);
        cr_assert_eq (ps_worker_pull_async (workers[rank], &tensor, 1, &pull[rank]), PS_OK);
    }
    cr_assert_eq (ps_test_wait_parked (workers[2], shards, 4), 0, "the requests never parked");
    cr_assert_eq (ps_worker_clock (workers[2]), PS_OK, "%s", ps_worker_error (workers[2]));
    for (uint32_t rank = 0; rank < 2; rank++) {
        cr_assert_eq (ps_worker_wait (workers[rank], pull[rank], -1), PS_OK);
        cr_assert_eq (ps_worker_wait (workers[rank], clock[rank], -1), PS_OK);
        for (size_t i = 0; i < PIPE_SIZE; i += 997)
            cr_assert_eq (value[rank][i], -2.0f, "worker %u, element %zu: %g, not -2", rank, i,
                          value[rank][i]);
        cr_assert_eq (value[rank][PIPE_SIZE - 1], -2.0f);
    }
    for (uint32_t rank = 0; rank < 3; rank++)
        ps_worker_close (&workers[rank]);
    for (uint32_t shard = 0; shard < shards; shard++)
        ps_broker_destroy (&brokers[shard]);
}

Test (consistency, bsp_pull_pipelined_behind_a_clock_sees_the_step, .timeout = 60)
{
    s_bsp_pipelined_pull (1);
}

Test (consistency, bsp_pull_pipelined_behind_a_clock_over_two_brokers, .timeout = 60)
{
    s_bsp_pipelined_pull (2);
}

//  SSP, staleness 1: the fast worker at the bound sends CLOCK then PULL;
//  the slow worker then pushes for clock 0 and clocks, back to back. The
//  bound requires the slow worker's clock-0 push in the pull's answer:
//  w = 0 - (1 + 1 + 10) = -12. It was a race, so it runs several times.
Test (consistency, ssp_pull_pipelined_at_the_bound_sees_the_slow_push, .timeout = 90)
{
    for (int round = 0; round < 12; round++) {
        char endpoint[64];
        ps_broker_t *broker = ps_test_broker (2, 1, 0, endpoint, sizeof endpoint);
        ps_worker_t *fast = ps_test_worker (endpoint, 0, 2, 10000);
        ps_worker_t *slow = ps_test_worker (endpoint, 1, 2, 10000);
        cr_assert (broker && fast && slow);
        ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
        cr_assert_eq (ps_worker_init (fast, "w", 4, NULL, &sgd), PS_OK);
        float one[4] = {1, 1, 1, 1}, ten[4] = {10, 10, 10, 10}, value[4] = {0};
        ps_tensor_t fast_push = {"w", one, 4}, slow_push = {"w", ten, 4};
        ps_tensor_t tensor = {"w", value, 4};
        cr_assert_eq (ps_worker_push (fast, &fast_push, 1, 1), PS_OK);
        cr_assert_eq (ps_worker_clock (fast), PS_OK);
        cr_assert_eq (ps_worker_push (fast, &fast_push, 1, 1), PS_OK);
        ps_ticket_t clock, pull, push, slow_clock;
        cr_assert_eq (ps_worker_clock_async (fast, &clock), PS_OK);
        cr_assert_eq (ps_worker_pull_async (fast, &tensor, 1, &pull), PS_OK);
        cr_assert_eq (ps_test_wait_parked (slow, 1, 2), 0, "the fast worker never parked");
        cr_assert_eq (ps_worker_push_async (slow, &slow_push, 1, 1, &push), PS_OK);
        cr_assert_eq (ps_worker_clock_async (slow, &slow_clock), PS_OK);
        cr_assert_eq (ps_worker_wait (fast, pull, -1), PS_OK, "%s", ps_worker_error (fast));
        for (int i = 0; i < 4; i++)
            cr_assert_eq (value[i], -12.0f, "round %d: element %d is %g, not -12", round, i,
                          value[i]);
        cr_assert_eq (ps_worker_wait (fast, clock, -1), PS_OK);
        cr_assert_eq (ps_worker_wait (slow, push, -1), PS_OK);
        cr_assert_eq (ps_worker_wait (slow, slow_clock, -1), PS_OK);
        ps_worker_close (&fast);
        ps_worker_close (&slow);
        ps_broker_destroy (&broker);
    }
}

static void
s_raw_simple (ps_test_raw_t *peer, int type, uint32_t rank, uint64_t seq, int64_t clock,
              const char *pull_key)
{
    ps_slice_t slice = PSMQ__SLICE__INIT;
    slice.key = (char *)pull_key;
    slice.count = 1;
    ps_slice_t *slices[] = {&slice};
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, type, rank, seq);
    envelope.clock = clock;
    if (pull_key) {
        envelope.slices = slices;
        envelope.n_slices = 1;
    }
    ps_test_raw_send (peer, &envelope, 0);
}

//  The reply to seq (others before it skipped): its min_clock, and the
//  first float of its first frame in *value when it has one
static int64_t
s_raw_reply (ps_test_raw_t *peer, uint64_t seq, float *value)
{
    for (;;) {
        ps_envelope_t *reply = ps_test_raw_receive_data (peer, value, value ? sizeof *value : 0);
        cr_assert (reply, "no reply to seq %lu", (unsigned long)seq);
        cr_assert_neq (reply->type, PSMQ__MSG_TYPE__ERROR, "%s", reply->error->message);
        if (reply->seq == seq)
            return reply->min_clock;
    }
}

//  Whether the broker holds a pull parked now, and how many pulls it has
//  answered, from its INFO
static void
s_pull_state (ps_broker_t *broker, int *parked, int64_t *answered)
{
    char *json = ps_broker_info (broker);
    cr_assert (json);
    *parked = (int)ps_test_json_number (json, "parked_now", false);
    json_t *replies = ps_test_json_find (json, "replies_out", false);
    cr_assert (replies && json_is_object (replies), "%s", json);
    *answered = (int64_t)json_integer_value (
        json_object_get (replies, ps_codec_type_name (PSMQ__MSG_TYPE__PULL)));
    json_decref (replies);
    free (json);
}

//  A pull's reply names as min_clock the slowest clock when what it must
//  see was fixed, never one a CLOCK moved while the aggregation thread
//  still had that clock's push to apply: every push of the clocks before
//  the min_clock of a pull's reply is in it. Rank 0 pushes a 64 MB key
//  (the aggregation thread is busy with it for a while) and pulls "v"
//  right behind it; rank 1 then pushes "v" for clock 0 and finishes clock
//  0, which moves the slowest clock to 1 before rank 0's pull is answered.
//  A busy machine may answer the pull before rank 1 can come: the
//  aggregation thread done with the big push before an INFO finds the pull
//  parked, or before the ROUTER loop, descheduled, read the pull. Such a
//  round cannot put rank 1's clock inside the wait (its checks still
//  hold), so rounds go on until three did, eight at most, and at least one
//  must have.
Test (consistency, a_pulls_min_clock_covers_only_the_pushes_in_its_data, .timeout = 120)
{
    enum { BIG = 16 << 20, WANTED = 3, MOST = 8 };
    float *ones = malloc (BIG * sizeof (float));
    cr_assert (ones);
    for (size_t i = 0; i < BIG; i++)
        ones[i] = 1;
    int caught = 0;
    for (int round = 0; round < MOST && caught < WANTED; round++) {
        char endpoint[64];
        ps_broker_t *broker = ps_test_broker (3, -1, 0, endpoint, sizeof endpoint);
        ps_worker_t *maker = ps_test_worker (endpoint, 2, 3, PS_TEST_WAIT_MS);
        ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
        cr_assert_eq (ps_worker_init (maker, "w", BIG, NULL, &sgd), PS_OK);
        cr_assert_eq (ps_worker_init (maker, "v", 1, NULL, &sgd), PS_OK);
        ps_worker_close (&maker);
        ps_test_raw_t a, b;
        ps_test_raw_open (&a, endpoint);
        ps_test_raw_open (&b, endpoint);
        Psmq__Hello hello = PSMQ__HELLO__INIT;
        hello.world_size = 3;
        ps_test_raw_hello (&a, 0, &hello);
        ps_test_raw_hello (&b, 1, &hello);
        s_raw_simple (&a, PSMQ__MSG_TYPE__CLOCK, 0, 10, 0, NULL);
        s_raw_reply (&a, 10, NULL);
        ps_test_raw_push (&a, 0, 11, 1, "w", 0, ones, BIG, false);
        s_raw_simple (&a, PSMQ__MSG_TYPE__PULL, 0, 12, 0, "v");
        //  Rank 1 only once the pull waits for the big push: the ROUTER
        //  takes each connection's messages whole, in turns, so rank 1's
        //  would otherwise come first
        int parked = 0;
        int64_t answered = 0;
        int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
        //  A millisecond between looks leaves the two CPUs to the broker
        while (!parked && !answered && zclock_mono () < deadline) {
            s_pull_state (broker, &parked, &answered);
            if (!parked && !answered)
                zclock_sleep (1);
        }
        cr_assert (parked || answered, "rank 0's pull was neither parked nor answered");
        caught += parked;
        ps_test_raw_push (&b, 1, 20, 0, "v", 0, ones, 1, false);
        s_raw_simple (&b, PSMQ__MSG_TYPE__CLOCK, 1, 21, 0, NULL);
        cr_assert_eq (s_raw_reply (&b, 21, NULL), 1, "rank 1's CLOCK did not move the slowest");
        float v = NAN;
        int64_t min_clock = s_raw_reply (&a, 12, &v);
        cr_assert (v == 0 || v == -1, "v = %g", v);
        if (min_clock >= 1)
            cr_assert_eq (v, -1.0f,
                          "round %d: the pull's reply names min_clock %ld without rank 1's "
                          "clock-0 push in it",
                          round, (long)min_clock);
        ps_test_raw_close (&a);
        ps_test_raw_close (&b);
        ps_broker_destroy (&broker);
    }
    free (ones);
    cr_assert_geq (caught, 1, "no round caught rank 0's pull parked while rank 1 moved the clock");
}
