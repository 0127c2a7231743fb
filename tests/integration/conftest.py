from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.remote.ssh import SshHost, SshTarget

SSHD = "/usr/sbin/sshd"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=15)


@contextlib.contextmanager
def sshd_in(ns: str, tmp_path: Path, *, make_ns: bool) -> Iterator[SshHost]:
    """A real sshd in namespace `ns` (made here when `make_ns`), reached over a veth pair
    made here (10.254.254.0/30: traffic stays on that pair; eth0 or `mgmt0` inside).
    Everything it made is removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    outside, inside = f"tsh{tag}", "eth0" if make_ns else "mgmt0"
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "host_key")], check=True)
    shutil.copy(f"{key}.pub", tmp_path / "authorized_keys")
    (tmp_path / "sshd_config").write_text(
        f"Port 2222\nListenAddress 10.254.254.2\nHostKey {tmp_path}/host_key\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\nPidFile {tmp_path}/sshd.pid\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # Debian's sshd needs it (privilege separation)
    proc = None
    try:
        if make_ns:
            _ip("netns", "add", ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
        _ip("addr", "add", "10.254.254.1/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", ns, "addr", "add", "10.254.254.2/30", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f",
                                 str(tmp_path / "sshd_config")], stderr=subprocess.DEVNULL)
        host = SshHost("sshtest", SshTarget("sshtest", "10.254.254.2", 2222, "root", str(key)),
                       sudo=False)
        host.wait_ready(20)
        host.netns = ns  # type: ignore[attr-defined]
        yield host
        host.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=15)
        if make_ns:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                  timeout=15).stdout.split()
            for pid in pids:
                os.kill(int(pid), 9)
            time.sleep(0.1)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)


@pytest.fixture
def sshd_host(tmp_path: Path) -> Iterator[SshHost]:
    """A real sshd in a namespace of its own (see `sshd_in`)."""
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.skip("needs root and openssh-server")
    with sshd_in(f"tssh-{uuid.uuid4().hex[:6]}", tmp_path, make_ns=True) as host:
        yield host
