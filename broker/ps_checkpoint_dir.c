/*  =========================================================================
    ps_checkpoint_dir - the folder of checkpoint files (see
    ps_checkpoint_dir.h)

    No list of the files is kept: every call reads the folder anew, so
    that what a killed broker left, or an operator moved, is what counts,
    and listing a few names costs nothing beside reading one file. The
    names are made and parsed by ps_checkpoint.c (ps_checkpoint_path,
    ps_checkpoint_sequence_of), which writes the files, so that the two
    agree; a rollback looks for its clock in each file's header alone
    (ps_checkpoint_peek_clock) and reads whole only the file it takes.

    The lock is an flock rather than a pid file alone: the kernel lets go
    of it when its process dies, so a killed broker never leaves the
    folder locked, and the pid written into it only names the holder for
    the message.
    ========================================================================= */

#include "ps_checkpoint_dir.h"
#include "ps_log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

// ------------------------------------------------------------ listing

//  snprintf into a buffer where a long path may be cut short, as it may
static void s_say (char *text, size_t size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_say (char *text, size_t size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (text, size, format, args);
    va_end (args);
}

static int
s_descending (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

//  The checkpoint files of dir (final names only), newest first, into a
//  new array (*count of them; the caller frees it), and the highest number
//  any name of ours carries (.tmp, .refused and .discarded too) in
//  *highest (0 when none). 0, or -1 with problem when dir cannot be read.
static int
s_list (const char *dir, uint64_t **sequences, size_t *count, uint64_t *highest,
        ps_problem_t *problem)
{
    *sequences = NULL;
    *count = 0;
    *highest = 0;
    DIR *stream = opendir (dir);
    if (!stream)
        return ps_problem_set (problem, 0, "cannot read checkpoint directory %s: %s", dir,
                               strerror (errno));
    uint64_t *found = malloc (PS_MAX_CHECKPOINT_FILES * sizeof *found);
    if (!found) {
        closedir (stream);
        return ps_problem_set (problem, 0, "out of memory listing %s", dir);
    }
    size_t n = 0;
    struct dirent *entry;
    while ((entry = readdir (stream))) {
        uint64_t sequence;
        if (ps_checkpoint_sequence_of (entry->d_name, ".psmq", &sequence)) {
            if (n < PS_MAX_CHECKPOINT_FILES)
                found[n++] = sequence;
        }
        else if (!ps_checkpoint_sequence_of (entry->d_name, ".psmq.tmp", &sequence) &&
                 !ps_checkpoint_sequence_of (entry->d_name, ".psmq.refused", &sequence) &&
                 !ps_checkpoint_sequence_of (entry->d_name, ".psmq.discarded", &sequence))
            continue;
        if (sequence > *highest)
            *highest = sequence;
    }
    closedir (stream);
    qsort (found, n, sizeof *found, s_descending);
    *sequences = found;
    *count = n;
    return 0;
}

// ------------------------------------------------------------ the folder

//  mkdir -p with mode 0700; 0 or -1 with errno
static int
s_make_dirs (const char *dir)
{
    char path[PATH_MAX];
    int length = snprintf (path, sizeof path, "%s", dir);
    if (length <= 0 || (size_t)length >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *slash = strchr (path + 1, '/');; slash = strchr (slash + 1, '/')) {
        if (slash)
            *slash = 0;
        if (mkdir (path, 0700) && errno != EEXIST)
            return -1;
        if (!slash)
            return 0;
        *slash = '/';
    }
}

//  The lock on dir, as ps_checkpoint_prepare_dir says
static int
s_lock (const char *dir, ps_problem_t *problem)
{
    char path[PATH_MAX];
    int length = snprintf (path, sizeof path, "%s/checkpoint.lock", dir);
    if (length < 0 || (size_t)length >= sizeof path)
        return ps_problem_set (problem, 0, "checkpoint directory name too long: %s", dir);
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ps_problem_set (problem, 0, "cannot open %s: %s", path, strerror (errno));
    if (flock (fd, LOCK_EX | LOCK_NB)) {
        int error = errno;
        char holder[32] = "";
        ssize_t got = pread (fd, holder, sizeof holder - 1, 0);
        holder[got > 0 ? got : 0] = 0;
        holder[strcspn (holder, "\n")] = 0;
        close (fd);
        if (error == EWOULDBLOCK)
            return ps_problem_set (problem, 0,
                                   "checkpoint directory %s is in use by another broker (pid %s)",
                                   dir, holder[0] ? holder : "?");
        return ps_problem_set (problem, 0, "cannot lock %s: %s", path, strerror (error));
    }
    char pid[32];
    int size = snprintf (pid, sizeof pid, "%d\n", (int)getpid ());
    if (ftruncate (fd, 0) || pwrite (fd, pid, (size_t)size, 0) != size)
        ps_warn ("cannot write our pid into %s: %s", path, strerror (errno));
    return fd;
}

int
ps_checkpoint_prepare_dir (const char *dir, ps_problem_t *problem)
{
    assert (dir);
    //  Room for our names after it
    if (!*dir || strlen (dir) > PATH_MAX - 64)
        return ps_problem_set (problem, 0, "checkpoint directory '%s': empty or too long", dir);
    struct stat info;
    if (stat (dir, &info) && (errno != ENOENT || s_make_dirs (dir) || stat (dir, &info)))
        return ps_problem_set (problem, 0, "cannot create checkpoint directory %s: %s", dir,
                               strerror (errno));
    if (!S_ISDIR (info.st_mode))
        return ps_problem_set (problem, 0, "checkpoint directory %s is not a directory", dir);
    if (access (dir, R_OK | W_OK | X_OK))
        return ps_problem_set (problem, 0, "cannot use checkpoint directory %s: %s", dir,
                               strerror (errno));
    int lock = s_lock (dir, problem);
    if (lock < 0)
        return -1;
    DIR *stream = opendir (dir);
    if (!stream) {
        close (lock);
        return ps_problem_set (problem, 0, "cannot read checkpoint directory %s: %s", dir,
                               strerror (errno));
    }
    struct dirent *entry;
    while ((entry = readdir (stream))) {
        uint64_t sequence;
        char path[PATH_MAX];
        if (ps_checkpoint_sequence_of (entry->d_name, ".psmq.tmp", &sequence) &&
            ps_checkpoint_path (path, sizeof path, dir, sequence, ".tmp") == 0) {
            ps_info ("deleting %s, a checkpoint that was being written when its broker stopped",
                     path);
            unlink (path);
        }
    }
    closedir (stream);
    return lock;
}

int
ps_checkpoint_load_newest (const char *dir, ps_checkpoint_t **loaded, ps_checkpoint_found_t *found,
                           ps_problem_t *problem)
{
    assert (dir && loaded && found);
    *loaded = NULL;
    memset (found, 0, sizeof *found);
    uint64_t *sequences, highest;
    size_t count;
    if (s_list (dir, &sequences, &count, &highest, problem))
        return -1;
    found->next_sequence = highest + 1;
    //  Why each file was refused, newest first, for the warnings
    char (*reasons)[PS_MAX_ERROR_LEN] = count ? calloc (count, sizeof *reasons) : NULL;
    if (count && !reasons) {
        free (sequences);
        return ps_problem_set (problem, 0, "out of memory listing %s", dir);
    }
    size_t index = 0;
    for (; index < count && !*loaded; index++) {
        char path[PATH_MAX];
        ps_problem_t why;
        ps_checkpoint_path (path, sizeof path, dir, sequences[index], "");
        *loaded = ps_checkpoint_read (path, &why);
        if (*loaded)
            snprintf (found->path, sizeof found->path, "%s", path);
        else {
            snprintf (reasons[index], sizeof reasons[index], "%s", why.message);
            if (index == 0)
                s_say (found->why, sizeof found->why, "%s: %s", path, why.message);
        }
    }
    int rc = 0;
    if (count && !*loaded)
        rc = ps_problem_set (problem, 0,
                             "%zu checkpoint file%s in %s and none reads whole; the newest, %s",
                             count, count > 1 ? "s" : "", dir, found->why);
    else {
        //  The files refused before the one loaded leave the rotation
        found->refused = count ? (uint32_t)(index - 1) : 0;
        for (size_t i = 0; i + 1 < index; i++) {
            char path[PATH_MAX], aside[PATH_MAX];
            ps_checkpoint_path (path, sizeof path, dir, sequences[i], "");
            ps_checkpoint_path (aside, sizeof aside, dir, sequences[i], ".refused");
            ps_warn ("checkpoint %s refused (%s): falling back to %s; the refused file is kept "
                     "as %s",
                     path, reasons[i], found->path, aside);
            rename (path, aside);
        }
    }
    free (reasons);
    free (sequences);
    return rc;
}

int
ps_checkpoint_prune (const char *dir, size_t keep, ps_problem_t *problem)
{
    uint64_t *sequences, highest;
    size_t count;
    if (s_list (dir, &sequences, &count, &highest, problem))
        return -1;
    int deleted = 0;
    for (size_t i = keep; i < count; i++) {
        char path[PATH_MAX];
        ps_checkpoint_path (path, sizeof path, dir, sequences[i], "");
        if (unlink (path) == 0)
            deleted++;
    }
    free (sequences);
    return deleted;
}

int
ps_checkpoint_load_clock (const char *dir, int64_t clock, ps_checkpoint_t **loaded,
                          ps_checkpoint_found_t *found, ps_problem_t *problem)
{
    assert (dir && loaded && found);
    *loaded = NULL;
    memset (found, 0, sizeof *found);
    uint64_t *sequences, highest;
    size_t count;
    if (s_list (dir, &sequences, &count, &highest, problem))
        return -1;
    found->next_sequence = highest + 1;
    //  found->why lists the clocks held, oldest first: "60 and 80"
    int64_t held[PS_CHECKPOINT_NAMED];
    size_t nheld = 0;
    for (size_t index = count; index-- > 0;) {
        char path[PATH_MAX];
        int64_t at;
        ps_checkpoint_path (path, sizeof path, dir, sequences[index], "");
        if (ps_checkpoint_peek_clock (path, &at))
            continue;
        if (nheld < PS_CHECKPOINT_NAMED)
            held[nheld++] = at;
        if (at != clock || *loaded)
            continue;
        ps_problem_t why;
        *loaded = ps_checkpoint_read (path, &why);
        if (*loaded) {
            snprintf (found->path, sizeof found->path, "%s", path);
            found->sequence = sequences[index];
        }
        else {
            if (!found->refused++)
                s_say (found->why, sizeof found->why, "%s: %s", path, why.message);
            //  Out of the clocks this broker names, as a start does
            char aside[PATH_MAX];
            ps_checkpoint_path (aside, sizeof aside, dir, sequences[index], ".refused");
            ps_warn ("checkpoint %s refused (%s): kept as %s", path, why.message, aside);
            rename (path, aside);
        }
    }
    free (sequences);
    if (*loaded || found->refused)
        return 0;
    size_t used = 0;
    for (size_t i = 0; i < nheld && used < sizeof found->why; i++)
        used += (size_t)snprintf (found->why + used, sizeof found->why - used, "%s%" PRId64,
                                  i == 0           ? ""
                                  : i + 1 == nheld ? " and "
                                                   : ", ",
                                  held[i]);
    return 0;
}

size_t
ps_checkpoint_held (const char *dir, int64_t *clocks, size_t max)
{
    assert (dir && (clocks || max == 0));
    uint64_t *sequences, highest;
    size_t count;
    ps_problem_t problem;
    if (s_list (dir, &sequences, &count, &highest, &problem))
        return 0;
    size_t held = 0;
    for (size_t index = 0; index < count && held < max; index++) {
        char path[PATH_MAX];
        int64_t at;
        ps_checkpoint_path (path, sizeof path, dir, sequences[index], "");
        //  A file the writer prunes meanwhile no longer opens: not held
        if (ps_checkpoint_peek_clock (path, &at))
            continue;
        bool named = false;
        for (size_t i = 0; i < held; i++)
            named |= clocks[i] == at;
        if (!named)
            clocks[held++] = at;
    }
    free (sequences);
    return held;
}

int
ps_checkpoint_discard_after (const char *dir, uint64_t sequence, ps_problem_t *problem)
{
    uint64_t *sequences, highest;
    size_t count;
    if (s_list (dir, &sequences, &count, &highest, problem))
        return -1;
    int discarded = 0;
    for (size_t i = 0; i < count && sequences[i] > sequence; i++) {
        char path[PATH_MAX], aside[PATH_MAX];
        ps_checkpoint_path (path, sizeof path, dir, sequences[i], "");
        ps_checkpoint_path (aside, sizeof aside, dir, sequences[i], ".discarded");
        if (rename (path, aside) == 0)
            discarded++;
        else
            ps_warn ("cannot rename %s to %s: %s", path, aside, strerror (errno));
    }
    free (sequences);
    //  Durable before the broker serves the past it went back to
    if (discarded > 0 && ps_checkpoint_sync_dir (dir, problem))
        return -1;
    return discarded;
}
