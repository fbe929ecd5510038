/*  =========================================================================
    test_push_credit - pushes in parts share one budget (PROTOCOL.md,
    Pushes in parts: Credit)

    Raw peers push a key of two parts by hand, as the worker library does:
    an ask, then a part for each grant. The grants out at once stay within
    the broker's push budget however many connections ask, a connection
    that holds grants and goes silent loses them to the others, and a
    part that comes without a grant is taken all the same.
    ========================================================================= */

#include "ps_codec.h"
#include "ps_limits.h"
#include "ps_testutil.h"
#include "ps_worker.h"
#include <criterion/criterion.h>
#include <czmq.h>
#include <jansson.h>
#include <stdlib.h>

#define KEY_COUNT (PS_PUSH_PART_BYTES / sizeof (float) * 2)
#define PART_COUNT (KEY_COUNT / 2)
#define PEERS 4

//  A broker of PEERS raw ranks and one worker (the last rank), which made
//  "w" of two parts (SGD at rate 1, ASP) and reads it back
typedef struct {
    ps_broker_t *broker;
    ps_worker_t *worker;
    ps_test_raw_t peers[PEERS];
    float *values;
} job_t;

static void
s_job_start (job_t *job, uint64_t push_budget)
{
    ps_broker_config_t config;
    ps_broker_config_defaults (&config);
    config.workers = PEERS + 1;
    config.staleness = -1;
    config.push_budget = push_budget;
    config.heartbeat_ms = 100;
    char endpoint[64];
    job->broker = ps_test_broker_with (&config, endpoint, sizeof endpoint);
    job->worker = ps_test_worker (endpoint, PEERS, PEERS + 1, PS_TEST_WAIT_MS);
    ps_optim_settings_t sgd = {.kind = PS_OPTIMIZER_SGD, .lr = 1};
    cr_assert_eq (ps_worker_init (job->worker, "w", KEY_COUNT, NULL, &sgd), PS_OK);
    job->values = malloc (KEY_COUNT * sizeof (float));
    cr_assert (job->values);
    for (uint32_t rank = 0; rank < PEERS; rank++) {
        ps_test_raw_open (&job->peers[rank], endpoint);
        Psmq__Hello hello = PSMQ__HELLO__INIT;
        hello.world_size = PEERS + 1;
        ps_test_raw_hello (&job->peers[rank], rank, &hello);
    }
}

static void
s_job_stop (job_t *job)
{
    for (uint32_t rank = 0; rank < PEERS; rank++)
        ps_test_raw_close (&job->peers[rank]);
    free (job->values);
    ps_worker_close (&job->worker);
    ps_broker_destroy (&job->broker);
}

//  Rank's ask for room for its push seq
static void
s_ask (job_t *job, uint32_t rank, uint64_t seq)
{
    ps_envelope_t envelope;
    ps_test_envelope (&envelope, PSMQ__MSG_TYPE__PUSH, rank, seq);
    envelope.grad_count = 1;
    envelope.more = true;
    ps_test_raw_send (&job->peers[rank], &envelope, 0);
}

//  Part `part` (0 or 1) of rank's push seq of "w", every value `value`
static void
s_send_part (job_t *job, uint32_t rank, uint64_t seq, int part, float value)
{
    for (size_t i = 0; i < PART_COUNT; i++)
        job->values[i] = value;
    ps_test_raw_push (&job->peers[rank], rank, seq, 0, "w", (uint64_t)part * PART_COUNT,
                      job->values, PART_COUNT, part == 0);
}

//  What rank's connection has to say within ms: a grant (1), the ack of
//  push seq (2), or nothing (0); anything else fails the test
static int
s_hear (job_t *job, uint32_t rank, uint64_t seq, int ms)
{
    zmq_pollitem_t item = {job->peers[rank].dealer, 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, ms) <= 0)
        return 0;
    ps_envelope_t *reply = ps_test_raw_receive (&job->peers[rank]);
    cr_assert (reply, "rank %u: a reply that does not decode", rank);
    cr_assert (reply->type == PSMQ__MSG_TYPE__PUSH && reply->seq == seq,
               "rank %u: %s seq %lu (%s) where push %lu's grant or ack was due", rank,
               ps_codec_type_name (reply->type), (unsigned long)reply->seq,
               reply->error ? reply->error->message : "", (unsigned long)seq);
    return reply->more ? 1 : 2;
}

//  Every value of "w" as the worker pulls it must be `want`
static void
s_expect_w (job_t *job, float want)
{
    ps_tensor_t tensor = {"w", job->values, KEY_COUNT};
    cr_assert_eq (ps_worker_pull (job->worker, &tensor, 1), PS_OK);
    for (size_t i = 0; i < KEY_COUNT; i++)
        cr_assert_eq (job->values[i], want, "w[%zu] = %g where %g was due", i, job->values[i],
                      want);
}

static json_int_t
s_limit_figure (job_t *job, const char *name)
{
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", ps_broker_port (job->broker));
    char *text = NULL;
    cr_assert_eq (ps_worker_query_info (endpoint, PS_TEST_WAIT_MS, &text), PS_OK);
    json_t *info = json_loads (text, 0, NULL);
    cr_assert (info, "INFO is not JSON: %s", text);
    json_t *figure = json_object_get (json_object_get (info, "limits"), name);
    cr_assert (json_is_integer (figure), "INFO has no limits.%s: %s", name, text);
    json_int_t value = json_integer_value (figure);
    json_decref (info);
    free (text);
    return value;
}

