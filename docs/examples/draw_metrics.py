"""The metrics picture: per-rank lag, request rates and parked seconds a
second, from scrape_metrics.py's lines."""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = [json.loads(line) for line in open(sys.argv[1])]
rows = [r for r in rows if r["requests"].get("push", 0) > 0 or r is rows[-1]]
t = [r["t"] - rows[0]["t"] for r in rows]
fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
for rank in sorted({k for r in rows for k in r["lag"]}, key=int):
    axes[0].plot(t, [r["lag"].get(rank) for r in rows], label=f"rank {rank}")
axes[0].set_ylabel("psmq_worker_lag_clocks")
def rate(series, kind):
    return [(b[series].get(kind, 0) - a[series].get(kind, 0)) / (tb - ta)
            for a, b, ta, tb in zip(rows, rows[1:], t, t[1:])]
for kind in ("push", "pull", "clock"):
    axes[1].plot(t[1:], rate("requests", kind), label=kind)
axes[1].set_ylabel("rate(psmq_requests_total) /s")
for kind in ("pull", "clock"):
    axes[2].plot(t[1:], rate("parked_sum", kind), label=kind)
axes[2].set_ylabel("rate(psmq_request_parked_\nseconds_sum) s/s")
axes[2].set_xlabel("seconds (a scrape every 0.25 s)")
for ax in axes:
    ax.grid(alpha=0.3); ax.legend(loc="upper right", fontsize="small")
fig.tight_layout(); fig.savefig(sys.argv[2])
