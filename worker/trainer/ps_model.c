/*  =========================================================================
    ps_model - softmax regression and a one-hidden-layer MLP for psworker

    All parameters live in one float array and all gradients in another,
    with the same layout; each named tensor is an offset and a size into
    both. That keeps the per-key view the parameter server needs and still
    lets SGD run as one saxpy over everything. The two arrays can be
    swapped for others of the same size (ps_model_swap_params and _grads):
    psworker's pull-ahead computes with one set of parameters while the
    next is pulled into another, and pushes one gradient array while
    backward writes the next, with no copy.

    ps_model_gradient_hooked is ps_model_gradient with a word to the
    caller before each layer's forward and after each layer's backward,
    the same calls in the same order, so the same bits: psworker pushes a
    layer's gradients while backward goes on, and waits for a layer's
    pulled parameters only when its forward needs them.

    A pass over a batch is a handful of cblas_sgemm calls on row-major
    matrices (examples are rows). The activations of the batch live in
    scratch buffers owned by the model, sized for the largest batch seen so
    far: a training loop with a fixed batch size allocates once and then
    never again. Evaluation walks its examples in blocks of EVAL_BLOCK rows
    (or the scratch capacity, if larger), so a 10000-example test set does
    not need 10000 rows of activations.

    The loss uses log-softmax, log p_y = (z_y - max z) - log sum exp (z -
    max z). Subtracting the row maximum keeps exp from overflowing, and the
    sum is at least 1, so the log is always finite: this gives what
    clamping p before the log is meant to give, without biasing the loss
    of confidently wrong predictions. Losses are summed in double.

    Sizes are bounded (MODEL_MAX_UNITS, INT_MAX parameters) because
    OpenBLAS takes int dimensions.
    ========================================================================= */

#include "ps_model.h"
#include "ps_hash.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_MAX_TENSORS 4
//  Largest inputs or hidden size; keeps every BLAS dimension an int
#define MODEL_MAX_UNITS (1u << 20)
//  Rows per block when evaluating
#define EVAL_BLOCK 256

typedef struct {
    const char *name; //  Key on the parameter server
    size_t size;      //  Elements
    size_t offset;    //  Start in params and in grads
} tensor_t;

struct ps_model_t {
    ps_model_kind_t kind;                //  Softmax regression or MLP
    size_t inputs;                       //  Features per example
    size_t hidden;                       //  Hidden units (MLP), 0 for softmax
    size_t classes;                      //  Outputs
    size_t ntensors;                     //  Tensors in use in tensors[]
    tensor_t tensors[MODEL_MAX_TENSORS]; //  Named views into params/grads
    size_t total;                        //  Elements in all tensors together
    float *params;                       //  All parameters, tensor after tensor
    float *grads;                        //  All gradients, same layout as params
    size_t capacity;                     //  Rows the scratch buffers hold
    float *logits;                       //  capacity x classes: logits, then probabilities,
                                         //  then d loss / d logits
    float *act;                          //  capacity x hidden: ReLU outputs (MLP only)
    float *dact;                         //  capacity x hidden: d loss / d act (MLP only)
};

//  Uniform in [-limit, limit), from the generator of ps_data's synthetic
//  set, so the initial weights are identical on every platform for a seed
static void
s_init_uniform (float *w, size_t size, float limit, uint64_t *state)
{
    for (size_t i = 0; i < size; i++) {
        float u = (float)(ps_splitmix64 (state) >> 40) * (1.0f / 16777216.0f);
        w[i] = (2 * u - 1) * limit;
    }
}

static void
s_add_tensor (ps_model_t *self, const char *name, size_t size)
{
    assert (self->ntensors < MODEL_MAX_TENSORS);
    tensor_t *t = &self->tensors[self->ntensors++];
    t->name = name;
    t->size = size;
    t->offset = self->total;
    self->total += size;
}

static float *
s_param (ps_model_t *self, size_t i)
{
    return self->params + self->tensors[i].offset;
}

static float *
s_grad (ps_model_t *self, size_t i)
{
    return self->grads + self->tensors[i].offset;
}

static void
s_layout (ps_model_t *self)
{
    if (self->kind == PS_MODEL_SOFTMAX) {
        s_add_tensor (self, "softmax.W", self->inputs * self->classes);
        s_add_tensor (self, "softmax.b", self->classes);
    }
    else {
        s_add_tensor (self, "mlp.W1", self->inputs * self->hidden);
        s_add_tensor (self, "mlp.b1", self->hidden);
        s_add_tensor (self, "mlp.W2", self->hidden * self->classes);
        s_add_tensor (self, "mlp.b2", self->classes);
    }
}

