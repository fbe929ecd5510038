/*  =========================================================================
    ps_auth - who may connect to the broker: CURVE keys, or loopback only

    Three modes, chosen by the broker's configuration:
      curve      the ROUTER and the tap are CURVE servers with the broker's
                 key pair (curve_secret, a zcert secret file made by
                 pskeys); a client must prove a key whose public
                 certificate is in the allow_keys folder (zcertstore: a
                 certificate added to the folder is admitted at the next
                 connection, no restart or signal needed, since zcertstore
                 rescans the folder on every lookup when its file count,
                 size or time changed; a removed one is refused likewise).
                 allow_any_key instead admits any key holder (encryption
                 without authentication: anyone who knows the broker's
                 public key gets in). Traffic is encrypted either way.
      protected  the default, as Redis's protected mode: no keys, and the
                 sockets bound to tcp:// admit loopback peers only
                 (127.0.0.1 and ::1: zauth matches whole addresses, so
                 other 127/8 addresses are refused), plus the numeric
                 addresses of allow_from. ipc:// and inproc:// endpoints
                 are not checked: the file system's permissions guard
                 them, and libzmq names an ipc peer by its credentials,
                 which no address list holds.
      open       insecure_allow_any: anybody who reaches the port (the
                 behaviour before this module). Logged as a warning.
    With allow_from under curve, a client needs an allowed key and an
    address that is loopback or listed.

    How: czmq's zauth actor answers libzmq's ZAP requests for every socket
    of the process's czmq context; libzmq asks it at each handshake, never
    per message, so an admitted connection pays nothing more. libzmq asks
    ZAP about a NULL-mechanism (no keys) connection only when the socket
    has a ZAP domain (ps_auth_apply sets one on tcp:// sockets in
    protected mode), and about every CURVE connection once a handler is
    bound. zauth serves one policy per context and asserts when a second
    one binds, so brokers of one process share a single zauth, counted:
    a broker whose policy differs from the running one's is refused
    (tests start brokers in-process; psbroker runs one).

    Refusals: the ROUTER loop's socket monitor reports a handshake that
    failed (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: ZAP said no; _PROTOCOL: a
    client without CURVE at a CURVE broker, or with the wrong broker key)
    and the connection's close that follows, which names the peer.
    ps_auth counts them for INFO and logs them, at most
    PS_AUTH_LOG_PER_SECOND lines a second (a flood of refused connections
    must not flood the log), the lines left out counted in the next one.
    The peer itself learns only libzmq's status code (400), which the
    worker library words ("the broker refused this connection: ...").

    Threads: ps_auth_new, ps_auth_apply and the refusal calls belong to
    the ROUTER loop's thread (its monitor); the shared zauth is guarded by
    a mutex. Ownership: ps_auth_new copies what it needs from the
    configuration (the strings are borrowed for the call).
    Failure: NULL / -1 with problem naming the flag or file at fault.
    ========================================================================= */

#ifndef PS_AUTH_H_INCLUDED
#define PS_AUTH_H_INCLUDED

#include "ps_broker.h"
#include "ps_problem.h"

#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ps_auth_t ps_auth_t;

//  Check the configuration's authentication settings without starting
//  anything: 0, or -1 with problem naming the flags that conflict
int ps_auth_config_check (const ps_broker_config_t *config, ps_problem_t *problem);
//  Load the keys, start (or share) zauth with the configuration's policy.
//  NULL with problem filled in.
ps_auth_t *ps_auth_new (const ps_broker_config_t *config, ps_problem_t *problem);
//  Stop zauth when the last broker of the process lets it go
void ps_auth_destroy (ps_auth_t **self_p);

//  Secure a server socket before it binds endpoint: CURVE server keys in
//  curve mode, a ZAP domain on tcp:// in protected mode, nothing in open
void ps_auth_apply (ps_auth_t *self, zsock_t *socket, const char *endpoint);

//  "curve", "protected" or "open"
const char *ps_auth_mode (const ps_auth_t *self);
//  Whether the sockets are CURVE servers
bool ps_auth_curve (const ps_auth_t *self);
//  Connections refused so far
uint64_t ps_auth_refused (const ps_auth_t *self);

//  The monitor saw a handshake fail (event ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
//  or _PROTOCOL, value its status or protocol error): counted; the
//  reason is kept for the close that follows. Returns the reason.
const char *ps_auth_handshake_failed (ps_auth_t *self, int event, uint32_t value);
//  The monitor saw a connection close: when a refusal came just before,
//  log it (rate-limited) naming remote, and return its reason (for a tap
//  record); NULL otherwise
const char *ps_auth_closed (ps_auth_t *self, const char *remote);

//  The "auth" object of INFO: mode, refused, and the lists in force
json_t *ps_auth_json (const ps_auth_t *self);

//  Whether an endpoint is reachable from this host only: ipc://, inproc://,
//  or tcp:// on a loopback address (127.x.y.z, ::1, localhost)
bool ps_auth_endpoint_local (const char *endpoint);

//  The runtime folder's check (the default tap's /tmp/psmq-UID, or
//  XDG_RUNTIME_DIR): a directory, not a symbolic link, owned by this user,
//  with no access for group or others. 0, or -1 with problem saying what
//  is wrong and what to do
int ps_auth_check_private_dir (const char *dir, ps_problem_t *problem);

#endif
