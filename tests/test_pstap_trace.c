/*  =========================================================================
    test_pstap_trace - pstap trace: a session as a Chrome trace

        pstap record --broker tcp://server:5555 -w job.pstap
        pstap trace -r job.pstap -w job.json      (then open it in Perfetto)
        pstap trace --broker tcp://server:5555 -w job.json --duration-ms 10000

    The first test records a short job of real traffic (an in-process
    broker, SSP at staleness 1, two workers pushing, pulling and clocking,
    one of them parked on the bound), turns the recording into a trace,
    loads it with jansson and checks every span against the records read
    back from the recording: each answered request is a span named by its
    type on its worker's track, from its request's time to its reply's;
    parked requests have a parked span that ends where the reply's
    aggregation wait begins; the aggregation track has optimizer steps
    covering every wait on the aggregation thread. The others trace a live
    broker, end a live trace with SIGINT, and check the command line.
    ========================================================================= */

#include "ps_codec.h"
#include "ps_taplog.h"
#include "ps_taptrace.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Output of one child, both streams
#define OUTPUT_MAX (64 * 1024)
//  Bound on any child that should finish by itself, and on any wait for
//  what a child does at once on an idle machine
#define CHILD_MS 10000
//  Elements of the tensor pushed: 800 KB, one message (no parts), enough
//  for its optimizer step to take longer than the pull right behind it
#define ELEMENTS (200 * 1024)

//  ------------------------------------------------------------ children

//  Path of a file under tests/golden
static const char *
s_golden (const char *name, char *path, size_t size)
{
    const char *source = getenv ("PSMQ_SOURCE_DIR");
    snprintf (path, size, "%s/tests/golden/%s", source ? source : "..", name);
    return path;
}

typedef struct {
    char out[OUTPUT_MAX]; //  all it printed on stdout
    char err[OUTPUT_MAX]; //  and on stderr
    int status;           //  exit status, -1 when it had to be killed
} result_t;

//  Read both streams until the child closes them or CHILD_MS passes,
//  then reap it; the caller frees the result
static result_t *
s_finish (ps_test_child_t *child)
{
    result_t *result = calloc (1, sizeof *result);
    cr_assert (result);
    result->status = ps_test_child_output (child, CHILD_MS, result->out, result->err, OUTPUT_MAX);
    return result;
}

//  Start pstap with these arguments (NULL-terminated)
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
    return ps_test_spawn (argv);
}

//  Run pstap with these arguments to completion (a macro: C cannot pass
//  variable arguments on)
#define s_pstap(...) s_finish_started (s_pstap_start (__VA_ARGS__))

static result_t *
s_finish_started (ps_test_child_t child)
{
    return s_finish (&child);
}

//  The broker's INFO number called name
static double
s_info_number (ps_broker_t *broker, const char *name)
{
    char *info = ps_broker_info (broker);
    cr_assert (info);
    double value = ps_test_json_number (info, name, false);
    free (info);
    return value;
}

//  Wait until pstap has subscribed to the broker's tap
static void
s_wait_tap_subscription (ps_broker_t *broker)
{
    int64_t deadline = zclock_mono () + CHILD_MS;
    while (s_info_number (broker, "tap_subscriptions") < 1 && zclock_mono () < deadline)
        zclock_sleep (10);
    cr_assert_geq (s_info_number (broker, "tap_subscriptions"), 1,
                   "pstap did not subscribe to the broker's tap in %d ms", CHILD_MS);
}

//  Wait until the broker holds want parked requests
static void
s_wait_parked (ps_broker_t *broker, int want)
{
    int64_t deadline = zclock_mono () + CHILD_MS;
    while ((int)s_info_number (broker, "parked_now") < want && zclock_mono () < deadline)
        zclock_sleep (5);
    cr_assert_geq ((int)s_info_number (broker, "parked_now"), want,
                   "no request was parked in %d ms", CHILD_MS);
}

//  --------------------------------------------------------- the traffic

