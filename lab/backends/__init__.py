"""Backends, found by name in `lab.registry` and imported only when used.

Each backend is a package here that exports `BACKEND` (its Backend class) and
`checks(lab, options)` (what `lab doctor` and its preflight look at).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import cast

from lab import hostos, registry
from lab.backends.base import Backend
from lab.check import Check
from lab.errors import UsageError
from lab.model.lab import Lab
from lab.state import State
from lab.ui import Reporter


def resolve(name: str, plat: hostos.Platform | None = None) -> str:
    """The backend `name` means here: `auto` chosen for this machine; a backend that does
    not run on this OS refused in one line that names the one that does."""
    plat = plat or hostos.current()
    if name == registry.AUTO:
        name, _ = registry.choose(plat.system, plat.wsl, plat.root or plat.sudo)
    try:
        entry = registry.entry(name)
    except KeyError:
        raise UsageError(f"unknown backend {name!r} (known: {', '.join(registry.NAMES)})"
                         ) from None
    if entry.systems and plat.system not in entry.systems:
        others = [e.name for e in registry.BACKENDS
                  if not e.systems or plat.system in e.systems]
        raise UsageError(f"the {name} backend runs on "
                         f"{', '.join(hostos.SYSTEM_NAMES.get(s, s) for s in entry.systems)} "
                         f"only and this machine is {plat.label}: use "
                         + " or ".join(f"--backend {o}" for o in others)
                         + " (or backend: auto in the lab file)")
    return name


def _package(resolved: str) -> ModuleType:
    """The package of a backend `resolve` has chosen (imported only now, only that one)."""
    return importlib.import_module(registry.entry(resolved).package)


def check_options(name: str, options: Mapping[str, str | None]) -> dict[str, str]:
    """The options that are set, refused with a usage error when `name` does not take them."""
    given = {k: v for k, v in options.items() if v is not None}
    takes = {o.name: o for o in registry.entry(name).options}
    for key, value in given.items():
        if key not in takes:
            owners = [e.name for e in registry.BACKENDS if key in {o.name for o in e.options}]
            raise UsageError(f"--{key} is a {' or '.join(owners) or 'unknown'} option; the "
                             f"backend here is {name}"
                             + (f" (add --backend {owners[0]})" if owners else ""))
        if value not in takes[key].choices:
            raise UsageError(f"--{key} {value!r}: choose one of {', '.join(takes[key].choices)}")
    return given


def make(name: str, lab: Lab, state: State, reporter: Reporter,
         options: Mapping[str, str | None] | None = None) -> Backend:
    name = resolve(name)
    cls = cast(type[Backend], _package(name).BACKEND)
    return cls(lab, state, reporter, options=check_options(name, options or {}))


def checks(name: str, lab: Lab, options: Mapping[str, str | None] | None = None) -> list[Check]:
    """The backend's checks after one row that says which machine this is and, for
    `auto`, which backend it chose and why."""
    plat = hostos.current()
    chosen = resolve(name, plat)
    why = f"; backend auto chose {chosen}: " + registry.choose(
        plat.system, plat.wsl, plat.root or plat.sudo)[1] if name == registry.AUTO else ""
    host = Check("host", True, f"{plat.label} ({plat.release or 'release unknown'}){why}")
    run = cast(Callable[[Lab, Mapping[str, str]], list[Check]], _package(chosen).checks)
    return [host, *run(lab, check_options(chosen, options or {}))]
