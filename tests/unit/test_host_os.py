"""The host side as each OS takes it: backend auto-selection, `lab doctor` for the vagrant
backend, the lock, `lab ssh`'s hand-over, memory and install hints.

Only Linux runs here. Every other OS is a SIMULATION: a `hostos.Platform` for it and a
`SimulatedMachine` that answers the checks' questions (tools on PATH, command output,
files, environment) the way that OS would, from what Vagrant's and VirtualBox's sources
and docs say (the sources are named next to the facts in lab/backends/vagrant/checks.py).
The Linux paths also run for real: `ThisMachine` below, and the whole suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from lab import command, hostos, registry
from lab.backends import resolve
from lab.backends.vagrant.checks import checks
from lab.backends.vagrant.machine import ThisMachine, find_vboxmanage, parse_version
from lab.check import Check
from lab.errors import LabBusy, UsageError
from lab.model.lab import Lab
from lab.model.labfile import load_lab
from lab.state import lab_lock
from tests.support import REPO, base_lab

pytestmark = pytest.mark.portable
# What checks this machine's own OS (Linux here; on the workflow's macOS and Windows
# runners the simulations of them are not run: the real thing is).
on_linux = pytest.mark.skipif(sys.platform != "linux", reason="this machine's Linux path")

MAC_ARM = hostos.Platform("darwin", "arm64", "24.6.0", installer="brew")
MAC_INTEL = hostos.Platform("darwin", "amd64", "23.6.0", installer="brew")
WINDOWS = hostos.Platform("windows", "amd64", "10.0.26100", installer="winget")
WINDOWS_ARM = hostos.Platform("windows", "arm64", "10.0.26100", installer="winget")
LINUX_612 = hostos.Platform("linux", "amd64", "6.12.9-amd64", sudo=True, installer="apt")
WSL = hostos.Platform("linux", "amd64", "6.6.36.6-microsoft-standard-WSL2", wsl=True,
                      sudo=True, installer="apt")


@dataclass
class SimulatedMachine:
    """A SIMULATION of another OS's machine for the vagrant checks (see the module doc)."""

    platform: hostos.Platform
    tools: dict[str, str] = field(default_factory=dict)  # name -> path
    outputs: dict[str, str] = field(default_factory=dict)  # argv joined -> stdout
    files: dict[str, str] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    memory: int | None = 16000
    ran: list[tuple[str, ...]] = field(default_factory=list)

    def which(self, name: str) -> str | None:
        return self.tools.get(name)

    def run(self, argv: list[str], timeout: float) -> command.Result:
        self.ran.append(tuple(argv))
        out = self.outputs.get(" ".join(argv))
        return command.Result(tuple(argv), 0 if out is not None else 1, out or "",
                              "" if out is not None else "not simulated", 0.0, timeout)

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def exists(self, path: str) -> bool:
        return path in self.files

    def env(self, name: str) -> str | None:
        return self.environ.get(name)

    def memory_mb(self) -> int | None:
        return self.memory


def _lab(tmp_path: Path, **vagrant: object) -> Lab:
    data = base_lab()
    data["vagrant"].update(vagrant)
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    return load_lab(tmp_path / "lab.yaml")


def _mac(vagrant: str = "2.4.9", vbox: str = "7.2.4r170995", plat: hostos.Platform = MAC_ARM
         ) -> SimulatedMachine:
    return SimulatedMachine(plat, tools={"vagrant": "/opt/homebrew/bin/vagrant"},
                            outputs={"/opt/homebrew/bin/vagrant --version": f"Vagrant {vagrant}",
                                     "/usr/local/bin/VBoxManage --version": vbox},
                            files={"/usr/local/bin/VBoxManage": ""})


def _by_name(found: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in found}


def _blocking(found: list[Check]) -> list[str]:
    return [c.name for c in found if not c.ok and c.blocking]


# --- backend: auto -----------------------------------------------------------------

@pytest.mark.parametrize("plat, chosen", [
    (hostos.Platform("linux", "amd64", root=True), "netns"),
    (LINUX_612, "netns"),  # sudo on PATH: `sudo lab up`
    (hostos.Platform("linux", "amd64"), "vagrant"),  # neither root nor sudo
    (MAC_ARM, "vagrant"), (MAC_INTEL, "vagrant"), (WINDOWS, "vagrant"),
    (WSL, "netns"),
])
def test_backend_auto_picks_netns_where_it_can_run_and_vagrant_elsewhere(
        plat: hostos.Platform, chosen: str) -> None:
    assert resolve(registry.AUTO, plat) == chosen
    assert resolve("vagrant", plat) == "vagrant"  # asked by name: as asked


