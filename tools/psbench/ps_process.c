/*  =========================================================================
    ps_process - child processes (see ps_process.h)

    fork and execv, as the three copies this replaces did, rather than
    posix_spawn: glibc's posix_spawn reports a program that cannot run as
    a failure to start, where psbench and the tests expect a child that
    says why on its stderr and exits with 127, as a shell's does.

    Waits poll waitpid (WNOHANG) every 5 ms up to their deadline: a
    blocking waitpid has no timeout, and a SIGCHLD handler would be
    process-wide state that neither psbench nor Criterion should share.
    Pipes are made close-on-exec, so a child inherits no other child's
    pipe and the reader sees the end of file when its own child exits.

    The children to kill on a signal are kept in a table of lock-free
    atomic ints (the pid, negated for a group: what kill () takes), which
    a signal handler may read and threads may change without a lock.
    ========================================================================= */

#include "ps_process.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(sizeof (pid_t) == sizeof (int), "a pid fits an atomic_int");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the table must be lock-free to serve a handler");

//  Children started and not reaped: what kill () takes, 0 for a free slot
static atomic_int s_children[PS_PROCESS_REMEMBERED];

static void
s_remember (pid_t pid, bool group)
{
    for (size_t i = 0; i < PS_PROCESS_REMEMBERED; i++) {
        int free_slot = 0;
        if (atomic_compare_exchange_strong (&s_children[i], &free_slot, group ? -pid : pid))
            return;
    }
}

//  The child is reaped: no signal must reach its pid, now free for reuse
static void
s_forget (pid_t pid)
{
    for (size_t i = 0; i < PS_PROCESS_REMEMBERED; i++) {
        int target = atomic_load (&s_children[i]);
        if (target == pid || target == -pid)
            atomic_compare_exchange_strong (&s_children[i], &target, 0);
    }
}

void
ps_process_kill_all (void)
{
    for (size_t i = 0; i < PS_PROCESS_REMEMBERED; i++) {
        int target = atomic_load (&s_children[i]);
        if (target != 0)
            kill (target, SIGKILL);
    }
}

static void
s_close_pipe (int fds[2])
{
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close (fds[i]);
}

//  In the child: point target (stdout or stderr) where sink says; 0 or -1.
//  dprintf, not fprintf: another thread of the parent may have held
//  stderr's lock at the fork.
static int
s_redirect (ps_process_sink_t sink, const char *path, int pipe_end, int target)
{
    int fd = sink == PS_PROCESS_PIPE     ? pipe_end
             : sink == PS_PROCESS_TO_OUT ? STDOUT_FILENO
             : sink == PS_PROCESS_FILE ? open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                                       : target;
    if (fd == -1 || (fd != target && dup2 (fd, target) == -1)) {
        dprintf (STDERR_FILENO, "%s: cannot write to %s: %s\n", program_invocation_short_name,
                 path ? path : "a pipe", strerror (errno));
        return -1;
    }
    return 0;
}

static void
s_child (char *const argv[], const ps_process_spec_t *spec, int out, int err, pid_t parent)
{
    if (spec->group)
        setpgid (0, 0);
    //  A parent that died before the prctl would never be noticed
    if (spec->die_with_parent && (prctl (PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid () != parent))
        _exit (127);
    if (s_redirect (spec->out, spec->out_path, out, STDOUT_FILENO) == 0 &&
        s_redirect (spec->err, spec->err_path, err, STDERR_FILENO) == 0) {
        execv (argv[0], argv);
        dprintf (STDERR_FILENO, "%s: cannot run %s: %s\n", program_invocation_short_name, argv[0],
                 strerror (errno));
    }
    _exit (127);
}

int
ps_process_start (ps_process_t *self, char *const argv[], const ps_process_spec_t *spec,
                  ps_problem_t *problem)
{
    *self = (ps_process_t){-1, -1, -1, spec->group};
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    pid_t parent = getpid (), pid = -1;
    if ((spec->out != PS_PROCESS_PIPE || pipe2 (out, O_CLOEXEC) == 0) &&
        (spec->err != PS_PROCESS_PIPE || pipe2 (err, O_CLOEXEC) == 0)) {
        //  What we printed comes before what the child prints
        fflush (stdout);
        pid = fork ();
    }
    if (pid == -1) {
        int error = errno;
        s_close_pipe (out);
        s_close_pipe (err);
        return ps_problem_set (problem, 0, "cannot start %s: %s", argv[0], strerror (error));
    }
    if (pid == 0)
        s_child (argv, spec, out[1], err[1], parent);
    //  Here too, so that a kill right away finds the group
    if (spec->group)
        setpgid (pid, pid);
    s_remember (pid, spec->group);
    if (out[1] >= 0)
        close (out[1]);
    if (err[1] >= 0)
        close (err[1]);
    self->pid = pid;
    self->out = out[0];
    self->err = err[0];
    return 0;
}

int
ps_process_wait (pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        pid_t done = waitpid (pid, status, WNOHANG);
        if (done == pid) {
            s_forget (pid);
            return 0;
        }
        if ((done == -1 && errno != EINTR) || zclock_mono () >= deadline)
            return -1;
        zclock_sleep (5);
    }
}

