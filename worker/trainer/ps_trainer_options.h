/*  =========================================================================
    ps_trainer_options - psworker's command line: its settings, where each
    came from (flags, the environment, the launcher: ps_rendezvous), the
    usage text and --print-config

    The options are the caller's (main's, on its stack); the strings they
    point to are argv's or the environment's. Main thread only.
    ========================================================================= */

#ifndef PS_TRAINER_OPTIONS_H_INCLUDED
#define PS_TRAINER_OPTIONS_H_INCLUDED

#include "ps_model.h"
#include "ps_worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  --fuse-bytes by default. Layer by layer, a request of its own carries
//  at least this much: a smaller layer rides with the next push (in
//  backward's order) or with the pull before it (forward's), as BytePS
//  fuses small tensors. Each request costs the worker and the broker a
//  message each way and a wake-up of their threads, tens of us, what a
//  few hundred KB take to copy; the MLP's W2 and b2 (5 KB) hide less
//  than that.
#define PS_TRAINER_FUSE_BYTES (256 * 1024)

typedef struct {
    const char *broker;         //  endpoint, or a group's endpoints in shard order
    uint32_t rank;              //  this worker
    uint32_t workers;           //  world size
    ps_model_kind_t model;      //  softmax or mlp
    size_t hidden;              //  MLP hidden units
    uint32_t threads;           //  local workers: ranks rank .. rank+threads-1
    int epochs;                 //  passes over the shard
    size_t batch;               //  examples per step
    ps_optim_settings_t optim;  //  the keys' update rule
    ps_wire_dtype_t wire;       //  the keys' element type on the wire
    const char *data;           //  directory, or "synthetic"
    uint64_t seed;              //  model init and straggler draws
    bool cosine;                //  decay lr to 0 over the run
    bool json;                  //  JSON Lines instead of text
    int delay_ms;               //  straggler: sleep after a step
    double delay_prob;          //  with this probability
    int timeout_ms;             //  per request
    int clock_timeout_ms;       //  a clock may wait this long
    int wait_for_broker_ms;     //  for a broker that restarted or evicted us
    const char *curve_secret;   //  our CURVE secret key file, NULL: no keys
    const char *broker_key;     //  the broker's public key file (or Z85 text)
    unsigned given;             //  PS_WORKER_GIVEN_* of the flags given: the
                                //  other settings come from the environment
    bool print_config;          //  print the settings and their sources, exit
    bool no_broker;             //  train alone, the broker's rule applied here
    bool no_overlap;            //  wait for each step's replies before the next
    size_t fuse_bytes;          //  layer by layer: a request's least bytes
    const char *metrics_file;   //  per-step records (.csv: CSV, else JSON Lines)
    int metrics_every;          //  a record per this many steps
    double validation_fraction; // of the training set held out, 0: none
    int eval_every;             //  validate every this many steps (0: epoch ends)
    bool eval_all;              //  every rank its slice, else rank 0 all
    bool no_progress;           //  no progress bar on a terminal
} ps_trainer_options_t;

//  Read argv (and, for what the flags leave out, the environment) into
//  options: 0 to train; 1 to exit 0 at once (--help, --version,
//  --print-config, having printed); 2 after a usage error (said on stderr)
int ps_trainer_options_parse (int argc, char *argv[], ps_trainer_options_t *options);

#endif
