/*  =========================================================================
    ps_broker - the broker object and the ROUTER loop's thread

    ps_broker_new starts an actor that binds the ROUTER socket, starts the
    aggregation thread (ps_aggregator) and runs the poll loop below until
    ps_broker_destroy. The loop waits on the owner's pipe, the ROUTER
    socket, the aggregator's pipe, the tap's subscriptions, the socket
    monitor and, with --metrics, the scrapes' pipe (ps_metrics), and hands
    each message to ps_router (requests) or to the modules that own the
    state it concerns. Setup and teardown of that state live here too;
    nothing else does.

    The socket monitor tells when a worker's TCP (or ipc) connection
    closes, so that its rank is evicted at once rather than after its
    silence: libzmq names a connection by its file descriptor in the
    monitor's events and in each message it delivers (ZMQ_SRCFD), and
    ps_router notes each peer's. A descriptor is reused as soon as it is
    closed, so the order matters: the monitor's events are all read before
    each message is, and since libzmq sends a connection's DISCONNECTED
    before it closes the descriptor and a new connection's ACCEPTED before
    its first message can come, an event is always handled before the
    messages of any connection accepted after it.
    ========================================================================= */

#include "ps_broker.h"
#include "ps_monitor.h"
#include "ps_poll.h"
#include "ps_handoff.h"
#include "ps_info.h"
#include "ps_log.h"
#include "ps_resources.h"
#include "ps_router.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct ps_broker_t {
    zactor_t *actor;        //  runs the ROUTER loop
    char endpoint[256];     //  what the ROUTER loop bound
    char tap_endpoint[256]; //  where the tap listens, "" when off
    char metrics_url[320];  //  where the metrics are served, "" when not
};

static void
s_pipe_receive (ps_router_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else if (streq (command, "INFO")) {
        char *json = ps_info_json (self);
        zstr_send (self->pipe, json ? json : "{}");
        free (json);
    }
    zstr_free (&command);
}

//  A scrape asks for a snapshot: the INFO JSON, with the latency histograms
static void
s_metrics_receive (ps_router_t *self)
{
    if (!ps_metrics_asked (self->metrics))
        return;
    char *json = ps_info_json (self);
    ps_metrics_answer (self->metrics, json ? json : "{}");
    free (json);
}

//  Watch the ROUTER's connections: libzmq's socket monitor reports accepts
//  and disconnects by file descriptor, so we note each peer's address at
//  accept time to name it when it goes. Before the bind, so that no
//  connection is accepted unseen.
static void
s_monitor_setup (ps_router_t *self)
{
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://psbroker-monitor-%p", (void *)self);
    if (zmq_socket_monitor (self->router_handle, endpoint,
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)) {
        ps_warn ("cannot watch connections (%s): a worker that goes is evicted only "
                 "after its silence",
                 zmq_strerror (zmq_errno ()));
        return;
    }
    self->monitor = zsock_new (ZMQ_PAIR);
    self->connections = zhashx_new ();
    if (!self->monitor || !self->connections || zsock_connect (self->monitor, "%s", endpoint)) {
        zsock_destroy (&self->monitor);
        zhashx_destroy (&self->connections);
        zmq_socket_monitor (self->router_handle, NULL, 0);
        return;
    }
    zhashx_set_destructor (self->connections, (zhashx_destructor_fn *)zstr_free);
    self->monitor_fd = zsock_fd (self->monitor);
}

