"""A bundle's pieces from a lab that is up (brought up once with internet): the packages
apt downloaded on each VM (its cache), every file the steps fetched (lib.sh keeps a copy
of each, named by its sha256), and the node's container images, exported by containerd
for the node's platform. What Kubernetes needs offline comes from here: pkgs.k8s.io's
packages, the control-plane, flannel and Multus images, the manifests and keys."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lab import fetched
from lab.bundle.manifest import DEBS, FILES, IMAGES, Bundle
from lab.command import Result
from lab.errors import UsageError

LIST_TIMEOUT_S = 120.0
EXPORT_TIMEOUT_S = 1800.0
FETCH_TIMEOUT_S = 3600.0
APT_CACHE = "/var/cache/apt/archives"

# $1: the steps' state folder, $2: where to export images. Tab-separated lines.
_LIST = r"""
state=$1; export=$2
for f in /var/cache/apt/archives/*.deb; do [ -e "$f" ] && printf 'deb\t%s\n' "$f"; done
""" + fetched.LIST_SHELL + r"""
. /etc/os-release; printf 'release\t%s\n' "${VERSION_CODENAME:-}"
printf 'arch\t%s\n' "$(dpkg --print-architecture 2>/dev/null)"
if command -v ctr >/dev/null; then
    ctr -n k8s.io images ls -q 2>/dev/null | grep -v '^sha256:' | sed 's/^/image\t/'
fi
true
"""


class FileHost(Protocol):
    """A host that runs commands and hands files back (SshHost)."""

    name: str

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result: ...

    def receive_files(self, paths: Sequence[str], dest: Path, *, timeout: float
                      ) -> list[Path]: ...


@dataclass
class Found:
    release: str = ""
    arch: str = ""
    debs: list[str] = field(default_factory=list)
    fetched: dict[str, str] = field(default_factory=dict)  # URL -> sha256
    images: list[str] = field(default_factory=list)


def listing(text: str) -> Found:
    found = Found()
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "deb":
            found.debs.append(rest)
        elif kind == fetched.KIND and (download := fetched.parse(rest)):
            found.fetched[download[0]] = download[1]
        elif kind == "image" and rest:
            found.images.append(rest)
        elif kind == "release":
            found.release = rest
        elif kind == "arch":
            found.arch = rest
    return found


def image_file(reference: str) -> str:
    """registry.k8s.io/pause:3.10.2 -> registry.k8s.io_pause_3.10.2.tar"""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", reference) + ".tar"


def gather(hosts: Mapping[str, FileHost], nodes: Sequence[str], state_dir: str,
           bundle: Bundle, with_debs: bool) -> None:
    """Into `bundle`'s folder: each host's fetched files, the nodes' images, and (when
    `with_debs`) the packages in the VMs' apt caches."""
    export_dir = f"{state_dir}/export"
    seen_files: dict[str, str] = {}
    for name, host in hosts.items():
        found = listing(host.run(["sh", "-c", _LIST, "sh", state_dir, export_dir],
                                 timeout=LIST_TIMEOUT_S,
                                 what=f"list what {name} downloaded").stdout)
        if bundle.release and (found.release, found.arch) != (bundle.release,
                                                              bundle.architecture):
            raise UsageError(f"{name} runs {found.release}/{found.arch} and the bundle's "
                             f"packages are for {bundle.release}/{bundle.architecture}: a "
                             "bundle serves one release (use --no-apt when this machine's "
                             "apt is another release than the VMs')")
        bundle.release, bundle.architecture = found.release, found.arch
        if with_debs and found.debs:
            for local in host.receive_files(found.debs, bundle.folder / DEBS,
                                            timeout=FETCH_TIMEOUT_S):
                bundle.add(f"{DEBS}/{local.name}")
        wanted = {url: digest for url, digest in found.fetched.items()
                  if digest not in seen_files}
        if wanted:
            copies = [fetched.copy_path(state_dir, d) for d in sorted(set(wanted.values()))]
            for local in host.receive_files(copies, bundle.folder / FILES,
                                            timeout=FETCH_TIMEOUT_S):
                bundle.add(f"{FILES}/{local.name}")
                seen_files[local.name] = f"{FILES}/{local.name}"
        for url, digest in found.fetched.items():
            if digest in seen_files:
                bundle.downloads[url] = seen_files[digest]
        if name in nodes and found.images:
            exported = []
            for reference in found.images:
                target = f"{export_dir}/{image_file(reference)}"
                host.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && ctr -n k8s.io images '
                          'export --platform "linux/$2" "$1" "$3"', "sh", target,
                          found.arch, reference], timeout=EXPORT_TIMEOUT_S,
                         what=f"export {reference} from {name}'s containerd")
                exported.append(target)
            for local in host.receive_files(exported, bundle.folder / IMAGES,
                                            timeout=FETCH_TIMEOUT_S):
                bundle.add(f"{IMAGES}/{local.name}")
            host.run(["rm", "-rf", export_dir], timeout=LIST_TIMEOUT_S, check=False)
