/*  =========================================================================
    ps_hash - the one string hash and the one seeded random generator

    ps_hash_fnv1a is 64-bit FNV-1a over a name's bytes. The partition rule
    (ps_partition.h, docs/groups.md) is built on it, so its values must
    never change: a key's shard in a group depends on them. The store's
    key table uses it too.

    ps_splitmix64 is Vigna's splitmix64: a tiny generator whose sequence
    for a seed is the same on every machine and C library, where rand ()
    is neither fixed nor thread-safe. The synthetic data set, the initial
    weights and psworker's straggler draws depend on that.

    Static inline functions of their arguments alone; any thread.
    ========================================================================= */

#ifndef PS_HASH_H_INCLUDED
#define PS_HASH_H_INCLUDED

#include <stdint.h>

//  64-bit FNV-1a of the NUL-terminated name
static inline uint64_t
ps_hash_fnv1a (const char *name)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (const unsigned char *byte = (const unsigned char *)name; *byte; byte++) {
        hash ^= *byte;
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

//  The next 64 random bits of the sequence whose state is *state (any
//  value is a valid seed); advances *state
static inline uint64_t
ps_splitmix64 (uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#endif
