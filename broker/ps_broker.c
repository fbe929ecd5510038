/*  =========================================================================
    ps_broker - the ROUTER loop

    One thread serves every worker through one ROUTER socket. For each
    message it decodes and validates the envelope, then:
      HELLO      registers the connection as a rank and joins the clock,
                 once the worker's idea of the broker group matches ours
      INIT       goes to the aggregation thread, which answers
      PUSH       is checked against the published keys, acked at once and
                 handed (frames moved, not copied) to the aggregation thread
      PULL       is answered from the published versions, by reference:
                 each reply frame points into an immutable ps_buf_t
      CLOCK      advances the rank's clock; answered when the bound allows
      HEARTBEAT  keeps a rank alive (also from another socket, by session)
      BYE        leaves the job; INFO answers the broker's status as JSON
    A request that may not be answered yet is parked with its routing id
    and answered later from the loop: no thread ever blocks for a worker.

    Two conditions park a request. The staleness bound: a worker at clock c
    may be answered only while the slowest counted rank is at c - S or
    later. The aggregation pipeline: a pull must see every push that arrived
    before it, so it records how many commands had gone to the aggregation
    thread and waits until that many are DONE. A pull that waited on the
    bound records that count again when the bound lets it pass: the pushes
    and the BSP barrier (FLUSH, a command sent when the slowest clock moves)
    that released it were forwarded after it arrived, and the model requires
    them. So a pull is answered with every update that the model requires
    at the time it is answered, however the worker pipelined its requests.
    A CLOCK also waits until its connection's pushes are through the
    aggregation thread, which reports a push it refused (a NaN or an
    infinity) so the CLOCK can be answered with that error.

    Bad input never stops the loop: whatever cannot be parsed or breaks a
    rule is answered with an ERROR envelope naming the problem, counted
    and logged (at a bounded rate), and the loop goes on.
    ========================================================================= */

#include "ps_broker.h"
#include "ps_aggregator.h"
#include "ps_buf.h"
#include "ps_codec.h"
#include "ps_handoff.h"
#include "ps_limits.h"
#include "ps_log.h"
#include "ps_tap.h"
#include "ps_vclock.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <netdb.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUTING_ID 256
//  Frames we keep of one message: routing id, envelope, tensor frames
#define MAX_FRAMES (PS_MAX_SLICES + 2)
//  Rejected-input log lines per second before we only count them
#define REJECT_LOG_PER_SECOND 10

struct ps_broker_t {
    zactor_t *actor;        //  runs the ROUTER loop
    char endpoint[256];     //  what the ROUTER loop bound
    char tap_endpoint[256]; //  where the tap listens, "" when off
};

typedef struct {
    char key[2 * MAX_ROUTING_ID + 1]; //  hex routing id, the peers table key
    uint8_t id[MAX_ROUTING_ID];       //  routing id to address replies to
    size_t id_size;                   //  its length
    uint32_t rank;                    //  first rank it registered as
    uint32_t weight;                  //  ranks it stands for: rank .. rank+weight-1
    uint64_t session;                 //  token for heartbeats from elsewhere
    int64_t last_seen;                //  monotonic ms of its last message
    uint32_t parked;                  //  requests it has parked now
    uint64_t pushes_sent;             //  aggregator commands sent up to its
                                      //  last push (its CLOCK waits for them)
    bool faulted;                     //  the aggregator refused one of its pushes
    char fault[PS_MAX_ERROR_LEN];     //  why; its next CLOCK is answered so
} peer_t;

typedef struct {
    peer_t *peer;        //  who asked; parked requests die with it
    int type;            //  PSMQ__MSG_TYPE__CLOCK or __PULL
    int64_t clock;       //  the clock the bound must admit
    uint64_t need_done;  //  aggregation commands that must be DONE
    zmq_msg_t envelope;  //  the request, decoded again to answer
    int64_t since;       //  monotonic ms when parked
    int64_t received_us; //  when the request was read (tap timing)
    bool bound;          //  parked on the staleness bound, not only on
                         //  the aggregation thread
    bool recount;        //  a PULL still behind the bound: when it passes,
                         //  need_done becomes what was sent by then
} parked_t;

typedef struct {
    ps_buf_t *buf;         //  latest published version, our reference;
                           //  NULL while its INIT is with the aggregator
    uint64_t size;         //  elements
    uint64_t version;      //  version number
    uint64_t init_command; //  while buf is NULL: the INIT's command number
} published_t;

typedef struct {
    uint64_t in[PSMQ__MSG_TYPE__ERROR + 1];             //  messages received by type
    uint64_t out[PSMQ__MSG_TYPE__ERROR + 1];            //  replies sent by type
    uint64_t bytes_in;                                  //  tensor bytes received
    uint64_t bytes_out;                                 //  tensor bytes sent
    uint64_t bytes_in_type[PSMQ__MSG_TYPE__ERROR + 1];  //  tensor bytes in by type
    uint64_t bytes_out_type[PSMQ__MSG_TYPE__ERROR + 1]; //  tensor bytes out by type
    uint64_t rejected;                                  //  requests answered with ERROR
    uint64_t evicted;                                   //  ranks evicted for silence
    uint64_t parked;                                    //  requests that had to wait
    uint64_t steps;                                     //  optimizer steps (from the aggregator)
    uint64_t pending;                                   //  gradients in BSP accumulators
    uint64_t nonfinite;                                 //  pushes refused for NaN or Inf
} stats_t;

typedef struct {
    ps_broker_config_t config;    //  as given, endpoint excepted
    zsock_t *pipe;                //  to our owner
    zsock_t *router;              //  the workers' socket
    void *router_handle;          //  its raw handle
    zactor_t *aggregator;         //  the aggregation thread
    void *agg_handle;             //  its pipe's raw handle
    ps_codec_t *codec;            //  decodes incoming envelopes
    ps_codec_t *parked_codec;     //  decodes parked ones, so that releasing
                                  //  them never clobbers the request at hand
    ps_vclock_t *vclock;          //  every rank's clock
    zhashx_t *peers;              //  hex routing id -> peer_t
    peer_t **rank_peer;           //  rank -> its current connection
    zlistx_t *parked;             //  parked_t, oldest first
    zhashx_t *published;          //  key -> published_t
    size_t creating;              //  of them, keys whose INIT is in flight
    uint64_t agg_sent;            //  commands sent to the aggregator
    uint64_t agg_done;            //  commands it has finished
    zmq_msg_t frames[MAX_FRAMES]; //  the message being handled
    size_t nframes;               //  frames in it
    ps_slice_t *slice_pool;       //  reply slices, reused
    ps_slice_t **slice_ptrs;      //  pointers to them, for the envelope
    zmq_msg_t *reply_frames;      //  a pull reply's frames, reused
    size_t slice_capacity;        //  slices allocated
    char bound[256];              //  endpoint with the port
    int64_t started;              //  monotonic ms at start
    int64_t next_check;           //  when to look for silent peers
    int64_t reject_window;        //  second of the reject log limiter
    uint32_t reject_logged;       //  lines logged in that second
    stats_t stats;                //  counters for INFO and the summary
    ps_tap_t *tap;                //  the tap, NULL when off
    zsock_t *monitor;             //  the ROUTER's TCP connection events (tap on)
    zhashx_t *connections;        //  fd -> remote address, for those events
    bool tap_on;                  //  somebody listens: build records
    int64_t received_us;          //  when the message at hand was read (tap on)
    int64_t parked_us;            //  its time parked on the bound (tap on)
    int64_t aggregation_us;       //  its time waiting for the aggregator (tap on)
    Psmq__TapKey *tap_keys;       //  a record's keys, reused
    Psmq__TapKey **tap_key_ptrs;  //  pointers to them
    size_t tap_key_capacity;      //  allocated
    bool *seen;                   //  ranks that ever registered
    uint64_t *rank_messages;      //  messages received per rank
    char **group;                 //  the group's endpoints as the first worker
                                  //  named them (for tools), NULL until then
    uint64_t incarnation;         //  random id of this broker process (HELLO)
    bool terminated;              //  owner asked us to stop
} router_t;

static uint64_t
s_random64 (void)
{
    uint64_t value = 0;
    if (getrandom (&value, sizeof value, 0) != sizeof value)
        value = (uint64_t)zclock_usecs () * 0x9e3779b97f4a7c15ULL;
    return value ? value : 1;
}

static void
s_hex (const uint8_t *data, size_t size, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * size] = 0;
}

// ------------------------------------------------------------------ tap

static peer_t *s_peer_lookup (router_t *self, const uint8_t *id, size_t id_size);

static int64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

//  The record's keys: one per key, slices of the same key merged
static void
s_tap_keys (router_t *self, ps_tap_record_t *record, const ps_envelope_t *envelope)
{
    if (envelope->n_slices > self->tap_key_capacity) {
        Psmq__TapKey *keys = realloc (self->tap_keys, envelope->n_slices * sizeof *keys);
        Psmq__TapKey **ptrs =
            keys ? realloc (self->tap_key_ptrs, envelope->n_slices * sizeof *ptrs) : NULL;
        if (keys)
            self->tap_keys = keys;
        if (!keys || !ptrs)
            return; //  a record without keys beats no record
        self->tap_key_ptrs = ptrs;
        self->tap_key_capacity = envelope->n_slices;
    }
    size_t used = 0;
    for (size_t i = 0; i < envelope->n_slices; i++) {
        const ps_slice_t *slice = envelope->slices[i];
        if (used && strcmp (self->tap_keys[used - 1].key, slice->key) == 0) {
            self->tap_keys[used - 1].count += slice->count;
            continue;
        }
        psmq__tap_key__init (&self->tap_keys[used]);
        self->tap_keys[used].key = slice->key;
        self->tap_keys[used].count = slice->count;
        self->tap_key_ptrs[used] = &self->tap_keys[used];
        used++;
    }
    record->keys = self->tap_key_ptrs;
    record->n_keys = used;
}

