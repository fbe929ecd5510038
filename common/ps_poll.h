/*  =========================================================================
    ps_poll - wait for messages on several ZeroMQ sockets in fewer system
    calls than zmq_poll

    zmq_poll asks every socket for its state (ZMQ_EVENTS: getpid and a
    poll of its mailbox, two system calls each) before it waits and again
    after it woke, on every call: with the broker's five sockets, half of
    the ROUTER loop's 36 system calls per 1-float pull and half of its
    time (docs/performance.md, "Fewer system calls per message").

    ps_poll asks only the sockets whose state may have changed since it
    last asked, then waits in one poll(2) on the sockets' ZMQ_FD
    descriptors and asks only those that fired. It rests on the rule of
    zmq_getsockopt(3), ZMQ_FD: a socket's descriptor becomes readable when
    its state changes, but any call on the socket (a send, a receive,
    ZMQ_EVENTS) may consume that signal. So a socket asked and found
    without a message stays so until its descriptor fires, unless the
    caller has called it since: a socket returned ready counts as called
    (the caller receives from it), and the caller must ps_poll_touch every
    other socket it sent on. A wait that times out asks every socket
    before it returns, so a missed touch delays a message by one timeout
    at most; it never loses one.

    Owner: one thread (the one that waits); not thread-safe. The sockets
    stay the caller's: one closed must first leave the set (ps_poll_set).
    Failure: ps_poll_wait returns -1 with errno set.
    ========================================================================= */

#ifndef PS_POLL_H_INCLUDED
#define PS_POLL_H_INCLUDED

#include <stdbool.h>

typedef struct ps_poll_t ps_poll_t;

//  An empty set, or NULL when out of memory
ps_poll_t *ps_poll_new (void);

//  Free the set (not its sockets) and null the pointer; NULL is fine
void ps_poll_destroy (ps_poll_t **self_p);

//  Add a socket (a libzmq handle: zsock_resolve for a czmq one), to be
//  waited on for messages, or with NULL an empty place for ps_poll_set
//  to fill. Returns its index (0, 1, ... in the order added), or -1 when
//  it is not a socket or memory ran out
int ps_poll_add (ps_poll_t *self, void *socket);

//  Put socket (NULL: none) at index, in place of the one there, such as
//  a socket made again after a reconnect. 0, or -1 when socket is not a
//  socket (the place is then empty)
int ps_poll_set (ps_poll_t *self, int index, void *socket);

//  Wait up to timeout_ms (-1: for ever, 0: not at all) until at least
//  one socket has a message. Returns how many have (ps_poll_ready names
//  them), 0 when the time ran out, -1 on failure (errno; EINTR when a
//  signal handler ran, not when the process was stopped and continued)
int ps_poll_wait (ps_poll_t *self, int timeout_ms);

//  Whether the socket at index had a message at the last wait
bool ps_poll_ready (const ps_poll_t *self, int index);

//  The caller called the socket at index (sent on it): ask it again at
//  the next wait
void ps_poll_touch (ps_poll_t *self, int index);

//  Ask the socket at index now whether it has a message: 1 when it has,
//  0 when not, -1 on failure (errno). For the end of a burst of receives:
//  a socket found without a message counts as asked, and the next wait
//  does not ask it again unless it is touched in between
int ps_poll_ask (ps_poll_t *self, int index);

//  Whether descriptor fd, a socket's ZMQ_FD, is readable now. A socket
//  last left without a message (a receive failed with EAGAIN, or it was
//  asked and had none) and not called since cannot have one while its
//  descriptor is not readable: one poll(2), where asking the socket
//  costs two system calls
bool ps_poll_signalled (int fd);

#endif
