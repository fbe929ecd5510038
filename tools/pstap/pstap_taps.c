/*  =========================================================================
    pstap_taps - the taps of the brokers pstap reads

    One SUB socket per broker, not one socket connected to every tap, so
    that pstap knows which tap a record came on and can tell when an
    ipc:// tap of the same name is another broker's. Filters become XPUB
    subscriptions (ps_tapfilter_topics), so the broker does not even
    build what we would throw away.

    A SUB socket connects without complaint to an endpoint where nobody
    listens, so each connection is watched (zmq_socket_monitor) until the
    ZMTP handshake: that is the only way to say "unreachable", or "not a
    tap" (the broker's own ROUTER accepts the connection but never
    completes a handshake with a SUB socket), instead of waiting silently
    forever. Every wait is bounded by --timeout-ms and polled in steps of
    PSTAP_POLL_MS so that a signal is seen soon.
    ========================================================================= */

#include "pstap_taps.h"
#include "pstap_info.h"
#include "ps_limits.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Every array at its bound (ps_limits.h), in one allocation: about
//  700 KB, most of it frames of the largest message, whose pages are only
//  touched when such a message comes
struct pstap_taps_t {
    void *context;                                  //  our ZeroMQ context
    zmq_pollitem_t items[PS_MAX_SHARDS];            //  SUB sockets, one per tap reached
    pstap_member_t *sources[PS_MAX_SHARDS];         //  the broker of each
    size_t nsubs;                                   //  taps reached
    size_t next;                                    //  where the next receive starts
    zmq_msg_t msgs[PS_TAPLOG_MAX_FRAMES + 1];       //  the frames of the message at hand
    size_t nmsgs;                                   //  frames received
    ps_taplog_frame_t frames[PS_TAPLOG_MAX_FRAMES]; //  the same, as a taplog entry sees them
    char topic[PS_TAP_TOPIC_MAX];                   //  the topic, NUL-terminated
    uint64_t oversized;                             //  messages with too many frames, dropped
    const char *command;                            //  for messages
    pstap_group_t *group;                           //  the brokers, whose taps these are
};

static void
s_subscribe (const char *topic, void *arg)
{
    zmq_setsockopt (arg, ZMQ_SUBSCRIBE, topic, strlen (topic));
}

//  Something listens at endpoint, but not a tap: most often the broker's
//  own endpoint, whose ROUTER refuses (or ignores) a SUB socket
static void
s_not_a_tap (const char *command, const char *endpoint, const char *what)
{
    fprintf (stderr,
             "pstap %s: %s answers but is not a tap (%s); is it the broker's endpoint? "
             "then use --broker; or does the broker have CURVE keys? then give "
             "--curve-secret and --broker-key (or the broker refused the ones given)\n",
             command, endpoint, what);
}

//  Wait for the ZMTP handshake with the tap: a SUB socket connects
//  without complaint to an endpoint where nobody listens, so this is the
//  only way to say "unreachable" instead of waiting silently forever.
static int
s_tap_handshake (void *context, void *sub, const char *command, const char *endpoint,
                 int timeout_ms)
{
    char monitor_endpoint[64];
    snprintf (monitor_endpoint, sizeof monitor_endpoint, "inproc://pstap-monitor-%p", sub);
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    void *monitor = NULL;
    int rc = zmq_socket_monitor (sub, monitor_endpoint, events);
    if (rc == 0 && (monitor = zmq_socket (context, ZMQ_PAIR)) != NULL) {
        int linger = 0;
        zmq_setsockopt (monitor, ZMQ_LINGER, &linger, sizeof linger);
        rc = zmq_connect (monitor, monitor_endpoint);
    }
    if (rc || !monitor) {
        fprintf (stderr, "pstap %s: cannot watch the connection: %s\n", command,
                 zmq_strerror (zmq_errno ()));
        rc = -2;
    }
    else if (zmq_connect (sub, endpoint)) {
        fprintf (stderr, "pstap %s: bad tap endpoint '%s': %s\n", command, endpoint,
                 zmq_strerror (zmq_errno ()));
        rc = -2;
    }
    int64_t deadline = zclock_mono () + timeout_ms;
    bool connected = false, reached = false;
    while (rc == 0 && !connected && !zsys_interrupted) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        zmq_pollitem_t item = {monitor, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, left < PSTAP_POLL_MS ? left : PSTAP_POLL_MS) <= 0)
            continue;
        zmq_msg_t event, address;
        zmq_msg_init (&event);
        zmq_msg_init (&address);
        if (zmq_msg_recv (&event, monitor, 0) >= 6 && zmq_msg_more (&event) &&
            zmq_msg_recv (&address, monitor, 0) >= 0) {
            uint16_t id;
            memcpy (&id, zmq_msg_data (&event), sizeof id);
            if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                connected = true;
            else if (id == ZMQ_EVENT_CONNECTED)
                reached = true;
            else {
                s_not_a_tap (command, endpoint, "the ZeroMQ handshake failed");
                rc = -2;
            }
        }
        zmq_msg_close (&event);
        zmq_msg_close (&address);
    }
    zmq_socket_monitor (sub, NULL, 0);
    if (monitor)
        zmq_close (monitor);
    //  A ROUTER (the broker's own endpoint) accepts the connection but
    //  never completes a handshake with a SUB socket
    if (rc == 0 && !connected && !zsys_interrupted && reached)
        s_not_a_tap (command, endpoint, "no ZeroMQ handshake in time");
    else if (rc == 0 && !connected && !zsys_interrupted)
        fprintf (stderr, "pstap %s: cannot reach the tap at %s within %d ms\n", command, endpoint,
                 timeout_ms);
    return connected ? 0 : -1;
}

