/*  =========================================================================
    test_rejoin - a worker notices a broker that is gone, and rides out a
    broker restart or an eviction (ps_worker.h, "Rejoining")

    Brokers run in this process on a loopback port that a restart keeps
    (ps_test_broker_restart), or as psbroker processes that the tests
    kill (SIGKILL: the connection closes) or stop (SIGSTOP: it stays open
    and says nothing, as a host that vanished). The first test is the
    usage example: options.wait_for_broker_ms, then PS_EREJOINED and the
    clock to redo from. psworker's own redo is tested in test_psworker.

    usage: build/test_rejoin [--filter 'rejoin/<test>'] [--verbose]
    ========================================================================= */

#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  What the log callback saw: every line, one after the other
typedef struct {
    char text[8192];
    size_t used;
} log_lines_t;

static void
s_log_lines (void *arg, int level, const char *message)
{
    log_lines_t *lines = arg;
    static const char *names[] = {"ERROR", "WARNING", "INFO"};
    if (lines->used < sizeof lines->text)
        lines->used +=
            (size_t)snprintf (lines->text + lines->used, sizeof lines->text - lines->used,
                              "%s %s\n", level >= 0 && level <= 2 ? names[level] : "?", message);
}

//  A broker's configuration as ps_test_broker makes it, for a restart
static ps_broker_config_t
s_config (uint32_t workers, int32_t staleness)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = workers;
    config.staleness = staleness;
    return config;
}

