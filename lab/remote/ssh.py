"""Hosts reached over SSH with fabric (VMs): the same `Host` interface as namespaces."""

from __future__ import annotations

import base64
import shlex
import shutil
import tarfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabric import Connection
from invoke.exceptions import CommandTimedOut
from paramiko.ssh_exception import NoValidConnectionsError, SSHException
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from lab.command import Result
from lab.errors import BackendError, CommandFailed

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in: what `vagrant ssh-config` says, or a cluster's node list."""

    host: str
    hostname: str
    port: int
    user: str
    identity_file: str


class SshHost:
    """A VM over SSH. The connection opens lazily, is reused, and closes in `close()`.

    Lab VMs are new at every `up`, so their host keys are unknown by design: fabric's
    Connection already accepts new keys (paramiko's AutoAddPolicy).

    Commands run through `sudo -n` when `sudo` is set: the lab's work (joining groups on
    any NIC, provisioning) needs root, and the Vagrant user has password-less sudo.
    """

    def __init__(self, name: str, target: SshTarget, sudo: bool = True) -> None:
        self.name = name
        self.target = target
        self.sudo = sudo
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @property
    def conn(self) -> Connection:
        with self._lock:
            if self._conn is None:
                t = self.target
                self._conn = Connection(
                    t.hostname, user=t.user, port=t.port, connect_timeout=CONNECT_TIMEOUT_S,
                    connect_kwargs={"key_filename": [t.identity_file], "look_for_keys": False,
                                    "allow_agent": False, "banner_timeout": CONNECT_TIMEOUT_S,
                                    "auth_timeout": CONNECT_TIMEOUT_S})
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def wait_ready(self, deadline_s: float) -> None:
        """Wait (with a deadline) until SSH answers a command: boot is transient, retried."""

        @retry(stop=stop_after_delay(deadline_s), wait=wait_fixed(2), reraise=True,
               retry=retry_if_exception_type((OSError, SSHException, NoValidConnectionsError,
                                              EOFError)))
        def attempt() -> None:
            try:
                self.conn.run("true", hide=True, in_stream=False, timeout=CONNECT_TIMEOUT_S)
            except BaseException:
                self.close()
                raise

        try:
            attempt()
        except (OSError, SSHException, EOFError) as exc:
            raise BackendError(f"{self.name}: SSH to {self.target.user}@{self.target.hostname}:"
                               f"{self.target.port} did not answer within {deadline_s:g} s "
                               f"({exc})") from None

    def _command(self, argv: Sequence[str]) -> str:
        text = shlex.join(argv)
        return f"sudo -n {text}" if self.sudo else text

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        cmd = self._command(argv)
        if input is not None:
            # Streaming stdin races with a command that exits early (invoke then raises from
            # its stdin thread); the input travels inside the command line instead.
            encoded = base64.b64encode(input.encode()).decode()
            cmd = f"printf %s {encoded} | base64 -d | {cmd}"
        start = time.monotonic()
        kwargs: dict[str, Any] = {"hide": True, "warn": True, "timeout": timeout,
                                  "in_stream": False}
        try:
            res = self.conn.run(cmd, **kwargs)
            elapsed = time.monotonic() - start
            # invoke's timer can end the command and still return instead of raising
            # CommandTimedOut (a race in its runner): no exit status (-1) after the whole
            # allowed time is a timeout all the same.
            result = Result(tuple(argv), res.exited, res.stdout, res.stderr, elapsed, timeout,
                            timed_out=res.exited == -1 and elapsed >= timeout,
                            where=self.name)
        except CommandTimedOut as exc:
            result = Result(tuple(argv), -1, exc.result.stdout, exc.result.stderr,
                            time.monotonic() - start, timeout, timed_out=True, where=self.name)
        except (OSError, SSHException, EOFError) as exc:
            self.close()
            # Not the command line: a step's carries its parameters (a join token).
            raise BackendError(f"{self.name}: SSH failed running {what or argv[0]}: "
                               f"{exc}") from None
        if check and not result.ok:
            raise CommandFailed(result, what)
        return result

    def _channel(self, cmd: str, timeout: float) -> Any:
        """A channel of its own running `cmd`, every read and write bounded by `timeout`:
        for a byte stream (a tar) that fabric's run would hold as text."""
        self.conn.open()
        transport = self.conn.client.get_transport()
        if transport is None:
            raise SSHException("no transport")
        channel = transport.open_session(timeout=CONNECT_TIMEOUT_S)
        channel.settimeout(timeout)
        channel.exec_command(cmd)
        return channel

    def send_files(self, files: Sequence[tuple[Path, str]], dest: str, *, timeout: float
                   ) -> None:
        """Put `files` (local path, name under dest) into the folder `dest` on the host,
        replacing it: one tar stream over one SSH channel, unpacked there (as root when
        `sudo` is set). Bounded by `timeout` on every read and write."""
        script = 'rm -rf "$1" && mkdir -p "$1" && tar -x -C "$1" -f -'
        cmd = self._command(["sh", "-c", script, "sh", dest])
        start = time.monotonic()
        try:
            channel = self._channel(cmd, timeout)
            try:
                with channel.makefile("wb") as stream, \
                        tarfile.open(fileobj=stream, mode="w|") as tar:
                    for path, name in files:
                        tar.add(str(path), arcname=name, recursive=False)
                channel.shutdown_write()
            except OSError:
                # The command there ended before taking everything (it failed): what it
                # said is the error, not the closed socket.
                if not channel.status_event.wait(CONNECT_TIMEOUT_S):
                    raise
            left = max(1.0, timeout - (time.monotonic() - start))
            if not channel.status_event.wait(left):
                channel.close()
                raise BackendError(f"{self.name}: unpacking {len(files)} files in {dest} "
                                   f"did not end within {timeout:g} s")
            status, said = _ended(channel)
        except (OSError, SSHException, EOFError) as exc:
            self.close()
            raise BackendError(f"{self.name}: SSH failed sending {len(files)} files to "
                               f"{dest}: {exc}") from None
        self._succeeded(status, said, f"unpacking files in {dest}")

    def receive_files(self, paths: Sequence[str], dest: Path, *, timeout: float) -> list[Path]:
        """Copy the files at `paths` (absolute, on the host, read as root when `sudo` is
        set) into the local folder `dest`, by their names: one tar stream over one SSH
        channel. Returns the local files."""
        cmd = self._command(["tar", "-c", "-f", "-", "--transform", "s|.*/||",
                             "--show-transformed-names", *paths])
        dest.mkdir(parents=True, exist_ok=True)
        got: list[Path] = []
        try:
            channel = self._channel(cmd, timeout)
            with channel.makefile("rb") as stream, \
                    tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    name = Path(member.name).name
                    if not member.isfile() or not name:
                        continue
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    with (dest / name).open("wb") as out:
                        shutil.copyfileobj(source, out)
                    got.append(dest / name)
            status, said = _ended(channel)
        except (OSError, SSHException, EOFError, tarfile.TarError) as exc:
            self.close()
            raise BackendError(f"{self.name}: SSH failed fetching {len(paths)} files: "
                               f"{exc}") from None
        self._succeeded(status, said, f"reading {len(paths)} files")
        return got

    def _succeeded(self, status: int, said: str, what: str) -> None:
        if status != 0:
            raise BackendError(f"{self.name}: {what} failed (exit status {status}): "
                               f"{said[-500:]}")

    def start(self, argv: Sequence[str], *, timeout: float) -> SshProcess:
        bounded = ["timeout", "--kill-after=2", f"{timeout:g}", *argv]
        # The remote shell prints its pid first, then becomes the command: `stop()` ends it
        # by that pid, never by name.
        inner = f"echo $$; exec {shlex.join(bounded)}"
        cmd = self._command(["sh", "-c", inner])
        promise = self.conn.run(cmd, hide=True, warn=True, asynchronous=True, in_stream=False)
        return SshProcess(self, tuple(argv), promise, timeout)


