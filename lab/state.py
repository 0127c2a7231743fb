"""A lab's state file and lock, under `<project>/.lab/<lab name>/`.

What a backend creates is recorded here *before* it is created (write-ahead), so that
`destroy` can remove exactly that, also after a crash or a `kill -9` of `lab`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from lab import hostos
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


# The holder's line is written over the start of the lock file, padded so that a shorter
# line needs no truncation (Windows refuses to shorten a file part of which is locked).
HOLDER_BYTES = 256
# Windows locks byte ranges, and a locked range cannot be read by others: the lock is on
# one byte far past the holder's line, which stays readable to whoever is refused.
WINDOWS_LOCK_OFFSET = 1 << 20


class _PosixLock:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.fcntl = importlib.import_module("fcntl")

    def acquire(self) -> bool:
        try:
            self.fcntl.flock(self.fd, self.fcntl.LOCK_EX | self.fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        pass  # closing the descriptor releases it


class _WindowsLock:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.msvcrt = importlib.import_module("msvcrt")

    def acquire(self) -> bool:
        os.lseek(self.fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            self.msvcrt.locking(self.fd, self.msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def release(self) -> None:
        # Windows releases a closed file's locks "when the system gets to it": unlock now.
        os.lseek(self.fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        self.msvcrt.locking(self.fd, self.msvcrt.LK_UNLCK, 1)


def _read_at_start(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, HOLDER_BYTES).decode(errors="replace").strip()


@contextlib.contextmanager
def lab_lock(directory: Path, what: str, system: str | None = None) -> Iterator[None]:
    """Hold the lab's lock for a command that changes it; refuse at once if it is busy.
    `system` (hostos' word for the OS) picks the lock call; this machine's by default."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    lock = (_WindowsLock if (system or hostos.system()) == "windows" else _PosixLock)(fd)
    try:
        if not lock.acquire():
            holder = _read_at_start(fd) or "another command"
            raise LabBusy(f"lab is busy: {holder} holds {path}; wait for it to finish "
                          "(or stop that command), then try again")
        try:
            line = f"pid {os.getpid()} ({what})"[:HOLDER_BYTES - 1]
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (line + "\n").ljust(HOLDER_BYTES).encode())
            yield
        finally:
            lock.release()
    finally:
        os.close(fd)


def argv_summary() -> str:
    return " ".join(["lab", *sys.argv[1:]])[:200]
