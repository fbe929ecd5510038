/*  =========================================================================
    ps_aggregator - the broker's aggregation thread, a czmq actor

    Owns the parameter store (ps_store) and so every tensor and optimizer
    state; no other thread touches them. The ROUTER loop hands it work over
    the actor pipe and it answers on the same pipe. Tensor frames are moved
    through the pipe, never copied; the aggregator reads them in place and
    reduces into buffers the store owns.

    The ROUTER loop decodes and checks every envelope once; what it sends
    here is the plan it drew from it (an array of ps_agg_entry_t), never
    the envelope, so this thread needs no codec. Pipe protocol: every
    message's first frame is a ps_agg_command_t; commands are processed in
    order and numbered from 1.
      INIT  [cmd][routing id][plan: a slice per entry][initial value frames]
      PUSH  [cmd][plan: a key run per entry][gradient frames...]  one
                        part of a push: cmd.first, cmd.more say which
      FLUSH [cmd]                                      (BSP barrier)
      CHECKPOINT [cmd]  cmd.checkpoint: a checkpoint with its settings and
                        clocks filled in, handed over; the keys are added
                        to it as they are now (ps_store_snapshot)
      RESTORE [cmd]     cmd.checkpoint: one read from a file (or an empty
                        one), handed over; the store is replaced by a new
                        one holding its keys (ps_store_restore)
    Replies, in order, on the same pipe:
      PUBLISH [event][key name]   event.buf holds a reference for the reader;
                                  the ROUTER loop counts those it handled
                                  (config.taken), see "Versions" below
      REPLY   [event][routing id][message]   INIT answered: event.status 0,
                                  or a PSMQ__ERR_CODE__* and why
      FAULT   [event][why]        a PUSH (a part of a push, and its later
                                  parts) of rank event.worker was refused
                                  and not applied: event.status says why,
                                  ERR_NONFINITE (a NaN or an infinity) or
                                  ERR_FULL (a BSP sum past the store's limit)
      SNAPSHOT [event][why]       CHECKPOINT answered: event.checkpoint
                                  handed back with its keys, or NULL with
                                  event.status -1 and why (it was destroyed)
      RESTORED [event][why]       RESTORE answered: event.status 0, its
                                  keys published before it, or -1 and why
      DONE    [event]             event.done = commands processed so far,
                                  event.applied = tensor bytes of the PUSHes
                                  among them (the push budget);
                                  everything they published came before it
    plus the czmq "$TERM" convention to stop.

    Versions: the ROUTER loop holds the version it last took from a
    PUBLISH, each PUBLISH in the pipe holds one, and each pull reply frame
    libzmq has not sent yet holds the version it points into. When the
    key's spare is pinned so, every push that ends would need a new version
    buffer: with 16 workers pulling a 64 MB model, 4.4 to 5x the model in
    flight. So before stepping a part into a key of PS_CHUNK_BYTES or more
    whose spare is pinned, this thread waits, at most PS_AGG_DRAIN_WAIT_MS,
    while the ROUTER loop has PUBLISHes to take or the replies that pin
    the spare are being sent (its references fall as their frames go). A
    pin that has not moved for PS_AGG_DRAIN_IDLE_MS is a reader that does
    not read (or a slow one): the store allocates rather than let it hold
    the job back. Small keys never wait.

    Failure: malformed input cannot reach here (the ROUTER loop validates
    what it forwards). A push's values are read only here: one holding a
    NaN or an infinity is not applied and reported (FAULT). What still
    fails (out of memory, a key size that changed) is logged and, for
    INIT, answered with an error status.
    ========================================================================= */

#ifndef PS_AGGREGATOR_H_INCLUDED
#define PS_AGGREGATOR_H_INCLUDED

#include "ps_buf.h"
#include "ps_checkpoint.h"
#include "ps_limits.h"
#include "ps_optim.h"

#include <czmq.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    PS_AGG_INIT = 1,
    PS_AGG_PUSH,
    PS_AGG_FLUSH,
    PS_AGG_PUBLISH,
    PS_AGG_REPLY,
    PS_AGG_FAULT,
    PS_AGG_DONE,
    PS_AGG_CHECKPOINT,
    PS_AGG_RESTORE,
    PS_AGG_SNAPSHOT,
    PS_AGG_RESTORED
} ps_agg_kind_t;

