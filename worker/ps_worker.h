/*  =========================================================================
    ps_worker - the psmq worker library

    Connects a training process to a psbroker, or to a group of them:
    register, create parameters, push gradients, pull parameters and
    advance the clock, with the broker's BSP / SSP / ASP semantics. Plain
    C types only; link with `pkg-config --libs psworker`.

    A group of brokers is given as their endpoints, comma-separated, in
    shard order ("tcp://a:5555,tcp://b:5555"). Each key is then split by
    the rule of docs/groups.md: a push or pull sends each broker its part
    of every key at once and completes when all have answered, or at the
    first failure; a clock completes when every broker has let the worker
    pass.

    Threads: a ps_worker_t is not thread-safe: it belongs to the thread
    that connected it; use one per thread. Each worker has a ZeroMQ
    context of its own, whose threads libzmq runs (an I/O thread per
    broker, up to four, and a reaper), and one helper thread of the
    library's that sends heartbeats, so that long computations do not get
    the worker evicted. The log callback is only ever called from the
    thread that made the call.

    Ownership: ps_worker_connect returns an owned handle that
    ps_worker_close frees (and nulls).

    Push buffers: ps_worker_push_async and ps_worker_init copy the data at
    the call; the caller may reuse its buffers as soon as they return.
    ps_worker_push copies a call of less than 256 KB in all; from 256 KB
    it lends the caller's buffers to libzmq without copying them and
    returns only once libzmq has let go of every one (after the replies,
    or after disconnecting from a broker that did not answer). Either way
    the buffers are the caller's again when ps_worker_push returns,
    whatever it returns; until then no other thread may write to them or
    free them. The lending async forms (ps_worker_push_lend_async) lend
    them the same way and return at once: the buffers are then the
    library's until ps_worker_wait has collected the ticket (whatever its
    outcome; a wait that fails leaves the ticket, and the buffers, with
    the library) or the worker is closed. Meanwhile nobody may write to
    them or free them: what the broker gets is what they hold when libzmq
    sends them. A push of more than 1 MB goes in parts of 1 MB (proto/
    PROTOCOL.md, Pushes in parts), each sent when the broker grants it
    room (a few at once, from a budget all workers share): both forms return once
    the last part is sent (waiting at most timeout_ms for each grant, and
    handling the replies that come meanwhile as a wait would), so an
    async push of a large model takes the broker's pace.

    Pull buffers are written when the reply arrives, by whichever call
    receives it: the blocking pull itself, or for the async form any later
    call that waits for replies (ps_worker_wait on any ticket, every
    blocking call). The caller keeps them, and the key strings, alive
    until ps_worker_wait has collected the pull's ticket or the worker is
    closed. A blocking pull forgets its request before it returns, even
    on a timeout. A pull that fails may have written part of the buffers.

    Failure: every call that returns int returns PS_OK (0) or a negative
    ps_status_t; ps_strerror names it and ps_worker_error (worker) gives
    the detail of the last failure recorded, e.g. the broker's own
    message. ps_worker_connect, which fails before there is a worker to
    ask, hands its detail to the log callback of the options. The library
    never prints.

    A broker that is gone is noticed: libzmq's ZMTP heartbeats drop a
    connection over which nothing came for heartbeat_timeout_ms (a broker
    killed, stopped, or whose host vanished), and a lost connection fails
    at once, with PS_ECONNECT ("lost the connection to broker tcp://..."),
    every request that waited for that broker. A broker whose connection
    was lost may have forgotten the worker (it restarted, or evicted it):
    until the worker has registered with it again, a call that needs the
    registration (init, push, pull, clock) fails at once with PS_ECONNECT,
    and with options.wait_for_broker_ms at 0 (the default) that is where
    it ends, as do PS_ENOT_REGISTERED and PS_ESHUTDOWN.

    Rejoining: with options.wait_for_broker_ms > 0, such a call (one that
    meets a lost connection, PS_ENOT_REGISTERED: the broker restarted or
    evicted us, or PS_ESHUTDOWN: it is stopping, likely to restart) says
    HELLO again to every broker of the group and waits up to that long
    for all of them to welcome the worker, logging at
    PS_WORKER_LOG_WARNING whom it waits for. Then the call returns
    PS_EREJOINED, as does every ticket not yet collected, whatever its
    request had come to (a pull's buffers may have been written); the
    worker's clock (ps_worker_current_clock) is the one the brokers gave:
    the clock to redo from after a restart from a checkpoint, 0 after a
    restart without one (the broker then has no keys: ps_worker_init
    again, which is always safe, then pull), the job's slowest clock
    after an eviction. Heartbeats go on with the new registration. The
    application redoes its steps from that clock. After a member of a
    group restarted, the group first rolls back to the newest clock every
    member holds a checkpoint of (docs/groups.md); when they hold none in
    common, or a member refuses to go back, the call fails with PS_EGROUP
    ("a member of the group restarted, and the members hold no checkpoint
    of one clock to go back to together: tcp://a:5555 (restarted) holds
    60, tcp://b:5555 holds 50 and 40; ...").
    When wait_for_broker_ms passes first, the call fails with the status
    that started it, its detail saying how long it waited, and so do the
    tickets not yet complete. A blocking push still gives back the
    buffers it lent, whatever it returns. A worker paused past its
    eviction (SIGSTOP, then SIGCONT) rejoins so at its next call.
    ps_worker_connect waits so too when a broker refuses its rank as live
    on another connection (PS_ERANK): a worker started again before the
    broker has evicted its earlier process joins once that is done.

    Time: a reply is awaited at most timeout_ms (clock_timeout_ms for a
    clock, and for a pull sent while a clock was still waiting), a BYE at
    most 2 s; a broker that is gone makes no call wait past
    heartbeat_timeout_ms (a clock still waits clock_timeout_ms for live
    stragglers, whose connections the heartbeats show alive), but for
    connect, whose HELLO waits timeout_ms for a broker that may still be
    starting. Beyond that, sending a frame may wait timeout_ms for room in
    a full queue; a blocking push may wait some 200 ms more for libzmq to
    release the frames it lent; a call that fails with PS_ENOT_REGISTERED
    asks each broker that forgot the worker whether it restarted (an INFO
    of at most 2 s); connect tries its HELLO up to five times, saying BYE
    in between, while the brokers of a group name different clocks; and a
    call that registers again waits up to wait_for_broker_ms more.
    ========================================================================= */

