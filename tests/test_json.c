/*  =========================================================================
    test_json - the strict JSON reader that tools use for INFO replies

    The first test reads an INFO reply the way pstap does. The others pin
    down values, strings and escapes, every kind of malformed input (each
    must be refused with a message that names the problem and its place),
    nesting and size limits, and a seeded fuzz loop that mutates valid
    documents: whatever the parser accepts must walk cleanly, whatever it
    refuses must come with a reason, and nothing may crash.
    ========================================================================= */

#include "ps_json.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static ps_json_t *
s_parse (const char *text)
{
    char why[256] = "";
    ps_json_t *doc = ps_json_parse (text, strlen (text), why, sizeof why);
    cr_assert (doc, "'%s' should parse: %s", text, why);
    return doc;
}

Test (json, reads_an_info_reply)
{
    const char *info = "{\"endpoint\":\"tcp://0.0.0.0:5555\",\"uptime_s\":12.5,\"world\":2,"
                       "\"tap\":\"ipc:///tmp/psmq-tap-5555\",\"clocks\":[7,9],"
                       "\"messages_in\":{\"push\":10,\"pull\":12},"
                       "\"workers\":[{\"rank\":0,\"state\":\"live\",\"clock\":7},"
                       "{\"rank\":1,\"state\":\"gone\",\"clock\":9}]}";
    char why[256];
    ps_json_t *doc = ps_json_parse (info, strlen (info), why, sizeof why);
    cr_assert (doc, "%s", why);
    int root = ps_json_root (doc);

    cr_assert_str_eq (ps_json_string (doc, ps_json_member (doc, root, "tap")),
                      "ipc:///tmp/psmq-tap-5555");
    cr_assert_float_eq (ps_json_number (doc, ps_json_member (doc, root, "uptime_s"), 0), 12.5,
                        1e-9);
    cr_assert_eq (ps_json_int (doc, ps_json_find (doc, root, "workers.1.clock"), -1), 9);
    cr_assert_str_eq (ps_json_string (doc, ps_json_find (doc, root, "workers.1.state")), "gone");
    cr_assert_eq (ps_json_length (doc, ps_json_member (doc, root, "clocks")), 2);

    //  Iterate an object's members in document order
    int counts = ps_json_member (doc, root, "messages_in");
    const char *names[2];
    int64_t values[2];
    size_t n = 0;
    for (int member = ps_json_first (doc, counts); member >= 0;
         member = ps_json_next (doc, member)) {
        cr_assert_lt (n, 2);
        names[n] = ps_json_key (doc, member);
        values[n++] = ps_json_int (doc, member, -1);
    }
    cr_assert_eq (n, 2);
    cr_assert_str_eq (names[0], "push");
    cr_assert_eq (values[0], 10);
    cr_assert_str_eq (names[1], "pull");
    cr_assert_eq (values[1], 12);

    //  A field an older broker does not send: every getter falls back
    int missing = ps_json_member (doc, root, "tap_dropped");
    cr_assert_eq (missing, -1);
    cr_assert_eq (ps_json_int (doc, missing, 42), 42);
    cr_assert_null (ps_json_string (doc, ps_json_find (doc, root, "workers.5.state")));
    ps_json_destroy (&doc);
    cr_assert_null (doc);
    ps_json_destroy (&doc);
}

