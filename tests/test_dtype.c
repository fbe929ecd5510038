/*  =========================================================================
    test_dtype - the wire dtypes' conversions (common/ps_dtype.h)

    Rounding to nearest even, NaN and infinities, subnormals, fp16's
    overflow, and the documented error bounds over many values; every
    16-bit pattern goes to float and back unchanged.

    usage: build/test_dtype [--filter 'dtype/<test>'] [--verbose]
    ========================================================================= */

#include "ps_dtype.h"
#include "ps_hash.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static float
s_float (uint32_t bits)
{
    float value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

Test (dtype, usage_push_bf16_pull_back)
{
    //  What a worker does with a BF16 key: narrow before sending, widen
    //  what comes back; the values come back within 2^-8 of themselves
    float gradient[4] = {0.1f, -2.5f, 1e-20f, 3.0e38f};
    uint16_t wire[4];
    ps_dtype_from_f32 (wire, gradient, 4, PS_DTYPE_BF16);
    float back[4];
    ps_dtype_to_f32 (back, wire, 4, PS_DTYPE_BF16);
    for (int i = 0; i < 4; i++)
        cr_assert_leq (fabsf (back[i] - gradient[i]), fabsf (gradient[i]) * 0x1p-8f, "%d: %g %g", i,
                       (double)gradient[i], (double)back[i]);
    cr_assert_eq (ps_dtype_size (PS_DTYPE_BF16), 2);
    cr_assert_eq (ps_dtype_size (PS_DTYPE_F32), 4);
    cr_assert_eq (ps_dtype_size (7), 0);
}

Test (dtype, names_parse_both_ways)
{
    int dtype = -1;
    for (int d = PS_DTYPE_F32; d <= PS_DTYPE_F16; d++) {
        cr_assert_eq (ps_dtype_parse (ps_dtype_name (d), &dtype), 0);
        cr_assert_eq (dtype, d);
    }
    cr_assert_eq (ps_dtype_parse ("fp16", &dtype), 0);
    cr_assert_eq (dtype, PS_DTYPE_F16);
    cr_assert_eq (ps_dtype_parse ("f64", &dtype), -1);
    cr_assert_not (ps_dtype_known (3));
}

Test (dtype, bf16_rounds_to_nearest_even)
{
    //  1 + 2^-8 is halfway between 1 and 1 + 2^-7: to the even one, 1
    cr_assert_eq (ps_dtype_bf16_from_f32 (1.0f + 0x1p-8f), 0x3f80);
    //  1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up
    cr_assert_eq (ps_dtype_bf16_from_f32 (1.0f + 3 * 0x1p-8f), 0x3f82);
    //  Just above halfway rounds up, just below down
    cr_assert_eq (ps_dtype_bf16_from_f32 (s_float (0x3f808001)), 0x3f81);
    cr_assert_eq (ps_dtype_bf16_from_f32 (s_float (0x3f807fff)), 0x3f80);
    cr_assert_eq (ps_dtype_bf16_from_f32 (-1.0f), 0xbf80);
    //  Rounding carries into the exponent, and past the largest to inf
    cr_assert_eq (ps_dtype_bf16_from_f32 (s_float (0x3fffffff)), 0x4000);
    cr_assert_eq (ps_dtype_bf16_from_f32 (s_float (0x7f7fffff)), 0x7f80);
}

Test (dtype, bf16_nan_inf_subnormal)
{
    uint16_t nan = ps_dtype_bf16_from_f32 (NAN);
    cr_assert_eq (nan & 0x7f80, 0x7f80);
    cr_assert_neq (nan & 0x007f, 0);
    //  A NaN whose payload is all in the low bits stays a NaN (rounding
    //  would carry it into an infinity)
    uint16_t low = ps_dtype_bf16_from_f32 (s_float (0x7f800001));
    cr_assert (isnan (ps_dtype_bf16_to_f32 (low)));
    cr_assert_eq (ps_dtype_bf16_from_f32 (INFINITY), 0x7f80);
    cr_assert_eq (ps_dtype_bf16_from_f32 (-INFINITY), 0xff80);
    //  The smallest f32 subnormal rounds to 0; a larger one is kept
    cr_assert_eq (ps_dtype_bf16_from_f32 (s_float (0x00000001)), 0x0000);
    cr_assert_eq (ps_dtype_bf16_from_f32 (s_float (0x00010000)), 0x0001);
    cr_assert_eq (ps_dtype_bf16_to_f32 (0x0001), s_float (0x00010000));
    cr_assert_eq (ps_dtype_bf16_from_f32 (-0.0f), 0x8000);
}

Test (dtype, f16_rounds_to_nearest_even)
{
    cr_assert_eq (ps_dtype_f16_from_f32 (1.0f), 0x3c00);
    cr_assert_eq (ps_dtype_f16_from_f32 (-2.0f), 0xc000);
    //  1 + 2^-11 is halfway between 1 and 1 + 2^-10: to the even one
    cr_assert_eq (ps_dtype_f16_from_f32 (1.0f + 0x1p-11f), 0x3c00);
    cr_assert_eq (ps_dtype_f16_from_f32 (1.0f + 3 * 0x1p-11f), 0x3c02);
    cr_assert_eq (ps_dtype_f16_from_f32 (65504.0f), 0x7bff);
    cr_assert_eq (ps_dtype_f16_from_f32 (0.1f), 0x2e66);
}

Test (dtype, f16_overflow_is_infinity)
{
    //  65519.99 rounds down to the largest, 65520 is halfway: up, to inf
    cr_assert_eq (ps_dtype_f16_from_f32 (65519.0f), 0x7bff);
    cr_assert_eq (ps_dtype_f16_from_f32 (65520.0f), 0x7c00);
    cr_assert_eq (ps_dtype_f16_from_f32 (1e6f), 0x7c00);
    cr_assert_eq (ps_dtype_f16_from_f32 (-1e30f), 0xfc00);
    cr_assert_eq (ps_dtype_f16_from_f32 (INFINITY), 0x7c00);
    uint16_t nan = ps_dtype_f16_from_f32 (NAN);
    cr_assert_eq (nan & 0x7c00, 0x7c00);
    cr_assert_neq (nan & 0x03ff, 0);
    //  The broker's check sees the overflow as a non-finite gradient
    float gradient[3] = {1.0f, 70000.0f, 2.0f};
    uint16_t wire[3];
    ps_dtype_from_f32 (wire, gradient, 3, PS_DTYPE_F16);
    cr_assert_eq (ps_dtype_first_nonfinite (wire, 3, PS_DTYPE_F16), 1);
    cr_assert (isinf (ps_dtype_f16_to_f32 (wire[1])));
}

Test (dtype, f16_subnormals)
{
    //  2^-24 is the smallest f16 subnormal; half of it rounds to even (0),
    //  three halves to 2 * 2^-24
    cr_assert_eq (ps_dtype_f16_from_f32 (0x1p-24f), 0x0001);
    cr_assert_eq (ps_dtype_f16_from_f32 (0x1p-25f), 0x0000);
    cr_assert_eq (ps_dtype_f16_from_f32 (3 * 0x1p-25f), 0x0002);
    cr_assert_eq (ps_dtype_f16_from_f32 (-0x1p-24f), 0x8001);
    cr_assert_eq (ps_dtype_f16_to_f32 (0x0001), 0x1p-24f);
    cr_assert_eq (ps_dtype_f16_to_f32 (0x03ff), 1023 * 0x1p-24f);
    //  The largest subnormal rounds up into the smallest normal
    cr_assert_eq (ps_dtype_f16_from_f32 (0x1p-14f - 0x1p-26f), 0x0400);
    cr_assert_eq (ps_dtype_f16_from_f32 (1e-10f), 0x0000);
}

Test (dtype, every_16_bit_value_round_trips)
{
    for (uint32_t bits = 0; bits <= 0xffff; bits++) {
        float bf = ps_dtype_bf16_to_f32 ((uint16_t)bits);
        float half = ps_dtype_f16_to_f32 ((uint16_t)bits);
        if (isnan (bf))
            cr_assert (isnan (ps_dtype_bf16_to_f32 (ps_dtype_bf16_from_f32 (bf))));
        else
            cr_assert_eq (ps_dtype_bf16_from_f32 (bf), bits, "bf16 %04x", bits);
        if (isnan (half))
            cr_assert (isnan (ps_dtype_f16_to_f32 (ps_dtype_f16_from_f32 (half))));
        else
            cr_assert_eq (ps_dtype_f16_from_f32 (half), bits, "f16 %04x", bits);
    }
}

//  The bounds of ps_dtype.h over a million values of every magnitude,
//  through the array functions (the vectorised loops)
Test (dtype, error_bounds_hold)
{
    enum { N = 1 << 20 };
    static float values[N], back[N];
    static uint16_t wire[N];
    uint64_t seed = 15;
    for (size_t i = 0; i < N; i++) {
        uint32_t bits = (uint32_t)ps_splitmix64 (&seed);
        float value = s_float (bits);
        values[i] = isfinite (value) ? value : 1.0f;
    }
    ps_dtype_from_f32 (wire, values, N, PS_DTYPE_BF16);
    ps_dtype_to_f32 (back, wire, N, PS_DTYPE_BF16);
    for (size_t i = 0; i < N; i++)
        if (fabsf (values[i]) >= 0x1p-126f && fabsf (values[i]) < 3.3e38f)
            cr_assert_leq (fabsf (back[i] - values[i]), fabsf (values[i]) * 0x1p-8f,
                           "bf16 %a -> %a", (double)values[i], (double)back[i]);
        else if (fabsf (values[i]) < 0x1p-126f)
            cr_assert_leq (fabsf (back[i] - values[i]), 0x1p-134f, "bf16 %a -> %a",
                           (double)values[i], (double)back[i]);
    //  f16: values of its range
    for (size_t i = 0; i < N; i++)
        values[i] = ldexpf ((float)(i % 4096) / 4096.0f + 0.5f, (int)(i % 45) - 29) *
                    (i % 2 ? -1.0f : 1.0f);
    ps_dtype_from_f32 (wire, values, N, PS_DTYPE_F16);
    ps_dtype_to_f32 (back, wire, N, PS_DTYPE_F16);
    for (size_t i = 0; i < N; i++) {
        float error = fabsf (back[i] - values[i]);
        float magnitude = fabsf (values[i]);
        if (magnitude >= 0x1p-14f && magnitude <= 65504.0f)
            cr_assert_leq (error, magnitude * 0x1p-11f, "f16 %a -> %a", (double)values[i],
                           (double)back[i]);
        else if (magnitude < 0x1p-14f)
            cr_assert_leq (error, 0x1p-25f, "f16 %a -> %a", (double)values[i], (double)back[i]);
    }
}

Test (dtype, unaligned_buffers)
{
    //  libzmq keeps small frames at any offset: odd addresses work
    float values[5] = {1, 2, 3, 4, 5}, back[5];
    unsigned char bytes[11];
    ps_dtype_from_f32 (bytes + 1, values, 5, PS_DTYPE_F16);
    ps_dtype_to_f32 (back, bytes + 1, 5, PS_DTYPE_F16);
    cr_assert_arr_eq (back, values, sizeof values);
    cr_assert_eq (ps_dtype_first_nonfinite (bytes + 1, 5, PS_DTYPE_F16), 5);
    float bad[2] = {1, NAN};
    unsigned char raw[9];
    memcpy (raw + 1, bad, sizeof bad);
    cr_assert_eq (ps_dtype_first_nonfinite (raw + 1, 2, PS_DTYPE_F32), 1);
}