//  Two workers of an SSP job at staleness 1, three rounds: each pushes
//  and pulls right behind it (the pull waits for the push's optimizer
//  step), then rank 0 clocks twice and pulls, parked on the bound until
//  rank 1 clocks; then rank 1 catches up
static void
s_job (const char *endpoint, ps_broker_t *broker)
{
    ps_worker_t *workers[2];
    for (uint32_t rank = 0; rank < 2; rank++) {
        workers[rank] = ps_test_worker (endpoint, rank, 2, PS_TEST_WAIT_MS);
        cr_assert (workers[rank]);
    }
    float *gradient = calloc (ELEMENTS, sizeof (float));
    float *values[2] = {calloc (ELEMENTS, sizeof (float)), calloc (ELEMENTS, sizeof (float))};
    cr_assert (gradient && values[0] && values[1]);
    for (size_t i = 0; i < ELEMENTS; i++)
        gradient[i] = 0.001f * (float)(i % 7);
    ps_optim_settings_t adam = {.kind = PS_OPTIMIZER_ADAM, .lr = 0.01f};
    cr_assert_eq (ps_worker_init (workers[0], "w", ELEMENTS, NULL, &adam), PS_OK);
    ps_tensor_t push = {"w", gradient, ELEMENTS};
    for (int round = 0; round < 3; round++) {
        for (uint32_t rank = 0; rank < 2; rank++) {
            ps_tensor_t pull = {"w", values[rank], ELEMENTS};
            ps_ticket_t pushed, pulled;
            cr_assert_eq (ps_worker_push_async (workers[rank], &push, 1, 1, &pushed), PS_OK);
            cr_assert_eq (ps_worker_pull_async (workers[rank], &pull, 1, &pulled), PS_OK);
            cr_assert_eq (ps_worker_wait (workers[rank], pushed, -1), PS_OK);
            cr_assert_eq (ps_worker_wait (workers[rank], pulled, -1), PS_OK);
        }
        ps_tensor_t pull = {"w", values[0], ELEMENTS};
        ps_ticket_t clocked, pulled;
        cr_assert_eq (ps_worker_clock (workers[0]), PS_OK);
        cr_assert_eq (ps_worker_clock_async (workers[0], &clocked), PS_OK);
        cr_assert_eq (ps_worker_pull_async (workers[0], &pull, 1, &pulled), PS_OK);
        s_wait_parked (broker, 1);
        cr_assert_eq (ps_worker_clock (workers[1]), PS_OK);
        cr_assert_eq (ps_worker_wait (workers[0], clocked, -1), PS_OK);
        cr_assert_eq (ps_worker_wait (workers[0], pulled, -1), PS_OK);
        cr_assert_eq (ps_worker_clock (workers[1]), PS_OK);
    }
    for (uint32_t rank = 0; rank < 2; rank++)
        cr_assert_eq (ps_worker_close (&workers[rank]), PS_OK);
    free (gradient);
    free (values[0]);
    free (values[1]);
}

//  --------------------------------------------------- the trace, checked

//  A request of the recording and what answered it
typedef struct {
    char peer[40];           //  with seq and shard, what pairs it
    uint64_t seq;            //  its sequence number
    uint64_t request_us;     //  its record's time
    bool answered;           //  a reply (or rejection) came
    int64_t worker;          //  the rank its reply names
    int type;                //  MsgType
    uint64_t reply_us;       //  the reply's time
    uint64_t parked_us;      //  the reply's timing
    uint64_t aggregation_us; //  and its wait on the aggregation thread
} request_t;

#define MAX_REQUESTS 1024

