/*  test_psbench - the psbench program (tools/psbench/). Usage:

        psbench --quick --broker-bin build/psbroker   //  every figure, small

    The first test runs that without the yardstick: every figure is printed
    with a positive number and psbench exits 0, the group and localagg
    cases included. Then --help, an unknown case and a missing broker, each
    with its exit status, and the link case (root: it makes network
    namespaces) small. The figures themselves are not asserted: they
    depend on the machine.

    usage: cd build && ./test_psbench [--filter 'psbench/<test>'] */

#include "ps_netns.h"
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

//  Run argv with its stdout captured into text (as much as fits); its exit
//  status, or -1 when it had to be killed at timeout_ms
static int
s_run (char *const argv[], char *text, size_t size, int timeout_ms)
{
    char *output = NULL;
    int status;
    ps_problem_t problem = {0};
    int rc = ps_process_capture (argv, false, timeout_ms, &output, &status, &problem);
    snprintf (text, size, "%s%s", output ? output : "", problem.message);
    free (output);
    return rc ? -1 : ps_process_exit_code (status);
}

//  The number on the line "name: <number> unit", or -1 if there is none
static double
s_figure (const char *text, const char *name)
{
    char needle[128];
    snprintf (needle, sizeof needle, "\n%s: ", name);
    const char *at = strstr (text, needle);
    if (!at)
        return -1;
    return strtod (at + strlen (needle), NULL);
}

//  Write a stand-in zmq_limits into dir that prints body; its path in fake
static void
s_fake_zmq_limits (const char *name, const char *body, char *dir, size_t dir_size, char *fake,
                   size_t fake_size)
{
    ps_test_path (name, dir, dir_size);
    cr_assert (mkdir (dir, 0700) == 0 || errno == EEXIST);
    snprintf (fake, fake_size, "%s/zmq_limits", dir);
    FILE *script = fopen (fake, "w");
    cr_assert (script);
    fputs (body, script);
    fclose (script);
    cr_assert_eq (chmod (fake, 0700), 0);
}

//  Run psbench --quick on cases (and sizes, or NULL) against the build's
//  psbroker, with the yardstick in dir (NULL: --no-yardstick). Its output
//  goes into text after a newline, so that the first figure matches
//  "\nname: " too (s_figure). Its exit status, or -1 when it had to be
//  killed at timeout_ms
static int
s_psbench (const char *dir, const char *cases, const char *sizes, char *text, size_t size,
           int timeout_ms)
{
    char path[512], broker[512];
    char *argv[12] = {(char *)ps_test_binary ("psbench", path, sizeof path), "--quick"};
    size_t argc = 2;
    if (dir) {
        argv[argc++] = "--yardstick";
        argv[argc++] = (char *)dir;
    }
    else
        argv[argc++] = "--no-yardstick";
    argv[argc++] = "--only";
    argv[argc++] = (char *)cases;
    argv[argc++] = "--broker-bin";
    argv[argc++] = (char *)ps_test_binary ("psbroker", broker, sizeof broker);
    if (sizes) {
        argv[argc++] = "--sizes";
        argv[argc++] = (char *)sizes;
    }
    argv[argc] = NULL;
    text[0] = '\n';
    return s_run (argv, text + 1, size - 1, timeout_ms);
}

//  Run psbench --quick on cases (and sizes, or NULL) against a stand-in
//  zmq_limits that counts its runs: each run sets $k to its number
//  (1 for the run before the cases), then runs tail. Asserts that psbench
//  exited 0; its output goes into text, after a newline (for s_figure),
//  and the file that holds the count into count.
static void
s_run_counted_yardstick (const char *name, const char *tail, const char *cases, const char *sizes,
                         char *text, size_t size, char *count, size_t count_size)
{
    char dir[256], fake[300], body[512];
    snprintf (body, sizeof body,
              "#!/bin/sh\n"
              "k=$(cat \"$0.count\" 2>/dev/null || echo 0); k=$((k + 1))\n"
              "echo $k > \"$0.count\"\n"
              "%s",
              tail);
    s_fake_zmq_limits (name, body, dir, sizeof dir, fake, sizeof fake);
    snprintf (count, count_size, "%s.count", fake);
    unlink (count);
    int status = s_psbench (dir, cases, sizes, text, size, 50000);
    cr_assert_eq (status, 0, "psbench exited with %d:\n%s", status, text);
}

