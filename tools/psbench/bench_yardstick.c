/*  =========================================================================
    bench_yardstick - running and reading the yardstick (see the .h)

    We run the yardstick's binaries rather than copying their code, so
    that both sides of every ratio are exactly what shared/bench's README
    describes. Each runs in a process group of its own (zmq_limits forks
    its servers), within a bound after which the group is killed.
    ========================================================================= */

#include "bench_yardstick.h"
#include "ps_cli.h"
#include "ps_process.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  Bounds on the yardstick programs (zmq_limits takes ~10 s, memband ~3 s)
#define ZMQ_LIMITS_MS 180000
#define MEMBAND_MS 120000
//  ... and on one turn of a case that takes turns with it (~0.3 s)
#define TURN_MS 30000

struct _bench_yardstick_t {
    bench_yard_row_t *rows; //  both tables
    size_t nrows;           //  rows used
    size_t capacity;        //  rows allocated
};

//  Keep a row; one that finds no memory is left out
static void
s_add (bench_yardstick_t *self, const bench_yard_row_t *row)
{
    if (self->nrows == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 32;
        bench_yard_row_t *grown = realloc (self->rows, capacity * sizeof *grown);
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
s_parse (bench_yardstick_t *self, char *text)
{
    char *saved = NULL;
    for (char *line = strtok_r (text, "\n", &saved); line; line = strtok_r (NULL, "\n", &saved)) {
        printf ("#   %s\n", line);
        if (line[0] == '#')
            continue;
        bench_yard_row_t row;
        memset (&row, 0, sizeof row);
        double x[3];
        int fields = sscanf (line, "%63s %lf %lf %lf", row.name, &x[0], &x[1], &x[2]);
        if (fields == 4) {
            row.size = (uint64_t)x[0];
            row.a = x[1];
            row.b = x[2];
            s_add (self, &row);
        }
        else if (fields == 3) {
            row.a = x[0];
            row.b = x[1];
            s_add (self, &row);
        }
    }
}

//  Run one yardstick program and read its table; false (with the way to
//  build it) when it is missing, or when it failed
static bool
s_run (bench_yardstick_t *self, const bench_options_t *options, const char *program, char **args,
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
    char *output = NULL;
    int status = 0;
    ps_problem_t problem = {0};
    bool ended = ps_process_capture (argv, true, timeout_ms, &output, &status, &problem) == 0;
    bool ok = ended && WIFEXITED (status) && WEXITSTATUS (status) == 0;
    if (!ended)
        fprintf (stderr, "psbench: %s\n", problem.message);
    else if (!ok)
        fprintf (stderr, "psbench: %s failed (%s %d)\n", path,
                 WIFEXITED (status) ? "exit status" : "signal",
                 WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
    if (ended)
        s_parse (self, output);
    free (output);
    return ok;
}

//  The sizes zmq_limits measures, as its -s list: the pushpull sizes and
//  the group case's, and 1M when 64M is held against the model of 1 MB
//  chunks
static void
s_sizes (const bench_options_t *options, const bench_plan_t *plan, char *sizes, size_t size)
{
    size_t list[BENCH_MAX_SIZES + 2], n = 0;
    if (options->cases & (BENCH_CASE_PUSHPULL | BENCH_CASE_PUSHPULL4))
        for (size_t i = 0; i < plan->nsizes; i++)
            list[n++] = plan->sizes[i];
    if (options->cases & BENCH_CASE_GROUP)
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
                  ps_cli_size_name (list[i], size_name, sizeof size_name));
    }
}

//  The round trips per second this machine's raw libzmq can carry for
//  BENCH_RAW_PAIRS clients at once: that many zmq_limits latency runs
//  (each a client and its forked server) side by side, as the BSP case's
//  workers run side by side. Kept as the row tcp_lat_<pairs>pairs: a,
//  the sum of each pair's round trips per second (1/median); b, the
//  slowest pair's median in us. A shell starts them (the path goes in as
//  $0, never into the script's text)
static void
s_run_pairs (bench_yardstick_t *self, const bench_options_t *options)
{
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/zmq_limits", options->yardstick_dir);
    if (access (path, X_OK))
        return;
    char script[256];
    snprintf (script, sizeof script,
              "for i in $(seq %d); do \"$0\" -t tcp -m lat -r 1 -n %s & done; wait",
              BENCH_RAW_PAIRS, options->quick ? "2000" : "20000");
    char *argv[] = {"/bin/sh", "-c", script, path, NULL};
    printf ("# yardstick: %d x %s -t tcp -m lat at once\n", BENCH_RAW_PAIRS, path);
    char *output = NULL;
    int status = 0;
    ps_problem_t problem = {0};
    if (ps_process_capture (argv, true, ZMQ_LIMITS_MS, &output, &status, &problem)) {
        fprintf (stderr, "psbench: %s\n", problem.message);
        return;
    }
    bench_yard_row_t row = {.a = 0};
    snprintf (row.name, sizeof row.name, "tcp_lat_%dpairs", BENCH_RAW_PAIRS);
    int pairs = 0;
    char *saved = NULL;
    for (char *line = strtok_r (output, "\n", &saved); line; line = strtok_r (NULL, "\n", &saved)) {
        printf ("#   %s\n", line);
        char name[64];
        double median, p99;
        if (sscanf (line, "%63s %lf %lf", name, &median, &p99) == 3 &&
            strcmp (name, "tcp_lat") == 0 && median > 0) {
            row.a += 1e6 / median;
            row.b = median > row.b ? median : row.b;
            pairs++;
        }
    }
    free (output);
    if (WIFEXITED (status) && WEXITSTATUS (status) == 0 && pairs == BENCH_RAW_PAIRS)
        s_add (self, &row);
    else
        fprintf (stderr, "psbench: %d of %d raw pairs reported\n", pairs, BENCH_RAW_PAIRS);
}

bench_yardstick_t *
bench_yardstick_new (const bench_options_t *options, const bench_plan_t *plan)
{
    if (!options->yardstick)
        return NULL;
    bench_yardstick_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    unsigned cases = options->cases;
    bool sized = cases & (BENCH_CASE_PUSHPULL | BENCH_CASE_PUSHPULL4 | BENCH_CASE_GROUP);
    bool latency = cases & (BENCH_CASE_LATENCY | BENCH_CASE_BSP);
    bool ran = false;
    if (sized || latency) {
        char sizes[96], modes[32];
        s_sizes (options, plan, sizes, sizeof sizes);
        snprintf (modes, sizeof modes, "%s%s%s", latency ? "lat" : "", latency && sized ? "," : "",
                  sized ? "rt,model" : "");
        char *full[] = {"-t", "tcp", "-m", modes, "-s", sized ? sizes : "4K", "-z", "zc", NULL};
        char *quick[] = {"-t", "tcp",  "-m", modes, "-s", sized ? sizes : "4K",
                         "-z", "zc",   "-r", "1",   "-T", "0.05",
                         "-n", "2000", NULL};
        ran |= s_run (self, options, "zmq_limits", options->quick ? quick : full, ZMQ_LIMITS_MS);
    }
    if (cases & BENCH_CASE_BSP)
        s_run_pairs (self, options);
    if (cases & BENCH_CASE_AGGREGATION) {
        char *quick[] = {"-r", "5", NULL};
        ran |= s_run (self, options, "memband", options->quick ? quick : NULL, MEMBAND_MS);
    }
    if (!ran && !self->nrows)
        bench_yardstick_destroy (&self);
    return self;
}

void
bench_yardstick_destroy (bench_yardstick_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->rows);
        free (*self_p);
        *self_p = NULL;
    }
}

