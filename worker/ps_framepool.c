/*  =========================================================================
    ps_framepool - reusable buffers for outgoing tensor frames

    The free list is threaded through the idle buffers themselves; libzmq
    hands the pool to the free function as its hint.
    ========================================================================= */

#include "ps_framepool.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct idle_t {
    struct idle_t *next; //  next idle buffer
} idle_t;

struct ps_framepool_t {
    pthread_mutex_t lock; //  guards idle and the counts
    idle_t *idle;         //  buffers ready to lend
    size_t cached;        //  how many
    size_t buffers;       //  allocated, lent or idle
    size_t buffer_bytes;  //  data bytes per buffer
    size_t max_cached;    //  idle buffers kept at most
};

ps_framepool_t *
ps_framepool_new (size_t buffer_bytes, size_t max_cached)
{
    ps_framepool_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init (&self->lock, NULL);
    self->buffer_bytes = buffer_bytes;
    self->max_cached = max_cached;
    return self;
}

void
ps_framepool_destroy (ps_framepool_t **self_p)
{
    assert (self_p);
    ps_framepool_t *self = *self_p;
    if (!self)
        return;
    while (self->idle) {
        idle_t *next = self->idle->next;
        free (self->idle);
        self->idle = next;
    }
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

//  libzmq's free function, on its I/O thread: back to the idle list
static void
s_release (void *data, void *hint)
{
    ps_framepool_t *self = hint;
    pthread_mutex_lock (&self->lock);
    if (self->cached < self->max_cached) {
        idle_t *idle = data;
        idle->next = self->idle;
        self->idle = idle;
        self->cached++;
        data = NULL;
    }
    else
        self->buffers--;
    pthread_mutex_unlock (&self->lock);
    if (data)
        free (data);
}

int
ps_framepool_msg (ps_framepool_t *self, zmq_msg_t *msg, size_t size)
{
    assert (size <= self->buffer_bytes);
    pthread_mutex_lock (&self->lock);
    char *data = (char *)self->idle;
    if (data) {
        self->idle = self->idle->next;
        self->cached--;
    }
    else
        self->buffers++;
    pthread_mutex_unlock (&self->lock);
    if (!data) {
        data = aligned_alloc (64, (self->buffer_bytes + 63) & ~(size_t)63);
        if (!data) {
            pthread_mutex_lock (&self->lock);
            self->buffers--;
            pthread_mutex_unlock (&self->lock);
            return -1;
        }
    }
    if (zmq_msg_init_data (msg, data, size, s_release, self)) {
        s_release (data, self);
        return -1;
    }
    return 0;
}

size_t
ps_framepool_buffers (ps_framepool_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t buffers = self->buffers;
    pthread_mutex_unlock (&self->lock);
    return buffers;
}
