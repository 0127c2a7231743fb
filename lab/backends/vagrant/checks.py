"""Checks for the vagrant backend, per host OS and architecture: vagrant, the provider and
the versions that pair, VirtualBox's host-only network rules where they apply, what holds
the CPU's virtualization (Hyper-V, KVM), the box's architectures, memory and disk."""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Mapping
from pathlib import Path

from lab import hostos
from lab.backends.vagrant.machine import (
    Machine,
    ThisMachine,
    Version,
    find_vboxmanage,
    parse_version,
    shown,
)
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


# Vagrant's VirtualBox provider knows each VirtualBox minor from one release on and
# refuses a newer one ("a version of VirtualBox installed that is not supported by this
# version of Vagrant"): hashicorp/vagrant CHANGELOG, 2.3.2 "Add support for VirtualBox
# 7.0", 2.4.2 (7.1), 2.4.9 (7.2); plugins/providers/virtualbox/driver/meta.rb.
VAGRANT_FOR_VBOX: dict[Version, Version] = {(7, 0): (2, 3, 2), (7, 1): (2, 4, 2),
                                            (7, 2): (2, 4, 9)}
VAGRANT_FLOOR: Version = (2, 3, 0)
# VirtualBox runs on Apple Silicon (and other arm64 hosts) from 7.1.0 (Oracle's 7.1
# announcement; chef/bento#1582); before, only a developer preview.
VBOX_ARM64_FLOOR: Version = (7, 1, 0)
# From 7.2.10 VirtualBox's driver opens /dev/kvm and lets KVM enable VT-x/AMD-V for it;
# before, a KVM that enabled it at load (Linux 6.12+, kvm.enable_virt_at_load=1) makes
# VirtualBox fail with VERR_VMX_IN_VMX_ROOT_MODE / VERR_SVM_IN_USE (VirtualBox/virtualbox
# #711, NixOS/nixpkgs#363887). Unloading kvm_intel/kvm_amd works with every version.
VBOX_SHARES_KVM: Version = (7, 2, 10)


def checks(lab: Lab, options: Mapping[str, str] | None = None,
           machine: Machine | None = None) -> list[Check]:
    m = machine or ThisMachine()
    plat = m.platform
    provider = (options or {}).get("provider") or lab.vagrant.provider
    found = _platform_checks(lab, provider, plat)
    vagrant = _vagrant_version(m, found)
    if provider == "virtualbox":
        found.extend(_virtualbox_checks(lab, m, vagrant))
        if lab.switch is not None and lab.switch.igmp_snooping:
            found.append(Check(
                "switch", False, "lab.yaml's switch snoops IGMP, and VirtualBox's host-only "
                "network cannot (nor can lab read its ports): every group floods every VM, "
                "and scenarios with expect_port end in an error, not a verdict.",
                "use --provider libvirt (Linux) or the netns backend to see snooping",
                blocking=False))
    elif plat.system == "linux":
        found.extend(_libvirt_checks(m))
    if lab.kubernetes.provision:
        found.extend(kubernetes_tier_checks(lab, provider))
    need = sum(h.memory_mb for h in lab.hosts)
    have = m.memory_mb()
    found.append(Check("memory", have is None or have >= need,
                        f"{have} MB available, the VMs need {need} MB" if have is not None
                        else f"unknown on {plat.label}; the VMs need {need} MB",
                        "free memory or lower hosts[].memory in lab.yaml"))
    free_gb = shutil.disk_usage(lab.project_dir).free / 2**30
    found.append(Check("disk", free_gb >= DISK_NEEDED_GB,
                        f"{free_gb:.0f} GB free in {lab.project_dir}",
                        f"free at least {DISK_NEEDED_GB} GB for the boxes and VM disks"))
    return found


def _platform_checks(lab: Lab, provider: str, plat: hostos.Platform) -> list[Check]:
    """What no installation fixes: WSL2, the provider's OS, the box's architectures."""
    found = []
    if plat.wsl:
        found.append(Check("wsl2", False,
                           "Vagrant's VMs are not supported from WSL2: the VirtualBox "
                           "provider forwards SSH on Windows' 127.0.0.1, which WSL2 does not "
                           "reach, and keys on /mnt/c have permissions ssh refuses.",
                           "run lab from Windows itself (PowerShell), or use --backend netns "
                           "inside WSL2 (namespaces, no VMs)"))
    if provider == "libvirt" and plat.system != "linux":
        found.append(Check("provider", False, f"the libvirt provider runs on Linux hosts; "
                           f"this machine is {plat.label}.", "use --provider virtualbox"))
    box = lab.vagrant.boxes[provider]
    fits = plat.arch in box.architectures
    found.append(Check("box-architecture", fits,
                       f"{box.name} {box.version} is built for "
                       f"{', '.join(box.architectures)}; this machine is {plat.arch}",
                       f"pin a version of a box built for {plat.arch} in {lab.source.name} "
                       f"(vagrant.boxes.{provider}) and add {plat.arch} to its "
                       "architectures"))
    return found


