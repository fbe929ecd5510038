/*  =========================================================================
    ps_unsent - bytes of pull replies not yet sent (see ps_unsent.h)

    A charged frame's free callback needs three things (the buffer to
    release, the counter and the charge), and libzmq passes one hint, so
    each charged frame has a small hint of its own. Only the frame that
    ends a key in a reply is charged, one small allocation per key pulled,
    next to the one libzmq makes for every zero-copy frame.
    ========================================================================= */

#include "ps_unsent.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>

struct ps_unsent_t {
    atomic_uint_least64_t bytes; //  charged and not released
    atomic_size_t refs;          //  the owner's and one per charged frame
};

typedef struct {
    ps_unsent_t *unsent; //  counter to release the charge from (a reference)
    ps_buf_t *buf;       //  version the frame points into (a reference),
                         //  or NULL for a buffer of its own (ps_unsent_buffer)
    uint64_t charge;     //  bytes to give back
} hint_t;

ps_unsent_t *
ps_unsent_new (void)
{
    ps_unsent_t *self = malloc (sizeof *self);
    if (!self)
        return NULL;
    atomic_init (&self->bytes, 0);
    atomic_init (&self->refs, 1);
    return self;
}

void
ps_unsent_destroy (ps_unsent_t **self_p)
{
    assert (self_p);
    ps_unsent_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (atomic_fetch_sub_explicit (&self->refs, 1, memory_order_acq_rel) == 1)
        free (self);
}

uint64_t
ps_unsent_bytes (ps_unsent_t *self)
{
    assert (self);
    return atomic_load_explicit (&self->bytes, memory_order_relaxed);
}

//  libzmq's free callback, on whichever thread closes the frame last
static void
s_released (void *data, void *arg)
{
    hint_t *hint = arg;
    atomic_fetch_sub_explicit (&hint->unsent->bytes, hint->charge, memory_order_relaxed);
    ps_unsent_destroy (&hint->unsent);
    if (hint->buf)
        ps_buf_unref (&hint->buf);
    else
        free (data);
    free (hint);
}

int
ps_unsent_frame (ps_unsent_t *self, ps_buf_t *buf, size_t offset, size_t count, uint64_t charge,
                 zmq_msg_t *msg)
{
    assert (self);
    assert (buf);
    if (offset > ps_buf_count (buf) || count > ps_buf_count (buf) - offset)
        return -1;
    hint_t *hint = malloc (sizeof *hint);
    if (!hint)
        return -1;
    atomic_fetch_add_explicit (&self->refs, 1, memory_order_relaxed);
    hint->unsent = self;
    hint->buf = ps_buf_ref (buf);
    hint->charge = charge;
    atomic_fetch_add_explicit (&self->bytes, charge, memory_order_relaxed);
    if (zmq_msg_init_data (msg, ps_buf_data (buf) + offset, count * sizeof (float), s_released,
                           hint)) {
        s_released (NULL, hint);
        return -1;
    }
    return 0;
}

int
ps_unsent_frame_bytes (ps_unsent_t *self, ps_buf_t *buf, size_t offset, size_t bytes,
                       uint64_t charge, zmq_msg_t *msg)
{
    assert (self);
    assert (buf);
    size_t size = ps_buf_count (buf) * sizeof (float);
    if (offset > size || bytes > size - offset)
        return -1;
    hint_t *hint = malloc (sizeof *hint);
    if (!hint)
        return -1;
    atomic_fetch_add_explicit (&self->refs, 1, memory_order_relaxed);
    *hint = (hint_t){.unsent = self, .buf = ps_buf_ref (buf), .charge = charge};
    atomic_fetch_add_explicit (&self->bytes, charge, memory_order_relaxed);
    if (zmq_msg_init_data (msg, (char *)ps_buf_data (buf) + offset, bytes, s_released, hint)) {
        s_released (NULL, hint);
        return -1;
    }
    return 0;
}

int
ps_unsent_buffer (ps_unsent_t *self, size_t size, zmq_msg_t *msg)
{
    assert (self);
    hint_t *hint = malloc (sizeof *hint);
    void *data = malloc (size ? size : 1);
    if (!hint || !data) {
        free (hint);
        free (data);
        return -1;
    }
    atomic_fetch_add_explicit (&self->refs, 1, memory_order_relaxed);
    *hint = (hint_t){.unsent = self, .buf = NULL, .charge = size};
    atomic_fetch_add_explicit (&self->bytes, size, memory_order_relaxed);
    if (zmq_msg_init_data (msg, data, size, s_released, hint)) {
        s_released (data, hint);
        return -1;
    }
    return 0;
}
