/*  =========================================================================
    test_tap - the broker's tap (broker/ps_tap): a record for every
    request, reply, rejected message and event, published on an ipc://
    endpoint

    Usage, as pstap reads it: a SUB socket connects to
    ps_broker_tap_endpoint (or to the "tap" of the broker's INFO),
    subscribes to a topic ("" for all, "rep.push.1." for worker 1's push
    replies) and decodes each record with ps_codec_decode_tap. The first
    test follows one worker's session that way. Topics filter at the
    broker; a slow reader's losses are counted in later records.

    usage: build/test_tap [--filter 'tap/<test>'] [--verbose]
    ========================================================================= */

#include "ps_codec.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <string.h>

//  A broker and a reader of its tap
typedef struct {
    ps_broker_t *broker; //  ps_test_broker's
    char endpoint[64];   //  the broker's, for workers
    void *context;
    void *sub;         //  subscribed to the tap
    ps_codec_t *codec; //  decodes the records
} reader_t;

//  Start a broker for world workers at staleness, subscribe to topic on
//  its tap (a receive queue of hwm records, or the default when 0) and
//  wait until the broker counts the subscription (INFO), so that no
//  record is missed
static void
s_reader_open (reader_t *reader, uint32_t world, int32_t staleness, const char *topic, int hwm)
{
    ps_broker_t *broker =
        ps_test_broker (world, staleness, 0, reader->endpoint, sizeof reader->endpoint);
    reader->broker = broker;
    reader->context = zmq_ctx_new ();
    reader->sub = zmq_socket (reader->context, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt (reader->sub, ZMQ_LINGER, &linger, sizeof linger);
    if (hwm)
        zmq_setsockopt (reader->sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    cr_assert_eq (zmq_connect (reader->sub, ps_broker_tap_endpoint (broker)), 0);
    zmq_setsockopt (reader->sub, ZMQ_SUBSCRIBE, topic, strlen (topic));
    reader->codec = ps_codec_new ();
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (zclock_mono () < deadline) {
        char *json = ps_broker_info (broker);
        bool counted = ps_test_json_number (json, "tap_subscriptions", false) > 0;
        free (json);
        if (counted)
            return;
        zclock_sleep (10);
    }
    cr_assert_fail ("the broker never saw the subscription");
}

static void
s_reader_close (reader_t *reader)
{
    zmq_close (reader->sub);
    zmq_ctx_term (reader->context);
    ps_codec_destroy (&reader->codec);
    ps_broker_destroy (&reader->broker);
}

//  A record that must come is waited for this long; one that must not
//  come, or the end of a stream, for QUIET_MS of silence
#define QUIET_MS 1000

//  Next record (timeout_ms at most); topic copied into topic when not NULL
static ps_tap_record_t *
s_next_within (reader_t *reader, char *topic, int timeout_ms)
{
    zmq_pollitem_t items[] = {{reader->sub, 0, ZMQ_POLLIN, 0}};
    if (zmq_poll (items, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t part;
    zmq_msg_init (&part);
    zmq_msg_recv (&part, reader->sub, 0);
    if (topic) {
        size_t size = zmq_msg_size (&part) < PS_TAP_TOPIC_MAX - 1 ? zmq_msg_size (&part)
                                                                  : PS_TAP_TOPIC_MAX - 1;
        memcpy (topic, zmq_msg_data (&part), size);
        topic[size] = 0;
    }
    zmq_msg_recv (&part, reader->sub, 0);
    ps_problem_t problem;
    ps_tap_record_t *record =
        ps_codec_decode_tap (reader->codec, zmq_msg_data (&part), zmq_msg_size (&part), &problem);
    cr_assert (record, "record does not decode: %s", problem.message);
    while (zmq_msg_more (&part))
        zmq_msg_recv (&part, reader->sub, 0);
    zmq_msg_close (&part);
    return record;
}

//  Next record, which must come; topic copied into topic when not NULL
static ps_tap_record_t *
s_next (reader_t *reader, char *topic)
{
    return s_next_within (reader, topic, PS_TEST_WAIT_MS);
}

//  Skip to the next record of this kind and type
static ps_tap_record_t *
s_expect (reader_t *reader, int kind, int type)
{
    for (int i = 0; i < 100; i++) {
        ps_tap_record_t *record = s_next (reader, NULL);
        cr_assert (record, "no %s %s record", ps_codec_tap_kind_name (kind),
                   ps_codec_type_name (type));
        if ((int)record->kind == kind && (type < 0 || (int)record->type == type))
            return record;
    }
    cr_assert_fail ("too many other records");
    return NULL;
}

Test (tap, usage_every_request_and_reply_is_a_record, .timeout = 30)
{
    //  A broker whose tap is on by default, at a private ipc:// endpoint,
    //  and a reader of every record (topic "")
    reader_t reader;
    s_reader_open (&reader, 1, 0, "", 0);
    cr_assert (strncmp (ps_broker_tap_endpoint (reader.broker), "ipc://", 6) == 0);

    //  A worker joins, pushes, clocks, pulls and leaves
    ps_worker_t *worker = ps_test_worker (reader.endpoint, 0, 1, 5000);
    //  TCP-level connection records (worker -1) come and go beside it
    ps_tap_record_t *record = s_expect (&reader, PSMQ__TAP_KIND__TAP_CONNECT, -1);
    while (record->worker == -1)
        record = s_expect (&reader, PSMQ__TAP_KIND__TAP_CONNECT, -1);
    cr_assert_eq (record->worker, 0);

    float values[3] = {1, 2, 3};
    cr_assert_eq (ps_worker_init (worker, "w", 3, values, NULL), PS_OK);
    ps_tensor_t tensor = {"w", values, 3};
    cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK);

    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH);
    uint64_t seq = record->seq;
    cr_assert_eq (record->worker, 0);
    cr_assert_eq (record->n_keys, 1);
    cr_assert_str_eq (record->keys[0]->key, "w");
    cr_assert_eq (record->keys[0]->count, 3);
    cr_assert_eq (record->bytes, 12);
    cr_assert_eq (record->total_us, 0, "requests carry no timing");
    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_REPLY, PSMQ__MSG_TYPE__PUSH);
    cr_assert_eq (record->seq, seq, "the reply pairs with its request");
    cr_assert_eq (record->status, PSMQ__ERR_CODE__ERR_NONE);
    cr_assert (record->total_us > 0);
    cr_assert (record->total_us == record->queued_us + record->aggregation_us + record->parked_us);

    cr_assert_eq (ps_worker_clock (worker), PS_OK);
    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_CLOCK, -1);
    cr_assert_eq (record->min_clock, 1);
    cr_assert_eq (record->slowest, 0);

    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK);
    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_REPLY, PSMQ__MSG_TYPE__PULL);
    cr_assert_eq (record->bytes, 12, "a pull reply counts the bytes it sends");
    cr_assert_eq (record->dropped, 0);

    ps_worker_close (&worker);
    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_DISCONNECT, -1);
    while (record->worker == -1)
        record = s_expect (&reader, PSMQ__TAP_KIND__TAP_DISCONNECT, -1);
    cr_assert_eq (record->worker, 0);
    s_reader_close (&reader);
}

