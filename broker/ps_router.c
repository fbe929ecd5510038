/*  =========================================================================
    ps_router - the requests of the ROUTER loop (see ps_router.h; joining
    and leaving, HELLO, BYE and the evictions, are ps_membership.c's)

    Why a push is acked before the aggregation thread sees it: the ack
    needs nothing from there, and the worker's next step overlaps the
    aggregation. What a push's values hold is known only there, so a push
    refused for a NaN or an infinity is reported back (FAULT) and the
    connection's next CLOCK, which waits until its pushes went through,
    carries the error.

    What the aggregation thread receives is a plan (ps_agg_entry_t) drawn
    while the envelope is checked, with the tensor frames moved along: the
    envelope is decoded once, here.
    ========================================================================= */

#include "ps_router.h"
#include "ps_dtype.h"
#include "ps_handoff.h"
#include "ps_info.h"
#include "ps_limits.h"
#include "ps_log.h"
#include "ps_random.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

uint32_t
ps_router_shards (const ps_router_t *self)
{
    return self->config.shards ? self->config.shards : 1;
}

uint64_t
ps_router_new_incarnation (uint64_t old)
{
    uint64_t incarnation;
    do
        incarnation = ps_random_u64 () | 1;
    while (incarnation == old);
    return incarnation;
}

// ------------------------------------------------------------ aggregation

static void s_release (ps_router_t *self);

//  Send a command and the frames of the message at hand from first on,
//  moved, with plan (entries of it) as the frame after the routing id
//  when there is one
static void
s_forward (ps_router_t *self, const ps_agg_command_t *command, bool with_id, size_t entries)
{
    zmq_send (self->agg_handle, command, sizeof *command, ZMQ_SNDMORE);
    if (with_id)
        zmq_msg_send (&self->frames[0], self->agg_handle, ZMQ_SNDMORE);
    bool frames = self->nframes > 2;
    zmq_send (self->agg_handle, self->plan, entries * sizeof *self->plan, frames ? ZMQ_SNDMORE : 0);
    for (size_t i = 2; i < self->nframes; i++)
        zmq_msg_send (&self->frames[i], self->agg_handle, i + 1 < self->nframes ? ZMQ_SNDMORE : 0);
    self->agg_sent++;
}

//  The slowest clock may have moved: flush BSP accumulators, release waiters
void
ps_router_clock_moved (ps_router_t *self, int64_t old_min)
{
    int64_t new_min = ps_vclock_min (self->vclock);
    if (new_min == old_min)
        return;
    if (self->config.staleness == 0 && new_min > old_min) {
        ps_agg_command_t flush = {.kind = PS_AGG_FLUSH, .clock = new_min};
        zmq_send (self->agg_handle, &flush, sizeof flush, 0);
        self->agg_sent++;
    }
    //  Cut at the very clock it is due at: a group's members must all cut
    //  at the same job clocks, which the next message may move past
    ps_router_checkpoint_tick (self);
    ps_progress_moved (self->progress, self->vclock, zclock_mono ());
    ps_debug ("slowest clock %" PRId64 " -> %" PRId64, old_min, new_min);
    if (self->tap_on)
        ps_router_tap_event (
            self, PSMQ__TAP_KIND__TAP_CLOCK, -1, "slowest clock %" PRId64 " -> %" PRId64,
            old_min == PS_VCLOCK_NOBODY ? -1 : old_min, new_min == PS_VCLOCK_NOBODY ? -1 : new_min);
    s_release (self);
}

static void
s_on_publish (ps_router_t *self, const ps_agg_command_t *event, zmq_msg_t *name)
{
    char key[PS_MAX_KEY_LEN + 1];
    size_t length = zmq_msg_size (name);
    assert (length <= PS_MAX_KEY_LEN);
    memcpy (key, zmq_msg_data (name), length);
    key[length] = 0;
    PS_HANDOFF_RECEIVE (event->buf);
    ps_published_set (self->published, key, event->buf, event->size, event->version);
    ps_published_set_dtype (self->published, key, event->dtype);
    //  The version it replaced is let go: the aggregator may reuse it
    atomic_fetch_add_explicit (&self->publishes_taken, 1, memory_order_release);
}

//  The aggregator answered an INIT: the reply goes out from here, where
//  the slowest clock is known, with its time there for the tap
static void
s_on_init_answered (ps_router_t *self, const ps_agg_command_t *event, zmq_msg_t *id, zmq_msg_t *why)
{
    ps_envelope_t request;
    psmq__envelope__init (&request);
    request.type = PSMQ__MSG_TYPE__INIT;
    request.seq = event->seq;
    request.worker = event->worker;
    if (event->received_us)
        self->timing = (ps_tap_timing_t){.received_us = event->received_us,
                                         .aggregation_us = zclock_usecs () - event->received_us};
    if (event->status) {
        ps_problem_t problem;
        ps_problem_set (&problem, event->status, "%.*s", (int)zmq_msg_size (why),
                        (const char *)zmq_msg_data (why));
        ps_router_reject (self, zmq_msg_data (id), zmq_msg_size (id), &request, &problem);
    }
    else
        ps_router_reply (self, zmq_msg_data (id), zmq_msg_size (id), &request, 0);
    self->timing = (ps_tap_timing_t){0};
}

