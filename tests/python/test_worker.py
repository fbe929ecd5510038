"""psmq.Worker against a real psbroker: every call's round trip, the values
the broker's SGD computes, the async calls and their tickets, the arrays
used without a copy, and every error path the binding has."""

import gc
import logging
import subprocess
import threading
import time
import weakref

import numpy as np
import pytest

import psmq
import psmq.worker

from conftest import PSKEYS

#  Each test's calls answer within milliseconds; 5 s leaves room for a
#  loaded machine without letting a lost reply stall the suite for long
TIMEOUT_MS = 5000


def connect(b, rank=0, workers=1, **options):
    options.setdefault("timeout_ms", TIMEOUT_MS)
    return psmq.Worker(b.endpoint, rank, workers, **options)


def test_round_trip_follows_sgd(broker):
    b = broker("--workers", 1)
    with connect(b) as worker:
        assert (worker.rank, worker.world_size, worker.shards) == (0, 1, 1)
        assert worker.staleness == 0 and worker.current_clock == 0
        w = np.arange(12, dtype=np.float32).reshape(3, 4)
        worker.init("w", w, optimizer="sgd", lr=0.25)
        assert worker.keys == {"w": (3, 4)}
        expected = w.copy()
        for step in range(3):
            grad = np.full((3, 4), step + 1, dtype=np.float32) * np.linspace(
                -1, 1, 12, dtype=np.float32).reshape(3, 4)
            worker.push("w", grad)
            worker.clock()
            expected -= np.float32(0.25) * grad
            pulled = worker.pull("w")
            assert pulled.shape == (3, 4) and pulled.dtype == np.float32
            np.testing.assert_allclose(pulled, expected, rtol=1e-6, atol=1e-6)
            assert worker.current_clock == step + 1
        #  The initial values were copied at the call: w is untouched
        np.testing.assert_array_equal(w, np.arange(12, dtype=np.float32).reshape(3, 4))


def test_wire_dtypes_round_within_their_bounds(broker):
    b = broker("--workers", 1)
    with connect(b) as worker:
        w = np.linspace(-3, 3, 1001, dtype=np.float32)
        worker.init("b", w, optimizer="sgd", lr=0.5, wire_dtype="bf16")
        worker.init("h", w, optimizer="sgd", lr=0.5, wire_dtype="f16")
        grad = np.cos(np.arange(1001, dtype=np.float32))
        worker.push({"b": grad, "h": grad})
        worker.clock()
        expected = w - np.float32(0.5) * grad
        scale = np.abs(w) + 0.5 * np.abs(grad) + np.abs(expected)
        for key, bound in (("b", 2.0 ** -8), ("h", 2.0 ** -11)):
            pulled = worker.pull(key)
            assert pulled.dtype == np.float32
            assert np.all(np.abs(pulled - expected) <= scale * bound), key
        #  Another dtype for an existing key is refused in the broker's words
        with pytest.raises(psmq.KeyExistsError, match="wire dtype bf16"):
            worker.init("b", w, wire_dtype="f32")
        with pytest.raises(ValueError, match="wire_dtype 'f64'"):
            worker.init("x", 3, wire_dtype="f64")


def test_several_keys_in_one_call_and_the_broker_defaults(broker):
    b = broker("--workers", 1, "--lr", 0.5)
    with connect(b) as worker:
        worker.init("a", 3)  # zeros, the broker's optimizer (sgd, lr 0.5)
        worker.init("b", (2, 2), optimizer=psmq.Optimizer.SGD, lr=0.1)
        worker.push({"a": np.ones(3, np.float32), "b": np.full((2, 2), 2, np.float32)})
        worker.clock()
        both = worker.pull(["a", "b"])
        np.testing.assert_allclose(both["a"], [-0.5] * 3, rtol=1e-6)
        np.testing.assert_allclose(both["b"], np.full((2, 2), -0.2), rtol=1e-6)
        out = np.empty(3, np.float32)
        got = worker.pull({"a": out, "b": None})
        assert got["a"] is out and got["b"].shape == (2, 2)
        #  Other optimizer settings for an existing key: the broker refuses
        with pytest.raises(psmq.KeyExistsError):
            worker.init("b", (2, 2), optimizer="adam", lr=0.1)
        #  The same ones, or none: accepted, values kept
        worker.init("b", np.zeros((2, 2), np.float32), optimizer="sgd", lr=0.1)
        worker.init("a", 3)
        np.testing.assert_allclose(worker.pull("a"), [-0.5] * 3, rtol=1e-6)


