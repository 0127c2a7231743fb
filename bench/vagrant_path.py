"""Benchmark: the vagrant path on real VMs (libvirt + QEMU, the test box of tests/vm).

`lab up` against a bare `vagrant up` of the same Vagrantfile and resolved input, and
against `vagrant up` followed by `vagrant provision` running the very scripts `lab up`
runs (lib.sh and each step of provision/steps.yaml, with the same environment) through
Vagrant's shell provisioner; a second `lab up` on the ready lab; `lab status` against
`vagrant status`; all in one run.
Needs root, the box (tests/vm/build-box.sh) and libvirt (tests/vm/start-libvirt.sh).
Run:  .venv/bin/python -m bench.vagrant_path [--repeat 2]  (about 5 minutes a round;
writes bench/out/). Figures are median (min-max) over rounds whose order alternates.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from bench.common import REPO, print_and_keep, spread

BOX = Path(os.environ.get("LAB_TEST_BOX_DIR", "/var/cache/mcast-lab/box"))


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - start


# The engine hands the KEY=VALUE lines steps leave in $LAB_STATE_DIR/env (lab-nic's
# LAB_NIC) to the steps after them; a shell provisioner reads them itself.
LEFT_BY_EARLIER_STEPS = (
    'if [[ -f "$LAB_STATE_DIR/env" ]]; then\n'
    '  while IFS="=" read -r k v; do [[ $k == LAB_* ]] && export "$k=$v"; done '
    '< "$LAB_STATE_DIR/env"\n'
    'fi\n')


def _shell_provisioners(work: Path, model: object) -> None:
    """Vagrantfile.provisioned: the project's Vagrantfile, and for each host a shell
    provisioner per step `lab up` runs there (lib.sh + the step's script, its env)."""
    from lab.backends.vagrant.backend import VagrantBackend
    from lab.remote.provision import DEFAULT_STATE_DIR, LIBRARY, load_steps
    from lab.state import State
    from lab.ui import Reporter

    backend = VagrantBackend(model, State(work / "unused-state.json"),  # type: ignore[arg-type]
                             Reporter(quiet=True), options={"provider": "libvirt"})
    steps = [s for s in load_steps() if s.tier == "base"]
    lines = ['load File.expand_path("Vagrantfile", __dir__)', 'Vagrant.configure("2") do |config|']
    (work / "steps").mkdir(exist_ok=True)
    for host in model.hosts:  # type: ignore[attr-defined]
        # As the engine gives it: its state folder, and what earlier steps left there.
        env = {**backend.step_env(host.name), "LAB_STATE_DIR": DEFAULT_STATE_DIR}
        lines.append(f'  config.vm.define "{host.name}" do |m|')
        for n, step in enumerate(s for s in steps if host.role in s.roles):
            script = work / "steps" / f"{host.name}-{n}-{step.name}.sh"
            script.write_text("#!/usr/bin/env bash\n" + LEFT_BY_EARLIER_STEPS
                              + LIBRARY.read_text() + "\n" + step.script.read_text())
            ruby_env = ", ".join(f'"{k}" => "{v}"' for k, v in sorted(env.items()))
            lines.append(f'    m.vm.provision "shell", path: "steps/{script.name}", '
                         f'env: {{{ruby_env}}}')
        lines.append("  end")
    lines.append("end")
    (work / "Vagrantfile.provisioned").write_text("\n".join(lines) + "\n")


def vm_lab_dir(prefix: str) -> tuple[Path, list[str]]:
    """A project folder with a lab of the two VMs on the test box (isolated networks,
    offline tier only), and the `lab` command line for it."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["name"] = "v" + uuid.uuid4().hex[:6]
    data["backend"] = "vagrant"
    data["vagrant"]["provider"] = "libvirt"
    data["vagrant"]["boxes"]["libvirt"] = {"name": "mcast-lab/debian-12-test", "version": "0"}
    # Nothing leaves this machine: no NAT on the management network either.
    data["vagrant"]["libvirt"] = {"driver": "qemu", "management": "isolated", "direct_boot": {
        "kernel": str(BOX / "vmlinuz"), "initrd": str(BOX / "initrd.img"),
        "cmd_line": "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"}}
    data["hosts"] = [dict(h, memory=768, cpus=1) for h in data["hosts"]]
    # No internet here: the Kubernetes tier (packages, kubeadm...) cannot run; the VM test
    # does the same. What is compared is boot, SSH and the offline provisioning steps.
    data["kubernetes"]["provision"] = False
    (work / "lab.yaml").write_text(yaml.safe_dump(data))
    shutil.copy(REPO / "Vagrantfile", work / "Vagrantfile")
    shutil.copytree(REPO / "scenarios", work / "scenarios")
    return work, [sys.executable, "-m", "lab", "-q", "-f", str(work / "lab.yaml")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from lab import names
    from lab.backends.vagrant import libvirtnet
    from lab.backends.vagrant.inputs import vagrant_input, write_input
    from lab.model.labfile import load_lab

    work, lab = vm_lab_dir("vbench-")
    model = load_lab(work / "lab.yaml")
    venv = {"LAB_VAGRANT_JSON": str(names.vagrant_input_file(work, model.name)),
            "VAGRANT_DOTFILE_PATH": str(names.vagrant_dotfile_dir(work, model.name)),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt"}
    management = ipaddress.IPv4Network("192.168.121.0/24")
    got: dict[str, list[float]] = {}

    def note(key: str, seconds: float) -> None:
        got.setdefault(key, []).append(seconds)
        print(f"  {key}: {seconds:.1f} s", flush=True)

    _shell_provisioners(work, model)
    try:
        # Rounds rotate which goes first, so none always meets a cold page cache or a
        # freshly uploaded box image.
        kinds = ("bare", "lab", "provisioned")
        for round_ in range(args.repeat):
            order = kinds[round_ % 3:] + kinds[:round_ % 3]
            for which in order:
                if which == "lab":
                    note("lab up (boot + SSH + provision)", timed([*lab, "up"], work))
                    note("second lab up (ready lab)", timed([*lab, "up"], work))
                    note("lab status", timed([*lab, "status"], work))
                    note("vagrant status", timed(["vagrant", "status"], work, venv))
                    timed([*lab, "destroy"], work)
                else:
                    # What `lab up` prepares before its `vagrant up`: the input file and
                    # the isolated networks.
                    write_input(model, vagrant_input(model, "libvirt", management))
                    libvirtnet.ensure(model, management, lambda name: None)
                    # The provisioners live in a Vagrantfile of their own, used only here.
                    penv = {**venv, "VAGRANT_VAGRANTFILE": "Vagrantfile.provisioned"} \
                        if which == "provisioned" else venv
                    up_s = timed(["vagrant", "up", "--provider=libvirt", "--parallel",
                                  "--no-provision"], work, penv)
                    if which == "bare":
                        note("bare vagrant up (same Vagrantfile)", up_s)
                    else:
                        note("vagrant up + vagrant provision (same scripts)",
                             up_s + timed(["vagrant", "provision"], work, penv))
                    timed(["vagrant", "destroy", "--force"], work, penv)
    finally:
        for vagrantfile in ("Vagrantfile", "Vagrantfile.provisioned"):
            subprocess.run(["vagrant", "destroy", "--force"], cwd=work, timeout=900,
                           capture_output=True,
                           env={**os.environ, **venv, "VAGRANT_VAGRANTFILE": vagrantfile})
        subprocess.run([*lab, "destroy"], cwd=work, timeout=900, capture_output=True)
        libvirtnet.remove(libvirtnet.network_names(model))
    rows: dict[str, object] = {k: spread(v) for k, v in got.items()}
    rows["ratio lab up / bare vagrant up (medians)"] = (
        statistics.median(got["lab up (boot + SSH + provision)"])
        / statistics.median(got["bare vagrant up (same Vagrantfile)"]))
    rows["ratio lab up / vagrant up + provision (medians)"] = (
        statistics.median(got["lab up (boot + SSH + provision)"])
        / statistics.median(got["vagrant up + vagrant provision (same scripts)"]))
    print_and_keep("vagrant_path", rows, 42)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
