/*  =========================================================================
    test_model - ps_model: training, gradients checked against finite
    differences, evaluation

    Gradient checks use small sizes (20 inputs, 7 hidden, batch 5) and
    random parameters, and compare each analytic gradient coordinate with a
    central difference of ps_model_loss. For the MLP a perturbation that
    moves some hidden pre-activation across zero makes the difference
    meaningless (the loss has a kink there), so the test computes the
    pre-activations itself and skips such coordinates, and requires that
    most coordinates were checked. The first test is the usage example.

    usage: build/test_model [--filter 'model/<test>'] [--verbose]
    ========================================================================= */

#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ps_data.h"
#include "ps_model.h"

Test (model, train_softmax_on_synthetic_data)
{
    ps_dataset_t *train = ps_data_synthetic (10000, 7, true);
    ps_dataset_t *test = ps_data_synthetic (2000, 7, false);
    cr_assert (train && test);
    ps_model_t *model = ps_model_new (PS_MODEL_SOFTMAX, train->dim, 0, train->classes, 7);
    cr_assert_not_null (model);

    size_t batch = 32;
    float first = 0, last = 0;
    for (int epoch = 0; epoch < 2; epoch++)
        for (size_t start = 0; start + batch <= train->n; start += batch) {
            float loss =
                ps_model_gradient (model, train->x + start * train->dim, train->y + start, batch);
            ps_model_sgd_step (model, 0.1f);
            if (epoch == 0 && start == 0)
                first = loss;
            last = loss;
        }
    size_t correct = ps_model_correct (model, test->x, test->y, test->n);
    double accuracy = (double)correct / (double)test->n;
    cr_assert_gt (accuracy, 0.8, "test accuracy %.3f", accuracy);
    cr_assert_lt (last, first);
    cr_assert_lt (ps_model_loss (model, test->x, test->y, test->n), 1.0f);

    ps_model_destroy (&model);
    cr_assert_null (model);
    ps_dataset_destroy (&train);
    ps_dataset_destroy (&test);
}

Test (model, train_mlp_on_synthetic_data)
{
    ps_dataset_t *train = ps_data_synthetic (10000, 8, true);
    ps_dataset_t *test = ps_data_synthetic (2000, 8, false);
    ps_model_t *model = ps_model_new (PS_MODEL_MLP, train->dim, 32, train->classes, 8);
    cr_assert_not_null (model);
    for (size_t start = 0; start + 32 <= train->n; start += 32) {
        ps_model_gradient (model, train->x + start * train->dim, train->y + start, 32);
        ps_model_sgd_step (model, 0.1f);
    }
    double accuracy = (double)ps_model_correct (model, test->x, test->y, test->n) / (double)test->n;
    cr_assert_gt (accuracy, 0.8, "test accuracy %.3f", accuracy);
    ps_model_destroy (&model);
    ps_dataset_destroy (&train);
    ps_dataset_destroy (&test);
}

Test (model, parameters_are_named_tensors)
{
    ps_model_t *softmax = ps_model_new (PS_MODEL_SOFTMAX, 784, 0, 10, 1);
    cr_assert_eq (ps_model_param_count (softmax), 2);
    cr_assert_str_eq (ps_model_param_name (softmax, 0), "softmax.W");
    cr_assert_eq (ps_model_param_size (softmax, 0), 7840);
    cr_assert_str_eq (ps_model_param_name (softmax, 1), "softmax.b");
    cr_assert_eq (ps_model_param_size (softmax, 1), 10);

    ps_model_t *mlp = ps_model_new (PS_MODEL_MLP, 784, 64, 10, 1);
    const char *names[] = {"mlp.W1", "mlp.b1", "mlp.W2", "mlp.b2"};
    size_t sizes[] = {784 * 64, 64, 64 * 10, 10};
    cr_assert_eq (ps_model_param_count (mlp), 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq (ps_model_param_name (mlp, i), names[i]);
        cr_assert_eq (ps_model_param_size (mlp, i), sizes[i]);
        cr_assert_neq (ps_model_param (mlp, i), ps_model_grad (mlp, i));
    }
    //  He-uniform W1: nonzero, inside sqrt (6 / 784); biases zero
    float limit = sqrtf (6.0f / 784), *w1 = ps_model_param (mlp, 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < sizes[0]; i++) {
        cr_assert_leq (fabsf (w1[i]), limit);
        nonzero += w1[i] != 0;
    }
    cr_assert_gt (nonzero, sizes[0] * 99 / 100);
    for (size_t i = 0; i < 64; i++)
        cr_assert_eq (ps_model_param (mlp, 1)[i], 0);

    //  The same seed gives the same weights, another seed others
    ps_model_t *same = ps_model_new (PS_MODEL_MLP, 784, 64, 10, 1);
    ps_model_t *other = ps_model_new (PS_MODEL_MLP, 784, 64, 10, 2);
    cr_assert_eq (memcmp (w1, ps_model_param (same, 0), sizes[0] * sizeof (float)), 0);
    cr_assert_neq (memcmp (w1, ps_model_param (other, 0), sizes[0] * sizeof (float)), 0);
    ps_model_destroy (&softmax);
    ps_model_destroy (&mlp);
    ps_model_destroy (&same);
    ps_model_destroy (&other);
}

