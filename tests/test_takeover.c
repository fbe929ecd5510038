/*  =========================================================================
    test_takeover - nobody takes a rank, stops the job, reads the model or
    poisons it without registering as a worker of the job

    The attacks of issue 12 that need no key, each against a running job:
    a HELLO for a live rank (or for every rank, through its weight), a
    flood of them, requests before HELLO, an INIT before the job that sets
    another learning rate. Each is refused with the error that says why,
    the broker logs and counts it, and the real workers finish. The first
    test shows how a rank does come back: with its session, or once it is
    not live any more (as a worker started again waits for, when it may).

    usage: build/test_takeover [--filter 'takeover/<test>'] [--verbose]
    ========================================================================= */

#include "ps_codec.h"
#include "ps_hash.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  A HELLO as rank (weight ranks) of world, showing session (0: none)
static void
s_hello_envelope (ps_envelope_t *envelope, Psmq__Hello *hello, uint32_t rank, uint32_t weight,
                  uint32_t world, uint64_t session)
{
    ps_test_envelope (envelope, PSMQ__MSG_TYPE__HELLO, rank, 1);
    psmq__hello__init (hello);
    hello->world_size = world;
    hello->weight = weight;
    hello->resume_session = session;
    envelope->hello = hello;
}

//  The reply must be an ERROR with code whose message holds says
static void
s_assert_error (const ps_envelope_t *reply, int code, const char *says, const char *what)
{
    cr_assert (reply, "%s: no reply", what);
    cr_assert_eq (reply->type, PSMQ__MSG_TYPE__ERROR, "%s: answered %s", what,
                  ps_codec_type_name (reply->type));
    cr_assert (reply->error, "%s: an error without its code", what);
    cr_assert_eq (reply->error->code, code, "%s: %s (%s)", what,
                  ps_codec_error_name (reply->error->code), reply->error->message);
    cr_assert (strstr (reply->error->message, says), "%s: '%s' does not say '%s'", what,
               reply->error->message, says);
}

//  An INFO through peer: its JSON text (the caller frees it)
static char *
s_info (ps_test_raw_t *peer)
{
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__INFO, 0, 99);
    ps_envelope_t *reply = ps_test_raw_request (peer, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__INFO && reply->info);
    return strdup (reply->info);
}

//  A number of the broker's INFO, asked through peer
static double
s_info_number (ps_test_raw_t *peer, const char *name)
{
    char *json = s_info (peer);
    double value = ps_test_json_number (json, name, false);
    free (json);
    return value;
}

//  Wait until the broker's INFO says name >= value
static void
s_wait_info (ps_test_raw_t *peer, const char *name, double value)
{
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (s_info_number (peer, name) < value) {
        cr_assert (zclock_mono () < deadline, "INFO %s never reached %g", name, value);
        zclock_sleep (10);
    }
}

