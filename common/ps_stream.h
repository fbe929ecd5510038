/*  =========================================================================
    ps_stream - copies of floats that bypass the cache, for pulls larger
    than it

    A pull copies each reply part into the caller's arrays. memcpy's
    ordinary stores read every destination line before they write it, and
    glibc streams only single copies larger than about the last-level
    cache, never 1 MB parts. What one pull writes past the last-level
    cache's size cannot stay in it, so reading its lines first only costs:
    on this VM streamed stores copied 64 MB in 1 MB parts in 3.5 ms
    against memcpy's 10 ms (docs/performance.md). A smaller pull is copied
    with memcpy, so that it stays cached for the caller, who reads it next.

    Pure functions; any thread. The copy ends with a store fence, so what
    it wrote is ordered before anything the thread writes afterwards
    (such as a flag another thread reads).
    ========================================================================= */

#ifndef PS_STREAM_H_INCLUDED
#define PS_STREAM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Whether a pull of bytes in all is worth streaming into: at least 3/4 of
//  the last-level cache (sysconf, as glibc reads it; 32 MB when it does
//  not say), glibc's threshold for streaming one copy
bool ps_stream_worth (size_t bytes);

//  count floats from in to out, out's lines written without being read
//  (where the CPU has SSE2; memcpy elsewhere). in may sit at any address,
//  as libzmq's frames do; the two must not overlap.
void ps_stream_copy (float *out, const void *in, size_t count);

#endif
