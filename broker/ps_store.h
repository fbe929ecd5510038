/*  =========================================================================
    ps_store - the parameter store: named float32 tensors, their optimizer
    state and their BSP gradient accumulators

    Owned by the aggregation thread; no other thread may call it. Each key
    has a current version, a ps_buf_t that is immutable once published:
    an update writes the next version into a spare buffer (copy-on-write)
    and swaps it in, so readers holding a reference to an older version
    (the ROUTER loop, frames libzmq is still sending) never see a torn
    update. The store reuses the previous version's buffer as the next
    spare when it holds the only reference, so steady state allocates
    nothing.

    Gradients arrive as pieces: consecutive runs of floats that together
    cover the whole key, in order (a tensor sent in 1 MB frames). Pieces
    are read, never written or kept.

    Failure: functions that take input return 0, or -1 with a ps_problem_t
    (code PSMQ__ERR_CODE__*, message naming the key and the bad value).
    ========================================================================= */

#ifndef PS_STORE_H_INCLUDED
#define PS_STORE_H_INCLUDED

#include "ps_buf.h"
#include "ps_checkpoint.h"
#include "ps_codec.h"
#include "ps_dtype.h"
#include "ps_optim.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ps_store_t ps_store_t;
typedef struct ps_key_t ps_key_t;

//  A run of gradient floats; data is borrowed for the call. A piece that
//  came as 16-bit wire elements (a BF16 or F16 key's frame) has wire set
//  and is read through ps_piece_floats, which widens it into scratch.
typedef struct {
    const float *data; //  float32 pieces: the elements
    size_t count;      //  elements
    const void *wire;  //  16-bit pieces: the elements as received, else NULL
    int dtype;         //  16-bit pieces: their PS_DTYPE_*
    float *scratch;    //  16-bit pieces: count floats the caller lends, shared
                       //  by every piece of the call (so one is read at a time)
} ps_piece_t;

//  The piece's elements as floats: data, or wire widened into scratch
//  now (valid until the next piece sharing that scratch is read). A
//  piece is at most a frame, so the loop that reads it next finds it in
//  the cache: the conversion is a pass over one frame, not over the key.
static inline const float *
ps_piece_floats (const ps_piece_t *piece)
{
    if (!piece->wire)
        return piece->data;
    ps_dtype_to_f32 (piece->scratch, piece->wire, piece->count, piece->dtype);
    return piece->scratch;
}

//  defaults: optimizer for keys whose INIT does not name one (copied;
//  NULL means ps_optim_config_defaults). NULL when out of memory or when
//  defaults fail ps_optim_config_check.
ps_store_t *ps_store_new (const ps_optim_config_t *defaults);
void ps_store_destroy (ps_store_t **self_p);
//  The bytes the store may hold (versions, optimizer state, accumulators):
//  0 or past PS_MAX_STORE_BYTES means PS_MAX_STORE_BYTES, the default.
//  A lower limit than the bytes held refuses every new allocation.
void ps_store_set_limit (ps_store_t *self, uint64_t bytes);
uint64_t ps_store_limit (const ps_store_t *self);
//  Bytes counted against it now
uint64_t ps_store_bytes (const ps_store_t *self);

//  Create key with size elements, zero-filled, version 1. config NULL or
//  of kind 0 means the store's defaults. If the key exists with the same
//  size and config is NULL, of kind 0 or the key's own settings, this is a
//  no-op and *created is false; with another size or other settings it
//  fails with ERR_KEY_EXISTS naming what differs. Fails with ERR_FULL past PS_MAX_KEYS keys or
//  its limit (ps_store_set_limit: two version buffers plus the optimizer's
//  state arrays) or out of memory, ERR_TOO_LARGE past PS_MAX_TENSOR_ELEMS,
//  ERR_OPTIM for bad settings, the codec's errors for a bad name.
int ps_store_init (ps_store_t *self, const char *name, uint64_t size,
                   const ps_optim_config_t *config, bool *created, ps_problem_t *problem);
