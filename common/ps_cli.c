/*  =========================================================================
    ps_cli - command-line values

    strtol and strtod with every check they leave to the caller: nothing
    parsed, text left over, out of range (errno), and our own bounds.
    ========================================================================= */

#include "ps_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int
ps_cli_long (const char *program, const char *option, const char *text, long min, long max,
             long *value)
{
    char *end;
    errno = 0;
    long parsed = strtol (text, &end, 10);
    if (errno || end == text || *end || parsed < min || parsed > max) {
        fprintf (stderr, "%s: %s '%s' must be a whole number from %ld to %ld\n", program, option,
                 text, min, max);
        return -1;
    }
    *value = parsed;
    return 0;
}

int
ps_cli_double (const char *program, const char *option, const char *text, double min, double max,
               double *value)
{
    char *end;
    errno = 0;
    double parsed = strtod (text, &end);
    if (errno || end == text || *end || !(parsed >= min && parsed <= max)) {
        fprintf (stderr, "%s: %s '%s' must be a number from %g to %g\n", program, option, text, min,
                 max);
        return -1;
    }
    *value = parsed;
    return 0;
}