Test (psbench, quick_run_prints_every_figure, .timeout = 90)
{
    static char text[64 * 1024];
    int status = s_psbench (NULL,
                            "pushpull,pushpull4,latency,aggregation,bsp,tap,group,localagg,"
                            "checkpoint,curve,many,training",
                            NULL, text, sizeof text, 60000);
    cr_assert_eq (status, 0, "psbench --quick exited with %d; output:\n%s", status, text);

    static const char *figures[] = {
        "pushpull_4K", "pushpull_4K.bandwidth", "pushpull_1M", "pushpull_view_4K",
        "pushpull_view_1M", "pushpull_view_1M.bandwidth", "pushpull4_4K", "pushpull4_1M",
        //  CPU per step, this process's and the broker's: nothing is
        //  printed when either cannot be read
        "pushpull_4K.cpu", "pushpull_1M.cpu", "pushpull_1M.cpus_busy", "pushpull_view_1M.cpu",
        "pushpull4_1M.cpu", "pushpull4_1M.cpus_busy", "latency_push_pull", "latency_push_pull.p99",
        "latency_push_pull.cpu", "aggregation", "aggregation_apply", "bsp_clocks_1w",
        "bsp_clocks_2w", "bsp_clocks_4w", "bsp_clocks_8w", "tap_off_small", "tap_idle_small",
        "tap_watched_small", "tap_off_1M", "tap_watched_1M",
        //  A group of 1, 2 and 4 brokers; --quick slices a 1 MB tensor
        "group_1b_1M", "group_1b_1M.bandwidth", "group_2b_1M", "group_2b_1M.speedup", "group_4b_1M",
        "group_4b_1M.bandwidth", "group_4b_1M.speedup",
        //  4 workers, local aggregation off and on; --quick: 4K and 1M keys
        "localagg_off_4K", "localagg_on_4K", "localagg_on_4K.vs_off", "localagg_2x2_4K",
        "localagg_off_1M", "localagg_on_1M", "localagg_on_1M.vs_off", "localagg_on_1M.sum",
        "localagg_2x2_1M",
        //  Checkpoints off and on, written back to back
        "checkpoint_off_small", "checkpoint_on_small", "checkpoint_on_small.vs_off",
        "checkpoint_off_1M", "checkpoint_on_1M", "checkpoint_on.written",
        //  ResNet-50's 161 tensors against one of their bytes
        "many_resnet50", "many_one", "many_resnet50.vs_one",
        //  psworker through a broker (BSP overlapped, --no-overlap, SSP 1
        //  pulling ahead) and alone (--no-broker)
        "training_broker", "training_alone", "training_broker.vs_alone",
        "training_broker_no_overlap", "training_broker_no_overlap.vs_alone", "training_ssp1",
        "training_ssp1.vs_alone"};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        double value = s_figure (text, figures[i]);
        cr_expect_gt (value, 0, "no positive '%s:' line in:\n%s", figures[i], text);
    }
    cr_expect_eq (s_figure (text, "many_resnet50.tensors"), 161, "%s", text);
    //  The machine's CPUs at most (a little over: the two clocks are read
    //  a few microseconds apart)
    double cpus = (double)sysconf (_SC_NPROCESSORS_ONLN);
    cr_expect_leq (s_figure (text, "pushpull4_1M.cpus_busy"), cpus * 1.05, "%s", text);
    //  Without the yardstick there is nothing to hold the figures against
    cr_expect_null (strstr (text, ".ratio:"), "ratios without a yardstick:\n%s", text);
}

