"""In-process twins of tests/unit/test_bad_input.py, for mutation testing (mutmut).

test_bad_input.py runs each malformed file through `python -m lab` in a subprocess, which
imports the installed, unmutated code, so none of its ~150 cases can kill a mutant. Here the
same inputs (its LAB_CASES and SCENARIO_CASES) go to lab.model.labfile.load_lab and
lab.model.scenario.resolve_scenarios directly, and the problems must read exactly as the golden
files the CLI is held to: `lab: invalid input:` followed by the ConfigError's lines.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.errors import ConfigError, Problem
from lab.model.lab import (
    Attachment,
    Box,
    DirectBoot,
    HostSpec,
    KubernetesSettings,
    Lab,
    LibvirtSettings,
    VagrantSettings,
)
from lab.model.labfile import load_lab
from lab.model.scenario import resolve_scenarios
from tests.support import REPO, base_lab, special_input_file
from tests.unit.test_bad_input import (
    GOLDEN,
    LAB_CASES,
    SCENARIO_CASES,
    _write,
    base_scenario,
)


def _as_cli_prints(exc: ConfigError) -> str:
    return f"lab: invalid input:\n{exc}\n"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # files are named relative to the working directory
    return tmp_path


@pytest.mark.parametrize("name", sorted(LAB_CASES))
def test_bad_lab_file_in_process(name: str, here: Path) -> None:
    _write(here / "lab.yaml", LAB_CASES[name], base_lab())
    with pytest.raises(ConfigError) as info:
        load_lab(Path("lab.yaml"))
    assert _as_cli_prints(info.value) == (GOLDEN / f"{name}.txt").read_text()


@pytest.mark.parametrize("name", sorted(SCENARIO_CASES))
def test_bad_scenario_file_in_process(name: str, here: Path) -> None:
    (here / "lab.yaml").write_text(yaml.safe_dump(base_lab()))
    lab = load_lab(Path("lab.yaml"))
    _write(here / "bad.yaml", SCENARIO_CASES[name], base_scenario())
    with pytest.raises(ConfigError) as info:
        resolve_scenarios(["bad.yaml"], lab)
    assert _as_cli_prints(info.value) == (GOLDEN / f"{name}.txt").read_text()


def test_missing_lab_file_in_process(here: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_lab(Path("nowhere.yaml"))
    assert _as_cli_prints(info.value) == (GOLDEN / "lab-missing-file.txt").read_text()


def test_missing_scenario_file_in_process(here: Path) -> None:
    (here / "lab.yaml").write_text(yaml.safe_dump(base_lab()))
    lab = load_lab(Path("lab.yaml"))
    with pytest.raises(ConfigError) as info:
        resolve_scenarios(["nosuch"], lab)
    assert _as_cli_prints(info.value) == (GOLDEN / "scn-missing-file.txt").read_text()


@pytest.mark.parametrize("kind", ["char-device", "fifo", "directory", "too-large"])
def test_a_path_that_is_not_a_small_regular_file_in_process(kind: str, here: Path) -> None:
    target = special_input_file(kind, here)
    with pytest.raises(ConfigError) as info:
        load_lab(target)
    message = {"char-device": "cannot read: not a regular file",
               "fifo": "cannot read: not a regular file",
               "directory": "cannot read: a directory",
               "too-large": "is 2000000 bytes; a lab or scenario file is at most 1048576 bytes",
               }[kind]
    assert str(info.value) == f"{os.path.relpath(target)}: {message}"


# The valid path: every value of the loaded model, and the defaults of optional keys ------

IP = ipaddress.IPv4Address


def test_the_repository_lab_loads_to_exactly_this_model() -> None:
    assert load_lab(REPO / "lab.yaml") == Lab(
        name="mcast", backend="auto", subnet=ipaddress.IPv4Network("192.168.56.0/24"),
        nic="eth1",
        hosts=(HostSpec("mcastsrc", "source", IP("192.168.56.12"), 1024, 1),
               HostSpec("k8s", "node", IP("192.168.56.11"), 4096, 2)),
        attachment=Attachment("eth1-multicast", "eth1", "bridge", IP("192.168.56.13"),
                              IP("192.168.56.254"), "0.3.1", None, -1),
        pod_subnet=ipaddress.IPv4Network("10.244.0.0/16"),
        vagrant=VagrantSettings(
            "virtualbox",
            {"virtualbox": Box("bento/ubuntu-24.04", "202510.26.0", ("amd64", "arm64")),
             "libvirt": Box("cloud-image/ubuntu-24.04", "20250805.0.0", ("amd64",))},
            LibvirtSettings("kvm", None)),
        kubernetes=KubernetesSettings("1.36", "1.36.3-1.1", "registry.k8s.io/pause:3.10.2",
                                      "v0.27.4", "v4.3.0", "node", True),
        source=REPO / "lab.yaml")


def _load(here: Path, data: dict[str, Any]) -> Lab:
    (here / "lab.yaml").write_text(yaml.safe_dump(data))
    return load_lab(Path("lab.yaml"))


def _problems(here: Path, data: dict[str, Any]) -> list[Problem]:
    (here / "lab.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_lab(Path("lab.yaml"))
    return info.value.problems


def test_defaults_of_every_optional_key(here: Path) -> None:
    data = base_lab()
    del data["backend"], data["network"]["nic"]
    for h in data["hosts"]:
        del h["memory"], h["cpus"]
    for key in ("ifname", "mode", "cni_version"):
        del data["attachment"][key]
    data["attachment"].pop("bcqueuelen", None)  # lab.yaml leaves it unset (the kernel's)
    del data["vagrant"]["provider"]
    del data["kubernetes"]["iperf_image"]
    lab = _load(here, data)
    assert (lab.backend, lab.nic) == ("auto", "eth1")
    assert [(h.memory_mb, h.cpus) for h in lab.hosts] == [(1024, 1), (1024, 1)]
    a = lab.attachment
    assert (a.ifname, a.mode, a.cni_version, a.bcqueuelen) == ("eth1", "bridge", "0.3.1", None)
    assert lab.vagrant.provider == "virtualbox"
    assert lab.vagrant.libvirt == LibvirtSettings("kvm", None)
    assert (lab.kubernetes.iperf_image, lab.kubernetes.provision) == ("node", True)
    assert lab.vagrant.libvirt.management == "nat"  # the VMs reach the internet


def test_libvirt_settings_and_direct_boot(here: Path) -> None:
    data = base_lab()
    data["vagrant"]["provider"] = "libvirt"
    data["vagrant"]["libvirt"] = {"driver": "qemu", "direct_boot": {
        "kernel": "/var/lib/boxes/vmlinuz", "initrd": "/var/lib/boxes/initrd.img",
        "cmd_line": "root=/dev/vda1 console=ttyS0"}}
    data["kubernetes"]["provision"] = False
    lab = _load(here, data)
    assert lab.vagrant.provider == "libvirt"
    assert lab.vagrant.libvirt == LibvirtSettings("qemu", DirectBoot(
        "/var/lib/boxes/vmlinuz", "/var/lib/boxes/initrd.img", "root=/dev/vda1 console=ttyS0"))
    assert lab.kubernetes.provision is False


@pytest.mark.parametrize(("boot", "problems"), [
    ({"kernel": "vmlinuz", "initrd": "/boot/initrd", "cmd_line": "ro"},
     [("vagrant.libvirt.direct_boot.kernel",
       "'vmlinuz' is not an absolute path (letters, digits and ._/+- only)")]),
    ({"initrd": "/boot/initrd", "cmd_line": "ro"},
     [("vagrant.libvirt.direct_boot.kernel", "is required")]),
    ({"kernel": "/boot/k", "cmd_line": "ro"},
     [("vagrant.libvirt.direct_boot.initrd", "is required")]),
    ({"kernel": "/boot/k", "initrd": "/boot/i"},
     [("vagrant.libvirt.direct_boot.cmd_line", "is required")]),
    ({"kernel": "/boot/k", "initrd": "/boot/i", "cmd_line": "root=/dev/vda  ro"},
     [("vagrant.libvirt.direct_boot.cmd_line",
       "'root=/dev/vda  ro' is not a kernel command line (words of letters, digits and "
       "=/_.,:+- separated by single spaces)")]),
    ({"kernel": "/boot/k", "initrd": "/boot/i", "cmd_line": "x" * 501},
     [("vagrant.libvirt.direct_boot.cmd_line",
       f"'{'x' * 501}' is not a kernel command line (words of letters, digits and "
       "=/_.,:+- separated by single spaces)")]),
    ({"kernel": "/boot/k", "initrd": "/boot/i", "cmd_line": "ro", "append": "quiet"},
     [("vagrant.libvirt.direct_boot.append",
       "unknown key (known: cmd_line, initrd, kernel)")]),
])
def test_bad_direct_boot(here: Path, boot: dict[str, Any],
                         problems: list[tuple[str, str]]) -> None:
    data = base_lab()
    data["vagrant"]["libvirt"] = {"driver": "kvm", "direct_boot": boot}
    assert [(p.key, p.message) for p in _problems(here, data)] == problems


def test_a_kernel_command_line_of_500_characters_is_accepted(here: Path) -> None:
    data = base_lab()
    data["vagrant"]["libvirt"] = {"direct_boot": {
        "kernel": "/boot/k", "initrd": "/boot/i", "cmd_line": "x" * 500}}
    boot = _load(here, data).vagrant.libvirt.direct_boot
    assert boot is not None and boot.cmd_line == "x" * 500


def _with(path: str, value: Any) -> dict[str, Any]:
    """lab.yaml's data with the dotted `path` set to `value`."""
    data = base_lab()
    data["vagrant"].setdefault("libvirt", {})
    node: Any = data
    *parents, last = path.split(".")
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "problem"), [
    ("vagrant.libvirt.driver", "xen", "'xen' is not one of: kvm, qemu"),
    ("attachment.cni_version", "0.2.0", "'0.2.0' is not one of: 0.3.0, 0.3.1, 0.4.0, 1.0.0"),
    ("attachment.bcqueuelen", 0, "0 is out of range (1 to 1000000)"),
    ("attachment.bcqueuelen", 1_000_001, "1000001 is out of range (1 to 1000000)"),
    ("hosts.0.memory", 255, "255 is out of range (256 to 262144)"),
    ("hosts.0.memory", 262145, "262145 is out of range (256 to 262144)"),
    ("hosts.0.cpus", 0, "0 is out of range (1 to 64)"),
    ("hosts.0.cpus", 65, "65 is out of range (1 to 64)"),
    ("hosts.0.cpus", True, "must be a whole number, not a boolean"),
    ("hosts.0.cpus", 1.5, "must be a whole number, not a number"),
    ("kubernetes.provision", "yes", "must be true or false, not a string"),
    ("name", True, "must be a string, not a boolean"),
    ("name", 1.5, "must be a string, not a number"),
    ("name", "2024-01-01", "must be a string, not date"),  # YAML reads an unquoted date
    ("network.nic", ["eth1"], "must be a string, not a list"),
    ("pod_network.subnet", "10.244.0.0/31", "10.244.0.0/31 is too small for a lab "
                                            "(use /30 or larger)"),
    ("pod_network.subnet", "10.244.0.0/32", "10.244.0.0/32 is too small for a lab "
                                            "(use /30 or larger)"),
])
def test_one_bad_value(here: Path, path: str, value: Any, problem: str) -> None:
    data = _with(path, value)
    text = yaml.safe_dump(data)
    if value == "2024-01-01":
        text = text.replace("'2024-01-01'", "2024-01-01")
    (here / "lab.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_lab(Path("lab.yaml"))
    assert [(p.key, p.message) for p in info.value.problems] == [(path.replace(".0.", "[0].")
                                                                  , problem)]


@pytest.mark.parametrize(("path", "value"), [
    ("vagrant.libvirt.driver", "qemu"), ("vagrant.libvirt.driver", "kvm"),
    ("attachment.cni_version", "0.3.0"), ("attachment.cni_version", "0.4.0"),
    ("attachment.cni_version", "1.0.0"), ("attachment.bcqueuelen", 1),
    ("attachment.bcqueuelen", 1_000_000), ("hosts.0.memory", 256),
    ("hosts.0.memory", 262144), ("hosts.0.cpus", 64), ("pod_network.subnet", "10.244.0.0/30"),
    ("attachment.mode", "private"), ("attachment.mode", "vepa"), ("attachment.mode", "passthru"),
])
def test_one_value_at_its_limit(here: Path, path: str, value: Any) -> None:
    data = _with(path, value)
    lab = _load(here, data)
    got = {"vagrant.libvirt.driver": lab.vagrant.libvirt.driver,
           "attachment.cni_version": lab.attachment.cni_version,
           "attachment.bcqueuelen": lab.attachment.bcqueuelen,
           "attachment.mode": lab.attachment.mode,
           "hosts.0.memory": lab.hosts[0].memory_mb, "hosts.0.cpus": lab.hosts[0].cpus,
           "pod_network.subnet": str(lab.pod_subnet)}[path]
    assert got == value


def test_hosts_need_a_source(here: Path) -> None:
    data = base_lab()
    data["hosts"][0]["role"] = "node"
    data["hosts"][0]["address"] = "192.168.56.10"
    assert [(p.key, p.message) for p in _problems(here, data)] == [
        ("hosts", "needs at least one host with role: source")]  # two nodes are fine


def test_two_sources_and_a_node(here: Path) -> None:
    data = base_lab()
    data["hosts"].append({"name": "src2", "role": "source", "address": "192.168.56.10"})
    lab = _load(here, data)
    assert [h.name for h in lab.sources] == ["mcastsrc", "src2"]
    assert lab.hosts[2] == HostSpec("src2", "source", IP("192.168.56.10"), 1024, 1)


def test_a_one_address_range_at_a_host_is_refused_for_the_host_only(here: Path) -> None:
    data = base_lab()
    data["attachment"]["range"] = {"start": "192.168.56.100", "end": "192.168.56.100"}
    assert _load(here, data).attachment.range_start == IP("192.168.56.100")
    for start, end, host in (("192.168.56.12", "192.168.56.20", "mcastsrc's address .12"),
                             ("192.168.56.2", "192.168.56.11", "k8s's address .11")):
        data["attachment"]["range"] = {"start": start, "end": end}
        assert [(p.key, p.message) for p in _problems(here, data)] == [
            ("attachment.range.start", f"range {start}-{end} contains host "
                                       + host.replace(" .", " 192.168.56."))]


def test_a_range_start_outside_the_subnet(here: Path) -> None:
    data = base_lab()
    data["attachment"]["range"] = {"start": "192.168.55.250", "end": "192.168.56.10"}
    assert [(p.key, p.message) for p in _problems(here, data)] == [
        ("attachment.range.start",
         "192.168.55.250 is outside network.subnet 192.168.56.0/24")]


def test_whole_file_problems_have_no_key(here: Path) -> None:
    for text, message in (("", "file is empty"), ("- a\n", "must be a mapping, not a list"),
                          ("name: [\n", None), ("name: a\x07\n", None),
                          (b"name: \xff\n", "cannot read: not UTF-8 text (invalid start byte "
                                            "at byte 6)")):
        path = here / "lab.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_lab(Path("lab.yaml"))
        (problem,) = info.value.problems
        assert problem.file == "lab.yaml"
        if message is not None:
            assert (problem.key, problem.message) == ("", message)


def test_yaml_errors_name_the_line_and_the_problem(here: Path) -> None:
    (here / "lab.yaml").write_text("name: mcast\nhosts: [\n")
    with pytest.raises(ConfigError) as info:
        load_lab(Path("lab.yaml"))
    (p,) = info.value.problems
    # libyaml's words (the lab reads YAML with PyYAML's C loader).
    assert (p.key, p.message) == ("line 3", "invalid YAML: did not find expected node content")


def test_a_control_character_is_a_yaml_error_without_a_line(here: Path) -> None:
    # The reader refuses it before parsing: its error has no mark and no `problem`.
    (here / "lab.yaml").write_text("name: a\x07b\n")
    with pytest.raises(ConfigError) as info:
        load_lab(Path("lab.yaml"))
    assert info.value.problems == [Problem(
        "lab.yaml", "", "invalid YAML: unacceptable character #x0007: control characters "
                        "are not allowed")]


def test_file_problems_have_no_key(here: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_lab(Path("nowhere.yaml"))
    assert info.value.problems == [Problem("nowhere.yaml", "", "file not found")]
    (here / "adir.yaml").mkdir()
    with pytest.raises(ConfigError) as info:
        load_lab(Path("adir.yaml"))
    assert info.value.problems == [Problem("adir.yaml", "", "cannot read: a directory")]
    (here / "big.yaml").write_text("#" * (1024 * 1024 + 1))
    with pytest.raises(ConfigError) as info:
        load_lab(Path("big.yaml"))
    assert info.value.problems == [Problem(
        "big.yaml", "", "is 1048577 bytes; a lab or scenario file is at most 1048576 bytes")]


def test_a_path_through_a_file_cannot_be_read(here: Path) -> None:
    (here / "lab.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError) as info:
        load_lab(Path("lab.yaml/lab.yaml"))
    assert info.value.problems == [Problem("lab.yaml/lab.yaml", "",
                                           "cannot read: Not a directory")]


def test_a_file_of_exactly_the_size_limit_is_read_whole(here: Path) -> None:
    # The last byte matters: the name is the file's final line, without a newline.
    data = base_lab()
    del data["name"]
    text = yaml.safe_dump(data)
    tail = "\nname: mcastz"
    padding = 1024 * 1024 - len(text.encode()) - len(tail)
    (here / "lab.yaml").write_text(text + "#" * padding + tail)
    assert (here / "lab.yaml").stat().st_size == 1024 * 1024
    assert load_lab(Path("lab.yaml")).name == "mcastz"


def test_a_section_that_is_not_a_mapping(here: Path) -> None:
    data = base_lab()
    data["network"] = ["192.168.56.0/24"]
    assert [(p.key, p.message) for p in _problems(here, data)] == [
        ("network", "must be a mapping, not a list"),
        ("network.subnet", "is required")]


def test_a_file_that_grows_after_its_size_was_checked(here: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The size is checked with fstat before reading; a file that another process makes
    larger in between is still read only up to the limit, and refused."""
    (here / "lab.yaml").write_text("#" * (2 * 1024 * 1024))
    real_fstat = os.fstat

    def fstat_before_it_grew(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid,
                               st.st_gid, 100, st.st_atime, st.st_mtime, st.st_ctime))

    with monkeypatch.context() as m:
        m.setattr(os, "fstat", fstat_before_it_grew)
        with pytest.raises(ConfigError) as info:
            load_lab(Path("lab.yaml"))
    assert info.value.problems == [Problem("lab.yaml", "", "is larger than 1048576 bytes")]
