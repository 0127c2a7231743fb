"""The libvirt lab network's bridge as the lab switch, read and set through virsh and
sysfs. virsh's output here is its real format (as `virsh net-info` and `virsh domiflist`
print it); the sysfs tree is a FAKE folder standing in for /sys/class/net, so that the
values and their order can be checked without a bridge. The VM test (tests/integration/
test_vm_lab.py) does it all on a real libvirt bridge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import command
from lab.backends.vagrant import libvirtnet
from lab.backends.vagrant.checks import checks
from lab.model.labfile import load_lab
from tests.support import REPO

NET_INFO = """Name:           u1234-lab
UUID:           6e1d2c1a-0000-4000-8000-000000000001
Active:         yes
Persistent:     yes
Autostart:      no
Bridge:         virbr3
"""
DOMIFLIST = {
    "u1234-k8s": """ Interface   Type      Source      Model    MAC
-------------------------------------------------------------
 vnet4       network   u1234-mgmt   virtio   52:54:00:aa:bb:01
 vnet5       network   u1234-lab    virtio   52:54:00:aa:bb:02
""",
    "u1234-k8s-2": """ Interface   Type      Source      Model    MAC
-------------------------------------------------------------
 vnet6       network   u1234-mgmt   virtio   52:54:00:aa:bb:03
 vnet7       network   u1234-lab    virtio   52:54:00:aa:bb:04
""",
}


@pytest.fixture
def lab(tmp_path: Path) -> Any:
    data = yaml.safe_load((REPO / "examples" / "multinode" / "lab.yaml").read_text())
    data["name"] = "u1234"
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    return load_lab(tmp_path / "lab.yaml")


@pytest.fixture
def virsh(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []

    def answer(*args: str, check: bool = True) -> command.Result:
        calls.append(args)
        out = NET_INFO if args[0] == "net-info" else DOMIFLIST[args[1]]
        return command.Result(("virsh", *args), 0, out, "", 0.0, 60.0)

    monkeypatch.setattr(libvirtnet, "_virsh", answer)
    return calls


def test_ports_and_bridge_are_read_from_virsh(lab: Any, virsh: list[tuple[str, ...]]) -> None:
    assert libvirtnet.lab_bridge(lab) == "virbr3"
    assert libvirtnet.lab_ports(lab, ["k8s", "k8s-2"]) == {"k8s": "vnet5", "k8s-2": "vnet7"}
    with pytest.raises(KeyError):
        libvirtnet.lab_ports(lab, ["k8s-3"])  # no such domain in the fake's answers


def test_configure_switch_writes_the_querier_last(lab: Any, virsh: list[tuple[str, ...]],
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sys = tmp_path / "sys"  # FAKE /sys/class/net
    bridge = fake_sys / "virbr3" / "bridge"
    bridge.mkdir(parents=True)
    written: list[str] = []
    for key in ("multicast_snooping", "multicast_querier", "multicast_igmp_version",
                "multicast_query_response_interval"):
        (bridge / key).write_text("0\n")
    monkeypatch.setattr(libvirtnet, "SYS_NET", fake_sys)
    original = Path.write_text

    def record(self: Path, text: str, *a: Any, **k: Any) -> int:
        written.append(self.name)
        return original(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", record)
    assert libvirtnet.configure_switch(lab) is True  # the querier was off: turned on now
    assert written[-1] == "multicast_querier"
    assert {k: (bridge / k).read_text().strip() for k in written} == {
        "multicast_snooping": "1", "multicast_igmp_version": "3",
        "multicast_query_response_interval": "100", "multicast_querier": "1"}
    assert libvirtnet.configure_switch(lab) is False  # already on: no start-up delay now


def test_port_counters_are_the_taps_tx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sys = tmp_path / "sys"  # FAKE /sys/class/net
    for tap, packets, nbytes in (("vnet5", 912, 1379000), ("vnet7", 3, 180)):
        stats = fake_sys / tap / "statistics"
        stats.mkdir(parents=True)
        (stats / "tx_packets").write_text(f"{packets}\n")
        (stats / "tx_bytes").write_text(f"{nbytes}\n")
    monkeypatch.setattr(libvirtnet, "SYS_NET", fake_sys)
    assert libvirtnet.port_tx({"k8s": "vnet5", "k8s-2": "vnet7"}) == {
        "k8s": (912, 1379000), "k8s-2": (3, 180)}


def test_virtualbox_says_it_cannot_snoop(lab: Any) -> None:
    from tests.unit.test_host_os import SimulatedMachine, _mac

    found = {c.name: c for c in checks(lab, {"provider": "virtualbox"}, machine=_mac())}
    assert not found["switch"].ok and not found["switch"].blocking
    assert "cannot" in found["switch"].message and "--provider libvirt" in found["switch"].fix
    assert "switch" not in {c.name for c in checks(
        load_lab(REPO / "lab.yaml"), {"provider": "virtualbox"},
        machine=SimulatedMachine(_mac().platform))}


def test_a_bridge_it_may_not_set_is_a_clear_error(lab: Any, virsh: list[tuple[str, ...]],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sys = tmp_path / "sys"  # FAKE /sys/class/net, whose files refuse writes
    bridge = fake_sys / "virbr3" / "bridge"
    bridge.mkdir(parents=True)
    (bridge / "multicast_querier").write_text("0\n")
    monkeypatch.setattr(libvirtnet, "SYS_NET", fake_sys)

    def refuse(self: Path, *a: Any, **k: Any) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    from lab.errors import BackendError

    with pytest.raises(BackendError) as info:
        libvirtnet.configure_switch(lab)
    assert "run lab as root (sudo)" in str(info.value) and "virbr3" in str(info.value)