Test (psbench, memory_case_reads_the_brokers_peak, .timeout = 90)
{
    //  Every mode and worker count, each a broker of its own whose peak
    //  resident set is read before it stops: a 4 MB model cannot take
    //  less than one model, and a broker takes more than its code
    static char text[16 * 1024];
    int status = s_psbench (NULL, "memory", NULL, text, sizeof text, 80000);
    cr_assert_eq (status, 0, "psbench --only memory exited with %d; output:\n%s", status, text);
    static const char *modes[] = {"asp", "ssp", "bsp"};
    static const int workers[] = {1, 4, 16};
    for (size_t m = 0; m < 3; m++)
        for (size_t w = 0; w < 3; w++) {
            char name[64];
            snprintf (name, sizeof name, "memory_%s_%dw", modes[m], workers[w]);
            double models = s_figure (text, name);
            cr_expect_gt (models, 1, "'%s:' %g in:\n%s", name, models, text);
            snprintf (name, sizeof name, "memory_%s_%dw.peak", modes[m], workers[w]);
            cr_expect_gt (s_figure (text, name), 4.0 * 1024 * 1024 / 1e6, "%s", text);
        }
    cr_expect_eq (s_figure (text, "memory_asp_1w.limit"), 6.0, "%s", text);
    cr_expect_eq (s_figure (text, "memory_bsp_1w.limit"), 7.0, "%s", text);
}

Test (psbench, help_exits_zero)
{
    char path[512];
    char *argv[] = {(char *)ps_test_binary ("psbench", path, sizeof path), "--help", NULL};
    static char text[8192];
    int status = s_run (argv, text, sizeof text, 10000);
    cr_assert_eq (status, 0);
    cr_expect_not_null (strstr (text, "Usage: psbench"), "no usage line in:\n%s", text);
}

Test (psbench, bsp_with_8_workers_is_held_against_8_raw_clients_at_once, .timeout = 90)
{
    //  A stand-in zmq_limits whose every latency run says 100 us: 8 of
    //  them at once carry 8 x 10000 round trips a second, so 8 workers'
    //  2 round trips per clock allow 5000 clocks/s
    char dir[256], fake[300];
    s_fake_zmq_limits ("fake-yardstick",
                       "#!/bin/sh\necho '# a stand-in'\necho 'tcp_lat 100.0 150.0'\n", dir,
                       sizeof dir, fake, sizeof fake);
    static char text[32 * 1024];
    int status = s_psbench (dir, "bsp", NULL, text, sizeof text, 80000);
    cr_assert_eq (status, 0, "psbench exited with %d:\n%s", status, text);
    for (int pipelined = 0; pipelined < 2; pipelined++) {
        char name[64];
        snprintf (name, sizeof name, "bsp_%sclocks_8w", pipelined ? "pipelined_" : "");
        double rate = s_figure (text, name);
        cr_assert_gt (rate, 0, "%s", text);
        snprintf (name + strlen (name), sizeof name - strlen (name), ".vs_raw_clients");
        double ratio = s_figure (text, name);
        cr_expect_float_eq (ratio, rate / 5000.0, 0.002 + rate / 5000.0 * 0.01, "%s: %s", name,
                            text);
        const char *line = "(vs tcp_lat_8pairs / 16 round trips 5000.0 clocks/s)";
        cr_expect (strstr (text, line), "no '%s' in:\n%s", line, text);
    }
    //  Fewer workers are held against the one client's round trips only
    cr_expect_null (strstr (text, "bsp_clocks_4w.vs_raw_clients"), "%s", text);
}

Test (psbench, latency_takes_turns_with_the_raw_round_trip, .timeout = 60)
{
    //  A stand-in zmq_limits whose k-th run says k x 100 us: the run
    //  before the cases is the first, so round r must be held against
    //  2 x (r + 1) x 100 us. One raw run for all rounds would hold
    //  them all against the same figure.
    static char text[32 * 1024];
    char count[320];
    s_run_counted_yardstick ("fake-yardstick-turns",
                             "echo \"tcp_lat $((k * 100)).0 $((k * 150)).0\"\n", "latency", NULL,
                             text, sizeof text, count, sizeof count);
    double ratios[2], p99_ratios[2];
    for (int r = 0; r < 2; r++) {
        char needle[64];
        snprintf (needle, sizeof needle, "# latency round %d: ", r + 1);
        const char *line = strstr (text, needle);
        cr_assert (line, "no '%s' in:\n%s", needle, text);
        double p50, p99, raw, raw_p99;
        cr_assert_eq (sscanf (line + strlen (needle),
                              "p50 %lf us, p99 %lf us; 2x tcp_lat %lf us, p99 %lf us", &p50, &p99,
                              &raw, &raw_p99),
                      4, "%s", line);
        cr_expect_float_eq (raw, 2 * (r + 2) * 100.0, 1e-9, "round %d: %s", r + 1, line);
        cr_expect_float_eq (raw_p99, 2 * (r + 2) * 150.0, 1e-9, "round %d: %s", r + 1, line);
        ratios[r] = p50 / raw;
        p99_ratios[r] = p99 / raw_p99;
    }
    //  The median of two, by nearest rank, is the larger
    double want = ratios[0] > ratios[1] ? ratios[0] : ratios[1];
    double want_p99 = p99_ratios[0] > p99_ratios[1] ? p99_ratios[0] : p99_ratios[1];
    cr_expect_float_eq (s_figure (text, "latency_push_pull.ratio"), want, 0.002, "%s", text);
    cr_expect_float_eq (s_figure (text, "latency_push_pull.p99.ratio"), want_p99, 0.002, "%s",
                        text);
}

