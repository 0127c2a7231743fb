"""All benchmarks, one after the other: `python -m bench [--vm]` (as root).

1 lab cost and 2 pod cost curve (bench.lab_cost), 3 fan-out loss (bench.fanout),
4 throughput ceiling (bench.ceiling), 5 the vagrant path on real VMs (bench.vagrant_path,
only with --vm: it needs libvirt, QEMU and the test box, and takes about 8 minutes).
Each prints its table and writes bench/out/<name>.json.
"""

from __future__ import annotations

import subprocess
import sys

PLAN = [
    ("lab cost, pod cost curve", ["bench.lab_cost", "--pods", "1,16,64,256"]),
    ("fan-out loss", ["bench.fanout", "--cases", "16@10M,64@10M,256@10M,16@100M,32@100M"]),
    ("throughput ceiling", ["bench.ceiling"]),
]


def main() -> int:
    plan = list(PLAN)
    if "--vm" in sys.argv[1:]:
        plan.append(("vagrant path (real VMs)", ["bench.vagrant_path"]))
    failed = 0
    for title, args in plan:
        print(f"\n== {title}: python -m {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, "-m", *args], timeout=3600).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