//  The aggregator refused a push after its ack: the worker hears of it
//  in the reply to its next CLOCK
static void
s_on_fault (ps_router_t *self, const ps_agg_command_t *event, zmq_msg_t *why)
{
    self->stats.rejected++;
    self->stats
        .rejected_code[event->status > 0 && event->status < PS_ROUTER_ERR_CODES ? event->status
                                                                                : 0]++;
    if (event->status == PSMQ__ERR_CODE__ERR_NONFINITE)
        self->stats.nonfinite++;
    char message[PS_MAX_ERROR_LEN];
    snprintf (message, sizeof message, "%.*s", (int)zmq_msg_size (why),
              (const char *)zmq_msg_data (why));
    ps_warn ("push from worker %u not applied: %s", event->worker, message);
    if (self->tap_on)
        ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_REJECT, event->worker, "%s", message);
    ps_peer_t *peer = ps_peers_of_rank (self->peers, event->worker);
    if (peer) {
        peer->faulted = true;
        peer->fault_code = event->status;
        snprintf (peer->fault, sizeof peer->fault, "%s", message);
    }
}

//  Receive the frames after an event's first one
static void
s_agg_frames (ps_router_t *self, zmq_msg_t *frames, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        zmq_msg_init (&frames[i]);
        zmq_msg_recv (&frames[i], self->agg_handle, 0);
    }
}

void
ps_router_agg_receive (ps_router_t *self)
{
    ps_agg_command_t event;
    if (zmq_recv (self->agg_handle, &event, sizeof event, 0) != sizeof event)
        return; //  interrupted; the pipe protocol itself cannot break
    zmq_msg_t frames[2];
    switch (event.kind) {
    case PS_AGG_PUBLISH:
        s_agg_frames (self, frames, 1);
        s_on_publish (self, &event, &frames[0]);
        zmq_msg_close (&frames[0]);
        break;
    case PS_AGG_REPLY:
        s_agg_frames (self, frames, 2);
        s_on_init_answered (self, &event, &frames[0], &frames[1]);
        zmq_msg_close (&frames[0]);
        zmq_msg_close (&frames[1]);
        break;
    case PS_AGG_FAULT:
        s_agg_frames (self, frames, 1);
        s_on_fault (self, &event, &frames[0]);
        zmq_msg_close (&frames[0]);
        break;
    case PS_AGG_SNAPSHOT:
    case PS_AGG_RESTORED:
        s_agg_frames (self, frames, 1);
        ps_router_checkpoint_event (self, &event, &frames[0]);
        zmq_msg_close (&frames[0]);
        break;
    case PS_AGG_DONE:
        self->agg_done = event.done;
        self->stats.steps = event.steps;
        self->stats.pending = event.pending;
        self->store_bytes = event.store_bytes;
        self->push_applied = event.applied;
        ps_router_grant_parts (self);
        ps_published_forget_failed (self->published, self->agg_done);
        s_release (self);
        break;
    default: assert (false);
    }
}

// ------------------------------------------------------------ answers

//  Answer a checked PULL from the published versions, by reference. A
//  large reply goes out in parts of about PS_CHUNK_BYTES, each its own
//  message flagged `more` but the last: libzmq hands a message over only
//  whole, so the worker copies part k while part k+1 is on the wire.
//  min_clock: the slowest clock when what the pull must see was fixed
//  (every push of the clocks before it is in the versions it is answered
//  from), not the slowest now, which a CLOCK whose push the aggregation
//  thread has not applied yet may have moved.
static void
s_answer_pull (ps_router_t *self, ps_peer_t *peer, const ps_envelope_t *request, int64_t min_clock)
{
    const uint8_t *id = peer->id;
    size_t id_size = peer->id_size;
    ps_slice_t **slices;
    zmq_msg_t *frames;
    ps_problem_t problem;
    ps_unsent_t *unsent;
    if (ps_router_limits_pull (self, peer, &unsent, &problem))
        return ps_router_reject (self, id, id_size, request, &problem);
    ssize_t used =
        ps_published_pull_reply (self->published, request, unsent, &slices, &frames, &problem);
    if (used < 0)
        return ps_router_reject (self, id, id_size, request, &problem);
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.clock = ps_vclock_clock (self->vclock, request->worker);
    reply.min_clock = min_clock;
    reply.n_slices = (size_t)used;
    reply.slices = slices;
    if (self->tap_on) {
        ps_published_fill (self->published, slices, (size_t)used); //  the tap reads them all
        ps_router_tap_message (self, PSMQ__TAP_KIND__TAP_REPLY, id, id_size, &reply, frames,
                               (size_t)used);
    }
    self->stats.out[PSMQ__MSG_TYPE__PULL]++;
    ps_router_observe_reply (self, PSMQ__MSG_TYPE__PULL);
    size_t first = 0;
    while (first < (size_t)used) {
        size_t last = first;
        uint64_t bytes = 0;
        for (; last < (size_t)used && (last == first || bytes < PS_CHUNK_BYTES); last++)
            bytes += slices[last]->count * ps_dtype_size ((int)slices[last]->dtype);
        reply.n_slices = last - first;
        reply.slices = slices + first;
        reply.more = last < (size_t)used;
        //  Slices of zero elements carry no frame: drop their placeholders
        size_t nframes = 0;
        for (size_t i = first; i < last; i++) {
            if (slices[i]->count)
                frames[first + nframes++] = frames[i];
            else
                zmq_msg_close (&frames[i]);
        }
        self->stats.bytes_out += bytes;
        self->stats.bytes_out_type[PSMQ__MSG_TYPE__PULL] += bytes;
        //  16-bit keys: this part's chunks converted now, the last part
        //  already on the wire
        ps_published_fill (self->published, slices + first, last - first);
        ps_router_send_raw (self, id, id_size, &reply, frames + first, nframes);
        first = last;
    }
}

