"""The consistency rules of PROTOCOL.md's "Clocks and staleness", and the optimizer.

BSP (a clock's gradients applied as one step with their mean when the
slowest clock passes it, before any later pull is answered; ranks that never
said HELLO hold the barrier), the SSP bound (a worker more than S clocks
ahead is answered only when the slowest catches up), ASP (never waits).

A pull is answered with every update the model requires at the time it is
answered, whatever was in flight when it arrived: CLOCK then PULL without
waiting, PUSH + CLOCK + PULL back to back, a slow worker's PUSH and CLOCK
back to back releasing a parked pull. These repeat several rounds, since a
race shows only in some of them.

Cosine learning-rate decay (Optim.decay_steps), and gradients holding a NaN
or an infinity (not applied; the next CLOCK answered with ERROR non-finite).

usage: /usr/bin/python3 -B -m pytest -q -p no:cacheprovider tests/interop/test_consistency.py [-k <test>]
(Debian's python3, which has pytest; psbroker from PSMQ_BUILD_DIR, else build/)
"""

import math

import numpy as np

from psclient import f32, wait_for

NONFINITE = 15
ROUNDS = 20


def close(got, expected):
    return np.allclose(got, expected, rtol=1e-6, atol=1e-5)


def parked(c, n):
    """Waits until the broker says n requests are parked."""
    wait_for(lambda: c.info()["parked_now"] == n, what="%d parked requests" % n)


def test_bsp_barrier_applies_the_mean_as_one_step(pb, workers):
    lr = 0.5
    b, (w0, w1, w2) = workers(3, "--staleness", 0, "--lr", lr)
    w0.init({"w": [1, 2, 3, 4]})
    grads = [f32([1, 2, 3, 4]), f32([3, 2, 1, 0]), f32([2, 2, 2, -1])]
    expected = f32([1, 2, 3, 4]) - lr * np.mean(grads, axis=0)

    w0.push({"w": grads[0]}, clock=0)
    c0 = w0.send_clock(0)
    w1.push({"w": grads[1]}, clock=0)
    c1 = w1.send_clock(0)
    w2.push({"w": grads[2]}, clock=0)
    #  The CLOCKs of workers ahead wait at the barrier
    parked(w2, 2)
    assert w0.poll_reply(c0, 0) is None and w1.poll_reply(c1, 0) is None
    #  A worker at the slowest clock reads at once: nothing applied yet
    assert w2.pull(["w"])["w"].tolist() == [1, 2, 3, 4]

    assert w2.clock(0) == 1
    assert w0.ok(c0, pb.CLOCK).env.clock == 1
    assert w1.ok(c1, pb.CLOCK).env.clock == 1
    #  Pulls after the CLOCK replies (test_bsp_pull_sent_right_after_clock
    #  has pulls sent before them)
    for w in (w0, w1, w2):
        w.clock_value = 1
        assert close(w.pull(["w"])["w"], expected)


def test_bsp_waits_for_ranks_that_never_said_hello(pb, broker, client):
    b = broker("--workers", 2, "--staleness", 0)
    w0 = client(b, rank=0, world_size=2)
    w0.hello()
    seq = w0.send_clock(0)
    parked(w0, 1)
    w1 = client(b, rank=1, world_size=2)
    w1.hello()
    assert w0.poll_reply(seq, 0.05) is None
    assert w1.clock(0) == 1
    env = w0.ok(seq, pb.CLOCK).env
    assert env.clock == 1 and env.min_clock == 1


def test_ssp_bound(pb, workers):
    """Staleness 2: a worker may finish clocks 0 and 1 alone; CLOCK 2 waits for the slowest."""
    b, (w0, w1) = workers(2, "--staleness", 2)
    w0.init({"w": [0]})
    assert w0.clock(0) == 1
    assert w0.clock(1) == 2
    seq = w0.send_clock(2)
    pull = w0.send_pull(["w"], clock=3)        # at clock 3, 3 ahead: out of the bound too
    parked(w0, 2)
    assert w0.poll_reply(seq, 0) is None and w0.poll_reply(pull, 0) is None
    env = w1.ok(w1.send_clock(0), pb.CLOCK).env
    assert env.clock == 1
    env = w0.ok(seq, pb.CLOCK).env
    assert env.clock == 3 and env.min_clock == 1
    w0.ok(pull, pb.PULL)
    #  w1 may read at clock 1, 2 behind
    w1.pull(["w"])


def test_ssp_applies_each_push_on_arrival(pb, workers):
    b, (w0, w1) = workers(2, "--staleness", 3, "--lr", 0.5)
    w0.init({"w": [0, 0]})
    w0.push({"w": [2, 4]}, grad_count=1)
    assert w1.pull(["w"])["w"].tolist() == [-1, -2]
    w1.push({"w": [2, 2]})
    assert w0.pull(["w"])["w"].tolist() == [-2, -3]


