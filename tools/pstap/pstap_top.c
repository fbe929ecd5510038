/*  =========================================================================
    pstap_top - pstap top: per worker and per key rates, refreshed

    Every interval, per worker: requests/s, bytes/s, reply latency p50
    and p99 (from the records of the interval), and each worker's clock,
    how far ahead of the slowest it is, and its requests parked (from
    INFO with --broker, else from the records: the last clock seen and
    the requests not answered yet); per key, hottest first. A broker group
    is shown as one: rates over all its brokers, a worker's lowest clock
    at any of them and its requests parked at all of them, and one row
    per broker, where a slow or dropping broker shows. Full-screen on a
    terminal; plain blocks with --batch or into a pipe.
    ========================================================================= */

#include "pstap_top.h"
#include "ps_taprender.h"
#include "pstap_info.h"
#include "pstap_taps.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  Keys listed at most, hottest first
#define MAX_KEYS_LISTED 20

//  What INFO adds to top: each rank's clock and parked requests, from one
//  broker or merged over a group's (each broker keeps its own clock)
typedef struct {
    size_t answered;                     //  brokers whose INFO came
    int64_t min_clock;                   //  slowest live clock, of the broker furthest behind
    int64_t slowest;                     //  its rank there
    int64_t live;                        //  workers live, at the broker that counts fewest
    int64_t world;                       //  ranks
    int64_t clocks[PS_MAX_WORKERS];      //  per rank, the lowest any broker has; -1 not live
    int64_t parked[PS_MAX_WORKERS];      //  per rank, parked at all brokers; -1 not said
    int64_t scratch[2 * PS_MAX_WORKERS]; //  room for one broker's clocks and parked
} top_info_t;

//  Merge one broker's INFO: a worker is as far as the broker that has
//  admitted the fewest of its clocks; its parked requests add up
static void
s_top_info_add (top_info_t *self, const json_t *info)
{
    int64_t world = pstap_info_world (info);
    int64_t *clocks = self->scratch, *parked = self->scratch + PS_MAX_WORKERS;
    pstap_info_workers (info, world, clocks, parked);
    bool first = self->answered++ == 0;
    for (int64_t rank = 0; rank < world || (first && rank < PS_MAX_WORKERS); rank++) {
        int64_t clock = rank < world ? clocks[rank] : -1;
        int64_t waiting = rank < world ? parked[rank] : -1;
        if (first || rank >= self->world) {
            self->clocks[rank] = clock;
            self->parked[rank] = waiting;
            continue;
        }
        if (clock >= 0 && (self->clocks[rank] < 0 || clock < self->clocks[rank]))
            self->clocks[rank] = clock;
        if (waiting >= 0)
            self->parked[rank] = (self->parked[rank] > 0 ? self->parked[rank] : 0) + waiting;
    }
    int64_t min_clock = pstap_info_int (info, "min_clock", -1);
    if (first || (min_clock >= 0 && (self->min_clock < 0 || min_clock < self->min_clock))) {
        self->min_clock = min_clock;
        self->slowest = pstap_info_int (info, "slowest", -1);
    }
    int64_t live = pstap_info_int (info, "live", 0);
    self->live = first || live < self->live ? live : self->live;
    self->world = world > self->world ? world : self->world;
}

//  Every member's INFO, merged; how many answered
static size_t
s_top_info_query (top_info_t *self, const pstap_group_t *group, const pstap_options_t *options)
{
    self->answered = 0;
    self->world = 0;
    for (size_t i = 0; i < group->nmembers && !zsys_interrupted; i++) {
        json_t *info = pstap_info_query (options->command, group->members[i].endpoint,
                                         options->timeout_ms, NULL);
        if (info)
            s_top_info_add (self, info);
        json_decref (info);
    }
    return self->answered;
}

typedef struct {
    const char *name;
    pstap_key_row_t *row;
} key_entry_t;

static int
s_compare_keys (const void *a, const void *b)
{
    const key_entry_t *left = a, *right = b;
    if (left->row->bytes != right->row->bytes)
        return left->row->bytes < right->row->bytes ? 1 : -1;
    return strcmp (left->name, right->name);
}

