/*  =========================================================================
    case_aggregation - ps_store's arithmetic (see case_aggregation.h)

    Gradients are laid out as the broker receives them, in 1 MB frames
    (PS_CHUNK_BYTES), and handed to ps_store as the aggregation thread
    hands them; repetition -1 is a warm-up that takes the accumulator's
    first allocation out of the timing.
    ========================================================================= */

#include "case_aggregation.h"
#include "bench_figure.h"
#include "ps_limits.h"
#include "ps_store.h"

#include <stdio.h>
#include <stdlib.h>

//  Gradients summed (as memband's agg8)
#define AGG_GRADIENTS 8

int
case_aggregation (const bench_options_t *options, const bench_plan_t *plan,
                  const bench_yardstick_t *yard)
{
    size_t count = plan->agg_bytes / sizeof (float);
    size_t chunk = PS_CHUNK_BYTES / sizeof (float);
    size_t npieces = (count + chunk - 1) / chunk;
    ps_store_t *store = ps_store_new (NULL);
    float *grads = malloc (AGG_GRADIENTS * count * sizeof (float));
    ps_piece_t *pieces = malloc (AGG_GRADIENTS * npieces * sizeof *pieces);
    double *bsp = malloc ((size_t)plan->agg_reps * sizeof *bsp);
    double *ssp = malloc ((size_t)plan->agg_reps * sizeof *ssp);
    ps_problem_t problem = {0};
    ps_key_t *key = NULL;
    bool ok = store && grads && pieces && bsp && ssp;
    if (ok && ps_store_init (store, "aggregation", count, NULL, NULL, &problem) == 0)
        key = ps_store_lookup (store, "aggregation");
    ok = ok && key;
    if (ok) {
        //  Gradients laid out as they arrive: 1 MB frames, in order
        for (size_t i = 0; i < AGG_GRADIENTS * count; i++)
            grads[i] = 1e-6f * (float)(i % 977);
        for (size_t g = 0; g < AGG_GRADIENTS; g++)
            for (size_t p = 0; p < npieces; p++) {
                size_t offset = p * chunk;
                pieces[g * npieces + p] =
                    (ps_piece_t){.data = grads + g * count + offset,
                                 .count = count - offset < chunk ? count - offset : chunk};
            }
    }
    int64_t clock = 0;
    //  Repetition -1 is the warm-up: the accumulator's first allocation
    for (int rep = -1; ok && rep < plan->agg_reps; rep++) {
        double start = bench_now ();
        for (size_t g = 0; ok && g < AGG_GRADIENTS; g++)
            ok = ps_store_accumulate (store, key, clock, pieces + g * npieces, npieces, 1, true,
                                      &problem) == 0;
        ok = ok && ps_store_flush (store, clock + 1, NULL, NULL) == 1;
        clock++;
        double middle = bench_now ();
        for (size_t g = 0; ok && g < AGG_GRADIENTS; g++)
            ok = ps_store_apply (store, key, pieces + g * npieces, npieces, 1, &problem) == 0;
        double end = bench_now ();
        if (rep >= 0) {
            bsp[rep] = middle - start;
            ssp[rep] = end - middle;
        }
    }
    if (!ok)
        fprintf (stderr, "psbench: aggregation failed: %s\n",
                 problem.message[0] ? problem.message : "out of memory");
    else {
        double bytes = (double)AGG_GRADIENTS * (double)count * sizeof (float);
        double bsp_s = bench_quantile (bsp, (size_t)plan->agg_reps, 0.5);
        double ssp_s = bench_quantile (ssp, (size_t)plan->agg_reps, 0.5);
        const bench_yard_row_t *add = bench_yardstick_find (yard, "add_1t", 64u << 20);
        const bench_yard_row_t *seq = bench_yardstick_find (yard, "agg8_seq_1t", 16u << 20);
        bench_figure ("aggregation", bytes / bsp_s / 1e9, "GB/s");
        if (add)
            bench_ratio ("aggregation", "ratio", bytes / bsp_s / 1e9, "add_1t 67108864", add->a,
                         "GB/s");
        if (seq)
            bench_ratio ("aggregation", "ratio_agg8_seq", bytes / bsp_s / 1e9,
                         "agg8_seq_1t 16777216", seq->a, "GB/s");
        bench_figure ("aggregation.time", bsp_s * 1000, "ms");
        bench_figure ("aggregation_apply", bytes / ssp_s / 1e9, "GB/s");
        if (add)
            bench_ratio ("aggregation_apply", "ratio", bytes / ssp_s / 1e9, "add_1t 67108864",
                         add->a, "GB/s");
        bench_figure ("aggregation_apply.time", ssp_s * 1000, "ms");
        fflush (stdout);
    }
    free (ssp);
    free (bsp);
    free (pieces);
    free (grads);
    ps_store_destroy (&store);
    return ok ? 0 : 1;
}
