"""Malformed lab and scenario files, through the real CLI: exit 2, one clear message naming
file and key (compared with golden files), no traceback, and nothing created.

Set UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate message change.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import base_lab, special_input_file

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "bad-input"
HOSTILE = "x; rm -rf / $(reboot) `id` | nc"

Mutation = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[int(p)] if p.isdigit() else d[p]  # type: ignore[index]
        if value is _DELETE:
            del d[last]  # type: ignore[arg-type]
        else:
            d[int(last) if last.isdigit() else last] = value  # type: ignore[index]
    return mutate


_DELETE = object()

LAB_CASES: dict[str, Mutation | str] = {
    "lab-empty": "",
    "lab-yaml-syntax": "name: mcast\nhosts: [\n",
    "lab-yaml-duplicate-key": "name: a\nname: b\n",
    "lab-not-a-mapping": "- just\n- a list\n",
    "lab-unknown-key": _set("colour", "blue"),
    "lab-missing-name": _set("name", _DELETE),
    "lab-bad-name": _set("name", "My Lab"),
    "lab-hostile-name": _set("name", HOSTILE),
    "lab-unknown-backend": _set("backend", "docker"),
    "lab-subnet-not-network": _set("network.subnet", "192.168.56.0/33"),
    "lab-subnet-host-bits": _set("network.subnet", "192.168.56.1/24"),
    "lab-nic-hostile": _set("network.nic", HOSTILE),
    "lab-hosts-not-list": _set("hosts", {"mcastsrc": {}}),
    "lab-host-outside-subnet": _set("hosts.0.address", "10.0.0.12"),
    "lab-host-duplicate-name": _set("hosts.1.name", "mcastsrc"),
    "lab-host-duplicate-address": _set("hosts.1.address", "192.168.56.12"),
    "lab-host-address-number": _set("hosts.0.address", 12),
    "lab-host-memory-negative": _set("hosts.0.memory", -1024),
    "lab-host-cpus-string": _set("hosts.1.cpus", "two"),
    "lab-host-unknown-key": _set("hosts.0.disk", 20),
    "lab-no-node": _set("hosts.1.role", "source"),
    "lab-host-network-address": _set("hosts.0.address", "192.168.56.0"),
    "lab-range-outside-subnet": _set("attachment.range.end", "192.168.57.10"),
    "lab-range-reversed": lambda d: d["attachment"].update(
        range={"start": "192.168.56.254", "end": "192.168.56.200"}),
    "lab-range-contains-host": _set("attachment.range.start", "192.168.56.10"),
    "lab-overlapping-subnets": _set("pod_network.subnet", "192.168.0.0/16"),
    "lab-macvlan-mode": _set("attachment.mode", "bridged"),
    "lab-ifname-hostile": _set("attachment.ifname", "$(reboot)"),
    "lab-ifname-eth0": _set("attachment.ifname", "eth0"),
    "lab-box-hostile": _set("vagrant.boxes.virtualbox.name", HOSTILE),
    "lab-provider-unknown": _set("vagrant.provider", "hyperv"),
    "lab-k8s-version-mismatch": _set("kubernetes.package_version", "1.33.1-1.1"),
    "lab-image-hostile": _set("kubernetes.iperf_image", "busybox`id`"),
    # `$` in a pattern also matches before a final newline: these once got through.
    "lab-name-trailing-newline": _set("name", "mcast\n"),
    "lab-nic-trailing-newline": _set("network.nic", "eth1\n"),
    "lab-box-trailing-newline": _set("vagrant.boxes.libvirt.name", "debian/bookworm64\n"),
    # A YAML sequence as a mapping key once crashed the loader with a TypeError.
    "lab-list-as-key": "name: mcast\n? [port, rate]\n: 1\n",
    "lab-nested-list-as-key": "name: mcast\nnetwork:\n  subnet: 192.168.56.0/24\n"
                              "  ? {a: b}\n  : 1\n",
}


def base_scenario() -> dict[str, Any]:
    return {"name": "bad", "group": "224.0.67.67", "port": 5001, "rate": "1M", "duration": 2,
            "ttl": 5, "sender": {"host": "mcastsrc"},
            "receivers": [{"name": "pod", "placement": "pod", "attachment": True}],
            "expect": {"receive": True, "min_received_pct": 100}}


SCENARIO_CASES: dict[str, Mutation | str] = {
    "scn-empty": "",
    "scn-yaml-syntax": "group: [224.0.67.67\n",
    "scn-group-not-multicast": _set("group", "10.1.1.1"),
    "scn-group-link-local": _set("group", "224.0.0.5"),
    "scn-group-hostile": _set("group", HOSTILE),
    "scn-rate-negative": _set("rate", "-5M"),
    "scn-rate-absurd": _set("rate", "100G"),
    "scn-rate-list-duplicate": _set("rate", ["1M", "1M"]),
    "scn-duration-zero": _set("duration", 0),
    "scn-duration-absurd": _set("duration", 864000),
    "scn-port-string": _set("port", "five thousand"),
    "scn-ttl-too-big": _set("ttl", 300),
    "scn-unknown-sender": _set("sender.host", "nosuchhost"),
    "scn-sender-bind-foreign": _set("sender.bind", "192.168.56.99"),
    "scn-receiver-unknown-host": _set("receivers.0.host", "elsewhere"),
    "scn-receiver-duplicate": lambda d: d["receivers"].append(dict(d["receivers"][0])),
    "scn-receiver-count-zero": _set("receivers.0.count", 0),
    "scn-receiver-placement": _set("receivers.0.placement", "container"),
    "scn-receiver-name-hostile": _set("receivers.0.name", HOSTILE),
    "scn-receiver-iface-hostile": _set("receivers.0.iface", "eth1;reboot"),
    "scn-pods-on-source": _set("receivers.0.host", "mcastsrc"),
    "scn-pct-above-100": _set("expect.min_received_pct", 150),
    "scn-expect-missing": _set("expect", _DELETE),
    "scn-no-receivers": _set("receivers", []),
    "scn-description-control-chars": _set("description", "bell\x07"),
    "scn-buffer-hostile": _set("receive_buffer", "4M && reboot"),
    "scn-buffer-trailing-newline": _set("receive_buffer", "4M\n"),
    "scn-receiver-name-newline": _set("receivers.0.name", "pod\n"),
    "scn-receiver-iface-newline": _set("receivers.0.iface", "eth1\n"),
    "scn-list-as-key": "group: 224.0.67.67\n? [port, rate]\n: 1\n",
    "scn-capture-unknown-point": _set("capture", ["k8s", "nosuchpod"]),
    "scn-capture-twice": _set("capture", ["k8s", "k8s"]),
    "scn-capture-not-a-list": _set("capture", "k8s"),
}


def _write(path: Path, case: Mutation | str, base: dict[str, Any]) -> None:
    if isinstance(case, str):
        path.write_text(case)
        return
    data = copy.deepcopy(base)
    case(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _lab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def assert_nothing_created(cwd: Path) -> None:
    """No state folder, no results, no namespace, host-local folder or libvirt network
    that carries the lab's name (a name with a trailing newline would still start with it)."""
    assert not (cwd / ".lab").exists()
    assert not (cwd / "results").exists()
    prefix = base_lab()["name"]
    if shutil.which("ip"):
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                               timeout=15).stdout
        assert not [n for n in names.splitlines() if n.startswith(prefix)], names
    assert not list(Path("/var/lib/cni").glob(f"lab-{prefix}*"))
    libvirt_dir = Path("/etc/libvirt/qemu/networks")  # where libvirt keeps defined networks
    assert not list(libvirt_dir.glob(f"{prefix}*")), list(libvirt_dir.iterdir())


