/*  =========================================================================
    ps_group - the brokers of a worker's group, and what each has said

    The worker's connections: a ZeroMQ context of its own, the frame pool
    its links copy outgoing tensor data into, one link (ps_link) per broker
    of the endpoint list in shard order, all with one routing id, and the
    heartbeat thread once the worker has joined. Per broker, a member
    record keeps what its HELLO reply said (session, incarnation) and what
    its replies since said (the slowest live clock, "not registered").
    Across the brokers, the group checks that their HELLO replies describe
    one job: one staleness, and decides the clock to start from (or to
    start again from, after a broker restarted: ps_group_hello_clock,
    which may first ask members to roll back to the clock of a member
    that restarted from an older checkpoint).

    Threads: the thread that owns the worker. libzmq's threads release
    pooled and lent frames on their own (see ps_framepool.h, ps_link.h);
    the heartbeat thread shares nothing with this one (ps_heartbeat.h).

    Ownership: the group owns the context, the pool, the links and the
    heartbeat. ps_group_destroy stops the heartbeat, closes the links,
    terminates the context (which waits for libzmq to release every
    frame) and only then frees the pool; it nulls the pointer. Member
    records and links it returns live as long as the group.

    Failure: functions that return int return PS_OK or a ps_status_t of
    ps_worker.h, with problem (when not NULL) filled in, code 0.
    ========================================================================= */

#ifndef PS_GROUP_H_INCLUDED
#define PS_GROUP_H_INCLUDED

#include "ps_codec.h"
#include "ps_link.h"

#include <stdbool.h>
#include <stdint.h>

//  What one broker has said; the worker reads and writes it
typedef struct {
    uint64_t session;                      //  token its last HELLO reply gave: for heartbeats,
                                           //  and shown in every later HELLO to it
    int64_t min_clock;                     //  slowest live clock in its last reply
    bool registered;                       //  its HELLO was accepted: say BYE on close
    uint64_t incarnation;                  //  the broker process its HELLO reached
    bool forgotten;                        //  it answered "not registered": restarted?
    bool lost;                             //  the connection its HELLO went over was lost
                                           //  since: the broker may have forgotten us
    bool welcomed;                         //  its HELLO reply of this attempt came
    int64_t hello_clock;                   //  the clock that reply gave
    uint64_t known;                        //  the incarnation before a rejoin, to tell a
                                           //  restart from an eviction
    uint64_t roll_of;                      //  its next HELLO asks this incarnation to roll
                                           //  back (0: a plain HELLO) ...
    int64_t roll_to;                       //  ... to its checkpoint of this clock
    bool rolled;                           //  it was asked to roll back in this rejoin
    int64_t held[PS_MAX_HELD_CHECKPOINTS]; //  the checkpoint clocks that
                                           //  reply named, newest first
    uint32_t nheld;                        //  how many
    uint32_t rank;                         //  the first rank its last HELLO reply named
                                           //  (the one it gave, to a worker that asked
                                           //  for any) ...
    uint32_t world;                        //  ... and the world it named
} ps_member_t;

typedef struct ps_group_t ps_group_t;

//  A link to each broker of list ("a,b,c", at most PS_MAX_SHARDS), sending
//  with send_timeout_ms, its connection given up after heartbeat_timeout_ms
//  of silence (see ps_link.h); CURVE clients when curve_secret (this
//  client's secret key file) and broker_key (the broker's public key file
//  or text) are given, see ps_link_curve_load. NULL with *status
//  (PS_EINVAL for a bad list or key, PS_ENOMEM, PS_ECONNECT) and problem
//  filled in.
ps_group_t *ps_group_new (const char *list, int send_timeout_ms, int heartbeat_timeout_ms,
                          const char *curve_secret, const char *broker_key, int *status,
                          ps_problem_t *problem);
void ps_group_destroy (ps_group_t **self_p);

