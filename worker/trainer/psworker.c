/*  =========================================================================
    psworker - data-parallel training through a psbroker

    Each rank trains on its own contiguous shard of the training set. A
    step computes the gradient of one minibatch, pushes it, sends its
    clock and pulls, and the next step trains on the parameters the pull
    brings. The broker applies the optimizer, so the learning rate and
    update rule are the keys' settings, given at INIT.

    How a step overlaps the broker (issue 15; --no-overlap: not at all,
    push, clock and pull sent back to back and waited for before the next
    step). Under BSP, and with a group of brokers, layer by layer
    (ps_layerwise): each layer's gradients are pushed as backward makes
    them, the clock right after the last, then a pull per layer (small
    layers fused); the next batch is prepared meanwhile, and the next
    forward waits for a layer's parameters only when it reaches that
    layer. The arithmetic is the same, so are the results. Under SSP and
    ASP with one broker, pull-ahead: the next step computes while this
    one's push, clock and pull are on their way, on a thread of their own
    (ps_exchange), with parameters one clock older, never older than the
    staleness bound allows (s_step_ahead).

    Every rank does the same number of steps per epoch (the training set
    divided evenly, rounded down), so that epochs line up under BSP even
    when the shards differ by one example.

    The run is counted in clocks: a step is a clock, and clock c (the
    clocks finished before the step, 0-based) is step c % S of epoch
    c / S + 1, S steps an epoch; the run ends at clock E x S. When the
    broker restarts (or evicted this worker), the library registers again
    (--wait-for-broker) and names the clock to go on from, the one its
    checkpoint holds, 0 without one: psworker creates its keys again
    (INIT is idempotent: a broker that restarted empty gets this rank's
    current parameters, whoever comes first), pulls, and redoes the steps
    from that clock, so that the run still ends after E x S clocks. The
    redone steps read other batches than the first time (each learner's
    order of its shard goes on where it was): a redo is not a replay.
    A psworker started into a job under way (a rank that died and was
    started again, or every rank against a broker that restored a
    checkpoint) goes on from the clock its HELLO names in the same way.
    ========================================================================= */

#include "ps_cli.h"
#include "ps_clock.h"
#include "ps_data.h"
#include "ps_exchange.h"
#include "ps_hash.h"
#include "ps_layerwise.h"
#include "ps_local.h"
#include "ps_malloc.h"
#include "ps_metrics_file.h"
#include "ps_model.h"
#include "ps_progress_bar.h"
#include "ps_validation.h"
#include "ps_trainer_options.h"
#include "ps_worker.h"

#include <czmq.h>

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SYNTHETIC_TRAIN 12000
#define SYNTHETIC_TEST 2000
#define MAX_PARAMS 8
//  Silence from the brokers before the first "waiting for the broker"
//  notice, and between notices
#define WAITING_FIRST_MS 1500
#define WAITING_AGAIN_MS 10000
//  Registrations again in a row without a step between them, before
//  psworker gives up on a broker that keeps restarting
#define MAX_REJOINS_IN_A_ROW 10
//  --validation-fraction's draw: fixed, not --seed, so that every rank
//  holds out the same examples whatever seeds it was given
#define VALIDATION_SEED 0x7a11da7e

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_signal (int signal_number)
{
    s_interrupted = 1;
}

//  splitmix64: the straggler's seeded draws
static double
s_uniform (uint64_t *state)
{
    return (ps_splitmix64 (state) >> 11) * (1.0 / 9007199254740992.0);
}

//  Standardise both sets with the training set's mean and deviation over
//  all pixels: gradient steps are better conditioned around zero. Every
//  rank loads the whole training set, so every rank gets the same numbers.
static void
s_standardise (ps_dataset_t *train, ps_dataset_t *test, ps_dataset_t *validation)
{
    double sum = 0, squares = 0;
    size_t count = train->n * train->dim;
    for (size_t i = 0; i < count; i++) {
        sum += train->x[i];
        squares += (double)train->x[i] * train->x[i];
    }
    double mean = sum / count;
    double deviation = sqrt (squares / count - mean * mean);
    float scale = deviation > 1e-6 ? (float)(1.0 / deviation) : 1.0f;
    ps_dataset_t *sets[] = {train, test, validation};
    for (int s = 0; s < 3 && sets[s]; s++)
        for (size_t i = 0; i < sets[s]->n * sets[s]->dim; i++)
            sets[s]->x[i] = (sets[s]->x[i] - (float)mean) * scale;
}

//  Load (or make) the training and test sets; prints why on failure
static int
s_load_data (const ps_trainer_options_t *options, ps_dataset_t **train, ps_dataset_t **test)
{
    if (strcmp (options->data, "synthetic") == 0) {
        *train = ps_data_synthetic (SYNTHETIC_TRAIN, 42, true);
        *test = ps_data_synthetic (SYNTHETIC_TEST, 42, false);
        return *train && *test ? 0 : -1;
    }
    ps_problem_t problem;
    if (ps_data_load_idx (options->data, true, train, &problem) ||
        ps_data_load_idx (options->data, false, test, &problem)) {
        fprintf (stderr, "psworker: %s\n", problem.message);
        return -1;
    }
    return 0;
}

