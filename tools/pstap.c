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
    socket or a ps_taplog file): decode with ps_codec_decode_tap (bad ones
    are counted and skipped, never trusted), watch the broker's `dropped`
    counter, pair replies with their requests by (peer, seq), apply the
    filter, then hand the record to the view. So `pstap read` shows
    exactly what `pstap watch` would have shown, and the golden-file test
    of `read` covers the live path's logic too.

    Filters are turned into XPUB subscriptions (ps_tapfilter_topics) so the
    broker does not even build what we would throw away; what topics
    cannot express (keys, sizes, latency) is matched here. "payload."
    messages repeat a record with its tensor frames: they never count as
    records and only show as a continuation line.

    One thread. Every wait is bounded: the broker's INFO and the tap's
    handshake by --timeout-ms, the receive loop by a short poll that checks
    for SIGINT and SIGTERM, so Ctrl-C always stops cleanly. Exit codes: 0
    done, 1 cannot reach the broker or tap (or a damaged recording), 2 bad
    command line.
    ========================================================================= */

#include "ps_codec.h"
#include "ps_json.h"
#include "ps_limits.h"
#include "ps_taplog.h"
#include "ps_tapview.h"
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

static const char *
s_fmt_bytes (double bytes, char *buffer, size_t size)
{
    if (bytes < 1024)
        snprintf (buffer, size, "%.0f B", bytes);
    else if (bytes < 1024 * 1024)
        snprintf (buffer, size, "%.1f KB", bytes / 1024);
    else if (bytes < 1024.0 * 1024 * 1024)
        snprintf (buffer, size, "%.1f MB", bytes / (1024 * 1024));
    else
        snprintf (buffer, size, "%.1f GB", bytes / (1024.0 * 1024 * 1024));
    return buffer;
}

static const char *
s_fmt_us (double us, char *buffer, size_t size)
{
    if (us < 1000)
        snprintf (buffer, size, "%.0fus", us);
    else if (us < 1000000)
        snprintf (buffer, size, "%.1fms", us / 1e3);
    else
        snprintf (buffer, size, "%.1fs", us / 1e6);
    return buffer;
}

//  A growable line for ps_tapview_*, which follow snprintf's contract
typedef struct {
    char *data;  //  the rendered line
    size_t size; //  room in data
} line_t;

static const char *
s_render (line_t *line, const ps_tap_record_t *record, bool json)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int needed = json ? ps_tapview_json (record, line->data, line->size)
                          : ps_tapview_text (record, line->data, line->size);
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
    O_CONNECT = O_BROKER | O_TAP | O_TIMEOUT
};

typedef enum { VIEW_WATCH, VIEW_STATS, VIEW_TOP, VIEW_CLOCK, VIEW_RECORD } view_t;

typedef struct {
    const char *command;    //  the subcommand
    const char *broker;     //  --broker: find the tap through INFO
    const char *tap;        //  --tap: the tap itself
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
        {O_BROKER, "  -b, --broker EP      the broker's endpoint; the tap is found through INFO"},
        {O_TAP, "  -t, --tap EP         the tap's endpoint (psbroker --tap)"},
        {O_TIMEOUT, "      --timeout-ms MS  give up reaching the broker or tap after MS (3000)"},
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
        fprintf (out,
                 "\nFilter terms, space-separated, all must hold:\n"
                 "  kind=req,rep,conn,disc,evict,rej,clock   type=push,pull,clock,init,...\n"
                 "  worker=0,2   key=NAME,...   bytes>1M   bytes<4K   lat>10ms   status=err\n");
}

