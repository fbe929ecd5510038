"""Every error code a client can provoke, and the seq of ERROR replies.

Codes 1-14 of PROTOCOL.md's Errors table (15, non-finite, is in
test_consistency.py; 13, shutdown, in test_liveness.py), the rule that an
ERROR to a request whose envelope parsed carries the request's seq (seq 0
only when there is nothing to copy it from), PUSH grad_count checks, INIT of
an existing key with other optimizer settings, and conforming proto3
encodings written by hand (explicit zeros, another field order, unknown
fields, repeated scalars, split sub-messages) that must be answered normally.

usage: /usr/bin/python3 -B -m pytest -q -p no:cacheprovider tests/interop/test_errors.py [-k <test>]
(Debian's python3, which has pytest; psbroker from PSMQ_BUILD_DIR, else build/)
"""

import os
import re

import pytest

from psclient import f32, field_bytes, field_varint

#  ps_pb2's ErrCode values, by PROTOCOL.md's names
MALFORMED, VERSION, TYPE, UNKNOWN_KEY, SIZE, TOO_LARGE, CLOCK, NOT_REGISTERED, RANK, \
    KEY_EXISTS, OPTIM, FULL, SHUTDOWN, GROUP = range(1, 15)


def refused(c, seq, code, *words):
    """The next reply is an ERROR with this code and seq, naming every word.

    The next reply, not the reply paired by seq: an ERROR that lost its seq
    then fails at once instead of after a timeout.
    """
    env = any_error(c)
    assert env.error.code == code, "code %d (%s), %d expected" % (env.error.code, env.error.message, code)
    assert env.seq == seq, "ERROR %d (%s) with seq %d, not the request's %d" % (
        env.error.code, env.error.message, env.seq, seq)
    for word in words:
        assert word in env.error.message, "%r does not name %r" % (env.error.message, word)
    return env


def any_error(c, timeout=None):
    """The next reply, which must be an ERROR: for requests whose seq is lost."""
    r = c.any_reply(timeout)
    assert r.env.type == c.pb.ERROR, "expected an ERROR, got %s" % r.env
    return r.env


#  ---- 1 malformed: seq 0 when there is nothing to take it from ----------

def test_malformed_frame_is_answered_with_seq_0(pb, workers):
    b, (c,) = workers(1)
    c.send_raw([b"\xff\xff\xff"])
    env = any_error(c)
    assert env.error.code == MALFORMED and env.seq == 0
    #  A field with the wrong wire type (seq as length-delimited)
    c.send_raw([field_varint(1, 1) + field_varint(2, pb.INFO) + field_bytes(4, b"xx")])
    env = any_error(c)
    assert env.error.code == MALFORMED and env.seq == 0
    #  The broker goes on serving the connection
    assert c.info()["rejected"] >= 2


def test_empty_envelope_frame(pb, workers):
    """An empty frame parses as an envelope of zeros: version 0, seq 0."""
    b, (c,) = workers(1)
    c.send_raw([b""])
    env = any_error(c)
    assert env.error.code == VERSION and env.seq == 0, env


#  ---- 2 version, 3 type: seq copied (b) ---------------------------------

def test_version(pb, workers):
    b, (c,) = workers(1)
    for version in (0, 2, 1000):
        env = c.envelope(pb.INFO)
        env.version = version
        refused(c, c.send(env), VERSION)


def test_type_a_worker_may_not_send(pb, workers):
    b, (c,) = workers(1)
    refused(c, c.send(c.envelope(pb.ERROR)), TYPE)


def test_unknown_type(pb, workers):
    b, (c,) = workers(1)
    for msg_type in (pb.MSG_NONE, 10, 99):
        refused(c, c.send(c.envelope(msg_type)), TYPE)


#  ---- 4 unknown-key ------------------------------------------------------

