"""The netns backend: every host and pod is a Linux network namespace on this machine.

Hosts are joined on the lab network by a veth pair (two hosts) or a bridge in a switch
namespace (more). Pods get eth0 from the CNI `bridge` plugin, as a pod network would give
them, and the attachment from its own CNI config run by the real macvlan/host-local
plugins in the node's namespace, as Multus delegates it. Nothing is created in the
machine's own namespace, so no interface of the machine is ever touched.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from lab import checkpoint, command, names, snooping
from lab.backends.base import (
    Backend,
    HostState,
    HostStatus,
    LabStatus,
    Pod,
    overall_state,
)
from lab.backends.netns import cni
from lab.backends.netns import netlink as nl
from lab.backends.netns.checks import problems
from lab.backends.netns.host import NamespaceHost
from lab.backends.netns.record import NetnsRecord, PodNetwork, PodRecord
from lab.errors import BackendError
from lab.host import Host, PodSpec

NETNS_DIR = Path("/var/run/netns")
POD_NETWORK_NAME = "pod-network"
POD_BRIDGE = "cni0"
SWITCH_BRIDGE = "br0"



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
            self._same_switch()
            self.reporter.info(f"lab {self.lab.name} is already up (netns)")
            return
        if self.record.status:
            # A partial lab from an interrupted `up`: start from nothing.
            self.destroy()
        wanted = [self.host_netns(h.name) for h in self.lab.hosts]
        if self.lab.has_switch:
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

    def _same_switch(self) -> None:
        """A lab that is up keeps the wiring it was made with: refuse a lab file whose
        `switch:` now asks for another (the run would judge with the new settings a
        bridge that still has the old)."""
        has = self.switch_netns in self.record.namespaces
        sw = self.lab.switch
        now: dict[str, int] = {}
        if has:
            with nl.Netlink(self.switch_netns) as link:
                now = link.bridge(SWITCH_BRIDGE)
        wanted = {"snooping": int(bool(sw and sw.igmp_snooping))}
        if sw and sw.igmp_snooping:
            wanted.update(querier=int(sw.igmp_querier), igmp_version=sw.igmp_version)
        if has != self.lab.has_switch or (has and any(now.get(k) != v
                                                       for k, v in wanted.items())):
            raise BackendError(f"lab {self.lab.name} is up with another lab switch than "
                               f"{self.lab.source.name} now declares (switch:); run `lab "
                               "destroy` and `lab up` to make it anew")

    def _add_netns(self, netns: str, role: str) -> None:
        self.record.namespaces[netns] = role
        self.state.save()  # recorded before it exists: destroy finds it after any crash
        _make_netns(netns)

    def _wire_lab_network(self) -> None:
        # Every change in process over netlink (lab/backends/netns/netlink.py), each link
        # made directly inside its namespaces: never an interface in the machine's own.
        nic = self.lab.nic
        hosts = self.lab.hosts
        querier, querier_on = False, 0.0
        if not self.lab.has_switch:
            a, b = (self.host_netns(h.name) for h in hosts)
            with nl.Netlink(a) as link:
                link.add_veth(nic, nic, b)
        else:
            lan = self.switch_netns
            self._add_netns(lan, "switch")
            # Without `switch:` in the lab file: no IGMP snooping (with no querier a
            # snooping bridge floods anyway, DESIGN.md). With it: as declared.
            sw = self.lab.switch
            querier = bool(sw and sw.snoops)
            with nl.Netlink(lan) as link:
                link.add_bridge(SWITCH_BRIDGE, mcast_snooping=bool(sw and sw.igmp_snooping),
                                querier=querier, igmp_version=sw.igmp_version if sw else 2,
                                response_interval_cs=int(snooping.QUERY_RESPONSE_S * 100))
                querier_on = time.monotonic()
                link.set_up(SWITCH_BRIDGE)
                for host in hosts:
                    port = self.switch_port(host.name)
                    link.add_veth(port, nic, self.host_netns(host.name))
                    link.set_up(port, master=SWITCH_BRIDGE)
        for host in hosts:
            with nl.Netlink(self.host_netns(host.name)) as link:
                link.add_address(nic, ipaddress.IPv4Interface(
                    f"{host.address}/{self.lab.subnet.prefixlen}"))
                link.set_up(nic)
        if querier:
            snooping.wait_out_querier_start(querier_on)  # the lab is up once it snoops

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

    # This machine's packages are its owner's: a lock lists those the lab runs.
    lock_packages = ("iperf", "tcpdump", "iproute2", "containernetworking-plugins")

    # -- snapshots: a netns lab is rebuilt from the lab file faster than kept -------------
    def snapshots(self) -> dict[str, float]:
        return dict(self.record.snapshots)

    def snapshot_save(self, name: str) -> None:
        if self.record.status != "up":
            raise BackendError(f"lab {self.lab.name} is not up; run `lab up` first")
        self.record.snapshots[name] = time.time()
        self.state.save()

    def snapshot_delete(self, name: str) -> None:
        self._known_snapshot(name)
        del self.record.snapshots[name]
        self.state.save()

    def reset(self, name: str) -> None:
        """Destroy and up: what a pod or a run changed in the namespaces is gone, and the
        lab is the lab file's again. The snapshots outlive it."""
        self._known_snapshot(name)
        kept = dict(self.record.snapshots)
        try:
            self.destroy()
            self.up()
        finally:
            # Kept whatever happened: a failed up leaves a lab to `lab reset` again.
            self.record.snapshots = kept
            self.state.save()

    def _delete_netns(self, netns: str, stopped: bool = False) -> None:
        if not netns_exists(netns):
            return
        if not stopped:
            _stop_processes([netns])
        nl.delete_netns(netns)

    def switch_port(self, host: str) -> str:
        """The lab switch's port toward `host` (in the switch namespace)."""
        return f"p{[h.name for h in self.lab.hosts].index(host)}"

    def switch_members(self, group: str) -> dict[str, float]:
        """The hosts whose switch port the bridge has an entry for `group` on, each with
        the seconds it has left (lab.snooping)."""
        out = command.run(["ip", "netns", "exec", self.switch_netns, "bridge", "-j", "-s",
                           "mdb", "show"], timeout=10, what="read the lab switch's memberships")
        return snooping.memberships(out.stdout, group, {self.switch_port(h.name): h.name
                                                        for h in self.lab.hosts})

    def _snoops(self) -> bool:
        sw = self.lab.switch
        return bool(sw and sw.snoops)

    def wait_for_switch(self, group: str, hosts: set[str], timeout: float) -> None:
        if self._snoops():  # a switch that floods forwards every group to every port
            snooping.wait_joined(lambda: self.switch_members(group), group, hosts, timeout)

    def wait_for_leave(self, group: str, hosts: set[str], timeout: float) -> None:
        if self._snoops() and hosts:
            snooping.wait_left(lambda: self.switch_members(group), group, hosts, timeout)

    def port_tx(self) -> dict[str, tuple[int, int]]:
        """(packets, bytes) the lab switch has sent out of each host's port, read from the
        bridge ports' own counters in one netlink dump."""
        if not self.lab.has_switch or not netns_exists(self.switch_netns):
            raise BackendError(f"lab {self.lab.name} has no lab switch to read ports of"
                               + ("" if self.lab.has_switch else
                                  ": declare `switch:` in the lab file"))
        with nl.Netlink(self.switch_netns) as link:
            counts = link.tx_counters()
        return {h.name: counts[self.switch_port(h.name)] for h in self.lab.hosts}

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
        # A namespace is this machine: its user's shell is there.
        shell = [os.environ.get("SHELL", "/bin/sh")]
        return ["ip", "netns", "exec", self.host(host).netns, *(argv or shell)]

    # -- pods ----------------------------------------------------------------------------
    def _node_ipam_dir(self, node: str) -> Path:
        # One node: the lab's folder, as before nodes were many. Several: a folder each,
        # as each node's host-local keeps its own store (their ranges are disjoint).
        return self.ipam_dir if len(self.lab.nodes) == 1 else self.ipam_dir / node

    def pod_network_config(self, node: str | None = None) -> dict[str, Any]:
        node = node or self.lab.node.name
        return {
            "cniVersion": "0.3.1",
            "name": POD_NETWORK_NAME,
            "type": "bridge",
            "bridge": POD_BRIDGE,
            "isGateway": True,
            "ipMasq": False,
            "ipam": {"type": "host-local", "subnet": str(self.lab.node_pod_subnet(node)),
                     "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": str(self._node_ipam_dir(node))},
        }

    def attachment_config(self, node: str | None = None) -> dict[str, Any]:
        # What Multus hands the macvlan plugin: the NAD's config plus the NAD's name; on
        # a lab of several nodes, with this node's share of the range.
        node = node or self.lab.node.name
        config = self.lab.nad_config(master=self.lab.nic, node=node)
        config["name"] = self.lab.attachment.name
        config["ipam"]["dataDir"] = str(self._node_ipam_dir(node))
        return config

    def create_pods(self, specs: list[PodSpec]) -> list[Pod]:
        nodes = {spec.node or self.lab.node.name for spec in specs}
        for node in nodes:
            if node not in {n.name for n in self.lab.nodes}:
                raise BackendError(f"no node {node!r} in lab {self.lab.name}")
            self.host(node)  # refuses a lab that is not up
        configs = {node: (self.pod_network_config(node), self.attachment_config(node))
                   for node in nodes}
        planned: list[tuple[PodSpec, PodRecord]] = []
        for spec in specs:
            netns = self.pod_netns(spec.name)
            if netns_exists(netns) or spec.name in self.record.pods:
                raise BackendError(f"namespace {netns} for pod {spec.name} already exists")
            node = spec.node or self.lab.node.name
            pod_network, attachment = configs[node]
            networks = [PodNetwork("eth0", pod_network)]
            if spec.attachment:
                networks.append(PodNetwork(self.lab.attachment.ifname, attachment))
            planned.append((spec, PodRecord(netns, networks, node)))
        # Every pod of the call and every network it will get, recorded in one write before
        # any is made: DEL must run even where ADD half-failed, and a crash leaves nothing
        # unrecorded. (DEL of what never came is a no-op for CNI plugins.) One write, not
        # one per pod and network: the state file grows with the pods, and rewriting it
        # for each made creating 256 pods grow quadratically.
        for spec, record in planned:
            self.record.pods[spec.name] = record
        self.state.save()
        try:
            return _on_workers(lambda item: self._create_pod(
                item[0], item[1], self.host_netns(item[1].node)), planned)
        except BaseException:
            # Whatever this call created is its to remove, also on Ctrl-C.
            self._delete_pod_records([spec.name for spec in specs])
            raise

    def _create_pod(self, spec: PodSpec, record: PodRecord, node_netns: str) -> Pod:
        netns = record.netns
        _make_netns(netns)
        for net in record.networks:
            cni.add(net.config, node_netns=node_netns, pod_netns=netns, ifname=net.ifname,
                    container_id=netns)
        att = self.lab.attachment
        if spec.attachment and (att.bcqueuelen is not None or att.bclim is not None):
            # Settings of the node's macvlan port, asked for through each pod's macvlan
            # (the port keeps the largest queue asked for, and the last cutoff).
            with nl.Netlink(netns) as link:
                link.set_macvlan(att.ifname, bcqueuelen=att.bcqueuelen, bc_cutoff=att.bclim)
        return Pod(spec.name, NamespaceHost(spec.name, netns), spec.attachment)

    def delete_pods(self, pods: list[Pod]) -> None:
        self._delete_pod_records([p.name for p in pods])

    def _delete_pod_records(self, pod_names: list[str]) -> None:
        """The namespace, then CNI DEL of every network (so host-local frees the address);
        the records go in one write at the end (a crash before it leaves records of pods
        already gone, which destroy passes over).

        Errors are collected so that one broken pod does not leave the others behind.
        """
        errors: list[str] = []
        recorded = self.record.pods
        records = [(name, recorded[name]) for name in pod_names if name in recorded]
        # One look at every process for all the pods, not one per pod.
        _stop_processes([r.netns for _, r in records if netns_exists(r.netns)])
        removed: list[str] = []

        def remove(item: tuple[str, PodRecord]) -> None:
            name, record = item
            # The namespace first: the kernel then removes the pod's interfaces (and the
            # node's end of its veth) with the namespace, many at once, where a plugin
            # deleting them one by one waits for the network core each time. DEL still runs
            # for every network, for what only it can undo (host-local's address lease); the
            # plugins take a namespace that is gone as nothing left to remove there.
            try:
                self._delete_netns(record.netns, stopped=True)
            except BackendError as exc:
                errors.append(str(exc))
                return
            node_netns = self.host_netns(record.node or self.lab.node.name)
            for net in reversed(record.networks):
                if netns_exists(node_netns):
                    try:
                        cni.delete(net.config, node_netns=node_netns,
                                   pod_netns=record.netns, ifname=net.ifname,
                                   container_id=record.netns)
                    except BackendError as exc:
                        errors.append(str(exc))
            removed.append(name)

        _on_workers(remove, records)
        for name in removed:
            del recorded[name]
        if removed:
            self.state.save()
        if errors:
            raise BackendError("could not remove every pod cleanly:\n" +
                               "\n".join(f"  - {e}" for e in errors))


