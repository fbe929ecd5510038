/*  =========================================================================
    ps_testutil - helpers shared by the tests

    Start a broker in-process on an ephemeral loopback port (alone, in a
    group, or with a worker already joined: a job), speak to it through a
    raw DEALER with envelopes built by hand, find the built binaries,
    spawn processes with a bounded wait, read JSON with jansson. Test code
    only; each helper asserts (through Criterion) on failure unless it
    says otherwise.

    ctest -j runs test executables side by side on a loaded machine, so
    every test waits on a condition (bounded by PS_TEST_WAIT_MS, which
    only a failure reaches) and keeps its resources to itself: brokers and
    fakes bind ephemeral loopback ports, and each test process gets a
    private directory, set as XDG_RUNTIME_DIR and TMPDIR, where brokers put
    their default ipc:// tap (named after the port) and tests their files.
    ========================================================================= */

#ifndef PS_TESTUTIL_H_INCLUDED
#define PS_TESTUTIL_H_INCLUDED

#include "ps_broker.h"
#include "ps_checkpoint.h"
#include "ps_codec.h"
#include "ps_process.h"
#include "ps_worker.h"

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

//  Bound on a wait for something that happens at once on an idle machine
//  (a reply, a subscription, a process starting or exiting): generous, so
//  that a loaded machine passes; only a failing test waits this long
#define PS_TEST_WAIT_MS 20000

// ----------------------------------- Brokers and workers in this process

//  A broker on tcp://127.0.0.1:<ephemeral> with these settings; the
//  endpoint to connect to is written into endpoint (asserts that it starts)
ps_broker_t *ps_test_broker (uint32_t workers, int32_t staleness, uint32_t timeout_ms,
                             char *endpoint, size_t endpoint_size);

//  A broker with the settings of config but its endpoint, on
//  tcp://127.0.0.1:<ephemeral>; the endpoint to connect to is written into
//  endpoint (asserts that it starts)
ps_broker_t *ps_test_broker_with (const ps_broker_config_t *config, char *endpoint,
                                  size_t endpoint_size);

//  Stop *broker and start another with the settings of config but its
//  endpoint on the same loopback port, held in between so that no other
//  test's broker takes it: a broker restarted, empty, where its workers
//  reconnect. The new broker (asserts that it starts)
ps_broker_t *ps_test_broker_restart (ps_broker_t **broker, const ps_broker_config_t *config);

//  A group of shards brokers like ps_test_broker's, into brokers[]; their
//  endpoints, comma-separated in shard order, are written into endpoints.
//  0, or -1 when endpoints is too small for them
int ps_test_group (uint32_t shards, uint32_t workers, int32_t staleness, ps_broker_t **brokers,
                   char *endpoints, size_t endpoints_size);

//  A worker registered as rank of world at endpoint (requests time out
//  after 10 s, clocks after clock_timeout_ms); NULL, with the reason on
//  stderr, when it cannot join
ps_worker_t *ps_test_worker (const char *endpoint, uint32_t rank, uint32_t world,
                             int clock_timeout_ms);

//  The same, and the library's status of the connection into *status
//  (when not NULL): for tests of a refusal
ps_worker_t *ps_test_connect (const char *endpoint, uint32_t rank, uint32_t world,
                              int clock_timeout_ms, int *status);

//  The options ps_test_connect joins with, for a test that changes some:
//  rank of world at endpoint, requests timing out after 10 s, clocks after
//  PS_TEST_WAIT_MS, the library's log on stderr
void ps_test_options (ps_worker_options_t *options, const char *endpoint, uint32_t rank,
                      uint32_t world);

//  A job: a broker and rank 0 of its world joined to it, where most tests
//  of the broker and the library start
typedef struct {
    ps_broker_t *broker; //  ps_test_broker's
    ps_worker_t *worker; //  rank 0; clocks time out after PS_TEST_WAIT_MS
    char endpoint[64];   //  the broker's
} ps_test_job_t;

//  A broker for world workers at staleness that evicts after timeout_ms
//  of silence (as ps_test_broker's), and rank 0 (asserts that both start)
ps_test_job_t ps_test_job (uint32_t world, int32_t staleness, uint32_t timeout_ms);

//  Close the worker (unless the test did) and stop the broker
void ps_test_job_stop (ps_test_job_t *self);

// ------------------------------- Envelopes and tap records built by hand

//  A DEALER that speaks envelopes built by hand, as a client written in
//  another language would: for what the worker library never sends
typedef struct {
    void *context;
    void *dealer;      //  connected to the broker
    ps_codec_t *codec; //  reads the replies
} ps_test_raw_t;

//  Connect to the broker at endpoint (ps_test_raw_close: disconnect)
void ps_test_raw_open (ps_test_raw_t *self, const char *endpoint);
void ps_test_raw_close (ps_test_raw_t *self);

//  An envelope of this type from worker, with seq; every other field empty
void ps_test_envelope (ps_envelope_t *envelope, int type, uint32_t worker, uint64_t seq);

