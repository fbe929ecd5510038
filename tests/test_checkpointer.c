/*  =========================================================================
    test_checkpointer - when a broker cuts checkpoints, a group's member's
    cut queued while its writer is busy, and the ceilings that keep what a
    restart makes a rank redo within one interval (broker/ps_checkpointer.h)

    The tests drive a checkpointer by hand, as the ROUTER loop does: the
    vector clock moves, ps_checkpointer_due says whether to cut, the cut
    goes to the writer (ps_checkpointer_write stands for the aggregator's
    answer, without keys) and the writer's answer is read only when the
    test says (ps_checkpointer_receive), so the writer is "busy" for as
    long as the test likes.

    usage: build/test_checkpointer [--filter 'checkpointer/<test>']
    ========================================================================= */

#include "ps_checkpoint_dir.h"
#include "ps_checkpointer.h"
#include "ps_parking.h"
#include "ps_testutil.h"
#include "ps.pb-c.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

//  A member of a group of two for one worker, cutting at every clock
static ps_checkpointer_t *
s_member (const char *name, char *dir, size_t dir_size)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = 1;
    config.shard = 0;
    config.shards = 2;
    config.checkpoint_dir = ps_test_path (name, dir, dir_size);
    config.checkpoint_clocks = 1;
    ps_checkpoint_t *restored = NULL;
    ps_problem_t problem;
    ps_checkpointer_t *self = ps_checkpointer_new (&config, &restored, &problem);
    cr_assert (self, "%s", problem.message);
    cr_assert_null (restored);
    return self;
}

//  The worker finishes its clock; whether the checkpointer wants a cut
//  then, and if so the cut handed on as the aggregator would
static bool
s_clock (ps_checkpointer_t *self, ps_vclock_t *vclock, uint64_t *sent)
{
    ps_vclock_advance (vclock, 0, ps_vclock_clock (vclock, 0));
    if (!ps_checkpointer_due (self, zclock_mono (), vclock, *sent, false))
        return false;
    ps_checkpoint_t *checkpoint = ps_checkpointer_cut (self, vclock, ++*sent);
    cr_assert (checkpoint);
    ps_checkpointer_write (self, checkpoint, NULL);
    return true;
}

//  Wait for the writer's answer and read it
static void
s_written (ps_checkpointer_t *self)
{
    zmq_pollitem_t item = {ps_checkpointer_handle (self), 0, ZMQ_POLLIN, 0};
    cr_assert_eq (zmq_poll (&item, 1, PS_TEST_WAIT_MS), 1, "the writer did not answer");
    ps_checkpointer_receive (self);
}

Test (checkpointer, a_group_member_queues_the_cut_its_busy_writer_cannot_take)
{
    char dir[256];
    ps_checkpointer_t *self = s_member ("queued", dir, sizeof dir);
    ps_vclock_t *vclock = ps_vclock_new (1, 0);
    ps_vclock_join (vclock, 0);
    uint64_t sent = 0;

    //  Clock 1: cut and sent to the writer, whose answer we do not read yet
    cr_assert (s_clock (self, vclock, &sent));
    cr_assert (ps_checkpointer_busy (self));
    //  Clock 2 while it is busy: cut all the same, and queued behind it
    cr_assert (s_clock (self, vclock, &sent), "the cut of clock 2 was not taken");
    //  Clock 3: one is queued already; skipped
    cr_assert_not (s_clock (self, vclock, &sent));

    //  The first write ends: the queued one goes to the writer
    s_written (self);
    cr_assert (ps_checkpointer_busy (self));
    s_written (self);
    cr_assert_not (ps_checkpointer_busy (self));
    cr_assert_eq (ps_checkpointer_written (self), 2);
    json_t *info = ps_checkpointer_info (self);
    cr_assert_eq (json_integer_value (json_object_get (info, "queued")), 1);
    cr_assert_eq (json_integer_value (json_object_get (info, "last_clock")), 2);
    json_decref (info);

    //  Both are on disk: a group's rollback finds clocks 1 and 2 here
    int64_t held[PS_MAX_HELD_CHECKPOINTS];
    cr_assert_eq (ps_checkpoint_held (dir, held, PS_MAX_HELD_CHECKPOINTS), 2);
    cr_assert_eq (held[0], 2);
    cr_assert_eq (held[1], 1);

    //  Clock 4: the writer is free, cut as usual
    cr_assert (s_clock (self, vclock, &sent));
    s_written (self);
    cr_assert_eq (ps_checkpoint_held (dir, held, PS_MAX_HELD_CHECKPOINTS), 3);
    cr_assert_eq (held[0], 4);
    ps_vclock_destroy (&vclock);
    ps_checkpointer_destroy (&self);
}