static void
s_tap_init (router_t *self, ps_tap_record_t *record, int kind, int64_t worker, char *peer,
            const uint8_t *id, size_t id_size)
{
    psmq__tap_record__init (record);
    record->kind = kind;
    record->worker = worker;
    int64_t min = ps_vclock_min (self->vclock);
    record->min_clock = min == PS_VCLOCK_NOBODY ? -1 : min;
    record->slowest = ps_vclock_slowest (self->vclock);
    if (self->config.shards > 1) {
        record->shard = self->config.shard;
        record->shards = self->config.shards;
    }
    if (id) {
        s_hex (id, id_size < 8 ? id_size : 8, peer);
        record->peer = peer;
    }
}

//  A request as received, or the reply to it (with the broker's timing)
static void
s_tap_envelope (router_t *self, int kind, const uint8_t *id, size_t id_size,
                const ps_envelope_t *envelope, zmq_msg_t *frames, size_t nframes)
{
    ps_tap_record_t record;
    char peer[17];
    //  The rank the connection registered as, not what the envelope claims
    peer_t *registered = s_peer_lookup (self, id, id_size);
    s_tap_init (self, &record, kind, registered ? (int64_t)registered->rank : -1, peer, id,
                id_size);
    record.type = envelope->type;
    record.seq = envelope->seq;
    record.clock = envelope->clock;
    s_tap_keys (self, &record, envelope);
    for (size_t i = 0; i < nframes; i++)
        record.bytes += zmq_msg_size (&frames[i]);
    if (kind == PSMQ__TAP_KIND__TAP_REPLY && self->received_us) {
        int64_t total = s_now_us () - self->received_us;
        record.total_us = total;
        record.parked_us = self->parked_us;
        record.aggregation_us = self->aggregation_us;
        int64_t queued = total - self->parked_us - self->aggregation_us;
        record.queued_us = queued > 0 ? queued : 0;
    }
    ps_tap_publish (self->tap, &record, frames, nframes);
}

static void
s_tap_reject (router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *request,
              const ps_problem_t *problem, int64_t worker)
{
    ps_tap_record_t record;
    char peer[17];
    s_tap_init (self, &record, PSMQ__TAP_KIND__TAP_REJECT, worker, peer, id, id_size);
    if (request) {
        record.type = request->type;
        record.seq = request->seq;
        record.clock = request->clock;
        s_tap_keys (self, &record, request);
    }
    record.status = problem->code;
    record.reason = (char *)problem->message;
    ps_tap_publish (self->tap, &record, NULL, 0);
}

