/*  =========================================================================
    test_liveness - nobody waits on the dead or the hung

    The broker evicts a worker the moment its connection closes (libzmq's
    socket monitor), a worker whose host vanished once libzmq's ZMTP
    heartbeats give its half-open connections up, and a worker that stays
    connected but holds the others back without advancing its clock once
    the progress deadline passes; an honest slow worker is never taken for
    a hung one. The first test is the usual case: a worker process killed
    with SIGKILL holds the others of a BSP job back for well under a second
    where the silence timeout would have taken ten.

    The host that vanishes is a Linux network namespace joined to this one
    by a veth pair, whose far end the test takes down (nothing is sent:
    no FIN, no RST). That test needs root and `ip netns` (CI has both).

    usage: build/test_liveness [--filter 'liveness/<test>'] [--verbose]
    ========================================================================= */

#include "ps_codec.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

// ------------------------------------------------------------ brokers

//  A broker for world workers at staleness on 127.0.0.1 that heartbeats
//  every heartbeat_ms, evicts after timeout_ms of silence and after
//  progress_ms without progress (0 off)
static ps_broker_t *
s_broker (uint32_t world, int32_t staleness, uint32_t heartbeat_ms, uint32_t timeout_ms,
          int64_t progress_ms, char *endpoint, size_t endpoint_size)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = world;
    config.staleness = staleness;
    config.heartbeat_ms = heartbeat_ms;
    config.timeout_ms = timeout_ms;
    config.progress_ms = progress_ms;
    return ps_test_broker_with (&config, endpoint, endpoint_size);
}

//  A number of the broker's INFO
static double
s_info_number (ps_broker_t *broker, const char *name)
{
    char *json = ps_broker_info (broker);
    cr_assert (json);
    double value = ps_test_json_number (json, name, false);
    free (json);
    return value;
}

//  Rank's state in the broker's INFO ("absent", "live" or "gone")
static void
s_state (ps_broker_t *broker, uint32_t rank, char *state, size_t size)
{
    char *json = ps_broker_info (broker);
    cr_assert (json);
    json_t *workers = ps_test_json_find (json, "workers", false);
    cr_assert (workers && json_is_array (workers), "%s", json);
    const char *text =
        json_string_value (json_object_get (json_array_get (workers, rank), "state"));
    cr_assert (text, "%s", json);
    snprintf (state, size, "%s", text);
    json_decref (workers);
    free (json);
}

//  Wait (PS_TEST_WAIT_MS at most) until INFO's name is at least value
static void
s_wait_info (ps_broker_t *broker, const char *name, double value)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (s_info_number (broker, name) < value) {
        cr_assert (zclock_mono () < deadline, "INFO's %s never reached %g", name, value);
        zclock_sleep (5);
    }
}

//  Wait (PS_TEST_WAIT_MS at most) until the broker counts count open
//  connections
static void
s_wait_connections (ps_broker_t *broker, double count)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (s_info_number (broker, "connections") != count) {
        cr_assert (zclock_mono () < deadline, "the broker never had %g connections", count);
        zclock_sleep (1);
    }
}

// ------------------------------------------------------------ the tap

//  A reader of the broker's eviction and disconnection records
typedef struct {
    void *context;
    void *sub;
    ps_codec_t *codec;
} tap_t;

