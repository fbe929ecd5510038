"""Every message type, as PROTOCOL.md's table describes it.

HELLO (reply fields, weight, incarnation), INIT, PUSH, PULL (ranges, "to the
end", several keys), CLOCK, HEARTBEAT (no reply, from a second socket with
the session token), BYE, INFO (JSON, before HELLO too), min_clock on every
reply (INIT included), and psbroker --port 0.

usage: /usr/bin/python3 -B -m pytest -q -p no:cacheprovider tests/interop/test_messages.py [-k <test>]
(Debian's python3, which has pytest; psbroker from PSMQ_BUILD_DIR, else build/)
"""

import json
import math
import os
import re
import struct

import numpy as np

from psclient import f32, wait_for


def test_hello_reply(pb, broker, client):
    b = broker("--workers", 3, "--staleness", 2, "--heartbeat-ms", 250, "--timeout-ms", 5000)
    c = client(b, rank=1, world_size=3)
    seq = c.send_hello()
    env = c.ok(seq, pb.HELLO).env
    assert env.reply and env.version == 1 and env.seq == seq
    h = env.hello
    assert h.staleness == 2
    assert h.session != 0
    assert h.heartbeat_ms == 250
    assert h.timeout_ms == 5000
    assert list(h.clocks) == [-1, 0, -1]        # -1: absent
    assert h.live == 1
    assert h.shard == 0 and h.shards in (0, 1)
    assert env.clock == 0 and env.min_clock == 0

    #  A second worker sees the first one's clock
    d = client(b, rank=0, world_size=3)
    h = d.hello().hello
    assert list(h.clocks) == [0, 0, -1] and h.live == 2
    assert h.session != env.hello.session


def test_hello_staleness_modes(pb, broker, client):
    for staleness in (0, 5, -1):
        b = broker("--staleness", staleness)
        assert client(b).hello().hello.staleness == staleness


def test_hello_weight_stands_for_several_ranks(pb, broker, client):
    b = broker("--workers", 4, "--staleness", -1, "--lr", 0.5)
    c = client(b, rank=1, world_size=4)
    h = c.hello(weight=2).hello
    assert list(h.clocks) == [-1, 0, 0, -1]
    assert h.live == 2
    #  The connection pushes the sum of two gradients, counted as two: one
    #  step with their mean
    c.init({"w": [0.0]})
    c.push({"w": [3.0]}, grad_count=2)
    assert np.allclose(c.pull(["w"])["w"], [-0.5 * 1.5])


def test_hello_incarnation(pb, broker, client):
    """(k) the HELLO reply's incarnation: nonzero, one value per broker process."""
    b = broker("--workers", 2)
    first = client(b, rank=0, world_size=2).hello().hello.incarnation
    second = client(b, rank=1, world_size=2).hello().hello.incarnation
    assert first != 0, "HELLO reply without hello.incarnation"
    assert second == first
    b.stop()
    again = broker("--workers", 2)
    third = client(again, rank=0, world_size=2).hello().hello.incarnation
    assert third != 0 and third != first


def test_init_push_pull_clock(pb, workers):
    b, (c,) = workers(1, "--lr", 0.5)
    env = c.init({"w": [1, 2, 3, 4], "b": [10]})
    assert env.type == pb.INIT and len(env.slices) == 0
    got = c.pull(["w", "b"])
    assert got["w"].tolist() == [1, 2, 3, 4] and got["b"].tolist() == [10]

    env = c.push({"w": [2, 2, 2, 2], "b": [-4]})
    assert env.type == pb.PUSH and env.clock == 0
    #  BSP: the clock's gradients are applied when the slowest clock passes it
    assert c.clock(0) == 1
    got = c.pull(["w", "b"])
    assert got["w"].tolist() == [0, 1, 2, 3] and got["b"].tolist() == [12]

    #  A push for the next clock, another step
    c.push({"w": [1, 1, 1, 1], "b": [0]}, clock=1)
    assert c.clock(1) == 2
    assert c.pull(["w"])["w"].tolist() == [-0.5, 0.5, 1.5, 2.5]


def test_init_without_value_is_zero(pb, workers):
    b, (c,) = workers(1)
    c.init({"z": 5})
    assert c.pull(["z"])["z"].tolist() == [0] * 5


def test_pull_ranges(pb, workers):
    b, (c,) = workers(1)
    c.init({"w": list(range(10)), "v": [7, 8]})
    r = c.ok(c.send_pull([("w", 3, 4)]), pb.PULL)
    (s,) = r.env.slices
    assert (s.key, s.offset, s.count, s.total) == ("w", 3, 4, 10)
    assert np.frombuffer(r.parts[0][1][0], "<f4").tolist() == [3, 4, 5, 6]
    #  count 0: to the end
    r = c.ok(c.send_pull([("w", 6, 0)]), pb.PULL)
    (s,) = r.env.slices
    assert (s.offset, s.count, s.total) == (6, 4, 10)
    assert np.frombuffer(r.parts[0][1][0], "<f4").tolist() == [6, 7, 8, 9]
    #  Several keys and ranges in one request, in request order
    r = c.ok(c.send_pull([("v", 0, 0), ("w", 0, 2), ("w", 9, 1)]), pb.PULL)
    assert [(s.key, s.offset, s.count) for s in r.env.slices] == [("v", 0, 2), ("w", 0, 2), ("w", 9, 1)]
    assert [np.frombuffer(f, "<f4").tolist() for f in r.parts[0][1]] == [[7, 8], [0, 1], [9]]


def test_init_is_idempotent_for_the_same_size(pb, workers):
    b, (c, d) = workers(2)
    c.init({"w": [1, 2, 3]})
    d.init({"w": [1, 2, 3]})
    assert d.pull(["w"])["w"].tolist() == [1, 2, 3]


