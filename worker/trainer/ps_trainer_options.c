/*  =========================================================================
    ps_trainer_options - psworker's command line (see ps_trainer_options.h)
    ========================================================================= */

#include "ps_trainer_options.h"
#include "ps_dtype.h"
#include "ps_cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Where Debian's dataset-fashion-mnist puts the files
#define DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"

static void
s_usage (FILE *out)
{
    fprintf (out,
             "Usage: psworker [--broker tcp://HOST:PORT] [--rank R] [--workers N] [options]\n"
             "\n"
             "Train a classifier on Fashion-MNIST through a psbroker, data-parallel.\n"
             "A setting not given as a flag comes from the environment: PSMQ_BROKER,\n"
             "PSMQ_RANK, PSMQ_WORKERS, PSMQ_CURVE_SECRET, PSMQ_BROKER_KEY,\n"
             "PSMQ_WAIT_FOR_BROKER, else the launcher's variables (mpirun, torchrun,\n"
             "srun, Kubernetes), else the broker gives the rank and the world size\n"
             "(docs/cluster.md); --print-config shows what was found where.\n"
             "\n"
             "  -b, --broker EP[,EP..] broker endpoint (or PSMQ_BROKER); for a group of\n"
             "                         brokers (psbroker --shards G) all G, in shard order\n"
             "  -r, --rank R           this worker's rank, 0..N-1\n"
             "  -n, --workers N        workers in the job\n"
             "  -t, --threads T        train T workers in this process, ranks R..R+T-1:\n"
             "                         their gradients are summed here and pushed once\n"
             "                         (default 1)\n"
             "  -m, --model NAME       softmax or mlp (default mlp)\n"
             "      --hidden H         MLP hidden units (default 128)\n"
             "  -e, --epochs E         passes over the data (default 5)\n"
             "      --batch B          examples per step and worker (default 32)\n"
             "  -o, --optimizer NAME   sgd, momentum, adagrad, adam (default adam)\n"
             "      --lr LR            learning rate (default 0.002 for adam, else 0.05)\n"
             "      --momentum M       for momentum (default 0.9)\n"
             "      --schedule NAME    cosine (default): lr decays to 0 over the run;\n"
             "                         constant\n"
             "      --wire-dtype T     f32 (default), bf16 or f16: what the parameters and\n"
             "                         gradients travel as (half the bytes for bf16, f16;\n"
             "                         the broker keeps float32; docs/performance.md)\n"
             "  -d, --data DIR         IDX files (default %s),\n"
             "                         or 'synthetic' for a built-in data set\n"
             "  -s, --seed S           model initialisation and straggler draws (default 1)\n"
             "      --json             one JSON object per epoch and a final one\n"
             "      --delay-ms D       straggler: sleep D ms after each step\n"
             "      --delay-prob P     ... with probability P (default 1)\n"
             "      --timeout-ms MS    reply timeout of each request (default 30000)\n"
             "      --clock-timeout-ms MS  how long a clock may wait (default 600000)\n"
             "      --wait-for-broker SECONDS\n"
             "                         when a broker restarts, evicts this worker or is\n"
             "                         lost, wait this long for it to take the worker\n"
             "                         back, then redo the steps from the clock it names\n"
             "                         (its checkpoint's, or 0); 0 fails at once instead\n"
             "                         (default 60)\n"
             "      --curve-secret FILE  this worker's CURVE secret key (NAME.key_secret,\n"
             "                         made by pskeys new NAME; the broker's --allow-keys\n"
             "                         folder holds NAME.key)\n"
             "      --broker-key FILE  the broker's public key (its BROKER.key, or the key's\n"
             "                         40 Z85 characters); with --curve-secret\n"
             "      --print-config     print each setting, its value and its source,\n"
             "                         one per line, and exit without connecting\n"
             "      --no-broker        train alone in this process, each step's mean\n"
             "                         gradient applied here by the broker's own rule:\n"
             "                         what the same training costs without psmq\n"
             "      --no-overlap       wait for each step's push, clock and pull before\n"
             "                         the next step; by default a step pushes each\n"
             "                         layer's gradients as backward makes them and\n"
             "                         waits for a layer's parameters only when its\n"
             "                         forward needs them (BSP: the same results), and\n"
             "                         under SSP and ASP computes the next step while\n"
             "                         this one's push, clock and pull are on the way\n"
             "                         (that spends one clock of the staleness bound;\n"
             "                         it never goes past the bound)\n"
             "      --fuse-bytes N     layer by layer, a push or pull of its own carries\n"
             "                         at least N bytes; smaller layers go with their\n"
             "                         neighbours (default 262144; 0: every layer alone)\n"
             "      --metrics-file PATH  write a record per step (rank, epoch, step, clock,\n"
             "                         time, loss, examples/s, wait, staleness, validation)\n"
             "                         to PATH: CSV when it ends in .csv, else JSON Lines\n"
             "                         (docs/observability.md)\n"
             "      --metrics-every K  a record per K steps instead (default 1)\n"
             "      --validation-fraction F  hold out F of the training set (0 to 0.9;\n"
             "                         the same examples on every rank) and report the\n"
             "                         loss and accuracy on it at each epoch's end\n"
             "      --eval-every N     ... and every N steps (default 0: epoch ends only)\n"
             "      --eval-ranks WHO   0 (default): rank 0 evaluates the whole split; all:\n"
             "                         each rank its slice, reported as its own\n"
             "      --no-progress      no progress bar: by default, when stderr is a\n"
             "                         terminal, a line there shows the epoch's step,\n"
             "                         examples/s and the time left\n"
             "  -h, --help             show this help\n"
             "  -V, --version          show the version\n"
             "\n"
             "Data: Debian's package dataset-fashion-mnist installs the files.\n"
             "Example: psworker --broker tcp://127.0.0.1:5555 --rank 0 --workers 4\n"
             "         PSMQ_BROKER=tcp://server:5555 srun -n 4 psworker\n",
             DEFAULT_DATA_DIR);
}

