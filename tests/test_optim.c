/*  =========================================================================
    test_optim - the update rules against numbers worked out by hand

    Every expected value below is a literal derived in the comment above
    it, not a second run of the same formula, so a wrong rule cannot agree
    with itself.

    usage: build/test_optim [--filter 'optim/<test>']
    ========================================================================= */

#include "ps_limits.h"
#include "ps_optim.h"
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  How near a result must come to the value worked out by hand: a few
//  float roundings, relative to the value (absolute below 1)
#define NEAR 2e-6f

static ps_optim_config_t
s_config (ps_optim_kind_t kind, float lr)
{
    ps_optim_config_t config;
    ps_optim_config_defaults (&config);
    config.kind = kind;
    config.lr = lr;
    return config;
}

Test (optim, sgd_usage)
{
    //  SGD with learning rate 0.1, two steps in place on three parameters
    ps_optim_config_t config;
    ps_optim_config_defaults (&config);
    config.lr = 0.1f;
    ps_problem_t problem = {0};
    cr_assert_eq (ps_optim_config_check (&config, &problem), 0, "%s", problem.message);
    cr_assert_eq (ps_optim_state_slots (config.kind), 0);

    float params[3] = {1, -2, 0.5f};
    const float grad[3] = {0.5f, 1, -2};
    //  p - 0.1 * g: 1 - 0.05, -2 - 0.1, 0.5 + 0.2
    ps_optim_apply (&config, params, params, grad, 1, NULL, NULL, 3, 1);
    ps_test_assert_near (params, (float[]){0.95f, -2.1f, 0.7f}, 3, NEAR, "step 1");
    ps_optim_apply (&config, params, params, grad, 1, NULL, NULL, 3, 2);
    ps_test_assert_near (params, (float[]){0.9f, -2.2f, 0.9f}, 3, NEAR, "step 2");
}

Test (optim, defaults)
{
    ps_optim_config_t config;
    ps_optim_config_defaults (&config);
    cr_assert_eq (config.kind, PS_OPTIM_SGD);
    cr_assert_float_eq (config.lr, 0.1f, 0);
    cr_assert_float_eq (config.momentum, 0.9f, 0);
    cr_assert_float_eq (config.beta1, 0.9f, 0);
    cr_assert_float_eq (config.beta2, 0.999f, 0);
    cr_assert_float_eq (config.eps, 1e-8f, 0);
}

Test (optim, momentum_two_steps)
{
    ps_optim_config_t config = s_config (PS_OPTIM_MOMENTUM, 0.1f);
    config.momentum = 0.9f;
    cr_assert_eq (ps_optim_state_slots (config.kind), 1);
    float params[2] = {1, -2};
    float velocity[2] = {0, 0};
    //  v = g = (1, -0.5); p = (1 - 0.1, -2 + 0.05)
    ps_optim_apply (&config, params, params, (float[]){1, -0.5f}, 1, velocity, NULL, 2, 1);
    ps_test_assert_near (velocity, (float[]){1, -0.5f}, 2, NEAR, "velocity 1");
    ps_test_assert_near (params, (float[]){0.9f, -1.95f}, 2, NEAR, "step 1");
    //  g = (-2, 0.5): v = (0.9 - 2, -0.45 + 0.5) = (-1.1, 0.05)
    //  p = (0.9 + 0.11, -1.95 - 0.005)
    ps_optim_apply (&config, params, params, (float[]){-2, 0.5f}, 1, velocity, NULL, 2, 2);
    ps_test_assert_near (velocity, (float[]){-1.1f, 0.05f}, 2, NEAR, "velocity 2");
    ps_test_assert_near (params, (float[]){1.01f, -1.955f}, 2, NEAR, "step 2");
}

Test (optim, adagrad_two_steps)
{
    ps_optim_config_t config = s_config (PS_OPTIM_ADAGRAD, 0.1f);
    cr_assert_eq (ps_optim_state_slots (config.kind), 1);
    float params[2] = {1, -1};
    float history[2] = {0, 0};
    //  g = (3, -4): h = (9, 16), p -= 0.1 * g / sqrt (h) = (0.1, -0.1)
    ps_optim_apply (&config, params, params, (float[]){3, -4}, 1, history, NULL, 2, 1);
    ps_test_assert_near (history, (float[]){9, 16}, 2, NEAR, "history 1");
    ps_test_assert_near (params, (float[]){0.9f, -0.9f}, 2, NEAR, "step 1");
    //  g = (4, -3): h = (25, 25), p -= (0.1 * 4 / 5, 0.1 * -3 / 5) = (0.08, -0.06)
    ps_optim_apply (&config, params, params, (float[]){4, -3}, 1, history, NULL, 2, 2);
    ps_test_assert_near (history, (float[]){25, 25}, 2, NEAR, "history 2");
    ps_test_assert_near (params, (float[]){0.82f, -0.84f}, 2, NEAR, "step 2");
}