@pytest.mark.parametrize("plat", [MAC_ARM, WINDOWS])
def test_netns_elsewhere_is_refused_in_one_line_naming_the_vagrant_backend(
        plat: hostos.Platform) -> None:
    with pytest.raises(UsageError) as info:
        resolve("netns", plat)
    text = str(info.value)
    assert "\n" not in text and "--backend vagrant" in text and plat.label in text


def test_the_lab_file_defaults_to_auto(tmp_path: Path) -> None:
    data = base_lab()
    del data["backend"]
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    assert load_lab(tmp_path / "lab.yaml").backend == registry.AUTO
    assert load_lab(REPO / "lab.yaml").backend == registry.AUTO


# --- lab doctor, vagrant backend, per OS -------------------------------------------

def test_macos_apple_silicon_with_a_current_pair_is_ready(tmp_path: Path) -> None:
    found = checks(_lab(tmp_path), machine=_mac())
    assert _blocking(found) == []
    rows = _by_name(found)
    assert rows["virtualbox-arm64"].ok and rows["vagrant-virtualbox"].ok
    assert "arm64" in rows["box-architecture"].message
    # Vagrant makes VirtualBox 7 host-only *networks* on macOS and skips networks.conf.
    assert "vbox-host-only" not in rows


def test_macos_vagrant_too_old_for_virtualbox_7_1_names_the_version_it_needs(
        tmp_path: Path) -> None:
    rows = _by_name(checks(_lab(tmp_path), machine=_mac("2.4.1", "7.1.6r167084")))
    pair = rows["vagrant-virtualbox"]
    assert not pair.ok and pair.blocking and "2.4.2" in pair.fix
    assert "brew install" not in pair.fix  # it is installed: update, not install


def test_apple_silicon_refuses_a_virtualbox_without_arm64(tmp_path: Path) -> None:
    rows = _by_name(checks(_lab(tmp_path), machine=_mac("2.4.9", "7.0.20r163906")))
    assert not rows["virtualbox-arm64"].ok and "7.1.0" in rows["virtualbox-arm64"].message
    assert "brew install --cask virtualbox" in rows["virtualbox-arm64"].fix


