/*  =========================================================================
    test_netns - a job over a real network path: hosts made of Linux
    network namespaces (tools/psbench/ps_netns.h), joined by veth pairs to
    a bridge, each with its own address in 10.77.0.0/24

    The job of issue 14: a group of two psbrokers and four psworkers on
    three hosts, and pstap watching from a fourth:

        host a  10.77.0.1   psbroker shard 0, psworker ranks 0 and 1
        host b  10.77.0.2   psbroker shard 1, psworker rank 2
        host c  10.77.0.3   psworker rank 3
        host d  10.77.0.4   pstap watch --broker <both members> --json

    Every connection crosses eth0, a veth pair and the bridge: nothing is
    on loopback. The brokers have no keys, so they are in protected mode
    and admit the four addresses by --allow-from. The same job also runs
    on loopback first, and each rank must end as accurate as it did there.
    Then a host taken off the network (its link set down) mid-job: its
    worker is evicted by both brokers within the heartbeat timeout, and
    the others finish.

    Needs root (CI runs as root) and iproute2; fails, saying so, without
    them. Namespaces are named after the test process's pid and removed in
    the fixture's teardown, which Criterion runs when a test fails too;
    those of a run that was killed are swept at the next start.

    usage: cd build && sudo ./test_netns [--filter 'netns/<test>']
    ========================================================================= */

#include "ps_netns.h"
#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { HOST_A, HOST_B, HOST_C, HOST_D, HOSTS };

//  The job: 4 workers, 2 epochs of the synthetic set each (93 BSP clocks
//  an epoch), in a group of 2 brokers
#define WORKERS 4
#define EPOCHS "2"
#define BROKERS 2

//  Processes a test starts, killed by the teardown if still running
#define MAX_CHILDREN 16

static ps_netns_t *s_net;
static pid_t s_children[MAX_CHILDREN];
static size_t s_nchildren;

static void
s_remember (pid_t pid)
{
    cr_assert_lt (s_nchildren, MAX_CHILDREN);
    s_children[s_nchildren++] = pid;
}

static void
s_setup (void)
{
    ps_netns_sweep ("nt");
    ps_problem_t problem = {0};
    s_net = ps_netns_new ("nt", HOSTS, &problem);
    cr_assert (s_net, "cannot make the test's network: %s", problem.message);
}

static void
s_teardown (void)
{
    for (size_t i = 0; i < s_nchildren; i++)
        if (s_children[i] > 0)
            ps_process_kill (s_children[i], false);
    s_nchildren = 0;
    ps_netns_destroy (&s_net);
}

//  argv as it runs on host, or as it is for host -1 (here, on loopback),
//  into command (size entries)
static void
s_on_host (int host, char *const argv[], char **command, size_t size)
{
    if (host >= 0) {
        cr_assert_eq (ps_netns_command (s_net, (size_t)host, argv, command, size), 0);
        return;
    }
    size_t argc = 0;
    for (; argv[argc]; argc++) {
        cr_assert_lt (argc + 1, size);
        command[argc] = argv[argc];
    }
    command[argc] = NULL;
}

//  The bind address of host (-1: loopback)
static const char *
s_address (int host)
{
    return host >= 0 ? ps_netns_address (s_net, (size_t)host) : "127.0.0.1";
}

//  A psbroker on host as shard of BROKERS for workers, with more
//  arguments (NULL-terminated); its endpoint into endpoint
static pid_t
s_broker (int host, int shard, int workers, char *const more[], char *endpoint,
          size_t endpoint_size)
{
    char path[PATH_MAX], shard_text[16], workers_text[16], tap[64];
    snprintf (shard_text, sizeof shard_text, "%d", shard);
    snprintf (workers_text, sizeof workers_text, "%d", workers);
    //  A tcp:// tap, so that a reader on another host can reach it
    snprintf (tap, sizeof tap, "tcp://%s:0", s_address (host));
    char *argv[32] = {(char *)ps_test_binary ("psbroker", path, sizeof path),
                      "--bind",
                      (char *)s_address (host),
                      "--port",
                      "0",
                      "--workers",
                      workers_text,
                      "--shard",
                      shard_text,
                      "--shards",
                      "2",
                      "--tap",
                      tap,
                      "--quiet"};
    size_t argc = 0;
    while (argv[argc])
        argc++;
    for (size_t i = 0; more && more[i]; i++) {
        cr_assert_lt (argc + 1, 32, "too many arguments");
        argv[argc++] = more[i];
    }
    argv[argc] = NULL;
    char *command[40];
    s_on_host (host, argv, command, 40);
    ps_test_child_t child = ps_test_spawn (command);
    s_remember (child.pid);
    static const char marker[] = "psbroker listening on ";
    char out[1024] = "";
    ps_test_read_until (child.out, "\n", out, sizeof out, PS_TEST_WAIT_MS);
    const char *at = strstr (out, marker);
    cr_assert (at, "psbroker on %s printed no endpoint: %s", s_address (host), out);
    char format[16];
    snprintf (format, sizeof format, "%%%zus", endpoint_size - 1);
    cr_assert_eq (sscanf (at + strlen (marker), format, endpoint), 1, "%s", out);
    return child.pid;
}

