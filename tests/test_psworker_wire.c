/*  =========================================================================
    test_psworker_wire - psworker trains as well with bf16 on the wire as
    with float32 (issue 15), end to end

    Two jobs side by side, each a psworker process and an in-process
    broker on a loopback port: the same training (one worker, BSP, the
    same seed), one with --wire-dtype bf16. A file of its own, apart from
    test_psworker, because reading Fashion-MNIST takes seconds in a
    sanitizer build. Binaries come from PSMQ_BUILD_DIR, which ctest sets.

    usage: cd build && ./test_psworker_wire
    ========================================================================= */

#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Wait for the psworker processes pids, each to exit 0 within 90 s; what
//  each printed is in the file outs[i]
static void
s_wait_all (const pid_t *pids, char (*outs)[600], int count)
{
    for (int i = 0; i < count; i++) {
        int status = ps_test_wait_pid (pids[i], 90000);
        char *text = ps_test_slurp (outs[i]);
        cr_assert_eq (status, 0, "process %d exited %d: %s", i, status, text);
        free (text);
    }
}

//  Issue 15: the same training with the parameters and gradients in bf16
//  on the wire ends within 0.005 of float32's accuracy. One worker, BSP,
//  the same seed: the runs differ only by the rounding. One epoch of
//  softmax regression (SGD, batch 128) on Fashion-MNIST when its package
//  is installed (tools/setup --data), else on the synthetic set
Test (psworker_wire, bf16_learns_as_well_as_f32, .timeout = 110)
{
    static const char *fashion = "/usr/share/datasets/fashion-mnist";
    bool real = access (fashion, R_OK) == 0;
    const char *dtypes[2] = {"f32", "bf16"};
    char endpoints[2][64], outs[2][600];
    ps_broker_t *brokers[2];
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        brokers[i] = ps_test_broker (1, 0, 0, endpoints[i], sizeof endpoints[i]);
        char name[32];
        snprintf (name, sizeof name, "%s.out", dtypes[i]);
        ps_test_path (name, outs[i], sizeof outs[i]);
        char *more[] = {"--model",
                        "softmax",
                        "--optimizer",
                        "sgd",
                        "--lr",
                        "0.1",
                        "--batch",
                        "128",
                        "--wire-dtype",
                        (char *)dtypes[i],
                        "--data",
                        real ? (char *)fashion : "synthetic",
                        NULL};
        pids[i] = ps_test_psworker_train (endpoints[i], 0, 1, 1, 1, more, outs[i]);
    }
    s_wait_all (pids, outs, 2);
    double accuracy[2], bytes_in[2];
    for (int i = 0; i < 2; i++) {
        char *text = ps_test_slurp (outs[i]);
        cr_assert (ps_test_json_bool (text, "final", true), "no final record: %s", text);
        accuracy[i] = ps_test_json_number (text, "test_accuracy", true);
        free (text);
        char *info = ps_broker_info (brokers[i]);
        bytes_in[i] = ps_test_json_number (info, "bytes_in", false);
        free (info);
        ps_broker_destroy (&brokers[i]);
    }
    cr_log_info ("%s: test accuracy %.4f in f32, %.4f in bf16; %.0f and %.0f bytes pushed",
                 real ? "Fashion-MNIST" : "synthetic", accuracy[0], accuracy[1], bytes_in[0],
                 bytes_in[1]);
    cr_assert (accuracy[0] > 0.6, "f32 learnt nothing: accuracy %g", accuracy[0]);
    cr_assert_leq (fabs (accuracy[1] - accuracy[0]), 0.005, "bf16 %g, f32 %g", accuracy[1],
                   accuracy[0]);
    //  The gradients did travel in bf16: half the bytes (and the envelopes)
    cr_assert_lt (bytes_in[1], 0.6 * bytes_in[0], "bf16 %g bytes, f32 %g", bytes_in[1],
                  bytes_in[0]);
}
