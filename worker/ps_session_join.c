/*  =========================================================================
    ps_session_join - a worker's registration with its group (see
    ps_session.h: ps_session_hello, ps_session_hello_clock,
    ps_session_leave, ps_session_join)

    A HELLO goes to every broker of the group at once; the brokers must
    name the same clock, which a CLOCK between two of them can make
    differ for a moment, so the HELLO is tried again a little later. A
    worker with no rank of its own asks shard 0 for one (any_rank) and
    keeps it across rejoins. A first HELLO refused because the rank is
    still live on an earlier connection of ours is tried again, backing
    off, until the broker has let it go. Caller's thread only, as the
    rest of ps_session (ps_session_private.h).
    ========================================================================= */

#include "ps_limits.h"
#include "ps_rejoin.h"
#include "ps_session_private.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  How long a BYE is waited for
#define BYE_TIMEOUT_MS 2000
//  HELLOs to a group whose brokers name different clocks: the others may
//  have been between two brokers with a CLOCK, so we try again a little
//  later (after 20, 40, 60, 80 ms)
#define HELLO_ATTEMPTS 5
//  A first HELLO refused because our rank is live on another connection
//  is tried again after this pause, doubling up to the most
#define JOIN_BACKOFF_MS 100
#define JOIN_BACKOFF_MAX_MS 1000

// ------------------------------------------------------------ joining

//  What a HELLO to link says of us; group is room for the endpoints
static void
s_hello_settings (ps_session_t *self, uint32_t link, Psmq__Hello *hello, char *group[PS_MAX_SHARDS])
{
    const ps_member_t *member = ps_group_member (self->group, link);
    psmq__hello__init (hello);
    //  After the first welcome, proof that we are that rank coming
    //  back: a broker refuses a HELLO for a live rank without it
    hello->resume_session = member->session;
    hello->rollback_incarnation = member->roll_of;
    hello->rollback_to = member->roll_of ? member->roll_to : 0;
    hello->world_size = self->options.world_size;
    hello->weight = self->options.local_workers > 1 ? self->options.local_workers : 1;
    hello->shard = link;
    hello->shards = self->nlinks;
    if (self->nlinks > 1) {
        for (uint32_t other = 0; other < self->nlinks; other++)
            group[other] = (char *)ps_group_endpoint (self->group, other);
        hello->group = group;
        hello->n_group = self->nlinks;
    }
}

//  A worker without a rank asks shard 0 for one: the broker gives the
//  lowest free block of our weight and names its world. They are ours
//  from then on: the HELLOs to the other members, and every later one
//  (rejoins), name them. PS_OK with member 0 welcomed, or why not.
static int
s_hello_for_rank (ps_session_t *self)
{
    ps_envelope_t request;
    ps_pending_t *pending;
    int status = ps_session_request (self, PSMQ__MSG_TYPE__HELLO, &request, &pending);
    if (status)
        return status;
    uint64_t ticket = pending->seq;
    char *group[PS_MAX_SHARDS];
    Psmq__Hello hello;
    s_hello_settings (self, 0, &hello, group);
    hello.any_rank = true;
    //  A broker that does not know any_rank refuses this rank
    request.worker = PS_WORKER_ANY_RANK;
    request.hello = &hello;
    status = ps_session_send (self, 0, pending, &request, NULL, false);
    status = status ? ps_session_abandon (self, ticket, status)
                    : ps_session_wait_or_forget (self, ticket, self->options.timeout_ms);
    if (status)
        return status;
    const ps_member_t *member = ps_group_member (self->group, 0);
    uint32_t weight = self->options.local_workers > 1 ? self->options.local_workers : 1;
    if (member->world == 0 || member->world > PS_MAX_WORKERS || member->rank >= member->world ||
        weight > member->world - member->rank ||
        (self->options.world_size && member->world != self->options.world_size))
        return ps_session_fail (
            self, PS_EPROTO, "%s gave ranks %u..%u of a world of %u, which do not fit%s",
            ps_group_endpoint (self->group, 0), member->rank, member->rank + weight - 1,
            member->world, self->options.world_size ? " the world asked" : "");
    self->options.rank = member->rank;
    self->options.world_size = member->world;
    self->rank_given = true;
    return PS_OK;
}

