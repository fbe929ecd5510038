/*  =========================================================================
    test_restore_kill - psbroker killed with SIGKILL at random moments
    while it writes checkpoints, and started again with the same command

    A psbroker process checkpoints after every clock of its one worker
    (--checkpoint-clocks 1), so that a checkpoint is being written most of
    the time. The worker is this test program run again as a "stepper"
    (PSMQ_TEST_STEPPER names the broker): it joins, checks the values the
    broker restored, then steps until it is killed. Its keys are SGD at
    rate 1, pushed -1 at every clock, so that after clock c every element
    is exactly c: the values a restarted broker serves must equal the
    clock its HELLO gives back, element for element, over a key of 4 MB
    (whose write takes a while) and a key of one float.

    Each cycle kills the broker either just after a temporary checkpoint
    file appears (a write under way) or after a random delay, then kills
    the stepper, and starts both again. Every start must restore a whole
    checkpoint ("restored checkpoint FILE: clock C, ...", never a refused
    one), at a clock no older than the last one restored, with the values
    of that clock.

    usage: build/test_restore_kill [--filter 'restore_kill/<test>']
    ========================================================================= */

#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  The large key, in floats (4 MB), and the small one
#define BIG (1 << 20)
#define SMALL 1

// ------------------------------------------------------------ the stepper

//  The stepper: join, check that every element of both keys equals the
//  clock the broker gave, say "ready clock C", then push -1 and finish a
//  clock until killed. Exits 2 when it cannot join, 3 when a value is
//  wrong, 4 when a call fails.
static int
s_stepper (const char *endpoint)
{
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = endpoint;
    options.timeout_ms = 10000;
    options.clock_timeout_ms = 10000;
    int status;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    if (!worker) {
        fprintf (stderr, "stepper: cannot join %s: %s\n", endpoint, ps_strerror (status));
        return 2;
    }
    int64_t clock = ps_worker_current_clock (worker);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1};
    float *big = malloc (BIG * sizeof (float)), small = -1;
    float *grad = malloc (BIG * sizeof (float));
    if (!big || !grad)
        return 4;
    ps_tensor_t tensors[] = {{"big", big, BIG}, {"small", &small, SMALL}};
    if (ps_worker_init (worker, "big", BIG, NULL, &sgd) ||
        ps_worker_init (worker, "small", SMALL, NULL, &sgd) ||
        ps_worker_pull (worker, tensors, 2)) {
        fprintf (stderr, "stepper: %s\n", ps_worker_error (worker));
        return 4;
    }
    for (size_t i = 0; i < BIG + SMALL; i++) {
        float value = i < BIG ? big[i] : small;
        if (value != (float)clock) {
            printf ("bad clock %" PRId64 ": element %zu is %g\n", clock, i, (double)value);
            fflush (stdout);
            return 3;
        }
    }
    printf ("ready clock %" PRId64 "\n", clock);
    fflush (stdout);
    for (size_t i = 0; i < BIG; i++)
        grad[i] = -1;
    float minus_one = -1;
    ps_tensor_t grads[] = {{"big", grad, BIG}, {"small", &minus_one, SMALL}};
    while (ps_worker_push (worker, grads, 2, 1) == PS_OK && ps_worker_clock (worker) == PS_OK)
        ;
    fprintf (stderr, "stepper: %s\n", ps_worker_error (worker));
    return 4;
}

//  This program is the stepper when PSMQ_TEST_STEPPER says so: before
//  Criterion (and ps_testutil's directory) start
__attribute__ ((constructor (101))) static void
s_maybe_stepper (void)
{
    const char *endpoint = getenv ("PSMQ_TEST_STEPPER");
    if (endpoint)
        _exit (s_stepper (endpoint));
}

// ------------------------------------------------------------ the test

typedef struct {
    ps_process_t broker;  //  the psbroker
    ps_process_t stepper; //  its worker
    char log[256];        //  the broker's stderr, this cycle
    int64_t restored;     //  the clock it restored, -1 none
} cycle_t;

