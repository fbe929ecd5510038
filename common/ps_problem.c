/*  =========================================================================
    ps_problem - fill in what went wrong (see ps_problem.h)
    ========================================================================= */

#include "ps_problem.h"

#include <stdarg.h>
#include <stdio.h>

int
ps_problem_set (ps_problem_t *problem, int code, const char *format, ...)
{
    if (!problem)
        return -1;
    problem->code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (problem->message, sizeof problem->message, format, args);
    va_end (args);
    return -1;
}
