/*  =========================================================================
    ps_store_bsp - the parameter store's BSP accumulators

    BSP gradients wait in accumulators, one per clock not yet flushed:
    usually none or one per key, sometimes two while a barrier is in
    flight. A flushed accumulator keeps its sum buffer for the next clock.
    Keys with live accumulators are on an intrusive list, so a flush costs
    the keys that have gradients waiting, not every key in the store. A
    sum is counted against the store's limit when first needed, and kept.

    Part of ps_store (see ps_store_private.h); the aggregation thread alone
    calls it. Compiled at -O3 like ps_store.c: the sum must vectorise.
    ========================================================================= */

#include "ps_limits.h"
#include "ps_log.h"
#include "ps_resources.h"
#include "ps_store_private.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

//  Floats of a gradient checked for NaN and infinity before they are
//  summed: 16 KB, which L1 holds until the sum reads them
#define S_CHECK_BLOCK 4096

//  The live accumulator of clock, or a free one (with its sum buffer) to
//  start it in. NULL with problem set when the store is full or out of
//  memory; then nothing changed.
static accum_t *
s_key_accum (ps_store_t *store, ps_key_t *self, int64_t clock, ps_problem_t *problem)
{
    accum_t *free_slot = NULL;
    for (size_t i = 0; i < self->naccums; i++) {
        accum_t *accum = &self->accums[i];
        if (accum->live && accum->clock == clock)
            return accum;
        if (!accum->live && !free_slot)
            free_slot = accum;
    }
    if (free_slot)
        return free_slot;
    //  A new slot: counted with its sum, as both stay until the key goes
    uint64_t bytes = UINT64_MAX; //  an overflow needs more than any store holds
    if (ps_store_mul (self->size, sizeof (float), &bytes) ||
        ps_store_charge (store, bytes + sizeof (accum_t))) {
        char need[32], used[32], limit[32];
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                        "key '%s': the gradients of clock %lld need %s, the store holds %s of "
                        "its limit of %s (psbroker --max-memory)",
                        self->name, (long long)clock, ps_resources_bytes (bytes, need, sizeof need),
                        ps_resources_bytes (store->bytes, used, sizeof used),
                        ps_resources_bytes (store->limit, limit, sizeof limit));
        return NULL;
    }
    float *sum = ps_store_floats_new (self->size, false);
    accum_t *grown = sum ? realloc (self->accums, (self->naccums + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free (sum);
        store->bytes -= bytes + sizeof (accum_t);
        ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                        "key '%s': out of memory for the gradients of clock %lld", self->name,
                        (long long)clock);
        return NULL;
    }
    self->accums = grown;
    accum_t *accum = &grown[self->naccums++];
    *accum = (accum_t){.sum = sum};
    return accum;
}

//  The live accumulator with the oldest clock below before_clock, or NULL
static accum_t *
s_key_oldest (ps_key_t *self, int64_t before_clock)
{
    accum_t *oldest = NULL;
    for (size_t i = 0; i < self->naccums; i++) {
        accum_t *accum = &self->accums[i];
        if (accum->live && accum->clock < before_clock && (!oldest || accum->clock < oldest->clock))
            oldest = accum;
    }
    return oldest;
}

static bool
s_key_has_live (const ps_key_t *self)
{
    for (size_t i = 0; i < self->naccums; i++)
        if (self->accums[i].live)
            return true;
    return false;
}

//  Put key on the store's list of keys with gradients waiting
static void
s_key_pend (ps_store_t *self, ps_key_t *key)
{
    if (key->pending)
        return;
    key->pending = true;
    key->next_pending = NULL;
    if (self->pending_tail)
        self->pending_tail->next_pending = key;
    else
        self->pending_head = key;
    self->pending_tail = key;
}

//  Pieces are received frames, never the store's own sums
static void
s_add (float *restrict sum, const float *restrict grad, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sum[i] += grad[i];
}

