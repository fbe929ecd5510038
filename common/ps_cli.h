/*  =========================================================================
    ps_cli - command-line values, checked the same way in every program

    Each check accepts the whole text or nothing: on failure it prints
    "<program>: <option> '<text>' ..." on stderr, naming the option, the
    bad value and what was wanted ("is not a number", "must be a number
    from 0 to 1"), and returns -1; on success it stores the value (if any)
    and returns 0. ps_cli_parse_long is the one quiet check, for callers
    that word their own message. No state; any thread.
    ========================================================================= */

#ifndef PS_CLI_H_INCLUDED
#define PS_CLI_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  What every program's --version prints on stdout: "<program> (psmq)
//  <version>", the CMake project's version, then the copyright and licence
//  (help2man makes the man pages' COPYRIGHT section of them)
void ps_cli_version (const char *program);
//  A whole number in [min, max]
int ps_cli_long (const char *program, const char *option, const char *text, long min, long max,
                 long *value);
//  The same check without a message, for values inside a larger text (a
//  filter term): 0, -1 when text is not a whole number, -2 when it is one
//  outside [min, max]
int ps_cli_parse_long (const char *text, long min, long max, long *value);
//  A number in [min, max] (never NaN)
int ps_cli_double (const char *program, const char *option, const char *text, double min,
                   double max, double *value);
//  A number between min and max, either end left out when it is open:
//  (0, 1e30] for a rate, [0, 1) for a decay (never NaN)
int ps_cli_range (const char *program, const char *option, const char *text, double min,
                  bool min_open, double max, bool max_open, double *value);
//  The value of an option that takes a word (a path, a name, an endpoint).
//  getopt takes the next word as the value even when the value was left
//  out and that word is the next option ("--broker -n 1"), so a value that
//  starts with '-' is refused; "-" alone (stdin or stdout) is a value.
int ps_cli_word (const char *program, const char *option, const char *text);
//  A size in bytes in [min, max]: a whole number, then K, M or G for
//  1024, 1024^2 or 1024^3 in either case ("4096", "4K", "64M")
int ps_cli_size (const char *program, const char *option, const char *text, size_t min, size_t max,
                 size_t *value);
//  The name ps_cli_size reads back as bytes, with the largest suffix that
//  divides them ("4K", "64M", "1000"); writes it into text and returns it
const char *ps_cli_size_name (size_t bytes, char *text, size_t size);
//  A broker or tap endpoint list: 1 to PS_MAX_SHARDS endpoints, comma-
//  separated (a group in shard order), none empty or longer than
//  PS_MAX_ENDPOINT_LEN, and a word as ps_cli_word wants it
int ps_cli_endpoints (const char *program, const char *option, const char *text);

#endif
