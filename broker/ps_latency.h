/*  =========================================================================
    ps_latency - histograms of the broker's time with each request, for
    the Prometheus metrics (ps_metrics.h)

    For every reply that goes out with the timing of its request
    (ps_tap_timing_t: when it was read, how long it was parked on the
    staleness bound, how long it waited for the aggregation thread), the
    ROUTER loop adds the three stages here, by message type: queued (the
    rest: in the loop's own queue and work), aggregation and parked. The
    buckets are fixed (PS_LATENCY_BOUNDS_US), so an observation is a few
    additions and no allocation.

    The ROUTER loop owns it and is the only thread that may call it; it
    exists only when metrics are served, so the loop pays nothing for it
    otherwise. ps_latency_json gives the counts for the INFO snapshot.
    ========================================================================= */

#ifndef PS_LATENCY_H_INCLUDED
#define PS_LATENCY_H_INCLUDED

#include <jansson.h>
#include <stdint.h>

typedef struct ps_latency_t ps_latency_t;

//  A new set of empty histograms; NULL when out of memory
ps_latency_t *ps_latency_new (void);
//  Free; nulls the pointer
void ps_latency_destroy (ps_latency_t **self_p);

//  One reply to a request of message type type (PSMQ__MSG_TYPE__*, others
//  ignored): its time in each stage, microseconds (negative taken as 0)
void ps_latency_observe (ps_latency_t *self, int type, int64_t queued_us, int64_t aggregation_us,
                         int64_t parked_us);

//  {"bounds_us": [b0, b1, ...],
//   "queued_us": {"pull": {"buckets": [n0, n1, ..., n_inf], "count": n,
//                 "sum_us": s}, ...}, "aggregation_us": {...},
//   "parked_us": {...}}
//  with each bucket's own count (not cumulative; the last is past the
//  largest bound) and only the types observed; the caller owns it. NULL
//  when out of memory
json_t *ps_latency_json (const ps_latency_t *self);

#endif
