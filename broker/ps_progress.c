/*  =========================================================================
    ps_progress - which ranks hold the job back without making progress
    (see ps_progress.h)

    An array of the time of each rank's last progress, and three times of
    the job: when the slowest clock last moved, when the clock being
    measured began, and the longest clock so far. The check walks every
    live rank and, for one stalled past the deadline, counts the waiting
    requests it holds back; it runs once per heartbeat interval, so a walk
    over the world and the waiting requests is cheap enough, and keeping
    no index means nothing to keep in step with the vector clock.
    ========================================================================= */

#include "ps_progress.h"
#include "ps_limits.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>

struct ps_progress_t {
    uint32_t world;      //  ranks
    int64_t deadline_ms; //  0 off, PS_PROGRESS_AUTO, or fixed
    int64_t floor_ms;    //  the automatic deadline's floor
    int64_t *since;      //  per rank: monotonic ms of its last progress
    int64_t moved;       //  when the slowest clock last moved
    int64_t mark;        //  when the clock being measured began, -1 none
    int64_t known_min;   //  the slowest clock as last seen
    int64_t longest;     //  the longest clock learnt, ms
};

ps_progress_t *
ps_progress_new (uint32_t world, int64_t deadline_ms, int64_t floor_ms)
{
    assert (deadline_ms == PS_PROGRESS_AUTO || deadline_ms >= 0);
    ps_progress_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->since = calloc (world ? world : 1, sizeof *self->since);
    if (!self->since) {
        free (self);
        return NULL;
    }
    self->world = world;
    self->deadline_ms = deadline_ms;
    self->floor_ms = floor_ms;
    self->mark = -1;
    //  Every rank counts at clock 0 until it joins
    self->known_min = 0;
    return self;
}

void
ps_progress_destroy (ps_progress_t **self_p)
{
    assert (self_p);
    ps_progress_t *self = *self_p;
    if (!self)
        return;
    free (self->since);
    free (self);
    *self_p = NULL;
}

static void
s_progress (ps_progress_t *self, uint32_t rank, uint32_t count, int64_t now)
{
    assert (rank < self->world && count <= self->world - rank);
    for (uint32_t r = rank; r < rank + count; r++)
        self->since[r] = now;
}

//  Note a movement of the slowest clock; true when it moved
static bool
s_moved (ps_progress_t *self, int64_t min, int64_t now)
{
    if (min == self->known_min)
        return false;
    self->known_min = min;
    self->moved = now;
    self->mark = now;
    return true;
}

void
ps_progress_joined (ps_progress_t *self, const ps_vclock_t *vclock, uint32_t rank, uint32_t count,
                    int64_t now)
{
    s_progress (self, rank, count, now);
    s_moved (self, ps_vclock_min (vclock), now);
    self->mark = now;
}

void
ps_progress_clocked (ps_progress_t *self, const ps_vclock_t *vclock, uint32_t rank, uint32_t count,
                     int64_t now)
{
    s_progress (self, rank, count, now);
    int64_t old_min = self->known_min, mark = self->mark;
    int64_t min = ps_vclock_min (vclock);
    if (!s_moved (self, min, now) || mark < 0 || old_min == PS_VCLOCK_NOBODY ||
        min == PS_VCLOCK_NOBODY || min <= old_min)
        return;
    //  A slowest clock that jumped several clocks at once (ranks at
    //  different clocks) took that time for all of them together
    int64_t length = (now - mark) / (min - old_min);
    if (length > self->longest)
        self->longest = length;
}

void
ps_progress_moved (ps_progress_t *self, const ps_vclock_t *vclock, int64_t now)
{
    s_moved (self, ps_vclock_min (vclock), now);
}

int64_t
ps_progress_deadline (const ps_progress_t *self)
{
    if (self->deadline_ms != PS_PROGRESS_AUTO)
        return self->deadline_ms;
    int64_t scaled = self->longest > PS_MAX_PROGRESS_DEADLINE_MS / PS_PROGRESS_FACTOR
                         ? PS_MAX_PROGRESS_DEADLINE_MS
                         : self->longest * PS_PROGRESS_FACTOR;
    return scaled > self->floor_ms ? scaled : self->floor_ms;
}

int64_t
ps_progress_longest (const ps_progress_t *self)
{
    return self->longest;
}

size_t
ps_progress_hung (const ps_progress_t *self, const ps_vclock_t *vclock, const int64_t *waiting,
                  size_t nwaiting, int64_t now, ps_progress_hung_t *hung, size_t max)
{
    int64_t deadline = ps_progress_deadline (self);
    int32_t staleness = ps_vclock_staleness (vclock);
    //  Under ASP nothing ever waits on the bound
    if (deadline == 0 || nwaiting == 0 || staleness < 0)
        return 0;
    size_t found = 0;
    uint32_t world =
        ps_vclock_world (vclock) < self->world ? ps_vclock_world (vclock) : self->world;
    for (uint32_t rank = 0; rank < world && found < max; rank++) {
        if (ps_vclock_state (vclock, rank) != PS_RANK_LIVE)
            continue;
        int64_t since = self->since[rank] > self->moved ? self->since[rank] : self->moved;
        if (now - since <= deadline)
            continue;
        //  A request at clock c waits on this rank while the bound does not
        //  admit c with this rank at its clock: clock + staleness < c
        int64_t clock = ps_vclock_clock (vclock, rank);
        uint32_t held = 0;
        for (size_t i = 0; i < nwaiting; i++)
            held += waiting[i] - staleness > clock;
        if (held)
            hung[found++] = (ps_progress_hung_t){
                .rank = rank, .stalled_ms = now - since, .waiting = held, .deadline_ms = deadline};
    }
    return found;
}
