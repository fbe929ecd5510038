/*  =========================================================================
    ps_prometheus - INFO JSON into Prometheus text (see ps_prometheus.h)

    Why from the INFO JSON and not from the ROUTER loop's structs: INFO is
    the broker's one account of itself (pstap and the tests read it too),
    so the two views cannot disagree, and the rendering runs on the
    metrics thread, not the loop. No Prometheus client library for C is
    packaged in Debian; the format is lines of text, written here with
    stdio into an open_memstream buffer.
    ========================================================================= */

#include "ps_prometheus.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  # HELP and # TYPE of a family
static void
s_family (FILE *out, const char *name, const char *type, const char *help)
{
    fprintf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

//  A label value with \, " and newline escaped as the format asks
static void
s_label_value (FILE *out, const char *value)
{
    for (const char *c = value; *c; c++) {
        if (*c == '\\' || *c == '"')
            fprintf (out, "\\%c", *c);
        else if (*c == '\n')
            fputs ("\\n", out);
        else
            fputc (*c, out);
    }
}

//  A label value in snake_case: "not-registered" and the protocol's
//  "ERR_NOT_REGISTERED" both become not_registered
static void
s_snake_value (FILE *out, const char *value)
{
    if (strncmp (value, "ERR_", 4) == 0)
        value += 4;
    for (const char *c = value; *c; c++)
        fputc (*c == '-' ? '_' : tolower ((unsigned char)*c), out);
}

//  A sample's value: whole numbers in full, others to 15 digits (so that
//  a bucket's bound reads 0.0001, not 0.00010000000000000000479)
static void
s_value (FILE *out, double value)
{
    if (value != value)
        fputs ("NaN", out);
    else if (value > -9e15 && value < 9e15 && value == (double)(int64_t)value)
        fprintf (out, "%" PRId64, (int64_t)value);
    else
        fprintf (out, "%.15g", value);
}

static void
s_sample (FILE *out, const char *name, double value)
{
    fprintf (out, "%s ", name);
    s_value (out, value);
    fputc ('\n', out);
}

//  A number of the snapshot, or false when it is missing
static bool
s_number (const json_t *object, const char *key, double *value)
{
    json_t *field = json_object_get (object, key);
    if (!json_is_number (field))
        return false;
    *value = json_number_value (field);
    return true;
}

//  A family of one sample taken from the snapshot's field key
static void
s_single (FILE *out, const json_t *object, const char *key, const char *name, const char *type,
          const char *help)
{
    double value;
    if (!s_number (object, key, &value))
        return;
    s_family (out, name, type, help);
    s_sample (out, name, value);
}

//  A family of one sample per member of the snapshot's object key, the
//  member's name as label (in snake_case)
static void
s_labelled (FILE *out, const json_t *snapshot, const char *key, const char *name, const char *label,
            const char *type, const char *help)
{
    json_t *object = json_object_get (snapshot, key);
    if (!json_is_object (object))
        return;
    s_family (out, name, type, help);
    const char *member;
    json_t *value;
    json_object_foreach (object, member, value)
    {
        if (!json_is_number (value) || strcmp (member, "none") == 0)
            continue;
        fprintf (out, "%s{%s=\"", name, label);
        s_snake_value (out, member);
        fputs ("\"} ", out);
        s_value (out, json_number_value (value));
        fputc ('\n', out);
    }
}

// ------------------------------------------------------------ per worker

//  The fastest live rank's clock, -1 when none is live
static int64_t
s_fastest (const json_t *workers)
{
    int64_t fastest = -1;
    size_t index;
    json_t *worker;
    json_array_foreach (workers, index, worker)
    {
        json_t *clock = json_object_get (worker, "clock");
        const char *state = json_string_value (json_object_get (worker, "state"));
        if (state && strcmp (state, "live") == 0 && json_is_integer (clock) &&
            json_integer_value (clock) > fastest)
            fastest = json_integer_value (clock);
    }
    return fastest;
}

//  One sample per rank of workers[].field (live ranks only, when asked),
//  scaled
static void
s_per_worker (FILE *out, const json_t *workers, const char *field, bool live_only, double scale,
              const char *name)
{
    size_t index;
    json_t *worker;
    json_array_foreach (workers, index, worker)
    {
        json_t *rank = json_object_get (worker, "rank");
        json_t *value = json_object_get (worker, field);
        const char *state = json_string_value (json_object_get (worker, "state"));
        bool live = state && strcmp (state, "live") == 0;
        if (!json_is_integer (rank) || !json_is_number (value) || (live_only && !live))
            continue;
        fprintf (out, "%s{rank=\"%" JSON_INTEGER_FORMAT "\"} ", name, json_integer_value (rank));
        s_value (out, json_number_value (value) * scale);
        fputc ('\n', out);
    }
}

static void
s_workers (FILE *out, const json_t *snapshot)
{
    json_t *workers = json_object_get (snapshot, "workers");
    if (!json_is_array (workers))
        return;
    s_family (out, "psmq_worker_up", "gauge", "1 while the rank is in the job, else 0");
    size_t index;
    json_t *worker;
    json_array_foreach (workers, index, worker)
    {
        json_t *rank = json_object_get (worker, "rank");
        const char *state = json_string_value (json_object_get (worker, "state"));
        if (json_is_integer (rank))
            fprintf (out, "psmq_worker_up{rank=\"%" JSON_INTEGER_FORMAT "\"} %d\n",
                     json_integer_value (rank), state && strcmp (state, "live") == 0);
    }
    s_family (out, "psmq_worker_clock", "gauge",
              "The rank's vector clock: the clocks it has finished");
    s_per_worker (out, workers, "clock", false, 1, "psmq_worker_clock");
    s_family (out, "psmq_worker_lag_clocks", "gauge",
              "Clocks the live rank is behind the fastest live rank");
    int64_t fastest = s_fastest (workers);
    json_array_foreach (workers, index, worker)
    {
        json_t *rank = json_object_get (worker, "rank");
        json_t *clock = json_object_get (worker, "clock");
        const char *state = json_string_value (json_object_get (worker, "state"));
        if (json_is_integer (rank) && json_is_integer (clock) && state &&
            strcmp (state, "live") == 0)
            fprintf (out, "psmq_worker_lag_clocks{rank=\"%" JSON_INTEGER_FORMAT "\"} %" PRId64 "\n",
                     json_integer_value (rank), fastest - (int64_t)json_integer_value (clock));
    }
    s_family (out, "psmq_worker_parked_requests", "gauge",
              "The live rank's requests parked on the staleness bound now");
    s_per_worker (out, workers, "parked", true, 1, "psmq_worker_parked_requests");
    s_family (out, "psmq_worker_last_seen_seconds", "gauge",
              "Seconds since the live rank's last message");
    s_per_worker (out, workers, "last_seen_ms", true, 1e-3, "psmq_worker_last_seen_seconds");
    s_family (out, "psmq_worker_messages_total", "counter", "Messages received from the rank");
    s_per_worker (out, workers, "messages_in", false, 1, "psmq_worker_messages_total");
}

// ------------------------------------------------------------ histograms

//  One histogram (the snapshot's {"buckets", "count", "sum_us"}) of the
//  family name with label type
static void
s_histogram (FILE *out, const char *name, const char *type, const json_t *bounds,
             const json_t *histogram)
{
    json_t *buckets = json_object_get (histogram, "buckets");
    double count, sum_us;
    if (!json_is_array (buckets) || json_array_size (buckets) != json_array_size (bounds) + 1 ||
        !s_number (histogram, "count", &count) || !s_number (histogram, "sum_us", &sum_us))
        return;
    double cumulative = 0;
    for (size_t i = 0; i < json_array_size (bounds); i++) {
        cumulative += json_number_value (json_array_get (buckets, i));
        fprintf (out, "%s_bucket{type=\"", name);
        s_label_value (out, type);
        fputs ("\",le=\"", out);
        s_value (out, json_number_value (json_array_get (bounds, i)) / 1e6);
        fputs ("\"} ", out);
        s_value (out, cumulative);
        fputc ('\n', out);
    }
    fprintf (out, "%s_bucket{type=\"", name);
    s_label_value (out, type);
    fputs ("\",le=\"+Inf\"} ", out);
    s_value (out, count);
    fputc ('\n', out);
    fprintf (out, "%s_sum{type=\"", name);
    s_label_value (out, type);
    fputs ("\"} ", out);
    s_value (out, sum_us / 1e6);
    fputc ('\n', out);
    fprintf (out, "%s_count{type=\"", name);
    s_label_value (out, type);
    fputs ("\"} ", out);
    s_value (out, count);
    fputc ('\n', out);
}

static void
s_latency (FILE *out, const json_t *snapshot)
{
    static const struct {
        const char *stage, *name, *help;
    } stages[] = {{"queued_us", "psmq_request_queued_seconds",
                   "A request's time in the broker besides parking and aggregation (its queue and "
                   "handling), by message type"},
                  {"aggregation_us", "psmq_request_aggregation_seconds",
                   "A request's time waiting for the aggregation thread, by message type"},
                  {"parked_us", "psmq_request_parked_seconds",
                   "A request's time parked on the staleness bound, by message type"}};
    json_t *latency = json_object_get (snapshot, "latency");
    json_t *bounds = json_object_get (latency, "bounds_us");
    if (!json_is_object (latency) || !json_is_array (bounds))
        return;
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        json_t *by_type = json_object_get (latency, stages[i].stage);
        if (!json_is_object (by_type))
            continue;
        s_family (out, stages[i].name, "histogram", stages[i].help);
        const char *type;
        json_t *histogram;
        json_object_foreach (by_type, type, histogram)
            s_histogram (out, stages[i].name, type, bounds, histogram);
    }
}

