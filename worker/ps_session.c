/*  =========================================================================
    ps_session - one worker's requests to its group (see ps_session.h)

    The calling thread does every send and receive itself, so a call costs
    one network round trip and no thread hop. A wait polls every link and
    handles each message that comes, whichever ticket it answers: a pull's
    reply is copied into its buffers during whichever wait receives it.

    A CLOCK counts from when it is sent (the brokers advance us on
    receipt), so pushes sent after it carry the next clock before the
    staleness bound lets its reply come; a CLOCK the brokers refuse is
    taken back, except when the refusal only reports a push that held a
    NaN (the clock advanced even so).

    A broker that answers "not registered" was either restarted or has
    evicted us, which have different cures: an INFO names its incarnation,
    which tells the two apart, and the failure's detail says which.

    A lost connection (ps_link_events: closed, or silent past the heartbeat
    timeout) fails at once every request that waits for that broker, after
    the replies that came before the loss are read: their replies cannot
    come any more. The member stays lost until a HELLO welcomes us again,
    since a broker that lost our connection may have forgotten us (it
    restarted, or evicted us): a request is not sent over a lost member.

    When the options let it wait for the brokers, a request that meets a
    lost member, or a ticket that comes to "not registered", "shutting
    down" or a lost connection, registers again (ps_rejoin) before the
    call returns; and a first HELLO refused because a broker holds our
    rank for another connection (an earlier process of this worker, not
    yet evicted: INFO shows the rank live) is tried again until it is
    gone.
    ========================================================================= */

#include "ps_session.h"
#include "ps_group.h"
#include "ps_limits.h"
#include "ps_rejoin.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ps_session_private.h"

//  How long collecting a push that lent its frames waits for libzmq to
//  release them before it disconnects the links that still hold some
#define LENT_GRACE_MS 200
//  How long the INFO that tells a restarted broker from an eviction waits
#define RESTART_CHECK_MS 2000

int
ps_session_heartbeat_timeout (const ps_session_t *self)
{
    return self->options.heartbeat_timeout_ms > 0 ? self->options.heartbeat_timeout_ms
                                                  : PS_DEFAULT_TIMEOUT_MS;
}

ps_session_t *
ps_session_new (const ps_worker_options_t *options, int *status, ps_problem_t *problem)
{
    ps_session_t *self = calloc (1, sizeof *self);
    if (self) {
        self->options = *options;
        self->broker = strdup (options->broker);
        self->options.broker = self->broker;
        self->ask_rank = options->rank == PS_WORKER_ANY_RANK;
        self->codec = ps_codec_new ();
    }
    if (!self || !self->broker || !self->codec) {
        ps_problem_set (problem, 0, "out of memory");
        *status = PS_ENOMEM;
    }
    else
        self->group =
            ps_group_new (self->broker, options->timeout_ms,
                          options->heartbeat_timeout_ms > 0 ? options->heartbeat_timeout_ms
                                                            : PS_DEFAULT_TIMEOUT_MS,
                          options->curve_secret, options->broker_key, status, problem);
    if (self && self->group) {
        self->nlinks = ps_group_size (self->group);
        self->tickets = ps_tickets_new (self->nlinks);
        if (!self->tickets) {
            ps_problem_set (problem, 0, "out of memory");
            *status = PS_ENOMEM;
        }
    }
    if (self && *status != PS_OK)
        ps_session_destroy (&self);
    return self;
}

void
ps_session_destroy (ps_session_t **self_p)
{
    assert (self_p);
    ps_session_t *self = *self_p;
    if (!self)
        return;
    //  The group first: once its context is terminated libzmq holds no
    //  frame that a ticket lent, and the tickets' records may go
    ps_group_destroy (&self->group);
    ps_tickets_destroy (&self->tickets);
    ps_codec_destroy (&self->codec);
    free (self->broker);
    free (self);
    *self_p = NULL;
}

const ps_worker_options_t *
ps_session_options (const ps_session_t *self)
{
    return &self->options;
}

uint32_t
ps_session_size (const ps_session_t *self)
{
    return self->nlinks;
}

