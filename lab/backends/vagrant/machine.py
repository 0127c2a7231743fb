"""What the vagrant checks may ask of this machine, behind one small interface.

The checks read the host only through a `Machine`: which tools exist, what a command
prints, what a file holds, an environment variable, the memory free. `ThisMachine` asks
the real one; tests hand in a simulated macOS or Windows machine instead, so every OS's
path through the checks runs here.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Protocol

from lab import command, hostos


class Machine(Protocol):
    platform: hostos.Platform

    def which(self, name: str) -> str | None: ...

    def run(self, argv: Sequence[str], timeout: float) -> command.Result: ...

    def read(self, path: str) -> str | None:
        """The file's text, or None when it does not exist or cannot be read."""
        ...

    def exists(self, path: str) -> bool: ...

    def env(self, name: str) -> str | None: ...

    def memory_mb(self) -> int | None: ...


class ThisMachine:
    def __init__(self, plat: hostos.Platform | None = None) -> None:
        self.platform = plat or hostos.current()

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def run(self, argv: Sequence[str], timeout: float) -> command.Result:
        return command.run(argv, timeout=timeout, check=False)

    def read(self, path: str) -> str | None:
        try:
            return Path(path).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def exists(self, path: str) -> bool:
        return Path(path).exists()

    def env(self, name: str) -> str | None:
        return os.environ.get(name)

    def memory_mb(self) -> int | None:
        return hostos.available_memory_mb(self.platform)


# --- VirtualBox: where its VBoxManage is, and versions ------------------------------

# Where VirtualBox puts VBoxManage when it is not on PATH. Windows: Vagrant itself looks
# in VBOX_INSTALL_PATH, then VBOX_MSI_INSTALL_PATH (the installer sets it; both may hold
# several folders split by ';'), then Program Files. macOS: VirtualBox's installer adds
# /usr/local/bin/VBoxManage, a wrapper of the one inside the app.
MACOS_VBOXMANAGE = "/Applications/VirtualBox.app/Contents/MacOS/VBoxManage"
WINDOWS_FOLDERS = ("C:\\Program Files\\Oracle\\VirtualBox",
                   "C:\\Program Files (x86)\\Oracle\\VirtualBox")


def find_vboxmanage(m: Machine) -> str | None:
    for name in ("VBoxManage", "VBoxManage.exe"):
        found = m.which(name)
        if found:
            return found
    if m.platform.system == "windows":
        folders = [d for var in ("VBOX_INSTALL_PATH", "VBOX_MSI_INSTALL_PATH")
                   for d in (m.env(var) or "").split(";") if d.strip()]
        for folder in (*folders, *WINDOWS_FOLDERS):
            path = str(PureWindowsPath(folder.strip(), "VBoxManage.exe"))
            if m.exists(path):
                return path
    if m.platform.system == "darwin":
        for path in ("/usr/local/bin/VBoxManage", MACOS_VBOXMANAGE):
            if m.exists(str(PurePosixPath(path))):
                return path
    return None


Version = tuple[int, ...]


def parse_version(text: str) -> Version | None:
    """ "Vagrant 2.4.9" -> (2, 4, 9); "7.1.6r167084" -> (7, 1, 6)."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    return tuple(int(x) for x in m.groups() if x is not None)


def shown(version: Version) -> str:
    return ".".join(map(str, version))
