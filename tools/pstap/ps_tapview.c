/*  =========================================================================
    ps_tapview - how tap records look to people and scripts, and which of
    them a user asked for

    Both renderers write through one small writer (s_out_t) that keeps
    snprintf's contract: it counts every byte it would write, copies only
    what fits, and NUL-terminates at the end. So a caller sizes a buffer
    with one call, and rendering never allocates.

    JSON is for scripts, so its schema never depends on the record: the
    same keys in the same order for every kind, with null where a field
    does not apply (worker -1, no message type, timing outside replies);
    nulls follow what the broker fills in (broker/ps_broker.c, s_tap_*).
    A consumer can then read records with a fixed set of columns. Strings
    are escaped byte by byte; a reason can hold anything the network sent,
    so invalid UTF-8 becomes U+FFFD instead of breaking the line. The text
    line is for people: fixed-width kind and type columns, human units,
    and control bytes shown as \xNN so one record stays one line.

    A filter is parsed once into sets (bitmasks of kinds and types, a
    sorted list of workers, a list of keys, thresholds) so that matching a
    record costs a few comparisons and no allocation. Kind, type and worker
    are also in the XPUB topic, so ps_tapfilter_topics turns them into
    subscriptions and the broker drops unwanted records before sending
    them; a topic prefix cannot stop in the middle, so an unconstrained
    dimension before a constrained one is enumerated in full. Rejected:
    subscribing to everything and filtering here (costs the broker and the
    network every record), and regular expressions (the few names we have
    fit in sets).

    Records of a broker group carry their broker's place (shard, shards):
    the text line names it ("b1/3") and JSON adds two fields, both only
    when shards > 1, so that a broker alone looks exactly as it did before
    groups. Pairing keys a request on its shard as well as its peer and
    seq, because a worker of a group sends the same seq to every broker;
    it is here rather than in pstap so that it is tested on its own.
    Rejected: keying on the peer and seq alone (two ROUTERs may hand out
    the same routing id), and emitting shard fields for every record (the
    JSON of a broker alone would change for no information).
    ========================================================================= */

#include "ps_tapview.h"

#include <assert.h>
#include <czmq.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Largest TapKind and MsgType values we know by name
#define S_KIND_LAST PSMQ__TAP_KIND__TAP_CLOCK
#define S_TYPE_LAST PSMQ__MSG_TYPE__ERROR
//  Entries in a filter's worker and key lists
#define S_FILTER_MAX_WORKERS 64
#define S_FILTER_MAX_KEYS 64
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

static void
s_json_string (s_out_t *out, const char *text)
{
    s_put (out, "\"", 1);
    const unsigned char *cursor = (const unsigned char *)text;
    while (*cursor) {
        size_t run = 0; //  bytes that need no escaping, copied in one go
        while (cursor[run] >= 0x20 && cursor[run] < 0x80 && cursor[run] != '"' &&
               cursor[run] != '\\')
            run++;
        s_put (out, (const char *)cursor, run);
        cursor += run;
        if (!*cursor)
            break;
        size_t sequence = s_utf8_length (cursor);
        if (sequence) {
            s_put (out, (const char *)cursor, sequence);
            cursor += sequence;
            continue;
        }
        if (*cursor == '"' || *cursor == '\\') {
            char escaped[2] = {'\\', (char)*cursor};
            s_put (out, escaped, 2);
        }
        else if (*cursor < 0x20)
            s_printf (out, "\\u%04x", *cursor);
        else
            s_puts (out, "\\ufffd"); //  a byte that is not UTF-8
        cursor++;
    }
    s_put (out, "\"", 1);
}

//  A string field, null when the record leaves it empty
static void
s_json_text (s_out_t *out, const char *name, const char *text)
{
    s_printf (out, ",\"%s\":", name);
    if (text && *text)
        s_json_string (out, text);
    else
        s_puts (out, "null");
}

static void
s_json_uint (s_out_t *out, const char *name, uint64_t value, bool present)
{
    if (present)
        s_printf (out, ",\"%s\":%llu", name, (unsigned long long)value);
    else
        s_printf (out, ",\"%s\":null", name);
}

static void
s_json_int (s_out_t *out, const char *name, int64_t value, bool present)
{
    if (present)
        s_printf (out, ",\"%s\":%lld", name, (long long)value);
    else
        s_printf (out, ",\"%s\":null", name);
}

