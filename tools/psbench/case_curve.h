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

//  Keys for a run: the broker's pair, and the workers' pair in the
//  broker's allow-list, in a private temporary folder
typedef struct {
    char dir[64];            //  the folder (mkdtemp)
    char allow[96];          //  its allow-list folder
    char broker_secret[128]; //  broker.key_secret
    char broker_public[128]; //  broker.key
    char worker_secret[128]; //  allow/worker.key_secret (zcertstore skips it)
    char worker_public[128]; //  allow/worker.key
} bench_curve_keys_t;

//  Make them (zcert, as pskeys does): 0, or -1 (said why)
int bench_curve_keys_make (bench_curve_keys_t *keys);
//  Remove the files and the folder
void bench_curve_keys_remove (bench_curve_keys_t *keys);
//  Brokers and workers of options use them (keys NULL: no keys)
void bench_curve_keys_use (bench_options_t *options, const bench_curve_keys_t *keys);

#endif