Test (takeover, usage_a_rank_comes_back_only_with_its_session, .timeout = 30)
{
    //  One connection stands for ranks 0 and 1 of a BSP job; its HELLO
    //  reply gives it a session, which only it knows
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    ps_test_raw_t holder, other;
    ps_test_raw_open (&holder, endpoint);
    ps_test_raw_open (&other, endpoint);
    ps_envelope_t envelope;
    Psmq__Hello hello;
    s_hello_envelope (&envelope, &hello, 0, 2, 2, 0);
    ps_envelope_t *reply = ps_test_raw_request (&holder, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__HELLO && reply->hello);
    uint64_t session = reply->hello->session;
    cr_assert_neq (session, 0);

    //  Another connection cannot take rank 1: not without the session ...
    s_hello_envelope (&envelope, &hello, 1, 1, 2, 0);
    s_assert_error (ps_test_raw_request (&other, &envelope), PSMQ__ERR_CODE__ERR_RANK,
                    "rank 1 is live on another connection; a worker coming back must show its "
                    "session",
                    "rank 1 without a session");
    //  ... nor with a guess
    s_hello_envelope (&envelope, &hello, 1, 1, 2, session ^ 1);
    s_assert_error (ps_test_raw_request (&other, &envelope), PSMQ__ERR_CODE__ERR_RANK,
                    "this HELLO shows another", "rank 1 with a wrong session");
    //  ... nor every rank at once through the weight
    s_hello_envelope (&envelope, &hello, 0, 2, 2, 0);
    s_assert_error (ps_test_raw_request (&other, &envelope), PSMQ__ERR_CODE__ERR_RANK,
                    "rank 0 is live", "ranks 0..1 without a session");
    //  The holder is untouched: its CLOCK is taken (BSP: it waits for none)
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__CLOCK, 0, 2);
    envelope.clock = 0;
    reply = ps_test_raw_request (&holder, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__CLOCK, "the holder lost its ranks");
    cr_assert_eq (reply->clock, 1);

    //  The same worker coming back on a new connection shows its session:
    //  it takes rank 1 back, and rank 0, which nobody stands for any more,
    //  leaves, so that the BSP job does not wait for it
    s_hello_envelope (&envelope, &hello, 1, 1, 2, session);
    reply = ps_test_raw_request (&other, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__HELLO && reply->hello, "%s",
               reply && reply->error ? reply->error->message : "no reply");
    cr_assert_neq (reply->hello->session, session, "a new registration, a new session");
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__CLOCK, 1, 3);
    envelope.clock = reply->clock;
    reply = ps_test_raw_request (&other, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__CLOCK, "%s",
               reply && reply->error ? reply->error->message : "no reply");
    //  The old connection is forgotten
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__CLOCK, 0, 4);
    envelope.clock = 1;
    s_assert_error (ps_test_raw_request (&holder, &envelope), PSMQ__ERR_CODE__ERR_NOT_REGISTERED,
                    "before hello", "the old connection");
    //  Each refusal counted
    cr_assert_geq (s_info_number (&holder, "rejected"), 4);
    //  A rank whose connection closed is not live: a new connection takes
    //  it without a session
    ps_test_raw_close (&other);
    s_wait_info (&holder, "evicted", 1);
    ps_test_raw_open (&other, endpoint);
    s_hello_envelope (&envelope, &hello, 1, 1, 2, 0);
    reply = ps_test_raw_request (&other, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__HELLO, "%s",
               reply && reply->error ? reply->error->message : "no reply");
    ps_test_raw_close (&holder);
    ps_test_raw_close (&other);
    ps_broker_destroy (&broker);
}

//  A worker started again while the broker still holds its rank for the
//  earlier process (a host that vanished: its connection is open and
//  silent) is refused at once, or, when it may wait for the brokers,
//  joins once the broker has evicted the silent connection
Test (takeover, a_worker_started_again_waits_for_its_old_connection_to_go, .timeout = 30)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, 0, 1000, endpoint, sizeof endpoint);
    ps_test_raw_t old;
    ps_test_raw_open (&old, endpoint);
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 1;
    ps_test_raw_hello (&old, 0, &hello);
    int64_t registered = zclock_mono ();

    int status = PS_OK;
    ps_worker_t *worker = ps_test_connect (endpoint, 0, 1, PS_TEST_WAIT_MS, &status);
    cr_assert_null (worker);
    cr_assert_eq (status, PS_ERANK, "%s", ps_strerror (status));

    ps_worker_options_t options;
    ps_test_options (&options, endpoint, 0, 1);
    options.wait_for_broker_ms = PS_TEST_WAIT_MS;
    worker = ps_worker_connect (&options, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    //  Not before the silent connection was evicted (1 s of silence)
    cr_assert_geq (zclock_mono () - registered, 1000);
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    ps_worker_close (&worker);
    ps_test_raw_close (&old);
    ps_broker_destroy (&broker);
}

// ------------------------------------------------------- real workers

//  A worker of a BSP job of two that trains until the attack is over and
//  STEPS_AFTER more steps, and checks what it pulls: each clock moves
//  every value by -lr x the mean gradient, 1, so nobody else changed it
#define STEPS_AFTER 30

typedef struct {
    const char *endpoint;
    uint32_t rank;
    atomic_bool *attacked; //  set when the attack is over
    int status;            //  PS_OK, a library status, or -1000 for a wrong value
    int64_t clocks;        //  clocks it finished
    char error[512];
} trainer_t;