Test (json, values_and_types)
{
    ps_json_t *doc = s_parse (" [ null , true , false , 0 , -0 , 12 , -3.5 , 1e3 , 2.5E-1 ,"
                              " 9223372036854775807 , 18446744073709551616 , \"s\" , [] , {} ] ");
    int root = ps_json_root (doc);
    cr_assert_eq (ps_json_type (doc, root), PS_JSON_ARRAY);
    cr_assert_eq (ps_json_length (doc, root), 14);
    cr_assert_eq (ps_json_type (doc, ps_json_at (doc, root, 0)), PS_JSON_NULL);
    cr_assert_eq (ps_json_bool (doc, ps_json_at (doc, root, 1), false), true);
    cr_assert_eq (ps_json_bool (doc, ps_json_at (doc, root, 2), true), false);
    cr_assert_eq (ps_json_int (doc, ps_json_at (doc, root, 4), 7), 0);
    cr_assert_eq (ps_json_int (doc, ps_json_at (doc, root, 5), 0), 12);
    cr_assert_float_eq (ps_json_number (doc, ps_json_at (doc, root, 6), 0), -3.5, 1e-12);
    //  A fraction is truncated toward zero when asked for as an integer
    cr_assert_eq (ps_json_int (doc, ps_json_at (doc, root, 6), 0), -3);
    cr_assert_eq (ps_json_int (doc, ps_json_at (doc, root, 7), 0), 1000);
    cr_assert_float_eq (ps_json_number (doc, ps_json_at (doc, root, 8), 0), 0.25, 1e-12);
    cr_assert_eq (ps_json_int (doc, ps_json_at (doc, root, 9), 0), INT64_MAX);
    //  2^64 does not fit: the number is there, the integer falls back
    cr_assert_float_eq (ps_json_number (doc, ps_json_at (doc, root, 10), 0), 18446744073709551616.0,
                        1e4);
    cr_assert_eq (ps_json_int (doc, ps_json_at (doc, root, 10), -1), -1);
    cr_assert_eq (ps_json_type (doc, ps_json_at (doc, root, 12)), PS_JSON_ARRAY);
    cr_assert_eq (ps_json_first (doc, ps_json_at (doc, root, 12)), -1);
    cr_assert_eq (ps_json_type (doc, ps_json_at (doc, root, 13)), PS_JSON_OBJECT);
    cr_assert_eq (ps_json_at (doc, root, 14), -1);
    //  Getters of the wrong type fall back instead of converting
    cr_assert_null (ps_json_string (doc, ps_json_at (doc, root, 5)));
    cr_assert_eq (ps_json_int (doc, ps_json_at (doc, root, 11), 5), 5);
    cr_assert_eq (ps_json_bool (doc, ps_json_at (doc, root, 3), true), true);
    cr_assert_null (ps_json_key (doc, ps_json_at (doc, root, 0)));
    ps_json_destroy (&doc);

    doc = s_parse ("\"just a string\"");
    cr_assert_str_eq (ps_json_string (doc, ps_json_root (doc)), "just a string");
    ps_json_destroy (&doc);
}

Test (json, strings_decode_escapes_and_utf8)
{
    ps_json_t *doc =
        s_parse ("{\"q\\\"k\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\","
                 "\"u\":\"\\u00e9\\u20AC\\ud83d\\ude00\",\"raw\":\"\xc3\xa9\xe2\x82\xac"
                 "\xf0\x9f\x98\x80\"}");
    int root = ps_json_root (doc);
    cr_assert_str_eq (ps_json_string (doc, ps_json_member (doc, root, "q\"k")),
                      "a\"b\\c/d\b\f\n\r\t");
    const char *expected = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    cr_assert_str_eq (ps_json_string (doc, ps_json_member (doc, root, "u")), expected);
    cr_assert_str_eq (ps_json_string (doc, ps_json_member (doc, root, "raw")), expected);
    ps_json_destroy (&doc);
}