static void
s_monitor_receive (ps_router_t *self)
{
    uint16_t kind;
    int32_t fd;
    if (ps_monitor_read (self->monitor, &kind, &fd))
        return;
    char key[16];
    snprintf (key, sizeof key, "%d", fd);
    if (kind == ZMQ_EVENT_ACCEPTED) {
        char *remote = ps_monitor_peer (fd, "");
        if (self->tap_on)
            ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_CONNECT, -1, "tcp connection from %s",
                                 remote);
        zhashx_update (self->connections, key, remote);
        ps_router_connection_opened (self, fd);
        ps_router_limits_opened (self, fd);
    }
    else if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        //  Authentication (ps_auth.h): counted; the close that follows
        //  names the peer. The event's value is a status, not an fd
        ps_auth_handshake_failed (self->auth, kind, (uint32_t)fd);
    else if (kind == ZMQ_EVENT_DISCONNECTED) {
        const char *remote = zhashx_lookup (self->connections, key);
        const char *refused = ps_auth_closed (self->auth, remote);
        if (refused && self->tap_on)
            ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_REJECT, -1,
                                 "refused the connection from %s: %s", remote ? remote : "?",
                                 refused);
        if (self->tap_on)
            ps_router_tap_event (self, PSMQ__TAP_KIND__TAP_DISCONNECT, -1,
                                 "tcp connection from %s closed", remote ? remote : "?");
        ps_router_connection_closed (self, fd);
        ps_router_limits_closed (self, fd);
        zhashx_delete (self->connections, key);
    }
}

//  Handle every event the monitor has queued (one ZMQ_EVENTS check when
//  there is none). All of them, unbounded: events come no faster than
//  connections are made
static void
s_monitor_drain (ps_router_t *self)
{
    while (self->monitor && (zsock_events (self->monitor) & ZMQ_POLLIN))
        s_monitor_receive (self);
}

//  The same before each message is read (see the top), in one poll(2)
//  when no event came: every drain leaves the monitor without a message
//  and nothing else calls it, so an event that comes makes its
//  descriptor readable (ps_poll_signalled)
static void
s_monitor_catch_up (ps_router_t *self)
{
    if (self->monitor && ps_poll_signalled (self->monitor_fd))
        s_monitor_drain (self);
}

//  The sockets the loop waits on, each one's index in the poll set, -1
//  for one not in use
typedef struct {
    int pipe, router, agg, monitor, tap, tap_watch, writer, metrics;
} loop_items_t;

static int
s_add (ps_poll_t *poll, void *socket)
{
    int index = socket ? ps_poll_add (poll, socket) : -1;
    assert (!socket || index >= 0);
    return index;
}

