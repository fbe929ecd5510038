/*  =========================================================================
    ps_link - one DEALER to one broker (see ps_link.h)

    Tensors go out as one frame per slice after the envelope. A copied
    frame comes from the frame pool: pooled 1 MB buffers stay mapped, which
    spares a page fault per 4 KB per send (docs/performance.md). A lent
    frame is made with zmq_msg_init_data over the caller's memory and a
    free function that only decrements its request's atomic count, which
    the session watches before it gives the memory back to its caller.

    A multipart message cannot be abandoned half sent, so once the envelope
    is out the data frames block (within the send timeout) rather than
    being dropped.

    Liveness: the DEALER pings the broker (ZMTP PING, answered by the
    broker's libzmq whatever its threads are doing) every quarter of the
    heartbeat timeout, at most every PS_DEFAULT_HEARTBEAT_MS, and gives up
    on a connection that brought nothing for the rest of the timeout, so
    that a broker that went silent is noticed within the heartbeat timeout
    at most. A PING goes out between messages: a single message that takes
    longer than the timeout to send could be taken for silence, which the
    1 MB slices of large tensors keep far off. The connection's events
    come from libzmq's socket monitor, on an inproc PAIR that the worker's
    thread reads (zmq_socket_monitor: libzmq writes them from its I/O
    thread). Only the handshake and the loss are watched: a connect that
    fails is retried by libzmq, and is no loss.
    ========================================================================= */

