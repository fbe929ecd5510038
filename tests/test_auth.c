/*  =========================================================================
    test_auth - who may connect: CURVE keys, protected mode, the tap

    A broker with CURVE keys admits the keys of its allow-list folder and
    nothing else; a refused client learns it at once, with the reason, and
    receives no parameter byte; a certificate dropped into the folder is
    admitted at the next connection. Without keys the broker admits
    loopback peers only (protected mode): a peer in a network namespace of
    the test's own (a second host on a veth pair) is refused, and admitted
    with --allow-from. The tap's payload needs keys or a local tap, and
    the default tap's runtime folder must be ours alone.
    ========================================================================= */

#include "ps_auth.h"
#include "ps_broker.h"
#include "ps_limits.h"
#include "ps_testutil.h"
#include "ps_worker.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ------------------------------------------------------------ helpers

//  A test's keys: the broker's pair, and clients' pairs, one of which
//  (allowed) has its public certificate in the allow-list folder
typedef struct {
    char dir[1024];               //  the test's folder
    char allow[2048];             //  the allow-list folder
    char broker_secret[PATH_MAX]; //  broker.key_secret
    char broker_public[PATH_MAX]; //  broker.key
    char allowed[PATH_MAX];       //  allowed.key_secret (its .key is in allow/)
    char stranger[PATH_MAX];      //  stranger.key_secret (its .key is not)
    char stranger_public[PATH_MAX];
    char public_only[PATH_MAX]; //  a public certificate with no secret beside it
} keys_t;

static void
s_pair (const char *dir, const char *name, char *secret, char *public_file)
{
    zcert_t *cert = zcert_new ();
    cr_assert (cert);
    snprintf (secret, PATH_MAX, "%s/%s.key_secret", dir, name);
    snprintf (public_file, PATH_MAX, "%s/%s.key", dir, name);
    cr_assert_eq (zcert_save_secret (cert, secret), 0);
    cr_assert_eq (zcert_save_public (cert, public_file), 0);
    zcert_destroy (&cert);
}

static void
s_keys (keys_t *keys)
{
    snprintf (keys->dir, sizeof keys->dir, "%s/keys", ps_test_dir ());
    snprintf (keys->allow, sizeof keys->allow, "%s/allow", keys->dir);
    cr_assert (mkdir (keys->dir, 0700) == 0 || errno == EEXIST);
    cr_assert (mkdir (keys->allow, 0700) == 0 || errno == EEXIST);
    char scratch[PATH_MAX];
    s_pair (keys->dir, "broker", keys->broker_secret, keys->broker_public);
    //  The allowed client's public certificate goes into the folder
    char allowed_public[PATH_MAX];
    s_pair (keys->dir, "allowed", keys->allowed, allowed_public);
    snprintf (scratch, sizeof scratch, "%s/allowed.key", keys->allow);
    cr_assert_eq (rename (allowed_public, scratch), 0);
    s_pair (keys->dir, "stranger", keys->stranger, keys->stranger_public);
    //  zcert_load reads NAME.key_secret when it is there, even when given
    //  NAME.key: a lone public certificate
    char lone_secret[PATH_MAX];
    s_pair (keys->dir, "lone", lone_secret, keys->public_only);
    cr_assert_eq (unlink (lone_secret), 0);
}

//  A broker of config's settings with the test's CURVE keys
static ps_broker_t *
s_curve_broker (ps_broker_config_t *config, const keys_t *keys, char *endpoint, size_t size)
{
    config->curve_secret = keys->broker_secret;
    config->allow_keys = keys->allow;
    return ps_test_broker_with (config, endpoint, size);
}

//  The library's log, kept: what a refused connect said
static char s_logged[4096];

static void
s_keep_log (void *arg, int level, const char *message)
{
    size_t used = strlen (s_logged);
    snprintf (s_logged + used, sizeof s_logged - used, "%s\n", message);
}

//  Connect rank 0 of 1 with these keys (NULL: none); the worker or NULL,
//  the status in *status and how long it took in *ms
static ps_worker_t *
s_connect (const char *endpoint, const char *secret, const char *broker_key, int *status,
           int64_t *ms)
{
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, 0, 1);
    options.curve_secret = secret;
    options.broker_key = broker_key;
    options.log = s_keep_log;
    s_logged[0] = 0;
    int64_t start = zclock_mono ();
    ps_worker_t *worker = ps_worker_connect (&options, status);
    *ms = zclock_mono () - start;
    return worker;
}

//  A number of the broker's INFO, at any depth (first occurrence)
static double
s_info (ps_broker_t *broker, const char *name)
{
    char *json = ps_broker_info (broker);
    cr_assert (json);
    double value = ps_test_json_number (json, name, false);
    free (json);
    return value;
}

//  The training the two runs of the first test do: two ranks, BSP, a
//  fixed gradient sequence; the parameters after it into out
enum { STEPS = 20, COUNT = 1000 };

