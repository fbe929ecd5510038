/*  =========================================================================
    test_training_output - what psworker writes while it trains (issue 16):
    the per-step metrics file (--metrics-file, JSON Lines or CSV), the
    validation split (--validation-fraction, --eval-every, --eval-ranks)
    and the progress bar on a terminal (--no-progress)

    Usage, as the first test runs it:

        psworker --no-broker --data synthetic --epochs 1 --hidden 32 \
                 --metrics-file metrics.jsonl

    and then reads every line of metrics.jsonl with jansson. Binaries come
    from PSMQ_BUILD_DIR, which ctest sets.

    usage: cd build && ./test_training_output [--filter 'output/<test>']
    ========================================================================= */

#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  The synthetic training set's examples, and its steps per epoch for one
//  worker of batch 32
#define SYNTHETIC_TRAIN 12000
#define BATCH 32
//  util-linux's script(1): a command on a pseudo-terminal
#define SCRIPT "/usr/bin/script"

//  Run psworker with args (NULL-terminated) to its exit: its status; what
//  it printed in *text, which the caller frees
static int
s_run (char *const args[], char **text)
{
    char out[512];
    ps_test_path ("psworker.out", out, sizeof out);
    int status = ps_test_wait_pid (ps_test_psworker (args, out), 60000);
    *text = ps_test_slurp (out);
    return status;
}

//  The lines of the JSON Lines file at path, each parsed (asserts that
//  each is an object); *count of them. The caller frees each with
//  json_decref and the array with free.
static json_t **
s_json_lines (const char *path, size_t *count)
{
    char *text = ps_test_slurp (path);
    cr_assert (text, "no file %s", path);
    size_t lines = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    json_t **records = calloc (lines + 1, sizeof *records);
    *count = 0;
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        json_error_t error;
        json_t *record = json_loads (line, 0, &error);
        cr_assert (json_is_object (record), "%s: not a JSON object: %s (%s)", path, line,
                   error.text);
        records[(*count)++] = record;
    }
    free (text);
    return records;
}

static void
s_json_lines_free (json_t **records, size_t count)
{
    for (size_t i = 0; i < count; i++)
        json_decref (records[i]);
    free (records);
}

static double
s_number (json_t *record, const char *name)
{
    json_t *value = json_object_get (record, name);
    cr_assert (json_is_number (value), "no number %s", name);
    return json_number_value (value);
}

Test (output, a_metrics_record_per_step_as_json_lines, .timeout = 60)
{
    char path[512];
    ps_test_path ("metrics.jsonl", path, sizeof path);
    char *args[] = {"--no-broker", "--data", "synthetic",      "--epochs", "2",
                    "--hidden",    "32",     "--metrics-file", path,       NULL};
    char *text;
    cr_assert_eq (s_run (args, &text), 0, "%s", text);
    free (text);
    size_t count;
    json_t **records = s_json_lines (path, &count);
    size_t steps = SYNTHETIC_TRAIN / BATCH;
    cr_assert_eq (count, 2 * steps, "%zu records for %zu steps", count, 2 * steps);
    static const char *fields[] = {
        "rank",         "epoch",    "step", "clock", "time", "loss", "examples_per_second",
        "wait_seconds", "staleness"};
    for (size_t i = 0; i < count; i++) {
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            s_number (records[i], fields[f]);
        cr_assert_eq (s_number (records[i], "clock"), i + 1);
        cr_assert_eq (s_number (records[i], "epoch"), i / steps + 1);
        cr_assert_eq (s_number (records[i], "step"), i % steps + 1);
        cr_assert_gt (s_number (records[i], "examples_per_second"), 0);
        cr_assert (!json_object_get (records[i], "validation_loss"), "no validation asked for");
    }
    //  It learns: the last records' loss is well below the first's
    cr_assert_lt (s_number (records[count - 1], "loss"), s_number (records[0], "loss") / 2);
    s_json_lines_free (records, count);
}

