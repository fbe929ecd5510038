/*  =========================================================================
    test_psworker - the training program psworker (worker/trainer/) end
    to end, and the scripts of tools/ that run it

    Usage, as tools/demo runs it for each worker of a job:

        psworker --broker tcp://127.0.0.1:5555 --rank 0 --workers 2 \
                 --data synthetic --json

    The first test does that for two workers and checks what they learnt;
    the others run psworker against an in-process broker on an ephemeral
    loopback port, or against none, then --help, bad options and
    tools/demo, and against a psbroker process killed mid-run (and started
    again, or not). Binaries come from PSMQ_BUILD_DIR and scripts from
    PSMQ_SOURCE_DIR, which ctest sets (else . and ..).

    usage: cd build && ./test_psworker [--filter 'psworker/<test>' or 'tools/<test>']
    ========================================================================= */

#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  What three workers of the synthetic set reach in 3 epochs under SSP
//  with pull-ahead: BSP and --no-overlap reach 0.97 or more there (the
//  hidden layer of 32 the tests use)
#define PULL_AHEAD_ACCURACY 0.95

//  Run psworker with args (NULL-terminated) to its exit, for up to
//  timeout_ms: its exit status (-1 when it had to be killed), and all it
//  printed in *text, which the caller frees
static int
s_run (char *const args[], int timeout_ms, char **text)
{
    char out[512];
    ps_test_path ("psworker.out", out, sizeof out);
    int status = ps_test_wait_pid (ps_test_psworker (args, out), timeout_ms);
    *text = ps_test_slurp (out);
    return status;
}

//  Wait for the psworker processes pids, each to exit 0 within 90 s; what
//  each printed is in the file outs[i]
static void
s_wait_all (const pid_t *pids, char (*outs)[600], int count)
{
    for (int i = 0; i < count; i++) {
        int status = ps_test_wait_pid (pids[i], 90000);
        char *text = ps_test_slurp (outs[i]);
        cr_assert_eq (status, 0, "process %d exited %d: %s", i, status, text);
        free (text);
    }
}

Test (psworker, two_workers_learn_the_synthetic_set, .timeout = 120)
{
    //  A broker for two workers, and a psworker process for each rank
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    pid_t pids[2];
    char outs[2][600];
    for (int rank = 0; rank < 2; rank++) {
        char name[32];
        snprintf (name, sizeof name, "worker%d.out", rank);
        ps_test_path (name, outs[rank], sizeof outs[rank]);
        char *model[] = {"--model", "mlp", NULL};
        pids[rank] = ps_test_psworker_train (endpoint, rank, 1, 2, 3, model, outs[rank]);
    }
    s_wait_all (pids, outs, 2);
    //  Each prints a JSON record per epoch, the last one final
    for (int rank = 0; rank < 2; rank++) {
        char *text = ps_test_slurp (outs[rank]);
        cr_assert (ps_test_json_bool (text, "final", true), "no final record: %s", text);
        double first_loss = ps_test_json_number (text, "train_loss", false);
        double last_loss = ps_test_json_number (text, "train_loss", true);
        double accuracy = ps_test_json_number (text, "test_accuracy", true);
        cr_assert (last_loss < first_loss, "loss did not fall: %g -> %g", first_loss, last_loss);
        //  Chance is 0.1 on ten classes
        cr_assert (accuracy > 0.6, "accuracy %g", accuracy);
        cr_assert_eq (ps_test_json_number (text, "clocks", true), 3 * (12000 / 2 / 32));
        cr_assert (ps_test_json_number (text, "wait_seconds", true) >= 0);
        free (text);
    }
    ps_broker_destroy (&broker);
}