//  Connections, evictions and clock movements
static void s_tap_event (router_t *self, int kind, int64_t worker, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_tap_event (router_t *self, int kind, int64_t worker, const char *format, ...)
{
    ps_tap_record_t record;
    char peer[17];
    s_tap_init (self, &record, kind, worker, peer, NULL, 0);
    char reason[PS_MAX_ERROR_LEN];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    record.reason = reason;
    if (worker >= 0)
        record.clock = ps_vclock_clock (self->vclock, (uint32_t)worker);
    ps_tap_publish (self->tap, &record, NULL, 0);
}

// ------------------------------------------------------------------ replies

static void
s_send_routing_id (router_t *self, const uint8_t *id, size_t id_size)
{
    zmq_send (self->router_handle, id, id_size, ZMQ_SNDMORE);
}

//  Encode and send an envelope and its frames (consumed) to the peer at
//  id; no accounting
static void
s_send_raw (router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *envelope,
            zmq_msg_t *frames, size_t nframes)
{
    zmq_msg_t msg;
    if (ps_codec_encode (envelope, &msg)) {
        ps_error ("out of memory encoding a %s reply", ps_codec_type_name (envelope->type));
        for (size_t i = 0; i < nframes; i++)
            zmq_msg_close (&frames[i]);
        return;
    }
    s_send_routing_id (self, id, id_size);
    zmq_msg_send (&msg, self->router_handle, nframes ? ZMQ_SNDMORE : 0);
    for (size_t i = 0; i < nframes; i++)
        zmq_msg_send (&frames[i], self->router_handle, i + 1 < nframes ? ZMQ_SNDMORE : 0);
}

//  Send an envelope (and optional frames, consumed) to the peer at id
static void
s_send_envelope (router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *envelope,
                 zmq_msg_t *frames, size_t nframes)
{
    if (self->tap_on)
        s_tap_envelope (self, PSMQ__TAP_KIND__TAP_REPLY, id, id_size, envelope, frames, nframes);
    bool known = envelope->type >= 0 && envelope->type <= PSMQ__MSG_TYPE__ERROR;
    for (size_t i = 0; i < nframes; i++) {
        self->stats.bytes_out += zmq_msg_size (&frames[i]);
        if (known)
            self->stats.bytes_out_type[envelope->type] += zmq_msg_size (&frames[i]);
    }
    if (known)
        self->stats.out[envelope->type]++;
    s_send_raw (self, id, id_size, envelope, frames, nframes);
}

static void
s_reply_plain (router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *request,
               int64_t clock)
{
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.clock = clock;
    reply.min_clock = ps_vclock_min (self->vclock);
    s_send_envelope (self, id, id_size, &reply, NULL, 0);
}

//  Answer with an ERROR envelope, count and log it (at a bounded rate)
static void
s_reject (router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *request,
          const ps_problem_t *problem)
{
    self->stats.rejected++;
    if (self->tap_on) {
        peer_t *peer = s_peer_lookup (self, id, id_size);
        s_tap_reject (self, id, id_size, request, problem, peer ? (int64_t)peer->rank : -1);
    }
    int64_t second = zclock_mono () / 1000;
    if (second != self->reject_window) {
        if (self->reject_logged > REJECT_LOG_PER_SECOND)
            ps_warn ("%u more rejected messages in the last second",
                     self->reject_logged - REJECT_LOG_PER_SECOND);
        self->reject_window = second;
        self->reject_logged = 0;
    }
    if (self->reject_logged++ < REJECT_LOG_PER_SECOND) {
        char hex[2 * 16 + 1];
        s_hex (id, id_size < 16 ? id_size : 16, hex);
        ps_warn ("rejected %s from peer %s: %s: %s",
                 request ? ps_codec_type_name (request->type) : "message", hex,
                 ps_codec_error_name (problem->code), problem->message);
    }
    zmq_msg_t msg;
    if (ps_codec_encode_error (request, problem->code, problem->message,
                               ps_vclock_min (self->vclock), &msg))
        return;
    s_send_routing_id (self, id, id_size);
    zmq_msg_send (&msg, self->router_handle, 0);
    self->stats.out[PSMQ__MSG_TYPE__ERROR]++;
}

// ------------------------------------------------------------------ peers

static peer_t *
s_peer_lookup (router_t *self, const uint8_t *id, size_t id_size)
{
    char key[2 * MAX_ROUTING_ID + 1];
    s_hex (id, id_size, key);
    return zhashx_lookup (self->peers, key);
}

static void
s_unpark_peer (router_t *self, peer_t *peer)
{
    parked_t *parked = zlistx_first (self->parked);
    while (parked) {
        void *handle = zlistx_cursor (self->parked);
        parked_t *next = zlistx_next (self->parked);
        if (parked->peer == peer)
            zlistx_delete (self->parked, handle);
        parked = next;
    }
    peer->parked = 0;
}

static void s_release (router_t *self);
static void s_clock_moved (router_t *self, int64_t old_min);

//  Forget a connection: its parked requests go, the rank stays as it is
static void
s_peer_forget (router_t *self, peer_t *peer)
{
    s_unpark_peer (self, peer);
    for (uint32_t rank = peer->rank; rank < peer->rank + peer->weight; rank++)
        if (self->rank_peer[rank] == peer)
            self->rank_peer[rank] = NULL;
    zhashx_delete (self->peers, peer->key);
}

//  A rank goes away (BYE or silence): nobody waits for it any more
static void
s_rank_leaves (router_t *self, peer_t *peer)
{
    int64_t old_min = ps_vclock_min (self->vclock);
    for (uint32_t rank = peer->rank; rank < peer->rank + peer->weight; rank++)
        ps_vclock_leave (self->vclock, rank);
    s_peer_forget (self, peer);
    s_clock_moved (self, old_min);
}

static void
s_evict_silent (router_t *self)
{
    int64_t now = zclock_mono ();
    zlistx_t *silent = zlistx_new ();
    for (peer_t *peer = zhashx_first (self->peers); peer; peer = zhashx_next (self->peers))
        if (now - peer->last_seen > (int64_t)self->config.timeout_ms)
            zlistx_add_end (silent, peer);
    for (peer_t *peer = zlistx_first (silent); peer; peer = zlistx_next (silent)) {
        ps_warn ("evicted worker %u: silent for %" PRId64 " ms (timeout %u ms), at clock %" PRId64,
                 peer->rank, now - peer->last_seen, self->config.timeout_ms,
                 ps_vclock_clock (self->vclock, peer->rank));
        self->stats.evicted++;
        if (self->tap_on)
            s_tap_event (self, PSMQ__TAP_KIND__TAP_EVICT, peer->rank, "silent for %" PRId64 " ms",
                         now - peer->last_seen);
        s_rank_leaves (self, peer);
    }
    zlistx_destroy (&silent);
}

// ------------------------------------------------------------ aggregation

static void
s_agg_send_command (router_t *self, const ps_agg_command_t *command, bool more)
{
    zmq_send (self->agg_handle, command, sizeof *command, more ? ZMQ_SNDMORE : 0);
}

static void
s_published_free (void **item_p)
{
    published_t *published = *item_p;
    if (published) {
        ps_buf_unref (&published->buf);
        free (published);
        *item_p = NULL;
    }
}

static void
s_on_publish (router_t *self, const ps_agg_command_t *event, zmq_msg_t *name)
{
    char key[PS_MAX_KEY_LEN + 1];
    size_t length = zmq_msg_size (name);
    assert (length <= PS_MAX_KEY_LEN);
    memcpy (key, zmq_msg_data (name), length);
    key[length] = 0;
    published_t *published = zhashx_lookup (self->published, key);
    if (!published) {
        published = calloc (1, sizeof *published);
        assert (published);
        zhashx_insert (self->published, key, published);
    }
    PS_HANDOFF_RECEIVE (event->buf);
    if (!published->buf && published->init_command)
        self->creating--;
    ps_buf_unref (&published->buf);
    published->buf = event->buf;
    published->size = event->size;
    published->version = event->version;
}

//  The aggregator answered an INIT: tap the reply with its time there
static void
s_tap_agg_reply (router_t *self, const ps_agg_command_t *event, zmq_msg_t *id, zmq_msg_t *reply)
{
    ps_problem_t problem;
    ps_envelope_t *envelope =
        ps_codec_decode (self->codec, zmq_msg_data (reply), zmq_msg_size (reply), &problem);
    if (!envelope)
        return;
    self->received_us = event->received_us;
    self->aggregation_us = event->received_us ? s_now_us () - event->received_us : 0;
    self->parked_us = 0;
    s_tap_envelope (self, PSMQ__TAP_KIND__TAP_REPLY, zmq_msg_data (id), zmq_msg_size (id), envelope,
                    NULL, 0);
    self->aggregation_us = 0;
}

//  Every reply carries min_clock, and the aggregator, which answers INIT,
//  does not know it: decode, stamp, encode again (INIT is rare)
static void
s_stamp_min_clock (router_t *self, zmq_msg_t *reply)
{
    ps_problem_t problem;
    ps_envelope_t *envelope =
        ps_codec_decode (self->codec, zmq_msg_data (reply), zmq_msg_size (reply), &problem);
    zmq_msg_t stamped;
    if (!envelope)
        return;
    envelope->min_clock = ps_vclock_min (self->vclock);
    if (ps_codec_encode (envelope, &stamped))
        return;
    zmq_msg_move (reply, &stamped); //  closes what reply held
    zmq_msg_close (&stamped);
}

//  The aggregator refused a push after its ack: the worker hears of it
//  in the reply to its next CLOCK
static void
s_on_fault (router_t *self, const ps_agg_command_t *event, zmq_msg_t *why)
{
    self->stats.rejected++;
    self->stats.nonfinite++;
    size_t length = zmq_msg_size (why);
    char message[PS_MAX_ERROR_LEN];
    length = length < sizeof message - 1 ? length : sizeof message - 1;
    memcpy (message, zmq_msg_data (why), length);
    message[length] = 0;
    ps_warn ("push from worker %u not applied: %s", event->worker, message);
    if (self->tap_on)
        s_tap_event (self, PSMQ__TAP_KIND__TAP_REJECT, event->worker, "%s", message);
    peer_t *peer =
        event->worker < ps_vclock_world (self->vclock) ? self->rank_peer[event->worker] : NULL;
    if (peer) {
        peer->faulted = true;
        snprintf (peer->fault, sizeof peer->fault, "%s", message);
    }
}

//  An INIT the aggregator refused leaves its keys unpublished: forget them
static void
s_forget_failed_inits (router_t *self)
{
    zlistx_t *failed = zlistx_new ();
    assert (failed);
    for (published_t *published = zhashx_first (self->published); published;
         published = zhashx_next (self->published))
        if (!published->buf && published->init_command <= self->agg_done)
            zlistx_add_end (failed, (void *)zhashx_cursor (self->published));
    for (const char *key = zlistx_first (failed); key; key = zlistx_next (failed)) {
        zhashx_delete (self->published, key);
        self->creating--;
    }
    zlistx_destroy (&failed);
}

//  Read one message from the aggregator and act on it
static void
s_agg_receive (router_t *self)
{
    ps_agg_command_t event;
    if (zmq_recv (self->agg_handle, &event, sizeof event, 0) != sizeof event)
        return; //  interrupted; the pipe protocol itself cannot break
    switch (event.kind) {
    case PS_AGG_PUBLISH: {
        zmq_msg_t name;
        zmq_msg_init (&name);
        zmq_msg_recv (&name, self->agg_handle, 0);
        s_on_publish (self, &event, &name);
        zmq_msg_close (&name);
        break;
    }
    case PS_AGG_REPLY: {
        zmq_msg_t id, reply;
        zmq_msg_init (&id);
        zmq_msg_init (&reply);
        zmq_msg_recv (&id, self->agg_handle, 0);
        zmq_msg_recv (&reply, self->agg_handle, 0);
        s_stamp_min_clock (self, &reply);
        if (self->tap_on)
            s_tap_agg_reply (self, &event, &id, &reply);
        zmq_msg_send (&id, self->router_handle, ZMQ_SNDMORE);
        zmq_msg_send (&reply, self->router_handle, 0);
        zmq_msg_close (&id);
        zmq_msg_close (&reply);
        self->stats.out[PSMQ__MSG_TYPE__INIT]++;
        break;
    }
    case PS_AGG_FAULT: {
        zmq_msg_t why;
        zmq_msg_init (&why);
        zmq_msg_recv (&why, self->agg_handle, 0);
        s_on_fault (self, &event, &why);
        zmq_msg_close (&why);
        break;
    }
    case PS_AGG_DONE:
        self->agg_done = event.done;
        self->stats.steps = event.steps;
        self->stats.pending = event.pending;
        if (self->creating)
            s_forget_failed_inits (self);
        s_release (self);
        break;
    default: assert (false);
    }
}

//  The slowest clock may have moved: flush BSP accumulators, release waiters
static void
s_clock_moved (router_t *self, int64_t old_min)
{
    int64_t new_min = ps_vclock_min (self->vclock);
    if (new_min == old_min)
        return;
    if (self->config.staleness == 0 && new_min > old_min) {
        ps_agg_command_t flush = {.kind = PS_AGG_FLUSH, .clock = new_min};
        s_agg_send_command (self, &flush, false);
        self->agg_sent++;
    }
    ps_debug ("slowest clock %" PRId64 " -> %" PRId64, old_min, new_min);
    if (self->tap_on)
        s_tap_event (self, PSMQ__TAP_KIND__TAP_CLOCK, -1, "slowest clock %" PRId64 " -> %" PRId64,
                     old_min == PS_VCLOCK_NOBODY ? -1 : old_min,
                     new_min == PS_VCLOCK_NOBODY ? -1 : new_min);
    s_release (self);
}

// ------------------------------------------------------------ pull replies

static int
s_reserve_slices (router_t *self, size_t count)
{
    if (count <= self->slice_capacity)
        return 0;
    ps_slice_t *pool = realloc (self->slice_pool, count * sizeof *pool);
    if (!pool)
        return -1;
    self->slice_pool = pool;
    ps_slice_t **ptrs = realloc (self->slice_ptrs, count * sizeof *ptrs);
    if (!ptrs)
        return -1;
    self->slice_ptrs = ptrs;
    zmq_msg_t *frames = realloc (self->reply_frames, count * sizeof *frames);
    if (!frames)
        return -1;
    self->reply_frames = frames;
    self->slice_capacity = count;
    return 0;
}

//  The range a PULL slice asks for, checked against the published key
static int
s_pull_range (router_t *self, const ps_slice_t *slice, published_t **published_p, uint64_t *count,
              ps_problem_t *problem)
{
    published_t *published = zhashx_lookup (self->published, slice->key);
    if (!published)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_UNKNOWN_KEY, "pull of unknown key '%s'",
                               slice->key);
    if (slice->offset > published->size || slice->count > published->size - slice->offset)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "pull of key '%s' [%" PRIu64 ", +%" PRIu64 ") beyond its %" PRIu64
                               " elements",
                               slice->key, slice->offset, slice->count, published->size);
    *published_p = published;
    *count = slice->count ? slice->count : published->size - slice->offset;
    return 0;
}

static uint64_t
s_chunks (uint64_t count)
{
    const uint64_t chunk = PS_CHUNK_BYTES / sizeof (float);
    return count == 0 ? 1 : (count + chunk - 1) / chunk;
}

//  Check a PULL and count the slices of its reply
static int
s_check_pull (router_t *self, const ps_envelope_t *request, ps_problem_t *problem)
{
    uint64_t slices = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < request->n_slices; i++) {
        published_t *published = NULL;
        uint64_t count = 0;
        if (s_pull_range (self, request->slices[i], &published, &count, problem))
            return -1;
        slices += s_chunks (count);
        bytes += count * sizeof (float);
    }
    if (slices > PS_MAX_SLICES || bytes > (uint64_t)PS_MAX_MESSAGE_BYTES)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "pull reply would need %" PRIu64 " frames and %" PRIu64
                               " bytes (limits %d, %lld): pull fewer keys at once",
                               slices, bytes, PS_MAX_SLICES, PS_MAX_MESSAGE_BYTES);
    return 0;
}

//  Answer a checked PULL from the published versions, by reference
//  Lay out the reply's slices (at most one chunk each) and their frames,
//  by reference into the published versions; returns how many
static size_t
s_pull_slices (router_t *self, const ps_envelope_t *request)
{
    const uint64_t chunk = PS_CHUNK_BYTES / sizeof (float);
    size_t used = 0;
    for (size_t i = 0; i < request->n_slices; i++) {
        published_t *published = NULL;
        uint64_t count = 0;
        const ps_slice_t *asked = request->slices[i];
        //  Checked when the request came; keys are never deleted
        if (s_pull_range (self, asked, &published, &count, NULL))
            continue;
        uint64_t offset = asked->offset;
        do {
            uint64_t run = count < chunk ? count : chunk;
            ps_slice_t *slice = &self->slice_pool[used];
            psmq__slice__init (slice);
            slice->key = asked->key;
            slice->offset = offset;
            slice->count = run;
            slice->total = published->size;
            self->slice_ptrs[used] = slice;
            if (run == 0 || ps_buf_frame (published->buf, offset, run, &self->reply_frames[used]))
                zmq_msg_init (&self->reply_frames[used]);
            used++;
            offset += run;
            count -= run;
        } while (count > 0);
    }
    return used;
}

