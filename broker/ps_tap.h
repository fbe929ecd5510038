/*  =========================================================================
    ps_tap - the broker's tap: one record per event on an XPUB socket, free
    when nobody listens

    The ROUTER loop owns it and is the only thread that may call it. It
    binds an XPUB socket and counts subscriptions as they come and go
    (XPUB_VERBOSER passes every subscribe and unsubscribe, also when a
    reader disconnects); the loop keeps ps_tap_active's answer in a bool
    and tests it once per message, so an idle tap costs one branch.
    Records go out with ZMQ_DONTWAIT on a NODROP socket: when a reader is
    too slow the send fails, the record is counted as dropped, and every
    later record carries the running count so readers know what they lost.

    Each message is [topic][TapRecord], topic from ps_codec_tap_topic, so
    subscribers filter on kind, type and worker at the broker. With
    payload enabled, records that carry tensors are also published on the
    "payload." topic with the tensor frames after the record: references
    to the same buffers, never copies.
    ========================================================================= */

#ifndef PS_TAP_H_INCLUDED
#define PS_TAP_H_INCLUDED

#include "ps_codec.h"

typedef struct ps_auth_t ps_auth_t;

#include <stdbool.h>
#include <stdint.h>

typedef struct ps_tap_t ps_tap_t;

//  Bind the tap at endpoint. payload: mirror tensor frames to "payload."
//  subscribers. auth (may be NULL: none) secures the socket as the
//  broker's (CURVE keys, or loopback only; see ps_auth.h). NULL with
//  problem filled in when it cannot bind.
ps_tap_t *ps_tap_new (const char *endpoint, bool payload, ps_auth_t *auth, ps_problem_t *problem);
void ps_tap_destroy (ps_tap_t **self_p);

//  The endpoint bound (the port filled in for tcp://...:*)
const char *ps_tap_endpoint (const ps_tap_t *self);
//  The XPUB socket, to poll for subscriptions; then call ps_tap_receive
void *ps_tap_handle (ps_tap_t *self);
//  Read the pending (un)subscriptions; returns ps_tap_active
bool ps_tap_receive (ps_tap_t *self);
//  Anybody subscribed to anything
bool ps_tap_active (const ps_tap_t *self);
//  Somebody asked for tensor frames (and the broker allows it)
bool ps_tap_payload_wanted (const ps_tap_t *self);

//  Publish record: the tap fills version, record number, dropped count
//  and time. frames (may be NULL) are the tensor frames to mirror, left
//  untouched: the tap sends zero-copy duplicates of them.
void ps_tap_publish (ps_tap_t *self, ps_tap_record_t *record, zmq_msg_t *frames, size_t nframes);

//  What every record says of the broker when it is built
typedef struct {
    int64_t min_clock; //  the slowest clock, -1 when nobody counts
    int64_t slowest;   //  the rank holding it, -1 when none
    uint32_t shard;    //  the broker's place in its group
    uint32_t shards;   //  brokers in its group (0 or 1: no group)
} ps_tap_scene_t;

//  The broker's time with a request, for the record of its reply
typedef struct {
    int64_t received_us;    //  when it was read (zclock_usecs), 0: unknown
    int64_t parked_us;      //  parked on the staleness bound
    int64_t aggregation_us; //  waiting for the aggregation thread
} ps_tap_timing_t;

//  Records of messages and events, built and published in one call. worker
//  is the rank the connection registered as (-1 when none), id its routing
//  id (for the record's peer field), frames are mirrored as by
//  ps_tap_publish. A request or its reply (kind TAP_REQUEST, TAP_REPLY;
//  timing only for replies, may be NULL):
void ps_tap_message (ps_tap_t *self, const ps_tap_scene_t *scene, int kind, int64_t worker,
                     const uint8_t *id, size_t id_size, const ps_envelope_t *envelope,
                     zmq_msg_t *frames, size_t nframes, const ps_tap_timing_t *timing);
//  Input refused (request NULL when it did not parse)
void ps_tap_reject (ps_tap_t *self, const ps_tap_scene_t *scene, int64_t worker, const uint8_t *id,
                    size_t id_size, const ps_envelope_t *request, const ps_problem_t *problem);
//  A connection, an eviction, a clock movement: kind, the worker's clock
//  (when worker >= 0) and the reason, printf-style
void ps_tap_event (ps_tap_t *self, const ps_tap_scene_t *scene, int kind, int64_t worker,
                   int64_t clock, const char *format, ...) __attribute__ ((format (printf, 6, 7)));

//  Under authentication (ps_tap_new's auth, keys or protected mode) the
//  tap watches its readers' handshakes: the socket to poll (POLLIN) for
//  them, NULL when it does not; ps_tap_watch then counts and logs the
//  refused ones with the broker's (ps_auth_handshake_failed,
//  ps_auth_closed)
void *ps_tap_watched (ps_tap_t *self);
void ps_tap_watch (ps_tap_t *self, ps_auth_t *auth);

uint32_t ps_tap_subscriptions (const ps_tap_t *self);
uint64_t ps_tap_records (const ps_tap_t *self);
uint64_t ps_tap_dropped (const ps_tap_t *self);

#endif