static void
s_tap_open (tap_t *self, ps_broker_t *broker)
{
    self->context = zmq_ctx_new ();
    self->sub = zmq_socket (self->context, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt (self->sub, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq (zmq_connect (self->sub, ps_broker_tap_endpoint (broker)), 0);
    zmq_setsockopt (self->sub, ZMQ_SUBSCRIBE, "evict.", 6);
    zmq_setsockopt (self->sub, ZMQ_SUBSCRIBE, "disc.", 5);
    self->codec = ps_codec_new ();
    //  Until the broker counts both, no record is missed
    s_wait_info (broker, "tap_subscriptions", 2);
}

static void
s_tap_close (tap_t *self)
{
    zmq_close (self->sub);
    zmq_ctx_term (self->context);
    ps_codec_destroy (&self->codec);
}

//  The next record within timeout_ms, NULL when none comes. Valid until
//  the next.
static ps_tap_record_t *
s_tap_next (tap_t *self, int timeout_ms)
{
    zmq_pollitem_t item = {self->sub, 0, ZMQ_POLLIN, 0};
    if (timeout_ms <= 0 || zmq_poll (&item, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t part;
    zmq_msg_init (&part);
    zmq_msg_recv (&part, self->sub, 0); //  the topic
    zmq_msg_recv (&part, self->sub, 0);
    ps_problem_t problem;
    ps_tap_record_t *record =
        ps_codec_decode_tap (self->codec, zmq_msg_data (&part), zmq_msg_size (&part), &problem);
    while (zmq_msg_more (&part))
        zmq_msg_recv (&part, self->sub, 0);
    zmq_msg_close (&part);
    cr_assert (record, "a tap record that does not decode: %s", problem.message);
    return record;
}

//  The next record of kind whose reason holds needle (others are passed
//  over) within timeout_ms, NULL when none comes. Valid until the next.
static ps_tap_record_t *
s_tap_expect (tap_t *self, int kind, const char *needle, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    ps_tap_record_t *record;
    while ((record = s_tap_next (self, (int)(deadline - zclock_mono ()))))
        if ((int)record->kind == kind && record->reason && strstr (record->reason, needle))
            return record;
    return NULL;
}

// ------------------------------------------------------------ a worker process

//  A worker in a process of its own, forked while this one has no threads
//  yet (before any broker starts): it reads the broker's endpoint from a
//  pipe, joins as rank of world, finishes its clocks, says so with a byte
//  on the other pipe, and then waits, its heartbeat thread beating, until
//  it is killed: hung, as far as its training goes
typedef struct {
    pid_t pid;
    int to_child;   //  the endpoint goes here
    int from_child; //  a byte per stage: 'j' joined, 'c' clocks done, 'E' failed
} child_t;

static void
s_child_main (int in, int out, uint32_t rank, uint32_t world, int clocks)
{
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    char endpoint[128] = "";
    ssize_t got = read (in, endpoint, sizeof endpoint - 1);
    if (got <= 0)
        _exit (1);
    endpoint[got] = 0;
    ps_worker_t *worker = ps_test_worker (endpoint, rank, world, PS_TEST_WAIT_MS);
    if (!worker || write (out, "j", 1) != 1)
        _exit (1);
    for (int i = 0; i < clocks; i++)
        if (ps_worker_clock (worker) != PS_OK) {
            (void)!write (out, "E", 1);
            _exit (1);
        }
    if (write (out, "c", 1) != 1)
        _exit (1);
    while (true)
        pause ();
}

static child_t
s_child_start (uint32_t rank, uint32_t world, int clocks)
{
    int to[2], from[2];
    cr_assert_eq (pipe (to), 0);
    cr_assert_eq (pipe (from), 0);
    fflush (NULL);
    pid_t pid = fork ();
    cr_assert_neq (pid, -1);
    if (pid == 0) {
        close (to[1]);
        close (from[0]);
        s_child_main (to[0], from[1], rank, world, clocks);
    }
    close (to[0]);
    close (from[1]);
    return (child_t){.pid = pid, .to_child = to[1], .from_child = from[0]};
}

//  Give the child the broker's endpoint
static void
s_child_go (child_t *child, const char *endpoint)
{
    cr_assert_eq (write (child->to_child, endpoint, strlen (endpoint)), (ssize_t)strlen (endpoint));
}

//  Wait for the child to report stage ('j' or 'c'), reading what it
//  reported before
static void
s_child_expect (child_t *child, char stage)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    char said = 0;
    while (said != stage) {
        struct pollfd item = {.fd = child->from_child, .events = POLLIN};
        int left = (int)(deadline - zclock_mono ());
        cr_assert (left > 0 && poll (&item, 1, left) == 1,
                   "the worker process did not report '%c' in time", stage);
        cr_assert_eq (read (child->from_child, &said, 1), 1, "the worker process is gone");
        cr_assert_neq (said, 'E', "the worker process failed");
    }
}

static void
s_child_kill (child_t *child)
{
    if (child->pid > 0) {
        kill (child->pid, SIGKILL);
        waitpid (child->pid, NULL, 0);
        child->pid = 0;
    }
    close (child->to_child);
    close (child->from_child);
}

// ------------------------------------------------------------ on disconnect

Test (liveness, a_killed_worker_holds_the_others_back_under_a_second, .timeout = 60)
{
    //  Rank 2 of a BSP job of 3 is a process of its own; ranks 0 and 1 are
    //  here. The broker would evict a silent worker after 10 s only.
    child_t child = s_child_start (2, 3, 1);
    char endpoint[64];
    ps_broker_t *broker = s_broker (3, 0, 1000, 10000, 0, endpoint, sizeof endpoint);
    tap_t tap;
    s_tap_open (&tap, broker);
    s_child_go (&child, endpoint);
    ps_worker_t *workers[2];
    for (uint32_t rank = 0; rank < 2; rank++) {
        workers[rank] = ps_test_worker (endpoint, rank, 3, PS_TEST_WAIT_MS);
        cr_assert (workers[rank]);
    }
    //  Clock 0, all three together
    ps_ticket_t tickets[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_clock_async (workers[i], &tickets[i]), PS_OK);
    s_child_expect (&child, 'c');
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_wait (workers[i], tickets[i], -1), PS_OK);

    //  Clock 1: ranks 0 and 1 wait for rank 2, which dies
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_clock_async (workers[i], &tickets[i]), PS_OK);
    s_wait_info (broker, "parked_now", 2);
    int64_t killed = zclock_mono ();
    kill (child.pid, SIGKILL);
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_wait (workers[i], tickets[i], -1), PS_OK, "rank %d: %s", i,
                      ps_worker_error (workers[i]));
    int64_t held = zclock_mono () - killed;
    cr_log_info ("the others were held back %" PRId64 " ms after the kill", held);
    cr_assert_lt (held, 1000, "the others were held back %" PRId64 " ms after the kill", held);

    //  Evicted for its closed connection, and said so
    ps_tap_record_t *record =
        s_tap_expect (&tap, PSMQ__TAP_KIND__TAP_EVICT, "its connection closed", PS_TEST_WAIT_MS);
    cr_assert (record, "no eviction record");
    cr_assert_eq (record->worker, 2);
    cr_assert_eq (s_info_number (broker, "evicted"), 1);
    char state[16];
    s_state (broker, 2, state, sizeof state);
    cr_assert_str_eq (state, "gone");
    //  The others go on alone
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_clock_async (workers[i], &tickets[i]), PS_OK);
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_wait (workers[i], tickets[i], -1), PS_OK);
    s_child_kill (&child);
    for (int i = 0; i < 2; i++)
        ps_worker_close (&workers[i]);
    s_tap_close (&tap);
    ps_broker_destroy (&broker);
}