static void
s_json_time (s_out_t *out, uint64_t time_us)
{
    time_t seconds = (time_t)(time_us / 1000000);
    struct tm utc;
    if (gmtime_r (&seconds, &utc))
        s_printf (out, ",\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06uZ\"", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  (unsigned)(time_us % 1000000));
    else
        s_puts (out, ",\"time\":null");
}

static void
s_json_keys (s_out_t *out, const ps_tap_record_t *record)
{
    s_puts (out, ",\"keys\":[");
    for (size_t i = 0; i < record->n_keys; i++) {
        if (i > 0)
            s_put (out, ",", 1);
        s_puts (out, "{\"key\":");
        s_json_string (out, record->keys[i]->key);
        s_printf (out, ",\"count\":%llu}", (unsigned long long)record->keys[i]->count);
    }
    s_put (out, "]", 1);
}

//  Connect, disconnect and evict: events about one worker
static bool
s_worker_event (int kind)
{
    return kind == PSMQ__TAP_KIND__TAP_CONNECT || kind == PSMQ__TAP_KIND__TAP_DISCONNECT ||
           kind == PSMQ__TAP_KIND__TAP_EVICT;
}

int
ps_tapview_json (const ps_tap_record_t *record, char *buffer, size_t size)
{
    assert (record);
    assert (buffer || size == 0);
    s_out_t out = {buffer, size, 0};
    //  seq belongs to a message; so does clock, but events about one
    //  worker carry that worker's clock too; timing exists only in replies
    bool message = record->type != PSMQ__MSG_TYPE__MSG_NONE;
    bool clocked = message || (s_worker_event (record->kind) && record->worker >= 0);
    bool timed = record->kind == PSMQ__TAP_KIND__TAP_REPLY;

    s_printf (&out, "{\"record\":%llu", (unsigned long long)record->record);
    s_json_time (&out, record->time_us);
    s_json_uint (&out, "time_us", record->time_us, true);
    s_json_text (&out, "kind", ps_codec_tap_kind_name (record->kind));
    s_json_text (&out, "type", message ? ps_codec_type_name (record->type) : NULL);
    s_json_int (&out, "worker", record->worker, record->worker >= 0);
    s_json_uint (&out, "seq", record->seq, message);
    s_json_int (&out, "clock", record->clock, clocked);
    s_json_keys (&out, record);
    s_json_uint (&out, "bytes", record->bytes, true);
    s_json_text (&out, "status",
                 record->status == PSMQ__ERR_CODE__ERR_NONE ? "ok"
                                                            : ps_codec_error_name (record->status));
    s_json_text (&out, "reason", record->reason);
    s_json_uint (&out, "queued_us", record->queued_us, timed);
    s_json_uint (&out, "aggregation_us", record->aggregation_us, timed);
    s_json_uint (&out, "parked_us", record->parked_us, timed);
    s_json_uint (&out, "total_us", record->total_us, timed);
    s_json_int (&out, "min_clock", record->min_clock, record->min_clock >= 0);
    s_json_int (&out, "slowest", record->slowest, record->slowest >= 0);
    s_json_text (&out, "peer", record->peer);
    s_json_uint (&out, "dropped", record->dropped, true);
    //  Only a group's records say which broker published them, so that the
    //  records of a broker alone keep the schema they always had
    if (record->shards > 1) {
        s_json_uint (&out, "shard", record->shard, true);
        s_json_uint (&out, "shards", record->shards, true);
    }
    s_put (&out, "}", 1);
    return s_finish (&out);
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

static void
s_text_bytes (s_out_t *out, uint64_t bytes)
{
    if (bytes < 1024)
        s_printf (out, "%llu B", (unsigned long long)bytes);
    else if (bytes < 1024 * 1024)
        s_printf (out, "%.1f KB", bytes / 1024.0);
    else if (bytes < 1024 * 1024 * 1024)
        s_printf (out, "%.1f MB", bytes / (1024.0 * 1024));
    else
        s_printf (out, "%.1f GB", bytes / (1024.0 * 1024 * 1024));
}

static void
s_text_latency (s_out_t *out, const char *label, uint64_t us)
{
    if (us < 1000)
        s_printf (out, "%s%lluus", label, (unsigned long long)us);
    else if (us < 1000000)
        s_printf (out, "%s%.1fms", label, us / 1e3);
    else
        s_printf (out, "%s%.1fs", label, us / 1e6);
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
        s_printf (out, "[%llu]", (unsigned long long)record->keys[i]->count);
    }
    if (record->n_keys > S_TEXT_KEYS) {
        size_t rest = record->n_keys - S_TEXT_KEYS;
        s_printf (out, " +%zu key%s", rest, rest == 1 ? "" : "s");
    }
    if (record->bytes > 0) {
        s_puts (out, "  ");
        s_text_bytes (out, record->bytes);
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
ps_tapview_text (const ps_tap_record_t *record, char *buffer, size_t size)
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

//  ---------------------------------------------------------------------
//  Filters

struct ps_tapfilter_t {
    uint32_t kinds;                        //  bit per TapKind, 0 for any
    uint32_t types;                        //  bit per MsgType, 0 for any
    int64_t workers[S_FILTER_MAX_WORKERS]; //  sorted, no repeats
    size_t nworkers;                       //  0 for any
    char *key_text;                        //  the key= value; keys point into it
    const char *keys[S_FILTER_MAX_KEYS];   //  any of these
    size_t nkeys;                          //  0 for any
    uint64_t bytes_above, bytes_below;     //  bytes>N, bytes<N
    bool has_bytes_above, has_bytes_below; //  whether given
    uint64_t lat_above_us, lat_below_us;   //  lat>T, lat<T
    bool has_lat_above, has_lat_below;     //  whether given
    enum { S_ANY, S_OK, S_ERR } status;    //  status=
    uint64_t shards[PS_MAX_SHARDS / 64];   //  bit per shard= value
    bool has_shards;                       //  whether given
};

//  Fill why (which may be NULL) and return -1
static int __attribute__ ((format (printf, 3, 4)))
s_why (char *why, size_t why_size, const char *format, ...)
{
    if (why && why_size > 0) {
        va_list args;
        va_start (args, format);
        vsnprintf (why, why_size, format, args);
        va_end (args);
    }
    return -1;
}

//  Cut item at its first comma; what follows, or NULL after the last item
static char *
s_split (char *item)
{
    char *comma = strchr (item, ',');
    if (!comma)
        return NULL;
    *comma = '\0';
    return comma + 1;
}

//  The value from first to last whose name is item, or -1
static int
s_lookup (const char *item, const char *(*name) (int), int first, int last)
{
    for (int value = first; value <= last; value++)
        if (strcmp (item, name (value)) == 0)
            return value;
    return -1;
}

//  Digits only, no more than limit; 0, or -1
static int
s_parse_uint (const char **cursor, uint64_t limit, uint64_t *value)
{
    const char *text = *cursor;
    if (*text < '0' || *text > '9')
        return -1;
    for (*value = 0; *text >= '0' && *text <= '9'; text++) {
        uint64_t digit = (uint64_t)(*text - '0');
        if (*value > (limit - digit) / 10)
            return -1;
        *value = *value * 10 + digit;
    }
    *cursor = text;
    return 0;
}

//  A number times a unit, without overflow; 0, or -1
static int
s_scale (uint64_t number, uint64_t unit, uint64_t *value)
{
    if (number > UINT64_MAX / unit)
        return -1;
    *value = number * unit;
    return 0;
}

//  Each parser gets the term (for messages), its operator and a copy of
//  its value that it may cut up (and keep: then it sets *value to NULL)
typedef int (s_parser_fn) (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
                           size_t why_size);

static int
s_parse_kind (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
              size_t why_size)
{
    for (char *item = *value, *next; item; item = next) {
        next = s_split (item);
        int kind = s_lookup (item, ps_codec_tap_kind_name, 1, S_KIND_LAST);
        if (kind < 0)
            return s_why (why, why_size,
                          "unknown kind '%s' in '%s' (req, rep, conn, disc, evict, rej, clock)",
                          item, term);
        self->kinds |= 1u << kind;
    }
    return 0;
}

//  "none" is accepted as well: records that are not about a message
static int
s_parse_type (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
              size_t why_size)
{
    for (char *item = *value, *next; item; item = next) {
        next = s_split (item);
        int type = s_lookup (item, ps_codec_type_name, 0, S_TYPE_LAST);
        if (type < 0)
            return s_why (why, why_size, "unknown type '%s' in '%s'", item, term);
        self->types |= 1u << type;
    }
    return 0;
}

static int
s_compare_workers (const void *a, const void *b)
{
    int64_t left = *(const int64_t *)a, right = *(const int64_t *)b;
    return (left > right) - (left < right);
}

static int
s_parse_worker (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
                size_t why_size)
{
    for (char *item = *value, *next; item; item = next) {
        next = s_split (item);
        const char *cursor = item;
        uint64_t rank;
        if (s_parse_uint (&cursor, PS_MAX_WORKERS - 1, &rank) || *cursor)
            return s_why (why, why_size, "bad worker '%s' in '%s' (a rank from 0 to %d)", item,
                          term, PS_MAX_WORKERS - 1);
        if (self->nworkers == S_FILTER_MAX_WORKERS)
            return s_why (why, why_size, "more than %d workers in '%s'", S_FILTER_MAX_WORKERS,
                          term);
        self->workers[self->nworkers++] = (int64_t)rank;
    }
    //  Sorted without repeats, so that topics come out once and in order
    qsort (self->workers, self->nworkers, sizeof self->workers[0], s_compare_workers);
    size_t kept = 0;
    for (size_t i = 0; i < self->nworkers; i++)
        if (kept == 0 || self->workers[kept - 1] != self->workers[i])
            self->workers[kept++] = self->workers[i];
    self->nworkers = kept;
    return 0;
}

static int
s_parse_key (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
             size_t why_size)
{
    for (char *item = *value, *next; item; item = next) {
        next = s_split (item);
        ps_problem_t problem;
        if (ps_codec_check_key (item, &problem))
            return s_why (why, why_size, "bad key '%s' in '%s': %s", item, term, problem.message);
        if (self->nkeys == S_FILTER_MAX_KEYS)
            return s_why (why, why_size, "more than %d keys in '%s'", S_FILTER_MAX_KEYS, term);
        self->keys[self->nkeys++] = item;
    }
    self->key_text = *value;
    *value = NULL;
    return 0;
}

//  N with an optional K, M or G (powers of 1024)
static int
s_parse_bytes (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
               size_t why_size)
{
    const char *cursor = *value;
    uint64_t number = 0, bytes;
    int shift = 0;
    if (s_parse_uint (&cursor, UINT64_MAX, &number) == 0) {
        if (*cursor == 'K' || *cursor == 'k')
            shift = 10, cursor++;
        else if (*cursor == 'M' || *cursor == 'm')
            shift = 20, cursor++;
        else if (*cursor == 'G' || *cursor == 'g')
            shift = 30, cursor++;
    }
    if (cursor == *value || *cursor || s_scale (number, 1ULL << shift, &bytes))
        return s_why (why, why_size, "bad size '%s' in '%s' (a number with K, M or G)", *value,
                      term);
    if (op == '>')
        self->bytes_above = bytes, self->has_bytes_above = true;
    else
        self->bytes_below = bytes, self->has_bytes_below = true;
    return 0;
}

//  T with an optional us, ms or s (microseconds when there is none)
static int
s_parse_lat (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
             size_t why_size)
{
    const char *cursor = *value;
    uint64_t number = 0, us;
    uint64_t unit = 1;
    if (s_parse_uint (&cursor, UINT64_MAX, &number) == 0) {
        if (strcmp (cursor, "us") == 0)
            cursor += 2;
        else if (strcmp (cursor, "ms") == 0)
            unit = 1000, cursor += 2;
        else if (strcmp (cursor, "s") == 0)
            unit = 1000000, cursor += 1;
    }
    if (cursor == *value || *cursor || s_scale (number, unit, &us))
        return s_why (why, why_size, "bad latency '%s' in '%s' (a number with us, ms or s)", *value,
                      term);
    if (op == '>')
        self->lat_above_us = us, self->has_lat_above = true;
    else
        self->lat_below_us = us, self->has_lat_below = true;
    return 0;
}

static int
s_parse_status (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
                size_t why_size)
{
    if (strcmp (*value, "ok") == 0)
        self->status = S_OK;
    else if (strcmp (*value, "err") == 0)
        self->status = S_ERR;
    else
        return s_why (why, why_size, "unknown status '%s' in '%s' (ok or err)", *value, term);
    return 0;
}

//  The brokers of a group by their place in it; a broker alone is shard 0
static int
s_parse_shard (ps_tapfilter_t *self, const char *term, char op, char **value, char *why,
               size_t why_size)
{
    for (char *item = *value, *next; item; item = next) {
        next = s_split (item);
        const char *cursor = item;
        uint64_t shard;
        if (s_parse_uint (&cursor, PS_MAX_SHARDS - 1, &shard) || *cursor)
            return s_why (why, why_size, "bad shard '%s' in '%s' (a broker from 0 to %d)", item,
                          term, PS_MAX_SHARDS - 1);
        self->shards[shard / 64] |= 1ULL << (shard % 64);
    }
    self->has_shards = true;
    return 0;
}

static const struct {
    const char *name;   //  before the operator
    const char *ops;    //  operators it takes
    s_parser_fn *parse; //  reads the value into the filter
    bool list;          //  takes NAME,NAME,...
} s_terms[] = {
    {"kind", "=", s_parse_kind, true},      {"type", "=", s_parse_type, true},
    {"worker", "=", s_parse_worker, true},  {"key", "=", s_parse_key, true},
    {"bytes", "<>", s_parse_bytes, false},  {"lat", "<>", s_parse_lat, false},
    {"status", "=", s_parse_status, false}, {"shard", "=", s_parse_shard, true},
};
#define S_TERMS (sizeof s_terms / sizeof s_terms[0])

//  Parse one term into self. seen has one bit per term name and operator,
//  so that bytes>1K bytes<1M is a range but kind=req kind=rep is refused.
static int
s_parse_term (ps_tapfilter_t *self, const char *term, uint32_t *seen, char *why, size_t why_size)
{
    size_t name_length = strcspn (term, "=<>");
    if (!term[name_length])
        return s_why (why, why_size, "bad term '%s' (NAME=VALUE, bytes>N, lat<T, ...)", term);
    size_t index = 0;
    while (index < S_TERMS && (strlen (s_terms[index].name) != name_length ||
                               strncmp (s_terms[index].name, term, name_length)))
        index++;
    if (index == S_TERMS)
        return s_why (why, why_size,
                      "unknown term '%s' (kind, type, worker, key, bytes, lat, status, shard)",
                      term);
    char op = term[name_length];
    if (!strchr (s_terms[index].ops, op))
        return s_why (why, why_size, "'%s' takes %s in '%s'", s_terms[index].name,
                      s_terms[index].ops[1] ? "'>' or '<'" : "'='", term);
    uint32_t bit = 1u << (index * 3 + (op == '=' ? 0 : op == '>' ? 1 : 2));
    if (*seen & bit)
        return s_why (why, why_size, "'%.*s%c' given twice, again in '%s'", (int)name_length, term,
                      op, term);
    *seen |= bit;

    const char *value = term + name_length + 1;
    if (!*value || (s_terms[index].list &&
                    (*value == ',' || strstr (value, ",,") || value[strlen (value) - 1] == ',')))
        return s_why (why, why_size, "empty value in '%s'", term);
    char *copy = strdup (value);
    if (!copy)
        return s_why (why, why_size, "out of memory");
    int rc = s_terms[index].parse (self, term, op, &copy, why, why_size);
    free (copy);
    return rc;
}

ps_tapfilter_t *
ps_tapfilter_new (const char *expression, char *why, size_t why_size)
{
    ps_tapfilter_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_why (why, why_size, "out of memory");
        return NULL;
    }
    uint32_t seen = 0;
    const char *cursor = expression ? expression : "";
    while (true) {
        cursor += strspn (cursor, " \t");
        size_t length = strcspn (cursor, " \t");
        if (length == 0)
            break;
        char *term = strndup (cursor, length);
        int rc = term ? s_parse_term (self, term, &seen, why, why_size)
                      : s_why (why, why_size, "out of memory");
        free (term);
        if (rc) {
            ps_tapfilter_destroy (&self);
            return NULL;
        }
        cursor += length;
    }
    return self;
}

void
ps_tapfilter_destroy (ps_tapfilter_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->key_text);
        free (*self_p);
        *self_p = NULL;
    }
}