//  A fresh order of the shard each epoch (Fisher-Yates, seeded draws)
static void
s_shuffle (size_t *order, size_t n, uint64_t *draws)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(s_uniform (draws) * i);
        size_t swap = order[i - 1];
        order[i - 1] = order[j < i ? j : i - 1];
        order[j < i ? j : i - 1] = swap;
    }
}

//  One worker of this process: its model replica and its shard. With
//  --threads T the process holds T of them, learner t training as rank
//  R + t; learner 0 runs in the main thread, the others as actors that
//  own their learner while computing and hand it back when they signal.
typedef struct {
    ps_model_t *model;         //  this worker's replica (learner 0: the trainer's)
    const ps_dataset_t *train; //  the whole training set, read only
    size_t begin;              //  its shard: [begin, begin + shard)
    size_t shard;              //  examples in it
    size_t take;               //  examples per step
    size_t *order;             //  this epoch's order of the shard
    size_t cursor;             //  next position in order
    float *x;                  //  the batch's inputs, side by side
    uint8_t *y;                //  and labels
    uint64_t draws;            //  shuffle state
    bool prepared;             //  x and y hold the next batch already
    double loss;               //  the last step's loss
} learner_t;

static int
s_learner_init (learner_t *self, const ps_trainer_options_t *options, uint32_t rank,
                const ps_dataset_t *train, ps_model_t *model)
{
    size_t end;
    ps_data_shard (train, rank, options->workers, &self->begin, &end);
    self->model = model;
    self->train = train;
    self->shard = end - self->begin;
    self->take = options->batch < self->shard ? options->batch : self->shard;
    self->order = malloc ((self->shard ? self->shard : 1) * sizeof *self->order);
    self->x = malloc (self->take * train->dim * sizeof *self->x);
    self->y = malloc (self->take ? self->take : 1);
    if (!self->model || !self->order || !self->x || !self->y)
        return -1;
    for (size_t i = 0; i < self->shard; i++)
        self->order[i] = self->begin + i;
    self->cursor = self->shard;
    self->draws = options->seed * 7919 + rank;
    return 0;
}

static void
s_learner_destroy (learner_t *self, bool owns_model)
{
    free (self->order);
    free (self->x);
    free (self->y);
    if (owns_model)
        ps_model_destroy (&self->model);
}

//  The next batch into x and y; a batch never spans the end of the order
static void
s_learner_prepare (learner_t *self)
{
    if (self->prepared)
        return;
    if (self->cursor + self->take > self->shard) {
        s_shuffle (self->order, self->shard, &self->draws);
        self->cursor = 0;
    }
    const ps_dataset_t *data = self->train;
    for (size_t i = 0; i < self->take; i++) {
        size_t example = self->order[self->cursor + i];
        memcpy (self->x + i * data->dim, data->x + example * data->dim, data->dim * sizeof (float));
        self->y[i] = data->y[example];
    }
    self->cursor += self->take;
    self->prepared = true;
}

//  Gradient of the next batch (prepared already, or now); hooks may be NULL
static void
s_learner_step (learner_t *self, const ps_model_hooks_t *hooks)
{
    s_learner_prepare (self);
    self->prepared = false;
    self->loss = ps_model_gradient_hooked (self->model, self->x, self->y, self->take, hooks);
}

//  A learner as an actor: "STEP" computes one gradient, then signals
static void
s_learner_actor (zsock_t *pipe, void *args)
{
    learner_t *self = args;
    zsock_signal (pipe, 0);
    while (true) {
        char *command = zstr_recv (pipe);
        bool step = command && streq (command, "STEP");
        zstr_free (&command);
        if (!step)
            break;
        s_learner_step (self, NULL);
        zsock_signal (pipe, 0);
    }
}

typedef struct {
    ps_worker_t *worker;            //  the broker connection
    ps_local_t *local;              //  --no-broker: the rule, applied here
    ps_model_t *model;              //  learner 0's parameters and gradients
    ps_tensor_t params[MAX_PARAMS]; //  the model's parameters as tensors
    ps_tensor_t grads[MAX_PARAMS];  //  and its gradients
    size_t nparams;                 //  how many
    learner_t *learners;            //  one per local worker
    zactor_t **actors;              //  learners 1.. run here
    uint32_t threads;               //  local workers
    double wait_seconds;            //  time spent waiting on the broker
    int32_t staleness;              //  the broker's: 0 BSP, N SSP, -1 ASP
    //  Layer by layer (BSP, and a group of brokers): the requests in flight
    ps_layerwise_t *layerwise;
    //  Pull-ahead (SSP and ASP, one broker): the exchange on its own
    //  thread, and the slowest clock named with the parameters the model
    //  holds (-1: not known)
    ps_exchange_t *exchange;
    int64_t held_min_clock;
    int64_t clocks; //  clocks finished: the worker's clock
    int64_t redone; //  clocks done again after a broker restart
    int rejoins;    //  registrations again since the last step
    //  --metrics-file: the file, and the steps since its last record
    ps_metrics_file_t *metrics;
    double run_started;    //  when s_train began
    double record_started; //  when the steps since the last record began
    double record_wait;    //  wait_seconds then
    double record_loss;    //  their losses, summed
    int record_steps;      //  how many
    //  --validation-fraction: the slice of the held-out set this process
    //  evaluates (empty: none)
    ps_validation_t validation;
    ps_progress_bar_t *bar; //  on a terminal, unless --no-progress
} trainer_t;