Test (rejoin, usage_a_worker_rides_out_a_broker_restart, .timeout = 30)
{
    //  A broker for one worker, BSP, on a loopback port
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);

    //  A worker that waits up to 10 s for a broker that went away to come
    //  back, rather than failing at once
    log_lines_t log = {0};
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, 0, 1);
    options.wait_for_broker_ms = 10000;
    options.log = s_log_lines;
    options.log_arg = &log;
    int status = PS_OK;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    float initial[2] = {1, 2}, gradient[2] = {1, 1}, value[2];
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    ps_tensor_t push = {"w", gradient, 2}, pull = {"w", value, 2};
    cr_assert_eq (ps_worker_init (worker, "w", 2, initial, &sgd), PS_OK);
    for (int step = 0; step < 3; step++) {
        cr_assert_eq (ps_worker_push (worker, &push, 1, 1), PS_OK);
        cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    }
    cr_assert_eq (ps_worker_current_clock (worker), 3);

    //  The broker goes, and another starts on its port, empty
    ps_broker_config_t config = s_config (1, 0);
    broker = ps_test_broker_restart (&broker, &config);

    //  The next call registers again: PS_EREJOINED, and the clock to redo
    //  from is the new broker's, 0, since it restored no checkpoint
    status = ps_worker_push (worker, &push, 1, 1);
    cr_assert_eq (status, PS_EREJOINED, "%s: %s", ps_strerror (status), ps_worker_error (worker));
    cr_assert_eq (ps_worker_current_clock (worker), 0);
    cr_assert (strstr (ps_worker_error (worker), "registered again with tcp://127.0.0.1:"), "%s",
               ps_worker_error (worker));
    char says[160];
    snprintf (says, sizeof says, "INFO rank 0 registered again with %s (incarnation ", endpoint);
    cr_assert (strstr (log.text, says), "%s", log.text);
    cr_assert (strstr (log.text, ", restarted) after "), "%s", log.text);
    cr_assert (strstr (log.text, " to 0\n"), "%s", log.text);
    cr_assert (strstr (log.text, "WARNING rank 0: "), "%s", log.text);

    //  It has no keys: INIT again (always safe), then pull, and go on
    float again[2] = {5, 6};
    cr_assert_eq (ps_worker_init (worker, "w", 2, again, &sgd), PS_OK, "%s",
                  ps_worker_error (worker));
    cr_assert_eq (ps_worker_pull (worker, &pull, 1), PS_OK);
    cr_assert_eq (value[0], 5.0f);
    cr_assert_eq (ps_worker_push (worker, &push, 1, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (ps_worker_current_clock (worker), 1);
    cr_assert_eq (ps_worker_pull (worker, &pull, 1), PS_OK);
    cr_assert_eq (value[0], 4.0f);
    cr_assert_eq (value[1], 5.0f);

    //  Heartbeats go on with the new session: a broker that evicts after
    //  silence keeps the worker
    char *json = ps_broker_info (broker);
    cr_assert_eq (ps_test_json_number (json, "live", false), 1, "%s", json);
    free (json);
    cr_assert_eq (ps_worker_close (&worker), PS_OK);
    ps_broker_destroy (&broker);
}

Test (rejoin, without_waiting_a_restart_fails_at_once, .timeout = 30)
{
    ps_test_job_t job = ps_test_job (1, 0, 0);
    cr_assert_eq (ps_worker_clock (job.worker), PS_OK);
    ps_broker_config_t config = s_config (1, 0);
    job.broker = ps_test_broker_restart (&job.broker, &config);
    int64_t started = zclock_mono ();
    int status = ps_worker_clock (job.worker);
    cr_assert (status == PS_ENOT_REGISTERED || status == PS_ECONNECT, "%s: %s",
               ps_strerror (status), ps_worker_error (job.worker));
    //  At once: a round trip, and at most a bounded look at the new broker
    cr_assert_lt (zclock_mono () - started, 3000);
    cr_assert_eq (ps_worker_current_clock (job.worker), 1, "the clock did not move");
    ps_test_job_stop (&job);
}

//  A psbroker process for workers at staleness, its endpoint in endpoint
static ps_test_child_t
s_psbroker (int workers, int staleness, char *endpoint, size_t size)
{
    char workers_text[16], staleness_text[16], out[1024];
    snprintf (workers_text, sizeof workers_text, "%d", workers);
    snprintf (staleness_text, sizeof staleness_text, "%d", staleness);
    char *args[] = {"--workers", workers_text, "--staleness", staleness_text, NULL};
    return ps_test_psbroker (args, endpoint, size, out, sizeof out);
}

static void
s_psbroker_stop (ps_test_child_t *broker)
{
    kill (broker->pid, SIGKILL);
    ps_test_wait_pid (broker->pid, PS_TEST_WAIT_MS);
    close (broker->out);
    close (broker->err);
}

//  Rank 0 of a BSP job of two whose rank 1 never comes, so that its clock
//  waits: at endpoint, giving up on a silent broker after
//  heartbeat_timeout_ms and on the clock after a minute
static ps_worker_t *
s_waiting_worker (const char *endpoint, int heartbeat_timeout_ms, ps_ticket_t *clock)
{
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, 0, 2);
    options.clock_timeout_ms = 60000;
    options.heartbeat_timeout_ms = heartbeat_timeout_ms;
    int status = PS_OK;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    cr_assert_eq (ps_worker_clock_async (worker, clock), PS_OK);
    //  It waits: the straggler never clocks
    cr_assert_eq (ps_worker_wait (worker, *clock, 300), PS_ETIMEOUT);
    return worker;
}

Test (rejoin, a_clock_waiting_on_a_killed_broker_fails_at_once, .timeout = 30)
{
    char endpoint[64];
    ps_test_child_t broker = s_psbroker (2, 0, endpoint, sizeof endpoint);
    ps_ticket_t clock;
    ps_worker_t *worker = s_waiting_worker (endpoint, 0, &clock);
    int64_t started = zclock_mono ();
    kill (broker.pid, SIGKILL);
    int status = ps_worker_wait (worker, clock, -1);
    int64_t waited = zclock_mono () - started;
    cr_assert_eq (status, PS_ECONNECT, "%s: %s", ps_strerror (status), ps_worker_error (worker));
    char says[128];
    snprintf (says, sizeof says, "lost the connection to broker %s", endpoint);
    cr_assert (strstr (ps_worker_error (worker), says), "%s", ps_worker_error (worker));
    cr_assert_lt (waited, 2000, "noticed after %lld ms, not at once", (long long)waited);
    cr_assert_eq (ps_worker_pending (worker), 0, "the ticket was collected");
    //  Every later call fails at once too
    started = zclock_mono ();
    cr_assert_eq (ps_worker_clock (worker), PS_ECONNECT);
    cr_assert_lt (zclock_mono () - started, 4000);
    ps_worker_close (&worker);
    s_psbroker_stop (&broker);
}

#define HEARTBEAT_TIMEOUT_MS 1500

