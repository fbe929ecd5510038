/*  =========================================================================
    ps_json - a small, strict, read-only JSON reader

    A recursive-descent parser that writes every value into one growing
    array of nodes, in document order. Children are linked by index (first
    child, next sibling) rather than stored contiguously, because a
    one-pass parser meets a value's descendants before its next sibling.
    Decoded strings and member names go into one pool allocated up front:
    a decoded string plus its NUL is never longer than its quoted source,
    so a pool of the text's size always suffices and strings never move.

    Recursion is bounded by PS_JSON_MAX_DEPTH and memory by the text's size
    (every node consumes at least one byte of text), so any input, however
    hostile, costs bounded stack and memory. We rejected a tokenizer that
    leaves strings undecoded in the text (as jsmn does): every caller would
    then handle escapes, and INFO readers compare keys often.

    Member lookup is a linear scan: INFO objects have a few dozen members.
    ========================================================================= */

#include "ps_json.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Longest number text we convert (digits beyond double's precision are
//  legal JSON, but nobody writes 500 of them)
#define MAX_NUMBER_CHARS 512

typedef struct {
    uint8_t type;    //  ps_json_type_t
    bool integral;   //  NUMBER written as an integer that fits int64_t
    bool truth;      //  BOOL's value
    int32_t key;     //  pool offset of the member name, -1 outside objects
    int32_t next;    //  next sibling, -1 for the last
    int32_t first;   //  ARRAY, OBJECT: first child, -1 if empty
    int32_t string;  //  STRING: pool offset
    uint32_t count;  //  ARRAY, OBJECT: children
    double number;   //  NUMBER
    int64_t integer; //  NUMBER, when integral
} node_t;

struct ps_json_t {
    node_t *nodes;   //  nodes [0] is the root
    size_t nnodes;   //  nodes in use
    size_t capacity; //  nodes allocated
    char *pool;      //  decoded strings, each NUL-terminated
    size_t pool_used;
};

typedef struct {
    ps_json_t *doc;   //  what we build
    const char *text; //  what we read
    size_t size;      //  its length
    size_t pos;       //  next byte to read
    char *why;        //  where the first error goes
    size_t why_size;
} parser_t;