static void
s_bind_tensors (trainer_t *self)
{
    self->nparams = ps_model_param_count (self->model);
    for (size_t i = 0; i < self->nparams; i++) {
        const char *name = ps_model_param_name (self->model, i);
        size_t size = ps_model_param_size (self->model, i);
        self->params[i] = (ps_tensor_t){name, ps_model_param (self->model, i), size};
        self->grads[i] = (ps_tensor_t){name, ps_model_grad (self->model, i), size};
    }
}

//  The library's log callback: its messages on stderr, as psworker's own
static void
s_log (void *arg, int level, const char *message)
{
    fprintf (stderr, "psworker: %s\n", message);
}

static int
s_fail (trainer_t *self, const char *what, int status)
{
    fprintf (stderr, "psworker: %s failed: %s (%s)\n", what, ps_strerror (status),
             ps_worker_error (self->worker));
    return status;
}

//  ps_worker_connect is one blocking call, up to --timeout-ms, and the
//  library reports no progress. While it blocks in the main thread, this
//  actor says whom we wait for: once after WAITING_FIRST_MS, then every
//  WAITING_AGAIN_MS, until the main thread destroys it.
static void
s_waiting_actor (zsock_t *pipe, void *args)
{
    const ps_trainer_options_t *options = args;
    //  SIGINT and SIGTERM must reach the main thread, whose wait they cut
    //  short; delivered here they would go unnoticed until the timeout
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    zsock_signal (pipe, 0);
    bool group = strchr (options->broker, ',') != NULL;
    char who[32] = "worker without a rank";
    if (options->rank != PS_WORKER_ANY_RANK)
        snprintf (who, sizeof who, "rank %u", options->rank);
    double started = ps_clock_seconds ();
    zpoller_t *poller = zpoller_new (pipe, NULL);
    int wait_ms = WAITING_FIRST_MS;
    while (poller && !zpoller_wait (poller, wait_ms) && zpoller_expired (poller)) {
        fprintf (stderr,
                 "psworker: %s waiting for the %s at %s (%s after %.1f s; giving up "
                 "after %g s, see --timeout-ms)\n",
                 who, group ? "brokers" : "broker", options->broker,
                 group ? "not all have answered yet" : "no answer yet",
                 ps_clock_seconds () - started, options->timeout_ms / 1000.0);
        wait_ms = WAITING_AGAIN_MS;
    }
    zpoller_destroy (&poller);
}

//  Create the keys (every rank offers the same initial values: whoever is
//  first wins, INIT is idempotent) and start from what the broker holds.
//  The cosine schedule ends with the run: BSP applies one step per clock,
//  SSP and ASP one per push, so there it is workers times as many.
//  PS_OK, PS_EREJOINED (the broker took us back meanwhile), or the failure
//  it printed.
static int
s_init_keys (trainer_t *self, const ps_trainer_options_t *options, size_t steps_per_epoch)
{
    ps_optim_settings_t optim = options->optim;
    if (options->cosine) {
        uint64_t pushes = (uint64_t)steps_per_epoch * options->epochs;
        bool bsp = ps_worker_staleness (self->worker) == 0;
        optim.decay_steps = bsp ? pushes : pushes * options->workers;
    }
    for (size_t i = 0; i < self->nparams; i++) {
        int status = ps_worker_init_wire (self->worker, self->params[i].key, self->params[i].count,
                                          self->params[i].data, &optim, options->wire);
        if (status == PS_EREJOINED)
            return status;
        if (status)
            return s_fail (self, "init", status);
    }
    int status = ps_worker_pull (self->worker, self->params, self->nparams);
    //  The pull-ahead learns the slowest clock from its own pulls' replies
    self->held_min_clock = -1;
    return status && status != PS_EREJOINED ? s_fail (self, "pull", status) : status;
}