Test (rejoin, a_clock_waiting_on_a_stopped_broker_fails_within_the_heartbeat_timeout, .timeout = 30)
{
    //  Stopped, its connection stays open and silent: only the heartbeats
    //  tell, not the clock timeout (a minute)
    char endpoint[64];
    ps_test_child_t broker = s_psbroker (2, 0, endpoint, sizeof endpoint);
    ps_ticket_t clock;
    ps_worker_t *worker = s_waiting_worker (endpoint, HEARTBEAT_TIMEOUT_MS, &clock);
    int64_t started = zclock_mono ();
    kill (broker.pid, SIGSTOP);
    int status = ps_worker_wait (worker, clock, -1);
    int64_t waited = zclock_mono () - started;
    cr_assert_eq (status, PS_ECONNECT, "%s: %s", ps_strerror (status), ps_worker_error (worker));
    cr_assert (strstr (ps_worker_error (worker), "lost the connection to broker tcp://127.0.0.1:"),
               "%s", ps_worker_error (worker));
    cr_assert_lt (waited, HEARTBEAT_TIMEOUT_MS + 1500, "noticed after %lld ms", (long long)waited);
    cr_assert_gt (waited, HEARTBEAT_TIMEOUT_MS / 4, "noticed after %lld ms: not by silence",
                  (long long)waited);
    ps_worker_close (&worker);
    s_psbroker_stop (&broker);
}

Test (rejoin, a_call_to_a_broker_that_went_fails_at_once, .timeout = 30)
{
    ps_test_job_t job = ps_test_job (1, 0, 0);
    cr_assert_eq (ps_worker_clock (job.worker), PS_OK);
    int port = ps_broker_port (job.broker);
    ps_broker_destroy (&job.broker);
    int held = ps_test_hold_port (port);
    int64_t started = zclock_mono ();
    //  The job's clock timeout is PS_TEST_WAIT_MS (20 s), the call's 10 s
    cr_assert_eq (ps_worker_clock (job.worker), PS_ECONNECT, "%s", ps_worker_error (job.worker));
    //  A look, bounded by 2 s, for a broker that restarted, and no more
    cr_assert_lt (zclock_mono () - started, 3000);
    close (held);
    ps_test_job_stop (&job);
}

// ------------------------------------------------------------ eviction

//  Read one byte from fd within PS_TEST_WAIT_MS; it, or -1
static int
s_read_byte (int fd)
{
    struct pollfd item = {fd, POLLIN, 0};
    unsigned char byte;
    if (poll (&item, 1, PS_TEST_WAIT_MS) != 1 || read (fd, &byte, 1) != 1)
        return -1;
    return byte;
}

//  The child of the eviction test: reads the endpoint on command, joins
//  with a wait for the broker, clocks once, says 'R', waits for 'G', then
//  clocks twice more and writes both statuses (as two bytes, negated) on
//  report. Exits 0, or 1 when something failed before the clocks.
static void
s_paused_worker (int command, int report)
{
    char endpoint[64] = "";
    for (size_t i = 0; i + 1 < sizeof endpoint; i++) {
        int byte = s_read_byte (command);
        if (byte <= 0)
            break;
        endpoint[i] = (char)byte;
    }
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = endpoint;
    options.timeout_ms = 10000;
    options.wait_for_broker_ms = 10000;
    int status;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    if (!worker || ps_worker_clock (worker) != PS_OK || write (report, "R", 1) != 1 ||
        s_read_byte (command) != 'G')
        _exit (1);
    unsigned char outcome[3] = {(unsigned char)-ps_worker_clock (worker),
                                (unsigned char)-ps_worker_clock (worker),
                                (unsigned char)ps_worker_current_clock (worker)};
    ssize_t written = write (report, outcome, sizeof outcome);
    ps_worker_close (&worker);
    _exit (written == sizeof outcome ? 0 : 1);
}

