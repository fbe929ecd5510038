/*  =========================================================================
    ps_aggregator - the aggregation thread

    A loop over the pipe: read one command with its plan and frames, apply
    it to the store, publish the keys it changed, then say DONE with the running
    command count. The ROUTER loop uses that count to know when a pull may
    be answered from what was published (every push it forwarded before the
    pull is in). Frames are received into a reusable array and closed after
    use; gradients are read where libzmq put them.

    Why the router validates pushes and not this thread: so it can ack a
    push at once and keep this thread's loop free of error paths that would
    need to reach a peer.
    ========================================================================= */

#include "ps_aggregator.h"
#include "ps_dtype.h"
#include "ps_handoff.h"
#include "ps_log.h"
#include "ps_store.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

//  A key a push has taken (staged or summed), to publish or take back
typedef struct {
    ps_key_t *key; //  the key
    size_t entry;  //  its plan entry
    size_t frame;  //  its first frame
} taken_t;

typedef struct {
    void *pipe;                 //  raw handle of the actor pipe
    ps_store_t *store;          //  every tensor; ours alone
    int32_t staleness;          //  0 accumulates until FLUSH
    ps_optim_config_t defaults; //  optimizer for keys that name none
    uint64_t done;              //  commands processed
    uint64_t steps;             //  optimizer steps applied
    zmq_msg_t *frames;          //  frames of the current command
    size_t nframes;             //  frames received
    size_t capacity;            //  frames allocated
    ps_piece_t *pieces;         //  one key's gradient pieces
    size_t piece_capacity;      //  pieces allocated
    float *aligned;             //  copies of misaligned frames (and 16-bit
                                //  frames widened), reused
    size_t aligned_capacity;    //  floats allocated
    taken_t *taken;             //  the keys the push at hand has taken so far
    ps_key_t **keys;            //  its plan's keys, looked up once
    size_t taken_capacity;      //  entries allocated in both
    bool accept_nonfinite;      //  apply NaN and Inf gradients as they come
    uint64_t max_store_bytes;   //  the store's limit, kept for RESTORE's new one
    uint64_t applied;           //  tensor bytes of the pushes processed (DONE)
    bool *skipping;             //  by rank: the push in parts under way was
                                //  refused, its later parts are not applied
    //  The versions in flight to the ROUTER loop (see the header)
    const _Atomic uint64_t *router_taken; //  PUBLISHes it handled
    uint64_t published;                   //  PUBLISHes sent
} agg_t;

static void
s_send_event (agg_t *self, const ps_agg_command_t *event, bool more)
{
    zmq_send (self->pipe, event, sizeof *event, more ? ZMQ_SNDMORE : 0);
}

static void
s_publish (ps_key_t *key, void *arg)
{
    agg_t *self = arg;
    ps_agg_command_t event = {.kind = PS_AGG_PUBLISH,
                              .buf = ps_buf_ref (ps_key_current (key)),
                              .size = ps_key_size (key),
                              .version = ps_key_version (key),
                              .dtype = ps_key_dtype (key)};
    PS_HANDOFF_SEND (event.buf);
    s_send_event (self, &event, true);
    const char *name = ps_key_name (key);
    zmq_send (self->pipe, name, strlen (name), 0);
    self->published++;
}

//  Whether the ROUTER loop lags behind our PUBLISHes
static bool
s_router_lags (agg_t *self)
{
    return self->router_taken &&
           atomic_load_explicit (self->router_taken, memory_order_acquire) < self->published;
}

//  Wait (bounded, until) while key's spare is pinned and that is moving:
//  the ROUTER loop has PUBLISHes to take, or the pins fall as reply frames
//  go out. Sleeps from 50 us, doubling to 1 ms
static void
s_drain (agg_t *self, ps_key_t *key, int64_t until)
{
    unsigned pins = ps_key_spare_pins (key);
    int64_t moved = zclock_mono ();
    long sleep_ns = 50 * 1000;
    while (pins > 0) {
        int64_t now = zclock_mono ();
        if (now >= until || (!s_router_lags (self) && now - moved >= PS_AGG_DRAIN_IDLE_MS))
            return;
        nanosleep (&(struct timespec){.tv_nsec = sleep_ns}, NULL);
        sleep_ns = sleep_ns < 1000 * 1000 / 2 ? sleep_ns * 2 : 1000 * 1000;
        unsigned left = ps_key_spare_pins (key);
        if (left < pins)
            moved = zclock_mono ();
        pins = left;
    }
}

