/*  =========================================================================
    ps_random - secret random numbers: session tokens, routing ids,
    incarnations

    What a stranger must not guess comes from the kernel's generator
    (getrandom(2), or /dev/urandom where that call is missing), never from
    the time or the process id: a session token is what proves a rank
    coming back (PROTOCOL.md, Ranks and sessions), and a worker's routing
    id is what its connection is known by. ps_splitmix64 (ps_hash.h) is
    for reproducible draws, not for these.

    Any thread. Failure: -1 only when the kernel has no generator to offer
    at all (no getrandom and no /dev/urandom); the caller decides.
    ========================================================================= */

#ifndef PS_RANDOM_H_INCLUDED
#define PS_RANDOM_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  Fill size bytes at out with secret random bytes: 0, or -1
int ps_random_bytes (void *out, size_t size);

//  64 secret random bits, never 0 (0 means "none" on the wire); when the
//  kernel has no generator, a mix of the time and the process id, which
//  is unique but guessable (the caller is told by ps_random_bytes)
uint64_t ps_random_u64 (void);

#endif
