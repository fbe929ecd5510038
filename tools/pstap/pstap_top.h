/*  =========================================================================
    pstap_top - pstap top: per worker and per key rates, refreshed

    pstap_top is called once from main's thread with the parsed options
    and returns pstap's exit status (0; 1 when no broker or tap could be
    read; 2 for a bad filter). pstap_top_print_records prints one screen
    of top for the records a session has tallied, without INFO (`pstap
    read --view top` uses it); the session stays the caller's.
    ========================================================================= */

#ifndef PSTAP_TOP_H_INCLUDED
#define PSTAP_TOP_H_INCLUDED

#include "pstap_options.h"
#include "pstap_session.h"

int pstap_top (const pstap_options_t *options);
//  One screen of top under title, rates over seconds of records
void pstap_top_print_records (pstap_session_t *session, double seconds, const char *title);

#endif