//  The first frame of every pipe message, both ways
typedef struct {
    ps_agg_kind_t kind;          //  what this message is
    int64_t clock;               //  PUSH: the gradients' clock; FLUSH: apply
                                 //  accumulators of clocks below this
    uint32_t grad_count;         //  PUSH: gradients summed in the frames
    uint32_t worker;             //  INIT, PUSH, FAULT, REPLY: the connection's rank
    uint64_t seq;                //  INIT, REPLY: the request's seq
    ps_optim_config_t optim;     //  INIT: the settings it names, resolved
    bool named;                  //  INIT: it named settings (else the key's
                                 //  own, or the defaults for a new key)
    int status;                  //  REPLY: 0, or the PSMQ__ERR_CODE__* refusing it;
                                 //  FAULT: the PSMQ__ERR_CODE__* refusing the push;
                                 //  SNAPSHOT, RESTORED: 0, or -1 (failed)
    uint64_t done;               //  DONE: commands processed
    ps_buf_t *buf;               //  PUBLISH: new version, one reference handed over
    uint64_t size;               //  PUBLISH: elements in the key
    uint64_t version;            //  PUBLISH: its version number
    int dtype;                   //  PUBLISH: its wire dtype (PS_DTYPE_*)
    uint64_t steps;              //  DONE: optimizer steps applied so far
    uint64_t pending;            //  DONE: gradients waiting in BSP accumulators
    int64_t received_us;         //  INIT: when the router read it; echoed in REPLY
    ps_checkpoint_t *checkpoint; //  CHECKPOINT, RESTORE, SNAPSHOT: handed over
    uint64_t store_bytes;        //  DONE: bytes the store holds (of its limit)
    uint64_t applied;            //  DONE: tensor bytes of the PUSHes processed so far
    bool first;                  //  PUSH: the first part of a push
    bool more;                   //  PUSH: more parts of this push follow
} ps_agg_command_t;

//  The longest a part waits for the versions that pin its key's spare to
//  be let go, and how long a pin may stand still before the wait gives up
//  (see "Versions" above); past either the store allocates one more
#define PS_AGG_DRAIN_WAIT_MS 500
#define PS_AGG_DRAIN_IDLE_MS 100

//  One entry of a command's plan. INIT: one per slice, in order; a slice
//  with count > 0 has the next frame. PUSH: one per run of a key, whose
//  `frames` next frames cover it from element `offset` on, in order; a
//  run that `ends` reaches the key's last element (a push in parts may
//  cut a key's run between two parts: the next part goes on with it).
typedef struct {
    char key[PS_MAX_KEY_LEN + 1]; //  the key's name
    uint64_t offset;              //  INIT: where the slice's values go;
                                  //  PUSH: where the run's first frame goes
    uint64_t count;               //  INIT: elements in its frame
    uint64_t total;               //  INIT: the key's size
    uint32_t frames;              //  PUSH: frames of this key
    int dtype;                    //  INIT, PUSH: the frames' wire dtype
                                  //  (PS_DTYPE_*); INIT: the key's
    bool ends;                    //  PUSH: the run covers the key to its end
} ps_agg_entry_t;

typedef struct {
    ps_optim_config_t defaults; //  optimizer for keys that name none
    int32_t staleness;          //  0: accumulate pushes until FLUSH
    bool accept_nonfinite;      //  apply NaN and Inf gradients as they come
    uint64_t max_store_bytes;   //  the store's limit (ps_store_set_limit)
    //  PUBLISHes the ROUTER loop has handled: it counts, we read; it
    //  outlives us. NULL: never wait for it
    const _Atomic uint64_t *taken;
} ps_aggregator_config_t;

//  The actor body, for zactor_new (ps_aggregator_actor, &config); config
//  is copied before the actor signals that it is ready
void ps_aggregator_actor (zsock_t *pipe, void *args);

#endif
