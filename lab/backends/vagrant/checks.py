"""Checks for the vagrant backend: vagrant, the provider, VirtualBox's host-only network
rules, memory and disk."""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Mapping
from pathlib import Path

from lab import command
from lab.check import Check
from lab.model.lab import Lab

NETWORKS_CONF = Path("/etc/vbox/networks.conf")
# VirtualBox 6.1.28+ allows host-only networks only here unless networks.conf says more.
VBOX_DEFAULT_ALLOWED = (ipaddress.IPv4Network("192.168.56.0/21"),)
DISK_NEEDED_GB = 10


def vbox_allowed_networks(conf_text: str | None) -> list[ipaddress.IPv4Network]:
    """Ranges a `networks.conf` allows (`* 10.0.0.0/8 192.168.0.0/16`); the default when
    there is no file."""
    if conf_text is None:
        return list(VBOX_DEFAULT_ALLOWED)
    allowed = []
    for line in conf_text.splitlines():
        parts = line.split("#")[0].split()
        if not parts or parts[0] != "*":
            continue
        for item in parts[1:]:
            try:
                allowed.append(ipaddress.IPv4Network(item, strict=False))
            except ValueError:
                continue
    return allowed


def vbox_subnet_check(subnet: ipaddress.IPv4Network, conf_text: str | None) -> Check:
    allowed = vbox_allowed_networks(conf_text)
    if any(subnet.subnet_of(a) for a in allowed):
        return Check("vbox-host-only", True, f"{subnet} is allowed for VirtualBox host-only "
                     "networks")
    where = str(NETWORKS_CONF) if conf_text is not None else f"{NETWORKS_CONF} (absent)"
    ranges = " ".join(str(a) for a in allowed) or "nothing"
    return Check("vbox-host-only", False,
                 f"VirtualBox refuses host-only network {subnet}: {where} allows {ranges}.",
                 f"add the line `* {subnet}` to {NETWORKS_CONF} (as root), or move "
                 "network.subnet in lab.yaml into 192.168.56.0/21")


def _memory_available_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def checks(lab: Lab, options: Mapping[str, str] | None = None) -> list[Check]:
    provider = (options or {}).get("provider") or lab.vagrant.provider
    found = []
    if shutil.which("vagrant"):
        out = command.run(["vagrant", "--version"], timeout=60, check=False)
        found.append(Check("vagrant", out.ok, out.stdout.strip() or out.stderr.strip(),
                            "install Vagrant 2.3 or newer"))
    else:
        found.append(Check("vagrant", False, "vagrant is not installed.",
                            "install Vagrant (https://developer.hashicorp.com/vagrant; Debian: "
                            "apt-get install vagrant)"))
    if provider == "virtualbox":
        if shutil.which("VBoxManage"):
            out = command.run(["VBoxManage", "--version"], timeout=60, check=False)
            found.append(Check("virtualbox", out.ok, f"VirtualBox {out.stdout.strip()}",
                                "reinstall VirtualBox; `VBoxManage --version` fails"))
        else:
            found.append(Check("virtualbox", False, "VirtualBox is not installed "
                                "(no VBoxManage on PATH).",
                                "install VirtualBox 7, or use --provider libvirt on Linux"))
        conf = NETWORKS_CONF.read_text() if NETWORKS_CONF.exists() else None
        found.append(vbox_subnet_check(lab.subnet, conf))
    else:
        plugin = command.run(["vagrant", "plugin", "list"], timeout=120, check=False) \
            if shutil.which("vagrant") else None
        has_plugin = plugin is not None and "vagrant-libvirt" in plugin.stdout
        found.append(Check("vagrant-libvirt", has_plugin,
                            "vagrant-libvirt plugin present" if has_plugin else
                            "the vagrant-libvirt plugin is missing.",
                            "apt-get install vagrant-libvirt (or vagrant plugin install "
                            "vagrant-libvirt)"))
        virsh = command.run(["virsh", "-c", "qemu:///system", "version"], timeout=60,
                            check=False) if shutil.which("virsh") else None
        found.append(Check("libvirt", virsh is not None and virsh.ok,
                            "libvirtd answers" if virsh is not None and virsh.ok else
                            "libvirtd does not answer on qemu:///system.",
                            "apt-get install libvirt-daemon-system qemu-system-x86 and start "
                            "libvirtd"))
    if lab.kubernetes.provision:
        found.extend(kubernetes_tier_checks(lab, provider))
    need = sum(h.memory_mb for h in lab.hosts)
    have = _memory_available_mb()
    found.append(Check("memory", have is None or have >= need,
                        f"{have} MB available, the VMs need {need} MB" if have is not None
                        else "unknown", "free memory or lower hosts[].memory in lab.yaml"))
    free_gb = shutil.disk_usage(lab.project_dir).free / 2**30
    found.append(Check("disk", free_gb >= DISK_NEEDED_GB,
                        f"{free_gb:.0f} GB free in {lab.project_dir}",
                        f"free at least {DISK_NEEDED_GB} GB for the boxes and VM disks"))
    return found


# kubeadm's preflight refuses a control-plane node below these (NumCPU, Mem).
KUBEADM_MIN_CPUS, KUBEADM_MIN_MEMORY_MB = 2, 1700


def kubernetes_tier_checks(lab: Lab, provider: str) -> list[Check]:
    """What the Kubernetes tier needs that `lab up` cannot fix: warnings, so that a lab
    that does not need the tier (host scenarios) still comes up."""
    node = lab.node
    small = node.cpus < KUBEADM_MIN_CPUS or node.memory_mb < KUBEADM_MIN_MEMORY_MB
    found = [Check("node-size", not small,
                   f"{node.name} has {node.cpus} CPU(s) and {node.memory_mb} MB"
                   + (f"; kubeadm needs {KUBEADM_MIN_CPUS} CPUs and {KUBEADM_MIN_MEMORY_MB} MB"
                      if small else ""),
                   f"raise hosts[{node.name}].cpus/memory in {lab.source.name}, or set "
                   "kubernetes.provision: false", blocking=False)]
    if provider == "libvirt" and lab.vagrant.libvirt.management == "isolated":
        found.append(Check("vm-internet", False,
                           "vagrant.libvirt.management is isolated: the VMs reach no "
                           "internet, and the Kubernetes tier downloads packages and images.",
                           "set vagrant.libvirt.management: nat, or kubernetes.provision: "
                           "false", blocking=False))
    return found
