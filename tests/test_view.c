/*  =========================================================================
    test_view - pulls read in place (ps_worker_pull_view, worker/ps_view)

    A view keeps a pull reply's frames and hands them out as pieces; the
    first test is the usage example. Brokers run in this process on
    ephemeral loopback ports. What a view must promise: the pieces of each
    tensor cover it exactly once, in order, with the values a copying pull
    gives; large float32 frames are not copied; a failed pull leaves no
    piece; a view may outlive its worker.

    usage: build/test_view [--filter 'view/<test>'] [--verbose]
    ========================================================================= */

#include "ps_codec.h"
#include "ps_limits.h"
#include "ps_testutil.h"
#include "ps_view.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  3.5 MB: four parts on the wire, the last one partial
#define BIG (917504 + 12345)

//  count floats, element i being i * scale + shift
static float *
s_ramp (size_t count, float scale, float shift)
{
    float *values = malloc (count * sizeof (float));
    cr_assert (values);
    for (size_t i = 0; i < count; i++)
        values[i] = (float)i * scale + shift;
    return values;
}

//  Assert that the view's pieces of tensor t, in order, hold want's count
//  elements exactly
static void
s_assert_tensor (const ps_view_t *view, size_t t, const float *want, size_t count)
{
    size_t next = 0;
    for (size_t i = 0; i < ps_view_pieces (view); i++) {
        const ps_view_piece_t *piece = ps_view_piece (view, i);
        if (piece->tensor != t)
            continue;
        cr_assert_eq (piece->offset, next, "tensor %zu: a piece at %zu, expected %zu", t,
                      piece->offset, next);
        cr_assert_eq (memcmp (piece->data, want + piece->offset, piece->count * sizeof (float)), 0,
                      "tensor %zu: piece at %zu differs", t, piece->offset);
        next += piece->count;
    }
    cr_assert_eq (next, count, "tensor %zu: %zu of %zu elements", t, next, count);
}

Test (view, usage_pull_a_large_key_in_place)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    float *initial = s_ramp (BIG, 1, 0);
    float small_initial[5] = {1, 2, 3, 4, 5};
    cr_assert_eq (ps_worker_init (job.worker, "big", BIG, initial, NULL), PS_OK);
    cr_assert_eq (ps_worker_init (job.worker, "small", 5, small_initial, NULL), PS_OK);

    //  Keys and counts only: the values stay in the received frames
    ps_view_t *view = ps_view_new ();
    ps_tensor_t pull[2] = {{"small", NULL, 5}, {"big", NULL, BIG}};
    cr_assert_eq (ps_worker_pull_view (job.worker, pull, 2, view), PS_OK, "%s",
                  ps_worker_error (job.worker));
    s_assert_tensor (view, 0, small_initial, 5);
    s_assert_tensor (view, 1, initial, BIG);
    //  "big" came in four frames of its own, read where they are; the 20
    //  bytes of "small" were copied
    cr_assert_eq (ps_view_frames (view), 4);
    cr_assert_null (ps_view_piece (view, ps_view_pieces (view)));
    ps_view_destroy (&view);
    cr_assert_null (view);
    free (initial);
    ps_test_job_stop (&job);
}

Test (view, a_view_refilled_holds_only_the_new_version)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    float *zeros = calloc (BIG, sizeof (float)), *ones = s_ramp (BIG, 0, 1);
    float *minus_ones = s_ramp (BIG, 0, -1);
    cr_assert (zeros);
    cr_assert_eq (ps_worker_init (job.worker, "w", BIG, NULL, &sgd), PS_OK);
    ps_view_t *view = ps_view_new ();
    ps_tensor_t tensor = {"w", NULL, BIG};
    cr_assert_eq (ps_worker_pull_view (job.worker, &tensor, 1, view), PS_OK);
    s_assert_tensor (view, 0, zeros, BIG);
    size_t pieces = ps_view_pieces (view);

    ps_tensor_t push = {"w", ones, BIG};
    cr_assert_eq (ps_worker_push (job.worker, &push, 1, 1), PS_OK);
    cr_assert_eq (ps_worker_pull_view (job.worker, &tensor, 1, view), PS_OK);
    cr_assert_eq (ps_view_pieces (view), pieces, "the last pull's pieces are released");
    s_assert_tensor (view, 0, minus_ones, BIG);
    ps_view_destroy (&view);
    free (zeros);
    free (ones);
    free (minus_ones);
    ps_test_job_stop (&job);
}

