/*  =========================================================================
    ps_metrics - the /metrics HTTP server (see ps_metrics.h)

    libmicrohttpd with its own polling thread (epoll, via MHD_USE_AUTO: the
    broker may hold more descriptors than select takes). The access
    handler runs on that thread, one request at a time, and is the only
    user of the pipe's HTTP end.

    The pipe's protocol: an ask is one frame, a uint64_t sequence number;
    the loop's answer is two, that number and the INFO JSON; an empty
    frame from the loop means stop waiting (the broker is stopping). A
    scrape that gave up leaves its answer behind, which the next scrape
    knows by its number and drops.

    libmicrohttpd is not linked but loaded (dlopen) by the first
    ps_metrics_new: it brings GnuTLS and its chain (p11-kit, nettle, gmp,
    ...), 2.4 MB of resident pages and a TLS stack that a broker without
    --metrics would carry for nothing. Its types and constants come from
    <microhttpd.h> as before; the seven functions used are called through
    s_mhd, filled once (pthread_once: brokers in one process, the tests',
    may start together) and kept with the library for the process: a
    dlclose would have to wait for every daemon of every broker to stop.
    ========================================================================= */

#include "ps_metrics.h"
#include "ps_limits.h"
#include "ps_log.h"
#include "ps_prometheus.h"

#include <assert.h>
#include <czmq.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

struct ps_metrics_t {
    struct MHD_Daemon *daemon;         //  the HTTP server and its thread
    zsock_t *loop_end;                 //  the ROUTER loop's end of the pipe
    zsock_t *http_end;                 //  the HTTP thread's end
    uint64_t asked;                    //  HTTP thread: the last ask's number
    int64_t asked_at;                  //  HTTP thread: when (monotonic ms)
    uint64_t pending;                  //  loop: the newest ask to answer
    bool answer_owed;                  //  loop: pending is not answered yet
    char url[320];                     //  where it serves
    char last_error[PS_MAX_ERROR_LEN]; //  libmicrohttpd's last complaint
};

//  PSMQ_MICROHTTPD_SONAME and PSMQ_MICROHTTPD_PACKAGE, the library and
//  its Debian package, come from CMakeLists.txt (from the library built
//  against)

// ------------------------------------------------------------ the library

