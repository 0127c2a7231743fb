"""The one interface every backend implements."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.check import Check
from lab.errors import BackendError, UsageError
from lab.host import Host, PodSpec
from lab.model.lab import Lab
from lab.state import State
from lab.ui import Reporter

if TYPE_CHECKING:
    from lab.bundle.manifest import Bundle


@dataclass(frozen=True)
class Pod:
    name: str
    host: Host
    attachment: bool


class HostState(enum.StrEnum):
    """What a backend can say about one host of the lab (shown by `lab status`)."""

    RUNNING = "running"
    NOT_CREATED = "not created"  # the lab never made it (or destroy removed it)
    MISSING = "missing"  # recorded as made, but gone (deleted behind the lab's back)
    STOPPED = "stopped"  # a VM that exists and is not running (halted, saved, paused)
    UNKNOWN = "unknown"  # the backend could not tell


class LabState(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    PARTIAL = "partial"


@dataclass(frozen=True)
class HostStatus:
    name: str
    state: HostState
    address: str
    detail: str = ""


@dataclass(frozen=True)
class LabStatus:
    lab: str
    backend: str
    state: LabState
    hosts: tuple[HostStatus, ...]
    pods: tuple[str, ...]
    provider: str | None = None  # a VM backend's provider
    problems: tuple[str, ...] = ()  # what went wrong (a failed provisioning step), for people
    selfcheck: tuple[Check, ...] = ()  # the last `lab up`'s self-check, where there is one

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "lab": self.lab, "backend": self.backend, "state": str(self.state),
            "hosts": [{"name": h.name, "state": str(h.state), "address": h.address,
                       "detail": h.detail} for h in self.hosts],
            "pods": list(self.pods), "problems": list(self.problems),
            "selfcheck": [c.as_dict() for c in self.selfcheck]}
        if self.provider is not None:
            data["provider"] = self.provider
        return data


def overall_state(hosts: tuple[HostStatus, ...], finished_up: bool) -> LabState:
    """up: every host running and `up` finished; down: no host made; partial otherwise."""
    states = {h.state for h in hosts}
    if states == {HostState.RUNNING} and finished_up:
        return LabState.UP
    if states <= {HostState.NOT_CREATED}:
        return LabState.DOWN
    return LabState.PARTIAL


class Backend(ABC):
    """Realizes a lab. One package per backend, listed in `lab.registry`, made by
    `lab.backends.make`; `options` holds only the options its registry entry declares."""

    name: str

    def __init__(self, lab: Lab, state: State, reporter: Reporter, *,
                 options: Mapping[str, str] | None = None) -> None:
        self.lab = lab
        self.state = state
        self.reporter = reporter
        self.options = dict(options or {})

    @abstractmethod
    def preflight(self) -> None:
        """Raise BackendError naming what is missing and how to fix it, before changing anything."""

    @abstractmethod
    def up(self) -> None: ...

    @abstractmethod
    def destroy(self) -> None:
        """Remove exactly what the lab created; idempotent; works after a crash."""

    @abstractmethod
    def status(self) -> LabStatus: ...

    @abstractmethod
    def host(self, name: str) -> Host:
        """A host of a lab that is up (BackendError if it is not)."""

    def kubernetes(self) -> str | None:
        """Why there is no Kubernetes on the node, or None when there is one."""
        return f"no Kubernetes with the {self.name} backend"

    @abstractmethod
    def existing_hosts(self) -> Mapping[str, Host]:
        """The hosts that exist now, up or not (a half-made lab too): for `lab logs`."""

    def pod_hosts(self) -> Mapping[str, Host]:
        """The receiver pods that exist now (during a run), by receiver name: for `lab igmp`
        and `lab capture`. A backend with no pods has none."""
        return {}

    def wait_for_switch(self, group: str, hosts: set[str], timeout: float) -> None:
        """Return once a snooping lab switch forwards `group` to the ports of `hosts` (it
        has learned their joins); at once where the switch floods or cannot be asked."""
        return None

    def wait_for_leave(self, group: str, hosts: set[str], timeout: float) -> None:
        """Return once a snooping lab switch has heard the last member behind each of
        `hosts`' ports leave `group` (its last-member queries then run); at once where
        the switch floods or cannot be asked."""
        return None

    def port_tx(self) -> dict[str, tuple[int, int]]:
        """(packets, bytes) the lab switch has sent so far out of each host's port, by
        host: what a scenario's `expect_port` is judged on. A backend whose switch has no
        readable ports says so."""
        raise BackendError(f"the {self.name} backend cannot read the lab switch's ports "
                           "(expect_port)")

    @abstractmethod
    def lab_nic(self, host: str) -> str:
        """The name of `host`'s NIC on the lab network."""

    @abstractmethod
    def interactive_argv(self, host: str, argv: list[str]) -> list[str]:
        """The command line that runs `argv` on `host` attached to this terminal; with no
        argv, a shell chosen there (a VM's login shell, not this machine's $SHELL)."""

    @abstractmethod
    def create_pods(self, specs: list[PodSpec]) -> list[Pod]:
        """Create receiver pods on the node; what was created is recorded before it is."""

    @abstractmethod
    def delete_pods(self, pods: list[Pod]) -> None: ...

    # -- lab.lock: what the hosts are made of, and `lab up --locked` -------------------
    # Packages a lock lists per host: None every installed one (VMs the lab made); a
    # backend on a machine it does not own lists only those it uses.
    lock_packages: tuple[str, ...] | None = None
    writes_lock = False  # every successful `lab up` writes lab.lock (real VMs)

    def box_identity(self) -> dict[str, str] | None:
        """The box the hosts boot from (name, version, provider, sha256), when there is
        one and it is on this machine."""
        return None

    def box_source(self) -> tuple[dict[str, str], Path] | None:
        """The box (name, version, provider) and the folder it is unpacked in on this
        machine, for a bundle; None when there is none here."""
        return None

    def bundle_sources(self) -> tuple[Mapping[str, Any], list[str], str] | None:
        """A lab that is up, to gather a bundle from: its hosts (which can hand files
        back), the names of its nodes, the steps' state folder on them. None: nothing
        this backend made downloaded anything."""
        return None

    def pin(self, packages: Mapping[str, Mapping[str, str]], downloads: Mapping[str, str],
            box: Mapping[str, str] | None) -> None:
        """`lab up --locked`: install these versions (host -> package -> version), refuse
        downloads whose sha256 changed, and boot only this box. A backend that installs
        nothing has nothing to pin."""
        return None

    def use_bundle(self, bundle: Bundle) -> None:
        """`lab up --bundle`: provision from this verified offline bundle, not the network."""
        raise UsageError(f"the {self.name} backend downloads nothing: it has no use for a "
                         "bundle")

    # -- snapshots: a good lab kept, to return to in seconds (workshops) ------------------
    @abstractmethod
    def snapshot_save(self, name: str) -> None:
        """Keep every host as it is now under `name` (replacing one of that name)."""

    @abstractmethod
    def reset(self, name: str) -> None:
        """Return every host to snapshot `name`; the lab is up afterwards."""

    @abstractmethod
    def snapshot_delete(self, name: str) -> None: ...

    @abstractmethod
    def snapshots(self) -> dict[str, float]:
        """The lab's snapshots: name -> when it was taken (seconds since the epoch)."""

    def _known_snapshot(self, name: str) -> None:
        if name not in self.snapshots():
            known = ", ".join(sorted(self.snapshots())) or "none yet (`lab snapshot save`)"
            raise BackendError(f"lab {self.lab.name} has no snapshot {name!r}; it has: "
                               f"{known}")
