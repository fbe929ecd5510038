/*  =========================================================================
    ps_conns - open connections by descriptor (see ps_conns.h)

    An array indexed by descriptor, grown to the largest one seen: the
    kernel hands out the lowest free number, so it is as long as the most
    connections open at once (bounded by the cap) plus the broker's own
    descriptors. Picking scans it, which costs a pass over the open
    connections per shed connection: at most thousands, and only when the
    cap is reached or once per idle check.
    ========================================================================= */

#include "ps_conns.h"
#include "ps_limits.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

typedef struct {
    bool open;         //  accepted and not closed
    bool shed;         //  shut down by us, its close not yet reported
    int64_t accepted;  //  monotonic ms
    int64_t last_seen; //  of its last message, or its accept
    bool heard;        //  a message came on it
    dev_t dev;         //  the socket's identity, to tell a reused
    ino_t ino;         //  descriptor from the one accepted
} conn_t;

struct ps_conns_t {
    conn_t *table;   //  by descriptor
    size_t capacity; //  entries in table
    size_t count;    //  open and not shed
};

ps_conns_t *
ps_conns_new (void)
{
    return calloc (1, sizeof (ps_conns_t));
}

void
ps_conns_destroy (ps_conns_t **self_p)
{
    assert (self_p);
    ps_conns_t *self = *self_p;
    if (!self)
        return;
    free (self->table);
    free (self);
    *self_p = NULL;
}

static conn_t *
s_conn (ps_conns_t *self, int fd)
{
    return fd >= 0 && (size_t)fd < self->capacity ? &self->table[fd] : NULL;
}

void
ps_conns_opened (ps_conns_t *self, int fd, int64_t now)
{
    assert (self);
    if (fd < 0)
        return;
    if ((size_t)fd >= self->capacity) {
        size_t grown = self->capacity ? self->capacity : 256;
        while (grown <= (size_t)fd)
            grown *= 2;
        conn_t *table = realloc (self->table, grown * sizeof *table);
        if (!table)
            return; //  untracked: never shed, which is the safe side
        memset (table + self->capacity, 0, (grown - self->capacity) * sizeof *table);
        self->table = table;
        self->capacity = grown;
    }
    conn_t *conn = &self->table[fd];
    if (conn->open && !conn->shed)
        self->count--; //  its close was never reported
    struct stat info;
    bool known = fstat (fd, &info) == 0;
    *conn = (conn_t){.open = true,
                     .accepted = now,
                     .last_seen = now,
                     .dev = known ? info.st_dev : 0,
                     .ino = known ? info.st_ino : 0};
    self->count++;
}

void
ps_conns_closed (ps_conns_t *self, int fd)
{
    assert (self);
    conn_t *conn = s_conn (self, fd);
    if (!conn || !conn->open)
        return;
    if (!conn->shed)
        self->count--;
    *conn = (conn_t){0};
}

void
ps_conns_heard (ps_conns_t *self, int fd, int64_t now)
{
    assert (self);
    conn_t *conn = s_conn (self, fd);
    if (conn && conn->open) {
        conn->last_seen = now;
        conn->heard = true;
    }
}

size_t
ps_conns_count (const ps_conns_t *self)
{
    assert (self);
    return self->count;
}

int
ps_conns_pick (ps_conns_t *self, int64_t now, int64_t min_idle_ms,
               ps_conns_registered_fn *registered, void *arg, int64_t *idle_ms)
{
    assert (self);
    int chosen = -1;
    int64_t longest = -1;
    bool chosen_silent = false;
    for (size_t fd = 0; fd < self->capacity; fd++) {
        const conn_t *conn = &self->table[fd];
        if (!conn->open || conn->shed)
            continue;
        int64_t idle = now - conn->last_seen;
        bool silent = !conn->heard && idle >= PS_SILENT_GRACE_MS;
        if (idle < min_idle_ms || (chosen_silent && !silent) ||
            (silent == chosen_silent && idle <= longest) || registered (arg, (int)fd))
            continue;
        chosen = (int)fd;
        longest = idle;
        chosen_silent = silent;
    }
    if (idle_ms)
        *idle_ms = longest;
    return chosen;
}

int
ps_conns_shed (ps_conns_t *self, int fd)
{
    assert (self);
    conn_t *conn = s_conn (self, fd);
    if (!conn || !conn->open || conn->shed)
        return -1;
    struct stat info;
    if (fstat (fd, &info) || info.st_dev != conn->dev || info.st_ino != conn->ino) {
        //  Closed behind our back and reused: its close is on its way
        conn->open = false;
        self->count--;
        return -1;
    }
    conn->shed = true;
    self->count--;
    shutdown (fd, SHUT_RDWR);
    return 0;
}
