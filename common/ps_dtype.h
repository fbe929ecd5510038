/*  =========================================================================
    ps_dtype - the element types tensors travel in, and the conversions

    A key travels in the wire dtype its INIT named (proto/ps.proto DType):
    F32 (4 bytes, as stored), BF16 or F16 (2 bytes). The application and
    the broker's store only ever see float32: the worker library converts
    fp32 -> 16 bits before it sends and 16 bits -> fp32 when a pull reply
    comes; the broker converts gradient frames as it applies them and
    keeps a 16-bit copy of each published version for pull replies.

    Rounding fp32 -> 16 bits is round-to-nearest-even. A NaN stays a
    (quiet) NaN, an infinity stays an infinity of its sign. BF16 has
    fp32's range (8-bit exponent, 8 significant bits): relative error at
    most 2^-8 for normal values (|x| >= 2^-126; only values within 2^-8
    of FLT_MAX round to an infinity), absolute error at most 2^-134 for
    fp32's subnormals. F16 (IEEE binary16,
    5-bit exponent, 11 significant bits): relative error at most 2^-11 for
    |x| in [2^-14, 65504], absolute error at most 2^-25 below (subnormals),
    and |x| >= 65520 overflows to an infinity, which the broker's
    non-finite check refuses like any other. 16 bits -> fp32 is exact.

    The loops are plain C over bits (memcpy'd loads, selects, no branches
    in the body) so that gcc vectorises them at -O3; no intrinsics. 16-bit
    buffers may sit at any address (libzmq keeps small frames at odd
    offsets), so they are void pointers read and written with memcpy.

    Pure functions of their arguments; any thread.
    ========================================================================= */

#ifndef PS_DTYPE_H_INCLUDED
#define PS_DTYPE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The values of proto/ps.proto's DType (PSMQ__DTYPE__*), as plain ints
//  so that modules without the generated code can use them
#define PS_DTYPE_F32 0
#define PS_DTYPE_BF16 1
#define PS_DTYPE_F16 2

//  Whether dtype is one of the three
bool ps_dtype_known (int dtype);
//  Bytes per element: 4, 2, 2; 0 for an unknown dtype
size_t ps_dtype_size (int dtype);
//  "f32", "bf16", "f16"; "unknown" otherwise
const char *ps_dtype_name (int dtype);
//  The dtype called name ("f32", "bf16", "f16"; also "fp32", "fp16",
//  "float32", "bfloat16", "float16"); 0, or -1 for another name
int ps_dtype_parse (const char *name, int *dtype);

//  count floats into count elements of dtype at out (BF16 or F16; F32 is
//  a copy), rounded to nearest even
void ps_dtype_from_f32 (void *out, const float *in, size_t count, int dtype);
//  count elements of dtype at in into count floats (exact)
void ps_dtype_to_f32 (float *out, const void *in, size_t count, int dtype);
//  The index of the first NaN or infinity among count elements of dtype
//  at in; count when there is none
size_t ps_dtype_first_nonfinite (const void *in, size_t count, int dtype);

//  One element each way, for tests and error messages
uint16_t ps_dtype_bf16_from_f32 (float value);
float ps_dtype_bf16_to_f32 (uint16_t bits);
uint16_t ps_dtype_f16_from_f32 (float value);
float ps_dtype_f16_to_f32 (uint16_t bits);

#endif
