"""What tests observe of a running lab, so that a fault happens at a known point: a group
joined, datagrams arrived, a sender running, the lock held, `lab` paused at a named point.
Never a guessed sleep."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lab.names import OWNER_ENV
from lab.run.iperf import parse_igmp
from tests.support import Project

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not seen within {timeout:g} s: {what}")


def netns_exists(netns: str) -> bool:
    return os.path.exists(f"/var/run/netns/{netns}")


def _in_netns(netns: str, *argv: str) -> str:
    proc = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True,
                          text=True, timeout=10)
    return proc.stdout if proc.returncode == 0 else ""


def udp_datagrams_in(netns: str) -> int:
    """UDP datagrams delivered to sockets in `netns` so far (its /proc/net/snmp)."""
    if not netns_exists(netns):
        return 0
    lines = [ln.split() for ln in _in_netns(netns, "cat", "/proc/net/snmp").splitlines()
             if ln.startswith("Udp:")]
    if len(lines) < 2:
        return 0
    return int(dict(zip(lines[0], lines[1], strict=False))["InDatagrams"])


def joined(netns: str, iface: str, group: str) -> bool:
    if not netns_exists(netns):
        return False
    groups = parse_igmp(_in_netns(netns, "cat", "/proc/net/igmp"))
    return ipaddress.IPv4Address(group) in groups.get(iface, set())


def pids_in(netns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                         timeout=10).stdout
    return [int(p) for p in out.split()]


def iperf_pids(netns: str, role: str) -> list[int]:
    """iperf servers (`role="server"`) or clients in `netns`."""
    if not netns_exists(netns):
        return []
    found = []
    for pid in pids_in(netns):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0] == b"iperf" and (b"-s" if role == "server" else b"-c") in cmd:
            found.append(pid)
    return found


def lab_processes(lab_name: str) -> list[str]:
    """Processes that a lab started in its namespaces (they carry OWNER_ENV), alive now,
    wherever their namespace went."""
    found = []
    marker = f"{OWNER_ENV}={lab_name}-".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(e.startswith(marker) for e in env):
            found.append(f"{entry.name} {cmd.strip()}")
    return found


def lock_held(project: Project) -> str:
    """The lock holder's line when another process holds the lab's lock, else ''."""
    path = project.dir / ".lab" / project.name / "lock"
    if not path.exists():
        return ""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return path.read_text().strip() or "held"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return ""
    finally:
        os.close(fd)


class Paused:
    """A `lab` command started in the background that stops at a named checkpoint
    (lab/checkpoint.py) until released, so a test acts at exactly that point."""

    def __init__(self, project: Project, point: str, *args: str) -> None:
        self.flag = project.dir / f".pause-{point}"
        self.flag.unlink(missing_ok=True)
        env = {**os.environ, "LAB_PAUSE_AT": point, "LAB_PAUSE_FILE": str(self.flag)}
        self.proc = subprocess.Popen([sys.executable, "-m", "lab", "-q", "-f",
                                      str(project.lab_file), *args], cwd=project.dir,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.point = point

    def wait(self, timeout: float = 60.0) -> None:
        def there() -> bool:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"lab ended ({self.proc.returncode}) before reaching "
                                     f"{self.point}: {out}{err}")
            return self.flag.exists() and self.point in self.flag.read_text()
        wait_for(there, f"lab paused at {self.point}", timeout)

    def release(self) -> None:
        self.flag.unlink(missing_ok=True)

    def finish(self, timeout: float = 120.0) -> tuple[int, str, str]:
        self.release()
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err
