/*  =========================================================================
    psbroker - the psmq parameter server

    A thin main around ps_broker: parse the command line, start the broker,
    print the endpoint it listens on, wait for SIGINT or SIGTERM, stop
    cleanly (the broker logs a summary of what it served).
    ========================================================================= */

#include "ps_broker.h"
#include "ps_cli.h"
#include "ps_limits.h"
#include "ps_log.h"
#include "ps_malloc.h"
#include "ps_metrics.h"
#include "ps_resources.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal (int signal_number)
{
    s_stop = 1;
}

static void
s_usage (FILE *out)
{
    char store[32], most[32], unread[32], budget[32], rate[32];
    fprintf (out,
             "Usage: psbroker --port N [options]\n"
             "\n"
             "Serve a psmq parameter store and vector clock on a ZeroMQ ROUTER socket.\n"
             "\n"
             "  -p, --port N           TCP port to listen on (0 picks a free one)\n"
             "  -b, --bind ADDR        address to bind (default *, all interfaces)\n"
             "  -e, --endpoint EP      bind this ZeroMQ endpoint instead (tcp://, ipc://)\n"
             "  -w, --workers N        number of workers in the job (default 1)\n"
             "  -s, --staleness S      0 = BSP (default), N > 0 = SSP, -1 = ASP\n"
             "      --shard I          this broker's place in a group, 0 .. G-1\n"
             "      --shards G         brokers in the group (default 1); workers list\n"
             "                         the group's endpoints in shard order\n"
             "  -o, --optimizer NAME   update rule of the keys whose INIT names none:\n"
             "                         sgd (default), momentum, adagrad, adam\n"
             "  -l, --lr LR            their learning rate (default %g)\n"
             "      --momentum M       momentum (default %g)\n"
             "      --beta1 B          Adam beta1 (default %g)\n"
             "      --beta2 B          Adam beta2 (default %g)\n"
             "      --eps E            Adagrad/Adam epsilon (default %g)\n"
             "      --heartbeat-ms MS  heartbeat interval told to workers (default %d)\n"
             "      --timeout-ms MS    evict a worker silent this long (default %d); libzmq\n"
             "                         also closes a connection that answers no ping as\n"
             "                         long, and a worker whose connection closes is\n"
             "                         evicted at once\n"
             "      --progress-deadline S  evict a worker that holds the others back\n"
             "                         without finishing a clock for S seconds (0: never);\n"
             "                         default auto: the larger of %d s and %d x the\n"
             "                         longest clock the job has taken\n"
             "      --accept-nonfinite apply gradients holding NaN or Inf (by default such\n"
             "                         a push is not applied and its worker's next clock\n"
             "                         is answered with a non-finite error)\n"
             "  -t, --tap EP           publish tap records here for pstap (default: a private\n"
             "                         ipc:// endpoint named after the port and pid; tcp://\n"
             "                         allowed)\n"
             "      --no-tap           publish no tap records\n"
             "      --tap-payload      let tap readers that ask for it see tensor frames\n"
             "      --checkpoint DIR   write checkpoints into DIR (made, mode 0700, if\n"
             "                         missing) and, at start, restore the newest one there\n"
             "      --checkpoint-seconds S  one at least every S seconds (default %d; 0: none;\n"
             "                         not in a group)\n"
             "      --checkpoint-clocks N   one every N clocks of the job (its slowest\n"
             "                         worker's) too, whichever comes first; a restart\n"
             "                         then makes no worker redo more than N clocks: a\n"
             "                         worker N clocks past the newest checkpoint waits\n"
             "                         for the next; in a group required, and the only\n"
             "                         schedule: each member cuts when the job's clock is\n"
             "                         a multiple of N\n"
             "      --checkpoint-rate SIZE  bytes a second the writer may put on disk\n"
             "                         (default %s; K, M, G suffixes; 0: as fast as the\n"
             "                         disk goes): a slower write disturbs serving less;\n"
             "                         a worker waiting for the write, or a stop, lifts it\n"
             "      --max-memory SIZE  bytes the store may hold: parameters, optimizer state\n"
             "                         (momentum 1, Adam 2 more arrays per key) and BSP\n"
             "                         sums; K, M, G suffixes, or a share of the machine's\n"
             "                         memory like 50%%. Default %d%% of it (%s here), at\n"
             "                         most %s. An INIT past it is refused (ERR_FULL)\n"
             "      --max-unread SIZE  bytes of pull replies one connection may leave\n"
             "                         unread before its PULLs are refused (ERR_FULL),\n"
             "                         and of its pushes that may wait to be applied\n"
             "                         before its PUSHes are; default the larger of %s\n"
             "                         and twice the model\n"
             "      --push-budget SIZE bytes of pushes waiting for the aggregation\n"
             "                         thread or granted, all workers together; past\n"
             "                         it the next parts of pushes (more than 1 MB\n"
             "                         comes in 1 MB parts) wait until it catches up.\n"
             "                         Default %s\n"
             "      --max-connections N  connections at once; past it those that never\n"
             "                         said HELLO are closed, silent and idle ones first.\n"
             "                         Default: the open-files limit (raised to the hard\n"
             "                         limit at start) less %d. Unregistered connections\n"
             "                         idle %d s (or --timeout-ms if longer) are closed\n"
             "      --curve-secret FILE  the broker's secret key (NAME.key_secret, made by\n"
             "                         pskeys new NAME): CURVE encryption and\n"
             "                         authentication on the worker port and the tap\n"
             "      --allow-keys DIR   with --curve-secret: admit only clients whose public\n"
             "                         certificate (NAME.key) is in DIR; a file added later\n"
             "                         is admitted at the client's next connection\n"
             "      --insecure-allow-any-key  with --curve-secret, instead of --allow-keys:\n"
             "                         encrypt, but admit anybody who knows the broker's\n"
             "                         public key\n"
             "      --allow-from ADDR[,ADDR...]  numeric IP addresses admitted besides\n"
             "                         loopback (without keys: protected mode; with keys:\n"
             "                         the key must be allowed too)\n"
             "      --insecure-allow-any  without keys, admit any address: anybody who\n"
             "                         reaches the port may read and change the model\n"
             "      --metrics HOST:PORT  serve Prometheus metrics over HTTP at\n"
             "                         http://HOST:PORT/metrics (port 0: a free one, printed\n"
             "                         at start; INFO \"metrics\" has it too): clocks and lag\n"
             "                         per worker, requests and bytes by type, latency\n"
             "                         histograms, refusals, store, checkpoints, the tap\n"
             "                         (docs/observability.md). Default off. No\n"
             "                         authentication: bind it to loopback or a network\n"
             "                         only the monitoring system reaches\n"
             "  -v, --verbose          log every clock movement\n"
             "  -q, --quiet            log warnings and errors only\n"
             "      --log-format F     text (default: an ISO 8601 time, the level, the\n"
             "                         program, the message) or json (one object a line)\n"
             "  -h, --help             show this help\n"
             "  -V, --version          show the version\n"
             "\n"
             "Stops cleanly on SIGINT or SIGTERM. Example:\n"
             "  psbroker --port 5555 --workers 4 --staleness 0 --optimizer adam --lr 0.001\n"
             "A group of two (see docs/groups.md):\n"
             "  psbroker --port 5555 --workers 4 --shard 0 --shards 2   # on host a\n"
             "  psbroker --port 5555 --workers 4 --shard 1 --shards 2   # on host b\n"
             "  psworker --broker tcp://a:5555,tcp://b:5555 ...\n"
             "\n"
             "Checkpoints. A checkpoint holds the keys (values, optimizer settings and\n"
             "state, steps, versions), every worker's clock and the settings a restart must\n"
             "share (--workers, --staleness, --shard, --shards): a broker started on a\n"
             "directory whose newest checkpoint has other settings refuses to start. Files\n"
             "are DIR/checkpoint-NNNNNN.psmq, numbered on across restarts, the newest %d\n"
             "kept; a directory serves one broker at a time. Each is written by a thread\n"
             "of its own while the broker serves, to a .tmp name, fsynced, renamed and the\n"
             "directory fsynced, so a broker killed at any moment leaves only whole files.\n"
             "A file holds a format version and ends with a CRC-32 of all its bytes (the\n"
             "layout is in broker/ps_checkpoint.h); one that is torn or corrupt is refused\n"
             "at start with a warning, renamed NAME.refused, and the one before it\n"
             "restored. After a restore each worker's HELLO gets the clock it must redo\n"
             "from (BSP: the job's clock, whose gradients were not saved; SSP and ASP: its\n"
             "own, past a push already saved). On SIGINT or SIGTERM the broker writes a\n"
             "last checkpoint before it exits. Example:\n"
             "  psbroker --port 5555 --workers 4 --checkpoint /var/lib/psmq \\\n"
             "      --checkpoint-clocks 100\n"
             "\n"
             "Checkpoints of a group. Give every member --checkpoint (its own directory)\n"
             "and the same --checkpoint-clocks N: each cuts when the job's clock reaches a\n"
             "multiple of N, every worker redoing from that clock (under SSP a fast\n"
             "worker's pushes past it are then applied twice), and none at stop. A member\n"
             "restarted with its command restores its newest checkpoint, of clock C; the\n"
             "workers' library then asks the other members to roll back to their own\n"
             "checkpoint of clock C (they log \"rolled back to checkpoint FILE (clock C) to\n"
             "match the group\", forget every worker, and rename their newer checkpoints\n"
             "NAME.discarded), so that no pull mixes clocks, and the job redoes from C.\n"
             "A member without a checkpoint of C refuses, and the workers stop with its\n"
             "reason (see docs/groups.md). Example, on hosts a and b:\n"
             "  psbroker --port 5555 --workers 4 --shard 0 --shards 2 \\\n"
             "      --checkpoint /var/lib/psmq --checkpoint-clocks 100\n"
             "\n"
             "Who may connect (docs/security.md). Without keys the broker is in protected\n"
             "mode: its tcp:// endpoints (the worker port, a tcp:// tap) admit peers from\n"
             "127.0.0.1 and ::1 only, and the --allow-from addresses; others are refused,\n"
             "logged and counted (INFO \"auth\"). With keys every connection is encrypted\n"
             "and must prove an allowed key. --tap-payload needs keys, or a tap on ipc://\n"
             "or a loopback address. Example:\n"
             "  pskeys new broker; pskeys new worker --dir clients\n"
             "  psbroker --port 5555 --workers 4 --curve-secret broker.key_secret \\\n"
             "      --allow-keys clients\n"
             "  psworker --broker tcp://host:5555 --curve-secret clients/worker.key_secret \\\n"
             "      --broker-key broker.key ...\n",
             PS_DEFAULT_LR, PS_DEFAULT_MOMENTUM, PS_DEFAULT_BETA1, PS_DEFAULT_BETA2, PS_DEFAULT_EPS,
             PS_DEFAULT_HEARTBEAT_MS, PS_DEFAULT_TIMEOUT_MS, PS_DEFAULT_PROGRESS_FLOOR_MS / 1000,
             PS_PROGRESS_FACTOR, PS_DEFAULT_CHECKPOINT_SECONDS,
             ps_cli_size_name (PS_DEFAULT_CHECKPOINT_RATE, rate, sizeof rate),
             PS_DEFAULT_STORE_PERCENT,
             ps_resources_bytes (ps_resources_default_store (), store, sizeof store),
             ps_resources_bytes (PS_MAX_STORE_BYTES, most, sizeof most),
             ps_resources_bytes (PS_DEFAULT_MAX_UNREAD, unread, sizeof unread),
             ps_resources_bytes (PS_DEFAULT_PUSH_BUDGET, budget, sizeof budget), PS_FD_RESERVE,
             PS_UNREGISTERED_IDLE_MS / 1000, PS_CHECKPOINT_KEEP);
}

