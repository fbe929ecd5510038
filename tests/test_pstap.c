/*  =========================================================================
    test_pstap - the pstap binary: its views of a recording, of a live tap
    and of the broker's INFO

    Usage, as in docs/pstap.md:

        pstap watch --broker tcp://server:5555 -f 'type=push lat>10ms'
        pstap record --broker tcp://server:5555 -w job.pstap -c 2000
        pstap read -r job.pstap [--json] [--view watch|stats|top]
        pstap stats | top | clock --broker tcp://server:5555

    The first test reads a recording the way a person would, then as
    JSON Lines for a script.

    The recording tests/golden/session.pstap is built by this file (the
    s_session records below, with fixed times) and committed with the
    JSON Lines that `pstap read --json` must print for it, byte for byte:
    so a change in the file format, the JSON schema or the pipeline shows
    as a diff. PSMQ_UPDATE_GOLDEN=1 rewrites both files after a deliberate
    change; review the diff before committing it.

    Live tests use fakes on loopback with ephemeral ports, so that they
    control every byte: an XPUB socket plays the tap (it sends records
    only once pstap's subscription has arrived), a ROUTER socket plays the
    broker's INFO. Then the real thing: an in-process broker and a worker,
    and a group of three in-process brokers (psbroker --shard I --shards 3)
    that learn of each other from a HELLO sent by a raw DEALER, as a
    worker of the group sends it. Every child process and every receive has
    a bounded wait.

    usage: cd build && ./test_pstap [--filter 'pstap/<test>']
    ========================================================================= */

#include "ps_codec.h"
#include "ps_taplog.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

//  Output of one child, both streams
#define OUTPUT_MAX (256 * 1024)
//  Bound on any child that should finish by itself, and on any wait for
//  what a child does at once on an idle machine (subscribe, ask INFO)
#define CHILD_MS 10000

//  ------------------------------------------------------------ children

typedef struct {
    char *out;  //  all it printed on stdout, NUL-terminated
    char *err;  //  and on stderr
    int status; //  exit status, -1 when it had to be killed
} result_t;

//  Read both streams until the child closes them or timeout_ms passes,
//  then reap it
static result_t
s_finish (ps_test_child_t *child, int timeout_ms)
{
    result_t result = {calloc (1, OUTPUT_MAX), calloc (1, OUTPUT_MAX), -1};
    cr_assert (result.out && result.err);
    result.status = ps_test_child_output (child, timeout_ms, result.out, result.err, OUTPUT_MAX);
    return result;
}

static void
s_result_free (result_t *result)
{
    free (result->out);
    free (result->err);
}

//  Start pstap with these arguments (NULL-terminated), with TZ=UTC (text
//  lines show local time)
static ps_test_child_t
s_pstap_start (const char *first, ...)
{
    char path[512];
    char *argv[32] = {(char *)ps_test_binary ("pstap", path, sizeof path)};
    size_t argc = 1;
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg; arg = va_arg (args, const char *)) {
        cr_assert_lt (argc, 31, "too many arguments for pstap");
        argv[argc++] = (char *)arg;
    }
    va_end (args);
    setenv ("TZ", "UTC", 1);
    return ps_test_spawn (argv);
}

//  Run pstap with these arguments (NULL-terminated) to completion (a
//  macro: C cannot pass variable arguments on to s_pstap_start)
#define s_pstap(...) s_finish_started (s_pstap_start (__VA_ARGS__))

static result_t
s_finish_started (ps_test_child_t child)
{
    return s_finish (&child, CHILD_MS);
}

//  Lines in text
static size_t
s_lines (const char *text)
{
    size_t lines = 0;
    for (; *text; text++)
        lines += *text == '\n';
    return lines;
}

//  The JSON object on the line at *text, which must be one; *text moves
//  to the next line. The caller releases it (json_decref).
static json_t *
s_json_line (const char **text)
{
    const char *line = *text, *end = strchr (line, '\n');
    cr_assert (end, "unterminated line: %s", line);
    json_error_t error;
    json_t *object = json_loadb (line, (size_t)(end - line), 0, &error);
    cr_assert (json_is_object (object), "not a JSON object: %.*s: %s", (int)(end - line), line,
               error.text);
    *text = end + 1;
    return object;
}

//  The "record" numbers of JSON Lines output, in order; how many
static size_t
s_record_numbers (const char *jsonl, uint64_t *numbers, size_t max)
{
    size_t count = 0;
    while (*jsonl && count < max) {
        json_t *record = s_json_line (&jsonl);
        json_int_t number;
        cr_assert_eq (json_unpack (record, "{s:I}", "record", &number), 0, "no record number");
        numbers[count++] = (uint64_t)number;
        json_decref (record);
    }
    return count;
}

//  ----------------------------------------------------- the recording

//  2023-11-14T22:13:20Z, so that JSON times are easy to read
#define T0 1700000000000000ULL
#define PEER0 "5700000000000a00"
#define PEER1 "5700000000000b01"

//  Two small payload frames for "payload." copies
static const float s_gradient[4] = {0.5f, -0.25f, 1, 2};
static const float s_bias[2] = {3, 4};

//  Append record to the recording, then its "payload." copy when asked
static void
s_append (ps_taplog_writer_t *writer, const ps_tap_record_t *record, bool payload)
{
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode_tap (record, &msg), 0);
    ps_taplog_frame_t frames[3] = {{zmq_msg_data (&msg), zmq_msg_size (&msg)},
                                   {s_gradient, sizeof s_gradient},
                                   {s_bias, sizeof s_bias}};
    char topic[PS_TAP_TOPIC_MAX];
    ps_problem_t problem;
    for (int copy = 0; copy <= (int)payload; copy++) {
        size_t size = ps_codec_tap_topic (record->kind, record->type, record->worker, copy, topic);
        cr_assert_eq (ps_taplog_writer_append (writer, topic, size, frames, copy ? 3 : 1, &problem),
                      0, "%s", problem.message);
    }
    zmq_msg_close (&msg);
}

//  A record with the fields every record has
static ps_tap_record_t
s_base (uint64_t number, int kind, int type, int64_t worker, uint64_t offset_us)
{
    ps_tap_record_t record = ps_test_tap_record (number, kind, type, worker);
    record.time_us = T0 + offset_us;
    record.slowest = -1;
    record.peer = type ? (worker == 1 ? PEER1 : PEER0) : "";
    return record;
}

#define REQ PSMQ__TAP_KIND__TAP_REQUEST
#define REP PSMQ__TAP_KIND__TAP_REPLY

//  One record of a recording, as a row of a table: s_base's fields, then
//  those the row sets (zero where it sets none)
typedef struct {
    uint64_t number;
    int kind;
    int type;
    int64_t worker;
    uint64_t at_us; //  after T0
    uint64_t seq;
    int64_t clock;
    int64_t min_clock;
    int64_t slowest; //  TAP_CLOCK records' only: the others say -1, none
    uint64_t dropped;
    size_t keys; //  the first keys of w[1000], b[10]
    uint64_t bytes;
    uint64_t queued_us, aggregation_us, parked_us, total_us;
    int status;
    const char *reason;
    uint32_t shard, shards;
    bool payload;   //  followed by its "payload." copy
    bool malformed; //  in its place, a message that does not decode
} row_t;

//  Write the records of rows into a new recording at path
static void
s_record_rows (const char *path, const row_t *rows, size_t nrows)
{
    ps_problem_t problem;
    ps_taplog_writer_t *writer = ps_taplog_writer_new (path, T0, &problem);
    cr_assert (writer, "%s", problem.message);
    Psmq__TapKey w = PSMQ__TAP_KEY__INIT, b = PSMQ__TAP_KEY__INIT;
    w.key = "w";
    w.count = 1000;
    b.key = "b";
    b.count = 10;
    Psmq__TapKey *keys[] = {&w, &b};
    for (const row_t *row = rows; row < rows + nrows; row++) {
        if (row->malformed) {
            //  Field 31 with wire type 7: protobuf-c refuses it
            ps_taplog_frame_t garbage = {"\x08\x01\xff\xff\xff", 5};
            cr_assert_eq (
                ps_taplog_writer_append (writer, "req.push.0.", 11, &garbage, 1, &problem), 0);
            continue;
        }
        ps_tap_record_t r = s_base (row->number, row->kind, row->type, row->worker, row->at_us);
        r.seq = row->seq;
        r.clock = row->clock;
        r.min_clock = row->min_clock;
        r.slowest = row->kind == PSMQ__TAP_KIND__TAP_CLOCK ? row->slowest : -1;
        r.dropped = row->dropped;
        r.n_keys = row->keys;
        r.keys = row->keys ? keys : NULL;
        r.bytes = row->bytes;
        r.queued_us = row->queued_us;
        r.aggregation_us = row->aggregation_us;
        r.parked_us = row->parked_us;
        r.total_us = row->total_us;
        r.status = row->status;
        if (row->reason)
            r.reason = (char *)row->reason;
        r.shard = row->shard;
        r.shards = row->shards;
        s_append (writer, &r, row->payload);
    }
    cr_assert_eq (ps_taplog_writer_destroy (&writer), 0);
}

//  Write the session: worker 0 says hello, creates w, pushes w and b,
//  finishes clock 0 (parked 2 ms on worker 1), leaves; worker 1's pull
//  reply comes without its request (sent before the recording started),
//  its push is rejected, the broker drops 3 records, worker 1 is evicted.
//  One message in the middle does not decode.
static void
s_session (const char *path)
{
    const int HELLO = PSMQ__MSG_TYPE__HELLO, INIT = PSMQ__MSG_TYPE__INIT,
              PULL = PSMQ__MSG_TYPE__PULL, PUSH = PSMQ__MSG_TYPE__PUSH,
              CLOCK = PSMQ__MSG_TYPE__CLOCK, BYE = PSMQ__MSG_TYPE__BYE;
    const row_t rows[] = {
        {1, PSMQ__TAP_KIND__TAP_CONNECT, 0, 0, 0, .reason = "joined at clock 0"},
        {2, REQ, HELLO, 0, 10, .seq = 1},
        {3, REP, HELLO, 0, 50, .seq = 1, .queued_us = 40, .total_us = 40},
        {4, REQ, INIT, 0, 100, .seq = 2, .keys = 1, .bytes = 4000},
        {5, REP, INIT, 0, 225, .seq = 2, .queued_us = 5, .aggregation_us = 120, .total_us = 125},
        {6, REP, PULL, 1, 300, .seq = 7, .keys = 1, .bytes = 4000, .queued_us = 30, .total_us = 30},
        {7, REQ, PUSH, 0, 400, .seq = 3, .keys = 2, .bytes = 4040, .payload = true},
        {8, REP, PUSH, 0, 412, .seq = 3, .queued_us = 12, .total_us = 12},
        {9, REQ, CLOCK, 0, 500, .seq = 4},
        {.malformed = true},
        {10, PSMQ__TAP_KIND__TAP_CLOCK, 0, -1, 2500, .min_clock = 1, .slowest = 1,
         .reason = "slowest clock 0 -> 1"},
        {11, REP, CLOCK, 0, 2510, .seq = 4, .clock = 1, .min_clock = 1, .queued_us = 10,
         .parked_us = 2000, .total_us = 2010},
        {12, PSMQ__TAP_KIND__TAP_REJECT, PUSH, 1, 3000, .seq = 9, .clock = 5, .min_clock = 1,
         .status = PSMQ__ERR_CODE__ERR_CLOCK,
         .reason = "push of clock 5 but worker 1 is at clock 0: \"late\"\n\xff"},
        //  Records 13 to 15 were dropped by the broker
        {16, PSMQ__TAP_KIND__TAP_EVICT, 0, 1, 4000, .min_clock = 1, .dropped = 3,
         .reason = "silent for 10000 ms"},
        {17, REQ, BYE, 0, 5000, .seq = 5, .clock = 1, .min_clock = 1, .dropped = 3},
        {18, REP, BYE, 0, 5008, .seq = 5, .clock = 1, .min_clock = 1, .dropped = 3, .queued_us = 8,
         .total_us = 8},
        {19, PSMQ__TAP_KIND__TAP_DISCONNECT, 0, 0, 5010, .min_clock = -1, .dropped = 3,
         .reason = "bye"},
    };
    s_record_rows (path, rows, sizeof rows / sizeof rows[0]);
}

