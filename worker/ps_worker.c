/*  =========================================================================
    ps_worker - the worker library

    The calling thread owns one DEALER socket to the broker and does every
    send and receive itself, so a call costs one network round trip and no
    thread hop. Each request gets a sequence number, which is its ticket;
    replies are matched by it, so any number of requests may be in flight
    and a wait for one ticket completes the others it receives meanwhile
    (a pull's reply is copied into its buffers whichever wait receives it).

    Heartbeats come from a helper thread with a DEALER of its own and the
    session token from the HELLO reply, so a worker that computes for
    minutes between calls is not evicted. The threads share nothing but an
    inproc PAIR pipe used to stop the helper.

    Tensors go out in slices of at most PS_CHUNK_BYTES: large frames are
    slower to receive than several reused 1 MB buffers (docs/performance.md).
    The blocking push lends the caller's memory to libzmq (zero copy) and
    returns only once libzmq has released every frame; if the broker never
    answers, disconnecting drops the queued frames, so no reference to the
    caller's memory outlives the call. The async push copies each slice
    once into a pooled buffer, so the caller may reuse its memory at once;
    pooled buffers stay mapped, sparing a page fault per 4 KB per send.
    ========================================================================= */

#include "ps_worker.h"
#include "ps_codec.h"
#include "ps_framepool.h"
#include "ps_limits.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define CHUNK_FLOATS (PS_CHUNK_BYTES / sizeof (float))
//  A blocking push lends the caller's memory only when it carries at least
//  this much: below it, a copy costs less than waiting for libzmq to let go
#define LEND_MIN_BYTES (256 * 1024)
//  How long close waits for the broker to acknowledge BYE
#define BYE_TIMEOUT_MS 2000

typedef struct {
    uint64_t seq;         //  the ticket
    int type;             //  PSMQ__MSG_TYPE__*
    bool complete;        //  reply received
    int status;           //  its outcome
    ps_tensor_t *tensors; //  PULL: where the reply goes (copied descriptors)
    uint64_t *filled;     //  PULL: elements received per tensor, all parts
    size_t ntensors;      //  their number
    int64_t clock;        //  CLOCK: the clock finished
    char **info;          //  INFO: where the JSON text goes
} pending_t;

typedef struct {
    void *context;          //  the worker's ZeroMQ context
    char *broker;           //  endpoint
    char pipe_endpoint[64]; //  inproc address of the stop pipe
    uint32_t rank;          //  whose heartbeats
    uint64_t session;       //  token the broker gave
    int interval_ms;        //  how often
} heartbeat_args_t;

struct ps_worker_t {
    void *context;                      //  ours; 1 I/O thread
    void *dealer;                       //  requests and replies
    ps_codec_t *codec;                  //  decodes replies
    ps_worker_options_t options;        //  as given; broker points to our copy
    char *broker;                       //  our copy of the endpoint
    int32_t staleness;                  //  from HELLO
    int64_t clock;                      //  clocks finished (as sent)
    int64_t min_clock;                  //  slowest live clock, last reply
    uint64_t next_seq;                  //  next ticket
    pending_t *pending;                 //  requests in flight
    size_t npending;                    //  their number
    size_t pending_capacity;            //  allocated
    ps_slice_t *slices;                 //  envelope building, reused
    ps_slice_t **slice_ptrs;            //  pointers to them
    size_t slice_capacity;              //  allocated
    zmq_msg_t *frames;                  //  reply frames, reused
    size_t frame_capacity;              //  allocated
    heartbeat_args_t heartbeat;         //  what the helper thread uses
    void *heartbeat_pipe;               //  our end of its stop pipe
    pthread_t heartbeat_thread;         //  the helper
    bool heartbeat_running;             //  to join it once
    char error[PS_MAX_ERROR_LEN + 128]; //  detail of the last failure
    ps_framepool_t *pool;               //  buffers for copied outgoing frames
    atomic_size_t lent;                 //  frames of the caller's memory libzmq holds
    uint8_t routing_id[16];             //  ours, so that a new socket is still us
};

const char *
ps_strerror (int status)
{
    switch (status) {
    case PS_OK: return "success";
    case PS_EINVAL: return "invalid argument";
    case PS_ENOMEM: return "out of memory";
    case PS_ETIMEOUT: return "no reply within the timeout";
    case PS_ECONNECT: return "cannot create or connect the socket";
    case PS_EPROTO: return "reply does not parse or does not fit the request";
    case PS_ETICKET: return "unknown or already collected ticket";
    case PS_EINTR: return "interrupted by a signal";
    case PS_EMALFORMED: return "broker: message does not parse";
    case PS_EVERSION: return "broker: protocol version mismatch";
    case PS_ETYPE: return "broker: message type not accepted";
    case PS_EUNKNOWN_KEY: return "broker: unknown key";
    case PS_ESIZE: return "broker: element count does not match the key";
    case PS_ETOO_LARGE: return "broker: over a limit";
    case PS_ECLOCK: return "broker: clock mismatch";
    case PS_ENOT_REGISTERED: return "broker: worker not registered (evicted?)";
    case PS_ERANK: return "broker: rank or world size refused";
    case PS_EKEY_EXISTS: return "broker: key exists with another size";
    case PS_EOPTIM: return "broker: optimizer settings refused";
    case PS_EFULL: return "broker: cannot take more";
    case PS_ESHUTDOWN: return "broker: shutting down";
    default: return "unknown status";
    }
}

