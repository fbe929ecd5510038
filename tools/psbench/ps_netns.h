/*  =========================================================================
    ps_netns - hosts on a private network, for psbench and the tests

    A few Linux network namespaces, one per "host", each with its loopback
    up and one interface, eth0, at 10.77.0.<i + 1>/24 (host 0 is .1, host
    1 is .2, ...). Two hosts are joined by one veth pair; more hosts each
    by a veth pair to a bridge in a namespace of its own (the "switch").
    No interface is in our own namespace and no host has a route out, so
    nothing sent on this network can leave it, and the subnet may be the
    same for every network at once: each is a world of its own.

    Programs run on a host through `ip netns exec` (ps_netns_command puts
    that in front of their argv), or in a thread that entered the host
    (ps_netns_enter: every socket the thread makes from then on, and every
    thread it starts, is on that host). A host's link can be taken down
    (as a cable pulled) and rate-limited with tc's token bucket (tbf, both
    directions, as a full-duplex link of that rate).

    Namespaces are named psmq-<tag>-<pid>-<host letter> (the switch
    psmq-<tag>-<pid>-sw), so that runs side by side never meet, and
    ps_netns_sweep removes those of a tag whose process is gone (a run
    that was killed before it could clean up). ps_netns_destroy removes
    them all, whatever state they are in.

    Needs root (CAP_SYS_ADMIN) and iproute2's ip and tc. Failures fill a
    ps_problem_t (code 0: they are local) with the command that failed.
    The object is the caller's; any one thread may use it at a time
    (ps_netns_enter changes the calling thread only).
    ========================================================================= */

#ifndef PS_NETNS_H_INCLUDED
#define PS_NETNS_H_INCLUDED

#include "ps_problem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Hosts on one network, at most
#define PS_NETNS_MAX_HOSTS 8
//  Entries that ps_netns_command adds in front of a program's argv
#define PS_NETNS_PREFIX 4

typedef struct ps_netns_s ps_netns_t;

//  Whether this process can make namespaces: root, and ip and tc found.
//  0, or -1 (problem says what is missing)
int ps_netns_available (ps_problem_t *problem);

//  A network of hosts hosts (2 .. PS_NETNS_MAX_HOSTS), tag (a few
//  letters and digits) in its names; NULL (problem says why, nothing
//  left behind)
ps_netns_t *ps_netns_new (const char *tag, size_t hosts, ps_problem_t *problem);

//  Remove every namespace of the network (their interfaces go with
//  them; a process still running on a host keeps its namespace alive,
//  unreachable, until it ends); nulls *self_p; idempotent
void ps_netns_destroy (ps_netns_t **self_p);

//  Remove the namespaces of tag left by processes that no longer run
void ps_netns_sweep (const char *tag);

//  Hosts on the network
size_t ps_netns_hosts (const ps_netns_t *self);

//  Host's namespace name and its address (dotted, no mask); borrowed
const char *ps_netns_name (const ps_netns_t *self, size_t host);
const char *ps_netns_address (const ps_netns_t *self, size_t host);

//  Every host's address, comma-separated (for psbroker --allow-from);
//  borrowed
const char *ps_netns_addresses (const ps_netns_t *self);

//  argv (NULL-terminated) as it runs on host, into command (size
//  entries): `ip netns exec NAME argv...`, which execs the program in the
//  namespace (its pid is the program's). 0, or -1 when it does not fit
int ps_netns_command (const ps_netns_t *self, size_t host, char *const argv[], char **command,
                      size_t size);

//  Bring host's link up or down (down: nothing comes in or goes out of
//  eth0, as a cable pulled); 0 or -1
int ps_netns_link (ps_netns_t *self, size_t host, bool up, ps_problem_t *problem);

//  Limit host's link to bits_per_second each way with a tbf on both ends
//  of its veth pair (0 removes the limit); 0 or -1
int ps_netns_rate (ps_netns_t *self, size_t host, uint64_t bits_per_second, ps_problem_t *problem);

//  Put the calling thread on host: sockets it makes and threads it starts
//  from now on are there. *saved gets a descriptor of the namespace it
//  was in, for ps_netns_leave. 0, or -1 (it stays where it was)
int ps_netns_enter (const ps_netns_t *self, size_t host, int *saved, ps_problem_t *problem);

//  Put the calling thread back where ps_netns_enter found it and close
//  *saved (set to -1); nothing when *saved is -1. 0 or -1
int ps_netns_leave (int *saved, ps_problem_t *problem);

#endif
