/*  =========================================================================
    ps_checkpointer - the schedule, the cut and the writer thread (see
    ps_checkpointer.h)

    The writer is an actor of its own rather than a job of the aggregation
    thread: the aggregator must keep applying pushes while a checkpoint of
    gigabytes goes to disk, and the ROUTER loop must keep serving. It
    shares nothing with either: a checkpoint is handed to it over its pipe
    (a pointer; the values it refers to are immutable published versions,
    the state arrays copies made for it), it writes, deletes old files and
    destroys the checkpoint (which drops the references, so the store's
    next step can reuse those buffers), then answers with a result. It
    looks at its pipe between chunks of a write, so that stopping the
    broker never waits for a write of gigabytes it has given up on, and a
    group's rollback gives up a checkpoint of a future it throws away
    (any frame but a checkpoint, "CANCEL", cuts the write short and is
    then dropped).
    ========================================================================= */

#include "ps_checkpointer.h"
#include "ps_handoff.h"
#include "ps_log.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef enum { IDLE = 0, TAKING, WRITING } phase_t;

//  What the writer says of one write
typedef struct {
    int status;                 //  0 written, -1 failed
    uint64_t sequence;          //  the checkpoint's number
    int64_t clock;              //  its job clock
    size_t keys;                //  keys in it
    uint64_t bytes;             //  the file's
    int64_t written_ms;         //  Unix ms when it was written
    char path[PATH_MAX];        //  the file
    char why[PS_MAX_ERROR_LEN]; //  why it failed
} write_result_t;

struct ps_checkpointer_t {
    char dir[PATH_MAX];                //  where the files go
    int64_t interval_ms;               //  the timer, 0 none
    uint64_t clocks;                   //  a cut every this many job clocks, 0 none
    ps_broker_config_t settings;       //  world, staleness, shard, shards (no strings)
    zactor_t *writer;                  //  the writer thread
    phase_t phase;                     //  what the checkpoint under way is doing
    uint64_t next_sequence;            //  the next file's number
    int64_t due_at;                    //  monotonic ms when the timer is due
    int64_t last_clock;                //  the job clock at the last cut
    uint64_t last_sent;                //  aggregator commands sent at the last cut
    int64_t last_max;                  //  the fastest live clock then
    int64_t cut_at;                    //  monotonic ms of the cut under way
    int64_t *pushed;                   //  per rank: the clock of its last push, -1
    uint64_t written;                  //  files written
    uint64_t failed;                   //  checkpoints not written
    uint64_t unchanged;                //  triggers skipped: nothing changed
    write_result_t last;               //  the last file written
    int64_t last_took_ms;              //  from its cut to its rename, ms
    char last_error[PS_MAX_ERROR_LEN]; //  the last failure, "" none
    int lock;                          //  our lock on the directory
    char restored[PATH_MAX];           //  the file restored at start (or
                                       //  rolled back to), "" none
    int64_t restored_clock;            //  its clock
    bool aligned;                      //  a group's member: cuts at the
                                       //  multiples of clocks only
    int64_t cut_clock;                 //  the job clock of the cut under way
    int64_t missed;                    //  the last multiple found passed
                                       //  without a cut (warned once)
    bool cancelling;                   //  the write under way was given up
    uint64_t rate;                     //  the writer's pace, bytes/s, 0 none
    bool hurried;                      //  the write under way (or the next)
                                       //  goes at full speed
    size_t keep;                       //  files kept: PS_CHECKPOINT_KEEP,
                                       //  PS_CHECKPOINT_KEEP_GROUP in a group
    //  A group's member cut at a multiple while its writer was busy: the
    //  cut waits here for the writer (one at most)
    bool queue_taking;       //  its snapshot is being taken
    ps_checkpoint_t *queued; //  its snapshot, ours until the writer is free
    int64_t queued_clock;    //  its job clock
    int64_t queued_at;       //  monotonic ms of its cut
    bool queue_dropped;      //  a rollback gave it up while it was taken
    uint64_t queued_count;   //  cuts queued since the start
    int64_t blocked;         //  the last multiple that found the queue full
    //  The bound on what a restart makes a rank redo (clocks > 0 only):
    //  per rank, the clock it would redo from after a restart now, and the
    //  ceiling, the highest clock its pulls are answered at, N - 1 above
    //  it; the redo clocks of the cut under way, and of the queued one
    int64_t *ceilings;    //  NULL without a clock interval
    int64_t *cut_redo;    //  of the cut under way
    int64_t *queued_redo; //  of the queued cut
    bool unbounded;       //  a write failed: no ceiling until one succeeds
};

