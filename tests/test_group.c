/*  =========================================================================
    test_group - groups of brokers (psbroker --shard I --shards N) and the
    workers that use them

    A worker given the group's endpoints, comma-separated in shard order,
    splits its keys over the brokers; the first test is that usage. A
    worker whose list does not match the group is refused and leaves no
    rank behind; real psbroker and psworker processes train across a group
    on ephemeral loopback ports; a broker of the group that dies or stops
    mid-run makes the workers fail, naming it, within their timeouts.

    usage: cd build && ./test_group [--filter 'group/<test>']
    ========================================================================= */

#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ------------------------------------------------------------ in-process

//  The status of rank 0 of 1 connecting to list (the worker, if one
//  joined, leaves again)
static int
s_connect_status (const char *list)
{
    int status = PS_OK;
    ps_worker_t *worker = ps_test_connect (list, 0, 1, PS_TEST_WAIT_MS, &status);
    ps_worker_close (&worker);
    return status;
}

//  The number after "name": in a broker's INFO (its first occurrence)
static long
s_info_number (const char *endpoint, const char *name)
{
    char *json = NULL;
    cr_assert_eq (ps_worker_query_info (endpoint, PS_TEST_WAIT_MS, &json), PS_OK, "INFO of %s",
                  endpoint);
    long value = (long)ps_test_json_number (json, name, false);
    free (json);
    return value;
}