//  Train one worker of one epoch... epochs through a fresh broker of
//  staleness, with more arguments; its output (the caller frees)
static char *
s_train_through (int32_t staleness, int epochs, char *const more[], const char *name)
{
    char endpoint[64], out[600];
    ps_broker_t *broker = ps_test_broker (1, staleness, 0, endpoint, sizeof endpoint);
    ps_test_path (name, out, sizeof out);
    pid_t pids[1] = {ps_test_psworker_train (endpoint, 0, 1, 1, epochs, more, out)};
    s_wait_all (pids, (char (*)[600])out, 1);
    ps_broker_destroy (&broker);
    return ps_test_slurp (out);
}

//  Whether two runs' records say the same losses and accuracies, epoch
//  by epoch, to the digit printed
static bool
s_same_losses (const char *a, const char *b)
{
    const char *fields[] = {"\"train_loss\":", "\"test_accuracy\":"};
    for (size_t f = 0; f < 2; f++) {
        const char *x = a, *y = b;
        while ((x = strstr (x, fields[f])) != NULL) {
            y = strstr (y, fields[f]);
            if (!y)
                return false;
            x += strlen (fields[f]);
            y += strlen (fields[f]);
            size_t nx = strcspn (x, ",}"), ny = strcspn (y, ",}");
            if (nx != ny || strncmp (x, y, nx) != 0)
                return false;
        }
        if (strstr (y, fields[f]))
            return false;
    }
    return true;
}

Test (psworker, no_broker_trains_as_one_worker_through_a_broker, .timeout = 180)
{
    //  The same training, through a broker and alone (--no-broker): the
    //  same rule (Adam, cosine decay, the broker's defaults) on the same
    //  gradients gives the same losses and accuracy. Through the broker
    //  with the overlap (by default: BSP, layer by layer; the MLP's small
    //  second layer fused with the first), with every layer in requests
    //  of its own (--fuse-bytes 0) and without overlap: overlapping must
    //  not change a bit of BSP's arithmetic.
    char *overlapped = s_train_through (0, 2, NULL, "through.out");
    char *unfused[] = {"--fuse-bytes", "0", NULL};
    char *per_layer = s_train_through (0, 2, unfused, "per_layer.out");
    char *no_overlap[] = {"--no-overlap", NULL};
    char *waiting = s_train_through (0, 2, no_overlap, "waiting.out");
    char alone_out[600];
    ps_test_path ("alone.out", alone_out, sizeof alone_out);
    char *no_broker[] = {"--no-broker", NULL};
    pid_t pids[1] = {
        ps_test_psworker_train ("tcp://127.0.0.1:1", 0, 1, 1, 2, no_broker, alone_out)};
    s_wait_all (pids, (char (*)[600])alone_out, 1);
    char *alone = ps_test_slurp (alone_out);
    cr_assert (ps_test_json_bool (alone, "final", true), "%s", alone);
    cr_assert (strstr (overlapped, "\"overlap\":\"layers\""), "%s", overlapped);
    cr_assert (strstr (waiting, "\"overlap\":\"none\""), "%s", waiting);
    cr_assert (s_same_losses (alone, overlapped), "alone:\n%s\noverlapped:\n%s", alone, overlapped);
    cr_assert (s_same_losses (alone, per_layer), "alone:\n%s\n--fuse-bytes 0:\n%s", alone,
               per_layer);
    cr_assert (s_same_losses (alone, waiting), "alone:\n%s\n--no-overlap:\n%s", alone, waiting);
    cr_assert_eq (ps_test_json_number (alone, "clocks", true), 2 * (12000 / 32));
    cr_assert_eq (ps_test_json_number (overlapped, "clocks", true), 2 * (12000 / 32));
    cr_assert_eq (ps_test_json_number (alone, "wait_seconds", true), 0);
    free (overlapped);
    free (per_layer);
    free (waiting);
    free (alone);
}