def test_local_workers_and_grad_count(broker):
    """One process standing for two ranks pushes a sum counted as two: the
    step is the mean, and the broker sees rank 0 and 1 both live."""
    b = broker("--workers", 2)
    with connect(b, 0, 2, local_workers=2) as worker:
        worker.init("v", np.full(4, 1, np.float32), lr=1.0, optimizer="sgd")
        worker.push("v", np.array([2, 4, 6, 8], np.float32), grad_count=2)
        worker.clock()  # BSP over 2 workers: passes, as this process is both
        np.testing.assert_allclose(worker.pull("v"), [0, -1, -2, -3], rtol=1e-6)
        assert [r["state"] for r in worker.info()["workers"]] == ["live", "live"]


def test_staleness_clocks_and_info(broker):
    b = broker("--workers", 2, "--staleness", 3)
    with connect(b, 1, 2) as worker:
        assert worker.staleness == 3 and worker.rank == 1 and worker.world_size == 2
        for _ in range(3):  # SSP 3: three clocks ahead of the absent rank 0
            worker.clock()
        assert worker.current_clock == 3 and worker.min_clock == 0
        state = worker.info()
        assert state["staleness"] == 3
        assert state["workers"][1]["clock"] == 3
        #  The same without registering, from psmq.info
        assert psmq.info(b.endpoint, timeout_ms=TIMEOUT_MS)["workers"][1]["clock"] == 3
        with pytest.raises(ValueError, match="one broker"):
            psmq.info([b.endpoint, b.endpoint])


def test_async_calls_and_tickets(broker):
    b = broker("--workers", 1)
    with connect(b) as worker:
        worker.init("w", np.zeros(5, np.float32), optimizer="sgd", lr=1.0)
        push = worker.push_async("w", np.arange(5, dtype=np.float32))
        clock = worker.clock_async()
        out = np.full(5, 7, np.float32)
        pull = worker.pull_async("w", out=out)
        assert worker.pending == 3
        assert not pull.done and pull.kind == "pull"
        assert push.wait() is None and clock.wait() is None
        got = pull.wait()
        assert got is out and pull.done and worker.pending == 0
        np.testing.assert_allclose(out, -np.arange(5), rtol=1e-6)
        assert pull.wait() is out  # a collected ticket answers the same again
        assert worker.current_clock == 1
        #  A pull of several keys: a dict at wait
        worker.init("u", 2)
        many = worker.pull_async(["w", "u"]).wait()
        assert set(many) == {"w", "u"} and many["u"].shape == (2,)


def test_push_clock_pushes_and_finishes_the_clock(broker):
    b = broker("--workers", 1)
    with connect(b) as worker:
        worker.init("w", np.zeros(3, np.float32), optimizer="sgd", lr=1.0)
        worker.push_clock("w", np.ones(3, np.float32))
        assert worker.current_clock == 1
        ticket = worker.push_clock_async({"w": np.full(3, 2, np.float32)})
        assert ticket.kind == "push_clock" and worker.current_clock == 2
        out = worker.pull_async("w").wait()
        assert ticket.wait() is None
        np.testing.assert_allclose(out, [-3, -3, -3])
        with pytest.raises(psmq.UnknownKeyError):
            worker.push_clock("never-made", np.ones(2, np.float32))
        assert worker.current_clock == 2  # a refused push finishes no clock
        assert worker.info()["min_clock"] == 2


