/*  =========================================================================
    ps_tappair - replies paired with the requests they answer

    A request is remembered under "shard/peer/seq" until its reply (or its
    rejection) comes, in a czmq hash table. Keyed on the shard as well as
    the peer and seq, because a worker of a group sends the same seq to
    every broker, and two brokers may give two connections the same
    routing id. Rejected: keying on the peer and seq alone (two ROUTERs
    may hand out the same routing id), and on the worker (a HELLO request
    has none yet, its reply has one). When the table is full it is
    emptied and the loss counted rather than grown: requests that are
    never answered (a worker that died) must not grow it without bound.
    ========================================================================= */

#include "ps_tappair.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>

//  A request waiting for its reply
typedef struct {
    uint64_t time_us; //  when the broker received it
    int64_t worker;   //  its rank, -1 if not known
} s_pending_t;

struct ps_tappair_t {
    zhashx_t *table;    //  "shard/peer/seq" -> s_pending_t
    size_t max_pending; //  the table is emptied when it reaches this
    uint64_t forgotten; //  requests dropped when the table was full
};

static void
s_pending_free (void **item)
{
    free (*item);
    *item = NULL;
}

ps_tappair_t *
ps_tappair_new (size_t max_pending)
{
    assert (max_pending > 0);
    ps_tappair_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->table = zhashx_new ();
    if (!self->table) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->table, s_pending_free);
    self->max_pending = max_pending;
    return self;
}

void
ps_tappair_destroy (ps_tappair_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zhashx_destroy (&(*self_p)->table);
        free (*self_p);
        *self_p = NULL;
    }
}

//  A connection numbers its requests, so (peer, seq) names one at one
//  broker; not the worker, which a HELLO request does not have yet and its
//  reply does. A worker of a group sends the same seq to every broker, and
//  two brokers may give two connections the same routing id: the shard is
//  part of the name.
static void
s_pair_key (const ps_tap_record_t *record, char *key, size_t size)
{
    snprintf (key, size, "%u/%s/%llu", record->shard, record->peer,
              (unsigned long long)record->seq);
}

bool
ps_tappair_update (ps_tappair_t *self, const ps_tap_record_t *record, uint64_t *request_us)
{
    assert (self);
    assert (record);
    assert (request_us);
    char key[128];
    s_pair_key (record, key, sizeof key);
    if (record->kind == PSMQ__TAP_KIND__TAP_REQUEST &&
        record->type != PSMQ__MSG_TYPE__HEARTBEAT) { //  heartbeats get no reply
        if (zhashx_size (self->table) >= self->max_pending) {
            self->forgotten += zhashx_size (self->table);
            zhashx_purge (self->table);
        }
        s_pending_t *pending = malloc (sizeof *pending);
        if (pending) {
            *pending = (s_pending_t){record->time_us, record->worker};
            zhashx_update (self->table, key, pending);
        }
        return false;
    }
    if (record->kind != PSMQ__TAP_KIND__TAP_REPLY && record->kind != PSMQ__TAP_KIND__TAP_REJECT)
        return false;
    s_pending_t *pending = zhashx_lookup (self->table, key);
    if (!pending)
        return false;
    *request_us = pending->time_us;
    zhashx_delete (self->table, key);
    return true;
}

void
ps_tappair_pending (ps_tappair_t *self, uint64_t *pending, size_t nworkers)
{
    assert (self);
    assert (pending || nworkers == 0);
    for (s_pending_t *item = zhashx_first (self->table); item; item = zhashx_next (self->table))
        if (item->worker >= 0 && (uint64_t)item->worker < nworkers)
            pending[item->worker]++;
}

uint64_t
ps_tappair_forgotten (const ps_tappair_t *self)
{
    assert (self);
    return self->forgotten;
}
