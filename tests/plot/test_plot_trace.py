"""tools/plot-trace draws a Chrome trace from pstap trace (issue 16): the
committed recording tests/golden/session.pstap turned into a trace by
the built pstap, then drawn; its summary must name the tracks and the
spans the trace holds, the PNG must be a PNG and the SVG parse. Also its
errors on a missing file, a file that is not a trace and a bad --out.

Run: PSMQ_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/plot
"""

import json
import os
import subprocess
import xml.etree.ElementTree as ElementTree

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PSMQ_BUILD_DIR", os.path.join(SOURCE, "build"))
PLOT_TRACE = os.path.join(SOURCE, "tools", "plot-trace")
RECORDING = os.path.join(SOURCE, "tests", "golden", "session.pstap")


def plot_trace(*args):
    return subprocess.run(["/usr/bin/python3", PLOT_TRACE, *args], capture_output=True,
                          text=True, timeout=60)


def make_trace(folder):
    trace = folder / "session.json"
    done = subprocess.run([os.path.join(BUILD, "pstap"), "trace", "-r", RECORDING, "-w",
                           str(trace)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return trace


def test_the_recordings_tracks_and_spans_are_drawn(tmp_path):
    trace = make_trace(tmp_path)
    events = json.loads(trace.read_text())["traceEvents"]
    expected = {}
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
    for event in events:
        if event.get("ph") == "X":
            track = names[(event["pid"], event["tid"])]
            expected.setdefault(track, {}).setdefault(event["name"], 0)
            expected[track][event["name"]] += 1
    png = tmp_path / "trace.png"
    done = plot_trace(str(trace), "--out", str(png), "--summary")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["spans"] == expected
    assert summary["tracks"][:2] == ["worker 0", "worker 1"]
    assert "aggregation" in summary["tracks"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "trace.svg"
    assert plot_trace(str(trace), "--out", str(svg)).returncode == 0
    ElementTree.parse(svg)


def test_a_window_keeps_only_its_spans(tmp_path):
    trace = make_trace(tmp_path)
    done = plot_trace(str(trace), "--out", str(tmp_path / "w.png"), "--summary",
                      "--from-ms", "4.5")
    assert done.returncode == 0, done.stderr
    # Only the BYE, 5 ms after the first event, is left
    assert json.loads(done.stdout)["spans"] == {"worker 0": {"bye": 1}}


def test_bad_input_is_refused_naming_it(tmp_path):
    done = plot_trace(str(tmp_path / "missing.json"), "--out", str(tmp_path / "x.png"))
    assert done.returncode == 2 and "missing.json" in done.stderr
    (tmp_path / "not.json").write_text('{"hello": 1}')
    done = plot_trace(str(tmp_path / "not.json"), "--out", str(tmp_path / "x.png"))
    assert done.returncode == 2 and "not a Chrome trace" in done.stderr
    done = plot_trace(str(make_trace(tmp_path)), "--out", str(tmp_path / "x.jpg"))
    assert done.returncode == 2 and "x.jpg" in done.stderr
