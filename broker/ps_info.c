/*  =========================================================================
    ps_info - the broker's status as JSON (see ps_info.h)
    ========================================================================= */

#include "ps_info.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

//  {"hello": n, "init": n, ...} of one counter per message type
static json_t *
s_by_type (const uint64_t *counts)
{
    json_t *object = json_object ();
    for (int type = PSMQ__MSG_TYPE__HELLO; type <= PSMQ__MSG_TYPE__ERROR; type++)
        json_object_set_new (object, ps_codec_type_name (type),
                             json_integer ((json_int_t)counts[type]));
    return object;
}

static json_t *
s_clocks (ps_router_t *self)
{
    json_t *clocks = json_array ();
    for (uint32_t rank = 0; rank < ps_vclock_world (self->vclock); rank++)
        json_array_append_new (clocks,
                               json_integer (ps_vclock_state (self->vclock, rank) == PS_RANK_LIVE
                                                 ? ps_vclock_clock (self->vclock, rank)
                                                 : -1));
    return clocks;
}

static json_t *
s_workers (ps_router_t *self)
{
    static const char *states[] = {"absent", "live", "gone"};
    int64_t now = zclock_mono ();
    json_t *workers = json_array ();
    for (uint32_t rank = 0; rank < ps_vclock_world (self->vclock); rank++) {
        ps_peer_t *peer = ps_peers_of_rank (self->peers, rank);
        json_array_append_new (
            workers, json_pack ("{s:I, s:s, s:I, s:I, s:I, s:I}", "rank", (json_int_t)rank, "state",
                                states[ps_vclock_state (self->vclock, rank)], "clock",
                                (json_int_t)ps_vclock_clock (self->vclock, rank), "parked",
                                (json_int_t)(peer ? peer->parked : 0), "messages_in",
                                (json_int_t)ps_peers_messages (self->peers, rank), "last_seen_ms",
                                (json_int_t)(peer ? now - peer->last_seen : -1)));
    }
    return workers;
}

static json_t *
s_parked (ps_router_t *self)
{
    int64_t now = zclock_mono ();
    json_t *parked = json_array ();
    for (const ps_parked_t *item = ps_parking_first (self->parking); item;
         item = ps_parking_next (self->parking))
        json_array_append_new (parked, json_pack ("{s:I, s:s, s:I, s:I}", "worker",
                                                  (json_int_t)item->peer->rank, "type",
                                                  ps_codec_type_name (item->type), "clock",
                                                  (json_int_t)item->clock, "waiting_ms",
                                                  (json_int_t)(now - item->since)));
    return parked;
}

//  {"ERR_MALFORMED": n, ...} of the refusals by error code ("other":
//  codes past the known ones). The protocol's names, not INFO's lowercase
//  ones: "group" or "clock" here would be taken for INFO's own fields by
//  tools that look a name up anywhere in the document
static json_t *
s_rejected_by_reason (const ps_router_stats_t *stats)
{
    json_t *object = json_object ();
    for (int code = 1; code < PS_ROUTER_ERR_CODES; code++) {
        const ProtobufCEnumValue *value =
            protobuf_c_enum_descriptor_get_value (&psmq__err_code__descriptor, code);
        if (value)
            json_object_set_new (object, value->name,
                                 json_integer ((json_int_t)stats->rejected_code[code]));
    }
    json_object_set_new (object, "other", json_integer ((json_int_t)stats->rejected_code[0]));
    return object;
}

static json_t *
s_group (ps_router_t *self)
{
    json_t *group = json_array ();
    for (uint32_t i = 0; self->group && i < ps_router_shards (self); i++)
        json_array_append_new (group, json_string (self->group[i] ? self->group[i] : ""));
    return group;
}