int32_t
ps_session_staleness (const ps_session_t *self)
{
    return self->staleness;
}

int64_t
ps_session_clock (const ps_session_t *self)
{
    return self->clock;
}

int64_t
ps_session_min_clock (const ps_session_t *self)
{
    return ps_group_min_clock (self->group);
}

ps_group_t *
ps_session_group (ps_session_t *self)
{
    return self->group;
}

void
ps_session_complete_all (ps_session_t *self, int status, bool all)
{
    ps_tickets_complete_all (self->tickets, status, all);
}

const char *
ps_session_error (const ps_session_t *self)
{
    return self->error;
}

int
ps_session_fail (ps_session_t *self, int status, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    return status;
}

void
ps_session_log (const ps_worker_options_t *options, int level, const char *format, ...)
{
    if (!options->log)
        return;
    char *message = NULL;
    va_list args;
    va_start (args, format);
    int length = vasprintf (&message, format, args);
    va_end (args);
    if (length >= 0) {
        options->log (options->log_arg, level, message);
        free (message);
    }
}

static int s_explain_forgotten (ps_session_t *self, int status);
static int s_receive (ps_session_t *self, int timeout_ms);

// ------------------------------------------------------------ requests

static void
s_envelope_init (ps_session_t *self, ps_envelope_t *envelope, const ps_pending_t *pending)
{
    psmq__envelope__init (envelope);
    envelope->version = PS_PROTOCOL_VERSION;
    envelope->type = pending->type;
    envelope->seq = pending->seq;
    envelope->worker = self->options.rank;
    envelope->clock = self->clock;
}

//  Register again (ps_rejoin.h), and not again from within
static int
s_rejoin (ps_session_t *self, int cause)
{
    self->rejoining = true;
    int status = ps_rejoin (self, cause);
    self->rejoining = false;
    return status;
}

//  The first member whose connection was lost since its HELLO, or -1
static int
s_lost_member (ps_session_t *self)
{
    for (uint32_t link = 0; link < self->nlinks; link++)
        if (ps_group_member (self->group, link)->lost)
            return (int)link;
    return -1;
}

//  Before a request that needs us registered: PS_OK while every broker's
//  connection held since its HELLO. After a loss, PS_ECONNECT, or when
//  we may wait for the brokers, what rejoining gives (PS_EREJOINED ...)
static int
s_check_registered (ps_session_t *self, int type)
{
    if (!self->joined || type == PSMQ__MSG_TYPE__HELLO || type == PSMQ__MSG_TYPE__INFO ||
        type == PSMQ__MSG_TYPE__BYE)
        return PS_OK;
    int status = ps_session_links_events (self);
    int lost = status ? -1 : s_lost_member (self);
    if (status || lost < 0)
        return status;
    ps_session_fail (self, PS_ECONNECT,
                     "lost the connection to broker %s (it closed it, or was silent for %d ms); "
                     "it may have forgotten this worker",
                     ps_group_endpoint (self->group, (uint32_t)lost),
                     ps_session_heartbeat_timeout (self));
    if (self->options.wait_for_broker_ms > 0 && !self->rejoining)
        return s_rejoin (self, PS_ECONNECT);
    return s_explain_forgotten (self, PS_ECONNECT);
}

int
ps_session_request (ps_session_t *self, int type, ps_envelope_t *envelope, ps_pending_t **pending)
{
    *pending = NULL;
    int status = s_check_registered (self, type);
    if (status)
        return status;
    *pending = ps_tickets_add (self->tickets, type);
    if (!*pending)
        return ps_session_fail (self, PS_ENOMEM, "out of memory");
    (*pending)->clock = self->clock;
    s_envelope_init (self, envelope, *pending);
    return PS_OK;
}

int
ps_session_request_pull (ps_session_t *self, const ps_tensor_t *tensors, size_t ntensors,
                         const ps_part_t *plan, ps_envelope_t *envelope, ps_pending_t **pending)
{
    *pending = NULL;
    int status = s_check_registered (self, PSMQ__MSG_TYPE__PULL);
    if (status)
        return status;
    *pending = ps_tickets_add_pull (self->tickets, tensors, ntensors, plan);
    if (!*pending)
        return ps_session_fail (self, PS_ENOMEM, "out of memory");
    s_envelope_init (self, envelope, *pending);
    return PS_OK;
}