//  The requests of the recording at path with their answers, into
//  requests; how many
static size_t
s_requests (const char *path, request_t *requests)
{
    ps_problem_t problem;
    ps_taplog_reader_t *reader = ps_taplog_reader_new (path, &problem);
    cr_assert (reader, "%s", problem.message);
    ps_codec_t *codec = ps_codec_new ();
    size_t count = 0;
    ps_taplog_entry_t entry;
    while (ps_taplog_reader_next (reader, &entry, &problem) == PS_TAPLOG_RECORD) {
        ps_tap_record_t *record =
            ps_codec_decode_tap (codec, entry.frames[0].data, entry.frames[0].size, &problem);
        cr_assert (record, "%s", problem.message);
        if (record->kind == PSMQ__TAP_KIND__TAP_REQUEST &&
            record->type != PSMQ__MSG_TYPE__HEARTBEAT) {
            cr_assert_lt (count, MAX_REQUESTS);
            request_t *request = &requests[count++];
            *request = (request_t){.seq = record->seq, .request_us = record->time_us};
            snprintf (request->peer, sizeof request->peer, "%s", record->peer);
        }
        if (record->kind != PSMQ__TAP_KIND__TAP_REPLY && record->kind != PSMQ__TAP_KIND__TAP_REJECT)
            continue;
        for (size_t i = 0; i < count; i++)
            if (!requests[i].answered && requests[i].seq == record->seq &&
                strcmp (requests[i].peer, record->peer) == 0) {
                requests[i].answered = true;
                requests[i].worker = record->worker;
                requests[i].type = record->type;
                requests[i].reply_us = record->time_us;
                requests[i].parked_us = record->parked_us;
                requests[i].aggregation_us = record->aggregation_us;
                break;
            }
    }
    ps_codec_destroy (&codec);
    ps_taplog_reader_destroy (&reader);
    return count;
}

//  The trace file's events (borrowed from trace, which the caller
//  releases), asserting the Trace Event Format's object form
static json_t *
s_events (json_t *trace)
{
    cr_assert (json_is_object (trace));
    json_t *events = json_object_get (trace, "traceEvents");
    cr_assert (json_is_array (events), "no traceEvents array");
    cr_assert_str_eq (json_string_value (json_object_get (trace, "displayTimeUnit")), "ms");
    return events;
}

static json_t *
s_load (const char *path)
{
    json_error_t error;
    json_t *trace = json_load_file (path, 0, &error);
    cr_assert (trace, "%s is not JSON: line %d: %s", path, error.line, error.text);
    return trace;
}

//  The first complete event of broker 1 on a track of rank's (its own or
//  one for its overlapping requests) named name with ts and dur, NULL
//  when there is none
static json_t *
s_span (json_t *events, int64_t rank, const char *name, int64_t ts, int64_t dur)
{
    size_t i;
    json_t *event;
    json_array_foreach (events, i, event)
    {
        const char *ph, *event_name;
        json_int_t pid, tid, event_ts, event_dur;
        if (json_unpack (event, "{s:s, s:s, s:I, s:I, s:I, s:I}", "ph", &ph, "name", &event_name,
                         "pid", &pid, "tid", &tid, "ts", &event_ts, "dur", &event_dur) ||
            strcmp (ph, "X") != 0)
            continue;
        if (pid == 1 && ps_taptrace_rank ((int)tid) == rank && strcmp (event_name, name) == 0 &&
            event_ts == ts && event_dur == dur)
            return event;
    }
    return NULL;
}

static json_int_t
s_tid (json_t *event)
{
    return json_integer_value (json_object_get (event, "tid"));
}

//  A complete event's place, for the nesting check
typedef struct {
    json_int_t pid, tid, ts, end;
} place_t;

static int
s_place_order (const void *a, const void *b)
{
    const place_t *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->end > y->end ? -1 : x->end < y->end;
}

