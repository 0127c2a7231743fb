"""The cluster backend's lab file section, its objects (validated offline against the
pinned Kubernetes schemas, and against the restricted Pod Security profile's rules), the
rights its doctor asks for (exactly what deploy/rbac.yaml grants), and its watch reader."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from lab.backends.cluster.checks import NAMESPACED_RIGHTS, NODE_RIGHTS, OWN_NAMESPACE_RIGHTS
from lab.errors import ConfigError
from lab.kube import cluster as objects
from lab.kube.watch import _stuck, json_stream
from lab.model.labfile import load_lab
from tests.support import REPO

pytestmark = pytest.mark.portable

EXAMPLE = REPO / "examples" / "cluster" / "lab.yaml"
K8S_VERSION = "1.36.0"


def test_the_example_cluster_lab_loads_without_vagrant_or_kubernetes_sections() -> None:
    lab = load_lab(EXAMPLE)
    assert lab.backend == "cluster" and lab.cluster is not None
    assert lab.cluster.context == "my-cluster"
    assert lab.cluster.node_name("k8s") == "worker-1" and lab.cluster.sender_node == "k8s-2"
    assert lab.cluster.kubeconfig == Path("~/.kube/config").expanduser()


def test_a_cluster_section_names_each_problem_by_key(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cluster"] = {"kubeconfig": "kc", "nodes": {"k9": "w"}, "sender_node": "mcastsrc",
                       "nic": "eth1", "image": "x", "colour": "blue"}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as failed:
        load_lab(tmp_path / "lab.yaml")
    said = str(failed.value)
    for key in ("cluster.context: is required", "cluster.nodes.k9: 'k9' is no node host",
                "cluster.sender_node: 'mcastsrc' is no node host", "cluster.colour: unknown"):
        assert key in said, said


def _pods() -> list[dict]:
    lab = load_lab(EXAMPLE)
    return [objects.command_pod(lab, "o" * 16, "p1", node="worker-1", image="i",
                                command=["iperf", "-s"], lifetime_s=30, role="receiver",
                                run="r", address="192.168.56.100/24"),
            objects.command_pod(lab, "o" * 16, "p2", node="worker-1", image="i",
                                command=["iperf", "-s"], lifetime_s=30, role="command",
                                host_network=True)]


def test_pods_namespace_and_nad_validate_against_the_pinned_kubernetes() -> None:
    lab = load_lab(EXAMPLE)
    docs = [*_pods(), objects.namespace_manifest(lab, "mycluster-abc123", "o" * 16, False),
            objects.nad_manifest(lab, "eth1", "o" * 16)]
    for doc in docs:
        if doc["kind"] != "NetworkAttachmentDefinition":  # a CRD: no schema here
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    nad = json.loads(docs[-1]["spec"]["config"])
    assert nad["ipam"] == {"type": "static"} and nad["capabilities"] == {"ips": True}
    assert nad["master"] == "eth1"


def test_an_attached_pod_meets_the_restricted_profile_and_a_host_one_is_marked() -> None:
    attached, host = _pods()
    spec, container = attached["spec"], attached["spec"]["containers"][0]
    # The restricted profile's rules (Pod Security Standards), one by one.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}
    assert "hostNetwork" not in spec and "volumes" not in spec
    assert container["command"] == ["iperf", "-s"]  # iperf is the container's command
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "worker-1"}
    (selection,) = json.loads(attached["metadata"]["annotations"][
        "k8s.v1.cni.cncf.io/networks"])
    assert selection == {"name": "eth1-multicast", "interface": "eth1",
                         "ips": ["192.168.56.100/24"]}
    assert host["spec"]["hostNetwork"] is True
    own = objects.namespace_manifest(load_lab(EXAMPLE), "n", "o", host_network=True)
    assert own["metadata"]["labels"][objects.PSS_ENFORCE] == "privileged"


def test_the_rights_doctor_asks_for_are_exactly_those_the_shipped_role_grants() -> None:
    namespaced, cluster = yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text())

    def granted(doc: dict) -> set[tuple[str, str]]:
        found = set()
        for rule in doc["rules"]:
            for resource in rule["resources"]:
                group = rule["apiGroups"][0]
                name = f"{resource}.{group}" if group else resource
                found |= {(verb, name) for verb in rule["verbs"]}
        return found

    assert granted(namespaced) == set(NAMESPACED_RIGHTS)
    assert granted(cluster) == set(OWN_NAMESPACE_RIGHTS + NODE_RIGHTS)


def test_what_kubectl_watch_prints_is_read_object_by_object() -> None:
    first = {"kind": "Pod", "metadata": {"name": "a"}}
    listed = {"kind": "PodList", "items": [{"kind": "Pod", "metadata": {"name": "b"}}]}
    text = json.dumps(first, indent=4) + "\n" + json.dumps(listed) + "\n{\"kind\": \"Po"
    objects_seen, used = json_stream(text)
    assert [o["metadata"]["name"] for o in objects_seen] == ["a", "b"]
    assert text[used:].strip() == "{\"kind\": \"Po"  # half an object waits for the rest


def test_a_pod_that_cannot_start_is_told_apart_from_one_still_starting() -> None:
    pulling = {"status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert _stuck(pulling) is None
    failed = {"status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}}
    assert _stuck(failed) == "ImagePullBackOff: no such image"
    ended = {"status": {"phase": "Failed", "containerStatuses": [
        {"state": {"terminated": {"exitCode": 1}}}]}}
    assert _stuck(ended) is None and objects.container_exit(ended) == 1
