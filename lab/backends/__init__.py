"""Backends, found by name in `lab.registry` and imported only when used.

Each backend is a package here that exports `BACKEND` (its Backend class) and
`checks(lab, options)` (what `lab doctor` and its preflight look at).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import cast

from lab import registry
from lab.backends.base import Backend
from lab.check import Check
from lab.errors import UsageError
from lab.model.lab import Lab
from lab.state import State
from lab.ui import Reporter


def _package(name: str) -> ModuleType:
    try:
        entry = registry.entry(name)
    except KeyError:
        raise UsageError(f"unknown backend {name!r} (known: {', '.join(registry.NAMES)})"
                         ) from None
    return importlib.import_module(entry.package)


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
    cls = cast(type[Backend], _package(name).BACKEND)
    return cls(lab, state, reporter, options=check_options(name, options or {}))


def checks(name: str, lab: Lab, options: Mapping[str, str | None] | None = None) -> list[Check]:
    run = cast(Callable[[Lab, Mapping[str, str]], list[Check]], _package(name).checks)
    return run(lab, check_options(name, options or {}))
