"""Liveness and shutdown.

Eviction of a silent worker (a BSP barrier it held passes; its requests are
refused as not registered), HEARTBEAT from a second socket with the session
token keeping a worker alive, rejoining with HELLO at the slowest live
clock, INFO from a registered worker keeping it alive, and the ERROR
shutdown that parked requests get, each with its own seq, when the broker
stops on SIGTERM.

usage: /usr/bin/python3 -B -m pytest -q -p no:cacheprovider tests/interop/test_liveness.py [-k <test>]
(Debian's python3, which has pytest; psbroker from PSMQ_BUILD_DIR, else build/)
"""

import time

from psclient import wait_for

NOT_REGISTERED = 8
SHUTDOWN = 13

HEARTBEAT_MS = 100
TIMEOUT_MS = 2000          # 20 heartbeats: margin for a loaded machine
EVICTION_BOUND = 30.0      # seconds a test waits for an eviction at most


def state(info, rank):
    return info["workers"][rank]["state"]


def test_eviction_and_rejoin(pb, broker, client):
    b = broker("--workers", 2, "--staleness", 0, "--heartbeat-ms", HEARTBEAT_MS, "--timeout-ms", TIMEOUT_MS)
    w0 = client(b, rank=0, world_size=2)
    w1 = client(b, rank=1, world_size=2)
    h = w0.hello().hello
    assert (h.heartbeat_ms, h.timeout_ms) == (HEARTBEAT_MS, TIMEOUT_MS)
    w1.hello()
    w0.init({"w": [0]})

    #  Rank 0 waits at the barrier for rank 1, which falls silent. Rank 0's
    #  own socket sends nothing more: only its heartbeats, from another
    #  socket that never said HELLO, keep it alive.
    keeper = client(b)
    seq = w0.send_clock(0)
    deadline = time.monotonic() + EVICTION_BOUND
    reply = None
    while reply is None:
        assert time.monotonic() < deadline, "rank 1 not evicted within %.0f s" % EVICTION_BOUND
        keeper.heartbeat(session=w0.session, rank=0)
        reply = w0.poll_reply(seq, HEARTBEAT_MS / 1000)
    assert reply.env.type == pb.CLOCK and reply.env.clock == 1, reply.env
    info = keeper.info()
    assert state(info, 1) != "live" and state(info, 0) == "live", info["workers"]
    assert info["evicted"] == 1 and info["live"] == 1

    #  The evicted rank's requests are refused until it says HELLO again
    env = w1.error(w1.send_push({"w": [1]}, clock=0))
    assert env.error.code == NOT_REGISTERED
    #  Rank 0 goes on alone (an evicted rank counts as infinitely far ahead)
    w0.clock_value = 1
    assert w0.clock() == 2
    assert w0.clock() == 3

    #  Rank 1 comes back at the slowest live clock
    env = w1.hello()
    assert env.clock == 3, env
    assert list(env.hello.clocks) == [3, 3] and env.hello.live == 2
    #  and the barrier holds for it again
    seq = w0.send_clock(3)
    wait_for(lambda: keeper.info()["parked_now"] == 1, what="rank 0's CLOCK parked")
    assert w0.poll_reply(seq, 0) is None
    w1.push({"w": [1]}, clock=3)
    assert w1.clock(3) == 4
    assert w0.ok(seq, pb.CLOCK).env.clock == 4


def test_info_keeps_a_registered_worker_alive(pb, workers):
    """(e) a worker that only sends INFO, more often than the timeout, is not evicted."""
    b, (w0, w1) = workers(2, "--staleness", 0, "--heartbeat-ms", HEARTBEAT_MS, "--timeout-ms", TIMEOUT_MS)
    #  Both fall silent at once, but for rank 0's INFO every heartbeat. Had
    #  INFO not counted, rank 0 would go with rank 1 (same sweep or the
    #  next): after rank 1's eviction, watch for half a timeout more.
    deadline = time.monotonic() + EVICTION_BOUND
    evicted_at = None
    while evicted_at is None or time.monotonic() < evicted_at + TIMEOUT_MS / 2000:
        assert time.monotonic() < deadline, "rank 1 not evicted within %.0f s" % EVICTION_BOUND
        info = w0.info()
        assert state(info, 0) == "live", "rank 0, sending INFO every %d ms, was evicted: %s" % (
            HEARTBEAT_MS, info["workers"])
        if evicted_at is None and state(info, 1) != "live":
            evicted_at = time.monotonic()
        time.sleep(HEARTBEAT_MS / 1000)
    #  Rank 0 is still registered: its CLOCK is answered
    assert w0.clock(0) == 1


def test_shutdown_answers_parked_requests(pb, workers):
    """(c) SIGTERM: a CLOCK at the barrier and a parked PULL get ERROR shutdown with their own seq."""
    b, (w0, w1) = workers(2, "--staleness", 0)
    w0.init({"w": [1]})
    sclock = w0.send_clock(0)
    spull = w0.send_pull(["w"], clock=1)
    wait_for(lambda: w1.info()["parked_now"] == 2, what="2 parked requests")
    b.terminate()
    replies = [w0.any_reply().env for _ in range(2)]
    for env in replies:
        assert env.type == pb.ERROR and env.error.code == SHUTDOWN, env
    assert sorted(env.seq for env in replies) == sorted([sclock, spull]), \
        "ERROR shutdown with seq %s, the parked requests had %d and %d" % (
            [env.seq for env in replies], sclock, spull)
    assert b.stop() == 0
