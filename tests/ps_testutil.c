/*  =========================================================================
    ps_testutil - helpers shared by the tests
    ========================================================================= */

#include "ps_testutil.h"
#include "ps_checkpoint_dir.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

//  The private directory: made before main () in every process of a test
//  executable (Criterion runs each test in a process of its own), removed
//  at exit by the process that made it. Under /tmp whatever TMPDIR says: an
//  ipc:// path must fit in 107 bytes.
static char s_dir[32];
static pid_t s_dir_owner;

static int
s_remove (const char *path, const struct stat *info, int flag, struct FTW *walk)
{
    (void)info;
    (void)flag;
    (void)walk;
    remove (path);
    return 0;
}

static void
s_dir_remove (void)
{
    if (getpid () == s_dir_owner)
        nftw (s_dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}

__attribute__ ((constructor)) static void
s_dir_make (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/psmq-test-XXXXXX");
    if (!mkdtemp (s_dir)) {
        s_dir[0] = 0;
        return;
    }
    s_dir_owner = getpid ();
    setenv ("XDG_RUNTIME_DIR", s_dir, 1);
    setenv ("TMPDIR", s_dir, 1);
    atexit (s_dir_remove);
}

const char *
ps_test_dir (void)
{
    return s_dir[0] ? s_dir : "/tmp";
}

const char *
ps_test_path (const char *name, char *path, size_t path_size)
{
    snprintf (path, path_size, "%s/%s", ps_test_dir (), name);
    return path;
}

int
ps_test_closed_endpoint (char *endpoint, size_t endpoint_size)
{
    //  A socket that does not listen: connects are refused. The kernel
    //  never hands its port to another socket bound to port 0
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    cr_assert_neq (fd, -1);
    struct sockaddr_in address = {.sin_family = AF_INET};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    cr_assert_eq (bind (fd, (struct sockaddr *)&address, sizeof address), 0);
    socklen_t size = sizeof address;
    cr_assert_eq (getsockname (fd, (struct sockaddr *)&address, &size), 0);
    snprintf (endpoint, endpoint_size, "tcp://127.0.0.1:%d", ntohs (address.sin_port));
    return fd;
}

int
ps_test_hold_port (int port)
{
    //  SO_REUSEADDR, as libzmq sets it, so that the connections the broker
    //  left in TIME_WAIT do not stand in the way; only its listener does,
    //  until libzmq's background or the dying process closes it
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    cr_assert_neq (fd, -1);
    int on = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    int rc;
    while ((rc = bind (fd, (struct sockaddr *)&address, sizeof address)) == -1 &&
           errno == EADDRINUSE && zclock_mono () < deadline)
        usleep (500);
    cr_assert_eq (rc, 0, "cannot hold port %d: %s", port, strerror (errno));
    return fd;
}

ps_broker_t *
ps_test_broker_with (const ps_broker_config_t *config, char *endpoint, size_t endpoint_size)
{
    ps_broker_config_t settings = *config;
    //  Port 0, not czmq's "*": czmq hands out ports in order from 49152,
    //  so the port a broker just left goes to the next broker started
    //  anywhere on the machine, where workers, pstap or the tap file of
    //  the old one may still find it. The kernel's choice is random, and
    //  avoids ports whose connections are in TIME_WAIT
    settings.endpoint = "tcp://127.0.0.1:0";
    ps_problem_t problem;
    ps_broker_t *broker = ps_broker_new (&settings, &problem);
    cr_assert (broker, "test broker: %s", problem.message);
    snprintf (endpoint, endpoint_size, "tcp://127.0.0.1:%d", ps_broker_port (broker));
    return broker;
}

static ps_broker_t *
s_broker (uint32_t workers, int32_t staleness, uint32_t timeout_ms, uint32_t shard, uint32_t shards,
          char *endpoint, size_t endpoint_size)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.shard = shard;
    config.shards = shards;
    config.workers = workers;
    config.staleness = staleness;
    if (timeout_ms) {
        config.timeout_ms = timeout_ms;
        config.heartbeat_ms = timeout_ms / 4 > 10 ? timeout_ms / 4 : 10;
    }
    return ps_test_broker_with (&config, endpoint, endpoint_size);
}

ps_broker_t *
ps_test_broker (uint32_t workers, int32_t staleness, uint32_t timeout_ms, char *endpoint,
                size_t endpoint_size)
{
    return s_broker (workers, staleness, timeout_ms, 0, 0, endpoint, endpoint_size);
}

