/*  =========================================================================
    ps_store_part - SSP and ASP steps of pushes that come in parts

    A push of more than PS_PUSH_PART_BYTES comes in parts (PROTOCOL.md),
    and several workers' parts of the same key interleave. Each part is
    stepped as it comes into the key's spare, the next version, and the
    key is published when a run of some push reaches its last element:
    then every element of the spare holds that push's step, so no copy is
    needed in the usual case, and a pull after the push sees all of it.

    The spare holds, chunk by chunk (PS_CHUNK_BYTES), either nothing of
    use or a version newer than current's: key->dirty says which. A part
    reads a dirty chunk from the spare and steps it in place (the update
    rules allow out == in), a clean one from current; a clean chunk the
    part covers only in part is copied first, so that the chunk is whole
    when it turns dirty. At publication the clean chunks, those no part
    has touched since the last one (another worker's push ended between
    two parts of this one), are copied from current. Pushes from one
    worker at a time never copy: the workers' slices are 1 MB from each
    key's element 0, the chunks' very bounds.

    The optimizer's step number (Adam's t, a decay schedule) is the key's
    steps + 1 for every part, and moves once per push, at its end.

    The NaN check of a run (check) rides along an SGD step when every
    chunk the run touches is clean, as with one worker's pushes: a run
    refused half way is then undone by making those chunks clean again,
    so that publication takes them from current. Any other run is
    checked in a pass of its own before it is stepped. The pass of its
    own cost the aggregation thread about a seventh of its time in a
    64 MB push (docs/performance.md).

    Part of ps_store (see ps_store_private.h); the aggregation thread alone
    calls it. Compiled at -O3 like ps_store.c.
    ========================================================================= */

#include "ps_limits.h"
#include "ps_store_private.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_FLOATS ((uint64_t)(PS_CHUNK_BYTES / sizeof (float)))

static size_t
s_chunks (const ps_key_t *key)
{
    return (size_t)((key->size + CHUNK_FLOATS - 1) / CHUNK_FLOATS);
}

//  Start stepping parts into key's spare: -1 when out of memory
static int
s_open (ps_key_t *key)
{
    if (!key->dirty) {
        key->dirty = calloc (s_chunks (key) ? s_chunks (key) : 1, 1);
        if (!key->dirty)
            return -1;
    }
    if (ps_key_writable_spare (key))
        return -1;
    memset (key->dirty, 0, s_chunks (key));
    key->open = true;
    return 0;
}

//  Copy chunk from current into the spare
static void
s_copy_chunk (ps_key_t *key, size_t chunk)
{
    uint64_t first = (uint64_t)chunk * CHUNK_FLOATS;
    uint64_t end = first + CHUNK_FLOATS < key->size ? first + CHUNK_FLOATS : key->size;
    memcpy (ps_buf_data (key->spare) + first, ps_buf_data (key->current) + first,
            (size_t)(end - first) * sizeof (float));
}

//  Step [at, at + count) of the key with grad * scale, count within one
//  chunk. checked (SGD only): find the first NaN or infinity too.
//  Returns count, or the index in grad of the first such element (the
//  chunk then holds garbage: the caller makes it clean again)
static size_t
s_step (ps_key_t *key, uint64_t at, const float *grad, size_t count, float scale, bool checked)
{
    size_t chunk = (size_t)(at / CHUNK_FLOATS);
    uint64_t first = (uint64_t)chunk * CHUNK_FLOATS;
    uint64_t end = first + CHUNK_FLOATS < key->size ? first + CHUNK_FLOATS : key->size;
    bool whole = at == first && at + count == end;
    if (!key->dirty[chunk] && !whole)
        s_copy_chunk (key, chunk);
    const float *in =
        key->dirty[chunk] || !whole ? ps_buf_data (key->spare) : ps_buf_data (key->current);
    key->dirty[chunk] = 1;
    float *out = ps_buf_data (key->spare);
    if (checked)
        return ps_optim_sgd_checked (&key->config, out + at, in + at, grad, scale, count,
                                     key->steps + 1);
    float *state0 = key->state[0] ? key->state[0] + at : NULL;
    float *state1 = key->state[1] ? key->state[1] + at : NULL;
    ps_optim_apply (&key->config, out + at, in + at, grad, scale, state0, state1, count,
                    key->steps + 1);
    return count;
}

