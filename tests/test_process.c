/*  ps_process: child processes with bounded waits, for psbench and the
    tests. Usage:

        char *argv[] = {"build/psbroker", "--port", "0", NULL};
        ps_process_t child;
        ps_process_spec_t spec = {.out = PS_PROCESS_PIPE};
        ps_problem_t problem = {0};
        if (ps_process_start (&child, argv, &spec, &problem))
            ...                                   //  problem.message says why
        char line[256] = "";
        ps_process_read_until (child.out, "\n", line, sizeof line, 5000);
        kill (child.pid, SIGTERM);
        int code = ps_process_finish (child.pid, false, 5000);   //  -1: killed

    usage: build/test_process [--filter 'process/<test>'] */

#include "ps_process.h"
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Whether pid is gone or a zombie nobody reaped yet, within 5 s
static bool
s_gone (pid_t pid)
{
    int64_t deadline = zclock_mono () + 5000;
    while (zclock_mono () < deadline) {
        char path[64], state = 0;
        snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *file = fopen (path, "r");
        if (!file)
            return true;
        int fields = fscanf (file, "%*d %*s %c", &state);
        fclose (file);
        if (fields == 1 && state == 'Z')
            return true;
        zclock_sleep (10);
    }
    return false;
}

Test (process, start_read_and_finish)
{
    char *argv[] = {"/bin/sh", "-c", "echo ready; sleep 0.1; echo done; exit 3", NULL};
    ps_process_spec_t spec = {.out = PS_PROCESS_PIPE, .err = PS_PROCESS_PIPE};
    ps_process_t child = ps_test_start (argv, &spec);
    cr_assert (child.pid > 0 && child.out >= 0 && child.err >= 0);
    char text[256] = "";
    cr_assert (ps_process_read_until (child.out, "ready\n", text, sizeof text, 5000), "%s", text);
    cr_assert (ps_process_read_until (child.out, "done", text, sizeof text, 5000), "%s", text);
    cr_assert_str_eq (text, "ready\ndone\n");
    cr_assert_eq (ps_process_finish (child.pid, false, 5000), 3);
    close (child.out);
    close (child.err);
}

Test (process, a_program_that_cannot_run_exits_127_and_says_why)
{
    char *argv[] = {"/nonexistent/program", NULL};
    ps_process_spec_t spec = {.out = PS_PROCESS_PIPE, .err = PS_PROCESS_PIPE};
    ps_process_t child = ps_test_start (argv, &spec);
    char text[512] = "";
    cr_assert (ps_process_read_until (child.err, "cannot run /nonexistent/program", text,
                                      sizeof text, 5000),
               "%s", text);
    cr_assert_eq (ps_process_finish (child.pid, false, 5000), 127);
    //  The writer is gone: reading stops at the end, not at the deadline
    int64_t start = zclock_mono ();
    cr_assert_not (ps_process_read_until (child.out, "never", text, sizeof text, 5000));
    cr_assert_lt (zclock_mono () - start, 4000);
}

Test (process, a_child_that_overstays_is_killed)
{
    char *argv[] = {"/bin/sleep", "30", NULL};
    ps_process_spec_t spec = {0};
    ps_process_t child = ps_test_start (argv, &spec);
    int status;
    cr_assert_eq (ps_process_wait (child.pid, 50, &status), -1);
    cr_assert_eq (ps_process_finish (child.pid, false, 50), -1);
    //  Reaped: it is no child of ours any more
    cr_assert_eq (kill (child.pid, 0), -1);
    cr_assert_eq (errno, ESRCH);
}

Test (process, exit_codes_as_a_shell_writes_them)
{
    char *argv[] = {"/bin/sleep", "30", NULL};
    ps_process_spec_t spec = {0};
    ps_process_t child = ps_test_start (argv, &spec);
    kill (child.pid, SIGTERM);
    cr_assert_eq (ps_process_finish (child.pid, false, 5000), 128 + SIGTERM);
}

Test (process, output_into_a_file)
{
    char dir[] = "/tmp/psmq-process-XXXXXX";
    cr_assert (mkdtemp (dir));
    char path[600];
    snprintf (path, sizeof path, "%s/out", dir);
    char *argv[] = {"/bin/sh", "-c", "echo one; echo two >&2", NULL};
    ps_process_spec_t spec = {.out = PS_PROCESS_FILE, .out_path = path, .err = PS_PROCESS_TO_OUT};
    ps_process_t child = ps_test_start (argv, &spec);
    cr_assert_eq (child.out, -1);
    cr_assert_eq (ps_process_finish (child.pid, false, 5000), 0);
    char text[64] = "";
    FILE *file = fopen (path, "r");
    cr_assert (file);
    size_t got = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text[got] = 0;
    cr_assert_str_eq (text, "one\ntwo\n");
    unlink (path);
    rmdir (dir);
}

Test (process, capture_collects_stdout_within_a_deadline)
{
    char *output = NULL;
    int status = -1;
    ps_problem_t problem = {0};
    char *quick[] = {"/bin/sh", "-c", "echo a; echo b", NULL};
    cr_assert_eq (ps_process_capture (quick, false, 5000, &output, &status, &problem), 0, "%s",
                  problem.message);
    cr_assert_str_eq (output, "a\nb\n");
    cr_assert_eq (ps_process_exit_code (status), 0);
    free (output);

    //  A shell that starts a sleep in its group, prints its pid and waits:
    //  killed at the deadline with its group, what it printed kept
    char *slow[] = {"/bin/sh", "-c", "sleep 30 & echo $!; wait", NULL};
    cr_assert_eq (ps_process_capture (slow, true, 300, &output, &status, &problem), -1);
    cr_assert (strstr (problem.message, "did not finish within"), "%s", problem.message);
    cr_assert (output);
    pid_t sleeper = (pid_t)ps_test_number (output);
    cr_assert (sleeper > 0, "'%s'", output);
    cr_assert (s_gone (sleeper), "the group's sleep %d outlived it", (int)sleeper);
    free (output);
}

Test (process, kill_all_reaches_every_child)
{
    char *argv[] = {"/bin/sleep", "30", NULL};
    ps_process_spec_t plain = {0}, group = {.group = true};
    ps_process_t children[2] = {ps_test_start (argv, &plain), ps_test_start (argv, &group)};
    ps_process_kill_all ();
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_process_finish (children[i].pid, children[i].group, 5000), 128 + SIGKILL);
}

Test (process, a_child_can_die_with_its_parent)
{
    //  A parent process of our own starts the child and exits at once
    int fds[2];
    cr_assert_eq (pipe (fds), 0);
    pid_t parent = fork ();
    cr_assert_neq (parent, -1);
    if (parent == 0) {
        char *argv[] = {"/bin/sleep", "30", NULL};
        ps_process_spec_t spec = {.die_with_parent = true};
        ps_process_t child;
        pid_t pid = ps_process_start (&child, argv, &spec, NULL) ? -1 : child.pid;
        _exit (write (fds[1], &pid, sizeof pid) == sizeof pid ? 0 : 1);
    }
    pid_t sleeper = -1;
    cr_assert_eq (read (fds[0], &sleeper, sizeof sleeper), sizeof sleeper);
    cr_assert (sleeper > 0);
    cr_assert_eq (ps_process_finish (parent, false, 5000), 0);
    cr_assert (s_gone (sleeper), "the sleep %d outlived its parent", (int)sleeper);
    close (fds[0]);
    close (fds[1]);
}