//  Before a push's part is stepped (SSP, ASP): keys of PS_CHUNK_BYTES or
//  more whose spare is pinned wait for it to be let go (bounded) rather
//  than have a new version allocated (see "Versions" in the header)
static void
s_let_readers_drain (agg_t *self, size_t entries)
{
    int64_t until = zclock_mono () + PS_AGG_DRAIN_WAIT_MS;
    for (size_t i = 0; i < entries; i++) {
        ps_key_t *key = self->keys[i];
        if (key && ps_key_size (key) * sizeof (float) >= PS_CHUNK_BYTES)
            s_drain (self, key, until);
    }
}

//  Receive the rest of a multipart command into self->frames
static int
s_receive_frames (agg_t *self)
{
    self->nframes = 0;
    int more = 1;
    size_t more_size = sizeof more;
    while (true) {
        zmq_getsockopt (self->pipe, ZMQ_RCVMORE, &more, &more_size);
        if (!more)
            return 0;
        if (self->nframes == self->capacity) {
            size_t capacity = self->capacity ? self->capacity * 2 : 64;
            zmq_msg_t *grown = realloc (self->frames, capacity * sizeof *grown);
            assert (grown); //  bounded by PS_MAX_SLICES; no recovery here
            self->frames = grown;
            self->capacity = capacity;
        }
        zmq_msg_t *frame = &self->frames[self->nframes];
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, self->pipe, 0) == -1) {
            zmq_msg_close (frame);
            return -1;
        }
        self->nframes++;
    }
}

static void
s_close_frames (agg_t *self)
{
    for (size_t i = 0; i < self->nframes; i++)
        zmq_msg_close (&self->frames[i]);
    self->nframes = 0;
}

//  The plan frame of the command at hand, as entries
static const ps_agg_entry_t *
s_plan (zmq_msg_t *frame, size_t *entries)
{
    assert (zmq_msg_size (frame) % sizeof (ps_agg_entry_t) == 0);
    *entries = zmq_msg_size (frame) / sizeof (ps_agg_entry_t);
    return zmq_msg_data (frame);
}

//  Answer an INIT: status 0, or the problem that refused it
static void
s_reply (agg_t *self, const ps_agg_command_t *command, zmq_msg_t *routing_id,
         const ps_problem_t *problem)
{
    ps_agg_command_t event = {.kind = PS_AGG_REPLY,
                              .worker = command->worker,
                              .seq = command->seq,
                              .status = problem ? problem->code : 0,
                              .received_us = command->received_us};
    s_send_event (self, &event, true);
    zmq_msg_send (routing_id, self->pipe, ZMQ_SNDMORE);
    const char *why = problem ? problem->message : "";
    zmq_send (self->pipe, why, strlen (why), 0);
}

//  Room for count floats of scratch in self->aligned
static float *
s_scratch (agg_t *self, size_t count)
{
    if (count > self->aligned_capacity) {
        float *grown = realloc (self->aligned, count * sizeof *grown);
        assert (grown);
        self->aligned = grown;
        self->aligned_capacity = count;
    }
    return self->aligned;
}

//  An INIT slice's initial values as floats: its frame, or the frame's
//  16-bit elements widened into scratch
static const float *
s_init_values (agg_t *self, const ps_agg_entry_t *slice, zmq_msg_t *data)
{
    if (slice->dtype == PS_DTYPE_F32)
        return zmq_msg_data (data);
    float *values = s_scratch (self, slice->count);
    ps_dtype_to_f32 (values, zmq_msg_data (data), slice->count, slice->dtype);
    return values;
}

//  A key of this INIT, made by it or before, in the dtype of this slice:
//  an existing key INITed in another wire dtype is refused, naming both
static int
s_check_init_dtype (const ps_key_t *key, const ps_agg_entry_t *slice, ps_problem_t *problem)
{
    if (ps_key_dtype (key) == slice->dtype)
        return 0;
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_KEY_EXISTS,
                           "key '%s' exists with wire dtype %s; this INIT asks %s", slice->key,
                           ps_dtype_name (ps_key_dtype (key)), ps_dtype_name (slice->dtype));
}

