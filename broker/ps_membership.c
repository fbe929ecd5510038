/*  =========================================================================
    ps_membership - who is in the job: a connection joins as ranks (HELLO)
    and leaves (BYE, or evicted), and the connection each peer came on
    (see ps_router.h)

    A HELLO is checked against the group (the worker must take this
    broker for what it is) and the world, and against the ranks that are
    live: another connection's rank is taken only by a HELLO that shows
    that connection's session (the same worker on a new connection, which
    takes its ranks back from the old one). It may ask this very process
    for the group's rollback (ps_router_checkpoint.c) when it comes from a
    registered connection with its session; then it joins the vector clock and
    is answered with what a worker needs of the job: every live rank's
    clock, its session, the heartbeat, the group, the incarnation.

    A rank leaves when it says BYE, when it is silent past the timeout,
    when it holds the others back without progress past the deadline
    (ps_progress), or the moment its connection closes; then nobody waits
    for it any more: it leaves the vector clock, its parked requests are
    dropped, and the slowest clock may move. The last of these needs the
    connection a peer's messages come on: libzmq names it by its file
    descriptor in each message (ZMQ_SRCFD) and in the socket monitor's
    events (ps_broker.c), and a descriptor is reused once closed, so each
    peer's is noted as its messages come (ps_router_note_fd), dropped when
    the descriptor is accepted again, and a message read after its
    connection closed evicts its peer once it has been handled
    (ps_router_receive).
    ========================================================================= */

#include "ps_log.h"
#include "ps_router.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------ leaving

//  Forget a connection: its parked requests go, the rank stays as it is
static void
s_peer_forget (ps_router_t *self, ps_peer_t *peer)
{
    ps_parking_drop_peer (self->parking, peer);
    ps_peers_forget (self->peers, peer);
}

//  A rank goes away (BYE or silence): nobody waits for it any more
static void
s_rank_leaves (ps_router_t *self, ps_peer_t *peer)
{
    int64_t old_min = ps_vclock_min (self->vclock);
    for (uint32_t rank = peer->rank; rank < peer->rank + peer->weight; rank++)
        ps_vclock_leave (self->vclock, rank);
    s_peer_forget (self, peer);
    ps_router_clock_moved (self, old_min);
}

void
ps_router_bye (ps_router_t *self, ps_peer_t *peer, const ps_envelope_t *request)
{
    ps_info ("worker %u left at clock %" PRId64, peer->rank,
             ps_vclock_clock (self->vclock, peer->rank));
    ps_router_reply (self, peer->id, peer->id_size, request,
                     ps_vclock_clock (self->vclock, peer->rank));
    if (self->tap_on)
        ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_DISCONNECT, peer->rank, "left (bye)");
    s_rank_leaves (self, peer);
}

void
ps_router_evict_silent (ps_router_t *self)
{
    int64_t now = zclock_mono ();
    zlistx_t *silent = ps_peers_silent (self->peers, self->config.timeout_ms);
    for (ps_peer_t *peer = zlistx_first (silent); peer; peer = zlistx_next (silent)) {
        ps_warn ("evicted worker %u: silent for %" PRId64 " ms (timeout %u ms), at clock %" PRId64,
                 peer->rank, now - peer->last_seen, self->config.timeout_ms,
                 ps_vclock_clock (self->vclock, peer->rank));
        self->stats.evicted++;
        self->stats.evicted_silent++;
        if (self->tap_on)
            ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_EVICT, peer->rank,
                                 "silent for %" PRId64 " ms", now - peer->last_seen);
        s_rank_leaves (self, peer);
    }
    zlistx_destroy (&silent);
}

//  Most hung ranks evicted in one check; the others go at the next
#define PS_ROUTER_MAX_HUNG 64