//  A CLOCK's reply: its new clock, or the refusal of one of the
//  connection's pushes that the aggregator reported meanwhile
static void
s_answer_clock (ps_router_t *self, ps_peer_t *peer, const ps_envelope_t *request, int64_t clock)
{
    if (!peer->faulted)
        return ps_router_reply (self, peer->id, peer->id_size, request, clock);
    ps_problem_t problem;
    ps_problem_set (&problem, peer->fault_code ? peer->fault_code : PSMQ__ERR_CODE__ERR_NONFINITE,
                    "%s", peer->fault);
    peer->faulted = false;
    ps_router_reject (self, peer->id, peer->id_size, request, &problem);
}

//  A parked request's envelope, decoded again (it parsed when it came)
static ps_envelope_t *
s_parked_request (ps_router_t *self, ps_parked_t *parked)
{
    ps_envelope_t *request = ps_codec_decode (self->parked_codec, zmq_msg_data (&parked->envelope),
                                              zmq_msg_size (&parked->envelope), NULL);
    assert (request);
    return request;
}

//  ps_parking calls this for each request it releases
static void
s_answer_parked (void *arg, ps_parked_t *parked)
{
    ps_router_t *self = arg;
    ps_envelope_t *request = s_parked_request (self, parked);
    ps_peer_t *peer = parked->peer;
    if (self->tap_on || self->latency) {
        //  The wall clock's wait, bounded by the monotonic clock's (in
        //  whole ms, so a wait is shorter than one ms more than it shows)
        //  in case the wall clock jumped: a wait under a millisecond stays
        int64_t waited = zclock_usecs () - parked->received_us;
        int64_t most = (zclock_mono () - parked->since + 1) * 1000;
        waited = most < waited ? most : waited;
        self->timing = (ps_tap_timing_t){.received_us = parked->received_us,
                                         .parked_us = parked->bound ? waited : 0,
                                         .aggregation_us = parked->bound ? 0 : waited};
    }
    if (parked->type == PSMQ__MSG_TYPE__PULL)
        s_answer_pull (self, peer, request, parked->min_clock);
    else
        s_answer_clock (self, peer, request, parked->clock);
    self->timing = (ps_tap_timing_t){0};
}

//  The checkpointer's ceilings on the clocks pulls are answered at, NULL
//  none
static const int64_t *
s_ceilings (const ps_router_t *self)
{
    return self->checkpointer ? ps_checkpointer_ceilings (self->checkpointer) : NULL;
}

static void
s_release (ps_router_t *self)
{
    ps_parking_release (self->parking, self->vclock, s_ceilings (self), self->agg_sent,
                        self->agg_done, s_answer_parked, self);
}

void
ps_router_release (ps_router_t *self)
{
    s_release (self);
}

static bool
s_may_answer (ps_router_t *self, const ps_peer_t *peer, int type, int64_t clock, uint64_t need_done)
{
    return self->agg_done >= need_done &&
           ps_parking_admits (self->vclock, s_ceilings (self), type, peer->rank, clock);
}

//  Park the request at hand (its envelope frame moves to the parking)
static void
s_park (ps_router_t *self, ps_peer_t *peer, int type, int64_t clock, uint64_t need_done)
{
    const int64_t *ceilings = s_ceilings (self);
    ps_parking_add (self->parking, self->vclock, ceilings, peer, type, clock, need_done,
                    &self->frames[1], self->timing.received_us);
    //  A worker waits for the checkpoint under way: no more pacing it
    if (ceilings && type == PSMQ__MSG_TYPE__PULL && clock > ceilings[peer->rank])
        ps_checkpointer_hurry (self->checkpointer);
}

