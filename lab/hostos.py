"""The machine `lab` runs on: its OS, CPU architecture, WSL, root, installer, memory.

A leaf module (it imports nothing of lab) read by backend selection (`backend: auto`), the
lock, and every backend's checks. Everything OS-specific on the host side asks a
`Platform` instead of `sys.platform`, so that tests can hand in another OS's platform (a
simulation, named as one) and walk the code paths a macOS or Windows user takes.
"""

from __future__ import annotations

import os
import platform as _platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# platform.machine() spellings -> the architecture names boxes and images use.
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "AMD64": "amd64",
                 "arm64": "arm64", "aarch64": "arm64", "ARM64": "arm64"}
SYSTEM_NAMES = {"linux": "Linux", "darwin": "macOS", "windows": "Windows"}


@dataclass(frozen=True)
class Platform:
    system: str  # "linux", "darwin", "windows" (or another sys.platform word)
    arch: str  # "amd64", "arm64", or the machine's own word when neither
    release: str = ""  # kernel release (Linux: "6.12.3-amd64"), OS version elsewhere
    wsl: bool = False  # Linux running inside Windows' WSL2
    root: bool = False
    sudo: bool = False  # a `sudo` on PATH
    installer: str = ""  # "apt", "dnf", "brew", "winget", or "" when none is known

    @property
    def label(self) -> str:
        """How messages name this machine: "macOS arm64", "Linux (WSL2) amd64"."""
        name = SYSTEM_NAMES.get(self.system, self.system)
        return f"{name}{' (WSL2)' if self.wsl else ''} {self.arch}"

    def kernel_at_least(self, major: int, minor: int) -> bool:
        """Linux kernel release compared as numbers ("6.12.3-amd64" >= 6.12)."""
        m = re.match(r"(\d+)\.(\d+)", self.release)
        return m is not None and (int(m[1]), int(m[2])) >= (major, minor)


def system() -> str:
    """This OS in the words of `Platform.system`, without the rest of `current()`."""
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "win32":
        return "windows"
    return sys.platform


def _is_wsl() -> bool:
    # WSL2's kernel names itself "...-microsoft-standard-WSL2"; WSL sets WSL_DISTRO_NAME.
    try:
        release = Path("/proc/sys/kernel/osrelease").read_text().lower()
    except OSError:
        release = ""
    return "microsoft" in release or bool(os.environ.get("WSL_DISTRO_NAME"))


def _installer(system: str) -> str:
    if system == "darwin":
        return "brew" if shutil.which("brew") else ""
    if system == "windows":
        return "winget" if shutil.which("winget") else ""
    for tool, name in (("apt-get", "apt"), ("dnf", "dnf")):
        if shutil.which(tool):
            return name
    return ""


def current() -> Platform:
    system_ = system()
    machine = _platform.machine()
    geteuid = getattr(os, "geteuid", None)
    return Platform(system=system_, arch=ARCHITECTURES.get(machine, machine or "unknown"),
                    release=_platform.release(),
                    wsl=system_ == "linux" and _is_wsl(),
                    root=geteuid is not None and geteuid() == 0,
                    sudo=shutil.which("sudo") is not None,
                    installer=_installer(system_))


# How each OS installs what the lab uses. A missing entry: no package there (the hint
# then names the download page).
PACKAGES: dict[str, dict[str, str]] = {
    "vagrant": {"apt": "vagrant", "dnf": "vagrant", "brew": "hashicorp/tap/hashicorp-vagrant",
                "winget": "Hashicorp.Vagrant"},
    # Linux distributions do not ship VirtualBox 7: the hint there is Oracle's page.
    "virtualbox": {"brew": "--cask virtualbox", "winget": "Oracle.VirtualBox"},
    "vagrant-libvirt": {"apt": "vagrant-libvirt", "dnf": "vagrant-libvirt"},
    "libvirt": {"apt": "libvirt-daemon-system qemu-system", "dnf": "libvirt qemu-kvm"},
    # What the netns backend runs (Linux only).
    "iperf": {"apt": "iperf", "dnf": "iperf"},
    "ip": {"apt": "iproute2", "dnf": "iproute"},
    "timeout": {"apt": "coreutils", "dnf": "coreutils"},
    "tcpdump": {"apt": "tcpdump", "dnf": "tcpdump"},
    "cni-plugins": {"apt": "containernetworking-plugins", "dnf": "containernetworking-plugins"},
}
DOWNLOADS = {"vagrant": ("Vagrant", "https://developer.hashicorp.com/vagrant/install"),
             "virtualbox": ("VirtualBox 7", "https://www.virtualbox.org/wiki/Downloads")}
COMMANDS = {"apt": "sudo apt-get install {}", "dnf": "sudo dnf install {}",
            "brew": "brew install {}", "winget": "winget install --id {} -e"}


def install_hint(what: str, plat: Platform) -> str:
    """The command that installs `what` on this OS ("brew install --cask virtualbox"), or
    where to download it when this OS's installer has no package for it."""
    # Without a known installer: macOS users are told Homebrew's line (lab's README asks for
    # Homebrew there), others the download page or their own package manager.
    installer = plat.installer or ("brew" if plat.system == "darwin" else "")
    package = PACKAGES.get(what, {}).get(installer)
    if package:
        command = COMMANDS[installer].format(package)
        return command.removeprefix("sudo ") if plat.root else command
    if what in DOWNLOADS:
        shown, page = DOWNLOADS[what]
        return f"install {shown} from {page}"
    if plat.system == "linux" and not plat.installer:
        return f"install {what} with this system's package manager"
    return f"install {what}"


# --- memory, read the OS's own way ------------------------------------------------------

def meminfo_available_mb(text: str) -> int | None:
    """Linux /proc/meminfo's MemAvailable."""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return None


def vm_stat_available_mb(text: str) -> int | None:
    """macOS `vm_stat`: free, inactive and speculative pages are what a new VM can get."""
    size = re.search(r"page size of (\d+) bytes", text)
    if not size:
        return None
    pages = 0
    for key in ("Pages free", "Pages inactive", "Pages speculative"):
        m = re.search(rf"^{key}:\s+(\d+)\.?$", text, re.M)
        if not m:
            return None
        pages += int(m[1])
    return pages * int(size[1]) // 2**20


def _windows_available_mb() -> int | None:
    import ctypes

    class MemoryStatusEx(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong),
                    ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong),
                    ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

    status = MemoryStatusEx()
    status.dwLength = ctypes.sizeof(MemoryStatusEx)
    windll = getattr(ctypes, "windll", None)
    if windll is None or not windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return None
    return int(status.ullAvailPhys) // 2**20


def available_memory_mb(plat: Platform) -> int | None:
    """Memory a new VM can have now, or None when this OS does not say."""
    try:
        if plat.system == "linux":
            return meminfo_available_mb(Path("/proc/meminfo").read_text())
        if plat.system == "darwin":
            out = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=10,
                                 check=False)
            return vm_stat_available_mb(out.stdout) if out.returncode == 0 else None
        if plat.system == "windows":
            return _windows_available_mb()
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return None