//  Whether every chunk the run [offset, end) touches is clean: then what
//  the run steps is undone by making them clean again
static bool
s_run_on_clean (const ps_key_t *key, uint64_t offset, uint64_t end)
{
    //  A key not open yet is opened with every chunk clean
    for (uint64_t chunk = offset / CHUNK_FLOATS; key->open && chunk * CHUNK_FLOATS < end; chunk++)
        if (key->dirty[chunk])
            return false;
    return true;
}

//  Publish the spare: the chunks no part touched are current's
static void
s_close (ps_key_t *key)
{
    for (size_t chunk = 0; chunk < s_chunks (key); chunk++)
        if (!key->dirty[chunk])
            s_copy_chunk (key, chunk);
    key->open = false;
    key->steps++;
    ps_key_publish (key);
}

//  A part's grad_count, and its run [offset, offset + its elements) within
//  the key (to the key's end when ends): 0, or -1 naming what is wrong
int
ps_key_check_part (const ps_key_t *key, uint64_t offset, const ps_piece_t *pieces, size_t npieces,
                   uint32_t grad_count, bool ends, ps_problem_t *problem)
{
    if (grad_count == 0 || grad_count > PS_MAX_GRAD_COUNT)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                               "key '%s': grad_count %u must be in [1, %d]", key->name, grad_count,
                               PS_MAX_GRAD_COUNT);
    uint64_t covered = 0;
    for (size_t i = 0; i < npieces; i++)
        covered += pieces[i].count;
    if (offset > key->size || covered > key->size - offset ||
        (ends && offset + covered != key->size))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "key '%s': a part of %llu elements at %llu %s its %llu", key->name,
                               (unsigned long long)covered, (unsigned long long)offset,
                               ends ? "does not end" : "exceeds", (unsigned long long)key->size);
    return 0;
}

int
ps_store_stage_part (ps_store_t *self, ps_key_t *key, uint64_t offset, const ps_piece_t *pieces,
                     size_t npieces, uint32_t grad_count, bool ends, bool check, bool *stepped,
                     ps_problem_t *problem)
{
    assert (self);
    assert (key);
    assert (stepped);
    assert (!self->flushing);
    *stepped = false;
    if (ps_key_check_part (key, offset, pieces, npieces, grad_count, ends, problem))
        return -1;
    uint64_t end = offset;
    for (size_t i = 0; i < npieces; i++)
        end += pieces[i].count;
    bool fused = check && key->config.kind == PS_OPTIM_SGD && s_run_on_clean (key, offset, end);
    if (check && !fused && ps_key_check_finite (key, offset, pieces, npieces, problem))
        return -1;
    if (key->staged)
        ps_key_commit (key);
    if (!key->open && s_open (key))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "key '%s': out of memory for its next version", key->name);
    float scale = 1.0f / (float)grad_count;
    uint64_t at = offset;
    for (size_t i = 0; i < npieces; i++) {
        const float *grad = ps_piece_floats (&pieces[i]);
        size_t done = 0;
        while (done < pieces[i].count) {
            uint64_t chunk_end = (at / CHUNK_FLOATS + 1) * CHUNK_FLOATS;
            if (chunk_end > key->size)
                chunk_end = key->size;
            size_t count = pieces[i].count - done;
            if (count > chunk_end - at)
                count = (size_t)(chunk_end - at);
            size_t bad = s_step (key, at, grad + done, count, scale, fused);
            if (bad < count) {
                //  Undone: every chunk this run stepped, the one at hand
                //  too, was clean before it
                memset (key->dirty + offset / CHUNK_FLOATS, 0,
                        (size_t)(at / CHUNK_FLOATS - offset / CHUNK_FLOATS + 1));
                return ps_key_nonfinite (key, at + bad, grad[done + bad], problem);
            }
            at += count;
            done += count;
        }
    }
    if (ends) {
        s_close (key);
        *stepped = true;
    }
    return 0;
}
