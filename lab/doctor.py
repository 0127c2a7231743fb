"""Checks that say what is wrong with this machine for a backend, and how to fix it."""

from __future__ import annotations

import os
import shutil

from lab import cni, command
from lab.check import Check
from lab.errors import BackendError
from lab.model import Lab


def netns_checks() -> list[Check]:
    checks = [
        Check("root", os.geteuid() == 0,
              "running as root" if os.geteuid() == 0 else
              "the netns backend creates network namespaces, which needs root.",
              "run lab with sudo (or as root)"),
    ]
    for tool, package in (("ip", "iproute2"), ("iperf", "iperf"), ("timeout", "coreutils")):
        path = shutil.which(tool)
        checks.append(Check(tool, path is not None,
                            f"{tool} at {path}" if path else f"{tool} is not installed.",
                            f"apt-get install {package}"))
    if shutil.which("iperf"):
        # iperf2 prints its version on stderr and exits 1 (DESIGN.md section 5).
        out = command.run(["iperf", "--version"], timeout=10, check=False)
        text = (out.stderr + out.stdout).strip()
        is2 = text.startswith("iperf version 2")
        checks.append(Check("iperf2", is2, text.splitlines()[0] if text else "no version",
                            "install iperf 2 (Debian package iperf); iperf3 cannot do multicast"))
    try:
        folder = cni.plugin_dir()
        checks.append(Check("cni-plugins", True, f"CNI plugins in {folder}"))
    except BackendError as exc:
        checks.append(Check("cni-plugins", False, str(exc).split(";")[0] + ".",
                            "apt-get install containernetworking-plugins"))
    return checks


def netns_problems() -> list[Check]:
    return [c for c in netns_checks() if not c.ok and c.blocking]


def checks_for(backend: str, lab: Lab, provider: str | None = None) -> list[Check]:
    if backend == "netns":
        return netns_checks()
    # Imported here: only `lab doctor --backend vagrant` needs the vagrant checks.
    from lab.vagrant_doctor import vagrant_checks

    return vagrant_checks(lab, provider)
