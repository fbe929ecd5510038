/*  =========================================================================
    test_rendezvous - a worker's settings from the environment, and ranks
    the broker gives

    ps_worker_options_from_environment reads a table here (no process
    environment touched): each source, their order, each bad value. The
    broker's any_rank HELLO is driven by raw DEALERs (a flood, a block of
    ranks, a full job); the library's PS_WORKER_ANY_RANK by workers of
    this process (a single broker and a group); psworker by its processes:
    three with no rank flags train, one killed and started again gets its
    rank back, and --print-config under launchers' variables.
    ========================================================================= */

#include "ps_testutil.h"

#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

//  An environment of NAME=VALUE strings, NULL-terminated
static const char *
s_lookup (void *arg, const char *name)
{
    const char *const *table = arg;
    size_t length = strlen (name);
    for (size_t i = 0; table[i]; i++)
        if (strncmp (table[i], name, length) == 0 && table[i][length] == '=')
            return table[i] + length + 1;
    return NULL;
}

//  Fill options from table (given: none); the status
static int
s_read (const char *const *table, ps_worker_options_t *options, ps_worker_config_t *config)
{
    ps_worker_options_init (options);
    return ps_worker_options_from_environment (options, 0, s_lookup, (void *)table, config);
}

static const char *
s_source (const ps_worker_config_t *config, ps_setting_t setting)
{
    return config->settings[setting].source;
}

Test (rendezvous, a_slurm_step_names_the_rank_and_psmq_the_broker)
{
    const char *env[] = {"PSMQ_BROKER=tcp://10.0.0.1:5555", "SLURM_PROCID=2", "SLURM_NTASKS=4",
                         "SLURM_LOCALID=0", NULL};
    ps_worker_options_t options;
    ps_worker_config_t config;
    cr_assert_eq (s_read (env, &options, &config), PS_OK, "%s", config.error);
    cr_assert_str_eq (options.broker, "tcp://10.0.0.1:5555");
    cr_assert_eq (options.rank, 2);
    cr_assert_eq (options.world_size, 4);
    cr_assert_str_eq (config.launcher, "slurm");
    cr_assert_str_eq (s_source (&config, PS_SETTING_BROKER), "PSMQ_BROKER");
    cr_assert_str_eq (s_source (&config, PS_SETTING_RANK), "SLURM_PROCID");
    cr_assert_str_eq (config.settings[PS_SETTING_RANK].value, "2");
    cr_assert_str_eq (s_source (&config, PS_SETTING_WORLD_SIZE), "SLURM_NTASKS");
    cr_assert_str_eq (s_source (&config, PS_SETTING_LOCAL_RANK), "SLURM_LOCALID");
    cr_assert_str_eq (config.settings[PS_SETTING_LOCAL_RANK].value, "0");
    cr_assert_str_eq (config.settings[PS_SETTING_RANK].name, "rank");
    cr_assert_str_eq (s_source (&config, PS_SETTING_WAIT_FOR_BROKER), "default");
    cr_assert_str_eq (s_source (&config, PS_SETTING_CURVE_SECRET), "none");
}

