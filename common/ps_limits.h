/*  =========================================================================
    ps_limits - every limit and default of psmq, in one place

    Every size that arrives from the network, a file or the command line is
    checked against one of these before it is used. Change a limit here and
    nowhere else.
    ========================================================================= */

#ifndef PS_LIMITS_H_INCLUDED
#define PS_LIMITS_H_INCLUDED

#include <stdint.h>

#define PS_PROTOCOL_VERSION 1

//  Largest single ZeroMQ frame the broker accepts (ZMQ_MAXMSGSIZE): a
//  peer that sends more is disconnected by libzmq before we allocate it
#define PS_MAX_FRAME_BYTES (256LL << 20)
//  Largest envelope frame (metadata only: keys and counts)
#define PS_MAX_ENVELOPE_BYTES (1 << 20)
//  Slices (and so tensor frames) in one message
#define PS_MAX_SLICES 8192
//  Total tensor bytes in one message
#define PS_MAX_MESSAGE_BYTES (2LL << 30)
//  Bytes in a parameter name
#define PS_MAX_KEY_LEN 200
//  Elements in one tensor (16 GiB of float32)
#define PS_MAX_TENSOR_ELEMS (1ULL << 32)
//  Distinct keys in one broker's store
#define PS_MAX_KEYS 100000
//  Bytes of all tensors in one broker's store
#define PS_MAX_STORE_BYTES (16ULL << 30)
//  Workers (ranks) in one job
#define PS_MAX_WORKERS 4096
//  Gradients one push may say it carries
#define PS_MAX_GRAD_COUNT PS_MAX_WORKERS
//  Staleness bound
#define PS_MAX_STALENESS 1000000
//  Requests one peer may have parked on the staleness bound at once
#define PS_MAX_PARKED_PER_PEER 64
//  Brokers in one group (psbroker --shards)
#define PS_MAX_SHARDS 256
//  Bytes in an endpoint a worker names in its HELLO (tcp://host:port)
#define PS_MAX_ENDPOINT_LEN 256
//  Error message text
#define PS_MAX_ERROR_LEN 256

//  Tensors larger than this travel in slices of this many bytes: one big
//  frame costs page faults on a freshly mapped receive buffer, slices of
//  1 MB are reused by malloc (see docs/performance.md)
#define PS_CHUNK_BYTES (1 << 20)

//  A push of more tensor bytes than this goes out as several PUSH
//  messages of at most this many (its parts, PROTOCOL.md): libzmq reads a
//  message whole before the broker sees it, so a whole push of a big model
//  would sit in the broker's memory once per worker pushing
#define PS_PUSH_PART_BYTES PS_CHUNK_BYTES

//  Socket queues (messages) on both sides
#define PS_SNDHWM 100000
#define PS_RCVHWM 100000
//  A push in parts: the grants a connection may hold at once, parts it
//  may send before the broker hears them (PROTOCOL.md, Credit); the
//  budget below bounds all connections together
#define PS_PUSH_WINDOW 4
//  A connection holding grants and silent this long has them counted no
//  more, so that a hung worker does not keep the budget from the others
#define PS_GRANT_IDLE_MS 1000
//  Bytes of pushes the ROUTER loop has handed to the aggregation thread
//  and it has not applied yet, and of parts granted and not come, all
//  connections together (psbroker --push-budget): past it the broker
//  grants no part until the aggregator catches up. 3 parts keeps the
//  broker within 2 models and 16 MB with 16 workers pushing a 64 MB
//  model (since psbroker loads no HTTP library without --metrics), and
//  one worker pushing alone over loopback as fast as 4 parts did
//  (docs/performance.md). Why not a small ZMQ_RCVHWM instead
//  (libzmq stops reading a connection whose queue is full, and TCP holds
//  the sender back): libzmq 4.3.4 aborts (out_event's assert on
//  _io_error) when a connection whose input it stopped closes and a ZMTP
//  heartbeat is due, which the broker's heartbeats and any worker
//  leaving make likely
#define PS_DEFAULT_PUSH_BUDGET (3ULL << 20)
#define PS_MIN_PUSH_BUDGET (1ULL << 20)

//  Liveness defaults
#define PS_DEFAULT_HEARTBEAT_MS 1000
#define PS_DEFAULT_TIMEOUT_MS 10000
#define PS_MIN_HEARTBEAT_MS 10
#define PS_MAX_TIMEOUT_MS (24 * 3600 * 1000)
//  Longest ZMQ_HEARTBEAT_TTL: libzmq 4.3 turns the deciseconds it gets
//  into milliseconds in 16 bits, so a longer one would wrap to a short one
#define PS_MAX_ZMTP_TTL_MS 65500
//  Progress deadline of a rank that holds others back without advancing
//  its clock (psbroker --progress-deadline): by default the larger of the
//  floor and the factor times the longest clock the job has taken
#define PS_DEFAULT_PROGRESS_FLOOR_MS 60000
#define PS_PROGRESS_FACTOR 10
#define PS_MAX_PROGRESS_DEADLINE_MS PS_MAX_TIMEOUT_MS

//  Worker library defaults: a request's reply, and a CLOCK that may wait
//  for stragglers
#define PS_DEFAULT_CALL_TIMEOUT_MS 30000
#define PS_DEFAULT_CLOCK_TIMEOUT_MS 600000

//  Optimizer defaults
#define PS_DEFAULT_LR 0.1f
#define PS_DEFAULT_MOMENTUM 0.9f
#define PS_DEFAULT_BETA1 0.9f
#define PS_DEFAULT_BETA2 0.999f
#define PS_DEFAULT_EPS 1e-8f

