"""Benchmark: what grows with the pod count in a pod's creation. host-local (the IPAM
plugin of the NAD and of the netns pod network) on its own, ADD after ADD into one store:
the time of one ADD with 0, about 256 and about 300 leases already there.

Run:  .venv/bin/python -m bench.ipam [--leases 300]
Only files in a temporary folder change (host-local's store); no interface, no traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import REPO


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, default=300)
    args = ap.parse_args()
    from lab.backends.netns.cni import plugin_dir

    folder = plugin_dir()
    store = tempfile.mkdtemp(prefix="bench-ipam-")
    config = json.dumps({"cniVersion": "0.3.1", "name": "bench", "type": "macvlan",
                         "ipam": {"type": "host-local", "subnet": "10.250.0.0/16",
                                  "dataDir": store}})
    took: list[float] = []
    try:
        _adds(folder, store, config, args.leases, took)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    windows = {"first 16": took[:16], "leases 240-255": took[240:256],
               f"last 16 (of {args.leases})": took[-16:]}
    rows = {k: round(statistics.median(v), 2) for k, v in windows.items() if v}
    for k, v in rows.items():
        print(f"host-local ADD, {k}: {v} ms (median)")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ipam.json").write_text(json.dumps(rows, indent=2))
    return 0


def _adds(folder: Path, store: str, config: str, leases: int, took: list[float]) -> None:
    for i in range(leases):
        env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": f"bench-{i}",
               "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth1", "CNI_PATH": str(folder)}
        start = time.perf_counter()
        subprocess.run([str(folder / "host-local")], input=config, env=env, text=True,
                       capture_output=True, check=True, timeout=30)
        took.append(1000 * (time.perf_counter() - start))


if __name__ == "__main__":
    raise SystemExit(main())