//  Viewers need the spans of a track to nest: on each track, a span that
//  starts inside another ends inside it too
static void
s_check_nesting (json_t *events)
{
    place_t *places = calloc (json_array_size (events) + 1, sizeof *places);
    place_t **stack = calloc (json_array_size (events) + 1, sizeof *stack);
    cr_assert (places && stack);
    size_t count = 0, i;
    json_t *event;
    json_array_foreach (events, i, event)
    {
        const char *ph;
        place_t *place = &places[count];
        json_int_t dur;
        if (json_unpack (event, "{s:s, s:I, s:I, s:I, s:I}", "ph", &ph, "pid", &place->pid, "tid",
                         &place->tid, "ts", &place->ts, "dur", &dur) == 0 &&
            strcmp (ph, "X") == 0) {
            place->end = place->ts + dur;
            count++;
        }
    }
    qsort (places, count, sizeof *places, s_place_order);
    size_t depth = 0;
    for (i = 0; i < count; i++) {
        place_t *place = &places[i];
        while (depth && (stack[depth - 1]->pid != place->pid ||
                         stack[depth - 1]->tid != place->tid || stack[depth - 1]->end <= place->ts))
            depth--;
        if (depth)
            cr_assert_leq (place->end, stack[depth - 1]->end,
                           "pid %lld tid %lld: a span from %lld to %lld overlaps one from %lld to "
                           "%lld without nesting",
                           (long long)place->pid, (long long)place->tid, (long long)place->ts,
                           (long long)place->end, (long long)stack[depth - 1]->ts,
                           (long long)stack[depth - 1]->end);
        stack[depth++] = place;
    }
    free (places);
    free (stack);
}

//  The aggregation-track span that holds the time at (at a span's end
//  only when at is the start of a wait), NULL when none does
static json_t *
s_busy_at (json_t *events, int64_t at, bool start)
{
    size_t i;
    json_t *event;
    json_array_foreach (events, i, event)
    {
        const char *ph;
        json_int_t tid, ts, dur;
        if (json_unpack (event, "{s:s, s:I, s:I, s:I}", "ph", &ph, "tid", &tid, "ts", &ts, "dur",
                         &dur) ||
            strcmp (ph, "X") != 0 || tid != PS_TAPTRACE_AGGREGATION_TID)
            continue;
        if (ts <= at && (start ? at <= ts + dur : at < ts + dur))
            return event;
    }
    return NULL;
}

//  Whether the aggregation track's spans cover [start, end] (spans that
//  follow each other: a long wait may reach into the span before), the
//  one at end called name (any name when NULL)
static bool
s_covered (json_t *events, const char *name, int64_t start, int64_t end)
{
    int64_t at = start;
    for (size_t step = 0; step <= json_array_size (events); step++) {
        json_t *span = s_busy_at (events, at, at == start);
        if (!span)
            return false;
        int64_t span_end = json_integer_value (json_object_get (span, "ts")) +
                           json_integer_value (json_object_get (span, "dur"));
        if (span_end >= end)
            return !name || strcmp (json_string_value (json_object_get (span, "name")), name) == 0;
        at = span_end;
    }
    return false;
}

//  The name the metadata gives a thread (or, tid < 0, the process)
static const char *
s_named (json_t *events, int tid)
{
    size_t i;
    json_t *event;
    json_array_foreach (events, i, event)
    {
        const char *ph, *what, *name;
        json_int_t pid, event_tid;
        if (json_unpack (event, "{s:s, s:s, s:I, s:I, s:{s:s}}", "ph", &ph, "name", &what, "pid",
                         &pid, "tid", &event_tid, "args", "name", &name) ||
            strcmp (ph, "M") != 0 || pid != 1)
            continue;
        if (tid < 0 ? strcmp (what, "process_name") == 0
                    : strcmp (what, "thread_name") == 0 && event_tid == tid)
            return name;
    }
    return NULL;
}