//  The library registered again (PS_EREJOINED): the broker restarted, from
//  a checkpoint or empty, or had evicted us. Go on from the clock it
//  named: the keys again (a broker that restarted empty has none), its
//  parameters, and the steps from there. 0, or -1 when that failed.
static int
s_redo (trainer_t *self, const ps_trainer_options_t *options, size_t steps_per_epoch)
{
    while (++self->rejoins <= MAX_REJOINS_IN_A_ROW) {
        int64_t clock = ps_worker_current_clock (self->worker);
        fprintf (stderr,
                 "psworker: rank %u: broker restarted (or evicted us); redoing from clock %" PRId64
                 " (was %" PRId64 ")\n",
                 options->rank, clock, self->clocks);
        if (clock < self->clocks)
            self->redone += self->clocks - clock;
        self->clocks = clock;
        int status = s_init_keys (self, options, steps_per_epoch);
        if (status != PS_EREJOINED)
            return status ? -1 : 0;
    }
    fprintf (stderr, "psworker: rank %u: registered again %d times without a step; giving up\n",
             options->rank, MAX_REJOINS_IN_A_ROW);
    return -1;
}

//  Every local worker's gradient of one batch, summed into learner 0's:
//  the others get the current parameters, compute beside learner 0, and
//  hand their replicas back when they signal
static double
s_gradients (trainer_t *self, const ps_model_hooks_t *hooks)
{
    for (uint32_t t = 1; t < self->threads; t++) {
        for (size_t i = 0; i < self->nparams; i++)
            memcpy (ps_model_param (self->learners[t].model, i), self->params[i].data,
                    self->params[i].count * sizeof (float));
        zstr_send (self->actors[t], "STEP");
    }
    s_learner_step (&self->learners[0], hooks);
    double loss = self->learners[0].loss;
    for (uint32_t t = 1; t < self->threads; t++) {
        zsock_wait (self->actors[t]);
        loss += self->learners[t].loss;
        for (size_t i = 0; i < self->nparams; i++) {
            const float *grad = ps_model_grad (self->learners[t].model, i);
            float *sum = self->grads[i].data;
            for (size_t k = 0; k < self->grads[i].count; k++)
                sum[k] += grad[k];
        }
    }
    return loss / self->threads;
}

//  One step without overlap: the gradients, then push, clock and pull in
//  flight together, and their replies. PS_OK, PS_EREJOINED (every ticket
//  of the step collected), or the failure it printed.
static int
s_step_waiting (trainer_t *self, double *loss)
{
    *loss = s_gradients (self, NULL);
    if (self->local) {
        ps_local_step (self->local, self->params, self->grads, self->nparams, self->threads);
        self->clocks++;
        return PS_OK;
    }
    ps_ticket_t tickets[2];
    const char *names[2] = {"push and clock", "pull"};
    int status = ps_worker_push_clock_async (self->worker, self->grads, self->nparams,
                                             self->threads, &tickets[0]);
    int sent = status == PS_OK;
    if (sent == 1) {
        status = ps_worker_pull_async (self->worker, self->params, self->nparams, &tickets[1]);
        sent += status == PS_OK;
    }
    const char *what = names[sent < 2 ? sent : 0];
    double started = ps_clock_seconds ();
    //  The pull is answered last: waiting for it settles the other one.
    //  Each failure is reported with its own detail, so check at once;
    //  after a registration again every ticket is complete, and collected
    for (int i = sent - 1; i >= 0 && (status == PS_OK || status == PS_EREJOINED); i--) {
        int outcome = ps_worker_wait (self->worker, tickets[i], -1);
        if (status == PS_OK && outcome != PS_OK) {
            status = outcome;
            what = names[i];
        }
    }
    self->wait_seconds += ps_clock_seconds () - started;
    if (status == PS_EREJOINED)
        return status;
    if (status)
        return s_fail (self, what, status);
    self->clocks++;
    self->rejoins = 0;
    return PS_OK;
}

//  ------------------------------------------------------------------
//  Layer by layer (ps_layerwise): the results of s_step_waiting, bit for
//  bit, with each layer's requests on their way as soon as they can be

//  The layers' requests settled: PS_OK, PS_EREJOINED (every ticket
//  collected), or the failure, printed
static int
s_layers_settle (trainer_t *self)
{
    const char *what;
    int status = ps_layerwise_settle (self->layerwise, &what);
    self->wait_seconds += ps_layerwise_waited (self->layerwise);
    if (status == PS_OK || status == PS_EREJOINED)
        return status;
    return s_fail (self, what, status);
}

static int
s_step_layers (trainer_t *self, double *loss)
{
    //  Local workers read every parameter before learner 0's forward, and
    //  their gradients are summed before one push
    if (self->threads > 1)
        ps_layerwise_collect (self->layerwise, -1);
    ps_model_hooks_t hooks = ps_layerwise_begin (self->layerwise, self->threads == 1);
    *loss = s_gradients (self, &hooks);
    ps_layerwise_collect (self->layerwise, -1);
    //  The step before is through (its replies all in)
    if (ps_layerwise_failed (self->layerwise) == PS_OK)
        self->rejoins = 0;
    int status = ps_layerwise_send (self->layerwise, self->threads > 1 ? self->threads : 0);
    self->wait_seconds += ps_layerwise_waited (self->layerwise);
    if (status != PS_OK)
        return s_layers_settle (self);
    //  Meanwhile: the next batch (and the shuffle, at an epoch's end)
    s_learner_prepare (&self->learners[0]);
    self->clocks++;
    return PS_OK;
}

