"""Fixtures of the interoperability suite.

source_dir  the top of the source tree
pb          the Python code protoc generates from proto/ps.proto, at test
            time, into a temporary directory (never into the source tree)
ctx         one ZeroMQ context for the session
broker      starts psbroker: broker("--workers", 2, ...) binds tcp://127.0.0.1
            on a port the kernel picked (endpoint=None: the arguments say
            where), waits for its "psbroker listening on <endpoint>" line
            and returns a Broker; every broker still running is killed at
            teardown
client      connects a psclient.Client: client(b, rank=0, world_size=2)
workers     starts a job: workers(2, "--staleness", 1) is a broker for 2
            workers (more psbroker options after the count) and a client
            per rank that said HELLO, as (broker, [client0, client1])

Environment: PSMQ_BUILD_DIR (where psbroker is; default <source>/build),
PSMQ_SOURCE_DIR (default: two levels above this file).
"""

import contextlib
import importlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import psclient  # noqa: E402

SOURCE_DIR = os.environ.get("PSMQ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("PSMQ_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
PSBROKER = os.path.join(BUILD_DIR, "psbroker")

#  Bounds for the broker's start and stop: generous for a loaded machine
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """ps_pb2, generated from proto/ps.proto by protoc now."""
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.fail("protoc not found: tools/setup installs Debian's protobuf-compiler")
    out = tmp_path_factory.mktemp("ps_pb2")
    proto_dir = os.path.join(SOURCE_DIR, "proto")
    subprocess.run([protoc, "--python_out=%s" % out, "-I", proto_dir,
                    os.path.join(proto_dir, "ps.proto")], check=True, timeout=60)
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("ps_pb2")
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="session")
def source_dir():
    return SOURCE_DIR


@pytest.fixture(scope="session")
def ctx():
    context = zmq.Context()
    yield context
    context.term()


def kernel_port():
    """A port the kernel picks for 127.0.0.1, free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One psbroker process, its endpoint and its log (stdout and stderr).

    By default it binds tcp://127.0.0.1 on a port the kernel picked, not on
    the lowest free port from 49152 (tcp://127.0.0.1:*): other test runs on
    the machine free and take those all the time, and their workers
    reconnecting to a port a new broker took would talk to the wrong broker.
    A port taken in the moment between the pick and the bind: another pick.
    """

    BIND_TRIES = 5

    def __init__(self, args, log_path, endpoint="kernel"):
        if not os.access(PSBROKER, os.X_OK):
            pytest.fail("%s not found: build psmq first (or set PSMQ_BUILD_DIR)" % PSBROKER)
        self.log_path = log_path
        self.endpoint = None
        for attempt in range(self.BIND_TRIES):
            self.args = [PSBROKER, "--no-tap"] + list(args)
            if endpoint == "kernel":
                self.args += ["--endpoint", "tcp://127.0.0.1:%d" % kernel_port()]
            elif endpoint is not None:
                self.args += ["--endpoint", endpoint]
            if self._start(retry=endpoint == "kernel" and attempt + 1 < self.BIND_TRIES):
                return

    def _start(self, retry):
        """Starts the process; False when it could not bind and may try again."""
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            match = re.search(r"psbroker listening on (\S+)", self.output())
            if match:
                self.endpoint = match.group(1)
                self.port = int(self.endpoint.rsplit(":", 1)[1])
                return True
            if self.proc.poll() is not None:
                self.log.close()
                if retry:
                    return False
                pytest.fail("psbroker %s exited with %d:\n%s"
                            % (" ".join(self.args[1:]), self.proc.returncode, self.output()))
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail("psbroker printed no endpoint within %.0f s:\n%s"
                            % (START_TIMEOUT, self.output()))
            time.sleep(0.01)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def terminate(self):
        """Sends SIGTERM: the broker starts stopping."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self):
        """SIGTERM, then waits (bounded) for the exit; returns the exit status."""
        self.terminate()
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("psbroker did not stop within %.0f s of SIGTERM:\n%s"
                        % (STOP_TIMEOUT, self.output()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        self.log.close()


@pytest.fixture
def broker(tmp_path):
    with contextlib.ExitStack() as started:
        logs = itertools.count()

        def start(*args, endpoint="kernel"):
            log = tmp_path / ("psbroker-%d.log" % next(logs))
            b = Broker([str(a) for a in args], log, endpoint)
            started.callback(b.kill)
            return b

        yield start


@pytest.fixture
def client(pb, ctx):
    with contextlib.ExitStack() as connected:
        def connect(b, rank=0, world_size=1, timeout=psclient.DEFAULT_TIMEOUT):
            endpoint = b if isinstance(b, str) else b.endpoint
            c = psclient.Client(pb, ctx, endpoint, rank=rank, world_size=world_size, timeout=timeout)
            connected.callback(c.close)
            return c

        yield connect


@pytest.fixture
def workers(broker, client):
    def start(n, *args):
        b = broker("--workers", n, *args)
        cs = [client(b, rank=rank, world_size=n) for rank in range(n)]
        for c in cs:
            c.hello()
        return b, cs

    return start
