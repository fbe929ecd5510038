/*  =========================================================================
    ps_rejoin - registering a worker again with a group that forgot it
    (see ps_rejoin.h)

    One HELLO at a time per broker: a broker's queue delivers it whenever
    its connection comes back, so the first attempt goes over the sockets
    as they are, and only a HELLO left unanswered (the broker went again,
    or did not answer within the heartbeat timeout) is sent again, over a
    fresh socket whose queue is empty. No broker may read two HELLOs of one
    attempt: the second would move the worker's clock to the others'.
    Brokers that welcomed the worker are not asked again while the others
    are waited for.

    Between attempts a short pause, doubling up to a second: libzmq
    already retries a refused connection every 100 ms, the pause only
    spares a broker that answers "shutting down" a stream of HELLOs.

    When every broker has welcomed the worker, ps_group_hello_clock
    decides the clock: one clock, or a difference that a new attempt may
    settle (no broker restarted: another worker's CLOCK was between two
    brokers), or, after a restart, a rollback: the members it marks are
    sent a HELLO that asks them to go back to the newest clock every
    member holds a checkpoint of (over the sockets that just carried their
    replies), and the replies are decided on again. A few rounds at most:
    a member rolled back by another worker at the same moment names that
    clock already, and one that refuses (its checkpoints changed since it
    named them: a write landed, a file was lost, or the file of that clock
    did not read whole and was put aside) is asked again, plainly, which
    it holds now, and the decision made again. A group whose members hold
    no clock in common fails the rejoin with PS_EGROUP, naming them, as
    does a refusal that lasts all the rounds.
    ========================================================================= */

#include "ps_rejoin.h"
#include "ps_group.h"
#include "ps_limits.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

//  The pause after a failed attempt, doubling up to the most, and how
//  often to say that we still wait
#define BACKOFF_MS 50
#define BACKOFF_MAX_MS 1000
#define NOTICE_MS 10000
//  New attempts after brokers that did not restart named different clocks
#define DISAGREEMENTS 5
//  Rounds of rollback HELLOs in one attempt: one, and a few more when
//  workers that decided at once chose different clocks (ps_group.c)
#define ROLLBACKS 6

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  Sleep ms, or less when a signal comes: PS_OK or PS_EINTR
static int
s_pause (int64_t ms)
{
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    return nanosleep (&pause, NULL) == -1 && errno == EINTR ? PS_EINTR : PS_OK;
}

//  Whether a HELLO that failed so may be tried again: the broker is not
//  there (yet), or still stopping
static bool
s_may_retry (int status)
{
    return status == PS_ETIMEOUT || status == PS_ECONNECT || status == PS_ESHUTDOWN ||
           status == PS_ENOT_REGISTERED;
}

//  Say which brokers we still wait for: first, those whose connection is
//  down; later, every one that has not welcomed us
static void
s_notice (ps_session_t *session, int64_t started, bool first)
{
    const ps_worker_options_t *options = ps_session_options (session);
    ps_group_t *group = ps_session_group (session);
    double waited = (double)(s_now_ms () - started) / 1000.0;
    double patience = options->wait_for_broker_ms / 1000.0;
    for (uint32_t link = 0; link < ps_group_size (group); link++) {
        if (ps_group_member (group, link)->welcomed ||
            (first && ps_link_up (ps_group_link (group, link))))
            continue;
        const char *endpoint = ps_group_endpoint (group, link);
        if (first)
            ps_session_log (options, PS_WORKER_LOG_WARNING,
                            "broker %s is gone; waiting up to %g s for it to come back", endpoint,
                            patience);
        else
            ps_session_log (options, PS_WORKER_LOG_WARNING,
                            "broker %s: no answer after %.1f s; waiting up to %g s", endpoint,
                            waited, patience);
    }
}

