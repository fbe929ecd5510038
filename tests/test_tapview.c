/*  =========================================================================
    test_tapview - how pstap views tap records: ps_taprender (text and
    JSON), ps_tapfilter (filters and XPUB topics), ps_tappair (pairing)

    Usage, as pstap does it for each record it decodes:

        ps_tapfilter_t *filter = ps_tapfilter_new ("type=push lat>10ms", &problem);
        ps_tappair_update (pairing, record, &request_us);   //  every record
        if (ps_tapfilter_match (filter, record)) {
            ps_taprender_text (record, line, sizeof line);   //  or
            json_t *object = ps_taprender_json (record);     //  --json
        }

    Records are built as the broker fills them, packed with
    ps_codec_encode_tap and read back with ps_codec_decode_tap, as pstap
    does, before they are rendered. JSON is compared with golden strings
    written out here, byte for byte, and read back with jansson; text
    lines with expected lines (in UTC, so that the time of day does not
    depend on the machine). Filters are checked with a table of
    expressions against one set of records, and topics with the exact
    list each filter asks for, then against the broker's own topic
    function: a record that matches a filter must never be dropped by the
    broker because of the subscriptions.

    usage: build/test_tapview [--filter 'tapview/<test>']
    ========================================================================= */

#include "ps_tapfilter.h"
#include "ps_tappair.h"
#include "ps_taprender.h"
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  2026-11-21T06:59:01.123456Z
#define T0 1795244341123456ULL
//  One second later, on the second
#define T1 1795244342000000ULL

static ps_codec_t *s_codec; //  decodes every record; one per test process

static void
s_setup (void)
{
    s_codec = ps_codec_new ();
    //  Text lines show local time: make it UTC so the lines are fixed
    setenv ("TZ", "UTC", 1);
    tzset ();
}

static void
s_teardown (void)
{
    ps_codec_destroy (&s_codec);
}

TestSuite (tapview, .init = s_setup, .fini = s_teardown);

//  A record as the broker starts one: worker, min_clock and slowest
//  unknown (-1), everything else zero
static ps_tap_record_t
s_record (uint64_t number, int kind, int type, int64_t worker)
{
    ps_tap_record_t record = ps_test_tap_record (number, kind, type, worker);
    record.min_clock = -1;
    record.slowest = -1;
    return record;
}

//  Keys for records; they live as long as the test
static Psmq__TapKey *
s_key (const char *name, uint64_t count)
{
    static Psmq__TapKey keys[32];
    static size_t used;
    cr_assert_lt (used, 32);
    Psmq__TapKey *key = &keys[used++];
    psmq__tap_key__init (key);
    key->key = (char *)name;
    key->count = count;
    return key;
}

//  The record as pstap sees it: packed by the broker and decoded again.
//  Valid until the next round trip.
static const ps_tap_record_t *
s_wire (const ps_tap_record_t *record)
{
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode_tap (record, &msg), 0);
    ps_problem_t problem = {0};
    const ps_tap_record_t *decoded =
        ps_codec_decode_tap (s_codec, zmq_msg_data (&msg), zmq_msg_size (&msg), &problem);
    zmq_msg_close (&msg);
    cr_assert_not_null (decoded, "decode: %s", problem.message);
    return decoded;
}

//  The record as one line of JSON Lines, as pstap prints it; valid until
//  the next call
static const char *
s_json (const ps_tap_record_t *record)
{
    static char line[2048];
    json_t *object = ps_taprender_json (record);
    cr_assert_not_null (object);
    char *text = json_dumps (object, JSON_COMPACT);
    cr_assert_not_null (text);
    cr_assert_lt (strlen (text), sizeof line);
    snprintf (line, sizeof line, "%s", text);
    free (text);
    json_decref (object);
    return line;
}

//  The top-level keys of the record's JSON object, in order, separated by
//  spaces
static const char *
s_keys_of (const ps_tap_record_t *record)
{
    static char keys[512];
    size_t used = 0;
    keys[0] = '\0';
    json_t *object = ps_taprender_json (record);
    const char *key;
    json_t *value;
    json_object_foreach (object, key, value)
    {
        used += (size_t)snprintf (keys + used, sizeof keys - used, "%s%s", used ? " " : "", key);
        cr_assert_lt (used, sizeof keys);
    }
    json_decref (object);
    return keys;
}

//  ---------------------------------------------------------------------
//  One record of each kind, as in a short session

typedef struct {
    const char *name;       //  for messages
    ps_tap_record_t record; //  as the broker fills it
} sample_t;

static Psmq__TapKey *s_wb[2]; //  w[100] b[10]

//  A record of an event of worker's connection (kind: connect, disconnect,
//  evict) at time_us, when it was at clock, for reason; the slowest clock
//  after it, min_clock, is the slowest rank's
static ps_tap_record_t
s_event (uint64_t number, int kind, int64_t worker, uint64_t time_us, int64_t clock,
         const char *reason, int64_t min_clock, int64_t slowest)
{
    ps_tap_record_t record = s_record (number, kind, PSMQ__MSG_TYPE__MSG_NONE, worker);
    record.time_us = time_us;
    record.clock = clock;
    record.reason = (char *)reason;
    record.min_clock = min_clock;
    record.slowest = slowest;
    return record;
}

//  Fills samples with one record of each kind, in the order of TapKind
static void
s_samples (sample_t samples[7])
{
    s_wb[0] = s_key ("w", 100);
    s_wb[1] = s_key ("b", 10);

    ps_tap_record_t *record = &samples[0].record;
    samples[0].name = "req";
    *record = s_record (1, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH, 3);
    record->time_us = T0;
    record->seq = 12;
    record->clock = 5;
    record->n_keys = 2;
    record->keys = s_wb;
    record->bytes = 440;
    record->min_clock = 4;
    record->slowest = 2;
    record->peer = "00a1b2c3";

    record = &samples[1].record;
    samples[1].name = "rep";
    *record = samples[0].record;
    record->record = 2;
    record->kind = PSMQ__TAP_KIND__TAP_REPLY;
    record->time_us = T0 + 14;
    record->bytes = 0;
    record->queued_us = 12;
    record->total_us = 14;
    record->min_clock = 5;
    record->slowest = 2;

    samples[2] = (sample_t){
        "conn", s_event (3, PSMQ__TAP_KIND__TAP_CONNECT, 3, T1, 0, "joined at clock 0", 0, 0)};
    samples[3] = (sample_t){
        "disc", s_event (4, PSMQ__TAP_KIND__TAP_DISCONNECT, 3, T1 + 1, 6, "left (bye)", 5, 2)};
    samples[4] = (sample_t){
        "evict", s_event (5, PSMQ__TAP_KIND__TAP_EVICT, 2, T1 + 2, 5, "silent for 10012 ms", 5, 2)};

    record = &samples[5].record;
    samples[5].name = "rej";
    *record = s_record (6, PSMQ__TAP_KIND__TAP_REJECT, PSMQ__MSG_TYPE__MSG_NONE, -1);
    record->time_us = T1 + 3;
    record->status = PSMQ__ERR_CODE__ERR_MALFORMED;
    record->reason = "envelope of 5 bytes does not parse";
    record->peer = "00a1b2c9";
    record->dropped = 2;

    record = &samples[6].record;
    samples[6].name = "clock";
    *record = s_record (7, PSMQ__TAP_KIND__TAP_CLOCK, PSMQ__MSG_TYPE__MSG_NONE, -1);
    record->time_us = T1 + 4;
    record->reason = "slowest clock 16 -> 17";
    record->min_clock = 17;
    record->slowest = 1;
    record->dropped = 2;
}