static void
s_top_keys (pstap_tally_t *tally, double seconds)
{
    size_t nkeys = zhashx_size (tally->keys);
    if (nkeys == 0)
        return;
    key_entry_t *entries = calloc (nkeys, sizeof *entries);
    if (!entries)
        return;
    size_t n = 0;
    for (pstap_key_row_t *row = zhashx_first (tally->keys); row && n < nkeys;
         row = zhashx_next (tally->keys))
        entries[n++] = (key_entry_t){zhashx_cursor (tally->keys), row};
    qsort (entries, n, sizeof *entries, s_compare_keys);
    printf ("\n%-24s %9s %9s %12s\n", "key", "push/s", "pull/s", "bytes/s");
    for (size_t i = 0; i < n && i < MAX_KEYS_LISTED; i++) {
        char rate[32];
        printf ("%-24.200s %9.1f %9.1f %10s/s\n", entries[i].name, entries[i].row->pushes / seconds,
                entries[i].row->pulls / seconds,
                ps_taprender_bytes (entries[i].row->bytes / seconds, rate, sizeof rate));
    }
    if (n > MAX_KEYS_LISTED)
        printf ("(%zu more keys)\n", n - MAX_KEYS_LISTED);
    if (tally->keys_dropped)
        printf ("(%" PRIu64 " mentions of keys past the first %d not counted)\n",
                tally->keys_dropped, PS_MAX_KEYS);
    free (entries);
}

//  A group's brokers, one row each: a slow or dropping broker shows here
static void
s_top_brokers (pstap_tally_t *tally, double seconds)
{
    if (!tally->grouped)
        return;
    printf ("\n%-7s %8s %11s %9s %9s %8s\n", "broker", "req/s", "bytes/s", "p50", "p99", "dropped");
    for (size_t b = 0; b < PSTAP_BROKER_SLOTS; b++) {
        pstap_broker_row_t *row = &tally->brokers[b];
        if (!row->records)
            continue;
        char name[32], rate[32], p50[32], p99[32];
        printf ("%-7s %8.1f %9s/s %9s %9s %8" PRIu64 "\n",
                pstap_broker_name (b, row, name, sizeof name), row->counts.requests / seconds,
                ps_taprender_bytes ((row->counts.bytes_in + row->counts.bytes_out) / seconds, rate,
                                    sizeof rate),
                pstap_counts_percentile (&row->counts, 0.5, p50, sizeof p50),
                pstap_counts_percentile (&row->counts, 0.99, p99, sizeof p99),
                pstap_broker_dropped (row));
    }
}

