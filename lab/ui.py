"""What `lab` shows a person: step lines with timings on stderr, tables on stdout."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console


class Step:
    """A running step; `progress()` shows how far it got (receivers reported so far)."""

    def __init__(self, text: str, status: Any | None) -> None:
        self.text = text
        self.detail = ""
        self._status = status

    def progress(self, detail: str) -> None:
        self.detail = detail
        if self._status is not None:
            self._status.update(f"{self.text}: {detail}")

    def done_text(self) -> str:
        return f"{self.text}: {self.detail}" if self.detail else self.text


class Reporter:
    """Progress of long steps. Backends and the runner report through this, never print."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        # soft_wrap: a hint such as "next: `lab destroy`" must never be split mid-command
        # when stderr is a file or a pipe (rich would wrap it at 80 columns).
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[Step]:
        start = time.monotonic()
        if self.quiet:
            yield Step(text, None)
            return
        with self.console.status(text) as status:
            step = Step(text, status)
            try:
                yield step
            except BaseException:
                self.console.print(f"[red]✗[/red] {step.done_text()} "
                                   f"({time.monotonic() - start:.2f} s)")
                raise
        self.console.print(f"[green]✓[/green] {step.done_text()} "
                           f"({time.monotonic() - start:.2f} s)")

    def info(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]![/yellow] {text}")
