/*  =========================================================================
    ps_model - softmax regression and a one-hidden-layer MLP for psworker

    A model is a list of named float32 tensors (its parameters), each with a
    gradient tensor of the same size. Each parameter becomes one key on the
    parameter server, so the names are stable:

        softmax:  softmax.W  inputs x classes     softmax.b  classes
        mlp:      mlp.W1     inputs x hidden      mlp.b1     hidden
                  mlp.W2     hidden x classes     mlp.b2     classes

    Matrices are row-major with the input index first, so logits are
    x W + b for a row vector x. The loss is softmax cross-entropy, averaged
    over the batch; the MLP uses ReLU in its hidden layer.

    Inputs x are example-major (batch rows of `inputs` floats) and labels y
    must be < classes: both come from ps_data, which has validated them, so
    a label out of range is a programmer error and asserts.

    Ownership and threads: the model owns its parameter, gradient and
    scratch memory; pointers from ps_model_param () and ps_model_grad ()
    stay valid until ps_model_destroy () and may be read and written by the
    caller (that is how pulled parameters go in and gradients go out).
    A model is not thread-safe: one thread uses it at a time. Dense math
    goes through OpenBLAS, which may use its own threads inside a call.

    Failure: ps_model_new returns NULL for out-of-range sizes or no memory.
    Scratch memory grows with the largest batch seen; if that allocation
    fails ps_model_gradient and ps_model_loss return NAN and
    ps_model_correct returns SIZE_MAX.
    ========================================================================= */

#ifndef PS_MODEL_H_INCLUDED
#define PS_MODEL_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef enum { PS_MODEL_SOFTMAX, PS_MODEL_MLP } ps_model_kind_t;

typedef struct ps_model_t ps_model_t;

//  Create a model. inputs and classes must be >= 1 (classes <= 256, as
//  labels are bytes); hidden must be >= 1 for PS_MODEL_MLP and is ignored
//  for PS_MODEL_SOFTMAX. Weights are initialised from seed alone: the MLP
//  uses He-uniform for W1 and Glorot-uniform for W2, softmax weights and
//  all biases start at zero. Returns NULL on bad sizes or no memory.
ps_model_t *ps_model_new (ps_model_kind_t kind, size_t inputs, size_t hidden, size_t classes,
                          uint64_t seed);

//  Free a model and set *self_p to NULL; does nothing if *self_p is NULL
void ps_model_destroy (ps_model_t **self_p);

//  "softmax" or "mlp" to a kind; returns -1 for anything else
int ps_model_kind_parse (const char *name, ps_model_kind_t *kind);
//  The name ps_model_kind_parse accepts for kind
const char *ps_model_kind_name (ps_model_kind_t kind);

ps_model_kind_t ps_model_kind (const ps_model_t *self);
size_t ps_model_inputs (const ps_model_t *self);
size_t ps_model_classes (const ps_model_t *self);

//  Number of parameter tensors (2 for softmax, 4 for the MLP)
size_t ps_model_param_count (const ps_model_t *self);
//  Name of parameter i (i < count); a static string
const char *ps_model_param_name (const ps_model_t *self, size_t i);
//  Elements in parameter i (and in its gradient)
size_t ps_model_param_size (const ps_model_t *self, size_t i);
//  Values of parameter i; owned by the model, writable
float *ps_model_param (ps_model_t *self, size_t i);
//  Gradient of parameter i from the last ps_model_gradient (); owned by the
//  model, writable
float *ps_model_grad (ps_model_t *self, size_t i);

//  Forward and backward pass over batch examples (batch >= 1): fills every
//  gradient tensor with the gradient of the mean loss and returns that loss
float ps_model_gradient (ps_model_t *self, const float *x, const uint8_t *y, size_t batch);

//  A model's layers, input first: softmax has one (tensors 0 and 1), the
//  MLP two (W1 b1, then W2 b2). Each layer's parameters are consecutive
//  tensors, *first and *count of them.
size_t ps_model_layer_count (const ps_model_t *self);
void ps_model_layer_params (const ps_model_t *self, size_t layer, size_t *first, size_t *count);

//  What ps_model_gradient_hooked tells as it goes; either call may be
//  NULL. Both are called on the caller's thread, inside the call.
typedef struct {
    //  Layer's forward is about to read its parameters (input layer first)
    void (*before_forward) (void *arg, size_t layer);
    //  Layer's gradients are final (the last layer first); backward reads
    //  the parameters of the layers below it still
    void (*after_backward) (void *arg, size_t layer);
    void *arg;
} ps_model_hooks_t;

//  ps_model_gradient, telling hooks (may be NULL) of each layer: the same
//  arithmetic in the same order, so bit for bit the same gradients
float ps_model_gradient_hooked (ps_model_t *self, const float *x, const uint8_t *y, size_t batch,
                                const ps_model_hooks_t *hooks);

//  Elements of all tensors together; tensor i starts at the same offset
//  in the parameter and the gradient arrays
size_t ps_model_total (const ps_model_t *self);
//  Use params (ps_model_total floats, the caller's until swapped back)
//  as the parameters from now on and return the array used so far, which
//  becomes the caller's. ps_model_param () pointers taken before are
//  stale: take them again. The model frees, at destroy, the arrays it
//  holds then, so the caller's must come from malloc.
float *ps_model_swap_params (ps_model_t *self, float *params);
//  The same for the gradient array
float *ps_model_swap_grads (ps_model_t *self, float *grads);

//  Mean loss over n examples (n >= 1), forward only; the gradients are left
//  alone. Works through the examples in blocks, so memory stays bounded.
float ps_model_loss (ps_model_t *self, const float *x, const uint8_t *y, size_t n);

//  How many of n examples the model classifies correctly (the largest
//  logit, the first on a tie, equals the label); works in blocks like
//  ps_model_loss
size_t ps_model_correct (ps_model_t *self, const float *x, const uint8_t *y, size_t n);

//  Plain SGD on the local parameters: param -= lr * grad
void ps_model_sgd_step (ps_model_t *self, float lr);

#endif
