/*  =========================================================================
    test_psbroker - the psbroker binary (broker/psbroker.c)

    Usage, as an operator starts it:

        psbroker --port 5555 --workers 2 --staleness 1 --optimizer sgd --lr 0.25

    The first test does that on an ephemeral loopback port, uses it with
    the worker library over TCP and stops it with SIGTERM; the others check
    its command line: --help, every bad value named, a port in use.

    usage: cd build && ./test_psbroker [--filter 'psbroker/<test>']
    ========================================================================= */

#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

Test (psbroker, serves_the_library_over_tcp_and_stops_on_sigterm, .timeout = 60)
{
    //  psbroker on 127.0.0.1, at a port the kernel picks (--port 0); its
    //  first line says where it listens
    char *args[] = {"--workers", "2",    "--staleness", "1", "--optimizer",
                    "sgd",       "--lr", "0.25",        NULL};
    char endpoint[128], out[4096];
    ps_test_child_t broker = ps_test_psbroker (args, endpoint, sizeof endpoint, out, sizeof out);
    //  The optimizer named is the default for keys whose INIT names none,
    //  not one in force for every key
    cr_assert (strstr (out, "; default optimizer sgd lr 0.25, used when an INIT names none)"), "%s",
               out);

    ps_worker_t *workers[2];
    for (uint32_t rank = 0; rank < 2; rank++) {
        int status = PS_OK;
        workers[rank] = ps_test_connect (endpoint, rank, 2, PS_TEST_WAIT_MS, &status);
        cr_assert (workers[rank], "rank %u: %s", rank, ps_strerror (status));
        cr_assert_eq (ps_worker_staleness (workers[rank]), 1);
    }
    float gradient[3] = {1, 2, 3};
    ps_tensor_t push = {"p", gradient, 3};
    for (uint32_t rank = 0; rank < 2; rank++) {
        cr_assert_eq (ps_worker_init (workers[rank], "p", 3, NULL, NULL), PS_OK);
        cr_assert_eq (ps_worker_push (workers[rank], &push, 1, 1), PS_OK);
        cr_assert_eq (ps_worker_clock (workers[rank]), PS_OK);
    }
    //  SSP applies each push on arrival with the broker's lr 0.25
    float value[3];
    ps_tensor_t pull = {"p", value, 3};
    cr_assert_eq (ps_worker_pull (workers[0], &pull, 1), PS_OK);
    cr_assert_float_eq (value[2], -2 * 0.25f * 3, 1e-6);
    for (uint32_t rank = 0; rank < 2; rank++)
        ps_worker_close (&workers[rank]);

    kill (broker.pid, SIGTERM);
    cr_assert_eq (ps_test_wait_pid (broker.pid, 10000), 0, "psbroker did not exit cleanly");
    char err[8192] = "";
    ps_test_read_until (broker.err, "served", err, sizeof err, PS_TEST_WAIT_MS);
    cr_assert (strstr (err, "served"), "no summary on stderr: %s", err);
    cr_assert (strstr (err, "2 push"), "summary counts the pushes: %s", err);
    close (broker.out);
    close (broker.err);
}

//  Run psbroker with args (NULL-terminated) to its exit, reading its
//  stdout (its stderr when err) into text until it holds needle: its exit
//  status, -1 when it had to be killed
static int
s_run (char *const args[], bool err, const char *needle, char *text, size_t size)
{
    char path[512];
    char *argv[16] = {(char *)ps_test_binary ("psbroker", path, sizeof path)};
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt (i + 2, 16, "too many arguments");
        argv[i + 1] = args[i];
    }
    ps_test_child_t child = ps_test_spawn (argv);
    text[0] = 0;
    ps_test_read_until (err ? child.err : child.out, needle, text, size, PS_TEST_WAIT_MS);
    int status = ps_test_wait_pid (child.pid, PS_TEST_WAIT_MS);
    close (child.out);
    close (child.err);
    return status;
}

