"""Reading a YAML mapping into typed values while collecting every problem with its dotted key.

Models are built from these readers once; nothing downstream sees raw dicts, so a typo in a
key is an "unknown key" error instead of a silently empty value.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lab.errors import ConfigError, Problem

T = TypeVar("T")
# Lab and scenario files are a few kilobytes; anything far larger is a wrong path.
MAX_INPUT_BYTES = 1024 * 1024
_MISSING: Any = object()

# Every pattern is applied with fullmatch: `$` would also match before a final newline,
# and "lab\n" would pass as a name.
# Names end up in namespace names, file names, Kubernetes object names and command lines:
# a DNS label keeps them safe in all of those.
NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?")
# Images and box names: registry/path:tag or org/box, nothing a shell would interpret.
REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,200}")
IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")


class Problems:
    """Collects problems of one file; raises them together."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(Problem(self.file, key, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one), on
    libyaml's parser where PyYAML has it (about 10 times faster than its own)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            # `? [port, rate]` makes a list key: unhashable, and never a key we know.
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value, not a list or mapping",
                key_node.start_mark)
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_mapping(path: Path, shown: str) -> dict[str, Any]:
    """Read `path` as a YAML mapping; any failure becomes a ConfigError naming the file."""
    text = read_input_file(path, shown)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([Problem(shown, where, f"invalid YAML: {problem}")]) from None
    if data is None:
        raise ConfigError([Problem(shown, "", "file is empty")])
    if not isinstance(data, dict):
        raise ConfigError([Problem(shown, "", f"must be a mapping, not {_kind(data)}")])
    return data


def read_input_file(path: Path, shown: str) -> str:
    """The text of a lab or scenario file: a regular file, at most MAX_INPUT_BYTES.

    A character device (`/dev/zero`) would be read until memory runs out and a named pipe
    would block for ever, so the file is opened without blocking and checked first.
    """
    try:
        # O_NONBLOCK and O_NOCTTY are POSIX's: Windows has neither (nor FIFOs to block on).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) |
                     getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ConfigError([Problem(shown, "", "file not found")]) from None
    except OSError as exc:
        raise ConfigError([Problem(shown, "", f"cannot read: {exc.strerror}")]) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ConfigError([Problem(shown, "", f"cannot read: {kind}")])
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > MAX_INPUT_BYTES:
            raise ConfigError([Problem(shown, "", f"is {info.st_size} bytes; a lab or "
                                       f"scenario file is at most {MAX_INPUT_BYTES} bytes")])
        data = handle.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:  # it grew while we read it
        raise ConfigError([Problem(shown, "", f"is larger than {MAX_INPUT_BYTES} bytes")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(shown, "", f"cannot read: not UTF-8 text ({exc.reason} "
                                   f"at byte {exc.start})")]) from None


class Section:
    """A mapping being read. Records which keys were read so `done()` can report unknown ones."""

    def __init__(self, problems: Problems, path: str, data: object) -> None:
        self.problems = problems
        self.path = path
        self.ok = isinstance(data, dict)
        if data is not None and not self.ok:
            problems.add(path, f"must be a mapping, not {_kind(data)}")
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self._read: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, parse: Callable[[Any], T], default: Any = _MISSING) -> T | None:
        """Parse `name` with `parse` (which raises ValueError with a message); None on problem."""
        self._read.add(name)
        if name not in self.data or self.data[name] is None:
            if default is _MISSING:
                self.problems.add(self.key(name), "is required")
                return None
            return default  # type: ignore[no-any-return]
        try:
            return parse(self.data[name])
        except ValueError as exc:
            self.problems.add(self.key(name), str(exc))
            return None

    def section(self, name: str, required: bool = True) -> Section:
        self._read.add(name)
        if name not in self.data and required:
            self.problems.add(self.key(name), "is required")
        return Section(self.problems, self.key(name), self.data.get(name))

    def items(self, name: str, required: bool = True) -> list[tuple[str, Any]]:
        """The elements of a list, each with its dotted key (`hosts[1]`)."""
        self._read.add(name)
        value = self.data.get(name)
        if value is None:
            if required:
                self.problems.add(self.key(name), "is required")
            return []
        if not isinstance(value, list):
            self.problems.add(self.key(name), f"must be a list, not {_kind(value)}")
            return []
        if not value and required:
            self.problems.add(self.key(name), "must not be empty")
        return [(f"{self.key(name)}[{i}]", item) for i, item in enumerate(value)]

    def words(self, name: str, parse: Callable[[Any], str], default: list[str]
              ) -> tuple[str, ...] | None:
        """A list of distinct words, each checked by `parse` under its own key
        (`architectures[1]`); `default` when the key is absent. None on a problem."""
        if not self.has(name):
            self._read.add(name)
            return tuple(default)
        found: list[str] = []
        ok = True
        for key, item in self.items(name):
            try:
                word = parse(item)
            except ValueError as exc:
                self.problems.add(key, str(exc))
                ok = False
                continue
            if word in found:
                self.problems.add(key, f"{word} is listed twice")
                ok = False
            found.append(word)
        return tuple(found) if ok and found else None

    def done(self) -> None:
        for extra in sorted(set(map(str, self.data)) - self._read):
            known = ", ".join(sorted(self._read))
            self.problems.add(self.key(extra), f"unknown key (known: {known})")


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