Test (rejoin, a_worker_paused_past_its_eviction_rejoins_by_itself, .timeout = 30)
{
    //  The child is made before any thread of this process: it runs a
    //  worker of its own, which this process pauses and resumes
    int command[2], report[2];
    cr_assert_eq (pipe (command), 0);
    cr_assert_eq (pipe (report), 0);
    pid_t child = fork ();
    cr_assert_neq (child, -1);
    if (child == 0) {
        close (command[1]);
        close (report[0]);
        s_paused_worker (command[0], report[1]);
    }
    close (command[0]);
    close (report[1]);
    //  A broker that evicts after 500 ms of silence (ASP)
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, -1, 500, endpoint, sizeof endpoint);
    cr_assert_eq (write (command[1], endpoint, strlen (endpoint) + 1),
                  (ssize_t)strlen (endpoint) + 1);
    cr_assert_eq (s_read_byte (report[0]), 'R', "the child did not join");

    //  Paused (heartbeats too) until the broker has evicted it
    kill (child, SIGSTOP);
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    bool evicted = false;
    while (!evicted && zclock_mono () < deadline) {
        char *json = ps_broker_info (broker);
        evicted = ps_test_json_number (json, "live", false) == 0;
        free (json);
        zclock_sleep (20);
    }
    kill (child, SIGCONT);
    cr_assert (evicted, "the broker did not evict the paused worker");
    cr_assert_eq (write (command[1], "G", 1), 1);

    //  Its next call registered again, and the one after went on
    int first = s_read_byte (report[0]);
    int second = s_read_byte (report[0]);
    int clock = s_read_byte (report[0]);
    cr_assert_eq (ps_test_wait_pid (child, PS_TEST_WAIT_MS), 0);
    cr_assert_eq (-first, PS_EREJOINED, "first call after the pause: %s", ps_strerror (-first));
    cr_assert_eq (-second, PS_OK, "second call: %s", ps_strerror (-second));
    //  It came back at the job's clock (1: it was alone), and clocked once
    cr_assert_eq (clock, 2);
    close (command[1]);
    close (report[0]);
    ps_broker_destroy (&broker);
}

// ------------------------------------------------------------ tickets

Test (rejoin, every_pending_ticket_completes_with_rejoined, .timeout = 30)
{
    //  BSP for two: rank 1 joins and never clocks, so that rank 0's clock
    //  and the pull behind it wait at the broker
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, 0, 2);
    options.wait_for_broker_ms = 10000;
    int status = PS_OK;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    ps_worker_t *idle = ps_test_worker (endpoint, 1, 2, PS_TEST_WAIT_MS);
    cr_assert (worker && idle);
    float value[4] = {0};
    ps_tensor_t tensor = {"w", value, 4};
    cr_assert_eq (ps_worker_init (worker, "w", 4, NULL, NULL), PS_OK);
    ps_ticket_t tickets[3];
    cr_assert_eq (ps_worker_push_async (worker, &tensor, 1, 1, &tickets[0]), PS_OK);
    cr_assert_eq (ps_worker_clock_async (worker, &tickets[1]), PS_OK);
    cr_assert_eq (ps_worker_pull_async (worker, &tensor, 1, &tickets[2]), PS_OK);
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    bool parked = false;
    while (!parked && zclock_mono () < deadline) {
        char *json = ps_broker_info (broker);
        parked = ps_test_json_number (json, "parked_now", false) == 2;
        free (json);
        zclock_sleep (5);
    }
    cr_assert (parked, "the clock and the pull did not wait");

    //  The broker restarts: the old one answers what it parked with
    //  "shutting down", the worker registers with the new one
    ps_broker_config_t config = s_config (2, 0);
    broker = ps_test_broker_restart (&broker, &config);
    for (int i = 2; i >= 0; i--) {
        status = ps_worker_wait (worker, tickets[i], PS_TEST_WAIT_MS);
        cr_assert_eq (status, PS_EREJOINED, "ticket %d: %s: %s", i, ps_strerror (status),
                      ps_worker_error (worker));
    }
    cr_assert_eq (ps_worker_pending (worker), 0);
    cr_assert_eq (ps_worker_current_clock (worker), 0);
    //  Its registration works: a key again, and a clock of its own (rank
    //  1 has not come back: the job's clock waits for it, not the INIT)
    cr_assert_eq (ps_worker_init (worker, "w", 4, NULL, NULL), PS_OK);
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK);
    ps_worker_close (&idle);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

typedef struct {
    pid_t pid;    //  the stopped broker
    int after_ms; //  when to resume it
} resume_t;