def test_an_async_pull_keeps_its_array_until_collected(broker):
    """The library writes a pull's array when its reply comes, during any
    later call: the Worker must keep it alive even when the caller dropped
    both the ticket and the array, until wait or close."""
    b = broker("--workers", 1)
    with connect(b) as worker:
        worker.init("w", np.ones(1000, np.float32))
        out = np.zeros(1000, np.float32)
        alive = weakref.ref(out)
        ticket = worker.pull_async("w", out=out)
        del out, ticket
        gc.collect()
        assert alive() is not None and worker.pending == 1
        worker.clock()  # receives the pull's reply, writes the array
        np.testing.assert_array_equal(alive(), np.ones(1000, np.float32))
        gc.collect()
        assert alive() is not None  # not collected yet: still owned
        worker.close()
        gc.collect()
        assert alive() is None  # dropped with the worker's tickets


def test_a_lent_push_keeps_its_array_until_collected(broker):
    """push_async(lend=True) sends the array's own memory: the Worker must
    keep it alive until the ticket is collected, or the worker closed when
    the caller dropped the ticket too; and the broker gets its values."""
    b = broker("--workers", 1)
    count = 100_000  # 400 KB: lent, not copied
    with connect(b) as worker:
        worker.init("w", np.zeros(count, np.float32), optimizer="sgd", lr=1.0)
        gradient = np.full(count, 0.5, np.float32)
        alive = weakref.ref(gradient)
        ticket = worker.push_clock_async("w", gradient, lend=True)
        del gradient
        gc.collect()
        assert alive() is not None and ticket.kind == "push_clock"
        assert ticket.wait() is None
        gc.collect()
        assert alive() is None  # collected: the Worker let go of it
        np.testing.assert_allclose(worker.pull("w"), np.full(count, -0.5, np.float32))
        assert worker.current_clock == 1

        dropped = np.full(count, 0.25, np.float32)
        alive = weakref.ref(dropped)
        worker.push_async("w", dropped, lend=True)
        del dropped
        gc.collect()
        assert alive() is not None and worker.pending == 1
        worker.close()
        gc.collect()
        assert alive() is None  # dropped with the worker's tickets


def test_pull_writes_the_callers_memory(broker):
    """out= is filled in place: the same object, the same data pointer, and
    the memory around a view of a larger buffer left alone."""
    b = broker("--workers", 1)
    with connect(b) as worker:
        values = np.linspace(1, 2, 6, dtype=np.float32)
        worker.init("w", values)
        big = np.full(10, -9, np.float32)
        view = big[2:8]
        pointer = view.ctypes.data
        got = worker.pull("w", out=view)
        assert got is view and view.ctypes.data == pointer
        np.testing.assert_array_equal(big[2:8], values)
        np.testing.assert_array_equal(big[:2], [-9, -9])
        np.testing.assert_array_equal(big[8:], [-9, -9])
        #  The async form too
        big[2:8] = 0
        assert worker.pull_async("w", out=view).wait() is view
        np.testing.assert_array_equal(big[2:8], values)


def test_pull_view_reads_the_values_in_place(broker):
    """pull_view's pieces cover each key once with pull's values, in order,
    one per received frame, are read-only, and stay valid as long as an
    array over them is referenced: after the worker closed, and after the
    list is gone."""
    b = broker("--workers", 1)
    big = np.arange(5 * 157288, dtype=np.float32).reshape(-1, 5) / 7  # 3 MB and 40 bytes
    small = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    with connect(b) as worker:
        worker.init("big", big)
        worker.init("small", small)
        pieces = worker.pull_view(["small", "big"])
        with pytest.raises(ValueError, match="'nope'"):
            worker.pull_view("nope")
        with pytest.raises(ValueError, match="no key"):
            worker.pull_view([])
        only = worker.pull_view("small")
    assert [name for name, _, _ in only] == ["small"]
    np.testing.assert_array_equal(only[0][2], small.ravel())
    names = [name for name, _, _ in pieces]
    assert names == sorted(names, key=["small", "big"].index)
    for name, want in (("small", small.ravel()), ("big", big.ravel())):
        mine = [(offset, array) for n, offset, array in pieces if n == name]
        assert [offset for offset, _ in mine] == sorted(offset for offset, _ in mine)
        np.testing.assert_array_equal(np.concatenate([array for _, array in mine]), want)
    #  One piece per reply frame of about 1 MB, not the key gathered into one
    #  array (test_view checks in C that they are the frames themselves)
    bigs = [array for n, _, array in pieces if n == "big"]
    assert len(bigs) >= 4
    with pytest.raises(ValueError, match="read-only"):
        bigs[0][0] = 1
    last = bigs[-1]
    del pieces, bigs
    gc.collect()
    np.testing.assert_array_equal(last, big.ravel()[-last.size:])