# Parsers: each takes a raw YAML value, returns a typed one or raises ValueError(message).

def name(value: Any) -> str:
    text = string(value)
    if not NAME_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a valid name (lowercase letters, digits and '-', "
                         "at most 32, starting and ending with a letter or digit)")
    return text


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {_kind(value)}")
    return value


def ref(value: Any) -> str:
    text = string(value)
    if not REF_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a valid reference (letters, digits and ._/:@+- only)")
    return text


def ifname(value: Any) -> str:
    text = string(value)
    if not IFNAME_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a valid interface name (at most 15 characters, "
                         "letters, digits, '.', '_' and '-')")
    return text


_PATH_RE = re.compile(r"/[A-Za-z0-9._/+-]{1,250}")
_CMDLINE_RE = re.compile(r"[A-Za-z0-9=/_.,:+-]+( [A-Za-z0-9=/_.,:+-]+)*")


def path(value: Any) -> str:
    result = string(value)
    if not _PATH_RE.fullmatch(result):
        raise ValueError(f"{result!r} is not an absolute path (letters, digits and ._/+- only)")
    return result


def cmdline(value: Any) -> str:
    result = string(value)
    if len(result) > 500 or not _CMDLINE_RE.fullmatch(result):
        raise ValueError(f"{result!r} is not a kernel command line (words of letters, digits "
                         "and =/_.,:+- separated by single spaces)")
    return result


def text(value: Any) -> str:
    """Free text (descriptions): any printable string; it never reaches a command line."""
    result = string(value)
    if any(ord(c) < 32 and c not in "\n\t" for c in result):
        raise ValueError("contains control characters")
    return result


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_kind(value)}")
    return value


def integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, not {_kind(value)}")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range ({low} to {high})")
        return value
    return parse


def number(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {_kind(value)}")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range ({low:g} to {high:g})")
        return float(value)
    return parse


def choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = string(value)
        if text not in options:
            raise ValueError(f"{text!r} is not one of: {', '.join(options)}")
        return text
    return parse


def ipv4(value: Any) -> ipaddress.IPv4Address:
    text = string(value)
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def ipv4_network(value: Any) -> ipaddress.IPv4Network:
    text = string(value)
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IPv4 network ({exc})") from None
    if net.prefixlen > 30:
        raise ValueError(f"{text} is too small for a lab (use /30 or larger)")
    return net


def multicast_group(value: Any) -> ipaddress.IPv4Address:
    addr = ipv4(value)
    if not addr.is_multicast:
        raise ValueError(f"{addr} is not a multicast address (224.0.0.0/4)")
    if addr in ipaddress.IPv4Network("224.0.0.0/24"):
        # Link-local control groups (224.0.0.1 all-hosts...) are joined by every host anyway.
        raise ValueError(f"{addr} is in 224.0.0.0/24, reserved for link-local control traffic")
    return addr


_RATE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)")
_RATE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def rate(value: Any) -> int:
    """A bit rate as iperf takes it (`10M`, `500k`, a number of bit/s): returns bit/s."""
    if isinstance(value, bool):
        raise ValueError("must be a rate such as 1M or 500k")
    if isinstance(value, int | float):
        bps = float(value)
    else:
        match = _RATE_RE.fullmatch(string(value).strip())
        if not match:
            raise ValueError(f"{value!r} is not a rate (examples: 1M, 500k, 2.5M, 1G)")
        bps = float(match.group(1)) * _RATE_UNITS[match.group(2).lower()]
    if not 1_000 <= bps <= 10 * 10**9:
        raise ValueError(f"{value} is out of range (1k to 10G bit/s)")
    return int(bps)


def versioned_yaml(path: Path, problems: Problems, key: str, version: int, missing: str,
                   made_by: str) -> dict[str, Any]:
    """A YAML mapping file this version of lab writes (its `key` says `version`): a
    missing file, bad YAML or another version is a problem of `path`, raised at once."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        problems.add("", missing)
        problems.raise_if_any()
    except yaml.YAMLError as exc:
        problems.add("", f"not YAML: {exc}")
        problems.raise_if_any()
    if not isinstance(data, dict) or data.get(key) != version:
        problems.add(key, f"must be {version} (a {made_by} this version of lab writes)")
        problems.raise_if_any()
    return data
