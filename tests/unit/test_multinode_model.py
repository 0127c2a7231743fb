"""Several nodes in the lab file and in scenarios: how the range and the pod network are
split, where pods go, port expectations, and what validation refuses (file and key)."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.errors import ConfigError
from lab.model.lab import SwitchSettings
from lab.model.labfile import load_lab
from lab.model.scenario import load_scenario
from tests.support import REPO

pytestmark = pytest.mark.portable

EXAMPLE = REPO / "examples" / "multinode"
IP = ipaddress.IPv4Address


def _example() -> dict[str, Any]:
    return yaml.safe_load((EXAMPLE / "lab.yaml").read_text())


def _problems(tmp_path: Path, data: dict[str, Any]) -> dict[str, str]:
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_lab(tmp_path / "lab.yaml")
    return {p.key: p.message for p in info.value.problems}


def _scenario_problems(tmp_path: Path, lab_data: dict[str, Any], scenario: dict[str, Any]
                       ) -> dict[str, str]:
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab_data))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    with pytest.raises(ConfigError) as info:
        load_scenario(tmp_path / "s.yaml", load_lab(tmp_path / "lab.yaml"))
    return {p.key: p.message for p in info.value.problems}


def _scenario(**extra: Any) -> dict[str, Any]:
    return {"name": "s", "group": "224.0.67.90", "sender": {"host": "mcastsrc"},
            "expect": {"receive": True}, **extra}


def test_the_example_splits_the_range_and_the_pod_network_per_node() -> None:
    lab = load_lab(EXAMPLE / "lab.yaml")
    assert [n.name for n in lab.nodes] == ["k8s", "k8s-2", "k8s-3"] and lab.node.name == "k8s"
    assert lab.switch == SwitchSettings(igmp_snooping=True, igmp_querier=True, igmp_version=3)
    assert [lab.node_range(n.name) for n in lab.nodes] == [
        (IP("192.168.56.100"), IP("192.168.56.149")),
        (IP("192.168.56.150"), IP("192.168.56.199")),
        (IP("192.168.56.200"), IP("192.168.56.249"))]
    assert [str(lab.node_pod_subnet(n.name)) for n in lab.nodes] == [
        "10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert lab.pod_capacity("k8s-2") == (50, 253)
    config = lab.nad_config("eth1", node="k8s-3")["ipam"]
    assert (config["rangeStart"], config["rangeEnd"]) == ("192.168.56.200", "192.168.56.249")


def test_the_last_node_takes_the_rest_of_an_uneven_range(tmp_path: Path) -> None:
    data = _example()
    data["attachment"]["range"] = {"start": "192.168.56.100", "end": "192.168.56.110"}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    lab = load_lab(tmp_path / "lab.yaml")
    assert [lab.node_range(n.name) for n in lab.nodes] == [
        (IP("192.168.56.100"), IP("192.168.56.102")),
        (IP("192.168.56.103"), IP("192.168.56.105")),
        (IP("192.168.56.106"), IP("192.168.56.110"))]


def test_the_seeds_one_node_keeps_the_whole_range_and_pod_network() -> None:
    lab = load_lab(REPO / "lab.yaml")
    assert lab.switch is None and not lab.has_switch
    assert lab.node_range("k8s") == (lab.attachment.range_start, lab.attachment.range_end)
    assert lab.node_pod_subnet("k8s") == lab.pod_subnet
    assert lab.nad_config("eth1", node="k8s") == lab.nad_config("eth1")
    # The seed's scenarios resolve as before: no nodes key, the node as host.
    case = load_scenario(REPO / "scenarios" / "fanout.yaml", lab).cases()[0].as_dict()
    assert "nodes" not in case["receivers"][0] and case["receivers"][0]["host"] == "k8s"
    assert "expect_port" not in case


def test_spread_places_members_on_the_nodes_in_turn() -> None:
    lab = load_lab(EXAMPLE / "lab.yaml")
    s = load_scenario(EXAMPLE / "scenarios" / "multinode-fanout.yaml", lab)
    (fan,) = s.receivers
    assert fan.nodes[:4] == ("k8s", "k8s-2", "k8s-3", "k8s")
    assert fan.node_of("fan-5") == "k8s-2" and fan.nodes.count("k8s-3") == 8
    snoop = load_scenario(EXAMPLE / "scenarios" / "snooping.yaml", lab)
    assert [(p.host, p.traffic) for p in snoop.expect_port] == [
        ("k8s", "all"), ("k8s-2", "all"), ("k8s-3", "none")]
    assert snoop.receivers[0].nodes == ("k8s", "k8s")
    assert snoop.receivers[1].node_of("nic-k8s-2") == "k8s-2"  # a host receiver


def test_lab_file_refusals_name_the_key(tmp_path: Path) -> None:
    data = _example()
    data["switch"] = {"igmp_snooping": False, "igmp_querier": True}
    data["pod_network"]["subnet"] = "10.244.0.0/24"
    data["attachment"]["range"] = {"start": "192.168.56.100", "end": "192.168.56.101"}
    data["hosts"][3]["address"] = data["hosts"][2]["address"]
    problems = _problems(tmp_path, data)
    assert "whose querier is part of its snooping" in problems["switch.igmp_querier"]
    assert "holds 1 /24 network(s); 3 nodes need one each" in problems["pod_network.subnet"]
    assert "cannot be shared by 3 nodes" in problems["attachment.range"]
    assert "is already used by hosts[2]" in problems["hosts[3].address"]
    bad = _example()
    bad["switch"] = {"igmp_version": 4, "igmp_snooping": "yes"}
    problems = _problems(tmp_path, bad)
    assert "out of range" in problems["switch.igmp_version"]
    assert "true or false" in problems["switch.igmp_snooping"]
    none = _example()
    for h in none["hosts"]:
        h["role"] = "source"
    assert "at least one host with role: node" in _problems(tmp_path, none)["hosts"]


def test_scenario_refusals_name_the_key(tmp_path: Path) -> None:
    lab = _example()
    problems = _scenario_problems(tmp_path, lab, _scenario(
        receivers=[{"name": "a", "placement": "pod", "node": "k8s-9"},
                   {"name": "b", "placement": "pod", "host": "mcastsrc"},
                   {"name": "c", "placement": "pod", "node": "k8s", "host": "k8s"},
                   {"name": "d", "placement": "host", "host": "k8s-2", "node": "k8s"}],
        expect_port=[{"host": "k8s-7", "traffic": "all"}, {"host": "k8s", "traffic": "some"},
                     {"host": "k8s-2", "traffic": "none"}, {"host": "k8s-2", "traffic": "all"}]))
    assert "no host 'k8s-9'" in problems["receivers[0].node"]
    assert "(nodes: k8s, k8s-2, k8s-3)" in problems["receivers[0].node"]
    assert "not on 'mcastsrc'" in problems["receivers[1].host"]
    assert "give the pods' node once" in problems["receivers[2].node"]
    assert "applies to placement: pod only" in problems["receivers[3].node"]
    assert "no host 'k8s-7'" in problems["expect_port[0].host"]
    assert "'some' is not one of: none, all" in problems["expect_port[1].traffic"]
    assert "listed twice" in problems["expect_port[3].host"]
    assert len(problems) == 7  # each problem once, no "unknown key" beside it


def test_more_pods_than_a_node_holds_are_refused(tmp_path: Path) -> None:
    lab = _example()
    problems = _scenario_problems(tmp_path, lab, _scenario(receivers=[
        {"name": "few", "placement": "pod", "node": "k8s-2", "count": 30},
        {"name": "more", "placement": "pod", "node": "k8s-2", "count": 21}]))
    assert problems == {"receivers[1].count": "more attached pods on k8s-2 than its share of "
                        "attachment.range holds (50: 192.168.56.150-192.168.56.199)"}
    fits = copy.deepcopy(lab)
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(fits))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(_scenario(receivers=[
        {"name": "all", "placement": "pod", "node": "spread", "count": 150}])))
    spread = load_scenario(tmp_path / "s.yaml", load_lab(tmp_path / "lab.yaml"))
    assert spread.receivers[0].nodes.count("k8s-3") == 50  # 150 spread: exactly full


def test_expect_port_needs_a_switch(tmp_path: Path) -> None:
    seed = yaml.safe_load((REPO / "lab.yaml").read_text())
    problems = _scenario_problems(tmp_path, seed, _scenario(
        receivers=[{"name": "n", "placement": "host", "host": "k8s"}],
        expect_port=[{"host": "k8s", "traffic": "all"}]))
    assert "needs a lab switch with a port per host: declare `switch:`" in \
        problems["expect_port"]
    seed["switch"] = {"igmp_snooping": False}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(seed))
    assert load_lab(tmp_path / "lab.yaml").has_switch


def test_member_names_may_not_clash_across_receivers(tmp_path: Path) -> None:
    problems = _scenario_problems(tmp_path, _example(), _scenario(receivers=[
        {"name": "on-k8s", "placement": "pod", "count": 2},
        {"name": "on-k8s-2", "placement": "host", "host": "k8s-2"}]))
    assert problems == {"receivers[1].name": "its member 'on-k8s-2' clashes with a member of "
                        "receiver 'on-k8s' (a group of N is named NAME-1 ... NAME-N)"}


def test_leave_and_late_counting_are_within_the_send(tmp_path: Path) -> None:
    lab = _example()
    problems = _scenario_problems(tmp_path, lab, _scenario(
        duration=5,
        receivers=[{"name": "a", "placement": "pod", "node": "k8s", "leave_after_s": 5},
                   {"name": "b", "placement": "host", "host": "k8s-2", "leave_after_s": 0}],
        expect_port=[{"host": "k8s", "traffic": "none", "from_s": 7},
                     {"host": "k8s-2", "traffic": "all", "from_s": 1}]))
    assert problems == {
        "expect_port[1].from_s": "counts part of the send, which cannot hold every datagram "
                                 "sent: use it with traffic: none",
        "receivers[0].leave_after_s": "5 s is not within the send (duration: 5 s)",
        "receivers[1].leave_after_s": "0 is out of range (0.1 to 3600)",
        "expect_port[0].from_s": "7 s is not within the send (duration: 5 s)"}
    leave = load_scenario(EXAMPLE / "scenarios" / "leave.yaml", load_lab(EXAMPLE / "lab.yaml"))
    assert [r.leave_after_s for r in leave.receivers] == [None, 1.5]
    assert [(p.host, p.from_s) for p in leave.expect_port] == [("k8s", None), ("k8s-3", 4)]
    case = leave.cases()[0].as_dict()
    assert case["receivers"][1]["leave_after_s"] == 1.5
    assert case["expect_port"][1] == {"host": "k8s-3", "traffic": "none", "from_s": 4}
