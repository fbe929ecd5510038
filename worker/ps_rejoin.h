/*  =========================================================================
    ps_rejoin - registering a worker again with a group that forgot it

    What ps_worker.h calls Rejoining: after a broker's connection was lost,
    or a broker answered "not registered" (it restarted, or evicted us) or
    "shutting down" (likely to restart), say HELLO again to every broker
    of the group and wait, up to options.wait_for_broker_ms, until all of
    them have welcomed the worker and agree on the clock to go on from;
    then heartbeats go on with the new sessions, and every ticket not
    collected completes with PS_EREJOINED. Meanwhile the log callback of
    the options hears whom the worker waits for.

    Threads: the thread that owns the worker (the session's).

    Ownership: works on the session it is given; keeps nothing.

    Failure: PS_EREJOINED when the worker registered again, the session's
    clock then the one the brokers gave; PS_EINTR when a signal cut the
    wait short (nothing settled: the caller may call again); else every
    ticket not yet complete completes with the status returned: cause once
    wait_for_broker_ms has passed (the detail says how long it waited), or
    why a broker or the group refused the worker (PS_EGROUP: the members
    hold no checkpoint of one clock to go back to together, naming what
    each holds, or a member refused to roll back). The detail is in
    ps_session_error either way.
    ========================================================================= */

#ifndef PS_REJOIN_H_INCLUDED
#define PS_REJOIN_H_INCLUDED

#include "ps_session.h"

//  Register the session's worker again with its group after cause
//  (PS_ECONNECT, PS_ENOT_REGISTERED or PS_ESHUTDOWN), as above
int ps_rejoin (ps_session_t *session, int cause);

#endif
