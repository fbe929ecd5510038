/*  =========================================================================
    case_training - training through a broker against training alone

    training_broker (examples/s of one psworker through a psbroker, BSP,
    the MLP on the synthetic set; the psworker next to the psbroker of
    --broker-bin; its overlap layer by layer), training_broker_no_overlap
    (the same with --no-overlap: the step before the overlap),
    training_ssp1 (through a broker of staleness 1: the overlap pulls
    ahead) and training_alone (the same psworker --no-broker: the
    broker's rule applied in-process, no network), rounds taking turns,
    medians; <each through the broker>.vs_alone, its ratio to alone
    (issue 15 asks at least 0.8 with one worker): what psmq costs a
    training loop.
    ========================================================================= */

#ifndef CASE_TRAINING_H_INCLUDED
#define CASE_TRAINING_H_INCLUDED

#include "bench_case.h"

//  The training figures; 0, or 1 when a run failed
bench_case_fn case_training;

#endif