Test (tapview, usage)
{
    //  The broker publishes a push request it received from worker 3
    ps_tap_record_t record = s_record (1, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH, 3);
    Psmq__TapKey *keys[] = {s_key ("w", 100), s_key ("b", 10)};
    record.time_us = T0;
    record.seq = 12;
    record.clock = 5;
    record.keys = keys;
    record.n_keys = 2;
    record.bytes = 440;
    const ps_tap_record_t *received = s_wire (&record);

    //  pstap shows it as a line, or as JSON for scripts
    char line[256];
    int length = ps_taprender_text (received, line, sizeof line);
    cr_assert_eq ((size_t)length, strlen (line));
    cr_assert_str_eq (line,
                      "06:59:01.123456 -> req  push  w3  seq 12  clock 5  w[100] b[10]  440 B");
    json_t *object = ps_taprender_json (received);
    const char *kind, *type;
    json_int_t worker;
    cr_assert_eq (
        json_unpack (object, "{s:s, s:s, s:I}", "kind", &kind, "type", &type, "worker", &worker),
        0);
    cr_assert (strcmp (kind, "req") == 0 && strcmp (type, "push") == 0 && worker == 3);
    json_decref (object);

    //  Its reply 14 us later is paired with it
    ps_tappair_t *pairing = ps_tappair_new (100);
    uint64_t request_us = 0;
    record.peer = "00a1b2c3";
    cr_assert_not (ps_tappair_update (pairing, s_wire (&record), &request_us));
    ps_tap_record_t reply = record;
    reply.kind = PSMQ__TAP_KIND__TAP_REPLY;
    reply.time_us = T0 + 14;
    cr_assert (ps_tappair_update (pairing, s_wire (&reply), &request_us));
    cr_assert_eq (request_us, T0);
    ps_tappair_destroy (&pairing);

    //  `pstap -f 'type=push worker=3 bytes>100'`: subscribe to what the
    //  broker can filter, match the rest here
    ps_problem_t problem = {0};
    ps_tapfilter_t *filter = ps_tapfilter_new ("type=push worker=3 bytes>100", &problem);
    cr_assert_not_null (filter, "%s", problem.message);
    cr_assert (ps_tapfilter_match (filter, received));
    record.bytes = 40;
    cr_assert_not (ps_tapfilter_match (filter, s_wire (&record)));
    ps_tapfilter_destroy (&filter);
    cr_assert_null (filter);
    ps_tapfilter_destroy (&filter);

    cr_assert_null (ps_tapfilter_new ("type=pushh", &problem));
    cr_assert_str_eq (problem.message, "unknown type 'pushh' in 'type=pushh'");
}

//  ---------------------------------------------------------------------
//  JSON

//  The golden line of each sample, in the same order
static const char *s_golden[7] = {
    "{\"record\":1,\"time\":\"2026-11-21T06:59:01.123456Z\",\"time_us\":1795244341123456,"
    "\"kind\":\"req\",\"type\":\"push\",\"worker\":3,\"seq\":12,\"clock\":5,"
    "\"keys\":[{\"key\":\"w\",\"count\":100},{\"key\":\"b\",\"count\":10}],\"bytes\":440,"
    "\"status\":\"ok\",\"reason\":null,\"queued_us\":null,\"aggregation_us\":null,"
    "\"parked_us\":null,\"total_us\":null,\"min_clock\":4,\"slowest\":2,"
    "\"peer\":\"00a1b2c3\",\"dropped\":0}",

    "{\"record\":2,\"time\":\"2026-11-21T06:59:01.123470Z\",\"time_us\":1795244341123470,"
    "\"kind\":\"rep\",\"type\":\"push\",\"worker\":3,\"seq\":12,\"clock\":5,"
    "\"keys\":[{\"key\":\"w\",\"count\":100},{\"key\":\"b\",\"count\":10}],\"bytes\":0,"
    "\"status\":\"ok\",\"reason\":null,\"queued_us\":12,\"aggregation_us\":0,"
    "\"parked_us\":0,\"total_us\":14,\"min_clock\":5,\"slowest\":2,"
    "\"peer\":\"00a1b2c3\",\"dropped\":0}",

    "{\"record\":3,\"time\":\"2026-11-21T06:59:02.000000Z\",\"time_us\":1795244342000000,"
    "\"kind\":\"conn\",\"type\":null,\"worker\":3,\"seq\":null,\"clock\":0,"
    "\"keys\":[],\"bytes\":0,"
    "\"status\":\"ok\",\"reason\":\"joined at clock 0\",\"queued_us\":null,"
    "\"aggregation_us\":null,\"parked_us\":null,\"total_us\":null,\"min_clock\":0,"
    "\"slowest\":0,\"peer\":null,\"dropped\":0}",

    "{\"record\":4,\"time\":\"2026-11-21T06:59:02.000001Z\",\"time_us\":1795244342000001,"
    "\"kind\":\"disc\",\"type\":null,\"worker\":3,\"seq\":null,\"clock\":6,"
    "\"keys\":[],\"bytes\":0,"
    "\"status\":\"ok\",\"reason\":\"left (bye)\",\"queued_us\":null,\"aggregation_us\":null,"
    "\"parked_us\":null,\"total_us\":null,\"min_clock\":5,\"slowest\":2,"
    "\"peer\":null,\"dropped\":0}",

    "{\"record\":5,\"time\":\"2026-11-21T06:59:02.000002Z\",\"time_us\":1795244342000002,"
    "\"kind\":\"evict\",\"type\":null,\"worker\":2,\"seq\":null,\"clock\":5,"
    "\"keys\":[],\"bytes\":0,"
    "\"status\":\"ok\",\"reason\":\"silent for 10012 ms\",\"queued_us\":null,"
    "\"aggregation_us\":null,\"parked_us\":null,\"total_us\":null,\"min_clock\":5,"
    "\"slowest\":2,\"peer\":null,\"dropped\":0}",

    "{\"record\":6,\"time\":\"2026-11-21T06:59:02.000003Z\",\"time_us\":1795244342000003,"
    "\"kind\":\"rej\",\"type\":null,\"worker\":null,\"seq\":null,\"clock\":null,"
    "\"keys\":[],\"bytes\":0,"
    "\"status\":\"malformed\",\"reason\":\"envelope of 5 bytes does not parse\","
    "\"queued_us\":null,\"aggregation_us\":null,\"parked_us\":null,\"total_us\":null,"
    "\"min_clock\":null,\"slowest\":null,\"peer\":\"00a1b2c9\",\"dropped\":2}",

    "{\"record\":7,\"time\":\"2026-11-21T06:59:02.000004Z\",\"time_us\":1795244342000004,"
    "\"kind\":\"clock\",\"type\":null,\"worker\":null,\"seq\":null,\"clock\":null,"
    "\"keys\":[],\"bytes\":0,"
    "\"status\":\"ok\",\"reason\":\"slowest clock 16 -> 17\",\"queued_us\":null,"
    "\"aggregation_us\":null,\"parked_us\":null,\"total_us\":null,\"min_clock\":17,"
    "\"slowest\":1,"
    "\"peer\":null,\"dropped\":2}",
};

