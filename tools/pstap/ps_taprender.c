/*  =========================================================================
    ps_taprender - how a tap record looks to people and to scripts

    JSON is for scripts, so its schema never depends on the record: the
    same keys in the same order for every kind, with null where a field
    does not apply (worker -1, no message type, timing outside replies);
    nulls follow what the broker fills in (broker/ps_broker.c, s_tap_*).
    A consumer can then read records with a fixed set of columns. jansson
    builds the object (keys keep their order) and escapes its strings; a
    reason can hold anything the network sent, so bytes that are not
    UTF-8 become U+FFFD first, since jansson takes valid UTF-8 only.

    The text line is for people: fixed-width kind and type columns, human
    units, and control bytes shown as \xNN so one record stays one line.
    It is written by hand, through one small writer (s_out_t) that keeps
    snprintf's contract: it counts every byte it would write, copies only
    what fits, and NUL-terminates at the end. So a caller sizes a buffer
    with one call, and a line costs no allocation.

    Records of a broker group carry their broker's place (shard, shards):
    the text line names it ("b1/3") and JSON adds two fields, both only
    when shards > 1, so that a broker alone looks exactly as it did before
    groups. Rejected: emitting shard fields for every record (the JSON of
    a broker alone would change for no information).
    ========================================================================= */

#include "ps_taprender.h"
#include "ps_dtype.h"

#include <assert.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Keys a text line names before it says "+N keys"
#define S_TEXT_KEYS 3

//  ---------------------------------------------------------------------
//  Output with snprintf semantics

typedef struct {
    char *buffer;  //  the caller's, may be NULL when size is 0
    size_t size;   //  its size
    size_t length; //  bytes the whole output needs, without the NUL
} s_out_t;

static void
s_put (s_out_t *out, const char *data, size_t length)
{
    if (out->length < out->size) {
        size_t room = out->size - 1 - out->length;
        memcpy (out->buffer + out->length, data, length < room ? length : room);
    }
    out->length += length;
}

static void
s_puts (s_out_t *out, const char *text)
{
    s_put (out, text, strlen (text));
}

//  For numbers and short names only: anything longer is a programmer error
static void __attribute__ ((format (printf, 2, 3))) s_printf (s_out_t *out, const char *format, ...)
{
    char text[128];
    va_list args;
    va_start (args, format);
    int length = vsnprintf (text, sizeof text, format, args);
    va_end (args);
    assert (length >= 0 && (size_t)length < sizeof text);
    if (length < 0)
        return;
    s_put (out, text, (size_t)length < sizeof text ? (size_t)length : sizeof text - 1);
}

static int
s_finish (s_out_t *out)
{
    if (out->size > 0)
        out->buffer[out->length < out->size ? out->length : out->size - 1] = '\0';
    return out->length > INT_MAX ? INT_MAX : (int)out->length;
}