#ifndef PS_WORKER_H_INCLUDED
#define PS_WORKER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  The library is built with -fvisibility=hidden: what is declared here with
//  PS_WORKER_EXPORT is all it exports; its internal modules and the codec it
//  links stay inside it
#if defined(__GNUC__) || defined(__clang__)
#define PS_WORKER_EXPORT __attribute__ ((visibility ("default")))
#else
#define PS_WORKER_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PS_OK = 0,
    PS_EINVAL = -1,    //  bad argument
    PS_ENOMEM = -2,    //  out of memory
    PS_ETIMEOUT = -3,  //  no reply (or no room to send) within the timeout
    PS_ECONNECT = -4,  //  no connection: a socket could not be made or
                       //  used, or the broker's connection was lost
    PS_EPROTO = -5,    //  reply that does not parse or does not fit
    PS_ETICKET = -6,   //  unknown or already collected ticket
    PS_EINTR = -7,     //  interrupted by a signal
    PS_EREJOINED = -8, //  registered again after a broker restart or an
                       //  eviction: the request's outcome is void; redo
                       //  from ps_worker_current_clock ()
    //  Errors the broker reported (its ERROR reply), -100 - its code
    PS_EMALFORMED = -101,      //  the broker could not parse our message
    PS_EVERSION = -102,        //  protocol version mismatch
    PS_ETYPE = -103,           //  message type not accepted
    PS_EUNKNOWN_KEY = -104,    //  key never initialised
    PS_ESIZE = -105,           //  element count does not match the key
    PS_ETOO_LARGE = -106,      //  over a broker limit
    PS_ECLOCK = -107,          //  clock mismatch
    PS_ENOT_REGISTERED = -108, //  not registered (or evicted): reconnect
    PS_ERANK = -109,           //  rank or world size refused
    PS_EKEY_EXISTS = -110,     //  key exists with another size or settings
    PS_EOPTIM = -111,          //  optimizer settings refused
    PS_EFULL = -112,           //  the broker cannot take more
    PS_ESHUTDOWN = -113,       //  the broker is stopping
    PS_EGROUP = -114,          //  the brokers' group differs from the worker's
    PS_ENONFINITE = -115       //  a push held a NaN or an infinity and was not
                               //  applied (reported by the next clock, which
                               //  still advanced)
} ps_status_t;