//  --log-format: text or json
static int
s_parse_log_format (const char *text)
{
    if (strcmp (text, "text") == 0 || strcmp (text, "json") == 0) {
        ps_log_set_format (strcmp (text, "json") == 0 ? PS_LOG_JSON : PS_LOG_TEXT);
        return 0;
    }
    fprintf (stderr, "psbroker: --log-format '%s' must be text or json\n", text);
    return -1;
}

//  --checkpoint-rate: 0, or a size (K, M, G) a second
static int
s_parse_rate (const char *text, uint64_t *rate)
{
    if (strcmp (text, "0") == 0) {
        *rate = 0;
        return 0;
    }
    size_t bytes;
    if (ps_cli_size ("psbroker", "--checkpoint-rate", text, PS_MIN_CHECKPOINT_RATE,
                     PS_MAX_CHECKPOINT_RATE, &bytes))
        return -1;
    *rate = bytes;
    return 0;
}

//  --max-memory: a size (K, M, G) or a share of the machine's memory
//  ("50%"), from PS_MIN_STORE_BYTES to PS_MAX_STORE_BYTES
static int
s_parse_memory (const char *text, uint64_t *bytes)
{
    size_t length = strlen (text);
    if (length > 1 && text[length - 1] == '%') {
        char number[32];
        double percent;
        snprintf (number, sizeof number, "%.*s", (int)(length - 1), text);
        if (length - 1 >= sizeof number ||
            ps_cli_double ("psbroker", "--max-memory", number, 0.01, 100, &percent))
            return -1;
        *bytes = ps_resources_share (percent);
        if (*bytes < PS_MIN_STORE_BYTES) {
            fprintf (stderr,
                     "psbroker: --max-memory '%s': the machine's memory is unknown, or "
                     "that share of it is below 1M; give a size\n",
                     text);
            return -1;
        }
        return 0;
    }
    size_t size;
    if (ps_cli_size ("psbroker", "--max-memory", text, PS_MIN_STORE_BYTES, PS_MAX_STORE_BYTES,
                     &size))
        return -1;
    *bytes = size;
    return 0;
}

