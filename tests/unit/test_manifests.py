"""Rendered manifests: pods validated offline against the Kubernetes schemas of the pinned
minor (kubernetes-validate), the NAD checked against what Multus reads from it, and `lab
manifests` printing exactly the objects the runner has the vagrant backend apply."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml

from lab.cli import main
from lab.kube.manifests import NETWORKS_ANNOTATION, lab_manifests, nad_manifest, receiver_argv
from lab.model.labfile import load_lab
from lab.model.scenario import Case, resolve_scenarios
from lab.run.runner import receiver_pod_specs
from tests.support import REPO

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

LAB = load_lab(REPO / "lab.yaml")
K8S_VERSION = f"{LAB.kubernetes.minor}.0"


def scenario_manifests(lab: object, case: Case, master: str) -> list[dict]:
    return lab_manifests(LAB, master, receiver_pod_specs(case))


def test_nad_matches_the_walkthrough_shape_and_the_lab() -> None:
    nad = nad_manifest(LAB, "enp0s8")
    assert nad["apiVersion"] == "k8s.cni.cncf.io/v1"
    assert nad["kind"] == "NetworkAttachmentDefinition"
    assert nad["metadata"]["name"] == "eth1-multicast"
    config = json.loads(nad["spec"]["config"])
    assert "name" not in config  # Multus fills it from metadata.name
    assert config["type"] == "macvlan" and config["master"] == "enp0s8"
    assert config["ipam"] == {"type": "host-local", "subnet": str(LAB.subnet),
                              "rangeStart": str(LAB.attachment.range_start),
                              "rangeEnd": str(LAB.attachment.range_end)}


def test_a_scenario_without_pods_renders_none() -> None:
    (loaded,) = resolve_scenarios(["host-baseline"], LAB)
    docs = scenario_manifests(LAB, loaded.cases()[0], "eth1")
    assert [d for d in docs if d["kind"] == "Pod"] == []


@pytest.mark.parametrize("scenario", ["pod-multus", "pod-without-multus", "fanout",
                                      "rate-sweep"])
def test_every_pod_manifest_validates_against_the_pinned_kubernetes(scenario: str) -> None:
    (loaded,) = resolve_scenarios([scenario], LAB)
    for case in loaded.cases():
        docs = scenario_manifests(LAB, case, "eth1")
        pods = [d for d in docs if d["kind"] == "Pod"]
        expected = sum(r.count for r in loaded.receivers if r.placement == "pod")
        assert expected >= 1 and len(pods) == expected  # the loop below runs
        for pod in pods:
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
            attached = NETWORKS_ANNOTATION in pod["metadata"].get("annotations", {})
            command = receiver_argv(pod)  # what the runner runs in the pod
            bound = command[command.index("-B") + 1]
            if attached:
                assert pod["metadata"]["annotations"][NETWORKS_ANNOTATION] == \
                    "eth1-multicast@eth1"
                assert bound.endswith("%eth1")
            else:
                assert bound.endswith("%eth0")
            assert pod["spec"]["activeDeadlineSeconds"] > loaded.duration


def test_an_invalid_pod_is_caught_by_the_validator() -> None:
    """The validator is not a rubber stamp: a wrong type in a pod is refused."""
    (loaded,) = resolve_scenarios(["pod-multus"], LAB)
    pod = scenario_manifests(LAB, loaded.cases()[0], "eth1")[1]
    pod["spec"]["activeDeadlineSeconds"] = "soon"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_lab_manifests_prints_applicable_yaml(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["manifests", "pod-multus", "--master", "enp0s8"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == ["NetworkAttachmentDefinition", "Pod"]
    assert json.loads(docs[0]["spec"]["config"])["master"] == "enp0s8"
    assert main(["manifests", "--master", "eth1;reboot"]) == 2


def test_the_nad_carries_the_macvlan_queue_length_when_lab_yaml_sets_it(
        tmp_path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["attachment"]["bcqueuelen"] = 5000
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    assert main(["manifests", "--master", "enp0s8"]) == 0
    (nad,) = yaml.safe_load_all(capsys.readouterr().out)
    assert json.loads(nad["spec"]["config"])["bcqueuelen"] == 5000
    # Unset (the shipped lab.yaml), the key is absent: the kernel's queue, as Multus pods get.
    assert "bcqueuelen" not in json.loads(nad_manifest(LAB, "eth1")["spec"]["config"])


MULTI = load_lab(REPO / "examples" / "multinode" / "lab.yaml")


def test_several_nodes_share_one_nad_with_static_addresses_named_by_the_lab() -> None:
    """One NAD for every node: host-local keeps its leases per node and would hand out the
    same addresses on each, so the lab names every attached pod's address instead."""
    assert not LAB.static_pod_addresses and MULTI.static_pod_addresses
    config = json.loads(nad_manifest(MULTI, "eth1")["spec"]["config"])
    # The capability at the plugin's top level: libcni injects runtimeConfig from it.
    assert config["capabilities"] == {"ips": True} and config["ipam"] == {"type": "static"}
    assert config["master"] == "eth1" and config["type"] == "macvlan"
    (loaded,) = resolve_scenarios([str(REPO / "examples" / "multinode" / "scenarios" /
                                       "multinode-fanout.yaml")], MULTI)
    pods = [d for d in lab_manifests(MULTI, "eth1", receiver_pod_specs(loaded.cases()[0]))
            if d["kind"] == "Pod"]
    assert len(pods) == 24
    seen: dict[str, list[str]] = {}
    for pod in pods:
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        node = pod["spec"]["nodeSelector"]["kubernetes.io/hostname"]
        (selection,) = json.loads(pod["metadata"]["annotations"][NETWORKS_ANNOTATION])
        assert selection["name"] == "eth1-multicast" and selection["interface"] == "eth1"
        seen.setdefault(node, []).extend(selection["ips"])
    # 8 a node, each node's from the start of its own share of the range, with the prefix.
    assert seen == {n: [f"192.168.56.{first + i}/24" for i in range(8)]
                    for n, first in (("k8s", 100), ("k8s-2", 150), ("k8s-3", 200))}


def test_one_node_keeps_the_seeds_pods_without_placement() -> None:
    (loaded,) = resolve_scenarios(["pod-multus"], LAB)
    (pod,) = [d for d in scenario_manifests(LAB, loaded.cases()[0], "eth1")
              if d["kind"] == "Pod"]
    assert "nodeSelector" not in pod["spec"]


def test_a_pod_beyond_its_nodes_share_has_no_address() -> None:
    assert MULTI.pod_address("k8s-2", 49) == "192.168.56.199/24"
    with pytest.raises(ValueError, match=r"k8s-2 holds 50 attached pods \(192.168.56.150-"
                                         r"192.168.56.199\); pod 51 has no address"):
        MULTI.pod_address("k8s-2", 50)


def test_the_shipped_rbac_validates_against_the_pinned_kubernetes() -> None:
    docs = list(yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text()))
    assert [d["metadata"]["name"] for d in docs] == ["mcast-lab-namespaced",
                                                     "mcast-lab-cluster"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
