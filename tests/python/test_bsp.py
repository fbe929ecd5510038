"""Two worker processes under BSP agree on the parameters, and on the ones
a single process computes by taking the mean of their gradients itself."""

import multiprocessing
import queue

import numpy as np

import psmq

STEPS = 5
LR = 0.1
SIZE = 1000
WAIT_S = 60


def _initial():
    return np.linspace(-1, 1, SIZE, dtype=np.float32)


def _gradient(params, rank, step):
    """Depends on the parameters: a worker that pulled stale ones (BSP
    broken) would push other gradients, and the runs would part."""
    return params * np.float32(rank + 1) - np.float32(step) * np.float32(0.01)


def _train(endpoint, rank, workers, results):
    try:
        with psmq.Worker(endpoint, rank, workers, timeout_ms=WAIT_S * 1000) as worker:
            params = _initial()
            worker.init("w", params, optimizer="sgd", lr=LR)
            for step in range(STEPS):
                worker.push("w", _gradient(params, rank, step))
                worker.clock()
                worker.pull("w", out=params)
            results.put((rank, params.tobytes(), worker.current_clock, None))
    except BaseException as error:  # the parent reports it
        results.put((rank, None, None, repr(error)))


def test_two_processes_agree_under_bsp(broker):
    b = broker("--workers", 2, "--staleness", 0)
    context = multiprocessing.get_context("spawn")  # no fork of a process with libzmq threads
    results = context.Queue()
    processes = [context.Process(target=_train, args=(b.endpoint, rank, 2, results))
                 for rank in range(2)]
    for process in processes:
        process.start()
    try:
        got = {}
        for _ in processes:
            try:
                rank, data, clock, error = results.get(timeout=WAIT_S)
            except queue.Empty:
                raise AssertionError("a worker process did not finish within %d s:\n%s"
                                     % (WAIT_S, b.output())) from None
            assert error is None, "rank %d: %s" % (rank, error)
            assert clock == STEPS
            got[rank] = np.frombuffer(data, dtype=np.float32)
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(10)
    assert [p.exitcode for p in processes] == [0, 0]
    np.testing.assert_array_equal(got[0], got[1])
    expected = _initial()
    for step in range(STEPS):
        mean = (_gradient(expected, 0, step) + _gradient(expected, 1, step)) / np.float32(2)
        expected = expected - np.float32(LR) * mean
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-6)
    #  Not the run of either worker alone: the step was the mean of both
    alone = _initial()
    for step in range(STEPS):
        alone = alone - np.float32(LR) * _gradient(alone, 0, step)
    assert not np.allclose(got[0], alone, rtol=1e-3)