//  A DEALER of its own context with routing id (NULL: libzmq's), connected
static void *
s_dealer (void *context, const char *endpoint, const char *id)
{
    void *dealer = zmq_socket (context, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt (dealer, ZMQ_LINGER, &linger, sizeof linger);
    if (id)
        zmq_setsockopt (dealer, ZMQ_ROUTING_ID, id, strlen (id));
    cr_assert_eq (zmq_connect (dealer, endpoint), 0);
    return dealer;
}

//  Send envelope on dealer and return the reply's type and clock
static int
s_request (void *dealer, ps_codec_t *codec, const ps_envelope_t *envelope, int64_t *clock)
{
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode (envelope, &msg), 0);
    cr_assert_neq (zmq_msg_send (&msg, dealer, 0), -1);
    zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
    cr_assert_gt (zmq_poll (&item, 1, PS_TEST_WAIT_MS), 0, "no reply to %s",
                  ps_codec_type_name (envelope->type));
    zmq_msg_init (&msg);
    zmq_msg_recv (&msg, dealer, 0);
    ps_problem_t problem;
    ps_envelope_t *reply =
        ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
    cr_assert (reply, "%s", problem.message);
    zmq_msg_close (&msg);
    if (clock)
        *clock = reply->clock;
    if (reply->type == PSMQ__MSG_TYPE__ERROR)
        return -(int)reply->error->code;
    return reply->type;
}

//  HELLO as rank of world on dealer; the clock the rank joined at
static int64_t
s_hello (void *dealer, ps_codec_t *codec, uint32_t rank, uint32_t world)
{
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = world;
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__HELLO, rank, 1);
    envelope.hello = &hello;
    int64_t clock = -1;
    int type = s_request (dealer, codec, &envelope, &clock);
    cr_assert_eq (type, PSMQ__MSG_TYPE__HELLO, "HELLO answered with %d", type);
    return clock;
}

