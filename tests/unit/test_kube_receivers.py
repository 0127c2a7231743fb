"""The vagrant backend's pod receivers when Kubernetes says no: pods never Ready, or no
Kubernetes on the node. (With traffic: tests/integration/test_kube_receivers_netns.py.)

FAKE, named as such: Kubernetes cannot run on these machines, so the k8s node is
`FakeKubectlNode`, which records every command and answers like kubectl would, here with
`kubectl wait` timing out. Everything above it (manifests, describe and events on the
timeout, deletion by label) is real.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from lab.backends.vagrant.backend import VagrantBackend
from lab.backends.vagrant.record import VagrantRecord
from lab.command import Result
from lab.errors import BackendError
from lab.model.labfile import load_lab
from lab.state import State
from lab.ui import Reporter
from tests.support import REPO


def _ok(argv: Sequence[str], out: str = "") -> Result:
    return Result(tuple(argv), 0, out, "", 0.01, 10)


class FakeKubectlNode:
    """FAKE k8s node: records kubectl commands, answers as a cluster would."""

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
        if "delete" in argv:
            self.pods.clear()
        return _ok(argv)


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[VagrantBackend, dict]:
    shutil.copy(REPO / "lab.yaml", tmp_path / "lab.yaml")
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    lab = load_lab(tmp_path / "lab.yaml")
    state = State(tmp_path / ".lab" / lab.name / "state.json")
    state.record(VagrantRecord).status = "up"
    b = VagrantBackend(lab, state, Reporter(quiet=True),
                             options={"provider": "libvirt"})
    hosts = {"k8s": FakeKubectlNode("k8s")}
    monkeypatch.setattr(b, "host", lambda name: hosts[name])
    monkeypatch.setattr(b, "lab_nic", lambda name: "eth1")
    return b, hosts


def test_pods_not_ready_are_described_and_deleted(backend) -> None:
    b, hosts = backend
    hosts["k8s"].fail_wait = True
    from lab.host import PodSpec

    with pytest.raises(BackendError, match="not Ready") as info:
        b.create_pods([PodSpec("pod-attached", True, "pod-multus", ("iperf", "-s"), 60)])
    assert "timed out waiting" in str(info.value)
    commands = hosts["k8s"].commands
    assert any("describe" in c for c in commands)
    assert "delete" in commands[-1]
    assert b.record.pod_runs == {}


def test_pods_refused_when_kubernetes_is_not_provisioned(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["kubernetes"]["provision"] = False
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    lab = load_lab(tmp_path / "lab.yaml")
    b = VagrantBackend(lab, State(tmp_path / "s.json"), Reporter(quiet=True),
                             options={"provider": "libvirt"})
    from lab.host import PodSpec

    with pytest.raises(BackendError, match="kubernetes.provision: false"):
        b.create_pods([PodSpec("p", True, "pod-multus", ("iperf", "-s"), 60)])


def test_more_receiver_pods_than_a_node_runs_are_refused_before_any_is_made(backend) -> None:
    b, hosts = backend
    from lab.host import PodSpec

    specs = [PodSpec(f"fanout-{i}", True, "fanout", ("iperf", "-s"), 60) for i in range(101)]
    with pytest.raises(BackendError, match=r"101 receiver pods on k8s: the kubelet runs "
                       r"at most 110 pods a node \(maxPods\)"):
        b.create_pods(specs)
    assert hosts["k8s"].commands == []  # nothing was applied


def test_lab_ssh_without_a_command_asks_for_the_vms_own_shell(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's $SHELL (zsh on macOS) need not exist on the VM: with no command, ssh
    is given none and the VM's login shell answers; a command is quoted whole."""
    from lab.remote.ssh import SshTarget

    monkeypatch.setenv("SHELL", "/bin/zsh")
    lab = load_lab(REPO / "lab.yaml")
    b = VagrantBackend(lab, State(tmp_path / "s.json"), Reporter(quiet=True),
                       options={"provider": "libvirt"})
    b.record.ssh["k8s"] = SshTarget("k8s", "192.168.121.5", 22, "vagrant", "/keys/k8s")
    shell = b.interactive_argv("k8s", [])
    assert shell[-1] == "vagrant@192.168.121.5" and "/bin/zsh" not in shell
    assert shell[:2] == ["ssh", "-t"] and shell[4:6] == ["-p", "22"]
    command = b.interactive_argv("k8s", ["ip", "-br", "addr", "show", "dev", "eth 1"])
    assert command[-2:] == ["vagrant@192.168.121.5", "ip -br addr show dev 'eth 1'"]
