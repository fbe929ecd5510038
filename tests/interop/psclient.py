"""A psmq client written from proto/PROTOCOL.md and proto/ps.proto alone.

It speaks the wire protocol as a third-party worker would: a ZeroMQ DEALER
socket, one protobuf Envelope frame per message followed by raw
little-endian float32 frames, one per slice with count > 0.  Tensors larger
than 1 MB go out as slices of at most 1 MB, and PULL replies may come in
several parts (same seq, `more` on all but the last).

Every wait is bounded: receiving polls with a timeout and raises
TimeoutError when nothing arrives in time.  Replies are paired with their
requests by seq, so several requests may be in flight at once.
"""

import json
import time

import numpy as np
import zmq

PROTOCOL_VERSION = 1
CHUNK_BYTES = 1 << 20                  # PS_CHUNK_BYTES
CHUNK_ELEMS = CHUNK_BYTES // 4         # float32 elements in one slice

#  Generous bound for any single reply: the suite must hold on a loaded
#  2-core machine
DEFAULT_TIMEOUT = 20.0


class PsError(Exception):
    """An ERROR reply where a normal one was expected."""

    def __init__(self, env):
        self.env = env
        self.code = env.error.code
        self.message = env.error.message
        self.seq = env.seq
        super().__init__("ERROR %d (%s) seq %d" % (self.code, self.message, self.seq))


class Reply:
    """A whole reply: the envelopes of all its parts and their frames."""

    def __init__(self, parts):
        self.parts = parts                      # [(Envelope, [bytes, ...]), ...]
        self.env = parts[-1][0]

    @property
    def seq(self):
        return self.env.seq

    def tensors(self):
        """PULL reply: {key: float32 array}, assembled from every slice of every part."""
        out = {}
        for env, frames in self.parts:
            i = 0
            for s in env.slices:
                if s.key not in out:
                    out[s.key] = np.full(s.total, np.nan, dtype="<f4")      # NaN: not pulled
                if s.count > 0:
                    frame = frames[i]
                    i += 1
                    assert len(frame) == s.count * 4, "frame of %d bytes for count %d" % (len(frame), s.count)
                    out[s.key][s.offset:s.offset + s.count] = np.frombuffer(frame, dtype="<f4")
            assert i == len(frames), "%d frames for %d data slices" % (len(frames), i)
        return out


def f32(values):
    """Values as a little-endian float32 array."""
    return np.ascontiguousarray(np.asarray(values, dtype="<f4").reshape(-1))


def slice_tensor(pb, key, values, total=None, chunk=CHUNK_ELEMS):
    """Slices and frames for one tensor: slices of at most `chunk` elements."""
    values = f32(values)
    n = len(values)
    slices, frames = [], []
    for off in range(0, n, chunk):
        part = values[off:off + chunk]
        s = pb.Slice(key=key, offset=off, count=len(part))
        if total is not None:
            s.total = total
        slices.append(s)
        frames.append(part.tobytes())
    return slices, frames