#include "ps_link.h"
#include "ps_dtype.h"
#include "ps_poll.h"
#include "ps_worker.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  The monitor events a link reads
#define LINK_EVENTS                                                                                \
    (ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |    \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

//  Handshakes cut without a word, in a row, taken for a refusal
#define LINK_SILENT_REFUSALS 2

struct ps_link_t {
    char *endpoint;                               //  as given
    void *context;                                //  the group's, borrowed
    ps_framepool_t *pool;                         //  the group's, borrowed
    void *dealer;                                 //  NULL while disconnected
    void *monitor;                                //  the dealer's events, or NULL
    int monitor_fd;                               //  its ZMQ_FD
    bool monitor_read;                            //  read to its end since made
    unsigned sockets;                             //  dealers made, to name monitors
    bool up;                                      //  handshake done, not lost since
    uint8_t routing_id[PS_LINK_ROUTING_ID_BYTES]; //  the worker's
    int send_timeout_ms;                          //  ZMQ_SNDTIMEO
    int heartbeat_timeout_ms;                     //  silence that drops a connection
    zmq_msg_t *frames;                            //  the last message received
    size_t nframes;                               //  its frames
    size_t frame_capacity;                        //  allocated
    ps_link_curve_t curve;                        //  our keys, if on
    unsigned cut;                                 //  CURVE handshakes cut in a row
    const char *refused;                          //  why the broker refused us, or NULL
};

//  Ping every quarter of the timeout (PS_MIN_HEARTBEAT_MS ..
//  PS_DEFAULT_HEARTBEAT_MS) and give up after the rest of it: a silence
//  starts at most one interval before the ping that times it
static void
s_set_heartbeats (void *dealer, int timeout_ms)
{
    int interval = timeout_ms / 4;
    if (interval > PS_DEFAULT_HEARTBEAT_MS)
        interval = PS_DEFAULT_HEARTBEAT_MS;
    if (interval < PS_MIN_HEARTBEAT_MS)
        interval = PS_MIN_HEARTBEAT_MS;
    int timeout = timeout_ms - interval > interval ? timeout_ms - interval : interval;
    zmq_setsockopt (dealer, ZMQ_HEARTBEAT_IVL, &interval, sizeof interval);
    zmq_setsockopt (dealer, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
}

//  Watch dealer's connection: a monitor, and our PAIR connected to it
//  before the dealer connects, so that no event is missed. 0 or -1.
static int
s_monitor_open (ps_link_t *self, void *dealer)
{
    char address[96];
    snprintf (address, sizeof address, "inproc://psworker-link-%p-%u", (void *)self,
              self->sockets++);
    if (zmq_socket_monitor (dealer, address, LINK_EVENTS))
        return -1;
    self->monitor = zmq_socket (self->context, ZMQ_PAIR);
    int linger = 0;
    if (self->monitor)
        zmq_setsockopt (self->monitor, ZMQ_LINGER, &linger, sizeof linger);
    if (!self->monitor || zmq_connect (self->monitor, address)) {
        if (self->monitor)
            zmq_close (self->monitor);
        self->monitor = NULL;
        return -1;
    }
    size_t size = sizeof self->monitor_fd;
    zmq_getsockopt (self->monitor, ZMQ_FD, &self->monitor_fd, &size);
    //  A new socket may hold messages without its descriptor having fired
    self->monitor_read = false;
    return 0;
}

//  A DEALER with the worker's options and routing id, watched, connected
static void *
s_dealer_new (ps_link_t *self)
{
    void *dealer = zmq_socket (self->context, ZMQ_DEALER);
    if (!dealer)
        return NULL;
    int64_t max_frame = PS_MAX_FRAME_BYTES;
    int hwm = PS_SNDHWM;
    int linger = 0;
    zmq_setsockopt (dealer, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
    zmq_setsockopt (dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt (dealer, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (dealer, ZMQ_SNDTIMEO, &self->send_timeout_ms, sizeof self->send_timeout_ms);
    zmq_setsockopt (dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (dealer, ZMQ_ROUTING_ID, self->routing_id, sizeof self->routing_id);
    s_set_heartbeats (dealer, self->heartbeat_timeout_ms);
    ps_link_curve_apply (&self->curve, dealer);
    self->up = false;
    if (s_monitor_open (self, dealer) || zmq_connect (dealer, self->endpoint)) {
        int error = zmq_errno ();
        zmq_close (dealer);
        if (self->monitor)
            zmq_close (self->monitor);
        self->monitor = NULL;
        errno = error;
        return NULL;
    }
    return dealer;
}

//  A key of 40 Z85 characters, checked by decoding it
static bool
s_z85_key (const char *text)
{
    uint8_t key[32];
    return text && strlen (text) == 40 && zmq_z85_decode (key, text) != NULL;
}

int
ps_link_curve_load (ps_link_curve_t *curve, const char *secret_file, const char *broker_key,
                    ps_problem_t *problem)
{
    memset (curve, 0, sizeof *curve);
    if (!secret_file && !broker_key)
        return PS_OK;
    if (!secret_file || !broker_key) {
        ps_problem_set (problem, 0,
                        "CURVE needs both this client's secret key file and the broker's public "
                        "key (%s is missing)",
                        secret_file ? "the broker key" : "the client's secret key file");
        return PS_EINVAL;
    }
    zcert_t *ours = zcert_load (secret_file);
    static const char zeros[] = "0000000000000000000000000000000000000000";
    if (!ours || strcmp (zcert_secret_txt (ours), zeros) == 0) {
        ps_problem_set (problem, 0,
                        ours ? "%s holds no secret key: give the NAME.key_secret file pskeys "
                               "wrote, not the public NAME.key"
                             : "%s cannot be read as a key file (make one with: pskeys new NAME)",
                        secret_file);
        zcert_destroy (&ours);
        return PS_EINVAL;
    }
    snprintf (curve->public_key, sizeof curve->public_key, "%s", zcert_public_txt (ours));
    snprintf (curve->secret_key, sizeof curve->secret_key, "%s", zcert_secret_txt (ours));
    zcert_destroy (&ours);
    //  A file of that name first; else 40 characters of Z85 are the key
    zcert_t *theirs = access (broker_key, F_OK) == 0 ? zcert_load (broker_key) : NULL;
    if (theirs)
        snprintf (curve->server_key, sizeof curve->server_key, "%s", zcert_public_txt (theirs));
    else if (access (broker_key, F_OK) != 0 && s_z85_key (broker_key))
        snprintf (curve->server_key, sizeof curve->server_key, "%s", broker_key);
    else {
        ps_problem_set (problem, 0,
                        "broker key %.200s is neither a public certificate file (NAME.key, made "
                        "by pskeys) nor a 40-character Z85 key",
                        broker_key);
        zcert_destroy (&theirs);
        return PS_EINVAL;
    }
    zcert_destroy (&theirs);
    curve->on = true;
    return PS_OK;
}

void
ps_link_curve_apply (const ps_link_curve_t *curve, void *socket)
{
    if (!curve || !curve->on)
        return;
    zmq_setsockopt (socket, ZMQ_CURVE_SERVERKEY, curve->server_key, 41);
    zmq_setsockopt (socket, ZMQ_CURVE_PUBLICKEY, curve->public_key, 41);
    zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, curve->secret_key, 41);
}

ps_link_t *
ps_link_new (void *context, ps_framepool_t *pool, const char *endpoint,
             const uint8_t routing_id[PS_LINK_ROUTING_ID_BYTES], int send_timeout_ms,
             int heartbeat_timeout_ms, const ps_link_curve_t *curve, int *status,
             ps_problem_t *problem)
{
    ps_link_t *self = calloc (1, sizeof *self);
    if (self)
        self->endpoint = strdup (endpoint);
    if (!self || !self->endpoint) {
        free (self);
        ps_problem_set (problem, 0, "out of memory");
        *status = PS_ENOMEM;
        return NULL;
    }
    self->context = context;
    self->pool = pool;
    memcpy (self->routing_id, routing_id, sizeof self->routing_id);
    self->send_timeout_ms = send_timeout_ms;
    self->heartbeat_timeout_ms = heartbeat_timeout_ms;
    if (curve)
        self->curve = *curve;
    self->dealer = s_dealer_new (self);
    if (!self->dealer) {
        ps_problem_set (problem, 0, "cannot connect to '%s': %s", endpoint,
                        zmq_strerror (zmq_errno ()));
        ps_link_destroy (&self);
        *status = PS_ECONNECT;
        return NULL;
    }
    *status = PS_OK;
    return self;
}

void
ps_link_destroy (ps_link_t **self_p)
{
    assert (self_p);
    ps_link_t *self = *self_p;
    if (!self)
        return;
    ps_link_recv_close (self);
    ps_link_disconnect (self);
    free (self->frames);
    free (self->endpoint);
    //  The secret key does not outlive the link in the heap
    explicit_bzero (&self->curve, sizeof self->curve);
    free (self);
    *self_p = NULL;
}

const char *
ps_link_endpoint (const ps_link_t *self)
{
    return self->endpoint;
}

void *
ps_link_socket (ps_link_t *self)
{
    return self->dealer;
}

void *
ps_link_monitor (ps_link_t *self)
{
    return self->monitor;
}

unsigned
ps_link_generation (const ps_link_t *self)
{
    return self->sockets;
}

//  A failed handshake: true when it says the broker refused us, with the
//  reason in self->refused (the broker tells a status code only, so the
//  reason is what that code means given whether we have keys)
static bool
s_refused (ps_link_t *self, uint16_t event, uint32_t value)
{
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        self->refused = self->curve.on ? "not an allowed key (CURVE; or, with the broker's "
                                         "--allow-from, not an allowed address)"
                                       : "address not allowed (protected mode: the broker "
                                         "admits loopback peers only, and the addresses of its "
                                         "--allow-from; or give keys if it has them)";
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
             value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        self->refused = self->curve.on ? "the broker has no CURVE keys, and this client has "
                                         "(give the broker --curve-secret, or drop ours)"
                                       : "the broker requires CURVE keys (give this client its "
                                         "secret key and the broker's public key)";
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        self->refused = "the handshake failed (a ZMTP protocol error)";
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && ++self->cut >= LINK_SILENT_REFUSALS)
        //  Cut before a word: a CURVE broker that cannot read our CURVE
        //  hello, or that saw our greeting ask for no keys before we saw
        //  its own (which a mismatch reports otherwise)
        self->refused =
            self->curve.on ? "the broker cut the CURVE handshake (is the broker key this client "
                             "was given the broker's public key?)"
                           : "the broker requires CURVE keys, it seems: it cut the handshake (give "
                             "this client its secret key and the broker's public key)";
    else
        return false;
    return true;
}

bool
ps_link_events (ps_link_t *self)
{
    bool lost = false;
    while (self->monitor) {
        //  An event is two frames: 16 bits of event and 32 of value, then
        //  the endpoint
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, self->monitor, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&frame);
            self->monitor_read = errno == EAGAIN;
            break;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size (&frame) >= sizeof event + sizeof value) {
            memcpy (&event, zmq_msg_data (&frame), sizeof event);
            memcpy (&value, (uint8_t *)zmq_msg_data (&frame) + sizeof event, sizeof value);
        }
        while (zmq_msg_more (&frame) && zmq_msg_recv (&frame, self->monitor, 0) != -1)
            ;
        zmq_msg_close (&frame);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            self->up = true;
            self->cut = 0;
            self->refused = NULL;
        }
        else if (s_refused (self, event, value))
            lost = true;
        else if (event == ZMQ_EVENT_DISCONNECTED && self->up) {
            self->up = false;
            lost = true;
        }
    }
    return lost;
}

bool
ps_link_may_have_events (const ps_link_t *self)
{
    if (!self->monitor)
        return false;
    return !self->monitor_read || ps_poll_signalled (self->monitor_fd);
}

const char *
ps_link_refused (const ps_link_t *self)
{
    return self->refused;
}

bool
ps_link_up (const ps_link_t *self)
{
    return self->up;
}

//  Once the count falls to 0 the request's owner may free it, and the
//  caller write what the frames pointed into
static void
s_lent_released (void *data, void *hint)
{
    ps_lent_t *lent = hint;
    atomic_fetch_sub_explicit (&lent->held, 1, memory_order_release);
}

//  A frame of count elements of dtype from source's floats: copied
//  into the pool, each rounded to 16 bits on the way (ps_dtype)
static int
s_frame_narrowed (ps_link_t *self, zmq_msg_t *msg, const float *source, size_t count, int dtype)
{
    if (ps_framepool_msg (self->pool, msg, count * ps_dtype_size (dtype)))
        return -1;
    ps_dtype_from_f32 (zmq_msg_data (msg), source, count, dtype);
    return 0;
}

//  A frame of bytes from source: lent (zero copy) or copied into the pool
static int
s_frame (ps_link_t *self, zmq_msg_t *msg, const float *source, size_t bytes, ps_lent_t *lent)
{
    if (lent) {
        atomic_fetch_add_explicit (&lent->held, 1, memory_order_relaxed);
        if (zmq_msg_init_data (msg, (void *)source, bytes, s_lent_released, lent) == 0)
            return 0;
        atomic_fetch_sub_explicit (&lent->held, 1, memory_order_relaxed);
        return -1;
    }
    if (ps_framepool_msg (self->pool, msg, bytes))
        return -1;
    memcpy (zmq_msg_data (msg), source, bytes);
    return 0;
}

int
ps_link_send (ps_link_t *self, const ps_envelope_t *envelope, const float *const *sources,
              ps_lent_t *lent, ps_problem_t *problem)
{
    if (!self->dealer) {
        ps_problem_set (problem, 0, "no connection to %s", self->endpoint);
        return PS_ECONNECT;
    }
    zmq_msg_t msg;
    if (ps_codec_encode (envelope, &msg)) {
        ps_problem_set (problem, 0, "out of memory encoding a request");
        return PS_ENOMEM;
    }
    bool data = sources && envelope->n_slices > 0;
    if (zmq_msg_send (&msg, self->dealer, data ? ZMQ_SNDMORE : 0) == -1) {
        zmq_msg_close (&msg);
        ps_problem_set (problem, 0, "cannot send to %s: %s", self->endpoint,
                        zmq_strerror (zmq_errno ()));
        return PS_ETIMEOUT;
    }
    if (!data)
        return PS_OK;
    //  Find the last frame first, so that it is sent without MORE
    size_t last = 0;
    for (size_t i = 0; i < envelope->n_slices; i++)
        if (envelope->slices[i]->count)
            last = i;
    for (size_t i = 0; i < envelope->n_slices; i++) {
        const ps_slice_t *slice = envelope->slices[i];
        if (!slice->count)
            continue;
        int dtype = (int)slice->dtype;
        size_t bytes = slice->count * ps_dtype_size (dtype);
        int rc = dtype == PS_DTYPE_F32
                     ? s_frame (self, &msg, sources[i], bytes, lent)
                     : s_frame_narrowed (self, &msg, sources[i], slice->count, dtype);
        if (rc) {
            ps_problem_set (problem, 0, "out of memory for a %zu-byte frame", bytes);
            return PS_ENOMEM;
        }
        if (zmq_msg_send (&msg, self->dealer, i < last ? ZMQ_SNDMORE : 0) == -1) {
            zmq_msg_close (&msg);
            ps_problem_set (problem, 0, "send to %s failed: %s", self->endpoint,
                            zmq_strerror (zmq_errno ()));
            return PS_ECONNECT;
        }
    }
    return PS_OK;
}

size_t
ps_link_part_end (const ps_envelope_t *envelope, size_t first)
{
    size_t end = first;
    uint64_t bytes = 0;
    while (end < envelope->n_slices &&
           (end == first ||
            bytes + envelope->slices[end]->count * sizeof (float) <= PS_PUSH_PART_BYTES)) {
        bytes += envelope->slices[end]->count * sizeof (float);
        end++;
    }
    return end;
}

static int
s_reserve_frames (ps_link_t *self, size_t count)
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

int
ps_link_recv (ps_link_t *self, zmq_msg_t **frames, size_t *nframes, bool *overflow,
              ps_problem_t *problem)
{
    ps_link_recv_close (self);
    *frames = NULL;
    *nframes = 0;
    *overflow = false;
    if (s_reserve_frames (self, 1)) {
        ps_problem_set (problem, 0, "out of memory receiving a reply");
        return PS_ENOMEM;
    }
    zmq_msg_init (&self->frames[0]);
    if (zmq_msg_recv (&self->frames[0], self->dealer, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&self->frames[0]);
        int error = zmq_errno ();
        if (error == EAGAIN)
            return PS_OK;
        if (error == EINTR)
            return PS_EINTR;
        ps_problem_set (problem, 0, "receive from %s failed: %s", self->endpoint,
                        zmq_strerror (error));
        return PS_ECONNECT;
    }
    self->nframes = 1;
    bool more = zmq_msg_more (&self->frames[0]);
    while (more) {
        if (self->nframes == 1 + PS_MAX_SLICES) {
            //  More frames than any reply may carry: read the rest, keep none
            zmq_msg_t extra;
            zmq_msg_init (&extra);
            zmq_msg_recv (&extra, self->dealer, 0);
            more = zmq_msg_more (&extra);
            zmq_msg_close (&extra);
            *overflow = true;
            continue;
        }
        if (s_reserve_frames (self, self->nframes + 1)) {
            ps_link_recv_close (self);
            ps_problem_set (problem, 0, "out of memory receiving a reply");
            return PS_ENOMEM;
        }
        zmq_msg_t *frame = &self->frames[self->nframes++];
        zmq_msg_init (frame);
        zmq_msg_recv (frame, self->dealer, 0);
        more = zmq_msg_more (frame);
    }
    *frames = self->frames;
    *nframes = self->nframes;
    return PS_OK;
}

void
ps_link_recv_close (ps_link_t *self)
{
    for (size_t i = 0; i < self->nframes; i++)
        zmq_msg_close (&self->frames[i]);
    self->nframes = 0;
}

void
ps_link_disconnect (ps_link_t *self)
{
    if (self->dealer)
        zmq_close (self->dealer);
    self->dealer = NULL;
    if (self->monitor)
        zmq_close (self->monitor);
    self->monitor = NULL;
    self->up = false;
}

int
ps_link_reconnect (ps_link_t *self, ps_problem_t *problem)
{
    ps_link_disconnect (self);
    self->dealer = s_dealer_new (self);
    if (self->dealer)
        return PS_OK;
    ps_problem_set (problem, 0, "cannot reconnect to %s", self->endpoint);
    return PS_ECONNECT;
}
