/*  =========================================================================
    ps_replies - what the ROUTER loop sends to workers (see ps_router.h)

    Every reply and ERROR goes out through here, so that each is counted,
    tapped (when somebody listens) and, for errors, logged at a bounded
    rate in one place.
    ========================================================================= */

#include "ps_log.h"
#include "ps_router.h"

#include <stdarg.h>
#include <stdio.h>

//  Rejected-input log lines per second before we only count them
#define REJECT_LOG_PER_SECOND 10

// ------------------------------------------------------------------ tap

static ps_tap_scene_t
s_scene (const ps_router_t *self)
{
    int64_t min = ps_vclock_min (self->vclock);
    ps_tap_scene_t scene = {.min_clock = min == PS_VCLOCK_NOBODY ? -1 : min,
                            .slowest = ps_vclock_slowest (self->vclock),
                            .shard = self->config.shard,
                            .shards = self->config.shards};
    return scene;
}

//  The rank a connection registered as, not what its envelope claims
static int64_t
s_rank_of (ps_router_t *self, const uint8_t *id, size_t id_size)
{
    ps_peer_t *peer = ps_peers_lookup (self->peers, id, id_size);
    return peer ? (int64_t)peer->rank : -1;
}

void
ps_router_tap_message (ps_router_t *self, int kind, const uint8_t *id, size_t id_size,
                       const ps_envelope_t *envelope, zmq_msg_t *frames, size_t nframes)
{
    ps_tap_scene_t scene = s_scene (self);
    ps_tap_message (self->tap, &scene, kind, s_rank_of (self, id, id_size), id, id_size, envelope,
                    frames, nframes, kind == PSMQ__TAP_KIND__TAP_REPLY ? &self->timing : NULL);
}

void
ps_router_tap_event (ps_router_t *self, int kind, int64_t worker, const char *format, ...)
{
    char reason[PS_MAX_ERROR_LEN];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    ps_tap_scene_t scene = s_scene (self);
    int64_t clock = worker >= 0 ? ps_vclock_clock (self->vclock, (uint32_t)worker) : 0;
    ps_tap_event (self->tap, &scene, kind, worker, clock, "%s", reason);
}

void
ps_router_observe_reply (ps_router_t *self, int type)
{
    if (!self->latency || !self->timing.received_us)
        return;
    int64_t total = zclock_usecs () - self->timing.received_us;
    int64_t queued = total - self->timing.parked_us - self->timing.aggregation_us;
    ps_latency_observe (self->latency, type, queued, self->timing.aggregation_us,
                        self->timing.parked_us);
}

// ------------------------------------------------------------------ replies

void
ps_router_send_routing_id (ps_router_t *self, const uint8_t *id, size_t id_size)
{
    zmq_send (self->router_handle, id, id_size, ZMQ_SNDMORE);
    self->router_sent++;
}

//  Encode and send an envelope and its frames (consumed) to the peer at
//  id; no accounting
void
ps_router_send_raw (ps_router_t *self, const uint8_t *id, size_t id_size,
                    const ps_envelope_t *envelope, zmq_msg_t *frames, size_t nframes)
{
    zmq_msg_t msg;
    if (ps_codec_encode (envelope, &msg)) {
        ps_error ("out of memory encoding a %s reply", ps_codec_type_name (envelope->type));
        for (size_t i = 0; i < nframes; i++)
            zmq_msg_close (&frames[i]);
        return;
    }
    ps_router_send_routing_id (self, id, id_size);
    zmq_msg_send (&msg, self->router_handle, nframes ? ZMQ_SNDMORE : 0);
    for (size_t i = 0; i < nframes; i++)
        zmq_msg_send (&frames[i], self->router_handle, i + 1 < nframes ? ZMQ_SNDMORE : 0);
}

//  Send an envelope (and optional frames, consumed) to the peer at id
void
ps_router_send (ps_router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *envelope,
                zmq_msg_t *frames, size_t nframes)
{
    if (self->tap_on)
        ps_router_tap_message (self, PSMQ__TAP_KIND__TAP_REPLY, id, id_size, envelope, frames,
                               nframes);
    ps_router_observe_reply (self, envelope->type);
    bool known = envelope->type >= 0 && envelope->type <= PSMQ__MSG_TYPE__ERROR;
    for (size_t i = 0; i < nframes; i++) {
        self->stats.bytes_out += zmq_msg_size (&frames[i]);
        if (known)
            self->stats.bytes_out_type[envelope->type] += zmq_msg_size (&frames[i]);
    }
    if (known)
        self->stats.out[envelope->type]++;
    ps_router_send_raw (self, id, id_size, envelope, frames, nframes);
}

void
ps_router_reply (ps_router_t *self, const uint8_t *id, size_t id_size, const ps_envelope_t *request,
                 int64_t clock)
{
    ps_envelope_t reply;
    ps_codec_reply_to (&reply, request);
    reply.clock = clock;
    reply.min_clock = ps_vclock_min (self->vclock);
    //  A push that finishes the clock is answered only here, as the
    //  CLOCK it carries (its plain ack is never sent): the reply says so
    reply.clock_after = request->type == PSMQ__MSG_TYPE__PUSH && request->clock_after;
    ps_router_send (self, id, id_size, &reply, NULL, 0);
}

//  Answer with an ERROR envelope, count and log it (at a bounded rate)
void
ps_router_reject (ps_router_t *self, const uint8_t *id, size_t id_size,
                  const ps_envelope_t *request, const ps_problem_t *problem)
{
    self->stats.rejected++;
    self->stats
        .rejected_code[problem->code > 0 && problem->code < PS_ROUTER_ERR_CODES ? problem->code
                                                                                : 0]++;
    if (self->tap_on) {
        ps_tap_scene_t scene = s_scene (self);
        ps_tap_reject (self->tap, &scene, s_rank_of (self, id, id_size), id, id_size, request,
                       problem);
    }
    int64_t second = zclock_mono () / 1000;
    if (second != self->reject_window) {
        if (self->reject_logged > REJECT_LOG_PER_SECOND)
            ps_warn ("%u more rejected messages in the last second",
                     self->reject_logged - REJECT_LOG_PER_SECOND);
        self->reject_window = second;
        self->reject_logged = 0;
    }
    if (self->reject_logged++ < REJECT_LOG_PER_SECOND) {
        ps_peer_t *peer = ps_peers_lookup (self->peers, id, id_size);
        char who[80] = "an unregistered peer";
        if (peer)
            snprintf (who, sizeof who, "worker %u", peer->rank);
        //  Where from, when the message at hand came over TCP or ipc
        char key[16];
        snprintf (key, sizeof key, "%d", self->fd);
        const char *remote =
            self->fd >= 0 && self->connections ? zhashx_lookup (self->connections, key) : NULL;
        ps_warn ("rejected %s from %s%s%s: %s: %s",
                 request ? ps_codec_type_name (request->type) : "message", who,
                 remote ? " at " : "", remote ? remote : "", ps_codec_error_name (problem->code),
                 problem->message);
    }
    zmq_msg_t msg;
    if (ps_codec_encode_error (request, problem->code, problem->message,
                               ps_vclock_min (self->vclock), &msg))
        return;
    ps_router_send_routing_id (self, id, id_size);
    zmq_msg_send (&msg, self->router_handle, 0);
    self->stats.out[PSMQ__MSG_TYPE__ERROR]++;
}
