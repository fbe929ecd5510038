/*  =========================================================================
    case_training - training through a broker against training alone

    training_broker (examples/s of one psworker through a psbroker, BSP,
    the MLP on the synthetic set; the psworker next to the psbroker of
    --broker-bin) and training_alone (the same psworker --no-broker: the
    broker's rule applied in-process, no network), rounds taking turns,
    medians; training_broker.vs_alone, their ratio (issue 15 asks at least
    0.8 with one worker): what psmq costs a training loop.
    ========================================================================= */

#ifndef CASE_TRAINING_H_INCLUDED
#define CASE_TRAINING_H_INCLUDED

#include "bench_case.h"

//  The training figures; 0, or 1 when a run failed
bench_case_fn case_training;

#endif
