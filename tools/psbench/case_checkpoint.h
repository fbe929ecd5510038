/*  =========================================================================
    case_checkpoint - what the broker's checkpoints cost the workers

    checkpoint_<mode>_small (messages/s of 1-float push+pull, 1 worker)
    and checkpoint_<mode>_16M (ms per 16 MB push+pull; --quick 1M), with
    the broker's checkpoints off, and on: taken back to back (every 0.01 s,
    or --checkpoint-seconds; a trigger during a write waits for its end),
    so that the figures are the serving rate while a checkpoint is being
    written. The store holds a ballast key of 64 MB (--quick 4 MB) besides
    the measured ones, which every checkpoint writes. .vs_off holds on
    against off; checkpoint_on.written counts the checkpoints written
    during the small run (the median of the rounds).
    ========================================================================= */

#ifndef CASE_CHECKPOINT_H_INCLUDED
#define CASE_CHECKPOINT_H_INCLUDED

#include "bench_case.h"

//  The checkpoint figures; 0, or 1 when a run failed
bench_case_fn case_checkpoint;

#endif
