/*  =========================================================================
    psbench - how close psmq comes to this machine's limits

    A benchmark in the style of libzmq's perf/ programs: a fixed usage
    line and one `name: value unit` line per figure on stdout, so that
    scripts can parse it. Each figure is followed, when the yardstick was
    measured, by `name.ratio: R (vs case value unit)`, R being psmq's
    figure divided by the yardstick's in the figure's own unit (ms and us:
    lower is better; GB/s and clocks/s: higher is better).

    The yardstick (shared/bench: zmq_limits and memband) is run by this
    program in the same session, before the cases it is held against,
    because this shared 2-core machine drifts from hour to hour and a ratio
    to numbers from another session means little. We run the yardstick's
    own binaries rather than copying their code, so both sides of every
    ratio are exactly what the bench README describes.

    The broker is a separate psbroker process, as in production and as the
    yardstick's server is: one started per case on an ephemeral loopback
    port, its endpoint read from its first stdout line, stopped with
    SIGTERM (then SIGKILL after a bounded wait). Workers are threads of
    this process, each with its own ps_worker_t, as the library requires.
    The aggregation case drives ps_store in-process instead: it measures
    the aggregation thread's arithmetic, not the network.

    Timed cases run repetitions of a fixed duration (pushpull) or a fixed
    count calibrated from a warm-up (bsp) and report the median. Every wait
    is bounded: worker calls by their timeouts, child processes by a
    deadline after which they are killed.
    ========================================================================= */

#include "ps_limits.h"
#include "ps_malloc.h"
#include "ps_store.h"
#include "ps_worker.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define USAGE                                                                                      \
    "usage: psbench [--quick] [--only LIST] [--sizes LIST] [--no-yardstick] [--yardstick DIR] "    \
    "[--broker-bin PATH]\n"

//  How long psbroker may take to print its endpoint, and to stop
#define BROKER_START_MS 10000
#define BROKER_STOP_MS 5000
//  Bounds on the yardstick programs (zmq_limits takes ~10 s, memband ~3 s)
#define ZMQ_LIMITS_MS 180000
#define MEMBAND_MS 120000
//  Reply timeout of every worker call, CLOCK included
#define WORKER_TIMEOUT_MS 20000
//  Repetitions kept for a median, at most
#define MAX_REPS 32
//  Workers of the bsp case, at most
#define MAX_WORKERS 8
//  Pushpull sizes: at most this many, each at most this big
#define MAX_SIZES 4
#define MAX_SIZE_BYTES (256u << 20)
//  Gradients summed by the aggregation case (as memband's agg8)
#define AGG_GRADIENTS 8
//  Rounds of the group and localagg cases, at most
#define MAX_ROUNDS 5
//  Brokers in a group, at most; the group case runs 1, 2 and 4
#define MAX_BROKERS 4
//  Children running at once: a group's brokers, or the yardstick
#define MAX_CHILDREN (MAX_BROKERS + 1)
//  The group case's model: one tensor, sliced over the group
#define GROUP_BYTES (64u << 20)
#define GROUP_BYTES_QUICK (1u << 20)
//  Workers of the localagg case, and its two model sizes (floats)
#define LOCALAGG_WORKERS 4
#define LOCALAGG_SMALL 1024
#define LOCALAGG_LARGE (1024 * 1024)
#define LOCALAGG_LARGE_QUICK (256 * 1024)

//  The cases, for --only
enum {
    CASE_PUSHPULL = 1,
    CASE_PUSHPULL4 = 2,
    CASE_LATENCY = 4,
    CASE_AGGREGATION = 8,
    CASE_BSP = 16,
    CASE_TAP = 32,
    CASE_GROUP = 64,
    CASE_LOCALAGG = 128,
    CASE_ALL = 255
};

//  How the tap case starts its brokers
enum { TAP_DEFAULT = 0, TAP_OFF, TAP_IDLE, TAP_WATCHED };

static const struct {
    const char *name;
    unsigned bit;
} s_cases[] = {{"pushpull", CASE_PUSHPULL}, {"pushpull4", CASE_PUSHPULL4},
               {"latency", CASE_LATENCY},   {"aggregation", CASE_AGGREGATION},
               {"bsp", CASE_BSP},           {"tap", CASE_TAP},
               {"group", CASE_GROUP},       {"localagg", CASE_LOCALAGG}};

typedef struct {
    bool quick;                //  tiny sizes, few iterations
    bool yardstick;            //  run the yardstick and print ratios
    bool yardstick_given;      //  --yardstick was on the command line
    const char *yardstick_dir; //  where zmq_limits and memband are
    char broker_bin[PATH_MAX]; //  the psbroker to start
    unsigned cases;            //  CASE_* bits
    size_t sizes[MAX_SIZES];   //  --sizes, bytes
    size_t nsizes;             //  their number; 0: the plan's
    int tap_mode;              //  TAP_*: the tap case's broker setting
} options_t;

//  Sizes and durations: the full run, or --quick
typedef struct {
    size_t sizes[MAX_SIZES]; //  pushpull tensor sizes, bytes
    size_t nsizes;           //  their number
    double rep_seconds;      //  one pushpull repetition (x3 for 16 MB and up)
    int reps;                //  repetitions per figure
    int lat_warmup;          //  latency round pairs not timed
    int lat_pairs;           //  latency round pairs timed
    size_t agg_bytes;        //  one gradient of the aggregation case
    int agg_reps;            //  aggregation repetitions
    double bsp_seconds;      //  one bsp repetition, roughly
    int bsp_calibrate;       //  bsp warm-up clocks, which set the count
    size_t group_bytes;      //  the group case's tensor, bytes
    size_t localagg_large;   //  the localagg case's larger key, floats
    int rounds;              //  group and localagg: turns of their settings
} plan_t;

//  One line of a yardstick table
typedef struct {
    char name[64]; //  case, e.g. tcp_rt_zc
    uint64_t size; //  size_bytes; 0 for latency lines
    double a;      //  GB/s, or the latency median in us
    double b;      //  ms_per_op, or the latency p99 in us
} yard_row_t;

typedef struct {
    yard_row_t *rows; //  both tables
    size_t nrows;     //  rows used
    size_t capacity;  //  rows allocated
} yardstick_t;

//  The tap case's reader: a SUB socket on the broker's tap that takes
//  every metadata record (no payload) as fast as it can
typedef struct {
    char endpoint[256];   //  the tap
    atomic_bool stop;     //  main says stop
    atomic_ulong records; //  records read
    pthread_t thread;     //  the reader
    bool running;         //  to join it once
} tap_reader_t;

//  A running psbroker
typedef struct {
    pid_t pid;            //  its process
    int out;              //  read end of its stdout
    char endpoint[256];   //  what it listens on
    tap_reader_t *reader; //  TAP_WATCHED: its tap reader
} broker_t;

//  A group of psbrokers, shard i being brokers[i] (one for a lone broker)
typedef struct {
    broker_t brokers[MAX_BROKERS];     //  the first size are running
    uint32_t size;                     //  brokers started
    char endpoints[MAX_BROKERS * 257]; //  theirs in shard order, comma-separated
} group_t;

//  The children to kill should we be interrupted: the brokers of a group,
//  or the yardstick's process group. Plain slots that the handler only
//  reads (async-signal-safe); a pid of 0 is a free slot.
static volatile pid_t s_child_pid[MAX_CHILDREN];
static volatile sig_atomic_t s_child_group[MAX_CHILDREN];

static void
s_on_signal (int signal_number)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        pid_t pid = s_child_pid[i];
        if (pid > 0)
            kill (s_child_group[i] ? -pid : pid, SIGKILL);
    }
    _exit (128 + signal_number);
}

//  Remember a child for the signal handler; with no free slot it is not
//  killed on a signal, which only matters if we are interrupted
static void
s_child_remember (pid_t pid, bool group)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (s_child_pid[i] == 0) {
            s_child_group[i] = group;
            s_child_pid[i] = pid;
            return;
        }
}

//  The child is gone: no signal must reach its pid, now free for reuse
static void
s_child_forget (pid_t pid)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (s_child_pid[i] == pid)
            s_child_pid[i] = 0;
}

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static void
s_sleep (double seconds)
{
    struct timespec pause = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep (&pause, &pause) == -1 && errno == EINTR)
        ;
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

//  Sorts values in place; the q-quantile (nearest rank)
static double
s_quantile (double *values, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort (values, n, sizeof *values, s_compare_double);
    size_t index = (size_t)(q * (double)(n - 1) + 0.5);
    return values[index < n ? index : n - 1];
}

