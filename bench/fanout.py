"""Benchmark: fan-out loss. N attached receiver pods on one group at a rate, with the
kernel's default macvlan broadcast queue (1000) and with `attachment.bcqueuelen`.

Run as root:  .venv/bin/python -m bench.fanout [--cases 16@100M,32@100M] [--repeat 3]
              [--queues 1000,10000] [--duration auto] [--max-duration 60]

What it measures: whether the receivers keep up, not how much a queue can hide. A queue of
Q datagrams holds Q / (rate / datagram size) seconds of a stream, and whatever it holds is
delivered after the sender stops. So each case runs long enough that the largest queue
holds at most 5 % of the stream (`--duration auto`: 20 x that time, at least 5 s), and a
row whose queue could hold more is marked inconclusive. The receivers' socket buffers
(rmem_default, printed) hold far less. Both queue settings are labs of their own, up side
by side; the runs alternate between them (and their order flips each round), so a drift
of the machine does not land on one setting. Figures: median (min-max) over the rounds.
Writes bench/out/fanout.json.
"""

from __future__ import annotations

import argparse
import json
import math
from contextlib import ExitStack
from typing import Any

from bench.common import (
    DATAGRAM_BITS,
    REPO,
    netns_lab,
    obtained_receive_buffer,
    run_scenario,
    shown,
    spread,
)

QUEUE_SHARE_MAX = 0.05


def _bps(rate: str) -> int:
    from lab.model.fields import rate as parse_rate

    return parse_rate(rate)


def queue_seconds(queue: int, rate_bps: int) -> float:
    return queue / (rate_bps / DATAGRAM_BITS)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="16@100M,32@100M")
    ap.add_argument("--queues", default="1000,10000", help="1000 is the kernel default")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--duration", default="auto")
    ap.add_argument("--max-duration", type=int, default=60)
    args = ap.parse_args()
    queues = [int(q) for q in args.queues.split(",")]
    cases = [(int(c.split("@")[0]), c.split("@")[1]) for c in args.cases.split(",")]
    runs: dict[tuple[int, str, int], list[dict[str, Any]]] = {}
    plan: dict[tuple[int, str], int] = {}
    for pods, rate in cases:
        needed = 20 * queue_seconds(max(queues), _bps(rate))
        duration = (max(5, math.ceil(needed)) if args.duration == "auto"
                    else int(args.duration))
        plan[(pods, rate)] = min(duration, args.max_duration)
    with ExitStack() as stack:
        labs = {}
        for q in queues:
            labs[q] = stack.enter_context(netns_lab(
                "f", network={"subnet": "192.168.56.0/22", "nic": "eth1"},
                attachment={**_attachment(), "bcqueuelen": q}))
        node = labs[queues[0]].host_netns(labs[queues[0]].lab.node.name)
        default_buffer = obtained_receive_buffer(node, None)
        print(f"receiver socket buffer (rmem_default as obtained): {default_buffer} bytes, "
              f"about {default_buffer // 2304} datagrams", flush=True)
        for round_ in range(args.repeat):
            order = queues if round_ % 2 == 0 else list(reversed(queues))
            for pods, rate in cases:
                for q in order:
                    out = run_scenario(labs[q], _scenario(pods, rate, plan[(pods, rate)]))
                    losses = [r["loss_pct"] if r["loss_pct"] is not None else 100.0
                              for r in out["receivers"]]
                    row = {"round": round_, "sent": out["sent"], "error": out["error"],
                           "min_received": min((r["received"] for r in out["receivers"]),
                                               default=0),
                           "worst_loss_pct": max(losses, default=100.0),
                           "lossy": sum(1 for x in losses if x > 0)}
                    runs.setdefault((pods, rate, q), []).append(row)
                    print(f"  round {round_ + 1}: {pods:>3} pods @ {rate:>5}, queue {q:>5}, "
                          f"{plan[(pods, rate)]} s: worst loss {row['worst_loss_pct']:.2f} %, "
                          f"{row['lossy']} lossy, sent {row['sent']}", flush=True)
    rows = []
    print(f"\n{'case':>14} {'queue':>6} {'run':>5} {'queue holds':>11}  worst loss % "
          "median (min-max)   lossy pods")
    for (pods, rate, q), got in runs.items():
        duration = plan[(pods, rate)]
        share = queue_seconds(q, _bps(rate)) / duration
        worst = spread([g["worst_loss_pct"] for g in got])
        lossy = spread([float(g["lossy"]) for g in got])
        verdict = "ok" if share <= QUEUE_SHARE_MAX else "inconclusive"
        rows.append({"pods": pods, "rate": rate, "bcqueuelen": q, "duration_s": duration,
                     "queue_share_of_run": round(share, 4), "conclusive": verdict == "ok",
                     "worst_loss_pct": worst, "lossy_pods": lossy,
                     "rmem_default_obtained": default_buffer, "runs": got})
        print(f"{pods:>4} @ {rate:>7} {q:>6} {duration:>4}s {100 * share:>10.1f}%  "
              f"{shown(worst):>28}   {shown(lossy, '{:.0f}'):>10}"
              + ("" if verdict == "ok" else "   inconclusive: the queue holds over 5 %"))
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fanout.json").write_text(json.dumps(rows, indent=2))
    return 0


def _attachment() -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((REPO / "lab.yaml").read_text())["attachment"]
    data["range"] = {"start": "192.168.56.13", "end": "192.168.59.254"}  # room for 256 pods
    # This bench measures the queue: lab.yaml's bclim -1 would take every datagram past it.
    data.pop("bclim", None)
    return dict(data)


def _scenario(pods: int, rate: str, duration: int) -> dict[str, Any]:
    return {"name": "fan", "group": "224.0.67.70", "port": 5010, "rate": rate,
            "duration": duration, "sender": {"host": "mcastsrc"},
            "receivers": [{"name": "fan", "placement": "pod", "count": pods,
                           "attachment": True}],
            "expect": {"receive": True, "min_received_pct": 100}}


if __name__ == "__main__":
    raise SystemExit(main())
