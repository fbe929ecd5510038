/*  =========================================================================
    ps_log - one line per event on stderr, with time and level

    A line is "2026-12-02T04:48:01.123+00:00 I psbroker: message" (ISO 8601
    local time with its offset, the level E, W, I or D, the program), or,
    in the JSON form, one object a line:
    {"time":"2026-12-02T04:48:01.123+00:00","level":"info",
     "program":"psbroker","message":"..."}.

    Any thread may call these; each line is written with one fprintf so
    lines from different threads do not interleave. The level and the
    form are process wide and set once at start-up, before threads start.
    ========================================================================= */

#ifndef PS_LOG_H_INCLUDED
#define PS_LOG_H_INCLUDED

#include <stddef.h>

typedef enum { PS_LOG_ERROR = 0, PS_LOG_WARN, PS_LOG_INFO, PS_LOG_DEBUG } ps_log_level_t;
typedef enum { PS_LOG_TEXT = 0, PS_LOG_JSON } ps_log_format_t;

//  Set the most detailed level that is printed (default PS_LOG_INFO)
void ps_log_set_level (ps_log_level_t level);
ps_log_level_t ps_log_level (void);
//  Lines as text (default) or JSON objects
void ps_log_set_format (ps_log_format_t format);
//  The time now as the lines show it, into text; its length, 0 when it
//  does not fit
size_t ps_log_time (char *text, size_t size);
//  Name shown on every line, e.g. "psbroker"; the string is borrowed
void ps_log_set_name (const char *name);

void ps_log (ps_log_level_t level, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

#define ps_error(...) ps_log (PS_LOG_ERROR, __VA_ARGS__)
#define ps_warn(...) ps_log (PS_LOG_WARN, __VA_ARGS__)
#define ps_info(...) ps_log (PS_LOG_INFO, __VA_ARGS__)
#define ps_debug(...)                                                                              \
    do {                                                                                           \
        if (ps_log_level () >= PS_LOG_DEBUG)                                                       \
            ps_log (PS_LOG_DEBUG, __VA_ARGS__);                                                    \
    } while (0)

#endif
