/*  =========================================================================
    test_robustness - the broker under bad input and dead peers

    A raw DEALER (ps_test_raw_t) speaks envelopes built by hand, as a
    client in another language would, and gets an ERROR with the exact
    code for each bad message; the first test shows it with a clock that
    goes backwards. Meanwhile a real worker beside it completes its work;
    a worker that goes silent is evicted and nobody waits for it; a reply
    of too many frames is refused by the library.

    usage: build/test_robustness [--filter 'robustness/<test>'] [--verbose]
    ========================================================================= */

#include "ps_codec.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <math.h>
#include <czmq.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

//  The next reply but the grants of a push in parts (PUSH replies with
//  `more`, which the broker sends as its budget allows while one is open)
static ps_envelope_t *
s_receive_past_grants (ps_test_raw_t *peer)
{
    ps_envelope_t *reply;
    do
        reply = ps_test_raw_receive (peer);
    while (reply && reply->type == PSMQ__MSG_TYPE__PUSH && reply->more);
    return reply;
}

//  The next reply must be an ERROR with code, and say why
static void
s_expect_error (ps_test_raw_t *peer, int code, const char *what)
{
    ps_envelope_t *reply = s_receive_past_grants (peer);
    cr_assert (reply, "%s: no reply", what);
    cr_assert_eq (reply->type, PSMQ__MSG_TYPE__ERROR, "%s: got %s", what,
                  ps_codec_type_name (reply->type));
    cr_assert (reply->error);
    cr_assert_eq (reply->error->code, code, "%s: code %s (%s)", what,
                  ps_codec_error_name (reply->error->code), reply->error->message);
    cr_assert (strlen (reply->error->message) > 0);
}

Test (robustness, clock_backwards_and_wrong_push_clock_are_refused, .timeout = 30)
{
    //  A broker, and a peer that speaks envelopes built by hand: HELLO as
    //  rank 0 of 1, then the CLOCK that finishes clock 0
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, -1, 0, endpoint, sizeof endpoint);
    ps_test_raw_t peer;
    ps_test_raw_open (&peer, endpoint);
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 1;
    ps_test_raw_hello (&peer, 0, &hello);
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__CLOCK, 0, 2);
    envelope.clock = 0;
    ps_envelope_t *reply = ps_test_raw_request (&peer, &envelope);
    cr_assert_eq (reply->type, PSMQ__MSG_TYPE__CLOCK);
    cr_assert_eq (reply->clock, 1);

    //  Finishing clock 0 again goes backwards
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_CLOCK, "clock backwards");
    //  Skipping ahead is refused too
    envelope.clock = 5;
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_CLOCK, "clock skipping ahead");

    //  A push must carry the worker's clock, now 1: one for clock 0 is late
    ps_slice_t slice = PSMQ__SLICE__INIT;
    slice.key = "w";
    slice.count = 1;
    slice.total = 1;
    ps_slice_t *slices[] = {&slice};
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__INIT, 0, 3);
    envelope.slices = slices;
    envelope.n_slices = 1;
    float value = 0;
    ps_test_raw_send (&peer, &envelope, ZMQ_SNDMORE);
    zmq_send (peer.dealer, &value, sizeof value, 0);
    reply = ps_test_raw_receive (&peer);
    cr_assert (reply && reply->type == PSMQ__MSG_TYPE__INIT, "init refused");
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__PUSH, 0, 4);
    envelope.slices = slices;
    envelope.n_slices = 1;
    envelope.grad_count = 1;
    envelope.clock = 0;
    ps_test_raw_send (&peer, &envelope, ZMQ_SNDMORE);
    zmq_send (peer.dealer, &value, sizeof value, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_CLOCK, "push for a past clock");
    ps_test_raw_close (&peer);
    ps_broker_destroy (&broker);
}

// ------------------------------------------------------------ good worker

typedef struct {
    const char *endpoint;
    uint32_t rank;
    uint32_t world;
    int steps;
    int status;
} steady_args_t;

