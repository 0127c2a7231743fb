"""A bundle's packages from this machine's apt: the packages the steps install from the
distribution, with every dependency, downloaded (not installed) for this machine's
release and architecture, which must be the box's. For a Debian or Ubuntu machine of the
box's release; elsewhere, `lab bundle --from lab` gathers them from a lab that is up."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from lab import command
from lab.bundle.manifest import DEBS
from lab.errors import BackendError, UsageError

# What the steps install with apt from the distribution (provision/*.sh): iperf.sh,
# containerd.sh, receiver-image.sh, and kube-packages.sh's tools for the Kubernetes
# repository (whose own packages come from pkgs.k8s.io, not from this machine's apt).
STEP_PACKAGES = ("iperf", "tcpdump", "containerd", "busybox-static", "apt-transport-https",
                 "ca-certificates", "curl", "gpg")
APT_TIMEOUT_S = 120.0
DOWNLOAD_TIMEOUT_S = 1800.0


def release() -> tuple[str, str]:
    """(codename, dpkg architecture) of this machine."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise UsageError("`lab bundle --from apt` needs apt (a Debian or Ubuntu machine of "
                         "the box's release); elsewhere bring the lab up once and use "
                         "`lab bundle --from lab`")
    fields = dict(line.split("=", 1) for line in
                  Path("/etc/os-release").read_text().splitlines() if "=" in line)
    codename = fields.get("VERSION_CODENAME", "").strip('"')
    arch = command.run(["dpkg", "--print-architecture"], timeout=30,
                       what="dpkg --print-architecture").stdout.strip()
    return codename, arch


def closure(packages: Sequence[str]) -> list[str]:
    """The packages and everything they depend on (pre-depends too; not recommends),
    as real package names."""
    out = command.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                       "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                       "--no-enhances", *packages], timeout=APT_TIMEOUT_S,
                      what="apt-cache depends --recurse").stdout
    names = {line.strip() for line in out.splitlines()
             if line and not line.startswith(" ") and not line.startswith("<")}
    missing = sorted(set(packages) - names)
    if missing:
        raise BackendError(f"apt knows no package {', '.join(missing)} (apt-get update?)")
    return sorted(names)


def download(packages: Sequence[str], folder: Path) -> list[Path]:
    """`apt-get download` of the closure into folder/debs; the files it wrote."""
    target = folder / DEBS
    target.mkdir(parents=True, exist_ok=True)
    names = closure(packages)
    result = command.run(["apt-get", "download", *names], timeout=DOWNLOAD_TIMEOUT_S,
                         cwd=target, check=False, what="apt-get download")
    if not result.ok:
        said = [ln for ln in result.stderr.splitlines() if ln.startswith("E: ")]
        raise BackendError(f"apt-get download of {len(names)} packages failed: "
                           f"{(said or result.stderr.strip().splitlines() or ['?'])[0]}")
    return sorted(target.glob("*.deb"))