//  --progress-deadline: "auto", or seconds (0: off) into milliseconds
static int
s_parse_progress (const char *text, int64_t *deadline_ms)
{
    if (streq (text, "auto")) {
        *deadline_ms = PS_PROGRESS_AUTO;
        return 0;
    }
    double seconds;
    if (ps_cli_double ("psbroker", "--progress-deadline", text, 0,
                       PS_MAX_PROGRESS_DEADLINE_MS / 1000.0, &seconds))
        return -1;
    *deadline_ms = (int64_t)(seconds * 1000 + 0.5);
    if (seconds > 0 && *deadline_ms == 0) {
        fprintf (stderr, "psbroker: --progress-deadline '%s' is below a millisecond\n", text);
        return -1;
    }
    return 0;
}

//  An optimizer setting, by the rules the broker applies to its whole
//  configuration (ps_optim_config_check: a rate finite and > 0, a decay in
//  [0, 1)), checked here so that a bad value is named by its flag. The
//  float it becomes is checked too: 1e-50 is 0 and 0.99999999 is 1 there.
static int
s_parse_setting (const char *option, const char *text, bool decay, float *value)
{
    double parsed;
    int rc = decay ? ps_cli_range ("psbroker", option, text, 0, false, 1, true, &parsed)
                   : ps_cli_range ("psbroker", option, text, 0, true, 1e30, false, &parsed);
    if (rc)
        return -1;
    *value = (float)parsed;
    if (decay ? *value >= 1 : *value <= 0) {
        fprintf (stderr, "psbroker: %s '%s' is %g in single precision, %s\n", option, text,
                 (double)*value, decay ? "which is not below 1" : "which is not above 0");
        return -1;
    }
    return 0;
}