class _Spy:
    """The loaded library with ps_worker_push and ps_worker_init_wire
    recorded: the addresses and counts the binding hands the C library."""

    def __init__(self, lib):
        self._lib = lib
        self.pushed = []
        self.initial = []

    def __getattr__(self, name):
        return getattr(self._lib, name)

    def ps_worker_push(self, handle, tensors, n, grad_count):
        self.pushed.extend((tensors[i].key, tensors[i].data, tensors[i].count) for i in range(n))
        return self._lib.ps_worker_push(handle, tensors, n, grad_count)

    def ps_worker_init_wire(self, handle, key, count, data, settings, wire):
        self.initial.append((key, data, count))
        return self._lib.ps_worker_init_wire(handle, key, count, data, settings, wire)


def test_push_hands_the_library_the_arrays_own_memory(broker, monkeypatch):
    """A large push (4 MB: libzmq sends the caller's memory itself) and an
    init reach the C library as the array's own data pointer, no copy, and
    the broker applies what that memory held."""
    b = broker("--workers", 1)
    spy = _Spy(psmq.worker._lib_)
    monkeypatch.setattr(psmq.worker, "_lib_", spy)
    n = 1 << 20
    with connect(b) as worker:
        initial = np.ones(n, np.float32)
        worker.init("big", initial, optimizer="sgd", lr=0.5)
        assert spy.initial == [(b"big", initial.ctypes.data, n)]
        grad = np.arange(n, dtype=np.float32) / np.float32(n)
        worker.push("big", grad)
        assert spy.pushed == [(b"big", grad.ctypes.data, n)]
        worker.clock()
        np.testing.assert_allclose(worker.pull("big"), 1 - 0.5 * grad, rtol=1e-6)


def test_arrays_the_library_cannot_use_are_refused(broker):
    b = broker("--workers", 1)
    with connect(b) as worker:
        worker.init("w", (4, 2))
        good = np.zeros((4, 2), np.float32)
        with pytest.raises(TypeError, match="float64"):
            worker.push("w", np.zeros((4, 2)))
        with pytest.raises(TypeError, match="float32"):
            worker.push("w", np.zeros((4, 2), np.float32).astype(">f4"))
        with pytest.raises(TypeError, match="numpy.ndarray"):
            worker.push("w", [[0.0] * 2] * 4)
        with pytest.raises(ValueError, match="C-contiguous"):
            worker.push("w", np.zeros((2, 4), np.float32).T)
        with pytest.raises(ValueError, match=r"shape \(8,\); the key has shape \(4, 2\)"):
            worker.push("w", np.zeros(8, np.float32))
        with pytest.raises(ValueError, match="shape"):
            worker.pull("w", out=np.zeros((4, 3), np.float32))
        with pytest.raises(ValueError, match="C-contiguous"):
            worker.pull("w", out=np.zeros((4, 4), np.float32)[:, ::2])
        readonly = good.copy()
        readonly.setflags(write=False)
        with pytest.raises(ValueError, match="read-only"):
            worker.pull("w", out=readonly)
        with pytest.raises(ValueError, match="read-only"):
            worker.pull_async("w", out=readonly)
        with pytest.raises(TypeError, match="float32"):
            worker.pull("w", out=np.zeros((4, 2), np.float64))
        with pytest.raises(TypeError):
            worker.init("x", "ten")
        with pytest.raises(TypeError, match="float32"):
            worker.init("x", np.zeros(3, np.int32))
        with pytest.raises(ValueError, match="does not know its shape"):
            worker.pull("never-made")
        with pytest.raises(ValueError, match="optimizer 'rmsprop' unknown"):
            worker.init("x", 3, optimizer="rmsprop")
        with pytest.raises(ValueError, match="NUL"):
            worker.init("x\0y", 3)
        with pytest.raises(ValueError, match="grad_count"):
            worker.push("w", good, grad_count=0)
        #  None of these sent anything: the worker goes on
        assert worker.pending == 0
        worker.push("w", good)
        worker.clock()
        assert worker.current_clock == 1