static void *
s_steady_worker (void *arg)
{
    steady_args_t *args = arg;
    ps_worker_t *worker = ps_test_worker (args->endpoint, args->rank, args->world, PS_TEST_WAIT_MS);
    if (!worker) {
        args->status = -1;
        return NULL;
    }
    float values[16] = {0}, gradient[16];
    for (int i = 0; i < 16; i++)
        gradient[i] = 1.0f;
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 0.5f};
    int status = ps_worker_init (worker, "shared", 16, NULL, &sgd);
    ps_tensor_t push = {"shared", gradient, 16};
    ps_tensor_t pull = {"shared", values, 16};
    for (int step = 0; step < args->steps && !status; step++) {
        status = ps_worker_push (worker, &push, 1, 1);
        if (!status)
            status = ps_worker_clock (worker);
        if (!status)
            status = ps_worker_pull (worker, &pull, 1);
    }
    //  With one worker under BSP every step moved each value by -0.5
    if (!status && args->world == 1 && values[0] != -0.5f * args->steps)
        status = -1000;
    args->status = status;
    ps_worker_close (&worker);
    return NULL;
}

Test (robustness, garbage_gets_errors_while_a_worker_completes, .timeout = 60)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    steady_args_t good = {endpoint, 0, 1, 200, -99};
    pthread_t thread;
    pthread_create (&thread, NULL, s_steady_worker, &good);

    ps_test_raw_t peer;
    ps_test_raw_open (&peer, endpoint);
    ps_envelope_t envelope;

    //  Bytes that are no protobuf at all
    zmq_send (peer.dealer, "\xff\xff\xff\xff\xff", 5, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_MALFORMED, "garbage bytes");
    //  An empty message
    zmq_send (peer.dealer, "", 0, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_VERSION, "empty frame");
    //  Another protocol version
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__INFO, 0, 1);
    envelope.version = 99;
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_VERSION, "version 99");
    //  An unknown type
    ps_test_envelope (&envelope, 42, 0, 2);
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_TYPE, "type 42");
    //  A push before hello
    float data[4] = {0};
    ps_slice_t slice = PSMQ__SLICE__INIT;
    ps_slice_t *slices[] = {&slice};
    slice.key = "shared";
    slice.count = 4;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__PUSH, 0, 3);
    envelope.n_slices = 1;
    envelope.slices = slices;
    ps_test_raw_send (&peer, &envelope, ZMQ_SNDMORE);
    zmq_send (peer.dealer, data, sizeof data, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_NOT_REGISTERED, "push before hello");
    //  Frames that do not match their slices
    ps_test_raw_send (&peer, &envelope, ZMQ_SNDMORE);
    zmq_send (peer.dealer, data, 3, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_SIZE, "3-byte frame for 4 floats");
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_SIZE, "missing frame");
    //  A rank outside the world
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 1;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__HELLO, 7, 4);
    envelope.hello = &hello;
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_RANK, "rank 7 of 1");
    //  A group this lone broker is not part of, and a group list that does
    //  not match the size it claims
    hello = (Psmq__Hello)PSMQ__HELLO__INIT;
    hello.world_size = 1;
    hello.shard = 1;
    hello.shards = 2;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__HELLO, 0, 40);
    envelope.hello = &hello;
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_GROUP, "shard 1 of 2");
    char *three[] = {"tcp://a:1", "tcp://b:2", "tcp://c:3"};
    hello.shard = 0;
    hello.shards = 1;
    hello.group = three;
    hello.n_group = 3;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__HELLO, 0, 41);
    envelope.hello = &hello;
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_GROUP, "3 endpoints for a group of 1");
    //  A message of far too many frames
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__INFO, 0, 5);
    ps_test_raw_send (&peer, &envelope, ZMQ_SNDMORE);
    for (int i = 0; i < PS_MAX_SLICES + 10; i++)
        zmq_send (peer.dealer, "x", 1, ZMQ_SNDMORE);
    zmq_send (peer.dealer, "x", 1, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_TOO_LARGE, "too many frames");
    //  A worker may not send replies
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__PULL, 0, 6);
    envelope.reply = true;
    ps_test_raw_send (&peer, &envelope, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_TYPE, "reply from a worker");

    //  After all that the broker still answers INFO
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__INFO, 0, 7);
    ps_test_raw_send (&peer, &envelope, 0);
    ps_envelope_t *info = ps_test_raw_receive (&peer);
    cr_assert (info && info->type == PSMQ__MSG_TYPE__INFO);
    cr_assert_eq (ps_test_json_number (info->info, "rejected", false), 12,
                  "every message above: %s", info->info);

    pthread_join (thread, NULL);
    cr_assert_eq (good.status, PS_OK, "the good worker failed: %d", good.status);
    ps_test_raw_close (&peer);
    ps_broker_destroy (&broker);
}

//  Send a HELLO as rank and then never speak again: as good as killed
static void
s_hello_then_silence (ps_test_raw_t *peer, const char *endpoint, uint32_t rank, uint32_t world)
{
    ps_test_raw_open (peer, endpoint);
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = world;
    ps_test_raw_hello (peer, rank, &hello);
}

