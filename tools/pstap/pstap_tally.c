/*  =========================================================================
    pstap_tally - what top and stats count from tap records

    Latencies are kept as samples and sorted for each percentile rather
    than binned: an interval holds at most PSTAP_MAX_SAMPLES per row, and
    exact percentiles of a short interval are worth a sort. Keys live in a
    czmq hash table; workers and brokers in arrays indexed by rank and
    shard, which the bounds in ps_limits.h keep small.
    ========================================================================= */

#include "pstap_tally.h"
#include "ps_taprender.h"
#include "ps_dtype.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t
pstap_broker_slot (const ps_tap_record_t *record)
{
    return record->shard < PS_MAX_SHARDS ? record->shard : PS_MAX_SHARDS;
}

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

pstap_tally_t *
pstap_tally_new (void)
{
    pstap_tally_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->workers = calloc (PS_MAX_WORKERS, sizeof *self->workers);
    self->brokers = calloc (PSTAP_BROKER_SLOTS, sizeof *self->brokers);
    self->keys = zhashx_new ();
    if (!self->workers || !self->brokers || !self->keys) {
        pstap_tally_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->keys, s_free_item);
    for (size_t i = 0; i < PS_MAX_WORKERS; i++)
        self->workers[i].clock = -1;
    for (size_t i = 0; i < PSTAP_BROKER_SLOTS; i++)
        self->brokers[i].min_clock = self->brokers[i].slowest = -1;
    return self;
}

//  Start a new interval; clocks are kept, they are state and not rates
void
pstap_tally_reset (pstap_tally_t *self)
{
    for (size_t t = 0; t < PSTAP_NTYPES; t++) {
        free (self->types[t].samples);
        memset (&self->types[t], 0, sizeof self->types[t]);
    }
    for (size_t w = 0; w < PS_MAX_WORKERS; w++) {
        free (self->workers[w].counts.samples);
        memset (&self->workers[w].counts, 0, sizeof self->workers[w].counts);
    }
    for (size_t b = 0; b < PSTAP_BROKER_SLOTS; b++) {
        free (self->brokers[b].counts.samples);
        memset (&self->brokers[b].counts, 0, sizeof self->brokers[b].counts);
        self->brokers[b].records = 0;
    }
    zhashx_purge (self->keys);
    self->keys_dropped = self->records = self->first_us = self->last_us = 0;
    memset (self->kinds, 0, sizeof self->kinds);
}

void
pstap_tally_destroy (pstap_tally_t **self_p)
{
    pstap_tally_t *self = *self_p;
    if (!self)
        return;
    if (self->workers && self->brokers && self->keys)
        pstap_tally_reset (self);
    free (self->workers);
    free (self->brokers);
    zhashx_destroy (&self->keys);
    free (self);
    *self_p = NULL;
}

static void
s_counts_add (pstap_counts_t *self, const ps_tap_record_t *record)
{
    bool failed = record->status != PSMQ__ERR_CODE__ERR_NONE;
    if (record->kind == PSMQ__TAP_KIND__TAP_REQUEST) {
        self->requests++;
        self->bytes_in += record->bytes;
    }
    else if (record->kind == PSMQ__TAP_KIND__TAP_REJECT)
        self->errors++;
    else if (record->kind == PSMQ__TAP_KIND__TAP_REPLY) {
        self->replies++;
        self->errors += failed;
        self->bytes_out += record->bytes;
        if (self->nsamples == self->capacity && self->capacity < PSTAP_MAX_SAMPLES) {
            size_t capacity = self->capacity ? self->capacity * 2 : 64;
            uint32_t *samples = realloc (self->samples, capacity * sizeof *samples);
            if (samples) {
                self->samples = samples;
                self->capacity = capacity;
            }
        }
        if (self->nsamples < self->capacity)
            self->samples[self->nsamples++] =
                record->total_us > UINT32_MAX ? UINT32_MAX : (uint32_t)record->total_us;
    }
}

static void
s_tally_keys (pstap_tally_t *self, const ps_tap_record_t *record)
{
    bool push = record->kind == PSMQ__TAP_KIND__TAP_REQUEST && record->type == PSMQ__MSG_TYPE__PUSH;
    bool pull_request =
        record->kind == PSMQ__TAP_KIND__TAP_REQUEST && record->type == PSMQ__MSG_TYPE__PULL;
    bool pull_reply =
        record->kind == PSMQ__TAP_KIND__TAP_REPLY && record->type == PSMQ__MSG_TYPE__PULL;
    if (!push && !pull_request && !pull_reply)
        return;
    for (size_t i = 0; i < record->n_keys; i++) {
        const char *name = record->keys[i]->key;
        pstap_key_row_t *row = zhashx_lookup (self->keys, name);
        if (!row) {
            if (zhashx_size (self->keys) >= PS_MAX_KEYS || !(row = calloc (1, sizeof *row))) {
                self->keys_dropped++;
                continue;
            }
            zhashx_insert (self->keys, name, row);
        }
        row->pushes += push;
        row->pulls += pull_request;
        //  A pull's bytes travel in its reply; a push's in the request
        if (push || pull_reply)
            row->bytes += record->keys[i]->count * ps_dtype_size ((int)record->keys[i]->dtype);
    }
}