Test (model, kind_names_and_bad_sizes)
{
    ps_model_kind_t kind;
    cr_assert_eq (ps_model_kind_parse ("softmax", &kind), 0);
    cr_assert_eq (kind, PS_MODEL_SOFTMAX);
    cr_assert_eq (ps_model_kind_parse ("mlp", &kind), 0);
    cr_assert_eq (kind, PS_MODEL_MLP);
    cr_assert_eq (ps_model_kind_parse ("cnn", &kind), -1);
    cr_assert_eq (ps_model_kind_parse ("", &kind), -1);
    cr_assert_eq (ps_model_kind_parse (NULL, &kind), -1);
    cr_assert_str_eq (ps_model_kind_name (PS_MODEL_MLP), "mlp");
    cr_assert_str_eq (ps_model_kind_name (PS_MODEL_SOFTMAX), "softmax");

    cr_assert_null (ps_model_new (PS_MODEL_MLP, 784, 0, 10, 1));
    cr_assert_null (ps_model_new (PS_MODEL_SOFTMAX, 0, 0, 10, 1));
    cr_assert_null (ps_model_new (PS_MODEL_SOFTMAX, 784, 0, 0, 1));
    cr_assert_null (ps_model_new (PS_MODEL_SOFTMAX, 784, 0, 257, 1));
    cr_assert_null (ps_model_new (PS_MODEL_MLP, SIZE_MAX, SIZE_MAX, 10, 1));
    cr_assert_null (ps_model_new ((ps_model_kind_t)7, 784, 10, 10, 1));
}

//  ---------------------------------------------------------------------
//  Gradient check

enum { GC_INPUTS = 20, GC_HIDDEN = 7, GC_CLASSES = 6, GC_BATCH = 5, GC_SAMPLES = 50 };

static uint64_t s_state = 12345;

static float
s_uniform (float lo, float hi)
{
    s_state = s_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)(s_state >> 40) / 16777216.0f;
}

//  Would changing parameter (tensor, index) by +-eps move a hidden
//  pre-activation across zero? Only W1 and b1 (tensors 0 and 1) can.
static bool
s_crosses_kink (ps_model_t *model, const float *x, size_t tensor, size_t index, float eps)
{
    if (ps_model_kind (model) != PS_MODEL_MLP || tensor > 1)
        return false;
    const float *W1 = ps_model_param (model, 0), *b1 = ps_model_param (model, 1);
    size_t unit = tensor == 0 ? index % GC_HIDDEN : index;
    for (size_t r = 0; r < GC_BATCH; r++) {
        double pre = b1[unit];
        for (size_t i = 0; i < GC_INPUTS; i++)
            pre += (double)x[r * GC_INPUTS + i] * W1[i * GC_HIDDEN + unit];
        double moves = tensor == 0 ? eps * fabsf (x[r * GC_INPUTS + index / GC_HIDDEN]) : eps;
        if (fabs (pre) <= 1.01 * moves)
            return true;
    }
    return false;
}