static void *
s_train (void *arg)
{
    trainer_t *self = arg;
    ps_worker_t *worker = ps_test_worker (self->endpoint, self->rank, 2, PS_TEST_WAIT_MS);
    if (!worker) {
        self->status = PS_ECONNECT;
        return NULL;
    }
    float values[16] = {0}, gradient[16];
    for (int i = 0; i < 16; i++)
        gradient[i] = 1.0f;
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 0.5f};
    int status = ps_worker_init (worker, "shared", 16, NULL, &sgd);
    ps_tensor_t push = {"shared", gradient, 16};
    ps_tensor_t pull = {"shared", values, 16};
    int after = 0;
    while (status == PS_OK && after < STEPS_AFTER) {
        if (atomic_load (self->attacked))
            after++;
        status = ps_worker_push (worker, &push, 1, 1);
        if (status == PS_OK)
            status = ps_worker_clock (worker);
        if (status == PS_OK)
            status = ps_worker_pull (worker, &pull, 1);
        if (status == PS_OK)
            self->clocks++;
        if (status == PS_OK && values[0] != -0.5f * (float)self->clocks)
            status = -1000;
    }
    self->status = status;
    snprintf (self->error, sizeof self->error, "%s",
              status == -1000 ? "pulled a value no clock of the job gives"
                              : ps_worker_error (worker));
    ps_worker_close (&worker);
    return NULL;
}

//  Start ranks 0 and 1 on endpoint; return once both are live
static void
s_start_job (trainer_t trainers[2], pthread_t threads[2], const char *endpoint,
             atomic_bool *attacked, ps_test_raw_t *observer)
{
    for (uint32_t rank = 0; rank < 2; rank++) {
        trainers[rank] = (trainer_t){.endpoint = endpoint, .rank = rank, .attacked = attacked};
        pthread_create (&threads[rank], NULL, s_train, &trainers[rank]);
    }
    s_wait_info (observer, "live", 2);
    s_wait_info (observer, "min_clock", 3);
}

//  Both workers finished the job
static void
s_assert_job_finished (trainer_t trainers[2], pthread_t threads[2])
{
    for (uint32_t rank = 0; rank < 2; rank++) {
        pthread_join (threads[rank], NULL);
        cr_assert_eq (trainers[rank].status, PS_OK, "rank %u: %s (%s)", rank,
                      ps_strerror (trainers[rank].status), trainers[rank].error);
        cr_assert_geq (trainers[rank].clocks, STEPS_AFTER);
    }
}

Test (takeover, one_hello_cannot_stop_the_job, .timeout = 60)
{
    //  A psbroker for two workers, and both training
    char *args[] = {"--workers", "2", "--no-tap", NULL};
    char endpoint[128], out[4096];
    ps_test_child_t broker = ps_test_psbroker (args, endpoint, sizeof endpoint, out, sizeof out);
    ps_test_raw_t attacker;
    ps_test_raw_open (&attacker, endpoint);
    atomic_bool attacked = false;
    trainer_t trainers[2];
    pthread_t threads[2];
    s_start_job (trainers, threads, endpoint, &attacked, &attacker);

    //  One HELLO for rank 0 with weight = world took every rank; now it is
    //  refused, and so is one for either rank alone
    ps_envelope_t envelope;
    Psmq__Hello hello;
    s_hello_envelope (&envelope, &hello, 0, 2, 2, 0);
    s_assert_error (ps_test_raw_request (&attacker, &envelope), PSMQ__ERR_CODE__ERR_RANK,
                    "rank 0 is live on another connection", "every rank through the weight");
    for (uint32_t rank = 0; rank < 2; rank++) {
        s_hello_envelope (&envelope, &hello, rank, 1, 2, 0);
        s_assert_error (ps_test_raw_request (&attacker, &envelope), PSMQ__ERR_CODE__ERR_RANK,
                        "is live on another connection", "one rank");
    }
    cr_assert_eq (s_info_number (&attacker, "live"), 2);
    atomic_store (&attacked, true);
    s_assert_job_finished (trainers, threads);

    //  The broker said so in its log, with where the HELLO came from
    ps_test_raw_close (&attacker);
    kill (broker.pid, SIGTERM);
    cr_assert_eq (ps_test_wait_pid (broker.pid, 10000), 0, "psbroker did not exit cleanly");
    char err[16384] = "";
    ps_test_read_until (broker.err, "served", err, sizeof err, PS_TEST_WAIT_MS);
    cr_assert (strstr (err, "rejected hello from an unregistered peer at 127.0.0.1:"), "%s", err);
    cr_assert (strstr (err, "rank 0 is live on another connection; a worker coming back must "
                            "show its session"),
               "%s", err);
    cr_assert (strstr (err, ", 3 rejected"), "the summary counts the refusals: %s", err);
    close (broker.out);
    close (broker.err);
}

