/*  =========================================================================
    ps_router_checkpoint - the ROUTER loop's side of checkpoints (see
    ps_router.h and ps_checkpointer.h)

    The glue between the loop's state and the checkpointer: restoring at
    start (the vector clock here, the store by a RESTORE command that the
    setup waits for, so that the first request is served from the restored
    keys), cutting a checkpoint when one is due (a CHECKPOINT command in
    order behind the pushes already forwarded, which is what makes the cut
    consistent), passing the aggregator's snapshot on to the writer, the
    last checkpoint of a broker that stops, and a group's rollback.

    The rollback. A member of a group that restarted from its checkpoint
    of clock C names C to the workers, the others a later clock, and each
    names the clocks of the checkpoints it holds (a group's members cut at
    the same clocks, ps_checkpointer.h): a worker registering again asks
    every member not there already (HELLO with rollback_to C' and the
    incarnation it just saw, so that a second worker's request, or one
    that crossed a restart, is a plain HELLO) to go back to its own
    checkpoint of C', the newest clock every member holds: C, or an older
    one when a member lacks C (its writer skipped that cut, its file was
    lost), the restarted member then going back past the checkpoint it
    restored like any other. Going back is a restart without
    the process: every command sent to the aggregator is answered first
    (so that nothing of the old store is published after the new one), the
    write under way is given up unless it is of clock C (then it is
    waited for), the checkpoint is loaded (refused, ERR_GROUP, when there
    is none of that clock: nothing has changed then), every connection is
    forgotten (their parked requests answered "not registered", so that
    their workers say HELLO again at once rather than at a timeout), the
    vector clock, the published table and the store (RESTORE: the
    aggregator replaces its store whole) are the checkpoint's, the newer
    checkpoint files are renamed .discarded (a crash must not restore the
    future the group threw away) and a new incarnation is drawn. The loop
    waits for all of it: a rollback is rare and the job waits anyway.
    ========================================================================= */

#include "ps_checkpoint_dir.h"
#include "ps_handoff.h"
#include "ps_log.h"
#include "ps_router.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

//  Every rank of checkpoint into vclock, at the clock it redoes from
static void
s_restore_clocks (ps_vclock_t *vclock, const ps_checkpoint_t *checkpoint)
{
    for (uint32_t rank = 0; rank < checkpoint->world; rank++)
        ps_vclock_restore (vclock, rank, checkpoint->ranks[rank].state,
                           checkpoint->ranks[rank].clock);
}

//  Hand checkpoint (consumed) to the aggregation thread, which replaces
//  its store with it, and wait until its keys are published here. 0, or
//  -1 with restore_why saying why
static int
s_restore_store (ps_router_t *self, ps_checkpoint_t *checkpoint)
{
    ps_agg_command_t command = {.kind = PS_AGG_RESTORE, .checkpoint = checkpoint};
    PS_HANDOFF_SEND (checkpoint);
    if (zmq_send (self->agg_handle, &command, sizeof command, 0) != sizeof command) {
        PS_HANDOFF_RECEIVE (checkpoint);
        ps_checkpoint_destroy (&checkpoint);
        snprintf (self->restore_why, sizeof self->restore_why, "the aggregation thread is gone");
        return self->restore_status = -1;
    }
    self->agg_sent++;
    self->restore_status = 0;
    while (self->agg_done < self->agg_sent)
        ps_router_agg_receive (self);
    return self->restore_status;
}

int
ps_router_checkpoint_setup (ps_router_t *self, ps_problem_t *problem)
{
    if (!self->config.checkpoint_dir)
        return 0;
    ps_checkpoint_t *restored;
    self->checkpointer = ps_checkpointer_new (&self->config, &restored, problem);
    if (!self->checkpointer)
        return -1;
    if (!restored)
        return 0;
    s_restore_clocks (self->vclock, restored);
    int64_t clock = restored->clock;
    size_t keys = restored->nkeys;
    //  Its keys are published, and the store holds them, before we serve
    if (s_restore_store (self, restored))
        return ps_problem_set (problem, 0, "cannot restore the checkpoint: %s", self->restore_why);
    ps_checkpointer_restored (self->checkpointer, self->vclock, clock, keys, self->agg_sent);
    return 0;
}

