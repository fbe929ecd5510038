/*  =========================================================================
    ps_link - one DEALER to one broker

    A link is the worker's connection to one broker of its group: a DEALER
    socket with the worker's routing id (so that a socket opened again after
    a disconnect is still the same peer to the broker) and the worker's send
    timeout, connected to one endpoint. It sends a request's parts (the
    envelope, then one raw frame per slice that carries data) and receives
    one whole reply at a time. It knows nothing of tickets or of what a
    reply means.

    Frames of tensor data are either copied into the group's frame pool or
    lent: a lent frame points into the caller's memory, and the request
    that lent it counts it (in a ps_lent_t) until libzmq lets go of it.

    A link also watches its connection: libzmq's ZMTP heartbeats close a
    connection over which nothing came for the heartbeat timeout (a broker
    stopped, or a host gone without closing its sockets), and a socket
    monitor tells the link when its connection completed its handshake and
    when an established one was lost (ps_link_events).

    CURVE: with keys (ps_link_curve_load) every socket the link opens is a
    CURVE client of the broker's public key. A handshake the broker
    refuses (libzmq's ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: its ZAP handler said
    no; _PROTOCOL: one side has keys and the other none) is reported like
    a loss, with the reason worded by ps_link_refused; a handshake that
    the broker cuts twice in a row without a word is reported so as well
    (with keys: a wrong broker key, the broker cannot read our HELLO;
    without: a CURVE broker that read our greeting before we read its
    own, so that we never see the mismatch).

    Threads: a link belongs to the thread that owns its worker. libzmq's
    I/O and reaper threads only run the free function of a lent frame,
    which touches nothing but the ps_lent_t's atomic count, and send the
    monitor's events over an inproc pipe.

    Ownership: ps_link_new copies the endpoint; context and pool are
    borrowed and must outlive the link (the pool must even outlive
    zmq_ctx_term, which waits for libzmq to release the pooled frames).
    Frames a receive returns belong to the link until the next receive or
    ps_link_recv_close. A ps_lent_t must not be freed while its count is
    above 0: closing the socket (ps_link_disconnect) and terminating the
    context make libzmq let go of what it holds.

    Failure: functions that return int return PS_OK or a ps_status_t of
    ps_worker.h, with problem (when not NULL) filled in: code 0, and a
    message that names the endpoint.
    ========================================================================= */

#ifndef PS_LINK_H_INCLUDED
#define PS_LINK_H_INCLUDED

#include "ps_codec.h"
#include "ps_framepool.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_link_t ps_link_t;

//  The frames one request lent on one link: the caller owns it (zeroed),
//  ps_link_send counts the frames up, and libzmq's threads count them
//  down as they let go of them
typedef struct ps_lent_t ps_lent_t;
struct ps_lent_t {
    atomic_size_t held; //  frames libzmq still holds
};

//  A client's CURVE keys, as Z85 text; on false: no keys (NULL mechanism)
typedef struct {
    bool on;             //  keys loaded
    char server_key[41]; //  the broker's public key
    char public_key[41]; //  ours
    char secret_key[41]; //  ours
} ps_link_curve_t;

//  Load a client's keys: secret_file is its zcert secret certificate
//  (NAME.key_secret, made by pskeys), broker_key the broker's public
//  certificate file (NAME.key) or its public key as 40 characters of Z85.
//  Both NULL: no keys (curve->on false). PS_OK, or PS_EINVAL with problem
//  naming the file and what is wrong with it.
int ps_link_curve_load (ps_link_curve_t *curve, const char *secret_file, const char *broker_key,
                        ps_problem_t *problem);
//  Make socket (before it connects) a CURVE client with these keys; no-op
//  when curve is NULL or off
void ps_link_curve_apply (const ps_link_curve_t *curve, void *socket);

//  Bytes in a worker's routing id
#define PS_LINK_ROUTING_ID_BYTES 16

