/*  =========================================================================
    test_pstap_info - how pstap reads the broker's INFO reply

    Usage: parse INFO with pstap_info_parse (jansson underneath), then read
    any field by its dotted path with a fallback for a broker that does
    not send it:

        json_t *info = pstap_info_parse (text, strlen (text), &problem);
        int64_t clock = pstap_info_int (info, "workers.1.clock", -1);
        json_decref (info);

    The first test reads an INFO reply the way pstap's views do. The
    others pin down paths and fallbacks, numbers read as integers, the
    per-worker view that top and clock share, and input that is not JSON:
    refused with a reason that says where, never read past its size, and
    never a crash however it is mangled (a seeded fuzz loop).

    usage: build/test_pstap_info [--filter 'pstap_info/<test>']
    ========================================================================= */

#include "pstap_info.h"
#include "ps_limits.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static json_t *
s_parse (const char *text)
{
    ps_problem_t problem = {0};
    json_t *info = pstap_info_parse (text, strlen (text), &problem);
    cr_assert (info, "'%s' should parse: %s", text, problem.message);
    return info;
}

Test (pstap_info, reads_an_info_reply)
{
    const char *text = "{\"endpoint\":\"tcp://0.0.0.0:5555\",\"uptime_s\":12.5,\"world\":2,"
                       "\"tap\":\"ipc:///tmp/psmq-tap-5555\",\"clocks\":[7,9],"
                       "\"messages_in\":{\"push\":10,\"pull\":12},"
                       "\"workers\":[{\"rank\":0,\"state\":\"live\",\"clock\":7},"
                       "{\"rank\":1,\"state\":\"gone\",\"clock\":9}]}";
    ps_problem_t problem;
    json_t *info = pstap_info_parse (text, strlen (text), &problem);
    cr_assert (info, "%s", problem.message);

    cr_assert_str_eq (pstap_info_string (info, "tap", NULL), "ipc:///tmp/psmq-tap-5555");
    cr_assert_float_eq (pstap_info_number (info, "uptime_s", 0), 12.5, 1e-9);
    cr_assert_eq (pstap_info_int (info, "messages_in.pull", 0), 12);
    cr_assert_eq (pstap_info_int (info, "workers.1.clock", -1), 9);
    cr_assert_str_eq (pstap_info_string (info, "workers.1.state", "?"), "gone");
    cr_assert_eq (json_array_size (pstap_info_find (info, "clocks")), 2);

    //  A field an older broker does not send: every reader falls back
    cr_assert_eq (pstap_info_int (info, "tap_dropped", 42), 42);
    char text_count[32];
    cr_assert_str_eq (pstap_info_count (info, "tap_dropped", text_count, sizeof text_count), "-");
    cr_assert_str_eq (pstap_info_count (info, "world", text_count, sizeof text_count), "2");
    cr_assert_null (pstap_info_string (info, "workers.5.state", NULL));

    //  What top and clock show per worker: rank 1 is gone, so no clock
    int64_t clocks[2], parked[2];
    pstap_info_workers (info, pstap_info_world (info), clocks, parked);
    cr_assert (clocks[0] == 7 && clocks[1] == -1, "%lld %lld", (long long)clocks[0],
               (long long)clocks[1]);
    cr_assert (parked[0] == -1 && parked[1] == -1, "this broker does not say");
    json_decref (info);
}