Test (optim, adam_two_steps_with_bias_correction)
{
    ps_optim_config_t config = s_config (PS_OPTIM_ADAM, 0.1f);
    config.beta1 = 0.9f;
    config.beta2 = 0.999f;
    config.eps = 1e-8f;
    cr_assert_eq (ps_optim_state_slots (config.kind), 2);
    float params[2] = {1, -0.5f};
    float m[2] = {0, 0}, v[2] = {0, 0};
    //  g = (2, 0.5): m = 0.1 g = (0.2, 0.05), v = 0.001 g^2 = (0.004, 0.00025).
    //  Corrected, m / 0.1 = g and v / 0.001 = g^2, so p -= 0.1 * g / |g|.
    //  (Without the correction p would move by 0.1 * 0.2 / sqrt (0.004) = 0.316.)
    ps_optim_apply (&config, params, params, (float[]){2, 0.5f}, 1, m, v, 2, 1);
    ps_test_assert_near (m, (float[]){0.2f, 0.05f}, 2, NEAR, "m 1");
    ps_test_assert_near (v, (float[]){0.004f, 0.00025f}, 2, NEAR, "v 1");
    ps_test_assert_near (params, (float[]){0.9f, -0.6f}, 2, NEAR, "step 1");
    //  g = (-1, 0.5):
    //  m = (0.18 - 0.1, 0.045 + 0.05) = (0.08, 0.095)
    //  v = (0.003996 + 0.001, 0.00024975 + 0.00025) = (0.004996, 0.00049975)
    //  1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
    //  p0: m^ = 0.08 / 0.19 = 0.421052632, v^ = 0.004996 / 0.001999 = 2.49924962,
    //      sqrt = 1.58090152, p = 0.9 - 0.1 * 0.421052632 / 1.58090152 = 0.873366297
    //  p1: m^ = 0.5, v^ = 0.25, p = -0.6 - 0.1 * 0.5 / 0.5 = -0.7
    ps_optim_apply (&config, params, params, (float[]){-1, 0.5f}, 1, m, v, 2, 2);
    ps_test_assert_near (m, (float[]){0.08f, 0.095f}, 2, NEAR, "m 2");
    ps_test_assert_near (v, (float[]){0.004996f, 0.00049975f}, 2, NEAR, "v 2");
    ps_test_assert_near (params, (float[]){0.873366297f, -0.7f}, 2, NEAR, "step 2");
}

Test (optim, scale_multiplies_the_gradient)
{
    //  SGD: grad 2 at scale 0.5 is gradient 1: 1 - 0.1 * 1
    ps_optim_config_t sgd = s_config (PS_OPTIM_SGD, 0.1f);
    float param = 1;
    ps_optim_apply (&sgd, &param, &param, (float[]){2}, 0.5f, NULL, NULL, 1, 1);
    cr_assert_float_eq (param, 0.9f, 1e-6f);

    //  Every rule: 4 g at scale 0.25 is g, for parameters and state alike
    //  (Adam's step barely depends on the gradient's scale; its m and v do)
    for (int kind = PS_OPTIM_SGD; kind <= PS_OPTIM_ADAM; kind++) {
        ps_optim_config_t config = s_config (kind, 0.1f);
        const float grad[3] = {0.3f, -1.5f, 2};
        const float grad4[3] = {1.2f, -6, 8};
        float a[3] = {1, 2, 3}, a0[3] = {0}, a1[3] = {0};
        float b[3] = {1, 2, 3}, b0[3] = {0}, b1[3] = {0};
        for (uint64_t step = 1; step <= 2; step++) {
            ps_optim_apply (&config, a, a, grad, 1, a0, a1, 3, step);
            ps_optim_apply (&config, b, b, grad4, 0.25f, b0, b1, 3, step);
        }
        const char *name = ps_optim_kind_name (kind);
        ps_test_assert_near (b, a, 3, NEAR, name);
        ps_test_assert_near (b0, a0, 3, NEAR, name);
        ps_test_assert_near (b1, a1, 3, NEAR, name);
    }
}

