"""Fixtures of the psmq Python binding's tests (tests/python).

broker      starts psbroker: broker("--workers", 2, ...) listens on
            tcp://127.0.0.1 at a port the kernel picked, waits (bounded)
            for its "psbroker listening on <endpoint>" line and returns a
            Broker (.endpoint, .output(), .kill()); every broker still
            running is killed at teardown
keys        a folder with a broker key pair and a worker key pair (made by
            the build's pskeys): .broker_secret, .broker_public,
            .worker_secret, .clients (the allow-list folder)
dead_endpoint  a tcp://127.0.0.1 endpoint where nothing listens, and where
            nothing can start listening during the test (the port is bound
            by a socket that does not listen, so a connection is refused)

Environment (ctest sets it; see CMakeLists.txt): PYTHONPATH names python/,
PSMQ_LIBRARY the build's libpsworker, PSMQ_PSBROKER and PSMQ_PSKEYS the
binaries (defaults: PSMQ_BUILD_DIR/psbroker, PSMQ_BUILD_DIR/pskeys, with
PSMQ_BUILD_DIR by default build/ at the top of the source tree).
"""

import contextlib
import itertools
import os
import re
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PSMQ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("PSMQ_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
PSBROKER = os.environ.get("PSMQ_PSBROKER") or os.path.join(BUILD_DIR, "psbroker")
PSKEYS = os.environ.get("PSMQ_PSKEYS") or os.path.join(BUILD_DIR, "pskeys")

#  Bounds for a broker's start: generous for a loaded machine
START_TIMEOUT = 20.0


def kernel_port():
    """A port the kernel picks for 127.0.0.1, free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One psbroker process, its endpoint and its log (stdout and stderr).

    It binds a port the kernel picked (--endpoint), not psbroker's --port 0,
    which takes the lowest free port from 49152: other tests on the machine
    free and take those all the time, and a worker reconnecting to a port a
    new broker took would talk to the wrong broker. A port taken between
    the pick and the bind: another pick."""

    BIND_TRIES = 5

    def __init__(self, args, log_path, endpoint=None):
        if not os.access(PSBROKER, os.X_OK):
            pytest.fail("%s not found: build psmq first (or set PSMQ_PSBROKER)" % PSBROKER)
        self.log_path = log_path
        for attempt in range(self.BIND_TRIES):
            chosen = endpoint or "tcp://127.0.0.1:%d" % kernel_port()
            self.args = [PSBROKER, "--no-tap", "--endpoint", chosen] + list(args)
            if self._start(retry=endpoint is None and attempt + 1 < self.BIND_TRIES):
                return

    def _start(self, retry):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            match = re.search(r"psbroker listening on (\S+)", self.output())
            if match:
                self.endpoint = match.group(1)
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

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def broker(tmp_path):
    with contextlib.ExitStack() as started:
        logs = itertools.count()

        def start(*args, endpoint=None):
            log = tmp_path / ("psbroker-%d.log" % next(logs))
            b = Broker([str(a) for a in args], log, endpoint)
            started.callback(b.kill)
            return b

        yield start


@pytest.fixture
def keys(tmp_path):
    if not os.access(PSKEYS, os.X_OK):
        pytest.fail("%s not found: build psmq first (or set PSMQ_PSKEYS)" % PSKEYS)
    folder = tmp_path / "keys"
    clients = folder / "clients"
    for name, where in (("broker", folder), ("worker", clients)):
        subprocess.run([PSKEYS, "new", name, "--dir", str(where)], check=True, timeout=30,
                       stdout=subprocess.DEVNULL)
    return SimpleNamespace(broker_secret=str(folder / "broker.key_secret"),
                           broker_public=str(folder / "broker.key"),
                           worker_secret=str(clients / "worker.key_secret"),
                           clients=str(clients), folder=str(folder))


@pytest.fixture
def dead_endpoint():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield "tcp://127.0.0.1:%d" % s.getsockname()[1]
