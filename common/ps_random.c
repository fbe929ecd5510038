/*  =========================================================================
    ps_random - secret random numbers (see ps_random.h)

    getrandom(2) with no flags blocks only until the kernel's pool is
    first initialised, at boot, and returns up to 256 bytes whole; a
    signal may interrupt it (EINTR: again). /dev/urandom serves kernels and
    sandboxes without the call (ENOSYS).
    ========================================================================= */

#include "ps_random.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int
s_urandom (unsigned char *out, size_t size)
{
    int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read (fd, out + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close (fd);
    return got == size ? 0 : -1;
}

int
ps_random_bytes (void *out, size_t size)
{
    unsigned char *bytes = out;
    size_t got = 0;
    while (got < size) {
        ssize_t n = getrandom (bytes + got, size - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return s_urandom (bytes + got, size - got);
        got += (size_t)n;
    }
    return 0;
}

uint64_t
ps_random_u64 (void)
{
    uint64_t value = 0;
    while (value == 0) {
        if (ps_random_bytes (&value, sizeof value)) {
            struct timespec now;
            clock_gettime (CLOCK_REALTIME, &now);
            value = ((uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec) ^
                    (uint64_t)getpid () << 40;
            value *= 0x9e3779b97f4a7c15ULL;
        }
    }
    return value;
}