//  --checkpoint-seconds: 0 (no timer), or a number of seconds in the
//  broker's range (fractions allowed)
static int
s_parse_interval (const char *text, double *seconds)
{
    double parsed;
    if (ps_cli_double ("psbroker", "--checkpoint-seconds", text, 0, PS_MAX_CHECKPOINT_SECONDS,
                       &parsed))
        return -1;
    if (parsed != 0 && parsed < PS_MIN_CHECKPOINT_SECONDS) {
        fprintf (stderr, "psbroker: --checkpoint-seconds '%s' must be 0 (none) or at least %g\n",
                 text, PS_MIN_CHECKPOINT_SECONDS);
        return -1;
    }
    *seconds = parsed;
    return 0;
}

enum {
    OPT_MOMENTUM = 256,
    OPT_BETA1,
    OPT_BETA2,
    OPT_EPS,
    OPT_HEARTBEAT,
    OPT_TIMEOUT,
    OPT_NO_TAP,
    OPT_TAP_PAYLOAD,
    OPT_SHARD,
    OPT_SHARDS,
    OPT_ACCEPT_NONFINITE,
    OPT_PROGRESS,
    OPT_CHECKPOINT,
    OPT_CHECKPOINT_SECONDS,
    OPT_CHECKPOINT_CLOCKS,
    OPT_CHECKPOINT_RATE,
    OPT_MAX_MEMORY,
    OPT_MAX_UNREAD,
    OPT_PUSH_BUDGET,
    OPT_MAX_CONNECTIONS,
    //  Authentication (ps_auth.h)
    OPT_CURVE_SECRET,
    OPT_ALLOW_KEYS,
    OPT_ALLOW_ANY_KEY,
    OPT_ALLOW_FROM,
    OPT_INSECURE_ALLOW_ANY,
    OPT_METRICS,
    OPT_LOG_FORMAT
};

