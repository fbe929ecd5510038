/*  =========================================================================
    ps_tickets - the requests in flight (see ps_tickets.h)

    The table is an array searched by ticket: a worker has a handful of
    requests in flight (a push, a clock and a pull per step), so a linear
    search costs less than any index. Removing swaps the last entry in.

    A pull's reply may come in parts, and each part's slices in the order
    the request named its tensors: the copy looks for each slice's tensor
    from the one the previous slice belonged to.
    ========================================================================= */

#include "ps_tickets.h"
#include "ps_dtype.h"
#include "ps_layout.h"
#include "ps_stream.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct ps_tickets_t {
    ps_pending_t *pending; //  the entries
    size_t count;          //  their number
    size_t capacity;       //  allocated
    uint64_t next_seq;     //  the next ticket
    uint32_t nlinks;       //  brokers in the group
};

static void
s_linkset_add (ps_linkset_t *set, uint32_t link)
{
    set->bits[link / 64] |= 1ULL << (link % 64);
}

static bool
s_linkset_has (const ps_linkset_t *set, uint32_t link)
{
    return set->bits[link / 64] >> (link % 64) & 1;
}

ps_tickets_t *
ps_tickets_new (uint32_t nlinks)
{
    ps_tickets_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->next_seq = 1;
    self->nlinks = nlinks;
    return self;
}

void
ps_tickets_destroy (ps_tickets_t **self_p)
{
    assert (self_p);
    ps_tickets_t *self = *self_p;
    if (!self)
        return;
    while (self->count)
        ps_tickets_remove (self, &self->pending[0]);
    free (self->pending);
    free (self);
    *self_p = NULL;
}

ps_pending_t *
ps_tickets_add (ps_tickets_t *self, int type)
{
    if (self->count == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 16;
        ps_pending_t *grown = realloc (self->pending, capacity * sizeof *grown);
        if (!grown)
            return NULL;
        self->pending = grown;
        self->capacity = capacity;
    }
    ps_pending_t *pending = &self->pending[self->count++];
    memset (pending, 0, sizeof *pending);
    pending->seq = self->next_seq++;
    pending->type = type;
    return pending;
}

ps_pending_t *
ps_tickets_add_pull (ps_tickets_t *self, const ps_tensor_t *tensors, size_t ntensors,
                     const ps_part_t *plan)
{
    size_t plan_bytes = ntensors * self->nlinks * sizeof *plan;
    ps_tensor_t *copy = malloc (ntensors * sizeof *copy);
    ps_part_t *plan_copy = malloc (plan_bytes);
    uint64_t *filled = calloc (ntensors, sizeof *filled);
    ps_pending_t *pending =
        copy && plan_copy && filled ? ps_tickets_add (self, PSMQ__MSG_TYPE__PULL) : NULL;
    if (!pending) {
        free (copy);
        free (plan_copy);
        free (filled);
        return NULL;
    }
    memcpy (copy, tensors, ntensors * sizeof *copy);
    memcpy (plan_copy, plan, plan_bytes);
    pending->tensors = copy;
    pending->plan = plan_copy;
    pending->filled = filled;
    pending->ntensors = ntensors;
    //  The pull's bytes in all: 161 tensors of a few MB each fill a cache
    //  as surely as one of their size
    pending->streamed = ps_stream_worth (ps_layout_bytes (tensors, ntensors));
    return pending;
}

ps_pending_t *
ps_tickets_find (ps_tickets_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->pending[i].seq == seq)
            return &self->pending[i];
    return NULL;
}

void
ps_tickets_remove (ps_tickets_t *self, ps_pending_t *pending)
{
    free (pending->tensors);
    free (pending->plan);
    free (pending->filled);
    free (pending->lent);
    *pending = self->pending[--self->count];
}

size_t
ps_tickets_count (const ps_tickets_t *self)
{
    return self->count;
}

void
ps_tickets_mark_sent (ps_pending_t *pending, uint32_t link)
{
    s_linkset_add (&pending->sent, link);
}

bool
ps_tickets_awaits (const ps_pending_t *pending, uint32_t link)
{
    return s_linkset_has (&pending->sent, link) && !s_linkset_has (&pending->answered, link);
}

