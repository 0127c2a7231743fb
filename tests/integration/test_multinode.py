"""Several nodes on one lab switch (examples/multinode), on the netns backend: three node
namespaces, each with its own pods and its own slice of the attachment's range, a Linux
bridge switch that snoops IGMP (or not), real CNI plugins and real iperf2. Port verdicts
come from the bridge ports' own packet counters.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.backends.netns.backend import NetnsBackend
from lab.backends.netns.netlink import Netlink
from lab.host import PodSpec
from lab.model.labfile import load_lab
from lab.run.iperf import UDP_PAYLOAD_BYTES
from lab.run.outcome import PORT_NONE_SHARE
from lab.state import State
from lab.ui import Reporter
from tests.support import REPO, Project

pytestmark = pytest.mark.netns

NODES = ("k8s", "k8s-2", "k8s-3")


def _project(tmp_path: Path, **switch: bool) -> Project:
    """examples/multinode under a name of its own, its switch as asked."""
    root = tmp_path / "mnode"
    shutil.copytree(REPO / "examples" / "multinode", root)
    data = yaml.safe_load((root / "lab.yaml").read_text())
    data["name"] = "m" + uuid.uuid4().hex[:7]
    data["switch"].update(switch)
    (root / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return Project(root, data["name"])


def _summary(project: Project) -> dict[str, Any]:
    (run,) = sorted((project.dir / "results").iterdir())
    return json.loads((run / "summary.json").read_text())


def _case(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in summary["scenarios"] if c["name"] == name)


def _ports(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["host"]: p for p in case["ports"]}


def _backend(project: Project) -> NetnsBackend:
    lab = load_lab(project.lab_file)
    return NetnsBackend(lab, State(project.dir / ".lab" / lab.name / "state.json"),
                        Reporter(quiet=True))


def test_three_nodes_with_snooping_fan_out_and_keep_the_group_off_a_node_without_members(
        tmp_path: Path) -> None:
    project = _project(tmp_path, igmp_snooping=True, igmp_querier=True)
    try:
        project.lab("up", check_codes=(0,))
        backend = _backend(project)
        with Netlink(backend.switch_netns) as link:
            assert link.bridge("br0") == {"snooping": 1, "querier": 1, "igmp_version": 3}
        # A pod without the attachment joins on eth0: its join never reaches the lab
        # switch, and the run must not wait for it there.
        (project.dir / "plain.yaml").write_text(yaml.safe_dump({
            "name": "plain", "group": "224.0.67.76", "port": 5011, "rate": "1M",
            "duration": 2, "sender": {"host": "mcastsrc"},
            "receivers": [{"name": "plain", "placement": "pod", "node": "k8s-2",
                           "attachment": False, "expect": {"receive": False}},
                          {"name": "nic", "host": "k8s-2", "expect": {"receive": True}}]}))
        proc = project.lab("run", "multinode-fanout", "snooping", "multinode-hosts", "leave",
                           str(project.dir / "plain.yaml"), timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        summary = _summary(project)

        fan = _case(summary, "multinode-fanout")
        sent = fan["sent"]
        assert sent and sent > 1000
        assert len(fan["receivers"]) == 24
        per_node = {n: 0 for n in NODES}
        for r in fan["receivers"]:
            # Counts from each pod's own iperf report: every datagram, on every node.
            assert (r["received"], r["lost"], r["verdict"]) == (sent, 0, "pass"), r
            per_node[r["host"]] += 1
        assert per_node == {n: 8 for n in NODES}
        assert all(p["packets"] >= sent and p["verdict"] == "pass"
                   for p in _ports(fan).values())

        snoop = _case(summary, "snooping")
        ports = _ports(snoop)
        assert snoop["verdict"] == "pass"
        assert ports["k8s"]["packets"] >= snoop["sent"] <= ports["k8s-2"]["packets"]
        # The port toward the node where nobody joined carried none of the stream.
        assert ports["k8s-3"]["bytes"] <= PORT_NONE_SHARE * snoop["sent"] * \
            UDP_PAYLOAD_BYTES, ports
        assert ports["k8s-3"]["packets"] < snoop["sent"] // 20, ports  # not one in twenty
        assert "switch port of k8s-3" in proc.stdout

        hosts = _case(summary, "multinode-hosts")
        assert {r["host"] for r in hosts["receivers"]} == set(NODES)
        assert all(r["received"] == hosts["sent"] for r in hosts["receivers"])

        # The only member on k8s-3 left 1.5 s into an 8 s send: it got about that share,
        # and from 4 s on (the querier's last-member queries done) its port carried none.
        leave = _case(summary, "leave")
        stays, leaves = (next(r for r in leave["receivers"] if r["name"] == n)
                         for n in ("stays", "leaves"))
        assert stays["received"] == leave["sent"] and stays["host"] == "k8s"
        assert 0.10 * leave["sent"] < leaves["received"] < 0.30 * leave["sent"], leaves
        assert leaves["host"] == "k8s-3" and not leaves["complete"]
        late = _ports(leave)["k8s-3"]
        assert late["verdict"] == "pass" and late["bytes"] <= PORT_NONE_SHARE * \
            leave["sent"] * UDP_PAYLOAD_BYTES, late
        assert leave["verdict"] == "pass"
        assert backend.pod_hosts() == {}  # the pod deleted mid-run is gone, as the others
        plain = _case(summary, "plain")
        assert plain["verdict"] == "pass" and [r["received"] for r in plain["receivers"]] \
            == [0, plain["sent"]], plain
    finally:
        project.lab("destroy", timeout=120)
    assert project.namespaces() == []


def test_without_snooping_every_port_floods_and_the_snooping_verdict_fails(
        tmp_path: Path) -> None:
    project = _project(tmp_path, igmp_snooping=False, igmp_querier=False)
    try:
        project.lab("up", check_codes=(0,))
        with Netlink(_backend(project).switch_netns) as link:
            assert link.bridge("br0")["snooping"] == 0
        # The lab file now asks for snooping: the lab that is up does not have it, and a
        # second `lab up` says so rather than judge the old bridge by the new file.
        data = yaml.safe_load(project.lab_file.read_text())
        changed = dict(data, switch={"igmp_snooping": True, "igmp_querier": True})
        (project.dir / "changed.yaml").write_text(yaml.safe_dump(changed))
        again = Project(project.dir, project.name, "changed.yaml").lab("up")
        assert again.returncode == 3 and "is up with another lab switch" in again.stderr, \
            again.stderr
        proc = project.lab("run", "snooping", "leave", timeout=300)
        assert proc.returncode == 1, proc.stdout + proc.stderr  # a failed expectation
        snoop = _case(_summary(project), "snooping")
        ports = _ports(snoop)
        assert snoop["verdict"] == "fail"
        # Every receiver got everything: only the port expectation failed, and the port
        # toward k8s-3 carried the whole stream, flooded.
        assert all(r["verdict"] == "pass" for r in snoop["receivers"])
        assert ports["k8s-3"]["packets"] >= snoop["sent"] and \
            ports["k8s-3"]["verdict"] == "fail"
        assert "switch port of k8s-3" in proc.stdout and "FAIL" in proc.stdout
        # Flooding goes on after the last member left, too.
        late = _ports(_case(_summary(project), "leave"))["k8s-3"]
        assert late["verdict"] == "fail" and late["packets"] > 0.3 * \
            _case(_summary(project), "leave")["sent"], late
    finally:
        project.lab("destroy", timeout=120)
    assert project.namespaces() == []


def test_each_node_hands_out_addresses_from_its_own_slice(tmp_path: Path) -> None:
    project = _project(tmp_path)
    try:
        project.lab("up", check_codes=(0,))
        backend = _backend(project)
        specs = [PodSpec(f"a{i}", True, "t", ("iperf", "-s"), 60, NODES[i % 3])
                 for i in range(9)]
        pods = backend.create_pods(specs)
        try:
            seen: dict[str, ipaddress.IPv4Address] = {}
            for spec, pod in zip(specs, pods, strict=True):
                out = pod.host.run(["ip", "-4", "-o", "addr", "show", "eth1"],
                                   timeout=10).stdout
                addr = ipaddress.IPv4Interface(out.split()[3]).ip
                start, end = backend.lab.node_range(spec.node)
                assert start <= addr <= end, (spec.node, addr)
                seen[spec.name] = addr
                eth0 = pod.host.run(["ip", "-4", "-o", "addr", "show", "eth0"],
                                    timeout=10).stdout
                assert ipaddress.IPv4Interface(eth0.split()[3]).ip in \
                    backend.lab.node_pod_subnet(spec.node)
            assert len(set(seen.values())) == 9
        finally:
            backend.delete_pods(pods)
    finally:
        project.lab("destroy", timeout=120)
    assert project.namespaces() == []
