/*  =========================================================================
    ps_validation - the held-out split's slice, schedule and evaluation
    (see ps_validation.h)
    ========================================================================= */

#include "ps_validation.h"

ps_validation_t
ps_validation_slice (const ps_dataset_t *set, bool all, uint32_t rank, uint32_t threads,
                     uint32_t workers)
{
    ps_validation_t self = {.set = set};
    if (!set)
        return self;
    if (!all) {
        if (rank == 0)
            self.end = set->n;
        return self;
    }
    size_t end;
    ps_data_shard (set, rank, workers, &self.begin, &end);
    ps_data_shard (set, rank + threads - 1, workers, &end, &self.end);
    return self;
}

bool
ps_validation_due (const ps_validation_t *self, int64_t clocks, size_t steps_per_epoch,
                   int64_t eval_every)
{
    if (self->end <= self->begin)
        return false;
    return clocks % (int64_t)steps_per_epoch == 0 || (eval_every > 0 && clocks % eval_every == 0);
}

void
ps_validation_evaluate (const ps_validation_t *self, ps_model_t *model, ps_metrics_record_t *result)
{
    const ps_dataset_t *set = self->set;
    size_t n = self->end - self->begin;
    const float *x = set->x + self->begin * set->dim;
    const uint8_t *y = set->y + self->begin;
    result->validated = true;
    result->validation_loss = ps_model_loss (model, x, y, n);
    result->validation_accuracy = (double)ps_model_correct (model, x, y, n) / n;
    result->validation_examples = n;
}
