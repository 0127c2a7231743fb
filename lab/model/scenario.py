"""Scenario files: what to send, who receives, what is expected. Validated against the lab."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import ConfigError, Problem, UsageError
from lab.model import fields as f
from lab.model.fields import Problems, Section
from lab.model.lab import Lab
from lab.model.labfile import shown_path


@dataclass(frozen=True)
class Expectation:
    """Either every receiver gets at least `min_received_pct` of what was sent, or nothing."""

    receive: bool
    min_received_pct: float = 100.0

    def describe(self) -> str:
        if not self.receive:
            return "nothing received"
        return "all received" if self.min_received_pct >= 100 else \
            f">= {self.min_received_pct:g} % received"

    def as_dict(self) -> dict[str, Any]:
        return {"receive": self.receive, "min_received_pct": self.min_received_pct}


@dataclass(frozen=True)
class ReceiverSpec:
    """A receiver group: one on a host's NIC, or `count` pods with or without the attachment."""

    name: str
    placement: str  # "host" or "pod"
    host: str  # the host whose NIC receives, or the node the pods run on
    iface: str | None  # None on a host: the host's lab NIC, whatever the box names it
    count: int
    attachment: bool
    expect: Expectation
    # Pods: the node of each member, in members() order (`node: k8s-2`, or `spread` over
    # the nodes in turn). Empty for a host receiver.
    nodes: tuple[str, ...] = ()
    # Seconds into the send when the group's members leave: a host's iperf ends (its
    # socket leaves the group), pods are deleted. None: they stay to the end.
    leave_after_s: float | None = None

    def members(self) -> list[str]:
        """The names of this group's receivers: the group's name, or `name-1` ... `name-N`."""
        return [self.name] if self.count == 1 else \
            [f"{self.name}-{i + 1}" for i in range(self.count)]

    def node_of(self, member: str) -> str:
        """Where a member runs: its node (pods), or the host (a host receiver)."""
        return self.nodes[self.members().index(member)] if self.nodes else self.host

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name, "placement": self.placement, "host": self.host,
            "iface": self.iface, "count": self.count, "attachment": self.attachment,
            "expect": self.expect.as_dict()}
        if len(set(self.nodes)) > 1:
            data["nodes"] = list(self.nodes)
        if self.leave_after_s is not None:
            data["leave_after_s"] = self.leave_after_s
        return data


@dataclass(frozen=True)
class PortExpectation:
    """How much of the group's traffic a host's port on the lab switch carries during the
    send (`expect_port:`): `none` (at most PORT_NONE_SHARE of the datagrams sent: queries
    and ARP, never the stream) or `all` (at least every datagram sent)."""

    host: str
    traffic: str  # "none" or "all"
    # Counted from this many seconds into the send to its end (after a leave, say); None:
    # the whole send.
    from_s: float | None = None

    def describe(self) -> str:
        return "carries none of the group" if self.traffic == "none" else \
            "carries all of the group"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    group: ipaddress.IPv4Address
    port: int
    rates: tuple[int, ...]  # bit/s; several rates make one case (and one verdict) per rate
    duration: int
    ttl: int
    receive_buffer: str | None  # iperf -w on receivers, e.g. "4M"
    sender_host: str
    sender_bind: ipaddress.IPv4Address
    receivers: tuple[ReceiverSpec, ...]
    source: Path
    # Where tcpdump runs during each case: hosts of the lab (on their lab NIC) and receivers
    # of this scenario (on the interface they receive on).
    capture: tuple[str, ...] = ()
    expect_port: tuple[PortExpectation, ...] = ()

    def cases(self) -> list[Case]:
        return [Case(self, r, f"{self.name}@{format_rate(r)}" if len(self.rates) > 1
                     else self.name) for r in self.rates]


@dataclass(frozen=True)
class Case:
    """One execution unit: a scenario at one rate."""

    scenario: Scenario
    rate: int
    name: str

    def as_dict(self) -> dict[str, Any]:
        s = self.scenario
        return {"name": self.name, "scenario": s.name, "description": s.description,
                "file": str(s.source), "group": str(s.group), "port": s.port,
                "rate_bps": self.rate, "duration_s": s.duration, "ttl": s.ttl,
                "receive_buffer": s.receive_buffer,
                "sender": {"host": s.sender_host, "bind": str(s.sender_bind)},
                "receivers": [r.as_dict() for r in s.receivers],
                "capture": list(s.capture),
                **({"expect_port": [{"host": p.host, "traffic": p.traffic,
                                     **({"from_s": p.from_s} if p.from_s is not None else {})}
                                    for p in s.expect_port]} if s.expect_port else {})}


