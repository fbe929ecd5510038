/*  =========================================================================
    ps_codec - encode, decode and validate the psmq envelope

    protobuf-c allocates the unpacked message through a ProtobufCAllocator;
    we give it a bump arena that is reset before each decode, so a decoder
    in steady state allocates nothing. The arena's first block grows to the
    largest envelope seen; overflow blocks are freed on the next reset.

    Any conforming proto3 encoding is accepted (fields in any order, zero
    values written out, unknown fields). Two things protobuf-c's unpack
    reads otherwise than proto3 are refused first (s_wire_check): C strings
    end at the first NUL, so a key "a\0b" would silently read as the key
    "a"; and a sub-message sent in pieces is not merged. (Comparing the
    re-encoded size, which we did before, also refused every encoder that
    is not byte-for-byte ours.)

    Validation here is what every message must satisfy whatever its type;
    the broker adds the checks that depend on its state (keys, clocks).
    ========================================================================= */

#include "ps_codec.h"
#include "ps_dtype.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_FIRST_BLOCK (64 * 1024)

typedef struct overflow_t {
    struct overflow_t *next; //  the next overflow block to free
} overflow_t;

struct ps_codec_t {
    ProtobufCAllocator allocator; //  hands protobuf-c our arena
    char *block;                  //  the reusable first block
    size_t block_size;            //  its size
    size_t used;                  //  bytes handed out of it
    overflow_t *overflow;         //  blocks beyond it, this decode only
    size_t overflow_bytes;        //  their total, to grow block next time
    ps_envelope_t *envelope;      //  the last decoded envelope
};

static void *
s_arena_alloc (void *data, size_t size)
{
    ps_codec_t *self = data;
    size = (size + 15) & ~(size_t)15;
    if (self->block && size <= self->block_size - self->used) {
        void *pointer = self->block + self->used;
        self->used += size;
        return pointer;
    }
    overflow_t *extra = malloc (sizeof (max_align_t) + size);
    if (!extra)
        return NULL;
    extra->next = self->overflow;
    self->overflow = extra;
    self->overflow_bytes += size;
    return (char *)extra + sizeof (max_align_t);
}

static void
s_arena_free (void *data, void *pointer)
{
    //  Everything goes at the next reset
}

static void
s_arena_reset (ps_codec_t *self)
{
    size_t wanted = self->used + self->overflow_bytes;
    while (self->overflow) {
        overflow_t *next = self->overflow->next;
        free (self->overflow);
        self->overflow = next;
    }
    self->overflow_bytes = 0;
    self->used = 0;
    self->envelope = NULL;
    if (wanted > self->block_size) {
        //  Grow so that an envelope of this size fits in one block next time
        char *grown = malloc (wanted);
        if (grown) {
            free (self->block);
            self->block = grown;
            self->block_size = wanted;
        }
    }
}

ps_codec_t *
ps_codec_new (void)
{
    ps_codec_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->block = malloc (ARENA_FIRST_BLOCK);
    if (!self->block) {
        free (self);
        return NULL;
    }
    self->block_size = ARENA_FIRST_BLOCK;
    self->allocator.alloc = s_arena_alloc;
    self->allocator.free = s_arena_free;
    self->allocator.allocator_data = self;
    return self;
}

void
ps_codec_destroy (ps_codec_t **self_p)
{
    assert (self_p);
    ps_codec_t *self = *self_p;
    if (!self)
        return;
    s_arena_reset (self);
    free (self->block);
    free (self);
    *self_p = NULL;
}

int
ps_codec_check_key (const char *key, ps_problem_t *problem)
{
    size_t length = strnlen (key, PS_MAX_KEY_LEN + 1);
    if (length == 0)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED, "empty key name");
    if (length > PS_MAX_KEY_LEN)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "key name longer than %d bytes", PS_MAX_KEY_LEN);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= ' ' || c >= 0x7f)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                                   "key name has byte 0x%02x at %zu: printable "
                                   "ASCII without spaces expected",
                                   c, i);
    }
    return 0;
}

