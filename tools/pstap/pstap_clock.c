/*  =========================================================================
    pstap_clock - pstap clock: the vector clock, refreshed

    Every interval, from each broker's INFO: each worker's clock as a bar
    measured from the slowest (scaled when they are far apart), who the
    slowest is and whose parked requests wait on it, each worker's clocks
    per second since the last refresh, and the parked requests with how
    long they have waited. Only INFO knows the clocks and the parked
    requests, so clock needs --broker and reads no tap.
    ========================================================================= */

#include "pstap_clock.h"
#include "ps_limits.h"
#include "ps_taprender.h"
#include "pstap_group.h"
#include "pstap_info.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Width of the longest bar
#define BAR_WIDTH 40
//  Parked requests listed at most, in the order INFO lists them
#define MAX_PARKED_LISTED 20

//  A parked request from INFO's list: "w1  clock  clock 12  waiting 1.2s"
static void
s_clock_parked (const json_t *item)
{
    char waited[32];
    double waiting_us = pstap_info_number (item, "waiting_ms", 0) * 1000;
    printf ("  w%-5" PRId64 " %-6s clock %-8" PRId64 " waiting %s\n",
            pstap_info_int (item, "worker", -1), pstap_info_string (item, "type", "?"),
            pstap_info_int (item, "clock", -1),
            ps_taprender_us (waiting_us, waited, sizeof waited));
}

static void
s_clock_print (const json_t *info, const int64_t *clocks, const int64_t *parked,
               const int64_t *previous, double seconds, int64_t world, const char *title)
{
    int64_t min = pstap_info_int (info, "min_clock", -1);
    int64_t slowest = pstap_info_int (info, "slowest", -1);
    int64_t staleness = pstap_info_int (info, "staleness", 0);
    int64_t max = -1, waiting = 0;
    for (int64_t rank = 0; rank < world; rank++) {
        max = clocks[rank] > max ? clocks[rank] : max;
        waiting += parked[rank] > 0 ? parked[rank] : 0;
    }
    printf ("%s  %s staleness %" PRId64, title, pstap_info_mode (staleness), staleness);
    if (max < 0)
        printf ("  no live workers\n\n");
    else
        printf ("  slowest %" PRId64 "  fastest %" PRId64 "  spread %" PRId64 "\n\n", min, max,
                max - min);
    //  One '#' per clock ahead of the slowest, scaled when they are far apart
    double scale = max - min > BAR_WIDTH ? (double)BAR_WIDTH / (double)(max - min) : 1;
    for (int64_t rank = 0; rank < world; rank++) {
        if (clocks[rank] < 0) {
            printf ("w%-5" PRId64 " %8s  absent or gone\n", rank, "-");
            continue;
        }
        char bar[BAR_WIDTH + 1], rate[32] = "", note[96] = "", count[32] = "";
        int64_t ahead = min >= 0 ? clocks[rank] - min : 0;
        int length = (int)((double)ahead * scale + 0.5);
        length = length < 0 ? 0 : length > BAR_WIDTH ? BAR_WIDTH : length;
        memset (bar, '#', (size_t)length);
        bar[length] = 0;
        if (previous && previous[rank] >= 0 && seconds > 0)
            snprintf (rate, sizeof rate, "%.1f clocks/s",
                      (double)(clocks[rank] - previous[rank]) / seconds);
        if (parked[rank] > 0)
            snprintf (count, sizeof count, "%" PRId64 " parked", parked[rank]);
        int64_t others = waiting - (parked[rank] > 0 ? parked[rank] : 0);
        if (rank == slowest && others > 0)
            snprintf (note, sizeof note, "  <- slowest: %" PRId64 " parked requests of others wait",
                      others);
        else if (rank == slowest)
            snprintf (note, sizeof note, "  <- slowest");
        printf ("w%-5" PRId64 " %8" PRId64 "  |%-*s| %+6" PRId64 "  %15s  %9s%s\n", rank,
                clocks[rank], BAR_WIDTH, bar, ahead, rate, count, note);
    }
    const json_t *list = pstap_info_find (info, "parked");
    if (!json_is_array (list)) {
        char count[32];
        printf ("\nparked requests: %s (this broker does not list them)\n",
                pstap_info_count (info, "parked_now", count, sizeof count));
        return;
    }
    size_t shown = 0, nparked = json_array_size (list);
    printf ("\nparked requests: %zu\n", nparked);
    for (; shown < nparked && shown < MAX_PARKED_LISTED; shown++)
        s_clock_parked (json_array_get (list, shown));
    if (nparked > shown)
        printf ("  (%zu more)\n", nparked - shown);
}

