/*  =========================================================================
    ps_group - the brokers of a worker's group (see ps_group.h)

    One context per worker, with an I/O thread per broker up to four, so
    that the parts of a request to a group go out in parallel. The routing
    id is the worker's own ('W' and 15 random bytes) rather than libzmq's:
    it survives a disconnect, so a broker keeps knowing a worker whose link
    was opened again. The broker hands a routing id over to a new
    connection that presents it (ZMQ_ROUTER_HANDOVER), so whoever knows
    it speaks as the worker: its bytes come from the kernel's secret
    generator (ps_random), not from the time or the process id.

    The HELLO replies of one attempt must agree: the first sets the job's
    staleness, the others are compared with it; their clocks are compared
    once all have come (ps_group_hello_clock), since after a restart what
    to do about a difference is a decision about the whole group.

    That decision, after a member restarted from its checkpoint of clock
    C: every member goes back to the newest clock every member holds a
    checkpoint of (each HELLO reply names the clocks its broker holds; a
    group's members cut at the same clocks), each to its own checkpoint of
    it, so that no pull mixes the parameters of two clocks and the workers
    redo from there. That is C, or an older clock when a member lacks C
    (its writer was busy at that cut, its file was lost or is torn); then
    the restarted member goes back past the checkpoint it restored, like
    the others. A member is asked when it names another clock, and also
    when it names that clock but kept its incarnation: under BSP its sums
    of that clock may hold the pushes of workers that are about to push
    again. A member that restarted, or was rolled back by another worker
    meanwhile, has a new incarnation and names the clock already; the
    broker takes a request naming an incarnation it no longer has as a
    plain HELLO, so two workers that decide at once roll a member back
    once. Two workers that saw different lists (a write landed between
    their HELLOs) may choose different clocks; each decides again on the
    replies to its rollbacks, and since a rollback to a clock discards
    every newer checkpoint, the common clock only goes down: they meet at
    the older one in a round or two. No common clock: the worker fails
    with PS_EGROUP naming every member's clocks (rejected: starting the
    job over, which would throw its progress away unasked).
    ========================================================================= */

#include "ps_group.h"
#include "ps_framepool.h"
#include "ps_heartbeat.h"
#include "ps_poll.h"
#include "ps_random.h"
#include "ps_worker.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  libzmq I/O threads: one per broker up to this many
#define MAX_IO_THREADS 4

struct ps_group_t {
    void *context;                                //  ours
    ps_framepool_t *pool;                         //  buffers for copied frames
    uint8_t routing_id[PS_LINK_ROUTING_ID_BYTES]; //  ours, on every link
    uint32_t size;                                //  brokers, links made so far
    ps_link_t **links;                            //  one per broker, in shard order
    ps_member_t *members;                         //  what each said
    ps_poll_t *poll;                              //  the links' sockets (index link)
                                                  //  then their monitors (size + link)
    unsigned *generation;                         //  each link's sockets in poll
    ps_heartbeat_t *heartbeat;                    //  once joined
    bool joined;                                  //  a HELLO reply came this attempt
    int32_t staleness;                            //  the first reply's
    uint32_t heartbeat_ms;                        //  the shortest interval named, 0 none
    ps_link_curve_t curve;                        //  CURVE keys of every link, if on
};

//  Check the endpoint list: how many brokers, or 0 with problem filled in
static uint32_t
s_check_list (const char *list, ps_problem_t *problem)
{
    uint32_t count = 1;
    for (const char *c = list; *c; c++)
        count += *c == ',';
    if (count > PS_MAX_SHARDS) {
        ps_problem_set (problem, 0, "%u brokers in the list, at most %d", count, PS_MAX_SHARDS);
        return 0;
    }
    const char *start = list;
    for (uint32_t link = 0; link < count; link++) {
        size_t length = strcspn (start, ",");
        if (length == 0 || length > PS_MAX_ENDPOINT_LEN) {
            ps_problem_set (problem, 0, "broker %u of the list '%.300s' is %s", link, list,
                            length ? "too long" : "empty");
            return 0;
        }
        start += length + 1;
    }
    return count;
}

