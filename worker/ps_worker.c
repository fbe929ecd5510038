/*  =========================================================================
    ps_worker - the worker library: the public API over its parts

    ps_worker.h is the contract. The parts, each in a file of its own:
      ps_session    the requests to the group and their replies, the
                    worker's clock, joining and leaving
      ps_group      the brokers: the context, a link to each, what each
                    said, the heartbeat thread (ps_heartbeat)
      ps_link       one DEALER to one broker
      ps_tickets    the requests in flight and their completion
      ps_layout     one call's tensors over the group (ps_partition's rule)
                    and into slices of at most PS_CHUNK_BYTES
      ps_framepool  the buffers copied tensor data goes out in
    This file checks the caller's arguments and builds each request: which
    broker gets which slices, with the data from where. It remembers the
    wire dtype each key's INIT named (ps_worker_init_wire) and marks every
    slice of that key with it: ps_link narrows the floats to 16 bits as it
    sends, ps_tickets widens a pull reply's as it copies them.

    The blocking push and the lending async forms lend the caller's memory
    to libzmq (zero copy) when the call carries at least LEND_MIN_BYTES;
    the ticket is collected, or forgotten, only once libzmq has released
    every frame it lent (ps_session), so the blocking push returns only
    then. The other async forms copy their data at the call.
    ========================================================================= */

#include "ps_worker.h"
#include "ps_dtype.h"
#include "ps_layout.h"
#include "ps_limits.h"
#include "ps_malloc.h"
#include "ps_session.h"
#include "ps_view.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A push lends the caller's memory only when it carries at least this
//  much: below it, a copy costs less than waiting for libzmq to let go
#define LEND_MIN_BYTES (256 * 1024)

//  The CMake project's version, given to every compile (CMakeLists.txt)
#ifndef PSMQ_VERSION
#error "PSMQ_VERSION is not defined: build psmq with its CMakeLists.txt"
#endif

struct ps_worker_t {
    ps_session_t *session; //  the group, the requests in flight, the clock
    ps_layout_t *layout;   //  the call at hand over the group
    uint32_t nlinks;       //  brokers in the group
    zhashx_t *wire;        //  key -> its wire dtype + 1 (a pointer-sized
                           //  int), for the keys INIT made 16-bit only
};

const char *
ps_worker_version (void)
{
    return PSMQ_VERSION;
}

int
ps_worker_keep_memory_mapped (void)
{
    return ps_malloc_keep_mapped () ? 1 : 0;
}

const char *
ps_strerror (int status)
{
    switch (status) {
    case PS_OK: return "success";
    case PS_EINVAL: return "invalid argument";
    case PS_ENOMEM: return "out of memory";
    case PS_ETIMEOUT: return "no reply within the timeout";
    case PS_ECONNECT: return "no connection to the broker (cannot connect, or lost it)";
    case PS_EPROTO: return "reply does not parse or does not fit the request";
    case PS_ETICKET: return "unknown or already collected ticket";
    case PS_EINTR: return "interrupted by a signal";
    case PS_EREJOINED:
        return "registered again after a broker restart or an eviction; the worker's clock is "
               "now ps_worker_current_clock ()";
    case PS_EMALFORMED: return "broker: message does not parse";
    case PS_EVERSION: return "broker: protocol version mismatch";
    case PS_ETYPE: return "broker: message type not accepted";
    case PS_EUNKNOWN_KEY: return "broker: unknown key";
    case PS_ESIZE: return "broker: element count does not match the key";
    case PS_ETOO_LARGE: return "broker: over a limit";
    case PS_ECLOCK: return "broker: clock mismatch";
    case PS_ENOT_REGISTERED: return "broker: worker not registered (evicted?)";
    case PS_ERANK: return "broker: rank or world size refused";
    case PS_EKEY_EXISTS: return "broker: key exists with another size or other settings";
    case PS_EOPTIM: return "broker: optimizer settings refused";
    case PS_EFULL: return "broker: cannot take more";
    case PS_ESHUTDOWN: return "broker: shutting down";
    case PS_EGROUP: return "broker group differs from the worker's list";
    case PS_ENONFINITE: return "broker: a gradient held a NaN or an infinity";
    default: return "unknown status";
    }
}

void
ps_worker_options_init (ps_worker_options_t *options)
{
    memset (options, 0, sizeof *options);
    options->world_size = 1;
    options->timeout_ms = PS_DEFAULT_CALL_TIMEOUT_MS;
    options->clock_timeout_ms = PS_DEFAULT_CLOCK_TIMEOUT_MS;
}