//  Cut a checkpoint: the clocks now, the keys as the aggregator has them
//  when it comes to the command
static void
s_cut (ps_router_t *self)
{
    ps_checkpoint_t *checkpoint =
        ps_checkpointer_cut (self->checkpointer, self->vclock, self->agg_sent + 1);
    if (!checkpoint)
        return;
    ps_agg_command_t command = {.kind = PS_AGG_CHECKPOINT, .checkpoint = checkpoint};
    PS_HANDOFF_SEND (checkpoint);
    if (zmq_send (self->agg_handle, &command, sizeof command, 0) != sizeof command) {
        PS_HANDOFF_RECEIVE (checkpoint);
        ps_checkpoint_destroy (&checkpoint);
        ps_checkpointer_write (self->checkpointer, NULL, "cannot reach the aggregation thread");
        return;
    }
    self->agg_sent++;
}

//  Whether a push in parts is under way: a cut waits until none is, since
//  the parts applied so far are not a clock's whole step (its keys that
//  ended are published, the others not), which neither redoing the clock
//  nor taking it as pushed would restore. A push whose parts stopped
//  coming for the worker timeout holds no cut back (a peer could hold
//  every checkpoint back so)
static bool
s_push_in_parts (ps_router_t *self)
{
    int64_t now = zclock_mono ();
    for (uint32_t rank = 0; rank < ps_vclock_world (self->vclock); rank++) {
        ps_peer_t *peer = ps_peers_of_rank (self->peers, rank);
        if (peer && peer->rank == rank && peer->part_open &&
            now - peer->part_heard < (int64_t)self->config.timeout_ms)
            return true;
    }
    return false;
}

void
ps_router_checkpoint_tick (ps_router_t *self)
{
    if (self->checkpointer && !s_push_in_parts (self) &&
        ps_checkpointer_due (self->checkpointer, zclock_mono (), self->vclock, self->agg_sent,
                             false))
        s_cut (self);
}

int64_t
ps_router_checkpoint_wait (ps_router_t *self, int64_t wait)
{
    if (!self->checkpointer)
        return wait;
    return ps_checkpointer_wait (self->checkpointer, zclock_mono (), wait);
}

void
ps_router_checkpoint_written (ps_router_t *self)
{
    if (!self->checkpointer)
        return;
    ps_checkpointer_receive (self->checkpointer);
    //  A newer checkpoint raises the ceilings: pulls held at them go
    ps_router_release (self);
}

void
ps_router_checkpoint_event (ps_router_t *self, const ps_agg_command_t *event, zmq_msg_t *why)
{
    char message[PS_MAX_ERROR_LEN];
    snprintf (message, sizeof message, "%.*s", (int)zmq_msg_size (why),
              (const char *)zmq_msg_data (why));
    if (event->kind == PS_AGG_RESTORED) {
        self->restore_status = event->status;
        snprintf (self->restore_why, sizeof self->restore_why, "%s", message);
        return;
    }
    ps_checkpoint_t *checkpoint = event->checkpoint;
    PS_HANDOFF_RECEIVE (checkpoint);
    if (self->checkpointer)
        ps_checkpointer_write (self->checkpointer, checkpoint, message);
    else
        ps_checkpoint_destroy (&checkpoint);
}

