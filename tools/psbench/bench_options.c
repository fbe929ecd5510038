/*  =========================================================================
    bench_options - psbench's command line and plan (see bench_options.h)

    Sizes are read by ps_cli_size, as every program reads them; the case
    names and the plans are tables here, so that a new case or a new size
    is one line.
    ========================================================================= */

#include "bench_options.h"
#include "ps_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "Usage: psbench [--quick] [--only LIST] [--sizes LIST] [--no-yardstick] [--yardstick DIR] "    \
    "[--broker-bin PATH] [--checkpoint-dir DIR] [--checkpoint-seconds S] [--curve]\n"

//  The group case's model: one tensor, sliced over the group
#define GROUP_BYTES (64u << 20)
#define GROUP_BYTES_QUICK (1u << 20)
//  The localagg case's larger model (floats)
#define LOCALAGG_LARGE (1024 * 1024)
#define LOCALAGG_LARGE_QUICK (256 * 1024)
//  The checkpoint case's ballast: what each checkpoint writes besides the
//  measured keys, so that a write takes a while
#define CHECKPOINT_BALLAST (64u << 20)
#define CHECKPOINT_BALLAST_QUICK (4u << 20)
//  The link case's tensor: issue 14's 64 MB push+pull
#define LINK_BYTES (64u << 20)
#define LINK_BYTES_QUICK (1u << 20)

static const struct {
    const char *name;
    unsigned bit;
} s_cases[] = {{"pushpull", BENCH_CASE_PUSHPULL},
               {"pushpull4", BENCH_CASE_PUSHPULL4},
               {"latency", BENCH_CASE_LATENCY},
               {"aggregation", BENCH_CASE_AGGREGATION},
               {"bsp", BENCH_CASE_BSP},
               {"tap", BENCH_CASE_TAP},
               {"group", BENCH_CASE_GROUP},
               {"localagg", BENCH_CASE_LOCALAGG},
               {"checkpoint", BENCH_CASE_CHECKPOINT},
               {"curve", BENCH_CASE_CURVE},
               {"memory", BENCH_CASE_MEMORY},
               {"many", BENCH_CASE_MANY},
               {"training", BENCH_CASE_TRAINING},
               {"link", BENCH_CASE_LINK}};