void
pstap_taps_destroy (pstap_taps_t **self_p)
{
    pstap_taps_t *self = *self_p;
    if (!self)
        return;
    if (self->oversized)
        fprintf (stderr, "pstap %s: dropped %" PRIu64 " messages that were not tap records\n",
                 self->command, self->oversized);
    for (size_t i = 0; i < self->nmsgs; i++)
        zmq_msg_close (&self->msgs[i]);
    self->nmsgs = 0;
    for (size_t i = 0; i < self->nsubs; i++)
        zmq_close (self->items[i].socket);
    if (self->context)
        zmq_ctx_term (self->context);
    pstap_group_destroy (&self->group);
    free (self);
    *self_p = NULL;
}

//  Whether member has a tap to read; says why not on stderr
static bool
s_tap_known (const pstap_options_t *options, const pstap_member_t *member)
{
    char name[400];
    if (!member->tap)
        fprintf (stderr,
                 "pstap %s: the broker at %s reports no tap (a psbroker without one?); "
                 "give --tap EP\n",
                 options->command, pstap_member_name (member, name, sizeof name));
    else if (!*member->tap)
        fprintf (stderr, "pstap %s: the broker at %s runs without a tap (--no-tap)\n",
                 options->command, pstap_member_name (member, name, sizeof name));
    else if (strlen (member->tap) > 512)
        fprintf (stderr, "pstap %s: the tap endpoint of %s is too long\n", options->command,
                 pstap_member_name (member, name, sizeof name));
    return member->tap && *member->tap && strlen (member->tap) <= 512;
}

