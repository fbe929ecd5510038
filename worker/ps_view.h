/*  =========================================================================
    ps_view - a pull's reply read where it was received

    ps_worker_pull_view fills a view rather than the caller's buffers: the
    view keeps the reply's tensor frames and hands them out as pieces, a
    run of one pulled tensor's elements each, so that the 64 MB of a large
    pull are not copied once more after libzmq received them. The public
    half (ps_view_new, ps_view_destroy, ps_view_pieces, ps_view_piece) is
    declared in ps_worker.h; this header adds what the worker fills it with.

    A piece points into its frame when the frame carries float32 elements
    at an address aligned for floats and is large enough to have a buffer
    of its own (libzmq keeps small frames inside the message, or at any
    offset of its shared receive buffer). Any other piece, and every piece
    of a key that travels in bf16 or fp16 (widened here), is a copy the
    view owns.

    Threads: a view is used by one thread at a time; a worker fills it only
    during ps_worker_pull_view on the worker's thread.

    Ownership: the caller makes and destroys the view. The view owns the
    frames and copies it holds; a piece's data stays valid until the view
    is cleared, filled again or destroyed. Received frames do not refer to
    the worker's sockets, so a view may outlive the worker that filled it.

    Failure: ps_view_take returns PS_OK or PS_ENOMEM (the frame is then
    left to the caller, and the view as it was).
    ========================================================================= */

#ifndef PS_VIEW_H_INCLUDED
#define PS_VIEW_H_INCLUDED

#include "ps_worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

//  Frames of fewer bytes are copied: libzmq may keep them inside the
//  message (whose address moves with it) or share their buffer with the
//  frames around them
#define PS_VIEW_INPLACE_MIN 4096

//  Release every frame and copy; the view then has no piece
void ps_view_clear (ps_view_t *self);
//  Add the piece of tensor at element offset: count (at least 1) elements
//  of the wire dtype (ps_dtype_t) in frame. A frame read in place is moved into the
//  view (frame is then empty); else its elements are copied and frame is
//  left as it was.
int ps_view_take (ps_view_t *self, size_t tensor, size_t offset, size_t count, int dtype,
                  zmq_msg_t *frame);
//  Sort the pieces by tensor, then offset, and tell whether those of each
//  of the ntensors tensors pulled (their counts are read) cover it exactly
//  once; false names the first tensor that they do not in *tensor
bool ps_view_tiles (ps_view_t *self, const ps_tensor_t *tensors, size_t ntensors, size_t *tensor);
//  Frames held (pieces read in place), for tests
size_t ps_view_frames (const ps_view_t *self);

#endif