void
ps_router_evict_hung (ps_router_t *self)
{
    size_t parked = ps_parking_size (self->parking);
    if (parked == 0 || ps_progress_deadline (self->progress) == 0)
        return;
    //  The clocks of the requests the bound holds (once per check, not
    //  per message: an allocation is fine here)
    int64_t *waiting = malloc (parked * sizeof *waiting);
    if (!waiting)
        return;
    size_t nwaiting = 0;
    for (const ps_parked_t *item = ps_parking_first (self->parking); item;
         item = ps_parking_next (self->parking))
        if (!ps_vclock_admits (self->vclock, item->clock))
            waiting[nwaiting++] = item->clock;
    ps_progress_hung_t hung[PS_ROUTER_MAX_HUNG];
    size_t found = ps_progress_hung (self->progress, self->vclock, waiting, nwaiting,
                                     zclock_mono (), hung, PS_ROUTER_MAX_HUNG);
    free (waiting);
    for (size_t i = 0; i < found; i++) {
        //  NULL for the later ranks of a connection evicted already
        ps_peer_t *peer = ps_peers_of_rank (self->peers, hung[i].rank);
        if (!peer)
            continue;
        ps_warn ("evicted worker %u: no progress for %" PRId64 " ms while %u requests waited on "
                 "it; deadline %" PRId64 " ms, at clock %" PRId64,
                 hung[i].rank, hung[i].stalled_ms, hung[i].waiting, hung[i].deadline_ms,
                 ps_vclock_clock (self->vclock, hung[i].rank));
        self->stats.evicted++;
        self->stats.evicted_hung++;
        if (self->tap_on)
            ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_EVICT, hung[i].rank,
                                 "no progress for %" PRId64
                                 " ms while %u requests waited on it; deadline %" PRId64 " ms",
                                 hung[i].stalled_ms, hung[i].waiting, hung[i].deadline_ms);
        s_rank_leaves (self, peer);
    }
}

// ------------------------------------------------------------ connections

//  The message at hand came from peer: note its connection, and whether
//  that connection is closed already (its DISCONNECTED was handled before
//  the message, which was queued before it closed: every connection open
//  is in self->connections, since its ACCEPTED came before its messages)
void
ps_router_note_fd (ps_router_t *self, ps_peer_t *peer)
{
    if (peer->fd == self->fd)
        return;
    ps_peers_set_fd (self->peers, peer, self->fd);
    if (self->fd >= 0 && self->connections) {
        char key[16];
        snprintf (key, sizeof key, "%d", self->fd);
        self->fd_closed = zhashx_lookup (self->connections, key) == NULL;
    }
}

void
ps_router_connection_opened (ps_router_t *self, int fd)
{
    //  The descriptor was closed and is reused: whoever was noted on it is
    //  on another connection now, or on none (it will be noted again)
    ps_peer_t *peer = ps_peers_of_fd (self->peers, fd);
    if (peer)
        ps_peers_set_fd (self->peers, peer, -1);
}

void
ps_router_connection_closed (ps_router_t *self, int fd)
{
    ps_peer_t *peer = ps_peers_of_fd (self->peers, fd);
    if (!peer)
        return; //  a heartbeat socket, an unregistered or a replaced connection
    char key[16];
    snprintf (key, sizeof key, "%d", fd);
    const char *remote = self->connections ? zhashx_lookup (self->connections, key) : NULL;
    const char *from = remote ? remote : "before its last message was read";
    ps_warn ("evicted worker %u: its connection closed (%s), at clock %" PRId64, peer->rank, from,
             ps_vclock_clock (self->vclock, peer->rank));
    self->stats.evicted++;
    self->stats.evicted_closed++;
    if (self->tap_on)
        ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_EVICT, peer->rank,
                             "its connection closed (%s)", from);
    s_rank_leaves (self, peer);
}

// ------------------------------------------------------------ HELLO

//  A worker must take us for what we are: the same place in a group of the
//  same size, or its pushes and pulls would address slices we do not hold
static int
s_check_group (ps_router_t *self, const Psmq__Hello *hello, ps_problem_t *problem)
{
    uint32_t shards = ps_router_shards (self);
    uint32_t theirs = hello->shards ? hello->shards : 1;
    if (theirs != shards || hello->shard != self->config.shard) {
        if (shards == 1)
            return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                                   "the worker takes this broker for shard %u of a group of %u, "
                                   "but it serves alone (no --shards)",
                                   hello->shard, theirs);
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                               "the worker takes this broker for shard %u of a group of %u, "
                               "but it is shard %u of %u: give every worker the same "
                               "endpoint list, in shard order",
                               hello->shard, theirs, self->config.shard, shards);
    }
    if (hello->n_group && hello->n_group != theirs)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_GROUP,
                               "the worker names %zu endpoints for a group of %u", hello->n_group,
                               theirs);
    return 0;
}

//  Remember the group's endpoints as a worker names them, for INFO
static void
s_learn_group (ps_router_t *self, const Psmq__Hello *hello)
{
    if (self->group || hello->n_group < 2)
        return;
    char **group = calloc (hello->n_group, sizeof *group);
    if (!group)
        return;
    for (size_t i = 0; i < hello->n_group; i++)
        group[i] = strdup (hello->group[i]);
    self->group = group;
}

