"""The typed, frozen lab model: what `lab.yaml` declares, validated once by `lab.model.labfile`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network


@dataclass(frozen=True)
class HostSpec:
    name: str
    role: str  # "source" or "node"
    address: IPv4
    memory_mb: int
    cpus: int


@dataclass(frozen=True)
class Attachment:
    """The NetworkAttachmentDefinition: macvlan on the node's lab NIC, host-local IPAM."""

    name: str
    ifname: str  # interface name inside the pod (the `name@ifname` annotation form)
    mode: str
    range_start: IPv4
    range_end: IPv4
    cni_version: str
    # Length of the macvlan port's broadcast/multicast queue. The kernel default (1000)
    # overflows at 100 Mbit/s fanned out to 16 pods (DESIGN.md section 5); None keeps it.
    bcqueuelen: int | None
    # The macvlan port's broadcast cutoff (`ip link ... bclim`, IFLA_MACVLAN_BC_CUTOFF,
    # kernel 6.4+): a group joined by more macvlans than this goes through the queue above,
    # handled by one kernel worker; up to it, each datagram is copied to its members at
    # once. -1: never queued. None: the kernel's (1). Applied by the netns backend.
    bclim: int | None = None

    def cni_config(self, *, master: str, subnet: Net4, start: IPv4 | None = None,
                   end: IPv4 | None = None, static: bool = False) -> dict[str, Any]:
        """The NAD's `spec.config`, as Multus receives it (no "name": Multus adds it);
        `start`-`end` a node's share of the range (see `Lab.node_range`). `static`: no
        address pool at all; each pod names its address in its network selection ("ips",
        which Multus hands to the plugins as runtimeConfig because of the capability)."""
        ipam: dict[str, Any] = {"type": "static"} if static else {
            "type": "host-local",
            "subnet": str(subnet),
            "rangeStart": str(start or self.range_start),
            "rangeEnd": str(end or self.range_end),
        }
        config: dict[str, Any] = {
            "cniVersion": self.cni_version,
            "type": "macvlan",
            **({"capabilities": {"ips": True}} if static else {}),
            "master": master,
            "mode": self.mode,
            "ipam": ipam,
        }
        if self.bcqueuelen is not None:
            # The macvlan plugin reads it since containernetworking/plugins v1.6.0 (older
            # ones ignore unknown keys); the netns backend also sets it with `ip link`.
            config["bcqueuelen"] = self.bcqueuelen
        return config


@dataclass(frozen=True)
class Box:
    name: str
    version: str
    # The CPU architectures this version is known to be built for (a box name and version
    # can hold several since Vagrant 2.4.0); doctor and up refuse a host outside them.
    architectures: tuple[str, ...] = ("amd64",)


@dataclass(frozen=True)
class DirectBoot:
    """Boot a libvirt VM from a kernel and initrd on the host (boxes without a boot loader)."""

    kernel: str
    initrd: str
    cmd_line: str


@dataclass(frozen=True)
class LibvirtSettings:
    driver: str  # "kvm", or "qemu" (software emulation) where KVM is not usable
    direct_boot: DirectBoot | None
    # The management network: "nat" gives the VMs the internet (the Kubernetes tier needs
    # it); "isolated" keeps every packet on this machine (CI, offline labs).
    management: str = "nat"


@dataclass(frozen=True)
class VagrantSettings:
    provider: str
    boxes: dict[str, Box] = field(hash=False)
    libvirt: LibvirtSettings = LibvirtSettings("kvm", None, "nat")


@dataclass(frozen=True)
class KubernetesSettings:
    """Pinned versions for the k8s VM; see the comments in lab.yaml for why these."""

    minor: str
    package_version: str
    pause_image: str  # the sandbox image kubeadm of that minor wants
    flannel: str
    multus: str
    iperf_image: str  # "node": built on the node from its own iperf; else an image to pull
    provision: bool = True  # install Kubernetes on the node during `lab up` (needs internet)


@dataclass(frozen=True)
class SwitchSettings:
    """The lab switch between the hosts (lab.yaml `switch:`): a Linux bridge on the netns
    backend. IGMP snooping forwards a group only to ports where a member joined; the
    bridge's snooping acts only while a querier exists, so the bridge can be one."""

    igmp_snooping: bool = False
    igmp_querier: bool = False
    igmp_version: int = 2  # of the querier's queries: 2 or 3

    @property
    def snoops(self) -> bool:
        """Whether a group reaches only its members' ports: snooping with a querier (a
        snooping bridge that hears no querier floods)."""
        return self.igmp_snooping and self.igmp_querier


@dataclass(frozen=True)
class ExternalSender:
    """The seed's topology on a cluster: the source is a machine of the user's on the
    nodes' layer-2 network, reached over SSH (lab.yaml `cluster.sender_ssh`), sending from
    the source host's address."""

    host: str
    port: int
    user: str
    identity_file: Path
    sudo: bool  # commands through `sudo -n` (joining groups needs no root; sending none)