//  A short description of a status, e.g. "no reply within the timeout"
PS_WORKER_EXPORT const char *ps_strerror (int status);
//  The library's version, the psmq release it comes from: "0.1.0"
PS_WORKER_EXPORT const char *ps_worker_version (void);

//  Keep freed message buffers mapped, for a program that pulls large
//  tensors. libzmq mallocs a buffer for every frame it receives, and
//  glibc hands large freed blocks back to the kernel, so every pull
//  faults its pages in again: a 64 MB push and pull took 58 to 81 ms of
//  the worker's CPU instead of 45 to 48 (docs/performance.md, "Page
//  faults in a program of one's own"). This sets glibc's mmap and trim
//  thresholds as psbroker, psworker and psbench set them, so that freed
//  frames stay on the heap for the next pull. It changes malloc for the
//  whole process, and the memory freed stays with it, so the library
//  never calls it by itself: call it once, early in main, before other
//  threads allocate. 1 when malloc took the settings, 0 under a malloc
//  that ignores mallopt
PS_WORKER_EXPORT int ps_worker_keep_memory_mapped (void);

typedef enum {
    PS_OPTIMIZER_DEFAULT = 0, //  the broker's default
    PS_OPTIMIZER_SGD = 1,
    PS_OPTIMIZER_MOMENTUM = 2,
    PS_OPTIMIZER_ADAGRAD = 3,
    PS_OPTIMIZER_ADAM = 4
} ps_optimizer_t;

//  Server-side update rule of a key; a zero field takes the broker's default
typedef struct {
    ps_optimizer_t kind;
    float lr;
    float momentum;
    float beta1;
    float beta2;
    float eps;
    uint64_t decay_steps; //  > 0: cosine decay of lr to 0 over this many
                          //  optimizer steps of the key
} ps_optim_settings_t;

//  Levels of the messages the log callback receives: why
//  ps_worker_connect failed, or why registering again did (ERROR); whom a
//  worker that registers again waits for (WARNING); that it registered
//  again, and its clock before and after (INFO).
typedef enum {
    PS_WORKER_LOG_ERROR = 0,   //  a call failed
    PS_WORKER_LOG_WARNING = 1, //  something went wrong and the call went on
    PS_WORKER_LOG_INFO = 2     //  progress
} ps_worker_log_level_t;

//  options.rank for a worker without a rank of its own: the broker (shard
//  0 of a group) gives it the lowest block of local_workers ranks that no
//  connection holds, which stays the worker's across every rejoin (it is
//  named, with the session, in every later HELLO); ps_worker_rank tells it
//  after connect. A job whose ranks are all live refuses with PS_ERANK
//  ("no rank to give: the job is full"), waited out like a rank held by
//  another connection when wait_for_broker_ms > 0.
#define PS_WORKER_ANY_RANK UINT32_MAX