//  ------------------------------------------------------------------
//  Pull-ahead: step s + 1 computes while step s's push, clock and pull
//  are on the way (ps_exchange, on its own thread), with the parameters
//  step s - 1's pull brought: the worker's own step s is not in them yet.
//  That spends one clock of the staleness: they may serve only when the
//  slowest clock their pull's reply named is at least s + 1 - N, so
//  that they hold every update of the clocks before s + 1 - N, as a pull
//  sent after step s's clock would (PROTOCOL.md); otherwise step s + 1
//  waits for step s's pull. ASP has no bound.

//  The exchange under way, ended: its status, printed when a failure
static int
s_exchange_end (trainer_t *self)
{
    if (!ps_exchange_busy (self->exchange))
        return PS_OK;
    double started = ps_clock_seconds ();
    const char *what;
    int64_t min_clock;
    int status = ps_exchange_finish (self->exchange, &what, &min_clock);
    self->wait_seconds += ps_clock_seconds () - started;
    s_bind_tensors (self);
    if (status == PS_OK) {
        self->held_min_clock = min_clock;
        self->rejoins = 0;
        return PS_OK;
    }
    self->held_min_clock = -1;
    return status == PS_EREJOINED ? status : s_fail (self, what, status);
}

static int
s_step_ahead (trainer_t *self, double *loss)
{
    *loss = s_gradients (self, NULL);
    int status = s_exchange_end (self);
    if (status)
        return status;
    ps_exchange_start (self->exchange, self->worker);
    s_bind_tensors (self);
    self->clocks++;
    if (self->staleness > 0 && self->held_min_clock < self->clocks - self->staleness)
        return s_exchange_end (self);
    return PS_OK;
}

//  Every reply of the steps sent in: the parameters of the last one in
//  the model. PS_OK, PS_EREJOINED or the failure, printed.
static int
s_settle (trainer_t *self)
{
    if (self->exchange)
        return s_exchange_end (self);
    if (self->layerwise && ps_layerwise_pending (self->layerwise))
        return s_layers_settle (self);
    return PS_OK;
}

//  One step: the gradients, then push, clock and pull. PS_OK, PS_EREJOINED
//  (every ticket of the step collected), or the failure it printed.
static int
s_step (trainer_t *self, double *loss)
{
    if (self->exchange)
        return s_step_ahead (self, loss);
    return self->layerwise ? s_step_layers (self, loss) : s_step_waiting (self, loss);
}

//  How the steps overlapped the broker, for the final record
static const char *
s_overlap_name (const trainer_t *self)
{
    if (self->exchange)
        return "ahead";
    return self->layerwise ? "layers" : "none";
}

//  How many clocks this worker is ahead of the slowest one, as the
//  brokers' last replies named it: -1 when not known (pull-ahead before
//  its first reply)
static int64_t
s_staleness (trainer_t *self)
{
    if (self->local)
        return 0;
    if (self->exchange)
        return self->held_min_clock >= 0 ? self->clocks - self->held_min_clock : -1;
    //  Layer by layer, the step's replies come in during the next one:
    //  the slowest clock known is the step before's
    int64_t known = self->clocks;
    if (self->layerwise && ps_layerwise_pending (self->layerwise))
        known--;
    int64_t ahead = known - ps_worker_min_clock (self->worker);
    return ahead > 0 ? ahead : 0;
}

//  The steps since the last record start again from now (a record
//  written, or steps redone)
static void
s_record_restart (trainer_t *self)
{
    self->record_started = ps_clock_seconds ();
    self->record_wait = self->wait_seconds;
    self->record_loss = 0;
    self->record_steps = 0;
}

//  A step done with this loss: a record of the steps since the last one
//  when --metrics-every of them are in, at an epoch's end, or when
//  validation (may be NULL) was evaluated at this step. A file that
//  fails is closed, said once.
static void
s_record (trainer_t *self, const ps_trainer_options_t *options, size_t steps_per_epoch, double loss,
          const ps_metrics_record_t *validation)
{
    if (!self->metrics)
        return;
    self->record_loss += loss;
    self->record_steps++;
    bool epoch_end = self->clocks % (int64_t)steps_per_epoch == 0;
    if (self->record_steps < options->metrics_every && !validation && !epoch_end)
        return;
    double now = ps_clock_seconds ();
    double seconds = now - self->record_started;
    size_t examples = self->learners[0].take * self->threads * (size_t)self->record_steps;
    int64_t done = self->clocks - 1;
    ps_metrics_record_t record = {
        .rank = options->rank,
        .epoch = (int)(done / (int64_t)steps_per_epoch) + 1,
        .step = done % (int64_t)steps_per_epoch + 1,
        .clock = self->clocks,
        .time = now - self->run_started,
        .loss = self->record_loss / self->record_steps,
        .examples_per_second = seconds > 0 ? examples / seconds : 0,
        .wait_seconds = self->wait_seconds - self->record_wait,
        .staleness = s_staleness (self),
    };
    if (validation) {
        record.validated = true;
        record.validation_loss = validation->validation_loss;
        record.validation_accuracy = validation->validation_accuracy;
        record.validation_examples = validation->validation_examples;
    }
    if (ps_metrics_file_write (self->metrics, &record)) {
        fprintf (stderr, "psworker: --metrics-file %s: %s; no more records\n",
                 options->metrics_file, strerror (errno));
        ps_metrics_file_destroy (&self->metrics);
    }
    s_record_restart (self);
}

