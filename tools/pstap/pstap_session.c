/*  =========================================================================
    pstap_session - one run of tap records through pstap's pipeline

    Every record goes through one pipeline, whatever its source (the taps'
    SUB sockets or a recording): decode with ps_codec_decode_tap (bad ones
    are counted and skipped, never trusted), check that a tap carries the
    records of the broker whose INFO named it, watch each broker's
    `dropped` counter, pair replies with their requests (ps_tappair, fed
    every record so that replies shown alone are still paired), apply the
    filter, then hand the record to the view: a line or JSON object on
    stdout (watch), the tally (stats, top), the recording (record) or the
    Chrome trace (trace: replies with their requests' times). So
    `pstap read` shows exactly what `pstap watch` would have shown, and
    the golden-file test of `read` covers the live path's logic too.

    "payload." messages repeat a record with its tensor frames: they never
    count as records and only show as a continuation line (or go into the
    recording). Records say their shard, so the pipeline keys on it
    wherever a broker's numbers are its own: the pairing and the `dropped`
    counter.
    ========================================================================= */

#include "pstap_session.h"
#include "ps_taprender.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Requests remembered for pairing; past this the table is forgotten
//  (the broker parks at most 64 per worker, so this is never reached
//  by a healthy job)
#define MAX_PENDING (PS_MAX_WORKERS * PS_MAX_PARKED_PER_PEER)

//  A growable line for ps_taprender_text, which follows snprintf's contract
typedef struct {
    char *data;  //  the rendered line
    size_t size; //  room in data
} line_t;

static const char *
s_render (line_t *line, const ps_tap_record_t *record)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int needed = ps_taprender_text (record, line->data, line->size);
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

//  The record as one line of JSON Lines, the caller's; NULL out of memory
static char *
s_render_json (const ps_tap_record_t *record)
{
    json_t *object = ps_taprender_json (record);
    char *text = object ? json_dumps (object, JSON_COMPACT) : NULL;
    json_decref (object);
    return text;
}

//  What the pipeline follows of each broker's own counter
typedef struct {
    bool have_dropped; //  dropped below is known
    uint64_t dropped;  //  the broker's dropped count at its last record
} drops_t;

struct pstap_session_t {
    const pstap_options_t *options; //  borrowed for the session's life
    pstap_view_t view;              //  what happens to a record that passes
    ps_codec_t *codec;              //  the one decoder
    ps_tapfilter_t *filter;         //  -f
    ps_tappair_t *pairing;          //  requests waiting for replies
    bool requests_seen;             //  any request came: unmatched means something
    drops_t *drops;                 //  per shard, PSTAP_BROKER_SLOTS of them
    uint64_t malformed;             //  records that did not decode
    uint64_t shown;                 //  records shown (or recorded)
    uint64_t payloads;              //  payload messages shown (or recorded)
    uint64_t last_shown;            //  record number of the last one shown
    uint32_t last_shown_shard;      //  and the broker that numbered it
    bool done;                      //  -c reached or output gone
    line_t line;                    //  output buffer
    pstap_tally_t *tally;           //  PSTAP_VIEW_STATS, PSTAP_VIEW_TOP
    ps_taplog_writer_t *writer;     //  PSTAP_VIEW_RECORD, lent by the caller
    ps_taptrace_t *trace;           //  PSTAP_VIEW_TRACE, lent by the caller
};

pstap_session_t *
pstap_session_new (const pstap_options_t *options, pstap_view_t view, int *status)
{
    pstap_session_t *self = calloc (1, sizeof *self);
    if (!self) {
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
        *status = 1;
        return NULL;
    }
    self->options = options;
    self->view = view;
    ps_problem_t problem;
    self->filter = ps_tapfilter_new (options->filter, &problem);
    if (!self->filter) {
        fprintf (stderr, "pstap %s: bad filter: %s\n", options->command, problem.message);
        *status = 2;
        pstap_session_destroy (&self);
        return NULL;
    }
    self->codec = ps_codec_new ();
    self->pairing = ps_tappair_new (MAX_PENDING);
    self->drops = calloc (PSTAP_BROKER_SLOTS, sizeof *self->drops);
    self->tally = pstap_tally_new ();
    if (!self->codec || !self->pairing || !self->drops || !self->tally) {
        fprintf (stderr, "pstap %s: out of memory\n", options->command);
        *status = 1;
        pstap_session_destroy (&self);
        return NULL;
    }
    *status = 0;
    return self;
}

int
pstap_session_destroy (pstap_session_t **self_p)
{
    pstap_session_t *self = *self_p;
    if (!self)
        return 0;
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
    pstap_tally_destroy (&self->tally);
    free (self->line.data);
    free (self);
    *self_p = NULL;
    return rc;
}