//  Attacking connections in the flood
#define FLOOD 500

Test (takeover, a_flood_of_hellos_takes_no_rank, .timeout = 90)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 0, 0, endpoint, sizeof endpoint);
    ps_test_raw_t observer;
    ps_test_raw_open (&observer, endpoint);
    atomic_bool attacked = false;
    trainer_t trainers[2];
    pthread_t threads[2];
    s_start_job (trainers, threads, endpoint, &attacked, &observer);

    //  500 connections, each a HELLO for a random rank (or both) with a
    //  random session, all sent before any reply is read
    void *context = zmq_ctx_new ();
    zmq_ctx_set (context, ZMQ_MAX_SOCKETS, FLOOD + 16);
    void **dealers = calloc (FLOOD, sizeof *dealers);
    cr_assert (dealers);
    uint64_t seed = (uint64_t)zclock_usecs ();
    for (int i = 0; i < FLOOD; i++) {
        dealers[i] = zmq_socket (context, ZMQ_DEALER);
        cr_assert (dealers[i]);
        int linger = 0;
        zmq_setsockopt (dealers[i], ZMQ_LINGER, &linger, sizeof linger);
        cr_assert_eq (zmq_connect (dealers[i], endpoint), 0);
        uint64_t draw = ps_splitmix64 (&seed);
        uint32_t weight = draw % 3 == 0 ? 2 : 1;
        uint32_t rank = weight == 2 ? 0 : (uint32_t)(draw >> 8) % 2;
        ps_envelope_t envelope;
        Psmq__Hello hello;
        s_hello_envelope (&envelope, &hello, rank, weight, 2, draw % 2 ? ps_splitmix64 (&seed) : 0);
        zmq_msg_t msg;
        cr_assert_eq (ps_codec_encode (&envelope, &msg), 0);
        cr_assert_neq (zmq_msg_send (&msg, dealers[i], 0), -1);
    }
    //  Every one refused
    ps_codec_t *codec = ps_codec_new ();
    int refused = 0;
    for (int i = 0; i < FLOOD; i++) {
        zmq_pollitem_t item = {dealers[i], 0, ZMQ_POLLIN, 0};
        cr_assert_eq (zmq_poll (&item, 1, PS_TEST_WAIT_MS), 1, "connection %d got no reply", i);
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        cr_assert_neq (zmq_msg_recv (&msg, dealers[i], 0), -1);
        ps_problem_t problem;
        ps_envelope_t *reply =
            ps_codec_decode (codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
        s_assert_error (reply, PSMQ__ERR_CODE__ERR_RANK, "is live on another connection",
                        "a HELLO of the flood");
        refused++;
        zmq_msg_close (&msg);
        zmq_close (dealers[i]);
    }
    cr_assert_eq (refused, FLOOD);
    cr_assert_eq (s_info_number (&observer, "live"), 2);
    cr_assert_geq (s_info_number (&observer, "rejected"), FLOOD);
    atomic_store (&attacked, true);
    s_assert_job_finished (trainers, threads);
    free (dealers);
    ps_codec_destroy (&codec);
    zmq_ctx_term (context);
    ps_test_raw_close (&observer);
    ps_broker_destroy (&broker);
}

// ------------------------------------------------- reading, rolling back

//  Send envelope (with one tensor frame of count floats when count > 0)
//  and receive the reply: its envelope, and how many frames followed it
static ps_envelope_t *
s_request_frames (ps_test_raw_t *peer, const ps_envelope_t *envelope, size_t count, size_t *frames)
{
    float data[16] = {0};
    cr_assert (count <= 16);
    ps_test_raw_send (peer, envelope, count ? ZMQ_SNDMORE : 0);
    if (count)
        zmq_send (peer->dealer, data, count * sizeof (float), 0);
    zmq_pollitem_t item = {peer->dealer, 0, ZMQ_POLLIN, 0};
    cr_assert_eq (zmq_poll (&item, 1, PS_TEST_WAIT_MS), 1, "no reply");
    //  The envelope frame outlives this call: its decoded reply points
    //  into the codec, which copied what it needs, but keep it simple
    static zmq_msg_t first;
    static bool kept;
    if (kept)
        zmq_msg_close (&first);
    zmq_msg_init (&first);
    kept = true;
    cr_assert_neq (zmq_msg_recv (&first, peer->dealer, 0), -1);
    *frames = 0;
    int more = zmq_msg_more (&first);
    while (more) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        zmq_msg_recv (&frame, peer->dealer, 0);
        more = zmq_msg_more (&frame);
        zmq_msg_close (&frame);
        (*frames)++;
    }
    ps_problem_t problem;
    return ps_codec_decode (peer->codec, zmq_msg_data (&first), zmq_msg_size (&first), &problem);
}