//  A link connected to endpoint, sending with send_timeout_ms (ZMQ_SNDTIMEO),
//  whose connection is dropped when nothing came over it for
//  heartbeat_timeout_ms (ZMTP heartbeats), a CURVE client when curve (may
//  be NULL, copied) is on. NULL with *status (PS_ENOMEM or PS_ECONNECT) and
//  problem filled in.
ps_link_t *ps_link_new (void *context, ps_framepool_t *pool, const char *endpoint,
                        const uint8_t routing_id[PS_LINK_ROUTING_ID_BYTES], int send_timeout_ms,
                        int heartbeat_timeout_ms, const ps_link_curve_t *curve, int *status,
                        ps_problem_t *problem);
//  Close the socket (linger 0) and free the link; nulls the pointer
void ps_link_destroy (ps_link_t **self_p);

//  The endpoint as given to ps_link_new
const char *ps_link_endpoint (const ps_link_t *self);
//  The socket, to wait on; NULL after ps_link_disconnect
void *ps_link_socket (ps_link_t *self);
//  The socket its connection events come on, to wait on; NULL after
//  ps_link_disconnect
void *ps_link_monitor (ps_link_t *self);
//  How many sockets the link has made: it changes when both sockets
//  above are made anew (a new one may have a closed one's address)
unsigned ps_link_generation (const ps_link_t *self);
//  Read the connection events that came since the last call, without
//  waiting: true when an established connection (one whose handshake
//  completed) was lost since, closed by the broker or silent past the
//  heartbeat timeout, or when the broker refused the connection
//  (ps_link_refused). libzmq connects again by itself meanwhile.
bool ps_link_events (ps_link_t *self);
//  Whether events may have come since ps_link_events last read them to
//  the end: false only when that read ended so and the monitor's
//  descriptor has not fired since (one poll(2), where reading an empty
//  monitor costs two system calls). A caller whose own waits ask the
//  monitor (ps_group) must also read it when a wait found it ready
bool ps_link_may_have_events (const ps_link_t *self);
//  Why the broker refused the last connection attempt, e.g. "not an
//  allowed key (CURVE) ..."; NULL when it did not (or one succeeded since)
const char *ps_link_refused (const ps_link_t *self);
//  Whether the connection is established (its handshake completed, and it
//  was not lost since), as of the last ps_link_events
bool ps_link_up (const ps_link_t *self);

//  Send envelope, then one frame for each of its slices with count > 0,
//  taken from sources[i] (sources NULL: the request carries no data).
//  With lent, the frames point into the sources (zero copy), counted in
//  lent until libzmq lets go of them; with NULL they are copied into
//  pooled buffers at the call. A slice whose dtype is BF16 or F16 is
//  always copied, its floats rounded to 16 bits (ps_dtype) on the way.
//  PS_OK; PS_ETIMEOUT when the envelope finds no room within the send
//  timeout; PS_ECONNECT when disconnected or when a later frame cannot
//  go; PS_ENOMEM.
int ps_link_send (ps_link_t *self, const ps_envelope_t *envelope, const float *const *sources,
                  ps_lent_t *lent, ps_problem_t *problem);
//  A push in parts (PROTOCOL.md): the end of the part that starts at
//  slice first, consecutive slices of at most PS_PUSH_PART_BYTES of floats
//  in all (a larger slice alone)
size_t ps_link_part_end (const ps_envelope_t *envelope, size_t first);

//  Receive one whole message if one is waiting, without blocking for it:
//  *frames gets its frames, the envelope first, and *nframes their number
//  (0 when nothing was waiting). A message of more than 1 + PS_MAX_SLICES
//  frames is read to its end, the frames past that dropped, and *overflow
//  set. PS_OK; PS_EINTR; PS_ECONNECT when the socket fails; PS_ENOMEM.
int ps_link_recv (ps_link_t *self, zmq_msg_t **frames, size_t *nframes, bool *overflow,
                  ps_problem_t *problem);
//  Release the frames of the last receive
void ps_link_recv_close (ps_link_t *self);

//  Close the socket (linger 0): libzmq drops what it had queued, lent
//  frames included, in its own time
void ps_link_disconnect (ps_link_t *self);
//  Close the socket if it is open, then open and connect a new one (with
//  the same routing id: the broker still takes it for the same worker),
//  whose queue is empty. PS_OK, or PS_ECONNECT with problem filled in.
int ps_link_reconnect (ps_link_t *self, ps_problem_t *problem);

#endif