Test (psbench, a_yardstick_that_fails_its_turn_leaves_the_first_run, .timeout = 60)
{
    //  A stand-in zmq_limits that answers once, then fails: the first
    //  failed turn ends the turns (2 runs in all), and the figure is held
    //  against the run before the cases
    static char text[32 * 1024];
    char count[320];
    s_run_counted_yardstick ("fake-yardstick-fails",
                             "[ $k -eq 1 ] || exit 1\n"
                             "echo 'tcp_lat 100.0 150.0'\n",
                             "latency", NULL, text, sizeof text, count, sizeof count);
    double median = s_figure (text, "latency_push_pull");
    cr_assert_gt (median, 0, "%s", text);
    cr_expect_float_eq (s_figure (text, "latency_push_pull.ratio"), median / 200.0,
                        0.0005 + median / 200.0 * 0.002, "%s", text);
    cr_expect (strstr (text, "(vs 2x tcp_lat 200.000 us)"), "%s", text);
    FILE *runs = fopen (count, "r");
    cr_assert (runs);
    int k = 0;
    cr_expect_eq (fscanf (runs, "%d", &k), 1);
    fclose (runs);
    cr_expect_eq (k, 2, "zmq_limits ran %d times", k);
}

Test (psbench, pushpull_takes_turns_with_the_raw_transfer, .timeout = 60)
{
    //  A stand-in zmq_limits whose k-th run says a 4 KB round trip takes
    //  k / 100 ms: the run before the cases is the first, so pushpull_4K's
    //  three repetitions are held against runs 2, 3 and 4 (0.03 ms in the
    //  middle), and pushpull_view_4K's against 5, 6 and 7
    static char text[32 * 1024];
    char count[320];
    s_run_counted_yardstick ("fake-yardstick-pushpull", "echo \"tcp_rt_zc 4096 0.5 0.0$k\"\n",
                             "pushpull", "4K", text, sizeof text, count, sizeof count);
    static const char *names[] = {"pushpull_4K", "pushpull_view_4K"};
    static const char *middles[] = {"; 0.03000 ms in the middle; each:",
                                    "; 0.06000 ms in the middle; each:"};
    for (size_t i = 0; i < 2; i++) {
        char needle[64];
        snprintf (needle, sizeof needle, "\n%s.ratio: ", names[i]);
        const char *line = strstr (text, needle);
        cr_assert (line, "no '%s' in:\n%s", needle + 1, text);
        const char *end = strchr (line + 1, '\n');
        cr_assert (end);
        const char *middle = strstr (line, middles[i]);
        cr_assert (middle && middle < end, "%s: no '%s' in:\n%s", names[i], middles[i], text);
        //  The figure is the median of the turns' own ratios
        double each[3], ratio = strtod (line + strlen (needle), NULL);
        cr_assert_eq (
            sscanf (middle + strlen (middles[i]), "%lf %lf %lf", &each[0], &each[1], &each[2]), 3,
            "%s", line);
        qsort (each, 3, sizeof *each, s_compare_double);
        cr_expect_float_eq (ratio, each[1], 0.0015, "%s: %g is not the median of its turns",
                            names[i], ratio);
    }
}

Test (psbench, unknown_case_is_a_usage_error)
{
    char path[512];
    char *argv[] = {(char *)ps_test_binary ("psbench", path, sizeof path), "--only", "nonsense",
                    NULL};
    static char text[8192];
    cr_assert_eq (s_run (argv, text, sizeof text, 10000), 2);
}

