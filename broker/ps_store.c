/*  =========================================================================
    ps_store - the parameter store

    Keys live in an open-addressing hash table (FNV-1a, linear probing,
    at most half full) of key pointers. We do not use czmq's zhashx because
    czmq aborts when malloc fails, and a store that runs out of memory must
    answer ERR_FULL and go on. Keys are never deleted, so the table needs no
    tombstones.

    Each key has two version buffers that take turns. An update computes
    out = rule (in = current, gradient) into the spare, then the spare
    becomes current and the old current the spare. Before writing the spare
    we check that we hold its only reference; if a reader still holds it
    (a PULL reply libzmq has not sent yet), we drop our reference and write
    into a new buffer instead, so nobody ever sees a published version
    change. In steady state the readers are done before the next step and
    the same two buffers alternate with no allocation.

    Gradients arrive as pieces that must cover the key in order; the
    optimizer runs piece by piece at the running offset, so a tensor sent
    in 1 MB frames is never gathered into one copy first.

    BSP gradients wait in accumulators (ps_store_bsp.c), and checkpoints
    read and restore the keys (ps_store_checkpoint.c): the store is one
    object in three files, sharing ps_store_private.h.

    Memory: every buffer the store keeps is counted against its limit
    (ps_store_set_limit: psbroker --max-memory, at most PS_MAX_STORE_BYTES)
    before it is allocated, so a tiny INIT naming 2^29 floats is refused
    before a byte of them exists: both version buffers and
    the optimizer state at INIT, accumulator sums when first needed. A
    version a reader still holds is the reader's, not counted. Every
    allocation can fail and leaves the store as it was, with ERR_FULL.
    ========================================================================= */

#include "ps_store.h"
#include "ps_store_private.h"
#include "ps_hash.h"
#include "ps_log.h"
#include "ps_resources.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  First size of the key table; it doubles past half full
#define TABLE_INITIAL 64

//  -------------------------------------------------------------------------
//  Small helpers

//  Count bytes against the store's limit; -1 when they do not fit
int
ps_store_charge (ps_store_t *self, uint64_t bytes)
{
    if (self->bytes > self->limit || bytes > self->limit - self->bytes)
        return -1;
    self->bytes += bytes;
    return 0;
}

//  malloc (0) may return NULL, which we could not tell from failure
float *
ps_store_floats_new (uint64_t count, bool zeroed)
{
    size_t n = count ? (size_t)count : 1;
    return zeroed ? calloc (n, sizeof (float)) : malloc (n * sizeof (float));
}

//  The slot holding name, or the empty slot where it would go
static ps_key_t **
s_slot (ps_key_t **table, size_t table_size, const char *name)
{
    size_t mask = table_size - 1;
    size_t index = (size_t)ps_hash_fnv1a (name) & mask;
    while (table[index] && strcmp (table[index]->name, name) != 0)
        index = (index + 1) & mask;
    return &table[index];
}

//  Make room for one more key; -1 when out of memory
int
ps_store_reserve (ps_store_t *self)
{
    if ((self->nkeys + 1) * 2 <= self->table_size)
        return 0;
    size_t grown = self->table_size ? self->table_size * 2 : TABLE_INITIAL;
    ps_key_t **table = calloc (grown, sizeof *table);
    if (!table)
        return -1;
    for (size_t i = 0; i < self->table_size; i++)
        if (self->table[i])
            *s_slot (table, grown, self->table[i]->name) = self->table[i];
    free (self->table);
    self->table = table;
    self->table_size = grown;
    return 0;
}

void
ps_store_insert (ps_store_t *self, ps_key_t *key)
{
    *s_slot (self->table, self->table_size, key->name) = key;
    self->nkeys++;
}

//  -------------------------------------------------------------------------
//  Keys

static void
s_key_destroy (ps_key_t **self_p)
{
    ps_key_t *self = *self_p;
    if (!self)
        return;
    ps_buf_unref (&self->current);
    ps_buf_unref (&self->spare);
    free (self->state[0]);
    free (self->state[1]);
    free (self->dirty);
    for (size_t i = 0; i < self->naccums; i++)
        free (self->accums[i].sum);
    free (self->accums);
    free (self);
    *self_p = NULL;
}