typedef struct {
    const char *broker;     //  endpoint, e.g. "tcp://10.0.0.1:5555", or a
                            //  group's endpoints in shard order, comma-
                            //  separated: "tcp://a:5555,tcp://b:5555"
    uint32_t rank;          //  this worker's rank, 0 .. world_size-1, or
                            //  PS_WORKER_ANY_RANK: the broker gives one
    uint32_t world_size;    //  workers in the job; must match the broker;
                            //  0: the broker's (ps_worker_world_size
                            //  tells it after connect)
    int timeout_ms;         //  reply timeout of each call (default 30 s)
    int clock_timeout_ms;   //  a CLOCK may wait for stragglers (default 10 min)
    uint32_t local_workers; //  workers this process stands for (default 1):
                            //  ranks rank .. rank+local_workers-1, whose
                            //  gradients it sums and pushes with grad_count
                            //  local_workers, so BSP counts workers, not
                            //  processes
    //  Where the library's messages go (NULL, the default: nowhere). It is
    //  called with log_arg, a ps_worker_log_level_t and one line of text
    //  without a newline, which is only valid during the call.
    void (*log) (void *arg, int level, const char *message);
    void *log_arg; //  passed to log as it is
    //  How long a call waits for the brokers to take the worker back after
    //  a restart, an eviction or a lost connection (see Rejoining above);
    //  0, the default: it fails at once
    int wait_for_broker_ms;
    //  A broker connection over which nothing came for this long is lost
    //  (ZMTP heartbeats; 0, the default: PS_DEFAULT_TIMEOUT_MS, 10 s, the
    //  broker's default eviction timeout; at least 20 ms)
    int heartbeat_timeout_ms;
    //  CURVE encryption and authentication (both or neither; NULL, the
    //  default: no keys, as a broker in protected mode admits from its own
    //  host): this worker's secret key file (NAME.key_secret, made by
    //  `pskeys new NAME`, whose NAME.key is in the broker's --allow-keys
    //  folder), and the broker's public key: its certificate file
    //  (BROKER.key) or the key as 40 characters of Z85. Read at connect; a
    //  file that cannot be read as a key is PS_EINVAL naming it. A broker
    //  that refuses the connection (the key is not allowed, CURVE on one
    //  side only, an address outside the protected mode's) fails the call
    //  at once with PS_ECONNECT: "the broker refused this connection: ..."
    const char *curve_secret;
    const char *broker_key;
} ps_worker_options_t;

//  Set every option to its default: rank 0, world_size 1, the timeouts
//  above, local_workers 0 (which means 1), no log, wait_for_broker_ms 0,
//  heartbeat_timeout_ms 0. broker must still be set.
PS_WORKER_EXPORT void ps_worker_options_init (ps_worker_options_t *options);

//  ------------------------------------------------------------------
//  Settings from the environment (worker/ps_rendezvous.c)
//
//  A worker started by a launcher finds its settings where the launcher
//  put them, so that one command line serves every rank. For each
//  setting the caller did not give itself (its bit in `given`), highest
//  first:
//    broker            PSMQ_BROKER (an endpoint, or a group's endpoints in
//                      shard order, comma-separated)
//    rank              PSMQ_RANK, then the launcher's rank (below), then
//                      the broker: PS_WORKER_ANY_RANK
//    world_size        PSMQ_WORKERS, then the launcher's size (below), then
//                      the broker: 0
//    curve_secret      PSMQ_CURVE_SECRET (this worker's NAME.key_secret)
//    broker_key        PSMQ_BROKER_KEY (the broker's BROKER.key, or Z85)
//    wait_for_broker   PSMQ_WAIT_FOR_BROKER, in seconds (fractions allowed,
//                      at most 86400)
//  The launcher is the first of these whose rank variable is set:
//    1. Open MPI      OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE
//                     (local rank OMPI_COMM_WORLD_LOCAL_RANK)
//    2. MPICH / PMI   PMI_RANK, PMI_SIZE (local rank MPI_LOCALRANKID)
//    3. torchrun      RANK and WORLD_SIZE, only when both are set
//                     (local rank LOCAL_RANK)
//    4. Slurm         SLURM_PROCID, SLURM_NTASKS (local rank SLURM_LOCALID)
//    5. Kubernetes Indexed Job: JOB_COMPLETION_INDEX (no size: world_size
//                     from PSMQ_WORKERS or the broker)
//    6. Kubernetes StatefulSet: the pod's ordinal, the trailing -N of
//                     HOSTNAME ("psmq-worker-3": 3), only when
//                     KUBERNETES_SERVICE_HOST is set (no size either)
//  MPI comes before Slurm because mpirun inside an allocation inherits
//  the SLURM_PROCID of the batch step; torchrun before Slurm because srun
//  starts one torchrun per node. A variable set but empty counts as not
//  set. The local rank is reported only (the launcher's rank on its node).
//
//  A bad value is PS_EINVAL, the detail naming the variable and its
//  value (in config->error, and to options->log): a rank or size that is
//  not a whole number, a negative one, a size of 0 or over 4096, a rank +
//  local_workers beyond the size ("rank 5 (PSMQ_RANK='5') with 1 local
//  workers does not fit a world of 3 (SLURM_NTASKS='3')"), a wait that is
//  not a number of seconds from 0 to 86400.

