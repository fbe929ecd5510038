/*  =========================================================================
    ps_router_limits - the ROUTER loop's limits on unsent pull replies and
    on connections (see ps_router.h; the store's own is ps_store's)

    Unsent replies. Each registered connection has a counter of the bytes
    its pull replies hold pinned in libzmq (ps_unsent.h). A PULL is
    answered while that is below the limit, and refused with ERR_FULL
    once it is not, so one connection pins at most the limit plus one
    reply. The limit by default grows with the model (twice it, at least
    PS_DEFAULT_MAX_UNREAD): a worker reads its reply before it pulls
    again, so it never meets it. The check is made when the reply is
    about to go, so that pulls parked on the staleness bound, released
    together, are bounded too. libzmq's own queue (ZMQ_SNDHWM, PS_SNDHWM
    messages per connection) drops what passes it without a word; the byte
    limit is met long before that with replies of any size, and refused
    replies are small.

    Pushes waiting. A push is acked at once and its frames handed to the
    aggregation thread, which may be slower than the network: a peer that
    pushes and never waits for a CLOCK made the broker hold 1 GB of them
    in 3 s. Each connection counts the bytes of its pushes since the
    aggregator last finished all of them, and past the same limit (a
    worker's CLOCK waits for its pushes, so it has one clock's at most)
    its PUSH is refused with ERR_FULL.

    The push budget. Pushes more than 1 MB come in parts of at most 1 MB
    (PROTOCOL.md, Credit): a worker asks first (a PUSH with `more` and no
    slice) and sends a part for each grant (a PUSH reply with `more`).
    Grants go out in turns, up to PS_PUSH_WINDOW outstanding per
    connection, while the bytes we handed the aggregator and it has not
    applied, plus a part's worth for each grant whose part has not come,
    are below the budget (psbroker --push-budget), all connections
    together. So the pushes the broker holds are the budget, however many
    workers push. A connection silent for PS_GRANT_IDLE_MS with grants in
    hand has them counted no more (a peer that takes grants and sends
    nothing cannot starve the others); a part that comes without a grant
    (a client that does not ask) is taken all the same. Why not a small
    ZMQ_RCVHWM and TCP's window: see PS_DEFAULT_PUSH_BUDGET (libzmq 4.3.4
    aborts on a connection that closes while its input is stopped).

    Connections. libzmq accepts whatever comes; the socket monitor tells
    us (ps_broker.c), and when more connections are open than the cap,
    the ones that never registered go first, those silent since their
    accept (the attack) before those idle longest (ps_conns). A connection
    that registered is never shed for the cap: a job's workers are fewer
    than its ranks, and the cap must leave room for them. The cap leaves
    PS_FD_RESERVE descriptors free, so that libzmq's accept does not meet
    EMFILE, on which it retries at once and spins. Apart from the cap,
    unregistered connections silent for longer than PS_UNREGISTERED_IDLE_MS
    (or the worker timeout, if longer: a worker's heartbeat socket sends
    no HELLO) are shed on the loop's periodic check.
    ========================================================================= */

#include "ps_log.h"
#include "ps_resources.h"
#include "ps_router.h"

#include <inttypes.h>
#include <stdio.h>

int
ps_router_limits_setup (ps_router_t *self, ps_problem_t *problem)
{
    self->conns = ps_conns_new ();
    self->info_unsent = ps_unsent_new ();
    if (!self->conns || !self->info_unsent)
        return ps_problem_set (problem, 0, "out of memory starting the broker");
    self->push_budget =
        self->config.push_budget ? self->config.push_budget : PS_DEFAULT_PUSH_BUDGET;
    self->fd_limit = ps_resources_fd_limit ();
    uint64_t open = ps_resources_open_fds ();
    uint64_t room = self->fd_limit > open + PS_FD_RESERVE + PS_MIN_CONNECTIONS
                        ? self->fd_limit - open - PS_FD_RESERVE
                        : PS_MIN_CONNECTIONS;
    if (self->config.max_connections)
        self->max_connections = self->config.max_connections;
    else
        self->max_connections = self->fd_limit ? room : UINT32_MAX;
    if (self->fd_limit && self->max_connections > room)
        ps_warn ("--max-connections %" PRIu64 " leaves less than %d of the %" PRIu64
                 " descriptors the broker may open (%" PRIu64 " open now): past %" PRIu64
                 " connections, accepting may fail and spin",
                 self->max_connections, PS_FD_RESERVE, self->fd_limit, open, room);
    char memory[32];
    ps_info ("limits: store %s (--max-memory), %" PRIu64 " connections (--max-connections; %" PRIu64
             " descriptors)",
             ps_resources_bytes (self->config.max_memory, memory, sizeof memory),
             self->max_connections, self->fd_limit);
    return 0;
}

