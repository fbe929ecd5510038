/*  =========================================================================
    test_restore - a broker with a checkpoint directory: what it writes,
    what a new broker on the same directory restores, what it refuses

    Brokers run in this process (ps_broker_new with checkpoint_dir set),
    workers through the library. A broker destroyed takes its final
    checkpoint; the next one started on the directory must give back the
    same values bit for bit, step on as a broker that never stopped would
    (Adam's moments and step count restored), and tell each rank in its
    HELLO reply the clock to redo from. The old workers are closed after
    their broker is gone, so that their BYE does not count: their BYE
    waits 2 s for an answer that cannot come. The SIGKILL test of real
    psbroker processes is test_restore_kill.

    usage: build/test_restore [--filter 'restore/<test>']
    ========================================================================= */

#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SIZE 6

//  A broker's settings with checkpoints in dir (NULL: none)
static ps_broker_config_t
s_config (uint32_t workers, int32_t staleness, const char *dir, double seconds, uint64_t clocks)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = workers;
    config.staleness = staleness;
    config.tap = false;
    config.checkpoint_dir = dir;
    config.checkpoint_seconds = seconds;
    config.checkpoint_clocks = clocks;
    return config;
}

//  A key of each kind: SGD with a decay, Adam; created with their
//  initial values
static void
s_init_keys (ps_worker_t *worker)
{
    float initial[SIZE] = {1, -2, 3, -4, 5, -6};
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 0.5f, .decay_steps = 20};
    ps_optim_settings_t adam = {.kind = PS_OPTIMIZER_ADAM, .lr = 0.01f};
    cr_assert_eq (ps_worker_init (worker, "w", SIZE, initial, &sgd), PS_OK, "%s",
                  ps_worker_error (worker));
    cr_assert_eq (ps_worker_init (worker, "m", SIZE, initial, &adam), PS_OK, "%s",
                  ps_worker_error (worker));
}

//  Step number step of the job: the same gradient for both keys, then
//  the clock
static void
s_step (ps_worker_t *worker, int step)
{
    float grad[SIZE];
    for (int i = 0; i < SIZE; i++)
        grad[i] = (float)((i + 1) * (step % 3 ? 1 : -1)) * 0.375f + (float)step;
    ps_tensor_t tensors[] = {{"w", grad, SIZE}, {"m", grad, SIZE}};
    cr_assert_eq (ps_worker_push (worker, tensors, 2, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
}

//  Both keys, w then m, into values
static void
s_pull (ps_worker_t *worker, float values[2 * SIZE])
{
    ps_tensor_t tensors[] = {{"w", values, SIZE}, {"m", values + SIZE, SIZE}};
    cr_assert_eq (ps_worker_pull (worker, tensors, 2), PS_OK, "%s", ps_worker_error (worker));
}

//  A key of one float, SGD at rate 1, so that a push of -1 adds 1
static void
s_init_counter (ps_worker_t *worker)
{
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1};
    cr_assert_eq (ps_worker_init (worker, "count", 1, NULL, &sgd), PS_OK, "%s",
                  ps_worker_error (worker));
}

static void
s_count (ps_worker_t *worker, bool clock)
{
    float minus_one = -1;
    ps_tensor_t tensor = {"count", &minus_one, 1};
    cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK, "%s", ps_worker_error (worker));
    if (clock)
        cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
}

static float
s_counter (ps_worker_t *worker)
{
    float value = -1;
    ps_tensor_t tensor = {"count", &value, 1};
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK, "%s", ps_worker_error (worker));
    return value;
}

//  A number of INFO's "checkpoint" object
static double
s_info (ps_broker_t *broker, const char *name)
{
    char *json = ps_broker_info (broker);
    cr_assert_not_null (json);
    json_t *checkpoint = ps_test_json_find (json, "checkpoint", false);
    cr_assert (json_is_object (checkpoint), "INFO has no checkpoint object: %s", json);
    json_t *value = json_object_get (checkpoint, name);
    cr_assert (json_is_number (value), "checkpoint.%s in %s", name, json);
    double number = json_number_value (value);
    json_decref (checkpoint);
    free (json);
    return number;
}

//  A string of INFO's "checkpoint" object, into text
static const char *
s_info_text (ps_broker_t *broker, const char *name, char *text, size_t size)
{
    char *json = ps_broker_info (broker);
    cr_assert_not_null (json);
    json_t *checkpoint = ps_test_json_find (json, "checkpoint", false);
    cr_assert (json_is_object (checkpoint), "%s", json);
    const char *value = json_string_value (json_object_get (checkpoint, name));
    cr_assert_not_null (value, "checkpoint.%s in %s", name, json);
    snprintf (text, size, "%s", value);
    json_decref (checkpoint);
    free (json);
    return text;
}

