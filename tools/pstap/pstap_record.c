/*  =========================================================================
    pstap_record - pstap record and pstap read

    Both are the pipeline (pstap_session) with another end: record lends
    the session a ps_taplog writer, created only once the taps are reached
    so that a broker that cannot be read leaves the file as it was; read
    feeds the session from a ps_taplog reader instead of the taps, so that
    a recording shows exactly what watch would have shown.
    ========================================================================= */

#include "pstap_record.h"
#include "pstap_session.h"
#include "pstap_stats.h"
#include "pstap_top.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

//  Write the taps' records to options->write_path until the session is
//  done or a signal comes: 0, or 1 (said on stderr)
static int
s_record (pstap_session_t *session, pstap_taps_t *taps, const pstap_options_t *options, void *arg)
{
    //  zclock's wall clock counts milliseconds; the header keeps microseconds
    uint64_t start_us = (uint64_t)zclock_time () * 1000;
    ps_problem_t problem;
    ps_taplog_writer_t *writer = ps_taplog_writer_new (options->write_path, start_us, &problem);
    if (!writer) {
        fprintf (stderr, "pstap record: %s\n", problem.message);
        return 1;
    }
    pstap_session_set_writer (session, writer);
    pstap_session_pump (session, taps, 0);
    fprintf (stderr,
             "pstap record: %" PRIu64 " records (%" PRIu64 " payload messages), %" PRIu64
             " bytes written to %s\n",
             pstap_session_shown (session), pstap_session_payloads (session),
             ps_taplog_writer_bytes (writer), options->write_path);
    pstap_session_set_writer (session, NULL);
    if (ps_taplog_writer_destroy (&writer)) {
        fprintf (stderr, "pstap record: closing %s failed: %s\n", options->write_path,
                 strerror (errno));
        return 1;
    }
    return 0;
}

int
pstap_record (const pstap_options_t *options)
{
    return pstap_session_run (options, PSTAP_VIEW_RECORD, s_record, NULL);
}

int
pstap_read_feed (pstap_session_t *session, const pstap_options_t *options)
{
    ps_problem_t problem;
    ps_taplog_reader_t *reader = ps_taplog_reader_new (options->read_path, &problem);
    if (!reader) {
        fprintf (stderr, "pstap %s: %s\n", options->command, problem.message);
        return -1;
    }
    int rc = 0;
    ps_taplog_entry_t entry;
    ps_taplog_status_t status = PS_TAPLOG_END;
    while (!pstap_session_done (session) && !zsys_interrupted &&
           (status = ps_taplog_reader_next (reader, &entry, &problem)) == PS_TAPLOG_RECORD)
        pstap_session_feed (session, &entry, NULL);
    if (!pstap_session_done (session) && !zsys_interrupted && status != PS_TAPLOG_END) {
        fprintf (stderr, "pstap %s: %s: %s\n", options->command, options->read_path,
                 problem.message);
        //  A torn tail is what a killed recorder leaves: not an error
        rc = status == PS_TAPLOG_TORN ? 0 : 1;
    }
    ps_taplog_reader_destroy (&reader);
    return rc;
}

//  fopen opens a directory for reading and only the first read fails,
//  which the recording reader takes for an empty file ("0 bytes")
bool
pstap_read_is_directory (const pstap_options_t *options)
{
    struct stat file;
    if (strcmp (options->read_path, "-") != 0 && stat (options->read_path, &file) == 0 &&
        S_ISDIR (file.st_mode)) {
        fprintf (stderr, "pstap %s: %s is a directory\n", options->command, options->read_path);
        return true;
    }
    return false;
}

int
pstap_read (const pstap_options_t *options)
{
    if (options->json && options->view != PSTAP_VIEW_WATCH) {
        fprintf (stderr, "pstap read: --json applies to --view watch only\n");
        return 2;
    }
    if (pstap_read_is_directory (options))
        return 1;
    int rc;
    pstap_session_t *session = pstap_session_new (options, options->view, &rc);
    if (!session)
        return rc;
    rc = pstap_read_feed (session, options);
    pstap_tally_t *tally = pstap_session_tally (session);
    if (rc == -1)
        rc = 1; //  nothing read, nothing to show
    else if (options->view == PSTAP_VIEW_STATS)
        pstap_stats_records (tally, options->read_path);
    else if (options->view == PSTAP_VIEW_TOP) {
        char title[320];
        snprintf (title, sizeof title, "pstap top  %.200s", options->read_path);
        pstap_top_print_records (session, (tally->last_us - tally->first_us) / 1e6, title);
    }
    int end = pstap_session_destroy (&session);
    return rc ? rc : end;
}
