"""Loading `lab.yaml` into the `Lab` model, reporting every problem with file and dotted key."""

from __future__ import annotations

import os
from pathlib import Path

from lab import registry
from lab.model import fields as f
from lab.model.fields import Problems, Section
from lab.model.lab import (
    NODE_POD_PREFIX,
    Attachment,
    Box,
    ClusterSettings,
    DirectBoot,
    ExternalSender,
    HostSpec,
    KubernetesSettings,
    Lab,
    LibvirtSettings,
    SwitchSettings,
    VagrantSettings,
)

# What stands for `kubernetes:` in a cluster lab that has none (the cluster is the user's).
NO_KUBERNETES = KubernetesSettings("", "", "", "", "", "node", provision=False)
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
ARCHITECTURES = ("amd64", "arm64")  # what a box pin may name (hostos.Platform.arch)


def shown_path(path: Path) -> str:
    """How a file is named in messages: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def load_lab(path: Path) -> Lab:
    """Load and validate a lab file; raise ConfigError listing every problem."""
    path = path.resolve()
    shown = shown_path(path)
    raw = f.load_yaml_mapping(path, shown)
    problems = Problems(shown)
    top = Section(problems, "", raw)

    name = top.get("name", f.name)
    backend = top.get("backend", f.choice(*registry.CHOICES), registry.AUTO)

    net = top.section("network")
    subnet = net.get("subnet", f.ipv4_network)
    nic = net.get("nic", f.ifname, "eth1")
    net.done()

    hosts = _hosts(top, problems, subnet)
    attachment = _attachment(top.section("attachment"), subnet, hosts)

    pods = top.section("pod_network")
    pod_subnet = pods.get("subnet", f.ipv4_network)
    pods.done()
    if subnet is not None and pod_subnet is not None and subnet.overlaps(pod_subnet):
        problems.add("pod_network.subnet",
                     f"{pod_subnet} overlaps network.subnet {subnet}: pod and lab traffic "
                     "would be indistinguishable")

    # A cluster of the user's boots no VM and installs nothing: those sections may go.
    on_cluster = backend == "cluster"
    vagrant = _vagrant(top.section("vagrant")) if top.has("vagrant") or not on_cluster \
        else VagrantSettings("virtualbox", {})
    kubernetes = _kubernetes(top.section("kubernetes")) \
        if top.has("kubernetes") or not on_cluster else NO_KUBERNETES
    switch = _switch(top.section("switch", required=False)) if top.has("switch") else None
    cluster = _cluster(top.section("cluster"), path.parent, hosts) \
        if top.has("cluster") or backend == "cluster" else None
    _room_per_node(problems, hosts, attachment, pod_subnet)
    top.done()
    problems.raise_if_any()
    assert name and backend and subnet and nic and attachment and pod_subnet
    assert vagrant and kubernetes
    return Lab(name=name, backend=backend, subnet=subnet, nic=nic, hosts=tuple(hosts),
               attachment=attachment, pod_subnet=pod_subnet, vagrant=vagrant,
               kubernetes=kubernetes, source=path, switch=switch, cluster=cluster)


def _switch(s: Section) -> SwitchSettings | None:
    snooping = s.get("igmp_snooping", f.boolean, False)
    querier = s.get("igmp_querier", f.boolean, False)
    version = s.get("igmp_version", f.integer(2, 3), 2)
    s.done()
    if querier and snooping is False:
        s.problems.add(s.key("igmp_querier"), "needs igmp_snooping: true (the lab switch "
                       "is a Linux bridge, whose querier is part of its snooping)")
        return None
    if snooping is None or querier is None or version is None:
        return None
    return SwitchSettings(snooping, querier, version)


def _cluster(s: Section, folder: Path, hosts: list[HostSpec]) -> ClusterSettings | None:
    """`cluster:`: needed by backend: cluster; its kubeconfig relative to the lab file."""
    kubeconfig = s.get("kubeconfig", f.string, "~/.kube/config")
    context = s.get("context", f.ref)
    nic = s.get("nic", f.ifname)
    image = s.get("image", f.ref)
    namespace = s.get("namespace", f.name, "own")
    sender_node = s.get("sender_node", f.name, "")
    host_network = s.get("host_network", f.boolean, False)
    kubectl = s.get("kubectl", f.string, "")
    nodes: dict[str, str] = {}
    if s.has("nodes"):
        n = s.section("nodes")
        for key in list(n.data):
            value = n.get(str(key), f.ref)
            if value:
                nodes[str(key)] = value
        n.done()
    sender_ssh = _sender_ssh(s.section("sender_ssh"), folder) if s.has("sender_ssh") else None
    s.done()
    node_hosts = {h.name for h in hosts if h.role == "node"}
    for key in nodes:
        if key not in node_hosts:
            s.problems.add(s.key(f"nodes.{key}"), f"{key!r} is no node host of the lab "
                           f"(its nodes: {', '.join(sorted(node_hosts)) or 'none'})")
    if sender_node and sender_node not in node_hosts:
        s.problems.add(s.key("sender_node"), f"{sender_node!r} is no node host of the lab")
    if not (kubeconfig and context and nic and image and namespace is not None
            and host_network is not None and kubectl is not None):
        return None
    config = Path(os.path.expanduser(kubeconfig))
    return ClusterSettings(config if config.is_absolute() else folder / config, context,
                           nodes, nic, image, namespace, sender_node or "", bool(host_network),
                           kubectl, sender_ssh)


def _sender_ssh(s: Section, folder: Path) -> ExternalSender | None:
    host = s.get("host", f.ref)
    port = s.get("port", f.integer(1, 65535), 22)
    user = s.get("user", f.ref)
    identity = s.get("identity_file", f.string)
    sudo = s.get("sudo", f.boolean, False)
    s.done()
    if not (host and port and user and identity) or sudo is None:
        return None
    key = Path(os.path.expanduser(identity))
    return ExternalSender(host, port, user, key if key.is_absolute() else folder / key, sudo)


def _room_per_node(problems: Problems, hosts: list[HostSpec], attachment: Attachment | None,
                   pod_subnet: f.ipaddress.IPv4Network | None) -> None:
    """With several nodes, each gets a slice of the attachment's range and a /24 of the
    pod network (Lab.node_range, Lab.node_pod_subnet): both must have room for all."""
    nodes = [h for h in hosts if h.role == "node"]
    if len(nodes) < 2:
        return
    if attachment is not None:
        size = int(attachment.range_end) - int(attachment.range_start) + 1
        if size < len(nodes):
            problems.add("attachment.range", f"{size} address(es) cannot be shared by "
                         f"{len(nodes)} nodes (each node hands out its own slice)")
    if pod_subnet is not None:
        room = 2 ** max(NODE_POD_PREFIX - pod_subnet.prefixlen, 0) \
            if pod_subnet.prefixlen <= NODE_POD_PREFIX else 0
        if room < len(nodes):
            problems.add("pod_network.subnet", f"{pod_subnet} holds {room} /24 network(s); "
                         f"{len(nodes)} nodes need one each")


def _hosts(top: Section, problems: Problems, subnet: f.ipaddress.IPv4Network | None
           ) -> list[HostSpec]:
    hosts: list[HostSpec] = []
    seen_names: dict[str, str] = {}
    seen_addresses: dict[object, str] = {}
    for key, item in top.items("hosts"):
        s = Section(problems, key, item)
        name = s.get("name", f.name)
        role = s.get("role", f.choice("source", "node"))
        address = s.get("address", f.ipv4)
        memory = s.get("memory", f.integer(256, 262144), 1024)
        cpus = s.get("cpus", f.integer(1, 64), 1)
        s.done()
        if name is not None:
            if name in seen_names:
                problems.add(s.key("name"), f"duplicate host name {name!r} "
                             f"(also {seen_names[name]})")
            seen_names.setdefault(name, key)
        if address is not None:
            if subnet is not None and address not in subnet:
                problems.add(s.key("address"), f"{address} is outside network.subnet {subnet}")
            elif subnet is not None and address in (subnet.network_address,
                                                    subnet.broadcast_address):
                problems.add(s.key("address"), f"{address} is the network or broadcast "
                             f"address of {subnet}")
            if address in seen_addresses:
                problems.add(s.key("address"), f"{address} is already used by "
                             f"{seen_addresses[address]}")
            seen_addresses.setdefault(address, key)
        if name and role and address and memory and cpus:
            hosts.append(HostSpec(name, role, address, memory, cpus))
    roles = [h.role for h in hosts]
    if hosts and len(hosts) == len(top.data.get("hosts") or []):
        if roles.count("node") < 1:
            problems.add("hosts", "needs at least one host with role: node (found none)")
        if roles.count("source") < 1:
            problems.add("hosts", "needs at least one host with role: source")
    return hosts


def _attachment(s: Section, subnet: f.ipaddress.IPv4Network | None,
                hosts: list[HostSpec]) -> Attachment | None:
    name = s.get("name", f.name)
    ifname = s.get("ifname", f.ifname, "eth1")
    mode = s.get("mode", f.choice(*MACVLAN_MODES), "bridge")
    cni_version = s.get("cni_version", f.choice("0.3.0", "0.3.1", "0.4.0", "1.0.0"), "0.3.1")
    bcqueuelen = s.get("bcqueuelen", f.integer(1, 1_000_000), None)
    bclim = s.get("bclim", f.integer(-1, 1_000_000), None)
    rng = s.section("range")
    start = rng.get("start", f.ipv4)
    end = rng.get("end", f.ipv4)
    rng.done()
    s.done()
    if ifname == "eth0":
        s.problems.add(s.key("ifname"), "eth0 is the pod network's interface; use another name")
    if start is not None and end is not None:
        for key, addr in (("start", start), ("end", end)):
            if subnet is not None and addr not in subnet:
                s.problems.add(rng.key(key), f"{addr} is outside network.subnet {subnet}")
        if start > end:
            s.problems.add(rng.key("start"), f"{start} comes after range.end {end}")
        for host in hosts:
            if start <= host.address <= end:
                s.problems.add(rng.key("start"), f"range {start}-{end} contains host "
                               f"{host.name}'s address {host.address}")
    if name and ifname and mode and cni_version and start and end:
        return Attachment(name, ifname, mode, start, end, cni_version, bcqueuelen, bclim)
    return None


def _vagrant(s: Section) -> VagrantSettings | None:
    provider = s.get("provider", f.choice(*registry.PROVIDERS), "virtualbox")
    boxes: dict[str, Box] = {}
    box_section = s.section("boxes")
    for prov in registry.PROVIDERS:
        b = box_section.section(prov)
        box_name = b.get("name", f.ref)
        version = b.get("version", f.ref)
        archs = b.words("architectures", f.choice(*ARCHITECTURES), ["amd64"])
        b.done()
        if box_name and version and archs:
            boxes[prov] = Box(box_name, version, archs)
    box_section.done()
    lv = s.section("libvirt", required=False)
    driver = lv.get("driver", f.choice("kvm", "qemu"), "kvm")
    management = lv.get("management", f.choice("nat", "isolated"), "nat")
    boot = None
    if lv.has("direct_boot"):
        b = lv.section("direct_boot")
        kernel = b.get("kernel", f.path)
        initrd = b.get("initrd", f.path)
        cmd_line = b.get("cmd_line", f.cmdline)
        b.done()
        if kernel and initrd and cmd_line:
            boot = DirectBoot(kernel, initrd, cmd_line)
    lv.done()
    s.done()
    if provider is None or driver is None or management is None or \
            len(boxes) != len(registry.PROVIDERS):
        return None
    return VagrantSettings(provider, boxes, LibvirtSettings(driver, boot, management))


def _kubernetes(s: Section) -> KubernetesSettings | None:
    minor = s.get("minor", f.ref)
    package_version = s.get("package_version", f.ref)
    pause_image = s.get("pause_image", f.ref)
    flannel = s.get("flannel", f.ref)
    multus = s.get("multus", f.ref)
    image = s.get("iperf_image", f.ref, "node")
    provision = s.get("provision", f.boolean, True)
    s.done()
    if minor and package_version and pause_image and flannel and multus and image:
        if not package_version.startswith(minor + "."):
            s.problems.add(s.key("package_version"),
                           f"{package_version} is not a release of minor {minor}")
            return None
        return KubernetesSettings(minor, package_version, pause_image, flannel, multus,
                                  image, bool(provision))
    return None
