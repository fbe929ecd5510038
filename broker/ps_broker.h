/*  =========================================================================
    ps_broker - the parameter server: a ROUTER loop and an aggregation
    thread, started and stopped as one object

    ps_broker_new binds the ROUTER socket and starts two threads: the ROUTER
    loop (peers, the vector clock, requests parked on the staleness bound,
    the published parameter versions) and the aggregation thread (the
    parameter store, see ps_aggregator.h). They share no mutable state and
    talk over an inproc pipe. With config.metrics an HTTP server on a
    thread of its own serves Prometheus metrics, asking the ROUTER loop
    for each snapshot over a pipe (ps_metrics.h). psbroker is a thin main
    around this object, and tests start brokers in-process with it.

    The calling thread owns the ps_broker_t; ps_broker_destroy stops both
    threads (parked requests are answered with ERR_SHUTDOWN) and frees all.
    With a checkpoint directory, ps_broker_new restores the newest
    checkpoint there before it returns, and ps_broker_destroy takes a last
    one and waits for it to be written (at most PS_CHECKPOINT_FINAL_WAIT_MS).
    ========================================================================= */

#ifndef PS_BROKER_H_INCLUDED
#define PS_BROKER_H_INCLUDED

#include "ps_optim.h"
#include "ps_progress.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *endpoint;     //  where to bind, e.g. "tcp://*:5555"; a port of
                              //  * or 0 lets the kernel choose a free one
    uint32_t workers;         //  world size: ranks 0 .. workers-1
    int32_t staleness;        //  0 BSP, N SSP, -1 ASP
    ps_optim_config_t optim;  //  defaults for keys whose INIT names none
    uint32_t heartbeat_ms;    //  interval workers are told to heartbeat at
                              //  (and libzmq pings their connections at)
    uint32_t timeout_ms;      //  silence after which a worker is evicted
                              //  (also libzmq's heartbeat timeout: a
                              //  connection that answers no ping is closed)
    int64_t progress_ms;      //  evict a rank that holds others back without
                              //  advancing its clock this long: 0 never,
                              //  PS_PROGRESS_AUTO (-1, the default): the
                              //  larger of progress_min_ms and 10 x the
                              //  longest clock of the job so far
    int64_t progress_min_ms;  //  that automatic deadline's floor
    bool tap;                 //  publish tap records (see ps_tap.h)
    const char *tap_endpoint; //  where; NULL: a private ipc:// endpoint
                              //  named after the port and the pid
    bool tap_payload;         //  mirror tensor frames to payload readers
    uint32_t shard;           //  this broker's place in its group, 0 .. shards-1
    uint32_t shards;          //  brokers in the group (0 or 1: no group); a
                              //  worker must name the same place and size
    bool accept_nonfinite;    //  apply gradients holding NaN or Inf; by
                              //  default such a push is not applied and
                              //  its worker's next CLOCK gets ERR_NONFINITE

    //  Checkpoints (see ps_checkpointer.h)
    const char *checkpoint_dir; //  write them here, and restore the newest
                                //  at start; NULL: none. Borrowed until
                                //  ps_broker_new returns
    double checkpoint_seconds;  //  > 0: one at least this often (default
                                //  60); 0: no timer
    uint64_t checkpoint_clocks; //  > 0: one every this many job clocks too
    uint64_t checkpoint_rate;   //  the writer's pace, bytes a second (default
                                //  PS_DEFAULT_CHECKPOINT_RATE); 0: the
                                //  disk's full speed

    //  Limits on resources (ps_router_limits.c, docs/security.md)
    uint64_t max_memory;      //  bytes the store may hold (values, optimizer
                              //  state, BSP sums); 0: the default,
                              //  PS_DEFAULT_STORE_PERCENT of the machine's
                              //  memory; never above PS_MAX_STORE_BYTES
    uint64_t max_unread;      //  bytes of pull replies one connection may
                              //  have unsent before its PULLs are refused,
                              //  and of its pushes not yet applied before
                              //  its PUSHes are; 0: the larger of
                              //  PS_DEFAULT_MAX_UNREAD and twice the model
    uint64_t push_budget;     //  bytes of pushes the aggregation thread may
                              //  have waiting, all connections together,
                              //  before the ROUTER loop stops reading; 0:
                              //  PS_DEFAULT_PUSH_BUDGET
    uint64_t max_connections; //  connections at once, more are shed; 0: the
                              //  descriptor limit less those open at start
                              //  and PS_FD_RESERVE
    //  Authentication (issue 12, CURVE and protected mode; see ps_auth.h).
    //  All unset: protected mode, tcp:// peers from loopback only. The
    //  strings are borrowed until ps_broker_new returns
    const char *curve_secret; //  the broker's zcert secret file: CURVE on
                              //  the ROUTER and the tap; NULL: no keys
    const char *allow_keys;   //  folder of the clients' public certificates
    bool allow_any_key;       //  CURVE admitting any key (no allow-list)
    const char *allow_from;   //  numeric addresses admitted besides
                              //  loopback, comma-separated; NULL: none
    bool insecure_allow_any;  //  no keys, no address check: anybody
    //  Metrics (ps_metrics.h)
    const char *metrics; //  HOST:PORT to serve Prometheus metrics on over
                         //  HTTP (port 0: a free one); NULL: none. Borrowed
                         //  until ps_broker_new returns
} ps_broker_config_t;

//  Every field at its default, endpoint "tcp://*:5555", 1 worker, BSP,
//  the tap on at its private endpoint
void ps_broker_config_defaults (ps_broker_config_t *config);
//  0, or -1 with a problem naming the bad setting
int ps_broker_config_check (const ps_broker_config_t *config, ps_problem_t *problem);

typedef struct ps_broker_t ps_broker_t;

//  Start a broker. NULL with problem filled in when the configuration is
//  bad or the endpoint cannot be bound.
ps_broker_t *ps_broker_new (const ps_broker_config_t *config, ps_problem_t *problem);
//  Stop and free; nulls the pointer
void ps_broker_destroy (ps_broker_t **self_p);
//  The endpoint actually bound, with the port filled in
//  (e.g. "tcp://0.0.0.0:41234"); valid while the broker lives
const char *ps_broker_endpoint (ps_broker_t *self);
//  The port of a tcp endpoint, 0 otherwise
int ps_broker_port (ps_broker_t *self);
//  The tap's endpoint, "" when the tap is off; valid while the broker lives
const char *ps_broker_tap_endpoint (ps_broker_t *self);
//  Where the metrics are served, "http://HOST:PORT/metrics" with the port
//  bound, "" when they are not; valid while the broker lives
const char *ps_broker_metrics_url (ps_broker_t *self);
//  Status as a JSON object (the INFO reply); caller frees. NULL on error.
char *ps_broker_info (ps_broker_t *self);

#endif