static void
s_usage (FILE *out)
{
    fprintf (out, USAGE "\n"
                        "Measure psmq against this machine's limits (loopback only). Prints one\n"
                        "`name: value unit` line per figure and, with the yardstick, a\n"
                        "`name.ratio: R (vs case value unit)` line: R = psmq / yardstick.\n"
                        "pushpull and latency run the yardstick before each repetition and\n"
                        "print R as the median of the repetitions' own ratios.\n"
                        "\n"
                        "  --quick            tiny sizes, few iterations, no yardstick unless\n"
                        "                     --yardstick is given (a few seconds)\n"
                        "  --only LIST        cases, comma-separated: pushpull, pushpull4,\n"
                        "                     latency, aggregation, bsp, tap, group, localagg,\n"
                        "                     checkpoint, curve, memory, many, training\n"
                        "                     (default all), and link (only when named:\n"
                        "                     needs root)\n"
                        "  --sizes LIST       pushpull sizes, e.g. 4K,64M (default\n"
                        "                     4K,1M,16M,64M; --quick: 4K,1M)\n"
                        "  --no-yardstick     do not run the yardstick; no ratios\n"
                        "  --yardstick DIR    where zmq_limits and memband are built\n"
                        "                     (default /tmp/yardstick; build with\n"
                        "                     make -C ../shared/bench BUILD=/tmp/yardstick)\n"
                        "  --broker-bin PATH  the psbroker to start (default: next to psbench)\n"
                        "  --checkpoint-dir DIR  every broker started writes checkpoints into\n"
                        "                     a folder of its own made in DIR (removed when it\n"
                        "                     stops), so that any case runs against brokers\n"
                        "                     that checkpoint; the checkpoint case's go there\n"
                        "                     too (default: a folder in $TMPDIR or /tmp)\n"
                        "  --checkpoint-seconds S  their interval (default 1; the checkpoint\n"
                        "                     case's default is 0.01: back to back)\n"
                        "  --curve            every broker started has CURVE keys and every\n"
                        "                     worker (and tap reader) an allowed key, made for\n"
                        "                     the run in a private temporary folder (psbench\n"
                        "                     starts its brokers, so it makes both sides' keys\n"
                        "                     rather than take --curve-secret / --broker-key)\n"
                        "  -h, --help         show this help\n"
                        "  -V, --version      show the version\n"
                        "\n"
                        "Figures: pushpull_<size> (ms per push+pull step, 1 worker, ASP),\n"
                        "pushpull_view_<size> (the same, the pull read in place),\n"
                        "pushpull4_<size> (aggregate GB/s, 4 workers), each with .cpu (ms of\n"
                        "CPU per step, this process's and the broker's) and .cpus_busy (that\n"
                        "CPU over the wall time: near the CPU count, the step is CPU-bound),\n"
                        "latency_push_pull (us, 1-float push then pull; .cpu: the CPU of a\n"
                        "pair, as above), aggregation (GB/s of gradients, in-process\n"
                        "ps_store), bsp_clocks_<n>w (clocks/s, n workers, BSP),\n"
                        "tap_<mode>_small (msgs/s of 1-float push+pull) and tap_<mode>_16M\n"
                        "(ms per step) with the broker's tap off, idle (no subscriber) and\n"
                        "watched (one reader),\n"
                        "group_<n>b_64M (ms per push+pull step of one worker, its 64 MB tensor\n"
                        "sliced over a group of n = 1, 2, 4 brokers; .speedup against 1;\n"
                        "--quick: 1M), localagg_<mode>_<size> (BSP clocks/s of 4 workers on\n"
                        "one key of 4K and 4M bytes, --quick 4K and 1M: off, a connection per\n"
                        "worker; on, one connection with local_workers 4 that sums the 4\n"
                        "gradients and pushes once; 2x2, two connections of 2; .vs_off; .sum,\n"
                        "ms per clock spent summing the local gradients),\n"
                        "checkpoint_<mode>_small (msgs/s of 1-float push+pull) and\n"
                        "checkpoint_<mode>_<size> (ms per push+pull step of 16M, --quick 1M)\n"
                        "with the broker's checkpoints off, and on: written back to back while\n"
                        "it serves, each holding a 64 MB key besides (--quick 4 MB); .vs_off;\n"
                        "checkpoint_on.written, checkpoints written while measured),\n"
                        "curve_<mode>_small (msgs/s of 1-float push+pull) and curve_<mode>_<size>\n"
                        "(ms per push+pull step of 16M, --quick 1M) without keys (off) and with\n"
                        "CURVE encryption and authentication (on; keys made for the run);\n"
                        ".vs_off;\n"
                        "memory_<mode>_<n>w (the broker's peak resident set as a multiple of\n"
                        "the model: one 64 MB key, --quick 4 MB, that n = 1, 4, 16 workers\n"
                        "push and pull as fast as they can, asp, ssp (staleness 2) and bsp;\n"
                        ".peak, MB; .limit, the multiple the broker must stay within: 2 and\n"
                        "16 MB for asp and ssp, one model more for bsp);\n"
                        "many_resnet50 (ms per push+pull step of ResNet-50's 161 parameter\n"
                        "tensors, 25.6 M floats, --quick 16 times fewer) and many_one (the same\n"
                        "bytes as one tensor), one worker; .vs_one;\n"
                        "training_broker (examples/s of one psworker through a broker, BSP,\n"
                        "the MLP on the synthetic set, overlapped layer by layer),\n"
                        "training_broker_no_overlap (psworker --no-overlap), training_ssp1\n"
                        "(staleness 1: the overlap pulls ahead) and training_alone (psworker\n"
                        "--no-broker, the broker's rule applied in-process); .vs_alone;\n"
                        "link_<rate>_<size> (--only link; root): one worker on a host\n"
                        "made of a network namespace, psbroker on another, joined by a veth\n"
                        "pair with a tc tbf of 1 and 10 Gbit/s each way; push+pull of 64M\n"
                        "(--quick 1M, or --sizes) as a fraction of the link rate: tensor bytes\n"
                        "both ways / wall time / rate; .step, ms per push+pull.\n");
}

