/*  =========================================================================
    ps_partition - which broker of a group holds which elements of a key

    The rule, which every worker and broker computes the same way from the
    key's name and size and the number of brokers G:
      - a tensor of fewer than PS_PARTITION_MIN_ELEMS elements lives whole
        on one broker: number ps_partition_hash (name) mod G;
      - a larger tensor is cut into G contiguous slices, slice i holding
        elements [floor (i * size / G), floor ((i + 1) * size / G)) on
        broker i, so slices differ by at most one element.
    Small keys spread over the group by their names; large ones load every
    broker evenly. The hash is FNV-1a over the name's bytes (ps_hash.h),
    fixed so that machines of any kind agree.

    Pure functions; any thread.
    ========================================================================= */

#ifndef PS_PARTITION_H_INCLUDED
#define PS_PARTITION_H_INCLUDED

#include "ps_limits.h"

#include <stddef.h>
#include <stdint.h>

//  Tensors this small (64 K floats, 256 KB) are not sliced
#define PS_PARTITION_MIN_ELEMS (64 * 1024)

typedef struct {
    uint32_t shard;  //  broker, 0 .. shards-1
    uint64_t offset; //  first element of the key it holds
    uint64_t count;  //  elements it holds
} ps_part_t;

//  64-bit FNV-1a of the name
uint64_t ps_partition_hash (const char *name);
//  Lay a key of size elements over shards brokers: fills parts (room for
//  shards entries) in element order and returns how many, 1 or shards.
//  0 when size is 0 or shards is not 1..PS_MAX_SHARDS.
size_t ps_partition (const char *name, uint64_t size, uint32_t shards, ps_part_t *parts);

#endif
