"""The cluster backend: the lab's scenarios, unchanged, on a Kubernetes cluster of the
user's, reached through kubectl with the lab file's kubeconfig and context (so every
login plugin works as it does for the user).

`lab up` makes nothing but a namespace (named by the lab with a random suffix, recorded
before it is created, labelled with the lab and this machine's project) and the NAD in
it, then proves each node can attach a pod to the lab NIC with a probe pod. A case's
receivers are pods whose container runs iperf; the source host is the sender: a pod
with the attachment at the source's address on `cluster.sender_node`. `lab destroy`
deletes the namespace (in a shared namespace, everything carrying the lab's owner label)
and any namespace a crashed run left, found by that label.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping

from lab import names
from lab.backends.base import Backend, HostState, HostStatus, LabStatus, Pod, overall_state
from lab.backends.cluster.checks import NAD_RESOURCE, client, external_sender, problems
from lab.backends.cluster.pods import Cluster, CommandHost, ReceiverPod
from lab.backends.cluster.record import ClusterRecord
from lab.errors import BackendError, LabError, UsageError
from lab.host import Host, PodSpec
from lab.kube import cluster as objects
from lab.kube.kubectl import Kubectl
from lab.kube.watch import PodsFailed, wait_pods
from lab.model.lab import ClusterSettings, Lab
from lab.state import State
from lab.ui import Reporter

NAMESPACE_TIMEOUT_S = 120
KUBECTL_TIMEOUT_S = 60.0


class ClusterBackend(Backend):
    name = "cluster"

    def __init__(self, lab: Lab, state: State, reporter: Reporter, *,
                 options: Mapping[str, str] | None = None) -> None:
        super().__init__(lab, state, reporter, options=options)
        self.record = state.record(ClusterRecord)
        self.start_timeout_s = 180.0  # how long a pod may take to start
        self._receivers: dict[str, ReceiverPod] = {}
        self._ssh: Host | None = None

    # -- who and where -------------------------------------------------------------------
    @property
    def settings(self) -> ClusterSettings:
        if self.lab.cluster is None:
            raise UsageError(f"{self.lab.source}: backend cluster needs a cluster: section "
                             "(kubeconfig, context, nic, image; README \"Your own cluster\")")
        return self.lab.cluster

    @property
    def owner(self) -> str:
        return names.kube_owner(self.lab.project_dir, self.lab.name)

    def _kubectl(self, namespace: str | None = None) -> Kubectl:
        return client(self.lab, namespace)

    def _cluster(self) -> Cluster:
        return Cluster(self._kubectl(self.record.namespace), self.lab, self.owner,
                       self.settings.image, self.start_timeout_s)

    def _node(self, host: str) -> str:
        return self.settings.node_name(host)

    @property
    def _sender_node(self) -> str:
        return self.settings.sender_node or self.lab.node.name

    # -- the lab -------------------------------------------------------------------------
    def preflight(self) -> None:
        bad = problems(self.lab)
        if bad:
            raise BackendError("the cluster is not ready for the lab:\n" + "\n".join(
                f"  - {c.name}: {c.message}" + (f"\n    fix: {c.fix}" if c.fix else "")
                for c in bad))

    def up(self) -> None:
        with self.reporter.step(f"check cluster context {self.settings.context}"):
            self.preflight()
        self.record.context = self.settings.context
        own = self.settings.namespace == "own"
        if self.record.status == "up" and self._namespace_exists():
            return
        self.record.status = "creating"
        self.record.own_namespace = own
        if not own:
            self.record.namespace = self.settings.namespace
        elif not self.record.namespace:
            # Recorded before it exists: a crash after the create leaves it found.
            self.record.namespace = names.kube_namespace(self.lab.name, secrets.token_hex(3))
        self.state.save()
        kubectl = self._kubectl(self.record.namespace)
        if own and not self._namespace_exists():
            with self.reporter.step(f"create namespace {self.record.namespace}"):
                kubectl.create([objects.namespace_manifest(
                    self.lab, self.record.namespace, self.owner, self.settings.host_network)],
                    what="create the lab's namespace")
        nad = kubectl.run("get", f"{NAD_RESOURCE}/{self.lab.attachment.name}",
                          timeout=KUBECTL_TIMEOUT_S, check=False)
        if not nad.ok:
            with self.reporter.step(f"create NetworkAttachmentDefinition "
                                    f"{self.lab.attachment.name} on {self.settings.nic}"):
                kubectl.create([objects.nad_manifest(self.lab, self.settings.nic,
                                                     self.owner)], what="create the NAD")
        with self.reporter.step(f"probe: an attached pod on each of {len(self.lab.nodes)} "
                                "node(s) runs iperf 2"):
            self._probe()
        self.record.status = "up"
        self.state.save()

    def _namespace_exists(self) -> bool:
        if not self.record.namespace:
            return False
        got = self._kubectl().run("get", "namespace", self.record.namespace,
                                  timeout=KUBECTL_TIMEOUT_S, check=False)
        return got.ok

    def _probe(self) -> None:
        """Each node attaches a pod to the lab NIC (Multus and the macvlan plugin work
        there, the NIC exists) and the image runs iperf 2."""
        cluster = self._cluster()
        docs, nodes = [], {}
        token = secrets.token_hex(3)
        for node in self.lab.nodes:
            name = names.kube_command_pod(self.lab.name, f"probe-{node.name}", token)
            nodes[name] = node.name
            docs.append(objects.command_pod(
                self.lab, self.owner, name, node=self._node(node.name), image=cluster.image,
                command=["iperf", "--version"], lifetime_s=60, role="probe",
                run=f"{self.lab.name}.probe.{token}", address=self._address(node.name, 0)))
        selector = f"{names.LABEL_RUN}={self.lab.name}.probe.{token}"
        try:
            cluster.create(docs, "create the probe pods")
            wait_pods(cluster.kubectl, nodes, selector, until="done",
                      deadline_s=self.start_timeout_s)
            for pod, host in nodes.items():
                said = cluster.log(pod)
                if "iperf version 2" not in said:
                    raise BackendError(f"the image {cluster.image} on {host} does not run "
                                       f"iperf 2 (`iperf --version` said: "
                                       f"{said.strip()[-200:] or 'nothing'}): set "
                                       "cluster.image to one with iperf 2 (the same on "
                                       "every end)")
        except PodsFailed as exc:
            raise BackendError(f"an attached pod cannot start on every node (Multus, the "
                               f"macvlan plugin, or NIC {self.settings.nic} on the node): "
                               f"{exc}") from exc
        finally:
            cluster.delete(selector, "delete the probe pods")

    def destroy(self) -> None:
        kubectl = self._kubectl()
        if self.record.own_namespace:
            leftovers = kubectl.run("get", "namespaces", "-l",
                                    f"{objects.LABEL_OWNER}={self.owner}", "-o", "name",
                                    timeout=KUBECTL_TIMEOUT_S, check=False)
            gone = {line.split("/", 1)[-1] for line in leftovers.stdout.split()}
            if self.record.namespace:
                gone.add(self.record.namespace)
            for namespace in sorted(gone):
                with self.reporter.step(f"delete namespace {namespace}"):
                    kubectl.run("delete", "namespace", namespace, "--ignore-not-found",
                                "--wait=true", f"--timeout={NAMESPACE_TIMEOUT_S}s",
                                timeout=NAMESPACE_TIMEOUT_S + 30,
                                what=f"delete namespace {namespace}")
        elif self.record.namespace:
            with self.reporter.step(f"delete the lab's objects in {self.record.namespace}"):
                self._kubectl(self.record.namespace).run(
                    "delete", f"pods,{NAD_RESOURCE}", "-l",
                    f"{objects.LABEL_OWNER}={self.owner}", "--ignore-not-found",
                    "--wait=true", f"--timeout={NAMESPACE_TIMEOUT_S}s",
                    timeout=NAMESPACE_TIMEOUT_S + 30, what="delete the lab's objects")
        self._receivers.clear()
        close = getattr(self._ssh, "close", None)
        if close is not None:
            close()
        self._ssh = None
        self.state.remove()

    def status(self) -> LabStatus:
        up = self.record.status == "up"
        hosts = []
        ready: dict[str, bool] = {}
        problems: tuple[str, ...] = ()
        if up:
            try:
                ready = self._nodes_ready()
            except LabError as exc:
                problems = (str(exc),)
        for h in self.lab.hosts:
            if not up and self.record.namespace:
                # An `up` that did not finish: its namespace may exist (`lab destroy`).
                hosts.append(HostStatus(h.name, HostState.UNKNOWN, str(h.address),
                                        f"namespace {self.record.namespace}, up unfinished"))
            elif not up:
                hosts.append(HostStatus(h.name, HostState.NOT_CREATED, str(h.address)))
            elif h.role == "source":
                ssh = self.settings.sender_ssh
                where = f"over SSH {ssh.user}@{ssh.host}" if ssh else \
                    f"sender pods on {self._node(self._sender_node)}"
                hosts.append(HostStatus(h.name, HostState.RUNNING, str(h.address), where))
            else:
                node = self._node(h.name)
                state = HostState.UNKNOWN if node not in ready else \
                    HostState.RUNNING if ready[node] else HostState.STOPPED
                hosts.append(HostStatus(h.name, state, str(h.address), f"node {node}"))
        return LabStatus(self.lab.name, self.name, overall_state(tuple(hosts), up),
                         tuple(hosts), tuple(sorted(self.record.pods)), problems=problems)

    def _nodes_ready(self) -> dict[str, bool]:
        got = self._kubectl().run("get", "nodes", "-o", "json", timeout=KUBECTL_TIMEOUT_S,
                                  what="read the cluster's nodes")
        return {n["metadata"]["name"]: any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in n.get("status", {}).get("conditions") or [])
            for n in json.loads(got.stdout).get("items", [])}

    def _require_up(self) -> None:
        if self.record.status != "up":
            raise BackendError(f"lab {self.lab.name} is not up on context "
                               f"{self.settings.context}; run `lab up` first")

    def _address(self, node_host: str, index: int) -> str:
        try:
            return self.lab.pod_address(node_host, index)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc

    def host(self, name: str) -> Host:
        self._require_up()
        spec = self.lab.host(name)
        cluster = self._cluster()
        if spec.role == "source":
            if self.settings.sender_ssh is not None:
                return self._external_sender(name)
            return CommandHost(name, cluster, self._node(self._sender_node),
                               address=f"{spec.address}/{self.lab.subnet.prefixlen}")
        refused = ""
        if not self.settings.host_network:
            refused = (f"{name} is a node of your cluster: a command there runs in a pod on "
                       "the node's network (hostNetwork), which the restricted Pod Security "
                       "profile refuses; set cluster.host_network: true to allow it (the "
                       "lab's namespace then enforces `privileged`)")
        elif name == self._sender_node and self.settings.sender_ssh is None:
            refused = (f"{name} is the sender pod's node (cluster.sender_node): a macvlan "
                       "pod's frames never reach its own node's host stack, so a receiver "
                       f"on {name}'s own NIC would hear nothing; set cluster.sender_node to "
                       "another node")
        return CommandHost(name, cluster, self._node(name), host_network=True,
                           refused=refused)

    def _external_sender(self, name: str) -> Host:
        """The source over SSH (one connection for the lab's lifetime in this process)."""
        if self._ssh is None:
            self._ssh = external_sender(name, self.settings)
        return self._ssh

    def kubernetes(self) -> str | None:
        # There is one, but it is the user's: `lab logs` gathers nothing from its nodes.
        return "the cluster is yours: read it with kubectl (the lab's namespace is " \
            f"{self.record.namespace or 'not made yet'})"

    def existing_hosts(self) -> Mapping[str, Host]:
        # The nodes are the user's: the lab runs nothing there but its pods (`lab igmp`
        # and `lab logs` read those, not the nodes); an external sender is a host.
        if self.record.status != "up" or self.settings.sender_ssh is None:
            return {}
        source = self.lab.sources[0].name
        return {source: self.host(source)}

    def pod_hosts(self) -> Mapping[str, Host]:
        return dict(self._receivers)

    def lab_nic(self, host: str) -> str:
        if self.lab.host(host).role == "node":
            return self.settings.nic
        # The sender pod's attachment, or the external sender's NIC (found by address).
        return self.lab.nic if self.settings.sender_ssh else self.lab.attachment.ifname

    def interactive_argv(self, host: str, argv: list[str]) -> list[str]:
        raise BackendError("no shell on a cluster of yours from the lab: use kubectl "
                           f"--context {self.settings.context} -n {self.record.namespace}")

    # -- receiver pods ---------------------------------------------------------------------
    def create_pods(self, specs: list[PodSpec]) -> list[Pod]:
        self._require_up()
        cluster = self._cluster()
        try:
            docs = objects.receiver_pods(self.lab, self.owner, cluster.image, specs)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        made = [Pod(spec.name, ReceiverPod(spec.name, names.kube_pod(self.lab.name, spec.name),
                                           cluster, spec.receiver_argv), spec.attachment)
                for spec in specs]
        for p in made:
            self.record.pods[p.name] = names.kube_pod(self.lab.name, p.name)
        self.state.save()
        selector = f"{objects.LABEL_OWNER}={self.owner},{objects.LABEL_ROLE}=receiver"
        try:
            cluster.create(docs, f"create {len(docs)} receiver pod(s)")
            wait_pods(cluster.kubectl, [d["metadata"]["name"] for d in docs], selector,
                      until="ready", deadline_s=self.start_timeout_s)
        except BaseException:
            self.delete_pods(made)
            raise
        for p in made:
            assert isinstance(p.host, ReceiverPod)
            self._receivers[p.name] = p.host
        return made

    def delete_pods(self, pods: list[Pod]) -> None:
        if not pods:
            return
        cluster = self._cluster()
        pod_names = [names.kube_pod(self.lab.name, p.name) for p in pods]
        cluster.kubectl.run("delete", "pod", *pod_names, "--ignore-not-found", "--wait=true",
                            f"--timeout={NAMESPACE_TIMEOUT_S}s",
                            timeout=NAMESPACE_TIMEOUT_S + 30,
                            what=f"delete {len(pod_names)} receiver pod(s)")
        for p in pods:
            self.record.pods.pop(p.name, None)
            self._receivers.pop(p.name, None)
        self.state.save()

    # -- snapshots: a cluster of the user's is not the lab's to snapshot -----------------
    def _no_snapshots(self) -> BackendError:
        return BackendError("a cluster of yours has no lab snapshots: `lab destroy` and "
                            "`lab up` give a clean namespace in seconds")

    def snapshot_save(self, name: str) -> None:
        raise self._no_snapshots()

    def reset(self, name: str) -> None:
        raise self._no_snapshots()

    def snapshot_delete(self, name: str) -> None:
        raise self._no_snapshots()

    def snapshots(self) -> dict[str, float]:
        return {}