static void
s_gradient_check (ps_model_kind_t kind)
{
    ps_model_t *model = ps_model_new (kind, GC_INPUTS, GC_HIDDEN, GC_CLASSES, 3);
    cr_assert_not_null (model);
    //  Random parameters, biases included, so no gradient is trivially zero
    for (size_t t = 0; t < ps_model_param_count (model); t++)
        for (size_t i = 0; i < ps_model_param_size (model, t); i++)
            ps_model_param (model, t)[i] = s_uniform (-0.5f, 0.5f);
    float x[GC_BATCH * GC_INPUTS];
    uint8_t y[GC_BATCH];
    for (size_t i = 0; i < GC_BATCH * GC_INPUTS; i++)
        x[i] = s_uniform (-1, 1);
    for (size_t r = 0; r < GC_BATCH; r++)
        y[r] = (uint8_t)((r * 5) % GC_CLASSES);

    float loss = ps_model_gradient (model, x, y, GC_BATCH);
    cr_assert (isfinite (loss));
    cr_assert_float_eq (loss, ps_model_loss (model, x, y, GC_BATCH), 1e-6);

    const float eps = 1e-2f;
    for (size_t t = 0; t < ps_model_param_count (model); t++) {
        size_t size = ps_model_param_size (model, t);
        size_t samples = size < GC_SAMPLES ? size : GC_SAMPLES;
        size_t checked = 0;
        float *param = ps_model_param (model, t);
        const float *grad = ps_model_grad (model, t);
        for (size_t k = 0; k < samples; k++) {
            size_t i = k * size / samples;
            if (s_crosses_kink (model, x, t, i, eps))
                continue;
            float saved = param[i], plus = saved + eps, minus = saved - eps;
            param[i] = plus;
            double loss_plus = ps_model_loss (model, x, y, GC_BATCH);
            param[i] = minus;
            double loss_minus = ps_model_loss (model, x, y, GC_BATCH);
            param[i] = saved;
            double numeric = (loss_plus - loss_minus) / ((double)plus - minus);
            double tolerance = 1e-4 + 1e-2 * fmax (fabs (numeric), fabs (grad[i]));
            cr_assert_leq (fabs (numeric - grad[i]), tolerance,
                           "%s[%zu]: analytic %.6g numeric %.6g", ps_model_param_name (model, t), i,
                           grad[i], numeric);
            checked++;
        }
        cr_assert_geq (checked, samples * 8 / 10, "%s: only %zu of %zu checked",
                       ps_model_param_name (model, t), checked, samples);
    }
    ps_model_destroy (&model);
}

Test (model, softmax_gradient_matches_finite_differences)
{
    s_gradient_check (PS_MODEL_SOFTMAX);
}

Test (model, mlp_gradient_matches_finite_differences)
{
    s_gradient_check (PS_MODEL_MLP);
}

//  ---------------------------------------------------------------------

static void
s_loss_decreases (ps_model_kind_t kind)
{
    ps_dataset_t *set = ps_data_synthetic (64, 5, true);
    ps_model_t *model = ps_model_new (kind, set->dim, 16, set->classes, 5);
    float first = ps_model_gradient (model, set->x, set->y, set->n);
    float loss = first;
    for (int step = 0; step < 30; step++) {
        ps_model_sgd_step (model, 0.2f);
        loss = ps_model_gradient (model, set->x, set->y, set->n);
    }
    cr_assert_lt (loss, 0.5f * first, "%s: loss %g -> %g", ps_model_kind_name (kind), first, loss);
    cr_assert_float_eq (loss, ps_model_loss (model, set->x, set->y, set->n), 1e-5);
    ps_model_destroy (&model);
    ps_dataset_destroy (&set);
}

Test (model, sgd_lowers_the_loss_on_a_fixed_batch)
{
    s_loss_decreases (PS_MODEL_SOFTMAX);
    s_loss_decreases (PS_MODEL_MLP);
}