Test (tapview, json_of_each_kind)
{
    sample_t samples[7];
    s_samples (samples);
    for (size_t i = 0; i < 7; i++) {
        const char *json = s_json (s_wire (&samples[i].record));
        cr_assert_str_eq (json, s_golden[i], "%s:\n%s\nexpected\n%s", samples[i].name, json,
                          s_golden[i]);
    }
    //  A reject of a known worker's unparsable message: no message, so no
    //  seq and no clock (clock is 0 in the record, and would mislead)
    ps_tap_record_t reject = samples[5].record;
    reject.worker = 3;
    json_t *object = ps_taprender_json (s_wire (&reject));
    json_int_t worker;
    cr_assert_eq (json_unpack (object, "{s:I, s:n, s:n}", "worker", &worker, "seq", "clock"), 0);
    cr_assert_eq (worker, 3);
    json_decref (object);
}

Test (tapview, json_keys_same_for_every_kind)
{
    sample_t samples[7];
    s_samples (samples);
    const char *expected = "record time time_us kind type worker seq clock keys bytes status "
                           "reason queued_us aggregation_us parked_us total_us min_clock "
                           "slowest peer dropped";
    for (size_t i = 0; i < 7; i++) {
        //  Rendered straight from the samples too, so that this test does
        //  not depend on the golden strings above
        const char *keys = s_keys_of (s_wire (&samples[i].record));
        cr_assert_str_eq (keys, expected, "%s: %s", samples[i].name, keys);
    }
    //  A record with everything set has the same keys as well
    ps_tap_record_t full = samples[1].record;
    full.kind = PSMQ__TAP_KIND__TAP_CLOCK;
    full.reason = "why";
    full.slowest = 2;
    full.status = PSMQ__ERR_CODE__ERR_FULL;
    cr_assert_str_eq (s_keys_of (s_wire (&full)), expected);
}

Test (tapview, json_escapes_strings)
{
    ps_tap_record_t record = s_record (9, PSMQ__TAP_KIND__TAP_REJECT, PSMQ__MSG_TYPE__PULL, 1);
    record.time_us = T0;
    record.seq = 3;
    record.status = PSMQ__ERR_CODE__ERR_UNKNOWN_KEY;
    record.reason = "key \"w\"\nnot\x01 found in C:\\store, caf\xc3\xa9";
    Psmq__TapKey *keys[] = {s_key ("w", 4)};
    record.keys = keys;
    record.n_keys = 1;
    //  jansson's escapes: \" \\ and \n by name, other control bytes as \u00XX
    cr_assert_str_eq (s_json (s_wire (&record)),
                      "{\"record\":9,\"time\":\"2026-11-21T06:59:01.123456Z\","
                      "\"time_us\":1795244341123456,\"kind\":\"rej\",\"type\":\"pull\","
                      "\"worker\":1,\"seq\":3,\"clock\":0,\"keys\":[{\"key\":\"w\",\"count\":4}],"
                      "\"bytes\":0,\"status\":\"unknown-key\","
                      "\"reason\":\"key \\\"w\\\"\\nnot\\u0001 found in C:\\\\store, "
                      "caf\xc3\xa9\","
                      "\"queued_us\":null,\"aggregation_us\":null,\"parked_us\":null,"
                      "\"total_us\":null,\"min_clock\":null,\"slowest\":null,\"peer\":null,"
                      "\"dropped\":0}");

    //  Bytes that are not UTF-8 (a truncated sequence, overlong '/' in two
    //  and three bytes, a surrogate, 0xff) become U+FFFD, so that the line
    //  stays valid JSON whatever the broker was sent; protobuf-c passes
    //  them through
    record.reason = "a\xc3 b\xc0\xaf c\xed\xa0\x80 d\xff\x7f e\xf0\x9f\x98\x80 f\xe0\x80\xaf";
    json_error_t error;
    json_t *object = json_loads (s_json (s_wire (&record)), 0, &error);
    cr_assert_not_null (object, "not JSON: %s", error.text);
#define FFFD "\xef\xbf\xbd"
    cr_assert_str_eq (json_string_value (json_object_get (object, "reason")),
                      "a" FFFD " b" FFFD FFFD " c" FFFD FFFD FFFD " d" FFFD
                      "\x7f e\xf0\x9f\x98\x80 f" FFFD FFFD FFFD);
#undef FFFD
    json_decref (object);
}

//  Renders record's text line into buffers of many sizes: each call
//  returns the full length, writes the longest prefix that fits with its
//  NUL, and never touches a byte past size
static void
s_assert_truncates (const ps_tap_record_t *record)
{
    int (*render) (const ps_tap_record_t *, char *, size_t) = ps_taprender_text;
    char full[1024];
    int length = render (record, full, sizeof full);
    cr_assert_gt (length, 20);
    cr_assert_lt ((size_t)length, sizeof full);
    cr_assert_eq (render (record, NULL, 0), length);

    size_t sizes[] = {0, 1, 2, 7, 20, (size_t)length - 1, (size_t)length, (size_t)length + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char buffer[1100];
        memset (buffer, 0x5a, sizeof buffer);
        size_t size = sizes[i];
        cr_assert_eq (render (record, buffer, size), length, "size %zu", size);
        for (size_t at = size; at < sizeof buffer; at++)
            cr_assert_eq (buffer[at], 0x5a, "size %zu: byte %zu written", size, at);
        if (size > 0) {
            size_t kept = size - 1 < (size_t)length ? size - 1 : (size_t)length;
            cr_assert_eq (buffer[kept], '\0', "size %zu: no NUL at %zu", size, kept);
            cr_assert_eq (memcmp (buffer, full, kept), 0, "size %zu: not a prefix", size);
        }
    }
}

Test (tapview, text_truncates_like_snprintf)
{
    sample_t samples[7];
    s_samples (samples);
    ps_tap_record_t record = samples[1].record;
    record.reason = "a \"quoted\" reason\n\x01"; //  escapes cut in the middle too
    for (size_t i = 0; i < 7; i++)
        s_assert_truncates (&samples[i].record);
    s_assert_truncates (&record);
}

//  The record's JSON Lines form is one line that reads back as the object
//  it was dumped from
static void
s_assert_reads_back (const ps_tap_record_t *record)
{
    json_t *object = ps_taprender_json (s_wire (record));
    char *line = json_dumps (object, JSON_COMPACT);
    cr_assert_not_null (line);
    cr_assert_null (strchr (line, '\n'), "%s", line);
    json_error_t error;
    json_t *again = json_loads (line, 0, &error);
    cr_assert_not_null (again, "%s: %s", line, error.text);
    cr_assert (json_equal (object, again), "%s", line);
    json_decref (again);
    json_decref (object);
    free (line);
}