//  Path of a file under tests/golden
static const char *
s_golden (const char *name, char *path, size_t size)
{
    const char *source = getenv ("PSMQ_SOURCE_DIR");
    snprintf (path, size, "%s/tests/golden/%s", source ? source : "..", name);
    return path;
}

//  The whole of a file, NUL-terminated; its size in *size
static char *
s_slurp (const char *path, size_t *size)
{
    FILE *file = fopen (path, "rb");
    cr_assert (file, "cannot open %s", path);
    char *data = malloc (OUTPUT_MAX);
    cr_assert (data);
    *size = fread (data, 1, OUTPUT_MAX - 1, file);
    data[*size] = 0;
    fclose (file);
    return data;
}

static void
s_spit (const char *path, const char *data, size_t size)
{
    FILE *file = fopen (path, "wb");
    cr_assert (file, "cannot write %s", path);
    cr_assert_eq (fwrite (data, 1, size, file), size);
    fclose (file);
}

//  The bytes of the committed recording (their number in *size), and the
//  path called name in the test's directory where a damaged copy goes
static char *
s_golden_copy (const char *name, char *copy, size_t copy_size, size_t *size)
{
    char recording[512];
    s_golden ("session.pstap", recording, sizeof recording);
    ps_test_path (name, copy, copy_size);
    return s_slurp (recording, size);
}

static bool s_first_line (ps_test_child_t *child, char *buffer, size_t size);

//  ---------------------------------------------------------------- tests