//  Whether value is in mask (any value when mask is 0)
static bool
s_in_mask (uint32_t mask, int value)
{
    return mask == 0 || (value >= 0 && value < 32 && (mask & (1u << value)));
}

static bool
s_match_worker (const ps_tapfilter_t *self, int64_t worker)
{
    if (self->nworkers == 0)
        return true;
    for (size_t i = 0; i < self->nworkers; i++)
        if (self->workers[i] == worker)
            return true;
    return false;
}

static bool
s_match_keys (const ps_tapfilter_t *self, const ps_tap_record_t *record)
{
    if (self->nkeys == 0)
        return true;
    for (size_t i = 0; i < record->n_keys; i++)
        for (size_t j = 0; j < self->nkeys; j++)
            if (strcmp (record->keys[i]->key, self->keys[j]) == 0)
                return true;
    return false;
}

static bool
s_match_latency (const ps_tapfilter_t *self, const ps_tap_record_t *record)
{
    if (!self->has_lat_above && !self->has_lat_below)
        return true;
    if (record->kind != PSMQ__TAP_KIND__TAP_REPLY)
        return false; //  only replies are timed
    return (!self->has_lat_above || record->total_us > self->lat_above_us) &&
           (!self->has_lat_below || record->total_us < self->lat_below_us);
}

