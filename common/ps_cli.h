/*  =========================================================================
    ps_cli - command-line values, checked the same way in every program

    Each parse accepts the whole text or nothing: on failure it prints
    "<program>: <option> '<text>' must be ..." on stderr, naming the bad
    value and the range, and returns -1; on success it stores the value
    and returns 0. No state; any thread.
    ========================================================================= */

#ifndef PS_CLI_H_INCLUDED
#define PS_CLI_H_INCLUDED

//  A whole number in [min, max]
int ps_cli_long (const char *program, const char *option, const char *text, long min, long max,
                 long *value);
//  A number in [min, max] (never NaN)
int ps_cli_double (const char *program, const char *option, const char *text, double min,
                   double max, double *value);

#endif