//  A zero-filled key with both version buffers and its state, or NULL
static ps_key_t *
s_key_new (const char *name, uint64_t size, const ps_optim_config_t *config)
{
    size_t name_size = strlen (name) + 1;
    ps_key_t *self = calloc (1, sizeof *self + name_size);
    if (!self)
        return NULL;
    memcpy (self->name, name, name_size);
    self->size = size;
    self->config = *config;
    self->version = 1;
    self->current = ps_buf_new ((size_t)size);
    self->spare = ps_buf_new ((size_t)size);
    bool ok = self->current && self->spare;
    for (size_t slot = 0; ok && slot < ps_optim_state_slots (config->kind); slot++) {
        self->state[slot] = ps_store_floats_new (size, true);
        ok = self->state[slot] != NULL;
    }
    if (!ok) {
        s_key_destroy (&self);
        return NULL;
    }
    memset (ps_buf_data (self->current), 0, (size_t)size * sizeof (float));
    return self;
}

int
ps_key_writable_spare (ps_key_t *self)
{
    if (ps_buf_exclusive (self->spare))
        return 0;
    ps_buf_t *fresh = ps_buf_new ((size_t)self->size);
    if (!fresh)
        return -1;
    ps_buf_unref (&self->spare);
    self->spare = fresh;
    return 0;
}

void
ps_key_publish (ps_key_t *self)
{
    ps_buf_t *previous = self->current;
    self->current = self->spare;
    self->spare = previous;
    self->version++;
}

//  0 when the pieces cover [0, size) exactly
static int
s_key_check_pieces (const ps_key_t *self, const ps_piece_t *pieces, size_t npieces,
                    ps_problem_t *problem)
{
    assert (pieces || npieces == 0);
    uint64_t covered = 0;
    for (size_t i = 0; i < npieces; i++) {
        assert (pieces[i].data || pieces[i].wire || pieces[i].count == 0);
        if (pieces[i].count > self->size - covered)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                                   "key '%s': gradient pieces exceed its %llu elements "
                                   "at piece %zu",
                                   self->name, (unsigned long long)self->size, i);
        covered += pieces[i].count;
    }
    if (covered != self->size)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "key '%s': gradient pieces cover %llu of its %llu elements",
                               self->name, (unsigned long long)covered,
                               (unsigned long long)self->size);
    return 0;
}

int
ps_key_nonfinite (const ps_key_t *self, uint64_t at, float value, ps_problem_t *problem)
{
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_NONFINITE, "key '%s' element %llu is %s",
                           self->name, (unsigned long long)at,
                           isnan (value) ? "nan"
                           : value > 0   ? "inf"
                                         : "-inf");
}

int
ps_key_check_finite (const ps_key_t *self, uint64_t offset, const ps_piece_t *pieces,
                     size_t npieces, ps_problem_t *problem)
{
    for (size_t i = 0; i < npieces; i++) {
        const float *grad = ps_piece_floats (&pieces[i]);
        size_t bad = ps_optim_first_nonfinite (grad, pieces[i].count);
        if (bad < pieces[i].count)
            return ps_key_nonfinite (self, offset + bad, grad[bad], problem);
        offset += pieces[i].count;
    }
    return 0;
}

//  One optimizer step with gradient pieces * scale into the spare, not yet
//  published. check: refuse NaN and infinities (ERR_NONFINITE); for SGD
//  the check rides along the step, for rules with state it is a pass of
//  its own before the state changes. Fails only then or when out of
//  memory, leaving the key's parameters and state unchanged.
int
ps_key_stage (ps_key_t *self, const ps_piece_t *pieces, size_t npieces, float scale, bool check,
              ps_problem_t *problem)
{
    bool fused = check && self->config.kind == PS_OPTIM_SGD;
    if (check && !fused && ps_key_check_finite (self, 0, pieces, npieces, problem))
        return -1;
    if (ps_key_writable_spare (self))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "key '%s': out of memory for its next version", self->name);
    float *out = ps_buf_data (self->spare);
    const float *in = ps_buf_data (self->current);
    uint64_t step = self->steps + 1;
    size_t offset = 0;
    for (size_t i = 0; i < npieces; i++) {
        const float *grad = ps_piece_floats (&pieces[i]);
        size_t count = pieces[i].count;
        if (fused) {
            size_t bad = ps_optim_sgd_checked (&self->config, out + offset, in + offset, grad,
                                               scale, count, step);
            if (bad < count)
                return ps_key_nonfinite (self, offset + bad, grad[bad], problem);
        }
        else {
            float *state0 = self->state[0] ? self->state[0] + offset : NULL;
            float *state1 = self->state[1] ? self->state[1] + offset : NULL;
            ps_optim_apply (&self->config, out + offset, in + offset, grad, scale, state0, state1,
                            count, step);
        }
        offset += count;
    }
    self->staged = true;
    return 0;
}

//  Publish the step ps_key_stage computed
void
ps_key_commit (ps_key_t *self)
{
    assert (self->staged);
    self->staged = false;
    self->steps++;
    ps_key_publish (self);
}

//  -------------------------------------------------------------------------
//  The store

