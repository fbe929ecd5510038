/*  =========================================================================
    pstap - what the broker is doing, live or from a recording

    psbroker publishes one TapRecord per event on an XPUB socket (its tap);
    its INFO reply holds its counters. pstap reads both to answer the
    questions of a training job that goes slowly: which worker is the
    straggler, which keys are hot, who holds the slowest clock, and what
    garbage reaches the broker. Subcommands: watch (one line per record),
    stats (a snapshot of the counters), top (per worker and per key rates),
    clock (the vector clock), record (to a file), read (the same views
    offline) and trace (a timeline for Perfetto, live or offline). docs/pstap.md shows each with
   real output.

    This file is main: the subcommands, their help, and the dispatch. The
    parts, each in its own file by the state it owns:
        pstap_options   the command line, read once, then read-only
        pstap_info      a broker's INFO (jansson), read with fallbacks
        pstap_group     the brokers read: one, a list, or a whole group
        pstap_taps      one SUB socket per broker's tap, and receiving
        pstap_session   the pipeline: decode, drops, pairing, filter, view
        pstap_tally     what stats and top count
        pstap_watch, pstap_stats, pstap_top, pstap_clock, pstap_record,
        pstap_trace     the subcommands
        ps_taprender, ps_tapfilter, ps_tappair, ps_taplog, ps_taptrace
                        records as text and JSON, filters, pairing, the
                        recording format and the Chrome trace, each tested
                        on its own

    One thread. Every wait is bounded: the broker's INFO and the tap's
    handshake by --timeout-ms, the receive loops by a short poll that
    checks for SIGINT and SIGTERM (czmq's zsys_interrupted), so Ctrl-C
    always stops cleanly. Exit codes: 0 done, 1 cannot reach the broker
    or tap (or a damaged recording), 2 bad command line.
    ========================================================================= */

#include "ps_cli.h"
#include "pstap_clock.h"
#include "pstap_info.h"
#include "pstap_options.h"
#include "pstap_record.h"
#include "pstap_stats.h"
#include "pstap_top.h"
#include "pstap_trace.h"
#include "pstap_watch.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;                            //  pstap NAME
    int (*run) (const pstap_options_t *options); //  its main
    unsigned allowed;                            //  PSTAP_O_* it takes
    const char *synopsis;                        //  after "pstap NAME"
    const char *summary;                         //  one line for pstap --help
    const char *details;                         //  its own --help, before the options
} command_t;

