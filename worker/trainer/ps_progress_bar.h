/*  =========================================================================
    ps_progress_bar - psworker's progress within an epoch on a terminal: a
    line redrawn in place (carriage return) with the step, the rate and
    the time left

    Only for a terminal: ps_progress_bar_new gives NULL when the stream is
    not one (a file, a pipe), so what parsers read stays as it was, and
    every other call takes NULL and does nothing. The bar is the caller's;
    the stream is borrowed. Main thread only.
    ========================================================================= */

#ifndef PS_PROGRESS_BAR_H_INCLUDED
#define PS_PROGRESS_BAR_H_INCLUDED

#include <stdint.h>
#include <stdio.h>

typedef struct ps_progress_bar_t ps_progress_bar_t;

//  A bar on out for the worker of rank; NULL when out is not a terminal
//  (or out of memory)
ps_progress_bar_t *ps_progress_bar_new (FILE *out, uint32_t rank);

//  Erase the bar; idempotent, nulls *self_p
void ps_progress_bar_destroy (ps_progress_bar_t **self_p);

//  Step step of total of epoch done, examples of them in seconds: the
//  bar redrawn, at most ten times a second (and at the last step)
void ps_progress_bar_update (ps_progress_bar_t *self, int epoch, int64_t step, int64_t total,
                             double examples, double seconds);

//  Erase the bar's line, so that a line printed next starts clean
void ps_progress_bar_clear (ps_progress_bar_t *self);

#endif