Test (checkpointer, a_rollback_drops_a_queued_cut_of_the_future)
{
    char dir[256];
    ps_checkpointer_t *self = s_member ("dropped", dir, sizeof dir);
    ps_vclock_t *vclock = ps_vclock_new (1, 0);
    ps_vclock_join (vclock, 0);
    uint64_t sent = 0;
    cr_assert (s_clock (self, vclock, &sent));
    cr_assert (s_clock (self, vclock, &sent));
    //  The group goes back to clock 1: the write of 1 is kept, the queued
    //  cut of 2 given up
    ps_checkpointer_cancel_unless (self, 1);
    s_written (self);
    cr_assert_not (ps_checkpointer_busy (self));
    int64_t held[PS_MAX_HELD_CHECKPOINTS];
    cr_assert_eq (ps_checkpoint_held (dir, held, PS_MAX_HELD_CHECKPOINTS), 1);
    cr_assert_eq (held[0], 1);
    ps_vclock_destroy (&vclock);
    ps_checkpointer_destroy (&self);
}

//  A broker of world ranks and staleness checkpointing every 2 clocks, no
//  timer, no group
static ps_checkpointer_t *
s_alone (const char *name, uint32_t world, int32_t staleness, char *dir, size_t dir_size)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = world;
    config.staleness = staleness;
    config.checkpoint_dir = ps_test_path (name, dir, dir_size);
    config.checkpoint_seconds = 0;
    config.checkpoint_clocks = 2;
    ps_checkpoint_t *restored = NULL;
    ps_problem_t problem;
    ps_checkpointer_t *self = ps_checkpointer_new (&config, &restored, &problem);
    cr_assert (self, "%s", problem.message);
    cr_assert_null (restored);
    return self;
}

//  Rank finishes its clock; a cut handed on when one is due then
static bool
s_rank_clock (ps_checkpointer_t *self, ps_vclock_t *vclock, uint32_t rank, uint64_t *sent)
{
    ps_vclock_advance (vclock, rank, ps_vclock_clock (vclock, rank));
    if (!ps_checkpointer_due (self, zclock_mono (), vclock, ++*sent, false))
        return false;
    ps_checkpoint_t *checkpoint = ps_checkpointer_cut (self, vclock, ++*sent);
    cr_assert (checkpoint);
    ps_checkpointer_write (self, checkpoint, NULL);
    return true;
}

Test (checkpointer, a_rank_is_given_parameters_up_to_one_interval_past_the_last_checkpoint)
{
    //  SSP: rank 0 runs ahead while rank 1 stays at clock 0, so the slowest
    //  clock never moves; rank 0 may pull up to clock 1 (redoing clocks 0
    //  and 1 after a restart), and once at clock 2 a cut is taken for it
    char dir[256];
    ps_checkpointer_t *self = s_alone ("ceiling", 2, 10, dir, sizeof dir);
    ps_vclock_t *vclock = ps_vclock_new (2, 10);
    ps_vclock_join (vclock, 0);
    ps_vclock_join (vclock, 1);
    uint64_t sent = 0;
    const int64_t *ceilings = ps_checkpointer_ceilings (self);
    cr_assert_not_null (ceilings);
    cr_assert_eq (ceilings[0], 1);
    cr_assert_eq (ceilings[1], 1);
    cr_assert (ps_parking_admits (vclock, ceilings, PSMQ__MSG_TYPE__PULL, 0, 1));
    cr_assert_not (s_rank_clock (self, vclock, 0, &sent));
    cr_assert (s_rank_clock (self, vclock, 0, &sent), "rank 0 at its ceiling got no cut");
    //  Its pulls wait for the write; its CLOCKs and the others' pulls not
    cr_assert_not (ps_parking_admits (vclock, ceilings, PSMQ__MSG_TYPE__PULL, 0, 2));
    cr_assert (ps_parking_admits (vclock, ceilings, PSMQ__MSG_TYPE__CLOCK, 0, 3));
    cr_assert (ps_parking_admits (vclock, ceilings, PSMQ__MSG_TYPE__PULL, 1, 0));
    s_written (self);
    //  Written: rank 0 redoes from clock 2 now, and may pull up to 3
    cr_assert_eq (ceilings[0], 3);
    cr_assert_eq (ceilings[1], 1);
    cr_assert (ps_parking_admits (vclock, ceilings, PSMQ__MSG_TYPE__PULL, 0, 2));
    cr_assert_not (s_rank_clock (self, vclock, 0, &sent));
    cr_assert (s_rank_clock (self, vclock, 0, &sent));
    s_written (self);
    cr_assert_eq (ceilings[0], 5);
    cr_assert_eq (ps_checkpointer_written (self), 2);
    ps_vclock_destroy (&vclock);
    ps_checkpointer_destroy (&self);
}

