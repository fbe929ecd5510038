/*  =========================================================================
    ps_buf - a reference-counted, immutable-once-published float32 buffer

    The aggregation thread writes a new parameter version into a buffer,
    then publishes it: from then on nobody writes it, and readers (the
    ROUTER loop, libzmq's I/O thread while it sends a frame that points into
    the buffer) each hold a reference. The last reference frees it. The
    writer may reuse a buffer for a later version only when it holds the
    only reference (ps_buf_exclusive), which makes copy-on-write cheap: in
    steady state two buffers per key take turns and nothing is allocated.

    Any thread may take or drop a reference; only the thread that holds the
    only reference may write the data.
    ========================================================================= */

#ifndef PS_BUF_H_INCLUDED
#define PS_BUF_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

typedef struct ps_buf_t ps_buf_t;

//  A buffer of count floats, 64-byte aligned, contents undefined, one
//  reference held by the caller (from PS_CHUNK_BYTES up, its own mapping,
//  given back to the system by the last reference). NULL when out of memory.
ps_buf_t *ps_buf_new (size_t count);
//  Take one more reference; returns self
ps_buf_t *ps_buf_ref (ps_buf_t *self);
//  Drop the caller's reference and null the pointer; frees on the last one
void ps_buf_unref (ps_buf_t **self_p);
//  True when the caller's reference is the only one
bool ps_buf_exclusive (ps_buf_t *self);
//  References held now (a moment's answer: other threads take and drop
//  them); each frame libzmq has not sent yet holds one
unsigned ps_buf_refs (ps_buf_t *self);
float *ps_buf_data (ps_buf_t *self);
size_t ps_buf_count (const ps_buf_t *self);
//  Make msg a zero-copy frame over elements [offset, offset + count) that
//  holds its own reference until libzmq releases it. 0, or -1 when the
//  range is outside the buffer or zmq_msg_init_data fails.
int ps_buf_frame (ps_buf_t *self, size_t offset, size_t count, zmq_msg_t *msg);
//  The same over bytes [offset, offset + bytes) of the data: for a buffer
//  that holds 16-bit wire elements (ps_published's copies for BF16 and
//  F16 keys), whose ranges need not fall on float boundaries
int ps_buf_frame_bytes (ps_buf_t *self, size_t offset, size_t bytes, zmq_msg_t *msg);

#endif
