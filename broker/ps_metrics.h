/*  =========================================================================
    ps_metrics - Prometheus metrics over HTTP (psbroker --metrics HOST:PORT)

    An HTTP server (libmicrohttpd, on a thread of its own) that answers
    GET /metrics with the broker's status in Prometheus's text format
    (ps_prometheus.h). It holds no broker state: for each scrape its
    thread asks the ROUTER loop for a snapshot over an inproc PAIR pipe
    and waits at most PS_METRICS_WAIT_MS for it (then 503). The loop polls
    ps_metrics_handle, reads the asks with ps_metrics_asked and answers
    with the INFO JSON (ps_metrics_answer), never blocking: an HTTP client,
    slow or hostile, can only hold up the metrics thread, which caps
    connections (PS_METRICS_MAX_CONNECTIONS) and closes idle ones
    (PS_METRICS_CONNECTION_TIMEOUT_S).

    The ROUTER loop's thread creates, polls and destroys it; the HTTP
    thread is its own. ps_metrics_destroy stops that thread (a scrape
    waiting for the loop is answered 503 at once) before it returns.

    libmicrohttpd is not linked: the first ps_metrics_new of the process
    loads it (dlopen, on the calling loop's thread, once even when brokers
    start together), so a broker without --metrics maps neither it nor
    GnuTLS. The module owns that handle and keeps it open until the
    process exits (never dlclose'd). When it cannot be loaded, that and
    every later ps_metrics_new fails with a problem naming the library,
    its Debian package and dlerror's reason.
    ========================================================================= */

#ifndef PS_METRICS_H_INCLUDED
#define PS_METRICS_H_INCLUDED

#include "ps_problem.h"

#include <stdbool.h>

typedef struct ps_metrics_t ps_metrics_t;

//  Is address a HOST:PORT to serve on? HOST an IPv4 or IPv6 address (in
//  brackets, [::1]) or a name that resolves; PORT 0 (a free one) to 65535.
//  0, or -1 with a problem naming the value
int ps_metrics_check_address (const char *address, ps_problem_t *problem);

//  Serve on address (ps_metrics_check_address's form); NULL with problem
//  when it is not one, cannot be bound or libmicrohttpd cannot be loaded
ps_metrics_t *ps_metrics_new (const char *address, ps_problem_t *problem);
//  Stop serving and free; nulls the pointer
void ps_metrics_destroy (ps_metrics_t **self_p);

//  Where it serves, "http://127.0.0.1:9100/metrics" (the port bound filled
//  in); valid while it lives
const char *ps_metrics_url (const ps_metrics_t *self);
//  The loop's end of the pipe, to poll for POLLIN
void *ps_metrics_handle (ps_metrics_t *self);
//  Read the asks waiting on the pipe: true when a scrape waits for an
//  answer (only the newest is answered: the older ones gave up)
bool ps_metrics_asked (ps_metrics_t *self);
//  Answer the newest ask with snapshot (INFO JSON, copied); never blocks
void ps_metrics_answer (ps_metrics_t *self, const char *snapshot);

#endif