Test (liveness, a_peer_that_closes_its_socket_is_evicted_at_once, .timeout = 60)
{
    char endpoint[64];
    ps_broker_t *broker = s_broker (2, 0, 1000, 10000, 0, endpoint, sizeof endpoint);
    //  Rank 1 is a client of its own making: HELLO, then it closes
    void *context = zmq_ctx_new ();
    ps_codec_t *codec = ps_codec_new ();
    void *dealer = s_dealer (context, endpoint, NULL);
    s_hello (dealer, codec, 1, 2);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 2, PS_TEST_WAIT_MS);
    cr_assert (worker);
    ps_ticket_t ticket;
    cr_assert_eq (ps_worker_clock_async (worker, &ticket), PS_OK);
    s_wait_info (broker, "parked_now", 1);
    int64_t closed = zclock_mono ();
    zmq_close (dealer);
    cr_assert_eq (ps_worker_wait (worker, ticket, -1), PS_OK);
    int64_t held = zclock_mono () - closed;
    cr_log_info ("rank 0 was held back %" PRId64 " ms after the close", held);
    cr_assert_lt (held, 1000, "rank 0 was held back %" PRId64 " ms after the close", held);
    char state[16];
    s_state (broker, 1, state, sizeof state);
    cr_assert_str_eq (state, "gone");
    cr_assert_eq (s_info_number (broker, "evicted"), 1);
    ps_worker_close (&worker);
    ps_codec_destroy (&codec);
    zmq_ctx_term (context);
    ps_broker_destroy (&broker);
}

Test (liveness, a_new_connection_is_not_evicted_for_the_old_ones_close, .timeout = 60)
{
    //  One worker, rank 0 of 1, that reconnects again and again under the
    //  same routing id: a new connection often gets the descriptor the old
    //  one had (the kernel hands out the lowest free one), and the old
    //  one's close must never evict the new one. Turn by turn, the old
    //  connection closes before the new one says HELLO, or after (libzmq
    //  hands the routing id over to the new one then).
    char endpoint[64];
    ps_broker_t *broker = s_broker (1, 0, 1000, 10000, 0, endpoint, sizeof endpoint);
    void *context = zmq_ctx_new ();
    ps_codec_t *codec = ps_codec_new ();
    void *old = s_dealer (context, endpoint, "reconnecting worker");
    s_hello (old, codec, 0, 1);
    enum { TURNS = 1000 };
    for (int turn = 0; turn < TURNS; turn++) {
        bool close_first = turn % 2 == 0;
        if (close_first)
            zmq_close (old);
        void *dealer = s_dealer (context, endpoint, "reconnecting worker");
        int64_t clock = s_hello (dealer, codec, 0, 1);
        if (!close_first)
            zmq_close (old);
        //  Once the broker has seen the old connection close, the new one
        //  is still registered: its CLOCK is answered, not refused
        s_wait_connections (broker, 1);
        ps_envelope_t envelope;
        ps_test_envelope (&envelope, PSMQ__MSG_TYPE__CLOCK, 0, 2);
        envelope.clock = clock;
        int type = s_request (dealer, codec, &envelope, NULL);
        cr_assert_eq (type, PSMQ__MSG_TYPE__CLOCK,
                      "turn %d (the old connection closed %s the HELLO): CLOCK answered with %d",
                      turn, close_first ? "before" : "after", type);
        old = dealer;
    }
    zmq_close (old);
    //  Whatever was evicted was an old connection: one per turn at most
    cr_assert_leq (s_info_number (broker, "evicted"), TURNS);
    ps_codec_destroy (&codec);
    zmq_ctx_term (context);
    ps_broker_destroy (&broker);
}

// ------------------------------------------------------------ no progress