//  libmicrohttpd's functions that ps_metrics calls, loaded by s_mhd_load;
//  typed after <microhttpd.h>'s declarations, so the compiler checks every
//  call (start_daemon and get_daemon_info are variadic: so are these)
static struct {
    __typeof__ (MHD_start_daemon) *start_daemon;
    __typeof__ (MHD_stop_daemon) *stop_daemon;
    __typeof__ (MHD_get_daemon_info) *get_daemon_info;
    __typeof__ (MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__ (MHD_add_response_header) *add_response_header;
    __typeof__ (MHD_queue_response) *queue_response;
    __typeof__ (MHD_destroy_response) *destroy_response;
} s_mhd;
static pthread_once_t s_mhd_once = PTHREAD_ONCE_INIT;
static char s_mhd_error[PS_MAX_ERROR_LEN]; //  why it did not load; "" when it did

//  dlsym name from library into *function; false, with s_mhd_error, when
//  it is not there
static bool
s_mhd_symbol (void *library, const char *name, void *function)
{
    dlerror ();
    void *found = dlsym (library, name);
    const char *error = dlerror ();
    if (error || !found) {
        snprintf (s_mhd_error, sizeof s_mhd_error, "%s", error ? error : name);
        return false;
    }
    //  POSIX: a function's address fits a void * (dlsym relies on it)
    memcpy (function, &found, sizeof found);
    return true;
}

static void
s_mhd_load (void)
{
    void *library = dlopen (PSMQ_MICROHTTPD_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *error = dlerror ();
        snprintf (s_mhd_error, sizeof s_mhd_error, "%s", error ? error : "dlopen failed");
        return;
    }
    if (!s_mhd_symbol (library, "MHD_start_daemon", &s_mhd.start_daemon) ||
        !s_mhd_symbol (library, "MHD_stop_daemon", &s_mhd.stop_daemon) ||
        !s_mhd_symbol (library, "MHD_get_daemon_info", &s_mhd.get_daemon_info) ||
        !s_mhd_symbol (library, "MHD_create_response_from_buffer",
                       &s_mhd.create_response_from_buffer) ||
        !s_mhd_symbol (library, "MHD_add_response_header", &s_mhd.add_response_header) ||
        !s_mhd_symbol (library, "MHD_queue_response", &s_mhd.queue_response) ||
        !s_mhd_symbol (library, "MHD_destroy_response", &s_mhd.destroy_response)) {
        //  Not all of it: none of it (no daemon started, so none runs its code)
        dlclose (library);
        memset (&s_mhd, 0, sizeof s_mhd);
    }
}

//  Load libmicrohttpd once for the process; 0, or -1 with problem naming
//  the library and why
static int
s_mhd_ready (ps_problem_t *problem)
{
    pthread_once (&s_mhd_once, s_mhd_load);
    if (!s_mhd_error[0])
        return 0;
    return ps_problem_set (problem, 0, "--metrics needs %s (Debian package %s): %s",
                           PSMQ_MICROHTTPD_SONAME, PSMQ_MICROHTTPD_PACKAGE, s_mhd_error);
}

// ------------------------------------------------------------ the address

//  Split "HOST:PORT" (HOST may be [IPv6]) and resolve it to a listening
//  address; 0, or -1 with problem
static int
s_resolve (const char *address, struct sockaddr_storage *where, socklen_t *where_size,
           ps_problem_t *problem)
{
    const char *form = "give HOST:PORT, e.g. 127.0.0.1:9100 or [::1]:9100 (port 0: a free one)";
    const char *colon = address ? strrchr (address, ':') : NULL;
    if (!colon || colon == address || !colon[1])
        return ps_problem_set (problem, 0, "--metrics '%s': %s", address ? address : "", form);
    char host[256];
    size_t host_size = (size_t)(colon - address);
    const char *host_start = address;
    if (address[0] == '[' && colon[-1] == ']') {
        host_start++;
        host_size -= 2;
    }
    if (host_size == 0 || host_size >= sizeof host)
        return ps_problem_set (problem, 0, "--metrics '%s': %s", address, form);
    memcpy (host, host_start, host_size);
    host[host_size] = 0;
    const char *port = colon + 1;
    if (strspn (port, "0123456789") != strlen (port) || strlen (port) > 5 ||
        strtol (port, NULL, 10) > 65535)
        return ps_problem_set (problem, 0, "--metrics '%s': the port '%s' is not 0 to 65535",
                               address, port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    int rc = getaddrinfo (host, port, &hints, &found);
    if (rc != 0 || !found)
        return ps_problem_set (problem, 0, "--metrics '%s': the host '%s' does not resolve: %s",
                               address, host, gai_strerror (rc));
    assert (found->ai_addrlen <= sizeof *where);
    memcpy (where, found->ai_addr, found->ai_addrlen);
    *where_size = found->ai_addrlen;
    freeaddrinfo (found);
    return 0;
}

int
ps_metrics_check_address (const char *address, ps_problem_t *problem)
{
    struct sockaddr_storage where;
    socklen_t size;
    return s_resolve (address, &where, &size, problem);
}

// ------------------------------------------------------------ HTTP thread

//  Ask the loop for a snapshot, no sooner than PS_METRICS_MIN_GAP_MS after
//  the last ask, and wait for it (at most PS_METRICS_WAIT_MS): the
//  Prometheus text, or NULL
static char *
s_scrape (ps_metrics_t *self)
{
    void *pipe = zsock_resolve (self->http_end);
    int64_t early = self->asked_at + PS_METRICS_MIN_GAP_MS - zclock_mono ();
    if (self->asked && early > 0)
        zclock_sleep ((int)early);
    self->asked_at = zclock_mono ();
    uint64_t number = ++self->asked;
    if (zmq_send (pipe, &number, sizeof number, ZMQ_DONTWAIT) != sizeof number)
        return NULL;
    int64_t deadline = zclock_mono () + PS_METRICS_WAIT_MS;
    while (true) {
        int64_t wait = deadline - zclock_mono ();
        zmq_pollitem_t item = {pipe, 0, ZMQ_POLLIN, 0};
        if (wait <= 0 || zmq_poll (&item, 1, wait) <= 0)
            return NULL;
        uint64_t answered = 0;
        int size = zmq_recv (pipe, &answered, sizeof answered, 0);
        if (size <= 0)
            return NULL; //  the loop is stopping
        zmq_msg_t snapshot;
        zmq_msg_init (&snapshot);
        if (!zsock_rcvmore (self->http_end) || zmq_msg_recv (&snapshot, pipe, 0) == -1) {
            zmq_msg_close (&snapshot);
            continue;
        }
        if (size != sizeof answered || answered != number) {
            zmq_msg_close (&snapshot); //  for a scrape that gave up
            continue;
        }
        char *json = strndup (zmq_msg_data (&snapshot), zmq_msg_size (&snapshot));
        zmq_msg_close (&snapshot);
        if (!json)
            return NULL;
        struct timeval now;
        gettimeofday (&now, NULL);
        char *text = ps_prometheus_render (json, (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000);
        free (json);
        return text;
    }
}

static enum MHD_Result
s_respond (struct MHD_Connection *connection, unsigned int status, const char *text)
{
    struct MHD_Response *response =
        s_mhd.create_response_from_buffer (strlen (text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!response)
        return MHD_NO;
    s_mhd.add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        s_mhd.add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = s_mhd.queue_response (connection, status, response);
    s_mhd.destroy_response (response);
    return rc;
}

static enum MHD_Result
s_handle (void *arg, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **request)
{
    ps_metrics_t *self = arg;
    if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_respond (connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics only\n");
    if (strcmp (url, "/metrics") != 0)
        return s_respond (connection, MHD_HTTP_NOT_FOUND, "the metrics are at /metrics\n");
    char *text = s_scrape (self);
    if (!text)
        return s_respond (connection, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "the broker did not answer in time\n");
    struct MHD_Response *response =
        s_mhd.create_response_from_buffer (strlen (text), text, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free (text);
        return MHD_NO;
    }
    s_mhd.add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, PS_PROMETHEUS_CONTENT_TYPE);
    enum MHD_Result rc = s_mhd.queue_response (connection, MHD_HTTP_OK, response);
    s_mhd.destroy_response (response);
    return rc;
}

//  libmicrohttpd's complaints: logged, and the last one kept for a failed
//  start's problem
static void
s_log (void *arg, const char *format, va_list args)
{
    ps_metrics_t *self = arg;
    char line[PS_MAX_ERROR_LEN];
    vsnprintf (line, sizeof line, format, args);
    line[strcspn (line, "\n")] = 0;
    snprintf (self->last_error, sizeof self->last_error, "%s", line);
    ps_debug ("metrics: %s", line);
}

// ------------------------------------------------------------ loop thread

//  The URL of the address bound, its port filled in
static void
s_name_url (ps_metrics_t *self, const struct sockaddr_storage *where, socklen_t where_size,
            uint16_t port)
{
    //  A numeric address: at most an IPv6 one with a scope (fe80::1%eth0)
    char host[96] = "?";
    getnameinfo ((const struct sockaddr *)where, where_size, host, sizeof host, NULL, 0,
                 NI_NUMERICHOST);
    bool six = where->ss_family == AF_INET6;
    snprintf (self->url, sizeof self->url, "http://%s%s%s:%u/metrics", six ? "[" : "", host,
              six ? "]" : "", port);
}

static int
s_pipe_setup (ps_metrics_t *self, ps_problem_t *problem)
{
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://psbroker-metrics-%p", (void *)self);
    self->loop_end = zsock_new (ZMQ_PAIR);
    self->http_end = zsock_new (ZMQ_PAIR);
    if (!self->loop_end || !self->http_end)
        return ps_problem_set (problem, 0, "cannot make the metrics pipe");
    zsock_set_linger (self->loop_end, 0);
    zsock_set_linger (self->http_end, 0);
    if (zsock_bind (self->loop_end, "%s", endpoint) == -1 ||
        zsock_connect (self->http_end, "%s", endpoint) == -1)
        return ps_problem_set (problem, 0, "cannot make the metrics pipe");
    return 0;
}

ps_metrics_t *
ps_metrics_new (const char *address, ps_problem_t *problem)
{
    struct sockaddr_storage where;
    socklen_t where_size = 0;
    if (s_resolve (address, &where, &where_size, problem) || s_mhd_ready (problem))
        return NULL;
    ps_metrics_t *self = calloc (1, sizeof *self);
    if (!self) {
        ps_problem_set (problem, 0, "out of memory");
        return NULL;
    }
    if (s_pipe_setup (self, problem)) {
        ps_metrics_destroy (&self);
        return NULL;
    }
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (where.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    self->daemon = s_mhd.start_daemon (
        flags, 0, NULL, NULL, s_handle, self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&where,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)PS_METRICS_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)PS_METRICS_CONNECTION_TIMEOUT_S,
        MHD_OPTION_EXTERNAL_LOGGER, s_log, self, MHD_OPTION_END);
    const union MHD_DaemonInfo *bound =
        self->daemon ? s_mhd.get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!bound || bound->port == 0) {
        ps_problem_set (problem, 0, "cannot serve metrics on %s: %s", address,
                        self->last_error[0] ? self->last_error : "the HTTP server did not start");
        ps_metrics_destroy (&self);
        return NULL;
    }
    s_name_url (self, &where, where_size, bound->port);
    return self;
}

void
ps_metrics_destroy (ps_metrics_t **self_p)
{
    assert (self_p);
    ps_metrics_t *self = *self_p;
    if (!self)
        return;
    //  A scrape waiting for us stops waiting, so that the HTTP thread ends
    if (self->loop_end)
        zmq_send (zsock_resolve (self->loop_end), "", 0, ZMQ_DONTWAIT);
    if (self->daemon)
        s_mhd.stop_daemon (self->daemon);
    zsock_destroy (&self->http_end);
    zsock_destroy (&self->loop_end);
    free (self);
    *self_p = NULL;
}

const char *
ps_metrics_url (const ps_metrics_t *self)
{
    assert (self);
    return self->url;
}

void *
ps_metrics_handle (ps_metrics_t *self)
{
    assert (self);
    return zsock_resolve (self->loop_end);
}

bool
ps_metrics_asked (ps_metrics_t *self)
{
    assert (self);
    void *pipe = zsock_resolve (self->loop_end);
    uint64_t number;
    while (zmq_recv (pipe, &number, sizeof number, ZMQ_DONTWAIT) == sizeof number) {
        self->pending = number;
        self->answer_owed = true;
    }
    return self->answer_owed;
}

void
ps_metrics_answer (ps_metrics_t *self, const char *snapshot)
{
    assert (self);
    if (!self->answer_owed)
        return;
    self->answer_owed = false;
    void *pipe = zsock_resolve (self->loop_end);
    if (zmq_send (pipe, &self->pending, sizeof self->pending, ZMQ_SNDMORE | ZMQ_DONTWAIT) !=
        sizeof self->pending)
        return;
    zmq_send (pipe, snapshot, strlen (snapshot), ZMQ_DONTWAIT);
}
