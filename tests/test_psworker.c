/*  psworker end to end: the real psbroker and two psworker processes on an
    ephemeral loopback port, training on the synthetic data set. */

#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test (psworker, two_workers_learn_the_synthetic_set, .timeout = 120)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    cr_assert (broker);
    char path[512];
    ps_test_binary ("psworker", path, sizeof path);
    char dir[] = "/tmp/psworker-test-XXXXXX";
    cr_assert (mkdtemp (dir));
    pid_t pids[2];
    char outs[2][600];
    for (int rank = 0; rank < 2; rank++) {
        char rank_text[8];
        snprintf (rank_text, sizeof rank_text, "%d", rank);
        char *argv[] = {path,  "--broker", endpoint,    "--rank",   rank_text, "--workers",
                        "2",   "--data",   "synthetic", "--epochs", "3",       "--model",
                        "mlp", "--hidden", "32",        "--json",   NULL};
        snprintf (outs[rank], sizeof outs[rank], "%s/worker%d.out", dir, rank);
        pids[rank] = ps_test_spawn_to_file (argv, outs[rank]);
    }
    for (int rank = 0; rank < 2; rank++)
        cr_assert_eq (ps_test_wait_pid (pids[rank], 90000), 0, "worker %d: %s", rank,
                      ps_test_slurp (outs[rank]));
    for (int rank = 0; rank < 2; rank++) {
        char *text = ps_test_slurp (outs[rank]);
        cr_assert (strstr (text, "\"final\":true"), "no final record: %s", text);
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

Test (psworker, missing_data_names_the_package)
{
    char path[512];
    ps_test_binary ("psworker", path, sizeof path);
    char out[] = "/tmp/psworker-missing-XXXXXX";
    int fd = mkstemp (out);
    close (fd);
    char *argv[] = {path, "--broker", "tcp://127.0.0.1:9",    "--rank", "0", "--workers",
                    "1",  "--data",   "/nonexistent/fashion", NULL};
    pid_t pid = ps_test_spawn_to_file (argv, out);
    cr_assert_eq (ps_test_wait_pid (pid, PS_TEST_WAIT_MS), 1);
    char *text = ps_test_slurp (out);
    cr_assert (strstr (text, "dataset-fashion-mnist"), "%s", text);
    cr_assert (strstr (text, "synthetic"), "%s", text);
    free (text);
    unlink (out);
}

Test (psworker, help_and_bad_arguments)
{
    char path[512];
    ps_test_binary ("psworker", path, sizeof path);
    char out[] = "/tmp/psworker-args-XXXXXX";
    int fd = mkstemp (out);
    close (fd);
    char *help[] = {path, "--help", NULL};
    cr_assert_eq (ps_test_wait_pid (ps_test_spawn_to_file (help, out), PS_TEST_WAIT_MS), 0);
    char *text = ps_test_slurp (out);
    cr_assert (strstr (text, "--staleness") == NULL && strstr (text, "--delay-ms"), "%s", text);
    free (text);

    char *bad_threads[] = {path,        "--broker", "tcp://x:1", "--rank", "3",
                           "--workers", "4",        "--threads", "2",      NULL};
    cr_assert_eq (ps_test_wait_pid (ps_test_spawn_to_file (bad_threads, out), PS_TEST_WAIT_MS), 2);
    text = ps_test_slurp (out);
    cr_assert (strstr (text, "--threads 2"), "%s", text);
    free (text);

    char *bad_rank[] = {path, "--broker", "tcp://x:1", "--rank", "4", "--workers", "4", NULL};
    cr_assert_eq (ps_test_wait_pid (ps_test_spawn_to_file (bad_rank, out), PS_TEST_WAIT_MS), 2);
    text = ps_test_slurp (out);
    cr_assert (strstr (text, "--rank 4"), "%s", text);
    free (text);

    char *bad_model[] = {path,        "--broker", "tcp://x:1", "--rank", "0",
                         "--workers", "1",        "--model",   "resnet", NULL};
    cr_assert_eq (ps_test_wait_pid (ps_test_spawn_to_file (bad_model, out), PS_TEST_WAIT_MS), 2);
    text = ps_test_slurp (out);
    cr_assert (strstr (text, "'resnet'"), "%s", text);
    free (text);
    unlink (out);
}

Test (psworker, sigterm_leaves_the_job_cleanly, .timeout = 60)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    char path[512];
    ps_test_binary ("psworker", path, sizeof path);
    char out[] = "/tmp/psworker-term-XXXXXX";
    int fd = mkstemp (out);
    close (fd);
    char *argv[] = {path, "--broker", endpoint,    "--rank",   "0",    "--workers",
                    "1",  "--data",   "synthetic", "--epochs", "1000", NULL};
    pid_t pid = ps_test_spawn_to_file (argv, out);
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
    cr_assert (strstr (json, "\"live\":0"), "%s", json);
    free (json);
    unlink (out);
    ps_broker_destroy (&broker);
}

Test (psworker, a_threaded_process_counts_as_its_workers, .timeout = 120)
{
    //  World of 3: one process trains ranks 0 and 1 on two threads, one
    //  process trains rank 2; BSP only moves when all three have pushed
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (3, 0, 0, endpoint, sizeof endpoint);
    char path[512];
    ps_test_binary ("psworker", path, sizeof path);
    char dir[] = "/tmp/psworker-threads-XXXXXX";
    cr_assert (mkdtemp (dir));
    char outs[2][600];
    char *ranks[2] = {"0", "2"};
    char *threads[2] = {"2", "1"};
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        char *argv[] = {path, "--broker",  endpoint,   "--rank", ranks[p],    "--workers",
                        "3",  "--threads", threads[p], "--data", "synthetic", "--epochs",
                        "2",  "--hidden",  "32",       "--json", NULL};
        snprintf (outs[p], sizeof outs[p], "%s/process%d.out", dir, p);
        pids[p] = ps_test_spawn_to_file (argv, outs[p]);
    }
    for (int p = 0; p < 2; p++)
        cr_assert_eq (ps_test_wait_pid (pids[p], 90000), 0, "process %d: %s", p,
                      ps_test_slurp (outs[p]));
    for (int p = 0; p < 2; p++) {
        char *text = ps_test_slurp (outs[p]);
        cr_assert (ps_test_json_number (text, "test_accuracy", true) > 0.6, "%s", text);
        //  Both processes ran the same clocks: 2 epochs of 12000 / 3 / 32
        cr_assert_eq (ps_test_json_number (text, "clocks", true), 2 * (12000 / 3 / 32), "%s", text);
        free (text);
    }
    char *json = ps_broker_info (broker);
    cr_assert (strstr (json, "\"seen\":3"), "three workers, two processes: %s", json);
    free (json);
    ps_broker_destroy (&broker);
}