void
ps_router_limits_teardown (ps_router_t *self)
{
    ps_conns_destroy (&self->conns);
    ps_unsent_destroy (&self->info_unsent);
}

static bool
s_registered (void *arg, int fd)
{
    ps_router_t *self = arg;
    return ps_peers_of_fd (self->peers, fd) != NULL;
}

//  Shut fd's connection, counted and logged at a bounded rate
static void
s_shed (ps_router_t *self, int fd, int64_t idle_ms, const char *why)
{
    char key[16];
    snprintf (key, sizeof key, "%d", fd);
    const char *remote = self->connections ? zhashx_lookup (self->connections, key) : NULL;
    int64_t second = zclock_mono () / 1000;
    if (second != self->shed_window) {
        if (self->shed_logged > PS_SHED_LOG_PER_SECOND)
            ps_warn ("%u more connections closed in the last second",
                     self->shed_logged - PS_SHED_LOG_PER_SECOND);
        self->shed_window = second;
        self->shed_logged = 0;
    }
    if (self->shed_logged++ < PS_SHED_LOG_PER_SECOND)
        ps_warn ("closed the connection from %s: it never said HELLO and was idle %.1f s, %s",
                 remote ? remote : "?", idle_ms / 1000.0, why);
    if (self->tap_on)
        ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_DISCONNECT, -1,
                             "closed the connection from %s: %s", remote ? remote : "?", why);
}

void
ps_router_limits_opened (ps_router_t *self, int fd)
{
    int64_t now = zclock_mono ();
    ps_conns_opened (self->conns, fd, now);
    while (ps_conns_count (self->conns) > self->max_connections) {
        int64_t idle;
        int victim = ps_conns_pick (self->conns, now, 0, s_registered, self, &idle);
        if (victim < 0) {
            if (!self->cap_warned)
                ps_warn ("%zu connections open, over the cap of %" PRIu64
                         " (psbroker --max-connections), and all registered: none is closed",
                         ps_conns_count (self->conns), self->max_connections);
            self->cap_warned = true;
            return;
        }
        if (ps_conns_shed (self->conns, victim) == 0) {
            self->shed_over_cap++;
            char why[128];
            snprintf (why, sizeof why,
                      "over the cap of %" PRIu64 " connections (psbroker --max-connections)",
                      self->max_connections);
            s_shed (self, victim, idle, why);
        }
    }
}

void
ps_router_limits_closed (ps_router_t *self, int fd)
{
    ps_conns_closed (self->conns, fd);
    if (ps_conns_count (self->conns) <= self->max_connections)
        self->cap_warned = false;
}

void
ps_router_limits_heard (ps_router_t *self)
{
    ps_conns_heard (self->conns, self->fd, zclock_mono ());
}

void
ps_router_limits_tick (ps_router_t *self)
{
    int64_t now = zclock_mono ();
    int64_t bound = self->config.timeout_ms > PS_UNREGISTERED_IDLE_MS ? self->config.timeout_ms
                                                                      : PS_UNREGISTERED_IDLE_MS;
    int64_t idle;
    int victim;
    while ((victim = ps_conns_pick (self->conns, now, bound, s_registered, self, &idle)) >= 0) {
        if (ps_conns_shed (self->conns, victim))
            continue;
        self->shed_idle++;
        char why[96];
        snprintf (why, sizeof why, "longer than %.0f s", bound / 1000.0);
        s_shed (self, victim, idle, why);
    }
    //  Grants held by a connection gone silent go back to the others
    ps_router_grant_parts (self);
}

