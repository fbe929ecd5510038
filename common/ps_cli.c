/*  =========================================================================
    ps_cli - command-line values

    strtol and strtod with every check they leave to the caller: nothing
    parsed, text left over, out of range (errno), and our own bounds. Text
    that is not a number at all and a number out of range get different
    messages: "-1" is a number, "nan" and "fast" are not.
    ========================================================================= */

#include "ps_cli.h"
#include "ps_limits.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The CMake project's version, given to every compile (CMakeLists.txt)
#ifndef PSMQ_VERSION
#error "PSMQ_VERSION is not defined: build psmq with its CMakeLists.txt"
#endif

void
ps_cli_version (const char *program)
{
    printf ("%s (psmq) %s\n"
            "Copyright (c) 2026 the psmq authors.\n"
            "Free software under the MIT License; there is NO WARRANTY.\n",
            program, PSMQ_VERSION);
}

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

//  The suffixes of sizes, largest first, and their shifts
static const struct {
    char suffix;
    int shift;
} s_units[] = {{'G', 30}, {'M', 20}, {'K', 10}};

int
ps_cli_size (const char *program, const char *option, const char *text, size_t min, size_t max,
             size_t *value)
{
    //  strtoull takes a sign and leading blanks: a size starts with a digit
    char *end = (char *)text;
    errno = 0;
    unsigned long long number = isdigit ((unsigned char)text[0]) ? strtoull (text, &end, 10) : 0;
    int shift = 0;
    for (size_t i = 0; end != text && i < sizeof s_units / sizeof s_units[0]; i++)
        if (toupper ((unsigned char)*end) == s_units[i].suffix) {
            shift = s_units[i].shift;
            end++;
            break;
        }
    if (end == text || *end) {
        fprintf (stderr, "%s: %s '%s' is not a size (a whole number, then K, M or G)\n", program,
                 option, text);
        return -1;
    }
    //  Compared before the shift, which cannot overflow then
    if (errno || number > (max >> shift) || (number << shift) < min) {
        char low[32], high[32];
        fprintf (stderr, "%s: %s '%s' must be a size from %s to %s\n", program, option, text,
                 ps_cli_size_name (min, low, sizeof low),
                 ps_cli_size_name (max, high, sizeof high));
        return -1;
    }
    *value = (size_t)(number << shift);
    return 0;
}

const char *
ps_cli_size_name (size_t bytes, char *text, size_t size)
{
    for (size_t i = 0; i < sizeof s_units / sizeof s_units[0]; i++) {
        size_t unit = (size_t)1 << s_units[i].shift;
        if (bytes >= unit && bytes % unit == 0) {
            snprintf (text, size, "%zu%c", bytes / unit, s_units[i].suffix);
            return text;
        }
    }
    snprintf (text, size, "%zu", bytes);
    return text;
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