bool
ps_tickets_waits_on_bound (const ps_tickets_t *self, const ps_pending_t *pending)
{
    if (ps_tickets_finishes_clock (pending))
        return true;
    if (pending->type != PSMQ__MSG_TYPE__PULL)
        return false;
    for (size_t i = 0; i < self->count; i++)
        if (ps_tickets_finishes_clock (&self->pending[i]) && !self->pending[i].complete &&
            self->pending[i].seq < pending->seq)
            return true;
    return false;
}

//  count elements of dtype from a reply frame into tensor at offset.
//  16-bit wire elements widen to floats here (exact); floats of a pull
//  that writes more than the cache keeps go by streamed stores
static void
s_fill (const ps_pending_t *pending, size_t tensor, size_t offset, zmq_msg_t *frame, size_t count,
        int dtype)
{
    float *out = pending->tensors[tensor].data + offset;
    if (dtype == PS_DTYPE_F32 && pending->streamed)
        ps_stream_copy (out, zmq_msg_data (frame), count);
    else
        ps_dtype_to_f32 (out, zmq_msg_data (frame), count, dtype);
}

//  Copy the frames of (one part of) link's reply to a PULL into the
//  caller's tensors, at the offsets of that link's parts, or hand them to
//  its view
static int
s_take_pull (ps_tickets_t *self, ps_pending_t *pending, uint32_t link, const char *endpoint,
             const ps_envelope_t *reply, zmq_msg_t *frames, size_t nframes, ps_problem_t *problem)
{
    ps_problem_t frames_problem;
    if (ps_codec_check_frames (reply, frames, nframes, &frames_problem)) {
        ps_problem_set (problem, 0, "pull reply from %s: %s", endpoint, frames_problem.message);
        return PS_EPROTO;
    }
    size_t tensor = 0;
    size_t frame = 0;
    for (size_t i = 0; i < reply->n_slices; i++) {
        const ps_slice_t *slice = reply->slices[i];
        size_t tries = 0;
        while (tries < pending->ntensors && strcmp (pending->tensors[tensor].key, slice->key)) {
            tensor = (tensor + 1) % pending->ntensors;
            tries++;
        }
        const ps_part_t *part =
            tries < pending->ntensors ? &pending->plan[tensor * self->nlinks + link] : NULL;
        if (!part || slice->offset > part->count || slice->count > part->count - slice->offset) {
            ps_problem_set (problem, 0,
                            "pull reply slice '%s' [%" PRIu64 ", +%" PRIu64
                            ") from %s fits no requested tensor",
                            slice->key, slice->offset, slice->count, endpoint);
            return PS_EPROTO;
        }
        if (slice->count == 0)
            continue;
        //  Parts repeated past the tensor's size would grow a view
        //  without bound until the timeout: refused as they come
        if (slice->count > pending->tensors[tensor].count - pending->filled[tensor]) {
            ps_problem_set (problem, 0,
                            "pull reply from %s brings more than the %zu elements of '%s'",
                            endpoint, pending->tensors[tensor].count, slice->key);
            return PS_EPROTO;
        }
        size_t offset = part->offset + slice->offset;
        zmq_msg_t *data = &frames[frame++];
        if (pending->view) {
            if (ps_view_take (pending->view, tensor, offset, slice->count, (int)slice->dtype,
                              data)) {
                ps_problem_set (problem, 0, "out of memory");
                return PS_ENOMEM;
            }
        }
        else
            s_fill (pending, tensor, offset, data, slice->count, (int)slice->dtype);
        pending->filled[tensor] += slice->count;
    }
    return PS_OK;
}

int
ps_tickets_broker_status (int code)
{
    return code > 0 && code <= PSMQ__ERR_CODE__ERR_NONFINITE ? -100 - code : PS_EPROTO;
}

bool
ps_tickets_finishes_clock (const ps_pending_t *pending)
{
    return pending->type == PSMQ__MSG_TYPE__CLOCK ||
           (pending->type == PSMQ__MSG_TYPE__PUSH && pending->clock_after);
}

