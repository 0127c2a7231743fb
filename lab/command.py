"""Running external commands here: always with a timeout, always keeping the exit status."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
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
    on_line: Callable[[str], None] | None = None,
) -> Result:
    """Run `argv` (never through a shell) and return its Result; raise CommandFailed if `check`.

    `on_line` is called with each line the command prints on stdout as it prints it (the
    progress of a long `vagrant up`); the Result holds all of it as well.
    """
    argv = tuple(argv)
    start = time.monotonic()
    if on_line is not None:
        result = _run_streaming(argv, timeout, input, env, where, cwd, on_line)
        if check and not result.ok:
            raise CommandFailed(result, what)
        return result
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


def _run_streaming(argv: tuple[str, ...], timeout: float, input: str | None,
                   env: dict[str, str] | None, where: str, cwd: Path | None,
                   on_line: Callable[[str], None]) -> Result:
    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else
                                subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    except FileNotFoundError:
        return Result(argv, 127, "", f"{argv[0]}: command not found", 0.0, timeout,
                      where=where)
    out: list[str] = []
    err: list[str] = []

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            on_line(line.rstrip("\n"))

    def read_err() -> None:
        assert proc.stderr is not None
        err.extend(proc.stderr)

    readers = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=read_err, daemon=True)]
    for reader in readers:
        reader.start()
    if input is not None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(input)
        proc.stdin.close()
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()  # by its own pid
        proc.wait()
    except BaseException:
        proc.kill()  # Ctrl-C: the command does not outlive `lab`
        proc.wait()
        raise
    for reader in readers:
        reader.join(5)
    return Result(argv, -1 if timed_out else proc.returncode, "".join(out), "".join(err),
                  time.monotonic() - start, timeout, timed_out=timed_out, where=where)
