"""Kubernetes manifests derived from the lab model: the NetworkAttachmentDefinition and
the receiver pods of a scenario, as a user would apply them by hand (the walkthrough's
`net-config.yml` and `example-mcast-pod.yml`)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from lab import iperf
from lab.model import Lab
from lab.scenario import Case

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
PART_OF = "mcast-lab"


def nad_manifest(lab: Lab, master: str) -> dict[str, Any]:
    """The NAD; its config has no "name": Multus fills it from metadata.name."""
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": lab.attachment.name,
                     "labels": {"app.kubernetes.io/part-of": PART_OF, "mcast-lab/lab": lab.name}},
        "spec": {"config": json.dumps(lab.nad_config(master), indent=2)},
    }


def pod_metadata(lab: Lab, name: str, attachment: bool, labels: dict[str, str]
                 ) -> dict[str, Any]:
    """Name, labels and, for an attached pod, the Multus annotation `NAD@ifname`."""
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/part-of": PART_OF,
                                                     "mcast-lab/lab": lab.name, **labels}}
    if attachment:
        meta["annotations"] = {
            NETWORKS_ANNOTATION: f"{lab.attachment.name}@{lab.attachment.ifname}"}
    return meta


def receiver_pod_manifest(lab: Lab, case: Case, pod_name: str, attachment: bool,
                          iface: str) -> dict[str, Any]:
    """A receiver pod running iperf as the walkthrough's pod does, bounded in time."""
    s = case.scenario
    listen = s.duration + iperf.RECEIVER_SLACK_S + 60
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_metadata(lab, f"{lab.name}-{pod_name}", attachment,
                                 {"mcast-lab/scenario": s.name}),
        "spec": {
            "restartPolicy": "Never",
            # Bounded like every receiver: the pod ends even if nobody deletes it.
            "activeDeadlineSeconds": listen + 30,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "receiver",
                "image": lab.kubernetes.iperf_image,
                "command": iperf.server_argv(s.group, iface, s.port, listen, s.receive_buffer),
            }],
        },
    }


def scenario_manifests(lab: Lab, case: Case, master: str) -> list[dict[str, Any]]:
    docs = [nad_manifest(lab, master)]
    for r in case.scenario.receivers:
        if r.placement == "pod":
            docs.extend(receiver_pod_manifest(lab, case, member, r.attachment,
                                              r.iface or "eth0") for member in r.members())
    return docs


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the NAD's JSON config) as literal blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_all(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False)