def _check(name: str, proc: subprocess.CompletedProcess[str], cwd: Path) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert_nothing_created(cwd)
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(proc.stderr)
    assert proc.stderr == golden.read_text()


@pytest.mark.parametrize("backend", ["netns", "vagrant"])
@pytest.mark.parametrize("name", sorted(LAB_CASES))
def test_bad_lab_file(name: str, backend: str, tmp_path: Path) -> None:
    # Through both backends: the lab file is validated whole before any backend runs, so
    # vagrant-only keys are refused on the netns path too, and netns-only ones on vagrant.
    _write(tmp_path / "lab.yaml", LAB_CASES[name], base_lab())
    _check(name, _lab(tmp_path, "--backend", backend, "up"), tmp_path)


@pytest.mark.parametrize("kind", ["char-device", "fifo", "directory", "too-large"])
def test_a_scenario_path_that_is_not_a_small_regular_file(kind: str, tmp_path: Path) -> None:
    """Read only regular files of bounded size: /dev/zero once read until MemoryError and a
    named pipe blocked for ever."""
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(base_lab()))
    target = special_input_file(kind, tmp_path)
    proc = _lab(tmp_path, "run", str(target))  # bounded: _lab has a timeout
    golden = {"char-device": "not a regular file", "fifo": "not a regular file",
              "directory": "a directory", "too-large": "at most 1048576 bytes"}[kind]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    shown = os.path.relpath(target, tmp_path)
    assert proc.stderr.startswith(f"lab: invalid input:\n{shown}: "), proc.stderr
    assert golden in proc.stderr, proc.stderr
    assert_nothing_created(tmp_path)


@pytest.mark.parametrize("name", sorted(SCENARIO_CASES))
def test_bad_scenario_file(name: str, tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(base_lab()))
    _write(tmp_path / "bad.yaml", SCENARIO_CASES[name], base_scenario())
    _check(name, _lab(tmp_path, "run", "bad.yaml"), tmp_path)


def test_missing_lab_file(tmp_path: Path) -> None:
    _check("lab-missing-file", _lab(tmp_path, "-f", "nowhere.yaml", "up"), tmp_path)


def test_missing_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(base_lab()))
    _check("scn-missing-file", _lab(tmp_path, "run", "nosuch"), tmp_path)


def test_every_string_field_of_the_lab_refuses_shell_metacharacters(tmp_path: Path) -> None:
    """Walk every string leaf of lab.yaml and put a hostile string there: all refused."""
    base = base_lab()
    leaves: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))
        elif isinstance(node, str):
            leaves.append(path)

    walk(base, ())
    assert len(leaves) >= 20
    from lab.errors import ConfigError
    from lab.model.labfile import load_lab

    for path in leaves:
        data = copy.deepcopy(base)
        node = data
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = HOSTILE
        (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as info:
            load_lab(tmp_path / "lab.yaml")
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        assert info.value.problems, dotted
        assert any(p.key == dotted for p in info.value.problems), \
            (dotted, [str(p) for p in info.value.problems])