ps_broker_t *
ps_test_broker_restart (ps_broker_t **broker, const ps_broker_config_t *config)
{
    int port = ps_broker_port (*broker);
    ps_broker_destroy (broker);
    //  Held from the moment the old listener is gone; the new broker binds
    //  it beside the holder (both set SO_REUSEADDR, neither listens yet)
    int held = ps_test_hold_port (port);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    ps_broker_config_t settings = *config;
    settings.endpoint = endpoint;
    ps_problem_t problem;
    ps_broker_t *restarted = ps_broker_new (&settings, &problem);
    close (held);
    cr_assert (restarted, "broker restarted on port %d: %s", port, problem.message);
    return restarted;
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
        used += (size_t)snprintf (endpoints + used, endpoints_size - used, "%s%s", shard ? "," : "",
                                  endpoint);
    }
    return used < endpoints_size ? 0 : -1;
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
    return ps_test_connect (endpoint, rank, world, clock_timeout_ms, NULL);
}

void
ps_test_options (ps_worker_options_t *options, const char *endpoint, uint32_t rank, uint32_t world)
{
    ps_worker_options_init (options);
    options->log = s_worker_log;
    options->broker = endpoint;
    options->rank = rank;
    options->world_size = world;
    options->timeout_ms = 10000;
    options->clock_timeout_ms = PS_TEST_WAIT_MS;
}

ps_worker_t *
ps_test_connect (const char *endpoint, uint32_t rank, uint32_t world, int clock_timeout_ms,
                 int *status)
{
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, rank, world);
    options.clock_timeout_ms = clock_timeout_ms;
    return ps_worker_connect (&options, status);
}

ps_test_job_t
ps_test_job (uint32_t world, int32_t staleness, uint32_t timeout_ms)
{
    ps_test_job_t job = {0};
    job.broker = ps_test_broker (world, staleness, timeout_ms, job.endpoint, sizeof job.endpoint);
    cr_assert (job.broker, "the job's broker did not start");
    int status = PS_OK;
    job.worker = ps_test_connect (job.endpoint, 0, world, PS_TEST_WAIT_MS, &status);
    cr_assert (job.worker, "rank 0 of %u did not join: %s", world, ps_strerror (status));
    return job;
}

void
ps_test_job_stop (ps_test_job_t *self)
{
    ps_worker_close (&self->worker);
    ps_broker_destroy (&self->broker);
}

void
ps_test_raw_open (ps_test_raw_t *self, const char *endpoint)
{
    self->context = zmq_ctx_new ();
    self->dealer = zmq_socket (self->context, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt (self->dealer, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq (zmq_connect (self->dealer, endpoint), 0, "%s", endpoint);
    self->codec = ps_codec_new ();
}

void
ps_test_raw_close (ps_test_raw_t *self)
{
    zmq_close (self->dealer);
    zmq_ctx_term (self->context);
    ps_codec_destroy (&self->codec);
}

void
ps_test_envelope (ps_envelope_t *envelope, int type, uint32_t worker, uint64_t seq)
{
    psmq__envelope__init (envelope);
    envelope->version = PS_PROTOCOL_VERSION;
    envelope->type = type;
    envelope->worker = worker;
    envelope->seq = seq;
}

void
ps_test_raw_send (ps_test_raw_t *self, const ps_envelope_t *envelope, int flags)
{
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode (envelope, &msg), 0);
    cr_assert_neq (zmq_msg_send (&msg, self->dealer, flags), -1, "%s", zmq_strerror (errno));
}

ps_envelope_t *
ps_test_raw_receive_data (ps_test_raw_t *self, void *data, size_t size)
{
    zmq_pollitem_t item = {self->dealer, 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, PS_TEST_WAIT_MS) <= 0)
        return NULL;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    zmq_msg_recv (&msg, self->dealer, 0);
    ps_problem_t problem;
    ps_envelope_t *envelope =
        ps_codec_decode (self->codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
    bool first = true;
    while (zmq_msg_more (&msg)) {
        zmq_msg_recv (&msg, self->dealer, 0);
        if (first && data)
            memcpy (data, zmq_msg_data (&msg),
                    size < zmq_msg_size (&msg) ? size : zmq_msg_size (&msg));
        first = false;
    }
    zmq_msg_close (&msg);
    return envelope;
}

ps_envelope_t *
ps_test_raw_receive (ps_test_raw_t *self)
{
    return ps_test_raw_receive_data (self, NULL, 0);
}

void
ps_test_raw_push (ps_test_raw_t *self, uint32_t rank, uint64_t seq, int64_t clock, const char *key,
                  uint64_t offset, const float *values, uint64_t count, bool more)
{
    ps_slice_t slice = PSMQ__SLICE__INIT;
    slice.key = (char *)key;
    slice.offset = offset;
    slice.count = count;
    ps_slice_t *slices[] = {&slice};
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__PUSH, rank, seq);
    envelope.clock = clock;
    envelope.slices = slices;
    envelope.n_slices = 1;
    envelope.grad_count = 1;
    envelope.more = more;
    ps_test_raw_send (self, &envelope, ZMQ_SNDMORE);
    cr_assert_neq (zmq_send (self->dealer, values, count * sizeof (float), 0), -1, "%s",
                   zmq_strerror (errno));
}