Test (output, csv_with_a_header_every_k_steps, .timeout = 60)
{
    char path[512];
    ps_test_path ("metrics.csv", path, sizeof path);
    char *args[] = {"--no-broker", "--data",          "synthetic", "--epochs",
                    "1",           "--hidden",        "32",        "--metrics-file",
                    path,          "--metrics-every", "100",       NULL};
    char *text;
    cr_assert_eq (s_run (args, &text), 0, "%s", text);
    free (text);
    text = ps_test_slurp (path);
    cr_assert (text);
    const char *header = "rank,epoch,step,clock,time,loss,examples_per_second,wait_seconds,"
                         "staleness,validation_loss,validation_accuracy,validation_examples\n";
    cr_assert (strncmp (text, header, strlen (header)) == 0, "header: %s", text);
    //  Steps 100, 200, 300 and the epoch's last, 375
    static const long clocks[] = {100, 200, 300, SYNTHETIC_TRAIN / BATCH};
    size_t rows = 0;
    char *save = NULL;
    for (char *line = strtok_r (text + strlen (header), "\n", &save); line;
         line = strtok_r (NULL, "\n", &save), rows++) {
        unsigned rank;
        int epoch;
        long step, clock;
        cr_assert_eq (sscanf (line, "%u,%d,%ld,%ld,", &rank, &epoch, &step, &clock), 4, "%s", line);
        cr_assert (rows < 4, "too many rows: %s", line);
        cr_assert_eq (clock, clocks[rows], "%s", line);
        //  12 cells, the validation's empty
        size_t commas = 0;
        for (const char *c = line; *c; c++)
            commas += *c == ',';
        cr_assert_eq (commas, 11, "%s", line);
        cr_assert (strstr (line, ",,,") || line[strlen (line) - 1] == ',', "%s", line);
    }
    cr_assert_eq (rows, 4);
    free (text);
}

Test (output, a_bad_metrics_file_is_a_clear_error, .timeout = 60)
{
    char *args[] = {"--no-broker",
                    "--data",
                    "synthetic",
                    "--epochs",
                    "1",
                    "--metrics-file",
                    "/nonexistent/dir/m.jsonl",
                    NULL};
    char *text;
    cr_assert_eq (s_run (args, &text), 1, "%s", text);
    cr_assert (strstr (text, "/nonexistent/dir/m.jsonl"), "%s", text);
    free (text);
    //  Bad values of the output's and the validation's options, named
    struct {
        char *args[4];
        const char *named;
    } bad[] = {{{"--no-broker", "--metrics-every", "0", NULL}, "--metrics-every"},
               {{"--no-broker", "--eval-ranks", "some", NULL}, "--eval-ranks 'some'"},
               {{"--no-broker", "--validation-fraction", "0.95", NULL}, "--validation-fraction"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq (s_run (bad[i].args, &text), 2, "%s", text);
        cr_assert (strstr (text, bad[i].named), "%s", text);
        free (text);
    }
}

//  Two workers of a job at a broker of the test's, each with its metrics
//  file metrics<rank>.jsonl and more arguments; both exit 0
static void
s_two_workers (char *const more[])
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    pid_t pids[2];
    char outs[2][512], paths[2][512];
    for (int rank = 0; rank < 2; rank++) {
        char name[32];
        snprintf (name, sizeof name, "worker%d.out", rank);
        ps_test_path (name, outs[rank], sizeof outs[rank]);
        snprintf (name, sizeof name, "metrics%d.jsonl", rank);
        ps_test_path (name, paths[rank], sizeof paths[rank]);
        char *args[16] = {"--metrics-file", paths[rank]};
        for (int i = 0; more[i]; i++)
            args[2 + i] = more[i];
        pids[rank] = ps_test_psworker_train (endpoint, rank, 1, 2, 1, args, outs[rank]);
    }
    for (int rank = 0; rank < 2; rank++) {
        int status = ps_test_wait_pid (pids[rank], 90000);
        char *text = ps_test_slurp (outs[rank]);
        cr_assert_eq (status, 0, "rank %d exited %d: %s", rank, status, text);
        free (text);
    }
    ps_broker_destroy (&broker);
}

