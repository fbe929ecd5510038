/*  ps_hash: the one string hash and the one seeded generator, whose values
    must never change (a key's shard in a group, the synthetic data set and
    the initial weights depend on them). Usage:

        uint64_t bucket = ps_hash_fnv1a ("mlp.w1") % buckets;
        uint64_t state = seed;
        double uniform = (ps_splitmix64 (&state) >> 11) * 0x1p-53;   //  [0, 1)

    usage: build/test_hash [--filter 'hash/<test>'] */

#include "ps_hash.h"

#include <criterion/criterion.h>

Test (hash, fnv1a_gives_the_published_values)
{
    //  The test vectors of the FNV reference (64-bit FNV-1a)
    cr_assert_eq (ps_hash_fnv1a (""), 0xcbf29ce484222325ULL);
    cr_assert_eq (ps_hash_fnv1a ("a"), 0xaf63dc4c8601ec8cULL);
    cr_assert_eq (ps_hash_fnv1a ("foobar"), 0x85944171f73967e8ULL);
}

Test (hash, splitmix64_gives_the_reference_sequence)
{
    //  The first outputs of Vigna's splitmix64.c from a state of 0
    static const uint64_t expected[] = {0xe220a8397b1dcdafULL, 0x6e789e6aa1b965f4ULL,
                                        0x06c45d188009454fULL, 0xf88bb8a8724c81ecULL};
    uint64_t state = 0;
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        cr_assert_eq (ps_splitmix64 (&state), expected[i], "output %zu", i);
    cr_assert_eq (state, 4 * 0x9e3779b97f4a7c15ULL);
}