// ------------------------------------------------------------ the writer

//  The writer thread's side of its pipe while it writes
typedef struct {
    zsock_t *pipe;
    bool terminate; //  $TERM came during a write
} writer_t;

//  Asked between chunks: HURRY ends the pacing; any other frame (CANCEL,
//  or $TERM, which ends the thread once the write is given up) cancels
static ps_checkpoint_control_t
s_control (void *arg)
{
    writer_t *writer = arg;
    ps_checkpoint_control_t said = PS_CHECKPOINT_GO;
    while (zsock_events (writer->pipe) & ZMQ_POLLIN) {
        zframe_t *frame = zframe_recv (writer->pipe);
        bool hurry = frame && zframe_streq (frame, "HURRY");
        if (!frame || zframe_streq (frame, "$TERM"))
            writer->terminate = true;
        zframe_destroy (&frame);
        if (!hurry)
            return PS_CHECKPOINT_CANCEL;
        said = PS_CHECKPOINT_HURRY;
    }
    return said;
}

//  The writer thread's nice value: a serving thread that wakes takes the
//  core from the writer at once (the scheduler charges the writer's time
//  about ten times over), so a checkpoint seldom makes a request wait
//  for a core; a 2-core machine has the ROUTER loop, the aggregator and
//  libzmq's I/O thread to run. Not lower: at nice 19 or in the idle class
//  the writer got so little of a loaded machine that a 4 MB checkpoint
//  took seconds (test_restore_kill at a load of 9: 43 s at nice 0, 80 s
//  at 19, over its 120 s limit in the idle class), and with
//  --checkpoint-clocks the job waits for it. The disk traffic, which
//  nice does not govern, is kept down by the pace instead
//  (checkpoint_rate, ps_checkpoint_io_t)
#define WRITER_NICE 10

//  Failing to lower it costs only that politeness: logged, not fatal
static void
s_lower_priority (void)
{
    if (setpriority (PRIO_PROCESS, (id_t)syscall (SYS_gettid), WRITER_NICE))
        ps_warn ("checkpoint writer: cannot lower its CPU priority: %s", strerror (errno));
}

//  The writer actor: one checkpoint at a time, until $TERM
static void
s_writer_actor (zsock_t *pipe, void *args)
{
    //  The checkpointer's folder and how many files it keeps, unchanged
    //  while we run (the only fields of it this thread reads)
    const ps_checkpointer_t *owner = args;
    const char *dir = owner->dir;
    size_t keep = owner->keep;
    writer_t writer = {.pipe = pipe};
    ps_checkpoint_io_t io = {.control = s_control, .arg = &writer, .rate = owner->rate};
    s_lower_priority ();
    zsock_signal (pipe, 0);
    while (!writer.terminate) {
        zframe_t *frame = zframe_recv (pipe);
        if (!frame || zframe_streq (frame, "$TERM")) {
            zframe_destroy (&frame);
            break;
        }
        ps_checkpoint_t *checkpoint;
        if (zframe_size (frame) != sizeof checkpoint) {
            //  A CANCEL or HURRY that came after its write had ended
            zframe_destroy (&frame);
            continue;
        }
        memcpy (&checkpoint, zframe_data (frame), sizeof checkpoint);
        zframe_destroy (&frame);
        PS_HANDOFF_RECEIVE (checkpoint);
        write_result_t result = {.sequence = checkpoint->sequence,
                                 .keys = checkpoint->nkeys,
                                 .bytes = ps_checkpoint_bytes (checkpoint)};
        ps_problem_t problem;
        result.status =
            ps_checkpoint_write (checkpoint, dir, result.path, sizeof result.path, &io, &problem);
        result.clock = checkpoint->clock;
        result.written_ms = checkpoint->written_ms;
        if (result.status)
            snprintf (result.why, sizeof result.why, "%s", problem.message);
        //  Older files go only once the new one is durable
        else if (ps_checkpoint_prune (dir, keep, &problem) < 0)
            ps_warn ("old checkpoints not deleted: %s", problem.message);
        ps_checkpoint_destroy (&checkpoint);
        zmq_send (zsock_resolve (pipe), &result, sizeof result, 0);
    }
}

