/*  =========================================================================
    test_framepool - the worker's pool of outgoing frame buffers
    (worker/ps_framepool)

    Buffers come back from libzmq's free function and are lent again, so
    steady sending allocates nothing; the first test is the usage example.

    usage: build/test_framepool [--filter 'framepool/<test>'] [--verbose]
    ========================================================================= */

#include "ps_framepool.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

Test (framepool, usage_buffers_are_reused)
{
    ps_framepool_t *pool = ps_framepool_new (1 << 20, 8);
    cr_assert (pool);
    zmq_msg_t msg;
    cr_assert_eq (ps_framepool_msg (pool, &msg, 1 << 20), 0);
    cr_assert_eq (zmq_msg_size (&msg), 1 << 20);
    void *first = zmq_msg_data (&msg);
    memset (first, 1, 1 << 20);
    zmq_msg_close (&msg); //  libzmq would do this after sending

    cr_assert_eq (ps_framepool_msg (pool, &msg, 1000), 0);
    cr_assert_eq (zmq_msg_data (&msg), first, "the released buffer is lent again");
    cr_assert_eq (zmq_msg_size (&msg), 1000);
    zmq_msg_close (&msg);
    cr_assert_eq (ps_framepool_buffers (pool), 1);
    ps_framepool_destroy (&pool);
    cr_assert_null (pool);
}

Test (framepool, keeps_at_most_max_cached)
{
    ps_framepool_t *pool = ps_framepool_new (4096, 2);
    zmq_msg_t msgs[5];
    for (int i = 0; i < 5; i++)
        cr_assert_eq (ps_framepool_msg (pool, &msgs[i], 4096), 0);
    cr_assert_eq (ps_framepool_buffers (pool), 5);
    for (int i = 0; i < 5; i++)
        zmq_msg_close (&msgs[i]);
    cr_assert_eq (ps_framepool_buffers (pool), 2, "three were freed, two kept");
    ps_framepool_destroy (&pool);
}

static void *
s_release_all (void *arg)
{
    zmq_msg_t *msgs = arg;
    for (int i = 0; i < 64; i++)
        zmq_msg_close (&msgs[i]);
    return NULL;
}

Test (framepool, buffers_may_come_back_from_another_thread)
{
    ps_framepool_t *pool = ps_framepool_new (4096, 64);
    zmq_msg_t msgs[64];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 64; i++)
            cr_assert_eq (ps_framepool_msg (pool, &msgs[i], 4096), 0);
        pthread_t thread;
        pthread_create (&thread, NULL, s_release_all, msgs);
        pthread_join (thread, NULL);
    }
    cr_assert_eq (ps_framepool_buffers (pool), 64, "50 rounds of 64 frames used 64 buffers");
    ps_framepool_destroy (&pool);
}
