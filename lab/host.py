"""The small interface through which the scenario runner (and provisioning) talk to hosts.

A host is a machine of the lab, or a pod: a namespace on this machine, a VM over SSH, or a
Kubernetes pod through `kubectl exec`. Every command has a timeout and returns a Result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lab.command import Result


class Process(Protocol):
    """A bounded command running in the background on a host."""

    def running(self) -> bool: ...

    def output(self) -> str:
        """What it printed on stdout so far."""
        ...

    def error_output(self) -> str:
        """What it printed on stderr so far (iperf's complaints, for error messages)."""
        ...

    def terminate(self) -> None:
        """Ask it to end (SIGTERM) and return at once: the runner asks every receiver
        first and then collects them, so their grace periods overlap."""
        ...

    def stop(self) -> Result:
        """End it (if it still runs) and return its Result. Safe to call twice."""
        ...


class Host(Protocol):
    name: str

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result: ...

    def start(self, argv: Sequence[str], *, timeout: float) -> Process:
        """Start `argv` in the background; it ends by itself after `timeout` seconds."""
        ...


@dataclass(frozen=True)
class PodSpec:
    """A receiver pod the runner asks for: the receiver (group member) it is, whether it
    carries the lab's attachment, the case it belongs to (a case's pods are made and removed
    together), and the receiver command that will run in it, for how long. A Kubernetes pod
    is built from all of it (lab.kube.manifests); a netns pod needs the first two."""

    name: str
    attachment: bool
    case: str
    receiver_argv: tuple[str, ...]
    listen_s: int
    node: str = ""  # the node it runs on; "" the lab's first node
