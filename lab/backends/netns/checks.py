"""What the netns backend needs of this machine (`lab doctor`, and `lab up` first)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from lab import command, hostos
from lab.backends.netns import cni
from lab.check import Check
from lab.errors import BackendError
from lab.model.lab import Lab


def checks(lab: Lab | None = None, options: Mapping[str, str] | None = None) -> list[Check]:
    plat = hostos.current()
    found = [
        Check("root", os.geteuid() == 0,
              "running as root" if os.geteuid() == 0 else
              "the netns backend creates network namespaces, which needs root.",
              "run lab with sudo (or as root)"),
    ]
    for tool in ("ip", "iperf", "timeout"):
        path = shutil.which(tool)
        found.append(Check(tool, path is not None,
                           f"{tool} at {path}" if path else f"{tool} is not installed.",
                           hostos.install_hint(tool, plat)))
    tcpdump = shutil.which("tcpdump")
    found.append(Check("tcpdump", tcpdump is not None,
                       f"tcpdump at {tcpdump}" if tcpdump else
                       "tcpdump is not installed: scenarios' capture: and `lab capture` need it.",
                       hostos.install_hint("tcpdump", plat), blocking=False))
    if shutil.which("iperf"):
        # iperf2 prints its version on stderr and exits 1 (DESIGN.md section 5).
        out = command.run(["iperf", "--version"], timeout=10, check=False)
        text = (out.stderr + out.stdout).strip()
        is2 = text.startswith("iperf version 2")
        found.append(Check("iperf2", is2, text.splitlines()[0] if text else "no version",
                           f"install iperf 2 ({hostos.install_hint('iperf', plat)}); iperf3 "
                           "cannot do multicast"))
    try:
        folder = cni.plugin_dir()
        found.append(Check("cni-plugins", True, f"CNI plugins in {folder}"))
    except BackendError as exc:
        found.append(Check("cni-plugins", False, str(exc).split(";")[0] + ".",
                           hostos.install_hint("cni-plugins", plat)))
    return found


def problems() -> list[Check]:
    return [c for c in checks() if not c.ok and c.blocking]