//  A worker that named no world takes the one its brokers' replies name,
//  which must be one. PS_OK, or PS_EPROTO.
static int
s_take_world (ps_session_t *self)
{
    uint32_t world = ps_group_member (self->group, 0)->world;
    for (uint32_t link = 1; link < self->nlinks; link++)
        if (ps_group_member (self->group, link)->world != world)
            return ps_session_fail (
                self, PS_EPROTO, "the brokers of the group name different worlds: %s %u, %s %u",
                ps_group_endpoint (self->group, 0), world, ps_group_endpoint (self->group, link),
                ps_group_member (self->group, link)->world);
    if (world == 0 || world > PS_MAX_WORKERS || self->options.rank >= world)
        return ps_session_fail (self, PS_EPROTO, "%s named a world of %u workers for rank %u",
                                ps_group_endpoint (self->group, 0), world, self->options.rank);
    self->options.world_size = world;
    return PS_OK;
}

//  Whether every member of the group has welcomed us in this attempt
static bool
s_all_welcomed (ps_session_t *self)
{
    for (uint32_t link = 0; link < self->nlinks; link++)
        if (!ps_group_member (self->group, link)->welcomed)
            return false;
    return true;
}

int
ps_session_hello (ps_session_t *self, bool fresh, int timeout_ms)
{
    ps_problem_t problem;
    for (uint32_t link = 0; fresh && link < self->nlinks; link++)
        if (!ps_group_member (self->group, link)->welcomed &&
            ps_link_reconnect (ps_group_link (self->group, link), &problem))
            return ps_session_fail (self, PS_ECONNECT, "%s", problem.message);
    ps_envelope_t request;
    ps_pending_t *pending;
    int status = ps_session_request (self, PSMQ__MSG_TYPE__HELLO, &request, &pending);
    if (status)
        return status;
    uint64_t ticket = pending->seq;
    char *group[PS_MAX_SHARDS];
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        if (ps_group_member (self->group, link)->welcomed)
            continue;
        Psmq__Hello hello;
        s_hello_settings (self, link, &hello, group);
        request.hello = &hello;
        status = ps_session_send (self, link, pending, &request, NULL, false);
    }
    status = status ? ps_session_abandon (self, ticket, status)
                    : ps_session_wait_or_forget (self, ticket, timeout_ms);
    //  Complete, the ticket had every broker's welcome: no other is missing
    self->staleness = ps_group_staleness (self->group);
    return status;
}

int
ps_session_hello_clock (ps_session_t *self, bool rejoin, bool *again, bool *rollback)
{
    int64_t clock = 0;
    ps_problem_t problem;
    int status = ps_group_hello_clock (self->group, rejoin, &clock, again, rollback, &problem);
    if (status)
        return ps_session_fail (self, status, "%s", problem.message);
    if (!*rollback)
        self->clock = clock;
    return PS_OK;
}

int
ps_session_leave (ps_session_t *self)
{
    //  A broker whose connection was lost has forgotten us, or will
    ps_session_links_events (self);
    ps_envelope_t request;
    ps_pending_t *pending;
    int status = ps_session_request (self, PSMQ__MSG_TYPE__BYE, &request, &pending);
    if (status)
        return status;
    uint64_t ticket = pending->seq;
    bool sent = false;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        ps_member_t *member = ps_group_member (self->group, link);
        if (member->registered && !member->lost) {
            status = ps_session_send (self, link, pending, &request, NULL, false);
            sent = true;
        }
    }
    if (status != PS_OK || !sent)
        return ps_session_abandon (self, ticket, status);
    status = ps_session_wait_or_forget (self, ticket, BYE_TIMEOUT_MS);
    for (uint32_t link = 0; link < self->nlinks; link++)
        ps_group_member (self->group, link)->registered = false;
    return status;
}

//  Whether a broker's INFO shows one of our ranks live: after a HELLO
//  refused with PS_ERANK, it holds them for another connection, most
//  likely an earlier process of this worker that it has not seen go
static bool
s_ranks_held (ps_session_t *self)
{
    uint32_t first = self->options.rank;
    uint32_t weight = self->options.local_workers > 1 ? self->options.local_workers : 1;
    bool held = false;
    for (uint32_t link = 0; link < self->nlinks && !held; link++) {
        char *text = NULL;
        if (ps_session_info (self, link, &text) != PS_OK)
            continue;
        json_t *info = json_loads (text, 0, NULL);
        free (text);
        json_t *workers = json_object_get (info, "workers");
        //  Another world is another refusal, which waiting does not cure
        if (json_integer_value (json_object_get (info, "world")) != self->options.world_size)
            workers = NULL;
        for (size_t i = 0; i < json_array_size (workers); i++) {
            json_t *worker = json_array_get (workers, i);
            json_int_t rank = json_integer_value (json_object_get (worker, "rank"));
            const char *state = json_string_value (json_object_get (worker, "state"));
            if (rank >= first && rank < (json_int_t)first + weight && state &&
                strcmp (state, "live") == 0)
                held = true;
        }
        json_decref (info);
    }
    return held;
}

