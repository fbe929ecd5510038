/*  =========================================================================
    ps_router - the ROUTER loop's state, and what it does with a message

    One thread serves every worker through one ROUTER socket (ps_broker.c
    runs its poll loop). For each message ps_router_receive decodes and
    validates the envelope, then:
      HELLO      registers the connection as a rank and joins the clock,
                 once the worker's idea of the broker group matches ours
      INIT       goes to the aggregation thread, which answers
      PUSH       is checked against the published keys, acked at once and
                 handed (frames moved, not copied) to the aggregation thread
      PULL       is answered from the published versions, by reference
      CLOCK      advances the rank's clock; answered when the bound allows
      HEARTBEAT  keeps a rank alive (also from another socket, by session)
      BYE        leaves the job; INFO answers the broker's status as JSON
    A request that may not be answered yet is parked (ps_parking) and
    answered later from the loop: no thread ever blocks for a worker.

    This header is private to the broker. These files share ps_router_t,
    and all of them run on the loop's thread only:
      ps_broker.c             the loop, setup and teardown
      ps_router.c             a message received, decoded and dispatched;
                              INIT, PUSH, PULL, CLOCK, HEARTBEAT, INFO; the
                              aggregator's events; parked requests answered
      ps_membership.c         who is in the job: HELLO (the group and rank
                              checks, ranks taken back from an old
                              connection, a rollback asked, the reply),
                              BYE, the evictions (silence, no progress, a
                              closed connection) and the connection each
                              peer came on
      ps_replies.c            what goes back to workers
      ps_info.c               the INFO text
      ps_router_checkpoint.c  taking and restoring checkpoints, a group's
                              rollback
      ps_router_limits.c      unsent pull replies per connection, the
                              connection cap and idle unregistered ones
    The state each part works on lives in its own module: peers
    (ps_peers), parked requests (ps_parking), published versions
    (ps_published), the tap (ps_tap), clocks (ps_vclock), progress
    (ps_progress).

    Bad input never stops the loop: whatever cannot be parsed or breaks a
    rule is answered with an ERROR envelope naming the problem, counted
    and logged (at a bounded rate), and the loop goes on.
    ========================================================================= */

#ifndef PS_ROUTER_H_INCLUDED
#define PS_ROUTER_H_INCLUDED

#include "ps_aggregator.h"
#include "ps_auth.h"
#include "ps_broker.h"
#include "ps_checkpointer.h"
#include "ps_codec.h"
#include "ps_conns.h"
#include "ps_latency.h"
#include "ps_metrics.h"
#include "ps_parking.h"
#include "ps_peers.h"
#include "ps_progress.h"
#include "ps_published.h"
#include "ps_tap.h"
#include "ps_vclock.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

//  Frames we keep of one message: routing id, envelope, tensor frames
#define PS_ROUTER_MAX_FRAMES (PS_MAX_SLICES + 2)
//  Error codes counted apart (ERR_NONE's place counts any code past them)
#define PS_ROUTER_ERR_CODES (PSMQ__ERR_CODE__ERR_NONFINITE + 1)

typedef struct {
    uint64_t in[PSMQ__MSG_TYPE__ERROR + 1];             //  messages received by type
    uint64_t out[PSMQ__MSG_TYPE__ERROR + 1];            //  replies sent by type
    uint64_t bytes_in;                                  //  tensor bytes received
    uint64_t bytes_out;                                 //  tensor bytes sent
    uint64_t bytes_in_type[PSMQ__MSG_TYPE__ERROR + 1];  //  tensor bytes in by type
    uint64_t bytes_out_type[PSMQ__MSG_TYPE__ERROR + 1]; //  tensor bytes out by type
    uint64_t rejected;                                  //  requests answered with ERROR
    uint64_t rejected_code[PS_ROUTER_ERR_CODES];        //  those by error code (and
                                                        //  pushes refused after their ack)
    uint64_t evicted;                                   //  connections evicted: silent, closed
                                                        //  or not making progress
    uint64_t evicted_silent;                            //  of those: silent
    uint64_t evicted_closed;                            //  connection closed
    uint64_t evicted_hung;                              //  no progress
    uint64_t steps;                                     //  optimizer steps (from the aggregator)
    uint64_t pending;                                   //  gradients in BSP accumulators
    uint64_t nonfinite;                                 //  pushes refused for NaN or Inf
} ps_router_stats_t;