Test (rendezvous, each_launcher_is_found_by_its_variables)
{
    struct {
        const char *env[6];
        const char *launcher;
        uint32_t rank, world; //  world 0: the broker's
        const char *rank_source;
    } cases[] = {
        {{"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=3", "OMPI_COMM_WORLD_LOCAL_RANK=1"},
         "openmpi",
         1,
         3,
         "OMPI_COMM_WORLD_RANK"},
        {{"PMI_RANK=2", "PMI_SIZE=5"}, "mpich", 2, 5, "PMI_RANK"},
        {{"RANK=3", "WORLD_SIZE=8", "LOCAL_RANK=3"}, "torchrun", 3, 8, "RANK"},
        {{"SLURM_PROCID=0", "SLURM_NTASKS=2"}, "slurm", 0, 2, "SLURM_PROCID"},
        {{"JOB_COMPLETION_INDEX=4"}, "kubernetes-job", 4, 0, "JOB_COMPLETION_INDEX"},
        {{"JOB_COMPLETION_INDEX=4", "PSMQ_WORKERS=6"},
         "kubernetes-job",
         4,
         6,
         "JOB_COMPLETION_INDEX"},
        {{"KUBERNETES_SERVICE_HOST=10.96.0.1", "HOSTNAME=psmq-worker-12"},
         "kubernetes-statefulset",
         12,
         0,
         "HOSTNAME"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ps_worker_options_t options;
        ps_worker_config_t config;
        cr_assert_eq (s_read (cases[i].env, &options, &config), PS_OK, "%s: %s", cases[i].launcher,
                      config.error);
        cr_assert_str_eq (config.launcher, cases[i].launcher);
        cr_assert_eq (options.rank, cases[i].rank, "%s", cases[i].launcher);
        cr_assert_eq (options.world_size, cases[i].world, "%s", cases[i].launcher);
        cr_assert_str_eq (s_source (&config, PS_SETTING_RANK), cases[i].rank_source);
        if (!cases[i].world)
            cr_assert_str_eq (s_source (&config, PS_SETTING_WORLD_SIZE), "the broker");
    }
}

Test (rendezvous, nothing_found_leaves_rank_and_world_to_the_broker)
{
    //  RANK alone is no torchrun; a pod name without an ordinal, or an
    //  ordinal outside Kubernetes, is no StatefulSet
    const char *env[] = {"RANK=3", "HOSTNAME=node-7", "PSMQ_RANK=", NULL};
    const char *deployment[] = {"KUBERNETES_SERVICE_HOST=10.96.0.1", "HOSTNAME=web-7c9f8d-xk2p",
                                NULL};
    const char *const *tables[] = {env, deployment};
    for (size_t i = 0; i < 2; i++) {
        ps_worker_options_t options;
        ps_worker_config_t config;
        cr_assert_eq (s_read (tables[i], &options, &config), PS_OK, "%s", config.error);
        cr_assert_eq (options.rank, PS_WORKER_ANY_RANK);
        cr_assert_eq (options.world_size, 0);
        cr_assert_null (options.broker);
        cr_assert_str_eq (config.launcher, "");
        cr_assert_str_eq (s_source (&config, PS_SETTING_RANK), "the broker");
        cr_assert_str_eq (s_source (&config, PS_SETTING_WORLD_SIZE), "the broker");
        cr_assert_str_eq (s_source (&config, PS_SETTING_BROKER), "none");
    }
}

Test (rendezvous, the_order_of_the_sources)
{
    ps_worker_options_t options;
    ps_worker_config_t config;
    //  PSMQ_* before any launcher, per setting
    const char *psmq[] = {"PSMQ_RANK=1", "PSMQ_WORKERS=2", "SLURM_PROCID=5", "SLURM_NTASKS=9",
                          NULL};
    cr_assert_eq (s_read (psmq, &options, &config), PS_OK, "%s", config.error);
    cr_assert_eq (options.rank, 1);
    cr_assert_eq (options.world_size, 2);
    cr_assert_str_eq (s_source (&config, PS_SETTING_RANK), "PSMQ_RANK");
    cr_assert_str_eq (s_source (&config, PS_SETTING_WORLD_SIZE), "PSMQ_WORKERS");
    //  PSMQ_RANK with the launcher's size
    const char *mixed[] = {"PSMQ_RANK=1", "SLURM_PROCID=0", "SLURM_NTASKS=3", NULL};
    cr_assert_eq (s_read (mixed, &options, &config), PS_OK, "%s", config.error);
    cr_assert_eq (options.rank, 1);
    cr_assert_str_eq (s_source (&config, PS_SETTING_WORLD_SIZE), "SLURM_NTASKS");
    //  mpirun inside a Slurm allocation: MPI's rank, not the batch step's
    const char *mpi_in_slurm[] = {"SLURM_PROCID=0",
                                  "SLURM_NTASKS=1",
                                  "OMPI_COMM_WORLD_RANK=2",
                                  "OMPI_COMM_WORLD_SIZE=4",
                                  "PMI_RANK=3",
                                  "PMI_SIZE=4",
                                  NULL};
    cr_assert_eq (s_read (mpi_in_slurm, &options, &config), PS_OK, "%s", config.error);
    cr_assert_eq (options.rank, 2);
    cr_assert_str_eq (config.launcher, "openmpi");
    const char *pmi_in_slurm[] = {"SLURM_PROCID=0", "SLURM_NTASKS=1", "PMI_RANK=3", "PMI_SIZE=4",
                                  NULL};
    cr_assert_eq (s_read (pmi_in_slurm, &options, &config), PS_OK, "%s", config.error);
    cr_assert_eq (options.rank, 3);
    cr_assert_str_eq (config.launcher, "mpich");
    //  srun starting one torchrun per node: torchrun's rank
    const char *torchrun_in_slurm[] = {"SLURM_PROCID=1", "SLURM_NTASKS=2", "RANK=5", "WORLD_SIZE=8",
                                       NULL};
    cr_assert_eq (s_read (torchrun_in_slurm, &options, &config), PS_OK, "%s", config.error);
    cr_assert_eq (options.rank, 5);
    cr_assert_eq (options.world_size, 8);
    //  Slurm before Kubernetes
    const char *slurm_in_k8s[] = {"KUBERNETES_SERVICE_HOST=10.96.0.1",
                                  "HOSTNAME=w-3",
                                  "JOB_COMPLETION_INDEX=1",
                                  "SLURM_PROCID=0",
                                  "SLURM_NTASKS=1",
                                  NULL};
    cr_assert_eq (s_read (slurm_in_k8s, &options, &config), PS_OK, "%s", config.error);
    cr_assert_str_eq (config.launcher, "slurm");
    //  An Indexed Job before the StatefulSet guess
    const char *job_in_set[] = {"KUBERNETES_SERVICE_HOST=10.96.0.1", "HOSTNAME=w-3",
                                "JOB_COMPLETION_INDEX=1", NULL};
    cr_assert_eq (s_read (job_in_set, &options, &config), PS_OK, "%s", config.error);
    cr_assert_eq (options.rank, 1);

    //  The caller's own (flags) before everything: kept, variables unread
    const char *bad[] = {"PSMQ_BROKER=tcp://b:1",
                         "PSMQ_RANK=zz",
                         "PSMQ_WORKERS=-1",
                         "PSMQ_WAIT_FOR_BROKER=soon",
                         "PSMQ_CURVE_SECRET=/k/w.key_secret",
                         NULL};
    ps_worker_options_init (&options);
    options.broker = "tcp://a:1";
    options.rank = 1;
    options.world_size = 2;
    options.wait_for_broker_ms = 5000;
    unsigned given = PS_WORKER_GIVEN_BROKER | PS_WORKER_GIVEN_RANK | PS_WORKER_GIVEN_WORLD_SIZE |
                     PS_WORKER_GIVEN_WAIT_FOR_BROKER;
    cr_assert_eq (
        ps_worker_options_from_environment (&options, given, s_lookup, (void *)bad, &config), PS_OK,
        "%s", config.error);
    cr_assert_str_eq (options.broker, "tcp://a:1");
    cr_assert_eq (options.rank, 1);
    cr_assert_eq (options.wait_for_broker_ms, 5000);
    cr_assert_str_eq (s_source (&config, PS_SETTING_BROKER), "given");
    cr_assert_str_eq (config.settings[PS_SETTING_WAIT_FOR_BROKER].value, "5");
    //  ... and only those given
    cr_assert_str_eq (options.curve_secret, "/k/w.key_secret");
    cr_assert_str_eq (s_source (&config, PS_SETTING_CURVE_SECRET), "PSMQ_CURVE_SECRET");

    //  The keys and the wait
    const char *keys[] = {"PSMQ_CURVE_SECRET=w.key_secret", "PSMQ_BROKER_KEY=b.key",
                          "PSMQ_WAIT_FOR_BROKER=2.5", NULL};
    cr_assert_eq (s_read (keys, &options, &config), PS_OK, "%s", config.error);
    cr_assert_str_eq (options.curve_secret, "w.key_secret");
    cr_assert_str_eq (options.broker_key, "b.key");
    cr_assert_eq (options.wait_for_broker_ms, 2500);
    cr_assert_str_eq (s_source (&config, PS_SETTING_WAIT_FOR_BROKER), "PSMQ_WAIT_FOR_BROKER");
}

Test (rendezvous, every_bad_value_is_named_with_its_variable)
{
    struct {
        const char *env[4];
        const char *says;
    } bad[] = {
        {{"PSMQ_RANK=abc"}, "PSMQ_RANK='abc' is not a rank"},
        {{"PSMQ_RANK=-1"}, "PSMQ_RANK='-1' is not a rank"},
        {{"PSMQ_RANK=4096"}, "PSMQ_RANK='4096' is not a rank: a whole number from 0 to 4095"},
        {{"PSMQ_WORKERS=0"}, "PSMQ_WORKERS='0' is not a number of workers"},
        {{"PSMQ_WORKERS=3x"}, "PSMQ_WORKERS='3x' is not a number of workers"},
        {{"PSMQ_WORKERS=4097"}, "PSMQ_WORKERS='4097'"},
        {{"PSMQ_WAIT_FOR_BROKER=-2"}, "PSMQ_WAIT_FOR_BROKER='-2' is not a number of seconds"},
        {{"PSMQ_WAIT_FOR_BROKER=nan"}, "PSMQ_WAIT_FOR_BROKER='nan'"},
        {{"PSMQ_WAIT_FOR_BROKER=1e9"}, "PSMQ_WAIT_FOR_BROKER='1e9'"},
        {{"OMPI_COMM_WORLD_RANK=x", "OMPI_COMM_WORLD_SIZE=2"}, "OMPI_COMM_WORLD_RANK='x'"},
        {{"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=-4"}, "OMPI_COMM_WORLD_SIZE='-4'"},
        {{"PMI_RANK=1.5", "PMI_SIZE=2"}, "PMI_RANK='1.5'"},
        {{"RANK=one", "WORLD_SIZE=2"}, "RANK='one'"},
        {{"SLURM_PROCID=0", "SLURM_NTASKS=zero"}, "SLURM_NTASKS='zero'"},
        {{"JOB_COMPLETION_INDEX=-3"}, "JOB_COMPLETION_INDEX='-3'"},
        {{"KUBERNETES_SERVICE_HOST=x", "HOSTNAME=w-99999"}, "HOSTNAME='w-99999' is not a rank"},
        //  A rank beyond the world, from the same launcher or two sources
        {{"SLURM_PROCID=4", "SLURM_NTASKS=4"},
         "rank 4 (SLURM_PROCID='4') with 1 local workers does not fit a world of 4 "
         "(SLURM_NTASKS='4')"},
        {{"PSMQ_RANK=5", "SLURM_PROCID=0", "SLURM_NTASKS=3"},
         "rank 5 (PSMQ_RANK='5') with 1 local workers does not fit a world of 3 "
         "(SLURM_NTASKS='3')"},
        {{"PSMQ_WORKERS=2", "JOB_COMPLETION_INDEX=2"}, "(JOB_COMPLETION_INDEX='2')"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ps_worker_options_t options;
        ps_worker_config_t config;
        cr_assert_eq (s_read (bad[i].env, &options, &config), PS_EINVAL, "%s", bad[i].says);
        cr_assert (strstr (config.error, bad[i].says), "expected '%s' in: %s", bad[i].says,
                   config.error);
    }
    //  Local workers count: ranks 2 and 3 of a world of 3 do not fit
    const char *env[] = {"PSMQ_RANK=2", "PSMQ_WORKERS=3", NULL};
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.local_workers = 2;
    ps_worker_config_t config;
    cr_assert_eq (ps_worker_options_from_environment (&options, 0, s_lookup, (void *)env, &config),
                  PS_EINVAL);
    cr_assert (strstr (config.error, "with 2 local workers"), "%s", config.error);
    //  Without a config, the detail goes to nobody, the status still says
    cr_assert_eq (ps_worker_options_from_environment (&options, 0, s_lookup, (void *)env, NULL),
                  PS_EINVAL);
    cr_assert_eq (ps_worker_options_from_environment (NULL, 0, s_lookup, (void *)env, NULL),
                  PS_EINVAL);
}

Test (rendezvous, the_process_environment_is_read_without_a_lookup)
{
    setenv ("PSMQ_BROKER", "tcp://127.0.0.1:9", 1);
    setenv ("PSMQ_RANK", "0", 1);
    setenv ("PSMQ_WORKERS", "1", 1);
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    cr_assert_eq (ps_worker_options_from_environment (&options, 0, NULL, NULL, NULL), PS_OK);
    cr_assert_str_eq (options.broker, "tcp://127.0.0.1:9");
    cr_assert_eq (options.world_size, 1);
    unsetenv ("PSMQ_BROKER");
    unsetenv ("PSMQ_RANK");
    unsetenv ("PSMQ_WORKERS");
}

// ------------------------------------------------ ranks from the broker

//  Whether a broker's INFO shows rank live
static bool
s_rank_live (const char *info, uint32_t rank)
{
    json_t *root = json_loads (info, 0, NULL);
    json_t *workers = json_object_get (root, "workers");
    bool live = false;
    for (size_t i = 0; i < json_array_size (workers); i++) {
        json_t *worker = json_array_get (workers, i);
        const char *state = json_string_value (json_object_get (worker, "state"));
        if (json_integer_value (json_object_get (worker, "rank")) == rank && state &&
            strcmp (state, "live") == 0)
            live = true;
    }
    json_decref (root);
    return live;
}

//  An any_rank HELLO of weight over raw; the reply
static ps_envelope_t *
s_any_rank (ps_test_raw_t *raw, uint32_t world, uint32_t weight)
{
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.any_rank = true;
    hello.world_size = world;
    hello.weight = weight;
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__HELLO, PS_WORKER_ANY_RANK, 1);
    envelope.hello = &hello;
    return ps_test_raw_request (raw, &envelope);
}

Test (rendezvous, a_flood_of_any_rank_hellos_takes_no_more_than_the_world, .timeout = 30)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (3, 0, 0, endpoint, sizeof endpoint);
    enum { PEERS = 8 };
    ps_test_raw_t raw[PEERS];
    bool taken[3] = {false};
    for (int i = 0; i < PEERS; i++) {
        ps_test_raw_open (&raw[i], endpoint);
        ps_envelope_t *reply = s_any_rank (&raw[i], 0, 1);
        if (i < 3) {
            cr_assert_eq (reply->type, PSMQ__MSG_TYPE__HELLO, "peer %d: %s", i,
                          reply->error ? reply->error->message : "");
            //  The lowest free rank, and the world, in the reply
            cr_assert_eq (reply->worker, (uint32_t)i);
            cr_assert_eq (reply->hello->world_size, 3);
            taken[reply->worker] = true;
        }
        else {
            cr_assert_eq (reply->type, PSMQ__MSG_TYPE__ERROR, "peer %d was given %u", i,
                          reply->worker);
            cr_assert_eq (reply->error->code, PSMQ__ERR_CODE__ERR_RANK);
            cr_assert (strstr (reply->error->message, "the job is full (3 of 3 ranks live)"), "%s",
                       reply->error->message);
        }
    }
    cr_assert (taken[0] && taken[1] && taken[2]);
    //  A connection asking again gets its own ranks back, not another
    ps_envelope_t *again = s_any_rank (&raw[1], 0, 1);
    cr_assert_eq (again->type, PSMQ__MSG_TYPE__HELLO);
    cr_assert_eq (again->worker, 1);
    //  An explicit rank that is live is still refused without its session
    ps_envelope_t envelope;
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 3;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__HELLO, 2, 1);
    envelope.hello = &hello;
    ps_envelope_t *refused = ps_test_raw_request (&raw[5], &envelope);
    cr_assert_eq (refused->type, PSMQ__MSG_TYPE__ERROR);
    cr_assert (strstr (refused->error->message, "live on another connection"), "%s",
               refused->error->message);
    //  A rank freed (BYE) is the next one given
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__BYE, 1, 2);
    cr_assert_eq (ps_test_raw_request (&raw[1], &envelope)->type, PSMQ__MSG_TYPE__BYE);
    ps_envelope_t *freed = s_any_rank (&raw[6], 0, 1);
    cr_assert_eq (freed->type, PSMQ__MSG_TYPE__HELLO, "%s",
                  freed->error ? freed->error->message : "");
    cr_assert_eq (freed->worker, 1);
    //  Another world than the broker's is refused
    ps_envelope_t *world = s_any_rank (&raw[7], 5, 1);
    cr_assert_eq (world->type, PSMQ__MSG_TYPE__ERROR);
    cr_assert_eq (world->error->code, PSMQ__ERR_CODE__ERR_RANK);
    for (int i = 0; i < PEERS; i++)
        ps_test_raw_close (&raw[i]);
    ps_broker_destroy (&broker);
}