Test (takeover, nothing_is_read_or_made_without_registering, .timeout = 30)
{
    //  A job with a key, and a stranger who never says HELLO
    ps_test_job_t job = ps_test_job (2, 0, 0);
    float initial[4] = {1, 2, 3, 4};
    cr_assert_eq (ps_worker_init (job.worker, "w", 4, initial, NULL), PS_OK);
    ps_test_raw_t stranger;
    ps_test_raw_open (&stranger, job.endpoint);
    ps_slice_t slice = PSMQ__SLICE__INIT;
    slice.key = "w";
    ps_slice_t *slices[] = {&slice};

    //  PULL: refused, and no tensor frame comes with the refusal
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__PULL, 0, 1);
    envelope.slices = slices;
    envelope.n_slices = 1;
    size_t frames = 99;
    ps_envelope_t *reply = s_request_frames (&stranger, &envelope, 0, &frames);
    s_assert_error (reply, PSMQ__ERR_CODE__ERR_NOT_REGISTERED, "before hello", "PULL");
    cr_assert_eq (frames, 0, "a refused PULL carried %zu frames", frames);
    //  INIT of a new key and of the job's key: refused, neither made nor changed
    for (int i = 0; i < 2; i++) {
        slice.key = i ? "w" : "planted";
        slice.count = slice.total = 4;
        ps_test_envelope (&envelope, PSMQ__MSG_TYPE__INIT, 0, 2);
        envelope.slices = slices;
        envelope.n_slices = 1;
        reply = s_request_frames (&stranger, &envelope, 4, &frames);
        s_assert_error (reply, PSMQ__ERR_CODE__ERR_NOT_REGISTERED, "before hello", "INIT");
    }
    //  PUSH, CLOCK, BYE: refused too
    slice.total = 0;
    int types[] = {PSMQ__MSG_TYPE__PUSH, PSMQ__MSG_TYPE__CLOCK, PSMQ__MSG_TYPE__BYE};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        ps_test_envelope (&envelope, types[i], 0, 3);
        bool push = types[i] == PSMQ__MSG_TYPE__PUSH;
        envelope.slices = push ? slices : NULL;
        envelope.n_slices = push ? 1 : 0;
        envelope.grad_count = 1;
        reply = s_request_frames (&stranger, &envelope, push ? 4 : 0, &frames);
        s_assert_error (reply, PSMQ__ERR_CODE__ERR_NOT_REGISTERED, "before hello",
                        ps_codec_type_name (types[i]));
    }
    //  The key is as rank 0 made it, and nothing else was made
    float values[4];
    ps_tensor_t pull = {"w", values, 4};
    cr_assert_eq (ps_worker_pull (job.worker, &pull, 1), PS_OK);
    ps_test_assert_near (values, initial, 4, 0, "w");
    char *json = s_info (&stranger);
    cr_assert_eq (ps_test_json_number (json, "keys", false), 1, "%s", json);
    free (json);

    //  INFO stays open but names no session: a registered connection's
    //  session, in decimal or hex, is nowhere in it
    ps_test_raw_t holder;
    ps_test_raw_open (&holder, job.endpoint);
    Psmq__Hello hello;
    s_hello_envelope (&envelope, &hello, 1, 1, 2, 0);
    reply = ps_test_raw_request (&holder, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__HELLO && reply->hello);
    uint64_t session = reply->hello->session;
    uint64_t incarnation = reply->hello->incarnation;
    json = s_info (&stranger);
    char decimal[32], hex[32];
    snprintf (decimal, sizeof decimal, "%" PRIu64, session);
    snprintf (hex, sizeof hex, "%" PRIx64, session);
    cr_assert (!strstr (json, decimal) && !strstr (json, hex), "INFO shows a session: %s", json);
    free (json);

    //  A rollback asked by a stranger, with the incarnation INFO shows, is
    //  refused before anything is rolled back; the registered connection
    //  with its session gets as far as the rollback (which this broker,
    //  without checkpoints, cannot make)
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__BYE, 1, 2);
    reply = ps_test_raw_request (&holder, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__BYE);
    ps_test_raw_close (&holder);
    s_hello_envelope (&envelope, &hello, 1, 1, 2, 0);
    hello.rollback_incarnation = incarnation;
    hello.rollback_to = 0;
    s_assert_error (ps_test_raw_request (&stranger, &envelope), PSMQ__ERR_CODE__ERR_NOT_REGISTERED,
                    "a rollback is asked by a worker registered here", "a stranger's rollback");
    ps_test_raw_open (&holder, job.endpoint);
    s_hello_envelope (&envelope, &hello, 1, 1, 2, 0);
    reply = ps_test_raw_request (&holder, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__HELLO && reply->hello);
    session = reply->hello->session;
    s_hello_envelope (&envelope, &hello, 1, 1, 2, session ^ 1);
    hello.rollback_incarnation = incarnation;
    s_assert_error (ps_test_raw_request (&holder, &envelope), PSMQ__ERR_CODE__ERR_NOT_REGISTERED,
                    "shows another session", "a rollback with a wrong session");
    s_hello_envelope (&envelope, &hello, 1, 1, 2, session);
    hello.rollback_incarnation = incarnation;
    s_assert_error (ps_test_raw_request (&holder, &envelope), PSMQ__ERR_CODE__ERR_GROUP,
                    "without --checkpoint", "the registered worker's rollback");
    ps_test_raw_close (&holder);
    ps_test_raw_close (&stranger);
    ps_test_job_stop (&job);
}

