/*  =========================================================================
    test_vclock - the vector clock: admit and park under BSP, SSP and ASP

    Each test drives ranks through join, advance and leave as the broker
    does on HELLO, CLOCK and BYE, and checks the decisions (admits) and the
    summaries (min, slowest, live, max) after every step that matters. The
    last test replays random operations against a model written here, so
    that the cached minimum is checked against a full recomputation.

    usage: build/test_vclock [--filter 'vclock/<test>']
    ========================================================================= */

#include "ps_vclock.h"
#include "ps_limits.h"

#include <criterion/criterion.h>
#include <stdint.h>

//  Advance rank from its current clock to clock, one clock at a time
static void
s_advance_to (ps_vclock_t *vclock, uint32_t rank, int64_t clock)
{
    while (ps_vclock_clock (vclock, rank) < clock) {
        int64_t current = ps_vclock_clock (vclock, rank);
        cr_assert_eq (ps_vclock_advance (vclock, rank, current), 0, "rank %u at %lld", rank,
                      (long long)current);
    }
    cr_assert_eq (ps_vclock_clock (vclock, rank), clock);
}

//  A vector clock of world ranks at staleness where each rank joined and
//  advanced to clocks[rank], in rank order (-1: the rank never joined)
static ps_vclock_t *
s_vclock_at (uint32_t world, int32_t staleness, const int64_t *clocks)
{
    ps_vclock_t *vclock = ps_vclock_new (world, staleness);
    cr_assert_not_null (vclock);
    for (uint32_t rank = 0; rank < world; rank++)
        if (clocks[rank] >= 0)
            cr_assert_eq (ps_vclock_join (vclock, rank), 0);
    for (uint32_t rank = 0; rank < world; rank++)
        if (clocks[rank] >= 0)
            s_advance_to (vclock, rank, clocks[rank]);
    return vclock;
}

Test (vclock, usage)
{
    //  A BSP job of three workers: nobody may run ahead of the others
    ps_vclock_t *vclock = ps_vclock_new (3, 0);
    cr_assert_not_null (vclock);
    cr_assert_eq (ps_vclock_world (vclock), 3);
    cr_assert_eq (ps_vclock_staleness (vclock), 0);

    //  Before anyone says HELLO every rank is ABSENT and counts at clock 0
    for (uint32_t rank = 0; rank < 3; rank++) {
        cr_assert_eq (ps_vclock_state (vclock, rank), PS_RANK_ABSENT);
        cr_assert_eq (ps_vclock_clock (vclock, rank), 0);
    }
    cr_assert_eq (ps_vclock_min (vclock), 0);
    cr_assert_eq (ps_vclock_slowest (vclock), 0);
    cr_assert_eq (ps_vclock_live (vclock), 0);
    cr_assert_eq (ps_vclock_max (vclock), -1);
    cr_assert (ps_vclock_admits (vclock, 0));
    cr_assert_not (ps_vclock_admits (vclock, 1));

    //  HELLO from each rank
    for (uint32_t rank = 0; rank < 3; rank++)
        cr_assert_eq (ps_vclock_join (vclock, rank), 0);
    cr_assert_eq (ps_vclock_live (vclock), 3);
    cr_assert_eq (ps_vclock_state (vclock, 1), PS_RANK_LIVE);
    cr_assert_eq (ps_vclock_max (vclock), 0);

    //  Rank 0 finishes clock 0: it may not start clock 1 before the others
    cr_assert_eq (ps_vclock_advance (vclock, 0, 0), 0);
    cr_assert_eq (ps_vclock_clock (vclock, 0), 1);
    cr_assert_not (ps_vclock_admits (vclock, 1), "parked until everybody finished clock 0");
    cr_assert_eq (ps_vclock_min (vclock), 0);
    cr_assert_eq (ps_vclock_slowest (vclock), 1);
    cr_assert_eq (ps_vclock_max (vclock), 1);

    cr_assert_eq (ps_vclock_advance (vclock, 1, 0), 0);
    cr_assert_not (ps_vclock_admits (vclock, 1));
    cr_assert_eq (ps_vclock_slowest (vclock), 2);

    //  The last one: clock 1 is admitted for everybody, clock 2 is not
    cr_assert_eq (ps_vclock_advance (vclock, 2, 0), 0);
    cr_assert (ps_vclock_admits (vclock, 1));
    cr_assert_not (ps_vclock_admits (vclock, 2));
    cr_assert_eq (ps_vclock_min (vclock), 1);
    cr_assert_eq (ps_vclock_slowest (vclock), 0);
    cr_assert_eq (ps_vclock_max (vclock), 1);

    //  BYE
    ps_vclock_leave (vclock, 2);
    cr_assert_eq (ps_vclock_state (vclock, 2), PS_RANK_GONE);
    cr_assert_eq (ps_vclock_live (vclock), 2);

    ps_vclock_destroy (&vclock);
    cr_assert_null (vclock);
    ps_vclock_destroy (&vclock);
}

