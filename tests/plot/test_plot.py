"""tools/plot on a real run (issue 16): a psbroker and two psworker
processes on loopback train one epoch of the synthetic set, each writing
its metrics file (rank 0 JSON Lines, rank 1 CSV) with a validation split;
tools/plot draws them, and the figures are checked: a PNG signature, SVG
that parses as XML with one line per worker in each panel, and the
series it says it drew. Also its errors on a missing or bad file.

Binaries from PSMQ_BUILD_DIR (ctest sets it), tools/plot from this tree.
Run: PSMQ_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/plot
"""

import json
import os
import socket
import subprocess
import time
import xml.etree.ElementTree as ElementTree

import pytest

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PSMQ_BUILD_DIR", os.path.join(SOURCE, "build"))
PLOT = os.path.join(SOURCE, "tools", "plot")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
# The synthetic set's 12000 examples less the 1200 held out, halved, in
# steps of 32: 168 steps a rank; validated every 50 and at the end
STEPS = 168
VALIDATIONS = 4


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_listening(broker, port, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert broker.poll() is None, "psbroker exited"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail("psbroker did not listen")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The two workers' metrics files, after a job of one epoch."""
    folder = tmp_path_factory.mktemp("run")
    port = free_port()
    log = open(folder / "broker.log", "w")
    broker = subprocess.Popen([os.path.join(BUILD, "psbroker"), "--port", str(port), "--bind",
                               "127.0.0.1", "--workers", "2"], stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        wait_for_listening(broker, port)
        paths = [str(folder / "rank0.jsonl"), str(folder / "rank1.csv")]
        workers = [subprocess.Popen(
            [os.path.join(BUILD, "psworker"), "--broker", f"tcp://127.0.0.1:{port}", "--rank",
             str(rank), "--workers", "2", "--data", "synthetic", "--epochs", "1", "--hidden",
             "32", "--json", "--metrics-file", paths[rank], "--validation-fraction", "0.1",
             "--eval-every", "50"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for rank in range(2)]
        for rank, worker in enumerate(workers):
            out, _ = worker.communicate(timeout=90)
            assert worker.returncode == 0, f"rank {rank}: {out.decode()}"
    finally:
        broker.terminate()
        broker.wait(timeout=30)
        log.close()
    return folder, paths


def plot(*args):
    return subprocess.run(["/usr/bin/python3", "-B", PLOT, *args], capture_output=True,
                          text=True, timeout=120)


def test_plot_draws_each_worker_of_a_real_run(run):
    folder, paths = run
    out = folder / "figures"
    done = plot(*paths, "--out", str(out), "--summary")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    series = summary["series"]
    assert series["loss"] == {"rank 0": STEPS, "rank 1": STEPS}
    assert series["wait"] == {"rank 0": STEPS, "rank 1": STEPS}
    assert series["staleness"] == {"rank 0": STEPS, "rank 1": STEPS}
    # Rank 0 alone validates, by default
    assert series["validation_loss"] == {"rank 0": VALIDATIONS}
    assert series["validation_accuracy"] == {"rank 0": VALIDATIONS}
    for figure in ("curves", "workers"):
        png = out / f"metrics-{figure}.png"
        svg = out / f"metrics-{figure}.svg"
        assert str(png) in summary["files"] and str(svg) in summary["files"]
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        assert png.stat().st_size > 10000
        root = ElementTree.parse(svg).getroot()
        assert root.tag == f"{SVG}svg"
        ids = {element.get("id") for element in root.iter(f"{SVG}g")}
        panels = (["loss", "validation_loss", "validation_accuracy"] if figure == "curves"
                  else ["wait", "staleness"])
        for panel in panels:
            ranks = [0] if panel.startswith("validation") else [0, 1]
            for rank in ranks:
                line = f"{panel}-rank{rank}"
                assert line in ids, f"no {line} in {svg}"
                # A drawn line: a path with as many points as records
                path = next(element for element in root.iter(f"{SVG}g")
                            if element.get("id") == line).find(f".//{SVG}path")
                assert path is not None and path.get("d").count("L") >= 2
            if panel.startswith("validation"):
                assert f"{panel}-rank1" not in ids, "rank 1 validated"


def test_plot_says_what_is_wrong_with_a_file(tmp_path):
    missing = plot(str(tmp_path / "nope.jsonl"), "--out", str(tmp_path))
    assert missing.returncode == 2
    assert "nope.jsonl: no such file" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"rank": 0, "clock": 1, "loss": 2.0}\n{not json\n')
    wrong = plot(str(bad), "--out", str(tmp_path))
    assert wrong.returncode == 2
    assert "bad.jsonl line 2: not JSON" in wrong.stderr
    csv = tmp_path / "other.csv"
    csv.write_text("a,b\n1,2\n")
    other = plot(str(csv), "--out", str(tmp_path))
    assert other.returncode == 2 and "other.csv: not a metrics file" in other.stderr
    assert plot("--help").stdout.startswith("usage: tools/plot")
