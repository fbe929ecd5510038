/*  =========================================================================
    ps_monitor - read libzmq's socket monitor events, and name a peer

    See ps_monitor.h. The event layout is libzmq's (zmq_socket_monitor):
    a 16-bit kind and a 32-bit value in host order.
    ========================================================================= */

#include "ps_monitor.h"

#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

int
ps_monitor_read (zsock_t *monitor, uint16_t *kind, int32_t *value)
{
    zframe_t *event = zframe_recv (monitor);
    zframe_t *address = event && zframe_more (event) ? zframe_recv (monitor) : NULL;
    int rc = -1;
    if (event && zframe_size (event) >= sizeof *kind + sizeof *value) {
        memcpy (kind, zframe_data (event), sizeof *kind);
        memcpy (value, zframe_data (event) + sizeof *kind, sizeof *value);
        rc = 0;
    }
    zframe_destroy (&event);
    zframe_destroy (&address);
    return rc;
}

char *
ps_monitor_peer (int fd, const char *suffix)
{
    struct sockaddr_storage peer;
    socklen_t length = sizeof peer;
    char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
    if (getpeername (fd, (struct sockaddr *)&peer, &length) == 0)
        getnameinfo ((struct sockaddr *)&peer, length, host, sizeof host, port, sizeof port,
                     NI_NUMERICHOST | NI_NUMERICSERV);
    return zsys_sprintf ("%s:%s%s", host, port, suffix);
}
