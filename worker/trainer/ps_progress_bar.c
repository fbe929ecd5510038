/*  =========================================================================
    ps_progress_bar - psworker's progress on a terminal (see ps_progress_bar.h)

    A carriage return and "erase to the end of line" (ESC [ K, which every
    terminal psworker meets understands) redraw the line; nothing is
    printed when the stream is no terminal. Redraws are rationed by a
    monotonic clock: a step takes well under a millisecond on the
    synthetic set, and a terminal is slower than that.
    ========================================================================= */

#include "ps_progress_bar.h"
#include "ps_clock.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

//  Cells of the bar, and the least time between redraws
#define BAR_WIDTH 24
#define REDRAW_SECONDS 0.1

struct ps_progress_bar_t {
    FILE *out;     //  the terminal's stream, borrowed
    uint32_t rank; //  whose progress
    double drawn;  //  when the bar was last drawn (monotonic seconds)
    bool shown;    //  the line holds a bar
};

ps_progress_bar_t *
ps_progress_bar_new (FILE *out, uint32_t rank)
{
    assert (out);
    if (!isatty (fileno (out)))
        return NULL;
    ps_progress_bar_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->out = out;
    self->rank = rank;
    self->drawn = -1;
    return self;
}

void
ps_progress_bar_destroy (ps_progress_bar_t **self_p)
{
    assert (self_p);
    if (!*self_p)
        return;
    ps_progress_bar_clear (*self_p);
    free (*self_p);
    *self_p = NULL;
}

void
ps_progress_bar_clear (ps_progress_bar_t *self)
{
    if (!self || !self->shown)
        return;
    fputs ("\r\033[K", self->out);
    fflush (self->out);
    self->shown = false;
}

void
ps_progress_bar_update (ps_progress_bar_t *self, int epoch, int64_t step, int64_t total,
                        double examples, double seconds)
{
    if (!self || total <= 0)
        return;
    double now = ps_clock_seconds ();
    if (step < total && self->drawn >= 0 && now - self->drawn < REDRAW_SECONDS)
        return;
    self->drawn = now;
    char bar[BAR_WIDTH + 1];
    int filled = (int)(BAR_WIDTH * step / total);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    double rate = seconds > 0 ? examples / seconds : 0;
    long left = step > 0 ? (long)(seconds * (total - step) / step + 0.5) : 0;
    fprintf (self->out,
             "\r\033[Krank %u epoch %d [%s] %" PRId64 "/%" PRId64 "  %.0f examples/s  "
             "ETA %ld:%02ld",
             self->rank, epoch, bar, step, total, rate, left / 60, left % 60);
    fflush (self->out);
    self->shown = true;
}