Test (liveness, a_hung_worker_is_evicted_after_the_progress_deadline, .timeout = 60)
{
    //  Rank 2 finishes clock 0 and then hangs: its process lives and its
    //  library's heartbeat thread beats, but it never calls again. The
    //  broker evicts a rank that holds others back without progress for
    //  1.5 s (and a silent one after 10 s only).
    child_t child = s_child_start (2, 3, 1);
    char endpoint[64];
    ps_broker_t *broker = s_broker (3, 0, 100, 10000, 1500, endpoint, sizeof endpoint);
    tap_t tap;
    s_tap_open (&tap, broker);
    s_child_go (&child, endpoint);
    ps_worker_t *workers[2];
    for (uint32_t rank = 0; rank < 2; rank++) {
        workers[rank] = ps_test_worker (endpoint, rank, 3, PS_TEST_WAIT_MS);
        cr_assert (workers[rank]);
    }
    ps_ticket_t tickets[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_clock_async (workers[i], &tickets[i]), PS_OK);
    s_child_expect (&child, 'c');
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_wait (workers[i], tickets[i], -1), PS_OK);
    //  From here the hung rank holds the others' clock 1 back
    int64_t released = zclock_mono ();
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_clock_async (workers[i], &tickets[i]), PS_OK);
    for (int i = 0; i < 2; i++)
        cr_assert_eq (ps_worker_wait (workers[i], tickets[i], -1), PS_OK, "rank %d: %s", i,
                      ps_worker_error (workers[i]));
    int64_t held = zclock_mono () - released;
    cr_log_info ("the hung worker held the others back %" PRId64 " ms", held);
    //  Not before the deadline (less the time the replies took to come),
    //  and soon after it (checks run every heartbeat, 100 ms)
    cr_assert_geq (held, 1400, "evicted after %" PRId64 " ms, before the deadline", held);
    cr_assert_lt (held, 3000, "evicted after %" PRId64 " ms", held);

    ps_tap_record_t *record =
        s_tap_expect (&tap, PSMQ__TAP_KIND__TAP_EVICT, "no progress for", PS_TEST_WAIT_MS);
    cr_assert (record, "no eviction record");
    cr_assert_eq (record->worker, 2);
    cr_assert (strstr (record->reason, "requests waited on it; deadline 1500 ms"), "%s",
               record->reason);
    //  It was its progress, not its connection: the process is there
    cr_assert_eq (waitpid (child.pid, NULL, WNOHANG), 0, "the hung worker process died");
    cr_assert_eq (s_info_number (broker, "evicted"), 1);
    cr_assert_eq (s_info_number (broker, "progress_deadline_ms"), 1500);
    //  The others go on alone
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 2; i++)
            cr_assert_eq (ps_worker_clock_async (workers[i], &tickets[i]), PS_OK);
        for (int i = 0; i < 2; i++)
            cr_assert_eq (ps_worker_wait (workers[i], tickets[i], -1), PS_OK);
    }
    s_child_kill (&child);
    for (int i = 0; i < 2; i++)
        ps_worker_close (&workers[i]);
    s_tap_close (&tap);
    ps_broker_destroy (&broker);
}

//  A worker thread that finishes clocks, sleeping delays[i] ms before
//  clock i
typedef struct {
    const char *endpoint;
    uint32_t rank;
    const int *delays; //  NULL: none
    int clocks;
    int status;
} clocker_t;

static void *
s_clocker (void *arg)
{
    clocker_t *self = arg;
    ps_worker_t *worker = ps_test_worker (self->endpoint, self->rank, 3, PS_TEST_WAIT_MS);
    self->status = worker ? PS_OK : PS_ECONNECT;
    for (int i = 0; i < self->clocks && self->status == PS_OK; i++) {
        if (self->delays)
            zclock_sleep (self->delays[i]);
        self->status = ps_worker_clock (worker);
    }
    ps_worker_close (&worker);
    return NULL;
}

Test (liveness, an_honest_slow_worker_is_not_taken_for_a_hung_one, .timeout = 60)
{
    //  The automatic deadline with its floor lowered to 1 s: rank 2 takes
    //  300 ms a clock, then 1500 ms, longer than the floor but well within
    //  10 x the clocks the broker has seen it take
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = 3;
    config.heartbeat_ms = 100;
    config.timeout_ms = 10000;
    config.progress_min_ms = 1000;
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    cr_assert_eq (s_info_number (broker, "progress_deadline_ms"), 1000, "the floor at first");
    static const int slow[] = {300, 300, 300, 1500, 1500};
    clocker_t clockers[3] = {
        {endpoint, 0, NULL, 5, -1}, {endpoint, 1, NULL, 5, -1}, {endpoint, 2, slow, 5, -1}};
    pthread_t threads[3];
    for (int i = 0; i < 3; i++)
        pthread_create (&threads[i], NULL, s_clocker, &clockers[i]);
    for (int i = 0; i < 3; i++) {
        pthread_join (threads[i], NULL);
        cr_assert_eq (clockers[i].status, PS_OK, "rank %d: %s", i,
                      ps_strerror (clockers[i].status));
    }
    cr_assert_eq (s_info_number (broker, "evicted"), 0);
    //  The deadline learnt the 1500 ms clocks
    double longest = s_info_number (broker, "longest_clock_ms");
    cr_assert_geq (longest, 1400);
    cr_assert_eq (s_info_number (broker, "progress_deadline_ms"), 10 * longest);
    ps_broker_destroy (&broker);
}