//  Fill the group: its context, pool, routing id and a link per broker
static int
s_open (ps_group_t *self, const char *list, uint32_t count, int send_timeout_ms,
        int heartbeat_timeout_ms, ps_problem_t *problem)
{
    self->links = calloc (count, sizeof *self->links);
    self->members = calloc (count, sizeof *self->members);
    self->generation = calloc (count, sizeof *self->generation);
    self->poll = ps_poll_new ();
    self->pool = ps_framepool_new (PS_CHUNK_BYTES, 256);
    bool places = self->poll != NULL;
    for (uint32_t place = 0; places && place < 2 * count; place++)
        places = ps_poll_add (self->poll, NULL) >= 0;
    if (!self->links || !self->members || !self->generation || !places || !self->pool) {
        ps_problem_set (problem, 0, "out of memory");
        return PS_ENOMEM;
    }
    self->context = zmq_ctx_new ();
    if (!self->context) {
        ps_problem_set (problem, 0, "cannot create a ZeroMQ context");
        return PS_ECONNECT;
    }
    zmq_ctx_set (self->context, ZMQ_IO_THREADS,
                 count < MAX_IO_THREADS ? (int)count : MAX_IO_THREADS);
    self->routing_id[0] = 'W';
    if (ps_random_bytes (self->routing_id + 1, sizeof self->routing_id - 1)) {
        ps_problem_set (problem, 0, "no secret random numbers for a routing id (getrandom)");
        return PS_ECONNECT;
    }
    const char *start = list;
    for (; self->size < count; self->size++) {
        char endpoint[PS_MAX_ENDPOINT_LEN + 1];
        size_t length = strcspn (start, ",");
        snprintf (endpoint, sizeof endpoint, "%.*s", (int)length, start);
        start += length + 1;
        int status;
        self->links[self->size] =
            ps_link_new (self->context, self->pool, endpoint, self->routing_id, send_timeout_ms,
                         heartbeat_timeout_ms, &self->curve, &status, problem);
        if (!self->links[self->size])
            return status;
    }
    return PS_OK;
}

ps_group_t *
ps_group_new (const char *list, int send_timeout_ms, int heartbeat_timeout_ms,
              const char *curve_secret, const char *broker_key, int *status, ps_problem_t *problem)
{
    uint32_t count = s_check_list (list, problem);
    if (!count) {
        *status = PS_EINVAL;
        return NULL;
    }
    ps_group_t *self = calloc (1, sizeof *self);
    if (!self) {
        ps_problem_set (problem, 0, "out of memory");
        *status = PS_ENOMEM;
        return NULL;
    }
    *status = ps_link_curve_load (&self->curve, curve_secret, broker_key, problem);
    if (*status == PS_OK)
        *status = s_open (self, list, count, send_timeout_ms, heartbeat_timeout_ms, problem);
    if (*status)
        ps_group_destroy (&self);
    return self;
}

void
ps_group_destroy (ps_group_t **self_p)
{
    assert (self_p);
    ps_group_t *self = *self_p;
    if (!self)
        return;
    ps_heartbeat_destroy (&self->heartbeat);
    for (uint32_t link = 0; link < self->size; link++)
        ps_link_destroy (&self->links[link]);
    if (self->context)
        zmq_ctx_term (self->context);
    //  After zmq_ctx_term: libzmq has released every pooled frame
    ps_framepool_destroy (&self->pool);
    free (self->links);
    free (self->members);
    free (self->generation);
    ps_poll_destroy (&self->poll);
    explicit_bzero (&self->curve, sizeof self->curve);
    free (self);
    *self_p = NULL;
}

uint32_t
ps_group_size (const ps_group_t *self)
{
    return self->size;
}

ps_link_t *
ps_group_link (ps_group_t *self, uint32_t member)
{
    return self->links[member];
}