//  Start psbroker with args (its stderr into cycle->log) and the stepper;
//  check what the broker restored and what the stepper found
static void
s_start (cycle_t *cycle, char *const args[], int number)
{
    snprintf (cycle->log, sizeof cycle->log, "%s/broker-%d.log", ps_test_dir (), number);
    ps_process_spec_t spec = {.out = PS_PROCESS_PIPE,
                              .err = PS_PROCESS_FILE,
                              .err_path = cycle->log,
                              .die_with_parent = true};
    cycle->broker = ps_test_start (args, &spec);
    char out[512] = "", endpoint[64] = "";
    ps_test_read_until (cycle->broker.out, "\n", out, sizeof out, PS_TEST_WAIT_MS);
    char *log = ps_test_slurp (cycle->log);
    const char *at = strstr (out, "psbroker listening on ");
    cr_assert (at && sscanf (at + 22, "%63s", endpoint) == 1,
               "cycle %d: the broker did not start: %s", number, log);
    //  A whole checkpoint, or (before the first was written) none
    cr_assert_null (strstr (log, "refused"), "cycle %d: %s", number, log);
    const char *restored = strstr (log, "restored checkpoint ");
    long long clock = -1;
    if (restored)
        cr_assert (sscanf (strstr (restored, ": clock ") ? strstr (restored, ": clock ") : "",
                           ": clock %lld, 2 keys, 1 ranks", &clock) == 1,
                   "cycle %d: %s", number, log);
    else
        cr_assert (strstr (log, "no checkpoint in"), "cycle %d: %s", number, log);
    free (log);
    cycle->restored = clock;

    char self[512];
    ssize_t length = readlink ("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt (length, 0);
    self[length] = 0;
    setenv ("PSMQ_TEST_STEPPER", endpoint, 1);
    char *argv[] = {self, NULL};
    ps_process_spec_t stepper_spec = {.out = PS_PROCESS_PIPE, .die_with_parent = true};
    cycle->stepper = ps_test_start (argv, &stepper_spec);
    unsetenv ("PSMQ_TEST_STEPPER");
    out[0] = 0;
    cr_assert (ps_test_read_until (cycle->stepper.out, "\n", out, sizeof out, PS_TEST_WAIT_MS),
               "cycle %d: the stepper said nothing", number);
    long long ready = -2;
    cr_assert_eq (sscanf (out, "ready clock %lld", &ready), 1, "cycle %d: stepper: %s", number,
                  out);
    //  Its HELLO gave the clock the broker restored, and the values are
    //  that clock's
    cr_assert_eq (ready, clock < 0 ? 0 : clock, "cycle %d", number);
}

//  Whether a checkpoint is being written in dir: its .tmp file is there
static bool
s_writing (const char *dir)
{
    DIR *stream = opendir (dir);
    if (!stream)
        return false;
    bool found = false;
    struct dirent *entry;
    while (!found && (entry = readdir (stream)))
        found = strstr (entry->d_name, ".psmq.tmp") != NULL;
    closedir (stream);
    return found;
}

//  Wait until a write is (writing) or is not under way in dir
static void
s_wait_writing (const char *dir, bool writing)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (s_writing (dir) != writing && zclock_mono () < deadline)
        usleep (100);
}

//  Kill the broker at a random moment: just after a write starts (the
//  first to fourth of this run), or after a random delay; whether a write
//  was under way when it died
static bool
s_kill (cycle_t *cycle, const char *dir, unsigned *seed)
{
    if (rand_r (seed) % 3) {
        for (int writes = rand_r (seed) % 4; writes > 0; writes--) {
            s_wait_writing (dir, true);
            s_wait_writing (dir, false);
        }
        s_wait_writing (dir, true);
        usleep ((useconds_t)(rand_r (seed) % 4000));
    }
    else
        usleep ((useconds_t)(rand_r (seed) % 60000));
    kill (cycle->broker.pid, SIGKILL);
    int status;
    cr_assert_eq (ps_process_wait (cycle->broker.pid, PS_TEST_WAIT_MS, &status), 0);
    cr_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
               "the broker ended before it was killed: %s", ps_test_slurp (cycle->log));
    bool writing = s_writing (dir);
    ps_process_kill (cycle->stepper.pid, false);
    close (cycle->broker.out);
    close (cycle->stepper.out);
    return writing;
}

//  cycles kills of a broker of staleness, as the file's comment says
static void
s_kill_cycles (const char *staleness, int cycles)
{
    char dir[256], binary[512];
    ps_test_path ("checkpoints", dir, sizeof dir);
    char *args[] = {(char *)ps_test_binary ("psbroker", binary, sizeof binary),
                    "--port",
                    "0",
                    "--bind",
                    "127.0.0.1",
                    "--workers",
                    "1",
                    "--staleness",
                    (char *)staleness,
                    "--no-tap",
                    "--checkpoint",
                    dir,
                    "--checkpoint-seconds",
                    "0",
                    "--checkpoint-clocks",
                    "1",
                    NULL};
    unsigned seed = (unsigned)zclock_usecs ();
    fprintf (stderr, "test_restore_kill: seed %u, staleness %s\n", seed, staleness);
    int64_t last = -1;
    int restored = 0, while_writing = 0;
    for (int number = 0; number < cycles; number++) {
        cycle_t cycle;
        s_start (&cycle, args, number);
        cr_assert_geq (cycle.restored, last, "cycle %d restored clock %" PRId64 " after %" PRId64,
                       number, cycle.restored, last);
        if (cycle.restored >= 0) {
            restored++;
            last = cycle.restored;
        }
        while_writing += s_kill (&cycle, dir, &seed);
        unlink (cycle.log);
    }
    fprintf (stderr,
             "test_restore_kill: %d kills, %d while a checkpoint was being written; %d restores, "
             "the last at clock %" PRId64 "\n",
             cycles, while_writing, restored, last);
    //  Not a run of empty restarts: most cycles restored, the job went on
    //  across them, and many kills hit a write
    cr_assert_geq (restored, cycles * 3 / 4);
    cr_assert_geq (last, cycles / 2);
    cr_assert_geq (while_writing, cycles / 4);
}

Test (restore_kill, ssp_100_kills_while_writing, .timeout = 100)
{
    s_kill_cycles ("1", 100);
}

Test (restore_kill, bsp_30_kills_while_writing, .timeout = 60)
{
    s_kill_cycles ("0", 30);
}