// ------------------------------------------------------------ the bound

//  The arrays of the bound, the ceilings those of a job at clock 0 (no
//  checkpoint yet: a restart would redo from the start). 0, or -1 when
//  out of memory
static int
s_bound_new (ps_checkpointer_t *self)
{
    uint32_t world = self->settings.workers;
    self->ceilings = calloc (world, sizeof *self->ceilings);
    self->cut_redo = calloc (world, sizeof *self->cut_redo);
    self->queued_redo = calloc (world, sizeof *self->queued_redo);
    if (!self->ceilings || !self->cut_redo || !self->queued_redo)
        return -1;
    for (uint32_t rank = 0; rank < world; rank++)
        self->ceilings[rank] = (int64_t)self->clocks - 1;
    return 0;
}

//  What checkpoint makes each rank redo from, into redo: its clock there,
//  or the checkpoint's job clock for a rank gone then (it would rejoin at
//  that)
static void
s_redo_clocks (const ps_checkpoint_t *checkpoint, int64_t *redo)
{
    for (uint32_t rank = 0; rank < checkpoint->world; rank++)
        redo[rank] = checkpoint->ranks[rank].state == PS_RANK_GONE ? checkpoint->clock
                                                                   : checkpoint->ranks[rank].clock;
}

//  The same from a vector clock just restored from a checkpoint of job
//  clock clock
static void
s_redo_restored (const ps_vclock_t *vclock, int64_t clock, int64_t *redo)
{
    for (uint32_t rank = 0; rank < ps_vclock_world (vclock); rank++)
        redo[rank] =
            ps_vclock_state (vclock, rank) == PS_RANK_GONE ? clock : ps_vclock_clock (vclock, rank);
}

//  A checkpoint that makes the ranks redo from redo is on disk: each may
//  be given parameters up to N - 1 clocks past it, so that after N clocks
//  it waits for the next
static void
s_raise_ceilings (ps_checkpointer_t *self, const int64_t *redo)
{
    if (!self->ceilings)
        return;
    if (self->unbounded)
        ps_info ("a checkpoint is written again: workers are held within %" PRIu64
                 " clocks of it again",
                 self->clocks);
    self->unbounded = false;
    for (uint32_t rank = 0; rank < self->settings.workers; rank++)
        self->ceilings[rank] = redo[rank] + (int64_t)self->clocks - 1;
}

//  A checkpoint failed (why): counted, and the ceilings lifted until one is
//  written, for a broker that cannot write (a full disk) must not stop the
//  job; what a restart would make the workers redo is then unbounded
static void
s_fail (ps_checkpointer_t *self, const char *why)
{
    self->failed++;
    snprintf (self->last_error, sizeof self->last_error, "%s", why);
    if (!self->ceilings || self->unbounded)
        return;
    ps_warn ("workers are no longer held within %" PRIu64
             " clocks of the last checkpoint (--checkpoint-clocks) until one is written: a "
             "restart now may make them redo more",
             self->clocks);
    self->unbounded = true;
    for (uint32_t rank = 0; rank < self->settings.workers; rank++)
        self->ceilings[rank] = INT64_MAX;
}

//  Whether a live rank waits at its ceiling for a checkpoint that a cut
//  now would give it: under SSP and ASP a rank redoes from its own clock,
//  so any cut does; under BSP and in a group every rank redoes from the
//  job's clock, so only once that has moved
static bool
s_held (const ps_checkpointer_t *self, const ps_vclock_t *vclock, int64_t clock)
{
    if (!self->ceilings || self->aligned ||
        (self->settings.staleness == 0 && clock <= self->last_clock))
        return false;
    for (uint32_t rank = 0; rank < self->settings.workers; rank++)
        if (ps_vclock_state (vclock, rank) == PS_RANK_LIVE &&
            ps_vclock_clock (vclock, rank) > self->ceilings[rank])
            return true;
    return false;
}

const int64_t *
ps_checkpointer_ceilings (const ps_checkpointer_t *self)
{
    assert (self);
    return self->ceilings;
}

// ------------------------------------------------------------ setup

