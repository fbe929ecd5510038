/*  =========================================================================
    ps_heartbeat - the helper thread that keeps a worker registered

    A broker evicts a rank that has been silent past its timeout, and a
    worker may compute for minutes between two calls. ps_heartbeat_new
    starts a thread with a DEALER of its own per broker, which sends each
    broker a HEARTBEAT with the session its HELLO reply gave, every
    interval_ms, until ps_heartbeat_destroy.

    Threads: new and destroy are called by the thread that owns the
    worker. The helper shares nothing with it: it gets its own copies of
    the endpoints and of the encoded heartbeats before it starts, and an
    inproc PAIR pipe on which anything means stop.

    Ownership: ps_heartbeat_new copies what it is given; the context is
    borrowed and must outlive the heartbeat (destroy it before
    zmq_ctx_term). ps_heartbeat_destroy stops and joins the thread, frees
    everything and nulls the pointer.

    Failure: ps_heartbeat_new returns NULL with *status (PS_ENOMEM or
    PS_ECONNECT) and problem (code 0) filled in. A helper that cannot
    create its own sockets ends at once and sends nothing.
    ========================================================================= */

#ifndef PS_HEARTBEAT_H_INCLUDED
#define PS_HEARTBEAT_H_INCLUDED

#include "ps_link.h"
#include "ps_problem.h"

#include <stdint.h>

typedef struct ps_heartbeat_t ps_heartbeat_t;

//  Heartbeats for rank to nlinks brokers: endpoints[i] with sessions[i],
//  over CURVE when curve (may be NULL, copied) is on
ps_heartbeat_t *ps_heartbeat_new (void *context, uint32_t rank, int interval_ms, uint32_t nlinks,
                                  const char *const *endpoints, const uint64_t *sessions,
                                  const ps_link_curve_t *curve, int *status, ps_problem_t *problem);
void ps_heartbeat_destroy (ps_heartbeat_t **self_p);

#endif