// ------------------------------------------------------------ the rest

static void
s_checkpoint (FILE *out, const json_t *snapshot, int64_t now_unix_ms)
{
    json_t *checkpoint = json_object_get (snapshot, "checkpoint");
    if (!json_is_object (checkpoint))
        return;
    s_single (out, checkpoint, "written", "psmq_checkpoints_written_total", "counter",
              "Checkpoints written");
    s_single (out, checkpoint, "failed", "psmq_checkpoints_failed_total", "counter",
              "Checkpoint writes that failed");
    double last_ms;
    if (s_number (checkpoint, "last_unix_ms", &last_ms) && last_ms > 0) {
        s_family (out, "psmq_checkpoint_age_seconds", "gauge",
                  "Seconds since the newest checkpoint was written");
        double age = (now_unix_ms - last_ms) / 1000.0;
        s_sample (out, "psmq_checkpoint_age_seconds", age > 0 ? age : 0);
        s_single (out, checkpoint, "last_clock", "psmq_checkpoint_clock", "gauge",
                  "The job clock of the newest checkpoint written");
        s_single (out, checkpoint, "last_bytes", "psmq_checkpoint_bytes", "gauge",
                  "Bytes of the newest checkpoint written");
    }
}

static void
s_limits (FILE *out, const json_t *snapshot)
{
    json_t *limits = json_object_get (snapshot, "limits");
    if (!json_is_object (limits))
        return;
    s_single (out, limits, "store_bytes", "psmq_store_bytes", "gauge",
              "Bytes the store holds: values, optimizer state, BSP sums");
    s_single (out, limits, "max_memory", "psmq_store_limit_bytes", "gauge",
              "Bytes the store may hold (--max-memory)");
    s_single (out, limits, "connections", "psmq_connections", "gauge",
              "Connections open on the worker port");
    s_single (out, limits, "max_connections", "psmq_connections_limit", "gauge",
              "Connections allowed at once (--max-connections)");
    double over_cap, idle;
    if (s_number (limits, "shed_over_cap", &over_cap) && s_number (limits, "shed_idle", &idle)) {
        s_family (out, "psmq_connections_shed_total", "counter",
                  "Unregistered connections closed, by reason");
        s_sample (out, "psmq_connections_shed_total{reason=\"over_cap\"}", over_cap);
        s_sample (out, "psmq_connections_shed_total{reason=\"idle\"}", idle);
    }
    s_single (out, limits, "push_waiting_bytes", "psmq_push_waiting_bytes", "gauge",
              "Bytes of pushes waiting for the aggregation thread");
    s_single (out, limits, "push_granted_bytes", "psmq_push_granted_bytes", "gauge",
              "Bytes of push parts granted and not come yet");
    s_single (out, limits, "push_budget", "psmq_push_budget_bytes", "gauge",
              "What pushes waiting and granted may reach, all workers (--push-budget)");
    s_single (out, limits, "push_grants", "psmq_push_grants_total", "counter",
              "Parts of pushes in parts granted");
    s_single (out, limits, "push_grants_withheld", "psmq_push_grants_withheld_total", "counter",
              "Times a grant waited for the push budget");
}