// ------------------------------------------------------------ INIT, PUSH

//  Room for entries plan entries; -1 when out of memory
static int
s_reserve_plan (ps_router_t *self, size_t entries)
{
    if (entries <= self->plan_capacity)
        return 0;
    ps_agg_entry_t *plan = realloc (self->plan, entries * sizeof *plan);
    if (!plan)
        return -1;
    self->plan = plan;
    self->plan_capacity = entries;
    return 0;
}

//  An INIT slice names the wire dtype of a key that exists (or is being
//  created) in another: refused like another size (the aggregation
//  thread has the last word, for slices of one INIT that differ)
static int
s_check_init_dtype (ps_router_t *self, const ps_slice_t *slice, ps_problem_t *problem)
{
    uint64_t size;
    int dtype = ps_published_dtype (self->published, slice->key);
    if (!ps_published_size (self->published, slice->key, &size) || dtype == (int)slice->dtype)
        return 0;
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_KEY_EXISTS,
                           "key '%s' exists with wire dtype %s; this INIT asks %s", slice->key,
                           ps_dtype_name (dtype), ps_dtype_name ((int)slice->dtype));
}

//  A PUSH slice must carry its key's wire dtype
static int
s_check_push_dtype (ps_router_t *self, const ps_slice_t *slice, ps_problem_t *problem)
{
    int dtype = ps_published_dtype (self->published, slice->key);
    if ((int)slice->dtype == dtype)
        return 0;
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                           "push of key '%s' in %s: the key travels in %s (its INIT's dtype)",
                           slice->key, ps_dtype_name ((int)slice->dtype), ps_dtype_name (dtype));
}

//  Check an INIT and draw its plan, a slice per entry
static int
s_check_init (ps_router_t *self, const ps_envelope_t *request, ps_problem_t *problem)
{
    if (request->n_slices == 0)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED, "init names no key");
    if (s_reserve_plan (self, request->n_slices))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL, "out of memory for an init");
    for (size_t i = 0; i < request->n_slices; i++) {
        const ps_slice_t *slice = request->slices[i];
        if (slice->total == 0)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "init of key '%s' with size 0", slice->key);
        if (slice->offset > slice->total || slice->count > slice->total - slice->offset)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "init of key '%s': initial values [%" PRIu64 ", +%" PRIu64
                                   ") beyond its size %" PRIu64,
                                   slice->key, slice->offset, slice->count, slice->total);
        uint64_t size;
        if (ps_published_size (self->published, slice->key, &size) && size != slice->total)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_KEY_EXISTS,
                                   "key '%s' exists with %" PRIu64 " elements, not %" PRIu64,
                                   slice->key, size, slice->total);
        if (s_check_init_dtype (self, slice, problem))
            return -1;
        ps_agg_entry_t *entry = &self->plan[i];
        snprintf (entry->key, sizeof entry->key, "%s", slice->key);
        entry->offset = slice->offset;
        entry->count = slice->count;
        entry->total = slice->total;
        entry->frames = slice->count ? 1 : 0;
        entry->dtype = (int)slice->dtype;
    }
    if (request->optim) {
        const Psmq__Optim *optim = request->optim;
        if (optim->kind < PSMQ__OPTIM_KIND__OPT_DEFAULT || optim->kind > PSMQ__OPTIM_KIND__OPT_ADAM)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_OPTIM, "unknown optimizer kind %d",
                                   (int)optim->kind);
        ps_optim_config_t config = self->config.optim;
        ps_optim_config_from_wire (&config, optim);
        if (ps_optim_config_check (&config, problem))
            return -1;
    }
    return 0;
}

static void
s_handle_init (ps_router_t *self, ps_peer_t *peer, ps_envelope_t *request)
{
    ps_problem_t problem;
    if (s_check_init (self, request, &problem))
        return ps_router_reject (self, peer->id, peer->id_size, request, &problem);
    //  Its keys are known at once, so that a PUSH or a PULL pipelined
    //  behind it is not refused as unknown
    ps_published_creating (self->published, request, self->agg_sent + 1);
    ps_agg_command_t command = {.kind = PS_AGG_INIT,
                                .worker = request->worker,
                                .seq = request->seq,
                                .named = request->optim != NULL,
                                .optim = self->config.optim,
                                .received_us = self->timing.received_us};
    ps_optim_config_from_wire (&command.optim, request->optim);
    s_forward (self, &command, true, request->n_slices);
}

//  Where a push in parts leaves the key its part did not finish
typedef struct {
    char key[PS_MAX_KEY_LEN + 1]; //  the key, "" when the part finished every key
    uint64_t next;                //  the element the next part goes on from
    uint64_t size;                //  the key's size
} part_left_t;

