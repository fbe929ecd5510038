/*  =========================================================================
    test_checkpoint - checkpoint files: round trip, refusals, the newest
    whole one, the two kept

    Each test writes checkpoints built here into a directory of the test's
    own and reads them back with ps_checkpoint_read or
    ps_checkpoint_load_newest, after damaging them as a crash or a disk
    would: cut short, a byte flipped, another version or magic.

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

//  A key of size elements named name, its values and state from seed
static void
s_add_key (ps_checkpoint_t *checkpoint, const char *name, uint64_t size, ps_optim_kind_t kind,
           float seed)
{
    ps_checkpoint_key_t *key = ps_checkpoint_add_key (checkpoint);
    cr_assert_not_null (key);
    snprintf (key->name, sizeof key->name, "%s", name);
    key->size = size;
    ps_optim_config_defaults (&key->optim);
    key->optim.kind = kind;
    key->optim.decay_steps = 1000;
    key->steps = 17;
    key->version = 18;
    key->values = ps_buf_new ((size_t)size);
    cr_assert_not_null (key->values);
    for (uint64_t i = 0; i < size; i++)
        ps_buf_data (key->values)[i] = seed + (float)i * 0.25f;
    for (size_t slot = 0; slot < ps_optim_state_slots (kind); slot++) {
        key->state[slot] = malloc ((size_t)size * sizeof (float));
        cr_assert_not_null (key->state[slot]);
        for (uint64_t i = 0; i < size; i++)
            key->state[slot][i] = seed * (float)(slot + 2) - (float)i;
    }
}

//  A checkpoint of 3 ranks (live at 5, never joined, gone at 3), shard 1
//  of 2, SSP 2, with an SGD key and an Adam key of size elements
static ps_checkpoint_t *
s_checkpoint (uint64_t sequence, uint64_t size)
{
    ps_checkpoint_t *checkpoint = ps_checkpoint_new (3);
    cr_assert_not_null (checkpoint);
    checkpoint->sequence = sequence;
    checkpoint->staleness = 2;
    checkpoint->shard = 1;
    checkpoint->shards = 2;
    checkpoint->ranks[0] = (ps_checkpoint_rank_t){PS_RANK_LIVE, 5};
    checkpoint->ranks[1] = (ps_checkpoint_rank_t){PS_RANK_ABSENT, 0};
    checkpoint->ranks[2] = (ps_checkpoint_rank_t){PS_RANK_GONE, 3};
    s_add_key (checkpoint, "layer1.w", size, PS_OPTIM_SGD, 1.5f);
    s_add_key (checkpoint, "layer1.b", size, PS_OPTIM_ADAM, -2.0f);
    return checkpoint;
}

//  A directory of the test's own, made usable (and let go)
static const char *
s_dir (char *dir, size_t size)
{
    ps_test_path ("checkpoints", dir, size);
    ps_problem_t problem;
    int lock = ps_checkpoint_prepare_dir (dir, &problem);
    cr_assert_geq (lock, 0, "%s", problem.message);
    close (lock);
    return dir;
}

//  Write a checkpoint numbered sequence into dir; its path into path
static void
s_write (const char *dir, uint64_t sequence, uint64_t size, char *path, size_t path_size)
{
    ps_checkpoint_t *checkpoint = s_checkpoint (sequence, size);
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_write (checkpoint, dir, path, path_size, NULL, NULL, &problem), 0,
                  "%s", problem.message);
    ps_checkpoint_destroy (&checkpoint);
}

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

//  Flip the bits of one byte of the file at path
static void
s_flip (const char *path, off_t offset)
{
    int fd = open (path, O_RDWR);
    cr_assert_geq (fd, 0);
    uint8_t byte;
    cr_assert_eq (pread (fd, &byte, 1, offset), 1);
    byte ^= 0xff;
    cr_assert_eq (pwrite (fd, &byte, 1, offset), 1);
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
    s_dir (dir, sizeof dir);

    //  A checkpoint as the broker fills it: settings, ranks, keys
    ps_checkpoint_t *written = s_checkpoint (7, 5);
    char path[PATH_MAX];
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_write (written, dir, path, sizeof path, NULL, NULL, &problem), 0,
                  "%s", problem.message);

    //  Named after its number, no temporary file left, as long as said
    char expected[PATH_MAX];
    snprintf (expected, sizeof expected, "%s/checkpoint-000007.psmq", dir);
    cr_assert_str_eq (path, expected);
    cr_assert (!s_exists ("checkpoint-000007.psmq.tmp"));
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
    s_write (s_dir (dir, sizeof dir), 1, 1000, path, sizeof path);
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
    s_write (s_dir (dir, sizeof dir), 1, 1000, path, sizeof path);
    off_t size = s_file_size (path);
    //  A value, a rank's clock, a key's size (a length that now runs past
    //  the end: the checksum is named first), the checksum itself
    off_t offsets[] = {size / 2, 72 + 4, 72 + 3 * 12 + 2 + 8 + 3, size - 2};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        s_flip (path, offsets[i]);
        ps_problem_t problem;
        cr_assert (strstr (s_refusal (path, &problem), "checksum mismatch"), "byte %ld: %s",
                   (long)offsets[i], problem.message);
        s_flip (path, offsets[i]);
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
    s_write (s_dir (dir, sizeof dir), 1, 10, path, sizeof path);
    s_patch (path, 8, (uint8_t[]){2, 0, 0, 0}, 4);
    ps_problem_t problem;
    cr_assert_str_eq (s_refusal (path, &problem), "format version 2, this broker reads 1");
}

Test (checkpoint, another_magic_is_refused)
{
    char dir[256], path[PATH_MAX];
    s_write (s_dir (dir, sizeof dir), 1, 10, path, sizeof path);
    s_patch (path, 0, "PSMQTAP1", 8);
    ps_problem_t problem;
    cr_assert (strstr (s_refusal (path, &problem), "not a psmq checkpoint"), "%s", problem.message);
}

Test (checkpoint, a_torn_newest_file_falls_back_to_the_previous)
{
    char dir[256], first[PATH_MAX], second[PATH_MAX];
    s_dir (dir, sizeof dir);
    s_write (dir, 41, 100, first, sizeof first);
    s_write (dir, 42, 100, second, sizeof second);
    cr_assert_eq (truncate (second, 1000), 0);

    ps_checkpoint_t *loaded;
    ps_checkpoint_found_t found;
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), 0, "%s",
                  problem.message);
    cr_assert_not_null (loaded);
    cr_assert_eq (loaded->sequence, 41);
    cr_assert_str_eq (found.path, first);
    cr_assert_eq (found.refused, 1);
    cr_assert (strstr (found.why, "checkpoint-000042.psmq: truncated"), "%s", found.why);
    //  The torn file leaves the rotation, kept aside; numbers go on after it
    char aside[PATH_MAX + 16];
    snprintf (aside, sizeof aside, "%s.refused", second);
    cr_assert (!s_exists (second));
    cr_assert (s_exists (aside));
    cr_assert_eq (found.next_sequence, 43);
    ps_checkpoint_destroy (&loaded);
}

Test (checkpoint, no_whole_file_is_an_error_and_nothing_is_moved)
{
    char dir[256], path[PATH_MAX];
    s_dir (dir, sizeof dir);
    s_write (dir, 3, 100, path, sizeof path);
    s_flip (path, 200);
    ps_checkpoint_t *loaded;
    ps_checkpoint_found_t found;
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), -1);
    cr_assert_null (loaded);
    cr_assert (strstr (problem.message, "none reads whole"), "%s", problem.message);
    cr_assert (strstr (problem.message, "checksum mismatch"), "%s", problem.message);
    cr_assert (s_exists (path));
}

Test (checkpoint, an_empty_directory_holds_none)
{
    char dir[256];
    s_dir (dir, sizeof dir);
    ps_checkpoint_t *loaded;
    ps_checkpoint_found_t found;
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), 0);
    cr_assert_null (loaded);
    cr_assert_str_eq (found.path, "");
    cr_assert_eq (found.next_sequence, 1);
}

Test (checkpoint, the_newest_is_the_highest_number_past_six_digits)
{
    char dir[256], path[PATH_MAX];
    s_dir (dir, sizeof dir);
    s_write (dir, 999999, 4, path, sizeof path);
    s_write (dir, 1000000, 4, path, sizeof path);
    cr_assert (strstr (path, "checkpoint-1000000.psmq"), "%s", path);
    ps_checkpoint_t *loaded;
    ps_checkpoint_found_t found;
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), 0);
    cr_assert_eq (loaded->sequence, 1000000);
    cr_assert_eq (found.next_sequence, 1000001);
    ps_checkpoint_destroy (&loaded);
}

Test (checkpoint, prune_keeps_the_two_newest)
{
    char dir[256], path[PATH_MAX];
    s_dir (dir, sizeof dir);
    for (uint64_t sequence = 1; sequence <= 4; sequence++)
        s_write (dir, sequence, 4, path, sizeof path);
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_prune (dir, PS_CHECKPOINT_KEEP, &problem), 2);
    for (uint64_t sequence = 1; sequence <= 4; sequence++) {
        snprintf (path, sizeof path, "%s/checkpoint-%06lu.psmq", dir, (unsigned long)sequence);
        cr_assert_eq (s_exists (path), sequence > 2, "%s", path);
    }
}

Test (checkpoint, prepare_makes_the_directory_and_drops_temporary_files)
{
    char dir[256], stale[PATH_MAX];
    ps_test_path ("a/b/checkpoints", dir, sizeof dir);
    ps_problem_t problem;
    int lock = ps_checkpoint_prepare_dir (dir, &problem);
    cr_assert_geq (lock, 0, "%s", problem.message);
    struct stat info;
    cr_assert_eq (stat (dir, &info), 0);
    cr_assert_eq (info.st_mode & 0777, 0700);
    //  Held: nobody else may write there, nor clean up
    snprintf (stale, sizeof stale, "%s/checkpoint-000009.psmq.tmp", dir);
    FILE *file = fopen (stale, "w");
    cr_assert_not_null (file);
    fclose (file);
    cr_assert_eq (ps_checkpoint_prepare_dir (dir, &problem), -1);
    char pid[64];
    snprintf (pid, sizeof pid, "in use by another broker (pid %d)", (int)getpid ());
    cr_assert (strstr (problem.message, pid), "%s", problem.message);
    cr_assert (s_exists (stale));
    //  Let go: what a broker killed while writing left is deleted
    close (lock);
    lock = ps_checkpoint_prepare_dir (dir, &problem);
    cr_assert_geq (lock, 0, "%s", problem.message);
    cr_assert (!s_exists (stale));
    close (lock);
}

Test (checkpoint, a_directory_that_is_a_file_is_refused)
{
    char path[256];
    ps_test_path ("plain-file", path, sizeof path);
    FILE *file = fopen (path, "w");
    cr_assert_not_null (file);
    fclose (file);
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_prepare_dir (path, &problem), -1);
    cr_assert (strstr (problem.message, path), "%s", problem.message);
    cr_assert (strstr (problem.message, "not a directory"), "%s", problem.message);
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
    s_dir (dir, sizeof dir);
    //  Arrays larger than a buffer go out in chunks, asked about each
    ps_checkpoint_t *checkpoint = s_checkpoint (5, 100000);
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