static void
s_render (FILE *out, const json_t *snapshot, int64_t now_unix_ms)
{
    s_single (out, snapshot, "uptime_s", "psmq_uptime_seconds", "gauge",
              "Seconds since the broker started");
    s_single (out, snapshot, "world", "psmq_workers", "gauge", "Ranks in the job (--workers)");
    s_single (out, snapshot, "live", "psmq_workers_live", "gauge", "Ranks in the job now");
    s_single (out, snapshot, "min_clock", "psmq_clock_min", "gauge",
              "The slowest live rank's clock, -1 when none is live");
    s_single (out, snapshot, "max_clock", "psmq_clock_max", "gauge", "The fastest rank's clock");
    s_workers (out, snapshot);
    s_labelled (out, snapshot, "messages_in", "psmq_requests_total", "type", "counter",
                "Messages received from workers and tools, by message type");
    s_labelled (out, snapshot, "replies_out", "psmq_replies_total", "type", "counter",
                "Replies sent, by message type (error: refusals)");
    s_labelled (out, snapshot, "bytes_in_by_type", "psmq_received_bytes_total", "type", "counter",
                "Tensor bytes received, by message type");
    s_labelled (out, snapshot, "bytes_out_by_type", "psmq_sent_bytes_total", "type", "counter",
                "Tensor bytes sent, by message type");
    s_latency (out, snapshot);
    s_single (out, snapshot, "parked_now", "psmq_parked_requests", "gauge",
              "Requests parked on the staleness bound or the aggregation thread now");
    s_single (out, snapshot, "parked_total", "psmq_requests_parked_total", "counter",
              "Requests that were parked");
    s_labelled (out, snapshot, "evicted_by_reason", "psmq_evictions_total", "reason", "counter",
                "Ranks evicted, by reason");
    s_labelled (out, snapshot, "rejected_by_reason", "psmq_rejected_requests_total", "reason",
                "counter", "Input refused with an error, by the error's code");
    json_t *auth = json_object_get (snapshot, "auth");
    if (json_is_object (auth))
        s_single (out, auth, "refused", "psmq_connections_refused_total", "counter",
                  "Connections refused by authentication (keys, addresses)");
    s_limits (out, snapshot);
    s_single (out, snapshot, "keys", "psmq_keys", "gauge", "Keys in the store");
    s_single (out, snapshot, "optimizer_steps", "psmq_optimizer_steps_total", "counter",
              "Optimizer steps applied");
    s_single (out, snapshot, "aggregator_queue", "psmq_aggregator_queue", "gauge",
              "Commands the aggregation thread has not finished");
    s_checkpoint (out, snapshot, now_unix_ms);
    s_single (out, snapshot, "tap_subscriptions", "psmq_tap_subscriptions", "gauge",
              "Subscriptions of tap readers");
    s_single (out, snapshot, "tap_records", "psmq_tap_records_total", "counter",
              "Tap records published");
    s_single (out, snapshot, "tap_dropped", "psmq_tap_dropped_total", "counter",
              "Tap records dropped for slow readers");
}

char *
ps_prometheus_render (const char *snapshot, int64_t now_unix_ms)
{
    json_t *root = json_loads (snapshot, 0, NULL);
    if (!json_is_object (root)) {
        json_decref (root);
        return NULL;
    }
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out) {
        json_decref (root);
        return NULL;
    }
    s_render (out, root, now_unix_ms);
    json_decref (root);
    if (fclose (out) != 0) {
        free (text);
        return NULL;
    }
    return text;
}
