"""Kubernetes pods on several nodes through the vagrant backend, with real traffic:
everything real but the Kubernetes API and Multus.

FAKE, named as such: `KubectlOnNodes` stands for kubectl on the control-plane VM and for
Multus on each node (neither can run here). It takes the very commands the backend sends
(`kubectl apply` of the rendered pods, `wait`, `exec ... --`, `delete -l`) and carries them
out on a three-node netns lab (examples/multinode): a pod goes to the node its
nodeSelector names, and its attachment is made from the lab's one NetworkAttachmentDefinition
by the real CNI macvlan plugin with the real static IPAM plugin, given the pod's address
the way Multus gives it (runtimeConfig "ips", because the NAD declares that capability).
So what is shown is real: the NAD's config works with the real plugins, no two pods on
different nodes share an address, and every pod gets every datagram from iperf's own count.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.backends.netns import cni
from lab.backends.netns.backend import NetnsBackend
from lab.backends.vagrant.backend import VagrantBackend
from lab.backends.vagrant.record import VagrantRecord
from lab.host import PodSpec
from lab.kube.manifests import HOSTNAME_LABEL, NETWORKS_ANNOTATION, nad_manifest, receiver_argv
from lab.model.labfile import load_lab
from lab.model.scenario import resolve_scenarios
from lab.run.artifacts import RunArtifacts
from lab.run.runner import run_case
from lab.state import State
from lab.ui import Reporter
from tests.integration.test_kube_receivers_netns import KubectlOnNamespaces
from tests.support import REPO

pytestmark = pytest.mark.netns

NODES = ("k8s", "k8s-2", "k8s-3")


class KubectlOnNodes(KubectlOnNamespaces):
    """FAKE Kubernetes API and Multus: kubectl commands carried out on a netns lab, each
    pod on the node its nodeSelector names, its attachment made from the lab's NAD."""

    def __init__(self, lab: NetnsBackend, nad: dict[str, Any]) -> None:
        super().__init__("k8s", lab)
        self.nad = json.loads(nad["spec"]["config"])
        self.nad["name"] = nad["metadata"]["name"]  # as Multus adds it
        self.attached: dict[str, tuple[str, dict[str, Any]]] = {}  # pod: node, config
        self.addresses: dict[str, str] = {}  # pod: the address its attachment got

    def _attach(self, name: str, node: str, selection: str) -> None:
        """What Multus does for a pod whose annotation names the NAD with "ips"."""
        (wanted,) = json.loads(selection)
        assert wanted["name"] == self.nad["name"], wanted
        config = {**self.nad, "runtimeConfig": {"ips": wanted["ips"]}}
        result = cni.add(config, node_netns=self.lab.host_netns(node),
                         pod_netns=self.lab.pod_netns(name), ifname=wanted["interface"],
                         container_id=f"{name}-att")
        self.attached[name] = (node, config)
        self.addresses[name] = result["ips"][0]["address"]

    def _apply(self, docs: list[dict[str, Any]]) -> None:
        for d in docs:
            name = d["metadata"]["name"]
            node = d["spec"]["nodeSelector"][HOSTNAME_LABEL]
            (pod,) = self.lab.create_pods([PodSpec(name, False, "-", tuple(receiver_argv(d)),
                                                   d["spec"]["activeDeadlineSeconds"],
                                                   node=node)])
            self.pods[name] = pod
            selection = d["metadata"]["annotations"].get(NETWORKS_ANNOTATION)
            if selection:
                self._attach(name, node, selection)

    def _delete(self) -> None:
        for name, (node, config) in self.attached.items():
            cni.delete(config, node_netns=self.lab.host_netns(node),
                       pod_netns=self.lab.pod_netns(name), ifname=self.lab.lab.attachment.ifname,
                       container_id=f"{name}-att")
        self.attached.clear()
        super()._delete()


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[tuple[VagrantBackend, KubectlOnNodes]]:
    root = tmp_path / "mnode"
    shutil.copytree(REPO / "examples" / "multinode", root)
    data = yaml.safe_load((root / "lab.yaml").read_text())
    data["name"] = "k" + uuid.uuid4().hex[:7]
    (root / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    lab = load_lab(root / "lab.yaml")
    netns = NetnsBackend(lab, State(root / ".lab" / "netns.json"), Reporter(quiet=True))
    netns.up()
    node = None
    try:
        state = State(root / ".lab" / lab.name / "state.json")
        state.record(VagrantRecord).status = "up"
        vagrant = VagrantBackend(lab, state, Reporter(quiet=True),
                                 options={"provider": "libvirt"})
        # The NAD the backend applies at `lab up`, on the nodes' lab NIC.
        node = KubectlOnNodes(netns, nad_manifest(lab, lab.nic))
        hosts = {"k8s": node, **{h: netns.host(h) for h in ("mcastsrc", "k8s-2", "k8s-3")}}
        vagrant.host = lambda name: hosts[name]  # type: ignore[method-assign,assignment]
        vagrant.lab_nic = lambda name: lab.nic  # type: ignore[method-assign]
        # The lab switch is the netns lab's bridge: its ports and its snooping.
        vagrant.port_tx = netns.port_tx  # type: ignore[method-assign]
        vagrant.wait_for_switch = netns.wait_for_switch  # type: ignore[method-assign]
        vagrant.wait_for_leave = netns.wait_for_leave  # type: ignore[method-assign]
        yield vagrant, node
    finally:
        if node is not None and node.pods:
            node._delete()
        netns.destroy()


def test_pods_on_three_nodes_through_kubectl_get_every_datagram(
        backends: tuple[VagrantBackend, KubectlOnNodes], tmp_path: Path) -> None:
    vagrant, node = backends
    lab = vagrant.lab
    (scenario,) = resolve_scenarios(["multinode-fanout"], lab)
    artifacts = RunArtifacts(tmp_path / "results", "t", {})
    try:
        outcome = run_case(scenario.cases()[0], vagrant, artifacts, Reporter(quiet=True))
    finally:
        artifacts.finish("complete")
    assert outcome.error is None, outcome.error
    assert outcome.sent is not None and outcome.sent > 1000
    # Every pod's own iperf report: every datagram, no loss, on all three nodes.
    assert len(outcome.receivers) == 24
    assert all((r.received, r.lost) == (outcome.sent, 0) for r in outcome.receivers), \
        [(r.name, r.received) for r in outcome.receivers]
    assert outcome.verdict == "pass"
    # Placed by nodeSelector: 8 pods on each node, and the node is where the fake made it.
    placed = [d["spec"]["nodeSelector"][HOSTNAME_LABEL] for d in node.manifests]
    assert sorted(placed) == sorted(NODES * 8)
    # One NAD for every node, static IPAM; each pod's address from its node's share of
    # the range, none twice.
    assert node.nad["ipam"] == {"type": "static"} and node.nad["capabilities"] == {"ips": True}
    addresses = node.addresses
    assert len(addresses) == 24 and len(set(addresses.values())) == 24
    for d in node.manifests:
        name, pod_node = d["metadata"]["name"], d["spec"]["nodeSelector"][HOSTNAME_LABEL]
        start, end = lab.node_range(pod_node)
        address = addresses[name].split("/")[0]
        assert int(start) <= int(__import__("ipaddress").IPv4Address(address)) <= int(end)
    # Deleted by label afterwards, nothing left.
    assert vagrant.record.pod_runs == {} and node.pods == {} and node.lab.record.pods == {}
