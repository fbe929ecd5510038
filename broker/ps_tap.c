/*  =========================================================================
    ps_tap - the broker's tap

    Subscriptions are counted, not stored: XPUB already filters by prefix,
    we only need to know whether to build records at all, and whether any
    reader wants payload topics. A record is encoded once and sent on its
    topic; when payload mirroring is on and wanted, a second message goes
    on the "payload." topic with zero-copy duplicates of the tensor frames
    (zmq_msg_copy shares the buffer of a large frame).
    ========================================================================= */

#include "ps_tap.h"
#include "ps_monitor.h"
#include "ps_auth.h"
#include "ps_log.h"

#include <assert.h>
#include <czmq.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

struct ps_tap_t {
    zsock_t *xpub;                  //  the readers' socket
    void *handle;                   //  its raw handle
    char endpoint[256];             //  what we bound
    bool payload;                   //  mirroring allowed (--tap-payload)
    uint32_t subscriptions;         //  live subscriptions, all topics
    uint32_t payload_subscriptions; //  those on "payload." topics
    uint64_t records;               //  records built, sent or dropped
    uint64_t dropped;               //  records a slow reader could not take
    Psmq__TapKey *keys;             //  a record's keys, reused
    Psmq__TapKey **key_ptrs;        //  pointers to them
    size_t key_capacity;            //  allocated
    zsock_t *monitor;               //  the readers' handshakes, or NULL
    zhashx_t *readers;              //  fd -> a reader's address, while watched
};

//  Watch the readers' connections (before the bind): their addresses at
//  accept, and the handshakes refused, to count and log as the worker
//  port's are. Not a failure when it cannot: refusals go uncounted
static void
s_watch (ps_tap_t *self)
{
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://psbroker-tap-monitor-%p", (void *)self);
    if (zmq_socket_monitor (zsock_resolve (self->xpub), endpoint,
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL))
        return;
    self->monitor = zsock_new (ZMQ_PAIR);
    self->readers = zhashx_new ();
    if (!self->monitor || !self->readers || zsock_connect (self->monitor, "%s", endpoint)) {
        zsock_destroy (&self->monitor);
        zhashx_destroy (&self->readers);
        zmq_socket_monitor (zsock_resolve (self->xpub), NULL, 0);
        return;
    }
    zhashx_set_destructor (self->readers, (zhashx_destructor_fn *)zstr_free);
}

void *
ps_tap_watched (ps_tap_t *self)
{
    return self->monitor ? zsock_resolve (self->monitor) : NULL;
}

void
ps_tap_watch (ps_tap_t *self, ps_auth_t *auth)
{
    while (self->monitor && (zsock_events (self->monitor) & ZMQ_POLLIN)) {
        uint16_t kind;
        int32_t value;
        if (ps_monitor_read (self->monitor, &kind, &value))
            continue;
        char key[16];
        snprintf (key, sizeof key, "%d", value);
        if (kind == ZMQ_EVENT_ACCEPTED)
            zhashx_update (self->readers, key, ps_monitor_peer (value, " (a tap reader)"));
        else if (kind == ZMQ_EVENT_DISCONNECTED) {
            ps_auth_closed (auth, zhashx_lookup (self->readers, key));
            zhashx_delete (self->readers, key);
        }
        else
            ps_auth_handshake_failed (auth, kind, (uint32_t)value);
    }
}