Test (robustness, silent_worker_is_evicted_and_bsp_goes_on, .timeout = 60)
{
    char endpoint[64];
    //  Evict after 1 s of silence: the live workers heartbeat every 250 ms,
    //  and a loaded machine may hold one back for some of that
    ps_broker_t *broker = ps_test_broker (3, 0, 1000, endpoint, sizeof endpoint);
    //  From before the HELLO: the broker cannot evict it sooner than 1 s
    //  after this
    int64_t start = zclock_mono ();
    ps_test_raw_t dead;
    s_hello_then_silence (&dead, endpoint, 2, 3);

    steady_args_t args[2] = {{endpoint, 0, 3, 10, -99}, {endpoint, 1, 3, 10, -99}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create (&threads[i], NULL, s_steady_worker, &args[i]);
    for (int i = 0; i < 2; i++) {
        pthread_join (threads[i], NULL);
        cr_assert_eq (args[i].status, PS_OK, "worker %d: %s", i, ps_strerror (args[i].status));
    }
    int64_t elapsed = zclock_mono () - start;
    //  They waited for the eviction (a clock that waited for their clock
    //  timeout instead would have failed them)
    cr_assert (elapsed >= 900, "took %lld ms", (long long)elapsed);

    char *json = ps_broker_info (broker);
    cr_assert_eq (ps_test_json_number (json, "evicted", false), 1, "%s", json);
    free (json);

    //  The evicted rank may rejoin and continues from the job's clock
    ps_worker_t *back = ps_test_worker (endpoint, 2, 3, PS_TEST_WAIT_MS);
    cr_assert (back);
    cr_assert_eq (ps_worker_current_clock (back), 10);
    ps_worker_close (&back);
    ps_test_raw_close (&dead);
    ps_broker_destroy (&broker);
}

Test (robustness, heartbeats_keep_a_busy_worker_alive, .timeout = 30)
{
    //  Evict after 1 s of silence; the worker is told to heartbeat every
    //  250 ms, which a loaded machine may hold back for some of that
    ps_test_job_t job = ps_test_job (1, 0, 1000);
    //  "Compute" for two and a half timeouts without calling the library
    zclock_sleep (2500);
    cr_assert_eq (ps_worker_clock (job.worker), PS_OK, "%s", ps_worker_error (job.worker));
    char *json = ps_broker_info (job.broker);
    cr_assert_eq (ps_test_json_number (json, "evicted", false), 0, "%s", json);
    free (json);
    ps_test_job_stop (&job);
}

Test (robustness, evicted_worker_is_told_to_hello_again, .timeout = 30)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, -1, 300, endpoint, sizeof endpoint);
    ps_test_raw_t dead;
    s_hello_then_silence (&dead, endpoint, 0, 1);
    //  Until the broker has evicted it
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    bool evicted = false;
    while (!evicted && zclock_mono () < deadline) {
        zclock_sleep (50);
        char *json = ps_broker_info (broker);
        evicted = ps_test_json_number (json, "evicted", false) == 1;
        free (json);
    }
    cr_assert (evicted, "not evicted after %d ms of silence", PS_TEST_WAIT_MS);
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__CLOCK, 0, 2);
    ps_test_raw_send (&dead, &envelope, 0);
    s_expect_error (&dead, PSMQ__ERR_CODE__ERR_NOT_REGISTERED, "clock after eviction");
    ps_test_raw_close (&dead);
    ps_broker_destroy (&broker);
}

//  A fake broker: answer one request with a valid INFO reply followed by
//  more frames than any reply may carry
static void *
s_flooding_broker (void *arg)
{
    void *router = arg;
    zmq_pollitem_t items[] = {{router, 0, ZMQ_POLLIN, 0}};
    if (zmq_poll (items, 1, PS_TEST_WAIT_MS) <= 0)
        return NULL;
    zmq_msg_t id, request;
    zmq_msg_init (&id);
    zmq_msg_init (&request);
    zmq_msg_recv (&id, router, 0);
    zmq_msg_recv (&request, router, 0);
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem;
    ps_envelope_t *asked =
        ps_codec_decode (codec, zmq_msg_data (&request), zmq_msg_size (&request), &problem);
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, asked);
    reply.info = "{}";
    zmq_msg_t encoded;
    ps_codec_encode (&reply, &encoded);
    zmq_msg_send (&id, router, ZMQ_SNDMORE);
    zmq_msg_send (&encoded, router, ZMQ_SNDMORE);
    for (int i = 0; i < PS_MAX_SLICES + 100; i++)
        zmq_send (router, "x", 1, ZMQ_SNDMORE);
    zmq_send (router, "x", 1, 0);
    zmq_msg_close (&request);
    ps_codec_destroy (&codec);
    return NULL;
}