//  INIT: create each key once per message, write initial values of the
//  keys this message created, publish them, then answer
static void
s_handle_init (agg_t *self, const ps_agg_command_t *command)
{
    assert (self->nframes >= 2);
    size_t entries;
    const ps_agg_entry_t *plan = s_plan (&self->frames[1], &entries);
    //  An INIT that names no optimizer takes an existing key as it is, and
    //  creates one with the store's defaults (which are ours)
    const ps_optim_config_t *named = command->named ? &command->optim : NULL;
    ps_problem_t problem;
    bool failed = false;
    bool created = false;
    ps_key_t *key = NULL;
    size_t frame = 2;
    for (size_t i = 0; i < entries && !failed; i++) {
        const ps_agg_entry_t *slice = &plan[i];
        if (!key || strcmp (ps_key_name (key), slice->key) != 0) {
            if (key && created)
                s_publish (key, self);
            failed = ps_store_init (self->store, slice->key, slice->total, named, &created,
                                    &problem) != 0;
            key = failed ? NULL : ps_store_lookup (self->store, slice->key);
            if (key && created)
                ps_key_set_dtype (key, slice->dtype);
        }
        if (!failed)
            failed = s_check_init_dtype (key, slice, &problem) != 0;
        if (failed || slice->count == 0)
            continue;
        assert (frame < self->nframes);
        zmq_msg_t *data = &self->frames[frame++];
        if (created)
            failed =
                ps_store_write (self->store, key, slice->offset, s_init_values (self, slice, data),
                                slice->count, &problem) != 0;
    }
    if (key && created && !failed)
        s_publish (key, self);
    if (failed)
        ps_warn ("init from worker %u refused: %s", command->worker, problem.message);
    s_reply (self, command, &self->frames[0], failed ? &problem : NULL);
}

static void
s_reserve_pieces (agg_t *self, size_t count)
{
    if (count <= self->piece_capacity)
        return;
    ps_piece_t *grown = realloc (self->pieces, count * sizeof *grown);
    assert (grown);
    self->pieces = grown;
    self->piece_capacity = count;
}

static void
s_reserve_taken (agg_t *self, size_t count)
{
    if (count <= self->taken_capacity)
        return;
    taken_t *grown = realloc (self->taken, count * sizeof *grown);
    assert (grown);
    self->taken = grown;
    ps_key_t **keys = realloc (self->keys, count * sizeof *keys);
    assert (keys);
    self->keys = keys;
    self->taken_capacity = count;
}

//  Every frame of a push checked for NaN and infinities, in a pass of its
//  own; 0, or -1 with ERR_NONFINITE naming key and element
static int
s_check_frames (agg_t *self, const ps_agg_entry_t *plan, size_t entries, ps_problem_t *problem)
{
    size_t frame = 1;
    for (size_t i = 0; i < entries; i++) {
        uint64_t offset = plan[i].offset;
        for (uint32_t f = 0; f < plan[i].frames; f++, frame++) {
            //  Read as bytes: a small frame may sit at any offset
            const void *data = zmq_msg_data (&self->frames[frame]);
            size_t count = zmq_msg_size (&self->frames[frame]) / ps_dtype_size (plan[i].dtype);
            size_t bad = ps_dtype_first_nonfinite (data, count, plan[i].dtype);
            if (bad < count) {
                float value;
                ps_dtype_to_f32 (&value, (const char *)data + bad * ps_dtype_size (plan[i].dtype),
                                 1, plan[i].dtype);
                return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_NONFINITE,
                                       "key '%s' element %llu is %s", plan[i].key,
                                       (unsigned long long)(offset + bad),
                                       isnan (value) ? "nan"
                                       : value > 0   ? "inf"
                                                     : "-inf");
            }
            offset += count;
        }
    }
    return 0;
}

