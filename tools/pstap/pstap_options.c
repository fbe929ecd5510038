/*  =========================================================================
    pstap_options - pstap's command line

    getopt_long reads every option of every subcommand, and a table of
    bits says which of them the subcommand at hand takes, so that one
    parser serves all six and "--tap does not apply here" is said the same
    way for each. Values are checked by common/ps_cli, as in every psmq
    program: numbers within their bounds, and words that are not the next
    option (getopt takes "--broker -n" as the broker "-n").

    A subcommand that reads a live broker, given neither --broker nor --tap
    (nor -r), takes the broker from PSMQ_BROKER as psworker does; given
    neither --curve-secret nor --broker-key (nor -r), its CURVE keys from
    PSMQ_CURVE_SECRET and PSMQ_BROKER_KEY, both or neither. All are read
    by ps_worker_options_from_environment, so that the two programs agree
    on what an unset or empty variable is, and a shell set up for a job's
    workers watches that job with a bare pstap command.
    ========================================================================= */

#include "pstap_options.h"
#include "ps_cli.h"
#include "ps_limits.h"
#include "ps_worker.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

//  Default bound on reaching the broker (INFO) and the tap (handshake)
#define DEFAULT_TIMEOUT_MS 3000
//  Default refresh of top and clock
#define DEFAULT_INTERVAL_MS 1000

void
pstap_options_help (FILE *out, unsigned allowed)
{
    static const struct {
        unsigned bit;
        const char *text;
    } lines[] = {
        {PSTAP_O_BROKER,
         "  -b, --broker EP[,EP] the broker, or its group's members; taps found through INFO;\n"
         "                       one member of a group stands for the whole group"},
        {PSTAP_O_MEMBER_ONLY,
         "      --member-only    only the broker named, not the rest of its group"},
        {PSTAP_O_TAP, "  -t, --tap EP[,EP]    the taps' endpoints (psbroker --tap)"},
        {PSTAP_O_TIMEOUT,
         "      --timeout-ms MS  give up reaching each broker or tap after MS (3000)"},
        {PSTAP_O_FILTER, "  -f, --filter EXPR    only records matching EXPR (see below)"},
        {PSTAP_O_COUNT, "  -c, --count N        stop after N records"},
        {PSTAP_O_JSON, "      --json           JSON (one object per record for watch and read)"},
        {PSTAP_O_PAYLOAD,
         "      --payload        tensor frames too (broker started with --tap-payload)"},
        {PSTAP_O_BATCH,
         "      --batch          plain text blocks, no screen control (for scripts)"},
        {PSTAP_O_ITERATIONS, "  -n, --iterations N   stop after N refreshes"},
        {PSTAP_O_INTERVAL, "      --interval-ms MS refresh every MS (1000)"},
        {PSTAP_O_DURATION, "      --duration-ms MS stop after MS"},
        {PSTAP_O_WRITE, "  -w, --write FILE     the file to write (trace: '-' for stdout)"},
        {PSTAP_O_READ, "  -r, --read FILE      the recording to read ('-' for stdin)"},
        {PSTAP_O_VIEW, "      --view VIEW      watch (default), stats or top"},
        {PSTAP_O_KEYS,
         "      --curve-secret FILE  this reader's CURVE secret key (pskeys new NAME; the\n"
         "                       broker's --allow-keys folder holds NAME.key)\n"
         "      --broker-key FILE the broker's public key file (or its 40 Z85 characters)\n"
         "                       (both left out: PSMQ_CURVE_SECRET's and PSMQ_BROKER_KEY's,\n"
         "                       both or neither, as for psworker)"},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!(allowed & lines[i].bit))
            continue;
        fprintf (out, "%s\n", lines[i].text);
        if (lines[i].bit == PSTAP_O_BROKER)
            fprintf (out,
                     "                       (left out%s: PSMQ_BROKER's\n"
                     "                       endpoints, as for psworker)\n",
                     (allowed & PSTAP_O_READ)  ? ", with no --tap or -r"
                     : (allowed & PSTAP_O_TAP) ? ", with no --tap"
                                               : "");
    }
    fprintf (out, "  -h, --help           show this help\n");
    if (allowed & PSTAP_O_FILTER)
        fprintf (out, "\nFilter terms, space-separated, all must hold:\n"
                      "  kind=req,rep,conn,disc,evict,rej,clock   type=push,pull,clock,init,...\n"
                      "  worker=0,2   key=NAME,...   bytes>1M   bytes<4K   lat>10ms   status=err\n"
                      "  shard=1,2 (brokers of a group)\n");
}

