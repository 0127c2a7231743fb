"""The pod-receiver path of the vagrant backend, up to the kubectl boundary.

FAKE, named as such: Kubernetes cannot run on these machines, so the k8s node is
`FakeKubectlNode`, which records every command and answers like kubectl would: pods apply
and become Ready, `cat /proc/net/igmp` in a pod shows the group joined on the pod's
interface, and iperf in a pod prints a real captured iperf 2.1.8 report. Everything above
it (manifests, the runner, exec wrapping, deletion on success and on failure) is real.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from lab.backends.vagrant import VagrantBackend
from lab.command import Result
from lab.errors import BackendError
from lab.labfile import load_lab
from lab.results import RunArtifacts
from lab.runner import run_case
from lab.scenario import resolve_scenarios
from lab.state import State
from lab.ui import Reporter
from tests.conftest import REPO

CAPTURED = (REPO / "tests" / "data" / "iperf" / "server-2s-5M.csv").read_text()
CLIENT = "[  1] Sent 896 datagrams\n"  # the sender of that same captured stream
IGMP = ("Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n"
        "1\t{iface}      :     2      V3\n\t\t\t\t{group}     1 0:00000000\t\t0\n")


def _ok(argv: Sequence[str], out: str = "") -> Result:
    return Result(tuple(argv), 0, out, "", 0.01, 10)


class FakeProcess:
    def __init__(self, argv: Sequence[str], output: str) -> None:
        self.argv, self._output, self.stopped = tuple(argv), output, False

    def running(self) -> bool:
        return not self.stopped

    def output(self) -> str:
        return self._output

    def terminate(self) -> None:
        self.stopped = True

    def error_output(self) -> str:
        return ""

    def stop(self) -> Result:
        self.stopped = True
        return _ok(self.argv, self._output)


class FakeKubectlNode:
    """FAKE k8s node: records kubectl commands, answers as a working cluster would."""

    def __init__(self, name: str, fail_wait: bool = False) -> None:
        self.name = name
        self.fail_wait = fail_wait
        self.commands: list[tuple[str, ...]] = []
        self.inputs: list[str] = []
        self.pods: dict[str, dict] = {}

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        argv = tuple(argv)
        self.commands.append(argv)
        if input is not None:
            self.inputs.append(input)
        if "apply" in argv:
            for doc in yaml.safe_load_all(input or ""):
                self.pods[doc["metadata"]["name"]] = doc
        if "wait" in argv and self.fail_wait:
            return Result(argv, 1, "", "timed out waiting for the condition", 1, 10)
        if "exec" in argv and argv[-2:] == ("cat", "/proc/net/igmp"):
            pod = self.pods[argv[argv.index("--") - 1]]
            attached = "k8s.v1.cni.cncf.io/networks" in pod["metadata"].get("annotations", {})
            return _ok(argv, IGMP.format(iface="eth1" if attached else "eth0",
                                         group="434300E0"))  # 224.0.67.67
        if "delete" in argv:
            self.pods.clear()
        return _ok(argv)

    def start(self, argv: Sequence[str], *, timeout: float) -> FakeProcess:
        self.commands.append(tuple(argv))
        pod = self.pods[argv[argv.index("--") - 1]]
        attached = "k8s.v1.cni.cncf.io/networks" in pod["metadata"].get("annotations", {})
        return FakeProcess(argv, CAPTURED if attached else "")


class FakeSender(FakeKubectlNode):
    def run(self, argv: Sequence[str], **kw: object) -> Result:  # type: ignore[override]
        self.commands.append(tuple(argv))
        return _ok(argv, CLIENT)


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[VagrantBackend, dict]:
    shutil.copy(REPO / "lab.yaml", tmp_path / "lab.yaml")
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    lab = load_lab(tmp_path / "lab.yaml")
    state = State(tmp_path / ".lab" / lab.name / "state.json")
    state.data["status"] = "up"
    b = VagrantBackend(lab, state, Reporter(quiet=True), "libvirt")
    hosts = {"k8s": FakeKubectlNode("k8s"), "mcastsrc": FakeSender("mcastsrc")}
    monkeypatch.setattr(b, "host", lambda name: hosts[name])
    monkeypatch.setattr(b, "lab_nic", lambda name: "eth1")
    return b, hosts


def test_pod_scenarios_through_kubectl(backend, tmp_path: Path) -> None:
    b, hosts = backend
    node = hosts["k8s"]
    scenarios = resolve_scenarios(["pod-multus", "pod-without-multus"], b.lab)
    artifacts = RunArtifacts(tmp_path / "results", "t", {})
    outcomes = [run_case(s.cases()[0], b, artifacts, Reporter(quiet=True)) for s in scenarios]
    artifacts.finish("complete")
    attached, plain = outcomes
    # Counts come from the captured iperf report, judged against the sender's count.
    assert attached["sent"] == 895 and attached["receivers"][0]["received"] == 895
    assert attached["verdict"] == "pass"
    assert plain["receivers"][0]["received"] == 0 and plain["verdict"] == "pass"
    # The manifests applied carry the annotation only on the attached pod.
    applied = [d for text in node.inputs for d in yaml.safe_load_all(text)]
    assert [d["metadata"].get("annotations") for d in applied] == \
        [{"k8s.v1.cni.cncf.io/networks": "eth1-multicast@eth1"}, None]
    # iperf ran in the pods through kubectl exec, bound to the right interface.
    execs = [c for c in node.commands if "exec" in c and "iperf" in c]
    assert [c[c.index("-B") + 1] for c in execs] == ["224.0.67.67%eth1", "224.0.67.67%eth0"]
    assert all(c[0] == "kubectl" and c[c.index("--") - 1].startswith("mcast-pod-")
               for c in execs)
    # Every run's pods were deleted by label, and nothing is left recorded.
    deletes = [c for c in node.commands if "delete" in c]
    assert len(deletes) == 2 and all("--ignore-not-found" in c for c in deletes)
    assert b.state.mapping("pod_runs") == {}


def test_pods_not_ready_are_described_and_deleted(backend) -> None:
    b, hosts = backend
    hosts["k8s"].fail_wait = True
    from lab.backends.base import PodSpec

    with pytest.raises(BackendError, match="not Ready") as info:
        b.create_pods([PodSpec("pod-attached", True)])
    assert "timed out waiting" in str(info.value)
    commands = hosts["k8s"].commands
    assert any("describe" in c for c in commands)
    assert "delete" in commands[-1]
    assert b.state.mapping("pod_runs") == {}


def test_pods_refused_when_kubernetes_is_not_provisioned(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["kubernetes"]["provision"] = False
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    lab = load_lab(tmp_path / "lab.yaml")
    b = VagrantBackend(lab, State(tmp_path / "s.json"), Reporter(quiet=True), "libvirt")
    from lab.backends.base import PodSpec

    with pytest.raises(BackendError, match="kubernetes.provision: false"):
        b.create_pods([PodSpec("p", True)])