Test (rendezvous, a_block_of_ranks_is_the_lowest_free_one_that_fits, .timeout = 30)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (5, 0, 0, endpoint, sizeof endpoint);
    ps_test_raw_t one, block, big, late;
    ps_test_raw_open (&one, endpoint);
    ps_test_raw_open (&block, endpoint);
    ps_test_raw_open (&big, endpoint);
    ps_test_raw_open (&late, endpoint);
    //  Rank 1 held: a block of 2 goes to 2..3, not over 1
    Psmq__Hello hello = PSMQ__HELLO__INIT;
    hello.world_size = 5;
    ps_test_raw_hello (&one, 1, &hello);
    ps_envelope_t *reply = s_any_rank (&block, 5, 2);
    cr_assert_eq (reply->type, PSMQ__MSG_TYPE__HELLO, "%s",
                  reply->error ? reply->error->message : "");
    cr_assert_eq (reply->worker, 2);
    //  No 2 free ranks in a row are left (0 and 4)
    reply = s_any_rank (&big, 5, 2);
    cr_assert_eq (reply->type, PSMQ__MSG_TYPE__ERROR);
    cr_assert (strstr (reply->error->message, "no 2 free ranks in a row"), "%s",
               reply->error->message);
    //  More ranks than the world
    reply = s_any_rank (&big, 0, 6);
    cr_assert_eq (reply->type, PSMQ__MSG_TYPE__ERROR);
    cr_assert_eq (reply->error->code, PSMQ__ERR_CODE__ERR_RANK);
    //  One rank: the lowest free, 0
    reply = s_any_rank (&late, 5, 1);
    cr_assert_eq (reply->worker, 0);
    ps_test_raw_close (&one);
    ps_test_raw_close (&block);
    ps_test_raw_close (&big);
    ps_test_raw_close (&late);
    ps_broker_destroy (&broker);
}