Test (model, sgd_step_moves_every_parameter)
{
    ps_dataset_t *set = ps_data_synthetic (16, 4, true);
    ps_model_t *model = ps_model_new (PS_MODEL_MLP, set->dim, 8, 10, 4);
    ps_model_gradient (model, set->x, set->y, set->n);
    size_t count = ps_model_param_count (model);
    float *before[4];
    for (size_t t = 0; t < count; t++) {
        size_t bytes = ps_model_param_size (model, t) * sizeof (float);
        before[t] = malloc (bytes);
        memcpy (before[t], ps_model_param (model, t), bytes);
    }
    ps_model_sgd_step (model, 0.5f);
    for (size_t t = 0; t < count; t++) {
        const float *param = ps_model_param (model, t), *grad = ps_model_grad (model, t);
        size_t moved = 0;
        for (size_t i = 0; i < ps_model_param_size (model, t); i++) {
            float expect = before[t][i] - 0.5f * grad[i];
            cr_assert_float_eq (param[i], expect, 1e-6f * (1 + fabsf (expect)), "%s[%zu]",
                                ps_model_param_name (model, t), i);
            moved += param[i] != before[t][i];
        }
        cr_assert_gt (moved, 0, "%s did not move", ps_model_param_name (model, t));
        free (before[t]);
    }
    ps_model_destroy (&model);
    ps_dataset_destroy (&set);
}

Test (model, batch_size_can_change)
{
    //  A model that has seen a big batch gives the same gradient on a small
    //  one as a fresh model: the grown scratch must not leak into results
    ps_dataset_t *set = ps_data_synthetic (600, 6, true);
    ps_model_t *fresh = ps_model_new (PS_MODEL_MLP, set->dim, 16, 10, 6);
    ps_model_t *grown = ps_model_new (PS_MODEL_MLP, set->dim, 16, 10, 6);
    float whole = ps_model_gradient (grown, set->x, set->y, 600);
    float a = ps_model_gradient (fresh, set->x, set->y, 8);
    float b = ps_model_gradient (grown, set->x, set->y, 8);
    cr_assert_float_eq (a, b, 1e-6f);
    for (size_t t = 0; t < 4; t++)
        for (size_t i = 0; i < ps_model_param_size (fresh, t); i++)
            cr_assert_float_eq (ps_model_grad (fresh, t)[i], ps_model_grad (grown, t)[i], 1e-6f,
                                "%s[%zu]", ps_model_param_name (fresh, t), i);
    //  The fresh model evaluates 600 examples in blocks, yet gets the loss
    //  the grown one computed in one batch
    cr_assert_float_eq (ps_model_loss (fresh, set->x, set->y, 600), whole, 1e-5f);
    ps_model_destroy (&fresh);
    ps_model_destroy (&grown);
    ps_dataset_destroy (&set);
}

Test (model, correct_counts_hand_made_cases)
{
    //  Softmax with W = identity and b = 0: the logits are the inputs
    ps_model_t *model = ps_model_new (PS_MODEL_SOFTMAX, 3, 0, 3, 1);
    float *W = ps_model_param (model, 0);
    W[0] = W[4] = W[8] = 1;
    const float x[] = {1, 0, 0, 0, 2, 1, 0, 0, 5, 3, 4, 0};
    const uint8_t y[] = {0, 1, 0, 1};
    cr_assert_eq (ps_model_correct (model, x, y, 4), 3);
    cr_assert_eq (ps_model_correct (model, x, y, 0), 0);
    //  A tie goes to the first class
    const float tie[] = {0, 2, 2, 0, 2, 2};
    const uint8_t tie_labels[] = {1, 1};
    cr_assert_eq (ps_model_correct (model, tie, tie_labels, 2), 2);

    //  Past one evaluation block: one example in four is mislabelled
    enum { N = 1000 };
    float *many = calloc (N * 3, sizeof (float));
    uint8_t labels[N];
    for (size_t i = 0; i < N; i++) {
        many[i * 3 + i % 3] = 1;
        labels[i] = (uint8_t)(i % 4 == 0 ? (i + 1) % 3 : i % 3);
    }
    cr_assert_eq (ps_model_correct (model, many, labels, N), 750);
    //  The bias can overrule the inputs: everything is now class 2
    ps_model_param (model, 1)[2] = 10;
    size_t class2 = 0;
    for (size_t i = 0; i < N; i++)
        class2 += labels[i] == 2;
    cr_assert_eq (ps_model_correct (model, many, labels, N), class2);
    free (many);
    ps_model_destroy (&model);
}

//  What the hooks of one pass heard, in order: 'f' then the layer before
//  a forward, 'b' then the layer after a backward
typedef struct {
    char heard[16];
    size_t n;
} hook_log_t;