static void
s_train (const char *endpoint, const char *secret, const char *broker_key, float *out)
{
    ps_worker_t *workers[2];
    for (uint32_t rank = 0; rank < 2; rank++) {
        ps_worker_options_t options;
        ps_test_options (&options, endpoint, rank, 2);
        options.curve_secret = secret;
        options.broker_key = broker_key;
        int status;
        workers[rank] = ps_worker_connect (&options, &status);
        cr_assert (workers[rank], "rank %u: %s", rank, ps_strerror (status));
    }
    static float initial[COUNT], grad[COUNT];
    for (size_t i = 0; i < COUNT; i++)
        initial[i] = (float)i / COUNT;
    cr_assert_eq (ps_worker_init (workers[0], "w", COUNT, initial, NULL), PS_OK);
    for (int step = 0; step < STEPS; step++) {
        ps_ticket_t tickets[2];
        for (uint32_t rank = 0; rank < 2; rank++) {
            for (size_t i = 0; i < COUNT; i++)
                grad[i] = (float)((i * (rank + 1) + (size_t)step) % 7) * 0.01f;
            ps_tensor_t tensor = {"w", grad, COUNT};
            cr_assert_eq (ps_worker_push (workers[rank], &tensor, 1, 1), PS_OK);
            cr_assert_eq (ps_worker_clock_async (workers[rank], &tickets[rank]), PS_OK);
        }
        for (uint32_t rank = 0; rank < 2; rank++)
            cr_assert_eq (ps_worker_wait (workers[rank], tickets[rank], -1), PS_OK);
    }
    ps_tensor_t result = {"w", out, COUNT};
    cr_assert_eq (ps_worker_pull (workers[1], &result, 1), PS_OK);
    for (uint32_t rank = 0; rank < 2; rank++)
        ps_worker_close (&workers[rank]);
}

// ------------------------------------------------------------ CURVE

Test (auth, a_curve_job_trains_with_allowed_keys_as_the_job_without_keys)
{
    keys_t keys;
    s_keys (&keys);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = 2;
    char endpoint[64];
    static float plain[COUNT], curve[COUNT];
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    s_train (endpoint, NULL, NULL, plain);
    ps_broker_destroy (&broker);

    broker = s_curve_broker (&config, &keys, endpoint, sizeof endpoint);
    char *json = ps_broker_info (broker);
    cr_assert (strstr (json, "\"mode\":\"curve\""), "%s", json);
    free (json);
    s_train (endpoint, keys.allowed, keys.broker_public, curve);
    cr_assert_eq (s_info (broker, "refused"), 0);
    ps_broker_destroy (&broker);
    //  The same arithmetic on the same bytes: equal to the bit
    cr_assert_eq (memcmp (plain, curve, sizeof plain), 0, "the CURVE run's parameters differ");
    cr_assert_neq (plain[1], 1.0f / COUNT, "the job did not train");
}

//  psworker trains rank 0 of 1 for an epoch at endpoint with more
//  arguments; its final test accuracy
static double
s_psworker_accuracy (const char *endpoint, char *const more[], const char *name)
{
    char out[PATH_MAX];
    pid_t pid =
        ps_test_psworker_train (endpoint, 0, 1, 1, 1, more, ps_test_path (name, out, sizeof out));
    int status = ps_test_wait_pid (pid, 60000);
    char *text = ps_test_slurp (out);
    cr_assert_eq (status, 0, "%s", text);
    double accuracy = ps_test_json_number (text, "test_accuracy", true);
    free (text);
    return accuracy;
}

Test (auth, psworker_with_keys_reaches_the_accuracy_of_the_run_without, .timeout = 120)
{
    keys_t keys;
    s_keys (&keys);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    double plain = s_psworker_accuracy (endpoint, NULL, "plain.out");
    ps_broker_destroy (&broker);
    broker = s_curve_broker (&config, &keys, endpoint, sizeof endpoint);
    char *with_keys[] = {"--curve-secret", keys.allowed, "--broker-key", keys.broker_public, NULL};
    double curve = s_psworker_accuracy (endpoint, with_keys, "curve.out");
    cr_assert_eq (s_info (broker, "refused"), 0);
    ps_broker_destroy (&broker);
    //  One worker, one seed: the same run, to the digit
    cr_assert_eq (curve, plain, "accuracy %g with keys, %g without", curve, plain);
    cr_assert_gt (plain, 0.6, "the run did not train");
}

