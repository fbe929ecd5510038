/*  =========================================================================
    ps_layout - how one call's tensors go over the group and into slices

    ps_layout_plan checks a call's tensors (keys, sizes, what one message
    may carry) and lays each over the group's brokers by the rule of
    ps_partition. The other functions then write the slices of one
    broker's request: chunks of at most PS_CHUNK_BYTES with the data each
    comes from (PUSH, INIT with values), one slice per part (PULL), or one
    size per part (INIT without values). Offsets are within each broker's
    part, since every broker sees its part as a whole key.

    Threads: the thread that owns the worker, only.

    Ownership: the layout owns the plan and the slice arrays, reused from
    call to call (no allocation once they are large enough). The slices,
    sources and parts it returns are valid until the next call that writes
    them. The tensors given to ps_layout_plan (descriptors, keys, data) are
    borrowed and must stay valid until the last slice of the call is sent.

    Failure: ps_layout_plan returns PS_OK, PS_EINVAL (a bad tensor, or more
    than one message may carry) or PS_ENOMEM, with problem (code 0) filled
    in. ps_layout_new returns NULL when out of memory.
    ========================================================================= */

#ifndef PS_LAYOUT_H_INCLUDED
#define PS_LAYOUT_H_INCLUDED

#include "ps_codec.h"
#include "ps_partition.h"
#include "ps_worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_layout_t ps_layout_t;

//  A layout for a group of nlinks brokers
ps_layout_t *ps_layout_new (uint32_t nlinks);
void ps_layout_destroy (ps_layout_t **self_p);

//  The float32 bytes of a call's tensors in all (tensors may be NULL when
//  ntensors is 0), SIZE_MAX when they would not fit a size_t: whether a
//  push lends its buffers, whether a pull streams its copy
size_t ps_layout_bytes (const ps_tensor_t *tensors, size_t ntensors);

//  Check the tensors and lay them over the group; with_data: each must
//  have data. Without it (a pull into a view, an INIT without values) the
//  data is not read, and ps_layout_chunks, which points into it, is not
//  for that plan.
int ps_layout_plan (ps_layout_t *self, const ps_tensor_t *tensors, size_t ntensors, bool with_data,
                    ps_problem_t *problem);
//  The plan: tensor i's part on link l at [i * nlinks + l], count 0 when
//  that broker holds none of it
const ps_part_t *ps_layout_parts (const ps_layout_t *self);

//  Link's parts as slices of at most PS_CHUNK_BYTES (the data of slice i
//  is ps_layout_sources ()[i]); returns how many, 0 when link holds
//  none of the tensors (the same for the next two)
size_t ps_layout_chunks (ps_layout_t *self, uint32_t link);
//  One slice per part of link, for the part's whole count: a PULL's
size_t ps_layout_wholes (ps_layout_t *self, uint32_t link);
//  One slice per part of link, count 0 and total the part's count: an
//  INIT without values
size_t ps_layout_sizes (ps_layout_t *self, uint32_t link);

//  The slices the last of the three functions above wrote
ps_slice_t **ps_layout_slices (ps_layout_t *self);
//  Where each slice's data comes from, after ps_layout_chunks
const float *const *ps_layout_sources (const ps_layout_t *self);

#endif
