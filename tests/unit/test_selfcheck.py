"""The self-check's Kubernetes part, the archive's scrubbing. The host part and `lab logs`
run for real on namespaces (test_netns_lab.py) and VMs (test_vm_lab.py).

FAKE, named as such: `ScriptedNode` stands for the k8s node, answering kubectl and shell
commands as a node would (no Kubernetes API can run here). What is checked is the
self-check's reading of those answers, the order, stopping at the first failure, and that
the probe pod is always deleted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from lab.command import Result
from lab.diagnose.archive import REDACTED, scrub
from lab.diagnose.selfcheck import kube_checks
from lab.model.labfile import load_lab
from tests.support import REPO

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

LAB = load_lab(REPO / "lab.yaml")


class ScriptedNode:
    """FAKE k8s node: the first answer whose key is in the command line wins."""

    def __init__(self, name: str, answers: dict[str, tuple[int, str]]) -> None:
        self.name = name
        self.answers = answers
        self.commands: list[str] = []
        self.inputs: list[str] = []

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        line = " ".join(argv)
        self.commands.append(line)
        if input is not None:
            self.inputs.append(input)
        status, out = next((a for key, a in self.answers.items() if key in line), (0, ""))
        result = Result(tuple(argv), status, out, "" if status == 0 else out, 0.01, timeout)
        if check and not result.ok:
            from lab.errors import CommandFailed

            raise CommandFailed(result, what)
        return result


def _healthy(**changes: tuple[int, str]) -> dict[str, tuple[int, str]]:
    status = [{"name": "cbr0", "interface": "eth0", "ips": ["10.244.0.5"]},
              {"name": "default/eth1-multicast", "interface": "eth1",
               "ips": ["192.168.56.13"]}]
    answers = {
        "get node": (0, "True"),
        "test -s /etc/cni/net.d/00-multus.conf": (0, ""),
        "network-attachment-definitions": (0, "networkattachmentdefinition/eth1-multicast"),
        "network-status": (0, json.dumps(status)),
        "/sys/class/net/eth1/iflink": (0, "3\n"),
        "/sys/class/net/enp0s8/ifindex": (0, "3\n"),
        "macvlan": (0, "CNI macvlan plugin v1.6.2\n"),
    }
    return {**changes, **{k: v for k, v in answers.items() if k not in changes}}


def test_a_healthy_node_passes_every_check_and_the_probe_is_deleted() -> None:
    node = ScriptedNode("k8s", _healthy())
    checks = kube_checks(LAB, node, "enp0s8")  # type: ignore[arg-type]
    assert [(c.name, c.ok) for c in checks] == [
        ("node-ready", True), ("multus-config", True), ("nad", True),
        ("probe-attachment", True)], checks
    assert "192.168.56.13 on enp0s8" in checks[-1].message
    assert "CNI macvlan plugin v1.6.2" in checks[-1].message
    # The probe was really made, with the attachment's annotation, before it was read.
    (apply,) = [i for i, c in enumerate(node.commands) if " apply " in c]
    read = next(i for i, c in enumerate(node.commands) if "network-status" in c)
    assert apply < read
    assert "k8s.v1.cni.cncf.io/networks: eth1-multicast@eth1" in node.inputs[0]
    deletes = [c for c in node.commands if " delete pod " in c]
    assert len(deletes) == 2  # a probe a killed run left, and this one, by label
    assert node.commands[-1] == deletes[-1]  # the last thing done


def test_the_first_failure_stops_the_chain_and_says_where_to_look() -> None:
    node = ScriptedNode("k8s", _healthy(**{"test -s /etc/cni/net.d/00-multus.conf": (1, "")}))
    checks = kube_checks(LAB, node, "enp0s8")  # type: ignore[arg-type]
    assert [(c.name, c.ok) for c in checks] == [("node-ready", True),
                                                 ("multus-config", False)]
    assert "pods would get no attachment" in checks[-1].message
    assert "multus step's log" in checks[-1].fix
    assert not any(" apply " in c for c in node.commands)  # no probe was made


def test_with_several_nodes_every_node_must_be_ready_and_the_probe_names_its_address(
        ) -> None:
    multi = load_lab(REPO / "examples" / "multinode" / "lab.yaml")
    node = ScriptedNode("k8s", _healthy(**{"get node k8s-3": (0, "False")}))
    (ready,) = kube_checks(multi, node, "enp0s8")  # type: ignore[arg-type]
    assert not ready.ok and ready.message == ("node k8s Ready: True; node k8s-2 Ready: True; "
                                              "node k8s-3 Ready: False")
    assert "describe node k8s-3" in ready.fix and "kubeadm-join step's log" in ready.fix
    status = [{"name": "default/eth1-multicast", "interface": "eth1",
               "ips": ["192.168.56.100"]}]
    node = ScriptedNode("k8s", _healthy(**{"network-status": (0, json.dumps(status))}))
    assert all(c.ok for c in kube_checks(multi, node, "enp0s8"))  # type: ignore[arg-type]
    # The probe asked for the first address of the control plane's slice, on that node.
    assert '"ips": ["192.168.56.100/24"]' in node.inputs[0]
    assert "kubernetes.io/hostname: k8s" in node.inputs[0]


def test_a_probe_without_the_attachment_or_off_the_lab_nic_fails() -> None:
    only_eth0 = json.dumps([{"name": "cbr0", "interface": "eth0", "ips": ["10.244.0.5"]}])
    node = ScriptedNode("k8s", _healthy(**{"network-status": (0, only_eth0)}))
    (*_, probe) = kube_checks(LAB, node, "enp0s8")  # type: ignore[arg-type]
    assert not probe.ok and "has no eth1 from eth1-multicast" in probe.message
    node = ScriptedNode("k8s", _healthy(**{"/sys/class/net/enp0s8/ifindex": (0, "7\n")}))
    (*_, probe) = kube_checks(LAB, node, "enp0s8")  # type: ignore[arg-type]
    assert not probe.ok and "is not enp0s8 (7)" in probe.message
    assert " delete pod " in node.commands[-1]


def test_a_probe_that_never_gets_ready_fails_with_kubectls_words() -> None:
    never = (1, "timed out waiting for the condition")
    node = ScriptedNode("k8s", _healthy(**{"--for=condition=Ready": never}))
    (*_, probe) = kube_checks(LAB, node, "enp0s8")  # type: ignore[arg-type]
    assert probe.name == "probe-pod" and not probe.ok
    assert "not Ready" in probe.message
    assert " delete pod " in node.commands[-1]


def test_scrub_removes_lines_with_key_material_and_keeps_the_rest() -> None:
    text = ("ok line\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n"
            "    client-certificate-data: LS0t\n    token: abcdef\n"
            "kubeadm join 1.2.3.4:6443 --token abcdef.0123456789abcdef\nlast\n")
    out = scrub(text).splitlines()
    assert out[0] == "ok line" and out[-1] == "last" and out[2] == "MIIEow"
    assert out[1] == out[3] == out[4] == out[5] == REDACTED
