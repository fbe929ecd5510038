/*  =========================================================================
    ps_buf - reference-counted float32 buffer

    The count is atomic because libzmq's I/O thread drops references from
    its free callback while the aggregation thread checks for exclusivity.
    Dropping uses release order and the exclusivity check acquire order, so
    a writer that sees itself alone also sees every reader's reads done.
    ========================================================================= */

#include "ps_buf.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>

struct ps_buf_t {
    atomic_size_t refs; //  references held, by any thread
    size_t count;       //  floats in data
    float *data;        //  64-byte aligned
};

ps_buf_t *
ps_buf_new (size_t count)
{
    ps_buf_t *self = malloc (sizeof *self);
    if (!self)
        return NULL;
    size_t bytes = (count * sizeof (float) + 63) & ~(size_t)63;
    self->data = aligned_alloc (64, bytes ? bytes : 64);
    if (!self->data) {
        free (self);
        return NULL;
    }
    atomic_init (&self->refs, 1);
    self->count = count;
    return self;
}

ps_buf_t *
ps_buf_ref (ps_buf_t *self)
{
    assert (self);
    atomic_fetch_add_explicit (&self->refs, 1, memory_order_relaxed);
    return self;
}

void
ps_buf_unref (ps_buf_t **self_p)
{
    assert (self_p);
    ps_buf_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (atomic_fetch_sub_explicit (&self->refs, 1, memory_order_acq_rel) == 1) {
        free (self->data);
        free (self);
    }
}

bool
ps_buf_exclusive (ps_buf_t *self)
{
    assert (self);
    return atomic_load_explicit (&self->refs, memory_order_acquire) == 1;
}

float *
ps_buf_data (ps_buf_t *self)
{
    assert (self);
    return self->data;
}

size_t
ps_buf_count (const ps_buf_t *self)
{
    assert (self);
    return self->count;
}

static void
s_frame_released (void *data, void *hint)
{
    ps_buf_t *self = hint;
    ps_buf_unref (&self);
}

int
ps_buf_frame (ps_buf_t *self, size_t offset, size_t count, zmq_msg_t *msg)
{
    assert (self);
    if (offset > self->count || count > self->count - offset)
        return -1;
    ps_buf_ref (self);
    if (zmq_msg_init_data (msg, self->data + offset, count * sizeof (float), s_frame_released,
                           self)) {
        ps_buf_unref (&self);
        return -1;
    }
    return 0;
}

int
ps_buf_frame_bytes (ps_buf_t *self, size_t offset, size_t bytes, zmq_msg_t *msg)
{
    assert (self);
    size_t size = self->count * sizeof (float);
    if (offset > size || bytes > size - offset)
        return -1;
    ps_buf_ref (self);
    if (zmq_msg_init_data (msg, (char *)self->data + offset, bytes, s_frame_released, self)) {
        ps_buf_unref (&self);
        return -1;
    }
    return 0;
}
