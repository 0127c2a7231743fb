"""A bundle folder and its manifest, `bundle.yaml`: every file with its sha256, what each
downloaded URL's copy is, the Debian release and architecture the packages are for, and
the box. Verified as a whole before any of it is used: a missing or corrupt file is named."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.model.fields import Problems, versioned_yaml

MANIFEST = "bundle.yaml"
BUNDLE_VERSION = 1
CHUNK = 1 << 20
# Folders of a bundle, by what they hold.
DEBS, IMAGES, FILES, BOX = "debs", "images", "files", "box"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    folder: Path
    release: str  # the Debian/Ubuntu codename the packages are for (bookworm, noble)
    architecture: str  # dpkg's (amd64, arm64)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    downloads: dict[str, str] = field(default_factory=dict)  # URL -> relative path
    box: dict[str, str] = field(default_factory=dict)  # name, version, provider, file

    def paths(self, folder: str) -> list[str]:
        return sorted(p for p in self.files if p.startswith(f"{folder}/"))

    def add(self, relative: str) -> None:
        self.files[relative] = sha256_of(self.folder / relative)

    def write(self) -> Path:
        path = self.folder / MANIFEST
        data: dict[str, Any] = {"bundle": BUNDLE_VERSION, "release": self.release,
                                "architecture": self.architecture, "box": self.box or None,
                                "downloads": dict(sorted(self.downloads.items())),
                                "files": dict(sorted(self.files.items()))}
        path.write_text("# An offline bundle of mcast-lab: `lab up --bundle FOLDER` "
                        "provisions from it. Every file with its sha256.\n"
                        + yaml.safe_dump(data, sort_keys=False, width=100))
        return path


def read(folder: Path) -> Bundle:
    path = folder / MANIFEST
    problems = Problems(str(path))
    data = versioned_yaml(path, problems, "bundle", BUNDLE_VERSION,
                          f"no {MANIFEST} in {folder}: not a bundle (`lab bundle --out "
                          f"{folder}` makes one)", "bundle")
    files = _mapping(problems, "files", data.get("files"))
    downloads = _mapping(problems, "downloads", data.get("downloads"))
    box = _mapping(problems, "box", data.get("box"))
    for rel in files:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.add(f"files.{rel}", "must be a path inside the bundle")
    if box and (set(box) != {"name", "version", "provider", "sha256", "file"}
                and set(box) != {"name", "version", "provider", "file"}):
        problems.add("box", "must have name, version, provider and file")
    elif box and box["file"] not in files:
        problems.add("box.file", f"{box['file']} is not among the bundle's files")
    problems.raise_if_any()
    return Bundle(folder, str(data.get("release", "")), str(data.get("architecture", "")),
                  files, downloads, box)


def _mapping(problems: Problems, key: str, value: Any) -> dict[str, str]:
    """A mapping of strings to strings (None: empty), or a problem of `key`."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str | int)
                                              for k, v in value.items()):
        problems.add(key, "must be a mapping of names to values")
        return {}
    return {k: str(v) for k, v in value.items()}


def verify(bundle: Bundle) -> None:
    """Every file the manifest lists is there with its sha256; the first that is not is
    named (with the manifest's key), before anything of the bundle is used."""
    problems = Problems(str(bundle.folder / MANIFEST))
    for rel, want in bundle.files.items():
        path = bundle.folder / rel
        if not path.is_file():
            problems.add(f"files.{rel}", f"{path} is missing from the bundle")
        elif sha256_of(path) != want:
            problems.add(f"files.{rel}", f"{path} is corrupt: its sha256 is "
                                         f"{sha256_of(path)}, the manifest says {want}")
    for url, rel in bundle.downloads.items():
        if rel not in bundle.files:
            problems.add(f"downloads.{url}", f"{rel} is not among the bundle's files")
    problems.raise_if_any()
