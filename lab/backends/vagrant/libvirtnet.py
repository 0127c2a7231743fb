"""The libvirt networks of a lab, defined before `vagrant up` and removed by `destroy`.

The lab network is isolated: no <forward> (nothing routed to the machine's own interfaces
or beyond) and no DNS. The management network gives the VMs the internet through libvirt's
NAT (the Kubernetes tier downloads packages and images), or with
`vagrant.libvirt.management: isolated` is as isolated as the lab network (CI, offline
labs). The management network hands out addresses by DHCP, which is how vagrant-libvirt
learns where to SSH; the lab network has none: Vagrant configures the static lab addresses
from lab.yaml. `vagrant destroy` removes a pre-defined private
network, so `up` defines them again each time.

Each lab has its own management subnet, the first /24 from MANAGEMENT_POOL that no libvirt
network and no address of this machine uses, chosen at the first `up` and recorded: two
labs with different names run side by side. Their lab networks must differ too (lab.yaml
network.subnet); `ensure` says so, naming the other network, before libvirt would refuse.
"""

from __future__ import annotations

import ipaddress
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import quoteattr

from lab import command, names, snooping
from lab.errors import BackendError
from lab.model.lab import Lab

VIRSH_TIMEOUT_S = 60.0
URI = "qemu:///system"
Net4 = ipaddress.IPv4Network
# Management subnets are /24s taken from here: vagrant-libvirt's own default first.
MANAGEMENT_POOL = Net4("192.168.121.0/24"), Net4("192.168.122.0/23"), Net4("192.168.124.0/22"), \
    Net4("192.168.128.0/17")


def _virsh(*args: str, check: bool = True) -> command.Result:
    return command.run(["virsh", "-c", URI, *args], timeout=VIRSH_TIMEOUT_S, check=check,
                       what=f"virsh {args[0]}")


def network_xml(name: str, subnet: ipaddress.IPv4Network, host_address: ipaddress.IPv4Address,
                dhcp: bool, nat: bool = False) -> str:
    """An isolated network (no <forward>, no DNS), or with `nat` one whose VMs reach the
    internet through this machine (libvirt's NAT and DNS forwarder)."""
    start, end = subnet.network_address + 10, subnet.broadcast_address - 1
    dhcp_xml = (f"<dhcp><range start='{start}' end='{end}'/></dhcp>" if dhcp else "")
    way_out = "<forward mode='nat'/>" if nat else "<dns enable='no'/>"
    return (f"<network><name>{_text(name)}</name>{way_out}"
            f"<ip address={quoteattr(str(host_address))} netmask={quoteattr(str(subnet.netmask))}>"
            f"{dhcp_xml}</ip></network>")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def network_names(lab: Lab) -> list[str]:
    return [names.libvirt_management_network(lab.name), names.libvirt_lab_network(lab.name)]


def wanted_networks(lab: Lab, management: Net4) -> dict[str, str]:
    # The host's side of the lab network takes the first address not used by a lab host
    # or the attachment's range (the VMs must never collide with it).
    used = {h.address for h in lab.hosts}
    host_side = next(a for a in lab.subnet.hosts() if a not in used and
                     not lab.attachment.range_start <= a <= lab.attachment.range_end)
    mgmt_name, lab_name = network_names(lab)
    return {
        mgmt_name: network_xml(mgmt_name, management, management.network_address + 1,
                               dhcp=True, nat=lab.vagrant.libvirt.management == "nat"),
        lab_name: network_xml(lab_name, lab.subnet, host_side, dhcp=False),
    }


def subnets_in_use(exclude: set[str]) -> dict[Net4, str]:
    """Subnet -> who uses it: every libvirt network but those in `exclude` (by name), and
    every IPv4 address on this machine (read only: `ip -4 -o addr show`)."""
    used: dict[Net4, str] = {}
    own_bridges = set()
    for name in existing():
        root = ET.fromstring(_virsh("net-dumpxml", name).stdout)
        if name in exclude:
            # This lab's own networks (left by an `up` that was killed) and their bridges.
            bridge = root.find("bridge")
            if bridge is not None and bridge.get("name"):
                own_bridges.add(bridge.get("name"))
            continue
        for ip in root.findall("ip"):
            address, mask = ip.get("address"), ip.get("netmask") or ip.get("prefix")
            if address and mask and ip.get("family", "ipv4") == "ipv4":
                used[Net4(f"{address}/{mask}", strict=False)] = f"libvirt network {name}"
    out = command.run(["ip", "-4", "-o", "addr", "show"], timeout=VIRSH_TIMEOUT_S).stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts and parts[1] not in own_bridges:
            used[Net4(parts[parts.index("inet") + 1], strict=False)] = f"interface {parts[1]}"
    return used


def free_management_subnet(lab: Lab, used: dict[Net4, str]) -> Net4:
    taken = [*used, lab.subnet, lab.pod_subnet]
    for pool in MANAGEMENT_POOL:
        for candidate in pool.subnets(new_prefix=24):
            if not any(candidate.overlaps(n) for n in taken):
                return candidate
    raise BackendError("no free /24 for libvirt's management network in "
                       f"{', '.join(str(p) for p in MANAGEMENT_POOL)}; remove unused libvirt "
                       "networks (virsh net-list --all)")