Test (optim, in_place_equals_out_of_place)
{
    //  37 elements: several vector widths plus a remainder
    enum { N = 37 };
    for (int kind = PS_OPTIM_SGD; kind <= PS_OPTIM_ADAM; kind++) {
        ps_optim_config_t config = s_config (kind, 0.05f);
        float start[N], grad[N];
        for (int i = 0; i < N; i++) {
            start[i] = (float)(i - 18) / 7;
            grad[i] = (float)((i * 13) % 11 - 5) / 3;
        }
        float inplace[N], in[N], out[N], before[N];
        float s0[N] = {0}, s1[N] = {0}, t0[N] = {0}, t1[N] = {0};
        memcpy (inplace, start, sizeof start);
        memcpy (in, start, sizeof start);
        for (uint64_t step = 1; step <= 3; step++) {
            ps_optim_apply (&config, inplace, inplace, grad, 0.5f, s0, s1, N, step);
            memcpy (before, in, sizeof in);
            ps_optim_apply (&config, out, in, grad, 0.5f, t0, t1, N, step);
            cr_assert_eq (memcmp (in, before, sizeof in), 0, "in was written");
            memcpy (in, out, sizeof out);
        }
        const char *name = ps_optim_kind_name (kind);
        cr_assert_eq (memcmp (inplace, out, sizeof out), 0, "%s: params differ", name);
        cr_assert_eq (memcmp (s0, t0, sizeof s0), 0, "%s: state0 differs", name);
        cr_assert_eq (memcmp (s1, t1, sizeof s1), 0, "%s: state1 differs", name);
        cr_assert_neq (memcmp (out, start, sizeof out), 0, "%s: nothing moved", name);
    }
}

Test (optim, out_of_place_leaves_in_alone)
{
    ps_optim_config_t config = s_config (PS_OPTIM_MOMENTUM, 0.1f);
    const float in[2] = {1, 2};
    float out[2] = {0, 0}, velocity[2] = {0, 0};
    ps_optim_apply (&config, out, in, (float[]){1, 1}, 1, velocity, NULL, 2, 1);
    ps_test_assert_near (out, (float[]){0.9f, 1.9f}, 2, NEAR, "out");
    ps_test_assert_near (in, (float[]){1, 2}, 2, NEAR, "in");
}

//  The check fails and its message contains expected
static void
s_assert_rejects (const ps_optim_config_t *config, const char *expected)
{
    ps_problem_t problem = {0};
    cr_assert_eq (ps_optim_config_check (config, &problem), -1, "accepted, expected '%s'",
                  expected);
    cr_assert (strstr (problem.message, expected), "message '%s' lacks '%s'", problem.message,
               expected);
}

Test (optim, config_check_names_the_bad_value)
{
    ps_optim_config_t config = s_config (PS_OPTIM_SGD, -1);
    ps_problem_t problem = {0};
    cr_assert_eq (ps_optim_config_check (&config, &problem), -1);
    cr_assert_str_eq (problem.message, "learning rate -1 must be > 0");
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_OPTIM);

    s_assert_rejects (&(ps_optim_config_t){PS_OPTIM_SGD, 0, 0, 0, 0, 0, 0}, "learning rate 0");
    config = s_config (PS_OPTIM_ADAM, NAN);
    s_assert_rejects (&config, "learning rate nan");
    config = s_config (PS_OPTIM_ADAGRAD, INFINITY);
    s_assert_rejects (&config, "learning rate inf");

    config = s_config (PS_OPTIM_MOMENTUM, 0.1f);
    config.momentum = 1;
    s_assert_rejects (&config, "momentum 1 must be in [0, 1)");
    config.momentum = -0.5f;
    s_assert_rejects (&config, "momentum -0.5");
    config.momentum = NAN;
    s_assert_rejects (&config, "momentum nan");

    config = s_config (PS_OPTIM_ADAM, 0.1f);
    config.beta1 = 1;
    s_assert_rejects (&config, "beta1 1");
    config = s_config (PS_OPTIM_ADAM, 0.1f);
    config.beta2 = 1.5f;
    s_assert_rejects (&config, "beta2 1.5");
    config = s_config (PS_OPTIM_ADAM, 0.1f);
    config.eps = -1;
    s_assert_rejects (&config, "eps -1");
    config = s_config (PS_OPTIM_ADAGRAD, 0.1f);
    config.eps = 0;
    s_assert_rejects (&config, "eps 0");
    config.eps = INFINITY;
    s_assert_rejects (&config, "eps inf");

    config = s_config (0, 0.1f);
    s_assert_rejects (&config, "kind 0");
    config = s_config (5, 0.1f);
    s_assert_rejects (&config, "kind 5");

    //  No message buffer is fine too
    cr_assert_eq (ps_optim_config_check (&config, NULL), -1);
}