void
ps_process_kill (pid_t pid, bool group)
{
    kill (group ? -pid : pid, SIGKILL);
    while (waitpid (pid, NULL, 0) == -1 && errno == EINTR)
        ;
    s_forget (pid);
}

int
ps_process_exit_code (int status)
{
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

int
ps_process_finish (pid_t pid, bool group, int timeout_ms)
{
    int status;
    if (ps_process_wait (pid, timeout_ms, &status) == 0)
        return ps_process_exit_code (status);
    ps_process_kill (pid, group);
    return -1;
}

//  Wait until fd can be read or the deadline passes, then read up to room
//  bytes into buffer: how many, 0 when the writer closed its end (or the
//  read failed), -1 when the deadline passed first
static ssize_t
s_read_some (int fd, char *buffer, size_t room, int64_t deadline)
{
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return -1;
        struct pollfd item = {fd, POLLIN, 0};
        int ready = poll (&item, 1, (int)left);
        if (ready == -1 && errno == EINTR)
            continue;
        if (ready <= 0)
            return -1;
        ssize_t got = read (fd, buffer, room);
        if (got >= 0)
            return got;
        if (errno != EINTR && errno != EAGAIN)
            return 0;
    }
}

bool
ps_process_read_until (int fd, const char *needle, char *text, size_t size, int timeout_ms)
{
    size_t used = strlen (text);
    int64_t deadline = zclock_mono () + timeout_ms;
    fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
    while (!strstr (text, needle) && used + 1 < size) {
        ssize_t got = s_read_some (fd, text + used, size - 1 - used, deadline);
        if (got <= 0)
            break;
        used += (size_t)got;
        text[used] = 0;
    }
    return strstr (text, needle) != NULL;
}

int
ps_process_capture (char *const argv[], bool group, int timeout_ms, char **output, int *status,
                    ps_problem_t *problem)
{
    *output = NULL;
    ps_process_t child;
    ps_process_spec_t spec = {.out = PS_PROCESS_PIPE, .group = group};
    if (ps_process_start (&child, argv, &spec, problem))
        return -1;
    int64_t deadline = zclock_mono () + timeout_ms;
    size_t used = 0, capacity = 4096;
    char *text = malloc (capacity);
    bool room = text != NULL, ended = false;
    while (room && !ended) {
        if (used + 1024 > capacity) {
            char *grown = realloc (text, capacity * 2);
            room = grown != NULL;
            text = grown ? grown : text;
            capacity = grown ? capacity * 2 : capacity;
        }
        ssize_t got =
            room ? s_read_some (child.out, text + used, capacity - used - 1, deadline) : 0;
        if (got < 0)
            break;
        ended = room && got == 0;
        used += (size_t)got;
    }
    close (child.out);
    int64_t left = deadline - zclock_mono ();
    bool finished = ended && ps_process_wait (child.pid, left > 0 ? (int)left : 0, status) == 0;
    if (!finished)
        ps_process_kill (child.pid, group);
    if (!room) {
        free (text);
        return ps_problem_set (problem, 0, "no memory for the output of %s", argv[0]);
    }
    text[used] = 0;
    *output = text;
    if (!finished)
        return ps_problem_set (problem, 0, "%s did not finish within %d s; killed", argv[0],
                               timeout_ms / 1000);
    return 0;
}