typedef struct {
    ps_broker_config_t config; //  as given, endpoint excepted
    zsock_t *pipe;             //  to our owner
    zsock_t *router;           //  the workers' socket
    void *router_handle;       //  its raw handle
    zactor_t *aggregator;      //  the aggregation thread
    void *agg_handle;          //  its pipe's raw handle
    ps_codec_t *codec;         //  decodes incoming envelopes
    ps_codec_t *parked_codec;  //  decodes parked ones, so that releasing
                               //  them never clobbers the request at hand
    ps_vclock_t *vclock;       //  every rank's clock
    ps_peers_t *peers;         //  registered connections and their ranks
    ps_progress_t *progress;   //  when each rank last made progress
    ps_parking_t *parking;     //  requests waiting to be answered
    ps_published_t *published; //  versions pulls are answered from
    uint64_t agg_sent;         //  commands sent to the aggregator
    uint64_t agg_done;         //  commands it has finished
    uint64_t router_sent;      //  messages begun on the ROUTER socket
    zmq_msg_t *frames;         //  the message being handled
    size_t nframes;            //  frames in it
    int fd;                    //  the connection it came on (ZMQ_SRCFD), -1 unknown
    bool fd_closed;            //  that connection had closed when it was read
    ps_agg_entry_t *plan;      //  the plan being drawn for the aggregator
    size_t plan_capacity;      //  entries allocated
    char bound[256];           //  endpoint with the port
    int64_t started;           //  monotonic ms at start
    int64_t next_check;        //  when to look for silent peers
    int64_t reject_window;     //  second of the reject log limiter
    uint32_t reject_logged;    //  lines logged in that second
    ps_router_stats_t stats;   //  counters for INFO and the summary
    ps_tap_t *tap;             //  the tap, NULL when off
    zsock_t *monitor;          //  the ROUTER's connection events, NULL if none
    int monitor_fd;            //  its ZMQ_FD, read once (ps_poll_signalled)
    zhashx_t *connections;     //  fd -> remote address of the open connections
    bool tap_on;               //  somebody listens: build records
    ps_tap_timing_t timing;    //  of the message at hand (tap on)
    char **group;              //  the group's endpoints as the first worker
                               //  named them (for tools), NULL until then
    uint64_t incarnation;      //  random id of this broker process (HELLO)
    bool terminated;           //  owner asked us to stop

    //  Checkpoints (ps_router_checkpoint.c)
    ps_checkpointer_t *checkpointer;    //  NULL without a directory
    int restore_status;                 //  the aggregator's answer to RESTORE
    char restore_why[PS_MAX_ERROR_LEN]; //  why it failed

    //  Limits (ps_router_limits.c)
    ps_conns_t *conns;        //  open connections: accepted, last message
    uint64_t max_connections; //  the cap in force
    uint64_t fd_limit;        //  soft limit on descriptors at start, 0 none
    uint64_t store_bytes;     //  the store holds (the aggregator's DONE)
    uint64_t unread_refused;  //  PULLs refused for unsent replies
    uint64_t shed_over_cap;   //  connections shut over the cap
    uint64_t shed_idle;       //  unregistered ones shut for idling
    int64_t shed_window;      //  second of the shed log limiter
    uint32_t shed_logged;     //  lines logged in that second
    bool cap_warned;          //  warned that only registered ones are left
    ps_unsent_t *info_unsent; //  INFO replies not yet sent, all connections
    uint64_t info_refused;    //  INFOs refused for them
    uint64_t push_refused;    //  PUSHes refused for pushes still waiting
    uint64_t push_budget;     //  bytes of pushes the aggregator may have
                              //  waiting before we stop reading
    uint64_t push_forwarded;  //  push bytes handed to it, ever
    uint64_t push_applied;    //  of those, the ones it has done (DONE)
    uint64_t push_grants;     //  parts of pushes in parts granted
    uint64_t push_withheld;   //  times a grant waited for the budget
    uint32_t grant_cursor;    //  the rank the next grant pass starts at
    bool parts_open;          //  a push in parts may be open: set when one
                              //  opens, cleared by a grant pass that
                              //  finds none (so a DONE skips the pass)
    //  The aggregator's PUBLISHes handled: it reads them (ps_aggregator.h)
    _Atomic uint64_t publishes_taken;
    //  Authentication (ps_auth.h)
    ps_auth_t *auth; //  who may connect; refusals counted
    //  Metrics (ps_metrics.h), both NULL when not served
    ps_metrics_t *metrics; //  the HTTP server, asking us for snapshots
    ps_latency_t *latency; //  request latency histograms
} ps_router_t;

