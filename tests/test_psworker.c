/*  =========================================================================
    test_psworker - the training program psworker (worker/trainer/) end
    to end, and the scripts of tools/ that run it

    The real psbroker and psworker processes on an ephemeral loopback port,
    training on the synthetic data set; then --help, bad options and
    tools/demo. Binaries come from PSMQ_BUILD_DIR and scripts from
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

Test (psworker, two_workers_learn_the_synthetic_set, .timeout = 120)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
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

    //  Every bad value exits 2 naming its flag and the value; text that is
    //  no number at all is told apart from a number out of range
    struct {
        char *arg;
        char *value;
        const char *says;
    } bad[] = {
        {"--lr", "-1", "psworker: --lr '-1' must be a number from"},
        {"--lr", "nan", "psworker: --lr 'nan' is not a number"},
        {"--lr", "fast", "psworker: --lr 'fast' is not a number"},
        {"--momentum", "1.5", "psworker: --momentum '1.5' must be a number from"},
        {"--delay-prob", "nan", "psworker: --delay-prob 'nan' is not a number"},
        {"--epochs", "two", "psworker: --epochs 'two' is not a whole number"},
        {"--epochs", "0", "psworker: --epochs '0' must be a whole number from 1"},
        {"--data", "-e", "psworker: --data '-e' looks like an option"},
        {"--broker", "tcp://a:1,,tcp://b:2", "--broker 'tcp://a:1,,tcp://b:2' has an empty"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {path,        "--broker", "tcp://127.0.0.1:9", "--rank",     "0",
                        "--workers", "1",        bad[i].arg,          bad[i].value, NULL};
        cr_assert_eq (ps_test_wait_pid (ps_test_spawn_to_file (argv, out), 5000), 2, "%s %s",
                      bad[i].arg, bad[i].value);
        text = ps_test_slurp (out);
        cr_assert (strstr (text, bad[i].says), "expected '%s' in: %s", bad[i].says, text);
        free (text);
    }

    //  A value left out: getopt would take the next option for it
    char *no_broker_value[] = {path, "--broker", "--rank", "0", "--workers", "1", NULL};
    cr_assert_eq (ps_test_wait_pid (ps_test_spawn_to_file (no_broker_value, out), 5000), 2);
    text = ps_test_slurp (out);
    cr_assert (strstr (text, "psworker: --broker '--rank' looks like an option"), "%s", text);
    free (text);

    //  The required flags that are missing, and only those, are named
    struct {
        char *argv[8];
        const char *says;
    } missing[] = {
        {{"--broker", "tcp://127.0.0.1:9", "--rank", "0"}, "psworker: --workers is required"},
        {{"--workers", "2", "--rank", "0"}, "psworker: --broker is required"},
        {{"--broker", "tcp://127.0.0.1:9"}, "psworker: --rank and --workers are required"},
        {{"--data", "synthetic"}, "psworker: --broker, --rank and --workers are required"}};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        char *argv[10] = {path};
        for (size_t a = 0; a < 8 && missing[i].argv[a]; a++)
            argv[a + 1] = missing[i].argv[a];
        cr_assert_eq (ps_test_wait_pid (ps_test_spawn_to_file (argv, out), 5000), 2, "%s",
                      missing[i].says);
        text = ps_test_slurp (out);
        cr_assert (strstr (text, missing[i].says), "expected '%s' in: %s", missing[i].says, text);
        free (text);
    }
    unlink (out);
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
    ps_test_binary ("psworker", path, sizeof path);
    char *argv[] = {path, "--broker", endpoint,    "--rank",       "0",    "--workers",
                    "1",  "--data",   "synthetic", "--timeout-ms", "4000", NULL};
    ps_test_child_t child = ps_test_spawn (argv);
    char err[4096] = "";
    char says[200];
    snprintf (says, sizeof says, "psworker: rank 0 waiting for the broker at %s (no answer yet",
              endpoint);
    //  The notice comes after 1.5 s of silence, well before the 4 s timeout
    int64_t started = zclock_mono ();
    cr_assert (ps_test_read_until (child.err, says, err, sizeof err, 3500), "no notice: %s", err);
    cr_assert_lt (zclock_mono () - started, 4000);
    cr_assert_null (strstr (err, "cannot join"), "the notice came after the failure: %s", err);
    //  At the timeout it still fails, saying why
    cr_assert (ps_test_read_until (child.err, "cannot join", err, sizeof err, 10000), "%s", err);
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

Test (tools, help_prints_the_usage_comment_of_every_script, .timeout = 60)
{
    const char *scripts[] = {"check", "setup", "demo", "tsan-check", "flaky"};
    char out[] = "/tmp/psworker-help-XXXXXX";
    close (mkstemp (out));
    char err[] = "/tmp/psworker-help-err-XXXXXX";
    close (mkstemp (err));
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        char path[512];
        ps_test_script (scripts[i], path, sizeof path);
        char *expected = s_usage_comment (path);
        cr_assert (strstr (expected, "usage: tools/"), "%s: %s", scripts[i], expected);
        //  tsan-check used to take --help for a go and start its build: the
        //  bound and the group kill keep that from running on
        char *argv[] = {path, "--help", NULL};
        cr_assert_eq (ps_test_run_group (argv, out, err, 10000), 0, "%s --help", scripts[i]);
        char *text = ps_test_slurp (out);
        cr_assert_str_eq (text, expected, "%s --help", scripts[i]);
        free (text);
        text = ps_test_slurp (err);
        cr_assert_str_empty (text, "%s --help: %s", scripts[i], text);
        free (text);
        free (expected);

        char *bogus[] = {path, "--bogus", NULL};
        cr_assert_eq (ps_test_run_group (bogus, out, NULL, 10000), 2, "%s --bogus", scripts[i]);
        text = ps_test_slurp (out);
        char says[128];
        snprintf (says, sizeof says, "tools/%s: unknown option '--bogus'", scripts[i]);
        cr_assert (strstr (text, says), "%s", text);
        free (text);
    }
    unlink (out);
    unlink (err);
}

Test (tools, demo_counts_must_be_at_least_one, .timeout = 30)
{
    char path[512];
    ps_test_script ("demo", path, sizeof path);
    char out[] = "/tmp/psworker-demo-XXXXXX";
    close (mkstemp (out));
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
        char *argv[] = {path, "--no-setup", bad[i].option, bad[i].value, NULL};
        cr_assert_eq (ps_test_run_group (argv, out, NULL, 10000), 2, "%s %s", bad[i].option,
                      bad[i].value);
        char *text = ps_test_slurp (out);
        cr_assert (strstr (text, bad[i].says), "expected '%s' in: %s", bad[i].says, text);
        free (text);
    }
    unlink (out);
}

Test (tools, demo_shows_every_workers_lines, .timeout = 120)
{
    char path[512];
    ps_test_script ("demo", path, sizeof path);
    char out[] = "/tmp/psworker-demo-XXXXXX";
    close (mkstemp (out));
    char *argv[] = {path, "--no-setup", "--data", "synthetic", "--epochs",
                    "1",  "--workers",  "3",      NULL};
    int status = ps_test_run_group (argv, out, NULL, 100000);
    char *text = ps_test_slurp (out);
    cr_assert_eq (status, 0, "%s", text);
    //  The last rank started is the one whose log tail used to miss
    for (int rank = 0; rank < 3; rank++) {
        char epoch[32], done[32];
        snprintf (epoch, sizeof epoch, "rank %d epoch 1:", rank);
        snprintf (done, sizeof done, "rank %d done:", rank);
        cr_assert (strstr (text, epoch) && strstr (text, done), "no lines of rank %d: %s", rank,
                   text);
    }
    free (text);
    unlink (out);
}

Test (tools, demo_prints_why_a_worker_failed, .timeout = 60)
{
    char path[512];
    ps_test_script ("demo", path, sizeof path);
    char out[] = "/tmp/psworker-demo-XXXXXX";
    close (mkstemp (out));
    char err[] = "/tmp/psworker-demo-err-XXXXXX";
    close (mkstemp (err));
    //  Every worker fails at once, before the demo's log reader can start
    char *argv[] = {path, "--no-setup", "--data", "/nonexistent/fashion", "--workers", "3", NULL};
    cr_assert_eq (ps_test_run_group (argv, out, err, 30000), 1);
    char *text = ps_test_slurp (err);
    for (int rank = 0; rank < 3; rank++) {
        char says[64];
        snprintf (says, sizeof says, "demo: worker rank %d failed (exit 1)", rank);
        const char *at = strstr (text, says);
        cr_assert (at, "expected '%s' on stderr: %s", says, text);
        //  Its reason follows, from its own log
        cr_assert (strstr (at, "dataset-fashion-mnist"), "no reason for rank %d: %s", rank, text);
    }
    cr_assert (strstr (text, "demo: a worker failed"), "%s", text);
    free (text);
    unlink (out);
    unlink (err);
}