static const command_t s_commands[] = {
    {"watch", pstap_watch,
     PSTAP_O_CONNECT | PSTAP_O_FILTER | PSTAP_O_COUNT | PSTAP_O_JSON | PSTAP_O_PAYLOAD,
     "(--broker EP[,EP...] [--member-only] | --tap EP[,EP...]) [-f FILTER] [-c N] [--json]\n"
     "       [--payload]",
     "one line (or JSON object) per record, live",
     "Print the broker's tap records as they happen: one line each, like tcpdump, or one\n"
     "JSON object each with --json (JSON Lines; schema in docs/tap-records.md). Replies\n"
     "are paired with their requests: the text view shows each reply's request age, or\n"
     "[unmatched] when the request came before pstap started. Stops on Ctrl-C.\n"
     "A broker group is watched whole: each line says its broker (b1/3), each JSON\n"
     "object its \"shard\" and \"shards\".\n"},
    {"stats", pstap_stats, PSTAP_O_CONNECT | PSTAP_O_JSON | PSTAP_O_FILTER | PSTAP_O_INTERVAL,
     "(--broker EP[,EP...] [--member-only] [--json] | --tap EP[,EP...] [--interval-ms MS]\n"
     "       [-f FILTER])",
     "one snapshot of the broker's counters",
     "Print the broker's counters from its INFO reply: uptime, workers live and ever\n"
     "seen, messages and bytes by type, queues, clocks, the tap. --json prints the INFO\n"
     "object itself. With --tap alone, the same figures computed from the records of\n"
     "one interval. A broker group: one block (or INFO object, one per line) per broker.\n"},
    {"top", pstap_top,
     PSTAP_O_CONNECT | PSTAP_O_FILTER | PSTAP_O_BATCH | PSTAP_O_ITERATIONS | PSTAP_O_INTERVAL,
     "(--broker EP[,EP...] [--member-only] | --tap EP[,EP...]) [--batch] [-n N]\n"
     "       [--interval-ms MS]",
     "per worker and per key rates, refreshed",
     "Every interval, per worker: requests/s, bytes/s, reply latency p50 and p99, clock,\n"
     "how far ahead of the slowest, requests parked (from INFO with --broker, else\n"
     "unanswered ones seen on the tap); per key: pushes/s, pulls/s, bytes/s, hottest\n"
     "first. Full-screen on a terminal; plain blocks with --batch or into a pipe.\n"
     "A broker group: rates over all its brokers, a worker's lowest clock at any of\n"
     "them and its requests parked at all of them, and one row per broker.\n"},
    {"clock", pstap_clock,
     PSTAP_O_BROKER | PSTAP_O_MEMBER_ONLY | PSTAP_O_TIMEOUT | PSTAP_O_KEYS | PSTAP_O_BATCH |
         PSTAP_O_ITERATIONS | PSTAP_O_INTERVAL,
     "--broker EP[,EP...] [--member-only] [-n N] [--interval-ms MS] [--batch]",
     "the vector clock, refreshed",
     "Every interval, each worker's clock as a bar measured from the slowest, who the\n"
     "slowest is, the requests parked on the staleness bound and how long they have\n"
     "waited, and each worker's clocks per second since the last refresh. Each broker\n"
     "of a group keeps its own clock: one block per broker.\n"},
    {"record", pstap_record,
     PSTAP_O_CONNECT | PSTAP_O_FILTER | PSTAP_O_COUNT | PSTAP_O_PAYLOAD | PSTAP_O_WRITE,
     "(--broker EP[,EP...] [--member-only] | --tap EP[,EP...]) -w FILE [-f FILTER] [-c N]\n"
     "       [--payload]",
     "write records to a file",
     "Write the tap's records to FILE until -c N records or Ctrl-C.\n"
     "The format is in docs/pstap.md; a killed recorder leaves a\n"
     "readable file. A broker group: the records of all its brokers, in one file.\n"},
    {"read", pstap_read,
     PSTAP_O_READ | PSTAP_O_FILTER | PSTAP_O_COUNT | PSTAP_O_JSON | PSTAP_O_VIEW,
     "-r FILE [--json] [-f FILTER] [-c N] [--view watch|stats|top]",
     "the same views from a recording",
     "Show a recording as watch would have (default), or the stats or top of all its\n"
     "records. A torn last record (a killed recorder) is reported and skipped.\n"},
    {"trace", pstap_trace,
     PSTAP_O_CONNECT | PSTAP_O_READ | PSTAP_O_FILTER | PSTAP_O_COUNT | PSTAP_O_DURATION |
         PSTAP_O_WRITE,
     "(--broker EP[,EP...] [--member-only] | --tap EP[,EP...] | -r FILE) -w FILE\n"
     "       [-f FILTER] [-c N] [--duration-ms MS]",
     "a timeline (Chrome trace JSON), live or from a recording",
     "Write a Chrome trace (Trace Event Format JSON) of the tap's records, live until\n"
     "-c N records, --duration-ms MS or Ctrl-C, or of the recording -r FILE. Open it in\n"
     "ui.perfetto.dev or chrome://tracing: one process per broker, one track per worker\n"
     "with a span per request (push, pull, clock, ...) from its receipt to its reply and,\n"
     "inside it, the time parked on the staleness bound or waiting for aggregation; one\n"
     "track for the aggregation thread with its optimizer steps as the requests saw them.\n"
     "The file is valid JSON however the trace ends. See docs/observability.md.\n"},
};
#define NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: pstap COMMAND [options]\n\n"
                  "Watch a psbroker through its tap and its INFO counters.\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf (out, "  %-7s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf (out, "\n--broker on one member of a broker group (psbroker --shards) watches the\n"
                  "whole group once a worker has joined; --broker EP0,EP1,... names them all.\n"
                  "Without --broker (or --tap, or -r FILE), the brokers are those in the\n"
                  "environment variable PSMQ_BROKER, as for psworker; without --curve-secret\n"
                  "and --broker-key, the CURVE keys are those in PSMQ_CURVE_SECRET and\n"
                  "PSMQ_BROKER_KEY (both or neither).\n"
                  "\n'pstap COMMAND --help' describes each; 'pstap --version' shows the\n"
                  "version. Example:\n"
                  "  pstap watch --broker tcp://server:5555 -f 'type=push lat>10ms'\n");
}

static void
s_command_usage (FILE *out, const command_t *command)
{
    fprintf (out, "Usage: pstap %s %s\n\n%s\n", command->name, command->synopsis, command->details);
    pstap_options_help (out, command->allowed);
}

int
main (int argc, char *argv[])
{
    if (argc < 2) {
        s_usage (stderr);
        return 2;
    }
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 ||
        strcmp (argv[1], "help") == 0) {
        s_usage (stdout);
        return 0;
    }
    if (strcmp (argv[1], "--version") == 0 || strcmp (argv[1], "-V") == 0) {
        ps_cli_version ("pstap");
        return 0;
    }
    const command_t *command = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp (argv[1], s_commands[i].name) == 0)
            command = &s_commands[i];
    if (!command) {
        fprintf (stderr,
                 "pstap: unknown command '%s' (watch, stats, top, clock, record, read, "
                 "trace)\n",
                 argv[1]);
        return 2;
    }
    pstap_options_t options;
    int rc = pstap_options_parse (&options, command->name, command->allowed, argc - 1, argv + 1);
    if (rc == -1) {
        s_command_usage (stdout, command);
        return 0;
    }
    if (rc)
        return rc;
    if (pstap_info_set_keys (command->name, options.curve_secret, options.broker_key,
                             options.keys_from_environment))
        return 2;

    //  czmq's handler sets zsys_interrupted on SIGINT and SIGTERM, which
    //  every loop checks at least every PSTAP_POLL_MS
    zsys_init ();
    //  A closed pipe (pstap watch | head) ends the output, not the process
    signal (SIGPIPE, SIG_IGN);
    //  Records are read by people and by tests through pipes: a line each
    setvbuf (stdout, NULL, _IOLBF, 0);
    return command->run (&options);
}
