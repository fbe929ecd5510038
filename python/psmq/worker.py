"""psmq.Worker: the worker library (worker/ps_worker.h) for numpy.

A Worker is one ps_worker_t: connected and registered with a broker (or a
group of them) when it is made, closed by close() or by leaving its `with`
block. Its calls are the library's, one for one:

  init(name, array_or_size, optimizer=..., lr=...)   create a parameter
  push(name, array) or push({name: array, ...})      gradients of this clock
  pull(name, out=None) or pull({name: out, ...})     parameters, into numpy
  pull_view(name) or pull_view([name, ...])          parameters read in place
  clock()                                            finish this clock
  push_async / pull_async / clock_async              the same, returning a
                                                     Ticket to .wait() on
  info(), current_clock, min_clock, staleness, ...   what the library knows

Arrays. The library reads and writes numpy's own memory: push and init
hand it the array's data pointer, pull writes into the array it returns
(out= when given, else a new one). Arrays must therefore be numpy float32
(native byte order), C-contiguous and aligned, with the shape the key was
made with; anything else is a TypeError (dtype, not an ndarray) or a
ValueError (shape, layout, a read-only out=), never a silent copy.

Lifetimes, from ps_worker.h:
  * init and push_async copy the data during the call; the array is free
    again when they return. push_async(..., lend=True) and
    push_clock_async(..., lend=True) do not: from 256 KB a call libzmq
    sends the array's own memory, and the array is the library's until
    the ticket is collected (Ticket.wait) or close(). The Worker keeps it
    alive until then; do not write it before.
  * push copies a call of less than 256 KB; from 256 KB libzmq sends the
    array's memory itself and push returns only once libzmq let go of it.
    Either way the array is free again when push returns. While it runs
    (the GIL is released) no other thread may write the array.
  * pull_async: the library writes the out arrays when the reply arrives,
    during whichever later call receives it (Ticket.wait of any ticket, or
    any blocking call), until the ticket is collected. The Worker keeps the
    arrays and the key strings alive until then (or until close()), even
    when the Ticket itself is dropped; do not read them, and do not write
    them from another thread, before wait() returned them.
  * A pull that fails may have written part of its arrays.
  * pull_view's arrays are read-only views of the received frames; they
    keep those frames alive as long as any of them is referenced, even
    after close().

Threads: a Worker belongs to the thread that made it (a RuntimeError
otherwise); use one per thread. Blocking calls release the GIL.

Failures raise psmq.Error subclasses (psmq.errors) carrying the status and
the library's detail, e.g. the broker's own message. The library's log
lines (why connect failed, whom a rejoining worker waits for) go to the
Python logger "psmq" (or the one given as log=; None drops them).
"""

import ctypes
import enum
import json
import logging
import numbers
import os
import threading

import numpy as np

from . import _lib
from .errors import RejoinedError, Status, TicketError, make_error

_lib_ = _lib.lib
_F32 = np.dtype(np.float32)
#  init's wire_dtype: ps_wire_dtype_t's values (ps_worker.h)
_WIRE_DTYPES = {"f32": 0, "float32": 0, "bf16": 1, "bfloat16": 1, "f16": 2, "float16": 2}
_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}
_DEFAULT_LOG = logging.getLogger("psmq")
#  A library's logger prints nothing until the application configures
#  logging (the exceptions carry the same detail)
_DEFAULT_LOG.addHandler(logging.NullHandler())


class Optimizer(enum.IntEnum):
    """ps_optimizer_t: the server-side update rule of a key"""

    DEFAULT = 0
    SGD = 1
    MOMENTUM = 2
    ADAGRAD = 3
    ADAM = 4


class LogLevel(enum.IntEnum):
    """ps_worker_log_level_t"""

    ERROR = 0
    WARNING = 1
    INFO = 2


def _optimizer(value):
    if isinstance(value, str):
        try:
            return Optimizer[value.upper()]
        except KeyError:
            raise ValueError("optimizer %r unknown: sgd, momentum, adagrad, adam or default"
                             % value) from None
    return Optimizer(value)