//  How the environment is read: the value of variable name, or NULL when
//  it is not set. The strings returned must outlive the options, which
//  point to them (broker, curve_secret, broker_key).
typedef const char *(*ps_worker_lookup_t) (void *arg, const char *name);

//  Bits of `given`: settings the caller set itself (from its flags), which
//  are kept as they are and reported with source "given"
#define PS_WORKER_GIVEN_BROKER 0x01u
#define PS_WORKER_GIVEN_RANK 0x02u
#define PS_WORKER_GIVEN_WORLD_SIZE 0x04u
#define PS_WORKER_GIVEN_CURVE_SECRET 0x08u
#define PS_WORKER_GIVEN_BROKER_KEY 0x10u
#define PS_WORKER_GIVEN_WAIT_FOR_BROKER 0x20u

//  The settings a config reports, in this order
typedef enum {
    PS_SETTING_BROKER = 0,
    PS_SETTING_RANK = 1,
    PS_SETTING_WORLD_SIZE = 2,
    PS_SETTING_LOCAL_RANK = 3, //  reported only
    PS_SETTING_CURVE_SECRET = 4,
    PS_SETTING_BROKER_KEY = 5,
    PS_SETTING_WAIT_FOR_BROKER = 6,
    PS_SETTINGS = 7
} ps_setting_t;

#define PS_WORKER_SETTING_BYTES 256

//  One setting: its name ("broker", "rank", "world_size", "local_rank",
//  "curve_secret", "broker_key", "wait_for_broker"), its value as text
//  ("" when it has none; wait_for_broker in seconds) and where it came
//  from: a variable's name ("PSMQ_RANK", "SLURM_PROCID", "HOSTNAME"),
//  "given", "default" (the options' own), "the broker", or "none"
typedef struct {
    char name[32];
    char value[PS_WORKER_SETTING_BYTES];
    char source[64];
} ps_worker_setting_t;

typedef struct {
    ps_worker_setting_t settings[PS_SETTINGS]; //  indexed by ps_setting_t
    char launcher[32]; //  "openmpi", "mpich", "torchrun", "slurm", "kubernetes-job",
                       //  "kubernetes-statefulset", or "" when none was found
    char error[512];   //  the detail of a PS_EINVAL, "" otherwise
} ps_worker_config_t;

//  Fill options' broker, rank, world_size, curve_secret, broker_key and
//  wait_for_broker_ms from the environment as above, but for the settings
//  given; lookup NULL reads the process's environment (getenv; lookup_arg
//  unused). A rank found nowhere is PS_WORKER_ANY_RANK, a world size 0:
//  ps_worker_connect then asks the broker. Other settings found nowhere
//  are left as the options hold them. config, when not NULL, is filled
//  with each setting's value and source. PS_OK, or PS_EINVAL (options
//  then partly filled) for a NULL options or a bad value.
PS_WORKER_EXPORT int ps_worker_options_from_environment (ps_worker_options_t *options,
                                                         unsigned given, ps_worker_lookup_t lookup,
                                                         void *lookup_arg,
                                                         ps_worker_config_t *config);