Test (auth, a_refusal_is_a_tap_record, .timeout = 30)
{
    keys_t keys;
    s_keys (&keys);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    char endpoint[64];
    ps_broker_t *broker = s_curve_broker (&config, &keys, endpoint, sizeof endpoint);
    //  A reader of the tap (CURVE too, on its ipc endpoint) for rejections
    zsock_t *sub = zsock_new (ZMQ_SUB);
    zcert_t *ours = zcert_load (keys.allowed), *theirs = zcert_load (keys.broker_public);
    zcert_apply (ours, sub);
    zsock_set_curve_serverkey (sub, zcert_public_txt (theirs));
    zcert_destroy (&ours);
    zcert_destroy (&theirs);
    zsock_set_subscribe (sub, "rej.");
    cr_assert_eq (zsock_connect (sub, "%s", ps_broker_tap_endpoint (broker)), 0);
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (s_info (broker, "tap_subscriptions") < 1 && zclock_mono () < deadline)
        zclock_sleep (10);
    int status;
    int64_t ms;
    cr_assert_null (s_connect (endpoint, keys.stranger, keys.broker_public, &status, &ms));
    zsock_set_rcvtimeo (sub, 5000);
    zmsg_t *record = zmsg_recv (sub);
    cr_assert (record, "no rejection record");
    zmsg_first (record); //  the topic, then the record
    zframe_t *body = zmsg_next (record);
    cr_assert (body);
    static const char said[] = "not an allowed key or address (CURVE)";
    cr_assert (memmem (zframe_data (body), zframe_size (body), said, strlen (said)),
               "the record does not say why");
    zmsg_destroy (&record);
    zsock_destroy (&sub);
    ps_broker_destroy (&broker);
}

Test (auth, a_client_without_an_allowed_key_is_refused_at_once_and_reads_nothing)
{
    keys_t keys;
    s_keys (&keys);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    char endpoint[64];
    ps_broker_t *broker = s_curve_broker (&config, &keys, endpoint, sizeof endpoint);
    //  The allowed worker puts a model there, and leaves
    int status;
    int64_t ms;
    ps_worker_t *owner = s_connect (endpoint, keys.allowed, keys.broker_public, &status, &ms);
    cr_assert (owner, "%s", s_logged);
    float secret_model[256];
    for (size_t i = 0; i < 256; i++)
        secret_model[i] = 42.0f + (float)i;
    cr_assert_eq (ps_worker_init (owner, "model", 256, secret_model, NULL), PS_OK);
    ps_worker_close (&owner);
    double bytes_out = s_info (broker, "bytes_out");

    //  No key at all: the broker wants CURVE
    ps_worker_t *worker = s_connect (endpoint, NULL, NULL, &status, &ms);
    cr_assert_null (worker);
    cr_assert_eq (status, PS_ECONNECT);
    cr_assert (strstr (s_logged, "the broker refused this connection: the broker requires CURVE"),
               "%s", s_logged);
    cr_assert_lt (ms, 3000, "a refusal took %lld ms", (long long)ms);
    //  A key the broker does not know
    worker = s_connect (endpoint, keys.stranger, keys.broker_public, &status, &ms);
    cr_assert_null (worker);
    cr_assert_eq (status, PS_ECONNECT);
    cr_assert (strstr (s_logged, "the broker refused this connection: not an allowed key"), "%s",
               s_logged);
    cr_assert_lt (ms, 3000, "a refusal took %lld ms", (long long)ms);
    //  The wrong broker key: the broker cannot read our handshake
    worker = s_connect (endpoint, keys.allowed, keys.stranger_public, &status, &ms);
    cr_assert_null (worker);
    cr_assert_eq (status, PS_ECONNECT);
    cr_assert (strstr (s_logged, "the broker refused this connection: the broker cut the CURVE"),
               "%s", s_logged);
    //  INFO needs no registration, and still no key: refused
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, 0, 1);
    char *json = NULL;
    cr_assert_eq (ps_worker_query_info_options (&options, &json), PS_ECONNECT);
    cr_assert_null (json);
    //  A raw DEALER asking for the model gets nothing back
    zsock_t *raw = zsock_new_dealer (endpoint);
    cr_assert (raw);
    ps_envelope_t pull;
    ps_test_envelope (&pull, PSMQ__MSG_TYPE__PULL, 0, 1);
    zmq_msg_t encoded;
    cr_assert_eq (ps_codec_encode (&pull, &encoded), 0);
    zmq_msg_send (&encoded, zsock_resolve (raw), ZMQ_DONTWAIT);
    zsock_set_rcvtimeo (raw, 500);
    zframe_t *reply = zframe_recv (raw);
    cr_assert_null (reply, "a client without a key got a reply");
    zsock_destroy (&raw);

    //  Not a byte of parameters went out, and the refusals were counted
    cr_assert_eq (s_info (broker, "bytes_out"), bytes_out);
    cr_assert_geq (s_info (broker, "refused"), 4);
    ps_broker_destroy (&broker);
}