def test_broker_errors_carry_the_brokers_words(broker):
    b = broker("--workers", 2, "--staleness", -1)
    with connect(b, 0, 2) as worker, connect(b, 1, 2) as other:
        worker.init("w", 4)
        with pytest.raises(psmq.KeyExistsError) as caught:
            worker.init("w", 5)
        error = caught.value
        assert isinstance(error, psmq.BrokerError) and error.status == -110
        assert error.name == "PS_EKEY_EXISTS"
        assert "'w'" in error.message and "4" in error.message and "5" in error.message
        assert error.message == worker.error
        assert "broker %s" % b.endpoint in str(error)
        #  A key this worker did not make: the broker checks the size
        with pytest.raises(psmq.SizeError) as caught:
            other.push("w", np.zeros(3, np.float32))
        assert "'w'" in caught.value.message
        with pytest.raises(psmq.UnknownKeyError, match="unknown key 'nope'"):
            other.pull("nope", out=np.zeros(1, np.float32))
        #  ... and an async one is raised by wait
        ticket = other.pull_async("nope", out=np.zeros(1, np.float32))
        with pytest.raises(psmq.UnknownKeyError):
            ticket.wait()
        assert ticket.done
        with pytest.raises(psmq.UnknownKeyError):  # the same answer again
            ticket.wait()


def test_no_broker_is_a_timeout_within_the_timeout(dead_endpoint, caplog):
    caplog.set_level(logging.INFO, logger="psmq")
    start = time.monotonic()
    with pytest.raises(psmq.TimeoutError) as caught:
        psmq.Worker(dead_endpoint, 0, 1, timeout_ms=500)
    took = time.monotonic() - start
    assert 0.4 < took < 5.0  # the timeout, and some room for a loaded machine
    assert isinstance(caught.value, TimeoutError) and caught.value.status == -3
    assert dead_endpoint in caught.value.message
    #  The library's log line reached Python's logging
    assert any(r.name == "psmq" and r.levelno == logging.ERROR and dead_endpoint in r.getMessage()
               for r in caplog.records)
    with pytest.raises(psmq.TimeoutError):
        psmq.info(dead_endpoint, timeout_ms=300)


def test_a_broker_that_dies_is_a_connection_error(broker):
    b = broker("--workers", 1)
    worker = connect(b, heartbeat_timeout_ms=500, timeout_ms=20000)
    worker.init("w", 2)
    b.kill()
    start = time.monotonic()
    with pytest.raises(psmq.ConnectionError, match="lost the connection") as caught:
        worker.pull("w")
    assert time.monotonic() - start < 5.0  # the loss noticed, not the 20 s timeout
    assert isinstance(caught.value, ConnectionError)
    worker.close()


def test_rejoined_after_a_broker_restart(broker):
    """With wait_for_broker_ms, a call that meets a restarted broker
    registers again and raises RejoinedError with the clock to redo from
    (0: restarted without a checkpoint)."""
    b = broker("--workers", 1)
    with connect(b, wait_for_broker_ms=10000, heartbeat_timeout_ms=500) as worker:
        worker.init("w", 2)
        worker.clock()
        worker.clock()
        assert worker.current_clock == 2
        b.kill()
        broker("--workers", 1, endpoint=b.endpoint)
        with pytest.raises(psmq.RejoinedError) as caught:
            worker.init("w", 2)
            worker.pull("w")
        assert caught.value.clock == 0 and worker.current_clock == 0
        worker.init("w", 2)  # the restarted broker has no keys: init again
        np.testing.assert_array_equal(worker.pull("w"), [0, 0])


