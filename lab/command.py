"""Running external commands here: always with a timeout, always keeping the exit status."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import CommandFailed


@dataclass(frozen=True)
class Result:
    """What a finished (or timed out) command left: the invoke/fabric `Result` shape."""

    command: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str
    duration: float
    timeout: float
    timed_out: bool = False
    where: str = "localhost"

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    @property
    def shown(self) -> str:
        return shlex.join(self.command)


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
    what: str = "",
    where: str = "localhost",
    cwd: Path | None = None,
) -> Result:
    """Run `argv` (never through a shell) and return its Result; raise CommandFailed if `check`."""
    argv = tuple(argv)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            check=False,
        )
        result = Result(argv, proc.returncode, proc.stdout, proc.stderr,
                        time.monotonic() - start, timeout, where=where)
    except subprocess.TimeoutExpired as exc:
        result = Result(argv, -1, _text(exc.stdout), _text(exc.stderr),
                        time.monotonic() - start, timeout, timed_out=True, where=where)
    except FileNotFoundError:
        result = Result(argv, 127, "", f"{argv[0]}: command not found",
                        time.monotonic() - start, timeout, where=where)
    if check and not result.ok:
        raise CommandFailed(result, what)
    return result


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")