//  A push to link: whole when it is one part; else in parts (PROTOCOL.md,
//  Pushes in parts): an ask first, then a part for each grant the broker
//  sends (a PUSH reply with more set, counted by s_take_grant), every
//  other reply handled meanwhile as a wait would. Stops early when the
//  ticket completed (a part was refused: the refusal is its answer).
static int
s_send_parts (ps_session_t *self, uint32_t link, ps_pending_t *pending,
              const ps_envelope_t *request, const float *const *sources, ps_lent_t *lent)
{
    ps_link_t *to = ps_group_link (self->group, link);
    ps_problem_t problem;
    ps_envelope_t part = *request;
    bool asked = ps_link_part_end (request, 0) < request->n_slices;
    if (asked) {
        part.n_slices = 0;
        part.more = true;
        part.clock_after = false;
        int status = ps_link_send (to, &part, NULL, NULL, &problem);
        if (status)
            return ps_session_fail (self, status, "%s", problem.message);
    }
    int wait_ms = self->options.timeout_ms > 0 ? self->options.timeout_ms : PS_DEFAULT_TIMEOUT_MS;
    int64_t deadline = ps_session_now_ms () + wait_ms;
    self->granting = pending->seq;
    self->grants = 0;
    size_t first = 0, sent = 0;
    int status = PS_OK;
    while (first < request->n_slices && !pending->complete) {
        if (asked && sent >= (size_t)self->grants) {
            int64_t left = deadline - ps_session_now_ms ();
            if (left <= 0) {
                status = ps_session_fail (self, PS_ETIMEOUT,
                                          "broker %s granted no room for the rest of a push "
                                          "within %d ms",
                                          ps_group_endpoint (self->group, link), wait_ms);
                break;
            }
            status = s_receive (self, (int)left);
            if (status == PS_ETIMEOUT)
                status = PS_OK;
            if (status)
                break;
            continue;
        }
        size_t end = ps_link_part_end (request, first);
        part.slices = request->slices + first;
        part.n_slices = end - first;
        part.more = end < request->n_slices;
        part.clock_after = request->clock_after && !part.more;
        status = ps_link_send (to, &part, sources ? sources + first : NULL, lent, &problem);
        if (status) {
            status = ps_session_fail (self, status, "%s", problem.message);
            break;
        }
        sent++;
        first = end;
        deadline = ps_session_now_ms () + wait_ms;
    }
    self->granting = 0;
    return status;
}

//  A grant for the push in parts being sent (a PUSH reply with more):
//  taken here, and no ticket settles on it
static bool
s_take_grant (ps_session_t *self, const ps_envelope_t *reply)
{
    if (reply->type != PSMQ__MSG_TYPE__PUSH || !reply->more)
        return false;
    if (self->granting && reply->seq == self->granting)
        self->grants++;
    return true;
}

//  Where the frames pending lends on link are counted: its own record for
//  each link, made at its first lent frame. NULL when out of memory.
static ps_lent_t *
s_lent (ps_session_t *self, ps_pending_t *pending, uint32_t link)
{
    if (!pending->lent) {
        pending->lent = calloc (self->nlinks, sizeof *pending->lent);
        for (uint32_t i = 0; pending->lent && i < self->nlinks; i++)
            atomic_init (&pending->lent[i].held, 0);
    }
    return pending->lent ? &pending->lent[link] : NULL;
}

