/*  =========================================================================
    ps_layerwise - a training step's requests layer by layer (see
    ps_layerwise.h)

    The requests of a step go into a list in the order they are sent and
    are collected in that order; a pull's entry names the last layer it
    brings, so that a layer's forward waits for what comes before it and
    no more.

    The pushes lend the gradient arrays rather than copy them: backward
    writes a layer's gradients again only in the next step, whose forward
    has collected every request sent before its last pull by then (the
    pushes go out before the pulls).
    ========================================================================= */

#include "ps_layerwise.h"
#include "ps_clock.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

//  Tensors of a model, at most (ps_model: 4)
#define LAYERWISE_MAX_TENSORS 8
//  A step's requests: a push per tensor, a clock, a pull per tensor
#define LAYERWISE_MAX_IN_FLIGHT (2 * LAYERWISE_MAX_TENSORS + 1)

//  A request of a step still on the way
typedef struct {
    ps_ticket_t ticket; //  the library's
    const char *what;   //  "push", "clock", "pull"
    int layer;          //  the last layer a pull brings, -1 for the others
} in_flight_t;

struct ps_layerwise_t {
    ps_worker_t *worker;                         //  the caller's
    ps_model_t *model;                           //  the caller's
    ps_tensor_t *params;                         //  the model's parameters
    const ps_tensor_t *grads;                    //  and gradients
    size_t ntensors;                             //  the model's tensors
    size_t fuse_bytes;                           //  a request's least bytes
    in_flight_t flight[LAYERWISE_MAX_IN_FLIGHT]; //  sent, in order
    size_t nflight;                              //  how many
    size_t unpushed;         //  tensors from here on: backward made them, not pushed
    size_t unpushed_bytes;   //  their bytes
    int failed;              //  the first failure, PS_OK if none
    const char *failed_what; //  its request
    double waited;           //  seconds waiting since ps_layerwise_waited
};

ps_layerwise_t *
ps_layerwise_new (ps_worker_t *worker, ps_model_t *model, ps_tensor_t *params,
                  const ps_tensor_t *grads, size_t fuse_bytes)
{
    assert (worker && model && params && grads);
    assert (ps_model_param_count (model) <= LAYERWISE_MAX_TENSORS);
    ps_layerwise_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->worker = worker;
    self->model = model;
    self->params = params;
    self->grads = grads;
    self->ntensors = ps_model_param_count (model);
    self->fuse_bytes = fuse_bytes;
    return self;
}

