/*  =========================================================================
    bench_broker - the psbroker processes a case runs against

    The broker is a separate psbroker process, as in production and as the
    yardstick's server is: one started per case on an ephemeral loopback
    port (or, for the link case, on another host: run through the
    options' broker_prefix, bound to broker_bind, admitting allow_from),
    its endpoint read from its first stdout line, stopped with
    SIGTERM (then SIGKILL after a bounded wait). A group is 1 to
    BENCH_MAX_BROKERS of them, shard i being brokers[i], with their
    endpoints listed as a worker is given them. With BENCH_TAP_WATCHED a
    tap reader watches each broker from its start to its stop.

    The structs are the caller's, usually on its stack; a started broker
    must be stopped. Failures are said on stderr. Main thread: children
    are started and reaped through ps_process, whose table lets a signal
    handler kill them.
    ========================================================================= */

#ifndef BENCH_BROKER_H_INCLUDED
#define BENCH_BROKER_H_INCLUDED

#include "bench_options.h"
#include "bench_tapreader.h"
#include "ps_process.h"

#include <stdint.h>

//  Brokers in a group, at most; the group case runs 1, 2 and 4
#define BENCH_MAX_BROKERS 4

//  A running psbroker
typedef struct {
    ps_process_t process;          //  its process; pid -1 when not running
    char endpoint[256];            //  what it listens on
    bench_tapreader_t *reader;     //  BENCH_TAP_WATCHED: its tap's reader
    char checkpoint_dir[PATH_MAX]; //  its checkpoints (options->checkpoint_dir),
                                   //  removed when it stops; "" none
} bench_broker_t;

//  A group of psbrokers, shard i being brokers[i] (one for a lone broker)
typedef struct {
    bench_broker_t brokers[BENCH_MAX_BROKERS];     //  the first size are running
    uint32_t size;                                 //  brokers started
    char endpoints[BENCH_MAX_BROKERS * (256 + 1)]; //  theirs in shard order, comma-separated
} bench_group_t;

//  Start options->broker_bin for workers workers with staleness (-1 for
//  ASP) as shard of shards brokers (1: alone), its tap as
//  options->tap_mode says; 0, or -1 (said why, nothing left running)
int bench_broker_start (bench_broker_t *self, const bench_options_t *options, uint32_t workers,
                        int32_t staleness, uint32_t shard, uint32_t shards);

//  SIGTERM, a bounded wait, then SIGKILL; its checkpoints removed;
//  idempotent
void bench_broker_stop (bench_broker_t *self);

//  Checkpoints it has written so far (the highest number in its folder),
//  0 when it writes none
unsigned long bench_broker_checkpoints (const bench_broker_t *self);

//  Its peak resident set so far (VmHWM of /proc/PID/status), bytes; 0
//  when it cannot be read. Before bench_broker_stop.
uint64_t bench_broker_peak_rss (const bench_broker_t *self);

//  CPU time its threads have run so far (the first field of each
//  /proc/PID/task/TID/schedstat), nanoseconds; 0 when it cannot be read.
//  A thread that ended takes its time with it: the broker's live for its
//  whole run. Before bench_broker_stop.
uint64_t bench_broker_cpu_ns (const bench_broker_t *self);

//  CPU seconds so far of this process (every thread: psbench's workers
//  and their libzmq threads) and of count brokers; 0 when any cannot be
//  read. Two readings apart give the CPU of what ran between them.
double bench_cpu_seconds (const bench_broker_t *brokers, uint32_t count);

//  Start a group of shards brokers as bench_broker_start does; 0, or -1
//  (said why, no broker left running)
int bench_group_start (bench_group_t *self, const bench_options_t *options, uint32_t shards,
                       uint32_t workers, int32_t staleness);

//  Stop every broker of the group that was started; idempotent
void bench_group_stop (bench_group_t *self);

#endif
