"""Benchmark: `lab reset` to a snapshot against a new `lab up`, on real VMs (libvirt +
QEMU, the test box of tests/vm), and on the netns backend.

Each round on VMs: `lab up` of a destroyed lab (boot, SSH, provisioning, self-check),
`lab snapshot save`, a change on the node (a file, the lab NIC down), `lab reset`, then
`lab destroy`. Netns rounds: `lab up`, `lab snapshot save`, `lab reset`, `lab destroy`.
Needs root, the box (tests/vm/build-box.sh) and libvirt (tests/vm/start-libvirt.sh).
Run:  .venv/bin/python -m bench.reset [--repeat 3] [--no-vm]  (VMs: about 3 minutes a
round; writes bench/out/reset.json). Figures are median (min-max) over the rounds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, print_and_keep, spread
from bench.vagrant_path import timed, vm_lab_dir


def _rounds(lab: list[str], work: Path, repeat: int, breaks: list[str] | None,
            got: dict[str, list[float]], kind: str) -> None:
    def note(key: str, seconds: float) -> None:
        got.setdefault(f"{kind}: {key}", []).append(seconds)
        print(f"  {kind}: {key}: {seconds:.1f} s", flush=True)

    try:
        for _ in range(repeat):
            note("lab up (from nothing)", timed([*lab, "up"], work))
            note("lab snapshot save", timed([*lab, "snapshot", "save"], work))
            if breaks:
                timed([*lab, "ssh", "k8s", "--", *breaks], work)
            note("lab reset", timed([*lab, "reset"], work))
            timed([*lab, "destroy"], work)
    finally:
        subprocess.run([*lab, "destroy"], cwd=work, timeout=900, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-vm", action="store_true", help="netns only")
    args = ap.parse_args()
    got: dict[str, list[float]] = {}
    netns = Path(tempfile.mkdtemp(prefix="rbench-"))
    shutil.copy(REPO / "lab.yaml", netns / "lab.yaml")
    shutil.copytree(REPO / "scenarios", netns / "scenarios")
    text = (netns / "lab.yaml").read_text().replace("\nname: mcast\n", "\nname: rbench\n", 1)
    (netns / "lab.yaml").write_text(text)
    _rounds([sys.executable, "-m", "lab", "-q", "-f", str(netns / "lab.yaml"), "--backend",
             "netns"], netns, args.repeat, None, got, "netns")
    if not args.no_vm:
        work, lab = vm_lab_dir("rbench-")
        _rounds(lab, work, args.repeat, ["sudo", "sh", "-c", "touch /root/x && ip link set "
                                         "eth1 down"], got, "VMs")
    rows: dict[str, object] = {k: spread(v) for k, v in got.items()}
    for kind in ("netns", "VMs"):
        up, reset = got.get(f"{kind}: lab up (from nothing)"), got.get(f"{kind}: lab reset")
        if up and reset:
            rows[f"{kind}: reset / up (medians)"] = statistics.median(reset) / \
                statistics.median(up)
    print_and_keep("reset", rows, 36)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
