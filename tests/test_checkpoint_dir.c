/*  =========================================================================
    test_checkpoint_dir - the folder of checkpoint files: the lock, the
    newest whole one, the two kept, the files set aside

    Each test fills a directory of its own with checkpoints built by
    ps_test_checkpoint, damages some as a crash or a disk would, and asks
    the folder what to load, what to keep and what to set aside.

    usage: build/test_checkpoint_dir [--filter 'checkpoint_dir/<test>']
    ========================================================================= */

#include "ps_checkpoint_dir.h"
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool
s_exists (const char *path)
{
    return access (path, F_OK) == 0;
}

//  Write a checkpoint numbered sequence into dir whose job clock is clock
//  (ranks 0 and 1 live there, rank 2 gone); its path into path
static void
s_write_at (const char *dir, uint64_t sequence, int64_t clock, char *path, size_t path_size)
{
    ps_checkpoint_t *checkpoint = ps_test_checkpoint (sequence, 4);
    checkpoint->ranks[0] = (ps_checkpoint_rank_t){PS_RANK_LIVE, clock};
    checkpoint->ranks[1] = (ps_checkpoint_rank_t){PS_RANK_LIVE, clock};
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_write (checkpoint, dir, path, path_size, NULL, &problem), 0, "%s",
                  problem.message);
    ps_checkpoint_destroy (&checkpoint);
}

Test (checkpoint_dir, usage)
{
    //  A broker takes its folder: made when missing, locked while it runs
    char dir[256];
    ps_test_path ("checkpoints", dir, sizeof dir);
    ps_problem_t problem;
    int lock = ps_checkpoint_prepare_dir (dir, &problem);
    cr_assert_geq (lock, 0, "%s", problem.message);

    //  Nothing to restore yet; the first file will be number 1
    ps_checkpoint_t *loaded;
    ps_checkpoint_found_t found;
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), 0, "%s",
                  problem.message);
    cr_assert_null (loaded);
    cr_assert_eq (found.next_sequence, 1);

    //  Its writer writes checkpoints of job clocks 10, 20 and 30, keeping
    //  the newest two after each
    char path[PATH_MAX];
    for (uint64_t sequence = 1; sequence <= 3; sequence++) {
        s_write_at (dir, sequence, 10 * (int64_t)sequence, path, sizeof path);
        cr_assert_geq (ps_checkpoint_prune (dir, PS_CHECKPOINT_KEEP, &problem), 0, "%s",
                       problem.message);
    }

    //  Started again, it restores the newest
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), 0, "%s",
                  problem.message);
    cr_assert_eq (loaded->clock, 30);
    cr_assert_str_eq (found.path, path);
    cr_assert_eq (found.next_sequence, 4);
    ps_checkpoint_destroy (&loaded);

    //  Its group rolls back to clock 20: that file, and the newer one set
    //  aside so that no later start restores it
    cr_assert_eq (ps_checkpoint_load_clock (dir, 20, &loaded, &found, &problem), 0, "%s",
                  problem.message);
    cr_assert_not_null (loaded);
    cr_assert_eq (loaded->clock, 20);
    cr_assert_eq (found.sequence, 2);
    ps_checkpoint_destroy (&loaded);
    cr_assert_eq (ps_checkpoint_discard_after (dir, found.sequence, &problem), 1);
    char aside[PATH_MAX + 16];
    snprintf (aside, sizeof aside, "%s.discarded", path);
    cr_assert (!s_exists (path));
    cr_assert (s_exists (aside));

    //  Clock 10 was pruned: what the folder holds is named instead
    cr_assert_eq (ps_checkpoint_load_clock (dir, 10, &loaded, &found, &problem), 0);
    cr_assert_null (loaded);
    cr_assert_str_eq (found.why, "20");
    close (lock);
}