typedef struct ps_worker_t ps_worker_t;

//  Connect and register (HELLO) with every broker of the list. Returns the
//  worker, or NULL with *status set (when status is not NULL) and the
//  reason given to options->log. The options are copied.
PS_WORKER_EXPORT ps_worker_t *ps_worker_connect (const ps_worker_options_t *options, int *status);
//  Leave the job (BYE, bounded wait), stop, free, null the pointer.
//  Outstanding tickets are dropped: their buffers are no longer written.
//  Returns the BYE's status (PS_EINVAL for a NULL pointer).
PS_WORKER_EXPORT int ps_worker_close (ps_worker_t **self_p);

PS_WORKER_EXPORT uint32_t ps_worker_rank (const ps_worker_t *self);
PS_WORKER_EXPORT uint32_t ps_worker_world_size (const ps_worker_t *self);
//  Brokers in the group (1 for a single broker)
PS_WORKER_EXPORT uint32_t ps_worker_shards (const ps_worker_t *self);
//  The broker's staleness: 0 BSP, N SSP, -1 ASP
PS_WORKER_EXPORT int32_t ps_worker_staleness (const ps_worker_t *self);
//  The worker's clock: the brokers' clock at HELLO plus the clocks sent
//  since (a clock counts from when it is sent; one the broker refused,
//  other than for a NaN, is taken back)
PS_WORKER_EXPORT int64_t ps_worker_current_clock (const ps_worker_t *self);
//  The least of the slowest live clocks the brokers named in their last
//  replies (0 before any)
PS_WORKER_EXPORT int64_t ps_worker_min_clock (const ps_worker_t *self);
//  The detail of the last failure recorded, "" if none yet; a later
//  success does not clear it. "no worker" for NULL.
PS_WORKER_EXPORT const char *ps_worker_error (const ps_worker_t *self);

//  A named float32 tensor: data has count elements
typedef struct {
    const char *key;
    float *data;
    size_t count;
} ps_tensor_t;

//  Create a parameter. initial may be NULL (zeros); in optim, NULL, kind
//  PS_OPTIMIZER_DEFAULT or a field left 0 means the broker's default.
//  Idempotent: a key that exists with the same size is left as it is,
//  values and all (initial is then ignored), when optim is NULL or names
//  the key's settings; another size, or other settings (a key somebody
//  made before the job with another lr): PS_EKEY_EXISTS, the error naming
//  the key's and this call's. optim NULL takes an existing key's settings
//  whatever they are: name them to have such a difference found.
PS_WORKER_EXPORT int ps_worker_init (ps_worker_t *self, const char *key, size_t count,
                                     const float *initial, const ps_optim_settings_t *optim);

//  The element type a key travels in (proto/PROTOCOL.md, Wire dtypes).
//  The application always gives and receives float32; with BF16 or F16
//  the library rounds pushed values to 16 bits (to nearest even) before it
//  sends them and widens pulled ones, halving the bytes on the wire. The
//  broker keeps float32 values and optimizer state. Error of each value
//  sent, relative: at most 2^-8 for BF16 (float32's range), 2^-11 for F16
//  within [2^-14, 65504] (absolute 2^-25 below; 65520 and beyond become
//  an infinity, and a push holding one is refused like a NaN).
typedef enum {
    PS_WIRE_F32 = 0,  //  float32, as stored (the default)
    PS_WIRE_BF16 = 1, //  bfloat16
    PS_WIRE_F16 = 2   //  IEEE half precision
} ps_wire_dtype_t;

//  ps_worker_init with the key's wire dtype. Every later push and pull of
//  key by this worker travels in it; a key the broker holds in another
//  dtype is PS_EKEY_EXISTS here (and a push or pull in another dtype,
//  say from a worker that did not INIT the key, is PS_ESIZE). Initial
//  values travel in the wire dtype too. A dtype past PS_WIRE_F16 is
//  PS_EINVAL.
PS_WORKER_EXPORT int ps_worker_init_wire (ps_worker_t *self, const char *key, size_t count,
                                          const float *initial, const ps_optim_settings_t *optim,
                                          ps_wire_dtype_t wire);