static bool
s_match_status (const ps_tapfilter_t *self, const ps_tap_record_t *record)
{
    bool failed =
        record->status != PSMQ__ERR_CODE__ERR_NONE || record->kind == PSMQ__TAP_KIND__TAP_REJECT;
    return self->status == S_ANY || failed == (self->status == S_ERR);
}

bool
ps_tapfilter_wants_shard (const ps_tapfilter_t *self, uint32_t shard)
{
    assert (self);
    if (!self->has_shards)
        return true;
    return shard < PS_MAX_SHARDS && (self->shards[shard / 64] & (1ULL << (shard % 64)));
}

bool
ps_tapfilter_match (const ps_tapfilter_t *self, const ps_tap_record_t *record)
{
    assert (self);
    assert (record);
    return ps_tapfilter_wants_shard (self, record->shard) &&
           s_in_mask (self->kinds, record->kind) && s_in_mask (self->types, record->type) &&
           s_match_worker (self, record->worker) && s_match_keys (self, record) &&
           (!self->has_bytes_above || record->bytes > self->bytes_above) &&
           (!self->has_bytes_below || record->bytes < self->bytes_below) &&
           s_match_latency (self, record) && s_match_status (self, record);
}

//  ---------------------------------------------------------------------
//  Topics

//  The values of a dimension to enumerate, in topic order: those in mask,
//  or all of them when mask is 0. Returns how many.
static size_t
s_members (uint32_t mask, const int *order, size_t count, int *members)
{
    size_t found = 0;
    for (size_t i = 0; i < count; i++)
        if (mask == 0 || (mask & (1u << order[i])))
            members[found++] = order[i];
    return found;
}

