"""The one exception tree of the lab. Exit codes are mapped in `lab.cli`, nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.command import Result


class LabError(Exception):
    """Root of every error the lab raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an input file: where (file and dotted key) and what."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class ConfigError(LabError):
    """Bad input (lab or scenario file, arguments). Nothing has been created."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(LabError):
    """The command cannot be done as asked (unknown scenario, no lab running...)."""


class BackendError(LabError):
    """The lab or its infrastructure failed or is not ready."""


class LabBusy(BackendError):
    """Another `lab` command holds this lab's lock."""


class Interrupted(LabError):
    """SIGINT or SIGTERM arrived; cleanup has run."""


class CommandFailed(BackendError):
    """An external command exited non-zero or timed out; carries its Result."""

    def __init__(self, result: Result, what: str = "") -> None:
        self.result = result
        self.what = what
        super().__init__(self._describe())

    def _describe(self) -> str:
        r = self.result
        status = (f"timed out after {r.timeout:g} s" if r.timed_out
                  else f"exit status {r.exit_status}")
        head = f"{self.what}: " if self.what else ""
        lines = [f"{head}command failed ({status}) on {r.where}: {r.shown}"]
        tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-8:]
        lines.extend(f"  | {line}" for line in tail)
        return "\n".join(lines)
