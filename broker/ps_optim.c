/*  =========================================================================
    ps_optim - server-side update rules: SGD, momentum, Adagrad, Adam

    Each rule is one loop over the elements with every per-call constant
    (learning rate, scale, Adam's bias corrections) hoisted out of it, no
    branches and no calls inside, so that the compiler can vectorise it.

    out may equal in, so out and in cannot be declared restrict (that would
    make the in-place call undefined). Element i only reads in[i], grad[i]
    and the state at i, and only writes out[i] and the state at i, so no
    iteration depends on another whether out == in or not. PS_INDEPENDENT
    tells the compiler so; without it GCC must version the loop on a
    runtime overlap check that fails for out == in and falls back to
    scalar code on the store's in-place path. Gradients and state arrays
    never overlap anything else and are restrict.

    Two build flags decide whether the loops really are vectorised, and
    they belong to the build, not to this file: GCC 12 at -O2 only
    vectorises loops whose trip count is a multiple of the vector width
    (its "very cheap" cost model), so it needs -O3 or
    -fvect-cost-model=cheap; and sqrtf with errno semantics keeps a scalar
    call for negative arguments, which blocks vectorising Adagrad and Adam,
    so they need -fno-math-errno. That flag changes nothing observable
    here: sqrtf only sees sums of squares, which are >= 0 or NaN, and
    neither sets errno.

    Adam's bias corrections 1 - beta^t are computed in double: in float,
    beta2^t for beta2 = 0.999 loses digits that the correction divides by
    early in training.

    SGD out of place over a large run (a 1 MB part of a large key) writes
    with non-temporal stores where the CPU has them (SSE2): a version of
    many MB does not stay in the cache anyway, and an ordinary store that
    misses first reads the line it writes, so the step's memory traffic
    is four streams (in, grad, the read and the write of out) rather than
    three. Same operations in the same order: the results are the plain
    loop's, bit for bit. aggregation_apply went from 4.2-4.5 to 5.3-6.2
    GB/s on the 2-core VM (docs/performance.md).
    ========================================================================= */

#include "ps_optim.h"
#include "ps_limits.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

//  clang warns when a loop marked so is not vectorised after all, which
//  is expected in sanitizer builds; the loops are still correct
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#define PS_INDEPENDENT _Pragma ("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define PS_INDEPENDENT _Pragma ("GCC ivdep")
#else
#define PS_INDEPENDENT
#endif

static const char *s_kind_names[] = {
    [PS_OPTIM_SGD] = "sgd",
    [PS_OPTIM_MOMENTUM] = "momentum",
    [PS_OPTIM_ADAGRAD] = "adagrad",
    [PS_OPTIM_ADAM] = "adam",
};

static bool
s_kind_valid (ps_optim_kind_t kind)
{
    return kind >= PS_OPTIM_SGD && kind <= PS_OPTIM_ADAM;
}

void
ps_optim_config_defaults (ps_optim_config_t *config)
{
    assert (config);
    //  Whole struct first: a field added later must not start as garbage
    *config = (ps_optim_config_t){0};
    config->kind = PS_OPTIM_SGD;
    config->lr = PS_DEFAULT_LR;
    config->momentum = PS_DEFAULT_MOMENTUM;
    config->beta1 = PS_DEFAULT_BETA1;
    config->beta2 = PS_DEFAULT_BETA2;
    config->eps = PS_DEFAULT_EPS;
}

//  Names the setting and its rule, so checks can `return s_reject (...)`
static int
s_reject (ps_problem_t *problem, const char *what, float value, const char *rule)
{
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_OPTIM, "%s %g must be %s", what,
                           (double)value, rule);
}

//  A rate (lr, eps): finite and > 0
static int
s_check_positive (const char *what, float value, ps_problem_t *problem)
{
    if (!isfinite (value))
        return s_reject (problem, what, value, "finite");
    if (!(value > 0))
        return s_reject (problem, what, value, "> 0");
    return 0;
}

//  A decay (momentum, beta): in [0, 1); the negated test also catches NaN
static int
s_check_decay (const char *what, float value, ps_problem_t *problem)
{
    if (!(value >= 0 && value < 1))
        return s_reject (problem, what, value, "in [0, 1)");
    return 0;
}