static void
s_heard_forward (void *arg, size_t layer)
{
    hook_log_t *log = arg;
    log->heard[log->n++] = 'f';
    log->heard[log->n++] = (char)('0' + layer);
}

static void
s_heard_backward (void *arg, size_t layer)
{
    hook_log_t *log = arg;
    log->heard[log->n++] = 'b';
    log->heard[log->n++] = (char)('0' + layer);
}

Test (model, hooked_gradients_are_the_same_bits_and_hooks_come_in_layer_order)
{
    //  psworker overlaps the broker through the hooks and relies on both:
    //  the same bits as ps_model_gradient (BSP results must not change),
    //  and each layer announced when its forward needs its parameters and
    //  when backward is done with its gradients
    ps_dataset_t *data = ps_data_synthetic (64, 3, true);
    ps_model_kind_t kinds[] = {PS_MODEL_MLP, PS_MODEL_SOFTMAX};
    const char *expected[] = {"f0f1b1b0", "f0b0"};
    for (int k = 0; k < 2; k++) {
        ps_model_t *plain = ps_model_new (kinds[k], data->dim, 16, data->classes, 3);
        ps_model_t *hooked = ps_model_new (kinds[k], data->dim, 16, data->classes, 3);
        cr_assert_eq (ps_model_layer_count (plain), k == 0 ? 2u : 1u);
        hook_log_t log = {{0}, 0};
        ps_model_hooks_t hooks = {s_heard_forward, s_heard_backward, &log};
        for (int step = 0; step < 3; step++) {
            log.n = 0;
            float a = ps_model_gradient (plain, data->x, data->y, 32);
            float b = ps_model_gradient_hooked (hooked, data->x, data->y, 32, &hooks);
            cr_assert_eq (memcmp (&a, &b, sizeof a), 0, "loss %g against %g", a, b);
            for (size_t i = 0; i < ps_model_param_count (plain); i++)
                cr_assert_eq (memcmp (ps_model_grad (plain, i), ps_model_grad (hooked, i),
                                      ps_model_param_size (plain, i) * sizeof (float)),
                              0, "gradient %s differs", ps_model_param_name (plain, i));
            cr_assert_eq (log.n, strlen (expected[k]));
            cr_assert_eq (memcmp (log.heard, expected[k], log.n), 0, "heard %.*s", (int)log.n,
                          log.heard);
            ps_model_sgd_step (plain, 0.1f);
            ps_model_sgd_step (hooked, 0.1f);
        }
        //  Each layer's tensors: a weight matrix and its bias, in order
        for (size_t layer = 0; layer < ps_model_layer_count (plain); layer++) {
            size_t first, count;
            ps_model_layer_params (plain, layer, &first, &count);
            cr_assert_eq (first, 2 * layer);
            cr_assert_eq (count, 2u);
        }
        ps_model_destroy (&plain);
        ps_model_destroy (&hooked);
    }
    ps_dataset_destroy (&data);
}

Test (model, swapped_arrays_become_the_parameters_and_gradients)
{
    //  The pull-ahead's hand-over: an array swapped in is what the model
    //  reads and writes from then on; the one swapped out is the caller's
    ps_model_t *model = ps_model_new (PS_MODEL_SOFTMAX, 4, 0, 3, 1);
    size_t total = ps_model_total (model);
    cr_assert_eq (total, 4 * 3 + 3u);
    float *mine = calloc (total, sizeof (float));
    for (size_t i = 0; i < total; i++)
        mine[i] = (float)i;
    float *old = ps_model_swap_params (model, mine);
    cr_assert_eq (ps_model_param (model, 0), mine);
    cr_assert_float_eq (ps_model_param (model, 1)[0], 12.0f, 0);
    float *grads = calloc (total, sizeof (float));
    float *old_grads = ps_model_swap_grads (model, grads);
    float x[4] = {1, 2, 3, 4};
    uint8_t y = 2;
    ps_model_gradient (model, x, &y, 1);
    cr_assert_eq (ps_model_grad (model, 0), grads);
    bool written = false;
    for (size_t i = 0; i < total; i++)
        written |= grads[i] != 0;
    cr_assert (written, "the gradient went elsewhere");
    //  The model frees what it holds at the end; the caller what it got back
    free (old);
    free (old_grads);
    ps_model_destroy (&model);
}
