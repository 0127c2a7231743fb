"""The lock: plain YAML, keys sorted, no timestamps (a new `lab up` of the same lab
rewrites the same bytes, so version control shows only real changes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.lockfile.inventory import HostInventory
from lab.model.fields import Problems, versioned_yaml

LOCK_VERSION = 1
_HEADER = ("# {name}: exactly what `lab up` made lab {lab} of (written by `lab lock` and by\n"
           "# every successful `lab up` on VMs). Review it and keep it under version control;\n"
           "# `lab up --locked` installs these versions and fails naming the first difference.\n")


@dataclass
class Box:
    name: str
    version: str
    provider: str
    sha256: str  # of the box's files as Vagrant unpacked them


@dataclass
class Lock:
    lab: str
    backend: str
    provider: str | None = None
    box: Box | None = None
    hosts: dict[str, HostInventory] = field(default_factory=dict)
    # URL -> sha256 of every download of every host: a manifest is one file wherever it
    # was fetched.
    downloads: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, lab: str, backend: str, provider: str | None, box: Box | None,
           hosts: dict[str, HostInventory]) -> Lock:
        downloads: dict[str, str] = {}
        for inv in hosts.values():
            downloads.update(inv.downloads)
        return cls(lab, backend, provider, box, hosts, downloads)

    def to_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"lock": LOCK_VERSION, "lab": self.lab, "backend": self.backend}
        if self.provider:
            data["provider"] = self.provider
        if self.box:
            data["box"] = vars(self.box)
        data["hosts"] = {name: {"iperf": inv.iperf, "cni_plugins": inv.cni_plugins,
                                "packages": dict(sorted(inv.packages.items())),
                                "images": dict(sorted(inv.images.items()))}
                         for name, inv in self.hosts.items()}
        data["downloads"] = dict(sorted(self.downloads.items()))
        return data


def path_for(lab_file: Path) -> Path:
    """lab.yaml -> lab.lock beside it (another lab file of the project has its own)."""
    return lab_file.with_suffix(".lock")


def write(lock: Lock, path: Path) -> bool:
    """Write the lock; False when the file already says exactly this."""
    text = _HEADER.format(name=path.name, lab=lock.lab) + yaml.safe_dump(
        lock.to_yaml(), sort_keys=False, default_flow_style=False, width=100)
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(".lock.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def _strings(problems: Problems, key: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        problems.add(key, "must be a mapping of names to versions")
        return {}
    return {k: str(v) for k, v in value.items()}


def read(path: Path) -> Lock:
    """The lock, or a ConfigError naming the file and the key that is wrong."""
    problems = Problems(str(path))
    data = versioned_yaml(path, problems, "lock", LOCK_VERSION, "no lock file: `lab lock` "
                          "(or a `lab up` on VMs) writes it", "lock")
    box = None
    if data.get("box") is not None:
        b = data["box"]
        if not isinstance(b, dict) or set(b) != {"name", "version", "provider", "sha256"}:
            problems.add("box", "must have name, version, provider and sha256")
        else:
            box = Box(**{k: str(v) for k, v in b.items()})
    hosts: dict[str, HostInventory] = {}
    downloads = _strings(problems, "downloads", data.get("downloads"))
    hosts_data = data.get("hosts") or {}
    if not isinstance(hosts_data, dict):
        problems.add("hosts", "must be a mapping of host names")
        hosts_data = {}
    for name, h in hosts_data.items():
        if not isinstance(h, dict):
            problems.add(f"hosts.{name}", "must be a mapping")
            continue
        hosts[str(name)] = HostInventory(
            iperf=str(h.get("iperf", "")), cni_plugins=str(h.get("cni_plugins", "")),
            packages=_strings(problems, f"hosts.{name}.packages", h.get("packages")),
            images=_strings(problems, f"hosts.{name}.images", h.get("images")))
    problems.raise_if_any()
    return Lock(str(data.get("lab", "")), str(data.get("backend", "")), data.get("provider"),
                box, hosts, downloads)


def first_difference(locked: Lock, found: Lock) -> str | None:
    """Where the lab that is up differs from the lock, the first place, as a key of the
    lock file and both values; None when it is the lab the lock describes."""
    if locked.backend != found.backend:
        return f"backend: {found.backend} here, the lock says {locked.backend}"
    if locked.box and found.box and vars(locked.box) != vars(found.box):
        for key in ("name", "version", "provider", "sha256"):
            want, got = getattr(locked.box, key), getattr(found.box, key)
            if want != got:
                return f"box.{key}: {got} here, the lock says {want}"
    for host, want in locked.hosts.items():
        got = found.hosts.get(host)
        if got is None:
            return f"hosts.{host}: no such host in this lab"
        for key in ("iperf", "cni_plugins"):
            if getattr(want, key) != getattr(got, key):
                return f"hosts.{host}.{key}: {getattr(got, key)!r} here, the lock says " \
                       f"{getattr(want, key)!r}"
        for kind in ("packages", "images"):
            difference = _mapping_difference(f"hosts.{host}.{kind}", getattr(want, kind),
                                              getattr(got, kind))
            if difference:
                return difference
    extra = sorted(set(found.hosts) - set(locked.hosts))
    if extra:
        return f"hosts.{extra[0]}: in this lab, not in the lock"
    return _mapping_difference("downloads", locked.downloads, found.downloads, extra=False)


def _mapping_difference(key: str, want: dict[str, str], got: dict[str, str],
                        extra: bool = True) -> str | None:
    for name in sorted(set(want) | set(got)):
        if name not in got:
            if not extra:
                continue  # not fetched this time (its step was done): nothing to compare
            return f"{key}.{name}: not here, the lock says {want[name]}"
        if name not in want:
            if extra:
                return f"{key}.{name}: {got[name]} here, not in the lock"
            return f"{key}.{name}: downloaded here, not in the lock"
        if want[name] != got[name]:
            return f"{key}.{name}: {got[name]} here, the lock says {want[name]}"
    return None
