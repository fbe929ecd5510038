/*  =========================================================================
    case_many - many tensors against one (see case_many.h)

    One worker on this thread against its own broker, as case_latency; the
    two models are separate keys of the same broker, timed in turns so
    that a machine that slows down or speeds up meanwhile weighs on both.
    ========================================================================= */

#include "case_many.h"
#include "bench_broker.h"
#include "bench_figure.h"
#include "bench_run.h"
#include "ps_worker.h"

#include <stdio.h>
#include <stdlib.h>

//  ResNet-50 has 161 parameter tensors; room for them
#define MANY_MAX_TENSORS 192
//  Timed steps per round, rounds per model
#define MANY_STEPS 5
#define MANY_ROUNDS 5

//  One conv's weights and its batch norm's weight and bias
static size_t
s_conv_bn (size_t *counts, size_t at, size_t max, size_t out, size_t in, size_t kernel)
{
    size_t sizes[3] = {out * in * kernel * kernel, out, out};
    for (size_t i = 0; i < 3 && at < max; i++)
        counts[at++] = sizes[i];
    return at;
}

size_t
case_many_resnet50 (size_t *counts, size_t max)
{
    static const size_t blocks[4] = {3, 4, 6, 3};
    size_t at = s_conv_bn (counts, 0, max, 64, 3, 7);
    size_t channels = 64;
    for (size_t stage = 0; stage < 4; stage++) {
        size_t width = (size_t)64 << stage;
        for (size_t block = 0; block < blocks[stage]; block++) {
            at = s_conv_bn (counts, at, max, width, channels, 1);
            at = s_conv_bn (counts, at, max, width, width, 3);
            at = s_conv_bn (counts, at, max, 4 * width, width, 1);
            if (block == 0)
                at = s_conv_bn (counts, at, max, 4 * width, channels, 1);
            channels = 4 * width;
        }
    }
    if (at < max)
        counts[at++] = 1000 * channels; //  fc.weight
    if (at < max)
        counts[at++] = 1000; //  fc.bias
    return at;
}

//  A model's tensors: gradients pushed, parameters pulled into
typedef struct {
    ps_tensor_t grads[MANY_MAX_TENSORS];
    ps_tensor_t params[MANY_MAX_TENSORS];
    char names[MANY_MAX_TENSORS][32];
    size_t ntensors;
} many_model_t;

//  counts[i] floats each (divided by shrink), keys prefix.i; false when
//  out of memory
static bool
s_model_new (many_model_t *self, const char *prefix, const size_t *counts, size_t n, size_t shrink)
{
    self->ntensors = n;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        size_t count = counts[i] / shrink ? counts[i] / shrink : 1;
        snprintf (self->names[i], sizeof self->names[i], "%s.%zu", prefix, i);
        float *grad = malloc (count * sizeof (float));
        float *param = calloc (count, sizeof (float));
        self->grads[i] = (ps_tensor_t){self->names[i], grad, count};
        self->params[i] = (ps_tensor_t){self->names[i], param, count};
        ok = ok && grad && param;
        for (size_t j = 0; grad && j < count; j++)
            grad[j] = 1e-6f * (float)(j % 1000);
    }
    return ok;
}

static void
s_model_free (many_model_t *self)
{
    for (size_t i = 0; i < self->ntensors; i++) {
        free (self->grads[i].data);
        free (self->params[i].data);
    }
}

//  Each of the model's keys made; PS_OK or the failure
static int
s_model_init (ps_worker_t *worker, const many_model_t *model)
{
    int status = PS_OK;
    for (size_t i = 0; status == PS_OK && i < model->ntensors; i++)
        status = ps_worker_init (worker, model->names[i], model->grads[i].count, NULL, NULL);
    return status;
}

//  steps push+pull steps of the whole model; seconds per step, or -1
static double
s_steps (ps_worker_t *worker, many_model_t *model, int steps)
{
    double start = bench_now ();
    for (int i = 0; i < steps; i++)
        if (ps_worker_push (worker, model->grads, model->ntensors, 1) != PS_OK ||
            ps_worker_pull (worker, model->params, model->ntensors) != PS_OK) {
            fprintf (stderr, "psbench: many: %s\n", ps_worker_error (worker));
            return -1;
        }
    return (bench_now () - start) / steps;
}

int
case_many (const bench_options_t *options, const bench_plan_t *plan, const bench_yardstick_t *yard)
{
    (void)plan;
    (void)yard;
    size_t counts[MANY_MAX_TENSORS];
    size_t n = case_many_resnet50 (counts, MANY_MAX_TENSORS);
    size_t shrink = options->quick ? 16 : 1;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += counts[i] / shrink ? counts[i] / shrink : 1;
    static many_model_t many, one;
    bool ok = s_model_new (&many, "resnet50", counts, n, shrink) &&
              s_model_new (&one, "one", &total, 1, 1);
    bench_broker_t broker;
    if (!ok || bench_broker_start (&broker, options, 1, -1, 0, 1)) {
        s_model_free (&many);
        s_model_free (&one);
        return 1;
    }
    int status;
    ps_worker_t *worker = bench_run_connect (options, broker.endpoint, &status);
    ok = worker && s_model_init (worker, &many) == PS_OK && s_model_init (worker, &one) == PS_OK;
    //  A warm-up step of each, then rounds in turns
    ok = ok && s_steps (worker, &many, 1) > 0 && s_steps (worker, &one, 1) > 0;
    int rounds = options->quick ? 1 : MANY_ROUNDS, steps = options->quick ? 2 : MANY_STEPS;
    double many_ms[MANY_ROUNDS], one_ms[MANY_ROUNDS];
    for (int round = 0; ok && round < rounds; round++) {
        many_ms[round] = s_steps (worker, &many, steps) * 1000;
        one_ms[round] = s_steps (worker, &one, steps) * 1000;
        ok = many_ms[round] > 0 && one_ms[round] > 0;
    }
    if (worker)
        ps_worker_close (&worker);
    bench_broker_stop (&broker);
    s_model_free (&many);
    s_model_free (&one);
    if (!ok) {
        fprintf (stderr, "psbench: many failed\n");
        return 1;
    }
    double many_median = bench_quantile (many_ms, (size_t)rounds, 0.5);
    double one_median = bench_quantile (one_ms, (size_t)rounds, 0.5);
    bench_figure ("many_resnet50", many_median, "ms");
    bench_figure ("many_resnet50.tensors", (double)n, "tensors");
    bench_figure ("many_resnet50.floats", (double)total, "floats");
    bench_figure ("many_one", one_median, "ms");
    bench_figure ("many_resnet50.vs_one", many_median / one_median, "x");
    fflush (stdout);
    return 0;
}