Test (pstap_info, values_and_types)
{
    json_t *info = s_parse (" [ null , true , false , 0 , -0 , 12 , -3.5 , 1e3 , 2.5E-1 ,"
                            " 9223372036854775807 , 1e19 , \"s\" , [] , {} ] ");
    cr_assert (json_is_array (info));
    cr_assert_eq (json_array_size (info), 14);
    cr_assert (json_is_null (pstap_info_find (info, "0")));
    cr_assert_eq (pstap_info_int (info, "4", 7), 0);
    cr_assert_eq (pstap_info_int (info, "5", 0), 12);
    cr_assert_float_eq (pstap_info_number (info, "6", 0), -3.5, 1e-12);
    //  A fraction is cut toward zero when asked for as an integer
    cr_assert_eq (pstap_info_int (info, "6", 0), -3);
    cr_assert_eq (pstap_info_int (info, "7", 0), 1000);
    cr_assert_float_eq (pstap_info_number (info, "8", 0), 0.25, 1e-12);
    cr_assert_eq (pstap_info_int (info, "9", 0), INT64_MAX);
    //  1e19 does not fit: the number is there, the integer falls back
    cr_assert_float_eq (pstap_info_number (info, "10", 0), 1e19, 1e4);
    cr_assert_eq (pstap_info_int (info, "10", -1), -1);
    cr_assert (json_is_array (pstap_info_find (info, "12")));
    cr_assert (json_is_object (pstap_info_find (info, "13")));
    cr_assert_null (pstap_info_find (info, "14"));
    //  Readers of the wrong type fall back instead of converting
    cr_assert_null (pstap_info_string (info, "5", NULL));
    cr_assert_eq (pstap_info_int (info, "11", 5), 5);
    cr_assert_eq (pstap_info_int (info, "1", 5), 5);
    cr_assert_float_eq (pstap_info_number (info, "11", 0.5), 0.5, 1e-12);
    char text[32];
    cr_assert_str_eq (pstap_info_count (info, "11", text, sizeof text), "-");
    json_decref (info);

    //  Any JSON value is INFO enough to read from
    info = s_parse ("\"just a string\"");
    cr_assert_str_eq (pstap_info_string (info, "", NULL), "just a string");
    json_decref (info);
}

Test (pstap_info, paths)
{
    json_t *info = s_parse ("{\"a\":{\"b\":[10,{\"c\":[1,2,3]}]},\"x.y\":1,\"\":2}");
    cr_assert_eq (pstap_info_int (info, "a.b.1.c.2", -1), 3);
    cr_assert_eq (pstap_info_int (info, "a.b.0", -1), 10);
    cr_assert (json_is_object (pstap_info_find (info, "a")));
    //  Missing steps, indexes into objects, names into arrays: all NULL
    cr_assert_null (pstap_info_find (info, "a.b.2"));
    cr_assert_null (pstap_info_find (info, "a.b.c"));
    cr_assert_null (pstap_info_find (info, "a.0"));
    cr_assert_null (pstap_info_find (info, "a.b.-1"));
    cr_assert_null (pstap_info_find (info, "a.b.99999999999999999999"));
    cr_assert_null (pstap_info_find (NULL, "a"));
    cr_assert_eq (pstap_info_find (info, ""), info);
    cr_assert_eq (pstap_info_find (info, NULL), info);
    //  Keys with dots are reached by jansson itself, not by path
    cr_assert_eq (json_integer_value (json_object_get (info, "x.y")), 1);
    cr_assert_null (pstap_info_find (info, "x.y"));
    json_decref (info);

    //  A member given twice: jansson keeps the last
    info = s_parse ("{\"a\":{\"b\":1},\"a\":5}");
    cr_assert_eq (pstap_info_int (info, "a", -1), 5);
    json_decref (info);
}

Test (pstap_info, parked_requests_from_either_form)
{
    //  A broker that lists "parked" but has no "workers": counted per rank
    json_t *info = s_parse ("{\"world\":3,\"clocks\":[4,5,-1],\"parked\":[{\"worker\":0},"
                            "{\"worker\":0},{\"worker\":2},{\"worker\":9}]}");
    int64_t clocks[3], parked[3];
    pstap_info_workers (info, pstap_info_world (info), clocks, parked);
    cr_assert (clocks[0] == 4 && clocks[1] == 5 && clocks[2] == -1);
    cr_assert (parked[0] == 2 && parked[1] == 0 && parked[2] == 1);
    json_decref (info);

    //  "workers" says it per worker, and wins over the lists
    info = s_parse ("{\"world\":2,\"clocks\":[4,5],\"parked\":[],\"workers\":["
                    "{\"rank\":1,\"state\":\"live\",\"clock\":6,\"parked\":3}]}");
    pstap_info_workers (info, pstap_info_world (info), clocks, parked);
    cr_assert (clocks[0] == 4 && clocks[1] == 6);
    cr_assert (parked[0] == 0 && parked[1] == 3);
    json_decref (info);

    //  A world out of bounds is kept within what pstap shows
    info = s_parse ("{\"world\":-4}");
    cr_assert_eq (pstap_info_world (info), 0);
    json_decref (info);
    info = s_parse ("{\"world\":1e9}");
    cr_assert_eq (pstap_info_world (info), PS_MAX_WORKERS);
    json_decref (info);
}

