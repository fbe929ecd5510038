/*  =========================================================================
    ps_taptrace - tap records as a Chrome trace (Trace Event Format JSON,
    which ui.perfetto.dev and chrome://tracing open)

    Fed the records in the order a broker published them, each reply with
    the time of the request it answers (ps_tappair), it writes one process
    per broker (pid = shard + 1) with one track per worker (tid = rank)
    and one for the broker's aggregation thread:
        worker tracks   (one, and more where its requests overlap)
                        a complete event ("ph":"X") per answered request,
                        named by its type (push, pull, clock, init, ...),
                        from the request's record to its reply's (or its
                        rejection's); inside it "parked" and "aggregation"
                        for the time the broker says it waited on the
                        staleness bound or on the aggregation thread;
                        connections, departures and evictions as instants
        aggregation     "optimizer step" spans: the stretches in which
                        requests were seen waiting for the aggregation
                        thread to apply the pushes before them ("init"
                        when only INITs waited), overlaps merged; the
                        slowest clock's moves as instants and a counter
        no rank         what came from connections that are not a rank
    Timestamps are the broker's wall clock in microseconds since 1970.

    The file is written as records come (one jansson object per event), so
    memory stays flat however long the trace; ps_taptrace_destroy writes
    the metadata events (names of processes and threads) and closes the
    JSON, so a trace ended by Ctrl-C is valid JSON too.

    Ownership: _new returns a writer the caller destroys; it keeps nothing
    of a record. One thread. Failure: NULL or -1 with a ps_problem_t that
    names the file and the system's reason.
    ========================================================================= */

#ifndef PS_TAPTRACE_H_INCLUDED
#define PS_TAPTRACE_H_INCLUDED

#include "ps_codec.h"
#include "ps_limits.h"
#include "ps_problem.h"

#include <stdbool.h>
#include <stdint.h>

//  The tids of the tracks that are not a worker's (ranks are below
//  PS_MAX_WORKERS)
#define PS_TAPTRACE_AGGREGATION_TID 1000000
#define PS_TAPTRACE_NO_RANK_TID 1000001
//  Tracks per worker: its own (tid = rank) and the ones for requests that
//  overlap (tid = PS_TAPTRACE_LANE_TID + (lane - 1) * PS_MAX_WORKERS + rank)
#define PS_TAPTRACE_LANES 8
#define PS_TAPTRACE_LANE_TID 2000000

typedef struct ps_taptrace_t ps_taptrace_t;

//  Create (or truncate) path ("-" for stdout) and start the trace. The
//  writer, or NULL with problem naming the file and the system's reason.
ps_taptrace_t *ps_taptrace_new (const char *path, ps_problem_t *problem);
//  Add one record. paired: a reply's (or rejection's) request was seen,
//  at request_us (its record's time_us); an unpaired reply is drawn from
//  its total_us. 0, or -1 with problem filled in when the write failed
//  (the writer then refuses further records).
int ps_taptrace_add (ps_taptrace_t *self, const ps_tap_record_t *record, bool paired,
                     uint64_t request_us, ps_problem_t *problem);
//  Events in the trace so far (spans, instants and counters, not
//  metadata), the aggregation span being gathered included
uint64_t ps_taptrace_events (const ps_taptrace_t *self);
//  The tid of a worker's track (lane 0 its own, others for overlaps),
//  and the rank whose track a tid is (-1: not a worker's)
int ps_taptrace_tid (int64_t rank, int lane);
int64_t ps_taptrace_rank (int tid);
//  Finish the JSON, close the file, free, null the pointer: 0, or -1
//  with problem filled in when the trace could not be written whole
int ps_taptrace_destroy (ps_taptrace_t **self_p, ps_problem_t *problem);

#endif