//  Only the fields the kind uses are checked: a config from the wire
//  leaves the others at 0, which would otherwise fail (eps for SGD)
int
ps_optim_config_check (const ps_optim_config_t *config, ps_problem_t *problem)
{
    assert (config);
    if (!s_kind_valid (config->kind))
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_OPTIM,
                               "optimizer kind %d unknown: sgd, momentum, adagrad or adam "
                               "expected",
                               (int)config->kind);
    if (s_check_positive ("learning rate", config->lr, problem))
        return -1;
    switch (config->kind) {
    case PS_OPTIM_MOMENTUM: return s_check_decay ("momentum", config->momentum, problem);
    case PS_OPTIM_ADAGRAD: return s_check_positive ("eps", config->eps, problem);
    case PS_OPTIM_ADAM:
        if (s_check_decay ("beta1", config->beta1, problem) ||
            s_check_decay ("beta2", config->beta2, problem))
            return -1;
        return s_check_positive ("eps", config->eps, problem);
    default: return 0;
    }
}

int
ps_optim_kind_parse (const char *name, ps_optim_kind_t *kind)
{
    assert (kind);
    if (!name)
        return -1;
    for (int k = PS_OPTIM_SGD; k <= PS_OPTIM_ADAM; k++)
        if (strcmp (name, s_kind_names[k]) == 0) {
            *kind = (ps_optim_kind_t)k;
            return 0;
        }
    return -1;
}

//  "unknown" rather than NULL for a bad kind, so that logs can print it
const char *
ps_optim_kind_name (ps_optim_kind_t kind)
{
    return s_kind_valid (kind) ? s_kind_names[kind] : "unknown";
}

size_t
ps_optim_state_slots (ps_optim_kind_t kind)
{
    switch (kind) {
    case PS_OPTIM_MOMENTUM:
    case PS_OPTIM_ADAGRAD: return 1;
    case PS_OPTIM_ADAM: return 2;
    default: return 0;
    }
}

//  The exponent bits of a float are all ones exactly when it is NaN or
//  infinite; their max is an integer reduction gcc vectorises
#define S_EXPONENT 0x7f800000u

//  Runs of at least this many elements, out of place, are streamed: a
//  whole 1 MB part
#define S_STREAM_MIN (PS_CHUNK_BYTES / sizeof (float))

#if defined(__SSE2__)
//  SGD with non-temporal stores of out (16-byte aligned after a scalar
//  head of at most 3 elements); S_EXPONENT when some gradient is NaN or
//  infinite, else 0
static uint32_t
s_sgd_streamed (float *out, const float *in, const float *restrict grad, float scale, float lr,
                size_t n)
{
    uint32_t highest = 0;
    size_t i = 0;
    for (; i < n && (uintptr_t)(out + i) % 16; i++) {
        uint32_t bits;
        memcpy (&bits, &grad[i], sizeof bits);
        highest |= (bits & S_EXPONENT) == S_EXPONENT ? S_EXPONENT : 0;
        out[i] = in[i] - lr * (grad[i] * scale);
    }
    __m128i exponent = _mm_set1_epi32 ((int)S_EXPONENT), nonfinite = _mm_setzero_si128 ();
    __m128 rate = _mm_set1_ps (lr), factor = _mm_set1_ps (scale);
    for (; i + 4 <= n; i += 4) {
        __m128 g = _mm_loadu_ps (grad + i);
        __m128i bits = _mm_and_si128 (_mm_castps_si128 (g), exponent);
        nonfinite = _mm_or_si128 (nonfinite, _mm_cmpeq_epi32 (bits, exponent));
        _mm_stream_ps (
            out + i, _mm_sub_ps (_mm_loadu_ps (in + i), _mm_mul_ps (rate, _mm_mul_ps (g, factor))));
    }
    //  Streamed stores are weakly ordered: done before anything published
    _mm_sfence ();
    if (_mm_movemask_epi8 (nonfinite))
        highest = S_EXPONENT;
    for (; i < n; i++) {
        uint32_t bits;
        memcpy (&bits, &grad[i], sizeof bits);
        highest |= (bits & S_EXPONENT) == S_EXPONENT ? S_EXPONENT : 0;
        out[i] = in[i] - lr * (grad[i] * scale);
    }
    return highest;
}

static bool
s_streams (const float *out, const float *in, size_t n)
{
    return n >= S_STREAM_MIN && out != in;
}
#else
static uint32_t
s_sgd_streamed (float *out, const float *in, const float *restrict grad, float scale, float lr,
                size_t n)
{
    (void)out, (void)in, (void)grad, (void)scale, (void)lr, (void)n;
    assert (false);
    return 0;
}