def test_asp_never_waits(pb, broker, client):
    """ASP, 3 ranks of which only one ever says HELLO: nothing waits."""
    b = broker("--workers", 3, "--staleness", -1, "--lr", 0.25)
    w0 = client(b, rank=0, world_size=3)
    assert w0.hello().hello.staleness == -1
    w0.init({"w": [0]})
    for clock in range(30):
        w0.push({"w": [1]}, clock=clock)
        assert w0.clock(clock, timeout=10) == clock + 1
        assert w0.pull(["w"], timeout=10)["w"].tolist() == [-0.25 * (clock + 1)]


#  ---- (a) a pull sees every update required when it is answered ----------

def test_bsp_pull_sent_right_after_clock(pb, workers):
    """(a) BSP, 3 workers: workers 0 and 1 send CLOCK c and PULL without waiting; worker 2 then CLOCK c."""
    lr = 0.25
    b, ws = workers(3, "--staleness", 0, "--lr", lr)
    ws[0].init({"w": [1, 2, 3, 4]})
    expected = f32([1, 2, 3, 4])
    failures = []
    for c in range(ROUNDS):
        grads = [f32([1 + i, 2, -1, 0.5 * (i + 1)]) * (c + 1) for i in range(3)]
        for w, g in zip(ws, grads):
            w.push({"w": g}, clock=c)
        seqs = []
        for w in ws[:2]:
            seqs.append((w.send_clock(c), w.send_pull(["w"], clock=c + 1)))
        last = ws[2].send_clock(c)
        expected = expected - f32(lr) * np.mean(grads, axis=0, dtype=np.float32)
        assert ws[2].ok(last, pb.CLOCK).env.clock == c + 1
        for w, (sc, sp) in zip(ws, seqs):
            assert w.ok(sc, pb.CLOCK).env.clock == c + 1
            got = w.ok(sp, pb.PULL).tensors()["w"]
            if not close(got, expected):
                failures.append("round %d rank %d: pulled %s, %s expected" % (c, w.rank, got, expected))
        for w in ws:
            w.clock_value = c + 1
        assert close(ws[2].pull(["w"])["w"], expected)
    assert not failures, "%d of %d pulls missed their clock's step:\n%s" % (
        len(failures), 2 * ROUNDS, "\n".join(failures))


def test_bsp_push_clock_pull_back_to_back(pb, workers):
    """(a) BSP, 3 workers, each sends PUSH c, CLOCK c and PULL at once: every pull has step c."""
    lr = 0.25
    b, ws = workers(3, "--staleness", 0, "--lr", lr)
    ws[0].init({"w": [0, 0, 0]})
    expected = f32([0, 0, 0])
    failures = []
    for c in range(ROUNDS):
        grads = [f32([i + 1, c + 1, -(i + c)]) for i in range(3)]
        sent = []
        for w, g in zip(ws, grads):
            sent.append((w.send_push({"w": g}, clock=c), w.send_clock(c), w.send_pull(["w"], clock=c + 1)))
        expected = expected - f32(lr) * np.mean(grads, axis=0, dtype=np.float32)
        for w, (spush, sclock, spull) in zip(ws, sent):
            w.ok(spush, pb.PUSH)
            assert w.ok(sclock, pb.CLOCK).env.clock == c + 1
            got = w.ok(spull, pb.PULL).tensors()["w"]
            if not close(got, expected):
                failures.append("round %d rank %d: pulled %s, %s expected" % (c, w.rank, got, expected))
    assert not failures, "%d of %d pulls missed their clock's step:\n%s" % (
        len(failures), 3 * ROUNDS, "\n".join(failures))


def test_bsp_push_that_finishes_the_clock_then_pull(pb, workers):
    """(a) BSP, 3 workers, each sends a PUSH with clock_after and a PULL at once (rank 2 pushes
    first, then finishes its clock with a PUSH of no slice): one reply per push, the CLOCK's, and
    every pull has step c."""
    lr = 0.25
    b, ws = workers(3, "--staleness", 0, "--lr", lr)
    ws[0].init({"w": [0, 0, 0]})
    expected = f32([0, 0, 0])
    failures = []
    for c in range(ROUNDS):
        grads = [f32([i + 1, c + 1, -(i + c)]) for i in range(3)]
        sent = []
        for w, g in zip(ws[:2], grads):
            sent.append((w.send_push({"w": g}, clock=c, clock_after=True),
                         w.send_pull(["w"], clock=c + 1)))
        ws[2].push({"w": grads[2]}, clock=c)
        sent.append((ws[2].send_push({}, clock=c, clock_after=True),
                     ws[2].send_pull(["w"], clock=c + 1)))
        expected = expected - f32(lr) * np.mean(grads, axis=0, dtype=np.float32)
        for w, (spush, spull) in zip(ws, sent):
            assert w.ok(spush, pb.PUSH).env.clock == c + 1
            got = w.ok(spull, pb.PULL).tensors()["w"]
            if not close(got, expected):
                failures.append("round %d rank %d: pulled %s, %s expected" % (c, w.rank, got, expected))
    assert not failures, "%d of %d pulls missed their clock's step:\n%s" % (
        len(failures), 3 * ROUNDS, "\n".join(failures))
    assert ws[0].info()["min_clock"] == ROUNDS


