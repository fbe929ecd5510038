/*  =========================================================================
    ps_peers - the connections that registered, and the rank each stands for

    Owns every ps_peer_t (one per registered connection, keyed by its
    ZeroMQ routing id) and the map from rank to the connection that holds
    it, plus what INFO reports per rank across reconnects (ever seen,
    messages received). A connection may stand for several consecutive
    ranks (local aggregation: rank .. rank + weight - 1). Each knows the
    file descriptor its messages last came on (libzmq's ZMQ_SRCFD, the
    number its socket monitor names connections by), and the table finds
    a peer by it: when that connection closes, the peer is gone.

    Only the ROUTER loop's thread may call this module. ps_peer_t is an
    open struct because the loop reads and updates its fields on every
    message; the table owns it, and a pointer is valid until
    ps_peers_forget (or ps_peers_destroy) frees it.
    ========================================================================= */

#ifndef PS_PEERS_H_INCLUDED
#define PS_PEERS_H_INCLUDED

#include "ps_limits.h"
#include "ps_unsent.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Routing ids are at most 255 bytes in libzmq
#define PS_MAX_ROUTING_ID 256

typedef struct {
    char key[2 * PS_MAX_ROUTING_ID + 1]; //  hex routing id, the table key
    uint8_t id[PS_MAX_ROUTING_ID];       //  routing id to address replies to
    size_t id_size;                      //  its length
    uint32_t rank;                       //  first rank it registered as
    uint32_t weight;                     //  ranks it stands for: rank .. rank+weight-1
    uint64_t session;                    //  token for heartbeats from elsewhere
    int64_t last_seen;                   //  monotonic ms of its last message
    uint32_t parked;                     //  requests it has parked now
    uint64_t pushes_sent;                //  aggregator commands sent up to its
                                         //  last push (its CLOCK waits for them)
    bool faulted;                        //  the aggregator refused one of its pushes
    char fault[PS_MAX_ERROR_LEN];        //  why; its next CLOCK is answered so
    int fault_code;                      //  with this code (ERR_NONFINITE, ERR_FULL)
    int fd;                              //  connection its messages last came
                                         //  on, -1 unknown (ps_peers_set_fd)
    ps_unsent_t *unsent;                 //  its pull replies not yet sent (made
                                         //  at its first pull), our reference
    uint64_t pushing;                    //  bytes of its pushes up to pushes_sent
                                         //  (ps_router_limits_push)
    //  A push in parts (PROTOCOL.md) whose last part has not come yet
    bool part_open;                    //  one is under way
    bool part_refused;                 //  a part was refused (answered):
                                       //  its later parts are dropped
    uint64_t part_seq;                 //  its seq
    char part_key[PS_MAX_KEY_LEN + 1]; //  the key its last part left
                                       //  unfinished, "" when none
    uint64_t part_next;                //  where that key goes on
    uint64_t part_size;                //  that key's size
    int64_t part_heard;                //  monotonic ms of its ask or last part
    uint32_t part_credit;              //  grants sent for parts not come yet
    int64_t part_granted;              //  monotonic ms of its last grant
    bool part_begun;                   //  a part of it went to the aggregator
} ps_peer_t;

typedef struct ps_peers_t ps_peers_t;

//  A table for ranks 0 .. world-1; NULL when out of memory
ps_peers_t *ps_peers_new (uint32_t world);
void ps_peers_destroy (ps_peers_t **self_p);

//  The connection with this routing id, NULL when it never registered
ps_peer_t *ps_peers_lookup (ps_peers_t *self, const uint8_t *id, size_t id_size);
//  The connection holding rank now, NULL when none does (rank < world)
ps_peer_t *ps_peers_of_rank (ps_peers_t *self, uint32_t rank);
//  Register the connection id as ranks rank .. rank+weight-1 (which the
//  caller has freed of other holders), with a new session token
ps_peer_t *ps_peers_add (ps_peers_t *self, const uint8_t *id, size_t id_size, uint32_t rank,
                         uint32_t weight);
//  Give peer a new session token and point its ranks at it
void ps_peers_register (ps_peers_t *self, ps_peer_t *peer);
//  Free a connection; its ranks are held by nobody after
void ps_peers_forget (ps_peers_t *self, ps_peer_t *peer);
//  A message came from peer now: it lives, its ranks count one more
void ps_peers_heard (ps_peers_t *self, ps_peer_t *peer);
//  A heartbeat from another socket: the holder of rank, if session is its
//  token, is alive
void ps_peers_heard_by_session (ps_peers_t *self, uint32_t rank, uint64_t session);
//  peer's messages now come on the connection with file descriptor fd
//  (-1: unknown); another peer noted on fd loses it, since a descriptor
//  names one connection at a time
void ps_peers_set_fd (ps_peers_t *self, ps_peer_t *peer, int fd);
//  The peer whose messages last came on fd, NULL when none
ps_peer_t *ps_peers_of_fd (ps_peers_t *self, int fd);
//  The connections silent for longer than timeout_ms, into a new list
//  the caller destroys (its items stay the table's)
zlistx_t *ps_peers_silent (ps_peers_t *self, uint32_t timeout_ms);

//  For INFO: ranks that ever registered, messages received per rank
uint32_t ps_peers_seen (const ps_peers_t *self);
uint64_t ps_peers_messages (const ps_peers_t *self, uint32_t rank);

#endif
