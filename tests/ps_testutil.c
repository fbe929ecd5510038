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

ps_worker_t *
ps_test_worker (const char *endpoint, uint32_t rank, uint32_t world, int clock_timeout_ms)
{
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = endpoint;
    options.rank = rank;
    options.world_size = world;
    options.timeout_ms = 10000;
    options.clock_timeout_ms = clock_timeout_ms;
    return ps_worker_connect (&options, NULL);
}

//  dir/name into path, dir being the value of the environment variable,
//  or fallback when it is not set
static const char *
s_path (const char *variable, const char *fallback, const char *name, char *path, size_t path_size)
{
    const char *dir = getenv (variable);
    snprintf (path, path_size, "%s/%s", dir ? dir : fallback, name);
    return path;
}

const char *
ps_test_binary (const char *name, char *path, size_t path_size)
{
    return s_path ("PSMQ_BUILD_DIR", ".", name, path, path_size);
}

int
ps_test_wait_pid (pid_t pid, int timeout_ms)
{
    return ps_process_finish (pid, false, timeout_ms);
}

ps_process_t
ps_test_start (char *const argv[], const ps_process_spec_t *spec)
{
    ps_process_t child;
    ps_problem_t problem = {0};
    cr_assert_eq (ps_process_start (&child, argv, spec, &problem), 0, "%s", problem.message);
    return child;
}

ps_test_child_t
ps_test_spawn (char *const argv[])
{
    ps_process_spec_t spec = {
        .out = PS_PROCESS_PIPE, .err = PS_PROCESS_PIPE, .die_with_parent = true};
    return ps_test_start (argv, &spec);
}

pid_t
ps_test_spawn_to_file (char *const argv[], const char *out_path)
{
    ps_process_spec_t spec = {.out = PS_PROCESS_FILE,
                              .out_path = out_path,
                              .err = PS_PROCESS_TO_OUT,
                              .die_with_parent = true};
    return ps_test_start (argv, &spec).pid;
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
    return ps_process_read_until (fd, needle, text, size, timeout_ms);
}

//  Walk json in document order: *found becomes the value of the first key
//  called name, or of each in turn when last; true once the first is found
static bool
s_json_find (json_t *json, const char *name, bool last, json_t **found)
{
    const char *key;
    size_t index;
    json_t *value;
    if (json_is_object (json))
        json_object_foreach (json, key, value)
        {
            if (strcmp (key, name) == 0) {
                *found = value;
                if (!last)
                    return true;
            }
            if (s_json_find (value, name, last, found))
                return true;
        }
    else if (json_is_array (json))
        json_array_foreach (json, index, value)
        {
            if (s_json_find (value, name, last, found))
                return true;
        }
    return false;
}

json_t *
ps_test_json_find (const char *text, const char *name, bool last)
{
    //  One document (INFO) or many, one a line among lines of prose
    //  (psworker --json with its stderr): each value that starts a line
    //  is parsed, what is not JSON is passed over
    json_t *found = NULL;
    json_t *kept = NULL; //  the document found is in, while it is needed
    const char *line = text;
    bool done = false;
    while (*line && !done) {
        size_t consumed = strcspn (line, "\n");
        if (*line == '{' || *line == '[') {
            json_error_t error;
            json_t *json = json_loads (line, JSON_DISABLE_EOF_CHECK, &error);
            json_t *match = NULL;
            if (json) {
                consumed = (size_t)error.position;
                done = s_json_find (json, name, last, &match);
            }
            if (match) {
                json_decref (kept);
                kept = json;
                found = match;
            }
            else
                json_decref (json);
        }
        line += consumed;
        line += strspn (line, " \t\r\n");
    }
    //  The value alone outlives the document it was found in
    json_incref (found);
    json_decref (kept);
    return found;
}

double
ps_test_json_number (const char *text, const char *name, bool last)
{
    json_t *found = ps_test_json_find (text, name, last);
    cr_assert (found, "no %s in: %s", name, text);
    cr_assert (json_is_number (found), "%s is not a number in: %s", name, text);
    double value = json_number_value (found);
    json_decref (found);
    return value;
}

const char *
ps_test_script (const char *name, char *path, size_t path_size)
{
    char script[256];
    snprintf (script, sizeof script, "tools/%s", name);
    return s_path ("PSMQ_SOURCE_DIR", "..", script, path, path_size);
}

int
ps_test_run_group (char *const argv[], const char *out_path, const char *err_path, int timeout_ms)
{
    ps_process_spec_t spec = {.out = PS_PROCESS_FILE,
                              .out_path = out_path,
                              .err = err_path ? PS_PROCESS_FILE : PS_PROCESS_TO_OUT,
                              .err_path = err_path,
                              .group = true};
    pid_t pid = ps_test_start (argv, &spec).pid;
    int status = ps_process_finish (pid, true, timeout_ms);
    //  The leader is gone either way; what it started in its group goes too
    kill (-pid, SIGKILL);
    return status;
}
