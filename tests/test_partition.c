/*  =========================================================================
    test_partition - the slicing rule of broker groups (worker/ps_partition)

    Every element of every key lands on exactly one broker, the same one
    for every worker; the first test is the usage example.

    usage: build/test_partition [--filter 'partition/<test>'] [--verbose]
    ========================================================================= */

#include "ps_partition.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

Test (partition, usage_large_keys_spread_small_keys_stay_whole)
{
    ps_part_t parts[PS_MAX_SHARDS];
    //  A 1 M-element weight matrix over 3 brokers: three contiguous slices
    size_t n = ps_partition ("mlp.W1", 1000000, 3, parts);
    cr_assert_eq (n, 3);
    cr_assert_eq (parts[0].shard, 0);
    cr_assert_eq (parts[0].offset, 0);
    cr_assert_eq (parts[0].count, 333333);
    cr_assert_eq (parts[1].offset, 333333);
    cr_assert_eq (parts[1].count, 333333);
    cr_assert_eq (parts[2].offset, 666666);
    cr_assert_eq (parts[2].count, 333334);
    //  A bias vector stays whole, on the broker its name hashes to
    n = ps_partition ("mlp.b1", 128, 3, parts);
    cr_assert_eq (n, 1);
    cr_assert_eq (parts[0].shard, ps_partition_hash ("mlp.b1") % 3);
    cr_assert_eq (parts[0].offset, 0);
    cr_assert_eq (parts[0].count, 128);
}

//  Check that parts cover [0, size) exactly, in order, on valid shards
static void
s_assert_exact_cover (const ps_part_t *parts, size_t n, uint64_t size, uint32_t shards)
{
    uint64_t next = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq (parts[i].offset, next, "gap or overlap at part %zu", i);
        cr_assert (parts[i].shard < shards);
        next += parts[i].count;
    }
    cr_assert_eq (next, size, "covers %llu of %llu", (unsigned long long)next,
                  (unsigned long long)size);
}

Test (partition, every_element_on_exactly_one_broker)
{
    ps_part_t parts[PS_MAX_SHARDS];
    uint64_t sizes[] = {1,      2,      3,       65535,   65536,    65537,     100003,
                        131072, 999999, 1 << 20, 7 << 20, 16777259, 1ULL << 32};
    uint32_t groups[] = {1, 2, 3, 4, 7, 16, 255, 256};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
            size_t n = ps_partition ("k", sizes[s], groups[g], parts);
            cr_assert (n == 1 || n == groups[g]);
            s_assert_exact_cover (parts, n, sizes[s], groups[g]);
            if (n > 1) {
                //  Each broker gets its own slice, none more than 1 larger
                uint64_t small = sizes[s] / groups[g];
                for (size_t i = 0; i < n; i++) {
                    cr_assert_eq (parts[i].shard, i);
                    cr_assert (parts[i].count == small || parts[i].count == small + 1);
                }
            }
        }
}

Test (partition, tiny_and_small_tensors_are_whole)
{
    ps_part_t parts[PS_MAX_SHARDS];
    cr_assert_eq (ps_partition ("one", 1, 8, parts), 1);
    cr_assert_eq (parts[0].count, 1);
    cr_assert_eq (ps_partition ("edge", PS_PARTITION_MIN_ELEMS - 1, 8, parts), 1);
    cr_assert_eq (ps_partition ("edge", PS_PARTITION_MIN_ELEMS, 8, parts), 8);
}

Test (partition, same_answer_everywhere)
{
    //  Fixed values: a change to the hash would split a running group
    cr_assert_eq (ps_partition_hash (""), 0xcbf29ce484222325ULL);
    cr_assert_eq (ps_partition_hash ("a"), 0xaf63dc4c8601ec8cULL);
    cr_assert_eq (ps_partition_hash ("foobar"), 0x85944171f73967e8ULL);
    ps_part_t first[4], second[4];
    cr_assert_eq (ps_partition ("softmax.b", 10, 4, first), 1);
    cr_assert_eq (ps_partition ("softmax.b", 10, 4, second), 1);
    cr_assert_eq (first[0].shard, second[0].shard);
}

Test (partition, small_keys_spread_over_the_group)
{
    uint32_t counts[4] = {0};
    ps_part_t part;
    char name[32];
    for (int i = 0; i < 4000; i++) {
        snprintf (name, sizeof name, "layer%d.bias", i);
        cr_assert_eq (ps_partition (name, 100, 4, &part), 1);
        counts[part.shard]++;
    }
    for (int shard = 0; shard < 4; shard++)
        cr_assert (counts[shard] > 800 && counts[shard] < 1200, "broker %d holds %u of 4000", shard,
                   counts[shard]);
}

Test (partition, refuses_what_cannot_be_laid_out)
{
    ps_part_t parts[PS_MAX_SHARDS];
    cr_assert_eq (ps_partition ("k", 0, 4, parts), 0);
    cr_assert_eq (ps_partition ("k", 10, 0, parts), 0);
    cr_assert_eq (ps_partition ("k", 10, PS_MAX_SHARDS + 1, parts), 0);
    cr_assert_eq (ps_partition ("k", (1ULL << 32) + 1, 4, parts), 0);
}