def _text(value, what):
    """A str (or bytes) for a const char * field: UTF-8, no NUL inside."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if b"\0" in data:
        raise ValueError("%s holds a NUL character" % what)
    return data


def _path(value, what):
    if value is None:
        return None
    data = os.fsencode(value)
    if b"\0" in data:
        raise ValueError("%s holds a NUL character" % what)
    return data


class _LogSink:
    """The C log callback: forwards each line to a Python logger and keeps
    the last ERROR line (why connect or query_info failed)."""

    def __init__(self, log):
        self.log = log
        self.last_error = None
        self.callback = _lib.LOG_FUNC(self._call)

    def _call(self, arg, level, message):
        try:
            text = message.decode("utf-8", "replace") if message else ""
            if level == LogLevel.ERROR:
                self.last_error = text
            if self.log is not None:
                self.log.log(_LEVELS.get(level, logging.INFO), "%s", text)
        except BaseException:  # an exception must not unwind into C
            pass


def _make_options(broker, sink, rank=0, workers=1, timeout_ms=None, clock_timeout_ms=None,
                  local_workers=None, wait_for_broker_ms=None, heartbeat_timeout_ms=None,
                  curve_secret=None, broker_key=None):
    """A ps_worker_options_t from ps_worker_options_init's defaults; a None
    keeps the default."""
    if not isinstance(broker, (str, bytes)):
        broker = ",".join(broker)  # a group's endpoints, in shard order
    options = _lib.Options()
    _lib_.ps_worker_options_init(ctypes.byref(options))
    options.broker = _text(broker, "broker")
    #  ctypes would wrap a negative number into a huge unsigned one
    if not 0 <= rank < workers:
        raise ValueError("rank %d outside 0 .. workers - 1 (workers %d)" % (rank, workers))
    if local_workers is not None and not 1 <= local_workers <= workers - rank:
        raise ValueError("local_workers %d: ranks %d .. %d must be in the job of %d"
                         % (local_workers, rank, rank + local_workers - 1, workers))
    options.rank = rank
    options.world_size = workers
    for field, value in (("timeout_ms", timeout_ms), ("clock_timeout_ms", clock_timeout_ms),
                         ("local_workers", local_workers),
                         ("wait_for_broker_ms", wait_for_broker_ms),
                         ("heartbeat_timeout_ms", heartbeat_timeout_ms)):
        if value is not None:
            setattr(options, field, value)
    options.log = sink.callback
    if (curve_secret is None) != (broker_key is None):
        raise ValueError("curve_secret and broker_key go together: give both or neither")
    options.curve_secret = _path(curve_secret, "curve_secret")
    #  broker_key is a certificate file or 40 characters of Z85
    options.broker_key = _path(broker_key, "broker_key")
    return options


def _from_environment(broker, sink, rank, workers, local_workers=None, wait_for_broker_ms=None,
                      curve_secret=None, broker_key=None, **rest):
    """Options as _make_options makes them, what the caller left None
    taken from the environment (ps_worker_options_from_environment): PSMQ_*
    variables, a launcher's, else the broker's rank and world size. The
    options and the ps_worker_config_t that says where each came from."""
    given = 0
    for bit, value in ((_lib.GIVEN_BROKER, broker), (_lib.GIVEN_RANK, rank),
                       (_lib.GIVEN_WORLD_SIZE, workers), (_lib.GIVEN_CURVE_SECRET, curve_secret),
                       (_lib.GIVEN_BROKER_KEY, broker_key),
                       (_lib.GIVEN_WAIT_FOR_BROKER, wait_for_broker_ms)):
        if value is not None:
            given |= bit
    if (curve_secret is None) != (broker_key is None):
        raise ValueError("curve_secret and broker_key go together: give both or neither")
    if rank is not None and workers is not None:
        options = _make_options(broker or "", sink, rank, workers, local_workers=local_workers,
                                wait_for_broker_ms=wait_for_broker_ms, curve_secret=curve_secret,
                                broker_key=broker_key, **rest)
    else:
        #  Checked against each other once the environment has spoken
        if rank is not None and rank < 0:
            raise ValueError("rank %d is negative" % rank)
        if workers is not None and not 1 <= workers <= 4096:
            raise ValueError("workers %d outside 1 .. 4096" % workers)
        options = _make_options(broker or "", sink, 0, 1, local_workers=None,
                                wait_for_broker_ms=wait_for_broker_ms, curve_secret=curve_secret,
                                broker_key=broker_key, **rest)
        if local_workers is not None:
            options.local_workers = local_workers
        options.rank = rank if rank is not None else 0
        options.world_size = workers if workers is not None else 0
    if broker is None:
        options.broker = None
    config = _lib.Config()
    status = _lib_.ps_worker_options_from_environment(ctypes.byref(options), given, None, None,
                                                      ctypes.byref(config))
    if status:
        raise make_error(status, config.error.decode("utf-8", "replace"))
    return options, config


def _settings(config):
    """{name: (value, source)} of a ps_worker_config_t, and the launcher"""
    settings = {}
    for setting in config.settings:
        settings[setting.name.decode()] = (setting.value.decode("utf-8", "replace"),
                                           setting.source.decode("utf-8", "replace"))
    settings["launcher"] = (config.launcher.decode(), "")
    return settings


def config(broker=None, rank=None, workers=None, *, local_workers=None, wait_for_broker_ms=None,
           curve_secret=None, broker_key=None):
    """What psmq.Worker(...) with these arguments would connect with, and
    where each setting comes from: {"broker": (value, source), "rank": ...,
    "world_size", "local_rank", "curve_secret", "broker_key",
    "wait_for_broker" (seconds), "launcher": (name, "")}. A source is the
    variable's name ("PSMQ_RANK", "SLURM_PROCID", ...), "given" (an
    argument), "default", "the broker" (value "") or "none". Raises
    psmq.InvalidArgument naming a bad variable and its value."""
    sink = _LogSink(None)
    _, found = _from_environment(broker, sink, rank, workers, local_workers, wait_for_broker_ms,
                                 curve_secret, broker_key)
    return _settings(found)


class _Key:
    __slots__ = ("name", "cname", "shape", "count")

    def __init__(self, name, cname, shape, count):
        self.name = name
        self.cname = cname
        self.shape = shape
        self.count = count


class _View:
    """A ps_view_t, destroyed when the last array over its frames is gone
    (each array's buffer holds a reference to it)."""

    __slots__ = ("pointer",)

    def __init__(self):
        self.pointer = _lib_.ps_view_new()
        if not self.pointer:
            raise MemoryError("ps_view_new: out of memory")

    def __del__(self):
        if self.pointer:
            pointer = ctypes.c_void_p(self.pointer)
            self.pointer = None
            _lib_.ps_view_destroy(ctypes.byref(pointer))


class Ticket:
    """A request in flight (ps_ticket_t). wait() collects it: None for a
    push or a clock, the arrays for a pull (one array, or a dict when the
    pull named several keys); or raises the request's psmq.Error. A wait
    that itself fails (psmq.TimeoutError, psmq.InterruptedError) leaves the
    ticket pending: wait again. Once collected, wait() gives the same
    answer again."""

    __slots__ = ("_worker", "id", "kind", "_result", "_done", "_error")

    def __init__(self, worker, ticket_id, kind, result=None):
        self._worker = worker
        self.id = ticket_id
        self.kind = kind
        self._result = result
        self._done = False
        self._error = None

    @property
    def done(self):
        """True once collected by wait()."""
        return self._done

    def wait(self, timeout_ms=-1):
        """Wait for the reply; timeout_ms < 0: the worker's own timeout."""
        if not self._done:
            self._worker._wait(self, timeout_ms)
        if self._error is not None:
            raise self._error
        return self._result

    def __repr__(self):
        return "<psmq.Ticket %d %s%s>" % (self.id, self.kind, " done" if self._done else "")


class Worker:
    """A connected, registered worker: Worker(broker, rank, workers, ...).

    broker      an endpoint ("tcp://10.0.0.1:5555") or a group's endpoints
                in shard order (a list, or one comma-separated string)
    rank        this worker's rank, 0 .. workers - 1
    workers     the job's world size; must match the broker's
                Left out (None), each comes from the environment as
                psworker's do: PSMQ_BROKER, PSMQ_RANK, PSMQ_WORKERS, else the
                launcher's variables (mpirun, torchrun, srun, Kubernetes),
                else the broker gives a free rank and its world size
                (worker.rank and worker.workers tell them). So do
                wait_for_broker_ms (PSMQ_WAIT_FOR_BROKER, in seconds) and
                the keys (PSMQ_CURVE_SECRET, PSMQ_BROKER_KEY). psmq.config()
                shows what was found where; docs/cluster.md.
    timeout_ms  reply timeout of each call (None: the library's, 30 s)
    clock_timeout_ms      how long a clock may wait for stragglers (10 min)
    local_workers         workers this process stands for (1)
    wait_for_broker_ms    how long a call waits to register again after a
                          broker restart or an eviction (0: fails at once)
    heartbeat_timeout_ms  a connection silent this long is lost (10 s)
    curve_secret, broker_key  CURVE keys, both or neither: this worker's
                          secret key file (NAME.key_secret from `pskeys new
                          NAME`) and the broker's public key (its .key file
                          or 40 characters of Z85)
    log         the logging.Logger the library's messages go to (default
                logging.getLogger("psmq")); None drops them

    Raises psmq.Error when it cannot connect: psmq.TimeoutError when no
    broker answered within timeout_ms, psmq.ConnectionError when one
    refused the connection (keys), psmq.RankError, ...
    """

    def __init__(self, broker=None, rank=None, workers=None, *, timeout_ms=None,
                 clock_timeout_ms=None,
                 local_workers=None, wait_for_broker_ms=None, heartbeat_timeout_ms=None,
                 curve_secret=None, broker_key=None, log=_DEFAULT_LOG):
        self._handle = None
        self._keys = {}
        #  ticket id -> what the library may still write or read for it (a
        #  pull's tensor array, out arrays and key strings): kept until the
        #  ticket is collected or the worker closed, whatever becomes of
        #  the Ticket object
        self._owned = {}
        self._last_failure = (0, "")
        #  The options are copied by connect, but the callback they point
        #  to must live as long as the worker
        self._sink = _LogSink(log)
        options, _ = _from_environment(broker, self._sink, rank, workers, local_workers,
                                       wait_for_broker_ms, curve_secret, broker_key,
                                       timeout_ms=timeout_ms, clock_timeout_ms=clock_timeout_ms,
                                       heartbeat_timeout_ms=heartbeat_timeout_ms)
        if not options.broker:
            raise ValueError("no broker: give broker= or set PSMQ_BROKER")
        status = ctypes.c_int(0)
        handle = _lib_.ps_worker_connect(ctypes.byref(options), ctypes.byref(status))
        if not handle:
            raise make_error(status.value or Status.ECONNECT, self._sink.last_error)
        self._handle = ctypes.c_void_p(handle)
        self._thread = threading.get_ident()
        self.broker = options.broker.decode("utf-8")

    # ------------------------------------------------------------ plumbing

    def _h(self):
        """The handle, for a call from the owning thread of an open worker."""
        handle = self._handle
        if handle is None:
            raise ValueError("operation on a closed psmq.Worker")
        if threading.get_ident() != self._thread:
            raise RuntimeError("a psmq.Worker belongs to the thread that connected it "
                               "(ps_worker_t is not thread-safe): make one per thread")
        return handle

    def _fail(self, status):
        """Raises the error of a failed call, with the library's detail.

        ps_worker_error keeps the last detail recorded, and a failure that
        records none (some argument checks) would show an older one: a
        detail we already reported for another status is not shown again."""
        detail = _lib_.ps_worker_error(self._handle)
        detail = detail.decode("utf-8", "replace") if detail else ""
        last_status, last_detail = self._last_failure
        self._last_failure = (status, detail)
        if detail == last_detail and status != last_status:
            detail = ""
        error = make_error(status, detail)
        if isinstance(error, RejoinedError):
            error.clock = _lib_.ps_worker_current_clock(self._handle)
        raise error

    def _cname(self, name):
        key = self._keys.get(name)
        if key is not None:
            return key.cname
        if not isinstance(name, str):
            raise TypeError("a key is a str, not %s" % type(name).__name__)
        return _text(name, "key %r" % name)

    def _check(self, name, array, what, writable=False):
        """array as the library may use it for key name, or TypeError /
        ValueError saying what is wrong with it."""
        if not isinstance(array, np.ndarray):
            raise TypeError("%s of key %r must be a numpy.ndarray of float32, not %s"
                            % (what, name, type(array).__name__))
        if array.dtype is not _F32 and array.dtype != _F32:
            raise TypeError("%s of key %r has dtype %s: psmq moves float32 only (convert "
                            "with array.astype(numpy.float32), which copies)"
                            % (what, name, array.dtype))
        flags = array.flags
        if not flags.c_contiguous:
            raise ValueError("%s of key %r is not C-contiguous: psmq uses the array's own "
                             "memory; pass numpy.ascontiguousarray(array) (a copy)"
                             % (what, name))
        if not flags.aligned:
            raise ValueError("%s of key %r is not aligned for float32" % (what, name))
        if writable and not flags.writeable:
            raise ValueError("%s of key %r is read-only: pull writes into it" % (what, name))
        key = self._keys.get(name)
        if key is not None and array.shape != key.shape:
            raise ValueError("%s of key %r has shape %s; the key has shape %s (%d floats)"
                             % (what, name, array.shape, key.shape, key.count))
        return array

    def _tensors(self, items):
        """A ps_tensor_t array over (name, array) pairs; the struct keeps the
        key strings alive."""
        tensors = (_lib.Tensor * len(items))()
        for tensor, (name, array) in zip(tensors, items):
            tensor.key = self._cname(name)
            tensor.data = array.__array_interface__["data"][0]  # cheaper than .ctypes
            tensor.count = array.size
        return tensors

    def _push_items(self, name_or_dict, array, grad_count):
        if not isinstance(grad_count, numbers.Integral) or grad_count < 1:
            raise ValueError("grad_count %r: the number of gradients summed, at least 1"
                             % (grad_count,))
        if isinstance(name_or_dict, dict):
            if array is not None:
                raise TypeError("push({name: array, ...}) takes no second array")
            items = list(name_or_dict.items())
        else:
            if array is None:
                raise TypeError("push(name, array): the array is missing")
            items = [(name_or_dict, array)]
        if not items:
            raise ValueError("push of no key")
        return [(name, self._check(name, a, "the gradient")) for name, a in items]

    def _pull_items(self, names, out):
        """(items, result): the (name, array) pairs to pull into, and what
        the pull returns (the one array, or a dict of them)."""
        if isinstance(names, dict):
            if out is not None:
                raise TypeError("pull({name: out, ...}) takes no out=")
            pairs = list(names.items())
            single = False
        elif isinstance(names, (list, tuple)):
            if out is not None:
                raise TypeError("pull([names]) takes no out=; pull({name: out, ...}) does")
            pairs = [(name, None) for name in names]
            single = False
        else:
            pairs = [(names, out)]
            single = True
        if not pairs:
            raise ValueError("pull of no key")
        items = []
        for name, array in pairs:
            if array is None:
                key = self._keys.get(name)
                if key is None:
                    raise ValueError("pull of key %r: this worker does not know its shape (it "
                                     "did not init it); init it (harmless for a key that "
                                     "exists with that size) or pass out=" % (name,))
                array = np.empty(key.shape, dtype=np.float32)
            else:
                self._check(name, array, "the out array", writable=True)
            items.append((name, array))
        result = items[0][1] if single else dict(items)
        return items, result

    def _wait(self, ticket, timeout_ms):
        if self._handle is None:
            raise TicketError(Status.ETICKET, "the worker was closed before ticket %d was "
                              "collected" % ticket.id)
        handle = self._h()
        before = _lib_.ps_worker_pending(handle)
        status = _lib_.ps_worker_wait(handle, ticket.id, int(timeout_ms))
        if status not in (Status.OK, Status.ETICKET) and _lib_.ps_worker_pending(handle) >= before:
            self._fail(status)  # the wait failed; the ticket is still pending
        ticket._done = True
        self._owned.pop(ticket.id, None)
        if status != Status.OK:
            ticket._result = None
            try:
                self._fail(status)
            except Exception as error:
                ticket._error = error

    # ------------------------------------------------------------ calls

    def init(self, name, array_or_size, *, optimizer=None, lr=0.0, momentum=0.0, beta1=0.0,
             beta2=0.0, eps=0.0, decay_steps=0, wire_dtype="f32"):
        """Create parameter `name` (ps_worker_init_wire).

        array_or_size: a float32 array of the initial values (its shape is
        the key's), or a size or shape (zeros). optimizer ("sgd",
        "momentum", "adagrad", "adam", or an Optimizer) and its settings;
        left out or 0, the broker's defaults. Idempotent: a key that exists
        with the same size is left as it is (the initial values are then
        ignored) when the settings are left out or name the key's own;
        another size or other settings raise psmq.KeyExistsError in the
        broker's words.

        wire_dtype: what the key's values and gradients travel as, "f32"
        (the default), "bf16" or "f16" (half the bytes; arrays stay
        float32 here and in the broker; rounding to nearest even, relative
        error at most 2**-8 for bf16, 2**-11 for f16 within its range,
        docs/performance.md). A key that exists in another dtype raises
        psmq.KeyExistsError."""
        wire = _WIRE_DTYPES.get(wire_dtype)
        if wire is None:
            raise ValueError("init of key %r: wire_dtype %r is not one of %s"
                             % (name, wire_dtype, ", ".join(sorted(_WIRE_DTYPES))))
        handle = self._h()
        cname = self._cname(name)
        if isinstance(array_or_size, np.ndarray):
            array = self._check(name, array_or_size, "the initial array")
            shape, count, data = array.shape, array.size, array.ctypes.data
        else:
            if isinstance(array_or_size, numbers.Integral) and not isinstance(array_or_size, bool):
                shape = (int(array_or_size),)
            elif isinstance(array_or_size, tuple) and all(
                    isinstance(n, numbers.Integral) and not isinstance(n, bool)
                    for n in array_or_size):
                shape = tuple(int(n) for n in array_or_size)
            else:
                raise TypeError("init(name, array_or_size): a float32 numpy.ndarray, a size or "
                                "a shape, not %s" % type(array_or_size).__name__)
            if any(n < 0 for n in shape):
                raise ValueError("init of key %r: negative size in %s" % (name, shape))
            count, data = int(np.prod(shape, dtype=np.int64)), None
        settings = None
        if optimizer is not None or lr or momentum or beta1 or beta2 or eps or decay_steps:
            settings = _lib.OptimSettings(
                _optimizer(optimizer if optimizer is not None else Optimizer.DEFAULT), lr,
                momentum, beta1, beta2, eps, decay_steps)
        status = _lib_.ps_worker_init_wire(handle, cname, count, data,
                                           ctypes.byref(settings) if settings is not None
                                           else None, wire)
        if status:
            self._fail(status)
        self._keys[name] = _Key(name, cname, shape, count)

    def push(self, name_or_dict, array=None, *, grad_count=1):
        """Push gradients for the current clock (ps_worker_push): one key,
        push(name, array), or several in one round trip, push({name: array}).
        grad_count: how many gradients were summed into them."""
        self._push_call(_lib_.ps_worker_push, name_or_dict, array, grad_count)

    def _push_call(self, function, name_or_dict, array, grad_count, *ticket):
        """Call a ps_worker_push* function with the gradients given as push
        takes them (and a ticket's pointer for the async forms); returns
        what the call read: the ps_tensor_t array and the (name, array)
        pairs."""
        handle = self._h()
        items = self._push_items(name_or_dict, array, grad_count)
        tensors = self._tensors(items)
        status = function(handle, tensors, len(items), grad_count, *ticket)
        if status:
            self._fail(status)
        return tensors, items

    def _push_ticket(self, function, kind, name_or_dict, array, grad_count, lend=False):
        """An async ps_worker_push* call: its Ticket. A lent push's arrays
        are kept alive until the ticket is collected (or the worker closed)."""
        ticket = ctypes.c_uint64()
        lent = self._push_call(function, name_or_dict, array, grad_count, ctypes.byref(ticket))
        if lend:
            self._owned[ticket.value] = lent
        return Ticket(self, ticket.value, kind)

    def pull(self, names, out=None):
        """Pull parameters (ps_worker_pull) into numpy arrays and return them:
        pull(name) a new array of the key's shape, pull(name, out=array)
        into that array (returned), pull([names]) or pull({name: out or
        None}) several keys in one round trip, as a dict."""
        handle = self._h()
        items, result = self._pull_items(names, out)
        tensors = self._tensors(items)
        status = _lib_.ps_worker_pull(handle, tensors, len(items))
        if status:
            self._fail(status)
        return result

    def pull_view(self, names):
        """Pull parameters read in place (ps_worker_pull_view): no copy into
        arrays of the keys' shapes, but a list of (name, offset, array)
        pieces, in the order of names and then of offset, where array is a
        read-only 1-D float32 view of the received values of the key's
        elements offset .. offset + array.size - 1 (in C order). The pieces
        of each key cover it exactly once. For readers that use the values
        where they are (write them out, reduce them); a training step that
        needs the key as one array is served as well by pull. names: a key
        or a list of keys, each made with init() by this worker (its size)."""
        handle = self._h()
        single = not isinstance(names, (list, tuple))
        names = [names] if single else list(names)
        if not names:
            raise ValueError("pull_view of no key")
        tensors = (_lib.Tensor * len(names))()
        for tensor, name in zip(tensors, names):
            key = self._keys.get(name)
            if key is None:
                raise ValueError("pull_view of key %r: this worker does not know its size (it "
                                 "did not init it); init it (harmless for a key that exists "
                                 "with that size)" % (name,))
            tensor.key = key.cname
            tensor.count = key.count
        view = _View()
        status = _lib_.ps_worker_pull_view(handle, tensors, len(names), view.pointer)
        if status:
            self._fail(status)
        pieces = []
        for index in range(_lib_.ps_view_pieces(view.pointer)):
            piece = _lib_.ps_view_piece(view.pointer, index).contents
            buffer = (ctypes.c_float * piece.count).from_address(piece.data)
            buffer._view = view  # the frames live as long as any array over them
            array = np.frombuffer(buffer, dtype=np.float32)
            array.flags.writeable = False
            pieces.append((names[piece.tensor], piece.offset, array))
        return pieces

    def clock(self):
        """Finish the current clock (ps_worker_clock): returns when the
        staleness bound lets this worker go on (BSP: when every live worker
        finished it)."""
        status = _lib_.ps_worker_clock(self._h())
        if status:
            self._fail(status)

    def push_clock(self, name_or_dict, array=None, *, grad_count=1):
        """push, then clock, in one round trip (ps_worker_push_clock):
        the arguments of push, the wait and outcome of clock."""
        self._push_call(_lib_.ps_worker_push_clock, name_or_dict, array, grad_count)

    def push_clock_async(self, name_or_dict, array=None, *, grad_count=1, lend=False):
        """push_clock, sent now; returns a Ticket. The arrays are copied
        during the call, or lent with lend=True, as push_async's."""
        function = (_lib_.ps_worker_push_clock_lend_async if lend
                    else _lib_.ps_worker_push_clock_async)
        return self._push_ticket(function, "push_clock", name_or_dict, array, grad_count, lend)

    def push_async(self, name_or_dict, array=None, *, grad_count=1, lend=False):
        """push, sent now; returns a Ticket. The arrays are copied during
        the call and are free again when it returns. lend=True spares that
        copy (ps_worker_push_lend_async): from 256 KB a call, libzmq sends
        the arrays' own memory, and they are the library's until wait()
        collected the ticket (or close()): do not write them before. The
        Worker keeps them alive until then, even when the Ticket is
        dropped."""
        function = _lib_.ps_worker_push_lend_async if lend else _lib_.ps_worker_push_async
        return self._push_ticket(function, "push", name_or_dict, array, grad_count, lend)

    def pull_async(self, names, out=None):
        """pull, sent now; returns a Ticket whose wait() returns the arrays.
        They are written when the reply arrives, during a later call: do
        not use them before wait() returned."""
        handle = self._h()
        items, result = self._pull_items(names, out)
        tensors = self._tensors(items)
        ticket = ctypes.c_uint64()
        status = _lib_.ps_worker_pull_async(handle, tensors, len(items), ctypes.byref(ticket))
        if status:
            self._fail(status)
        self._owned[ticket.value] = (tensors, items)
        return Ticket(self, ticket.value, "pull", result)

    def clock_async(self):
        """clock, sent now; returns a Ticket."""
        ticket = ctypes.c_uint64()
        status = _lib_.ps_worker_clock_async(self._h(), ctypes.byref(ticket))
        if status:
            self._fail(status)
        return Ticket(self, ticket.value, "clock")

    def info(self, shard=None):
        """The broker's status as a dict (ps_worker_info; shard: that broker
        of the group's)."""
        handle = self._h()
        pointer = ctypes.c_void_p()
        if shard is None:
            status = _lib_.ps_worker_info(handle, ctypes.byref(pointer))
        else:
            status = _lib_.ps_worker_info_shard(handle, shard, ctypes.byref(pointer))
        text = _lib.take_json(pointer)
        if status:
            self._fail(status)
        return json.loads(text)

    def close(self):
        """Leave the job (BYE, bounded wait) and free the worker. Idempotent.
        Tickets not yet collected are dropped: their arrays are no longer
        written, and their wait() raises psmq.TicketError. A BYE the broker
        did not acknowledge is logged as a warning, not raised: the worker
        is closed either way."""
        if self._handle is None:
            return
        self._h()
        self._close()

    def _close(self):
        handle, self._handle = self._handle, None
        status = _lib_.ps_worker_close(ctypes.byref(handle))
        self._owned.clear()
        if status and self._sink.log is not None:
            self._sink.log.warning("closing the worker: %s", make_error(status))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        #  Nobody else can use the worker any more, from any thread
        if getattr(self, "_handle", None) is not None:
            try:
                self._close()
            except Exception:
                pass

    # ------------------------------------------------------------ state

    @property
    def closed(self):
        return self._handle is None

    @property
    def rank(self):
        return _lib_.ps_worker_rank(self._h())

    @property
    def world_size(self):
        return _lib_.ps_worker_world_size(self._h())

    @property
    def shards(self):
        """Brokers in the group (1 for a single broker)."""
        return _lib_.ps_worker_shards(self._h())

    @property
    def staleness(self):
        """The broker's staleness: 0 BSP, N SSP, -1 ASP."""
        return _lib_.ps_worker_staleness(self._h())

    @property
    def current_clock(self):
        """The worker's clock (ps_worker_current_clock)."""
        return _lib_.ps_worker_current_clock(self._h())

    @property
    def min_clock(self):
        """The slowest live clock the brokers named last (0 before any)."""
        return _lib_.ps_worker_min_clock(self._h())

    @property
    def pending(self):
        """Tickets sent and not yet collected."""
        return _lib_.ps_worker_pending(self._h())

    @property
    def error(self):
        """The library's detail of the last failure, "" if none yet."""
        detail = _lib_.ps_worker_error(self._h())
        return detail.decode("utf-8", "replace") if detail else ""

    @property
    def keys(self):
        """{name: shape} of the keys this worker made or joined with init."""
        return {name: key.shape for name, key in self._keys.items()}

    def __repr__(self):
        if self._handle is None:
            return "<psmq.Worker closed>"
        return "<psmq.Worker %s rank %d of %d>" % (self.broker, _lib_.ps_worker_rank(
            self._handle), _lib_.ps_worker_world_size(self._handle))


def info(broker, *, timeout_ms=0, curve_secret=None, broker_key=None, log=_DEFAULT_LOG):
    """One broker's status as a dict, without registering
    (ps_worker_query_info_options). timeout_ms <= 0: the library's default."""
    if not isinstance(broker, str) or "," in broker:
        raise ValueError("psmq.info asks one broker, an endpoint; for a group's, "
                         "Worker.info(shard) or one psmq.info per endpoint")
    sink = _LogSink(log)
    options = _make_options(broker, sink, timeout_ms=timeout_ms, curve_secret=curve_secret,
                            broker_key=broker_key)
    pointer = ctypes.c_void_p()
    status = _lib_.ps_worker_query_info_options(ctypes.byref(options), ctypes.byref(pointer))
    text = _lib.take_json(pointer)
    if status:
        raise make_error(status, sink.last_error)
    return json.loads(text)
