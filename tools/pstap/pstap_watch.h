/*  =========================================================================
    pstap_watch - pstap watch: one line (or JSON object) per record, live

    Runs until -c N records, Ctrl-C or SIGTERM. Called once from main's
    thread with the parsed options; returns pstap's exit status: 0, 1 when
    no broker or tap could be read, 2 for a bad filter.
    ========================================================================= */

#ifndef PSTAP_WATCH_H_INCLUDED
#define PSTAP_WATCH_H_INCLUDED

#include "pstap_options.h"

int pstap_watch (const pstap_options_t *options);

#endif
