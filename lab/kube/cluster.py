"""The objects the lab makes on a cluster of the user's (the cluster backend): its
namespace, the NAD, and pods whose container runs one command (an iperf receiver or
sender, a probe) and ends by itself.

Unlike the lab's own node (`lab.kube.manifests`, where a pod waits and iperf is run in it
by exec), a receiver here runs iperf as the container's command and its report is read
from the pod's log: a process started by `kubectl exec` outlives a client that drops, and
on a shared cluster nothing may be left running. Pods follow the restricted Pod Security
profile (iperf needs no capability to join or send multicast); only a pod on the host
network (a receiver on a node's own NIC) cannot, and is made only where the lab file
allows it.
"""

from __future__ import annotations

import json
from typing import Any

from lab import names
from lab.host import PodSpec
from lab.kube.manifests import HOSTNAME_LABEL, NETWORKS_ANNOTATION, POD_SPARE_S
from lab.model.lab import Lab

PSS_ENFORCE = "pod-security.kubernetes.io/enforce"
# A pod's role in the lab (receiver, send, host, probe): `lab status` and cleanup read it.
LABEL_ROLE = "mcast-lab/role"
# Which machine and project made it: destroy finds a crashed run's leftovers by it, and
# never touches another user's lab of the same name.
LABEL_OWNER = "mcast-lab/owner"
NOBODY = 65534


def labels(lab: Lab, owner: str, **more: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": names.PART_OF, names.LABEL_LAB: lab.name,
            LABEL_OWNER: owner, **more}


def namespace_manifest(lab: Lab, name: str, owner: str, host_network: bool
                       ) -> dict[str, Any]:
    """The lab's own namespace: restricted pods only, unless the lab runs host-network
    receivers (which only `privileged` admits)."""
    level = "privileged" if host_network else "restricted"
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {**labels(lab, owner), PSS_ENFORCE: level}}}


def nad_manifest(lab: Lab, master: str, owner: str) -> dict[str, Any]:
    """The NAD on the nodes' lab NIC, with static IPAM: every attached pod names its
    address (host-local would hand out the same addresses on each node)."""
    config = lab.attachment.cni_config(master=master, subnet=lab.subnet, static=True)
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": lab.attachment.name, "labels": labels(lab, owner)},
            "spec": {"config": json.dumps(config, indent=2)}}


def networks(lab: Lab, address: str) -> str:
    """Multus's network selection (JSON form) with the pod's address ("ips")."""
    return json.dumps([{"name": lab.attachment.name, "interface": lab.attachment.ifname,
                        "ips": [address]}])


def command_pod(lab: Lab, owner: str, name: str, *, node: str, image: str,
                command: list[str], lifetime_s: int, role: str, run: str = "",
                address: str | None = None, host_network: bool = False) -> dict[str, Any]:
    """A pod that runs `command` once on `node` (the cluster's node name); attached with
    `address` when given; on the node's own network when `host_network`."""
    more = {LABEL_ROLE: role, **({names.LABEL_RUN: run} if run else {})}
    metadata: dict[str, Any] = {"name": name, "labels": labels(lab, owner, **more)}
    if address is not None:
        metadata["annotations"] = {NETWORKS_ANNOTATION: networks(lab, address)}
    container: dict[str, Any] = {"name": "iperf", "image": image,
                                 "imagePullPolicy": "IfNotPresent", "command": command}
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # Bounded twice: the command's own end (iperf -t), and this if it hangs.
        "activeDeadlineSeconds": lifetime_s + POD_SPARE_S,
        "terminationGracePeriodSeconds": 1,
        "automountServiceAccountToken": False,
        "nodeSelector": {HOSTNAME_LABEL: node},
        "containers": [container],
    }
    if host_network:
        spec["hostNetwork"] = True
    else:
        spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": NOBODY,
                                   "runAsGroup": NOBODY,
                                   "seccompProfile": {"type": "RuntimeDefault"}}
        container["securityContext"] = {"allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def receiver_pods(lab: Lab, owner: str, image: str, specs: list[PodSpec]
                  ) -> list[dict[str, Any]]:
    """A case's receiver pods on the cluster: iperf's receiver as the command, each on its
    node (the cluster's name for the lab's node), an attached one at the next address
    of its node's slice of the range. `lab run` creates these; `lab manifests` prints
    them."""
    assert lab.cluster is not None
    taken: dict[str, int] = {}
    pods = []
    for spec in specs:
        node = spec.node or lab.node.name
        if lab.host(node).role != "node":
            raise ValueError(f"receiver {spec.name}: {node} is no node")
        address = None
        if spec.attachment:
            address = lab.pod_address(node, taken.get(node, 0))
            taken[node] = taken.get(node, 0) + 1
        pods.append(command_pod(
            lab, owner, names.kube_pod(lab.name, spec.name), node=lab.cluster.node_name(node),
            image=image, command=list(spec.receiver_argv), lifetime_s=spec.listen_s,
            role="receiver", run=names.kube_run_label(lab.name, spec.case), address=address))
    return pods


def container_exit(pod: dict[str, Any]) -> int | None:
    """The exit status of the pod's container once it ended; None while it runs."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        ended = (status.get("state") or {}).get("terminated")
        if ended is not None:
            return int(ended.get("exitCode", 1))
    return None
