/*  =========================================================================
    test_push_clock - a push that finishes the worker's clock

    ps_worker_push_clock sends one PUSH with clock_after (PROTOCOL.md, A
    push that finishes a clock) in place of a PUSH and a CLOCK. These tests
    hold it to the CLOCK's rules: it waits on the staleness bound, a pull
    pipelined behind it sees the step it waited for, every broker of a
    group moves the clock (those holding none of the push too), a refused
    push leaves the clock where it was, and a non-finite one is reported
    with the clock moved; a broker older than the field is named as such.
    That the steps it takes equal one process's is test_consistency's
    bsp_with_pushes_that_finish_clocks_*.

    usage: build/test_push_clock [--filter 'push_clock/<test>'] [--verbose]
    ========================================================================= */

#include "ps_codec.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <math.h>

#define WIDE 70000 //  over 64K elements: sliced over every broker of a group

//  BSP over two brokers, three workers: 0 and 1 send their push that
//  finishes clock 0 and, without waiting, a PULL; once all four requests
//  are parked on both brokers, worker 2 pushes and finishes its clock.
//  The pulls must hold clock 0's step: w = 0 - lr * mean (1, 2, 3) = -2.
Test (push_clock, a_pull_pipelined_behind_it_sees_the_step, .timeout = 60)
{
    ps_broker_t *brokers[2];
    char endpoints[256];
    cr_assert_eq (ps_test_group (2, 3, 0, brokers, endpoints, sizeof endpoints), 0);
    ps_worker_t *workers[3];
    static float gradient[3][WIDE], value[2][WIDE];
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    for (uint32_t rank = 0; rank < 3; rank++) {
        workers[rank] = ps_test_worker (endpoints, rank, 3, PS_TEST_WAIT_MS);
        cr_assert (workers[rank]);
        cr_assert_eq (ps_worker_init (workers[rank], "w", WIDE, NULL, &sgd), PS_OK);
        for (size_t i = 0; i < WIDE; i++)
            gradient[rank][i] = (float)(rank + 1);
    }
    ps_ticket_t clock[2], pull[2];
    for (uint32_t rank = 0; rank < 2; rank++) {
        ps_tensor_t push = {"w", gradient[rank], WIDE}, into = {"w", value[rank], WIDE};
        cr_assert_eq (ps_worker_push_clock_async (workers[rank], &push, 1, 1, &clock[rank]), PS_OK);
        cr_assert_eq (ps_worker_current_clock (workers[rank]), 1, "sent, the clock counts");
        cr_assert_eq (ps_worker_pull_async (workers[rank], &into, 1, &pull[rank]), PS_OK);
    }
    cr_assert_eq (ps_test_wait_parked (workers[2], 2, 4), 0, "the requests never parked");
    ps_tensor_t last = {"w", gradient[2], WIDE};
    cr_assert_eq (ps_worker_push_clock (workers[2], &last, 1, 1), PS_OK, "%s",
                  ps_worker_error (workers[2]));
    for (uint32_t rank = 0; rank < 2; rank++) {
        cr_assert_eq (ps_worker_wait (workers[rank], pull[rank], -1), PS_OK);
        cr_assert_eq (ps_worker_wait (workers[rank], clock[rank], -1), PS_OK);
        for (size_t i = 0; i < WIDE; i += 997)
            cr_assert_eq (value[rank][i], -2.0f, "worker %u, element %zu: %g, not -2", rank, i,
                          value[rank][i]);
        cr_assert_eq (value[rank][WIDE - 1], -2.0f);
    }
    for (uint32_t rank = 0; rank < 3; rank++)
        ps_worker_close (&workers[rank]);
    for (uint32_t shard = 0; shard < 2; shard++)
        ps_broker_destroy (&brokers[shard]);
}

//  SSP, staleness 1, two workers: rank 0 finishes clock 0 at once, but its
//  push that finishes clock 1 waits until rank 1 has finished clock 0
Test (push_clock, it_waits_on_the_staleness_bound, .timeout = 60)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, 1, 0, endpoint, sizeof endpoint);
    ps_worker_t *fast = ps_test_worker (endpoint, 0, 2, PS_TEST_WAIT_MS);
    ps_worker_t *slow = ps_test_worker (endpoint, 1, 2, PS_TEST_WAIT_MS);
    cr_assert (fast && slow);
    float g = 1.0f;
    ps_tensor_t push = {"w", &g, 1};
    cr_assert_eq (ps_worker_init (fast, "w", 1, NULL, NULL), PS_OK);
    cr_assert_eq (ps_worker_push_clock (fast, &push, 1, 1), PS_OK, "%s", ps_worker_error (fast));
    ps_ticket_t ahead;
    cr_assert_eq (ps_worker_push_clock_async (fast, &push, 1, 1, &ahead), PS_OK);
    cr_assert_eq (ps_worker_wait (fast, ahead, 300), PS_ETIMEOUT,
                  "two clocks ahead of the slowest under staleness 1");
    cr_assert_eq (ps_worker_push_clock (slow, &push, 1, 1), PS_OK, "%s", ps_worker_error (slow));
    cr_assert_eq (ps_worker_wait (fast, ahead, -1), PS_OK, "%s", ps_worker_error (fast));
    cr_assert_eq (ps_worker_current_clock (fast), 2);
    cr_assert_eq (ps_worker_current_clock (slow), 1);
    //  Every push was applied: 0 - 3 steps of lr 0.1 (SSP steps each push)
    float w = 0;
    ps_tensor_t into = {"w", &w, 1};
    cr_assert_eq (ps_worker_pull (slow, &into, 1), PS_OK);
    cr_assert (fabsf (w + 0.3f) < 1e-6f, "w = %g, not -0.3", w);
    ps_worker_close (&fast);
    ps_worker_close (&slow);
    ps_broker_destroy (&broker);
}