Test (psbroker, help_and_bad_arguments)
{
    char *help[] = {"--help", NULL};
    char out[4096];
    cr_assert_eq (s_run (help, false, "SIGTERM", out, sizeof out), 0, "%s", out);
    cr_assert (strstr (out, "--staleness"), "%s", out);

    struct {
        char *arg;
        char *value;
        const char *says;
    } bad[] = {{"--workers", "0", "--workers '0'"},
               {"--staleness", "-2", "--staleness '-2'"},
               {"--optimizer", "rmsprop", "'rmsprop'"},
               {"--lr", "fast", "--lr 'fast'"},
               {"--port", "70000", "--port '70000'"},
               {"--shards", "0", "--shards '0'"},
               //  The optimizer's own rules, named by the flag, not found later
               {"--lr", "-1", "--lr '-1' must be a number in (0, "},
               {"--lr", "nan", "--lr 'nan' is not a number"},
               {"--lr", "1e-50", "--lr '1e-50' is 0 in single precision"},
               {"--momentum", "1", "--momentum '1' must be a number in [0, 1)"},
               {"--beta1", "-0.5", "--beta1 '-0.5'"},
               {"--beta2", "0.99999999", "--beta2 '0.99999999' is 1 in single precision"},
               {"--eps", "0", "--eps '0'"},
               {"--workers", "many", "--workers 'many' is not a whole number"},
               {"--checkpoint-rate", "100", "--checkpoint-rate '100' must be a size from 1M"},
               {"--checkpoint-rate", "fast", "--checkpoint-rate 'fast' is not a size"},
               //  A value left out: getopt would take the next option for it
               {"--tap", "--quiet", "--tap '--quiet' looks like an option"},
               {"--bind", "-v", "--bind '-v' looks like an option"},
               {"--endpoint", "-q", "--endpoint '-q' looks like an option"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *args[] = {"--port", "0", bad[i].arg, bad[i].value, NULL};
        char err[4096];
        cr_assert_eq (s_run (args, true, bad[i].says, err, sizeof err), 2, "%s %s", bad[i].arg,
                      bad[i].value);
        cr_assert (strstr (err, bad[i].says), "error names the value: %s", err);
    }

    //  A place outside the group is refused before anything is bound
    char *outside[] = {"--port", "0", "--shard", "2", "--shards", "2", NULL};
    char err[4096];
    cr_assert_eq (s_run (outside, true, "shard 2 of 2", err, sizeof err), 1, "%s", err);
    cr_assert (strstr (err, "shard 2 of 2"), "error names the place: %s", err);
}

Test (psbroker, port_in_use_is_a_clear_error, .timeout = 30)
{
    char endpoint[64];
    ps_broker_t *holder = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    char port[16];
    snprintf (port, sizeof port, "%d", ps_broker_port (holder));
    char *args[] = {"--port", port, "--bind", "127.0.0.1", NULL};
    char err[4096];
    cr_assert_eq (s_run (args, true, "cannot bind", err, sizeof err), 1, "%s", err);
    cr_assert (strstr (err, "cannot bind") && strstr (err, port), "%s", err);
    ps_broker_destroy (&holder);
}

Test (psbroker, who_may_connect_is_said_and_checked_at_start, .timeout = 30)
{
    char out[8192];
    char *help[] = {"--help", NULL};
    cr_assert_eq (s_run (help, false, "SIGTERM", out, sizeof out), 0, "%s", out);
    static const char *flags[] = {"--curve-secret FILE",      "--allow-keys DIR",
                                  "--insecure-allow-any-key", "--allow-from ADDR",
                                  "--insecure-allow-any",     "protected"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        cr_assert (strstr (out, flags[i]), "--help says nothing of %s", flags[i]);

    //  Keys without an allow-list, payload on an open tap: refused, said why
    char secret[PATH_MAX];
    zcert_t *cert = zcert_new ();
    ps_test_path ("broker.key_secret", secret, sizeof secret);
    cr_assert_eq (zcert_save_secret (cert, secret), 0);
    zcert_destroy (&cert);
    char err[4096];
    char *keys_alone[] = {"--port", "0", "--curve-secret", secret, NULL};
    cr_assert_eq (s_run (keys_alone, true, "--allow-keys", err, sizeof err), 1, "%s", err);
    cr_assert (strstr (err, "without --allow-keys DIR"), "%s", err);
    char *open_payload[] = {"--port", "0", "--tap", "tcp://*:0", "--tap-payload", NULL};
    cr_assert_eq (s_run (open_payload, true, "--tap-payload", err, sizeof err), 1, "%s", err);
    cr_assert (strstr (err, "--tap-payload with the tap at tcp://*:0"), "%s", err);

    //  Protected by default, and the risk named when the operator takes it
    char endpoint[128];
    char *none[] = {NULL};
    ps_test_child_t broker = ps_test_psbroker (none, endpoint, sizeof endpoint, out, sizeof out);
    ps_test_read_until (broker.out, "admits", out, sizeof out, PS_TEST_WAIT_MS);
    cr_assert (strstr (out, "admits loopback peers only"), "%s", out);
    kill (broker.pid, SIGTERM);
    cr_assert_eq (ps_test_wait_pid (broker.pid, 10000), 0);
    close (broker.out);
    close (broker.err);
    char *insecure[] = {"--insecure-allow-any", NULL};
    broker = ps_test_psbroker (insecure, endpoint, sizeof endpoint, out, sizeof out);
    err[0] = 0;
    ps_test_read_until (broker.err, "reaches", err, sizeof err, PS_TEST_WAIT_MS);
    cr_assert (strstr (err, "--insecure-allow-any: anybody who reaches"), "%s", err);
    kill (broker.pid, SIGTERM);
    cr_assert_eq (ps_test_wait_pid (broker.pid, 10000), 0);
    close (broker.out);
    close (broker.err);
}

//  Each line of text that holds needle, checked by check (line); the
//  newlines of text become NULs. The lines checked
static int
s_each_line (char *text, const char *needle, void (*check) (const char *line))
{
    int lines = 0;
    for (char *line = text; *line;) {
        char *end = strchr (line, '\n');
        char *next = end ? end + 1 : line + strlen (line);
        if (end)
            *end = 0;
        if (strstr (line, needle)) {
            check (line);
            lines++;
        }
        line = next;
    }
    return lines;
}

//  "2026-12-02T04:48:01.123+00:00": the date, the time to the ms, the
//  offset from UTC
static bool
s_iso_8601 (const char *text)
{
    int year, month, day, hour, minute, second, ms, zone_hours, zone_minutes;
    char sign;
    return sscanf (text, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c%2d:%2d", &year, &month, &day, &hour,
                   &minute, &second, &ms, &sign, &zone_hours, &zone_minutes) == 10 &&
           year >= 2024 && month >= 1 && month <= 12 && (sign == '+' || sign == '-');
}

static void
s_check_text_line (const char *line)
{
    cr_assert (s_iso_8601 (line), "not an ISO 8601 time first: %s", line);
    cr_assert (strstr (line, " I psbroker: "), "no level and program: %s", line);
}

static void
s_check_json_line (const char *line)
{
    json_error_t error;
    json_t *object = json_loads (line, 0, &error);
    cr_assert (json_is_object (object), "not a JSON object (%s): %s", error.text, line);
    cr_assert (s_iso_8601 (json_string_value (json_object_get (object, "time"))), "%s", line);
    cr_assert_str_eq (json_string_value (json_object_get (object, "level")), "info");
    cr_assert_str_eq (json_string_value (json_object_get (object, "program")), "psbroker");
    cr_assert_not_null (json_string_value (json_object_get (object, "message")), "%s", line);
    json_decref (object);
}

Test (psbroker, logs_carry_an_iso_8601_time_as_text_or_json_lines, .timeout = 60)
{
    const char *formats[] = {"text", "json"};
    for (int f = 0; f < 2; f++) {
        char *args[] = {"--workers", "1", "--log-format", (char *)formats[f], NULL};
        char endpoint[128], out[4096];
        ps_test_child_t broker =
            ps_test_psbroker (args, endpoint, sizeof endpoint, out, sizeof out);
        kill (broker.pid, SIGTERM);
        cr_assert_eq (ps_test_wait_pid (broker.pid, 10000), 0, "psbroker did not exit cleanly");
        char err[8192] = "";
        ps_test_read_until (broker.err, "served", err, sizeof err, PS_TEST_WAIT_MS);
        close (broker.out);
        close (broker.err);
        //  At least its limits at start, "stopping" and the summary
        int lines = s_each_line (err, "psbroker", f ? s_check_json_line : s_check_text_line);
        cr_assert_geq (lines, 3, "%s: %d lines in %s", formats[f], lines, err);
    }
    char *bad[] = {"--log-format", "xml", NULL};
    char err[4096];
    cr_assert_eq (s_run (bad, true, "xml", err, sizeof err), 2, "%s", err);
    cr_assert (strstr (err, "--log-format 'xml' must be text or json"), "%s", err);
}

//  Whether the process pid maps a file whose name holds library
static bool
s_maps (pid_t pid, const char *library)
{
    char path[64];
    snprintf (path, sizeof path, "/proc/%d/maps", (int)pid);
    char *maps = ps_test_slurp (path);
    cr_assert (strstr (maps, "psbroker"), "no maps of psbroker in %s", path);
    bool found = strstr (maps, library) != NULL;
    free (maps);
    return found;
}

//  Start psbroker with args, check what it maps, stop it
static void
s_check_maps (char *const args[], const char *mapped, const char *const unmapped[])
{
    char endpoint[128], out[4096];
    ps_test_child_t broker = ps_test_psbroker (args, endpoint, sizeof endpoint, out, sizeof out);
    //  Its first line comes once ps_broker_new has returned: --metrics
    //  served (or not) by then
    if (mapped)
        cr_assert (s_maps (broker.pid, mapped), "psbroker does not map %s", mapped);
    for (size_t i = 0; unmapped && unmapped[i]; i++)
        cr_assert (!s_maps (broker.pid, unmapped[i]), "psbroker maps %s", unmapped[i]);
    kill (broker.pid, SIGTERM);
    cr_assert_eq (ps_test_wait_pid (broker.pid, 10000), 0, "psbroker did not exit cleanly");
    close (broker.out);
    close (broker.err);
}

Test (psbroker, loads_the_http_server_only_to_serve_metrics, .timeout = 30)
{
    //  Without --metrics: neither libmicrohttpd nor the TLS stack it
    //  brings (2.4 MB resident, and attack surface)
    const char *const http[] = {"libmicrohttpd", "libgnutls", NULL};
    char *plain[] = {"--no-tap", NULL};
    s_check_maps (plain, NULL, http);
    //  With: loaded on demand
    char *metrics[] = {"--no-tap", "--metrics", "127.0.0.1:0", NULL};
    s_check_maps (metrics, "libmicrohttpd", NULL);
}

Test (psbroker, metrics_without_the_http_library_is_a_clear_error, .timeout = 30)
{
    //  A libmicrohttpd.so.12 that is not one, found first (in the test's
    //  own directory): dlopen fails
    char library[512];
    ps_test_path ("libmicrohttpd.so.12", library, sizeof library);
    FILE *file = fopen (library, "w");
    cr_assert (file);
    fputs ("not a library\n", file);
    fclose (file);
    setenv ("LD_LIBRARY_PATH", ps_test_dir (), 1);
    char *args[] = {"--port",   "0",         "--bind",      "127.0.0.1",
                    "--no-tap", "--metrics", "127.0.0.1:0", NULL};
    char err[4096];
    int status = s_run (args, true, "libmicrohttpd12", err, sizeof err);
    unsetenv ("LD_LIBRARY_PATH");
    unlink (library);
    cr_assert_eq (status, 1, "%s", err);
    cr_assert (strstr (err, "psbroker: --metrics needs libmicrohttpd.so.12 (Debian package "
                            "libmicrohttpd12): ") &&
                   strstr (err, library),
               "the problem names the library, its package and dlerror's reason: %s", err);
}
