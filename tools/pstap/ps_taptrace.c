/*  =========================================================================
    ps_taptrace - tap records as a Chrome trace

    The Trace Event Format's JSON object form: {"traceEvents": [...],
    "displayTimeUnit": "ms", "otherData": {...}}. Events are written as
    they come, each built with jansson (which escapes every string) and
    dumped after a comma; the closing brackets and the metadata events,
    which need every track seen, come at the end. So the trace of a long
    session never sits in memory, and an interrupted one is still closed
    properly by ps_taptrace_destroy.

    A worker's requests overlap when it sends one before the last is
    answered (the library's async calls, a pull behind a clock): Trace
    Event viewers need the spans of one track to nest, so a span that
    would overlap the one before it goes on the worker's next track,
    "worker 3 (overlapping 1)", and so on.

    What a record becomes is decided from the record alone and the request
    time ps_tappair found for it: a request draws nothing until its reply
    (a request still unanswered when the trace ends is not drawn), and
    its span goes on the track of the worker its reply names (a HELLO's
    request comes before its connection is a rank). The
    broker's tap does not time the aggregation thread itself, only how long
    each reply waited for it (aggregation_us): the aggregation track shows
    those waits, merged where they overlap, so its spans are the times the
    thread was busy with the pushes (optimizer steps) before a waiting
    request, as the requests saw it. Wherever a child span would not fit
    in its request's (the broker's monotonic waits against its wall clock
    times), it is clipped to it, so spans always nest.

    Strings that come from the network (reasons) are taken from
    ps_taprender_json's object, which makes them valid UTF-8.
    ========================================================================= */

#include "ps_taptrace.h"
#include "ps_taprender.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  One slot per shard of a group, and one for a broker alone or a shard
//  out of range
#define BROKER_SLOTS (PS_MAX_SHARDS + 1)

//  Requests seen waiting for the aggregation thread, merged
typedef struct {
    bool open;        //  a span is being gathered
    uint64_t start;   //  the earliest wait's start, us
    uint64_t end;     //  the latest wait's end, us
    uint64_t waiters; //  requests that waited in it
    bool only_init;   //  every waiter was an INIT (no optimizer step)
    uint64_t floor;   //  where the last span written ended
} busy_t;

//  What the trace knows of one broker
typedef struct {
    uint32_t shard;                                   //  its place in its group
    uint32_t shards;                                  //  its group's size, 0 or 1 alone
    uint8_t lanes[PS_MAX_WORKERS];                    //  per rank: its tracks used, 0 none yet
    uint64_t ends[PS_MAX_WORKERS][PS_TAPTRACE_LANES]; //  where each track's last span ends
    bool no_rank;                                     //  the no-rank track used
    busy_t busy;                                      //  the aggregation span gathering
} broker_t;

struct ps_taptrace_t {
    FILE *file;                      //  the trace, or stdout
    char *path;                      //  its name, for messages
    bool failed;                     //  a write failed: refuse the rest
    int error;                       //  errno of the first failure
    uint64_t events;                 //  events written (not metadata)
    uint64_t written;                //  every event written, metadata too
    broker_t *brokers[BROKER_SLOTS]; //  by slot, made when first seen
};

ps_taptrace_t *
ps_taptrace_new (const char *path, ps_problem_t *problem)
{
    ps_taptrace_t *self = calloc (1, sizeof *self);
    if (!self || !(self->path = strdup (path))) {
        free (self);
        ps_problem_set (problem, 0, "%s: out of memory", path);
        return NULL;
    }
    self->file = strcmp (path, "-") == 0 ? stdout : fopen (path, "w");
    if (!self->file) {
        ps_problem_set (problem, 0, "cannot write %s: %s", path, strerror (errno));
        free (self->path);
        free (self);
        return NULL;
    }
    if (fputs ("{\"traceEvents\":[", self->file) < 0) {
        self->failed = true;
        self->error = errno;
    }
    return self;
}

//  The broker that published record, made when first seen; NULL out of
//  memory
static broker_t *
s_broker (ps_taptrace_t *self, const ps_tap_record_t *record, int *pid)
{
    size_t slot = 0;
    if (record->shards > 1)
        slot = record->shard < PS_MAX_SHARDS ? record->shard : PS_MAX_SHARDS;
    *pid = (int)slot + 1;
    if (!self->brokers[slot]) {
        self->brokers[slot] = calloc (1, sizeof (broker_t));
        if (!self->brokers[slot])
            return NULL;
        self->brokers[slot]->shard = record->shard;
        self->brokers[slot]->shards = record->shards;
    }
    return self->brokers[slot];
}