int
main (int argc, char *argv[])
{
    static const struct option options[] = {
        {"port", required_argument, 0, 'p'},
        {"bind", required_argument, 0, 'b'},
        {"endpoint", required_argument, 0, 'e'},
        {"workers", required_argument, 0, 'w'},
        {"staleness", required_argument, 0, 's'},
        {"optimizer", required_argument, 0, 'o'},
        {"lr", required_argument, 0, 'l'},
        {"momentum", required_argument, 0, OPT_MOMENTUM},
        {"beta1", required_argument, 0, OPT_BETA1},
        {"beta2", required_argument, 0, OPT_BETA2},
        {"eps", required_argument, 0, OPT_EPS},
        {"heartbeat-ms", required_argument, 0, OPT_HEARTBEAT},
        {"timeout-ms", required_argument, 0, OPT_TIMEOUT},
        {"progress-deadline", required_argument, 0, OPT_PROGRESS},
        {"tap", required_argument, 0, 't'},
        {"no-tap", no_argument, 0, OPT_NO_TAP},
        {"tap-payload", no_argument, 0, OPT_TAP_PAYLOAD},
        {"shard", required_argument, 0, OPT_SHARD},
        {"shards", required_argument, 0, OPT_SHARDS},
        {"accept-nonfinite", no_argument, 0, OPT_ACCEPT_NONFINITE},
        {"checkpoint", required_argument, 0, OPT_CHECKPOINT},
        {"checkpoint-seconds", required_argument, 0, OPT_CHECKPOINT_SECONDS},
        {"checkpoint-clocks", required_argument, 0, OPT_CHECKPOINT_CLOCKS},
        {"checkpoint-rate", required_argument, 0, OPT_CHECKPOINT_RATE},
        {"max-memory", required_argument, 0, OPT_MAX_MEMORY},
        {"max-unread", required_argument, 0, OPT_MAX_UNREAD},
        {"push-budget", required_argument, 0, OPT_PUSH_BUDGET},
        {"max-connections", required_argument, 0, OPT_MAX_CONNECTIONS},
        {"curve-secret", required_argument, 0, OPT_CURVE_SECRET},
        {"allow-keys", required_argument, 0, OPT_ALLOW_KEYS},
        {"insecure-allow-any-key", no_argument, 0, OPT_ALLOW_ANY_KEY},
        {"allow-from", required_argument, 0, OPT_ALLOW_FROM},
        {"insecure-allow-any", no_argument, 0, OPT_INSECURE_ALLOW_ANY},
        {"metrics", required_argument, 0, OPT_METRICS},
        {"verbose", no_argument, 0, 'v'},
        {"quiet", no_argument, 0, 'q'},
        {"log-format", required_argument, 0, OPT_LOG_FORMAT},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    long port = -1;
    long number = 0;
    const char *bind_address = "*";
    const char *endpoint = NULL;
    bool timer_given = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "p:b:e:w:s:o:l:t:vqhV", options, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'p': rc = ps_cli_long ("psbroker", "--port", optarg, 0, 65535, &port); break;
        case 'b':
            rc = ps_cli_word ("psbroker", "--bind", optarg);
            bind_address = optarg;
            break;
        case 'e':
            rc = ps_cli_word ("psbroker", "--endpoint", optarg);
            endpoint = optarg;
            break;
        case 'w':
            rc = ps_cli_long ("psbroker", "--workers", optarg, 1, PS_MAX_WORKERS, &number);
            config.workers = (uint32_t)number;
            break;
        case 's':
            rc = ps_cli_long ("psbroker", "--staleness", optarg, -1, PS_MAX_STALENESS, &number);
            config.staleness = (int32_t)number;
            break;
        case 'o':
            if (ps_optim_kind_parse (optarg, &config.optim.kind)) {
                fprintf (stderr,
                         "psbroker: --optimizer '%s' is not one of sgd, momentum, adagrad, "
                         "adam\n",
                         optarg);
                rc = -1;
            }
            break;
        case 'l': rc = s_parse_setting ("--lr", optarg, false, &config.optim.lr); break;
        case OPT_MOMENTUM:
            rc = s_parse_setting ("--momentum", optarg, true, &config.optim.momentum);
            break;
        case OPT_BETA1: rc = s_parse_setting ("--beta1", optarg, true, &config.optim.beta1); break;
        case OPT_BETA2: rc = s_parse_setting ("--beta2", optarg, true, &config.optim.beta2); break;
        case OPT_EPS: rc = s_parse_setting ("--eps", optarg, false, &config.optim.eps); break;
        case OPT_HEARTBEAT:
            rc = ps_cli_long ("psbroker", "--heartbeat-ms", optarg, PS_MIN_HEARTBEAT_MS,
                              PS_MAX_TIMEOUT_MS, &number);
            config.heartbeat_ms = (uint32_t)number;
            break;
        case OPT_TIMEOUT:
            rc = ps_cli_long ("psbroker", "--timeout-ms", optarg, 1, PS_MAX_TIMEOUT_MS, &number);
            config.timeout_ms = (uint32_t)number;
            break;
        case OPT_PROGRESS: rc = s_parse_progress (optarg, &config.progress_ms); break;
        case 't':
            rc = ps_cli_word ("psbroker", "--tap", optarg);
            config.tap_endpoint = optarg;
            break;
        case OPT_NO_TAP: config.tap = false; break;
        case OPT_TAP_PAYLOAD: config.tap_payload = true; break;
        case OPT_ACCEPT_NONFINITE: config.accept_nonfinite = true; break;
        case OPT_SHARD:
            rc = ps_cli_long ("psbroker", "--shard", optarg, 0, PS_MAX_SHARDS - 1, &number);
            config.shard = (uint32_t)number;
            break;
        case OPT_SHARDS:
            rc = ps_cli_long ("psbroker", "--shards", optarg, 1, PS_MAX_SHARDS, &number);
            config.shards = (uint32_t)number;
            break;
        case OPT_CHECKPOINT:
            rc = ps_cli_word ("psbroker", "--checkpoint", optarg);
            config.checkpoint_dir = optarg;
            break;
        case OPT_CHECKPOINT_SECONDS:
            rc = s_parse_interval (optarg, &config.checkpoint_seconds);
            timer_given = config.checkpoint_seconds > 0;
            break;
        case OPT_CHECKPOINT_CLOCKS:
            rc = ps_cli_long ("psbroker", "--checkpoint-clocks", optarg, 1,
                              PS_MAX_CHECKPOINT_CLOCKS, &number);
            config.checkpoint_clocks = (uint64_t)number;
            break;
        case OPT_CHECKPOINT_RATE: rc = s_parse_rate (optarg, &config.checkpoint_rate); break;
        case OPT_MAX_MEMORY: rc = s_parse_memory (optarg, &config.max_memory); break;
        case OPT_MAX_UNREAD: {
            size_t size;
            rc = ps_cli_size ("psbroker", "--max-unread", optarg, PS_MIN_MAX_UNREAD,
                              PS_MAX_STORE_BYTES, &size);
            if (rc == 0)
                config.max_unread = size;
            break;
        }
        case OPT_PUSH_BUDGET: {
            size_t size;
            rc = ps_cli_size ("psbroker", "--push-budget", optarg, PS_MIN_PUSH_BUDGET,
                              PS_MAX_STORE_BYTES, &size);
            if (rc == 0)
                config.push_budget = size;
            break;
        }
        case OPT_MAX_CONNECTIONS:
            rc = ps_cli_long ("psbroker", "--max-connections", optarg, PS_MIN_CONNECTIONS, INT_MAX,
                              &number);
            if (rc == 0)
                config.max_connections = (uint64_t)number;
            break;
        //  Authentication (ps_auth.h)
        case OPT_CURVE_SECRET:
            rc = ps_cli_word ("psbroker", "--curve-secret", optarg);
            config.curve_secret = optarg;
            break;
        case OPT_ALLOW_KEYS:
            rc = ps_cli_word ("psbroker", "--allow-keys", optarg);
            config.allow_keys = optarg;
            break;
        case OPT_ALLOW_ANY_KEY: config.allow_any_key = true; break;
        case OPT_ALLOW_FROM:
            rc = ps_cli_word ("psbroker", "--allow-from", optarg);
            config.allow_from = optarg;
            break;
        case OPT_INSECURE_ALLOW_ANY: config.insecure_allow_any = true; break;
        case OPT_METRICS: {
            ps_problem_t problem;
            rc = ps_metrics_check_address (optarg, &problem);
            if (rc)
                fprintf (stderr, "psbroker: %s\n", problem.message);
            config.metrics = optarg;
            break;
        }
        case 'v': ps_log_set_level (PS_LOG_DEBUG); break;
        case 'q': ps_log_set_level (PS_LOG_WARN); break;
        case OPT_LOG_FORMAT: rc = s_parse_log_format (optarg); break;
        case 'h': s_usage (stdout); return 0;
        case 'V': ps_cli_version ("psbroker"); return 0;
        default: s_usage (stderr); return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf (stderr, "psbroker: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (config.shards > 1 && timer_given) {
        fprintf (stderr,
                 "psbroker: --checkpoint-seconds with --shards %u: a group's brokers "
                 "checkpoint at the same clocks, not on a timer; give "
                 "--checkpoint-clocks N\n",
                 config.shards);
        return 2;
    }
    if (config.shards > 1 && config.checkpoint_dir && config.checkpoint_clocks == 0) {
        fprintf (stderr,
                 "psbroker: a group's brokers must checkpoint at the same clocks: give "
                 "--checkpoint-clocks N (with --checkpoint and --shards %u)\n",
                 config.shards);
        return 2;
    }
    if (config.shards > 1)
        config.checkpoint_seconds = 0;
    if (port < 0 && !endpoint) {
        fprintf (stderr, "psbroker: --port N is required (or --endpoint EP); see --help\n");
        return 2;
    }
    char bound[300];
    if (endpoint)
        snprintf (bound, sizeof bound, "%s", endpoint);
    else if (port == 0)
        //  The kernel's free port (random, and none that connections in
        //  TIME_WAIT still name), not czmq's "*", which takes the lowest
        //  free one from 49152: the port a broker just left, whose
        //  workers may still be reconnecting to it
        snprintf (bound, sizeof bound, "tcp://%s:0", bind_address);
    else
        snprintf (bound, sizeof bound, "tcp://%s:%ld", bind_address, port);
    config.endpoint = bound;

    ps_log_set_name ("psbroker");
    ps_malloc_keep_mapped ();
    //  We handle signals ourselves: czmq's handler would make blocking
    //  calls in the broker's threads fail with EINTR
    zsys_handler_set (NULL);
    zsys_init ();
    struct sigaction action = {.sa_handler = s_on_signal};
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);

    //  As Redis does: the soft limit on open files up to the hard one, so
    //  that the connection cap (by default derived from it) is not the
    //  distribution's 1024 when the administrator allowed more
    uint64_t fds_before, fds_after;
    if (ps_resources_raise_fd_limit (&fds_before, &fds_after))
        ps_warn ("cannot raise the limit on open files above %" PRIu64 ": %s", fds_after,
                 strerror (errno));
    else if (fds_after != fds_before)
        ps_info ("raised the limit on open files from %" PRIu64 " to %" PRIu64, fds_before,
                 fds_after);
    else
        ps_debug ("the limit on open files is %" PRIu64, fds_after);

    ps_problem_t problem;
    ps_broker_t *broker = ps_broker_new (&config, &problem);
    if (!broker) {
        fprintf (stderr, "psbroker: %s\n", problem.message);
        return 1;
    }
    const char *mode = config.staleness == 0 ? "BSP" : config.staleness < 0 ? "ASP" : "SSP";
    char place[64] = "";
    if (config.shards > 1)
        snprintf (place, sizeof place, ", shard %u of %u", config.shard, config.shards);
    //  The optimizer is each key's, named by the INIT that creates it
    //  (psworker's names its own): the broker's applies to the others only
    printf ("psbroker listening on %s (workers %u, %s staleness %d%s; default optimizer %s lr "
            "%g, used when an INIT names none)\n",
            ps_broker_endpoint (broker), config.workers, mode, config.staleness, place,
            ps_optim_kind_name (config.optim.kind), config.optim.lr);
    printf ("psbroker admits %s\n",
            config.curve_secret
                ? (config.allow_keys ? "clients with a key of the allow-list (CURVE)"
                                     : "any CURVE key (--insecure-allow-any-key)")
            : config.insecure_allow_any ? "anybody (--insecure-allow-any)"
                                        : "loopback peers only, and --allow-from (protected "
                                          "mode)");
    if (*ps_broker_tap_endpoint (broker))
        printf ("psbroker tap on %s (pstap --broker %s)\n", ps_broker_tap_endpoint (broker),
                ps_broker_endpoint (broker));
    if (*ps_broker_metrics_url (broker))
        printf ("psbroker metrics on %s\n", ps_broker_metrics_url (broker));
    fflush (stdout);
    while (!s_stop)
        zclock_sleep (50);
    ps_info ("stopping");
    ps_broker_destroy (&broker);
    return 0;
}
