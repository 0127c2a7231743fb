"""The libvirt networks of a lab, defined before `vagrant up` and removed by `destroy`.

Both are isolated: no <forward> (nothing routed to the machine's own interfaces or beyond)
and no DNS (a network vagrant-libvirt makes itself runs a DNS forwarder to outside
addresses). The management network hands out addresses by DHCP, which is how
vagrant-libvirt learns where to SSH; the lab network has none: Vagrant configures the
static lab addresses from lab.yaml. `vagrant destroy` removes a pre-defined private
network, so `up` defines them again each time.
"""

from __future__ import annotations

import ipaddress
import tempfile
from collections.abc import Callable
from xml.sax.saxutils import quoteattr

from lab import command
from lab.errors import BackendError
from lab.model import Lab
from lab.vagrantinput import MANAGEMENT_SUBNET, lab_network, management_network

VIRSH_TIMEOUT_S = 60.0
URI = "qemu:///system"


def _virsh(*args: str, check: bool = True) -> command.Result:
    return command.run(["virsh", "-c", URI, *args], timeout=VIRSH_TIMEOUT_S, check=check,
                       what=f"virsh {args[0]}")


def network_xml(name: str, subnet: ipaddress.IPv4Network, host_address: ipaddress.IPv4Address,
                dhcp: bool) -> str:
    start, end = subnet.network_address + 10, subnet.broadcast_address - 1
    dhcp_xml = (f"<dhcp><range start='{start}' end='{end}'/></dhcp>" if dhcp else "")
    return (f"<network><name>{_text(name)}</name><dns enable='no'/>"
            f"<ip address={quoteattr(str(host_address))} netmask={quoteattr(str(subnet.netmask))}>"
            f"{dhcp_xml}</ip></network>")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def wanted_networks(lab: Lab) -> dict[str, str]:
    mgmt = ipaddress.IPv4Network(MANAGEMENT_SUBNET)
    # The host's side of the lab network takes the first address not used by a lab host
    # or the attachment's range (the VMs must never collide with it).
    used = {h.address for h in lab.hosts}
    host_side = next(a for a in lab.subnet.hosts() if a not in used and
                     not lab.attachment.range_start <= a <= lab.attachment.range_end)
    return {
        management_network(lab): network_xml(management_network(lab), mgmt, mgmt.network_address
                                             + 1, dhcp=True),
        lab_network(lab): network_xml(lab_network(lab), lab.subnet, host_side, dhcp=False),
    }


def existing() -> dict[str, bool]:
    """Network name -> active, for every libvirt network."""
    out = _virsh("net-list", "--all", "--name").stdout.split()
    result = {}
    for name in out:
        info = _virsh("net-info", name).stdout
        result[name] = any(line.split() == ["Active:", "yes"] for line in info.splitlines())
    return result


def ensure(lab: Lab, record: Callable[[str], None]) -> None:
    """Define and start the lab's networks; `record(name)` is called before each exists."""
    have = existing()
    for name, xml in wanted_networks(lab).items():
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