//  The settings psworker would take from the environment, of those in
//  wanted (PS_WORKER_GIVEN_* bits; every other setting counted as given,
//  so nothing else is read or checked): a field is NULL when its variable
//  is unset or empty. Strings and paths cannot be bad values there, so
//  this cannot fail.
static ps_worker_options_t
s_from_environment (unsigned wanted)
{
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    unsigned all = PS_WORKER_GIVEN_BROKER | PS_WORKER_GIVEN_RANK | PS_WORKER_GIVEN_WORLD_SIZE |
                   PS_WORKER_GIVEN_CURVE_SECRET | PS_WORKER_GIVEN_BROKER_KEY |
                   PS_WORKER_GIVEN_WAIT_FOR_BROKER;
    if (ps_worker_options_from_environment (&options, all & ~wanted, NULL, NULL, NULL))
        ps_worker_options_init (&options);
    return options;
}

//  Neither key on the command line, a live broker to reach: both from
//  PSMQ_CURVE_SECRET and PSMQ_BROKER_KEY, or neither. 0, or 2 when only
//  one of them is set (said on stderr).
static int
s_keys_from_environment (pstap_options_t *self)
{
    ps_worker_options_t found =
        s_from_environment (PS_WORKER_GIVEN_CURVE_SECRET | PS_WORKER_GIVEN_BROKER_KEY);
    if (!found.curve_secret != !found.broker_key) {
        fprintf (stderr,
                 "pstap %s: %s is set but %s is not: CURVE needs both (or --curve-secret "
                 "FILE and --broker-key FILE)\n",
                 self->command, found.curve_secret ? "PSMQ_CURVE_SECRET" : "PSMQ_BROKER_KEY",
                 found.curve_secret ? "PSMQ_BROKER_KEY" : "PSMQ_CURVE_SECRET");
        return 2;
    }
    self->curve_secret = found.curve_secret;
    self->broker_key = found.broker_key;
    self->keys_from_environment = found.curve_secret != NULL;
    return 0;
}

enum {
    OPT_TIMEOUT = 256,
    OPT_JSON,
    OPT_PAYLOAD,
    OPT_BATCH,
    OPT_INTERVAL,
    OPT_VIEW,
    OPT_MEMBER_ONLY,
    OPT_CURVE_SECRET,
    OPT_BROKER_KEY,
    OPT_DURATION
};

