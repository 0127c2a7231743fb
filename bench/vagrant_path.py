"""Benchmark: the vagrant path on real VMs (libvirt + QEMU, the test box of tests/vm).

`lab up` against a bare `vagrant up` of the same Vagrantfile and resolved input, a second
`lab up` on the ready lab, and `lab status` against `vagrant status`, in one run.
Needs root, the box (tests/vm/build-box.sh) and libvirt (tests/vm/start-libvirt.sh).
Run:  .venv/bin/python -m bench.vagrant_path      (about 8 minutes; writes bench/out/)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BOX = Path(os.environ.get("LAB_TEST_BOX_DIR", "/var/cache/mcast-lab/box"))


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - start


def main() -> int:
    sys.path.insert(0, str(REPO))
    from lab import libvirtnet
    from lab.labfile import load_lab

    work = Path(tempfile.mkdtemp(prefix="vbench-"))
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["name"] = "v" + uuid.uuid4().hex[:6]
    data["backend"] = "vagrant"
    data["vagrant"]["provider"] = "libvirt"
    data["vagrant"]["libvirt"] = {"driver": "qemu", "direct_boot": {
        "kernel": str(BOX / "vmlinuz"), "initrd": str(BOX / "initrd.img"),
        "cmd_line": "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"}}
    data["hosts"] = [dict(h, memory=768, cpus=1) for h in data["hosts"]]
    (work / "lab.yaml").write_text(yaml.safe_dump(data))
    shutil.copy(REPO / "Vagrantfile", work / "Vagrantfile")
    shutil.copytree(REPO / "scenarios", work / "scenarios")
    lab = [sys.executable, "-m", "lab", "-q", "-f", str(work / "lab.yaml")]
    venv = {"LAB_VAGRANT_JSON": str(work / ".lab" / "vagrant.json"),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt"}
    rows: dict[str, float] = {}
    try:
        rows["lab up (boot + SSH + provision)"] = timed([*lab, "up"], work)
        rows["second lab up (ready lab)"] = timed([*lab, "up"], work)
        rows["lab status"] = timed([*lab, "status"], work)
        rows["vagrant status"] = timed(["vagrant", "status"], work, venv)
        timed(["vagrant", "destroy", "--force"], work, venv)
        # vagrant destroy removed the lab's networks; define them as `lab up` does.
        libvirtnet.ensure(load_lab(work / "lab.yaml"), lambda name: None)
        rows["bare vagrant up (same Vagrantfile)"] = timed(
            ["vagrant", "up", "--provider=libvirt", "--parallel", "--no-provision"], work, venv)
    finally:
        subprocess.run([*lab, "destroy"], cwd=work, timeout=900, capture_output=True)
    rows["ratio lab up / bare vagrant up"] = (rows["lab up (boot + SSH + provision)"]
                                             / rows["bare vagrant up (same Vagrantfile)"])
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "vagrant_path.json").write_text(json.dumps(rows, indent=2))
    for k, v in rows.items():
        print(f"{k:40s} {v:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
