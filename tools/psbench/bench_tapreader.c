/*  =========================================================================
    bench_tapreader - a reader on a broker's tap (see bench_tapreader.h)

    The thread has its own ZeroMQ context, so that its socket shares no
    I/O thread with the workers being timed. It polls in 50 ms steps and
    reads with ZMQ_DONTWAIT until the queue is empty, counting records
    (the last part of each message) only so that it does what a real
    reader does with each. INFO is read with jansson.
    ========================================================================= */

#include "bench_tapreader.h"
#include "ps_worker.h"

#include <czmq.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  How long the broker may take to answer INFO, and to count the reader
#define INFO_MS 3000
#define COUNTED_MS 3000

struct _bench_tapreader_t {
    char endpoint[256];       //  the tap
    atomic_bool stop;         //  the owner says stop
    atomic_ulong records;     //  records read
    pthread_t thread;         //  the reader
    const char *curve_secret; //  CURVE keys (borrowed from the options), or NULL
    const char *broker_key;
};

static void *
s_main (void *arg)
{
    bench_tapreader_t *self = arg;
    void *context = zmq_ctx_new ();
    void *sub = zmq_socket (context, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt (sub, ZMQ_LINGER, &linger, sizeof linger);
    if (self->curve_secret) {
        zcert_t *ours = zcert_load (self->curve_secret), *theirs = zcert_load (self->broker_key);
        if (ours && theirs) {
            zmq_setsockopt (sub, ZMQ_CURVE_SERVERKEY, zcert_public_txt (theirs), 41);
            zmq_setsockopt (sub, ZMQ_CURVE_PUBLICKEY, zcert_public_txt (ours), 41);
            zmq_setsockopt (sub, ZMQ_CURVE_SECRETKEY, zcert_secret_txt (ours), 41);
        }
        zcert_destroy (&ours);
        zcert_destroy (&theirs);
    }
    zmq_connect (sub, self->endpoint);
    //  Every metadata topic, none of the payload ones
    static const char *kinds[] = {"req.", "rep.", "conn.", "disc.", "evict.", "rej.", "clock."};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        zmq_setsockopt (sub, ZMQ_SUBSCRIBE, kinds[i], strlen (kinds[i]));
    zmq_pollitem_t items[] = {{sub, 0, ZMQ_POLLIN, 0}};
    zmq_msg_t part;
    zmq_msg_init (&part);
    while (!atomic_load (&self->stop)) {
        if (zmq_poll (items, 1, 50) <= 0)
            continue;
        while (zmq_msg_recv (&part, sub, ZMQ_DONTWAIT) != -1) {
            if (!zmq_msg_more (&part))
                atomic_fetch_add (&self->records, 1);
        }
    }
    zmq_msg_close (&part);
    zmq_close (sub);
    zmq_ctx_term (context);
    return NULL;
}

//  The broker's INFO as a JSON object, or NULL
static json_t *
s_info (const char *endpoint, int timeout_ms, const char *curve_secret, const char *broker_key)
{
    char *text = NULL;
    ps_worker_options_t options;
    ps_worker_options_init (&options);
    options.broker = endpoint;
    options.timeout_ms = timeout_ms;
    options.curve_secret = curve_secret;
    options.broker_key = broker_key;
    if (ps_worker_query_info_options (&options, &text) != PS_OK)
        return NULL;
    json_t *info = json_loads (text, 0, NULL);
    free (text);
    return info;
}

bench_tapreader_t *
bench_tapreader_new (const char *endpoint, const char *curve_secret, const char *broker_key)
{
    json_t *info = s_info (endpoint, INFO_MS, curve_secret, broker_key);
    if (!info)
        return NULL;
    const char *tap = json_string_value (json_object_get (info, "tap"));
    bench_tapreader_t *self = calloc (1, sizeof *self);
    if (!tap || !*tap || strlen (tap) >= sizeof self->endpoint || !self) {
        fprintf (stderr, "psbench: the broker reports no tap\n");
        json_decref (info);
        free (self);
        return NULL;
    }
    snprintf (self->endpoint, sizeof self->endpoint, "%s", tap);
    json_decref (info);
    self->curve_secret = curve_secret;
    self->broker_key = broker_key;
    atomic_init (&self->stop, false);
    atomic_init (&self->records, 0);
    if (pthread_create (&self->thread, NULL, s_main, self)) {
        free (self);
        return NULL;
    }
    int64_t deadline = zclock_mono () + COUNTED_MS;
    while (zclock_mono () < deadline) {
        info = s_info (endpoint, 1000, curve_secret, broker_key);
        bool counted = json_integer_value (json_object_get (info, "tap_subscriptions")) > 0;
        json_decref (info);
        if (counted)
            return self;
        zclock_sleep (10);
    }
    fprintf (stderr, "psbench: the broker never counted the tap reader\n");
    bench_tapreader_destroy (&self);
    return NULL;
}

void
bench_tapreader_destroy (bench_tapreader_t **self_p)
{
    bench_tapreader_t *self = *self_p;
    if (!self)
        return;
    atomic_store (&self->stop, true);
    pthread_join (self->thread, NULL);
    free (self);
    *self_p = NULL;
}