//  Wait until the broker has written at least count checkpoints
static void
s_wait_written (ps_broker_t *broker, double count)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (s_info (broker, "written") < count && zclock_mono () < deadline)
        zclock_sleep (5);
    cr_assert_geq (s_info (broker, "written"), count);
}

static bool
s_exists (const char *path)
{
    return access (path, F_OK) == 0;
}

Test (restore, usage)
{
    //  A BSP broker of one worker that checkpoints into dir; a worker
    //  trains two keys three clocks
    char dir[256], endpoint[64];
    ps_test_path ("checkpoints", dir, sizeof dir);
    ps_broker_config_t config = s_config (1, 0, dir, 0, 0);
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    s_init_keys (worker);
    for (int step = 0; step < 3; step++)
        s_step (worker, step);
    float before[2 * SIZE];
    s_pull (worker, before);

    //  Stopped, it writes a last checkpoint before it goes
    ps_broker_destroy (&broker);
    char first[PATH_MAX];
    snprintf (first, sizeof first, "%s/checkpoint-000001.psmq", dir);
    cr_assert (s_exists (first), "no final checkpoint %s", first);
    ps_worker_close (&worker);

    //  A new broker on the directory restores it: the worker's HELLO says
    //  it is at clock 3, and the values are the same, bit for bit
    broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    char text[PATH_MAX];
    cr_assert_str_eq (s_info_text (broker, "restored_file", text, sizeof text), first);
    cr_assert_eq (s_info (broker, "restored_clock"), 3);
    worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert_eq (ps_worker_current_clock (worker), 3);
    float after[2 * SIZE];
    s_pull (worker, after);
    cr_assert_eq (memcmp (before, after, sizeof before), 0, "restored values differ");

    //  Its next step gives what a broker that never stopped gives
    s_init_keys (worker);
    s_step (worker, 3);
    s_pull (worker, after);
    char other[64];
    ps_broker_config_t plain = s_config (1, 0, NULL, 0, 0);
    ps_broker_t *uninterrupted = ps_test_broker_with (&plain, other, sizeof other);
    ps_worker_t *control = ps_test_worker (other, 0, 1, PS_TEST_WAIT_MS);
    s_init_keys (control);
    for (int step = 0; step < 4; step++)
        s_step (control, step);
    float expected[2 * SIZE];
    s_pull (control, expected);
    cr_assert_eq (memcmp (after, expected, sizeof after), 0,
                  "a step after the restore differs from the same step without one");
    ps_worker_close (&control);
    ps_broker_destroy (&uninterrupted);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (restore, ssp_a_push_before_the_cut_is_not_redone)
{
    //  SSP applies a push as it comes: the rank pushed at clock 1 and did
    //  not finish it; that push is saved, so it redoes from clock 2
    char dir[256], endpoint[64];
    ps_test_path ("ssp", dir, sizeof dir);
    ps_broker_config_t config = s_config (1, 1, dir, 0, 0);
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    s_init_counter (worker);
    s_count (worker, true);
    s_count (worker, false);
    cr_assert_eq (s_counter (worker), 2);
    ps_broker_destroy (&broker);
    ps_worker_close (&worker);

    broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert_eq (ps_worker_current_clock (worker), 2);
    cr_assert_eq (s_counter (worker), 2);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (restore, bsp_the_unfinished_clock_is_redone)
{
    //  BSP sums a clock's pushes until everyone finished it; those sums
    //  are not saved, so the rank redoes clock 1 and its push there
    char dir[256], endpoint[64];
    ps_test_path ("bsp", dir, sizeof dir);
    ps_broker_config_t config = s_config (1, 0, dir, 0, 0);
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    s_init_counter (worker);
    s_count (worker, true);
    s_count (worker, false);
    ps_broker_destroy (&broker);
    ps_worker_close (&worker);

    broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert_eq (ps_worker_current_clock (worker), 1);
    cr_assert_eq (s_counter (worker), 1);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (restore, other_settings_are_refused_naming_both_values)
{
    char dir[256], endpoint[64];
    ps_test_path ("settings", dir, sizeof dir);
    ps_broker_config_t config = s_config (1, 0, dir, 0, 0);
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    s_init_counter (worker);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);

    //  Another world size: the broker does not start
    ps_broker_config_t other = s_config (2, 0, dir, 0, 0);
    other.endpoint = "tcp://127.0.0.1:0";
    ps_problem_t problem;
    cr_assert_null (ps_broker_new (&other, &problem));
    cr_assert (strstr (problem.message, "checkpoint-000001.psmq"), "%s", problem.message);
    cr_assert (strstr (problem.message, "a broker of 1 workers, this one has 2 (--workers)"), "%s",
               problem.message);
    //  Another staleness
    other = s_config (1, 3, dir, 0, 0);
    other.endpoint = "tcp://127.0.0.1:0";
    cr_assert_null (ps_broker_new (&other, &problem));
    cr_assert (strstr (problem.message, "staleness 0, this one has 3"), "%s", problem.message);
    //  Another place in a group
    other = s_config (1, 0, dir, 0, 0);
    other.endpoint = "tcp://127.0.0.1:0";
    other.shard = 1;
    other.shards = 2;
    other.checkpoint_clocks = 1; //  a group's members must name it
    cr_assert_null (ps_broker_new (&other, &problem));
    cr_assert (strstr (problem.message, "shard 0 of 1, this broker is shard 1 of 2"), "%s",
               problem.message);
}

Test (restore, a_torn_newest_checkpoint_falls_back_to_the_previous)
{
    //  A checkpoint every clock: clock 1, then clock 2
    char dir[256], endpoint[64];
    ps_test_path ("torn", dir, sizeof dir);
    ps_broker_config_t config = s_config (1, 0, dir, 0, 1);
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    s_init_counter (worker);
    s_count (worker, true);
    s_wait_written (broker, 1);
    s_count (worker, true);
    s_wait_written (broker, 2);
    //  INFO tells of the last one
    char second[PATH_MAX], text[PATH_MAX];
    snprintf (second, sizeof second, "%s/checkpoint-000002.psmq", dir);
    cr_assert_str_eq (s_info_text (broker, "last_file", text, sizeof text), second);
    cr_assert_eq (s_info (broker, "last_clock"), 2);
    cr_assert_gt (s_info (broker, "last_bytes"), 0);
    cr_assert_eq (s_info (broker, "failed"), 0);
    //  Nothing changed since: no final checkpoint
    ps_broker_destroy (&broker);
    ps_worker_close (&worker);
    char third[PATH_MAX];
    snprintf (third, sizeof third, "%s/checkpoint-000003.psmq", dir);
    cr_assert (!s_exists (third));

    //  The newest is torn: the broker restores the one before, at clock 1
    cr_assert_eq (truncate (second, 100), 0);
    broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    char first[PATH_MAX];
    snprintf (first, sizeof first, "%s/checkpoint-000001.psmq", dir);
    cr_assert_str_eq (s_info_text (broker, "restored_file", text, sizeof text), first);
    char aside[PATH_MAX + 16];
    snprintf (aside, sizeof aside, "%s.refused", second);
    cr_assert (s_exists (aside));
    worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert_eq (ps_worker_current_clock (worker), 1);
    cr_assert_eq (s_counter (worker), 1);

    //  Numbers go on past the refused one
    s_count (worker, true);
    s_wait_written (broker, 1);
    cr_assert_str_eq (s_info_text (broker, "last_file", text, sizeof text), third);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (restore, the_timer_writes_only_what_changed)
{
    char dir[256], endpoint[64];
    ps_test_path ("timer", dir, sizeof dir);
    ps_broker_config_t config = s_config (1, -1, dir, 0.02, 0);
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    s_init_counter (worker);
    s_count (worker, false);
    //  A checkpoint with the push in it (the timer may have taken one
    //  between the INIT and the push too): rank 0 redoes from clock 1
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (s_info (broker, "last_clock") != 1 && zclock_mono () < deadline)
        zclock_sleep (5);
    cr_assert_eq (s_info (broker, "last_clock"), 1);
    double written = s_info (broker, "written"), unchanged = s_info (broker, "unchanged");
    //  Idle: the timer comes round and finds nothing new to write
    while (s_info (broker, "unchanged") < unchanged + 3 && zclock_mono () < deadline)
        zclock_sleep (5);
    cr_assert_geq (s_info (broker, "unchanged"), unchanged + 3);
    cr_assert_eq (s_info (broker, "written"), written);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (restore, a_worker_is_held_one_interval_past_the_last_checkpoint)
{
    //  Every 2 clocks, no timer; rank 1 stays at clock 0 (SSP 10), so the
    //  job's clock never moves: rank 0's pull at clock 2 is answered only
    //  once a checkpoint it would redo from clock 2 is written, so that a
    //  restart never makes it redo more than 2 clocks
    char dir[256], endpoint[64];
    ps_test_path ("ceiling", dir, sizeof dir);
    ps_broker_config_t config = s_config (2, 10, dir, 0, 2);
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *fast = ps_test_worker (endpoint, 0, 2, PS_TEST_WAIT_MS);
    ps_worker_t *slow = ps_test_worker (endpoint, 1, 2, PS_TEST_WAIT_MS);
    s_init_counter (fast);
    s_count (fast, true);
    cr_assert_eq (s_counter (fast), 1);
    s_count (fast, true);
    cr_assert_eq (s_counter (fast), 2);
    cr_assert_eq (s_info (broker, "written"), 1, "the pull at clock 2 came before the checkpoint");
    cr_assert_eq (s_info (broker, "last_clock"), 0);
    //  Clock 3 is within the interval of that checkpoint; clock 4 is not
    s_count (fast, true);
    cr_assert_eq (s_counter (fast), 3);
    cr_assert_eq (s_info (broker, "written"), 1);
    s_count (fast, true);
    cr_assert_eq (s_counter (fast), 4);
    cr_assert_eq (s_info (broker, "written"), 2, "the pull at clock 4 came before the checkpoint");
    ps_broker_destroy (&broker);
    ps_worker_close (&fast);
    ps_worker_close (&slow);

    //  The newest checkpoint has rank 0 redo from clock 4, rank 1 from 0
    config.checkpoint_clocks = 0;
    broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    fast = ps_test_worker (endpoint, 0, 2, PS_TEST_WAIT_MS);
    cr_assert_eq (ps_worker_current_clock (fast), 4);
    ps_worker_close (&fast);
    ps_broker_destroy (&broker);
}

Test (restore, a_worker_at_its_ceiling_lifts_the_writers_pace)
{
    //  The writer paced to 1 MB/s would take 12 s or more for the 16 MB
    //  key; rank 0's pull at clock 2 waits for that checkpoint, and its
    //  wait lifts the pace: the write goes at the disk's speed
    char dir[256], endpoint[64];
    ps_test_path ("hurry", dir, sizeof dir);
    ps_broker_config_t config = s_config (2, 10, dir, 0, 2);
    config.checkpoint_rate = 1 << 20;
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *fast = ps_test_worker (endpoint, 0, 2, PS_TEST_WAIT_MS);
    ps_worker_t *slow = ps_test_worker (endpoint, 1, 2, PS_TEST_WAIT_MS);
    s_init_counter (fast);
    cr_assert_eq (ps_worker_init (fast, "big", 4 << 20, NULL, NULL), PS_OK, "%s",
                  ps_worker_error (fast));
    s_count (fast, true);
    s_count (fast, true);
    int64_t started = zclock_mono ();
    cr_assert_eq (s_counter (fast), 2);
    int64_t waited = zclock_mono () - started;
    cr_assert_eq (s_info (broker, "written"), 1);
    cr_assert_lt (waited, 6000, "the pull waited %" PRId64 " ms for a paced write", waited);
    ps_broker_destroy (&broker);
    ps_worker_close (&fast);
    ps_worker_close (&slow);
}

Test (restore, an_unusable_directory_is_refused)
{
    char path[256];
    ps_test_path ("not-a-directory", path, sizeof path);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fclose (file);
    ps_broker_config_t config = s_config (1, 0, path, 60, 0);
    config.endpoint = "tcp://127.0.0.1:0";
    ps_problem_t problem;
    cr_assert_null (ps_broker_new (&config, &problem));
    cr_assert (strstr (problem.message, path), "%s", problem.message);
    cr_assert (strstr (problem.message, "not a directory"), "%s", problem.message);
}

Test (restore, two_brokers_may_not_share_a_directory)
{
    char dir[256], endpoint[64];
    ps_test_path ("shared", dir, sizeof dir);
    ps_broker_config_t config = s_config (1, 0, dir, 60, 0);
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    config.endpoint = "tcp://127.0.0.1:0";
    ps_problem_t problem;
    cr_assert_null (ps_broker_new (&config, &problem));
    cr_assert (strstr (problem.message, "is in use by another broker"), "%s", problem.message);
    //  Once the first is gone the directory is free
    ps_broker_destroy (&broker);
    broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_broker_destroy (&broker);
}
