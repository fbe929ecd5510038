/*  =========================================================================
    ps_worker - the worker library

    The calling thread owns one DEALER socket per broker (a link) and does
    every send and receive itself, so a call costs one network round trip
    and no thread hop. Each request gets a sequence number, which is its
    ticket; replies are matched by it, so any number of requests may be in
    flight and a wait for one ticket completes the others it receives
    meanwhile (a pull's reply is copied into its buffers whichever wait
    receives it).

    In a group, a request goes out on every link that holds a part of its
    keys (ps_partition decides, the same way on every machine) under one
    sequence number, before any reply is awaited, and the ticket completes
    when each of those links has answered, or at the first error. Each
    broker sees its parts as whole keys of its own: offsets are translated
    here, on the way out and on the way back.

    Heartbeats come from a helper thread with a DEALER of its own per broker
    and the session tokens from the HELLO replies, so a worker that computes for
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
#include "ps_partition.h"

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
//  HELLOs to a group whose brokers name different clocks: the others may
//  have been between two brokers with a CLOCK, so we try again a little
//  later (after 20, 40, 60, 80 ms)
#define HELLO_ATTEMPTS 5
//  libzmq I/O threads: one per broker up to this many, so that sends to a
//  group go out in parallel
#define MAX_IO_THREADS 4

//  A set of links (brokers of the group), one bit each
typedef struct {
    uint64_t bits[PS_MAX_SHARDS / 64];
} linkset_t;

static void
s_linkset_add (linkset_t *set, uint32_t link)
{
    set->bits[link / 64] |= 1ULL << (link % 64);
}

static bool
s_linkset_has (const linkset_t *set, uint32_t link)
{
    return set->bits[link / 64] >> (link % 64) & 1;
}

static bool
s_linkset_equal (const linkset_t *a, const linkset_t *b)
{
    return memcmp (a, b, sizeof *a) == 0;
}

//  One broker of the group
typedef struct {
    char *endpoint;       //  as the worker was given it
    void *dealer;         //  requests and replies
    uint64_t session;     //  token its HELLO reply gave, for heartbeats
    int64_t min_clock;    //  slowest live clock in its last reply
    bool registered;      //  its HELLO was accepted: say BYE on close
    uint64_t incarnation; //  the broker process its HELLO reached
    bool forgotten;       //  it answered "not registered": restarted?
} link_t;

typedef struct {
    uint64_t seq;         //  the ticket
    int type;             //  PSMQ__MSG_TYPE__*
    bool complete;        //  every link answered, or one failed
    int status;           //  the outcome
    linkset_t sent;       //  links the request went out on
    linkset_t answered;   //  links whose whole reply came
    ps_tensor_t *tensors; //  PULL: where the reply goes (copied descriptors)
    ps_part_t *plan;      //  PULL: tensor i's part on link l at [i * nlinks + l]
    uint64_t *filled;     //  PULL: elements received per tensor, all parts
    size_t ntensors;      //  their number
    int64_t clock;        //  CLOCK: the clock finished
    char **info;          //  INFO: where the JSON text goes
} pending_t;

typedef struct {
    void *context;          //  the worker's ZeroMQ context
    link_t *links;          //  whose endpoints and sessions
    uint32_t nlinks;        //  their number
    char pipe_endpoint[64]; //  inproc address of the stop pipe
    uint32_t rank;          //  whose heartbeats
    int interval_ms;        //  how often
} heartbeat_args_t;

struct ps_worker_t {
    void *context;                      //  ours; an I/O thread per link, up to 4
    link_t *links;                      //  one per broker, in shard order
    uint32_t nlinks;                    //  brokers in the group
    zmq_pollitem_t *items;              //  the links' dealers, to wait on all
    ps_part_t *plan;                    //  the call at hand: tensor i's part on
                                        //  link l at [i * nlinks + l]
    size_t plan_capacity;               //  allocated
    ps_codec_t *codec;                  //  decodes replies
    ps_worker_options_t options;        //  as given; broker points to our copy
    char *broker;                       //  our copy of the endpoint list
    int32_t staleness;                  //  from HELLO
    uint32_t heartbeat_ms;              //  from HELLO: the shortest interval
    int64_t clock;                      //  clocks finished (as sent)
    bool joined;                        //  a HELLO reply came: staleness and clock set
    bool clocks_differ;                 //  the brokers' HELLO replies named different clocks
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
    case PS_EGROUP: return "broker group differs from the worker's list";
    case PS_ENONFINITE: return "broker: a gradient held a NaN or an infinity";
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
    void **dealers = calloc (args->nlinks, sizeof *dealers);
    uint8_t (*packed)[64] = calloc (args->nlinks, sizeof *packed);
    size_t *sizes = calloc (args->nlinks, sizeof *sizes);
    bool ready = pipe && dealers && packed && sizes && zmq_connect (pipe, args->pipe_endpoint) == 0;
    int linger = 0;
    for (uint32_t i = 0; ready && i < args->nlinks; i++) {
        dealers[i] = zmq_socket (args->context, ZMQ_DEALER);
        if (!dealers[i]) {
            ready = false;
            break;
        }
        zmq_setsockopt (dealers[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_connect (dealers[i], args->links[i].endpoint);
        ps_envelope_t beat = PSMQ__ENVELOPE__INIT;
        beat.version = PS_PROTOCOL_VERSION;
        beat.type = PSMQ__MSG_TYPE__HEARTBEAT;
        beat.worker = args->rank;
        beat.session = args->links[i].session;
        sizes[i] = psmq__envelope__pack (&beat, packed[i]);
    }
    zmq_pollitem_t items[] = {{pipe, 0, ZMQ_POLLIN, 0}};
    while (ready) {
        int rc = zmq_poll (items, 1, args->interval_ms);
        if (rc == -1 && zmq_errno () != EINTR)
            break;
        if (rc > 0)
            break; //  anything on the pipe means stop
        for (uint32_t i = 0; i < args->nlinks; i++)
            zmq_send (dealers[i], packed[i], sizes[i], ZMQ_DONTWAIT);
    }
    for (uint32_t i = 0; dealers && i < args->nlinks; i++)
        if (dealers[i])
            zmq_close (dealers[i]);
    if (pipe)
        zmq_close (pipe);
    free (dealers);
    free (packed);
    free (sizes);
    return NULL;
}

static int
s_heartbeat_start (ps_worker_t *self)
{
    heartbeat_args_t *args = &self->heartbeat;
    args->context = self->context;
    args->links = self->links;
    args->nlinks = self->nlinks;
    args->rank = self->options.rank;
    args->interval_ms = self->heartbeat_ms ? (int)self->heartbeat_ms : PS_DEFAULT_HEARTBEAT_MS;
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
    free (pending->plan);
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

//  Send the envelope on a link, then one frame per slice with count > 0
//  taken from sources[i] (NULL: the request carries no data). 0 or a status.
static int
s_send (ps_worker_t *self, link_t *link, const ps_envelope_t *envelope, const float *const *sources,
        bool lend)
{
    if (!link->dealer)
        return s_fail (self, PS_ECONNECT, "no connection to %s", link->endpoint);
    zmq_msg_t msg;
    if (ps_codec_encode (envelope, &msg))
        return s_fail (self, PS_ENOMEM, "out of memory encoding a request");
    bool data = sources && envelope->n_slices > 0;
    if (zmq_msg_send (&msg, link->dealer, data ? ZMQ_SNDMORE : 0) == -1) {
        zmq_msg_close (&msg);
        return s_fail (self, PS_ETIMEOUT, "cannot send to %s: %s", link->endpoint,
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
        if (zmq_msg_send (&msg, link->dealer, i < last ? ZMQ_SNDMORE : 0) == -1) {
            zmq_msg_close (&msg);
            return s_fail (self, PS_ECONNECT, "send to %s failed: %s", link->endpoint,
                           zmq_strerror (zmq_errno ()));
        }
    }
    return PS_OK;
}

//  Send a request on one link as part of the ticket's request; the ticket
//  then waits for that link's reply
static int
s_send_part (ps_worker_t *self, uint32_t link, ps_ticket_t ticket, const ps_envelope_t *request,
             const float *const *sources, bool lend)
{
    int status = s_send (self, &self->links[link], request, sources, lend);
    if (status == PS_OK)
        s_linkset_add (&s_pending_find (self, ticket)->sent, link);
    return status;
}

//  Send a request without data to every link
static int
s_send_all (ps_worker_t *self, ps_ticket_t ticket, const ps_envelope_t *request)
{
    for (uint32_t link = 0; link < self->nlinks; link++) {
        int status = s_send_part (self, link, ticket, request, NULL, false);
        if (status)
            return status;
    }
    return PS_OK;
}

//  A request that could not go out: forget its ticket
static int
s_abandon (ps_worker_t *self, ps_ticket_t ticket, int status)
{
    pending_t *pending = s_pending_find (self, ticket);
    if (pending)
        s_pending_remove (self, pending);
    return status;
}

// ------------------------------------------------------------ replies

static int
s_broker_status (int code)
{
    return code > 0 && code <= PSMQ__ERR_CODE__ERR_NONFINITE ? -100 - code : PS_EPROTO;
}

//  Copy a PULL reply's frames (one part of one link's reply) into the
//  pending request's tensors, at the offsets of that link's parts
static int
s_take_pull (ps_worker_t *self, uint32_t link, pending_t *pending, const ps_envelope_t *reply,
             size_t nframes)
{
    ps_problem_t problem;
    const char *endpoint = self->links[link].endpoint;
    if (ps_codec_check_frames (reply, self->frames, nframes, &problem))
        return s_fail (self, PS_EPROTO, "pull reply from %s: %s", endpoint, problem.message);
    size_t tensor = 0;
    size_t frame = 0;
    for (size_t i = 0; i < reply->n_slices; i++) {
        const ps_slice_t *slice = reply->slices[i];
        //  Slices come in request order: look from the current tensor on
        size_t tries = 0;
        while (tries < pending->ntensors && strcmp (pending->tensors[tensor].key, slice->key)) {
            tensor = (tensor + 1) % pending->ntensors;
            tries++;
        }
        const ps_part_t *part =
            tries < pending->ntensors ? &pending->plan[tensor * self->nlinks + link] : NULL;
        if (!part || slice->offset > part->count || slice->count > part->count - slice->offset)
            return s_fail (self, PS_EPROTO,
                           "pull reply slice '%s' [%" PRIu64 ", +%" PRIu64
                           ") from %s fits no requested tensor",
                           slice->key, slice->offset, slice->count, endpoint);
        if (slice->count) {
            float *target = pending->tensors[tensor].data + part->offset + slice->offset;
            memcpy (target, zmq_msg_data (&self->frames[frame++]), slice->count * sizeof (float));
            pending->filled[tensor] += slice->count;
        }
    }
    return PS_OK;
}

//  When every link has answered a pull, every element must have come
static int
s_check_pull_filled (ps_worker_t *self, const pending_t *pending)
{
    for (size_t i = 0; i < pending->ntensors; i++)
        if (pending->filled[i] != pending->tensors[i].count)
            return s_fail (self, PS_EPROTO,
                           "pull replies filled %" PRIu64 " of %zu elements of '%s'",
                           pending->filled[i], pending->tensors[i].count, pending->tensors[i].key);
    return PS_OK;
}

//  Every broker of the group must run the same job: one staleness, one
//  clock to start from
static int
s_take_hello (ps_worker_t *self, link_t *link, const ps_envelope_t *reply)
{
    if (!reply->hello)
        return s_fail (self, PS_EPROTO, "hello reply from %s without its settings", link->endpoint);
    link->session = reply->hello->session;
    link->registered = true;
    link->incarnation = reply->hello->incarnation;
    uint32_t interval = reply->hello->heartbeat_ms;
    if (interval && (!self->heartbeat_ms || interval < self->heartbeat_ms))
        self->heartbeat_ms = interval;
    if (!self->joined) {
        self->joined = true;
        self->staleness = reply->hello->staleness;
        self->clock = reply->clock;
        return PS_OK;
    }
    if (reply->hello->staleness != self->staleness)
        return s_fail (self, PS_EGROUP,
                       "brokers of one group disagree: %s has staleness %d, another %d",
                       link->endpoint, reply->hello->staleness, self->staleness);
    self->clocks_differ |= reply->clock != self->clock;
    if (reply->clock != self->clock)
        return s_fail (self, PS_EGROUP,
                       "brokers of one group disagree on the job's clock: %s says %" PRId64
                       ", another %" PRId64 " (was one restarted?)",
                       link->endpoint, reply->clock, self->clock);
    return PS_OK;
}

static int
s_take_reply (ps_worker_t *self, uint32_t link, pending_t *pending, const ps_envelope_t *reply,
              size_t nframes)
{
    const char *endpoint = self->links[link].endpoint;
    if (reply->type == PSMQ__MSG_TYPE__ERROR) {
        int code = reply->error ? reply->error->code : 0;
        //  The broker did not advance us, except past a refused push
        if (pending->type == PSMQ__MSG_TYPE__CLOCK && code != PSMQ__ERR_CODE__ERR_NONFINITE)
            self->clock = pending->clock;
        if (code == PSMQ__ERR_CODE__ERR_NOT_REGISTERED)
            self->links[link].forgotten = true;
        return s_fail (self, s_broker_status (code), "broker %s%s: %s", endpoint,
                       pending->type == PSMQ__MSG_TYPE__HELLO ? " refused hello" : "",
                       reply->error ? reply->error->message : "error without detail");
    }
    if ((int)reply->type != pending->type)
        return s_fail (self, PS_EPROTO, "%s reply from %s to a %s request",
                       ps_codec_type_name (reply->type), endpoint,
                       ps_codec_type_name (pending->type));
    switch (pending->type) {
    case PSMQ__MSG_TYPE__HELLO: return s_take_hello (self, &self->links[link], reply);
    case PSMQ__MSG_TYPE__PULL: return s_take_pull (self, link, pending, reply, nframes);
    case PSMQ__MSG_TYPE__CLOCK:
        if (reply->clock != pending->clock + 1)
            return s_fail (self, PS_EPROTO, "clock reply %" PRId64 " from %s, expected %" PRId64,
                           reply->clock, endpoint, pending->clock + 1);
        return PS_OK;
    case PSMQ__MSG_TYPE__INFO:
        *pending->info = strdup (reply->info);
        return *pending->info ? PS_OK : s_fail (self, PS_ENOMEM, "out of memory");
    default: return PS_OK;
    }
}

//  Settle one link's (part of a) reply: the ticket completes when every
//  link it went to has answered in full, or at the first failure. A HELLO
//  waits for every answer even so: the brokers that accepted it must be
//  known, to say BYE to them
static void
s_settle (ps_worker_t *self, uint32_t link, pending_t *pending, const ps_envelope_t *reply,
          size_t nframes)
{
    if (pending->complete || s_linkset_has (&pending->answered, link))
        return; //  a late part after a failure elsewhere, or a duplicate
    int status = s_take_reply (self, link, pending, reply, nframes);
    if (reply->min_clock)
        self->links[link].min_clock = reply->min_clock;
    if (status != PS_OK && pending->status == PS_OK)
        pending->status = status;
    if (status != PS_OK && pending->type != PSMQ__MSG_TYPE__HELLO) {
        pending->complete = true;
        return;
    }
    //  A pull reply in parts: this link is done with its last part
    if (reply->more && status == PS_OK)
        return;
    s_linkset_add (&pending->answered, link);
    if (!s_linkset_equal (&pending->answered, &pending->sent))
        return;
    pending->complete = true;
    if (pending->type == PSMQ__MSG_TYPE__PULL)
        pending->status = s_check_pull_filled (self, pending);
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

//  Receive one whole message from a link that has one waiting, and settle
//  its ticket. PS_OK, or PS_ENOMEM / PS_EINTR / PS_ECONNECT.
static int
s_receive_from (ps_worker_t *self, uint32_t link)
{
    void *dealer = self->links[link].dealer;
    zmq_msg_t head;
    zmq_msg_init (&head);
    if (zmq_msg_recv (&head, dealer, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&head);
        int error = zmq_errno ();
        return error == EAGAIN ? PS_OK : error == EINTR ? PS_EINTR : PS_ECONNECT;
    }
    size_t nframes = 0;
    bool more = zmq_msg_more (&head);
    bool overflow = false;
    while (more) {
        if (nframes == PS_MAX_SLICES) {
            //  More frames than any reply may carry: read the rest, keep none
            zmq_msg_t extra;
            zmq_msg_init (&extra);
            zmq_msg_recv (&extra, dealer, 0);
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
        zmq_msg_recv (&self->frames[nframes], dealer, 0);
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
    const char *endpoint = self->links[link].endpoint;
    pending_t *pending = reply && reply->reply ? s_pending_find (self, reply->seq) : NULL;
    if (!reply)
        s_fail (self, PS_EPROTO, "reply from %s does not parse: %s", endpoint, problem.message);
    else if (!pending && reply->type == PSMQ__MSG_TYPE__ERROR && reply->error)
        //  An error we cannot pair (our message did not even parse)
        s_fail (self, s_broker_status (reply->error->code), "broker %s: %s", endpoint,
                reply->error->message);
    else if (pending && s_linkset_has (&pending->sent, link))
        s_settle (self, link, pending, reply, nframes);
    zmq_msg_close (&head);
    for (size_t i = 0; i < nframes; i++)
        zmq_msg_close (&self->frames[i]);
    return PS_OK;
}

//  Wait up to timeout_ms for messages on any link and handle every one
//  that is ready. PS_OK when something was handled, PS_ETIMEOUT, PS_EINTR.
static int
s_receive (ps_worker_t *self, int timeout_ms)
{
    for (uint32_t link = 0; link < self->nlinks; link++) {
        if (!self->links[link].dealer)
            return s_fail (self, PS_ECONNECT, "no connection to %s", self->links[link].endpoint);
        self->items[link] = (zmq_pollitem_t){self->links[link].dealer, 0, ZMQ_POLLIN, 0};
    }
    int rc = zmq_poll (self->items, (int)self->nlinks, timeout_ms);
    if (rc == -1)
        return zmq_errno () == EINTR ? PS_EINTR : s_fail (self, PS_ECONNECT, "poll failed");
    if (rc == 0)
        return PS_ETIMEOUT;
    for (uint32_t link = 0; link < self->nlinks; link++) {
        if (!(self->items[link].revents & ZMQ_POLLIN))
            continue;
        int status = s_receive_from (self, link);
        if (status)
            return status;
    }
    return PS_OK;
}

//  Name the links a pending request still waits for, for a timeout message
static void
s_silent_links (ps_worker_t *self, const pending_t *pending, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (uint32_t link = 0; link < self->nlinks && used < size; link++)
        if (s_linkset_has (&pending->sent, link) && !s_linkset_has (&pending->answered, link))
            used += (size_t)snprintf (out + used, size - used, "%s%s", used ? ", " : "",
                                      self->links[link].endpoint);
}

//  A clock may wait for stragglers, and so may a pull sent after a clock
//  that has not passed yet: the broker answers it only once the bound lets
//  that clock pass
static bool
s_waits_on_bound (const ps_worker_t *self, const pending_t *pending)
{
    if (pending->type == PSMQ__MSG_TYPE__CLOCK)
        return true;
    if (pending->type != PSMQ__MSG_TYPE__PULL)
        return false;
    for (size_t i = 0; i < self->npending; i++)
        if (self->pending[i].type == PSMQ__MSG_TYPE__CLOCK && !self->pending[i].complete &&
            self->pending[i].seq < pending->seq)
            return true;
    return false;
}

//  The incarnation an INFO reply names, 0 when it names none
static uint64_t
s_info_incarnation (const char *json)
{
    const char *field = json ? strstr (json, "\"incarnation\":\"") : NULL;
    return field ? strtoull (field + strlen ("\"incarnation\":\""), NULL, 16) : 0;
}

//  A broker answered "not registered": when it is another process than
//  the one our HELLO reached, say that it restarted, which is what the
//  user needs to know (an eviction has another cure)
static void
s_explain_forgotten (ps_worker_t *self)
{
    char detail[sizeof self->error];
    snprintf (detail, sizeof detail, "%s", self->error);
    for (uint32_t i = 0; i < self->nlinks; i++) {
        link_t *link = &self->links[i];
        if (!link->forgotten || !link->incarnation)
            continue;
        link->forgotten = false;
        char *json = NULL;
        int saved_timeout = self->options.timeout_ms;
        self->options.timeout_ms = saved_timeout < 2000 ? saved_timeout : 2000;
        int status = ps_worker_info_shard (self, i, &json);
        self->options.timeout_ms = saved_timeout;
        uint64_t now = status == PS_OK ? s_info_incarnation (json) : 0;
        free (json);
        if (now && now != link->incarnation) {
            s_fail (self, PS_ENOT_REGISTERED,
                    "broker %s restarted (incarnation %016" PRIx64 ", was %016" PRIx64
                    "): it no longer knows this worker",
                    link->endpoint, now, link->incarnation);
            return;
        }
    }
    s_fail (self, PS_ENOT_REGISTERED, "%s", detail);
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
        timeout_ms = s_waits_on_bound (self, pending) ? self->options.clock_timeout_ms
                                                      : self->options.timeout_ms;
    int64_t deadline = s_now_ms () + timeout_ms;
    while (true) {
        pending = s_pending_find (self, ticket);
        if (pending->complete) {
            int status = pending->status;
            s_pending_remove (self, pending);
            if (status == PS_ENOT_REGISTERED)
                s_explain_forgotten (self);
            return status;
        }
        int64_t left = deadline - s_now_ms ();
        if (left <= 0) {
            char silent[512];
            s_silent_links (self, pending, silent, sizeof silent);
            return s_fail (self, PS_ETIMEOUT, "no %s reply from %s within %d ms%s",
                           ps_codec_type_name (pending->type), silent, timeout_ms,
                           pending->type == PSMQ__MSG_TYPE__HELLO ? ": is psbroker running there?"
                                                                  : "");
        }
        int rc = s_receive (self, (int)left);
        if (rc == PS_EINTR || rc == PS_ECONNECT || rc == PS_ENOMEM)
            return rc;
    }
}

//  Wait for a ticket; on timeout forget it, so that a late reply is
//  ignored rather than written into buffers the caller reclaimed
static int
s_wait_or_forget (ps_worker_t *self, ps_ticket_t ticket, int timeout_ms)
{
    return s_abandon (self, ticket, ps_worker_wait (self, ticket, timeout_ms));
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
    for (uint32_t link = 0; self->links && link < self->nlinks; link++)
        if (self->links[link].dealer)
            zmq_close (self->links[link].dealer); //  linger 0, set at creation
    if (self->context)
        zmq_ctx_term (self->context);
    //  After zmq_ctx_term: libzmq has released every pooled frame
    ps_framepool_destroy (&self->pool);
    ps_codec_destroy (&self->codec);
    for (uint32_t link = 0; self->links && link < self->nlinks; link++)
        free (self->links[link].endpoint);
    free (self->links);
    free (self->items);
    free (self->plan);
    free (self->pending);
    free (self->slices);
    free (self->slice_ptrs);
    free (self->frames);
    free (self->broker);
    free (self);
}

//  A DEALER with our options and routing id, connected to one broker
static void *
s_dealer_new (ps_worker_t *self, const char *endpoint)
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
    if (zmq_connect (dealer, endpoint)) {
        zmq_close (dealer);
        return NULL;
    }
    return dealer;
}

//  Split the endpoint list ("a,b,c") into links, in shard order
static int
s_parse_group (ps_worker_t *self, const char *list)
{
    uint32_t count = 1;
    for (const char *c = list; *c; c++)
        count += *c == ',';
    if (count > PS_MAX_SHARDS)
        return s_fail (self, PS_EINVAL, "%u brokers in the list, at most %d", count, PS_MAX_SHARDS);
    self->links = calloc (count, sizeof *self->links);
    self->items = calloc (count, sizeof *self->items);
    if (!self->links || !self->items)
        return s_fail (self, PS_ENOMEM, "out of memory");
    const char *start = list;
    for (uint32_t link = 0; link < count; link++) {
        const char *end = strchr (start, ',');
        size_t length = end ? (size_t)(end - start) : strlen (start);
        if (length == 0 || length > PS_MAX_ENDPOINT_LEN)
            return s_fail (self, PS_EINVAL, "broker %u of the list '%.300s' is %s", link, list,
                           length ? "too long" : "empty");
        self->links[link].endpoint = strndup (start, length);
        if (!self->links[link].endpoint)
            return s_fail (self, PS_ENOMEM, "out of memory");
        self->nlinks++;
        start += length + 1;
    }
    return PS_OK;
}

static int
s_open (ps_worker_t *self, const char *list)
{
    int status = s_parse_group (self, list);
    if (status)
        return status;
    self->context = zmq_ctx_new ();
    if (!self->context)
        return s_fail (self, PS_ECONNECT, "cannot create a ZeroMQ context");
    int io_threads = self->nlinks < MAX_IO_THREADS ? (int)self->nlinks : MAX_IO_THREADS;
    zmq_ctx_set (self->context, ZMQ_IO_THREADS, io_threads);
    //  Our own routing id survives a reconnect: the broker keeps knowing us
    self->routing_id[0] = 'W';
    for (size_t i = 1; i < sizeof self->routing_id; i++)
        self->routing_id[i] = (uint8_t)(s_random () >> (8 * (i % 8)));
    self->pool = ps_framepool_new (PS_CHUNK_BYTES, 256);
    if (!self->pool)
        return s_fail (self, PS_ENOMEM, "out of memory");
    for (uint32_t link = 0; link < self->nlinks; link++) {
        self->links[link].dealer = s_dealer_new (self, self->links[link].endpoint);
        if (!self->links[link].dealer)
            return s_fail (self, PS_ECONNECT, "cannot connect to '%s': %s",
                           self->links[link].endpoint, zmq_strerror (zmq_errno ()));
    }
    return PS_OK;
}

//  Register with every broker of the group at once
static int
s_hello (ps_worker_t *self)
{
    pending_t *pending = s_pending_add (self, PSMQ__MSG_TYPE__HELLO);
    char **group = calloc (self->nlinks, sizeof *group);
    if (!pending || !group) {
        free (group);
        return s_fail (self, PS_ENOMEM, "out of memory");
    }
    ps_ticket_t ticket = pending->seq;
    for (uint32_t link = 0; link < self->nlinks; link++)
        group[link] = self->links[link].endpoint;
    int status = PS_OK;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        ps_envelope_t request;
        s_envelope_init (self, &request, PSMQ__MSG_TYPE__HELLO, ticket);
        Psmq__Hello hello = PSMQ__HELLO__INIT;
        hello.world_size = self->options.world_size;
        hello.weight = self->options.local_workers > 1 ? self->options.local_workers : 1;
        hello.shard = link;
        hello.shards = self->nlinks;
        if (self->nlinks > 1) {
            hello.group = group;
            hello.n_group = self->nlinks;
        }
        request.hello = &hello;
        status = s_send_part (self, link, ticket, &request, NULL, false);
    }
    free (group);
    status = status ? s_abandon (self, ticket, status)
                    : s_wait_or_forget (self, ticket, self->options.timeout_ms);
    return status ? status : s_heartbeat_start (self);
}

//  Say BYE to every broker that registered us; a bounded wait
static int
s_leave (ps_worker_t *self)
{
    pending_t *pending = s_pending_add (self, PSMQ__MSG_TYPE__BYE);
    if (!pending)
        return PS_ENOMEM;
    ps_envelope_t request;
    s_envelope_init (self, &request, PSMQ__MSG_TYPE__BYE, pending->seq);
    ps_ticket_t ticket = pending->seq;
    int status = PS_OK;
    bool sent = false;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++)
        if (self->links[link].registered) {
            status = s_send_part (self, link, ticket, &request, NULL, false);
            sent = true;
        }
    if (status != PS_OK || !sent)
        return s_abandon (self, ticket, status);
    status = s_wait_or_forget (self, ticket, BYE_TIMEOUT_MS);
    for (uint32_t link = 0; link < self->nlinks; link++)
        self->links[link].registered = false;
    return status;
}

//  Register with the group; when the brokers name different clocks, leave
//  and try again, a few times, before giving up
static int
s_join (ps_worker_t *self)
{
    int status = PS_OK;
    for (int attempt = 1; attempt <= HELLO_ATTEMPTS; attempt++) {
        self->joined = false;
        self->clocks_differ = false;
        self->heartbeat_ms = 0;
        status = s_hello (self);
        if (status == PS_OK || !self->clocks_differ || attempt == HELLO_ATTEMPTS)
            break;
        s_leave (self);
        usleep ((useconds_t)attempt * 20000);
    }
    return status;
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
        *status = s_join (self);
    if (*status != PS_OK) {
        fprintf (stderr, "psworker: rank %u cannot join %s: %s\n", options->rank, options->broker,
                 self->error[0] ? self->error : ps_strerror (*status));
        //  Brokers of the group that did take us must not wait for us
        s_leave (self);
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
    int status = s_leave (self);
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

uint32_t
ps_worker_shards (const ps_worker_t *self)
{
    return self->nlinks;
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
    int64_t least = self->links[0].min_clock;
    for (uint32_t link = 1; link < self->nlinks; link++)
        if (self->links[link].min_clock < least)
            least = self->links[link].min_clock;
    return least;
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
    //  No broker's message carries more than all of it
    if (slices > PS_MAX_SLICES || bytes > (uint64_t)PS_MAX_MESSAGE_BYTES)
        return s_fail (self, PS_EINVAL,
                       "%" PRIu64 " bytes in %zu slices is more than one message may carry "
                       "(%lld bytes, %d slices): split the call",
                       bytes, slices, PS_MAX_MESSAGE_BYTES, PS_MAX_SLICES);
    if (s_reserve_slices (self, slices > ntensors ? slices : ntensors))
        return s_fail (self, PS_ENOMEM, "out of memory");
    *nslices = slices;
    return PS_OK;
}

//  Check the tensors and lay them over the group: self->plan[i * nlinks + l]
//  is tensor i's part on link l (count 0 when it has none)
static int
s_plan (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, size_t *nslices)
{
    int status = s_check_tensors (self, tensors, ntensors, nslices);
    if (status)
        return status;
    size_t needed = ntensors * self->nlinks;
    if (needed > self->plan_capacity) {
        ps_part_t *plan = realloc (self->plan, needed * sizeof *plan);
        if (!plan)
            return s_fail (self, PS_ENOMEM, "out of memory");
        self->plan = plan;
        self->plan_capacity = needed;
    }
    memset (self->plan, 0, needed * sizeof *self->plan);
    ps_part_t parts[PS_MAX_SHARDS];
    for (size_t i = 0; i < ntensors; i++) {
        size_t nparts = ps_partition (tensors[i].key, tensors[i].count, self->nlinks, parts);
        for (size_t p = 0; p < nparts; p++)
            self->plan[i * self->nlinks + parts[p].shard] = parts[p];
    }
    return PS_OK;
}

//  Lay out link's parts of the tensors as slices of at most CHUNK_FLOATS,
//  offsets within each part; sources (when not NULL) gets each slice's data
static size_t
s_chunk_link (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, uint32_t link,
              const float **sources)
{
    size_t used = 0;
    for (size_t i = 0; i < ntensors; i++) {
        const ps_part_t *part = &self->plan[i * self->nlinks + link];
        for (uint64_t offset = 0; offset < part->count; offset += CHUNK_FLOATS) {
            uint64_t left = part->count - offset;
            uint64_t count = left < CHUNK_FLOATS ? left : CHUNK_FLOATS;
            s_slice (self, used, tensors[i].key, offset, count, part->count);
            if (sources)
                sources[used] = tensors[i].data + part->offset + offset;
            used++;
        }
    }
    return used;
}

//  Lay out and send a push to every broker holding a part of its tensors;
//  lend: frames point into the caller's tensors
static int
s_push (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, uint32_t grad_count,
        ps_ticket_t *ticket, bool lend)
{
    if (!self || !ticket)
        return PS_EINVAL;
    size_t nslices = 0;
    int status = s_plan (self, tensors, ntensors, &nslices);
    if (status)
        return status;
    const float **sources = malloc (nslices * sizeof *sources);
    pending_t *pending = sources ? s_pending_add (self, PSMQ__MSG_TYPE__PUSH) : NULL;
    if (!pending) {
        free (sources);
        return s_fail (self, PS_ENOMEM, "out of memory");
    }
    *ticket = pending->seq;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        ps_envelope_t request;
        s_envelope_init (self, &request, PSMQ__MSG_TYPE__PUSH, *ticket);
        request.grad_count = grad_count ? grad_count : 1;
        request.n_slices = s_chunk_link (self, tensors, ntensors, link, sources);
        request.slices = self->slice_ptrs;
        if (request.n_slices)
            status = s_send_part (self, link, *ticket, &request, sources, lend);
    }
    free (sources);
    return status ? s_abandon (self, *ticket, status) : PS_OK;
}

int
ps_worker_pull_async (ps_worker_t *self, ps_tensor_t *tensors, size_t ntensors, ps_ticket_t *ticket)
{
    if (!self || !ticket)
        return PS_EINVAL;
    size_t nslices = 0;
    int status = s_plan (self, tensors, ntensors, &nslices);
    if (status)
        return status;
    size_t plan_bytes = ntensors * self->nlinks * sizeof *self->plan;
    ps_tensor_t *copy = malloc (ntensors * sizeof *copy);
    ps_part_t *plan = malloc (plan_bytes);
    uint64_t *filled = calloc (ntensors, sizeof *filled);
    pending_t *pending = copy && plan && filled ? s_pending_add (self, PSMQ__MSG_TYPE__PULL) : NULL;
    if (!pending) {
        free (copy);
        free (plan);
        free (filled);
        return s_fail (self, PS_ENOMEM, "out of memory");
    }
    memcpy (copy, tensors, ntensors * sizeof *copy);
    memcpy (plan, self->plan, plan_bytes);
    pending->tensors = copy;
    pending->plan = plan;
    pending->filled = filled;
    pending->ntensors = ntensors;
    *ticket = pending->seq;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        size_t used = 0;
        for (size_t i = 0; i < ntensors; i++) {
            const ps_part_t *part = &self->plan[i * self->nlinks + link];
            if (part->count)
                s_slice (self, used++, tensors[i].key, 0, part->count, 0);
        }
        if (used == 0)
            continue;
        ps_envelope_t request;
        s_envelope_init (self, &request, PSMQ__MSG_TYPE__PULL, *ticket);
        request.n_slices = used;
        request.slices = self->slice_ptrs;
        status = s_send_part (self, link, *ticket, &request, NULL, false);
    }
    return status ? s_abandon (self, *ticket, status) : PS_OK;
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
    int status = s_send_all (self, *ticket, &request);
    if (status)
        return s_abandon (self, *ticket, status);
    //  The brokers advance us on receipt: pushes sent from now on belong
    //  to the next clock, even before the bound lets the replies come
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
//  memory. By the time the replies come the brokers have them all, so this
//  is normally at once. When a broker never answered, the frames may sit
//  in a socket's queue: closing the sockets (linger 0) makes libzmq's
//  reaper thread drop them whatever this thread does, and new sockets
//  with our routing id take their place, so the brokers still know us.
static void
s_reclaim_lent (ps_worker_t *self)
{
    int64_t deadline = s_now_ms () + 200;
    bool closed = false;
    while (atomic_load_explicit (&self->lent, memory_order_acquire) > 0) {
        if (!closed && s_now_ms () > deadline) {
            for (uint32_t link = 0; link < self->nlinks; link++) {
                zmq_close (self->links[link].dealer);
                self->links[link].dealer = NULL;
            }
            closed = true;
        }
        sched_yield ();
    }
    for (uint32_t link = 0; closed && link < self->nlinks; link++) {
        self->links[link].dealer = s_dealer_new (self, self->links[link].endpoint);
        if (!self->links[link].dealer)
            s_fail (self, PS_ECONNECT, "cannot reconnect to %s", self->links[link].endpoint);
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

static void
s_optim_to_wire (const ps_optim_settings_t *optim, Psmq__Optim *settings)
{
    psmq__optim__init (settings);
    settings->kind = (Psmq__OptimKind)optim->kind;
    settings->lr = optim->lr;
    settings->momentum = optim->momentum;
    settings->beta1 = optim->beta1;
    settings->beta2 = optim->beta2;
    settings->eps = optim->eps;
    settings->decay_steps = optim->decay_steps;
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
    int status = s_plan (self, &tensor, 1, &nslices);
    if (status)
        return status;
    const float **sources = malloc (nslices * sizeof *sources);
    pending_t *pending = sources ? s_pending_add (self, PSMQ__MSG_TYPE__INIT) : NULL;
    if (!pending) {
        free (sources);
        return s_fail (self, PS_ENOMEM, "out of memory");
    }
    Psmq__Optim settings;
    if (optim)
        s_optim_to_wire (optim, &settings);
    ps_ticket_t ticket = pending->seq;
    //  Each broker creates its part as a key of its own size
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        const ps_part_t *part = &self->plan[link];
        if (!part->count)
            continue;
        ps_envelope_t request;
        s_envelope_init (self, &request, PSMQ__MSG_TYPE__INIT, ticket);
        request.optim = optim ? &settings : NULL;
        if (initial)
            request.n_slices = s_chunk_link (self, &tensor, 1, link, sources);
        else {
            s_slice (self, 0, key, 0, 0, part->count);
            request.n_slices = 1;
        }
        request.slices = self->slice_ptrs;
        status = s_send_part (self, link, ticket, &request, initial ? sources : NULL, false);
    }
    free (sources);
    return status ? s_abandon (self, ticket, status) : s_wait_or_forget (self, ticket, -1);
}

int
ps_worker_info_shard (ps_worker_t *self, uint32_t shard, char **json)
{
    if (!self || !json)
        return PS_EINVAL;
    *json = NULL;
    if (shard >= self->nlinks)
        return s_fail (self, PS_EINVAL, "shard %u of a group of %u", shard, self->nlinks);
    pending_t *pending = s_pending_add (self, PSMQ__MSG_TYPE__INFO);
    if (!pending)
        return s_fail (self, PS_ENOMEM, "out of memory");
    pending->info = json;
    ps_envelope_t request;
    s_envelope_init (self, &request, PSMQ__MSG_TYPE__INFO, pending->seq);
    ps_ticket_t ticket = pending->seq;
    int status = s_send_part (self, shard, ticket, &request, NULL, false);
    return status ? s_abandon (self, ticket, status) : s_wait_or_forget (self, ticket, -1);
}

int
ps_worker_info (ps_worker_t *self, char **json)
{
    return ps_worker_info_shard (self, 0, json);
}

int
ps_worker_query_info (const char *broker, int timeout_ms, char **json)
{
    if (!broker || !json)
        return PS_EINVAL;
    *json = NULL;
    if (strchr (broker, ','))
        return PS_EINVAL; //  one broker at a time
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
