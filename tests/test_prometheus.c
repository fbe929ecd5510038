/*  =========================================================================
    test_prometheus - the INFO snapshot in Prometheus text (ps_prometheus.h)

    Usage, as the metrics thread renders a snapshot the ROUTER loop sent:

        char *text = ps_prometheus_render (info_json, now_unix_ms);
        ... serve text with PS_PROMETHEUS_CONTENT_TYPE ...
        free (text);

    The live scrape, parsed with prometheus_client, is tests/interop/
    test_metrics.py; these check the rendering alone: families with HELP
    and TYPE, labels, cumulative histogram buckets, lag, checkpoint age,
    and input that is not a snapshot.

    usage: cd build && ./test_prometheus [--filter 'prometheus/<test>']
    ========================================================================= */

#include "ps_latency.h"
#include "ps_prometheus.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define SNAPSHOT                                                                                   \
    "{\"uptime_s\": 2.5, \"world\": 3, \"live\": 2, \"min_clock\": 4, \"max_clock\": 7,"           \
    " \"workers\": [{\"rank\": 0, \"state\": \"live\", \"clock\": 7, \"parked\": 1,"               \
    "  \"messages_in\": 30, \"last_seen_ms\": 250},"                                               \
    " {\"rank\": 1, \"state\": \"live\", \"clock\": 4, \"parked\": 0, \"messages_in\": 20,"        \
    "  \"last_seen_ms\": 1000},"                                                                   \
    " {\"rank\": 2, \"state\": \"gone\", \"clock\": 9, \"parked\": 0, \"messages_in\": 5,"         \
    "  \"last_seen_ms\": -1}],"                                                                    \
    " \"messages_in\": {\"hello\": 3, \"push\": 12},"                                              \
    " \"rejected_by_reason\": {\"ERR_NOT_REGISTERED\": 2, \"ERR_FULL\": 0},"                       \
    " \"checkpoint\": {\"written\": 4, \"failed\": 0, \"last_unix_ms\": 1000000, "                 \
    "  \"last_clock\": 6, \"last_bytes\": 100},"                                                   \
    " \"limits\": {\"push_budget\": 2097152, \"push_waiting_bytes\": 1024,"                        \
    "  \"push_granted_bytes\": 1048576, \"push_grants\": 40, \"push_grants_withheld\": 3},"        \
    " \"tap_dropped\": 7}"

Test (prometheus, renders_a_snapshot)
{
    char *text = ps_prometheus_render (SNAPSHOT, 1000000 + 30500);
    cr_assert (text);
    cr_assert (strstr (text, "# HELP psmq_requests_total "), "%s", text);
    cr_assert (strstr (text, "# TYPE psmq_requests_total counter\n"), "%s", text);
    cr_assert (strstr (text, "psmq_requests_total{type=\"push\"} 12\n"), "%s", text);
    cr_assert (strstr (text, "psmq_uptime_seconds 2.5\n"), "%s", text);
    //  Lag behind the fastest live rank (rank 2, gone, is not the fastest)
    cr_assert (strstr (text, "psmq_worker_lag_clocks{rank=\"0\"} 0\n"), "%s", text);
    cr_assert (strstr (text, "psmq_worker_lag_clocks{rank=\"1\"} 3\n"), "%s", text);
    cr_assert_null (strstr (text, "psmq_worker_lag_clocks{rank=\"2\"}"), "%s", text);
    cr_assert (strstr (text, "psmq_worker_up{rank=\"2\"} 0\n"), "%s", text);
    cr_assert (strstr (text, "psmq_worker_clock{rank=\"2\"} 9\n"), "%s", text);
    cr_assert (strstr (text, "psmq_worker_last_seen_seconds{rank=\"1\"} 1\n"), "%s", text);
    //  Reasons in snake_case
    cr_assert (strstr (text, "psmq_rejected_requests_total{reason=\"not_registered\"} 2\n"), "%s",
               text);
    cr_assert (strstr (text, "psmq_checkpoint_age_seconds 30.5\n"), "%s", text);
    cr_assert (strstr (text, "# TYPE psmq_tap_dropped_total counter\npsmq_tap_dropped_total 7\n"),
               "%s", text);
    //  The push budget and its grants
    cr_assert (strstr (text, "psmq_push_budget_bytes 2097152\n"), "%s", text);
    cr_assert (strstr (text, "psmq_push_waiting_bytes 1024\n"), "%s", text);
    cr_assert (strstr (text, "psmq_push_granted_bytes 1048576\n"), "%s", text);
    cr_assert (strstr (text, "# TYPE psmq_push_grants_total counter\npsmq_push_grants_total 40\n"),
               "%s", text);
    cr_assert (strstr (text, "psmq_push_grants_withheld_total 3\n"), "%s", text);
    //  No latency in the snapshot: no histogram families
    cr_assert_null (strstr (text, "psmq_request_queued_seconds"), "%s", text);
    free (text);
}

Test (prometheus, histograms_are_cumulative)
{
    ps_latency_t *latency = ps_latency_new ();
    cr_assert (latency);
    ps_latency_observe (latency, 4, 40, 0, 0);         //  pull: 40 us queued
    ps_latency_observe (latency, 4, 3000, 0, 2000000); //  3 ms queued, 2 s parked
    ps_latency_observe (latency, 4, 20000000, 0, 0);   //  past the last bound
    json_t *snapshot = json_pack ("{s:o}", "latency", ps_latency_json (latency));
    char *json = json_dumps (snapshot, 0);
    char *text = ps_prometheus_render (json, 0);
    cr_assert (text);
    cr_assert (strstr (text, "# TYPE psmq_request_queued_seconds histogram\n"), "%s", text);
    cr_assert (strstr (text, "psmq_request_queued_seconds_bucket{type=\"pull\",le=\"5e-05\"} 1\n"),
               "%s", text);
    cr_assert (strstr (text, "psmq_request_queued_seconds_bucket{type=\"pull\",le=\"0.0025\"} 1\n"),
               "%s", text);
    cr_assert (strstr (text, "psmq_request_queued_seconds_bucket{type=\"pull\",le=\"0.005\"} 2\n"),
               "%s", text);
    cr_assert (strstr (text, "psmq_request_queued_seconds_bucket{type=\"pull\",le=\"10\"} 2\n"),
               "%s", text);
    cr_assert (strstr (text, "psmq_request_queued_seconds_bucket{type=\"pull\",le=\"+Inf\"} 3\n"),
               "%s", text);
    cr_assert (strstr (text, "psmq_request_queued_seconds_count{type=\"pull\"} 3\n"), "%s", text);
    cr_assert (strstr (text, "psmq_request_queued_seconds_sum{type=\"pull\"} 20.00304\n"), "%s",
               text);
    cr_assert (strstr (text, "psmq_request_parked_seconds_bucket{type=\"pull\",le=\"1\"} 2\n"),
               "%s", text);
    cr_assert (strstr (text, "psmq_request_parked_seconds_bucket{type=\"pull\",le=\"2.5\"} 3\n"),
               "%s", text);
    free (text);
    free (json);
    json_decref (snapshot);
    ps_latency_destroy (&latency);
    cr_assert_null (latency);
}

Test (prometheus, refuses_what_is_not_a_snapshot)
{
    cr_assert_null (ps_prometheus_render ("not json", 0));
    cr_assert_null (ps_prometheus_render ("[1, 2]", 0));
    //  An empty object renders to nothing, not to a crash
    char *text = ps_prometheus_render ("{\"workers\": 5, \"latency\": {\"bounds_us\": 1}}", 0);
    cr_assert (text);
    cr_assert_str_empty (text);
    free (text);
}