Test (vclock, bsp_waits_for_ranks_that_never_joined)
{
    //  Rank 1 is ABSENT at clock 0 and holds everybody back
    ps_vclock_t *vclock = s_vclock_at (3, 0, (int64_t[]){1, -1, 1});
    cr_assert_eq (ps_vclock_live (vclock), 2);
    cr_assert_eq (ps_vclock_min (vclock), 0);
    cr_assert_eq (ps_vclock_slowest (vclock), 1);
    cr_assert_eq (ps_vclock_max (vclock), 1);
    cr_assert_not (ps_vclock_admits (vclock, 1));
    //  It arrives at clock 0 and finishes it: the others go on
    cr_assert_eq (ps_vclock_join (vclock, 1), 0);
    cr_assert_not (ps_vclock_admits (vclock, 1));
    cr_assert_eq (ps_vclock_advance (vclock, 1, 0), 0);
    cr_assert (ps_vclock_admits (vclock, 1));
    cr_assert_eq (ps_vclock_min (vclock), 1);
    ps_vclock_destroy (&vclock);
}

Test (vclock, ssp_admits_up_to_min_plus_staleness)
{
    const struct {
        uint32_t world;
        int32_t staleness;
        int64_t clocks[4];
        int64_t min;
        int32_t slowest;
    } cases[] = {
        {3, 2, {0, 0, 0}, 0, 0},   {3, 2, {2, 0, 1}, 0, 1}, {3, 2, {5, 3, 4}, 3, 1},
        {3, 2, {4, 4, 3}, 3, 2},   {3, 2, {7, 7, 7}, 7, 0}, {4, 2, {6, 9, 6, 8}, 6, 0},
        {1, 2, {11}, 11, 0},       {2, 1, {3, 4}, 3, 0},    {4, 5, {10, 12, 15, 11}, 10, 0},
        {2, 1000, {0, 999}, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ps_vclock_t *vclock = ps_vclock_new (cases[i].world, cases[i].staleness);
        cr_assert_not_null (vclock);
        for (uint32_t rank = 0; rank < cases[i].world; rank++)
            ps_vclock_join (vclock, rank);
        //  Advance round-robin, as the workers would
        for (int64_t clock = 0; clock < 1000; clock++)
            for (uint32_t rank = 0; rank < cases[i].world; rank++)
                if (ps_vclock_clock (vclock, rank) < cases[i].clocks[rank])
                    cr_assert_eq (ps_vclock_advance (vclock, rank, clock), 0);
        int64_t min = cases[i].min;
        int32_t staleness = cases[i].staleness;
        cr_assert_eq (ps_vclock_min (vclock), min, "case %zu", i);
        cr_assert_eq (ps_vclock_slowest (vclock), cases[i].slowest, "case %zu", i);
        cr_assert_eq (ps_vclock_live (vclock), cases[i].world);
        for (int64_t clock = 0; clock <= min + staleness; clock++)
            cr_assert (ps_vclock_admits (vclock, clock), "case %zu: clock %lld parked", i,
                       (long long)clock);
        cr_assert_not (ps_vclock_admits (vclock, min + staleness + 1),
                       "case %zu: clock %lld admitted with min %lld", i,
                       (long long)(min + staleness + 1), (long long)min);
        cr_assert_not (ps_vclock_admits (vclock, min + staleness + 1000), "case %zu", i);
        ps_vclock_destroy (&vclock);
    }
}

Test (vclock, asp_admits_any_clock)
{
    ps_vclock_t *vclock = ps_vclock_new (3, -1);
    cr_assert_not_null (vclock);
    //  Nobody joined, everybody at 0
    cr_assert (ps_vclock_admits (vclock, 0));
    cr_assert (ps_vclock_admits (vclock, 1));
    cr_assert (ps_vclock_admits (vclock, 1000000));
    cr_assert (ps_vclock_admits (vclock, INT64_MAX - 1));
    //  One rank far ahead of the others
    ps_vclock_join (vclock, 0);
    ps_vclock_join (vclock, 1);
    s_advance_to (vclock, 0, 500);
    cr_assert_eq (ps_vclock_min (vclock), 0);
    cr_assert_eq (ps_vclock_max (vclock), 500);
    cr_assert (ps_vclock_admits (vclock, 501));
    cr_assert (ps_vclock_admits (vclock, INT64_MAX - 1));
    ps_vclock_destroy (&vclock);
}

//  Everything the summaries say, to compare before and after
typedef struct {
    int64_t clock[3];
    ps_rank_state_t state[3];
    int64_t min, max;
    int32_t slowest;
    uint32_t live;
} summary_t;

static summary_t
s_summary (const ps_vclock_t *vclock)
{
    summary_t summary;
    for (uint32_t rank = 0; rank < 3; rank++) {
        summary.clock[rank] = ps_vclock_clock (vclock, rank);
        summary.state[rank] = ps_vclock_state (vclock, rank);
    }
    summary.min = ps_vclock_min (vclock);
    summary.max = ps_vclock_max (vclock);
    summary.slowest = ps_vclock_slowest (vclock);
    summary.live = ps_vclock_live (vclock);
    return summary;
}

static void
s_assert_same (const summary_t *a, const summary_t *b, const char *what)
{
    for (int rank = 0; rank < 3; rank++) {
        cr_assert_eq (a->clock[rank], b->clock[rank], "%s: clock of rank %d", what, rank);
        cr_assert_eq (a->state[rank], b->state[rank], "%s: state of rank %d", what, rank);
    }
    cr_assert_eq (a->min, b->min, "%s: min", what);
    cr_assert_eq (a->max, b->max, "%s: max", what);
    cr_assert_eq (a->slowest, b->slowest, "%s: slowest", what);
    cr_assert_eq (a->live, b->live, "%s: live", what);
}

Test (vclock, advance_with_the_wrong_clock_changes_nothing)
{
    ps_vclock_t *vclock = s_vclock_at (3, 1, (int64_t[]){2, 1, 1});
    summary_t before = s_summary (vclock);

    const struct {
        uint32_t rank;
        int64_t finished;
        const char *what;
    } wrong[] = {
        {0, 1, "backwards"},         {0, 0, "far backwards"},     {0, 3, "skipping ahead"},
        {0, 100, "far ahead"},       {1, -1, "negative"},         {1, 2, "slowest skipping ahead"},
        {1, INT64_MIN, "INT64_MIN"}, {2, INT64_MAX, "INT64_MAX"},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        cr_assert_eq (ps_vclock_advance (vclock, wrong[i].rank, wrong[i].finished), -1, "%s",
                      wrong[i].what);
        summary_t after = s_summary (vclock);
        s_assert_same (&before, &after, wrong[i].what);
    }
    //  The right clock still works afterwards
    cr_assert_eq (ps_vclock_advance (vclock, 1, 1), 0);
    cr_assert_eq (ps_vclock_clock (vclock, 1), 2);
    ps_vclock_destroy (&vclock);
}

Test (vclock, advance_of_a_rank_not_live_fails)
{
    ps_vclock_t *vclock = ps_vclock_new (3, 0);
    ps_vclock_join (vclock, 0);
    ps_vclock_join (vclock, 2);
    ps_vclock_leave (vclock, 2);
    summary_t before = s_summary (vclock);
    //  Rank 1 never said HELLO: its clock 0 matches but it is ABSENT
    cr_assert_eq (ps_vclock_advance (vclock, 1, 0), -1);
    summary_t after = s_summary (vclock);
    s_assert_same (&before, &after, "ABSENT");
    //  Rank 2 said BYE at clock 0
    cr_assert_eq (ps_vclock_advance (vclock, 2, 0), -1);
    after = s_summary (vclock);
    s_assert_same (&before, &after, "GONE");
    cr_assert_eq (ps_vclock_clock (vclock, 1), 0);
    cr_assert_eq (ps_vclock_min (vclock), 0);
    ps_vclock_destroy (&vclock);
}

Test (vclock, leave_stops_the_others_waiting)
{
    ps_vclock_t *vclock = s_vclock_at (3, 0, (int64_t[]){1, 1, 0});
    cr_assert_not (ps_vclock_admits (vclock, 1), "rank 2 has not finished clock 0");
    cr_assert_eq (ps_vclock_slowest (vclock), 2);

    //  Rank 2 is evicted: the others no longer wait for it
    ps_vclock_leave (vclock, 2);
    cr_assert_eq (ps_vclock_state (vclock, 2), PS_RANK_GONE);
    cr_assert_eq (ps_vclock_min (vclock), 1);
    cr_assert_eq (ps_vclock_slowest (vclock), 0);
    cr_assert_eq (ps_vclock_live (vclock), 2);
    cr_assert_eq (ps_vclock_max (vclock), 1);
    cr_assert (ps_vclock_admits (vclock, 1));
    cr_assert_not (ps_vclock_admits (vclock, 2));

    //  A rank that leaves ahead of the slowest does not move the minimum
    s_advance_to (vclock, 0, 2);
    ps_vclock_leave (vclock, 0);
    cr_assert_eq (ps_vclock_min (vclock), 1);
    cr_assert_eq (ps_vclock_slowest (vclock), 1);
    cr_assert_eq (ps_vclock_max (vclock), 1);
    //  A GONE rank does not count for max either
    cr_assert_eq (ps_vclock_live (vclock), 1);

    //  An ABSENT rank can be evicted too (it never arrived)
    ps_vclock_t *waiting = s_vclock_at (2, 0, (int64_t[]){1, -1});
    cr_assert_not (ps_vclock_admits (waiting, 1));
    ps_vclock_leave (waiting, 1);
    cr_assert (ps_vclock_admits (waiting, 1));
    cr_assert_eq (ps_vclock_min (waiting), 1);
    ps_vclock_destroy (&waiting);
    ps_vclock_destroy (&vclock);
}

Test (vclock, all_gone_admits_everything)
{
    ps_vclock_t *vclock = s_vclock_at (3, 0, (int64_t[]){0, 1, 0});
    for (uint32_t rank = 0; rank < 3; rank++)
        ps_vclock_leave (vclock, rank);
    cr_assert_eq (ps_vclock_min (vclock), PS_VCLOCK_NOBODY);
    cr_assert_eq (ps_vclock_slowest (vclock), -1);
    cr_assert_eq (ps_vclock_live (vclock), 0);
    cr_assert_eq (ps_vclock_max (vclock), -1);
    cr_assert (ps_vclock_admits (vclock, 0));
    cr_assert (ps_vclock_admits (vclock, 5));
    cr_assert (ps_vclock_admits (vclock, INT64_MAX - 1));
    ps_vclock_destroy (&vclock);
}

Test (vclock, rejoin_continues_at_the_slowest_live_clock)
{
    ps_vclock_t *vclock = s_vclock_at (3, 5, (int64_t[]){4, 2, 3});

    //  Rank 0 leaves at 4 and comes back: at 2, not 0 and not 4
    ps_vclock_leave (vclock, 0);
    cr_assert_eq (ps_vclock_join (vclock, 0), 2);
    cr_assert_eq (ps_vclock_clock (vclock, 0), 2);
    cr_assert_eq (ps_vclock_state (vclock, 0), PS_RANK_LIVE);
    cr_assert_eq (ps_vclock_live (vclock), 3);
    cr_assert_eq (ps_vclock_min (vclock), 2);
    cr_assert_eq (ps_vclock_slowest (vclock), 0);
    //  ... and goes on from there
    cr_assert_eq (ps_vclock_advance (vclock, 0, 2), 0);
    cr_assert_eq (ps_vclock_slowest (vclock), 1);

    //  Rank 2 (at 3) takes over its own slot without leaving: the slowest
    //  live rank is at 2
    cr_assert_eq (ps_vclock_join (vclock, 2), 2);
    cr_assert_eq (ps_vclock_live (vclock), 3);

    //  A rank joining for the first time starts at 0 even when the job is
    //  further (ASP lets the others run ahead)
    ps_vclock_t *asp = s_vclock_at (2, -1, (int64_t[]){7, -1});
    cr_assert_eq (ps_vclock_join (asp, 1), 0);
    cr_assert_eq (ps_vclock_min (asp), 0);
    ps_vclock_destroy (&asp);
    ps_vclock_destroy (&vclock);
}

Test (vclock, rejoin_when_nobody_is_live_continues_at_the_furthest_clock)
{
    ps_vclock_t *vclock = s_vclock_at (2, 3, (int64_t[]){3, 5});
    ps_vclock_leave (vclock, 1);
    ps_vclock_leave (vclock, 0);
    cr_assert_eq (ps_vclock_min (vclock), PS_VCLOCK_NOBODY);

    //  Rank 0 left at 3 but the job got to 5
    cr_assert_eq (ps_vclock_join (vclock, 0), 5);
    cr_assert_eq (ps_vclock_min (vclock), 5);
    cr_assert_eq (ps_vclock_max (vclock), 5);
    cr_assert (ps_vclock_admits (vclock, 8));
    cr_assert_not (ps_vclock_admits (vclock, 9));
    //  Rank 1 comes back to the slowest live rank, now rank 0
    s_advance_to (vclock, 0, 6);
    cr_assert_eq (ps_vclock_join (vclock, 1), 6);
    cr_assert_eq (ps_vclock_live (vclock), 2);
    ps_vclock_destroy (&vclock);
}

Test (vclock, new_rejects_bad_worlds_and_staleness)
{
    cr_assert_null (ps_vclock_new (0, 0));
    cr_assert_null (ps_vclock_new (PS_MAX_WORKERS + 1, 0));
    cr_assert_null (ps_vclock_new (UINT32_MAX, 0));
    cr_assert_null (ps_vclock_new (3, -2));
    cr_assert_null (ps_vclock_new (3, INT32_MIN));

    const struct {
        uint32_t world;
        int32_t staleness;
    } good[] = {{1, 0}, {PS_MAX_WORKERS, 0}, {3, -1}, {3, PS_MAX_STALENESS}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ps_vclock_t *vclock = ps_vclock_new (good[i].world, good[i].staleness);
        cr_assert_not_null (vclock, "world %u staleness %d", good[i].world, good[i].staleness);
        cr_assert_eq (ps_vclock_world (vclock), good[i].world);
        cr_assert_eq (ps_vclock_staleness (vclock), good[i].staleness);
        cr_assert_eq (ps_vclock_clock (vclock, good[i].world - 1), 0);
        cr_assert_eq (ps_vclock_state (vclock, good[i].world - 1), PS_RANK_ABSENT);
        ps_vclock_destroy (&vclock);
    }
}

//  A model of the contract, kept by the test, for the random replay
#define MODEL_WORLD 5
typedef struct {
    ps_rank_state_t state[MODEL_WORLD];
    int64_t clock[MODEL_WORLD];
    int64_t reached;
} model_t;

static int64_t
s_model_min (const model_t *model, int32_t *slowest)
{
    int64_t min = PS_VCLOCK_NOBODY;
    *slowest = -1;
    for (int rank = 0; rank < MODEL_WORLD; rank++)
        if (model->state[rank] != PS_RANK_GONE && model->clock[rank] < min) {
            min = model->clock[rank];
            *slowest = rank;
        }
    return min;
}

static uint64_t
s_random (uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545f4914f6cdd1dULL;
}

Test (vclock, random_operations_match_a_model)
{
    const int32_t stalenesses[] = {0, 1, 3, -1};
    uint64_t seed = 0x853c49e6748fea9bULL;
    for (size_t s = 0; s < sizeof stalenesses / sizeof stalenesses[0]; s++) {
        int32_t staleness = stalenesses[s];
        ps_vclock_t *vclock = ps_vclock_new (MODEL_WORLD, staleness);
        model_t model = {{PS_RANK_ABSENT}, {0}, 0};
        for (int step = 0; step < 5000; step++) {
            uint32_t rank = (uint32_t)(s_random (&seed) % MODEL_WORLD);
            //  One join for nine advances; a leave now and then, below
            if (s_random (&seed) % 10 == 0) {
                if (model.state[rank] != PS_RANK_ABSENT) {
                    int64_t current = PS_VCLOCK_NOBODY;
                    for (int other = 0; other < MODEL_WORLD; other++)
                        if (other != (int)rank && model.state[other] == PS_RANK_LIVE &&
                            model.clock[other] < current)
                            current = model.clock[other];
                    model.clock[rank] = current == PS_VCLOCK_NOBODY ? model.reached : current;
                }
                model.state[rank] = PS_RANK_LIVE;
                int64_t joined = ps_vclock_join (vclock, rank);
                if (joined != model.clock[rank])
                    cr_assert_fail ("step %d: join of %u gave %lld, model %lld", step, rank,
                                    (long long)joined, (long long)model.clock[rank]);
            }
            else {
                //  Mostly the right clock, sometimes one off either way
                int64_t finished = model.clock[rank] + (int64_t)(s_random (&seed) % 5) - 2;
                if (s_random (&seed) % 2)
                    finished = model.clock[rank];
                bool ok = model.state[rank] == PS_RANK_LIVE && finished == model.clock[rank];
                int rc = ps_vclock_advance (vclock, rank, finished);
                if (rc != (ok ? 0 : -1))
                    cr_assert_fail ("step %d: advance of %u from %lld gave %d", step, rank,
                                    (long long)finished, rc);
                if (ok) {
                    model.clock[rank]++;
                    if (model.clock[rank] > model.reached)
                        model.reached = model.clock[rank];
                }
            }
            if (s_random (&seed) % 40 == 0) {
                uint32_t gone = (uint32_t)(s_random (&seed) % MODEL_WORLD);
                ps_vclock_leave (vclock, gone);
                model.state[gone] = PS_RANK_GONE;
            }

            int32_t slowest;
            int64_t min = s_model_min (&model, &slowest);
            int64_t max = -1;
            uint32_t live = 0;
            for (int r = 0; r < MODEL_WORLD; r++)
                if (model.state[r] == PS_RANK_LIVE) {
                    live++;
                    if (model.clock[r] > max)
                        max = model.clock[r];
                }
            bool mismatch = ps_vclock_min (vclock) != min ||
                            ps_vclock_slowest (vclock) != slowest ||
                            ps_vclock_max (vclock) != max || ps_vclock_live (vclock) != live;
            for (int r = 0; r < MODEL_WORLD; r++)
                mismatch = mismatch || ps_vclock_state (vclock, r) != model.state[r] ||
                           ps_vclock_clock (vclock, r) != model.clock[r];
            for (int64_t clock = (min == PS_VCLOCK_NOBODY ? 0 : min);
                 clock <= (min == PS_VCLOCK_NOBODY ? 0 : min) + 5; clock++) {
                bool admits = staleness < 0 || min == PS_VCLOCK_NOBODY || clock <= min + staleness;
                mismatch = mismatch || ps_vclock_admits (vclock, clock) != admits;
            }
            if (mismatch)
                cr_assert_fail ("staleness %d step %d: min %lld (model %lld), slowest %d "
                                "(model %d), max %lld (model %lld), live %u (model %u)",
                                staleness, step, (long long)ps_vclock_min (vclock), (long long)min,
                                ps_vclock_slowest (vclock), slowest,
                                (long long)ps_vclock_max (vclock), (long long)max,
                                ps_vclock_live (vclock), live);
        }
        ps_vclock_destroy (&vclock);
    }
}

Test (vclock, a_range_joins_at_one_clock)
{
    ps_vclock_t *clock = ps_vclock_new (4, 0);
    //  One process standing for ranks 1 and 2, first time: clock 0
    cr_assert_eq (ps_vclock_join_range (clock, 1, 2), 0);
    cr_assert_eq (ps_vclock_state (clock, 1), PS_RANK_LIVE);
    cr_assert_eq (ps_vclock_state (clock, 2), PS_RANK_LIVE);
    cr_assert_eq (ps_vclock_state (clock, 0), PS_RANK_ABSENT);
    ps_vclock_join (clock, 0);
    ps_vclock_join (clock, 3);
    for (uint32_t rank = 0; rank < 4; rank++)
        for (int64_t c = 0; c < 3; c++)
            cr_assert_eq (ps_vclock_advance (clock, rank, c), 0);
    //  The range leaves and comes back: both at the job's clock
    ps_vclock_leave (clock, 1);
    ps_vclock_leave (clock, 2);
    cr_assert_eq (ps_vclock_advance (clock, 0, 3), 0);
    cr_assert_eq (ps_vclock_join_range (clock, 1, 2), 3);
    cr_assert_eq (ps_vclock_clock (clock, 1), 3);
    cr_assert_eq (ps_vclock_clock (clock, 2), 3);
    cr_assert_eq (ps_vclock_min (clock), 3);
    ps_vclock_destroy (&clock);
}

Test (vclock, a_restored_rank_joins_at_the_clock_it_redoes)
{
    //  A checkpoint said: rank 0 redoes from 4, rank 1 never joined, rank
    //  2 left at 6, rank 3 redoes from 5
    ps_vclock_t *vclock = ps_vclock_new (4, 1);
    ps_vclock_restore (vclock, 0, PS_RANK_LIVE, 4);
    ps_vclock_restore (vclock, 1, PS_RANK_ABSENT, 0);
    ps_vclock_restore (vclock, 2, PS_RANK_GONE, 6);
    ps_vclock_restore (vclock, 3, PS_RANK_LIVE, 5);
    //  Nobody is live: everybody not gone is waited for where it was
    cr_assert_eq (ps_vclock_live (vclock), 0);
    cr_assert_eq (ps_vclock_state (vclock, 0), PS_RANK_ABSENT);
    cr_assert_eq (ps_vclock_state (vclock, 2), PS_RANK_GONE);
    cr_assert_eq (ps_vclock_min (vclock), 0);
    cr_assert_eq (ps_vclock_join (vclock, 1), 0);
    s_advance_to (vclock, 1, 4);
    cr_assert_eq (ps_vclock_min (vclock), 4);
    //  Each comes back at its own clock, a range at theirs
    cr_assert_eq (ps_vclock_join (vclock, 0), 4);
    cr_assert_eq (ps_vclock_join_range (vclock, 3, 1), 5);
    cr_assert_not (ps_vclock_admits (vclock, 6));
    //  The gone rank rejoins at the job's clock, as it would have
    cr_assert_eq (ps_vclock_join (vclock, 2), 4);
    ps_vclock_destroy (&vclock);
}

Test (vclock, restored_ranks_joining_together_take_the_slowest_clock)
{
    //  Ranks of one process advance as one, so their clocks agree; should
    //  they not, the slowest one's is redone and none skipped
    ps_vclock_t *vclock = ps_vclock_new (3, 0);
    ps_vclock_restore (vclock, 0, PS_RANK_LIVE, 7);
    ps_vclock_restore (vclock, 1, PS_RANK_LIVE, 6);
    ps_vclock_restore (vclock, 2, PS_RANK_LIVE, 7);
    cr_assert_eq (ps_vclock_min (vclock), 6);
    cr_assert_eq (ps_vclock_join_range (vclock, 0, 2), 6);
    cr_assert_eq (ps_vclock_clock (vclock, 0), 6);
    s_advance_to (vclock, 0, 7);
    s_advance_to (vclock, 1, 7);
    //  BSP: rank 2, absent at 7, holds the others at 7
    cr_assert (ps_vclock_admits (vclock, 7));
    cr_assert_not (ps_vclock_admits (vclock, 8));
    ps_vclock_destroy (&vclock);
}