//  Answer a checked PULL from the published versions, by reference. A
//  large reply goes out in parts of about PS_CHUNK_BYTES, each its own
//  message flagged `more` but the last: libzmq hands a message over only
//  whole, so the worker copies part k while part k+1 is on the wire.
static void
s_answer_pull (router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *request)
{
    size_t total = 0;
    for (size_t i = 0; i < request->n_slices; i++) {
        published_t *published = NULL;
        uint64_t count = 0;
        if (s_pull_range (self, request->slices[i], &published, &count, NULL) == 0)
            total += s_chunks (count);
        if (!published || !published->buf) {
            //  Its INIT, pipelined before this pull, was refused
            ps_problem_t problem;
            ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_UNKNOWN_KEY,
                            "pull of key '%s', whose init failed", request->slices[i]->key);
            return s_reject (self, id, id_size, request, &problem);
        }
    }
    if (s_reserve_slices (self, total)) {
        ps_problem_t problem;
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_FULL, "out of memory for a pull reply");
        return s_reject (self, id, id_size, request, &problem);
    }
    size_t used = s_pull_slices (self, request);
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.clock = ps_vclock_clock (self->vclock, request->worker);
    reply.min_clock = ps_vclock_min (self->vclock);
    reply.n_slices = used;
    reply.slices = self->slice_ptrs;
    if (self->tap_on)
        s_tap_envelope (self, PSMQ__TAP_KIND__TAP_REPLY, id, id_size, &reply, self->reply_frames,
                        used);
    self->stats.out[PSMQ__MSG_TYPE__PULL]++;
    size_t first = 0;
    while (first < used) {
        size_t last = first;
        uint64_t bytes = 0;
        while (last < used && (last == first || bytes < PS_CHUNK_BYTES))
            bytes += self->slice_pool[last++].count * sizeof (float);
        reply.n_slices = last - first;
        reply.slices = self->slice_ptrs + first;
        reply.more = last < used;
        //  Slices of zero elements carry no frame: drop their placeholders
        size_t nframes = 0;
        for (size_t i = first; i < last; i++) {
            if (self->slice_pool[i].count)
                self->reply_frames[first + nframes++] = self->reply_frames[i];
            else
                zmq_msg_close (&self->reply_frames[i]);
        }
        self->stats.bytes_out += bytes;
        self->stats.bytes_out_type[PSMQ__MSG_TYPE__PULL] += bytes;
        s_send_raw (self, id, id_size, &reply, self->reply_frames + first, nframes);
        first = last;
    }
}

//  A CLOCK's reply: its new clock, or the refusal of one of the
//  connection's pushes that the aggregator reported meanwhile
static void
s_answer_clock (router_t *self, peer_t *peer, const ps_envelope_t *request, int64_t clock)
{
    if (!peer->faulted)
        return s_reply_plain (self, peer->id, peer->id_size, request, clock);
    ps_problem_t problem;
    ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_NONFINITE, "%s", peer->fault);
    peer->faulted = false;
    s_reject (self, peer->id, peer->id_size, request, &problem);
}

// ------------------------------------------------------------ parking

static bool
s_may_answer (router_t *self, int64_t clock, uint64_t need_done)
{
    return self->agg_done >= need_done && ps_vclock_admits (self->vclock, clock);
}

static void
s_answer_parked (router_t *self, parked_t *parked)
{
    ps_problem_t problem;
    ps_envelope_t *request = ps_codec_decode (self->parked_codec, zmq_msg_data (&parked->envelope),
                                              zmq_msg_size (&parked->envelope), &problem);
    assert (request);
    peer_t *peer = parked->peer;
    if (self->tap_on) {
        int64_t waited = s_now_us () - (self->received_us = parked->received_us);
        int64_t since = (zclock_mono () - parked->since) * 1000;
        waited = since < waited ? since : waited;
        self->parked_us = parked->bound ? waited : 0;
        self->aggregation_us = parked->bound ? 0 : waited;
    }
    if (parked->type == PSMQ__MSG_TYPE__PULL)
        s_answer_pull (self, peer->id, peer->id_size, request);
    else
        s_answer_clock (self, peer, request, parked->clock);
    self->parked_us = self->aggregation_us = 0;
}

//  Answer every parked request whose conditions now hold
static void
s_release (router_t *self)
{
    parked_t *parked = zlistx_first (self->parked);
    while (parked) {
        void *handle = zlistx_cursor (self->parked);
        parked_t *next = zlistx_next (self->parked);
        if (parked->recount && ps_vclock_admits (self->vclock, parked->clock)) {
            //  What let it pass (pushes, a FLUSH) was sent after it came
            parked->need_done = self->agg_sent;
            parked->recount = false;
        }
        if (s_may_answer (self, parked->clock, parked->need_done)) {
            s_answer_parked (self, parked);
            parked->peer->parked--;
            zlistx_delete (self->parked, handle);
        }
        parked = next;
    }
}

//  Keep the request (frame 1) to answer later
static void
s_park (router_t *self, peer_t *peer, int type, int64_t clock, uint64_t need_done)
{
    parked_t *parked = calloc (1, sizeof *parked);
    assert (parked);
    parked->peer = peer;
    parked->type = type;
    parked->clock = clock;
    parked->need_done = need_done;
    parked->since = zclock_mono ();
    parked->received_us = self->received_us;
    parked->bound = !ps_vclock_admits (self->vclock, clock);
    parked->recount = parked->bound && type == PSMQ__MSG_TYPE__PULL;
    zmq_msg_init (&parked->envelope);
    zmq_msg_move (&parked->envelope, &self->frames[1]);
    zlistx_add_end (self->parked, parked);
    peer->parked++;
    self->stats.parked++;
}

static void
s_parked_free (void **item_p)
{
    parked_t *parked = *item_p;
    if (parked) {
        zmq_msg_close (&parked->envelope);
        free (parked);
        *item_p = NULL;
    }
}

static int
s_check_park_room (peer_t *peer, ps_problem_t *problem)
{
    if (peer->parked >= PS_MAX_PARKED_PER_PEER)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "worker %u already has %u requests waiting", peer->rank,
                               peer->parked);
    return 0;
}

// ------------------------------------------------------------ handlers

static uint32_t
s_shards (uint32_t shards)
{
    return shards ? shards : 1;
}

//  A worker must take us for what we are: the same place in a group of the
//  same size, or its pushes and pulls would address slices we do not hold
static int
s_check_group (router_t *self, const Psmq__Hello *hello, ps_problem_t *problem)
{
    uint32_t shards = s_shards (self->config.shards);
    uint32_t theirs = s_shards (hello->shards);
    if (theirs != shards || hello->shard != self->config.shard) {
        if (shards == 1)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                                   "the worker takes this broker for shard %u of a group of %u, "
                                   "but it serves alone (no --shards)",
                                   hello->shard, theirs);
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                               "the worker takes this broker for shard %u of a group of %u, "
                               "but it is shard %u of %u: give every worker the same "
                               "endpoint list, in shard order",
                               hello->shard, theirs, self->config.shard, shards);
    }
    if (hello->n_group && hello->n_group != theirs)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                               "the worker names %zu endpoints for a group of %u", hello->n_group,
                               theirs);
    return 0;
}

//  Remember the group's endpoints as a worker names them, for INFO
static void
s_learn_group (router_t *self, const Psmq__Hello *hello)
{
    if (self->group || hello->n_group < 2)
        return;
    char **group = calloc (hello->n_group, sizeof *group);
    if (!group)
        return;
    for (size_t i = 0; i < hello->n_group; i++)
        group[i] = strdup (hello->group[i]);
    self->group = group;
}