static void
s_router_loop (ps_router_t *self)
{
    ps_poll_t *poll = ps_poll_new ();
    assert (poll);
    loop_items_t at = {
        .pipe = s_add (poll, zsock_resolve (self->pipe)),
        .router = s_add (poll, self->router_handle),
        .agg = s_add (poll, self->agg_handle),
        .monitor = s_add (poll, self->monitor ? zsock_resolve (self->monitor) : NULL),
        .tap = s_add (poll, self->tap ? ps_tap_handle (self->tap) : NULL),
        //  Authentication (ps_auth.h): the tap readers' refused handshakes
        .tap_watch = s_add (poll, self->tap ? ps_tap_watched (self->tap) : NULL),
        //  The checkpoint writer's pipe
        .writer =
            s_add (poll, self->checkpointer ? ps_checkpointer_handle (self->checkpointer) : NULL),
        //  Scrapes asking for snapshots (ps_metrics.h)
        .metrics = s_add (poll, self->metrics ? ps_metrics_handle (self->metrics) : NULL),
    };
    uint32_t check_every = self->config.heartbeat_ms;
    self->next_check = zclock_mono () + check_every;
    while (!self->terminated) {
        int64_t wait = ps_router_checkpoint_wait (self, self->next_check - zclock_mono ());
        if (ps_poll_wait (poll, wait > 0 ? (int)wait : 0) == -1 && errno != EINTR)
            break;
        //  What was sent on the aggregator's pipe and the ROUTER since
        //  each was last asked (ps_poll_touch below)
        uint64_t agg_asked = self->agg_sent, router_asked = self->router_sent;
        if (at.tap >= 0 && ps_poll_ready (poll, at.tap))
            self->tap_on = ps_tap_receive (self->tap);
        if (at.monitor >= 0 && ps_poll_ready (poll, at.monitor))
            s_monitor_drain (self);
        if (at.tap_watch >= 0 && ps_poll_ready (poll, at.tap_watch))
            ps_tap_watch (self->tap, self->auth);
        if (ps_poll_ready (poll, at.pipe))
            s_pipe_receive (self);
        //  Aggregator first: its DONEs release parked requests
        bool more = ps_poll_ready (poll, at.agg);
        for (int burst = 0; burst < 1000 && more; burst++) {
            ps_router_agg_receive (self);
            more = ps_poll_ask (poll, at.agg) == 1;
            agg_asked = self->agg_sent;
        }
        more = ps_poll_ready (poll, at.router);
        for (int burst = 0; burst < 100 && more; burst++) {
            s_monitor_catch_up (self);
            ps_router_receive (self);
            more = ps_poll_ask (poll, at.router) == 1;
            router_asked = self->router_sent;
        }
        if (at.writer >= 0 && ps_poll_ready (poll, at.writer))
            ps_router_checkpoint_written (self);
        if (at.metrics >= 0 && ps_poll_ready (poll, at.metrics))
            s_metrics_receive (self);
        ps_router_checkpoint_tick (self);
        if (zclock_mono () >= self->next_check) {
            ps_router_evict_silent (self);
            ps_router_evict_hung (self);
            ps_router_limits_tick (self);
            self->next_check = zclock_mono () + check_every;
        }
        //  A socket sent on after it was last asked may have taken in the
        //  signal of a message (ps_poll.h). The pipe, the metrics' pipe
        //  and the monitors are only answered when they were ready, which
        //  ps_poll counts already; tap records go out only while
        //  somebody listens, and checkpoints only with a writer
        if (self->router_sent != router_asked)
            ps_poll_touch (poll, at.router);
        if (self->agg_sent != agg_asked)
            ps_poll_touch (poll, at.agg);
        if (at.tap >= 0 && self->tap_on)
            ps_poll_touch (poll, at.tap);
        if (at.writer >= 0)
            ps_poll_touch (poll, at.writer);
    }
    ps_poll_destroy (&poll);
    ps_router_shutdown (self);
}

//  The default tap endpoint: private to this user (a 0700 directory),
//  named after the broker's port and pid, or its pid for non-TCP endpoints.
//  The folder is checked (ps_auth_check_private_dir): anybody may make
//  /tmp/psmq-UID before us, and whoever owns it can read the tap
static int
s_default_tap_endpoint (const char *bound, char *endpoint, size_t size, ps_problem_t *problem)
{
    const char *runtime = getenv ("XDG_RUNTIME_DIR");
    char dir[200];
    struct stat info;
    if (runtime && *runtime && stat (runtime, &info) == 0 && S_ISDIR (info.st_mode))
        snprintf (dir, sizeof dir, "%s", runtime);
    else {
        snprintf (dir, sizeof dir, "/tmp/psmq-%u", (unsigned)getuid ());
        if (mkdir (dir, 0700) != 0 && errno != EEXIST)
            return ps_problem_set (problem, 0, "cannot make the runtime folder %s: %s", dir,
                                   strerror (errno));
    }
    if (ps_auth_check_private_dir (dir, problem))
        return -1;
    const char *colon = strrchr (bound, ':');
    if (strncmp (bound, "tcp://", 6) == 0 && colon)
        //  The pid too: a broker stopping unlinks its file, which must not
        //  be the one a new broker on the same port has just bound
        snprintf (endpoint, size, "ipc://%s/psmq-tap-%s-%d.ipc", dir, colon + 1, (int)getpid ());
    else
        snprintf (endpoint, size, "ipc://%s/psmq-tap-pid%d.ipc", dir, (int)getpid ());
    return 0;
}

