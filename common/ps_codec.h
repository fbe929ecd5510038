/*  =========================================================================
    ps_codec - the one codec of the psmq envelope

    Encodes, decodes and validates the protobuf envelope (proto/ps.proto),
    checks the raw tensor frames that follow it, and names types and error
    codes. The broker, the worker library, the tools and the tests all use
    this module and no other code touches protobuf-c directly.

    A ps_codec_t is a decoder with its own arena: a decoded envelope lives
    in the arena until the next decode or ps_codec_destroy, so steady-state
    decoding does not allocate. One ps_codec_t belongs to one thread.

    Nothing here aborts on bad input: every check returns -1 (or NULL) with
    a PSMQ__ERR_CODE__* code and a message that names the bad value.
    ========================================================================= */

#ifndef PS_CODEC_H_INCLUDED
#define PS_CODEC_H_INCLUDED

#include "ps.pb-c.h"
#include "ps_limits.h"
#include "ps_problem.h"

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

typedef Psmq__Envelope ps_envelope_t;
typedef Psmq__Slice ps_slice_t;
typedef Psmq__TapRecord ps_tap_record_t;

//  Version of the tap's records (TapRecord.version)
#define PS_TAP_VERSION 1
//  Room for any tap topic, with its terminating NUL
#define PS_TAP_TOPIC_MAX 48

typedef struct ps_codec_t ps_codec_t;

ps_codec_t *ps_codec_new (void);
void ps_codec_destroy (ps_codec_t **self_p);

//  Decode and validate one envelope frame. Returns an envelope owned by the
//  codec (valid until the next decode), or NULL with problem filled in.
//  Checks: size limit, protobuf syntax, no NUL inside a string, protocol
//  version, message type, slice count, key names, element counts, dtype,
//  grad_count, text lengths. Any conforming proto3 encoding is accepted.
//  When the frame parsed but broke a rule, problem->parsed is set and
//  problem->seq, ->worker name the request, so its ERROR can say which.
ps_envelope_t *ps_codec_decode (ps_codec_t *self, const void *data, size_t size,
                                ps_problem_t *problem);

//  True when this envelope's slices with count > 0 each carry a frame
//  (PUSH, INIT, and PULL replies)
bool ps_codec_carries_data (const ps_envelope_t *envelope);
//  Number of tensor frames that must follow the envelope
size_t ps_codec_frames_expected (const ps_envelope_t *envelope);
//  Check nframes frames against the slices: their number and each size.
//  0, or -1 with problem filled in.
int ps_codec_check_frames (const ps_envelope_t *envelope, zmq_msg_t *frames, size_t nframes,
                           ps_problem_t *problem);

//  Encode envelope into msg (initialised here). 0, or -1 if out of memory.
int ps_codec_encode (const ps_envelope_t *envelope, zmq_msg_t *msg);

//  Fill reply as the reply to request (type, seq, worker copied); the
//  reply's other fields are left at their defaults
void ps_codec_reply_to (ps_envelope_t *reply, const ps_envelope_t *request);

//  Encode an ERROR reply to request (which may be NULL when the request
//  did not even parse: then seq 0) with the slowest live clock, as every
//  reply has. 0, or -1 if out of memory.
int ps_codec_encode_error (const ps_envelope_t *request, int code, const char *message,
                           int64_t min_clock, zmq_msg_t *msg);
//  Encode the HEARTBEAT of worker (its first rank) with the session its
//  HELLO reply gave. 0, or -1 if out of memory.
int ps_codec_encode_heartbeat (uint32_t worker, uint64_t session, zmq_msg_t *msg);

//  Names for logs and tools: "push", "malformed", "sgd", ...
const char *ps_codec_type_name (int type);
const char *ps_codec_error_name (int code);

//  Decode a tap record (same arena rules as ps_codec_decode): NULL with
//  problem filled in when it does not parse or has another version
ps_tap_record_t *ps_codec_decode_tap (ps_codec_t *self, const void *data, size_t size,
                                      ps_problem_t *problem);
//  Encode a tap record into msg (initialised here). 0, or -1 out of memory.
int ps_codec_encode_tap (const ps_tap_record_t *record, zmq_msg_t *msg);
//  The record's XPUB topic, "<kind>.<type>.<worker>.", e.g. "req.push.3."
//  (type "none" and worker "-" when they do not apply), into topic of
//  PS_TAP_TOPIC_MAX bytes; with payload, "payload." comes first.
//  Returns its length.
size_t ps_codec_tap_topic (int kind, int type, int64_t worker, bool payload, char *topic);
//  "req", "rep", "conn", "disc", "evict", "rej", "clock"; "unknown" else
const char *ps_codec_tap_kind_name (int kind);

//  Check a parameter name: 1..PS_MAX_KEY_LEN bytes of printable ASCII
//  without spaces. 0, or -1 with problem filled in.
int ps_codec_check_key (const char *key, ps_problem_t *problem);

#endif