//  What tools need beyond the counters: the tap, every rank, parked requests
static void
s_more (ps_router_t *self, json_t *info)
{
    ps_tap_t *tap = self->tap;
    json_object_set_new (info, "tap", json_string (tap ? ps_tap_endpoint (tap) : ""));
    json_object_set_new (info, "tap_subscriptions",
                         json_integer (tap ? ps_tap_subscriptions (tap) : 0));
    json_object_set_new (info, "tap_records",
                         json_integer (tap ? (json_int_t)ps_tap_records (tap) : 0));
    json_object_set_new (info, "tap_dropped",
                         json_integer (tap ? (json_int_t)ps_tap_dropped (tap) : 0));
    json_object_set_new (info, "seen", json_integer (ps_peers_seen (self->peers)));
    json_object_set_new (info, "shard", json_integer (self->config.shard));
    json_object_set_new (info, "shards", json_integer (ps_router_shards (self)));
    json_object_set_new (info, "group", s_group (self));
    json_object_set_new (info, "bytes_in_by_type", s_by_type (self->stats.bytes_in_type));
    json_object_set_new (info, "bytes_out_by_type", s_by_type (self->stats.bytes_out_type));
    json_object_set_new (info, "workers", s_workers (self));
    json_object_set_new (info, "parked", s_parked (self));
    json_object_set_new (info, "limits", ps_router_limits_info (self));
    json_object_set_new (info, "checkpoint",
                         self->checkpointer ? ps_checkpointer_info (self->checkpointer)
                                            : json_null ());
    //  Metrics (ps_metrics.h), last: their keys come after INFO's own
    const ps_router_stats_t *stats = &self->stats;
    json_object_set_new (info, "rejected_by_reason", s_rejected_by_reason (stats));
    json_object_set_new (info, "evicted_by_reason",
                         json_pack ("{s:I, s:I, s:I}", "silent", (json_int_t)stats->evicted_silent,
                                    "connection_closed", (json_int_t)stats->evicted_closed,
                                    "no_progress", (json_int_t)stats->evicted_hung));
    json_object_set_new (info, "metrics",
                         json_string (self->metrics ? ps_metrics_url (self->metrics) : ""));
    if (self->latency)
        json_object_set_new (info, "latency", ps_latency_json (self->latency));
}

char *
ps_info_json (ps_router_t *self)
{
    const ps_router_stats_t *stats = &self->stats;
    int64_t min = ps_vclock_min (self->vclock);
    char incarnation[17];
    snprintf (incarnation, sizeof incarnation, "%016" PRIx64, self->incarnation);
    json_t *info = json_pack (
        "{s:s, s:i, s:f, s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:s, s:f}", "endpoint", self->bound,
        "protocol", PS_PROTOCOL_VERSION, "uptime_s", (zclock_mono () - self->started) / 1000.0,
        "world", (json_int_t)ps_vclock_world (self->vclock), "staleness", self->config.staleness,
        "live", (json_int_t)ps_vclock_live (self->vclock), "min_clock",
        (json_int_t)(min == PS_VCLOCK_NOBODY ? -1 : min), "max_clock",
        (json_int_t)ps_vclock_max (self->vclock), "slowest",
        (json_int_t)ps_vclock_slowest (self->vclock), "keys",
        (json_int_t)ps_published_keys (self->published), "optimizer",
        ps_optim_kind_name (self->config.optim.kind), "lr", (double)self->config.optim.lr);
    if (!info)
        return NULL;
    json_object_set_new (info, "clocks", s_clocks (self));
    json_object_set_new (info, "messages_in", s_by_type (stats->in));
    json_object_set_new (info, "replies_out", s_by_type (stats->out));
    json_object_set_new (info, "bytes_in", json_integer ((json_int_t)stats->bytes_in));
    json_object_set_new (info, "bytes_out", json_integer ((json_int_t)stats->bytes_out));
    json_object_set_new (info, "rejected", json_integer ((json_int_t)stats->rejected));
    json_object_set_new (info, "evicted", json_integer ((json_int_t)stats->evicted));
    json_object_set_new (info, "parked_now",
                         json_integer ((json_int_t)ps_parking_size (self->parking)));
    json_object_set_new (info, "parked_total",
                         json_integer ((json_int_t)ps_parking_total (self->parking)));
    json_object_set_new (info, "optimizer_steps", json_integer ((json_int_t)stats->steps));
    json_object_set_new (info, "pending_gradients", json_integer ((json_int_t)stats->pending));
    json_object_set_new (info, "aggregator_queue",
                         json_integer ((json_int_t)(self->agg_sent - self->agg_done)));
    json_object_set_new (info, "nonfinite_pushes", json_integer ((json_int_t)stats->nonfinite));
    json_object_set_new (info, "incarnation", json_string (incarnation));
    json_object_set_new (info, "progress_deadline_ms",
                         json_integer ((json_int_t)ps_progress_deadline (self->progress)));
    json_object_set_new (info, "longest_clock_ms",
                         json_integer ((json_int_t)ps_progress_longest (self->progress)));
    json_object_set_new (
        info, "connections",
        json_integer (self->connections ? (json_int_t)zhashx_size (self->connections) : -1));
    if (self->auth)
        json_object_set_new (info, "auth", ps_auth_json (self->auth));
    s_more (self, info);
    char *text = json_dumps (info, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION (6));
    json_decref (info);
    return text;
}