//  libzmq keeps small frames at any offset inside its receive buffer, so
//  a frame may not be float-aligned. Such frames (small ones: large frames
//  get a malloc'd buffer of their own) are copied to an aligned scratch.
static void
s_align_pieces (agg_t *self, size_t npieces)
{
    size_t misaligned = 0;
    for (size_t i = 0; i < npieces; i++)
        if ((uintptr_t)self->pieces[i].data % _Alignof(float))
            misaligned += self->pieces[i].count;
    if (misaligned == 0)
        return;
    if (misaligned > self->aligned_capacity) {
        float *grown = realloc (self->aligned, misaligned * sizeof *grown);
        assert (grown);
        self->aligned = grown;
        self->aligned_capacity = misaligned;
    }
    float *next = self->aligned;
    for (size_t i = 0; i < npieces; i++)
        if ((uintptr_t)self->pieces[i].data % _Alignof(float)) {
            memcpy (next, self->pieces[i].data, self->pieces[i].count * sizeof (float));
            self->pieces[i].data = next;
            next += self->pieces[i].count;
        }
}

//  The pieces of a 16-bit key's entry: the frames as they came, each
//  widened by the store into one scratch of the largest frame's floats as
//  it reads it (ps_piece_floats), so no key-sized copy is ever made
static void
s_entry_wire_pieces (agg_t *self, const ps_agg_entry_t *entry, size_t first)
{
    s_reserve_pieces (self, entry->frames);
    size_t element = ps_dtype_size (entry->dtype), largest = 0;
    for (uint32_t f = 0; f < entry->frames; f++) {
        assert (first + f < self->nframes);
        size_t count = zmq_msg_size (&self->frames[first + f]) / element;
        largest = count > largest ? count : largest;
        self->pieces[f] = (ps_piece_t){
            .count = count, .wire = zmq_msg_data (&self->frames[first + f]), .dtype = entry->dtype};
    }
    float *scratch = s_scratch (self, largest);
    for (uint32_t f = 0; f < entry->frames; f++)
        self->pieces[f].scratch = scratch;
}

//  Tell the ROUTER loop that the push was refused: problem names the key
//  and the element; the worker's next CLOCK is answered with it
static void
s_fault (agg_t *self, const ps_agg_command_t *command, const ps_problem_t *problem)
{
    char why[PS_MAX_ERROR_LEN];
    bool nonfinite = problem->code == PSMQ__ERR_CODE__ERR_NONFINITE;
    int length = snprintf (why, sizeof why, "push for clock %lld was not applied: %s%s",
                           (long long)command->clock, problem->message,
                           nonfinite ? " (the broker refuses NaN and infinite gradients)" : "");
    ps_agg_command_t event = {
        .kind = PS_AGG_FAULT, .worker = command->worker, .status = problem->code};
    s_send_event (self, &event, true);
    zmq_send (self->pipe, why, (size_t)length < sizeof why ? (size_t)length : sizeof why - 1, 0);
}

//  The pieces of one plan entry: its frames from first on, aligned
static void
s_entry_pieces (agg_t *self, const ps_agg_entry_t *entry, size_t first)
{
    if (entry->dtype != PS_DTYPE_F32)
        return s_entry_wire_pieces (self, entry, first);
    s_reserve_pieces (self, entry->frames);
    for (uint32_t f = 0; f < entry->frames; f++) {
        assert (first + f < self->nframes);
        self->pieces[f].data = zmq_msg_data (&self->frames[first + f]);
        self->pieces[f].count = zmq_msg_size (&self->frames[first + f]) / sizeof (float);
        self->pieces[f].wire = NULL;
    }
    s_align_pieces (self, entry->frames);
}

//  Look up the plan's keys once, into self->keys
static void
s_resolve_keys (agg_t *self, const ps_agg_entry_t *plan, size_t entries)
{
    for (size_t i = 0; i < entries; i++)
        self->keys[i] = ps_store_lookup (self->store, plan[i].key);
}

//  The BSP sums of a push's part refused at a later key are taken back
static void
s_take_back (agg_t *self, const ps_agg_command_t *command, const ps_agg_entry_t *plan, size_t taken)
{
    for (size_t t = taken; t-- > 0;) {
        const ps_agg_entry_t *entry = &plan[self->taken[t].entry];
        s_entry_pieces (self, entry, self->taken[t].frame);
        ps_store_unaccumulate_part (self->store, self->taken[t].key, command->clock, entry->offset,
                                    self->pieces, entry->frames, command->grad_count);
    }
}

//  Whether the push this part belongs to was refused at an earlier part:
//  then the rest of it is not applied either
static bool
s_skipping (agg_t *self, const ps_agg_command_t *command)
{
    if (command->worker >= PS_MAX_WORKERS)
        return false;
    if (command->first)
        self->skipping[command->worker] = false;
    return self->skipping[command->worker];
}

