/*  =========================================================================
    pstap - what the broker is doing, live or from a recording

    psbroker publishes one TapRecord per event on an XPUB socket (its tap);
    its INFO reply holds its counters. pstap reads both to answer the
    questions of a training job that goes slowly: which worker is the
    straggler, which keys are hot, who holds the slowest clock, and what
    garbage reaches the broker. Subcommands: watch (one line per record),
    stats (a snapshot of the counters), top (per worker and per key rates),
    clock (the vector clock), record (to a file) and read (the same views
    offline). docs/pstap.md shows each with real output.

    Every record goes through one pipeline, whatever its source (the SUB
    sockets or a ps_taplog file): decode with ps_codec_decode_tap (bad
    ones are counted and skipped, never trusted), watch the broker's
    `dropped` counter, pair replies with their requests by (shard, peer,
    seq), apply the filter, then hand the record to the view. So `pstap
    read` shows exactly what `pstap watch` would have shown, and the
    golden-file test of `read` covers the live path's logic too.

    Filters are turned into XPUB subscriptions (ps_tapfilter_topics) so the
    broker does not even build what we would throw away; what topics
    cannot express (keys, sizes, latency) is matched here. "payload."
    messages repeat a record with its tensor frames: they never count as
    records and only show as a continuation line.

    A broker group (psbroker --shard I --shards G) is watched as one: each
    member publishes on its own tap, so pstap asks every member's INFO for
    its tap and reads them all, one SUB socket per member (so that it knows
    which tap a record came on, and can tell when an ipc:// tap of the
    same name is another broker's). --broker takes the list of members, or
    one of them: its INFO names the others once a worker has joined
    (--member-only watches that one alone). Records say their shard, so
    the pipeline keys on it wherever a broker's numbers are its own: the
    pairing of requests and replies (every broker sees the same worker
    seq), the `dropped` counter, and top and stats' per-broker lines. A
    member that does not answer costs --timeout-ms, is named, and pstap
    goes on with the others.

    One thread. Every wait is bounded: the broker's INFO and the tap's
    handshake by --timeout-ms, the receive loop by a short poll that checks
    for SIGINT and SIGTERM, so Ctrl-C always stops cleanly. Exit codes: 0
    done, 1 cannot reach the broker or tap (or a damaged recording), 2 bad
    command line.
    ========================================================================= */

#include "ps_cli.h"
#include "ps_codec.h"
#include "ps_json.h"
#include "ps_limits.h"
#include "ps_taplog.h"
#include "ps_tapfilter.h"
#include "ps_tappair.h"
#include "ps_taprender.h"
#include "ps_worker.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

//  Default bound on reaching the broker (INFO) and the tap (handshake)
#define DEFAULT_TIMEOUT_MS 3000
//  Longest single wait of a receive loop, so that signals are seen soon
#define POLL_MS 100
//  Default refresh of top and clock
#define DEFAULT_INTERVAL_MS 1000
//  Requests remembered for pairing; past this the table is forgotten
//  (the broker parks at most 64 per worker, so this is never reached
//  by a healthy job)
#define MAX_PENDING (PS_MAX_WORKERS * PS_MAX_PARKED_PER_PEER)
//  Latency samples kept per row and interval for the percentiles
#define MAX_SAMPLES 65536
//  Rows listed at most: top's keys (hottest first), clock's parked requests
#define MAX_LISTED 20
//  Width of the longest bar of the clock view
#define BAR_WIDTH 40
//  Message types and record kinds we count (MsgType 0 .. 9, TapKind 0 .. 7)
#define NTYPES (PSMQ__MSG_TYPE__ERROR + 1)
#define NKINDS (PSMQ__TAP_KIND__TAP_CLOCK + 1)

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_signal (int signal_number)
{
    s_interrupted = 1;
}

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  Sleep until that monotonic time, or a signal
static void
s_sleep_until (int64_t until_ms)
{
    int64_t left;
    while (!s_interrupted && (left = until_ms - s_now_ms ()) > 0) {
        struct timespec step = {0, (left < POLL_MS ? left : POLL_MS) * 1000000L};
        nanosleep (&step, NULL);
    }
}

// ----------------------------------------------------------- formatting

//  A growable line for ps_taprender_*, which follow snprintf's contract
typedef struct {
    char *data;  //  the rendered line
    size_t size; //  room in data
} line_t;

static const char *
s_render (line_t *line, const ps_tap_record_t *record, bool json)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int needed = json ? ps_taprender_json (record, line->data, line->size)
                          : ps_taprender_text (record, line->data, line->size);
        if (needed < 0)
            return NULL;
        if ((size_t)needed < line->size)
            return line->data;
        char *bigger = realloc (line->data, (size_t)needed + 1);
        if (!bigger)
            return NULL;
        line->data = bigger;
        line->size = (size_t)needed + 1;
    }
    return NULL;
}

// ------------------------------------------------------------- options

//  Which options a subcommand takes
enum {
    O_BROKER = 1 << 0,
    O_TAP = 1 << 1,
    O_TIMEOUT = 1 << 2,
    O_FILTER = 1 << 3,
    O_COUNT = 1 << 4,
    O_JSON = 1 << 5,
    O_PAYLOAD = 1 << 6,
    O_BATCH = 1 << 7,
    O_ITERATIONS = 1 << 8,
    O_INTERVAL = 1 << 9,
    O_WRITE = 1 << 10,
    O_READ = 1 << 11,
    O_VIEW = 1 << 12,
    O_MEMBER_ONLY = 1 << 13,
    O_CONNECT = O_BROKER | O_TAP | O_TIMEOUT | O_MEMBER_ONLY
};

typedef enum { VIEW_WATCH, VIEW_STATS, VIEW_TOP, VIEW_CLOCK, VIEW_RECORD } view_t;

typedef struct {
    const char *command;    //  the subcommand
    const char *broker;     //  --broker: brokers, comma-separated; taps through INFO
    const char *tap;        //  --tap: taps themselves, comma-separated
    bool member_only;       //  --member-only: not the rest of the broker's group
    int timeout_ms;         //  bound on reaching either
    const char *filter;     //  -f, ps_tapfilter syntax
    uint64_t count;         //  -c: stop after this many records, 0 never
    bool json;              //  --json
    bool payload;           //  --payload: tensor frames too
    bool batch;             //  --batch: plain blocks, no screen control
    uint64_t iterations;    //  -n: refreshes of top and clock, 0 forever
    int interval_ms;        //  --interval-ms
    const char *write_path; //  -w
    const char *read_path;  //  -r
    view_t view;            //  what read shows
} options_t;

typedef struct command_t command_t;
struct command_t {
    const char *name;                      //  pstap NAME
    int (*run) (const options_t *options); //  its main
    unsigned allowed;                      //  O_* it takes
    const char *synopsis;                  //  after "pstap NAME"
    const char *summary;                   //  one line for pstap --help
    const char *details;                   //  its own --help, before the options
};