Test (push_credit, the_grants_out_at_once_stay_within_one_budget_however_many_ask, .timeout = 60)
{
    //  A budget of two parts: four connections asking at once get two
    //  grants between them, not a window each
    job_t job;
    s_job_start (&job, 2 * PS_PUSH_PART_BYTES);
    for (uint32_t rank = 0; rank < PEERS; rank++)
        s_ask (&job, rank, 10);
    int grants[PEERS] = {0}, sent[PEERS] = {0}, granted = 0;
    int64_t deadline = zclock_mono () + PS_TEST_WAIT_MS;
    while (granted < 2 && zclock_mono () < deadline)
        for (uint32_t rank = 0; rank < PEERS; rank++)
            if (s_hear (&job, rank, 10, 10) == 1) {
                grants[rank]++;
                granted++;
            }
    //  Counted while their holders are not silent for PS_GRANT_IDLE_MS
    cr_assert_eq (s_limit_figure (&job, "push_granted_bytes"), 2 * PS_PUSH_PART_BYTES);
    //  And no more come
    deadline = zclock_mono () + PS_GRANT_IDLE_MS / 4;
    while (zclock_mono () < deadline)
        for (uint32_t rank = 0; rank < PEERS; rank++)
            if (s_hear (&job, rank, 10, 10) == 1) {
                grants[rank]++;
                granted++;
            }
    cr_assert_eq (granted, 2, "%d grants out at once under a budget of 2 parts", granted);

    //  Each connection sends a part for each grant, and every push ends:
    //  the grants go round as the aggregator applies the parts
    int done = 0;
    deadline = zclock_mono () + 20000;
    while (done < PEERS && zclock_mono () < deadline)
        for (uint32_t rank = 0; rank < PEERS; rank++) {
            while (sent[rank] < 2 && sent[rank] < grants[rank]) {
                s_send_part (&job, rank, 10, sent[rank], (float)(rank + 1));
                sent[rank]++;
            }
            int heard = s_hear (&job, rank, 10, 5);
            grants[rank] += heard == 1;
            if (heard == 2) {
                cr_assert_eq (sent[rank], 2, "rank %u acked before its last part", rank);
                done++;
            }
        }
    cr_assert_eq (done, PEERS, "%d of %d pushes ended", done, PEERS);
    //  1 + 2 + 3 + 4 stepped at rate 1
    s_expect_w (&job, -10);
    cr_assert_gt (s_limit_figure (&job, "push_grants_withheld"), 0);
    cr_assert_geq (s_limit_figure (&job, "push_grants"), 2 * PEERS);
    //  Every push ended: no grant is counted any more
    cr_assert_eq (s_limit_figure (&job, "push_granted_bytes"), 0);
    s_job_stop (&job);
}

Test (push_credit, a_connection_silent_with_grants_in_hand_loses_them_to_the_others, .timeout = 60)
{
    job_t job;
    s_job_start (&job, 2 * PS_PUSH_PART_BYTES);
    //  Rank 0 takes the whole budget and says nothing more
    s_ask (&job, 0, 20);
    cr_assert_eq (s_hear (&job, 0, 20, PS_TEST_WAIT_MS), 1);
    cr_assert_eq (s_hear (&job, 0, 20, PS_TEST_WAIT_MS), 1);
    //  Rank 1 waits for it while rank 0 may still be on its way...
    int64_t asked = zclock_mono ();
    s_ask (&job, 1, 30);
    cr_assert_eq (s_hear (&job, 1, 30, PS_GRANT_IDLE_MS / 2), 0,
                  "a grant beyond the budget while rank 0 holds it");
    //  ...and not much longer than PS_GRANT_IDLE_MS
    cr_assert_eq (s_hear (&job, 1, 30, PS_GRANT_IDLE_MS + 5000), 1,
                  "rank 1 got no grant while rank 0 stayed silent");
    int64_t waited = zclock_mono () - asked;
    cr_assert_geq (waited, PS_GRANT_IDLE_MS / 2);
    //  Rank 1's push goes through; rank 0's late parts are taken as well
    s_send_part (&job, 1, 30, 0, 2);
    int heard;
    while ((heard = s_hear (&job, 1, 30, 300)) == 1)
        ;
    cr_assert_eq (heard, 0, "rank 1 was acked before its last part");
    s_send_part (&job, 1, 30, 1, 2);
    cr_assert_eq (s_hear (&job, 1, 30, PS_TEST_WAIT_MS), 2, "rank 1's push got no ack");
    s_send_part (&job, 0, 20, 0, 1);
    s_send_part (&job, 0, 20, 1, 1);
    while ((heard = s_hear (&job, 0, 20, PS_TEST_WAIT_MS)) == 1)
        ;
    cr_assert_eq (heard, 2, "rank 0's late push got no ack");
    s_expect_w (&job, -3);
    s_job_stop (&job);
}

Test (push_credit, a_part_without_a_grant_is_taken_and_its_push_then_granted, .timeout = 60)
{
    //  A client that does not ask: its first part opens the push, and the
    //  broker grants it room for the rest
    job_t job;
    s_job_start (&job, 0);
    s_send_part (&job, 2, 40, 0, 5);
    cr_assert_eq (s_hear (&job, 2, 40, PS_TEST_WAIT_MS), 1, "no grant after an unasked part");
    s_send_part (&job, 2, 40, 1, 5);
    int heard;
    while ((heard = s_hear (&job, 2, 40, PS_TEST_WAIT_MS)) == 1)
        ;
    cr_assert_eq (heard, 2, "the push got no ack");
    s_expect_w (&job, -5);
    s_job_stop (&job);
}
