"""The `lab` entry point. Signals are handled from the first instruction on: importing the
CLI (click, rich, yaml, fabric) takes a few hundred milliseconds, and a SIGTERM or Ctrl-C
in that window must end with a message and exit 3, not a traceback."""

from __future__ import annotations

import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 3


class _EarlyInterrupt(BaseException):
    pass


def _early(signum: int, frame: FrameType | None) -> None:
    raise _EarlyInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM's stays until lab.cli.main installs its own: no window without a handler.
    # SIGINT gets its usual KeyboardInterrupt back once the CLI is imported (a
    # KeyboardInterrupt raised inside an import makes Python re-kill itself at exit).
    signal.signal(signal.SIGTERM, _early)
    signal.signal(signal.SIGINT, _early)
    try:
        from lab.cli import main as cli_main
    except _EarlyInterrupt as exc:
        sys.stderr.write(f"lab: interrupted ({exc}) before starting; nothing was done\n")
        return EXIT_INTERRUPTED
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return cli_main(argv)
