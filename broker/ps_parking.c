/*  =========================================================================
    ps_parking - requests waiting for the bound or the aggregation thread
    (see ps_parking.h)

    A czmq list in arrival order: release walks it whole, which is cheap
    since each worker may park at most PS_MAX_PARKED_PER_PEER requests,
    and answering in arrival order keeps one worker's replies in the order
    it asked.
    ========================================================================= */

#include "ps_parking.h"
#include "ps.pb-c.h"

#include <assert.h>
#include <czmq.h>
#include <stdlib.h>

struct ps_parking_t {
    zlistx_t *parked; //  ps_parked_t, oldest first, owned
    uint64_t total;   //  requests parked ever
};

static void
s_parked_free (void **item_p)
{
    ps_parked_t *parked = *item_p;
    if (parked) {
        zmq_msg_close (&parked->envelope);
        free (parked);
        *item_p = NULL;
    }
}

ps_parking_t *
ps_parking_new (void)
{
    ps_parking_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->parked = zlistx_new ();
    if (!self->parked) {
        free (self);
        return NULL;
    }
    zlistx_set_destructor (self->parked, s_parked_free);
    return self;
}

void
ps_parking_destroy (ps_parking_t **self_p)
{
    assert (self_p);
    ps_parking_t *self = *self_p;
    if (!self)
        return;
    zlistx_destroy (&self->parked);
    free (self);
    *self_p = NULL;
}

bool
ps_parking_admits (const ps_vclock_t *vclock, const int64_t *ceilings, int type, uint32_t rank,
                   int64_t clock)
{
    if (ceilings && type == PSMQ__MSG_TYPE__PULL && clock > ceilings[rank])
        return false;
    return ps_vclock_admits (vclock, clock);
}

int
ps_parking_check_room (const ps_peer_t *peer, ps_problem_t *problem)
{
    if (peer->parked >= PS_MAX_PARKED_PER_PEER)
        return ps_problem_set (problem, PSMQ__ERR_CODE__ERR_FULL,
                               "worker %u already has %u requests waiting", peer->rank,
                               peer->parked);
    return 0;
}

void
ps_parking_add (ps_parking_t *self, const ps_vclock_t *vclock, const int64_t *ceilings,
                ps_peer_t *peer, int type, int64_t clock, uint64_t need_done, zmq_msg_t *envelope,
                int64_t received_us)
{
    ps_parked_t *parked = calloc (1, sizeof *parked);
    assert (parked);
    parked->peer = peer;
    parked->type = type;
    parked->clock = clock;
    parked->need_done = need_done;
    parked->min_clock = ps_vclock_min (vclock);
    parked->since = zclock_mono ();
    parked->received_us = received_us;
    parked->bound = !ps_parking_admits (vclock, ceilings, type, peer->rank, clock);
    parked->recount = !ps_vclock_admits (vclock, clock) && type == PSMQ__MSG_TYPE__PULL;
    zmq_msg_init (&parked->envelope);
    zmq_msg_move (&parked->envelope, envelope);
    zlistx_add_end (self->parked, parked);
    peer->parked++;
    self->total++;
}

void
ps_parking_release (ps_parking_t *self, const ps_vclock_t *vclock, const int64_t *ceilings,
                    uint64_t agg_sent, uint64_t agg_done, ps_parking_answer_fn *answer, void *arg)
{
    ps_parked_t *parked = zlistx_first (self->parked);
    while (parked) {
        void *handle = zlistx_cursor (self->parked);
        ps_parked_t *next = zlistx_next (self->parked);
        if (parked->recount && ps_vclock_admits (vclock, parked->clock)) {
            //  What let it pass (pushes, a FLUSH) was sent after it came
            parked->need_done = agg_sent;
            parked->min_clock = ps_vclock_min (vclock);
            parked->recount = false;
        }
        if (agg_done >= parked->need_done &&
            ps_parking_admits (vclock, ceilings, parked->type, parked->peer->rank, parked->clock)) {
            answer (arg, parked);
            parked->peer->parked--;
            zlistx_delete (self->parked, handle);
        }
        parked = next;
    }
}

void
ps_parking_drop_peer (ps_parking_t *self, ps_peer_t *peer)
{
    ps_parked_t *parked = zlistx_first (self->parked);
    while (parked) {
        void *handle = zlistx_cursor (self->parked);
        ps_parked_t *next = zlistx_next (self->parked);
        if (parked->peer == peer)
            zlistx_delete (self->parked, handle);
        parked = next;
    }
    peer->parked = 0;
}

void
ps_parking_drain (ps_parking_t *self, ps_parking_answer_fn *answer, void *arg)
{
    for (ps_parked_t *parked = zlistx_first (self->parked); parked;
         parked = zlistx_next (self->parked))
        answer (arg, parked);
    zlistx_purge (self->parked);
}

size_t
ps_parking_size (const ps_parking_t *self)
{
    return zlistx_size (self->parked);
}

uint64_t
ps_parking_total (const ps_parking_t *self)
{
    return self->total;
}

const ps_parked_t *
ps_parking_first (ps_parking_t *self)
{
    return zlistx_first (self->parked);
}

const ps_parked_t *
ps_parking_next (ps_parking_t *self)
{
    return zlistx_next (self->parked);
}
