/*  =========================================================================
    ps_netns - hosts on a private network (see ps_netns.h)

    Everything is done by running iproute2's ip and tc (ps_process), as an
    operator would type it, rather than by speaking rtnetlink ourselves:
    the commands are the documentation of the network, and a failing one
    is named in the problem as it can be typed again by hand.

    Each end of a veth pair is made directly in its namespace (`ip link
    add eth0 netns A type veth peer name to-a netns SW`), so no interface
    ever appears in ours and the names inside the hosts can all be eth0.

    The token bucket: rate as given; burst half a millisecond of it, at
    least 128 KB (a GSO packet of 64 KB must fit, and a bigger bucket lets
    a transfer start up to burst bytes faster than the rate: 0.2% of 64 MB
    at 1 Gbit/s, 1% at 10 Gbit/s); a queue of 20 ms of it, so that TCP
    fills the link without losses at these rates.
    ========================================================================= */

#include "ps_netns.h"
#include "ps_process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

//  How long one ip or tc command may take
#define COMMAND_MS 20000
//  Where `ip netns` keeps its namespaces
#define NETNS_DIR "/run/netns"

struct ps_netns_s {
    char ip[64];                             //  the ip program
    char tc[64];                             //  the tc program
    size_t hosts;                            //  hosts on the network
    char names[PS_NETNS_MAX_HOSTS][48];      //  their namespaces
    char addresses[PS_NETNS_MAX_HOSTS][16];  //  their eth0's addresses
    bool made[PS_NETNS_MAX_HOSTS];           //  namespace exists
    char switch_name[48];                    //  the bridge's namespace ("" for a pair)
    bool switch_made;                        //  it exists
    char allow[PS_NETNS_MAX_HOSTS * 16 + 1]; //  the addresses, comma-separated
};

//  The first of paths that we may run, into path; 0 or -1
static int
s_find (const char *const paths[], size_t count, char *path, size_t size)
{
    for (size_t i = 0; i < count; i++)
        if (access (paths[i], X_OK) == 0) {
            snprintf (path, size, "%s", paths[i]);
            return 0;
        }
    return -1;
}

