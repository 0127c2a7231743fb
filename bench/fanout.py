"""Benchmark: fan-out loss. N attached receiver pods on one group at a rate, with the
kernel's default macvlan broadcast queue and with `attachment.bcqueuelen`, side by side.

Run as root:  .venv/bin/python -m bench.fanout [--cases 16@10M,64@10M,16@100M] [--duration 3]
Prints a table (min received / sent, worst loss) and writes bench/out/fanout.json.
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
    ap.add_argument("--cases", default="16@10M,64@10M,16@100M")
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--queues", default="default,10000")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from lab.backends.netns import NetnsBackend
    from lab.labfile import load_lab
    from lab.results import RunArtifacts
    from lab.runner import run_case
    from lab.scenario import load_scenario
    from lab.state import State
    from lab.ui import Reporter

    rows = []
    for queue in args.queues.split(","):
        work = Path(tempfile.mkdtemp(prefix="fanout-"))
        data = yaml.safe_load((REPO / "lab.yaml").read_text())
        data["name"] = "f" + uuid.uuid4().hex[:6]
        data["network"]["subnet"] = "192.168.56.0/22"  # room for 256 pods
        data["attachment"]["range"] = {"start": "192.168.56.13", "end": "192.168.59.254"}
        data["attachment"].pop("bcqueuelen", None)
        if queue != "default":
            data["attachment"]["bcqueuelen"] = int(queue)
        (work / "lab.yaml").write_text(yaml.safe_dump(data))
        lab = load_lab(work / "lab.yaml")
        backend = NetnsBackend(lab, State(work / ".lab" / "state.json"), Reporter(quiet=True))
        backend.up()
        try:
            for spec in args.cases.split(","):
                count, rate = spec.split("@")
                scenario = {"name": "fan", "group": "224.0.67.70", "port": 5010, "rate": rate,
                            "duration": args.duration, "sender": {"host": "mcastsrc"},
                            "receivers": [{"name": "fan", "placement": "pod",
                                           "count": int(count), "attachment": True}],
                            "expect": {"receive": True, "min_received_pct": 100}}
                path = work / "fan.yaml"
                path.write_text(yaml.safe_dump(scenario))
                case = load_scenario(path, lab).cases()[0]
                artifacts = RunArtifacts(work / "results", "fan", {})
                try:
                    out = run_case(case, backend, artifacts, Reporter(quiet=True))
                finally:
                    artifacts.finish("complete")
                received = [r["received"] for r in out["receivers"]]
                losses = [r["loss_pct"] or 0.0 for r in out["receivers"]]
                rows.append({"pods": int(count), "rate": rate, "bcqueuelen": queue,
                             "sent": out["sent"], "min_received": min(received),
                             "worst_loss_pct": max(losses),
                             "receivers_with_loss": sum(1 for x in losses if x > 0),
                             "verdict": out["verdict"], "error": out["error"]})
                r = rows[-1]
                print(f"{r['pods']:>4} pods @ {r['rate']:>5}  bcqueuelen {queue:>7}: sent "
                      f"{r['sent']}, min received {r['min_received']}, worst loss "
                      f"{r['worst_loss_pct']:.2f} %, {r['receivers_with_loss']} lossy",
                      flush=True)
        finally:
            backend.destroy()
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fanout.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