ps_tap_t *
ps_tap_new (const char *endpoint, bool payload, ps_auth_t *auth, ps_problem_t *problem)
{
    ps_tap_t *self = calloc (1, sizeof *self);
    if (!self) {
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    self->payload = payload;
    self->xpub = zsock_new (ZMQ_XPUB);
    if (!self->xpub) {
        ps_problem_set (problem, 0, "cannot create the tap socket");
        free (self);
        return NULL;
    }
    zsock_set_xpub_verboser (self->xpub, 1);
    zsock_set_xpub_nodrop (self->xpub, 1);
    zsock_set_sndhwm (self->xpub, 10000);
    zsock_set_linger (self->xpub, 0);
    if (auth) {
        ps_auth_apply (auth, self->xpub, endpoint);
        if (strcmp (ps_auth_mode (auth), "open") != 0)
            s_watch (self);
    }
    if (zsock_bind (self->xpub, "%s", endpoint) == -1) {
        ps_problem_set (problem, 0, "cannot bind the tap at %s: %s", endpoint,
                        zmq_strerror (zmq_errno ()));
        zsock_destroy (&self->xpub);
        free (self);
        return NULL;
    }
    char *last = zsock_last_endpoint (self->xpub);
    snprintf (self->endpoint, sizeof self->endpoint, "%s", last ? last : endpoint);
    zstr_free (&last);
    self->handle = zsock_resolve (self->xpub);
    return self;
}

void
ps_tap_destroy (ps_tap_t **self_p)
{
    assert (self_p);
    ps_tap_t *self = *self_p;
    if (!self)
        return;
    if (self->monitor)
        zmq_socket_monitor (zsock_resolve (self->xpub), NULL, 0);
    zsock_destroy (&self->monitor);
    zhashx_destroy (&self->readers);
    zsock_destroy (&self->xpub);
    //  An ipc:// tap leaves its file behind otherwise
    if (strncmp (self->endpoint, "ipc://", 6) == 0)
        unlink (self->endpoint + 6);
    free (self->keys);
    free (self->key_ptrs);
    free (self);
    *self_p = NULL;
}

const char *
ps_tap_endpoint (const ps_tap_t *self)
{
    return self->endpoint;
}

void *
ps_tap_handle (ps_tap_t *self)
{
    return self->handle;
}

bool
ps_tap_receive (ps_tap_t *self)
{
    uint8_t message[PS_TAP_TOPIC_MAX + 1];
    int size;
    while ((size = zmq_recv (self->handle, message, sizeof message, ZMQ_DONTWAIT)) > 0) {
        bool subscribe = message[0] == 1;
        if (message[0] > 1)
            continue; //  not a subscription message
        bool payload = size > 8 && memcmp (message + 1, "payload.", 8) == 0;
        if (subscribe) {
            self->subscriptions++;
            self->payload_subscriptions += payload;
        }
        else {
            if (self->subscriptions)
                self->subscriptions--;
            if (payload && self->payload_subscriptions)
                self->payload_subscriptions--;
        }
    }
    return ps_tap_active (self);
}

bool
ps_tap_active (const ps_tap_t *self)
{
    return self->subscriptions > 0;
}

bool
ps_tap_payload_wanted (const ps_tap_t *self)
{
    return self->payload && self->payload_subscriptions > 0;
}

static uint64_t
s_now_us (void)
{
    struct timeval now;
    gettimeofday (&now, NULL);
    return (uint64_t)now.tv_sec * 1000000 + now.tv_usec;
}

//  Send [topic][record][frames...]; false when the reader is too slow
static bool
s_send (ps_tap_t *self, const char *topic, zmq_msg_t *record, zmq_msg_t *frames, size_t nframes)
{
    int more = ZMQ_DONTWAIT | ZMQ_SNDMORE;
    if (zmq_send (self->handle, topic, strlen (topic), more) == -1)
        return false;
    //  Once the first frame is queued the rest of the message follows
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, record);
    zmq_msg_send (&copy, self->handle, nframes ? more : ZMQ_DONTWAIT);
    for (size_t i = 0; i < nframes; i++) {
        zmq_msg_init (&copy);
        zmq_msg_copy (&copy, &frames[i]);
        zmq_msg_send (&copy, self->handle, i + 1 < nframes ? more : ZMQ_DONTWAIT);
    }
    return true;
}

void
ps_tap_publish (ps_tap_t *self, ps_tap_record_t *record, zmq_msg_t *frames, size_t nframes)
{
    self->records++;
    record->version = PS_TAP_VERSION;
    record->record = self->records;
    record->dropped = self->dropped;
    record->time_us = s_now_us ();
    zmq_msg_t encoded;
    if (ps_codec_encode_tap (record, &encoded)) {
        self->dropped++;
        return;
    }
    char topic[PS_TAP_TOPIC_MAX];
    ps_codec_tap_topic (record->kind, record->type, record->worker, false, topic);
    if (!s_send (self, topic, &encoded, NULL, 0))
        self->dropped++;
    if (nframes && ps_tap_payload_wanted (self)) {
        ps_codec_tap_topic (record->kind, record->type, record->worker, true, topic);
        if (!s_send (self, topic, &encoded, frames, nframes))
            self->dropped++;
    }
    zmq_msg_close (&encoded);
}

uint32_t
ps_tap_subscriptions (const ps_tap_t *self)
{
    return self->subscriptions;
}

uint64_t
ps_tap_records (const ps_tap_t *self)
{
    return self->records;
}

uint64_t
ps_tap_dropped (const ps_tap_t *self)
{
    return self->dropped;
}

