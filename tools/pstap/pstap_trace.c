/*  =========================================================================
    pstap_trace - pstap trace

    The pipeline (pstap_session) with a ps_taptrace at its end, fed by the
    taps (made only once they are reached, like record's file, so that a
    broker that cannot be read leaves no empty trace) or by a recording
    (pstap_read_feed, as read does). The trace is closed whatever ends the
    session, so the file is valid JSON after Ctrl-C as well.
    ========================================================================= */

#include "pstap_trace.h"
#include "pstap_record.h"
#include "pstap_session.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

//  Close the trace and say what it holds: 0, or 1 (said on stderr)
static int
s_close (pstap_session_t *session, ps_taptrace_t **trace, const pstap_options_t *options)
{
    uint64_t events = ps_taptrace_events (*trace);
    pstap_session_set_trace (session, NULL);
    ps_problem_t problem;
    if (ps_taptrace_destroy (trace, &problem)) {
        fprintf (stderr, "pstap trace: %s\n", problem.message);
        return 1;
    }
    fprintf (stderr, "pstap trace: %" PRIu64 " records, %" PRIu64 " events written to %s\n",
             pstap_session_shown (session), events, options->write_path);
    return 0;
}

//  A trace of the taps' records until the session is done, --duration-ms
//  passes, or a signal comes
static int
s_trace_live (pstap_session_t *session, pstap_taps_t *taps, const pstap_options_t *options,
              void *arg)
{
    ps_problem_t problem;
    ps_taptrace_t *trace = ps_taptrace_new (options->write_path, &problem);
    if (!trace) {
        fprintf (stderr, "pstap trace: %s\n", problem.message);
        return 1;
    }
    pstap_session_set_trace (session, trace);
    pstap_session_pump (session, taps,
                        options->duration_ms ? zclock_mono () + options->duration_ms : 0);
    return s_close (session, &trace, options);
}

//  A trace of a recording's records
static int
s_trace_recording (const pstap_options_t *options)
{
    if (pstap_read_is_directory (options))
        return 1;
    //  A recording that is not one leaves the trace's file as it was
    //  (stdin can be opened once only: its header is checked when read)
    ps_problem_t problem;
    if (strcmp (options->read_path, "-") != 0) {
        ps_taplog_reader_t *reader = ps_taplog_reader_new (options->read_path, &problem);
        if (!reader) {
            fprintf (stderr, "pstap trace: %s\n", problem.message);
            return 1;
        }
        ps_taplog_reader_destroy (&reader);
    }
    int rc;
    pstap_session_t *session = pstap_session_new (options, PSTAP_VIEW_TRACE, &rc);
    if (!session)
        return rc;
    ps_taptrace_t *trace = ps_taptrace_new (options->write_path, &problem);
    if (!trace) {
        fprintf (stderr, "pstap trace: %s\n", problem.message);
        pstap_session_destroy (&session);
        return 1;
    }
    pstap_session_set_trace (session, trace);
    rc = pstap_read_feed (session, options);
    //  Whatever happened to the recording, the trace is closed valid
    int closed = s_close (session, &trace, options);
    int end = pstap_session_destroy (&session);
    if (rc == -1)
        return 1;
    return rc ? rc : closed ? closed : end;
}

int
pstap_trace (const pstap_options_t *options)
{
    if (options->read_path)
        return s_trace_recording (options);
    return pstap_session_run (options, PSTAP_VIEW_TRACE, s_trace_live, NULL);
}