Test (pstap, usage, .timeout = 30)
{
    //  A short session, recorded: its push request (with its tensors), the
    //  reply and a rejected push, one line each
    char recording[512];
    s_golden ("session.pstap", recording, sizeof recording);
    result_t run = s_pstap ("read", "-r", recording, "-f", "type=push", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    const char *expected =
        "22:13:20.000400 -> req  push  w0  seq 3  clock 0  w[1000] b[10]  3.9 KB\n"
        "    + payload: 2 frames, 24 B\n"
        "22:13:20.000412 <- rep  push  w0  seq 3  clock 0  q 12us agg 0us park 0us total 12us  ok"
        "  [request 12us ago]\n"
        "22:13:20.003000 !! rej  push  w1  seq 9  clock 5  clock: push of clock 5 but worker 1 is "
        "at clock 0: \"late\"\\x0a\\xff\n";
    cr_assert_str_eq (run.out, expected);
    s_result_free (&run);

    //  The same for a script: one JSON object per record
    run = s_pstap ("read", "-r", recording, "-f", "type=push", "--json", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    const char *line = run.out;
    json_t *record = s_json_line (&line);
    const char *kind;
    json_int_t worker, bytes;
    cr_assert_eq (
        json_unpack (record, "{s:s, s:I, s:I}", "kind", &kind, "worker", &worker, "bytes", &bytes),
        0);
    cr_assert (strcmp (kind, "req") == 0 && worker == 0 && bytes == 4040);
    json_decref (record);
    cr_assert_eq (s_lines (run.out), 3, "the payload line is for people only");
    s_result_free (&run);
}

Test (pstap, read_prints_a_recording_as_json_lines, .timeout = 30)
{
    char recording[512], expected_path[512];
    s_golden ("session.pstap", recording, sizeof recording);
    s_golden ("session.jsonl", expected_path, sizeof expected_path);
    if (getenv ("PSMQ_UPDATE_GOLDEN"))
        s_session (recording);

    result_t run = s_pstap ("read", "-r", recording, "--json", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    if (getenv ("PSMQ_UPDATE_GOLDEN"))
        s_spit (expected_path, run.out, strlen (run.out));
    size_t size;
    char *expected = s_slurp (expected_path, &size);
    cr_assert_str_eq (run.out, expected, "pstap read --json differs from %s", expected_path);
    //  One line per good record: the malformed one is skipped and said
    cr_assert_eq (s_lines (run.out), 16);
    cr_assert (strstr (run.err, "skipping a malformed record (topic 'req.push.0.')"), "%s",
               run.err);
    cr_assert (strstr (run.err, "skipped 1 malformed records"), "%s", run.err);
    cr_assert (strstr (run.err, "broker dropped 3 records (reader too slow)"), "%s", run.err);
    free (expected);
    s_result_free (&run);
}

Test (pstap, the_recording_format_is_stable)
{
    //  The writer still produces, byte for byte, the committed recording
    char golden[512], fresh[512];
    s_golden ("session.pstap", golden, sizeof golden);
    ps_test_path ("session.pstap", fresh, sizeof fresh);
    s_session (fresh);
    size_t golden_size, fresh_size;
    char *expected = s_slurp (golden, &golden_size);
    char *actual = s_slurp (fresh, &fresh_size);
    cr_assert_eq (fresh_size, golden_size);
    cr_assert_eq (memcmp (actual, expected, golden_size), 0, "%s differs from %s", fresh, golden);
    free (expected);
    free (actual);
    unlink (fresh);
}

Test (pstap, filters_select_records_on_the_read_path, .timeout = 30)
{
    char recording[512];
    s_golden ("session.pstap", recording, sizeof recording);
    struct {
        const char *filter;
        const char *count;
        uint64_t records[8];
        size_t n;
    } cases[] = {
        {"type=push", NULL, {7, 8, 12}, 3}, {"kind=rep", NULL, {3, 5, 6, 8, 11, 18}, 6},
        {"worker=1", NULL, {6, 12, 16}, 3}, {"key=b", NULL, {7}, 1},
        {"lat>1ms", NULL, {11}, 1},         {"status=err", NULL, {12}, 1},
        {"bytes>4000", NULL, {7}, 1},       {"kind=req,rep type=push", NULL, {7, 8}, 2},
        {"kind=req", "2", {2, 4}, 2},       {"kind=evict worker=0", NULL, {0}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result_t run = cases[i].count ? s_pstap ("read", "-r", recording, "--json", "-f",
                                                 cases[i].filter, "-c", cases[i].count, NULL)
                                      : s_pstap ("read", "-r", recording, "--json", "-f",
                                                 cases[i].filter, NULL);
        cr_assert_eq (run.status, 0, "%s: %s", cases[i].filter, run.err);
        uint64_t numbers[32];
        size_t n = s_record_numbers (run.out, numbers, 32);
        cr_assert_eq (n, cases[i].n, "-f '%s': %zu records:\n%s", cases[i].filter, n, run.out);
        for (size_t j = 0; j < n; j++)
            cr_assert_eq (numbers[j], cases[i].records[j], "-f '%s'", cases[i].filter);
        s_result_free (&run);
    }
    result_t run = s_pstap ("read", "-r", recording, "-f", "kind=req lat>>3", NULL);
    cr_assert_eq (run.status, 2);
    cr_assert (strstr (run.err, "pstap read: bad filter:") && strstr (run.err, "lat>>3"), "%s",
               run.err);
    s_result_free (&run);
}

//  The line of text that contains needle
static const char *
s_line_with (const char *text, const char *needle, char *line, size_t size)
{
    const char *at = strstr (text, needle);
    cr_assert (at, "no line with '%s' in:\n%s", needle, text);
    if (*at == '\n')
        at++;
    while (at > text && at[-1] != '\n')
        at--;
    size_t length = strcspn (at, "\n");
    snprintf (line, size, "%.*s", (int)length, at);
    return line;
}

Test (pstap, text_view_pairs_replies_with_their_requests, .timeout = 30)
{
    char recording[512], line[1024];
    s_golden ("session.pstap", recording, sizeof recording);
    result_t run = s_pstap ("read", "-r", recording, NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    //  The push reply 12 us after its request; the clock reply after 2 ms parked
    s_line_with (run.out, "rep  push", line, sizeof line);
    cr_assert (strstr (line, "22:13:20.000412") && strstr (line, "[request 12us ago]"), "%s", line);
    s_line_with (run.out, "rep  clock", line, sizeof line);
    cr_assert (strstr (line, "park 2.0ms") && strstr (line, "[request 2.0ms ago]"), "%s", line);
    //  Worker 1's pull was asked before the recording began
    s_line_with (run.out, "rep  pull", line, sizeof line);
    cr_assert (strstr (line, "[unmatched: request not seen]"), "%s", line);
    //  Requests and events are not annotated; the payload follows its record
    s_line_with (run.out, "-> req  push", line, sizeof line);
    cr_assert (!strstr (line, "[request") && !strstr (line, "[unmatched"), "%s", line);
    const char *payload = strstr (run.out, "-> req  push");
    payload = strchr (payload, '\n') + 1;
    cr_assert (strncmp (payload, "    + payload: 2 frames, 24 B\n", 30) == 0, "%s", payload);
    cr_assert_eq (s_lines (run.out), 17);
    s_result_free (&run);

    //  A file holds every request, so replies shown alone are still paired
    run = s_pstap ("read", "-r", recording, "-f", "kind=rep", NULL);
    cr_assert_eq (run.status, 0);
    cr_assert_eq (s_lines (run.out), 6);
    cr_assert (strstr (run.out, "[request 12us ago]"), "pairing uses every record: %s", run.out);
    s_result_free (&run);
}

Test (pstap, stats_and_top_of_a_recording, .timeout = 30)
{
    char recording[512], line[1024];
    s_golden ("session.pstap", recording, sizeof recording);
    result_t run = s_pstap ("read", "-r", recording, "--view", "stats", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "16 records, broker dropped 3 meanwhile"), "%s", run.out);
    cr_assert (strstr (run.out, "2 seen, 1 connects, 1 disconnects, 1 evictions"), "%s", run.out);
    cr_assert (strstr (run.out, "slowest 1 (w1) at the end, 1 moves"), "%s", run.out);
    s_line_with (run.out, "\npush ", line, sizeof line);
    unsigned long long requests, replies, errors;
    cr_assert_eq (sscanf (line, "push %llu %llu %llu", &requests, &replies, &errors), 3, "%s",
                  line);
    cr_assert (requests == 1 && replies == 1 && errors == 1, "%s", line);
    cr_assert (strstr (line, "3.9 KB"), "push bytes in: %s", line);
    s_result_free (&run);

    run = s_pstap ("read", "-r", recording, "--view", "top", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    //  Worker 0 ends at clock 1, nothing pending; w is hotter than b
    s_line_with (run.out, "\nw0 ", line, sizeof line);
    cr_assert (strstr (line, " 1 ") && strstr (line, "+0"), "%s", line);
    const char *w = strstr (run.out, "\nw    "), *b = strstr (run.out, "\nb    ");
    cr_assert (w && b && w < b, "keys, hottest first:\n%s", run.out);
    s_result_free (&run);

    run = s_pstap ("read", "-r", recording, "--view", "top", "--json", NULL);
    cr_assert_eq (run.status, 2);
    cr_assert (strstr (run.err, "--json applies to --view watch only"), "%s", run.err);
    s_result_free (&run);
}

Test (pstap, a_torn_or_damaged_recording_reads_up_to_the_damage, .timeout = 30)
{
    char copy[512];
    size_t size;
    char *bytes = s_golden_copy ("damaged.pstap", copy, sizeof copy, &size);

    //  A recorder killed in the middle of the last record
    s_spit (copy, bytes, size - 5);
    result_t run = s_pstap ("read", "-r", copy, "--json", NULL);
    cr_assert_eq (run.status, 0, "a torn tail is expected after a kill: %s", run.err);
    cr_assert_eq (s_lines (run.out), 15);
    cr_assert (strstr (run.err, "torn: the file ends after"), "%s", run.err);
    cr_assert (strstr (run.err, "(17 good records before it)"), "%s", run.err);
    s_result_free (&run);

    //  A damaged byte in the middle: everything before it, then an error
    bytes[size / 2] ^= 0x40;
    s_spit (copy, bytes, size);
    run = s_pstap ("read", "-r", copy, "--json", NULL);
    cr_assert_eq (run.status, 1);
    cr_assert (strstr (run.err, "CRC 0x"), "%s", run.err);
    cr_assert_gt (s_lines (run.out), 3);
    s_result_free (&run);

    s_spit (copy, "not a recording at all\n", 23);
    run = s_pstap ("read", "-r", copy, NULL);
    cr_assert_eq (run.status, 1);
    cr_assert (strstr (run.err, "is not a pstap recording"), "%s", run.err);
    s_result_free (&run);
    free (bytes);
    unlink (copy);
}

Test (pstap, reading_a_directory_says_so)
{
    char dir[512];
    ps_test_path ("dir", dir, sizeof dir);
    cr_assert_eq (mkdir (dir, 0755), 0);
    const char *views[] = {"watch", "stats", "top"};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        result_t run = s_pstap ("read", "-r", dir, "--view", views[i], NULL);
        cr_assert_eq (run.status, 1, "--view %s", views[i]);
        char says[600];
        snprintf (says, sizeof says, "pstap read: %s is a directory", dir);
        cr_assert (strstr (run.err, says), "--view %s: %s", views[i], run.err);
        cr_assert_null (strstr (run.err, "bytes"), "%s", run.err);
        s_result_free (&run);
    }
    rmdir (dir);
}

Test (pstap, damaged_recordings_never_crash_any_view, .timeout = 60)
{
    char copy[512];
    size_t size;
    char *original = s_golden_copy ("fuzzed.pstap", copy, sizeof copy, &size);
    char *bytes = malloc (size);
    cr_assert (bytes);
    const char *views[] = {"watch", "stats", "top"};
    uint64_t state = 0x2545f4914f6cdd1dULL;
    for (int round = 0; round < 30; round++) {
        //  A few random bytes changed, past the header so that it still opens;
        //  CRCs are fixed up half of the time so that the records decode
        memcpy (bytes, original, size);
        for (int flips = 0; flips < 3; flips++) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            bytes[PS_TAPLOG_HEADER_BYTES + state % (size - PS_TAPLOG_HEADER_BYTES)] ^=
                (char)(1 + (state >> 32) % 255);
        }
        if (round % 2) {
            for (size_t at = PS_TAPLOG_HEADER_BYTES; at + 8 <= size;) {
                uint32_t length;
                memcpy (&length, bytes + at, 4);
                if (length > size - at - 8)
                    break;
                uint32_t crc = (uint32_t)crc32_z (0, (const Bytef *)bytes + at + 8, length);
                memcpy (bytes + at + 4, &crc, 4);
                at += 8 + length;
            }
        }
        s_spit (copy, bytes, size);
        result_t run = s_pstap ("read", "-r", copy, "--view", views[round % 3], NULL);
        cr_assert (run.status == 0 || run.status == 1, "round %d: status %d: %s", round, run.status,
                   run.err);
        s_result_free (&run);
    }
    free (original);
    free (bytes);
    unlink (copy);
}

//  ------------------------------------------------------ fakes, live

typedef struct {
    void *context;
    void *xpub;    //  plays the broker's tap
    void *router;  //  plays the broker's INFO
    char tap[128]; //  endpoints, with their ports
    char broker[128];
} fake_t;

//  The fakes on host (a loopback address), ephemeral ports
static void
s_fake_open_at (fake_t *self, const char *host)
{
    memset (self, 0, sizeof *self);
    self->context = zmq_ctx_new ();
    self->xpub = zmq_socket (self->context, ZMQ_XPUB);
    self->router = zmq_socket (self->context, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt (self->xpub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->router, ZMQ_LINGER, &linger, sizeof linger);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://%s:*", host);
    cr_assert_eq (zmq_bind (self->xpub, endpoint), 0, "%s", endpoint);
    cr_assert_eq (zmq_bind (self->router, endpoint), 0, "%s", endpoint);
    size_t size = sizeof self->tap;
    zmq_getsockopt (self->xpub, ZMQ_LAST_ENDPOINT, self->tap, &size);
    size = sizeof self->broker;
    zmq_getsockopt (self->router, ZMQ_LAST_ENDPOINT, self->broker, &size);
}

static void
s_fake_open (fake_t *self)
{
    s_fake_open_at (self, "127.0.0.1");
}

static void
s_fake_close (fake_t *self)
{
    zmq_close (self->xpub);
    zmq_close (self->router);
    zmq_ctx_term (self->context);
}

//  Wait for a subscription to reach the tap: records sent before it are lost
static void
s_fake_wait_subscriber (fake_t *self)
{
    zmq_pollitem_t item = {self->xpub, 0, ZMQ_POLLIN, 0};
    cr_assert_eq (zmq_poll (&item, 1, CHILD_MS), 1, "pstap did not subscribe within %d ms",
                  CHILD_MS);
    char message[64];
    cr_assert_geq (zmq_recv (self->xpub, message, sizeof message, 0), 1);
    cr_assert_eq (message[0], 1, "a subscription");
}

static void
s_fake_publish (fake_t *self, const ps_tap_record_t *record)
{
    char topic[PS_TAP_TOPIC_MAX];
    size_t size = ps_codec_tap_topic (record->kind, record->type, record->worker, false, topic);
    zmq_msg_t msg;
    cr_assert_eq (ps_codec_encode_tap (record, &msg), 0);
    cr_assert_eq (zmq_send (self->xpub, topic, size, ZMQ_SNDMORE), (int)size);
    cr_assert_geq (zmq_msg_send (&msg, self->xpub, 0), 0);
}

//  Answer one INFO request with json, within CHILD_MS
static void
s_fake_info (fake_t *self, const char *json)
{
    zmq_pollitem_t item = {self->router, 0, ZMQ_POLLIN, 0};
    cr_assert_eq (zmq_poll (&item, 1, CHILD_MS), 1, "no INFO request within %d ms", CHILD_MS);
    zmq_msg_t id, request;
    zmq_msg_init (&id);
    zmq_msg_init (&request);
    cr_assert_geq (zmq_msg_recv (&id, self->router, 0), 1);
    cr_assert_geq (zmq_msg_recv (&request, self->router, 0), 0);
    ps_codec_t *codec = ps_codec_new ();
    ps_problem_t problem;
    ps_envelope_t *envelope =
        ps_codec_decode (codec, zmq_msg_data (&request), zmq_msg_size (&request), &problem);
    cr_assert (envelope, "%s", problem.message);
    cr_assert_eq (envelope->type, PSMQ__MSG_TYPE__INFO);
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, envelope);
    reply.info = (char *)json;
    zmq_msg_t encoded;
    cr_assert_eq (ps_codec_encode (&reply, &encoded), 0);
    zmq_msg_send (&id, self->router, ZMQ_SNDMORE);
    zmq_msg_send (&encoded, self->router, 0);
    zmq_msg_close (&request);
    ps_codec_destroy (&codec);
}

//  A live-looking record
static ps_tap_record_t
s_live (uint64_t number, int kind, int type, int64_t worker, uint64_t dropped)
{
    ps_tap_record_t record = s_base (number, kind, type, worker, number * 100);
    record.seq = number;
    record.dropped = dropped;
    return record;
}

Test (pstap, watch_prints_live_records_and_warns_of_drops, .timeout = 30)
{
    fake_t fake;
    s_fake_open (&fake);
    ps_test_child_t child = s_pstap_start ("watch", "--tap", fake.tap, "-c", "3", "--json", NULL);
    s_fake_wait_subscriber (&fake);

    ps_tap_record_t record = s_live (1, REQ, PSMQ__MSG_TYPE__PUSH, 2, 0);
    s_fake_publish (&fake, &record);
    //  Garbage is skipped and does not count toward -c
    zmq_send (fake.xpub, "req.push.2.", 11, ZMQ_SNDMORE);
    zmq_send (fake.xpub, "\xff\xff\xff", 3, 0);
    //  The broker dropped 12 records between these two
    record = s_live (2, REP, PSMQ__MSG_TYPE__PUSH, 2, 0);
    s_fake_publish (&fake, &record);
    record = s_live (15, REQ, PSMQ__MSG_TYPE__PULL, 2, 12);
    s_fake_publish (&fake, &record);
    record = s_live (16, REP, PSMQ__MSG_TYPE__PULL, 2, 12);
    s_fake_publish (&fake, &record);

    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    uint64_t numbers[8];
    cr_assert_eq (s_record_numbers (run.out, numbers, 8), 3, "-c 3 stops after 3:\n%s", run.out);
    cr_assert (numbers[0] == 1 && numbers[1] == 2 && numbers[2] == 15);
    cr_assert (strstr (run.err, "pstap: broker dropped 12 records (reader too slow)"), "%s",
               run.err);
    cr_assert (strstr (run.err, "skipped 1 malformed records"), "%s", run.err);
    s_result_free (&run);
    s_fake_close (&fake);
}

Test (pstap, watch_finds_the_tap_through_the_brokers_info, .timeout = 30)
{
    fake_t fake;
    s_fake_open (&fake);
    ps_test_child_t child =
        s_pstap_start ("watch", "--broker", fake.broker, "-c", "2", "-f", "worker=4", NULL);
    char info[512];
    snprintf (info, sizeof info, "{\"endpoint\":\"%s\",\"tap\":\"%s\"}", fake.broker, fake.tap);
    s_fake_info (&fake, info);
    s_fake_wait_subscriber (&fake);
    //  The filter subscribed by topic: the broker would not even send w3's
    ps_tap_record_t record = s_live (1, REQ, PSMQ__MSG_TYPE__CLOCK, 4, 0);
    s_fake_publish (&fake, &record);
    record = s_live (2, REP, PSMQ__MSG_TYPE__CLOCK, 4, 0);
    record.seq = 1;
    record.total_us = 1500;
    s_fake_publish (&fake, &record);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert_eq (s_lines (run.out), 2, "%s", run.out);
    cr_assert (strstr (run.out, "-> req  clock w4"), "%s", run.out);
    cr_assert (strstr (run.out, "total 1.5ms  ok  [request 100us ago]"), "%s", run.out);
    s_result_free (&run);
    s_fake_close (&fake);
}

//  An INFO reply with every field the broker sends, in a known state:
//  2 of 3 workers live, w1 slowest and holding w0's clock parked
static const char *s_info_json =
    "{\"endpoint\":\"tcp://0.0.0.0:5555\",\"protocol\":1,\"uptime_s\":42.5,\"world\":3,"
    "\"staleness\":0,\"live\":2,\"min_clock\":7,\"max_clock\":9,\"slowest\":1,\"keys\":2,"
    "\"optimizer\":\"adam\",\"lr\":0.001,\"clocks\":[9,7,-1],"
    "\"messages_in\":{\"hello\":3,\"init\":4,\"push\":20,\"pull\":21,\"clock\":19,"
    "\"heartbeat\":5,\"bye\":1,\"info\":2,\"error\":0},"
    "\"replies_out\":{\"hello\":3,\"init\":4,\"push\":20,\"pull\":21,\"clock\":18,"
    "\"heartbeat\":0,\"bye\":1,\"info\":1,\"error\":0},"
    "\"bytes_in\":1052672,\"bytes_out\":2097152,\"rejected\":1,\"evicted\":0,\"parked_now\":1,"
    "\"parked_total\":6,\"optimizer_steps\":38,\"pending_gradients\":0,\"aggregator_queue\":0,"
    "\"tap\":\"ipc:///tmp/psmq-tap-5555.ipc\",\"tap_subscriptions\":2,\"tap_records\":1234,"
    "\"tap_dropped\":5,\"seen\":3,"
    "\"bytes_in_by_type\":{\"hello\":0,\"init\":4096,\"push\":1048576,\"pull\":0,\"clock\":0,"
    "\"heartbeat\":0,\"bye\":0,\"info\":0,\"error\":0},"
    "\"bytes_out_by_type\":{\"hello\":0,\"init\":0,\"push\":0,\"pull\":2097152,\"clock\":0,"
    "\"heartbeat\":0,\"bye\":0,\"info\":0,\"error\":0},"
    "\"workers\":[{\"rank\":0,\"state\":\"live\",\"clock\":9,\"parked\":1,\"messages_in\":40,"
    "\"last_seen_ms\":3},{\"rank\":1,\"state\":\"live\",\"clock\":7,\"parked\":0,"
    "\"messages_in\":30,\"last_seen_ms\":800},{\"rank\":2,\"state\":\"gone\",\"clock\":4,"
    "\"parked\":0,\"messages_in\":9,\"last_seen_ms\":20000}],"
    "\"parked\":[{\"worker\":0,\"type\":\"clock\",\"clock\":9,\"waiting_ms\":812}]}";

//  pstap with args against the fake broker, which answers INFO once
static result_t
s_against_info (fake_t *fake, const char *command, const char *extra)
{
    ps_test_child_t child = s_pstap_start (command, "--broker", fake->broker, extra, NULL);
    s_fake_info (fake, s_info_json);
    return s_finish (&child, CHILD_MS);
}

Test (pstap, stats_and_clock_read_the_brokers_info, .timeout = 30)
{
    fake_t fake;
    s_fake_open (&fake);
    result_t run = s_against_info (&fake, "stats", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    const char *expected[] = {
        "uptime      42.5 s\n",
        "world       3 workers, BSP (staleness 0)\n",
        "workers     2 live, 3 ever seen, 0 evicted\n",
        "clock       slowest 7 (w1), fastest 9\n",
        "queues      aggregator 0, parked 1 now (6 in all), 0 pending gradients\n",
        "store       2 keys, 38 optimizer steps; default optimizer adam lr 0.001, used when an "
        "INIT names none\n",
        "traffic     1.0 MB in, 2.0 MB out, 1 rejected\n",
        "tap         ipc:///tmp/psmq-tap-5555.ipc, 2 subscriptions, 1234 records, 5 dropped\n",
        "push               20         20       1.0 MB          0 B\n",
        "pull               21         21          0 B       2.0 MB\n",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        cr_assert (strstr (run.out, expected[i]), "expected '%s' in:\n%s", expected[i], run.out);
    cr_assert_null (strstr (run.out, "error "), "types never seen are left out:\n%s", run.out);
    s_result_free (&run);

    run = s_against_info (&fake, "stats", "--json");
    cr_assert_eq (run.status, 0);
    cr_assert_eq (strlen (run.out), strlen (s_info_json) + 1);
    cr_assert_eq (strncmp (run.out, s_info_json, strlen (s_info_json)), 0, "passed through");
    s_result_free (&run);

    run = s_against_info (&fake, "clock", "-n1");
    cr_assert_eq (run.status, 0, "%s", run.err);
    char line[1024];
    cr_assert (strstr (run.out, "BSP staleness 0  slowest 7  fastest 9  spread 2"), "%s", run.out);
    s_line_with (run.out, "\nw0 ", line, sizeof line);
    cr_assert (strstr (line, "|##  ") && strstr (line, "+2") && strstr (line, "1 parked"), "%s",
               line);
    s_line_with (run.out, "\nw1 ", line, sizeof line);
    cr_assert (strstr (line, "<- slowest: 1 parked requests of others wait"), "%s", line);
    s_line_with (run.out, "\nw2 ", line, sizeof line);
    cr_assert (strstr (line, "absent or gone"), "%s", line);
    cr_assert (strstr (run.out, "  w0     clock  clock 9        waiting 812.0ms"), "%s", run.out);
    s_result_free (&run);
    s_fake_close (&fake);
}

Test (pstap, record_writes_what_read_shows, .timeout = 30)
{
    char file[512];
    ps_test_path ("recorded.pstap", file, sizeof file);
    fake_t fake;
    s_fake_open (&fake);
    ps_test_child_t child =
        s_pstap_start ("record", "--tap", fake.tap, "-w", file, "--payload", NULL);
    s_fake_wait_subscriber (&fake);
    ps_tap_record_t record = s_live (1, REQ, PSMQ__MSG_TYPE__PUSH, 0, 0);
    s_fake_publish (&fake, &record);
    //  Its payload copy, with one tensor frame
    zmq_msg_t encoded;
    ps_codec_encode_tap (&record, &encoded);
    zmq_send (fake.xpub, "payload.req.push.0.", 19, ZMQ_SNDMORE);
    zmq_msg_send (&encoded, fake.xpub, ZMQ_SNDMORE);
    zmq_send (fake.xpub, s_gradient, sizeof s_gradient, 0);
    record = s_live (2, REP, PSMQ__MSG_TYPE__PUSH, 0, 0);
    s_fake_publish (&fake, &record);

    //  Stop it with SIGTERM once both records are in the file
    int64_t deadline = zclock_mono () + CHILD_MS;
    uint64_t records = 0;
    while (records < 3 && zclock_mono () < deadline) {
        zclock_sleep (20);
        ps_taplog_reader_t *reader = ps_taplog_reader_new (file, NULL);
        ps_taplog_entry_t entry;
        while (reader && ps_taplog_reader_next (reader, &entry, NULL) == PS_TAPLOG_RECORD)
            ;
        records = reader ? ps_taplog_reader_records (reader) : 0;
        ps_taplog_reader_destroy (&reader);
    }
    cr_assert_eq (records, 3, "two records and a payload message in the file");
    kill (child.pid, SIGTERM);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "stops cleanly on SIGTERM: %s", run.err);
    cr_assert (strstr (run.err, "2 records (1 payload messages)"), "%s", run.err);
    s_result_free (&run);

    run = s_pstap ("read", "-r", file, NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert_eq (s_lines (run.out), 3, "%s", run.out);
    cr_assert (strstr (run.out, "    + payload: 1 frame, 16 B\n"), "%s", run.out);
    s_result_free (&run);
    unlink (file);
    s_fake_close (&fake);
}

Test (pstap, stats_from_the_tap_alone_count_one_interval, .timeout = 30)
{
    fake_t fake;
    s_fake_open (&fake);
    ps_test_child_t child =
        s_pstap_start ("stats", "--tap", fake.tap, "--interval-ms", "500", NULL);
    s_fake_wait_subscriber (&fake);
    for (uint64_t i = 1; i <= 4; i++) {
        ps_tap_record_t record = s_live (i, i % 2 ? REQ : REP, PSMQ__MSG_TYPE__PULL, 3, 0);
        record.seq = (i + 1) / 2;
        s_fake_publish (&fake, &record);
    }
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "4 records"), "%s", run.out);
    char line[1024];
    s_line_with (run.out, "\npull ", line, sizeof line);
    unsigned long long requests, replies;
    cr_assert_eq (sscanf (line, "pull %llu %llu", &requests, &replies), 2, "%s", line);
    cr_assert (requests == 2 && replies == 2, "%s", line);
    s_result_free (&run);
    s_fake_close (&fake);
}

Test (pstap, watch_stops_cleanly_on_sigint, .timeout = 30)
{
    fake_t fake;
    s_fake_open (&fake);
    ps_test_child_t child = s_pstap_start ("watch", "--tap", fake.tap, NULL);
    s_fake_wait_subscriber (&fake);
    //  The subscription may arrive before pstap has seen its handshake
    //  complete, and a signal then stops it before it watched (exit 1):
    //  wait until it prints a record, so the signal comes while it watches
    ps_tap_record_t record = s_live (1, REQ, PSMQ__MSG_TYPE__PUSH, 2, 0);
    s_fake_publish (&fake, &record);
    char line[1024];
    bool watching = s_first_line (&child, line, sizeof line);
    kill (child.pid, SIGINT);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert (watching, "pstap printed no record within %d ms", CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    s_result_free (&run);
    s_fake_close (&fake);
}

Test (pstap, unreachable_broker_or_tap_is_a_clear_error_in_time, .timeout = 30)
{
    //  A port nobody listens on, and nobody can start to while we hold it
    fake_t fake;
    s_fake_open (&fake);
    char closed[128];
    int holder = ps_test_closed_endpoint (closed, sizeof closed);

    struct {
        const char *command;
        const char *option;
        const char *endpoint;
        const char *says;
        const char *timeout_ms; //  --timeout-ms, NULL: 300
    } cases[] = {
        {"watch", "--broker", closed, "pstap watch: cannot reach the broker at", NULL},
        {"stats", "--broker", closed, "pstap stats: cannot reach the broker at", NULL},
        {"clock", "--broker", closed, "pstap clock: cannot reach the broker at", NULL},
        {"top", "--broker", closed, "pstap top: cannot reach the broker at", NULL},
        {"watch", "--tap", closed, "pstap watch: cannot reach the tap at", NULL},
        {"record", "--tap", closed, "pstap record: cannot reach the tap at", NULL},
        {"watch", "--tap", "ipc:///nonexistent/psmq-tap.ipc", "cannot reach the tap at", NULL},
        {"watch", "--tap", "bogus", "pstap watch: bad tap endpoint 'bogus'", NULL},
        //  Here the TCP connection must be made within the timeout, which
        //  a loaded machine may not do in 300 ms
        {"watch", "--tap", fake.broker, "answers but is not a tap", "2000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *timeout = cases[i].timeout_ms ? cases[i].timeout_ms : "300";
        int64_t started = zclock_mono ();
        result_t run = strcmp (cases[i].command, "record") == 0
                           ? s_pstap ("record", cases[i].option, cases[i].endpoint, "-w",
                                      "/dev/null", "--timeout-ms", timeout, NULL)
                           : s_pstap (cases[i].command, cases[i].option, cases[i].endpoint,
                                      "--timeout-ms", timeout, NULL);
        int64_t took = zclock_mono () - started;
        cr_assert_eq (run.status, 1, "%s %s %s: %s", cases[i].command, cases[i].option,
                      cases[i].endpoint, run.err);
        cr_assert (strstr (run.err, cases[i].says), "expected '%s' in: %s", cases[i].says, run.err);
        if (strstr (cases[i].says, "cannot reach"))
            cr_assert (strstr (run.err, "within 300 ms"), "%s", run.err);
        //  Well short of the 3 s default, counting pstap's start and exit
        cr_assert_lt (took, ps_test_number (timeout) + 2700, "%s took %lld ms", cases[i].command,
                      (long long)took);
        s_result_free (&run);
    }
    close (holder);

    //  A broker without a tap says so
    ps_test_child_t child = s_pstap_start ("watch", "--broker", fake.broker, NULL);
    s_fake_info (&fake, "{\"tap\":\"\"}");
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 1);
    cr_assert (strstr (run.err, "runs without a tap (--no-tap)"), "%s", run.err);
    s_result_free (&run);
    s_fake_close (&fake);
}

Test (pstap, help_for_every_command_and_bad_arguments, .timeout = 30)
{
    //  The cases without a broker must not find one in the environment
    unsetenv ("PSMQ_BROKER");
    const char *commands[] = {"watch", "stats", "top", "clock", "record", "read"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        result_t run = s_pstap (commands[i], "--help", NULL);
        cr_assert_eq (run.status, 0, "%s --help", commands[i]);
        //  help2man makes the man page's SYNOPSIS of lines that begin so
        char usage[64];
        snprintf (usage, sizeof usage, "Usage: pstap %s ", commands[i]);
        cr_assert_eq (strncmp (run.out, usage, strlen (usage)), 0, "%s", run.out);
        cr_assert (strstr (run.out, "-h, --help"), "%s", run.out);
        //  Every command that takes --broker says where it comes from without it
        bool takes_broker = strcmp (commands[i], "read") != 0;
        cr_assert_eq (strstr (run.out, "PSMQ_BROKER") != NULL, takes_broker, "%s", run.out);
        //  and where its keys come from without --curve-secret and --broker-key
        cr_assert_eq (strstr (run.out, "PSMQ_CURVE_SECRET") != NULL, takes_broker, "%s", run.out);
        s_result_free (&run);
    }
    result_t run = s_pstap ("--help", NULL);
    cr_assert_eq (run.status, 0);
    cr_assert_eq (strncmp (run.out, "Usage: pstap COMMAND ", 21), 0, "%s", run.out);
    cr_assert (strstr (run.out, "PSMQ_BROKER") && strstr (run.out, "PSMQ_CURVE_SECRET"), "%s",
               run.out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        cr_assert (strstr (run.out, commands[i]), "%s", run.out);
    s_result_free (&run);

    struct {
        const char *args[6];
        const char *says;
    } bad[] = {
        {{NULL}, "Usage: pstap COMMAND"},
        {{"frobnicate"}, "unknown command 'frobnicate'"},
        {{"watch"}, "pstap watch: --broker (or PSMQ_BROKER) or --tap is required"},
        {{"stats", "--json"}, "pstap stats: --broker (or PSMQ_BROKER) or --tap is required"},
        {{"clock"}, "pstap clock: --broker (or PSMQ_BROKER) is required"},
        {{"clock", "--tap", "tcp://x:1"}, "pstap clock: --tap does not apply here"},
        {{"watch", "--broker", "a", "--tap", "b"}, "give --broker or --tap, not both"},
        {{"watch", "--tap", "x", "-c", "0"}, "--count '0' must be a whole number from 1"},
        {{"watch", "--tap", "x", "--timeout-ms", "soon"}, "--timeout-ms 'soon'"},
        {{"watch", "--tap", "x", "-f", "kind=bogus"}, "bad filter: unknown kind 'bogus'"},
        {{"watch", "--tap", "x", "--frob"}, "unknown option '--frob'"},
        {{"watch", "--tap"}, "missing value for '--tap'"},
        {{"watch", "--tap", "x", "extra"}, "unexpected argument 'extra'"},
        {{"record", "--tap", "x"}, "pstap record: -w FILE is required"},
        {{"read", "-r", "f", "--view", "pie"}, "--view 'pie' is not one of watch, stats, top"},
        {{"read"}, "pstap read: -r FILE is required"},
        {{"read", "-r", "f", "--broker", "x"}, "--broker does not apply here"},
        {{"watch", "--tap", "x", "--member-only"}, "--member-only goes with --broker"},
        {{"read", "-r", "f", "--member-only"}, "--member-only does not apply here"},
        {{"watch", "--broker", "tcp://a:1,,tcp://b:2"},
         "--broker 'tcp://a:1,,tcp://b:2' has an "
         "empty endpoint"},
        {{"stats", "--tap", "x,"}, "--tap 'x,' has an empty endpoint"},
        //  A value left out: getopt would take the next option as the value
        {{"clock", "--broker", "-n", "1"},
         "pstap clock: --broker '-n' looks like an option: is the value of --broker missing?"},
        {{"watch", "--tap", "-c", "3"}, "pstap watch: --tap '-c' looks like an option"},
        {{"watch", "-b", "--json"}, "pstap watch: --broker '--json' looks like an option"},
        {{"watch", "--tap", "x", "-f", "-c", "3"}, "--filter '-c' looks like an option"},
        {{"record", "--tap", "x", "-w", "-c", "3"}, "--write '-c' looks like an option"},
        {{"read", "-r", "--json"}, "--read '--json' looks like an option"},
        {{"watch", "--tap", "x", "-c", "many"}, "--count 'many' is not a whole number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *const *a = bad[i].args;
        run = s_pstap (a[0], a[1], a[2], a[3], a[4], a[5], NULL);
        cr_assert_eq (run.status, 2, "case %zu (%s): %s", i, bad[i].says, run.err);
        cr_assert (strstr (run.err, bad[i].says), "expected '%s' in: %s", bad[i].says, run.err);
        s_result_free (&run);
    }
}

//  ------------------------------------------------------- real broker

//  Subscriptions the broker counts on its tap, from its INFO
static int64_t
s_tap_subscriptions (ps_broker_t *broker)
{
    char *info = ps_broker_info (broker);
    cr_assert (info);
    json_error_t error;
    json_t *object = json_loads (info, 0, &error);
    cr_assert (object, "INFO is JSON: %s: %s", info, error.text);
    json_int_t subscriptions = -1;
    json_unpack (object, "{s:I}", "tap_subscriptions", &subscriptions);
    json_decref (object);
    free (info);
    return subscriptions;
}

//  Wait until the broker counts a tap subscription (pstap is listening)
static void
s_wait_tap_subscription (ps_broker_t *broker)
{
    int64_t deadline = zclock_mono () + CHILD_MS;
    int64_t subscriptions = 0;
    while (subscriptions < 1 && zclock_mono () < deadline) {
        subscriptions = s_tap_subscriptions (broker);
        if (subscriptions < 1)
            zclock_sleep (10);
    }
    cr_assert_geq (subscriptions, 1, "pstap did not subscribe to the broker's tap in %d ms",
                   CHILD_MS);
}

Test (pstap, watches_and_counts_a_real_broker, .timeout = 60)
{
    char endpoint[128];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    ps_test_child_t child =
        s_pstap_start ("watch", "--broker", endpoint, "--json", "-c", "12", "-f",
                       "kind=req,rep type=hello,init,push,pull,clock,bye", NULL);
    s_wait_tap_subscription (broker);

    int status = PS_OK;
    ps_worker_t *worker = ps_test_connect (endpoint, 0, 1, PS_TEST_WAIT_MS, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    float values[4] = {1, 2, 3, 4};
    ps_tensor_t tensor = {"weights", values, 4};
    cr_assert_eq (ps_worker_init (worker, "weights", 4, values, NULL), PS_OK);
    cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK);
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK);
    cr_assert_eq (ps_worker_clock (worker), PS_OK);
    cr_assert_eq (ps_worker_close (&worker), PS_OK);

    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    const char *expected[12] = {"req hello", "rep hello", "req init", "rep init",
                                "req push",  "rep push",  "req pull", "rep pull",
                                "req clock", "rep clock", "req bye",  "rep bye"};
    const char *line = run.out;
    for (size_t i = 0; i < 12; i++) {
        cr_assert (*line, "record %zu missing:\n%s", i, run.out);
        json_t *record = s_json_line (&line);
        const char *kind, *type;
        cr_assert_eq (json_unpack (record, "{s:s, s:s}", "kind", &kind, "type", &type), 0);
        char seen[64];
        snprintf (seen, sizeof seen, "%s %s", kind, type);
        cr_assert_str_eq (seen, expected[i], "record %zu", i);
        //  The HELLO request comes before the connection is a rank: null
        json_t *rank_value = json_object_get (record, "worker");
        json_int_t rank = json_is_integer (rank_value) ? json_integer_value (rank_value) : -1;
        cr_assert_eq (rank, strcmp (seen, "req hello") == 0 ? -1 : 0, "%s", seen);
        if (strcmp (seen, "req push") == 0 || strcmp (seen, "rep pull") == 0) {
            const char *key;
            json_int_t count, bytes;
            cr_assert_eq (json_unpack (record, "{s:[{s:s, s:I}], s:I}", "keys", "key", &key,
                                       "count", &count, "bytes", &bytes),
                          0, "%s", seen);
            cr_assert_str_eq (key, "weights");
            cr_assert_eq (count, 4);
            cr_assert_eq (bytes, 16);
        }
        json_decref (record);
    }
    cr_assert_eq (*line, 0, "-c 12 stops after 12");
    s_result_free (&run);

    run = s_pstap ("stats", "--broker", endpoint, NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "workers     0 live, 1 ever seen, 0 evicted"), "%s", run.out);
    cr_assert (strstr (run.out, "clock       no live workers"), "%s", run.out);
    char row[1024];
    s_line_with (run.out, "\npush ", row, sizeof row);
    cr_assert (strstr (row, " 1 ") && strstr (row, "16 B"), "%s", row);
    s_result_free (&run);
    ps_broker_destroy (&broker);
}

Test (pstap, the_broker_comes_from_PSMQ_BROKER_when_not_given, .timeout = 60)
{
    char endpoint[128];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    setenv ("PSMQ_BROKER", endpoint, 1);

    //  watch finds the tap through the INFO of the broker in PSMQ_BROKER
    ps_test_child_t child =
        s_pstap_start ("watch", "--json", "-c", "2", "-f", "kind=req,rep type=hello", NULL);
    s_wait_tap_subscription (broker);
    int status = PS_OK;
    ps_worker_t *worker = ps_test_connect (endpoint, 0, 1, PS_TEST_WAIT_MS, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    cr_assert_eq (ps_worker_close (&worker), PS_OK);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert_eq (s_lines (run.out), 2, "%s", run.out);
    cr_assert (strstr (run.out, "\"hello\""), "%s", run.out);
    s_result_free (&run);

    //  stats and clock read its INFO: the worker that came and went
    run = s_pstap ("stats", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "workers     0 live, 1 ever seen"), "%s", run.out);
    s_result_free (&run);
    run = s_pstap ("clock", "-n", "1", "--batch", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    s_result_free (&run);

    //  --broker wins over the variable, which is then not even checked
    setenv ("PSMQ_BROKER", "tcp://127.0.0.1:1,,", 1);
    run = s_pstap ("stats", "--broker", endpoint, NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "1 ever seen"), "%s", run.out);
    s_result_free (&run);
    //  A bad value is named as the variable's
    run = s_pstap ("stats", NULL);
    cr_assert_eq (run.status, 2);
    cr_assert (strstr (run.err, "pstap stats: PSMQ_BROKER 'tcp://127.0.0.1:1,,' has an empty"),
               "%s", run.err);
    s_result_free (&run);
    //  --tap alone is not joined by the variable's broker ("not both")
    run = s_pstap ("watch", "--tap", "tcp://127.0.0.1:1", "--member-only", NULL);
    cr_assert_eq (run.status, 2);
    cr_assert (strstr (run.err, "--member-only goes with --broker"), "%s", run.err);
    s_result_free (&run);
    //  Set but empty is not set, as for psworker
    setenv ("PSMQ_BROKER", "", 1);
    run = s_pstap ("clock", NULL);
    cr_assert_eq (run.status, 2);
    cr_assert (strstr (run.err, "pstap clock: --broker (or PSMQ_BROKER) is required"), "%s",
               run.err);
    s_result_free (&run);
    ps_broker_destroy (&broker);
}

//  ------------------------------------------------------- broker groups

//  Worker 0 of a group of two brokers sends seq 3 to both over one peer
//  id; broker 1 answers first. Broker 1 has dropped 5 records before the
//  recording began, and 2 more in it; broker 0 none. Each broker's
//  slowest clock is 4 + its shard.
static void
s_group_session (const char *path)
{
    const int PULL = PSMQ__MSG_TYPE__PULL, CLOCK = PSMQ__TAP_KIND__TAP_CLOCK;
    const row_t rows[] = {
        {1, REQ, PULL, 0, 0, .seq = 3, .min_clock = 4, .shard = 0, .shards = 2},
        {1, REQ, PULL, 0, 100, .seq = 3, .min_clock = 5, .shard = 1, .shards = 2, .dropped = 5},
        {2, REP, PULL, 0, 150, .seq = 3, .min_clock = 5, .shard = 1, .shards = 2, .dropped = 5,
         .total_us = 50},
        {2, REP, PULL, 0, 400, .seq = 3, .min_clock = 4, .shard = 0, .shards = 2, .total_us = 400},
        {3, CLOCK, 0, 0, 500, .min_clock = 4, .shard = 0, .shards = 2, .slowest = 0},
        {10, CLOCK, 0, 0, 600, .min_clock = 5, .shard = 1, .shards = 2, .dropped = 7, .slowest = 0},
    };
    s_record_rows (path, rows, sizeof rows / sizeof rows[0]);
}

//  Occurrences of needle in text
static size_t
s_count (const char *text, const char *needle)
{
    size_t count = 0;
    for (const char *at = strstr (text, needle); at; at = strstr (at + 1, needle))
        count++;
    return count;
}

Test (pstap, a_group_recording_is_paired_and_counted_per_broker, .timeout = 30)
{
    char recording[512], line[1024];
    ps_test_path ("group.pstap", recording, sizeof recording);
    s_group_session (recording);

    //  Each reply finds the request its own broker received
    result_t run = s_pstap ("read", "-r", recording, NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert_eq (s_lines (run.out), 6, "%s", run.out);
    s_line_with (run.out, "b1/2 <- rep  pull", line, sizeof line);
    cr_assert (strstr (line, "[request 50us ago]"), "%s", line);
    s_line_with (run.out, "b0/2 <- rep  pull", line, sizeof line);
    cr_assert (strstr (line, "[request 400us ago]"), "%s", line);
    //  Each broker's drop count is its own: broker 1 dropped 2 in the recording
    cr_assert_eq (s_count (run.err, "dropped"), 1, "%s", run.err);
    cr_assert (strstr (run.err, "pstap: broker b1/2 dropped 2 records (reader too slow)"), "%s",
               run.err);
    s_result_free (&run);

    run = s_pstap ("read", "-r", recording, "--view", "stats", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "6 records, broker dropped 2 meanwhile"), "%s", run.out);
    cr_assert (strstr (run.out, "slowest 4 (w0) at the end"), "the broker furthest behind:\n%s",
               run.out);
    s_line_with (run.out, "broker b0/2", line, sizeof line);
    cr_assert (strstr (line, " 3 records, dropped 0 meanwhile, slowest 4 (w0)"), "%s", line);
    s_line_with (run.out, "broker b1/2", line, sizeof line);
    cr_assert (strstr (line, " 3 records, dropped 2 meanwhile, slowest 5 (w0)"), "%s", line);
    s_result_free (&run);

    run = s_pstap ("read", "-r", recording, "--view", "top", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    s_line_with (run.out, "\nb1/2 ", line, sizeof line);
    unsigned long long dropped = 0;
    cr_assert (sscanf (line + strlen (line) - 8, "%llu", &dropped) == 1 && dropped == 2, "%s",
               line);
    s_result_free (&run);

    //  JSON names the broker; shard= picks one
    run = s_pstap ("read", "-r", recording, "--json", "-f", "shard=1 kind=rep", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert_eq (s_lines (run.out), 1, "%s", run.out);
    const char *output = run.out;
    json_t *record = s_json_line (&output);
    json_int_t total_us, shard, shards;
    cr_assert_eq (json_unpack (record, "{s:I, s:I, s:I}", "total_us", &total_us, "shard", &shard,
                               "shards", &shards),
                  0, "%s", run.out);
    cr_assert (total_us == 50 && shard == 1 && shards == 2, "%s", run.out);
    json_decref (record);
    s_result_free (&run);
    unlink (recording);
}

//  Run pstap watch -c 1 against the fake broker, whose INFO says info,
//  giving up on a connection after timeout_ms (NULL: pstap's default);
//  publish a pull request of w2 once it subscribed to the tap it found
//  there. What it printed, once it exited 0
static result_t
s_watch_one_pull (fake_t *fake, const char *info, const char *timeout_ms)
{
    //  A NULL timeout_ms ends the arguments before "--timeout-ms"
    ps_test_child_t child = s_pstap_start ("watch", "--broker", fake->broker, "-c", "1",
                                           timeout_ms ? "--timeout-ms" : NULL, timeout_ms, NULL);
    s_fake_info (fake, info);
    s_fake_wait_subscriber (fake);
    ps_tap_record_t record = s_live (1, REQ, PSMQ__MSG_TYPE__PULL, 2, 0);
    s_fake_publish (fake, &record);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    return run;
}

//  A tap's records come from one broker, or the tap is not that broker's
Test (pstap, a_tap_that_carries_another_brokers_records_is_named, .timeout = 30)
{
    fake_t fake;
    s_fake_open (&fake);
    //  INFO says shard 1 of 2, group not known yet; the tap says a broker alone
    char info[512];
    snprintf (info, sizeof info,
              "{\"endpoint\":\"%s\",\"tap\":\"%s\",\"shard\":1,\"shards\":2,\"group\":[]}",
              fake.broker, fake.tap);
    result_t run = s_watch_one_pull (&fake, info, NULL);
    cr_assert_eq (s_lines (run.out), 1, "%s", run.out);
    cr_assert (strstr (run.err, "is shard 1 of 2; the other members are not known until a worker "
                                "joins: give --broker"),
               "%s", run.err);
    cr_assert (strstr (run.err, "carries the records of shard 0 of 1, not of shard 1 of 2"), "%s",
               run.err);
    cr_assert (strstr (run.err, "--tap tcp://"), "says how to fix it: %s", run.err);
    s_result_free (&run);
    s_fake_close (&fake);
}

//  Three brokers of a group, in-process, each with its own tap, and a raw
//  DEALER to each, as a worker of the group has. One member may be played
//  by a ROUTER that never answers.
#define GROUP 3

typedef struct {
    ps_broker_t *brokers[GROUP]; //  NULL for the silent member
    char endpoints[GROUP][128];  //  tcp://127.0.0.1:PORT
    char list[GROUP * 128];      //  all of them, comma-separated
    ps_test_raw_t peers[GROUP];  //  a DEALER to each real broker
    void *context;               //  for the silent member
    void *silent;                //  a ROUTER that never answers, or NULL
    uint64_t seq;                //  of the next request
} group_t;

static void
s_group_start (group_t *self, int silent_shard)
{
    memset (self, 0, sizeof *self);
    for (int i = 0; i < GROUP; i++) {
        if (i == silent_shard) {
            self->context = zmq_ctx_new ();
            self->silent = zmq_socket (self->context, ZMQ_ROUTER);
            int linger = 0;
            zmq_setsockopt (self->silent, ZMQ_LINGER, &linger, sizeof linger);
            cr_assert_eq (zmq_bind (self->silent, "tcp://127.0.0.1:*"), 0);
            size_t size = sizeof self->endpoints[i];
            zmq_getsockopt (self->silent, ZMQ_LAST_ENDPOINT, self->endpoints[i], &size);
            continue;
        }
        ps_broker_config_t config;
        ps_broker_config_defaults (&config);
        config.shard = (uint32_t)i;
        config.shards = GROUP;
        self->brokers[i] =
            ps_test_broker_with (&config, self->endpoints[i], sizeof self->endpoints[i]);
        ps_test_raw_open (&self->peers[i], self->endpoints[i]);
    }
    snprintf (self->list, sizeof self->list, "%s,%s,%s", self->endpoints[0], self->endpoints[1],
              self->endpoints[2]);
}

static void
s_group_stop (group_t *self)
{
    for (int i = 0; i < GROUP; i++) {
        if (self->brokers[i])
            ps_test_raw_close (&self->peers[i]);
        ps_broker_destroy (&self->brokers[i]);
    }
    if (self->silent) {
        zmq_close (self->silent);
        zmq_ctx_term (self->context);
    }
}

//  Send a request of type to broker shard and wait for its reply, which
//  must be of the same type
static void
s_group_request (group_t *self, int shard, int type, Psmq__Hello *hello)
{
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, type, 0, ++self->seq);
    envelope.hello = hello;
    ps_envelope_t *reply = ps_test_raw_request (&self->peers[shard], &envelope);
    cr_assert_eq (reply->type, type, "broker %d: %s %s", shard, ps_codec_type_name (reply->type),
                  reply->error ? reply->error->message : "");
}

//  HELLO to every real broker as rank 0 of 1, naming the group as a
//  worker of the group does: then each broker's INFO lists the group
static void
s_group_hello (group_t *self)
{
    char *group[GROUP];
    for (int i = 0; i < GROUP; i++)
        group[i] = self->endpoints[i];
    for (int i = 0; i < GROUP; i++) {
        if (!self->brokers[i])
            continue;
        Psmq__Hello hello = PSMQ__HELLO__INIT;
        hello.world_size = 1;
        hello.shard = (uint32_t)i;
        hello.shards = GROUP;
        hello.group = group;
        hello.n_group = GROUP;
        s_group_request (self, i, PSMQ__MSG_TYPE__HELLO, &hello);
    }
}

//  The "shard" of each JSON line, in order; how many. Each line must say
//  its shard and that it is of a group of 3.
static size_t
s_shards_of (const char *jsonl, int64_t *shards, size_t max)
{
    size_t count = 0;
    while (*jsonl && count < max) {
        json_t *record = s_json_line (&jsonl);
        json_int_t shard, group_size;
        cr_assert_eq (json_unpack (record, "{s:I, s:I}", "shard", &shard, "shards", &group_size), 0,
                      "no shard and shards in record %zu", count);
        cr_assert_eq (group_size, GROUP);
        shards[count++] = shard;
        json_decref (record);
    }
    return count;
}

//  Whether each of shards 0 .. GROUP-1 appears exactly once in the n
static void
s_assert_each_shard_once (const int64_t *shards, size_t n, const char *output)
{
    cr_assert_eq (n, GROUP, "%s", output);
    int seen[GROUP] = {0};
    for (size_t i = 0; i < n; i++) {
        cr_assert (shards[i] >= 0 && shards[i] < GROUP, "%s", output);
        seen[shards[i]]++;
    }
    for (int i = 0; i < GROUP; i++)
        cr_assert_eq (seen[i], 1, "shard %d seen %d times:\n%s", i, seen[i], output);
}

Test (pstap, watch_on_one_member_sees_the_whole_group, .timeout = 60)
{
    group_t group;
    s_group_start (&group, -1);
    s_group_hello (&group);
    //  Named: the middle member only
    ps_test_child_t child = s_pstap_start ("watch", "--broker", group.endpoints[1], "--json", "-c",
                                           "3", "-f", "kind=req type=info", NULL);
    for (int i = 0; i < GROUP; i++)
        s_wait_tap_subscription (group.brokers[i]);
    for (int i = 0; i < GROUP; i++)
        s_group_request (&group, i, PSMQ__MSG_TYPE__INFO, NULL);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert_eq (run.err[0], 0, "nothing to warn about: %s", run.err);
    int64_t shards[8];
    s_assert_each_shard_once (shards, s_shards_of (run.out, shards, 8), run.out);
    s_result_free (&run);

    //  stats shows each member, in shard order, with the group it is in
    run = s_pstap ("stats", "--broker", group.endpoints[2], NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    char expected[600];
    for (int i = 0; i < GROUP; i++) {
        snprintf (expected, sizeof expected, "group       shard %d of 3: %s %s %s\n", i,
                  group.endpoints[0], group.endpoints[1], group.endpoints[2]);
        cr_assert (strstr (run.out, expected), "expected '%s' in:\n%s", expected, run.out);
    }
    const char *first = strstr (run.out, "shard 0 of 3"), *last = strstr (run.out, "shard 2 of 3");
    cr_assert (first && last && first < last, "%s", run.out);
    s_result_free (&run);
    //  ... or each member's INFO, one per line
    run = s_pstap ("stats", "--broker", group.endpoints[2], "--json", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    const char *line = run.out;
    for (int i = 0; i < GROUP; i++) {
        cr_assert (*line, "INFO %d missing:\n%s", i, run.out);
        json_t *info = s_json_line (&line);
        json_int_t shard = -1;
        json_unpack (info, "{s:I}", "shard", &shard);
        cr_assert_eq (shard, i);
        json_decref (info);
    }
    cr_assert_eq (*line, 0, "%s", run.out);
    s_result_free (&run);

    //  clock: one block per broker, as each keeps its own vector clock
    run = s_pstap ("clock", "--broker", group.endpoints[1], "-n", "1", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    for (int i = 0; i < GROUP; i++) {
        char title[256];
        snprintf (title, sizeof title, "pstap clock  %s  b%d/3  BSP staleness 0  slowest 0",
                  group.endpoints[i], i);
        cr_assert (strstr (run.out, title), "expected '%s' in:\n%s", title, run.out);
    }
    cr_assert_eq (s_count (run.out, "\nw0 "), GROUP, "%s", run.out);
    s_result_free (&run);

    //  top: the group's INFO merged, a row per broker that sent records
    child = s_pstap_start ("top", "--broker", group.endpoints[0], "--batch", "-n", "1",
                           "--interval-ms", "1000", NULL);
    for (int i = 0; i < GROUP; i++)
        s_wait_tap_subscription (group.brokers[i]);
    for (int i = 0; i < GROUP; i++)
        s_group_request (&group, i, PSMQ__MSG_TYPE__INFO, NULL);
    run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "3 brokers") && strstr (run.out, "1 live of 1"), "%s", run.out);
    cr_assert (strstr (run.out, "\nbroker     req/s "), "%s", run.out);
    for (int i = 0; i < GROUP; i++) {
        char row[16];
        snprintf (row, sizeof row, "\nb%d/3 ", i);
        cr_assert (strstr (run.out, row), "no row '%s' in:\n%s", row + 1, run.out);
    }
    s_result_free (&run);
    s_group_stop (&group);
}

Test (pstap, record_from_a_broker_list_and_read_it, .timeout = 60)
{
    group_t group;
    s_group_start (&group, -1);
    char file[512];
    ps_test_path ("group-recorded.pstap", file, sizeof file);
    //  The list works before any worker joined
    ps_test_child_t child = s_pstap_start ("record", "--broker", group.list, "-w", file, "-c", "3",
                                           "-f", "kind=req type=info", NULL);
    for (int i = 0; i < GROUP; i++)
        s_wait_tap_subscription (group.brokers[i]);
    for (int i = GROUP - 1; i >= 0; i--)
        s_group_request (&group, i, PSMQ__MSG_TYPE__INFO, NULL);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.err, "pstap record: 3 records"), "%s", run.err);
    cr_assert_null (strstr (run.err, "not known"), "a list needs no discovery: %s", run.err);
    s_result_free (&run);

    //  The recording keeps each record's broker
    run = s_pstap ("read", "-r", file, NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert_eq (s_lines (run.out), 3, "%s", run.out);
    for (int i = 0; i < GROUP; i++) {
        char needle[64];
        snprintf (needle, sizeof needle, " b%d/3 -> req  info  w?  seq ", i);
        cr_assert (strstr (run.out, needle), "expected '%s' in:\n%s", needle, run.out);
    }
    s_result_free (&run);
    run = s_pstap ("read", "-r", file, "--json", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    int64_t shards[8];
    s_assert_each_shard_once (shards, s_shards_of (run.out, shards, 8), run.out);
    s_result_free (&run);
    unlink (file);
    s_group_stop (&group);
}

//  Read the child's stdout until a whole line is in buffer (CHILD_MS at
//  most); whether one came
static bool
s_first_line (ps_test_child_t *child, char *buffer, size_t size)
{
    size_t used = 0;
    buffer[0] = 0;
    int64_t deadline = zclock_mono () + CHILD_MS;
    while (!strchr (buffer, '\n') && zclock_mono () < deadline && used + 1 < size) {
        struct pollfd fd = {child->out, POLLIN, 0};
        if (poll (&fd, 1, 50) <= 0)
            continue;
        ssize_t got = read (child->out, buffer + used, size - 1 - used);
        if (got <= 0)
            break;
        used += (size_t)got;
        buffer[used] = 0;
    }
    return strchr (buffer, '\n') != NULL;
}

Test (pstap, a_group_not_known_yet_and_member_only_watch_one_broker, .timeout = 60)
{
    group_t group;
    s_group_start (&group, -1);
    //  No worker has named the group to broker 0 yet: pstap says so, and
    //  watches broker 0 alone
    result_t run;
    {
        ps_test_child_t child = s_pstap_start ("watch", "--broker", group.endpoints[0], "--json",
                                               "-c", "1", "-f", "kind=req type=info", NULL);
        s_wait_tap_subscription (group.brokers[0]);
        s_group_request (&group, 0, PSMQ__MSG_TYPE__INFO, NULL);
        run = s_finish (&child, CHILD_MS);
    }
    cr_assert_eq (run.status, 0, "%s", run.err);
    char expected[400];
    snprintf (expected, sizeof expected,
              "pstap watch: %s is shard 0 of 3; the other members are not known until a worker "
              "joins: give --broker EP0,EP1,... (all 3, in shard order); watching this one only\n",
              group.endpoints[0]);
    cr_assert_str_eq (run.err, expected);
    const char *output = run.out;
    json_t *record = s_json_line (&output);
    const char *kind, *type;
    json_int_t shard, shards;
    cr_assert_eq (json_unpack (record, "{s:s, s:s, s:I, s:I}", "kind", &kind, "type", &type,
                               "shard", &shard, "shards", &shards),
                  0, "%s", run.out);
    cr_assert (strcmp (kind, "req") == 0 && strcmp (type, "info") == 0, "%s", run.out);
    cr_assert (shard == 0 && shards == 3, "%s", run.out);
    json_decref (record);
    s_result_free (&run);

    //  Once the group is known, --member-only still watches one broker
    s_group_hello (&group);
    ps_test_child_t child = s_pstap_start ("watch", "--broker", group.endpoints[0], "--member-only",
                                           "-c", "2", "-f", "kind=req type=info", NULL);
    s_wait_tap_subscription (group.brokers[0]);
    s_group_request (&group, 0, PSMQ__MSG_TYPE__INFO, NULL);
    //  Its first line means it connected to every tap it was going to.
    //  Asserts wait until pstap is reaped, so that a failure leaves no child.
    char line[1024];
    bool printed = s_first_line (&child, line, sizeof line);
    int64_t others =
        s_tap_subscriptions (group.brokers[1]) + s_tap_subscriptions (group.brokers[2]);
    s_group_request (&group, 1, PSMQ__MSG_TYPE__INFO, NULL);
    s_group_request (&group, 2, PSMQ__MSG_TYPE__INFO, NULL);
    s_group_request (&group, 0, PSMQ__MSG_TYPE__INFO, NULL);
    run = s_finish (&child, CHILD_MS);
    cr_assert (printed && strstr (line, " b0/3 -> req  info "), "%s", line);
    cr_assert_eq (others, 0, "--member-only subscribed to other members");
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert_eq (run.err[0], 0, "%s", run.err);
    cr_assert_eq (s_lines (run.out), 1, "%s%s", line, run.out);
    cr_assert (strstr (run.out, " b0/3 -> req  info "), "%s", run.out);
    s_result_free (&run);
    s_group_stop (&group);
}

Test (pstap, a_member_that_does_not_answer_is_named_and_skipped, .timeout = 60)
{
    //  Shard 2 is a ROUTER that takes the INFO request and never answers
    group_t group;
    s_group_start (&group, 2);
    s_group_hello (&group);
    ps_test_child_t child =
        s_pstap_start ("watch", "--broker", group.endpoints[0], "--timeout-ms", "500", "--json",
                       "-c", "2", "-f", "kind=req type=info", NULL);
    //  From the moment pstap asks the silent member (its start does not
    //  count: a loaded machine may take long to start a process) ...
    zmq_pollitem_t item = {group.silent, 0, ZMQ_POLLIN, 0};
    bool asked = zmq_poll (&item, 1, CHILD_MS) == 1;
    int64_t started = zclock_mono ();
    for (int i = 0; i < 2; i++)
        s_wait_tap_subscription (group.brokers[i]);
    //  ... to reading the others' taps is its 500 ms, not the 3 s default
    int64_t took = zclock_mono () - started;
    cr_assert (asked, "pstap did not ask the silent member within %d ms", CHILD_MS);
    cr_assert_lt (took, 2500, "reading the others began %lld ms after asking the silent member",
                  (long long)took);
    for (int i = 0; i < 2; i++)
        s_group_request (&group, i, PSMQ__MSG_TYPE__INFO, NULL);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    char expected[400];
    snprintf (expected, sizeof expected,
              "pstap watch: cannot reach the broker at %s within 500 ms: ", group.endpoints[2]);
    cr_assert (strstr (run.err, expected), "expected '%s' in: %s", expected, run.err);
    snprintf (expected, sizeof expected, "pstap watch: going on without shard 2 of 3 (%s)\n",
              group.endpoints[2]);
    cr_assert (strstr (run.err, expected), "expected '%s' in: %s", expected, run.err);
    int64_t shards[4];
    cr_assert_eq (s_shards_of (run.out, shards, 4), 2, "%s", run.out);
    cr_assert (shards[0] != shards[1] && shards[0] + shards[1] == 1, "%s", run.out);
    s_result_free (&run);

    //  A list of which nobody answers fails, in time, naming each
    char silent[300];
    snprintf (silent, sizeof silent, "%s,%s", group.endpoints[2], group.endpoints[2]);
    started = zclock_mono ();
    run = s_pstap ("stats", "--broker", silent, "--timeout-ms", "300", NULL);
    took = zclock_mono () - started;
    cr_assert_eq (run.status, 1, "%s", run.err);
    cr_assert_eq (s_count (run.err, "cannot reach the broker at"), 2, "%s", run.err);
    cr_assert (strstr (run.err, "pstap stats: none of the brokers answered\n"), "%s", run.err);
    //  Twice 300 ms and pstap's start and exit: well short of twice 3 s
    cr_assert_lt (took, 4000, "took %lld ms", (long long)took);
    s_result_free (&run);
    s_group_stop (&group);
}

Test (pstap, a_tap_on_every_interface_is_reached_where_its_broker_is, .timeout = 30)
{
    //  Broker and tap on 127.0.0.2 only: tcp://0.0.0.0:PORT would reach
    //  127.0.0.1, where nothing listens, as it would reach pstap's own
    //  machine when the broker is on another
    fake_t fake;
    s_fake_open_at (&fake, "127.0.0.2");
    const char *port = strrchr (fake.tap, ':') + 1;
    char info[512];
    snprintf (info, sizeof info, "{\"endpoint\":\"tcp://0.0.0.0:1\",\"tap\":\"tcp://0.0.0.0:%s\"}",
              port);
    result_t run = s_watch_one_pull (&fake, info, "2000");
    cr_assert (strstr (run.out, "-> req  pull  w2"), "%s", run.out);
    s_result_free (&run);
    s_fake_close (&fake);
}

//  ------------------------------------------------------- CURVE

//  The broker's count of refused connections (INFO auth.refused)
static double
s_refused (ps_broker_t *broker)
{
    char *info = ps_broker_info (broker);
    cr_assert (info);
    double refused = ps_test_json_number (info, "refused", false);
    free (info);
    return refused;
}

//  A broker with CURVE keys, its tap on loopback tcp, and the files of a
//  reader's key it allows
typedef struct {
    char broker_public[1200]; //  the broker's public key file
    char reader[1200];        //  the reader's secret key file
    char endpoint[128];       //  the broker's
} curve_t;

static ps_broker_t *
s_curve_broker (curve_t *curve)
{
    char dir[1024], allow[1100], broker_secret[1200], reader_public[1200];
    snprintf (dir, sizeof dir, "%s", ps_test_dir ());
    snprintf (allow, sizeof allow, "%s/allow", dir);
    cr_assert_eq (mkdir (allow, 0700), 0);
    snprintf (broker_secret, sizeof broker_secret, "%s/broker.key_secret", dir);
    snprintf (curve->broker_public, sizeof curve->broker_public, "%s/broker.key", dir);
    snprintf (curve->reader, sizeof curve->reader, "%s/reader.key_secret", dir);
    snprintf (reader_public, sizeof reader_public, "%s/reader.key", allow);
    zcert_t *cert = zcert_new ();
    cr_assert_eq (zcert_save_secret (cert, broker_secret) |
                      zcert_save_public (cert, curve->broker_public),
                  0);
    zcert_destroy (&cert);
    cert = zcert_new ();
    cr_assert_eq (zcert_save_secret (cert, curve->reader) | zcert_save_public (cert, reader_public),
                  0);
    zcert_destroy (&cert);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.curve_secret = broker_secret;
    config.allow_keys = allow;
    config.tap_endpoint = "tcp://127.0.0.1:0";
    return ps_test_broker_with (&config, curve->endpoint, sizeof curve->endpoint);
}

//  A worker with the reader's key comes and goes: a HELLO on the tap
static void
s_curve_hello (const curve_t *curve)
{
    ps_worker_options_t options;
    ps_test_options (&options, curve->endpoint, 0, 1);
    options.curve_secret = curve->reader;
    options.broker_key = curve->broker_public;
    int status;
    ps_worker_t *worker = ps_worker_connect (&options, &status);
    cr_assert (worker, "%s", ps_strerror (status));
    ps_worker_close (&worker);
}

//  The environment's settings that pstap takes, none of them set
static void
s_unset_psmq_environment (void)
{
    unsetenv ("PSMQ_BROKER");
    unsetenv ("PSMQ_CURVE_SECRET");
    unsetenv ("PSMQ_BROKER_KEY");
}

Test (pstap, reads_a_curve_broker_with_keys_only, .timeout = 60)
{
    //  No keys but the flags' (the shell that runs the tests may have some)
    s_unset_psmq_environment ();
    curve_t curve;
    ps_broker_t *broker = s_curve_broker (&curve);
    const char *endpoint = curve.endpoint;

    //  Without keys: neither INFO nor the tap itself answers
    result_t run = s_pstap ("watch", "--broker", endpoint, "--timeout-ms", "1500", NULL);
    cr_assert_eq (run.status, 1, "%s", run.err);
    cr_assert (
        strstr (run.err, "cannot reach the broker") &&
            strstr (run.err, "the broker refused this connection: the broker requires CURVE"),
        "%s", run.err);
    s_result_free (&run);
    double refused = s_refused (broker);
    run = s_pstap ("watch", "--tap", ps_broker_tap_endpoint (broker), "--timeout-ms", "1500", NULL);
    cr_assert_eq (run.status, 1, "%s", run.err);
    cr_assert (strstr (run.err, "does the broker have CURVE keys?"), "%s", run.err);
    s_result_free (&run);
    //  The tap's refusals are counted with the worker port's (a reader
    //  that stays: pstap gives up at the first mismatch it sees, which may
    //  be before the broker has read its greeting: no handshake to refuse)
    zsock_t *stranger = zsock_new_sub (ps_broker_tap_endpoint (broker), "");
    int64_t deadline = zclock_mono () + CHILD_MS;
    while (s_refused (broker) <= refused && zclock_mono () < deadline)
        zclock_sleep (20);
    zsock_destroy (&stranger);
    cr_assert_gt (s_refused (broker), refused, "the refused tap reader was not counted");
    cr_assert_eq (s_tap_subscriptions (broker), 0, "a reader without a key subscribed");

    //  With the allowed key: the records of a worker with its own key
    ps_test_child_t child = s_pstap_start ("watch", "--broker", endpoint, "--curve-secret",
                                           curve.reader, "--broker-key", curve.broker_public, "-c",
                                           "2", "-f", "kind=req,rep type=hello", NULL);
    s_wait_tap_subscription (broker);
    s_curve_hello (&curve);
    run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "-> req  hello") && strstr (run.out, "<- rep  hello"), "%s",
               run.out);
    s_result_free (&run);
    ps_broker_destroy (&broker);
}

Test (pstap, the_keys_come_from_PSMQ_CURVE_SECRET_and_PSMQ_BROKER_KEY_when_not_given, .timeout = 60)
{
    curve_t curve;
    ps_broker_t *broker = s_curve_broker (&curve);
    const char *endpoint = curve.endpoint;
    s_unset_psmq_environment ();
    setenv ("PSMQ_CURVE_SECRET", curve.reader, 1);
    setenv ("PSMQ_BROKER_KEY", curve.broker_public, 1);

    //  watch reaches INFO and the tap with the environment's keys
    ps_test_child_t child = s_pstap_start ("watch", "--broker", endpoint, "-c", "2", "-f",
                                           "kind=req,rep type=hello", NULL);
    s_wait_tap_subscription (broker);
    s_curve_hello (&curve);
    result_t run = s_finish (&child, CHILD_MS);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "-> req  hello") && strstr (run.out, "<- rep  hello"), "%s",
               run.out);
    s_result_free (&run);
    //  So does every command that reaches a broker, the broker too from
    //  the environment: a shell set up for psworker
    setenv ("PSMQ_BROKER", endpoint, 1);
    run = s_pstap ("stats", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    cr_assert (strstr (run.out, "workers     0 live, 1 ever seen"), "%s", run.out);
    s_result_free (&run);
    run = s_pstap ("clock", "-n", "1", "--batch", NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    s_result_free (&run);
    unsetenv ("PSMQ_BROKER");

    //  The flags win over the variables, which are then not even read
    setenv ("PSMQ_CURVE_SECRET", "/no/such/reader.key_secret", 1);
    unsetenv ("PSMQ_BROKER_KEY");
    run = s_pstap ("stats", "--broker", endpoint, "--curve-secret", curve.reader, "--broker-key",
                   curve.broker_public, NULL);
    cr_assert_eq (run.status, 0, "%s", run.err);
    s_result_free (&run);
    //  A bad value is named as the variable's
    setenv ("PSMQ_BROKER_KEY", curve.broker_public, 1);
    run = s_pstap ("stats", "--broker", endpoint, NULL);
    cr_assert_eq (run.status, 2, "%s", run.err);
    cr_assert (strstr (run.err, "pstap stats: PSMQ_CURVE_SECRET /no/such/reader.key_secret is not "
                                "a secret key file"),
               "%s", run.err);
    s_result_free (&run);
    setenv ("PSMQ_CURVE_SECRET", curve.reader, 1);
    setenv ("PSMQ_BROKER_KEY", "tooshort", 1);
    run = s_pstap ("watch", "--tap", ps_broker_tap_endpoint (broker), NULL);
    cr_assert_eq (run.status, 2, "%s", run.err);
    cr_assert (strstr (run.err, "pstap watch: PSMQ_BROKER_KEY tooshort is neither a public key "
                                "file nor 40 Z85 characters"),
               "%s", run.err);
    s_result_free (&run);

    //  Both or neither, as for psworker; set but empty is not set
    unsetenv ("PSMQ_BROKER_KEY");
    run = s_pstap ("watch", "--broker", endpoint, NULL);
    cr_assert_eq (run.status, 2, "%s", run.err);
    cr_assert (strstr (run.err, "pstap watch: PSMQ_CURVE_SECRET is set but PSMQ_BROKER_KEY is not"),
               "%s", run.err);
    s_result_free (&run);
    setenv ("PSMQ_CURVE_SECRET", "", 1);
    setenv ("PSMQ_BROKER_KEY", curve.broker_public, 1);
    run = s_pstap ("top", "--broker", endpoint, "--batch", "-n", "1", NULL);
    cr_assert_eq (run.status, 2, "%s", run.err);
    cr_assert (strstr (run.err, "pstap top: PSMQ_BROKER_KEY is set but PSMQ_CURVE_SECRET is not"),
               "%s", run.err);
    s_result_free (&run);
    s_unset_psmq_environment ();
    ps_broker_destroy (&broker);
}
