/*  =========================================================================
    ps_unsent - bytes of pull replies a connection has not been sent yet

    A pull is answered by reference: each reply frame points into a
    published parameter version and holds it until libzmq has written the
    frame to the connection (or dropped it), then releases it from its
    free callback on a libzmq I/O thread. A peer that sends PULLs and never
    reads makes libzmq queue replies without end, and while training goes
    on each one pins a version of its own (the store writes the next step
    into a new buffer when a reader holds the spare): a broker grew from
    66 MB to 4 GB in 18 s that way. This counter, one per registered
    connection, says how many bytes its replies hold pinned, so that the
    ROUTER loop can refuse its PULLs past a limit (psbroker --max-unread)
    and memory stays bounded by the limit plus one reply.

    What is counted: each key of a reply charges the whole version buffer
    it pins (a pull of one float of a 1 GB key pins 1 GB), on the frame
    that carries the key's last part; frames go out in order, so that one
    is released last and the charge lasts as long as the pin. Replies that
    pin the same version are each charged: an upper bound, never an
    underestimate.

    Threads and ownership: the ROUTER loop creates the counter and holds
    one reference (its peer's); every charged frame holds another, dropped
    by libzmq's free callback on an I/O thread, so a counter outlives a
    peer forgotten while frames are in flight. The count and the
    references are atomics; only the ROUTER loop adds charges and reads the
    count, the I/O threads only subtract.
    ========================================================================= */

#ifndef PS_UNSENT_H_INCLUDED
#define PS_UNSENT_H_INCLUDED

#include "ps_buf.h"

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct ps_unsent_t ps_unsent_t;

//  A counter at 0, with one reference, the caller's; NULL out of memory
ps_unsent_t *ps_unsent_new (void);
//  Drop the caller's reference and null the pointer; frames in flight
//  keep the counter until libzmq releases them
void ps_unsent_destroy (ps_unsent_t **self_p);
//  Bytes charged by frames libzmq has not released yet
uint64_t ps_unsent_bytes (ps_unsent_t *self);
//  As ps_buf_frame (a zero-copy frame over elements [offset, offset +
//  count) of buf, holding a reference to it), charging self charge bytes
//  until libzmq releases the frame. 0, or -1 (nothing charged) when the
//  range is outside the buffer or out of memory.
int ps_unsent_frame (ps_unsent_t *self, ps_buf_t *buf, size_t offset, size_t count, uint64_t charge,
                     zmq_msg_t *msg);
//  The same over bytes [offset, offset + bytes) of buf's data (a 16-bit
//  wire copy, ps_buf_frame_bytes)
int ps_unsent_frame_bytes (ps_unsent_t *self, ps_buf_t *buf, size_t offset, size_t bytes,
                           uint64_t charge, zmq_msg_t *msg);

//  A frame of size bytes for the caller to fill (an INFO reply), charging
//  self size bytes until libzmq releases it. 0, or -1 out of memory.
int ps_unsent_buffer (ps_unsent_t *self, size_t size, zmq_msg_t *msg);

#endif
