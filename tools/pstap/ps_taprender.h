/*  =========================================================================
    ps_taprender - how a tap record looks to people and to scripts

    Turns a decoded tap record (ps_codec_decode_tap) into one text line
    (tcpdump-like: time, direction, type, worker, keys, clock, bytes,
    latency breakdown, status) or one JSON object with the stable schema
    documented in docs/tap-records.md. Records of a broker group (TapRecord
    shards > 1) say which broker published them: "b1/3" after the time in
    text, "shard" and "shards" at the end of the JSON object. A broker
    alone looks as it always did.

    Pure functions, no state: any thread may call them. The text line is
    written into the caller's buffer under snprintf's contract and
    allocates nothing. The JSON object is a new jansson object that the
    caller owns and releases with json_decref; json_dumps (object,
    JSON_COMPACT) is the JSON Lines form pstap prints. NULL when out of
    memory.
    ========================================================================= */

#ifndef PS_TAPRENDER_H_INCLUDED
#define PS_TAPRENDER_H_INCLUDED

#include "ps_codec.h"

#include <jansson.h>
#include <stddef.h>

//  The record as a JSON object, the caller's; NULL when out of memory
json_t *ps_taprender_json (const ps_tap_record_t *record);
//  One text line (no newline) for the record into buffer; snprintf rules
int ps_taprender_text (const ps_tap_record_t *record, char *buffer, size_t size);

//  Sizes and latencies in the units of the text line ("3.9 KB", "1.5ms"),
//  for views that print figures beside it; buffer, filled snprintf's way
const char *ps_taprender_bytes (double bytes, char *buffer, size_t size);
const char *ps_taprender_us (double us, char *buffer, size_t size);

#endif
