/*  =========================================================================
    test_poll - waiting on several sockets in few system calls
    (common/ps_poll.h)

    Pairs of inproc PAIR sockets: a message is found whether it came
    before the wait or during it; a socket returned ready and not read is
    returned again; a socket whose signal the caller consumed is found at
    once when touched and only at the timeout when not (the safety net);
    a socket put in place of a closed one, or in an empty place, is
    waited on, and an empty place is never ready; a process stopped and
    continued goes on waiting. A socket asked at the end of a burst
    (ps_poll_ask) is asked again only when it had a message; an emptied
    socket's descriptor is readable once a message comes
    (ps_poll_signalled).

    usage: build/test_poll [--filter 'poll/<test>'] [--verbose]
    ========================================================================= */

#include "ps_clock.h"
#include "ps_poll.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    void *context;
    void *near[2]; //  waited on
    void *far[2];  //  their peers, which send
} pairs_t;

static void
s_pair (pairs_t *pairs, int which)
{
    static int serial;
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://test-poll-%d", serial++);
    pairs->near[which] = zmq_socket (pairs->context, ZMQ_PAIR);
    pairs->far[which] = zmq_socket (pairs->context, ZMQ_PAIR);
    cr_assert (pairs->near[which] && pairs->far[which]);
    cr_assert_eq (zmq_bind (pairs->near[which], endpoint), 0);
    cr_assert_eq (zmq_connect (pairs->far[which], endpoint), 0);
}

static void
s_open (pairs_t *pairs)
{
    pairs->context = zmq_ctx_new ();
    cr_assert (pairs->context);
    s_pair (pairs, 0);
    s_pair (pairs, 1);
}

static void
s_close (pairs_t *pairs)
{
    for (int which = 0; which < 2; which++) {
        zmq_close (pairs->near[which]);
        zmq_close (pairs->far[which]);
    }
    zmq_ctx_term (pairs->context);
}

static void
s_send (void *socket, const char *text)
{
    cr_assert_eq (zmq_send (socket, text, strlen (text), 0), (int)strlen (text));
}

static void
s_expect (void *socket, const char *text)
{
    char got[64] = "";
    int size = zmq_recv (socket, got, sizeof got - 1, ZMQ_DONTWAIT);
    cr_assert_eq (size, (int)strlen (text), "received %d bytes, want '%s'", size, text);
    cr_assert_str_eq (got, text);
}

Test (poll, usage_wait_for_either_of_two_sockets)
{
    pairs_t pairs;
    s_open (&pairs);
    ps_poll_t *poll = ps_poll_new ();
    cr_assert (poll);
    int first = ps_poll_add (poll, pairs.near[0]);
    int second = ps_poll_add (poll, pairs.near[1]);
    cr_assert_eq (first, 0);
    cr_assert_eq (second, 1);

    //  Nothing yet: the time runs out
    cr_assert_eq (ps_poll_wait (poll, 0), 0);
    cr_assert_eq (ps_poll_wait (poll, 20), 0);

    //  A message on the second: only it is ready, and stays so until read
    s_send (pairs.far[1], "hello");
    cr_assert_eq (ps_poll_wait (poll, 5000), 1);
    cr_assert (!ps_poll_ready (poll, first));
    cr_assert (ps_poll_ready (poll, second));
    cr_assert_eq (ps_poll_wait (poll, 5000), 1, "a socket returned ready and not read");
    cr_assert (ps_poll_ready (poll, second));
    s_expect (pairs.near[1], "hello");
    cr_assert_eq (ps_poll_wait (poll, 0), 0);

    ps_poll_destroy (&poll);
    cr_assert_null (poll);
    ps_poll_destroy (&poll);
    s_close (&pairs);
}

typedef struct {
    void *socket;
    int delay_ms;
} later_t;

static void *
s_send_later (void *arg)
{
    later_t *later = arg;
    struct timespec pause = {0, later->delay_ms * 1000000L};
    nanosleep (&pause, NULL);
    s_send (later->socket, "late");
    return NULL;
}

//  Wait up to 10 s while a thread sends "late" on far after 50 ms: the
//  wait's result, and in *waited the seconds it took
static int
s_wait_for_late (ps_poll_t *poll, void *far, double *waited)
{
    later_t later = {far, 50};
    pthread_t thread;
    cr_assert_eq (pthread_create (&thread, NULL, s_send_later, &later), 0);
    double start = ps_clock_seconds ();
    int rc = ps_poll_wait (poll, 10000);
    *waited = ps_clock_seconds () - start;
    pthread_join (thread, NULL);
    return rc;
}

