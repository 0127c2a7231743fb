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
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from lab.errors import BackendError, LabBusy

STATE_VERSION = 1
R = TypeVar("R", bound="Record")


class Record(Protocol):
    """A backend's typed record of what it made (each backend package has its own)."""

    backend: str

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Raise KeyError/TypeError/ValueError on anything it does not know."""
        ...


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """`data` checked against the dataclass `cls`: a key it does not know is an error."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    return dict(data)


class State:
    """The state file: one backend's record, saved atomically after every change.

    The file is read once; `record(cls)` gives the typed record (a fresh, empty one when
    there is no file). Which backend wrote it can be asked before knowing its record type.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: dict[str, Any] = {}
        self._record: Record | None = None
        if path.exists():
            try:
                self._raw = json.loads(path.read_text())
            except ValueError as exc:
                raise BackendError(f"{path} is not JSON ({exc}); move it away and run "
                                   "`lab destroy` to remove what it recorded") from None

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def backend(self) -> str | None:
        """The backend the lab is up with, if any."""
        if self._record is not None:
            return self._record.backend if self.exists else None
        value = self._raw.get("backend")
        return value if isinstance(value, str) else None

    def record(self, cls: type[R]) -> R:
        if self._record is None:
            data = {k: v for k, v in self._raw.items() if k != "version"}
            wrote = data.get("backend")
            if wrote is not None and wrote != cls.from_json({}).backend:
                raise BackendError(f"{self.path} was written by the {wrote} backend, not "
                                   f"the {cls.from_json({}).backend} backend: `lab destroy` "
                                   f"with --backend {wrote} first")
            try:
                self._record = cls.from_json(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise BackendError(f"{self.path} is not a state record this lab reads "
                                   f"({cls.__name__}: {exc}); it was written by another "
                                   "version of lab or changed by hand") from None
        if not isinstance(self._record, cls):
            raise TypeError(f"{self.path} holds a {type(self._record).__name__}")
        return self._record

    def save(self) -> None:
        if self._record is None:
            raise RuntimeError("save() before record(): nothing to save")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": STATE_VERSION, **self._record.to_json()},
                                  indent=2) + "\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        """Delete the file; the record starts over empty (a demo's next `up` uses it)."""
        self.path.unlink(missing_ok=True)
        self._raw = {}
        if self._record is not None:
            self._record = type(self._record).from_json({})


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