//  The wire dtype this worker uses for key: the one its last successful
//  ps_worker_init_wire named, PS_WIRE_F32 for any other key
PS_WORKER_EXPORT ps_wire_dtype_t ps_worker_wire_dtype (const ps_worker_t *self, const char *key);

//  Push gradients for the current clock, one round trip for all tensors.
//  grad_count says how many gradients were summed into them (1 if 0).
PS_WORKER_EXPORT int ps_worker_push (ps_worker_t *self, const ps_tensor_t *tensors, size_t ntensors,
                                     uint32_t grad_count);
//  Pull parameters into the tensors' buffers, one round trip. A pull of
//  at least 3/4 of the last-level cache in all writes its float32 values
//  with stores that bypass the cache, as they could not stay there
//  anyway: a 64 MB pull took a third less of the caller's CPU
//  (docs/performance.md)
PS_WORKER_EXPORT int ps_worker_pull (ps_worker_t *self, ps_tensor_t *tensors, size_t ntensors);

//  A pull read in place. ps_worker_pull copies each reply's frames into
//  the caller's buffers; ps_worker_pull_view keeps them and hands them out
//  as pieces instead, sparing that copy (a pass over the tensors' bytes):
//  for a reader that consumes the values where they are, or copies them
//  where it needs them anyway.
typedef struct ps_view_t ps_view_t;

//  A run of one pulled tensor's elements
typedef struct {
    size_t tensor;     //  the tensor's index in the pull's array
    size_t offset;     //  the run's first element in that tensor
    size_t count;      //  elements, at least 1
    const float *data; //  count floats, valid until the view is refilled,
                       //  cleared or destroyed
} ps_view_piece_t;

//  An empty view, NULL when out of memory. One view may take pull after
//  pull (each releases what the last one held, and its room is reused).
PS_WORKER_EXPORT ps_view_t *ps_view_new (void);
//  Release what the view holds and free it; nulls the pointer. A view
//  may outlive the worker that filled it.
PS_WORKER_EXPORT void ps_view_destroy (ps_view_t **self_p);
//  The pieces of the last successful pull (0 after a failed one)
PS_WORKER_EXPORT size_t ps_view_pieces (const ps_view_t *self);
//  Piece index, in order of tensor then offset; NULL past the last
PS_WORKER_EXPORT const ps_view_piece_t *ps_view_piece (const ps_view_t *self, size_t index);
//  Pull the tensors (key and count are read; data is not, and may be
//  NULL) into view, one round trip, with ps_worker_pull's rules and
//  outcomes. On success the pieces of each tensor cover it exactly once;
//  a reply that does not is PS_EPROTO. float32 keys are read in the
//  received frames; bf16 and fp16 keys, and small frames, are widened or
//  copied into memory the view owns.
PS_WORKER_EXPORT int ps_worker_pull_view (ps_worker_t *self, const ps_tensor_t *tensors,
                                          size_t ntensors, ps_view_t *view);
//  Finish the current clock; returns when the staleness bound lets this
//  worker proceed (BSP: when every live worker has finished it)
PS_WORKER_EXPORT int ps_worker_clock (ps_worker_t *self);
//  Push, then finish the clock, in one round trip rather than two: what
//  ps_worker_push followed by ps_worker_clock does (the same buffer rules
//  as ps_worker_push, the clock's wait, outcome and timeout), with one
//  message to each broker (PROTOCOL.md, A push that finishes a clock)
PS_WORKER_EXPORT int ps_worker_push_clock (ps_worker_t *self, const ps_tensor_t *tensors,
                                           size_t ntensors, uint32_t grad_count);

