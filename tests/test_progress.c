/*  =========================================================================
    test_progress - the progress deadline's bookkeeping (broker/ps_progress)

    Which ranks hold a job back without making progress, with time given by
    hand (monotonic milliseconds): the first test is the usual life of a
    BSP job of two whose second rank hangs. The automatic deadline grows
    with the longest clock the job has taken, from a floor; an eviction
    does not teach it; waiting on others is no hang; under SSP only the
    ranks the bound waits on hold a request back; ASP and "off" find none.

    usage: build/test_progress [--filter 'progress/<test>'] [--verbose]
    ========================================================================= */

#include "ps_limits.h"
#include "ps_progress.h"
#include "ps_vclock.h"

#include <criterion/criterion.h>

//  Rank finishes its clock at now, as the ROUTER loop tells both modules
static void
s_clock (ps_vclock_t *vclock, ps_progress_t *progress, uint32_t rank, int64_t now)
{
    cr_assert_eq (ps_vclock_advance (vclock, rank, ps_vclock_clock (vclock, rank)), 0);
    ps_progress_clocked (progress, vclock, rank, 1, now);
}

//  Rank joins at now
static void
s_join (ps_vclock_t *vclock, ps_progress_t *progress, uint32_t rank, int64_t now)
{
    ps_vclock_join (vclock, rank);
    ps_progress_joined (progress, vclock, rank, 1, now);
}

Test (progress, usage_a_hung_rank_of_a_bsp_job)
{
    //  Two ranks under BSP; a fixed deadline of 1000 ms
    ps_vclock_t *vclock = ps_vclock_new (2, 0);
    ps_progress_t *progress = ps_progress_new (2, 1000, PS_DEFAULT_PROGRESS_FLOOR_MS);
    s_join (vclock, progress, 0, 0);
    s_join (vclock, progress, 1, 0);
    cr_assert_eq (ps_progress_deadline (progress), 1000);

    //  Clock 0 takes both 100 ms; then rank 0 finishes clock 1 at 150 and
    //  its CLOCK waits (its clock, 2, is not admitted while rank 1 is at 1)
    s_clock (vclock, progress, 0, 100);
    s_clock (vclock, progress, 1, 100);
    s_clock (vclock, progress, 0, 150);
    int64_t waiting[] = {2};
    ps_progress_hung_t hung[2];
    //  Rank 1 is no hang yet: 1000 ms from its last clock at 100
    cr_assert_eq (ps_progress_hung (progress, vclock, waiting, 1, 1100, hung, 2), 0);
    //  Now it is, and rank 0 (waiting itself) is not
    cr_assert_eq (ps_progress_hung (progress, vclock, waiting, 1, 1101, hung, 2), 1);
    cr_assert_eq (hung[0].rank, 1);
    cr_assert_eq (hung[0].stalled_ms, 1001);
    cr_assert_eq (hung[0].waiting, 1);
    cr_assert_eq (hung[0].deadline_ms, 1000);
    //  Nothing waiting, nobody hung: a slow rank alone holds nobody back
    cr_assert_eq (ps_progress_hung (progress, vclock, NULL, 0, 5000, hung, 2), 0);
    ps_progress_destroy (&progress);
    ps_vclock_destroy (&vclock);
}

Test (progress, the_automatic_deadline_grows_with_the_longest_clock)
{
    ps_vclock_t *vclock = ps_vclock_new (2, 0);
    ps_progress_t *progress = ps_progress_new (2, PS_PROGRESS_AUTO, 500);
    //  The floor until a clock has been seen
    cr_assert_eq (ps_progress_deadline (progress), 500);
    cr_assert_eq (ps_progress_longest (progress), 0);
    //  The first clock counts from the last join, not from the start
    s_join (vclock, progress, 0, 1000);
    s_join (vclock, progress, 1, 5000);
    s_clock (vclock, progress, 0, 5010);
    s_clock (vclock, progress, 1, 5030);
    cr_assert_eq (ps_progress_longest (progress), 30);
    cr_assert_eq (ps_progress_deadline (progress), 500, "the floor is larger than 10 x 30");
    //  A clock of 200 ms: 10 x 200
    s_clock (vclock, progress, 1, 5100);
    s_clock (vclock, progress, 0, 5230);
    cr_assert_eq (ps_progress_longest (progress), 200);
    cr_assert_eq (ps_progress_deadline (progress), PS_PROGRESS_FACTOR * 200);
    //  A shorter one changes nothing: the longest counts
    s_clock (vclock, progress, 1, 5240);
    s_clock (vclock, progress, 0, 5250);
    cr_assert_eq (ps_progress_longest (progress), 200);
    ps_progress_destroy (&progress);
    ps_vclock_destroy (&vclock);
}

