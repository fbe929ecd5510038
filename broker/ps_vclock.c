/*  =========================================================================
    ps_vclock - vector clock and staleness bound

    Worlds are small (at most PS_MAX_WORKERS ranks) and the minimum is
    needed after each CLOCK, so we keep it cached and recompute it with a
    linear scan only when the rank that held it moves or leaves: with W
    workers finishing a clock that is O(W) per round of W clocks.
    ========================================================================= */

#include "ps_vclock.h"
#include "ps_limits.h"

#include <assert.h>
#include <stdlib.h>

typedef struct {
    ps_rank_state_t state; //  ABSENT, LIVE or GONE
    int64_t clock;         //  clocks finished
} slot_t;

struct ps_vclock_t {
    uint32_t world;    //  number of ranks
    int32_t staleness; //  0 BSP, N SSP, -1 ASP
    int64_t min;       //  cached ps_vclock_min
    int64_t reached;   //  furthest clock any rank reached
    slot_t *slots;     //  one per rank
};

static void
s_recompute_min (ps_vclock_t *self)
{
    self->min = PS_VCLOCK_NOBODY;
    for (uint32_t rank = 0; rank < self->world; rank++)
        if (self->slots[rank].state != PS_RANK_GONE && self->slots[rank].clock < self->min)
            self->min = self->slots[rank].clock;
}

ps_vclock_t *
ps_vclock_new (uint32_t world, int32_t staleness)
{
    if (world == 0 || world > PS_MAX_WORKERS || staleness < -1)
        return NULL;
    ps_vclock_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = calloc (world, sizeof *self->slots);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->world = world;
    self->staleness = staleness;
    self->min = 0;
    return self;
}

void
ps_vclock_destroy (ps_vclock_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->slots);
        free (*self_p);
        *self_p = NULL;
    }
}

uint32_t
ps_vclock_world (const ps_vclock_t *self)
{
    return self->world;
}

int32_t
ps_vclock_staleness (const ps_vclock_t *self)
{
    return self->staleness;
}

static int64_t
s_live_min (const ps_vclock_t *self, uint32_t except)
{
    int64_t min = PS_VCLOCK_NOBODY;
    for (uint32_t rank = 0; rank < self->world; rank++)
        if (rank != except && self->slots[rank].state == PS_RANK_LIVE &&
            self->slots[rank].clock < min)
            min = self->slots[rank].clock;
    return min;
}

int64_t
ps_vclock_join (ps_vclock_t *self, uint32_t rank)
{
    assert (rank < self->world);
    slot_t *slot = &self->slots[rank];
    if (slot->state != PS_RANK_ABSENT) {
        //  Coming back: continue where the job is, so that the returning
        //  rank neither holds the others back nor skips the bound
        int64_t current = s_live_min (self, rank);
        slot->clock = current == PS_VCLOCK_NOBODY ? self->reached : current;
    }
    slot->state = PS_RANK_LIVE;
    s_recompute_min (self);
    return slot->clock;
}

int64_t
ps_vclock_join_range (ps_vclock_t *self, uint32_t first, uint32_t count)
{
    assert (count > 0 && first < self->world && count <= self->world - first);
    bool returning = false;
    for (uint32_t rank = first; rank < first + count; rank++)
        returning |= self->slots[rank].state != PS_RANK_ABSENT;
    //  Ranks never seen wait at clock 0, or where a checkpoint put them;
    //  ranks that join as one advance as one, so theirs agree, but should
    //  they not, the slowest one's redoes the most and skips nothing
    int64_t clock = INT64_MAX;
    for (uint32_t rank = first; rank < first + count; rank++)
        if (self->slots[rank].clock < clock)
            clock = self->slots[rank].clock;
    if (returning) {
        //  The job's clock, leaving out the ranks that are joining
        int64_t current = PS_VCLOCK_NOBODY;
        for (uint32_t rank = 0; rank < self->world; rank++)
            if ((rank < first || rank >= first + count) &&
                self->slots[rank].state == PS_RANK_LIVE && self->slots[rank].clock < current)
                current = self->slots[rank].clock;
        clock = current == PS_VCLOCK_NOBODY ? self->reached : current;
    }
    for (uint32_t rank = first; rank < first + count; rank++)
        self->slots[rank] = (slot_t){PS_RANK_LIVE, clock};
    s_recompute_min (self);
    return clock;
}

void
ps_vclock_restore (ps_vclock_t *self, uint32_t rank, ps_rank_state_t state, int64_t clock)
{
    assert (rank < self->world);
    assert (clock >= 0 && clock < INT64_MAX);
    //  Live when saved: back as ABSENT, waited for at the clock it redoes
    self->slots[rank] = (slot_t){state == PS_RANK_GONE ? PS_RANK_GONE : PS_RANK_ABSENT, clock};
    if (clock > self->reached)
        self->reached = clock;
    s_recompute_min (self);
}

void
ps_vclock_leave (ps_vclock_t *self, uint32_t rank)
{
    assert (rank < self->world);
    self->slots[rank].state = PS_RANK_GONE;
    s_recompute_min (self);
}

ps_rank_state_t
ps_vclock_state (const ps_vclock_t *self, uint32_t rank)
{
    assert (rank < self->world);
    return self->slots[rank].state;
}

int64_t
ps_vclock_clock (const ps_vclock_t *self, uint32_t rank)
{
    assert (rank < self->world);
    return self->slots[rank].clock;
}

int
ps_vclock_advance (ps_vclock_t *self, uint32_t rank, int64_t finished)
{
    assert (rank < self->world);
    slot_t *slot = &self->slots[rank];
    if (slot->state != PS_RANK_LIVE || slot->clock != finished || finished == INT64_MAX - 1)
        return -1;
    bool was_min = slot->clock == self->min;
    slot->clock = finished + 1;
    if (slot->clock > self->reached)
        self->reached = slot->clock;
    if (was_min)
        s_recompute_min (self);
    return 0;
}

int64_t
ps_vclock_min (const ps_vclock_t *self)
{
    return self->min;
}

int64_t
ps_vclock_max (const ps_vclock_t *self)
{
    int64_t max = -1;
    for (uint32_t rank = 0; rank < self->world; rank++)
        if (self->slots[rank].state == PS_RANK_LIVE && self->slots[rank].clock > max)
            max = self->slots[rank].clock;
    return max;
}

int32_t
ps_vclock_slowest (const ps_vclock_t *self)
{
    if (self->min == PS_VCLOCK_NOBODY)
        return -1;
    for (uint32_t rank = 0; rank < self->world; rank++)
        if (self->slots[rank].state != PS_RANK_GONE && self->slots[rank].clock == self->min)
            return (int32_t)rank;
    return -1;
}

uint32_t
ps_vclock_live (const ps_vclock_t *self)
{
    uint32_t live = 0;
    for (uint32_t rank = 0; rank < self->world; rank++)
        live += self->slots[rank].state == PS_RANK_LIVE;
    return live;
}

bool
ps_vclock_admits (const ps_vclock_t *self, int64_t clock)
{
    if (self->staleness < 0 || self->min == PS_VCLOCK_NOBODY)
        return true;
    return clock - self->staleness <= self->min;
}