//  A group of two brokers: a one-float key lives on one of them, so the
//  other gets a PUSH with no slice, which must still finish the clock
Test (push_clock, a_broker_holding_none_of_the_push_moves_the_clock, .timeout = 60)
{
    ps_broker_t *brokers[2];
    char endpoints[256];
    cr_assert_eq (ps_test_group (2, 1, 0, brokers, endpoints, sizeof endpoints), 0);
    ps_worker_t *worker = ps_test_worker (endpoints, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (worker);
    float g = 1.0f;
    ps_tensor_t push = {"w", &g, 1};
    cr_assert_eq (ps_worker_init (worker, "w", 1, NULL, NULL), PS_OK);
    for (int clock = 0; clock < 3; clock++)
        cr_assert_eq (ps_worker_push_clock (worker, &push, 1, 1), PS_OK, "%s",
                      ps_worker_error (worker));
    for (uint32_t shard = 0; shard < 2; shard++) {
        long clock = (long)ps_test_shard_info (worker, shard, "min_clock");
        cr_assert_eq (clock, 3, "shard %u is at clock %ld", shard, clock);
    }
    ps_worker_close (&worker);
    for (uint32_t shard = 0; shard < 2; shard++)
        ps_broker_destroy (&brokers[shard]);
}

//  A push the broker refuses (a wrong size) finishes no clock: the worker
//  stays at its clock, and may push it again
Test (push_clock, a_refused_push_leaves_the_clock, .timeout = 60)
{
    ps_test_job_t job = ps_test_job (1, 0, 0);
    float g[4] = {1, 1, 1, 1};
    cr_assert_eq (ps_worker_init (job.worker, "w", 4, NULL, NULL), PS_OK);
    ps_tensor_t wrong = {"w", g, 3}, right = {"w", g, 4};
    cr_assert_eq (ps_worker_push_clock (job.worker, &wrong, 1, 1), PS_ESIZE);
    cr_assert_eq (ps_worker_current_clock (job.worker), 0);
    cr_assert_eq ((long)ps_test_shard_info (job.worker, 0, "min_clock"), 0);
    cr_assert_eq (ps_worker_push_clock (job.worker, &right, 1, 1), PS_OK, "%s",
                  ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_current_clock (job.worker), 1);
    cr_assert_eq ((long)ps_test_shard_info (job.worker, 0, "min_clock"), 1);
    ps_test_job_stop (&job);
}

//  A gradient holding a NaN is not applied; the reply says so, and the
//  clock moved (as a CLOCK's non-finite reply does), so nobody waits
Test (push_clock, a_nonfinite_push_is_reported_and_the_clock_moves, .timeout = 60)
{
    ps_test_job_t job = ps_test_job (1, 0, 0);
    float g[2] = {1.0f, NAN}, w[2] = {7, 7};
    cr_assert_eq (ps_worker_init (job.worker, "w", 2, NULL, NULL), PS_OK);
    ps_tensor_t push = {"w", g, 2}, into = {"w", w, 2};
    cr_assert_eq (ps_worker_push_clock (job.worker, &push, 1, 1), PS_ENONFINITE);
    cr_assert_eq (ps_worker_current_clock (job.worker), 1);
    cr_assert_eq ((long)ps_test_shard_info (job.worker, 0, "min_clock"), 1);
    cr_assert_eq (ps_worker_pull (job.worker, &into, 1), PS_OK);
    cr_assert (w[0] == 0.0f && w[1] == 0.0f, "the NaN push was applied: %g %g", w[0], w[1]);
    g[1] = 1.0f;
    cr_assert_eq (ps_worker_push_clock (job.worker, &push, 1, 1), PS_OK, "%s",
                  ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_current_clock (job.worker), 2);
    ps_test_job_stop (&job);
}

//  A broker from before clock_after, as far as one worker needs: it
//  answers HELLO, and acks a PUSH with its clock, the field unread
static void
s_old_broker (zsock_t *pipe, void *args)
{
    zsock_t *router = args;
    ps_codec_t *codec = ps_codec_new ();
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (zpoller_wait (poller, -1) == router) {
        zmsg_t *msg = zmsg_recv (router);
        zframe_t *id = zmsg_pop (msg), *first = zmsg_first (msg);
        ps_envelope_t *request =
            ps_codec_decode (codec, zframe_data (first), zframe_size (first), NULL);
        ps_envelope_t reply;
        ps_codec_reply_to (&reply, request);
        Psmq__Hello hello = ps_test_hello_of_one ();
        if (request->type == PSMQ__MSG_TYPE__HELLO)
            reply.hello = &hello;
        reply.clock = request->clock;
        zmq_msg_t encoded;
        ps_codec_encode (&reply, &encoded);
        zframe_send (&id, router, ZFRAME_MORE);
        zmq_msg_send (&encoded, zsock_resolve (router), 0);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    ps_codec_destroy (&codec);
}

Test (push_clock, a_broker_older_than_the_field_is_named, .timeout = 30)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    zactor_t *broker = zactor_new (s_old_broker, router);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (worker);
    float g = 1.0f;
    ps_tensor_t push = {"w", &g, 1};
    cr_assert_eq (ps_worker_push_clock (worker, &push, 1, 1), PS_EPROTO);
    cr_assert (strstr (ps_worker_error (worker), "predates pushes that finish a clock"), "%s",
               ps_worker_error (worker));
    ps_worker_close (&worker);
    zactor_destroy (&broker);
    zsock_destroy (&router);
}
