"""Snapshots and reset on the netns backend, through the real `lab` command: a netns lab
keeps no state worth saving, so `lab reset` is destroy and up, and what was changed in a
host since is gone. (The vagrant backend's snapshots run on real VMs: test_vm_lab.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import make_project

pytestmark = pytest.mark.netns


def _addresses(netns: str) -> list[str]:
    out = subprocess.run(["ip", "-n", netns, "-j", "addr", "show", "dev", "lo"],
                         capture_output=True, text=True, check=True, timeout=15).stdout
    return [a["local"] for link in json.loads(out) for a in link["addr_info"]]


def test_reset_returns_a_changed_lab_to_the_lab_file_and_it_passes(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    try:
        project.lab("up", check_codes=(0,))
        refused = project.lab("reset")
        assert refused.returncode == 2 and "has no snapshot to reset to" in refused.stderr
        saved = project.lab("snapshot", "save", check_codes=(0,))
        assert "snapshot ready of lab" in saved.stderr
        listed = project.lab("snapshot", "list", check_codes=(0,)).stdout
        assert listed.startswith("ready\t")
        # An attendee's change: an address of their own in the node's namespace (TEST-NET,
        # on its loopback: nothing leaves the namespace).
        node = f"{project.name}-k8s"
        subprocess.run(["ip", "-n", node, "addr", "add", "192.0.2.99/32", "dev", "lo"],
                       check=True, timeout=15)
        assert "192.0.2.99" in _addresses(node)
        unknown = project.lab("reset", "other")
        assert unknown.returncode == 3 and "has no snapshot 'other'; it has: ready" in \
            unknown.stderr
        reset = project.lab("reset", check_codes=(0,))
        assert "reset to snapshot ready in" in reset.stderr
        assert "192.0.2.99" not in _addresses(node)
        run = project.lab("run", "host-baseline", timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        # The snapshot outlives the reset, and goes when deleted.
        assert project.lab("snapshot", "list", check_codes=(0,)).stdout.startswith("ready\t")
        project.lab("snapshot", "delete", "ready", check_codes=(0,))
        assert "has no snapshot" in project.lab("snapshot", "list", check_codes=(0,)).stdout
    finally:
        project.lab("destroy", timeout=120)
    assert project.namespaces() == []


def test_lab_lock_on_netns_lists_this_machines_tools_and_locked_names_a_change(
        tmp_path: Path) -> None:
    """On a machine the lab does not own, the lock lists the packages the lab runs (iperf,
    tcpdump, iproute2, the CNI plugins), with dpkg's versions; `--locked` compares."""
    import yaml

    project = make_project(tmp_path / "p")
    try:
        project.lab("up", check_codes=(0,))
        assert not (project.dir / "lab.lock").exists()  # no VMs: `lab up` writes none
        written = project.lab("lock", check_codes=(0,))
        path = project.dir / "lab.lock"
        assert written.stdout.strip() == str(path)
        lock = yaml.safe_load(path.read_text())
        here = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "iperf",
                               "tcpdump", "iproute2", "containernetworking-plugins"],
                              capture_output=True, text=True, timeout=30).stdout
        versions = dict(line.split(" ", 1) for line in here.splitlines())
        assert set(lock["hosts"]) == {"mcastsrc", "k8s"} and "box" not in lock
        for host in lock["hosts"].values():
            assert host["packages"] == versions
            assert host["iperf"].startswith("iperf version 2")
            assert host["cni_plugins"] == \
                f"containernetworking-plugins {versions['containernetworking-plugins']}"
        same = project.lab("up", "--locked", check_codes=(0,))
        assert f"lab {project.name} is exactly what lab.lock lists" in same.stderr
        lock["hosts"]["k8s"]["packages"]["tcpdump"] = "0.0-0"
        path.write_text(yaml.safe_dump(lock, sort_keys=False))
        changed = project.lab("up", "--locked")
        assert changed.returncode == 3, changed.stdout + changed.stderr
        assert (f"hosts.k8s.packages.tcpdump: {versions['tcpdump']} here, the lock says "
                "0.0-0") in changed.stderr
    finally:
        project.lab("destroy", timeout=120)
    assert project.namespaces() == []