//  Brokers in the group, 1 when there is none
uint32_t ps_router_shards (const ps_router_t *self);
//  A random id for this broker process (never 0, never old): drawn at
//  start and at every rollback, so that workers tell the two apart
uint64_t ps_router_new_incarnation (uint64_t old);
//  Handle one message waiting on the ROUTER socket
void ps_router_receive (ps_router_t *self);
//  Grant the next part of pushes in parts to the connections owed one,
//  while the pushes handed to the aggregator and not yet applied are below
//  the push budget; round robin (ps_router_limits.c)
void ps_router_grant_parts (ps_router_t *self);
//  Handle one message waiting on the aggregator's pipe
void ps_router_agg_receive (ps_router_t *self);
//  The slowest clock may have moved from old_min: flush BSP accumulators,
//  cut a checkpoint when one is due, release waiters
void ps_router_clock_moved (ps_router_t *self, int64_t old_min);
//  Answer every parked request the rule (ps_parking.h) now releases
void ps_router_release (ps_router_t *self);
//  Membership (ps_membership.c). A HELLO: checked, a rollback done when
//  it asks this process for one, its ranks registered and joined, answered
void ps_router_hello (ps_router_t *self, const uint8_t *id, size_t id_size, ps_envelope_t *request);
//  A BYE from peer: answered, then its ranks leave
void ps_router_bye (ps_router_t *self, ps_peer_t *peer, const ps_envelope_t *request);
//  The message at hand came from peer: note the connection it came on
//  (self->fd) when it is new for peer, and whether that connection had
//  closed already (self->fd_closed)
void ps_router_note_fd (ps_router_t *self, ps_peer_t *peer);
//  Evict the ranks silent for longer than the timeout
void ps_router_evict_silent (ps_router_t *self);
//  Evict the ranks that hold others back without making progress for
//  longer than the progress deadline (ps_progress)
void ps_router_evict_hung (ps_router_t *self);
//  The socket monitor says: a connection was accepted on fd (any peer still
//  noted on fd was on an older connection), or fd's connection closed (the
//  peer whose messages last came on it is evicted)
void ps_router_connection_opened (ps_router_t *self, int fd);
void ps_router_connection_closed (ps_router_t *self, int fd);
//  Stop cleanly: parked requests get ERR_SHUTDOWN, and the aggregator's
//  answers to everything sent are read so no reference leaks
void ps_router_shutdown (ps_router_t *self);
//  Checkpoints (ps_router_checkpoint.c), all no-ops without a directory.
//  Make the checkpointer and restore the newest checkpoint: the vector
//  clock here, the store through the aggregator (waited for, its keys
//  published before this returns). 0, or -1 with problem
int ps_router_checkpoint_setup (ps_router_t *self, ps_problem_t *problem);
//  Cut a checkpoint when one is due
void ps_router_checkpoint_tick (ps_router_t *self);
//  How long the loop may sleep for the checkpoint timer: at most wait ms
int64_t ps_router_checkpoint_wait (ps_router_t *self, int64_t wait);
//  The writer's pipe is readable: a write ended
void ps_router_checkpoint_written (ps_router_t *self);
//  The aggregator's SNAPSHOT or RESTORED event, and its why frame
void ps_router_checkpoint_event (ps_router_t *self, const ps_agg_command_t *event, zmq_msg_t *why);
//  The broker stops: a last checkpoint, written before this returns (or
//  given up after PS_CHECKPOINT_FINAL_WAIT_MS, logged); none in a group
void ps_router_checkpoint_final (ps_router_t *self);
//  A group's rollback (a HELLO's rollback_to): go back to this broker's
//  checkpoint of job clock clock (clock 0 without one: an empty store),
//  forgetting every connection, as ps_router_checkpoint.c says. 0, or -1
//  with problem (ERR_GROUP: no checkpoint of that clock, or none at all;
//  nothing changed then)
int ps_router_rollback (ps_router_t *self, int64_t clock, ps_problem_t *problem);
//  Limits (ps_router_limits.c). Setup: the connection cap from the
//  configuration or the descriptor limit; 0, or -1 out of memory
int ps_router_limits_setup (ps_router_t *self, ps_problem_t *problem);
void ps_router_limits_teardown (ps_router_t *self);
//  The monitor says fd was accepted (connections over the cap are shed
//  then) or closed
void ps_router_limits_opened (ps_router_t *self, int fd);
void ps_router_limits_closed (ps_router_t *self, int fd);
//  The message just handled came on self->fd
void ps_router_limits_heard (ps_router_t *self);
//  Shed unregistered connections idle past their bound; from the loop's
//  periodic check
void ps_router_limits_tick (ps_router_t *self);
//  May peer be sent a pull reply now? 0 with *unsent its counter (made
//  here at its first pull), or -1 with ERR_FULL in problem when its
//  replies still unsent hold the limit already (counted)
int ps_router_limits_pull (ps_router_t *self, ps_peer_t *peer, ps_unsent_t **unsent,
                           ps_problem_t *problem);