static int
s_check_slices (const ps_envelope_t *envelope, ps_problem_t *problem)
{
    if (envelope->n_slices > PS_MAX_SLICES)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "%zu slices in one message, limit %d", envelope->n_slices,
                               PS_MAX_SLICES);
    uint64_t bytes = 0;
    for (size_t i = 0; i < envelope->n_slices; i++) {
        const ps_slice_t *slice = envelope->slices[i];
        if (ps_codec_check_key (slice->key, problem))
            return -1;
        if (!ps_dtype_known ((int)slice->dtype))
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                                   "key '%s': unsupported dtype %d", slice->key, (int)slice->dtype);
        if (slice->total > PS_MAX_TENSOR_ELEMS)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                                   "key '%s': total %llu exceeds %llu elements", slice->key,
                                   (unsigned long long)slice->total,
                                   (unsigned long long)PS_MAX_TENSOR_ELEMS);
        if (slice->count > PS_MAX_TENSOR_ELEMS ||
            slice->offset > PS_MAX_TENSOR_ELEMS - slice->count)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                                   "key '%s': offset %llu + count %llu exceeds %llu "
                                   "elements",
                                   slice->key, (unsigned long long)slice->offset,
                                   (unsigned long long)slice->count,
                                   (unsigned long long)PS_MAX_TENSOR_ELEMS);
        bytes += slice->count * ps_dtype_size ((int)slice->dtype);
    }
    if (ps_codec_carries_data (envelope) && bytes > (uint64_t)PS_MAX_MESSAGE_BYTES)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "message carries %llu tensor bytes, limit %lld",
                               (unsigned long long)bytes, PS_MAX_MESSAGE_BYTES);
    return 0;
}

//  The group a HELLO names: its endpoints end up in INFO's JSON and in
//  logs, so they must be short printable text that needs no escaping
static int
s_check_group (const Psmq__Hello *hello, ps_problem_t *problem)
{
    if (hello->shards > PS_MAX_SHARDS || hello->n_group > PS_MAX_SHARDS)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "a group of %u brokers (%zu endpoints), limit %d", hello->shards,
                               hello->n_group, PS_MAX_SHARDS);
    for (size_t i = 0; i < hello->n_group; i++) {
        const char *endpoint = hello->group[i];
        size_t length = strlen (endpoint);
        if (length == 0 || length > PS_MAX_ENDPOINT_LEN)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                                   "group endpoint %zu has %zu bytes, expected 1..%d", i, length,
                                   PS_MAX_ENDPOINT_LEN);
        for (size_t c = 0; c < length; c++)
            if (endpoint[c] <= ' ' || endpoint[c] > '~' || endpoint[c] == '"' ||
                endpoint[c] == '\\' || endpoint[c] == ',')
                return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                                       "group endpoint %zu has byte 0x%02x at %zu", i,
                                       (unsigned char)endpoint[c], c);
    }
    return 0;
}

//  Read a varint at *at; false when the bytes end first
static bool
s_varint (const uint8_t **at, const uint8_t *end, uint64_t *value)
{
    *value = 0;
    for (unsigned shift = 0; *at < end && shift < 64; shift += 7) {
        uint8_t byte = *(*at)++;
        *value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return true;
    }
    return false;
}

//  Check what protobuf-c's unpack accepts but reads differently from the
//  proto3 rules, walking the wire bytes with the generated descriptors:
//  a string field holding a NUL byte (C would read a shorter string), and
//  a non-repeated message field sent in several pieces (proto3 merges them,
//  protobuf-c keeps the last piece alone; no encoder writes that, only a
//  concatenation of messages does). NULL when clean, else why. The bytes
//  parsed already, so anything the walk does not follow is well-formed and
//  carries no field we read. depth bounds the recursion (ps.proto nests
//  two levels).
static const char *
s_wire_check (const ProtobufCMessageDescriptor *descriptor, const uint8_t *at, const uint8_t *end,
              int depth)
{
    uint64_t pieces = 0; //  bit i: field index i came as a message already
    while (at < end) {
        uint64_t tag, length;
        if (!s_varint (&at, end, &tag))
            return NULL;
        switch (tag & 7) {
        case 0:
            if (!s_varint (&at, end, &length))
                return NULL;
            continue;
        case 1:
        case 5: {
            //  Fixed 64 or 32 bits; unpack checked they are there
            size_t width = (tag & 7) == 1 ? 8 : 4;
            if ((size_t)(end - at) < width)
                return NULL;
            at += width;
            continue;
        }
        case 2: break;
        default: return NULL;
        }
        if (!s_varint (&at, end, &length) || length > (uint64_t)(end - at))
            return NULL;
        const ProtobufCFieldDescriptor *field =
            tag >> 3 <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field (descriptor, (unsigned)(tag >> 3))
                : NULL;
        if (field && field->type == PROTOBUF_C_TYPE_STRING && memchr (at, 0, length))
            return "a string with a NUL byte inside (a key must be printable ASCII)";
        if (field && field->type == PROTOBUF_C_TYPE_MESSAGE) {
            size_t index = (size_t)(field - descriptor->fields);
            if (field->label != PROTOBUF_C_LABEL_REPEATED && index < 64) {
                if (pieces >> index & 1)
                    return "a message field sent in several pieces (write each once)";
                pieces |= 1ULL << index;
            }
            const char *why =
                depth > 0 ? s_wire_check (field->descriptor, at, at + length, depth - 1) : NULL;
            if (why)
                return why;
        }
        at += length;
    }
    return NULL;
}