static void
s_handle_hello (router_t *self, const uint8_t *id, size_t id_size, ps_envelope_t *request)
{
    ps_problem_t problem;
    uint32_t world = ps_vclock_world (self->vclock);
    if (!request->hello) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_MALFORMED, "hello without its settings");
        return s_reject (self, id, id_size, request, &problem);
    }
    if (s_check_group (self, request->hello, &problem))
        return s_reject (self, id, id_size, request, &problem);
    uint32_t weight = request->hello->weight ? request->hello->weight : 1;
    if (request->hello->world_size != world || request->worker >= world ||
        weight > world - request->worker) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_RANK,
                        "ranks %u..%u of world %u do not fit this broker's world of %u workers",
                        request->worker, request->worker + weight - 1, request->hello->world_size,
                        world);
        return s_reject (self, id, id_size, request, &problem);
    }
    peer_t *peer = s_peer_lookup (self, id, id_size);
    if (peer && (peer->rank != request->worker || peer->weight != weight)) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_RANK,
                        "this connection is rank %u already, not %u", peer->rank, request->worker);
        return s_reject (self, id, id_size, request, &problem);
    }
    uint32_t rank = request->worker;
    int64_t old_min = ps_vclock_min (self->vclock);
    for (uint32_t r = rank; r < rank + weight; r++) {
        peer_t *holder = self->rank_peer[r];
        if (holder && holder != peer) {
            ps_warn ("worker %u registered again from a new connection; the old one is dropped", r);
            //  The old connection's other ranks have nobody behind them now:
            //  they leave, or the job would wait for them forever
            for (uint32_t other = holder->rank; other < holder->rank + holder->weight; other++)
                if (other < rank || other >= rank + weight)
                    ps_vclock_leave (self->vclock, other);
            s_peer_forget (self, holder);
        }
    }
    if (!peer) {
        peer = calloc (1, sizeof *peer);
        assert (peer);
        memcpy (peer->id, id, id_size);
        peer->id_size = id_size;
        s_hex (id, id_size, peer->key);
        peer->rank = rank;
        peer->weight = weight;
        zhashx_insert (self->peers, peer->key, peer);
    }
    peer->session = s_random64 ();
    peer->last_seen = zclock_mono ();
    s_learn_group (self, request->hello);
    for (uint32_t r = rank; r < rank + weight; r++) {
        self->rank_peer[r] = peer;
        self->seen[r] = true;
    }

    int64_t clock = ps_vclock_join_range (self->vclock, rank, weight);
    if (weight > 1)
        ps_info ("workers %u..%u joined at clock %" PRId64 " (%u of %u live)", rank,
                 rank + weight - 1, clock, ps_vclock_live (self->vclock), world);
    else
        ps_info ("worker %u joined at clock %" PRId64 " (%u of %u live)", rank, clock,
                 ps_vclock_live (self->vclock), world);
    if (self->tap_on)
        s_tap_event (self, PSMQ__TAP_KIND__TAP_CONNECT, rank, "joined at clock %" PRId64, clock);

    int64_t clocks[PS_MAX_WORKERS];
    for (uint32_t r = 0; r < world; r++)
        clocks[r] = ps_vclock_state (self->vclock, r) == PS_RANK_LIVE
                        ? ps_vclock_clock (self->vclock, r)
                        : -1;
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = world;
    hello.staleness = self->config.staleness;
    hello.session = peer->session;
    hello.heartbeat_ms = self->config.heartbeat_ms;
    hello.timeout_ms = self->config.timeout_ms;
    hello.clocks = clocks;
    hello.n_clocks = world;
    hello.live = ps_vclock_live (self->vclock);
    hello.shard = self->config.shard;
    hello.shards = s_shards (self->config.shards);
    hello.incarnation = self->incarnation;
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.clock = clock;
    reply.min_clock = ps_vclock_min (self->vclock);
    reply.hello = &hello;
    s_send_envelope (self, id, id_size, &reply, NULL, 0);
    s_clock_moved (self, old_min);
}

//  Hand the whole message, frames moved, to the aggregator
static void
s_forward (router_t *self, const ps_agg_command_t *command, bool with_id)
{
    s_agg_send_command (self, command, true);
    size_t first = with_id ? 0 : 1;
    for (size_t i = first; i < self->nframes; i++)
        zmq_msg_send (&self->frames[i], self->agg_handle, i + 1 < self->nframes ? ZMQ_SNDMORE : 0);
    self->agg_sent++;
}

static int
s_check_init (router_t *self, const ps_envelope_t *request, ps_problem_t *problem)
{
    if (request->n_slices == 0)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED, "init names no key");
    for (size_t i = 0; i < request->n_slices; i++) {
        const ps_slice_t *slice = request->slices[i];
        if (slice->total == 0)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "init of key '%s' with size 0", slice->key);
        if (slice->offset > slice->total || slice->count > slice->total - slice->offset)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "init of key '%s': initial values [%" PRIu64 ", +%" PRIu64
                                   ") beyond its size %" PRIu64,
                                   slice->key, slice->offset, slice->count, slice->total);
        published_t *published = zhashx_lookup (self->published, slice->key);
        if (published && published->size != slice->total)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_KEY_EXISTS,
                                   "key '%s' exists with %" PRIu64 " elements, not %" PRIu64,
                                   slice->key, published->size, slice->total);
    }
    if (request->optim) {
        const Psmq__Optim *optim = request->optim;
        if (optim->kind < PSMQ__OPTIM_KIND__OPT_DEFAULT || optim->kind > PSMQ__OPTIM_KIND__OPT_ADAM)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_OPTIM, "unknown optimizer kind %d",
                                   (int)optim->kind);
        ps_optim_config_t config = self->config.optim;
        ps_optim_config_from_wire (&config, optim);
        char why[PS_MAX_ERROR_LEN];
        if (ps_optim_config_check (&config, why, sizeof why))
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_OPTIM, "%s", why);
    }
    return 0;
}

//  Keys an INIT creates are known at once, by size, so that a PUSH or a
//  PULL pipelined behind it is not refused as unknown: the aggregator
//  takes the PUSH after the INIT, and the PULL waits for it like any pull
static void
s_note_creating (router_t *self, const ps_envelope_t *request, uint64_t command)
{
    for (size_t i = 0; i < request->n_slices; i++) {
        const ps_slice_t *slice = request->slices[i];
        if (zhashx_lookup (self->published, slice->key))
            continue;
        published_t *published = calloc (1, sizeof *published);
        assert (published);
        published->size = slice->total;
        published->init_command = command;
        zhashx_insert (self->published, slice->key, published);
        self->creating++;
    }
}

static void
s_handle_init (router_t *self, peer_t *peer, ps_envelope_t *request)
{
    ps_problem_t problem;
    if (s_check_init (self, request, &problem))
        return s_reject (self, peer->id, peer->id_size, request, &problem);
    s_note_creating (self, request, self->agg_sent + 1);
    ps_agg_command_t command = {.kind = PS_AGG_INIT, .received_us = self->received_us};
    s_forward (self, &command, true);
}

//  A push must cover each of its keys exactly, in order, in slices
static int
s_check_push (router_t *self, peer_t *peer, const ps_envelope_t *request, ps_problem_t *problem)
{
    int64_t clock = ps_vclock_clock (self->vclock, peer->rank);
    if (request->clock != clock)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_CLOCK,
                               "push for clock %" PRId64
                               " from worker %u, which is at clock %" PRId64,
                               request->clock, peer->rank, clock);
    if (request->n_slices == 0)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED, "push names no key");
    if (request->grad_count == 0 || request->grad_count > peer->weight)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_RANK,
                               "push with grad_count %u from a connection of %u worker%s: it "
                               "must count the gradients summed in it, 1 to %u",
                               request->grad_count, peer->weight, peer->weight == 1 ? "" : "s",
                               peer->weight);
    published_t *published = NULL;
    const char *key = NULL;
    uint64_t expected = 0;
    for (size_t i = 0; i <= request->n_slices; i++) {
        const ps_slice_t *slice = i < request->n_slices ? request->slices[i] : NULL;
        bool same_key = slice && key && strcmp (slice->key, key) == 0;
        if (key && !same_key && expected != published->size)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "push of key '%s' covers %" PRIu64 " of its %" PRIu64
                                   " elements",
                                   key, expected, published->size);
        if (!slice)
            break;
        if (!same_key) {
            key = slice->key;
            expected = 0;
            published = zhashx_lookup (self->published, key);
            if (!published)
                return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_UNKNOWN_KEY,
                                       "push of unknown key '%s'", key);
        }
        if (slice->offset != expected || slice->count == 0)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "push of key '%s': slice [%" PRIu64 ", +%" PRIu64
                                   ") where offset %" PRIu64 " and a non-empty slice were due",
                                   key, slice->offset, slice->count, expected);
        expected += slice->count;
        if (expected > published->size)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "push of key '%s' has %" PRIu64 "+ elements, the key %" PRIu64,
                                   key, expected, published->size);
    }
    return 0;
}

static void
s_handle_push (router_t *self, peer_t *peer, ps_envelope_t *request)
{
    ps_problem_t problem;
    if (s_check_push (self, peer, request, &problem))
        return s_reject (self, peer->id, peer->id_size, request, &problem);
    //  Ack before forwarding: the reply needs nothing from the aggregator,
    //  and the request's fields are gone once its frames are moved
    s_reply_plain (self, peer->id, peer->id_size, request, request->clock);
    ps_agg_command_t command = {.kind = PS_AGG_PUSH,
                                .clock = request->clock,
                                .grad_count = request->grad_count,
                                .worker = peer->rank};
    s_forward (self, &command, false);
    peer->pushes_sent = self->agg_sent;
}

static void
s_handle_pull (router_t *self, peer_t *peer, ps_envelope_t *request)
{
    ps_problem_t problem;
    if (s_check_pull (self, request, &problem))
        return s_reject (self, peer->id, peer->id_size, request, &problem);
    int64_t clock = ps_vclock_clock (self->vclock, peer->rank);
    if (s_may_answer (self, clock, self->agg_sent))
        return s_answer_pull (self, peer->id, peer->id_size, request);
    if (s_check_park_room (peer, &problem))
        return s_reject (self, peer->id, peer->id_size, request, &problem);
    s_park (self, peer, PSMQ__MSG_TYPE__PULL, clock, self->agg_sent);
}

static void
s_handle_clock (router_t *self, peer_t *peer, ps_envelope_t *request)
{
    ps_problem_t problem;
    int64_t old_min = ps_vclock_min (self->vclock);
    int64_t current = ps_vclock_clock (self->vclock, peer->rank);
    if (ps_vclock_advance (self->vclock, peer->rank, request->clock)) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_CLOCK,
                        "worker %u finished clock %" PRId64 " but is at clock %" PRId64, peer->rank,
                        request->clock, current);
        return s_reject (self, peer->id, peer->id_size, request, &problem);
    }
    //  The other ranks of the connection share the first one's clock
    for (uint32_t rank = peer->rank + 1; rank < peer->rank + peer->weight; rank++)
        ps_vclock_advance (self->vclock, rank, request->clock);
    int64_t clock = request->clock + 1;
    if (s_may_answer (self, clock, peer->pushes_sent))
        s_answer_clock (self, peer, request, clock);
    else if (s_check_park_room (peer, &problem))
        s_reject (self, peer->id, peer->id_size, request, &problem);
    else
        s_park (self, peer, PSMQ__MSG_TYPE__CLOCK, clock, peer->pushes_sent);
    s_clock_moved (self, old_min);
}

