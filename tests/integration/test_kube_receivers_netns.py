"""The vagrant backend's pod receivers with real traffic: everything real but the
Kubernetes API.

FAKE, named as such: `KubectlOnNamespaces` stands for kubectl on the k8s node (Kubernetes
cannot run here). It takes the very commands the backend sends (`kubectl apply` of the
rendered sleeper pods, `wait`, `exec ... --`, `delete -l`) and carries them out on network
namespaces: a pod is a netns pod of a real netns lab, given the attachment by the real CNI
macvlan plugin when its manifest carries the Multus annotation, and `exec` runs the command
in it. The source host is that lab's real `mcastsrc` namespace, and iperf is real at both
ends (this machine's 2.1.8: the pods here do not run the image's iperf, whose 2.0.x does
not interoperate with 2.1.x; see DESIGN.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.backends.base import Pod
from lab.backends.netns.backend import NetnsBackend
from lab.backends.vagrant.backend import VagrantBackend
from lab.backends.vagrant.record import VagrantRecord
from lab.cli import main
from lab.command import Result
from lab.host import PodSpec, Process
from lab.kube.manifests import NETWORKS_ANNOTATION, receiver_argv
from lab.model.labfile import load_lab
from lab.model.scenario import resolve_scenarios
from lab.run.artifacts import RunArtifacts
from lab.run.runner import run_case
from lab.state import State
from lab.ui import Reporter
from tests.support import REPO, make_project

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]


class KubectlOnNamespaces:
    """FAKE Kubernetes API: kubectl commands carried out on a netns lab's pods."""

    def __init__(self, name: str, lab: NetnsBackend) -> None:
        self.name = name
        self.lab = lab
        self.commands: list[tuple[str, ...]] = []
        self.manifests: list[dict[str, Any]] = []
        self.pods: dict[str, Pod] = {}

    def _pod(self, argv: Sequence[str]) -> tuple[Pod, list[str]]:
        cut = list(argv).index("--")
        return self.pods[argv[cut - 1]], list(argv[cut + 1:])

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        argv = tuple(argv)
        assert argv[0] == "kubectl", argv
        self.commands.append(argv)
        if "apply" in argv:
            docs = list(yaml.safe_load_all(input or ""))
            self.manifests.extend(docs)
            self._apply(docs)
        elif "exec" in argv:
            pod, command = self._pod(argv)
            return pod.host.run(command, timeout=timeout, check=check, what=what)
        elif "delete" in argv:
            self._delete()
        return Result(argv, 0, "", "", 0.0, timeout)

    def _apply(self, docs: list[dict[str, Any]]) -> None:
        specs = [PodSpec(d["metadata"]["name"], NETWORKS_ANNOTATION in d["metadata"]["annotations"],
                         "-", tuple(receiver_argv(d)), d["spec"]["activeDeadlineSeconds"])
                 for d in docs]
        for pod in self.lab.create_pods(specs):
            self.pods[pod.name] = pod

    def _delete(self) -> None:
        self.lab.delete_pods(list(self.pods.values()))
        self.pods.clear()

    def start(self, argv: Sequence[str], *, timeout: float) -> Process:
        self.commands.append(tuple(argv))
        pod, command = self._pod(argv)
        return pod.host.start(command, timeout=timeout)


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[tuple[VagrantBackend, KubectlOnNamespaces]]:
    project = make_project(tmp_path / "proj")
    shutil.copy(REPO / "Vagrantfile", project.dir / "Vagrantfile")
    lab = load_lab(project.lab_file)
    netns = NetnsBackend(lab, State(project.dir / ".lab" / "netns.json"), Reporter(quiet=True))
    netns.up()
    try:
        state = State(project.dir / ".lab" / lab.name / "state.json")
        state.record(VagrantRecord).status = "up"
        vagrant = VagrantBackend(lab, state, Reporter(quiet=True),
                             options={"provider": "libvirt"})
        node = KubectlOnNamespaces("k8s", netns)
        hosts = {"k8s": node, "mcastsrc": netns.host("mcastsrc")}
        vagrant.host = lambda name: hosts[name]  # type: ignore[method-assign]
        vagrant.lab_nic = lambda name: "eth1"  # type: ignore[method-assign]
        yield vagrant, node
    finally:
        netns.destroy()


def test_pod_scenarios_through_kubectl_with_real_traffic(
        backends: tuple[VagrantBackend, KubectlOnNamespaces], tmp_path: Path) -> None:
    vagrant, node = backends
    scenarios = resolve_scenarios(["pod-multus", "pod-without-multus"], vagrant.lab)
    artifacts = RunArtifacts(tmp_path / "results", "t", {})
    try:
        outcomes = [run_case(s.cases()[0], vagrant, artifacts, Reporter(quiet=True))
                    for s in scenarios]
    finally:
        artifacts.finish("complete")
    attached_case, plain = outcomes
    # Real counts: the attached pod got every datagram the real sender sent.
    attached = attached_case
    assert attached.error is None and attached.verdict == "pass", attached
    assert attached.sent is not None and attached.sent >= 440
    assert attached.receivers[0].received == attached.sent
    assert plain.verdict == "pass" and plain.receivers[0].received == 0
    assert plain.sent is not None and plain.sent >= 440
    # Per-second rows are kept: about one a second of the 5 s stream, adding up.
    rows = attached.receivers[0].intervals
    assert 4 <= len(rows) <= 6 and sum(r.received for r in rows) >= attached.sent - 100
    # The manifests applied carry the annotation only on the attached pod.
    assert [d["metadata"]["annotations"].get(NETWORKS_ANNOTATION) for d in node.manifests] == \
        ["eth1-multicast@eth1", None]
    # iperf ran in the pods through kubectl exec, bound to the right interface.
    execs = [c for c in node.commands if "exec" in c and "-s" in c]  # the receivers
    assert [c[c.index("-B") + 1] for c in execs] == ["224.0.67.67%eth1", "224.0.67.67%eth0"]
    # Every run's pods were deleted by label, and nothing is left recorded or running.
    deletes = [c for c in node.commands if "delete" in c]
    assert len(deletes) == 2 and all("--ignore-not-found" in c for c in deletes)
    assert vagrant.record.pod_runs == {}
    assert node.pods == {} and node.lab.record.pods == {}


def test_lab_manifests_prints_exactly_the_pods_the_runner_applies(
        backends: tuple[VagrantBackend, KubectlOnNamespaces], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    vagrant, node = backends
    (scenario,) = resolve_scenarios(["pod-multus"], vagrant.lab)
    artifacts = RunArtifacts(tmp_path / "results", "t", {})
    try:
        outcome = run_case(scenario.cases()[0], vagrant, artifacts, Reporter(quiet=True))
    finally:
        artifacts.finish("complete")
    assert outcome.verdict == "pass", outcome
    capsys.readouterr()
    assert main(["-f", str(vagrant.lab.source), "manifests", "pod-multus"]) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in printed] == ["NetworkAttachmentDefinition", "Pod"]
    # The very objects: the applied pod equals the printed one, key for key.
    assert node.manifests == printed[1:]
    # And the receiver the runner ran in it is the one the printed pod names.
    (receiver,) = [c for c in node.commands if "exec" in c and "-s" in c]
    assert list(receiver[receiver.index("--") + 1:]) == receiver_argv(printed[1])