static void *
s_resume_later (void *arg)
{
    resume_t *resume = arg;
    zclock_sleep (resume->after_ms);
    kill (resume->pid, SIGCONT);
    return NULL;
}

Test (rejoin, a_blocking_push_to_a_broker_that_stopped_then_resumed_gives_its_buffers_back,
      .timeout = 60)
{
    char endpoint[64];
    ps_test_child_t broker = s_psbroker (1, -1, endpoint, sizeof endpoint);
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, 0, 1);
    options.heartbeat_timeout_ms = HEARTBEAT_TIMEOUT_MS;
    options.wait_for_broker_ms = 20000;
    int status = PS_OK;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    //  More than the loopback connection's buffers take: the push lends
    //  the caller's memory, and libzmq holds what it could not send
    size_t count = 16 << 20;
    cr_assert_eq (ps_worker_init (worker, "big", count, NULL, NULL), PS_OK);
    kill (broker.pid, SIGSTOP);
    resume_t resume = {broker.pid, 2 * HEARTBEAT_TIMEOUT_MS};
    pthread_t thread;
    pthread_create (&thread, NULL, s_resume_later, &resume);

    //  The connection is lost after the heartbeat timeout, the worker
    //  tries again until the broker answers: the push completes with
    //  PS_EREJOINED, and its memory is the caller's again (ASan would catch
    //  libzmq reading it after the free)
    float *gradient = calloc (count, sizeof (float));
    ps_tensor_t push = {"big", gradient, count};
    status = ps_worker_push (worker, &push, 1, 1);
    memset (gradient, 0x7f, count * sizeof (float));
    free (gradient);
    pthread_join (thread, NULL);
    cr_assert_eq (status, PS_EREJOINED, "%s: %s", ps_strerror (status), ps_worker_error (worker));
    //  The same broker process, which still has the key: the worker goes on
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    float *value = malloc (count * sizeof (float));
    ps_tensor_t pull = {"big", value, count};
    cr_assert_eq (ps_worker_pull (worker, &pull, 1), PS_OK, "%s", ps_worker_error (worker));
    free (value);
    ps_worker_close (&worker);
    s_psbroker_stop (&broker);
}

// ------------------------------------------------------------ groups

//  Restart shard of a group of two for one ASP worker
static ps_broker_t *
s_restart_shard (ps_broker_t **broker, uint32_t shard)
{
    ps_broker_config_t config = s_config (1, -1);
    config.shard = shard;
    config.shards = 2;
    return ps_test_broker_restart (broker, &config);
}

Test (rejoin, a_group_restarted_at_one_clock_takes_the_worker_back, .timeout = 30)
{
    ps_broker_t *brokers[2];
    char list[256];
    cr_assert_eq (ps_test_group (2, 1, -1, brokers, list, sizeof list), 0);
    ps_worker_options_t options;
    ps_test_options (&options, list, 0, 1);
    options.wait_for_broker_ms = 10000;
    int status = PS_OK;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    for (int clock = 0; clock < 3; clock++)
        cr_assert_eq (ps_worker_clock (worker), PS_OK);

    //  Both restart, empty: both name clock 0
    brokers[0] = s_restart_shard (&brokers[0], 0);
    brokers[1] = s_restart_shard (&brokers[1], 1);
    status = ps_worker_clock (worker);
    cr_assert_eq (status, PS_EREJOINED, "%s: %s", ps_strerror (status), ps_worker_error (worker));
    cr_assert_eq (ps_worker_current_clock (worker), 0);
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));

    //  One restarts: it names 0, the other 1. The other cannot roll back
    //  to clock 0, having no checkpoints (test_group_restart has groups
    //  that do): the call fails, saying so
    brokers[1] = s_restart_shard (&brokers[1], 1);
    status = ps_worker_clock (worker);
    cr_assert_eq (status, PS_EGROUP, "%s: %s", ps_strerror (status), ps_worker_error (worker));
    cr_assert (strstr (ps_worker_error (worker), "refused hello: cannot roll back to clock 0: "
                                                 "this broker was started without --checkpoint"),
               "%s", ps_worker_error (worker));
    ps_worker_close (&worker);
    ps_broker_destroy (&brokers[0]);
    ps_broker_destroy (&brokers[1]);
}
