/*  =========================================================================
    pstap_record - pstap record and pstap read: tap records to a file, and
    the views of watch, stats and top from one

    record writes what the taps carry (the filter's records, and their
    payload messages with --payload) into a ps_taplog recording until -c N
    records, Ctrl-C or SIGTERM; read feeds a recording through the same
    pipeline as watch, and shows it as watch would have, or the stats or
    top of all its records. Each is called once from main's thread with
    the parsed options and returns pstap's exit status: 0, 1 (no broker or
    tap, a file that cannot be written or read, a damaged recording; a
    torn last record, which a killed recorder leaves, is only reported),
    2 for a bad command line.
    ========================================================================= */

#ifndef PSTAP_RECORD_H_INCLUDED
#define PSTAP_RECORD_H_INCLUDED

#include "pstap_options.h"

int pstap_record (const pstap_options_t *options);
int pstap_read (const pstap_options_t *options);

#endif