ps_store_t *
ps_store_new (const ps_optim_config_t *defaults)
{
    ps_optim_config_t config;
    if (defaults)
        config = *defaults;
    else
        ps_optim_config_defaults (&config);
    if (ps_optim_config_check (&config, NULL))
        return NULL;
    ps_store_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->defaults = config;
    self->limit = PS_MAX_STORE_BYTES;
    return self;
}

void
ps_store_set_limit (ps_store_t *self, uint64_t bytes)
{
    assert (self);
    self->limit = bytes && bytes < PS_MAX_STORE_BYTES ? bytes : PS_MAX_STORE_BYTES;
}

uint64_t
ps_store_limit (const ps_store_t *self)
{
    assert (self);
    return self->limit;
}

uint64_t
ps_store_bytes (const ps_store_t *self)
{
    assert (self);
    return self->bytes;
}

void
ps_store_destroy (ps_store_t **self_p)
{
    assert (self_p);
    ps_store_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->table_size; i++)
        s_key_destroy (&self->table[i]);
    free (self->table);
    free (self);
    *self_p = NULL;
}

//  ERR_FULL unless a key of size elements and kind fits in the store;
//  counts its bytes when it does
int
ps_store_charge_key (ps_store_t *self, const char *name, uint64_t size, ps_optim_kind_t kind,
                     ps_problem_t *problem)
{
    if (self->nkeys >= PS_MAX_KEYS)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "key '%s': the store already holds %d keys, its limit", name,
                               PS_MAX_KEYS);
    //  Two version buffers plus the optimizer's state arrays
    uint64_t arrays = 2 + ps_optim_state_slots (kind);
    uint64_t floats, bytes = UINT64_MAX;
    if (ps_store_mul (size, arrays, &floats) || ps_store_mul (floats, sizeof (float), &bytes) ||
        ps_store_charge (self, bytes)) {
        //  "key 'big': 4 GiB (2 arrays of 536870912 floats with sgd) would
        //  take the store to 4 GiB, over its limit of 256 MiB (...)"
        char need[32], total[32], limit[32];
        uint64_t after = bytes > UINT64_MAX - self->bytes ? UINT64_MAX : self->bytes + bytes;
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "key '%s': %s (%llu arrays of %llu floats with %s) would take "
                               "the store to %s, over its limit of %s (psbroker --max-memory)",
                               name, ps_resources_bytes (bytes, need, sizeof need),
                               (unsigned long long)arrays, (unsigned long long)size,
                               ps_optim_kind_name (kind),
                               ps_resources_bytes (after, total, sizeof total),
                               ps_resources_bytes (self->limit, limit, sizeof limit));
    }
    return 0;
}

int
ps_store_init (ps_store_t *self, const char *name, uint64_t size, const ps_optim_config_t *config,
               bool *created, ps_problem_t *problem)
{
    assert (self);
    assert (name);
    assert (!self->flushing);
    if (created)
        *created = false;
    if (ps_codec_check_key (name, problem))
        return -1;
    ps_key_t *existing = ps_store_lookup (self, name);
    if (existing) {
        if (existing->size != size)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_KEY_EXISTS,
                                   "key '%s' exists with %llu elements, not %llu", name,
                                   (unsigned long long)existing->size, (unsigned long long)size);
        //  A second job against a live broker must not train silently
        //  with the first one's rule (or its finished schedule), nor a job
        //  with the rule somebody's INIT set before it came (a lr of 1000):
        //  it fails loudly, naming both. Its values are ignored: the key
        //  keeps what it holds (the same job's other ranks, a rejoin and a
        //  restored checkpoint INIT the keys again).
        char has[PS_MAX_ERROR_LEN / 3], asks[PS_MAX_ERROR_LEN / 3];
        if (config && config->kind &&
            ps_optim_config_compare (&existing->config, config, has, asks, sizeof has))
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_KEY_EXISTS,
                                   "key '%s' exists with %s; this INIT asks %s: INIT it with "
                                   "the key's settings, or with none to take them as they are",
                                   name, has, asks);
        return 0;
    }
    ps_optim_config_t chosen = config && config->kind ? *config : self->defaults;
    ps_problem_t bad;
    if (ps_optim_config_check (&chosen, &bad))
        return ps_problem_set (problem, bad.code, "key '%s': %s", name, bad.message);
    if (size > PS_MAX_TENSOR_ELEMS || size > SIZE_MAX / sizeof (float))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_TOO_LARGE,
                               "key '%s': %llu elements, limit %llu", name,
                               (unsigned long long)size, (unsigned long long)PS_MAX_TENSOR_ELEMS);
    uint64_t bytes_before = self->bytes;
    if (ps_store_charge_key (self, name, size, chosen.kind, problem))
        return -1;
    ps_key_t *key = ps_store_reserve (self) ? NULL : s_key_new (name, size, &chosen);
    if (!key) {
        self->bytes = bytes_before;
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "key '%s': out of memory for %llu elements", name,
                               (unsigned long long)size);
    }
    ps_store_insert (self, key);
    if (created)
        *created = true;
    return 0;
}