static void
s_option_help (FILE *out, unsigned allowed)
{
    static const struct {
        unsigned bit;
        const char *text;
    } lines[] = {
        {O_BROKER,
         "  -b, --broker EP[,EP] the broker, or its group's members; taps found through INFO;\n"
         "                       one member of a group stands for the whole group"},
        {O_MEMBER_ONLY, "      --member-only    only the broker named, not the rest of its group"},
        {O_TAP, "  -t, --tap EP[,EP]    the taps' endpoints (psbroker --tap)"},
        {O_TIMEOUT, "      --timeout-ms MS  give up reaching each broker or tap after MS (3000)"},
        {O_FILTER, "  -f, --filter EXPR    only records matching EXPR (see below)"},
        {O_COUNT, "  -c, --count N        stop after N records"},
        {O_JSON, "      --json           JSON (one object per record for watch and read)"},
        {O_PAYLOAD, "      --payload        tensor frames too (broker started with --tap-payload)"},
        {O_BATCH, "      --batch          plain text blocks, no screen control (for scripts)"},
        {O_ITERATIONS, "  -n, --iterations N   stop after N refreshes"},
        {O_INTERVAL, "      --interval-ms MS refresh every MS (1000)"},
        {O_WRITE, "  -w, --write FILE     the recording to write"},
        {O_READ, "  -r, --read FILE      the recording to read ('-' for stdin)"},
        {O_VIEW, "      --view VIEW      watch (default), stats or top"},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (allowed & lines[i].bit)
            fprintf (out, "%s\n", lines[i].text);
    fprintf (out, "  -h, --help           show this help\n");
    if (allowed & O_FILTER)
        fprintf (out, "\nFilter terms, space-separated, all must hold:\n"
                      "  kind=req,rep,conn,disc,evict,rej,clock   type=push,pull,clock,init,...\n"
                      "  worker=0,2   key=NAME,...   bytes>1M   bytes<4K   lat>10ms   status=err\n"
                      "  shard=1,2 (brokers of a group)\n");
}

// --------------------------------------------------------- broker INFO

//  The broker's INFO reply, parsed; NULL with a message on stderr
static ps_json_t *
s_info (const char *command, const char *broker, int timeout_ms, char **text)
{
    char *json = NULL;
    int status = ps_worker_query_info (broker, timeout_ms, &json);
    if (status != PS_OK && s_interrupted)
        return NULL; //  Ctrl-C during the query: no error to report
    if (status != PS_OK) {
        fprintf (stderr, "pstap %s: cannot reach the broker at %s within %d ms: %s\n", command,
                 broker, timeout_ms, ps_strerror (status));
        return NULL;
    }
    char why[300];
    ps_json_t *doc = ps_json_parse (json, strlen (json), why, sizeof why);
    if (!doc)
        fprintf (stderr, "pstap %s: the broker at %s sent INFO that is not JSON: %s\n", command,
                 broker, why);
    if (doc && text)
        *text = json;
    else
        free (json);
    return doc;
}

static int64_t
s_info_int (const ps_json_t *info, const char *path, int64_t fallback)
{
    return ps_json_int (info, ps_json_find (info, ps_json_root (info), path), fallback);
}

static double
s_info_number (const ps_json_t *info, const char *path, double fallback)
{
    return ps_json_number (info, ps_json_find (info, ps_json_root (info), path), fallback);
}

static const char *
s_info_string (const ps_json_t *info, const char *path, const char *fallback)
{
    const char *text = ps_json_string (info, ps_json_find (info, ps_json_root (info), path));
    return text ? text : fallback;
}

// --------------------------------------------------------------- group

//  One broker pstap reads: a member of a group, or a broker alone
typedef struct {
    char *endpoint;     //  where its INFO was asked; NULL with --tap
    char *tap;          //  its tap's endpoint, "" when it runs without one,
                        //  NULL when its INFO does not say
    ps_json_t *info;    //  its INFO at the start, NULL with --tap (or once used)
    char *info_text;    //  the same, as the broker sent it
    uint32_t shard;     //  its place in its group, 0 alone
    uint32_t shards;    //  brokers in its group, 1 alone, 0 unknown (--tap)
    bool said_mismatch; //  its tap carried another broker's records, said
} member_t;

//  The brokers one pstap reads, at most PS_MAX_SHARDS of them
typedef struct {
    member_t *members; //  in the order they were found
    size_t nmembers;   //  how many
} group_t;

static void
s_group_destroy (group_t *self)
{
    for (size_t i = 0; i < self->nmembers; i++) {
        member_t *member = &self->members[i];
        free (member->endpoint);
        free (member->tap);
        ps_json_destroy (&member->info);
        free (member->info_text);
    }
    free (self->members);
    memset (self, 0, sizeof *self);
}

//  "tcp://b:5556 (b1/3)", or the endpoint alone for a broker alone
static const char *
s_member_name (const member_t *member, char *buffer, size_t size)
{
    const char *endpoint = member->endpoint ? member->endpoint : member->tap;
    if (member->shards > 1)
        snprintf (buffer, size, "%.300s (b%u/%u)", endpoint, member->shard, member->shards);
    else
        snprintf (buffer, size, "%.300s", endpoint);
    return buffer;
}

//  A copy of the item of a comma-separated list at *cursor, which moves on
//  past it (NULL after the last); ps_cli_endpoints has vouched for the list
static char *
s_list_next (const char **cursor)
{
    const char *item = *cursor;
    size_t length = strcspn (item, ",");
    *cursor = item[length] ? item + length + 1 : NULL;
    return strndup (item, length);
}

//  A tap bound to every interface (psbroker --tap tcp://*:6555) says it is
//  at tcp://0.0.0.0:6555, which from another machine is that machine: such
//  a tap is reached at the host the broker itself was reached at. A copy.
static char *
s_tap_for (const char *tap, const char *broker)
{
    static const char *anywhere[] = {"tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"};
    const char *port = NULL;
    for (size_t i = 0; i < sizeof anywhere / sizeof anywhere[0] && !port; i++)
        if (strncmp (tap, anywhere[i], strlen (anywhere[i])) == 0)
            port = tap + strlen (anywhere[i]);
    const char *colon = strrchr (broker, ':');
    if (!port || strncmp (broker, "tcp://", 6) != 0 || !colon || colon < broker + 6)
        return strdup (tap);
    size_t size = strlen (broker) + strlen (port) + 1;
    char *reached = malloc (size);
    if (reached)
        snprintf (reached, size, "%.*s:%s", (int)(colon - broker), broker, port);
    return reached;
}

//  Ask the broker at endpoint for INFO and add it as a member: NULL (said
//  on stderr) when it does not answer, or is a member already
static member_t *
s_group_query (group_t *self, const options_t *options, const char *endpoint)
{
    char *text = NULL;
    ps_json_t *info = s_info (options->command, endpoint, options->timeout_ms, &text);
    if (!info)
        return NULL;
    //  A broker from before groups says neither: it is alone
    int64_t shard = s_info_int (info, "shard", 0), shards = s_info_int (info, "shards", 1);
    if (shards < 1 || shards > PS_MAX_SHARDS || shard < 0 || shard >= shards) {
        fprintf (stderr,
                 "pstap %s: %s says it is shard %" PRId64 " of %" PRId64 ": taken as alone\n",
                 options->command, endpoint, shard, shards);
        shard = 0, shards = 1;
    }
    const char *tap = s_info_string (info, "tap", NULL);
    member_t candidate = {.endpoint = strdup (endpoint),
                          .tap = tap ? s_tap_for (tap, endpoint) : NULL,
                          .info = info,
                          .info_text = text,
                          .shard = (uint32_t)shard,
                          .shards = (uint32_t)shards};
    const member_t *same = NULL;
    for (size_t i = 0; i < self->nmembers && !same; i++) {
        const member_t *member = &self->members[i];
        bool twice = shards > 1 && member->shards == shards && member->shard == shard;
        if (twice || (candidate.tap && *candidate.tap && member->tap &&
                      strcmp (candidate.tap, member->tap) == 0))
            same = member;
    }
    char name[400];
    if (same)
        fprintf (stderr, "pstap %s: %s is the same broker as %s: read once\n", options->command,
                 endpoint, s_member_name (same, name, sizeof name));
    else if (!candidate.endpoint || (tap && !candidate.tap))
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
    else {
        self->members[self->nmembers] = candidate;
        return &self->members[self->nmembers++];
    }
    free (candidate.endpoint);
    free (candidate.tap);
    ps_json_destroy (&candidate.info);
    free (candidate.info_text);
    return NULL;
}

//  The rest of the group the first member belongs to, from its INFO's
//  "group": the endpoints in shard order as the first worker named them
static void
s_group_discover (group_t *self, const options_t *options)
{
    member_t *first = &self->members[0];
    const ps_json_t *info = first->info;
    int list = ps_json_member (info, ps_json_root (info), "group");
    if (ps_json_length (info, list) == 0) {
        fprintf (stderr,
                 "pstap %s: %s is shard %u of %u; the other members are not known until a worker "
                 "joins: give --broker EP0,EP1,... (all %u, in shard order); watching this one "
                 "only\n",
                 options->command, first->endpoint, first->shard, first->shards, first->shards);
        return;
    }
    uint32_t shard = 0;
    for (int node = ps_json_first (info, list); node >= 0 && self->nmembers < PS_MAX_SHARDS;
         node = ps_json_next (info, node), shard++) {
        if (shard == first->shard)
            continue;
        const char *endpoint = ps_json_string (info, node);
        if (!endpoint || !*endpoint || strlen (endpoint) > PS_MAX_ENDPOINT_LEN) {
            fprintf (stderr, "pstap %s: %s names no usable endpoint for shard %u\n",
                     options->command, first->endpoint, shard);
            continue;
        }
        member_t *member = s_group_query (self, options, endpoint);
        if (!member) {
            fprintf (stderr, "pstap %s: going on without shard %u of %u (%s)\n", options->command,
                     shard, first->shards, endpoint);
            continue;
        }
        if (member->shard != shard || member->shards != first->shards)
            fprintf (stderr,
                     "pstap %s: %s answers as shard %u of %u, but %s names it shard %u of %u\n",
                     options->command, endpoint, member->shard, member->shards, first->endpoint,
                     shard, first->shards);
    }
}

//  The brokers to read: --tap's taps as they are, or --broker's brokers
//  and, for one member of a group, the others its INFO names. 0, or -1
//  (said on stderr) when none answers.
static int
s_group_resolve (group_t *self, const options_t *options)
{
    memset (self, 0, sizeof *self);
    self->members = calloc (PS_MAX_SHARDS, sizeof *self->members);
    if (!self->members) {
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
        return -1;
    }
    const char *cursor = options->tap ? options->tap : options->broker;
    bool list = strchr (cursor, ',') != NULL;
    while (cursor && self->nmembers < PS_MAX_SHARDS) {
        char *endpoint = s_list_next (&cursor);
        if (!endpoint) {
            fprintf (stderr, "pstap %s: out of memory\n", options->command);
            return -1;
        }
        if (options->tap)
            self->members[self->nmembers++] = (member_t){.tap = endpoint};
        else {
            if (!s_group_query (self, options, endpoint) && list && !s_interrupted)
                fprintf (stderr, "pstap %s: going on without %s\n", options->command, endpoint);
            free (endpoint);
        }
        if (s_interrupted)
            return -1;
    }
    if (self->nmembers == 0) {
        if (list)
            fprintf (stderr, "pstap %s: none of the brokers answered\n", options->command);
        return -1;
    }
    if (!options->tap && !list && !options->member_only && self->members[0].shards > 1)
        s_group_discover (self, options);
    //  Shown in shard order, whichever member was named (stable: brokers
    //  alone are all shard 0 and keep the order they were given in)
    for (size_t i = 1; i < self->nmembers; i++)
        for (size_t j = i; j > 0 && self->members[j - 1].shard > self->members[j].shard; j--) {
            member_t swap = self->members[j];
            self->members[j] = self->members[j - 1];
            self->members[j - 1] = swap;
        }
    return s_interrupted ? -1 : 0;
}

// ----------------------------------------------------------------- tap

//  The taps of the brokers read: one SUB socket each
typedef struct {
    void *context;                //  our ZeroMQ context
    void **subs;                  //  SUB sockets, one per tap reached
    member_t **sources;           //  the broker of each
    zmq_pollitem_t *items;        //  the sockets, for zmq_poll
    size_t nsubs;                 //  taps reached
    size_t next;                  //  where the next receive starts (round robin)
    member_t *from;               //  the broker of the message at hand
    zmq_msg_t *msgs;              //  the frames of the message at hand
    size_t nmsgs;                 //  frames received
    ps_taplog_frame_t *frames;    //  the same, as a taplog entry sees them
    char topic[PS_TAP_TOPIC_MAX]; //  the topic, NUL-terminated
    uint64_t oversized;           //  messages with too many frames, dropped
    const char *command;          //  for messages
} tap_t;

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
             "then use --broker\n",
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
    int64_t deadline = s_now_ms () + timeout_ms;
    bool connected = false, reached = false;
    while (rc == 0 && !connected && !s_interrupted) {
        int64_t left = deadline - s_now_ms ();
        if (left <= 0)
            break;
        zmq_pollitem_t item = {monitor, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, left < POLL_MS ? left : POLL_MS) <= 0)
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
    if (rc == 0 && !connected && !s_interrupted && reached)
        s_not_a_tap (command, endpoint, "no ZeroMQ handshake in time");
    else if (rc == 0 && !connected && !s_interrupted)
        fprintf (stderr, "pstap %s: cannot reach the tap at %s within %d ms\n", command, endpoint,
                 timeout_ms);
    return connected ? 0 : -1;
}

static void
s_tap_close (tap_t *self)
{
    if (self->oversized)
        fprintf (stderr, "pstap %s: dropped %" PRIu64 " messages that were not tap records\n",
                 self->command, self->oversized);
    for (size_t i = 0; i < self->nmsgs; i++)
        zmq_msg_close (&self->msgs[i]);
    self->nmsgs = 0;
    for (size_t i = 0; i < self->nsubs; i++)
        zmq_close (self->subs[i]);
    if (self->context)
        zmq_ctx_term (self->context);
    free (self->subs);
    free (self->sources);
    free (self->items);
    free (self->msgs);
    free (self->frames);
    memset (self, 0, sizeof *self);
}

//  Whether member has a tap to read; says why not on stderr
static bool
s_tap_known (const options_t *options, const member_t *member)
{
    char name[400];
    if (!member->tap)
        fprintf (stderr,
                 "pstap %s: the broker at %s reports no tap (a psbroker without one?); "
                 "give --tap EP\n",
                 options->command, s_member_name (member, name, sizeof name));
    else if (!*member->tap)
        fprintf (stderr, "pstap %s: the broker at %s runs without a tap (--no-tap)\n",
                 options->command, s_member_name (member, name, sizeof name));
    else if (strlen (member->tap) > 512)
        fprintf (stderr, "pstap %s: the tap endpoint of %s is too long\n", options->command,
                 s_member_name (member, name, sizeof name));
    return member->tap && *member->tap && strlen (member->tap) <= 512;
}

//  Connect a SUB socket to member's tap, subscribe to what the filter
//  needs, and wait for the handshake: 0, or -1 (said on stderr)
static int
s_tap_add (tap_t *self, const options_t *options, const ps_tapfilter_t *filter, member_t *member)
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
    self->subs[self->nsubs] = sub;
    self->sources[self->nsubs] = member;
    self->items[self->nsubs] = (zmq_pollitem_t){sub, 0, ZMQ_POLLIN, 0};
    self->nsubs++;
    return 0;
}

