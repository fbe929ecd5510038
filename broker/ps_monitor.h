/*  =========================================================================
    ps_monitor - read libzmq's socket monitor events, and name a peer

    The ROUTER loop watches its worker port and its tap with libzmq's
    socket monitor (ps_broker.c, ps_tap.c). Each event is two frames: six
    bytes (the event's kind, then its value: a file descriptor for
    ACCEPTED and DISCONNECTED, a status for a failed handshake) and the
    endpoint. Called by the thread that owns the monitor's PAIR socket.
    ========================================================================= */

#ifndef PS_MONITOR_H_INCLUDED
#define PS_MONITOR_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

//  Read one event from monitor (both frames): 0 with its kind and value,
//  or -1 when nothing or something shorter than an event came
int ps_monitor_read (zsock_t *monitor, uint16_t *kind, int32_t *value);

//  "host:port" of the peer on connection fd, "?:?" when it cannot be
//  told, followed by suffix; caller frees (zstr_free). NULL out of memory
char *ps_monitor_peer (int fd, const char *suffix);

#endif