//  Non-blocking forms: send now, return a ticket to wait on, so that
//  computation overlaps communication. A pull's buffers are filled during
//  whichever wait receives its reply.
typedef uint64_t ps_ticket_t;
PS_WORKER_EXPORT int ps_worker_push_async (ps_worker_t *self, const ps_tensor_t *tensors,
                                           size_t ntensors, uint32_t grad_count,
                                           ps_ticket_t *ticket);
PS_WORKER_EXPORT int ps_worker_pull_async (ps_worker_t *self, ps_tensor_t *tensors, size_t ntensors,
                                           ps_ticket_t *ticket);
PS_WORKER_EXPORT int ps_worker_clock_async (ps_worker_t *self, ps_ticket_t *ticket);
PS_WORKER_EXPORT int ps_worker_push_clock_async (ps_worker_t *self, const ps_tensor_t *tensors,
                                                 size_t ntensors, uint32_t grad_count,
                                                 ps_ticket_t *ticket);
//  The same, without the copy: from 256 KB in all the tensors' data is
//  sent from the caller's memory, which stays the library's until the
//  ticket is collected (Push buffers, above). For a step that pushes its
//  gradients and computes on before it waits, as BytePS and Horovod
//  pushes do; the copy they spare is a memcpy of every byte pushed.
PS_WORKER_EXPORT int ps_worker_push_lend_async (ps_worker_t *self, const ps_tensor_t *tensors,
                                                size_t ntensors, uint32_t grad_count,
                                                ps_ticket_t *ticket);
PS_WORKER_EXPORT int ps_worker_push_clock_lend_async (ps_worker_t *self, const ps_tensor_t *tensors,
                                                      size_t ntensors, uint32_t grad_count,
                                                      ps_ticket_t *ticket);
//  Wait for a ticket's reply and collect its status. timeout_ms < 0 means
//  the worker's own timeout: the clock timeout for a CLOCK (and a push
//  that finishes the clock), and for a PULL sent while one was still
//  waiting (its reply waits for the same stragglers), the call timeout
//  otherwise. Once the reply has come the
//  ticket is collected and the request's status returned (PS_ECONNECT
//  when the broker's connection was lost first, PS_EREJOINED when the
//  worker registered again meanwhile). When the wait itself fails
//  (PS_ETIMEOUT, PS_EINTR, PS_ENOMEM while receiving, or PS_ECONNECT for
//  a socket that cannot be polled) the ticket stays pending and may be
//  waited for again; ps_worker_pending tells the two PS_ECONNECT apart.
//  Collecting a push that lent its buffers returns once libzmq has let
//  go of them: at once when the reply came, else after at most 200 ms,
//  when the connections that still hold them are made anew.
PS_WORKER_EXPORT int ps_worker_wait (ps_worker_t *self, ps_ticket_t ticket, int timeout_ms);
//  Tickets sent and not yet collected
PS_WORKER_EXPORT size_t ps_worker_pending (const ps_worker_t *self);

//  The broker's status as a JSON object (shard 0's in a group); *json is
//  the caller's to free(), NULL on failure
PS_WORKER_EXPORT int ps_worker_info (ps_worker_t *self, char **json);
//  The status of one broker of the group, 0 .. ps_worker_shards - 1
PS_WORKER_EXPORT int ps_worker_info_shard (ps_worker_t *self, uint32_t shard, char **json);

//  Ask one broker (a single endpoint; a list is PS_EINVAL) for INFO
//  without registering (for tools). timeout_ms <= 0 means the default.
//  *json is the caller's to free(), NULL on failure.
PS_WORKER_EXPORT int ps_worker_query_info (const char *broker, int timeout_ms, char **json);
//  The same with options: broker (a single endpoint), timeout_ms (<= 0:
//  the default), curve_secret, broker_key and log are used, the rest
//  ignored. A refusal is PS_ECONNECT, a bad key file PS_EINVAL; either
//  way the detail goes to the log callback (when set)
PS_WORKER_EXPORT int ps_worker_query_info_options (const ps_worker_options_t *options, char **json);

#ifdef __cplusplus
}
#endif

#endif
