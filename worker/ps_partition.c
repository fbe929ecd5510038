/*  =========================================================================
    ps_partition - slicing keys over a group of brokers

    The slice bounds use i * size / G in 64 bits: size is at most
    PS_MAX_TENSOR_ELEMS (2^32) and G at most 256, so the product stays
    below 2^41 and never overflows.
    ========================================================================= */

#include "ps_partition.h"
#include "ps_hash.h"
#include "ps_limits.h"

uint64_t
ps_partition_hash (const char *name)
{
    return ps_hash_fnv1a (name);
}

size_t
ps_partition (const char *name, uint64_t size, uint32_t shards, ps_part_t *parts)
{
    if (size == 0 || size > PS_MAX_TENSOR_ELEMS || shards == 0 || shards > PS_MAX_SHARDS)
        return 0;
    if (shards == 1 || size < PS_PARTITION_MIN_ELEMS) {
        parts[0] = (ps_part_t){(uint32_t)(ps_partition_hash (name) % shards), 0, size};
        return 1;
    }
    for (uint32_t shard = 0; shard < shards; shard++) {
        uint64_t begin = shard * size / shards;
        uint64_t end = (shard + 1) * size / shards;
        parts[shard] = (ps_part_t){shard, begin, end - begin};
    }
    return shards;
}
