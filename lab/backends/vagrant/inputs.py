"""The resolved input of the Vagrantfile: everything it needs, derived from the lab model,
written to `.lab/<lab>/vagrant.json` (lab.names)."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from lab import names
from lab.model.lab import Lab


def resolved_path(lab: Lab) -> Path:
    return names.vagrant_input_file(lab.project_dir, lab.name)


def vagrant_input(lab: Lab, provider: str,
                  management_subnet: ipaddress.IPv4Network | None = None) -> dict[str, Any]:
    """`management_subnet`: libvirt's management network for this lab (one per lab, so two
    labs side by side do not collide); VirtualBox has its own NAT and needs none."""
    box = lab.vagrant.boxes[provider]
    lv = lab.vagrant.libvirt
    boot = lv.direct_boot
    return {
        "lab": lab.name,
        "provider": provider,
        "vm_prefix": names.vm_prefix(lab.name),
        "box": {"name": box.name, "version": box.version},
        "network": {"subnet": str(lab.subnet), "netmask": str(lab.subnet.netmask),
                    "libvirt_name": names.libvirt_lab_network(lab.name)},
        "hosts": [{"name": h.name, "role": h.role, "address": str(h.address),
                   "memory": h.memory_mb, "cpus": h.cpus} for h in lab.hosts],
        "libvirt": {"driver": lv.driver,
                    "management_network": names.libvirt_management_network(lab.name),
                    "management_subnet": None if management_subnet is None
                    else str(management_subnet),
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
