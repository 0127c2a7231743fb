"""The netns backend: every host and pod is a Linux network namespace on this machine.

Hosts are joined on the lab network by a veth pair (two hosts) or a bridge in a switch
namespace (more). Pods get eth0 from the CNI `bridge` plugin, as a pod network would give
them, and the attachment from its own CNI config run by the real macvlan/host-local
plugins in the node's namespace, as Multus delegates it. Nothing is created in the
machine's own namespace, so no interface of the machine is ever touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab import checkpoint, command, names
from lab.backends.base import (
    Backend,
    HostState,
    HostStatus,
    LabStatus,
    Pod,
    overall_state,
)
from lab.backends.netns import cni
from lab.backends.netns.checks import problems
from lab.backends.netns.host import NamespaceHost
from lab.backends.netns.record import NetnsRecord, PodNetwork, PodRecord
from lab.errors import BackendError
from lab.host import Host, PodSpec

NETNS_DIR = Path("/var/run/netns")
IP_TIMEOUT_S = 15.0
POD_NETWORK_NAME = "pod-network"
POD_BRIDGE = "cni0"
SWITCH_BRIDGE = "br0"


def _ip(*args: str, what: str = "") -> None:
    command.run(["ip", *args], timeout=IP_TIMEOUT_S, what=what)


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


class NetnsBackend(Backend):
    name = "netns"

    @property
    def record(self) -> NetnsRecord:
        return self.state.record(NetnsRecord)

    # -- names (lab.names): everything carries the lab's name ------------------------------
    def host_netns(self, host: str) -> str:
        return names.host_netns(self.lab.name, host)

    def pod_netns(self, pod: str) -> str:
        return names.pod_netns(self.lab.name, pod)

    @property
    def switch_netns(self) -> str:
        return names.switch_netns(self.lab.name)

    @property
    def ipam_dir(self) -> Path:
        # host-local keeps its leases under dataDir/<network name>/; a folder per lab keeps
        # two labs apart and lets destroy remove exactly this lab's leases.
        return Path(os.environ.get("LAB_CNI_DATA_DIR", "/var/lib/cni")) / \
            names.ipam_dir_name(self.lab.name)

    # -- lifecycle ---------------------------------------------------------------------
    def preflight(self) -> None:
        failed = problems()
        if failed:
            raise BackendError("this machine is not ready for the netns backend:\n" +
                               "\n".join(f"  - {p.message} Fix: {p.fix}" for p in failed))

    def up(self) -> None:
        self.preflight()
        if self.record.status == "up" and all(
                netns_exists(ns) for ns in self.record.namespaces):
            self.reporter.info(f"lab {self.lab.name} is already up (netns)")
            return
        if self.record.status:
            # A partial lab from an interrupted `up`: start from nothing.
            self.destroy()
        wanted = [self.host_netns(h.name) for h in self.lab.hosts]
        if len(self.lab.hosts) > 2:
            wanted.append(self.switch_netns)
        taken = [ns for ns in wanted if netns_exists(ns)]
        if taken:
            raise BackendError(f"network namespace(s) {', '.join(taken)} already exist but are "
                               f"not recorded by this lab ({self.state.path}); another lab "
                               f"named {self.lab.name!r} may be running. Give this lab another "
                               "name, or remove them with `ip netns delete NAME`")
        self.record.status, self.record.created = "creating", time.time()
        self.record.ipam_dir = str(self.ipam_dir)
        self.state.save()
        try:
            with self.reporter.step(f"hosts {', '.join(h.name for h in self.lab.hosts)} "
                                    "as network namespaces"):
                for host in self.lab.hosts:
                    self._add_netns(self.host_netns(host.name), "host")
            checkpoint.reached("netns-up-hosts")
            with self.reporter.step(f"lab network {self.lab.subnet}"):
                self._wire_lab_network()
        except BaseException:
            # A failed or interrupted `up` removes what it made: no half-made lab is left
            # (after a kill -9, the next `up` or `destroy` does it from the state file).
            self.reporter.warn("`lab up` did not finish: removing what it created")
            self.destroy()
            raise
        self.record.status = "up"
        self.state.save()

    def _add_netns(self, netns: str, role: str) -> None:
        self.record.namespaces[netns] = role
        self.state.save()  # recorded before it exists: destroy finds it after any crash
        _ip("netns", "add", netns, what=f"create namespace {netns}")
        _ip("-n", netns, "link", "set", "lo", "up")

    def _wire_lab_network(self) -> None:
        nic = self.lab.nic
        hosts = self.lab.hosts
        if len(hosts) == 2:
            a, b = (self.host_netns(h.name) for h in hosts)
            # Created directly inside the namespaces: never an interface in the root one.
            _ip("-n", a, "link", "add", nic, "type", "veth", "peer", "name", nic, "netns", b,
                what="create the lab network's veth pair")
        else:
            lan = self.switch_netns
            self._add_netns(lan, "switch")
            # No IGMP snooping: with no querier a snooping bridge floods anyway (DESIGN.md).
            _ip("-n", lan, "link", "add", SWITCH_BRIDGE, "type", "bridge", "mcast_snooping", "0")
            _ip("-n", lan, "link", "set", SWITCH_BRIDGE, "up")
            for i, host in enumerate(hosts):
                port = f"p{i}"
                _ip("-n", lan, "link", "add", port, "type", "veth", "peer", "name", nic,
                    "netns", self.host_netns(host.name))
                _ip("-n", lan, "link", "set", port, "master", SWITCH_BRIDGE, "up")
        for host in hosts:
            ns = self.host_netns(host.name)
            _ip("-n", ns, "addr", "add", f"{host.address}/{self.lab.subnet.prefixlen}",
                "dev", nic)
            _ip("-n", ns, "link", "set", nic, "up")

    def destroy(self) -> None:
        pods = dict(self.record.pods)
        namespaces = dict(self.record.namespaces)
        if not pods and not namespaces and not self.state.exists:
            self.reporter.info(f"lab {self.lab.name} is not up: nothing to destroy")
            return
        with self.reporter.step(f"remove {len(pods)} pod(s) and {len(namespaces)} namespace(s)"):
            self._delete_pod_records(list(pods))
            for netns in namespaces:
                self._delete_netns(netns)
                del self.record.namespaces[netns]
                self.state.save()
            ipam = self.record.ipam_dir
            if ipam:
                shutil.rmtree(ipam, ignore_errors=True)
            self.state.remove()

    def _delete_netns(self, netns: str) -> None:
        if not netns_exists(netns):
            return
        _stop_processes_in(netns)
        _ip("netns", "delete", netns, what=f"delete namespace {netns}")

    # -- status and hosts --------------------------------------------------------------
    def status(self) -> LabStatus:
        recorded = self.record.namespaces
        hosts = []
        for h in self.lab.hosts:
            ns = self.host_netns(h.name)
            if ns not in recorded:
                word = HostState.NOT_CREATED
            else:
                word = HostState.RUNNING if netns_exists(ns) else HostState.MISSING
            hosts.append(HostStatus(h.name, word, str(h.address), f"netns {ns}"))
        return LabStatus(self.lab.name, self.name,
                         overall_state(tuple(hosts), self.record.status == "up"),
                         tuple(hosts), tuple(sorted(self.record.pods)))

    def host(self, name: str) -> NamespaceHost:
        self.lab.host(name)  # KeyError for an unknown host is a programming error
        netns = self.host_netns(name)
        if self.record.status != "up" or not netns_exists(netns):
            raise BackendError(f"lab {self.lab.name} is not up (host {name} has no namespace "
                               f"{netns}); run `lab up` first")
        return NamespaceHost(name, netns)

    def existing_hosts(self) -> Mapping[str, Host]:
        return {h.name: NamespaceHost(h.name, self.host_netns(h.name)) for h in self.lab.hosts
                if netns_exists(self.host_netns(h.name))}

    def pod_hosts(self) -> Mapping[str, Host]:
        return {name: NamespaceHost(name, pod.netns) for name, pod in self.record.pods.items()
                if netns_exists(pod.netns)}

    def lab_nic(self, host: str) -> str:
        return self.lab.nic

    def interactive_argv(self, host: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.host(host).netns, *argv]

    # -- pods ----------------------------------------------------------------------------
    def pod_network_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "0.3.1",
            "name": POD_NETWORK_NAME,
            "type": "bridge",
            "bridge": POD_BRIDGE,
            "isGateway": True,
            "ipMasq": False,
            "ipam": {"type": "host-local", "subnet": str(self.lab.pod_subnet),
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.ipam_dir)},
        }

    def attachment_config(self) -> dict[str, Any]:
        # What Multus hands the macvlan plugin: the NAD's config plus the NAD's name.
        config = self.lab.nad_config(master=self.lab.nic)
        config["name"] = self.lab.attachment.name
        config["ipam"]["dataDir"] = str(self.ipam_dir)
        return config

    def create_pods(self, specs: list[PodSpec]) -> list[Pod]:
        node = self.host(self.lab.node.name)
        pods: list[Pod] = []
        try:
            for spec in specs:
                pods.append(self._create_pod(spec, node.netns))
        except BaseException:
            # Whatever this call created is its to remove, also on Ctrl-C.
            self._delete_pod_records([spec.name for spec in specs])
            raise
        return pods

    def _create_pod(self, spec: PodSpec, node_netns: str) -> Pod:
        netns = self.pod_netns(spec.name)
        if netns_exists(netns):
            raise BackendError(f"namespace {netns} for pod {spec.name} already exists")
        record = PodRecord(netns)
        self.record.pods[spec.name] = record
        self.state.save()
        _ip("netns", "add", netns, what=f"create pod namespace {netns}")
        _ip("-n", netns, "link", "set", "lo", "up")
        networks = [("eth0", self.pod_network_config())]
        if spec.attachment:
            networks.append((self.lab.attachment.ifname, self.attachment_config()))
        for ifname, config in networks:
            record.networks.append(PodNetwork(ifname, config))
            self.state.save()  # recorded before ADD: DEL must run even if ADD half-failed
            cni.add(config, node_netns=node_netns, pod_netns=netns, ifname=ifname,
                    container_id=netns)
        if spec.attachment and self.lab.attachment.bcqueuelen:
            _ip("-n", netns, "link", "set", self.lab.attachment.ifname, "type", "macvlan",
                "bcqueuelen", str(self.lab.attachment.bcqueuelen),
                what="set the macvlan broadcast queue length")
        return Pod(spec.name, NamespaceHost(spec.name, netns), spec.attachment)

    def delete_pods(self, pods: list[Pod]) -> None:
        self._delete_pod_records([p.name for p in pods])

    def _delete_pod_records(self, pod_names: list[str]) -> None:
        """CNI DEL of every network (so host-local frees the address), then the namespace.

        Errors are collected so that one broken pod does not leave the others behind.
        """
        errors: list[str] = []
        node_netns = self.host_netns(self.lab.node.name)
        recorded = self.record.pods
        for name in pod_names:
            record = recorded.get(name)
            if record is None:
                continue  # never made, or already removed
            netns = record.netns
            try:
                if netns_exists(netns):
                    _stop_processes_in(netns)
                for net in reversed(record.networks):
                    if netns_exists(node_netns):
                        try:
                            cni.delete(net.config, node_netns=node_netns,
                                       pod_netns=netns, ifname=net.ifname,
                                       container_id=netns)
                        except BackendError as exc:
                            errors.append(str(exc))
                self._delete_netns(netns)
            except BackendError as exc:
                errors.append(str(exc))
                continue
            del recorded[name]
            self.state.save()
        if errors:
            raise BackendError("could not remove every pod cleanly:\n" +
                               "\n".join(f"  - {e}" for e in errors))


def _stop_processes_in(netns: str) -> None:
    """End the processes left in a namespace (iperf of a killed run), each by its own pid."""
    result = command.run(["ip", "netns", "pids", netns], timeout=IP_TIMEOUT_S, check=False)
    pids = [int(p) for p in result.stdout.split() if p.isdigit()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(_alive(p) for p in alive):
            time.sleep(0.05)
        pids = [p for p in alive if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still "exists"; its state in /proc says Z.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
