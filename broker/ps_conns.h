/*  =========================================================================
    ps_conns - the ROUTER's open connections, by file descriptor, and which
    to close when there are too many

    libzmq accepts every connection it can and has no cap of its own; at
    the descriptor limit its listener meets EMFILE, retries at once and
    spins a core, while idle connections keep new workers out. The socket
    monitor tells the ROUTER loop of each accept and close by descriptor
    (ps_broker.c); this table remembers, for each open one, when it was
    accepted and when a message last came on it, so that the loop can shed
    the ones over its cap (psbroker --max-connections) or idle too long,
    preferring those that never registered and have been idle longest.

    Shedding is shutdown (fd, SHUT_RDWR) on libzmq's own descriptor: its
    I/O thread then reads the end of the stream, drops the connection and
    closes the descriptor, and the monitor reports it. The descriptor may
    have been closed and reused since its last event was read, so the
    socket's inode, noted at accept, must still match (fstat), else it is
    left alone.

    Only the ROUTER loop's thread may call this module.
    ========================================================================= */

#ifndef PS_CONNS_H_INCLUDED
#define PS_CONNS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_conns_t ps_conns_t;

//  Whether the connection on fd registered (a peer's messages came on it)
typedef bool (ps_conns_registered_fn) (void *arg, int fd);

ps_conns_t *ps_conns_new (void);
void ps_conns_destroy (ps_conns_t **self_p);

//  The monitor says fd was accepted (now: monotonic ms) or closed
void ps_conns_opened (ps_conns_t *self, int fd, int64_t now);
void ps_conns_closed (ps_conns_t *self, int fd);
//  A message came on fd (ignored when fd is not open)
void ps_conns_heard (ps_conns_t *self, int fd, int64_t now);
//  Connections open and not being shed
size_t ps_conns_count (const ps_conns_t *self);

//  The connection to shed first, of those not registered and not being
//  shed already and idle at least min_idle_ms (since their last message,
//  or their accept): one that has sent nothing for PS_SILENT_GRACE_MS
//  since its accept (a client says something at once: the attack is to
//  say nothing), else the one idle longest; that idle time into *idle_ms.
//  -1 when there is none.
int ps_conns_pick (ps_conns_t *self, int64_t now, int64_t min_idle_ms,
                   ps_conns_registered_fn *registered, void *arg, int64_t *idle_ms);
//  Shut fd's connection down (see the top); from then on it is not
//  counted. 0, or -1 when fd no longer holds the connection accepted
int ps_conns_shed (ps_conns_t *self, int fd);

#endif