static void
s_tally_broker (pstap_tally_t *self, const ps_tap_record_t *record)
{
    pstap_broker_row_t *row = &self->brokers[pstap_broker_slot (record)];
    if (row->records++ == 0)
        row->dropped_first = record->dropped;
    row->dropped_last = record->dropped;
    row->shards = record->shards;
    self->grouped |= record->shards > 1;
    s_counts_add (&row->counts, record);
    if (record->min_clock >= 0)
        row->min_clock = record->min_clock;
    if (record->kind == PSMQ__TAP_KIND__TAP_CLOCK)
        row->slowest = record->slowest;
}

//  Records one broker dropped meanwhile (a count that went down is a
//  broker restarted: nothing known)
uint64_t
pstap_broker_dropped (const pstap_broker_row_t *row)
{
    return row->dropped_last > row->dropped_first ? row->dropped_last - row->dropped_first : 0;
}

//  "b1/3" for the broker of slot b
const char *
pstap_broker_name (size_t b, const pstap_broker_row_t *row, char *buffer, size_t size)
{
    if (b == PS_MAX_SHARDS)
        snprintf (buffer, size, "b?");
    else if (row->shards > 1)
        snprintf (buffer, size, "b%zu/%u", b, row->shards);
    else
        snprintf (buffer, size, "alone");
    return buffer;
}

//  Records the brokers dropped meanwhile, all of them together
uint64_t
pstap_tally_dropped (const pstap_tally_t *self)
{
    uint64_t dropped = 0;
    for (size_t b = 0; b < PSTAP_BROKER_SLOTS; b++)
        if (self->brokers[b].records)
            dropped += pstap_broker_dropped (&self->brokers[b]);
    return dropped;
}

//  The slowest clock of any broker (in a group, the one furthest behind)
//  and the rank that held it there; -1 when none is known
void
pstap_tally_slowest (const pstap_tally_t *self, int64_t *min_clock, int64_t *slowest)
{
    *min_clock = *slowest = -1;
    for (size_t b = 0; b < PSTAP_BROKER_SLOTS; b++) {
        const pstap_broker_row_t *row = &self->brokers[b];
        if (row->min_clock >= 0 && (*min_clock < 0 || row->min_clock < *min_clock)) {
            *min_clock = row->min_clock;
            *slowest = row->slowest;
        }
    }
}

void
pstap_tally_add (pstap_tally_t *self, const ps_tap_record_t *record)
{
    if (self->records++ == 0)
        self->first_us = record->time_us;
    self->last_us = record->time_us;
    //  protobuf-c keeps enum values it does not know: count only ours
    if ((unsigned)record->kind < PSTAP_NKINDS)
        self->kinds[record->kind]++;
    if ((unsigned)record->type < PSTAP_NTYPES)
        s_counts_add (&self->types[record->type], record);
    s_tally_broker (self, record);
    //  INFO comes from tools (pstap itself among them), not from a worker's work
    if (record->worker >= 0 && record->worker < PS_MAX_WORKERS &&
        record->type != PSMQ__MSG_TYPE__INFO) {
        pstap_worker_row_t *row = &self->workers[record->worker];
        row->seen = true;
        s_counts_add (&row->counts, record);
        //  A CLOCK reply carries the new clock; every message the current
        if (record->type != PSMQ__MSG_TYPE__MSG_NONE && record->type != PSMQ__MSG_TYPE__ERROR &&
            record->status == PSMQ__ERR_CODE__ERR_NONE && record->clock > row->clock)
            row->clock = record->clock;
    }
    s_tally_keys (self, record);
}

static int
s_compare_u32 (const void *a, const void *b)
{
    uint32_t left = *(const uint32_t *)a, right = *(const uint32_t *)b;
    return (left > right) - (left < right);
}

//  The p-th percentile (nearest rank) of the samples, sorting them
static double
s_percentile (pstap_counts_t *counts, double p)
{
    if (counts->nsamples == 0)
        return -1;
    qsort (counts->samples, counts->nsamples, sizeof *counts->samples, s_compare_u32);
    size_t rank = (size_t)ceil (p * (double)counts->nsamples);
    return counts->samples[rank ? rank - 1 : 0];
}

const char *
pstap_counts_percentile (pstap_counts_t *counts, double p, char *buffer, size_t size)
{
    double value = s_percentile (counts, p);
    if (value < 0)
        return "-";
    return ps_taprender_us (value, buffer, size);
}