//  A psworker on host training rank of workers at brokers, as
//  ps_test_psworker_train's, more arguments in more; its output into
//  out_path
static pid_t
s_worker (int host, const char *brokers, int rank, int workers, const char *epochs,
          char *const more[], const char *out_path)
{
    char path[PATH_MAX], rank_text[16], workers_text[16];
    snprintf (rank_text, sizeof rank_text, "%d", rank);
    snprintf (workers_text, sizeof workers_text, "%d", workers);
    char *argv[32] = {(char *)ps_test_binary ("psworker", path, sizeof path),
                      "--broker",
                      (char *)brokers,
                      "--rank",
                      rank_text,
                      "--workers",
                      workers_text,
                      "--data",
                      "synthetic",
                      "--epochs",
                      (char *)epochs,
                      "--hidden",
                      "32",
                      "--json"};
    size_t argc = 0;
    while (argv[argc])
        argc++;
    for (size_t i = 0; more && more[i]; i++) {
        cr_assert_lt (argc + 1, 32, "too many arguments");
        argv[argc++] = more[i];
    }
    argv[argc] = NULL;
    char *command[40];
    s_on_host (host, argv, command, 40);
    pid_t pid = ps_test_spawn_to_file (command, out_path);
    s_remember (pid);
    return pid;
}

//  The psworker process pid exits 0 within timeout_ms; what it printed
//  (in out_path), which the caller frees
static char *
s_finished (pid_t pid, const char *out_path, int timeout_ms)
{
    int status = ps_test_wait_pid (pid, timeout_ms);
    char *text = ps_test_slurp (out_path);
    cr_assert_eq (status, 0, "psworker %s exited %d: %s", out_path, status, text);
    cr_assert (ps_test_json_bool (text, "final", true), "no final record: %s", text);
    return text;
}

//  pstap on host d: `pstap stats` of the broker at endpoint (run there)
//  says that the tap has at least one subscriber
static bool
s_tap_subscribed (const char *endpoint)
{
    char path[PATH_MAX];
    char *argv[] = {(char *)ps_test_binary ("pstap", path, sizeof path),
                    "stats",
                    "--broker",
                    (char *)endpoint,
                    "--member-only",
                    "--json",
                    NULL};
    char *command[16];
    s_on_host (HOST_D, argv, command, 16);
    char *output = NULL;
    int status;
    ps_problem_t problem = {0};
    bool subscribed = false;
    if (ps_process_capture (command, false, PS_TEST_WAIT_MS, &output, &status, &problem) == 0 &&
        ps_process_exit_code (status) == 0 && output && strstr (output, "\"tap_subscriptions\""))
        subscribed = ps_test_json_number (output, "tap_subscriptions", false) >= 1;
    free (output);
    return subscribed;
}

//  pstap watch --json on host d, on the group at endpoints, into
//  out_path; returns once both members count its subscription
static pid_t
s_tap_watch (const char *endpoints, char (*members)[64], const char *out_path)
{
    char path[PATH_MAX];
    char *argv[] = {(char *)ps_test_binary ("pstap", path, sizeof path),
                    "watch",
                    "--broker",
                    (char *)endpoints,
                    "--json",
                    NULL};
    char *command[16];
    s_on_host (HOST_D, argv, command, 16);
    pid_t pid = ps_test_spawn_to_file (command, out_path);
    s_remember (pid);
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    for (int member = 0; member < BROKERS; member++)
        while (!s_tap_subscribed (members[member])) {
            if (zclock_mono () > deadline) {
                static char text[8192];
                int fd = open (out_path, O_RDONLY);
                ssize_t got = fd >= 0 ? read (fd, text, sizeof text - 1) : 0;
                text[got > 0 ? got : 0] = 0;
                cr_assert_fail ("pstap on %s never subscribed to %s: %s",
                                ps_netns_address (s_net, HOST_D), members[member], text);
            }
            zclock_sleep (50);
        }
    return pid;
}

//  Lines of the file at path (pstap's JSON Lines, which may be many
//  megabytes) that hold every one of needles (NULL-terminated); the first
//  of them into first (size bytes) when not NULL
static long
s_scan (const char *path, const char *const needles[], char *first, size_t size)
{
    FILE *file = fopen (path, "r");
    cr_assert (file, "cannot read %s", path);
    char *line = NULL;
    size_t capacity = 0;
    long count = 0;
    while (getline (&line, &capacity, file) != -1) {
        bool match = true;
        for (size_t i = 0; needles[i] && match; i++)
            match = strstr (line, needles[i]) != NULL;
        if (match && count++ == 0 && first)
            snprintf (first, size, "%s", line);
    }
    free (line);
    fclose (file);
    return count;
}

