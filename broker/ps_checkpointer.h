/*  =========================================================================
    ps_checkpointer - when the broker takes checkpoints, what they record
    of the clocks, and the writer thread that puts them on disk

    The ROUTER loop owns the vector clock and the aggregation thread owns
    the store, so a checkpoint is taken in two halves that meet in the
    aggregator's command order. The loop makes the cut (ps_checkpointer_
    cut): a new ps_checkpoint_t holding the broker's settings and, per rank,
    the clock it must redo from; it sends that to the aggregator as a
    CHECKPOINT command, behind every push it forwarded before, and the
    aggregator adds the keys as they are then (ps_store_snapshot). The
    checkpoint comes back (SNAPSHOT) and goes to the writer thread
    (ps_checkpointer_write), which writes the file while the broker serves
    on, deletes the files older than the newest PS_CHECKPOINT_KEEP
    (PS_CHECKPOINT_KEEP_GROUP in a group), drops
    the checkpoint's references and says how it went
    (ps_checkpointer_receive).

    What a rank redoes from. BSP (staleness 0): the slowest clock C for
    every rank that is live or absent: the aggregator has applied every
    clock below C (the FLUSH for C went before the cut), and the gradients
    of clock C and later wait in accumulators, which are not saved, so
    everybody redoes C. SSP and ASP apply pushes as they come: rank r at
    clock c redoes from c + 1 when it pushed at c before the cut (that
    push is in), else from c. A worker pushes once per clock (psworker
    does); a client that pushes several times in a clock may, after a
    restore, repeat the pushes of that clock that came before the cut, or
    lose those after it. Gone ranks stay gone: they rejoin at the job's
    clock, as they would have.

    When. After checkpoint_seconds (the timer restarts at each cut) or
    when the job's clock (the slowest) has moved checkpoint_clocks since
    the last cut, whichever comes first. A member of a group (shards > 1)
    must be given checkpoint_clocks N and has no timer: it cuts exactly
    when the job clock reaches a multiple of N, so that every member holds
    checkpoints of the same clocks (a group rolls back to one of them
    after a member restarts, see PROTOCOL.md), and every rank's redo clock
    in its checkpoints is the job clock, under SSP too (a fast worker then
    redoes clocks whose pushes are in the checkpoint already: they are
    applied twice). When the job clock reaches a multiple while the
    writer is still busy with the checkpoint before, a group's member cuts
    all the same (the clocks, and the aggregator's snapshot: references to
    the immutable published versions and a copy of the optimizer state,
    so the state of that clock is kept while the store moves on) and
    queues it: it goes to the writer when the write under way ends. One
    is queued at most (each holds up to a copy of the optimizer state and
    keeps the store from reusing the buffers it refers to); a multiple the
    job clock went past meanwhile (a writer two intervals behind, or an
    eviction that moved it by more than one) is skipped with a warning,
    and a rollback then goes to an older clock every member holds. Other
    brokers take or write one checkpoint at a time: a trigger that comes
    meanwhile is deferred, and the next checkpoint is cut as soon as the
    write ends (so a broker whose writes take longer than the interval
    writes back to back).
    A trigger when nothing changed (no command for the aggregator and the
    same clocks since the last cut) writes nothing and restarts the timer.

    The bound. With checkpoint_clocks N, what a restart makes a rank redo
    is kept within N clocks: the ceilings (ps_checkpointer_ceilings) let
    a rank's pulls be answered up to N - 1 clocks past the clock the
    newest checkpoint written makes it redo from, and a lone broker also
    cuts when a live rank is past its ceiling (under BSP only once the job
    clock moved since the last cut: every rank redoes from it, so a cut of
    the same job clock would raise no ceiling). So a fast SSP or ASP rank
    is not held for the slowest one, and a BSP cut is written while the
    last rank finishes its clock. In a group the ceilings also keep every
    member's writer within one interval, so that no multiple is skipped
    unless a write failed. A failed write lifts the ceilings (INT64_MAX)
    until one succeeds: a broker that cannot write must not stop the job.

    Only the ROUTER loop's thread may call these functions. The writer
    thread is a czmq actor owned by this object; a checkpoint handed to
    ps_checkpointer_write is the writer's from then on. Failures to write
    are logged and counted (INFO), never fatal: the broker serves on.
    ========================================================================= */

#ifndef PS_CHECKPOINTER_H_INCLUDED
#define PS_CHECKPOINTER_H_INCLUDED

#include "ps_broker.h"
#include "ps_checkpoint.h"
#include "ps_checkpoint_dir.h"
#include "ps_vclock.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ps_checkpointer_t ps_checkpointer_t;

//  Checkpoints into config->checkpoint_dir, at its intervals: the
//  directory made usable (ps_checkpoint_prepare_dir), its newest whole
//  checkpoint loaded into *restored (the caller's; NULL when the directory
//  holds none) and the writer thread started. NULL with problem when the
//  directory cannot be used, holds checkpoints none of which reads whole,
//  or the newest one was written with other settings (world size,
//  staleness, shard, shards: the message names both values), or a group's
//  member has no checkpoint_clocks.
ps_checkpointer_t *ps_checkpointer_new (const ps_broker_config_t *config,
                                        ps_checkpoint_t **restored, ps_problem_t *problem);
//  Stop the writer (a write in progress is given up at its next chunk,
//  leaving no file) and free; nulls the pointer
void ps_checkpointer_destroy (ps_checkpointer_t **self_p);
//  The writer's pipe, for the loop's poll: readable when a write ended
void *ps_checkpointer_handle (ps_checkpointer_t *self);