//  What every PUSH must have right, its ask included: the worker's clock
//  and a grad_count its connection may sum
static int
s_check_push_header (ps_router_t *self, ps_peer_t *peer, const ps_envelope_t *request,
                     ps_problem_t *problem)
{
    int64_t clock = ps_vclock_clock (self->vclock, peer->rank);
    if (request->clock != clock)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_CLOCK,
                               "push for clock %" PRId64
                               " from worker %u, which is at clock %" PRId64,
                               request->clock, peer->rank, clock);
    if (request->grad_count == 0 || request->grad_count > peer->weight)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_RANK,
                               "push with grad_count %u from a connection of %u worker%s: it "
                               "must count the gradients summed in it, 1 to %u",
                               request->grad_count, peer->weight, peer->weight == 1 ? "" : "s",
                               peer->weight);
    return 0;
}

//  A push must cover each of its keys exactly, in order, in slices; its
//  plan has an entry per run of a key. A push in parts: the parts'
//  slices together must, and a part may go on with the key the part
//  before left unfinished (peer->part_*) and leave its own last key
//  unfinished when more parts follow (*left).
static int
s_check_push (ps_router_t *self, ps_peer_t *peer, const ps_envelope_t *request, size_t *entries,
              part_left_t *left, ps_problem_t *problem)
{
    if (s_check_push_header (self, peer, request, problem))
        return -1;
    if (request->n_slices == 0)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED, "push names no key");
    if (s_reserve_plan (self, request->n_slices))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL, "out of memory for a push");
    *entries = 0;
    ps_agg_entry_t *entry = NULL;
    //  The run of a key the slices go on with: the part before's, if any
    part_left_t run = {.key = ""};
    if (peer->part_open && peer->part_key[0]) {
        snprintf (run.key, sizeof run.key, "%s", peer->part_key);
        run.next = peer->part_next;
        run.size = peer->part_size;
    }
    for (size_t i = 0; i <= request->n_slices; i++) {
        const ps_slice_t *slice = i < request->n_slices ? request->slices[i] : NULL;
        bool same_key = slice && run.key[0] && strcmp (slice->key, run.key) == 0;
        bool unfinished = run.key[0] && run.next != run.size;
        if (unfinished && !same_key && (slice || !request->more))
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "push of key '%s' covers %" PRIu64 " of its %" PRIu64
                                   " elements",
                                   run.key, run.next, run.size);
        if (!slice)
            break;
        if (!same_key) {
            if (!ps_published_size (self->published, slice->key, &run.size))
                return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_UNKNOWN_KEY,
                                       "push of unknown key '%s'", slice->key);
            snprintf (run.key, sizeof run.key, "%s", slice->key);
            run.next = 0;
            entry = NULL;
        }
        if (s_check_push_dtype (self, slice, problem))
            return -1;
        if (slice->offset != run.next || slice->count == 0)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "push of key '%s': slice [%" PRIu64 ", +%" PRIu64
                                   ") where offset %" PRIu64 " and a non-empty slice were due",
                                   run.key, slice->offset, slice->count, run.next);
        if (!entry) {
            entry = &self->plan[(*entries)++];
            snprintf (entry->key, sizeof entry->key, "%s", run.key);
            entry->offset = run.next;
            entry->frames = 0;
            entry->dtype = ps_published_dtype (self->published, run.key);
        }
        run.next += slice->count;
        entry->frames++;
        if (run.next > run.size)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "push of key '%s' has %" PRIu64 "+ elements, the key %" PRIu64,
                                   run.key, run.next, run.size);
        entry->ends = run.next == run.size;
    }
    *left = run;
    if (run.next == run.size)
        left->key[0] = 0;
    return 0;
}

//  The push in parts under way on peer ends (its last part came, or it
//  was given up); the grants it held go back to the budget
static void
s_part_close (ps_router_t *self, ps_peer_t *peer)
{
    bool held = peer->part_credit > 0;
    peer->part_open = false;
    peer->part_refused = false;
    peer->part_begun = false;
    peer->part_key[0] = 0;
    peer->part_credit = 0;
    if (held)
        ps_router_grant_parts (self);
}

//  A push in parts opened by its ask (PROTOCOL.md, Credit): a PUSH with
//  `more` and no slice, answered by grants as the budget allows
static void
s_handle_push_ask (ps_router_t *self, ps_peer_t *peer, ps_envelope_t *request)
{
    ps_problem_t problem;
    if (s_check_push_header (self, peer, request, &problem)) {
        peer->part_open = peer->part_refused = true;
        peer->part_seq = request->seq;
        return ps_router_reject (self, peer->id, peer->id_size, request, &problem);
    }
    peer->part_open = self->parts_open = true;
    peer->part_seq = request->seq;
    peer->part_heard = zclock_mono ();
    ps_router_grant_parts (self);
}

static void s_handle_clock (ps_router_t *self, ps_peer_t *peer, ps_envelope_t *request);

//  The CLOCK a PUSH with clock_after carries (PROTOCOL.md, A push that
//  finishes a clock), counted among the clocks as well as the pushes
static void
s_finish_clock (ps_router_t *self, ps_peer_t *peer, ps_envelope_t *request)
{
    self->stats.in[PSMQ__MSG_TYPE__CLOCK]++;
    s_handle_clock (self, peer, request);
}

