"""All benchmarks, one after the other: `python -m bench [--vm]` (as root).

1 lab cost and 2 pod cost curve (bench.lab_cost), 3 fan-out loss against the macvlan
queue (bench.fanout), 4 the loss-free fan-out search over the port's settings
(bench.fanout_search), 5 throughput ceiling (bench.ceiling), 6 one node against several
(bench.multinode: pods per second, fan-out spread over nodes), 7 `lab reset` against a
new `lab up` (bench.reset; netns, and VMs with --vm), 8 the vagrant path on real VMs
(bench.vagrant_path, only with --vm: it needs libvirt, QEMU and the test box, and takes
about 15 minutes).
Every figure is a median (min-max) over rounds; A/B settings alternate within a run.
Each prints its table and writes bench/out/<name>.json.
"""

from __future__ import annotations

import subprocess
import sys

PLAN = [
    ("lab cost, pod cost curve", ["bench.lab_cost", "--repeat", "3", "--pods", "1,16,64,256"]),
    ("fan-out loss, 16 and 32 pods at 100 Mbit/s", ["bench.fanout", "--repeat", "3"]),
    ("fan-out loss, 256 pods at 10 Mbit/s",
     ["bench.fanout", "--cases", "256@10M", "--repeat", "2", "--duration", "30"]),
    ("loss-free fan-out: kernel defaults, bclim -1, and 4 MiB buffers",
     ["bench.fanout_search"]),
    ("throughput ceiling", ["bench.ceiling", "--repeat", "3", "--rates", "100M,1G,2G,3G"]),
    ("throughput ceiling, default receive buffer",
     ["bench.ceiling", "--repeat", "3", "--rates", "500M,1G", "--buffer", "none"]),
    ("one node against several: pods per second, 64-pod fan-out",
     ["bench.multinode", "--repeat", "3", "--fanout", "64@100M"]),
]


def main() -> int:
    plan = list(PLAN)
    vm = "--vm" in sys.argv[1:]
    plan.append(("lab reset against lab up", ["bench.reset", *([] if vm else ["--no-vm"])]))
    if vm:
        plan.append(("vagrant path (real VMs)", ["bench.vagrant_path"]))
    failed = 0
    for title, args in plan:
        print(f"\n== {title}: python -m {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, "-m", *args], timeout=3600).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