Test (robustness, a_reply_of_too_many_frames_is_refused, .timeout = 30)
{
    void *context = zmq_ctx_new ();
    void *router = zmq_socket (context, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt (router, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq (zmq_bind (router, "tcp://127.0.0.1:*"), 0);
    char endpoint[64];
    size_t size = sizeof endpoint;
    zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, endpoint, &size);
    pthread_t thread;
    pthread_create (&thread, NULL, s_flooding_broker, router);
    char *json = NULL;
    int64_t started = zclock_mono ();
    int status = ps_worker_query_info (endpoint, 10000, &json);
    pthread_join (thread, NULL);
    //  Refused as it comes, not left to the timeout
    cr_assert_eq (status, PS_EPROTO, "a reply of %d frames: %s", PS_MAX_SLICES + 102,
                  ps_strerror (status));
    cr_assert_lt (zclock_mono () - started, 9000);
    cr_assert_null (json);
    zmq_close (router);
    zmq_ctx_term (context);
}

// ------------------------------------------------------------ pushes in parts

//  One part of a push of key "w" from rank 0 at clock 0: count values from
//  offset, more parts to follow or not
static void
s_send_part (ps_test_raw_t *peer, uint64_t seq, uint64_t offset, const float *values,
             uint64_t count, bool more)
{
    ps_test_raw_push (peer, 0, seq, 0, "w", offset, values, count, more);
}

//  The next reply but grants must be type's for seq
static void
s_expect_reply (ps_test_raw_t *peer, int type, uint64_t seq)
{
    ps_envelope_t *reply = s_receive_past_grants (peer);
    cr_assert (reply, "no reply to seq %lu", (unsigned long)seq);
    cr_assert_eq (reply->type, type, "seq %lu: %s (%s)", (unsigned long)reply->seq,
                  ps_codec_type_name (reply->type), reply->error ? reply->error->message : "");
    cr_assert_eq (reply->seq, seq);
}

//  Ask for room for push seq of key "w" (rank 0, clock 0), and take the
//  grants: a part's worth of the default budget each, and no more than a
//  connection may hold
static void
s_ask (ps_test_raw_t *peer, uint64_t seq)
{
    int grants = PS_DEFAULT_PUSH_BUDGET / PS_PUSH_PART_BYTES;
    if (grants > PS_PUSH_WINDOW)
        grants = PS_PUSH_WINDOW;
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__PUSH, 0, seq);
    envelope.grad_count = 1;
    envelope.more = true;
    ps_test_raw_send (peer, &envelope, 0);
    for (int grant = 0; grant < grants; grant++) {
        ps_envelope_t *reply = ps_test_raw_receive (peer);
        cr_assert (reply, "no grant %d for seq %lu", grant, (unsigned long)seq);
        cr_assert (reply->type == PSMQ__MSG_TYPE__PUSH && reply->more && reply->seq == seq,
                   "%s seq %lu more %d instead of grant %d for seq %lu",
                   ps_codec_type_name (reply->type), (unsigned long)reply->seq, reply->more, grant,
                   (unsigned long)seq);
    }
}

//  The values of "w" as a worker pulls them
static void
s_expect_values (ps_worker_t *worker, float a, float b, float c, float d)
{
    float values[4];
    ps_tensor_t tensor = {"w", values, 4};
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK);
    float want[4] = {a, b, c, d};
    ps_test_assert_near (values, want, 4, 0, "w");
}