//  The main track of a record's worker, marked used
static int
s_track (broker_t *broker, int64_t worker)
{
    if (worker < 0 || worker >= PS_MAX_WORKERS) {
        broker->no_rank = true;
        return PS_TAPTRACE_NO_RANK_TID;
    }
    if (!broker->lanes[worker])
        broker->lanes[worker] = 1;
    return (int)worker;
}

//  The track of a worker's span from start to end: its main track when
//  the last span there ended by start, else the first of its overlap
//  tracks that is free (or the last of them, when none is). Spans come
//  in the order they end, so a track's spans never overlap.
static int
s_lane (broker_t *broker, int64_t worker, uint64_t start, uint64_t end)
{
    int tid = s_track (broker, worker);
    if (tid == PS_TAPTRACE_NO_RANK_TID)
        return tid;
    uint64_t *ends = broker->ends[worker];
    int lane = 0;
    while (lane < PS_TAPTRACE_LANES - 1 && lane < broker->lanes[worker] && ends[lane] > start)
        lane++;
    if (lane >= broker->lanes[worker])
        broker->lanes[worker] = (uint8_t)(lane + 1);
    if (end > ends[lane])
        ends[lane] = end;
    return ps_taptrace_tid (worker, lane);
}

int
ps_taptrace_tid (int64_t rank, int lane)
{
    return lane ? PS_TAPTRACE_LANE_TID + (lane - 1) * PS_MAX_WORKERS + (int)rank : (int)rank;
}

int64_t
ps_taptrace_rank (int tid)
{
    if (tid >= 0 && tid < PS_MAX_WORKERS)
        return tid;
    if (tid >= PS_TAPTRACE_LANE_TID &&
        tid < PS_TAPTRACE_LANE_TID + (PS_TAPTRACE_LANES - 1) * PS_MAX_WORKERS)
        return (tid - PS_TAPTRACE_LANE_TID) % PS_MAX_WORKERS;
    return -1;
}

//  Write event (taken) after the ones before it
static void
s_emit (ps_taptrace_t *self, json_t *event, bool counts)
{
    if (!self->failed && !event) {
        self->failed = true;
        self->error = ENOMEM;
    }
    if (!self->failed) {
        //  A comma before each event but the first
        if (fputs (self->written ? ",\n" : "\n", self->file) < 0 ||
            json_dumpf (event, self->file, JSON_COMPACT) < 0) {
            self->failed = true;
            self->error = errno;
        }
    }
    json_decref (event);
    self->written++;
    if (counts)
        self->events++;
}

//  A complete event; args taken
static void
s_span (ps_taptrace_t *self, const char *name, const char *category, int pid, int tid, uint64_t ts,
        uint64_t dur, json_t *args)
{
    json_t *event = args ? json_pack ("{s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:o}", "name", name,
                                      "cat", category, "ph", "X", "ts", (json_int_t)ts, "dur",
                                      (json_int_t)dur, "pid", pid, "tid", tid, "args", args)
                         : NULL;
    s_emit (self, event, true);
}

//  An instant event on one thread's track; args taken
static void
s_instant (ps_taptrace_t *self, const char *name, const char *category, int pid, int tid,
           uint64_t ts, json_t *args)
{
    json_t *event = args ? json_pack ("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:o}", "name", name,
                                      "cat", category, "ph", "i", "s", "t", "ts", (json_int_t)ts,
                                      "pid", pid, "tid", tid, "args", args)
                         : NULL;
    s_emit (self, event, true);
}

//  A new object holding the fields of rendered (ps_taprender_json's)
//  named in fields that are not null; NULL out of memory
static json_t *
s_args (json_t *rendered, const char *const *fields)
{
    json_t *args = json_object ();
    for (size_t i = 0; args && rendered && fields[i]; i++) {
        json_t *value = json_object_get (rendered, fields[i]);
        if (value && !json_is_null (value) && json_object_set (args, fields[i], value)) {
            json_decref (args);
            return NULL;
        }
    }
    return rendered ? args : (json_decref (args), NULL);
}

//  The aggregation thread's span gathered so far, written
static void
s_busy_flush (ps_taptrace_t *self, broker_t *broker, int pid)
{
    busy_t *busy = &broker->busy;
    if (!busy->open)
        return;
    busy->open = false;
    busy->floor = busy->end;
    s_span (self, busy->only_init ? "init" : "optimizer step", "aggregation", pid,
            PS_TAPTRACE_AGGREGATION_TID, busy->start, busy->end - busy->start,
            json_pack ("{s:I}", "waiting_requests", (json_int_t)busy->waiters));
}

