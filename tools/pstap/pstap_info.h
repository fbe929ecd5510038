/*  =========================================================================
    pstap_info - the broker's INFO reply: asked for, parsed with jansson,
    and read with fallbacks

    INFO is one JSON object of counters (workers, clocks, queues, the tap,
    messages by type). Brokers of different ages send different fields,
    so every reader here takes a fallback for a field that is missing or
    of another type, and lookups follow a dotted path from any node
    ("messages_in.push", "workers.1.clock"; "" is the node itself), so a
    view reads what it shows in one call:

        int64_t clock = pstap_info_int (info, "workers.2.clock", -1);

    Ownership: pstap_info_query returns a json_t the caller releases with
    json_decref (and the text as sent, when asked for, which the caller
    frees). The readers borrow: a string they return lives as long as
    the document. Threads: a document is only read, so any thread may
    read it; pstap reads INFO from its one thread. Failure:
    pstap_info_query returns NULL after saying why on stderr, except when
    a signal (zsys_interrupted) cut the query short.
    ========================================================================= */

#ifndef PSTAP_INFO_H_INCLUDED
#define PSTAP_INFO_H_INCLUDED

#include "ps_problem.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Ask the broker at endpoint for INFO within timeout_ms and parse it.
//  The document, or NULL (said on stderr as "pstap COMMAND: ..."). With
//  text, *text is the reply as the broker sent it.
json_t *pstap_info_query (const char *command, const char *broker, int timeout_ms, char **text);
//  Parse INFO text of size bytes: the document, or NULL with problem
//  (code 0) saying what is wrong and where, as jansson found it
json_t *pstap_info_parse (const char *text, size_t size, ps_problem_t *problem);

//  The node at path under node: object members by name, array elements
//  by decimal position. NULL when a step is missing (or node is NULL).
const json_t *pstap_info_find (const json_t *node, const char *path);
//  An integer (a number with a fraction is cut toward zero when it fits),
//  or fallback when the node is missing or not a number
int64_t pstap_info_int (const json_t *node, const char *path, int64_t fallback);
//  Any number, or fallback
double pstap_info_number (const json_t *node, const char *path, double fallback);
//  A string, or fallback
const char *pstap_info_string (const json_t *node, const char *path, const char *fallback);
//  An integer as text into buffer, or "-" when the broker does not send it
const char *pstap_info_count (const json_t *node, const char *path, char *buffer, size_t size);

//  INFO's "world", kept within what pstap shows (0 to PS_MAX_WORKERS)
int64_t pstap_info_world (const json_t *info);
//  Each rank's clock (-1 when not live) and requests parked now (-1 when
//  this broker does not say), for ranks below world: from "workers" when
//  INFO has it, else from "clocks" and the "parked" list
void pstap_info_workers (const json_t *info, int64_t world, int64_t *clocks, int64_t *parked);
//  "BSP", "SSP" or "ASP" for a staleness bound
const char *pstap_info_mode (int64_t staleness);

//  CURVE keys for every broker and tap pstap reaches (--curve-secret and
//  --broker-key, or with from_environment PSMQ_CURVE_SECRET and
//  PSMQ_BROKER_KEY; both NULL: none): read once at start, before any
//  query. 0, or -1 after saying on stderr which file is wrong, named as
//  the option or the variable it came from
int pstap_info_set_keys (const char *command, const char *curve_secret, const char *broker_key,
                         bool from_environment);
//  Make socket (before it connects) a CURVE client with those keys; no-op
//  without keys
void pstap_info_apply_keys (void *socket);

#endif
