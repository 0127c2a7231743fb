"""The Kubernetes objects of a lab, built here and only here: the NetworkAttachmentDefinition
(the walkthrough's `net-config.yml`) and the receiver pods (its `example-mcast-pod.yml`).

`lab manifests` prints what these build, and the vagrant backend applies what these build:
the pods a user reads are the pods the runner uses. A receiver pod only waits; the runner
runs its iperf receiver in it with `kubectl exec`, so it sees iperf's output and exit status.
The command it runs is written on the pod (annotation `mcast-lab/receiver`), so a user
applying the pods by hand can run the same.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from lab import names
from lab.host import PodSpec
from lab.model.lab import Lab

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
# Every node's kubelet labels it with its hostname, which the Vagrantfile sets to the
# lab's host name (as kubeadm's --node-name).
HOSTNAME_LABEL = "kubernetes.io/hostname"
RECEIVER_ANNOTATION = "mcast-lab/receiver"
# A pod ends by itself this long after its receiver would, even if nobody deletes it.
POD_SPARE_S = 300


def _labels(lab: Lab, **more: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": names.PART_OF, names.LABEL_LAB: lab.name, **more}


def nad_manifest(lab: Lab, master: str) -> dict[str, Any]:
    """The NAD on the node's lab NIC `master`; its config has no "name": Multus fills it
    from metadata.name."""
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": lab.attachment.name, "labels": _labels(lab)},
        "spec": {"config": json.dumps(lab.kube_nad_config(master), indent=2)},
    }


def receiver_image(lab: Lab) -> dict[str, str]:
    """The image (and pull policy) of receiver pods: the one the node built from its own
    iperf (never pulled), or the image lab.yaml names."""
    if lab.kubernetes.iperf_image == "node":
        return {"image": names.NODE_BUILT_IMAGE, "imagePullPolicy": "Never"}
    return {"image": lab.kubernetes.iperf_image, "imagePullPolicy": "IfNotPresent"}


def networks(lab: Lab, address: str | None) -> str:
    """The Multus network selection: the seed's short `NAD@ifname`, or, when the lab names
    the pod's address (several nodes), the JSON form that carries it ("ips")."""
    if address is None:
        return f"{lab.attachment.name}@{lab.attachment.ifname}"
    return json.dumps([{"name": lab.attachment.name, "interface": lab.attachment.ifname,
                        "ips": [address]}])


def receiver_pod(lab: Lab, spec: PodSpec, address: str | None = None) -> dict[str, Any]:
    """The pod for one receiver: the Multus annotation when it is attached (with its
    `address` when the lab hands them out), on its node when the lab has several."""
    annotations = {RECEIVER_ANNOTATION: shlex.join(spec.receiver_argv)}
    if spec.attachment:
        annotations[NETWORKS_ANNOTATION] = networks(lab, address)
    lifetime = spec.listen_s + POD_SPARE_S
    placement = {"nodeSelector": {HOSTNAME_LABEL: spec.node or lab.node.name}} \
        if len(lab.nodes) > 1 else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.kube_pod(lab.name, spec.name),
            "labels": _labels(lab, **{names.LABEL_RUN: names.kube_run_label(lab.name,
                                                                             spec.case)}),
            "annotations": annotations,
        },
        "spec": {
            "restartPolicy": "Never",
            # Bounded like every receiver: the pod ends even if nobody deletes it.
            "activeDeadlineSeconds": lifetime,
            "terminationGracePeriodSeconds": 1,
            **placement,
            "containers": [{"name": "receiver", **receiver_image(lab),
                            "command": ["sleep", str(lifetime)]}],
        },
    }


PROBE = "selfcheck"  # the self-check's probe pod, as a receiver name
PROBE_LIFETIME_S = 600


def probe_pod(lab: Lab) -> dict[str, Any]:
    """The self-check's pod: attached like a receiver, running nothing but a wait."""
    address = lab.pod_address(lab.node.name, 0) if lab.static_pod_addresses else None
    pod = receiver_pod(lab, PodSpec(PROBE, True, "self-check", ("sleep", "0"), 0), address)
    del pod["metadata"]["annotations"][RECEIVER_ANNOTATION]
    pod["spec"]["activeDeadlineSeconds"] = PROBE_LIFETIME_S
    pod["spec"]["containers"][0]["command"] = ["sleep", str(PROBE_LIFETIME_S)]
    return pod


def receiver_pods(lab: Lab, specs: list[PodSpec]) -> list[dict[str, Any]]:
    """The receiver pods of one case; with several nodes, each attached pod has the next
    address of its node's share of the range (a case's pods are made and removed
    together, so the next case may take the same addresses)."""
    if not lab.static_pod_addresses:
        return [receiver_pod(lab, spec) for spec in specs]
    taken: dict[str, int] = {}
    pods = []
    for spec in specs:
        node = spec.node or lab.node.name
        address = None
        if spec.attachment:
            address = lab.pod_address(node, taken.get(node, 0))
            taken[node] = taken.get(node, 0) + 1
        pods.append(receiver_pod(lab, spec, address))
    return pods


def lab_manifests(lab: Lab, master: str, pods: list[PodSpec]) -> list[dict[str, Any]]:
    """The NAD and the receiver pods of one case, in the order they are applied."""
    return [nad_manifest(lab, master), *receiver_pods(lab, pods)]


def receiver_argv(pod: dict[str, Any]) -> list[str]:
    """The receiver command a pod built by `receiver_pod` is for."""
    return shlex.split(pod["metadata"]["annotations"][RECEIVER_ANNOTATION])
