/*  =========================================================================
    ps_layout - one call's tensors over the group and into slices (see
    ps_layout.h)

    Tensors go out in slices of at most PS_CHUNK_BYTES: large frames are
    slower to receive than several reused 1 MB buffers
    (docs/performance.md). The slice arrays grow to the largest call seen
    and are reused, so a steady loop of pushes and pulls allocates nothing
    here.
    ========================================================================= */

#include "ps_layout.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_FLOATS (PS_CHUNK_BYTES / sizeof (float))

struct ps_layout_t {
    uint32_t nlinks;            //  brokers in the group
    const ps_tensor_t *tensors; //  the call's, borrowed
    size_t ntensors;            //  their number
    ps_part_t *plan;            //  tensor i's part on link l at [i * nlinks + l]
    size_t plan_capacity;       //  allocated
    ps_slice_t *slices;         //  one broker's slices
    ps_slice_t **slice_ptrs;    //  pointers to them, as the envelope takes them
    const float **sources;      //  each slice's data
    size_t slice_capacity;      //  allocated, of each of the three
};

ps_layout_t *
ps_layout_new (uint32_t nlinks)
{
    ps_layout_t *self = calloc (1, sizeof *self);
    if (self)
        self->nlinks = nlinks;
    return self;
}

void
ps_layout_destroy (ps_layout_t **self_p)
{
    assert (self_p);
    ps_layout_t *self = *self_p;
    if (!self)
        return;
    free (self->plan);
    free (self->slices);
    free (self->slice_ptrs);
    free (self->sources);
    free (self);
    *self_p = NULL;
}

size_t
ps_layout_bytes (const ps_tensor_t *tensors, size_t ntensors)
{
    size_t bytes = 0;
    for (size_t i = 0; tensors && i < ntensors; i++) {
        if (tensors[i].count > (SIZE_MAX - bytes) / sizeof (float))
            return SIZE_MAX;
        bytes += tensors[i].count * sizeof (float);
    }
    return bytes;
}

static int
s_reserve_slices (ps_layout_t *self, size_t count)
{
    if (count <= self->slice_capacity)
        return 0;
    ps_slice_t *slices = realloc (self->slices, count * sizeof *slices);
    if (!slices)
        return -1;
    self->slices = slices;
    ps_slice_t **ptrs = realloc (self->slice_ptrs, count * sizeof *ptrs);
    if (!ptrs)
        return -1;
    self->slice_ptrs = ptrs;
    const float **sources = realloc (self->sources, count * sizeof *sources);
    if (!sources)
        return -1;
    self->sources = sources;
    self->slice_capacity = count;
    return 0;
}

//  Check every tensor, and that the call fits in one message per broker
static int
s_check (ps_layout_t *self, const ps_tensor_t *tensors, size_t ntensors, bool with_data,
         ps_problem_t *problem)
{
    if (!tensors || ntensors == 0) {
        ps_problem_set (problem, 0, "no tensors given");
        return PS_EINVAL;
    }
    size_t slices = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < ntensors; i++) {
        ps_problem_t key_problem;
        if (!tensors[i].key || ps_codec_check_key (tensors[i].key, &key_problem)) {
            ps_problem_set (problem, 0, "tensor %zu: %s", i,
                            tensors[i].key ? key_problem.message : "no key");
            return PS_EINVAL;
        }
        if ((with_data && !tensors[i].data) || tensors[i].count == 0 ||
            tensors[i].count > PS_MAX_TENSOR_ELEMS) {
            ps_problem_set (problem, 0, "tensor '%s': needs %s1..%llu elements", tensors[i].key,
                            with_data ? "data and " : "", (unsigned long long)PS_MAX_TENSOR_ELEMS);
            return PS_EINVAL;
        }
        slices += (tensors[i].count + CHUNK_FLOATS - 1) / CHUNK_FLOATS;
        bytes += tensors[i].count * sizeof (float);
    }
    //  No broker's message carries more than all of it
    if (slices > PS_MAX_SLICES || bytes > (uint64_t)PS_MAX_MESSAGE_BYTES) {
        ps_problem_set (problem, 0,
                        "%" PRIu64 " bytes in %zu slices is more than one message may carry "
                        "(%lld bytes, %d slices): split the call",
                        bytes, slices, PS_MAX_MESSAGE_BYTES, PS_MAX_SLICES);
        return PS_EINVAL;
    }
    if (s_reserve_slices (self, slices > ntensors ? slices : ntensors)) {
        ps_problem_set (problem, 0, "out of memory");
        return PS_ENOMEM;
    }
    return PS_OK;
}

