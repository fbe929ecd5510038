/*  =========================================================================
    ps_router_checkpoint - the ROUTER loop's side of checkpoints (see
    ps_router.h and ps_checkpointer.h)

    The glue between the loop's state and the checkpointer: restoring at
    start (the vector clock here, the store by a RESTORE command that the
    setup waits for, so that the first request is served from the restored
    keys), cutting a checkpoint when one is due (a CHECKPOINT command in
    order behind the pushes already forwarded, which is what makes the cut
    consistent), passing the aggregator's snapshot on to the writer, and
    the last checkpoint of a broker that stops.
    ========================================================================= */

#include "ps_handoff.h"
#include "ps_log.h"
#include "ps_router.h"

#include <errno.h>
#include <stdio.h>

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
    for (uint32_t rank = 0; rank < restored->world; rank++)
        ps_vclock_restore (self->vclock, rank, restored->ranks[rank].state,
                           restored->ranks[rank].clock);
    int64_t clock = restored->clock;
    size_t keys = restored->nkeys;
    ps_agg_command_t command = {.kind = PS_AGG_RESTORE, .checkpoint = restored};
    PS_HANDOFF_SEND (restored);
    if (zmq_send (self->agg_handle, &command, sizeof command, 0) != sizeof command) {
        ps_checkpoint_destroy (&restored);
        return ps_problem_set (problem, 0, "cannot restore: the aggregation thread is gone");
    }
    self->agg_sent++;
    self->restore_status = 0;
    //  Its keys are published, and the store holds them, before we serve
    while (self->agg_done < self->agg_sent)
        ps_router_agg_receive (self);
    if (self->restore_status)
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

void
ps_router_checkpoint_tick (ps_router_t *self)
{
    if (self->checkpointer && ps_checkpointer_due (self->checkpointer, zclock_mono (), self->vclock,
                                                   self->agg_sent, false))
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
    if (self->checkpointer)
        ps_checkpointer_receive (self->checkpointer);
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
    if (settled && ps_checkpointer_due (self->checkpointer, zclock_mono (), self->vclock,
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
