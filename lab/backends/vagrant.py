"""The vagrant backend: the lab's hosts are VMs booted by Vagrant, reached with fabric."""

from __future__ import annotations

import shlex
import time
import uuid

from lab import kubepods, libvirtnet
from lab.backends.base import Backend, HostStatus, LabStatus, Pod, PodSpec
from lab.errors import BackendError
from lab.manifests import dump_all, nad_manifest
from lab.model import Lab
from lab.provision import DEFAULT_STATE_DIR, Provisioner, StepOutcome, load_steps
from lab.sshhost import SshHost
from lab.state import State, lab_dir
from lab.ui import Reporter
from lab.vagrant_doctor import vagrant_checks
from lab.vagrantcli import SshTarget, VagrantCLI
from lab.vagrantinput import resolved_path, vagrant_input, write_input

UP_TIMEOUT_S = 1800.0
DESTROY_TIMEOUT_S = 600.0
SSH_READY_S = 300.0
# Receiver pods end by themselves after this, even if `lab` is killed before deleting them.
POD_LIFETIME_S = 1800


class VagrantBackend(Backend):
    name = "vagrant"

    def __init__(self, lab: Lab, state: State, reporter: Reporter,
                 provider: str | None = None) -> None:
        super().__init__(lab, state, reporter)
        self._provider = provider
        self._hosts: dict[str, SshHost] = {}  # one reused SSH connection per host

    @property
    def provider(self) -> str:
        """--provider, else the provider the lab is up with, else the lab file's."""
        return self._provider or self.state.data.get("provider") or self.lab.vagrant.provider

    def _cli(self) -> VagrantCLI:
        return VagrantCLI(self.lab.project_dir,
                          {"LAB_VAGRANT_JSON": str(resolved_path(self.lab)),
                           "VAGRANT_DEFAULT_PROVIDER": self.provider})

    def preflight(self) -> None:
        failed = [c for c in vagrant_checks(self.lab, self.provider) if not c.ok and c.blocking]
        if failed:
            raise BackendError("this machine is not ready for the vagrant backend "
                               f"({self.provider}):\n" +
                               "\n".join(f"  - {c.message} Fix: {c.fix}" for c in failed))

    def up(self) -> None:
        self.preflight()
        write_input(self.lab, vagrant_input(self.lab, self.provider))
        self.state.data.update({"backend": self.name, "provider": self.provider,
                                "status": "creating", "created": time.time()})
        self.state.save()
        if self.provider == "libvirt":
            with self.reporter.step("libvirt networks (isolated: no forwarding, no DNS)"):
                libvirtnet.ensure(self.lab, self._record_network)
        cli = self._cli()
        states = cli.status() if self.state.data.get("ssh") else {}
        if states and all(states.get(h.name) == "running" for h in self.lab.hosts):
            # A ready lab: one `vagrant status` instead of a `vagrant up` (seconds each).
            self.reporter.info("VMs already running")
        else:
            # Booted (again): addresses from DHCP and NIC names may differ from the record.
            for key in ("ssh", "lab_nics"):
                self.state.data.pop(key, None)
            self._hosts.clear()
            with self.reporter.step(f"vagrant up ({self.provider}): "
                                    f"{', '.join(h.name for h in self.lab.hosts)}"):
                # libvirt boots machines in parallel; VirtualBox does not support it.
                cli.up(self.provider, UP_TIMEOUT_S, parallel=self.provider == "libvirt")
        hosts = {h.name: self._ssh_host(cli, h.name) for h in self.lab.hosts}
        with self.reporter.step("SSH answers on every host"):
            for host in hosts.values():
                host.wait_ready(SSH_READY_S)
        tiers = {"base", "kubernetes"} if self.lab.kubernetes.provision else {"base"}
        steps = [s for s in load_steps() if s.tier in tiers]
        provisioner = Provisioner(steps, lab_dir(self.lab.project_dir, self.lab.name)
                                  / "logs", self.reporter, on_step=self._record_step)
        progress = self.state.mapping("provisioning")
        for h in self.lab.hosts:
            progress[h.name] = {"done": [], "total": provisioner.total_for(h.role)}
        self.state.save()
        with self.reporter.step("provision"):
            provisioner.provision([(hosts[h.name], h.role, self.step_env(h.name))
                                   for h in self.lab.hosts])
        self.state.data["status"] = "up"
        self.state.save()

    def _record_step(self, outcome: StepOutcome) -> None:
        # `lab status` shows this while another `lab up` provisions.
        self.state.mapping("provisioning")[outcome.host]["done"].append(outcome.step)
        self.state.save()

    def _record_network(self, name: str) -> None:
        recorded = self.state.list("libvirt_networks")
        if name not in recorded:
            recorded.append(name)
            self.state.save()

    def step_env(self, host_name: str) -> dict[str, str]:
        h = self.lab.host(host_name)
        k = self.lab.kubernetes
        env = {"LAB_NAME": self.lab.name, "LAB_ROLE": h.role, "LAB_ADDRESS": str(h.address),
               "LAB_SUBNET": str(self.lab.subnet),
               "LAB_PREFIXLEN": str(self.lab.subnet.prefixlen)}
        if h.role == "node":
            env.update({"LAB_NODE_NAME": h.name, "LAB_POD_SUBNET": str(self.lab.pod_subnet),
                        "LAB_K8S_MINOR": k.minor, "LAB_K8S_PACKAGE_VERSION": k.package_version,
                        "LAB_FLANNEL": k.flannel, "LAB_MULTUS": k.multus,
                        # The master is the NIC found on the node; attachment.sh fills it in.
                        "LAB_NAD_TEMPLATE": dump_all([nad_manifest(self.lab, "@LAB_NIC@")])})
        return env

    def _ssh_host(self, cli: VagrantCLI, name: str) -> SshHost:
        if name not in self._hosts:
            if name not in self.state.mapping("ssh"):
                self.state.mapping("ssh")[name] = cli.ssh_config(name).__dict__
                self.state.save()
            self._hosts[name] = SshHost(name, SshTarget(**self.state.mapping("ssh")[name]))
        return self._hosts[name]

    def destroy(self) -> None:
        if not resolved_path(self.lab).exists() and not self.state.exists:
            self.reporter.info(f"lab {self.lab.name} is not up: nothing to destroy")
            return
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()
        try:
            with self.reporter.step("vagrant destroy"):
                self._cli().destroy(DESTROY_TIMEOUT_S)
        finally:
            # The networks go even when Vagrant fails. Besides those recorded, the lab's own
            # names are removed too: an `up` killed between define and record leaves one,
            # and vagrant-libvirt would pick that one up again by its address.
            networks = sorted(set(self.state.list("libvirt_networks"))
                              | set(libvirtnet.wanted_networks(self.lab)))
            if self.provider == "libvirt" or self.state.list("libvirt_networks"):
                with self.reporter.step(f"remove libvirt networks {', '.join(networks)}"):
                    libvirtnet.remove(networks)
        self.state.remove()
        resolved_path(self.lab).unlink(missing_ok=True)

    def status(self) -> LabStatus:
        if not resolved_path(self.lab).exists():
            return LabStatus(self.lab.name, self.name, "down", tuple(
                HostStatus(h.name, "not created", str(h.address)) for h in self.lab.hosts), ())
        states = self._cli().status()  # one vagrant call for every machine
        progress = self.state.mapping("provisioning")
        hosts = tuple(HostStatus(h.name, states.get(h.name, "unknown"), str(h.address),
                                 f"{self.provider}, {_progress(progress.get(h.name))}")
                      for h in self.lab.hosts)
        words = {h.state for h in hosts}
        overall = "up" if words == {"running"} and self.state.data.get("status") == "up" \
            else "down" if words <= {"not_created", "not created"} else "partial"
        return LabStatus(self.lab.name, self.name, overall, hosts, (),
                         {"provider": self.provider})

    def host(self, name: str) -> SshHost:
        if self.state.data.get("status") != "up":
            raise BackendError(f"lab {self.lab.name} is not up; run `lab up` first")
        return self._ssh_host(self._cli(), name)

    def lab_nic(self, host: str) -> str:
        """Found by address during provisioning (step lab-nic) and recorded on the host."""
        nics = self.state.mapping("lab_nics")
        if host not in nics:
            out = self.host(host).run(["cat", f"{DEFAULT_STATE_DIR}/lab-nic"], timeout=30,
                                      what=f"read {host}'s lab NIC").stdout.strip()
            nics[host] = out
            self.state.save()
        return str(nics[host])

    def interactive_argv(self, host: str, argv: list[str]) -> list[str]:
        t = self.host(host).target
        return ["ssh", "-t", "-i", t.identity_file, "-p", str(t.port), "-o",
                "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                # ssh joins its arguments into one remote command line: quote them here.
                f"{t.user}@{t.hostname}", shlex.join(argv)]

    def create_pods(self, specs: list[PodSpec]) -> list[Pod]:
        if not self.lab.kubernetes.provision:
            raise BackendError("pod receivers need Kubernetes on the node, and lab.yaml says "
                               "kubernetes.provision: false; run host-baseline, or set it to "
                               "true and run `lab up` again")
        node = self.host(self.lab.node.name)
        run_label = f"{self.lab.name}-{uuid.uuid4().hex[:8]}"
        names = {spec.name: f"{self.lab.name}-{spec.name}" for spec in specs}
        self.state.mapping("pod_runs")[run_label] = sorted(names)
        self.state.save()  # recorded before the pods exist
        manifests = [kubepods.sleeper_pod(self.lab, names[s.name], run_label, s.attachment,
                                          POD_LIFETIME_S) for s in specs]
        try:
            kubepods.create(node, self.lab, manifests, run_label)
        except BaseException:
            self._delete_run(run_label)
            raise
        return [Pod(s.name, kubepods.PodHost(s.name, names[s.name], node), s.attachment)
                for s in specs]

    def delete_pods(self, pods: list[Pod]) -> None:
        wanted = {p.name for p in pods}
        for label, names in list(self.state.mapping("pod_runs").items()):
            if wanted & set(names):
                self._delete_run(label)

    def _delete_run(self, label: str) -> None:
        kubepods.delete(self.host(self.lab.node.name), label)
        self.state.mapping("pod_runs").pop(label, None)
        self.state.save()


def _progress(record: dict[str, object] | None) -> str:
    if not record:
        return "not provisioned"
    done = record.get("done")
    count = len(done) if isinstance(done, list) else 0
    return f"provisioned {count}/{record.get('total')} steps"
