/*  =========================================================================
    ps_optim - server-side update rules: SGD, momentum, Adagrad, Adam

    Pure functions over float arrays: no allocation, no state of their
    own. The store owns each key's optimizer state arrays and step count
    and calls ps_optim_apply once per optimizer step. Any thread may call
    these; the aggregation thread is the one that does.
    ========================================================================= */

#ifndef PS_OPTIM_H_INCLUDED
#define PS_OPTIM_H_INCLUDED

#include "ps.pb-c.h"
#include "ps_problem.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PS_OPTIM_SGD = 1,      //  p -= lr * g
    PS_OPTIM_MOMENTUM = 2, //  v = momentum * v + g; p -= lr * v
    PS_OPTIM_ADAGRAD = 3,  //  h += g^2; p -= lr * g / (sqrt (h) + eps)
    PS_OPTIM_ADAM = 4      //  bias-corrected Adam (Kingma & Ba), step t from 1
} ps_optim_kind_t;

typedef struct {
    ps_optim_kind_t kind; //  the update rule
    float lr;             //  learning rate, > 0
    float momentum;       //  MOMENTUM: in [0, 1)
    float beta1;          //  ADAM: in [0, 1)
    float beta2;          //  ADAM: in [0, 1)
    float eps;            //  ADAGRAD, ADAM: > 0
    uint64_t decay_steps; //  > 0: steps 1 .. decay_steps follow a half
                          //  cosine from lr towards 0; later steps use 0
} ps_optim_config_t;

//  SGD with the PS_DEFAULT_* values of ps_limits.h
void ps_optim_config_defaults (ps_optim_config_t *config);
//  0 when usable; else -1 and ERR_OPTIM naming the bad value in problem
//  ("learning rate -1 must be > 0"; problem may be NULL). Checks the kind
//  and only the fields it uses: a config off the wire leaves the others 0.
int ps_optim_config_check (const ps_optim_config_t *config, ps_problem_t *problem);
//  Overlay the settings a worker sent (INIT's Optim) on config: a zero
//  field keeps config's value, so a worker may change only lr. wire may be
//  NULL. The result still needs ps_optim_config_check.
void ps_optim_config_from_wire (ps_optim_config_t *config, const Psmq__Optim *wire);
//  The learning rate of a 1-based step under the config's schedule
float ps_optim_rate (const ps_optim_config_t *config, uint64_t step);
//  0 when a and b update a key the same way; else -1, and the settings
//  that differ written out, a's into a_text ("adam, lr 0.1") and b's into
//  b_text ("sgd, lr 0.01"), each of size bytes (either may be NULL)
int ps_optim_config_compare (const ps_optim_config_t *a, const ps_optim_config_t *b, char *a_text,
                             char *b_text, size_t size);
//  The index of the first NaN or infinity of n values, or n when all are
//  finite: one vectorised pass in the common, all-finite case. values
//  need not be aligned (a small received frame may sit at any offset).
size_t ps_optim_first_nonfinite (const void *values, size_t n);
//  "sgd", "momentum", "adagrad", "adam" <-> kind; parse returns 0 or -1
//  (leaving kind alone), name returns "unknown" for a bad kind
int ps_optim_kind_parse (const char *name, ps_optim_kind_t *kind);
const char *ps_optim_kind_name (ps_optim_kind_t kind);
//  Float arrays of state per element: 0 SGD, 1 MOMENTUM and ADAGRAD, 2 ADAM
size_t ps_optim_state_slots (ps_optim_kind_t kind);

//  One optimizer step over n elements. The gradient is grad[i] * scale
//  (scale = 1 / number of gradients summed, to take their mean). out may
//  equal in (in place) but must not otherwise overlap it. state0/state1
//  are the kind's state arrays (NULL when it has fewer), updated in place.
//  step is the 1-based step number of this key (Adam's bias correction).
//  config must have passed ps_optim_config_check; an unknown kind, a
//  missing state array or Adam at step 0 are programmer errors (asserted).
void ps_optim_apply (const ps_optim_config_t *config, float *out, const float *in,
                     const float *grad, float scale, float *state0, float *state1, size_t n,
                     uint64_t step);
//  SGD's step fused with the finite check of its gradient, so the check
//  costs no pass of its own: the index of the first NaN or infinity in
//  grad, or n when all are finite (out is then garbage past that element,
//  and the caller must not publish it). config's kind must be SGD.
size_t ps_optim_sgd_checked (const ps_optim_config_t *config, float *out, const float *in,
                             const float *grad, float scale, size_t n, uint64_t step);

#endif