int
ps_session_send (ps_session_t *self, uint32_t link, ps_pending_t *pending,
                 const ps_envelope_t *request, const float *const *sources, bool lend)
{
    ps_lent_t *lent = lend ? s_lent (self, pending, link) : NULL;
    if (lend && !lent)
        return ps_session_fail (self, PS_ENOMEM, "out of memory lending a push");
    //  Marked first: a part may be refused while the rest goes
    ps_tickets_mark_sent (pending, link);
    if (request->type == PSMQ__MSG_TYPE__PUSH && request->n_slices > 0)
        return s_send_parts (self, link, pending, request, sources, lent);
    ps_problem_t problem;
    int status = ps_link_send (ps_group_link (self->group, link), request, sources, lent, &problem);
    if (status)
        return ps_session_fail (self, status, "%s", problem.message);
    return PS_OK;
}

void
ps_session_clock_sent (ps_session_t *self)
{
    self->clock++;
}

//  The frames one request lent, on all links, that libzmq still holds
static size_t
s_held (const ps_session_t *self, ps_lent_t *lent)
{
    size_t held = 0;
    for (uint32_t link = 0; link < self->nlinks; link++)
        held += atomic_load_explicit (&lent[link].held, memory_order_acquire);
    return held;
}

//  Wait until libzmq has released every frame one request lent from the
//  caller's memory (lent: its record for each link). By the time its
//  replies come the brokers have them all, so this is normally at once;
//  frames other requests lent since do not hold it up. When a broker never
//  answered, the frames may sit in a socket's queue: closing that socket
//  (linger 0) makes libzmq's reaper thread drop them whatever this thread
//  does, and a new socket with our routing id takes its place, so the
//  broker still knows us.
static void
s_reclaim_lent (ps_session_t *self, ps_lent_t *lent)
{
    int64_t deadline = ps_session_now_ms () + LENT_GRACE_MS;
    bool dropped = false;
    while (s_held (self, lent) > 0) {
        if (!dropped && ps_session_now_ms () > deadline) {
            for (uint32_t link = 0; link < self->nlinks; link++)
                if (atomic_load_explicit (&lent[link].held, memory_order_acquire))
                    ps_link_disconnect (ps_group_link (self->group, link));
            dropped = true;
        }
        sched_yield ();
    }
    ps_problem_t problem;
    if (dropped && ps_group_reconnect (self->group, &problem))
        ps_session_fail (self, PS_ECONNECT, "%s", problem.message);
}

//  Forget a ticket. One that lent the caller's memory is forgotten only
//  once libzmq has let go of it: from then on the caller may write it.
static void
s_forget (ps_session_t *self, ps_pending_t *pending)
{
    if (pending->lent)
        s_reclaim_lent (self, pending->lent);
    ps_tickets_remove (self->tickets, pending);
}

int
ps_session_abandon (ps_session_t *self, uint64_t ticket, int status)
{
    ps_pending_t *pending = ps_tickets_find (self->tickets, ticket);
    if (pending)
        s_forget (self, pending);
    return status;
}

// ------------------------------------------------------------ replies

//  What link's reply means: for the request (the tickets read it), for the
//  group (a HELLO's settings) and for our clock. PS_OK or a failure status.
static int
s_take_reply (ps_session_t *self, uint32_t link, ps_pending_t *pending, const ps_envelope_t *reply,
              zmq_msg_t *frames, size_t nframes)
{
    ps_problem_t problem;
    const char *endpoint = ps_group_endpoint (self->group, link);
    int status =
        ps_tickets_take (self->tickets, pending, link, endpoint, reply, frames, nframes, &problem);
    if (reply->type == PSMQ__MSG_TYPE__ERROR) {
        int code = reply->error ? reply->error->code : 0;
        //  The broker did not advance us, except past a refused push
        if (ps_tickets_finishes_clock (pending) && code != PSMQ__ERR_CODE__ERR_NONFINITE)
            self->clock = pending->clock;
        if (code == PSMQ__ERR_CODE__ERR_NOT_REGISTERED)
            ps_group_member (self->group, link)->forgotten = true;
    }
    else if (status == PS_OK && pending->type == PSMQ__MSG_TYPE__HELLO)
        status = ps_group_take_hello (self->group, link, reply, &problem);
    return status ? ps_session_fail (self, status, "%s", problem.message) : PS_OK;
}

