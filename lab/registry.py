"""The backends that exist: each one's name, the package that realizes it, and the options
it takes. A leaf module (it imports nothing of lab), so the lab file's model, the CLI and
`lab doctor` all read this one table without importing any backend; `lab.backends.load`
imports only the backend that is used.

A new backend is a new package under lab/backends/ and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

# The Vagrant providers a lab can boot its VMs with (lab.yaml vagrant.provider, --provider).
PROVIDERS = ("virtualbox", "libvirt")


@dataclass(frozen=True)
class Option:
    """A command-line option only some backends take (`--provider` for vagrant)."""

    name: str
    choices: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class Entry:
    name: str
    package: str  # exports BACKEND (the Backend class) and checks(lab, options)
    summary: str
    options: tuple[Option, ...] = ()
    systems: tuple[str, ...] = ()  # host OSes it runs on (hostos.Platform.system); () any


PROVIDER = Option("provider", PROVIDERS,
                  "Vagrant provider (default: the one the lab is up with, else lab.yaml's "
                  "vagrant.provider).")

BACKENDS = (
    Entry("netns", "lab.backends.netns",
          "hosts and pods as network namespaces on this machine (Linux, root)",
          systems=("linux",)),
    Entry("vagrant", "lab.backends.vagrant",
          "hosts as Vagrant VMs (VirtualBox or libvirt), Kubernetes on the node",
          (PROVIDER,)),
    Entry("cluster", "lab.backends.cluster",
          "scenarios on a Kubernetes cluster of yours, reached by kubeconfig and context"),
)
NAMES = tuple(e.name for e in BACKENDS)
# lab.yaml's default: the first backend that can run here (see `choose`).
AUTO = "auto"
CHOICES = (*NAMES, AUTO)  # what lab.yaml's backend: and --backend accept
# Every option any backend takes, once each (the CLI offers these on up and doctor).
OPTIONS = tuple({o.name: o for e in BACKENDS for o in e.options}.values())


def entry(name: str) -> Entry:
    for e in BACKENDS:
        if e.name == name:
            return e
    raise KeyError(name)


def choose(system: str, wsl: bool, root_or_sudo: bool) -> tuple[str, str]:
    """What `backend: auto` means on a machine: (backend name, why), netns where it can
    run (Linux, root or sudo, not WSL's VM-less kernel for VMs), vagrant elsewhere."""
    if system == "linux" and root_or_sudo:
        return "netns", "Linux with root or sudo: namespaces on this machine, no VMs"
    if system == "linux" and not wsl:
        return "vagrant", "Linux without root or sudo: namespaces need root, so VMs"
    if wsl:
        return "netns", "WSL2: Vagrant's VMs are not supported from WSL2; namespaces are"
    return "vagrant", "not Linux: namespaces are Linux's, so VMs"