//  A tensor laid over a group of three brokers: each holds a slice, and
//  the pieces of all three cover it
Test (view, pieces_of_a_group_cover_each_tensor, .timeout = 60)
{
    char endpoints[256];
    ps_broker_t *brokers[3];
    cr_assert_eq (ps_test_group (3, 1, -1, brokers, endpoints, sizeof endpoints), 0);
    ps_worker_t *worker = ps_test_worker (endpoints, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (worker);
    float *big = s_ramp (BIG, 0.5f, 3), *other = s_ramp (1000, -1, 0);
    cr_assert_eq (ps_worker_init (worker, "a", BIG, big, NULL), PS_OK);
    cr_assert_eq (ps_worker_init (worker, "b", 1000, other, NULL), PS_OK);
    ps_view_t *view = ps_view_new ();
    ps_tensor_t pull[2] = {{"b", NULL, 1000}, {"a", NULL, BIG}};
    cr_assert_eq (ps_worker_pull_view (worker, pull, 2, view), PS_OK, "%s",
                  ps_worker_error (worker));
    s_assert_tensor (view, 0, other, 1000);
    s_assert_tensor (view, 1, big, BIG);
    cr_assert_geq (ps_view_frames (view), 3, "each broker's slice of 'a' is read in place");
    ps_view_destroy (&view);
    free (big);
    free (other);
    ps_worker_close (&worker);
    for (int shard = 0; shard < 3; shard++)
        ps_broker_destroy (&brokers[shard]);
}

//  A bf16 key's pieces are widened copies: the values ps_worker_pull gives
Test (view, a_bf16_key_is_widened_into_the_view)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    float *initial = s_ramp (BIG, 0.001f, -7), *copied = calloc (BIG, sizeof (float));
    cr_assert (copied);
    cr_assert_eq (ps_worker_init_wire (job.worker, "w", BIG, initial, NULL, PS_WIRE_BF16), PS_OK);
    ps_tensor_t tensor = {"w", copied, BIG};
    cr_assert_eq (ps_worker_pull (job.worker, &tensor, 1), PS_OK);
    ps_view_t *view = ps_view_new ();
    tensor.data = NULL;
    cr_assert_eq (ps_worker_pull_view (job.worker, &tensor, 1, view), PS_OK);
    s_assert_tensor (view, 0, copied, BIG);
    cr_assert_eq (ps_view_frames (view), 0);
    ps_view_destroy (&view);
    free (initial);
    free (copied);
    ps_test_job_stop (&job);
}

Test (view, a_failed_pull_leaves_no_piece)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    float initial[3] = {1, 2, 3};
    cr_assert_eq (ps_worker_init (job.worker, "w", 3, initial, NULL), PS_OK);
    ps_view_t *view = ps_view_new ();
    ps_tensor_t tensor = {"w", NULL, 3};
    cr_assert_eq (ps_worker_pull_view (job.worker, &tensor, 1, view), PS_OK);
    cr_assert_eq (ps_view_pieces (view), 1);

    ps_tensor_t unknown = {"nope", NULL, 3};
    cr_assert_eq (ps_worker_pull_view (job.worker, &unknown, 1, view), PS_EUNKNOWN_KEY);
    cr_assert_eq (ps_view_pieces (view), 0);
    ps_tensor_t wrong_size = {"w", NULL, 4};
    cr_assert_eq (ps_worker_pull_view (job.worker, &wrong_size, 1, view), PS_ESIZE);
    cr_assert_eq (ps_view_pieces (view), 0);
    cr_assert_eq (ps_worker_pull_view (job.worker, &tensor, 1, NULL), PS_EINVAL);
    cr_assert (strstr (ps_worker_error (job.worker), "no view"), "%s",
               ps_worker_error (job.worker));
    //  A copying pull still needs somewhere to copy to
    cr_assert_eq (ps_worker_pull (job.worker, &tensor, 1), PS_EINVAL);
    cr_assert (strstr (ps_worker_error (job.worker), "needs data"), "%s",
               ps_worker_error (job.worker));
    ps_view_destroy (&view);
    ps_test_job_stop (&job);
}

//  A reply whose pieces do not cover the tensors is refused whole: here
//  one key named twice, whose pieces the worker cannot tell apart
Test (view, a_reply_that_does_not_tile_leaves_no_piece)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    cr_assert_eq (ps_worker_init (job.worker, "a", BIG, NULL, NULL), PS_OK);
    ps_view_t *view = ps_view_new ();
    ps_tensor_t twice[2] = {{"a", NULL, BIG}, {"a", NULL, BIG}};
    cr_assert_eq (ps_worker_pull_view (job.worker, twice, 2, view), PS_EPROTO);
    cr_assert (strstr (ps_worker_error (job.worker), "'a'"), "%s", ps_worker_error (job.worker));
    cr_assert_eq (ps_view_pieces (view), 0);
    ps_view_destroy (&view);
    ps_test_job_stop (&job);
}

