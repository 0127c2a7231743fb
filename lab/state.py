"""A lab's state file and lock, under `<project>/.lab/<lab name>/`.

What a backend creates is recorded here *before* it is created (write-ahead), so that
`destroy` can remove exactly that, also after a crash or a `kill -9` of `lab`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.errors import LabBusy

STATE_VERSION = 1


def lab_dir(project_dir: Path, lab_name: str) -> Path:
    return project_dir / ".lab" / lab_name


class State:
    """A JSON document saved atomically after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path.exists():
            self.data = json.loads(path.read_text())

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": STATE_VERSION, **self.data}, indent=2) + "\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.data = {}

    def list(self, key: str) -> list[Any]:
        value = self.data.setdefault(key, [])
        assert isinstance(value, list)
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.setdefault(key, {})
        assert isinstance(value, dict)
        return value


@contextlib.contextmanager
def lab_lock(directory: Path, what: str) -> Iterator[None]:
    """Hold the lab's lock for a command that changes it; refuse at once if it is busy."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another command"
            raise LabBusy(f"lab is busy: {holder} holds {path}; wait for it to finish "
                          "(or stop that command), then try again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({what})\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def argv_summary() -> str:
    return " ".join(["lab", *sys.argv[1:]])[:200]
