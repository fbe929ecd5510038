"""psbroker --metrics HOST:PORT: Prometheus metrics over HTTP (docs/observability.md).

A live broker with --metrics 127.0.0.1:0 is driven by Python clients
(psclient), scraped with urllib and the text parsed with Debian's
prometheus_client (python3-prometheus-client): the families are there with
# HELP and # TYPE, and the numbers match the traffic sent. Bad --metrics
values are refused naming them, a port in use is named, and a client that
never finishes its request blocks neither the workers nor other scrapes.

usage: /usr/bin/python3 -B -m pytest -q -p no:cacheprovider tests/interop/test_metrics.py
"""

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import PSBROKER, SOURCE_DIR
from psclient import wait_for

parser = pytest.importorskip(
    "prometheus_client.parser", reason="tools/setup installs Debian's python3-prometheus-client")

SCRAPE_TIMEOUT = 10


def metrics_url(b):
    """The URL psbroker printed ("psbroker metrics on URL")."""
    found = {}

    def printed():
        match = re.search(r"psbroker metrics on (http://\S+)", b.output())
        if match:
            found["url"] = match.group(1)
        return bool(match)

    wait_for(printed, what="the metrics line in psbroker's output")
    return found["url"]


class Scrape:
    """One GET of /metrics, parsed: samples by name and labels."""

    def __init__(self, url):
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
            assert response.status == 200
            self.content_type = response.headers["Content-Type"]
            self.text = response.read().decode("utf-8")
        self.families = {f.name: f for f in parser.text_string_to_metric_families(self.text)}
        self.samples = {}
        for family in self.families.values():
            for s in family.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(self, name, **labels):
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        assert key in self.samples, "no sample %s%s in:\n%s" % (name, labels, self.text)
        return self.samples[key]

    def type_of(self, family):
        assert family in self.families, "no family %s in:\n%s" % (family, self.text)
        return self.families[family].type


def default_push_budget():
    """PS_DEFAULT_PUSH_BUDGET, as common/ps_limits.h defines it: (N << 20)."""
    with open(SOURCE_DIR + "/common/ps_limits.h") as header:
        found = re.search(r"#define PS_DEFAULT_PUSH_BUDGET \((\d+)ULL << 20\)", header.read())
    assert found, "PS_DEFAULT_PUSH_BUDGET not found in common/ps_limits.h"
    return int(found.group(1)) << 20


def test_scrape_counts_the_traffic_sent(pb, workers):
    b, (c0, c1) = workers(2, "--staleness", 1, "--metrics", "127.0.0.1:0")
    url = metrics_url(b)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url) and not url.endswith(":0/metrics")
    #  INFO names the same place
    assert c0.info()["metrics"] == url

    values = [1.0, 2.0, 3.0, 4.0]
    c0.init({"w": values})
    c1.init({"w": values})
    for c in (c0, c1):
        c.push({"w": [0.5] * 4})
        c.clock()
        c.pull(["w"])
    #  Rank 0 runs ahead: its clock 3 against rank 1's 1 is past staleness
    #  1, so the reply to that CLOCK waits for rank 1 (parked)
    c0.clock()
    parked_seq = c0.send_clock()
    wait_for(lambda: c1.info()["parked_now"] == 1, what="rank 0's clock parked")
    #  Refused input: a push of a key nobody made
    err = c1.error(c1.send_push({"nokey": [1.0]}))
    assert err.error.code == pb.ERR_UNKNOWN_KEY

    s = Scrape(url)
    assert s.content_type.startswith("text/plain") and "version=0.0.4" in s.content_type
    #  Every family has its HELP and TYPE
    for family in s.families.values():
        assert family.documentation, family.name
        assert "# TYPE %s" % family.name in s.text or "# TYPE %s_total" % family.name in s.text
    assert s.type_of("psmq_requests") == "counter"
    assert s.type_of("psmq_worker_clock") == "gauge"
    assert s.type_of("psmq_request_queued_seconds") == "histogram"

    #  Requests by type: what the clients sent (INFO included: 3 so far)
    assert s.value("psmq_requests_total", type="hello") == 2
    assert s.value("psmq_requests_total", type="init") == 2
    assert s.value("psmq_requests_total", type="push") == 3
    assert s.value("psmq_requests_total", type="pull") == 2
    assert s.value("psmq_requests_total", type="clock") == 4
    #  Tensor bytes: two pushes of 4 float32, one refused of 1 (counted as received)
    assert s.value("psmq_received_bytes_total", type="push") == 2 * 16 + 4
    assert s.value("psmq_sent_bytes_total", type="pull") == 2 * 16
    #  Clocks, lag behind the fastest, the parked clock
    assert s.value("psmq_worker_clock", rank=0) == 3
    assert s.value("psmq_worker_clock", rank=1) == 1
    assert s.value("psmq_worker_lag_clocks", rank=0) == 0
    assert s.value("psmq_worker_lag_clocks", rank=1) == 2
    assert s.value("psmq_worker_up", rank=1) == 1
    assert s.value("psmq_workers_live") == 2
    assert s.value("psmq_parked_requests") == 1
    assert s.value("psmq_worker_parked_requests", rank=0) == 1
    assert s.value("psmq_rejected_requests_total", reason="unknown_key") == 1
    assert s.value("psmq_rejected_requests_total", reason="malformed") == 0
    assert s.value("psmq_evictions_total", reason="silent") == 0
    assert s.value("psmq_keys") == 1
    assert s.value("psmq_store_bytes") >= 16
    assert s.value("psmq_tap_dropped_total") == 0
    #  The push budget (its default); no push in parts, so no grant
    assert s.value("psmq_push_budget_bytes") == default_push_budget()
    assert s.value("psmq_push_granted_bytes") == 0
    assert s.value("psmq_push_grants_total") == 0
    #  Latency: one observation per push ack; buckets cumulative up to +Inf
    count = s.value("psmq_request_queued_seconds_count", type="push")
    assert count == 2
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in s.samples.items()
                     if name == "psmq_request_queued_seconds_bucket"
                     and dict(labels)["type"] == "push")
    assert buckets[-1] == (float("inf"), count)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))

    #  Rank 1 catches up: the parked CLOCK is answered, its wait observed
    c1.clock()
    c0.ok(parked_seq, pb.CLOCK)
    s = Scrape(url)
    assert s.value("psmq_parked_requests") == 0
    assert s.value("psmq_requests_parked_total") >= 1
    #  Every reply is observed in each stage (0 when it did not wait there):
    #  5 clocks answered, one of them parked for a while
    assert s.value("psmq_request_parked_seconds_count", type="clock") == 5
    assert s.value("psmq_request_parked_seconds_sum", type="clock") > 0
    assert s.value("psmq_worker_lag_clocks", rank=1) == 1
    assert b.stop() == 0


