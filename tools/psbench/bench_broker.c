/*  =========================================================================
    bench_broker - starting and stopping psbrokers (see bench_broker.h)

    psbroker prints "psbroker listening on tcp://127.0.0.1:PORT (...)" as
    its first stdout line once bound; we read that line from a pipe and
    leave the pipe open, unread, until the broker stops (--quiet keeps it
    from printing more).
    ========================================================================= */

#include "bench_broker.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

//  How long psbroker may take to print its endpoint, and to stop
#define BROKER_START_MS 10000
#define BROKER_STOP_MS 5000

//  The highest number of a checkpoint file in the broker's folder, and
//  with remove, delete every file of ours there
static unsigned long
s_checkpoints (const bench_broker_t *self, bool remove)
{
    DIR *stream = self->checkpoint_dir[0] ? opendir (self->checkpoint_dir) : NULL;
    if (!stream)
        return 0;
    unsigned long highest = 0, sequence;
    struct dirent *entry;
    while ((entry = readdir (stream))) {
        //  checkpoint-N.psmq and its .tmp, checkpoint.lock
        if (strncmp (entry->d_name, "checkpoint", 10) != 0)
            continue;
        if (sscanf (entry->d_name, "checkpoint-%lu.psmq", &sequence) == 1 && sequence > highest)
            highest = sequence;
        if (remove)
            unlinkat (dirfd (stream), entry->d_name, 0);
    }
    closedir (stream);
    return highest;
}

//  The broker is gone (or never came): close its pipe, forget its pid,
//  remove its checkpoints
static void
s_release (bench_broker_t *self)
{
    if (self->process.out >= 0)
        close (self->process.out);
    self->process.pid = -1;
    self->process.out = -1;
    if (self->checkpoint_dir[0]) {
        s_checkpoints (self, true);
        rmdir (self->checkpoint_dir);
        self->checkpoint_dir[0] = 0;
    }
}

uint64_t
bench_broker_peak_rss (const bench_broker_t *self)
{
    if (self->process.pid <= 0)
        return 0;
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int)self->process.pid);
    FILE *status = fopen (path, "r");
    if (!status)
        return 0;
    unsigned long long kib = 0;
    while (fgets (line, sizeof line, status))
        if (sscanf (line, "VmHWM: %llu kB", &kib) == 1)
            break;
    fclose (status);
    return (uint64_t)kib * 1024;
}

uint64_t
bench_broker_cpu_ns (const bench_broker_t *self)
{
    if (self->process.pid <= 0)
        return 0;
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/task", (int)self->process.pid);
    DIR *tasks = opendir (path);
    if (!tasks)
        return 0;
    uint64_t total = 0;
    struct dirent *task;
    while ((task = readdir (tasks))) {
        if (task->d_name[0] == '.')
            continue;
        char file[64 + sizeof task->d_name + 16];
        snprintf (file, sizeof file, "%s/%s/schedstat", path, task->d_name);
        FILE *stat = fopen (file, "r");
        unsigned long long ns = 0;
        if (stat && fscanf (stat, "%llu", &ns) == 1)
            total += ns;
        if (stat)
            fclose (stat);
    }
    closedir (tasks);
    return total;
}

double
bench_cpu_seconds (const bench_broker_t *brokers, uint32_t count)
{
    struct rusage usage;
    if (getrusage (RUSAGE_SELF, &usage) != 0)
        return 0;
    double seconds = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
                     (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t ns = bench_broker_cpu_ns (&brokers[i]);
        if (ns == 0)
            return 0;
        seconds += (double)ns / 1e9;
    }
    return seconds;
}

unsigned long
bench_broker_checkpoints (const bench_broker_t *self)
{
    return s_checkpoints (self, false);
}

//  A folder of the broker's own for its checkpoints, in options'; its
//  arguments into argv; 0, or -1 (said why)
static int
s_checkpoint_args (bench_broker_t *self, const bench_options_t *options, char **argv, size_t *argc,
                   char *seconds, size_t seconds_size)
{
    mkdir (options->checkpoint_dir, 0700);
    int length = snprintf (self->checkpoint_dir, sizeof self->checkpoint_dir,
                           "%s/psbench-broker-XXXXXX", options->checkpoint_dir);
    if (length < 0 || (size_t)length >= sizeof self->checkpoint_dir ||
        !mkdtemp (self->checkpoint_dir)) {
        fprintf (stderr, "psbench: cannot make a checkpoint folder in %s: %s\n",
                 options->checkpoint_dir, strerror (errno));
        self->checkpoint_dir[0] = 0;
        return -1;
    }
    snprintf (seconds, seconds_size, "%g", options->checkpoint_seconds);
    argv[(*argc)++] = "--checkpoint";
    argv[(*argc)++] = self->checkpoint_dir;
    argv[(*argc)++] = "--checkpoint-seconds";
    argv[(*argc)++] = seconds;
    return 0;
}