Test (psworker, workers_pull_ahead_under_ssp, .timeout = 180)
{
    //  Three workers under SSP 2: each computes a step while the one
    //  before is on its way (pull-ahead), and still learns what BSP does
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (3, 2, 0, endpoint, sizeof endpoint);
    pid_t pids[3];
    char outs[3][600];
    for (int rank = 0; rank < 3; rank++) {
        char name[32];
        snprintf (name, sizeof name, "ahead%d.out", rank);
        ps_test_path (name, outs[rank], sizeof outs[rank]);
        pids[rank] = ps_test_psworker_train (endpoint, rank, 1, 3, 3, NULL, outs[rank]);
    }
    s_wait_all (pids, outs, 3);
    ps_broker_destroy (&broker);
    for (int rank = 0; rank < 3; rank++) {
        char *text = ps_test_slurp (outs[rank]);
        cr_assert (strstr (text, "\"overlap\":\"ahead\""), "%s", text);
        cr_assert_eq (ps_test_json_number (text, "clocks", true), 3 * (12000 / 3 / 32), "%s", text);
        double accuracy = ps_test_json_number (text, "test_accuracy", true);
        cr_assert (accuracy > PULL_AHEAD_ACCURACY, "rank %d: accuracy %g\n%s", rank, accuracy,
                   text);
        free (text);
    }
}

Test (psworker, missing_data_names_the_package)
{
    char *args[] = {"--broker", "tcp://127.0.0.1:9",    "--rank", "0", "--workers", "1",
                    "--data",   "/nonexistent/fashion", NULL};
    char *text;
    cr_assert_eq (s_run (args, PS_TEST_WAIT_MS, &text), 1, "%s", text);
    cr_assert (strstr (text, "dataset-fashion-mnist"), "%s", text);
    cr_assert (strstr (text, "synthetic"), "%s", text);
    free (text);
}

Test (psworker, help_and_bad_arguments)
{
    char *help[] = {"--help", NULL};
    char *text;
    cr_assert_eq (s_run (help, PS_TEST_WAIT_MS, &text), 0, "%s", text);
    cr_assert (strstr (text, "--staleness") == NULL && strstr (text, "--delay-ms"), "%s", text);
    cr_assert (strstr (text, "--wait-for-broker SECONDS"), "%s", text);
    free (text);

    //  Every bad value exits 2 naming its flag and the value; text that is
    //  no number at all is told apart from a number out of range
    struct {
        char *arg;
        char *value;
        const char *says;
    } bad[] = {
        {"--model", "resnet", "psworker: --model 'resnet'"},
        {"--lr", "-1", "psworker: --lr '-1' must be a number from"},
        {"--lr", "nan", "psworker: --lr 'nan' is not a number"},
        {"--lr", "fast", "psworker: --lr 'fast' is not a number"},
        {"--momentum", "1.5", "psworker: --momentum '1.5' must be a number from"},
        {"--delay-prob", "nan", "psworker: --delay-prob 'nan' is not a number"},
        {"--epochs", "two", "psworker: --epochs 'two' is not a whole number"},
        {"--epochs", "0", "psworker: --epochs '0' must be a whole number from 1"},
        {"--wait-for-broker", "-1",
         "psworker: --wait-for-broker '-1' must be a whole number from 0"},
        {"--data", "-e", "psworker: --data '-e' looks like an option"},
        {"--broker", "tcp://a:1,,tcp://b:2", "--broker 'tcp://a:1,,tcp://b:2' has an empty"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *args[] = {"--broker", "tcp://127.0.0.1:9", "--rank",     "0", "--workers",
                        "1",        bad[i].arg,          bad[i].value, NULL};
        cr_assert_eq (s_run (args, PS_TEST_WAIT_MS, &text), 2, "%s %s: %s", bad[i].arg,
                      bad[i].value, text);
        cr_assert (strstr (text, bad[i].says), "expected '%s' in: %s", bad[i].says, text);
        free (text);
    }

    //  Ranks that do not fit the job, a value left out (getopt would take
    //  the next option for it), and the required flags that are missing,
    //  only those named
    struct {
        char *args[10];
        const char *says;
    } wrong[] = {
        {{"--broker", "tcp://x:1", "--rank", "3", "--workers", "4", "--threads", "2"},
         "--threads 2"},
        {{"--broker", "tcp://x:1", "--rank", "4", "--workers", "4"}, "--rank 4"},
        {{"--broker", "--rank", "0", "--workers", "1"}, "--broker '--rank' looks like an option"},
        {{"--workers", "2", "--rank", "0"}, "psworker: --broker (or PSMQ_BROKER) is required"},
        {{"--data", "synthetic"}, "psworker: --broker (or PSMQ_BROKER) is required"}};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        cr_assert_eq (s_run (wrong[i].args, PS_TEST_WAIT_MS, &text), 2, "%s: %s", wrong[i].says,
                      text);
        cr_assert (strstr (text, wrong[i].says), "expected '%s' in: %s", wrong[i].says, text);
        free (text);
    }
}

