/*  =========================================================================
    ps_auth - who may connect to the broker (see ps_auth.h)

    The policy is words sent to zauth: ALLOW with the addresses (loopback
    and allow_from; none under curve without allow_from, so that any
    address with a good key gets in), CURVE with the allow-list folder or
    CURVE_ALLOW_ANY. The same words, joined, name the policy, so that a
    second broker of the process can be compared with the zauth running.

    Which connection a refusal was: libzmq's monitor gives a failed
    handshake's status but not its peer (the event's address is the
    endpoint we bound). A connection's HANDSHAKE_FAILED event comes
    before its DISCONNECTED, whose descriptor the ACCEPTED event tied to
    an address; so each close is taken for a refused connection's while
    refusals wait for their close. Many at once (ZAP answers in its own
    time) may interleave with a plain close and name the wrong address;
    the counts stay right.
    ========================================================================= */

#include "ps_auth.h"
#include "ps_limits.h"
#include "ps_log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { MODE_OPEN, MODE_PROTECTED, MODE_CURVE } auth_mode_t;

struct ps_auth_t {
    auth_mode_t mode;           //  what the configuration asked for
    zcert_t *cert;              //  the broker's key pair (curve)
    char *allow_keys;           //  the allow-list folder (curve), or NULL
    zlist_t *allowed;           //  addresses zauth admits (strings), may be empty
    bool shares_zauth;          //  holds a count on the process's zauth
    uint64_t refused;           //  refusals seen
    const char *why_pending;    //  reason of the refusals whose close is due
    uint64_t pending;           //  refusals whose close is due
    int64_t log_window;         //  second of the log limiter
    uint32_t logged;            //  lines logged in that second
    uint64_t unlogged;          //  refusals not logged since the last line
    char why[PS_MAX_ERROR_LEN]; //  the reason of the last refusal
};

//  The process's zauth, shared by its brokers (see ps_auth.h)
static pthread_mutex_t s_zauth_lock = PTHREAD_MUTEX_INITIALIZER;
static zactor_t *s_zauth;
static char *s_zauth_policy;
static unsigned s_zauth_users;

static bool
s_is_address (const char *text)
{
    unsigned char buffer[sizeof (struct in6_addr)];
    return inet_pton (AF_INET, text, buffer) == 1 || inet_pton (AF_INET6, text, buffer) == 1;
}

//  Each comma-separated address of allow_from, checked; 0 or -1
static int
s_parse_allow_from (const char *list, zlist_t *into, ps_problem_t *problem)
{
    size_t count = 0;
    const char *start = list;
    while (true) {
        size_t length = strcspn (start, ",");
        char address[INET6_ADDRSTRLEN + 1];
        if (length == 0 || length >= sizeof address) {
            return ps_problem_set (problem, 0, "--allow-from '%.200s': an empty or too long entry",
                                   list);
        }
        snprintf (address, sizeof address, "%.*s", (int)length, start);
        if (!s_is_address (address))
            return ps_problem_set (problem, 0,
                                   "--allow-from '%s' is not a numeric IPv4 or IPv6 address "
                                   "(zauth compares whole addresses: no names, no masks)",
                                   address);
        if (++count > PS_MAX_ALLOW_FROM)
            return ps_problem_set (problem, 0, "--allow-from: at most %d addresses",
                                   PS_MAX_ALLOW_FROM);
        if (into)
            zlist_append (into, address); //  autofree: copied
        if (!start[length])
            return 0;
        start += length + 1;
    }
}