//  A broker that answers HELLO (and anything else) as psbroker would, but
//  a PULL with the same part of 4 elements of "w", again and again, each
//  saying more are to come
static void
s_repeating_broker (zsock_t *pipe, void *args)
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
        ps_slice_t slice = PSMQ__SLICE__INIT, *slices[1] = {&slice};
        slice.key = "w";
        slice.count = slice.total = 4;
        bool pull = request->type == PSMQ__MSG_TYPE__PULL;
        if (pull) {
            reply.n_slices = 1;
            reply.slices = slices;
            reply.more = true;
        }
        float values[4] = {1, 2, 3, 4};
        for (int part = 0; part < (pull ? 200 : 1); part++) {
            zmq_msg_t encoded;
            ps_codec_encode (&reply, &encoded);
            zframe_t *to = zframe_dup (id);
            zframe_send (&to, router, ZFRAME_MORE);
            zmq_msg_send (&encoded, zsock_resolve (router), pull ? ZMQ_SNDMORE : 0);
            if (pull)
                zmq_send (zsock_resolve (router), values, sizeof values, 0);
        }
        zframe_destroy (&id);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    ps_codec_destroy (&codec);
}

//  A broker that repeats a reply's part past the tensor's size is refused
//  at the first element too many, by a pull into a view (which would hold
//  every part until the timeout) and by a copying pull alike
Test (view, parts_past_the_tensors_size_are_refused_at_once, .timeout = 30)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    zactor_t *broker = zactor_new (s_repeating_broker, router);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (worker);
    ps_view_t *view = ps_view_new ();
    float values[4];
    ps_tensor_t tensor = {"w", NULL, 4};
    int64_t started = zclock_mono ();
    cr_assert_eq (ps_worker_pull_view (worker, &tensor, 1, view), PS_EPROTO, "%s",
                  ps_worker_error (worker));
    cr_assert (strstr (ps_worker_error (worker), "more than the 4 elements of 'w'"), "%s",
               ps_worker_error (worker));
    cr_assert_eq (ps_view_pieces (view), 0);
    tensor.data = values;
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_EPROTO, "%s", ps_worker_error (worker));
    //  Refused as they come, not left to the 10 s timeout
    cr_assert_lt (zclock_mono () - started, 5000);
    ps_view_destroy (&view);
    ps_worker_close (&worker);
    zactor_destroy (&broker);
    zsock_destroy (&router);
}

//  The frames a view holds are libzmq's buffers, not its sockets': read
//  after the worker closed and the broker stopped (ASan would see a use
//  after free)
Test (view, a_view_outlives_its_worker)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    float *initial = s_ramp (BIG, 2, 1);
    cr_assert_eq (ps_worker_init (job.worker, "w", BIG, initial, NULL), PS_OK);
    ps_view_t *view = ps_view_new ();
    ps_tensor_t tensor = {"w", NULL, BIG};
    cr_assert_eq (ps_worker_pull_view (job.worker, &tensor, 1, view), PS_OK);
    ps_test_job_stop (&job);
    s_assert_tensor (view, 0, initial, BIG);
    ps_view_destroy (&view);
    free (initial);
}

// ------------------------------------------------- ps_view on its own

//  A frame of count floats from values, its data at byte offset shift of
//  a buffer of the caller's (misaligned when shift is not a multiple of 4)
static void
s_frame_at (zmq_msg_t *frame, uint8_t *buffer, size_t shift, const float *values, size_t count)
{
    memcpy (buffer + shift, values, count * sizeof (float));
    cr_assert_eq (zmq_msg_init_data (frame, buffer + shift, count * sizeof (float), NULL, NULL), 0);
}

Test (view, misaligned_and_small_frames_are_copied)
{
    size_t large = PS_VIEW_INPLACE_MIN / sizeof (float);
    float *values = s_ramp (large, 1, 0);
    uint8_t *buffer = malloc (large * sizeof (float) + 8);
    cr_assert (buffer);
    ps_view_t *view = ps_view_new ();
    zmq_msg_t frame;
    s_frame_at (&frame, buffer, 1, values, large);
    cr_assert_eq (ps_view_take (view, 0, 0, large, PS_WIRE_F32, &frame), PS_OK);
    cr_assert_eq (zmq_msg_size (&frame), large * sizeof (float), "a copied frame stays");
    zmq_msg_close (&frame);
    s_frame_at (&frame, buffer, 0, values, 3);
    cr_assert_eq (ps_view_take (view, 1, 0, 3, PS_WIRE_F32, &frame), PS_OK);
    zmq_msg_close (&frame);
    cr_assert_eq (ps_view_frames (view), 0);
    //  Copies: the caller's buffer may change
    memset (buffer, 0, large * sizeof (float) + 8);
    s_assert_tensor (view, 0, values, large);
    s_assert_tensor (view, 1, values, 3);

    s_frame_at (&frame, buffer, 4, values, large);
    cr_assert_eq (ps_view_take (view, 2, 0, large, PS_WIRE_F32, &frame), PS_OK);
    cr_assert_eq (zmq_msg_size (&frame), 0, "an aligned large frame moves into the view");
    cr_assert_eq (ps_view_frames (view), 1);
    cr_assert_eq (ps_view_piece (view, 2)->data, (const float *)(buffer + 4));
    ps_view_clear (view);
    cr_assert_eq (ps_view_pieces (view), 0);
    cr_assert_eq (ps_view_frames (view), 0);
    ps_view_destroy (&view);
    free (buffer);
    free (values);
}

