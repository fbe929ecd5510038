/*  =========================================================================
    ps_vclock - the vector clock of a job and its staleness bound

    One slot per rank of a fixed world. A rank is ABSENT until it says
    HELLO (it counts at clock 0, so that a BSP job waits for everybody to
    arrive), LIVE while it works, and GONE once it says BYE or is evicted
    (it is then treated as infinitely far ahead: nobody waits for it).

    A worker's clock is the number of clocks it has finished. The bound:
    a worker may be at clock c only while the slowest counted rank is at
    least c - staleness (staleness 0 is BSP, N is SSP, -1 ASP: no bound).

    Pure bookkeeping: no sockets, no time. Owned by the broker's ROUTER
    loop; one thread only.
    ========================================================================= */

#ifndef PS_VCLOCK_H_INCLUDED
#define PS_VCLOCK_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

typedef enum { PS_RANK_ABSENT = 0, PS_RANK_LIVE, PS_RANK_GONE } ps_rank_state_t;

//  The clock of the slowest counted rank when every rank is GONE
#define PS_VCLOCK_NOBODY INT64_MAX

typedef struct ps_vclock_t ps_vclock_t;

//  world ranks, all ABSENT at clock 0. NULL if world is 0 or too large.
ps_vclock_t *ps_vclock_new (uint32_t world, int32_t staleness);
void ps_vclock_destroy (ps_vclock_t **self_p);

uint32_t ps_vclock_world (const ps_vclock_t *self);
int32_t ps_vclock_staleness (const ps_vclock_t *self);

//  Rank says HELLO. A rank that never joined starts at clock 0; one that
//  comes back (after BYE or eviction) or takes over its own slot continues
//  from the job's current clock: the slowest live rank's, or when none is
//  live the furthest any rank reached. Returns the rank's clock.
int64_t ps_vclock_join (ps_vclock_t *self, uint32_t rank);
//  Ranks first .. first+count-1 say HELLO together (one process standing
//  for several workers): they join at one common clock, the job's current
//  clock if any of them was here before, else the clock they were
//  restored at (the slowest of them; 0 without a checkpoint). Returns that
//  clock.
int64_t ps_vclock_join_range (ps_vclock_t *self, uint32_t first, uint32_t count);
//  Rank leaves or is evicted: nobody waits for it any more
void ps_vclock_leave (ps_vclock_t *self, uint32_t rank);
//  A broker restarting from a checkpoint: rank was never joined (ABSENT,
//  clock 0), or must redo from clock (ABSENT at clock: counted there, so
//  that a BSP job waits for it, and its HELLO joins at that clock), or is
//  GONE (it left at clock, and rejoins at the job's clock). Before any
//  join; the furthest clock reached counts the clocks restored.
void ps_vclock_restore (ps_vclock_t *self, uint32_t rank, ps_rank_state_t state, int64_t clock);

ps_rank_state_t ps_vclock_state (const ps_vclock_t *self, uint32_t rank);
int64_t ps_vclock_clock (const ps_vclock_t *self, uint32_t rank);

//  Rank finished clock `finished`, which must be its current clock;
//  its clock becomes finished + 1. 0, or -1 when the clock does not match
//  or the rank is not LIVE.
int ps_vclock_advance (ps_vclock_t *self, uint32_t rank, int64_t finished);

//  Slowest clock among ABSENT and LIVE ranks, PS_VCLOCK_NOBODY if none
int64_t ps_vclock_min (const ps_vclock_t *self);
//  Fastest clock among LIVE ranks, -1 if none
int64_t ps_vclock_max (const ps_vclock_t *self);
//  Rank holding the minimum (lowest rank on a tie), or -1 if none
int32_t ps_vclock_slowest (const ps_vclock_t *self);
uint32_t ps_vclock_live (const ps_vclock_t *self);

//  May a worker be at `clock` now? Always under ASP
bool ps_vclock_admits (const ps_vclock_t *self, int64_t clock);

#endif