static int
s_check_envelope (const ps_envelope_t *envelope, ps_problem_t *problem)
{
    if (envelope->version != PS_PROTOCOL_VERSION)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_VERSION,
                               "protocol version %u, this broker speaks %d", envelope->version,
                               PS_PROTOCOL_VERSION);
    if (envelope->type <= PSMQ__MSG_TYPE__MSG_NONE || envelope->type > PSMQ__MSG_TYPE__ERROR)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TYPE, "unknown message type %d",
                               (int)envelope->type);
    if (envelope->grad_count > PS_MAX_GRAD_COUNT)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE, "grad_count %u, limit %d",
                               envelope->grad_count, PS_MAX_GRAD_COUNT);
    if (envelope->error && strlen (envelope->error->message) >= PS_MAX_ERROR_LEN)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "error text longer than %d bytes", PS_MAX_ERROR_LEN);
    if (envelope->hello && envelope->hello->n_clocks > PS_MAX_WORKERS)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE, "%zu clocks, limit %d",
                               envelope->hello->n_clocks, PS_MAX_WORKERS);
    if (envelope->hello && envelope->hello->n_checkpoints > PS_MAX_HELD_CHECKPOINTS)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "%zu checkpoint clocks, limit %d", envelope->hello->n_checkpoints,
                               PS_MAX_HELD_CHECKPOINTS);
    if (envelope->hello && s_check_group (envelope->hello, problem))
        return -1;
    return s_check_slices (envelope, problem);
}

ps_envelope_t *
ps_codec_decode (ps_codec_t *self, const void *data, size_t size, ps_problem_t *problem)
{
    assert (self);
    s_arena_reset (self);
    if (size > PS_MAX_ENVELOPE_BYTES) {
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE, "envelope of %zu bytes, limit %d",
                        size, PS_MAX_ENVELOPE_BYTES);
        return NULL;
    }
    if (problem)
        problem->parsed = false;
    ps_envelope_t *envelope = psmq__envelope__unpack (&self->allocator, size, data);
    if (!envelope) {
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                        "envelope of %zu bytes is not a valid protobuf Envelope", size);
        return NULL;
    }
    if (problem) {
        problem->parsed = true;
        problem->seq = envelope->seq;
        problem->worker = envelope->worker;
    }
    const char *why =
        s_wire_check (&psmq__envelope__descriptor, data, (const uint8_t *)data + size, 4);
    if (why) {
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED, "envelope has %s", why);
        return NULL;
    }
    if (s_check_envelope (envelope, problem))
        return NULL;
    self->envelope = envelope;
    return envelope;
}

bool
ps_codec_carries_data (const ps_envelope_t *envelope)
{
    switch (envelope->type) {
    case PSMQ__MSG_TYPE__PUSH:
    case PSMQ__MSG_TYPE__INIT: return !envelope->reply;
    case PSMQ__MSG_TYPE__PULL: return envelope->reply;
    default: return false;
    }
}

size_t
ps_codec_frames_expected (const ps_envelope_t *envelope)
{
    if (!ps_codec_carries_data (envelope))
        return 0;
    size_t frames = 0;
    for (size_t i = 0; i < envelope->n_slices; i++)
        if (envelope->slices[i]->count > 0)
            frames++;
    return frames;
}

int
ps_codec_check_frames (const ps_envelope_t *envelope, zmq_msg_t *frames, size_t nframes,
                       ps_problem_t *problem)
{
    size_t expected = ps_codec_frames_expected (envelope);
    if (nframes != expected)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "%s carries %zu tensor frames, its slices announce %zu",
                               ps_codec_type_name (envelope->type), nframes, expected);
    size_t frame = 0;
    for (size_t i = 0; i < envelope->n_slices && frame < nframes; i++) {
        const ps_slice_t *slice = envelope->slices[i];
        if (slice->count == 0)
            continue;
        size_t size = zmq_msg_size (&frames[frame++]);
        size_t element = ps_dtype_size ((int)slice->dtype);
        if (size != slice->count * element)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "key '%s': frame of %zu bytes for %llu %s elements "
                                   "(%llu bytes expected)",
                                   slice->key, size, (unsigned long long)slice->count,
                                   ps_dtype_name ((int)slice->dtype),
                                   (unsigned long long)slice->count * element);
    }
    return 0;
}

