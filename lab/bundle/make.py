"""Making a bundle folder: packages (from this machine's apt), the box (from Vagrant's
store on this machine), then the manifest with every file's sha256."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path

from lab.bundle import from_apt
from lab.bundle.manifest import BOX, MANIFEST, Bundle
from lab.errors import UsageError
from lab.ui import Reporter


def _fresh(out: Path) -> None:
    """A new bundle goes into an empty folder, or over an earlier bundle; never over
    anything else."""
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise UsageError(f"{out} is not empty and holds no bundle: give an empty folder")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def box_file_name(name: str, version: str, provider: str) -> str:
    return f"{BOX}/{name.replace('/', '-')}-{version}-{provider}.box"


def pack_box(folder: Path, out: Path, name: str, version: str, provider: str) -> str:
    """The unpacked box as a .box (a tar of its files, which is what Vagrant adds)."""
    relative = box_file_name(name, version, provider)
    (out / BOX).mkdir(exist_ok=True)
    with tarfile.open(out / relative, "w") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(str(path), arcname=path.relative_to(folder).as_posix())
    return relative


def make_from_apt(out: Path, packages: Sequence[str], box: dict[str, str] | None,
                  box_folder: Path | None, reporter: Reporter) -> Bundle:
    codename, arch = from_apt.release()
    _fresh(out)
    bundle = Bundle(out, codename, arch)
    with reporter.step(f"packages for {codename}/{arch} with their dependencies: "
                       f"{', '.join(packages)}") as step:
        debs = from_apt.download(packages, out)
        step.progress(f"{len(debs)} packages")
    for deb in debs:
        bundle.add(deb.relative_to(out).as_posix())
    if box and box_folder:
        with reporter.step(f"box {box['name']} {box['version']} ({box['provider']})"):
            relative = pack_box(box_folder, out, box["name"], box["version"], box["provider"])
            bundle.add(relative)
            bundle.box = {**box, "file": relative}
    with reporter.step("checksums"):
        bundle.write()
    return bundle