// ------------------------------------------------------------ connect

static void
s_destroy (ps_worker_t *self)
{
    ps_session_destroy (&self->session);
    ps_layout_destroy (&self->layout);
    zhashx_destroy (&self->wire);
    free (self);
}

//  A worker over a new session, not yet registered; NULL with
//  *status, and the detail in problem
static ps_worker_t *
s_new (const ps_worker_options_t *options, int *status, ps_problem_t *problem)
{
    ps_worker_t *self = calloc (1, sizeof *self);
    if (!self) {
        ps_problem_set (problem, 0, "out of memory");
        *status = PS_ENOMEM;
        return NULL;
    }
    self->session = ps_session_new (options, status, problem);
    self->wire = zhashx_new ();
    if (self->session && !self->wire) {
        ps_problem_set (problem, 0, "out of memory");
        *status = PS_ENOMEM;
    }
    if (self->session && self->wire) {
        self->nlinks = ps_session_size (self->session);
        self->layout = ps_layout_new (self->nlinks);
        if (!self->layout) {
            ps_problem_set (problem, 0, "out of memory");
            *status = PS_ENOMEM;
        }
    }
    if (*status != PS_OK) {
        s_destroy (self);
        return NULL;
    }
    return self;
}

//  Whether the ranks the options ask fit their world: rank + local_workers
//  <= world_size <= PS_MAX_WORKERS, either of them left to the broker
//  (PS_WORKER_ANY_RANK, world_size 0) checked as far as known
static bool
s_ranks_fit (const ps_worker_options_t *options)
{
    uint32_t local = options->local_workers > 1 ? options->local_workers : 1;
    uint32_t world = options->world_size ? options->world_size : PS_MAX_WORKERS;
    if (world > PS_MAX_WORKERS || local > world)
        return false;
    return options->rank == PS_WORKER_ANY_RANK ||
           (options->rank < world && local <= world - options->rank);
}

ps_worker_t *
ps_worker_connect (const ps_worker_options_t *options, int *status_p)
{
    int status_local;
    int *status = status_p ? status_p : &status_local;
    if (!options || !s_ranks_fit (options) || !options->broker || options->timeout_ms <= 0 ||
        options->clock_timeout_ms <= 0 || options->wait_for_broker_ms < 0 ||
        options->heartbeat_timeout_ms < 0 ||
        (options->heartbeat_timeout_ms > 0 &&
         options->heartbeat_timeout_ms < 2 * PS_MIN_HEARTBEAT_MS) ||
        options->heartbeat_timeout_ms > PS_MAX_TIMEOUT_MS) {
        if (options)
            ps_session_log (options, PS_WORKER_LOG_ERROR,
                            "ps_worker_connect: needs a broker endpoint, rank + local_workers <= "
                            "world_size <= %d (or rank PS_WORKER_ANY_RANK, world_size 0: the "
                            "broker's), positive timeouts, wait_for_broker_ms >= 0 and "
                            "heartbeat_timeout_ms 0 or %d .. %d",
                            PS_MAX_WORKERS, 2 * PS_MIN_HEARTBEAT_MS, PS_MAX_TIMEOUT_MS);
        *status = PS_EINVAL;
        return NULL;
    }
    ps_problem_t problem;
    ps_worker_t *self = s_new (options, status, &problem);
    if (self)
        *status = ps_session_join (self->session);
    if (*status == PS_OK)
        return self;
    const char *detail = self ? ps_session_error (self->session) : problem.message;
    char who[32] = "a worker without a rank";
    if (options->rank != PS_WORKER_ANY_RANK)
        snprintf (who, sizeof who, "rank %u", options->rank);
    ps_session_log (options, PS_WORKER_LOG_ERROR, "%s cannot join %s: %s", who, options->broker,
                    detail[0] ? detail : ps_strerror (*status));
    if (self) {
        //  Brokers of the group that did take us must not wait for us
        ps_session_leave (self->session);
        s_destroy (self);
    }
    return NULL;
}

int
ps_worker_close (ps_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return PS_EINVAL;
    ps_worker_t *self = *self_p;
    *self_p = NULL;
    int status = ps_session_leave (self->session);
    s_destroy (self);
    return status;
}

uint32_t
ps_worker_rank (const ps_worker_t *self)
{
    return ps_session_options (self->session)->rank;
}

uint32_t
ps_worker_world_size (const ps_worker_t *self)
{
    return ps_session_options (self->session)->world_size;
}