//  Record the first error with its place in the text; returns -1
static int s_fail (parser_t *parser, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_fail (parser_t *parser, const char *format, ...)
{
    size_t line = 1, column = 1;
    for (size_t i = 0; i < parser->pos && i < parser->size; i++) {
        if (parser->text[i] == '\n') {
            line++;
            column = 1;
        }
        else
            column++;
    }
    char what[200];
    va_list args;
    va_start (args, format);
    vsnprintf (what, sizeof what, format, args);
    va_end (args);
    if (parser->why && parser->why_size)
        snprintf (parser->why, parser->why_size, "at byte %zu (line %zu, column %zu): %s",
                  parser->pos, line, column, what);
    return -1;
}

//  Describe the byte at the current position for an error message
static const char *
s_describe (parser_t *parser, char *buffer, size_t size)
{
    if (parser->pos >= parser->size)
        return "the end of the text";
    unsigned char c = (unsigned char)parser->text[parser->pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf (buffer, size, "'%c'", c);
    else
        snprintf (buffer, size, "byte 0x%02x", c);
    return buffer;
}

static void
s_skip_space (parser_t *parser)
{
    while (parser->pos < parser->size) {
        char c = parser->text[parser->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        parser->pos++;
    }
}

//  A new node of this type, linked nowhere yet; its index or -1
static int
s_new_node (parser_t *parser, ps_json_type_t type)
{
    ps_json_t *doc = parser->doc;
    if (doc->nnodes == doc->capacity) {
        size_t capacity = doc->capacity ? doc->capacity * 2 : 64;
        node_t *nodes = realloc (doc->nodes, capacity * sizeof *nodes);
        if (!nodes)
            return s_fail (parser, "out of memory for %zu nodes", capacity);
        doc->nodes = nodes;
        doc->capacity = capacity;
    }
    node_t *node = &doc->nodes[doc->nnodes];
    memset (node, 0, sizeof *node);
    node->type = (uint8_t)type;
    node->key = node->next = node->first = node->string = -1;
    return (int)doc->nnodes++;
}

static int
s_hex4 (parser_t *parser, uint32_t *value)
{
    *value = 0;
    for (int i = 0; i < 4; i++) {
        if (parser->pos >= parser->size)
            return s_fail (parser, "\\u escape cut short by the end of the text");
        char c = parser->text[parser->pos];
        uint32_t digit;
        if (c >= '0' && c <= '9')
            digit = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = (uint32_t)(c - 'A' + 10);
        else {
            char seen[16];
            return s_fail (parser, "\\u escape needs 4 hex digits, found %s",
                           s_describe (parser, seen, sizeof seen));
        }
        *value = *value * 16 + digit;
        parser->pos++;
    }
    return 0;
}

//  Append code point as UTF-8 to the pool
static void
s_put_utf8 (ps_json_t *doc, uint32_t code)
{
    char *out = doc->pool + doc->pool_used;
    if (code < 0x80) {
        out[0] = (char)code;
        doc->pool_used += 1;
    }
    else if (code < 0x800) {
        out[0] = (char)(0xc0 | code >> 6);
        out[1] = (char)(0x80 | (code & 0x3f));
        doc->pool_used += 2;
    }
    else if (code < 0x10000) {
        out[0] = (char)(0xe0 | code >> 12);
        out[1] = (char)(0x80 | (code >> 6 & 0x3f));
        out[2] = (char)(0x80 | (code & 0x3f));
        doc->pool_used += 3;
    }
    else {
        out[0] = (char)(0xf0 | code >> 18);
        out[1] = (char)(0x80 | (code >> 12 & 0x3f));
        out[2] = (char)(0x80 | (code >> 6 & 0x3f));
        out[3] = (char)(0x80 | (code & 0x3f));
        doc->pool_used += 4;
    }
}

//  One escape sequence after its backslash, decoded into the pool
static int
s_escape (parser_t *parser)
{
    ps_json_t *doc = parser->doc;
    if (parser->pos >= parser->size)
        return s_fail (parser, "string cut short by the end of the text");
    char c = parser->text[parser->pos++];
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *simple = c ? strchr (from, c) : NULL;
    if (simple) {
        doc->pool[doc->pool_used++] = to[simple - from];
        return 0;
    }
    if (c != 'u') {
        parser->pos--;
        char seen[16];
        return s_fail (parser, "unknown escape \\%s in a string",
                       s_describe (parser, seen, sizeof seen));
    }
    uint32_t code;
    if (s_hex4 (parser, &code))
        return -1;
    if (code >= 0xdc00 && code <= 0xdfff)
        return s_fail (parser, "lone low surrogate \\u%04x in a string", code);
    if (code >= 0xd800 && code <= 0xdbff) {
        uint32_t low;
        if (parser->size - parser->pos < 2 || parser->text[parser->pos] != '\\' ||
            parser->text[parser->pos + 1] != 'u')
            return s_fail (parser, "high surrogate \\u%04x not followed by a low one", code);
        parser->pos += 2;
        if (s_hex4 (parser, &low))
            return -1;
        if (low < 0xdc00 || low > 0xdfff)
            return s_fail (parser, "high surrogate \\u%04x followed by \\u%04x", code, low);
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
    }
    if (code == 0)
        return s_fail (parser, "\\u0000 in a string: strings here are NUL-terminated");
    s_put_utf8 (doc, code);
    return 0;
}

//  Length of the valid UTF-8 sequence at the current position, or 0
static size_t
s_utf8_length (parser_t *parser)
{
    const unsigned char *s = (const unsigned char *)parser->text + parser->pos;
    size_t left = parser->size - parser->pos;
    size_t length;
    uint32_t min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        length = 2, min = 0x80;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        length = 3, min = 0x800;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        length = 4, min = 0x10000;
    else
        return 0;
    if (left < length)
        return 0;
    uint32_t code = s[0] & (0x7f >> length);
    for (size_t i = 1; i < length; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        code = code << 6 | (s[i] & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
        return 0;
    return length;
}

//  A quoted string at the current position, decoded into the pool; its
//  pool offset, or -1
static int
s_string (parser_t *parser)
{
    ps_json_t *doc = parser->doc;
    assert (parser->text[parser->pos] == '"');
    parser->pos++;
    int32_t start = (int32_t)doc->pool_used;
    while (true) {
        if (parser->pos >= parser->size)
            return s_fail (parser, "string cut short by the end of the text");
        unsigned char c = (unsigned char)parser->text[parser->pos];
        if (c == '"') {
            parser->pos++;
            doc->pool[doc->pool_used++] = 0;
            return start;
        }
        if (c < 0x20)
            return s_fail (parser, "control character 0x%02x in a string (escape it)", c);
        if (c == '\\') {
            parser->pos++;
            if (s_escape (parser))
                return -1;
            continue;
        }
        size_t length = c < 0x80 ? 1 : s_utf8_length (parser);
        if (length == 0)
            return s_fail (parser, "invalid UTF-8 byte 0x%02x in a string", c);
        memcpy (doc->pool + doc->pool_used, parser->text + parser->pos, length);
        doc->pool_used += length;
        parser->pos += length;
    }
}

static size_t
s_digits (parser_t *parser)
{
    size_t start = parser->pos;
    while (parser->pos < parser->size && parser->text[parser->pos] >= '0' &&
           parser->text[parser->pos] <= '9')
        parser->pos++;
    return parser->pos - start;
}

//  A number at the current position, strictly by the JSON grammar
static int
s_number (parser_t *parser)
{
    size_t start = parser->pos;
    bool integral = true;
    if (parser->text[parser->pos] == '-')
        parser->pos++;
    size_t first = parser->pos;
    size_t digits = s_digits (parser);
    if (digits == 0)
        return s_fail (parser, "'-' must be followed by a digit");
    if (digits > 1 && parser->text[first] == '0') {
        parser->pos = first;
        return s_fail (parser, "number with a leading zero");
    }
    if (parser->pos < parser->size && parser->text[parser->pos] == '.') {
        parser->pos++;
        integral = false;
        if (s_digits (parser) == 0)
            return s_fail (parser, "'.' in a number must be followed by a digit");
    }
    if (parser->pos < parser->size &&
        (parser->text[parser->pos] == 'e' || parser->text[parser->pos] == 'E')) {
        parser->pos++;
        integral = false;
        if (parser->pos < parser->size &&
            (parser->text[parser->pos] == '+' || parser->text[parser->pos] == '-'))
            parser->pos++;
        if (s_digits (parser) == 0)
            return s_fail (parser, "exponent of a number needs digits");
    }
    size_t length = parser->pos - start;
    if (length > MAX_NUMBER_CHARS) {
        parser->pos = start;
        return s_fail (parser, "number of %zu characters, limit %d", length, MAX_NUMBER_CHARS);
    }
    //  strtod needs a NUL; the text need not have one
    char copy[MAX_NUMBER_CHARS + 1];
    memcpy (copy, parser->text + start, length);
    copy[length] = 0;
    errno = 0;
    double number = strtod (copy, NULL);
    if (errno == ERANGE && (number > 1 || number < -1)) {
        parser->pos = start;
        return s_fail (parser, "number %.40s is out of range", copy);
    }
    int node = s_new_node (parser, PS_JSON_NUMBER);
    if (node < 0)
        return -1;
    node_t *slot = &parser->doc->nodes[node];
    slot->number = number;
    if (integral) {
        errno = 0;
        long long integer = strtoll (copy, NULL, 10);
        slot->integral = errno == 0;
        slot->integer = integer;
    }
    return node;
}

static int
s_literal (parser_t *parser)
{
    static const struct {
        const char *word;
        ps_json_type_t type;
        bool truth;
    } literals[] = {{"true", PS_JSON_BOOL, true},
                    {"false", PS_JSON_BOOL, false},
                    {"null", PS_JSON_NULL, false}};
    for (size_t i = 0; i < sizeof literals / sizeof literals[0]; i++) {
        size_t length = strlen (literals[i].word);
        if (parser->size - parser->pos >= length &&
            memcmp (parser->text + parser->pos, literals[i].word, length) == 0) {
            parser->pos += length;
            int node = s_new_node (parser, literals[i].type);
            if (node >= 0)
                parser->doc->nodes[node].truth = literals[i].truth;
            return node;
        }
    }
    char seen[16];
    return s_fail (parser, "unexpected %s", s_describe (parser, seen, sizeof seen));
}

static int s_value (parser_t *parser, int depth);

//  Link child as the last child of parent; last is the previous last child
static void
s_link (ps_json_t *doc, int parent, int *last, int child)
{
    if (*last < 0)
        doc->nodes[parent].first = child;
    else
        doc->nodes[*last].next = child;
    *last = child;
    doc->nodes[parent].count++;
}

static int
s_array (parser_t *parser, int depth)
{
    int node = s_new_node (parser, PS_JSON_ARRAY);
    if (node < 0)
        return -1;
    parser->pos++;
    s_skip_space (parser);
    if (parser->pos < parser->size && parser->text[parser->pos] == ']') {
        parser->pos++;
        return node;
    }
    int last = -1;
    while (true) {
        int child = s_value (parser, depth + 1);
        if (child < 0)
            return -1;
        s_link (parser->doc, node, &last, child);
        s_skip_space (parser);
        char c = parser->pos < parser->size ? parser->text[parser->pos] : 0;
        parser->pos++;
        if (c == ']')
            return node;
        if (c != ',') {
            parser->pos--;
            char seen[16];
            return s_fail (parser, "expected ',' or ']' in an array, found %s",
                           s_describe (parser, seen, sizeof seen));
        }
    }
}

static int
s_object (parser_t *parser, int depth)
{
    int node = s_new_node (parser, PS_JSON_OBJECT);
    if (node < 0)
        return -1;
    parser->pos++;
    s_skip_space (parser);
    if (parser->pos < parser->size && parser->text[parser->pos] == '}') {
        parser->pos++;
        return node;
    }
    int last = -1;
    char seen[16];
    while (true) {
        s_skip_space (parser);
        if (parser->pos >= parser->size || parser->text[parser->pos] != '"')
            return s_fail (parser, "expected a member name in quotes, found %s",
                           s_describe (parser, seen, sizeof seen));
        int key = s_string (parser);
        if (key < 0)
            return -1;
        s_skip_space (parser);
        if (parser->pos >= parser->size || parser->text[parser->pos] != ':')
            return s_fail (parser, "expected ':' after member name \"%.40s\", found %s",
                           parser->doc->pool + key, s_describe (parser, seen, sizeof seen));
        parser->pos++;
        int child = s_value (parser, depth + 1);
        if (child < 0)
            return -1;
        parser->doc->nodes[child].key = key;
        s_link (parser->doc, node, &last, child);
        s_skip_space (parser);
        char c = parser->pos < parser->size ? parser->text[parser->pos] : 0;
        parser->pos++;
        if (c == '}')
            return node;
        if (c != ',') {
            parser->pos--;
            return s_fail (parser, "expected ',' or '}' in an object, found %s",
                           s_describe (parser, seen, sizeof seen));
        }
    }
}

//  Any value at the current position (after whitespace); its node or -1.
//  depth counts the arrays and objects around it.
static int
s_value (parser_t *parser, int depth)
{
    s_skip_space (parser);
    if (parser->pos >= parser->size)
        return s_fail (parser, "expected a value, found the end of the text");
    char c = parser->text[parser->pos];
    if ((c == '[' || c == '{') && depth >= PS_JSON_MAX_DEPTH)
        return s_fail (parser, "nesting deeper than %d arrays and objects", PS_JSON_MAX_DEPTH);
    if (c == '[')
        return s_array (parser, depth);
    if (c == '{')
        return s_object (parser, depth);
    if (c == '-' || (c >= '0' && c <= '9'))
        return s_number (parser);
    if (c == '"') {
        int node = s_new_node (parser, PS_JSON_STRING);
        if (node < 0)
            return -1;
        int string = s_string (parser);
        if (string < 0)
            return -1;
        parser->doc->nodes[node].string = string;
        return node;
    }
    return s_literal (parser);
}

ps_json_t *
ps_json_parse (const char *text, size_t size, char *why, size_t why_size)
{
    if (why && why_size)
        why[0] = 0;
    if (!text || size == 0) {
        if (why && why_size)
            snprintf (why, why_size, "empty text: expected a JSON value");
        return NULL;
    }
    if (size > PS_JSON_MAX_BYTES) {
        if (why && why_size)
            snprintf (why, why_size, "JSON text of %zu bytes, limit %d", size, PS_JSON_MAX_BYTES);
        return NULL;
    }
    ps_json_t *doc = calloc (1, sizeof *doc);
    if (doc)
        doc->pool = malloc (size + 1);
    if (!doc || !doc->pool) {
        ps_json_destroy (&doc);
        if (why && why_size)
            snprintf (why, why_size, "out of memory for %zu bytes of JSON", size);
        return NULL;
    }
    parser_t parser = {doc, text, size, 0, why, why_size};
    int root = s_value (&parser, 0);
    if (root == 0) {
        s_skip_space (&parser);
        if (parser.pos < size) {
            char seen[16];
            s_fail (&parser, "unexpected %s after the value",
                    s_describe (&parser, seen, sizeof seen));
            root = -1;
        }
    }
    if (root != 0)
        ps_json_destroy (&doc);
    return doc;
}

void
ps_json_destroy (ps_json_t **self_p)
{
    assert (self_p);
    ps_json_t *self = *self_p;
    if (self) {
        free (self->nodes);
        free (self->pool);
        free (self);
        *self_p = NULL;
    }
}

//  The node, or NULL for -1 and out-of-range handles
static const node_t *
s_node (const ps_json_t *self, int node)
{
    assert (self);
    if (node < 0 || (size_t)node >= self->nnodes)
        return NULL;
    return &self->nodes[node];
}

int
ps_json_root (const ps_json_t *self)
{
    assert (self);
    return 0;
}

ps_json_type_t
ps_json_type (const ps_json_t *self, int node)
{
    const node_t *slot = s_node (self, node);
    return slot ? (ps_json_type_t)slot->type : PS_JSON_NULL;
}

//  Member whose name is the length bytes at key
static int
s_member (const ps_json_t *self, int node, const char *key, size_t length)
{
    const node_t *slot = s_node (self, node);
    if (!slot || slot->type != PS_JSON_OBJECT)
        return -1;
    for (int child = slot->first; child >= 0; child = self->nodes[child].next) {
        const char *name = self->pool + self->nodes[child].key;
        if (strncmp (name, key, length) == 0 && name[length] == 0)
            return child;
    }
    return -1;
}

int
ps_json_member (const ps_json_t *self, int node, const char *key)
{
    return key ? s_member (self, node, key, strlen (key)) : -1;
}

int
ps_json_at (const ps_json_t *self, int node, size_t index)
{
    const node_t *slot = s_node (self, node);
    if (!slot || slot->type != PS_JSON_ARRAY || index >= slot->count)
        return -1;
    int child = slot->first;
    while (index-- > 0)
        child = self->nodes[child].next;
    return child;
}

int
ps_json_find (const ps_json_t *self, int node, const char *path)
{
    if (!path)
        return -1;
    while (node >= 0 && *path) {
        size_t length = strcspn (path, ".");
        if (ps_json_type (self, node) == PS_JSON_ARRAY) {
            size_t index = 0;
            bool number = length > 0 && length < 10;
            for (size_t i = 0; number && i < length; i++) {
                number = path[i] >= '0' && path[i] <= '9';
                index = index * 10 + (size_t)(path[i] - '0');
            }
            node = number ? ps_json_at (self, node, index) : -1;
        }
        else
            node = s_member (self, node, path, length);
        path += length;
        if (*path == '.')
            path++;
    }
    return node;
}

size_t
ps_json_length (const ps_json_t *self, int node)
{
    const node_t *slot = s_node (self, node);
    return slot && (slot->type == PS_JSON_ARRAY || slot->type == PS_JSON_OBJECT) ? slot->count : 0;
}

int
ps_json_first (const ps_json_t *self, int node)
{
    const node_t *slot = s_node (self, node);
    return slot && (slot->type == PS_JSON_ARRAY || slot->type == PS_JSON_OBJECT) ? slot->first : -1;
}

int
ps_json_next (const ps_json_t *self, int node)
{
    const node_t *slot = s_node (self, node);
    return slot ? slot->next : -1;
}

const char *
ps_json_key (const ps_json_t *self, int node)
{
    const node_t *slot = s_node (self, node);
    return slot && slot->key >= 0 ? self->pool + slot->key : NULL;
}

double
ps_json_number (const ps_json_t *self, int node, double fallback)
{
    const node_t *slot = s_node (self, node);
    return slot && slot->type == PS_JSON_NUMBER ? slot->number : fallback;
}

int64_t
ps_json_int (const ps_json_t *self, int node, int64_t fallback)
{
    const node_t *slot = s_node (self, node);
    if (!slot || slot->type != PS_JSON_NUMBER)
        return fallback;
    if (slot->integral)
        return slot->integer;
    //  2^63 is exact in a double; anything below it converts without UB
    if (slot->number > -9223372036854775808.0 && slot->number < 9223372036854775808.0)
        return (int64_t)slot->number;
    return fallback;
}

bool
ps_json_bool (const ps_json_t *self, int node, bool fallback)
{
    const node_t *slot = s_node (self, node);
    return slot && slot->type == PS_JSON_BOOL ? slot->truth : fallback;
}

const char *
ps_json_string (const ps_json_t *self, int node)
{
    const node_t *slot = s_node (self, node);
    return slot && slot->type == PS_JSON_STRING ? self->pool + slot->string : NULL;
}
