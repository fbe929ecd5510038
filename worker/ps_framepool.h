/*  =========================================================================
    ps_framepool - reusable buffers for outgoing tensor frames

    A frame sent with zmq_msg_init_size gets a fresh malloc'd buffer; at
    1 MB glibc soon returns those to the kernel, and every send then pays
    256 page faults per frame (docs/performance.md). The pool keeps sent
    buffers for the next message instead.

    The owner thread takes buffers (ps_framepool_msg); libzmq's I/O thread
    gives them back through the message's free function, so a mutex guards
    the free list, the only state two threads touch. The pool must outlive
    every message it lent: destroy it after zmq_ctx_term (which waits for
    libzmq to release them all).
    ========================================================================= */

#ifndef PS_FRAMEPOOL_H_INCLUDED
#define PS_FRAMEPOOL_H_INCLUDED

#include <stddef.h>
#include <zmq.h>

typedef struct ps_framepool_t ps_framepool_t;

//  Buffers of buffer_bytes; at most max_cached kept when idle
ps_framepool_t *ps_framepool_new (size_t buffer_bytes, size_t max_cached);
void ps_framepool_destroy (ps_framepool_t **self_p);
//  Initialise msg with size bytes (at most buffer_bytes) of pooled memory,
//  contents undefined. 0, or -1 when out of memory.
int ps_framepool_msg (ps_framepool_t *self, zmq_msg_t *msg, size_t size);
//  Buffers allocated and not freed (lent or cached), for tests
size_t ps_framepool_buffers (ps_framepool_t *self);

#endif