Test (optim, config_check_accepts_good_values)
{
    for (int kind = PS_OPTIM_SGD; kind <= PS_OPTIM_ADAM; kind++) {
        ps_optim_config_t config = s_config (kind, 0.1f);
        ps_problem_t problem = {0};
        cr_assert_eq (ps_optim_config_check (&config, &problem), 0, "%s", problem.message);
    }
    //  Decays may be 0; fields a rule does not use are not checked (a
    //  config off the wire leaves them 0)
    ps_optim_config_t momentum = {PS_OPTIM_MOMENTUM, 0.1f, 0, 0, 0, 0, 0};
    cr_assert_eq (ps_optim_config_check (&momentum, NULL), 0);
    ps_optim_config_t adam = {PS_OPTIM_ADAM, 0.1f, 7, 0, 0, 1e-8f, 0};
    cr_assert_eq (ps_optim_config_check (&adam, NULL), 0);
    ps_optim_config_t sgd = {PS_OPTIM_SGD, 0.1f, 5, 2, 2, -1, 0};
    cr_assert_eq (ps_optim_config_check (&sgd, NULL), 0);
}

Test (optim, kind_names_round_trip)
{
    const char *names[] = {"sgd", "momentum", "adagrad", "adam"};
    for (int kind = PS_OPTIM_SGD; kind <= PS_OPTIM_ADAM; kind++) {
        cr_assert_str_eq (ps_optim_kind_name (kind), names[kind - 1]);
        ps_optim_kind_t parsed = 0;
        cr_assert_eq (ps_optim_kind_parse (names[kind - 1], &parsed), 0);
        cr_assert_eq (parsed, kind);
    }
    ps_optim_kind_t untouched = PS_OPTIM_ADAM;
    cr_assert_eq (ps_optim_kind_parse ("rmsprop", &untouched), -1);
    cr_assert_eq (ps_optim_kind_parse ("SGD", &untouched), -1);
    cr_assert_eq (ps_optim_kind_parse ("", &untouched), -1);
    cr_assert_eq (ps_optim_kind_parse (NULL, &untouched), -1);
    cr_assert_eq (untouched, PS_OPTIM_ADAM);
    cr_assert_str_eq (ps_optim_kind_name (0), "unknown");
    cr_assert_str_eq (ps_optim_kind_name (9), "unknown");
    cr_assert_eq (ps_optim_state_slots (PS_OPTIM_SGD), 0);
    cr_assert_eq (ps_optim_state_slots (0), 0);
}

Test (optim, cosine_decay_runs_decay_steps_steps_then_stops)
{
    //  lr 0.1 over 5 steps: step t uses 0.1 * (1 + cos (pi * (t-1) / 5)) / 2,
    //  cos (k pi / 5) for k = 0..4 being 1, 0.809017, 0.309017, -0.309017,
    //  -0.809017: 0.1, 0.0904508, 0.0654508, 0.0345492, 0.00954915, then 0
    ps_optim_config_t config = s_config (PS_OPTIM_SGD, 0.1f);
    config.decay_steps = 5;
    const float want[] = {0.1f, 0.0904508f, 0.0654508f, 0.0345492f, 0.00954915f, 0, 0};
    float got[7];
    for (uint64_t step = 1; step <= 7; step++)
        got[step - 1] = ps_optim_rate (&config, step);
    ps_test_assert_near (got, want, 7, NEAR, "rate");
    //  One decay step: the key's only step still learns, at lr
    config.decay_steps = 1;
    cr_assert_float_eq (ps_optim_rate (&config, 1), 0.1f, 1e-9);
    cr_assert_float_eq (ps_optim_rate (&config, 2), 0.0f, 1e-9);
}

