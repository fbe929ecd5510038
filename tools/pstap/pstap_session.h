/*  =========================================================================
    pstap_session - one run of tap records through pstap's pipeline:
    decode, drop check, pairing, filter, then the view

    A subcommand makes a session for its view (pstap_session_run makes one
    and connects the taps for the live ones), feeds it messages (from the
    taps with pstap_session_pump, or one by one from a recording with
    pstap_session_feed), and reads what the view kept: the tally for stats
    and top, the counts for record. watch's lines go to stdout as records
    come; -c N ends the session after N records shown (or recorded).

    Ownership: the session owns its filter, decoder, pairing table and
    tally, and lends them through the accessors; a recording's writer is
    lent to it by the caller (pstap_session_set_writer) and stays the
    caller's, and so is a trace's (pstap_session_set_trace). One thread.
    Failure: pstap_session_new returns NULL (said on stderr) with *status
    2 for a bad filter, 1 when out of memory; pstap_session_destroy says
    on stderr what was skipped (malformed records, requests forgotten)
    and returns 1 when stdout could not be written (not for a closed
    pipe: pstap watch | head is fine).
    ========================================================================= */

#ifndef PSTAP_SESSION_H_INCLUDED
#define PSTAP_SESSION_H_INCLUDED

#include "ps_tapfilter.h"
#include "ps_taplog.h"
#include "ps_taptrace.h"
#include "ps_tappair.h"
#include "pstap_group.h"
#include "pstap_options.h"
#include "pstap_tally.h"
#include "pstap_taps.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct pstap_session_t pstap_session_t;

//  A session whose records go to view; options are borrowed for its life
pstap_session_t *pstap_session_new (const pstap_options_t *options, pstap_view_t view, int *status);
//  Say what was skipped, free, null the pointer: 0, or 1 when the output
//  could not be written
int pstap_session_destroy (pstap_session_t **self_p);
//  One message from a tap (source: the member whose tap it came on) or a
//  recording (source NULL)
void pstap_session_feed (pstap_session_t *self, const ps_taplog_entry_t *entry,
                         pstap_member_t *source);
//  Feed the taps' messages to the session until it is done, a signal
//  comes (zsys_interrupted), or (with until_ms > 0) zclock_mono passes it
void pstap_session_pump (pstap_session_t *self, pstap_taps_t *taps, int64_t until_ms);
//  What a live subcommand does with its session and the taps it reads:
//  pstap's exit status (0 done, 1 failed, said on stderr)
typedef int (pstap_session_fn) (pstap_session_t *session, pstap_taps_t *taps,
                                const pstap_options_t *options, void *arg);
//  The frame of every live subcommand: a session for view, the taps of
//  the brokers options name, then body (session, taps, options, arg). pstap's exit
//  status: body's; else 2 for a bad filter, 1 when no tap could be read,
//  or 1 when stdout could not be written.
int pstap_session_run (const pstap_options_t *options, pstap_view_t view, pstap_session_fn *body,
                       void *arg);

//  Whether -c was reached or the output is gone
bool pstap_session_done (const pstap_session_t *self);
//  Records shown (or recorded), and payload messages shown (or recorded)
uint64_t pstap_session_shown (const pstap_session_t *self);
uint64_t pstap_session_payloads (const pstap_session_t *self);
//  Lent: the filter (for the taps' subscriptions), the tally (stats and
//  top), the pairing table (top's pending requests without INFO)
const ps_tapfilter_t *pstap_session_filter (const pstap_session_t *self);
pstap_tally_t *pstap_session_tally (pstap_session_t *self);
ps_tappair_t *pstap_session_pairing (pstap_session_t *self);
//  The recording PSTAP_VIEW_RECORD appends to, lent by the caller
void pstap_session_set_writer (pstap_session_t *self, ps_taplog_writer_t *writer);
//  The trace PSTAP_VIEW_TRACE draws in, lent by the caller
void pstap_session_set_trace (pstap_session_t *self, ps_taptrace_t *trace);

#endif
