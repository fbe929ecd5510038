/*  =========================================================================
    pstap_watch - pstap watch

    The whole of watch is the pipeline (pstap_session) fed by the taps
    (pstap_taps): the session prints each record that passes the filter.
    ========================================================================= */

#include "pstap_watch.h"
#include "pstap_session.h"
#include "pstap_taps.h"

static int
s_watch (pstap_session_t *session, pstap_taps_t *taps, const pstap_options_t *options, void *arg)
{
    pstap_session_pump (session, taps, 0);
    return 0;
}

int
pstap_watch (const pstap_options_t *options)
{
    return pstap_session_run (options, PSTAP_VIEW_WATCH, s_watch, NULL);
}
