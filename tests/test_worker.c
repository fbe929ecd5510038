/*  =========================================================================
    test_worker - the worker library's public API (ps_worker.h)

    Each test starts a broker in this process on an ephemeral loopback port
    and drives it through ps_worker calls, as an application would; the
    first test is the API's usage example. Statuses are checked exactly.

    usage: build/test_worker [--filter 'worker/<test>'] [--verbose]
    (ctest runs them all, a process per test, with --jobs 1)
    ========================================================================= */

#include "ps_limits.h"
#include "ps_stream.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

Test (worker, usage_init_push_clock_pull)
{
    //  A broker for a job of one worker, BSP, on a loopback port
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);

    //  Join it as rank 0 of a world of 1
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = endpoint;
    options.rank = 0;
    options.world_size = 1;
    int status = PS_OK;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    cr_assert_eq (ps_worker_staleness (worker), 0);
    cr_assert_eq (ps_worker_current_clock (worker), 0);

    //  w starts at 1, 2, 3; plain SGD with lr 0.5
    float initial[3] = {1, 2, 3};
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 0.5f};
    cr_assert_eq (ps_worker_init (worker, "w", 3, initial, &sgd), PS_OK, "%s",
                  ps_worker_error (worker));

    float gradient[3] = {2, 4, -2};
    ps_tensor_t push = {"w", gradient, 3};
    cr_assert_eq (ps_worker_push (worker, &push, 1, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (ps_worker_current_clock (worker), 1);

    float value[3] = {0};
    ps_tensor_t pull = {"w", value, 3};
    cr_assert_eq (ps_worker_pull (worker, &pull, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_float_eq (value[0], 0.0f, 1e-6);
    cr_assert_float_eq (value[1], 0.0f, 1e-6);
    cr_assert_float_eq (value[2], 4.0f, 1e-6);

    cr_assert_eq (ps_worker_close (&worker), PS_OK);
    cr_assert_null (worker);
    ps_broker_destroy (&broker);
}

Test (worker, init_is_idempotent_and_refuses_other_size)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    float first[2] = {5, 6}, second[2] = {7, 8};
    cr_assert_eq (ps_worker_init (job.worker, "b", 2, first, NULL), PS_OK);
    cr_assert_eq (ps_worker_init (job.worker, "b", 2, second, NULL), PS_OK);
    float value[2];
    ps_tensor_t pull = {"b", value, 2};
    cr_assert_eq (ps_worker_pull (job.worker, &pull, 1), PS_OK);
    cr_assert_eq (value[0], 5.0f, "a second init must not overwrite the values");
    cr_assert_eq (ps_worker_init (job.worker, "b", 3, NULL, NULL), PS_EKEY_EXISTS);
    cr_assert (strstr (ps_worker_error (job.worker), "'b'"), "error names the key: %s",
               ps_worker_error (job.worker));
    ps_test_job_stop (&job);
}

Test (worker, broker_errors_name_the_problem)
{
    ps_test_job_t job = ps_test_job (1, 0, 0);
    cr_assert_eq (ps_worker_init (job.worker, "w", 4, NULL, NULL), PS_OK);

    float data[8] = {0};
    ps_tensor_t unknown = {"nope", data, 4};
    cr_assert_eq (ps_worker_push (job.worker, &unknown, 1, 1), PS_EUNKNOWN_KEY);
    cr_assert (strstr (ps_worker_error (job.worker), "nope"));
    cr_assert_eq (ps_worker_pull (job.worker, &unknown, 1), PS_EUNKNOWN_KEY);

    ps_tensor_t wrong_size = {"w", data, 8};
    cr_assert_eq (ps_worker_push (job.worker, &wrong_size, 1, 1), PS_ESIZE);
    cr_assert_eq (ps_worker_pull (job.worker, &wrong_size, 1), PS_ESIZE);

    //  The worker still works after its errors
    ps_tensor_t good = {"w", data, 4};
    cr_assert_eq (ps_worker_push (job.worker, &good, 1, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (job.worker), PS_OK);
    cr_assert_eq (ps_worker_pull (job.worker, &good, 1), PS_OK);
    ps_test_job_stop (&job);
}

Test (worker, multi_key_and_chunked_tensors_round_trip)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    //  3.5 MB: four 1 MB slices on the wire, the last one partial
    size_t big = 917504 + 12345;
    float *initial = malloc (big * sizeof (float));
    for (size_t i = 0; i < big; i++)
        initial[i] = (float)i;
    float small_initial[5] = {1, 2, 3, 4, 5};
    cr_assert_eq (ps_worker_init (job.worker, "big", big, initial, NULL), PS_OK);
    cr_assert_eq (ps_worker_init (job.worker, "small", 5, small_initial, NULL), PS_OK);

    float *value = calloc (big, sizeof (float));
    float small_value[5] = {0};
    ps_tensor_t pull[2] = {{"small", small_value, 5}, {"big", value, big}};
    cr_assert_eq (ps_worker_pull (job.worker, pull, 2), PS_OK, "%s", ps_worker_error (job.worker));
    cr_assert_eq (memcmp (value, initial, big * sizeof (float)), 0);
    cr_assert_eq (memcmp (small_value, small_initial, sizeof small_value), 0);
    free (initial);
    free (value);
    ps_test_job_stop (&job);
}

Test (worker, async_tickets_overlap_and_complete_in_any_order)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    float initial[4] = {1, 1, 1, 1};
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    cr_assert_eq (ps_worker_init (job.worker, "a", 4, initial, &sgd), PS_OK);

    float gradient[4] = {1, 1, 1, 1};
    ps_tensor_t push = {"a", gradient, 4};
    ps_ticket_t push_ticket, clock_ticket, pull_ticket;
    cr_assert_eq (ps_worker_push_async (job.worker, &push, 1, 1, &push_ticket), PS_OK);
    //  The copy was taken at the call: changing the buffer now is safe
    gradient[0] = 100;
    cr_assert_eq (ps_worker_clock_async (job.worker, &clock_ticket), PS_OK);
    float value[4] = {0};
    ps_tensor_t pull = {"a", value, 4};
    cr_assert_eq (ps_worker_pull_async (job.worker, &pull, 1, &pull_ticket), PS_OK);
    cr_assert_eq (ps_worker_pending (job.worker), 3);

    //  Waiting for the last ticket first settles the others too
    cr_assert_eq (ps_worker_wait (job.worker, pull_ticket, -1), PS_OK, "%s",
                  ps_worker_error (job.worker));
    cr_assert_float_eq (value[0], 0.0f, 1e-6);
    cr_assert_eq (ps_worker_wait (job.worker, push_ticket, 0), PS_OK);
    cr_assert_eq (ps_worker_wait (job.worker, clock_ticket, 0), PS_OK);
    cr_assert_eq (ps_worker_pending (job.worker), 0);
    cr_assert_eq (ps_worker_wait (job.worker, clock_ticket, 0), PS_ETICKET);
    ps_test_job_stop (&job);
}

Test (worker, connect_without_broker_times_out)
{
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    //  A port nobody listens on: TCP connects fail, the HELLO waits
    char endpoint[64];
    int closed = ps_test_closed_endpoint (endpoint, sizeof endpoint);
    options.broker = endpoint;
    options.timeout_ms = 300;
    int status = 0;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    close (closed);
    cr_assert_null (worker);
    cr_assert_eq (status, PS_ETIMEOUT);
}

Test (worker, hello_with_wrong_world_is_refused)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    int status = 0;
    cr_assert_null (ps_test_connect (endpoint, 0, 3, PS_TEST_WAIT_MS, &status));
    cr_assert_eq (status, PS_ERANK);
    ps_broker_destroy (&broker);
}