//  A PUSH, whole or one part of a push in parts (PROTOCOL.md): acked at
//  its last part, refused at the first part that breaks a rule (its later
//  parts are then dropped unanswered: the refusal was the push's answer)
static void
s_handle_push (ps_router_t *self, ps_peer_t *peer, ps_envelope_t *request)
{
    if (peer->part_open && request->seq != peer->part_seq) {
        ps_debug ("worker %u gave up its push %" PRIu64 " in parts", peer->rank, peer->part_seq);
        s_part_close (self, peer);
    }
    if (!peer->part_open && request->n_slices == 0 && request->more)
        return s_handle_push_ask (self, peer, request);
    //  A group member that holds none of the push's keys: the clock alone
    if (!peer->part_open && request->n_slices == 0 && request->clock_after)
        return s_finish_clock (self, peer, request);
    if (peer->part_open && peer->part_refused) {
        if (!request->more)
            s_part_close (self, peer);
        return;
    }
    if (peer->part_credit)
        peer->part_credit--;
    bool first = !peer->part_begun;
    ps_problem_t problem;
    size_t entries = 0;
    part_left_t left;
    if (s_check_push (self, peer, request, &entries, &left, &problem) ||
        ps_router_limits_push (self, peer, &problem)) {
        s_part_close (self, peer);
        if (request->more) {
            peer->part_open = peer->part_refused = true;
            peer->part_seq = request->seq;
        }
        return ps_router_reject (self, peer->id, peer->id_size, request, &problem);
    }
    if (request->more) {
        peer->part_open = peer->part_begun = self->parts_open = true;
        peer->part_heard = zclock_mono ();
        peer->part_seq = request->seq;
        snprintf (peer->part_key, sizeof peer->part_key, "%s", left.key);
        peer->part_next = left.next;
        peer->part_size = left.size;
    }
    else {
        s_part_close (self, peer);
        //  Ack before forwarding: the reply needs nothing from the
        //  aggregator (a push that finishes its clock gets the CLOCK's)
        if (!request->clock_after)
            ps_router_reply (self, peer->id, peer->id_size, request, request->clock);
    }
    for (size_t i = 2; i < self->nframes; i++)
        self->push_forwarded += zmq_msg_size (&self->frames[i]);
    ps_agg_command_t command = {.kind = PS_AGG_PUSH,
                                .clock = request->clock,
                                .grad_count = request->grad_count,
                                .worker = peer->rank,
                                .first = first,
                                .more = request->more};
    s_forward (self, &command, false, entries);
    peer->pushes_sent = self->agg_sent;
    if (self->checkpointer)
        ps_checkpointer_pushed (self->checkpointer, peer->rank, peer->weight, request->clock);
    if (request->more)
        ps_router_grant_parts (self);
    else if (request->clock_after)
        s_finish_clock (self, peer, request);
}

// ------------------------------------------------------------ PULL, CLOCK

static void
s_handle_pull (ps_router_t *self, ps_peer_t *peer, ps_envelope_t *request)
{
    ps_problem_t problem;
    if (ps_published_check_pull (self->published, request, &problem))
        return ps_router_reject (self, peer->id, peer->id_size, request, &problem);
    int64_t clock = ps_vclock_clock (self->vclock, peer->rank);
    if (s_may_answer (self, peer, PSMQ__MSG_TYPE__PULL, clock, self->agg_sent))
        return s_answer_pull (self, peer, request, ps_vclock_min (self->vclock));
    if (ps_parking_check_room (peer, &problem))
        return ps_router_reject (self, peer->id, peer->id_size, request, &problem);
    s_park (self, peer, PSMQ__MSG_TYPE__PULL, clock, self->agg_sent);
}

static void
s_handle_clock (ps_router_t *self, ps_peer_t *peer, ps_envelope_t *request)
{
    ps_problem_t problem;
    int64_t old_min = ps_vclock_min (self->vclock);
    int64_t current = ps_vclock_clock (self->vclock, peer->rank);
    if (ps_vclock_advance (self->vclock, peer->rank, request->clock)) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_CLOCK,
                        "worker %u finished clock %" PRId64 " but is at clock %" PRId64, peer->rank,
                        request->clock, current);
        return ps_router_reject (self, peer->id, peer->id_size, request, &problem);
    }
    //  The other ranks of the connection share the first one's clock
    for (uint32_t rank = peer->rank + 1; rank < peer->rank + peer->weight; rank++)
        ps_vclock_advance (self->vclock, rank, request->clock);
    ps_progress_clocked (self->progress, self->vclock, peer->rank, peer->weight, zclock_mono ());
    int64_t clock = request->clock + 1;
    if (s_may_answer (self, peer, PSMQ__MSG_TYPE__CLOCK, clock, peer->pushes_sent))
        s_answer_clock (self, peer, request, clock);
    else if (ps_parking_check_room (peer, &problem))
        ps_router_reject (self, peer->id, peer->id_size, request, &problem);
    else
        s_park (self, peer, PSMQ__MSG_TYPE__CLOCK, clock, peer->pushes_sent);
    ps_router_clock_moved (self, old_min);
}

