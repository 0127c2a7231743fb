"""A terminal recording of a command as it runs: asciicast v2 (the format asciinema's
players replay), with real timings, made by teeing what `lab` writes to stdout and
stderr. Output of child processes that bypass `lab` is not in it: `lab` shows none.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import TextIO

CAST_VERSION = 2


class CastRecorder:
    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height, self.title = width, height, title
        self.started_wall = time.time()
        self._started = time.monotonic()
        self.events: list[tuple[float, str, str]] = []

    def record(self, text: str) -> None:
        if text:
            # A terminal's line discipline turns "\n" into "\r\n"; a player needs both.
            shown = text.replace("\r\n", "\n").replace("\n", "\r\n")
            self.events.append((round(time.monotonic() - self._started, 6), "o", shown))

    def tee(self, stream: TextIO) -> TextIO:
        return _Tee(stream, self)  # type: ignore[return-value]  # a TextIOBase

    def text(self) -> str:
        """Everything recorded, as a reader would see it scroll past."""
        return "".join(e[2] for e in self.events)

    def write(self, path: Path) -> None:
        header = {"version": CAST_VERSION, "width": self.width, "height": self.height,
                  "timestamp": int(self.started_wall), "title": self.title,
                  "env": {"TERM": os.environ.get("TERM", "xterm-256color"),
                          "SHELL": os.environ.get("SHELL", "/bin/sh")}}
        lines = [json.dumps(header)] + [json.dumps(list(e), ensure_ascii=False)
                                        for e in self.events]
        path.write_text("\n".join(lines) + "\n")


class _Tee(io.TextIOBase):
    """A text stream that writes through to `stream` and records what passes."""

    def __init__(self, stream: TextIO, recorder: CastRecorder) -> None:
        self._stream = stream
        self._recorder = recorder

    def write(self, text: str) -> int:
        self._recorder.record(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")


def read_cast(path: Path) -> tuple[dict[str, object], list[list[object]]]:
    """The header and events of an asciicast v2 file; ValueError when it is not one."""
    lines = path.read_text().splitlines()
    if not lines:
        raise ValueError(f"{path} is empty")
    header = json.loads(lines[0])
    if not isinstance(header, dict) or header.get("version") != CAST_VERSION:
        raise ValueError(f"{path}: not asciicast v2 (header {lines[0][:80]!r})")
    for key in ("width", "height"):
        if not isinstance(header.get(key), int):
            raise ValueError(f"{path}: header has no integer {key}")
    events: list[list[object]] = []
    last = 0.0
    for n, line in enumerate(lines[1:], 2):
        event = json.loads(line)
        if (not isinstance(event, list) or len(event) != 3
                or not isinstance(event[0], int | float) or event[1] not in ("o", "i", "m", "r")
                or not isinstance(event[2], str)):
            raise ValueError(f"{path}:{n}: not an event [time, code, data]: {line[:80]!r}")
        if event[0] < last:
            raise ValueError(f"{path}:{n}: time goes back ({event[0]} < {last})")
        last = float(event[0])
        events.append(event)
    return header, events