//  Take n floats of grad back out of a sum they were added to
static void
s_subtract_run (float *restrict sum, const float *restrict grad, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sum[i] -= grad[i];
}

//  Take pieces 0 .. npieces-1 back out of a sum they were added to
static void
s_subtract (float *sum, const ps_piece_t *pieces, size_t npieces)
{
    size_t offset = 0;
    for (size_t i = 0; i < npieces; i++) {
        s_subtract_run (sum + offset, ps_piece_floats (&pieces[i]), pieces[i].count);
        offset += pieces[i].count;
    }
}

//  Sum count floats of grad into sum[at, at + count): added below
//  written, copied from written on (where a previous clock's sum lies)
static void
s_sum_range (accum_t *accum, uint64_t at, const float *grad, size_t count)
{
    assert (at <= accum->written);
    size_t below = accum->written - at < count ? (size_t)(accum->written - at) : count;
    s_add (accum->sum + at, grad, below);
    memcpy (accum->sum + at + below, grad + below, (count - below) * sizeof (float));
    if (at + count > accum->written)
        accum->written = at + count;
}

int
ps_store_accumulate (ps_store_t *self, ps_key_t *key, int64_t clock, const ps_piece_t *pieces,
                     size_t npieces, uint32_t grad_count, bool check, ps_problem_t *problem)
{
    if (ps_store_check_push (self, key, pieces, npieces, grad_count, problem))
        return -1;
    accum_t *accum = s_key_accum (self, key, clock, problem);
    if (!accum)
        return -1;
    //  The first gradient of a clock overwrites what a previous clock left
    bool first = !accum->live;
    if (first)
        accum->written = 0;
    size_t offset = 0;
    for (size_t i = 0; i < npieces; i++) {
        const float *grad = ps_piece_floats (&pieces[i]);
        size_t count = pieces[i].count;
        //  Checked a block at a time just before it is summed, so that
        //  the sum reads the block again from L1 and not from memory
        for (size_t done = 0; done < count; done += S_CHECK_BLOCK) {
            size_t block = count - done < S_CHECK_BLOCK ? count - done : S_CHECK_BLOCK;
            size_t bad = check ? ps_optim_first_nonfinite (grad + done, block) : block;
            if (bad < block) {
                float value = grad[done + bad]; //  before s_subtract reuses the scratch
                if (!first) {
                    s_subtract_run (accum->sum + offset, grad, done);
                    s_subtract (accum->sum, pieces, i);
                }
                return ps_key_nonfinite (key, offset + done + bad, value, problem);
            }
            s_sum_range (accum, offset + done, grad + done, block);
        }
        offset += count;
    }
    if (first) {
        accum->live = true;
        accum->clock = clock;
        accum->count = 0;
    }
    accum->count += grad_count;
    s_key_pend (self, key);
    return 0;
}

int
ps_store_accumulate_part (ps_store_t *self, ps_key_t *key, int64_t clock, uint64_t offset,
                          const ps_piece_t *pieces, size_t npieces, uint32_t grad_count,
                          ps_problem_t *problem)
{
    assert (self);
    assert (key);
    assert (!self->flushing);
    if (ps_key_check_part (key, offset, pieces, npieces, grad_count, false, problem))
        return -1;
    accum_t *accum = s_key_accum (self, key, clock, problem);
    if (!accum)
        return -1;
    if (!accum->live)
        *accum = (accum_t){.live = true, .clock = clock, .sum = accum->sum};
    //  A run that starts past what was written skipped elements: never
    //  from the ROUTER loop, which checks that runs go on where they left
    if (offset > accum->written)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "key '%s': a part at %llu before its elements from %llu", key->name,
                               (unsigned long long)offset, (unsigned long long)accum->written);
    //  A push counts once, at the start of its run of the key
    if (offset == 0)
        accum->count += grad_count;
    uint64_t at = offset;
    for (size_t i = 0; i < npieces; i++) {
        s_sum_range (accum, at, ps_piece_floats (&pieces[i]), pieces[i].count);
        at += pieces[i].count;
    }
    s_key_pend (self, key);
    return 0;
}