def _ended(channel: Any) -> tuple[int, str]:
    """A channel's exit status and what its command said on stderr; the channel closed."""
    status = channel.recv_exit_status()
    said = channel.makefile_stderr("rb").read().decode(errors="replace").strip()
    channel.close()
    return status, said


class SshProcess:
    def __init__(self, host: SshHost, argv: tuple[str, ...], promise: Any, timeout: float
                 ) -> None:
        self.host = host
        self.argv = argv
        self.promise = promise
        self.timeout = timeout
        self.started = time.monotonic()
        self._result: Result | None = None
        self._terminated = False

    def _raw(self) -> str:
        return "".join(self.promise.runner.stdout)

    def _pid(self) -> str | None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            first, _, _ = self._raw().partition("\n")
            if first.strip().isdigit() and "\n" in self._raw():
                return first.strip()
            if not self.running():
                return None
            time.sleep(0.05)
        return None

    def running(self) -> bool:
        return not self.promise.runner.process_is_finished

    def output(self) -> str:
        return self._raw().partition("\n")[2]

    def error_output(self) -> str:
        return "".join(self.promise.runner.stderr)

    def terminate(self) -> None:
        if self._result is None and not self._terminated and self.running():
            pid = self._pid()
            if pid:
                self.host.run(["kill", "-TERM", pid], timeout=10, check=False)
            self._terminated = True

    def stop(self) -> Result:
        if self._result is not None:
            return self._result
        self.terminate()
        try:
            res = self.promise.join()
            status, stderr = res.exited, res.stderr
        except Exception as exc:  # invoke raises UnexpectedExit-like errors from join()
            result = getattr(exc, "result", None)
            status = getattr(result, "exited", -1)
            stderr = getattr(result, "stderr", str(exc))
        self._result = Result(self.argv, status, self.output(), stderr,
                              time.monotonic() - self.started, self.timeout,
                              timed_out=status == 124, where=self.host.name)
        return self._result