// ------------------------------------------------------------ the rest

static void
s_handle_heartbeat (ps_router_t *self, ps_peer_t *peer, const ps_envelope_t *request)
{
    //  From the connection itself, last_seen is already refreshed; from
    //  another socket of the same worker, trust the session token
    if (!peer)
        ps_peers_heard_by_session (self->peers, request->worker, request->session);
}

static void
s_handle_info (ps_router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *request)
{
    ps_problem_t problem;
    if (ps_router_limits_info_room (self, &problem))
        return ps_router_reject (self, id, id_size, request, &problem);
    char *json = ps_info_json (self);
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.info = json ? json : "{}";
    reply.min_clock = ps_vclock_min (self->vclock);
    ps_router_limits_send_info (self, id, id_size, &reply);
    free (json);
}

static void
s_dispatch (ps_router_t *self, const uint8_t *id, size_t id_size, ps_envelope_t *request)
{
    ps_problem_t problem;
    int type = request->type;
    self->stats.in[type]++;
    if (request->reply || type == PSMQ__MSG_TYPE__ERROR) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_TYPE, "a worker may not send %s %s",
                        ps_codec_type_name (type), request->reply ? "replies" : "messages");
        return ps_router_reject (self, id, id_size, request, &problem);
    }
    //  Any message of a registered connection keeps it alive, INFO too
    ps_peer_t *peer = ps_peers_lookup (self->peers, id, id_size);
    if (peer) {
        ps_peers_heard (self->peers, peer);
        ps_router_note_fd (self, peer);
    }
    if (type == PSMQ__MSG_TYPE__HELLO)
        return ps_router_hello (self, id, id_size, request);
    if (type == PSMQ__MSG_TYPE__INFO)
        return s_handle_info (self, id, id_size, request);
    if (type == PSMQ__MSG_TYPE__HEARTBEAT)
        return s_handle_heartbeat (self, peer, request);
    if (!peer) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_NOT_REGISTERED,
                        "%s before hello (or after eviction): say hello first",
                        ps_codec_type_name (type));
        return ps_router_reject (self, id, id_size, request, &problem);
    }
    if (request->worker != peer->rank) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_RANK,
                        "message says worker %u but this connection is worker %u", request->worker,
                        peer->rank);
        return ps_router_reject (self, id, id_size, request, &problem);
    }
    switch (type) {
    case PSMQ__MSG_TYPE__INIT: return s_handle_init (self, peer, request);
    case PSMQ__MSG_TYPE__PUSH: return s_handle_push (self, peer, request);
    case PSMQ__MSG_TYPE__PULL: return s_handle_pull (self, peer, request);
    case PSMQ__MSG_TYPE__CLOCK: return s_handle_clock (self, peer, request);
    case PSMQ__MSG_TYPE__BYE: return ps_router_bye (self, peer, request);
    default:
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_TYPE, "unexpected message type %s",
                        ps_codec_type_name (type));
        return ps_router_reject (self, id, id_size, request, &problem);
    }
}

// ------------------------------------------------------------ receiving

static void
s_close_frames (ps_router_t *self)
{
    for (size_t i = 0; i < self->nframes; i++)
        zmq_msg_close (&self->frames[i]);
    self->nframes = 0;
}

//  Receive one whole message. Frames past PS_ROUTER_MAX_FRAMES are read
//  and dropped so that the next message starts clean; *overflow tells.
static int
s_receive (ps_router_t *self, bool *overflow)
{
    *overflow = false;
    self->nframes = 0;
    int more = 1;
    while (more) {
        zmq_msg_t scratch;
        bool keep = self->nframes < PS_ROUTER_MAX_FRAMES;
        zmq_msg_t *frame = keep ? &self->frames[self->nframes] : &scratch;
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, self->router_handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (frame);
            return -1;
        }
        more = zmq_msg_more (frame);
        if (keep)
            self->nframes++;
        else {
            *overflow = true;
            zmq_msg_close (frame);
        }
    }
    return 0;
}

//  Decode the message at hand's envelope and check its frames: the
//  request, or NULL with problem set
static ps_envelope_t *
s_decode (ps_router_t *self, bool overflow, ps_problem_t *problem)
{
    //  Only ps_codec_decode says whether the frame was protobuf
    problem->parsed = false;
    if (self->nframes < 2) {
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED, "message without an envelope");
        return NULL;
    }
    if (overflow) {
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE, "message of more than %d frames",
                        PS_ROUTER_MAX_FRAMES);
        return NULL;
    }
    return ps_codec_decode (self->codec, zmq_msg_data (&self->frames[1]),
                            zmq_msg_size (&self->frames[1]), problem);
}

