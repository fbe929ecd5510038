/*  =========================================================================
    ps_exchange - one step's push, clock and pull on a thread of its own
    (see ps_exchange.h)

    Why a thread: the library does its work on the thread that calls it.
    A wait unpacks the pull's reply into the buffers, and the calls build
    and send the requests: work that async calls from the main thread
    would still add to every step. On the actor they run beside the next
    step's computation. The push lends the gradient array (no copy of its
    400 KB): the actor holds it until both tickets are collected.

    The actor sleeps on its pipe; "GO" makes it push the gradient array it
    holds, send a clock and pull into the parameter array it holds, wait
    for the three (the pull first, so that the slowest clock it reads is
    the one the pull's reply named: with one broker, which is how
    psworker uses it, a wait stops at the reply that completes its
    ticket), and signal. Between "GO" and the signal the
    main thread touches neither the arrays nor the worker.
    ========================================================================= */

#include "ps_exchange.h"
#include "ps_handoff.h"

#include <czmq.h>

#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

//  The model's tensors, at most (ps_model: 4)
#define EXCHANGE_MAX_TENSORS 8
//  How often an interrupted psworker tells the actor again
#define INTERRUPT_POLL_MS 100

struct ps_exchange_t {
    ps_model_t *model;                        //  the caller's
    zactor_t *actor;                          //  runs s_exchange
    pthread_t thread;                         //  the actor's, for signals
    const volatile sig_atomic_t *interrupted; //  psworker's signal flag
    size_t ntensors;                          //  the model's tensors
    const char *keys[EXCHANGE_MAX_TENSORS];   //  their names (the model's)
    size_t offsets[EXCHANGE_MAX_TENSORS];     //  where each starts in an array
    size_t counts[EXCHANGE_MAX_TENSORS];      //  and its elements
    uint32_t grad_count;                      //  gradients summed into a push
    float *grads;                             //  the actor's: to push, or spare
    float *params;                            //  the actor's: the pull's target
    bool busy;                                //  started, not finished
    //  What the actor leaves for ps_exchange_finish
    ps_worker_t *worker; //  the caller's, lent
    int status;          //  the exchange's outcome
    const char *what;    //  the request that failed
    int64_t min_clock;   //  what the pull's reply named
};

//  The tensors of an array, named as the model names them
static void
s_bind (const ps_exchange_t *self, float *array, ps_tensor_t *tensors)
{
    for (size_t i = 0; i < self->ntensors; i++)
        tensors[i] = (ps_tensor_t){self->keys[i], array + self->offsets[i], self->counts[i]};
}

//  A push that finishes the clock and a pull, then the two replies; the
//  outcome in self
static void
s_exchange (ps_exchange_t *self)
{
    ps_tensor_t grads[EXCHANGE_MAX_TENSORS], params[EXCHANGE_MAX_TENSORS];
    s_bind (self, self->grads, grads);
    s_bind (self, self->params, params);
    static const char *names[2] = {"push and clock", "pull"};
    ps_ticket_t tickets[2];
    int status = ps_worker_push_clock_lend_async (self->worker, grads, self->ntensors,
                                                  self->grad_count, &tickets[0]);
    int sent = status == PS_OK;
    if (sent == 1) {
        status = ps_worker_pull_async (self->worker, params, self->ntensors, &tickets[1]);
        sent += status == PS_OK;
    }
    self->what = names[sent < 2 ? sent : 0];
    //  As psworker's step without overlap: the pull first, each failure
    //  reported with its own detail; after a registration again every
    //  ticket is complete, and collected
    for (int i = sent - 1; i >= 0 && (status == PS_OK || status == PS_EREJOINED); i--) {
        int outcome = ps_worker_wait (self->worker, tickets[i], -1);
        if (i == 1)
            self->min_clock = ps_worker_min_clock (self->worker);
        if (status == PS_OK && outcome != PS_OK) {
            status = outcome;
            self->what = names[i];
        }
    }
    self->status = status;
}