ps_member_t *
ps_group_member (ps_group_t *self, uint32_t member)
{
    return &self->members[member];
}

const char *
ps_group_endpoint (const ps_group_t *self, uint32_t member)
{
    return ps_link_endpoint (self->links[member]);
}

//  Have poll wait on link's sockets as they are now; PS_OK, or
//  PS_ECONNECT when the link has none
static int
s_watch (ps_group_t *self, uint32_t link, ps_problem_t *problem)
{
    ps_link_t *dealer = self->links[link];
    void *socket = ps_link_socket (dealer);
    if (!socket) {
        ps_problem_set (problem, 0, "no connection to %s", ps_group_endpoint (self, link));
        return PS_ECONNECT;
    }
    //  Made anew since the last wait (a reconnect): the new ones in place
    unsigned generation = ps_link_generation (dealer);
    if (generation != self->generation[link]) {
        int monitor = (int)(self->size + link);
        if (ps_poll_set (self->poll, (int)link, socket) ||
            ps_poll_set (self->poll, monitor, ps_link_monitor (dealer))) {
            ps_poll_set (self->poll, (int)link, NULL);
            ps_poll_set (self->poll, monitor, NULL);
            ps_problem_set (problem, 0, "cannot wait on the connection to %s",
                            ps_group_endpoint (self, link));
            return PS_ECONNECT;
        }
        self->generation[link] = generation;
    }
    //  The session sends and receives on it between waits; the monitor is
    //  only read by ps_link_events, to the last event, when it fired
    ps_poll_touch (self->poll, (int)link);
    return PS_OK;
}

int
ps_group_poll (ps_group_t *self, int timeout_ms, ps_problem_t *problem)
{
    for (uint32_t link = 0; link < self->size; link++) {
        int status = s_watch (self, link, problem);
        if (status)
            return status;
    }
    int rc = ps_poll_wait (self->poll, timeout_ms);
    if (rc == -1 && errno == EINTR)
        return PS_EINTR;
    if (rc == -1) {
        ps_problem_set (problem, 0, "poll failed: %s", zmq_strerror (errno));
        return PS_ECONNECT;
    }
    return rc ? PS_OK : PS_ETIMEOUT;
}

bool
ps_group_ready (const ps_group_t *self, uint32_t member)
{
    return ps_poll_ready (self->poll, (int)member);
}

bool
ps_group_event (const ps_group_t *self, uint32_t member)
{
    return ps_poll_ready (self->poll, (int)(self->size + member));
}

int64_t
ps_group_min_clock (const ps_group_t *self)
{
    int64_t least = self->members[0].min_clock;
    for (uint32_t member = 1; member < self->size; member++)
        if (self->members[member].min_clock < least)
            least = self->members[member].min_clock;
    return least;
}

int
ps_group_reconnect (ps_group_t *self, ps_problem_t *problem)
{
    int status = PS_OK;
    for (uint32_t link = 0; link < self->size; link++)
        if (!ps_link_socket (self->links[link]) && ps_link_reconnect (self->links[link], problem))
            status = PS_ECONNECT;
    return status;
}

void
ps_group_hello_reset (ps_group_t *self, bool rejoin)
{
    self->joined = false;
    self->heartbeat_ms = 0;
    for (uint32_t member = 0; member < self->size; member++) {
        ps_member_t *record = &self->members[member];
        record->welcomed = false;
        record->roll_of = 0;
        record->roll_to = 0;
        if (rejoin) {
            record->rolled = false;
            if (record->incarnation)
                record->known = record->incarnation;
        }
    }
}

