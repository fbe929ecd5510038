/*  =========================================================================
    test_lend - pushes that lend the caller's memory
    (ps_worker_push_lend_async, ps_worker_push_clock_lend_async)

    What the lending forms must promise: the broker gets the caller's
    values, sent from the caller's memory rather than a copy; the ticket is
    collected only once libzmq let go of that memory, and frames that
    other tickets lent since do not hold it up; closing the worker with a
    lent push in flight leaves nothing that reads freed memory (ASan, which
    tools/check runs these under, would see it). The first test is the
    usage example.

    Some tests drive a broker made by hand, whose ROUTER reads only when
    told: what the worker sends meanwhile waits in libzmq's queue, which
    is where a lent frame still reads the caller's memory.

    usage: build/test_lend [--filter 'lend/<test>'] [--verbose]
    ========================================================================= */

#include "ps_codec.h"
#include "ps_limits.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  Past the library's 256 KB below which a push is copied all the same
#define LENT (128 * 1024)
//  3 MB: a push in parts
#define PARTS (3 << 18)
//  Pushes of 1 MB (one message each) that fill the loopback connection's
//  buffers while the hand-made broker does not read: 24 MB, where the
//  kernel and the broker's small buffers below take a few
#define FILLERS 24
#define FILLER (1 << 18)

//  count floats of value
static float *
s_filled (size_t count, float value)
{
    float *data = malloc (count * sizeof (float));
    cr_assert (data);
    for (size_t i = 0; i < count; i++)
        data[i] = value;
    return data;
}

Test (lend, usage_push_without_a_copy_then_wait)
{
    ps_test_job_t job = ps_test_job (1, -1, 0);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    cr_assert_eq (ps_worker_init (job.worker, "w", PARTS, NULL, &sgd), PS_OK);
    cr_assert_eq (ps_worker_init (job.worker, "b", LENT, NULL, &sgd), PS_OK);
    float *gradient = s_filled (PARTS, 0.5f), *bias = s_filled (LENT, 2.0f);

    //  Lend both arrays, compute on, then collect: the arrays are ours again
    ps_tensor_t push[2] = {{"w", gradient, PARTS}, {"b", bias, LENT}};
    ps_ticket_t ticket;
    cr_assert_eq (ps_worker_push_lend_async (job.worker, push, 2, 1, &ticket), PS_OK, "%s",
                  ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_wait (job.worker, ticket, -1), PS_OK, "%s",
                  ps_worker_error (job.worker));
    //  The same with the clock, which ASP passes at once
    cr_assert_eq (ps_worker_push_clock_lend_async (job.worker, push, 1, 1, &ticket), PS_OK);
    cr_assert_eq (ps_worker_wait (job.worker, ticket, -1), PS_OK, "%s",
                  ps_worker_error (job.worker));
    cr_assert_eq (ps_worker_current_clock (job.worker), 1);
    cr_assert_eq (ps_worker_pending (job.worker), 0);
    free (gradient);
    free (bias);

    float *w = malloc (PARTS * sizeof (float)), *b = malloc (LENT * sizeof (float));
    ps_tensor_t pull[2] = {{"w", w, PARTS}, {"b", b, LENT}};
    cr_assert_eq (ps_worker_pull (job.worker, pull, 2), PS_OK);
    for (size_t i = 0; i < PARTS; i += 4099)
        cr_assert_eq (w[i], -1.0f, "w[%zu] = %g", i, w[i]);
    cr_assert_eq (w[PARTS - 1], -1.0f);
    for (size_t i = 0; i < LENT; i += 997)
        cr_assert_eq (b[i], -2.0f, "b[%zu] = %g", i, b[i]);
    free (w);
    free (b);
    ps_test_job_stop (&job);
}