int
bench_broker_start (bench_broker_t *self, const bench_options_t *options, uint32_t workers,
                    int32_t staleness, uint32_t shard, uint32_t shards)
{
    memset (self, 0, sizeof *self);
    self->process = (ps_process_t){-1, -1, -1, false};
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
    char *bin = (char *)options->broker_bin;
    char seconds_text[32];
    char *argv[40];
    size_t argc = 0;
    for (size_t i = 0; options->broker_prefix && options->broker_prefix[i] && argc < 8; i++)
        argv[argc++] = options->broker_prefix[i];
    char *bind = (char *)(options->broker_bind ? options->broker_bind : "127.0.0.1");
    char *common[] = {bin,       "--bind",    bind,         "--port",      "0",
                      "--quiet", "--workers", workers_text, "--staleness", staleness_text};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        argv[argc++] = common[i];
    if (options->allow_from) {
        argv[argc++] = "--allow-from";
        argv[argc++] = (char *)options->allow_from;
    }
    if (options->tap_mode == BENCH_TAP_OFF)
        argv[argc++] = "--no-tap";
    if (options->checkpoint_dir &&
        s_checkpoint_args (self, options, argv, &argc, seconds_text, sizeof seconds_text))
        return -1;
    if (options->broker_secret) {
        argv[argc++] = "--curve-secret";
        argv[argc++] = (char *)options->broker_secret;
        argv[argc++] = "--allow-keys";
        argv[argc++] = (char *)options->allow_keys;
    }
    if (shards > 1) {
        argv[argc++] = "--shard";
        argv[argc++] = shard_text;
        argv[argc++] = "--shards";
        argv[argc++] = shards_text;
    }
    argv[argc] = NULL;
    //  A psbench killed (a test's timeout) takes its brokers with it
    ps_process_spec_t spec = {.out = PS_PROCESS_PIPE, .die_with_parent = true};
    ps_problem_t problem = {0};
    if (ps_process_start (&self->process, argv, &spec, &problem)) {
        fprintf (stderr, "psbench: %s\n", problem.message);
        s_release (self);
        return -1;
    }
    static const char marker[] = "psbroker listening on ";
    char line[512] = "";
    ps_process_read_until (self->process.out, "\n", line, sizeof line, BROKER_START_MS);
    const char *at = strstr (line, marker);
    if (at)
        sscanf (at + strlen (marker), "%255s", self->endpoint);
    if (!self->endpoint[0]) {
        int status;
        if (ps_process_wait (self->process.pid, 1000, &status) == 0)
            fprintf (stderr, "psbench: %s exited (status %d) before listening\n",
                     options->broker_bin, WIFEXITED (status) ? WEXITSTATUS (status) : -1);
        else {
            fprintf (stderr, "psbench: %s did not print its endpoint within %d ms; killed\n",
                     options->broker_bin, BROKER_START_MS);
            ps_process_kill (self->process.pid, false);
        }
        s_release (self);
        return -1;
    }
    if (options->tap_mode == BENCH_TAP_WATCHED &&
        !(self->reader =
              bench_tapreader_new (self->endpoint, options->curve_secret, options->broker_key))) {
        ps_process_kill (self->process.pid, false);
        s_release (self);
        return -1;
    }
    return 0;
}

void
bench_broker_stop (bench_broker_t *self)
{
    bench_tapreader_destroy (&self->reader);
    if (self->process.pid > 0) {
        kill (self->process.pid, SIGTERM);
        int status;
        if (ps_process_wait (self->process.pid, BROKER_STOP_MS, &status)) {
            fprintf (stderr, "psbench: psbroker %d ignored SIGTERM for %d ms; killed\n",
                     (int)self->process.pid, BROKER_STOP_MS);
            ps_process_kill (self->process.pid, false);
        }
        else if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
            fprintf (stderr, "psbench: psbroker ended badly (status %d)\n", status);
    }
    s_release (self);
}

void
bench_group_stop (bench_group_t *self)
{
    for (uint32_t i = 0; i < self->size; i++)
        bench_broker_stop (&self->brokers[i]);
    self->size = 0;
}

int
bench_group_start (bench_group_t *self, const bench_options_t *options, uint32_t shards,
                   uint32_t workers, int32_t staleness)
{
    memset (self, 0, sizeof *self);
    assert (shards >= 1 && shards <= BENCH_MAX_BROKERS);
    size_t used = 0;
    for (uint32_t i = 0; i < shards; i++) {
        bench_broker_t *broker = &self->brokers[i];
        if (bench_broker_start (broker, options, workers, staleness, i, shards)) {
            bench_group_stop (self);
            return -1;
        }
        self->size = i + 1;
        //  Room for all: BENCH_MAX_BROKERS endpoints of at most 255
        //  characters and a comma each
        int wrote = snprintf (self->endpoints + used, sizeof self->endpoints - used, "%s%s",
                              i ? "," : "", broker->endpoint);
        used += (size_t)wrote;
    }
    return 0;
}