static void
s_report (const ps_trainer_options_t *options, int epoch, const char *final, double loss,
          double accuracy, double seconds, double wait, int64_t clocks, int64_t redone,
          double examples_per_second, const ps_metrics_record_t *validation)
{
    char extra[160] = "";
    if (validation && options->json)
        snprintf (extra, sizeof extra,
                  ",\"validation_loss\":%.6f,\"validation_accuracy\":%.4f,"
                  "\"validation_examples\":%zu",
                  validation->validation_loss, validation->validation_accuracy,
                  validation->validation_examples);
    else if (validation)
        snprintf (extra, sizeof extra, "  validation loss %.4f accuracy %.4f",
                  validation->validation_loss, validation->validation_accuracy);
    if (options->json) {
        printf ("{\"rank\":%u,\"epoch\":%d,%s%s%s\"train_loss\":%.6f,\"test_accuracy\":%.4f,"
                "\"seconds\":%.3f,\"wait_seconds\":%.3f,\"clocks\":%" PRId64
                ",\"redone_clocks\":%" PRId64 ",\"examples_per_second\":%.1f%s}\n",
                options->rank, epoch, final ? "\"final\":true,\"overlap\":\"" : "",
                final ? final : "", final ? "\"," : "", loss, accuracy, seconds, wait, clocks,
                redone, examples_per_second, extra);
    }
    else if (final)
        printf ("rank %u done: %d epochs, test accuracy %.4f, loss %.4f, %.1f s "
                "(%.0f%% waiting on the broker; overlap: %s), %" PRId64 " clocks, %" PRId64
                " redone\n",
                options->rank, epoch, accuracy, loss, seconds,
                seconds > 0 ? 100 * wait / seconds : 0, final, clocks, redone);
    else
        printf ("rank %u epoch %d: loss %.4f  test accuracy %.4f  %.0f examples/s  "
                "%.0f%% waiting  clock %" PRId64 "%s\n",
                options->rank, epoch, loss, accuracy, examples_per_second,
                seconds > 0 ? 100 * wait / seconds : 0, clocks, extra);
    fflush (stdout);
}

//  Learners for ranks R .. R+T-1, all but the first on actors of their own
static int
s_learners_start (trainer_t *self, const ps_trainer_options_t *options, const ps_dataset_t *train)
{
    self->threads = options->threads;
    self->learners = calloc (self->threads, sizeof *self->learners);
    self->actors = calloc (self->threads, sizeof *self->actors);
    if (!self->learners || !self->actors)
        return -1;
    for (uint32_t t = 0; t < self->threads; t++) {
        ps_model_t *model = t == 0 ? self->model
                                   : ps_model_new (options->model, train->dim, options->hidden,
                                                   train->classes, options->seed);
        if (s_learner_init (&self->learners[t], options, options->rank + t, train, model))
            return -1;
        if (t > 0 && !(self->actors[t] = zactor_new (s_learner_actor, &self->learners[t])))
            return -1;
    }
    return 0;
}

static void
s_learners_stop (trainer_t *self)
{
    for (uint32_t t = 0; self->learners && t < self->threads; t++) {
        if (self->actors)
            zactor_destroy (&self->actors[t]);
        s_learner_destroy (&self->learners[t], t > 0);
    }
    free (self->learners);
    free (self->actors);
}