//  Settle one link's (part of a) reply; the table decides when the ticket
//  is complete
static void
s_settle (ps_session_t *self, uint32_t link, ps_pending_t *pending, const ps_envelope_t *reply,
          zmq_msg_t *frames, size_t nframes)
{
    if (pending->complete || !ps_tickets_awaits (pending, link))
        return; //  a late part after a failure elsewhere, or a duplicate
    int status = s_take_reply (self, link, pending, reply, frames, nframes);
    if (reply->min_clock)
        ps_group_member (self->group, link)->min_clock = reply->min_clock;
    ps_problem_t problem;
    if (ps_tickets_settle (pending, link, status, reply->more, &problem))
        ps_session_fail (self, PS_EPROTO, "%s", problem.message);
}

//  Receive one whole message from a link if one is waiting (*received
//  says whether), and settle its ticket. PS_OK, or PS_ENOMEM / PS_EINTR /
//  PS_ECONNECT.
static int
s_receive_from (ps_session_t *self, uint32_t link, bool *received)
{
    ps_link_t *dealer = ps_group_link (self->group, link);
    zmq_msg_t *frames;
    size_t nframes;
    bool overflow;
    ps_problem_t problem;
    *received = false;
    int status = ps_link_recv (dealer, &frames, &nframes, &overflow, &problem);
    if (status == PS_EINTR)
        return status;
    if (status)
        return ps_session_fail (self, status, "%s", problem.message);
    if (nframes == 0)
        return PS_OK;
    *received = true;
    ps_envelope_t *reply = ps_codec_decode (self->codec, zmq_msg_data (&frames[0]),
                                            zmq_msg_size (&frames[0]), &problem);
    const char *endpoint = ps_group_endpoint (self->group, link);
    ps_pending_t *pending =
        reply && reply->reply ? ps_tickets_find (self->tickets, reply->seq) : NULL;
    if (overflow && pending && !pending->complete) {
        //  Its request fails now, rather than at its timeout
        ps_session_fail (self, PS_EPROTO, "reply from %s has more than %d frames", endpoint,
                         PS_MAX_SLICES);
        ps_tickets_settle (pending, link, PS_EPROTO, false, &problem);
    }
    else if (overflow)
        ps_session_fail (self, PS_EPROTO, "reply from %s has more than %d frames", endpoint,
                         PS_MAX_SLICES);
    else if (!reply)
        ps_session_fail (self, PS_EPROTO, "reply from %s does not parse: %s", endpoint,
                         problem.message);
    else if (!pending && reply->type == PSMQ__MSG_TYPE__ERROR && reply->error && reply->seq == 0)
        //  An error we cannot pair (our message did not even parse); one
        //  with a seq answers a request we forgot, and says nothing now
        ps_session_fail (self, ps_tickets_broker_status (reply->error->code), "broker %s: %s",
                         endpoint, reply->error->message);
    else if (s_take_grant (self, reply))
        ;
    else if (pending)
        s_settle (self, link, pending, reply, frames + 1, nframes - 1);
    ps_link_recv_close (dealer);
    return PS_OK;
}

//  Take link's connection events. When its connection was lost, read what
//  came before the loss, then fail every request still waiting for that
//  link: its reply can no longer come. PS_OK, or a status of receiving.
static int
s_link_events (ps_session_t *self, uint32_t link)
{
    if (!ps_link_events (ps_group_link (self->group, link)))
        return PS_OK;
    bool received = true;
    int status = PS_OK;
    while (received && status == PS_OK)
        status = s_receive_from (self, link, &received);
    ps_member_t *member = ps_group_member (self->group, link);
    if (member->registered)
        member->lost = member->forgotten = true;
    //  A refusal (ps_link_refused) fails them at once too, saying why. A
    //  CLOCK that failed so did not advance us, as one refused would not
    const char *refused = ps_link_refused (ps_group_link (self->group, link));
    if (ps_tickets_fail_link (self->tickets, link, PS_ECONNECT, &self->clock)) {
        if (refused)
            ps_session_fail (self, PS_ECONNECT,
                             "the broker refused this connection: %s (broker %s)", refused,
                             ps_group_endpoint (self->group, link));
        else
            ps_session_fail (
                self, PS_ECONNECT,
                "lost the connection to broker %s (it closed it, or was silent for %d ms)",
                ps_group_endpoint (self->group, link), ps_session_heartbeat_timeout (self));
    }
    return status;
}

