/*  =========================================================================
    bench_figure - taking and printing figures (see bench_figure.h)

    bench_now reads the monotonic clock to the nanosecond (ps_clock)
    rather than zclock_usecs: the
    latency case times single push+pull pairs of tens of microseconds,
    which a clock of whole microseconds would round by a few per cent.
    ========================================================================= */

#include "bench_figure.h"
#include "ps_clock.h"

#include <stdio.h>
#include <stdlib.h>

double
bench_now (void)
{
    return ps_clock_seconds ();
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double
bench_quantile (double *values, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort (values, n, sizeof *values, s_compare_double);
    size_t index = (size_t)(q * (double)(n - 1) + 0.5);
    return values[index < n ? index : n - 1];
}

void
bench_medians (double *values, size_t rows, size_t columns, size_t n, double *medians)
{
    for (size_t i = 0; i < rows; i++)
        medians[i] = bench_quantile (values + i * columns, n, 0.5);
}

//  A number with as many decimals as it deserves, never an exponent
static const char *
s_number (double value, char *text, size_t size)
{
    if (value >= 1000)
        snprintf (text, size, "%.1f", value);
    else if (value >= 1)
        snprintf (text, size, "%.3f", value);
    else
        snprintf (text, size, "%.5f", value);
    return text;
}

void
bench_figure (const char *name, double value, const char *unit)
{
    char number[64];
    printf ("%s: %s %s\n", name, s_number (value, number, sizeof number), unit);
}

void
bench_ratio (const char *name, const char *suffix, double ours, const char *what, double theirs,
             const char *unit)
{
    char number[64];
    if (theirs <= 0)
        return;
    printf ("%s.%s: %.3f (vs %s %s %s)\n", name, suffix, ours / theirs, what,
            s_number (theirs, number, sizeof number), unit);
}

bool
bench_ratio_turns (const char *name, const char *suffix, const double *ours, const double *theirs,
                   size_t n, const char *what, const char *unit)
{
    double ratios[BENCH_MAX_TURNS], middle[BENCH_MAX_TURNS];
    char list[BENCH_MAX_TURNS * 8 + 1] = "", number[64];
    if (n == 0 || n > BENCH_MAX_TURNS)
        return false;
    for (size_t i = 0, used = 0; i < n; i++) {
        if (theirs[i] <= 0)
            return false;
        ratios[i] = ours[i] / theirs[i];
        middle[i] = theirs[i];
        if (used < sizeof list)
            used += (size_t)snprintf (list + used, sizeof list - used, " %.3f", ratios[i]);
    }
    printf ("%s.%s: %.3f (median of %zu turns, each vs %s run just before it; %s %s in the "
            "middle; each:%s)\n",
            name, suffix, bench_quantile (ratios, n, 0.5), n, what,
            s_number (bench_quantile (middle, n, 0.5), number, sizeof number), unit, list);
    return true;
}
