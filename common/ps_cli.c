/*  =========================================================================
    ps_cli - command-line values

    strtol and strtod with every check they leave to the caller: nothing
    parsed, text left over, out of range (errno), and our own bounds. Text
    that is not a number at all and a number out of range get different
    messages: "-1" is a number, "nan" and "fast" are not.
    ========================================================================= */

#include "ps_cli.h"
#include "ps_limits.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
ps_cli_parse_long (const char *text, long min, long max, long *value)
{
    char *end;
    errno = 0;
    long parsed = strtol (text, &end, 10);
    if (end == text || *end)
        return -1;
    if (errno || parsed < min || parsed > max)
        return -2;
    *value = parsed;
    return 0;
}

int
ps_cli_long (const char *program, const char *option, const char *text, long min, long max,
             long *value)
{
    int rc = ps_cli_parse_long (text, min, max, value);
    if (rc == -1)
        fprintf (stderr, "%s: %s '%s' is not a whole number\n", program, option, text);
    else if (rc == -2)
        fprintf (stderr, "%s: %s '%s' must be a whole number from %ld to %ld\n", program, option,
                 text, min, max);
    return rc ? -1 : 0;
}

int
ps_cli_range (const char *program, const char *option, const char *text, double min, bool min_open,
              double max, bool max_open, double *value)
{
    char *end;
    //  errno is not consulted: an overflow is infinite and fails the
    //  bounds, an underflow is a tiny number the bounds judge like any other
    double parsed = strtod (text, &end);
    if (end == text || *end || isnan (parsed)) {
        fprintf (stderr, "%s: %s '%s' is not a number\n", program, option, text);
        return -1;
    }
    bool above = min_open ? parsed > min : parsed >= min;
    bool below = max_open ? parsed < max : parsed <= max;
    if (!above || !below) {
        if (!min_open && !max_open)
            fprintf (stderr, "%s: %s '%s' must be a number from %g to %g\n", program, option, text,
                     min, max);
        else
            fprintf (stderr, "%s: %s '%s' must be a number in %c%g, %g%c\n", program, option, text,
                     min_open ? '(' : '[', min, max, max_open ? ')' : ']');
        return -1;
    }
    *value = parsed;
    return 0;
}

int
ps_cli_double (const char *program, const char *option, const char *text, double min, double max,
               double *value)
{
    return ps_cli_range (program, option, text, min, false, max, false, value);
}

int
ps_cli_word (const char *program, const char *option, const char *text)
{
    if (text[0] == '-' && text[1]) {
        fprintf (stderr, "%s: %s '%s' looks like an option: is the value of %s missing?\n", program,
                 option, text, option);
        return -1;
    }
    return 0;
}

int
ps_cli_endpoints (const char *program, const char *option, const char *text)
{
    if (ps_cli_word (program, option, text))
        return -1;
    size_t length = strlen (text);
    if (!length || text[0] == ',' || strstr (text, ",,") || text[length - 1] == ',') {
        fprintf (stderr, "%s: %s '%s' has an empty endpoint (EP or EP,EP,...)\n", program, option,
                 text);
        return -1;
    }
    size_t count = 0;
    for (const char *item = text; item; item = strchr (item, ',') ? strchr (item, ',') + 1 : NULL) {
        size_t item_length = strcspn (item, ",");
        if (item_length > PS_MAX_ENDPOINT_LEN) {
            fprintf (stderr, "%s: %s endpoint '%.40s...' is %zu bytes long, at most %d\n", program,
                     option, item, item_length, PS_MAX_ENDPOINT_LEN);
            return -1;
        }
        count++;
    }
    if (count > PS_MAX_SHARDS) {
        fprintf (stderr, "%s: %s names %zu endpoints, at most %d\n", program, option, count,
                 PS_MAX_SHARDS);
        return -1;
    }
    return 0;
}