//  The limit in force: the configured one, or twice the model and at
//  least PS_DEFAULT_MAX_UNREAD
static uint64_t
s_max_unread (ps_router_t *self)
{
    if (self->config.max_unread)
        return self->config.max_unread;
    uint64_t model = ps_published_bytes (self->published);
    return model > PS_DEFAULT_MAX_UNREAD / 2 ? 2 * model : PS_DEFAULT_MAX_UNREAD;
}

int
ps_router_limits_pull (ps_router_t *self, ps_peer_t *peer, ps_unsent_t **unsent,
                       ps_problem_t *problem)
{
    if (!peer->unsent)
        peer->unsent = ps_unsent_new ();
    *unsent = peer->unsent;
    if (!peer->unsent)
        return 0; //  out of memory: answered uncounted rather than refused
    uint64_t bytes = ps_unsent_bytes (peer->unsent);
    uint64_t limit = s_max_unread (self);
    if (bytes < limit)
        return 0;
    self->unread_refused++;
    char held[32], most[32];
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                           "%s of pull replies to this connection are still unsent, its limit "
                           "is %s (psbroker --max-unread): read them first",
                           ps_resources_bytes (bytes, held, sizeof held),
                           ps_resources_bytes (limit, most, sizeof most));
}

int
ps_router_limits_info_room (ps_router_t *self, ps_problem_t *problem)
{
    uint64_t bytes = ps_unsent_bytes (self->info_unsent);
    if (bytes < PS_MAX_UNREAD_INFO)
        return 0;
    self->info_refused++;
    char held[32], most[32];
    return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                           "%s of INFO replies are still unsent to the connections that asked "
                           "(the limit is %s): read them first",
                           ps_resources_bytes (bytes, held, sizeof held),
                           ps_resources_bytes (PS_MAX_UNREAD_INFO, most, sizeof most));
}

void
ps_router_limits_send_info (ps_router_t *self, const uint8_t *id, size_t id_size,
                            const ps_envelope_t *reply)
{
    if (self->tap_on)
        ps_router_tap_message (self, PSMQ__TAP_KIND__TAP_REPLY, id, id_size, reply, NULL, 0);
    self->stats.out[reply->type]++;
    ps_router_observe_reply (self, reply->type);
    size_t size = psmq__envelope__get_packed_size (reply);
    zmq_msg_t msg;
    if (ps_unsent_buffer (self->info_unsent, size, &msg)) {
        ps_error ("out of memory for an INFO reply of %zu bytes", size);
        return;
    }
    psmq__envelope__pack (reply, zmq_msg_data (&msg));
    ps_router_send_routing_id (self, id, id_size);
    if (zmq_msg_send (&msg, self->router_handle, 0) == -1)
        zmq_msg_close (&msg);
}

int
ps_router_limits_push (ps_router_t *self, ps_peer_t *peer, ps_problem_t *problem)
{
    //  Counted from its first push the aggregator has not finished: a
    //  worker's CLOCK waits for its pushes, so it has one clock's at most
    if (self->agg_done >= peer->pushes_sent)
        peer->pushing = 0;
    uint64_t limit = s_max_unread (self);
    if (peer->pushing >= limit) {
        self->push_refused++;
        char held[32], most[32];
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "%s of this connection's pushes still wait for the aggregation "
                               "thread, its limit is %s (psbroker --max-unread): wait for the "
                               "reply to a CLOCK before pushing more",
                               ps_resources_bytes (peer->pushing, held, sizeof held),
                               ps_resources_bytes (limit, most, sizeof most));
    }
    for (size_t i = 2; i < self->nframes; i++)
        peer->pushing += zmq_msg_size (&self->frames[i]);
    return 0;
}

//  Grant peer one more part of its push in parts
static void
s_grant (ps_router_t *self, ps_peer_t *peer)
{
    ps_envelope_t request;
    psmq__envelope__init (&request);
    request.type = PSMQ__MSG_TYPE__PUSH;
    request.seq = peer->part_seq;
    request.worker = peer->rank;
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, &request);
    reply.more = true;
    reply.min_clock = ps_vclock_min (self->vclock);
    ps_router_send (self, peer->id, peer->id_size, &reply, NULL, 0);
    peer->part_credit++;
    peer->part_granted = zclock_mono ();
    self->push_grants++;
}