ps_envelope_t *
ps_test_raw_request (ps_test_raw_t *self, const ps_envelope_t *envelope)
{
    ps_test_raw_send (self, envelope, 0);
    ps_envelope_t *reply = ps_test_raw_receive (self);
    cr_assert (reply, "no reply to %s seq %" PRIu64 " within %d ms",
               ps_codec_type_name (envelope->type), envelope->seq, PS_TEST_WAIT_MS);
    return reply;
}

Psmq__Hello
ps_test_hello_of_one (void)
{
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 1;
    hello.session = hello.incarnation = 1;
    hello.heartbeat_ms = 1000;
    hello.timeout_ms = 10000;
    return hello;
}

void
ps_test_raw_hello (ps_test_raw_t *self, uint32_t rank, Psmq__Hello *hello)
{
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__HELLO, rank, 1);
    envelope.hello = hello;
    ps_envelope_t *reply = ps_test_raw_request (self, &envelope);
    cr_assert_eq (reply->type, PSMQ__MSG_TYPE__HELLO, "HELLO as rank %u: %s %s", rank,
                  ps_codec_type_name (reply->type), reply->error ? reply->error->message : "");
}

ps_tap_record_t
ps_test_tap_record (uint64_t number, int kind, int type, int64_t worker)
{
    ps_tap_record_t record = PSMQ__TAP_RECORD__INIT;
    record.version = PS_TAP_VERSION;
    record.record = number;
    record.kind = kind;
    record.type = type;
    record.worker = worker;
    return record;
}