//  A request waited for the aggregation thread from start to end
static void
s_busy_add (ps_taptrace_t *self, broker_t *broker, int pid, uint64_t start, uint64_t end, bool init)
{
    busy_t *busy = &broker->busy;
    //  A long wait that began inside a span already written adds only
    //  what comes after it, so the track's spans never overlap (and a
    //  wall clock stepped back adds nothing)
    if (end < busy->floor)
        return;
    start = start < busy->floor ? busy->floor : start;
    if (busy->open && start <= busy->end) {
        busy->start = start < busy->start ? start : busy->start;
        busy->end = end > busy->end ? end : busy->end;
        busy->waiters++;
        busy->only_init = busy->only_init && init;
        return;
    }
    s_busy_flush (self, broker, pid);
    *busy = (busy_t){.open = true,
                     .start = start,
                     .end = end,
                     .waiters = 1,
                     .only_init = init,
                     .floor = busy->floor};
}

//  A reply or a rejection of a request: its span, what it waited on
//  inside it, and its wait on the aggregation thread
static void
s_answer (ps_taptrace_t *self, broker_t *broker, int pid, const ps_tap_record_t *record,
          bool paired, uint64_t request_us, json_t *rendered)
{
    static const char *const fields[] = {"seq",       "clock",    "keys",      "bytes",
                                         "status",    "reason",   "queued_us", "aggregation_us",
                                         "parked_us", "total_us", NULL};
    uint64_t end = record->time_us;
    uint64_t start = paired ? request_us : end - (record->total_us < end ? record->total_us : end);
    if (start > end)
        start = end; //  clocks differ by a microsecond: never a negative span
    uint64_t dur = end - start;
    int tid = s_lane (broker, record->worker, start, end);
    json_t *args = s_args (rendered, fields);
    if (args)
        json_object_set_new (args, "request_seen", json_boolean (paired));
    s_span (self, ps_codec_type_name (record->type), "request", pid, tid, start, dur, args);

    uint64_t aggregation = record->aggregation_us < dur ? record->aggregation_us : dur;
    uint64_t parked = record->parked_us < dur - aggregation ? record->parked_us : dur - aggregation;
    if (parked)
        s_span (self, "parked", "wait", pid, tid, end - aggregation - parked, parked,
                json_pack ("{s:I}", "parked_us", (json_int_t)record->parked_us));
    if (aggregation) {
        s_span (self, "aggregation", "wait", pid, tid, end - aggregation, aggregation,
                json_pack ("{s:I}", "aggregation_us", (json_int_t)record->aggregation_us));
        s_busy_add (self, broker, pid, end - aggregation, end,
                    record->type == PSMQ__MSG_TYPE__INIT);
    }
}

int
ps_taptrace_add (ps_taptrace_t *self, const ps_tap_record_t *record, bool paired,
                 uint64_t request_us, ps_problem_t *problem)
{
    if (self->failed)
        return ps_problem_set (problem, 0, "cannot write %s: %s", self->path,
                               strerror (self->error));
    int pid;
    broker_t *broker = s_broker (self, record, &pid);
    json_t *rendered = broker ? ps_taprender_json (record) : NULL;
    if (!rendered) {
        self->failed = true;
        self->error = ENOMEM;
        return ps_problem_set (problem, 0, "%s: out of memory", self->path);
    }
    static const char *const event_fields[] = {"clock", "reason", "peer", NULL};
    static const char *const reject_fields[] = {"clock", "status", "reason", "peer", NULL};
    bool message = record->type != PSMQ__MSG_TYPE__MSG_NONE;
    switch (record->kind) {
    case PSMQ__TAP_KIND__TAP_REPLY:
        s_answer (self, broker, pid, record, paired, request_us, rendered);
        break;
    case PSMQ__TAP_KIND__TAP_REJECT:
        //  A rejected request is answered by its rejection; input that
        //  did not parse, or a request not seen, is an instant
        if (message && paired)
            s_answer (self, broker, pid, record, paired, request_us, rendered);
        else
            s_instant (self, "rejected", "event", pid, s_track (broker, record->worker),
                       record->time_us, s_args (rendered, reject_fields));
        break;
    case PSMQ__TAP_KIND__TAP_CONNECT:
    case PSMQ__TAP_KIND__TAP_DISCONNECT:
    case PSMQ__TAP_KIND__TAP_EVICT: {
        const char *name = record->kind == PSMQ__TAP_KIND__TAP_CONNECT      ? "connected"
                           : record->kind == PSMQ__TAP_KIND__TAP_DISCONNECT ? "disconnected"
                                                                            : "evicted";
        s_instant (self, name, "event", pid, s_track (broker, record->worker), record->time_us,
                   s_args (rendered, event_fields));
        break;
    }
    case PSMQ__TAP_KIND__TAP_CLOCK: {
        static const char *const clock_fields[] = {"min_clock", "slowest", "reason", NULL};
        s_instant (self, "slowest clock", "clock", pid, PS_TAPTRACE_AGGREGATION_TID,
                   record->time_us, s_args (rendered, clock_fields));
        if (record->min_clock >= 0)
            s_emit (self,
                    json_pack ("{s:s, s:s, s:I, s:i, s:{s:I}}", "name", "slowest clock", "ph", "C",
                               "ts", (json_int_t)record->time_us, "pid", pid, "args", "clock",
                               (json_int_t)record->min_clock),
                    true);
        break;
    }
    default: break;
    }
    json_decref (rendered);
    if (self->failed)
        return ps_problem_set (problem, 0, "cannot write %s: %s", self->path,
                               strerror (self->error));
    return 0;
}