//  May an INFO be answered now? 0, or -1 with ERR_FULL in problem when
//  the INFO replies not yet sent hold PS_MAX_UNREAD_INFO (counted)
int ps_router_limits_info_room (ps_router_t *self, ps_problem_t *problem);
//  Send reply (an INFO reply) to id, counted against that limit (and
//  tapped and counted as ps_router_send does)
void ps_router_limits_send_info (ps_router_t *self, const uint8_t *id, size_t id_size,
                                 const ps_envelope_t *reply);
//  May peer's push at hand go to the aggregation thread? 0 (its bytes
//  counted), or -1 with ERR_FULL in problem when peer's pushes it has
//  not finished hold the limit of --max-unread already (counted)
int ps_router_limits_push (ps_router_t *self, ps_peer_t *peer, ps_problem_t *problem);
//  INFO's "limits" object: each limit, its use, what it refused
json_t *ps_router_limits_info (ps_router_t *self);
//  Replies (ps_replies.c): each is counted and tapped. Send the routing
//  id frame of a message to the peer at id
void ps_router_send_routing_id (ps_router_t *self, const uint8_t *id, size_t id_size);
//  Encode and send envelope and its frames (consumed), without accounting
void ps_router_send_raw (ps_router_t *self, const uint8_t *id, size_t id_size,
                         const ps_envelope_t *envelope, zmq_msg_t *frames, size_t nframes);
//  Send envelope and its frames (consumed), counted and tapped
void ps_router_send (ps_router_t *self, const uint8_t *id, size_t id_size,
                     const ps_envelope_t *envelope, zmq_msg_t *frames, size_t nframes);
//  The plain reply to request: its clock field and the slowest clock
void ps_router_reply (ps_router_t *self, const uint8_t *id, size_t id_size,
                      const ps_envelope_t *request, int64_t clock);
//  Refuse request (NULL when it did not parse) with problem: an ERROR
//  envelope, counted, tapped and logged at a bounded rate
void ps_router_reject (ps_router_t *self, const uint8_t *id, size_t id_size,
                       const ps_envelope_t *request, const ps_problem_t *problem);
//  A tap record of a message as received (TAP_REQUEST) or sent (TAP_REPLY,
//  with the timing of the message at hand)
void ps_router_tap_message (ps_router_t *self, int kind, const uint8_t *id, size_t id_size,
                            const ps_envelope_t *envelope, zmq_msg_t *frames, size_t nframes);
//  A reply of type goes out to the request at hand: its time in the broker
//  (self->timing) into the latency histograms, when metrics are served
void ps_router_observe_reply (ps_router_t *self, int type);
//  A tap event: connections, evictions, clock movements, refused pushes
void ps_router_tap_event (ps_router_t *self, int kind, int64_t worker, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

#endif