static int
s_tap_setup (ps_router_t *self, ps_problem_t *problem)
{
    char endpoint[300];
    if (self->config.tap_endpoint)
        snprintf (endpoint, sizeof endpoint, "%s", self->config.tap_endpoint);
    else if (s_default_tap_endpoint (self->bound, endpoint, sizeof endpoint, problem))
        return -1;
    self->tap = ps_tap_new (endpoint, self->config.tap_payload, self->auth, problem);
    if (!self->tap)
        return -1;
    return 0;
}

//  Serve metrics (ps_metrics.h), with the latency histograms they show
static int
s_metrics_setup (ps_router_t *self, ps_problem_t *problem)
{
    self->latency = ps_latency_new ();
    if (!self->latency)
        return ps_problem_set (problem, 0, "out of memory starting the broker");
    self->metrics = ps_metrics_new (self->config.metrics, problem);
    return self->metrics ? 0 : -1;
}

static int
s_router_setup (ps_router_t *self, const char *endpoint, ps_problem_t *problem)
{
    self->router = zsock_new (ZMQ_ROUTER);
    if (!self->router)
        return ps_problem_set (problem, 0, "cannot create the ROUTER socket");
    zsock_set_maxmsgsize (self->router, PS_MAX_FRAME_BYTES);
    zsock_set_sndhwm (self->router, PS_SNDHWM);
    zsock_set_rcvhwm (self->router, PS_RCVHWM);
    zsock_set_linger (self->router, 200);
    //  Workers choose their routing ids; a worker that reconnects (after a
    //  network cut, or after dropping a stuck push) takes its own back
    zsock_set_router_handover (self->router, 1);
    //  ZMTP heartbeats: libzmq pings every connection and closes one that
    //  sends nothing for the timeout (a host that vanished leaves its
    //  connections half open: no read would ever end them), which the
    //  monitor reports and the loop evicts; the TTL tells workers to drop
    //  theirs to a broker that went silent as long
    zsock_set_heartbeat_ivl (self->router, (int)self->config.heartbeat_ms);
    zsock_set_heartbeat_timeout (self->router, (int)self->config.timeout_ms);
    zsock_set_heartbeat_ttl (self->router, self->config.timeout_ms < PS_MAX_ZMTP_TTL_MS
                                               ? (int)self->config.timeout_ms
                                               : PS_MAX_ZMTP_TTL_MS);
    self->router_handle = zsock_resolve (self->router);
    //  Authentication (ps_auth.h): keys or a ZAP domain, before the bind
    self->auth = ps_auth_new (&self->config, problem);
    if (!self->auth)
        return -1;
    ps_auth_apply (self->auth, self->router, endpoint);
    s_monitor_setup (self);
    //  libzmq's own bind, not czmq's: for a port of "*" czmq takes the
    //  lowest free port of its range, so a restarted broker would often get
    //  its predecessor's port and its old workers; libzmq lets the kernel
    //  choose an ephemeral one
    if (zmq_bind (zsock_resolve (self->router), endpoint) == -1)
        return ps_problem_set (problem, 0, "cannot bind %s: %s", endpoint,
                               zmq_strerror (zmq_errno ()));
    char *last = zsock_last_endpoint (self->router);
    snprintf (self->bound, sizeof self->bound, "%s", last ? last : endpoint);
    zstr_free (&last);

    //  Limits: the store's, resolved here so that INFO shows the bytes
    if (!self->config.max_memory || self->config.max_memory > PS_MAX_STORE_BYTES)
        self->config.max_memory =
            self->config.max_memory ? PS_MAX_STORE_BYTES : ps_resources_default_store ();
    if (ps_router_limits_setup (self, problem))
        return -1;
    ps_aggregator_config_t agg_config = {.defaults = self->config.optim,
                                         .taken = &self->publishes_taken,
                                         .staleness = self->config.staleness,
                                         .accept_nonfinite = self->config.accept_nonfinite,
                                         .max_store_bytes = self->config.max_memory};
    self->aggregator = zactor_new (ps_aggregator_actor, &agg_config);
    PS_HANDOFF_RECEIVE (&agg_config);
    self->agg_handle = zsock_resolve (self->aggregator);
    self->codec = ps_codec_new ();
    self->parked_codec = ps_codec_new ();
    self->vclock = ps_vclock_new (self->config.workers, self->config.staleness);
    self->peers = ps_peers_new (self->config.workers);
    self->progress = ps_progress_new (self->config.workers, self->config.progress_ms,
                                      self->config.progress_min_ms);
    self->parking = ps_parking_new ();
    self->published = ps_published_new ();
    self->frames = calloc (PS_ROUTER_MAX_FRAMES, sizeof *self->frames);
    self->started = zclock_mono ();
    //  A new number at every start tells workers that a broker restarted
    self->incarnation = ps_router_new_incarnation (0);
    if (self->config.tap && s_tap_setup (self, problem))
        return -1;
    if (self->config.metrics && s_metrics_setup (self, problem))
        return -1;
    if (!self->aggregator || !self->codec || !self->parked_codec || !self->vclock || !self->peers ||
        !self->progress || !self->parking || !self->published || !self->frames)
        return ps_problem_set (problem, 0, "out of memory starting the broker");
    return ps_router_checkpoint_setup (self, problem);
}