//  What the log callback saw
typedef struct {
    int calls;         //  how many messages
    int level;         //  the last one's level
    char message[512]; //  the last one
} log_seen_t;

static void
s_log_seen (void *arg, int level, const char *message)
{
    log_seen_t *seen = arg;
    seen->calls++;
    seen->level = level;
    snprintf (seen->message, sizeof seen->message, "%s", message);
}

Test (worker, connect_failures_go_to_the_log_callback)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    log_seen_t seen = {0};
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    cr_assert_null (options.log, "silent by default");
    options.log = s_log_seen;
    options.log_arg = &seen;
    options.broker = endpoint;
    options.world_size = 3;
    options.timeout_ms = 2000;
    int status = 0;
    cr_assert_null (ps_worker_connect (&options, &status));
    cr_assert_eq (status, PS_ERANK);
    cr_assert_eq (seen.calls, 1);
    cr_assert_eq (seen.level, PS_WORKER_LOG_ERROR);
    cr_assert (strstr (seen.message, "rank 0 cannot join tcp://127.0.0.1:"), "%s", seen.message);
    cr_assert (strstr (seen.message, "refused hello"), "%s", seen.message);
    cr_assert_null (strchr (seen.message, '\n'), "one line, no newline");

    //  Options no worker could use: said before any socket is made (a
    //  world of 0 is the broker's, PS_WORKER_ANY_RANK; over the limit is not)
    options.world_size = 4097;
    cr_assert_null (ps_worker_connect (&options, &status));
    cr_assert_eq (status, PS_EINVAL);
    cr_assert_eq (seen.calls, 2);
    cr_assert (strstr (seen.message, "ps_worker_connect: needs a broker endpoint"), "%s",
               seen.message);
    ps_broker_destroy (&broker);
}