//  The whole job: BROKERS brokers on broker_hosts, WORKERS workers on
//  worker_hosts (-1: loopback for all); each rank's final accuracy into
//  accuracy; tag names the output files. With a tap reader on host d
//  when watch_path is not NULL (its output file)
static void
s_job (const int *broker_hosts, const int *worker_hosts, const char *tag, double *accuracy,
       const char *watch_path)
{
    char members[BROKERS][64], endpoints[2 * 64 + 2];
    char *allow[] = {"--allow-from", (char *)ps_netns_addresses (s_net), NULL};
    for (int shard = 0; shard < BROKERS; shard++)
        s_broker (broker_hosts[shard], shard, WORKERS, broker_hosts[shard] >= 0 ? allow : NULL,
                  members[shard], sizeof members[shard]);
    snprintf (endpoints, sizeof endpoints, "%s,%s", members[0], members[1]);
    cr_log_info ("%s: brokers at %s", tag, endpoints);
    pid_t tap = 0;
    if (watch_path)
        tap = s_tap_watch (endpoints, members, watch_path);

    pid_t pids[WORKERS];
    char outs[WORKERS][PATH_MAX];
    for (int rank = 0; rank < WORKERS; rank++) {
        char name[64];
        snprintf (name, sizeof name, "%s-worker%d.out", tag, rank);
        ps_test_path (name, outs[rank], sizeof outs[rank]);
        pids[rank] =
            s_worker (worker_hosts[rank], endpoints, rank, WORKERS, EPOCHS, NULL, outs[rank]);
    }
    for (int rank = 0; rank < WORKERS; rank++) {
        char *text = s_finished (pids[rank], outs[rank], 90000);
        accuracy[rank] = ps_test_json_number (text, "test_accuracy", true);
        cr_log_info ("%s: rank %d accuracy %.4f", tag, rank, accuracy[rank]);
        free (text);
    }
    //  The reader has seen the job's last replies once the workers are
    //  gone; then it and the brokers stop
    if (tap)
        ps_process_kill (tap, false);
    for (size_t i = 0; i < s_nchildren; i++)
        if (s_children[i] > 0) {
            ps_process_kill (s_children[i], false);
            s_children[i] = 0;
        }
}

Test (netns, a_group_on_three_hosts_trains_as_on_loopback_and_a_fourth_watches, .timeout = 100,
      .init = s_setup, .fini = s_teardown)
{
    //  The same job on loopback first: the accuracy to match
    int loopback[WORKERS] = {-1, -1, -1, -1};
    double reference[WORKERS];
    s_job (loopback, loopback, "loopback", reference, NULL);

    //  Then across the hosts
    int brokers[BROKERS] = {HOST_A, HOST_B};
    int workers[WORKERS] = {HOST_A, HOST_A, HOST_B, HOST_C};
    double accuracy[WORKERS];
    char watch[PATH_MAX];
    ps_test_path ("pstap-watch.out", watch, sizeof watch);
    s_job (brokers, workers, "netns", accuracy, watch);

    //  BSP gives every rank the same parameters at every clock; the sums
    //  are the same gradients added in the order they arrive, which the
    //  network may change, so the parameters may differ in their last
    //  bits. On 2000 test examples 0.005 is 10 of them changing class, far
    //  more than rounding does, and far less than what a lost or doubled
    //  gradient does (both runs end at 0.937 here, chance being 0.1)
    for (int rank = 0; rank < WORKERS; rank++) {
        cr_expect (accuracy[rank] > 0.6, "rank %d learnt nothing: %.4f", rank, accuracy[rank]);
        cr_expect (fabs (accuracy[rank] - reference[rank]) <= 0.005,
                   "rank %d: %.4f over the hosts, %.4f on loopback", rank, accuracy[rank],
                   reference[rank]);
    }

    //  pstap on host d saw the whole job from both members: every kind of
    //  request the workers send, and their replies
    static const char *types[] = {"hello", "init", "push", "pull", "clock"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char type[32];
        snprintf (type, sizeof type, "\"type\":\"%s\"", types[i]);
        const char *request[] = {"\"kind\":\"req\"", type, NULL};
        const char *reply[] = {"\"kind\":\"rep\"", type, NULL};
        long requests = s_scan (watch, request, NULL, 0);
        long replies = s_scan (watch, reply, NULL, 0);
        cr_log_info ("pstap on host d: %ld %s requests, %ld replies", requests, types[i], replies);
        cr_expect_gt (requests, 0, "pstap saw no %s request", types[i]);
        cr_expect_gt (replies, 0, "pstap saw no %s reply", types[i]);
    }
    for (int shard = 0; shard < BROKERS; shard++) {
        char needle[32];
        snprintf (needle, sizeof needle, "\"shard\":%d,", shard);
        const char *needles[] = {needle, NULL};
        cr_expect_gt (s_scan (watch, needles, NULL, 0), 0, "no record of shard %d", shard);
    }
    //  The workers came from their own hosts' addresses
    for (int host = HOST_A; host <= HOST_C; host++) {
        char from[64];
        snprintf (from, sizeof from, "from %s:", ps_netns_address (s_net, (size_t)host));
        const char *needles[] = {"\"kind\":\"conn\"", from, NULL};
        cr_expect_gt (s_scan (watch, needles, NULL, 0), 0,
                      "no connection from host %c (%s) in the tap's records", 'a' + host, from);
    }
}

