"""The resolved input of the Vagrantfile: everything it needs, derived from the lab model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lab.model import Lab

RESOLVED_NAME = "vagrant.json"
# libvirt's management network: isolated (no forwarding, no DNS), so no VM reaches outside.
MANAGEMENT_SUBNET = "192.168.121.0/24"


def lab_network(lab: Lab) -> str:
    return f"{lab.name}-lab"


def management_network(lab: Lab) -> str:
    return f"{lab.name}-mgmt"


def resolved_path(lab: Lab) -> Path:
    return lab.project_dir / ".lab" / RESOLVED_NAME


def vagrant_input(lab: Lab, provider: str) -> dict[str, Any]:
    box = lab.vagrant.boxes[provider]
    lv = lab.vagrant.libvirt
    boot = lv.direct_boot
    return {
        "lab": lab.name,
        "provider": provider,
        "box": {"name": box.name, "version": box.version},
        "network": {"subnet": str(lab.subnet), "netmask": str(lab.subnet.netmask),
                    "libvirt_name": lab_network(lab)},
        "hosts": [{"name": h.name, "role": h.role, "address": str(h.address),
                   "memory": h.memory_mb, "cpus": h.cpus} for h in lab.hosts],
        "libvirt": {"driver": lv.driver, "management_network": management_network(lab),
                    "management_subnet": MANAGEMENT_SUBNET,
                    "direct_boot": None if boot is None else {
                        "kernel": boot.kernel, "initrd": boot.initrd,
                        "cmd_line": boot.cmd_line}},
    }


def write_input(lab: Lab, data: dict[str, Any]) -> Path:
    path = resolved_path(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path
