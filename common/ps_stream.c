/*  =========================================================================
    ps_stream - copies of floats that bypass the cache (see the .h)
    ========================================================================= */

#include "ps_stream.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

//  When sysconf cannot tell the last-level cache's size
#define S_CACHE_GUESS (32u << 20)

static size_t
s_last_level_cache (void)
{
    long size = -1;
#if defined(_SC_LEVEL3_CACHE_SIZE)
    size = sysconf (_SC_LEVEL3_CACHE_SIZE);
#endif
#if defined(_SC_LEVEL2_CACHE_SIZE)
    if (size <= 0)
        size = sysconf (_SC_LEVEL2_CACHE_SIZE);
#endif
    return size > 0 ? (size_t)size : S_CACHE_GUESS;
}

bool
ps_stream_worth (size_t bytes)
{
    //  Asked once; threads that race ask sysconf each and store the same
    static atomic_size_t cache;
    size_t known = atomic_load_explicit (&cache, memory_order_relaxed);
    if (!known) {
        known = s_last_level_cache ();
        atomic_store_explicit (&cache, known, memory_order_relaxed);
    }
    //  glibc's own threshold for streaming a single copy, 3/4 of the
    //  shared cache: past it, what is written evicts more than it keeps
    return bytes >= known / 4 * 3;
}

//  One float from in, which may sit at any address (libzmq keeps small
//  frames at odd offsets)
static float
s_load (const unsigned char *in)
{
    float value;
    memcpy (&value, in, sizeof value);
    return value;
}

void
ps_stream_copy (float *out, const void *in, size_t count)
{
#if defined(__SSE2__)
    const unsigned char *bytes = in;
    size_t i = 0;
    for (; i < count && (uintptr_t)(out + i) % 16; i++)
        out[i] = s_load (bytes + i * sizeof (float));
    for (; i + 4 <= count; i += 4)
        _mm_stream_ps (out + i, _mm_loadu_ps ((const float *)(bytes + i * sizeof (float))));
    _mm_sfence ();
    for (; i < count; i++)
        out[i] = s_load (bytes + i * sizeof (float));
#else
    memcpy (out, in, count * sizeof (float));
#endif
}