int
ps_layout_plan (ps_layout_t *self, const ps_tensor_t *tensors, size_t ntensors, bool with_data,
                ps_problem_t *problem)
{
    int status = s_check (self, tensors, ntensors, with_data, problem);
    if (status)
        return status;
    size_t needed = ntensors * self->nlinks;
    if (needed > self->plan_capacity) {
        ps_part_t *plan = realloc (self->plan, needed * sizeof *plan);
        if (!plan) {
            ps_problem_set (problem, 0, "out of memory");
            return PS_ENOMEM;
        }
        self->plan = plan;
        self->plan_capacity = needed;
    }
    memset (self->plan, 0, needed * sizeof *self->plan);
    ps_part_t parts[PS_MAX_SHARDS];
    for (size_t i = 0; i < ntensors; i++) {
        size_t nparts = ps_partition (tensors[i].key, tensors[i].count, self->nlinks, parts);
        for (size_t p = 0; p < nparts; p++)
            self->plan[i * self->nlinks + parts[p].shard] = parts[p];
    }
    self->tensors = tensors;
    self->ntensors = ntensors;
    return PS_OK;
}

const ps_part_t *
ps_layout_parts (const ps_layout_t *self)
{
    return self->plan;
}

static void
s_slice (ps_layout_t *self, size_t index, const char *key, uint64_t offset, uint64_t count,
         uint64_t total)
{
    ps_slice_t *slice = &self->slices[index];
    psmq__slice__init (slice);
    slice->key = (char *)key;
    slice->offset = offset;
    slice->count = count;
    slice->total = total;
    self->slice_ptrs[index] = slice;
}

size_t
ps_layout_chunks (ps_layout_t *self, uint32_t link)
{
    size_t used = 0;
    for (size_t i = 0; i < self->ntensors; i++) {
        const ps_part_t *part = &self->plan[i * self->nlinks + link];
        for (uint64_t offset = 0; offset < part->count; offset += CHUNK_FLOATS) {
            uint64_t left = part->count - offset;
            uint64_t count = left < CHUNK_FLOATS ? left : CHUNK_FLOATS;
            s_slice (self, used, self->tensors[i].key, offset, count, part->count);
            self->sources[used] = self->tensors[i].data + part->offset + offset;
            used++;
        }
    }
    return used;
}

//  One slice per part of link: for its whole count (a PULL), or with
//  sizes_only for count 0 and total the part's count (an INIT without values)
static size_t
s_one_per_part (ps_layout_t *self, uint32_t link, bool sizes_only)
{
    size_t used = 0;
    for (size_t i = 0; i < self->ntensors; i++) {
        const ps_part_t *part = &self->plan[i * self->nlinks + link];
        if (part->count)
            s_slice (self, used++, self->tensors[i].key, 0, sizes_only ? 0 : part->count,
                     sizes_only ? part->count : 0);
    }
    return used;
}

size_t
ps_layout_wholes (ps_layout_t *self, uint32_t link)
{
    return s_one_per_part (self, link, false);
}

size_t
ps_layout_sizes (ps_layout_t *self, uint32_t link)
{
    return s_one_per_part (self, link, true);
}

ps_slice_t **
ps_layout_slices (ps_layout_t *self)
{
    return self->slice_ptrs;
}

const float *const *
ps_layout_sources (const ps_layout_t *self)
{
    return self->sources;
}