//  Rank's connection if it has a push in parts that takes grants, and
//  either waits for one or sent a part or got a grant lately: the grants
//  of one silent that long count no more
static ps_peer_t *
s_pushing (ps_router_t *self, uint32_t rank, int64_t now)
{
    ps_peer_t *peer = ps_peers_of_rank (self->peers, rank);
    if (!peer || peer->rank != rank || !peer->part_open || peer->part_refused)
        return NULL;
    int64_t last = peer->part_heard > peer->part_granted ? peer->part_heard : peer->part_granted;
    return peer->part_credit == 0 || now - last < PS_GRANT_IDLE_MS ? peer : NULL;
}

//  A part's worth for each grant counted (its part not come, its
//  connection not silent); *open: whether any push in parts is open
static uint64_t
s_granted_bytes (ps_router_t *self, int64_t now, bool *open)
{
    uint64_t granted = 0;
    *open = false;
    for (uint32_t rank = 0; rank < ps_vclock_world (self->vclock); rank++) {
        ps_peer_t *peer = ps_peers_of_rank (self->peers, rank);
        *open |= peer && peer->rank == rank && peer->part_open;
        peer = s_pushing (self, rank, now);
        if (peer)
            granted += (uint64_t)peer->part_credit * PS_PUSH_PART_BYTES;
    }
    return granted;
}

void
ps_router_grant_parts (ps_router_t *self)
{
    uint32_t world = ps_vclock_world (self->vclock);
    int64_t now = zclock_mono ();
    if (!self->parts_open)
        return;
    //  What the budget covers: pushes the aggregator has not applied, and
    //  a part's worth for each grant whose part has not come
    uint64_t held =
        self->push_forwarded - self->push_applied + s_granted_bytes (self, now, &self->parts_open);
    //  In turns, a grant each, until the budget or every window is full
    bool granted = true;
    while (granted) {
        granted = false;
        uint32_t start = self->grant_cursor;
        for (uint32_t n = 0; n < world; n++) {
            uint32_t rank = (start + n) % world;
            ps_peer_t *peer = s_pushing (self, rank, now);
            if (!peer || peer->part_credit >= PS_PUSH_WINDOW)
                continue;
            if (held >= self->push_budget) {
                self->push_withheld++;
                self->grant_cursor = rank;
                return;
            }
            s_grant (self, peer);
            held += PS_PUSH_PART_BYTES;
            granted = true;
            self->grant_cursor = rank + 1;
        }
    }
}

json_t *
ps_router_limits_info (ps_router_t *self)
{
    uint64_t unsent = 0;
    for (uint32_t rank = 0; rank < ps_vclock_world (self->vclock); rank++) {
        ps_peer_t *peer = ps_peers_of_rank (self->peers, rank);
        //  A connection of several ranks is counted at its first
        if (peer && peer->rank == rank && peer->unsent)
            unsent += ps_unsent_bytes (peer->unsent);
    }
    bool open;
    uint64_t granted = s_granted_bytes (self, zclock_mono (), &open);
    return json_pack (
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I}",
        "push_budget", (json_int_t)self->push_budget, "push_waiting_bytes",
        (json_int_t)(self->push_forwarded - self->push_applied), "push_granted_bytes",
        (json_int_t)granted, "push_grants", (json_int_t)self->push_grants, "push_grants_withheld",
        (json_int_t)self->push_withheld, "push_refused", (json_int_t)self->push_refused,
        "info_unsent_bytes", (json_int_t)ps_unsent_bytes (self->info_unsent), "info_refused",
        (json_int_t)self->info_refused, "max_memory", (json_int_t)self->config.max_memory,
        "store_bytes", (json_int_t)self->store_bytes, "max_unread", (json_int_t)s_max_unread (self),
        "unsent_bytes", (json_int_t)unsent, "unread_refused", (json_int_t)self->unread_refused,
        "max_connections", (json_int_t)self->max_connections, "connections",
        (json_int_t)ps_conns_count (self->conns), "fd_limit", (json_int_t)self->fd_limit,
        "shed_over_cap", (json_int_t)self->shed_over_cap, "shed_idle", (json_int_t)self->shed_idle);
}
