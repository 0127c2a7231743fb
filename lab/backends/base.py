"""The one interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from lab.host import Host
from lab.model import Lab
from lab.state import State
from lab.ui import Reporter


@dataclass(frozen=True)
class PodSpec:
    """A receiver pod: its name and whether it carries the lab's attachment."""

    name: str
    attachment: bool


@dataclass(frozen=True)
class Pod:
    name: str
    host: Host
    attachment: bool


@dataclass(frozen=True)
class HostStatus:
    name: str
    state: str  # "running", "missing", "not created", or a provider's word
    address: str
    detail: str = ""


@dataclass(frozen=True)
class LabStatus:
    lab: str
    backend: str
    state: str  # "up", "down", "partial"
    hosts: tuple[HostStatus, ...]
    pods: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "backend": self.backend, "state": self.state,
                "hosts": [h.__dict__ for h in self.hosts], "pods": list(self.pods),
                **self.extra}


class Backend(ABC):
    """Realizes a lab. One module per backend; chosen by name in `lab.backends.make`."""

    name: str

    def __init__(self, lab: Lab, state: State, reporter: Reporter) -> None:
        self.lab = lab
        self.state = state
        self.reporter = reporter

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

    @abstractmethod
    def lab_nic(self, host: str) -> str:
        """The name of `host`'s NIC on the lab network."""

    @abstractmethod
    def interactive_argv(self, host: str, argv: list[str]) -> list[str]:
        """The command line that runs `argv` on `host` attached to this terminal."""

    @abstractmethod
    def create_pods(self, specs: list[PodSpec]) -> list[Pod]:
        """Create receiver pods on the node; what was created is recorded before it is."""

    @abstractmethod
    def delete_pods(self, pods: list[Pod]) -> None: ...
