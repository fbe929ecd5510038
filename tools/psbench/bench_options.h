/*  =========================================================================
    bench_options - psbench's command line and its plan of sizes and times

    bench_options_parse reads the command line into a bench_options_t (the
    cases to run, the yardstick, the psbroker to start); bench_plan_init
    turns it into a bench_plan_t, the sizes, durations and counts of the
    full run or of --quick. Both are plain values that main owns and the
    cases only read. Errors on the command line are said on stderr, with
    the usage line. Main thread only (getopt).
    ========================================================================= */

#ifndef BENCH_OPTIONS_H_INCLUDED
#define BENCH_OPTIONS_H_INCLUDED

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

//  Pushpull sizes: at most this many, each at most this big
#define BENCH_MAX_SIZES 4
#define BENCH_MAX_SIZE_BYTES (256u << 20)
//  Rounds of the group and localagg cases, at most
#define BENCH_MAX_ROUNDS 5

//  The cases, for --only, in the order they run
enum {
    BENCH_CASE_PUSHPULL = 1,
    BENCH_CASE_PUSHPULL4 = 2,
    BENCH_CASE_LATENCY = 4,
    BENCH_CASE_AGGREGATION = 8,
    BENCH_CASE_BSP = 16,
    BENCH_CASE_TAP = 32,
    BENCH_CASE_GROUP = 64,
    BENCH_CASE_LOCALAGG = 128,
    BENCH_CASE_CHECKPOINT = 256,
    BENCH_CASE_CURVE = 512,
    BENCH_CASE_MEMORY = 1024,
    BENCH_CASE_MANY = 2048,
    BENCH_CASE_TRAINING = 4096,
    BENCH_CASE_ALL = 8191,
    //  Not in the default run: it needs root, and makes network namespaces
    BENCH_CASE_LINK = 8192
};

//  How brokers are started: as psbroker's default, or as the tap case
//  wants them
enum { BENCH_TAP_DEFAULT = 0, BENCH_TAP_OFF, BENCH_TAP_IDLE, BENCH_TAP_WATCHED };

typedef struct {
    bool quick;                    //  tiny sizes, few iterations
    bool yardstick;                //  run the yardstick and print ratios
    bool yardstick_given;          //  --yardstick was on the command line
    const char *yardstick_dir;     //  where zmq_limits and memband are
    char broker_bin[PATH_MAX];     //  the psbroker to start
    unsigned cases;                //  BENCH_CASE_* bits
    size_t sizes[BENCH_MAX_SIZES]; //  --sizes, bytes
    size_t nsizes;                 //  their number; 0: the plan's
    int tap_mode;                  //  BENCH_TAP_*: how brokers are started
    const char *checkpoint_dir;    //  brokers checkpoint, each into a folder of
                                   //  its own made here; NULL: they do not
    double checkpoint_seconds;     //  their interval (psbroker --checkpoint-seconds)
    bool checkpoint_seconds_given; //  --checkpoint-seconds was on the command line
    bool curve;                    //  --curve: every case's brokers and workers use keys
    //  CURVE keys (NULL: none): of --curve, or the curve case's copy
    const char *broker_secret; //  brokers' psbroker --curve-secret
    const char *allow_keys;    //  brokers' psbroker --allow-keys
    const char *curve_secret;  //  the workers' secret key file
    const char *broker_key;    //  the brokers' public key file
    //  Where brokers run (the link case's other host); NULL: here, on loopback
    char *const *broker_prefix; //  argv put before psbroker's (ip netns exec NAME)
    const char *broker_bind;    //  psbroker --bind (NULL: 127.0.0.1)
    const char *allow_from;     //  psbroker --allow-from (NULL: none)
} bench_options_t;

//  Sizes and durations: the full run, or --quick
typedef struct {
    size_t sizes[BENCH_MAX_SIZES]; //  pushpull tensor sizes, bytes
    size_t nsizes;                 //  their number
    double rep_seconds;            //  one pushpull repetition (x3 for 16 MB and up)
    int reps;                      //  repetitions per figure
    int lat_warmup;                //  latency: pairs not timed, before the first round
    int lat_rounds;                //  latency: rounds, each a raw run then pairs
    int lat_pairs;                 //  latency: pairs timed in each round
    int lat_raw_trips;             //  latency: raw round trips timed in each round
    size_t agg_bytes;              //  one gradient of the aggregation case
    int agg_reps;                  //  aggregation repetitions
    double bsp_seconds;            //  one bsp repetition, roughly
    int bsp_calibrate;             //  bsp warm-up clocks, which set the count
    size_t group_bytes;            //  the group case's tensor, bytes
    size_t localagg_large;         //  the localagg case's larger key, floats
    int rounds;                    //  group and localagg: turns of their settings
    size_t checkpoint_ballast;     //  the checkpoint case's key that only
                                   //  checkpoints read, bytes
    size_t memory_bytes;           //  the memory case's model, bytes
    double memory_seconds;         //  how long its workers run, each case
    size_t link_bytes;             //  the link case's tensor (unless --sizes)
} bench_plan_t;

//  Read argv into self. True to run the benchmark; false to exit at once
//  with *exit_code: 0 after --help, 2 after a usage error (said on stderr)
bool bench_options_parse (bench_options_t *self, int argc, char *argv[], int *exit_code);

//  The plan for options: the full run's or --quick's, with --sizes
void bench_plan_init (bench_plan_t *self, const bench_options_t *options);

#endif