static void
s_handle_heartbeat (router_t *self, peer_t *peer, const ps_envelope_t *request)
{
    if (peer)
        return; //  last_seen is already refreshed
    //  From another socket of the same worker: trust the session token
    if (request->worker < ps_vclock_world (self->vclock)) {
        peer_t *holder = self->rank_peer[request->worker];
        if (holder && request->session && holder->session == request->session)
            holder->last_seen = zclock_mono ();
    }
}

static char *s_info_json (router_t *self);

static void
s_handle_info (router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *request)
{
    char *json = s_info_json (self);
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.info = json ? json : "{}";
    reply.min_clock = ps_vclock_min (self->vclock);
    s_send_envelope (self, id, id_size, &reply, NULL, 0);
    free (json);
}

// ------------------------------------------------------------ the loop

static void
s_close_frames (router_t *self)
{
    for (size_t i = 0; i < self->nframes; i++)
        zmq_msg_close (&self->frames[i]);
    self->nframes = 0;
}

//  Receive one whole message. Frames past MAX_FRAMES are read and dropped
//  so that the next message starts clean; *overflow tells.
static int
s_receive (router_t *self, bool *overflow)
{
    *overflow = false;
    self->nframes = 0;
    int more = 1;
    while (more) {
        zmq_msg_t scratch;
        bool keep = self->nframes < MAX_FRAMES;
        zmq_msg_t *frame = keep ? &self->frames[self->nframes] : &scratch;
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, self->router_handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (frame);
            return -1;
        }
        more = zmq_msg_more (frame);
        if (keep)
            self->nframes++;
        else {
            *overflow = true;
            zmq_msg_close (frame);
        }
    }
    return 0;
}

static void
s_dispatch (router_t *self, const uint8_t *id, size_t id_size, ps_envelope_t *request)
{
    ps_problem_t problem;
    int type = request->type;
    self->stats.in[type]++;
    if (request->reply || type == PSMQ__MSG_TYPE__ERROR) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_TYPE, "a worker may not send %s %s",
                        ps_codec_type_name (type), request->reply ? "replies" : "messages");
        return s_reject (self, id, id_size, request, &problem);
    }
    //  Any message of a registered connection keeps it alive, INFO too
    peer_t *peer = s_peer_lookup (self, id, id_size);
    if (peer) {
        peer->last_seen = zclock_mono ();
        self->rank_messages[peer->rank]++;
    }
    if (type == PSMQ__MSG_TYPE__HELLO)
        return s_handle_hello (self, id, id_size, request);
    if (type == PSMQ__MSG_TYPE__INFO)
        return s_handle_info (self, id, id_size, request);
    if (type == PSMQ__MSG_TYPE__HEARTBEAT)
        return s_handle_heartbeat (self, peer, request);
    if (!peer) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_NOT_REGISTERED,
                        "%s before hello (or after eviction): say hello first",
                        ps_codec_type_name (type));
        return s_reject (self, id, id_size, request, &problem);
    }
    if (request->worker != peer->rank) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_RANK,
                        "message says worker %u but this connection is worker %u", request->worker,
                        peer->rank);
        return s_reject (self, id, id_size, request, &problem);
    }
    switch (type) {
    case PSMQ__MSG_TYPE__INIT: return s_handle_init (self, peer, request);
    case PSMQ__MSG_TYPE__PUSH: return s_handle_push (self, peer, request);
    case PSMQ__MSG_TYPE__PULL: return s_handle_pull (self, peer, request);
    case PSMQ__MSG_TYPE__CLOCK: return s_handle_clock (self, peer, request);
    case PSMQ__MSG_TYPE__BYE:
        ps_info ("worker %u left at clock %" PRId64, peer->rank,
                 ps_vclock_clock (self->vclock, peer->rank));
        s_reply_plain (self, id, id_size, request, ps_vclock_clock (self->vclock, peer->rank));
        if (self->tap_on)
            s_tap_event (self, PSMQ__TAP_KIND__TAP_DISCONNECT, peer->rank, "left (bye)");
        return s_rank_leaves (self, peer);
    default:
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_TYPE, "unexpected message type %s",
                        ps_codec_type_name (type));
        return s_reject (self, id, id_size, request, &problem);
    }
}

//  Handle one message from the ROUTER socket
static void
s_router_receive (router_t *self)
{
    bool overflow;
    if (s_receive (self, &overflow)) {
        s_close_frames (self);
        return;
    }
    uint8_t id[MAX_ROUTING_ID];
    size_t id_size = zmq_msg_size (&self->frames[0]);
    assert (id_size <= MAX_ROUTING_ID);
    memcpy (id, zmq_msg_data (&self->frames[0]), id_size);

    ps_problem_t problem;
    ps_envelope_t *request = NULL;
    if (self->nframes < 2)
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_MALFORMED, "message without an envelope");
    else if (overflow)
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_TOO_LARGE, "message of more than %d frames",
                        MAX_FRAMES);
    else {
        request = ps_codec_decode (self->codec, zmq_msg_data (&self->frames[1]),
                                   zmq_msg_size (&self->frames[1]), &problem);
        if (request &&
            ps_codec_check_frames (request, &self->frames[2], self->nframes - 2, &problem)) {
            //  Keep the request for its seq, but refuse it
            self->stats.in[request->type]++;
            s_reject (self, id, id_size, request, &problem);
            s_close_frames (self);
            return;
        }
    }
    if (!request && problem.parsed) {
        //  Protobuf that broke a rule: answer with its seq, so a client with
        //  requests in flight knows which one failed
        ps_envelope_t refused;
        psmq__envelope__init (&refused);
        refused.seq = problem.seq;
        refused.worker = problem.worker;
        s_reject (self, id, id_size, &refused, &problem);
    }
    else if (!request)
        s_reject (self, id, id_size, NULL, &problem);
    else {
        for (size_t i = 2; i < self->nframes; i++) {
            self->stats.bytes_in += zmq_msg_size (&self->frames[i]);
            self->stats.bytes_in_type[request->type] += zmq_msg_size (&self->frames[i]);
        }
        if (self->tap_on) {
            self->received_us = s_now_us ();
            s_tap_envelope (self, PSMQ__TAP_KIND__TAP_REQUEST, id, id_size, request,
                            &self->frames[2], self->nframes - 2);
        }
        s_dispatch (self, id, id_size, request);
    }
    s_close_frames (self);
}

static void
s_info_by_type (FILE *out, const char *name, const uint64_t *counts)
{
    fprintf (out, ",\"%s\":{", name);
    for (int type = PSMQ__MSG_TYPE__HELLO; type <= PSMQ__MSG_TYPE__ERROR; type++)
        fprintf (out, "%s\"%s\":%" PRIu64, type > 1 ? "," : "", ps_codec_type_name (type),
                 counts[type]);
    fputc ('}', out);
}

//  What tools need beyond the counters: the tap, every rank, parked requests
static void
s_info_more (router_t *self, FILE *out)
{
    uint32_t world = ps_vclock_world (self->vclock);
    uint32_t seen = 0;
    for (uint32_t rank = 0; rank < world; rank++)
        seen += self->seen[rank];
    fprintf (out,
             ",\"tap\":\"%s\",\"tap_subscriptions\":%u,\"tap_records\":%" PRIu64
             ",\"tap_dropped\":%" PRIu64 ",\"seen\":%u",
             self->tap ? ps_tap_endpoint (self->tap) : "",
             self->tap ? ps_tap_subscriptions (self->tap) : 0,
             self->tap ? ps_tap_records (self->tap) : 0, self->tap ? ps_tap_dropped (self->tap) : 0,
             seen);
    fprintf (out, ",\"shard\":%u,\"shards\":%u,\"group\":[", self->config.shard,
             s_shards (self->config.shards));
    for (uint32_t i = 0; self->group && i < s_shards (self->config.shards); i++)
        fprintf (out, "%s\"%s\"", i ? "," : "", self->group[i] ? self->group[i] : "");
    fputc (']', out);
    s_info_by_type (out, "bytes_in_by_type", self->stats.bytes_in_type);
    s_info_by_type (out, "bytes_out_by_type", self->stats.bytes_out_type);
    static const char *states[] = {"absent", "live", "gone"};
    int64_t now = zclock_mono ();
    fprintf (out, ",\"workers\":[");
    for (uint32_t rank = 0; rank < world; rank++) {
        peer_t *peer = self->rank_peer[rank];
        fprintf (out,
                 "%s{\"rank\":%u,\"state\":\"%s\",\"clock\":%" PRId64
                 ",\"parked\":%u,\"messages_in\":%" PRIu64 ",\"last_seen_ms\":%" PRId64 "}",
                 rank ? "," : "", rank, states[ps_vclock_state (self->vclock, rank)],
                 ps_vclock_clock (self->vclock, rank), peer ? peer->parked : 0,
                 self->rank_messages[rank], peer ? now - peer->last_seen : -1);
    }
    fprintf (out, "],\"parked\":[");
    bool first = true;
    for (parked_t *parked = zlistx_first (self->parked); parked;
         parked = zlistx_next (self->parked)) {
        fprintf (out,
                 "%s{\"worker\":%u,\"type\":\"%s\",\"clock\":%" PRId64 ",\"waiting_ms\":%" PRId64
                 "}",
                 first ? "" : ",", parked->peer->rank, ps_codec_type_name (parked->type),
                 parked->clock, now - parked->since);
        first = false;
    }
    fputc (']', out);
}