Test (lend, a_group_gets_each_brokers_slice_from_the_callers_memory, .timeout = 60)
{
    char endpoints[256];
    ps_broker_t *brokers[3];
    cr_assert_eq (ps_test_group (3, 1, -1, brokers, endpoints, sizeof endpoints), 0);
    ps_worker_t *worker = ps_test_worker (endpoints, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (worker);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1.0f};
    cr_assert_eq (ps_worker_init (worker, "w", PARTS, NULL, &sgd), PS_OK);
    float *gradient = malloc (PARTS * sizeof (float));
    for (size_t i = 0; i < PARTS; i++)
        gradient[i] = (float)(i % 1000);
    ps_tensor_t push = {"w", gradient, PARTS};
    ps_ticket_t ticket;
    cr_assert_eq (ps_worker_push_lend_async (worker, &push, 1, 1, &ticket), PS_OK);
    cr_assert_eq (ps_worker_wait (worker, ticket, -1), PS_OK, "%s", ps_worker_error (worker));
    float *w = malloc (PARTS * sizeof (float));
    ps_tensor_t pull = {"w", w, PARTS};
    cr_assert_eq (ps_worker_pull (worker, &pull, 1), PS_OK);
    for (size_t i = 0; i < PARTS; i++)
        if (w[i] != -gradient[i])
            cr_assert_fail ("w[%zu] = %g, not %g", i, w[i], -gradient[i]);
    free (w);
    free (gradient);
    ps_worker_close (&worker);
    for (int shard = 0; shard < 3; shard++)
        ps_broker_destroy (&brokers[shard]);
}

// ------------------------------------------------- a broker made by hand

//  What the hand-made broker saw of a key's last push: its first and last
//  values, as text on the actor's pipe ("REPORT key" asks)
typedef struct {
    char key[16];
    float first, last;
} seen_t;

typedef struct {
    zsock_t *router;
    ps_codec_t *codec;
    int budget; //  messages still to read (heartbeats aside); -1: all
    seen_t seen[4];
    size_t nseen;
} manual_t;

//  Remember a push's first slice: its key and first and last values
static void
s_manual_saw (manual_t *self, const ps_envelope_t *request, zmsg_t *msg)
{
    zframe_t *data = zmsg_next (msg);
    if (request->n_slices == 0 || !data || zframe_size (data) < sizeof (float))
        return;
    seen_t *seen = NULL;
    for (size_t i = 0; i < self->nseen && !seen; i++)
        if (streq (self->seen[i].key, request->slices[0]->key))
            seen = &self->seen[i];
    if (!seen && self->nseen < 4)
        seen = &self->seen[self->nseen++];
    if (!seen)
        return;
    snprintf (seen->key, sizeof seen->key, "%s", request->slices[0]->key);
    const float *values = (const float *)zframe_data (data);
    memcpy (&seen->first, values, sizeof (float));
    memcpy (&seen->last, (const uint8_t *)values + zframe_size (data) - sizeof (float),
            sizeof (float));
}

//  Read one message and answer it as psbroker would: HELLO with a job of
//  one worker, anything else with an empty reply of its type
static void
s_manual_serve (manual_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    if (!msg)
        return;
    zframe_t *id = zmsg_pop (msg), *first = zmsg_first (msg);
    ps_envelope_t *request =
        ps_codec_decode (self->codec, zframe_data (first), zframe_size (first), NULL);
    if (request && request->type != PSMQ__MSG_TYPE__HEARTBEAT) {
        if (self->budget > 0)
            self->budget--;
        ps_envelope_t reply;
        ps_codec_reply_to (&reply, request);
        Psmq__Hello hello = ps_test_hello_of_one ();
        if (request->type == PSMQ__MSG_TYPE__HELLO)
            reply.hello = &hello;
        if (request->type == PSMQ__MSG_TYPE__PUSH)
            s_manual_saw (self, request, msg);
        zmq_msg_t encoded;
        ps_codec_encode (&reply, &encoded);
        zframe_send (&id, self->router, ZFRAME_MORE + ZFRAME_REUSE);
        zmq_msg_send (&encoded, zsock_resolve (self->router), 0);
    }
    zframe_destroy (&id);
    zmsg_destroy (&msg);
}