static int
s_programs (char *ip, size_t ip_size, char *tc, size_t tc_size, ps_problem_t *problem)
{
    static const char *const ips[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    static const char *const tcs[] = {"/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc", "/bin/tc"};
    if (s_find (ips, 4, ip, ip_size) || s_find (tcs, 4, tc, tc_size))
        return ps_problem_set (problem, 0,
                               "ip or tc not found in /usr/sbin or /sbin (Debian's iproute2 "
                               "has both; tools/setup installs it)");
    return 0;
}

int
ps_netns_available (ps_problem_t *problem)
{
    if (geteuid () != 0)
        return ps_problem_set (problem, 0,
                               "network namespaces need root (uid %d here; CI runs as root)",
                               (int)geteuid ());
    char ip[64], tc[64];
    return s_programs (ip, sizeof ip, tc, sizeof tc, problem);
}

//  Run argv (NULL-terminated) to its end; 0, or -1 naming the command
static int
s_run (char *const argv[], ps_problem_t *problem)
{
    char *output = NULL;
    int status = 0;
    int rc = ps_process_capture (argv, false, COMMAND_MS, &output, &status, problem);
    free (output);
    if (rc == 0 && ps_process_exit_code (status) == 0)
        return 0;
    char line[256] = "";
    size_t used = 0;
    for (size_t i = 0; argv[i] && used < sizeof line; i++)
        used += (size_t)snprintf (line + used, sizeof line - used, "%s%s", i ? " " : "", argv[i]);
    return ps_problem_set (problem, 0, "`%s` failed (%s)", line,
                           rc ? "did not run to its end" : "see its message above");
}

//  Run program (ip or tc) with up to 16 arguments, NULL-terminated;
//  0 or -1
static int
s_command (const char *program, ps_problem_t *problem, ...)
{
    char *argv[18] = {(char *)program};
    va_list args;
    va_start (args, problem);
    size_t argc = 1;
    while (argc < 17 && (argv[argc] = va_arg (args, char *)))
        argc++;
    va_end (args);
    argv[argc] = NULL;
    return s_run (argv, problem);
}

static int
s_add_namespace (const ps_netns_t *self, const char *name, ps_problem_t *problem)
{
    if (s_command (self->ip, problem, "netns", "add", name, NULL))
        return -1;
    return s_command (self->ip, problem, "-n", name, "link", "set", "lo", "up", NULL);
}

//  Host's eth0: its address, up
static int
s_address_host (const ps_netns_t *self, size_t host, ps_problem_t *problem)
{
    char cidr[24];
    snprintf (cidr, sizeof cidr, "%s/24", self->addresses[host]);
    const char *name = self->names[host];
    if (s_command (self->ip, problem, "-n", name, "addr", "add", cidr, "dev", "eth0", NULL))
        return -1;
    return s_command (self->ip, problem, "-n", name, "link", "set", "eth0", "up", NULL);
}

//  The switch side of host's link: its interface name in the switch
static void
s_port_name (size_t host, char *name, size_t size)
{
    snprintf (name, size, "to-%c", (char)('a' + host));
}

//  Two hosts: one veth pair between them
static int
s_make_pair (const ps_netns_t *self, ps_problem_t *problem)
{
    return s_command (self->ip, problem, "link", "add", "eth0", "netns", self->names[0], "type",
                      "veth", "peer", "name", "eth0", "netns", self->names[1], NULL);
}

//  More hosts: a bridge in the switch's namespace, and a pair from each
static int
s_make_switch (ps_netns_t *self, ps_problem_t *problem)
{
    const char *sw = self->switch_name;
    if (s_add_namespace (self, sw, problem))
        return -1;
    self->switch_made = true;
    if (s_command (self->ip, problem, "-n", sw, "link", "add", "br0", "type", "bridge", NULL) ||
        s_command (self->ip, problem, "-n", sw, "link", "set", "br0", "up", NULL))
        return -1;
    for (size_t host = 0; host < self->hosts; host++) {
        char port[16];
        s_port_name (host, port, sizeof port);
        if (s_command (self->ip, problem, "link", "add", "eth0", "netns", self->names[host], "type",
                       "veth", "peer", "name", port, "netns", sw, NULL) ||
            s_command (self->ip, problem, "-n", sw, "link", "set", port, "master", "br0", NULL) ||
            s_command (self->ip, problem, "-n", sw, "link", "set", port, "up", NULL))
            return -1;
    }
    return 0;
}

ps_netns_t *
ps_netns_new (const char *tag, size_t hosts, ps_problem_t *problem)
{
    if (hosts < 2 || hosts > PS_NETNS_MAX_HOSTS) {
        ps_problem_set (problem, 0, "%zu hosts: a network has 2 to %d", hosts, PS_NETNS_MAX_HOSTS);
        return NULL;
    }
    if (ps_netns_available (problem))
        return NULL;
    ps_netns_t *self = calloc (1, sizeof *self);
    if (!self) {
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    s_programs (self->ip, sizeof self->ip, self->tc, sizeof self->tc, problem);
    self->hosts = hosts;
    int pid = (int)getpid ();
    size_t used = 0;
    for (size_t host = 0; host < hosts; host++) {
        snprintf (self->names[host], sizeof self->names[host], "psmq-%.8s-%d-%c", tag, pid,
                  (char)('a' + host));
        snprintf (self->addresses[host], sizeof self->addresses[host], "10.77.0.%zu", host + 1);
        used += (size_t)snprintf (self->allow + used, sizeof self->allow - used, "%s%s",
                                  host ? "," : "", self->addresses[host]);
    }
    if (hosts > 2)
        snprintf (self->switch_name, sizeof self->switch_name, "psmq-%.8s-%d-sw", tag, pid);
    int rc = 0;
    for (size_t host = 0; host < hosts && rc == 0; host++) {
        rc = s_add_namespace (self, self->names[host], problem);
        //  Even when it failed: one made whose lo failed is ours to remove
        self->made[host] = true;
    }
    if (rc == 0)
        rc = hosts == 2 ? s_make_pair (self, problem) : s_make_switch (self, problem);
    for (size_t host = 0; host < hosts && rc == 0; host++)
        rc = s_address_host (self, host, problem);
    if (rc) {
        ps_netns_destroy (&self);
        return NULL;
    }
    return self;
}

void
ps_netns_destroy (ps_netns_t **self_p)
{
    ps_netns_t *self = *self_p;
    if (!self)
        return;
    //  Each deletion removes the ends of pairs in that namespace, and so
    //  the pairs; a failure leaves nothing more we could do
    for (size_t host = 0; host < self->hosts; host++)
        if (self->made[host])
            s_command (self->ip, NULL, "netns", "del", self->names[host], NULL);
    if (self->switch_made)
        s_command (self->ip, NULL, "netns", "del", self->switch_name, NULL);
    free (self);
    *self_p = NULL;
}

void
ps_netns_sweep (const char *tag)
{
    char ip[64], tc[64];
    if (s_programs (ip, sizeof ip, tc, sizeof tc, NULL))
        return;
    DIR *dir = opendir (NETNS_DIR);
    if (!dir)
        return;
    char prefix[32];
    snprintf (prefix, sizeof prefix, "psmq-%.8s-", tag);
    size_t prefix_length = strlen (prefix);
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (strncmp (entry->d_name, prefix, prefix_length) != 0)
            continue;
        char *end = NULL;
        long pid = strtol (entry->d_name + prefix_length, &end, 10);
        if (pid <= 0 || !end || *end != '-')
            continue;
        if (kill ((pid_t)pid, 0) == -1 && errno == ESRCH)
            s_command (ip, NULL, "netns", "del", entry->d_name, NULL);
    }
    closedir (dir);
}

size_t
ps_netns_hosts (const ps_netns_t *self)
{
    return self->hosts;
}

const char *
ps_netns_name (const ps_netns_t *self, size_t host)
{
    return host < self->hosts ? self->names[host] : "";
}

const char *
ps_netns_address (const ps_netns_t *self, size_t host)
{
    return host < self->hosts ? self->addresses[host] : "";
}

const char *
ps_netns_addresses (const ps_netns_t *self)
{
    return self->allow;
}

int
ps_netns_command (const ps_netns_t *self, size_t host, char *const argv[], char **command,
                  size_t size)
{
    if (host >= self->hosts || size < PS_NETNS_PREFIX + 1)
        return -1;
    command[0] = (char *)self->ip;
    command[1] = "netns";
    command[2] = "exec";
    command[3] = (char *)self->names[host];
    size_t argc = PS_NETNS_PREFIX;
    for (size_t i = 0; argv[i]; i++) {
        if (argc + 1 >= size)
            return -1;
        command[argc++] = argv[i];
    }
    command[argc] = NULL;
    return 0;
}

static int
s_host_check (const ps_netns_t *self, size_t host, ps_problem_t *problem)
{
    if (host < self->hosts)
        return 0;
    return ps_problem_set (problem, 0, "no host %zu on a network of %zu", host, self->hosts);
}

int
ps_netns_link (ps_netns_t *self, size_t host, bool up, ps_problem_t *problem)
{
    if (s_host_check (self, host, problem))
        return -1;
    return s_command (self->ip, problem, "-n", self->names[host], "link", "set", "eth0",
                      up ? "up" : "down", NULL);
}

//  The tbf on one interface of namespace name, or none when rate is 0
static int
s_shape (const ps_netns_t *self, const char *name, const char *dev, uint64_t rate,
         ps_problem_t *problem)
{
    if (rate == 0) {
        //  Nothing to remove is not a failure: the root qdisc is then the default
        s_command (self->tc, NULL, "-n", name, "qdisc", "del", "dev", dev, "root", NULL);
        return 0;
    }
    uint64_t bytes_per_second = rate / 8;
    uint64_t burst = bytes_per_second / 2000;
    if (burst < 128 * 1024)
        burst = 128 * 1024;
    uint64_t limit = bytes_per_second / 50 + burst;
    char rate_text[32], burst_text[32], limit_text[32];
    snprintf (rate_text, sizeof rate_text, "%" PRIu64 "bit", rate);
    snprintf (burst_text, sizeof burst_text, "%" PRIu64, burst);
    snprintf (limit_text, sizeof limit_text, "%" PRIu64, limit);
    return s_command (self->tc, problem, "-n", name, "qdisc", "replace", "dev", dev, "root", "tbf",
                      "rate", rate_text, "burst", burst_text, "limit", limit_text, NULL);
}

int
ps_netns_rate (ps_netns_t *self, size_t host, uint64_t bits_per_second, ps_problem_t *problem)
{
    if (s_host_check (self, host, problem))
        return -1;
    //  The other end: the other host's eth0 for a pair, else the switch's port
    char port[16];
    const char *far_name = self->switch_made ? self->switch_name : self->names[1 - host];
    if (self->switch_made)
        s_port_name (host, port, sizeof port);
    else
        snprintf (port, sizeof port, "eth0");
    if (s_shape (self, self->names[host], "eth0", bits_per_second, problem))
        return -1;
    return s_shape (self, far_name, port, bits_per_second, problem);
}

int
ps_netns_enter (const ps_netns_t *self, size_t host, int *saved, ps_problem_t *problem)
{
    *saved = -1;
    if (s_host_check (self, host, problem))
        return -1;
    char path[128];
    snprintf (path, sizeof path, NETNS_DIR "/%s", self->names[host]);
    int target = open (path, O_RDONLY | O_CLOEXEC);
    if (target == -1)
        return ps_problem_set (problem, 0, "cannot open %s: %s", path, strerror (errno));
    int here = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (here == -1) {
        close (target);
        return ps_problem_set (problem, 0, "cannot open /proc/thread-self/ns/net: %s",
                               strerror (errno));
    }
    int rc = setns (target, CLONE_NEWNET);
    int error = errno;
    close (target);
    if (rc == -1) {
        close (here);
        return ps_problem_set (problem, 0, "cannot enter %s: %s", path, strerror (error));
    }
    *saved = here;
    return 0;
}

int
ps_netns_leave (int *saved, ps_problem_t *problem)
{
    if (*saved == -1)
        return 0;
    int rc = setns (*saved, CLONE_NEWNET);
    int error = errno;
    close (*saved);
    *saved = -1;
    if (rc == -1)
        return ps_problem_set (problem, 0, "cannot go back to our network namespace: %s",
                               strerror (error));
    return 0;
}