def test_ssp_released_pull_sees_the_slow_push(pb, workers):
    """(a) SSP 1: the fast worker at the bound sends CLOCK then PULL; the slow one PUSH c and CLOCK c back to back."""
    lr = 0.25
    b, (fast, slow) = workers(2, "--staleness", 1, "--lr", lr)
    fast.init({"w": [10, 20]})
    expected = f32([10, 20])
    failures = []
    for r in range(ROUNDS):
        c = 2 * r                       # both workers are at clock c
        fast.push({"w": [0.5, 1]}, clock=c)
        assert fast.clock(c) == c + 1   # the slowest is at c: within the bound
        fast.push({"w": [0.5, 1]}, clock=c + 1)
        sclock = fast.send_clock(c + 1)
        spull = fast.send_pull(["w"], clock=c + 2)
        parked(slow, 2)
        #  The slow worker's push of clock c, then its CLOCK c, at once
        spush = slow.send_push({"w": [1, -1]}, clock=c)
        sslow = slow.send_clock(c)
        expected = expected - f32(lr) * (f32([0.5, 1]) * 2 + f32([1, -1]))
        slow.ok(spush, pb.PUSH)
        assert slow.ok(sslow, pb.CLOCK).env.clock == c + 1
        assert fast.ok(sclock, pb.CLOCK).env.clock == c + 2
        got = fast.ok(spull, pb.PULL).tensors()["w"]
        if not close(got, expected):
            failures.append("round %d: pulled %s, %s expected" % (r, got, expected))
        #  The slow worker catches up: clock c + 1 without gradients
        assert slow.clock(c + 1) == c + 2
        fast.clock_value = c + 2
    assert not failures, "%d of %d released pulls missed the slow worker's push:\n%s" % (
        len(failures), ROUNDS, "\n".join(failures))


def test_pull_right_after_push_sees_it(pb, workers):
    """(a) SSP and ASP: a PULL sent right after a PUSH, without waiting, includes it."""
    for staleness in (1, -1):
        b, (c,) = workers(1, "--staleness", staleness, "--lr", 0.5)
        c.init({"w": [0, 0]})
        failures = []
        for clock in range(ROUNDS):
            spush = c.send_push({"w": [1, 2]}, clock=clock)
            spull = c.send_pull(["w"], clock=clock)
            sclock = c.send_clock(clock)
            c.ok(spush, pb.PUSH)
            got = c.ok(spull, pb.PULL).tensors()["w"].tolist()
            if got != [-0.5 * (clock + 1), -1.0 * (clock + 1)]:
                failures.append("clock %d: pulled %s" % (clock, got))
            assert c.ok(sclock, pb.CLOCK).env.clock == clock + 1
        assert not failures, "staleness %d: %s" % (staleness, failures)


def test_init_then_push_and_pull_pipelined(pb, workers):
    """INIT, then PUSH and PULL of the new key without waiting for the INIT
    reply: the key is known at once, the pull sees the initial value minus
    the push's step. A refused INIT makes the pipelined PULL unknown-key."""
    for staleness in (0, 1, -1):
        b, (c,) = workers(1, "--staleness", staleness, "--lr", 0.5)
        failures = []
        for round_ in range(ROUNDS):
            key = "k%d" % round_
            sinit = c.send_init({key: [4, 8]})
            spush = c.send_push({key: [2, 2]}, clock=round_)
            sclock = c.send_clock(round_)
            spull = c.send_pull([key])
            c.ok(sinit, pb.INIT)
            c.ok(spush, pb.PUSH)
            c.ok(sclock, pb.CLOCK)
            got = c.ok(spull, pb.PULL).tensors()[key].tolist()
            if got != [3.0, 7.0]:
                failures.append("round %d: pulled %s" % (round_, got))
        assert not failures, "staleness %d: %s" % (staleness, failures)
    #  An INIT the aggregation thread refuses (2^32 floats are more than the
    #  store may hold): the pull pipelined behind it names the key as
    #  unknown, with its seq, and the name is free again for another size
    sinit = c.send_init({"big": 2 ** 32})
    spull = c.send_pull([("big", 0, 1)])
    assert c.error(sinit).error.code == pb.ERR_FULL
    env = c.error(spull)
    assert env.error.code == pb.ERR_UNKNOWN_KEY and env.seq == spull, env
    c.init({"big": [5]})
    assert c.pull(["big"])["big"].tolist() == [5.0]