Test (tapview, json_lines_read_back)
{
    sample_t samples[7];
    s_samples (samples);
    ps_tap_record_t record = samples[1].record;
    record.reason = "a \"quoted\" reason\n\x01 \xff";
    for (size_t i = 0; i < 7; i++)
        s_assert_reads_back (&samples[i].record);
    s_assert_reads_back (&record);
}

//  ---------------------------------------------------------------------
//  Text

//  The text line of record
static const char *
s_text (const ps_tap_record_t *record)
{
    static char line[512];
    int length = ps_taprender_text (record, line, sizeof line);
    cr_assert_eq ((size_t)length, strlen (line));
    cr_assert_null (strchr (line, '\n'));
    return line;
}

//  The text line of record, as pstap gets it, must be expected
static void
s_assert_text (const ps_tap_record_t *record, const char *expected)
{
    const char *line = s_text (s_wire (record));
    cr_assert_str_eq (line, expected, "\n%s\nexpected\n%s", line, expected);
}

Test (tapview, text_of_each_kind)
{
    sample_t samples[7];
    s_samples (samples);
    const char *expected[7] = {
        "06:59:01.123456 -> req  push  w3  seq 12  clock 5  w[100] b[10]  440 B",
        ("06:59:01.123470 <- rep  push  w3  seq 12  clock 5  w[100] b[10]"
         "  q 12us agg 0us park 0us total 14us  ok"),
        "06:59:02.000000 ** conn       w3  joined at clock 0",
        "06:59:02.000001 ** disc       w3  left (bye)",
        "06:59:02.000002 ** evict      w2  silent for 10012 ms",
        "06:59:02.000003 !! rej        w?  malformed: envelope of 5 bytes does not parse",
        "06:59:02.000004 ** clock      slowest w1 at 17",
    };
    for (size_t i = 0; i < 7; i++)
        s_assert_text (&samples[i].record, expected[i]);
}

Test (tapview, text_units_keys_and_errors)
{
    //  A big pull reply: sizes and latencies in human units, keys cut short
    ps_tap_record_t record = s_record (8, PSMQ__TAP_KIND__TAP_REPLY, PSMQ__MSG_TYPE__PULL, 12);
    Psmq__TapKey *keys[10];
    static const char *names[10] = {"l0.w", "l0.b", "l1.w", "l1.b", "l2.w",
                                    "l2.b", "l3.w", "l3.b", "l4.w", "l4.b"};
    for (size_t i = 0; i < 10; i++)
        keys[i] = s_key (names[i], 1000 + i);
    record.time_us = T0;
    record.seq = 40;
    record.clock = 9;
    record.keys = keys;
    record.n_keys = 10;
    record.bytes = 5 * 1024 * 1024 + 512 * 1024;
    record.queued_us = 999;
    record.aggregation_us = 1500;
    record.parked_us = 2500000;
    record.total_us = 2501999;
    s_assert_text (&record, "06:59:01.123456 <- rep  pull  w12  seq 40  clock 9"
                            "  l0.w[1000] l0.b[1001] l1.w[1002] +7 keys  5.5 MB"
                            "  q 999us agg 1.5ms park 2.5s total 2.5s  ok");

    record.n_keys = 4;
    record.bytes = 1536;
    cr_assert_not_null (strstr (s_text (s_wire (&record)), " l1.w[1002] +1 key  1.5 KB  "));
    record.bytes = 3ULL << 30;
    cr_assert_not_null (strstr (s_text (s_wire (&record)), " +1 key  3.0 GB  "));

    //  An error reply ends with the error's name
    record.status = PSMQ__ERR_CODE__ERR_UNKNOWN_KEY;
    const char *line = s_text (s_wire (&record));
    cr_assert_str_eq (line + strlen (line) - strlen ("  unknown-key"), "  unknown-key", "%s", line);

    //  A rejected request that parsed: type, seq and the reason on one line
    ps_tap_record_t reject = s_record (9, PSMQ__TAP_KIND__TAP_REJECT, PSMQ__MSG_TYPE__PUSH, 1);
    reject.time_us = T0;
    reject.seq = 7;
    reject.clock = 2;
    reject.status = PSMQ__ERR_CODE__ERR_CLOCK;
    reject.reason = "clock 2 after 3\nnext\x01 line";
    s_assert_text (&reject, "06:59:01.123456 !! rej  push  w1  seq 7  clock 2"
                            "  clock: clock 2 after 3\\x0anext\\x01 line");

    //  Long types and kinds keep a space between the columns
    ps_tap_record_t beat = s_record (10, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__HEARTBEAT, 0);
    beat.time_us = T0;
    s_assert_text (&beat, "06:59:01.123456 -> req  heartbeat w0  seq 0  clock 0");
    ps_tap_record_t hello = s_record (11, PSMQ__TAP_KIND__TAP_CLOCK, PSMQ__MSG_TYPE__HELLO, -1);
    hello.time_us = T0;
    s_assert_text (&hello, "06:59:01.123456 ** clock hello slowest none");
}

//  ---------------------------------------------------------------------
//  Filters

//  Records to filter, one name each
typedef struct {
    const char *name;
    ps_tap_record_t record;
} named_t;

#define S_NAMED 9
static void
s_named (named_t named[S_NAMED])
{
    sample_t samples[7];
    s_samples (samples);
    //  req rep conn disc evict rej clock, then two pull replies
    for (size_t i = 0; i < 7; i++)
        named[i] = (named_t){samples[i].name, samples[i].record};
    static Psmq__TapKey *pulled[1], *missing[1];
    pulled[0] = s_key ("w", 524288);
    missing[0] = s_key ("nope", 1);

    named[7].name = "pull";
    named[7].record = s_record (8, PSMQ__TAP_KIND__TAP_REPLY, PSMQ__MSG_TYPE__PULL, 1);
    named[7].record.keys = pulled;
    named[7].record.n_keys = 1;
    named[7].record.bytes = 2 * 1024 * 1024;
    named[7].record.total_us = 2500;

    named[8].name = "fail";
    named[8].record = s_record (9, PSMQ__TAP_KIND__TAP_REPLY, PSMQ__MSG_TYPE__PULL, 1);
    named[8].record.keys = missing;
    named[8].record.n_keys = 1;
    named[8].record.status = PSMQ__ERR_CODE__ERR_UNKNOWN_KEY;
    named[8].record.total_us = 30;
}

