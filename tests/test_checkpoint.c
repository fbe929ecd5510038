/*  =========================================================================
    test_checkpoint - one checkpoint file: round trip, refusals, a write
    given up (the folder of them: test_checkpoint_dir.c)

    Each test writes checkpoints built by ps_test_checkpoint into a
    directory of the test's own and reads them back with
    ps_checkpoint_read, after damaging them as a crash or a disk would:
    cut short, a byte flipped, another version or magic.

    usage: build/test_checkpoint [--filter 'checkpoint/<test>']
    ========================================================================= */

#include "ps_checkpoint.h"
#include "ps_dtype.h"
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

//  Why reading path is refused (it must be)
static const char *
s_refusal (const char *path, ps_problem_t *problem)
{
    ps_checkpoint_t *read = ps_checkpoint_read (path, problem);
    cr_assert_null (read, "%s was read although it should not be", path);
    return problem->message;
}

static off_t
s_file_size (const char *path)
{
    struct stat info;
    cr_assert_eq (stat (path, &info), 0, "%s", path);
    return info.st_size;
}

//  Overwrite bytes of the file at path at offset
static void
s_patch (const char *path, off_t offset, const void *bytes, size_t size)
{
    int fd = open (path, O_WRONLY);
    cr_assert_geq (fd, 0);
    cr_assert_eq (pwrite (fd, bytes, size, offset), (ssize_t)size);
    close (fd);
}

static bool
s_exists (const char *path)
{
    return access (path, F_OK) == 0;
}

Test (checkpoint, usage)
{
    //  A directory, made if missing
    char dir[256];
    ps_test_checkpoint_dir (dir, sizeof dir);

    //  A checkpoint as the broker fills it: settings, ranks, keys
    ps_checkpoint_t *written = ps_test_checkpoint (7, 5);
    char path[PATH_MAX];
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_write (written, dir, path, sizeof path, NULL, &problem), 0, "%s",
                  problem.message);

    //  Named after its number, no temporary file left, as long as said
    char expected[PATH_MAX];
    snprintf (expected, sizeof expected, "%s/checkpoint-000007.psmq", dir);
    cr_assert_str_eq (path, expected);
    char temporary[PATH_MAX + 8];
    snprintf (temporary, sizeof temporary, "%s.tmp", path);
    cr_assert (!s_exists (temporary), "%s is left", temporary);
    cr_assert_eq ((uint64_t)s_file_size (path), ps_checkpoint_bytes (written));
    //  The clock recorded: the slowest rank that is not gone (never
    //  joined counts, at 0)
    cr_assert_eq (written->clock, 0);

    //  Read back: every field, every bit
    ps_checkpoint_t *read = ps_checkpoint_read (path, &problem);
    cr_assert_not_null (read, "%s", problem.message);
    cr_assert_eq (read->sequence, 7);
    cr_assert_eq (read->written_ms, written->written_ms);
    cr_assert_eq (read->world, 3);
    cr_assert_eq (read->staleness, 2);
    cr_assert_eq (read->shard, 1);
    cr_assert_eq (read->shards, 2);
    cr_assert_eq (read->clock, 0);
    for (uint32_t rank = 0; rank < 3; rank++) {
        cr_assert_eq (read->ranks[rank].state, written->ranks[rank].state, "rank %u", rank);
        cr_assert_eq (read->ranks[rank].clock, written->ranks[rank].clock, "rank %u", rank);
    }
    cr_assert_eq (read->nkeys, 2);
    for (size_t i = 0; i < 2; i++) {
        const ps_checkpoint_key_t *got = &read->keys[i], *want = &written->keys[i];
        cr_assert_str_eq (got->name, want->name);
        cr_assert_eq (got->size, want->size);
        cr_assert_eq (memcmp (&got->optim, &want->optim, sizeof got->optim), 0, "%s", got->name);
        cr_assert_eq (got->steps, 17);
        cr_assert_eq (got->version, 18);
        cr_assert_eq (memcmp (ps_buf_data (got->values), ps_buf_data (want->values), 5 * 4), 0);
        for (size_t slot = 0; slot < 2; slot++) {
            cr_assert_eq (got->state[slot] != NULL, want->state[slot] != NULL);
            if (want->state[slot])
                cr_assert_eq (memcmp (got->state[slot], want->state[slot], 5 * 4), 0);
        }
    }
    ps_checkpoint_destroy (&read);
    ps_checkpoint_destroy (&written);
    cr_assert_null (written);
}

