"""deploy/slurm/psmq.sbatch on a real single-node Slurm (Debian's
slurm-wlm), started and stopped by this test.

The test writes its own slurm.conf in a scratch folder (SLURM_CONF names
it; nothing under /etc is read or touched): one node, localhost at
127.0.0.1, with 4 CPUs whatever the machine has (config_overrides), one
partition, auth/none (this machine's Slurm 22.05 still has it: no munged
needed), ports the kernel picked. It starts slurmctld and slurmd in the
foreground (-D) as root, waits until the node is idle, submits the batch
script unchanged with sbatch --wait (sbatch's own options asking for 1
node and 3 tasks on it) and checks the job's output: the broker listened
with keys, ranks 0, 1 and 2 each trained and finished once, no worker was
given --rank or --workers, each took its rank from SLURM_PROCID, the
job's folder with its keys is gone. Then, passed or not, it cancels what
is left, stops both daemons, kills whatever the cluster started that is
still there, and deletes the scratch folder.
"""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

import launchtest as lt
from launchtest import Failure

WORKERS = 3
#  The node's CPUs as slurm.conf says (config_overrides: whatever the
#  machine has), one per task of the script's --ntasks-per-node
CPUS = 4
JOB_TIMEOUT = 45
NODE = "localhost"


def slurm_conf(scratch, controller_port, node_port):
    return f"""\
ClusterName=psmqtest
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation={scratch}/state
SlurmdSpoolDir={scratch}/spool
SlurmctldPidFile={scratch}/slurmctld.pid
SlurmdPidFile={scratch}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
KillWait=5
SlurmdParameters=config_overrides
NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={NODE} CPUs={CPUS} State=UNKNOWN
PartitionName=psmq Nodes={NODE} Default=YES MaxTime=5 State=UP
"""


class Slurm:
    """slurmctld and slurmd of a scratch cluster, and its commands."""

    def __init__(self, scratch):
        self.scratch = scratch
        for folder in ("state", "spool"):
            os.makedirs(os.path.join(scratch, folder))
        self.conf = os.path.join(scratch, "slurm.conf")
        with open(self.conf, "w") as out:
            out.write(slurm_conf(scratch, lt.kernel_port(), lt.kernel_port()))
        self.env = dict(lt.clean_environment(), SLURM_CONF=self.conf)
        self.daemons = []

    def start(self):
        for name, args in (("slurmctld", ["slurmctld", "-D", "-c", "-i"]),
                           ("slurmd", ["slurmd", "-D", "-N", NODE])):
            log = open(os.path.join(self.scratch, name + ".log"), "w")
            self.daemons.append((name, subprocess.Popen(
                args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)))
            log.close()
        lt.wait_for("the node idle in sinfo", self.node_idle, 30, step=0.25)

    def command(self, *args, timeout=20):
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def node_idle(self):
        for name, daemon in self.daemons:
            if daemon.poll() is not None:
                raise Failure(f"{name} exited with {daemon.returncode}: {self.log(name)}")
        done = self.command("sinfo", "--noheader", "--nodes", NODE, "--format", "%T")
        return done.returncode == 0 and done.stdout.strip() == "idle"

    def log(self, name):
        with open(os.path.join(self.scratch, name + ".log"), errors="replace") as log:
            return log.read()[-3000:]

    def stop(self):
        """Cancel every job (slurmd kills what SIGTERM leaves after
        KillWait, 5 s), stop both daemons (SIGTERM, SIGKILL to their
        process groups after 10 s), then kill whatever this cluster
        started and is still there."""
        if any(daemon.poll() is None for _, daemon in self.daemons):
            try:
                self.command("scancel", "--user", "root", timeout=10)
                lt.wait_for("no job left", lambda: not self.command(
                    "squeue", "--noheader", timeout=10).stdout.strip(), 20, step=0.25)
            except (Failure, subprocess.TimeoutExpired):
                pass
        for _, daemon in reversed(self.daemons):
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for _, daemon in reversed(self.daemons):
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=10)
        self.kill_leftovers()

    def kill_leftovers(self):
        """SIGKILL to every process with this cluster's SLURM_CONF in its
        environment: slurmd's step daemons (slurmstepd, whose parent is
        init) and the jobs' processes inherit it; nothing else has it."""
        mark = f"SLURM_CONF={self.conf}".encode()
        for _ in range(50):
            left = []
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or int(entry) == os.getpid():
                    continue
                try:
                    with open(f"/proc/{entry}/environ", "rb") as environ:
                        if mark in environ.read().split(b"\0"):
                            left.append(int(entry))
                except OSError:
                    continue
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)


def run_job(slurm, scratch):
    submit_dir = os.path.join(scratch, "submit")
    os.makedirs(submit_dir)
    env = dict(slurm.env, PATH=lt.program_path(scratch), PSMQ_PORT=str(lt.kernel_port()))
    script = os.path.join(lt.DEPLOY_DIR, "slurm", "psmq.sbatch")
    try:
        done = subprocess.run(
            ["sbatch", "--wait", "--parsable", "--nodes", "1", "--ntasks-per-node", str(WORKERS),
             "--time", "2",
             "--output", os.path.join(submit_dir, "job-%j.out"), script] + lt.WORKER_ARGS,
            cwd=submit_dir, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failure(f"the job did not finish within {JOB_TIMEOUT} s; "
                      f"squeue: {slurm.command('squeue').stdout}; "
                      f"output so far: {read_outputs(submit_dir)}")
    output = read_outputs(submit_dir)
    if done.returncode != 0:
        raise Failure(f"sbatch --wait exited with {done.returncode}: {done.stderr}\n"
                      f"job output:\n{output}\nslurmd: {slurm.log('slurmd')}")
    return submit_dir, output


def read_outputs(submit_dir):
    text = ""
    for path in sorted(glob.glob(os.path.join(submit_dir, "job-*.out"))):
        with open(path, errors="replace") as out:
            text += out.read()
    return text


def check_job(submit_dir, output):
    if "psbroker admits clients with a key of the allow-list" not in output:
        raise Failure(f"the broker did not run with keys:\n{output}")
    if f"psmq.sbatch: {WORKERS} workers on 1 node(s), broker tcp://127.0.0.1:" not in output:
        raise Failure(f"the script did not name its broker on the node's address:\n{output}")
    lt.check_ranks(output, WORKERS, "slurm")
    lt.check_no_rank_flags(output, WORKERS, "slurm")
    lt.check_rank_source(output, "SLURM_PROCID", WORKERS, "slurm")
    if "psmq.sbatch: workers finished with status 0" not in output:
        raise Failure(f"the workers' step did not end with status 0:\n{output}")
    left = [name for name in os.listdir(submit_dir) if name.startswith("psmq-")]
    if left:
        raise Failure(f"the job left its folder behind: {left}")
    print(f"launch test: the job's output:\n{output}")


def main():
    for program in ("slurmctld", "slurmd", "sbatch", "sinfo", "scancel"):
        if not shutil.which(program):
            lt.skip(f"no {program} (Debian's slurm-wlm; tools/setup installs it)")
    if os.geteuid() != 0:
        lt.skip("slurmd must run as root")
    scratch = tempfile.mkdtemp(prefix="psmq-slurm-")
    slurm = Slurm(scratch)
    try:
        slurm.start()
        check_job(*run_job(slurm, scratch))
    finally:
        slurm.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    lt.run_main("slurm", main)
