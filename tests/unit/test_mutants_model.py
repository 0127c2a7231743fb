"""The lab model (lab.model) as loaded from the repository's lab.yaml: tests written to
kill the mutants mutmut found surviving."""

from __future__ import annotations

import ipaddress

import pytest

from lab.model.labfile import load_lab
from tests.support import REPO

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable


def test_nad_config_is_the_whole_macvlan_config() -> None:
    lab = load_lab(REPO / "lab.yaml")
    assert lab.nad_config("eth1") == {
        "cniVersion": "0.3.1",
        "type": "macvlan",
        "master": "eth1",
        "mode": "bridge",
        "ipam": {"type": "host-local", "subnet": "192.168.56.0/24",
                 "rangeStart": "192.168.56.13", "rangeEnd": "192.168.56.254"},
    }


def test_host_finds_each_host_by_its_name() -> None:
    lab = load_lab(REPO / "lab.yaml")
    assert lab.host("mcastsrc").address == ipaddress.IPv4Address("192.168.56.12")
    assert lab.host("k8s").address == ipaddress.IPv4Address("192.168.56.11")
    with pytest.raises(KeyError) as info:
        lab.host("nosuch")
    assert info.value.args == ("nosuch",)


def test_roles_prefix_and_project_folder() -> None:
    lab = load_lab(REPO / "lab.yaml")
    assert lab.node.name == "k8s"
    assert [h.name for h in lab.sources] == ["mcastsrc"]
    assert lab.prefix == "mcast-"
    assert lab.project_dir == REPO