//  One --only item: its case joins self->cases; 0 or -1 (said why)
static int
s_take_case (bench_options_t *self, const char *name)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++)
        if (strcmp (s_cases[i].name, name) == 0) {
            self->cases |= s_cases[i].bit;
            return 0;
        }
    fprintf (stderr,
             "psbench: --only: unknown case '%s' (pushpull, pushpull4, latency, "
             "aggregation, bsp, tap, group, localagg, checkpoint, curve, memory, many, training, "
             "link)\n",
             name);
    return -1;
}

//  One --sizes item, "4K": a whole number of floats joins self->sizes;
//  0 or -1 (said why)
static int
s_take_size (bench_options_t *self, const char *item)
{
    if (self->nsizes == BENCH_MAX_SIZES) {
        fprintf (stderr, "psbench: --sizes names more than %d sizes\n", BENCH_MAX_SIZES);
        return -1;
    }
    size_t bytes;
    if (ps_cli_size ("psbench", "--sizes", item, sizeof (float), BENCH_MAX_SIZE_BYTES, &bytes))
        return -1;
    if (bytes % sizeof (float)) {
        fprintf (stderr, "psbench: --sizes '%s' is not a whole number of floats (4 bytes)\n", item);
        return -1;
    }
    self->sizes[self->nsizes++] = bytes;
    return 0;
}

//  Hand each item of a comma-separated list to take; 0, or -1 when take
//  refuses one (it said why) or the list has none
static int
s_take_list (bench_options_t *self, const char *list,
             int (*take) (bench_options_t *self, const char *item))
{
    char copy[256];
    snprintf (copy, sizeof copy, "%s", list);
    char *saved;
    int items = 0;
    for (char *item = strtok_r (copy, ",", &saved); item; item = strtok_r (NULL, ",", &saved)) {
        if (take (self, item))
            return -1;
        items++;
    }
    return items ? 0 : -1;
}

//  psbroker next to our own executable
static void
s_default_broker (char *path, size_t size)
{
    char self[PATH_MAX];
    ssize_t length = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0) {
        snprintf (path, size, "./psbroker");
        return;
    }
    self[length] = 0;
    char *slash = strrchr (self, '/');
    if (slash)
        *slash = 0;
    static const char name[] = "/psbroker";
    size_t dir = strlen (self);
    if (dir + sizeof name > size) {
        snprintf (path, size, "./psbroker");
        return;
    }
    memcpy (path, self, dir);
    memcpy (path + dir, name, sizeof name);
}

