"""The Vagrant CLI, driven with a timeout on every call and its failures raised with
Vagrant's own message. Parsers are pure functions, tested on captured output.

python-vagrant was the first choice and is not used (nor a dependency): its 1.0.0 runs
every command through `subprocess.check_call`/`check_output` with no timeout (a hung
`vagrant` would hang `lab`), sends Vagrant's stderr to /dev/null by default (a failure
becomes a bare CalledProcessError without Vagrant's message), and its parsers are private
methods. So this adapter calls the CLI itself with `--machine-readable` and a timeout, and
parses what comes back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab import command
from lab.errors import BackendError
from lab.remote.ssh import SshTarget

STATUS_TIMEOUT_S = 120.0
SSH_CONFIG_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Line:
    target: str
    kind: str
    data: tuple[str, ...]


def _unescape(text: str) -> str:
    return text.replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")


def parse_machine_readable(text: str) -> list[Line]:
    """`timestamp,target,type,data...` lines; commas inside data are escaped by Vagrant."""
    lines = []
    for raw in text.splitlines():
        parts = raw.split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        lines.append(Line(parts[1], parts[2], tuple(_unescape(p) for p in parts[3:])))
    return lines


def machine_readable_error(lines: list[Line]) -> str | None:
    for line in lines:
        if line.kind == "error-exit":
            return line.data[-1].strip() if line.data else "vagrant failed"
    return None


def parse_status(text: str) -> dict[str, str]:
    """Machine name -> state (`running`, `not_created`, `shutoff`, ...)."""
    lines = parse_machine_readable(text)
    error = machine_readable_error(lines)
    if error:
        raise BackendError(f"vagrant status failed: {error}")
    return {ln.target: ln.data[0] for ln in lines if ln.kind == "state" and ln.target and ln.data}


def parse_ssh_config(text: str) -> dict[str, SshTarget]:
    """`vagrant ssh-config` output: one `Host` block per machine."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        parts = raw.strip().split(None, 1)
        if len(parts) != 2:
            continue
        key, value = parts[0].lower(), parts[1].strip().strip('"')
        if key == "host":
            current = blocks.setdefault(value, {})
        elif current is not None:
            current.setdefault(key, value)  # the first IdentityFile is the machine's own key
    targets = {}
    for name, b in blocks.items():
        try:
            targets[name] = SshTarget(name, b["hostname"], int(b.get("port", "22")),
                                      b.get("user", "vagrant"), b["identityfile"])
        except (KeyError, ValueError) as exc:
            raise BackendError(f"vagrant ssh-config for {name} lacks {exc}") from None
    return targets


class VagrantCLI:
    """One project directory's Vagrant. Status and ssh-config are one call each, cached."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = {**os.environ, **(env or {})}
        self._ssh: dict[str, SshTarget] = {}

    def _run(self, args: list[str], timeout: float, what: str,
             on_line: Callable[[str], None] | None = None) -> command.Result:
        return command.run(["vagrant", *args], timeout=timeout, check=False, env=self.env,
                           what=what, cwd=self.root, on_line=on_line)

    def _checked(self, args: list[str], timeout: float, what: str,
                 on_line: Callable[[str], None] | None = None) -> command.Result:
        result = self._run(args, timeout, what, on_line)
        if not result.ok:
            detail = machine_readable_error(parse_machine_readable(result.stdout)) or \
                (result.stderr.strip() or result.stdout.strip())[-1500:]
            status = "timed out" if result.timed_out else f"exit status {result.exit_status}"
            raise BackendError(f"`{result.shown}` failed ({status}) in {self.root}:\n{detail}")
        return result

    def status(self) -> dict[str, str]:
        return parse_status(self._checked(["status", "--machine-readable"], STATUS_TIMEOUT_S,
                                          "vagrant status").stdout)

    def ssh_config(self, host: str) -> SshTarget:
        if host not in self._ssh:
            out = self._checked(["ssh-config", host], SSH_CONFIG_TIMEOUT_S,
                                f"vagrant ssh-config {host}").stdout
            self._ssh.update(parse_ssh_config(out))
            if host not in self._ssh:
                raise BackendError(f"vagrant ssh-config printed no block for {host}")
        return self._ssh[host]

    def up(self, provider: str, timeout: float, parallel: bool,
           on_line: Callable[[str], None] | None = None) -> command.Result:
        """`on_line` gets each line Vagrant prints, as it prints it (minutes of boot)."""
        args = ["up", f"--provider={provider}", "--no-provision"]
        args.append("--parallel" if parallel else "--no-parallel")
        return self._checked(args, timeout, "vagrant up", on_line)

    def destroy(self, timeout: float) -> command.Result:
        self._ssh.clear()
        return self._checked(["destroy", "--force"], timeout, "vagrant destroy")

    # Snapshots of every machine of the project at once (no machine name: all of them).
    def snapshot_save(self, name: str, timeout: float) -> command.Result:
        return self._checked(["snapshot", "save", "--force", name], timeout,
                             f"vagrant snapshot save {name}")

    def snapshot_restore(self, name: str, timeout: float) -> command.Result:
        self._ssh.clear()
        return self._checked(["snapshot", "restore", "--no-provision", name], timeout,
                             f"vagrant snapshot restore {name}")

    def snapshot_delete(self, name: str, timeout: float) -> command.Result:
        return self._checked(["snapshot", "delete", name], timeout,
                             f"vagrant snapshot delete {name}")

    def box_add(self, catalog: Path, timeout: float) -> command.Result:
        """Add a box from a local catalog (metadata JSON naming the file and its sha256):
        Vagrant checks the checksum and records the version, with no network."""
        return self._checked(["box", "add", str(catalog)], timeout, "vagrant box add")