//  Pages of the file at path that are in the page cache
static size_t
s_cached_pages (const char *path)
{
    int fd = open (path, O_RDONLY);
    cr_assert_geq (fd, 0, "%s", path);
    size_t length = (size_t)s_file_size (path);
    void *map = mmap (NULL, length, PROT_READ, MAP_SHARED, fd, 0);
    cr_assert_neq (map, MAP_FAILED);
    size_t page = (size_t)sysconf (_SC_PAGESIZE), pages = (length + page - 1) / page;
    unsigned char *resident = malloc (pages);
    cr_assert_eq (mincore (map, length, resident), 0);
    size_t cached = 0;
    for (size_t i = 0; i < pages; i++)
        cached += resident[i] & 1;
    free (resident);
    munmap (map, length);
    close (fd);
    return cached;
}

//  Whether the file system of dir takes O_DIRECT writes
static bool
s_takes_direct (const char *dir)
{
    char probe[PATH_MAX];
    snprintf (probe, sizeof probe, "%s/direct-probe", dir);
    int fd = open (probe, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0600);
    bool takes = false;
    if (fd >= 0) {
        void *block = NULL;
        cr_assert_eq (posix_memalign (&block, 4096, 4096), 0);
        memset (block, 0, 4096);
        takes = write (fd, block, 4096) == 4096;
        free (block);
        close (fd);
    }
    unlink (probe);
    return takes;
}

Test (checkpoint, a_large_file_is_zlibs_crc_and_stays_out_of_the_page_cache)
{
    //  Keys of many staging buffers, a length no multiple of a block, on
    //  this disk and on a tmpfs (the writer falls back to the page cache
    //  where a file system refuses O_DIRECT)
    char dirs[2][256];
    ps_test_checkpoint_dir (dirs[0], sizeof dirs[0]);
    snprintf (dirs[1], sizeof dirs[1], "/dev/shm/psmq-test-checkpoint-%d", (int)getpid ());
    cr_assert (mkdir (dirs[1], 0700) == 0, "%s", dirs[1]);
    for (size_t d = 0; d < 2; d++) {
        ps_checkpoint_t *written = ps_test_checkpoint (3, 1000003);
        char path[PATH_MAX];
        ps_problem_t problem;
        cr_assert_eq (ps_checkpoint_write (written, dirs[d], path, sizeof path, NULL, &problem), 0,
                      "%s", problem.message);
        uint64_t length = ps_checkpoint_bytes (written);
        cr_assert_eq ((uint64_t)s_file_size (path), length, "%s", path);
        //  Written through O_DIRECT where the disk takes it: not one page
        //  of 24 MB left in the page cache (a buffered write leaves them)
        if (d == 0 && s_takes_direct (dirs[d]))
            cr_assert_eq (s_cached_pages (path), 0, "%s", path);

        //  The trailer holds zlib's CRC-32 of every byte before it: the
        //  format is still version 1, whoever computes it
        uint8_t *bytes = malloc (length);
        int fd = open (path, O_RDONLY);
        cr_assert_eq (read (fd, bytes, length), (ssize_t)length, "%s", path);
        close (fd);
        uLong crc = crc32 (0, (const Bytef *)bytes, (uInt)(length - 4));
        const uint8_t *stored = bytes + length - 4;
        uint32_t says = (uint32_t)stored[0] | (uint32_t)stored[1] << 8 | (uint32_t)stored[2] << 16 |
                        (uint32_t)stored[3] << 24;
        cr_assert_eq (says, (uint32_t)crc, "%s", path);
        free (bytes);

        //  And it reads back, every value
        ps_checkpoint_t *read = ps_checkpoint_read (path, &problem);
        cr_assert_not_null (read, "%s", problem.message);
        for (size_t i = 0; i < read->nkeys; i++)
            cr_assert_eq (memcmp (ps_buf_data (read->keys[i].values),
                                  ps_buf_data (written->keys[i].values), 1000003 * 4),
                          0, "%s", read->keys[i].name);
        ps_checkpoint_destroy (&read);
        ps_checkpoint_destroy (&written);
        cr_assert_eq (unlink (path), 0);
    }
    cr_assert_eq (rmdir (dirs[1]), 0);
}

Test (checkpoint, a_truncated_file_is_refused)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_write (ps_test_checkpoint_dir (dir, sizeof dir), 1, 1000, path, sizeof path);
    off_t size = s_file_size (path);
    //  Cut anywhere: in the arrays, in the header, before the trailer
    off_t cuts[] = {size / 2, 40, size - 1, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        cr_assert_eq (truncate (path, cuts[i]), 0);
        ps_problem_t problem;
        cr_assert (strstr (s_refusal (path, &problem), "truncated"), "cut at %ld: %s",
                   (long)cuts[i], problem.message);
    }
}

