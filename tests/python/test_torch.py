"""psmq.torch against a real psbroker: three worker processes under BSP take
the steps one process takes with the mean of their gradients; gradients
leave from backward's hooks; each parameter group has its broker rule; the
parameters are pulled into the model's own memory; what cannot be moved is
refused."""

import multiprocessing
import queue

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs Debian's python3-torch (tools/setup)")

import psmq  # noqa: E402
import psmq.torch  # noqa: E402

STEPS = 4
LR = 0.2
WORKERS = 3
WAIT_S = 90
TIMEOUT_MS = 10000


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _batch(rank, step):
    generator = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,),
                                                                   generator=generator)


def _loss(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


def _train(endpoint, rank, results):
    try:
        torch.set_num_threads(1)
        with psmq.Worker(endpoint, rank, WORKERS, timeout_ms=TIMEOUT_MS) as worker:
            model = _model()
            optimizer = psmq.torch.DistributedOptimizer(worker, model.named_parameters(),
                                                        optimizer="sgd", lr=LR)
            in_flight = []
            for step in range(STEPS):
                optimizer.zero_grad()
                _loss(model, *_batch(rank, step)).backward()
                in_flight.append(worker.pending)  # pushed by the hooks during backward
                optimizer.step()
            params = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
            results.put((rank, params, in_flight, None))
    except BaseException as error:
        results.put((rank, None, None, repr(error)))


def _reference():
    """One process taking the mean of the three workers' gradients."""
    model = _model()
    for step in range(STEPS):
        grads = []
        for rank in range(WORKERS):
            model.zero_grad()
            _loss(model, *_batch(rank, step)).backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        with torch.no_grad():
            for i, p in enumerate(model.parameters()):
                p -= LR * sum(g[i] for g in grads) / WORKERS
    return {name: p.detach().numpy() for name, p in model.named_parameters()}


def test_three_processes_under_bsp_equal_the_mean_gradient_steps(broker):
    b = broker("--workers", WORKERS, "--staleness", 0)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_train, args=(b.endpoint, rank, results))
                 for rank in range(WORKERS)]
    for process in processes:
        process.start()
    try:
        got = {}
        for _ in processes:
            try:
                rank, params, in_flight, error = results.get(timeout=WAIT_S)
            except queue.Empty:
                raise AssertionError("a worker did not finish within %d s:\n%s"
                                     % (WAIT_S, b.output())) from None
            assert error is None, "rank %d: %s" % (rank, error)
            #  Every parameter's gradient left during backward, before step
            assert in_flight == [4] * STEPS
            got[rank] = params
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(10)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    expected = _reference()
    start = {name: p.detach().numpy() for name, p in _model().named_parameters()}
    for rank in range(WORKERS):
        assert set(got[rank]) == set(expected)
        for name in expected:
            np.testing.assert_allclose(got[rank][name], expected[name], rtol=0, atol=1e-5)
    #  And the run moved: not the starting point
    assert any(not np.allclose(expected[n], start[n], atol=1e-3) for n in expected)


def test_groups_rules_and_in_place_pulls(broker):
    b = broker("--workers", 1)
    with psmq.Worker(b.endpoint, 0, 1, timeout_ms=TIMEOUT_MS) as worker:
        model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
        optimizer = psmq.torch.DistributedOptimizer(worker, [
            {"params": model[0].named_parameters(prefix="first"), "optimizer": "adam",
             "lr": 0.01},
            {"params": model[1].named_parameters(prefix="second")},
        ], optimizer="sgd", lr=0.5, prefix="m.")
        assert sorted(optimizer.keys) == ["m.first.bias", "m.first.weight", "m.second.bias",
                                          "m.second.weight"]
        assert worker.keys["m.first.weight"] == (2, 3)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        pointers = {name: p.data_ptr() for name, p in model.named_parameters()}
        #  Gradients set by hand: no hook fired, step pushes .grad
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
        after = dict(model.named_parameters())
        for name in before:
            assert after[name].data_ptr() == pointers[name]  # written in place
        #  SGD: p - 0.5 g; Adam's first step: p - lr g / (|g| + eps) = p - 0.01
        for name in ("1.weight", "1.bias"):
            np.testing.assert_allclose(after[name].detach(), before[name] - 0.5, atol=1e-6)
        for name in ("0.weight", "0.bias"):
            np.testing.assert_allclose(after[name].detach(), before[name] - 0.01, atol=1e-5)
        assert worker.current_clock == 1


