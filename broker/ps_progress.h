/*  =========================================================================
    ps_progress - which ranks hold the job back without making progress

    A rank whose connection lives (its heartbeat thread answers) but whose
    training has hung would hold every request parked on the staleness
    bound for ever. This module keeps, per rank, when it last made progress
    (joined, or finished a clock), and learns how long a clock of the job
    takes from the movements of the slowest clock. A rank is hung when it
    holds back at least one waiting request (its clock is too far behind
    that request's for the bound to admit it) and has made no progress for
    longer than the deadline:
        fixed       as configured (psbroker --progress-deadline SECONDS)
        automatic   max (floor, PS_PROGRESS_FACTOR x the longest clock
                    so far), so that an honest slow worker, whose clocks
                    the broker has watched, is never taken for a hung one
    A rank's time without progress starts again when the slowest clock
    moves: until then it may have been waiting on others itself.

    A clock's length is measured from the later of the last movement of
    the slowest clock and the last join (the first clock of a job counts
    from when its last worker came, not from the broker's start), and is
    learnt only when a CLOCK moved the slowest clock: a movement that an
    eviction or a leave made would teach the time the job waited for the
    evicted rank, and the deadline would grow with every eviction.

    Pure bookkeeping: no sockets; time comes in as monotonic milliseconds.
    Owned by the ROUTER loop; one thread only. It reads the vector clock it
    is given and keeps no pointer to it.
    ========================================================================= */

#ifndef PS_PROGRESS_H_INCLUDED
#define PS_PROGRESS_H_INCLUDED

#include "ps_vclock.h"

#include <stddef.h>
#include <stdint.h>

//  deadline_ms for the automatic deadline (max of floor and factor rule)
#define PS_PROGRESS_AUTO (-1)

typedef struct ps_progress_t ps_progress_t;

//  A rank found hung
typedef struct {
    uint32_t rank;       //  the rank
    int64_t stalled_ms;  //  without progress for so long
    uint32_t waiting;    //  requests it held back
    int64_t deadline_ms; //  the deadline it passed
} ps_progress_hung_t;

//  world ranks. deadline_ms: 0 off, PS_PROGRESS_AUTO, or a fixed deadline;
//  floor_ms: the automatic deadline's floor. NULL when out of memory.
ps_progress_t *ps_progress_new (uint32_t world, int64_t deadline_ms, int64_t floor_ms);
void ps_progress_destroy (ps_progress_t **self_p);

//  Ranks rank .. rank+count-1 joined at now (the vector clock already says
//  so): their time without progress starts again
void ps_progress_joined (ps_progress_t *self, const ps_vclock_t *vclock, uint32_t rank,
                         uint32_t count, int64_t now);
//  Ranks rank .. rank+count-1 finished a clock at now (the vector clock
//  already advanced); when the slowest clock moved with it, its length is
//  learnt
void ps_progress_clocked (ps_progress_t *self, const ps_vclock_t *vclock, uint32_t rank,
                          uint32_t count, int64_t now);
//  The slowest clock may have moved for another reason (a leave, an
//  eviction): note when, learning nothing
void ps_progress_moved (ps_progress_t *self, const ps_vclock_t *vclock, int64_t now);

//  The deadline now in ms, 0 when off
int64_t ps_progress_deadline (const ps_progress_t *self);
//  The longest clock learnt so far in ms, 0 before the first
int64_t ps_progress_longest (const ps_progress_t *self);

//  The live ranks that are hung at now, given the clocks of the requests
//  waiting on the staleness bound (waiting[0 .. nwaiting-1]): at most max
//  of them into hung, lowest rank first; how many
size_t ps_progress_hung (const ps_progress_t *self, const ps_vclock_t *vclock,
                         const int64_t *waiting, size_t nwaiting, int64_t now,
                         ps_progress_hung_t *hung, size_t max);

#endif