//  Whether shard 0's INFO shows every rank of its world live: a worker
//  that asked for any rank and was refused waits for one to be freed
static bool
s_job_full (ps_session_t *self)
{
    char *text = NULL;
    if (ps_session_info (self, 0, &text) != PS_OK)
        return false;
    json_t *info = json_loads (text, 0, NULL);
    free (text);
    json_int_t world = json_integer_value (json_object_get (info, "world"));
    json_int_t live = json_integer_value (json_object_get (info, "live"));
    bool full = world > 0 && live >= world &&
                (self->options.world_size == 0 || world == self->options.world_size);
    json_decref (info);
    return full;
}

//  The first HELLO (a few attempts while the brokers of a group name
//  different clocks): PS_OK or its failure
static int
s_join_attempts (ps_session_t *self)
{
    int status = PS_OK;
    for (int attempt = 1; attempt <= HELLO_ATTEMPTS; attempt++) {
        ps_group_hello_reset (self->group, false);
        bool again = false, rollback = false;
        //  After a BYE (a try again below) the rank given is free again:
        //  ask anew
        self->rank_given = false;
        status = self->ask_rank ? s_hello_for_rank (self) : PS_OK;
        if (status == PS_OK && !s_all_welcomed (self))
            status = ps_session_hello (self, false, self->options.timeout_ms);
        if (status == PS_OK && self->options.world_size == 0)
            status = s_take_world (self);
        if (status == PS_OK)
            status = ps_session_hello_clock (self, false, &again, &rollback);
        if (status == PS_OK || !again || attempt == HELLO_ATTEMPTS)
            break;
        ps_session_leave (self);
        usleep ((useconds_t)attempt * 20000);
    }
    return status;
}

int
ps_session_join (ps_session_t *self)
{
    //  A broker refuses a HELLO for a rank that is live on another
    //  connection. When the options let us wait for the brokers, a worker
    //  started again before the broker saw its earlier process go (a host
    //  that vanished is noticed only after the broker's timeout) waits for
    //  that eviction rather than failing
    int64_t deadline = ps_session_now_ms () + self->options.wait_for_broker_ms;
    int64_t backoff = JOIN_BACKOFF_MS;
    bool noticed = false;
    int status;
    while ((status = s_join_attempts (self)) == PS_ERANK && self->options.wait_for_broker_ms > 0) {
        char refusal[sizeof self->error];
        snprintf (refusal, sizeof refusal, "%s", self->error);
        int64_t left = deadline - ps_session_now_ms ();
        //  Refused the ranks shard 0 gave by another member, or our own
        //  ranks: held by an earlier process; refused any rank: the job is
        //  full, until the broker evicts a rank
        bool asked = self->ask_rank && !self->rank_given;
        if (left <= 0 || !(asked ? s_job_full (self) : s_ranks_held (self))) {
            ps_session_fail (self, status, "%s", refusal);
            break;
        }
        if (!noticed && asked)
            ps_session_log (&self->options, PS_WORKER_LOG_WARNING,
                            "%s; waiting up to %g s for a rank to be freed (a worker evicted)",
                            refusal, self->options.wait_for_broker_ms / 1000.0);
        else if (!noticed)
            ps_session_log (&self->options, PS_WORKER_LOG_WARNING,
                            "rank %u: %s; waiting up to %g s for the broker to let the earlier "
                            "connection go (evicted when silent)",
                            self->options.rank, refusal, self->options.wait_for_broker_ms / 1000.0);
        noticed = true;
        usleep ((useconds_t)(backoff < left ? backoff : left) * 1000);
        backoff = backoff * 2 < JOIN_BACKOFF_MAX_MS ? backoff * 2 : JOIN_BACKOFF_MAX_MS;
    }
    if (status)
        return status;
    ps_problem_t problem;
    status = ps_group_heartbeat_start (self->group, self->options.rank, &problem);
    if (status)
        return ps_session_fail (self, status, "%s", problem.message);
    self->joined = true;
    //  The ranks given are ours across every rejoin
    self->ask_rank = false;
    return PS_OK;
}