//  The broker restored the checkpoint ps_checkpointer_new loaded, of
//  clock and keys keys, into vclock and the store: logged ("restored
//  checkpoint FILE: clock C, K keys, N ranks"), and the next cut counted
//  from there (agg_sent: commands sent to the aggregator so far)
void ps_checkpointer_restored (ps_checkpointer_t *self, const ps_vclock_t *vclock, int64_t clock,
                               size_t keys, uint64_t agg_sent);
//  Ranks first .. first+count-1 pushed at clock / (re)joined
void ps_checkpointer_pushed (ps_checkpointer_t *self, uint32_t first, uint32_t count,
                             int64_t clock);
void ps_checkpointer_joined (ps_checkpointer_t *self, uint32_t first, uint32_t count);

//  Whether to cut a checkpoint now (now: zclock_mono): an interval has
//  passed, or final (the broker stops), and none is being taken or
//  written, and something changed since the last cut (agg_sent: commands
//  sent to the aggregator so far)
bool ps_checkpointer_due (ps_checkpointer_t *self, int64_t now, const ps_vclock_t *vclock,
                          uint64_t agg_sent, bool final);
//  How long the loop may sleep before the timer is due: at most wait ms
int64_t ps_checkpointer_wait (ps_checkpointer_t *self, int64_t now, int64_t wait);
//  The cut: a new checkpoint with the settings and every rank's redo
//  clock, for the CHECKPOINT command that will be the agg_sent'th sent to
//  the aggregator; the checkpointer is busy from now until the write ends
//  (a group's member's cut while a write is under way is queued behind it:
//  ps_checkpointer_due says when).
//  NULL when out of memory (logged, counted as a failure).
ps_checkpoint_t *ps_checkpointer_cut (ps_checkpointer_t *self, const ps_vclock_t *vclock,
                                      uint64_t agg_sent);
//  The aggregator answered the cut: hand checkpoint (taken over) to the
//  writer, or keep it until the writer is free when it is the queued cut,
//  or, when it is NULL, count the failure that why says
void ps_checkpointer_write (ps_checkpointer_t *self, ps_checkpoint_t *checkpoint, const char *why);
//  Read what the writer says of the write that ended: logged, counted, and
//  the queued checkpoint handed to the writer, else not busy any more
void ps_checkpointer_receive (ps_checkpointer_t *self);
//  Someone waits for the write under way (a pull at its ceiling, the
//  broker stopping, a rollback): it, or the next one when none is being
//  written, goes at the disk's full speed rather than at the pace
//  (checkpoint_rate), to its end
void ps_checkpointer_hurry (ps_checkpointer_t *self);
//  A checkpoint is being taken or written
bool ps_checkpointer_busy (const ps_checkpointer_t *self);
//  Give up the write under way, and the queued cut, unless of job clock
//  clock (a rollback keeps that one): the writer stops at its next chunk
//  and deletes its temporary file; ps_checkpointer_receive then logs it as
//  given up, not as a failure. No-op when nothing is being written.
void ps_checkpointer_cancel_unless (ps_checkpointer_t *self, int64_t clock);
//  The bound on the clocks a restart makes a rank redo, with a clock
//  interval N (NULL without): per rank, the highest clock its PULLs may be
//  answered at (ps_parking.h), N - 1 past the clock the newest checkpoint
//  written makes it redo from. Valid until the checkpointer is destroyed;
//  it changes when a write ends, at a restore and at a rollback
const int64_t *ps_checkpointer_ceilings (const ps_checkpointer_t *self);
//  A group member's interval N (cuts at the multiples of N only), or 0
int64_t ps_checkpointer_aligned (const ps_checkpointer_t *self);
//  The directory
const char *ps_checkpointer_dir (const ps_checkpointer_t *self);
//  A group's rollback to clock: the newest checkpoint of the directory of
//  that job clock, with this broker's settings, into *loaded (the
//  caller's), its file and number in found (path "" and sequence 0 for
//  clock 0 when none is of that clock: an empty checkpoint, where the job
//  started). -1 with problem (code 0) saying why not: "cannot roll back to
//  clock 40: this broker's checkpoints are at 60 and 80", "... holds no
//  checkpoint", the file of that clock does not read whole, or has other
//  settings. Not while busy (the write under way must have ended).
int ps_checkpointer_load_clock (ps_checkpointer_t *self, int64_t clock, ps_checkpoint_t **loaded,
                                ps_checkpoint_found_t *found, ps_problem_t *problem);
//  The group rolled back to the checkpoint at path ("" an empty store) of
//  clock, now in vclock and the store (agg_sent: commands sent so far):
//  the next cut is counted from there. Not while busy.
void ps_checkpointer_rolled_back (ps_checkpointer_t *self, const ps_vclock_t *vclock,
                                  const char *path, int64_t clock, uint64_t agg_sent);
//  The job clocks of the checkpoints this broker holds, newest first, at
//  most max (ps_checkpoint_held): a HELLO reply names them, for a group's
//  workers to find the newest clock every member holds
size_t ps_checkpointer_held (const ps_checkpointer_t *self, int64_t *clocks, size_t max);
//  Checkpoints written since the start, and writes that failed
uint64_t ps_checkpointer_written (const ps_checkpointer_t *self);
uint64_t ps_checkpointer_failed (const ps_checkpointer_t *self);
//  INFO's "checkpoint" object: the directory, the intervals, the state, the
//  last file written (its clock, when, how long it took, bytes), counts,
//  the last failure and the file restored at start. A new reference.
json_t *ps_checkpointer_info (const ps_checkpointer_t *self);

#endif
