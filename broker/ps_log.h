/*  =========================================================================
    ps_log - one line per event on stderr, with time and level

    Any thread may call these; each line is written with one fprintf so
    lines from different threads do not interleave. The level is process
    wide and set once at start-up, before threads start.
    ========================================================================= */

#ifndef PS_LOG_H_INCLUDED
#define PS_LOG_H_INCLUDED

typedef enum { PS_LOG_ERROR = 0, PS_LOG_WARN, PS_LOG_INFO, PS_LOG_DEBUG } ps_log_level_t;

//  Set the most detailed level that is printed (default PS_LOG_INFO)
void ps_log_set_level (ps_log_level_t level);
ps_log_level_t ps_log_level (void);
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