def format_rate(bps: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bps >= size and bps % (size // 1000 or 1) == 0:
            return f"{bps / size:g}{unit}"
    return str(bps)


_BUFFER = re.compile(r"\d{1,7}[KM]?")


def _buffer(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else f.string(value)
    if not _BUFFER.fullmatch(text):
        raise ValueError(f"{text!r} is not a buffer size (examples: 4M, 512K, 262144)")
    return text


def load_scenario(path: Path, lab: Lab) -> Scenario:
    path = path.resolve()
    shown = shown_path(path)
    raw = f.load_yaml_mapping(path, shown)
    problems = Problems(shown)
    top = Section(problems, "", raw)
    # Without `name:` the file's name is the scenario's, when it is a valid name.
    name = top.get("name", f.name, path.stem) if f.NAME_RE.fullmatch(path.stem) \
        else top.get("name", f.name)
    description = top.get("description", f.text, "")
    group = top.get("group", f.multicast_group)
    port = top.get("port", f.integer(1024, 65535), 5001)
    rates: list[int] = []
    if isinstance(top.data.get("rate"), list):
        for key, item in top.items("rate"):
            try:
                rates.append(f.rate(item))
            except ValueError as exc:
                problems.add(key, str(exc))
        if len(set(rates)) != len(rates):
            problems.add("rate", "lists the same rate twice")
    else:
        one = top.get("rate", f.rate, 1_050_000)  # iperf2's UDP default, as in the seed
        if one:
            rates.append(one)
    duration = top.get("duration", f.integer(1, 3600), 5)
    ttl = top.get("ttl", f.integer(1, 255), 5)
    buffer = top.get("receive_buffer", _buffer, None)

    sender = top.section("sender")
    sender_host = sender.get("host", f.name, lab.sources[0].name)
    bind = sender.get("bind", f.ipv4, None)
    sender.done()
    if sender_host is not None:
        if sender_host not in {h.name for h in lab.hosts}:
            problems.add(sender.key("host"), f"no host {sender_host!r} in {shown_path(lab.source)}"
                         f" (hosts: {', '.join(h.name for h in lab.hosts)})")
        elif bind is None:
            bind = lab.host(sender_host).address
        elif bind != lab.host(sender_host).address:
            problems.add(sender.key("bind"), f"{bind} is not {sender_host}'s lab address "
                         f"({lab.host(sender_host).address})")

    default_expect = _expectation(top.section("expect", required=False), problems, None)
    receivers = _receivers(top, problems, lab, default_expect, sender_host,
                           top.has("expect"), duration)
    capture = _capture_points(top, problems, lab, receivers)
    ports = _port_expectations(top, problems, lab, duration)
    top.done()
    problems.raise_if_any()
    assert name is not None and group is not None and port and duration and ttl
    assert sender_host is not None and bind is not None
    return Scenario(name, description or "", group, port, tuple(rates), duration, ttl, buffer,
                    sender_host, bind, tuple(receivers), path, tuple(capture), tuple(ports))


def _port_expectations(top: Section, problems: Problems, lab: Lab, duration: int | None
                       ) -> list[PortExpectation]:
    """`expect_port: [{host: k8s-2, traffic: none|all}, ...]`: each a host of the lab,
    once, on a lab with a switch (two hosts without `switch:` are wired back to back)."""
    found: list[PortExpectation] = []
    hosts = [h.name for h in lab.hosts]
    for key, item in top.items("expect_port", required=False):
        s = Section(problems, key, item)
        host = s.get("host", f.name)
        traffic = s.get("traffic", f.choice("none", "all"))
        from_s = s.get("from_s", f.number(0, 3600), None)
        s.done()
        if from_s is not None and traffic == "all":
            problems.add(s.key("from_s"), "counts part of the send, which cannot hold every "
                         "datagram sent: use it with traffic: none")
        elif from_s is not None and duration is not None and from_s >= duration:
            problems.add(s.key("from_s"), f"{from_s:g} s is not within the send "
                         f"(duration: {duration} s)")
        if host is not None and host not in hosts:
            problems.add(s.key("host"), f"no host {host!r} (hosts: {', '.join(hosts)})")
        elif host in {p.host for p in found}:
            problems.add(s.key("host"), f"{host!r} is listed twice")
        elif host and traffic:
            found.append(PortExpectation(host, traffic, from_s))
    if found and not lab.has_switch:
        problems.add("expect_port", f"needs a lab switch with a port per host: declare "
                     f"`switch:` in {shown_path(lab.source)} (its two hosts are otherwise "
                     "wired back to back)")
    return found


def _capture_points(top: Section, problems: Problems, lab: Lab,
                    receivers: list[ReceiverSpec]) -> list[str]:
    """`capture: [HOST or RECEIVER, ...]`: each a host of the lab or a receiver (a member
    name, such as fanout-3) of this scenario, each once."""
    hosts = [h.name for h in lab.hosts]
    members = [m for r in receivers for m in r.members()]
    points: list[str] = []
    for key, item in top.items("capture", required=False):
        try:
            point = f.name(item)
        except ValueError as exc:
            problems.add(key, str(exc))
            continue
        if point in points:
            problems.add(key, f"{point!r} is listed twice")
        elif point not in hosts and point not in members:
            problems.add(key, f"no host or receiver {point!r} (hosts: {', '.join(hosts)}; "
                         f"receivers: {', '.join(members) or 'none'})")
        else:
            points.append(point)
    return points


def _expectation(s: Section, problems: Problems, fallback: Expectation | None
                 ) -> Expectation | None:
    if not s.data:
        s.done()
        return fallback
    receive = s.get("receive", f.boolean, True)
    pct = s.get("min_received_pct", f.number(0, 100), 100.0)
    s.done()
    if receive is False and s.has("min_received_pct"):
        problems.add(s.key("min_received_pct"), "makes no sense with receive: false")
    if receive is None or pct is None:
        return None
    return Expectation(receive, pct)


SPREAD = "spread"  # `node: spread`: a pod group's members over the nodes in turn


def _receivers(top: Section, problems: Problems, lab: Lab, default: Expectation | None,
               sender_host: str | None, default_given: bool, duration: int | None
               ) -> list[ReceiverSpec]:
    result: list[ReceiverSpec] = []
    names: set[str] = set()
    keys: dict[str, str] = {}  # receiver name -> its key in the file
    for key, item in top.items("receivers"):
        s = Section(problems, key, item)
        name = s.get("name", f.name)
        placement = s.get("placement", f.choice("host", "pod"), "host")
        node_word = s.get("node", f.name, None)
        given_host = s.get("host", f.name, None)
        if placement == "pod" and node_word is not None and s.has("host"):
            problems.add(s.key("node"), "give the pods' node once: node: (or host:)")
        if placement != "pod":
            node_word = None  # refused below: node: is for pods
        host = node_word if node_word not in (None, SPREAD) else \
            (given_host or lab.node.name)
        count = s.get("count", f.integer(1, 1024), 1)
        attachment = s.get("attachment", f.boolean, True)
        iface_default = None if placement == "host" else \
            (lab.attachment.ifname if attachment else "eth0")
        iface = s.get("iface", f.ifname, iface_default)
        expect = _expectation(s.section("expect", required=False), problems, default)
        leave = s.get("leave_after_s", f.number(0.1, 3600), None)
        if leave is not None and duration is not None and leave >= duration:
            problems.add(s.key("leave_after_s"), f"{leave:g} s is not within the send "
                         f"(duration: {duration} s)")
        if placement == "host":
            for only_pods in ("count", "attachment", "node"):
                if s.has(only_pods):
                    problems.add(s.key(only_pods), "applies to placement: pod only")
        s.done()
        if name is not None:
            if name in names:
                problems.add(s.key("name"), f"duplicate receiver name {name!r}")
            names.add(name)
            keys.setdefault(name, key)
        if host is not None:
            if host not in {h.name for h in lab.hosts}:
                problems.add(s.key("node" if node_word else "host"),
                             f"no host {host!r} in {shown_path(lab.source)}"
                             + (f" (nodes: {', '.join(n.name for n in lab.nodes)})"
                                if placement == "pod" else ""))
            elif placement == "pod" and host not in {n.name for n in lab.nodes}:
                problems.add(s.key("node" if node_word else "host"),
                             f"pods run on a node ({', '.join(n.name for n in lab.nodes)}), "
                             f"not on {host!r}")
            elif placement == "host" and host == sender_host:
                problems.add(s.key("host"), f"{host!r} is the sender; a receiver on the "
                             "sending host measures loopback, not the lab network")
        if expect is None and not default_given:
            if not s.has("expect"):
                problems.add(s.key("expect"), "is required (here or at the top of the file)")
            elif not s.data.get("expect"):
                problems.add(s.key("expect"), "is empty: give receive: true or false")
        if name and placement and host and count and attachment is not None and expect:
            nodes: tuple[str, ...] = ()
            if placement == "pod":
                names_ = [n.name for n in lab.nodes]
                nodes = tuple(names_[i % len(names_)] for i in range(count)) \
                    if node_word == SPREAD else (host,) * count
            result.append(ReceiverSpec(name, placement, host, iface, count,
                                       attachment and placement == "pod", expect, nodes,
                                       leave))
    _pods_fit(result, problems, lab, keys)
    _members_unique(result, problems, keys)
    return result


def _members_unique(receivers: list[ReceiverSpec], problems: Problems,
                    keys: dict[str, str]) -> None:
    """Every member's name once (results, pods and files are named by it): `on-k8s` with
    count 2 makes on-k8s-1 and on-k8s-2, which a receiver named on-k8s-2 would clash with."""
    owner: dict[str, str] = {}
    for r in receivers:
        for member in r.members():
            if member in owner and owner[member] != r.name:
                problems.add(keys[r.name] + ".name",
                             f"its member {member!r} clashes with a member of receiver "
                             f"{owner[member]!r} (a group of N is named NAME-1 ... NAME-N)")
            owner.setdefault(member, r.name)


def _pods_fit(receivers: list[ReceiverSpec], problems: Problems, lab: Lab,
              keys: dict[str, str]) -> None:
    """No node gets more pods than it has addresses for (Lab.pod_capacity): its share of
    the attachment's range for attached pods, its pod network for all."""
    attached: dict[str, int] = {}
    every: dict[str, int] = {}
    known = {n.name for n in lab.nodes}
    for r in receivers:
        for node in r.nodes:
            if node not in known:
                continue  # refused already, under the receiver's node
            every[node] = every.get(node, 0) + 1
            if r.attachment:
                attached[node] = attached.get(node, 0) + 1
            room_attached, room = lab.pod_capacity(node)
            if r.attachment and attached[node] == room_attached + 1:
                start, end = lab.node_range(node)
                problems.add(keys[r.name] + ".count",
                             f"more attached pods on {node} than its share of "
                             f"attachment.range holds ({room_attached}: {start}-{end})")
            if every[node] == room + 1:
                problems.add(keys[r.name] + ".count",
                             f"more pods on {node} than its pod network "
                             f"{lab.node_pod_subnet(node)} holds ({room})")


def resolve_scenarios(args: list[str], lab: Lab) -> list[Scenario]:
    """Scenario arguments are paths, or names of files in the project's `scenarios/`."""
    folder = lab.project_dir / "scenarios"
    if not args:
        paths = sorted(folder.glob("*.yaml"))
        if not paths:
            raise UsageError(f"no scenario files in {shown_path(folder)}")
    else:
        paths = []
        for arg in args:
            candidate = Path(arg)
            if candidate.suffix in (".yaml", ".yml") or "/" in arg:
                paths.append(candidate)
            else:
                paths.append(folder / f"{arg}.yaml")
    problems: list[Problem] = []
    scenarios: list[Scenario] = []
    for path in paths:
        try:
            scenarios.append(load_scenario(path, lab))
        except ConfigError as exc:
            problems.extend(exc.problems)
    names = [s.name for s in scenarios]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem("scenarios", "name", f"two scenarios are named {dup!r}"))
    if problems:
        raise ConfigError(problems)
    return scenarios