static void
s_append (char *topic, size_t *length, const char *text)
{
    int added = snprintf (topic + *length, PS_TAP_TOPIC_MAX - *length, "%s.", text);
    assert (added > 0 && *length + (size_t)added < PS_TAP_TOPIC_MAX);
    *length += (size_t)added;
}

//  Every prefix for one leading string ("" or "payload."): a product of
//  kinds, types and workers, as deep as the last constrained dimension
static size_t
s_topics (const ps_tapfilter_t *self, const char *lead,
          void (*subscribe) (const char *topic, void *arg), void *arg)
{
    static const int kind_order[] = {1, 2, 3, 4, 5, 6, 7};
    static const int type_order[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0}; //  "none" last
    int depth = self->nworkers ? 3 : self->types ? 2 : self->kinds ? 1 : 0;
    int kinds[7], types[10];
    size_t nkinds = depth >= 1 ? s_members (self->kinds, kind_order, 7, kinds) : 1;
    size_t ntypes = depth >= 2 ? s_members (self->types, type_order, 10, types) : 1;
    size_t nworkers = depth >= 3 ? self->nworkers : 1;

    size_t count = 0;
    for (size_t k = 0; k < nkinds; k++)
        for (size_t t = 0; t < ntypes; t++)
            for (size_t w = 0; w < nworkers; w++) {
                char topic[PS_TAP_TOPIC_MAX];
                size_t length = (size_t)snprintf (topic, sizeof topic, "%s", lead);
                if (depth >= 1)
                    s_append (topic, &length, ps_codec_tap_kind_name (kinds[k]));
                if (depth >= 2)
                    s_append (topic, &length, ps_codec_type_name (types[t]));
                if (depth >= 3) {
                    char rank[24];
                    snprintf (rank, sizeof rank, "%lld", (long long)self->workers[w]);
                    s_append (topic, &length, rank);
                }
                subscribe (topic, arg);
                count++;
            }
    return count;
}