//  Brokers in the group
uint32_t ps_group_size (const ps_group_t *self);
ps_link_t *ps_group_link (ps_group_t *self, uint32_t member);
ps_member_t *ps_group_member (ps_group_t *self, uint32_t member);
const char *ps_group_endpoint (const ps_group_t *self, uint32_t member);

//  Wait up to timeout_ms for a message or a connection event on any link:
//  PS_OK when one or more have one (ps_group_ready and ps_group_event say
//  which), PS_ETIMEOUT, PS_EINTR, PS_ECONNECT (a link without a socket, or
//  a failed poll)
int ps_group_poll (ps_group_t *self, int timeout_ms, ps_problem_t *problem);
bool ps_group_ready (const ps_group_t *self, uint32_t member);
bool ps_group_event (const ps_group_t *self, uint32_t member);

//  The least of the members' min_clock
int64_t ps_group_min_clock (const ps_group_t *self);

//  Connect the disconnected links again. PS_OK, or PS_ECONNECT when one
//  could not be (it stays without a socket).
int ps_group_reconnect (ps_group_t *self, ps_problem_t *problem);

//  Forget what the HELLO replies of an earlier attempt said (no member is
//  welcomed, none asked to roll back). rejoin: the attempt registers
//  again with brokers that knew us, each member's incarnation is kept to
//  compare with the new one.
void ps_group_hello_reset (ps_group_t *self, bool rejoin);
//  Take member's HELLO reply: its session, incarnation and clock, and
//  whether it runs the job the others do. PS_OK; PS_EPROTO for a reply
//  without its settings; PS_EGROUP when its staleness differs from
//  another's.
int ps_group_take_hello (ps_group_t *self, uint32_t member, const ps_envelope_t *reply,
                         ps_problem_t *problem);
//  What the HELLO replies said: the job's staleness
int32_t ps_group_staleness (const ps_group_t *self);
//  The clock the welcomed members' HELLO replies give the worker, the one
//  place that decides. PS_OK with *clock when they name one and, when
//  rejoin, no member kept parameters of a time the others lost. After a
//  restart (rejoin, and some member's incarnation changed), C is the
//  newest clock every member holds a checkpoint of (the clocks each reply
//  named; a member naming none holds clock 0, the empty store): the
//  restarted member's own clock, or an older one when another member
//  lacks it. When a member names another clock than C, or kept its
//  incarnation (its store may hold pushes of clock C and later, which the
//  workers are about to redo), PS_OK with *rollback: those members are
//  marked (roll_to C, roll_of the incarnation their reply named) and no
//  longer welcomed, for ps_session_hello to ask them to roll back to
//  their checkpoint of clock C (the restarted member too, when C is older
//  than the one it restored); then decide again. PS_EGROUP, naming every
//  member's clocks, when they hold none in common. Otherwise, when the
//  members name different clocks, PS_EGROUP with problem saying which,
//  and *again when a new attempt (BYE, then HELLO) may settle it: at a
//  first join, or when no member restarted, the others' CLOCK may have
//  been between two brokers.
int ps_group_hello_clock (ps_group_t *self, bool rejoin, int64_t *clock, bool *again,
                          bool *rollback, ps_problem_t *problem);
//  After a round of rollback HELLOs failed: whether some member asked to
//  roll back did not welcome us (it refused), with *clock the clock it was
//  asked to go back to; those are to be sent a plain HELLO next, for the
//  clocks they hold now
bool ps_group_rollback_refused (ps_group_t *self, int64_t *clock);
//  Whether member's broker is another process than before the rejoin
bool ps_group_restarted (const ps_group_t *self, uint32_t member);

//  Start heartbeats for rank to every broker, with the sessions and the
//  shortest interval the HELLO replies gave (stopping those of an earlier
//  HELLO). PS_OK, or the status of ps_heartbeat_new.
int ps_group_heartbeat_start (ps_group_t *self, uint32_t rank, ps_problem_t *problem);
//  Stop sending heartbeats (their sessions are stale)
void ps_group_heartbeat_stop (ps_group_t *self);

#endif