Test (group, push_and_pull_split_keys_over_the_group, .timeout = 60)
{
    //  Three brokers; the worker is given their endpoints as one list,
    //  comma-separated in shard order, and joins each of them
    ps_broker_t *brokers[3];
    char list[256];
    cr_assert_eq (ps_test_group (3, 1, 0, brokers, list, sizeof list), 0);
    ps_worker_t *worker = ps_test_worker (list, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (worker);
    cr_assert_eq (ps_worker_shards (worker), 3);

    //  100003 elements: sliced over the three, not evenly; 10 elements: whole
    //  on one broker
    enum { BIG = 100003, SMALL = 10 };
    float *initial = malloc (BIG * sizeof (float));
    float *got = calloc (BIG, sizeof (float));
    for (size_t i = 0; i < BIG; i++)
        initial[i] = (float)i;
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    cr_assert_eq (ps_worker_init (worker, "big", BIG, initial, &sgd), PS_OK);
    cr_assert_eq (ps_worker_init (worker, "small", SMALL, initial, &sgd), PS_OK);
    float small[SMALL];
    ps_tensor_t pulled[2] = {{"big", got, BIG}, {"small", small, SMALL}};
    cr_assert_eq (ps_worker_pull (worker, pulled, 2), PS_OK);
    for (size_t i = 0; i < BIG; i++)
        if (got[i] != (float)i)
            cr_assert_fail ("big[%zu] = %g after init, expected %zu", i, got[i], i);
    for (size_t i = 0; i < SMALL; i++)
        cr_assert_eq (small[i], (float)i);

    //  A gradient of ones under SGD lr 1 takes 1 from every element
    float *ones = malloc (BIG * sizeof (float));
    for (size_t i = 0; i < BIG; i++)
        ones[i] = 1.0f;
    ps_tensor_t gradients[2] = {{"big", ones, BIG}, {"small", ones, SMALL}};
    cr_assert_eq (ps_worker_push (worker, gradients, 2, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (worker), PS_OK);
    cr_assert_eq (ps_worker_pull (worker, pulled, 2), PS_OK);
    for (size_t i = 0; i < BIG; i++)
        if (got[i] != (float)i - 1.0f)
            cr_assert_fail ("big[%zu] = %g after a step, expected %zu - 1", i, got[i], i);
    for (size_t i = 0; i < SMALL; i++)
        cr_assert_eq (small[i], (float)i - 1.0f);

    //  Each broker holds its slice of "big" only; "small" is on one of them
    long keys = 0;
    char *member = list;
    for (int shard = 0; shard < 3; shard++) {
        char endpoint[128];
        cr_assert_eq (sscanf (member, "%127[^,]", endpoint), 1);
        member += strlen (endpoint) + 1;
        long bytes = s_info_number (endpoint, "bytes_in");
        long slice = BIG / 3 + (shard == 2); //  33334, 33334, 33335 floats
        cr_assert (bytes >= 2 * slice * 4 && bytes <= 2 * (slice + SMALL) * 4,
                   "shard %d took %ld tensor bytes for a slice of %ld floats", shard, bytes, slice);
        keys += s_info_number (endpoint, "keys");
    }
    cr_assert_eq (keys, 3 + 1, "big on all three, small on one");
    free (initial);
    free (got);
    free (ones);
    ps_worker_close (&worker);
    for (int shard = 0; shard < 3; shard++)
        ps_broker_destroy (&brokers[shard]);
}

Test (group, refuses_a_worker_with_another_idea_of_the_group, .timeout = 60)
{
    ps_broker_t *brokers[2];
    char list[256];
    cr_assert_eq (ps_test_group (2, 1, 0, brokers, list, sizeof list), 0);
    char first[128], second[128];
    cr_assert_eq (sscanf (list, "%127[^,],%127s", first, second), 2);
    char lone_endpoint[64];
    ps_broker_t *lone = ps_test_broker (1, 0, 0, lone_endpoint, sizeof lone_endpoint);

    char swapped[256];
    snprintf (swapped, sizeof swapped, "%s,%s", second, first);
    cr_assert_eq (s_connect_status (swapped), PS_EGROUP, "shards in the wrong order");
    cr_assert_eq (s_connect_status (second), PS_EGROUP, "one member taken for a lone broker");
    char with_lone[256];
    snprintf (with_lone, sizeof with_lone, "%s,%s", first, lone_endpoint);
    cr_assert_eq (s_connect_status (with_lone), PS_EGROUP, "a lone broker in a group");
    char three[400];
    snprintf (three, sizeof three, "%s,%s", list, lone_endpoint);
    cr_assert_eq (s_connect_status (three), PS_EGROUP, "a group of 3 against one of 2");
    cr_assert_eq (s_connect_status ("tcp://127.0.0.1:9,"), PS_EINVAL, "an empty member");

    //  The members that did accept the refused worker got its BYE: nobody
    //  is left live for a BSP job to wait for
    cr_assert_eq (s_info_number (first, "live"), 0);
    cr_assert_eq (s_info_number (lone_endpoint, "live"), 0);

    //  The right list is accepted, and INFO names the group as given
    cr_assert_eq (s_connect_status (list), PS_OK);
    char *json = NULL;
    cr_assert_eq (ps_worker_query_info (second, PS_TEST_WAIT_MS, &json), PS_OK);
    cr_assert_eq (ps_test_json_number (json, "shard", false), 1);
    cr_assert_eq (ps_test_json_number (json, "shards", false), 2);
    json_t *group = ps_test_json_find (json, "group", false);
    const char *members[2] = {NULL, NULL};
    cr_assert_eq (json_unpack (group, "[ss!]", &members[0], &members[1]), 0, "%s", json);
    cr_assert_str_eq (members[0], first);
    cr_assert_str_eq (members[1], second);
    json_decref (group);
    free (json);

    ps_broker_destroy (&lone);
    ps_broker_destroy (&brokers[0]);
    ps_broker_destroy (&brokers[1]);
}

Test (group, a_worker_refuses_brokers_that_disagree_on_the_clock, .timeout = 60)
{
    //  ASP, so that clocks are answered at once
    ps_broker_t *brokers[2];
    char list[256];
    cr_assert_eq (ps_test_group (2, 2, -1, brokers, list, sizeof list), 0);
    ps_worker_t *steady = ps_test_worker (list, 1, 2, PS_TEST_WAIT_MS);
    ps_worker_t *leaving = ps_test_worker (list, 0, 2, PS_TEST_WAIT_MS);
    cr_assert (steady && leaving);
    for (int clock = 0; clock < 3; clock++)
        cr_assert_eq (ps_worker_clock (steady), PS_OK);
    ps_worker_close (&leaving);

    //  Broker 1 restarts on its port, empty: it knows no clock of rank 1,
    //  which broker 0 has at 3
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = 2;
    config.staleness = -1;
    config.shard = 1;
    config.shards = 2;
    brokers[1] = ps_test_broker_restart (&brokers[1], &config);

    //  Rank 0 comes back: broker 0 puts it at clock 3, broker 1 at 0. The
    //  worker tries a few times, then refuses, and leaves no rank behind
    int64_t started = zclock_mono ();
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = list;
    options.rank = 0;
    options.world_size = 2;
    options.timeout_ms = 5000;
    int status = PS_OK;
    ps_worker_t *returning = ps_worker_connect (&options, &status);
    cr_assert_null (returning);
    cr_assert_eq (status, PS_EGROUP);
    cr_assert (zclock_mono () - started < 4000, "took %" PRId64 " ms", zclock_mono () - started);
    char first[128], second[128];
    cr_assert_eq (sscanf (list, "%127[^,],%127s", first, second), 2);
    cr_assert_eq (s_info_number (first, "live"), 1, "only the steady rank is left on broker 0");
    cr_assert_eq (s_info_number (second, "live"), 0);
    //  It did try again: two HELLOs before, then five from the returning rank
    cr_assert_eq (s_info_number (first, "hello"), 2 + 5);

    ps_worker_close (&steady);
    ps_broker_destroy (&brokers[0]);
    ps_broker_destroy (&brokers[1]);
}

// ------------------------------------------------------------ processes

typedef struct {
    ps_test_child_t child;
    char endpoint[128];
} psbroker_t;

//  A psbroker process, shard of shards, on an ephemeral loopback port
static void
s_psbroker_start (psbroker_t *self, int shard, int shards, int workers)
{
    char shard_text[16], shards_text[16], workers_text[16];
    snprintf (shard_text, sizeof shard_text, "%d", shard);
    snprintf (shards_text, sizeof shards_text, "%d", shards);
    snprintf (workers_text, sizeof workers_text, "%d", workers);
    char *args[] = {"--workers", workers_text,  "--shard", shard_text, "--shards",
                    shards_text, "--optimizer", "adam",    "--lr",     "0.002",
                    "--no-tap",  "--quiet",     NULL};
    char out[4096];
    self->child = ps_test_psbroker (args, self->endpoint, sizeof self->endpoint, out, sizeof out);
    char place[64];
    snprintf (place, sizeof place, "shard %d of %d", shard, shards);
    cr_assert (strstr (out, place), "'%s' not in: %s", place, out);
}

//  The two brokers of a group for workers, and their list
static void
s_psbrokers_start (psbroker_t brokers[2], int workers, char *list, size_t list_size)
{
    for (int shard = 0; shard < 2; shard++)
        s_psbroker_start (&brokers[shard], shard, 2, workers);
    snprintf (list, list_size, "%s,%s", brokers[0].endpoint, brokers[1].endpoint);
}

static void
s_psbroker_stop (psbroker_t *self)
{
    kill (self->child.pid, SIGTERM);
    ps_test_wait_pid (self->child.pid, PS_TEST_WAIT_MS);
    close (self->child.out);
    close (self->child.err);
}

//  A psworker process training on the synthetic set through list, giving
//  up on a call after timeout_ms and on a clock after clock_timeout_ms, and
//  at once on a broker that went (no --wait-for-broker)
static pid_t
s_psworker_start (const char *list, int rank, int threads, int workers, int epochs,
                  const char *timeout_ms, const char *clock_timeout_ms, const char *out_path)
{
    char *timeouts[] = {"--timeout-ms",
                        (char *)timeout_ms,
                        "--clock-timeout-ms",
                        (char *)clock_timeout_ms,
                        "--wait-for-broker",
                        "0",
                        NULL};
    return ps_test_psworker_train (list, rank, threads, workers, epochs, timeouts, out_path);
}

Test (group, real_processes_train_across_two_brokers, .timeout = 150)
{
    //  A two-thread process (ranks 0-1) beside a single one (rank 2)
    psbroker_t brokers[2];
    char list[300];
    s_psbrokers_start (brokers, 3, list, sizeof list);
    char outs[2][600];
    ps_test_path ("threads.out", outs[0], sizeof outs[0]);
    ps_test_path ("single.out", outs[1], sizeof outs[1]);
    //  Nothing fails here: timeouts that a loaded machine never reaches
    pid_t pids[2] = {s_psworker_start (list, 0, 2, 3, 2, "30000", "60000", outs[0]),
                     s_psworker_start (list, 2, 1, 3, 2, "30000", "60000", outs[1])};
    for (int i = 0; i < 2; i++) {
        int status = ps_test_wait_pid (pids[i], 120000);
        char *text = ps_test_slurp (outs[i]);
        cr_assert_eq (status, 0, "worker %d exited %d: %s", i, status, text);
        cr_assert (ps_test_json_bool (text, "final", true), "%s", text);
        double accuracy = ps_test_json_number (text, "test_accuracy", true);
        cr_assert (accuracy > 0.6, "accuracy %g: %s", accuracy, text);
        free (text);
    }
    //  Both brokers stepped their slices, and both saw every clock of both
    //  processes ("clock": first appears among the message counts)
    long clocks = 2 * 2 * (12000 / 3 / 32);
    for (int shard = 0; shard < 2; shard++) {
        cr_assert (s_info_number (brokers[shard].endpoint, "optimizer_steps") > 0);
        cr_assert_eq (s_info_number (brokers[shard].endpoint, "clock"), clocks, "shard %d", shard);
    }
    for (int shard = 0; shard < 2; shard++)
        s_psbroker_stop (&brokers[shard]);
}

//  Kill (or stop) broker 1 of 2 while two workers train: both must exit
//  with an error naming it, within their timeouts, while broker 0 serves on
static void
s_lose_a_broker_mid_run (int signal_number)
{
    psbroker_t brokers[2];
    char list[300];
    s_psbrokers_start (brokers, 2, list, sizeof list);
    char outs[2][600];
    pid_t pids[2];
    for (int rank = 0; rank < 2; rank++) {
        char name[32];
        snprintf (name, sizeof name, "worker%d.out", rank);
        ps_test_path (name, outs[rank], sizeof outs[rank]);
        //  Timeouts short enough to fail in time once the broker is gone
        pids[rank] = s_psworker_start (list, rank, 1, 2, 1000, "3000", "4000", outs[rank]);
    }
    //  Mid-run: once the job has made some clocks
    int64_t deadline = zclock_mono () + 60000;
    while (s_info_number (brokers[1].endpoint, "min_clock") < 20) {
        cr_assert (zclock_mono () < deadline, "the job made no progress");
        zclock_sleep (50);
    }
    kill (brokers[1].child.pid, signal_number);
    int64_t stopped = zclock_mono ();
    //  The workers reconnect to it until they give up: they must not reach
    //  a broker that another test starts on its port
    int held = ps_test_hold_port (ps_test_endpoint_port (brokers[1].endpoint));
    for (int rank = 0; rank < 2; rank++) {
        //  The longest wait is the 4 s clock timeout, then 2 s for BYE
        int status = ps_test_wait_pid (pids[rank], 20000);
        char *text = ps_test_slurp (outs[rank]);
        cr_assert_eq (status, 1, "worker %d exited %d, expected 1: %s", rank, status, text);
        cr_assert (strstr (text, brokers[1].endpoint),
                   "worker %d does not name the broker it lost (%s): %s", rank, brokers[1].endpoint,
                   text);
        free (text);
    }
    cr_assert (zclock_mono () - stopped < 15000, "the workers took %" PRId64 " ms to fail",
               zclock_mono () - stopped);
    close (held);
    //  The surviving broker still answers
    cr_assert (s_info_number (brokers[0].endpoint, "clock") >= 2 * 20);
    ps_test_wait_pid (brokers[1].child.pid, 10000);
    close (brokers[1].child.out);
    close (brokers[1].child.err);
    s_psbroker_stop (&brokers[0]);
}

Test (group, a_broker_killed_mid_run_fails_the_workers_in_time, .timeout = 120)
{
    s_lose_a_broker_mid_run (SIGKILL);
}

Test (group, a_broker_stopped_mid_run_fails_the_workers_in_time, .timeout = 120)
{
    s_lose_a_broker_mid_run (SIGTERM);
}