//  Take every link's connection events, without waiting. Only the links
//  whose events may not all be read are read: ps_link_may_have_events
//  (one poll(2)), or a monitor the last wait found ready (a link before
//  it may have stopped s_receive)
int
ps_session_links_events (ps_session_t *self)
{
    int status = PS_OK;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++)
        if (ps_group_event (self->group, link) ||
            ps_link_may_have_events (ps_group_link (self->group, link)))
            status = s_link_events (self, link);
    return status;
}

//  Wait up to timeout_ms for messages or connection events on any link
//  and handle every one that is ready. PS_OK when something was handled,
//  PS_ETIMEOUT, PS_EINTR.
static int
s_receive (ps_session_t *self, int timeout_ms)
{
    ps_problem_t problem;
    int status = ps_group_poll (self->group, timeout_ms, &problem);
    if (status == PS_ECONNECT)
        return ps_session_fail (self, status, "%s", problem.message);
    bool received;
    for (uint32_t link = 0; status == PS_OK && link < self->nlinks; link++) {
        if (ps_group_event (self->group, link))
            status = s_link_events (self, link);
        if (status == PS_OK && ps_group_ready (self->group, link))
            status = s_receive_from (self, link, &received);
    }
    return status;
}

//  Name the links a pending request still waits for, for a timeout message
static void
s_silent_links (ps_session_t *self, const ps_pending_t *pending, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (uint32_t link = 0; link < self->nlinks && used < size; link++)
        if (ps_tickets_awaits (pending, link))
            used += (size_t)snprintf (out + used, size - used, "%s%s", used ? ", " : "",
                                      ps_group_endpoint (self->group, link));
}

//  The incarnation an INFO reply names (hex text), 0 when it names none
static uint64_t
s_info_incarnation (const char *text)
{
    json_t *info = text ? json_loads (text, 0, NULL) : NULL;
    const char *hex = json_string_value (json_object_get (info, "incarnation"));
    char *end = NULL;
    uint64_t incarnation = hex ? strtoull (hex, &end, 16) : 0;
    if (!hex || *end != '\0')
        incarnation = 0;
    json_decref (info);
    return incarnation;
}

//  Wait up to timeout_ms for the connection of a link to be up again
static bool
s_wait_up (ps_session_t *self, uint32_t link, int timeout_ms)
{
    int64_t deadline = ps_session_now_ms () + timeout_ms;
    ps_link_t *dealer = ps_group_link (self->group, link);
    while (!ps_link_up (dealer)) {
        int64_t left = deadline - ps_session_now_ms ();
        if (left <= 0 || s_receive (self, (int)left) == PS_EINTR)
            return false;
    }
    return true;
}

//  A broker answered "not registered", or its connection was lost: when
//  it is (or comes back within RESTART_CHECK_MS as) another process than
//  the one our HELLO reached, say that it restarted, which is what the
//  user needs to know (an eviction has another cure). Asked once per
//  broker and loss. status is the failure's, returned.
static int
s_explain_forgotten (ps_session_t *self, int status)
{
    char detail[sizeof self->error];
    snprintf (detail, sizeof detail, "%s", self->error);
    for (uint32_t i = 0; i < self->nlinks; i++) {
        ps_member_t *member = ps_group_member (self->group, i);
        if (!member->forgotten || !member->incarnation)
            continue;
        member->forgotten = false;
        if (member->lost && !s_wait_up (self, i, RESTART_CHECK_MS))
            continue;
        char *json = NULL;
        int saved_timeout = self->options.timeout_ms;
        if (saved_timeout > RESTART_CHECK_MS)
            self->options.timeout_ms = RESTART_CHECK_MS;
        int asked = ps_session_info (self, i, &json);
        self->options.timeout_ms = saved_timeout;
        uint64_t now = asked == PS_OK ? s_info_incarnation (json) : 0;
        free (json);
        if (now && now != member->incarnation)
            return ps_session_fail (self, status,
                                    "broker %s restarted (incarnation %016" PRIx64
                                    ", was %016" PRIx64 "): it no longer knows this worker",
                                    ps_group_endpoint (self->group, i), now, member->incarnation);
    }
    return ps_session_fail (self, status, "%s", detail);
}