//  Check each answered request of requests against the trace's events:
//  how many were parked and how many waited for the aggregation thread
static void
s_check_spans (json_t *events, const request_t *requests, size_t count, size_t *parked_count,
               size_t *aggregated)
{
    size_t answered = 0;
    *parked_count = *aggregated = 0;
    for (size_t i = 0; i < count; i++) {
        const request_t *request = &requests[i];
        if (!request->answered)
            continue;
        answered++;
        const char *type = ps_codec_type_name (request->type);
        int64_t dur = (int64_t)(request->reply_us - request->request_us);
        json_t *span = s_span (events, request->worker, type, (int64_t)request->request_us, dur);
        cr_assert (span,
                   "request %zu (%s seq %" PRIu64 " of w%" PRId64 " at %" PRIu64
                   "): no span of %" PRId64 " us on its worker's track",
                   i, type, request->seq, request->worker, request->request_us, dur);
        json_int_t seq;
        cr_assert_eq (json_unpack (span, "{s:{s:I}}", "args", "seq", &seq), 0);
        cr_assert_eq ((uint64_t)seq, request->seq);
        //  The waits nest inside the request's span, at its end
        int64_t aggregation =
            request->aggregation_us < (uint64_t)dur ? (int64_t)request->aggregation_us : dur;
        if (request->parked_us) {
            int64_t parked = request->parked_us < (uint64_t)(dur - aggregation)
                                 ? (int64_t)request->parked_us
                                 : dur - aggregation;
            json_t *child = s_span (events, request->worker, "parked",
                                    (int64_t)request->reply_us - aggregation - parked, parked);
            cr_assert (child && s_tid (child) == s_tid (span),
                       "request %zu (%s seq %" PRIu64 ") was parked %" PRIu64
                       " us: no parked span of %" PRId64 " us",
                       i, type, request->seq, request->parked_us, parked);
            (*parked_count)++;
        }
        if (aggregation) {
            int64_t end = (int64_t)request->reply_us;
            json_t *child =
                s_span (events, request->worker, "aggregation", end - aggregation, aggregation);
            cr_assert (child && s_tid (child) == s_tid (span));
            cr_assert (s_covered (events,
                                  request->type == PSMQ__MSG_TYPE__INIT ? NULL : "optimizer step",
                                  end - aggregation, end),
                       "request %zu (%s seq %" PRIu64 ") waited %" PRId64
                       " us for the aggregation thread: not on its track",
                       i, type, request->seq, aggregation);
            (*aggregated)++;
        }
    }
    cr_assert_geq (answered, 20, "too few requests answered in the recording");
}