# Pods are made and removed this many at a time: most of a pod's cost is starting the CNI
# plugins (and their IPAM plugin), processes that run side by side on every core. The
# plugins are made for it (a container runtime runs them concurrently; host-local locks its
# store).
POD_WORKERS = max(2, min(8, 2 * (os.cpu_count() or 1)))
T = TypeVar("T")
R = TypeVar("R")


def _on_workers(func: Callable[[T], R], items: list[T]) -> list[R]:
    """`func` over `items` on POD_WORKERS threads, results in order. On the first failure
    (or Ctrl-C) nothing more is started, what runs is waited for, and the failure raised."""
    if len(items) <= 1:
        return [func(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # with logging: not for `lab status`

    with ThreadPoolExecutor(max_workers=min(POD_WORKERS, len(items)),
                            thread_name_prefix="pods") as pool:
        futures = [pool.submit(func, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _make_netns(netns: str) -> None:
    """A namespace with its loopback up, made in process (no `ip` per change)."""
    try:
        nl.create_netns(netns)
    except FileExistsError:
        raise BackendError(f"namespace {netns} already exists") from None
    with nl.Netlink(netns) as link:
        link.set_up("lo")


def _pids_in(namespaces: list[str]) -> dict[str, list[int]]:
    """The processes in each namespace, as `ip netns pids` finds them (the namespace of
    /proc/PID/ns/net against the namespace's file), with one pass over /proc for all."""
    wanted: dict[tuple[int, int], str] = {}
    for netns in namespaces:
        try:
            st = os.stat(NETNS_DIR / netns)
        except FileNotFoundError:
            continue
        wanted[(st.st_dev, st.st_ino)] = netns
    found: dict[str, list[int]] = {netns: [] for netns in wanted.values()}
    if not wanted:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        owner = wanted.get((st.st_dev, st.st_ino))
        if owner is not None:
            found[owner].append(int(entry.name))
    return found


def _stop_processes(namespaces: list[str]) -> None:
    """End the processes left in these namespaces (iperf of a killed run), each by its own
    pid: SIGTERM, then SIGKILL to what still runs after 2 s."""
    pids = [pid for found in _pids_in(namespaces).values() for pid in found]
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