static char *
s_info_json (router_t *self)
{
    char *json = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&json, &size);
    if (!out)
        return NULL;
    uint32_t world = ps_vclock_world (self->vclock);
    int64_t min = ps_vclock_min (self->vclock);
    fprintf (out,
             "{\"endpoint\":\"%s\",\"protocol\":%d,\"uptime_s\":%.3f,\"world\":%u,"
             "\"staleness\":%d,\"live\":%u,\"min_clock\":%" PRId64 ",\"max_clock\":%" PRId64
             ",\"slowest\":%d,\"keys\":%zu,\"optimizer\":\"%s\",\"lr\":%g,\"clocks\":[",
             self->bound, PS_PROTOCOL_VERSION, (zclock_mono () - self->started) / 1000.0, world,
             self->config.staleness, ps_vclock_live (self->vclock),
             min == PS_VCLOCK_NOBODY ? -1 : min, ps_vclock_max (self->vclock),
             ps_vclock_slowest (self->vclock), zhashx_size (self->published) - self->creating,
             ps_optim_kind_name (self->config.optim.kind), self->config.optim.lr);
    for (uint32_t rank = 0; rank < world; rank++)
        fprintf (out, "%s%" PRId64, rank ? "," : "",
                 ps_vclock_state (self->vclock, rank) == PS_RANK_LIVE
                     ? ps_vclock_clock (self->vclock, rank)
                     : -1);
    fprintf (out, "],\"messages_in\":{");
    for (int type = PSMQ__MSG_TYPE__HELLO; type <= PSMQ__MSG_TYPE__ERROR; type++)
        fprintf (out, "%s\"%s\":%" PRIu64, type > 1 ? "," : "", ps_codec_type_name (type),
                 self->stats.in[type]);
    fprintf (out, "},\"replies_out\":{");
    for (int type = PSMQ__MSG_TYPE__HELLO; type <= PSMQ__MSG_TYPE__ERROR; type++)
        fprintf (out, "%s\"%s\":%" PRIu64, type > 1 ? "," : "", ps_codec_type_name (type),
                 self->stats.out[type]);
    fprintf (out,
             "},\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"rejected\":%" PRIu64
             ",\"evicted\":%" PRIu64 ",\"parked_now\":%zu,\"parked_total\":%" PRIu64
             ",\"optimizer_steps\":%" PRIu64 ",\"pending_gradients\":%" PRIu64
             ",\"aggregator_queue\":%" PRIu64 ",\"nonfinite_pushes\":%" PRIu64
             ",\"incarnation\":\"%016" PRIx64 "\"",
             self->stats.bytes_in, self->stats.bytes_out, self->stats.rejected, self->stats.evicted,
             zlistx_size (self->parked), self->stats.parked, self->stats.steps, self->stats.pending,
             self->agg_sent - self->agg_done, self->stats.nonfinite, self->incarnation);
    s_info_more (self, out);
    fputc ('}', out);
    fclose (out);
    return json;
}

static void
s_pipe_receive (router_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else if (streq (command, "INFO")) {
        char *json = s_info_json (self);
        zstr_send (self->pipe, json ? json : "{}");
        free (json);
    }
    zstr_free (&command);
}

static void
s_log_summary (router_t *self)
{
    const stats_t *stats = &self->stats;
    ps_info ("served %.1f s: %" PRIu64 " hello, %" PRIu64 " init, %" PRIu64 " push, %" PRIu64
             " pull, %" PRIu64 " clock; %.1f MB in, %.1f MB out; %" PRIu64
             " optimizer steps, %" PRIu64 " rejected, %" PRIu64 " evicted",
             (zclock_mono () - self->started) / 1000.0, stats->in[PSMQ__MSG_TYPE__HELLO],
             stats->in[PSMQ__MSG_TYPE__INIT], stats->in[PSMQ__MSG_TYPE__PUSH],
             stats->in[PSMQ__MSG_TYPE__PULL], stats->in[PSMQ__MSG_TYPE__CLOCK],
             stats->bytes_in / 1e6, stats->bytes_out / 1e6, stats->steps, stats->rejected,
             stats->evicted);
}

//  Stop cleanly: parked requests get ERR_SHUTDOWN, and we read the
//  aggregator's answers to everything we sent so no reference leaks
static void
s_shutdown (router_t *self)
{
    parked_t *parked = zlistx_first (self->parked);
    while (parked) {
        ps_problem_t problem;
        ps_envelope_t *request =
            ps_codec_decode (self->parked_codec, zmq_msg_data (&parked->envelope),
                             zmq_msg_size (&parked->envelope), &problem);
        zmq_msg_t msg;
        if (ps_codec_encode_error (request, PSMQ__ERR_CODE__ERR_SHUTDOWN, "the broker is stopping",
                                   ps_vclock_min (self->vclock), &msg) == 0) {
            s_send_routing_id (self, parked->peer->id, parked->peer->id_size);
            zmq_msg_send (&msg, self->router_handle, 0);
        }
        parked = zlistx_next (self->parked);
    }
    zlistx_purge (self->parked);
    while (self->agg_done < self->agg_sent)
        s_agg_receive (self);
    s_log_summary (self);
}

//  Watch the ROUTER's TCP connections for the tap: libzmq's socket monitor
//  reports accepts and disconnects by file descriptor, so we note each
//  peer's address at accept time to name it when it goes
static void
s_monitor_setup (router_t *self)
{
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://psbroker-monitor-%p", (void *)self);
    if (zmq_socket_monitor (self->router_handle, endpoint,
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED))
        return;
    self->monitor = zsock_new (ZMQ_PAIR);
    self->connections = zhashx_new ();
    if (!self->monitor || !self->connections || zsock_connect (self->monitor, "%s", endpoint)) {
        zsock_destroy (&self->monitor);
        zhashx_destroy (&self->connections);
        zmq_socket_monitor (self->router_handle, NULL, 0);
        return;
    }
    zhashx_set_destructor (self->connections, (zhashx_destructor_fn *)zstr_free);
}

static void
s_monitor_receive (router_t *self)
{
    zframe_t *event = zframe_recv (self->monitor);
    zframe_t *address = event && zframe_more (event) ? zframe_recv (self->monitor) : NULL;
    if (event && zframe_size (event) >= 6) {
        uint16_t kind;
        int32_t fd;
        memcpy (&kind, zframe_data (event), sizeof kind);
        memcpy (&fd, zframe_data (event) + 2, sizeof fd);
        char key[16];
        snprintf (key, sizeof key, "%d", fd);
        if (kind == ZMQ_EVENT_ACCEPTED) {
            struct sockaddr_storage peer;
            socklen_t length = sizeof peer;
            char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
            if (getpeername (fd, (struct sockaddr *)&peer, &length) == 0)
                getnameinfo ((struct sockaddr *)&peer, length, host, sizeof host, port, sizeof port,
                             NI_NUMERICHOST | NI_NUMERICSERV);
            char *remote = zsys_sprintf ("%s:%s", host, port);
            if (self->tap_on)
                s_tap_event (self, PSMQ__TAP_KIND__TAP_CONNECT, -1, "tcp connection from %s",
                             remote);
            zhashx_update (self->connections, key, remote);
        }
        else if (kind == ZMQ_EVENT_DISCONNECTED) {
            const char *remote = zhashx_lookup (self->connections, key);
            if (self->tap_on)
                s_tap_event (self, PSMQ__TAP_KIND__TAP_DISCONNECT, -1,
                             "tcp connection from %s closed", remote ? remote : "?");
            zhashx_delete (self->connections, key);
        }
    }
    zframe_destroy (&event);
    zframe_destroy (&address);
}

static void
s_router_loop (router_t *self)
{
    zmq_pollitem_t items[] = {
        {zsock_resolve (self->pipe), 0, ZMQ_POLLIN, 0},
        {self->router_handle, 0, ZMQ_POLLIN, 0},
        {self->agg_handle, 0, ZMQ_POLLIN, 0},
        {self->tap ? ps_tap_handle (self->tap) : NULL, 0, ZMQ_POLLIN, 0},
        {self->monitor ? zsock_resolve (self->monitor) : NULL, 0, ZMQ_POLLIN, 0}};
    int nitems = self->monitor ? 5 : self->tap ? 4 : 3;
    uint32_t check_every = self->config.heartbeat_ms;
    self->next_check = zclock_mono () + check_every;
    while (!self->terminated) {
        int64_t wait = self->next_check - zclock_mono ();
        if (zmq_poll (items, nitems, wait > 0 ? wait : 0) == -1 && errno != EINTR)
            break;
        if (nitems >= 4 && (items[3].revents & ZMQ_POLLIN))
            self->tap_on = ps_tap_receive (self->tap);
        if (nitems == 5 && (items[4].revents & ZMQ_POLLIN))
            s_monitor_receive (self);
        if (items[0].revents & ZMQ_POLLIN)
            s_pipe_receive (self);
        //  Aggregator first: its DONEs release parked requests
        for (int burst = 0; burst < 1000 && (items[2].revents & ZMQ_POLLIN); burst++) {
            s_agg_receive (self);
            if (!(zsock_events (self->aggregator) & ZMQ_POLLIN))
                break;
        }
        for (int burst = 0; burst < 100 && (items[1].revents & ZMQ_POLLIN); burst++) {
            s_router_receive (self);
            if (!(zsock_events (self->router) & ZMQ_POLLIN))
                break;
        }
        if (zclock_mono () >= self->next_check) {
            s_evict_silent (self);
            self->next_check = zclock_mono () + check_every;
        }
    }
    s_shutdown (self);
}

static void
s_peer_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

//  The default tap endpoint: private to this user (a 0700 directory),
//  named after the broker's port, or its pid for non-TCP endpoints
static void
s_default_tap_endpoint (const char *bound, char *endpoint, size_t size)
{
    const char *runtime = getenv ("XDG_RUNTIME_DIR");
    char dir[200];
    struct stat info;
    if (runtime && *runtime && stat (runtime, &info) == 0 && S_ISDIR (info.st_mode))
        snprintf (dir, sizeof dir, "%s", runtime);
    else {
        snprintf (dir, sizeof dir, "/tmp/psmq-%u", (unsigned)getuid ());
        mkdir (dir, 0700);
    }
    const char *colon = strrchr (bound, ':');
    if (strncmp (bound, "tcp://", 6) == 0 && colon)
        snprintf (endpoint, size, "ipc://%s/psmq-tap-%s.ipc", dir, colon + 1);
    else
        snprintf (endpoint, size, "ipc://%s/psmq-tap-pid%d.ipc", dir, (int)getpid ());
}

