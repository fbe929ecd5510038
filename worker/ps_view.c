/*  =========================================================================
    ps_view - a pull's reply read where it was received (see ps_view.h)

    Pieces, frames and copies are three arrays that grow as a pull's parts
    come and keep their room across fills, and so do the copies' buffers
    (the i-th copy of a fill reuses the i-th buffer), so that a view reused
    step after step allocates nothing once it has seen its largest reply.
    ========================================================================= */

#include "ps_view.h"
#include "ps_dtype.h"

#include <assert.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

//  A buffer for a piece that is not read in place, kept for the next fill
typedef struct {
    float *data;
    size_t room; //  floats
} copy_t;

struct ps_view_t {
    ps_view_piece_t *pieces; //  in arrival order, then sorted by ps_view_tiles
    size_t npieces;
    size_t pieces_room;
    zmq_msg_t *frames; //  the frames pieces point into
    size_t nframes;
    size_t frames_room;
    copy_t *copies; //  the pieces that could not be read in place
    size_t ncopies; //  used by this fill
    size_t nmade;   //  buffers made, used or kept
    size_t copies_room;
};

ps_view_t *
ps_view_new (void)
{
    return calloc (1, sizeof (ps_view_t));
}

void
ps_view_destroy (ps_view_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ps_view_t *self = *self_p;
    ps_view_clear (self);
    for (size_t i = 0; i < self->nmade; i++)
        free (self->copies[i].data);
    free (self->pieces);
    free (self->frames);
    free (self->copies);
    free (self);
    *self_p = NULL;
}

size_t
ps_view_pieces (const ps_view_t *self)
{
    return self ? self->npieces : 0;
}

const ps_view_piece_t *
ps_view_piece (const ps_view_t *self, size_t index)
{
    return self && index < self->npieces ? &self->pieces[index] : NULL;
}

size_t
ps_view_frames (const ps_view_t *self)
{
    return self ? self->nframes : 0;
}

void
ps_view_clear (ps_view_t *self)
{
    assert (self);
    for (size_t i = 0; i < self->nframes; i++)
        zmq_msg_close (&self->frames[i]);
    self->npieces = self->nframes = self->ncopies = 0;
}

//  Room for one more of an array's elements of size bytes; 0 or -1
static int
s_room (void **array, size_t *room, size_t used, size_t size)
{
    if (used < *room)
        return 0;
    size_t grown = *room ? *room * 2 : 16;
    void *bigger = realloc (*array, grown * size);
    if (!bigger)
        return -1;
    *array = bigger;
    *room = grown;
    return 0;
}

//  The next copy's buffer, with room for count floats; NULL when out of
//  memory (the view is then as it was)
static float *
s_copy_buffer (ps_view_t *self, size_t count)
{
    if (self->ncopies == self->nmade) {
        if (s_room ((void **)&self->copies, &self->copies_room, self->nmade, sizeof (copy_t)))
            return NULL;
        self->copies[self->nmade++] = (copy_t){NULL, 0};
    }
    copy_t *copy = &self->copies[self->ncopies];
    if (copy->room < count) {
        float *bigger = realloc (copy->data, count * sizeof (float));
        if (!bigger)
            return NULL;
        copy->data = bigger;
        copy->room = count;
    }
    self->ncopies++;
    return copy->data;
}

//  Whether frame's count elements of dtype can be read where they are
static bool
s_in_place (const zmq_msg_t *frame, int dtype)
{
    const void *data = zmq_msg_data ((zmq_msg_t *)frame);
    return dtype == PS_WIRE_F32 && zmq_msg_size ((zmq_msg_t *)frame) >= PS_VIEW_INPLACE_MIN &&
           (uintptr_t)data % alignof (float) == 0;
}

int
ps_view_take (ps_view_t *self, size_t tensor, size_t offset, size_t count, int dtype,
              zmq_msg_t *frame)
{
    assert (self && frame && count > 0);
    if (s_room ((void **)&self->pieces, &self->pieces_room, self->npieces,
                sizeof (ps_view_piece_t)))
        return PS_ENOMEM;
    const float *data;
    if (s_in_place (frame, dtype)) {
        if (s_room ((void **)&self->frames, &self->frames_room, self->nframes, sizeof (zmq_msg_t)))
            return PS_ENOMEM;
        zmq_msg_t *kept = &self->frames[self->nframes++];
        zmq_msg_init (kept);
        zmq_msg_move (kept, frame);
        //  Large enough to live outside the message: the address stays
        //  when the frames array grows
        data = zmq_msg_data (kept);
    }
    else {
        float *copy = s_copy_buffer (self, count);
        if (!copy)
            return PS_ENOMEM;
        ps_dtype_to_f32 (copy, zmq_msg_data (frame), count, dtype);
        data = copy;
    }
    self->pieces[self->npieces++] = (ps_view_piece_t){tensor, offset, count, data};
    return PS_OK;
}

static int
s_compare (const void *a, const void *b)
{
    const ps_view_piece_t *left = a, *right = b;
    if (left->tensor != right->tensor)
        return left->tensor < right->tensor ? -1 : 1;
    if (left->offset != right->offset)
        return left->offset < right->offset ? -1 : 1;
    return 0;
}

bool
ps_view_tiles (ps_view_t *self, const ps_tensor_t *tensors, size_t ntensors, size_t *tensor)
{
    assert (self && tensor);
    qsort (self->pieces, self->npieces, sizeof (ps_view_piece_t), s_compare);
    size_t piece = 0;
    for (size_t i = 0; i < ntensors; i++) {
        size_t next = 0;
        for (; piece < self->npieces && self->pieces[piece].tensor == i; piece++) {
            if (self->pieces[piece].offset != next)
                break;
            next += self->pieces[piece].count;
        }
        if (next != tensors[i].count ||
            (piece < self->npieces && self->pieces[piece].tensor == i)) {
            *tensor = i;
            return false;
        }
    }
    if (piece < self->npieces) {
        *tensor = self->pieces[piece].tensor;
        return false;
    }
    return true;
}
