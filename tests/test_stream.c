/*  =========================================================================
    test_stream - copies that bypass the cache (common/ps_stream.h)

    The streamed copy writes exactly what memcpy would, from a source at
    any byte address to a destination at every alignment, at every length
    around its 16-byte steps, and nothing outside; which tensors are worth streaming follows the
    last-level cache, never a small one.

    usage: build/test_stream [--filter 'stream/<test>'] [--verbose]
    ========================================================================= */

#include "ps_stream.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Floats on either side of a copy that it must leave alone
#define GUARD 8

Test (stream, copy_matches_memcpy_at_every_alignment_and_length)
{
    float values[80], target[GUARD + 4 + 80 + GUARD];
    unsigned char source[sizeof values + 4];
    for (size_t i = 0; i < 80; i++)
        values[i] = (float)i + 0.25f;
    //  The source at every byte offset too: libzmq keeps small frames at
    //  odd addresses
    for (size_t skew = 0; skew < 4; skew++) {
        memcpy (source + skew, values, sizeof values);
        for (size_t shift = 0; shift < 4; shift++)
            for (size_t count = 0; count <= 70; count++) {
                for (size_t i = 0; i < sizeof target / sizeof *target; i++)
                    target[i] = -1.0f;
                ps_stream_copy (target + GUARD + shift, source + skew, count);
                for (size_t i = 0; i < sizeof target / sizeof *target; i++) {
                    bool inside = i >= GUARD + shift && i < GUARD + shift + count;
                    float want = inside ? values[i - GUARD - shift] : -1.0f;
                    cr_assert_eq (target[i], want,
                                  "skew %zu, shift %zu, count %zu: target[%zu] = %g, not %g", skew,
                                  shift, count, i, (double)target[i], (double)want);
                }
            }
    }
}

Test (stream, a_copy_of_megabytes_is_exact)
{
    size_t count = (4u << 20) + 3;
    float *source = malloc (count * sizeof (float));
    float *target = malloc (count * sizeof (float));
    cr_assert (source && target);
    for (size_t i = 0; i < count; i++)
        source[i] = (float)(i % 1000003) * 0.5f;
    memset (target, 0xff, count * sizeof (float));
    ps_stream_copy (target, source, count);
    cr_expect_eq (memcmp (target, source, count * sizeof (float)), 0);
    free (source);
    free (target);
}

Test (stream, worth_follows_the_last_level_cache)
{
    //  A tensor that fits a core's own caches always stays cached
    cr_expect_not (ps_stream_worth (0));
    cr_expect_not (ps_stream_worth (256u << 10));
    cr_expect (ps_stream_worth (SIZE_MAX / 2));
    long cache = sysconf (_SC_LEVEL3_CACHE_SIZE);
    if (cache <= 0)
        cache = sysconf (_SC_LEVEL2_CACHE_SIZE);
    size_t threshold = cache > 0 ? (size_t)cache / 4 * 3 : (32u << 20) / 4 * 3;
    cr_expect (ps_stream_worth (threshold), "%zu bytes (cache %ld)", threshold, cache);
    cr_expect_not (ps_stream_worth (threshold - 1), "%zu bytes (cache %ld)", threshold - 1, cache);
    //  Monotonic: once worth it, every larger tensor is
    bool seen = false;
    for (size_t bytes = 1; bytes && bytes < ((size_t)1 << 40); bytes *= 2) {
        bool worth = ps_stream_worth (bytes);
        cr_expect (!seen || worth, "%zu bytes not worth it after a smaller one was", bytes);
        seen |= worth;
    }
}
