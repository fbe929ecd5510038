/*  =========================================================================
    ps_process - child processes, for psbench and the tests

    Start a program with its stdout and stderr where the caller wants them
    (ours, a pipe, a file), in a process group of its own when asked (to
    kill what it forks along with it); wait for it with a bound; kill it;
    read one of its pipes until a text shows up; run it to its end and
    collect what it printed. Every wait has a deadline: a child that
    overstays is killed, never waited on for ever.

    Each child is remembered from its start until one of these functions
    reaps it, so that a signal handler can kill every child still running
    with ps_process_kill_all, which is async-signal-safe.

    Any thread may call these; a child is the business of the thread that
    started it. A ps_process_t is the caller's, usually on its stack; the
    pipe ends in it are the caller's to close. Failures to start fill a
    ps_problem_t (code 0: they are local).

    Not in common/: psbench is the one program that starts processes (the
    layout rule); the tests link this module as the library ps_process.
    ========================================================================= */

#ifndef PS_PROCESS_H_INCLUDED
#define PS_PROCESS_H_INCLUDED

#include "ps_problem.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

//  Children remembered for ps_process_kill_all at once; a child started
//  when all are taken runs as well, but a signal handler will not kill it
#define PS_PROCESS_REMEMBERED 32

//  Where a child's stdout or stderr goes
typedef enum {
    PS_PROCESS_INHERIT = 0, //  where ours goes
    PS_PROCESS_PIPE,        //  into a pipe whose read end the caller gets
    PS_PROCESS_FILE,        //  into a file, created or truncated (mode 0644)
    PS_PROCESS_TO_OUT       //  stderr only: wherever its stdout goes
} ps_process_sink_t;

//  How to start a child
typedef struct {
    ps_process_sink_t out; //  its stdout
    const char *out_path;  //  the file, when out is PS_PROCESS_FILE
    ps_process_sink_t err; //  its stderr
    const char *err_path;  //  the file, when err is PS_PROCESS_FILE
    bool group;            //  lead a process group of its own, killed as one
    bool die_with_parent;  //  get SIGKILL when the thread that started it
                           //  ends, even by SIGKILL (Linux's PDEATHSIG)
} ps_process_spec_t;

//  A started child
typedef struct {
    pid_t pid;  //  the process
    int out;    //  read end of its stdout pipe, or -1
    int err;    //  read end of its stderr pipe, or -1
    bool group; //  it leads a process group of its own
} ps_process_t;

//  Start argv[0] (a path) with argv as spec says. 0, or -1 when no process
//  could be made (problem says why). A child that cannot run argv[0] or
//  open its files says so on its stderr and exits with status 127.
int ps_process_start (ps_process_t *self, char *const argv[], const ps_process_spec_t *spec,
                      ps_problem_t *problem);

//  Wait up to timeout_ms for child pid to end: 0 with its wait status in
//  *status, or -1 when it is still running (or is not ours to wait for)
int ps_process_wait (pid_t pid, int timeout_ms, int *status);

//  SIGKILL the child (its whole process group when group) and reap it
void ps_process_kill (pid_t pid, bool group);

//  Wait as ps_process_wait and kill a child still running then: its exit
//  status as ps_process_exit_code gives it, or -1 when it was killed
int ps_process_finish (pid_t pid, bool group, int timeout_ms);

//  A wait status as one number: the exit status, or 128 + the signal
//  that ended the process (as shells write it)
int ps_process_exit_code (int status);

//  Read from fd and append to text (NUL-terminated, holding size bytes at
//  most) until text holds needle, timeout_ms passes, the writer closes
//  its end or text is full; whether text holds needle. Leaves fd
//  non-blocking.
bool ps_process_read_until (int fd, const char *needle, char *text, size_t size, int timeout_ms);

//  Run argv[0] to its end within timeout_ms (in a process group of its own
//  when group), its stdout collected into *output (NUL-terminated, the
//  caller frees it) and its stderr ours. 0 with its wait status in
//  *status; -1 when it could not start, or did not end in time and was
//  killed with its group (problem says which; *output then holds what it
//  printed until then, or is NULL when it could not start or no memory
//  was left).
int ps_process_capture (char *const argv[], bool group, int timeout_ms, char **output, int *status,
                        ps_problem_t *problem);

//  SIGKILL every child started and not yet reaped, each with its group if
//  it leads one. Async-signal-safe: for a handler of SIGINT and SIGTERM.
void ps_process_kill_all (void);

#endif