Test (pstap_trace, a_recorded_job_as_a_timeline, .timeout = 90)
{
    char endpoint[128], recording[512], trace_path[512];
    ps_test_path ("trace-job.pstap", recording, sizeof recording);
    ps_test_path ("trace-job.json", trace_path, sizeof trace_path);
    ps_broker_t *broker = ps_test_broker (2, 1, 0, endpoint, sizeof endpoint);
    ps_test_child_t recorder =
        s_pstap_start ("record", "--broker", endpoint, "-w", recording, NULL);
    s_wait_tap_subscription (broker);
    s_job (endpoint, broker);
    //  The recorder has had every record once it has the last one: the
    //  second worker's BYE reply, when the broker has no live worker
    int64_t deadline = zclock_mono () + CHILD_MS;
    while (s_info_number (broker, "live") > 0 && zclock_mono () < deadline)
        zclock_sleep (10);
    cr_assert_eq (kill (recorder.pid, SIGINT), 0);
    result_t *run = s_finish (&recorder);
    cr_assert_eq (run->status, 0, "%s", run->err);
    free (run);

    //  Every request answered in the recording must be in the trace
    run = s_pstap ("trace", "-r", recording, "-w", trace_path, NULL);
    cr_assert_eq (run->status, 0, "%s", run->err);
    cr_assert (strstr (run->err, "events written to"), "%s", run->err);
    free (run);
    request_t *requests = calloc (MAX_REQUESTS, sizeof *requests);
    cr_assert (requests);
    size_t count = s_requests (recording, requests);
    json_t *trace = s_load (trace_path);
    json_t *events = s_events (trace);
    size_t parked, aggregated;
    s_check_spans (events, requests, count, &parked, &aggregated);
    s_check_nesting (events);
    //  Rank 0's pull behind its clock waited at the bound each clock
    cr_assert_geq (parked, 3, "only %zu parked requests", parked);
    cr_assert_geq (aggregated, 1, "no request waited for the aggregation thread");
    //  The INIT went through the aggregation thread, and so did the pulls
    //  right behind their pushes
    int64_t start = 0, end = 0;
    for (size_t i = 0; i < count; i++)
        if (requests[i].type == PSMQ__MSG_TYPE__INIT) {
            //  Its wait, clipped to its span as every wait is
            end = (int64_t)requests[i].reply_us;
            uint64_t dur = requests[i].reply_us - requests[i].request_us;
            uint64_t waited = requests[i].aggregation_us;
            start = end - (int64_t)(waited < dur ? waited : dur);
        }
    cr_assert (end && s_covered (events, NULL, start, end), "the INIT is not on the track");
    size_t steps = 0, i;
    json_t *event;
    json_array_foreach (events, i, event)
    {
        json_t *name = json_object_get (event, "name");
        steps += json_is_string (name) && strcmp (json_string_value (name), "optimizer step") == 0;
    }
    //  Optimizer steps are drawn from the waits of requests other than
    //  INITs: as a rule a pull right behind its push waits, but on a busy
    //  machine the aggregation thread may have applied the push first
    size_t stepped = 0;
    for (size_t r = 0; r < count; r++)
        stepped += requests[r].type != PSMQ__MSG_TYPE__INIT && requests[r].aggregation_us > 0;
    if (stepped)
        cr_assert_geq (steps, 1, "%zu requests waited for pushes, and no optimizer step is drawn",
                       stepped);
    else
        cr_assert_eq (steps, 0, "optimizer steps drawn where no request waited for a push");
    //  The tracks are named
    cr_assert_str_eq (s_named (events, -1), "psbroker");
    cr_assert_str_eq (s_named (events, 0), "worker 0");
    cr_assert_str_eq (s_named (events, 1), "worker 1");
    cr_assert_str_eq (s_named (events, PS_TAPTRACE_AGGREGATION_TID), "aggregation");
    json_decref (trace);
    free (requests);
    ps_broker_destroy (&broker);
}

//  A live trace of one worker's session, ended by -c, then one ended by
//  SIGINT: both valid JSON with the worker's spans
Test (pstap_trace, a_live_trace_ends_valid_by_count_or_by_sigint, .timeout = 60)
{
    char endpoint[128], trace_path[512];
    ps_test_path ("trace-live.json", trace_path, sizeof trace_path);
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    for (int by_signal = 0; by_signal < 2; by_signal++) {
        //  hello, init, push, pull: a request and a reply each
        ps_test_child_t child =
            by_signal ? s_pstap_start ("trace", "--broker", endpoint, "-w", trace_path, NULL)
                      : s_pstap_start ("trace", "--broker", endpoint, "-w", trace_path, "-c", "8",
                                       "-f", "kind=req,rep type=hello,init,push,pull", NULL);
        s_wait_tap_subscription (broker);
        ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
        cr_assert (worker);
        float values[4] = {1, 2, 3, 4};
        ps_tensor_t tensor = {"weights", values, 4};
        cr_assert_eq (ps_worker_init (worker, "weights", 4, values, NULL), PS_OK);
        cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK);
        cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK);
        if (by_signal)
            cr_assert_eq (kill (child.pid, SIGINT), 0);
        result_t *run = s_finish (&child);
        cr_assert_eq (run->status, 0, "%s", run->err);
        cr_assert (strstr (run->err, "events written to"), "%s", run->err);
        free (run);
        cr_assert_eq (ps_worker_close (&worker), PS_OK);
        //  The next pstap's subscription must be its own
        int64_t deadline = zclock_mono () + CHILD_MS;
        while (s_info_number (broker, "tap_subscriptions") > 0 && zclock_mono () < deadline)
            zclock_sleep (10);

        json_t *trace = s_load (trace_path);
        json_t *events = s_events (trace);
        s_check_nesting (events);
        if (!by_signal) {
            //  -c 8 stopped after the pull's reply: four spans on rank 0
            const char *expected[] = {"hello", "init", "push", "pull"};
            size_t spans = 0, i;
            json_t *event;
            json_array_foreach (events, i, event)
            {
                const char *ph, *name, *category;
                json_int_t tid;
                if (json_unpack (event, "{s:s, s:s, s:s, s:I}", "ph", &ph, "name", &name, "cat",
                                 &category, "tid", &tid) ||
                    strcmp (ph, "X") != 0 || strcmp (category, "request") != 0 ||
                    ps_taptrace_rank ((int)tid) != 0)
                    continue;
                cr_assert_lt (spans, 4, "a fifth span: %s", name);
                cr_assert_str_eq (name, expected[spans]);
                spans++;
            }
            cr_assert_eq (spans, 4);
        }
        json_decref (trace);
    }
    ps_broker_destroy (&broker);
}