Test (progress, an_eviction_teaches_nothing)
{
    //  Three ranks; rank 2 hangs at clock 1 for 30 s and is evicted
    ps_vclock_t *vclock = ps_vclock_new (3, 0);
    ps_progress_t *progress = ps_progress_new (3, PS_PROGRESS_AUTO, 1000);
    for (uint32_t rank = 0; rank < 3; rank++)
        s_join (vclock, progress, rank, 0);
    for (uint32_t rank = 0; rank < 3; rank++)
        s_clock (vclock, progress, rank, 100);
    cr_assert_eq (ps_progress_longest (progress), 100);
    s_clock (vclock, progress, 0, 150);
    s_clock (vclock, progress, 1, 150);
    ps_vclock_leave (vclock, 2);
    ps_progress_moved (progress, vclock, 30000);
    cr_assert_eq (ps_vclock_min (vclock), 2);
    cr_assert_eq (ps_progress_longest (progress), 100, "the wait for the evicted rank");
    //  The next clock counts from the eviction
    s_clock (vclock, progress, 0, 30040);
    s_clock (vclock, progress, 1, 30050);
    cr_assert_eq (ps_progress_longest (progress), 100);
    s_clock (vclock, progress, 0, 30100);
    s_clock (vclock, progress, 1, 30400);
    cr_assert_eq (ps_progress_longest (progress), 350);
    ps_progress_destroy (&progress);
    ps_vclock_destroy (&vclock);
}

Test (progress, a_rank_that_waited_on_others_is_charged_from_its_release)
{
    //  Rank 0 finishes clock 0 at 10 and waits; rank 1 takes until 5000
    ps_vclock_t *vclock = ps_vclock_new (2, 0);
    ps_progress_t *progress = ps_progress_new (2, 1000, 1000);
    s_join (vclock, progress, 0, 0);
    s_join (vclock, progress, 1, 0);
    s_clock (vclock, progress, 0, 10);
    s_clock (vclock, progress, 1, 5000);
    //  Rank 1 races ahead and waits on rank 0, released at 5000 only
    s_clock (vclock, progress, 1, 5001);
    int64_t waiting[] = {2};
    ps_progress_hung_t hung[2];
    cr_assert_eq (ps_progress_hung (progress, vclock, waiting, 1, 5900, hung, 2), 0);
    cr_assert_eq (ps_progress_hung (progress, vclock, waiting, 1, 6001, hung, 2), 1);
    cr_assert_eq (hung[0].rank, 0);
    cr_assert_eq (hung[0].stalled_ms, 1001);
    ps_progress_destroy (&progress);
    ps_vclock_destroy (&vclock);
}

Test (progress, under_ssp_only_the_ranks_the_bound_waits_on_hold_a_request)
{
    //  Staleness 2; ranks at clocks 5, 6 and 8: a CLOCK waiting for clock 8
    //  waits while the slowest is below 6, that is on rank 0 alone
    ps_vclock_t *vclock = ps_vclock_new (3, 2);
    ps_progress_t *progress = ps_progress_new (3, 100, 100);
    for (uint32_t rank = 0; rank < 3; rank++)
        s_join (vclock, progress, rank, 0);
    int clocks[] = {5, 6, 8};
    for (uint32_t rank = 0; rank < 3; rank++)
        for (int i = 0; i < clocks[rank]; i++)
            s_clock (vclock, progress, rank, 0);
    int64_t waiting[] = {8, 7};
    ps_progress_hung_t hung[3];
    cr_assert_eq (ps_progress_hung (progress, vclock, waiting, 2, 1000, hung, 3), 1);
    cr_assert_eq (hung[0].rank, 0);
    cr_assert_eq (hung[0].waiting, 1, "8 waits on rank 0, 7 does not (7 - 2 <= 5)");
    //  The room given for one is what is filled
    ps_progress_hung_t one;
    int64_t both[] = {8, 9};
    cr_assert_eq (ps_progress_hung (progress, vclock, both, 2, 1000, &one, 1), 1);
    cr_assert_eq (one.rank, 0);
    cr_assert_eq (one.waiting, 2);
    ps_progress_destroy (&progress);
    ps_vclock_destroy (&vclock);
}

Test (progress, off_and_asp_find_nobody)
{
    int64_t waiting[] = {5};
    ps_progress_hung_t hung[1];
    ps_vclock_t *bsp = ps_vclock_new (2, 0);
    ps_progress_t *off = ps_progress_new (2, 0, 1000);
    ps_vclock_join (bsp, 0);
    ps_vclock_join (bsp, 1);
    cr_assert_eq (ps_progress_deadline (off), 0);
    cr_assert_eq (ps_progress_hung (off, bsp, waiting, 1, 1000000, hung, 1), 0);
    ps_vclock_t *asp = ps_vclock_new (2, -1);
    ps_progress_t *progress = ps_progress_new (2, 10, 10);
    ps_vclock_join (asp, 0);
    ps_vclock_join (asp, 1);
    cr_assert_eq (ps_progress_hung (progress, asp, waiting, 1, 1000000, hung, 1), 0);
    //  A rank that never joined is no hang: nothing to evict
    ps_vclock_t *absent = ps_vclock_new (2, 0);
    ps_vclock_join (absent, 0);
    ps_vclock_advance (absent, 0, 0);
    int64_t one[] = {1};
    cr_assert_eq (ps_progress_hung (progress, absent, one, 1, 1000000, hung, 1), 0);
    ps_progress_destroy (&off);
    ps_progress_destroy (&progress);
    ps_vclock_destroy (&bsp);
    ps_vclock_destroy (&asp);
    ps_vclock_destroy (&absent);
}