void
ps_layerwise_destroy (ps_layerwise_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

//  Keep a request sent, or its failure when it is the first
static void
s_sent (ps_layerwise_t *self, int status, ps_ticket_t ticket, const char *what, int layer)
{
    if (status == PS_OK) {
        assert (self->nflight < LAYERWISE_MAX_IN_FLIGHT);
        self->flight[self->nflight++] = (in_flight_t){ticket, what, layer};
    }
    else if (self->failed == PS_OK) {
        self->failed = status;
        self->failed_what = what;
    }
}

//  Wait for one request; its failure kept when it is the first
static void
s_wait (ps_layerwise_t *self, const in_flight_t *request)
{
    int outcome = ps_worker_wait (self->worker, request->ticket, -1);
    if (outcome != PS_OK && self->failed == PS_OK) {
        self->failed = outcome;
        self->failed_what = request->what;
    }
}

void
ps_layerwise_collect (ps_layerwise_t *self, int layer)
{
    assert (self);
    double started = ps_clock_seconds ();
    //  The requests up to the pull that brings layer (or all of them)
    size_t upto = 0;
    while (upto < self->nflight && !(layer >= 0 && self->flight[upto].layer >= layer))
        upto++;
    size_t done = upto < self->nflight ? upto + 1 : self->nflight;
    //  That pull first: a wait receives every reply that comes before its
    //  own, so the pushes' and the clock's are in by then, as in a step
    //  that waits for its pull; then the others, in the order they went
    if (done > 0 && (self->failed == PS_OK || self->failed == PS_EREJOINED))
        s_wait (self, &self->flight[done - 1]);
    for (size_t i = 0; i + 1 < done && (self->failed == PS_OK || self->failed == PS_EREJOINED); i++)
        s_wait (self, &self->flight[i]);
    memmove (self->flight, self->flight + done, (self->nflight - done) * sizeof *self->flight);
    self->nflight -= done;
    self->waited += ps_clock_seconds () - started;
}

static void
s_before_forward (void *arg, size_t layer)
{
    ps_layerwise_collect (arg, (int)layer);
}

//  Bytes of layer's parameters (and of its gradients)
static size_t
s_layer_bytes (const ps_layerwise_t *self, size_t layer)
{
    size_t first, count, bytes = 0;
    ps_model_layer_params (self->model, layer, &first, &count);
    for (size_t i = first; i < first + count; i++)
        bytes += self->params[i].count * sizeof (float);
    return bytes;
}

//  Backward finished layer's gradients: on their way at once, with those
//  of the layers above that were too small to go alone
static void
s_after_backward (void *arg, size_t layer)
{
    ps_layerwise_t *self = arg;
    self->unpushed_bytes += s_layer_bytes (self, layer);
    if (self->failed != PS_OK || (layer > 0 && self->unpushed_bytes < self->fuse_bytes))
        return;
    size_t first, count;
    ps_model_layer_params (self->model, layer, &first, &count);
    ps_ticket_t ticket = 0;
    int status = ps_worker_push_lend_async (self->worker, self->grads + first,
                                            self->unpushed - first, 1, &ticket);
    s_sent (self, status, ticket, "push", -1);
    self->unpushed = first;
    self->unpushed_bytes = 0;
}

ps_model_hooks_t
ps_layerwise_begin (ps_layerwise_t *self, bool push_layers)
{
    assert (self);
    self->unpushed = self->ntensors;
    self->unpushed_bytes = 0;
    return (ps_model_hooks_t){s_before_forward, push_layers ? s_after_backward : NULL, self};
}

int
ps_layerwise_failed (const ps_layerwise_t *self)
{
    assert (self);
    return self->failed;
}

//  The pulls of the next step's parameters, input layer first: a layer
//  joins the pull of the ones before it while that is below fuse_bytes,
//  and so do the last layers when they are
static void
s_send_pulls (ps_layerwise_t *self)
{
    size_t layers = ps_model_layer_count (self->model);
    size_t rest = 0;
    for (size_t layer = 0; layer < layers; layer++)
        rest += s_layer_bytes (self, layer);
    size_t start = 0, bytes = 0;
    for (size_t layer = 0; layer < layers && self->failed == PS_OK; layer++) {
        size_t layer_bytes = s_layer_bytes (self, layer);
        bytes += layer_bytes;
        rest -= layer_bytes;
        if (layer + 1 < layers && (bytes < self->fuse_bytes || rest < self->fuse_bytes))
            continue;
        size_t first, count, last_first;
        ps_model_layer_params (self->model, start, &first, &count);
        ps_model_layer_params (self->model, layer, &last_first, &count);
        ps_ticket_t ticket = 0;
        int status = ps_worker_pull_async (self->worker, self->params + first,
                                           last_first + count - first, &ticket);
        s_sent (self, status, ticket, "pull", (int)layer);
        start = layer + 1;
        bytes = 0;
    }
}

int
ps_layerwise_send (ps_layerwise_t *self, uint32_t grad_count)
{
    assert (self);
    ps_ticket_t ticket = 0;
    int status;
    if (grad_count > 0 && self->failed == PS_OK) {
        status = ps_worker_push_clock_lend_async (self->worker, self->grads, self->ntensors,
                                                  grad_count, &ticket);
        s_sent (self, status, ticket, "push and clock", -1);
    }
    else if (self->failed == PS_OK) {
        status = ps_worker_clock_async (self->worker, &ticket);
        s_sent (self, status, ticket, "clock", -1);
    }
    s_send_pulls (self);
    return self->failed;
}

int
ps_layerwise_settle (ps_layerwise_t *self, const char **what)
{
    assert (self);
    ps_layerwise_collect (self, -1);
    int status = self->failed;
    *what = self->failed_what;
    self->failed = PS_OK;
    return status;
}

bool
ps_layerwise_pending (const ps_layerwise_t *self)
{
    assert (self);
    return self->nflight > 0;
}

double
ps_layerwise_waited (ps_layerwise_t *self)
{
    assert (self);
    double waited = self->waited;
    self->waited = 0;
    return waited;
}