//  Refuse the push at hand: it is not applied from this part on
static void
s_refuse (agg_t *self, const ps_agg_command_t *command, const ps_problem_t *problem)
{
    if (command->more && command->worker < PS_MAX_WORKERS)
        self->skipping[command->worker] = true;
    s_fault (self, command, problem);
}

//  PUSH: one part of a push (or a whole one), a run of frames per key,
//  handed to the store as pieces at the run's offset. SSP/ASP steps each
//  run into the key's next version and publishes it where a run ends the
//  key (ps_store_stage_part); BSP sums each run. A part holding a NaN or
//  an infinity is refused whole before anything of it is applied, and so
//  are the parts of that push after it; the parts before it stay
//  applied. A part of one key under SSP/ASP is checked by the store, as
//  it steps when it can (a 1 MB slice of a large key); any other part in
//  a pass of its own first, over frames that were just received.
static void
s_handle_push (agg_t *self, const ps_agg_command_t *command)
{
    assert (self->nframes >= 1);
    for (size_t i = 1; i < self->nframes; i++)
        self->applied += zmq_msg_size (&self->frames[i]);
    if (s_skipping (self, command))
        return;
    size_t entries;
    const ps_agg_entry_t *plan = s_plan (&self->frames[0], &entries);
    s_reserve_taken (self, entries);
    s_resolve_keys (self, plan, entries);
    ps_problem_t problem;
    bool store_checks =
        !self->accept_nonfinite && entries == 1 && self->keys[0] && self->staleness != 0;
    if (!self->accept_nonfinite && !store_checks && s_check_frames (self, plan, entries, &problem))
        return s_refuse (self, command, &problem);
    if (self->staleness != 0)
        s_let_readers_drain (self, entries);
    size_t frame = 1, taken = 0;
    for (size_t i = 0; i < entries; i++) {
        const ps_agg_entry_t *entry = &plan[i];
        s_entry_pieces (self, entry, frame);
        ps_key_t *key = self->keys[i];
        bool stepped = false;
        int rc = -1;
        if (!key)
            ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_UNKNOWN_KEY, "unknown key '%s'",
                            entry->key);
        else if (self->staleness == 0)
            rc = ps_store_accumulate_part (self->store, key, command->clock, entry->offset,
                                           self->pieces, entry->frames, command->grad_count,
                                           &problem);
        else
            rc = ps_store_stage_part (self->store, key, entry->offset, self->pieces, entry->frames,
                                      command->grad_count, entry->ends, store_checks, &stepped,
                                      &problem);
        if (rc && problem.code == PSMQ__ERR_CODE__ERR_NONFINITE)
            return s_refuse (self, command, &problem);
        //  A BSP sum past the store's limit: the part is taken back
        //  exactly and the worker told
        if (rc && problem.code == PSMQ__ERR_CODE__ERR_FULL && self->staleness == 0) {
            s_take_back (self, command, plan, taken);
            return s_refuse (self, command, &problem);
        }
        if (rc)
            ps_error ("push from worker %u lost after its ack: %s", command->worker,
                      problem.message);
        else
            self->taken[taken++] = (taken_t){.key = key, .entry = i, .frame = frame};
        if (stepped) {
            self->steps++;
            s_publish (key, self);
        }
        frame += entry->frames;
    }
}

static void
s_handle_flush (agg_t *self, const ps_agg_command_t *command)
{
    self->steps += ps_store_flush (self->store, command->clock, s_publish, self);
}

//  Answer a CHECKPOINT or a RESTORE: checkpoint handed back (or NULL), and
//  why it failed when problem is not NULL
static void
s_answer (agg_t *self, ps_agg_kind_t kind, ps_checkpoint_t *checkpoint, const ps_problem_t *problem)
{
    ps_agg_command_t event = {.kind = kind, .status = problem ? -1 : 0, .checkpoint = checkpoint};
    PS_HANDOFF_SEND (checkpoint);
    s_send_event (self, &event, true);
    const char *why = problem ? problem->message : "";
    zmq_send (self->pipe, why, strlen (why), 0);
}

