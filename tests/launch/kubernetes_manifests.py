"""deploy/kubernetes/*.yaml: their structure, read with a YAML parser
(Debian's python3-yaml), then the pods' commands run here as a pod would
run them.

Structure: a headless Service (clusterIP: None) that is the StatefulSet's
serviceName and selects its pods' labels; the brokers' --workers (their
PSMQ_WORKERS) equal to the Indexed Job's completions, parallelism and
PSMQ_WORKERS; the workers' PSMQ_BROKER naming each StatefulSet pod, in
ordinal order, by its DNS name under the Service at the Service's port,
which is the brokers' containerPort and --port; every mount's volume
declared; the key files the commands name inside the Secrets' items; no
--rank or --workers on a worker; both pods on the Containerfile's image
and user.

Run: each broker's command in /bin/sh with its manifest's environment
and the HOSTNAME and KUBERNETES_SERVICE_HOST a StatefulSet pod has, each
worker's with the Job's environment and the JOB_COMPLETION_INDEX an
Indexed Job's pod has. What a cluster has and this machine does not is
replaced, and only that: the Secrets' mount paths by folders holding
keys from the build's pskeys in the Secrets' layout, the checkpoint
volume by a scratch folder, the pods' DNS names by 127.0.0.1, and port
5555 by a free port per broker (they share this host). The job must
train: every rank 0..N-1 finishes once, each broker serves its own
shard. With a psworker that prints its settings (--print-config), the
rank must come from JOB_COMPLETION_INDEX in a Job's pod and from the
HOSTNAME's ordinal in a StatefulSet's pod.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile

import launchtest as lt
from launchtest import Failure

try:
    import yaml
except ImportError:
    yaml = None

JOB_TIMEOUT = 50
SERVICE_HOST = "10.96.0.1"  # set, never contacted: a pod's sign of Kubernetes


def load_manifests():
    objects = []
    paths = sorted(glob.glob(os.path.join(lt.DEPLOY_DIR, "kubernetes", "*.yaml")))
    if not paths:
        raise Failure("no deploy/kubernetes/*.yaml")
    for path in paths:
        with open(path) as manifest:
            objects += [doc for doc in yaml.safe_load_all(manifest) if doc is not None]
    by_kind = {}
    for doc in objects:
        for field in ("apiVersion", "kind", "metadata"):
            if field not in doc:
                raise Failure(f"an object without {field}: {doc}")
        by_kind.setdefault(doc["kind"], []).append(doc)
    expected = {"Service": "v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}
    if sorted(by_kind) != sorted(expected) or any(len(docs) != 1 for docs in by_kind.values()):
        raise Failure(f"expected one each of {sorted(expected)}, found "
                      f"{ {kind: len(docs) for kind, docs in by_kind.items()} }")
    for kind, version in expected.items():
        if by_kind[kind][0]["apiVersion"] != version:
            raise Failure(f"{kind} has apiVersion {by_kind[kind][0]['apiVersion']}, not {version}")
    return by_kind["Service"][0], by_kind["StatefulSet"][0], by_kind["Job"][0]


def only_container(pod_spec, what):
    containers = pod_spec.get("containers") or []
    if len(containers) != 1:
        raise Failure(f"{what}: {len(containers)} containers, expected one")
    return containers[0]


def env_of(container):
    env = {}
    for variable in container.get("env") or []:
        if "value" not in variable or not isinstance(variable["value"], str):
            raise Failure(f"{container['name']}: {variable.get('name')} needs a value "
                          f"that is a string (quoted in YAML)")
        env[variable["name"]] = variable["value"]
    return env


def selects(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def check_volumes(pod_spec, container, what, claims=()):
    """Every mount names a volume of the pod or a claim of the
    StatefulSet's volumeClaimTemplates; returns {mountPath: volume}, None
    for a claim."""
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes") or []}
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes and mount["name"] not in claims:
            raise Failure(f"{what}: the mount {mount['mountPath']} names no volume")
        mounts[mount["mountPath"]] = volumes.get(mount["name"])
    return mounts


def secret_files(mounts, what):
    """The files the Secret volumes put in the pod: {path: (the volume's
    mountPath, the Secret's key)}."""
    files = {}
    for mount_path, volume in mounts.items():
        if volume and "secret" in volume:
            for item in volume["secret"].get("items") or []:
                files[os.path.join(mount_path, item["path"])] = (mount_path, item["key"])
    if not files:
        raise Failure(f"{what}: no Secret with keys is mounted")
    return files


def check_structure(service, statefulset, job):
    """The checks of the module's comment; returns what the run needs."""
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    broker = only_container(pod, "StatefulSet")
    broker_env = env_of(broker)
    labels = spec["template"]["metadata"]["labels"]

    if service["spec"].get("clusterIP") != "None":
        raise Failure(f"the Service is not headless: clusterIP {service['spec'].get('clusterIP')}")
    if spec.get("serviceName") != service["metadata"]["name"]:
        raise Failure(f"the StatefulSet's serviceName {spec.get('serviceName')} is not the "
                      f"Service {service['metadata']['name']}")
    if not selects(service["spec"].get("selector"), labels):
        raise Failure("the Service does not select the StatefulSet's pods")
    if not selects(spec["selector"]["matchLabels"], labels):
        raise Failure("the StatefulSet's selector does not match its own pods")

    #  Ports: the Service's, the container's, the broker's --port
    ports = {port["name"]: port["containerPort"] for port in broker.get("ports") or []}
    if len(service["spec"]["ports"]) != 1:
        raise Failure("the Service should have one port, the brokers' worker port")
    service_port = service["spec"]["ports"][0]
    target = service_port.get("targetPort", service_port["port"])
    container_port = ports.get(target) if isinstance(target, str) else target
    if container_port != service_port["port"]:
        raise Failure(f"Service port {service_port['port']} goes to {target}, container port "
                      f"{container_port}")
    broker_command = broker.get("command", []) + broker.get("args", [])
    script = " ".join(broker_command)
    found = re.findall(r"--port (\d+)", script)
    if found != [str(container_port)]:
        raise Failure(f"the broker's --port {found} is not its containerPort {container_port}")

    #  Sizes: brokers and workers
    replicas = spec["replicas"]
    if "--shard \"${HOSTNAME##*-}\"" not in script:
        raise Failure("the broker does not take its shard from its pod's ordinal")
    if broker_env.get("PSMQ_BROKERS") != str(replicas) or '--shards "$PSMQ_BROKERS"' not in script:
        raise Failure(f"--shards is not the StatefulSet's replicas {replicas}")
    if '--workers "$PSMQ_WORKERS"' not in script:
        raise Failure("the broker's --workers is not its PSMQ_WORKERS")
    job_spec = job["spec"]
    if job_spec.get("completionMode") != "Indexed":
        raise Failure(f"the Job's completionMode is {job_spec.get('completionMode')}, not Indexed")
    workers = job_spec.get("completions")
    worker_pod = job_spec["template"]["spec"]
    worker = only_container(worker_pod, "Job")
    worker_env = env_of(worker)
    sizes = {"completions": workers, "parallelism": job_spec.get("parallelism"),
             "the workers' PSMQ_WORKERS": worker_env.get("PSMQ_WORKERS"),
             "the brokers' PSMQ_WORKERS": broker_env.get("PSMQ_WORKERS")}
    if len({str(size) for size in sizes.values()}) != 1:
        raise Failure(f"the job's size differs: {sizes}")
    if worker_pod.get("restartPolicy") not in ("OnFailure", "Never"):
        raise Failure(f"a Job's pods need restartPolicy OnFailure or Never, not "
                      f"{worker_pod.get('restartPolicy')}")

    #  The workers find every broker by its pod's DNS name, in shard order
    expected = ",".join(f"tcp://{statefulset['metadata']['name']}-{ordinal}."
                        f"{service['metadata']['name']}:{service_port['port']}"
                        for ordinal in range(replicas))
    if worker_env.get("PSMQ_BROKER") != expected:
        raise Failure(f"the workers' PSMQ_BROKER {worker_env.get('PSMQ_BROKER')} is not {expected}")
    worker_command = worker.get("command", []) + worker.get("args", [])
    for word in worker_command:
        if re.match(r"--(rank|workers)(=|$)", word):
            raise Failure(f"a worker is given {word}: it must take it from its pod")

    #  Keys: what the commands and variables name, the Secrets hold
    claims = [claim["metadata"]["name"] for claim in spec.get("volumeClaimTemplates") or []]
    broker_files = secret_files(check_volumes(pod, broker, "StatefulSet", claims), "StatefulSet")
    secret = re.search(r"--curve-secret (\S+)", script)
    allow = re.search(r"--allow-keys (\S+)", script)
    if not secret or secret.group(1) not in broker_files:
        raise Failure("the broker's --curve-secret is not a file of its Secret")
    if not allow or not any(os.path.dirname(path) == allow.group(1) and path.endswith(".key")
                            for path in broker_files):
        raise Failure("the broker's --allow-keys folder holds no public key of its Secret")
    worker_files = secret_files(check_volumes(worker_pod, worker, "Job"), "Job")
    for variable in ("PSMQ_CURVE_SECRET", "PSMQ_BROKER_KEY"):
        if worker_env.get(variable) not in worker_files:
            raise Failure(f"the workers' {variable} is not a file of their Secret")
    check_image(broker, pod, worker, worker_pod)
    return dict(broker_command=broker_command, broker_env=broker_env, broker_files=broker_files,
                worker_command=worker_command, worker_env=worker_env,
                worker_files=worker_files, replicas=replicas, workers=workers,
                port=service_port["port"], statefulset=statefulset["metadata"]["name"],
                job=job["metadata"]["name"])


def check_image(broker, broker_pod, worker, worker_pod):
    """Both pods run the image the Containerfile makes, as its user."""
    with open(os.path.join(lt.DEPLOY_DIR, "kubernetes", "Containerfile")) as containerfile:
        text = containerfile.read()
    tag = re.search(r"build -f deploy/kubernetes/Containerfile -t (\S+) \.", text)
    uid = re.search(r"useradd --uid (\d+)", text)
    if not tag or not uid or f"USER {uid.group(1)}" not in text:
        raise Failure("the Containerfile does not say its tag, or make and use its user")
    for what, container, pod in (("broker", broker, broker_pod), ("worker", worker, worker_pod)):
        if container.get("image") != tag.group(1):
            raise Failure(f"the {what} runs {container.get('image')}, the Containerfile makes "
                          f"{tag.group(1)}")
        if str(pod.get("securityContext", {}).get("runAsUser")) != uid.group(1):
            raise Failure(f"the {what} pod does not run as the image's user {uid.group(1)}")


def make_secrets(scratch, plan):
    """Keys from pskeys, laid out where the Secrets put them; returns how
    each mount path maps to a scratch folder."""
    pskeys = lt.build_program("pskeys")
    made = os.path.join(scratch, "made")
    for name in ("broker", "worker"):
        subprocess.run([pskeys, "new", name, "--dir", made], check=True, timeout=20,
                       capture_output=True)
    places = {}
    for role, files in (("broker", plan["broker_files"]), ("worker", plan["worker_files"])):
        for path, (mount, key) in files.items():
            folder = os.path.join(scratch, f"{role}-secret-{len(places)}")
            folder = places.setdefault((role, mount), folder)
            local = os.path.join(folder, os.path.relpath(path, mount))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            shutil.copy(os.path.join(made, key), local)
    return places


def start_brokers(scratch, plan, places, path):
    brokers = []
    for ordinal in range(plan["replicas"]):
        port = lt.kernel_port()
        replace = [(mount, local) for (role, mount), local in places.items() if role == "broker"]
        replace += [("/var/lib/psmq", os.path.join(scratch, f"checkpoints-{ordinal}")),
                    (f"--port {plan['port']}", f"--port {port} --bind 127.0.0.1")]
        command = []
        for word in plan["broker_command"]:
            for old, new in replace:
                word = word.replace(old, new)
            command.append(word)
        env = dict(plan["broker_env"], PATH=path, HOSTNAME=f"{plan['statefulset']}-{ordinal}",
                   KUBERNETES_SERVICE_HOST=SERVICE_HOST, KUBERNETES_SERVICE_PORT="443")
        log = open(os.path.join(scratch, f"broker-{ordinal}.log"), "w")
        brokers.append((subprocess.Popen(command, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True),
                        log.name, port))
        log.close()
    for ordinal, (broker, log, port) in enumerate(brokers):
        def listening(broker=broker, log=log):
            if broker.poll() is not None:
                raise Failure(f"broker {ordinal} exited {broker.returncode}: {read(log)}")
            return "psbroker listening on" in read(log)
        lt.wait_for(f"broker {ordinal} listening", listening, 30)
        if f"shard {ordinal} of {plan['replicas']}" not in read(log):
            raise Failure(f"broker {ordinal} is not shard {ordinal}: {read(log)}")
        if "admits clients with a key of the allow-list" not in read(log):
            raise Failure(f"broker {ordinal} does not require the workers' key: {read(log)}")
    return brokers


def worker_env(plan, places, path, brokers, index):
    env = dict(plan["worker_env"], PATH=path, JOB_COMPLETION_INDEX=str(index),
               HOSTNAME=f"{plan['job']}-{index}-x7k2q", KUBERNETES_SERVICE_HOST=SERVICE_HOST,
               KUBERNETES_SERVICE_PORT="443")
    env["PSMQ_BROKER"] = ",".join(f"tcp://127.0.0.1:{port}" for _, _, port in brokers)
    for (role, mount), local in places.items():
        if role == "worker":
            for variable in ("PSMQ_CURVE_SECRET", "PSMQ_BROKER_KEY"):
                env[variable] = env[variable].replace(mount, local)
    return env


def run_workers(scratch, plan, places, path, brokers):
    workers = []
    for index in range(plan["workers"]):
        env = worker_env(plan, places, path, brokers, index)
        log = open(os.path.join(scratch, f"worker-{index}.log"), "w")
        workers.append((subprocess.Popen(plan["worker_command"] + lt.WORKER_ARGS, env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True), log.name))
        log.close()
    try:
        lt.wait_for("every worker done", lambda: all(w.poll() is not None for w, _ in workers),
                    JOB_TIMEOUT, step=0.25)
    finally:
        for worker, _ in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)
    output = "".join(read(log) for _, log in workers)
    failed = [index for index, (worker, _) in enumerate(workers) if worker.returncode != 0]
    if failed:
        raise Failure(f"workers {failed} failed:\n{output}")
    lt.check_ranks(output, plan["workers"], "kubernetes")
    lt.check_no_rank_flags(output, plan["workers"], "kubernetes")
    lt.check_rank_source(output, "JOB_COMPLETION_INDEX", plan["workers"], "kubernetes")
    print(f"launch test: the workers' output:\n{output}")


def check_print_config(plan, places, path, brokers):
    """A pod's rank as psworker sees it: from JOB_COMPLETION_INDEX in the
    Job's pod, from the ordinal of HOSTNAME in a StatefulSet's pod."""
    psworker = lt.build_program("psworker")
    env = worker_env(plan, places, path, brokers, 2)
    shown = subprocess.run([psworker, "--print-config"], env=env, capture_output=True,
                           text=True, timeout=20)
    rank = [line for line in shown.stdout.splitlines() if re.match(r"\s*rank\b", line)]
    if shown.returncode != 0 or not rank or not re.search(r"\b2\b", rank[0]) \
            or "JOB_COMPLETION_INDEX" not in rank[0]:
        raise Failure(f"an Indexed Job's pod 2: psworker --print-config shows\n{shown.stdout}"
                      f"{shown.stderr}")
    del env["JOB_COMPLETION_INDEX"]
    env["HOSTNAME"] = "psmq-worker-3"
    shown = subprocess.run([psworker, "--print-config"], env=env, capture_output=True,
                           text=True, timeout=20)
    rank = [line for line in shown.stdout.splitlines() if re.match(r"\s*rank\b", line)]
    if shown.returncode != 0 or not rank or not re.search(r"\b3\b", rank[0]) \
            or "HOSTNAME" not in rank[0]:
        raise Failure(f"a StatefulSet's pod psmq-worker-3: psworker --print-config shows\n"
                      f"{shown.stdout}{shown.stderr}")


def read(path):
    with open(path, errors="replace") as log:
        return log.read()


def main():
    if yaml is None:
        lt.skip("no yaml module (Debian's python3-yaml)")
    plan = check_structure(*load_manifests())
    scratch = tempfile.mkdtemp(prefix="psmq-kubernetes-")
    brokers = []
    try:
        path = lt.program_path(scratch)
        places = make_secrets(scratch, plan)
        brokers = start_brokers(scratch, plan, places, path)
        run_workers(scratch, plan, places, path, brokers)
        check_print_config(plan, places, path, brokers)
    finally:
        for broker, _, _ in brokers:
            if broker.poll() is None:
                broker.terminate()
        for broker, _, _ in brokers:
            try:
                broker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(broker.pid, 9)
                broker.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    lt.run_main("kubernetes_manifests", main)