static bool
s_streams (const float *out, const float *in, size_t n)
{
    (void)out, (void)in, (void)n;
    return false;
}
#endif

static void
s_sgd (float *out, const float *in, const float *restrict grad, float scale, float lr, size_t n)
{
    if (s_streams (out, in, n)) {
        s_sgd_streamed (out, in, grad, scale, lr, n);
        return;
    }
    PS_INDEPENDENT
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] - lr * (grad[i] * scale);
}

static uint32_t
s_sgd_checked (float *out, const float *in, const float *restrict grad, float scale, float lr,
               size_t n)
{
    if (s_streams (out, in, n))
        return s_sgd_streamed (out, in, grad, scale, lr, n);
    uint32_t highest = 0;
    PS_INDEPENDENT
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy (&bits, &grad[i], sizeof bits);
        bits &= S_EXPONENT;
        highest = bits > highest ? bits : highest;
        out[i] = in[i] - lr * (grad[i] * scale);
    }
    return highest;
}

static void
s_momentum (float *out, const float *in, const float *restrict grad, float scale, float lr,
            float mu, float *restrict velocity, size_t n)
{
    PS_INDEPENDENT
    for (size_t i = 0; i < n; i++) {
        float v = mu * velocity[i] + grad[i] * scale;
        velocity[i] = v;
        out[i] = in[i] - lr * v;
    }
}

static void
s_adagrad (float *out, const float *in, const float *restrict grad, float scale, float lr,
           float eps, float *restrict history, size_t n)
{
    PS_INDEPENDENT
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * scale;
        float h = history[i] + g * g;
        history[i] = h;
        out[i] = in[i] - lr * g / (sqrtf (h) + eps);
    }
}

//  c1 and c2 are 1 / (1 - beta^t), the bias corrections of m and v
static void
s_adam (float *out, const float *in, const float *restrict grad, float scale,
        const ps_optim_config_t *config, float lr, float c1, float c2, float *restrict m_state,
        float *restrict v_state, size_t n)
{
    float eps = config->eps;
    float b1 = config->beta1, b2 = config->beta2;
    PS_INDEPENDENT
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * scale;
        float m = b1 * m_state[i] + (1 - b1) * g;
        float v = b2 * v_state[i] + (1 - b2) * g * g;
        m_state[i] = m;
        v_state[i] = v;
        out[i] = in[i] - lr * (m * c1) / (sqrtf (v * c2) + eps);
    }
}

void
ps_optim_config_from_wire (ps_optim_config_t *config, const Psmq__Optim *wire)
{
    if (!wire)
        return;
    if (wire->kind != PSMQ__OPTIM_KIND__OPT_DEFAULT)
        config->kind = (ps_optim_kind_t)wire->kind;
    if (wire->lr != 0)
        config->lr = wire->lr;
    if (wire->momentum != 0)
        config->momentum = wire->momentum;
    if (wire->beta1 != 0)
        config->beta1 = wire->beta1;
    if (wire->beta2 != 0)
        config->beta2 = wire->beta2;
    if (wire->eps != 0)
        config->eps = wire->eps;
    if (wire->decay_steps != 0)
        config->decay_steps = wire->decay_steps;
}

//  Steps 1 .. decay_steps run from lr down the half cosine, the last at
//  lr * (1 + cos (pi * (D-1) / D)) / 2, just above 0; later steps use 0
float
ps_optim_rate (const ps_optim_config_t *config, uint64_t step)
{
    if (config->decay_steps == 0)
        return config->lr;
    if (step > config->decay_steps)
        return 0;
    double progress = (double)(step > 0 ? step - 1 : 0) / (double)config->decay_steps;
    return (float)(config->lr * 0.5 * (1 + cos (M_PI * progress)));
}

void
ps_optim_apply (const ps_optim_config_t *config, float *out, const float *in, const float *grad,
                float scale, float *state0, float *state1, size_t n, uint64_t step)
{
    assert (config);
    assert (n == 0 || (out && in && grad));
    float lr = ps_optim_rate (config, step);
    switch (config->kind) {
    case PS_OPTIM_SGD: s_sgd (out, in, grad, scale, lr, n); break;
    case PS_OPTIM_MOMENTUM:
        assert (n == 0 || state0);
        s_momentum (out, in, grad, scale, lr, config->momentum, state0, n);
        break;
    case PS_OPTIM_ADAGRAD:
        assert (n == 0 || state0);
        s_adagrad (out, in, grad, scale, lr, config->eps, state0, n);
        break;
    case PS_OPTIM_ADAM: {
        assert (n == 0 || (state0 && state1));
        assert (step >= 1);
        double t = (double)step;
        float c1 = (float)(1 / (1 - pow (config->beta1, t)));
        float c2 = (float)(1 / (1 - pow (config->beta2, t)));
        s_adam (out, in, grad, scale, config, lr, c1, c2, state0, state1, n);
        break;
    }
    default:
        //  The store checks every config before it keeps it
        assert (!"ps_optim_apply: unknown optimizer kind");
    }
}