static bool
s_sizes_valid (ps_model_kind_t kind, size_t inputs, size_t hidden, size_t classes)
{
    if (kind != PS_MODEL_SOFTMAX && kind != PS_MODEL_MLP)
        return false;
    if (inputs == 0 || inputs > MODEL_MAX_UNITS || classes == 0 || classes > 256)
        return false;
    if (kind == PS_MODEL_MLP && (hidden == 0 || hidden > MODEL_MAX_UNITS))
        return false;
    //  Each factor is below 2^20, so these products fit in 64 bits
    uint64_t wide = kind == PS_MODEL_MLP ? hidden : classes;
    uint64_t total = (uint64_t)inputs * wide + wide + (uint64_t)wide * classes + classes;
    return total <= INT_MAX;
}

ps_model_t *
ps_model_new (ps_model_kind_t kind, size_t inputs, size_t hidden, size_t classes, uint64_t seed)
{
    if (!s_sizes_valid (kind, inputs, hidden, classes))
        return NULL;
    ps_model_t *self = calloc (1, sizeof (*self));
    if (!self)
        return NULL;
    self->kind = kind;
    self->inputs = inputs;
    self->hidden = kind == PS_MODEL_MLP ? hidden : 0;
    self->classes = classes;
    s_layout (self);
    self->params = calloc (self->total, sizeof (float));
    self->grads = calloc (self->total, sizeof (float));
    if (!self->params || !self->grads) {
        ps_model_destroy (&self);
        return NULL;
    }
    if (kind == PS_MODEL_MLP) {
        uint64_t state = seed;
        s_init_uniform (s_param (self, 0), self->tensors[0].size, sqrtf (6.0f / (float)inputs),
                        &state);
        s_init_uniform (s_param (self, 2), self->tensors[2].size,
                        sqrtf (6.0f / (float)(hidden + classes)), &state);
    }
    return self;
}

void
ps_model_destroy (ps_model_t **self_p)
{
    assert (self_p);
    ps_model_t *self = *self_p;
    if (!self)
        return;
    free (self->params);
    free (self->grads);
    free (self->logits);
    free (self->act);
    free (self->dact);
    free (self);
    *self_p = NULL;
}

int
ps_model_kind_parse (const char *name, ps_model_kind_t *kind)
{
    assert (kind);
    if (name && strcmp (name, "softmax") == 0)
        *kind = PS_MODEL_SOFTMAX;
    else if (name && strcmp (name, "mlp") == 0)
        *kind = PS_MODEL_MLP;
    else
        return -1;
    return 0;
}

const char *
ps_model_kind_name (ps_model_kind_t kind)
{
    return kind == PS_MODEL_MLP ? "mlp" : "softmax";
}

ps_model_kind_t
ps_model_kind (const ps_model_t *self)
{
    assert (self);
    return self->kind;
}

size_t
ps_model_inputs (const ps_model_t *self)
{
    assert (self);
    return self->inputs;
}

size_t
ps_model_classes (const ps_model_t *self)
{
    assert (self);
    return self->classes;
}

size_t
ps_model_param_count (const ps_model_t *self)
{
    assert (self);
    return self->ntensors;
}

const char *
ps_model_param_name (const ps_model_t *self, size_t i)
{
    assert (self);
    assert (i < self->ntensors);
    return self->tensors[i].name;
}

size_t
ps_model_param_size (const ps_model_t *self, size_t i)
{
    assert (self);
    assert (i < self->ntensors);
    return self->tensors[i].size;
}

float *
ps_model_param (ps_model_t *self, size_t i)
{
    assert (self);
    assert (i < self->ntensors);
    return s_param (self, i);
}

float *
ps_model_grad (ps_model_t *self, size_t i)
{
    assert (self);
    assert (i < self->ntensors);
    return s_grad (self, i);
}

//  ---------------------------------------------------------------------
//  Passes