//  The record's keys: one per key, slices of the same key merged
static void
s_record_keys (ps_tap_t *self, ps_tap_record_t *record, const ps_envelope_t *envelope)
{
    if (envelope->n_slices > self->key_capacity) {
        Psmq__TapKey *keys = realloc (self->keys, envelope->n_slices * sizeof *keys);
        Psmq__TapKey **ptrs =
            keys ? realloc (self->key_ptrs, envelope->n_slices * sizeof *ptrs) : NULL;
        if (keys)
            self->keys = keys;
        if (!keys || !ptrs)
            return; //  a record without keys beats no record
        self->key_ptrs = ptrs;
        self->key_capacity = envelope->n_slices;
    }
    size_t used = 0;
    for (size_t i = 0; i < envelope->n_slices; i++) {
        const ps_slice_t *slice = envelope->slices[i];
        if (used && strcmp (self->keys[used - 1].key, slice->key) == 0) {
            self->keys[used - 1].count += slice->count;
            continue;
        }
        psmq__tap_key__init (&self->keys[used]);
        self->keys[used].key = slice->key;
        self->keys[used].count = slice->count;
        self->keys[used].dtype = slice->dtype;
        self->key_ptrs[used] = &self->keys[used];
        used++;
    }
    record->keys = self->key_ptrs;
    record->n_keys = used;
}

//  peer holds the first 8 bytes of the routing id in hex
static void
s_record_init (ps_tap_record_t *record, const ps_tap_scene_t *scene, int kind, int64_t worker,
               char peer[17], const uint8_t *id, size_t id_size)
{
    psmq__tap_record__init (record);
    record->kind = kind;
    record->worker = worker;
    record->min_clock = scene->min_clock;
    record->slowest = scene->slowest;
    if (scene->shards > 1) {
        record->shard = scene->shard;
        record->shards = scene->shards;
    }
    if (id) {
        static const char digits[] = "0123456789abcdef";
        size_t size = id_size < 8 ? id_size : 8;
        for (size_t i = 0; i < size; i++) {
            peer[2 * i] = digits[id[i] >> 4];
            peer[2 * i + 1] = digits[id[i] & 15];
        }
        peer[2 * size] = 0;
        record->peer = peer;
    }
}

//  A push that finishes the worker's clock: clock_after counts on a
//  PUSH's last part (PROTOCOL.md) and on the reply that answers it
static bool
s_finishes_clock (const ps_envelope_t *envelope)
{
    return envelope->type == PSMQ__MSG_TYPE__PUSH && envelope->clock_after && !envelope->more;
}

void
ps_tap_message (ps_tap_t *self, const ps_tap_scene_t *scene, int kind, int64_t worker,
                const uint8_t *id, size_t id_size, const ps_envelope_t *envelope, zmq_msg_t *frames,
                size_t nframes, const ps_tap_timing_t *timing)
{
    ps_tap_record_t record;
    char peer[17];
    s_record_init (&record, scene, kind, worker, peer, id, id_size);
    record.type = envelope->type;
    record.seq = envelope->seq;
    record.clock = envelope->clock;
    record.clock_after = s_finishes_clock (envelope);
    s_record_keys (self, &record, envelope);
    for (size_t i = 0; i < nframes; i++)
        record.bytes += zmq_msg_size (&frames[i]);
    if (timing && timing->received_us) {
        int64_t total = zclock_usecs () - timing->received_us;
        record.total_us = total;
        record.parked_us = timing->parked_us;
        record.aggregation_us = timing->aggregation_us;
        int64_t queued = total - timing->parked_us - timing->aggregation_us;
        record.queued_us = queued > 0 ? queued : 0;
    }
    ps_tap_publish (self, &record, frames, nframes);
}

void
ps_tap_reject (ps_tap_t *self, const ps_tap_scene_t *scene, int64_t worker, const uint8_t *id,
               size_t id_size, const ps_envelope_t *request, const ps_problem_t *problem)
{
    ps_tap_record_t record;
    char peer[17];
    s_record_init (&record, scene, PSMQ__TAP_KIND__TAP_REJECT, worker, peer, id, id_size);
    if (request) {
        record.type = request->type;
        record.seq = request->seq;
        record.clock = request->clock;
        record.clock_after = s_finishes_clock (request);
        s_record_keys (self, &record, request);
    }
    record.status = problem->code;
    record.reason = (char *)problem->message;
    ps_tap_publish (self, &record, NULL, 0);
}

void
ps_tap_event (ps_tap_t *self, const ps_tap_scene_t *scene, int kind, int64_t worker, int64_t clock,
              const char *format, ...)
{
    ps_tap_record_t record;
    char peer[17];
    s_record_init (&record, scene, kind, worker, peer, NULL, 0);
    char reason[PS_MAX_ERROR_LEN];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    record.reason = reason;
    if (worker >= 0)
        record.clock = clock;
    ps_tap_publish (self, &record, NULL, 0);
}