//  Read the taps of the group's brokers that the filter wants: 0 when at
//  least one was reached, or -1 with a message on stderr
static int
s_tap_open (tap_t *self, const options_t *options, const ps_tapfilter_t *filter, group_t *group)
{
    memset (self, 0, sizeof *self);
    self->command = options->command;
    self->context = zmq_ctx_new ();
    self->subs = calloc (group->nmembers, sizeof *self->subs);
    self->sources = calloc (group->nmembers, sizeof *self->sources);
    self->items = calloc (group->nmembers, sizeof *self->items);
    self->msgs = calloc (PS_TAPLOG_MAX_FRAMES + 1, sizeof *self->msgs);
    self->frames = calloc (PS_TAPLOG_MAX_FRAMES, sizeof *self->frames);
    if (!self->context || !self->subs || !self->sources || !self->items || !self->msgs ||
        !self->frames) {
        fprintf (stderr, "pstap %s: cannot create a ZeroMQ socket\n", options->command);
        s_tap_close (self);
        return -1;
    }
    size_t tried = 0, unwanted = 0;
    for (size_t i = 0; i < group->nmembers && !s_interrupted; i++) {
        member_t *member = &group->members[i];
        //  A broker alone is shard 0; with --tap the shard is not known
        if (member->shards && !ps_tapfilter_wants_shard (filter, member->shard)) {
            unwanted++;
            continue;
        }
        if (!s_tap_known (options, member))
            continue;
        tried++;
        char name[400];
        if (s_tap_add (self, options, filter, member) && group->nmembers > 1 && !s_interrupted)
            fprintf (stderr, "pstap %s: going on without the tap of %s\n", options->command,
                     s_member_name (member, name, sizeof name));
    }
    if (self->nsubs == 0) {
        if (unwanted && !tried)
            fprintf (stderr, "pstap %s: the filter's shard= leaves none of the %zu brokers\n",
                     options->command, group->nmembers);
        else if (tried > 1)
            fprintf (stderr, "pstap %s: none of the %zu taps could be read\n", options->command,
                     tried);
        s_tap_close (self);
        return -1;
    }
    return 0;
}

//  Find the brokers and read their taps: 0, or -1 (said on stderr) with
//  nothing left to free
static int
s_connect (tap_t *tap, group_t *group, const options_t *options, const ps_tapfilter_t *filter)
{
    if (s_group_resolve (group, options)) {
        s_group_destroy (group);
        return -1;
    }
    if (s_tap_open (tap, options, filter, group)) {
        s_group_destroy (group);
        return -1;
    }
    return 0;
}

//  Receive one whole message within timeout_ms into entry, from whichever
//  tap has one (taking turns): 1, or 0 when none came (or a signal), the
//  message dropped when it has too many frames or no record
static int
s_tap_receive (tap_t *self, int timeout_ms, ps_taplog_entry_t *entry)
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
    self->from = self->sources[ready];
    void *sub = self->subs[ready];
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

// --------------------------------------------------------------- tally

//  Numbers of one row of top or stats over an interval
typedef struct {
    uint64_t requests;  //  requests received
    uint64_t replies;   //  replies sent
    uint64_t errors;    //  error replies and rejections
    uint64_t bytes_in;  //  tensor bytes of requests
    uint64_t bytes_out; //  tensor bytes of replies
    uint32_t *samples;  //  total_us of replies, at most MAX_SAMPLES
    size_t nsamples;    //  samples kept
    size_t capacity;    //  room in samples
} counts_t;

typedef struct {
    counts_t counts; //  this worker's messages
    int64_t clock;   //  the latest clock its messages carried, -1 none
    bool seen;       //  any record named it
} worker_row_t;

//  One broker's numbers: each broker of a group counts its own drops and
//  keeps its own vector clock
typedef struct {
    counts_t counts;        //  its messages, every type
    uint64_t records;       //  its records tallied
    uint32_t shards;        //  its group's size as its records say (0: alone)
    uint64_t dropped_first; //  its dropped count at its first record
    uint64_t dropped_last;  //  and at its last
    int64_t min_clock;      //  its latest slowest clock, -1 none
    int64_t slowest;        //  the rank that held it, -1 none
} broker_row_t;

//  Slots for brokers: one per shard, and one for shards out of range
#define BROKER_SLOTS (PS_MAX_SHARDS + 1)

static size_t
s_broker_slot (const ps_tap_record_t *record)
{
    return record->shard < PS_MAX_SHARDS ? record->shard : PS_MAX_SHARDS;
}

typedef struct {
    uint64_t pushes; //  push requests that named it
    uint64_t pulls;  //  pull requests that named it
    uint64_t bytes;  //  its bytes pushed and pulled (4 per element)
} key_row_t;

//  Everything top and stats compute from records
typedef struct {
    counts_t types[NTYPES];     //  per message type
    worker_row_t *workers;      //  per rank, PS_MAX_WORKERS of them
    zhashx_t *keys;             //  key name -> key_row_t
    uint64_t keys_dropped;      //  keys past PS_MAX_KEYS, not counted
    uint64_t records;           //  records tallied
    uint64_t first_us, last_us; //  broker time of the first and last
    uint64_t kinds[NKINDS];     //  records per TapKind
    broker_row_t *brokers;      //  per shard, BROKER_SLOTS of them
    bool grouped;               //  some record came from a group (shards > 1)
} tally_t;

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static int
s_tally_init (tally_t *self)
{
    memset (self, 0, sizeof *self);
    self->workers = calloc (PS_MAX_WORKERS, sizeof *self->workers);
    self->brokers = calloc (BROKER_SLOTS, sizeof *self->brokers);
    self->keys = zhashx_new ();
    if (!self->workers || !self->brokers || !self->keys)
        return -1;
    zhashx_set_destructor (self->keys, s_free_item);
    for (size_t i = 0; i < PS_MAX_WORKERS; i++)
        self->workers[i].clock = -1;
    for (size_t i = 0; i < BROKER_SLOTS; i++)
        self->brokers[i].min_clock = self->brokers[i].slowest = -1;
    return 0;
}

//  Start a new interval; clocks are kept, they are state and not rates
static void
s_tally_reset (tally_t *self)
{
    for (size_t t = 0; t < NTYPES; t++) {
        free (self->types[t].samples);
        memset (&self->types[t], 0, sizeof self->types[t]);
    }
    for (size_t w = 0; w < PS_MAX_WORKERS; w++) {
        free (self->workers[w].counts.samples);
        memset (&self->workers[w].counts, 0, sizeof self->workers[w].counts);
    }
    for (size_t b = 0; b < BROKER_SLOTS; b++) {
        free (self->brokers[b].counts.samples);
        memset (&self->brokers[b].counts, 0, sizeof self->brokers[b].counts);
        self->brokers[b].records = 0;
    }
    zhashx_purge (self->keys);
    self->keys_dropped = self->records = self->first_us = self->last_us = 0;
    memset (self->kinds, 0, sizeof self->kinds);
}

static void
s_tally_destroy (tally_t *self)
{
    if (self->workers && self->brokers)
        s_tally_reset (self);
    free (self->workers);
    free (self->brokers);
    zhashx_destroy (&self->keys);
}

static void
s_counts_add (counts_t *self, const ps_tap_record_t *record)
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
        if (self->nsamples == self->capacity && self->capacity < MAX_SAMPLES) {
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
s_tally_keys (tally_t *self, const ps_tap_record_t *record)
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
        key_row_t *row = zhashx_lookup (self->keys, name);
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
            row->bytes += record->keys[i]->count * 4;
    }
}