long
ps_test_number (const char *text)
{
    cr_assert (text);
    char *end = NULL;
    errno = 0;
    long value = strtol (text, &end, 10);
    cr_assert (end != text && errno == 0, "'%s' is not a number", text);
    while (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r')
        end++;
    cr_assert_eq (*end, '\0', "'%s' is not one whole number", text);
    return value;
}

int
ps_test_endpoint_port (const char *endpoint)
{
    const char *colon = strrchr (endpoint, ':');
    cr_assert (colon, "no port in '%s'", endpoint);
    long port = ps_test_number (colon + 1);
    cr_assert (port > 0 && port < 65536, "port %ld of '%s'", port, endpoint);
    return (int)port;
}

void
ps_test_assert_near (const float *got, const float *want, size_t n, float tolerance,
                     const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert (fabsf (got[i] - want[i]) <= tolerance * fmaxf (1, fabsf (want[i])),
                   "%s[%zu]: got %.9g, want %.9g", what, i, got[i], want[i]);
}

//  dir/name into path, dir being the value of the environment variable,
//  or fallback when it is not set
static const char *
s_path (const char *variable, const char *fallback, const char *name, char *path, size_t path_size)
{
    //  The fallback made absolute, as ctest's directories are: a program
    //  started by a relative path that changes directory loses itself
    char absolute[PATH_MAX];
    const char *dir = getenv (variable);
    if (!dir)
        dir = realpath (fallback, absolute) ? absolute : fallback;
    int length = snprintf (path, path_size, "%s/%s", dir, name);
    cr_assert_lt ((size_t)length, path_size, "%s/%s is too long", dir, name);
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

//  Append more (NULL-terminated, or NULL) to argv, NULL-terminated in an
//  array of size pointers; asserts that they fit
static void
s_append (char *argv[], size_t size, char *const more[])
{
    size_t argc = 0;
    while (argv[argc])
        argc++;
    for (size_t i = 0; more && more[i]; i++) {
        cr_assert_lt (argc + 1, size, "too many arguments for %s", argv[0]);
        argv[argc++] = more[i];
    }
    argv[argc] = NULL;
}

ps_test_child_t
ps_test_psbroker (char *const args[], char *endpoint, size_t endpoint_size, char *out,
                  size_t out_size)
{
    char path[512];
    char *argv[32] = {(char *)ps_test_binary ("psbroker", path, sizeof path), "--port", "0",
                      "--bind", "127.0.0.1"};
    s_append (argv, 32, args);
    ps_test_child_t child = ps_test_spawn (argv);
    static const char marker[] = "psbroker listening on ";
    out[0] = 0;
    ps_test_read_until (child.out, "\n", out, out_size, PS_TEST_WAIT_MS);
    const char *at = strstr (out, marker);
    cr_assert (at, "psbroker printed no endpoint: %s", out);
    char format[16];
    snprintf (format, sizeof format, "%%%zus", endpoint_size - 1);
    cr_assert_eq (sscanf (at + strlen (marker), format, endpoint), 1, "%s", out);
    return child;
}

pid_t
ps_test_psworker (char *const args[], const char *out_path)
{
    char path[512];
    char *argv[32] = {(char *)ps_test_binary ("psworker", path, sizeof path)};
    s_append (argv, 32, args);
    return ps_test_spawn_to_file (argv, out_path);
}

pid_t
ps_test_psworker_train (const char *brokers, int rank, int threads, int workers, int epochs,
                        char *const more[], const char *out_path)
{
    char rank_text[16], threads_text[16], workers_text[16], epochs_text[16];
    snprintf (rank_text, sizeof rank_text, "%d", rank);
    snprintf (threads_text, sizeof threads_text, "%d", threads);
    snprintf (workers_text, sizeof workers_text, "%d", workers);
    snprintf (epochs_text, sizeof epochs_text, "%d", epochs);
    char *args[32] = {"--broker",   (char *)brokers, "--rank",     rank_text, "--threads",
                      threads_text, "--workers",     workers_text, "--data",  "synthetic",
                      "--epochs",   epochs_text,     "--hidden",   "32",      "--json"};
    s_append (args, 32, more);
    return ps_test_psworker (args, out_path);
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

int
ps_test_child_output (ps_test_child_t *child, int timeout_ms, char *out, char *err, size_t size)
{
    size_t used[2] = {0, 0};
    char *buffers[2] = {out, err};
    out[0] = err[0] = 0;
    struct pollfd fds[2] = {{child->out, POLLIN, 0}, {child->err, POLLIN, 0}};
    int64_t deadline = zclock_mono () + timeout_ms;
    while ((fds[0].fd >= 0 || fds[1].fd >= 0) && zclock_mono () < deadline) {
        if (poll (fds, 2, 50) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            ssize_t got = read (fds[i].fd, buffers[i] + used[i], size - 1 - used[i]);
            if (got <= 0) {
                close (fds[i].fd);
                fds[i].fd = -1;
            }
            else {
                used[i] += (size_t)got;
                buffers[i][used[i]] = 0;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close (fds[i].fd);
    return ps_test_wait_pid (child->pid, 1000);
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

//  The scalar ps_test_json_find finds, which must be there and be a number
//  (or, when not number, true or false: 1 or 0)
static double
s_json_scalar (const char *text, const char *name, bool last, bool number)
{
    json_t *found = ps_test_json_find (text, name, last);
    cr_assert (found, "no %s in: %s", name, text);
    cr_assert (number ? json_is_number (found) : json_is_boolean (found), "%s is not %s in: %s",
               name, number ? "a number" : "true or false", text);
    double value = number ? json_number_value (found) : json_is_true (found);
    json_decref (found);
    return value;
}

double
ps_test_json_number (const char *text, const char *name, bool last)
{
    return s_json_scalar (text, name, last, true);
}

bool
ps_test_json_bool (const char *text, const char *name, bool last)
{
    return s_json_scalar (text, name, last, false) != 0;
}

double
ps_test_shard_info (ps_worker_t *worker, uint32_t shard, const char *name)
{
    char *json = NULL;
    cr_assert_eq (ps_worker_info_shard (worker, shard, &json), PS_OK, "INFO of shard %u: %s", shard,
                  ps_worker_error (worker));
    double value = ps_test_json_number (json, name, false);
    free (json);
    return value;
}

int
ps_test_wait_parked (ps_worker_t *worker, uint32_t shards, int want)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (zclock_mono () < deadline) {
        uint32_t ready = 0;
        for (uint32_t shard = 0; shard < shards; shard++)
            ready += (int)ps_test_shard_info (worker, shard, "parked_now") == want;
        if (ready == shards)
            return 0;
        zclock_sleep (5);
    }
    return -1;
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

// ------------------------------------------------ Checkpoint files

//  A key of size elements named name, its values and state from seed
static void
s_add_key (ps_checkpoint_t *checkpoint, const char *name, uint64_t size, ps_optim_kind_t kind,
           float seed)
{
    ps_checkpoint_key_t *key = ps_checkpoint_add_key (checkpoint);
    cr_assert_not_null (key);
    snprintf (key->name, sizeof key->name, "%s", name);
    key->size = size;
    ps_optim_config_defaults (&key->optim);
    key->optim.kind = kind;
    key->optim.decay_steps = 1000;
    key->steps = 17;
    key->version = 18;
    key->values = ps_buf_new ((size_t)size);
    cr_assert_not_null (key->values);
    for (uint64_t i = 0; i < size; i++)
        ps_buf_data (key->values)[i] = seed + (float)i * 0.25f;
    for (size_t slot = 0; slot < ps_optim_state_slots (kind); slot++) {
        key->state[slot] = malloc ((size_t)size * sizeof (float));
        cr_assert_not_null (key->state[slot]);
        for (uint64_t i = 0; i < size; i++)
            key->state[slot][i] = seed * (float)(slot + 2) - (float)i;
    }
}

ps_checkpoint_t *
ps_test_checkpoint (uint64_t sequence, uint64_t size)
{
    ps_checkpoint_t *checkpoint = ps_checkpoint_new (3);
    cr_assert_not_null (checkpoint);
    checkpoint->sequence = sequence;
    checkpoint->staleness = 2;
    checkpoint->shard = 1;
    checkpoint->shards = 2;
    checkpoint->ranks[0] = (ps_checkpoint_rank_t){PS_RANK_LIVE, 5};
    checkpoint->ranks[1] = (ps_checkpoint_rank_t){PS_RANK_ABSENT, 0};
    checkpoint->ranks[2] = (ps_checkpoint_rank_t){PS_RANK_GONE, 3};
    s_add_key (checkpoint, "layer1.w", size, PS_OPTIM_SGD, 1.5f);
    s_add_key (checkpoint, "layer1.b", size, PS_OPTIM_ADAM, -2.0f);
    return checkpoint;
}

const char *
ps_test_checkpoint_dir (char *dir, size_t size)
{
    ps_test_path ("checkpoints", dir, size);
    ps_problem_t problem;
    int lock = ps_checkpoint_prepare_dir (dir, &problem);
    cr_assert_geq (lock, 0, "%s", problem.message);
    close (lock);
    return dir;
}

void
ps_test_checkpoint_write (const char *dir, uint64_t sequence, uint64_t size, char *path,
                          size_t path_size)
{
    ps_checkpoint_t *checkpoint = ps_test_checkpoint (sequence, size);
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_write (checkpoint, dir, path, path_size, NULL, &problem), 0, "%s",
                  problem.message);
    ps_checkpoint_destroy (&checkpoint);
}

void
ps_test_flip (const char *path, off_t offset)
{
    int fd = open (path, O_RDWR);
    cr_assert_geq (fd, 0);
    uint8_t byte;
    cr_assert_eq (pread (fd, &byte, 1, offset), 1);
    byte ^= 0xff;
    cr_assert_eq (pwrite (fd, &byte, 1, offset), 1);
    close (fd);
}

// ------------------ A second host: a network namespace and a veth pair

int
ps_test_net_ip (const ps_test_net_t *net, const char *first, ...)
{
    char *argv[16] = {(char *)net->ip, (char *)first};
    va_list args;
    va_start (args, first);
    size_t argc = 2;
    while (argc < 15 && (argv[argc] = va_arg (args, char *)))
        argc++;
    va_end (args);
    argv[argc] = NULL;
    char out[PATH_MAX];
    return ps_test_run_group (argv, ps_test_path ("ip.out", out, sizeof out), NULL,
                              PS_TEST_WAIT_MS);
}

void
ps_test_net_teardown (ps_test_net_t *net)
{
    if (net->made) {
        //  Deleting the namespace deletes the far end, and so the pair
        ps_test_net_ip (net, "netns", "del", net->ns, NULL);
        ps_test_net_ip (net, "link", "del", net->near, NULL);
        net->made = false;
    }
}

//  Skip the test, or fail it when the namespace is required
#define NET_UNAVAILABLE(required, ...)                                                             \
    do {                                                                                           \
        if (required)                                                                              \
            cr_assert_fail (__VA_ARGS__);                                                          \
        else                                                                                       \
            cr_skip_test (__VA_ARGS__);                                                            \
    } while (0)

void
ps_test_net_setup (ps_test_net_t *net, const char *tag, bool required)
{
    memset (net, 0, sizeof *net);
    if (geteuid () != 0)
        NET_UNAVAILABLE (required, "a network namespace needs root (CI runs the tests as root)");
    static const char *paths[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0] && !net->ip[0]; i++)
        if (access (paths[i], X_OK) == 0)
            snprintf (net->ip, sizeof net->ip, "%s", paths[i]);
    if (!net->ip[0] || ps_test_net_ip (net, "netns", "list", NULL) != 0)
        NET_UNAVAILABLE (required, "`ip netns` is not available (Debian's iproute2 has it)");
    int pid = (int)getpid ();
    snprintf (net->ns, sizeof net->ns, "psmq-%.8s-%d", tag, pid);
    snprintf (net->near, sizeof net->near, "ps%.2s%da", tag, pid % 10000000);
    snprintf (net->far, sizeof net->far, "ps%.2s%db", tag, pid % 10000000);
    char addresses[PATH_MAX];
    char *list[] = {net->ip, "-o", "-4", "addr", "show", NULL};
    ps_test_run_group (list, ps_test_path ("addresses.out", addresses, sizeof addresses), NULL,
                       PS_TEST_WAIT_MS);
    char *taken = ps_test_slurp (addresses);
    for (int attempt = 0; attempt < 64; attempt++) {
        int subnet = (pid + attempt * 7919) % (1 << 20);
        char prefix[24];
        snprintf (prefix, sizeof prefix, "inet 10.%d.%d.", 128 + (subnet >> 14),
                  (subnet >> 6) & 255);
        if (strstr (taken, prefix))
            continue;
        int base = (subnet & 63) << 2;
        snprintf (net->near_ip, sizeof net->near_ip, "%s%d", prefix + 5, base + 1);
        snprintf (net->far_ip, sizeof net->far_ip, "%s%d", prefix + 5, base + 2);
        break;
    }
    free (taken);
    cr_assert (net->near_ip[0], "no free 10.x.y.0/24 for the test's veth pair");
    if (ps_test_net_ip (net, "netns", "add", net->ns, NULL) != 0)
        NET_UNAVAILABLE (required, "`ip netns add` fails here (see %s)", addresses);
    net->made = true;
    char near_cidr[40], far_cidr[40];
    snprintf (near_cidr, sizeof near_cidr, "%s/30", net->near_ip);
    snprintf (far_cidr, sizeof far_cidr, "%s/30", net->far_ip);
    cr_assert_eq (ps_test_net_ip (net, "link", "add", net->near, "type", "veth", "peer", "name",
                                  net->far, NULL),
                  0);
    cr_assert_eq (ps_test_net_ip (net, "link", "set", net->far, "netns", net->ns, NULL), 0);
    cr_assert_eq (ps_test_net_ip (net, "addr", "add", near_cidr, "dev", net->near, NULL), 0);
    cr_assert_eq (ps_test_net_ip (net, "link", "set", net->near, "up", NULL), 0);
    cr_assert_eq (
        ps_test_net_ip (net, "-n", net->ns, "addr", "add", far_cidr, "dev", net->far, NULL), 0);
    cr_assert_eq (ps_test_net_ip (net, "-n", net->ns, "link", "set", net->far, "up", NULL), 0);
    cr_assert_eq (ps_test_net_ip (net, "-n", net->ns, "link", "set", "lo", "up", NULL), 0);
}
