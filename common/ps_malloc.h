/*  =========================================================================
    ps_malloc - keep freed message buffers mapped, for programs that move
    tensors

    libzmq mallocs a buffer for every frame it receives. glibc returns
    large freed blocks to the kernel (trimming, and mmap for big blocks),
    so the next tensor faults every page in again: measured at 3-4 ms per
    64 MB step here (docs/performance.md). Our programs (psbroker,
    psworker, psbench) call this once at the start of main, before any
    thread exists; it changes the whole process, so the worker library
    never calls it by itself, but exports it for the programs that link
    it (ps_worker_keep_memory_mapped, and Python's keep_memory_mapped).
    The cost is memory: freed buffers stay with the process for reuse
    instead of going back to the system.
    ========================================================================= */

#ifndef PS_MALLOC_H_INCLUDED
#define PS_MALLOC_H_INCLUDED

#include <stdbool.h>

//  Set both thresholds: true when malloc took them (false under a malloc
//  that ignores mallopt, such as AddressSanitizer's)
bool ps_malloc_keep_mapped (void);

#endif