static int
s_tap_setup (router_t *self, char *why, size_t why_size)
{
    char endpoint[300];
    if (self->config.tap_endpoint)
        snprintf (endpoint, sizeof endpoint, "%s", self->config.tap_endpoint);
    else
        s_default_tap_endpoint (self->bound, endpoint, sizeof endpoint);
    self->tap = ps_tap_new (endpoint, self->config.tap_payload, why, why_size);
    if (!self->tap)
        return -1;
    s_monitor_setup (self);
    return 0;
}

static int
s_router_setup (router_t *self, const char *endpoint, char *why, size_t why_size)
{
    self->router = zsock_new (ZMQ_ROUTER);
    if (!self->router) {
        snprintf (why, why_size, "cannot create the ROUTER socket");
        return -1;
    }
    zsock_set_maxmsgsize (self->router, PS_MAX_FRAME_BYTES);
    zsock_set_sndhwm (self->router, PS_SNDHWM);
    zsock_set_rcvhwm (self->router, PS_RCVHWM);
    zsock_set_linger (self->router, 200);
    //  Workers choose their routing ids; a worker that reconnects (after a
    //  network cut, or after dropping a stuck push) takes its own back
    zsock_set_router_handover (self->router, 1);
    //  libzmq's own bind, not czmq's: for a port of "*" czmq takes the
    //  lowest free port of its range, so a restarted broker would often get
    //  its predecessor's port and its old workers; libzmq lets the kernel
    //  choose an ephemeral one
    if (zmq_bind (zsock_resolve (self->router), endpoint) == -1) {
        snprintf (why, why_size, "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    char *last = zsock_last_endpoint (self->router);
    snprintf (self->bound, sizeof self->bound, "%s", last ? last : endpoint);
    zstr_free (&last);
    self->router_handle = zsock_resolve (self->router);

    ps_aggregator_config_t agg_config = {.defaults = self->config.optim,
                                         .staleness = self->config.staleness,
                                         .accept_nonfinite = self->config.accept_nonfinite};
    self->aggregator = zactor_new (ps_aggregator_actor, &agg_config);
    PS_HANDOFF_RECEIVE (&agg_config);
    self->agg_handle = zsock_resolve (self->aggregator);
    self->codec = ps_codec_new ();
    self->parked_codec = ps_codec_new ();
    self->vclock = ps_vclock_new (self->config.workers, self->config.staleness);
    self->peers = zhashx_new ();
    zhashx_set_destructor (self->peers, s_peer_free);
    self->rank_peer = calloc (self->config.workers, sizeof *self->rank_peer);
    self->seen = calloc (self->config.workers, sizeof *self->seen);
    self->rank_messages = calloc (self->config.workers, sizeof *self->rank_messages);
    self->parked = zlistx_new ();
    zlistx_set_destructor (self->parked, s_parked_free);
    self->published = zhashx_new ();
    zhashx_set_destructor (self->published, s_published_free);
    self->started = zclock_mono ();
    self->incarnation = s_random64 () | 1;
    if (!self->seen || !self->rank_messages) {
        snprintf (why, why_size, "out of memory starting the broker");
        return -1;
    }
    if (self->config.tap && s_tap_setup (self, why, why_size))
        return -1;
    if (!self->aggregator || !self->codec || !self->parked_codec || !self->vclock || !self->peers ||
        !self->rank_peer || !self->parked || !self->published) {
        snprintf (why, why_size, "out of memory starting the broker");
        return -1;
    }
    return 0;
}

static void
s_router_teardown (router_t *self)
{
    zactor_destroy (&self->aggregator);
    zhashx_destroy (&self->published);
    zlistx_destroy (&self->parked);
    zhashx_destroy (&self->peers);
    free (self->rank_peer);
    free (self->seen);
    free (self->rank_messages);
    for (uint32_t i = 0; self->group && i < s_shards (self->config.shards); i++)
        free (self->group[i]);
    free (self->group);
    free (self->tap_keys);
    free (self->tap_key_ptrs);
    if (self->monitor)
        zmq_socket_monitor (self->router_handle, NULL, 0);
    zsock_destroy (&self->monitor);
    zhashx_destroy (&self->connections);
    ps_tap_destroy (&self->tap);
    free (self->slice_pool);
    free (self->slice_ptrs);
    free (self->reply_frames);
    ps_vclock_destroy (&self->vclock);
    ps_codec_destroy (&self->codec);
    ps_codec_destroy (&self->parked_codec);
    zsock_destroy (&self->router);
}

static void
s_wait_for_term (zsock_t *pipe)
{
    while (true) {
        char *command = zstr_recv (pipe);
        bool term = !command || streq (command, "$TERM");
        zstr_free (&command);
        if (term)
            return;
    }
}

//  The ROUTER loop's actor: binds, reports "OK endpoint" or "ERR why" on
//  the pipe, serves until $TERM
static void
s_router_actor (zsock_t *pipe, void *args)
{
    router_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *(ps_broker_config_t *)args;
    self->pipe = pipe;
    const char *endpoint = self->config.endpoint;
    self->config.endpoint = NULL; //  borrowed from the caller: not kept
    char why[300];
    int rc = s_router_setup (self, endpoint, why, sizeof why);
    //  The caller's config and strings are not ours past this point
    self->config.tap_endpoint = NULL;
    PS_HANDOFF_SEND (args);
    zsock_signal (pipe, 0);
    if (rc == 0) {
        zstr_sendf (pipe, "OK %s %s", self->bound, self->tap ? ps_tap_endpoint (self->tap) : "-");
        s_router_loop (self);
    }
    else {
        zstr_sendf (pipe, "ERR %s", why);
        s_wait_for_term (pipe);
    }
    s_router_teardown (self);
    free (self);
}

// ------------------------------------------------------------ public API

void
ps_broker_config_defaults (ps_broker_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->endpoint = "tcp://*:5555";
    config->workers = 1;
    config->staleness = 0;
    ps_optim_config_defaults (&config->optim);
    config->heartbeat_ms = PS_DEFAULT_HEARTBEAT_MS;
    config->timeout_ms = PS_DEFAULT_TIMEOUT_MS;
    config->tap = true;
}

int
ps_broker_config_check (const ps_broker_config_t *config, char *why, size_t why_size)
{
    if (!config->endpoint || !*config->endpoint) {
        snprintf (why, why_size, "no endpoint to bind");
        return -1;
    }
    if (config->workers == 0 || config->workers > PS_MAX_WORKERS) {
        snprintf (why, why_size, "workers %u must be between 1 and %d", config->workers,
                  PS_MAX_WORKERS);
        return -1;
    }
    if (config->staleness < -1 || config->staleness > PS_MAX_STALENESS) {
        snprintf (why, why_size, "staleness %d must be -1 (ASP), 0 (BSP) or 1..%d (SSP)",
                  config->staleness, PS_MAX_STALENESS);
        return -1;
    }
    if (config->heartbeat_ms < PS_MIN_HEARTBEAT_MS || config->timeout_ms > PS_MAX_TIMEOUT_MS ||
        config->timeout_ms < 2 * config->heartbeat_ms) {
        snprintf (why, why_size,
                  "heartbeat %u ms and timeout %u ms: the heartbeat must be at least %d ms "
                  "and the timeout at least twice it (and at most %d ms)",
                  config->heartbeat_ms, config->timeout_ms, PS_MIN_HEARTBEAT_MS, PS_MAX_TIMEOUT_MS);
        return -1;
    }
    if (config->shards > PS_MAX_SHARDS || config->shard >= s_shards (config->shards)) {
        snprintf (why, why_size, "shard %u of %u: the group has 1..%d brokers, numbered from 0",
                  config->shard, s_shards (config->shards), PS_MAX_SHARDS);
        return -1;
    }
    return ps_optim_config_check (&config->optim, why, why_size);
}

ps_broker_t *
ps_broker_new (const ps_broker_config_t *config, char *why, size_t why_size)
{
    if (ps_broker_config_check (config, why, why_size))
        return NULL;
    ps_broker_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (why, why_size, "out of memory");
        return NULL;
    }
    self->actor = zactor_new (s_router_actor, (void *)config);
    PS_HANDOFF_RECEIVE (config);
    char *status = self->actor ? zstr_recv (self->actor) : NULL;
    if (!status || strncmp (status, "OK ", 3) != 0) {
        snprintf (why, why_size, "%s", status && strlen (status) > 4 ? status + 4 : "cannot start");
        zstr_free (&status);
        ps_broker_destroy (&self);
        return NULL;
    }
    char tap[256] = "";
    if (sscanf (status + 3, "%255s %255s", self->endpoint, tap) != 2)
        tap[0] = 0;
    snprintf (self->tap_endpoint, sizeof self->tap_endpoint, "%s", strcmp (tap, "-") ? tap : "");
    zstr_free (&status);
    return self;
}

void
ps_broker_destroy (ps_broker_t **self_p)
{
    assert (self_p);
    ps_broker_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

const char *
ps_broker_endpoint (ps_broker_t *self)
{
    assert (self);
    return self->endpoint;
}

int
ps_broker_port (ps_broker_t *self)
{
    assert (self);
    const char *colon = strrchr (self->endpoint, ':');
    if (strncmp (self->endpoint, "tcp://", 6) != 0 || !colon)
        return 0;
    return (int)strtol (colon + 1, NULL, 10);
}

const char *
ps_broker_tap_endpoint (ps_broker_t *self)
{
    assert (self);
    return self->tap_endpoint;
}

char *
ps_broker_info (ps_broker_t *self)
{
    assert (self);
    if (zstr_send (self->actor, "INFO"))
        return NULL;
    return zstr_recv (self->actor);
}
