/*  =========================================================================
    pstap_tally - what top and stats count from tap records

    Per message type, per worker, per key and per broker: requests,
    replies, errors, bytes each way, reply latencies for percentiles, each
    worker's latest clock, each broker's dropped count and slowest clock.
    pstap_tally_reset starts a new interval (top's refresh) and keeps what
    is state rather than rate: clocks and the brokers' counters.

    Ownership: the tally owns its rows and samples; the structs are open
    because the views print them row by row, and only pstap_tally_* write
    them. A tally belongs to one thread. Latency samples are kept up to a
    bound per row and interval (past it the percentiles use the first
    ones); keys past PS_MAX_KEYS are counted in keys_dropped, not listed.
    ========================================================================= */

#ifndef PSTAP_TALLY_H_INCLUDED
#define PSTAP_TALLY_H_INCLUDED

#include "ps_codec.h"
#include "ps_limits.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Message types and record kinds counted (MsgType 0 .. 9, TapKind 0 .. 7)
#define PSTAP_NTYPES (PSMQ__MSG_TYPE__ERROR + 1)
#define PSTAP_NKINDS (PSMQ__TAP_KIND__TAP_CLOCK + 1)

//  Numbers of one row of top or stats over an interval
typedef struct {
    uint64_t requests;  //  requests received
    uint64_t replies;   //  replies sent
    uint64_t errors;    //  error replies and rejections
    uint64_t bytes_in;  //  tensor bytes of requests
    uint64_t bytes_out; //  tensor bytes of replies
    uint32_t *samples;  //  total_us of replies, at most PSTAP_MAX_SAMPLES
    size_t nsamples;    //  samples kept
    size_t capacity;    //  room in samples
} pstap_counts_t;

typedef struct {
    pstap_counts_t counts; //  this worker's messages
    int64_t clock;         //  the latest clock its messages carried, -1 none
    bool seen;             //  any record named it
} pstap_worker_row_t;

//  One broker's numbers: each broker of a group counts its own drops and
//  keeps its own vector clock
typedef struct {
    pstap_counts_t counts;  //  its messages, every type
    uint64_t records;       //  its records tallied
    uint32_t shards;        //  its group's size as its records say (0: alone)
    uint64_t dropped_first; //  its dropped count at its first record
    uint64_t dropped_last;  //  and at its last
    int64_t min_clock;      //  its latest slowest clock, -1 none
    int64_t slowest;        //  the rank that held it, -1 none
} pstap_broker_row_t;

//  Latency samples kept per row and interval for the percentiles
#define PSTAP_MAX_SAMPLES 65536
//  Slots for brokers: one per shard, and one for shards out of range
#define PSTAP_BROKER_SLOTS (PS_MAX_SHARDS + 1)

typedef struct {
    uint64_t pushes; //  push requests that named it
    uint64_t pulls;  //  pull requests that named it
    uint64_t bytes;  //  its bytes pushed and pulled (4 per element)
} pstap_key_row_t;

//  Everything top and stats compute from records
typedef struct {
    pstap_counts_t types[PSTAP_NTYPES]; //  per message type
    pstap_worker_row_t *workers;        //  per rank, PS_MAX_WORKERS of them
    zhashx_t *keys;                     //  key name -> pstap_key_row_t
    uint64_t keys_dropped;              //  keys past PS_MAX_KEYS, not counted
    uint64_t records;                   //  records tallied
    uint64_t first_us, last_us;         //  broker time of the first and last
    uint64_t kinds[PSTAP_NKINDS];       //  records per TapKind
    pstap_broker_row_t *brokers;        //  per shard, PSTAP_BROKER_SLOTS of them
    bool grouped;                       //  some record came from a group (shards > 1)
} pstap_tally_t;

//  A tally with no records yet; NULL when out of memory
pstap_tally_t *pstap_tally_new (void);
//  Free the tally and null the pointer; idempotent
void pstap_tally_destroy (pstap_tally_t **self_p);
//  Count one record that passed the filter
void pstap_tally_add (pstap_tally_t *self, const ps_tap_record_t *record);
//  Start a new interval; clocks are kept, they are state and not rates
void pstap_tally_reset (pstap_tally_t *self);
//  Records the brokers dropped meanwhile, all of them together
uint64_t pstap_tally_dropped (const pstap_tally_t *self);
//  The slowest clock of any broker (in a group, the one furthest behind)
//  and the rank that held it there; -1 when none is known
void pstap_tally_slowest (const pstap_tally_t *self, int64_t *min_clock, int64_t *slowest);

//  The slot of the broker that published record: its shard, or
//  PS_MAX_SHARDS for a shard out of range
size_t pstap_broker_slot (const ps_tap_record_t *record);
//  Records one broker dropped meanwhile (a count that went down is a
//  broker restarted: nothing known)
uint64_t pstap_broker_dropped (const pstap_broker_row_t *row);
//  "b1/3" (or "alone", or "b?" out of range) for the broker of slot b,
//  into buffer
const char *pstap_broker_name (size_t b, const pstap_broker_row_t *row, char *buffer, size_t size);
//  The p-th percentile (nearest rank) of the reply latencies as text
//  ("1.5ms"), or "-" when there are none; sorts the samples
const char *pstap_counts_percentile (pstap_counts_t *counts, double p, char *buffer, size_t size);

#endif
