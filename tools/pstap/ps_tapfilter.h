/*  =========================================================================
    ps_tapfilter - which tap records a user asked for (pstap -f)

    A filter expression is space-separated terms, all of which must hold:
      kind=req,rep,conn,disc,evict,rej,clock
      type=push,pull,clock,init,hello,bye,info,heartbeat,error,none
      worker=3 | worker=0,2,5
      key=NAME[,NAME]          the record names one of these keys
      bytes>N, bytes<N         N with optional K, M, G (powers of 1024)
      lat>T, lat<T             total latency, T with us, ms or s (default us)
      status=ok | status=err   (err: any error code, or a REJECT record)
      shard=1 | shard=0,2      the broker of a group (a broker alone is 0)
    Each NAME with each operator may appear once (bytes>1K bytes<1M is a
    range; kind=req kind=rep is an error). lat terms match replies only.
    An empty or NULL expression matches everything.

    A filter also says which XPUB topic prefixes to subscribe to, so that
    the broker itself drops what it does not want (kind, type, worker);
    the rest is matched here.

    Ownership: ps_tapfilter_new returns a filter the caller destroys; it
    keeps its own copy of what it needs of the expression. Threads: a
    filter is read-only after ps_tapfilter_new, so any thread may match
    with it. Failure: ps_tapfilter_new returns NULL with problem (code 0)
    naming the bad term. Matching allocates nothing.
    ========================================================================= */

#ifndef PS_TAPFILTER_H_INCLUDED
#define PS_TAPFILTER_H_INCLUDED

#include "ps_codec.h"
#include "ps_problem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_tapfilter_t ps_tapfilter_t;

//  Parse a filter expression (the syntax above). The filter, or NULL
//  with problem saying which term is wrong and why.
ps_tapfilter_t *ps_tapfilter_new (const char *expression, ps_problem_t *problem);
//  Free the filter and null the pointer; idempotent
void ps_tapfilter_destroy (ps_tapfilter_t **self_p);
//  Whether the record passes every term
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

#endif
