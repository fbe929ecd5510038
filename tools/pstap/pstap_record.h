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
#include "pstap_session.h"

#include <stdbool.h>

int pstap_record (const pstap_options_t *options);
int pstap_read (const pstap_options_t *options);

//  For the subcommands that also read recordings (read, trace): feed
//  every record of options->read_path to session, until it is done or a
//  signal comes: 0, 1 when the recording is damaged (said on stderr,
//  after its good records; a torn tail is only said, and 0), or -1 when
//  it cannot be opened as one (said on stderr)
int pstap_read_feed (pstap_session_t *session, const pstap_options_t *options);
//  Whether options->read_path is a directory (said on stderr)
bool pstap_read_is_directory (const pstap_options_t *options);

#endif
