/*  =========================================================================
    ps_parking - requests that may not be answered yet, and the rule that
    releases them

    A CLOCK or a PULL waits (is parked) while the staleness bound does not
    admit its clock, while the aggregation thread has not finished the
    commands it must see (need_done, a count of commands), or, a PULL,
    while its rank's clock is past its ceiling: the highest clock at which
    a rank may be given parameters before a newer checkpoint is written
    (ps_checkpointer_ceilings: a broker checkpointing every N clocks keeps
    what a restart makes a worker redo within N clocks). The rule, here and
    nowhere else: a parked request is answered once
        ps_parking_admits  and  agg_done >= need_done,
    where a PULL that waited on the bound sets need_done again, to what had
    been sent to the aggregation thread, at the moment the bound lets it
    pass: the pushes and the BSP barrier that released it came after it,
    and the model requires them. So a pull sees every update the model
    requires when it is answered, however its worker pipelined requests.

    Owns the parked requests (their envelope frames, moved in). Only the
    ROUTER loop's thread may call it. A ps_parked_t handed to a callback is
    valid during the call only.
    ========================================================================= */

#ifndef PS_PARKING_H_INCLUDED
#define PS_PARKING_H_INCLUDED

#include "ps_peers.h"
#include "ps_problem.h"
#include "ps_vclock.h"

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

typedef struct {
    ps_peer_t *peer;     //  who asked; parked requests die with it
    int type;            //  PSMQ__MSG_TYPE__CLOCK or __PULL
    int64_t clock;       //  the clock the bound must admit
    uint64_t need_done;  //  aggregation commands that must be DONE
    zmq_msg_t envelope;  //  the request, decoded again to answer
    int64_t since;       //  monotonic ms when parked
    int64_t received_us; //  when the request was read (tap timing)
    bool bound;          //  parked on the staleness bound or the
                         //  ceiling, not only on the aggregation thread
    bool recount;        //  a PULL still behind the bound: when it passes,
                         //  need_done becomes what was sent by then
    int64_t min_clock;   //  the slowest clock when need_done was set: every
                         //  push of the clocks before it is in what a PULL
                         //  is answered with (its reply's min_clock)
} ps_parked_t;

typedef struct ps_parking_t ps_parking_t;

//  Called for each request released (or drained); it answers it
typedef void (ps_parking_answer_fn) (void *arg, ps_parked_t *parked);

ps_parking_t *ps_parking_new (void);
void ps_parking_destroy (ps_parking_t **self_p);

//  Whether a request (type CLOCK or PULL) of rank at clock may be
//  answered as far as the clocks go: vclock admits clock, and a PULL's
//  clock is at most ceilings[rank] (ceilings: one per rank, NULL none)
bool ps_parking_admits (const ps_vclock_t *vclock, const int64_t *ceilings, int type, uint32_t rank,
                        int64_t clock);
//  0 when peer may park one more request; else -1, ERR_FULL in problem
int ps_parking_check_room (const ps_peer_t *peer, ps_problem_t *problem);
//  Park a request of peer (type CLOCK or PULL) at clock, needing need_done
//  commands DONE; its envelope frame is moved in
void ps_parking_add (ps_parking_t *self, const ps_vclock_t *vclock, const int64_t *ceilings,
                     ps_peer_t *peer, int type, int64_t clock, uint64_t need_done,
                     zmq_msg_t *envelope, int64_t received_us);
//  Answer, oldest first, every request the rule above now releases, with
//  agg_sent commands sent to the aggregation thread and agg_done done
void ps_parking_release (ps_parking_t *self, const ps_vclock_t *vclock, const int64_t *ceilings,
                         uint64_t agg_sent, uint64_t agg_done, ps_parking_answer_fn *answer,
                         void *arg);
//  Drop peer's requests unanswered (it went away)
void ps_parking_drop_peer (ps_parking_t *self, ps_peer_t *peer);
//  Hand every request to answer, oldest first, and forget them all
void ps_parking_drain (ps_parking_t *self, ps_parking_answer_fn *answer, void *arg);

//  Requests parked now, and ever
size_t ps_parking_size (const ps_parking_t *self);
uint64_t ps_parking_total (const ps_parking_t *self);
//  Iterate the parked requests, oldest first (for INFO); NULL at the end
const ps_parked_t *ps_parking_first (ps_parking_t *self);
const ps_parked_t *ps_parking_next (ps_parking_t *self);

#endif
