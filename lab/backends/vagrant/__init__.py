"""The vagrant backend: hosts as Vagrant VMs (VirtualBox or libvirt)."""

from lab.backends.vagrant.backend import VagrantBackend as BACKEND
from lab.backends.vagrant.checks import checks

__all__ = ["BACKEND", "checks"]
