/*  =========================================================================
    ps_store_private - what the parameter store's files share

    The store is one object in four files, each owning one part of its
    work: ps_store.c (the key table, INIT, optimizer steps), ps_store_bsp.c
    (BSP accumulators: sums of a clock's gradients and their flush),
    ps_store_part.c (SSP/ASP steps of pushes that come in parts) and
    ps_store_checkpoint.c (snapshots for the writer, restores). This header
    is for those three only: the structs, and the helpers more than one of
    them needs. Everyone else sees ps_store.h. Same thread rules: the
    aggregation thread alone calls into the store.
    ========================================================================= */

#ifndef PS_STORE_PRIVATE_H_INCLUDED
#define PS_STORE_PRIVATE_H_INCLUDED

#include "ps_store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    bool live;        //  holds gradients not yet flushed
    int64_t clock;    //  the clock they belong to, when live
    uint64_t count;   //  gradients summed, when live
    uint64_t written; //  sum[0, written) holds gradients, the rest is
                      //  stale: every run of a key goes from element 0
                      //  in order, so what was written is a prefix
    float *sum;       //  size floats; kept when flushed, for reuse
} accum_t;

struct ps_key_t {
    uint64_t size;            //  elements
    ps_buf_t *current;        //  published version, never written again
    ps_buf_t *spare;          //  previous version, the next one's target
    ps_optim_config_t config; //  the key's update rule, checked
    float *state[2];          //  optimizer state, size floats each or NULL
    uint64_t steps;           //  optimizer steps done (Adam's t)
    bool staged;              //  the spare holds a step not yet published
    bool open;                //  parts of pushes are being stepped into the
                              //  spare (ps_store_part.c)
    uint8_t *dirty;           //  then, by chunk of PS_CHUNK_BYTES: the
                              //  spare's chunk is newer than current's
    uint64_t version;         //  1 after INIT, bumped by every step
    int dtype;                //  wire dtype its INIT named, PS_DTYPE_*
    accum_t *accums;          //  BSP accumulators, live or reusable
    size_t naccums;           //  slots in accums
    bool pending;             //  on the store's pending list
    ps_key_t *next_pending;   //  next key on that list
    char name[];              //  the key's name, NUL-terminated
};

struct ps_store_t {
    ps_optim_config_t defaults; //  for INIT without an optimizer
    ps_key_t **table;           //  open addressing; NULL is an empty slot
    size_t table_size;          //  slots, a power of two
    size_t nkeys;               //  keys in the table
    uint64_t bytes;             //  counted against limit
    uint64_t limit;             //  bytes it may hold, <= PS_MAX_STORE_BYTES
    ps_key_t *pending_head;     //  keys with live accumulators, oldest first
    ps_key_t *pending_tail;     //  where the next one is appended
    bool flushing;              //  inside ps_store_flush's callback loop
};

//  a * b into *product, or -1 if it does not fit in 64 bits
static inline int
ps_store_mul (uint64_t a, uint64_t b, uint64_t *product)
{
    if (b && a > UINT64_MAX / b)
        return -1;
    *product = a * b;
    return 0;
}

//  Count bytes against the store's limit; -1 when they do not fit
int ps_store_charge (ps_store_t *self, uint64_t bytes);
//  ERR_FULL unless a key of size elements and kind fits in the store;
//  counts its bytes when it does
int ps_store_charge_key (ps_store_t *self, const char *name, uint64_t size, ps_optim_kind_t kind,
                         ps_problem_t *problem);
//  count floats (at least one), zeroed or not; NULL out of memory
float *ps_store_floats_new (uint64_t count, bool zeroed);
//  Make room for one more key; -1 when out of memory
int ps_store_reserve (ps_store_t *self);
//  Put key into the table (ps_store_reserve first); the store owns it
void ps_store_insert (ps_store_t *self, ps_key_t *key);
//  Make key->spare a buffer we may write: the old spare when nobody else
//  holds it, else a new one. -1 when out of memory; the key is unchanged.
int ps_key_writable_spare (ps_key_t *self);
//  Publish the spare, which now holds the next version
void ps_key_publish (ps_key_t *self);
//  What a push must be, whether applied or accumulated
int ps_store_check_push (ps_store_t *self, ps_key_t *key, const ps_piece_t *pieces, size_t npieces,
                         uint32_t grad_count, ps_problem_t *problem);
//  ERR_NONFINITE naming element at of the key, whose value is value
int ps_key_nonfinite (const ps_key_t *self, uint64_t at, float value, ps_problem_t *problem);
//  0 when every element of pieces, a run of the key from element offset,
//  is finite; else ERR_NONFINITE naming the first that is not
int ps_key_check_finite (const ps_key_t *self, uint64_t offset, const ps_piece_t *pieces,
                         size_t npieces, ps_problem_t *problem);
//  One optimizer step with gradient pieces * scale into the spare, not
//  yet published (see ps_store.c); ps_key_commit publishes it
int ps_key_stage (ps_key_t *self, const ps_piece_t *pieces, size_t npieces, float scale, bool check,
                  ps_problem_t *problem);
void ps_key_commit (ps_key_t *self);
//  A part's grad_count and its run within the key (to its end when
//  ends): 0, or -1 with problem set (ps_store_part.c)
int ps_key_check_part (const ps_key_t *key, uint64_t offset, const ps_piece_t *pieces,
                       size_t npieces, uint32_t grad_count, bool ends, ps_problem_t *problem);

#endif