int
ps_group_take_hello (ps_group_t *self, uint32_t member, const ps_envelope_t *reply,
                     ps_problem_t *problem)
{
    const char *endpoint = ps_group_endpoint (self, member);
    if (!reply->hello) {
        ps_problem_set (problem, 0, "hello reply from %s without its settings", endpoint);
        return PS_EPROTO;
    }
    ps_member_t *record = &self->members[member];
    record->session = reply->hello->session;
    record->registered = true;
    record->lost = false;
    record->forgotten = false;
    record->welcomed = true;
    record->incarnation = reply->hello->incarnation;
    record->hello_clock = reply->clock;
    record->rank = reply->worker;
    record->world = reply->hello->world_size;
    record->roll_of = 0;
    //  A broker names at most PS_MAX_HELD_CHECKPOINTS (the codec checks)
    record->nheld = 0;
    for (size_t i = 0; i < reply->hello->n_checkpoints && i < PS_MAX_HELD_CHECKPOINTS; i++)
        record->held[record->nheld++] = reply->hello->checkpoints[i];
    uint32_t interval = reply->hello->heartbeat_ms;
    if (interval && (!self->heartbeat_ms || interval < self->heartbeat_ms))
        self->heartbeat_ms = interval;
    if (!self->joined) {
        self->joined = true;
        self->staleness = reply->hello->staleness;
        return PS_OK;
    }
    if (reply->hello->staleness != self->staleness) {
        ps_problem_set (problem, 0,
                        "brokers of one group disagree: %s has staleness %d, another %d", endpoint,
                        reply->hello->staleness, self->staleness);
        return PS_EGROUP;
    }
    return PS_OK;
}

int32_t
ps_group_staleness (const ps_group_t *self)
{
    return self->staleness;
}

bool
ps_group_restarted (const ps_group_t *self, uint32_t member)
{
    const ps_member_t *record = &self->members[member];
    return record->known && record->incarnation != record->known;
}

//  "a says 3, b says 0" for every welcomed member, into out
static void
s_clocks_named (const ps_group_t *self, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (uint32_t member = 0; member < self->size && used < size; member++)
        if (self->members[member].welcomed)
            used += (size_t)snprintf (out + used, size - used, "%s%s says %" PRId64,
                                      used ? ", " : "", ps_group_endpoint (self, member),
                                      self->members[member].hello_clock);
}

//  Whether member holds a checkpoint of clock: one its reply named, or
//  clock 0 when it named none (the empty store, where the job started)
static bool
s_holds (const ps_member_t *record, int64_t clock)
{
    if (record->nheld == 0)
        return clock == 0;
    for (uint32_t i = 0; i < record->nheld; i++)
        if (record->held[i] == clock)
            return true;
    return false;
}

//  The newest clock every welcomed member holds a checkpoint of, into
//  *clock; false when there is none
static bool
s_common_clock (const ps_group_t *self, int64_t *clock)
{
    bool found = false;
    for (uint32_t member = 0; member < self->size; member++) {
        const ps_member_t *record = &self->members[member];
        if (!record->welcomed)
            continue;
        //  Every clock a member could go back to is one of the first's
        int64_t candidates[PS_MAX_HELD_CHECKPOINTS];
        uint32_t count = record->nheld ? record->nheld : 1;
        for (uint32_t i = 0; i < count; i++)
            candidates[i] = record->nheld ? record->held[i] : 0;
        for (uint32_t i = 0; i < count; i++) {
            bool everywhere = true;
            for (uint32_t other = 0; other < self->size && everywhere; other++)
                if (self->members[other].welcomed)
                    everywhere = s_holds (&self->members[other], candidates[i]);
            if (everywhere && (!found || candidates[i] > *clock)) {
                *clock = candidates[i];
                found = true;
            }
        }
        break;
    }
    return found;
}