int
ps_store_write (ps_store_t *self, ps_key_t *key, uint64_t offset, const float *data, uint64_t count,
                ps_problem_t *problem)
{
    assert (self);
    assert (key);
    assert (!self->flushing);
    if (offset > key->size || count > key->size - offset)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "key '%s': %llu elements at offset %llu exceed its %llu", key->name,
                               (unsigned long long)count, (unsigned long long)offset,
                               (unsigned long long)key->size);
    if (count == 0)
        return 0;
    assert (data);
    if (!ps_buf_exclusive (key->current)) {
        //  Somebody already reads this version: write a new one instead
        if (ps_key_writable_spare (key))
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                                   "key '%s': out of memory for its next version", key->name);
        memcpy (ps_buf_data (key->spare), ps_buf_data (key->current),
                (size_t)key->size * sizeof (float));
        ps_key_publish (key);
    }
    memcpy (ps_buf_data (key->current) + offset, data, (size_t)count * sizeof (float));
    return 0;
}

ps_key_t *
ps_store_lookup (ps_store_t *self, const char *name)
{
    assert (self);
    assert (name);
    if (!self->table)
        return NULL;
    return *s_slot (self->table, self->table_size, name);
}

size_t
ps_store_size (ps_store_t *self)
{
    assert (self);
    return self->nkeys;
}

const char *
ps_key_name (const ps_key_t *key)
{
    assert (key);
    return key->name;
}

uint64_t
ps_key_size (const ps_key_t *key)
{
    assert (key);
    return key->size;
}

uint64_t
ps_key_version (const ps_key_t *key)
{
    assert (key);
    return key->version;
}

bool
ps_key_has_state (const ps_key_t *key)
{
    assert (key);
    return key->state[0] != NULL;
}

int
ps_key_dtype (const ps_key_t *key)
{
    assert (key);
    return key->dtype;
}

void
ps_key_set_dtype (ps_key_t *key, int dtype)
{
    assert (key);
    assert (ps_dtype_known (dtype));
    key->dtype = dtype;
}

ps_buf_t *
ps_key_current (ps_key_t *key)
{
    assert (key);
    return key->current;
}

unsigned
ps_key_spare_pins (ps_key_t *key)
{
    assert (key);
    return ps_buf_refs (key->spare) - 1;
}

//  grad_count is checked by the codec too; the store does not rely on it
static int
s_check_grad_count (const ps_key_t *key, uint32_t grad_count, ps_problem_t *problem)
{
    if (grad_count == 0 || grad_count > PS_MAX_GRAD_COUNT)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_MALFORMED,
                               "key '%s': grad_count %u must be in [1, %d]", key->name, grad_count,
                               PS_MAX_GRAD_COUNT);
    return 0;
}

//  What a push must be, whether applied or accumulated
int
ps_store_check_push (ps_store_t *self, ps_key_t *key, const ps_piece_t *pieces, size_t npieces,
                     uint32_t grad_count, ps_problem_t *problem)
{
    assert (self);
    assert (key);
    assert (!self->flushing);
    if (s_key_check_pieces (key, pieces, npieces, problem))
        return -1;
    return s_check_grad_count (key, grad_count, problem);
}

int
ps_store_stage (ps_store_t *self, ps_key_t *key, const ps_piece_t *pieces, size_t npieces,
                uint32_t grad_count, bool check, ps_problem_t *problem)
{
    if (ps_store_check_push (self, key, pieces, npieces, grad_count, problem))
        return -1;
    //  The same key twice in one push: the first step is taken before the
    //  second is computed from it
    if (key->staged)
        ps_key_commit (key);
    return ps_key_stage (key, pieces, npieces, 1.0f / (float)grad_count, check, problem);
}

void
ps_store_commit (ps_store_t *self, ps_key_t *key)
{
    assert (self);
    if (key->staged)
        ps_key_commit (key);
}

void
ps_store_drop (ps_store_t *self, ps_key_t *key)
{
    assert (self);
    key->staged = false;
}

int
ps_store_apply (ps_store_t *self, ps_key_t *key, const ps_piece_t *pieces, size_t npieces,
                uint32_t grad_count, ps_problem_t *problem)
{
    if (ps_store_stage (self, key, pieces, npieces, grad_count, true, problem))
        return -1;
    ps_store_commit (self, key);
    return 0;
}
