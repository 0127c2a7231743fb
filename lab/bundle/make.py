"""Making a bundle folder: packages (from this machine's apt), the box (from Vagrant's
store on this machine), then the manifest with every file's sha256."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.bundle import from_apt, from_lab
from lab.bundle.manifest import BOX, MANIFEST, Bundle
from lab.errors import UsageError
from lab.ui import Reporter

# A lab that is up: its hosts, which of them are nodes, the steps' state folder there.
LabSources = tuple[Mapping[str, from_lab.FileHost], list[str], str]


def _check_out(out: Path) -> None:
    """A new bundle goes into an empty folder, or over an earlier bundle; never over
    anything else."""
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise UsageError(f"{out} is not empty and holds no bundle: give an empty folder")


def _replace(made: Path, out: Path) -> None:
    """The finished bundle takes the place of an earlier one at `out` (which a failed
    `lab bundle` leaves as it was)."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    made.rename(out)
    shutil.rmtree(old, ignore_errors=True)


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


def make(out: Path, packages: Sequence[str], use_apt: bool, lab: LabSources | None,
         box: dict[str, str] | None, box_folder: Path | None, reporter: Reporter) -> Bundle:
    """Packages from this machine's apt (`use_apt`), what a lab that is up downloaded
    (`lab`: packages in its apt caches, fetched files, the nodes' images), the box."""
    if not use_apt and lab is None:
        raise UsageError("nothing to gather: bring the lab up once with internet (`lab up`),"
                         " or make the bundle on a Debian or Ubuntu machine of the box's "
                         "release (its apt)")
    codename, arch = from_apt.release() if use_apt else ("", "")
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    final, out = out, Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        bundle = _gather(out, packages, use_apt, lab, box, box_folder, reporter, codename,
                         arch)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    _replace(out, final)
    bundle.folder = final
    return bundle


def _gather(out: Path, packages: Sequence[str], use_apt: bool, lab: LabSources | None,
            box: dict[str, str] | None, box_folder: Path | None, reporter: Reporter,
            codename: str, arch: str) -> Bundle:
    bundle = Bundle(out, codename, arch)
    if use_apt:
        with reporter.step(f"packages for {codename}/{arch} with their dependencies: "
                           f"{', '.join(packages)}") as step:
            debs = from_apt.download(packages, out)
            step.progress(f"{len(debs)} packages")
        for deb in debs:
            bundle.add(deb.relative_to(out).as_posix())
    if lab is not None:
        hosts, nodes, state_dir = lab
        with reporter.step(f"from the lab: {', '.join(hosts)} (apt caches, downloads, "
                           "images)") as step:
            before = len(bundle.files)
            from_lab.gather(hosts, nodes, state_dir, bundle, with_debs=True)
            step.progress(f"{len(bundle.files) - before} files")
    if box and box_folder:
        with reporter.step(f"box {box['name']} {box['version']} ({box['provider']})"):
            relative = pack_box(box_folder, out, box["name"], box["version"], box["provider"])
            bundle.add(relative)
            bundle.box = {**box, "file": relative}
    with reporter.step("checksums"):
        bundle.write()
    return bundle
