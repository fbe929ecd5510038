/*  =========================================================================
    ps_metrics_file - psworker's per-step metrics file (--metrics-file):
    one record per step, or per K steps, as JSON Lines or as CSV

    The format follows the path: CSV, with a header line, when it ends in
    ".csv"; JSON Lines (one object a line) otherwise. Each record is
    written and flushed at once, so a crash loses at most the record being
    written, and nothing is kept in memory between records.

    The writer is the caller's (ps_metrics_file_new, ps_metrics_file_destroy
    closes the file); records are the caller's and are only read. One
    thread at a time (psworker's main thread).
    ========================================================================= */

#ifndef PS_METRICS_FILE_H_INCLUDED
#define PS_METRICS_FILE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_metrics_file_t ps_metrics_file_t;

//  One record: the steps since the record before (steps of them)
typedef struct {
    uint32_t rank;              //  the worker's rank (its first, with --threads)
    int epoch;                  //  1-based
    int64_t step;               //  the step within the epoch, 1-based
    int64_t clock;              //  clocks finished, this step's included
    double time;                //  seconds since the run began
    double loss;                //  mean training loss of the steps recorded
    double examples_per_second; //  over the steps recorded
    double wait_seconds;        //  waiting for the broker over the steps recorded
    int64_t staleness;          //  clocks ahead of the slowest worker; -1: not known
    bool validated;             //  the validation fields hold this step's evaluation
    double validation_loss;     //  mean loss on this rank's validation examples
    double validation_accuracy; //  share of them classified right
    size_t validation_examples; //  how many it evaluated
} ps_metrics_record_t;

//  Open (truncate) the file at path for records; NULL after writing why
//  into error (error_size bytes)
ps_metrics_file_t *ps_metrics_file_new (const char *path, char *error, size_t error_size);

//  Close the file; idempotent, nulls *self_p
void ps_metrics_file_destroy (ps_metrics_file_t **self_p);

//  Write and flush one record: 0, or -1 when the file could not take it
//  (the disk is full, ...; errno says why)
int ps_metrics_file_write (ps_metrics_file_t *self, const ps_metrics_record_t *record);

//  True when the file is CSV
bool ps_metrics_file_csv (const ps_metrics_file_t *self);

#endif
