/*  =========================================================================
    ps_malloc - keep freed message buffers mapped

    A fixed mmap threshold above any frame we send (frames are at most
    PS_CHUNK_BYTES, pull replies too) keeps them on the heap, and a trim
    threshold far above a step's worth of frames keeps the heap's top from
    being handed back between steps.
    ========================================================================= */

#include "ps_malloc.h"

#include <malloc.h>

bool
ps_malloc_keep_mapped (void)
{
    //  mallopt returns 1 on success, 0 on error
    bool mmap_set = mallopt (M_MMAP_THRESHOLD, 256 << 20) == 1;
    bool trim_set = mallopt (M_TRIM_THRESHOLD, 1 << 30) == 1;
    return mmap_set && trim_set;
}
