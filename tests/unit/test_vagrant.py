"""Vagrant pieces: parsers, the VirtualBox host-only rule, the resolved input, and the real
`vagrant` CLI validating the Vagrantfile (skipped only where vagrant is not installed;
CI installs it)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.backends.vagrant.checks import vbox_allowed_networks, vbox_subnet_check
from lab.backends.vagrant.cli import parse_machine_readable, parse_ssh_config, parse_status
from lab.backends.vagrant.inputs import vagrant_input
from lab.errors import BackendError
from lab.model.labfile import load_lab
from tests.support import REPO

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

DATA = Path(__file__).resolve().parent.parent / "data" / "vagrant"

def test_status_parser_on_real_output() -> None:
    """Captured from Vagrant 2.3.4 with vagrant-libvirt 0.11.2 by tests/integration/
    test_vm_lab.py (LAB_CAPTURE=1), which also checks the parser on the live output."""
    text = (DATA / "status-running.txt").read_text()
    assert parse_status(text) == {"mcastsrc": "running", "k8s": "running"}
    # The human-readable lines carry the same words: only `state` lines count.
    assert sum(1 for ln in parse_machine_readable(text) if ln.kind == "state") == 2


def test_status_error_from_real_vagrant_output_is_raised_with_its_message() -> None:
    text = (DATA / "status-no-provider.txt").read_text()
    lines = parse_machine_readable(text)
    assert any(ln.kind == "error-exit" for ln in lines)
    with pytest.raises(BackendError, match="No usable default provider") as info:
        parse_status(text)
    assert "%!(VAGRANT_COMMA)" not in str(info.value) and "VirtualBox, VMware" in str(info.value)


def test_ssh_config_parser_takes_the_machine_key() -> None:
    text = (DATA / "ssh-config.txt").read_text()
    targets = parse_ssh_config(text)
    assert set(targets) == {"mcastsrc", "k8s"}
    k8s = targets["k8s"]
    assert (k8s.hostname, k8s.port, k8s.user) == ("192.168.121.45", 22, "vagrant")
    assert k8s.identity_file.endswith("/.vagrant/machines/k8s/libvirt/private_key")


def test_ssh_config_without_identity_is_an_error() -> None:
    with pytest.raises(BackendError, match="k8s lacks"):
        parse_ssh_config("Host k8s\n  HostName 10.1.1.1\n")


@pytest.mark.parametrize(("conf", "subnet", "ok"), [
    (None, "192.168.56.0/24", True),
    (None, "192.168.60.0/24", True),
    (None, "10.0.0.0/24", False),
    ("* 10.0.0.0/8 192.168.0.0/16\n", "10.0.0.0/24", True),
    ("# only comments\n", "192.168.56.0/24", False),
    ("* 192.168.56.0/24\n", "192.168.57.0/24", False),
])
def test_virtualbox_host_only_rule(conf: str | None, subnet: str, ok: bool) -> None:
    check = vbox_subnet_check(ipaddress.IPv4Network(subnet), conf)
    assert check.ok is ok
    if not ok:
        assert f"* {subnet}" in check.fix and "/etc/vbox/networks.conf" in check.fix


def test_allowed_networks_parsing() -> None:
    assert [str(n) for n in vbox_allowed_networks("* 10.0.0.0/8 bogus\nx 1.0.0.0/8\n")] == \
        ["10.0.0.0/8"]


def test_resolved_input_comes_from_the_lab_file() -> None:
    lab = load_lab(REPO / "lab.yaml")
    data = vagrant_input(lab, "virtualbox")
    assert [(h["name"], h["address"]) for h in data["hosts"]] == \
        [(h.name, str(h.address)) for h in lab.hosts]
    assert data["network"]["netmask"] == "255.255.255.0"
    assert data["box"] == {"name": lab.vagrant.boxes["virtualbox"].name,
                           "version": lab.vagrant.boxes["virtualbox"].version}


needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant not installed")


def _vagrant(folder: Path, *args: str, env_json: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ)
    if env_json is not None:
        env["LAB_VAGRANT_JSON"] = str(env_json)
    return subprocess.run(["vagrant", *args], cwd=folder, capture_output=True, text=True,
                          timeout=180, env=env)


@needs_vagrant
@pytest.mark.vagrant
@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_real_vagrant_validates_the_vagrantfile(provider: str, tmp_path: Path) -> None:
    shutil.copy(REPO / "Vagrantfile", tmp_path / "Vagrantfile")
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    if provider == "libvirt":
        data["vagrant"]["libvirt"] = {"driver": "qemu", "direct_boot": {
            "kernel": "/boxes/vmlinuz", "initrd": "/boxes/initrd.img",
            "cmd_line": "root=/dev/vda rw console=ttyS0"}}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    lab = load_lab(tmp_path / "lab.yaml")
    resolved = tmp_path / "vagrant.json"
    resolved.write_text(json.dumps(vagrant_input(lab, provider)))
    # --ignore-provider: Vagrant 2.3.4 otherwise needs the provider itself installed.
    proc = _vagrant(tmp_path, "validate", "--ignore-provider", env_json=resolved)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


@needs_vagrant
@pytest.mark.vagrant
def test_plain_vagrant_without_lab_up_says_what_to_do(tmp_path: Path) -> None:
    shutil.copy(REPO / "Vagrantfile", tmp_path / "Vagrantfile")
    proc = _vagrant(tmp_path, "status")
    assert proc.returncode != 0
    assert "lab up --backend vagrant" in proc.stdout + proc.stderr
