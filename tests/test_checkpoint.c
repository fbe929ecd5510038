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
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    cr_assert_eq (ps_checkpoint_write (written, dir, path, sizeof path, NULL, NULL, &problem), 0,
                  "%s", problem.message);

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
    s_patch (path, 8, (uint8_t[]){2, 0, 0, 0}, 4);
    ps_problem_t problem;
    cr_assert_str_eq (s_refusal (path, &problem), "format version 2, this broker reads 1");
}

Test (checkpoint, another_magic_is_refused)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_write (ps_test_checkpoint_dir (dir, sizeof dir), 1, 10, path, sizeof path);
    s_patch (path, 0, "PSMQTAP1", 8);
    ps_problem_t problem;
    cr_assert (strstr (s_refusal (path, &problem), "not a psmq checkpoint"), "%s", problem.message);
}

static bool
s_cancel (void *arg)
{
    (void)arg;
    return true;
}

Test (checkpoint, a_cancelled_write_leaves_no_file)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_dir (dir, sizeof dir);
    //  Arrays larger than a buffer go out in chunks, asked about each
    ps_checkpoint_t *checkpoint = ps_test_checkpoint (5, 100000);
    ps_problem_t problem;
    cr_assert_eq (
        ps_checkpoint_write (checkpoint, dir, path, sizeof path, s_cancel, NULL, &problem), -1);
    cr_assert_str_eq (problem.message, "cancelled");
    ps_checkpoint_destroy (&checkpoint);
    char temporary[PATH_MAX + 8];
    snprintf (temporary, sizeof temporary, "%s.tmp", path);
    cr_assert (!s_exists (path));
    cr_assert (!s_exists (temporary));
}