//  Each expression and the records it lets through
static const struct {
    const char *expression;
    const char *matches;
} s_filters[] = {
    {"", "req rep conn disc evict rej clock pull fail"},
    {"kind=req", "req"},
    {"kind=rep,evict", "rep evict pull fail"},
    {"kind=conn,disc,rej,clock", "conn disc rej clock"},
    {"type=push", "req rep"},
    {"type=pull,push", "req rep pull fail"},
    {"type=none", "conn disc evict rej clock"},
    {"type=hello", ""},
    {"worker=3", "req rep conn disc"},
    {"worker=2,1", "evict pull fail"},
    {"worker=7", ""},
    {"key=b", "req rep"},
    {"key=nope,w", "req rep pull fail"},
    {"key=l9", ""},
    {"bytes>1K", "pull"},
    {"bytes>439", "req pull"},
    {"bytes>440", "pull"},
    {"bytes>2M", ""},
    {"bytes>2097151", "pull"},
    {"bytes<1k", "req rep conn disc evict rej clock fail"},
    {"bytes<1", "rep conn disc evict rej clock fail"},
    {"bytes>100 bytes<1M", "req"},
    {"lat>1ms", "pull"},
    {"lat>20", "pull fail"},
    {"lat>13us", "rep pull fail"},
    {"lat<20us", "rep"},
    {"lat<1s", "rep pull fail"},
    {"lat>14 lat<2500", "fail"},
    {"status=ok", "req rep conn disc evict clock pull"},
    {"status=err", "rej fail"},
    {"kind=rep status=err", "fail"},
    {"type=push worker=3 bytes>100", "req"},
    {"  kind=rep \t worker=1  ", "pull fail"},
    {"kind=rep key=w lat>10ms", ""},
    //  A broker alone is shard 0
    {"shard=0", "req rep conn disc evict rej clock pull fail"},
    {"shard=1,2", ""},
};

//  The names of the records filter lets through, separated by spaces
static void
s_matching (const ps_tapfilter_t *filter, const named_t named[S_NAMED], char *names, size_t size)
{
    size_t used = 0;
    names[0] = '\0';
    for (size_t i = 0; i < S_NAMED; i++)
        if (ps_tapfilter_match (filter, s_wire (&named[i].record)))
            used += snprintf (names + used, size - used, "%s%s", used ? " " : "", named[i].name);
}

Test (tapview, a_16_bit_key_shows_its_wire_dtype)
{
    //  A push of a key that travels in bf16: its dtype beside its count,
    //  in text and JSON; f32 keys show none (as before)
    ps_tap_record_t record = s_record (9, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH, 1);
    Psmq__TapKey *keys[] = {s_key ("h", 4), s_key ("w", 8)};
    keys[0]->dtype = PSMQ__DTYPE__BF16;
    record.keys = keys;
    record.n_keys = 2;
    const ps_tap_record_t *wire = s_wire (&record);
    cr_assert_not_null (strstr (s_text (wire), "  h[4 bf16] w[8]"), "%s", s_text (wire));
    const char *json = s_json (wire);
    cr_assert_not_null (strstr (json, "{\"key\":\"h\",\"count\":4,\"dtype\":\"bf16\"}"), "%s",
                        json);
    cr_assert_not_null (strstr (json, "{\"key\":\"w\",\"count\":8}"), "%s", json);
}

Test (tapview, a_push_that_finishes_the_clock_says_so)
{
    //  Its request and its reply: the type reads push+clock in text, and
    //  JSON gains "clock_after", which no other record has
    ps_tap_record_t record = s_record (10, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__PUSH, 2);
    record.time_us = T0;
    record.seq = 7;
    record.clock = 4;
    record.clock_after = true;
    s_assert_text (&record, "06:59:01.123456 -> req  push+clock w2  seq 7  clock 4");
    const char *json = s_json (s_wire (&record));
    cr_assert_not_null (strstr (json, "\"type\":\"push\""), "%s", json);
    cr_assert_not_null (strstr (json, ",\"clock_after\":true}"), "%s", json);

    record.kind = PSMQ__TAP_KIND__TAP_REPLY;
    record.clock = 5;
    cr_assert_not_null (strstr (s_text (s_wire (&record)), "<- rep  push+clock w2  seq 7  clock 5"),
                        "%s", s_text (s_wire (&record)));

    //  A plain push: as before
    record.clock_after = false;
    cr_assert_not_null (strstr (s_text (s_wire (&record)), "<- rep  push  w2  seq 7"), "%s",
                        s_text (s_wire (&record)));
    cr_assert_null (strstr (s_json (s_wire (&record)), "clock_after"));
}

Test (tapview, filter_terms_match)
{
    named_t named[S_NAMED];
    s_named (named);
    for (size_t i = 0; i < sizeof s_filters / sizeof s_filters[0]; i++) {
        ps_problem_t problem = {0};
        char names[256];
        ps_tapfilter_t *filter = ps_tapfilter_new (s_filters[i].expression, &problem);
        cr_assert_not_null (filter, "'%s': %s", s_filters[i].expression, problem.message);
        s_matching (filter, named, names, sizeof names);
        ps_tapfilter_destroy (&filter);
        cr_assert_str_eq (names, s_filters[i].matches, "'%s' matched '%s', expected '%s'",
                          s_filters[i].expression, names, s_filters[i].matches);
    }
    //  No expression at all is the empty one
    ps_tapfilter_t *filter = ps_tapfilter_new (NULL, NULL);
    cr_assert_not_null (filter);
    char names[256];
    s_matching (filter, named, names, sizeof names);
    ps_tapfilter_destroy (&filter);
    cr_assert_str_eq (names, s_filters[0].matches);
}