// ------------------------------------------------------------ poisoning

Test (takeover, an_init_before_the_job_fails_the_job_loudly, .timeout = 90)
{
    //  Before the job, somebody registers, creates one of psworker's keys
    //  (mlp.b2: 10 classes) at 1e6 with lr 1000, and leaves
    char *args[] = {"--workers", "1", "--no-tap", NULL};
    char endpoint[128], out[4096];
    ps_test_child_t broker = ps_test_psbroker (args, endpoint, sizeof endpoint, out, sizeof out);
    ps_test_raw_t attacker;
    ps_test_raw_open (&attacker, endpoint);
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 1;
    ps_test_raw_hello (&attacker, 0, &hello);
    ps_slice_t slice = PSMQ__SLICE__INIT;
    slice.key = "mlp.b2";
    slice.count = slice.total = 10;
    ps_slice_t *slices[] = {&slice};
    Psmq__Optim optim = PSMQ__OPTIM__INIT;
    optim.kind = PSMQ__OPTIM_KIND__OPT_ADAM;
    optim.lr = 1000;
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__INIT, 0, 2);
    envelope.slices = slices;
    envelope.n_slices = 1;
    envelope.optim = &optim;
    float poison[10];
    for (int i = 0; i < 10; i++)
        poison[i] = 1e6f;
    ps_test_raw_send (&attacker, &envelope, ZMQ_SNDMORE);
    zmq_send (attacker.dealer, poison, sizeof poison, 0);
    ps_envelope_t *reply = ps_test_raw_receive (&attacker);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__INIT, "the attacker's INIT was refused");
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__BYE, 0, 3);
    reply = ps_test_raw_request (&attacker, &envelope);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__BYE);
    ps_test_raw_close (&attacker);

    //  The real job (Adam, lr 0.002) does not train on it: psworker exits
    //  non-zero with the broker's words, naming the key and both rates
    char path[512];
    ps_test_path ("poisoned.out", path, sizeof path);
    pid_t worker = ps_test_psworker_train (endpoint, 0, 1, 1, 1, NULL, path);
    int status = ps_test_wait_pid (worker, 60000);
    char *text = ps_test_slurp (path);
    cr_assert (status != 0 && status != -1, "psworker exited %d: %s", status, text);
    cr_assert (strstr (text, "key 'mlp.b2' exists with lr 1000") &&
                   strstr (text, "this INIT asks lr 0.002"),
               "%s", text);
    free (text);
    kill (broker.pid, SIGTERM);
    cr_assert_eq (ps_test_wait_pid (broker.pid, 10000), 0, "psbroker did not exit cleanly");
    char err[16384] = "";
    ps_test_read_until (broker.err, "served", err, sizeof err, PS_TEST_WAIT_MS);
    cr_assert (strstr (err, "key 'mlp.b2' exists with lr 1000"), "%s", err);
    close (broker.out);
    close (broker.err);
}
