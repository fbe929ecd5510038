/*  =========================================================================
    ps_peers - the connections that registered (see ps_peers.h)

    A czmq hash keyed by the routing id in hex finds the connection of an
    incoming message; an array indexed by rank finds the connection that
    holds a rank (for heartbeats from another socket, aggregator reports
    and INFO). Both point at the same ps_peer_t, which the hash owns. A
    second hash, keyed by the file descriptor in decimal, finds the peer of
    a connection the socket monitor reports closed; it changes only when a
    peer's messages come on another connection, never per message.
    ========================================================================= */

#include "ps_peers.h"
#include "ps_random.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ps_peers_t {
    zhashx_t *by_id;     //  hex routing id -> ps_peer_t, owned
    zhashx_t *by_fd;     //  decimal fd -> ps_peer_t, borrowed from by_id
    ps_peer_t **by_rank; //  rank -> the connection holding it, or NULL
    bool *seen;          //  ranks that ever registered
    uint64_t *messages;  //  messages received per rank
    uint32_t world;      //  ranks
};

static void
s_peer_free (void **item_p)
{
    ps_peer_t *peer = *item_p;
    if (peer)
        ps_unsent_destroy (&peer->unsent);
    free (*item_p);
    *item_p = NULL;
}

static void
s_hex (const uint8_t *data, size_t size, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * size] = 0;
}

//  A session token proves a rank coming back (a HELLO for a live rank
//  must show its holder's): 64 bits from the kernel, never 0
static uint64_t
s_session (void)
{
    return ps_random_u64 ();
}

ps_peers_t *
ps_peers_new (uint32_t world)
{
    ps_peers_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->world = world;
    self->by_id = zhashx_new ();
    self->by_fd = zhashx_new ();
    self->by_rank = calloc (world, sizeof *self->by_rank);
    self->seen = calloc (world, sizeof *self->seen);
    self->messages = calloc (world, sizeof *self->messages);
    if (!self->by_id || !self->by_fd || !self->by_rank || !self->seen || !self->messages) {
        ps_peers_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->by_id, s_peer_free);
    return self;
}

void
ps_peers_destroy (ps_peers_t **self_p)
{
    assert (self_p);
    ps_peers_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->by_fd);
    zhashx_destroy (&self->by_id);
    free (self->by_rank);
    free (self->seen);
    free (self->messages);
    free (self);
    *self_p = NULL;
}

ps_peer_t *
ps_peers_lookup (ps_peers_t *self, const uint8_t *id, size_t id_size)
{
    assert (id_size <= PS_MAX_ROUTING_ID);
    char key[2 * PS_MAX_ROUTING_ID + 1];
    s_hex (id, id_size, key);
    return zhashx_lookup (self->by_id, key);
}

ps_peer_t *
ps_peers_of_rank (ps_peers_t *self, uint32_t rank)
{
    return rank < self->world ? self->by_rank[rank] : NULL;
}

ps_peer_t *
ps_peers_add (ps_peers_t *self, const uint8_t *id, size_t id_size, uint32_t rank, uint32_t weight)
{
    assert (id_size <= PS_MAX_ROUTING_ID);
    assert (weight >= 1 && rank < self->world && weight <= self->world - rank);
    ps_peer_t *peer = calloc (1, sizeof *peer);
    assert (peer);
    memcpy (peer->id, id, id_size);
    peer->id_size = id_size;
    s_hex (id, id_size, peer->key);
    peer->rank = rank;
    peer->weight = weight;
    peer->fd = -1;
    zhashx_insert (self->by_id, peer->key, peer);
    ps_peers_register (self, peer);
    return peer;
}

void
ps_peers_register (ps_peers_t *self, ps_peer_t *peer)
{
    peer->session = s_session ();
    peer->last_seen = zclock_mono ();
    //  A push in parts left unfinished by the registration before is over
    peer->part_open = false;
    peer->part_key[0] = 0;
    peer->part_credit = 0;
    peer->part_begun = false;
    for (uint32_t rank = peer->rank; rank < peer->rank + peer->weight; rank++) {
        self->by_rank[rank] = peer;
        self->seen[rank] = true;
    }
}

void
ps_peers_forget (ps_peers_t *self, ps_peer_t *peer)
{
    for (uint32_t rank = peer->rank; rank < peer->rank + peer->weight; rank++)
        if (self->by_rank[rank] == peer)
            self->by_rank[rank] = NULL;
    ps_peers_set_fd (self, peer, -1);
    zhashx_delete (self->by_id, peer->key);
}

void
ps_peers_heard (ps_peers_t *self, ps_peer_t *peer)
{
    peer->last_seen = zclock_mono ();
    self->messages[peer->rank]++;
}

void
ps_peers_heard_by_session (ps_peers_t *self, uint32_t rank, uint64_t session)
{
    ps_peer_t *holder = ps_peers_of_rank (self, rank);
    if (holder && session && holder->session == session)
        holder->last_seen = zclock_mono ();
}

void
ps_peers_set_fd (ps_peers_t *self, ps_peer_t *peer, int fd)
{
    if (peer->fd == fd)
        return;
    char key[16];
    if (peer->fd >= 0) {
        snprintf (key, sizeof key, "%d", peer->fd);
        if (zhashx_lookup (self->by_fd, key) == peer)
            zhashx_delete (self->by_fd, key);
    }
    peer->fd = fd;
    if (fd < 0)
        return;
    snprintf (key, sizeof key, "%d", fd);
    ps_peer_t *other = zhashx_lookup (self->by_fd, key);
    if (other)
        other->fd = -1;
    zhashx_update (self->by_fd, key, peer);
}

ps_peer_t *
ps_peers_of_fd (ps_peers_t *self, int fd)
{
    if (fd < 0)
        return NULL;
    char key[16];
    snprintf (key, sizeof key, "%d", fd);
    return zhashx_lookup (self->by_fd, key);
}

zlistx_t *
ps_peers_silent (ps_peers_t *self, uint32_t timeout_ms)
{
    int64_t now = zclock_mono ();
    zlistx_t *silent = zlistx_new ();
    assert (silent);
    for (ps_peer_t *peer = zhashx_first (self->by_id); peer; peer = zhashx_next (self->by_id))
        if (now - peer->last_seen > (int64_t)timeout_ms)
            zlistx_add_end (silent, peer);
    return silent;
}

uint32_t
ps_peers_seen (const ps_peers_t *self)
{
    uint32_t seen = 0;
    for (uint32_t rank = 0; rank < self->world; rank++)
        seen += self->seen[rank];
    return seen;
}

uint64_t
ps_peers_messages (const ps_peers_t *self, uint32_t rank)
{
    return rank < self->world ? self->messages[rank] : 0;
}