size_t
ps_tapfilter_topics (const ps_tapfilter_t *self, bool payload,
                     void (*subscribe) (const char *topic, void *arg), void *arg)
{
    assert (self);
    assert (subscribe);
    size_t count = s_topics (self, "", subscribe, arg);
    if (payload)
        count += s_topics (self, "payload.", subscribe, arg);
    return count;
}

//  ---------------------------------------------------------------------
//  Pairing

//  A request waiting for its reply
typedef struct {
    uint64_t time_us; //  when the broker received it
    int64_t worker;   //  its rank, -1 if not known
} s_pending_t;

struct ps_tappair_t {
    zhashx_t *table;    //  "shard/peer/seq" -> s_pending_t
    size_t max_pending; //  the table is emptied when it reaches this
    uint64_t forgotten; //  requests dropped when the table was full
};

static void
s_pending_free (void **item)
{
    free (*item);
    *item = NULL;
}

ps_tappair_t *
ps_tappair_new (size_t max_pending)
{
    assert (max_pending > 0);
    ps_tappair_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->table = zhashx_new ();
    if (!self->table) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->table, s_pending_free);
    self->max_pending = max_pending;
    return self;
}

void
ps_tappair_destroy (ps_tappair_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zhashx_destroy (&(*self_p)->table);
        free (*self_p);
        *self_p = NULL;
    }
}