//  Make the scratch buffers hold at least rows rows. On failure the old
//  buffers stay as they were (a larger one is harmless) and -1 is returned.
static int
s_reserve (ps_model_t *self, size_t rows)
{
    if (rows <= self->capacity)
        return 0;
    if (rows > INT_MAX || rows > SIZE_MAX / sizeof (float) / self->classes ||
        (self->hidden && rows > SIZE_MAX / sizeof (float) / self->hidden))
        return -1;
    float *logits = realloc (self->logits, rows * self->classes * sizeof (float));
    if (!logits)
        return -1;
    self->logits = logits;
    if (self->hidden) {
        float *act = realloc (self->act, rows * self->hidden * sizeof (float));
        if (!act)
            return -1;
        self->act = act;
        float *dact = realloc (self->dact, rows * self->hidden * sizeof (float));
        if (!dact)
            return -1;
        self->dact = dact;
    }
    self->capacity = rows;
    return 0;
}

//  out (rows x cols) = in (rows x inner) W (inner x cols) + b
static void
s_affine (const float *in, size_t rows, size_t inner, const float *W, const float *b, size_t cols,
          float *out)
{
    for (size_t r = 0; r < rows; r++)
        memcpy (out + r * cols, b, cols * sizeof (float));
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)inner, 1.0f,
                 in, (int)inner, W, (int)cols, 1.0f, out, (int)cols);
}

//  Logits of rows examples into self->logits (and ReLU outputs into
//  self->act for the MLP); scratch must hold rows rows. hooks (may be
//  NULL) hear of each layer before its forward reads its parameters.
static void
s_forward_hooked (ps_model_t *self, const float *x, size_t rows, const ps_model_hooks_t *hooks)
{
    if (hooks && hooks->before_forward)
        hooks->before_forward (hooks->arg, 0);
    if (self->kind == PS_MODEL_SOFTMAX) {
        s_affine (x, rows, self->inputs, s_param (self, 0), s_param (self, 1), self->classes,
                  self->logits);
        return;
    }
    s_affine (x, rows, self->inputs, s_param (self, 0), s_param (self, 1), self->hidden, self->act);
    for (size_t i = 0; i < rows * self->hidden; i++)
        self->act[i] = self->act[i] > 0 ? self->act[i] : 0;
    if (hooks && hooks->before_forward)
        hooks->before_forward (hooks->arg, 1);
    s_affine (self->act, rows, self->hidden, s_param (self, 2), s_param (self, 3), self->classes,
              self->logits);
}

static void
s_forward (ps_model_t *self, const float *x, size_t rows)
{
    s_forward_hooked (self, x, rows, NULL);
}

//  Turn one row of logits into probabilities in place; returns log p[label]
static double
s_softmax_row (float *z, size_t classes, uint8_t label)
{
    assert (label < classes);
    float max = z[0];
    for (size_t c = 1; c < classes; c++)
        max = z[c] > max ? z[c] : max;
    double sum = 0;
    for (size_t c = 0; c < classes; c++)
        sum += exp ((double)z[c] - max);
    double log_p = ((double)z[label] - max) - log (sum);
    for (size_t c = 0; c < classes; c++)
        z[c] = (float)(exp ((double)z[c] - max) / sum);
    return log_p;
}

//  Softmax over self->logits; returns the summed loss of the rows
static double
s_softmax (ps_model_t *self, const uint8_t *y, size_t rows)
{
    double loss = 0;
    for (size_t r = 0; r < rows; r++)
        loss -= s_softmax_row (self->logits + r * self->classes, self->classes, y[r]);
    return loss;
}

//  grad W (inner x cols) = in^T dout; grad b = column sums of dout
static void
s_affine_backward (const float *in, size_t rows, size_t inner, const float *dout, size_t cols,
                   float *gW, float *gb)
{
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, (int)inner, (int)cols, (int)rows, 1.0f,
                 in, (int)inner, dout, (int)cols, 0.0f, gW, (int)cols);
    memset (gb, 0, cols * sizeof (float));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            gb[c] += dout[r * cols + c];
}

