/*  =========================================================================
    test_store - the parameter store: keys, steps, pieces, BSP, versions

    Expected parameters are computed with ps_optim_apply on the test's own
    copies of the values and state, so these tests check what the store
    does around the rule (pieces, means, order, copy-on-write), while
    test_optim checks the rules themselves.

    usage: build/test_store [--filter 'store/<test>']
    ========================================================================= */

#include "ps_store.h"
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static float *
s_values (ps_key_t *key)
{
    return ps_buf_data (ps_key_current (key));
}

//  How near a result must come to the one computed here: float rounding,
//  relative to the value (absolute below 1)
#define NEAR 1e-6f

static ps_optim_config_t
s_config (ps_optim_kind_t kind)
{
    ps_optim_config_t config;
    ps_optim_config_defaults (&config);
    config.kind = kind;
    return config;
}

//  A new key that must succeed
static ps_key_t *
s_init (ps_store_t *store, const char *name, uint64_t size, const ps_optim_config_t *config)
{
    bool created = false;
    ps_problem_t problem = {0};
    int rc = ps_store_init (store, name, size, config, &created, &problem);
    cr_assert_eq (rc, 0, "init '%s': %s", name, problem.message);
    cr_assert (created);
    return ps_store_lookup (store, name);
}

Test (store, usage)
{
    //  A store whose keys use SGD with learning rate 0.5 unless INIT says
    ps_optim_config_t sgd;
    ps_optim_config_defaults (&sgd);
    sgd.lr = 0.5f;
    ps_store_t *store = ps_store_new (&sgd);
    cr_assert_not_null (store);

    //  INIT creates the key, zero-filled, version 1
    bool created = false;
    ps_problem_t problem;
    cr_assert_eq (ps_store_init (store, "layer1.w", 4, NULL, &created, &problem), 0);
    cr_assert (created);
    ps_key_t *key = ps_store_lookup (store, "layer1.w");
    cr_assert_not_null (key);
    cr_assert_str_eq (ps_key_name (key), "layer1.w");
    cr_assert_eq (ps_key_size (key), 4);
    cr_assert_eq (ps_key_version (key), 1);
    cr_assert_eq (ps_store_size (store), 1);
    ps_test_assert_near (s_values (key), (float[]){0, 0, 0, 0}, 4, NEAR, "zeros");

    //  The worker's initial values
    const float initial[4] = {1, 2, 3, 4};
    cr_assert_eq (ps_store_write (store, key, 0, initial, 4, &problem), 0);
    ps_test_assert_near (s_values (key), initial, 4, NEAR, "initial");

    //  One SSP step with the mean of two gradients summed by the worker:
    //  p - 0.5 * (g / 2)
    const float grad_sum[4] = {2, 0, -2, 4};
    ps_piece_t piece = {.data = grad_sum, .count = 4};
    cr_assert_eq (ps_store_apply (store, key, &piece, 1, 2, &problem), 0, "%s", problem.message);
    cr_assert_eq (ps_key_version (key), 2);
    ps_test_assert_near (s_values (key), (float[]){0.5f, 2, 3.5f, 3}, 4, NEAR, "after step");

    //  A reader keeps the version it read as long as it likes
    ps_buf_t *read = ps_buf_ref (ps_key_current (key));
    cr_assert_eq (ps_buf_count (read), 4);
    ps_buf_unref (&read);
    cr_assert_null (read);

    ps_store_destroy (&store);
    cr_assert_null (store);
    ps_store_destroy (&store);
}

Test (store, the_spare_is_pinned_while_someone_holds_the_previous_version)
{
    //  The aggregation thread waits for the ROUTER loop (ps_aggregator.h)
    //  only while the buffer the next step goes into has another holder
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t sgd = s_config (PS_OPTIM_SGD);
    ps_key_t *key = s_init (store, "w", 4, &sgd);
    ps_problem_t problem;
    const float grad[4] = {1, 1, 1, 1};
    ps_piece_t piece = {.data = grad, .count = 4};
    cr_assert_eq (ps_key_spare_pins (key), 0, "nobody but the store holds a version");
    ps_buf_t *reader = ps_buf_ref (ps_key_current (key));
    cr_assert_eq (ps_key_spare_pins (key), 0, "the current version is not the spare");
    cr_assert_eq (ps_store_apply (store, key, &piece, 1, 1, &problem), 0, "%s", problem.message);
    cr_assert_gt (ps_key_spare_pins (key), 0, "the version the reader holds is the spare now");
    ps_buf_unref (&reader);
    cr_assert_eq (ps_key_spare_pins (key), 0, "let go: the next step reuses it");
    ps_store_destroy (&store);
}

Test (store, apply_equals_the_rule_by_hand)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t adam = s_config (PS_OPTIM_ADAM);
    ps_key_t *key = s_init (store, "emb", 5, &adam);
    float mine[5] = {0.5f, -1, 2, 0, 3};
    float m[5] = {0}, v[5] = {0};
    ps_problem_t problem;
    cr_assert_eq (ps_store_write (store, key, 0, mine, 5, &problem), 0);
    const float grads[2][5] = {{1, -2, 3, 0.5f, -1}, {-3, 1, 0.25f, 2, 2}};
    for (int step = 0; step < 2; step++) {
        ps_piece_t piece = {.data = grads[step], .count = 5};
        cr_assert_eq (ps_store_apply (store, key, &piece, 1, 4, &problem), 0, "%s",
                      problem.message);
        ps_optim_apply (&adam, mine, mine, grads[step], 0.25f, m, v, 5, step + 1);
        ps_test_assert_near (s_values (key), mine, 5, NEAR, "params");
    }
    cr_assert_eq (ps_key_version (key), 3);
    ps_store_destroy (&store);
}

