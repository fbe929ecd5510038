/*  =========================================================================
    ps_validation - psworker's held-out split (--validation-fraction): the
    slice of it this process evaluates, when, and the evaluation

    By default rank 0 evaluates the whole split and the others none; with
    --eval-ranks all each process takes its ranks' shard of it (the same
    shards ps_data_shard gives the training set). An evaluation happens at
    an epoch's end and every --eval-every steps, when the slice is not
    empty.

    A plain value, the caller's; the set it points into is borrowed and
    must outlive it. psworker's main thread only.
    ========================================================================= */

#ifndef PS_VALIDATION_H_INCLUDED
#define PS_VALIDATION_H_INCLUDED

#include "ps_data.h"
#include "ps_metrics_file.h"
#include "ps_model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const ps_dataset_t *set; //  the held-out set, NULL: none
    size_t begin;            //  this process evaluates [begin, end)
    size_t end;
} ps_validation_t;

//  The slice of set (may be NULL) that the process of ranks rank ..
//  rank + threads - 1 of workers evaluates: all of it on rank 0 unless
//  all, else its ranks' shard
ps_validation_t ps_validation_slice (const ps_dataset_t *set, bool all, uint32_t rank,
                                     uint32_t threads, uint32_t workers);
//  Whether to evaluate after clocks steps: an epoch (steps_per_epoch) ends,
//  or every eval_every steps (0: epoch ends only); never with an empty
//  slice
bool ps_validation_due (const ps_validation_t *self, int64_t clocks, size_t steps_per_epoch,
                        int64_t eval_every);
//  model's loss and accuracy on the slice, into result's validation fields
void ps_validation_evaluate (const ps_validation_t *self, ps_model_t *model,
                             ps_metrics_record_t *result);

#endif
