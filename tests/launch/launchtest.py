"""What the launch files' tests (tests/launch) share.

Each test runs one launch file of deploy/ as it is, under the launcher
it was written for (Slurm, mpirun, Kubernetes simulated), with the
build's programs first in PATH behind a wrapper psworker (wrapper/: it
logs what each worker was given and found), and checks that every worker
trained and finished with its own rank, from its launcher. They print "launch test: ... passed" and
exit 0, exit 77 when this machine lacks what they need (which ctest
counts as a failure: tools/setup installs it all), and 1 with the reason
otherwise.

Environment (ctest sets it; see CMakeLists.txt): PSMQ_SOURCE_DIR, the
source tree; PSMQ_BUILD_DIR, the build with psbroker, psworker, pskeys.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PSMQ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("PSMQ_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
DEPLOY_DIR = os.path.join(SOURCE_DIR, "deploy")
SKIP = 77

#  A short job: the model and data every launch test trains (synthetic
#  data, one epoch of a softmax model: seconds even in a sanitizer build)
WORKER_ARGS = ["--data", "synthetic", "--epochs", "1", "--model", "softmax", "--batch", "64"]


class Failure(Exception):
    """A check that failed, with what was seen."""


def skip(reason):
    print(f"launch test: skipped: {reason}")
    sys.exit(SKIP)


def run_main(name, body):
    """Run body(); report passed, skipped (77) or failed (1)."""
    try:
        body()
    except Failure as failure:
        print(f"launch test: {name} FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"launch test: {name} passed")


def clean_environment():
    """This process's environment without what would steer a launch file
    or a worker from outside the test: PSMQ_* settings, and the variables
    of a launcher this test may itself run under (Slurm, MPI, torchrun,
    Kubernetes)."""
    prefixes = ("PSMQ_", "SLURM_", "OMPI_", "PMIX_", "PMI_")
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "JOB_COMPLETION_INDEX",
             "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
    return {name: value for name, value in os.environ.items()
            if not name.startswith(prefixes) and name not in names}


def kernel_port():
    """A port the kernel picks for 127.0.0.1, free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, condition, timeout, step=0.1):
    """Poll condition() until it is true; Failure after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise Failure(f"{what}: not within {timeout:g} s")
        time.sleep(step)


def run_bounded(command, timeout, what, **options):
    """Run command in a session of its own; past timeout seconds, SIGTERM
    to the whole session (a launch file's trap then stops its broker and
    deletes its folder), SIGKILL 10 s later, and Failure with the output
    so far. Returns the CompletedProcess (text, stdout and stderr)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, **options)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate(timeout=10)
        raise Failure(f"{what} did not finish within {timeout:g} s:\n{stdout}{stderr}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def build_program(name):
    path = os.path.join(BUILD_DIR, name)
    if not os.access(path, os.X_OK):
        raise Failure(f"{path} is missing: build psmq first")
    return path


def program_path(scratch):
    """PATH for a launch file: tests/launch/wrapper/psworker, then the
    build's programs. The wrapper logs what each worker was given and
    where the build's psworker found its rank (--print-config), then
    runs it."""
    wrapper = os.path.join(scratch, "wrapper")
    os.makedirs(wrapper, exist_ok=True)
    shutil.copy(os.path.join(HERE, "wrapper", "psworker"), wrapper)
    return ":".join([wrapper, BUILD_DIR, os.environ.get("PATH", "/usr/bin:/bin")])


def check_ranks(output, workers, what):
    """Every rank 0 .. workers-1 finished training once, no other rank."""
    done = [int(rank) for rank in re.findall(r"^rank (\d+) done: 1 epochs, test accuracy",
                                             output, re.MULTILINE)]
    if sorted(done) != list(range(workers)):
        raise Failure(f"{what}: ranks done {sorted(done)}, expected 0..{workers - 1}; "
                      f"output:\n{output}")


def check_no_rank_flags(output, workers, what):
    """Every worker was started (the wrapper logs "psworker given: ARGS"),
    and none was told --rank or --workers."""
    given = re.findall(r"^psworker given:(.*)$", output, re.MULTILINE)
    if len(given) != workers:
        raise Failure(f"{what}: {len(given)} psworkers started, expected {workers}:\n{output}")
    for arguments in given:
        if re.search(r"(^| )--(rank|workers)( |=|$)", arguments):
            raise Failure(f"{what}: a worker was given {arguments.strip()}")


def check_rank_source(output, variable, workers, what):
    """Each worker's psworker --print-config (through the wrapper) names
    variable as where its rank came from."""
    lines = re.findall(rf"^psworker config:.*\brank\b.*\b{variable}\b.*$", output,
                       re.MULTILINE | re.IGNORECASE)
    if len(lines) != workers:
        raise Failure(f"{what}: {len(lines)} workers took their rank from {variable}, "
                      f"expected {workers}:\n{output}")
