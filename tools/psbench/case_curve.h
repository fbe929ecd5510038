/*  =========================================================================
    case_curve - what CURVE encryption and authentication cost

    curve_<mode>_small (messages/s of 1-float push+pull, 1 worker: the
    round trip) and curve_<mode>_16M (ms per 16 MB push+pull; --quick 1M),
    without keys (off: the protected mode's plain connection) and with
    CURVE (on: a broker key pair and a worker key in its allow-list, made
    for the run in a private temporary folder). .vs_off holds on against
    off; curve_off_small.spread is the noise of the off rounds.
    ========================================================================= */

#ifndef CASE_CURVE_H_INCLUDED
#define CASE_CURVE_H_INCLUDED

#include "bench_case.h"

//  The curve figures; 0, or 1 when a run failed
bench_case_fn case_curve;

#endif