Test (tap, a_push_that_finishes_the_clock_is_marked_so, .timeout = 30)
{
    reader_t reader;
    s_reader_open (&reader, 1, 0, "", 0);
    ps_worker_t *worker = ps_test_worker (reader.endpoint, 0, 1, 5000);
    float values[2] = {1, 2};
    cr_assert_eq (ps_worker_init (worker, "w", 2, values, NULL), PS_OK);
    ps_tensor_t tensor = {"w", values, 2};

    //  A plain push is not marked
    cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK);
    ps_tap_record_t *record = s_expect (&reader, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH);
    cr_assert (!record->clock_after);
    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_REPLY, PSMQ__MSG_TYPE__PUSH);
    cr_assert (!record->clock_after);
    cr_assert_eq (record->clock, 0);

    //  A push that finishes the clock: its request, and its one reply,
    //  which carries the new clock
    cr_assert_eq (ps_worker_push_clock (worker, &tensor, 1, 1), PS_OK);
    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH);
    cr_assert (record->clock_after, "the request is not marked");
    cr_assert_eq (record->clock, 0);
    uint64_t seq = record->seq;
    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_REPLY, PSMQ__MSG_TYPE__PUSH);
    cr_assert_eq (record->seq, seq);
    cr_assert (record->clock_after, "the reply is not marked");
    cr_assert_eq (record->clock, 1);
    ps_worker_close (&worker);
    s_reader_close (&reader);
}

Test (tap, rejected_garbage_is_a_record_with_its_reason, .timeout = 30)
{
    reader_t reader;
    s_reader_open (&reader, 1, 0, "rej.", 0);
    char topic[PS_TAP_TOPIC_MAX];
    ps_test_raw_t peer;
    ps_test_raw_open (&peer, reader.endpoint);
    zmq_send (peer.dealer, "\xff\xfe garbage", 10, 0);
    ps_tap_record_t *record = s_next (&reader, topic);
    cr_assert (record, "no reject record");
    cr_assert_eq (record->kind, PSMQ__TAP_KIND__TAP_REJECT);
    cr_assert_eq (record->status, PSMQ__ERR_CODE__ERR_MALFORMED);
    cr_assert (strstr (record->reason, "10 bytes"), "%s", record->reason);
    cr_assert_eq (record->worker, -1);
    cr_assert_str_eq (topic, "rej.none.-.");
    ps_test_raw_close (&peer);
    s_reader_close (&reader);
}

