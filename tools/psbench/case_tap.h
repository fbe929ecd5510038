/*  =========================================================================
    case_tap - what the broker's tap costs

    tap_<mode>_small (messages/s of 1-float push+pull, 1 worker) and
    tap_<mode>_16M (ms per 16 MB push+pull; --quick 1M), with the
    broker's tap off, on with nobody subscribed (idle), and watched by
    one metadata reader (bench_tapreader). .vs_off holds a mode against
    off; tap_off_small.spread is the noise of the off rounds.
    ========================================================================= */

#ifndef CASE_TAP_H_INCLUDED
#define CASE_TAP_H_INCLUDED

#include "bench_case.h"

//  The tap figures; 0, or 1 when a run failed
bench_case_fn case_tap;

#endif