int
pstap_options_parse (pstap_options_t *self, const char *command, unsigned allowed, int argc,
                     char *argv[])
{
    static const struct option long_options[] = {
        {"broker", required_argument, 0, 'b'},
        {"tap", required_argument, 0, 't'},
        {"timeout-ms", required_argument, 0, OPT_TIMEOUT},
        {"filter", required_argument, 0, 'f'},
        {"count", required_argument, 0, 'c'},
        {"json", no_argument, 0, OPT_JSON},
        {"payload", no_argument, 0, OPT_PAYLOAD},
        {"batch", no_argument, 0, OPT_BATCH},
        {"iterations", required_argument, 0, 'n'},
        {"interval-ms", required_argument, 0, OPT_INTERVAL},
        {"write", required_argument, 0, 'w'},
        {"read", required_argument, 0, 'r'},
        {"view", required_argument, 0, OPT_VIEW},
        {"member-only", no_argument, 0, OPT_MEMBER_ONLY},
        {"curve-secret", required_argument, 0, OPT_CURVE_SECRET},
        {"broker-key", required_argument, 0, OPT_BROKER_KEY},
        {"duration-ms", required_argument, 0, OPT_DURATION},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const struct {
        int opt;
        unsigned bit;
        const char *name;
    } bits[] = {{'b', PSTAP_O_BROKER, "--broker"},
                {'t', PSTAP_O_TAP, "--tap"},
                {OPT_TIMEOUT, PSTAP_O_TIMEOUT, "--timeout-ms"},
                {'f', PSTAP_O_FILTER, "--filter"},
                {'c', PSTAP_O_COUNT, "--count"},
                {OPT_JSON, PSTAP_O_JSON, "--json"},
                {OPT_PAYLOAD, PSTAP_O_PAYLOAD, "--payload"},
                {OPT_BATCH, PSTAP_O_BATCH, "--batch"},
                {'n', PSTAP_O_ITERATIONS, "--iterations"},
                {OPT_INTERVAL, PSTAP_O_INTERVAL, "--interval-ms"},
                {'w', PSTAP_O_WRITE, "--write"},
                {'r', PSTAP_O_READ, "--read"},
                {OPT_VIEW, PSTAP_O_VIEW, "--view"},
                {OPT_MEMBER_ONLY, PSTAP_O_MEMBER_ONLY, "--member-only"},
                {OPT_CURVE_SECRET, PSTAP_O_KEYS, "--curve-secret"},
                {OPT_BROKER_KEY, PSTAP_O_KEYS, "--broker-key"},
                {OPT_DURATION, PSTAP_O_DURATION, "--duration-ms"}};
    //  Options whose value is a word (a path, an endpoint, an expression)
    const struct {
        int opt;
        const char *name;
        const char **value;
    } words[] = {{'b', "--broker", &self->broker},
                 {'t', "--tap", &self->tap},
                 {'f', "--filter", &self->filter},
                 {'w', "--write", &self->write_path},
                 {'r', "--read", &self->read_path},
                 {OPT_CURVE_SECRET, "--curve-secret", &self->curve_secret},
                 {OPT_BROKER_KEY, "--broker-key", &self->broker_key}};
    const char *name = command;
    *self = (pstap_options_t){.command = name,
                              .timeout_ms = DEFAULT_TIMEOUT_MS,
                              .interval_ms = DEFAULT_INTERVAL_MS,
                              .view = PSTAP_VIEW_WATCH};
    opterr = 0;
    optind = 1;
    //  "pstap watch": what messages from the shared checks start with
    char program[32];
    snprintf (program, sizeof program, "pstap %s", name);
    int opt;
    long number = 0;
    while ((opt = getopt_long (argc, argv, ":b:t:f:c:n:w:r:h", long_options, NULL)) != -1) {
        if (opt == 'h')
            return -1;
        if (opt == '?' || opt == ':') {
            char short_option[3] = {'-', (char)optopt, 0};
            bool is_short = opt == '?' && optopt > 0 && optopt < 128;
            const char *what = is_short ? short_option : argv[optind - 1];
            fprintf (stderr, "pstap %s: %s '%s' (see pstap %s --help)\n", name,
                     opt == ':' ? "missing value for" : "unknown option", what, name);
            return 2;
        }
        for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
            if (bits[i].opt == opt && !(allowed & bits[i].bit)) {
                fprintf (stderr, "pstap %s: %s does not apply here (see pstap %s --help)\n", name,
                         bits[i].name, name);
                return 2;
            }
        int rc = 0;
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (words[i].opt == opt) {
                rc = ps_cli_word (program, words[i].name, optarg);
                *words[i].value = optarg;
            }
        switch (opt) {
        case OPT_JSON: self->json = true; break;
        case OPT_PAYLOAD: self->payload = true; break;
        case OPT_BATCH: self->batch = true; break;
        case OPT_MEMBER_ONLY: self->member_only = true; break;
        case OPT_TIMEOUT:
            rc = ps_cli_long (program, "--timeout-ms", optarg, 1, PS_MAX_TIMEOUT_MS, &number);
            self->timeout_ms = (int)number;
            break;
        case OPT_INTERVAL:
            rc = ps_cli_long (program, "--interval-ms", optarg, 10, PS_MAX_TIMEOUT_MS, &number);
            self->interval_ms = (int)number;
            break;
        case OPT_DURATION:
            rc = ps_cli_long (program, "--duration-ms", optarg, 1, INT_MAX, &number);
            self->duration_ms = (int)number;
            break;
        case 'c':
            rc = ps_cli_long (program, "--count", optarg, 1, LONG_MAX, &number);
            self->count = (uint64_t)number;
            break;
        case 'n':
            rc = ps_cli_long (program, "--iterations", optarg, 1, LONG_MAX, &number);
            self->iterations = (uint64_t)number;
            break;
        case OPT_VIEW:
            if (strcmp (optarg, "watch") == 0)
                self->view = PSTAP_VIEW_WATCH;
            else if (strcmp (optarg, "stats") == 0)
                self->view = PSTAP_VIEW_STATS;
            else if (strcmp (optarg, "top") == 0)
                self->view = PSTAP_VIEW_TOP;
            else {
                fprintf (stderr, "pstap %s: --view '%s' is not one of watch, stats, top\n", name,
                         optarg);
                rc = -1;
            }
            break;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf (stderr, "pstap %s: unexpected argument '%s' (see pstap %s --help)\n", name,
                 argv[optind], name);
        return 2;
    }
    //  Nowhere named on the command line: PSMQ_BROKER, named as such when
    //  its value is bad
    const char *broker_source = "--broker";
    if ((allowed & PSTAP_O_BROKER) && !self->broker && !self->tap && !self->read_path) {
        self->broker = s_from_environment (PS_WORKER_GIVEN_BROKER).broker;
        if (self->broker)
            broker_source = "PSMQ_BROKER";
    }
    //  A subcommand that reads a live broker or a recording (trace) takes
    //  either, not both
    bool live_or_read = (allowed & PSTAP_O_BROKER) && (allowed & PSTAP_O_READ);
    if (live_or_read && self->read_path && (self->broker || self->tap)) {
        fprintf (stderr, "pstap %s: give --broker, --tap or -r FILE, only one of them\n", name);
        return 2;
    }
    if (live_or_read && !self->read_path && !self->broker && !self->tap) {
        fprintf (stderr,
                 "pstap %s: --broker (or PSMQ_BROKER), --tap or -r FILE is required (see pstap "
                 "%s --help)\n",
                 name, name);
        return 2;
    }
    if (live_or_read && self->read_path && self->duration_ms) {
        fprintf (stderr, "pstap %s: --duration-ms applies to a live broker, not to -r FILE\n",
                 name);
        return 2;
    }
    if (!live_or_read && (allowed & PSTAP_O_BROKER) && !self->broker && !self->tap) {
        fprintf (stderr,
                 "pstap %s: --broker (or PSMQ_BROKER)%s is required (see pstap %s --help)\n", name,
                 allowed & PSTAP_O_TAP ? " or --tap" : "", name);
        return 2;
    }
    if (self->broker && self->tap) {
        fprintf (stderr, "pstap %s: give --broker or --tap, not both\n", name);
        return 2;
    }
    if (self->member_only && !self->broker) {
        fprintf (stderr, "pstap %s: --member-only goes with --broker (a tap is one broker's)\n",
                 name);
        return 2;
    }
    if ((self->broker && ps_cli_endpoints (program, broker_source, self->broker)) ||
        (self->tap && ps_cli_endpoints (program, "--tap", self->tap)))
        return 2;
    if (!self->curve_secret != !self->broker_key) {
        fprintf (stderr, "pstap %s: CURVE needs both --curve-secret FILE and --broker-key FILE\n",
                 name);
        return 2;
    }
    //  Neither key on the command line: the environment's, as psworker
    //  takes them, where a broker is reached (not for a recording)
    bool reaches_broker = self->broker || self->tap;
    if ((allowed & PSTAP_O_KEYS) && reaches_broker && !self->curve_secret &&
        s_keys_from_environment (self))
        return 2;
    if ((allowed & PSTAP_O_WRITE) && !self->write_path) {
        fprintf (stderr, "pstap %s: -w FILE is required\n", name);
        return 2;
    }
    if (!live_or_read && (allowed & PSTAP_O_READ) && !self->read_path) {
        fprintf (stderr, "pstap %s: -r FILE is required\n", name);
        return 2;
    }
    return 0;
}