Test (poll, a_message_during_the_wait_ends_it)
{
    pairs_t pairs;
    s_open (&pairs);
    ps_poll_t *poll = ps_poll_new ();
    int first = ps_poll_add (poll, pairs.near[0]);
    int second = ps_poll_add (poll, pairs.near[1]);
    //  Both asked and found empty: the wait blocks on their descriptors
    cr_assert_eq (ps_poll_wait (poll, 0), 0);
    double waited;
    cr_assert_eq (s_wait_for_late (poll, pairs.far[0], &waited), 1);
    cr_assert (ps_poll_ready (poll, first));
    cr_assert (!ps_poll_ready (poll, second));
    cr_assert_lt (waited, 5.0, "the wait took %.3f s: the message did not wake it", waited);
    s_expect (pairs.near[0], "late");
    ps_poll_destroy (&poll);
    s_close (&pairs);
}

//  text arrives at the first pair, and the caller's own call on the
//  socket (here ZMQ_EVENTS, as a send would) takes its descriptor's signal
static void
s_signal_taken (pairs_t *pairs, const char *text)
{
    s_send (pairs->far[0], text);
    int events = 0;
    size_t size = sizeof events;
    for (int tries = 0; tries < 1000 && !(events & ZMQ_POLLIN); tries++)
        cr_assert_eq (zmq_getsockopt (pairs->near[0], ZMQ_EVENTS, &events, &size), 0);
    cr_assert (events & ZMQ_POLLIN);
}

//  The same after a wait found both sockets without a message
static void
s_message_behind_the_back (pairs_t *pairs, ps_poll_t *poll)
{
    cr_assert_eq (ps_poll_wait (poll, 0), 0);
    s_signal_taken (pairs, "quiet");
}

Test (poll, a_touched_socket_is_asked_again_at_once)
{
    pairs_t pairs;
    s_open (&pairs);
    ps_poll_t *poll = ps_poll_new ();
    int first = ps_poll_add (poll, pairs.near[0]);
    ps_poll_add (poll, pairs.near[1]);
    s_message_behind_the_back (&pairs, poll);
    ps_poll_touch (poll, first);
    double start = ps_clock_seconds ();
    cr_assert_eq (ps_poll_wait (poll, 2000), 1);
    double waited = ps_clock_seconds () - start;
    cr_assert (ps_poll_ready (poll, first));
    cr_assert_lt (waited, 1.0, "took %.3f s: the touched socket was not asked first", waited);
    s_expect (pairs.near[0], "quiet");
    ps_poll_destroy (&poll);
    s_close (&pairs);
}

Test (poll, an_untouched_socket_is_found_when_the_time_runs_out)
{
    pairs_t pairs;
    s_open (&pairs);
    ps_poll_t *poll = ps_poll_new ();
    int first = ps_poll_add (poll, pairs.near[0]);
    ps_poll_add (poll, pairs.near[1]);
    s_message_behind_the_back (&pairs, poll);
    //  Not touched: its descriptor stays quiet, so only the safety net
    //  at the end of the wait finds the message, which is not lost
    double start = ps_clock_seconds ();
    cr_assert_eq (ps_poll_wait (poll, 300), 1);
    double waited = ps_clock_seconds () - start;
    cr_assert (ps_poll_ready (poll, first));
    cr_assert_geq (waited, 0.25, "found after %.3f s, before the timeout: the test shows nothing",
                   waited);
    s_expect (pairs.near[0], "quiet");
    ps_poll_destroy (&poll);
    s_close (&pairs);
}

Test (poll, a_socket_asked_after_a_burst_is_asked_again_only_when_it_has_more)
{
    pairs_t pairs;
    s_open (&pairs);
    ps_poll_t *poll = ps_poll_new ();
    int first = ps_poll_add (poll, pairs.near[0]);
    ps_poll_add (poll, pairs.near[1]);
    cr_assert_eq (ps_poll_wait (poll, 0), 0);

    //  Asked with a message waiting: the next wait returns it at once
    s_send (pairs.far[0], "one");
    cr_assert_eq (ps_poll_ask (poll, first), 1);
    cr_assert (!ps_poll_ready (poll, first), "the last wait's answer is kept");
    double start = ps_clock_seconds ();
    cr_assert_eq (ps_poll_wait (poll, 2000), 1);
    cr_assert_lt (ps_clock_seconds () - start, 1.0, "a socket asked with a message was not kept");
    cr_assert (ps_poll_ready (poll, first));
    s_expect (pairs.near[0], "one");

    //  Asked without one, then a message whose signal the caller takes:
    //  not asked again, so only the safety net finds it
    cr_assert_eq (ps_poll_ask (poll, first), 0);
    s_signal_taken (&pairs, "two");
    start = ps_clock_seconds ();
    cr_assert_eq (ps_poll_wait (poll, 300), 1);
    cr_assert_geq (ps_clock_seconds () - start, 0.25,
                   "found before the timeout: the ask left the socket touched");
    s_expect (pairs.near[0], "two");
    ps_poll_destroy (&poll);
    s_close (&pairs);
}

