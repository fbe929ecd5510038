#!/usr/bin/env python3
"""Train a small CNN on Fashion-MNIST through a psmq broker, with PyTorch.

usage: fashion_mnist.py [--workers N] [--steps S | --epochs E] [options]
       fashion_mnist.py --broker ENDPOINT --rank R --workers N [options]

The first form starts a psbroker on a free loopback port and N worker
processes, shows rank 0's progress and prints the final test accuracy; the
second runs one worker of a job whose broker runs elsewhere (one per rank,
on any machines). Every worker trains on its share of the training set
(every N-th example from its rank); psmq.torch.DistributedOptimizer pushes
the gradients from backward's hooks, and the broker steps the model with
Adam (its lr decaying to 0 over the run, a cosine) under BSP, so the
workers keep one model.

The data are Debian's dataset-fashion-mnist IDX files
(/usr/share/datasets/fashion-mnist, --data DIR), read here; nothing is
downloaded. Needs Debian's python3-torch and the psmq package (installed,
or PYTHONPATH=python from the source tree); the broker is $PSMQ_PSBROKER,
else build/psbroker of the source tree, else psbroker on the PATH.
"""

import argparse
import gzip
import multiprocessing
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


def read_idx(path):
    """An IDX file (gzip'ed) as a numpy array of its shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError("%s: not an IDX file of unsigned bytes" % path)
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError("%s: %d bytes for shape %s" % (path, body.size, shape))
    return body.reshape(shape)


def load(folder, part):
    """Images as float32 (n, 1, 28, 28) in [0, 1], normalised; labels int64."""
    prefix = "train" if part == "train" else "t10k"
    images = read_idx(os.path.join(folder, "%s-images-idx3-ubyte.gz" % prefix))
    labels = read_idx(os.path.join(folder, "%s-labels-idx1-ubyte.gz" % prefix))
    images = (images.astype(np.float32) / 255.0 - 0.2860) / 0.3530
    return images.reshape(-1, 1, 28, 28), labels.astype(np.int64)


def make_model():
    import torch

    torch.manual_seed(0)  # the same start everywhere (rank 0's INIT wins anyway)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10))


def accuracy(model, images, labels, batch=1000):
    import torch

    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch])
            correct += int((model(x).argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / len(images)


def train(args, rank, report=print):
    """One worker: returns the final test accuracy."""
    import torch

    import psmq
    import psmq.torch

    #  As psworker does: received frames reuse freed buffers
    psmq.keep_memory_mapped()
    torch.set_num_threads(args.threads)
    images, labels = load(args.data, "train")
    images, labels = images[rank::args.workers], labels[rank::args.workers]
    test_images, test_labels = load(args.data, "test")
    if args.test_examples:
        test_images, test_labels = test_images[:args.test_examples], test_labels[:args.test_examples]
    per_epoch = len(images) // args.batch
    steps = args.steps or args.epochs * per_epoch
    model = make_model()
    start = time.monotonic()
    with psmq.Worker(args.broker, rank, args.workers, timeout_ms=args.timeout_ms) as worker:
        #  Adam, its lr decaying to 0 over the run (a cosine, on the broker:
        #  under BSP, one optimizer step per clock)
        optimizer = psmq.torch.DistributedOptimizer(worker, model.named_parameters(),
                                                    optimizer="adam", lr=args.lr,
                                                    decay_steps=steps)
        order = np.random.default_rng(rank).permutation(len(images))
        loss_sum, seen = 0.0, 0
        for step in range(steps):
            at = (step % per_epoch) * args.batch
            if at == 0 and step:
                order = np.random.default_rng(rank + 1000 * step).permutation(len(images))
            batch = order[at:at + args.batch]
            x, y = torch.from_numpy(images[batch]), torch.from_numpy(labels[batch])
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss_sum, seen = loss_sum + float(loss), seen + 1
            last = step + 1 == steps
            if (step + 1) % args.report_every == 0 or last:
                line = "rank %d step %d/%d: loss %.4f" % (rank, step + 1, steps, loss_sum / seen)
                if last or args.test_every:
                    line += "  test accuracy %.4f" % accuracy(model, test_images, test_labels)
                report(line + "  %.1f s  clock %d" % (time.monotonic() - start,
                                                     worker.current_clock))
                loss_sum, seen = 0.0, 0
        return accuracy(model, test_images, test_labels)


def _worker_process(args, rank, lines):
    try:
        accuracy_ = train(args, rank, report=lines.put if rank == 0 else (lambda line: None))
        lines.put(("done", rank, accuracy_))
    except BaseException as error:
        lines.put(("failed", rank, repr(error)))


def find_psbroker():
    candidates = [os.environ.get("PSMQ_PSBROKER"), os.path.join(SOURCE, "build", "psbroker"),
                  shutil.which("psbroker")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    sys.exit("fashion_mnist: no psbroker (set PSMQ_PSBROKER, or build psmq)")


def start_broker(workers, log):
    """A psbroker on a port the kernel picked; its endpoint and process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = "tcp://127.0.0.1:%d" % s.getsockname()[1]
    broker = subprocess.Popen([find_psbroker(), "--endpoint", endpoint, "--workers", str(workers),
                               "--no-tap"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(log.name) as f:
            match = re.search(r"psbroker listening on (\S+)", f.read())
        if match:
            return match.group(1), broker
        if broker.poll() is not None:
            break
        time.sleep(0.02)
    broker.kill()
    with open(log.name) as f:
        sys.exit("fashion_mnist: psbroker did not start:\n" + f.read())


def launch(args):
    """A broker and args.workers worker processes on this machine."""
    with tempfile.NamedTemporaryFile("w+", prefix="psbroker-", suffix=".log") as log:
        args.broker, broker = start_broker(args.workers, log)
        context = multiprocessing.get_context("spawn")
        lines = context.Queue()
        processes = [context.Process(target=_worker_process, args=(args, rank, lines))
                     for rank in range(args.workers)]
        start = time.monotonic()
        try:
            for process in processes:
                process.start()
            results = {}
            while len(results) < args.workers:
                try:
                    line = lines.get(timeout=args.timeout_ms / 1000 + 60)
                except queue.Empty:
                    sys.exit("fashion_mnist: no word from the workers for a while; giving up")
                if isinstance(line, tuple):
                    kind, rank, value = line
                    if kind == "failed":
                        sys.exit("fashion_mnist: rank %d failed: %s" % (rank, value))
                    results[rank] = value
                else:
                    print(line, flush=True)
            print("fashion_mnist: final test accuracy %.4f (rank 0; %d workers, %d s)"
                  % (results[0], args.workers, time.monotonic() - start), flush=True)
        finally:
            for process in processes:
                process.join(10)
                if process.is_alive():
                    process.kill()
            broker.terminate()
            try:
                broker.wait(10)
            except subprocess.TimeoutExpired:
                broker.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=3, help="workers in the job (3)")
    parser.add_argument("--broker", help="the broker of a job started elsewhere")
    parser.add_argument("--rank", type=int, help="this worker's rank (with --broker)")
    parser.add_argument("--epochs", type=int, default=4, help="passes over each share (4)")
    parser.add_argument("--steps", type=int, default=0, help="steps instead of --epochs")
    parser.add_argument("--batch", type=int, default=64, help="examples per step and worker")
    parser.add_argument("--lr", type=float, default=0.002, help="the broker's Adam lr")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                        help="the IDX files' folder (Debian's dataset-fashion-mnist)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--report-every", type=int, default=100, help="steps between lines")
    parser.add_argument("--test-every", action="store_true",
                        help="test accuracy on every progress line, not only the last")
    parser.add_argument("--test-examples", type=int, default=0,
                        help="test on the first N test examples only (0: all 10000)")
    parser.add_argument("--timeout-ms", type=int, default=60000, help="call timeout")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.data, "train-images-idx3-ubyte.gz")):
        sys.exit("fashion_mnist: no Fashion-MNIST in %s (apt-get install dataset-fashion-mnist, "
                 "or --data DIR)" % args.data)
    if args.broker is not None:
        if args.rank is None:
            sys.exit("fashion_mnist: --broker needs --rank")
        print("rank %d: final test accuracy %.4f" % (args.rank, train(args, args.rank)))
    else:
        launch(args)


if __name__ == "__main__":
    main()