uint32_t
ps_worker_shards (const ps_worker_t *self)
{
    return self->nlinks;
}

int32_t
ps_worker_staleness (const ps_worker_t *self)
{
    return ps_session_staleness (self->session);
}

int64_t
ps_worker_current_clock (const ps_worker_t *self)
{
    return ps_session_clock (self->session);
}

int64_t
ps_worker_min_clock (const ps_worker_t *self)
{
    return ps_session_min_clock (self->session);
}

const char *
ps_worker_error (const ps_worker_t *self)
{
    return self ? ps_session_error (self->session) : "no worker";
}

// ------------------------------------------------------------ operations

ps_wire_dtype_t
ps_worker_wire_dtype (const ps_worker_t *self, const char *key)
{
    if (!self || !key)
        return PS_WIRE_F32;
    uintptr_t stored = (uintptr_t)zhashx_lookup (self->wire, key);
    return stored ? (ps_wire_dtype_t)(stored - 1) : PS_WIRE_F32;
}

//  The slices of one request to carry their keys' wire dtypes (the frames
//  follow them: ps_link_send narrows, ps_tickets widens)
static ps_slice_t **
s_with_dtypes (ps_worker_t *self, ps_slice_t **slices, size_t nslices)
{
    if (zhashx_size (self->wire) == 0)
        return slices; //  every key f32, as the layout wrote them
    for (size_t i = 0; i < nslices; i++)
        slices[i]->dtype = (Psmq__DType)ps_worker_wire_dtype (self, slices[i]->key);
    return slices;
}

//  Check a call's tensors (with_data: they must have data) and lay them
//  over the group
static int
s_plan (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, bool with_data)
{
    ps_problem_t problem;
    int status = ps_layout_plan (self->layout, tensors, ntensors, with_data, &problem);
    return status ? ps_session_fail (self->session, status, "%s", problem.message) : PS_OK;
}

//  The start of an async push or pull: its arguments, then its layout
static int
s_plan_async (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
              const ps_ticket_t *ticket, bool with_data)
{
    if (!self || !ticket)
        return PS_EINVAL;
    return s_plan (self, tensors, ntensors, with_data);
}

//  Lay out and send a push to every broker holding a part of its tensors;
//  lend: frames point into the caller's tensors; clock_after: the push
//  finishes our clock too, so every broker gets it (those holding none of
//  its tensors with no slice: PROTOCOL.md, A push that finishes a clock)
static int
s_push (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, uint32_t grad_count,
        ps_ticket_t *ticket, bool lend, bool clock_after)
{
    int status = s_plan_async (self, tensors, ntensors, ticket, true);
    if (status)
        return status;
    ps_envelope_t request;
    ps_pending_t *pending;
    status = ps_session_request (self->session, PSMQ__MSG_TYPE__PUSH, &request, &pending);
    if (status)
        return status;
    *ticket = pending->seq;
    pending->clock_after = clock_after;
    request.clock_after = clock_after;
    request.grad_count = grad_count ? grad_count : 1;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        request.n_slices = ps_layout_chunks (self->layout, link);
        request.slices = s_with_dtypes (self, ps_layout_slices (self->layout), request.n_slices);
        if (request.n_slices || clock_after)
            status = ps_session_send (self->session, link, pending, &request,
                                      ps_layout_sources (self->layout), lend);
    }
    if (status)
        return ps_session_abandon (self->session, *ticket, status);
    if (clock_after)
        ps_session_clock_sent (self->session);
    return PS_OK;
}

//  Whether a push that may lend does: from LEND_MIN_BYTES of its tensors up
static bool
s_lends (const ps_tensor_t *tensors, size_t ntensors)
{
    return ps_layout_bytes (tensors, ntensors) >= LEND_MIN_BYTES;
}

//  A blocking push (that may finish the clock): sent, then waited for; the
//  ticket's end waits for libzmq to let go of what it lent
static int
s_push_wait (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, uint32_t grad_count,
             bool clock_after)
{
    ps_ticket_t ticket;
    int status = s_push (self, tensors, ntensors, grad_count, &ticket, s_lends (tensors, ntensors),
                         clock_after);
    return status ? status : ps_session_wait_or_forget (self->session, ticket, -1);
}

int
ps_worker_push_async (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                      uint32_t grad_count, ps_ticket_t *ticket)
{
    return s_push (self, tensors, ntensors, grad_count, ticket, false, false);
}