def check_lab_subnet(lab: Lab, used: dict[Net4, str]) -> None:
    for net, who in used.items():
        if net.overlaps(lab.subnet):
            raise BackendError(f"the lab network {lab.subnet} (network.subnet in "
                               f"{lab.source}) overlaps {net} of {who}; libvirt cannot "
                               "create it. Give this lab another subnet (each lab that runs "
                               "at the same time needs its own), or destroy the other lab")


def existing() -> dict[str, bool]:
    """Network name -> active, for every libvirt network."""
    out = _virsh("net-list", "--all", "--name").stdout.split()
    result = {}
    for name in out:
        info = _virsh("net-info", name).stdout
        result[name] = any(line.split() == ["Active:", "yes"] for line in info.splitlines())
    return result


def ensure(lab: Lab, management: Net4, record: Callable[[str], None]) -> None:
    """Define and start the lab's networks; `record(name)` is called before each exists."""
    have = existing()
    for name, xml in wanted_networks(lab, management).items():
        if name not in have:
            record(name)
            _define(xml)
        if not have.get(name, False):
            _virsh("net-start", name)


def _define(xml: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as f:
        f.write(xml)
        f.flush()
        result = _virsh("net-define", f.name, check=False)
    if not result.ok:
        raise BackendError(f"virsh net-define failed: {result.stderr.strip() or result.stdout}")


def remove(names: list[str]) -> None:
    have = existing()
    for name in names:
        if name in have:
            if have[name]:
                _virsh("net-destroy", name)
            _virsh("net-undefine", name)


# -- the lab network's bridge as the lab switch ------------------------------------------

SYS_NET = Path("/sys/class/net")


def lab_bridge(lab: Lab) -> str:
    """The bridge libvirt made for the lab network (`virsh net-info`'s Bridge:)."""
    name = names.libvirt_lab_network(lab.name)
    for line in _virsh("net-info", name).stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Bridge" and value.strip():
            return value.strip()
    raise BackendError(f"virsh net-info {name} names no bridge")


def configure_switch(lab: Lab) -> bool:
    """Set the lab network's bridge (this lab's own, made by libvirt for it) as lab.yaml's
    `switch:` says, through sysfs; True when its querier was turned on now. Without
    `switch:`, the bridge stays as libvirt made it (it floods: no querier)."""
    sw = lab.switch
    if sw is None:
        return False
    bridge = SYS_NET / lab_bridge(lab) / "bridge"
    settings = [("multicast_snooping", int(sw.igmp_snooping))]
    if sw.igmp_snooping:
        settings += [("multicast_igmp_version", sw.igmp_version),
                     ("multicast_query_response_interval",
                      int(snooping.QUERY_RESPONSE_S * 100))]
    try:
        was = (bridge / "multicast_querier").read_text().strip()
    except OSError as exc:
        raise BackendError(f"cannot read the lab network's bridge ({exc})") from None
    # The querier last: the kernel takes its start-up delay from the response interval.
    settings.append(("multicast_querier", int(sw.snoops)))
    try:
        for key, value in settings:
            (bridge / key).write_text(f"{value}\n")
    except OSError as exc:
        raise BackendError(f"cannot set the lab network's bridge {bridge.parent.name} as "
                           f"lab.yaml's switch: says ({bridge / key}: {exc.strerror}): run "
                           "lab as root (sudo) for a lab with switch:, or remove switch: "
                           "from lab.yaml") from None
    return was != "1" and sw.snoops


def lab_ports(lab: Lab, hosts: list[str]) -> dict[str, str]:
    """Each host's port on the lab network's bridge: its VM's tap device there, from
    `virsh domiflist` (the row whose source is the lab network)."""
    network = names.libvirt_lab_network(lab.name)
    ports: dict[str, str] = {}
    for host in hosts:
        domain = names.vm_prefix(lab.name) + host
        for line in _virsh("domiflist", domain).stdout.splitlines():
            cols = line.split()
            if len(cols) >= 3 and cols[1] in ("network", "bridge") and cols[2] == network:
                ports[host] = cols[0]
    missing = [h for h in hosts if h not in ports or ports[h] == "-"]
    if missing:
        raise BackendError(f"no port on {network} for {', '.join(missing)} "
                           "(virsh domiflist); is the VM running?")
    return ports


def port_tx(ports: dict[str, str]) -> dict[str, tuple[int, int]]:
    """(packets, bytes) the bridge has sent out of each port toward its VM: a tap's own
    tx counters, as this machine sees them."""
    counts = {}
    for host, tap in ports.items():
        stats = SYS_NET / tap / "statistics"
        counts[host] = (int((stats / "tx_packets").read_text()),
                        int((stats / "tx_bytes").read_text()))
    return counts


def mdb_json(lab: Lab) -> str:
    return command.run(["bridge", "-j", "-s", "mdb", "show", "dev", lab_bridge(lab)],
                       timeout=10, what="read the lab network's memberships").stdout