//  Backward pass from the probabilities in self->logits; hooks (may be
//  NULL) hear of each layer once its gradients are final, the last first
static void
s_backward (ps_model_t *self, const float *x, const uint8_t *y, size_t rows,
            const ps_model_hooks_t *hooks)
{
    bool hooked = hooks && hooks->after_backward;
    //  d mean loss / d logits = (p - onehot (y)) / rows
    float scale = 1.0f / (float)rows;
    float *dz = self->logits;
    for (size_t r = 0; r < rows; r++) {
        float *row = dz + r * self->classes;
        row[y[r]] -= 1.0f;
        for (size_t c = 0; c < self->classes; c++)
            row[c] *= scale;
    }
    if (self->kind == PS_MODEL_SOFTMAX) {
        s_affine_backward (x, rows, self->inputs, dz, self->classes, s_grad (self, 0),
                           s_grad (self, 1));
        if (hooked)
            hooks->after_backward (hooks->arg, 0);
        return;
    }
    s_affine_backward (self->act, rows, self->hidden, dz, self->classes, s_grad (self, 2),
                       s_grad (self, 3));
    if (hooked)
        hooks->after_backward (hooks->arg, 1);
    //  d act = dz W2^T, passed through the ReLU where it was active
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)self->hidden,
                 (int)self->classes, 1.0f, dz, (int)self->classes, s_param (self, 2),
                 (int)self->classes, 0.0f, self->dact, (int)self->hidden);
    for (size_t i = 0; i < rows * self->hidden; i++)
        if (self->act[i] <= 0)
            self->dact[i] = 0;
    s_affine_backward (x, rows, self->inputs, self->dact, self->hidden, s_grad (self, 0),
                       s_grad (self, 1));
    if (hooked)
        hooks->after_backward (hooks->arg, 0);
}

float
ps_model_gradient (ps_model_t *self, const float *x, const uint8_t *y, size_t batch)
{
    return ps_model_gradient_hooked (self, x, y, batch, NULL);
}

float
ps_model_gradient_hooked (ps_model_t *self, const float *x, const uint8_t *y, size_t batch,
                          const ps_model_hooks_t *hooks)
{
    assert (self);
    assert (x);
    assert (y);
    assert (batch > 0);
    if (s_reserve (self, batch))
        return NAN;
    s_forward_hooked (self, x, batch, hooks);
    double loss = s_softmax (self, y, batch);
    s_backward (self, x, y, batch, hooks);
    return (float)(loss / (double)batch);
}

size_t
ps_model_layer_count (const ps_model_t *self)
{
    assert (self);
    return self->kind == PS_MODEL_MLP ? 2 : 1;
}

void
ps_model_layer_params (const ps_model_t *self, size_t layer, size_t *first, size_t *count)
{
    assert (self);
    assert (layer < ps_model_layer_count (self));
    //  Every layer is a weight matrix and its bias, in tensor order
    *first = 2 * layer;
    *count = 2;
}

size_t
ps_model_total (const ps_model_t *self)
{
    assert (self);
    return self->total;
}

float *
ps_model_swap_params (ps_model_t *self, float *params)
{
    assert (self);
    assert (params);
    float *old = self->params;
    self->params = params;
    return old;
}

float *
ps_model_swap_grads (ps_model_t *self, float *grads)
{
    assert (self);
    assert (grads);
    float *old = self->grads;
    self->grads = grads;
    return old;
}

//  Rows per evaluation block: the scratch we have if it is bigger anyway
static size_t
s_eval_block (const ps_model_t *self, size_t n)
{
    size_t block = self->capacity > EVAL_BLOCK ? self->capacity : EVAL_BLOCK;
    return n < block ? n : block;
}

float
ps_model_loss (ps_model_t *self, const float *x, const uint8_t *y, size_t n)
{
    assert (self);
    assert (x);
    assert (y);
    assert (n > 0);
    size_t block = s_eval_block (self, n);
    if (s_reserve (self, block))
        return NAN;
    double loss = 0;
    for (size_t start = 0; start < n; start += block) {
        size_t rows = n - start < block ? n - start : block;
        s_forward (self, x + start * self->inputs, rows);
        loss += s_softmax (self, y + start, rows);
    }
    return (float)(loss / (double)n);
}

//  Index of the largest of n values, the first one on a tie
static size_t
s_argmax (const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

size_t
ps_model_correct (ps_model_t *self, const float *x, const uint8_t *y, size_t n)
{
    assert (self);
    assert (x || n == 0);
    assert (y || n == 0);
    if (n == 0)
        return 0;
    size_t block = s_eval_block (self, n);
    if (s_reserve (self, block))
        return SIZE_MAX;
    size_t correct = 0;
    for (size_t start = 0; start < n; start += block) {
        size_t rows = n - start < block ? n - start : block;
        s_forward (self, x + start * self->inputs, rows);
        for (size_t r = 0; r < rows; r++)
            if (s_argmax (self->logits + r * self->classes, self->classes) == y[start + r])
                correct++;
    }
    return correct;
}

void
ps_model_sgd_step (ps_model_t *self, float lr)
{
    assert (self);
    cblas_saxpy ((int)self->total, -lr, self->grads, 1, self->params, 1);
}