int
ps_worker_push_clock_async (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                            uint32_t grad_count, ps_ticket_t *ticket)
{
    return s_push (self, tensors, ntensors, grad_count, ticket, false, true);
}

int
ps_worker_push_lend_async (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                           uint32_t grad_count, ps_ticket_t *ticket)
{
    return s_push (self, tensors, ntensors, grad_count, ticket, s_lends (tensors, ntensors), false);
}

int
ps_worker_push_clock_lend_async (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                                 uint32_t grad_count, ps_ticket_t *ticket)
{
    return s_push (self, tensors, ntensors, grad_count, ticket, s_lends (tensors, ntensors), true);
}

//  Lay out and send a pull to every broker holding a part of its
//  tensors; its reply goes to view, or without one into the tensors' data
static int
s_pull (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, ps_view_t *view,
        ps_ticket_t *ticket)
{
    int status = s_plan_async (self, tensors, ntensors, ticket, view == NULL);
    if (status)
        return status;
    ps_envelope_t request;
    ps_pending_t *pending;
    status = ps_session_request_pull (self->session, tensors, ntensors,
                                      ps_layout_parts (self->layout), &request, &pending);
    if (status)
        return status;
    pending->view = view;
    *ticket = pending->seq;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        request.n_slices = ps_layout_wholes (self->layout, link);
        request.slices = s_with_dtypes (self, ps_layout_slices (self->layout), request.n_slices);
        if (request.n_slices)
            status = ps_session_send (self->session, link, pending, &request, NULL, false);
    }
    return status ? ps_session_abandon (self->session, *ticket, status) : PS_OK;
}

int
ps_worker_pull_async (ps_worker_t *self, ps_tensor_t *tensors, size_t ntensors, ps_ticket_t *ticket)
{
    return s_pull (self, tensors, ntensors, NULL, ticket);
}

int
ps_worker_clock_async (ps_worker_t *self, ps_ticket_t *ticket)
{
    if (!self || !ticket)
        return PS_EINVAL;
    ps_envelope_t request;
    ps_pending_t *pending;
    int status = ps_session_request (self->session, PSMQ__MSG_TYPE__CLOCK, &request, &pending);
    if (status)
        return status;
    *ticket = pending->seq;
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++)
        status = ps_session_send (self->session, link, pending, &request, NULL, false);
    if (status)
        return ps_session_abandon (self->session, *ticket, status);
    ps_session_clock_sent (self->session);
    return PS_OK;
}

int
ps_worker_wait (ps_worker_t *self, ps_ticket_t ticket, int timeout_ms)
{
    return self ? ps_session_wait (self->session, ticket, timeout_ms) : PS_EINVAL;
}

size_t
ps_worker_pending (const ps_worker_t *self)
{
    return self ? ps_session_pending (self->session) : 0;
}

int
ps_worker_push (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, uint32_t grad_count)
{
    return s_push_wait (self, tensors, ntensors, grad_count, false);
}

int
ps_worker_push_clock (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                      uint32_t grad_count)
{
    return s_push_wait (self, tensors, ntensors, grad_count, true);
}

int
ps_worker_pull (ps_worker_t *self, ps_tensor_t *tensors, size_t ntensors)
{
    ps_ticket_t ticket;
    int status = ps_worker_pull_async (self, tensors, ntensors, &ticket);
    return status ? status : ps_session_wait_or_forget (self->session, ticket, -1);
}

//  Whether a pull into view brought each tensor whole; PS_OK or PS_EPROTO
static int
s_view_tiles (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors, ps_view_t *view)
{
    size_t tensor;
    if (ps_view_tiles (view, tensors, ntensors, &tensor))
        return PS_OK;
    return ps_session_fail (self->session, PS_EPROTO,
                            "pull reply pieces of '%s' overlap or leave a gap",
                            tensor < ntensors ? tensors[tensor].key : "?");
}

int
ps_worker_pull_view (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                     ps_view_t *view)
{
    if (!view)
        return self ? ps_session_fail (self->session, PS_EINVAL, "no view given") : PS_EINVAL;
    ps_view_clear (view);
    ps_ticket_t ticket;
    int status = s_pull (self, tensors, ntensors, view, &ticket);
    if (status == PS_OK)
        status = ps_session_wait_or_forget (self->session, ticket, -1);
    if (status == PS_OK)
        status = s_view_tiles (self, tensors, ntensors, view);
    if (status)
        ps_view_clear (view);
    return status;
}

