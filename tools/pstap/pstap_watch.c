/*  =========================================================================
    pstap_watch - pstap watch

    The whole of watch is the pipeline (pstap_session) fed by the taps
    (pstap_taps): the session prints each record that passes the filter.
    ========================================================================= */

#include "pstap_watch.h"
#include "pstap_session.h"
#include "pstap_taps.h"

int
pstap_watch (const pstap_options_t *options)
{
    int rc;
    pstap_session_t *session = pstap_session_new (options, PSTAP_VIEW_WATCH, &rc);
    if (!session)
        return rc;
    pstap_taps_t *taps = pstap_taps_new (options, pstap_session_filter (session));
    rc = taps ? 0 : 1;
    if (taps)
        pstap_session_pump (session, taps, 0);
    pstap_taps_destroy (&taps);
    int end = pstap_session_destroy (&session);
    return rc ? rc : end;
}
