"""What `lab` shows a person: step lines with timings on stderr, tables on stdout."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console


class Reporter:
    """Progress of long steps. Backends and the runner report through this, never print."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.quiet = quiet

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        start = time.monotonic()
        if self.quiet:
            yield
            return
        with self.console.status(text):
            try:
                yield
            except BaseException:
                self.console.print(f"[red]✗[/red] {text} ({time.monotonic() - start:.2f} s)")
                raise
        self.console.print(f"[green]✓[/green] {text} ({time.monotonic() - start:.2f} s)")

    def info(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]![/yellow] {text}")