def test_a_group_in_bf16_on_the_wire(broker):
    b = broker("--workers", 1)
    with psmq.Worker(b.endpoint, 0, 1, timeout_ms=TIMEOUT_MS) as worker:
        model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
        optimizer = psmq.torch.DistributedOptimizer(worker, [
            {"params": model[0].named_parameters(prefix="first"), "wire_dtype": "bf16"},
            {"params": model[1].named_parameters(prefix="second")},
        ], optimizer="sgd", lr=0.5)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
        after = dict(model.named_parameters())
        #  f32 keys exact; bf16 ones within 2^-8 of each value sent
        for name in ("1.weight", "1.bias"):
            np.testing.assert_allclose(after[name].detach(), before[name] - 0.5, atol=1e-6)
        for name in ("0.weight", "0.bias"):
            np.testing.assert_allclose(after[name].detach(), before[name] - 0.5, rtol=2 ** -7,
                                       atol=2 ** -7)
        #  The bf16 key refuses an INIT in f32
        with pytest.raises(psmq.KeyExistsError, match="wire dtype bf16"):
            worker.init("first.weight", 6)


def test_every_rank_starts_from_the_same_values(broker):
    b = broker("--workers", 2, "--staleness", -1)
    with psmq.Worker(b.endpoint, 0, 2, timeout_ms=TIMEOUT_MS) as first, \
            psmq.Worker(b.endpoint, 1, 2, timeout_ms=TIMEOUT_MS) as second:
        a, other = _model(), torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(),
                                                 torch.nn.Linear(8, 3))
        psmq.torch.DistributedOptimizer(first, a.named_parameters(), lr=LR, overlap=False)
        psmq.torch.DistributedOptimizer(second, other.named_parameters(), lr=LR, overlap=False)
        for (name, p), q in zip(a.named_parameters(), other.parameters()):
            assert torch.equal(p, q), name


def test_what_cannot_be_moved_is_refused(broker):
    b = broker("--workers", 1)
    with psmq.Worker(b.endpoint, 0, 1, timeout_ms=TIMEOUT_MS) as worker:
        with pytest.raises(TypeError, match="float32"):
            psmq.torch.DistributedOptimizer(worker, torch.nn.Linear(2, 2).double()
                                            .named_parameters())
        with pytest.raises(TypeError, match="CPU tensors only"):
            psmq.torch.DistributedOptimizer(worker, torch.nn.Linear(2, 2, device="meta")
                                            .named_parameters())
        with pytest.raises(TypeError, match="named_parameters"):
            psmq.torch.DistributedOptimizer(worker, torch.nn.Linear(2, 2).parameters())
        with pytest.raises(ValueError, match="unknown settings"):
            psmq.torch.DistributedOptimizer(worker, [
                {"params": torch.nn.Linear(2, 2).named_parameters(), "weight_decay": 0.1}])
        #  Nothing was made on the broker by the refusals
        assert worker.keys == {}


def test_a_lost_broker_fails_the_step_and_leaves_no_ticket(broker):
    b = broker("--workers", 1)
    with psmq.Worker(b.endpoint, 0, 1, timeout_ms=20000, heartbeat_timeout_ms=500) as worker:
        model = _model()
        optimizer = psmq.torch.DistributedOptimizer(worker, model.named_parameters(), lr=LR)
        _loss(model, *_batch(0, 0)).backward()
        b.kill()
        with pytest.raises(psmq.ConnectionError):
            optimizer.step()
        assert worker.pending == 0


def test_resync_after_a_broker_restart(broker):
    """A step that meets a restarted broker raises RejoinedError; resync
    makes the keys again from the model and training goes on."""
    b = broker("--workers", 1)
    with psmq.Worker(b.endpoint, 0, 1, timeout_ms=TIMEOUT_MS, wait_for_broker_ms=10000,
                     heartbeat_timeout_ms=500) as worker:
        model = _model()
        optimizer = psmq.torch.DistributedOptimizer(worker, model.named_parameters(), lr=LR)
        _loss(model, *_batch(0, 0)).backward()
        optimizer.step()
        kept = {name: p.detach().clone() for name, p in model.named_parameters()}
        b.kill()
        broker("--workers", 1, endpoint=b.endpoint)  # restarted, without the keys
        optimizer.zero_grad()
        #  The first push, from a hook during backward, meets the restart:
        #  backward completes, step raises
        _loss(model, *_batch(0, 1)).backward()
        with pytest.raises(psmq.RejoinedError) as caught:
            optimizer.step()
        assert caught.value.clock == 0
        optimizer.resync()
        assert worker.pending == 0
        for name, p in model.named_parameters():
            assert torch.equal(p, kept[name]), name  # the broker took the model's values
        optimizer.zero_grad()
        loss = _loss(model, *_batch(0, 1))
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        optimizer.step()
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), kept[name] - LR * grads[name], rtol=0,
                                       atol=1e-6)
        assert worker.current_clock == 1