Test (worker, info_reports_the_broker)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 3, 0, endpoint, sizeof endpoint);
    char *json = NULL;
    cr_assert_eq (ps_worker_query_info (endpoint, PS_TEST_WAIT_MS, &json), PS_OK);
    cr_assert_eq (ps_test_json_number (json, "staleness", false), 3, "%s", json);
    cr_assert_eq (ps_test_json_number (json, "world", false), 2, "%s", json);
    free (json);
    ps_broker_destroy (&broker);
}

//  Rank 0 of world joined to endpoint, giving up on a request after
//  timeout_ms and on a clock after clock_timeout_ms (asserts that it joins)
static ps_worker_t *
s_worker_with_timeouts (const char *endpoint, uint32_t world, int timeout_ms, int clock_timeout_ms)
{
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, 0, world);
    options.timeout_ms = timeout_ms;
    options.clock_timeout_ms = clock_timeout_ms;
    int status = PS_OK;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    return worker;
}

Test (worker, push_to_a_stopped_broker_times_out_and_keeps_no_reference, .timeout = 60)
{
    //  A psbroker process, stopped once the worker has joined: its
    //  connection stays open, so that what the push lends sits in
    //  libzmq's queue, and the heartbeats (10 s) outlast the push's wait
    char endpoint[64], out[512];
    char *args[] = {"--workers", "1", "--staleness", "-1", NULL};
    ps_test_child_t broker = ps_test_psbroker (args, endpoint, sizeof endpoint, out, sizeof out);
    //  Long enough for the HELLO and INIT to a live broker on a loaded
    //  machine; the push to the stopped one waits all of it
    ps_worker_t *worker = s_worker_with_timeouts (endpoint, 1, 2000, 2000);
    //  More than the loopback connection's buffers take: libzmq keeps the rest
    size_t count = 16 << 20;
    cr_assert_eq (ps_worker_init (worker, "big", count, NULL, NULL), PS_OK);
    kill (broker.pid, SIGSTOP);

    //  The push lends this memory to libzmq; once push returns, freeing it
    //  must be safe (ASan would catch a late read)
    float *gradient = calloc (count, sizeof (float));
    ps_tensor_t push = {"big", gradient, count};
    int status = ps_worker_push (worker, &push, 1, 1);
    cr_assert_eq (status, PS_ETIMEOUT, "%s: %s", ps_strerror (status), ps_worker_error (worker));
    free (gradient);
    zclock_sleep (300);
    kill (broker.pid, SIGKILL);
    ps_test_wait_pid (broker.pid, PS_TEST_WAIT_MS);
    close (broker.out);
    close (broker.err);
    ps_worker_close (&worker);
}