//  The event of kind ph named name on tid, NULL when there is none
static json_t *
s_event (json_t *events, const char *ph, const char *name, int tid)
{
    size_t i;
    json_t *event;
    json_array_foreach (events, i, event)
    {
        const char *event_ph, *event_name;
        json_int_t event_tid;
        if (json_unpack (event, "{s:s, s:s, s:I}", "ph", &event_ph, "name", &event_name, "tid",
                         &event_tid) == 0 &&
            strcmp (event_ph, ph) == 0 && strcmp (event_name, name) == 0 && event_tid == tid)
            return event;
    }
    return NULL;
}

static json_int_t
s_number (json_t *event, const char *name)
{
    json_t *value = json_object_get (event, name);
    cr_assert (json_is_integer (value), "no %s", name);
    return json_integer_value (value);
}

//  The committed recording (built by test_pstap.c, times known): what a
//  live trace rarely shows
Test (pstap_trace, the_committed_recording_as_a_timeline, .timeout = 30)
{
    char golden[512], trace_path[512];
    s_golden ("session.pstap", golden, sizeof golden);
    ps_test_path ("trace-golden.json", trace_path, sizeof trace_path);
    //  -r FILE names the source: a broker in PSMQ_BROKER is not added to
    //  it, and no keys are read (one of the two alone would be an error)
    setenv ("PSMQ_BROKER", "tcp://127.0.0.1:1", 1);
    setenv ("PSMQ_CURVE_SECRET", "/no/such/reader.key_secret", 1);
    unsetenv ("PSMQ_BROKER_KEY");
    result_t *run = s_pstap ("trace", "-r", golden, "-w", trace_path, NULL);
    cr_assert_eq (run->status, 0, "%s", run->err);
    cr_assert (strstr (run->err, "skipped 1 malformed records"), "%s", run->err);
    free (run);
    unsetenv ("PSMQ_BROKER");
    unsetenv ("PSMQ_CURVE_SECRET");
    json_t *trace = s_load (trace_path);
    json_t *events = s_events (trace);
    s_check_nesting (events);
    //  Times from the hello's request, 10 us after the recording's T0
    json_t *hello = s_event (events, "X", "hello", 0);
    cr_assert (hello);
    json_int_t t0 = s_number (hello, "ts") - 10;
    cr_assert_eq (s_number (hello, "dur"), 40);
    //  The pull's request came before the recording: drawn from total_us
    json_t *pull = s_event (events, "X", "pull", 1);
    cr_assert (pull);
    cr_assert_eq (s_number (pull, "ts"), t0 + 300 - 30);
    cr_assert_eq (s_number (pull, "dur"), 30);
    cr_assert (json_is_false (json_object_get (json_object_get (pull, "args"), "request_seen")));
    //  The clock parked 2 ms on worker 1: parked at the end of its span
    json_t *clock = s_event (events, "X", "clock", 0);
    json_t *parked = s_event (events, "X", "parked", 0);
    cr_assert (clock && parked);
    cr_assert_eq (s_number (clock, "ts"), t0 + 500);
    cr_assert_eq (s_number (clock, "dur"), 2010);
    cr_assert_eq (s_number (parked, "ts"), t0 + 510);
    cr_assert_eq (s_number (parked, "dur"), 2000);
    //  The INIT waited 120 us for the aggregation thread
    json_t *init = s_event (events, "X", "init", PS_TAPTRACE_AGGREGATION_TID);
    cr_assert (init);
    cr_assert_eq (s_number (init, "ts"), t0 + 225 - 120);
    cr_assert_eq (s_number (init, "dur"), 120);
    cr_assert_null (s_event (events, "X", "optimizer step", PS_TAPTRACE_AGGREGATION_TID));
    //  The rejected push (its request unseen) and the eviction are instants
    //  on worker 1's track, the reason's bad byte made valid UTF-8
    json_t *rejected = s_event (events, "i", "rejected", 1);
    cr_assert (rejected);
    const char *status, *reason;
    cr_assert_eq (
        json_unpack (rejected, "{s:{s:s, s:s}}", "args", "status", &status, "reason", &reason), 0);
    cr_assert_str_eq (status, "clock");
    cr_assert (strstr (reason, "\"late\"\n\xef\xbf\xbd"), "%s", reason);
    cr_assert (s_event (events, "i", "evicted", 1));
    cr_assert (s_event (events, "i", "slowest clock", PS_TAPTRACE_AGGREGATION_TID));
    json_decref (trace);
}