Test (liveness, psbroker_takes_a_progress_deadline, .timeout = 60)
{
    //  Seconds, "auto" (the default) or 0 (never), as INFO shows it
    const char *given[] = {"2.5", "auto", "0"};
    const double want[] = {2500, PS_DEFAULT_PROGRESS_FLOOR_MS, 0};
    for (int i = 0; i < 3; i++) {
        char endpoint[128], out[1024];
        char *args[] = {"--progress-deadline", (char *)given[i], NULL};
        ps_test_child_t broker =
            ps_test_psbroker (args, endpoint, sizeof endpoint, out, sizeof out);
        char *json = NULL;
        cr_assert_eq (ps_worker_query_info (endpoint, PS_TEST_WAIT_MS, &json), PS_OK);
        cr_assert_eq (ps_test_json_number (json, "progress_deadline_ms", false), want[i],
                      "--progress-deadline %s: %s", given[i], json);
        free (json);
        kill (broker.pid, SIGTERM);
        cr_assert_eq (ps_test_wait_pid (broker.pid, PS_TEST_WAIT_MS), 0);
        close (broker.out);
        close (broker.err);
    }
    //  Anything else is refused, naming the option
    char path[PATH_MAX], out_path[PATH_MAX];
    char *argv[] = {(char *)ps_test_binary ("psbroker", path, sizeof path),
                    "--port",
                    "0",
                    "--progress-deadline",
                    "-1",
                    NULL};
    ps_test_path ("refused.out", out_path, sizeof out_path);
    cr_assert_eq (ps_test_run_group (argv, out_path, NULL, PS_TEST_WAIT_MS), 2);
    char *text = ps_test_slurp (out_path);
    cr_assert (strstr (text, "--progress-deadline '-1'"), "%s", text);
    free (text);
}

// ------------------------------------------------------------ a host that vanishes

//  A network namespace joined to ours by a veth pair (ps_test_net), and
//  the psworker processes that run in it; the fixture's teardown removes
//  it all, also when the test fails
static ps_test_net_t s_net;
static pid_t s_workers[2]; //  to kill, 0 when none

static void
s_net_teardown (void)
{
    for (int i = 0; i < 2; i++)
        if (s_workers[i] > 0)
            ps_process_kill (s_workers[i], false);
    ps_test_net_teardown (&s_net);
}

//  Skipped unless root may make namespaces here (CI may)
static void
s_net_setup (void)
{
    ps_test_net_setup (&s_net, "lv", false);
}

//  Rank's clock in the broker's INFO, -1 when it is not live
static long
s_clock_of (ps_broker_t *broker, uint32_t rank)
{
    char *json = ps_broker_info (broker);
    cr_assert (json);
    json_t *clocks = ps_test_json_find (json, "clocks", false);
    cr_assert (clocks && json_is_array (clocks), "%s", json);
    long clock = (long)json_integer_value (json_array_get (clocks, rank));
    json_decref (clocks);
    free (json);
    return clock;
}

//  Wait (PS_TEST_WAIT_MS at most) until rank's clock is at least clock
static void
s_wait_clock (ps_broker_t *broker, uint32_t rank, long clock)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (s_clock_of (broker, rank) < clock) {
        cr_assert (zclock_mono () < deadline, "rank %u never reached clock %ld", rank, clock);
        zclock_sleep (10);
    }
}

