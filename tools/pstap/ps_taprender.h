/*  =========================================================================
    ps_taprender - how a tap record looks to people and to scripts

    Turns a decoded tap record (ps_codec_decode_tap) into one text line
    (tcpdump-like: time, direction, type, worker, keys, clock, bytes,
    latency breakdown, status) or one JSON object with the stable schema
    documented in docs/tap-records.md. Records of a broker group (TapRecord
    shards > 1) say which broker published them: "b1/3" after the time in
    text, "shard" and "shards" at the end of the JSON object. A broker
    alone looks as it always did.

    Pure functions, no state: any thread may call them. They write into
    the caller's buffer under snprintf's contract and allocate nothing.
    ========================================================================= */

#ifndef PS_TAPRENDER_H_INCLUDED
#define PS_TAPRENDER_H_INCLUDED

#include "ps_codec.h"

#include <stddef.h>

//  One JSON object (no newline) for the record into buffer. Returns the
//  length it needs, as snprintf does (truncated output when >= size).
int ps_taprender_json (const ps_tap_record_t *record, char *buffer, size_t size);
//  One text line (no newline) for the record into buffer; snprintf rules
int ps_taprender_text (const ps_tap_record_t *record, char *buffer, size_t size);

//  Sizes and latencies in the units of the text line ("3.9 KB", "1.5ms"),
//  for views that print figures beside it; buffer, filled snprintf's way
const char *ps_taprender_bytes (double bytes, char *buffer, size_t size);
const char *ps_taprender_us (double us, char *buffer, size_t size);

#endif