//  Length of the valid UTF-8 sequence of two or more bytes at text, or 0
//  (overlong forms, surrogates and values past U+10FFFF are not valid)
static size_t
s_utf8_length (const unsigned char *text)
{
    size_t follow;
    uint32_t code, least;
    if (text[0] >= 0xc2 && text[0] <= 0xdf)
        follow = 1, code = text[0] & 0x1f, least = 0x80;
    else if ((text[0] & 0xf0) == 0xe0)
        follow = 2, code = text[0] & 0x0f, least = 0x800;
    else if (text[0] >= 0xf0 && text[0] <= 0xf4)
        follow = 3, code = text[0] & 0x07, least = 0x10000;
    else
        return 0;
    for (size_t i = 1; i <= follow; i++) {
        if ((text[i] & 0xc0) != 0x80) //  also stops at the NUL
            return 0;
        code = (code << 6) | (text[i] & 0x3f);
    }
    if (code < least || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
        return 0;
    return follow + 1;
}

//  ---------------------------------------------------------------------
//  JSON

//  An unsigned field. jansson's integers are int64_t: a value past
//  INT64_MAX (no broker sends one, but a recording may hold anything) is
//  written as a real rather than wrapped to a negative number
static json_t *
s_json_uint (uint64_t value)
{
    return value <= INT64_MAX ? json_integer ((json_int_t)value) : json_real ((double)value);
}

//  A string field, null when the record leaves it empty. jansson takes
//  valid UTF-8 only, and a reason holds whatever the network sent: each
//  byte that is not part of a valid sequence becomes U+FFFD
static json_t *
s_json_text (const char *text)
{
    if (!text || !*text)
        return json_null ();
    json_t *string = json_string (text);
    if (string)
        return string;
    size_t length = strlen (text);
    char *valid = malloc (3 * length + 1); //  U+FFFD is 3 bytes
    if (!valid)
        return NULL;
    size_t used = 0;
    for (const unsigned char *cursor = (const unsigned char *)text; *cursor;) {
        size_t sequence = *cursor < 0x80 ? 1 : s_utf8_length (cursor);
        if (sequence) {
            memcpy (valid + used, cursor, sequence);
            used += sequence;
            cursor += sequence;
        }
        else {
            memcpy (valid + used, "\xef\xbf\xbd", 3);
            used += 3;
            cursor++;
        }
    }
    string = json_stringn (valid, used);
    free (valid);
    return string;
}

static json_t *
s_json_time (uint64_t time_us)
{
    time_t seconds = (time_t)(time_us / 1000000);
    struct tm utc;
    if (!gmtime_r (&seconds, &utc))
        return json_null ();
    char text[64];
    snprintf (text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", utc.tm_year + 1900,
              utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
              (unsigned)(time_us % 1000000));
    return json_string (text);
}

static json_t *
s_json_keys (const ps_tap_record_t *record)
{
    json_t *keys = json_array ();
    for (size_t i = 0; keys && i < record->n_keys; i++) {
        json_t *key = json_object ();
        //  dtype only for 16-bit keys: f32 records read as they always did
        int dtype = (int)record->keys[i]->dtype;
        if (!key || json_object_set_new (key, "key", s_json_text (record->keys[i]->key)) ||
            json_object_set_new (key, "count", s_json_uint (record->keys[i]->count)) ||
            (dtype != PS_DTYPE_F32 &&
             json_object_set_new (key, "dtype", json_string (ps_dtype_name (dtype)))) ||
            json_array_append_new (keys, key)) {
            json_decref (key);
            json_decref (keys);
            return NULL;
        }
    }
    return keys;
}

//  Connect, disconnect and evict: events about one worker
static bool
s_worker_event (int kind)
{
    return kind == PSMQ__TAP_KIND__TAP_CONNECT || kind == PSMQ__TAP_KIND__TAP_DISCONNECT ||
           kind == PSMQ__TAP_KIND__TAP_EVICT;
}

//  value, or null when the field does not apply to this record
static json_t *
s_json_if (bool present, json_t *value)
{
    if (present)
        return value;
    json_decref (value);
    return json_null ();
}

json_t *
ps_taprender_json (const ps_tap_record_t *record)
{
    assert (record);
    //  seq belongs to a message; so does clock, but events about one
    //  worker carry that worker's clock too; timing exists only in replies
    bool message = record->type != PSMQ__MSG_TYPE__MSG_NONE;
    bool clocked = message || (s_worker_event (record->kind) && record->worker >= 0);
    bool timed = record->kind == PSMQ__TAP_KIND__TAP_REPLY;
    const char *status =
        record->status == PSMQ__ERR_CODE__ERR_NONE ? "ok" : ps_codec_error_name (record->status);
    //  The schema's keys in their order: json_object_set_new fails on a
    //  NULL value (out of memory), and one failure fails the object
    const struct {
        const char *key;
        json_t *value;
    } fields[] = {
        {"record", s_json_uint (record->record)},
        {"time", s_json_time (record->time_us)},
        {"time_us", s_json_uint (record->time_us)},
        {"kind", s_json_text (ps_codec_tap_kind_name (record->kind))},
        {"type", s_json_text (message ? ps_codec_type_name (record->type) : NULL)},
        {"worker", s_json_if (record->worker >= 0, json_integer (record->worker))},
        {"seq", s_json_if (message, s_json_uint (record->seq))},
        {"clock", s_json_if (clocked, json_integer (record->clock))},
        {"keys", s_json_keys (record)},
        {"bytes", s_json_uint (record->bytes)},
        {"status", s_json_text (status)},
        {"reason", s_json_text (record->reason)},
        {"queued_us", s_json_if (timed, s_json_uint (record->queued_us))},
        {"aggregation_us", s_json_if (timed, s_json_uint (record->aggregation_us))},
        {"parked_us", s_json_if (timed, s_json_uint (record->parked_us))},
        {"total_us", s_json_if (timed, s_json_uint (record->total_us))},
        {"min_clock", s_json_if (record->min_clock >= 0, json_integer (record->min_clock))},
        {"slowest", s_json_if (record->slowest >= 0, json_integer (record->slowest))},
        {"peer", s_json_text (record->peer)},
        {"dropped", s_json_uint (record->dropped)},
        //  Only a group's records say which broker published them, so that
        //  the records of a broker alone keep the schema they always had
        {"shard", s_json_if (record->shards > 1, s_json_uint (record->shard))},
        {"shards", s_json_if (record->shards > 1, s_json_uint (record->shards))},
    };
    size_t nfields = sizeof fields / sizeof fields[0] - (record->shards > 1 ? 0 : 2);
    json_t *object = json_object ();
    int rc = object ? 0 : -1;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (i < nfields && rc == 0)
            rc = json_object_set_new (object, fields[i].key, fields[i].value);
        else
            json_decref (fields[i].value);
    }
    //  Last, and only on a push that finishes the worker's clock, so that
    //  every other record keeps the schema it always had
    if (rc == 0 && record->clock_after)
        rc = json_object_set_new (object, "clock_after", json_true ());
    if (rc)
        json_decref (object);
    return rc ? NULL : object;
}

