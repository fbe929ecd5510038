/*  =========================================================================
    pstap_stats - pstap stats

    With --broker: the broker's INFO as a snapshot of labelled lines (or,
    with --json, the INFO object itself as the broker sent it, one line
    per broker: pstap checks that it is JSON and passes it through). A
    field an older broker does not send shows as "-". With --tap alone,
    the same figures computed from the records of one interval, which is
    also what `pstap read --view stats` prints for a whole recording.
    ========================================================================= */

#include "pstap_stats.h"
#include "ps_taprender.h"
#include "pstap_group.h"
#include "pstap_info.h"
#include "pstap_session.h"
#include "pstap_taps.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

//  A size from INFO in human units, or "-" when this broker does not send it
static const char *
s_fmt_info_bytes (const json_t *info, const char *path, char *buffer, size_t size)
{
    if (!json_is_number (pstap_info_find (info, path)))
        return "-";
    return ps_taprender_bytes (pstap_info_number (info, path, 0), buffer, size);
}

//  Ranks ever seen: INFO's "seen", else the workers that are not absent
static int64_t
s_info_seen (const json_t *info)
{
    int64_t seen = pstap_info_int (info, "seen", -1);
    const json_t *workers = pstap_info_find (info, "workers");
    if (seen >= 0 || !workers)
        return seen;
    seen = 0;
    size_t index;
    const json_t *worker;
    json_array_foreach (workers, index, worker)
    {
        const char *state = pstap_info_string (worker, "state", NULL);
        seen += state && strcmp (state, "absent") != 0;
    }
    return seen;
}

//  "group  shard 1 of 3: tcp://a:5555 tcp://b:5556 tcp://c:5557", for a
//  member of a group only
static void
s_stats_group (const json_t *info)
{
    int64_t shards = pstap_info_int (info, "shards", 1);
    if (shards <= 1)
        return;
    printf ("group       shard %" PRId64 " of %" PRId64, pstap_info_int (info, "shard", 0), shards);
    const json_t *list = pstap_info_find (info, "group");
    if (json_array_size (list) == 0)
        printf (", the others not known until a worker joins");
    else {
        printf (":");
        size_t index;
        const json_t *member;
        json_array_foreach (list, index, member)
        {
            const char *endpoint = json_string_value (member);
            printf (" %.300s", endpoint ? endpoint : "?");
        }
    }
    printf ("\n");
}

static void
s_stats_print (const json_t *info)
{
    char a[32], b[32], c[32], d[32];
    int64_t staleness = pstap_info_int (info, "staleness", 0);
    int64_t seen = s_info_seen (info);
    printf ("broker      %s\n", pstap_info_string (info, "endpoint", "?"));
    s_stats_group (info);
    printf ("uptime      %.1f s\n", pstap_info_number (info, "uptime_s", 0));
    printf ("world       %" PRId64 " workers, %s (staleness %" PRId64 ")\n",
            pstap_info_int (info, "world", 0), pstap_info_mode (staleness), staleness);
    snprintf (a, sizeof a, seen >= 0 ? "%" PRId64 : "-", seen);
    printf ("workers     %" PRId64 " live, %s ever seen, %s evicted\n",
            pstap_info_int (info, "live", 0), a, pstap_info_count (info, "evicted", b, sizeof b));
    int64_t slowest = pstap_info_int (info, "slowest", -1);
    int64_t fastest = pstap_info_int (info, "max_clock", -1);
    if (pstap_info_int (info, "live", 0) <= 0)
        printf ("clock       no live workers\n");
    else {
        printf ("clock       slowest %" PRId64, pstap_info_int (info, "min_clock", -1));
        if (slowest >= 0)
            printf (" (w%" PRId64 ")", slowest);
        printf (", fastest %" PRId64 "\n", fastest);
    }
    printf ("queues      aggregator %s, parked %s now (%s in all), %s pending gradients\n",
            pstap_info_count (info, "aggregator_queue", a, sizeof a),
            pstap_info_count (info, "parked_now", b, sizeof b),
            pstap_info_count (info, "parked_total", c, sizeof c),
            pstap_info_count (info, "pending_gradients", d, sizeof d));
    //  INFO's optimizer is the broker's default, not every key's: an INIT
    //  that names its own (psworker's does) overrides it
    printf ("store       %s keys, %s optimizer steps; default optimizer %s lr %g, used when an "
            "INIT names none\n",
            pstap_info_count (info, "keys", a, sizeof a),
            pstap_info_count (info, "optimizer_steps", b, sizeof b),
            pstap_info_string (info, "optimizer", "?"), pstap_info_number (info, "lr", 0));
    printf ("traffic     %s in, %s out, %s rejected\n",
            s_fmt_info_bytes (info, "bytes_in", a, sizeof a),
            s_fmt_info_bytes (info, "bytes_out", b, sizeof b),
            pstap_info_count (info, "rejected", c, sizeof c));
    const char *tap = pstap_info_string (info, "tap", NULL);
    if (!tap)
        printf ("tap         not reported by this broker\n");
    else if (!*tap)
        printf ("tap         off\n");
    else
        printf ("tap         %s, %s subscriptions, %s records, %s dropped\n", tap,
                pstap_info_count (info, "tap_subscriptions", a, sizeof a),
                pstap_info_count (info, "tap_records", b, sizeof b),
                pstap_info_count (info, "tap_dropped", c, sizeof c));

    printf ("\n%-10s %10s %10s %12s %12s\n", "type", "in", "out", "bytes in", "bytes out");
    for (int type = 1; type < PSTAP_NTYPES; type++) {
        const char *name = ps_codec_type_name (type);
        char path_in[64], path_out[64], path_bin[64], path_bout[64];
        snprintf (path_in, sizeof path_in, "messages_in.%s", name);
        snprintf (path_out, sizeof path_out, "replies_out.%s", name);
        snprintf (path_bin, sizeof path_bin, "bytes_in_by_type.%s", name);
        snprintf (path_bout, sizeof path_bout, "bytes_out_by_type.%s", name);
        if (pstap_info_int (info, path_in, 0) == 0 && pstap_info_int (info, path_out, 0) == 0)
            continue;
        printf ("%-10s %10s %10s %12s %12s\n", name, pstap_info_count (info, path_in, a, sizeof a),
                pstap_info_count (info, path_out, b, sizeof b),
                s_fmt_info_bytes (info, path_bin, c, sizeof c),
                s_fmt_info_bytes (info, path_bout, d, sizeof d));
    }
}