Test (pstap_trace, bad_command_lines_are_clear_errors, .timeout = 30)
{
    //  The case without a source must not find a broker in the environment
    unsetenv ("PSMQ_BROKER");
    char missing[512], directory[512], bad_out[600], golden[512];
    s_golden ("session.pstap", golden, sizeof golden);
    ps_test_path ("no-such-recording.pstap", missing, sizeof missing);
    ps_test_path ("", directory, sizeof directory);
    snprintf (bad_out, sizeof bad_out, "%s/no/such/dir/trace.json", directory);
    const struct {
        const char *args[8];
        int status;
        const char *says;
    } cases[] = {
        {{"trace", "-w", "x.json"}, 2, "pstap trace: --broker (or PSMQ_BROKER), --tap or -r FILE"},
        {{"trace", "-r", "x", "--broker", "tcp://127.0.0.1:1", "-w", "x.json"},
         2,
         "give --broker, --tap or -r FILE, only one of them"},
        {{"trace", "-r", "x"}, 2, "-w FILE is required"},
        {{"trace", "-r", "x", "-w", "y", "--duration-ms", "5"}, 2, "--duration-ms applies to"},
        {{"trace", "--duration-ms", "0", "-r", "x", "-w", "y"}, 2, "--duration-ms"},
        {{"trace", "-r", missing, "-w", bad_out}, 1, "no-such-recording.pstap"},
        {{"trace", "-r", golden, "-w", bad_out}, 1, "cannot write"},
        {{"trace", "-r", directory, "-w", bad_out}, 1, "is a directory"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *a = cases[i].args;
        result_t *run = s_pstap (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
        cr_assert_eq (run->status, cases[i].status, "case %zu: status %d: %s", i, run->status,
                      run->err);
        cr_assert (strstr (run->err, cases[i].says), "case %zu: %s", i, run->err);
        free (run);
    }
    //  A recording that is not one leaves the file it would write as it was
    char untouched[512];
    ps_test_path ("untouched.json", untouched, sizeof untouched);
    result_t *missed = s_pstap ("trace", "-r", missing, "-w", untouched, NULL);
    cr_assert_eq (missed->status, 1);
    cr_assert_neq (access (untouched, F_OK), 0, "the trace was created for nothing");
    free (missed);
    //  --help describes it
    result_t *run = s_pstap ("trace", "--help", NULL);
    cr_assert_eq (run->status, 0);
    cr_assert (strstr (run->out, "Usage: pstap trace") && strstr (run->out, "ui.perfetto.dev"),
               "%s", run->out);
    free (run);
}
