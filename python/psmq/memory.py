"""Keep freed message buffers mapped, as psbroker, psworker and psbench do.

libzmq mallocs a buffer for every frame it receives, and glibc hands large
freed blocks back to the kernel (mmap for big blocks, trimming the heap's
top), so the next tensor faults every page in again: a 64 MB pull then
costs some 10 ms more (docs/python.md). keep_memory_mapped() sets the same
two malloc thresholds as the C programs' ps_malloc_keep_mapped: frames stay
on the heap for reuse. It changes the whole process, so the package never
calls it by itself: a training script calls it once, early.
"""

import ctypes
import ctypes.util

#  glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#  Above any frame psmq sends or receives (PS_CHUNK_BYTES), and far above a
#  step's worth of frames, as in common/ps_malloc.c
_MMAP_THRESHOLD = 256 << 20
_TRIM_THRESHOLD = 1 << 30


def keep_memory_mapped():
    """Keep freed buffers with the process for reuse; True when set.

    False where the C library has no mallopt (not glibc): nothing changed.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