def test_unknown_key(pb, workers):
    b, (c,) = workers(1)
    c.init({"w": [1]})
    refused(c, c.send_push({"nobody": [1]}), UNKNOWN_KEY, "nobody")
    refused(c, c.send_pull(["nobody"]), UNKNOWN_KEY, "nobody")
    refused(c, c.send_push({"w": [1], "nobody": [1]}), UNKNOWN_KEY, "nobody")


#  ---- 5 size -------------------------------------------------------------

def test_size_frames_do_not_match_slices(pb, workers):
    b, (c,) = workers(1)
    c.init({"w": [1, 2, 3, 4]})
    one = [pb.Slice(key="w", offset=0, count=4)]
    push = lambda slices: c.envelope(pb.PUSH, clock=0, grad_count=1, slices=slices)
    #  a frame too short, a frame missing, a frame too many
    refused(c, c.send(push(one), [f32([1, 1, 1]).tobytes()]), SIZE)
    refused(c, c.send(push(one)), SIZE)
    refused(c, c.send(push(one), [f32([1, 1, 1, 1]).tobytes(), f32([1]).tobytes()]), SIZE)
    #  INIT whose value frame is missing
    init = c.envelope(pb.INIT, slices=[pb.Slice(key="v", offset=0, count=2, total=2)])
    refused(c, c.send(init), SIZE)
    #  Nothing was applied
    c.clock()
    assert c.pull(["w"])["w"].tolist() == [1, 2, 3, 4]


def test_size_slices_do_not_fit_the_key(pb, workers):
    b, (c,) = workers(1)
    c.init({"w": [1, 2, 3, 4]})
    #  A push must cover each key exactly, in order
    refused(c, c.send_push({"w": [1, 1, 1]}), SIZE, "w")
    refused(c, c.send_push({"w": [1, 1, 1, 1, 1]}), SIZE, "w")
    halves = [pb.Slice(key="w", offset=2, count=2), pb.Slice(key="w", offset=0, count=2)]
    refused(c, c.send(c.envelope(pb.PUSH, clock=0, grad_count=1, slices=halves),
                      [f32([1, 1]).tobytes()] * 2), SIZE)
    #  Pulls beyond the key
    refused(c, c.send_pull([("w", 2, 5)]), SIZE)
    refused(c, c.send_pull([("w", 5, 0)]), SIZE)
    #  The two halves in order are a good push
    halves.reverse()
    c.ok(c.send(c.envelope(pb.PUSH, clock=0, grad_count=1, slices=halves),
                [f32([1, 1]).tobytes()] * 2), pb.PUSH)


#  ---- 6 too-large --------------------------------------------------------

def test_too_large(pb, workers):
    b, (c,) = workers(1)
    c.init({"w": [1]})
    #  More than 8192 slices in one message
    refused(c, c.send(c.envelope(pb.PULL, slices=[pb.Slice(key="w", offset=0, count=1)] * 8193)), TOO_LARGE)
    #  A tensor of more than 2^32 elements
    refused(c, c.send_init({"huge": (1 << 32) + 1}), TOO_LARGE, "huge")
    #  grad_count over 4096 workers
    refused(c, c.send_push({"w": [1]}, grad_count=5000), TOO_LARGE)


#  ---- 7 clock ------------------------------------------------------------

def test_clock(pb, workers):
    b, (c,) = workers(1)
    c.init({"w": [1]})
    refused(c, c.send_clock(1), CLOCK)
    refused(c, c.send_push({"w": [1]}, clock=1), CLOCK)
    assert c.clock(0) == 1
    refused(c, c.send_clock(0), CLOCK)              # backwards
    refused(c, c.send_push({"w": [1]}, clock=0), CLOCK)
    assert c.clock(1) == 2


#  ---- 8 not-registered ---------------------------------------------------