//  Parse a whole number in [min, max] for an option; prints why not
static int
s_parse_number (const char *command, const char *option, const char *text, long long min,
                long long max, long long *value)
{
    char *end;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (errno || end == text || *end || parsed < min || parsed > max) {
        fprintf (stderr, "pstap %s: %s '%s' must be a whole number from %lld to %lld\n", command,
                 option, text, min, max);
        return -1;
    }
    *value = parsed;
    return 0;
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

// ----------------------------------------------------------------- tap

typedef struct {
    void *context;                //  our ZeroMQ context
    void *sub;                    //  SUB socket on the tap
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
s_tap_handshake (tap_t *self, const char *command, const char *endpoint, int timeout_ms)
{
    char monitor_endpoint[64];
    snprintf (monitor_endpoint, sizeof monitor_endpoint, "inproc://pstap-monitor-%p", self->sub);
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    void *monitor = NULL;
    int rc = zmq_socket_monitor (self->sub, monitor_endpoint, events);
    if (rc == 0 && (monitor = zmq_socket (self->context, ZMQ_PAIR)) != NULL) {
        int linger = 0;
        zmq_setsockopt (monitor, ZMQ_LINGER, &linger, sizeof linger);
        rc = zmq_connect (monitor, monitor_endpoint);
    }
    if (rc || !monitor) {
        fprintf (stderr, "pstap %s: cannot watch the connection: %s\n", command,
                 zmq_strerror (zmq_errno ()));
        rc = -2;
    }
    else if (zmq_connect (self->sub, endpoint)) {
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
    zmq_socket_monitor (self->sub, NULL, 0);
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

//  The tap's endpoint: --tap, or the "tap" field of the broker's INFO
static int
s_tap_endpoint (const options_t *options, char *endpoint, size_t size)
{
    if (options->tap) {
        snprintf (endpoint, size, "%s", options->tap);
        return 0;
    }
    ps_json_t *info = s_info (options->command, options->broker, options->timeout_ms, NULL);
    if (!info)
        return -1;
    const char *tap = s_info_string (info, "tap", NULL);
    int rc = -1;
    if (!tap)
        fprintf (stderr,
                 "pstap %s: the broker at %s reports no tap (a psbroker without one?); "
                 "give --tap EP\n",
                 options->command, options->broker);
    else if (!*tap)
        fprintf (stderr, "pstap %s: the broker at %s runs without a tap (--no-tap)\n",
                 options->command, options->broker);
    else if (strlen (tap) >= size)
        fprintf (stderr, "pstap %s: the broker's tap endpoint is too long\n", options->command);
    else {
        snprintf (endpoint, size, "%s", tap);
        rc = 0;
    }
    ps_json_destroy (&info);
    return rc;
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
    if (self->sub)
        zmq_close (self->sub);
    if (self->context)
        zmq_ctx_term (self->context);
    free (self->msgs);
    free (self->frames);
    memset (self, 0, sizeof *self);
}

//  Connect to the tap, subscribe to what the filter needs, and wait for
//  the handshake. 0, or -1 with a message on stderr.
static int
s_tap_open (tap_t *self, const options_t *options, const ps_tapfilter_t *filter)
{
    memset (self, 0, sizeof *self);
    self->command = options->command;
    char endpoint[512];
    if (s_tap_endpoint (options, endpoint, sizeof endpoint))
        return -1;
    self->context = zmq_ctx_new ();
    self->sub = self->context ? zmq_socket (self->context, ZMQ_SUB) : NULL;
    self->msgs = calloc (PS_TAPLOG_MAX_FRAMES + 1, sizeof *self->msgs);
    self->frames = calloc (PS_TAPLOG_MAX_FRAMES, sizeof *self->frames);
    if (!self->sub || !self->msgs || !self->frames) {
        fprintf (stderr, "pstap %s: cannot create a ZeroMQ socket\n", options->command);
        s_tap_close (self);
        return -1;
    }
    int64_t max_frame = PS_MAX_FRAME_BYTES;
    int hwm = PS_RCVHWM, linger = 0;
    zmq_setsockopt (self->sub, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
    zmq_setsockopt (self->sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt (self->sub, ZMQ_LINGER, &linger, sizeof linger);
    ps_tapfilter_topics (filter, options->payload, s_subscribe, self->sub);
    if (s_tap_handshake (self, options->command, endpoint, options->timeout_ms)) {
        s_tap_close (self);
        return -1;
    }
    return 0;
}

//  Receive one whole message within timeout_ms into entry: 1, or 0 when
//  none came (or a signal), the message dropped when it has too many
//  frames or no record
static int
s_tap_receive (tap_t *self, int timeout_ms, ps_taplog_entry_t *entry)
{
    for (size_t i = 0; i < self->nmsgs; i++)
        zmq_msg_close (&self->msgs[i]);
    self->nmsgs = 0;
    zmq_pollitem_t item = {self->sub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, timeout_ms) <= 0)
        return 0;
    bool more = true, overflow = false;
    while (more) {
        zmq_msg_t scratch;
        bool keep = self->nmsgs <= PS_TAPLOG_MAX_FRAMES;
        zmq_msg_t *msg = keep ? &self->msgs[self->nmsgs] : &scratch;
        zmq_msg_init (msg);
        if (zmq_msg_recv (msg, self->sub, 0) == -1) {
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

// ------------------------------------------------------------- pairing

//  A request waiting for its reply
typedef struct {
    uint64_t time_us; //  when the broker received it
    int64_t worker;   //  its rank, -1 if not known
    int type;         //  its message type
} pending_t;

//  Requests by "peer/worker/seq", so that replies find theirs
typedef struct {
    zhashx_t *table;    //  key -> pending_t
    uint64_t forgotten; //  requests dropped when the table was full
} pairing_t;

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_pairing_key (const ps_tap_record_t *record, char *key, size_t size)
{
    snprintf (key, size, "%s/%" PRId64 "/%" PRIu64, record->peer, record->worker, record->seq);
}

//  Remember a request, or find and forget a reply's (or rejection's)
//  request: true when it was found, with its receipt time in *request_us
static bool
s_pairing_update (pairing_t *self, const ps_tap_record_t *record, uint64_t *request_us)
{
    char key[128];
    s_pairing_key (record, key, sizeof key);
    if (record->kind == PSMQ__TAP_KIND__TAP_REQUEST &&
        record->type != PSMQ__MSG_TYPE__HEARTBEAT) { //  heartbeats get no reply
        if (zhashx_size (self->table) >= MAX_PENDING) {
            self->forgotten += zhashx_size (self->table);
            zhashx_purge (self->table);
        }
        pending_t *pending = malloc (sizeof *pending);
        if (pending) {
            *pending = (pending_t){record->time_us, record->worker, record->type};
            zhashx_update (self->table, key, pending);
        }
        return false;
    }
    if (record->kind != PSMQ__TAP_KIND__TAP_REPLY && record->kind != PSMQ__TAP_KIND__TAP_REJECT)
        return false;
    pending_t *pending = zhashx_lookup (self->table, key);
    if (!pending)
        return false;
    *request_us = pending->time_us;
    zhashx_delete (self->table, key);
    return true;
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
    int64_t min_clock;          //  the latest slowest clock, -1 none
    int64_t slowest;            //  the rank that held it, -1 none
    uint64_t dropped_first;     //  the broker's dropped count at the first
    uint64_t dropped_last;      //  and at the last record
} tally_t;

static int
s_tally_init (tally_t *self)
{
    memset (self, 0, sizeof *self);
    self->workers = calloc (PS_MAX_WORKERS, sizeof *self->workers);
    self->keys = zhashx_new ();
    if (!self->workers || !self->keys)
        return -1;
    zhashx_set_destructor (self->keys, s_free_item);
    for (size_t i = 0; i < PS_MAX_WORKERS; i++)
        self->workers[i].clock = -1;
    self->min_clock = self->slowest = -1;
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
    zhashx_purge (self->keys);
    self->keys_dropped = self->records = self->first_us = self->last_us = 0;
    memset (self->kinds, 0, sizeof self->kinds);
}

static void
s_tally_destroy (tally_t *self)
{
    if (self->workers)
        s_tally_reset (self);
    free (self->workers);
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
s_tally_add (tally_t *self, const ps_tap_record_t *record)
{
    if (self->records++ == 0) {
        self->first_us = record->time_us;
        self->dropped_first = record->dropped;
    }
    self->last_us = record->time_us;
    self->dropped_last = record->dropped;
    //  protobuf-c keeps enum values it does not know: count only ours
    if ((unsigned)record->kind < NKINDS)
        self->kinds[record->kind]++;
    if ((unsigned)record->type < NTYPES)
        s_counts_add (&self->types[record->type], record);
    if (record->min_clock >= 0)
        self->min_clock = record->min_clock;
    if (record->kind == PSMQ__TAP_KIND__TAP_CLOCK)
        self->slowest = record->slowest;
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
    return s_fmt_us (value, buffer, size);
}

// ------------------------------------------------------------ pipeline

//  One run of records through decode, drop check, pairing, filter, view
typedef struct {
    const options_t *options;
    view_t view;                //  what happens to a record that passes
    ps_codec_t *codec;          //  the one decoder
    ps_tapfilter_t *filter;     //  -f
    pairing_t pairing;          //  requests waiting for replies
    bool requests_seen;         //  any request came: unmatched means something
    bool have_dropped;          //  dropped below is known
    uint64_t dropped;           //  the broker's dropped count at the last record
    uint64_t malformed;         //  records that did not decode
    uint64_t shown;             //  records shown (or recorded)
    uint64_t payloads;          //  payload messages shown (or recorded)
    uint64_t last_shown;        //  record number of the last one shown
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
    char why[300];
    self->filter = ps_tapfilter_new (options->filter, why, sizeof why);
    if (!self->filter) {
        fprintf (stderr, "pstap %s: bad filter: %s\n", options->command, why);
        return 2;
    }
    self->codec = ps_codec_new ();
    self->pairing.table = zhashx_new ();
    if (!self->codec || !self->pairing.table || s_tally_init (&self->tally)) {
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
        return 1;
    }
    zhashx_set_destructor (self->pairing.table, s_free_item);
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
    if (self->pairing.forgotten)
        fprintf (stderr, "pstap %s: forgot %" PRIu64 " unanswered requests (table full)\n", command,
                 self->pairing.forgotten);
    int rc = 0;
    if (fflush (stdout) || ferror (stdout))
        rc = errno == EPIPE ? 0 : 1;
    ps_tapfilter_destroy (&self->filter);
    ps_codec_destroy (&self->codec);
    zhashx_destroy (&self->pairing.table);
    s_tally_destroy (&self->tally);
    free (self->line.data);
    return rc;
}

static void
s_check_dropped (session_t *self, const ps_tap_record_t *record)
{
    if (self->have_dropped && record->dropped > self->dropped)
        fprintf (stderr, "pstap: broker dropped %" PRIu64 " records (reader too slow)\n",
                 record->dropped - self->dropped);
    //  A count that goes down is a restarted broker: start again from it
    self->dropped = record->dropped;
    self->have_dropped = true;
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
        snprintf (
            note, size, "  [request %s ago]",
            s_fmt_us (record->time_us > request_us ? (double)(record->time_us - request_us) : 0,
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
        char why[300];
        if (ps_taplog_writer_append (self->writer, entry->topic, entry->topic_size, entry->frames,
                                     entry->nframes, why, sizeof why)) {
            fprintf (stderr, "pstap record: %s\n", why);
            self->done = true;
        }
        self->payloads++;
        return;
    }
    if (self->view != VIEW_WATCH || self->options->json || record->record != self->last_shown)
        return;
    uint64_t bytes = 0;
    for (size_t i = 1; i < entry->nframes; i++)
        bytes += entry->frames[i].size;
    char text[64], size[32];
    snprintf (text, sizeof text, "    + payload: %zu frame%s, %s", entry->nframes - 1,
              entry->nframes == 2 ? "" : "s", s_fmt_bytes ((double)bytes, size, sizeof size));
    s_print (self, text, "");
    self->payloads++;
}

//  A record that passed the filter
static void
s_show (session_t *self, const ps_tap_record_t *record, const ps_taplog_entry_t *entry, bool paired,
        uint64_t request_us)
{
    if (self->view == VIEW_RECORD) {
        char why[300];
        if (ps_taplog_writer_append (self->writer, entry->topic, entry->topic_size, entry->frames,
                                     entry->nframes, why, sizeof why)) {
            fprintf (stderr, "pstap record: %s\n", why);
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
    self->shown++;
    if (self->options->count && self->shown >= self->options->count)
        self->done = true;
}

//  One message from the tap or a file
static void
s_feed (session_t *self, const ps_taplog_entry_t *entry)
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
    s_check_dropped (self, record);
    if (strncmp (entry->topic, "payload.", 8) == 0) {
        if (ps_tapfilter_match (self->filter, record))
            s_payload (self, record, entry);
        return;
    }
    if (record->kind == PSMQ__TAP_KIND__TAP_REQUEST)
        self->requests_seen = true;
    uint64_t request_us = 0;
    bool paired = s_pairing_update (&self->pairing, record, &request_us);
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
            s_feed (self, &entry);
    }
}

// ---------------------------------------------------------------- watch

static int
s_watch (const options_t *options)
{
    session_t session;
    int rc = s_session_init (&session, options, VIEW_WATCH);
    tap_t tap;
    if (rc == 0 && s_tap_open (&tap, options, session.filter))
        rc = 1;
    if (rc == 0) {
        s_pump (&session, &tap, 0);
        s_tap_close (&tap);
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
    if (rc == 0 && s_tap_open (&tap, options, session.filter))
        rc = 1;
    if (rc == 0) {
        char why[300];
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        uint64_t start_us = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
        session.writer = ps_taplog_writer_new (options->write_path, start_us, why, sizeof why);
        if (!session.writer) {
            fprintf (stderr, "pstap record: %s\n", why);
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
    return s_fmt_bytes (ps_json_number (info, node, 0), buffer, size);
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

static void
s_stats_print (const ps_json_t *info)
{
    char a[32], b[32], c[32], d[32];
    int64_t staleness = s_info_int (info, "staleness", 0);
    int64_t seen = s_info_seen (info);
    printf ("broker      %s\n", s_info_string (info, "endpoint", "?"));
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
    printf ("store       %s keys, %s optimizer steps, %s lr %g\n",
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
            seconds, tally->records, tally->dropped_last - tally->dropped_first);
    printf ("workers     %zu seen, %" PRIu64 " connects, %" PRIu64 " disconnects, %" PRIu64
            " evictions\n",
            workers, tally->kinds[PSMQ__TAP_KIND__TAP_CONNECT],
            tally->kinds[PSMQ__TAP_KIND__TAP_DISCONNECT], tally->kinds[PSMQ__TAP_KIND__TAP_EVICT]);
    printf ("clock       slowest %" PRId64, tally->min_clock);
    if (tally->slowest >= 0)
        printf (" (w%" PRId64 ")", tally->slowest);
    printf (" at the end, %" PRIu64 " moves\n", tally->kinds[PSMQ__TAP_KIND__TAP_CLOCK]);
    printf ("rejected    %" PRIu64 "\n", tally->kinds[PSMQ__TAP_KIND__TAP_REJECT]);
    printf ("\n%-10s %8s %8s %7s %11s %11s %9s %9s\n", "type", "requests", "replies", "errors",
            "bytes in", "bytes out", "p50", "p99");
    for (int type = 1; type < NTYPES; type++) {
        counts_t *counts = &tally->types[type];
        if (!counts->requests && !counts->replies && !counts->errors)
            continue;
        printf ("%-10s %8" PRIu64 " %8" PRIu64 " %7" PRIu64 " %11s %11s %9s %9s\n",
                ps_codec_type_name (type), counts->requests, counts->replies, counts->errors,
                s_fmt_bytes ((double)counts->bytes_in, a, sizeof a),
                s_fmt_bytes ((double)counts->bytes_out, b, sizeof b),
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
    if (rc == 0 && s_tap_open (&tap, options, session.filter))
        rc = 1;
    if (rc == 0) {
        s_pump (&session, &tap, s_now_ms () + options->interval_ms);
        s_tap_close (&tap);
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
    char *text = NULL;
    ps_json_t *info = s_info ("stats", options->broker, options->timeout_ms, &text);
    if (!info)
        return 1;
    if (options->json)
        printf ("%s\n", text);
    else
        s_stats_print (info);
    free (text);
    ps_json_destroy (&info);
    return fflush (stdout) ? 1 : 0;
}

// ------------------------------------------------------------------ top

//  What INFO adds to top: each rank's clock and parked requests
typedef struct {
    bool known;        //  INFO answered
    int64_t min_clock; //  slowest live clock
    int64_t slowest;   //  its rank
    int64_t live;      //  workers live
    int64_t world;     //  ranks
} top_info_t;

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

//  Unanswered requests of each rank in the pairing table
static void
s_pending_by_worker (pairing_t *pairing, uint64_t *pending)
{
    for (pending_t *item = zhashx_first (pairing->table); item; item = zhashx_next (pairing->table))
        if (item->worker >= 0 && item->worker < PS_MAX_WORKERS)
            pending[item->worker]++;
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
                s_fmt_bytes (entries[i].row->bytes / seconds, rate, sizeof rate));
    }
    if (n > MAX_LISTED)
        printf ("(%zu more keys)\n", n - MAX_LISTED);
    if (tally->keys_dropped)
        printf ("(%" PRIu64 " mentions of keys past the first %d not counted)\n",
                tally->keys_dropped, PS_MAX_KEYS);
    free (entries);
}

//  One screen of top: rates over seconds, clocks from INFO when given
static void
s_top_print (session_t *session, const ps_json_t *info, double seconds, const char *title)
{
    tally_t *tally = &session->tally;
    //  One record (or none) spans no time: show counts rather than infinities
    if (seconds <= 0)
        seconds = 1;
    int64_t min_clock = info ? s_info_int (info, "min_clock", -1) : tally->min_clock;
    int64_t slowest = info ? s_info_int (info, "slowest", -1) : tally->slowest;
    printf ("%s  %.1f s  %" PRIu64 " records", title, seconds, tally->records);
    if (min_clock >= 0)
        printf ("  slowest clock %" PRId64, min_clock);
    if (slowest >= 0)
        printf (" (w%" PRId64 ")", slowest);
    if (info)
        printf ("  %" PRId64 " live of %" PRId64, s_info_int (info, "live", 0),
                s_info_int (info, "world", 0));
    printf ("\n\n%-7s %8s %11s %9s %9s %7s %7s %8s\n", "worker", "req/s", "bytes/s", "p50", "p99",
            "clock", "behind", "pending");
    //  Clocks and parked requests: INFO's, else what the records said
    int64_t *clocks = calloc (PS_MAX_WORKERS, sizeof *clocks);
    int64_t *parked = calloc (PS_MAX_WORKERS, sizeof *parked);
    uint64_t *pending = calloc (PS_MAX_WORKERS, sizeof *pending);
    int64_t world = info ? s_info_world (info) : 0;
    if (!clocks || !parked || !pending) {
        printf ("(out of memory)\n");
        world = -1;
    }
    else if (info)
        s_info_workers (info, world, clocks, parked);
    else {
        s_pending_by_worker (&session->pairing, pending);
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
                s_fmt_bytes ((row->counts.bytes_in + row->counts.bytes_out) / seconds, rate,
                             sizeof rate),
                s_fmt_percentile (&row->counts, 0.5, p50, sizeof p50),
                s_fmt_percentile (&row->counts, 0.99, p99, sizeof p99), clock_text, behind,
                parked_text);
    }
    free (clocks);
    free (parked);
    free (pending);
    s_top_keys (tally, seconds);
}

static int
s_top (const options_t *options)
{
    session_t session;
    int rc = s_session_init (&session, options, VIEW_TOP);
    tap_t tap;
    if (rc == 0 && s_tap_open (&tap, options, session.filter))
        rc = 1;
    if (rc) {
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
        ps_json_t *info = NULL;
        if (options->broker &&
            !(info = s_info ("top", options->broker, options->timeout_ms, NULL)) && s_interrupted)
            break;
        char title[320];
        time_t now = time (NULL);
        struct tm local;
        localtime_r (&now, &local);
        snprintf (title, sizeof title, "pstap top  %.200s  %02d:%02d:%02d",
                  options->broker ? options->broker : options->tap, local.tm_hour, local.tm_min,
                  local.tm_sec);
        if (screen)
            printf ("\033[H\033[2J");
        else if (iteration > 0)
            printf ("\n");
        s_top_print (&session, info, seconds, title);
        if (options->broker && !info)
            printf ("(no INFO from the broker: clocks and parked requests unknown)\n");
        ps_json_destroy (&info);
        fflush (stdout);
        s_tally_reset (&session.tally);
        if (options->iterations && iteration + 1 >= options->iterations)
            break;
    }
    s_tap_close (&tap);
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
            s_fmt_us (waiting_us, waited, sizeof waited));
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

static int
s_clock (const options_t *options)
{
    if (!options->broker) {
        fprintf (stderr, "pstap clock: needs --broker EP (the vector clock comes from INFO)\n");
        return 2;
    }
    bool screen = !options->batch && isatty (STDOUT_FILENO);
    int64_t *clocks = calloc (PS_MAX_WORKERS, sizeof *clocks);
    int64_t *previous = calloc (PS_MAX_WORKERS, sizeof *previous);
    int64_t *parked = calloc (PS_MAX_WORKERS, sizeof *parked);
    if (!clocks || !previous || !parked) {
        free (clocks);
        free (previous);
        free (parked);
        fprintf (stderr, "pstap clock: out of memory\n");
        return 1;
    }
    int rc = 0;
    int64_t polled = 0;
    bool have_previous = false;
    for (uint64_t iteration = 0; !s_interrupted; iteration++) {
        ps_json_t *info = s_info ("clock", options->broker, options->timeout_ms, NULL);
        int64_t now = s_now_ms ();
        if (!info && (iteration == 0 || s_interrupted)) {
            rc = s_interrupted ? 0 : 1;
            break;
        }
        if (screen)
            printf ("\033[H\033[2J");
        else if (iteration > 0)
            printf ("\n");
        char title[320];
        snprintf (title, sizeof title, "pstap clock  %.200s", options->broker);
        if (info) {
            int64_t world = s_info_world (info);
            s_info_workers (info, world, clocks, parked);
            s_clock_print (info, clocks, parked, have_previous ? previous : NULL,
                           (now - polled) / 1e3, world, title);
            memcpy (previous, clocks, (size_t)world * sizeof *clocks);
            have_previous = true;
            polled = now;
        }
        else
            printf ("%s  (no INFO from the broker this time)\n", title);
        ps_json_destroy (&info);
        fflush (stdout);
        if (options->iterations && iteration + 1 >= options->iterations)
            break;
        s_sleep_until (now + options->interval_ms);
    }
    free (clocks);
    free (previous);
    free (parked);
    return rc;
}

// ----------------------------------------------------------------- read

static int
s_read (const options_t *options)
{
    if (options->json && options->view != VIEW_WATCH) {
        fprintf (stderr, "pstap read: --json applies to --view watch only\n");
        return 2;
    }
    session_t session;
    int rc = s_session_init (&session, options, options->view);
    if (rc) {
        s_session_destroy (&session);
        return rc;
    }
    char why[300];
    ps_taplog_reader_t *reader = ps_taplog_reader_new (options->read_path, why, sizeof why);
    if (!reader) {
        fprintf (stderr, "pstap read: %s\n", why);
        s_session_destroy (&session);
        return 1;
    }
    ps_taplog_entry_t entry;
    ps_taplog_status_t status;
    while (!session.done && !s_interrupted &&
           (status = ps_taplog_reader_next (reader, &entry, why, sizeof why)) == PS_TAPLOG_RECORD)
        s_feed (&session, &entry);
    if (!session.done && !s_interrupted && status != PS_TAPLOG_END) {
        fprintf (stderr, "pstap read: %s\n", why);
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
     "(--broker EP | --tap EP) [-f FILTER] [-c N] [--json] [--payload]",
     "one line (or JSON object) per record, live",
     "Print the broker's tap records as they happen: one line each, like tcpdump, or one\n"
     "JSON object each with --json (JSON Lines; schema in docs/tap-records.md). Replies\n"
     "are paired with their requests: the text view shows each reply's request age, or\n"
     "[unmatched] when the request came before pstap started. Stops on Ctrl-C.\n"},
    {"stats", s_stats, O_CONNECT | O_JSON | O_FILTER | O_INTERVAL,
     "(--broker EP [--json] | --tap EP [--interval-ms MS] [-f FILTER])",
     "one snapshot of the broker's counters",
     "Print the broker's counters from its INFO reply: uptime, workers live and ever\n"
     "seen, messages and bytes by type, queues, clocks, the tap. --json prints the INFO\n"
     "object itself. With --tap alone, the same figures computed from the records of\n"
     "one interval.\n"},
    {"top", s_top, O_CONNECT | O_FILTER | O_BATCH | O_ITERATIONS | O_INTERVAL,
     "(--broker EP | --tap EP) [--batch] [-n N] [--interval-ms MS]",
     "per worker and per key rates, refreshed",
     "Every interval, per worker: requests/s, bytes/s, reply latency p50 and p99, clock,\n"
     "how far ahead of the slowest, requests parked (from INFO with --broker, else\n"
     "unanswered ones seen on the tap); per key: pushes/s, pulls/s, bytes/s, hottest\n"
     "first. Full-screen on a terminal; plain blocks with --batch or into a pipe.\n"},
    {"clock", s_clock, O_BROKER | O_TIMEOUT | O_BATCH | O_ITERATIONS | O_INTERVAL,
     "--broker EP [-n N] [--interval-ms MS] [--batch]", "the vector clock, refreshed",
     "Every interval, each worker's clock as a bar measured from the slowest, who the\n"
     "slowest is, the requests parked on the staleness bound and how long they have\n"
     "waited, and each worker's clocks per second since the last refresh.\n"},
    {"record", s_record, O_CONNECT | O_FILTER | O_COUNT | O_PAYLOAD | O_WRITE,
     "(--broker EP | --tap EP) -w FILE [-f FILTER] [-c N] [--payload]", "write records to a file",
     "Write the tap's records to FILE until -c N records or Ctrl-C.\n"
     "The format is in docs/pstap.md; a killed recorder leaves a\n"
     "readable file.\n"},
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
    fprintf (out, "\n'pstap COMMAND --help' describes each. Example:\n"
                  "  pstap watch --broker tcp://server:5555 -f 'type=push lat>10ms'\n");
}

static void
s_command_usage (FILE *out, const command_t *command)
{
    fprintf (out, "usage: pstap %s %s\n\n%s\n", command->name, command->synopsis, command->details);
    s_option_help (out, command->allowed);
}

enum { OPT_TIMEOUT = 256, OPT_JSON, OPT_PAYLOAD, OPT_BATCH, OPT_INTERVAL, OPT_VIEW };

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
                {OPT_VIEW, O_VIEW, "--view"}};
    const char *name = command->name;
    *options = (options_t){.command = name,
                           .timeout_ms = DEFAULT_TIMEOUT_MS,
                           .interval_ms = DEFAULT_INTERVAL_MS,
                           .view = VIEW_WATCH};
    opterr = 0;
    optind = 1;
    int opt;
    long long number;
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
        case 'b': options->broker = optarg; break;
        case 't': options->tap = optarg; break;
        case 'f': options->filter = optarg; break;
        case 'w': options->write_path = optarg; break;
        case 'r': options->read_path = optarg; break;
        case OPT_JSON: options->json = true; break;
        case OPT_PAYLOAD: options->payload = true; break;
        case OPT_BATCH: options->batch = true; break;
        case OPT_TIMEOUT:
            rc = s_parse_number (name, "--timeout-ms", optarg, 1, PS_MAX_TIMEOUT_MS, &number);
            options->timeout_ms = (int)number;
            break;
        case OPT_INTERVAL:
            rc = s_parse_number (name, "--interval-ms", optarg, 10, PS_MAX_TIMEOUT_MS, &number);
            options->interval_ms = (int)number;
            break;
        case 'c':
            rc = s_parse_number (name, "--count", optarg, 1, LLONG_MAX, &number);
            options->count = (uint64_t)number;
            break;
        case 'n':
            rc = s_parse_number (name, "--iterations", optarg, 1, LLONG_MAX, &number);
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