Test (psworker, says_whom_it_waits_for_while_no_broker_answers, .timeout = 30)
{
    //  A socket that takes the HELLO and never answers it, like a broker
    //  that is stuck, or an endpoint that is no broker at all
    zsock_t *silent = zsock_new (ZMQ_ROUTER);
    int port = zsock_bind (silent, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    char path[512];
    char *argv[] = {(char *)ps_test_binary ("psworker", path, sizeof path),
                    "--broker",
                    endpoint,
                    "--rank",
                    "0",
                    "--workers",
                    "1",
                    "--data",
                    "synthetic",
                    "--timeout-ms",
                    "4000",
                    NULL};
    ps_test_child_t child = ps_test_spawn (argv);
    char err[4096] = "";
    char says[200];
    snprintf (says, sizeof says, "psworker: rank 0 waiting for the broker at %s (no answer yet",
              endpoint);
    //  The notice comes after 1.5 s of silence, well before the 4 s timeout
    //  (both counted once the data set is made, which takes seconds under
    //  a sanitizer on a loaded machine: the order is what tells)
    cr_assert (ps_test_read_until (child.err, says, err, sizeof err, PS_TEST_WAIT_MS),
               "no notice: %s", err);
    int64_t noticed = zclock_mono ();
    cr_assert_null (strstr (err, "cannot join"), "the notice came after the failure: %s", err);
    //  At the timeout it still fails, saying why
    cr_assert (ps_test_read_until (child.err, "cannot join", err, sizeof err, 10000), "%s", err);
    cr_assert_gt (zclock_mono () - noticed, 1000, "the notice came just before the failure: %s",
                  err);
    cr_assert (strstr (err, "is psbroker running there?"), "%s", err);
    cr_assert_eq (ps_test_wait_pid (child.pid, 5000), 1, "%s", err);
    close (child.out);
    close (child.err);
    zsock_destroy (&silent);
}

Test (psworker, sigterm_leaves_the_job_cleanly, .timeout = 60)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    char out[512];
    ps_test_path ("term.out", out, sizeof out);
    char *args[] = {"--broker", endpoint,    "--rank",   "0",    "--workers", "1",
                    "--data",   "synthetic", "--epochs", "1000", NULL};
    pid_t pid = ps_test_psworker (args, out);
    //  Wait until it trains (its first epoch line), then stop it
    int64_t deadline = zclock_mono () + 30000;
    char *text = ps_test_slurp (out);
    while (!strstr (text, "epoch 1:") && zclock_mono () < deadline) {
        free (text);
        zclock_sleep (50);
        text = ps_test_slurp (out);
    }
    free (text);
    kill (pid, SIGTERM);
    cr_assert_eq (ps_test_wait_pid (pid, PS_TEST_WAIT_MS), 130);
    //  It said BYE: the broker counts no live worker
    char *json = ps_broker_info (broker);
    cr_assert_eq (ps_test_json_number (json, "live", false), 0, "%s", json);
    free (json);
    ps_broker_destroy (&broker);
}

