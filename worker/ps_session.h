/*  =========================================================================
    ps_session - one worker's requests to its group, and their replies

    A session is what a ps_worker_t runs on: the group of brokers
    (ps_group), the requests in flight (ps_tickets), a decoder for the
    replies, the worker's clock and the detail of the last failure. It
    sends a request's parts under one ticket, receives every reply that
    comes while it waits (so a wait for one ticket completes the others it
    receives meanwhile) and settles each: what a reply means for the
    request is the tickets' to read, what it means for the worker (a
    HELLO's settings, a clock taken back, a broker that forgot us) is read
    here. It joins the group (HELLO, then heartbeats) and leaves it (BYE).
    It notices a lost connection to a broker (ps_link_events) and fails
    what waited for it; and when the options let it wait for the brokers
    (wait_for_broker_ms), it registers again with the group after a lost
    connection, "not registered" or "shutting down", as ps_worker.h says.

    Threads: the thread that owns the worker, only. The log callback of
    the options is called from here, in that thread, while rejoining.

    Ownership: ps_session_new copies the options (and the endpoint list);
    the session owns its group, tickets and decoder. A pending entry it
    returns is valid until the next request, wait or abandon. Sources and
    tensors given for a request are borrowed as ps_link.h and ps_tickets.h
    say.

    Failure: functions that return int return PS_OK or a ps_status_t and
    record the detail, which ps_session_error gives until the next failure.
    ps_session_new returns NULL with *status and problem filled in. A call
    that registered again returns PS_EREJOINED.
    ========================================================================= */

#ifndef PS_SESSION_H_INCLUDED
#define PS_SESSION_H_INCLUDED

#include "ps_codec.h"
#include "ps_group.h"
#include "ps_tickets.h"
#include "ps_worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_session_t ps_session_t;

//  Room for the detail of a failure: a broker's message and what we add
#define PS_SESSION_ERROR_BYTES (PS_MAX_ERROR_LEN + 128)

//  A session with a link to every broker of options->broker, not yet
//  registered (INFO needs no HELLO)
ps_session_t *ps_session_new (const ps_worker_options_t *options, int *status,
                              ps_problem_t *problem);
void ps_session_destroy (ps_session_t **self_p);

//  Register with every broker of the group at once and start heartbeats;
//  while the brokers name different clocks, leave and try again, a few
//  times. PS_OK, or why not.
int ps_session_join (ps_session_t *self);
//  Say BYE to every broker that registered us and whose connection held,
//  waiting a bounded time
int ps_session_leave (ps_session_t *self);
//  Say HELLO to every broker of the group that has not welcomed us in this
//  attempt (see ps_group_hello_reset), asking those marked so to roll
//  back (ps_member_t), and wait up to timeout_ms for their replies;
//  fresh: over a new socket each, whose queue holds no earlier HELLO.
//  PS_OK when every broker has welcomed us.
int ps_session_hello (ps_session_t *self, bool fresh, int timeout_ms);
//  Take the clock the HELLO replies give as the worker's, when the group
//  agrees on one (ps_group_hello_clock; rejoin as there); *again when a
//  new attempt may settle a disagreement; *rollback (the clock not taken
//  yet) when members are to be asked to roll back first
int ps_session_hello_clock (ps_session_t *self, bool rejoin, bool *again, bool *rollback);

//  The options as given (broker points to the session's copy)
const ps_worker_options_t *ps_session_options (const ps_session_t *self);
//  Brokers in the group
uint32_t ps_session_size (const ps_session_t *self);
//  From the HELLO replies: the job's staleness
int32_t ps_session_staleness (const ps_session_t *self);
//  The worker's clock: the job's clock at HELLO plus the CLOCKs sent since,
//  less those the brokers refused (other than for a NaN)
int64_t ps_session_clock (const ps_session_t *self);
//  The least of the slowest live clocks the brokers named last
int64_t ps_session_min_clock (const ps_session_t *self);
//  The detail of the last failure recorded, "" if none yet
const char *ps_session_error (const ps_session_t *self);
//  Record the detail of a failure; returns status
int ps_session_fail (ps_session_t *self, int status, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  The group of brokers, for ps_rejoin
ps_group_t *ps_session_group (ps_session_t *self);
//  The silence after which a broker's connection is given up (ms)
int ps_session_heartbeat_timeout (const ps_session_t *self);
//  Complete every ticket not collected with status: those still waiting,
//  and when all is set the complete ones too
void ps_session_complete_all (ps_session_t *self, int status, bool all);

//  Hand a line to the log callback of options, if there is one
void ps_session_log (const ps_worker_options_t *options, int level, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  A new request of type (PSMQ__MSG_TYPE__*) in *pending, and its
//  envelope: version, type, ticket, rank and clock set, the rest for the
//  caller to fill. PS_OK; PS_ENOMEM. A request that needs the worker
//  registered (INIT, PUSH, PULL, CLOCK) is not made after a broker's
//  connection was lost since its HELLO: PS_ECONNECT, or what registering
//  again gave (PS_EREJOINED ...) when the options let us wait.
int ps_session_request (ps_session_t *self, int type, ps_envelope_t *envelope,
                        ps_pending_t **pending);
//  The same for a PULL whose reply goes into tensors (see
//  ps_tickets_add_pull)
int ps_session_request_pull (ps_session_t *self, const ps_tensor_t *tensors, size_t ntensors,
                             const ps_part_t *plan, ps_envelope_t *envelope,
                             ps_pending_t **pending);
//  Send request on link as part of pending's request, which then waits
//  for that link's reply; sources as ps_link_send. lend: the frames
//  point into the sources, counted in pending's records of what it lent
//  (made at its first lent frame)
int ps_session_send (ps_session_t *self, uint32_t link, ps_pending_t *pending,
                     const ps_envelope_t *request, const float *const *sources, bool lend);
//  A CLOCK went out to every broker: the brokers advance us on receipt
void ps_session_clock_sent (ps_session_t *self);
//  Forget a ticket (a late reply is then ignored); returns status. Every
//  way a ticket is forgotten (here, or collected by a wait) first waits
//  for libzmq to let go of the frames it lent, as ps_worker.h promises:
//  after a grace of 200 ms it disconnects the links that still hold some
//  (libzmq then drops them) and connects them again.
int ps_session_abandon (ps_session_t *self, uint64_t ticket, int status);

//  Wait for a ticket as ps_worker_wait says (registering again when the
//  ticket's outcome calls for it)
int ps_session_wait (ps_session_t *self, uint64_t ticket, int timeout_ms);
//  Wait, then forget the ticket whatever came, so that a late reply is
//  ignored rather than written into buffers the caller took back
int ps_session_wait_or_forget (ps_session_t *self, uint64_t ticket, int timeout_ms);
//  Tickets not yet collected
size_t ps_session_pending (const ps_session_t *self);

//  Ask broker shard for INFO and wait for it: *json the caller's to free
int ps_session_info (ps_session_t *self, uint32_t shard, char **json);

#endif
