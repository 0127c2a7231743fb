"""Backends, chosen by name here and only here."""

from __future__ import annotations

from lab.backends.base import Backend
from lab.errors import UsageError
from lab.model import Lab
from lab.state import State
from lab.ui import Reporter

NAMES = ("netns", "vagrant")


def make(name: str, lab: Lab, state: State, reporter: Reporter,
         provider: str | None = None) -> Backend:
    """The backend called `name`; `provider` only means something to vagrant."""
    if name == "netns":
        from lab.backends.netns import NetnsBackend

        return NetnsBackend(lab, state, reporter)
    if name == "vagrant":
        from lab.backends.vagrant import VagrantBackend

        return VagrantBackend(lab, state, reporter, provider)
    raise UsageError(f"unknown backend {name!r} (known: {', '.join(NAMES)})")