Test (checkpointer, under_bsp_the_cut_for_a_waiting_rank_comes_before_the_barrier)
{
    //  Rank 0 finished clock 1 and would pull at 2 while rank 1 still
    //  computes clock 1: the cut is taken at once (every rank redoes the
    //  slowest clock, 1), written while rank 1 computes
    char dir[256];
    ps_checkpointer_t *self = s_alone ("bsp", 2, 0, dir, sizeof dir);
    ps_vclock_t *vclock = ps_vclock_new (2, 0);
    ps_vclock_join (vclock, 0);
    ps_vclock_join (vclock, 1);
    uint64_t sent = 0;
    const int64_t *ceilings = ps_checkpointer_ceilings (self);
    cr_assert_not (s_rank_clock (self, vclock, 0, &sent));
    cr_assert_not (s_rank_clock (self, vclock, 1, &sent));
    cr_assert (s_rank_clock (self, vclock, 0, &sent), "rank 0 at its ceiling got no cut");
    s_written (self);
    cr_assert_eq (ceilings[0], 2);
    cr_assert_eq (ceilings[1], 2);
    //  Another cut of the same slowest clock would raise nothing: none
    cr_assert_not (ps_checkpointer_due (self, zclock_mono (), vclock, ++sent, false));
    ps_vclock_destroy (&vclock);
    ps_checkpointer_destroy (&self);
}

Test (checkpointer, a_failed_write_lifts_the_ceilings_until_one_is_written)
{
    //  A broker that cannot write must not stop its job: its workers go on,
    //  unbounded, until a write succeeds again
    char dir[256], lock[300];
    ps_checkpointer_t *self = s_alone ("unwritable", 1, 0, dir, sizeof dir);
    ps_vclock_t *vclock = ps_vclock_new (1, 0);
    ps_vclock_join (vclock, 0);
    uint64_t sent = 0;
    const int64_t *ceilings = ps_checkpointer_ceilings (self);
    snprintf (lock, sizeof lock, "%s/checkpoint.lock", dir);
    cr_assert_eq (unlink (lock), 0);
    cr_assert_eq (rmdir (dir), 0);
    cr_assert_not (s_rank_clock (self, vclock, 0, &sent));
    cr_assert (s_rank_clock (self, vclock, 0, &sent));
    s_written (self);
    cr_assert_eq (ps_checkpointer_failed (self), 1);
    cr_assert_eq (ceilings[0], INT64_MAX);
    json_t *info = ps_checkpointer_info (self);
    cr_assert (json_is_false (json_object_get (info, "bounded")));
    json_decref (info);
    cr_assert_eq (mkdir (dir, 0700), 0);
    cr_assert_not (s_rank_clock (self, vclock, 0, &sent));
    cr_assert (s_rank_clock (self, vclock, 0, &sent));
    s_written (self);
    cr_assert_eq (ps_checkpointer_written (self), 1);
    cr_assert_eq (ceilings[0], 5);
    info = ps_checkpointer_info (self);
    cr_assert (json_is_true (json_object_get (info, "bounded")));
    json_decref (info);
    ps_vclock_destroy (&vclock);
    ps_checkpointer_destroy (&self);
}

//  The threads of this process whose nice value is above 0
static int
s_polite_threads (void)
{
    int polite = 0;
    DIR *tasks = opendir ("/proc/self/task");
    cr_assert (tasks);
    struct dirent *entry;
    while ((entry = readdir (tasks))) {
        id_t tid = (id_t)strtol (entry->d_name, NULL, 10);
        if (tid == 0)
            continue;
        errno = 0;
        int nice = getpriority (PRIO_PROCESS, tid);
        if (nice > 0 && errno == 0)
            polite++;
    }
    closedir (tasks);
    return polite;
}

//  A serving thread takes a core from the writer at once: the writer's
//  thread, and no other, has a nice value above 0
Test (checkpointer, the_writer_yields_to_serving)
{
    cr_assert_eq (s_polite_threads (), 0);
    char dir[256];
    ps_checkpointer_t *self = s_member ("polite", dir, sizeof dir);
    cr_expect_eq (s_polite_threads (), 1, "the writer thread's nice value is not above 0");
    ps_checkpointer_destroy (&self);
}
