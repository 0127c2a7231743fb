"""This machine as a `Host`, and the background process that every local host starts.

`LocalHost` runs commands here as they are (kubectl against a cluster's kubeconfig);
the netns backend's hosts wrap the same process in `ip netns exec`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import IO

from lab import command
from lab.command import Result

# When asked to stop, a process gets SIGTERM, then SIGKILL after this long.
STOP_GRACE_S = 3.0


class LocalHost:
    """This machine. Background commands are bounded by timeout(1), like every host's."""

    def __init__(self, name: str = "localhost") -> None:
        self.name = name

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        return command.run(argv, timeout=timeout, check=check, input=input, what=what,
                           where=self.name)

    def start(self, argv: Sequence[str], *, timeout: float) -> LocalProcess:
        bounded = ["timeout", "--kill-after=2", f"{timeout:g}", *argv]
        return LocalProcess(bounded, where=self.name, timeout=timeout)


class LocalProcess:
    """A child process of `lab`, its output in unnamed temporary files (no pipe to fill up)."""

    def __init__(self, argv: list[str], *, where: str, timeout: float,
                 env: dict[str, str] | None = None) -> None:
        self.argv = tuple(argv)
        self.where = where
        self.timeout = timeout
        # Closed in stop(), which every creator calls (the runner does in a finally).
        self._out = tempfile.TemporaryFile()  # noqa: SIM115
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self._started = time.monotonic()
        # Its own session: a Ctrl-C in the terminal reaches `lab`, which stops it in order,
        # instead of killing it mid-report.
        self._proc = subprocess.Popen(argv, stdout=self._out, stderr=self._err,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      env=env)
        self._result: Result | None = None
        self._terminated = False

    def running(self) -> bool:
        return self._proc.poll() is None

    def output(self) -> str:
        # After stop() the files are closed; what they held is in the Result.
        return self._result.stdout if self._result is not None else _read(self._out)

    def error_output(self) -> str:
        return self._result.stderr if self._result is not None else _read(self._err)

    def terminate(self) -> None:
        if self._result is None and not self._terminated and self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            self._terminated = True

    def stop(self) -> Result:
        if self._result is not None:
            return self._result
        timed_out = False
        if self._proc.poll() is None:
            # Once only: a second SIGTERM can cut short the final report the first asked for.
            self.terminate()
            try:
                self._proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait(STOP_GRACE_S)
        status = self._proc.returncode
        if status == 124:  # timeout(1) ended it: it ran its full allowed time
            timed_out = True
        self._result = Result(self.argv, status, _read(self._out), _read(self._err),
                              time.monotonic() - self._started, self.timeout,
                              timed_out=timed_out, where=self.where)
        self._out.close()
        self._err.close()
        return self._result

    def _signal(self, sig: int) -> None:
        # By its own pid (and its process group, which it leads: `ip netns exec` execs into
        # timeout(1), which forwards the signal to the command it runs).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)


def _read(handle: IO[bytes]) -> str:
    fd = handle.fileno()
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0).decode(errors="replace")