static void
s_tally_broker (tally_t *self, const ps_tap_record_t *record)
{
    broker_row_t *row = &self->brokers[s_broker_slot (record)];
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
static uint64_t
s_broker_dropped (const broker_row_t *row)
{
    return row->dropped_last > row->dropped_first ? row->dropped_last - row->dropped_first : 0;
}

//  "b1/3" for the broker of slot b
static const char *
s_broker_name (size_t b, const broker_row_t *row, char *buffer, size_t size)
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
static uint64_t
s_tally_dropped (const tally_t *self)
{
    uint64_t dropped = 0;
    for (size_t b = 0; b < BROKER_SLOTS; b++)
        if (self->brokers[b].records)
            dropped += s_broker_dropped (&self->brokers[b]);
    return dropped;
}

//  The slowest clock of any broker (in a group, the one furthest behind)
//  and the rank that held it there; -1 when none is known
static void
s_tally_slowest (const tally_t *self, int64_t *min_clock, int64_t *slowest)
{
    *min_clock = *slowest = -1;
    for (size_t b = 0; b < BROKER_SLOTS; b++) {
        const broker_row_t *row = &self->brokers[b];
        if (row->min_clock >= 0 && (*min_clock < 0 || row->min_clock < *min_clock)) {
            *min_clock = row->min_clock;
            *slowest = row->slowest;
        }
    }
}

static void
s_tally_add (tally_t *self, const ps_tap_record_t *record)
{
    if (self->records++ == 0)
        self->first_us = record->time_us;
    self->last_us = record->time_us;
    //  protobuf-c keeps enum values it does not know: count only ours
    if ((unsigned)record->kind < NKINDS)
        self->kinds[record->kind]++;
    if ((unsigned)record->type < NTYPES)
        s_counts_add (&self->types[record->type], record);
    s_tally_broker (self, record);
    //  INFO comes from tools (pstap itself among them), not from a worker's work
    if (record->worker >= 0 && record->worker < PS_MAX_WORKERS &&
        record->type != PSMQ__MSG_TYPE__INFO) {
        worker_row_t *row = &self->workers[record->worker];
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
s_percentile (counts_t *counts, double p)
{
    if (counts->nsamples == 0)
        return -1;
    qsort (counts->samples, counts->nsamples, sizeof *counts->samples, s_compare_u32);
    size_t rank = (size_t)ceil (p * (double)counts->nsamples);
    return counts->samples[rank ? rank - 1 : 0];
}

static const char *
s_fmt_percentile (counts_t *counts, double p, char *buffer, size_t size)
{
    double value = s_percentile (counts, p);
    if (value < 0)
        return "-";
    return ps_taprender_us (value, buffer, size);
}

// ------------------------------------------------------------ pipeline

//  What the pipeline follows of each broker's own counter
typedef struct {
    bool have_dropped; //  dropped below is known
    uint64_t dropped;  //  the broker's dropped count at its last record
} drops_t;

//  One run of records through decode, drop check, pairing, filter, view
typedef struct {
    const options_t *options;
    view_t view;                //  what happens to a record that passes
    ps_codec_t *codec;          //  the one decoder
    ps_tapfilter_t *filter;     //  -f
    ps_tappair_t *pairing;      //  requests waiting for replies
    bool requests_seen;         //  any request came: unmatched means something
    drops_t *drops;             //  per shard, BROKER_SLOTS of them
    uint64_t malformed;         //  records that did not decode
    uint64_t shown;             //  records shown (or recorded)
    uint64_t payloads;          //  payload messages shown (or recorded)
    uint64_t last_shown;        //  record number of the last one shown
    uint32_t last_shown_shard;  //  and the broker that numbered it
    bool done;                  //  -c reached or output gone
    line_t line;                //  output buffer
    tally_t tally;              //  VIEW_STATS, VIEW_TOP
    ps_taplog_writer_t *writer; //  VIEW_RECORD
} session_t;

static int
s_session_init (session_t *self, const options_t *options, view_t view)
{
    memset (self, 0, sizeof *self);
    self->options = options;
    self->view = view;
    ps_problem_t problem;
    self->filter = ps_tapfilter_new (options->filter, &problem);
    if (!self->filter) {
        fprintf (stderr, "pstap %s: bad filter: %s\n", options->command, problem.message);
        return 2;
    }
    self->codec = ps_codec_new ();
    self->pairing = ps_tappair_new (MAX_PENDING);
    self->drops = calloc (BROKER_SLOTS, sizeof *self->drops);
    if (!self->codec || !self->pairing || !self->drops || s_tally_init (&self->tally)) {
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
        return 1;
    }
    return 0;
}

//  Say what was skipped; 0, or 1 when the output could not be written
static int
s_session_destroy (session_t *self)
{
    const char *command = self->options->command;
    if (self->malformed)
        fprintf (stderr, "pstap %s: skipped %" PRIu64 " malformed records\n", command,
                 self->malformed);
    uint64_t forgotten = self->pairing ? ps_tappair_forgotten (self->pairing) : 0;
    if (forgotten)
        fprintf (stderr, "pstap %s: forgot %" PRIu64 " unanswered requests (table full)\n", command,
                 forgotten);
    int rc = 0;
    if (fflush (stdout) || ferror (stdout))
        rc = errno == EPIPE ? 0 : 1;
    ps_tapfilter_destroy (&self->filter);
    ps_codec_destroy (&self->codec);
    ps_tappair_destroy (&self->pairing);
    free (self->drops);
    s_tally_destroy (&self->tally);
    free (self->line.data);
    return rc;
}

//  Each broker counts its own drops: a group's are followed one by one
static void
s_check_dropped (session_t *self, const ps_tap_record_t *record)
{
    drops_t *drops = &self->drops[s_broker_slot (record)];
    if (drops->have_dropped && record->dropped > drops->dropped) {
        if (record->shards > 1)
            fprintf (stderr, "pstap: broker b%u/%u dropped %" PRIu64 " records (reader too slow)\n",
                     record->shard, record->shards, record->dropped - drops->dropped);
        else
            fprintf (stderr, "pstap: broker dropped %" PRIu64 " records (reader too slow)\n",
                     record->dropped - drops->dropped);
    }
    //  A count that goes down is a restarted broker: start again from it
    drops->dropped = record->dropped;
    drops->have_dropped = true;
}

//  A tap that carries another broker's records than the one whose INFO
//  named it: most likely an ipc:// endpoint of the same name on this
//  machine (psbroker's default tap is ipc://, named after its port)
static void
s_check_source (session_t *self, const ps_tap_record_t *record, member_t *source)
{
    if (!source || source->shards == 0 || source->said_mismatch)
        return;
    uint32_t shards = record->shards > 1 ? record->shards : 1;
    uint32_t shard = record->shards > 1 ? record->shard : 0;
    if (shard == source->shard && shards == source->shards)
        return;
    source->said_mismatch = true;
    fprintf (stderr,
             "pstap %s: the tap %s of %s carries the records of shard %u of %u, not of shard %u "
             "of %u: another broker publishes there (an ipc:// tap of the same name on this "
             "machine?); start each psbroker with --tap tcp://HOST:PORT to read a group from "
             "another machine\n",
             self->options->command, source->tap, source->endpoint, shard, shards, source->shard,
             source->shards);
}

//  The text view's note on a reply: its request's age, or that it was not
//  seen (only said when requests are coming at all: a filter may keep
//  them from us)
static void
s_pairing_note (session_t *self, const ps_tap_record_t *record, bool paired, uint64_t request_us,
                char *note, size_t size)
{
    note[0] = 0;
    if (record->kind != PSMQ__TAP_KIND__TAP_REPLY || !self->requests_seen)
        return;
    char age[32];
    if (paired)
        snprintf (note, size, "  [request %s ago]",
                  ps_taprender_us (
                      record->time_us > request_us ? (double)(record->time_us - request_us) : 0,
                      age, sizeof age));
    else
        snprintf (note, size, "  [unmatched: request not seen]");
}

static void
s_print (session_t *self, const char *text, const char *note)
{
    if (fputs (text, stdout) < 0 || fputs (note, stdout) < 0 || fputc ('\n', stdout) < 0)
        self->done = true;
}

//  A "payload." message: the tensor frames of a record already shown
static void
s_payload (session_t *self, const ps_tap_record_t *record, const ps_taplog_entry_t *entry)
{
    if (self->view == VIEW_RECORD) {
        ps_problem_t problem;
        if (ps_taplog_writer_append (self->writer, entry->topic, entry->topic_size, entry->frames,
                                     entry->nframes, &problem)) {
            fprintf (stderr, "pstap record: %s\n", problem.message);
            self->done = true;
        }
        self->payloads++;
        return;
    }
    if (self->view != VIEW_WATCH || self->options->json || record->record != self->last_shown ||
        record->shard != self->last_shown_shard)
        return;
    uint64_t bytes = 0;
    for (size_t i = 1; i < entry->nframes; i++)
        bytes += entry->frames[i].size;
    char text[64], size[32];
    snprintf (text, sizeof text, "    + payload: %zu frame%s, %s", entry->nframes - 1,
              entry->nframes == 2 ? "" : "s",
              ps_taprender_bytes ((double)bytes, size, sizeof size));
    s_print (self, text, "");
    self->payloads++;
}

//  A record that passed the filter
static void
s_show (session_t *self, const ps_tap_record_t *record, const ps_taplog_entry_t *entry, bool paired,
        uint64_t request_us)
{
    if (self->view == VIEW_RECORD) {
        ps_problem_t problem;
        if (ps_taplog_writer_append (self->writer, entry->topic, entry->topic_size, entry->frames,
                                     entry->nframes, &problem)) {
            fprintf (stderr, "pstap record: %s\n", problem.message);
            self->done = true;
            return;
        }
    }
    else if (self->view == VIEW_WATCH) {
        const char *text = s_render (&self->line, record, self->options->json);
        if (!text) {
            fprintf (stderr, "pstap %s: out of memory\n", self->options->command);
            self->done = true;
            return;
        }
        char note[64] = "";
        if (!self->options->json)
            s_pairing_note (self, record, paired, request_us, note, sizeof note);
        s_print (self, text, note);
    }
    else
        s_tally_add (&self->tally, record);
    self->last_shown = record->record;
    self->last_shown_shard = record->shard;
    self->shown++;
    if (self->options->count && self->shown >= self->options->count)
        self->done = true;
}

//  One message from a tap (source: its broker) or a file (source NULL)
static void
s_feed (session_t *self, const ps_taplog_entry_t *entry, member_t *source)
{
    ps_problem_t problem;
    ps_tap_record_t *record =
        ps_codec_decode_tap (self->codec, entry->frames[0].data, entry->frames[0].size, &problem);
    if (!record) {
        if (self->malformed++ == 0)
            fprintf (stderr, "pstap %s: skipping a malformed record (topic '%s'): %s\n",
                     self->options->command, entry->topic, problem.message);
        return;
    }
    s_check_source (self, record, source);
    s_check_dropped (self, record);
    if (strncmp (entry->topic, "payload.", 8) == 0) {
        if (ps_tapfilter_match (self->filter, record))
            s_payload (self, record, entry);
        return;
    }
    if (record->kind == PSMQ__TAP_KIND__TAP_REQUEST)
        self->requests_seen = true;
    uint64_t request_us = 0;
    bool paired = ps_tappair_update (self->pairing, record, &request_us);
    if (ps_tapfilter_match (self->filter, record))
        s_show (self, record, entry, paired, request_us);
}

//  Feed the tap's messages to the session until it is done, a signal
//  comes, or (with until_ms > 0) that monotonic time passes
static void
s_pump (session_t *self, tap_t *tap, int64_t until_ms)
{
    while (!self->done && !s_interrupted) {
        int wait = POLL_MS;
        if (until_ms > 0) {
            int64_t left = until_ms - s_now_ms ();
            if (left <= 0)
                break;
            wait = left < POLL_MS ? (int)left : POLL_MS;
        }
        ps_taplog_entry_t entry;
        if (s_tap_receive (tap, wait, &entry))
            s_feed (self, &entry, tap->from);
    }
}

// ---------------------------------------------------------------- watch

static int
s_watch (const options_t *options)
{
    session_t session;
    int rc = s_session_init (&session, options, VIEW_WATCH);
    tap_t tap;
    group_t group;
    if (rc == 0 && s_connect (&tap, &group, options, session.filter))
        rc = 1;
    if (rc == 0) {
        s_pump (&session, &tap, 0);
        s_tap_close (&tap);
        s_group_destroy (&group);
    }
    int end = s_session_destroy (&session);
    return rc ? rc : end;
}

// --------------------------------------------------------------- record

static int
s_record (const options_t *options)
{
    session_t session;
    int rc = s_session_init (&session, options, VIEW_RECORD);
    tap_t tap;
    group_t group;
    if (rc == 0 && s_connect (&tap, &group, options, session.filter))
        rc = 1;
    if (rc == 0) {
        ps_problem_t problem;
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        uint64_t start_us = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
        session.writer = ps_taplog_writer_new (options->write_path, start_us, &problem);
        if (!session.writer) {
            fprintf (stderr, "pstap record: %s\n", problem.message);
            rc = 1;
        }
        else {
            s_pump (&session, &tap, 0);
            fprintf (stderr,
                     "pstap record: %" PRIu64 " records (%" PRIu64 " payload messages), %" PRIu64
                     " bytes written to %s\n",
                     session.shown, session.payloads, ps_taplog_writer_bytes (session.writer),
                     options->write_path);
            if (ps_taplog_writer_destroy (&session.writer)) {
                fprintf (stderr, "pstap record: closing %s failed: %s\n", options->write_path,
                         strerror (errno));
                rc = 1;
            }
        }
        s_tap_close (&tap);
        s_group_destroy (&group);
    }
    int end = s_session_destroy (&session);
    return rc ? rc : end;
}

// ---------------------------------------------------------------- stats

static const char *
s_mode_name (int64_t staleness)
{
    return staleness == 0 ? "BSP" : staleness < 0 ? "ASP" : "SSP";
}

//  A count from INFO, or "-" when this broker does not send it
static const char *
s_fmt_count (const ps_json_t *info, const char *path, char *buffer, size_t size)
{
    int node = ps_json_find (info, ps_json_root (info), path);
    if (ps_json_type (info, node) != PS_JSON_NUMBER)
        return "-";
    snprintf (buffer, size, "%" PRId64, ps_json_int (info, node, 0));
    return buffer;
}

static const char *
s_fmt_info_bytes (const ps_json_t *info, const char *path, char *buffer, size_t size)
{
    int node = ps_json_find (info, ps_json_root (info), path);
    if (ps_json_type (info, node) != PS_JSON_NUMBER)
        return "-";
    return ps_taprender_bytes (ps_json_number (info, node, 0), buffer, size);
}

//  Ranks ever seen: INFO's "seen", else the workers that are not absent
static int64_t
s_info_seen (const ps_json_t *info)
{
    int64_t seen = s_info_int (info, "seen", -1);
    int workers = ps_json_member (info, ps_json_root (info), "workers");
    if (seen >= 0 || workers < 0)
        return seen;
    seen = 0;
    for (int w = ps_json_first (info, workers); w >= 0; w = ps_json_next (info, w)) {
        const char *state = ps_json_string (info, ps_json_member (info, w, "state"));
        seen += state && strcmp (state, "absent") != 0;
    }
    return seen;
}

//  "group  shard 1 of 3: tcp://a:5555 tcp://b:5556 tcp://c:5557", for a
//  member of a group only
static void
s_stats_group (const ps_json_t *info)
{
    int64_t shards = s_info_int (info, "shards", 1);
    if (shards <= 1)
        return;
    printf ("group       shard %" PRId64 " of %" PRId64, s_info_int (info, "shard", 0), shards);
    int list = ps_json_member (info, ps_json_root (info), "group");
    if (ps_json_length (info, list) == 0)
        printf (", the others not known until a worker joins");
    else {
        printf (":");
        for (int node = ps_json_first (info, list); node >= 0; node = ps_json_next (info, node)) {
            const char *endpoint = ps_json_string (info, node);
            printf (" %.300s", endpoint ? endpoint : "?");
        }
    }
    printf ("\n");
}

static void
s_stats_print (const ps_json_t *info)
{
    char a[32], b[32], c[32], d[32];
    int64_t staleness = s_info_int (info, "staleness", 0);
    int64_t seen = s_info_seen (info);
    printf ("broker      %s\n", s_info_string (info, "endpoint", "?"));
    s_stats_group (info);
    printf ("uptime      %.1f s\n", s_info_number (info, "uptime_s", 0));
    printf ("world       %" PRId64 " workers, %s (staleness %" PRId64 ")\n",
            s_info_int (info, "world", 0), s_mode_name (staleness), staleness);
    snprintf (a, sizeof a, seen >= 0 ? "%" PRId64 : "-", seen);
    printf ("workers     %" PRId64 " live, %s ever seen, %s evicted\n",
            s_info_int (info, "live", 0), a, s_fmt_count (info, "evicted", b, sizeof b));
    int64_t slowest = s_info_int (info, "slowest", -1);
    int64_t fastest = s_info_int (info, "max_clock", -1);
    if (s_info_int (info, "live", 0) <= 0)
        printf ("clock       no live workers\n");
    else {
        printf ("clock       slowest %" PRId64, s_info_int (info, "min_clock", -1));
        if (slowest >= 0)
            printf (" (w%" PRId64 ")", slowest);
        printf (", fastest %" PRId64 "\n", fastest);
    }
    printf ("queues      aggregator %s, parked %s now (%s in all), %s pending gradients\n",
            s_fmt_count (info, "aggregator_queue", a, sizeof a),
            s_fmt_count (info, "parked_now", b, sizeof b),
            s_fmt_count (info, "parked_total", c, sizeof c),
            s_fmt_count (info, "pending_gradients", d, sizeof d));
    //  INFO's optimizer is the broker's default, not every key's: an INIT
    //  that names its own (psworker's does) overrides it
    printf ("store       %s keys, %s optimizer steps; default optimizer %s lr %g, used when an "
            "INIT names none\n",
            s_fmt_count (info, "keys", a, sizeof a),
            s_fmt_count (info, "optimizer_steps", b, sizeof b),
            s_info_string (info, "optimizer", "?"), s_info_number (info, "lr", 0));
    printf ("traffic     %s in, %s out, %s rejected\n",
            s_fmt_info_bytes (info, "bytes_in", a, sizeof a),
            s_fmt_info_bytes (info, "bytes_out", b, sizeof b),
            s_fmt_count (info, "rejected", c, sizeof c));
    const char *tap = s_info_string (info, "tap", NULL);
    if (!tap)
        printf ("tap         not reported by this broker\n");
    else if (!*tap)
        printf ("tap         off\n");
    else
        printf ("tap         %s, %s subscriptions, %s records, %s dropped\n", tap,
                s_fmt_count (info, "tap_subscriptions", a, sizeof a),
                s_fmt_count (info, "tap_records", b, sizeof b),
                s_fmt_count (info, "tap_dropped", c, sizeof c));

    printf ("\n%-10s %10s %10s %12s %12s\n", "type", "in", "out", "bytes in", "bytes out");
    for (int type = 1; type < NTYPES; type++) {
        const char *name = ps_codec_type_name (type);
        char path_in[64], path_out[64], path_bin[64], path_bout[64];
        snprintf (path_in, sizeof path_in, "messages_in.%s", name);
        snprintf (path_out, sizeof path_out, "replies_out.%s", name);
        snprintf (path_bin, sizeof path_bin, "bytes_in_by_type.%s", name);
        snprintf (path_bout, sizeof path_bout, "bytes_out_by_type.%s", name);
        if (s_info_int (info, path_in, 0) == 0 && s_info_int (info, path_out, 0) == 0)
            continue;
        printf ("%-10s %10s %10s %12s %12s\n", name, s_fmt_count (info, path_in, a, sizeof a),
                s_fmt_count (info, path_out, b, sizeof b),
                s_fmt_info_bytes (info, path_bin, c, sizeof c),
                s_fmt_info_bytes (info, path_bout, d, sizeof d));
    }
}

//  A group's brokers, one line each: each has its own drops and clock
static void
s_stats_brokers (const tally_t *tally)
{
    if (!tally->grouped)
        return;
    for (size_t b = 0; b < BROKER_SLOTS; b++) {
        const broker_row_t *row = &tally->brokers[b];
        if (!row->records)
            continue;
        char name[32], label[48];
        snprintf (label, sizeof label, "broker %s", s_broker_name (b, row, name, sizeof name));
        printf ("%-11s %" PRIu64 " records, dropped %" PRIu64 " meanwhile, slowest %" PRId64, label,
                row->records, s_broker_dropped (row), row->min_clock);
        if (row->slowest >= 0)
            printf (" (w%" PRId64 ")", row->slowest);
        printf (" at the end\n");
    }
}

//  Stats of a recording: what the records say, per message type
static void
s_stats_records (tally_t *tally, const char *source)
{
    char a[32], b[32], c[32], d[32];
    double seconds =
        tally->last_us > tally->first_us ? (tally->last_us - tally->first_us) / 1e6 : 0;
    size_t workers = 0;
    for (size_t w = 0; w < PS_MAX_WORKERS; w++)
        workers += tally->workers[w].seen;
    printf ("source      %s\n", source);
    printf ("span        %.3f s, %" PRIu64 " records, broker dropped %" PRIu64 " meanwhile\n",
            seconds, tally->records, s_tally_dropped (tally));
    printf ("workers     %zu seen, %" PRIu64 " connects, %" PRIu64 " disconnects, %" PRIu64
            " evictions\n",
            workers, tally->kinds[PSMQ__TAP_KIND__TAP_CONNECT],
            tally->kinds[PSMQ__TAP_KIND__TAP_DISCONNECT], tally->kinds[PSMQ__TAP_KIND__TAP_EVICT]);
    int64_t min_clock, slowest;
    s_tally_slowest (tally, &min_clock, &slowest);
    printf ("clock       slowest %" PRId64, min_clock);
    if (slowest >= 0)
        printf (" (w%" PRId64 ")", slowest);
    printf (" at the end, %" PRIu64 " moves\n", tally->kinds[PSMQ__TAP_KIND__TAP_CLOCK]);
    printf ("rejected    %" PRIu64 "\n", tally->kinds[PSMQ__TAP_KIND__TAP_REJECT]);
    s_stats_brokers (tally);
    printf ("\n%-10s %8s %8s %7s %11s %11s %9s %9s\n", "type", "requests", "replies", "errors",
            "bytes in", "bytes out", "p50", "p99");
    for (int type = 1; type < NTYPES; type++) {
        counts_t *counts = &tally->types[type];
        if (!counts->requests && !counts->replies && !counts->errors)
            continue;
        printf ("%-10s %8" PRIu64 " %8" PRIu64 " %7" PRIu64 " %11s %11s %9s %9s\n",
                ps_codec_type_name (type), counts->requests, counts->replies, counts->errors,
                ps_taprender_bytes ((double)counts->bytes_in, a, sizeof a),
                ps_taprender_bytes ((double)counts->bytes_out, b, sizeof b),
                s_fmt_percentile (counts, 0.5, c, sizeof c),
                s_fmt_percentile (counts, 0.99, d, sizeof d));
    }
}

//  Stats from the tap alone: the records of one interval
static int
s_stats_tap (const options_t *options)
{
    session_t session;
    int rc = s_session_init (&session, options, VIEW_STATS);
    tap_t tap;
    group_t group;
    if (rc == 0 && s_connect (&tap, &group, options, session.filter))
        rc = 1;
    if (rc == 0) {
        s_pump (&session, &tap, s_now_ms () + options->interval_ms);
        s_tap_close (&tap);
        s_group_destroy (&group);
        char source[300];
        snprintf (source, sizeof source, "tap %.200s, %d ms of records", options->tap,
                  options->interval_ms);
        s_stats_records (&session.tally, source);
    }
    int end = s_session_destroy (&session);
    return rc ? rc : end;
}

static int
s_stats (const options_t *options)
{
    if (!options->broker) {
        if (options->json) {
            fprintf (stderr, "pstap stats: --json passes the broker's INFO through: it needs "
                             "--broker EP\n");
            return 2;
        }
        return s_stats_tap (options);
    }
    //  One block (or INFO object) per broker, in shard order
    group_t group;
    if (s_group_resolve (&group, options)) {
        s_group_destroy (&group);
        return 1;
    }
    for (size_t i = 0; i < group.nmembers; i++) {
        if (options->json)
            printf ("%s\n", group.members[i].info_text);
        else {
            if (i > 0)
                printf ("\n");
            s_stats_print (group.members[i].info);
        }
    }
    s_group_destroy (&group);
    return fflush (stdout) ? 1 : 0;
}

// ------------------------------------------------------------------ top

//  Each rank's clock (-1 when not live) and requests parked now (-1 when
//  this broker does not say) from INFO: "workers" when it has it, else
//  "clocks" and the "parked" list. One pass over each array.
static void
s_info_workers (const ps_json_t *info, int64_t world, int64_t *clocks, int64_t *parked)
{
    int root = ps_json_root (info);
    for (int64_t rank = 0; rank < world; rank++)
        clocks[rank] = parked[rank] = -1;
    int64_t rank = 0;
    int list = ps_json_member (info, root, "clocks");
    for (int c = ps_json_first (info, list); c >= 0 && rank < world; c = ps_json_next (info, c))
        clocks[rank++] = ps_json_int (info, c, -1);
    list = ps_json_member (info, root, "parked");
    if (ps_json_type (info, list) == PS_JSON_ARRAY) {
        for (rank = 0; rank < world; rank++)
            parked[rank] = 0;
        for (int p = ps_json_first (info, list); p >= 0; p = ps_json_next (info, p)) {
            rank = ps_json_int (info, ps_json_member (info, p, "worker"), -1);
            if (rank >= 0 && rank < world)
                parked[rank]++;
        }
    }
    list = ps_json_member (info, root, "workers");
    for (int w = ps_json_first (info, list); w >= 0; w = ps_json_next (info, w)) {
        rank = ps_json_int (info, ps_json_member (info, w, "rank"), -1);
        if (rank < 0 || rank >= world)
            continue;
        const char *state = ps_json_string (info, ps_json_member (info, w, "state"));
        clocks[rank] = state && strcmp (state, "live") != 0
                           ? -1
                           : ps_json_int (info, ps_json_member (info, w, "clock"), clocks[rank]);
        parked[rank] = ps_json_int (info, ps_json_member (info, w, "parked"), parked[rank]);
    }
}

//  INFO's world, kept within what we can show
static int64_t
s_info_world (const ps_json_t *info)
{
    int64_t world = s_info_int (info, "world", 0);
    return world < 0 ? 0 : world > PS_MAX_WORKERS ? PS_MAX_WORKERS : world;
}

//  What INFO adds to top: each rank's clock and parked requests, from one
//  broker or merged over a group's (each broker keeps its own clock)
typedef struct {
    size_t answered;   //  brokers whose INFO came
    int64_t min_clock; //  slowest live clock, of the broker furthest behind
    int64_t slowest;   //  its rank there
    int64_t live;      //  workers live, at the broker that counts fewest
    int64_t world;     //  ranks
    int64_t *clocks;   //  per rank, the lowest any broker has; -1 not live
    int64_t *parked;   //  per rank, parked at all brokers; -1 not said
    int64_t *scratch;  //  room for one broker's clocks and parked
} top_info_t;

static int
s_top_info_init (top_info_t *self)
{
    memset (self, 0, sizeof *self);
    self->clocks = calloc (PS_MAX_WORKERS, sizeof *self->clocks);
    self->parked = calloc (PS_MAX_WORKERS, sizeof *self->parked);
    self->scratch = calloc (2 * PS_MAX_WORKERS, sizeof *self->scratch);
    return self->clocks && self->parked && self->scratch ? 0 : -1;
}

static void
s_top_info_destroy (top_info_t *self)
{
    free (self->clocks);
    free (self->parked);
    free (self->scratch);
}

//  Merge one broker's INFO: a worker is as far as the broker that has
//  admitted the fewest of its clocks; its parked requests add up
static void
s_top_info_add (top_info_t *self, const ps_json_t *info)
{
    int64_t world = s_info_world (info);
    int64_t *clocks = self->scratch, *parked = self->scratch + PS_MAX_WORKERS;
    s_info_workers (info, world, clocks, parked);
    bool first = self->answered++ == 0;
    for (int64_t rank = 0; rank < world || (first && rank < PS_MAX_WORKERS); rank++) {
        int64_t clock = rank < world ? clocks[rank] : -1;
        int64_t waiting = rank < world ? parked[rank] : -1;
        if (first || rank >= self->world) {
            self->clocks[rank] = clock;
            self->parked[rank] = waiting;
            continue;
        }
        if (clock >= 0 && (self->clocks[rank] < 0 || clock < self->clocks[rank]))
            self->clocks[rank] = clock;
        if (waiting >= 0)
            self->parked[rank] = (self->parked[rank] > 0 ? self->parked[rank] : 0) + waiting;
    }
    int64_t min_clock = s_info_int (info, "min_clock", -1);
    if (first || (min_clock >= 0 && (self->min_clock < 0 || min_clock < self->min_clock))) {
        self->min_clock = min_clock;
        self->slowest = s_info_int (info, "slowest", -1);
    }
    int64_t live = s_info_int (info, "live", 0);
    self->live = first || live < self->live ? live : self->live;
    self->world = world > self->world ? world : self->world;
}

//  Every member's INFO, merged; how many answered
static size_t
s_top_info_query (top_info_t *self, const group_t *group, const options_t *options)
{
    self->answered = 0;
    self->world = 0;
    for (size_t i = 0; i < group->nmembers && !s_interrupted; i++) {
        ps_json_t *info =
            s_info (options->command, group->members[i].endpoint, options->timeout_ms, NULL);
        if (info)
            s_top_info_add (self, info);
        ps_json_destroy (&info);
    }
    return self->answered;
}

typedef struct {
    const char *name;
    key_row_t *row;
} key_entry_t;

static int
s_compare_keys (const void *a, const void *b)
{
    const key_entry_t *left = a, *right = b;
    if (left->row->bytes != right->row->bytes)
        return left->row->bytes < right->row->bytes ? 1 : -1;
    return strcmp (left->name, right->name);
}

static void
s_top_keys (tally_t *tally, double seconds)
{
    size_t nkeys = zhashx_size (tally->keys);
    if (nkeys == 0)
        return;
    key_entry_t *entries = calloc (nkeys, sizeof *entries);
    if (!entries)
        return;
    size_t n = 0;
    for (key_row_t *row = zhashx_first (tally->keys); row && n < nkeys;
         row = zhashx_next (tally->keys))
        entries[n++] = (key_entry_t){zhashx_cursor (tally->keys), row};
    qsort (entries, n, sizeof *entries, s_compare_keys);
    printf ("\n%-24s %9s %9s %12s\n", "key", "push/s", "pull/s", "bytes/s");
    for (size_t i = 0; i < n && i < MAX_LISTED; i++) {
        char rate[32];
        printf ("%-24.200s %9.1f %9.1f %10s/s\n", entries[i].name, entries[i].row->pushes / seconds,
                entries[i].row->pulls / seconds,
                ps_taprender_bytes (entries[i].row->bytes / seconds, rate, sizeof rate));
    }
    if (n > MAX_LISTED)
        printf ("(%zu more keys)\n", n - MAX_LISTED);
    if (tally->keys_dropped)
        printf ("(%" PRIu64 " mentions of keys past the first %d not counted)\n",
                tally->keys_dropped, PS_MAX_KEYS);
    free (entries);
}

//  A group's brokers, one row each: a slow or dropping broker shows here
static void
s_top_brokers (tally_t *tally, double seconds)
{
    if (!tally->grouped)
        return;
    printf ("\n%-7s %8s %11s %9s %9s %8s\n", "broker", "req/s", "bytes/s", "p50", "p99", "dropped");
    for (size_t b = 0; b < BROKER_SLOTS; b++) {
        broker_row_t *row = &tally->brokers[b];
        if (!row->records)
            continue;
        char name[32], rate[32], p50[32], p99[32];
        printf ("%-7s %8.1f %9s/s %9s %9s %8" PRIu64 "\n",
                s_broker_name (b, row, name, sizeof name), row->counts.requests / seconds,
                ps_taprender_bytes ((row->counts.bytes_in + row->counts.bytes_out) / seconds, rate,
                                    sizeof rate),
                s_fmt_percentile (&row->counts, 0.5, p50, sizeof p50),
                s_fmt_percentile (&row->counts, 0.99, p99, sizeof p99), s_broker_dropped (row));
    }
}

//  One screen of top: rates over seconds, clocks from INFO when given
static void
s_top_print (session_t *session, const top_info_t *info, double seconds, const char *title)
{
    tally_t *tally = &session->tally;
    //  One record (or none) spans no time: show counts rather than infinities
    if (seconds <= 0)
        seconds = 1;
    int64_t min_clock, slowest;
    s_tally_slowest (tally, &min_clock, &slowest);
    if (info)
        min_clock = info->min_clock, slowest = info->slowest;
    printf ("%s  %.1f s  %" PRIu64 " records", title, seconds, tally->records);
    if (min_clock >= 0)
        printf ("  slowest clock %" PRId64, min_clock);
    if (slowest >= 0)
        printf (" (w%" PRId64 ")", slowest);
    if (info)
        printf ("  %" PRId64 " live of %" PRId64, info->live, info->world);
    printf ("\n\n%-7s %8s %11s %9s %9s %7s %7s %8s\n", "worker", "req/s", "bytes/s", "p50", "p99",
            "clock", "behind", "pending");
    //  Clocks and parked requests: INFO's, else what the records said
    int64_t *clocks = calloc (PS_MAX_WORKERS, sizeof *clocks);
    int64_t *parked = calloc (PS_MAX_WORKERS, sizeof *parked);
    uint64_t *pending = calloc (PS_MAX_WORKERS, sizeof *pending);
    int64_t world = info ? info->world : 0;
    if (!clocks || !parked || !pending) {
        printf ("(out of memory)\n");
        world = -1;
    }
    else if (info) {
        memcpy (clocks, info->clocks, PS_MAX_WORKERS * sizeof *clocks);
        memcpy (parked, info->parked, PS_MAX_WORKERS * sizeof *parked);
    }
    else {
        ps_tappair_pending (session->pairing, pending, PS_MAX_WORKERS);
        for (size_t rank = 0; rank < PS_MAX_WORKERS; rank++) {
            clocks[rank] = tally->workers[rank].clock;
            parked[rank] = (int64_t)pending[rank];
        }
    }
    for (int64_t rank = 0; world >= 0 && rank < PS_MAX_WORKERS; rank++) {
        worker_row_t *row = &tally->workers[rank];
        if (!row->seen && rank >= world)
            continue;
        int64_t clock = rank < world || !info ? clocks[rank] : -1;
        int64_t waiting = rank < world || !info ? parked[rank] : -1;
        char rate[32], p50[32], p99[32], clock_text[24], behind[24], parked_text[24];
        snprintf (clock_text, sizeof clock_text, clock >= 0 ? "%" PRId64 : "-", clock);
        snprintf (behind, sizeof behind, clock >= 0 && min_clock >= 0 ? "%+" PRId64 : "-",
                  clock - min_clock);
        snprintf (parked_text, sizeof parked_text, waiting >= 0 ? "%" PRId64 : "-", waiting);
        printf ("w%-6" PRId64 " %8.1f %9s/s %9s %9s %7s %7s %8s\n", rank,
                row->counts.requests / seconds,
                ps_taprender_bytes ((row->counts.bytes_in + row->counts.bytes_out) / seconds, rate,
                                    sizeof rate),
                s_fmt_percentile (&row->counts, 0.5, p50, sizeof p50),
                s_fmt_percentile (&row->counts, 0.99, p99, sizeof p99), clock_text, behind,
                parked_text);
    }
    free (clocks);
    free (parked);
    free (pending);
    s_top_brokers (tally, seconds);
    s_top_keys (tally, seconds);
}

static int
s_top (const options_t *options)
{
    session_t session;
    int rc = s_session_init (&session, options, VIEW_TOP);
    top_info_t info = {0}; //  freed on every path, even when never initialised
    if (rc == 0 && s_top_info_init (&info)) {
        fprintf (stderr, "pstap top: out of memory\n");
        rc = 1;
    }
    tap_t tap;
    group_t group;
    if (rc == 0 && s_connect (&tap, &group, options, session.filter))
        rc = 1;
    if (rc) {
        s_top_info_destroy (&info);
        s_session_destroy (&session);
        return rc;
    }
    bool screen = !options->batch && isatty (STDOUT_FILENO);
    for (uint64_t iteration = 0; !s_interrupted && !session.done; iteration++) {
        int64_t started = s_now_ms ();
        s_pump (&session, &tap, started + options->interval_ms);
        if (s_interrupted)
            break;
        double seconds = (s_now_ms () - started) / 1e3;
        size_t answered = options->broker ? s_top_info_query (&info, &group, options) : 0;
        if (s_interrupted)
            break;
        char title[400], brokers[32] = "";
        time_t now = time (NULL);
        struct tm local;
        localtime_r (&now, &local);
        if (group.nmembers > 1)
            snprintf (brokers, sizeof brokers, "  %zu brokers", group.nmembers);
        snprintf (title, sizeof title, "pstap top  %.200s%s  %02d:%02d:%02d",
                  options->broker ? options->broker : options->tap, brokers, local.tm_hour,
                  local.tm_min, local.tm_sec);
        if (screen)
            printf ("\033[H\033[2J");
        else if (iteration > 0)
            printf ("\n");
        s_top_print (&session, answered ? &info : NULL, seconds, title);
        if (options->broker && !answered)
            printf ("(no INFO from the broker: clocks and parked requests unknown)\n");
        else if (options->broker && answered < group.nmembers)
            printf ("(INFO from %zu of the %zu brokers only)\n", answered, group.nmembers);
        fflush (stdout);
        s_tally_reset (&session.tally);
        if (options->iterations && iteration + 1 >= options->iterations)
            break;
    }
    s_tap_close (&tap);
    s_group_destroy (&group);
    s_top_info_destroy (&info);
    return s_session_destroy (&session);
}

// ---------------------------------------------------------------- clock

//  A parked request from INFO's list: "w1  clock  clock 12  waiting 1.2s"
static void
s_clock_parked (const ps_json_t *info, int item)
{
    char waited[32];
    const char *type = ps_json_string (info, ps_json_member (info, item, "type"));
    double waiting_us = ps_json_number (info, ps_json_member (info, item, "waiting_ms"), 0) * 1000;
    printf ("  w%-5" PRId64 " %-6s clock %-8" PRId64 " waiting %s\n",
            ps_json_int (info, ps_json_member (info, item, "worker"), -1), type ? type : "?",
            ps_json_int (info, ps_json_member (info, item, "clock"), -1),
            ps_taprender_us (waiting_us, waited, sizeof waited));
}

static void
s_clock_print (const ps_json_t *info, const int64_t *clocks, const int64_t *parked,
               const int64_t *previous, double seconds, int64_t world, const char *title)
{
    int64_t min = s_info_int (info, "min_clock", -1);
    int64_t slowest = s_info_int (info, "slowest", -1);
    int64_t staleness = s_info_int (info, "staleness", 0);
    int64_t max = -1, waiting = 0;
    for (int64_t rank = 0; rank < world; rank++) {
        max = clocks[rank] > max ? clocks[rank] : max;
        waiting += parked[rank] > 0 ? parked[rank] : 0;
    }
    printf ("%s  %s staleness %" PRId64, title, s_mode_name (staleness), staleness);
    if (max < 0)
        printf ("  no live workers\n\n");
    else
        printf ("  slowest %" PRId64 "  fastest %" PRId64 "  spread %" PRId64 "\n\n", min, max,
                max - min);
    //  One '#' per clock ahead of the slowest, scaled when they are far apart
    double scale = max - min > BAR_WIDTH ? (double)BAR_WIDTH / (double)(max - min) : 1;
    for (int64_t rank = 0; rank < world; rank++) {
        if (clocks[rank] < 0) {
            printf ("w%-5" PRId64 " %8s  absent or gone\n", rank, "-");
            continue;
        }
        char bar[BAR_WIDTH + 1], rate[32] = "", note[96] = "", count[32] = "";
        int64_t ahead = min >= 0 ? clocks[rank] - min : 0;
        int length = (int)((double)ahead * scale + 0.5);
        length = length < 0 ? 0 : length > BAR_WIDTH ? BAR_WIDTH : length;
        memset (bar, '#', (size_t)length);
        bar[length] = 0;
        if (previous && previous[rank] >= 0 && seconds > 0)
            snprintf (rate, sizeof rate, "%.1f clocks/s",
                      (double)(clocks[rank] - previous[rank]) / seconds);
        if (parked[rank] > 0)
            snprintf (count, sizeof count, "%" PRId64 " parked", parked[rank]);
        int64_t others = waiting - (parked[rank] > 0 ? parked[rank] : 0);
        if (rank == slowest && others > 0)
            snprintf (note, sizeof note, "  <- slowest: %" PRId64 " parked requests of others wait",
                      others);
        else if (rank == slowest)
            snprintf (note, sizeof note, "  <- slowest");
        printf ("w%-5" PRId64 " %8" PRId64 "  |%-*s| %+6" PRId64 "  %15s  %9s%s\n", rank,
                clocks[rank], BAR_WIDTH, bar, ahead, rate, count, note);
    }
    int list = ps_json_member (info, ps_json_root (info), "parked");
    if (ps_json_type (info, list) != PS_JSON_ARRAY) {
        char count[32];
        printf ("\nparked requests: %s (this broker does not list them)\n",
                s_fmt_count (info, "parked_now", count, sizeof count));
        return;
    }
    size_t shown = 0, nparked = ps_json_length (info, list);
    printf ("\nparked requests: %zu\n", nparked);
    for (int item = ps_json_first (info, list); item >= 0 && shown < MAX_LISTED;
         item = ps_json_next (info, item), shown++)
        s_clock_parked (info, item);
    if (nparked > shown)
        printf ("  (%zu more)\n", nparked - shown);
}

//  What the clock view keeps of one broker between refreshes
typedef struct {
    int64_t *clocks;    //  per rank, this refresh
    int64_t *previous;  //  and the last, for the rates
    int64_t *parked;    //  per rank, parked now
    int64_t polled;     //  when the last refresh was, monotonic ms
    bool have_previous; //  previous holds a refresh
} clock_state_t;

//  One refresh of one broker: its INFO (owned) as a block under title
static void
s_clock_refresh (clock_state_t *state, ps_json_t *info, int64_t now, const char *title)
{
    if (!info) {
        printf ("%s  (no INFO from the broker this time)\n", title);
        return;
    }
    int64_t world = s_info_world (info);
    s_info_workers (info, world, state->clocks, state->parked);
    s_clock_print (info, state->clocks, state->parked,
                   state->have_previous ? state->previous : NULL, (now - state->polled) / 1e3,
                   world, title);
    memcpy (state->previous, state->clocks, (size_t)world * sizeof *state->clocks);
    state->have_previous = true;
    state->polled = now;
}

static void
s_clock_states_destroy (clock_state_t *states, size_t count)
{
    for (size_t i = 0; states && i < count; i++) {
        free (states[i].clocks);
        free (states[i].previous);
        free (states[i].parked);
    }
    free (states);
}

static clock_state_t *
s_clock_states_new (size_t count)
{
    clock_state_t *states = calloc (count, sizeof *states);
    for (size_t i = 0; states && i < count; i++) {
        states[i].clocks = calloc (PS_MAX_WORKERS, sizeof *states[i].clocks);
        states[i].previous = calloc (PS_MAX_WORKERS, sizeof *states[i].previous);
        states[i].parked = calloc (PS_MAX_WORKERS, sizeof *states[i].parked);
        if (!states[i].clocks || !states[i].previous || !states[i].parked) {
            s_clock_states_destroy (states, count);
            return NULL;
        }
    }
    return states;
}

//  Each broker of a group keeps its own vector clock and parks its own
//  requests, so each has its own block, one under the other
static int
s_clock (const options_t *options)
{
    if (!options->broker) {
        fprintf (stderr, "pstap clock: needs --broker EP (the vector clock comes from INFO)\n");
        return 2;
    }
    group_t group;
    if (s_group_resolve (&group, options)) {
        s_group_destroy (&group);
        return s_interrupted ? 0 : 1;
    }
    clock_state_t *states = s_clock_states_new (group.nmembers);
    if (!states) {
        s_group_destroy (&group);
        fprintf (stderr, "pstap clock: out of memory\n");
        return 1;
    }
    bool screen = !options->batch && isatty (STDOUT_FILENO);
    for (uint64_t iteration = 0; !s_interrupted; iteration++) {
        int64_t started = s_now_ms ();
        if (screen)
            printf ("\033[H\033[2J");
        else if (iteration > 0)
            printf ("\n");
        for (size_t i = 0; i < group.nmembers && !s_interrupted; i++) {
            member_t *member = &group.members[i];
            //  The first refresh shows the INFO that found the brokers
            ps_json_t *info = member->info;
            member->info = NULL;
            if (iteration > 0)
                info = s_info ("clock", member->endpoint, options->timeout_ms, NULL);
            if (s_interrupted) {
                ps_json_destroy (&info);
                break;
            }
            char title[400], shard[32] = "";
            if (member->shards > 1)
                snprintf (shard, sizeof shard, "  b%u/%u", member->shard, member->shards);
            snprintf (title, sizeof title, "pstap clock  %.300s%s", member->endpoint, shard);
            if (i > 0)
                printf ("\n");
            s_clock_refresh (&states[i], info, s_now_ms (), title);
            ps_json_destroy (&info);
        }
        fflush (stdout);
        if (options->iterations && iteration + 1 >= options->iterations)
            break;
        s_sleep_until (started + options->interval_ms);
    }
    s_clock_states_destroy (states, group.nmembers);
    s_group_destroy (&group);
    return 0;
}

// ----------------------------------------------------------------- read

static int
s_read (const options_t *options)
{
    if (options->json && options->view != VIEW_WATCH) {
        fprintf (stderr, "pstap read: --json applies to --view watch only\n");
        return 2;
    }
    //  fopen opens a directory for reading and only the first read fails,
    //  which the recording reader takes for an empty file ("0 bytes")
    struct stat file;
    if (strcmp (options->read_path, "-") != 0 && stat (options->read_path, &file) == 0 &&
        S_ISDIR (file.st_mode)) {
        fprintf (stderr, "pstap read: %s is a directory\n", options->read_path);
        return 1;
    }
    session_t session;
    int rc = s_session_init (&session, options, options->view);
    if (rc) {
        s_session_destroy (&session);
        return rc;
    }
    ps_problem_t problem;
    ps_taplog_reader_t *reader = ps_taplog_reader_new (options->read_path, &problem);
    if (!reader) {
        fprintf (stderr, "pstap read: %s\n", problem.message);
        s_session_destroy (&session);
        return 1;
    }
    ps_taplog_entry_t entry;
    ps_taplog_status_t status;
    while (!session.done && !s_interrupted &&
           (status = ps_taplog_reader_next (reader, &entry, &problem)) == PS_TAPLOG_RECORD)
        s_feed (&session, &entry, NULL);
    if (!session.done && !s_interrupted && status != PS_TAPLOG_END) {
        fprintf (stderr, "pstap read: %s: %s\n", options->read_path, problem.message);
        //  A torn tail is what a killed recorder leaves: not an error
        rc = status == PS_TAPLOG_TORN ? 0 : 1;
    }
    if (options->view == VIEW_STATS)
        s_stats_records (&session.tally, options->read_path);
    else if (options->view == VIEW_TOP) {
        char title[320];
        snprintf (title, sizeof title, "pstap top  %.200s", options->read_path);
        double seconds = (session.tally.last_us - session.tally.first_us) / 1e6;
        s_top_print (&session, NULL, seconds, title);
    }
    ps_taplog_reader_destroy (&reader);
    int end = s_session_destroy (&session);
    return rc ? rc : end;
}

// ----------------------------------------------------------------- main

static const command_t s_commands[] = {
    {"watch", s_watch, O_CONNECT | O_FILTER | O_COUNT | O_JSON | O_PAYLOAD,
     "(--broker EP[,EP...] [--member-only] | --tap EP[,EP...]) [-f FILTER] [-c N] [--json]\n"
     "       [--payload]",
     "one line (or JSON object) per record, live",
     "Print the broker's tap records as they happen: one line each, like tcpdump, or one\n"
     "JSON object each with --json (JSON Lines; schema in docs/tap-records.md). Replies\n"
     "are paired with their requests: the text view shows each reply's request age, or\n"
     "[unmatched] when the request came before pstap started. Stops on Ctrl-C.\n"
     "A broker group is watched whole: each line says its broker (b1/3), each JSON\n"
     "object its \"shard\" and \"shards\".\n"},
    {"stats", s_stats, O_CONNECT | O_JSON | O_FILTER | O_INTERVAL,
     "(--broker EP[,EP...] [--member-only] [--json] | --tap EP[,EP...] [--interval-ms MS]\n"
     "       [-f FILTER])",
     "one snapshot of the broker's counters",
     "Print the broker's counters from its INFO reply: uptime, workers live and ever\n"
     "seen, messages and bytes by type, queues, clocks, the tap. --json prints the INFO\n"
     "object itself. With --tap alone, the same figures computed from the records of\n"
     "one interval. A broker group: one block (or INFO object, one per line) per broker.\n"},
    {"top", s_top, O_CONNECT | O_FILTER | O_BATCH | O_ITERATIONS | O_INTERVAL,
     "(--broker EP[,EP...] [--member-only] | --tap EP[,EP...]) [--batch] [-n N]\n"
     "       [--interval-ms MS]",
     "per worker and per key rates, refreshed",
     "Every interval, per worker: requests/s, bytes/s, reply latency p50 and p99, clock,\n"
     "how far ahead of the slowest, requests parked (from INFO with --broker, else\n"
     "unanswered ones seen on the tap); per key: pushes/s, pulls/s, bytes/s, hottest\n"
     "first. Full-screen on a terminal; plain blocks with --batch or into a pipe.\n"
     "A broker group: rates over all its brokers, a worker's lowest clock at any of\n"
     "them and its requests parked at all of them, and one row per broker.\n"},
    {"clock", s_clock, O_BROKER | O_MEMBER_ONLY | O_TIMEOUT | O_BATCH | O_ITERATIONS | O_INTERVAL,
     "--broker EP[,EP...] [--member-only] [-n N] [--interval-ms MS] [--batch]",
     "the vector clock, refreshed",
     "Every interval, each worker's clock as a bar measured from the slowest, who the\n"
     "slowest is, the requests parked on the staleness bound and how long they have\n"
     "waited, and each worker's clocks per second since the last refresh. Each broker\n"
     "of a group keeps its own clock: one block per broker.\n"},
    {"record", s_record, O_CONNECT | O_FILTER | O_COUNT | O_PAYLOAD | O_WRITE,
     "(--broker EP[,EP...] [--member-only] | --tap EP[,EP...]) -w FILE [-f FILTER] [-c N]\n"
     "       [--payload]",
     "write records to a file",
     "Write the tap's records to FILE until -c N records or Ctrl-C.\n"
     "The format is in docs/pstap.md; a killed recorder leaves a\n"
     "readable file. A broker group: the records of all its brokers, in one file.\n"},
    {"read", s_read, O_READ | O_FILTER | O_COUNT | O_JSON | O_VIEW,
     "-r FILE [--json] [-f FILTER] [-c N] [--view watch|stats|top]",
     "the same views from a recording",
     "Show a recording as watch would have (default), or the stats or top of all its\n"
     "records. A torn last record (a killed recorder) is reported and skipped.\n"},
};
#define NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: pstap COMMAND [options]\n\n"
                  "Watch a psbroker through its tap and its INFO counters.\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf (out, "  %-7s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf (out, "\n--broker on one member of a broker group (psbroker --shards) watches the\n"
                  "whole group once a worker has joined; --broker EP0,EP1,... names them all.\n"
                  "\n'pstap COMMAND --help' describes each. Example:\n"
                  "  pstap watch --broker tcp://server:5555 -f 'type=push lat>10ms'\n");
}

static void
s_command_usage (FILE *out, const command_t *command)
{
    fprintf (out, "usage: pstap %s %s\n\n%s\n", command->name, command->synopsis, command->details);
    s_option_help (out, command->allowed);
}

enum {
    OPT_TIMEOUT = 256,
    OPT_JSON,
    OPT_PAYLOAD,
    OPT_BATCH,
    OPT_INTERVAL,
    OPT_VIEW,
    OPT_MEMBER_ONLY
};

//  Parse the options of a subcommand into options; 0, -1 for --help, or
//  2 (usage error, message printed)
static int
s_parse (const command_t *command, int argc, char *argv[], options_t *options)
{
    static const struct option long_options[] = {
        {"broker", required_argument, 0, 'b'},
        {"tap", required_argument, 0, 't'},
        {"timeout-ms", required_argument, 0, OPT_TIMEOUT},
        {"filter", required_argument, 0, 'f'},
        {"count", required_argument, 0, 'c'},
        {"json", no_argument, 0, OPT_JSON},
        {"payload", no_argument, 0, OPT_PAYLOAD},
        {"batch", no_argument, 0, OPT_BATCH},
        {"iterations", required_argument, 0, 'n'},
        {"interval-ms", required_argument, 0, OPT_INTERVAL},
        {"write", required_argument, 0, 'w'},
        {"read", required_argument, 0, 'r'},
        {"view", required_argument, 0, OPT_VIEW},
        {"member-only", no_argument, 0, OPT_MEMBER_ONLY},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const struct {
        int opt;
        unsigned bit;
        const char *name;
    } bits[] = {{'b', O_BROKER, "--broker"},
                {'t', O_TAP, "--tap"},
                {OPT_TIMEOUT, O_TIMEOUT, "--timeout-ms"},
                {'f', O_FILTER, "--filter"},
                {'c', O_COUNT, "--count"},
                {OPT_JSON, O_JSON, "--json"},
                {OPT_PAYLOAD, O_PAYLOAD, "--payload"},
                {OPT_BATCH, O_BATCH, "--batch"},
                {'n', O_ITERATIONS, "--iterations"},
                {OPT_INTERVAL, O_INTERVAL, "--interval-ms"},
                {'w', O_WRITE, "--write"},
                {'r', O_READ, "--read"},
                {OPT_VIEW, O_VIEW, "--view"},
                {OPT_MEMBER_ONLY, O_MEMBER_ONLY, "--member-only"}};
    const char *name = command->name;
    *options = (options_t){.command = name,
                           .timeout_ms = DEFAULT_TIMEOUT_MS,
                           .interval_ms = DEFAULT_INTERVAL_MS,
                           .view = VIEW_WATCH};
    opterr = 0;
    optind = 1;
    //  "pstap watch": what messages from the shared checks start with
    char program[32];
    snprintf (program, sizeof program, "pstap %s", name);
    int opt;
    long number;
    while ((opt = getopt_long (argc, argv, ":b:t:f:c:n:w:r:h", long_options, NULL)) != -1) {
        if (opt == 'h')
            return -1;
        if (opt == '?' || opt == ':') {
            char short_option[3] = {'-', (char)optopt, 0};
            bool is_short = opt == '?' && optopt > 0 && optopt < 128;
            const char *what = is_short ? short_option : argv[optind - 1];
            fprintf (stderr, "pstap %s: %s '%s' (see pstap %s --help)\n", name,
                     opt == ':' ? "missing value for" : "unknown option", what, name);
            return 2;
        }
        for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
            if (bits[i].opt == opt && !(command->allowed & bits[i].bit)) {
                fprintf (stderr, "pstap %s: %s does not apply here (see pstap %s --help)\n", name,
                         bits[i].name, name);
                return 2;
            }
        int rc = 0;
        switch (opt) {
        case 'b':
            rc = ps_cli_word (program, "--broker", optarg);
            options->broker = optarg;
            break;
        case 't':
            rc = ps_cli_word (program, "--tap", optarg);
            options->tap = optarg;
            break;
        case 'f':
            rc = ps_cli_word (program, "--filter", optarg);
            options->filter = optarg;
            break;
        case 'w':
            rc = ps_cli_word (program, "--write", optarg);
            options->write_path = optarg;
            break;
        case 'r':
            rc = ps_cli_word (program, "--read", optarg);
            options->read_path = optarg;
            break;
        case OPT_JSON: options->json = true; break;
        case OPT_PAYLOAD: options->payload = true; break;
        case OPT_BATCH: options->batch = true; break;
        case OPT_MEMBER_ONLY: options->member_only = true; break;
        case OPT_TIMEOUT:
            rc = ps_cli_long (program, "--timeout-ms", optarg, 1, PS_MAX_TIMEOUT_MS, &number);
            options->timeout_ms = (int)number;
            break;
        case OPT_INTERVAL:
            rc = ps_cli_long (program, "--interval-ms", optarg, 10, PS_MAX_TIMEOUT_MS, &number);
            options->interval_ms = (int)number;
            break;
        case 'c':
            rc = ps_cli_long (program, "--count", optarg, 1, LONG_MAX, &number);
            options->count = (uint64_t)number;
            break;
        case 'n':
            rc = ps_cli_long (program, "--iterations", optarg, 1, LONG_MAX, &number);
            options->iterations = (uint64_t)number;
            break;
        case OPT_VIEW:
            if (strcmp (optarg, "watch") == 0)
                options->view = VIEW_WATCH;
            else if (strcmp (optarg, "stats") == 0)
                options->view = VIEW_STATS;
            else if (strcmp (optarg, "top") == 0)
                options->view = VIEW_TOP;
            else {
                fprintf (stderr, "pstap %s: --view '%s' is not one of watch, stats, top\n", name,
                         optarg);
                rc = -1;
            }
            break;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf (stderr, "pstap %s: unexpected argument '%s' (see pstap %s --help)\n", name,
                 argv[optind], name);
        return 2;
    }
    if ((command->allowed & O_BROKER) && !options->broker && !options->tap) {
        fprintf (stderr, "pstap %s: say where the broker is: --broker EP%s\n", name,
                 command->allowed & O_TAP ? " (or --tap EP)" : "");
        return 2;
    }
    if (options->broker && options->tap) {
        fprintf (stderr, "pstap %s: give --broker or --tap, not both\n", name);
        return 2;
    }
    if (options->member_only && !options->broker) {
        fprintf (stderr, "pstap %s: --member-only goes with --broker (a tap is one broker's)\n",
                 name);
        return 2;
    }
    if ((options->broker && ps_cli_endpoints (program, "--broker", options->broker)) ||
        (options->tap && ps_cli_endpoints (program, "--tap", options->tap)))
        return 2;
    if ((command->allowed & O_WRITE) && !options->write_path) {
        fprintf (stderr, "pstap %s: -w FILE is required\n", name);
        return 2;
    }
    if ((command->allowed & O_READ) && !options->read_path) {
        fprintf (stderr, "pstap %s: -r FILE is required\n", name);
        return 2;
    }
    return 0;
}

int
main (int argc, char *argv[])
{
    if (argc < 2) {
        s_usage (stderr);
        return 2;
    }
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 ||
        strcmp (argv[1], "help") == 0) {
        s_usage (stdout);
        return 0;
    }
    const command_t *command = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp (argv[1], s_commands[i].name) == 0)
            command = &s_commands[i];
    if (!command) {
        fprintf (stderr, "pstap: unknown command '%s' (watch, stats, top, clock, record, read)\n",
                 argv[1]);
        return 2;
    }
    options_t options;
    int rc = s_parse (command, argc - 1, argv + 1, &options);
    if (rc == -1) {
        s_command_usage (stdout, command);
        return 0;
    }
    if (rc)
        return rc;

    struct sigaction action = {.sa_handler = s_on_signal};
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
    //  A closed pipe (pstap watch | head) ends the output, not the process
    signal (SIGPIPE, SIG_IGN);
    //  Records are read by people and by tests through pipes: a line each
    setvbuf (stdout, NULL, _IOLBF, 0);
    return command->run (&options);
}