//  A view refilled copies into the buffers of its last fill: none is
//  given back and taken again (held by somebody else in between, a freed
//  one would not come back)
Test (view, copies_reuse_their_buffers)
{
    float values[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ps_view_t *view = ps_view_new ();
    const float *first[3];
    void *others[3] = {NULL};
    for (int fill = 0; fill < 2; fill++) {
        ps_view_clear (view);
        for (size_t i = 0; fill == 1 && i < 3; i++)
            others[i] = malloc (sizeof values);
        for (size_t i = 0; i < 3; i++) {
            zmq_msg_t frame;
            cr_assert_eq (zmq_msg_init_data (&frame, values, sizeof values, NULL, NULL), 0);
            cr_assert_eq (ps_view_take (view, i, 0, 8, PS_WIRE_F32, &frame), PS_OK);
            zmq_msg_close (&frame);
            const ps_view_piece_t *piece = ps_view_piece (view, i);
            cr_assert_eq (memcmp (piece->data, values, sizeof values), 0);
            if (fill == 0)
                first[i] = piece->data;
            else
                cr_assert_eq (piece->data, first[i], "copy %zu moved to another buffer", i);
        }
    }
    for (size_t i = 0; i < 3; i++)
        free (others[i]);
    ps_view_destroy (&view);
}

//  Pieces of one tensor given at offsets, count elements each
static ps_view_t *
s_pieces (const size_t *tensors, const size_t *offsets, const size_t *counts, size_t n)
{
    static float values[64];
    ps_view_t *view = ps_view_new ();
    for (size_t i = 0; i < n; i++) {
        zmq_msg_t frame;
        cr_assert_eq (zmq_msg_init_data (&frame, values, counts[i] * sizeof (float), NULL, NULL),
                      0);
        cr_assert_eq (ps_view_take (view, tensors[i], offsets[i], counts[i], PS_WIRE_F32, &frame),
                      PS_OK);
        zmq_msg_close (&frame);
    }
    return view;
}

//  Pieces that do not cover tensors of 10 and 4 elements: ps_view_tiles
//  says so and names expected
static void
s_assert_not_tiled (const size_t *tensors, const size_t *offsets, const size_t *counts, size_t n,
                    size_t expected)
{
    ps_tensor_t pulled[2] = {{"a", NULL, 10}, {"b", NULL, 4}};
    ps_view_t *view = s_pieces (tensors, offsets, counts, n);
    size_t tensor;
    cr_assert_not (ps_view_tiles (view, pulled, 2, &tensor));
    cr_assert_eq (tensor, expected);
    ps_view_destroy (&view);
}

Test (view, tiles_finds_gaps_overlaps_and_missing_tensors)
{
    ps_tensor_t pulled[2] = {{"a", NULL, 10}, {"b", NULL, 4}};
    size_t tensor;
    //  Out of order, exact: sorted by tensor then offset
    ps_view_t *view = s_pieces ((size_t[]){1, 0, 0}, (size_t[]){0, 6, 0}, (size_t[]){4, 4, 6}, 3);
    cr_assert (ps_view_tiles (view, pulled, 2, &tensor));
    cr_assert_eq (ps_view_piece (view, 0)->offset, 0);
    cr_assert_eq (ps_view_piece (view, 1)->offset, 6);
    cr_assert_eq (ps_view_piece (view, 2)->tensor, 1);
    ps_view_destroy (&view);
    //  A gap in tensor 0
    s_assert_not_tiled ((size_t[]){0, 0, 1}, (size_t[]){0, 7, 0}, (size_t[]){6, 3, 4}, 3, 0);
    //  An overlap whose counts add up
    s_assert_not_tiled ((size_t[]){0, 0, 1}, (size_t[]){0, 5, 0}, (size_t[]){6, 4, 4}, 3, 0);
    //  Tensor 1 missing, then tensor 1 twice
    s_assert_not_tiled ((size_t[]){0}, (size_t[]){0}, (size_t[]){10}, 1, 1);
    s_assert_not_tiled ((size_t[]){0, 1, 1}, (size_t[]){0, 0, 0}, (size_t[]){10, 4, 4}, 3, 1);
    //  A piece of a tensor not pulled
    s_assert_not_tiled ((size_t[]){0, 1, 2}, (size_t[]){0, 0, 0}, (size_t[]){10, 4, 1}, 3, 2);
}