Test (tap, topics_filter_at_the_broker, .timeout = 30)
{
    reader_t reader;
    s_reader_open (&reader, 2, -1, "rep.push.1.", 0);
    ps_worker_t *workers[2] = {ps_test_worker (reader.endpoint, 0, 2, 5000),
                               ps_test_worker (reader.endpoint, 1, 2, 5000)};
    float values[2] = {0};
    ps_tensor_t tensor = {"k", values, 2};
    cr_assert_eq (ps_worker_init (workers[0], "k", 2, NULL, NULL), PS_OK);
    for (int round = 0; round < 3; round++)
        for (int rank = 0; rank < 2; rank++) {
            cr_assert_eq (ps_worker_push (workers[rank], &tensor, 1, 1), PS_OK);
            cr_assert_eq (ps_worker_pull (workers[rank], &tensor, 1), PS_OK);
        }
    char topic[PS_TAP_TOPIC_MAX];
    for (int i = 0; i < 3; i++) {
        ps_tap_record_t *record = s_next (&reader, topic);
        cr_assert (record, "record %d missing", i);
        cr_assert_str_eq (topic, "rep.push.1.");
        cr_assert_eq (record->worker, 1);
    }
    cr_assert_null (s_next_within (&reader, NULL, QUIET_MS),
                    "only worker 1's push replies may arrive");
    for (int rank = 0; rank < 2; rank++)
        ps_worker_close (&workers[rank]);
    s_reader_close (&reader);
}

Test (tap, a_slow_reader_sees_the_drop_count, .timeout = 60)
{
    reader_t reader;
    //  A tiny queue that the reader does not drain while the worker works
    s_reader_open (&reader, 1, -1, "", 10);
    ps_worker_t *worker = ps_test_worker (reader.endpoint, 0, 1, PS_TEST_WAIT_MS);
    float values[1] = {0};
    ps_tensor_t tensor = {"x", values, 1};
    cr_assert_eq (ps_worker_init (worker, "x", 1, NULL, NULL), PS_OK);
    for (int i = 0; i < 30000; i++)
        cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK);
    //  Work goes on although the tap drops: the broker never blocks on it
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK);
    char *json = ps_broker_info (reader.broker);
    cr_assert_gt (ps_test_json_number (json, "tap_dropped", false), 0, "%s", json);
    free (json);
    //  Records after the losses carry the count. Nothing the broker sends
    //  gets through until the reader has drained its queue, and how soon
    //  that is depends on the machine: ask for more records until one
    //  comes with the count
    uint64_t dropped = 0;
    ps_tap_record_t *record;
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (!dropped && zclock_mono () < deadline) {
        cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK);
        while (!dropped && (record = s_next_within (&reader, NULL, 100)))
            dropped = record->dropped;
    }
    cr_assert (dropped > 0, "no record after the losses carries the count");
    ps_worker_close (&worker);
    s_reader_close (&reader);
}

Test (tap, no_tap_means_no_endpoint, .timeout = 30)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.tap = false;
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    cr_assert_str_eq (ps_broker_tap_endpoint (broker), "");
    char *json = ps_broker_info (broker);
    json_t *tap = ps_test_json_find (json, "tap", false);
    cr_assert (json_is_string (tap), "%s", json);
    cr_assert_str_eq (json_string_value (tap), "", "INFO names no tap: %s", json);
    json_decref (tap);
    free (json);
    ps_broker_destroy (&broker);
}

Test (tap, tcp_connections_come_and_go_as_records, .timeout = 30)
{
    reader_t reader;
    s_reader_open (&reader, 1, 0, "", 0);
    ps_test_raw_t peer;
    ps_test_raw_open (&peer, reader.endpoint);
    ps_tap_record_t *record = s_expect (&reader, PSMQ__TAP_KIND__TAP_CONNECT, -1);
    cr_assert (strstr (record->reason, "tcp connection from 127.0.0.1:"), "%s", record->reason);
    cr_assert_eq (record->worker, -1, "TCP knows no rank");
    ps_test_raw_close (&peer);
    record = s_expect (&reader, PSMQ__TAP_KIND__TAP_DISCONNECT, -1);
    cr_assert (strstr (record->reason, "127.0.0.1:") && strstr (record->reason, "closed"), "%s",
               record->reason);
    s_reader_close (&reader);
}