static int s_fail (ps_worker_t *self, int status, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Record the detail of a failure; returns status for `return s_fail (...)`
static int
s_fail (ps_worker_t *self, int status, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    return status;
}

//  Routing ids only need to differ between workers
static uint64_t
s_random (void)
{
    static _Atomic uint64_t counter;
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    uint64_t z = (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 30) ^ (uint64_t)getpid () << 20 ^
                 atomic_fetch_add (&counter, 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void
ps_worker_options_init (ps_worker_options_t *options)
{
    memset (options, 0, sizeof *options);
    options->world_size = 1;
    options->timeout_ms = PS_DEFAULT_CALL_TIMEOUT_MS;
    options->clock_timeout_ms = PS_DEFAULT_CLOCK_TIMEOUT_MS;
}

// ------------------------------------------------------------ heartbeats

static void *
s_heartbeat_main (void *arg)
{
    heartbeat_args_t *args = arg;
    void *pipe = zmq_socket (args->context, ZMQ_PAIR);
    void *dealer = zmq_socket (args->context, ZMQ_DEALER);
    int linger = 0;
    if (!pipe || !dealer || zmq_connect (pipe, args->pipe_endpoint)) {
        zmq_close (pipe);
        zmq_close (dealer);
        return NULL;
    }
    zmq_setsockopt (dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect (dealer, args->broker);

    ps_envelope_t beat = PSMQ__ENVELOPE__INIT;
    beat.version = PS_PROTOCOL_VERSION;
    beat.type = PSMQ__MSG_TYPE__HEARTBEAT;
    beat.worker = args->rank;
    beat.session = args->session;
    uint8_t packed[64];
    size_t size = psmq__envelope__pack (&beat, packed);

    zmq_pollitem_t items[] = {{pipe, 0, ZMQ_POLLIN, 0}};
    while (true) {
        int rc = zmq_poll (items, 1, args->interval_ms);
        if (rc == -1 && zmq_errno () != EINTR)
            break;
        if (rc > 0)
            break; //  anything on the pipe means stop
        zmq_send (dealer, packed, size, ZMQ_DONTWAIT);
    }
    zmq_close (dealer);
    zmq_close (pipe);
    return NULL;
}

static int
s_heartbeat_start (ps_worker_t *self, uint64_t session, uint32_t interval_ms)
{
    heartbeat_args_t *args = &self->heartbeat;
    args->context = self->context;
    args->broker = self->broker;
    args->rank = self->options.rank;
    args->session = session;
    args->interval_ms = interval_ms ? (int)interval_ms : PS_DEFAULT_HEARTBEAT_MS;
    snprintf (args->pipe_endpoint, sizeof args->pipe_endpoint, "inproc://psworker-heartbeat-%p",
              (void *)self);
    self->heartbeat_pipe = zmq_socket (self->context, ZMQ_PAIR);
    if (!self->heartbeat_pipe || zmq_bind (self->heartbeat_pipe, args->pipe_endpoint))
        return s_fail (self, PS_ECONNECT, "cannot create the heartbeat pipe: %s",
                       zmq_strerror (zmq_errno ()));
    if (pthread_create (&self->heartbeat_thread, NULL, s_heartbeat_main, args))
        return s_fail (self, PS_ENOMEM, "cannot start the heartbeat thread");
    self->heartbeat_running = true;
    return PS_OK;
}

static void
s_heartbeat_stop (ps_worker_t *self)
{
    if (self->heartbeat_running) {
        zmq_send (self->heartbeat_pipe, "", 0, 0);
        pthread_join (self->heartbeat_thread, NULL);
        self->heartbeat_running = false;
    }
    zmq_close (self->heartbeat_pipe);
    self->heartbeat_pipe = NULL;
}

// ------------------------------------------------------------ requests

static int
s_reserve_slices (ps_worker_t *self, size_t count)
{
    if (count <= self->slice_capacity)
        return 0;
    ps_slice_t *slices = realloc (self->slices, count * sizeof *slices);
    if (!slices)
        return -1;
    self->slices = slices;
    ps_slice_t **ptrs = realloc (self->slice_ptrs, count * sizeof *ptrs);
    if (!ptrs)
        return -1;
    self->slice_ptrs = ptrs;
    self->slice_capacity = count;
    return 0;
}

static ps_slice_t *
s_slice (ps_worker_t *self, size_t index, const char *key, uint64_t offset, uint64_t count,
         uint64_t total)
{
    ps_slice_t *slice = &self->slices[index];
    psmq__slice__init (slice);
    slice->key = (char *)key;
    slice->offset = offset;
    slice->count = count;
    slice->total = total;
    self->slice_ptrs[index] = slice;
    return slice;
}

static pending_t *
s_pending_find (ps_worker_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->npending; i++)
        if (self->pending[i].seq == seq)
            return &self->pending[i];
    return NULL;
}

static void
s_pending_remove (ps_worker_t *self, pending_t *pending)
{
    free (pending->tensors);
    free (pending->filled);
    *pending = self->pending[--self->npending];
}

static pending_t *
s_pending_add (ps_worker_t *self, int type)
{
    if (self->npending == self->pending_capacity) {
        size_t capacity = self->pending_capacity ? self->pending_capacity * 2 : 16;
        pending_t *grown = realloc (self->pending, capacity * sizeof *grown);
        if (!grown)
            return NULL;
        self->pending = grown;
        self->pending_capacity = capacity;
    }
    pending_t *pending = &self->pending[self->npending++];
    memset (pending, 0, sizeof *pending);
    pending->seq = self->next_seq++;
    pending->type = type;
    return pending;
}

static void
s_envelope_init (ps_worker_t *self, ps_envelope_t *envelope, int type, uint64_t seq)
{
    psmq__envelope__init (envelope);
    envelope->version = PS_PROTOCOL_VERSION;
    envelope->type = type;
    envelope->seq = seq;
    envelope->worker = self->options.rank;
    envelope->clock = self->clock;
}

//  Send the envelope, then one frame per slice with count > 0 taken from
//  sources[i] (NULL: the request carries no data). 0 or a status.
static void
s_lent_released (void *data, void *hint)
{
    ps_worker_t *self = hint;
    atomic_fetch_sub_explicit (&self->lent, 1, memory_order_release);
}

//  A frame of bytes from source: lent (zero copy) or copied into the pool
static int
s_frame (ps_worker_t *self, zmq_msg_t *msg, const float *source, size_t bytes, bool lend)
{
    if (lend) {
        atomic_fetch_add_explicit (&self->lent, 1, memory_order_relaxed);
        if (zmq_msg_init_data (msg, (void *)source, bytes, s_lent_released, self) == 0)
            return 0;
        atomic_fetch_sub_explicit (&self->lent, 1, memory_order_relaxed);
        return -1;
    }
    if (ps_framepool_msg (self->pool, msg, bytes))
        return -1;
    memcpy (zmq_msg_data (msg), source, bytes);
    return 0;
}

static int
s_send (ps_worker_t *self, const ps_envelope_t *envelope, const float *const *sources, bool lend)
{
    if (!self->dealer)
        return s_fail (self, PS_ECONNECT, "no connection to %s", self->broker);
    zmq_msg_t msg;
    if (ps_codec_encode (envelope, &msg))
        return s_fail (self, PS_ENOMEM, "out of memory encoding a request");
    bool data = sources && envelope->n_slices > 0;
    if (zmq_msg_send (&msg, self->dealer, data ? ZMQ_SNDMORE : 0) == -1) {
        zmq_msg_close (&msg);
        return s_fail (self, PS_ETIMEOUT, "cannot send to %s: %s", self->broker,
                       zmq_strerror (zmq_errno ()));
    }
    if (!data)
        return PS_OK;
    //  Count the frames first so that the last one is sent without MORE
    size_t last = 0;
    for (size_t i = 0; i < envelope->n_slices; i++)
        if (envelope->slices[i]->count)
            last = i;
    for (size_t i = 0; i < envelope->n_slices; i++) {
        const ps_slice_t *slice = envelope->slices[i];
        if (!slice->count)
            continue;
        size_t bytes = slice->count * sizeof (float);
        if (s_frame (self, &msg, sources[i], bytes, lend))
            return s_fail (self, PS_ENOMEM, "out of memory for a %zu-byte frame", bytes);
        //  A multipart message cannot be abandoned half sent: block here
        if (zmq_msg_send (&msg, self->dealer, i < last ? ZMQ_SNDMORE : 0) == -1) {
            zmq_msg_close (&msg);
            return s_fail (self, PS_ECONNECT, "send failed: %s", zmq_strerror (zmq_errno ()));
        }
    }
    return PS_OK;
}

// ------------------------------------------------------------ replies

static int
s_broker_status (int code)
{
    return code > 0 && code <= PSMQ__ERR_CODE__ERR_SHUTDOWN ? -100 - code : PS_EPROTO;
}

//  Copy a PULL reply's frames (one part of it) into the pending request's
//  tensors; the last part checks that every element came
static int
s_take_pull (ps_worker_t *self, pending_t *pending, const ps_envelope_t *reply, size_t nframes)
{
    ps_problem_t problem;
    if (ps_codec_check_frames (reply, self->frames, nframes, &problem))
        return s_fail (self, PS_EPROTO, "pull reply: %s", problem.message);
    size_t tensor = 0;
    size_t frame = 0;
    uint64_t *filled = pending->filled;
    int status = PS_OK;
    for (size_t i = 0; i < reply->n_slices && status == PS_OK; i++) {
        const ps_slice_t *slice = reply->slices[i];
        //  Slices come in request order: look from the current tensor on
        size_t tries = 0;
        while (tries < pending->ntensors && strcmp (pending->tensors[tensor].key, slice->key)) {
            tensor = (tensor + 1) % pending->ntensors;
            tries++;
        }
        ps_tensor_t *target = &pending->tensors[tensor];
        if (tries == pending->ntensors || slice->offset > target->count ||
            slice->count > target->count - slice->offset)
            status = s_fail (self, PS_EPROTO,
                             "pull reply slice '%s' [%" PRIu64 ", +%" PRIu64
                             ") fits no requested tensor",
                             slice->key, slice->offset, slice->count);
        else if (slice->count) {
            memcpy (target->data + slice->offset, zmq_msg_data (&self->frames[frame++]),
                    slice->count * sizeof (float));
            filled[tensor] += slice->count;
        }
    }
    for (size_t i = 0; i < pending->ntensors && status == PS_OK && !reply->more; i++)
        if (filled[i] != pending->tensors[i].count)
            status =
                s_fail (self, PS_EPROTO, "pull reply filled %" PRIu64 " of %zu elements of '%s'",
                        filled[i], pending->tensors[i].count, pending->tensors[i].key);
    return status;
}

static int
s_take_reply (ps_worker_t *self, pending_t *pending, const ps_envelope_t *reply, size_t nframes)
{
    if (reply->type == PSMQ__MSG_TYPE__ERROR) {
        int code = reply->error ? reply->error->code : 0;
        if (pending->type == PSMQ__MSG_TYPE__CLOCK)
            self->clock = pending->clock; //  the broker did not advance us
        return s_fail (self, s_broker_status (code), "broker: %s",
                       reply->error ? reply->error->message : "error without detail");
    }
    if ((int)reply->type != pending->type)
        return s_fail (self, PS_EPROTO, "%s reply to a %s request",
                       ps_codec_type_name (reply->type), ps_codec_type_name (pending->type));
    switch (pending->type) {
    case PSMQ__MSG_TYPE__PULL: return s_take_pull (self, pending, reply, nframes);
    case PSMQ__MSG_TYPE__CLOCK:
        if (reply->clock != pending->clock + 1)
            return s_fail (self, PS_EPROTO, "clock reply %" PRId64 ", expected %" PRId64,
                           reply->clock, pending->clock + 1);
        return PS_OK;
    case PSMQ__MSG_TYPE__INFO:
        *pending->info = strdup (reply->info);
        return *pending->info ? PS_OK : s_fail (self, PS_ENOMEM, "out of memory");
    default: return PS_OK;
    }
}

static int
s_reserve_frames (ps_worker_t *self, size_t count)
{
    if (count <= self->frame_capacity)
        return 0;
    size_t capacity = self->frame_capacity ? self->frame_capacity * 2 : 64;
    while (capacity < count)
        capacity *= 2;
    zmq_msg_t *frames = realloc (self->frames, capacity * sizeof *frames);
    if (!frames)
        return -1;
    self->frames = frames;
    self->frame_capacity = capacity;
    return 0;
}

//  Receive one message (waiting up to timeout_ms) and settle its ticket.
//  PS_OK when a message was handled, PS_ETIMEOUT, PS_EINTR.
static int
s_receive_one (ps_worker_t *self, int timeout_ms)
{
    if (!self->dealer)
        return s_fail (self, PS_ECONNECT, "no connection to %s", self->broker);
    zmq_pollitem_t items[] = {{self->dealer, 0, ZMQ_POLLIN, 0}};
    int rc = zmq_poll (items, 1, timeout_ms);
    if (rc == -1)
        return zmq_errno () == EINTR ? PS_EINTR : s_fail (self, PS_ECONNECT, "poll failed");
    if (rc == 0)
        return PS_ETIMEOUT;

    zmq_msg_t head;
    zmq_msg_init (&head);
    if (zmq_msg_recv (&head, self->dealer, 0) == -1) {
        zmq_msg_close (&head);
        return zmq_errno () == EINTR ? PS_EINTR : PS_ECONNECT;
    }
    size_t nframes = 0;
    bool more = zmq_msg_more (&head);
    bool overflow = false;
    while (more) {
        if (nframes == PS_MAX_SLICES) {
            //  More frames than any reply may carry: read the rest, keep none
            zmq_msg_t extra;
            zmq_msg_init (&extra);
            zmq_msg_recv (&extra, self->dealer, 0);
            more = zmq_msg_more (&extra);
            zmq_msg_close (&extra);
            overflow = true;
            continue;
        }
        if (s_reserve_frames (self, nframes + 1)) {
            zmq_msg_close (&head);
            for (size_t i = 0; i < nframes; i++)
                zmq_msg_close (&self->frames[i]);
            return s_fail (self, PS_ENOMEM, "out of memory receiving a reply");
        }
        zmq_msg_init (&self->frames[nframes]);
        zmq_msg_recv (&self->frames[nframes], self->dealer, 0);
        more = zmq_msg_more (&self->frames[nframes]);
        nframes++;
    }
    ps_problem_t problem;
    ps_envelope_t *reply = overflow ? NULL
                                    : ps_codec_decode (self->codec, zmq_msg_data (&head),
                                                       zmq_msg_size (&head), &problem);
    if (overflow)
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_TOO_LARGE, "a message of more than %d frames",
                        PS_MAX_SLICES);
    pending_t *pending = reply && reply->reply ? s_pending_find (self, reply->seq) : NULL;
    if (!reply)
        s_fail (self, PS_EPROTO, "reply from the broker does not parse: %s", problem.message);
    else if (!pending && reply->type == PSMQ__MSG_TYPE__ERROR && reply->error)
        //  An error we cannot pair (our message did not even parse)
        s_fail (self, s_broker_status (reply->error->code), "broker: %s", reply->error->message);
    else if (pending && !pending->complete) {
        pending->status = s_take_reply (self, pending, reply, nframes);
        //  A pull reply in parts completes with its last part (or an error)
        pending->complete = !reply->more || pending->status != PS_OK;
        if (reply->min_clock)
            self->min_clock = reply->min_clock;
    }
    zmq_msg_close (&head);
    for (size_t i = 0; i < nframes; i++)
        zmq_msg_close (&self->frames[i]);
    return PS_OK;
}

int
ps_worker_wait (ps_worker_t *self, ps_ticket_t ticket, int timeout_ms)
{
    if (!self)
        return PS_EINVAL;
    pending_t *pending = s_pending_find (self, ticket);
    if (!pending)
        return s_fail (self, PS_ETICKET, "ticket %" PRIu64 " is not pending", ticket);
    if (timeout_ms < 0)
        timeout_ms = pending->type == PSMQ__MSG_TYPE__CLOCK ? self->options.clock_timeout_ms
                                                            : self->options.timeout_ms;
    int64_t deadline = s_now_ms () + timeout_ms;
    while (true) {
        pending = s_pending_find (self, ticket);
        if (pending->complete) {
            int status = pending->status;
            s_pending_remove (self, pending);
            return status;
        }
        int64_t left = deadline - s_now_ms ();
        if (left <= 0)
            return s_fail (self, PS_ETIMEOUT, "no %s reply from %s within %d ms",
                           ps_codec_type_name (pending->type), self->broker, timeout_ms);
        int rc = s_receive_one (self, (int)left);
        if (rc == PS_EINTR || rc == PS_ECONNECT || rc == PS_ENOMEM)
            return rc;
    }
}

//  Wait for a ticket; on timeout forget it, so that a late reply is
//  ignored rather than written into buffers the caller reclaimed
static int
s_wait_or_forget (ps_worker_t *self, ps_ticket_t ticket, int timeout_ms)
{
    int status = ps_worker_wait (self, ticket, timeout_ms);
    pending_t *pending = s_pending_find (self, ticket);
    if (pending)
        s_pending_remove (self, pending);
    return status;
}

size_t
ps_worker_pending (const ps_worker_t *self)
{
    return self ? self->npending : 0;
}

// ------------------------------------------------------------ connect

static void
s_destroy (ps_worker_t *self)
{
    s_heartbeat_stop (self);
    while (self->npending)
        s_pending_remove (self, &self->pending[0]);
    if (self->dealer) {
        int linger = 0;
        zmq_setsockopt (self->dealer, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close (self->dealer);
    }
    if (self->context)
        zmq_ctx_term (self->context);
    //  After zmq_ctx_term: libzmq has released every pooled frame
    ps_framepool_destroy (&self->pool);
    ps_codec_destroy (&self->codec);
    free (self->pending);
    free (self->slices);
    free (self->slice_ptrs);
    free (self->frames);
    free (self->broker);
    free (self);
}

//  A DEALER with our options and routing id, connected to the broker
static void *
s_dealer_new (ps_worker_t *self)
{
    void *dealer = zmq_socket (self->context, ZMQ_DEALER);
    if (!dealer)
        return NULL;
    int64_t max_frame = PS_MAX_FRAME_BYTES;
    int hwm = PS_SNDHWM;
    int timeout = self->options.timeout_ms;
    int linger = 0;
    zmq_setsockopt (dealer, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
    zmq_setsockopt (dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (dealer, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (dealer, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt (dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (dealer, ZMQ_ROUTING_ID, self->routing_id, sizeof self->routing_id);
    if (zmq_connect (dealer, self->broker)) {
        zmq_close (dealer);
        return NULL;
    }
    return dealer;
}

static int
s_open (ps_worker_t *self, const char *endpoint)
{
    self->context = zmq_ctx_new ();
    if (!self->context)
        return s_fail (self, PS_ECONNECT, "cannot create a ZeroMQ context");
    //  Our own routing id survives a reconnect: the broker keeps knowing us
    self->routing_id[0] = 'W';
    for (size_t i = 1; i < sizeof self->routing_id; i++)
        self->routing_id[i] = (uint8_t)(s_random () >> (8 * (i % 8)));
    self->pool = ps_framepool_new (PS_CHUNK_BYTES, 256);
    if (!self->pool)
        return s_fail (self, PS_ENOMEM, "out of memory");
    self->dealer = s_dealer_new (self);
    if (!self->dealer)
        return s_fail (self, PS_ECONNECT, "cannot connect to '%s': %s", endpoint,
                       zmq_strerror (zmq_errno ()));
    return PS_OK;
}

static int
s_hello (ps_worker_t *self)
{
    pending_t *pending = s_pending_add (self, PSMQ__MSG_TYPE__HELLO);
    if (!pending)
        return PS_ENOMEM;
    uint64_t seq = pending->seq;
    ps_envelope_t request;
    s_envelope_init (self, &request, PSMQ__MSG_TYPE__HELLO, seq);
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = self->options.world_size;
    hello.weight = self->options.local_workers > 1 ? self->options.local_workers : 1;
    request.hello = &hello;
    int status = s_send (self, &request, NULL, false);
    if (status)
        return status;

    //  The HELLO reply carries what we need, so receive it here directly
    int64_t deadline = s_now_ms () + self->options.timeout_ms;
    zmq_pollitem_t items[] = {{self->dealer, 0, ZMQ_POLLIN, 0}};
    while (true) {
        int64_t left = deadline - s_now_ms ();
        if (left <= 0)
            return s_fail (self, PS_ETIMEOUT,
                           "no answer from %s within %d ms: is psbroker running there?",
                           self->broker, self->options.timeout_ms);
        int rc = zmq_poll (items, 1, (long)left);
        if (rc == -1)
            return zmq_errno () == EINTR ? PS_EINTR : PS_ECONNECT;
        if (rc == 0)
            continue;
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        zmq_msg_recv (&msg, self->dealer, 0);
        bool more = zmq_msg_more (&msg);
        ps_problem_t problem;
        ps_envelope_t *reply =
            ps_codec_decode (self->codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
        if (reply && reply->reply && reply->seq == seq) {
            if (reply->type == PSMQ__MSG_TYPE__ERROR)
                status = s_fail (self, s_broker_status (reply->error ? reply->error->code : 0),
                                 "broker refused hello: %s",
                                 reply->error ? reply->error->message : "no detail");
            else if (reply->type != PSMQ__MSG_TYPE__HELLO || !reply->hello)
                status = s_fail (self, PS_EPROTO, "hello answered with %s",
                                 ps_codec_type_name (reply->type));
            else {
                self->staleness = reply->hello->staleness;
                self->clock = reply->clock;
                self->min_clock = reply->min_clock;
                status =
                    s_heartbeat_start (self, reply->hello->session, reply->hello->heartbeat_ms);
            }
            zmq_msg_close (&msg);
            while (more) {
                zmq_msg_init (&msg);
                zmq_msg_recv (&msg, self->dealer, 0);
                more = zmq_msg_more (&msg);
                zmq_msg_close (&msg);
            }
            s_pending_remove (self, s_pending_find (self, seq));
            return status;
        }
        zmq_msg_close (&msg);
        while (more) {
            zmq_msg_init (&msg);
            zmq_msg_recv (&msg, self->dealer, 0);
            more = zmq_msg_more (&msg);
            zmq_msg_close (&msg);
        }
    }
}

ps_worker_t *
ps_worker_connect (const ps_worker_options_t *options, int *status_p)
{
    int status_local;
    int *status = status_p ? status_p : &status_local;
    uint32_t local = options && options->local_workers > 1 ? options->local_workers : 1;
    if (!options || !options->broker || options->world_size == 0 ||
        options->world_size > PS_MAX_WORKERS || options->rank >= options->world_size ||
        local > options->world_size - options->rank || options->timeout_ms <= 0 ||
        options->clock_timeout_ms <= 0) {
        fprintf (
            stderr,
            "ps_worker_connect: needs a broker endpoint, rank + local_workers <= world_size <= %d "
            "and positive timeouts\n",
            PS_MAX_WORKERS);
        *status = PS_EINVAL;
        return NULL;
    }
    ps_worker_t *self = calloc (1, sizeof *self);
    if (!self) {
        *status = PS_ENOMEM;
        return NULL;
    }
    self->options = *options;
    self->broker = strdup (options->broker);
    self->options.broker = self->broker;
    self->codec = ps_codec_new ();
    self->next_seq = 1;
    *status = self->broker && self->codec ? s_open (self, self->broker) : PS_ENOMEM;
    if (*status == PS_OK)
        *status = s_hello (self);
    if (*status != PS_OK) {
        fprintf (stderr, "psworker: rank %u cannot join %s: %s\n", options->rank, options->broker,
                 self->error[0] ? self->error : ps_strerror (*status));
        s_destroy (self);
        return NULL;
    }
    return self;
}

int
ps_worker_close (ps_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return PS_EINVAL;
    ps_worker_t *self = *self_p;
    *self_p = NULL;
    int status = PS_ENOMEM;
    pending_t *pending = s_pending_add (self, PSMQ__MSG_TYPE__BYE);
    if (pending) {
        ps_envelope_t request;
        s_envelope_init (self, &request, PSMQ__MSG_TYPE__BYE, pending->seq);
        ps_ticket_t ticket = pending->seq;
        status = s_send (self, &request, NULL, false);
        if (status == PS_OK)
            status = s_wait_or_forget (self, ticket, BYE_TIMEOUT_MS);
    }
    s_destroy (self);
    return status;
}

uint32_t
ps_worker_rank (const ps_worker_t *self)
{
    return self->options.rank;
}

uint32_t
ps_worker_world_size (const ps_worker_t *self)
{
    return self->options.world_size;
}

int32_t
ps_worker_staleness (const ps_worker_t *self)
{
    return self->staleness;
}

int64_t
ps_worker_current_clock (const ps_worker_t *self)
{
    return self->clock;
}

int64_t
ps_worker_min_clock (const ps_worker_t *self)
{
    return self->min_clock;
}

const char *
ps_worker_error (const ps_worker_t *self)
{
    return self ? self->error : "no worker";
}

// ------------------------------------------------------------ operations

static int
s_check_tensors (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, size_t *nslices)
{
    if (!tensors || ntensors == 0)
        return s_fail (self, PS_EINVAL, "no tensors given");
    size_t slices = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < ntensors; i++) {
        ps_problem_t problem;
        if (!tensors[i].key || ps_codec_check_key (tensors[i].key, &problem))
            return s_fail (self, PS_EINVAL, "tensor %zu: %s", i,
                           tensors[i].key ? problem.message : "no key");
        if (!tensors[i].data || tensors[i].count == 0 || tensors[i].count > PS_MAX_TENSOR_ELEMS)
            return s_fail (self, PS_EINVAL, "tensor '%s': needs data and 1..%llu elements",
                           tensors[i].key, (unsigned long long)PS_MAX_TENSOR_ELEMS);
        slices += (tensors[i].count + CHUNK_FLOATS - 1) / CHUNK_FLOATS;
        bytes += tensors[i].count * sizeof (float);
    }
    if (slices > PS_MAX_SLICES || bytes > (uint64_t)PS_MAX_MESSAGE_BYTES)
        return s_fail (self, PS_EINVAL,
                       "%" PRIu64 " bytes in %zu slices is more than one message may carry "
                       "(%lld bytes, %d slices): split the call",
                       bytes, slices, PS_MAX_MESSAGE_BYTES, PS_MAX_SLICES);
    if (s_reserve_slices (self, slices))
        return s_fail (self, PS_ENOMEM, "out of memory");
    *nslices = slices;
    return PS_OK;
}

//  Lay the tensors out as slices of at most CHUNK_FLOATS; sources (when
//  not NULL) gets each slice's data pointer
static size_t
s_chunk_tensors (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                 const float **sources)
{
    size_t used = 0;
    for (size_t i = 0; i < ntensors; i++)
        for (size_t offset = 0; offset < tensors[i].count; offset += CHUNK_FLOATS) {
            size_t left = tensors[i].count - offset;
            size_t count = left < CHUNK_FLOATS ? left : CHUNK_FLOATS;
            s_slice (self, used, tensors[i].key, offset, count, tensors[i].count);
            if (sources)
                sources[used] = tensors[i].data + offset;
            used++;
        }
    return used;
}

//  Lay out and send a push; lend: frames point into the caller's tensors
static int
s_push (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, uint32_t grad_count,
        ps_ticket_t *ticket, bool lend)
{
    if (!self || !ticket)
        return PS_EINVAL;
    size_t nslices = 0;
    int status = s_check_tensors (self, tensors, ntensors, &nslices);
    if (status)
        return status;
    const float **sources = malloc (nslices * sizeof *sources);
    pending_t *pending = sources ? s_pending_add (self, PSMQ__MSG_TYPE__PUSH) : NULL;
    if (!pending) {
        free (sources);
        return s_fail (self, PS_ENOMEM, "out of memory");
    }
    ps_envelope_t request;
    s_envelope_init (self, &request, PSMQ__MSG_TYPE__PUSH, pending->seq);
    request.grad_count = grad_count ? grad_count : 1;
    request.n_slices = s_chunk_tensors (self, tensors, ntensors, sources);
    request.slices = self->slice_ptrs;
    *ticket = pending->seq;
    status = s_send (self, &request, sources, lend);
    free (sources);
    if (status)
        s_pending_remove (self, s_pending_find (self, *ticket));
    return status;
}

int
ps_worker_pull_async (ps_worker_t *self, ps_tensor_t *tensors, size_t ntensors, ps_ticket_t *ticket)
{
    if (!self || !ticket)
        return PS_EINVAL;
    size_t nslices = 0;
    int status = s_check_tensors (self, tensors, ntensors, &nslices);
    if (status)
        return status;
    if (s_reserve_slices (self, ntensors))
        return s_fail (self, PS_ENOMEM, "out of memory");
    ps_tensor_t *copy = malloc (ntensors * sizeof *copy);
    uint64_t *filled = calloc (ntensors, sizeof *filled);
    pending_t *pending = copy && filled ? s_pending_add (self, PSMQ__MSG_TYPE__PULL) : NULL;
    if (!pending) {
        free (copy);
        free (filled);
        return s_fail (self, PS_ENOMEM, "out of memory");
    }
    memcpy (copy, tensors, ntensors * sizeof *copy);
    pending->tensors = copy;
    pending->filled = filled;
    pending->ntensors = ntensors;
    ps_envelope_t request;
    s_envelope_init (self, &request, PSMQ__MSG_TYPE__PULL, pending->seq);
    for (size_t i = 0; i < ntensors; i++)
        s_slice (self, i, tensors[i].key, 0, tensors[i].count, 0);
    request.n_slices = ntensors;
    request.slices = self->slice_ptrs;
    *ticket = pending->seq;
    status = s_send (self, &request, NULL, false);
    if (status)
        s_pending_remove (self, s_pending_find (self, *ticket));
    return status;
}

int
ps_worker_clock_async (ps_worker_t *self, ps_ticket_t *ticket)
{
    if (!self || !ticket)
        return PS_EINVAL;
    pending_t *pending = s_pending_add (self, PSMQ__MSG_TYPE__CLOCK);
    if (!pending)
        return s_fail (self, PS_ENOMEM, "out of memory");
    pending->clock = self->clock;
    ps_envelope_t request;
    s_envelope_init (self, &request, PSMQ__MSG_TYPE__CLOCK, pending->seq);
    *ticket = pending->seq;
    int status = s_send (self, &request, NULL, false);
    if (status) {
        s_pending_remove (self, s_pending_find (self, *ticket));
        return status;
    }
    //  The broker advances us on receipt: pushes sent from now on belong
    //  to the next clock, even before the bound lets the reply come
    self->clock++;
    return PS_OK;
}

int
ps_worker_push_async (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                      uint32_t grad_count, ps_ticket_t *ticket)
{
    return s_push (self, tensors, ntensors, grad_count, ticket, false);
}

//  Wait until libzmq has released every frame lent from the caller's
//  memory. By the time the reply comes the broker has them all, so this
//  is normally at once. When the broker never answered, the frames may sit
//  in the socket's queue: closing the socket (linger 0) makes libzmq's
//  reaper thread drop them whatever this thread does, and a new socket
//  with our routing id takes its place, so the broker still knows us.
static void
s_reclaim_lent (ps_worker_t *self)
{
    int64_t deadline = s_now_ms () + 200;
    while (atomic_load_explicit (&self->lent, memory_order_acquire) > 0) {
        if (self->dealer && s_now_ms () > deadline) {
            zmq_close (self->dealer);
            self->dealer = NULL;
        }
        sched_yield ();
    }
    if (!self->dealer) {
        self->dealer = s_dealer_new (self);
        if (!self->dealer)
            s_fail (self, PS_ECONNECT, "cannot reconnect to %s", self->broker);
    }
}

int
ps_worker_push (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, uint32_t grad_count)
{
    size_t bytes = 0;
    for (size_t i = 0; tensors && i < ntensors; i++)
        bytes += tensors[i].count * sizeof (float);
    ps_ticket_t ticket;
    int status = s_push (self, tensors, ntensors, grad_count, &ticket, bytes >= LEND_MIN_BYTES);
    if (status == PS_OK)
        status = s_wait_or_forget (self, ticket, -1);
    if (self)
        s_reclaim_lent (self);
    return status;
}

int
ps_worker_pull (ps_worker_t *self, ps_tensor_t *tensors, size_t ntensors)
{
    ps_ticket_t ticket;
    int status = ps_worker_pull_async (self, tensors, ntensors, &ticket);
    return status ? status : s_wait_or_forget (self, ticket, -1);
}

int
ps_worker_clock (ps_worker_t *self)
{
    ps_ticket_t ticket;
    int status = ps_worker_clock_async (self, &ticket);
    return status ? status : s_wait_or_forget (self, ticket, -1);
}

int
ps_worker_init (ps_worker_t *self, const char *key, size_t count, const float *initial,
                const ps_optim_settings_t *optim)
{
    if (!self)
        return PS_EINVAL;
    ps_tensor_t tensor = {.key = key, .data = (float *)initial, .count = count};
    static float placeholder;
    if (!initial)
        tensor.data = &placeholder; //  passes the check; nothing is sent
    size_t nslices = 0;
    int status = s_check_tensors (self, &tensor, 1, &nslices);
    if (status)
        return status;
    const float **sources = malloc (nslices * sizeof *sources);
    pending_t *pending = sources ? s_pending_add (self, PSMQ__MSG_TYPE__INIT) : NULL;
    if (!pending) {
        free (sources);
        return s_fail (self, PS_ENOMEM, "out of memory");
    }
    ps_envelope_t request;
    s_envelope_init (self, &request, PSMQ__MSG_TYPE__INIT, pending->seq);
    Psmq__Optim settings = PSMQ__OPTIM__INIT;
    if (optim) {
        settings.kind = (Psmq__OptimKind)optim->kind;
        settings.lr = optim->lr;
        settings.momentum = optim->momentum;
        settings.beta1 = optim->beta1;
        settings.beta2 = optim->beta2;
        settings.eps = optim->eps;
        settings.decay_steps = optim->decay_steps;
        request.optim = &settings;
    }
    if (initial)
        request.n_slices = s_chunk_tensors (self, &tensor, 1, sources);
    else {
        s_slice (self, 0, key, 0, 0, count);
        request.n_slices = 1;
    }
    request.slices = self->slice_ptrs;
    ps_ticket_t ticket = pending->seq;
    status = s_send (self, &request, initial ? sources : NULL, false);
    free (sources);
    if (status) {
        s_pending_remove (self, s_pending_find (self, ticket));
        return status;
    }
    return s_wait_or_forget (self, ticket, -1);
}

int
ps_worker_info (ps_worker_t *self, char **json)
{
    if (!self || !json)
        return PS_EINVAL;
    *json = NULL;
    pending_t *pending = s_pending_add (self, PSMQ__MSG_TYPE__INFO);
    if (!pending)
        return s_fail (self, PS_ENOMEM, "out of memory");
    pending->info = json;
    ps_envelope_t request;
    s_envelope_init (self, &request, PSMQ__MSG_TYPE__INFO, pending->seq);
    ps_ticket_t ticket = pending->seq;
    int status = s_send (self, &request, NULL, false);
    if (status) {
        s_pending_remove (self, s_pending_find (self, ticket));
        return status;
    }
    return s_wait_or_forget (self, ticket, -1);
}

int
ps_worker_query_info (const char *broker, int timeout_ms, char **json)
{
    if (!broker || !json)
        return PS_EINVAL;
    //  An unregistered worker: INFO is the one request that needs no HELLO
    ps_worker_t *self = calloc (1, sizeof *self);
    if (!self)
        return PS_ENOMEM;
    ps_worker_options_init (&self->options);
    if (timeout_ms > 0)
        self->options.timeout_ms = timeout_ms;
    self->broker = strdup (broker);
    self->options.broker = self->broker;
    self->codec = ps_codec_new ();
    self->next_seq = 1;
    int status = self->broker && self->codec ? s_open (self, self->broker) : PS_ENOMEM;
    if (status == PS_OK)
        status = ps_worker_info (self, json);
    s_destroy (self);
    return status;
}