Test (rendezvous, a_worker_without_a_rank_is_given_one_and_keeps_it, .timeout = 60)
{
    char endpoint[64];
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = 2;
    ps_broker_t *broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    ps_worker_options_t options;
    ps_test_options (&options, endpoint, PS_WORKER_ANY_RANK, 0);
    options.wait_for_broker_ms = 10000;
    int status;
    ps_worker_t *first = ps_worker_connect (&options, &status);
    cr_assert_not_null (first, "%s", ps_strerror (status));
    ps_worker_t *second = ps_worker_connect (&options, &status);
    cr_assert_not_null (second, "%s", ps_strerror (status));
    cr_assert_eq (ps_worker_rank (first), 0);
    cr_assert_eq (ps_worker_rank (second), 1);
    cr_assert_eq (ps_worker_world_size (second), 2);
    //  A third finds the job full (and does not wait without the option)
    options.wait_for_broker_ms = 0;
    cr_assert_null (ps_worker_connect (&options, &status));
    cr_assert_eq (status, PS_ERANK);
    //  The broker restarts, empty: the second rejoins as rank 1, not as
    //  whatever rank is free first
    ps_worker_init (first, "w", 4, NULL, NULL);
    broker = ps_test_broker_restart (&broker, &config);
    float w[4];
    ps_tensor_t tensor = {.key = "w", .data = w, .count = 4};
    status = ps_worker_pull (second, &tensor, 1);
    cr_assert (status == PS_EREJOINED || status == PS_EUNKNOWN_KEY, "%s", ps_strerror (status));
    cr_assert_eq (ps_worker_rank (second), 1);
    char *json = NULL;
    cr_assert_eq (ps_worker_info (second, &json), PS_OK);
    cr_assert (s_rank_live (json, 1) && !s_rank_live (json, 0), "%s", json);
    free (json);
    ps_worker_close (&first);
    ps_worker_close (&second);
    //  A rank of its own and the broker's world (a Kubernetes Indexed Job)
    ps_test_options (&options, endpoint, 1, 0);
    ps_worker_t *indexed = ps_worker_connect (&options, &status);
    cr_assert_not_null (indexed, "%s", ps_strerror (status));
    cr_assert_eq (ps_worker_rank (indexed), 1);
    cr_assert_eq (ps_worker_world_size (indexed), 2);
    ps_worker_close (&indexed);
    ps_broker_destroy (&broker);
}