Test (robustness, a_push_in_parts_is_acked_at_its_end_and_refused_once, .timeout = 30)
{
    //  ASP, a worker (rank 1) that made "w" (SGD at rate 1) and reads it,
    //  and a peer (rank 0) that pushes in parts by hand
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, -1, 0, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 1, 2, PS_TEST_WAIT_MS);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1};
    cr_assert_eq (ps_worker_init (worker, "w", 4, NULL, &sgd), PS_OK);
    ps_test_raw_t peer;
    ps_test_raw_open (&peer, endpoint);
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 2;
    ps_test_raw_hello (&peer, 0, &hello);
    const float ones[4] = {1, 1, 1, 1};

    //  Two parts, one ack: the ask gets its grants, the first part no
    //  answer, and the INFO behind it is answered before the ack
    s_ask (&peer, 10);
    s_send_part (&peer, 10, 0, ones, 2, true);
    ps_envelope_t info;
    ps_test_envelope (&info, PSMQ__MSG_TYPE__INFO, 0, 11);
    ps_test_raw_send (&peer, &info, 0);
    s_expect_reply (&peer, PSMQ__MSG_TYPE__INFO, 11);
    s_send_part (&peer, 10, 2, ones, 2, false);
    s_expect_reply (&peer, PSMQ__MSG_TYPE__PUSH, 10);
    s_expect_values (worker, -1, -1, -1, -1);

    //  A part that skips elements is refused, once: the push's last part
    //  gets no second answer. Its first part was applied, as parts are when
    //  they come, but a key is published only at the end of a push
    s_ask (&peer, 12);
    s_send_part (&peer, 12, 0, ones, 2, true);
    s_send_part (&peer, 12, 3, ones, 1, true);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_SIZE, "a part that skips elements");
    s_send_part (&peer, 12, 2, ones, 2, false);
    ps_test_envelope (&info, PSMQ__MSG_TYPE__INFO, 0, 13);
    ps_test_raw_send (&peer, &info, 0);
    s_expect_reply (&peer, PSMQ__MSG_TYPE__INFO, 13);
    s_expect_values (worker, -1, -1, -1, -1);

    //  A last part that leaves the key unfinished is refused
    s_send_part (&peer, 14, 0, ones, 3, false);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_SIZE, "a push that ends inside its key");
    //  A push given up for another: the new one is taken whole, and its
    //  end publishes the first parts of pushes 12 and 15 too
    s_ask (&peer, 15);
    s_send_part (&peer, 15, 0, ones, 2, true);
    s_send_part (&peer, 16, 0, ones, 4, false);
    s_expect_reply (&peer, PSMQ__MSG_TYPE__PUSH, 16);
    s_expect_values (worker, -4, -4, -2, -2);

    //  A peer that leaves in the middle of a push: the broker goes on. The
    //  INFO's answer shows its part was taken before the worker's push,
    //  which comes on another connection
    s_ask (&peer, 17);
    s_send_part (&peer, 17, 0, ones, 2, true);
    ps_test_envelope (&info, PSMQ__MSG_TYPE__INFO, 0, 18);
    ps_test_raw_send (&peer, &info, 0);
    s_expect_reply (&peer, PSMQ__MSG_TYPE__INFO, 18);
    ps_test_raw_close (&peer);
    float grad[4] = {1, 1, 1, 1};
    ps_tensor_t push = {"w", grad, 4};
    cr_assert_eq (ps_worker_push (worker, &push, 1, 1), PS_OK);
    s_expect_values (worker, -6, -6, -3, -3);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (robustness, a_part_holding_a_nan_stops_its_push_and_fails_the_next_clock, .timeout = 30)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, -1, 0, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 1, 2, PS_TEST_WAIT_MS);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1};
    cr_assert_eq (ps_worker_init (worker, "w", 4, NULL, &sgd), PS_OK);
    ps_test_raw_t peer;
    ps_test_raw_open (&peer, endpoint);
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 2;
    ps_test_raw_hello (&peer, 0, &hello);
    const float ones[4] = {1, 1, 1, 1}, nan[1] = {NAN};

    //  Three parts, the second holding a NaN: the first is stepped into
    //  the next version, the second and third are not, and the push's end
    //  (skipped) publishes nothing
    s_ask (&peer, 20);
    s_send_part (&peer, 20, 0, ones, 2, true);
    s_send_part (&peer, 20, 2, nan, 1, true);
    s_send_part (&peer, 20, 3, ones, 1, false);
    s_expect_reply (&peer, PSMQ__MSG_TYPE__PUSH, 20);
    ps_envelope_t clock;
    ps_test_envelope (&clock, PSMQ__MSG_TYPE__CLOCK, 0, 21);
    clock.clock = 0;
    ps_test_raw_send (&peer, &clock, 0);
    s_expect_error (&peer, PSMQ__ERR_CODE__ERR_NONFINITE, "the clock after a NaN");
    s_expect_values (worker, 0, 0, 0, 0);
    //  The next push that ends the key publishes the first part with it
    float grad[4] = {1, 1, 1, 1};
    ps_tensor_t push = {"w", grad, 4};
    cr_assert_eq (ps_worker_push (worker, &push, 1, 1), PS_OK);
    s_expect_values (worker, -2, -2, -1, -1);
    ps_test_raw_close (&peer);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}