def test_not_registered(pb, broker, client):
    b = broker("--workers", 1)
    c = client(b)
    refused(c, c.send_init({"w": [1]}), NOT_REGISTERED)
    refused(c, c.send_push({"w": [1]}), NOT_REGISTERED)
    refused(c, c.send_pull(["w"]), NOT_REGISTERED)
    refused(c, c.send_clock(0), NOT_REGISTERED)
    refused(c, c.send_bye(), NOT_REGISTERED)
    #  HELLO, INFO and HEARTBEAT need no HELLO
    c.heartbeat(session=12345)
    c.info()
    assert not c.done and not c.pending, "a reply to a HEARTBEAT"
    c.hello()
    c.init({"w": [1]})


#  ---- 9 rank, and PUSH grad_count (h) -------------------------------------

def test_rank(pb, broker, client):
    b = broker("--workers", 2)
    c = client(b)
    refused(c, c.send_hello(rank=2, world_size=2), RANK)
    refused(c, c.send_hello(rank=0, world_size=3), RANK)
    refused(c, c.send_hello(rank=1, world_size=2, weight=2), RANK)     # ranks 1..2
    refused(c, c.send_hello(rank=0, world_size=1), RANK)
    assert c.hello(rank=0, world_size=2, weight=2).hello.live == 2


def test_live_rank_needs_its_session(pb, broker, client):
    """A HELLO for a rank live on another connection: ERROR rank, unless it
    shows that connection's session (the same worker coming back)."""
    b = broker("--workers", 2)
    holder = client(b, rank=0, world_size=2)
    holder.hello(weight=2)
    other = client(b, rank=1, world_size=2)
    refused(other, other.send_hello(), RANK, "rank 1 is live on another connection")
    refused(other, other.send_hello(rank=0, weight=2), RANK, "rank 0 is live")
    refused(other, other.send_hello(rank=1, resume_session=holder.session ^ 1), RANK, "shows another")
    assert other.hello(rank=1, resume_session=holder.session).hello.session != holder.session


def test_push_grad_count_zero(pb, workers):
    """(h) grad_count 0 is refused with ERROR rank naming grad_count."""
    b, (c,) = workers(1)
    c.init({"w": [1]})
    refused(c, c.send_push({"w": [1]}, grad_count=0), RANK, "grad_count")
    c.clock()
    assert c.pull(["w"])["w"].tolist() == [1]


def test_push_grad_count_over_weight(pb, broker, client):
    """(h) grad_count larger than the ranks the connection stands for."""
    b = broker("--workers", 4, "--staleness", -1)
    one = client(b, rank=0, world_size=4)
    one.hello()                                     # weight 0 means 1
    one.init({"w": [1]})
    refused(one, one.send_push({"w": [1]}, grad_count=2), RANK, "grad_count")
    two = client(b, rank=2, world_size=4)
    two.hello(weight=2)
    two.push({"w": [1]}, grad_count=2)
    two.push({"w": [1]}, grad_count=1)
    refused(two, two.send_push({"w": [1]}, grad_count=3), RANK, "grad_count")


#  ---- 10 key-exists (j) --------------------------------------------------

def test_key_exists_with_another_size(pb, workers):
    b, (c,) = workers(1)
    c.init({"w": [1, 2, 3]})
    refused(c, c.send_init({"w": [1, 2]}), KEY_EXISTS, "w")
    refused(c, c.send_init({"w": 4}), KEY_EXISTS, "w")
    c.init({"w": 3})
    assert c.pull(["w"])["w"].tolist() == [1, 2, 3]