//  Records of rank's metrics file that hold a validation, and the
//  examples the last of them evaluated (0: none)
static size_t
s_validations (int rank, size_t *examples)
{
    char name[32], path[512];
    snprintf (name, sizeof name, "metrics%d.jsonl", rank);
    ps_test_path (name, path, sizeof path);
    size_t count, validated = 0;
    json_t **records = s_json_lines (path, &count);
    cr_assert_gt (count, 0);
    *examples = 0;
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq (s_number (records[i], "rank"), rank);
        //  BSP: nobody is ahead
        cr_assert_eq (s_number (records[i], "staleness"), 0, "%s record %zu", path, i);
        if (!json_object_get (records[i], "validation_loss"))
            continue;
        validated++;
        cr_assert_geq (s_number (records[i], "validation_accuracy"), 0);
        cr_assert_leq (s_number (records[i], "validation_accuracy"), 1);
        *examples = (size_t)s_number (records[i], "validation_examples");
    }
    s_json_lines_free (records, count);
    return validated;
}

Test (output, validation_on_rank_0_only_by_default, .timeout = 120)
{
    //  12000 examples, 1200 held out: 5400 a rank, 168 steps of 32; every
    //  50 steps and at the epoch's end
    char *more[] = {"--validation-fraction", "0.1", "--eval-every", "50", NULL};
    s_two_workers (more);
    size_t examples;
    cr_assert_eq (s_validations (0, &examples), 4);
    cr_assert_eq (examples, 1200);
    cr_assert_eq (s_validations (1, &examples), 0, "rank 1 validated");
    //  The epoch's line says it too, on rank 0 only
    char out[512];
    char *text = ps_test_slurp (ps_test_path ("worker0.out", out, sizeof out));
    cr_assert_gt (ps_test_json_number (text, "validation_accuracy", true), 0.5, "%s", text);
    free (text);
    text = ps_test_slurp (ps_test_path ("worker1.out", out, sizeof out));
    cr_assert (!strstr (text, "validation"), "%s", text);
    free (text);
}

Test (output, validation_shared_between_ranks, .timeout = 120)
{
    char *more[] = {"--validation-fraction", "0.1", "--eval-ranks", "all", NULL};
    s_two_workers (more);
    size_t first, second;
    cr_assert_eq (s_validations (0, &first), 1);
    cr_assert_eq (s_validations (1, &second), 1);
    cr_assert_eq (first, 600);
    cr_assert_eq (second, 600);
}

//  psworker on one epoch alone, on a terminal (script(1) gives it a pty)
//  with more arguments (may be ""): all the terminal showed, freed by the
//  caller
static char *
s_on_a_terminal (const char *more)
{
    char psworker[512], command[1024], out[512];
    ps_test_binary ("psworker", psworker, sizeof psworker);
    snprintf (command, sizeof command,
              "%s --no-broker --data synthetic --epochs 1 --hidden 32 --delay-ms 1 %s", psworker,
              more);
    char *argv[] = {SCRIPT, "-qec", command, "/dev/null", NULL};
    ps_test_path ("terminal.out", out, sizeof out);
    int status = ps_test_wait_pid (ps_test_spawn_to_file (argv, out), 60000);
    char *text = ps_test_slurp (out);
    cr_assert_eq (status, 0, "script exited %d: %s", status, text);
    return text;
}

Test (output, a_progress_bar_on_a_terminal_only, .timeout = 90)
{
    if (access (SCRIPT, X_OK))
        cr_skip_test ("no %s (Debian's bsdutils) to give psworker a terminal", SCRIPT);
    char *text = s_on_a_terminal ("");
    cr_assert (strstr (text, "\r\033[Krank 0 epoch 1 ["), "no bar: %s", text);
    cr_assert (strstr (text, "/375  "), "no step of 375: %s", text);
    cr_assert (strstr (text, "examples/s  ETA "), "no rate and ETA: %s", text);
    //  Erased before the epoch's line
    cr_assert (strstr (text, "\r\033[Krank 0 epoch 1: loss"), "%s", text);
    free (text);
    text = s_on_a_terminal ("--no-progress");
    cr_assert (!strstr (text, "ETA"), "a bar with --no-progress: %s", text);
    cr_assert (strstr (text, "rank 0 epoch 1: loss"), "%s", text);
    free (text);
    //  Into a file: the lines as before, no bar
    char *args[] = {"--no-broker", "--data", "synthetic", "--epochs", "1", "--hidden", "32", NULL};
    cr_assert_eq (s_run (args, &text), 0, "%s", text);
    cr_assert (!strstr (text, "ETA") && !strchr (text, '\r'), "a bar in a file: %s", text);
    free (text);
}