class Client:
    """One DEALER connection to a broker, standing for one worker (or several ranks)."""

    def __init__(self, pb, ctx, endpoint, rank=0, world_size=1, timeout=DEFAULT_TIMEOUT):
        self.pb = pb
        self.endpoint = endpoint
        self.rank = rank
        self.world_size = world_size
        self.timeout = timeout
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        self.sock.setsockopt(zmq.SNDHWM, 100000)
        self.sock.connect(endpoint)
        self.seq = 0
        self.pending = {}               # seq -> parts received so far
        self.done = {}                  # seq -> Reply, complete but not yet asked for
        self.session = 0
        self.clock_value = 0
        self.hello_reply = None

    def close(self):
        self.sock.close(0)

    # ---- envelopes and raw sending -------------------------------------

    def envelope(self, msg_type, seq=None, **fields):
        """An Envelope for a request, with version 1, this worker's rank and a fresh seq."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        env = self.pb.Envelope(version=PROTOCOL_VERSION, type=msg_type, seq=seq, worker=self.rank)
        for name, value in fields.items():
            if isinstance(value, list):
                getattr(env, name).extend(value)
            elif hasattr(value, "CopyFrom"):
                getattr(env, name).CopyFrom(value)
            else:
                setattr(env, name, value)
        return env

    def send(self, env, frames=()):
        """Sends one message: the envelope, then the raw frames. Returns its seq."""
        self.send_raw([env.SerializeToString()] + list(frames))
        return env.seq

    def send_raw(self, frames):
        self.sock.send_multipart([bytes(f) for f in frames], copy=True)

    # ---- receiving -----------------------------------------------------

    def recv_message(self, timeout=None):
        """The next message as (Envelope, frames); TimeoutError when none comes in time."""
        timeout = self.timeout if timeout is None else timeout
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise TimeoutError("no message from %s within %.1f s" % (self.endpoint, timeout))
        msg = self.sock.recv_multipart(copy=True)
        env = self.pb.Envelope.FromString(msg[0])
        assert env.reply, "a broker message without the reply flag: %s" % env
        return env, msg[1:]

    def _take(self, env, frames):
        parts = self.pending.setdefault(env.seq, [])
        parts.append((env, frames))
        if not env.more:
            del self.pending[env.seq]
            self.done[env.seq] = Reply(parts)

    def poll_reply(self, seq, timeout):
        """The reply to `seq` if it completes within `timeout`, else None."""
        deadline = time.monotonic() + timeout
        while seq not in self.done:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                env, frames = self.recv_message(left)
            except TimeoutError:
                return None
            self._take(env, frames)
        return self.done.pop(seq)

    def reply(self, seq, timeout=None):
        """The whole reply to request `seq` (every part of it), bounded by `timeout`."""
        timeout = self.timeout if timeout is None else timeout
        r = self.poll_reply(seq, timeout)
        if r is None:
            raise TimeoutError("no reply to seq %d from %s within %.1f s" % (seq, self.endpoint, timeout))
        return r

    def any_reply(self, timeout=None):
        """Whichever reply completes first."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from %s within %.1f s" % (self.endpoint, timeout))
            self._take(*self.recv_message(left))
        seq = next(iter(self.done))
        return self.done.pop(seq)

    def ok(self, seq, msg_type=None, timeout=None):
        """The reply to `seq`, raising PsError if it is an ERROR."""
        r = self.reply(seq, timeout)
        if r.env.type == self.pb.ERROR:
            raise PsError(r.env)
        if msg_type is not None:
            assert r.env.type == msg_type, "reply type %d to a request of type %d" % (r.env.type, msg_type)
        return r

    def error(self, seq, timeout=None):
        """The reply to `seq`, which must be an ERROR: returns its envelope."""
        r = self.reply(seq, timeout)
        assert r.env.type == self.pb.ERROR, "expected an ERROR reply to seq %d, got %s" % (seq, r.env)
        return r.env

    # ---- requests: send_* returns the seq, the plain names wait -------

    def send_hello(self, rank=None, world_size=None, weight=0, shard=0, shards=0, group=(),
                   resume_session=0):
        if rank is not None:
            self.rank = rank
        if world_size is not None:
            self.world_size = world_size
        hello = self.pb.Hello(world_size=self.world_size, weight=weight, shard=shard, shards=shards,
                              resume_session=resume_session)
        hello.group.extend(group)
        return self.send(self.envelope(self.pb.HELLO, hello=hello))

    def hello(self, **kw):
        r = self.ok(self.send_hello(**kw), self.pb.HELLO)
        self.hello_reply = r.env
        self.session = r.env.hello.session
        self.clock_value = r.env.clock
        return r.env

    def send_init(self, tensors, optim=None):
        """tensors: {key: values}, or {key: int size} to create without a value."""
        slices, frames = [], []
        for key, value in tensors.items():
            if isinstance(value, int):
                slices.append(self.pb.Slice(key=key, offset=0, count=0, total=value))
            else:
                v = f32(value)
                s, f = slice_tensor(self.pb, key, v, total=len(v))
                slices += s
                frames += f
        fields = {"slices": slices}
        if optim is not None:
            fields["optim"] = optim
        return self.send(self.envelope(self.pb.INIT, **fields), frames)

    def init(self, tensors, optim=None):
        return self.ok(self.send_init(tensors, optim), self.pb.INIT).env

    def send_push(self, grads, clock=None, grad_count=1, clock_after=False):
        """clock_after: the push finishes the clock too (its reply is the CLOCK's)."""
        clock = self.clock_value if clock is None else clock
        slices, frames = [], []
        for key, value in grads.items():
            s, f = slice_tensor(self.pb, key, value)
            slices += s
            frames += f
        env = self.envelope(self.pb.PUSH, clock=clock, grad_count=grad_count, slices=slices,
                            clock_after=clock_after)
        return self.send(env, frames)

    def push(self, grads, clock=None, grad_count=1):
        return self.ok(self.send_push(grads, clock, grad_count), self.pb.PUSH).env

    def send_pull(self, keys, clock=None):
        """keys: a list of names (whole tensors) or of (key, offset, count)."""
        slices = []
        for k in keys:
            if isinstance(k, str):
                slices.append(self.pb.Slice(key=k, offset=0, count=0))
            else:
                slices.append(self.pb.Slice(key=k[0], offset=k[1], count=k[2]))
        clock = self.clock_value if clock is None else clock
        return self.send(self.envelope(self.pb.PULL, clock=clock, slices=slices))

    def pull(self, keys, timeout=None):
        return self.ok(self.send_pull(keys), self.pb.PULL, timeout).tensors()

    def send_clock(self, clock=None):
        clock = self.clock_value if clock is None else clock
        return self.send(self.envelope(self.pb.CLOCK, clock=clock))

    def clock(self, clock=None, timeout=None):
        """CLOCK: waits for the reply and returns the new clock."""
        env = self.ok(self.send_clock(clock), self.pb.CLOCK, timeout).env
        self.clock_value = env.clock
        return env.clock

    def heartbeat(self, session=None, rank=None):
        env = self.envelope(self.pb.HEARTBEAT, session=self.session if session is None else session)
        if rank is not None:
            env.worker = rank
        return self.send(env)

    def send_bye(self):
        return self.send(self.envelope(self.pb.BYE))

    def bye(self):
        return self.ok(self.send_bye(), self.pb.BYE).env

    def send_info(self):
        return self.send(self.envelope(self.pb.INFO))

    def info(self, timeout=None):
        env = self.ok(self.send_info(), self.pb.INFO, timeout).env
        return json.loads(env.info)


def wait_for(condition, timeout=DEFAULT_TIMEOUT, interval=0.02, what="condition"):
    """Polls `condition` until it returns a true value; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


#  ---- hand-written protobuf, for the encodings tests ---------------------

def varint(n):
    """A protobuf base-128 varint (n >= 0; negative int64 as two's complement)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3 | 0) + varint(value)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data