Test (psworker, a_threaded_process_counts_as_its_workers, .timeout = 120)
{
    //  World of 3: one process trains ranks 0 and 1 on two threads, one
    //  process trains rank 2; BSP only moves when all three have pushed
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (3, 0, 0, endpoint, sizeof endpoint);
    char outs[2][600];
    ps_test_path ("threads.out", outs[0], sizeof outs[0]);
    ps_test_path ("single.out", outs[1], sizeof outs[1]);
    pid_t pids[2] = {ps_test_psworker_train (endpoint, 0, 2, 3, 2, NULL, outs[0]),
                     ps_test_psworker_train (endpoint, 2, 1, 3, 2, NULL, outs[1])};
    s_wait_all (pids, outs, 2);
    for (int p = 0; p < 2; p++) {
        char *text = ps_test_slurp (outs[p]);
        cr_assert (ps_test_json_number (text, "test_accuracy", true) > 0.6, "%s", text);
        //  Both processes ran the same clocks: 2 epochs of 12000 / 3 / 32
        cr_assert_eq (ps_test_json_number (text, "clocks", true), 2 * (12000 / 3 / 32), "%s", text);
        free (text);
    }
    char *json = ps_broker_info (broker);
    cr_assert_eq (ps_test_json_number (json, "seen", false), 3, "three workers, two processes: %s",
                  json);
    free (json);
    ps_broker_destroy (&broker);
}

//  ------------------------------------------------- a broker restart

//  Wait up to 60 s until the file at path holds needle; whether it does
static bool
s_file_says (const char *path, const char *needle)
{
    int64_t deadline = zclock_mono () + 60000;
    while (true) {
        char *text = ps_test_slurp (path);
        bool found = strstr (text, needle) != NULL;
        free (text);
        if (found || zclock_mono () > deadline)
            return found;
        zclock_sleep (20);
    }
}

//  A BSP psbroker process for two workers, and two psworker processes that
//  train on it for epochs with --wait-for-broker seconds, killed (SIGKILL)
//  once both have finished their first epoch; outs[i] names rank i's file
static ps_test_child_t
s_train_then_kill (int epochs, const char *seconds, char *endpoint, size_t size, pid_t *pids,
                   char (*outs)[600])
{
    char out[1024];
    char *args[] = {"--workers", "2", NULL};
    ps_test_child_t broker = ps_test_psbroker (args, endpoint, size, out, sizeof out);
    for (int rank = 0; rank < 2; rank++) {
        char name[32];
        snprintf (name, sizeof name, "rank%d.out", rank);
        ps_test_path (name, outs[rank], sizeof outs[rank]);
        char *more[] = {"--wait-for-broker", (char *)seconds, NULL};
        pids[rank] = ps_test_psworker_train (endpoint, rank, 1, 2, epochs, more, outs[rank]);
    }
    for (int rank = 0; rank < 2; rank++)
        cr_assert (s_file_says (outs[rank], "\"epoch\":1,"), "rank %d trained no epoch", rank);
    kill (broker.pid, SIGKILL);
    ps_test_wait_pid (broker.pid, PS_TEST_WAIT_MS);
    close (broker.out);
    close (broker.err);
    return broker;
}

