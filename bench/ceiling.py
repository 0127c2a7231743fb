"""Benchmark: throughput ceiling of one attached pod (macvlan) against a receiver on a
plain veth (the node's own lab NIC), at increasing rates, in the same run.

Run as root:  .venv/bin/python -m bench.ceiling [--rates 100M,400M,1G,2G,3G,4G]
              [--duration 3] [--buffer 4M]
The loss-free rate is the highest rate with loss <= 1 %. Writes bench/out/ceiling.json.
The receive buffer (-w) is 4 MB by default: near 1 Gbit/s a single iperf receiver is
CPU-bound and the default socket buffer overflows (DESIGN.md section 5).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100M,400M,1G,2G,3G,4G")
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--buffer", default="4M")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from lab.backends.netns import NetnsBackend
    from lab.labfile import load_lab
    from lab.results import RunArtifacts
    from lab.runner import run_case
    from lab.scenario import load_scenario
    from lab.state import State
    from lab.ui import Reporter

    work = Path(tempfile.mkdtemp(prefix="ceiling-"))
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["name"] = "c" + uuid.uuid4().hex[:6]
    (work / "lab.yaml").write_text(yaml.safe_dump(data))
    lab = load_lab(work / "lab.yaml")
    backend = NetnsBackend(lab, State(work / ".lab" / "state.json"), Reporter(quiet=True))
    placements = {"veth": {"name": "veth", "placement": "host"},
                  "macvlan-pod": {"name": "pod", "placement": "pod", "attachment": True}}
    rows = []
    backend.up()
    try:
        for rate in args.rates.split(","):
            for label, receiver in placements.items():
                scenario = {"name": "ceiling", "group": "224.0.67.71", "port": 5011,
                            "rate": rate, "duration": args.duration,
                            "receive_buffer": args.buffer, "sender": {"host": "mcastsrc"},
                            "receivers": [receiver],
                            "expect": {"receive": True, "min_received_pct": 99}}
                path = work / "ceiling.yaml"
                path.write_text(yaml.safe_dump(scenario))
                case = load_scenario(path, lab).cases()[0]
                artifacts = RunArtifacts(work / "results", "ceiling", {})
                try:
                    out = run_case(case, backend, artifacts, Reporter(quiet=True))
                finally:
                    artifacts.finish("complete")
                (r,) = out["receivers"]
                rows.append({"rate": rate, "receiver": label, "sent": out["sent"],
                             "received": r["received"], "loss_pct": r["loss_pct"],
                             "rate_bps": r["rate_bps"]})
                print(f"{rate:>6} {label:>12}: sent {out['sent']}, received {r['received']}, "
                      f"loss {r['loss_pct']} %, {r['rate_bps'] / 1e6:.1f} Mbit/s", flush=True)
    finally:
        backend.destroy()
    best: dict[str, float] = {}
    for row in rows:
        if row["loss_pct"] is not None and row["loss_pct"] <= 1.0:
            best[row["receiver"]] = max(best.get(row["receiver"], 0.0), row["rate_bps"])
    summary = {"rows": rows, "loss_free_bps": best, "buffer": args.buffer,
               "ratio": best.get("macvlan-pod", 0.0) / best["veth"] if best.get("veth") else None}
    print(f"loss-free (<= 1 %): veth {best.get('veth', 0) / 1e6:.0f} Mbit/s, macvlan pod "
          f"{best.get('macvlan-pod', 0) / 1e6:.0f} Mbit/s, ratio {summary['ratio']}")
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ceiling.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
