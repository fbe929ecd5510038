/*  =========================================================================
    test_wire - bf16 and fp16 on the wire, end to end (ps_worker_init_wire,
    the broker's conversions at the edge, proto/PROTOCOL.md "Wire dtypes")

    A broker in this process on a loopback port; workers that INIT keys
    in BF16 or F16 push and pull float32 and get values within the bounds
    of common/ps_dtype.h of what float32 all the way gives. A key's dtype
    is refused in another, both at INIT and in pushes and pulls; a fp16
    overflow is refused as a non-finite gradient; a checkpoint keeps the
    dtype.

    usage: build/test_wire [--filter 'wire/<test>'] [--verbose]
    ========================================================================= */

#include "ps_dtype.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  SGD steps of w with grad at rate lr in float32, and the same through
//  a group of shards brokers with the key in wire; each result within
//  bound of the first
static void
s_steps_within (uint32_t shards, ps_wire_dtype_t wire, size_t size, float bound)
{
    char endpoints[256];
    ps_broker_t *brokers[4];
    cr_assert_leq (shards, 4);
    cr_assert_eq (ps_test_group (shards, 1, 0, brokers, endpoints, sizeof endpoints), 0);
    ps_worker_t *worker = ps_test_worker (endpoints, 0, 1, PS_TEST_WAIT_MS);
    float *initial = malloc (size * sizeof (float));
    float *grad = malloc (size * sizeof (float));
    float *got = malloc (size * sizeof (float));
    cr_assert (initial && grad && got);
    for (size_t i = 0; i < size; i++) {
        initial[i] = sinf ((float)i) * 3.0f;
        grad[i] = cosf ((float)i * 0.7f);
    }
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 0.5f};
    cr_assert_eq (ps_worker_init_wire (worker, "w", size, initial, &sgd, wire), PS_OK, "%s",
                  ps_worker_error (worker));
    cr_assert_eq (ps_worker_wire_dtype (worker, "w"), wire);
    //  Two steps, each version pulled twice (the broker's 16-bit copy is
    //  made once per version, its buffer reused for the next)
    for (int step = 1; step <= 2; step++) {
        ps_tensor_t tensor = {"w", grad, size};
        cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK, "%s",
                      ps_worker_error (worker));
        cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
        for (int pull = 0; pull < 2; pull++) {
            tensor.data = got;
            memset (got, 0, size * sizeof (float));
            cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK, "%s",
                          ps_worker_error (worker));
            //  The roundings: the initial value, each gradient, the value
            //  pulled
            for (size_t i = 0; i < size; i++) {
                float want = initial[i] - 0.5f * (float)step * grad[i];
                float scale =
                    fabsf (initial[i]) + 0.5f * (float)step * fabsf (grad[i]) + fabsf (want);
                cr_assert_leq (fabsf (got[i] - want), scale * bound,
                               "step %d: w[%zu] is %g, %g in float32", step, i, (double)got[i],
                               (double)want);
            }
        }
    }
    free (initial);
    free (grad);
    free (got);
    ps_worker_close (&worker);
    for (uint32_t shard = 0; shard < shards; shard++)
        ps_broker_destroy (&brokers[shard]);
}