Test (psworker, workers_redo_the_steps_of_a_broker_that_restarted, .timeout = 120)
{
    char endpoint[64];
    pid_t pids[2];
    char outs[2][600];
    s_train_then_kill (4, "30", endpoint, sizeof endpoint, pids, outs);
    //  Started again with the same command on the same port, held from
    //  the moment the old listener is gone so that no other test takes it
    int port = ps_test_endpoint_port (endpoint);
    int held = ps_test_hold_port (port);
    char port_text[16], again[64], out[1024];
    snprintf (port_text, sizeof port_text, "%d", port);
    char *args[] = {"--workers", "2", "--port", port_text, NULL};
    ps_test_child_t broker = ps_test_psbroker (args, again, sizeof again, out, sizeof out);
    close (held);
    cr_assert_str_eq (again, endpoint);

    //  Both finish, after the run's number of clocks, some of them redone
    s_wait_all (pids, outs, 2);
    for (int rank = 0; rank < 2; rank++) {
        char *text = ps_test_slurp (outs[rank]);
        cr_assert (ps_test_json_bool (text, "final", true), "no final record: %s", text);
        cr_assert_eq (ps_test_json_number (text, "clocks", true), 4 * (12000 / 2 / 32), "%s", text);
        cr_assert_geq (ps_test_json_number (text, "redone_clocks", true), 12000 / 2 / 32,
                       "at least the first epoch: %s", text);
        char says[96];
        snprintf (says, sizeof says,
                  "psworker: rank %d: broker restarted (or evicted us); redoing from clock 0 (was ",
                  rank);
        cr_assert (strstr (text, says), "%s", text);
        cr_assert (ps_test_json_number (text, "test_accuracy", true) > 0.6, "%s", text);
        free (text);
    }
    kill (broker.pid, SIGKILL);
    ps_test_wait_pid (broker.pid, PS_TEST_WAIT_MS);
    close (broker.out);
    close (broker.err);
}

Test (psworker, without_waiting_for_the_broker_workers_fail_at_once, .timeout = 120)
{
    char endpoint[64];
    pid_t pids[2];
    char outs[2][600];
    s_train_then_kill (1000, "0", endpoint, sizeof endpoint, pids, outs);
    char says[128];
    snprintf (says, sizeof says, "lost the connection to broker %s", endpoint);
    for (int rank = 0; rank < 2; rank++) {
        int status = ps_test_wait_pid (pids[rank], 5000);
        char *text = ps_test_slurp (outs[rank]);
        cr_assert (status > 0, "rank %d exited %d: %s", rank, status, text);
        cr_assert (strstr (text, says), "%s", text);
        free (text);
    }
}

//  ------------------------------------------------- tools/ scripts

//  What a script's --help must print: its comment block from line 2 to
//  the first line of code, each line without its "#" and up to two spaces
static char *
s_usage_comment (const char *script)
{
    char *text = ps_test_slurp (script);
    char *usage = calloc (1, strlen (text) + 1);
    cr_assert (usage);
    const char *line = strchr (text, '\n');
    cr_assert (line, "%s is empty", script);
    for (line++; *line == '#'; line = strchr (line, '\n') + 1) {
        const char *start = line + 1;
        for (int i = 0; i < 2 && *start == ' '; i++)
            start++;
        strncat (usage, start, strcspn (start, "\n") + 1);
        cr_assert (strchr (line, '\n'), "%s ends in its comment", script);
    }
    free (text);
    return usage;
}

//  Run tools/<script> with args (NULL-terminated) in a process group of
//  its own for up to timeout_ms: its exit status (-1 when it had to be
//  killed); its stdout in *out and its stderr in *err (both into *out
//  when err is NULL), which the caller frees
static int
s_script (const char *script, char *const args[], int timeout_ms, char **out, char **err)
{
    char path[512], out_path[512], err_path[512];
    char *argv[16] = {(char *)ps_test_script (script, path, sizeof path)};
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt (i + 2, 16, "too many arguments for %s", script);
        argv[i + 1] = args[i];
    }
    ps_test_path ("script.out", out_path, sizeof out_path);
    ps_test_path ("script.err", err_path, sizeof err_path);
    int status = ps_test_run_group (argv, out_path, err ? err_path : NULL, timeout_ms);
    *out = ps_test_slurp (out_path);
    if (err)
        *err = ps_test_slurp (err_path);
    return status;
}