def _vagrant_version(m: Machine, found: list[Check]) -> Version | None:
    hint = hostos.install_hint("vagrant", m.platform)
    path = m.which("vagrant") or m.which("vagrant.exe")
    if not path:
        found.append(Check("vagrant", False, "vagrant is not installed.",
                           f"{hint} (Vagrant {shown(VAGRANT_FLOOR)} or newer)"))
        return None
    out = m.run([path, "--version"], timeout=60)
    version = parse_version(out.stdout) if out.ok else None
    text = out.stdout.strip() or out.stderr.strip() or "no output"
    if version is None:
        found.append(Check("vagrant", False, f"`vagrant --version` says: {text}",
                           f"reinstall Vagrant: {hint}"))
    else:
        found.append(Check("vagrant", version >= VAGRANT_FLOOR, text,
                           f"update Vagrant to {shown(VAGRANT_FLOOR)} or newer: {hint}"))
    return version


def _virtualbox_checks(lab: Lab, m: Machine, vagrant: Version | None) -> list[Check]:
    plat = m.platform
    hint = hostos.install_hint("virtualbox", plat)
    path = find_vboxmanage(m)
    if path is None:
        missing = Check("virtualbox", False, "VirtualBox is not installed (no VBoxManage "
                        "on PATH" + (", in VBOX_MSI_INSTALL_PATH or Program Files"
                                     if plat.system == "windows" else "") + ").",
                        hint + ("; or use --provider libvirt" if plat.system == "linux"
                                else ""))
        # The VirtualBox one installs today is 7.x: its host-only rule, where it has one.
        if _applies_networks_conf(plat, max(VAGRANT_FOR_VBOX)):
            return [missing, vbox_subnet_check(lab.subnet, m.read(str(NETWORKS_CONF)))]
        return [missing]
    out = m.run([path, "--version"], timeout=60)
    vbox = parse_version(out.stdout) if out.ok else None
    if vbox is None:
        return [Check("virtualbox", False, f"`VBoxManage --version` fails: "
                      f"{(out.stderr or out.stdout).strip() or out.exit_status}",
                      f"reinstall VirtualBox: {hint}")]
    found = [Check("virtualbox", True, f"VirtualBox {out.stdout.strip()} ({path})")]
    if plat.arch == "arm64":
        found.append(Check("virtualbox-arm64", vbox >= VBOX_ARM64_FLOOR,
                           f"VirtualBox {shown(vbox)} on {plat.label}" +
                           ("" if vbox >= VBOX_ARM64_FLOOR else
                            f": arm64 hosts need {shown(VBOX_ARM64_FLOOR)} or newer"),
                           f"install VirtualBox 7.2: {hint}"))
    found.append(_pairing_check(vbox, vagrant))
    if _applies_networks_conf(plat, vbox):
        conf = m.read(str(NETWORKS_CONF))
        found.append(vbox_subnet_check(lab.subnet, conf))
    if plat.system == "windows":
        found.append(_hyperv_check(m))
    if plat.system == "linux":
        found.extend(_kvm_check(m, vbox))
    return found


def _pairing_check(vbox: Version, vagrant: Version | None) -> Check:
    minor = vbox[:2]
    if vagrant is None:
        return Check("vagrant-virtualbox", False, f"VirtualBox {shown(vbox)}: which Vagrant "
                     "supports it is unknown until Vagrant answers", "see the vagrant row",
                     blocking=False)
    need = VAGRANT_FOR_VBOX.get(minor)
    if need is None and minor > max(VAGRANT_FOR_VBOX):
        return Check("vagrant-virtualbox", False,
                     f"VirtualBox {shown(minor)} is newer than every pairing this lab knows "
                     f"(Vagrant {shown(VAGRANT_FOR_VBOX[max(VAGRANT_FOR_VBOX)])} for "
                     f"{shown(max(VAGRANT_FOR_VBOX))}); Vagrant {shown(vagrant)} may refuse it",
                     "if `lab up` says the version is not supported, install the newest "
                     "Vagrant, or the VirtualBox minor it lists", blocking=False)
    if need is None or vagrant >= need:
        return Check("vagrant-virtualbox", True,
                     f"Vagrant {shown(vagrant)} supports VirtualBox {shown(minor)}")
    return Check("vagrant-virtualbox", False,
                 f"Vagrant {shown(vagrant)} does not support VirtualBox {shown(minor)} "
                 f"(from Vagrant {shown(need)} on); `vagrant up` would refuse it.",
                 f"update Vagrant to {shown(need)} or newer, or install the VirtualBox minor "
                 f"your Vagrant supports")