static int
s_train (trainer_t *self, const ps_trainer_options_t *options, const ps_dataset_t *train,
         const ps_dataset_t *test)
{
    size_t steps = train->n / options->workers / options->batch;
    if (steps == 0) {
        fprintf (stderr,
                 "psworker: %zu training examples are too few for %u workers with "
                 "batch %zu\n",
                 train->n, options->workers, options->batch);
        return -1;
    }
    if (options->metrics_file) {
        char error[256];
        self->metrics = ps_metrics_file_new (options->metrics_file, error, sizeof error);
        if (!self->metrics) {
            fprintf (stderr, "psworker: --metrics-file: %s\n", error);
            return -1;
        }
    }
    if (s_learners_start (self, options, train)) {
        fprintf (stderr, "psworker: out of memory for %u local workers\n", options->threads);
        s_learners_stop (self);
        ps_metrics_file_destroy (&self->metrics);
        return -1;
    }
    size_t examples = self->learners[0].take * self->threads;
    self->validation = ps_validation_slice (self->validation.set, options->eval_all, options->rank,
                                            self->threads, options->workers);
    if (!options->no_progress)
        self->bar = ps_progress_bar_new (stderr, options->rank);
    ps_metrics_record_t validation = {0}; //  the last evaluation's, if any
    uint64_t draws = options->seed * 7919 + options->rank + 0x5eed;
    double started = ps_clock_seconds ();
    double epoch_started = started, wait_before = 0;
    self->run_started = started;
    s_record_restart (self);
    double loss_sum = 0, accuracy = 0;
    size_t losses = 0; //  steps in loss_sum: this epoch's since it began or was redone
    //  Clock c is step c % steps of epoch c / steps + 1 (see the top)
    int64_t total = (int64_t)steps * options->epochs;
    int rc = 0;
    while (self->clocks < total && !s_interrupted && !rc) {
        if (self->clocks % (int64_t)steps == 0 || losses == 0) {
            epoch_started = ps_clock_seconds ();
            wait_before = self->wait_seconds;
            loss_sum = 0;
            losses = 0;
        }
        double loss;
        int status = s_step (self, &loss);
        //  An epoch ends with every reply in: its accuracy is of the
        //  parameters its last step brought; so does a validation
        bool validating = status == PS_OK && ps_validation_due (&self->validation, self->clocks,
                                                                steps, options->eval_every);
        if (status == PS_OK && (self->clocks % (int64_t)steps == 0 || validating))
            status = s_settle (self);
        if (status == PS_EREJOINED) {
            rc = s_redo (self, options, steps);
            losses = 0;
            s_record_restart (self);
            continue;
        }
        if (status) {
            rc = -1;
            break;
        }
        loss_sum += loss;
        losses++;
        if (validating) {
            //  Not in the record's rate: the evaluation is not training
            double evaluated = ps_clock_seconds ();
            ps_validation_evaluate (&self->validation, self->model, &validation);
            self->record_started += ps_clock_seconds () - evaluated;
        }
        s_record (self, options, steps, loss, validating ? &validation : NULL);
        if (options->delay_ms && s_uniform (&draws) < options->delay_prob)
            usleep ((useconds_t)options->delay_ms * 1000);
        int64_t step = (self->clocks - 1) % (int64_t)steps + 1;
        ps_progress_bar_update (self->bar, (int)((self->clocks - 1) / (int64_t)steps) + 1, step,
                                (int64_t)steps, (double)losses * examples,
                                ps_clock_seconds () - epoch_started);
        if (self->clocks % (int64_t)steps != 0)
            continue;
        ps_progress_bar_clear (self->bar);
        accuracy = (double)ps_model_correct (self->model, test->x, test->y, test->n) / test->n;
        double seconds = ps_clock_seconds () - epoch_started;
        s_report (options, (int)(self->clocks / (int64_t)steps), NULL, loss_sum / losses, accuracy,
                  seconds, self->wait_seconds - wait_before, self->clocks, self->redone,
                  losses * examples / seconds, validating ? &validation : NULL);
    }
    s_learners_stop (self);
    ps_metrics_file_destroy (&self->metrics);
    ps_progress_bar_destroy (&self->bar);
    if (rc)
        return -1;
    if (s_interrupted) {
        fprintf (stderr, "psworker: interrupted, leaving the job\n");
        return 130;
    }
    double seconds = ps_clock_seconds () - started;
    s_report (options, options->epochs, s_overlap_name (self), losses ? loss_sum / losses : 0,
              accuracy, seconds, self->wait_seconds, self->clocks, self->redone,
              (self->clocks + self->redone) * examples / seconds,
              validation.validated ? &validation : NULL);
    return 0;
}

//  How the steps will overlap the broker: pull-ahead under SSP and ASP
//  with one broker (its slowest clock is exact with one broker only: a
//  group's wait may read a shard's later reply), else layer by layer.
//  0, or -1 when out of memory
static int
s_overlap_start (trainer_t *self, const ps_trainer_options_t *options)
{
    self->staleness = ps_worker_staleness (self->worker);
    if (self->staleness != 0 && ps_worker_shards (self->worker) == 1)
        self->exchange = ps_exchange_new (self->model, options->threads, &s_interrupted);
    if (!self->exchange)
        self->layerwise = ps_layerwise_new (self->worker, self->model, self->params, self->grads,
                                            options->fuse_bytes);
    return self->exchange || self->layerwise ? 0 : -1;
}