Test (checkpoint, a_flipped_byte_is_refused)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_write (ps_test_checkpoint_dir (dir, sizeof dir), 1, 1000, path, sizeof path);
    off_t size = s_file_size (path);
    //  A value, a rank's clock, a key's size (a length that now runs past
    //  the end: the checksum is named first), the checksum itself
    off_t offsets[] = {size / 2, 72 + 4, 72 + 3 * 12 + 2 + 8 + 3, size - 2};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        ps_test_flip (path, offsets[i]);
        ps_problem_t problem;
        cr_assert (strstr (s_refusal (path, &problem), "checksum mismatch"), "byte %ld: %s",
                   (long)offsets[i], problem.message);
        ps_test_flip (path, offsets[i]);
    }
    //  Flipped back, it reads again
    ps_problem_t problem;
    ps_checkpoint_t *read = ps_checkpoint_read (path, &problem);
    cr_assert_not_null (read, "%s", problem.message);
    ps_checkpoint_destroy (&read);
}

Test (checkpoint, another_format_version_is_refused)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_write (ps_test_checkpoint_dir (dir, sizeof dir), 1, 10, path, sizeof path);
    s_patch (path, 8, (uint8_t[]){3, 0, 0, 0}, 4);
    ps_problem_t problem;
    cr_assert_str_eq (s_refusal (path, &problem), "format version 3, this broker reads 1 to 2");
}

//  The format version in the file's header
static uint32_t
s_format_of (const char *path)
{
    uint8_t bytes[4];
    FILE *file = fopen (path, "rb");
    cr_assert_not_null (file);
    cr_assert_eq (fseek (file, 8, SEEK_SET), 0);
    cr_assert_eq (fread (bytes, 1, 4, file), 4);
    fclose (file);
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
           (uint32_t)bytes[3] << 24;
}

Test (checkpoint, a_16_bit_keys_dtype_is_kept_in_format_2)
{
    //  Every key f32: format 1, which brokers before wire dtypes read
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_dir (dir, sizeof dir);
    ps_checkpoint_t *written = ps_test_checkpoint (3, 5);
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_write (written, dir, path, sizeof path, NULL, &problem), 0, "%s",
                  problem.message);
    cr_assert_eq (s_format_of (path), 1);
    ps_checkpoint_t *read = ps_checkpoint_read (path, &problem);
    cr_assert_not_null (read, "%s", problem.message);
    cr_assert_eq (read->keys[0].dtype, PS_DTYPE_F32);
    ps_checkpoint_destroy (&read);

    //  A key in bf16: format 2, each key's dtype read back
    written->sequence = 4;
    written->keys[1].dtype = PS_DTYPE_BF16;
    cr_assert_eq (ps_checkpoint_write (written, dir, path, sizeof path, NULL, &problem), 0, "%s",
                  problem.message);
    cr_assert_eq (s_format_of (path), 2);
    cr_assert_eq ((uint64_t)s_file_size (path), ps_checkpoint_bytes (written));
    read = ps_checkpoint_read (path, &problem);
    cr_assert_not_null (read, "%s", problem.message);
    cr_assert_eq (read->keys[0].dtype, PS_DTYPE_F32);
    cr_assert_eq (read->keys[1].dtype, PS_DTYPE_BF16);
    cr_assert_eq (memcmp (ps_buf_data (read->keys[1].values), ps_buf_data (written->keys[1].values),
                          5 * sizeof (float)),
                  0);
    ps_checkpoint_destroy (&read);
    ps_checkpoint_destroy (&written);
}

Test (checkpoint, another_magic_is_refused)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_write (ps_test_checkpoint_dir (dir, sizeof dir), 1, 10, path, sizeof path);
    s_patch (path, 0, "PSMQTAP1", 8);
    ps_problem_t problem;
    cr_assert (strstr (s_refusal (path, &problem), "not a psmq checkpoint"), "%s", problem.message);
}

static ps_checkpoint_control_t
s_cancel (void *arg)
{
    (void)arg;
    return PS_CHECKPOINT_CANCEL;
}

