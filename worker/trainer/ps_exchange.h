/*  =========================================================================
    ps_exchange - one step's push, clock and pull on a thread of its own:
    psworker's pull-ahead under SSP and ASP

    While the main thread computes step s + 1, an actor sends step s's
    gradients, its clock and a pull, and waits for their replies. The
    gradients and the parameters change hands by swapping arrays with the
    model (ps_model_swap_grads, ps_model_swap_params), never by copying:
    ps_exchange_start gives the actor the gradients backward just wrote
    and the model the spare array for the next ones; ps_exchange_finish
    gives the model the parameters the pull brought and the actor the ones
    the model used, as the next pull's target.

    The worker (ps_worker_t, not thread-safe) changes hands too: from
    ps_exchange_start until ps_exchange_finish it is the actor's, and the
    caller must not touch it nor the model's parameter pointers it took
    before (take them again after either call). The hand-over goes
    through the actor's pipe, which orders every write before it.

    Owns the spare arrays and the actor; the model, the worker and the
    key names stay the caller's. Called from psworker's main thread only.
    ========================================================================= */

#ifndef PS_EXCHANGE_H_INCLUDED
#define PS_EXCHANGE_H_INCLUDED

#include "ps_model.h"
#include "ps_worker.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ps_exchange_t ps_exchange_t;

//  An exchange for model's tensors, pushed with grad_count; interrupted
//  is psworker's flag, set by its SIGINT and SIGTERM handler: once it is
//  set, a wait for the actor sends the actor's thread SIGINT, which ends
//  the library's wait there with PS_EINTR. NULL when out of memory or the
//  actor does not start.
ps_exchange_t *ps_exchange_new (ps_model_t *model, uint32_t grad_count,
                                const volatile sig_atomic_t *interrupted);
//  Wait for an exchange under way, stop the actor, free the spare arrays
void ps_exchange_destroy (ps_exchange_t **self_p);

//  Swap the model's gradients for the spare array and send them, a clock
//  and a pull from worker, on the actor. Not while one is under way.
void ps_exchange_start (ps_exchange_t *self, ps_worker_t *worker);
//  Whether an exchange was started and not finished
bool ps_exchange_busy (const ps_exchange_t *self);
//  Wait for the exchange under way to end and return its status: PS_OK,
//  PS_EREJOINED, or the first failure in the order pull, clock, push
//  (*what names the request). On PS_OK the model gets the pulled
//  parameters, and *min_clock is the slowest clock the pull's reply
//  named: they hold every update of the clocks before it. The worker is
//  the caller's again whatever the status.
int ps_exchange_finish (ps_exchange_t *self, const char **what, int64_t *min_clock);

#endif