//  ---------------------------------------------------------------------
//  Text

//  Text as it is, except bytes that would break the line or the terminal
static void
s_text_string (s_out_t *out, const char *text)
{
    const unsigned char *cursor = (const unsigned char *)text;
    while (*cursor) {
        size_t run = 0;
        while (cursor[run] >= 0x20 && cursor[run] < 0x7f)
            run++;
        s_put (out, (const char *)cursor, run);
        cursor += run;
        if (!*cursor)
            break;
        size_t sequence = s_utf8_length (cursor);
        if (sequence)
            s_put (out, (const char *)cursor, sequence);
        else
            s_printf (out, "\\x%02x", *cursor);
        cursor += sequence ? sequence : 1;
    }
}

//  Text padded with spaces to width
static void
s_text_column (s_out_t *out, const char *text, size_t width)
{
    size_t length = strlen (text);
    s_puts (out, text);
    for (; length < width; length++)
        s_put (out, " ", 1);
}

const char *
ps_taprender_bytes (double bytes, char *buffer, size_t size)
{
    if (bytes < 1024)
        snprintf (buffer, size, "%.0f B", bytes);
    else if (bytes < 1024 * 1024)
        snprintf (buffer, size, "%.1f KB", bytes / 1024);
    else if (bytes < 1024.0 * 1024 * 1024)
        snprintf (buffer, size, "%.1f MB", bytes / (1024 * 1024));
    else
        snprintf (buffer, size, "%.1f GB", bytes / (1024.0 * 1024 * 1024));
    return buffer;
}

const char *
ps_taprender_us (double us, char *buffer, size_t size)
{
    if (us < 1000)
        snprintf (buffer, size, "%.0fus", us);
    else if (us < 1000000)
        snprintf (buffer, size, "%.1fms", us / 1e3);
    else
        snprintf (buffer, size, "%.1fs", us / 1e6);
    return buffer;
}

static void
s_text_latency (s_out_t *out, const char *label, uint64_t us)
{
    char text[32];
    s_puts (out, label);
    s_puts (out, ps_taprender_us ((double)us, text, sizeof text));
}

static void
s_text_time (s_out_t *out, uint64_t time_us)
{
    time_t seconds = (time_t)(time_us / 1000000);
    struct tm local;
    if (localtime_r (&seconds, &local))
        s_printf (out, "%02d:%02d:%02d.%06u", local.tm_hour, local.tm_min, local.tm_sec,
                  (unsigned)(time_us % 1000000));
    else
        s_puts (out, "??:??:??.??????");
}

//  " b1/3": the broker of a group that published the record, padded to
//  the widest of its group so that the columns after it stay aligned;
//  nothing for a broker alone, whose lines look as they always did
static void
s_text_shard (s_out_t *out, const ps_tap_record_t *record)
{
    if (record->shards <= 1)
        return;
    char text[32], widest[32];
    snprintf (text, sizeof text, " b%u/%u", record->shard, record->shards);
    snprintf (widest, sizeof widest, " b%u/%u", record->shards - 1, record->shards);
    s_text_column (out, text, strlen (widest));
}