Test (worker, a_pull_larger_than_the_cache_is_streamed_in_exactly, .timeout = 60)
{
    //  The smallest power of two from 1 MB that ps_stream_worth streams
    //  into, as a large key and a small one pulled together: the pull's
    //  bytes in all decide, so both keys' reply parts are copied by
    //  streamed stores, each to its own tensor and offset (ps_tickets)
    size_t bytes = 1u << 20;
    while (!ps_stream_worth (bytes) && bytes < (1u << 30))
        bytes *= 2;
    cr_assert (ps_stream_worth (bytes), "no pull up to %zu bytes is streamed", bytes);
    //  Sizes off the 16-byte steps, so that both ends take the slow path
    size_t counts[2] = {bytes / sizeof (float) - 999, 1001};
    const char *keys[2] = {"big", "small"};
    float *init[2], *value[2];
    ps_tensor_t pull[2];
    ps_test_job_t job = ps_test_job (1, -1, 0);
    for (size_t t = 0; t < 2; t++) {
        init[t] = malloc (counts[t] * sizeof (float));
        value[t] = malloc (counts[t] * sizeof (float));
        cr_assert (init[t] && value[t]);
        for (size_t i = 0; i < counts[t]; i++)
            init[t][i] = (float)((i + 7 * t) % 1000003) + 0.5f;
        cr_assert_eq (ps_worker_init (job.worker, keys[t], counts[t], init[t], NULL), PS_OK);
        memset (value[t], 0xff, counts[t] * sizeof (float));
        pull[t] = (ps_tensor_t){keys[t], value[t], counts[t]};
    }
    cr_assert_eq (ps_worker_pull (job.worker, pull, 2), PS_OK, "%s", ps_worker_error (job.worker));
    for (size_t t = 0; t < 2; t++) {
        size_t wrong = 0;
        for (size_t i = 0; i < counts[t]; i++)
            wrong += value[t][i] != init[t][i];
        cr_expect_eq (wrong, 0, "%s: %zu of %zu elements differ (value[1] %g)", keys[t], wrong,
                      counts[t], (double)value[t][1]);
        free (init[t]);
        free (value[t]);
    }
    ps_test_job_stop (&job);
}

//  The sanitizers' malloc ignores mallopt: their builds run the other
//  tests, the plain build this one
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
//  Pages this process has faulted in so far
static long
s_minor_faults (void)
{
    struct rusage usage;
    cr_assert_eq (getrusage (RUSAGE_SELF, &usage), 0);
    return usage.ru_minflt;
}

Test (worker, kept_mapped_pulls_fault_their_pages_in_once, .timeout = 60)
{
    //  Kept mapped (a process per test: the setting is this test's
    //  alone), the frames libzmq mallocs for a pull's reply are freed onto
    //  the heap, and later pulls' frames reuse their pages: the heap grows
    //  to the most frames ever in flight at once, one pull's bytes at
    //  most, and stops there. With glibc's defaults these twenty pulls of
    //  16 MB faulted 19,852 to 26,320 pages in here; kept mapped they may
    //  fault two pulls' pages (8192), however the frames come
    cr_assert_eq (ps_worker_keep_memory_mapped (), 1);
    size_t count = 4u << 20, pages = count * sizeof (float) / 4096;
    int pulls = 20;
    ps_test_job_t job = ps_test_job (1, -1, 0);
    float *value = calloc (count, sizeof (float));
    cr_assert (value);
    cr_assert_eq (ps_worker_init (job.worker, "big", count, NULL, NULL), PS_OK);
    ps_tensor_t pull = {"big", value, count};
    cr_assert_eq (ps_worker_pull (job.worker, &pull, 1), PS_OK, "%s", ps_worker_error (job.worker));
    long before = s_minor_faults ();
    for (int round = 0; round < pulls; round++)
        cr_assert_eq (ps_worker_pull (job.worker, &pull, 1), PS_OK);
    long faults = s_minor_faults () - before;
    cr_expect_lt (faults, 2 * (long)pages, "%d pulls of %zu pages faulted %ld in", pulls, pages,
                  faults);
    free (value);
    ps_test_job_stop (&job);
}
#endif

Test (worker, blocking_push_reuses_nothing_of_the_callers_after_return)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    size_t count = 3 << 18;
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    cr_assert_eq (ps_worker_init (job.worker, "v", count, NULL, &sgd), PS_OK);
    for (int round = 0; round < 5; round++) {
        //  A fresh buffer each round, freed right after the push
        float *gradient = malloc (count * sizeof (float));
        for (size_t i = 0; i < count; i++)
            gradient[i] = 1.0f;
        ps_tensor_t push = {"v", gradient, count};
        cr_assert_eq (ps_worker_push (job.worker, &push, 1, 1), PS_OK);
        memset (gradient, 0x7f, count * sizeof (float));
        free (gradient);
    }
    float *value = malloc (count * sizeof (float));
    ps_tensor_t pull = {"v", value, count};
    cr_assert_eq (ps_worker_pull (job.worker, &pull, 1), PS_OK);
    for (size_t i = 0; i < count; i += 4099)
        cr_assert_eq (value[i], -5.0f, "value[%zu] = %g", i, value[i]);
    free (value);
    ps_test_job_stop (&job);
}