enum {
    OPT_HIDDEN = 256,
    OPT_BATCH,
    OPT_LR,
    OPT_MOMENTUM,
    OPT_SCHEDULE,
    OPT_JSON,
    OPT_DELAY,
    OPT_DELAY_PROB,
    OPT_TIMEOUT,
    OPT_CLOCK_TIMEOUT,
    OPT_WAIT_FOR_BROKER,
    OPT_CURVE_SECRET,
    OPT_BROKER_KEY,
    OPT_PRINT_CONFIG,
    OPT_NO_BROKER,
    OPT_WIRE_DTYPE,
    OPT_NO_OVERLAP,
    OPT_FUSE_BYTES,
    OPT_METRICS_FILE,
    OPT_METRICS_EVERY,
    OPT_VALIDATION_FRACTION,
    OPT_EVAL_EVERY,
    OPT_EVAL_RANKS,
    OPT_NO_PROGRESS
};

//  The flag that sets each setting, as --print-config names a source
static const char *s_flags[PS_SETTINGS] = {
    [PS_SETTING_BROKER] = "--broker",         [PS_SETTING_RANK] = "--rank",
    [PS_SETTING_WORLD_SIZE] = "--workers",    [PS_SETTING_CURVE_SECRET] = "--curve-secret",
    [PS_SETTING_BROKER_KEY] = "--broker-key", [PS_SETTING_WAIT_FOR_BROKER] = "--wait-for-broker",
};

//  One line per setting: "rank: 3 (SLURM_PROCID)", "world_size: ? (the
//  broker)", "curve_secret: - (none)"; then the launcher found
static void
s_print_config (const ps_worker_config_t *config)
{
    for (int i = 0; i < PS_SETTINGS; i++) {
        const ps_worker_setting_t *setting = &config->settings[i];
        bool broker = strcmp (setting->source, "the broker") == 0;
        const char *value = setting->value[0] ? setting->value : broker ? "?" : "-";
        const char *source =
            strcmp (setting->source, "given") == 0 && s_flags[i] ? s_flags[i] : setting->source;
        printf ("%s: %s (%s)\n", setting->name, value, source);
    }
    printf ("launcher: %s\n", config->launcher[0] ? config->launcher : "none");
    fflush (stdout);
}