int
ps_worker_clock (ps_worker_t *self)
{
    ps_ticket_t ticket;
    int status = ps_worker_clock_async (self, &ticket);
    return status ? status : ps_session_wait_or_forget (self->session, ticket, -1);
}

static void
s_optim_to_wire (const ps_optim_settings_t *optim, Psmq__Optim *settings)
{
    psmq__optim__init (settings);
    settings->kind = (Psmq__OptimKind)optim->kind;
    settings->lr = optim->lr;
    settings->momentum = optim->momentum;
    settings->beta1 = optim->beta1;
    settings->beta2 = optim->beta2;
    settings->eps = optim->eps;
    settings->decay_steps = optim->decay_steps;
}

int
ps_worker_init (ps_worker_t *self, const char *key, size_t count, const float *initial,
                const ps_optim_settings_t *optim)
{
    return ps_worker_init_wire (self, key, count, initial, optim, PS_WIRE_F32);
}

//  Remember key's wire dtype after the brokers took it
static void
s_remember_wire (ps_worker_t *self, const char *key, ps_wire_dtype_t wire)
{
    if (wire == PS_WIRE_F32)
        zhashx_delete (self->wire, key);
    else
        zhashx_update (self->wire, key, (void *)(uintptr_t)(wire + 1));
}

int
ps_worker_init_wire (ps_worker_t *self, const char *key, size_t count, const float *initial,
                     const ps_optim_settings_t *optim, ps_wire_dtype_t wire)
{
    if (!self || !ps_dtype_known ((int)wire))
        return PS_EINVAL;
    ps_tensor_t tensor = {.key = key, .data = (float *)initial, .count = count};
    //  Without values only the sizes are sent
    int status = s_plan (self, &tensor, 1, initial != NULL);
    if (status)
        return status;
    ps_envelope_t request;
    ps_pending_t *pending;
    status = ps_session_request (self->session, PSMQ__MSG_TYPE__INIT, &request, &pending);
    if (status)
        return status;
    Psmq__Optim settings;
    if (optim)
        s_optim_to_wire (optim, &settings);
    request.optim = optim ? &settings : NULL;
    ps_ticket_t ticket = pending->seq;
    //  Each broker creates its part as a key of its own size
    for (uint32_t link = 0; link < self->nlinks && status == PS_OK; link++) {
        request.n_slices =
            initial ? ps_layout_chunks (self->layout, link) : ps_layout_sizes (self->layout, link);
        request.slices = ps_layout_slices (self->layout);
        for (size_t i = 0; i < request.n_slices; i++)
            request.slices[i]->dtype = (Psmq__DType)wire;
        if (request.n_slices)
            status = ps_session_send (self->session, link, pending, &request,
                                      initial ? ps_layout_sources (self->layout) : NULL, false);
    }
    if (status)
        return ps_session_abandon (self->session, ticket, status);
    status = ps_session_wait_or_forget (self->session, ticket, -1);
    if (status == PS_OK)
        s_remember_wire (self, key, wire);
    return status;
}

int
ps_worker_info_shard (ps_worker_t *self, uint32_t shard, char **json)
{
    return self && json ? ps_session_info (self->session, shard, json) : PS_EINVAL;
}

int
ps_worker_info (ps_worker_t *self, char **json)
{
    return ps_worker_info_shard (self, 0, json);
}

int
ps_worker_query_info (const char *broker, int timeout_ms, char **json)
{
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = broker;
    options.timeout_ms = timeout_ms;
    return ps_worker_query_info_options (&options, json);
}

int
ps_worker_query_info_options (const ps_worker_options_t *given, char **json)
{
    if (!given || !given->broker || !json)
        return PS_EINVAL;
    *json = NULL;
    if (strchr (given->broker, ','))
        return PS_EINVAL; //  one broker at a time
    //  An unregistered worker: INFO is the one request that needs no HELLO
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = given->broker;
    if (given->timeout_ms > 0)
        options.timeout_ms = given->timeout_ms;
    options.curve_secret = given->curve_secret;
    options.broker_key = given->broker_key;
    int status;
    ps_problem_t problem;
    ps_session_t *session = ps_session_new (&options, &status, &problem);
    if (!session) {
        if (given->log)
            given->log (given->log_arg, PS_WORKER_LOG_ERROR, problem.message);
        return status;
    }
    status = ps_session_info (session, 0, json);
    if (status != PS_OK && given->log)
        given->log (given->log_arg, PS_WORKER_LOG_ERROR, ps_session_error (session));
    ps_session_destroy (&session);
    return status;
}
