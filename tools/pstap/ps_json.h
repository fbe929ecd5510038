/*  =========================================================================
    ps_json - a small, strict, read-only JSON reader

    Reads one JSON text (RFC 8259) into a compact array of nodes, for tools
    that read the broker's INFO reply. Strict: no comments, no trailing
    commas, no NaN, no leading zeros, no control characters in strings,
    valid UTF-8 only, nothing after the value but whitespace. Bounded: the
    text may be at most PS_JSON_MAX_BYTES and nest at most PS_JSON_MAX_DEPTH
    arrays and objects, so hostile input costs bounded memory and stack.

    Nodes are named by an int handle: ps_json_root is the whole value, -1
    means "none", and every getter accepts -1 (and answers "none" or the
    fallback), so lookups chain without checks in between:

        int clock = ps_json_find (doc, ps_json_root (doc), "workers.2.clock");
        int64_t value = ps_json_int (doc, clock, -1);

    Ownership: ps_json_parse returns a document the caller destroys; the
    strings it hands out live as long as the document. A document is
    read-only after parsing, so any thread may read it.

    Failure: ps_json_parse returns NULL with why naming the problem and its
    place ("at byte 17 (line 1, column 18): expected ':' after a key").
    ========================================================================= */

#ifndef PS_JSON_H_INCLUDED
#define PS_JSON_H_INCLUDED

#include "ps_limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Largest JSON text read: the INFO reply travels in one envelope
#define PS_JSON_MAX_BYTES PS_MAX_ENVELOPE_BYTES
//  Deepest nesting of arrays and objects
#define PS_JSON_MAX_DEPTH PS_MAX_JSON_DEPTH

typedef enum {
    PS_JSON_NULL = 0,
    PS_JSON_BOOL,
    PS_JSON_NUMBER,
    PS_JSON_STRING,
    PS_JSON_ARRAY,
    PS_JSON_OBJECT
} ps_json_type_t;

typedef struct ps_json_t ps_json_t;

//  Parse size bytes of text (need not end in NUL). The document, or NULL
//  with why filled in.
ps_json_t *ps_json_parse (const char *text, size_t size, char *why, size_t why_size);
//  Free the document and null the pointer; idempotent
void ps_json_destroy (ps_json_t **self_p);

//  The top-level value
int ps_json_root (const ps_json_t *self);
//  A node's type; PS_JSON_NULL for -1 too (test for -1 to tell them apart)
ps_json_type_t ps_json_type (const ps_json_t *self, int node);

//  Member of an object by name (the first one if repeated), or -1
int ps_json_member (const ps_json_t *self, int node, const char *key);
//  Element of an array by position, or -1
int ps_json_at (const ps_json_t *self, int node, size_t index);
//  Follow a dot-separated path from node: names select object members,
//  decimal numbers select array elements ("workers.0.clock"). -1 when any
//  step is missing. Keys that contain '.' need ps_json_member.
int ps_json_find (const ps_json_t *self, int node, const char *path);

//  Elements of an array or members of an object; 0 for anything else
size_t ps_json_length (const ps_json_t *self, int node);
//  Iterate an array or object: its first child, then each next sibling,
//  until -1. ps_json_key names a child of an object (NULL otherwise).
int ps_json_first (const ps_json_t *self, int node);
int ps_json_next (const ps_json_t *self, int node);
const char *ps_json_key (const ps_json_t *self, int node);

//  Values, or the fallback when the node is -1 or of another type.
//  ps_json_int takes integers written without fraction or exponent that
//  fit in int64_t (other numbers are truncated toward zero when they fit).
double ps_json_number (const ps_json_t *self, int node, double fallback);
int64_t ps_json_int (const ps_json_t *self, int node, int64_t fallback);
bool ps_json_bool (const ps_json_t *self, int node, bool fallback);
//  A string (escapes decoded, NUL-terminated UTF-8), or NULL
const char *ps_json_string (const ps_json_t *self, int node);

#endif
