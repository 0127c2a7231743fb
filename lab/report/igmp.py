"""`lab igmp`: the groups each host and pod of a lab has joined, per interface, read from
the kernel (/proc/net/igmp) through the `Host` interface."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lab.errors import LabError
from lab.host import Host
from lab.run.iperf import parse_igmp


@dataclass(frozen=True)
class Joined:
    where: str  # host or pod name
    kind: str  # "host" or "pod"
    iface: str
    version: str  # the IGMP version the interface speaks (V1, V2, V3), as the kernel says
    groups: tuple[str, ...]
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"name": self.where, "kind": self.kind, "iface": self.iface,
                "igmp_version": self.version, "groups": list(self.groups),
                **({"error": self.error} if self.error else {})}


def _versions(text: str) -> dict[str, str]:
    """The querier column of each device line ("2\teth1      :     2      V3")."""
    found: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if line and not line[0].isspace() and ":" in line:
            name = line.split(":", 1)[0].split()[-1]
            found[name] = (line.split(":", 1)[1].split() or ["", "?"])[-1]
    return found


def joined(hosts: Mapping[str, Host], pods: Mapping[str, Host]) -> list[Joined]:
    rows: list[Joined] = []
    for kind, group in (("host", hosts), ("pod", pods)):
        for name, host in group.items():
            try:
                text = host.run(["cat", "/proc/net/igmp"], timeout=15).stdout
            except LabError as exc:
                rows.append(Joined(name, kind, "-", "-", (), str(exc).splitlines()[0]))
                continue
            versions = _versions(text)
            for iface, groups in sorted(parse_igmp(text).items()):
                rows.append(Joined(name, kind, iface, versions.get(iface, "?"),
                                   tuple(str(g) for g in sorted(groups))))
    return rows
