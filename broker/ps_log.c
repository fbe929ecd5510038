/*  =========================================================================
    ps_log - one line per event on stderr

    The line is formatted into a local buffer first and written with one
    fputs, so concurrent threads never interleave within a line.
    ========================================================================= */

#include "ps_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static ps_log_level_t s_level = PS_LOG_INFO;
static const char *s_name = "psmq";

void
ps_log_set_level (ps_log_level_t level)
{
    s_level = level;
}

ps_log_level_t
ps_log_level (void)
{
    return s_level;
}

void
ps_log_set_name (const char *name)
{
    s_name = name;
}

void
ps_log (ps_log_level_t level, const char *format, ...)
{
    if (level > s_level)
        return;
    static const char *tags[] = {"E", "W", "I", "D"};
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm local;
    localtime_r (&now.tv_sec, &local);

    char line[1024];
    int used = snprintf (line, sizeof line, "%s %02d:%02d:%02d.%03ld %s: ", tags[level],
                         local.tm_hour, local.tm_min, local.tm_sec, now.tv_nsec / 1000000, s_name);
    va_list args;
    va_start (args, format);
    if (used > 0 && (size_t)used < sizeof line)
        vsnprintf (line + used, sizeof line - used, format, args);
    va_end (args);
    fprintf (stderr, "%s\n", line);
}