//  The settings the flags left out, from the environment (ps_worker.h);
//  rank and workers are the flags' (-1: not given). 0, or -1 after
//  saying why.
static int
s_from_environment (ps_trainer_options_t *options, long rank, long workers)
{
    ps_worker_options_t found;
    ps_worker_options_init (&found);
    found.broker = options->broker;
    found.rank = rank >= 0 ? (uint32_t)rank : 0;
    found.world_size = workers >= 0 ? (uint32_t)workers : 0;
    found.local_workers = options->threads;
    found.curve_secret = options->curve_secret;
    found.broker_key = options->broker_key;
    found.wait_for_broker_ms = options->wait_for_broker_ms;
    ps_worker_config_t config;
    if (ps_worker_options_from_environment (&found, options->given, NULL, NULL, &config)) {
        fprintf (stderr, "psworker: %s\n", config.error);
        return -1;
    }
    options->broker = found.broker;
    options->rank = found.rank;
    options->workers = found.world_size;
    options->curve_secret = found.curve_secret;
    options->broker_key = found.broker_key;
    options->wait_for_broker_ms = found.wait_for_broker_ms;
    if (options->print_config)
        s_print_config (&config);
    return 0;
}

//  0 to run, 1 to exit successfully (help), 2 on a usage error
//  --wire-dtype's value; 0, or -1 having said why
static int
s_wire_dtype (const char *name, ps_wire_dtype_t *wire)
{
    int dtype;
    if (ps_dtype_parse (name, &dtype)) {
        fprintf (stderr, "psworker: --wire-dtype '%s' is not f32, bf16 or f16\n", name);
        return -1;
    }
    *wire = (ps_wire_dtype_t)dtype;
    return 0;
}