def test_intel_mac_with_virtualbox_6_keeps_the_host_only_rule(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    m = _mac("2.4.9", "6.1.50r161033", MAC_INTEL)
    assert _by_name(checks(lab, machine=m))["vbox-host-only"].ok  # 192.168.56.0/24
    data = base_lab()
    data["network"]["subnet"] = "10.0.0.0/24"
    for h, last in zip(data["hosts"], (12, 11), strict=True):
        h["address"] = f"10.0.0.{last}"
    data["attachment"]["range"] = {"start": "10.0.0.20", "end": "10.0.0.200"}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    seed_subnet = load_lab(tmp_path / "lab.yaml")
    assert not _by_name(checks(seed_subnet, machine=m))["vbox-host-only"].ok
    assert "vbox-host-only" not in _by_name(checks(seed_subnet, machine=_mac()))


def test_missing_tools_are_installed_the_way_of_the_os(tmp_path: Path) -> None:
    mac = checks(_lab(tmp_path), machine=SimulatedMachine(MAC_ARM))
    assert _by_name(mac)["vagrant"].fix.startswith("brew install hashicorp/tap/hashicorp-vagrant")
    assert _by_name(mac)["virtualbox"].fix == "brew install --cask virtualbox"
    win = checks(_lab(tmp_path), machine=SimulatedMachine(WINDOWS))
    assert _by_name(win)["vagrant"].fix.startswith("winget install --id Hashicorp.Vagrant -e")
    assert _by_name(win)["virtualbox"].fix == "winget install --id Oracle.VirtualBox -e"
    lin = checks(_lab(tmp_path), machine=SimulatedMachine(LINUX_612))
    assert _by_name(lin)["vagrant"].fix.startswith("sudo apt-get install vagrant")
    assert "virtualbox.org" in _by_name(lin)["virtualbox"].fix  # no distribution package


def test_windows_finds_vboxmanage_where_vagrant_does_and_warns_about_hyper_v(
        tmp_path: Path) -> None:
    exe = "D:\\VBox\\VBoxManage.exe"
    m = SimulatedMachine(
        WINDOWS, tools={"vagrant.exe": "C:\\HashiCorp\\Vagrant\\bin\\vagrant.exe"},
        outputs={"C:\\HashiCorp\\Vagrant\\bin\\vagrant.exe --version": "Vagrant 2.4.9",
                 f"{exe} --version": "7.2.4r170995",
                 "powershell -NoProfile -NonInteractive -Command "
                 "(Get-CimInstance Win32_ComputerSystem).HypervisorPresent": "True\r\n"},
        files={exe: ""}, environ={"VBOX_MSI_INSTALL_PATH": "D:\\VBox\\"})
    assert find_vboxmanage(m) == exe
    found = checks(_lab(tmp_path), machine=m)
    rows = _by_name(found)
    assert rows["virtualbox"].ok and exe in rows["virtualbox"].message
    hyperv = rows["hyper-v"]
    assert not hyperv.ok and not hyperv.blocking and "hypervisorlaunchtype off" in hyperv.fix
    assert "vbox-host-only" not in rows  # Vagrant skips networks.conf on Windows
    assert _blocking(found) == []


def test_windows_default_install_folder_is_found_without_path_or_variables() -> None:
    exe = "C:\\Program Files\\Oracle\\VirtualBox\\VBoxManage.exe"
    assert find_vboxmanage(SimulatedMachine(WINDOWS, files={exe: ""})) == exe
    assert find_vboxmanage(SimulatedMachine(WINDOWS)) is None


def test_an_architecture_the_box_pins_do_not_cover_is_refused(tmp_path: Path) -> None:
    lab = _lab(tmp_path, provider="virtualbox",
               boxes={"virtualbox": {"name": "bento/ubuntu-24.04", "version": "202502.21.0"},
                      "libvirt": {"name": "x/y", "version": "1"}})
    rows = _by_name(checks(lab, machine=_mac()))
    box = rows["box-architecture"]
    assert not box.ok and box.blocking
    assert "202502.21.0 is built for amd64; this machine is arm64" in box.message
    assert "vagrant.boxes.virtualbox" in box.fix
    win_arm = checks(lab, machine=SimulatedMachine(WINDOWS_ARM))
    assert "box-architecture" in _blocking(win_arm)


def test_libvirt_off_linux_and_vagrant_from_wsl2_are_refused_with_the_way_out(
        tmp_path: Path) -> None:
    mac = _by_name(checks(_lab(tmp_path), {"provider": "libvirt"}, machine=_mac()))
    assert not mac["provider"].ok and "--provider virtualbox" in mac["provider"].fix
    assert "libvirt" not in mac and "vagrant-libvirt" not in mac  # nothing asked of macOS
    wsl = _by_name(checks(_lab(tmp_path), machine=SimulatedMachine(WSL)))
    assert not wsl["wsl2"].ok and wsl["wsl2"].blocking and "--backend netns" in wsl["wsl2"].fix


def _linux_vbox(vbox: str, at_load: str | None) -> SimulatedMachine:
    files = {"/sys/module/kvm_intel": ""}
    if at_load is not None:
        files["/sys/module/kvm/parameters/enable_virt_at_load"] = at_load + "\n"
    return SimulatedMachine(LINUX_612, tools={"vagrant": "/usr/bin/vagrant",
                                              "VBoxManage": "/usr/bin/VBoxManage"},
                            outputs={"/usr/bin/vagrant --version": "Vagrant 2.4.9",
                                     "/usr/bin/VBoxManage --version": vbox},
                            files=files)


@pytest.mark.parametrize("vbox, at_load, ok", [
    ("7.1.6r167084", "Y", False),  # KVM took VT-x at load: VERR_VMX_IN_VMX_ROOT_MODE
    ("7.1.6r167084", "N", True),
    ("7.2.10r171000", "Y", True),  # 7.2.10+ asks KVM to enable it and shares it
    ("7.2.10r171000", "N", False),
])
def test_linux_6_12_kvm_holding_the_cpu(tmp_path: Path, vbox: str, at_load: str, ok: bool
                                        ) -> None:
    kvm = _by_name(checks(_lab(tmp_path), machine=_linux_vbox(vbox, at_load)))["kvm"]
    assert kvm.ok is ok
    if not ok:
        assert "sudo modprobe -r kvm_intel" in kvm.fix and kvm.blocking


def test_kvm_is_not_asked_about_before_linux_6_12(tmp_path: Path) -> None:
    m = _linux_vbox("7.1.6r167084", "Y")
    m.platform = hostos.Platform("linux", "amd64", "6.11.0", sudo=True, installer="apt")
    assert "kvm" not in _by_name(checks(_lab(tmp_path), machine=m))


def test_a_virtualbox_newer_than_every_known_pairing_is_a_warning(tmp_path: Path) -> None:
    pair = _by_name(checks(_lab(tmp_path), machine=_mac("2.4.9", "7.3.0r180000"))
                    )["vagrant-virtualbox"]
    assert not pair.ok and not pair.blocking and "7.3" in pair.message


@on_linux
def test_this_machine_answers_the_same_questions() -> None:
    """The real Linux machine through the same interface: what the simulations stand in for."""
    m = ThisMachine()
    assert m.platform.system == "linux" and m.platform.arch in ("amd64", "arm64")
    assert m.read("/proc/meminfo") is not None and m.exists("/proc")
    assert m.memory_mb() is not None and m.memory_mb() > 0  # type: ignore[operator]
    assert m.which("sh") and m.run(["sh", "-c", "echo hi"], timeout=10).stdout == "hi\n"


# --- memory, versions, hints ---------------------------------------------------------

def test_memory_is_read_the_way_of_each_os() -> None:
    vm_stat = textwrap.dedent("""\
        Mach Virtual Memory Statistics: (page size of 16384 bytes)
        Pages free:                               12000.
        Pages active:                            400000.
        Pages inactive:                          390000.
        Pages speculative:                         2000.
        Pages throttled:                              0.
        """)
    assert hostos.vm_stat_available_mb(vm_stat) == (12000 + 390000 + 2000) * 16384 // 2**20
    assert hostos.vm_stat_available_mb("garbage") is None
    assert hostos.meminfo_available_mb("MemTotal: 100 kB\nMemAvailable:  2097152 kB\n") == 2048
    assert hostos.available_memory_mb(hostos.Platform("plan9", "amd64")) is None


def test_versions_as_the_tools_print_them() -> None:
    assert parse_version("Vagrant 2.4.9\n") == (2, 4, 9)
    assert parse_version("7.1.6r167084") == (7, 1, 6)
    assert parse_version("7.2.0_BETA1r1") == (7, 2, 0)
    assert parse_version("no version") is None


def test_install_hints_as_root_drop_sudo_and_never_name_a_missing_installer() -> None:
    root = hostos.Platform("linux", "amd64", root=True, installer="dnf")
    assert hostos.install_hint("vagrant", root) == "dnf install vagrant"
    assert hostos.install_hint("vagrant-libvirt", MAC_ARM).startswith("install ")
    bare = hostos.Platform("linux", "amd64")  # neither apt nor dnf
    assert hostos.install_hint("iperf", bare) == \
        "install iperf with this system's package manager"
    no_winget = hostos.Platform("windows", "amd64")
    assert hostos.install_hint("vagrant", no_winget).startswith("install Vagrant from https")


@on_linux
def test_platform_of_this_machine_is_read_once_and_labelled() -> None:
    here = hostos.current()
    assert here.label.startswith("Linux") and here.kernel_at_least(3, 0)
    assert WSL.label == "Linux (WSL2) amd64" and MAC_ARM.label == "macOS arm64"


# --- the lock, both ways -------------------------------------------------------------

SIMULATED_MSVCRT = '''
# A SIMULATION of Windows' msvcrt.locking (byte-range locks, LK_NBLCK raises OSError when
# another process holds the range), built on POSIX record locks, which behave alike. On
# Windows itself the real one is used. subprocess decides whether it is on Windows by
# importing msvcrt: it is imported first.
import os, subprocess, sys, types
if sys.platform != "win32":
    import fcntl
    msvcrt = types.ModuleType("msvcrt")
    msvcrt.LK_NBLCK, msvcrt.LK_UNLCK = 2, 0
    def locking(fd, mode, nbytes):
        where = os.lseek(fd, 0, os.SEEK_CUR)
        op = fcntl.LOCK_UN if mode == msvcrt.LK_UNLCK else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.lockf(fd, op, nbytes, where, os.SEEK_SET)
        except BlockingIOError:
            raise OSError(36, "Resource deadlock avoided") from None
    msvcrt.locking = locking
    sys.modules["msvcrt"] = msvcrt
'''


@pytest.mark.parametrize("system", [
    pytest.param("linux", marks=pytest.mark.skipif(sys.platform == "win32", reason="POSIX")),
    "windows"])
def test_a_held_lock_refuses_another_process_and_names_the_holder(
        system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if system == "windows" and sys.platform != "win32":  # this process takes it too
        saved = sys.modules.get("msvcrt")
        exec(SIMULATED_MSVCRT, {})
        simulated = sys.modules.pop("msvcrt")
        if saved is not None:
            sys.modules["msvcrt"] = saved
        monkeypatch.setitem(sys.modules, "msvcrt", simulated)
    holder = subprocess.Popen(
        [sys.executable, "-c", SIMULATED_MSVCRT + textwrap.dedent(f"""
            import sys, pathlib
            from lab.state import lab_lock
            with lab_lock(pathlib.Path({str(tmp_path)!r}), "lab up --long-name-of-a-flag",
                          {system!r}):
                print("held", flush=True)
                sys.stdin.readline()
            """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LabBusy) as info, lab_lock(tmp_path, "lab destroy", system):
            pass
        assert f"pid {holder.pid} (lab up --long-name-of-a-flag) holds" in str(info.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    with lab_lock(tmp_path, "lab destroy", system):  # released: taken at once
        text = (tmp_path / "lock").read_text()
        assert text.split("\n")[0].endswith("(lab destroy)") and text.strip().count("\n") == 0


@on_linux
def test_hand_over_waits_for_the_session_on_windows() -> None:
    from lab.cli import hand_over

    assert hand_over(["sh", "-c", "exit 7"], "windows") == 7


# --- a whole `lab` process as Windows or macOS would run it ------------------------------

OTHER_OS_PROCESS = SIMULATED_MSVCRT + '''
# A SIMULATION of a Windows or macOS Python running `lab`: sys.platform says so, and on
# Windows the POSIX-only modules cannot be imported (an import fails as it would there).
# The libraries lab uses are imported first, as Linux's: their own ports are theirs to test.
import ctypes, json, platform
import click, fabric, rich.console, rich.table, yaml
import mimetypes, tempfile, urllib.request, uuid, xml.sax.saxutils  # stdlib that branches too
system = sys.argv.pop(1)
if system == "win32":
    for name in ("fcntl", "termios", "pwd", "grp", "resource"):
        sys.modules[name] = None
    # What Windows' os module lacks (the libraries above are already loaded).
    for name in ("O_NONBLOCK", "O_NOCTTY", "geteuid", "getuid", "killpg", "pread", "pwrite",
                 "setsid", "fork", "getpgid"):
        if hasattr(os, name):
            delattr(os, name)
sys.platform = system
from lab.entry import main
sys.exit(main(sys.argv[1:]))
'''


def _other_os_lab(system: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", OTHER_OS_PROCESS, system, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "150",
                               "PYTHONPATH": os.pathsep.join(
                                   p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)})


@on_linux
@pytest.mark.parametrize("system, shown, virtualbox", [
    # No winget on this PATH: as a Windows without it, the download page.
    ("win32", "Windows", "install VirtualBox 7 from https://www.virtualbox.org/wiki/Downloads"),
    ("darwin", "macOS", "brew install --cask virtualbox"),
])
def test_lab_runs_as_a_windows_or_macos_process_would(
        system: str, shown: str, virtualbox: str, tmp_path: Path) -> None:
    data = base_lab()
    del data["backend"]  # auto
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    helped = _other_os_lab(system, tmp_path, "--help")
    assert helped.returncode == 0 and "Usage: lab" in helped.stdout, helped.stderr
    down = _other_os_lab(system, tmp_path, "status")
    assert down.returncode == 0 and "down" in down.stdout, down.stderr
    refused = _other_os_lab(system, tmp_path, "--backend", "netns", "up")
    assert refused.returncode == 2 and "--backend vagrant" in refused.stderr
    assert f"this machine is {shown} " in refused.stderr
    doctor = _other_os_lab(system, tmp_path, "doctor", "--json")
    rows = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert rows["host"]["message"].startswith(shown)
    assert "chose vagrant" in rows["host"]["message"]
    assert "vbox-host-only" not in rows  # Vagrant skips networks.conf there (VirtualBox 7)
    assert virtualbox in rows["virtualbox"]["fix"]
    assert rows["memory"]["message"].startswith(f"unknown on {shown}")  # no kernel32/vm_stat