Test (json, paths_and_repeated_keys)
{
    ps_json_t *doc = s_parse ("{\"a\":{\"b\":[10,{\"c\":[1,2,3]}]},\"a\":5,\"x.y\":1,\"\":2}");
    int root = ps_json_root (doc);
    cr_assert_eq (ps_json_int (doc, ps_json_find (doc, root, "a.b.1.c.2"), -1), 3);
    cr_assert_eq (ps_json_int (doc, ps_json_find (doc, root, "a.b.0"), -1), 10);
    //  The first of repeated members wins
    cr_assert_eq (ps_json_type (doc, ps_json_find (doc, root, "a")), PS_JSON_OBJECT);
    //  Missing steps, indexes into objects, names into arrays: all -1
    cr_assert_eq (ps_json_find (doc, root, "a.b.2"), -1);
    cr_assert_eq (ps_json_find (doc, root, "a.b.c"), -1);
    cr_assert_eq (ps_json_find (doc, root, "a.0"), -1);
    cr_assert_eq (ps_json_find (doc, root, "a.b.-1"), -1);
    cr_assert_eq (ps_json_find (doc, root, "a.b.99999999999999999999"), -1);
    cr_assert_eq (ps_json_find (doc, -1, "a"), -1);
    cr_assert_eq (ps_json_find (doc, root, ""), root);
    //  Keys with dots and empty keys are reached by member
    cr_assert_eq (ps_json_int (doc, ps_json_member (doc, root, "x.y"), -1), 1);
    cr_assert_eq (ps_json_int (doc, ps_json_member (doc, root, ""), -1), 2);
    cr_assert_eq (ps_json_find (doc, root, "x.y"), -1);
    ps_json_destroy (&doc);
}

Test (json, reads_only_the_given_bytes)
{
    //  The text need not end in NUL: the size bounds what is read
    const char text[] = {'[', '1', ',', '2', ']', 'j', 'u', 'n', 'k'};
    char why[256];
    ps_json_t *doc = ps_json_parse (text, 5, why, sizeof why);
    cr_assert (doc, "%s", why);
    cr_assert_eq (ps_json_int (doc, ps_json_at (doc, ps_json_root (doc), 1), 0), 2);
    ps_json_destroy (&doc);
    //  A number or literal cut at the end of the buffer is not read past it
    doc = ps_json_parse ("123", 2, why, sizeof why);
    cr_assert (doc, "%s", why);
    cr_assert_eq (ps_json_int (doc, ps_json_root (doc), 0), 12);
    ps_json_destroy (&doc);
    cr_assert_null (ps_json_parse ("true", 3, why, sizeof why));
    cr_assert (strstr (why, "unexpected 't'"), "%s", why);
}