typedef struct {
    const char *endpoint;
    atomic_bool joined; //  its HELLO was accepted
    atomic_bool go;     //  the main thread's clock and pull are on their way
    int status;
} straggler_t;

//  Wait up to PS_TEST_WAIT_MS for flag; whether it was set
static bool
s_wait_flag (atomic_bool *flag)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (!atomic_load (flag) && zclock_mono () < deadline)
        zclock_sleep (5);
    return atomic_load (flag);
}

//  The straggler's delay, measured from the main thread's clock and pull
#define STRAGGLER_MS 2500

//  Rank 1 of 2: joins, then takes STRAGGLER_MS after the main thread's
//  clock and pull were sent before it finishes clock 0
static void *
s_straggler (void *arg)
{
    straggler_t *straggler = arg;
    ps_worker_t *worker = ps_test_worker (straggler->endpoint, 1, 2, PS_TEST_WAIT_MS);
    straggler->status = worker ? PS_OK : PS_ECONNECT;
    atomic_store (&straggler->joined, worker != NULL);
    if (worker) {
        if (s_wait_flag (&straggler->go))
            zclock_sleep (STRAGGLER_MS);
        straggler->status = ps_worker_clock (worker);
        ps_worker_close (&worker);
    }
    return NULL;
}

Test (worker, pull_behind_a_waiting_clock_waits_as_long_as_the_clock, .timeout = 60)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    //  A request timeout far shorter than the straggler
    ps_worker_t *worker = s_worker_with_timeouts (endpoint, 2, 1000, PS_TEST_WAIT_MS);
    float value = 0;
    cr_assert_eq (ps_worker_init (worker, "p", 1, &value, NULL), PS_OK);

    straggler_t straggler = {.endpoint = endpoint, .status = -99};
    atomic_init (&straggler.joined, false);
    atomic_init (&straggler.go, false);
    pthread_t thread;
    pthread_create (&thread, NULL, s_straggler, &straggler);
    //  The straggler has joined, so that the clock must wait for it
    bool joined = s_wait_flag (&straggler.joined);
    ps_ticket_t clock = 0, pull = 0;
    ps_tensor_t tensor = {"p", &value, 1};
    int clock_sent = joined ? ps_worker_clock_async (worker, &clock) : PS_ECONNECT;
    int pull_sent = joined ? ps_worker_pull_async (worker, &tensor, 1, &pull) : PS_ECONNECT;
    int64_t started = zclock_mono ();
    atomic_store (&straggler.go, true);
    //  The pull is parked behind the clock: it waits with the clock timeout
    int pulled = pull_sent == PS_OK ? ps_worker_wait (worker, pull, -1) : pull_sent;
    int64_t waited = zclock_mono () - started;
    int clocked = clock_sent == PS_OK ? ps_worker_wait (worker, clock, -1) : clock_sent;
    //  Asserts after the join, so that a failure leaves no thread behind
    pthread_join (thread, NULL);
    cr_assert (joined, "the straggler did not join: %s", ps_strerror (straggler.status));
    cr_assert_eq (pulled, PS_OK, "%s", ps_worker_error (worker));
    cr_assert_geq (waited, STRAGGLER_MS - 100, "the pull waited %lld ms, not for the straggler",
                   (long long)waited);
    cr_assert_eq (clocked, PS_OK);
    cr_assert_eq (straggler.status, PS_OK);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