bool
bench_options_parse (bench_options_t *self, int argc, char *argv[], int *exit_code)
{
    enum {
        OPT_QUICK = 256,
        OPT_ONLY,
        OPT_SIZES,
        OPT_NO_YARDSTICK,
        OPT_YARDSTICK,
        OPT_BROKER_BIN,
        OPT_CHECKPOINT_DIR,
        OPT_CHECKPOINT_SECONDS,
        OPT_CURVE
    };
    static const struct option long_options[] = {
        {"quick", no_argument, 0, OPT_QUICK},
        {"only", required_argument, 0, OPT_ONLY},
        {"sizes", required_argument, 0, OPT_SIZES},
        {"no-yardstick", no_argument, 0, OPT_NO_YARDSTICK},
        {"yardstick", required_argument, 0, OPT_YARDSTICK},
        {"broker-bin", required_argument, 0, OPT_BROKER_BIN},
        {"checkpoint-dir", required_argument, 0, OPT_CHECKPOINT_DIR},
        {"checkpoint-seconds", required_argument, 0, OPT_CHECKPOINT_SECONDS},
        {"curve", no_argument, 0, OPT_CURVE},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    *self = (bench_options_t){
        .yardstick_dir = "/tmp/yardstick", .cases = BENCH_CASE_ALL, .checkpoint_seconds = 1};
    bool no_yardstick = false;
    s_default_broker (self->broker_bin, sizeof self->broker_bin);
    *exit_code = 2;
    int opt;
    while ((opt = getopt_long (argc, argv, "hV", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_QUICK: self->quick = true; break;
        case OPT_ONLY:
        case OPT_SIZES:
            //  A list replaces what an earlier one of its option said
            if (opt == OPT_ONLY)
                self->cases = 0;
            else
                self->nsizes = 0;
            if (s_take_list (self, optarg, opt == OPT_ONLY ? s_take_case : s_take_size)) {
                fprintf (stderr, USAGE);
                return false;
            }
            break;
        case OPT_NO_YARDSTICK: no_yardstick = true; break;
        case OPT_YARDSTICK:
            self->yardstick_dir = optarg;
            self->yardstick_given = true;
            break;
        case OPT_BROKER_BIN:
            snprintf (self->broker_bin, sizeof self->broker_bin, "%s", optarg);
            break;
        case OPT_CHECKPOINT_DIR:
            if (ps_cli_word ("psbench", "--checkpoint-dir", optarg))
                return false;
            self->checkpoint_dir = optarg;
            break;
        case OPT_CHECKPOINT_SECONDS:
            //  psbroker's own range; it says so itself when out of it
            if (ps_cli_double ("psbench", "--checkpoint-seconds", optarg, 0.01, 7 * 24 * 3600.0,
                               &self->checkpoint_seconds))
                return false;
            self->checkpoint_seconds_given = true;
            break;
        case OPT_CURVE: self->curve = true; break;
        case 'h':
            s_usage (stdout);
            *exit_code = 0;
            return false;
        case 'V':
            ps_cli_version ("psbench");
            *exit_code = 0;
            return false;
        default: fprintf (stderr, USAGE); return false;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "psbench: unexpected argument '%s'\n" USAGE, argv[optind]);
        return false;
    }
    self->yardstick = !no_yardstick && (!self->quick || self->yardstick_given);
    return true;
}

void
bench_plan_init (bench_plan_t *self, const bench_options_t *options)
{
    //  The full run's setting, then --quick's
    bool quick = options->quick;
    *self =
        (bench_plan_t){.sizes = {4u << 10, 1u << 20, 16u << 20, 64u << 20},
                       .nsizes = quick ? 2 : 4,
                       .rep_seconds = quick ? 0.05 : 0.4,
                       .reps = 3,
                       .lat_warmup = quick ? 50 : 500,
                       .lat_rounds = quick ? 2 : 7,
                       .lat_pairs = quick ? 150 : 800,
                       .lat_raw_trips = quick ? 300 : 3000,
                       .agg_bytes = quick ? 1u << 20 : 16u << 20,
                       .agg_reps = quick ? 3 : 15,
                       .bsp_seconds = quick ? 0.05 : 1.0,
                       .bsp_calibrate = quick ? 5 : 20,
                       .group_bytes = quick ? GROUP_BYTES_QUICK : GROUP_BYTES,
                       .localagg_large = quick ? LOCALAGG_LARGE_QUICK : LOCALAGG_LARGE,
                       .rounds = quick ? 1 : 3,
                       .checkpoint_ballast = quick ? CHECKPOINT_BALLAST_QUICK : CHECKPOINT_BALLAST,
                       .memory_bytes = quick ? 4u << 20 : 64u << 20,
                       .memory_seconds = quick ? 0.3 : 3.0,
                       .link_bytes = quick ? LINK_BYTES_QUICK : LINK_BYTES};
    if (options->nsizes) {
        memcpy (self->sizes, options->sizes, sizeof self->sizes);
        self->nsizes = options->nsizes;
    }
}