//  A connection numbers its requests, so (peer, seq) names one at one
//  broker; not the worker, which a HELLO request does not have yet and its
//  reply does. A worker of a group sends the same seq to every broker, and
//  two brokers may give two connections the same routing id: the shard is
//  part of the name.
static void
s_pair_key (const ps_tap_record_t *record, char *key, size_t size)
{
    snprintf (key, size, "%u/%s/%llu", record->shard, record->peer,
              (unsigned long long)record->seq);
}

bool
ps_tappair_update (ps_tappair_t *self, const ps_tap_record_t *record, uint64_t *request_us)
{
    assert (self);
    assert (record);
    assert (request_us);
    char key[128];
    s_pair_key (record, key, sizeof key);
    if (record->kind == PSMQ__TAP_KIND__TAP_REQUEST &&
        record->type != PSMQ__MSG_TYPE__HEARTBEAT) { //  heartbeats get no reply
        if (zhashx_size (self->table) >= self->max_pending) {
            self->forgotten += zhashx_size (self->table);
            zhashx_purge (self->table);
        }
        s_pending_t *pending = malloc (sizeof *pending);
        if (pending) {
            *pending = (s_pending_t){record->time_us, record->worker};
            zhashx_update (self->table, key, pending);
        }
        return false;
    }
    if (record->kind != PSMQ__TAP_KIND__TAP_REPLY && record->kind != PSMQ__TAP_KIND__TAP_REJECT)
        return false;
    s_pending_t *pending = zhashx_lookup (self->table, key);
    if (!pending)
        return false;
    *request_us = pending->time_us;
    zhashx_delete (self->table, key);
    return true;
}

void
ps_tappair_pending (ps_tappair_t *self, uint64_t *pending, size_t nworkers)
{
    assert (self);
    assert (pending || nworkers == 0);
    for (s_pending_t *item = zhashx_first (self->table); item; item = zhashx_next (self->table))
        if (item->worker >= 0 && (uint64_t)item->worker < nworkers)
            pending[item->worker]++;
}

uint64_t
ps_tappair_forgotten (const ps_tappair_t *self)
{
    assert (self);
    return self->forgotten;
}