Test (checkpoint_dir, a_torn_newest_file_falls_back_to_the_previous)
{
    char dir[256], first[PATH_MAX], second[PATH_MAX];
    ps_test_checkpoint_dir (dir, sizeof dir);
    ps_test_checkpoint_write (dir, 41, 100, first, sizeof first);
    ps_test_checkpoint_write (dir, 42, 100, second, sizeof second);
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

Test (checkpoint_dir, no_whole_file_is_an_error_and_nothing_is_moved)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_dir (dir, sizeof dir);
    ps_test_checkpoint_write (dir, 3, 100, path, sizeof path);
    ps_test_flip (path, 200);
    ps_checkpoint_t *loaded;
    ps_checkpoint_found_t found;
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), -1);
    cr_assert_null (loaded);
    cr_assert (strstr (problem.message, "none reads whole"), "%s", problem.message);
    cr_assert (strstr (problem.message, "checksum mismatch"), "%s", problem.message);
    cr_assert (s_exists (path));
}

Test (checkpoint_dir, an_empty_directory_holds_none)
{
    char dir[256];
    ps_test_checkpoint_dir (dir, sizeof dir);
    ps_checkpoint_t *loaded;
    ps_checkpoint_found_t found;
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), 0);
    cr_assert_null (loaded);
    cr_assert_str_eq (found.path, "");
    cr_assert_eq (found.next_sequence, 1);
}

Test (checkpoint_dir, the_newest_is_the_highest_number_past_six_digits)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_dir (dir, sizeof dir);
    ps_test_checkpoint_write (dir, 999999, 4, path, sizeof path);
    ps_test_checkpoint_write (dir, 1000000, 4, path, sizeof path);
    cr_assert (strstr (path, "checkpoint-1000000.psmq"), "%s", path);
    ps_checkpoint_t *loaded;
    ps_checkpoint_found_t found;
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_load_newest (dir, &loaded, &found, &problem), 0);
    cr_assert_eq (loaded->sequence, 1000000);
    cr_assert_eq (found.next_sequence, 1000001);
    ps_checkpoint_destroy (&loaded);
}

Test (checkpoint_dir, prune_keeps_the_two_newest)
{
    char dir[256], path[PATH_MAX];
    ps_test_checkpoint_dir (dir, sizeof dir);
    for (uint64_t sequence = 1; sequence <= 4; sequence++)
        ps_test_checkpoint_write (dir, sequence, 4, path, sizeof path);
    ps_problem_t problem;
    cr_assert_eq (ps_checkpoint_prune (dir, PS_CHECKPOINT_KEEP, &problem), 2);
    for (uint64_t sequence = 1; sequence <= 4; sequence++) {
        snprintf (path, sizeof path, "%s/checkpoint-%06lu.psmq", dir, (unsigned long)sequence);
        cr_assert_eq (s_exists (path), sequence > 2, "%s", path);
    }
}

Test (checkpoint_dir, prepare_makes_the_directory_and_drops_temporary_files)
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

Test (checkpoint_dir, a_directory_that_is_a_file_is_refused)
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

Test (checkpoint_dir, the_clocks_held_are_those_of_whole_files_newest_first)
{
    //  What a group's member names in its HELLO replies: files of clocks
    //  10, 20, 30 and 40, the one of 30 torn, one of 20 written twice
    char dir[256], path[PATH_MAX];
    ps_test_path ("held", dir, sizeof dir);
    ps_problem_t problem;
    int lock = ps_checkpoint_prepare_dir (dir, &problem);
    cr_assert_geq (lock, 0, "%s", problem.message);
    int64_t clocks[PS_MAX_HELD_CHECKPOINTS];
    cr_assert_eq (ps_checkpoint_held (dir, clocks, PS_MAX_HELD_CHECKPOINTS), 0);
    s_write_at (dir, 1, 10, path, sizeof path);
    s_write_at (dir, 2, 20, path, sizeof path);
    s_write_at (dir, 3, 20, path, sizeof path);
    s_write_at (dir, 4, 30, path, sizeof path);
    struct stat info;
    cr_assert_eq (stat (path, &info), 0);
    cr_assert_eq (truncate (path, info.st_size - 1), 0);
    s_write_at (dir, 5, 40, path, sizeof path);
    cr_assert_eq (ps_checkpoint_held (dir, clocks, PS_MAX_HELD_CHECKPOINTS), 3);
    cr_assert_eq (clocks[0], 40);
    cr_assert_eq (clocks[1], 20);
    cr_assert_eq (clocks[2], 10);
    //  At most as many as asked, the newest
    cr_assert_eq (ps_checkpoint_held (dir, clocks, 2), 2);
    cr_assert_eq (clocks[1], 20);
    close (lock);
}