typedef struct {
    const char *endpoint;
    int status;     //  of its connect
    uint32_t rank;  //  it was given
    int64_t waited; //  ms
} latecomer_t;

//  A worker of its own thread that asks for any rank, waiting up to 10 s
static void *
s_latecomer (void *arg)
{
    latecomer_t *self = arg;
    ps_worker_options_t options;
    ps_test_options (&options, self->endpoint, PS_WORKER_ANY_RANK, 0);
    options.wait_for_broker_ms = 10000;
    int64_t start = zclock_mono ();
    ps_worker_t *worker = ps_worker_connect (&options, &self->status);
    self->waited = zclock_mono () - start;
    if (worker)
        self->rank = ps_worker_rank (worker);
    ps_worker_close (&worker);
    return NULL;
}

Test (rendezvous, a_full_job_is_waited_out_when_the_options_let_it, .timeout = 60)
{
    char endpoint[64];
    ps_broker_t *broker = ps_test_broker (1, 0, 0, endpoint, sizeof endpoint);
    ps_worker_t *holder = ps_test_worker (endpoint, 0, 1, PS_TEST_WAIT_MS);
    cr_assert (holder);
    latecomer_t late = {.endpoint = endpoint, .status = -1, .rank = 99};
    pthread_t thread;
    pthread_create (&thread, NULL, s_latecomer, &late);
    zclock_sleep (500);
    ps_worker_close (&holder);
    pthread_join (thread, NULL);
    cr_assert_eq (late.status, PS_OK, "%s", ps_strerror (late.status));
    cr_assert_eq (late.rank, 0);
    cr_assert_geq (late.waited, 400, "it waited %lld ms", (long long)late.waited);
    ps_broker_destroy (&broker);
}