//  Connect a SUB socket to member's tap, subscribe to what the filter
//  needs, and wait for the handshake: 0, or -1 (said on stderr)
static int
s_tap_add (pstap_taps_t *self, const pstap_options_t *options, const ps_tapfilter_t *filter,
           pstap_member_t *member)
{
    void *sub = zmq_socket (self->context, ZMQ_SUB);
    if (!sub) {
        fprintf (stderr, "pstap %s: cannot create a ZeroMQ socket\n", options->command);
        return -1;
    }
    int64_t max_frame = PS_MAX_FRAME_BYTES;
    int hwm = PS_RCVHWM, linger = 0;
    zmq_setsockopt (sub, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
    zmq_setsockopt (sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    pstap_info_apply_keys (sub);
    ps_tapfilter_topics (filter, options->payload, s_subscribe, sub);
    if (s_tap_handshake (self->context, sub, options->command, member->tap, options->timeout_ms)) {
        zmq_close (sub);
        //  An ipc:// tap (psbroker's default) is a file on the broker's machine
        if (member->endpoint && strncmp (member->tap, "ipc://", 6) == 0 &&
            strncmp (member->endpoint, "ipc://", 6) != 0)
            fprintf (stderr,
                     "pstap %s: an ipc:// tap can only be read on its broker's machine: to "
                     "read it from here, start psbroker with --tap tcp://HOST:PORT\n",
                     options->command);
        return -1;
    }
    self->sources[self->nsubs] = member;
    self->items[self->nsubs] = (zmq_pollitem_t){sub, 0, ZMQ_POLLIN, 0};
    self->nsubs++;
    return 0;
}

pstap_taps_t *
pstap_taps_new (const pstap_options_t *options, const ps_tapfilter_t *filter)
{
    pstap_taps_t *self = calloc (1, sizeof *self);
    if (!self) {
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
        return NULL;
    }
    self->command = options->command;
    self->group = pstap_group_new (options);
    if (!self->group) {
        pstap_taps_destroy (&self);
        return NULL;
    }
    pstap_group_t *group = self->group;
    self->context = zmq_ctx_new ();
    if (!self->context) {
        fprintf (stderr, "pstap %s: cannot create a ZeroMQ socket\n", options->command);
        pstap_taps_destroy (&self);
        return NULL;
    }
    size_t tried = 0, unwanted = 0;
    for (size_t i = 0; i < group->nmembers && !zsys_interrupted; i++) {
        pstap_member_t *member = &group->members[i];
        //  A broker alone is shard 0; with --tap the shard is not known
        if (member->shards && !ps_tapfilter_wants_shard (filter, member->shard)) {
            unwanted++;
            continue;
        }
        if (!s_tap_known (options, member))
            continue;
        tried++;
        char name[400];
        if (s_tap_add (self, options, filter, member) && group->nmembers > 1 && !zsys_interrupted)
            fprintf (stderr, "pstap %s: going on without the tap of %s\n", options->command,
                     pstap_member_name (member, name, sizeof name));
    }
    if (self->nsubs == 0) {
        if (unwanted && !tried)
            fprintf (stderr, "pstap %s: the filter's shard= leaves none of the %zu brokers\n",
                     options->command, group->nmembers);
        else if (tried > 1)
            fprintf (stderr, "pstap %s: none of the %zu taps could be read\n", options->command,
                     tried);
        pstap_taps_destroy (&self);
    }
    return self;
}

//  From whichever tap has a message, taking turns; a message with too
//  many frames or no record is dropped
int
pstap_taps_receive (pstap_taps_t *self, int timeout_ms, ps_taplog_entry_t *entry,
                    pstap_member_t **source)
{
    for (size_t i = 0; i < self->nmsgs; i++)
        zmq_msg_close (&self->msgs[i]);
    self->nmsgs = 0;
    if (zmq_poll (self->items, (int)self->nsubs, timeout_ms) <= 0)
        return 0;
    size_t ready = self->nsubs;
    for (size_t turn = 0; turn < self->nsubs && ready == self->nsubs; turn++) {
        size_t i = (self->next + turn) % self->nsubs;
        if (self->items[i].revents & ZMQ_POLLIN)
            ready = i;
    }
    if (ready == self->nsubs)
        return 0;
    self->next = (ready + 1) % self->nsubs;
    *source = self->sources[ready];
    void *sub = self->items[ready].socket;
    bool more = true, overflow = false;
    while (more) {
        zmq_msg_t scratch;
        bool keep = self->nmsgs <= PS_TAPLOG_MAX_FRAMES;
        zmq_msg_t *msg = keep ? &self->msgs[self->nmsgs] : &scratch;
        zmq_msg_init (msg);
        if (zmq_msg_recv (msg, sub, 0) == -1) {
            zmq_msg_close (msg);
            return 0;
        }
        more = zmq_msg_more (msg);
        if (keep)
            self->nmsgs++;
        else {
            overflow = true;
            zmq_msg_close (msg);
        }
    }
    size_t topic_size = zmq_msg_size (&self->msgs[0]);
    if (overflow || self->nmsgs < 2 || topic_size >= PS_TAP_TOPIC_MAX) {
        self->oversized++;
        return 0;
    }
    memcpy (self->topic, zmq_msg_data (&self->msgs[0]), topic_size);
    self->topic[topic_size] = 0;
    for (size_t i = 1; i < self->nmsgs; i++)
        self->frames[i - 1] =
            (ps_taplog_frame_t){zmq_msg_data (&self->msgs[i]), zmq_msg_size (&self->msgs[i])};
    *entry = (ps_taplog_entry_t){self->topic, topic_size, self->frames, self->nmsgs - 1, 0};
    return 1;
}

pstap_group_t *
pstap_taps_group (pstap_taps_t *self)
{
    return self->group;
}
