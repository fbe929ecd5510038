/*  =========================================================================
    ps_poll - wait for messages on several ZeroMQ sockets (see ps_poll.h)

    Each socket has a descriptor (ZMQ_FD, read once: it lives as long as
    the socket) and a flag, touched, set when the caller may have called
    the socket since it was last asked. A wait asks the touched sockets
    first; when none has a message it blocks in poll(2) on the
    descriptors and asks those that fired (a descriptor also fires for
    commands that bring no message, such as a peer's credit, so a wait
    may block again). When the wait times out every socket is asked once
    more, which is the safety net the header promises.

    poll(2) rather than epoll_wait, which saved a little more of the
    ROUTER loop's time (a blocking poll hooks itself on every descriptor
    and unhooks after) but fails with EINTR when the process is stopped
    and continued (SIGSTOP, a debugger, job control: signal(7)), where
    poll(2) goes on waiting: the worker library takes EINTR for a signal
    the caller wants to hear of, and chaos's paused worker gave up.

    Written by hand: libzmq's own poller (zmq_poller_*) is a draft API,
    which Debian's libzmq does not export, and czmq's zpoller and zloop
    call zmq_poll.
    ========================================================================= */

#include "ps_poll.h"

#include <assert.h>
#include <czmq.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    void *socket; //  the caller's
    bool touched; //  may have changed since last asked
    bool ready;   //  had a message at the last wait
} ps_poll_item_t;

struct ps_poll_t {
    ps_poll_item_t *items; //  in the order added
    struct pollfd *fds;    //  their descriptors, same order; -1: an empty place
    int size;              //  items in use
    int capacity;          //  items allocated
};

ps_poll_t *
ps_poll_new (void)
{
    return calloc (1, sizeof (ps_poll_t));
}

void
ps_poll_destroy (ps_poll_t **self_p)
{
    assert (self_p);
    ps_poll_t *self = *self_p;
    if (!self)
        return;
    free (self->items);
    free (self->fds);
    free (self);
    *self_p = NULL;
}

static int
s_descriptor (void *socket, int *fd)
{
    size_t size = sizeof *fd;
    return zmq_getsockopt (socket, ZMQ_FD, fd, &size);
}

//  Put socket (or nothing) at index; 0, or -1 (the place left empty)
static int
s_fill (ps_poll_t *self, int index, void *socket)
{
    self->items[index] = (ps_poll_item_t){.socket = NULL};
    self->fds[index] = (struct pollfd){.fd = -1, .events = POLLIN};
    int fd;
    if (!socket)
        return 0;
    if (s_descriptor (socket, &fd))
        return -1;
    self->items[index] = (ps_poll_item_t){.socket = socket, .touched = true};
    self->fds[index].fd = fd;
    return 0;
}

int
ps_poll_add (ps_poll_t *self, void *socket)
{
    assert (self);
    if (self->size == self->capacity) {
        int capacity = self->capacity ? 2 * self->capacity : 8;
        ps_poll_item_t *items = realloc (self->items, (size_t)capacity * sizeof *items);
        if (!items)
            return -1;
        self->items = items;
        struct pollfd *fds = realloc (self->fds, (size_t)capacity * sizeof *fds);
        if (!fds)
            return -1;
        self->fds = fds;
        self->capacity = capacity;
    }
    int index = self->size;
    if (s_fill (self, index, socket))
        return -1;
    self->size++;
    return index;
}

int
ps_poll_set (ps_poll_t *self, int index, void *socket)
{
    assert (self && index >= 0 && index < self->size);
    return s_fill (self, index, socket);
}

//  Ask one socket for its state: 1 when it has a message, 0 when not, -1
//  on failure. Asking leaves its descriptor armed again
static int
s_ask (ps_poll_t *self, int index)
{
    ps_poll_item_t *item = &self->items[index];
    int events;
    size_t size = sizeof events;
    if (zmq_getsockopt (item->socket, ZMQ_EVENTS, &events, &size))
        return -1;
    item->touched = false;
    item->ready = (events & ZMQ_POLLIN) != 0;
    return item->ready;
}

//  Ask the sockets that are touched (all: every one); how many have a
//  message, or -1
static int
s_ask_touched (ps_poll_t *self, bool all)
{
    int ready = 0;
    for (int index = 0; index < self->size; index++) {
        self->items[index].ready = false;
        if (!self->items[index].socket || (!all && !self->items[index].touched))
            continue;
        int rc = s_ask (self, index);
        if (rc < 0)
            return -1;
        ready += rc;
    }
    return ready;
}

int
ps_poll_wait (ps_poll_t *self, int timeout_ms)
{
    assert (self);
    int ready = s_ask_touched (self, false);
    int64_t deadline = timeout_ms > 0 ? zclock_mono () + timeout_ms : 0;
    int wait = timeout_ms;
    while (ready == 0) {
        //  poll(2) skips the empty places' negative descriptors
        int fired = poll (self->fds, (nfds_t)self->size, wait);
        if (fired < 0)
            return -1;
        if (fired == 0) {
            //  Out of time: ask them all, the safety net for a missed touch
            ready = s_ask_touched (self, true);
            break;
        }
        for (int index = 0; index < self->size && ready >= 0; index++)
            if (self->fds[index].revents) {
                int rc = s_ask (self, index);
                ready = rc < 0 ? -1 : ready + rc;
            }
        if (ready != 0)
            break;
        //  Commands without a message: wait out what is left
        if (timeout_ms > 0) {
            int64_t left = deadline - zclock_mono ();
            wait = left > 0 ? (int)left : 0;
        }
    }
    if (ready < 0)
        return -1;
    //  The caller receives from the ready ones: they change
    for (int index = 0; index < self->size; index++)
        if (self->items[index].ready)
            self->items[index].touched = true;
    return ready;
}

bool
ps_poll_ready (const ps_poll_t *self, int index)
{
    assert (self && index >= 0 && index < self->size);
    return self->items[index].ready;
}

void
ps_poll_touch (ps_poll_t *self, int index)
{
    assert (self && index >= 0 && index < self->size);
    self->items[index].touched = true;
}

int
ps_poll_ask (ps_poll_t *self, int index)
{
    assert (self && index >= 0 && index < self->size && self->items[index].socket);
    ps_poll_item_t *item = &self->items[index];
    bool ready = item->ready; //  the last wait's answer stays
    int rc = s_ask (self, index);
    item->ready = ready;
    //  One with a message is received from again: it changes
    item->touched = rc != 0;
    return rc;
}

bool
ps_poll_signalled (int fd)
{
    struct pollfd item = {.fd = fd, .events = POLLIN};
    //  A failed poll says readable: the caller then asks, which is safe
    return poll (&item, 1, 0) != 0;
}
