/*  =========================================================================
    ps_latency - request latency histograms (see ps_latency.h)

    Counts per bucket, not cumulative: an observation adds to one bucket
    only, and the renderer (ps_prometheus.c) sums them. The bounds span
    what a loopback request takes (tens of microseconds) to what a
    request parked behind a slow worker may wait (seconds).
    ========================================================================= */

#include "ps_latency.h"
#include "ps_codec.h"

#include <assert.h>
#include <stdlib.h>

//  Upper bounds of the buckets, microseconds; one more bucket past the last
static const int64_t s_bounds_us[] = {50,     100,     250,     500,     1000,    2500,
                                      5000,   10000,   25000,   50000,   100000,  250000,
                                      500000, 1000000, 2500000, 5000000, 10000000};
#define BOUNDS ((int)(sizeof s_bounds_us / sizeof s_bounds_us[0]))
#define TYPES (PSMQ__MSG_TYPE__ERROR + 1)

enum { STAGE_QUEUED, STAGE_AGGREGATION, STAGE_PARKED, STAGES };
//  Named with their unit, and so apart from INFO's own "parked"
static const char *s_stage_names[STAGES] = {"queued_us", "aggregation_us", "parked_us"};

typedef struct {
    uint64_t buckets[BOUNDS + 1]; //  observations in each bucket, the last: past all bounds
    uint64_t count;               //  observations
    uint64_t sum_us;              //  their sum
} histogram_t;

struct ps_latency_t {
    histogram_t histograms[STAGES][TYPES]; //  by stage, then message type
};

ps_latency_t *
ps_latency_new (void)
{
    return calloc (1, sizeof (ps_latency_t));
}

void
ps_latency_destroy (ps_latency_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

static void
s_add (histogram_t *histogram, int64_t us)
{
    if (us < 0)
        us = 0;
    int bucket = 0;
    while (bucket < BOUNDS && us > s_bounds_us[bucket])
        bucket++;
    histogram->buckets[bucket]++;
    histogram->count++;
    histogram->sum_us += (uint64_t)us;
}

void
ps_latency_observe (ps_latency_t *self, int type, int64_t queued_us, int64_t aggregation_us,
                    int64_t parked_us)
{
    assert (self);
    if (type < 0 || type >= TYPES)
        return;
    s_add (&self->histograms[STAGE_QUEUED][type], queued_us);
    s_add (&self->histograms[STAGE_AGGREGATION][type], aggregation_us);
    s_add (&self->histograms[STAGE_PARKED][type], parked_us);
}

static json_t *
s_histogram_json (const histogram_t *histogram)
{
    json_t *buckets = json_array ();
    for (int bucket = 0; bucket <= BOUNDS; bucket++)
        json_array_append_new (buckets, json_integer ((json_int_t)histogram->buckets[bucket]));
    return json_pack ("{s:o, s:I, s:I}", "buckets", buckets, "count", (json_int_t)histogram->count,
                      "sum_us", (json_int_t)histogram->sum_us);
}

json_t *
ps_latency_json (const ps_latency_t *self)
{
    assert (self);
    json_t *bounds = json_array ();
    json_t *latency = json_pack ("{s:o}", "bounds_us", bounds);
    if (!latency)
        return NULL;
    for (int bound = 0; bound < BOUNDS; bound++)
        json_array_append_new (bounds, json_integer ((json_int_t)s_bounds_us[bound]));
    for (int stage = 0; stage < STAGES; stage++) {
        json_t *by_type = json_object ();
        for (int type = 0; type < TYPES; type++)
            if (self->histograms[stage][type].count)
                json_object_set_new (by_type, ps_codec_type_name (type),
                                     s_histogram_json (&self->histograms[stage][type]));
        json_object_set_new (latency, s_stage_names[stage], by_type);
    }
    return latency;
}