Test (rendezvous, a_group_gives_the_rank_of_shard_0_to_every_member, .timeout = 60)
{
    ps_broker_t *brokers[2];
    char endpoints[256];
    cr_assert_eq (ps_test_group (2, 2, 0, brokers, endpoints, sizeof endpoints), 0);
    ps_worker_options_t options;
    ps_test_options (&options, endpoints, PS_WORKER_ANY_RANK, 0);
    int status;
    ps_worker_t *a = ps_worker_connect (&options, &status);
    cr_assert_not_null (a, "%s", ps_strerror (status));
    ps_worker_t *b = ps_worker_connect (&options, &status);
    cr_assert_not_null (b, "%s", ps_strerror (status));
    cr_assert_eq (ps_worker_rank (a), 0);
    cr_assert_eq (ps_worker_rank (b), 1);
    //  Both members hold both ranks live, each on its worker's connection
    for (uint32_t shard = 0; shard < 2; shard++) {
        char *json = NULL;
        cr_assert_eq (ps_worker_info_shard (b, shard, &json), PS_OK);
        cr_assert_eq (ps_test_json_number (json, "live", false), 2, "shard %u: %s", shard, json);
        free (json);
    }
    //  And they train together: a BSP clock completes
    cr_assert_eq (ps_worker_init (a, "w", 8, NULL, NULL), PS_OK);
    cr_assert_eq (ps_worker_init (b, "w", 8, NULL, NULL), PS_OK);
    ps_ticket_t ticket;
    cr_assert_eq (ps_worker_clock_async (a, &ticket), PS_OK);
    cr_assert_eq (ps_worker_clock (b), PS_OK);
    cr_assert_eq (ps_worker_wait (a, ticket, -1), PS_OK);
    ps_worker_close (&a);
    ps_worker_close (&b);
    for (int i = 0; i < 2; i++)
        ps_broker_destroy (&brokers[i]);
}

