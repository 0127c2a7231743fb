"""What the netns backend records in the state file, before it makes each thing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lab.state import known_fields


@dataclass
class PodNetwork:
    ifname: str
    config: dict[str, Any]  # the CNI config ADD was given: DEL needs the very same


@dataclass
class PodRecord:
    netns: str
    networks: list[PodNetwork] = field(default_factory=list)
    node: str = ""  # the node (host) it runs on; "" in records of one-node labs before it


@dataclass
class NetnsRecord:
    backend: str = "netns"
    status: str = ""  # "" (nothing made), "creating" (an `up` began), "up"
    created: float | None = None
    ipam_dir: str | None = None  # host-local's leases of this lab
    namespaces: dict[str, str] = field(default_factory=dict)  # namespace -> host/switch
    pods: dict[str, PodRecord] = field(default_factory=dict)
    # name -> when taken. A netns lab is made again from the lab file in a second, so a
    # snapshot keeps nothing but its name: `lab reset` is destroy and up.
    snapshots: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetnsRecord:
        d = known_fields(cls, data)
        d["pods"] = {name: PodRecord(**{**known_fields(PodRecord, p), "networks": [
            PodNetwork(**known_fields(PodNetwork, n)) for n in p.get("networks", [])]})
            for name, p in d.get("pods", {}).items()}
        return cls(**d)