int
main (int argc, char *argv[])
{
    ps_trainer_options_t options;
    int parsed = ps_trainer_options_parse (argc, argv, &options);
    if (parsed)
        return parsed == 1 ? 0 : 2;

    ps_malloc_keep_mapped ();
    //  Our own handler: czmq, started by the first learner actor, would
    //  otherwise install its own over it
    zsys_handler_set (NULL);
    struct sigaction action = {.sa_handler = s_on_signal};
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
    //  Several workers share a machine's cores: BLAS threads would fight
    if (!getenv ("OPENBLAS_NUM_THREADS"))
        openblas_set_num_threads (1);

    ps_dataset_t *train = NULL, *test = NULL;
    if (s_load_data (&options, &train, &test)) {
        ps_dataset_destroy (&train);
        ps_dataset_destroy (&test);
        return 1;
    }
    ps_dataset_t *validation = NULL;
    if (options.validation_fraction > 0 &&
        !(validation = ps_data_split (train, options.validation_fraction, VALIDATION_SEED))) {
        fprintf (stderr,
                 "psworker: --validation-fraction %g of %zu examples holds out none, or "
                 "all (or out of memory)\n",
                 options.validation_fraction, train->n);
        ps_dataset_destroy (&train);
        ps_dataset_destroy (&test);
        return 1;
    }
    s_standardise (train, test, validation);
    trainer_t trainer = {.validation = {.set = validation}};
    trainer.model =
        ps_model_new (options.model, train->dim, options.hidden, train->classes, options.seed);
    if (!trainer.model) {
        fprintf (stderr, "psworker: cannot create the model\n");
        return 1;
    }
    s_bind_tensors (&trainer);

    if (options.no_broker) {
        //  The keys' settings as s_init_keys gives them, for one worker
        ps_optim_settings_t settings = options.optim;
        size_t steps = train->n / options.workers / options.batch;
        if (options.cosine)
            settings.decay_steps = (uint64_t)steps * options.epochs;
        trainer.local = ps_local_new (&settings, trainer.params, trainer.nparams);
        int rc = trainer.local && s_train (&trainer, &options, train, test) == 0 ? 0 : 1;
        ps_local_destroy (&trainer.local);
        ps_model_destroy (&trainer.model);
        ps_dataset_destroy (&train);
        ps_dataset_destroy (&test);
        ps_dataset_destroy (&validation);
        return s_interrupted ? 130 : rc;
    }
    ps_worker_options_t connect;
    ps_worker_options_init (&connect);
    connect.broker = options.broker;
    connect.rank = options.rank;
    connect.world_size = options.workers;
    connect.local_workers = options.threads;
    connect.timeout_ms = options.timeout_ms;
    connect.clock_timeout_ms = options.clock_timeout_ms;
    connect.wait_for_broker_ms = options.wait_for_broker_ms;
    connect.curve_secret = options.curve_secret;
    connect.broker_key = options.broker_key;
    connect.log = s_log;
    int status;
    zactor_t *waiting = zactor_new (s_waiting_actor, &options);
    trainer.worker = ps_worker_connect (&connect, &status);
    zactor_destroy (&waiting);
    int rc = 1;
    if (trainer.worker) {
        //  The broker's, when the flags and the environment named none
        if (options.rank == PS_WORKER_ANY_RANK || options.workers == 0)
            fprintf (stderr, "psworker: rank %u of %u (%s by the broker)\n",
                     ps_worker_rank (trainer.worker), ps_worker_world_size (trainer.worker),
                     options.rank == PS_WORKER_ANY_RANK ? "given" : "world size");
        options.rank = ps_worker_rank (trainer.worker);
        options.workers = ps_worker_world_size (trainer.worker);
    }
    size_t steps_per_epoch = train->n / options.workers / options.batch;
    //  A worker started (again) into a job that is under way, or against a
    //  broker that restored a checkpoint, goes on from the clock it joined at
    if (trainer.worker && ps_worker_current_clock (trainer.worker) > 0 && steps_per_epoch > 0) {
        trainer.clocks = ps_worker_current_clock (trainer.worker);
        fprintf (stderr,
                 "psworker: rank %u joins the job at clock %" PRId64 " (epoch %" PRId64
                 ", step %" PRId64 ")\n",
                 options.rank, trainer.clocks, trainer.clocks / (int64_t)steps_per_epoch + 1,
                 trainer.clocks % (int64_t)steps_per_epoch);
    }
    if (trainer.worker && !options.no_overlap && s_overlap_start (&trainer, &options))
        fprintf (stderr, "psworker: out of memory for the overlap; its steps wait instead\n");
    int ready = trainer.worker ? s_init_keys (&trainer, &options, steps_per_epoch) : -1;
    if (ready == PS_EREJOINED)
        ready = s_redo (&trainer, &options, steps_per_epoch);
    if (ready == PS_OK)
        rc = s_train (&trainer, &options, train, test) == 0 ? 0 : 1;
    if (s_interrupted)
        rc = 130;
    //  Before the worker closes: the actor may hold it
    ps_exchange_destroy (&trainer.exchange);
    ps_layerwise_destroy (&trainer.layerwise);
    if (trainer.worker)
        ps_worker_close (&trainer.worker);
    ps_model_destroy (&trainer.model);
    ps_dataset_destroy (&train);
    ps_dataset_destroy (&test);
    ps_dataset_destroy (&validation);
    return rc;
}