//  Write initial values into [offset, offset + count) of a key just
//  created (before anything read it). ERR_SIZE when out of range. Should
//  a reader hold the current version already, the write goes into a new
//  version (version bumped, ERR_FULL if out of memory) instead of the
//  buffer it reads.
int ps_store_write (ps_store_t *self, ps_key_t *key, uint64_t offset, const float *data,
                    uint64_t count, ps_problem_t *problem);

//  Key by name, or NULL
ps_key_t *ps_store_lookup (ps_store_t *self, const char *name);
size_t ps_store_size (ps_store_t *self); //  number of keys
const char *ps_key_name (const ps_key_t *key);
uint64_t ps_key_size (const ps_key_t *key);
//  Bumped by every optimizer step (and by a write a reader would have
//  seen, see ps_store_write), 1 after INIT
uint64_t ps_key_version (const ps_key_t *key);
//  The current version; borrowed: take a ps_buf_ref to keep it
ps_buf_t *ps_key_current (ps_key_t *key);
//  References besides the store's to the buffer the key's next version
//  would be written into (a reader's, the ROUTER loop's published
//  version), 0 when none: while any is held the next step allocates a new
//  buffer. They fall as libzmq sends the reply frames that point into it
unsigned ps_key_spare_pins (ps_key_t *key);
//  Its update rule keeps state (momentum, Adagrad, Adam), changed by a step
bool ps_key_has_state (const ps_key_t *key);
//  The wire dtype its INIT named (PS_DTYPE_*; F32 for a new key): kept for
//  checkpoints and for INITs that name another
int ps_key_dtype (const ps_key_t *key);
void ps_key_set_dtype (ps_key_t *key, int dtype);

//  SSP and ASP: one optimizer step now with the mean gradient
//  (sum of pieces / grad_count). The pieces must cover the key exactly
//  (ERR_SIZE otherwise) and must not point into the store's buffers.
//  grad_count 0 or past PS_MAX_GRAD_COUNT is ERR_MALFORMED; ERR_FULL when
//  a reader holds the spare version and a new buffer cannot be had.
//  A gradient holding a NaN or an infinity is ERR_NONFINITE, naming the
//  element, and leaves the key unchanged.
int ps_store_apply (ps_store_t *self, ps_key_t *key, const ps_piece_t *pieces, size_t npieces,
                    uint32_t grad_count, ps_problem_t *problem);
//  ps_store_apply in two steps, so that a push of several keys is applied
//  whole or not at all: stage computes the key's next version, unseen,
//  and commit publishes it, or drop forgets it (the spare it wrote is
//  written again by the next step). check: refuse NaN and infinities as apply does; for SGD
//  that rides along the step, costing no pass of its own; for rules with
//  state it is a pass before the state changes. A caller that stages
//  several keys with state must check them all before staging any, since
//  a stage changes the optimizer state at once.
int ps_store_stage (ps_store_t *self, ps_key_t *key, const ps_piece_t *pieces, size_t npieces,
                    uint32_t grad_count, bool check, ps_problem_t *problem);
void ps_store_commit (ps_store_t *self, ps_key_t *key);
void ps_store_drop (ps_store_t *self, ps_key_t *key);
//  BSP: add the pieces into the key's accumulator for clock, counting
//  grad_count gradients. Same rules as apply; check: refuse NaN and
//  infinities (each piece is checked just before it is summed, and on a
//  refusal the pieces already summed are taken back out). ERR_FULL when a
//  new clock's sum buffer does not fit in its limit or memory;
//  flushed sums are reused for later clocks.
int ps_store_accumulate (ps_store_t *self, ps_key_t *key, int64_t clock, const ps_piece_t *pieces,
                         size_t npieces, uint32_t grad_count, bool check, ps_problem_t *problem);