def test_curve_keys(broker, keys):
    b = broker("--workers", 1, "--curve-secret", keys.broker_secret, "--allow-keys", keys.clients)
    #  Without keys: refused at once, not after the timeout
    start = time.monotonic()
    with pytest.raises(psmq.ConnectionError, match="refused"):
        psmq.Worker(b.endpoint, 0, 1, timeout_ms=TIMEOUT_MS)
    assert time.monotonic() - start < TIMEOUT_MS / 1000
    with pytest.raises(psmq.ConnectionError, match="refused"):
        psmq.info(b.endpoint, timeout_ms=TIMEOUT_MS)
    #  With the worker's key and the broker's public key, from the file or
    #  as its 40 characters of Z85
    with connect(b, curve_secret=keys.worker_secret, broker_key=keys.broker_public) as worker:
        worker.init("w", np.ones(3, np.float32), optimizer="sgd", lr=1.0)
        worker.push("w", np.ones(3, np.float32))
        worker.clock()
        np.testing.assert_array_equal(worker.pull("w"), [0, 0, 0])
    state = psmq.info(b.endpoint, curve_secret=keys.worker_secret,
                      broker_key=keys.broker_public, timeout_ms=TIMEOUT_MS)
    assert state["workers"][0]["clock"] == 1
    #  A key pair the broker does not allow: refused too
    rogue = keys.folder + "/rogue"
    subprocess.run([PSKEYS, "new", "rogue", "--dir", rogue], check=True, timeout=30,
                   stdout=subprocess.DEVNULL)
    with pytest.raises(psmq.ConnectionError, match="refused"):
        connect(b, curve_secret=rogue + "/rogue.key_secret", broker_key=keys.broker_public)


def test_options_are_checked(broker, tmp_path):
    b = broker("--workers", 1)
    with pytest.raises(ValueError, match="rank 1 outside"):
        connect(b, 1, 1)
    with pytest.raises(ValueError, match="rank -1 outside"):
        connect(b, -1, 1)
    with pytest.raises(ValueError, match="local_workers 2"):
        connect(b, 0, 1, local_workers=2)
    with pytest.raises(ValueError, match="both or neither"):
        connect(b, curve_secret="x.key_secret")
    missing = str(tmp_path / "missing.key_secret")
    with pytest.raises(psmq.InvalidArgument, match="missing.key_secret"):
        connect(b, curve_secret=missing, broker_key=missing)


def test_context_manager_closes(broker):
    b = broker("--workers", 1)
    with connect(b) as worker:
        worker.init("w", 1)
        ticket = worker.pull_async("w")
        assert psmq.info(b.endpoint)["workers"][0]["state"] == "live"
    assert worker.closed and repr(worker) == "<psmq.Worker closed>"
    #  It said BYE: the broker knows the rank left
    assert psmq.info(b.endpoint)["workers"][0]["state"] == "gone"
    with pytest.raises(ValueError, match="closed"):
        worker.pull("w")
    with pytest.raises(psmq.TicketError, match="closed"):
        ticket.wait()
    worker.close()  # idempotent
    #  An exception inside the block closes it too
    with pytest.raises(RuntimeError):
        with connect(b) as again:
            raise RuntimeError("boom")
    assert again.closed


def test_a_worker_belongs_to_its_thread(broker):
    b = broker("--workers", 1)
    with connect(b) as worker:
        caught = []

        def other():
            try:
                worker.clock()
            except RuntimeError as error:
                caught.append(error)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
        assert caught and "thread" in str(caught[0])
        worker.clock()
        assert worker.current_clock == 1


def test_a_group_of_brokers(broker):
    """A list of endpoints is a group in shard order: a key is split over
    both brokers, and info(shard) asks each."""
    first = broker("--workers", 1, "--shard", 0, "--shards", 2)
    second = broker("--workers", 1, "--shard", 1, "--shards", 2)
    with psmq.Worker([first.endpoint, second.endpoint], 0, 1, timeout_ms=TIMEOUT_MS) as worker:
        assert worker.shards == 2
        big = np.arange(1 << 18, dtype=np.float32)  # 1 MB: sliced over the two
        worker.init("big", big, optimizer="sgd", lr=1.0)
        worker.push("big", np.ones_like(big))
        worker.clock()
        np.testing.assert_array_equal(worker.pull("big"), big - 1)
        shards = [worker.info(shard) for shard in range(2)]
        assert [s["shard"] for s in shards] == [0, 1]
        assert all(s["keys"] >= 1 for s in shards)
        assert worker.info()["shard"] == 0