Test (tools, help_prints_the_usage_comment_of_every_script, .timeout = 60)
{
    const char *scripts[] = {"check", "setup", "demo", "tsan-check", "flaky"};
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        char path[512];
        char *expected = s_usage_comment (ps_test_script (scripts[i], path, sizeof path));
        cr_assert (strstr (expected, "usage: tools/"), "%s: %s", scripts[i], expected);
        //  tsan-check used to take --help for a go and start its build: the
        //  bound and the group kill keep that from running on
        char *help[] = {"--help", NULL};
        char *out, *err;
        cr_assert_eq (s_script (scripts[i], help, 10000, &out, &err), 0, "%s --help", scripts[i]);
        cr_assert_str_eq (out, expected, "%s --help", scripts[i]);
        cr_assert_str_empty (err, "%s --help: %s", scripts[i], err);
        free (out);
        free (err);
        free (expected);

        char *bogus[] = {"--bogus", NULL};
        cr_assert_eq (s_script (scripts[i], bogus, 10000, &out, NULL), 2, "%s --bogus", scripts[i]);
        char says[128];
        snprintf (says, sizeof says, "tools/%s: unknown option '--bogus'", scripts[i]);
        cr_assert (strstr (out, says), "%s", out);
        free (out);
    }
}

Test (tools, demo_counts_must_be_at_least_one, .timeout = 30)
{
    struct {
        char *option;
        char *value;
        const char *says;
    } bad[] = {{"--workers", "-1", "tools/demo: --workers '-1' must be at least 1"},
               {"--workers", "0", "tools/demo: --workers '0' must be at least 1"},
               {"--brokers", "-3", "tools/demo: --brokers '-3' must be at least 1"},
               {"--workers", "five", "tools/demo: --workers 'five' is not a number"},
               {"--workers", "1.5", "tools/demo: --workers '1.5' is not a number"},
               {"--workers", "5000", "tools/demo: --workers '5000' must be at most 4096"},
               {"--data", "--epochs",
                "tools/demo: --data needs a directory or synthetic, not "
                "'--epochs'"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *args[] = {"--no-setup", bad[i].option, bad[i].value, NULL};
        char *out;
        cr_assert_eq (s_script ("demo", args, 10000, &out, NULL), 2, "%s %s: %s", bad[i].option,
                      bad[i].value, out);
        cr_assert (strstr (out, bad[i].says), "expected '%s' in: %s", bad[i].says, out);
        free (out);
    }
}

Test (tools, demo_shows_every_workers_lines, .timeout = 120)
{
    char *args[] = {"--no-setup", "--data", "synthetic", "--epochs", "1", "--workers", "3", NULL};
    char *out;
    cr_assert_eq (s_script ("demo", args, 100000, &out, NULL), 0, "%s", out);
    //  The last rank started is the one whose log tail used to miss
    for (int rank = 0; rank < 3; rank++) {
        char epoch[32], done[32];
        snprintf (epoch, sizeof epoch, "rank %d epoch 1:", rank);
        snprintf (done, sizeof done, "rank %d done:", rank);
        cr_assert (strstr (out, epoch) && strstr (out, done), "no lines of rank %d: %s", rank, out);
    }
    free (out);
}

Test (tools, demo_prints_why_a_worker_failed, .timeout = 60)
{
    //  Every worker fails at once, before the demo's log reader can start
    char *args[] = {"--no-setup", "--data", "/nonexistent/fashion", "--workers", "3", NULL};
    char *out, *err;
    cr_assert_eq (s_script ("demo", args, 30000, &out, &err), 1, "%s%s", out, err);
    for (int rank = 0; rank < 3; rank++) {
        char says[64];
        snprintf (says, sizeof says, "demo: worker rank %d failed (exit 1)", rank);
        const char *at = strstr (err, says);
        cr_assert (at, "expected '%s' on stderr: %s", says, err);
        //  Its reason follows, from its own log
        cr_assert (strstr (at, "dataset-fashion-mnist"), "no reason for rank %d: %s", rank, err);
    }
    cr_assert (strstr (err, "demo: a worker failed"), "%s", err);
    free (out);
    free (err);
}