def test_checkpoint_age(broker, client, tmp_path):
    b = broker("--metrics", "127.0.0.1:0", "--checkpoint", tmp_path / "ck",
               "--checkpoint-clocks", 1)
    c = client(b)
    c.hello()
    c.init({"w": [1.0]})
    c.clock()
    wait_for(lambda: c.info()["checkpoint"]["written"] >= 1, what="a checkpoint written")
    s = Scrape(metrics_url(b))
    assert s.value("psmq_checkpoints_written_total") >= 1
    assert 0 <= s.value("psmq_checkpoint_age_seconds") < 60


def test_scrapes_in_a_loop_ask_the_broker_at_a_bounded_rate(workers):
    #  The port takes no credentials: a client scraping as fast as it can
    #  gets fresh figures, but the ROUTER loop builds at most one snapshot
    #  every 50 ms (PS_METRICS_MIN_GAP_MS) for it
    b, (c,) = workers(1, "--metrics", "127.0.0.1:0")
    url = metrics_url(b)
    c.init({"w": [1.0]})
    Scrape(url)
    start = time.monotonic()
    for pushes in range(1, 21):
        c.push({"w": [1.0]})
        assert Scrape(url).value("psmq_requests_total", type="push") == pushes
    assert time.monotonic() - start >= 20 * 0.050 * 0.95
    assert b.stop() == 0


def test_other_paths_and_methods(broker):
    url = metrics_url(broker("--metrics", "127.0.0.1:0"))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=SCRAPE_TIMEOUT)
    assert caught.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"),
                               timeout=SCRAPE_TIMEOUT)
    assert caught.value.code == 405


def test_a_stuck_http_client_blocks_nobody(workers):
    b, (c,) = workers(1, "--metrics", "127.0.0.1:0")
    url = metrics_url(b)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    #  Half a request, never finished
    stuck = socket.create_connection(("127.0.0.1", port), timeout=SCRAPE_TIMEOUT)
    try:
        stuck.sendall(b"GET /metr")
        c.init({"w": [1.0, 2.0]})
        start = time.monotonic()
        for _ in range(20):
            c.push({"w": [1.0, 1.0]})
            c.pull(["w"])
            c.clock()
        assert time.monotonic() - start < 10
        assert Scrape(url).value("psmq_requests_total", type="push") == 20
    finally:
        stuck.close()
    assert b.stop() == 0


@pytest.mark.parametrize("value, named", [
    ("nonsense", "'nonsense'"),
    ("127.0.0.1", "'127.0.0.1'"),
    ("127.0.0.1:99999", "'99999'"),
    ("127.0.0.1:http", "'http'"),
    (":9100", "':9100'"),
])
def test_bad_metrics_value_is_refused_by_name(value, named):
    run = subprocess.run([PSBROKER, "--port", "0", "--metrics", value], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 2, run
    assert "--metrics" in run.stderr and named in run.stderr, run.stderr
    assert "psbroker listening" not in run.stdout


def test_metrics_port_in_use_is_named():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        run = subprocess.run([PSBROKER, "--endpoint", "tcp://127.0.0.1:0", "--no-tap",
                              "--metrics", address], capture_output=True, text=True, timeout=30)
    assert run.returncode == 1, run
    assert "cannot serve metrics on %s" % address in run.stderr, run.stderr


def test_help_documents_the_option():
    run = subprocess.run([PSBROKER, "--help"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0
    assert "--metrics HOST:PORT" in run.stdout and "/metrics" in run.stdout
