"""Run folders never overwrite one another; libvirt networks the lab defines are isolated;
the verdict's boundary."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab import libvirtnet, results
from lab.labfile import load_lab
from lab.runner import judge
from lab.scenario import Expectation
from tests.conftest import REPO


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


def test_libvirt_networks_are_isolated_without_dns() -> None:
    lab = load_lab(REPO / "lab.yaml")
    networks = libvirtnet.wanted_networks(lab)
    assert len(networks) == 2
    for name, xml in networks.items():
        root = ET.fromstring(xml)
        assert root.findtext("name") == name and name.startswith(lab.name)
        assert root.find("forward") is None, xml  # no forward element: isolated
        assert root.find("dns").get("enable") == "no", xml  # type: ignore[union-attr]
        assert root.find("bridge") is None or root.find("bridge").get("name")  # type: ignore
    lab_net = ET.fromstring(networks[libvirtnet.lab_network(lab)])
    assert lab_net.find("ip/dhcp") is None  # lab addresses are static, as in lab.yaml
    mgmt = ET.fromstring(networks[libvirtnet.management_network(lab)])
    assert mgmt.find("ip/dhcp/range") is not None  # Vagrant's SSH address comes from DHCP


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