//  The ranks a HELLO claims must fit the world; 0, or -1 with ERR_RANK
static int
s_check_ranks (ps_router_t *self, const ps_envelope_t *request, uint32_t weight,
               ps_problem_t *problem)
{
    uint32_t world = ps_vclock_world (self->vclock);
    if (request->hello->world_size != world || request->worker >= world ||
        weight > world - request->worker)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_RANK,
                               "ranks %u..%u of world %u do not fit this broker's world of %u "
                               "workers",
                               request->worker, request->worker + weight - 1,
                               request->hello->world_size, world);
    return 0;
}

//  A worker without a rank of its own (hello.any_rank) is given the
//  lowest block of weight ranks that no connection holds, contiguous as
//  every connection's ranks are: the answer is request->worker, which the
//  reply echoes. The connection that holds ranks already gets its own
//  back (a HELLO again on it), so one connection never takes two blocks
//  and a flood of such HELLOs takes at most the world, each over a
//  connection the transport's security admitted; then the job is full.
//  0, or -1 with ERR_RANK.
static int
s_assign_ranks (ps_router_t *self, const ps_peer_t *peer, ps_envelope_t *request, uint32_t weight,
                ps_problem_t *problem)
{
    uint32_t world = ps_vclock_world (self->vclock);
    if (peer && peer->weight == weight) {
        request->worker = peer->rank;
        return 0;
    }
    if (weight > world) {
        request->worker = 0; //  s_check_ranks says why that does not fit
        return 0;
    }
    for (uint32_t first = 0; first <= world - weight; first++) {
        uint32_t r = first;
        while (r < first + weight && !ps_peers_of_rank (self->peers, r))
            r++;
        if (r == first + weight) {
            request->worker = first;
            return 0;
        }
        first = r; //  the next block that may be free starts after r
    }
    if (weight > 1)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_RANK,
                               "no rank to give: the job is full (no %u free ranks in a row; %u "
                               "of %u ranks live)",
                               weight, ps_vclock_live (self->vclock), world);
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_RANK,
                           "no rank to give: the job is full (%u of %u ranks live)",
                           ps_vclock_live (self->vclock), world);
}

//  A rank is live while a connection holds it. A HELLO from another
//  connection may name it only as that rank coming back, showing the
//  session its holder's HELLO reply gave (a worker that restarted and
//  lost it waits until the old connection is gone: closed, silent, BYE).
//  Without this, one HELLO for rank 0 with weight = world took every rank
//  of a running job. 0, or -1 with ERR_RANK naming the first rank refused.
static int
s_check_live (ps_router_t *self, const ps_peer_t *peer, const ps_envelope_t *request,
              uint32_t weight, ps_problem_t *problem)
{
    uint64_t shown = request->hello->resume_session;
    for (uint32_t r = request->worker; r < request->worker + weight; r++) {
        const ps_peer_t *holder = ps_peers_of_rank (self->peers, r);
        if (!holder || holder == peer || (shown && shown == holder->session))
            continue;
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_RANK,
                               "rank %u is live on another connection; a worker coming back "
                               "must show its session%s",
                               r, shown ? " (this HELLO shows another)" : "");
    }
    return 0;
}

//  A rollback throws away every worker's last clocks: only a worker
//  registered here asks for one, over the connection it registered on and
//  showing that registration's session (the incarnation it names is no
//  secret: INFO shows it). 0, or -1 with ERR_NOT_REGISTERED.
static int
s_check_rollback (const ps_peer_t *peer, const ps_envelope_t *request, ps_problem_t *problem)
{
    if (peer && request->hello->resume_session == peer->session)
        return 0;
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_NOT_REGISTERED,
                           "a rollback is asked by a worker registered here, with the session "
                           "of its HELLO: %s",
                           peer ? "this HELLO shows another session" : "say hello first");
}

//  Free ranks rank .. rank+weight-1 of other connections: a worker that
//  registers again from a new connection (s_check_live let it) takes its
//  ranks back
static void
s_take_ranks (ps_router_t *self, ps_peer_t *keep, uint32_t rank, uint32_t weight)
{
    for (uint32_t r = rank; r < rank + weight; r++) {
        ps_peer_t *holder = ps_peers_of_rank (self->peers, r);
        if (!holder || holder == keep)
            continue;
        ps_warn ("worker %u registered again from a new connection; the old one is dropped", r);
        //  The old connection's other ranks have nobody behind them now:
        //  they leave, or the job would wait for them forever
        for (uint32_t other = holder->rank; other < holder->rank + holder->weight; other++)
            if (other < rank || other >= rank + weight)
                ps_vclock_leave (self->vclock, other);
        s_peer_forget (self, holder);
    }
}