Test (psbench, missing_broker_fails_cleanly, .timeout = 30)
{
    char path[512];
    char *psbench = (char *)ps_test_binary ("psbench", path, sizeof path);
    char *argv[] = {psbench,   "--quick",      "--no-yardstick",        "--only",
                    "latency", "--broker-bin", "/nonexistent/psbroker", NULL};
    static char text[8192];
    cr_assert_eq (s_run (argv, text, sizeof text, 20000), 1);
}

Test (psbench, brokers_checkpoint_into_folders_of_their_own, .timeout = 60)
{
    //  Any case against brokers that checkpoint: each writes into a folder
    //  of its own in the directory given, removed when it stops
    char path[512], broker[512], dir[256];
    ps_test_path ("bench-checkpoints", dir, sizeof dir);
    char *argv[] = {(char *)ps_test_binary ("psbench", path, sizeof path),
                    "--quick",
                    "--no-yardstick",
                    "--only",
                    "latency,checkpoint",
                    "--checkpoint-dir",
                    dir,
                    "--checkpoint-seconds",
                    "0.01",
                    "--broker-bin",
                    (char *)ps_test_binary ("psbroker", broker, sizeof broker),
                    NULL};
    static char text[16 * 1024];
    text[0] = '\n';
    int status = s_run (argv, text + 1, sizeof text - 1, 50000);
    cr_assert_eq (status, 0, "psbench exited with %d:\n%s", status, text);
    cr_expect_gt (s_figure (text, "latency_push_pull"), 0, "%s", text);
    cr_expect_geq (s_figure (text, "checkpoint_on.written"), 1, "%s", text);
    //  Nothing left behind
    char *left = NULL;
    char *ls[] = {"/bin/ls", "-A", dir, NULL};
    int ls_status;
    ps_problem_t problem;
    cr_assert_eq (ps_process_capture (ls, false, 10000, &left, &ls_status, &problem), 0);
    cr_expect_str_eq (left, "", "left in %s: %s", dir, left);
    free (left);
}

Test (psbench, link_case_runs_over_namespaces_and_leaves_none, .timeout = 60)
{
    //  Root and iproute2, as CI has: the case makes two hosts of network
    //  namespaces and a tbf on the veth pair between them
    ps_problem_t problem = {0};
    cr_assert_eq (ps_netns_available (&problem), 0, "%s", problem.message);
    static char text[16 * 1024];
    int status = s_psbench (NULL, "link", "64K", text, sizeof text, 50000);
    cr_assert_eq (status, 0, "psbench --only link exited with %d:\n%s", status, text);
    //  A fraction of each link's rate, and the step it took; a tiny tensor
    //  moves far below the rate, so no bound but the figures' existence
    //  each in f32 and with bf16 on the wire, and the ratio of the steps
    static const char *figures[] = {"link_1gbit_64K",
                                    "link_1gbit_64K.step",
                                    "link_10gbit_64K",
                                    "link_10gbit_64K.step",
                                    "link_1gbit_64K.bf16",
                                    "link_1gbit_64K.bf16.step",
                                    "link_1gbit_64K.bf16_step_vs_f32",
                                    "link_10gbit_64K.bf16_step_vs_f32"};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        cr_expect_gt (s_figure (text, figures[i]), 0, "no positive '%s:' line in:\n%s", figures[i],
                      text);
    cr_expect (strstr (text, "link_1gbit_64K: ") && strstr (text, " of 1 Gbit/s\n"), "%s", text);
    //  Its namespaces are gone: none of the tag it uses is left by a
    //  process that has ended (ours is the only one that could be)
    char *list = NULL;
    char *ip[] = {"/usr/sbin/ip", "netns", "list", NULL};
    int ip_status;
    cr_assert_eq (ps_process_capture (ip, false, 10000, &list, &ip_status, &problem), 0);
    for (char *at = list; (at = strstr (at, "psmq-lb-")); at++) {
        long pid = strtol (at + 8, NULL, 10);
        cr_expect (kill ((pid_t)pid, 0) == 0, "psbench left %.40s", at);
    }
    free (list);
}