Test (auth, a_certificate_added_to_the_folder_is_admitted_without_a_restart)
{
    keys_t keys;
    s_keys (&keys);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    char endpoint[64];
    ps_broker_t *broker = s_curve_broker (&config, &keys, endpoint, sizeof endpoint);
    int status;
    int64_t ms;
    ps_worker_t *worker = s_connect (endpoint, keys.stranger, keys.broker_public, &status, &ms);
    cr_assert_null (worker);
    cr_assert_eq (status, PS_ECONNECT);
    //  The operator drops its certificate into the folder
    char added[PATH_MAX];
    snprintf (added, sizeof added, "%s/stranger.key", keys.allow);
    cr_assert_eq (rename (keys.stranger_public, added), 0);
    worker = s_connect (endpoint, keys.stranger, keys.broker_public, &status, &ms);
    cr_assert (worker, "the added key was not admitted: %s", s_logged);
    ps_worker_close (&worker);
    //  And taken out again: refused again
    cr_assert_eq (unlink (added), 0);
    worker = s_connect (endpoint, keys.stranger, keys.broker_public, &status, &ms);
    cr_assert_null (worker, "a removed key was still admitted");
    ps_broker_destroy (&broker);
}

Test (auth, a_group_shares_one_key_pair_and_heartbeats_go_over_curve, .timeout = 60)
{
    //  Two brokers of one group, one key pair (one zauth serves both):
    //  every link of the worker and of its heartbeat thread is CURVE, or
    //  the worker, idle past the eviction timeout, would be evicted
    keys_t keys;
    s_keys (&keys);
    ps_broker_t *brokers[2];
    char endpoints[2][64], list[140];
    for (uint32_t shard = 0; shard < 2; shard++) {
        ps_broker_config_t config;
        ps_broker_config_defaults (&config);
        config.shard = shard;
        config.shards = 2;
        config.heartbeat_ms = 100;
        config.timeout_ms = 500;
        brokers[shard] = s_curve_broker (&config, &keys, endpoints[shard], sizeof endpoints[shard]);
    }
    snprintf (list, sizeof list, "%s,%s", endpoints[0], endpoints[1]);
    int status;
    int64_t ms;
    ps_worker_t *worker = s_connect (list, keys.allowed, keys.broker_public, &status, &ms);
    cr_assert (worker, "%s", s_logged);
    float values[4096];
    for (size_t i = 0; i < 4096; i++)
        values[i] = (float)i;
    cr_assert_eq (ps_worker_init (worker, "spread", 4096, values, NULL), PS_OK);
    zclock_sleep (1500);
    float back[4096];
    ps_tensor_t pulled = {"spread", back, 4096};
    cr_assert_eq (ps_worker_pull (worker, &pulled, 1), PS_OK, "%s", ps_worker_error (worker));
    cr_assert_eq (memcmp (back, values, sizeof back), 0);
    for (uint32_t shard = 0; shard < 2; shard++) {
        cr_assert_eq (s_info (brokers[shard], "evicted"), 0, "shard %u evicted the idle worker",
                      shard);
        cr_assert_eq (s_info (brokers[shard], "live"), 1, "shard %u lost the worker", shard);
    }
    ps_worker_close (&worker);
    for (uint32_t shard = 0; shard < 2; shard++)
        ps_broker_destroy (&brokers[shard]);
}