//  A group's brokers, one line each: each has its own drops and clock
static void
s_stats_brokers (const pstap_tally_t *tally)
{
    if (!tally->grouped)
        return;
    for (size_t b = 0; b < PSTAP_BROKER_SLOTS; b++) {
        const pstap_broker_row_t *row = &tally->brokers[b];
        if (!row->records)
            continue;
        char name[32], label[48];
        snprintf (label, sizeof label, "broker %s", pstap_broker_name (b, row, name, sizeof name));
        printf ("%-11s %" PRIu64 " records, dropped %" PRIu64 " meanwhile, slowest %" PRId64, label,
                row->records, pstap_broker_dropped (row), row->min_clock);
        if (row->slowest >= 0)
            printf (" (w%" PRId64 ")", row->slowest);
        printf (" at the end\n");
    }
}

void
pstap_stats_records (pstap_tally_t *tally, const char *source)
{
    char a[32], b[32], c[32], d[32];
    double seconds =
        tally->last_us > tally->first_us ? (tally->last_us - tally->first_us) / 1e6 : 0;
    size_t workers = 0;
    for (size_t w = 0; w < PS_MAX_WORKERS; w++)
        workers += tally->workers[w].seen;
    printf ("source      %s\n", source);
    printf ("span        %.3f s, %" PRIu64 " records, broker dropped %" PRIu64 " meanwhile\n",
            seconds, tally->records, pstap_tally_dropped (tally));
    printf ("workers     %zu seen, %" PRIu64 " connects, %" PRIu64 " disconnects, %" PRIu64
            " evictions\n",
            workers, tally->kinds[PSMQ__TAP_KIND__TAP_CONNECT],
            tally->kinds[PSMQ__TAP_KIND__TAP_DISCONNECT], tally->kinds[PSMQ__TAP_KIND__TAP_EVICT]);
    int64_t min_clock, slowest;
    pstap_tally_slowest (tally, &min_clock, &slowest);
    printf ("clock       slowest %" PRId64, min_clock);
    if (slowest >= 0)
        printf (" (w%" PRId64 ")", slowest);
    printf (" at the end, %" PRIu64 " moves\n", tally->kinds[PSMQ__TAP_KIND__TAP_CLOCK]);
    printf ("rejected    %" PRIu64 "\n", tally->kinds[PSMQ__TAP_KIND__TAP_REJECT]);
    s_stats_brokers (tally);
    printf ("\n%-10s %8s %8s %7s %11s %11s %9s %9s\n", "type", "requests", "replies", "errors",
            "bytes in", "bytes out", "p50", "p99");
    for (int type = 1; type < PSTAP_NTYPES; type++) {
        pstap_counts_t *counts = &tally->types[type];
        if (!counts->requests && !counts->replies && !counts->errors)
            continue;
        printf ("%-10s %8" PRIu64 " %8" PRIu64 " %7" PRIu64 " %11s %11s %9s %9s\n",
                ps_codec_type_name (type), counts->requests, counts->replies, counts->errors,
                ps_taprender_bytes ((double)counts->bytes_in, a, sizeof a),
                ps_taprender_bytes ((double)counts->bytes_out, b, sizeof b),
                pstap_counts_percentile (counts, 0.5, c, sizeof c),
                pstap_counts_percentile (counts, 0.99, d, sizeof d));
    }
}

//  Stats from the tap alone: the records of one interval
static int
s_stats_tap (pstap_session_t *session, pstap_taps_t *taps, const pstap_options_t *options,
             void *arg)
{
    pstap_session_pump (session, taps, zclock_mono () + options->interval_ms);
    char source[300];
    snprintf (source, sizeof source, "tap %.200s, %d ms of records", options->tap,
              options->interval_ms);
    pstap_stats_records (pstap_session_tally (session), source);
    return 0;
}

int
pstap_stats (const pstap_options_t *options)
{
    if (!options->broker) {
        if (options->json) {
            fprintf (stderr, "pstap stats: --json passes the broker's INFO through: it needs "
                             "--broker EP\n");
            return 2;
        }
        return pstap_session_run (options, PSTAP_VIEW_STATS, s_stats_tap, NULL);
    }
    //  One block (or INFO object) per broker, in shard order
    pstap_group_t *group = pstap_group_new (options);
    if (!group)
        return 1;
    for (size_t i = 0; i < group->nmembers; i++) {
        if (options->json)
            printf ("%s\n", group->members[i].info_text);
        else {
            if (i > 0)
                printf ("\n");
            s_stats_print (group->members[i].info);
        }
    }
    pstap_group_destroy (&group);
    return fflush (stdout) ? 1 : 0;
}