Test (checkpoint, a_cancelled_write_leaves_no_file)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_dir (dir, sizeof dir);
    //  Arrays larger than a buffer go out in chunks, asked about each
    ps_checkpoint_t *checkpoint = ps_test_checkpoint (5, 100000);
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_write (checkpoint, dir, path, sizeof path,
                                       &(ps_checkpoint_io_t){.control = s_cancel}, &problem),
                  -1);
    cr_assert_str_eq (problem.message, "cancelled");
    ps_checkpoint_destroy (&checkpoint);
    char temporary[PATH_MAX + 8];
    snprintf (temporary, sizeof temporary, "%s.tmp", path);
    cr_assert (!s_exists (path));
    cr_assert (!s_exists (temporary));
}

//  A control that says GO the first times it is asked, then then
typedef struct {
    int asked;
    int go;
    ps_checkpoint_control_t then;
} control_t;

static ps_checkpoint_control_t
s_control (void *arg)
{
    control_t *control = arg;
    return ++control->asked <= control->go ? PS_CHECKPOINT_GO : control->then;
}

//  Write a checkpoint of two keys of 1 M floats, one with Adam's state
//  (16 MB), with io; its status, and the seconds it took into *seconds
static int
s_write_timed (const ps_checkpoint_io_t *io, char *dir, size_t dir_size, char *path,
               size_t path_size, double *seconds, ps_problem_t *problem)
{
    ps_test_checkpoint_dir (dir, dir_size);
    ps_checkpoint_t *checkpoint = ps_test_checkpoint (3, 1 << 20);
    int64_t started = zclock_usecs ();
    int rc = ps_checkpoint_write (checkpoint, dir, path, path_size, io, problem);
    *seconds = (double)(zclock_usecs () - started) / 1e6;
    ps_checkpoint_destroy (&checkpoint);
    return rc;
}

Test (checkpoint, a_paced_write_keeps_to_its_rate)
{
    //  At 40 MB/s the bytes before the last chunk (at least 12 MB of the
    //  16) cannot be out in less than 0.3 s; the file is whole
    char dir[256], path[PATH_MAX];
    control_t control = {.go = 1000000};
    ps_checkpoint_io_t io = {.control = s_control, .arg = &control, .rate = 40 << 20};
    double seconds;
    ps_problem_t problem;
    cr_assert_eq (s_write_timed (&io, dir, sizeof dir, path, sizeof path, &seconds, &problem), 0,
                  "%s", problem.message);
    cr_assert_geq (seconds, 0.29, "16 MB at 40 MB/s took %.3f s", seconds);
    //  Asked between chunks and after each slice of the sleeps
    cr_assert_geq (control.asked, 8, "asked %d times", control.asked);
    ps_checkpoint_t *read = ps_checkpoint_read (path, &problem);
    cr_assert_not_null (read, "%s", problem.message);
    ps_checkpoint_destroy (&read);
}

Test (checkpoint, a_hurry_ends_the_pacing)
{
    //  At 1 MB/s the write would take 12 s or more; a HURRY at the third
    //  question lets it end at the disk's speed
    char dir[256], path[PATH_MAX];
    control_t control = {.go = 2, .then = PS_CHECKPOINT_HURRY};
    ps_checkpoint_io_t io = {.control = s_control, .arg = &control, .rate = 1 << 20};
    double seconds;
    ps_problem_t problem;
    cr_assert_eq (s_write_timed (&io, dir, sizeof dir, path, sizeof path, &seconds, &problem), 0,
                  "%s", problem.message);
    cr_assert_lt (seconds, 6, "the write took %.3f s after a hurry", seconds);
    ps_checkpoint_t *read = ps_checkpoint_read (path, &problem);
    cr_assert_not_null (read, "%s", problem.message);
    ps_checkpoint_destroy (&read);
}

Test (checkpoint, a_paced_write_is_cancelled_while_it_waits)
{
    char dir[256], path[PATH_MAX];
    control_t control = {.go = 3, .then = PS_CHECKPOINT_CANCEL};
    ps_checkpoint_io_t io = {.control = s_control, .arg = &control, .rate = 1 << 20};
    double seconds;
    ps_problem_t problem;
    cr_assert_eq (s_write_timed (&io, dir, sizeof dir, path, sizeof path, &seconds, &problem), -1);
    cr_assert_str_eq (problem.message, "cancelled");
    cr_assert_lt (seconds, 6, "the cancel took %.3f s", seconds);
    char temporary[PATH_MAX + 8];
    snprintf (temporary, sizeof temporary, "%s.tmp", path);
    cr_assert (!s_exists (path));
    cr_assert (!s_exists (temporary));
}