//  The pipe's commands: "READ n" (n messages more; -1: all from now on),
//  "REPORT key" (answered "first last", or "none")
static bool
s_manual_command (manual_t *self, zsock_t *pipe)
{
    char *command = NULL, *arg = NULL;
    if (zstr_recvx (pipe, &command, &arg, NULL) < 1 || streq (command, "$TERM")) {
        zstr_free (&command);
        zstr_free (&arg);
        return false;
    }
    int count = arg ? (int)strtol (arg, NULL, 10) : 0;
    if (streq (command, "READ"))
        self->budget = count < 0 || self->budget < 0 ? -1 : self->budget + count;
    else if (streq (command, "REPORT") && arg) {
        const seen_t *seen = NULL;
        for (size_t i = 0; i < self->nseen && !seen; i++)
            if (streq (self->seen[i].key, arg))
                seen = &self->seen[i];
        if (seen)
            zstr_sendf (pipe, "%g %g", (double)seen->first, (double)seen->last);
        else
            zstr_send (pipe, "none");
    }
    zstr_free (&command);
    zstr_free (&arg);
    return true;
}

//  The actor: reads its ROUTER only while it has a budget, so that what
//  the worker sends meanwhile waits in the worker's queue
static void
s_manual_broker (zsock_t *pipe, void *args)
{
    manual_t *self = args;
    self->codec = ps_codec_new ();
    zsock_signal (pipe, 0);
    bool running = true;
    while (running) {
        zmq_pollitem_t items[2] = {{zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
                                   {zsock_resolve (self->router), 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, self->budget != 0 ? 2 : 1, 1000) < 0)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            running = s_manual_command (self, pipe);
        else if (self->budget != 0 && (items[1].revents & ZMQ_POLLIN))
            s_manual_serve (self);
    }
    ps_codec_destroy (&self->codec);
}

typedef struct {
    manual_t state;
    zactor_t *actor;
    ps_worker_t *worker;
} manual_job_t;

//  A hand-made broker that answers the HELLO, then reads nothing until
//  told, with small buffers so that the worker's queue fills early; and
//  its worker
static void
s_manual_start (manual_job_t *self)
{
    memset (self, 0, sizeof *self);
    self->state.router = zsock_new (ZMQ_ROUTER);
    zsock_set_rcvhwm (self->state.router, 2);
    zsock_set_rcvbuf (self->state.router, 64 * 1024);
    int port = zsock_bind (self->state.router, "tcp://127.0.0.1:*");
    cr_assert_gt (port, 0);
    self->state.budget = 1;
    self->actor = zactor_new (s_manual_broker, &self->state);
    zsock_set_rcvtimeo (self->actor, PS_TEST_WAIT_MS);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    self->worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (self->worker);
}

static void
s_manual_stop (manual_job_t *self)
{
    ps_worker_close (&self->worker);
    zactor_destroy (&self->actor);
    zsock_destroy (&self->state.router);
}

//  Let the broker read count more messages (-1: all from now on)
static void
s_manual_read (manual_job_t *self, int count)
{
    char text[16];
    snprintf (text, sizeof text, "%d", count);
    zstr_sendx (self->actor, "READ", text, NULL);
}

//  Assert that the broker got value as the first and last elements of
//  key's last push
static void
s_manual_got (manual_job_t *self, const char *key, float value)
{
    zstr_sendx (self->actor, "REPORT", key, NULL);
    char *answer = zstr_recv (self->actor);
    cr_assert (answer, "no answer from the hand-made broker");
    float first, last;
    int fields = sscanf (answer, "%f %f", &first, &last);
    cr_assert_eq (fields, 2, "the broker got no push of '%s' (%s)", key, answer);
    zstr_free (&answer);
    cr_assert (first == value && last == value, "the push of '%s' sent %g .. %g, not %g .. %g", key,
               (double)first, (double)last, (double)value, (double)value);
}

//  FILLERS copied pushes that the loopback connection cannot hold while
//  the broker does not read; their tickets into tickets
static void
s_fill (ps_worker_t *worker, ps_ticket_t *tickets)
{
    float *filler = s_filled (FILLER, 0);
    ps_tensor_t push = {"filler", filler, FILLER};
    for (int i = 0; i < FILLERS; i++)
        cr_assert_eq (ps_worker_push_async (worker, &push, 1, 1, &tickets[i]), PS_OK, "%s",
                      ps_worker_error (worker));
    free (filler);
}

static void
s_collect (ps_worker_t *worker, const ps_ticket_t *tickets, int count)
{
    for (int i = 0; i < count; i++)
        cr_assert_eq (ps_worker_wait (worker, tickets[i], -1), PS_OK, "%s",
                      ps_worker_error (worker));
}

//  A frame lent is read when libzmq sends it, not at the call: a write
//  made in between (which ps_worker.h forbids; here it shows where the
//  bytes come from) reaches the broker, while a copying push sent what
//  its buffer held at the call
Test (lend, the_broker_gets_what_the_callers_memory_holds_when_sent, .timeout = 60)
{
    manual_job_t job;
    s_manual_start (&job);
    ps_ticket_t fillers[FILLERS], lent, copied;
    s_fill (job.worker, fillers);
    float *lent_data = s_filled (LENT, 1.0f), *copied_data = s_filled (LENT, 1.0f);
    ps_tensor_t push_lent = {"lent", lent_data, LENT}, push_copied = {"copied", copied_data, LENT};
    cr_assert_eq (ps_worker_push_lend_async (job.worker, &push_lent, 1, 1, &lent), PS_OK);
    cr_assert_eq (ps_worker_push_async (job.worker, &push_copied, 1, 1, &copied), PS_OK);
    lent_data[0] = lent_data[LENT - 1] = 2.0f;
    copied_data[0] = copied_data[LENT - 1] = 2.0f;
    free (copied_data);

    s_manual_read (&job, -1);
    s_collect (job.worker, fillers, FILLERS);
    cr_assert_eq (ps_worker_wait (job.worker, lent, -1), PS_OK);
    cr_assert_eq (ps_worker_wait (job.worker, copied, -1), PS_OK);
    //  Collected: the library holds nothing of it any more
    free (lent_data);
    s_manual_got (&job, "lent", 2.0f);
    s_manual_got (&job, "copied", 1.0f);
    s_manual_stop (&job);
}

//  Collecting a lent push waits for its own frames only: a push lent after
//  it, still queued behind a slow broker, is not waited for, so not
//  dropped after the grace with the connection made anew (which would
//  lose it and the fillers: their tickets would time out)
Test (lend, collecting_one_lent_push_leaves_the_later_ones_be, .timeout = 60)
{
    manual_job_t job;
    s_manual_start (&job);
    float *first_data = s_filled (LENT, 3.0f), *later_data = s_filled (LENT, 4.0f);
    ps_tensor_t push_first = {"first", first_data, LENT}, push_later = {"later", later_data, LENT};
    ps_ticket_t first, fillers[FILLERS], later;
    cr_assert_eq (ps_worker_push_lend_async (job.worker, &push_first, 1, 1, &first), PS_OK);
    s_fill (job.worker, fillers);
    cr_assert_eq (ps_worker_push_lend_async (job.worker, &push_later, 1, 1, &later), PS_OK);

    //  The broker reads and answers the first push only
    s_manual_read (&job, 1);
    cr_assert_eq (ps_worker_wait (job.worker, first, -1), PS_OK, "%s",
                  ps_worker_error (job.worker));
    free (first_data);

    s_manual_read (&job, -1);
    s_collect (job.worker, fillers, FILLERS);
    cr_assert_eq (ps_worker_wait (job.worker, later, -1), PS_OK, "%s",
                  ps_worker_error (job.worker));
    free (later_data);
    s_manual_got (&job, "later", 4.0f);
    s_manual_stop (&job);
}

//  A worker closed while libzmq still queues a lent push lets go of it
//  before ps_worker_close returns: the memory may be freed at once, and
//  nothing the library freed is touched afterwards (ASan)
Test (lend, closing_the_worker_lets_go_of_a_lent_push_in_flight, .timeout = 60)
{
    manual_job_t job;
    s_manual_start (&job);
    ps_ticket_t fillers[FILLERS], lent;
    s_fill (job.worker, fillers);
    float *data = s_filled (LENT, 5.0f);
    ps_tensor_t push = {"lent", data, LENT};
    cr_assert_eq (ps_worker_push_lend_async (job.worker, &push, 1, 1, &lent), PS_OK);
    cr_assert_eq (ps_worker_pending (job.worker), FILLERS + 1);
    ps_worker_close (&job.worker);
    memset (data, 0, LENT * sizeof (float));
    free (data);
    s_manual_stop (&job);
}
