/*  =========================================================================
    ps_heartbeat - the helper thread that keeps a worker registered (see
    ps_heartbeat.h)

    A plain thread and an inproc PAIR pipe rather than a czmq actor: the
    library uses libzmq alone and its own context, whose termination waits
    for the helper's sockets to close. The heartbeats are encoded once,
    by the codec, before the thread starts; each beat sends a copy
    (zmq_msg_copy of a small message copies its few bytes, no allocation).
    The helper's own DEALERs are anonymous: a heartbeat names its rank and
    session, not the connection it comes on.
    ========================================================================= */

#include "ps_heartbeat.h"
#include "ps_codec.h"
#include "ps_worker.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ps_heartbeat_t {
    void *context;          //  the worker's, borrowed
    void *pipe;             //  our end of the stop pipe
    char pipe_endpoint[64]; //  its inproc address
    pthread_t thread;       //  the helper
    bool running;           //  to join it once
    uint32_t nlinks;        //  brokers
    char **endpoints;       //  theirs, copied
    zmq_msg_t *beats;       //  each one's encoded HEARTBEAT
    int interval_ms;        //  how often
    ps_link_curve_t curve;  //  keys, when on
};

static void *
s_heartbeat_main (void *arg)
{
    ps_heartbeat_t *self = arg;
    void *pipe = zmq_socket (self->context, ZMQ_PAIR);
    void **dealers = calloc (self->nlinks, sizeof *dealers);
    bool ready = pipe && dealers && zmq_connect (pipe, self->pipe_endpoint) == 0;
    int linger = 0;
    for (uint32_t i = 0; ready && i < self->nlinks; i++) {
        dealers[i] = zmq_socket (self->context, ZMQ_DEALER);
        if (!dealers[i]) {
            ready = false;
            break;
        }
        zmq_setsockopt (dealers[i], ZMQ_LINGER, &linger, sizeof linger);
        ps_link_curve_apply (&self->curve, dealers[i]);
        zmq_connect (dealers[i], self->endpoints[i]);
    }
    zmq_pollitem_t items[] = {{pipe, 0, ZMQ_POLLIN, 0}};
    while (ready) {
        int rc = zmq_poll (items, 1, self->interval_ms);
        if (rc == -1 && zmq_errno () != EINTR)
            break;
        if (rc > 0)
            break; //  anything on the pipe means stop
        for (uint32_t i = 0; i < self->nlinks; i++) {
            zmq_msg_t beat;
            zmq_msg_init (&beat);
            zmq_msg_copy (&beat, &self->beats[i]);
            if (zmq_msg_send (&beat, dealers[i], ZMQ_DONTWAIT) == -1)
                zmq_msg_close (&beat);
        }
    }
    for (uint32_t i = 0; dealers && i < self->nlinks; i++)
        if (dealers[i])
            zmq_close (dealers[i]);
    if (pipe)
        zmq_close (pipe);
    free (dealers);
    return NULL;
}

ps_heartbeat_t *
ps_heartbeat_new (void *context, uint32_t rank, int interval_ms, uint32_t nlinks,
                  const char *const *endpoints, const uint64_t *sessions,
                  const ps_link_curve_t *curve, int *status, ps_problem_t *problem)
{
    ps_heartbeat_t *self = calloc (1, sizeof *self);
    if (!self)
        goto out_of_memory;
    if (curve)
        self->curve = *curve;
    self->context = context;
    self->interval_ms = interval_ms;
    self->endpoints = calloc (nlinks, sizeof *self->endpoints);
    self->beats = calloc (nlinks, sizeof *self->beats);
    if (!self->endpoints || !self->beats)
        goto out_of_memory;
    for (; self->nlinks < nlinks; self->nlinks++) {
        uint32_t i = self->nlinks;
        self->endpoints[i] = strdup (endpoints[i]);
        if (!self->endpoints[i])
            goto out_of_memory;
        if (ps_codec_encode_heartbeat (rank, sessions[i], &self->beats[i])) {
            free (self->endpoints[i]);
            goto out_of_memory;
        }
    }
    snprintf (self->pipe_endpoint, sizeof self->pipe_endpoint, "inproc://psworker-heartbeat-%p",
              (void *)self);
    self->pipe = zmq_socket (context, ZMQ_PAIR);
    if (!self->pipe || zmq_bind (self->pipe, self->pipe_endpoint)) {
        ps_problem_set (problem, 0, "cannot create the heartbeat pipe: %s",
                        zmq_strerror (zmq_errno ()));
        *status = PS_ECONNECT;
        ps_heartbeat_destroy (&self);
        return NULL;
    }
    if (pthread_create (&self->thread, NULL, s_heartbeat_main, self)) {
        ps_problem_set (problem, 0, "cannot start the heartbeat thread");
        *status = PS_ENOMEM;
        ps_heartbeat_destroy (&self);
        return NULL;
    }
    self->running = true;
    *status = PS_OK;
    return self;

out_of_memory:
    ps_problem_set (problem, 0, "out of memory");
    *status = PS_ENOMEM;
    ps_heartbeat_destroy (&self);
    return NULL;
}

void
ps_heartbeat_destroy (ps_heartbeat_t **self_p)
{
    assert (self_p);
    ps_heartbeat_t *self = *self_p;
    if (!self)
        return;
    if (self->running) {
        zmq_send (self->pipe, "", 0, 0);
        pthread_join (self->thread, NULL);
    }
    if (self->pipe)
        zmq_close (self->pipe);
    for (uint32_t i = 0; i < self->nlinks; i++) {
        free (self->endpoints[i]);
        zmq_msg_close (&self->beats[i]);
    }
    free (self->endpoints);
    free (self->beats);
    explicit_bzero (&self->curve, sizeof self->curve);
    free (self);
    *self_p = NULL;
}