//  "-> req  push  w3": direction, kind and type in fixed columns, worker
static void
s_text_head (s_out_t *out, const ps_tap_record_t *record)
{
    const char *arrow = " ** ";
    if (record->kind == PSMQ__TAP_KIND__TAP_REQUEST)
        arrow = " -> ";
    else if (record->kind == PSMQ__TAP_KIND__TAP_REPLY)
        arrow = " <- ";
    else if (record->kind == PSMQ__TAP_KIND__TAP_REJECT)
        arrow = " !! ";
    s_puts (out, arrow);

    const char *kind = ps_codec_tap_kind_name (record->kind);
    bool message = record->type != PSMQ__MSG_TYPE__MSG_NONE;
    s_text_column (out, kind, 5);
    if (message && strlen (kind) >= 5)
        s_put (out, " ", 1); //  "evict" and "clock" fill the column
    const char *type = message ? ps_codec_type_name (record->type) : "";
    if (record->clock_after && record->type == PSMQ__MSG_TYPE__PUSH)
        type = "push+clock";
    s_text_column (out, type, strlen (type) < 6 ? 6 : strlen (type) + 1);
    if (record->kind == PSMQ__TAP_KIND__TAP_CLOCK)
        return; //  about the whole job, not one worker: "slowest w1" says who
    if (record->worker >= 0)
        s_printf (out, "w%lld", (long long)record->worker);
    else
        s_puts (out, "w?");
}

//  "  seq 12  clock 5  w[100] b[10]  400 B"
static void
s_text_message (s_out_t *out, const ps_tap_record_t *record)
{
    if (record->type != PSMQ__MSG_TYPE__MSG_NONE)
        s_printf (out, "  seq %llu  clock %lld", (unsigned long long)record->seq,
                  (long long)record->clock);
    for (size_t i = 0; i < record->n_keys && i < S_TEXT_KEYS; i++) {
        s_puts (out, i == 0 ? "  " : " ");
        s_text_string (out, record->keys[i]->key);
        int dtype = (int)record->keys[i]->dtype;
        s_printf (out, "[%llu%s%s]", (unsigned long long)record->keys[i]->count,
                  dtype == PS_DTYPE_F32 ? "" : " ",
                  dtype == PS_DTYPE_F32 ? "" : ps_dtype_name (dtype));
    }
    if (record->n_keys > S_TEXT_KEYS) {
        size_t rest = record->n_keys - S_TEXT_KEYS;
        s_printf (out, " +%zu key%s", rest, rest == 1 ? "" : "s");
    }
    if (record->bytes > 0) {
        s_puts (out, "  ");
        char bytes[32];
        s_puts (out, ps_taprender_bytes ((double)record->bytes, bytes, sizeof bytes));
    }
}

static void
s_text_reason (s_out_t *out, const ps_tap_record_t *record)
{
    if (*record->reason) {
        s_puts (out, "  ");
        s_text_string (out, record->reason);
    }
    if (*record->peer) {
        s_puts (out, "  peer ");
        s_text_string (out, record->peer);
    }
}

static const char *
s_status_name (int status)
{
    return status == PSMQ__ERR_CODE__ERR_NONE ? "ok" : ps_codec_error_name (status);
}

int
ps_taprender_text (const ps_tap_record_t *record, char *buffer, size_t size)
{
    assert (record);
    assert (buffer || size == 0);
    s_out_t out = {buffer, size, 0};
    s_text_time (&out, record->time_us);
    s_text_shard (&out, record);
    s_text_head (&out, record);
    switch (record->kind) {
    case PSMQ__TAP_KIND__TAP_REQUEST: s_text_message (&out, record); break;
    case PSMQ__TAP_KIND__TAP_REPLY:
        s_text_message (&out, record);
        s_text_latency (&out, "  q ", record->queued_us);
        s_text_latency (&out, " agg ", record->aggregation_us);
        s_text_latency (&out, " park ", record->parked_us);
        s_text_latency (&out, " total ", record->total_us);
        s_puts (&out, "  ");
        s_puts (&out, s_status_name (record->status));
        break;
    case PSMQ__TAP_KIND__TAP_REJECT:
        s_text_message (&out, record);
        s_puts (&out, "  ");
        s_puts (&out, s_status_name (record->status));
        if (*record->reason) {
            s_puts (&out, ": ");
            s_text_string (&out, record->reason);
        }
        break;
    case PSMQ__TAP_KIND__TAP_CLOCK:
        if (record->slowest >= 0)
            s_printf (&out, "slowest w%lld", (long long)record->slowest);
        else
            s_puts (&out, "slowest none");
        if (record->min_clock >= 0)
            s_printf (&out, " at %lld", (long long)record->min_clock);
        break;
    default: //  connect, disconnect, evict: the broker says why in words
        s_text_reason (&out, record);
        break;
    }
    return s_finish (&out);
}