int
ps_auth_config_check (const ps_broker_config_t *config, ps_problem_t *problem)
{
    if (config->insecure_allow_any && (config->curve_secret || config->allow_from))
        return ps_problem_set (problem, 0,
                               "--insecure-allow-any admits anybody: it makes no sense with "
                               "--curve-secret or --allow-from");
    if ((config->allow_keys || config->allow_any_key) && !config->curve_secret)
        return ps_problem_set (problem, 0,
                               "%s needs --curve-secret FILE, the broker's secret key (make one "
                               "with: pskeys new broker)",
                               config->allow_keys ? "--allow-keys" : "--insecure-allow-any-key");
    if (config->allow_keys && config->allow_any_key)
        return ps_problem_set (problem, 0,
                               "--allow-keys and --insecure-allow-any-key: give one of them");
    if (config->curve_secret && !config->allow_keys && !config->allow_any_key)
        return ps_problem_set (problem, 0,
                               "--curve-secret without --allow-keys DIR: the broker would not "
                               "know which clients to admit. Give a folder of the clients' public "
                               "certificates (NAME.key files made by pskeys new NAME), or "
                               "--insecure-allow-any-key to admit anybody who knows the "
                               "broker's public key (encrypted, but not authenticated)");
    if (config->allow_from && s_parse_allow_from (config->allow_from, NULL, problem))
        return -1;
    return 0;
}

//  The words of the policy, for zauth and for comparing with the running
//  one: "ALLOW a b|CURVE dir"
static char *
s_policy (const ps_auth_t *self)
{
    size_t size = 64 + (self->allow_keys ? strlen (self->allow_keys) : 0) +
                  zlist_size (self->allowed) * (INET6_ADDRSTRLEN + 1);
    char *text = calloc (1, size);
    if (!text)
        return NULL;
    size_t used = (size_t)snprintf (text, size, "ALLOW");
    for (const char *address = zlist_first (self->allowed); address;
         address = zlist_next (self->allowed))
        used += (size_t)snprintf (text + used, size - used, " %s", address);
    if (self->mode == MODE_CURVE)
        snprintf (text + used, size - used, "|CURVE %s",
                  self->allow_keys ? self->allow_keys : CURVE_ALLOW_ANY);
    return text;
}

//  Start the process's zauth with our policy, or count on the running one
//  if it has the same; 0 or -1
static int
s_zauth_take (ps_auth_t *self, ps_problem_t *problem)
{
    char *policy = s_policy (self);
    if (!policy)
        return ps_problem_set (problem, 0, "out of memory");
    int rc = 0;
    pthread_mutex_lock (&s_zauth_lock);
    if (s_zauth && strcmp (s_zauth_policy, policy) != 0)
        rc = ps_problem_set (problem, 0,
                             "another broker of this process admits other peers (zauth serves "
                             "one policy per process): '%s', not '%s'",
                             s_zauth_policy, policy);
    else if (s_zauth)
        s_zauth_users++;
    else {
        s_zauth = zactor_new (zauth, NULL);
        if (!s_zauth)
            rc = ps_problem_set (problem, 0, "cannot start the authentication actor (zauth)");
        else {
            //  Each command is answered with a signal once applied
            if (zlist_size (self->allowed)) {
                zmsg_t *allow = zmsg_new ();
                zmsg_addstr (allow, "ALLOW");
                for (const char *address = zlist_first (self->allowed); address;
                     address = zlist_next (self->allowed))
                    zmsg_addstr (allow, address);
                zmsg_send (&allow, s_zauth);
                zsock_wait (s_zauth);
            }
            if (self->mode == MODE_CURVE) {
                zstr_sendx (s_zauth, "CURVE", self->allow_keys ? self->allow_keys : CURVE_ALLOW_ANY,
                            NULL);
                zsock_wait (s_zauth);
            }
            s_zauth_policy = policy;
            policy = NULL;
            s_zauth_users = 1;
        }
    }
    pthread_mutex_unlock (&s_zauth_lock);
    free (policy);
    if (rc == 0)
        self->shares_zauth = true;
    return rc;
}

static void
s_zauth_release (void)
{
    pthread_mutex_lock (&s_zauth_lock);
    if (s_zauth_users && --s_zauth_users == 0) {
        zactor_destroy (&s_zauth);
        free (s_zauth_policy);
        s_zauth_policy = NULL;
    }
    pthread_mutex_unlock (&s_zauth_lock);
}