//  What the clock view keeps of one broker between refreshes
typedef struct {
    int64_t *clocks;    //  per rank, this refresh
    int64_t *previous;  //  and the last, for the rates
    int64_t *parked;    //  per rank, parked now
    int64_t polled;     //  when the last refresh was, monotonic ms
    bool have_previous; //  previous holds a refresh
} clock_state_t;

//  One refresh of one broker: its INFO (owned) as a block under title
static void
s_clock_refresh (clock_state_t *state, json_t *info, int64_t now, const char *title)
{
    if (!info) {
        printf ("%s  (no INFO from the broker this time)\n", title);
        return;
    }
    int64_t world = pstap_info_world (info);
    pstap_info_workers (info, world, state->clocks, state->parked);
    s_clock_print (info, state->clocks, state->parked,
                   state->have_previous ? state->previous : NULL, (now - state->polled) / 1e3,
                   world, title);
    memcpy (state->previous, state->clocks, (size_t)world * sizeof *state->clocks);
    state->have_previous = true;
    state->polled = now;
}

static void
s_clock_states_destroy (clock_state_t *states, size_t count)
{
    for (size_t i = 0; states && i < count; i++) {
        free (states[i].clocks);
        free (states[i].previous);
        free (states[i].parked);
    }
    free (states);
}

static clock_state_t *
s_clock_states_new (size_t count)
{
    clock_state_t *states = calloc (count, sizeof *states);
    for (size_t i = 0; states && i < count; i++) {
        states[i].clocks = calloc (PS_MAX_WORKERS, sizeof *states[i].clocks);
        states[i].previous = calloc (PS_MAX_WORKERS, sizeof *states[i].previous);
        states[i].parked = calloc (PS_MAX_WORKERS, sizeof *states[i].parked);
        if (!states[i].clocks || !states[i].previous || !states[i].parked) {
            s_clock_states_destroy (states, count);
            return NULL;
        }
    }
    return states;
}

//  Sleep until that zclock_mono time, or a signal
static void
s_sleep_until (int64_t until_ms)
{
    int64_t left;
    while (!zsys_interrupted && (left = until_ms - zclock_mono ()) > 0)
        zclock_sleep (left < PSTAP_POLL_MS ? (int)left : PSTAP_POLL_MS);
}

//  One refresh of every member, one block under the other; the first
//  shows the INFO that found the brokers
static void
s_clock_blocks (pstap_group_t *group, clock_state_t *states, uint64_t iteration,
                const pstap_options_t *options)
{
    for (size_t i = 0; i < group->nmembers && !zsys_interrupted; i++) {
        pstap_member_t *member = &group->members[i];
        json_t *info = member->info;
        member->info = NULL;
        if (iteration > 0)
            info = pstap_info_query ("clock", member->endpoint, options->timeout_ms, NULL);
        if (zsys_interrupted) {
            json_decref (info);
            break;
        }
        char title[400], shard[32] = "";
        if (member->shards > 1)
            snprintf (shard, sizeof shard, "  b%u/%u", member->shard, member->shards);
        snprintf (title, sizeof title, "pstap clock  %.300s%s", member->endpoint, shard);
        if (i > 0)
            printf ("\n");
        s_clock_refresh (&states[i], info, zclock_mono (), title);
        json_decref (info);
    }
}

//  Each broker of a group keeps its own vector clock and parks its own
//  requests, so each has its own block, one under the other
int
pstap_clock (const pstap_options_t *options)
{
    if (!options->broker) {
        fprintf (stderr, "pstap clock: needs --broker EP (the vector clock comes from INFO)\n");
        return 2;
    }
    pstap_group_t *group = pstap_group_new (options);
    if (!group)
        return zsys_interrupted ? 0 : 1;
    clock_state_t *states = s_clock_states_new (group->nmembers);
    if (!states) {
        pstap_group_destroy (&group);
        fprintf (stderr, "pstap clock: out of memory\n");
        return 1;
    }
    bool screen = !options->batch && isatty (STDOUT_FILENO);
    for (uint64_t iteration = 0; !zsys_interrupted; iteration++) {
        int64_t started = zclock_mono ();
        if (screen)
            printf ("\033[H\033[2J");
        else if (iteration > 0)
            printf ("\n");
        s_clock_blocks (group, states, iteration, options);
        fflush (stdout);
        if (options->iterations && iteration + 1 >= options->iterations)
            break;
        s_sleep_until (started + options->interval_ms);
    }
    s_clock_states_destroy (states, group->nmembers);
    pstap_group_destroy (&group);
    return 0;
}