//  "4K", "1M", "64M": the size name of figures and of zmq_limits' -s
static const char *
s_size_name (size_t bytes, char *text, size_t size)
{
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf (text, size, "%zuM", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf (text, size, "%zuK", bytes >> 10);
    else
        snprintf (text, size, "%zu", bytes);
    return text;
}

// ------------------------------------------------------------ output

//  A number with as many decimals as it deserves, never an exponent
static const char *
s_number (double value, char *text, size_t size)
{
    if (value >= 1000)
        snprintf (text, size, "%.1f", value);
    else if (value >= 1)
        snprintf (text, size, "%.3f", value);
    else
        snprintf (text, size, "%.5f", value);
    return text;
}

static void
s_figure (const char *name, double value, const char *unit)
{
    char number[64];
    printf ("%s: %s %s\n", name, s_number (value, number, sizeof number), unit);
}

//  name.ratio: ours / theirs (vs what theirs unit)
static void
s_ratio (const char *name, const char *suffix, double ours, const char *what, double theirs,
         const char *unit)
{
    char number[64];
    if (theirs <= 0)
        return;
    printf ("%s.%s: %.3f (vs %s %s %s)\n", name, suffix, ours / theirs, what,
            s_number (theirs, number, sizeof number), unit);
}

// ------------------------------------------------------------ children

//  Wait up to timeout_ms for pid to end; true with its wait status
static bool
s_wait_pid (pid_t pid, int timeout_ms, int *status)
{
    double deadline = s_now () + timeout_ms / 1000.0;
    while (true) {
        pid_t done = waitpid (pid, status, WNOHANG);
        if (done == pid)
            return true;
        if (done == -1 && errno != EINTR)
            return false;
        if (s_now () >= deadline)
            return false;
        s_sleep (0.005);
    }
}

//  Start argv with stdout on a pipe, in its own process group when group
//  is set (the yardstick forks servers we must be able to kill with it).
//  The pid, or -1; *out gets the pipe's read end.
static pid_t
s_spawn (char *const argv[], bool group, int *out)
{
    int fds[2];
    //  Close-on-exec: a child inherits no other child's pipe
    if (pipe2 (fds, O_CLOEXEC))
        return -1;
    fflush (stdout);
    pid_t pid = fork ();
    if (pid == -1) {
        close (fds[0]);
        close (fds[1]);
        return -1;
    }
    if (pid == 0) {
        if (group)
            setpgid (0, 0);
        dup2 (fds[1], STDOUT_FILENO);
        close (fds[0]);
        close (fds[1]);
        execv (argv[0], argv);
        fprintf (stderr, "psbench: cannot run %s: %s\n", argv[0], strerror (errno));
        _exit (127);
    }
    if (group)
        setpgid (pid, pid); //  also here, so a kill right away finds the group
    close (fds[1]);
    s_child_remember (pid, group);
    *out = fds[0];
    return pid;
}

static void
s_kill (pid_t pid, bool group)
{
    kill (group ? -pid : pid, SIGKILL);
    waitpid (pid, NULL, 0);
    s_child_forget (pid);
}

//  Run argv to completion within timeout_ms and collect its stdout into
//  *output (malloc'd, NUL-terminated). 0 when it exited with status 0.
static int
s_run_capture (char *const argv[], int timeout_ms, char **output)
{
    int out;
    *output = NULL;
    pid_t pid = s_spawn (argv, true, &out);
    if (pid == -1) {
        fprintf (stderr, "psbench: cannot start %s: %s\n", argv[0], strerror (errno));
        return -1;
    }
    size_t used = 0, capacity = 4096;
    char *text = malloc (capacity);
    double deadline = s_now () + timeout_ms / 1000.0;
    bool open = text != NULL;
    while (open) {
        int left = (int)((deadline - s_now ()) * 1000);
        if (left <= 0)
            break;
        struct pollfd item = {out, POLLIN, 0};
        int rc = poll (&item, 1, left);
        if (rc == -1 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        if (used + 1024 > capacity) {
            char *grown = realloc (text, capacity * 2);
            if (!grown)
                break;
            text = grown;
            capacity *= 2;
        }
        ssize_t got = read (out, text + used, capacity - used - 1);
        if (got > 0)
            used += (size_t)got;
        else if (got == 0 || errno != EINTR)
            open = false;
    }
    close (out);
    int status = 0;
    int left = (int)((deadline - s_now ()) * 1000);
    if (open || !s_wait_pid (pid, left > 0 ? left : 0, &status)) {
        fprintf (stderr, "psbench: %s did not finish within %d s; killed\n", argv[0],
                 timeout_ms / 1000);
        s_kill (pid, true);
        free (text);
        return -1;
    }
    s_child_forget (pid);
    if (!text)
        return -1;
    text[used] = 0;
    *output = text;
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        fprintf (stderr, "psbench: %s failed (%s %d)\n", argv[0],
                 WIFEXITED (status) ? "exit status" : "signal",
                 WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
        return -1;
    }
    return 0;
}

// ------------------------------------------------------------ yardstick

static void
s_yard_add (yardstick_t *self, const yard_row_t *row)
{
    if (self->nrows == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 32;
        yard_row_t *grown = realloc (self->rows, capacity * sizeof *grown);
        if (!grown)
            return;
        self->rows = grown;
        self->capacity = capacity;
    }
    self->rows[self->nrows++] = *row;
}

//  Parse a table: `case size GB/s ms` or `case median p99`; '#' lines are
//  comments. Every line is echoed as a comment of ours.
static void
s_yard_parse (yardstick_t *self, char *text)
{
    char *saved = NULL;
    for (char *line = strtok_r (text, "\n", &saved); line; line = strtok_r (NULL, "\n", &saved)) {
        printf ("#   %s\n", line);
        if (line[0] == '#')
            continue;
        yard_row_t row;
        memset (&row, 0, sizeof row);
        double x[3];
        int fields = sscanf (line, "%63s %lf %lf %lf", row.name, &x[0], &x[1], &x[2]);
        if (fields == 4) {
            row.size = (uint64_t)x[0];
            row.a = x[1];
            row.b = x[2];
            s_yard_add (self, &row);
        }
        else if (fields == 3) {
            row.a = x[0];
            row.b = x[1];
            s_yard_add (self, &row);
        }
    }
}

//  The row of a case (size 0 for latency lines), or NULL
static const yard_row_t *
s_yard_find (const yardstick_t *self, const char *name, uint64_t size)
{
    for (size_t i = 0; i < self->nrows; i++)
        if (strcmp (self->rows[i].name, name) == 0 && self->rows[i].size == size)
            return &self->rows[i];
    return NULL;
}

//  Run one yardstick program; false (with the way to build it) if missing
static bool
s_yard_run (yardstick_t *self, const options_t *options, const char *program, char **args,
            int timeout_ms)
{
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", options->yardstick_dir, program);
    if (access (path, X_OK)) {
        fprintf (stderr,
                 "psbench: no yardstick program at %s; build it with\n"
                 "    make -C ../shared/bench BUILD=%s   (from the project checkout)\n"
                 "(or give --yardstick DIR, or --no-yardstick); figures follow without "
                 "ratios\n",
                 path, options->yardstick_dir);
        printf ("# yardstick %s missing: no ratios\n", path);
        return false;
    }
    char *argv[16] = {path};
    size_t argc = 1;
    for (; args && args[argc - 1] && argc < 15; argc++)
        argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    printf ("# yardstick:");
    for (size_t i = 0; i < argc; i++)
        printf (" %s", argv[i]);
    printf ("\n");
    char *output;
    int rc = s_run_capture (argv, timeout_ms, &output);
    if (output)
        s_yard_parse (self, output);
    free (output);
    return rc == 0;
}

// ------------------------------------------------------------ tap reader

static void *
s_tap_reader_main (void *arg)
{
    tap_reader_t *self = arg;
    void *context = zmq_ctx_new ();
    void *sub = zmq_socket (context, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect (sub, self->endpoint);
    //  Every metadata topic, none of the payload ones
    static const char *kinds[] = {"req.", "rep.", "conn.", "disc.", "evict.", "rej.", "clock."};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        zmq_setsockopt (sub, ZMQ_SUBSCRIBE, kinds[i], strlen (kinds[i]));
    zmq_pollitem_t items[] = {{sub, 0, ZMQ_POLLIN, 0}};
    zmq_msg_t part;
    zmq_msg_init (&part);
    while (!atomic_load (&self->stop)) {
        if (zmq_poll (items, 1, 50) <= 0)
            continue;
        while (zmq_msg_recv (&part, sub, ZMQ_DONTWAIT) != -1) {
            if (!zmq_msg_more (&part))
                atomic_fetch_add (&self->records, 1);
        }
    }
    zmq_msg_close (&part);
    zmq_close (sub);
    zmq_ctx_term (context);
    return NULL;
}

//  Find the broker's tap through INFO, start the reader, and wait until
//  the broker counts its subscriptions, so the timing sees a watched tap
static int
s_tap_reader_start (broker_t *broker)
{
    char *json = NULL;
    if (ps_worker_query_info (broker->endpoint, 3000, &json) != PS_OK)
        return -1;
    const char *at = strstr (json, "\"tap\":\"");
    tap_reader_t *reader = calloc (1, sizeof *reader);
    if (!at || !reader || sscanf (at + 7, "%255[^\"]", reader->endpoint) != 1) {
        fprintf (stderr, "psbench: the broker reports no tap\n");
        free (json);
        free (reader);
        return -1;
    }
    free (json);
    atomic_init (&reader->stop, false);
    atomic_init (&reader->records, 0);
    if (pthread_create (&reader->thread, NULL, s_tap_reader_main, reader)) {
        free (reader);
        return -1;
    }
    reader->running = true;
    broker->reader = reader;
    double deadline = s_now () + 3;
    while (s_now () < deadline) {
        if (ps_worker_query_info (broker->endpoint, 1000, &json) == PS_OK) {
            bool counted = strstr (json, "\"tap_subscriptions\":0,") == NULL;
            free (json);
            if (counted)
                return 0;
        }
        s_sleep (0.01);
    }
    fprintf (stderr, "psbench: the broker never counted the tap reader\n");
    return -1;
}

static uint64_t
s_tap_reader_stop (broker_t *broker)
{
    tap_reader_t *reader = broker->reader;
    if (!reader)
        return 0;
    atomic_store (&reader->stop, true);
    if (reader->running)
        pthread_join (reader->thread, NULL);
    uint64_t records = atomic_load (&reader->records);
    free (reader);
    broker->reader = NULL;
    return records;
}

// ------------------------------------------------------------ broker

//  Start psbroker on an ephemeral loopback port, as shard of a group of
//  shards brokers when shards > 1; 0 or -1 (said why)
static int
s_broker_start (const options_t *options, uint32_t workers, int32_t staleness, uint32_t shard,
                uint32_t shards, broker_t *broker)
{
    memset (broker, 0, sizeof *broker);
    broker->pid = -1;
    broker->out = -1;
    if (access (options->broker_bin, X_OK)) {
        fprintf (stderr,
                 "psbench: psbroker not found at %s (%s); build it, or give --broker-bin "
                 "PATH\n",
                 options->broker_bin, strerror (errno));
        return -1;
    }
    char workers_text[16], staleness_text[16], shard_text[16], shards_text[16];
    snprintf (workers_text, sizeof workers_text, "%u", workers);
    snprintf (staleness_text, sizeof staleness_text, "%d", staleness);
    snprintf (shard_text, sizeof shard_text, "%u", shard);
    snprintf (shards_text, sizeof shards_text, "%u", shards);
    char *argv[16] = {(char *)options->broker_bin,
                      "--port",
                      "0",
                      "--bind",
                      "127.0.0.1",
                      "--workers",
                      workers_text,
                      "--staleness",
                      staleness_text,
                      "--quiet"};
    size_t argc = 10;
    if (options->tap_mode == TAP_OFF)
        argv[argc++] = "--no-tap";
    if (shards > 1) {
        argv[argc++] = "--shard";
        argv[argc++] = shard_text;
        argv[argc++] = "--shards";
        argv[argc++] = shards_text;
    }
    argv[argc] = NULL;
    broker->pid = s_spawn (argv, false, &broker->out);
    if (broker->pid == -1) {
        fprintf (stderr, "psbench: cannot start %s: %s\n", options->broker_bin, strerror (errno));
        return -1;
    }
    //  Its first line: "psbroker listening on tcp://127.0.0.1:PORT (...)"
    static const char *marker = "psbroker listening on ";
    char line[512] = "";
    size_t used = 0;
    double deadline = s_now () + BROKER_START_MS / 1000.0;
    while (!strchr (line, '\n') && used + 1 < sizeof line) {
        int left = (int)((deadline - s_now ()) * 1000);
        struct pollfd item = {broker->out, POLLIN, 0};
        if (left <= 0 || poll (&item, 1, left) == 0)
            break;
        ssize_t got = read (broker->out, line + used, sizeof line - 1 - used);
        if (got == 0 || (got < 0 && errno != EINTR))
            break;
        if (got > 0)
            used += (size_t)got;
        line[used] = 0;
    }
    const char *at = strstr (line, marker);
    if (at)
        sscanf (at + strlen (marker), "%255s", broker->endpoint);
    if (broker->endpoint[0] && options->tap_mode == TAP_WATCHED && s_tap_reader_start (broker)) {
        s_tap_reader_stop (broker);
        s_kill (broker->pid, false);
        close (broker->out);
        broker->pid = -1;
        return -1;
    }
    if (!broker->endpoint[0]) {
        int status;
        if (s_wait_pid (broker->pid, 1000, &status)) {
            fprintf (stderr, "psbench: %s exited (status %d) before listening\n",
                     options->broker_bin, WIFEXITED (status) ? WEXITSTATUS (status) : -1);
            s_child_forget (broker->pid);
        }
        else {
            fprintf (stderr, "psbench: %s did not print its endpoint within %d ms; killed\n",
                     options->broker_bin, BROKER_START_MS);
            s_kill (broker->pid, false);
        }
        close (broker->out);
        broker->pid = -1;
        return -1;
    }
    return 0;
}

//  SIGTERM, a bounded wait, then SIGKILL
static void
s_broker_stop (broker_t *broker)
{
    s_tap_reader_stop (broker);
    if (broker->pid > 0) {
        kill (broker->pid, SIGTERM);
        int status;
        if (!s_wait_pid (broker->pid, BROKER_STOP_MS, &status)) {
            fprintf (stderr, "psbench: psbroker %d ignored SIGTERM for %d ms; killed\n",
                     (int)broker->pid, BROKER_STOP_MS);
            s_kill (broker->pid, false);
        }
        else {
            if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
                fprintf (stderr, "psbench: psbroker ended badly (status %d)\n", status);
            s_child_forget (broker->pid);
        }
    }
    if (broker->out >= 0)
        close (broker->out);
    broker->pid = -1;
    broker->out = -1;
}

//  Stop every broker of the group that was started
static void
s_group_stop (group_t *group)
{
    for (uint32_t i = 0; i < group->size; i++)
        s_broker_stop (&group->brokers[i]);
    group->size = 0;
}

//  Start a group of shards brokers (1: a lone broker) and list their
//  endpoints, in shard order, as a worker is given them; on failure no
//  broker is left running. 0 or -1 (said why).
static int
s_group_start (const options_t *options, uint32_t shards, uint32_t workers, int32_t staleness,
               group_t *group)
{
    memset (group, 0, sizeof *group);
    assert (shards >= 1 && shards <= MAX_BROKERS);
    size_t used = 0;
    for (uint32_t i = 0; i < shards; i++) {
        broker_t *broker = &group->brokers[i];
        if (s_broker_start (options, workers, staleness, i, shards, broker)) {
            s_group_stop (group);
            return -1;
        }
        group->size = i + 1;
        //  Room for all: MAX_BROKERS endpoints of at most 255 characters
        //  and a comma each
        int wrote = snprintf (group->endpoints + used, sizeof group->endpoints - used, "%s%s",
                              i ? "," : "", broker->endpoint);
        used += (size_t)wrote;
    }
    return 0;
}

// ------------------------------------------------------------ workers

//  What s_bench_run runs
typedef struct {
    bool bsp;         //  the bsp loop (BSP), else pushpull (ASP)
    uint32_t threads; //  worker threads, each with its own connection
    uint32_t local;   //  workers each connection stands for (local
                      //  aggregation when > 1); 0 counts as 1
    uint32_t brokers; //  brokers in the group; 0 counts as 1
    size_t bytes;     //  pushpull: each thread's tensor; bsp: the one
                      //  shared key, 0 for the softmax-sized model
} bench_spec_t;

//  What one worker thread does, and what it found
typedef struct bench_s bench_t;

typedef struct {
    bench_t *bench;           //  the shared setup
    uint32_t rank;            //  its first rank (of bench->local)
    char key[32];             //  its tensor (pushpull)
    bool failed;              //  a call failed: it does no more work
    uint64_t steps[MAX_REPS]; //  steps done in each repetition
    double summing;           //  seconds in s_local_sum, this repetition
    double sums[MAX_REPS];    //  those seconds, each repetition
} bench_worker_t;

struct bench_s {
    const char *endpoint;                //  the broker, or the group's list
    uint32_t threads;                    //  worker threads
    uint32_t local;                      //  workers per thread's connection
    bool bsp;                            //  the bsp loop, else pushpull
    size_t count;                        //  floats per tensor; bsp: 0 softmax
    int reps;                            //  timed repetitions
    int warmup;                          //  untimed steps before them
    pthread_barrier_t barrier;           //  workers and main, in lock step
    atomic_bool stop;                    //  pushpull: end of a repetition
    atomic_bool abort;                   //  some worker failed: skip the work
    atomic_long clocks;                  //  bsp: clocks to run in the repetition
    bench_worker_t workers[MAX_WORKERS]; //  one per thread
};

//  A thread's tensors: what it pushes, what it pulls into and, with local
//  aggregation, the gradients of the workers it stands for
#define BENCH_TENSORS 2

typedef struct {
    ps_tensor_t grads[BENCH_TENSORS];  //  pushed
    ps_tensor_t params[BENCH_TENSORS]; //  pulled into
    float *local[BENCH_TENSORS];       //  local > 1: local gradients, back to back
    size_t ntensors;                   //  tensors used
} bench_buffers_t;

static bool
s_ok (ps_worker_t *worker, bench_worker_t *self, int status, const char *what)
{
    if (status == PS_OK)
        return true;
    fprintf (stderr, "psbench: worker %u: %s failed: %s (%s)\n", self->rank, what,
             ps_strerror (status), worker ? ps_worker_error (worker) : "");
    self->failed = true;
    return false;
}

//  A pushpull step: push the gradient, pull the parameters, both waited
static bool
s_pushpull_step (ps_worker_t *worker, bench_worker_t *self, bench_buffers_t *buffers)
{
    return s_ok (worker, self, ps_worker_push (worker, buffers->grads, 1, 1), "push") &&
           s_ok (worker, self, ps_worker_pull (worker, buffers->params, 1), "pull");
}

//  Local aggregation's own work, timed with the rest: the local workers'
//  gradients summed into the one that is pushed, in local - 1 passes over
//  memory, as psworker --threads does (its first thread adds the others'
//  gradients to its own in turn)
static void
s_local_sum (uint32_t local, bench_buffers_t *buffers)
{
    for (size_t i = 0; i < buffers->ntensors; i++) {
        size_t count = buffers->grads[i].count;
        float *sum = buffers->grads[i].data;
        const float *first = buffers->local[i], *second = first + count;
        for (size_t j = 0; j < count; j++)
            sum[j] = first[j] + second[j];
        for (uint32_t t = 2; t < local; t++) {
            const float *grad = first + t * count;
            for (size_t j = 0; j < count; j++)
                sum[j] += grad[j];
        }
    }
}

//  The bsp loop's clock: (with local aggregation, sum the local
//  gradients,) push every key, clock, pull every key
static bool
s_bsp_clock (ps_worker_t *worker, bench_worker_t *self, bench_buffers_t *buffers)
{
    uint32_t local = self->bench->local;
    if (local > 1) {
        double start = s_now ();
        s_local_sum (local, buffers);
        self->summing += s_now () - start;
    }
    return s_ok (worker, self, ps_worker_push (worker, buffers->grads, buffers->ntensors, local),
                 "push") &&
           s_ok (worker, self, ps_worker_clock (worker), "clock") &&
           s_ok (worker, self, ps_worker_pull (worker, buffers->params, buffers->ntensors), "pull");
}

static bool
s_bench_step (ps_worker_t *worker, bench_worker_t *self, bench_buffers_t *buffers)
{
    return self->bench->bsp ? s_bsp_clock (worker, self, buffers)
                            : s_pushpull_step (worker, self, buffers);
}

//  Softmax regression on 784 pixels and 10 classes: weights and biases
#define BSP_WEIGHTS 7850
#define BSP_BIASES 10

//  Allocate and touch a thread's buffers, before any timing; false when
//  out of memory (what was allocated is left for s_buffers_free)
static bool
s_buffers_new (const bench_t *bench, const bench_worker_t *self, bench_buffers_t *buffers)
{
    memset (buffers, 0, sizeof *buffers);
    size_t sizes[BENCH_TENSORS] = {bench->count, 0};
    const char *keys[BENCH_TENSORS] = {self->key, NULL};
    buffers->ntensors = 1;
    if (bench->bsp && bench->count == 0) {
        sizes[0] = BSP_WEIGHTS;
        sizes[1] = BSP_BIASES;
        keys[0] = "softmax.w";
        keys[1] = "softmax.b";
        buffers->ntensors = 2;
    }
    else if (bench->bsp)
        keys[0] = "bench.model"; //  one key that every worker pushes to
    for (size_t i = 0; i < buffers->ntensors; i++) {
        size_t count = sizes[i];
        float *grad = malloc (count * sizeof (float));
        float *param = calloc (count, sizeof (float));
        float *local = bench->local > 1 ? malloc (bench->local * count * sizeof (float)) : NULL;
        buffers->grads[i] = (ps_tensor_t){keys[i], grad, grad ? count : 0};
        buffers->params[i] = (ps_tensor_t){keys[i], param, param ? count : 0};
        buffers->local[i] = local;
        if (!grad || !param || (bench->local > 1 && !local))
            return false;
        for (size_t j = 0; j < count; j++)
            grad[j] = 1e-6f * (float)(j % 1000);
        for (size_t j = 0; local && j < bench->local * count; j++)
            local[j] = 1e-6f * (float)(j % 1000);
    }
    return true;
}

static void
s_buffers_free (bench_buffers_t *buffers)
{
    for (size_t i = 0; i < BENCH_TENSORS; i++) {
        free (buffers->grads[i].data);
        free (buffers->params[i].data);
        free (buffers->local[i]);
    }
    memset (buffers, 0, sizeof *buffers);
}

static void *
s_worker_main (void *arg)
{
    bench_worker_t *self = arg;
    bench_t *bench = self->bench;
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = bench->endpoint;
    options.rank = self->rank;
    options.world_size = bench->threads * bench->local;
    options.local_workers = bench->local;
    options.timeout_ms = WORKER_TIMEOUT_MS;
    options.clock_timeout_ms = WORKER_TIMEOUT_MS;
    int status;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    if (!worker)
        s_ok (NULL, self, status, "connect");

    bench_buffers_t buffers;
    if (!s_buffers_new (bench, self, &buffers)) {
        fprintf (stderr, "psbench: worker %u: out of memory\n", self->rank);
        self->failed = true;
    }
    for (size_t i = 0; i < buffers.ntensors && !self->failed; i++)
        s_ok (worker, self,
              ps_worker_init (worker, buffers.grads[i].key, buffers.grads[i].count, NULL, NULL),
              "init");
    if (self->failed && worker)
        ps_worker_close (&worker); //  BYE: BSP peers do not wait for us

    //  Warm-up (for bsp, main times it to choose the clock count)
    pthread_barrier_wait (&bench->barrier);
    for (int i = 0; i < bench->warmup && !self->failed && !atomic_load (&bench->abort); i++)
        s_bench_step (worker, self, &buffers);
    if (self->failed && worker)
        ps_worker_close (&worker);
    pthread_barrier_wait (&bench->barrier);

    for (int rep = 0; rep < bench->reps; rep++) {
        pthread_barrier_wait (&bench->barrier);
        uint64_t steps = 0;
        self->summing = 0;
        if (bench->bsp) {
            long clocks = atomic_load (&bench->clocks);
            for (long i = 0; i < clocks && !self->failed && !atomic_load (&bench->abort); i++)
                if (s_bench_step (worker, self, &buffers))
                    steps++;
        }
        else
            while (!self->failed && !atomic_load (&bench->abort) && !atomic_load (&bench->stop))
                if (s_bench_step (worker, self, &buffers))
                    steps++;
        self->steps[rep] = steps;
        self->sums[rep] = self->summing;
        if (self->failed && worker)
            ps_worker_close (&worker);
        pthread_barrier_wait (&bench->barrier);
    }
    if (worker)
        ps_worker_close (&worker);
    s_buffers_free (&buffers);
    return NULL;
}

//  Per repetition: wall seconds and steps of all worker threads
typedef struct {
    double wall[MAX_REPS];  //  seconds
    double steps[MAX_REPS]; //  summed over the threads
    double sums[MAX_REPS];  //  seconds of local summation, summed too
    int reps;               //  filled
} bench_result_t;

//  Run spec's threads against a broker or group started here; 0 or -1
static int
s_bench_run (const options_t *options, const plan_t *plan, const bench_spec_t *spec,
             bench_result_t *result)
{
    uint32_t local = spec->local > 1 ? spec->local : 1;
    uint32_t brokers = spec->brokers > 1 ? spec->brokers : 1;
    assert (spec->threads >= 1 && spec->threads <= MAX_WORKERS);
    group_t group;
    if (s_group_start (options, brokers, spec->threads * local, spec->bsp ? 0 : -1, &group))
        return -1;
    bench_t *bench = calloc (1, sizeof *bench);
    if (!bench) {
        s_group_stop (&group);
        return -1;
    }
    bool bsp = spec->bsp;
    bench->endpoint = group.endpoints;
    bench->threads = spec->threads;
    bench->local = local;
    bench->bsp = bsp;
    bench->count = spec->bytes / sizeof (float);
    bench->reps = plan->reps;
    bench->warmup = bsp                          ? plan->bsp_calibrate
                    : spec->bytes >= (16u << 20) ? 2
                    : options->quick             ? 5
                                                 : 20;
    atomic_init (&bench->stop, false);
    atomic_init (&bench->abort, false);
    atomic_init (&bench->clocks, 0);
    pthread_barrier_init (&bench->barrier, NULL, spec->threads + 1);
    pthread_t threads[MAX_WORKERS];
    for (uint32_t i = 0; i < spec->threads; i++) {
        bench_worker_t *worker = &bench->workers[i];
        worker->bench = bench;
        worker->rank = i * local;
        snprintf (worker->key, sizeof worker->key, "bench.%u", i);
        if (pthread_create (&threads[i], NULL, s_worker_main, worker)) {
            //  The barrier counts on every thread: no way to go on
            fprintf (stderr, "psbench: cannot start a worker thread\n");
            s_group_stop (&group);
            exit (1);
        }
    }
    //  Workers connected and initialised; then the warm-up
    pthread_barrier_wait (&bench->barrier);
    double start = s_now ();
    pthread_barrier_wait (&bench->barrier);
    double warmup = s_now () - start;
    bool failed = false;
    for (uint32_t i = 0; i < spec->threads; i++)
        failed |= bench->workers[i].failed;
    atomic_store (&bench->abort, failed);
    if (bsp) {
        double per_clock = warmup / (plan->bsp_calibrate > 0 ? plan->bsp_calibrate : 1);
        long clocks = per_clock > 0 ? (long)(plan->bsp_seconds / per_clock) : 100;
        atomic_store (&bench->clocks, clocks < 10 ? 10 : clocks > 1000000 ? 1000000 : clocks);
    }
    double rep_seconds = plan->rep_seconds * (spec->bytes >= (16u << 20) ? 3 : 1);
    for (int rep = 0; rep < plan->reps; rep++) {
        atomic_store (&bench->stop, false);
        pthread_barrier_wait (&bench->barrier);
        start = s_now ();
        if (!bsp && !failed)
            s_sleep (rep_seconds);
        atomic_store (&bench->stop, true);
        pthread_barrier_wait (&bench->barrier);
        result->wall[rep] = s_now () - start;
        result->steps[rep] = 0;
        result->sums[rep] = 0;
        for (uint32_t i = 0; i < spec->threads; i++) {
            result->steps[rep] += (double)bench->workers[i].steps[rep];
            result->sums[rep] += bench->workers[i].sums[rep];
            failed |= bench->workers[i].failed;
        }
        atomic_store (&bench->abort, failed);
    }
    result->reps = plan->reps;
    for (uint32_t i = 0; i < spec->threads; i++)
        pthread_join (threads[i], NULL);
    pthread_barrier_destroy (&bench->barrier);
    free (bench);
    s_group_stop (&group);
    return failed ? -1 : 0;
}

// ------------------------------------------------------------ cases

//  The yardstick row a pushpull size is held against: tcp_model_zc of
//  1 MB chunks for the 64 MB model, tcp_rt_zc of the same size otherwise
static const yard_row_t *
s_pushpull_yard (const yardstick_t *yard, size_t bytes, char *what, size_t what_size)
{
    //  zmq_limits' model is 64 MB (its -B default)
    bool model = bytes == (64u << 20);
    const char *name = model ? "tcp_model_zc" : "tcp_rt_zc";
    uint64_t size = model ? (1u << 20) : bytes;
    snprintf (what, what_size, "%s %llu", name, (unsigned long long)size);
    return yard ? s_yard_find (yard, name, size) : NULL;
}

//  pushpull_<size> (1 worker) or pushpull4_<size> (4 workers)
static int
s_case_pushpull (const options_t *options, const plan_t *plan, const yardstick_t *yard,
                 uint32_t nworkers, size_t bytes)
{
    char size_name[32], name[64], sub[80], what[80];
    snprintf (name, sizeof name, "pushpull%s_%s", nworkers > 1 ? "4" : "",
              s_size_name (bytes, size_name, sizeof size_name));
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {.threads = nworkers, .bytes = bytes};
    if (s_bench_run (options, plan, &spec, &result)) {
        fprintf (stderr, "psbench: %s failed\n", name);
        return -1;
    }
    double ms[MAX_REPS], gbps[MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++) {
        double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
        ms[rep] = result.wall[rep] * 1000 / (steps / nworkers);
        gbps[rep] = steps * 2.0 * (double)bytes / result.wall[rep] / 1e9;
    }
    double ms_median = s_quantile (ms, (size_t)result.reps, 0.5);
    double gbps_median = s_quantile (gbps, (size_t)result.reps, 0.5);
    const yard_row_t *row = s_pushpull_yard (yard, bytes, what, sizeof what);
    if (nworkers == 1) {
        s_figure (name, ms_median, "ms");
        if (row)
            s_ratio (name, "ratio", ms_median, what, row->b, "ms");
        snprintf (sub, sizeof sub, "%s.bandwidth", name);
        s_figure (sub, gbps_median, "GB/s");
    }
    else {
        //  Aggregate GB/s is the figure; a step's time is per worker
        s_figure (name, gbps_median, "GB/s");
        if (row)
            s_ratio (name, "ratio", gbps_median, what, row->a, "GB/s");
        snprintf (sub, sizeof sub, "%s.step", name);
        s_figure (sub, ms_median, "ms");
    }
    fflush (stdout);
    return 0;
}

//  latency_push_pull: 1-float push then pull, each waited
static int
s_case_latency (const options_t *options, const plan_t *plan, const yardstick_t *yard)
{
    broker_t broker;
    if (s_broker_start (options, 1, -1, 0, 1, &broker))
        return -1;
    ps_worker_options_t worker_options;
    ps_worker_options_init (&worker_options);
    worker_options.broker = broker.endpoint;
    worker_options.timeout_ms = WORKER_TIMEOUT_MS;
    int status;
    ps_worker_t *worker = ps_worker_connect (&worker_options, &status);
    double *us = malloc ((size_t)plan->lat_pairs * sizeof *us);
    float grad = 0.001f, param = 0;
    ps_tensor_t grad_tensor = {"latency", &grad, 1};
    ps_tensor_t param_tensor = {"latency", &param, 1};
    const char *what = worker ? "init" : "connect";
    if (worker && !us)
        status = PS_ENOMEM;
    else if (worker)
        status = ps_worker_init (worker, "latency", 1, NULL, NULL);
    for (int i = 0; status == PS_OK && i < plan->lat_warmup + plan->lat_pairs; i++) {
        double start = s_now ();
        status = ps_worker_push (worker, &grad_tensor, 1, 1);
        what = "push";
        if (status == PS_OK) {
            status = ps_worker_pull (worker, &param_tensor, 1);
            what = "pull";
        }
        if (i >= plan->lat_warmup)
            us[i - plan->lat_warmup] = (s_now () - start) * 1e6;
    }
    if (status != PS_OK)
        fprintf (stderr, "psbench: latency_push_pull: %s failed: %s (%s)\n", what,
                 ps_strerror (status), worker ? ps_worker_error (worker) : "");
    if (worker)
        ps_worker_close (&worker);
    s_broker_stop (&broker);
    if (status != PS_OK) {
        free (us);
        return -1;
    }
    double median = s_quantile (us, (size_t)plan->lat_pairs, 0.5);
    double p99 = s_quantile (us, (size_t)plan->lat_pairs, 0.99);
    free (us);
    s_figure ("latency_push_pull", median, "us");
    const yard_row_t *row = yard ? s_yard_find (yard, "tcp_lat", 0) : NULL;
    if (row)
        s_ratio ("latency_push_pull", "ratio", median, "2x tcp_lat", 2 * row->a, "us");
    s_figure ("latency_push_pull.p99", p99, "us");
    if (row)
        s_ratio ("latency_push_pull.p99", "ratio", p99, "2x tcp_lat p99", 2 * row->b, "us");
    fflush (stdout);
    return 0;
}

//  aggregation: the aggregation thread's arithmetic, in-process. BSP:
//  8 gradients accumulated into one key, then the flush that applies
//  their mean (SGD); SSP: 8 applies of one gradient each
static int
s_case_aggregation (const plan_t *plan, const yardstick_t *yard)
{
    size_t count = plan->agg_bytes / sizeof (float);
    size_t chunk = PS_CHUNK_BYTES / sizeof (float);
    size_t npieces = (count + chunk - 1) / chunk;
    ps_store_t *store = ps_store_new (NULL);
    float *grads = malloc (AGG_GRADIENTS * count * sizeof (float));
    ps_piece_t *pieces = malloc (AGG_GRADIENTS * npieces * sizeof *pieces);
    double *bsp = malloc ((size_t)plan->agg_reps * sizeof *bsp);
    double *ssp = malloc ((size_t)plan->agg_reps * sizeof *ssp);
    ps_problem_t problem = {0};
    ps_key_t *key = NULL;
    bool ok = store && grads && pieces && bsp && ssp;
    if (ok && ps_store_init (store, "aggregation", count, NULL, NULL, &problem) == 0)
        key = ps_store_lookup (store, "aggregation");
    ok = ok && key;
    if (ok) {
        //  Gradients laid out as they arrive: 1 MB frames, in order
        for (size_t i = 0; i < AGG_GRADIENTS * count; i++)
            grads[i] = 1e-6f * (float)(i % 977);
        for (size_t g = 0; g < AGG_GRADIENTS; g++)
            for (size_t p = 0; p < npieces; p++) {
                size_t offset = p * chunk;
                pieces[g * npieces + p] = (ps_piece_t){
                    grads + g * count + offset, count - offset < chunk ? count - offset : chunk};
            }
    }
    int64_t clock = 0;
    //  Repetition -1 is the warm-up: the accumulator's first allocation
    for (int rep = -1; ok && rep < plan->agg_reps; rep++) {
        double start = s_now ();
        for (size_t g = 0; ok && g < AGG_GRADIENTS; g++)
            ok = ps_store_accumulate (store, key, clock, pieces + g * npieces, npieces, 1,
                                      &problem) == 0;
        ok = ok && ps_store_flush (store, clock + 1, NULL, NULL) == 1;
        clock++;
        double middle = s_now ();
        for (size_t g = 0; ok && g < AGG_GRADIENTS; g++)
            ok = ps_store_apply (store, key, pieces + g * npieces, npieces, 1, &problem) == 0;
        double end = s_now ();
        if (rep >= 0) {
            bsp[rep] = middle - start;
            ssp[rep] = end - middle;
        }
    }
    if (!ok)
        fprintf (stderr, "psbench: aggregation failed: %s\n",
                 problem.message[0] ? problem.message : "out of memory");
    else {
        double bytes = (double)AGG_GRADIENTS * (double)count * sizeof (float);
        double bsp_s = s_quantile (bsp, (size_t)plan->agg_reps, 0.5);
        double ssp_s = s_quantile (ssp, (size_t)plan->agg_reps, 0.5);
        const yard_row_t *add = yard ? s_yard_find (yard, "add_1t", 64u << 20) : NULL;
        const yard_row_t *seq = yard ? s_yard_find (yard, "agg8_seq_1t", 16u << 20) : NULL;
        s_figure ("aggregation", bytes / bsp_s / 1e9, "GB/s");
        if (add)
            s_ratio ("aggregation", "ratio", bytes / bsp_s / 1e9, "add_1t 67108864", add->a,
                     "GB/s");
        if (seq)
            s_ratio ("aggregation", "ratio_agg8_seq", bytes / bsp_s / 1e9, "agg8_seq_1t 16777216",
                     seq->a, "GB/s");
        s_figure ("aggregation.time", bsp_s * 1000, "ms");
        s_figure ("aggregation_apply", bytes / ssp_s / 1e9, "GB/s");
        if (add)
            s_ratio ("aggregation_apply", "ratio", bytes / ssp_s / 1e9, "add_1t 67108864", add->a,
                     "GB/s");
        s_figure ("aggregation_apply.time", ssp_s * 1000, "ms");
        fflush (stdout);
    }
    free (ssp);
    free (bsp);
    free (pieces);
    free (grads);
    ps_store_destroy (&store);
    return ok ? 0 : -1;
}

//  bsp_clocks_<n>w: BSP clocks per second, softmax-sized model
static int
s_case_bsp (const options_t *options, const plan_t *plan, const yardstick_t *yard,
            uint32_t nworkers)
{
    char name[64];
    snprintf (name, sizeof name, "bsp_clocks_%uw", nworkers);
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {.bsp = true, .threads = nworkers};
    if (s_bench_run (options, plan, &spec, &result)) {
        fprintf (stderr, "psbench: %s failed\n", name);
        return -1;
    }
    double rate[MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++)
        rate[rep] = result.steps[rep] / nworkers / result.wall[rep];
    double median = s_quantile (rate, (size_t)result.reps, 0.5);
    s_figure (name, median, "clocks/s");
    //  A clock is three round trips in sequence (push, clock, pull): the
    //  rate three raw DEALER/ROUTER round trips would allow
    const yard_row_t *row = yard ? s_yard_find (yard, "tcp_lat", 0) : NULL;
    if (row && row->a > 0)
        s_ratio (name, "ratio", median, "1/(3x tcp_lat)", 1e6 / (3 * row->a), "clocks/s");
    fflush (stdout);
    return 0;
}

//  One run of the tap case in one mode: messages/s of 1-float push+pull
//  and ms per push+pull of big bytes
static int
s_tap_run (const options_t *options, const plan_t *plan, int mode, size_t big, double *small_rate,
           double *big_ms)
{
    options_t copy = *options;
    copy.tap_mode = mode;
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {.threads = 1, .bytes = sizeof (float)};
    if (s_bench_run (&copy, plan, &spec, &result))
        return -1;
    double values[MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++)
        values[rep] = 2 * result.steps[rep] / result.wall[rep];
    *small_rate = s_quantile (values, (size_t)result.reps, 0.5);
    spec.bytes = big;
    if (s_bench_run (&copy, plan, &spec, &result))
        return -1;
    for (int rep = 0; rep < result.reps; rep++)
        values[rep] = result.wall[rep] * 1000 / (result.steps[rep] > 0 ? result.steps[rep] : 1);
    *big_ms = s_quantile (values, (size_t)result.reps, 0.5);
    return 0;
}

//  tap_<mode>_small (messages/s of 1-float push+pull, 1 worker) and
//  tap_<mode>_16M (ms per 16 MB push+pull), with the broker's tap off,
//  on with nobody subscribed, and watched by one metadata reader. Each
//  run starts its own broker, and brokers differ from run to run by more
//  than the tap costs, so the modes take turns for several rounds and
//  each figure is the median of its rounds; .vs_off holds it against off.
static int
s_case_tap (const options_t *options, const plan_t *plan)
{
    static const char *modes[] = {"off", "idle", "watched"};
    static const int settings[] = {TAP_OFF, TAP_IDLE, TAP_WATCHED};
    enum { ROUNDS_MAX = 5 };
    int rounds = options->quick ? 1 : ROUNDS_MAX;
    size_t big = options->quick ? (1u << 20) : (16u << 20);
    char big_name[32];
    s_size_name (big, big_name, sizeof big_name);
    double small[3][ROUNDS_MAX], large[3][ROUNDS_MAX];
    for (int round = 0; round < rounds; round++)
        for (int m = 0; m < 3; m++)
            if (s_tap_run (options, plan, settings[m], big, &small[m][round], &large[m][round])) {
                fprintf (stderr, "psbench: tap_%s failed\n", modes[m]);
                return -1;
            }
    double small_median[3], large_median[3];
    for (int m = 0; m < 3; m++) {
        small_median[m] = s_quantile (small[m], (size_t)rounds, 0.5);
        large_median[m] = s_quantile (large[m], (size_t)rounds, 0.5);
    }
    for (int m = 0; m < 3; m++) {
        char name[64];
        snprintf (name, sizeof name, "tap_%s_small", modes[m]);
        s_figure (name, small_median[m], "msgs/s");
        if (m)
            s_ratio (name, "vs_off", small_median[m], "tap_off_small", small_median[0], "msgs/s");
        snprintf (name, sizeof name, "tap_%s_%s", modes[m], big_name);
        s_figure (name, large_median[m], "ms");
        if (m)
            s_ratio (name, "vs_off", large_median[m], "tap_off", large_median[0], "ms");
    }
    //  The spread of the off rounds is the noise the differences stand against
    double low = small[0][0], high = small[0][0];
    for (int round = 1; round < rounds; round++) {
        low = small[0][round] < low ? small[0][round] : low;
        high = small[0][round] > high ? small[0][round] : high;
    }
    s_figure ("tap_off_small.spread", small_median[0] > 0 ? (high - low) / small_median[0] : 0,
              "of median");
    fflush (stdout);
    return 0;
}

//  Median of each row's first n values into medians
static void
s_medians (double values[][MAX_ROUNDS], size_t rows, size_t n, double *medians)
{
    for (size_t i = 0; i < rows; i++)
        medians[i] = s_quantile (values[i], n, 0.5);
}

//  group_<n>b_<size>: ms per push+pull step of one worker whose one tensor
//  is sliced over a group of n psbrokers (ASP, as pushpull), for n = 1, 2
//  and 4; .bandwidth counts both directions, .speedup is the bandwidth
//  against one broker. Brokers differ from one start to the next, so the
//  group sizes take turns for a few rounds and each figure is the median
//  of its rounds (each round's value being the median of its repetitions).
static int
s_case_group (const options_t *options, const plan_t *plan, const yardstick_t *yard)
{
    static const uint32_t sizes[] = {1, 2, MAX_BROKERS};
    enum { NSIZES = sizeof sizes / sizeof sizes[0] };
    size_t bytes = plan->group_bytes;
    char size_name[32];
    s_size_name (bytes, size_name, sizeof size_name);
    double ms[NSIZES][MAX_ROUNDS], gbps[NSIZES][MAX_ROUNDS];
    for (int round = 0; round < plan->rounds; round++)
        for (size_t g = 0; g < NSIZES; g++) {
            bench_result_t result = {.reps = 0};
            bench_spec_t spec = {.threads = 1, .brokers = sizes[g], .bytes = bytes};
            if (s_bench_run (options, plan, &spec, &result)) {
                fprintf (stderr, "psbench: group_%ub_%s failed\n", sizes[g], size_name);
                return -1;
            }
            double rep_ms[MAX_REPS], rep_gbps[MAX_REPS];
            for (int rep = 0; rep < result.reps; rep++) {
                double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
                rep_ms[rep] = result.wall[rep] * 1000 / steps;
                rep_gbps[rep] = steps * 2.0 * (double)bytes / result.wall[rep] / 1e9;
            }
            ms[g][round] = s_quantile (rep_ms, (size_t)result.reps, 0.5);
            gbps[g][round] = s_quantile (rep_gbps, (size_t)result.reps, 0.5);
        }
    double ms_median[NSIZES], gbps_median[NSIZES];
    s_medians (ms, NSIZES, (size_t)plan->rounds, ms_median);
    s_medians (gbps, NSIZES, (size_t)plan->rounds, gbps_median);
    char what[80], base[80];
    const yard_row_t *row = s_pushpull_yard (yard, bytes, what, sizeof what);
    snprintf (base, sizeof base, "group_1b_%s.bandwidth", size_name);
    for (size_t g = 0; g < NSIZES; g++) {
        char name[64], sub[80];
        snprintf (name, sizeof name, "group_%ub_%s", sizes[g], size_name);
        s_figure (name, ms_median[g], "ms");
        if (row)
            s_ratio (name, "ratio", ms_median[g], what, row->b, "ms");
        snprintf (sub, sizeof sub, "%s.bandwidth", name);
        s_figure (sub, gbps_median[g], "GB/s");
        if (g)
            s_ratio (name, "speedup", gbps_median[g], base, gbps_median[0], "GB/s");
    }
    fflush (stdout);
    return 0;
}

//  A localagg mode: worker threads, and workers each stands for
typedef struct {
    const char *name; //  in the figure's name
    uint32_t threads; //  connections
    uint32_t local;   //  local_workers of each
} localagg_mode_t;

//  One run of a localagg mode on a key of bytes: the median over the
//  repetitions of clocks per second and of the ms per clock each thread
//  spent summing its local gradients
static int
s_localagg_run (const options_t *options, const plan_t *plan, const localagg_mode_t *mode,
                size_t bytes, double *rate, double *sum_ms)
{
    bench_result_t result = {.reps = 0};
    bench_spec_t spec = {
        .bsp = true, .threads = mode->threads, .local = mode->local, .bytes = bytes};
    if (s_bench_run (options, plan, &spec, &result))
        return -1;
    double rates[MAX_REPS], sums[MAX_REPS];
    for (int rep = 0; rep < result.reps; rep++) {
        double steps = result.steps[rep] > 0 ? result.steps[rep] : 1;
        rates[rep] = result.steps[rep] / mode->threads / result.wall[rep];
        sums[rep] = result.sums[rep] * 1000 / steps;
    }
    *rate = s_quantile (rates, (size_t)result.reps, 0.5);
    *sum_ms = s_quantile (sums, (size_t)result.reps, 0.5);
    return 0;
}

//  localagg_<mode>_<size>: BSP clocks per second of LOCALAGG_WORKERS
//  workers that all push to one key of <size> bytes, in three modes:
//  off, a thread and a connection per worker (the bsp loop); on, one
//  connection standing for all of them (local_workers), whose thread sums
//  their gradients, a cost timed with the rest, and pushes once; 2x2, two
//  such connections of two workers. .vs_off holds a mode against off;
//  .sum is the part of a clock spent summing. The modes take turns for a
//  few rounds, as in the group case.
static int
s_case_localagg (const options_t *options, const plan_t *plan)
{
    static const localagg_mode_t modes[] = {{"off", LOCALAGG_WORKERS, 1},
                                            {"on", 1, LOCALAGG_WORKERS},
                                            {"2x2", 2, LOCALAGG_WORKERS / 2}};
    enum { NMODES = sizeof modes / sizeof modes[0] };
    size_t counts[] = {LOCALAGG_SMALL, plan->localagg_large};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t bytes = counts[c] * sizeof (float);
        char size_name[32];
        s_size_name (bytes, size_name, sizeof size_name);
        double rate[NMODES][MAX_ROUNDS], sum_ms[NMODES][MAX_ROUNDS];
        for (int round = 0; round < plan->rounds; round++)
            for (size_t m = 0; m < NMODES; m++)
                if (s_localagg_run (options, plan, &modes[m], bytes, &rate[m][round],
                                    &sum_ms[m][round])) {
                    fprintf (stderr, "psbench: localagg_%s_%s failed\n", modes[m].name, size_name);
                    return -1;
                }
        double rate_median[NMODES], sum_median[NMODES];
        s_medians (rate, NMODES, (size_t)plan->rounds, rate_median);
        s_medians (sum_ms, NMODES, (size_t)plan->rounds, sum_median);
        char off[64];
        snprintf (off, sizeof off, "localagg_off_%s", size_name);
        for (size_t m = 0; m < NMODES; m++) {
            char name[64], sub[80];
            snprintf (name, sizeof name, "localagg_%s_%s", modes[m].name, size_name);
            s_figure (name, rate_median[m], "clocks/s");
            if (!m)
                continue;
            s_ratio (name, "vs_off", rate_median[m], off, rate_median[0], "clocks/s");
            snprintf (sub, sizeof sub, "%s.sum", name);
            s_figure (sub, sum_median[m], "ms");
        }
        fflush (stdout);
    }
    return 0;
}

// ------------------------------------------------------------ main

static void
s_usage (FILE *out)
{
    fprintf (out, USAGE "\n"
                        "Measure psmq against this machine's limits (loopback only). Prints one\n"
                        "`name: value unit` line per figure and, with the yardstick, a\n"
                        "`name.ratio: R (vs case value unit)` line: R = psmq / yardstick.\n"
                        "\n"
                        "  --quick            tiny sizes, few iterations, no yardstick unless\n"
                        "                     --yardstick is given (a few seconds)\n"
                        "  --only LIST        cases, comma-separated: pushpull, pushpull4,\n"
                        "                     latency, aggregation, bsp, tap, group, localagg\n"
                        "                     (default all)\n"
                        "  --sizes LIST       pushpull sizes, e.g. 4K,64M (default\n"
                        "                     4K,1M,16M,64M; --quick: 4K,1M)\n"
                        "  --no-yardstick     do not run the yardstick; no ratios\n"
                        "  --yardstick DIR    where zmq_limits and memband are built\n"
                        "                     (default /tmp/yardstick; build with\n"
                        "                     make -C ../shared/bench BUILD=/tmp/yardstick)\n"
                        "  --broker-bin PATH  the psbroker to start (default: next to psbench)\n"
                        "  -h, --help         show this help\n"
                        "\n"
                        "Figures: pushpull_<size> (ms per push+pull step, 1 worker, ASP),\n"
                        "pushpull4_<size> (aggregate GB/s, 4 workers), latency_push_pull (us,\n"
                        "1-float push then pull), aggregation (GB/s of gradients, in-process\n"
                        "ps_store), bsp_clocks_<n>w (clocks/s, n workers, BSP), tap_<mode>_small\n"
                        "(msgs/s of 1-float push+pull) and tap_<mode>_16M (ms per step) with\n"
                        "the broker's tap off, idle (no subscriber) and watched (one reader),\n"
                        "group_<n>b_64M (ms per push+pull step of one worker, its 64 MB tensor\n"
                        "sliced over a group of n = 1, 2, 4 brokers; .speedup against 1;\n"
                        "--quick: 1M), localagg_<mode>_<size> (BSP clocks/s of 4 workers on\n"
                        "one key of 4K and 4M bytes, --quick 4K and 1M: off, a connection per\n"
                        "worker; on, one connection with local_workers 4 that sums the 4\n"
                        "gradients and pushes once; 2x2, two connections of 2; .vs_off; .sum,\n"
                        "ms per clock spent summing the local gradients).\n");
}

static int
s_parse_only (const char *list, unsigned *cases)
{
    *cases = 0;
    char copy[256];
    snprintf (copy, sizeof copy, "%s", list);
    char *saved;
    for (char *name = strtok_r (copy, ",", &saved); name; name = strtok_r (NULL, ",", &saved)) {
        size_t i = 0;
        while (i < sizeof s_cases / sizeof s_cases[0] && strcmp (s_cases[i].name, name))
            i++;
        if (i == sizeof s_cases / sizeof s_cases[0]) {
            fprintf (stderr,
                     "psbench: --only: unknown case '%s' (pushpull, pushpull4, latency, "
                     "aggregation, bsp, tap, group, localagg)\n",
                     name);
            return -1;
        }
        *cases |= s_cases[i].bit;
    }
    return *cases ? 0 : -1;
}

//  "4K,64M": sizes in bytes, multiples of 4 from 4 to MAX_SIZE_BYTES
static int
s_parse_sizes (const char *list, size_t *sizes, size_t *nsizes)
{
    *nsizes = 0;
    char copy[256];
    snprintf (copy, sizeof copy, "%s", list);
    char *saved;
    for (char *item = strtok_r (copy, ",", &saved); item; item = strtok_r (NULL, ",", &saved)) {
        char *end;
        errno = 0;
        unsigned long long value = strtoull (item, &end, 10);
        unsigned long long scale = *end == 'K' || *end == 'k'   ? 1ULL << 10
                                   : *end == 'M' || *end == 'm' ? 1ULL << 20
                                                                : 1;
        if (scale > 1)
            end++;
        if (errno || end == item || *end || *nsizes == MAX_SIZES || value == 0 ||
            value > MAX_SIZE_BYTES / scale || (value * scale) % sizeof (float)) {
            fprintf (stderr,
                     "psbench: --sizes: '%s' is not a size (at most %d of them, multiples of 4 "
                     "bytes up to 256M, e.g. 4K,64M)\n",
                     item, MAX_SIZES);
            return -1;
        }
        sizes[(*nsizes)++] = (size_t)(value * scale);
    }
    return *nsizes ? 0 : -1;
}

//  psbroker next to our own executable
static void
s_default_broker (char *path, size_t size)
{
    char self[PATH_MAX];
    ssize_t length = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0) {
        snprintf (path, size, "./psbroker");
        return;
    }
    self[length] = 0;
    char *slash = strrchr (self, '/');
    if (slash)
        *slash = 0;
    static const char name[] = "/psbroker";
    size_t dir = strlen (self);
    if (dir + sizeof name > size) {
        snprintf (path, size, "./psbroker");
        return;
    }
    memcpy (path, self, dir);
    memcpy (path + dir, name, sizeof name);
}

static void
s_plan (bool quick, plan_t *plan)
{
    if (quick)
        *plan = (plan_t){.sizes = {4u << 10, 1u << 20},
                         .nsizes = 2,
                         .rep_seconds = 0.05,
                         .reps = 3,
                         .lat_warmup = 50,
                         .lat_pairs = 300,
                         .agg_bytes = 1u << 20,
                         .agg_reps = 3,
                         .bsp_seconds = 0.05,
                         .bsp_calibrate = 5,
                         .group_bytes = GROUP_BYTES_QUICK,
                         .localagg_large = LOCALAGG_LARGE_QUICK,
                         .rounds = 1};
    else
        *plan = (plan_t){.sizes = {4u << 10, 1u << 20, 16u << 20, 64u << 20},
                         .nsizes = 4,
                         .rep_seconds = 0.4,
                         .reps = 3,
                         .lat_warmup = 500,
                         .lat_pairs = 5000,
                         .agg_bytes = 16u << 20,
                         .agg_reps = 15,
                         .bsp_seconds = 1.0,
                         .bsp_calibrate = 20,
                         .group_bytes = GROUP_BYTES,
                         .localagg_large = LOCALAGG_LARGE,
                         .rounds = 3};
}

//  The sizes zmq_limits measures, as its -s list: the pushpull sizes and
//  the group case's, and 1M when 64M is held against the model of 1 MB
//  chunks
static void
s_yard_sizes (const options_t *options, const plan_t *plan, char *sizes, size_t size)
{
    size_t list[MAX_SIZES + 2], n = 0;
    if (options->cases & (CASE_PUSHPULL | CASE_PUSHPULL4))
        for (size_t i = 0; i < plan->nsizes; i++)
            list[n++] = plan->sizes[i];
    if (options->cases & CASE_GROUP)
        list[n++] = plan->group_bytes;
    bool model = false;
    for (size_t i = 0; i < n; i++)
        model |= list[i] == (64u << 20);
    if (model)
        list[n++] = 1u << 20;
    sizes[0] = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen |= list[j] == list[i];
        if (seen)
            continue;
        char size_name[32];
        size_t used = strlen (sizes);
        snprintf (sizes + used, size - used, "%s%s", used ? "," : "",
                  s_size_name (list[i], size_name, sizeof size_name));
    }
}