//  Each broker counts its own drops: a group's are followed one by one
static void
s_check_dropped (pstap_session_t *self, const ps_tap_record_t *record)
{
    drops_t *drops = &self->drops[pstap_broker_slot (record)];
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
s_check_source (pstap_session_t *self, const ps_tap_record_t *record, pstap_member_t *source)
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
s_pairing_note (pstap_session_t *self, const ps_tap_record_t *record, bool paired,
                uint64_t request_us, char *note, size_t size)
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
s_print (pstap_session_t *self, const char *text, const char *note)
{
    if (fputs (text, stdout) < 0 || fputs (note, stdout) < 0 || fputc ('\n', stdout) < 0)
        self->done = true;
}

//  Write the message to the recording: true, or false with the session
//  done (said on stderr)
static bool
s_write (pstap_session_t *self, const ps_taplog_entry_t *entry)
{
    ps_problem_t problem;
    if (ps_taplog_writer_append (self->writer, entry->topic, entry->topic_size, entry->frames,
                                 entry->nframes, &problem)) {
        fprintf (stderr, "pstap record: %s\n", problem.message);
        self->done = true;
        return false;
    }
    return true;
}

//  A "payload." message: the tensor frames of a record already shown
static void
s_payload (pstap_session_t *self, const ps_tap_record_t *record, const ps_taplog_entry_t *entry)
{
    if (self->view == PSTAP_VIEW_RECORD) {
        s_write (self, entry);
        self->payloads++;
        return;
    }
    if (self->view != PSTAP_VIEW_WATCH || self->options->json ||
        record->record != self->last_shown || record->shard != self->last_shown_shard)
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
s_show (pstap_session_t *self, const ps_tap_record_t *record, const ps_taplog_entry_t *entry,
        bool paired, uint64_t request_us)
{
    if (self->view == PSTAP_VIEW_RECORD) {
        if (!s_write (self, entry))
            return;
    }
    else if (self->view == PSTAP_VIEW_TRACE) {
        ps_problem_t problem;
        if (ps_taptrace_add (self->trace, record, paired, request_us, &problem)) {
            fprintf (stderr, "pstap %s: %s\n", self->options->command, problem.message);
            self->done = true;
            return;
        }
    }
    else if (self->view == PSTAP_VIEW_WATCH) {
        char *json = NULL, note[64] = "";
        const char *text;
        if (self->options->json)
            text = json = s_render_json (record);
        else {
            text = s_render (&self->line, record);
            s_pairing_note (self, record, paired, request_us, note, sizeof note);
        }
        if (!text) {
            fprintf (stderr, "pstap %s: out of memory\n", self->options->command);
            self->done = true;
            return;
        }
        s_print (self, text, note);
        free (json);
    }
    else
        pstap_tally_add (self->tally, record);
    self->last_shown = record->record;
    self->last_shown_shard = record->shard;
    self->shown++;
    if (self->options->count && self->shown >= self->options->count)
        self->done = true;
}

void
pstap_session_feed (pstap_session_t *self, const ps_taplog_entry_t *entry, pstap_member_t *source)
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

void
pstap_session_pump (pstap_session_t *self, pstap_taps_t *taps, int64_t until_ms)
{
    while (!self->done && !zsys_interrupted) {
        int wait = PSTAP_POLL_MS;
        if (until_ms > 0) {
            int64_t left = until_ms - zclock_mono ();
            if (left <= 0)
                break;
            wait = left < PSTAP_POLL_MS ? (int)left : PSTAP_POLL_MS;
        }
        ps_taplog_entry_t entry;
        pstap_member_t *source;
        if (pstap_taps_receive (taps, wait, &entry, &source))
            pstap_session_feed (self, &entry, source);
    }
}

const ps_tapfilter_t *
pstap_session_filter (const pstap_session_t *self)
{
    return self->filter;
}

pstap_tally_t *
pstap_session_tally (pstap_session_t *self)
{
    return self->tally;
}

ps_tappair_t *
pstap_session_pairing (pstap_session_t *self)
{
    return self->pairing;
}

bool
pstap_session_done (const pstap_session_t *self)
{
    return self->done;
}

uint64_t
pstap_session_shown (const pstap_session_t *self)
{
    return self->shown;
}

uint64_t
pstap_session_payloads (const pstap_session_t *self)
{
    return self->payloads;
}

void
pstap_session_set_writer (pstap_session_t *self, ps_taplog_writer_t *writer)
{
    self->writer = writer;
}

void
pstap_session_set_trace (pstap_session_t *self, ps_taptrace_t *trace)
{
    self->trace = trace;
}

int
pstap_session_run (const pstap_options_t *options, pstap_view_t view, pstap_session_fn *body,
                   void *arg)
{
    int rc;
    pstap_session_t *self = pstap_session_new (options, view, &rc);
    if (!self)
        return rc;
    pstap_taps_t *taps = pstap_taps_new (options, self->filter);
    //  Interrupted while the taps were being reached: the user's stop,
    //  as clean as after any record
    rc = taps ? body (self, taps, options, arg) : zsys_interrupted ? 0 : 1;
    pstap_taps_destroy (&taps);
    int end = pstap_session_destroy (&self);
    return rc ? rc : end;
}