def _applies_networks_conf(plat: hostos.Platform, vbox: Version) -> bool:
    """Whether the host-only network must lie in networks.conf's ranges. Vagrant checks it
    on Linux; it skips it on Windows and on macOS with VirtualBox 7, where it makes host-only
    networks (`VBoxManage hostonlynet`) instead of interfaces (hashicorp/vagrant
    plugins/providers/virtualbox/action/network.rb, validate_hostonly_ip!)."""
    if plat.system == "windows":
        return False
    if plat.system == "darwin":
        return vbox < (7, 0)
    return vbox >= (6, 1, 28)


def _hyperv_check(m: Machine) -> Check:
    out = m.run(["powershell", "-NoProfile", "-NonInteractive", "-Command",
                 "(Get-CimInstance Win32_ComputerSystem).HypervisorPresent"], timeout=60)
    answer = out.stdout.strip().lower()
    if not out.ok or answer not in ("true", "false"):
        return Check("hyper-v", False, "whether a hypervisor runs is unknown (PowerShell's "
                     "Win32_ComputerSystem did not say)", "", blocking=False)
    if answer == "false":
        return Check("hyper-v", True, "no Windows hypervisor is running: VirtualBox has "
                     "VT-x/AMD-V to itself")
    return Check("hyper-v", False,
                 "a Windows hypervisor is running (Hyper-V, WSL2, Virtual Machine Platform "
                 "or memory integrity): VirtualBox then runs on top of it, much slower (its "
                 "green turtle icon), and a two-VM lab may time out.",
                 "turn off Hyper-V, Virtual Machine Platform and Windows Hypervisor Platform "
                 "(Windows features) or run `bcdedit /set hypervisorlaunchtype off` as "
                 "administrator, then reboot", blocking=False)


def _kvm_check(m: Machine, vbox: Version) -> list[Check]:
    """Linux 6.12+ lets KVM take VT-x/AMD-V when kvm_intel/kvm_amd load."""
    loaded = [mod for mod in ("kvm_intel", "kvm_amd") if m.exists(f"/sys/module/{mod}")]
    if not loaded or not m.platform.kernel_at_least(6, 12):
        return []
    at_load = (m.read("/sys/module/kvm/parameters/enable_virt_at_load") or "").strip()
    unload = f"sudo modprobe -r {loaded[0]} (and stop what uses KVM: libvirt VMs, QEMU)"
    if vbox >= VBOX_SHARES_KVM:
        ok = at_load != "N"
        return [Check("kvm", ok, f"{loaded[0]} is loaded on Linux {m.platform.release}; "
                      f"VirtualBox {shown(vbox)} shares VT-x/AMD-V with KVM"
                      + ("" if ok else " only when KVM enables it at load, and "
                         "kvm.enable_virt_at_load is N"),
                      f"{unload}, or drop kvm.enable_virt_at_load=0 from the kernel command "
                      "line and modprobe options")]
    ok = at_load == "N"
    return [Check("kvm", ok, f"{loaded[0]} is loaded on Linux {m.platform.release}"
                  + (" with kvm.enable_virt_at_load=0: VirtualBox can use VT-x/AMD-V" if ok
                     else ": KVM holds VT-x/AMD-V from load (enable_virt_at_load), so "
                     f"VirtualBox {shown(vbox)} fails with VERR_VMX_IN_VMX_ROOT_MODE or "
                     "VERR_SVM_IN_USE"),
                  f"{unload}, or boot with kvm.enable_virt_at_load=0, or install VirtualBox "
                  f"{shown(VBOX_SHARES_KVM)} or newer")]


def _libvirt_checks(m: Machine) -> list[Check]:
    plugin = m.run(["vagrant", "plugin", "list"], timeout=120) \
        if m.which("vagrant") else None
    has_plugin = plugin is not None and "vagrant-libvirt" in plugin.stdout
    virsh = m.run(["virsh", "-c", "qemu:///system", "version"], timeout=60) \
        if m.which("virsh") else None
    return [Check("vagrant-libvirt", has_plugin,
                  "vagrant-libvirt plugin present" if has_plugin else
                  "the vagrant-libvirt plugin is missing.",
                  hostos.install_hint("vagrant-libvirt", m.platform)
                  + " (or vagrant plugin install vagrant-libvirt)"),
            Check("libvirt", virsh is not None and virsh.ok,
                  "libvirtd answers" if virsh is not None and virsh.ok else
                  "libvirtd does not answer on qemu:///system.",
                  hostos.install_hint("libvirt", m.platform) + " and start libvirtd")]


# kubeadm's preflight refuses a control-plane node below these (NumCPU, Mem).
KUBEADM_MIN_CPUS, KUBEADM_MIN_MEMORY_MB = 2, 1700


def kubernetes_tier_checks(lab: Lab, provider: str) -> list[Check]:
    """What the Kubernetes tier needs that `lab up` cannot fix: warnings, so that a lab
    that does not need the tier (host scenarios) still comes up."""
    node = lab.node  # the control plane; workers joining it have no such floor
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