int
main (int argc, char *argv[])
{
    //  As psworker does: the library is measured as our programs run it
    ps_malloc_keep_mapped ();
    enum { OPT_QUICK = 256, OPT_ONLY, OPT_SIZES, OPT_NO_YARDSTICK, OPT_YARDSTICK, OPT_BROKER_BIN };
    static const struct option long_options[] = {
        {"quick", no_argument, 0, OPT_QUICK},
        {"only", required_argument, 0, OPT_ONLY},
        {"sizes", required_argument, 0, OPT_SIZES},
        {"no-yardstick", no_argument, 0, OPT_NO_YARDSTICK},
        {"yardstick", required_argument, 0, OPT_YARDSTICK},
        {"broker-bin", required_argument, 0, OPT_BROKER_BIN},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    options_t options = {.yardstick = true, .yardstick_dir = "/tmp/yardstick", .cases = CASE_ALL};
    bool no_yardstick = false;
    s_default_broker (options.broker_bin, sizeof options.broker_bin);
    int opt;
    while ((opt = getopt_long (argc, argv, "h", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_QUICK: options.quick = true; break;
        case OPT_ONLY:
            if (s_parse_only (optarg, &options.cases)) {
                fprintf (stderr, USAGE);
                return 2;
            }
            break;
        case OPT_SIZES:
            if (s_parse_sizes (optarg, options.sizes, &options.nsizes)) {
                fprintf (stderr, USAGE);
                return 2;
            }
            break;
        case OPT_NO_YARDSTICK: no_yardstick = true; break;
        case OPT_YARDSTICK:
            options.yardstick_dir = optarg;
            options.yardstick_given = true;
            break;
        case OPT_BROKER_BIN:
            snprintf (options.broker_bin, sizeof options.broker_bin, "%s", optarg);
            break;
        case 'h': s_usage (stdout); return 0;
        default: fprintf (stderr, USAGE); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "psbench: unexpected argument '%s'\n" USAGE, argv[optind]);
        return 2;
    }
    options.yardstick = !no_yardstick && (!options.quick || options.yardstick_given);

    setvbuf (stdout, NULL, _IOLBF, 0);
    signal (SIGPIPE, SIG_IGN);
    struct sigaction action = {.sa_handler = s_on_signal};
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);

    plan_t plan;
    s_plan (options.quick, &plan);
    if (options.nsizes) {
        memcpy (plan.sizes, options.sizes, sizeof plan.sizes);
        plan.nsizes = options.nsizes;
    }
    double load[3] = {0};
    getloadavg (load, 3);
    printf ("# psbench psmq %s; loopback; broker %s\n", options.quick ? "quick" : "full",
            options.broker_bin);
    printf ("# load average %.2f %.2f %.2f; %ld cpus\n", load[0], load[1], load[2],
            sysconf (_SC_NPROCESSORS_ONLN));
    printf ("# ratio = psmq / yardstick in the figure's unit (ms, us: lower is better;"
            " GB/s, clocks/s: higher is better)\n");

    //  The yardstick first, in this run, for the cases that need it
    yardstick_t yard = {0};
    yardstick_t *have_yard = NULL;
    if (options.yardstick) {
        bool sized = options.cases & (CASE_PUSHPULL | CASE_PUSHPULL4 | CASE_GROUP);
        bool latency = options.cases & (CASE_LATENCY | CASE_BSP);
        bool ran = false;
        if (sized || latency) {
            char sizes[96], modes[32];
            s_yard_sizes (&options, &plan, sizes, sizeof sizes);
            snprintf (modes, sizeof modes, "%s%s%s", latency ? "lat" : "",
                      latency && sized ? "," : "", sized ? "rt,model" : "");
            char *full[] = {"-t", "tcp", "-m", modes, "-s", sized ? sizes : "4K", "-z", "zc", NULL};
            char *quick[] = {"-t", "tcp",  "-m", modes, "-s", sized ? sizes : "4K",
                             "-z", "zc",   "-r", "1",   "-T", "0.05",
                             "-n", "2000", NULL};
            ran |= s_yard_run (&yard, &options, "zmq_limits", options.quick ? quick : full,
                               ZMQ_LIMITS_MS);
        }
        if (options.cases & CASE_AGGREGATION) {
            char *quick[] = {"-r", "5", NULL};
            ran |=
                s_yard_run (&yard, &options, "memband", options.quick ? quick : NULL, MEMBAND_MS);
        }
        have_yard = ran || yard.nrows ? &yard : NULL;
    }

    int failures = 0;
    if (options.cases & CASE_PUSHPULL)
        for (size_t i = 0; i < plan.nsizes; i++)
            failures += s_case_pushpull (&options, &plan, have_yard, 1, plan.sizes[i]) != 0;
    if (options.cases & CASE_PUSHPULL4)
        for (size_t i = 0; i < plan.nsizes; i++)
            failures += s_case_pushpull (&options, &plan, have_yard, 4, plan.sizes[i]) != 0;
    if (options.cases & CASE_LATENCY)
        failures += s_case_latency (&options, &plan, have_yard) != 0;
    if (options.cases & CASE_AGGREGATION)
        failures += s_case_aggregation (&plan, have_yard) != 0;
    if (options.cases & CASE_BSP) {
        static const uint32_t counts[] = {1, 2, 4, 8};
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
            failures += s_case_bsp (&options, &plan, have_yard, counts[i]) != 0;
    }
    if (options.cases & CASE_TAP)
        failures += s_case_tap (&options, &plan) != 0;
    if (options.cases & CASE_GROUP)
        failures += s_case_group (&options, &plan, have_yard) != 0;
    if (options.cases & CASE_LOCALAGG)
        failures += s_case_localagg (&options, &plan) != 0;
    free (yard.rows);
    if (failures) {
        fprintf (stderr, "psbench: %d case%s failed\n", failures, failures > 1 ? "s" : "");
        return 1;
    }
    return 0;
}