def test_heartbeat_has_no_reply_and_may_come_from_another_socket(pb, client, workers):
    b, (c,) = workers(1)
    other = client(b)                   # never says HELLO
    other.heartbeat(session=c.session, rank=0)
    other.heartbeat(session=c.session, rank=0)
    c.heartbeat()
    #  Nothing comes back for a heartbeat: the next message on each socket
    #  is the reply to its INFO, and the heartbeats were counted
    assert other.info()["messages_in"]["heartbeat"] >= 2
    c.info()
    assert not other.done and not other.pending and not c.done and not c.pending
    #  Counted by the broker: the socket's own one arrives in order, the
    #  other socket's in any order
    wait_for(lambda: c.info()["messages_in"]["heartbeat"] == 3, what="3 heartbeats counted")
    assert c.info()["workers"][0]["state"] == "live"


def test_bye_leaves_the_job(pb, workers):
    b, (c, d) = workers(2)
    #  Rank 0's CLOCK waits at the barrier for rank 1 ...
    seq = c.send_clock(0)
    wait_for(lambda: c.info()["parked_now"] == 1, what="rank 0's CLOCK parked")
    assert c.poll_reply(seq, 0) is None
    #  ... until rank 1 leaves: then it counts as infinitely far ahead
    env = d.bye()
    assert env.type == pb.BYE and env.clock == 0
    assert c.ok(seq, pb.CLOCK).env.clock == 1
    info = c.info()
    assert info["live"] == 1 and info["workers"][1]["state"] != "live"
    #  and the job goes on without it
    assert c.clock(1) == 2


def test_info_is_json_and_needs_no_hello(pb, broker, client):
    b = broker("--workers", 2, "--staleness", 3)
    c = client(b)
    seq = c.send_info()
    env = c.ok(seq, pb.INFO).env
    assert env.seq == seq
    info = json.loads(env.info)
    assert isinstance(info, dict)
    assert info["world"] == 2 and info["staleness"] == 3 and info["live"] == 0
    assert info["protocol"] == 1
    d = client(b, rank=1, world_size=2)
    d.hello()
    info = c.info()
    assert info["live"] == 1 and info["clocks"] == [-1, 0]


def test_every_reply_carries_min_clock(pb, broker, client):
    b = broker("--workers", 1)
    c = client(b)
    assert c.hello().min_clock == 0
    c.init({"w": [1]})
    for clock in range(3):
        assert c.clock() == clock + 1
    #  The slowest (and only) live clock is 3 now
    assert c.push({"w": [1]}, clock=3).min_clock == 3
    assert c.ok(c.send_pull(["w"]), pb.PULL).env.min_clock == 3
    assert c.ok(c.send_info(), pb.INFO).env.min_clock == 3
    assert c.ok(c.send_clock(3), pb.CLOCK).env.min_clock == 4


def test_error_reply_carries_min_clock(pb, workers):
    """PROTOCOL.md: every reply carries min_clock, ERROR replies too."""
    b, (c,) = workers(1)
    for clock in range(3):
        c.clock()
    env = c.error(c.send_clock(7))
    assert env.error.code == pb.ERR_CLOCK, env
    assert env.min_clock == 3


def test_init_reply_carries_min_clock(pb, workers):
    """(d) INIT replies carry min_clock like every reply."""
    b, (c,) = workers(1)
    for clock in range(2):
        c.clock()
    env = c.init({"late": [1, 2]})
    assert env.min_clock == 2


def tcp_ports_in_use():
    """Local TCP ports of every socket in this network namespace (/proc/net/tcp*)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    ports.add(int(line.split()[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def test_port_zero_lets_the_kernel_choose(pb, broker, client):
    """(l) --port 0: a port the kernel chooses, not the lowest free one from 49152 up.

    A broker whose port is the lowest free one from 49152 (every port
    between 49152 and it in use) looks like a scan; the kernel's choice
    almost never does. Three brokers in a row, each stopped before the next
    starts: not all three may look like a scan.
    """
    looks_like_a_scan = []
    for _ in range(3):
        b = broker("--port", 0, "--bind", "127.0.0.1", endpoint=None)
        assert b.port != 0
        assert client(b).info()["world"] == 1
        in_use = tcp_ports_in_use()
        looks_like_a_scan.append(b.port >= 49152 and all(p in in_use for p in range(49152, b.port)))
        b.stop()
    assert not all(looks_like_a_scan), "three brokers with --port 0 took the lowest free port from 49152"


def test_float32_bytes_are_little_endian(pb, workers):
    """Tensor frames are raw little-endian float32, written without numpy's help."""
    b, (c,) = workers(1)
    values = [1.5, -2.25, 1e-3, 3.4e38]
    frame = struct.pack("<4f", *values)
    c.ok(c.send(c.envelope(pb.INIT, slices=[pb.Slice(key="le", offset=0, count=4, total=4)]), [frame]), pb.INIT)
    r = c.ok(c.send_pull(["le"]), pb.PULL)
    got = struct.unpack("<4f", r.parts[0][1][0])
    assert all(math.isclose(x, y, rel_tol=1e-7) for x, y in zip(got, f32(values).tolist()))


def test_message_table_matches_ps_proto(pb, source_dir):
    """PROTOCOL.md's Messages table has a row for every MsgType of ps.proto."""
    with open(os.path.join(source_dir, "proto", "PROTOCOL.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Messages", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| *([A-Z]+) *\|", section, re.M)
    assert set(rows) == set(pb.MsgType.keys()) - {"MSG_NONE"}, rows
