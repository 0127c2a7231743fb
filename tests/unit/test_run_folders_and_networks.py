"""Run folders never overwrite one another; libvirt networks the lab defines are isolated;
the verdict's boundary."""

from __future__ import annotations

import datetime as dt
import ipaddress
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from lab import names
from lab.backends.vagrant import libvirtnet
from lab.errors import BackendError
from lab.model.lab import Lab
from lab.model.labfile import load_lab
from lab.model.scenario import Expectation
from lab.run import artifacts as results
from lab.run.runner import judge
from tests.support import REPO, base_lab


class _FrozenClock(dt.datetime):
    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _FrozenClock:
        return cls(2026, 11, 29, 12, 0, 0, tzinfo=tz)


def test_runs_started_in_the_same_second_get_their_own_folders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results.dt, "datetime", _FrozenClock)
    folder = tmp_path / "results"
    first = results.RunArtifacts(folder, "pod-multus", {})
    second = results.RunArtifacts(folder, "pod-multus", {})
    first.write("raw/a.txt", "first")
    second.write("raw/a.txt", "second")
    a, b = first.finish("complete"), second.finish("complete")
    assert a.name == "20261129-120000-pod-multus"
    assert b.name == "20261129-120000-pod-multus-2"
    assert (a / "raw" / "a.txt").read_text() == "first"
    assert (b / "raw" / "a.txt").read_text() == "second"
    # A third run that finishes after a folder of its name appeared meanwhile.
    third = results.RunArtifacts(folder, "x", {})
    (folder / third.run_id).mkdir()
    c = third.finish("complete")
    assert c.name == f"{third.run_id}-2" and (c / "summary.json").is_file()


def _lab_with_management(tmp_path: Path, management: str) -> Lab:
    data = base_lab()
    data["vagrant"]["libvirt"] = {"management": management}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    return load_lab(tmp_path / "lab.yaml")


def test_libvirt_networks_are_isolated_without_dns(tmp_path: Path) -> None:
    lab = _lab_with_management(tmp_path, "isolated")  # as CI's VMs and offline labs have
    networks = libvirtnet.wanted_networks(lab, ipaddress.IPv4Network("192.168.121.0/24"))
    assert len(networks) == 2
    for name, xml in networks.items():
        root = ET.fromstring(xml)
        assert root.findtext("name") == name and name.startswith(lab.name)
        assert root.find("forward") is None, xml  # no forward element: isolated
        assert root.find("dns").get("enable") == "no", xml  # type: ignore[union-attr]
        assert root.find("bridge") is None or root.find("bridge").get("name")  # type: ignore
    lab_net = ET.fromstring(networks[names.libvirt_lab_network(lab.name)])
    assert lab_net.find("ip/dhcp") is None  # lab addresses are static, as in lab.yaml
    mgmt = ET.fromstring(networks[names.libvirt_management_network(lab.name)])
    assert mgmt.find("ip/dhcp/range") is not None  # Vagrant's SSH address comes from DHCP
    assert mgmt.find("ip").get("address") == "192.168.121.1"  # type: ignore[union-attr]


def test_by_default_the_management_network_gives_the_vms_a_way_out(tmp_path: Path) -> None:
    """The Kubernetes tier downloads packages and images: libvirt's NAT on the management
    network only; the lab network stays isolated."""
    lab = _lab_with_management(tmp_path, "nat")
    networks = libvirtnet.wanted_networks(lab, ipaddress.IPv4Network("192.168.121.0/24"))
    mgmt = ET.fromstring(networks[names.libvirt_management_network(lab.name)])
    assert mgmt.find("forward").get("mode") == "nat"  # type: ignore[union-attr]
    assert mgmt.find("dns") is None  # libvirt's forwarder answers the VMs
    lab_net = ET.fromstring(networks[names.libvirt_lab_network(lab.name)])
    assert lab_net.find("forward") is None and lab_net.find("dns").get("enable") == "no"  # type: ignore[union-attr]  # noqa: E501


def test_each_lab_gets_a_management_subnet_nobody_uses() -> None:
    lab = load_lab(REPO / "lab.yaml")
    net = ipaddress.IPv4Network
    assert libvirtnet.free_management_subnet(lab, {}) == net("192.168.121.0/24")
    # Another lab's management network, and an address of this machine, are skipped.
    used = {net("192.168.121.0/24"): "libvirt network other-mgmt",
            net("192.168.122.0/24"): "interface virbr0"}
    assert libvirtnet.free_management_subnet(lab, used) == net("192.168.123.0/24")
    # A wide network in use rules out every /24 inside it.
    assert libvirtnet.free_management_subnet(lab, {net("192.168.120.0/21"): "x"}) == \
        net("192.168.128.0/24")


def test_a_lab_subnet_in_use_elsewhere_is_refused_with_who_uses_it() -> None:
    lab = load_lab(REPO / "lab.yaml")
    libvirtnet.check_lab_subnet(lab, {ipaddress.IPv4Network("192.168.121.0/24"): "x"})
    with pytest.raises(BackendError, match=r"network\.subnet in .*overlaps 192\.168\.56\.0/24 "
                       "of libvirt network other-lab"):
        libvirtnet.check_lab_subnet(
            lab, {ipaddress.IPv4Network("192.168.56.0/24"): "libvirt network other-lab"})


@pytest.mark.parametrize(("pct", "sent", "received", "verdict"), [
    (100, 450, 450, "pass"), (100, 450, 449, "fail"), (50, 450, 225, "pass"),
    (50, 450, 224, "fail"), (99.5, 1000, 995, "pass"), (99.5, 1000, 994, "fail"),
    (100, 0, 0, "fail"), (100, None, 10, "fail")])
def test_the_verdict_boundary(pct: float, sent: int | None, received: int,
                              verdict: str) -> None:
    assert judge(Expectation(True, pct), sent, received) == verdict


@pytest.mark.parametrize(("sent", "received", "verdict"), [
    (450, 0, "pass"), (450, 1, "fail"), (None, 0, "pass")])
def test_the_negative_verdict(sent: int | None, received: int, verdict: str) -> None:
    assert judge(Expectation(False), sent, received) == verdict
