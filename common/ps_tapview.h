/*  =========================================================================
    ps_tapview - how tap records look to people and scripts, and which of
    them a user asked for

    Turns a decoded tap record (ps_codec_decode_tap) into one text line
    (tcpdump-like: time, direction, type, worker, keys, clock, bytes,
    latency breakdown, status) or one JSON object with the stable schema
    documented in docs/tap-records.md. Parses the filter expressions of
    `pstap -f` and matches records against them, and tells which XPUB topic
    prefixes to subscribe to so that the broker itself drops what the
    filter does not want (kind, type, worker); the rest (keys, sizes,
    latency, status) is matched here.

    Pure functions and one small filter object; no sockets. Any thread may
    call them; a filter is read-only after ps_tapfilter_new. Nothing here
    allocates per record.
    ========================================================================= */

#ifndef PS_TAPVIEW_H_INCLUDED
#define PS_TAPVIEW_H_INCLUDED

#include "ps_codec.h"

#include <stdbool.h>
#include <stddef.h>

//  One JSON object (no newline) for the record into buffer. Returns the
//  length it needs, as snprintf does (truncated output when >= size).
int ps_tapview_json (const ps_tap_record_t *record, char *buffer, size_t size);
//  One text line (no newline) for the record into buffer; snprintf rules
int ps_tapview_text (const ps_tap_record_t *record, char *buffer, size_t size);

typedef struct ps_tapfilter_t ps_tapfilter_t;

//  Parse a filter expression: space-separated terms, all must hold:
//    kind=req,rep,conn,disc,evict,rej,clock
//    type=push,pull,clock,init,hello,bye,info,heartbeat,error,none
//    worker=3 | worker=0,2,5
//    key=NAME[,NAME]          the record names one of these keys
//    bytes>N, bytes<N         N with optional K, M, G (powers of 1024)
//    lat>T, lat<T             total latency, T with us, ms or s (default us)
//    status=ok | status=err   (err: any error code, or a REJECT record)
//  Each NAME with each operator may appear once (bytes>1K bytes<1M is a
//  range; kind=req kind=rep is an error). lat terms match replies only.
//  An empty or NULL expression matches everything. NULL with a message
//  naming the bad term in why when it does not parse.
ps_tapfilter_t *ps_tapfilter_new (const char *expression, char *why, size_t why_size);
void ps_tapfilter_destroy (ps_tapfilter_t **self_p);
bool ps_tapfilter_match (const ps_tapfilter_t *self, const ps_tap_record_t *record);
//  Call subscribe (topic, arg) for each XPUB prefix the filter needs
//  (one empty prefix when it constrains neither kind, type nor worker).
//  With payload, the "payload." topics are asked for as well. Returns the
//  number of topics.
size_t ps_tapfilter_topics (const ps_tapfilter_t *self, bool payload,
                            void (*subscribe) (const char *topic, void *arg), void *arg);

#endif