void
ps_store_unaccumulate_part (ps_store_t *self, ps_key_t *key, int64_t clock, uint64_t offset,
                            const ps_piece_t *pieces, size_t npieces, uint32_t grad_count)
{
    assert (self);
    assert (key);
    for (size_t i = 0; i < key->naccums; i++) {
        accum_t *accum = &key->accums[i];
        if (!accum->live || accum->clock != clock)
            continue;
        s_subtract (accum->sum + offset, pieces, npieces);
        if (offset == 0) {
            assert (accum->count >= grad_count);
            accum->count -= grad_count;
        }
        //  It was the clock's only gradient: nothing else is in the sum
        if (accum->count == 0 && offset == 0)
            accum->live = false;
        return;
    }
}

void
ps_store_unaccumulate (ps_store_t *self, ps_key_t *key, int64_t clock, const ps_piece_t *pieces,
                       size_t npieces, uint32_t grad_count)
{
    assert (self);
    assert (key);
    for (size_t i = 0; i < key->naccums; i++) {
        accum_t *accum = &key->accums[i];
        if (!accum->live || accum->clock != clock)
            continue;
        assert (accum->count >= grad_count);
        if (accum->count == grad_count)
            accum->live = false; //  it was the clock's first: nothing else is in the sum
        else {
            s_subtract (accum->sum, pieces, npieces);
            accum->count -= grad_count;
        }
        return;
    }
}

//  Apply key's live accumulators below before_clock, oldest first. Returns
//  the steps applied. Out of memory stops at the accumulator that failed,
//  which stays for the next flush: dropping it would lose gradients.
static size_t
s_flush_key (ps_key_t *key, int64_t before_clock)
{
    size_t steps = 0;
    accum_t *accum;
    while ((accum = s_key_oldest (key, before_clock))) {
        //  A push given up in its middle left the rest of the sum stale
        if (accum->written < key->size)
            memset (accum->sum + accum->written, 0,
                    (size_t)(key->size - accum->written) * sizeof (float));
        accum->written = key->size;
        if (accum->count == 0) {
            accum->live = false;
            continue;
        }
        ps_piece_t whole = {.data = accum->sum, .count = (size_t)key->size};
        ps_problem_t problem;
        //  The sums were checked as they came in (or may hold what the
        //  broker was told to accept)
        if (ps_key_stage (key, &whole, 1, 1.0f / (float)accum->count, false, &problem)) {
            ps_warn ("flush: %s; its gradients of clock %lld wait for the next barrier",
                     problem.message, (long long)accum->clock);
            break;
        }
        ps_key_commit (key);
        accum->live = false;
        steps++;
    }
    return steps;
}

size_t
ps_store_flush (ps_store_t *self, int64_t before_clock, void (*updated) (ps_key_t *key, void *arg),
                void *arg)
{
    assert (self);
    assert (!self->flushing);
    self->flushing = true;
    size_t steps = 0;
    ps_key_t **link = &self->pending_head;
    ps_key_t *last = NULL;
    while (*link) {
        ps_key_t *key = *link;
        size_t key_steps = s_flush_key (key, before_clock);
        steps += key_steps;
        if (s_key_has_live (key)) {
            last = key;
            link = &key->next_pending;
        }
        else {
            *link = key->next_pending;
            key->next_pending = NULL;
            key->pending = false;
        }
        if (key_steps && updated)
            updated (key, arg);
    }
    self->pending_tail = last;
    self->flushing = false;
    return steps;
}

uint64_t
ps_store_pending (ps_store_t *self)
{
    assert (self);
    uint64_t gradients = 0;
    for (ps_key_t *key = self->pending_head; key; key = key->next_pending)
        for (size_t i = 0; i < key->naccums; i++)
            if (key->accums[i].live)
                gradients += key->accums[i].count;
    return gradients;
}