Test (liveness, a_vanished_host_is_evicted_within_the_heartbeat_timeout, .timeout = 90,
      .init = s_net_setup, .fini = s_net_teardown)
{
    //  The broker listens on our end of the pair, pings every 200 ms and
    //  gives a connection (or a worker) up after 2 s of silence
    enum { HEARTBEAT_MS = 200, TIMEOUT_MS = 2000 };
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = 3;
    config.heartbeat_ms = HEARTBEAT_MS;
    config.timeout_ms = TIMEOUT_MS;
    char bind[64];
    snprintf (bind, sizeof bind, "tcp://%s:0", s_net.near_ip);
    config.endpoint = bind;
    //  Neither host is loopback to the broker: both are let in by address
    char allow[80];
    snprintf (allow, sizeof allow, "%s,%s", s_net.near_ip, s_net.far_ip);
    config.allow_from = allow;
    ps_problem_t problem;
    ps_broker_t *broker = ps_broker_new (&config, &problem);
    cr_assert (broker, "%s", problem.message);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://%s:%d", s_net.near_ip, ps_broker_port (broker));
    tap_t tap;
    s_tap_open (&tap, broker);

    //  Ranks 0 and 1 train here, rank 2 on the other "host"
    char out[PATH_MAX], far_out[PATH_MAX], psworker[PATH_MAX];
    s_workers[0] = ps_test_psworker_train (endpoint, 0, 2, 3, 1000, NULL,
                                           ps_test_path ("near.out", out, sizeof out));
    char *binary = (char *)ps_test_binary ("psworker", psworker, sizeof psworker);
    char *far[] = {s_net.ip,    "netns",    "exec", s_net.ns,    binary, "--broker",
                   endpoint,    "--rank",   "2",    "--workers", "3",    "--data",
                   "synthetic", "--epochs", "1000", "--hidden",  "32",   NULL};
    s_workers[1] = ps_test_spawn_to_file (far, ps_test_path ("far.out", far_out, sizeof far_out));
    s_wait_clock (broker, 2, 20);

    //  The other host vanishes: its link goes down, nothing is sent
    int64_t gone_at = zclock_mono ();
    int64_t gone_wall_ms = zclock_time ();
    cr_assert_eq (ps_test_net_ip (&s_net, "-n", s_net.ns, "link", "set", s_net.far, "down", NULL),
                  0);
    int64_t bound = TIMEOUT_MS + 2 * HEARTBEAT_MS + 1500;
    char state[16] = "live";
    while (strcmp (state, "gone") != 0) {
        cr_assert_lt (zclock_mono () - gone_at, bound, "rank 2 still %s after %" PRId64 " ms",
                      state, zclock_mono () - gone_at);
        zclock_sleep (10);
        s_state (broker, 2, state, sizeof state);
    }
    cr_log_info ("rank 2 gone %" PRId64 " ms after its link went down", zclock_mono () - gone_at);

    //  Its eviction, and libzmq's heartbeats giving both its connections
    //  (requests, and the heartbeat thread's) up: half open, no read would
    //  ever have ended them. In whatever order they came, each in time.
    char from[64];
    snprintf (from, sizeof from, "tcp connection from %s:", s_net.far_ip);
    int closed = 0;
    bool evicted = false;
    ps_tap_record_t *record;
    int64_t deadline = gone_at + bound + 1000;
    while ((closed < 2 || !evicted) &&
           (record = s_tap_next (&tap, (int)(deadline - zclock_mono ())))) {
        int64_t after = (int64_t)(record->time_us / 1000) - gone_wall_ms;
        if (record->kind == PSMQ__TAP_KIND__TAP_EVICT && record->worker == 2) {
            cr_log_info ("rank 2 evicted %" PRId64 " ms after its link went down: %s", after,
                         record->reason);
            evicted = true;
        }
        else if (record->kind == PSMQ__TAP_KIND__TAP_DISCONNECT && record->reason &&
                 strstr (record->reason, from))
            closed++;
        else
            continue;
        cr_assert_lt (after, bound, "%s %" PRId64 " ms after the link went down", record->reason,
                      after);
    }
    cr_assert (evicted, "no eviction record of rank 2");
    cr_assert_eq (closed, 2, "%d of the 2 connections of the vanished host closed", closed);
    //  The others go on
    long clock = s_clock_of (broker, 0);
    s_wait_clock (broker, 0, clock + 20);
    cr_assert_eq (s_info_number (broker, "evicted"), 1);
    s_tap_close (&tap);
    ps_process_kill (s_workers[0], false);
    s_workers[0] = 0;
    ps_broker_destroy (&broker);
}
