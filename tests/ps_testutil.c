/*  =========================================================================
    ps_testutil - helpers shared by the tests
    ========================================================================= */

#include "ps_testutil.h"

#include <czmq.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

static ps_broker_t *
s_broker (uint32_t workers, int32_t staleness, uint32_t timeout_ms, uint32_t shard, uint32_t shards,
          char *endpoint, size_t endpoint_size)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.shard = shard;
    config.shards = shards;
    config.endpoint = "tcp://127.0.0.1:*";
    config.workers = workers;
    config.staleness = staleness;
    if (timeout_ms) {
        config.timeout_ms = timeout_ms;
        config.heartbeat_ms = timeout_ms / 4 > 10 ? timeout_ms / 4 : 10;
    }
    char why[300];
    ps_broker_t *broker = ps_broker_new (&config, why, sizeof why);
    if (!broker) {
        fprintf (stderr, "test broker: %s\n", why);
        return NULL;
    }
    snprintf (endpoint, endpoint_size, "tcp://127.0.0.1:%d", ps_broker_port (broker));
    return broker;
}

ps_broker_t *
ps_test_broker (uint32_t workers, int32_t staleness, uint32_t timeout_ms, char *endpoint,
                size_t endpoint_size)
{
    return s_broker (workers, staleness, timeout_ms, 0, 0, endpoint, endpoint_size);
}

int
ps_test_group (uint32_t shards, uint32_t workers, int32_t staleness, ps_broker_t **brokers,
               char *endpoints, size_t endpoints_size)
{
    size_t used = 0;
    endpoints[0] = '\0';
    for (uint32_t shard = 0; shard < shards; shard++) {
        char endpoint[64];
        brokers[shard] = s_broker (workers, staleness, 0, shard, shards, endpoint, sizeof endpoint);
        if (!brokers[shard]) {
            while (shard--)
                ps_broker_destroy (&brokers[shard]);
            return -1;
        }
        used += (size_t)snprintf (endpoints + used, endpoints_size - used, "%s%s", shard ? "," : "",
                                  endpoint);
    }
    return used < endpoints_size ? 0 : -1;
}

ps_broker_t *
ps_test_broker_rebind (const ps_broker_config_t *config)
{
    char why[300] = "";
    ps_broker_t *broker = NULL;
    int64_t deadline = zclock_mono () + 5000;
    while (!(broker = ps_broker_new (config, why, sizeof why)) && zclock_mono () < deadline)
        zclock_sleep (20);
    if (!broker)
        fprintf (stderr, "test broker on %s: %s\n", config->endpoint, why);
    return broker;
}

//  The worker library's log callback: why a worker could not join, on stderr
static void
s_worker_log (void *arg, int level, const char *message)
{
    fprintf (stderr, "ps_test_worker: %s\n", message);
}

ps_worker_t *
ps_test_worker (const char *endpoint, uint32_t rank, uint32_t world, int clock_timeout_ms)
{
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.log = s_worker_log;
    options.broker = endpoint;
    options.rank = rank;
    options.world_size = world;
    options.timeout_ms = 10000;
    options.clock_timeout_ms = clock_timeout_ms;
    return ps_worker_connect (&options, NULL);
}

const char *
ps_test_binary (const char *name, char *path, size_t path_size)
{
    const char *dir = getenv ("PSMQ_BUILD_DIR");
    snprintf (path, path_size, "%s/%s", dir ? dir : ".", name);
    return path;
}

int
ps_test_wait_pid (pid_t pid, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        int status;
        pid_t done = waitpid (pid, &status, WNOHANG);
        if (done == pid)
            return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
        zclock_sleep (10);
    }
    kill (pid, SIGKILL);
    waitpid (pid, NULL, 0);
    return -1;
}

ps_test_child_t
ps_test_spawn (char *const argv[])
{
    int out[2], err[2];
    cr_assert_eq (pipe (out), 0);
    cr_assert_eq (pipe (err), 0);
    pid_t pid = fork ();
    cr_assert_neq (pid, -1);
    if (pid == 0) {
        dup2 (out[1], 1);
        dup2 (err[1], 2);
        close (out[0]);
        close (err[0]);
        execv (argv[0], argv);
        _exit (127);
    }
    close (out[1]);
    close (err[1]);
    return (ps_test_child_t){pid, out[0], err[0]};
}

pid_t
ps_test_spawn_to_file (char *const argv[], const char *out_path)
{
    pid_t pid = fork ();
    cr_assert_neq (pid, -1);
    if (pid == 0) {
        int fd = open (out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2 (fd, 1);
        dup2 (fd, 2);
        execv (argv[0], argv);
        _exit (127);
    }
    return pid;
}

char *
ps_test_slurp (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return strdup ("");
    char *text = calloc (1, 1 << 20);
    size_t got = fread (text, 1, (1 << 20) - 1, file);
    text[got] = 0;
    fclose (file);
    return text;
}

bool
ps_test_read_until (int fd, const char *needle, char *text, size_t size, int timeout_ms)
{
    size_t used = strlen (text);
    int64_t deadline = zclock_mono () + timeout_ms;
    fcntl (fd, F_SETFL, O_NONBLOCK);
    while (!strstr (text, needle) && zclock_mono () < deadline && used + 1 < size) {
        ssize_t got = read (fd, text + used, size - 1 - used);
        if (got > 0) {
            used += got;
            text[used] = 0;
        }
        else if (got == 0)
            break;
        else
            zclock_sleep (10);
    }
    return strstr (text, needle) != NULL;
}

double
ps_test_json_number (const char *text, const char *name, bool last)
{
    char needle[64];
    snprintf (needle, sizeof needle, "\"%s\":", name);
    const char *at = strstr (text, needle);
    for (const char *p = at; last && p; p = strstr (p + 1, needle))
        at = p;
    cr_assert (at, "no %s in: %s", name, text);
    return strtod (at + strlen (needle), NULL);
}

const char *
ps_test_script (const char *name, char *path, size_t path_size)
{
    const char *dir = getenv ("PSMQ_SOURCE_DIR");
    snprintf (path, path_size, "%s/tools/%s", dir ? dir : "..", name);
    return path;
}

int
ps_test_run_group (char *const argv[], const char *out_path, const char *err_path, int timeout_ms)
{
    pid_t pid = fork ();
    cr_assert_neq (pid, -1);
    if (pid == 0) {
        setpgid (0, 0);
        int out = open (out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = err_path ? open (err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : out;
        dup2 (out, 1);
        dup2 (err, 2);
        execv (argv[0], argv);
        _exit (127);
    }
    //  Both sides set the group, so that it exists whichever runs first
    setpgid (pid, pid);
    int64_t deadline = zclock_mono () + timeout_ms;
    int status = -1;
    while (zclock_mono () < deadline) {
        int raw;
        if (waitpid (pid, &raw, WNOHANG) == pid) {
            status = WIFEXITED (raw) ? WEXITSTATUS (raw) : 128 + WTERMSIG (raw);
            break;
        }
        zclock_sleep (10);
    }
    kill (-pid, SIGKILL);
    if (status == -1)
        waitpid (pid, NULL, 0);
    return status;
}