#  ---- (f) cosine decay ------------------------------------------------------

def decayed_rates(pb, workers, lr, decay_steps, steps):
    """The learning rate of each step: SGD, gradient 1, under ASP."""
    b, (c,) = workers(1, "--staleness", -1)
    c.init({"w": [0]}, pb.Optim(kind=pb.OPT_SGD, lr=lr, decay_steps=decay_steps))
    rates, previous = [], 0.0
    for clock in range(steps):
        c.push({"w": [1]}, clock=clock)
        c.clock(clock)
        value = float(c.pull(["w"])["w"][0])
        rates.append(previous - value)
        previous = value
    return rates


def cosine(lr, decay_steps, t):
    if t > decay_steps:
        return 0.0
    return lr * 0.5 * (1 + math.cos(math.pi * (t - 1) / decay_steps))


def test_cosine_decay(pb, workers):
    """(f) step t uses lr * 0.5 * (1 + cos(pi * (t-1) / D)), t = 1..D, then 0."""
    rates = decayed_rates(pb, workers, 0.1, 5, 7)
    expected = [cosine(0.1, 5, t) for t in range(1, 8)]
    assert np.allclose(expected[:5], [0.1, 0.0905, 0.0655, 0.0345, 0.00955], atol=5e-5)
    assert np.allclose(rates, expected, atol=2e-6), "rates %s, %s expected" % (rates, expected)


def test_cosine_decay_of_one_step(pb, workers):
    """(f) with D = 1 the single step uses lr, the next ones 0."""
    rates = decayed_rates(pb, workers, 0.25, 1, 3)
    assert np.allclose(rates, [0.25, 0, 0], atol=1e-7), rates


#  ---- (g) NaN and infinities -----------------------------------------------

def test_nonfinite_gradient_is_not_applied(pb, workers):
    """(g) acked, not applied; the next CLOCK is answered with ERROR non-finite; the clock advances."""
    b, (c,) = workers(1, "--staleness", -1, "--lr", 1)
    c.init({"weights": [1, 2, 3, 4, 5, 6, 7], "bias": [0]})
    for clock, (index, bad) in enumerate([(5, float("nan")), (3, float("inf")), (6, float("-inf"))]):
        grad = f32([1] * 7)
        grad[index] = bad
        env = c.push({"bias": [1], "weights": grad}, clock=2 * clock)
        assert env.type == pb.PUSH
        got = c.pull(["weights", "bias"])
        assert got["weights"].tolist() == [1, 2, 3, 4, 5, 6, 7] and got["bias"].tolist() == [-clock], \
            "a push with a non-finite gradient was applied: %s" % got
        seq = c.send_clock(2 * clock)
        env = c.reply(seq).env
        assert env.type == pb.ERROR and env.error.code == NONFINITE and env.seq == seq, env
        assert "weights" in env.error.message and str(index) in env.error.message, env.error.message
        #  The clock advanced all the same; a good push is applied
        c.push({"weights": [0] * 7, "bias": [1]}, clock=2 * clock + 1)
        assert c.clock(2 * clock + 1) == 2 * clock + 2


def test_nonfinite_gradient_holds_nobody_back(pb, workers):
    """(g) BSP: the worker that pushed a NaN gets ERROR on CLOCK, the other its clock; the step stays finite."""
    b, (w0, w1) = workers(2, "--staleness", 0, "--lr", 0.5)
    w0.init({"w": [1, 1]})
    w0.push({"w": [float("nan"), 1]}, clock=0)
    w1.push({"w": [2, 2]}, clock=0)
    s0 = w0.send_clock(0)
    s1 = w1.send_clock(0)
    env = w0.reply(s0).env
    assert env.type == pb.ERROR and env.error.code == NONFINITE and env.seq == s0, env
    assert "w" in env.error.message and "0" in env.error.message
    assert w1.ok(s1, pb.CLOCK).env.clock == 1
    got = w1.pull(["w"], timeout=10)["w"]
    #  Only rank 1's gradient counts: its mean over one or over both pushes
    assert np.all(np.isfinite(got)), got
    assert close(got, [0, 0]) or close(got, [0.5, 0.5]), got
    #  Both are at clock 1 and go on together
    for w in (w0, w1):
        w.clock_value = 1
    w0.push({"w": [0, 0]})
    w1.push({"w": [0, 0]})
    s0, s1 = w0.send_clock(1), w1.send_clock(1)
    assert w0.ok(s0, pb.CLOCK).env.clock == 2 and w1.ok(s1, pb.CLOCK).env.clock == 2
