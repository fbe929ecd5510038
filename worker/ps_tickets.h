/*  =========================================================================
    ps_tickets - the worker's requests in flight and their completion

    Every request gets a sequence number, which is its ticket, and goes out
    under that one number on every link (broker) that holds a part of it.
    The table remembers, per ticket, the links it went out on and the
    links whose whole reply has come. A ticket completes when every link
    it went to has answered in full, or at the first failure; a HELLO
    waits for every answer even so, since the brokers that accepted it
    must be known, to say BYE to them. A pull's ticket also holds where
    its reply goes (the caller's tensors, each tensor's part on each link)
    and counts the elements received, so that a pull succeeds only when
    every element came.

    ps_tickets_take reads what a reply means for its request (an error, a
    pull's data, an INFO's text); what it means for the worker (a HELLO's
    settings, a clock taken back) is ps_session's business. The session
    then hands the table its verdict on each link's reply, and the table
    decides when the ticket is complete.

    Threads: the thread that owns the worker, only.

    Ownership: the table owns its entries and what they hold (copies of
    the pull's tensor descriptors and plan). A pointer to an entry stays
    valid until the next add or remove. The data and key strings the
    copied descriptors point to stay the caller's: a pull writes into
    them until its ticket is removed.

    Failure: add returns NULL when out of memory; functions that return
    int return PS_OK or a ps_status_t, with problem (when not NULL) filled
    in, code 0.
    ========================================================================= */

#ifndef PS_TICKETS_H_INCLUDED
#define PS_TICKETS_H_INCLUDED

#include "ps_codec.h"
#include "ps_partition.h"
#include "ps_view.h"
#include "ps_worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  A set of links (brokers of the group), one bit each
typedef struct {
    uint64_t bits[PS_MAX_SHARDS / 64];
} ps_linkset_t;

typedef struct ps_lent_t ps_lent_t;

//  One request in flight; the worker fills the fields its type needs
typedef struct {
    uint64_t seq;          //  the ticket
    int type;              //  PSMQ__MSG_TYPE__*
    bool complete;         //  every link answered, or one failed
    int status;            //  the outcome, once complete
    ps_linkset_t sent;     //  links the request went out on
    ps_linkset_t answered; //  links whose whole reply came
    ps_tensor_t *tensors;  //  PULL: where the reply goes (copied descriptors)
    ps_part_t *plan;       //  PULL: tensor i's part on link l at [i * nlinks + l]
    uint64_t *filled;      //  PULL: elements received per tensor, all parts
    size_t ntensors;       //  PULL: their number
    ps_view_t *view;       //  PULL: the caller's view the frames go to
                           //  (ps_worker_pull_view), else NULL: copied
    bool streamed;         //  PULL: copied with stores that bypass the
                           //  cache, as the pull writes more than it keeps
                           //  (ps_stream.h)
    int64_t clock;         //  CLOCK: the clock it finishes (a PUSH's too)
    bool clock_after;      //  PUSH: it finishes its clock as well
    ps_lent_t *lent;       //  PUSH: for each link, its frames that point into
                           //  the caller's memory (ps_link.h); NULL: copied
    char **info;           //  INFO: where the JSON text goes
} ps_pending_t;

typedef struct ps_tickets_t ps_tickets_t;

//  An empty table for a group of nlinks brokers; tickets start at 1.
//  NULL when out of memory.
ps_tickets_t *ps_tickets_new (uint32_t nlinks);
//  Free the table and every entry; nulls the pointer
void ps_tickets_destroy (ps_tickets_t **self_p);

//  Whether the request finishes the worker's clock: a CLOCK, or a PUSH
//  with clock_after (its reply is then the CLOCK's)
bool ps_tickets_finishes_clock (const ps_pending_t *pending);

//  A new entry of type with the next ticket, sent nowhere yet
ps_pending_t *ps_tickets_add (ps_tickets_t *self, int type);
//  A new PULL entry that keeps copies of the ntensors descriptors and of
//  plan (ntensors * nlinks parts)
ps_pending_t *ps_tickets_add_pull (ps_tickets_t *self, const ps_tensor_t *tensors, size_t ntensors,
                                   const ps_part_t *plan);
//  The entry of a ticket, NULL when there is none
ps_pending_t *ps_tickets_find (ps_tickets_t *self, uint64_t seq);
//  Forget an entry (complete or not): a late reply to it is then ignored
void ps_tickets_remove (ps_tickets_t *self, ps_pending_t *pending);
//  Entries not yet removed
size_t ps_tickets_count (const ps_tickets_t *self);

//  The request went out on link
void ps_tickets_mark_sent (ps_pending_t *pending, uint32_t link);
//  The request went out on link and that link's whole reply has not come
bool ps_tickets_awaits (const ps_pending_t *pending, uint32_t link);
//  Whether a reply may wait for the staleness bound: a CLOCK's, and a
//  PULL's sent while an earlier CLOCK was still waiting
bool ps_tickets_waits_on_bound (const ps_tickets_t *self, const ps_pending_t *pending);

//  The ps_status_t of a broker's ERROR code (PSMQ__ERR_CODE__*): -100 -
//  code, PS_EPROTO for a code this library does not know
int ps_tickets_broker_status (int code);
//  What (one part of) link's reply means for pending, but for a HELLO
//  reply's settings, which are the group's business. An ERROR: the
//  broker's status. A reply of another type, a CLOCK reply for another
//  clock, a PULL reply whose frames fit no requested part or bring more
//  elements of a tensor than it has: PS_EPROTO. A PULL reply's frames
//  are copied into the caller's tensors at the offsets of link's parts
//  (or go to its view, PS_ENOMEM when they cannot); an INFO reply's text
//  is copied to *pending->info (PS_ENOMEM when it cannot be). Messages
//  name endpoint.
int ps_tickets_take (ps_tickets_t *self, ps_pending_t *pending, uint32_t link, const char *endpoint,
                     const ps_envelope_t *reply, zmq_msg_t *frames, size_t nframes,
                     ps_problem_t *problem);
//  Fail every incomplete entry that awaits link with status: that link's
//  reply can no longer come (its connection was lost). How many it failed;
//  *clock_from is the clock the first failed CLOCK was sent at (the
//  worker's clock to go back to), left as it was when none failed.
size_t ps_tickets_fail_link (ps_tickets_t *self, uint32_t link, int status, int64_t *clock_from);
//  Complete every entry with status: the incomplete ones, and when all is
//  set the complete ones too (their outcome is void: the worker registered
//  again since)
void ps_tickets_complete_all (ps_tickets_t *self, int status, bool all);

//  Settle link's reply with the worker's verdict on it (status); more:
//  more parts of this reply are to come. A failure completes the ticket,
//  but for a HELLO, which waits for every link. When the last link has
//  answered, a PULL must have every element: else it completes with
//  PS_EPROTO. Returns that PS_EPROTO (and fills problem), else PS_OK.
int ps_tickets_settle (ps_pending_t *pending, uint32_t link, int status, bool more,
                       ps_problem_t *problem);

#endif