//  A NaN or an infinity in a push: the push is acked (the broker acks
//  before reading values) but not applied, and the next clock reports it,
//  naming key and element, while the clock still advances
static void
s_nonfinite_case (int32_t staleness)
{
    ps_test_job_t job = ps_test_job (1, staleness, 0);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    float initial[2] = {1, 2}, good[2] = {1, 1}, bad[2] = {1, NAN}, value[2];
    cr_assert_eq (ps_worker_init (job.worker, "w", 2, initial, &sgd), PS_OK);
    cr_assert_eq (ps_worker_init (job.worker, "v", 2, initial, &sgd), PS_OK);
    //  One clean key beside the bad one: neither may be applied
    ps_tensor_t push[2] = {{"v", good, 2}, {"w", bad, 2}};
    cr_assert_eq (ps_worker_push (job.worker, push, 2, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (job.worker), PS_ENONFINITE);
    cr_assert (strstr (ps_worker_error (job.worker), "'w' element 1 is nan"), "%s",
               ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_current_clock (job.worker), 1, "the clock still advanced");
    ps_tensor_t pull[2] = {{"v", value, 2}, {"w", value, 2}};
    for (int key = 0; key < 2; key++) {
        cr_assert_eq (ps_worker_pull (job.worker, &pull[key], 1), PS_OK);
        cr_assert_eq (value[0], 1.0f, "key %d changed", key);
        cr_assert_eq (value[1], 2.0f, "key %d changed", key);
    }
    //  The fault is reported once; the next clean step goes through
    bad[0] = -INFINITY;
    bad[1] = 1;
    cr_assert_eq (ps_worker_push (job.worker, &push[1], 1, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (job.worker), PS_ENONFINITE);
    cr_assert (strstr (ps_worker_error (job.worker), "element 0 is -inf"), "%s",
               ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_push (job.worker, &push[0], 1, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (job.worker), PS_OK, "%s", ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_pull (job.worker, &pull[0], 1), PS_OK);
    cr_assert_eq (value[0], 0.0f);
    char *json = NULL;
    cr_assert_eq (ps_worker_info (job.worker, &json), PS_OK);
    cr_assert_eq (ps_test_json_number (json, "nonfinite_pushes", false), 2);
    free (json);
    ps_test_job_stop (&job);
}

Test (worker, nonfinite_gradients_are_refused_at_the_next_clock, .timeout = 30)
{
    s_nonfinite_case (-1); //  ASP: the push's steps staged, then dropped
    s_nonfinite_case (0);  //  BSP: the clean key's sum taken back
}

//  grad_count counts the gradients summed into a push: 1 to the workers
//  the connection stands for
Test (worker, push_grad_count_beyond_the_connections_workers_is_refused)
{
    ps_test_job_t job = ps_test_job (2, -1, 0);
    float data[2] = {0};
    ps_tensor_t push = {"w", data, 2};
    cr_assert_eq (ps_worker_init (job.worker, "w", 2, NULL, NULL), PS_OK);
    cr_assert_eq (ps_worker_push (job.worker, &push, 1, 2), PS_ERANK);
    cr_assert (strstr (ps_worker_error (job.worker), "grad_count 2"), "%s",
               ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_push (job.worker, &push, 1, 1), PS_OK);
    ps_test_job_stop (&job);
}

//  A second job must not train silently with the first one's optimizer
Test (worker, init_with_other_optimizer_settings_is_refused)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    ps_optim_settings_t first = {.kind = PS_OPTIMIZER_ADAM, .lr = 0.001f, .decay_steps = 10};
    ps_optim_settings_t second = first;
    second.lr = 0.01f;
    cr_assert_eq (ps_worker_init (job.worker, "w", 2, NULL, &first), PS_OK);
    cr_assert_eq (ps_worker_init (job.worker, "w", 2, NULL, &first), PS_OK, "identical is fine");
    cr_assert_eq (ps_worker_init (job.worker, "w", 2, NULL, NULL), PS_OK, "naming none is fine");
    cr_assert_eq (ps_worker_init (job.worker, "w", 2, NULL, &second), PS_EKEY_EXISTS);
    cr_assert (strstr (ps_worker_error (job.worker),
                       "key 'w' exists with lr 0.001; this INIT asks lr 0.01"),
               "%s", ps_worker_error (job.worker));
    ps_test_job_stop (&job);
}

//  A broker that stops answers the requests it parked with their own seq:
//  the worker reports the shutdown at once, not at its clock timeout
Test (worker, parked_clock_reports_a_broker_shutdown_at_once, .timeout = 30)
{
    ps_test_job_t job = ps_test_job (2, 0, 0);
    ps_ticket_t clock;
    cr_assert_eq (ps_worker_clock_async (job.worker, &clock), PS_OK);
    char *json = NULL;
    int64_t deadline = zclock_mono () + 5000;
    while (zclock_mono () < deadline) {
        bool parked = ps_worker_info (job.worker, &json) == PS_OK &&
                      ps_test_json_number (json, "parked_now", false) == 1;
        free (json);
        if (parked)
            break;
        zclock_sleep (5);
    }
    int64_t started = zclock_mono ();
    ps_broker_destroy (&job.broker);
    cr_assert_eq (ps_worker_wait (job.worker, clock, -1), PS_ESHUTDOWN, "%s",
                  ps_worker_error (job.worker));
    cr_assert (zclock_mono () - started < 5000,
               "reported at the clock timeout (%d ms), not at once", PS_TEST_WAIT_MS);
    ps_test_job_stop (&job);
}

//  A NaN in the second of three 1 MB parts of a push (ASP): that part and
//  the third are not applied; the first is, and reaches readers with the
//  next push that ends the key (PROTOCOL.md, Pushes in parts)
Test (worker, a_nonfinite_part_of_a_push_in_parts_is_not_applied, .timeout = 60)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    size_t part = PS_CHUNK_BYTES / sizeof (float), n = 3 * part;
    float *bad = malloc (n * sizeof (float)), *ones = malloc (n * sizeof (float));
    float *value = malloc (n * sizeof (float));
    cr_assert (bad && ones && value);
    for (size_t i = 0; i < n; i++)
        bad[i] = ones[i] = 1;
    bad[part + 5] = NAN;
    cr_assert_eq (ps_worker_init (job.worker, "big", n, NULL, &sgd), PS_OK);
    ps_tensor_t push = {"big", bad, n}, pull = {"big", value, n};
    cr_assert_eq (ps_worker_push (job.worker, &push, 1, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (job.worker), PS_ENONFINITE);
    char element[64];
    snprintf (element, sizeof element, "'big' element %zu is nan", part + 5);
    cr_assert (strstr (ps_worker_error (job.worker), element), "%s", ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_pull (job.worker, &pull, 1), PS_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq (value[i], 0.0f, "element %zu published before a push ended the key", i);
    push.data = ones;
    cr_assert_eq (ps_worker_push (job.worker, &push, 1, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (job.worker), PS_OK, "%s", ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_pull (job.worker, &pull, 1), PS_OK);
    for (size_t i = 0; i < n; i++) {
        float want = i < part ? -2.0f : -1.0f;
        cr_assert_eq (value[i], want, "element %zu: %g, not %g", i, value[i], want);
    }
    free (bad);
    free (ones);
    free (value);
    ps_test_job_stop (&job);
}

//  A broker restarted on the same port no longer knows the worker: the
//  library says it restarted, not merely "not registered" or "lost the
//  connection", whichever the worker noticed first
Test (worker, a_restarted_broker_is_named_as_such, .timeout = 30)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    cr_assert_eq (ps_worker_clock (job.worker), PS_OK);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.staleness = -1;
    job.broker = ps_test_broker_restart (&job.broker, &config);
    int64_t started = zclock_mono ();
    int status = ps_worker_clock (job.worker);
    cr_assert (status == PS_ENOT_REGISTERED || status == PS_ECONNECT, "%s: %s",
               ps_strerror (status), ps_worker_error (job.worker));
    cr_assert (strstr (ps_worker_error (job.worker), "restarted"), "%s",
               ps_worker_error (job.worker));
    cr_assert_lt (zclock_mono () - started, 5000, "it took the timeout, not a round trip");
    //  And it stays so: the next call fails too
    status = ps_worker_clock (job.worker);
    cr_assert (status == PS_ENOT_REGISTERED || status == PS_ECONNECT, "%s", ps_strerror (status));
    ps_test_job_stop (&job);
}

//  psbroker --accept-nonfinite: the operator's choice to apply them
Test (worker, nonfinite_gradients_are_applied_when_the_broker_accepts_them)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.staleness = -1;
    config.accept_nonfinite = true;
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (worker);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    float initial[2] = {1, 2}, bad[2] = {1, INFINITY}, value[2];
    cr_assert_eq (ps_worker_init (worker, "w", 2, initial, &sgd), PS_OK);
    ps_tensor_t push = {"w", bad, 2}, pull = {"w", value, 2};
    cr_assert_eq (ps_worker_push (worker, &push, 1, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (ps_worker_pull (worker, &pull, 1), PS_OK);
    cr_assert_eq (value[0], 0.0f);
    cr_assert (isinf (value[1]) && value[1] < 0);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}