//  CHECKPOINT: the keys as they are now, after every command before it.
//  Under BSP that is the state after the last FLUSH: the accumulators of
//  later clocks are not saved, and the ranks redo those clocks
static void
s_handle_checkpoint (agg_t *self, const ps_agg_command_t *command)
{
    ps_checkpoint_t *checkpoint = command->checkpoint;
    PS_HANDOFF_RECEIVE (checkpoint);
    ps_problem_t problem;
    int rc = ps_store_snapshot (self->store, checkpoint, &problem);
    if (rc) {
        ps_checkpoint_destroy (&checkpoint);
        ps_error ("checkpoint not taken: %s", problem.message);
    }
    s_answer (self, PS_AGG_SNAPSHOT, checkpoint, rc ? &problem : NULL);
}

//  RESTORE: the store replaced by a new one holding the keys of a
//  checkpoint, each published as an INIT's would be. Whole: at start the
//  store is empty anyway, and a group's rollback must forget every key,
//  value, optimizer state and BSP sum of the future it throws away
static void
s_handle_restore (agg_t *self, const ps_agg_command_t *command)
{
    ps_checkpoint_t *checkpoint = command->checkpoint;
    PS_HANDOFF_RECEIVE (checkpoint);
    ps_problem_t problem;
    ps_store_t *store = ps_store_new (&self->defaults);
    int rc = store ? 0 : ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_FULL, "out of memory");
    if (store) {
        ps_store_set_limit (store, self->max_store_bytes);
        ps_store_destroy (&self->store);
        self->store = store;
        rc = ps_store_restore (self->store, checkpoint, &problem);
    }
    for (size_t i = 0; rc == 0 && i < checkpoint->nkeys; i++)
        s_publish (ps_store_lookup (self->store, checkpoint->keys[i].name), self);
    ps_checkpoint_destroy (&checkpoint);
    s_answer (self, PS_AGG_RESTORED, NULL, rc ? &problem : NULL);
}

static void
s_send_done (agg_t *self)
{
    ps_agg_command_t event = {.kind = PS_AGG_DONE,
                              .done = self->done,
                              .steps = self->steps,
                              .pending = ps_store_pending (self->store),
                              .store_bytes = ps_store_bytes (self->store),
                              .applied = self->applied};
    s_send_event (self, &event, false);
}

void
ps_aggregator_actor (zsock_t *pipe, void *args)
{
    const ps_aggregator_config_t *config = args;
    agg_t self = {.pipe = zsock_resolve (pipe),
                  .store = ps_store_new (&config->defaults),
                  .staleness = config->staleness,
                  .defaults = config->defaults,
                  .accept_nonfinite = config->accept_nonfinite,
                  .max_store_bytes = config->max_store_bytes,
                  .skipping = calloc (PS_MAX_WORKERS, sizeof (bool)),
                  .router_taken = config->taken};
    assert (self.store && self.skipping);
    ps_store_set_limit (self.store, self.max_store_bytes);
    //  Done with config, which lives on our creator's stack
    PS_HANDOFF_SEND (args);
    zsock_signal (pipe, 0);

    while (true) {
        zmq_msg_t first;
        zmq_msg_init (&first);
        if (zmq_msg_recv (&first, self.pipe, 0) == -1) {
            zmq_msg_close (&first);
            break;
        }
        bool terminate =
            zmq_msg_size (&first) == 5 && memcmp (zmq_msg_data (&first), "$TERM", 5) == 0;
        ps_agg_command_t command = {0};
        if (!terminate) {
            assert (zmq_msg_size (&first) == sizeof command);
            memcpy (&command, zmq_msg_data (&first), sizeof command);
        }
        zmq_msg_close (&first);
        if (s_receive_frames (&self) || terminate) {
            s_close_frames (&self);
            break;
        }
        switch (command.kind) {
        case PS_AGG_INIT: s_handle_init (&self, &command); break;
        case PS_AGG_PUSH: s_handle_push (&self, &command); break;
        case PS_AGG_FLUSH: s_handle_flush (&self, &command); break;
        case PS_AGG_CHECKPOINT: s_handle_checkpoint (&self, &command); break;
        case PS_AGG_RESTORE: s_handle_restore (&self, &command); break;
        default: assert (false);
        }
        s_close_frames (&self);
        self.done++;
        s_send_done (&self);
    }
    free (self.frames);
    free (self.pieces);
    free (self.aligned);
    free (self.taken);
    free (self.keys);
    free (self.skipping);
    ps_store_destroy (&self.store);
}