Test (tapview, filter_refuses_bad_terms)
{
    static const struct {
        const char *expression;
        const char *why; //  the whole message
    } bad[] = {
        {"type=pushh", "unknown type 'pushh' in 'type=pushh'"},
        {"bytes>1X", "bad size '1X' in 'bytes>1X' (a number with K, M or G)"},
        {"bytes>K", "bad size 'K' in 'bytes>K' (a number with K, M or G)"},
        {"bytes<-1", "bad size '-1' in 'bytes<-1' (a number with K, M or G)"},
        {"bytes>18446744073709551616", "bad size '18446744073709551616' in "
                                       "'bytes>18446744073709551616' (a number with K, M or G)"},
        {"bytes>17179869184G", "bad size '17179869184G' in 'bytes>17179869184G' (a number with "
                               "K, M or G)"},
        {"kind=req,foo", "unknown kind 'foo' in 'kind=req,foo' (req, rep, conn, disc, evict, "
                         "rej, clock)"},
        {"worker=a", "bad worker 'a' in 'worker=a' (a rank from 0 to 4095)"},
        {"worker=1,-1", "bad worker '-1' in 'worker=1,-1' (a rank from 0 to 4095)"},
        {"worker=4096", "bad worker '4096' in 'worker=4096' (a rank from 0 to 4095)"},
        {"lat>5m", "bad latency '5m' in 'lat>5m' (a number with us, ms or s)"},
        {"lat<1.5ms", "bad latency '1.5ms' in 'lat<1.5ms' (a number with us, ms or s)"},
        {"status=maybe", "unknown status 'maybe' in 'status=maybe' (ok or err)"},
        {"key=w,", "empty value in 'key=w,'"},
        {"kind=", "empty value in 'kind='"},
        {"type=push,,pull", "empty value in 'type=push,,pull'"},
        {"colour=red",
         "unknown term 'colour=red' (kind, type, worker, key, bytes, lat, status, shard)"},
        {"kind", "bad term 'kind' (NAME=VALUE, bytes>N, lat<T, ...)"},
        {"=req", "unknown term '=req' (kind, type, worker, key, bytes, lat, status, shard)"},
        {"shard=256", "bad shard '256' in 'shard=256' (a broker from 0 to 255)"},
        {"shard=1,x", "bad shard 'x' in 'shard=1,x' (a broker from 0 to 255)"},
        {"shard>1", "'shard' takes '=' in 'shard>1'"},
        {"kind>req", "'kind' takes '=' in 'kind>req'"},
        {"bytes=5", "'bytes' takes '>' or '<' in 'bytes=5'"},
        {"kind=req kind=rep", "'kind=' given twice, again in 'kind=rep'"},
        {"lat>1 bytes>1K lat>2", "'lat>' given twice, again in 'lat>2'"},
        {"type=push worker=1 kind=nope", "unknown kind 'nope' in 'kind=nope' (req, rep, conn, "
                                         "disc, evict, rej, clock)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ps_problem_t problem = {0};
        ps_tapfilter_t *filter = ps_tapfilter_new (bad[i].expression, &problem);
        bool refused = filter == NULL;
        ps_tapfilter_destroy (&filter);
        cr_assert (refused, "'%s' was accepted", bad[i].expression);
        cr_assert_str_eq (problem.message, bad[i].why, "'%s'", bad[i].expression);
    }
}

Test (tapview, filter_limits)
{
    //  A long message is cut to the problem's size, a missing problem is fine
    char expression[512] = "kind=";
    memset (expression + 5, 'x', 300);
    ps_problem_t problem;
    cr_assert_null (ps_tapfilter_new (expression, &problem));
    cr_assert_eq (strlen (problem.message), sizeof problem.message - 1);
    cr_assert (strncmp (problem.message, "unknown kind 'xxx", 17) == 0, "%s", problem.message);
    cr_assert_null (ps_tapfilter_new ("kind=x", NULL));

    //  Key names follow the codec's rules
    memset (expression, 0, sizeof expression);
    memcpy (expression, "key=", 4);
    memset (expression + 4, 'k', PS_MAX_KEY_LEN + 1);
    cr_assert_null (ps_tapfilter_new (expression, &problem));
    cr_assert (strncmp (problem.message, "bad key 'kkk", 12) == 0, "%s", problem.message);
    cr_assert_not_null (strstr (problem.message, "longer than 200 bytes"), "%s", problem.message);
    expression[4 + PS_MAX_KEY_LEN] = '\0';
    ps_tapfilter_t *filter = ps_tapfilter_new (expression, &problem);
    cr_assert_not_null (filter, "%s", problem.message);
    ps_tapfilter_destroy (&filter);

    //  Up to 64 workers and 64 keys
    size_t used = (size_t)snprintf (expression, sizeof expression, "worker=0");
    for (int rank = 1; rank < 64; rank++)
        used += (size_t)snprintf (expression + used, sizeof expression - used, ",%d", rank);
    filter = ps_tapfilter_new (expression, &problem);
    cr_assert_not_null (filter, "%s", problem.message);
    ps_tapfilter_destroy (&filter);
    snprintf (expression + used, sizeof expression - used, ",64");
    cr_assert_null (ps_tapfilter_new (expression, &problem));
    cr_assert (strncmp (problem.message, "more than 64 workers in 'worker=0,1,2", 37) == 0, "%s",
               problem.message);

    used = (size_t)snprintf (expression, sizeof expression, "key=k0");
    for (int key = 1; key < 65; key++)
        used += (size_t)snprintf (expression + used, sizeof expression - used, ",k%d", key);
    cr_assert_null (ps_tapfilter_new (expression, &problem));
    cr_assert (strncmp (problem.message, "more than 64 keys in 'key=k0,k1", 31) == 0, "%s",
               problem.message);

    //  The filter keeps its own copy of the keys
    char copy[] = "key=w";
    filter = ps_tapfilter_new (copy, NULL);
    memset (copy, 'x', 5);
    named_t named[S_NAMED];
    s_named (named);
    bool matched = ps_tapfilter_match (filter, s_wire (&named[0].record));
    ps_tapfilter_destroy (&filter);
    cr_assert (matched);
}

//  ---------------------------------------------------------------------
//  Topics

typedef struct {
    size_t count;                       //  topics received
    char list[4096];                    //  separated by spaces, "" for the empty one
    char topics[512][PS_TAP_TOPIC_MAX]; //  each
} topics_t;

static void
s_collect (const char *topic, void *arg)
{
    topics_t *topics = arg;
    cr_assert_lt (strlen (topic), PS_TAP_TOPIC_MAX);
    cr_assert_lt (topics->count, 512);
    snprintf (topics->topics[topics->count], PS_TAP_TOPIC_MAX, "%s", topic);
    size_t used = strlen (topics->list);
    snprintf (topics->list + used, sizeof topics->list - used, "%s%s", topics->count ? " " : "",
              *topic ? topic : "\"\"");
    topics->count++;
}

//  The topics expression asks for
static void
s_topics (const char *expression, bool payload, topics_t *topics)
{
    memset (topics, 0, sizeof *topics);
    ps_problem_t problem = {0};
    ps_tapfilter_t *filter = ps_tapfilter_new (expression, &problem);
    cr_assert_not_null (filter, "%s", problem.message);
    size_t count = ps_tapfilter_topics (filter, payload, s_collect, topics);
    ps_tapfilter_destroy (&filter);
    cr_assert_eq (count, topics->count);
}

Test (tapview, topics_exact)
{
    static const struct {
        const char *expression;
        bool payload;
        const char *topics;
    } rows[] = {
        {"", false, "\"\""},
        {"key=w bytes>1K lat>1ms status=err", false, "\"\""},
        {"", true, "\"\" payload."},
        {"kind=req", false, "req."},
        {"kind=rep,req", false, "req. rep."},
        {"kind=req", true, "req. payload.req."},
        {"type=push", false,
         "req.push. rep.push. conn.push. disc.push. evict.push. rej.push. clock.push."},
        {"type=pull,push kind=req", false, "req.push. req.pull."},
        {"type=push worker=5,3", false,
         "req.push.3. req.push.5. rep.push.3. rep.push.5. conn.push.3. conn.push.5. "
         "disc.push.3. disc.push.5. evict.push.3. evict.push.5. rej.push.3. rej.push.5. "
         "clock.push.3. clock.push.5."},
        {"kind=req,rep type=push worker=3", false, "req.push.3. rep.push.3."},
        {"kind=req,rep type=push worker=3,3", true,
         "req.push.3. rep.push.3. payload.req.push.3. payload.rep.push.3."},
        {"kind=rep worker=1", false,
         "rep.hello.1. rep.init.1. rep.push.1. rep.pull.1. rep.clock.1. rep.heartbeat.1. "
         "rep.bye.1. rep.info.1. rep.error.1. rep.none.1."},
        {"kind=evict type=none", false, "evict.none."},
        {"kind=clock type=none worker=4095", true, "clock.none.4095. payload.clock.none.4095."},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        topics_t topics;
        s_topics (rows[i].expression, rows[i].payload, &topics);
        cr_assert_str_eq (topics.list, rows[i].topics, "'%s'%s:\n%s", rows[i].expression,
                          rows[i].payload ? " with payload" : "", topics.list);
    }
}

Test (tapview, topics_of_worker_only)
{
    //  Every kind, every type (and "none"), for that worker
    static const char *kinds[] = {"req", "rep", "conn", "disc", "evict", "rej", "clock"};
    static const char *types[] = {"hello",     "init", "push", "pull",  "clock",
                                  "heartbeat", "bye",  "info", "error", "none"};
    static topics_t topics;
    s_topics ("worker=3", true, &topics);
    cr_assert_eq (topics.count, 2 * 7 * 10);
    size_t at = 0;
    for (int payload = 0; payload < 2; payload++)
        for (size_t k = 0; k < 7; k++)
            for (size_t t = 0; t < 10; t++) {
                char expected[PS_TAP_TOPIC_MAX];
                snprintf (expected, sizeof expected, "%s%s.%s.3.", payload ? "payload." : "",
                          kinds[k], types[t]);
                cr_assert_str_eq (topics.topics[at], expected, "topic %zu", at);
                at++;
            }
}

//  Whether one of the topics is a prefix of topic
static bool
s_subscribed (const topics_t *topics, const char *topic)
{
    for (size_t i = 0; i < topics->count; i++)
        if (strncmp (topic, topics->topics[i], strlen (topics->topics[i])) == 0)
            return true;
    return false;
}

Test (tapview, topics_let_every_match_through)
{
    //  The broker publishes each record under ps_codec_tap_topic; what a
    //  filter matches must be under one of its subscriptions, and a record
    //  kept out by the subscriptions must not match
    named_t named[S_NAMED];
    s_named (named);
    static topics_t topics;
    for (size_t i = 0; i < sizeof s_filters / sizeof s_filters[0]; i++) {
        s_topics (s_filters[i].expression, true, &topics);
        ps_tapfilter_t *filter = ps_tapfilter_new (s_filters[i].expression, NULL);
        for (size_t r = 0; r < S_NAMED; r++) {
            const ps_tap_record_t *record = &named[r].record;
            bool matched = ps_tapfilter_match (filter, record);
            for (int payload = 0; payload < 2; payload++) {
                char topic[PS_TAP_TOPIC_MAX];
                ps_codec_tap_topic (record->kind, record->type, record->worker, payload, topic);
                bool subscribed = s_subscribed (&topics, topic);
                cr_assert (subscribed || !matched, "'%s' matches %s, but not its topic %s",
                           s_filters[i].expression, named[r].name, topic);
            }
        }
        ps_tapfilter_destroy (&filter);
    }
    //  And the subscriptions do keep out what kind, type and worker refuse
    s_topics ("kind=rep type=pull worker=1", false, &topics);
    for (size_t r = 0; r < S_NAMED; r++) {
        char topic[PS_TAP_TOPIC_MAX];
        const ps_tap_record_t *record = &named[r].record;
        ps_codec_tap_topic (record->kind, record->type, record->worker, false, topic);
        bool wanted = strcmp (named[r].name, "pull") == 0 || strcmp (named[r].name, "fail") == 0;
        cr_assert_eq (s_subscribed (&topics, topic), wanted, "%s under %s", named[r].name, topic);
    }
}

//  ---------------------------------------------------------------------
//  Broker groups

//  The push request of the samples as broker shard of shards publishes it
static ps_tap_record_t
s_from_broker (uint32_t shard, uint32_t shards)
{
    sample_t samples[7];
    s_samples (samples);
    ps_tap_record_t record = samples[0].record;
    record.shard = shard;
    record.shards = shards;
    return record;
}

Test (tapview, text_names_the_broker_of_a_group)
{
    ps_tap_record_t record = s_from_broker (1, 3);
    s_assert_text (&record,
                   "06:59:01.123456 b1/3 -> req  push  w3  seq 12  clock 5  w[100] b[10]  440 B");
    //  Padded to the widest name of the group, so that columns stay aligned
    record = s_from_broker (3, 12);
    s_assert_text (&record,
                   "06:59:01.123456 b3/12  -> req  push  w3  seq 12  clock 5  w[100] b[10]  440 B");
    record = s_from_broker (11, 12);
    s_assert_text (&record,
                   "06:59:01.123456 b11/12 -> req  push  w3  seq 12  clock 5  w[100] b[10]  440 B");
    //  A group of one, and a broker alone, look as they always did
    const char *alone = "06:59:01.123456 -> req  push  w3  seq 12  clock 5  w[100] b[10]  440 B";
    record = s_from_broker (0, 1);
    s_assert_text (&record, alone);
    record = s_from_broker (0, 0);
    s_assert_text (&record, alone);
    //  Every kind has the prefix
    sample_t samples[7];
    s_samples (samples);
    for (size_t i = 0; i < 7; i++) {
        samples[i].record.shard = 2;
        samples[i].record.shards = 3;
        const char *line = s_text (s_wire (&samples[i].record));
        cr_assert_eq (strncmp (line + 15, " b2/3 ", 6), 0, "%s: %s", samples[i].name, line);
    }
    s_assert_truncates (&samples[1].record);
}

Test (tapview, json_names_the_broker_of_a_group)
{
    //  Two more keys at the end, after the schema a broker alone keeps
    ps_tap_record_t record = s_from_broker (2, 3);
    const char *json = s_json (s_wire (&record));
    cr_assert_eq (strlen (json), strlen (s_golden[0]) - 1 + strlen (",\"shard\":2,\"shards\":3}"));
    cr_assert_eq (strncmp (json, s_golden[0], strlen (s_golden[0]) - 1), 0, "%s", json);
    cr_assert_str_eq (json + strlen (s_golden[0]) - 1, ",\"shard\":2,\"shards\":3}");
    //  Shard 0 is a number, not a missing value
    record = s_from_broker (0, 3);
    json_t *object = ps_taprender_json (s_wire (&record));
    json_int_t dropped, shard, shards;
    cr_assert_eq (json_unpack (object, "{s:I, s:I, s:I}", "dropped", &dropped, "shard", &shard,
                               "shards", &shards),
                  0);
    cr_assert (dropped == 0 && shard == 0 && shards == 3);
    json_decref (object);
    cr_assert_str_eq (s_keys_of (s_wire (&record)),
                      "record time time_us kind type worker seq clock keys bytes status "
                      "reason queued_us aggregation_us parked_us total_us min_clock "
                      "slowest peer dropped shard shards");
    //  Not a group: the golden line, byte for byte
    record = s_from_broker (0, 1);
    cr_assert_str_eq (s_json (s_wire (&record)), s_golden[0]);
    record = s_from_broker (1, 2);
    s_assert_reads_back (&record);
}

Test (tapview, filter_by_shard)
{
    ps_problem_t problem = {0};
    ps_tapfilter_t *filter = ps_tapfilter_new ("shard=0,2 kind=req", &problem);
    cr_assert_not_null (filter, "%s", problem.message);
    ps_tap_record_t record = s_from_broker (0, 3);
    cr_assert (ps_tapfilter_match (filter, s_wire (&record)));
    record = s_from_broker (1, 3);
    cr_assert_not (ps_tapfilter_match (filter, s_wire (&record)));
    record = s_from_broker (2, 3);
    cr_assert (ps_tapfilter_match (filter, s_wire (&record)));
    record.kind = PSMQ__TAP_KIND__TAP_REPLY;
    cr_assert_not (ps_tapfilter_match (filter, s_wire (&record)), "every term must hold");
    //  pstap reads only the taps of the brokers the filter wants
    cr_assert (ps_tapfilter_wants_shard (filter, 0));
    cr_assert_not (ps_tapfilter_wants_shard (filter, 1));
    cr_assert (ps_tapfilter_wants_shard (filter, 2));
    cr_assert_not (ps_tapfilter_wants_shard (filter, 255));
    cr_assert_not (ps_tapfilter_wants_shard (filter, 100000));
    ps_tapfilter_destroy (&filter);

    filter = ps_tapfilter_new ("shard=255", &problem);
    cr_assert_not_null (filter, "%s", problem.message);
    cr_assert (ps_tapfilter_wants_shard (filter, 255));
    record = s_from_broker (255, 256);
    cr_assert (ps_tapfilter_match (filter, s_wire (&record)));
    ps_tapfilter_destroy (&filter);
    filter = ps_tapfilter_new ("kind=req", &problem);
    cr_assert (ps_tapfilter_wants_shard (filter, 7), "no shard= term: every broker");
    ps_tapfilter_destroy (&filter);

    //  The shard is not in the topic: the broker cannot filter on it
    topics_t *topics = calloc (1, sizeof *topics);
    cr_assert_not_null (topics);
    s_topics ("shard=1", false, topics);
    cr_assert_str_eq (topics->list, "\"\"");
    s_topics ("shard=1 kind=req", false, topics);
    cr_assert_str_eq (topics->list, "req.");
    free (topics);
}

//  A request or reply of worker 3's seq 12, through broker shard of 3
static ps_tap_record_t
s_pair_record (int kind, uint32_t shard, uint64_t time_us)
{
    ps_tap_record_t record = s_from_broker (shard, 3);
    record.kind = kind;
    record.time_us = time_us;
    return record;
}

Test (tapview, pairing_keys_on_the_broker)
{
    //  A worker of a group sends seq 12 to each broker, over connections
    //  that may have the same routing id at each
    ps_tappair_t *pairing = ps_tappair_new (100);
    cr_assert_not_null (pairing);
    uint64_t request_us = 0;
    ps_tap_record_t record = s_pair_record (PSMQ__TAP_KIND__TAP_REQUEST, 0, 1000);
    cr_assert_not (ps_tappair_update (pairing, s_wire (&record), &request_us));
    record = s_pair_record (PSMQ__TAP_KIND__TAP_REQUEST, 1, 2000);
    cr_assert_not (ps_tappair_update (pairing, s_wire (&record), &request_us));

    uint64_t pending[8] = {0};
    ps_tappair_pending (pairing, pending, 8);
    cr_assert_eq (pending[3], 2, "one request at each broker");

    //  Broker 1 answers first: its own request, not broker 0's
    record = s_pair_record (PSMQ__TAP_KIND__TAP_REPLY, 1, 2500);
    cr_assert (ps_tappair_update (pairing, s_wire (&record), &request_us));
    cr_assert_eq (request_us, 2000);
    record = s_pair_record (PSMQ__TAP_KIND__TAP_REJECT, 0, 3000);
    cr_assert (ps_tappair_update (pairing, s_wire (&record), &request_us));
    cr_assert_eq (request_us, 1000);
    //  Each was answered once; broker 2 never saw the request
    record = s_pair_record (PSMQ__TAP_KIND__TAP_REPLY, 1, 3500);
    cr_assert_not (ps_tappair_update (pairing, s_wire (&record), &request_us));
    record = s_pair_record (PSMQ__TAP_KIND__TAP_REPLY, 2, 3600);
    cr_assert_not (ps_tappair_update (pairing, s_wire (&record), &request_us));
    memset (pending, 0, sizeof pending);
    ps_tappair_pending (pairing, pending, 8);
    cr_assert_eq (pending[3], 0);
    cr_assert_eq (ps_tappair_forgotten (pairing), 0);
    ps_tappair_destroy (&pairing);
    cr_assert_null (pairing);
    ps_tappair_destroy (&pairing);
}

Test (tapview, pairing_forgets_when_full)
{
    ps_tappair_t *pairing = ps_tappair_new (2);
    cr_assert_not_null (pairing);
    uint64_t request_us;
    //  Heartbeats get no reply: never remembered
    ps_tap_record_t beat = s_record (1, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__HEARTBEAT, 0);
    cr_assert_not (ps_tappair_update (pairing, s_wire (&beat), &request_us));
    for (uint64_t seq = 1; seq <= 3; seq++) {
        ps_tap_record_t record = s_pair_record (PSMQ__TAP_KIND__TAP_REQUEST, 0, seq * 100);
        record.seq = seq;
        ps_tappair_update (pairing, s_wire (&record), &request_us);
    }
    //  The third found the table full: the first two are forgotten
    cr_assert_eq (ps_tappair_forgotten (pairing), 2);
    ps_tap_record_t reply = s_pair_record (PSMQ__TAP_KIND__TAP_REPLY, 0, 1000);
    reply.seq = 1;
    cr_assert_not (ps_tappair_update (pairing, s_wire (&reply), &request_us));
    reply.seq = 3;
    cr_assert (ps_tappair_update (pairing, s_wire (&reply), &request_us));
    cr_assert_eq (request_us, 300);
    //  Events are neither requests nor answers
    ps_tap_record_t event = s_record (9, PSMQ__TAP_KIND__TAP_CLOCK, PSMQ__MSG_TYPE__MSG_NONE, -1);
    cr_assert_not (ps_tappair_update (pairing, s_wire (&event), &request_us));
    ps_tappair_destroy (&pairing);
}

Test (tapview, pairing_matches_a_hello_whose_request_has_no_rank_yet)
{
    //  The broker knows the rank only once HELLO is accepted: the request
    //  says worker -1, its reply worker 0; peer and seq are the same
    ps_tappair_t *pairing = ps_tappair_new (100);
    cr_assert_not_null (pairing);
    ps_tap_record_t request = s_record (1, PSMQ__TAP_KIND__TAP_REQUEST, PSMQ__MSG_TYPE__HELLO, -1);
    request.peer = "00a1b2c3";
    request.seq = 1;
    request.time_us = T0;
    ps_tap_record_t reply = request;
    reply.kind = PSMQ__TAP_KIND__TAP_REPLY;
    reply.worker = 0;
    reply.time_us = T0 + 40;
    uint64_t request_us = 0;
    cr_assert_not (ps_tappair_update (pairing, s_wire (&request), &request_us));
    cr_assert (ps_tappair_update (pairing, s_wire (&reply), &request_us));
    cr_assert_eq (request_us, T0);
    ps_tappair_destroy (&pairing);
}