@dataclass(frozen=True)
class ClusterSettings:
    """A Kubernetes cluster of the user's (lab.yaml `cluster:`, the cluster backend): how
    to reach it and where in it the lab may go. The lab's node hosts stand for cluster
    nodes (`nodes` maps a lab name to the node's name); the source host is a sender pod
    with the attachment, at the source's address, on `sender_node`."""

    kubeconfig: Path
    context: str  # always named: the current context is never used silently
    nodes: dict[str, str] = field(hash=False)  # lab node host -> the cluster's node name
    nic: str  # the nodes' NIC on the lab network: the NAD's macvlan master
    image: str  # the receiver and sender image: iperf 2 (the same on both ends), sh, cat
    # "own": a namespace made for the lab (random suffix), deleted by destroy; any other
    # value: that existing namespace, shared: destroy deletes what carries the lab's label.
    namespace: str = "own"
    sender_node: str = ""  # the lab node host the sender pod runs on; "" the first node
    # Host-placed receivers (the seed's host-baseline) run as hostNetwork pods, which the
    # restricted and baseline Pod Security profiles refuse: only when this is true, and
    # the lab's own namespace then enforces `privileged`.
    host_network: bool = False
    kubectl: str = ""  # the kubectl to run; "" the one on PATH, else the pinned wheel's
    sender_ssh: ExternalSender | None = None  # the source over SSH, not a sender pod

    def node_name(self, host: str) -> str:
        return self.nodes.get(host, host)


# The pod network of a node when the lab has several: a /24 each, as flannel hands out.
NODE_POD_PREFIX = 24


@dataclass(frozen=True)
class Lab:
    name: str
    backend: str
    subnet: Net4
    nic: str  # the lab NIC's name on netns hosts (VM backends find it by address)
    hosts: tuple[HostSpec, ...]
    attachment: Attachment
    pod_subnet: Net4
    vagrant: VagrantSettings
    kubernetes: KubernetesSettings
    source: Path  # the lab file; the project directory is its folder
    # Declared in lab.yaml (`switch:`), or None: two hosts are then wired back to back,
    # more share a switch that floods (no snooping).
    switch: SwitchSettings | None = None
    cluster: ClusterSettings | None = None  # lab.yaml `cluster:` (the cluster backend)

    @property
    def project_dir(self) -> Path:
        return self.source.parent

    @property
    def prefix(self) -> str:
        """Every name the lab creates on this machine starts with this."""
        return f"{self.name}-"

    def host(self, name: str) -> HostSpec:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @property
    def node(self) -> HostSpec:
        """The first node: the control plane, and where pods go unless placed."""
        return next(h for h in self.hosts if h.role == "node")

    @property
    def nodes(self) -> tuple[HostSpec, ...]:
        return tuple(h for h in self.hosts if h.role == "node")

    @property
    def has_switch(self) -> bool:
        """Whether the hosts meet on a switch (with ports to count traffic on)."""
        return self.switch is not None or len(self.hosts) > 2

    def _node_index(self, node: str) -> int:
        names = [n.name for n in self.nodes]
        if node not in names:
            raise KeyError(node)
        return names.index(node)

    def node_range(self, node: str) -> tuple[IPv4, IPv4]:
        """The node's share of attachment.range: the whole range with one node; with
        several, equal consecutive slices in the nodes' order (the last takes the rest),
        so that host-local on two nodes never hands out one address twice."""
        i, n = self._node_index(node), len(self.nodes)
        start, end = self.attachment.range_start, self.attachment.range_end
        if n == 1:
            return start, end
        size = (int(end) - int(start) + 1) // n
        first = start + i * size
        return first, (end if i == n - 1 else first + size - 1)

    def node_pod_subnet(self, node: str) -> Net4:
        """The node's pod network: pod_network.subnet with one node; with several, the
        node's /24 of it, as flannel gives each node its own."""
        i = self._node_index(node)
        if len(self.nodes) == 1:
            return self.pod_subnet
        return next(s for k, s in enumerate(self.pod_subnet.subnets(new_prefix=NODE_POD_PREFIX))
                    if k == i)

    def pod_capacity(self, node: str) -> tuple[int, int]:
        """(attached pods, pods) one node can hold: its share of the range, and the
        addresses of its pod network (less network, gateway and broadcast)."""
        start, end = self.node_range(node)
        return int(end) - int(start) + 1, self.node_pod_subnet(node).num_addresses - 3

    @property
    def sources(self) -> tuple[HostSpec, ...]:
        return tuple(h for h in self.hosts if h.role == "source")

    def nad_config(self, master: str, node: str | None = None) -> dict[str, Any]:
        """The NAD's config; for `node`, with that node's share of the range."""
        start, end = self.node_range(node) if node is not None else (None, None)
        return self.attachment.cni_config(master=master, subnet=self.subnet, start=start,
                                          end=end)

    @property
    def static_pod_addresses(self) -> bool:
        """Whether Kubernetes pods get their attachment's address from the lab: with
        several nodes, one NAD serves them all and host-local on each node would hand out
        the same addresses (its leases are per node), so the lab names each pod's address,
        from its node's share of the range. One node keeps the seed's host-local."""
        return len(self.nodes) > 1

    def kube_nad_config(self, master: str) -> dict[str, Any]:
        """The config of the one NAD of a Kubernetes lab, on every node."""
        return self.attachment.cni_config(master=master, subnet=self.subnet,
                                          static=self.static_pod_addresses)

    def pod_address(self, node: str, index: int) -> str:
        """The `index`th attached pod's address on `node`, with the lab's prefix length
        (static IPAM takes a CIDR), from the node's share of the range."""
        start, end = self.node_range(node)
        address = start + index
        if address > end:
            raise ValueError(f"{node} holds {int(end) - int(start) + 1} attached pods "
                             f"({start}-{end}); pod {index + 1} has no address")
        return f"{address}/{self.subnet.prefixlen}"