// ------------------------------------------------------------ psworker

//  Run psworker with args and these variables added to its environment;
//  its exit status, its stdout and stderr in *text (the caller frees)
static int
s_psworker_env (char *const args[], char *const env[], char **text)
{
    char binary[4096], out_path[] = "/tmp/psmq-rdv-XXXXXX";
    int fd = mkstemp (out_path);
    cr_assert (fd >= 0);
    close (fd);
    char *argv[16] = {(char *)ps_test_binary ("psworker", binary, sizeof binary)};
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    pid_t pid = fork ();
    cr_assert (pid >= 0);
    if (pid == 0) {
        //  Only what the test names: a CI machine's own variables (a
        //  Slurm job, a pod) must not leak in
        clearenv ();
        for (int i = 0; env[i]; i++)
            putenv (env[i]);
        int out = open (out_path, O_WRONLY | O_TRUNC);
        dup2 (out, 1);
        dup2 (out, 2);
        execv (argv[0], argv);
        _exit (127);
    }
    int status = ps_test_wait_pid (pid, PS_TEST_WAIT_MS);
    *text = ps_test_slurp (out_path);
    unlink (out_path);
    return status;
}

Test (rendezvous, print_config_shows_each_setting_and_its_source, .timeout = 60)
{
    struct {
        char *env[8];
        const char *says[4];
    } cases[] = {
        {{"SLURM_PROCID=2", "SLURM_NTASKS=4", "SLURM_LOCALID=0", "PSMQ_BROKER=tcp://h:5555"},
         {"rank: 2 (SLURM_PROCID)\n", "world_size: 4 (SLURM_NTASKS)\n",
          "local_rank: 0 (SLURM_LOCALID)\n", "broker: tcp://h:5555 (PSMQ_BROKER)\n"}},
        {{"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=3", "SLURM_PROCID=0", "SLURM_NTASKS=1"},
         {"rank: 1 (OMPI_COMM_WORLD_RANK)\n", "world_size: 3 (OMPI_COMM_WORLD_SIZE)\n",
          "launcher: openmpi\n", "broker: - (none)\n"}},
        {{"KUBERNETES_SERVICE_HOST=10.96.0.1", "HOSTNAME=psmq-worker-3"},
         {"rank: 3 (HOSTNAME)\n", "world_size: ? (the broker)\n",
          "launcher: kubernetes-statefulset\n", "wait_for_broker: 60 (default)\n"}},
        {{"JOB_COMPLETION_INDEX=5", "PSMQ_WORKERS=8", "PSMQ_WAIT_FOR_BROKER=30"},
         {"rank: 5 (JOB_COMPLETION_INDEX)\n", "world_size: 8 (PSMQ_WORKERS)\n",
          "wait_for_broker: 30 (PSMQ_WAIT_FOR_BROKER)\n", "launcher: kubernetes-job\n"}},
        {{"PATH=/usr/bin"},
         {"rank: ? (the broker)\n", "world_size: ? (the broker)\n", "launcher: none\n",
          "curve_secret: - (none)\n"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *args[] = {"--print-config", NULL};
        char *text;
        cr_assert_eq (s_psworker_env (args, cases[i].env, &text), 0, "%s", text);
        for (int j = 0; j < 4; j++)
            cr_assert (strstr (text, cases[i].says[j]), "case %zu: expected '%s' in:\n%s", i,
                       cases[i].says[j], text);
        free (text);
    }
    //  Flags before the environment, named as flags
    char *flags[] = {"--print-config", "--rank",    "1", "--workers", "2",
                     "--broker",       "tcp://f:1", NULL};
    char *env[] = {"SLURM_PROCID=3", "SLURM_NTASKS=9", "PSMQ_BROKER=tcp://e:1", NULL};
    char *text;
    cr_assert_eq (s_psworker_env (flags, env, &text), 0, "%s", text);
    cr_assert (strstr (text, "rank: 1 (--rank)\n") &&
                   strstr (text, "world_size: 2 (--workers)\n") &&
                   strstr (text, "broker: tcp://f:1 (--broker)\n"),
               "%s", text);
    free (text);
    //  A bad variable is a usage error naming it
    char *bad[] = {"PSMQ_RANK=two", NULL};
    char *print[] = {"--print-config", NULL};
    cr_assert_eq (s_psworker_env (print, bad, &text), 2, "%s", text);
    cr_assert (strstr (text, "psworker: PSMQ_RANK='two' is not a rank"), "%s", text);
    free (text);
}

//  The rank psworker says the broker gave it, from its output at path,
//  waiting up to PS_TEST_WAIT_MS; -1 when it said none
static int
s_given_rank (const char *path)
{
    for (int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS; zclock_mono () < deadline;
         zclock_sleep (50)) {
        char *text = ps_test_slurp (path);
        const char *said = strstr (text, "psworker: rank ");
        int rank = -1;
        if (said && strstr (said, "(given by the broker)"))
            rank = (int)strtol (said + strlen ("psworker: rank "), NULL, 10);
        free (text);
        if (rank >= 0)
            return rank;
    }
    return -1;
}

Test (rendezvous, three_psworkers_without_ranks_train_and_one_restarted_keeps_its_rank,
      .timeout = 120)
{
    char *broker_args[] = {"--workers", "3", NULL};
    char endpoint[128], out[4096];
    ps_test_child_t broker =
        ps_test_psbroker (broker_args, endpoint, sizeof endpoint, out, sizeof out);
    char *args[] = {"--broker", endpoint, "--data", "synthetic",  "--epochs", "3",
                    "--hidden", "32",     "--json", "--delay-ms", "30",       NULL};
    char paths[4][64];
    pid_t pids[4];
    int ranks[4];
    bool seen[3] = {false};
    for (int i = 0; i < 3; i++) {
        snprintf (paths[i], sizeof paths[i], "/tmp/psmq-rdv-%d-%d.out", getpid (), i);
        pids[i] = ps_test_psworker (args, paths[i]);
        ranks[i] = s_given_rank (paths[i]);
        cr_assert (ranks[i] >= 0 && ranks[i] < 3, "worker %d: %d", i, ranks[i]);
        cr_assert (!seen[ranks[i]], "rank %d given twice", ranks[i]);
        seen[ranks[i]] = true;
    }
    //  Kill the worker of rank 1 while it trains; the broker evicts it on
    //  the closed connection and gives its rank to the next that asks
    int victim = ranks[0] == 1 ? 0 : ranks[1] == 1 ? 1 : 2;
    kill (pids[victim], SIGKILL);
    ps_test_wait_pid (pids[victim], PS_TEST_WAIT_MS);
    snprintf (paths[3], sizeof paths[3], "/tmp/psmq-rdv-%d-3.out", getpid ());
    pids[3] = ps_test_psworker (args, paths[3]);
    ranks[3] = s_given_rank (paths[3]);
    cr_assert_eq (ranks[3], 1, "the restarted worker got rank %d", ranks[3]);
    for (int i = 0; i < 4; i++) {
        if (i == victim)
            continue;
        int status = ps_test_wait_pid (pids[i], 90000);
        char *text = ps_test_slurp (paths[i]);
        cr_assert_eq (status, 0, "worker %d (rank %d): %s", i, ranks[i], text);
        //  Each finished as its rank, of a world of 3
        char final[64];
        snprintf (final, sizeof final, "{\"rank\":%d,\"epoch\":3,\"final\":true", ranks[i]);
        cr_assert (strstr (text, final), "expected '%s' in: %s", final, text);
        cr_assert (strstr (text, "of 3 (given by the broker)"), "%s", text);
        free (text);
    }
    for (int i = 0; i < 4; i++)
        unlink (paths[i]);
    kill (broker.pid, SIGTERM);
    ps_test_wait_pid (broker.pid, PS_TEST_WAIT_MS);
}
