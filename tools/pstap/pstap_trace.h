/*  =========================================================================
    pstap_trace - pstap trace: a live session or a recording as a Chrome
    trace (Trace Event Format JSON, for ui.perfetto.dev or chrome://tracing)

    Reads the taps of the brokers the options name (until -c N records,
    --duration-ms, Ctrl-C or SIGTERM) or the recording -r FILE, through
    the same pipeline as watch (filter, pairing), and draws each record in
    a ps_taptrace written to -w FILE. Called once from main's thread with
    the parsed options; returns pstap's exit status: 0, 1 (no broker or
    tap, a file that cannot be written or read, a damaged recording), 2
    for a bad command line. Interrupted, it still closes the JSON.
    ========================================================================= */

#ifndef PSTAP_TRACE_H_INCLUDED
#define PSTAP_TRACE_H_INCLUDED

#include "pstap_options.h"

int pstap_trace (const pstap_options_t *options);

#endif
