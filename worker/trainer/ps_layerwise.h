/*  =========================================================================
    ps_layerwise - a training step's requests layer by layer: psworker's
    overlap under BSP (and with a group of brokers)

    Backward hands each layer's gradients to an async push as soon as they
    are final (the last layer first: ps_model_gradient_hooked), the clock
    follows the last push, then a pull per layer, input layer first; the
    next step's forward waits for a layer's pull only when it reaches that
    layer. A layer below fuse_bytes rides with its neighbours' push or
    pull, as BytePS fuses small tensors. A pull sent behind a clock is
    answered with that clock's step (proto/PROTOCOL.md, "What a pull
    sees"), so under BSP step t + 1 reads every worker's step-t gradients:
    the arithmetic, and the results, are those of a step that waits.

    Owns the list of requests in flight and the first failure met while
    waiting for them. The worker, the model and the tensors (the model's
    parameters and gradients, the caller's arrays, which must stay where
    they are) are the caller's. The pushes lend the gradients' arrays: the
    caller writes them only once the requests sent before are collected
    (ps_layerwise_collect; a step's forward does). Called from psworker's
    main thread only.
    ========================================================================= */

#ifndef PS_LAYERWISE_H_INCLUDED
#define PS_LAYERWISE_H_INCLUDED

#include "ps_model.h"
#include "ps_worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_layerwise_t ps_layerwise_t;

//  Requests of worker for model's tensors params and grads (as many as
//  the model has); NULL when out of memory
ps_layerwise_t *ps_layerwise_new (ps_worker_t *worker, ps_model_t *model, ps_tensor_t *params,
                                  const ps_tensor_t *grads, size_t fuse_bytes);
void ps_layerwise_destroy (ps_layerwise_t **self_p);

//  The hooks of a step's pass, for ps_model_gradient_hooked: each layer's
//  forward waits for its pull of the step before; with push_layers, each
//  layer's gradients are pushed (grad_count 1) once backward made them
ps_model_hooks_t ps_layerwise_begin (ps_layerwise_t *self, bool push_layers);
//  Collect the requests in flight up to the pull that brings layer (all
//  of them for -1): that pull first, then the earlier ones in the order
//  they were sent. After a failure the rest are dropped uncollected
//  (psworker stops), but after a registration again every ticket is
//  complete and collected.
void ps_layerwise_collect (ps_layerwise_t *self, int layer);
//  The first failure met since the last ps_layerwise_settle, PS_OK if none
int ps_layerwise_failed (const ps_layerwise_t *self);
//  After the pass: the gradients in one push that finishes the clock when
//  grad_count > 0 (they were not pushed layer by layer), else the clock;
//  the pulls. PS_OK, or the
//  first failure (nothing more is sent then)
int ps_layerwise_send (ps_layerwise_t *self, uint32_t grad_count);
//  Collect every request in flight: PS_OK, PS_EREJOINED (every ticket
//  collected) or the first failure, *what naming its request; forgets it
int ps_layerwise_settle (ps_layerwise_t *self, const char **what);
//  Whether requests are in flight
bool ps_layerwise_pending (const ps_layerwise_t *self);
//  Seconds spent waiting for replies since the last call
double ps_layerwise_waited (ps_layerwise_t *self);

#endif