uint64_t
ps_taptrace_events (const ps_taptrace_t *self)
{
    uint64_t gathering = 0;
    for (int slot = 0; slot < BROKER_SLOTS; slot++)
        gathering += self->brokers[slot] && self->brokers[slot]->busy.open;
    return self->events + gathering;
}

//  A metadata event: the name or the sort index of a process or thread
static void
s_metadata (ps_taptrace_t *self, const char *name, int pid, int tid, const char *label,
            int sort_index)
{
    json_t *args =
        label ? json_pack ("{s:s}", "name", label) : json_pack ("{s:i}", "sort_index", sort_index);
    json_t *event = args ? json_pack ("{s:s, s:s, s:i, s:i, s:o}", "name", name, "ph", "M", "pid",
                                      pid, "tid", tid, "args", args)
                         : NULL;
    s_emit (self, event, false);
}

//  One thread's name and place: the aggregation thread first, then the
//  workers by rank, then the no-rank track
static void
s_thread (ps_taptrace_t *self, int pid, int tid, const char *label, int sort_index)
{
    s_metadata (self, "thread_name", pid, tid, label, 0);
    s_metadata (self, "thread_sort_index", pid, tid, NULL, sort_index);
}

//  The names of one broker's process and tracks
static void
s_name_broker (ps_taptrace_t *self, const broker_t *broker, int pid)
{
    char label[64];
    if (broker->shards > 1)
        snprintf (label, sizeof label, "psbroker b%" PRIu32 "/%" PRIu32, broker->shard,
                  broker->shards);
    else
        snprintf (label, sizeof label, "psbroker");
    s_metadata (self, "process_name", pid, 0, label, 0);
    s_metadata (self, "process_sort_index", pid, 0, NULL, pid);
    s_thread (self, pid, PS_TAPTRACE_AGGREGATION_TID, "aggregation", -1);
    for (int rank = 0; rank < PS_MAX_WORKERS; rank++)
        for (int lane = 0; lane < broker->lanes[rank]; lane++) {
            if (lane)
                snprintf (label, sizeof label, "worker %d (overlapping %d)", rank, lane);
            else
                snprintf (label, sizeof label, "worker %d", rank);
            s_thread (self, pid, ps_taptrace_tid (rank, lane), label,
                      rank * PS_TAPTRACE_LANES + lane);
        }
    if (broker->no_rank)
        s_thread (self, pid, PS_TAPTRACE_NO_RANK_TID, "no rank (connections)",
                  PS_MAX_WORKERS * PS_TAPTRACE_LANES);
}

int
ps_taptrace_destroy (ps_taptrace_t **self_p, ps_problem_t *problem)
{
    ps_taptrace_t *self = *self_p;
    if (!self)
        return 0;
    for (int slot = 0; slot < BROKER_SLOTS; slot++)
        if (self->brokers[slot]) {
            s_busy_flush (self, self->brokers[slot], slot + 1);
            s_name_broker (self, self->brokers[slot], slot + 1);
            free (self->brokers[slot]);
        }
    if (!self->failed &&
        fprintf (self->file,
                 "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"generator\":\"pstap "
                 "trace\",\"events\":%" PRIu64 "}}\n",
                 self->events) < 0) {
        self->failed = true;
        self->error = errno;
    }
    if (self->file == stdout) {
        if (fflush (stdout) && !self->failed) {
            self->failed = true;
            self->error = errno;
        }
    }
    else if (fclose (self->file) && !self->failed) {
        self->failed = true;
        self->error = errno;
    }
    int rc = 0;
    if (self->failed)
        rc = ps_problem_set (problem, 0, "cannot write %s: %s", self->path, strerror (self->error));
    free (self->path);
    free (self);
    *self_p = NULL;
    return rc;
}
