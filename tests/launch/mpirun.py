"""deploy/mpi/psmq-mpirun with Debian's Open MPI (openmpi-bin): 4
workers on this host, on loopback only.

The script runs unchanged; the mpirun options a root CI machine with 2
cores needs go through it as they would from a user: --allow-run-as-root,
--oversubscribe (4 ranks, 2 cores), and MCA settings that keep Open MPI's
own traffic on lo. The test checks the broker listened with keys, ranks
0..3 each trained and finished once, no worker was given --rank or
--workers, and the job's folder with its keys is gone.
"""

import os
import shutil
import tempfile

import launchtest as lt
from launchtest import Failure

WORKERS = 4
JOB_TIMEOUT = 45
LOOPBACK_ONLY = ["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo",
                 "--mca", "oob_tcp_if_include", "lo"]


def main():
    if not shutil.which("mpirun"):
        lt.skip("no mpirun (Debian's openmpi-bin; tools/setup installs it)")
    scratch = tempfile.mkdtemp(prefix="psmq-mpirun-")
    try:
        env = dict(lt.clean_environment(), PATH=lt.program_path(scratch),
                   PSMQ_PORT=str(lt.kernel_port()), PSMQ_BROKER_HOST="127.0.0.1")
        options = ["-np", str(WORKERS), "--oversubscribe"] + LOOPBACK_ONLY
        if os.geteuid() == 0:
            options.append("--allow-run-as-root")
        command = [os.path.join(lt.DEPLOY_DIR, "mpi", "psmq-mpirun")] + options + ["--"]
        done = lt.run_bounded(command + lt.WORKER_ARGS, JOB_TIMEOUT, "psmq-mpirun",
                              cwd=scratch, env=env)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise Failure(f"psmq-mpirun exited with {done.returncode}:\n{output}")
        if "psbroker admits clients with a key of the allow-list" not in output:
            raise Failure(f"the broker did not run with keys:\n{output}")
        if f"psmq-mpirun: {WORKERS} workers, broker tcp://127.0.0.1:" not in output:
            raise Failure(f"the script did not name its broker:\n{output}")
        lt.check_ranks(output, WORKERS, "mpirun")
        lt.check_no_rank_flags(output, WORKERS, "mpirun")
        lt.check_rank_source(output, "OMPI_COMM_WORLD_RANK", WORKERS, "mpirun")
        if "psmq-mpirun: workers finished with status 0" not in output:
            raise Failure(f"mpirun did not end with status 0:\n{output}")
        left = [name for name in os.listdir(scratch) if name.startswith("psmq-mpirun-")]
        if left:
            raise Failure(f"the job left its folder behind: {left}")
        print(f"launch test: psmq-mpirun's output:\n{output}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    lt.run_main("mpirun", main)