Test (pstap_info, reads_only_the_given_bytes)
{
    //  The text need not end in NUL: the size bounds what is read
    const char text[] = {'[', '1', ',', '2', ']', 'j', 'u', 'n', 'k'};
    ps_problem_t problem;
    json_t *info = pstap_info_parse (text, 5, &problem);
    cr_assert (info, "%s", problem.message);
    cr_assert_eq (pstap_info_int (info, "1", 0), 2);
    json_decref (info);
    //  A number or literal cut at the end of the buffer is not read past it
    info = pstap_info_parse ("123", 2, &problem);
    cr_assert (info, "%s", problem.message);
    cr_assert_eq (pstap_info_int (info, "", 0), 12);
    json_decref (info);
    cr_assert_null (pstap_info_parse ("true", 3, &problem));
}

Test (pstap_info, text_that_is_not_json_is_refused_saying_where)
{
    const char *cases[] = {"",         "   ",         "[1,]",     "{\"a\":1,}", "[1 2]",
                           "{a:1}",    "01",          "1.",       "NaN",        "tru",
                           "\"abc",    "\"\\ud800\"", "\"a\nb\"", "\"\xff\"",   "{} {}",
                           "/* c */1", "{\"a\":1}]",  "[",        "{\"a\":",    "\"\\u0000\""};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ps_problem_t problem = {0};
        json_t *info = pstap_info_parse (cases[i], strlen (cases[i]), &problem);
        cr_assert_null (info, "'%s' must be refused", cases[i]);
        cr_assert (strncmp (problem.message, "line ", 5) == 0 && strstr (problem.message, "column"),
                   "'%s': %s", cases[i], problem.message);
        cr_assert_eq (problem.code, 0, "a local failure");
    }
    const char *text = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    ps_problem_t problem;
    cr_assert_null (pstap_info_parse (text, strlen (text), &problem));
    cr_assert (strncmp (problem.message, "line 3, column ", 15) == 0, "%s", problem.message);
    //  A NULL problem is fine
    cr_assert_null (pstap_info_parse ("[", 1, NULL));
}

Test (pstap_info, hostile_nesting_costs_no_stack)
{
    //  A million openers from a broker that is not one: refused, no crash
    size_t size = 1 << 20;
    char *deep = malloc (size);
    cr_assert (deep);
    memset (deep, '[', size);
    ps_problem_t problem;
    cr_assert_null (pstap_info_parse (deep, size, &problem));
    for (size_t i = 0; i < size; i++)
        deep[i] = i % 2 ? '[' : '{';
    cr_assert_null (pstap_info_parse (deep, size, &problem));
    free (deep);
}

//  Read every node below node the way the views do; how many
static size_t
s_walk (const json_t *node, int depth)
{
    cr_assert_leq (depth, 64);
    //  Each reader answers for any node, of any type
    char text[32];
    pstap_info_int (node, "", 0);
    pstap_info_number (node, "", 0);
    pstap_info_count (node, "", text, sizeof text);
    cr_assert_eq (pstap_info_string (node, "", NULL) != NULL, json_is_string (node));
    size_t walked = 1;
    const char *key;
    json_t *child;
    size_t index;
    if (json_is_object (node))
        json_object_foreach ((json_t *)node, key, child)
        {
            cr_assert_eq (json_object_get (node, key), child);
            walked += s_walk (child, depth + 1);
        }
    else if (json_is_array (node))
        json_array_foreach (node, index, child)
        {
            char path[24];
            snprintf (path, sizeof path, "%zu", index);
            cr_assert_eq (pstap_info_find (node, path), child);
            walked += s_walk (child, depth + 1);
        }
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

Test (pstap_info, fuzzed_replies_never_crash, .timeout = 20)
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
        ps_problem_t problem = {0};
        json_t *info = pstap_info_parse (text, size, &problem);
        if (info) {
            accepted++;
            cr_assert_geq (s_walk (info, 0), 1);
            //  What the views read, whatever the document is
            int64_t clocks[PS_MAX_WORKERS], parked[PS_MAX_WORKERS];
            pstap_info_workers (info, pstap_info_world (info), clocks, parked);
            json_decref (info);
        }
        else {
            refused++;
            cr_assert (problem.message[0], "a refusal says why (input %zu bytes)", size);
        }
    }
    //  The mutations exercise both paths
    cr_assert_gt (accepted, 100);
    cr_assert_gt (refused, 1000);
}