//  Send envelope; flags ZMQ_SNDMORE when frames follow
void ps_test_raw_send (ps_test_raw_t *self, const ps_envelope_t *envelope, int flags);

//  The next reply's envelope, its other frames dropped (valid until the
//  next receive); NULL when none comes within PS_TEST_WAIT_MS or it does
//  not decode
ps_envelope_t *ps_test_raw_receive (ps_test_raw_t *self);

//  The same, and the first size bytes of its first frame after the
//  envelope copied to data (when it has one and data is not NULL)
ps_envelope_t *ps_test_raw_receive_data (ps_test_raw_t *self, void *data, size_t size);

//  Send a PUSH from rank as seq at clock of one slice of key: count values
//  from offset, `more` set or not (grad_count 1)
void ps_test_raw_push (ps_test_raw_t *self, uint32_t rank, uint64_t seq, int64_t clock,
                       const char *key, uint64_t offset, const float *values, uint64_t count,
                       bool more);

//  Send envelope and return its reply, which must come
ps_envelope_t *ps_test_raw_request (ps_test_raw_t *self, const ps_envelope_t *envelope);

//  Say HELLO as rank, with hello's fields (world, weight, group ...), and
//  assert that the broker welcomed it
void ps_test_raw_hello (ps_test_raw_t *self, uint32_t rank, Psmq__Hello *hello);

//  What a broker made by hand answers a HELLO with, as psbroker would for
//  a job of one worker: heartbeats every 1 s, eviction after 10 s
Psmq__Hello ps_test_hello_of_one (void);

//  A tap record as the broker starts one: its number, kind, message type
//  and worker; every other field at its default
ps_tap_record_t ps_test_tap_record (uint64_t number, int kind, int type, int64_t worker);

// ------------------------------------------- Ports, files and assertions

//  A loopback TCP endpoint where nobody listens and nobody can start to:
//  a port bound, not listening, by a socket that the caller closes when
//  done (connects are refused at once). The socket, or -1 (asserts)
int ps_test_closed_endpoint (char *endpoint, size_t endpoint_size);

//  Keep the loopback port of a broker this test has stopped (destroyed or
//  killed): its workers go on reconnecting, and must be refused, not
//  reach a broker that another test has started on the port meanwhile.
//  Binds it, not listening, as soon as it is free (retrying for up to
//  PS_TEST_WAIT_MS); the socket, which the caller closes when done
int ps_test_hold_port (int port);

//  The test process's private directory (see above)
const char *ps_test_dir (void);

//  Path of a file called name in that directory
const char *ps_test_path (const char *name, char *path, size_t path_size);

//  The whole text of a file (up to 1 MB), "" when it cannot be read; the
//  caller frees it
char *ps_test_slurp (const char *path);

//  The decimal number text holds (white space may follow, as a program's
//  printed line); asserts that it is one whole number that fits a long
long ps_test_number (const char *text);

//  The port of a tcp:// endpoint (asserts that it has one)
int ps_test_endpoint_port (const char *endpoint);

//  Each of got's n values within tolerance of want's, relative to the
//  value wanted (absolute below 1); what names the array in a failure
void ps_test_assert_near (const float *got, const float *want, size_t n, float tolerance,
                          const char *what);

// ------------------------------------------------ Checkpoint files

//  A checkpoint numbered sequence of 3 ranks (live at 5, never joined,
//  gone at 3), shard 1 of 2, SSP 2, with two keys of size elements,
//  "layer1.w" (SGD) and "layer1.b" (Adam), each with 17 steps, version
//  18, decay steps 1000 and values and state made from a seed of its own.
//  The caller's (ps_checkpoint_destroy)
ps_checkpoint_t *ps_test_checkpoint (uint64_t sequence, uint64_t size);

//  A directory for checkpoints in the test's own, made usable (and let
//  go): dir, where its path goes
const char *ps_test_checkpoint_dir (char *dir, size_t size);

//  Write ps_test_checkpoint (sequence, size) into dir; its path into path
void ps_test_checkpoint_write (const char *dir, uint64_t sequence, uint64_t size, char *path,
                               size_t path_size);

//  Flip the bits of one byte of the file at path, as a disk might
void ps_test_flip (const char *path, off_t offset);

// ---------------- Programs: the built binaries and the scripts of tools/

//  Absolute path of a built binary (in PSMQ_BUILD_DIR from ctest, else in
//  the current directory)
const char *ps_test_binary (const char *name, char *path, size_t path_size);

//  Absolute path of a script in tools/ (of PSMQ_SOURCE_DIR from ctest,
//  else of ..)
const char *ps_test_script (const char *name, char *path, size_t path_size);

//  A child process (ps_process, the helper psbench uses too):
//  ps_test_spawn's has its stdout and stderr on pipes (pid, out, err)
typedef ps_process_t ps_test_child_t;

