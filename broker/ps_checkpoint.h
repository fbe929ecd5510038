/*  =========================================================================
    ps_checkpoint - a broker's state as a file: written atomically, read
    back only when whole

    A ps_checkpoint_t is a snapshot: the broker's settings that a restart
    must share, every rank's clock and every key (values, optimizer state,
    settings, steps, version). The aggregation thread fills the keys
    (ps_store_snapshot), a writer thread writes it (ps_checkpoint_write),
    and a starting broker reads the newest file that is whole
    (ps_checkpoint_load_newest, ps_checkpoint_dir.h) and hands it to the
    store (ps_store_restore). This module is one file and its name; the
    folder of them (the lock, which file to load, which to delete or set
    aside) is ps_checkpoint_dir's.

    Files: DIR/checkpoint-NNNNNN.psmq, NNNNNN the sequence number in
    decimal (six digits at least), so that the newest is the highest
    number. A file is written as DIR/checkpoint-NNNNNN.psmq.tmp, fsynced,
    renamed to its name and the directory fsynced: a file under its final
    name is complete, and a broker killed at any moment leaves at worst a
    .tmp file, which the next start deletes (ps_checkpoint_prepare_dir).

    Byte format, version 1 or 2. Integers little-endian; floats IEEE 754
    binary32, little-endian; no padding anywhere.
      header, 72 bytes
        0   8  magic "PSMQCKPT"
        8   4  u32 format version: 2 when a key travels in a 16-bit wire
                   dtype, else 1 (which older brokers read)
       12   4  u32 flags, 0
       16   8  u64 file bytes, the trailer included
       24   8  u64 sequence number (the file's name says the same)
       32   8  i64 written at, Unix time in ms
       40   4  u32 world size (workers)
       44   4  i32 staleness (0 BSP, N SSP, -1 ASP)
       48   4  u32 shard
       52   4  u32 shards (1 for a broker alone)
       56   8  i64 clock: the slowest clock a rank not gone redoes from
       64   4  u32 keys
       68   4  u32 reserved, 0
      ranks, world size times 12 bytes, rank 0 first
           4  u32 state: 0 never joined, 1 live, 2 gone
           8  i64 the clock it redoes from (gone: where it left)
      keys, each
           2  u16 name length L (1..PS_MAX_KEY_LEN), then L bytes of name
           8  u64 size N (elements)
           4  u32 optimizer kind (1 sgd, 2 momentum, 3 adagrad, 4 adam)
          20  f32 lr, momentum, beta1, beta2, eps
           8  u64 decay steps (cosine decay; 0 none)
           8  u64 optimizer steps done (Adam's t, the decay's step)
           8  u64 version
           4  u32 state arrays S (as the kind has: 0, 1 or 2)
           4  format 2 only: u32 wire dtype (0 f32, 1 bf16, 2 f16;
              proto/ps.proto DType); format 1 keys are f32
         4N   the values
       S*4N   the optimizer state arrays, in order
      trailer, 12 bytes
           8  "PSMQEND1"
           4  u32 CRC-32 (zlib's) of every byte before it
    A reader refuses a file whose magic, version or length is not this,
    whose checksum does not match, or any of whose fields breaks a limit of
    ps_limits.h (then it reports a checksum mismatch first, when there is
    one: a field that broke is most likely a flipped byte).

    The struct is open: the store and the ROUTER loop fill it. Its owner
    (whoever made it or was handed it) destroys it, which drops the value
    references and frees the state arrays. Any thread may call these
    functions on a checkpoint it owns; files are only ever written by one
    thread at a time (the broker's writer). Failures fill a ps_problem_t
    (code 0: local) whose message names the bad value; never an abort.
    ========================================================================= */

#ifndef PS_CHECKPOINT_H_INCLUDED
#define PS_CHECKPOINT_H_INCLUDED

#include "ps_buf.h"
#include "ps_limits.h"
#include "ps_optim.h"
#include "ps_problem.h"
#include "ps_vclock.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The newest format this broker writes and reads, and the oldest it reads
#define PS_CHECKPOINT_VERSION 2
#define PS_CHECKPOINT_OLDEST_VERSION 1

//  One key as saved
typedef struct {
    char name[PS_MAX_KEY_LEN + 1]; //  its name
    uint64_t size;                 //  elements
    ps_optim_config_t optim;       //  its update rule
    uint64_t steps;                //  optimizer steps done (Adam's t)
    uint64_t version;              //  its version number
    int dtype;                     //  its wire dtype, PS_DTYPE_* (format 2)
    ps_buf_t *values;              //  size floats; one reference, ours
    float *state[2];               //  size floats each, ours; NULL past
                                   //  ps_optim_state_slots (optim.kind)
} ps_checkpoint_key_t;

