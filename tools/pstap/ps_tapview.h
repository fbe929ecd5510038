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

    Records of a broker group (TapRecord shard and shards, shards > 1) say
    which broker published them: "b1/3" after the time in text, "shard"
    and "shards" at the end of the JSON object. A broker alone looks as it
    always did. A pairing table matches replies with their requests by
    (shard, peer, seq).

    Pure functions, one small filter object and the pairing table; no
    sockets. Any thread may call them; a filter is read-only after
    ps_tapfilter_new; a pairing table belongs to one thread. Rendering and
    matching allocate nothing; the pairing table allocates one entry per
    request it remembers.
    ========================================================================= */

#ifndef PS_TAPVIEW_H_INCLUDED
#define PS_TAPVIEW_H_INCLUDED

#include "ps_codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
//    shard=1 | shard=0,2      the broker of a group (a broker alone is 0)
//  Each NAME with each operator may appear once (bytes>1K bytes<1M is a
//  range; kind=req kind=rep is an error). lat terms match replies only.
//  An empty or NULL expression matches everything. NULL with a message
//  naming the bad term in why when it does not parse.
ps_tapfilter_t *ps_tapfilter_new (const char *expression, char *why, size_t why_size);
void ps_tapfilter_destroy (ps_tapfilter_t **self_p);
bool ps_tapfilter_match (const ps_tapfilter_t *self, const ps_tap_record_t *record);
//  Whether records of this shard can match (shard= is not in the topic,
//  so pstap uses this to leave out the taps of brokers nobody asked for)
bool ps_tapfilter_wants_shard (const ps_tapfilter_t *self, uint32_t shard);
//  Call subscribe (topic, arg) for each XPUB prefix the filter needs
//  (one empty prefix when it constrains neither kind, type nor worker).
//  With payload, the "payload." topics are asked for as well. Returns the
//  number of topics.
size_t ps_tapfilter_topics (const ps_tapfilter_t *self, bool payload,
                            void (*subscribe) (const char *topic, void *arg), void *arg);

typedef struct ps_tappair_t ps_tappair_t;

//  A pairing table that remembers at most max_pending requests (then it
//  forgets them all and counts them); NULL when out of memory
ps_tappair_t *ps_tappair_new (size_t max_pending);
void ps_tappair_destroy (ps_tappair_t **self_p);
//  Remember a request (heartbeats excepted: they get no reply), or find
//  and forget the request a reply or a rejection answers: true when it was
//  found, with its receipt time in *request_us. Other records: false.
bool ps_tappair_update (ps_tappair_t *self, const ps_tap_record_t *record, uint64_t *request_us);
//  Add each remembered request of a worker below nworkers to pending[worker]
void ps_tappair_pending (ps_tappair_t *self, uint64_t *pending, size_t nworkers);
//  Requests forgotten because the table was full
uint64_t ps_tappair_forgotten (const ps_tappair_t *self);

#endif
