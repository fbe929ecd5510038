/*  =========================================================================
    ps_resources - memory, descriptors and byte counts (see ps_resources.h)

    The cgroup limit is read from cgroup v2's memory.max of the process's
    own group (/proc/self/cgroup names it), then from the v1 file; a value
    of "max" or a number past the machine's memory means no limit.
    ========================================================================= */

#include "ps_resources.h"
#include "ps_limits.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

//  The number in the file at path, 0 when it holds none ("max")
static uint64_t
s_read_number (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    unsigned long long value = 0;
    if (fscanf (file, "%llu", &value) != 1)
        value = 0;
    fclose (file);
    return value;
}

//  The memory limit of this process's cgroup, 0 when none or unknown
static uint64_t
s_cgroup_limit (void)
{
    FILE *file = fopen ("/proc/self/cgroup", "r");
    char line[512], path[600];
    uint64_t limit = 0;
    while (file && fgets (line, sizeof line, file)) {
        //  cgroup v2: "0::/some/group"
        if (strncmp (line, "0::", 3) == 0) {
            line[strcspn (line, "\n")] = 0;
            snprintf (path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
            limit = s_read_number (path);
            break;
        }
    }
    if (file)
        fclose (file);
    if (!limit)
        limit = s_read_number ("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    return limit;
}

uint64_t
ps_resources_ram (void)
{
    long pages = sysconf (_SC_PHYS_PAGES);
    long page_size = sysconf (_SC_PAGESIZE);
    if (pages <= 0 || page_size <= 0)
        return 0;
    uint64_t ram = (uint64_t)pages * (uint64_t)page_size;
    uint64_t cgroup = s_cgroup_limit ();
    return cgroup && cgroup < ram ? cgroup : ram;
}

uint64_t
ps_resources_share (double percent)
{
    uint64_t ram = ps_resources_ram ();
    if (!ram)
        return 0;
    double share = (double)ram * percent / 100.0;
    return share >= (double)PS_MAX_STORE_BYTES ? PS_MAX_STORE_BYTES : (uint64_t)share;
}

uint64_t
ps_resources_default_store (void)
{
    uint64_t share = ps_resources_share (PS_DEFAULT_STORE_PERCENT);
    return share ? share : PS_MAX_STORE_BYTES;
}

int
ps_resources_raise_fd_limit (uint64_t *before, uint64_t *after)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit)) {
        *before = *after = 0;
        return -1;
    }
    *before = *after = (uint64_t)limit.rlim_cur;
    rlim_t target = limit.rlim_max;
    if (target == RLIM_INFINITY) {
        //  setrlimit refuses more than the kernel's nr_open
        uint64_t nr_open = s_read_number ("/proc/sys/fs/nr_open");
        target = nr_open ? (rlim_t)nr_open : limit.rlim_cur;
    }
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= target)
        return 0;
    limit.rlim_cur = target;
    if (setrlimit (RLIMIT_NOFILE, &limit))
        return -1;
    *after = (uint64_t)target;
    return 0;
}

uint64_t
ps_resources_fd_limit (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) || limit.rlim_cur == RLIM_INFINITY)
        return 0;
    return (uint64_t)limit.rlim_cur;
}

uint64_t
ps_resources_open_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return 0;
    uint64_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (entry->d_name[0] != '.')
            count++;
    closedir (dir);
    //  Not the one opendir held
    return count ? count - 1 : 0;
}

const char *
ps_resources_bytes (uint64_t bytes, char *text, size_t size)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf (text, size, "%" PRIu64 " bytes", bytes);
        return text;
    }
    double value = (double)bytes / 1024;
    size_t unit = 0;
    while (value >= 1024 && unit + 1 < sizeof units / sizeof units[0]) {
        value /= 1024;
        unit++;
    }
    //  A whole number shows as one: "2 GiB", not "2.0 GiB"
    double tenths = (double)(uint64_t)(value * 10 + 0.5) / 10;
    if (tenths == (double)(uint64_t)tenths)
        snprintf (text, size, "%.0f %s", tenths, units[unit]);
    else
        snprintf (text, size, "%.1f %s", tenths, units[unit]);
    return text;
}