//  Whether a ticket's outcome calls for registering again: a request that
//  needs us registered, refused or cut off because the broker forgot us,
//  is stopping or went away, when the options let us wait for it
static bool
s_rejoins (const ps_session_t *self, const ps_pending_t *pending)
{
    int type = pending->type;
    int status = pending->status;
    return self->options.wait_for_broker_ms > 0 && self->joined && !self->rejoining &&
           (type == PSMQ__MSG_TYPE__INIT || type == PSMQ__MSG_TYPE__PUSH ||
            type == PSMQ__MSG_TYPE__PULL || type == PSMQ__MSG_TYPE__CLOCK) &&
           (status == PS_ENOT_REGISTERED || status == PS_ESHUTDOWN || status == PS_ECONNECT);
}

int
ps_session_wait (ps_session_t *self, uint64_t ticket, int timeout_ms)
{
    ps_pending_t *pending = ps_tickets_find (self->tickets, ticket);
    if (!pending)
        return ps_session_fail (self, PS_ETICKET, "ticket %" PRIu64 " is not pending", ticket);
    if (timeout_ms < 0)
        timeout_ms = ps_tickets_waits_on_bound (self->tickets, pending)
                         ? self->options.clock_timeout_ms
                         : self->options.timeout_ms;
    int64_t deadline = ps_session_now_ms () + timeout_ms;
    while (true) {
        pending = ps_tickets_find (self->tickets, ticket);
        if (pending->complete) {
            int status = pending->status;
            if (s_rejoins (self, pending)) {
                //  Interrupted, the ticket keeps its outcome for a later wait
                status = s_rejoin (self, status);
                if (status == PS_EINTR)
                    return status;
                pending = ps_tickets_find (self->tickets, ticket);
                s_forget (self, pending);
                return status;
            }
            s_forget (self, pending);
            if (status == PS_ENOT_REGISTERED)
                s_explain_forgotten (self, status);
            return status;
        }
        int64_t left = deadline - ps_session_now_ms ();
        if (left <= 0) {
            char silent[512];
            s_silent_links (self, pending, silent, sizeof silent);
            return ps_session_fail (
                self, PS_ETIMEOUT, "no %s reply from %s within %d ms%s",
                ps_codec_type_name (pending->type), silent, timeout_ms,
                pending->type == PSMQ__MSG_TYPE__HELLO ? ": is psbroker running there?" : "");
        }
        int rc = s_receive (self, (int)left);
        if (rc == PS_EINTR || rc == PS_ECONNECT || rc == PS_ENOMEM)
            return rc;
    }
}

int
ps_session_wait_or_forget (ps_session_t *self, uint64_t ticket, int timeout_ms)
{
    return ps_session_abandon (self, ticket, ps_session_wait (self, ticket, timeout_ms));
}

size_t
ps_session_pending (const ps_session_t *self)
{
    return ps_tickets_count (self->tickets);
}

int
ps_session_info (ps_session_t *self, uint32_t shard, char **json)
{
    *json = NULL;
    if (shard >= self->nlinks)
        return ps_session_fail (self, PS_EINVAL, "shard %u of a group of %u", shard, self->nlinks);
    ps_envelope_t request;
    ps_pending_t *pending;
    int status = ps_session_request (self, PSMQ__MSG_TYPE__INFO, &request, &pending);
    if (status)
        return status;
    pending->info = json;
    uint64_t ticket = pending->seq;
    status = ps_session_send (self, shard, pending, &request, NULL, false);
    return status ? ps_session_abandon (self, ticket, status)
                  : ps_session_wait_or_forget (self, ticket, -1);
}