//  Take back a push ps_store_accumulate took (the same pieces and count):
//  for a push refused at a later key. Exact when it was the clock's first
//  gradient of the key; otherwise subtracted, exact but for rounding.
void ps_store_unaccumulate (ps_store_t *self, ps_key_t *key, int64_t clock,
                            const ps_piece_t *pieces, size_t npieces, uint32_t grad_count);
//  Pushes in parts (PROTOCOL.md): each part brings a run of floats of a
//  key from element offset on, the runs of one push in order from 0.
//  SSP and ASP: step the run into the key's next version, which is
//  published (and *stepped set) where a run ends the key (ends: the run
//  reaches its last element); several pushes' parts may interleave. The
//  step number moves once per push, at its end. check: a run holding a
//  NaN or an infinity is refused (ERR_NONFINITE) with nothing of it
//  stepped, the check riding along the step where it can
//  (ps_store_part.c); else the caller checks. ERR_SIZE for a run outside
//  the key, ERR_MALFORMED for a bad grad_count, ERR_FULL when a reader
//  holds the spare and a new buffer cannot be had.
int ps_store_stage_part (ps_store_t *self, ps_key_t *key, uint64_t offset, const ps_piece_t *pieces,
                         size_t npieces, uint32_t grad_count, bool ends, bool check, bool *stepped,
                         ps_problem_t *problem);
//  BSP: add a run into the key's accumulator for clock; a run at offset 0
//  counts grad_count gradients. ERR_FULL as ps_store_accumulate.
int ps_store_accumulate_part (ps_store_t *self, ps_key_t *key, int64_t clock, uint64_t offset,
                              const ps_piece_t *pieces, size_t npieces, uint32_t grad_count,
                              ps_problem_t *problem);
//  Take back a run ps_store_accumulate_part took (for a part refused at a
//  later key): subtracted, and the clock's accumulator forgotten when it
//  was its only gradient
void ps_store_unaccumulate_part (ps_store_t *self, ps_key_t *key, int64_t clock, uint64_t offset,
                                 const ps_piece_t *pieces, size_t npieces, uint32_t grad_count);
//  BSP barrier: for every key, apply each accumulator of a clock below
//  before_clock as one optimizer step with its mean, oldest clock first,
//  and drop it. Calls updated (key, arg) once for each key that changed,
//  after its last step; updated may read the store but not change it.
//  Returns the number of steps applied. A step that runs out of memory is
//  logged and its accumulator kept for the next flush.
size_t ps_store_flush (ps_store_t *self, int64_t before_clock,
                       void (*updated) (ps_key_t *key, void *arg), void *arg);
//  Gradients still waiting in accumulators, all keys (for INFO)
uint64_t ps_store_pending (ps_store_t *self);

//  Checkpoints (see ps_checkpoint.h). Add every key to checkpoint: a
//  reference to its current version (no copy: a published version is
//  never written again, and while the checkpoint holds it the key's next
//  step goes into a new spare), a copy of its optimizer state (a step
//  changes it in place), its settings, steps and version. BSP
//  accumulators are not saved. 0, or -1 with ERR_FULL when out of memory
//  for the copies (the keys added so far stay in checkpoint, whose owner
//  destroys it). Not inside ps_store_flush's callback.
int ps_store_snapshot (ps_store_t *self, ps_checkpoint_t *checkpoint, ps_problem_t *problem);
//  Create the keys of checkpoint in the store, as they were saved: each
//  takes over the checkpoint's value reference and state arrays (nulled
//  there), its settings, steps and version. 0, or -1 with problem:
//  ERR_KEY_EXISTS for a key the store holds already (or twice in the
//  checkpoint), ERR_FULL past PS_MAX_KEYS or its limit or out of
//  memory, ERR_OPTIM or ERR_SIZE for settings or arrays that do not fit;
//  the keys restored before the failure stay.
int ps_store_restore (ps_store_t *self, ps_checkpoint_t *checkpoint, ps_problem_t *problem);

#endif