static void
s_welcome (ps_router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *request,
           const ps_peer_t *peer, int64_t clock)
{
    uint32_t world = ps_vclock_world (self->vclock);
    int64_t clocks[PS_MAX_WORKERS];
    for (uint32_t r = 0; r < world; r++)
        clocks[r] = ps_vclock_state (self->vclock, r) == PS_RANK_LIVE
                        ? ps_vclock_clock (self->vclock, r)
                        : -1;
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = world;
    hello.staleness = self->config.staleness;
    hello.session = peer->session;
    hello.heartbeat_ms = self->config.heartbeat_ms;
    hello.timeout_ms = self->config.timeout_ms;
    hello.clocks = clocks;
    hello.n_clocks = world;
    hello.live = ps_vclock_live (self->vclock);
    hello.shard = self->config.shard;
    hello.shards = ps_router_shards (self);
    hello.incarnation = self->incarnation;
    //  What a group's rollback may go back to (ps_group.c decides)
    int64_t held[PS_MAX_HELD_CHECKPOINTS];
    if (self->checkpointer) {
        hello.n_checkpoints =
            ps_checkpointer_held (self->checkpointer, held, PS_MAX_HELD_CHECKPOINTS);
        hello.checkpoints = held;
    }
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.clock = clock;
    reply.min_clock = ps_vclock_min (self->vclock);
    reply.hello = &hello;
    ps_router_send (self, id, id_size, &reply, NULL, 0);
}

void
ps_router_hello (ps_router_t *self, const uint8_t *id, size_t id_size, ps_envelope_t *request)
{
    ps_problem_t problem;
    if (!request->hello) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_MALFORMED, "hello without its settings");
        return ps_router_reject (self, id, id_size, request, &problem);
    }
    uint32_t weight = request->hello->weight ? request->hello->weight : 1;
    //  A worker that names no world learns it from the reply
    if (request->hello->world_size == 0)
        request->hello->world_size = ps_vclock_world (self->vclock);
    ps_peer_t *peer = ps_peers_lookup (self->peers, id, id_size);
    if (s_check_group (self, request->hello, &problem) ||
        (request->hello->any_rank && s_assign_ranks (self, peer, request, weight, &problem)) ||
        s_check_ranks (self, request, weight, &problem))
        return ps_router_reject (self, id, id_size, request, &problem);
    if (peer && (peer->rank != request->worker || peer->weight != weight)) {
        ps_problem_set (&problem, PSMQ__ERR_CODE__ERR_RANK,
                        "this connection is rank %u already, not %u", peer->rank, request->worker);
        return ps_router_reject (self, id, id_size, request, &problem);
    }
    if (s_check_live (self, peer, request, weight, &problem))
        return ps_router_reject (self, id, id_size, request, &problem);
    //  A group's rollback, asked of this very process: once only, since it
    //  draws a new incarnation (a request naming an older one is somebody
    //  else's rollback, done already, or crossed a restart: a plain HELLO).
    //  It forgets every connection, this one too.
    uint64_t asked = request->hello->rollback_incarnation;
    if (asked && asked == self->incarnation) {
        if (s_check_rollback (peer, request, &problem) ||
            ps_router_rollback (self, request->hello->rollback_to, &problem))
            return ps_router_reject (self, id, id_size, request, &problem);
        peer = NULL;
    }
    uint32_t rank = request->worker;
    int64_t old_min = ps_vclock_min (self->vclock);
    s_take_ranks (self, peer, rank, weight);
    if (peer)
        ps_peers_register (self->peers, peer);
    else
        peer = ps_peers_add (self->peers, id, id_size, rank, weight);
    ps_router_note_fd (self, peer);
    s_learn_group (self, request->hello);

    uint32_t world = ps_vclock_world (self->vclock);
    int64_t clock = ps_vclock_join_range (self->vclock, rank, weight);
    ps_progress_joined (self->progress, self->vclock, rank, weight, zclock_mono ());
    if (self->checkpointer)
        ps_checkpointer_joined (self->checkpointer, rank, weight);
    if (weight > 1)
        ps_info ("workers %u..%u joined at clock %" PRId64 " (%u of %u live)", rank,
                 rank + weight - 1, clock, ps_vclock_live (self->vclock), world);
    else
        ps_info ("worker %u joined at clock %" PRId64 " (%u of %u live)", rank, clock,
                 ps_vclock_live (self->vclock), world);
    if (self->tap_on)
        ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_CONNECT, rank, "joined at clock %" PRId64,
                             clock);
    s_welcome (self, id, id_size, request, peer, clock);
    ps_router_clock_moved (self, old_min);
}