int
ps_tickets_take (ps_tickets_t *self, ps_pending_t *pending, uint32_t link, const char *endpoint,
                 const ps_envelope_t *reply, zmq_msg_t *frames, size_t nframes,
                 ps_problem_t *problem)
{
    if (reply->type == PSMQ__MSG_TYPE__ERROR) {
        ps_problem_set (problem, 0, "broker %s%s: %s", endpoint,
                        pending->type == PSMQ__MSG_TYPE__HELLO ? " refused hello" : "",
                        reply->error ? reply->error->message : "error without detail");
        return ps_tickets_broker_status (reply->error ? reply->error->code : 0);
    }
    if ((int)reply->type != pending->type) {
        ps_problem_set (problem, 0, "%s reply from %s to a %s request",
                        ps_codec_type_name (reply->type), endpoint,
                        ps_codec_type_name (pending->type));
        return PS_EPROTO;
    }
    switch (pending->type) {
    case PSMQ__MSG_TYPE__PULL:
        return s_take_pull (self, pending, link, endpoint, reply, frames, nframes, problem);
    case PSMQ__MSG_TYPE__PUSH:
    case PSMQ__MSG_TYPE__CLOCK:
        if (!ps_tickets_finishes_clock (pending) || reply->clock == pending->clock + 1)
            return PS_OK;
        if (pending->type == PSMQ__MSG_TYPE__PUSH && reply->clock == pending->clock) {
            ps_problem_set (problem, 0,
                            "broker %s acked a push that finishes clock %" PRId64
                            " without finishing it: it predates pushes that finish a clock "
                            "(clock_after); push, then clock",
                            endpoint, pending->clock);
            return PS_EPROTO;
        }
        ps_problem_set (problem, 0, "clock reply %" PRId64 " from %s, expected %" PRId64,
                        reply->clock, endpoint, pending->clock + 1);
        return PS_EPROTO;
    case PSMQ__MSG_TYPE__INFO:
        *pending->info = strdup (reply->info);
        if (*pending->info)
            return PS_OK;
        ps_problem_set (problem, 0, "out of memory");
        return PS_ENOMEM;
    default: return PS_OK;
    }
}

//  When every link has answered a pull, every element must have come
static int
s_check_pull_filled (const ps_pending_t *pending, ps_problem_t *problem)
{
    for (size_t i = 0; i < pending->ntensors; i++)
        if (pending->filled[i] != pending->tensors[i].count) {
            ps_problem_set (problem, 0, "pull replies filled %" PRIu64 " of %zu elements of '%s'",
                            pending->filled[i], pending->tensors[i].count, pending->tensors[i].key);
            return PS_EPROTO;
        }
    return PS_OK;
}

int
ps_tickets_settle (ps_pending_t *pending, uint32_t link, int status, bool more,
                   ps_problem_t *problem)
{
    if (status != PS_OK && pending->status == PS_OK)
        pending->status = status;
    if (status != PS_OK && pending->type != PSMQ__MSG_TYPE__HELLO) {
        pending->complete = true;
        return PS_OK;
    }
    if (more && status == PS_OK)
        return PS_OK;
    s_linkset_add (&pending->answered, link);
    if (memcmp (&pending->answered, &pending->sent, sizeof pending->sent))
        return PS_OK;
    pending->complete = true;
    if (pending->type == PSMQ__MSG_TYPE__PULL)
        pending->status = s_check_pull_filled (pending, problem);
    return pending->type == PSMQ__MSG_TYPE__PULL ? pending->status : PS_OK;
}

size_t
ps_tickets_fail_link (ps_tickets_t *self, uint32_t link, int status, int64_t *clock_from)
{
    size_t failed = 0;
    bool clock_failed = false;
    for (size_t i = 0; i < self->count; i++) {
        ps_pending_t *pending = &self->pending[i];
        if (!pending->complete && ps_tickets_awaits (pending, link)) {
            ps_tickets_settle (pending, link, status, false, NULL);
            failed++;
            if (ps_tickets_finishes_clock (pending) &&
                (!clock_failed || pending->clock < *clock_from)) {
                *clock_from = pending->clock;
                clock_failed = true;
            }
        }
    }
    return failed;
}

void
ps_tickets_complete_all (ps_tickets_t *self, int status, bool all)
{
    for (size_t i = 0; i < self->count; i++)
        if (all || !self->pending[i].complete) {
            self->pending[i].complete = true;
            self->pending[i].status = status;
        }
}