static void
s_router_teardown (ps_router_t *self)
{
    //  First: a scrape waiting for us gets its 503 now
    ps_metrics_destroy (&self->metrics);
    ps_latency_destroy (&self->latency);
    zactor_destroy (&self->aggregator);
    ps_published_destroy (&self->published);
    ps_parking_destroy (&self->parking);
    ps_peers_destroy (&self->peers);
    ps_progress_destroy (&self->progress);
    free (self->frames);
    free (self->plan);
    for (uint32_t i = 0; self->group && i < ps_router_shards (self); i++)
        free (self->group[i]);
    free (self->group);
    if (self->monitor)
        zmq_socket_monitor (self->router_handle, NULL, 0);
    zsock_destroy (&self->monitor);
    zhashx_destroy (&self->connections);
    ps_router_limits_teardown (self);
    ps_tap_destroy (&self->tap);
    ps_checkpointer_destroy (&self->checkpointer);
    ps_vclock_destroy (&self->vclock);
    ps_codec_destroy (&self->codec);
    ps_codec_destroy (&self->parked_codec);
    zsock_destroy (&self->router);
    ps_auth_destroy (&self->auth);
}

static void
s_wait_for_term (zsock_t *pipe)
{
    while (true) {
        char *command = zstr_recv (pipe);
        bool term = !command || streq (command, "$TERM");
        zstr_free (&command);
        if (term)
            return;
    }
}

//  The ROUTER loop's actor: binds, reports "OK endpoint" or "ERR why" on
//  the pipe, serves until $TERM
static void
s_router_actor (zsock_t *pipe, void *args)
{
    ps_router_t *self = calloc (1, sizeof *self);
    assert (self);
    self->config = *(ps_broker_config_t *)args;
    self->pipe = pipe;
    const char *endpoint = self->config.endpoint;
    self->config.endpoint = NULL; //  borrowed from the caller: not kept
    ps_problem_t problem;
    int rc = s_router_setup (self, endpoint, &problem);
    //  The caller's config and strings are not ours past this point
    self->config.tap_endpoint = NULL;
    self->config.checkpoint_dir = NULL;
    self->config.curve_secret = self->config.allow_keys = self->config.allow_from = NULL;
    self->config.metrics = NULL;
    PS_HANDOFF_SEND (args);
    zsock_signal (pipe, 0);
    if (rc == 0) {
        zstr_sendf (pipe, "OK %s %s %s", self->bound, self->tap ? ps_tap_endpoint (self->tap) : "-",
                    self->metrics ? ps_metrics_url (self->metrics) : "-");
        s_router_loop (self);
    }
    else {
        zstr_sendf (pipe, "ERR %s", problem.message);
        s_wait_for_term (pipe);
    }
    s_router_teardown (self);
    free (self);
}