Test (poll, a_descriptor_is_signalled_when_a_message_comes_to_an_emptied_socket)
{
    pairs_t pairs;
    s_open (&pairs);
    int fd;
    size_t size = sizeof fd;
    cr_assert_eq (zmq_getsockopt (pairs.near[0], ZMQ_FD, &fd, &size), 0);
    //  Emptied: a receive failed with EAGAIN
    char byte;
    cr_assert_eq (zmq_recv (pairs.near[0], &byte, 1, ZMQ_DONTWAIT), -1);
    cr_assert_eq (errno, EAGAIN);
    cr_assert (!ps_poll_signalled (fd));
    s_send (pairs.far[0], "news");
    cr_assert (ps_poll_signalled (fd), "a message came and the descriptor stayed quiet");
    s_expect (pairs.near[0], "news");
    cr_assert_eq (zmq_recv (pairs.near[0], &byte, 1, ZMQ_DONTWAIT), -1);
    cr_assert (!ps_poll_signalled (fd), "read to the end and still signalled");
    s_close (&pairs);
}

Test (poll, a_socket_put_in_place_of_another_is_waited_on)
{
    pairs_t pairs;
    s_open (&pairs);
    ps_poll_t *poll = ps_poll_new ();
    int first = ps_poll_add (poll, pairs.near[0]);
    int empty = ps_poll_add (poll, NULL);
    cr_assert_eq (empty, 1, "an empty place has an index too");
    cr_assert_eq (ps_poll_wait (poll, 0), 0);
    cr_assert (!ps_poll_ready (poll, empty));

    //  A new pair in place of the first, closed (libzmq may reuse its
    //  descriptor's number)
    zmq_close (pairs.near[0]);
    zmq_close (pairs.far[0]);
    s_pair (&pairs, 0);
    cr_assert_eq (ps_poll_set (poll, first, pairs.near[0]), 0);
    cr_assert_eq (ps_poll_wait (poll, 0), 0);
    double waited;
    cr_assert_eq (s_wait_for_late (poll, pairs.far[0], &waited), 1);
    cr_assert_lt (waited, 5.0);
    cr_assert (ps_poll_ready (poll, first));
    s_expect (pairs.near[0], "late");

    //  The second pair in the empty place: waited on from then on
    cr_assert_eq (ps_poll_set (poll, empty, pairs.near[1]), 0);
    cr_assert_eq (ps_poll_wait (poll, 0), 0);
    cr_assert_eq (s_wait_for_late (poll, pairs.far[1], &waited), 1);
    cr_assert_lt (waited, 5.0);
    cr_assert (ps_poll_ready (poll, empty));
    cr_assert (!ps_poll_ready (poll, first));
    s_expect (pairs.near[1], "late");

    //  Emptied again: its messages are not waited for
    cr_assert_eq (ps_poll_set (poll, empty, NULL), 0);
    s_send (pairs.far[1], "unseen");
    cr_assert_eq (ps_poll_wait (poll, 50), 0);
    cr_assert (!ps_poll_ready (poll, empty));
    ps_poll_destroy (&poll);
    s_close (&pairs);
}

//  In a child: wait 1500 ms on a socket that gets nothing; exit 0 when
//  the time ran out, 3 on EINTR, 4 otherwise
static void
s_wait_in_child (void)
{
    pairs_t pairs;
    s_open (&pairs);
    ps_poll_t *poll = ps_poll_new ();
    ps_poll_add (poll, pairs.near[0]);
    int rc = ps_poll_wait (poll, 1500);
    int saved = errno;
    ps_poll_destroy (&poll);
    s_close (&pairs);
    _exit (rc == 0 ? 0 : rc < 0 && saved == EINTR ? 3 : 4);
}

Test (poll, a_process_stopped_and_continued_goes_on_waiting, .timeout = 20)
{
    //  SIGSTOP then SIGCONT (a debugger, job control, chaos's paused
    //  worker) runs no handler: the wait must not end with EINTR, which
    //  the worker library reports as a signal for its caller
    pid_t child = fork ();
    cr_assert_geq (child, 0);
    if (child == 0)
        s_wait_in_child ();
    struct timespec pause = {0, 300 * 1000000L};
    nanosleep (&pause, NULL);
    cr_assert_eq (kill (child, SIGSTOP), 0);
    nanosleep (&pause, NULL);
    cr_assert_eq (kill (child, SIGCONT), 0);
    int status = 0;
    pid_t ended = 0;
    for (int tries = 0; tries < 1000 && ended == 0; tries++) {
        ended = waitpid (child, &status, WNOHANG);
        if (ended == 0) {
            struct timespec tick = {0, 10 * 1000000L};
            nanosleep (&tick, NULL);
        }
    }
    if (ended == 0)
        kill (child, SIGKILL);
    cr_assert_eq (ended, child, "the child did not end within 10 s");
    cr_assert (WIFEXITED (status));
    cr_assert_eq (WEXITSTATUS (status), 0, "the wait ended with %s",
                  WEXITSTATUS (status) == 3 ? "EINTR" : "a failure");
}