//  "tcp://a:5555 (restarted) holds 200 and 100, tcp://b:5555 holds 300 and
//  250" for every welcomed member, into out
static void
s_held_named (const ps_group_t *self, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (uint32_t member = 0; member < self->size && used < size; member++) {
        const ps_member_t *record = &self->members[member];
        if (!record->welcomed)
            continue;
        used += (size_t)snprintf (out + used, size - used, "%s%s%s holds ", used ? ", " : "",
                                  ps_group_endpoint (self, member),
                                  ps_group_restarted (self, member) ? " (restarted)" : "");
        if (record->nheld == 0 && used < size)
            used += (size_t)snprintf (out + used, size - used, "no checkpoint");
        for (uint32_t i = 0; i < record->nheld && used < size; i++)
            used += (size_t)snprintf (out + used, size - used, "%s%" PRId64,
                                      i == 0                   ? ""
                                      : i + 1 == record->nheld ? " and "
                                                               : ", ",
                                      record->held[i]);
    }
}

//  Mark the members to roll back to clock: all but those that restarted
//  (or were rolled back by another worker) and name it
static void
s_mark_rollback (ps_group_t *self, int64_t clock)
{
    for (uint32_t member = 0; member < self->size; member++) {
        ps_member_t *record = &self->members[member];
        if (!record->welcomed ||
            (record->hello_clock == clock && ps_group_restarted (self, member)))
            continue;
        record->roll_to = clock;
        record->roll_of = record->incarnation;
        record->rolled = true;
        record->welcomed = false;
    }
}

int
ps_group_hello_clock (ps_group_t *self, bool rejoin, int64_t *clock, bool *again, bool *rollback,
                      ps_problem_t *problem)
{
    *again = *rollback = false;
    bool first = true, differ = false, restarted = false, kept = false;
    for (uint32_t member = 0; member < self->size; member++) {
        const ps_member_t *record = &self->members[member];
        if (!record->welcomed)
            continue;
        differ |= !first && record->hello_clock != *clock;
        if (first)
            *clock = record->hello_clock;
        if (ps_group_restarted (self, member))
            restarted = true;
        else
            kept = true;
        first = false;
    }
    if (rejoin && restarted && (differ || kept)) {
        int64_t common = 0;
        if (!s_common_clock (self, &common)) {
            char named[PS_MAX_ERROR_LEN];
            s_held_named (self, named, sizeof named);
            ps_problem_set (problem, 0,
                            "a member of the group restarted, and the members hold no "
                            "checkpoint of one clock to go back to together: %s; restart every "
                            "member from checkpoints of one clock, or the job",
                            named);
            return PS_EGROUP;
        }
        *clock = common;
        s_mark_rollback (self, common);
        *rollback = true;
        return PS_OK;
    }
    if (!differ)
        return PS_OK;
    char named[PS_MAX_ERROR_LEN];
    s_clocks_named (self, named, sizeof named);
    *again = true;
    ps_problem_set (problem, 0,
                    "brokers of one group disagree on the job's clock: %s (was one restarted?)",
                    named);
    return PS_EGROUP;
}

bool
ps_group_rollback_refused (ps_group_t *self, int64_t *clock)
{
    bool refused = false;
    for (uint32_t member = 0; member < self->size; member++) {
        ps_member_t *record = &self->members[member];
        if (record->roll_of && !record->welcomed) {
            record->roll_of = 0;
            *clock = record->roll_to;
            refused = true;
        }
    }
    return refused;
}

int
ps_group_heartbeat_start (ps_group_t *self, uint32_t rank, ps_problem_t *problem)
{
    const char *endpoints[PS_MAX_SHARDS];
    uint64_t sessions[PS_MAX_SHARDS];
    for (uint32_t member = 0; member < self->size; member++) {
        endpoints[member] = ps_group_endpoint (self, member);
        sessions[member] = self->members[member].session;
    }
    int interval = self->heartbeat_ms ? (int)self->heartbeat_ms : PS_DEFAULT_HEARTBEAT_MS;
    int status;
    ps_heartbeat_destroy (&self->heartbeat);
    self->heartbeat = ps_heartbeat_new (self->context, rank, interval, self->size, endpoints,
                                        sessions, &self->curve, &status, problem);
    return status;
}

void
ps_group_heartbeat_stop (ps_group_t *self)
{
    ps_heartbeat_destroy (&self->heartbeat);
}
