/*  =========================================================================
    ps_store_checkpoint - the parameter store's side of checkpoints

    A checkpoint is one more reader: it holds a reference to each key's
    current version while a writer thread streams it to disk, and copies
    of the optimizer state, which steps change in place. Restoring one
    gives the keys back the arrays read from the file, without a copy.

    Part of ps_store (see ps_store_private.h); the aggregation thread alone
    calls it.
    ========================================================================= */

#include "ps_store_private.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Copying the state costs the aggregation thread one memcpy of every
//  state array (Adam: 8 bytes per element, so about 0.1 s for 100 million
//  elements at memory speed) and as much memory, not counted against
//  PS_MAX_STORE_BYTES, until the writer is done. The values cost nothing:
//  a reference, and a new spare for each key that steps meanwhile.
int
ps_store_snapshot (ps_store_t *self, ps_checkpoint_t *checkpoint, ps_problem_t *problem)
{
    assert (self);
    assert (checkpoint);
    assert (!self->flushing);
    for (size_t i = 0; i < self->table_size; i++) {
        ps_key_t *key = self->table[i];
        if (!key)
            continue;
        assert (!key->staged);
        ps_checkpoint_key_t *saved = ps_checkpoint_add_key (checkpoint);
        if (!saved)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                                   "out of memory for the checkpoint's keys");
        snprintf (saved->name, sizeof saved->name, "%s", key->name);
        saved->size = key->size;
        saved->optim = key->config;
        saved->steps = key->steps;
        saved->version = key->version;
        saved->dtype = key->dtype;
        saved->values = ps_buf_ref (key->current);
        for (size_t slot = 0; slot < 2 && key->state[slot]; slot++) {
            saved->state[slot] = ps_store_floats_new (key->size, false);
            if (!saved->state[slot])
                return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                                       "key '%s': out of memory copying its optimizer state",
                                       key->name);
            memcpy (saved->state[slot], key->state[slot], (size_t)key->size * sizeof (float));
        }
    }
    return 0;
}

//  One key of a checkpoint into the store, taking its arrays
static int
s_restore_key (ps_store_t *self, ps_checkpoint_key_t *saved, ps_problem_t *problem)
{
    if (ps_codec_check_key (saved->name, problem))
        return -1;
    if (ps_store_lookup (self, saved->name))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_KEY_EXISTS,
                               "key '%s' twice in the checkpoint", saved->name);
    ps_problem_t bad;
    if (ps_optim_config_check (&saved->optim, &bad))
        return ps_problem_set (problem, bad.code, "key '%s': %s", saved->name, bad.message);
    size_t slots = ps_optim_state_slots (saved->optim.kind);
    bool arrays = saved->values && ps_buf_count (saved->values) == saved->size;
    for (size_t slot = 0; slot < 2; slot++)
        arrays &= (saved->state[slot] != NULL) == (slot < slots);
    if (saved->size == 0 || saved->size > PS_MAX_TENSOR_ELEMS || !arrays)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_SIZE,
                               "key '%s': %llu elements, or arrays that do not match", saved->name,
                               (unsigned long long)saved->size);
    uint64_t bytes_before = self->bytes;
    if (ps_store_charge_key (self, saved->name, saved->size, saved->optim.kind, problem))
        return -1;
    size_t name_size = strlen (saved->name) + 1;
    ps_key_t *key = ps_store_reserve (self) ? NULL : calloc (1, sizeof *key + name_size);
    ps_buf_t *spare = key ? ps_buf_new ((size_t)saved->size) : NULL;
    if (!spare) {
        free (key);
        self->bytes = bytes_before;
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "key '%s': out of memory for %llu elements", saved->name,
                               (unsigned long long)saved->size);
    }
    memcpy (key->name, saved->name, name_size);
    key->size = saved->size;
    key->config = saved->optim;
    key->steps = saved->steps;
    key->version = saved->version;
    key->dtype = saved->dtype;
    key->spare = spare;
    key->current = saved->values;
    saved->values = NULL;
    for (size_t slot = 0; slot < 2; slot++) {
        key->state[slot] = saved->state[slot];
        saved->state[slot] = NULL;
    }
    ps_store_insert (self, key);
    return 0;
}

int
ps_store_restore (ps_store_t *self, ps_checkpoint_t *checkpoint, ps_problem_t *problem)
{
    assert (self);
    assert (checkpoint);
    assert (!self->flushing);
    for (size_t i = 0; i < checkpoint->nkeys; i++)
        if (s_restore_key (self, &checkpoint->keys[i], problem))
            return -1;
    return 0;
}
