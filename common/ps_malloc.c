/*  =========================================================================
    ps_malloc - keep freed message buffers mapped

    A fixed mmap threshold above any frame we send (frames are at most
    PS_CHUNK_BYTES, pull replies too) keeps them on the heap, and a trim
    threshold far above a step's worth of frames keeps the heap's top from
    being handed back between steps.
    ========================================================================= */

#include "ps_malloc.h"

#include <malloc.h>

void
ps_malloc_keep_mapped (void)
{
    mallopt (M_MMAP_THRESHOLD, 256 << 20);
    mallopt (M_TRIM_THRESHOLD, 1 << 30);
}