//  Start argv[0] with argv as spec says (asserts when no process could be
//  made)
ps_process_t ps_test_start (char *const argv[], const ps_process_spec_t *spec);

//  Run argv[0] with argv in a child that dies with the test (asserts when
//  it cannot fork)
ps_test_child_t ps_test_spawn (char *const argv[]);

//  Run argv[0] with argv in a child whose stdout and stderr go to the file
//  at out_path, and that dies with the test (asserts when it cannot fork)
pid_t ps_test_spawn_to_file (char *const argv[], const char *out_path);

//  Read from fd until text (NUL-terminated, size bytes) holds needle or
//  timeout_ms passes; whether it does
bool ps_test_read_until (int fd, const char *needle, char *text, size_t size, int timeout_ms);

//  Wait up to timeout_ms for pid to exit; its exit status, or -1 after
//  killing it when it did not exit in time
int ps_test_wait_pid (pid_t pid, int timeout_ms);

//  Read child's stdout into out and its stderr into err (each of size
//  bytes, NUL-terminated) until it closes both or timeout_ms passes, then
//  reap it as ps_test_wait_pid does (1 s more); its exit status, or -1
int ps_test_child_output (ps_test_child_t *child, int timeout_ms, char *out, char *err,
                          size_t size);

//  Run argv[0] with argv in a process group of its own, stdout to out_path
//  and stderr to err_path (or to out_path too when NULL), for up to
//  timeout_ms; its exit status, or -1 when it had to be killed. Either way
//  the whole group is killed at the end, so a script leaves no children.
int ps_test_run_group (char *const argv[], const char *out_path, const char *err_path,
                       int timeout_ms);

//  A psbroker process on 127.0.0.1, at a port the kernel picks, with more
//  arguments (NULL-terminated, at most 26), spawned as ps_test_spawn does:
//  its first line, "psbroker listening on <endpoint> (...)", is read into
//  out (which ps_test_read_until may go on filling) and its endpoint
//  written into endpoint (asserts that it prints one)
ps_test_child_t ps_test_psbroker (char *const args[], char *endpoint, size_t endpoint_size,
                                  char *out, size_t out_size);

//  A psworker process with args (NULL-terminated, at most 30), its stdout
//  and stderr into the file at out_path; it dies with the test
pid_t ps_test_psworker (char *const args[], const char *out_path);

//  A psworker process that trains ranks rank .. rank + threads - 1 of a
//  job of workers at brokers (an endpoint, or a group's list) on the
//  synthetic data set for epochs, with a hidden layer 32 wide and a JSON
//  record per epoch; more arguments in more (NULL-terminated, or NULL).
//  Its stdout and stderr go to out_path
pid_t ps_test_psworker_train (const char *brokers, int rank, int threads, int workers, int epochs,
                              char *const more[], const char *out_path);

// ------------------ A second host: a network namespace and a veth pair

//  A network namespace joined to ours by a veth pair with a /30 of
//  10.128.0.0/10 that no interface of ours is in, named after the test's
//  pid: a peer there connects from far_ip, not from loopback
typedef struct {
    char ip[64];      //  the ip program
    char ns[40];      //  the namespace
    char near[16];    //  the veth end here
    char far[16];     //  the end in the namespace
    char near_ip[32]; //  our address on the pair
    char far_ip[32];  //  the namespace's
    bool made;        //  the namespace exists
} ps_test_net_t;

//  Make it; tag (a few letters) goes into the names. Needs root and
//  `ip netns`: without them the test fails when required, else is
//  skipped. Call ps_test_net_teardown from the test's .fini
void ps_test_net_setup (ps_test_net_t *net, const char *tag, bool required);
//  Remove the namespace and the pair (nothing when not made)
void ps_test_net_teardown (ps_test_net_t *net);
//  Run ip with args (NULL-terminated, at most 12); its exit status
int ps_test_net_ip (const ps_test_net_t *net, const char *first, ...);

// ----------------------- JSON (INFO, psworker --json), read with jansson

//  The value a key called name holds in JSON text, found as
//  ps_test_json_number finds it; NULL when there is none. The caller
//  drops it with json_decref.
json_t *ps_test_json_find (const char *text, const char *name, bool last);

//  The number a key called name holds in JSON text (one document, or one
//  a line among lines that are not JSON), at any depth, at its first or
//  its last occurrence in document order (read with jansson; asserts
//  that there is one and that it is a number)
double ps_test_json_number (const char *text, const char *name, bool last);

//  The same for a key that holds true or false (asserts that it does)
bool ps_test_json_bool (const char *text, const char *name, bool last);

//  The number name holds in the INFO of broker shard of worker's group
//  (asserts that INFO answers and holds it)
double ps_test_shard_info (ps_worker_t *worker, uint32_t shard, const char *name);

//  Wait, at most PS_TEST_WAIT_MS, until each of the shards brokers of
//  worker's group holds want requests parked; 0, or -1 at the deadline
int ps_test_wait_parked (ps_worker_t *worker, uint32_t shards, int want);

#endif
