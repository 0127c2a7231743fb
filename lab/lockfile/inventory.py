"""What one host is made of, read in one command through the `Host` interface: installed
packages and their versions, iperf's version, the CNI plugins', the container images in
the node's containerd by digest, and what the provisioning steps downloaded (lib.sh's
lab_fetch records each URL with the sha256 of what it got)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lab import fetched
from lab.host import Host

INVENTORY_TIMEOUT_S = 120.0
# Where the CNI plugins come from: Kubernetes' package, else the distribution's.
CNI_PACKAGES = ("kubernetes-cni", "containernetworking-plugins")

# $1: the steps' state folder; the other arguments: the packages to list (none: all).
# Tab-separated lines, one kind a line; nothing here fails the whole (a host without
# containerd simply has no images).
_SCRIPT = r"""
state=$1; shift
if command -v dpkg-query >/dev/null; then
    dpkg-query -W -f='${db:Status-Status}\t${Package}\t${Version}\n' "$@" 2>/dev/null |
        awk -F '\t' '$1 == "installed" { print "pkg\t" $2 "\t" $3 }'
fi
printf 'iperf\t%s\n' "$( (iperf --version 2>&1 || true) | head -n 1)"
if command -v ctr >/dev/null; then
    ctr -n k8s.io images ls 2>/dev/null |
        awk 'NR > 1 && $1 !~ /^sha256:/ { print "image\t" $1 "\t" $3 }'
fi
""" + fetched.LIST_SHELL + """
true
"""


@dataclass
class HostInventory:
    iperf: str = ""
    cni_plugins: str = ""
    packages: dict[str, str] = field(default_factory=dict)  # name -> version
    images: dict[str, str] = field(default_factory=dict)  # reference -> digest
    downloads: dict[str, str] = field(default_factory=dict)  # URL -> sha256


def parse(text: str) -> HostInventory:
    inv = HostInventory()
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        parts = rest.split("\t")
        if kind == "pkg" and len(parts) == 2:
            inv.packages[parts[0]] = parts[1]
        elif kind == "iperf":
            inv.iperf = rest.strip()
        elif kind == "image" and len(parts) == 2:
            inv.images[parts[0]] = parts[1]
        elif kind == fetched.KIND and (download := fetched.parse(rest)):
            inv.downloads[download[0]] = download[1]
    for package in CNI_PACKAGES:
        if package in inv.packages:
            inv.cni_plugins = f"{package} {inv.packages[package]}"
            break
    return inv


def read(host: Host, state_dir: str, packages: Sequence[str] | None = None) -> HostInventory:
    """`packages`: the ones to list (those the lab uses, on a machine it does not own);
    None: every installed package (a VM the lab made)."""
    out = host.run(["sh", "-c", _SCRIPT, "sh", state_dir, *(packages or ())],
                   timeout=INVENTORY_TIMEOUT_S, what=f"read what {host.name} is made of")
    return parse(out.stdout)