//  One screen of top: rates over seconds, clocks from INFO when given
static void
s_top_print (pstap_session_t *session, const top_info_t *info, double seconds, const char *title)
{
    pstap_tally_t *tally = pstap_session_tally (session);
    //  One record (or none) spans no time: show counts rather than infinities
    if (seconds <= 0)
        seconds = 1;
    int64_t min_clock, slowest;
    pstap_tally_slowest (tally, &min_clock, &slowest);
    if (info)
        min_clock = info->min_clock, slowest = info->slowest;
    printf ("%s  %.1f s  %" PRIu64 " records", title, seconds, tally->records);
    if (min_clock >= 0)
        printf ("  slowest clock %" PRId64, min_clock);
    if (slowest >= 0)
        printf (" (w%" PRId64 ")", slowest);
    if (info)
        printf ("  %" PRId64 " live of %" PRId64, info->live, info->world);
    printf ("\n\n%-7s %8s %11s %9s %9s %7s %7s %8s\n", "worker", "req/s", "bytes/s", "p50", "p99",
            "clock", "behind", "pending");
    //  Clocks and parked requests: INFO's, else what the records said
    int64_t *clocks = calloc (PS_MAX_WORKERS, sizeof *clocks);
    int64_t *parked = calloc (PS_MAX_WORKERS, sizeof *parked);
    uint64_t *pending = calloc (PS_MAX_WORKERS, sizeof *pending);
    int64_t world = info ? info->world : 0;
    if (!clocks || !parked || !pending) {
        printf ("(out of memory)\n");
        world = -1;
    }
    else if (info) {
        memcpy (clocks, info->clocks, PS_MAX_WORKERS * sizeof *clocks);
        memcpy (parked, info->parked, PS_MAX_WORKERS * sizeof *parked);
    }
    else {
        ps_tappair_pending (pstap_session_pairing (session), pending, PS_MAX_WORKERS);
        for (size_t rank = 0; rank < PS_MAX_WORKERS; rank++) {
            clocks[rank] = tally->workers[rank].clock;
            parked[rank] = (int64_t)pending[rank];
        }
    }
    for (int64_t rank = 0; world >= 0 && rank < PS_MAX_WORKERS; rank++) {
        pstap_worker_row_t *row = &tally->workers[rank];
        if (!row->seen && rank >= world)
            continue;
        int64_t clock = rank < world || !info ? clocks[rank] : -1;
        int64_t waiting = rank < world || !info ? parked[rank] : -1;
        char rate[32], p50[32], p99[32], clock_text[24], behind[24], parked_text[24];
        snprintf (clock_text, sizeof clock_text, clock >= 0 ? "%" PRId64 : "-", clock);
        snprintf (behind, sizeof behind, clock >= 0 && min_clock >= 0 ? "%+" PRId64 : "-",
                  clock - min_clock);
        snprintf (parked_text, sizeof parked_text, waiting >= 0 ? "%" PRId64 : "-", waiting);
        printf ("w%-6" PRId64 " %8.1f %9s/s %9s %9s %7s %7s %8s\n", rank,
                row->counts.requests / seconds,
                ps_taprender_bytes ((row->counts.bytes_in + row->counts.bytes_out) / seconds, rate,
                                    sizeof rate),
                pstap_counts_percentile (&row->counts, 0.5, p50, sizeof p50),
                pstap_counts_percentile (&row->counts, 0.99, p99, sizeof p99), clock_text, behind,
                parked_text);
    }
    free (clocks);
    free (parked);
    free (pending);
    s_top_brokers (tally, seconds);
    s_top_keys (tally, seconds);
}

void
pstap_top_print_records (pstap_session_t *session, double seconds, const char *title)
{
    s_top_print (session, NULL, seconds, title);
}

//  Refresh the screen every interval until -n N refreshes or a signal
static int
s_top_loop (pstap_session_t *session, pstap_taps_t *taps, const pstap_options_t *options, void *arg)
{
    top_info_t *info = arg;
    pstap_group_t *group = pstap_taps_group (taps);
    bool screen = !options->batch && isatty (STDOUT_FILENO);
    for (uint64_t iteration = 0; !zsys_interrupted && !pstap_session_done (session); iteration++) {
        int64_t started = zclock_mono ();
        pstap_session_pump (session, taps, started + options->interval_ms);
        if (zsys_interrupted)
            break;
        double seconds = (zclock_mono () - started) / 1e3;
        size_t answered = options->broker ? s_top_info_query (info, group, options) : 0;
        if (zsys_interrupted)
            break;
        char title[400], brokers[32] = "";
        time_t now = time (NULL);
        struct tm local;
        localtime_r (&now, &local);
        if (group->nmembers > 1)
            snprintf (brokers, sizeof brokers, "  %zu brokers", group->nmembers);
        snprintf (title, sizeof title, "pstap top  %.200s%s  %02d:%02d:%02d",
                  options->broker ? options->broker : options->tap, brokers, local.tm_hour,
                  local.tm_min, local.tm_sec);
        if (screen)
            printf ("\033[H\033[2J");
        else if (iteration > 0)
            printf ("\n");
        s_top_print (session, answered ? info : NULL, seconds, title);
        if (options->broker && !answered)
            printf ("(no INFO from the broker: clocks and parked requests unknown)\n");
        else if (options->broker && answered < group->nmembers)
            printf ("(INFO from %zu of the %zu brokers only)\n", answered, group->nmembers);
        fflush (stdout);
        pstap_tally_reset (pstap_session_tally (session));
        if (options->iterations && iteration + 1 >= options->iterations)
            break;
    }
    return 0;
}

int
pstap_top (const pstap_options_t *options)
{
    //  128 KB of arrays: not for the stack
    top_info_t *info = calloc (1, sizeof *info);
    if (!info) {
        fprintf (stderr, "pstap top: out of memory\n");
        return 1;
    }
    int rc = pstap_session_run (options, PSTAP_VIEW_TOP, s_top_loop, info);
    free (info);
    return rc;
}