void
ps_router_receive (ps_router_t *self)
{
    bool overflow;
    if (s_receive (self, &overflow)) {
        s_close_frames (self);
        return;
    }
    //  Deprecated in libzmq, but the only link between a message and the
    //  socket monitor's events (-1 for inproc). Of a frame the connection
    //  delivered: the ROUTER makes the routing id frame, fd unset.
    self->fd = self->nframes >= 2 ? zmq_msg_get (&self->frames[1], ZMQ_SRCFD) : -1;
    //  Heard now, while the message still names its connection: a worker's
    //  heartbeat connection never says HELLO, and must not look idle
    ps_router_limits_heard (self);
    uint8_t id[PS_MAX_ROUTING_ID];
    size_t id_size = zmq_msg_size (&self->frames[0]);
    assert (id_size <= PS_MAX_ROUTING_ID);
    memcpy (id, zmq_msg_data (&self->frames[0]), id_size);

    ps_problem_t problem;
    ps_envelope_t *request = s_decode (self, overflow, &problem);
    if (request && ps_codec_check_frames (request, &self->frames[2], self->nframes - 2, &problem)) {
        //  Keep the request for its seq, but refuse it
        self->stats.in[request->type]++;
        ps_router_reject (self, id, id_size, request, &problem);
    }
    else if (!request && problem.parsed) {
        //  Protobuf that broke a rule: answer with its seq, so a client with
        //  requests in flight knows which one failed
        ps_envelope_t refused;
        psmq__envelope__init (&refused);
        refused.seq = problem.seq;
        refused.worker = problem.worker;
        ps_router_reject (self, id, id_size, &refused, &problem);
    }
    else if (!request)
        ps_router_reject (self, id, id_size, NULL, &problem);
    else {
        for (size_t i = 2; i < self->nframes; i++) {
            self->stats.bytes_in += zmq_msg_size (&self->frames[i]);
            self->stats.bytes_in_type[request->type] += zmq_msg_size (&self->frames[i]);
        }
        if (self->tap_on || self->latency)
            self->timing.received_us = zclock_usecs ();
        if (self->tap_on) {
            ps_router_tap_message (self, PSMQ__TAP_KIND__TAP_REQUEST, id, id_size, request,
                                   &self->frames[2], self->nframes - 2);
        }
        s_dispatch (self, id, id_size, request);
        self->timing.received_us = 0;
    }
    s_close_frames (self);
    if (self->fd_closed) {
        self->fd_closed = false;
        ps_router_connection_closed (self, self->fd);
    }
    //  Replies sent between messages (the aggregator's) name no connection
    self->fd = -1;
}

// ------------------------------------------------------------ stopping

static void
s_log_summary (ps_router_t *self)
{
    const ps_router_stats_t *stats = &self->stats;
    char checkpoints[64] = "";
    if (self->checkpointer)
        snprintf (checkpoints, sizeof checkpoints,
                  "; %" PRIu64 " checkpoints written, %" PRIu64 " failed",
                  ps_checkpointer_written (self->checkpointer),
                  ps_checkpointer_failed (self->checkpointer));
    ps_info ("served %.1f s: %" PRIu64 " hello, %" PRIu64 " init, %" PRIu64 " push, %" PRIu64
             " pull, %" PRIu64 " clock; %.1f MB in, %.1f MB out; %" PRIu64
             " optimizer steps, %" PRIu64 " rejected, %" PRIu64 " evicted%s",
             (zclock_mono () - self->started) / 1000.0, stats->in[PSMQ__MSG_TYPE__HELLO],
             stats->in[PSMQ__MSG_TYPE__INIT], stats->in[PSMQ__MSG_TYPE__PUSH],
             stats->in[PSMQ__MSG_TYPE__PULL], stats->in[PSMQ__MSG_TYPE__CLOCK],
             stats->bytes_in / 1e6, stats->bytes_out / 1e6, stats->steps, stats->rejected,
             stats->evicted, checkpoints);
}

//  ps_parking hands every parked request here when the broker stops
static void
s_refuse_parked (void *arg, ps_parked_t *parked)
{
    ps_router_t *self = arg;
    ps_envelope_t *request = s_parked_request (self, parked);
    zmq_msg_t msg;
    if (ps_codec_encode_error (request, PSMQ__ERR_CODE__ERR_SHUTDOWN, "the broker is stopping",
                               ps_vclock_min (self->vclock), &msg) == 0) {
        ps_router_send_routing_id (self, parked->peer->id, parked->peer->id_size);
        zmq_msg_send (&msg, self->router_handle, 0);
    }
}

void
ps_router_shutdown (ps_router_t *self)
{
    ps_parking_drain (self->parking, s_refuse_parked, self);
    ps_router_checkpoint_final (self);
    while (self->agg_done < self->agg_sent)
        ps_router_agg_receive (self);
    s_log_summary (self);
}