Test (auth, a_bad_key_file_is_named)
{
    keys_t keys;
    s_keys (&keys);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    char endpoint[64];
    ps_broker_t *broker = s_curve_broker (&config, &keys, endpoint, sizeof endpoint);
    int status;
    int64_t ms;
    //  A public certificate where the secret key belongs
    ps_worker_t *worker = s_connect (endpoint, keys.public_only, keys.broker_public, &status, &ms);
    cr_assert_null (worker);
    cr_assert_eq (status, PS_EINVAL);
    cr_assert (strstr (s_logged, keys.public_only) && strstr (s_logged, "no secret key"), "%s",
               s_logged);
    worker = s_connect (endpoint, "/nonexistent/x.key_secret", keys.broker_public, &status, &ms);
    cr_assert_eq (status, PS_EINVAL);
    cr_assert (strstr (s_logged, "/nonexistent/x.key_secret"), "%s", s_logged);
    worker = s_connect (endpoint, keys.allowed, "not-a-key", &status, &ms);
    cr_assert_eq (status, PS_EINVAL);
    cr_assert (strstr (s_logged, "not-a-key"), "%s", s_logged);
    //  The broker's key as text works as well as its file
    zcert_t *cert = zcert_load (keys.broker_public);
    char text[41];
    snprintf (text, sizeof text, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    worker = s_connect (endpoint, keys.allowed, text, &status, &ms);
    cr_assert (worker, "%s", s_logged);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

Test (auth, the_broker_refuses_keys_without_an_allow_list_and_other_conflicts)
{
    keys_t keys;
    s_keys (&keys);
    struct {
        const char *secret, *allow, *from;
        bool any_key, insecure;
        const char *says;
    } cases[] = {
        {keys.broker_secret, NULL, NULL, false, false, "without --allow-keys"},
        {NULL, keys.allow, NULL, false, false, "needs --curve-secret"},
        {keys.public_only, keys.allow, NULL, false, false, "holds no secret key"},
        {"/nonexistent.key_secret", keys.allow, NULL, false, false, "/nonexistent.key_secret"},
        {keys.broker_secret, "/nonexistent-folder", NULL, false, false, "is not a folder"},
        {NULL, NULL, "10.0.0.1,host.example", false, false, "not a numeric"},
        {NULL, NULL, "10.0.0.1", false, true, "--insecure-allow-any"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ps_broker_config_t config;
        ps_broker_config_defaults (&config);
        config.endpoint = "tcp://127.0.0.1:0";
        config.curve_secret = cases[i].secret;
        config.allow_keys = cases[i].allow;
        config.allow_from = cases[i].from;
        config.allow_any_key = cases[i].any_key;
        config.insecure_allow_any = cases[i].insecure;
        ps_problem_t problem;
        ps_broker_t *broker = ps_broker_new (&config, &problem);
        cr_assert_null (broker, "case %zu started", i);
        cr_assert (strstr (problem.message, cases[i].says), "case %zu: %s", i, problem.message);
    }
    //  Any key, said explicitly: encrypted, anybody with the broker's key
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.curve_secret = keys.broker_secret;
    config.allow_any_key = true;
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    int status;
    int64_t ms;
    ps_worker_t *worker = s_connect (endpoint, keys.stranger, keys.broker_public, &status, &ms);
    cr_assert (worker, "%s", s_logged);
    ps_worker_close (&worker);
    ps_broker_destroy (&broker);
}

// ------------------------------------------------------------ protected mode

Test (auth, libzmq_asks_zap_about_null_connections_only_with_a_domain)
{
    //  What protected mode rests on: zauth refusing 127.0.0.1, a socket
    //  without a ZAP domain admits it anyway, one with a domain does not
    zactor_t *auth = zactor_new (zauth, NULL);
    zstr_sendx (auth, "ALLOW", "192.0.2.1", NULL);
    zsock_wait (auth);
    bool admitted[2];
    for (int domain = 0; domain < 2; domain++) {
        zsock_t *server = zsock_new (ZMQ_ROUTER);
        if (domain)
            zsock_set_zap_domain (server, "psmq");
        cr_assert_eq (zmq_bind (zsock_resolve (server), "tcp://127.0.0.1:0"), 0);
        char *bound = zsock_last_endpoint (server);
        zsock_t *client = zsock_new_dealer (bound);
        zstr_send (client, "hello");
        zsock_set_rcvtimeo (server, 1000);
        zmsg_t *message = zmsg_recv (server);
        admitted[domain] = message != NULL;
        zmsg_destroy (&message);
        zsock_destroy (&client);
        zsock_destroy (&server);
        zstr_free (&bound);
    }
    zactor_destroy (&auth);
    cr_assert (admitted[0], "no domain: libzmq asked ZAP after all");
    cr_assert (!admitted[1], "with a domain: zauth was not asked");
}

static ps_test_net_t s_net;

static void
s_net_setup (void)
{
    //  Required: CI runs as root with `ip netns`; this must not pass unrun
    ps_test_net_setup (&s_net, "au", true);
}

static void
s_net_teardown (void)
{
    ps_test_net_teardown (&s_net);
}

//  Run psworker in the namespace against endpoint for one short epoch;
//  its exit status, its output into out
static int
s_far_worker (const char *endpoint, char *out_path, size_t out_size)
{
    char psworker[PATH_MAX];
    char *binary = (char *)ps_test_binary ("psworker", psworker, sizeof psworker);
    char *argv[] = {s_net.ip,
                    "netns",
                    "exec",
                    s_net.ns,
                    binary,
                    "--broker",
                    (char *)endpoint,
                    "--rank",
                    "0",
                    "--workers",
                    "1",
                    "--data",
                    "synthetic",
                    "--epochs",
                    "1",
                    "--hidden",
                    "8",
                    "--wait-for-broker",
                    "0",
                    NULL};
    return ps_test_run_group (argv, ps_test_path ("far.out", out_path, out_size), NULL,
                              PS_TEST_WAIT_MS);
}

Test (auth, protected_mode_refuses_another_host_and_allow_from_admits_it, .timeout = 90,
      .init = s_net_setup, .fini = s_net_teardown)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    char bind[64], endpoint[64];
    snprintf (bind, sizeof bind, "tcp://%s:0", s_net.near_ip);
    config.endpoint = bind;
    ps_problem_t problem;
    ps_broker_t *broker = ps_broker_new (&config, &problem);
    cr_assert (broker, "%s", problem.message);
    snprintf (endpoint, sizeof endpoint, "tcp://%s:%d", s_net.near_ip, ps_broker_port (broker));
    char out_path[PATH_MAX];
    int64_t start = zclock_mono ();
    int status = s_far_worker (endpoint, out_path, sizeof out_path);
    int64_t took = zclock_mono () - start;
    char *out = ps_test_slurp (out_path);
    cr_assert_neq (status, 0, "a peer of another host trained: %s", out);
    cr_assert (strstr (out, "the broker refused this connection: address not allowed"), "%s", out);
    cr_assert_lt (took, 5000, "the refusal took %lld ms", (long long)took);
    free (out);
    cr_assert_geq (s_info (broker, "refused"), 1);
    char *json = ps_broker_info (broker);
    cr_assert (strstr (json, "\"mode\":\"protected\""), "%s", json);
    free (json);
    ps_broker_destroy (&broker);

    //  Named with --allow-from, the same host trains
    config.allow_from = s_net.far_ip;
    broker = ps_broker_new (&config, &problem);
    cr_assert (broker, "%s", problem.message);
    snprintf (endpoint, sizeof endpoint, "tcp://%s:%d", s_net.near_ip, ps_broker_port (broker));
    status = s_far_worker (endpoint, out_path, sizeof out_path);
    out = ps_test_slurp (out_path);
    cr_assert_eq (status, 0, "--allow-from %s did not admit it: %s", s_net.far_ip, out);
    free (out);
    cr_assert_eq (s_info (broker, "refused"), 0);
    ps_broker_destroy (&broker);
}

// ------------------------------------------------------------ the tap

Test (auth, tap_payload_needs_keys_or_a_local_tap)
{
    keys_t keys;
    s_keys (&keys);
    struct {
        const char *tap;
        bool curve;
        bool starts;
    } cases[] = {
        {"tcp://0.0.0.0:0", false, false},  {"tcp://*:0", false, false},
        {"tcp://127.0.0.1:0", false, true}, {NULL, false, true},
        {"tcp://*:0", true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ps_broker_config_t config;
        ps_broker_config_defaults (&config);
        config.endpoint = "tcp://127.0.0.1:0";
        config.tap_endpoint = cases[i].tap;
        config.tap_payload = true;
        if (cases[i].curve) {
            config.curve_secret = keys.broker_secret;
            config.allow_keys = keys.allow;
        }
        ps_problem_t problem;
        ps_broker_t *broker = ps_broker_new (&config, &problem);
        if (cases[i].starts)
            cr_assert (broker, "case %zu: %s", i, problem.message);
        else {
            cr_assert_null (broker, "case %zu: payload on %s without keys", i, cases[i].tap);
            cr_assert (strstr (problem.message, "--tap-payload"), "%s", problem.message);
        }
        ps_broker_destroy (&broker);
    }
}

Test (auth, a_tcp_tap_under_curve_admits_allowed_readers_only)
{
    keys_t keys;
    s_keys (&keys);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.tap_endpoint = "tcp://127.0.0.1:0";
    char endpoint[64];
    ps_broker_t *broker = s_curve_broker (&config, &keys, endpoint, sizeof endpoint);
    const char *tap = ps_broker_tap_endpoint (broker);
    //  Readers: one with no key, one with the allowed key
    bool got[2];
    for (int keyed = 0; keyed < 2; keyed++) {
        zsock_t *sub = zsock_new (ZMQ_SUB);
        if (keyed) {
            zcert_t *ours = zcert_load (keys.allowed), *theirs = zcert_load (keys.broker_public);
            zcert_apply (ours, sub);
            zsock_set_curve_serverkey (sub, zcert_public_txt (theirs));
            zcert_destroy (&ours);
            zcert_destroy (&theirs);
        }
        zsock_set_subscribe (sub, "");
        cr_assert_eq (zsock_connect (sub, "%s", tap), 0);
        zsock_set_rcvtimeo (sub, 200);
        //  Records come while something happens: a worker joins and leaves
        got[keyed] = false;
        int64_t deadline = zclock_mono () + 3000;
        while (!got[keyed] && zclock_mono () < deadline) {
            int status;
            int64_t ms;
            ps_worker_t *worker =
                s_connect (endpoint, keys.allowed, keys.broker_public, &status, &ms);
            cr_assert (worker, "%s", s_logged);
            ps_worker_close (&worker);
            zmsg_t *record = zmsg_recv (sub);
            got[keyed] = record != NULL;
            zmsg_destroy (&record);
        }
        zsock_destroy (&sub);
    }
    cr_assert (!got[0], "a tap reader without a key got records");
    cr_assert (got[1], "the allowed tap reader got no record");
    ps_broker_destroy (&broker);
}

Test (auth, the_runtime_folder_of_the_default_tap_must_be_ours_alone)
{
    char base[1024];
    snprintf (base, sizeof base, "%s/runtime", ps_test_dir ());
    cr_assert (mkdir (base, 0700) == 0 || errno == EEXIST);
    char open_dir[PATH_MAX], link[PATH_MAX], foreign[PATH_MAX], good[PATH_MAX];
    snprintf (open_dir, sizeof open_dir, "%s/open", base);
    snprintf (link, sizeof link, "%s/link", base);
    snprintf (foreign, sizeof foreign, "%s/foreign", base);
    snprintf (good, sizeof good, "%s/good", base);
    cr_assert_eq (mkdir (open_dir, 0700), 0);
    cr_assert_eq (chmod (open_dir, 0777), 0);
    cr_assert_eq (mkdir (good, 0700), 0);
    cr_assert_eq (symlink (good, link), 0);
    cr_assert_eq (mkdir (foreign, 0700), 0);
    bool root = geteuid () == 0;
    if (root)
        cr_assert_eq (chown (foreign, 65534, 65534), 0);
    struct {
        const char *dir;
        const char *says; //  NULL: starts
    } cases[] = {{open_dir, "mode 777"},
                 {link, "symbolic link"},
                 {foreign, root ? "belongs to uid 65534" : NULL},
                 {good, NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].dir == foreign && !root)
            continue;
        //  The broker's default tap goes into XDG_RUNTIME_DIR when set
        setenv ("XDG_RUNTIME_DIR", cases[i].dir, 1);
        ps_broker_config_t config;
        ps_broker_config_defaults (&config);
        config.endpoint = "tcp://127.0.0.1:0";
        ps_problem_t problem;
        ps_broker_t *broker = ps_broker_new (&config, &problem);
        if (cases[i].says) {
            cr_assert_null (broker, "case %zu (%s) started", i, cases[i].dir);
            cr_assert (strstr (problem.message, cases[i].says), "case %zu: %s", i, problem.message);
        }
        else {
            cr_assert (broker, "case %zu: %s", i, problem.message);
            cr_assert (strstr (ps_broker_tap_endpoint (broker), good), "%s",
                       ps_broker_tap_endpoint (broker));
        }
        ps_broker_destroy (&broker);
    }
    unsetenv ("XDG_RUNTIME_DIR");
}

// ------------------------------------------------------------ refusals logged

Test (auth, a_flood_of_refused_connections_is_counted_and_logged_within_limits, .timeout = 60)
{
    //  psbroker with keys, and a flood of clients with a key it does not
    //  know: its ZAP handler refuses each handshake, and each socket tries
    //  at least once
    keys_t keys;
    s_keys (&keys);
    char endpoint[64], out[4096];
    char *args[] = {"--quiet",      "--curve-secret", keys.broker_secret,
                    "--allow-keys", keys.allow,       NULL};
    ps_test_child_t broker = ps_test_psbroker (args, endpoint, sizeof endpoint, out, sizeof out);
    char local[64];
    snprintf (local, sizeof local, "tcp://127.0.0.1:%d", ps_test_endpoint_port (endpoint));
    zcert_t *ours = zcert_load (keys.stranger), *theirs = zcert_load (keys.broker_public);
    ps_worker_options_t admin;
    ps_test_options (&admin, local, 0, 1);
    admin.curve_secret = keys.allowed;
    admin.broker_key = keys.broker_public;
    admin.timeout_ms = 5000;
    enum { FLOOD = 50 };
    void *context = zmq_ctx_new ();
    void *sockets[FLOOD];
    int64_t start = zclock_mono ();
    for (int i = 0; i < FLOOD; i++) {
        sockets[i] = zmq_socket (context, ZMQ_DEALER);
        int linger = 0;
        zmq_setsockopt (sockets[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt (sockets[i], ZMQ_CURVE_SERVERKEY, zcert_public_txt (theirs), 41);
        zmq_setsockopt (sockets[i], ZMQ_CURVE_PUBLICKEY, zcert_public_txt (ours), 41);
        zmq_setsockopt (sockets[i], ZMQ_CURVE_SECRETKEY, zcert_secret_txt (ours), 41);
        cr_assert_eq (zmq_connect (sockets[i], local), 0);
    }
    //  INFO counts every one
    double refused = 0;
    while (refused < FLOOD && zclock_mono () - start < PS_TEST_WAIT_MS) {
        zclock_sleep (100);
        char *json = NULL;
        cr_assert_eq (ps_worker_query_info_options (&admin, &json), PS_OK);
        refused = ps_test_json_number (json, "refused", false);
        free (json);
    }
    double seconds = (zclock_mono () - start) / 1000.0;
    for (int i = 0; i < FLOOD; i++)
        zmq_close (sockets[i]);
    cr_assert_geq (refused, FLOOD, "%.0f refused in %.1f s", refused, seconds);
    //  A second later, one more (that stays until refused): its line
    //  counts the ones left out
    zclock_sleep (1100);
    void *late = zmq_socket (context, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt (late, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (late, ZMQ_CURVE_SERVERKEY, zcert_public_txt (theirs), 41);
    zmq_setsockopt (late, ZMQ_CURVE_PUBLICKEY, zcert_public_txt (ours), 41);
    zmq_setsockopt (late, ZMQ_CURVE_SECRETKEY, zcert_secret_txt (ours), 41);
    cr_assert_eq (zmq_connect (late, local), 0);
    //  The log: a line per refusal up to the limit each second, no more
    static char err[1 << 18];
    ps_test_read_until (broker.err, "more refused, not logged", err, sizeof err, PS_TEST_WAIT_MS);
    seconds = (zclock_mono () - start) / 1000.0;
    zmq_close (late);
    zmq_ctx_term (context);
    zcert_destroy (&ours);
    zcert_destroy (&theirs);
    ps_process_kill (broker.pid, false);
    size_t lines = 0;
    for (const char *at = err; (at = strstr (at, "refused a connection from 127.0.0.1")); at++)
        lines++;
    cr_assert_geq (lines, 1, "%s", err);
    cr_assert_leq (lines, (size_t)(PS_AUTH_LOG_PER_SECOND * (seconds + 2)), "%zu lines in %.1f s",
                   lines, seconds);
    cr_assert (strstr (err, "more refused, not logged"), "%s", err);
}

// ------------------------------------------------------------ pskeys

Test (auth, pskeys_makes_a_private_pair_and_shows_it)
{
    char pskeys[PATH_MAX], dir[1024], out[PATH_MAX];
    ps_test_binary ("pskeys", pskeys, sizeof pskeys);
    snprintf (dir, sizeof dir, "%s/made", ps_test_dir ());
    char *make[] = {pskeys, "new", "node1", "--dir", dir, NULL};
    cr_assert_eq (
        ps_test_run_group (make, ps_test_path ("new.out", out, sizeof out), NULL, PS_TEST_WAIT_MS),
        0);
    char secret[PATH_MAX], public_file[PATH_MAX];
    snprintf (secret, sizeof secret, "%s/node1.key_secret", dir);
    snprintf (public_file, sizeof public_file, "%s/node1.key", dir);
    struct stat info;
    cr_assert_eq (stat (secret, &info), 0);
    cr_assert_eq (info.st_mode & 0777, 0600, "the secret key file has mode %03o",
                  (unsigned)(info.st_mode & 0777));
    zcert_t *pair = zcert_load (secret), *shown = zcert_load (public_file);
    cr_assert (pair && shown);
    cr_assert_str_eq (zcert_public_txt (pair), zcert_public_txt (shown));
    cr_assert_str_neq (zcert_secret_txt (pair), "0000000000000000000000000000000000000000");
    //  Not twice
    cr_assert_eq (ps_test_run_group (make, out, NULL, PS_TEST_WAIT_MS), 1);
    char *text = ps_test_slurp (out);
    cr_assert (strstr (text, "exists already"), "%s", text);
    free (text);
    //  show: the public key, never the secret one
    char *show[] = {pskeys, "show", secret, NULL};
    cr_assert_eq (ps_test_run_group (show, out, NULL, PS_TEST_WAIT_MS), 0);
    text = ps_test_slurp (out);
    cr_assert (strstr (text, zcert_public_txt (pair)), "%s", text);
    cr_assert (strstr (text, "secret-key: present"), "%s", text);
    cr_assert_null (strstr (text, zcert_secret_txt (pair)), "show printed the secret key");
    free (text);
    zcert_destroy (&pair);
    zcert_destroy (&shown);
    char *bad[] = {pskeys, "new", "../x", NULL};
    cr_assert_eq (ps_test_run_group (bad, out, NULL, PS_TEST_WAIT_MS), 2);
    char *none[] = {pskeys, NULL};
    cr_assert_eq (ps_test_run_group (none, out, NULL, PS_TEST_WAIT_MS), 2);
}

Test (auth, a_stranger_asking_for_any_rank_is_refused_and_takes_none, .timeout = 30)
{
    keys_t keys;
    s_keys (&keys);
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = 2;
    char endpoint[64];
    ps_broker_t *broker = s_curve_broker (&config, &keys, endpoint, sizeof endpoint);
    //  Strangers asking the broker for ranks, with and without keys: the
    //  transport refuses them before any HELLO is read
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, PS_WORKER_ANY_RANK, 0);
    options.log = s_keep_log;
    int status;
    for (int i = 0; i < 4; i++) {
        options.curve_secret = i % 2 ? keys.stranger : NULL;
        options.broker_key = i % 2 ? keys.broker_public : NULL;
        s_logged[0] = 0;
        cr_assert_null (ps_worker_connect (&options, &status));
        cr_assert_eq (status, PS_ECONNECT, "%s", s_logged);
    }
    cr_assert_eq (s_info (broker, "live"), 0);
    //  So both ranks are still free for the allowed workers
    options.curve_secret = keys.allowed;
    ps_worker_t *workers[2];
    for (uint32_t i = 0; i < 2; i++) {
        workers[i] = ps_worker_connect (&options, &status);
        cr_assert (workers[i], "%s", s_logged);
        cr_assert_eq (ps_worker_rank (workers[i]), i);
    }
    for (int i = 0; i < 2; i++)
        ps_worker_close (&workers[i]);
    ps_broker_destroy (&broker);
}