//  HELLO, again and again, until every broker has welcomed us and they
//  agree on a clock, or the deadline: PS_OK (the session's clock set),
//  PS_EINTR, the refusal of a broker or of the group, or PS_ETIMEOUT at
//  the deadline
static int
s_attempts (ps_session_t *session, int64_t started, int64_t deadline)
{
    int64_t backoff = BACKOFF_MS;
    int64_t noticed = s_now_ms ();
    int disagreements = 0;
    bool fresh = false;
    s_notice (session, started, true);
    while (true) {
        int64_t left = deadline - s_now_ms ();
        if (left <= 0)
            return PS_ETIMEOUT;
        //  A broker that is there answers at once; one that is not may be
        //  back by the time its connection is retried
        int hello_ms = ps_session_heartbeat_timeout (session);
        int status = ps_session_hello (session, fresh, left < hello_ms ? (int)left : hello_ms);
        fresh = true;
        bool again = false, rollback = false;
        if (status == PS_OK)
            status = ps_session_hello_clock (session, true, &again, &rollback);
        //  Over the sockets that carried the replies: they work. The
        //  clock of the last rollback refused, -1 none
        int64_t refused = -1;
        for (int round = 1; status == PS_OK && rollback; round++) {
            if (round > ROLLBACKS)
                return ps_session_fail (session, PS_EGROUP,
                                        "the group did not settle on one clock after %d "
                                        "rollbacks",
                                        ROLLBACKS);
            left = deadline - s_now_ms ();
            status = ps_session_hello (session, false, left < hello_ms ? (int)left : hello_ms);
            int64_t to = 0;
            if (status == PS_EGROUP && round < ROLLBACKS &&
                ps_group_rollback_refused (ps_session_group (session), &to)) {
                //  Refused again at no older clock: nothing changed, the
                //  refusal stands
                if (refused >= 0 && to >= refused)
                    return status;
                //  Its checkpoints changed since its reply (a write
                //  landed, a file was lost or read torn): ask it again,
                //  plainly, for those it holds now, and decide again
                refused = to;
                ps_session_log (ps_session_options (session), PS_WORKER_LOG_WARNING,
                                "rank %u: %s; asking again which checkpoints it holds",
                                ps_session_options (session)->rank, ps_session_error (session));
                status = PS_OK;
                continue;
            }
            if (status == PS_OK)
                status = ps_session_hello_clock (session, true, &again, &rollback);
        }
        if (status == PS_OK || status == PS_EINTR)
            return status;
        if (again && ++disagreements < DISAGREEMENTS) {
            //  The group's other workers were between two brokers
            ps_session_leave (session);
            ps_group_hello_reset (ps_session_group (session), false);
            if (s_pause (disagreements * 20))
                return PS_EINTR;
            continue;
        }
        if (again || !s_may_retry (status))
            return status;
        if (s_now_ms () - noticed >= NOTICE_MS) {
            s_notice (session, started, false);
            noticed = s_now_ms ();
        }
        left = deadline - s_now_ms ();
        if (s_pause (backoff < left ? backoff : left > 0 ? left : 0))
            return PS_EINTR;
        backoff = backoff * 2 < BACKOFF_MAX_MS ? backoff * 2 : BACKOFF_MAX_MS;
    }
}

//  Say that the worker registered again, broker by broker
static void
s_welcomed (ps_session_t *session, double waited, int64_t was)
{
    const ps_worker_options_t *options = ps_session_options (session);
    ps_group_t *group = ps_session_group (session);
    for (uint32_t link = 0; link < ps_group_size (group); link++)
        ps_session_log (options, PS_WORKER_LOG_INFO,
                        "rank %u registered again with %s (incarnation %016" PRIx64
                        ", %s) after %.1f s: clock moved from %" PRId64 " to %" PRId64,
                        options->rank, ps_group_endpoint (group, link),
                        ps_group_member (group, link)->incarnation,
                        ps_group_member (group, link)->rolled ? "asked to roll back"
                        : ps_group_restarted (group, link)    ? "restarted"
                                                              : "the same process",
                        waited, was, ps_session_clock (session));
}

int
ps_rejoin (ps_session_t *session, int cause)
{
    const ps_worker_options_t *options = ps_session_options (session);
    ps_group_t *group = ps_session_group (session);
    const char *error = ps_session_error (session);
    char reason[PS_SESSION_ERROR_BYTES];
    snprintf (reason, sizeof reason, "%s", error[0] ? error : ps_strerror (cause));
    int64_t started = s_now_ms ();
    int64_t was = ps_session_clock (session);
    ps_session_log (options, PS_WORKER_LOG_WARNING,
                    "rank %u: %s; registering again (waiting up to %g s)", options->rank, reason,
                    options->wait_for_broker_ms / 1000.0);
    //  The heartbeats' sessions are stale; each broker's incarnation is kept
    //  to tell a restart from an eviction
    ps_group_heartbeat_stop (group);
    ps_group_hello_reset (group, true);
    int status = s_attempts (session, started, started + options->wait_for_broker_ms);
    ps_problem_t problem;
    if (status == PS_OK && ps_group_heartbeat_start (group, options->rank, &problem))
        status = ps_session_fail (session, PS_ENOMEM, "%s", problem.message);
    if (status == PS_EINTR)
        return status;
    double waited = (double)(s_now_ms () - started) / 1000.0;
    if (status != PS_OK) {
        if (status == PS_ETIMEOUT)
            status = ps_session_fail (
                session, cause, "%s; waited %.1f s for the broker to come back", reason, waited);
        ps_session_log (options, PS_WORKER_LOG_ERROR, "rank %u cannot register again: %s",
                        options->rank, ps_session_error (session));
        ps_session_complete_all (session, status, false);
        return status;
    }
    s_welcomed (session, waited, was);
    char endpoints[256] = "";
    size_t used = 0;
    for (uint32_t link = 0; link < ps_group_size (group) && used < sizeof endpoints; link++)
        used += (size_t)snprintf (endpoints + used, sizeof endpoints - used, "%s%s",
                                  link ? ", " : "", ps_group_endpoint (group, link));
    bool rolled = false;
    for (uint32_t link = 0; link < ps_group_size (group); link++)
        rolled |= ps_group_member (group, link)->rolled;
    ps_session_complete_all (session, PS_EREJOINED, true);
    return ps_session_fail (session, PS_EREJOINED,
                            "registered again with %s (%s); the worker's clock is now %" PRId64
                            " (was %" PRId64 ")%s",
                            endpoints, reason, ps_session_clock (session), was,
                            rolled ? "; the group rolled back to that clock, the newest "
                                     "clock of a checkpoint every member holds"
                                   : "");
}
