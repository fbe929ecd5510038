"""Keep freed message buffers mapped, as psbroker, psworker and psbench do.

libzmq mallocs a buffer for every frame it receives, and glibc hands large
freed blocks back to the kernel (mmap for big blocks, trimming the heap's
top), so the next tensor faults every page in again: a 64 MB pull then
costs some 10 ms more (docs/python.md). keep_memory_mapped() is the C
library's ps_worker_keep_memory_mapped: the same two malloc thresholds as
the C programs set, so that frames stay on the heap for reuse. It changes
the whole process, so the package never calls it by itself: a training
script calls it once, early.
"""

from . import _lib


def keep_memory_mapped():
    """Keep freed buffers with the process for reuse; True when set.

    False where malloc ignores the settings (not glibc's): nothing changed.
    """
    return _lib.lib.ps_worker_keep_memory_mapped() == 1
