/*  =========================================================================
    bench_yardstick - this machine's limits, measured in the same run

    The yardstick is shared/bench's zmq_limits (raw libzmq over TCP) and
    memband (memory bandwidth); for the BSP case also 8 zmq_limits
    latency runs at once, the round trips the machine carries for 8
    clients. psbench runs their own binaries, in this
    run and before the cases it holds against them, because this shared
    machine drifts from hour to hour and a ratio to numbers of another
    session means little. Each program's table is echoed as `#` comments
    and its rows kept for the cases to look up.

    bench_yardstick_new runs what the chosen cases need and returns an
    object that main owns and the cases only read; when a program is
    missing it says how to build it and the figures go without ratios.
    Main thread.
    ========================================================================= */

#ifndef BENCH_YARDSTICK_H_INCLUDED
#define BENCH_YARDSTICK_H_INCLUDED

#include "bench_options.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct _bench_yardstick_t bench_yardstick_t;

//  Raw clients run at once for the BSP case's reference (row
//  tcp_lat_8pairs: their round trips per second, summed)
#define BENCH_RAW_PAIRS 8

//  One line of a yardstick table
typedef struct {
    char name[64]; //  case, e.g. tcp_rt_zc
    uint64_t size; //  size_bytes; 0 for latency lines
    double a;      //  GB/s, or the latency median in us
    double b;      //  ms_per_op, or the latency p99 in us
} bench_yard_row_t;

//  Run the yardstick programs the cases of options need, at plan's sizes.
//  NULL when options say no yardstick, or when no program ran and no row
//  was read (the reason is on stderr and as a comment on stdout).
bench_yardstick_t *bench_yardstick_new (const bench_options_t *options, const bench_plan_t *plan);

//  Free the rows; idempotent
void bench_yardstick_destroy (bench_yardstick_t **self_p);

//  The row of a case (size 0 for latency lines), or NULL; self may be NULL
const bench_yard_row_t *bench_yardstick_find (const bench_yardstick_t *self, const char *name,
                                              uint64_t size);

//  Run zmq_limits' latency mode once more, now: round_trips 8-byte round
//  trips over TCP, its table echoed as comments. For a case that takes
//  turns with the yardstick, so that each round's ratio holds two figures
//  of the same minute: on this shared VM the raw round trip moves by 2x
//  between minutes, more than the figures a ratio is meant to judge.
//  False when self is NULL (no yardstick this run) or the program failed
//  or took more than 30 s; then *row is untouched, and a caller had best
//  not ask again in this case. Main thread.
bool bench_yardstick_latency (const bench_yardstick_t *self, const bench_options_t *options,
                              int round_trips, bench_yard_row_t *row);

//  The same for a push+pull of bytes: one repetition of the row
//  bench_yardstick_pushpull names, run now
bool bench_yardstick_pushpull_again (const bench_yardstick_t *self, const bench_options_t *options,
                                     size_t bytes, bench_yard_row_t *row);

//  The row a push+pull of bytes is held against, or NULL (self may be
//  NULL): tcp_model_zc of 1 MB chunks for the 64 MB model, tcp_rt_zc of
//  the same size otherwise. what names it, for bench_ratio.
const bench_yard_row_t *bench_yardstick_pushpull (const bench_yardstick_t *self, size_t bytes,
                                                  char *what, size_t what_size);

#endif