Test (optim, compare_names_what_differs)
{
    ps_optim_config_t a = s_config (PS_OPTIM_ADAM, 0.001f);
    ps_optim_config_t b = a;
    char a_text[128], b_text[128];
    cr_assert_eq (ps_optim_config_compare (&a, &b, a_text, b_text, sizeof a_text), 0);
    cr_assert_str_eq (a_text, "");
    cr_assert_str_eq (b_text, "");
    b.lr = 0.01f;
    b.decay_steps = 100;
    cr_assert_eq (ps_optim_config_compare (&a, &b, a_text, b_text, sizeof a_text), -1);
    cr_assert_str_eq (a_text, "lr 0.001, decay_steps 0");
    cr_assert_str_eq (b_text, "lr 0.01, decay_steps 100");
    b = s_config (PS_OPTIM_SGD, 0.001f);
    cr_assert_eq (ps_optim_config_compare (&a, &b, NULL, NULL, 0), -1);
    cr_assert_eq (ps_optim_config_compare (&a, &b, a_text, b_text, sizeof a_text), -1);
    cr_assert_str_eq (a_text, "adam");
    cr_assert_str_eq (b_text, "sgd");
    //  Fields a rule does not use do not count
    ps_optim_config_t sgd = s_config (PS_OPTIM_SGD, 0.1f), other = sgd;
    other.beta1 = 0.5f;
    other.momentum = 0.7f;
    cr_assert_eq (ps_optim_config_compare (&sgd, &other, a_text, b_text, sizeof a_text), 0, "%s",
                  b_text);
}

Test (optim, first_nonfinite_finds_nan_and_infinities_anywhere)
{
    float values[1027];
    for (size_t i = 0; i < 1027; i++)
        values[i] = (float)i - 500.0f;
    values[3] = 3.4e38f; //  large but finite
    cr_assert_eq (ps_optim_first_nonfinite (values, 1027), 1027);
    cr_assert_eq (ps_optim_first_nonfinite (values, 0), 0);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const size_t where[] = {0, 17, 1026};
    for (size_t b = 0; b < 3; b++)
        for (size_t w = 0; w < 3; w++) {
            float saved = values[where[w]];
            values[where[w]] = bad[b];
            cr_assert_eq (ps_optim_first_nonfinite (values, 1027), where[w], "%g at %zu", bad[b],
                          where[w]);
            values[where[w]] = saved;
        }
    //  At any alignment: a received frame may start at an odd address
    unsigned char bytes[4 * 9 + 1];
    float nan = NAN;
    memset (bytes, 0, sizeof bytes);
    memcpy (bytes + 1 + 4 * 7, &nan, sizeof nan);
    cr_assert_eq (ps_optim_first_nonfinite (bytes + 1, 9), 7);
}

//  A run of a whole 1 MB part or more, out of place, is stepped with
//  stores that bypass the cache (ps_optim.c): the same values, bit for
//  bit, as the in-place loop, from any alignment of out, with a
//  non-finite gradient found in the unaligned head, the body and the tail
Test (optim, a_large_step_out_of_place_equals_the_in_place_one)
{
    size_t n = PS_CHUNK_BYTES / sizeof (float) + 7;
    float *start = malloc (n * sizeof (float)), *grad = malloc (n * sizeof (float));
    float *inplace = malloc (n * sizeof (float)), *out = malloc ((n + 3) * sizeof (float));
    cr_assert (start && grad && inplace && out);
    for (size_t i = 0; i < n; i++) {
        start[i] = (float)((i * 7) % 1001) / 77 - 6;
        grad[i] = (float)((i * 13) % 11) / 3 - 1.5f;
    }
    ps_optim_config_t config = s_config (PS_OPTIM_SGD, 0.05f);
    memcpy (inplace, start, n * sizeof (float));
    ps_optim_apply (&config, inplace, inplace, grad, 0.5f, NULL, NULL, n, 1);
    for (size_t shift = 0; shift < 4; shift++) {
        float *target = out + shift;
        memset (target, 0, n * sizeof (float));
        ps_optim_apply (&config, target, start, grad, 0.5f, NULL, NULL, n, 1);
        cr_assert_eq (memcmp (target, inplace, n * sizeof (float)), 0, "apply, out + %zu", shift);
        memset (target, 0, n * sizeof (float));
        cr_assert_eq (ps_optim_sgd_checked (&config, target, start, grad, 0.5f, n, 1), n);
        cr_assert_eq (memcmp (target, inplace, n * sizeof (float)), 0, "checked, out + %zu", shift);
        const size_t where[] = {1, n / 2 + 1, n - 2};
        for (size_t w = 0; w < 3; w++) {
            float saved = grad[where[w]];
            grad[where[w]] = w == 1 ? INFINITY : NAN;
            cr_assert_eq (ps_optim_sgd_checked (&config, target, start, grad, 0.5f, n, 1), where[w],
                          "non-finite at %zu, out + %zu", where[w], shift);
            grad[where[w]] = saved;
        }
    }
    free (start);
    free (grad);
    free (inplace);
    free (out);
}