def test_key_exists_with_other_optimizer_settings(pb, workers):
    """(j) same size, other optimizer settings: refused, naming what differs."""
    b, (c,) = workers(1)
    sgd = pb.Optim(kind=pb.OPT_SGD, lr=0.1)
    c.init({"w": [1, 2]}, sgd)
    c.init({"w": [1, 2]}, pb.Optim(kind=pb.OPT_SGD, lr=0.1))       # identical: accepted
    env = refused(c, c.send_init({"w": [1, 2]}, pb.Optim(kind=pb.OPT_SGD, lr=0.2)), KEY_EXISTS, "w")
    assert "lr" in env.error.message or "learning rate" in env.error.message, env.error.message
    env = refused(c, c.send_init({"w": [1, 2]}, pb.Optim(kind=pb.OPT_ADAM, lr=0.1)), KEY_EXISTS, "w")
    assert any(w in env.error.message for w in ("kind", "optimizer", "adam", "sgd")), env.error.message
    env = refused(c, c.send_init({"w": [1, 2]}, pb.Optim(kind=pb.OPT_SGD, lr=0.1, decay_steps=10)),
                  KEY_EXISTS, "w")
    assert "decay" in env.error.message, env.error.message
    c.init({"w": [1, 2]}, sgd)


#  ---- 11 optim -----------------------------------------------------------

def test_optim(pb, workers):
    b, (c,) = workers(1)
    bad = [pb.Optim(kind=pb.OPT_SGD, lr=-1), pb.Optim(kind=pb.OPT_SGD, lr=float("nan")),
           pb.Optim(kind=pb.OPT_SGD, lr=float("inf")), pb.Optim(kind=9, lr=0.1),
           pb.Optim(kind=pb.OPT_MOMENTUM, lr=0.1, momentum=2)]
    for i, optim in enumerate(bad):
        refused(c, c.send_init({"o%d" % i: [1]}, optim), OPTIM)
    for kind in (pb.OPT_DEFAULT, pb.OPT_SGD, pb.OPT_MOMENTUM, pb.OPT_ADAGRAD, pb.OPT_ADAM):
        c.init({"k%d" % kind: [1]}, pb.Optim(kind=kind, lr=0.01))


#  ---- 12 full -------------------------------------------------------------

def test_full_store(pb, workers):
    """A tensor of 2^32 elements is within the size limit, not within 16 GB of store."""
    b, (c,) = workers(1)
    env = c.envelope(pb.INIT, slices=[pb.Slice(key="big", offset=0, count=0, total=1 << 32)])
    refused(c, c.send(env), FULL)


def test_full_parked_requests(pb, broker, client):
    """64 requests parked per worker: the next one is refused."""
    b = broker("--workers", 2)
    c = client(b, rank=0, world_size=2)             # rank 1 never says HELLO
    c.hello()
    c.init({"w": [1]})
    c.send_clock(0)                                 # parked: rank 1 is at 0
    pulls = [c.send_pull(["w"]) for _ in range(64)]
    #  The CLOCK and 63 pulls park; the last pull finds no room
    refused(c, pulls[-1], FULL)
    for seq in pulls[:-1]:
        assert c.poll_reply(seq, 0) is None


#  ---- 14 group -------------------------------------------------------------

def test_group(pb, broker, client):
    b = broker("--workers", 1)
    c = client(b)
    refused(c, c.send_hello(shard=1, shards=2, group=["tcp://a:1", "tcp://b:1"]), GROUP)
    refused(c, c.send_hello(shard=0, shards=3), GROUP)
    c.hello(shard=0, shards=1)
    g = broker("--workers", 1, "--shard", 1, "--shards", 2)
    d = client(g)
    refused(d, d.send_hello(shard=0, shards=2), GROUP)
    h = d.hello(shard=1, shards=2, group=["tcp://a:1", "tcp://b:1"]).hello
    assert (h.shard, h.shards) == (1, 2)
    assert d.info()["group"] == ["tcp://a:1", "tcp://b:1"]


#  ---- (b) bad key names and dtypes: refused with the request's seq --------

@pytest.mark.parametrize("key, code", [("", MALFORMED), ("k" * 201, TOO_LARGE), ("a\tb", MALFORMED),
                                       ("a\x7fb", MALFORMED), ("caf\u00e9", MALFORMED), ("a\x01", MALFORMED)],
                         ids=["empty", "201-bytes", "tab", "del", "non-ascii", "control"])
