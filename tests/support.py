"""Helpers the tests share: the repository's path, lab projects in temporary folders,
special input files. A module of its own (pytest's conftest.py is not for importing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def special_input_file(kind: str, folder: Path) -> Path:
    """A path that is no small regular file, to give where a lab or scenario file goes:
    a character device, a named pipe, a directory, or a file over the size limit."""
    if kind == "char-device":
        return Path("/dev/zero")
    target = folder / f"{kind}.yaml"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    elif kind == "too-large":
        target.write_text("# padding\n" * 200_000)  # 2,000,000 bytes
    else:
        raise ValueError(kind)
    return target


def base_lab() -> dict:
    return yaml.safe_load((REPO / "lab.yaml").read_text())


@dataclass
class Project:
    """A lab project in a temporary folder: its own lab name, the repo's scenarios."""

    dir: Path
    name: str
    file_name: str = "lab.yaml"  # another lab of the same project has its own file

    @property
    def lab_file(self) -> Path:
        return self.dir / self.file_name

    def lab(self, *args: str, timeout: float = 300, check_codes: tuple[int, ...] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "lab", "-f", str(self.lab_file), *args],
                              cwd=self.dir, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "COLUMNS": "150"})
        if check_codes is not None:
            assert proc.returncode in check_codes, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def namespaces(self) -> list[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             check=True).stdout
        return [line.split()[0] for line in out.splitlines()
                if line.split() and line.split()[0].startswith(self.name + "-")]


def make_project(root: Path, **overrides: object) -> Project:
    name = "t" + uuid.uuid4().hex[:8]
    data = base_lab()
    data["name"] = name
    data.update(overrides)
    root.mkdir(parents=True, exist_ok=True)
    (root / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copytree(REPO / "scenarios", root / "scenarios")
    return Project(root, name)
