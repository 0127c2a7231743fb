"""What `lab` shows a person: step lines with timings on stderr, tables on stdout."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

# rich is imported when something is shown: `lab -q up` shows nothing and skips it.
if TYPE_CHECKING:
    from rich.console import Console

# Where nothing redraws (a log, a CI job), a long step says how it is doing this often.
PROGRESS_LINE_EVERY_S = 15.0


class Step:
    """A running step; `progress()` shows how far it got (receivers reported so far, the
    last line `vagrant up` printed). In a terminal the status line changes in place;
    elsewhere a line is printed at most every PROGRESS_LINE_EVERY_S seconds."""

    def __init__(self, text: str, status: Any | None, console: Console | None = None
                 ) -> None:
        self.text = text
        self.detail = ""
        self._status = status
        self._console = console
        self._started = self._said = time.monotonic()

    def progress(self, detail: str) -> None:
        self.detail = detail
        if self._status is not None:
            self._status.update(f"{self.text}: {detail}")
        now = time.monotonic()
        if self._console is not None and now - self._said >= PROGRESS_LINE_EVERY_S:
            from rich.text import Text

            self._said = now
            self._console.print(Text(f"… {self.text} ({now - self._started:.0f} s): {detail}",
                                     style="dim"))

    def done_text(self) -> str:
        return f"{self.text}: {self.detail}" if self.detail else self.text


class Reporter:
    """Progress of long steps. Backends and the runner report through this, never print."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self._console = console
        self.quiet = quiet

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # soft_wrap: a hint such as "next: `lab destroy`" must never be split
            # mid-command when stderr is a file or a pipe (rich would wrap it at 80 columns).
            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._console

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[Step]:
        start = time.monotonic()
        if self.quiet:
            yield Step(text, None)
            return
        with self.console.status(text) as status:
            # A console that is no terminal shows no status line: progress prints lines.
            step = Step(text, status, None if self.console.is_terminal else self.console)
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