Test (wire, usage_bf16_key)
{
    //  A key INITed in BF16: pushes and pulls carry half the bytes, the
    //  application still gives and gets float32
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    float initial[3] = {1, 2, 3};
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 0.5f};
    cr_assert_eq (ps_worker_init_wire (worker, "w", 3, initial, &sgd, PS_WIRE_BF16), PS_OK, "%s",
                  ps_worker_error (worker));
    float gradient[3] = {2, 4, -2};
    ps_tensor_t push = {"w", gradient, 3};
    cr_assert_eq (ps_worker_push (worker, &push, 1, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    float value[3] = {0};
    ps_tensor_t pull = {"w", value, 3};
    cr_assert_eq (ps_worker_pull (worker, &pull, 1), PS_OK, "%s", ps_worker_error (worker));
    //  These values are exact in bf16
    cr_assert_float_eq (value[0], 0.0f, 1e-6);
    cr_assert_float_eq (value[1], 0.0f, 1e-6);
    cr_assert_float_eq (value[2], 4.0f, 1e-6);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (wire, bf16_step_within_its_bound)
{
    s_steps_within (1, PS_WIRE_BF16, 1000, 0x1p-8f);
}

Test (wire, f16_step_within_its_bound)
{
    s_steps_within (1, PS_WIRE_F16, 1000, 0x1p-11f);
}

Test (wire, a_large_odd_key_in_many_slices)
{
    //  Several 1 MB slices each way, an odd count (the broker's 16-bit copy
    //  ends in half a float)
    s_steps_within (1, PS_WIRE_BF16, 3 * (1 << 18) + 7, 0x1p-8f);
    s_steps_within (1, PS_WIRE_F16, 3 * (1 << 18) + 7, 0x1p-11f);
}

Test (wire, a_group_of_brokers_each_converts_its_part)
{
    //  Each broker of a group holds a part of the key as a key of its own,
    //  INITed in the same dtype
    s_steps_within (3, PS_WIRE_BF16, 100003, 0x1p-8f);
}

Test (wire, another_dtype_is_refused_naming_the_key)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (2, -1, 0, endpoint, sizeof endpoint);
    ps_worker_t *owner = ps_test_worker (endpoint, 0, 2, PS_TEST_WAIT_MS);
    ps_worker_t *other = ps_test_worker (endpoint, 1, 2, PS_TEST_WAIT_MS);
    cr_assert_eq (ps_worker_init_wire (owner, "w", 4, NULL, NULL, PS_WIRE_BF16), PS_OK, "%s",
                  ps_worker_error (owner));
    //  INIT in another dtype: the key exists
    cr_assert_eq (ps_worker_init (other, "w", 4, NULL, NULL), PS_EKEY_EXISTS);
    cr_assert (strstr (ps_worker_error (other), "'w'") && strstr (ps_worker_error (other), "bf16"),
               "%s", ps_worker_error (other));
    cr_assert_eq (ps_worker_init_wire (other, "w", 4, NULL, NULL, PS_WIRE_F16), PS_EKEY_EXISTS);
    cr_assert_eq (ps_worker_wire_dtype (other, "w"), PS_WIRE_F32);
    //  A push and a pull in f32 of it (this worker never INITed it bf16)
    float values[4] = {1, 2, 3, 4};
    ps_tensor_t tensor = {"w", values, 4};
    cr_assert_eq (ps_worker_push (other, &tensor, 1, 1), PS_ESIZE);
    cr_assert (strstr (ps_worker_error (other), "push of key 'w' in f32"), "%s",
               ps_worker_error (other));
    cr_assert_eq (ps_worker_pull (other, &tensor, 1), PS_ESIZE);
    cr_assert (strstr (ps_worker_error (other), "pull of key 'w' in f32"), "%s",
               ps_worker_error (other));
    //  The same dtype is accepted again (idempotent INIT)
    cr_assert_eq (ps_worker_init_wire (other, "w", 4, NULL, NULL, PS_WIRE_BF16), PS_OK, "%s",
                  ps_worker_error (other));
    cr_assert_eq (ps_worker_pull (other, &tensor, 1), PS_OK, "%s", ps_worker_error (other));
    cr_assert_eq (values[0], 0.0f);
    cr_assert_eq (ps_worker_init_wire (other, "x", 4, NULL, NULL, (ps_wire_dtype_t)7), PS_EINVAL);
    ps_worker_close (&other);
    ps_worker_close (&owner);
    ps_broker_destroy (&broker);
}

//  A push of an f16 key whose gradient overflows fp16 is refused whole
//  by a broker at staleness with the key's rule (the BSP sum's check, the
//  SGD step's, and the pass of its own before a rule with state steps)
static void
s_overflow_refused (int32_t staleness, const ps_optim_settings_t *optim)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, staleness, 0, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    float initial[2] = {1, 2};
    cr_assert_eq (ps_worker_init_wire (worker, "h", 2, initial, optim, PS_WIRE_F16), PS_OK, "%s",
                  ps_worker_error (worker));
    //  70000 is past fp16's 65504: an infinity on the wire
    float gradient[2] = {0.5f, 70000.0f};
    ps_tensor_t tensor = {"h", gradient, 2};
    cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (ps_worker_clock (worker), PS_ENONFINITE);
    cr_assert (strstr (ps_worker_error (worker), "key 'h' element 1 is inf"), "%s",
               ps_worker_error (worker));
    float value[2];
    tensor.data = value;
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (value[0], 1.0f);
    cr_assert_eq (value[1], 2.0f);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (wire, f16_overflow_is_refused_as_non_finite)
{
    ps_optim_settings_t adam = {.kind = PS_OPTIMIZER_ADAM, .lr = 0.1f};
    s_overflow_refused (0, NULL);
    s_overflow_refused (-1, NULL);
    s_overflow_refused (-1, &adam);
}

Test (wire, a_checkpoint_keeps_the_dtype)
{
    char dir[256], endpoint[64];
    ps_test_path ("checkpoints", dir, sizeof dir);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = 1;
    config.staleness = 0;
    config.tap = false;
    config.checkpoint_dir = dir;
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_t *worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    float initial[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 0.25f};
    cr_assert_eq (ps_worker_init_wire (worker, "b", 5, initial, &sgd, PS_WIRE_BF16), PS_OK, "%s",
                  ps_worker_error (worker));
    ps_tensor_t tensor = {"b", initial, 5};
    cr_assert_eq (ps_worker_push (worker, &tensor, 1, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (ps_worker_clock (worker), PS_OK, "%s", ps_worker_error (worker));
    float before[5], after[5];
    tensor.data = before;
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK, "%s", ps_worker_error (worker));
    ps_worker_close (&worker);
    //  Stopped, it writes a checkpoint; a new broker restores it
    ps_broker_destroy (&broker);
    broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    worker = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    //  The key is bf16 still: an INIT in f32 is refused, in bf16 taken
    cr_assert_eq (ps_worker_init (worker, "b", 5, NULL, NULL), PS_EKEY_EXISTS);
    cr_assert (strstr (ps_worker_error (worker), "wire dtype bf16"), "%s",
               ps_worker_error (worker));
    cr_assert_eq (ps_worker_init_wire (worker, "b", 5, NULL, NULL, PS_WIRE_BF16), PS_OK, "%s",
                  ps_worker_error (worker));
    tensor.data = after;
    cr_assert_eq (ps_worker_pull (worker, &tensor, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (memcmp (before, after, sizeof before), 0, "restored values differ");
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}
