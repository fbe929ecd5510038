/*  =========================================================================
    ps_log - one line per event on stderr (see ps_log.h)

    The line is formatted into a local buffer first and written with one
    fputs, so concurrent threads never interleave within a line. The JSON
    form is made by jansson, which escapes whatever the message holds (a
    key name from the network included).
    ========================================================================= */

#include "ps_log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static ps_log_level_t s_level = PS_LOG_INFO;
static ps_log_format_t s_format = PS_LOG_TEXT;
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
ps_log_set_format (ps_log_format_t format)
{
    s_format = format;
}

void
ps_log_set_name (const char *name)
{
    s_name = name;
}

size_t
ps_log_time (char *text, size_t size)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm local;
    localtime_r (&now.tv_sec, &local);
    char date[32], zone[8];
    if (!strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &local) ||
        !strftime (zone, sizeof zone, "%z", &local))
        return 0;
    //  ISO 8601's extended form wants the offset as +hh:mm, strftime
    //  gives +hhmm
    int used =
        snprintf (text, size, "%s.%03ld%.3s:%.2s", date, now.tv_nsec / 1000000, zone, zone + 3);
    return used > 0 && (size_t)used < size ? (size_t)used : 0;
}

void
ps_log (ps_log_level_t level, const char *format, ...)
{
    if (level > s_level)
        return;
    static const char *tags[] = {"E", "W", "I", "D"};
    static const char *names[] = {"error", "warning", "info", "debug"};
    char stamp[48];
    if (!ps_log_time (stamp, sizeof stamp))
        stamp[0] = 0;
    char message[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    if (s_format == PS_LOG_JSON) {
        json_t *line = json_pack ("{s:s, s:s, s:s, s:s}", "time", stamp, "level", names[level],
                                  "program", s_name, "message", message);
        //  A message cut inside a UTF-8 sequence is not valid UTF-8: said
        //  as text then, rather than lost
        char *text = line ? json_dumps (line, JSON_COMPACT) : NULL;
        json_decref (line);
        if (text) {
            fprintf (stderr, "%s\n", text);
            free (text);
            return;
        }
    }
    fprintf (stderr, "%s %s %s: %s\n", stamp, tags[level], s_name, message);
}