def test_bad_key_name(pb, key, code, workers):
    b, (c,) = workers(1)
    c.init({"w": [1]})
    for seq in (c.send_init({key: [1]}), c.send_pull([key])):
        env = refused_any(c, seq)
        assert env.error.code == code, env


def test_key_of_200_bytes(pb, workers):
    b, (c,) = workers(1)
    key = "k" * 200
    c.init({key: [1]})
    assert c.pull([key])[key].tolist() == [1]


def test_bad_dtype(pb, workers):
    b, (c,) = workers(1)
    c.init({"w": [1]})
    env = c.envelope(pb.PUSH, clock=0, grad_count=1, slices=[pb.Slice(key="w", offset=0, count=1, dtype=3)])
    env = refused_any(c, c.send(env, [f32([1]).tobytes()]))
    assert env.error.code == MALFORMED and "dtype 3" in env.error.message, env


def refused_any(c, seq):
    """An ERROR reply to seq, whatever its code; it must carry seq."""
    env = c.any_reply().env
    assert env.type == c.pb.ERROR, "expected an ERROR, got %s" % env
    assert env.seq == seq, "ERROR %d (%s) with seq %d, not the request's %d" % (
        env.error.code, env.error.message, env.seq, seq)
    return env


#  ---- (i) conforming proto3 encodings, written by hand --------------------

def reply_to(c, raw, frames=()):
    c.send_raw([raw] + list(frames))
    return c.any_reply().env


def test_explicit_zero_fields(pb, broker, client):
    """(i) fields holding their default value, written out, are allowed."""
    b = broker("--workers", 1)
    c = client(b)
    hello = field_varint(1, 1) + field_varint(2, 0) + field_varint(3, 0) + field_varint(8, 0) \
        + field_varint(9, 0) + field_varint(10, 0)
    env = reply_to(c, field_varint(1, 1) + field_varint(2, pb.HELLO) + field_varint(3, 0)
                   + field_varint(4, 11) + field_varint(5, 0) + field_varint(6, 0) + field_varint(8, 0)
                   + field_varint(9, 0) + field_bytes(10, hello) + field_varint(14, 0) + field_varint(15, 0))
    assert (env.type, env.seq) == (pb.HELLO, 11), env
    c.init({"w": [1, 2]})
    slice_ = field_bytes(1, b"w") + field_varint(2, 0) + field_varint(3, 0) + field_varint(4, 0) + field_varint(5, 0)
    env = reply_to(c, field_varint(1, 1) + field_varint(2, pb.PULL) + field_varint(4, 12) + field_varint(6, 0)
                   + field_bytes(7, slice_))
    assert (env.type, env.seq) == (pb.PULL, 12), env


def test_fields_in_another_order(pb, broker, client):
    """(i) fields may come in any order."""
    b = broker("--workers", 1, "--lr", 1)
    c = client(b)
    hello = field_varint(8, 1) + field_varint(1, 1)
    env = reply_to(c, field_bytes(10, hello) + field_varint(4, 21) + field_varint(2, pb.HELLO) + field_varint(1, 1))
    assert (env.type, env.seq) == (pb.HELLO, 21), env
    c.init({"w": [1, 2]})
    slice_ = field_varint(3, 2) + field_varint(2, 0) + field_bytes(1, b"w")
    env = reply_to(c, field_varint(8, 1) + field_bytes(7, slice_) + field_varint(4, 22) + field_varint(2, pb.PUSH)
                   + field_varint(1, 1), [f32([1, 1]).tobytes()])
    assert (env.type, env.seq) == (pb.PUSH, 22), env
    c.clock()
    assert c.pull(["w"])["w"].tolist() == [0, 1]