// ------------------------------------------------------------ public API

void
ps_broker_config_defaults (ps_broker_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->endpoint = "tcp://*:5555";
    config->workers = 1;
    config->staleness = 0;
    ps_optim_config_defaults (&config->optim);
    config->heartbeat_ms = PS_DEFAULT_HEARTBEAT_MS;
    config->timeout_ms = PS_DEFAULT_TIMEOUT_MS;
    config->progress_ms = PS_PROGRESS_AUTO;
    config->progress_min_ms = PS_DEFAULT_PROGRESS_FLOOR_MS;
    config->tap = true;
    config->checkpoint_seconds = PS_DEFAULT_CHECKPOINT_SECONDS;
    config->checkpoint_rate = PS_DEFAULT_CHECKPOINT_RATE;
}

int
ps_broker_config_check (const ps_broker_config_t *config, ps_problem_t *problem)
{
    if (!config->endpoint || !*config->endpoint)
        return ps_problem_set (problem, 0, "no endpoint to bind");
    if (config->workers == 0 || config->workers > PS_MAX_WORKERS)
        return ps_problem_set (problem, 0, "workers %u must be between 1 and %d", config->workers,
                               PS_MAX_WORKERS);
    if (config->staleness < -1 || config->staleness > PS_MAX_STALENESS)
        return ps_problem_set (problem, 0, "staleness %d must be -1 (ASP), 0 (BSP) or 1..%d (SSP)",
                               config->staleness, PS_MAX_STALENESS);
    if (config->heartbeat_ms < PS_MIN_HEARTBEAT_MS || config->timeout_ms > PS_MAX_TIMEOUT_MS ||
        config->timeout_ms < 2 * config->heartbeat_ms)
        return ps_problem_set (problem, 0,
                               "heartbeat %u ms and timeout %u ms: the heartbeat must be at "
                               "least %d ms and the timeout at least twice it (and at most %d ms)",
                               config->heartbeat_ms, config->timeout_ms, PS_MIN_HEARTBEAT_MS,
                               PS_MAX_TIMEOUT_MS);
    if ((config->progress_ms != PS_PROGRESS_AUTO &&
         (config->progress_ms < 0 || config->progress_ms > PS_MAX_PROGRESS_DEADLINE_MS)) ||
        config->progress_min_ms < 1 || config->progress_min_ms > PS_MAX_PROGRESS_DEADLINE_MS)
        return ps_problem_set (problem, 0,
                               "progress deadline %" PRId64 " ms (floor %" PRId64
                               " ms): 0 (off), automatic, or up to %d ms, and a floor of 1 to "
                               "%d ms",
                               config->progress_ms, config->progress_min_ms,
                               PS_MAX_PROGRESS_DEADLINE_MS, PS_MAX_PROGRESS_DEADLINE_MS);
    uint32_t shards = config->shards ? config->shards : 1;
    if (config->shards > PS_MAX_SHARDS || config->shard >= shards)
        return ps_problem_set (problem, 0,
                               "shard %u of %u: the group has 1..%d brokers, numbered from 0",
                               config->shard, shards, PS_MAX_SHARDS);
    if (config->checkpoint_seconds != 0 &&
        !(config->checkpoint_seconds >= PS_MIN_CHECKPOINT_SECONDS &&
          config->checkpoint_seconds <= PS_MAX_CHECKPOINT_SECONDS))
        return ps_problem_set (
            problem, 0, "checkpoint interval %g s: 0 (none) or from %g to %d seconds",
            config->checkpoint_seconds, PS_MIN_CHECKPOINT_SECONDS, PS_MAX_CHECKPOINT_SECONDS);
    if (config->checkpoint_clocks > PS_MAX_CHECKPOINT_CLOCKS)
        return ps_problem_set (problem, 0, "checkpoint every %llu clocks: at most %d",
                               (unsigned long long)config->checkpoint_clocks,
                               PS_MAX_CHECKPOINT_CLOCKS);
    //  Limits (0: the defaults)
    if (config->max_memory && config->max_memory < PS_MIN_STORE_BYTES)
        return ps_problem_set (problem, 0, "store limit of %llu bytes: at least %llu",
                               (unsigned long long)config->max_memory,
                               (unsigned long long)PS_MIN_STORE_BYTES);
    if (config->max_unread && config->max_unread < PS_MIN_MAX_UNREAD)
        return ps_problem_set (problem, 0, "unread pull replies limit of %llu bytes: at least %llu",
                               (unsigned long long)config->max_unread,
                               (unsigned long long)PS_MIN_MAX_UNREAD);
    if (config->max_connections && config->max_connections < PS_MIN_CONNECTIONS)
        return ps_problem_set (problem, 0, "connection cap %llu: at least %d",
                               (unsigned long long)config->max_connections, PS_MIN_CONNECTIONS);
    //  Authentication (ps_auth.h), and the tap's payload: tensors go only
    //  to readers that proved a key, or that are on this host
    if (ps_auth_config_check (config, problem))
        return -1;
    if (config->tap && config->tap_payload && !config->curve_secret && config->tap_endpoint &&
        !ps_auth_endpoint_local (config->tap_endpoint))
        return ps_problem_set (problem, 0,
                               "--tap-payload with the tap at %s: the model's tensors would go "
                               "to anybody who reaches it; bind the tap to ipc:// or a loopback "
                               "address (tcp://127.0.0.1:PORT), or give the broker CURVE keys "
                               "(--curve-secret)",
                               config->tap_endpoint);
    if (config->metrics && ps_metrics_check_address (config->metrics, problem))
        return -1;
    return ps_optim_config_check (&config->optim, problem);
}