static void
s_actor (zsock_t *pipe, void *args)
{
    ps_exchange_t *self = args;
    self->thread = pthread_self ();
    PS_HANDOFF_SEND (self);
    zsock_signal (pipe, 0);
    while (true) {
        char *command = zstr_recv (pipe);
        bool go = command && streq (command, "GO");
        zstr_free (&command);
        if (!go)
            break;
        PS_HANDOFF_RECEIVE (self);
        s_exchange (self);
        PS_HANDOFF_SEND (self);
        zsock_signal (pipe, 0);
    }
    PS_HANDOFF_SEND (self);
}

ps_exchange_t *
ps_exchange_new (ps_model_t *model, uint32_t grad_count, const volatile sig_atomic_t *interrupted)
{
    assert (model);
    assert (interrupted);
    size_t ntensors = ps_model_param_count (model);
    assert (ntensors <= EXCHANGE_MAX_TENSORS);
    ps_exchange_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->model = model;
    self->ntensors = ntensors;
    self->grad_count = grad_count;
    self->interrupted = interrupted;
    for (size_t i = 0; i < ntensors; i++) {
        self->keys[i] = ps_model_param_name (model, i);
        self->offsets[i] = (size_t)(ps_model_param (model, i) - ps_model_param (model, 0));
        self->counts[i] = ps_model_param_size (model, i);
    }
    size_t total = ps_model_total (model);
    self->grads = calloc (total ? total : 1, sizeof (float));
    self->params = calloc (total ? total : 1, sizeof (float));
    if (self->grads && self->params)
        self->actor = zactor_new (s_actor, self);
    PS_HANDOFF_RECEIVE (self);
    if (!self->actor) {
        free (self->grads);
        free (self->params);
        free (self);
        return NULL;
    }
    return self;
}

//  Wait for the actor's signal. Once psworker is interrupted (SIGINT or
//  SIGTERM, which may have reached this thread), the actor's wait is cut
//  short too: the signal again, to the actor's thread, until it answers.
static void
s_wait_actor (ps_exchange_t *self)
{
    zpoller_t *poller = zpoller_new (self->actor, NULL);
    while (poller && !zpoller_wait (poller, INTERRUPT_POLL_MS))
        if (*self->interrupted)
            pthread_kill (self->thread, SIGINT);
    zpoller_destroy (&poller);
    zsock_wait (self->actor);
    PS_HANDOFF_RECEIVE (self);
}

void
ps_exchange_destroy (ps_exchange_t **self_p)
{
    assert (self_p);
    ps_exchange_t *self = *self_p;
    if (!self)
        return;
    if (self->busy)
        s_wait_actor (self);
    zactor_destroy (&self->actor);
    PS_HANDOFF_RECEIVE (self);
    free (self->grads);
    free (self->params);
    free (self);
    *self_p = NULL;
}

void
ps_exchange_start (ps_exchange_t *self, ps_worker_t *worker)
{
    assert (self);
    assert (worker);
    assert (!self->busy);
    self->grads = ps_model_swap_grads (self->model, self->grads);
    self->worker = worker;
    self->status = PS_OK;
    self->what = "push";
    self->min_clock = 0;
    self->busy = true;
    PS_HANDOFF_SEND (self);
    zstr_send (self->actor, "GO");
}

bool
ps_exchange_busy (const ps_exchange_t *self)
{
    assert (self);
    return self->busy;
}

int
ps_exchange_finish (ps_exchange_t *self, const char **what, int64_t *min_clock)
{
    assert (self);
    assert (self->busy);
    s_wait_actor (self);
    self->busy = false;
    self->worker = NULL;
    *what = self->what;
    *min_clock = self->min_clock;
    if (self->status == PS_OK)
        self->params = ps_model_swap_params (self->model, self->params);
    return self->status;
}