def test_unknown_fields_are_skipped(pb, broker, client):
    """(i) a field this schema does not know (a newer client's) is skipped."""
    b = broker("--workers", 1)
    c = client(b)
    env = reply_to(c, field_varint(1, 1) + field_varint(2, pb.INFO) + field_varint(4, 31)
                   + field_varint(100, 7) + field_bytes(101, b"future"))
    assert (env.type, env.seq) == (pb.INFO, 31), env


def test_repeated_scalar_last_one_wins(pb, broker, client):
    """(i) a scalar field written twice: the last value counts."""
    b = broker("--workers", 1)
    c = client(b)
    env = reply_to(c, field_varint(1, 1) + field_varint(2, pb.INFO) + field_varint(4, 1) + field_varint(4, 41))
    assert (env.type, env.seq) == (pb.INFO, 41), env


def test_split_sub_message_is_refused_by_name(pb, broker, client):
    """(i) a sub-message written in two pieces (which proto3 would merge and
    protobuf-c would not) is refused clearly, with the seq, as PROTOCOL.md
    says: no encoder writes it, only a concatenation of messages does."""
    b = broker("--workers", 2)
    c = client(b, rank=1, world_size=2)
    env = reply_to(c, field_varint(1, 1) + field_varint(2, pb.HELLO) + field_varint(4, 51) + field_varint(5, 1)
                   + field_bytes(10, field_varint(1, 2)) + field_bytes(10, field_varint(8, 1)))
    assert (env.type, env.seq, env.error.code) == (pb.ERROR, 51, MALFORMED), env
    assert "pieces" in env.error.message
    #  The same HELLO in one piece is welcome
    env = reply_to(c, field_varint(1, 1) + field_varint(2, pb.HELLO) + field_varint(4, 52) + field_varint(5, 1)
                   + field_bytes(10, field_varint(1, 2) + field_varint(8, 1)))
    assert (env.type, env.seq) == (pb.HELLO, 52), env
    assert list(env.hello.clocks) == [-1, 0]


def test_key_with_nul_byte(pb, workers):
    """(i) a NUL inside a key is refused (it would cut the name short), with the seq."""
    b, (c,) = workers(1)
    c.init({"a": [1]})
    for seq in (c.send_init({"a\x00b": [1]}), c.send_pull(["a\x00b"])):
        env = refused_any(c, seq)
        assert env.error.code == MALFORMED and "NUL" in env.error.message, env
    #  by hand too
    slice_ = field_bytes(1, b"a\x00") + field_varint(3, 1)
    seq = 61
    env = reply_to(c, field_varint(1, 1) + field_varint(2, pb.PULL) + field_varint(4, seq) + field_bytes(7, slice_))
    assert env.type == pb.ERROR and env.error.code == MALFORMED and env.seq == seq, env


#  ---- PROTOCOL.md and ps.proto name the same codes ------------------------

def protocol_table(source_dir, heading):
    """The rows `| value | name | ...` of a PROTOCOL.md table under a heading."""
    with open(os.path.join(source_dir, "proto", "PROTOCOL.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## " + heading, 1)[1].split("\n## ", 1)[0]
    return [(int(m.group(1)), m.group(2)) for m in re.finditer(r"^\| *(\d+) *\| *([\w-]+) *\|", section, re.M)]


def test_error_table_matches_ps_proto(pb, source_dir):
    """Every ErrCode of ps.proto is in PROTOCOL.md's Errors table under its number."""
    table = dict(protocol_table(source_dir, "Errors"))
    assert table, "no Errors table in PROTOCOL.md"
    for value, name in table.items():
        names = {"ERR_" + name.upper().replace("-", "_"), "ERR_" + name.upper().replace("-", "")}
        assert pb.ErrCode.Name(value) in names, "PROTOCOL.md: %d %s; ps.proto: %s" % (
            value, name, pb.ErrCode.Name(value))
    missing = [n for n in pb.ErrCode.keys() if pb.ErrCode.Value(n) not in table and n != "ERR_NONE"]
    assert not missing, "ps.proto codes missing in PROTOCOL.md's Errors table: %s" % missing
