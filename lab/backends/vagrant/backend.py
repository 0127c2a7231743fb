"""The vagrant backend: the lab's hosts are VMs booted by Vagrant, reached with fabric."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lab import names, snooping
from lab.backends.base import (
    Backend,
    HostState,
    HostStatus,
    LabState,
    LabStatus,
    Pod,
    overall_state,
)
from lab.backends.vagrant import boxes, libvirtnet
from lab.backends.vagrant.checks import checks
from lab.backends.vagrant.cli import VagrantCLI
from lab.backends.vagrant.inputs import resolved_path, vagrant_input, write_input
from lab.backends.vagrant.record import Progress, VagrantRecord
from lab.bundle.manifest import BOX, MANIFEST, Bundle, sha256_of
from lab.diagnose.selfcheck import host_checks, selfcheck
from lab.errors import BackendError
from lab.host import Host, PodSpec
from lab.kube import pods as kubepods
from lab.kube.kubectl import Kubectl
from lab.kube.manifests import nad_manifest, receiver_pods
from lab.model.lab import Lab
from lab.remote.provision import DEFAULT_STATE_DIR, Provisioner, StepOutcome, load_steps
from lab.remote.ssh import SshHost
from lab.state import State
from lab.ui import Reporter

UP_TIMEOUT_S = 1800.0
# The kubelet's default maxPods is 110 per node; kube-system, flannel and Multus take ~10.
MAX_RECEIVER_PODS = 100
DESTROY_TIMEOUT_S = 600.0
SSH_READY_S = 300.0
SNAPSHOT_TIMEOUT_S = 900.0  # every VM's disk and memory, one after the other
API_SERVER_PORT = 6443  # kubeadm's default for the API server
JOIN_TOKEN_TTL = "30m"  # long enough for every worker's join, retries included

# `kubeadm token create --print-join-command` prints one line:
# kubeadm join HOST:PORT --token ABCDEF.0123456789ABCDEF --discovery-token-ca-cert-hash sha256:HEX
_JOIN = re.compile(r"--token\s+([a-z0-9]{6}\.[a-z0-9]{16})\s+"
                   r"--discovery-token-ca-cert-hash\s+(sha256:[0-9a-f]{64})\b")


VM_BUNDLE_DIR = f"{DEFAULT_STATE_DIR}/bundle"
BUNDLE_SEND_TIMEOUT_S = 900.0
BOX_ADD_TIMEOUT_S = 1800.0


def bundle_id(bundle: Bundle) -> str:
    """The bundle's identity: the sha256 of its manifest, which lists every file's."""
    return sha256_of(bundle.folder / MANIFEST)


def bundle_box_catalog(bundle: Bundle) -> dict[str, Any]:
    """Vagrant's box catalog (metadata JSON) for the bundle's box file, with its sha256,
    so that `vagrant box add` records the name and version and checks the file."""
    box = bundle.box
    return {"name": box["name"], "versions": [{"version": box["version"], "providers": [{
        "name": box["provider"], "url": (bundle.folder / box["file"]).resolve().as_uri(),
        "checksum_type": "sha256", "checksum": bundle.files[box["file"]]}]}]}


# The CA's public key hash as kubeadm's --discovery-token-ca-cert-hash takes it (its docs'
# own command). Also in lib.sh for the workers (lab_ca_hash).
CA_HASH_SCRIPT = ('openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der '
                  '| sha256sum')


def kubeadm_join_args(printed: str) -> tuple[str, str]:
    """(token, CA hash) from what `kubeadm token create --print-join-command` printed."""
    found = _JOIN.search(printed)
    if found is None:
        shown = re.sub(r"--token\s+\S+", "--token <hidden>", printed.strip())[:300]
        raise BackendError("kubeadm token create --print-join-command printed no token and "
                           f"CA hash in the form kubeadm join takes: {shown!r}")
    return found.group(1), found.group(2)

# What `vagrant status` says of a machine (VirtualBox, libvirt), as the lab says it.
_VAGRANT_STATES = {
    "running": HostState.RUNNING,
    "not_created": HostState.NOT_CREATED,
    **{word: HostState.STOPPED for word in ("poweroff", "shutoff", "shutdown", "saved",
                                            "aborted", "paused", "suspended", "stopped",
                                            "inaccessible", "gurumeditation")},
}


def host_state(vagrant_word: str | None) -> HostState:
    return _VAGRANT_STATES.get(vagrant_word or "", HostState.UNKNOWN)


class VagrantBackend(Backend):
    name = "vagrant"
    writes_lock = True

    @property
    def record(self) -> VagrantRecord:
        return self.state.record(VagrantRecord)

    def __init__(self, lab: Lab, state: State, reporter: Reporter, *,
                 options: Mapping[str, str] | None = None) -> None:
        super().__init__(lab, state, reporter, options=options)
        self._hosts: dict[str, SshHost] = {}  # one reused SSH connection per host
        # `lab up --locked`: host -> package -> version; URL -> sha256; the box.
        self._pins: dict[str, dict[str, str]] = {}
        self._fetch_pins: dict[str, str] = {}
        self._box_pin: dict[str, str] | None = None
        self._bundle: Bundle | None = None  # `lab up --bundle`

    @property
    def provider(self) -> str:
        """--provider, else the provider the lab is up with, else the lab file's."""
        return self.options.get("provider") or self.record.provider or \
            self.lab.vagrant.provider

    def _cli(self) -> VagrantCLI:
        project, lab = self.lab.project_dir, self.lab.name
        return VagrantCLI(project,
                          {"LAB_VAGRANT_JSON": str(resolved_path(self.lab)),
                           "VAGRANT_DOTFILE_PATH": str(names.vagrant_dotfile_dir(project, lab)),
                           "VAGRANT_DEFAULT_PROVIDER": self.provider})

    def preflight(self) -> None:
        failed = [c for c in checks(self.lab, {"provider": self.provider})
                  if not c.ok and c.blocking]
        if failed:
            raise BackendError("this machine is not ready for the vagrant backend "
                               f"({self.provider}):\n" +
                               "\n".join(f"  - {c.message} Fix: {c.fix}" for c in failed))

    def box_identity(self) -> dict[str, str] | None:
        found = self.box_source()
        if found is None:
            return None
        identity, folder = found
        cache = names.lab_dir(self.lab.project_dir, self.lab.name) / "box-sha256.json"
        return {**identity, "sha256": boxes.cached_tree_sha256(folder, cache)}

    def box_source(self) -> tuple[dict[str, str], Path] | None:
        box = self.lab.vagrant.boxes[self.provider]
        folder = boxes.box_dir(box.name, box.version, self.provider)
        if folder is None:
            return None
        return {"name": box.name, "version": box.version, "provider": self.provider}, folder

    def bundle_sources(self) -> tuple[Mapping[str, Any], list[str], str] | None:
        if self.record.status != "up":
            return None
        return ({h.name: self.host(h.name) for h in self.lab.hosts},
                [n.name for n in self.lab.nodes], DEFAULT_STATE_DIR)

    def pin(self, packages: Mapping[str, Mapping[str, str]], downloads: Mapping[str, str],
            box: Mapping[str, str] | None) -> None:
        self._pins = {host: dict(p) for host, p in packages.items()}
        self._fetch_pins = dict(downloads)
        self._box_pin = dict(box) if box else None

    def use_bundle(self, bundle: Bundle) -> None:
        self._bundle = bundle

    def _add_bundle_box(self) -> None:
        """The bundle's box into Vagrant, when it is the lab file's and Vagrant lacks it."""
        b, box = self._bundle, self.lab.vagrant.boxes[self.provider]
        if b is None or not b.box:
            return
        if (b.box.get("name"), b.box.get("version"), b.box.get("provider")) != \
                (box.name, box.version, self.provider):
            self.reporter.warn(f"the bundle's box ({b.box.get('name')} {b.box.get('version')}"
                               f", {b.box.get('provider')}) is not the lab file's; not added")
            return
        if boxes.box_dir(box.name, box.version, self.provider) is not None:
            return
        catalog = names.lab_dir(self.lab.project_dir, self.lab.name) / "bundle-box.json"
        catalog.parent.mkdir(parents=True, exist_ok=True)
        catalog.write_text(json.dumps(bundle_box_catalog(b)))
        with self.reporter.step(f"vagrant box add {box.name} {box.version} from the bundle"):
            self._cli().box_add(catalog, BOX_ADD_TIMEOUT_S)

    def _send_bundle(self, hosts: Mapping[str, SshHost]) -> None:
        """The bundle onto every host, side by side; a host that has this very bundle
        already is left as it is (a second `lab up --bundle` sends nothing)."""
        b = self._bundle
        if b is None:
            return
        bid = bundle_id(b)
        sums = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(b.files.items())
                       if not rel.startswith(f"{BOX}/"))
        index = "".join(f"{url}\t{rel}\n" for url, rel in sorted(b.downloads.items()))
        staging = names.lab_dir(self.lab.project_dir, self.lab.name) / "bundle-send"
        staging.mkdir(parents=True, exist_ok=True)
        for name, text in (("SHA256SUMS", sums), ("downloads.tsv", index), ("bundle.id", bid)):
            (staging / name).write_text(text)
        files = [(b.folder / rel, rel) for rel in sorted(b.files)
                 if not rel.startswith(f"{BOX}/")]
        files += [(staging / n, n) for n in ("SHA256SUMS", "downloads.tsv", "bundle.id")]

        def send(host: SshHost) -> None:
            have = host.run(["cat", f"{VM_BUNDLE_DIR}/bundle.id"], timeout=30, check=False)
            if have.ok and have.stdout.strip() == bid:
                return
            host.send_files(files, VM_BUNDLE_DIR, timeout=BUNDLE_SEND_TIMEOUT_S)

        with self.reporter.step(f"send the bundle ({len(files) - 3} files) to "
                                f"{', '.join(hosts)}"), \
                ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="send") as pool:
            list(pool.map(send, hosts.values()))

    def _check_box_pin(self) -> None:
        """Before any VM boots: the box on this machine is the locked one (when it is here;
        Vagrant adds it at `up` otherwise, and the lock is compared after)."""
        if self._box_pin is None:
            return
        box = self.lab.vagrant.boxes[self.provider]
        for key, here in (("name", box.name), ("version", box.version),
                          ("provider", self.provider)):
            if self._box_pin.get(key) != here:
                raise BackendError(f"box.{key}: {here} in {self.lab.source.name}, the lock "
                                   f"says {self._box_pin.get(key)}")
        found = self.box_identity()
        if found is not None and found["sha256"] != self._box_pin.get("sha256"):
            raise BackendError(f"box.sha256: the box {box.name} {box.version} on this "
                               f"machine is {found['sha256']}, the lock says "
                               f"{self._box_pin.get('sha256')}: it is another build of that "
                               "version (`vagrant box remove` it and add the locked one)")

    def up(self) -> None:
        self.preflight()
        self._add_bundle_box()  # first: an attendee's box comes from the bundle
        self._check_box_pin()
        r = self.record
        r.provider, r.status, r.created = self.provider, "creating", time.time()
        r.selfcheck = []  # the last `up`'s no longer says anything about this one
        self.state.save()
        management = None
        querier_on: float | None = None
        if self.provider == "libvirt":
            with self.reporter.step(f"libvirt networks (management: "
                                    f"{self.lab.vagrant.libvirt.management}; lab: isolated)"):
                management = self._management_subnet()
                libvirtnet.ensure(self.lab, management, self._record_network)
                querier_on = time.monotonic() if libvirtnet.configure_switch(self.lab) \
                    else None
        write_input(self.lab, vagrant_input(self.lab, self.provider, management))
        cli = self._cli()
        states = cli.status() if r.ssh else {}
        if states and all(states.get(h.name) == "running" for h in self.lab.hosts):
            # A ready lab: one `vagrant status` instead of a `vagrant up` (seconds each).
            self.reporter.info("VMs already running")
        else:
            # Booted (again): addresses from DHCP and NIC names may differ from the record.
            r.ssh.clear()
            r.lab_nics.clear()
            self._hosts.clear()
            with self.reporter.step(f"vagrant up ({self.provider}): "
                                    f"{', '.join(h.name for h in self.lab.hosts)}") as step:
                # libvirt boots machines in parallel; VirtualBox does not support it.
                cli.up(self.provider, UP_TIMEOUT_S, parallel=self.provider == "libvirt",
                       on_line=lambda line: step.progress(line.strip()[:120])
                       if line.strip() else None)
        hosts = {h.name: self._ssh_host(cli, h.name) for h in self.lab.hosts}
        # Side by side: each is a TCP and SSH handshake, half a second under QEMU.
        with self.reporter.step("SSH answers on every host"), \
                ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="ssh") as pool:
            list(pool.map(lambda host: host.wait_ready(SSH_READY_S), hosts.values()))
        self._send_bundle(hosts)
        tiers = {"base", "kubernetes"} if self.lab.kubernetes.provision else {"base"}
        steps = [s for s in load_steps() if s.tier in tiers]
        control_plane = hosts[self.lab.node.name]
        provisioner = Provisioner(steps, names.logs_dir(self.lab.project_dir, self.lab.name),
                                  self.reporter, on_step=self._record_step,
                                  late_env={"kubeadm-join": lambda: self._join_token(
                                      control_plane)},
                                  between_rounds=lambda: self._cluster_identity(
                                      control_plane))
        r.provisioning = {h.name: Progress(provisioner.total_for(self.roles(h.name)))
                          for h in self.lab.hosts}
        self.state.save()
        with self.reporter.step("provision"):
            try:
                provisioner.provision([(hosts[h.name], self.roles(h.name),
                                        self.step_env(h.name)) for h in self.lab.hosts])
            finally:
                # `lab status` names the failed step and its log until the next `up`.
                for failure in provisioner.failures:
                    progress = r.provisioning[failure.host]
                    progress.failed, progress.log = failure.step, str(failure.log)
                self.state.save()
        if self.lab.kubernetes.provision:
            node = hosts[self.lab.node.name]
            master = self._lab_nic_of(node)
            with self.reporter.step(f"NetworkAttachmentDefinition {self.lab.attachment.name} "
                                    f"(macvlan on {node.name}'s {master})"):
                Kubectl(node).apply([nad_manifest(self.lab, master)],
                                    what="apply the NetworkAttachmentDefinition")
        with self.reporter.step("self-check") as step:
            r.selfcheck = selfcheck(self.lab, dict(hosts),
                                    {name: self._lab_nic_of(h) for name, h in hosts.items()})
            self.state.save()
            failed = [c for c in r.selfcheck if not c.ok and c.blocking]
            step.progress(f"{len(r.selfcheck) - len(failed)}/{len(r.selfcheck)} passed")
            if failed:
                first = failed[0]
                raise BackendError(f"self-check failed: {first.name}: {first.message}\n"
                                   f"  look at: {first.fix}\n  `lab logs` gathers what it "
                                   "takes to see why, into one file to send")
        if querier_on is not None:
            snooping.wait_out_querier_start(querier_on)  # long past after a boot, as a rule
        r.status = "up"
        self.state.save()

    # -- the lab switch: the libvirt lab network's bridge ---------------------------------
    def _switch_ports(self) -> dict[str, str]:
        if self.provider != "libvirt":
            raise BackendError(
                "VirtualBox's host-only network is no bridge of this machine: lab cannot read "
                "its ports (expect_port) and it does not snoop IGMP; use --provider libvirt "
                "(Linux) or the netns backend")
        return libvirtnet.lab_ports(self.lab, [h.name for h in self.lab.hosts])

    def port_tx(self) -> dict[str, tuple[int, int]]:
        return libvirtnet.port_tx(self._switch_ports())

    def _switch_members(self, group: str, ports: dict[str, str]) -> dict[str, float]:
        return snooping.memberships(libvirtnet.mdb_json(self.lab), group,
                                    {tap: host for host, tap in ports.items()})

    def _snoops(self) -> bool:
        sw = self.lab.switch
        return self.provider == "libvirt" and bool(sw and sw.snoops)

    def wait_for_switch(self, group: str, hosts: set[str], timeout: float) -> None:
        if self._snoops():
            ports = self._switch_ports()
            snooping.wait_joined(lambda: self._switch_members(group, ports), group, hosts,
                                 timeout)

    def wait_for_leave(self, group: str, hosts: set[str], timeout: float) -> None:
        if self._snoops() and hosts:
            ports = self._switch_ports()
            snooping.wait_left(lambda: self._switch_members(group, ports), group, hosts,
                               timeout)

    def _record_step(self, outcome: StepOutcome) -> None:
        # `lab status` shows this while another `lab up` provisions.
        self.record.provisioning[outcome.host].done.append(outcome.step)
        self.state.save()

    def _management_subnet(self) -> ipaddress.IPv4Network:
        """This lab's own (recorded at the first `up`, so it stays while the lab lives)."""
        recorded = self.record.management_subnet
        if recorded:
            return ipaddress.IPv4Network(recorded)
        used = libvirtnet.subnets_in_use(exclude=set(libvirtnet.network_names(self.lab)))
        libvirtnet.check_lab_subnet(self.lab, used)
        chosen = libvirtnet.free_management_subnet(self.lab, used)
        self.record.management_subnet = str(chosen)
        self.state.save()
        return chosen

    def _record_network(self, name: str) -> None:
        recorded = self.record.libvirt_networks
        if name not in recorded:
            recorded.append(name)
            self.state.save()

    def roles(self, host_name: str) -> tuple[str, ...]:
        """The host's provisioning roles: the first node is the control plane (kubeadm
        init), the other nodes are workers that join it."""
        h = self.lab.host(host_name)
        if h.role != "node":
            return (h.role,)
        return (h.role, "control-plane" if h.name == self.lab.node.name else "worker")

    def _cluster_identity(self, control_plane: SshHost) -> dict[str, str]:
        """After the first round, for the workers' join: the cluster CA's public key hash
        (no secret; a join step's parameter, so a cluster made anew rejoins its workers)
        and the control plane's lab NIC. Nothing without workers or without Kubernetes."""
        if len(self.lab.nodes) < 2 or not self.lab.kubernetes.provision:
            return {}
        ca = control_plane.run(["sh", "-c", CA_HASH_SCRIPT, "sh", "/etc/kubernetes/pki/ca.crt"],
                               timeout=60, what=f"read the cluster CA on {control_plane.name}")
        return {"LAB_JOIN_CA_HASH": f"sha256:{ca.stdout.split()[0]}",
                "LAB_CONTROL_PLANE_NIC": self._lab_nic_of(control_plane)}

    def _join_token(self, control_plane: SshHost) -> dict[str, str]:
        """A worker's token (30 minutes), made only when a join step must run."""
        printed = control_plane.run(
            ["kubeadm", "token", "create", f"--ttl={JOIN_TOKEN_TTL}", "--print-join-command"],
            timeout=60, what=f"make a join token on {control_plane.name}").stdout
        token, _ = kubeadm_join_args(printed)
        return {"LAB_JOIN_TOKEN": token}

    def step_env(self, host_name: str) -> dict[str, str]:
        h = self.lab.host(host_name)
        k = self.lab.kubernetes
        env = {"LAB_NAME": self.lab.name, "LAB_ROLE": h.role, "LAB_ADDRESS": str(h.address),
               "LAB_SUBNET": str(self.lab.subnet),
               "LAB_PREFIXLEN": str(self.lab.subnet.prefixlen)}
        if h.role == "node":
            env.update({"LAB_NODE_NAME": h.name, "LAB_POD_SUBNET": str(self.lab.pod_subnet),
                        "LAB_K8S_MINOR": k.minor, "LAB_K8S_PACKAGE_VERSION": k.package_version,
                        "LAB_PAUSE_IMAGE": k.pause_image,
                        "LAB_RECEIVER_IMAGE": names.NODE_BUILT_IMAGE
                        if k.iperf_image == "node" else "",
                        "LAB_FLANNEL": k.flannel, "LAB_MULTUS": k.multus})
            if h.name != self.lab.node.name:
                env["LAB_CONTROL_PLANE"] = f"{self.lab.node.address}:{API_SERVER_PORT}"
        env["LAB_BUNDLE_ID"] = bundle_id(self._bundle) if self._bundle else ""
        if self._bundle is not None:
            env.update({"LAB_BUNDLE": VM_BUNDLE_DIR, "LAB_BUNDLE_RELEASE": self._bundle.release,
                        "LAB_BUNDLE_ARCH": self._bundle.architecture})
        # `lab up --locked`: no step declares these parameters, so a lock never reruns a
        # done step; what is installed is compared with the lock after the steps.
        if self._pins.get(host_name):
            env["LAB_LOCKED"] = " ".join(f"{p}={v}" for p, v in
                                         sorted(self._pins[host_name].items()))
        if self._fetch_pins:
            env["LAB_LOCKED_FETCH"] = " ".join(f"{url} {digest}" for url, digest in
                                               sorted(self._fetch_pins.items()))
        return env

    def _ssh_host(self, cli: VagrantCLI, name: str) -> SshHost:
        if name not in self._hosts:
            if name not in self.record.ssh:
                self.record.ssh[name] = cli.ssh_config(name)
                self.state.save()
            self._hosts[name] = SshHost(name, self.record.ssh[name])
        return self._hosts[name]

    def destroy(self) -> None:
        if not resolved_path(self.lab).exists() and not self.state.exists:
            self.reporter.info(f"lab {self.lab.name} is not up: nothing to destroy")
            return
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()
        try:
            # No input file: an `up` failed before Vagrant was ever asked for a machine.
            if resolved_path(self.lab).exists():
                with self.reporter.step("vagrant destroy"):
                    self._cli().destroy(DESTROY_TIMEOUT_S)
        finally:
            # The networks go even when Vagrant fails. Besides those recorded, the lab's own
            # names are removed too: an `up` killed between define and record leaves one,
            # and vagrant-libvirt would pick that one up again by its address.
            networks = sorted(set(self.record.libvirt_networks)
                              | set(libvirtnet.network_names(self.lab)))
            if self.provider == "libvirt" or self.record.libvirt_networks:
                with self.reporter.step(f"remove libvirt networks {', '.join(networks)}"):
                    libvirtnet.remove(networks)
        self.state.remove()
        resolved_path(self.lab).unlink(missing_ok=True)
        # The provisioning logs belong to the lab (`lab logs` archives them before this).
        shutil.rmtree(names.logs_dir(self.lab.project_dir, self.lab.name), ignore_errors=True)

    def status(self) -> LabStatus:
        if not resolved_path(self.lab).exists():
            return LabStatus(self.lab.name, self.name, LabState.DOWN, tuple(
                HostStatus(h.name, HostState.NOT_CREATED, str(h.address))
                for h in self.lab.hosts), ())
        states = self._cli().status()  # one vagrant call for every machine
        progress = self.record.provisioning
        hosts = tuple(HostStatus(h.name, host_state(states.get(h.name)), str(h.address),
                                 f"{self.provider}, {_progress(progress.get(h.name))}"
                                 + _word(states.get(h.name)))
                      for h in self.lab.hosts)
        problems = tuple(
            f"{name}: step {p.failed} failed (log: {p.log}); fix what it says and run "
            "`lab up` again, or look around with `lab ssh " + name + "`"
            for name, p in progress.items() if p.failed) + tuple(
            f"self-check {c.name}: {c.message} (look at: {c.fix})"
            for c in self.record.selfcheck if not c.ok and c.blocking)

        return LabStatus(self.lab.name, self.name,
                         overall_state(hosts, self.record.status == "up"), hosts,
                         (), provider=self.provider, problems=problems,
                         selfcheck=tuple(self.record.selfcheck))

    def host(self, name: str) -> SshHost:
        if self.record.status != "up":
            raise BackendError(f"lab {self.lab.name} is not up; run `lab up` first")
        return self._ssh_host(self._cli(), name)

    def kubernetes(self) -> str | None:
        return None if self.lab.kubernetes.provision else \
            "not provisioned (kubernetes.provision: false)"

    def existing_hosts(self) -> Mapping[str, Host]:
        """The VMs that answered SSH once (recorded), whether provisioned or not."""
        return {name: self._hosts.get(name) or SshHost(name, target)
                for name, target in self.record.ssh.items()}

    def pod_hosts(self) -> Mapping[str, Host]:
        if not self.record.pod_runs:
            return {}
        kubectl = self._kubectl()
        return {m: kubepods.PodHost(m, names.kube_pod(self.lab.name, m), kubectl)
                for members in self.record.pod_runs.values() for m in members}

    def lab_nic(self, host: str) -> str:
        """Found by address during provisioning (step lab-nic) and recorded on the host."""
        return self._lab_nic_of(self.host(host))

    def _lab_nic_of(self, host: SshHost) -> str:
        nics = self.record.lab_nics
        if host.name not in nics:
            nics[host.name] = host.run(["cat", f"{DEFAULT_STATE_DIR}/lab-nic"], timeout=30,
                                       what=f"read {host.name}'s lab NIC").stdout.strip()
            self.state.save()
        return nics[host.name]

    def interactive_argv(self, host: str, argv: list[str]) -> list[str]:
        # Any VM that answered SSH once will do, up or not: a half-provisioned lab is where
        # a shell is needed most.
        if host not in self.record.ssh:
            raise BackendError(f"lab {self.lab.name} has no VM {host} yet; run `lab up` first")
        t = self.record.ssh[host]
        # /dev/null also on Windows: Win32-OpenSSH maps that very string to NUL (its
        # win32compat NULL_DEVICE), as Vagrant's own `vagrant ssh` relies on; os.devnull
        # there is "nul", which that mapping does not match and ssh would create as a file.
        login = ["ssh", "-t", "-i", t.identity_file, "-p", str(t.port), "-o",
                 "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 f"{t.user}@{t.hostname}"]
        # No command: the VM's own login shell (this machine's $SHELL, zsh on macOS, need
        # not exist there). ssh joins its arguments into one remote command line: quote.
        return login + ([shlex.join(argv)] if argv else [])

    def _kubectl(self) -> Kubectl:
        return Kubectl(self.host(self.lab.node.name))

    def create_pods(self, specs: list[PodSpec]) -> list[Pod]:
        if not self.lab.kubernetes.provision:
            raise BackendError("pod receivers need Kubernetes on the node, and lab.yaml says "
                               "kubernetes.provision: false; run host-baseline, or set it to "
                               "true and run `lab up` again")
        per_node = Counter(s.node or self.lab.node.name for s in specs)
        crowded = sorted(node for node, count in per_node.items() if count > MAX_RECEIVER_PODS)
        if crowded:
            raise BackendError(
                f"{per_node[crowded[0]]} receiver pods on {crowded[0]}: the kubelet runs at "
                f"most 110 pods a node (maxPods), about {MAX_RECEIVER_PODS} once kube-system, "
                "flannel and Multus run; lower the receivers' count in the scenario, or "
                "spread them over more nodes (or, on a cluster of your own, raise the "
                "kubelet's maxPods)")
        cases = {s.case for s in specs}
        if len(cases) != 1:
            raise ValueError(f"pods of one case at a time, not {sorted(cases)}")
        label = names.kube_run_label(self.lab.name, cases.pop())
        kubectl = self._kubectl()
        if label in self.record.pod_runs:
            # Left by a run that was killed: its pods have the names these need.
            self._delete_run(kubectl, label)
        self.record.pod_runs[label] = sorted(s.name for s in specs)
        self.state.save()  # recorded before the pods exist
        try:
            kubepods.create(kubectl, receiver_pods(self.lab, specs), label)
        except BaseException:
            self._delete_run(kubectl, label)
            raise
        return [Pod(s.name, kubepods.PodHost(s.name, names.kube_pod(self.lab.name, s.name),
                                             kubectl), s.attachment) for s in specs]

    def delete_pods(self, pods: list[Pod]) -> None:
        wanted = {p.name for p in pods}
        kubectl = self._kubectl()
        for label, members in list(self.record.pod_runs.items()):
            if wanted & set(members):
                self._delete_run(kubectl, label)

    # -- snapshots: Vagrant's, of every VM at once ------------------------------------
    def snapshots(self) -> dict[str, float]:
        return dict(self.record.snapshots)

    def snapshot_save(self, name: str) -> None:
        if self.record.status != "up":
            raise BackendError(f"lab {self.lab.name} is not up; run `lab up` first (a "
                               "snapshot keeps a lab that passed its self-check)")
        with self.reporter.step(f"vagrant snapshot save {name} "
                                f"({', '.join(h.name for h in self.lab.hosts)})"):
            self._cli().snapshot_save(name, SNAPSHOT_TIMEOUT_S)
        r = self.record
        r.snapshots[name] = time.time()
        saved = r.to_json()
        r.snapshot_records[name] = {k: saved[k] for k in _SNAPSHOT_FIELDS}
        self.state.save()

    def snapshot_delete(self, name: str) -> None:
        self._known_snapshot(name)
        with self.reporter.step(f"vagrant snapshot delete {name}"):
            self._cli().snapshot_delete(name, SNAPSHOT_TIMEOUT_S)
        self.record.snapshots.pop(name)
        self.record.snapshot_records.pop(name, None)
        self.state.save()

    def reset(self, name: str) -> None:
        """Every VM back to the snapshot, running; the record as it was then; SSH answers
        on every host and the hosts' self-check passes before it returns."""
        self._known_snapshot(name)
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()
        r = self.record
        r.status = "creating"  # until the VMs answer again: `lab run` refuses a half reset
        self.state.save()
        try:
            self._restore(name)
        except BackendError as exc:
            raise BackendError(f"lab reset {name} did not finish: {exc}\n  `lab reset {name}` "
                               "again, or `lab up` to provision what is there") from None
        r.status = "up"
        self.state.save()

    def _restore(self, name: str) -> None:
        r = self.record
        with self.reporter.step(f"vagrant snapshot restore {name}"):
            self._cli().snapshot_restore(name, SNAPSHOT_TIMEOUT_S)
        back = VagrantRecord.from_json({**r.to_json(), **r.snapshot_records.get(name, {})})
        for key in _SNAPSHOT_FIELDS:
            setattr(r, key, getattr(back, key))
        r.pod_runs.clear()  # pods of later runs are gone with the VMs' later state
        self.state.save()
        cli = self._cli()
        hosts = {h.name: self._ssh_host(cli, h.name) for h in self.lab.hosts}
        with self.reporter.step("SSH answers on every host"), \
                ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="ssh") as pool:
            list(pool.map(lambda host: host.wait_ready(SSH_READY_S), hosts.values()))
        with self.reporter.step("self-check (hosts)"):
            checks = host_checks(self.lab, dict(hosts),
                                 {n: self._lab_nic_of(h) for n, h in hosts.items()})
            failed = [c for c in checks if not c.ok]
            if failed:
                raise BackendError(f"after reset to {name}: self-check {failed[0].name} "
                                   f"failed: {failed[0].message}")

    def _delete_run(self, kubectl: Kubectl, label: str) -> None:
        kubepods.delete(kubectl, label)
        self.record.pod_runs.pop(label, None)
        self.state.save()


# What a snapshot keeps of the record: what the VMs were when it was taken.
_SNAPSHOT_FIELDS = ("provisioning", "lab_nics", "selfcheck")


def _word(vagrant_word: str | None) -> str:
    """Vagrant's own word where the lab's says less (stopped: poweroff, saved, ...)."""
    if vagrant_word is None or host_state(vagrant_word) in (HostState.RUNNING,
                                                             HostState.NOT_CREATED):
        return ""
    return f" (vagrant: {vagrant_word})"


def _progress(progress: Progress | None) -> str:
    if progress is None:
        return "not provisioned"
    failed = f", failed at {progress.failed}" if progress.failed else ""
    return f"provisioned {len(progress.done)}/{progress.total} steps{failed}"
