/*  =========================================================================
    ps_local - the broker's update rule in this process (see ps_local.h)
    ========================================================================= */

#include "ps_local.h"
#include "ps_optim.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

//  ps_optim's state arrays, up to two per tensor
#define STATE_SLOTS 2

struct ps_local_t {
    ps_optim_config_t config;     //  the rule, as the broker would take it
    size_t n;                     //  tensors
    float *(*state)[STATE_SLOTS]; //  per tensor, the rule's state arrays
    uint64_t steps;               //  steps taken (each key's, the same for all)
};

ps_local_t *
ps_local_new (const ps_optim_settings_t *settings, const ps_tensor_t *params, size_t n)
{
    ps_optim_config_t config;
    ps_optim_config_defaults (&config);
    if (settings->kind)
        config.kind = (ps_optim_kind_t)settings->kind;
    if (settings->lr)
        config.lr = settings->lr;
    if (settings->momentum)
        config.momentum = settings->momentum;
    if (settings->beta1)
        config.beta1 = settings->beta1;
    if (settings->beta2)
        config.beta2 = settings->beta2;
    if (settings->eps)
        config.eps = settings->eps;
    config.decay_steps = settings->decay_steps;
    ps_problem_t problem;
    if (ps_optim_config_check (&config, &problem)) {
        fprintf (stderr, "psworker: --no-broker: %s\n", problem.message);
        return NULL;
    }
    ps_local_t *self = calloc (1, sizeof *self);
    if (self)
        self->state = calloc (n ? n : 1, sizeof *self->state);
    if (!self || !self->state) {
        free (self);
        fprintf (stderr, "psworker: --no-broker: out of memory\n");
        return NULL;
    }
    self->config = config;
    self->n = n;
    size_t slots = ps_optim_state_slots (config.kind);
    for (size_t i = 0; i < n; i++)
        for (size_t slot = 0; slot < slots; slot++)
            if (!(self->state[i][slot] = calloc (params[i].count, sizeof (float)))) {
                ps_local_destroy (&self);
                fprintf (stderr, "psworker: --no-broker: out of memory\n");
                return NULL;
            }
    return self;
}

void
ps_local_step (ps_local_t *self, ps_tensor_t *params, const ps_tensor_t *grads, size_t n,
               uint32_t grad_count)
{
    assert (self && n == self->n);
    self->steps++;
    float scale = 1.0f / (float)(grad_count ? grad_count : 1);
    for (size_t i = 0; i < n; i++)
        ps_optim_apply (&self->config, params[i].data, params[i].data, grads[i].data, scale,
                        self->state[i][0], self->state[i][1], params[i].count, self->steps);
}

void
ps_local_destroy (ps_local_t **self_p)
{
    assert (self_p);
    ps_local_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        for (size_t slot = 0; slot < STATE_SLOTS; slot++)
            free (self->state[i][slot]);
    free (self->state);
    free (self);
    *self_p = NULL;
}
