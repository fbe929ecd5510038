/*  =========================================================================
    ps_dtype - element types on the wire and their conversions (see
    ps_dtype.h for the rounding and the error bounds)

    Written by hand: the conversions are a few lines each, and the ways a
    library could do them do not fit. gcc 12's _Float16 converts through a
    libgcc call per element on x86-64 without F16C (no vectorisation),
    and there is no bf16 type at all; OpenBLAS has no conversion we can
    call on a plain array. Each element function computes every case
    (normal, subnormal, overflow, NaN) and selects, so the loops have no
    branch and vectorise (built at -O3, CMakeLists.txt).

    The fp16 rounding follows Fabian Giesen's float_to_half_fast3_rtne
    (public domain): the normal case adds a rounding bias to the bits, the
    subnormal case lets the FPU round by adding a magic float whose
    exponent puts the wanted bits at the bottom.
    ========================================================================= */

#include "ps_dtype.h"

#include <string.h>

static inline uint32_t
s_bits (float value)
{
    uint32_t bits;
    memcpy (&bits, &value, sizeof bits);
    return bits;
}

static inline float
s_float (uint32_t bits)
{
    float value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

//  All ones when condition holds, else 0: a select without a branch
static inline uint32_t
s_mask (bool condition)
{
    return 0u - (uint32_t)condition;
}

static inline uint16_t
s_load16 (const unsigned char *at)
{
    uint16_t bits;
    memcpy (&bits, at, sizeof bits);
    return bits;
}

static inline void
s_store16 (unsigned char *at, uint16_t bits)
{
    memcpy (at, &bits, sizeof bits);
}

uint16_t
ps_dtype_bf16_from_f32 (float value)
{
    uint32_t bits = s_bits (value);
    //  Round to nearest even on the 16 bits dropped; a NaN is kept quiet
    //  (the rounding could carry its payload into an infinity)
    uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    uint32_t nan = (bits >> 16) | 0x40u;
    return (uint16_t)((bits & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

float
ps_dtype_bf16_to_f32 (uint16_t bits)
{
    return s_float ((uint32_t)bits << 16);
}

uint16_t
ps_dtype_f16_from_f32 (float value)
{
    const uint32_t f32_infinity = 255u << 23;
    const uint32_t f16_overflow = (127u + 16u) << 23; //  2^16: past the largest f16
    const uint32_t f16_normal = 113u << 23;           //  2^-14: the smallest normal f16
    //  Adding 0.5 (2^-1) to a value below 2^-14 leaves its f16 subnormal
    //  mantissa, rounded to nearest even by the FPU, in the low bits
    const uint32_t magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t bits = s_bits (value);
    uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t magnitude = bits & 0x7fffffffu;
    uint32_t special = 0x7c00u | (s_mask (magnitude > f32_infinity) & 0x0200u);
    uint32_t subnormal = s_bits (s_float (magnitude) + s_float (magic)) - magic;
    uint32_t odd = (magnitude >> 13) & 1u;
    uint32_t normal = (magnitude + ((uint32_t)(15 - 127) << 23) + 0xfffu + odd) >> 13;
    uint32_t small = s_mask (magnitude < f16_normal);
    uint32_t finite = (subnormal & small) | (normal & ~small);
    uint32_t overflow = s_mask (magnitude >= f16_overflow);
    return (uint16_t)((special & overflow) | (finite & ~overflow) | sign);
}

float
ps_dtype_f16_to_f32 (uint16_t half)
{
    const uint32_t exponent_mask = 0x7c00u << 13;
    uint32_t magnitude = ((uint32_t)half & 0x7fffu) << 13;
    uint32_t exponent = magnitude & exponent_mask;
    uint32_t normal = magnitude + ((127u - 15u) << 23);
    uint32_t special = normal + ((128u - 16u) << 23); //  infinity, NaN: exponent 255
    //  A subnormal (or zero): scale by the FPU, exactly
    uint32_t subnormal = s_bits (s_float (normal + (1u << 23)) - s_float (113u << 23));
    uint32_t top = s_mask (exponent == exponent_mask), zero = s_mask (exponent == 0);
    uint32_t out = (special & top) | (subnormal & zero) | (normal & ~(top | zero));
    return s_float (out | ((uint32_t)half & 0x8000u) << 16);
}

bool
ps_dtype_known (int dtype)
{
    return dtype == PS_DTYPE_F32 || dtype == PS_DTYPE_BF16 || dtype == PS_DTYPE_F16;
}

size_t
ps_dtype_size (int dtype)
{
    switch (dtype) {
    case PS_DTYPE_F32: return 4;
    case PS_DTYPE_BF16:
    case PS_DTYPE_F16: return 2;
    default: return 0;
    }
}

const char *
ps_dtype_name (int dtype)
{
    switch (dtype) {
    case PS_DTYPE_F32: return "f32";
    case PS_DTYPE_BF16: return "bf16";
    case PS_DTYPE_F16: return "f16";
    default: return "unknown";
    }
}

int
ps_dtype_parse (const char *name, int *dtype)
{
    static const struct {
        const char *name;
        int dtype;
    } names[] = {{"f32", PS_DTYPE_F32},   {"fp32", PS_DTYPE_F32},      {"float32", PS_DTYPE_F32},
                 {"bf16", PS_DTYPE_BF16}, {"bfloat16", PS_DTYPE_BF16}, {"f16", PS_DTYPE_F16},
                 {"fp16", PS_DTYPE_F16},  {"float16", PS_DTYPE_F16}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcmp (name, names[i].name) == 0) {
            *dtype = names[i].dtype;
            return 0;
        }
    return -1;
}

void
ps_dtype_from_f32 (void *out, const float *restrict in, size_t count, int dtype)
{
    unsigned char *restrict bytes = out;
    if (dtype == PS_DTYPE_BF16)
        for (size_t i = 0; i < count; i++)
            s_store16 (bytes + 2 * i, ps_dtype_bf16_from_f32 (in[i]));
    else if (dtype == PS_DTYPE_F16)
        for (size_t i = 0; i < count; i++)
            s_store16 (bytes + 2 * i, ps_dtype_f16_from_f32 (in[i]));
    else
        memcpy (out, in, count * sizeof (float));
}

void
ps_dtype_to_f32 (float *restrict out, const void *in, size_t count, int dtype)
{
    const unsigned char *restrict bytes = in;
    if (dtype == PS_DTYPE_BF16)
        for (size_t i = 0; i < count; i++)
            out[i] = ps_dtype_bf16_to_f32 (s_load16 (bytes + 2 * i));
    else if (dtype == PS_DTYPE_F16)
        for (size_t i = 0; i < count; i++)
            out[i] = ps_dtype_f16_to_f32 (s_load16 (bytes + 2 * i));
    else
        memcpy (out, in, count * sizeof (float));
}

//  Blocks scanned without a branch per element, so that gcc vectorises
//  the scan; only a block holding a non-finite value is scanned again for
//  where it is
#define NONFINITE_BLOCK 1024

//  Whether any of count values has its exponent all ones (infinity, NaN)
static bool
s_any_nonfinite (const unsigned char *bytes, size_t count, int dtype)
{
    unsigned bad = 0;
    if (dtype == PS_DTYPE_F32) {
        for (size_t i = 0; i < count; i++) {
            uint32_t bits;
            memcpy (&bits, bytes + 4 * i, sizeof bits);
            bad |= (bits & 0x7f800000u) == 0x7f800000u;
        }
        return bad;
    }
    //  bf16 has 8 bits of exponent, f16 5
    uint16_t mask = dtype == PS_DTYPE_BF16 ? 0x7f80u : 0x7c00u;
    for (size_t i = 0; i < count; i++)
        bad |= (s_load16 (bytes + 2 * i) & mask) == mask;
    return bad;
}

size_t
ps_dtype_first_nonfinite (const void *in, size_t count, int dtype)
{
    const unsigned char *bytes = in;
    size_t width = dtype == PS_DTYPE_F32 ? 4 : 2;
    for (size_t start = 0; start < count; start += NONFINITE_BLOCK) {
        size_t block = count - start < NONFINITE_BLOCK ? count - start : NONFINITE_BLOCK;
        const unsigned char *at = bytes + start * width;
        if (!s_any_nonfinite (at, block, dtype))
            continue;
        for (size_t i = 0; i < block; i++)
            if (s_any_nonfinite (at + i * width, 1, dtype))
                return start + i;
    }
    return count;
}
