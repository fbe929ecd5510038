/*  =========================================================================
    ps_prometheus - the broker's status in Prometheus's text exposition
    format (version 0.0.4)

    Renders the INFO snapshot (ps_info.h: the JSON the ROUTER loop answers,
    with its "latency" histograms when metrics are on) into the metrics
    /metrics serves: one # HELP and one # TYPE line per family, names
    prefixed psmq_, base units (seconds, bytes), counters ending in _total.
    The list is in docs/observability.md.

    A pure function of its input: any thread may call it. A field missing
    from the snapshot leaves its family out rather than failing.
    ========================================================================= */

#ifndef PS_PROMETHEUS_H_INCLUDED
#define PS_PROMETHEUS_H_INCLUDED

#include <stdint.h>

//  The text of snapshot (INFO JSON) at now_unix_ms (the wall clock, for
//  the checkpoint's age); the caller frees it. NULL when snapshot is not
//  a JSON object or out of memory
char *ps_prometheus_render (const char *snapshot, int64_t now_unix_ms);

//  The Content-Type of that text
#define PS_PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
