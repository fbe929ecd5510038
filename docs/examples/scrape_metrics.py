"""Scrape a broker's /metrics every 0.25 s until it stops answering; one
JSON line per scrape with the series the picture needs."""
import json, sys, time, urllib.request
from prometheus_client.parser import text_string_to_metric_families
url, out = sys.argv[1], open(sys.argv[2], "w")
start = time.monotonic(); misses = 0
while misses < 8:
    try:
        text = urllib.request.urlopen(url, timeout=1).read().decode()
    except Exception:
        misses += 1; time.sleep(0.25); continue
    misses = 0
    row = {"t": time.monotonic() - start, "lag": {}, "requests": {}, "parked_sum": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "psmq_worker_lag_clocks":
                row["lag"][s.labels["rank"]] = s.value
            elif s.name == "psmq_requests_total":
                row["requests"][s.labels["type"]] = s.value
            elif s.name == "psmq_request_parked_seconds_sum":
                row["parked_sum"][s.labels["type"]] = s.value
            elif s.name == "psmq_clock_min":
                row["clock_min"] = s.value
    out.write(json.dumps(row) + "\n"); out.flush()
    time.sleep(0.25)