Test (store, pieces_equal_one_whole_piece)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t adam = s_config (PS_OPTIM_ADAM);
    ps_key_t *whole = s_init (store, "whole", 10, &adam);
    ps_key_t *split = s_init (store, "split", 10, &adam);
    float start[10], grad[10];
    for (int i = 0; i < 10; i++) {
        start[i] = (float)i / 3;
        grad[i] = (float)(i % 4) - 1.5f;
    }
    ps_problem_t problem;
    ps_store_write (store, whole, 0, start, 10, &problem);
    ps_store_write (store, split, 0, start, 10, &problem);
    //  Three uneven runs (and an empty one) at their running offsets
    ps_piece_t one[1] = {{.data = grad, .count = 10}};
    ps_piece_t runs[4] = {{.data = grad, .count = 3},
                          {.data = grad + 3, .count = 6},
                          {.data = grad + 9, .count = 0},
                          {.data = grad + 9, .count = 1}};
    for (int step = 0; step < 2; step++) {
        cr_assert_eq (ps_store_apply (store, whole, one, 1, 1, &problem), 0);
        cr_assert_eq (ps_store_apply (store, split, runs, 4, 1, &problem), 0, "%s",
                      problem.message);
    }
    cr_assert_eq (memcmp (s_values (whole), s_values (split), 10 * sizeof (float)), 0);
    cr_assert_neq (memcmp (s_values (split), start, sizeof start), 0);
    ps_store_destroy (&store);
}