//  Checkpoints (psbroker --checkpoint): the default interval, the bounds
//  of the two intervals, files kept, how long a stopping broker waits for
//  its final one, bytes written (and checked for cancellation) at a time,
//  and the files of a checkpoint directory looked at, at most
#define PS_DEFAULT_CHECKPOINT_SECONDS 60
//  The writer's pace (psbroker --checkpoint-rate), bytes a second: on this
//  project's 2-core VM an unpaced writer (about 600 MB/s) cost serving 15
//  to 30%, one paced to 200 MB/s 5 to 12% (docs/performance.md); a pull
//  waiting at its ceiling, a stop and a rollback lift the pace
#define PS_DEFAULT_CHECKPOINT_RATE (200ull << 20)
#define PS_MIN_CHECKPOINT_RATE (1ull << 20)
#define PS_MAX_CHECKPOINT_RATE (1ull << 40)
#define PS_MIN_CHECKPOINT_SECONDS 0.01
#define PS_MAX_CHECKPOINT_SECONDS (7 * 24 * 3600)
#define PS_MAX_CHECKPOINT_CLOCKS 1000000000
#define PS_CHECKPOINT_KEEP 2
#define PS_CHECKPOINT_FINAL_WAIT_MS 120000
#define PS_CHECKPOINT_CHUNK_BYTES (4 << 20)
#define PS_MAX_CHECKPOINT_FILES 10000

//  Limits on the broker's resources (issue 12: store size, unread pull
//  replies, connections; see docs/security.md, "Limits")
//
//  Share of the machine's memory the store may hold by default (psbroker
//  --max-memory): half, as a machine that runs a broker usually runs
//  other things too (the checkpoint writer's copies of optimizer state,
//  libzmq's buffers, a worker on the same host), and since a version a
//  reader still holds is not counted, the process may briefly hold more
//  than the store does. Like Redis's maxmemory, a bound the operator can
//  raise; never above PS_MAX_STORE_BYTES
#define PS_DEFAULT_STORE_PERCENT 50
//  Smallest store limit psbroker accepts
#define PS_MIN_STORE_BYTES (1ULL << 20)
//  Bytes of pull replies one connection may have handed to libzmq and
//  not yet sent (psbroker --max-unread): past it, its PULLs are refused
//  with ERR_FULL until it reads; the same bounds the bytes of its pushes
//  the aggregation thread has not applied yet (its PUSHes are refused).
//  By default the larger of this and twice the model, so that a worker
//  with one pull, or one clock's pushes, in flight is never refused
#define PS_DEFAULT_MAX_UNREAD (256ULL << 20)
#define PS_MIN_MAX_UNREAD (64ULL << 10)
//  Bytes of INFO replies not yet sent, to all connections together: past
//  it INFO is refused with ERR_FULL. A request of 40 bytes is answered
//  with the whole status (some 360 KB for 4096 workers), and a peer that
//  never reads could queue PS_SNDHWM of them; a tool reads its answer, so
//  a few are in flight at once
#define PS_MAX_UNREAD_INFO (16ULL << 20)
//  Descriptors the broker keeps for itself beyond its connections (libzmq's
//  mailboxes and pollers, the tap, checkpoint files, a burst of accepts
//  not yet seen): the default connection cap is the fd limit minus this,
//  so that libzmq's accept never meets EMFILE, which makes it retry at
//  once and spin
#define PS_FD_RESERVE 64
//  Smallest connection cap (psbroker --max-connections)
#define PS_MIN_CONNECTIONS 4
//  A connection that never said HELLO and sends nothing for this long (or
//  for the worker timeout, if longer) is closed
#define PS_UNREGISTERED_IDLE_MS 30000
//  Over the cap, connections silent since their accept for this long are
//  shed before any other (see ps_conns.h)
#define PS_SILENT_GRACE_MS 1000
//  Log lines about shed connections per second, before they are only counted
#define PS_SHED_LOG_PER_SECOND 5
//  Authentication (issue 12, CURVE and protected mode; broker/ps_auth.h):
//  addresses --allow-from may list, and refused connections logged per
//  second at most (the others are counted in the next line)
#define PS_MAX_ALLOW_FROM 64
#define PS_AUTH_LOG_PER_SECOND 5
//  A group's checkpoints (issue 11, the common clock of a rollback;
//  broker/ps_checkpointer.h): a member of a group keeps its newest 3 files
//  rather than PS_CHECKPOINT_KEEP, so that a member one interval behind
//  (its newest refused, or its writer killed mid-write) and another that
//  skipped one cut (its writer still busy) still share one clock; a HELLO
//  reply names at most this many clocks held
#define PS_CHECKPOINT_KEEP_GROUP 3
#define PS_MAX_HELD_CHECKPOINTS 16

//  Metrics over HTTP (psbroker --metrics, broker/ps_metrics.h): how long a
//  scrape waits for the ROUTER loop's snapshot before it is answered 503,
//  the least time between two snapshots asked of the loop (the port takes
//  no credentials: a client scraping in a loop must not keep the ROUTER
//  loop building INFO, O(ranks) each), HTTP connections at once, and how
//  long an idle one is kept (seconds)
#define PS_METRICS_WAIT_MS 2000
#define PS_METRICS_MIN_GAP_MS 50
#define PS_METRICS_MAX_CONNECTIONS 16
#define PS_METRICS_CONNECTION_TIMEOUT_S 10

#endif