//  Until the checkpoint under way is written (the aggregator's SNAPSHOT,
//  then the writer's answer) or deadline passes; whether it is
static bool
s_settle (ps_router_t *self, int64_t deadline)
{
    ps_checkpointer_hurry (self->checkpointer);
    while (ps_checkpointer_busy (self->checkpointer)) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return false;
        zmq_pollitem_t items[] = {{self->agg_handle, 0, ZMQ_POLLIN, 0},
                                  {ps_checkpointer_handle (self->checkpointer), 0, ZMQ_POLLIN, 0}};
        if (zmq_poll (items, 2, left) == -1 && errno != EINTR)
            return false;
        if (items[0].revents & ZMQ_POLLIN)
            ps_router_agg_receive (self);
        if (items[1].revents & ZMQ_POLLIN)
            ps_checkpointer_receive (self->checkpointer);
    }
    return true;
}

void
ps_router_checkpoint_final (ps_router_t *self)
{
    if (!self->checkpointer)
        return;
    int64_t deadline = zclock_mono () + PS_CHECKPOINT_FINAL_WAIT_MS;
    //  The one under way first: at most one is written at a time
    bool settled = s_settle (self, deadline);
    int64_t every = ps_checkpointer_aligned (self->checkpointer);
    if (settled && every)
        //  It would be of a clock the other members need not hold: a
        //  rollback could not use it, and a restart from it would roll
        //  the group back to an older one anyway
        ps_info ("no final checkpoint: a member of a group checkpoints only when the job's "
                 "clock is a multiple of %" PRId64 " (--checkpoint-clocks), so that every "
                 "member holds the same clocks; it is at %" PRId64 " now",
                 every, ps_vclock_min (self->vclock));
    else if (settled && ps_checkpointer_due (self->checkpointer, zclock_mono (), self->vclock,
                                             self->agg_sent, true)) {
        ps_info ("taking a final checkpoint before stopping");
        s_cut (self);
        settled = s_settle (self, deadline);
    }
    if (!settled)
        ps_warn ("gave up waiting for the final checkpoint after %d ms; the newest checkpoint "
                 "on disk is an older one",
                 PS_CHECKPOINT_FINAL_WAIT_MS);
}

// ------------------------------------------------------------ rollback

//  What s_refuse_forgotten says to the requests it answers
typedef struct {
    ps_router_t *router;
    char message[PS_MAX_ERROR_LEN];
} forgotten_t;

//  ps_parking hands every parked request here when the group rolls back:
//  "not registered", so that its worker says hello again at once
static void
s_refuse_forgotten (void *arg, ps_parked_t *parked)
{
    forgotten_t *forgotten = arg;
    ps_router_t *self = forgotten->router;
    ps_envelope_t *request = ps_codec_decode (self->parked_codec, zmq_msg_data (&parked->envelope),
                                              zmq_msg_size (&parked->envelope), NULL);
    zmq_msg_t msg;
    if (request &&
        ps_codec_encode_error (request, PSMQ__ERR_CODE__ERR_NOT_REGISTERED, forgotten->message,
                               ps_vclock_min (self->vclock), &msg) == 0) {
        ps_router_send_routing_id (self, parked->peer->id, parked->peer->id_size);
        zmq_msg_send (&msg, self->router_handle, 0);
        self->stats.out[PSMQ__MSG_TYPE__ERROR]++;
    }
}