//  The settings a checkpoint must share with this broker; 0, or -1 with
//  problem naming both values
static int
s_check_settings (const ps_checkpoint_t *checkpoint, const char *path,
                  const ps_broker_config_t *config, ps_problem_t *problem)
{
    uint32_t shards = config->shards ? config->shards : 1;
    const char *advice = "start it with the same settings, or with another --checkpoint directory";
    if (checkpoint->world != config->workers)
        return ps_problem_set (problem, 0,
                               "checkpoint %s was written by a broker of %" PRIu32
                               " workers, this one has %" PRIu32 " (--workers): %s",
                               path, checkpoint->world, config->workers, advice);
    if (checkpoint->staleness != config->staleness)
        return ps_problem_set (problem, 0,
                               "checkpoint %s was written by a broker of staleness %" PRId32
                               ", this one has %" PRId32 " (--staleness): %s",
                               path, checkpoint->staleness, config->staleness, advice);
    if (checkpoint->shard != config->shard || checkpoint->shards != shards)
        return ps_problem_set (
            problem, 0,
            "checkpoint %s was written by shard %" PRIu32 " of %" PRIu32
            ", this broker is shard %" PRIu32 " of %" PRIu32 " (--shard, --shards): %s",
            path, checkpoint->shard, checkpoint->shards, config->shard, shards, advice);
    return 0;
}

