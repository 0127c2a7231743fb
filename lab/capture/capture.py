"""tcpdump on a host of the lab, through the `Host` interface: started before receivers
join (so their IGMP reports are seen), stopped when the case ends, its file fetched into
the run folder and read by `pcap`.

The file is written on the host and fetched whole (base64 over the host's own command
channel), so the same code captures in a namespace, on a VM over SSH or in a pod.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from dataclasses import dataclass
from pathlib import Path

from lab import names
from lab.errors import BackendError
from lab.host import Host, Process

READY_TIMEOUT_S = 10.0
# Headers and iperf's sequence number are all the lab reads: 128 bytes a packet keeps a
# 24 s fan-out at 100 Mbit/s to a few tens of megabytes.
SNAPLEN = 128
FETCH_TIMEOUT_S = 120


@dataclass
class Capture:
    """A tcpdump running on `host`, writing to `remote_file` there."""

    point: str
    host: Host
    iface: str
    remote_file: str
    process: Process

    def stop(self) -> tuple[int, str]:
        """End tcpdump (it flushes its file on SIGTERM); its exit status and what it said."""
        result = self.process.stop()
        return result.exit_status, result.stderr.strip()


def tcpdump_argv(iface: str, path: str, *, count: int | None = None,
                 filter_words: tuple[str, ...] = ()) -> list[str]:
    # -p: no promiscuous mode, which would change what a macvlan master delivers (the
    # thing measured). -U: each packet written as it comes, so a stop loses none. -Z root:
    # Debian's tcpdump otherwise drops to its own user before opening the file.
    argv = ["tcpdump", "-i", iface, "-p", "-n", "-U", "-s", str(SNAPLEN), "-Z", "root",
            "-w", path]
    if count is not None:
        argv += ["-c", str(count)]
    return argv + list(filter_words)


def start(lab: str, point: str, host: Host, iface: str, *, seconds: float,
          count: int | None = None, filter_words: tuple[str, ...] = ()) -> Capture:
    """Start tcpdump and return once it listens (it says so on stderr), so that nothing the
    caller does next is missed."""
    have = host.run(["sh", "-c", "command -v tcpdump"], timeout=15, check=False)
    if not have.ok:
        raise BackendError(f"capture on {point}: no tcpdump on {host.name}: install the "
                           "tcpdump package there, or capture on a host of the lab (its lab "
                           "NIC sees what its pods send and receive); a Kubernetes receiver "
                           "pod's image has none")
    remote = names.capture_tmp_file(lab, point, os.getpid())
    process = host.start(tcpdump_argv(iface, remote, count=count, filter_words=filter_words),
                         timeout=seconds)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "listening on" not in process.error_output():
        if not process.running() or time.monotonic() > deadline:
            result = process.stop()
            said = (result.stderr or result.stdout).strip()[-300:]
            raise BackendError(f"capture on {point}: tcpdump on {host.name} ({iface}) did not "
                               f"start listening within {READY_TIMEOUT_S:g} s (exit status "
                               f"{result.exit_status}): {said}")
        time.sleep(0.02)
    return Capture(point, host, iface, remote, process)


def fetch(capture: Capture, local: Path) -> None:
    """Copy the capture file from its host to `local` and remove it there."""
    try:
        got = capture.host.run(["base64", "-w0", capture.remote_file],
                               timeout=FETCH_TIMEOUT_S, check=False)
        if not got.ok:
            raise BackendError(f"capture on {capture.point}: could not read "
                               f"{capture.remote_file} on {capture.host.name}: "
                               f"{got.stderr.strip()[-300:]}")
        try:
            data = base64.b64decode(got.stdout.strip(), validate=True)
        except binascii.Error as exc:
            raise BackendError(f"capture on {capture.point}: {capture.remote_file} came back "
                               f"garbled: {exc}") from None
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
    finally:
        capture.host.run(["rm", "-f", capture.remote_file], timeout=30, check=False)