const bench_yard_row_t *
bench_yardstick_find (const bench_yardstick_t *self, const char *name, uint64_t size)
{
    for (size_t i = 0; self && i < self->nrows; i++)
        if (strcmp (self->rows[i].name, name) == 0 && self->rows[i].size == size)
            return &self->rows[i];
    return NULL;
}

//  Run zmq_limits with args now and keep the row of name and size
static bool
s_again (const bench_yardstick_t *self, const bench_options_t *options, char **args,
         const char *name, uint64_t size, bench_yard_row_t *row)
{
    if (!self)
        return false;
    bench_yardstick_t fresh = {0};
    bool ran = s_run (&fresh, options, "zmq_limits", args, TURN_MS);
    const bench_yard_row_t *found = bench_yardstick_find (&fresh, name, size);
    bool kept = ran && found && found->a > 0 && found->b > 0;
    if (kept)
        *row = *found;
    free (fresh.rows);
    return kept;
}

bool
bench_yardstick_latency (const bench_yardstick_t *self, const bench_options_t *options,
                         int round_trips, bench_yard_row_t *row)
{
    char count[16];
    snprintf (count, sizeof count, "%d", round_trips);
    char *args[] = {"-t", "tcp", "-m", "lat", "-n", count, NULL};
    return s_again (self, options, args, "tcp_lat", 0, row);
}

//  The row a push+pull of bytes is held against: tcp_model_zc of 1 MB
//  chunks for zmq_limits' model, which is 64 MB (its -B default), or
//  tcp_rt_zc of the same size. True for the model.
static bool
s_pushpull_row (size_t bytes, const char **name, uint64_t *size)
{
    bool model = bytes == (64u << 20);
    *name = model ? "tcp_model_zc" : "tcp_rt_zc";
    *size = model ? (1u << 20) : bytes;
    return model;
}

bool
bench_yardstick_pushpull_again (const bench_yardstick_t *self, const bench_options_t *options,
                                size_t bytes, bench_yard_row_t *row)
{
    const char *name;
    uint64_t size;
    bool model = s_pushpull_row (bytes, &name, &size);
    char size_name[32];
    ps_cli_size_name (size, size_name, sizeof size_name);
    char *args[] = {
        "-t", "tcp", "-m", model ? "model" : "rt",           "-s", size_name, "-z", "zc",
        "-r", "1",   "-T", options->quick ? "0.05" : "0.12", NULL};
    return s_again (self, options, args, name, size, row);
}

const bench_yard_row_t *
bench_yardstick_pushpull (const bench_yardstick_t *self, size_t bytes, char *what, size_t what_size)
{
    const char *name;
    uint64_t size;
    s_pushpull_row (bytes, &name, &size);
    snprintf (what, what_size, "%s %llu", name, (unsigned long long)size);
    return bench_yardstick_find (self, name, size);
}