int
ps_router_rollback (ps_router_t *self, int64_t clock, ps_problem_t *problem)
{
    if (!self->checkpointer)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                               "cannot roll back to clock %" PRId64
                               ": this broker was started without --checkpoint",
                               clock);
    if (clock < 0)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                               "cannot roll back to clock %" PRId64, clock);
    //  The old store's answers first; a cut under way reaches the writer
    while (self->agg_done < self->agg_sent)
        ps_router_agg_receive (self);
    ps_checkpointer_cancel_unless (self->checkpointer, clock);
    if (!s_settle (self, zclock_mono () + PS_CHECKPOINT_FINAL_WAIT_MS))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                               "cannot roll back to clock %" PRId64
                               " now: the checkpoint being written did not end within %d ms",
                               clock, PS_CHECKPOINT_FINAL_WAIT_MS);
    ps_checkpoint_t *checkpoint;
    ps_checkpoint_found_t found;
    if (ps_checkpointer_load_clock (self->checkpointer, clock, &checkpoint, &found, problem)) {
        problem->code = PSMQ__ERR_CODE__ERR_GROUP;
        ps_warn ("refused to roll back: %s", problem->message);
        return -1;
    }
    ps_vclock_t *vclock = ps_vclock_new (self->config.workers, self->config.staleness);
    if (vclock)
        s_restore_clocks (vclock, checkpoint);
    ps_peers_t *peers = ps_peers_new (self->config.workers);
    ps_published_t *published = ps_published_new ();
    if (!vclock || !peers || !published) {
        ps_vclock_destroy (&vclock);
        ps_peers_destroy (&peers);
        ps_published_destroy (&published);
        ps_checkpoint_destroy (&checkpoint);
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "cannot roll back: out of memory");
    }
    int64_t was = ps_vclock_min (self->vclock);
    uint32_t live = ps_vclock_live (self->vclock);
    size_t parked = ps_parking_size (self->parking);
    forgotten_t forgotten = {.router = self};
    snprintf (forgotten.message, sizeof forgotten.message,
              "the broker rolled back to clock %" PRId64
              " to match its group (a member restarted): say hello again",
              clock);
    ps_parking_drain (self->parking, s_refuse_forgotten, &forgotten);
    ps_peers_destroy (&self->peers);
    self->peers = peers;
    ps_vclock_destroy (&self->vclock);
    self->vclock = vclock;
    ps_published_destroy (&self->published);
    self->published = published;
    //  Whatever comes of the restore, this is not the process the workers
    //  knew any more
    self->incarnation = ps_router_new_incarnation (self->incarnation);

    //  The store: replaced by the checkpoint's, its keys published here
    //  before this returns
    size_t keys = checkpoint->nkeys;
    s_restore_store (self, checkpoint);
    //  "checkpoint FILE", or where every job starts
    char target[PATH_MAX + 16];
    snprintf (target, sizeof target, "%s%s", found.path[0] ? "checkpoint " : "",
              found.path[0] ? found.path : "an empty store");
    if (self->restore_status) {
        //  Every worker was told to say hello again: they find a broker
        //  without the keys it failed to restore, and their INITs say so
        ps_error ("rolling back to %s (clock %" PRId64 ") failed: %s", target, clock,
                  self->restore_why);
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                               "rolling back to clock %" PRId64 " failed: %s", clock,
                               self->restore_why);
    }
    ps_checkpointer_rolled_back (self->checkpointer, self->vclock, found.path, clock,
                                 self->agg_sent);
    ps_problem_t why;
    int discarded = ps_checkpoint_discard_after (ps_checkpointer_dir (self->checkpointer),
                                                 found.sequence, &why);
    if (discarded < 0)
        ps_warn ("newer checkpoints not (durably) discarded: %s", why.message);
    ps_progress_moved (self->progress, self->vclock, zclock_mono ());
    ps_warn ("rolled back to %s (clock %" PRId64 ") to match the group: a member restarted, "
             "and this is the newest clock every member holds a checkpoint of; was at clock "
             "%" PRId64 " (%u workers live), %zu keys now, %zu parked requests answered "
             "not-registered, %d newer checkpoint%s renamed .discarded, incarnation %016" PRIx64,
             target, clock, was == PS_VCLOCK_NOBODY ? -1 : was, live, keys, parked,
             discarded > 0 ? discarded : 0, discarded == 1 ? "" : "s", self->incarnation);
    if (self->tap_on) {
        ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_DISCONNECT, -1,
                             "rolled back to %s (clock %" PRId64
                             ") to match the group: every connection forgotten",
                             target, clock);
        ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_CLOCK, -1,
                             "slowest clock %" PRId64 " -> %" PRId64 " (rollback)",
                             was == PS_VCLOCK_NOBODY ? -1 : was, ps_vclock_min (self->vclock));
    }
    return 0;
}
