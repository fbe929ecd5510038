/*  =========================================================================
    pstap_stats - pstap stats: one snapshot of the broker's counters

    pstap_stats is called once from main's thread with the parsed options
    and returns pstap's exit status (0; 1 when no broker or tap answered;
    2 for a bad command line). pstap_stats_records prints what a tally of
    records says (`pstap read --view stats` uses it); the tally is the
    caller's, and only its latency samples are reordered.
    ========================================================================= */

#ifndef PSTAP_STATS_H_INCLUDED
#define PSTAP_STATS_H_INCLUDED

#include "pstap_options.h"
#include "pstap_tally.h"

int pstap_stats (const pstap_options_t *options);
//  The stats of the records in tally, on stdout, under "source  SOURCE"
void pstap_stats_records (pstap_tally_t *tally, const char *source);

#endif