ps_broker_t *
ps_broker_new (const ps_broker_config_t *config, ps_problem_t *problem)
{
    if (ps_broker_config_check (config, problem))
        return NULL;
    ps_broker_t *self = calloc (1, sizeof *self);
    if (!self) {
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    self->actor = zactor_new (s_router_actor, (void *)config);
    PS_HANDOFF_RECEIVE (config);
    char *status = self->actor ? zstr_recv (self->actor) : NULL;
    if (!status || strncmp (status, "OK ", 3) != 0) {
        ps_problem_set (problem, 0, "%s",
                        status && strlen (status) > 4 ? status + 4 : "cannot start");
        zstr_free (&status);
        ps_broker_destroy (&self);
        return NULL;
    }
    char tap[256] = "", metrics[320] = "";
    if (sscanf (status + 3, "%255s %255s %319s", self->endpoint, tap, metrics) != 3)
        tap[0] = metrics[0] = 0;
    snprintf (self->tap_endpoint, sizeof self->tap_endpoint, "%s", strcmp (tap, "-") ? tap : "");
    snprintf (self->metrics_url, sizeof self->metrics_url, "%s",
              strcmp (metrics, "-") ? metrics : "");
    zstr_free (&status);
    return self;
}

void
ps_broker_destroy (ps_broker_t **self_p)
{
    assert (self_p);
    ps_broker_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

const char *
ps_broker_endpoint (ps_broker_t *self)
{
    assert (self);
    return self->endpoint;
}

int
ps_broker_port (ps_broker_t *self)
{
    assert (self);
    const char *colon = strrchr (self->endpoint, ':');
    if (strncmp (self->endpoint, "tcp://", 6) != 0 || !colon)
        return 0;
    return (int)strtol (colon + 1, NULL, 10);
}

const char *
ps_broker_tap_endpoint (ps_broker_t *self)
{
    assert (self);
    return self->tap_endpoint;
}

const char *
ps_broker_metrics_url (ps_broker_t *self)
{
    assert (self);
    return self->metrics_url;
}

char *
ps_broker_info (ps_broker_t *self)
{
    assert (self);
    if (zstr_send (self->actor, "INFO"))
        return NULL;
    return zstr_recv (self->actor);
}
