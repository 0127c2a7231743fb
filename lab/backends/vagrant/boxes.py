"""Boxes as Vagrant keeps them on this machine: where a box version lives, and the sha256
that identifies it in lab.lock (Vagrant keeps no checksum once a box is added)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CHUNK = 1 << 20


def vagrant_home() -> Path:
    return Path(os.environ.get("VAGRANT_HOME") or Path.home() / ".vagrant.d")


def box_dir(name: str, version: str, provider: str, home: Path | None = None) -> Path | None:
    """boxes/<name, '/' as -VAGRANTSLASH->/<version>/[<architecture>/]<provider>: Vagrant
    2.4 adds the architecture level; older ones do not have it."""
    base = (home or vagrant_home()) / "boxes" / name.replace("/", "-VAGRANTSLASH-") / version
    direct = base / provider
    if direct.is_dir():
        return direct
    nested = sorted(p for p in base.glob(f"*/{provider}") if p.is_dir())
    return nested[0] if nested else None


def cached_tree_sha256(folder: Path, cache: Path) -> str:
    """`tree_sha256`, kept in `cache` (JSON) under the files' names, sizes and times:
    a box of a gigabyte is read once, not at every `lab up`."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    key = json.dumps([str(folder)] + [[p.name, p.stat().st_size, p.stat().st_mtime_ns]
                                      for p in files])
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if known.get("key") == key:
        return str(known["sha256"])
    digest = tree_sha256(folder)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "sha256": digest}))
    return digest


def tree_sha256(folder: Path) -> str:
    """One digest of every file under `folder`: names and contents, in a fixed order."""
    total = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        total.update(f"{path.relative_to(folder).as_posix()}\0{digest.hexdigest()}\n".encode())
    return total.hexdigest()