int
ps_codec_encode (const ps_envelope_t *envelope, zmq_msg_t *msg)
{
    size_t size = psmq__envelope__get_packed_size (envelope);
    if (zmq_msg_init_size (msg, size))
        return -1;
    psmq__envelope__pack (envelope, zmq_msg_data (msg));
    return 0;
}

void
ps_codec_reply_to (ps_envelope_t *reply, const ps_envelope_t *request)
{
    psmq__envelope__init (reply);
    reply->version = PS_PROTOCOL_VERSION;
    reply->reply = true;
    if (request) {
        reply->type = request->type;
        reply->seq = request->seq;
        reply->worker = request->worker;
    }
}

int
ps_codec_encode_error (const ps_envelope_t *request, int code, const char *message,
                       int64_t min_clock, zmq_msg_t *msg)
{
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.type = PSMQ__MSG_TYPE__ERROR;
    reply.min_clock = min_clock;
    Psmq__Error error = PSMQ__ERROR__INIT;
    error.code = code;
    error.message = (char *)message;
    reply.error = &error;
    return ps_codec_encode (&reply, msg);
}

int
ps_codec_encode_heartbeat (uint32_t worker, uint64_t session, zmq_msg_t *msg)
{
    ps_envelope_t beat = PSMQ__ENVELOPE__INIT;
    beat.version = PS_PROTOCOL_VERSION;
    beat.type = PSMQ__MSG_TYPE__HEARTBEAT;
    beat.worker = worker;
    beat.session = session;
    return ps_codec_encode (&beat, msg);
}

const char *
ps_codec_type_name (int type)
{
    static const char *names[] = {"none",  "hello",     "init", "push", "pull",
                                  "clock", "heartbeat", "bye",  "info", "error"};
    if (type < 0 || type >= (int)(sizeof names / sizeof names[0]))
        return "unknown";
    return names[type];
}

const char *
ps_codec_error_name (int code)
{
    static const char *names[] = {"none",           "malformed", "version",    "type",
                                  "unknown-key",    "size",      "too-large",  "clock",
                                  "not-registered", "rank",      "key-exists", "optim",
                                  "full",           "shutdown",  "group",      "non-finite"};
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
        return "unknown";
    return names[code];
}

ps_tap_record_t *
ps_codec_decode_tap (ps_codec_t *self, const void *data, size_t size, ps_problem_t *problem)
{
    assert (self);
    s_arena_reset (self);
    if (size > PS_MAX_ENVELOPE_BYTES) {
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE, "tap record of %zu bytes, limit %d",
                        size, PS_MAX_ENVELOPE_BYTES);
        return NULL;
    }
    ps_tap_record_t *record = psmq__tap_record__unpack (&self->allocator, size, data);
    if (!record) {
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                        "tap record of %zu bytes does not parse", size);
        return NULL;
    }
    if (record->version != PS_TAP_VERSION) {
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_VERSION,
                        "tap record version %u, this reader knows %d", record->version,
                        PS_TAP_VERSION);
        return NULL;
    }
    return record;
}

int
ps_codec_encode_tap (const ps_tap_record_t *record, zmq_msg_t *msg)
{
    size_t size = psmq__tap_record__get_packed_size (record);
    if (zmq_msg_init_size (msg, size))
        return -1;
    psmq__tap_record__pack (record, zmq_msg_data (msg));
    return 0;
}

const char *
ps_codec_tap_kind_name (int kind)
{
    static const char *names[] = {"none", "req", "rep", "conn", "disc", "evict", "rej", "clock"};
    if (kind < 0 || kind >= (int)(sizeof names / sizeof names[0]))
        return "unknown";
    return names[kind];
}

size_t
ps_codec_tap_topic (int kind, int type, int64_t worker, bool payload, char *topic)
{
    char rank[24] = "-";
    if (worker >= 0)
        snprintf (rank, sizeof rank, "%lld", (long long)worker);
    int length = snprintf (topic, PS_TAP_TOPIC_MAX, "%s%s.%s.%s.", payload ? "payload." : "",
                           ps_codec_tap_kind_name (kind), ps_codec_type_name (type), rank);
    return length < PS_TAP_TOPIC_MAX ? (size_t)length : PS_TAP_TOPIC_MAX - 1;
}