Test (netns, a_host_taken_off_the_network_is_evicted_and_the_others_finish, .timeout = 60,
      .init = s_setup, .fini = s_teardown)
{
    //  Brokers that ping every 200 ms and evict after 2 s of silence
    enum { HEARTBEAT_MS = 200, TIMEOUT_MS = 2000, RANKS = 3 };
    char members[BROKERS][64], endpoints[2 * 64 + 2];
    char *more[] = {"--allow-from",
                    (char *)ps_netns_addresses (s_net),
                    "--heartbeat-ms",
                    "200",
                    "--timeout-ms",
                    "2000",
                    NULL};
    int broker_hosts[BROKERS] = {HOST_A, HOST_B};
    for (int shard = 0; shard < BROKERS; shard++) {
        //  As s_job's, but 3 workers
        s_broker (broker_hosts[shard], shard, RANKS, more, members[shard], sizeof members[shard]);
    }
    snprintf (endpoints, sizeof endpoints, "%s,%s", members[0], members[1]);
    char watch[PATH_MAX];
    s_tap_watch (endpoints, members, ps_test_path ("vanish-watch.out", watch, sizeof watch));

    //  Rank 0 on host a, 1 on b, 2 on c; 3 epochs of 125 clocks
    int hosts[RANKS] = {HOST_A, HOST_B, HOST_C};
    pid_t pids[RANKS];
    char outs[RANKS][PATH_MAX];
    for (int rank = 0; rank < RANKS; rank++) {
        char name[64];
        snprintf (name, sizeof name, "vanish-worker%d.out", rank);
        ps_test_path (name, outs[rank], sizeof outs[rank]);
        pids[rank] = s_worker (hosts[rank], endpoints, rank, RANKS, "3", NULL, outs[rank]);
    }
    //  Host c's worker is well into the job: its first epoch is done
    int64_t deadline = zclock_mono () + 60000;
    for (;;) {
        char *text = ps_test_slurp (outs[2]);
        bool started = strstr (text, "\"epoch\":1,") != NULL;
        cr_assert (zclock_mono () < deadline, "rank 2 never finished an epoch: %s", text);
        free (text);
        if (started)
            break;
        zclock_sleep (20);
    }

    //  Host c vanishes: its link goes down, nothing goes in or out
    int64_t gone_us = zclock_time () * 1000;
    ps_problem_t problem = {0};
    cr_assert_eq (ps_netns_link (s_net, HOST_C, false, &problem), 0, "%s", problem.message);

    //  The others finish the job without it
    for (int rank = 0; rank < 2; rank++) {
        char *text = s_finished (pids[rank], outs[rank], 90000);
        cr_expect (ps_test_json_number (text, "test_accuracy", true) > 0.5, "%s", text);
        free (text);
    }
    //  Each broker evicted rank 2, within the timeout and a few heartbeats
    //  of slack: libzmq's ping or the broker's silence check, whichever
    //  comes first, on a loaded machine
    zclock_sleep (500); //  the reader is a hop behind the brokers
    int64_t bound_us = (TIMEOUT_MS + 2 * HEARTBEAT_MS + 1500) * 1000;
    for (int shard = 0; shard < BROKERS; shard++) {
        char shard_text[32], record[2048] = "";
        snprintf (shard_text, sizeof shard_text, "\"shard\":%d,", shard);
        const char *needles[] = {"\"kind\":\"evict\"", "\"worker\":2,", shard_text, NULL};
        cr_assert_gt (s_scan (watch, needles, record, sizeof record), 0,
                      "shard %d never evicted rank 2 (records in %s)", shard, watch);
        int64_t after_us = (int64_t)ps_test_json_number (record, "time_us", false) - gone_us;
        cr_log_info ("shard %d evicted rank 2 %" PRId64 " ms after its link went down: %s", shard,
                     after_us / 1000, record);
        cr_expect_lt (after_us, bound_us, "shard %d: %s", shard, record);
    }
}