Test (store, pieces_must_cover_the_key)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_key_t *key = s_init (store, "w", 10, NULL);
    float grad[12] = {0};
    ps_problem_t problem = {0};

    ps_piece_t short_runs[2] = {{.data = grad, .count = 4}, {.data = grad + 4, .count = 5}};
    cr_assert_eq (ps_store_apply (store, key, short_runs, 2, 1, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert (strstr (problem.message, "'w'") && strstr (problem.message, "9 of its 10"), "%s",
               problem.message);

    ps_piece_t long_runs[2] = {{.data = grad, .count = 4}, {.data = grad + 4, .count = 8}};
    problem.code = 0;
    cr_assert_eq (ps_store_apply (store, key, long_runs, 2, 1, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);

    problem.code = 0;
    cr_assert_eq (ps_store_apply (store, key, NULL, 0, 1, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);

    problem.code = 0;
    cr_assert_eq (ps_store_accumulate (store, key, 0, short_runs, 2, 1, true, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_eq (ps_store_pending (store), 0);

    //  A push claiming zero gradients has no mean
    ps_piece_t whole = {.data = grad, .count = 10};
    problem.code = 0;
    cr_assert_eq (ps_store_apply (store, key, &whole, 1, 0, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED);

    cr_assert_eq (ps_key_version (key), 1);
    ps_store_destroy (&store);
}

//  Counts updated () calls per key
typedef struct {
    int calls[3];
    ps_key_t *keys[3];
} updates_t;

static void
s_updated (ps_key_t *key, void *arg)
{
    updates_t *updates = arg;
    for (int i = 0; i < 3; i++)
        if (updates->keys[i] == key)
            updates->calls[i]++;
}

Test (store, bsp_flush_applies_the_mean_once)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t momentum = s_config (PS_OPTIM_MOMENTUM);
    ps_key_t *a = s_init (store, "a", 3, &momentum);
    ps_key_t *b = s_init (store, "b", 2, NULL);
    ps_key_t *idle = s_init (store, "idle", 2, NULL);
    ps_problem_t problem;

    //  Three workers push into clock 7 of a, in pieces; one push of two
    //  gradients summed goes to b
    const float g[3][3] = {{1, 2, 3}, {-2, 0.5f, 1}, {4, 4, -1}};
    for (int w = 0; w < 3; w++) {
        ps_piece_t runs[2] = {{.data = g[w], .count = 1}, {.data = g[w] + 1, .count = 2}};
        cr_assert_eq (ps_store_accumulate (store, a, 7, runs, 2, 1, true, &problem), 0, "%s",
                      problem.message);
    }
    ps_piece_t b_piece = {.data = (float[]){1, -1}, .count = 2};
    cr_assert_eq (ps_store_accumulate (store, b, 7, &b_piece, 1, 2, true, &problem), 0);
    cr_assert_eq (ps_store_pending (store), 5);
    cr_assert_eq (ps_key_version (a), 1, "accumulating does not step");

    updates_t updates = {{0}, {a, b, idle}};
    cr_assert_eq (ps_store_flush (store, 8, s_updated, &updates), 2);
    cr_assert_eq (updates.calls[0], 1);
    cr_assert_eq (updates.calls[1], 1);
    cr_assert_eq (updates.calls[2], 0);
    cr_assert_eq (ps_store_pending (store), 0);

    //  One step of a with the sum over 3 (the mean), from zeros
    float sum[3], want[3] = {0}, velocity[3] = {0};
    for (int i = 0; i < 3; i++)
        sum[i] = g[0][i] + g[1][i] + g[2][i];
    ps_optim_apply (&momentum, want, want, sum, 1.0f / 3, velocity, NULL, 3, 1);
    cr_assert_eq (ps_key_version (a), 2);
    ps_test_assert_near (s_values (a), want, 3, NEAR, "a");
    //  b: SGD lr 0.1 on the mean (0.5, -0.5)
    ps_test_assert_near (s_values (b), (float[]){-0.05f, 0.05f}, 2, NEAR, "b");

    //  Nothing left: a second flush does nothing
    cr_assert_eq (ps_store_flush (store, 8, s_updated, &updates), 0);
    cr_assert_eq (updates.calls[0], 1);

    //  The next clock starts a fresh sum, not one added to clock 7's
    ps_piece_t next = {.data = (float[]){3, 3, 3}, .count = 3};
    cr_assert_eq (ps_store_accumulate (store, a, 8, &next, 1, 1, true, &problem), 0);
    cr_assert_eq (ps_store_flush (store, 9, NULL, NULL), 1);
    ps_optim_apply (&momentum, want, want, (float[]){3, 3, 3}, 1, velocity, NULL, 3, 2);
    ps_test_assert_near (s_values (a), want, 3, NEAR, "a, clock 8");
    ps_store_destroy (&store);
}

Test (store, flush_applies_older_clocks_first)
{
    //  Momentum does not commute: steps g3 then g5 differ from g5 then g3
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t momentum = s_config (PS_OPTIM_MOMENTUM);
    ps_key_t *key = s_init (store, "w", 2, &momentum);
    const float g3[2] = {1, -1}, g5[2] = {-4, 2};
    ps_problem_t problem;
    //  The newer clock arrives first
    ps_piece_t p5 = {.data = g5, .count = 2}, p3 = {.data = g3, .count = 2};
    cr_assert_eq (ps_store_accumulate (store, key, 5, &p5, 1, 1, true, &problem), 0);
    cr_assert_eq (ps_store_accumulate (store, key, 3, &p3, 1, 1, true, &problem), 0);
    cr_assert_eq (ps_store_pending (store), 2);

    updates_t updates = {{0}, {key, NULL, NULL}};
    cr_assert_eq (ps_store_flush (store, 6, s_updated, &updates), 2);
    cr_assert_eq (updates.calls[0], 1, "one call after both steps");
    cr_assert_eq (ps_key_version (key), 3);

    float right[2] = {0}, rv[2] = {0}, wrong[2] = {0}, wv[2] = {0};
    ps_optim_apply (&momentum, right, right, g3, 1, rv, NULL, 2, 1);
    ps_optim_apply (&momentum, right, right, g5, 1, rv, NULL, 2, 2);
    ps_optim_apply (&momentum, wrong, wrong, g5, 1, wv, NULL, 2, 1);
    ps_optim_apply (&momentum, wrong, wrong, g3, 1, wv, NULL, 2, 2);
    cr_assert_neq (memcmp (right, wrong, sizeof right), 0);
    ps_test_assert_near (s_values (key), right, 2, NEAR, "w");
    ps_store_destroy (&store);
}

Test (store, flush_keeps_clocks_not_yet_due)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_key_t *key = s_init (store, "w", 1, NULL);
    ps_problem_t problem;
    ps_piece_t g = {.data = (float[]){1}, .count = 1};
    cr_assert_eq (ps_store_accumulate (store, key, 3, &g, 1, 1, true, &problem), 0);
    cr_assert_eq (ps_store_accumulate (store, key, 4, &g, 1, 2, true, &problem), 0);
    cr_assert_eq (ps_store_flush (store, 4, NULL, NULL), 1);
    cr_assert_eq (ps_store_pending (store), 2);
    cr_assert_eq (ps_key_version (key), 2);
    cr_assert_eq (ps_store_flush (store, 5, NULL, NULL), 1);
    cr_assert_eq (ps_store_pending (store), 0);
    //  SGD 0.1, mean 1 then mean 0.5
    ps_test_assert_near (s_values (key), (float[]){-0.15f}, 1, NEAR, "w");
    ps_store_destroy (&store);
}

Test (store, copy_on_write_and_spare_reuse)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_key_t *key = s_init (store, "w", 64, NULL);
    float grad[64];
    for (int i = 0; i < 64; i++)
        grad[i] = (float)i;
    ps_piece_t piece = {.data = grad, .count = 64};
    ps_problem_t problem;

    //  Nobody reads: two buffers take turns
    float *first = s_values (key);
    cr_assert_eq (ps_store_apply (store, key, &piece, 1, 1, &problem), 0);
    float *second = s_values (key);
    cr_assert_neq (second, first, "a step never writes the published version");

    //  A reader holds the second version through two more steps
    ps_buf_t *reader = ps_buf_ref (ps_key_current (key));
    float seen[64];
    memcpy (seen, ps_buf_data (reader), sizeof seen);
    cr_assert_eq (ps_store_apply (store, key, &piece, 1, 1, &problem), 0);
    cr_assert_eq (s_values (key), first, "the free spare is reused");
    cr_assert_eq (ps_store_apply (store, key, &piece, 1, 1, &problem), 0);
    float *third = s_values (key);
    cr_assert_neq (third, second, "the store did not write the reader's buffer");
    cr_assert_neq (third, first, "the store allocated a new buffer");
    cr_assert_eq (memcmp (ps_buf_data (reader), seen, sizeof seen), 0,
                  "the reader's version changed");
    cr_assert_eq (ps_key_version (key), 4);

    //  Once the reader is done the same two buffers take turns again
    ps_buf_unref (&reader);
    cr_assert_eq (ps_store_apply (store, key, &piece, 1, 1, &problem), 0);
    cr_assert_eq (s_values (key), first);
    cr_assert_eq (ps_store_apply (store, key, &piece, 1, 1, &problem), 0);
    cr_assert_eq (s_values (key), third);
    cr_assert_eq (ps_store_apply (store, key, &piece, 1, 1, &problem), 0);
    cr_assert_eq (s_values (key), first);
    //  Six SGD steps of 0.1 * g
    cr_assert_float_eq (s_values (key)[10], -6.0f, 1e-5f);
    cr_assert_eq (ps_key_version (key), 7);
    ps_store_destroy (&store);
}

Test (store, write_never_touches_a_read_version)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_key_t *key = s_init (store, "w", 3, NULL);
    ps_buf_t *reader = ps_buf_ref (ps_key_current (key));
    ps_problem_t problem;
    cr_assert_eq (ps_store_write (store, key, 1, (float[]){5, 6}, 2, &problem), 0);
    ps_test_assert_near (ps_buf_data (reader), (float[]){0, 0, 0}, 3, NEAR, "reader");
    ps_test_assert_near (s_values (key), (float[]){0, 5, 6}, 3, NEAR, "current");
    cr_assert_eq (ps_key_version (key), 2, "a new version for the new values");
    ps_buf_unref (&reader);

    problem.code = 0;
    cr_assert_eq (ps_store_write (store, key, 2, (float[]){1, 2}, 2, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_eq (ps_store_write (store, key, UINT64_MAX, (float[]){1}, 1, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE, "%s", problem.message);
    ps_store_destroy (&store);
}

Test (store, init_again)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_key_t *key = s_init (store, "w", 3, NULL);
    ps_problem_t problem = {0};
    ps_store_write (store, key, 0, (float[]){1, 2, 3}, 3, &problem);

    //  Same size: nothing happens, values stay
    bool created = true;
    cr_assert_eq (ps_store_init (store, "w", 3, NULL, &created, &problem), 0);
    cr_assert_not (created);
    cr_assert_eq (ps_store_lookup (store, "w"), key);
    ps_test_assert_near (s_values (key), (float[]){1, 2, 3}, 3, NEAR, "kept");
    cr_assert_eq (ps_store_size (store), 1);

    //  Another size: refused
    cr_assert_eq (ps_store_init (store, "w", 4, NULL, &created, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_KEY_EXISTS);
    cr_assert (strstr (problem.message, "'w'") && strstr (problem.message, "4"), "%s",
               problem.message);
    cr_assert_not (created);
    cr_assert_eq (ps_key_size (key), 3);
    ps_store_destroy (&store);
}

Test (store, bad_names_and_settings)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_problem_t problem = {0};
    bool created = true;
    cr_assert_eq (ps_store_init (store, "", 1, NULL, &created, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED);
    cr_assert_not (created);
    cr_assert_eq (ps_store_init (store, "two words", 1, NULL, NULL, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED);
    char long_name[PS_MAX_KEY_LEN + 2];
    memset (long_name, 'k', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    cr_assert_eq (ps_store_init (store, long_name, 1, NULL, NULL, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_TOO_LARGE, "%s", problem.message);

    ps_optim_config_t bad = s_config (PS_OPTIM_MOMENTUM);
    bad.lr = -1;
    cr_assert_eq (ps_store_init (store, "w", 1, &bad, NULL, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_OPTIM);
    cr_assert (strstr (problem.message, "learning rate -1"), "%s", problem.message);

    cr_assert_eq (ps_store_size (store), 0);
    cr_assert_null (ps_store_lookup (store, "w"));

    //  A store's defaults must be usable too
    bad.lr = 0.1f;
    bad.momentum = 1;
    cr_assert_null (ps_store_new (&bad));
    ps_store_destroy (&store);
}

Test (store, kind_zero_means_the_store_defaults)
{
    ps_optim_config_t momentum = s_config (PS_OPTIM_MOMENTUM);
    ps_store_t *store = ps_store_new (&momentum);
    ps_optim_config_t unset = {0};
    ps_key_t *key = s_init (store, "w", 1, &unset);
    ps_problem_t problem;
    ps_piece_t g = {.data = (float[]){1}, .count = 1};
    ps_store_apply (store, key, &g, 1, 1, &problem);
    ps_store_apply (store, key, &g, 1, 1, &problem);
    //  Momentum 0.9: v = 1 then 1.9; p = -0.1 - 0.19 (SGD would give -0.2)
    cr_assert_float_eq (s_values (key)[0], -0.29f, 1e-6f);
    ps_store_destroy (&store);
}

Test (store, limits)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_problem_t problem = {0};
    //  Adam keeps four arrays: 2^30 + 1 floats each pass 16 GiB
    ps_optim_config_t adam = s_config (PS_OPTIM_ADAM);
    cr_assert_eq (ps_store_init (store, "adam", (1ULL << 30) + 1, &adam, NULL, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_FULL, "%s", problem.message);
    //  SGD keeps two: 2^31 + 1 floats each
    problem.code = 0;
    cr_assert_eq (ps_store_init (store, "sgd", (1ULL << 31) + 1, NULL, NULL, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_FULL, "%s", problem.message);
    //  Past the largest tensor, and where the byte count would overflow
    problem.code = 0;
    cr_assert_eq (ps_store_init (store, "huge", PS_MAX_TENSOR_ELEMS + 1, NULL, NULL, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_TOO_LARGE);
    cr_assert_eq (ps_store_init (store, "max", UINT64_MAX, NULL, NULL, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_TOO_LARGE, "%s", problem.message);
    cr_assert_eq (ps_store_size (store), 0);

    //  PS_MAX_KEYS keys fit, one more does not
    char name[32];
    for (int i = 0; i < PS_MAX_KEYS; i++) {
        snprintf (name, sizeof name, "k%d", i);
        cr_assert_eq (ps_store_init (store, name, 1, NULL, NULL, &problem), 0, "%s: %s", name,
                      problem.message);
    }
    problem.code = 0;
    cr_assert_eq (ps_store_init (store, "one.more", 1, NULL, NULL, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_FULL);
    cr_assert_eq (ps_store_size (store), PS_MAX_KEYS);
    //  Existing keys are still found, and INIT of one is still a no-op
    cr_assert_not_null (ps_store_lookup (store, "k54321"));
    cr_assert_eq (ps_store_init (store, "k7", 1, NULL, NULL, &problem), 0);
    ps_store_destroy (&store);
}

//  A gradient holding a NaN or an infinity leaves the key as it was: no
//  new version under SGD (the check rides along the step) nor under Adam
//  (a pass before the state changes), and nothing in a BSP sum
Test (store, nonfinite_gradients_leave_the_key_unchanged)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t adam = s_config (PS_OPTIM_ADAM);
    ps_key_t *sgd = s_init (store, "sgd", 8, NULL);
    ps_key_t *moment = s_init (store, "adam", 8, &adam);
    float good[8] = {1, 1, 1, 1, 1, 1, 1, 1}, bad[8] = {1, 1, 1, 1, 1, 1, NAN, 1};
    ps_piece_t halves[2] = {{.data = good, .count = 4}, {.data = bad + 4, .count = 4}};
    ps_problem_t problem;
    ps_key_t *keys[2] = {sgd, moment};
    for (int k = 0; k < 2; k++) {
        uint64_t version = ps_key_version (keys[k]);
        cr_assert_eq (ps_store_apply (store, keys[k], halves, 2, 1, &problem), -1);
        cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_NONFINITE);
        cr_assert (strstr (problem.message, "element 6 is nan"), "%s", problem.message);
        cr_assert_eq (ps_key_version (keys[k]), version, "%s changed", ps_key_name (keys[k]));
        cr_assert_eq (s_values (keys[k])[0], 0.0f);
    }
    //  Adam's state was not touched: its first good step is its first step
    ps_piece_t whole = {.data = good, .count = 8};
    cr_assert_eq (ps_store_apply (store, moment, &whole, 1, 1, &problem), 0, "%s", problem.message);
    float want[8] = {0}, m[8] = {0}, v[8] = {0};
    ps_optim_apply (&adam, want, want, good, 1.0f, m, v, 8, 1);
    ps_test_assert_near (s_values (moment), want, 8, NEAR, "adam after one step");

    //  BSP: the clock's first gradient refused leaves no live sum; a later
    //  one refused at its second piece gives the first piece back
    cr_assert_eq (ps_store_accumulate (store, sgd, 0, halves, 2, 1, true, &problem), -1);
    cr_assert_eq (ps_store_pending (store), 0);
    cr_assert_eq (ps_store_accumulate (store, sgd, 0, &whole, 1, 1, true, &problem), 0);
    cr_assert_eq (ps_store_accumulate (store, sgd, 0, halves, 2, 1, true, &problem), -1);
    cr_assert_eq (ps_store_pending (store), 1);
    cr_assert_eq (ps_store_flush (store, 1, NULL, NULL), 1);
    //  The mean of the one gradient taken: 0 - 0.1 * 1 under the defaults
    ps_optim_config_t defaults = s_config (PS_OPTIM_SGD);
    cr_assert_float_eq (s_values (sgd)[0], -defaults.lr, 1e-7);
    cr_assert_float_eq (s_values (sgd)[7], -defaults.lr, 1e-7);
    //  Without the check, as psbroker --accept-nonfinite asks
    cr_assert_eq (ps_store_accumulate (store, sgd, 1, halves, 2, 1, false, &problem), 0);
    ps_store_destroy (&store);
}

//  BSP checks a gradient a block at a time as it sums it: a NaN deep in a
//  piece, after blocks already summed, gives back every float it added
Test (store, a_bsp_gradient_refused_deep_in_a_piece_leaves_the_sum_as_it_was)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t sgd = s_config (PS_OPTIM_SGD);
    sgd.lr = 1;
    const size_t size = 5 * 4096 + 7, first = 4096 + 3;
    ps_key_t *key = s_init (store, "w", size, &sgd);
    float *g = malloc (size * sizeof (float)), *bad = malloc (size * sizeof (float));
    for (size_t i = 0; i < size; i++)
        g[i] = bad[i] = (float)(i % 5) + 1;
    //  In the fourth block of the second piece (ps_store_bsp checks 4096
    //  floats at a time): three blocks of that piece are summed before it
    size_t at = first + 3 * 4096 + 11;
    bad[at] = INFINITY;
    ps_piece_t good[2] = {{.data = g, .count = first}, {.data = g + first, .count = size - first}};
    ps_piece_t refused[2] = {{.data = bad, .count = first},
                             {.data = bad + first, .count = size - first}};
    ps_problem_t problem = {0};
    cr_assert_eq (ps_store_accumulate (store, key, 0, good, 2, 1, true, &problem), 0, "%s",
                  problem.message);
    cr_assert_eq (ps_store_accumulate (store, key, 0, refused, 2, 1, true, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_NONFINITE);
    char element[64];
    snprintf (element, sizeof element, "element %zu is inf", at);
    cr_assert (strstr (problem.message, element), "%s", problem.message);
    cr_assert_eq (ps_store_accumulate (store, key, 0, good, 2, 1, true, &problem), 0, "%s",
                  problem.message);
    //  The mean of the two good ones, exactly: nothing of the refused one
    cr_assert_eq (ps_store_flush (store, 1, NULL, NULL), 1);
    float *values = s_values (key);
    for (size_t i = 0; i < size; i++)
        cr_assert_eq (values[i], -g[i], "element %zu: %g, not %g", i, values[i], -g[i]);
    free (g);
    free (bad);
    ps_store_destroy (&store);
}

//  A push of several keys is taken whole or not at all: staged steps are
//  published together, dropped together, and a BSP sum can give a push back
Test (store, stage_commit_drop_and_take_back)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_key_t *key = s_init (store, "k", 4, NULL);
    float grad[4] = {2, 2, 2, 2};
    ps_piece_t whole = {.data = grad, .count = 4};
    ps_problem_t problem;
    uint64_t version = ps_key_version (key);
    cr_assert_eq (ps_store_stage (store, key, &whole, 1, 1, true, &problem), 0);
    cr_assert_eq (ps_key_version (key), version, "a staged step is not visible");
    ps_store_drop (store, key);
    cr_assert_eq (ps_store_stage (store, key, &whole, 1, 1, true, &problem), 0);
    ps_store_commit (store, key);
    cr_assert_eq (ps_key_version (key), version + 1, "one step, not two");
    cr_assert_float_eq (s_values (key)[0], -0.2f, 1e-7);

    float one[4] = {1, 1, 1, 1};
    ps_piece_t first = {.data = one, .count = 4};
    cr_assert_eq (ps_store_accumulate (store, key, 3, &first, 1, 1, true, &problem), 0);
    cr_assert_eq (ps_store_accumulate (store, key, 3, &whole, 1, 1, true, &problem), 0);
    ps_store_unaccumulate (store, key, 3, &whole, 1, 1);
    cr_assert_eq (ps_store_pending (store), 1);
    ps_store_unaccumulate (store, key, 3, &first, 1, 1);
    cr_assert_eq (ps_store_pending (store), 0);
    ps_store_destroy (&store);
}

//  A step of every key of store with the same gradient, by name
static void
s_step_all (ps_store_t *store, const char *const *names, size_t n, const float *grad, size_t size)
{
    ps_piece_t piece = {.data = grad, .count = size};
    ps_problem_t problem;
    for (size_t i = 0; i < n; i++)
        cr_assert_eq (
            ps_store_apply (store, ps_store_lookup (store, names[i]), &piece, 1, 1, &problem), 0,
            "%s", problem.message);
}

Test (store, a_snapshot_restored_steps_on_bit_for_bit)
{
    //  Keys of each rule with state, and SGD with a decay schedule, a few
    //  steps in
    static const char *const names[] = {"sgd", "momentum", "adagrad", "adam"};
    ps_store_t *store = ps_store_new (NULL);
    for (size_t i = 0; i < 4; i++) {
        ps_optim_config_t config = s_config ((ps_optim_kind_t)(i + 1));
        config.decay_steps = 10;
        s_init (store, names[i], 8, &config);
    }
    float grad[8] = {0.5f, -1, 2, 0.25f, -0.125f, 3, -4, 1};
    for (int step = 0; step < 3; step++)
        s_step_all (store, names, 4, grad, 8);

    //  The snapshot holds the current versions by reference, the state by copy
    ps_checkpoint_t *checkpoint = ps_checkpoint_new (1);
    ps_problem_t problem;
    cr_assert_eq (ps_store_snapshot (store, checkpoint, &problem), 0, "%s", problem.message);
    cr_assert_eq (checkpoint->nkeys, 4);
    for (size_t i = 0; i < 4; i++) {
        ps_key_t *key = ps_store_lookup (store, checkpoint->keys[i].name);
        cr_assert_eq (checkpoint->keys[i].values, ps_key_current (key), "no copy of the values");
        cr_assert_eq (checkpoint->keys[i].steps, 3);
        cr_assert_eq (checkpoint->keys[i].version, ps_key_version (key));
    }

    //  The original steps on while a version the snapshot took is held
    //  (as the writer holds it): that version does not change
    ps_buf_t *held = ps_buf_ref (checkpoint->keys[3].values);
    float before[8];
    memcpy (before, ps_buf_data (held), sizeof before);
    ps_store_t *other = ps_store_new (NULL);
    cr_assert_eq (ps_store_restore (other, checkpoint, &problem), 0, "%s", problem.message);
    ps_checkpoint_destroy (&checkpoint);
    s_step_all (store, names, 4, grad, 8);
    s_step_all (store, names, 4, grad, 8);
    cr_assert_eq (memcmp (ps_buf_data (held), before, sizeof before), 0);
    ps_buf_unref (&held);
    //  The restored store takes the same two steps: the same values, bit
    //  for bit (Adam's moments and t, the decay's step came back)
    s_step_all (other, names, 4, grad, 8);
    s_step_all (other, names, 4, grad, 8);
    for (size_t i = 0; i < 4; i++) {
        ps_key_t *a = ps_store_lookup (store, names[i]), *b = ps_store_lookup (other, names[i]);
        cr_assert_not_null (b);
        cr_assert_eq (ps_key_version (a), ps_key_version (b), "%s", names[i]);
        cr_assert_eq (memcmp (s_values (a), s_values (b), sizeof grad), 0,
                      "%s: the restored key did not step as the original did", names[i]);
    }
    //  Restoring a key twice is refused
    checkpoint = ps_checkpoint_new (1);
    cr_assert_eq (ps_store_snapshot (other, checkpoint, &problem), 0);
    cr_assert_eq (ps_store_restore (other, checkpoint, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_KEY_EXISTS);
    ps_checkpoint_destroy (&checkpoint);
    ps_store_destroy (&store);
    ps_store_destroy (&other);
}

// ------------------------------------------------------------ parts

//  Floats in a chunk of PS_CHUNK_BYTES, and a key of two chunks and a half
#define CHUNK (PS_CHUNK_BYTES / 4)
#define PARTED (2 * CHUNK + CHUNK / 2)

//  Stage [from, to) of grad as one part, the NaN check done by the store
//  when check: its return code, and in *stepped whether it published
static int
s_stage_run (ps_store_t *store, ps_key_t *key, const float *grad, uint64_t from, uint64_t to,
             bool check, bool *stepped, ps_problem_t *problem)
{
    ps_piece_t piece = {.data = grad + from, .count = (size_t)(to - from)};
    return ps_store_stage_part (store, key, from, &piece, 1, 1, to == ps_key_size (key), check,
                                stepped, problem);
}

//  Step [from, to) of grad into key as one part; whether it published
static bool
s_part (ps_store_t *store, ps_key_t *key, const float *grad, uint64_t from, uint64_t to)
{
    bool stepped = false;
    ps_problem_t problem = {0};
    int rc = s_stage_run (store, key, grad, from, to, false, &stepped, &problem);
    cr_assert_eq (rc, 0, "part [%lu, %lu): %s", (unsigned long)from, (unsigned long)to,
                  problem.message);
    return stepped;
}

Test (store, interleaved_parts_of_two_pushes_step_as_the_pushes_do)
{
    //  SGD at rate 1: after a push of g the key holds -g. Two workers'
    //  pushes come in parts that interleave, cut inside chunks too
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t sgd = s_config (PS_OPTIM_SGD);
    sgd.lr = 1;
    ps_key_t *key = s_init (store, "w", PARTED, &sgd);
    float *a = malloc (PARTED * sizeof (float)), *b = malloc (PARTED * sizeof (float));
    for (size_t i = 0; i < PARTED; i++) {
        a[i] = (float)(i % 7);
        b[i] = (float)(i % 5) * 2;
    }
    uint64_t cut_a[] = {0, CHUNK, CHUNK + 1000, 2 * CHUNK, PARTED};
    uint64_t cut_b[] = {0, CHUNK / 3, 2 * CHUNK + 7, PARTED};
    cr_assert_not (s_part (store, key, a, cut_a[0], cut_a[1]));
    cr_assert_not (s_part (store, key, b, cut_b[0], cut_b[1]));
    cr_assert_not (s_part (store, key, a, cut_a[1], cut_a[2]));
    cr_assert_not (s_part (store, key, a, cut_a[2], cut_a[3]));
    cr_assert_not (s_part (store, key, b, cut_b[1], cut_b[2]));
    //  Nothing published before a push ends: readers see version 1
    cr_assert_eq (ps_key_version (key), 1);
    cr_assert_eq (s_values (key)[0], 0);
    //  A ends: the version holds all of A and what came of B
    cr_assert (s_part (store, key, a, cut_a[3], cut_a[4]));
    cr_assert_eq (ps_key_version (key), 2);
    float *values = s_values (key);
    for (size_t i = 0; i < PARTED; i++) {
        float want = -a[i] - (i < cut_b[2] ? b[i] : 0);
        cr_assert_eq (values[i], want, "element %zu: %g, not %g", i, values[i], want);
    }
    //  B ends: both whole
    cr_assert (s_part (store, key, b, cut_b[2], cut_b[3]));
    cr_assert_eq (ps_key_version (key), 3);
    values = s_values (key);
    for (size_t i = 0; i < PARTED; i++)
        cr_assert_eq (values[i], -a[i] - b[i], "element %zu", i);
    free (a);
    free (b);
    ps_store_destroy (&store);
}

Test (store, a_push_in_parts_steps_adam_once)
{
    //  The same gradient as one piece on one key and in three parts on
    //  another: the same values and state, one step each
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t adam = s_config (PS_OPTIM_ADAM);
    ps_key_t *whole = s_init (store, "whole", PARTED, &adam);
    ps_key_t *parted = s_init (store, "parted", PARTED, &adam);
    float *grad = malloc (PARTED * sizeof (float));
    for (size_t i = 0; i < PARTED; i++)
        grad[i] = (float)(i % 11) - 5;
    ps_problem_t problem;
    for (int step = 0; step < 2; step++) {
        ps_piece_t piece = {.data = grad, .count = PARTED};
        cr_assert_eq (ps_store_apply (store, whole, &piece, 1, 1, &problem), 0);
        cr_assert_not (s_part (store, parted, grad, 0, CHUNK));
        cr_assert_not (s_part (store, parted, grad, CHUNK, 2 * CHUNK));
        cr_assert (s_part (store, parted, grad, 2 * CHUNK, PARTED));
        cr_assert_eq (ps_key_version (parted), ps_key_version (whole));
        cr_assert_eq (memcmp (s_values (parted), s_values (whole), PARTED * sizeof (float)), 0,
                      "step %d", step);
    }
    free (grad);
    ps_store_destroy (&store);
}

//  Stage [from, to) of grad as one checked part: its return code
static int
s_checked_part (ps_store_t *store, ps_key_t *key, const float *grad, uint64_t from, uint64_t to,
                ps_problem_t *problem)
{
    bool stepped = false;
    return s_stage_run (store, key, grad, from, to, true, &stepped, problem);
}

Test (store, a_checked_part_holding_a_nan_is_not_stepped_at_all)
{
    //  SGD at rate 1. A run over clean whole chunks (the check rides along
    //  the step) and a run that starts inside a chunk (a pass of its own):
    //  each refused at a NaN in its last chunk, with nothing of it left
    //  in the next version
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t sgd = s_config (PS_OPTIM_SGD);
    sgd.lr = 1;
    ps_key_t *key = s_init (store, "w", PARTED, &sgd);
    float *g = malloc (PARTED * sizeof (float)), *bad = malloc (PARTED * sizeof (float));
    for (size_t i = 0; i < PARTED; i++)
        g[i] = bad[i] = (float)(i % 7) + 1;
    bad[2 * CHUNK + 3] = NAN;
    ps_problem_t problem = {0};

    cr_assert_eq (s_checked_part (store, key, bad, 0, PARTED, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_NONFINITE);
    char element[64];
    snprintf (element, sizeof element, "element %d is nan", 2 * CHUNK + 3);
    cr_assert (strstr (problem.message, element), "%s", problem.message);
    cr_assert_eq (ps_key_version (key), 1, "a refused run published");
    //  A clean push in parts: exactly its step, nothing of the refused one
    cr_assert_eq (s_checked_part (store, key, g, 0, CHUNK, &problem), 0, "%s", problem.message);
    cr_assert_eq (s_checked_part (store, key, g, CHUNK, PARTED, &problem), 0, "%s",
                  problem.message);
    cr_assert_eq (ps_key_version (key), 2);
    float *values = s_values (key);
    for (size_t i = 0; i < PARTED; i++)
        cr_assert_eq (values[i], -g[i], "element %zu: %g, not %g", i, values[i], -g[i]);

    //  A push whose first part ends inside a chunk: its second part
    //  holding a NaN is refused, and the first stays applied (PROTOCOL.md)
    cr_assert_eq (s_checked_part (store, key, g, 0, 10, &problem), 0, "%s", problem.message);
    cr_assert_eq (s_checked_part (store, key, bad, 10, PARTED, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_NONFINITE);
    cr_assert_eq (s_checked_part (store, key, g, 10, PARTED, &problem), 0, "%s", problem.message);
    values = s_values (key);
    for (size_t i = 0; i < PARTED; i++)
        cr_assert_eq (values[i], -2 * g[i], "element %zu: %g, not %g", i, values[i], -2 * g[i]);

    //  A part of one key in two frames that meet inside a chunk (a client
    //  may cut its frames anywhere), the NaN in that chunk's second frame
    ps_piece_t pieces[2] = {{.data = bad, .count = 2 * CHUNK + 1},
                            {.data = bad + 2 * CHUNK + 1, .count = PARTED - 2 * CHUNK - 1}};
    bool stepped = false;
    cr_assert_eq (ps_store_stage_part (store, key, 0, pieces, 2, 1, true, true, &stepped, &problem),
                  -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_NONFINITE);
    cr_assert (strstr (problem.message, element), "%s", problem.message);
    cr_assert_eq (s_checked_part (store, key, g, 0, PARTED, &problem), 0, "%s", problem.message);
    values = s_values (key);
    for (size_t i = 0; i < PARTED; i++)
        cr_assert_eq (values[i], -3 * g[i], "element %zu: %g, not %g", i, values[i], -3 * g[i]);
    free (g);
    free (bad);
    ps_store_destroy (&store);
}

Test (store, parts_out_of_the_key_are_refused)
{
    ps_store_t *store = ps_store_new (NULL);
    ps_key_t *key = s_init (store, "w", 10, NULL);
    float grad[10] = {0};
    ps_piece_t piece = {.data = grad, .count = 4};
    bool stepped;
    ps_problem_t problem;
    cr_assert_eq (
        ps_store_stage_part (store, key, 8, &piece, 1, 1, false, false, &stepped, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_eq (
        ps_store_stage_part (store, key, 0, &piece, 1, 1, true, false, &stepped, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_SIZE);
    cr_assert_eq (
        ps_store_stage_part (store, key, 0, &piece, 1, 0, false, false, &stepped, &problem), -1);
    cr_assert_eq (problem.code, PSMQ__ERR_CODE__ERR_MALFORMED);
    cr_assert_eq (ps_key_version (key), 1);
    ps_store_destroy (&store);
}

Test (store, bsp_parts_sum_as_whole_pushes)
{
    //  Two pushes of clock 0 summed in interleaved parts, a third whole:
    //  the flush takes their mean once
    ps_store_t *store = ps_store_new (NULL);
    ps_optim_config_t sgd = s_config (PS_OPTIM_SGD);
    sgd.lr = 1;
    ps_key_t *key = s_init (store, "w", PARTED, &sgd);
    float *g = malloc (3 * PARTED * sizeof (float));
    for (size_t i = 0; i < 3 * PARTED; i++)
        g[i] = (float)(i % 13);
    ps_problem_t problem;
    struct {
        int push;
        uint64_t from, to;
    } parts[] = {
        {0, 0, CHUNK}, {1, 0, 10}, {1, 10, 2 * CHUNK}, {0, CHUNK, PARTED}, {1, 2 * CHUNK, PARTED}};
    for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
        const float *grad = g + parts[p].push * PARTED;
        ps_piece_t piece = {.data = grad + parts[p].from,
                            .count = (size_t)(parts[p].to - parts[p].from)};
        cr_assert_eq (
            ps_store_accumulate_part (store, key, 0, parts[p].from, &piece, 1, 1, &problem), 0,
            "%s", problem.message);
    }
    ps_piece_t whole = {.data = g + 2 * PARTED, .count = PARTED};
    cr_assert_eq (ps_store_accumulate (store, key, 0, &whole, 1, 1, true, &problem), 0);
    cr_assert_eq (ps_store_pending (store), 3);
    cr_assert_eq (ps_store_flush (store, 1, NULL, NULL), 1);
    float *values = s_values (key);
    for (size_t i = 0; i < PARTED; i++) {
        float want = -(g[i] + g[PARTED + i] + g[2 * PARTED + i]) / 3;
        cr_assert_float_eq (values[i], want, 1e-5f, "element %zu", i);
    }
    free (g);
    ps_store_destroy (&store);
}
