/*  =========================================================================
    ps_local - psworker --no-broker: the broker's update rule, applied in
    this process

    The reference that issue 15's overlap figure is held against: the
    same training as through a broker, one worker, with every step's mean
    gradient applied here by the broker's own code (ps_optim), the
    optimizer settings completed with the broker's defaults as an INIT
    would be, and one step count for every key as the broker keeps per
    key. No network, no waiting: what training costs without psmq.

    Owns the optimizer's state arrays; the parameters are the caller's.
    Called from psworker's main thread only.
    ========================================================================= */

#ifndef PS_LOCAL_H_INCLUDED
#define PS_LOCAL_H_INCLUDED

#include "ps_worker.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ps_local_t ps_local_t;

//  An optimizer for the n tensors params (their counts are read), with
//  settings as psworker would INIT them (decay_steps > 0: cosine decay
//  over that many steps). NULL, said on stderr, for settings the broker
//  would refuse or when out of memory.
ps_local_t *ps_local_new (const ps_optim_settings_t *settings, const ps_tensor_t *params, size_t n);
//  One optimizer step of every tensor: params[i] updated in place with
//  grads[i] / grad_count
void ps_local_step (ps_local_t *self, ps_tensor_t *params, const ps_tensor_t *grads, size_t n,
                    uint32_t grad_count);
void ps_local_destroy (ps_local_t **self_p);

#endif