ps_checkpointer_t *
ps_checkpointer_new (const ps_broker_config_t *config, ps_checkpoint_t **restored,
                     ps_problem_t *problem)
{
    assert (config && config->checkpoint_dir && restored);
    *restored = NULL;
    int lock = ps_checkpoint_prepare_dir (config->checkpoint_dir, problem);
    if (lock < 0)
        return NULL;
    uint32_t shards = config->shards ? config->shards : 1;
    if (shards > 1 && config->checkpoint_clocks == 0) {
        close (lock);
        ps_problem_set (problem, 0,
                        "a group's brokers must checkpoint at the same clocks: give "
                        "--checkpoint-clocks N");
        return NULL;
    }
    ps_checkpointer_t *self = calloc (1, sizeof *self);
    int64_t *pushed = calloc (config->workers, sizeof *pushed);
    if (!self || !pushed) {
        close (lock);
        free (self);
        free (pushed);
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    snprintf (self->dir, sizeof self->dir, "%s", config->checkpoint_dir);
    self->lock = lock;
    self->pushed = pushed;
    for (uint32_t rank = 0; rank < config->workers; rank++)
        self->pushed[rank] = -1;
    self->settings = *config;
    self->settings.endpoint = NULL;
    self->settings.tap_endpoint = NULL;
    self->settings.checkpoint_dir = NULL;
    //  In a group the members' checkpoints must be of the same clocks, for
    //  a rollback to find one everywhere: no timer, the multiples of N
    self->aligned = shards > 1;
    //  One more file in a group: see PS_CHECKPOINT_KEEP_GROUP
    self->keep = self->aligned ? PS_CHECKPOINT_KEEP_GROUP : PS_CHECKPOINT_KEEP;
    self->interval_ms = self->aligned ? 0 : (int64_t)(config->checkpoint_seconds * 1000 + 0.5);
    self->clocks = config->checkpoint_clocks;
    self->rate = config->checkpoint_rate;
    if (self->clocks && s_bound_new (self)) {
        ps_checkpointer_destroy (&self);
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    self->due_at = zclock_mono () + self->interval_ms;
    self->last_max = -1; //  as a vector clock with nobody live says
    ps_checkpoint_found_t found;
    if (ps_checkpoint_load_newest (self->dir, restored, &found, problem) ||
        (*restored && s_check_settings (*restored, found.path, config, problem))) {
        ps_checkpoint_destroy (restored);
        ps_checkpointer_destroy (&self);
        return NULL;
    }
    self->next_sequence = found.next_sequence;
    if (*restored) {
        snprintf (self->restored, sizeof self->restored, "%s", found.path);
        self->restored_clock = (*restored)->clock;
    }
    else
        ps_info ("no checkpoint in %s yet: starting empty", self->dir);
    self->writer = zactor_new (s_writer_actor, self);
    if (!self->writer) {
        ps_checkpoint_destroy (restored);
        ps_checkpointer_destroy (&self);
        ps_problem_set (problem, 0, "cannot start the checkpoint writer");
        return NULL;
    }
    return self;
}

void
ps_checkpointer_destroy (ps_checkpointer_t **self_p)
{
    assert (self_p);
    ps_checkpointer_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->writer);
    ps_checkpoint_destroy (&self->queued);
    close (self->lock);
    free (self->pushed);
    free (self->ceilings);
    free (self->cut_redo);
    free (self->queued_redo);
    free (self);
    *self_p = NULL;
}

void *
ps_checkpointer_handle (ps_checkpointer_t *self)
{
    assert (self);
    return zsock_resolve (self->writer);
}

// ------------------------------------------------------------ the schedule

void
ps_checkpointer_restored (ps_checkpointer_t *self, const ps_vclock_t *vclock, int64_t clock,
                          size_t keys, uint64_t agg_sent)
{
    assert (self && self->restored[0]);
    //  Nothing changed yet: a broker that restarts and stops idle writes
    //  no checkpoint
    self->last_clock = ps_vclock_min (vclock);
    self->last_sent = agg_sent;
    self->last_max = ps_vclock_max (vclock);
    if (self->ceilings) {
        s_redo_restored (vclock, clock, self->cut_redo);
        s_raise_ceilings (self, self->cut_redo);
    }
    ps_info ("restored checkpoint %s: clock %" PRId64 ", %zu keys, %" PRIu32 " ranks",
             self->restored, clock, keys, self->settings.workers);
}

void
ps_checkpointer_pushed (ps_checkpointer_t *self, uint32_t first, uint32_t count, int64_t clock)
{
    assert (self);
    for (uint32_t rank = first; rank < first + count && rank < self->settings.workers; rank++)
        self->pushed[rank] = clock;
}

void
ps_checkpointer_joined (ps_checkpointer_t *self, uint32_t first, uint32_t count)
{
    ps_checkpointer_pushed (self, first, count, -1);
}

//  A group's member: whether the job clock is a multiple of the interval
//  past the last cut. One it went past without a cut (the writer was
//  busy with one and another waited for it, or an eviction moved the
//  slowest clock by more than one) is
//  warned about once: the other members may hold it, this one will not
static bool
s_aligned_due (ps_checkpointer_t *self, int64_t clock)
{
    if (clock == PS_VCLOCK_NOBODY || clock <= self->last_clock)
        return false;
    int64_t every = (int64_t)self->clocks;
    int64_t next = (self->last_clock / every + 1) * every;
    int64_t passed = clock % every == 0 ? clock - every : clock - clock % every;
    if (passed >= next && passed > self->missed) {
        ps_warn ("no checkpoint of clock %" PRId64
                 " here: the job's clock went past it (to %" PRId64
                 ") while %s; should a member restart, the group goes back to an older clock every "
                 "member holds (a larger --checkpoint-clocks gives the writer more time)",
                 passed, clock,
                 passed == self->blocked ? "the writer was busy with the checkpoints before it"
                 : self->phase != IDLE   ? "a checkpoint was being taken or written"
                                         : "in one step");
        self->missed = passed;
    }
    return clock % every == 0;
}

bool
ps_checkpointer_due (ps_checkpointer_t *self, int64_t now, const ps_vclock_t *vclock,
                     uint64_t agg_sent, bool final)
{
    assert (self);
    int64_t clock = ps_vclock_min (vclock);
    if (self->phase != IDLE) {
        //  A group's member cuts at the multiple all the same, and the cut
        //  waits for the writer: the next clock would be too late for it
        if (!self->aligned || !s_aligned_due (self, clock))
            return false; //  deferred: looked at again once the write ends
        if (self->phase == WRITING && !self->queue_taking && !self->queued)
            return true;
        //  Cut if the writer is free while the job is still at it, else
        //  warned about once the job goes past it
        self->blocked = clock;
        return false;
    }
    bool timed = self->interval_ms > 0 && now >= self->due_at;
    bool clocked = self->aligned ? s_aligned_due (self, clock)
                                 : self->clocks && clock != PS_VCLOCK_NOBODY &&
                                       (((uint64_t)(clock - self->last_clock) >= self->clocks &&
                                         clock > self->last_clock) ||
                                        s_held (self, vclock, clock));
    if (!timed && !clocked && !final)
        return false;
    if (agg_sent == self->last_sent && clock == self->last_clock &&
        ps_vclock_max (vclock) == self->last_max) {
        if (timed)
            self->unchanged++;
        self->due_at = now + self->interval_ms;
        return false;
    }
    return true;
}

int64_t
ps_checkpointer_wait (ps_checkpointer_t *self, int64_t now, int64_t wait)
{
    assert (self);
    if (self->interval_ms == 0 || self->phase != IDLE)
        return wait;
    int64_t until = self->due_at - now;
    return until < 0 ? 0 : until < wait ? until : wait;
}

ps_checkpoint_t *
ps_checkpointer_cut (ps_checkpointer_t *self, const ps_vclock_t *vclock, uint64_t agg_sent)
{
    assert (self && (self->phase == IDLE || (self->aligned && self->phase == WRITING &&
                                             !self->queue_taking && !self->queued)));
    int64_t now = zclock_mono ();
    self->due_at = now + self->interval_ms;
    ps_checkpoint_t *checkpoint = ps_checkpoint_new (self->settings.workers);
    if (!checkpoint) {
        s_fail (self, "out of memory for a checkpoint");
        ps_error ("checkpoint not taken: out of memory");
        return NULL;
    }
    checkpoint->sequence = self->next_sequence++;
    checkpoint->staleness = self->settings.staleness;
    checkpoint->shard = self->settings.shard;
    checkpoint->shards = self->settings.shards ? self->settings.shards : 1;
    int64_t slowest = ps_vclock_min (vclock);
    //  A group's members all redo from the job clock, so that a rollback
    //  names one clock for every rank (under SSP a fast worker then redoes
    //  clocks whose pushes the cut holds: they are applied twice)
    bool bsp = self->settings.staleness == 0 || self->aligned;
    for (uint32_t rank = 0; rank < checkpoint->world; rank++) {
        ps_rank_state_t state = ps_vclock_state (vclock, rank);
        int64_t clock = ps_vclock_clock (vclock, rank);
        if (state != PS_RANK_GONE && bsp)
            clock = slowest;
        else if (state == PS_RANK_LIVE && self->pushed[rank] == clock)
            clock++;
        checkpoint->ranks[rank] = (ps_checkpoint_rank_t){state, clock};
    }
    checkpoint->clock = ps_checkpoint_job_clock (checkpoint);
    if (self->ceilings)
        s_redo_clocks (checkpoint, self->phase == IDLE ? self->cut_redo : self->queued_redo);
    if (self->phase == IDLE) {
        self->cut_clock = checkpoint->clock;
        self->phase = TAKING;
        self->cut_at = now;
    }
    else {
        self->queue_taking = true;
        self->queue_dropped = false;
        self->queued_clock = checkpoint->clock;
        self->queued_at = now;
        self->queued_count++;
    }
    self->last_clock = slowest;
    self->last_sent = agg_sent;
    self->last_max = ps_vclock_max (vclock);
    return checkpoint;
}

//  The cut queued while the writer was busy: taken, it goes to the writer
//  now that it is free
static void
s_unqueue (ps_checkpointer_t *self)
{
    //  One given up while taken stays queue_taking until its snapshot
    //  comes, to be dropped then
    if (!self->queued && (!self->queue_taking || self->queue_dropped))
        return;
    self->cut_clock = self->queued_clock;
    self->cut_at = self->queued_at;
    if (self->ceilings)
        memcpy (self->cut_redo, self->queued_redo, self->settings.workers * sizeof *self->cut_redo);
    self->phase = TAKING;
    ps_checkpoint_t *checkpoint = self->queued;
    self->queued = NULL;
    if (checkpoint)
        ps_checkpointer_write (self, checkpoint, NULL);
    else
        self->queue_taking = false; //  its snapshot comes to ps_checkpointer_write
}

void
ps_checkpointer_write (ps_checkpointer_t *self, ps_checkpoint_t *checkpoint, const char *why)
{
    assert (self && (self->phase == TAKING || self->queue_taking));
    if (self->phase != TAKING) {
        //  The queued cut's snapshot: it waits for the write under way
        self->queue_taking = false;
        if (!checkpoint)
            s_fail (self, why);
        else if (self->queue_dropped)
            ps_checkpoint_destroy (&checkpoint);
        else {
            self->queued = checkpoint;
            ps_info ("checkpoint of clock %" PRId64 " taken, queued: the writer is still busy "
                     "with the one of clock %" PRId64,
                     self->queued_clock, self->cut_clock);
        }
        return;
    }
    if (!checkpoint) {
        self->phase = IDLE;
        s_fail (self, why);
        return;
    }
    PS_HANDOFF_SEND (checkpoint);
    if (zmq_send (zsock_resolve (self->writer), &checkpoint, sizeof checkpoint, 0) !=
        sizeof checkpoint) {
        PS_HANDOFF_RECEIVE (checkpoint);
        ps_checkpoint_destroy (&checkpoint);
        self->phase = IDLE;
        s_fail (self, "cannot reach the writer");
        ps_error ("checkpoint not written: cannot reach the writer thread");
        return;
    }
    self->phase = WRITING;
    if (self->hurried)
        zstr_send (self->writer, "HURRY");
}

void
ps_checkpointer_hurry (ps_checkpointer_t *self)
{
    assert (self);
    if (self->hurried || !self->rate)
        return;
    self->hurried = true;
    if (self->phase == WRITING)
        zstr_send (self->writer, "HURRY");
}

void
ps_checkpointer_receive (ps_checkpointer_t *self)
{
    assert (self);
    write_result_t result;
    if (zmq_recv (zsock_resolve (self->writer), &result, sizeof result, ZMQ_DONTWAIT) !=
        sizeof result)
        return;
    int64_t took = zclock_mono () - self->cut_at;
    self->phase = IDLE;
    self->hurried = false;
    bool cancelled = self->cancelling;
    self->cancelling = false;
    if (result.status && cancelled)
        ps_info ("checkpoint %" PRIu64 " of clock %" PRId64 " given up: the group rolled back",
                 result.sequence, result.clock);
    else if (result.status) {
        ps_error ("checkpoint %" PRIu64 " not written to %s: %s", result.sequence, self->dir,
                  result.why);
        s_fail (self, result.why);
    }
    else {
        self->written++;
        self->last = result;
        self->last_took_ms = took;
        s_raise_ceilings (self, self->cut_redo);
        ps_info ("checkpoint %s written: clock %" PRId64 ", %zu keys, %.1f MB in %" PRId64 " ms",
                 result.path, result.clock, result.keys, result.bytes / 1e6, took);
    }
    s_unqueue (self);
}

void
ps_checkpointer_cancel_unless (ps_checkpointer_t *self, int64_t clock)
{
    assert (self);
    //  A queued cut of another clock is of the future thrown away too
    if (self->queued && self->queued_clock != clock)
        ps_checkpoint_destroy (&self->queued);
    if (self->queue_taking && self->queued_clock != clock)
        self->queue_dropped = true;
    if (self->phase != WRITING || self->cut_clock == clock || self->cancelling)
        return;
    self->cancelling = true;
    zstr_send (self->writer, "CANCEL");
}

int64_t
ps_checkpointer_aligned (const ps_checkpointer_t *self)
{
    assert (self);
    return self->aligned ? (int64_t)self->clocks : 0;
}

const char *
ps_checkpointer_dir (const ps_checkpointer_t *self)
{
    assert (self);
    return self->dir;
}

int
ps_checkpointer_load_clock (ps_checkpointer_t *self, int64_t clock, ps_checkpoint_t **loaded,
                            ps_checkpoint_found_t *found, ps_problem_t *problem)
{
    assert (self && loaded && found);
    if (ps_checkpoint_load_clock (self->dir, clock, loaded, found, problem))
        return -1;
    if (*loaded) {
        if (s_check_settings (*loaded, found->path, &self->settings, problem)) {
            ps_checkpoint_destroy (loaded);
            return -1;
        }
        return 0;
    }
    if (found->refused)
        return ps_problem_set (problem, 0, "cannot roll back to clock %" PRId64 ": %s", clock,
                               found->why);
    if (clock != 0 && found->why[0])
        return ps_problem_set (problem, 0,
                               "cannot roll back to clock %" PRId64
                               ": this broker's checkpoints are at %s",
                               clock, found->why);
    //  A member that restarted with nothing while we hold checkpoints was
    //  most likely given a wrong or lost directory: going back to an empty
    //  store would throw the job's progress away, so the group stops and
    //  says why instead
    if (clock == 0 && found->why[0])
        return ps_problem_set (problem, 0,
                               "cannot roll back to clock 0 (an empty store): this broker's "
                               "checkpoints are at %s, and the member that restarted has none "
                               "(a wrong or lost --checkpoint directory?); the group stops rather "
                               "than start the job over",
                               found->why);
    if (clock != 0)
        return ps_problem_set (
            problem, 0, "cannot roll back to clock %" PRId64 ": this broker holds no checkpoint",
            clock);
    //  Clock 0 without a checkpoint of it: where the job started, no key
    *loaded = ps_checkpoint_new (self->settings.workers);
    if (!*loaded)
        return ps_problem_set (problem, 0, "out of memory");
    (*loaded)->staleness = self->settings.staleness;
    (*loaded)->shard = self->settings.shard;
    (*loaded)->shards = self->settings.shards ? self->settings.shards : 1;
    found->sequence = 0;
    return 0;
}

void
ps_checkpointer_rolled_back (ps_checkpointer_t *self, const ps_vclock_t *vclock, const char *path,
                             int64_t clock, uint64_t agg_sent)
{
    assert (self && self->phase == IDLE);
    snprintf (self->restored, sizeof self->restored, "%s", path);
    self->restored_clock = clock;
    self->last_clock = ps_vclock_min (vclock);
    self->last_sent = agg_sent;
    self->last_max = ps_vclock_max (vclock);
    self->missed = 0;
    self->blocked = 0;
    if (self->ceilings) {
        s_redo_restored (vclock, clock, self->cut_redo);
        s_raise_ceilings (self, self->cut_redo);
    }
    //  The last file written may be one of the future just discarded
    memset (&self->last, 0, sizeof self->last);
    for (uint32_t rank = 0; rank < self->settings.workers; rank++)
        self->pushed[rank] = -1;
}

bool
ps_checkpointer_busy (const ps_checkpointer_t *self)
{
    assert (self);
    return self->phase != IDLE || self->queued || self->queue_taking;
}

size_t
ps_checkpointer_held (const ps_checkpointer_t *self, int64_t *clocks, size_t max)
{
    assert (self);
    return ps_checkpoint_held (self->dir, clocks, max);
}

uint64_t
ps_checkpointer_written (const ps_checkpointer_t *self)
{
    assert (self);
    return self->written;
}

uint64_t
ps_checkpointer_failed (const ps_checkpointer_t *self)
{
    assert (self);
    return self->failed;
}

json_t *
ps_checkpointer_info (const ps_checkpointer_t *self)
{
    assert (self);
    static const char *phases[] = {"idle", "taking", "writing"};
    json_t *info =
        json_pack ("{s:s, s:f, s:I, s:s, s:I, s:I, s:I, s:I}", "dir", self->dir, "seconds",
                   self->interval_ms / 1000.0, "clocks", (json_int_t)self->clocks, "state",
                   phases[self->phase], "written", (json_int_t)self->written, "failed",
                   (json_int_t)self->failed, "unchanged", (json_int_t)self->unchanged,
                   "next_sequence", (json_int_t)self->next_sequence);
    if (!info)
        return NULL;
    json_object_set_new (info, "queued", json_integer ((json_int_t)self->queued_count));
    //  Whether workers are held within one interval of the newest file
    json_object_set_new (info, "bounded", json_boolean (self->ceilings && !self->unbounded));
    const write_result_t *last = &self->last;
    bool any = self->written > 0 && last->path[0];
    json_object_set_new (info, "last_file", json_string (any ? last->path : ""));
    json_object_set_new (info, "last_clock", json_integer (any ? last->clock : -1));
    json_object_set_new (info, "last_keys", json_integer (any ? (json_int_t)last->keys : 0));
    json_object_set_new (info, "last_bytes", json_integer (any ? (json_int_t)last->bytes : 0));
    json_object_set_new (info, "last_unix_ms", json_integer (any ? last->written_ms : 0));
    json_object_set_new (info, "last_took_ms", json_integer (any ? self->last_took_ms : 0));
    json_object_set_new (info, "last_error", json_string (self->last_error));
    json_object_set_new (info, "restored_file", json_string (self->restored));
    json_object_set_new (info, "restored_clock",
                         json_integer (self->restored[0] ? self->restored_clock : -1));
    return info;
}
