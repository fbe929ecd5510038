/*  =========================================================================
    ps_buf - reference-counted float32 buffer

    The count is atomic because libzmq's I/O thread drops references from
    its free callback while the aggregation thread checks for exclusivity.
    Dropping uses release order and the exclusivity check acquire order, so
    a writer that sees itself alone also sees every reader's reads done.

    A buffer of PS_CHUNK_BYTES or more is its own mapping, unmapped by its
    last reference, not a block of malloc's heap. On the heap, a freed
    version stayed there (psbroker keeps malloc from returning memory,
    ps_malloc_keep_mapped; glibc's own threshold, once a 16 MB block was
    freed, keeps it too) and was cut up by other blocks, libzmq's 1 MB
    messages among them: each new version the store needed (its spare
    still pinned) went on top of the heap. 8 workers pushing a 16 MB key
    took the broker to 200-300 MB resident with 3 versions live. Under
    AddressSanitizer, which returns large blocks at once anyway, buffers
    stay on its heap so that its checks cover them.
    ========================================================================= */

#include "ps_buf.h"
#include "ps_limits.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define PS_BUF_ON_HEAP 1
#else
#define PS_BUF_ON_HEAP 0
#endif

struct ps_buf_t {
    atomic_size_t refs; //  references held, by any thread
    size_t count;       //  floats in data
    float *data;        //  64-byte aligned
    size_t mapped;      //  bytes of data's own mapping, or 0: malloc's
};

//  A block of bytes for data: its own mapping (page aligned) from
//  PS_CHUNK_BYTES up, else 64-byte aligned from malloc
static float *
s_data_new (size_t bytes, size_t *mapped)
{
    *mapped = 0;
    if (bytes < PS_CHUNK_BYTES || PS_BUF_ON_HEAP)
        return aligned_alloc (64, bytes ? bytes : 64);
    void *data = mmap (NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED)
        return NULL;
    *mapped = bytes;
    return data;
}

ps_buf_t *
ps_buf_new (size_t count)
{
    ps_buf_t *self = malloc (sizeof *self);
    if (!self)
        return NULL;
    size_t bytes = (count * sizeof (float) + 63) & ~(size_t)63;
    self->data = s_data_new (bytes, &self->mapped);
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
        if (self->mapped)
            munmap (self->data, self->mapped);
        else
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

unsigned
ps_buf_refs (ps_buf_t *self)
{
    assert (self);
    return (unsigned)atomic_load_explicit (&self->refs, memory_order_acquire);
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
