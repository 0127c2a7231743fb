"""Hosts that are Linux network namespaces on this machine, reached with `ip netns exec`."""

from __future__ import annotations

import os
from collections.abc import Sequence

from lab import command
from lab.command import Result
from lab.local import LocalProcess
from lab.names import OWNER_ENV


class NamespaceHost:
    def __init__(self, name: str, netns: str) -> None:
        self.name = name
        self.netns = netns

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        return command.run(self._wrap(argv), timeout=timeout, check=check, input=input,
                           what=what, where=self.name)

    def start(self, argv: Sequence[str], *, timeout: float) -> LocalProcess:
        # `timeout` bounds the process even if `lab` itself dies (kill -9) before stopping it.
        bounded = ["timeout", "--kill-after=2", f"{timeout:g}", *argv]
        # The process carries its namespace's name (and so the lab's) in its environment:
        # `ip netns exec` leaves no trace of it in the command line, and a leak check must
        # be able to tell this lab's processes from anything else on the machine.
        env = {**os.environ, OWNER_ENV: self.netns}
        return LocalProcess(self._wrap(bounded), where=self.name, timeout=timeout, env=env)