//  Append one setting, comma-separated, to text (size bytes, *used so
//  far); text NULL: nothing
static void s_append (char *text, size_t size, size_t *used, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_append (char *text, size_t size, size_t *used, const char *format, ...)
{
    if (!text || *used + 2 >= size)
        return;
    if (*used) {
        memcpy (text + *used, ", ", 3);
        *used += 2;
    }
    va_list args;
    va_start (args, format);
    int length = vsnprintf (text + *used, size - *used, format, args);
    va_end (args);
    *used += length > 0 ? (size_t)length : 0;
    if (*used >= size)
        *used = size - 1;
}

int
ps_optim_config_compare (const ps_optim_config_t *a, const ps_optim_config_t *b, char *a_text,
                         char *b_text, size_t size)
{
    assert (a && b);
    size_t a_used = 0, b_used = 0;
    bool differ = false;
    if (a_text && size)
        a_text[0] = 0;
    if (b_text && size)
        b_text[0] = 0;
#define DIFFER(format, x, y)                                                                       \
    do {                                                                                           \
        differ = true;                                                                             \
        s_append (a_text, size, &a_used, format, x);                                               \
        s_append (b_text, size, &b_used, format, y);                                               \
    } while (0)
    if (a->kind != b->kind)
        DIFFER ("%s", ps_optim_kind_name (a->kind), ps_optim_kind_name (b->kind));
    if (a->lr != b->lr)
        DIFFER ("lr %g", (double)a->lr, (double)b->lr);
    if (a->decay_steps != b->decay_steps)
        DIFFER ("decay_steps %llu", (unsigned long long)a->decay_steps,
                (unsigned long long)b->decay_steps);
    //  Only the fields both rules use: a config off the wire leaves others 0
    bool momentum = a->kind == PS_OPTIM_MOMENTUM && b->kind == PS_OPTIM_MOMENTUM;
    bool adam = a->kind == PS_OPTIM_ADAM && b->kind == PS_OPTIM_ADAM;
    bool eps = adam || (a->kind == PS_OPTIM_ADAGRAD && b->kind == PS_OPTIM_ADAGRAD);
    if (momentum && a->momentum != b->momentum)
        DIFFER ("momentum %g", (double)a->momentum, (double)b->momentum);
    if (adam && a->beta1 != b->beta1)
        DIFFER ("beta1 %g", (double)a->beta1, (double)b->beta1);
    if (adam && a->beta2 != b->beta2)
        DIFFER ("beta2 %g", (double)a->beta2, (double)b->beta2);
    if (eps && a->eps != b->eps)
        DIFFER ("eps %g", (double)a->eps, (double)b->eps);
#undef DIFFER
    return differ ? -1 : 0;
}

//  A float is NaN or infinite exactly when its exponent bits are all ones.
//  The max of the exponent fields is an integer reduction, which gcc
//  vectorises without -ffast-math (a float reduction it would not).
size_t
ps_optim_first_nonfinite (const void *values, size_t n)
{
    const unsigned char *bytes = values;
    const uint32_t exponent = S_EXPONENT;
    uint32_t highest = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy (&bits, bytes + i * sizeof bits, sizeof bits);
        bits &= exponent;
        highest = bits > highest ? bits : highest;
    }
    if (highest != exponent)
        return n;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy (&bits, bytes + i * sizeof bits, sizeof bits);
        if ((bits & exponent) == exponent)
            return i;
    }
    return n;
}

size_t
ps_optim_sgd_checked (const ps_optim_config_t *config, float *out, const float *in,
                      const float *grad, float scale, size_t n, uint64_t step)
{
    assert (config && config->kind == PS_OPTIM_SGD);
    assert (n == 0 || (out && in && grad));
    float lr = ps_optim_rate (config, step);
    if (s_sgd_checked (out, in, grad, scale, lr, n) != S_EXPONENT)
        return n;
    return ps_optim_first_nonfinite (grad, n);
}