//  The broker's key pair from its secret certificate file; 0 or -1
static int
s_load_secret (ps_auth_t *self, const char *file, ps_problem_t *problem)
{
    struct stat info;
    if (stat (file, &info) != 0)
        return ps_problem_set (problem, 0, "--curve-secret %s: %s (make one with: pskeys new NAME)",
                               file, strerror (errno));
    self->cert = zcert_load (file);
    if (!self->cert)
        return ps_problem_set (problem, 0,
                               "--curve-secret %s is not a certificate file (make one with: "
                               "pskeys new NAME, and give NAME.key_secret)",
                               file);
    static const char zeros[] = "0000000000000000000000000000000000000000";
    if (strcmp (zcert_secret_txt (self->cert), zeros) == 0)
        return ps_problem_set (problem, 0,
                               "--curve-secret %s holds no secret key: give the NAME.key_secret "
                               "file pskeys wrote, not the public NAME.key",
                               file);
    if (info.st_mode & (S_IRWXG | S_IRWXO))
        ps_warn ("--curve-secret %s can be read by other users (mode %03o): chmod 600 it", file,
                 (unsigned)(info.st_mode & 0777));
    return 0;
}

ps_auth_t *
ps_auth_new (const ps_broker_config_t *config, ps_problem_t *problem)
{
    if (ps_auth_config_check (config, problem))
        return NULL;
    ps_auth_t *self = calloc (1, sizeof *self);
    if (!self || !(self->allowed = zlist_new ())) {
        free (self);
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    zlist_autofree (self->allowed);
    self->mode = config->curve_secret         ? MODE_CURVE
                 : config->insecure_allow_any ? MODE_OPEN
                                              : MODE_PROTECTED;
    //  Loopback, and the listed addresses; under curve only with a list
    if (self->mode == MODE_PROTECTED || (self->mode == MODE_CURVE && config->allow_from)) {
        zlist_append (self->allowed, "127.0.0.1");
        zlist_append (self->allowed, "::1");
    }
    int rc = 0;
    if (config->allow_from)
        rc = s_parse_allow_from (config->allow_from, self->allowed, problem);
    if (rc == 0 && self->mode == MODE_CURVE)
        rc = s_load_secret (self, config->curve_secret, problem);
    if (rc == 0 && config->allow_keys) {
        struct stat info;
        if (stat (config->allow_keys, &info) != 0 || !S_ISDIR (info.st_mode))
            rc = ps_problem_set (problem, 0,
                                 "--allow-keys %s is not a folder (it holds the clients' public "
                                 "certificates, NAME.key files made by pskeys)",
                                 config->allow_keys);
        else if (!(self->allow_keys = strdup (config->allow_keys)))
            rc = ps_problem_set (problem, 0, "out of memory");
    }
    if (rc == 0 && self->mode != MODE_OPEN)
        rc = s_zauth_take (self, problem);
    if (rc) {
        ps_auth_destroy (&self);
        return NULL;
    }
    if (self->mode == MODE_OPEN)
        ps_warn ("--insecure-allow-any: anybody who reaches this broker's port may read and "
                 "change the model; use CURVE keys (--curve-secret) or --allow-from instead");
    else if (self->mode == MODE_CURVE && !self->allow_keys)
        ps_warn ("--insecure-allow-any-key: traffic is encrypted, but anybody who knows the "
                 "broker's public key is admitted");
    return self;
}

void
ps_auth_destroy (ps_auth_t **self_p)
{
    assert (self_p);
    ps_auth_t *self = *self_p;
    if (!self)
        return;
    if (self->shares_zauth)
        s_zauth_release ();
    zcert_destroy (&self->cert);
    zlist_destroy (&self->allowed);
    free (self->allow_keys);
    free (self);
    *self_p = NULL;
}

void
ps_auth_apply (ps_auth_t *self, zsock_t *socket, const char *endpoint)
{
    if (self->mode == MODE_CURVE) {
        zcert_apply (self->cert, socket);
        zsock_set_curve_server (socket, 1);
    }
    //  The domain makes libzmq ask zauth about NULL connections too; under
    //  curve it changes nothing (CURVE always asks)
    if (self->mode == MODE_CURVE ||
        (self->mode == MODE_PROTECTED && strncmp (endpoint, "tcp://", 6) == 0))
        zsock_set_zap_domain (socket, "psmq");
}

const char *
ps_auth_mode (const ps_auth_t *self)
{
    return self->mode == MODE_CURVE ? "curve" : self->mode == MODE_OPEN ? "open" : "protected";
}

bool
ps_auth_curve (const ps_auth_t *self)
{
    return self->mode == MODE_CURVE;
}

uint64_t
ps_auth_refused (const ps_auth_t *self)
{
    return self->refused;
}

const char *
ps_auth_handshake_failed (ps_auth_t *self, int event, uint32_t value)
{
    const char *why;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        why = self->mode == MODE_CURVE ? (self->allow_keys ? "not an allowed key or address (CURVE)"
                                                           : "not an allowed address (CURVE)")
                                       : "address not allowed (protected mode: loopback peers "
                                         "only, and --allow-from)";
    else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        why = self->mode == MODE_CURVE ? "no CURVE keys (this broker requires them)"
                                       : "CURVE keys, while this broker has none";
    else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        why = "CURVE handshake failed (the client knows another broker key)";
    else
        why = "handshake failed (protocol error)";
    self->refused++;
    self->pending++;
    self->why_pending = why;
    snprintf (self->why, sizeof self->why, "%s", why);
    return why;
}

const char *
ps_auth_closed (ps_auth_t *self, const char *remote)
{
    if (!self->pending)
        return NULL;
    self->pending--;
    const char *why = self->why_pending;
    int64_t second = zclock_mono () / 1000;
    if (second != self->log_window) {
        self->log_window = second;
        self->logged = 0;
    }
    if (self->logged < PS_AUTH_LOG_PER_SECOND) {
        self->logged++;
        if (self->unlogged)
            ps_warn ("refused a connection from %s: %s (and %llu more refused, not logged)",
                     remote ? remote : "?", why, (unsigned long long)self->unlogged);
        else
            ps_warn ("refused a connection from %s: %s", remote ? remote : "?", why);
        self->unlogged = 0;
    }
    else
        self->unlogged++;
    return why;
}

json_t *
ps_auth_json (const ps_auth_t *self)
{
    json_t *allowed = json_array ();
    for (const char *address = zlist_first (self->allowed); address;
         address = zlist_next (self->allowed))
        json_array_append_new (allowed, json_string (address));
    return json_pack ("{s:s, s:I, s:o, s:s?, s:s}", "mode", ps_auth_mode (self), "refused",
                      (json_int_t)self->refused, "allow_from", allowed, "allow_keys",
                      self->allow_keys, "last_refusal", self->why);
}

bool
ps_auth_endpoint_local (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    //  An interface name or a source address before ';' binds the same
    if (strchr (host, ';'))
        return false;
    return strncmp (host, "127.", 4) == 0 || strncmp (host, "[::1]:", 6) == 0 ||
           strncmp (host, "localhost:", 10) == 0;
}

int
ps_auth_check_private_dir (const char *dir, ps_problem_t *problem)
{
    struct stat info;
    if (lstat (dir, &info) != 0)
        return ps_problem_set (problem, 0, "runtime folder %s: %s", dir, strerror (errno));
    if (S_ISLNK (info.st_mode))
        return ps_problem_set (problem, 0,
                               "runtime folder %s is a symbolic link: another user may have "
                               "made it to read the tap; remove it, or give --tap EP",
                               dir);
    if (!S_ISDIR (info.st_mode))
        return ps_problem_set (problem, 0,
                               "runtime folder %s is not a folder; remove it, or "
                               "give --tap EP",
                               dir);
    if (info.st_uid != geteuid ())
        return ps_problem_set (problem, 0,
                               "runtime folder %s belongs to uid %u, not to us (uid %u): another "
                               "user may read the tap there; remove it, or give --tap EP",
                               dir, (unsigned)info.st_uid, (unsigned)geteuid ());
    if (info.st_mode & (S_IRWXG | S_IRWXO))
        return ps_problem_set (problem, 0,
                               "runtime folder %s has mode %03o: group or others may reach the "
                               "tap there; chmod 700 it, or give --tap EP",
                               dir, (unsigned)(info.st_mode & 0777));
    return 0;
}