Test (json, malformed_input_is_refused_with_a_reason)
{
    struct {
        const char *text;
        const char *says;
    } cases[] = {
        {"", "empty text"},
        {"   ", "found the end of the text"},
        {"[1,]", "unexpected ']'"},
        {"{\"a\":1,}", "expected a member name in quotes, found '}'"},
        {"[1 2]", "expected ',' or ']' in an array, found '2'"},
        {"{\"a\" 1}", "expected ':' after member name \"a\", found '1'"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}' in an object"},
        {"{a:1}", "expected a member name in quotes, found 'a'"},
        {"01", "leading zero"},
        {"-01", "leading zero"},
        {"1.", "'.' in a number must be followed by a digit"},
        {".5", "unexpected '.'"},
        {"-", "'-' must be followed by a digit"},
        {"+1", "unexpected '+'"},
        {"1e", "exponent of a number needs digits"},
        {"1e+", "exponent of a number needs digits"},
        {"1e999", "out of range"},
        {"0x10", "unexpected 'x' after the value"},
        {"NaN", "unexpected 'N'"},
        {"Infinity", "unexpected 'I'"},
        {"tru", "unexpected 't'"},
        {"nul", "unexpected 'n'"},
        {"[true false]", "expected ',' or ']'"},
        {"\"abc", "string cut short"},
        {"\"abc\\", "string cut short"},
        {"\"\\x\"", "unknown escape \\'x'"},
        {"\"\\u12\"", "\\u escape needs 4 hex digits, found '\"'"},
        {"\"\\u12", "\\u escape cut short"},
        {"\"\\ud800\"", "high surrogate \\ud800 not followed by a low one"},
        {"\"\\ud800\\u0041\"", "high surrogate \\ud800 followed by \\u0041"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"\\u0000\"", "\\u0000 in a string"},
        {"\"a\nb\"", "control character 0x0a in a string"},
        {"\"a\tb\"", "control character 0x09"},
        {"\"\xff\"", "invalid UTF-8 byte 0xff"},
        {"\"\xc0\x80\"", "invalid UTF-8 byte 0xc0"},         //  overlong NUL
        {"\"\xe0\x80\xaf\"", "invalid UTF-8 byte 0xe0"},     //  overlong '/'
        {"\"\xed\xa0\x80\"", "invalid UTF-8 byte 0xed"},     //  encoded surrogate
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8 byte 0xf4"}, //  past U+10FFFF
        {"\"\xe2\x82\"", "invalid UTF-8 byte 0xe2"},         //  cut sequence
        {"\xef\xbb\xbf{}", "unexpected byte 0xef"},          //  a BOM
        {"{} {}", "unexpected '{' after the value"},
        {"[1]]", "unexpected ']' after the value"},
        {"/* c */ 1", "unexpected '/'"},
        {"[", "expected a value, found the end of the text"},
        {"{\"a\":", "expected a value, found the end"},
        {"{", "expected a member name in quotes, found the end of the text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256] = "";
        ps_json_t *doc = ps_json_parse (cases[i].text, strlen (cases[i].text), why, sizeof why);
        cr_assert_null (doc, "'%s' must be refused", cases[i].text);
        cr_assert (strstr (why, cases[i].says), "'%s': expected '%s' in: %s", cases[i].text,
                   cases[i].says, why);
    }
    //  A number longer than anybody writes
    char digits[601];
    memset (digits, '7', 600);
    digits[600] = 0;
    char why[256];
    cr_assert_null (ps_json_parse (digits, 600, why, sizeof why));
    cr_assert (strstr (why, "number of 600 characters, limit 512"), "%s", why);
    //  NULL text and a NULL why are fine too
    cr_assert_null (ps_json_parse (NULL, 0, NULL, 0));
    cr_assert_null (ps_json_parse ("[", 1, NULL, 0));
}

Test (json, errors_say_where)
{
    const char *text = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    char why[256];
    cr_assert_null (ps_json_parse (text, strlen (text), why, sizeof why));
    cr_assert (strstr (why, "at byte 19 (line 3, column 8)"), "%s", why);
}

Test (json, nesting_is_bounded)
{
    char text[2 * PS_JSON_MAX_DEPTH + 3];
    for (int depth = PS_JSON_MAX_DEPTH; depth <= PS_JSON_MAX_DEPTH + 1; depth++) {
        memset (text, '[', (size_t)depth);
        memset (text + depth, ']', (size_t)depth);
        char why[256] = "";
        ps_json_t *doc = ps_json_parse (text, 2 * (size_t)depth, why, sizeof why);
        if (depth == PS_JSON_MAX_DEPTH) {
            cr_assert (doc, "depth %d is allowed: %s", depth, why);
            int node = ps_json_root (doc);
            for (int i = 1; i < depth; i++)
                node = ps_json_at (doc, node, 0);
            cr_assert_eq (ps_json_type (doc, node), PS_JSON_ARRAY);
            cr_assert_eq (ps_json_length (doc, node), 0);
            ps_json_destroy (&doc);
        }
        else {
            cr_assert_null (doc);
            cr_assert (strstr (why, "nesting deeper than 64"), "%s", why);
        }
    }
    //  A hostile run of a million openers costs neither stack nor memory
    size_t size = PS_JSON_MAX_BYTES;
    char *deep = malloc (size);
    cr_assert (deep);
    for (size_t i = 0; i < size; i++)
        deep[i] = i % 2 ? '[' : '{';
    char why[256];
    cr_assert_null (ps_json_parse (deep, size, why, sizeof why));
    cr_assert (strstr (why, "expected a member name"), "%s", why);
    memset (deep, '[', size);
    cr_assert_null (ps_json_parse (deep, size, why, sizeof why));
    cr_assert (strstr (why, "nesting deeper"), "%s", why);
    free (deep);
}

Test (json, size_is_bounded)
{
    size_t size = PS_JSON_MAX_BYTES + 1;
    char *text = malloc (size);
    cr_assert (text);
    memset (text, ' ', size);
    text[0] = '1';
    char why[256];
    cr_assert_null (ps_json_parse (text, size, why, sizeof why));
    cr_assert (strstr (why, "limit 1048576"), "%s", why);
    //  Nearly the largest text, of the smallest values: half a million nodes
    size -= 2;
    for (size_t i = 0; i < size; i++)
        text[i] = i % 2 ? '0' : ',';
    text[0] = '[';
    text[size - 1] = ']';
    ps_json_t *doc = ps_json_parse (text, size, why, sizeof why);
    cr_assert (doc, "%s", why);
    cr_assert_eq (ps_json_length (doc, ps_json_root (doc)), (size - 1) / 2);
    ps_json_destroy (&doc);
    free (text);
}

//  Walk every node below node; returns how many, checking each container's
//  length against its iteration and each getter's type discipline
static size_t
s_walk (const ps_json_t *doc, int node, int depth)
{
    cr_assert_leq (depth, PS_JSON_MAX_DEPTH + 1);
    ps_json_type_t type = ps_json_type (doc, node);
    if (type == PS_JSON_STRING)
        cr_assert (ps_json_string (doc, node));
    else
        cr_assert_null (ps_json_string (doc, node));
    size_t walked = 1, children = 0;
    for (int child = ps_json_first (doc, node); child >= 0; child = ps_json_next (doc, child)) {
        if (type == PS_JSON_OBJECT) {
            const char *key = ps_json_key (doc, child);
            cr_assert (key);
            //  Lookup by name finds this member or an earlier one of that name
            int found = ps_json_member (doc, node, key);
            cr_assert (found >= 0 && found <= child);
        }
        else
            cr_assert_eq (ps_json_at (doc, node, children), child);
        walked += s_walk (doc, child, depth + 1);
        children++;
    }
    cr_assert_eq (children, ps_json_length (doc, node));
    return walked;
}

//  xorshift64*: a fixed seed so that a failure reproduces
static uint64_t
s_random (uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ULL;
}

Test (json, fuzzed_documents_never_crash, .timeout = 20)
{
    const char *seeds[] = {
        "{\"endpoint\":\"tcp://0.0.0.0:5555\",\"uptime_s\":1.5e2,\"clocks\":[1,-1,3],"
        "\"workers\":[{\"rank\":0,\"state\":\"live\",\"parked\":true,\"x\":null}],"
        "\"s\":\"\\u00e9\\ud83d\\ude00\\n\"}",
        "[[[[{\"a\":[{},[],\"\",0.0,-1E+2]}]]]]",
        "{\"\":{\"\":{\"\":[true,false,null]}}}",
    };
    const char alphabet[] = "{}[]\",:\\u0123456789.eE+-tfnrulsa \n\t\x01\xff\xc3\xa9";
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    size_t accepted = 0, refused = 0;
    for (int round = 0; round < 30000; round++) {
        const char *seed = seeds[round % 3];
        char text[512];
        size_t size = strlen (seed);
        memcpy (text, seed, size);
        int edits = 1 + (int)(s_random (&state) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = s_random (&state) % (size + 1);
            switch (s_random (&state) % 4) {
            case 0: //  replace a byte
                if (at < size)
                    text[at] = alphabet[s_random (&state) % (sizeof alphabet - 1)];
                break;
            case 1: //  insert a byte
                if (size + 1 < sizeof text) {
                    memmove (text + at + 1, text + at, size - at);
                    text[at] = alphabet[s_random (&state) % (sizeof alphabet - 1)];
                    size++;
                }
                break;
            case 2: //  delete a byte
                if (at < size) {
                    memmove (text + at, text + at + 1, size - at - 1);
                    size--;
                }
                break;
            default: //  truncate
                size = at;
            }
        }
        char why[256] = "";
        ps_json_t *doc = ps_json_parse (text, size, why, sizeof why);
        if (doc) {
            accepted++;
            cr_assert_geq (s_walk (doc, ps_json_root (doc), 0), 1);
            ps_json_destroy (&doc);
        }
        else {
            refused++;
            cr_assert (why[0], "a refusal says why (input %zu bytes)", size);
        }
    }
    //  The mutations exercise both paths
    cr_assert_gt (accepted, 100);
    cr_assert_gt (refused, 1000);
}