//  One rank as saved
typedef struct {
    ps_rank_state_t state; //  never joined (ABSENT), LIVE or GONE
    int64_t clock;         //  the clock it redoes from
} ps_checkpoint_rank_t;

typedef struct {
    uint64_t sequence;           //  its number, in the file's name too
    int64_t written_ms;          //  Unix time in ms (set by write)
    uint32_t world;              //  ranks
    int32_t staleness;           //  the broker's
    uint32_t shard;              //  its place in its group
    uint32_t shards;             //  its group's size, 1 alone
    int64_t clock;               //  slowest clock of a rank not gone
    ps_checkpoint_rank_t *ranks; //  world of them
    ps_checkpoint_key_t *keys;   //  nkeys of them
    size_t nkeys;                //  keys filled
    size_t capacity;             //  keys allocated
} ps_checkpoint_t;

//  An empty checkpoint of world ranks (all never joined, clock 0), or NULL
//  when out of memory or world is 0 or past PS_MAX_WORKERS
ps_checkpoint_t *ps_checkpoint_new (uint32_t world);
//  Drop the references, free the arrays and the checkpoint; nulls it
void ps_checkpoint_destroy (ps_checkpoint_t **self_p);
//  A new zeroed key at the end, or NULL when out of memory
ps_checkpoint_key_t *ps_checkpoint_add_key (ps_checkpoint_t *self);
//  The slowest clock of the ranks not gone (the furthest of all when every
//  rank is gone), which ps_checkpoint_write records as self->clock
int64_t ps_checkpoint_job_clock (const ps_checkpoint_t *self);
//  The bytes its file will have
uint64_t ps_checkpoint_bytes (const ps_checkpoint_t *self);

//  What the writer's caller says between chunks of a write, and while a
//  paced write waits
typedef enum {
    PS_CHECKPOINT_GO = 0, //  go on as before
    PS_CHECKPOINT_HURRY,  //  go on at full speed to the end
    PS_CHECKPOINT_CANCEL  //  give it up: the .tmp file is deleted and the
                          //  write fails with "cancelled"
} ps_checkpoint_control_t;
typedef ps_checkpoint_control_t (ps_checkpoint_control_fn) (void *arg);

//  How a write goes: control (may be NULL) is asked between chunks, with
//  arg; rate > 0 paces it to at most rate bytes a second (sleeping in
//  slices of at most PS_CHECKPOINT_PACE_SLICE_MS, control asked after each)
//  until control says HURRY; 0 writes at the disk's speed
typedef struct {
    ps_checkpoint_control_fn *control;
    void *arg;
    uint64_t rate;
} ps_checkpoint_io_t;
#define PS_CHECKPOINT_PACE_SLICE_MS 20

//  Write self as DIR/checkpoint-<self->sequence>.psmq, atomically as said
//  above; sets self->written_ms and self->clock. 0 with the file's path in
//  path, or -1 with problem set (the disk is full, a write failed, it was
//  cancelled) and no file left under either name. io may be NULL (no
//  control, full speed).
int ps_checkpoint_write (ps_checkpoint_t *self, const char *dir, char *path, size_t path_size,
                         const ps_checkpoint_io_t *io, ps_problem_t *problem);
//  Read and check the file at path: a new checkpoint, or NULL with
//  problem saying why it was refused ("truncated: ...", "checksum
//  mismatch: ...", "format version 7, this broker reads 1", "not a psmq
//  checkpoint ...")
ps_checkpoint_t *ps_checkpoint_read (const char *path, ps_problem_t *problem);

//  The name of checkpoint sequence in dir: DIR/checkpoint-NNNNNN.psmq
//  then suffix ("" the file, ".tmp" while it is written, ".refused",
//  ".discarded"). 0, or -1 when it does not fit in size bytes
int ps_checkpoint_path (char *path, size_t size, const char *dir, uint64_t sequence,
                        const char *suffix);
//  Whether name (a directory entry) is "checkpoint-<digits><suffix>",
//  suffix from ".psmq" on (".psmq", ".psmq.tmp", ...); its number into
//  *sequence when it is
bool ps_checkpoint_sequence_of (const char *name, const char *suffix, uint64_t *sequence);
//  The job clock in the header of the file at path, without reading the
//  rest: 0, or -1 when its magic, version or length is not this format's
//  (whether it reads whole only ps_checkpoint_read can tell)
int ps_checkpoint_peek_clock (const char *path, int64_t *clock);
//  fsync the directory, so that a rename in it is durable: 0, or -1 with
//  problem naming it
int ps_checkpoint_sync_dir (const char *dir, ps_problem_t *problem);

#endif