int
ps_trainer_options_parse (int argc, char *argv[], ps_trainer_options_t *options)
{
    static const struct option longs[] = {
        {"broker", required_argument, 0, 'b'},
        {"rank", required_argument, 0, 'r'},
        {"workers", required_argument, 0, 'n'},
        {"threads", required_argument, 0, 't'},
        {"model", required_argument, 0, 'm'},
        {"hidden", required_argument, 0, OPT_HIDDEN},
        {"epochs", required_argument, 0, 'e'},
        {"batch", required_argument, 0, OPT_BATCH},
        {"optimizer", required_argument, 0, 'o'},
        {"lr", required_argument, 0, OPT_LR},
        {"momentum", required_argument, 0, OPT_MOMENTUM},
        {"schedule", required_argument, 0, OPT_SCHEDULE},
        {"wire-dtype", required_argument, 0, OPT_WIRE_DTYPE},
        {"data", required_argument, 0, 'd'},
        {"seed", required_argument, 0, 's'},
        {"json", no_argument, 0, OPT_JSON},
        {"delay-ms", required_argument, 0, OPT_DELAY},
        {"delay-prob", required_argument, 0, OPT_DELAY_PROB},
        {"timeout-ms", required_argument, 0, OPT_TIMEOUT},
        {"clock-timeout-ms", required_argument, 0, OPT_CLOCK_TIMEOUT},
        {"wait-for-broker", required_argument, 0, OPT_WAIT_FOR_BROKER},
        {"curve-secret", required_argument, 0, OPT_CURVE_SECRET},
        {"broker-key", required_argument, 0, OPT_BROKER_KEY},
        {"print-config", no_argument, 0, OPT_PRINT_CONFIG},
        {"no-broker", no_argument, 0, OPT_NO_BROKER},
        {"no-overlap", no_argument, 0, OPT_NO_OVERLAP},
        {"fuse-bytes", required_argument, 0, OPT_FUSE_BYTES},
        {"metrics-file", required_argument, 0, OPT_METRICS_FILE},
        {"metrics-every", required_argument, 0, OPT_METRICS_EVERY},
        {"validation-fraction", required_argument, 0, OPT_VALIDATION_FRACTION},
        {"eval-every", required_argument, 0, OPT_EVAL_EVERY},
        {"eval-ranks", required_argument, 0, OPT_EVAL_RANKS},
        {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    *options = (ps_trainer_options_t){.model = PS_MODEL_MLP,
                                      .hidden = 128,
                                      .epochs = 5,
                                      .batch = 32,
                                      .optim = {.kind = PS_OPTIMIZER_ADAM},
                                      .data = DEFAULT_DATA_DIR,
                                      .seed = 1,
                                      .threads = 1,
                                      .cosine = true,
                                      .delay_prob = 1.0,
                                      .timeout_ms = 30000,
                                      .clock_timeout_ms = 600000,
                                      .wait_for_broker_ms = 60000,
                                      .fuse_bytes = PS_TRAINER_FUSE_BYTES,
                                      .metrics_every = 1};
    long rank = -1, workers = -1, number = 0;
    double real;
    int opt;
    while ((opt = getopt_long (argc, argv, "b:r:n:t:m:e:o:d:s:hV", longs, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'b':
            rc = ps_cli_endpoints ("psworker", "--broker", optarg);
            options->broker = optarg;
            options->given |= PS_WORKER_GIVEN_BROKER;
            break;
        case 'r':
            rc = ps_cli_long ("psworker", "--rank", optarg, 0, 4095, &rank);
            options->given |= PS_WORKER_GIVEN_RANK;
            break;
        case 'n':
            rc = ps_cli_long ("psworker", "--workers", optarg, 1, 4096, &workers);
            options->given |= PS_WORKER_GIVEN_WORLD_SIZE;
            break;
        case 't':
            rc = ps_cli_long ("psworker", "--threads", optarg, 1, 256, &number);
            options->threads = (uint32_t)number;
            break;
        case 'm':
            if (ps_model_kind_parse (optarg, &options->model)) {
                fprintf (stderr, "psworker: --model '%s' is not softmax or mlp\n", optarg);
                rc = -1;
            }
            break;
        case OPT_HIDDEN:
            rc = ps_cli_long ("psworker", "--hidden", optarg, 1, 65536, &number);
            options->hidden = (size_t)number;
            break;
        case 'e':
            rc = ps_cli_long ("psworker", "--epochs", optarg, 1, 100000, &number);
            options->epochs = (int)number;
            break;
        case OPT_BATCH:
            rc = ps_cli_long ("psworker", "--batch", optarg, 1, 65536, &number);
            options->batch = (size_t)number;
            break;
        case 'o': {
            static const char *names[] = {"", "sgd", "momentum", "adagrad", "adam"};
            int kind = 0;
            for (int i = 1; i <= 4; i++)
                if (strcmp (optarg, names[i]) == 0)
                    kind = i;
            if (!kind) {
                fprintf (stderr,
                         "psworker: --optimizer '%s' is not one of sgd, momentum, "
                         "adagrad, adam\n",
                         optarg);
                rc = -1;
            }
            options->optim.kind = (ps_optimizer_t)kind;
            break;
        }
        case OPT_LR:
            rc = ps_cli_double ("psworker", "--lr", optarg, 1e-9, 100, &real);
            options->optim.lr = (float)real;
            break;
        case OPT_MOMENTUM:
            rc = ps_cli_double ("psworker", "--momentum", optarg, 0, 0.999999, &real);
            options->optim.momentum = (float)real;
            break;
        case OPT_SCHEDULE:
            if (strcmp (optarg, "cosine") && strcmp (optarg, "constant")) {
                fprintf (stderr, "psworker: --schedule '%s' is not cosine or constant\n", optarg);
                rc = -1;
            }
            options->cosine = strcmp (optarg, "cosine") == 0;
            break;
        case OPT_WIRE_DTYPE: rc = s_wire_dtype (optarg, &options->wire); break;
        case 'd':
            rc = ps_cli_word ("psworker", "--data", optarg);
            options->data = optarg;
            break;
        case 's':
            rc = ps_cli_long ("psworker", "--seed", optarg, 0, LONG_MAX, &number);
            options->seed = (uint64_t)number;
            break;
        case OPT_JSON: options->json = true; break;
        case OPT_DELAY:
            rc = ps_cli_long ("psworker", "--delay-ms", optarg, 0, 3600000, &number);
            options->delay_ms = (int)number;
            break;
        case OPT_DELAY_PROB:
            rc = ps_cli_double ("psworker", "--delay-prob", optarg, 0, 1, &options->delay_prob);
            break;
        case OPT_TIMEOUT:
            rc = ps_cli_long ("psworker", "--timeout-ms", optarg, 1, 86400000, &number);
            options->timeout_ms = (int)number;
            break;
        case OPT_CLOCK_TIMEOUT:
            rc = ps_cli_long ("psworker", "--clock-timeout-ms", optarg, 1, 86400000, &number);
            options->clock_timeout_ms = (int)number;
            break;
        case OPT_WAIT_FOR_BROKER:
            rc = ps_cli_long ("psworker", "--wait-for-broker", optarg, 0, 86400, &number);
            options->wait_for_broker_ms = (int)(number * 1000);
            options->given |= PS_WORKER_GIVEN_WAIT_FOR_BROKER;
            break;
        case OPT_CURVE_SECRET:
            rc = ps_cli_word ("psworker", "--curve-secret", optarg);
            options->curve_secret = optarg;
            options->given |= PS_WORKER_GIVEN_CURVE_SECRET;
            break;
        case OPT_BROKER_KEY:
            rc = ps_cli_word ("psworker", "--broker-key", optarg);
            options->broker_key = optarg;
            options->given |= PS_WORKER_GIVEN_BROKER_KEY;
            break;
        case OPT_PRINT_CONFIG: options->print_config = true; break;
        case OPT_NO_BROKER: options->no_broker = true; break;
        case OPT_NO_OVERLAP: options->no_overlap = true; break;
        case OPT_FUSE_BYTES:
            rc = ps_cli_long ("psworker", "--fuse-bytes", optarg, 0, INT_MAX, &number);
            options->fuse_bytes = (size_t)number;
            break;
        case OPT_METRICS_FILE:
            rc = ps_cli_word ("psworker", "--metrics-file", optarg);
            options->metrics_file = optarg;
            break;
        case OPT_METRICS_EVERY:
            rc = ps_cli_long ("psworker", "--metrics-every", optarg, 1, INT_MAX, &number);
            options->metrics_every = (int)number;
            break;
        case OPT_VALIDATION_FRACTION:
            rc = ps_cli_double ("psworker", "--validation-fraction", optarg, 0, 0.9,
                                &options->validation_fraction);
            break;
        case OPT_EVAL_EVERY:
            rc = ps_cli_long ("psworker", "--eval-every", optarg, 0, INT_MAX, &number);
            options->eval_every = (int)number;
            break;
        case OPT_EVAL_RANKS:
            if (strcmp (optarg, "0") && strcmp (optarg, "all")) {
                fprintf (stderr, "psworker: --eval-ranks '%s' is not 0 or all\n", optarg);
                rc = -1;
            }
            options->eval_all = strcmp (optarg, "all") == 0;
            break;
        case OPT_NO_PROGRESS: options->no_progress = true; break;
        case 'h': s_usage (stdout); return 1;
        case 'V': ps_cli_version ("psworker"); return 1;
        default: s_usage (stderr); return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf (stderr, "psworker: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (rank >= 0 && workers >= 0 && rank + (long)options->threads > workers) {
        fprintf (stderr,
                 "psworker: --rank %ld with --threads %u needs ranks up to %ld, but "
                 "--workers is %ld\n",
                 rank, options->threads, rank + options->threads - 1, workers);
        return 2;
    }
    if (options->optim.lr == 0)
        options->optim.lr = options->optim.kind == PS_OPTIMIZER_ADAM ? 0.002f : 0.05f;
    if (options->no_broker) {
        //  One process alone: its local workers are the whole world
        options->rank = 0;
        options->workers = options->threads;
        return 0;
    }
    //  What the flags left out, from the environment
    if (s_from_environment (options, rank, workers))
        return 2;
    if (options->print_config)
        return 1;
    if (!options->curve_secret != !options->broker_key) {
        fprintf (stderr, "psworker: CURVE needs both --curve-secret FILE and --broker-key FILE "
                         "(or PSMQ_CURVE_SECRET and PSMQ_BROKER_KEY)\n");
        return 2;
    }
    if (!options->broker) {
        fprintf (stderr, "psworker: --broker (or PSMQ_BROKER) is required (see --help)\n");
        return 2;
    }
    return 0;
}
